// SMIC collections: many embeddings in one .smic file of a few bits per item.
//
// Sections (docs/format.md), in the container of container.hpp with magic "\x89SMIC\r\n\x1a":
//   HEAD  JSON {"dim", ["index_model": "remaining",] "kind": "smic-collection", "mean_norm",
//         "model", ["residual_step",] "writer"}; index_model (format version 3) says every
//         batch codes its items' other atoms with IndexModel::kRemaining (item_codec.hpp)
//   DICT  an embedded .smicd (whole file bytes), or DREF: the 32-byte SHA-256 of a shared one
//   then per batch of items (the first write and each append):
//   IDS_  zlib of JSON {"ids": [...] or null (positions), "pixels": [...] or null}
//   ITEM  u32 n_items, chunk_size, n_chunks; u64 chunk offsets (n_chunks + 1); the chunks
//   RESD  (only when HEAD has residual_step, format version 2) the refinement (residual.hpp);
//         transform-coded when HEAD has "residual_coding": "transform" (format version 4, the
//         dictionary carries the transform: transform.hpp)
// Every count a header claims is checked against the bytes present before anything is
// allocated for it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "smic/coding_dictionary.hpp"
#include "smic/container.hpp"
#include "smic/residual.hpp"

namespace smic {

constexpr std::size_t kMaxChunkSize = std::size_t{1} << 16;
constexpr std::size_t kDefaultChunkSize = 256;

/// Bytes of each kind of section, their overhead included (they sum to the file size).
struct SectionBytes {
  uint64_t header = 0, dictionary = 0, ids = 0, items = 0, residual = 0;
};

/// What a write or append coded: the cosine of each new item's reconstruction (what a reader
/// will decode, measured as such).
struct WriteResult {
  std::vector<double> cosine;
};

/// A .smic collection opened for reading. Items decode lazily, one chunk at a time; the
/// object does not change once opened (only its cache of decoder checkpoints grows, under a
/// lock), so concurrent reads from several threads are safe.
class Collection {
 public:
  Collection(Collection&&) = default;
  Collection& operator=(Collection&&) = default;
  Collection(const Collection&) = delete;  // sections point into its own bytes
  Collection& operator=(const Collection&) = delete;

  /// Open a file (IoError / FormatError / DictionaryMismatchError). A collection coded with a
  /// shared dictionary needs it as `shared`.
  static Collection open(const std::string& path,
                         std::shared_ptr<const CodingDictionary> shared = nullptr);
  /// Parse the bytes of a collection (taken over); `name` appears in error messages.
  static Collection from_bytes(std::vector<uint8_t> bytes,
                               std::shared_ptr<const CodingDictionary> shared = nullptr,
                               const std::string& name = "<bytes>");
  /// Open a file by mapping it read-only (mmap) instead of reading it whole: opening costs
  /// the parse of its headers and ids, and the item bytes are paged in as they are decoded.
  /// The mapping lives as long as this object. The file must not be truncated or rewritten in
  /// place meanwhile (an in-place append or a repack, which renames a new file over it, are
  /// safe: the mapped bytes stay those this object parsed). IoError for a directory or an
  /// unreadable file, FormatError as open().
  static Collection open_mapped(const std::string& path,
                                std::shared_ptr<const CodingDictionary> shared = nullptr);

  std::size_t size() const { return ids_.size(); }
  std::size_t dim() const { return dim_; }
  const std::string& name() const { return name_; }
  const std::vector<std::string>& ids() const { return ids_; }
  /// Pixel count of each item (0 where the file has none).
  const std::vector<int64_t>& pixels() const { return pixels_; }
  /// Position of the item with this id, or nullopt.
  std::optional<std::size_t> find(const std::string& id) const;

