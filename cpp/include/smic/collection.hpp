// SMIC collections: many embeddings in one .smic file of a few bits per item.
//
// Sections (docs/format.md), in the container of container.hpp with magic "\x89SMIC\r\n\x1a":
//   HEAD  JSON {"dim", "kind": "smic-collection", "mean_norm", "model", ["residual_step",]
//         "writer"}
//   DICT  an embedded .smicd (whole file bytes), or DREF: the 32-byte SHA-256 of a shared one
//   then per batch of items (the first write and each append):
//   IDS_  zlib of JSON {"ids": [...] or null (positions), "pixels": [...] or null}
//   ITEM  u32 n_items, chunk_size, n_chunks; u64 chunk offsets (n_chunks + 1); the chunks
//   RESD  (only when HEAD has residual_step, format version 2) the refinement (residual.hpp)
// Every count a header claims is checked against the bytes present before anything is
// allocated for it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
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

/// A .smic collection opened for reading. Items decode lazily, one chunk at a time; the
/// object is immutable, so concurrent reads from several threads are safe.
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
  uint16_t format_version() const { return residual_step_ ? 2 : 1; }
  const SectionBytes& section_bytes() const { return section_bytes_; }
  uint64_t file_bytes() const { return bytes_.size(); }
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
  void decode(std::size_t start, std::size_t stop, float* out) const;
  std::vector<float> item(std::size_t index) const;
  std::vector<float> embeddings() const;
  /// The decoded symbols of items [start, stop) (no reconstruction).
  ItemCodes codes(std::size_t start, std::size_t stop) const;

 private:
  struct Batch {
    std::size_t start = 0, n_items = 0, chunk_size = 0;
    const uint8_t* data = nullptr;
    std::size_t data_size = 0;
    std::vector<uint64_t> offsets;
    std::optional<ResidualCode> residual;
    std::size_t first_section = 0;  // index of its IDS_ section in the container
  };
  friend class CollectionWriter;
  Collection() = default;
  void parse(std::shared_ptr<const CodingDictionary> shared);
  void read_batch(const SectionView& ids, const SectionView& items, const SectionView* residual,
                  std::size_t first_section);
  const Batch& locate(std::size_t position, std::size_t& local) const;

  std::string name_;
  std::vector<uint8_t> bytes_;
  ContainerView view_;
  std::string header_json_;
  std::size_t dim_ = 0;
  std::optional<std::string> model_;
  std::optional<double> mean_norm_, residual_step_;
  std::shared_ptr<const CodingDictionary> dictionary_;
  bool shared_ = false;
  std::vector<Batch> batches_;
  std::vector<std::string> ids_;
  std::vector<int64_t> pixels_;
  std::unordered_map<std::string, std::size_t> index_;
  SectionBytes section_bytes_;
};

/// What a write or append coded: the cosine of each new item's reconstruction (what a reader
/// will decode, measured as such).
struct WriteResult {
  std::vector<double> cosine;
};

/// Options of a new collection.
struct WriteOptions {
  std::optional<std::string> model;          ///< CLIP model name recorded in HEAD
  std::size_t chunk_size = kDefaultChunkSize;  ///< items per independently decodable chunk
  std::optional<double> residual_step;       ///< add a refinement layer (residual.hpp)
  std::string writer = "smic-fast";          ///< HEAD "writer", e.g. "smic-fast 0.1.0"
  bool embed_dictionary = true;              ///< DICT (true) or DREF to a shared .smicd
  int n_threads = 0;
};

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