  const CodingDictionary& dictionary() const { return *dictionary_; }
  std::shared_ptr<const CodingDictionary> dictionary_ptr() const { return dictionary_; }
  bool shared_dictionary() const { return shared_; }
  /// The HEAD section's JSON text and the fields readers use.
  const std::string& header_json() const { return header_json_; }
  const std::optional<std::string>& model() const { return model_; }
  std::optional<double> mean_norm() const { return mean_norm_; }
  std::optional<double> residual_step() const { return residual_step_; }
  /// How every batch codes its items' atoms (HEAD "index_model"; appends keep it).
  IndexModel index_model() const { return index_model_; }
  /// The lowest version that describes the file: 3 with the remaining-atoms index model, else
  /// 2 with a refinement layer, else 1.
  uint16_t format_version() const {
    if (residual_step_ && residual_transform_) return 4;
    return index_model_ == IndexModel::kRemaining ? 3 : residual_step_ ? 2 : 1;
  }
  /// True when the refinement layer is transform-coded (HEAD "residual_coding": "transform",
  /// format version 4: the dictionary's TransformModel, transform.hpp).
  bool residual_transform() const { return residual_transform_; }
  const SectionBytes& section_bytes() const { return section_bytes_; }
  /// Bytes of the file's committed part (what the sections and preamble take).
  uint64_t file_bytes() const { return view_.end; }
  /// Bytes after the committed sections: an in-place append that was interrupted before it
  /// committed (ignored; the next in-place append overwrites them).
  uint64_t torn_bytes() const { return view_.torn_bytes; }
  /// Items per chunk of the first batch (appends default to it), kDefaultChunkSize if empty.
  std::size_t chunk_size() const;

  /// Items of each batch (the first write, then each append), in order.
  std::vector<std::size_t> batch_sizes() const;
  /// Position of the first item of every chunk of every batch, in order, then size(): the
  /// ranges that decode() and codes() decode as a whole (e.g. to group random reads).
  std::vector<std::size_t> chunk_bounds() const;

  /// Unit embeddings of items [start, stop) into out ((stop - start) x dim floats), decoding
  /// only the chunks that hold them. Throws InvalidArgument for a bad range, FormatError for
  /// corrupt item data.
  ///
  /// A range within one chunk (one item, typically) is read through decoder checkpoints: the
  /// first read of a chunk decodes it in full (with the exact end check) and keeps the
  /// decoder's state every 16 items (about 1.6 bytes per item, in memory only), so later
  /// reads in that chunk decode at most 16 items before theirs.
  void decode(std::size_t start, std::size_t stop, float* out) const;
  std::vector<float> item(std::size_t index) const;
  std::vector<float> embeddings() const;
  /// The decoded symbols of items [start, stop) (no reconstruction).
  ItemCodes codes(std::size_t start, std::size_t stop) const;

  // ---- appends in place (docs/format.md, "Appends") -------------------------------------------
  /// A coded batch ready to go at the end of this collection's file.
  struct PendingAppend {
    std::vector<uint8_t> bytes;        ///< its sections, encoded
    std::size_t n_sections = 0;
    WriteResult result;
  };
  /// Code n new items (n x dim, any norm) as the next batch: ids empty means the next
  /// positions; duplicates of ids in the collection are an InvalidArgument (in-place appends
  /// never replace; CollectionWriter::append does). chunk_size 0: the collection's. Reads
  /// only: safe beside other readers.
  PendingAppend prepare_append(const float* embeddings, std::size_t n, std::size_t dim,
                               const std::vector<std::string>& ids,
                               const std::vector<int64_t>& pixels, std::size_t chunk_size = 0,
                               int n_threads = 0) const;
  /// Write a prepared batch at the end of the file this collection was opened from, in time
  /// proportional to the batch: under an exclusive flock, the sections go after the committed
  /// ones (over any torn tail), fdatasync, then the preamble's committed count is raised and
  /// synced again. Killed at any point, the file holds every earlier item unchanged. Throws
  /// IoError if the file changed since this object read it (then open it again).
  void write_append(const PendingAppend& batch) const;
  /// Take a written batch into this object (O(batch); not safe beside concurrent readers of
  /// this object).
  void adopt_append(PendingAppend&& batch);
  /// prepare_append + write_append + adopt_append.
  WriteResult append_in_place(const float* embeddings, std::size_t n, std::size_t dim,
                              const std::vector<std::string>& ids,
                              const std::vector<int64_t>& pixels, std::size_t chunk_size = 0,
                              int n_threads = 0);

 private:
  /// InvalidArgument unless 0 <= start <= stop <= size().
  void check_range(std::size_t start, std::size_t stop) const;

  struct Batch {
    std::size_t start = 0, n_items = 0, chunk_size = 0;
    const uint8_t* data = nullptr;
    std::size_t data_size = 0;
    std::vector<uint64_t> offsets;
    std::optional<ResidualCode> residual;
    std::size_t first_section = 0;  // index of its IDS_ section in the container
    bool implied = false;           // ids are positions (stored as null, not indexed)
  };
  friend class CollectionWriter;
  Collection() = default;
  void parse(std::shared_ptr<const CodingDictionary> shared);
  void read_batch(const SectionView& ids, const SectionView& items, const SectionView* residual,
                  std::size_t first_section);
  const Batch& locate(std::size_t position, std::size_t& local) const;
  ItemCodes chunk_codes(std::size_t batch, std::size_t lo, std::size_t hi) const;
  /// Refinement levels of items [lo, hi) of batch b (positions within the batch).
  void batch_levels(const Batch& b, std::size_t lo, std::size_t hi, int32_t* out) const;

  // Checkpoints of the chunks read so far, per batch and chunk (see decode()).
  struct Checkpoints {
    std::mutex mutex;
    std::vector<std::vector<std::shared_ptr<const ChunkCheckpoints>>> per_batch;
  };

  std::string name_;
  std::vector<uint8_t> bytes_;
  // The bytes parsed: bytes_'s, or a read-only mapping of the file that mapping_ keeps alive.
  const uint8_t* data_ = nullptr;
  std::size_t data_size_ = 0;
  std::shared_ptr<const void> mapping_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> appended_;  // batches adopt_append took
  std::optional<std::pair<uint64_t, uint64_t>> file_identity_;    // (st_dev, st_ino) at open
  ContainerView view_;
  std::string header_json_;
  std::size_t dim_ = 0;
  std::optional<std::string> model_;
  std::optional<double> mean_norm_, residual_step_;
  bool residual_transform_ = false;
  IndexModel index_model_ = IndexModel::kOrder0;
  std::shared_ptr<const CodingDictionary> dictionary_;
  bool shared_ = false;
  std::vector<Batch> batches_;
  std::vector<std::string> ids_;
  std::vector<int64_t> pixels_;
  std::unordered_map<std::string, std::size_t> index_;
  SectionBytes section_bytes_;
  std::unique_ptr<Checkpoints> checkpoints_ = std::make_unique<Checkpoints>();
};

/// Options of a new collection.
struct WriteOptions {
  std::optional<std::string> model;          ///< CLIP model name recorded in HEAD
  std::size_t chunk_size = kDefaultChunkSize;  ///< items per independently decodable chunk
  std::optional<double> residual_step;       ///< add a refinement layer (residual.hpp)
  std::string writer = "smic-fast";          ///< HEAD "writer", e.g. "smic-fast 0.1.0"
  bool embed_dictionary = true;              ///< DICT (true) or DREF to a shared .smicd
  /// How items' other atoms are coded: kOrder0 (format version 1 or 2, as files before the
  /// remaining-atoms model), kRemaining (version 3), or nullopt: whichever gives the smaller
  /// file (kRemaining must save more than the 28 bytes of its header field; ties and the paper
  /// layout: kOrder0). The model has no tables: its tables derive from the index table.
  std::optional<IndexModel> index_model;
  int n_threads = 0;
  /// HEAD "mean_norm" to record instead of the mean of the rows' norms: for a file packed from
  /// stored codes (a merge of shards), whose rows are not the items' embeddings.
  std::optional<double> mean_norm;
};

/// Rows of an input read a batch at a time: read(start, count, out) writes rows
/// [start, start + count) as float32 into out (count x dim). It may throw; the write then
/// stops and leaves nothing behind.
using RowReader = std::function<void(std::size_t start, std::size_t count, float* out)>;

/// Element type of an input matrix.
enum class RowType : uint8_t { kFloat16, kFloat32, kFloat64 };
/// A row-major (rows x dim) matrix held by the caller (a memory map, say).
struct RowBlock {
  const void* data;
  std::size_t rows;
  RowType type;
};
/// A RowReader over blocks stacked in order (several .npy files as one input), converting
/// each value to float32 as numpy's astype does (float16 exactly, float64 to nearest). The
/// blocks must outlive the reader.
RowReader stacked_rows(std::vector<RowBlock> blocks, std::size_t dim);

/// Items per batch of CollectionWriter::write_streaming by default (rounded up to whole chunks).
constexpr std::size_t kDefaultStreamBatch = 4096;

/// Writes and appends collections. Inputs are (n x dim) float32 embeddings of any norm
/// (normalised here); ids empty means positions ("0", "1", ...: stored as null); pixels empty
/// means unknown.
class CollectionWriter {
 public:
  /// Write a new collection at `path` atomically. `codes` (optional) are the items' symbols
  /// already chosen under `dictionary` for these embeddings (saves coding them twice).
  static WriteResult write(const std::string& path, const float* embeddings, std::size_t n,
                           std::size_t dim, const CodingDictionary& dictionary,
                           const std::vector<std::string>& ids,
                           const std::vector<int64_t>& pixels, const WriteOptions& options,
                           const ItemCodes* codes = nullptr);
  /// The same, into memory (the bytes write() would put in the file).
  static std::vector<uint8_t> write_bytes(const float* embeddings, std::size_t n, std::size_t dim,
                                          const CodingDictionary& dictionary,
                                          const std::vector<std::string>& ids,
                                          const std::vector<int64_t>& pixels,
                                          const WriteOptions& options, WriteResult* result,
                                          const ItemCodes* codes = nullptr);

  /// Rewrite the collection at `path` with all its batches merged into one (chunk size: the
  /// first batch's), atomically: a stream of small appends ends at the rate of one batch.
  /// Every item keeps its id, pixel count (all or none: a batch without them drops them) and
  /// decodes to exactly the same embedding (same symbols, same refinement levels).
  static void repack(const std::string& path, std::shared_ptr<const CodingDictionary> shared = nullptr,
                     int n_threads = 0);

  /// write() for inputs larger than memory: rows are read `batch_items` at a time (0: the
  /// default, kDefaultStreamBatch; rounded up to whole chunks) and coded batch by batch, so
  /// memory stays a batch plus, per item, its norm and cosine (16 bytes), its coded bytes (with
  /// index_model nullopt, under both index models until the smaller is kept) and, with a
  /// refinement layer, its symbols (a second pass re-reads the rows to code the
  /// refinement once its table is known). The bytes written are exactly write()'s. Written
  /// through AtomicFile: on failure the target is untouched.
  static WriteResult write_streaming(const std::string& path, const RowReader& rows,
                                     std::size_t n, std::size_t dim,
                                     const CodingDictionary& dictionary,
                                     const std::vector<std::string>& ids,
                                     const std::vector<int64_t>& pixels,
                                     const WriteOptions& options, const ItemCodes* codes = nullptr,
                                     std::size_t batch_items = 0);

  /// Append a batch to the collection at `path` (opened with `shared` when it needs one).
  /// Earlier bytes are copied unchanged and the write is atomic. An id already present is an
  /// InvalidArgument unless `replace`: its old item is then dropped (the rest of its batch is
  /// re-packed from its decoded symbols, so every other item decodes exactly as before) and
  /// the new one appended. chunk_size 0: the collection's. New items get the collection's
  /// refinement layer, if any.
  static WriteResult append(const std::string& path, const float* embeddings, std::size_t n,
                            std::size_t dim, const std::vector<std::string>& ids,
                            const std::vector<int64_t>& pixels, bool replace,
                            std::size_t chunk_size = 0,
                            std::shared_ptr<const CodingDictionary> shared = nullptr,
                            int n_threads = 0);
};

}  // namespace smic
