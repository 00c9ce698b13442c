// The section container shared by .smic collections and .smicd dictionaries (docs/format.md).
//
// A file is a 16-byte preamble (8-byte magic, u16 format version, u16 flags, u32 reserved)
// followed by sections, each `tag (4 bytes) | length (u64) | payload | crc32 (u32)` with the
// CRC over tag, length and payload; all integers little-endian. Parsing checks every length
// against the bytes given before looking further and every CRC before a payload is handed
// out, so a truncated or corrupted file raises FormatError, never garbage. Writes are atomic:
// the content goes to a temporary file beside the target, is flushed to disk, then renamed
// over it; on any failure the target is untouched.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "smic/error.hpp"

namespace smic {

/// Newest container format version this library reads (2: collections with RESD sections;
/// 3: collections whose items use the remaining-atoms index model; 4: collections with a
/// transform-coded refinement layer, and dictionaries (version 2) that carry its transform).
constexpr uint16_t kFormatVersion = 4;
constexpr std::size_t kPreambleBytes = 16;
/// Bytes a section adds around its payload: tag, length, CRC.
constexpr std::size_t kSectionOverhead = 16;

using Magic = std::array<uint8_t, 8>;
constexpr Magic kCollectionMagic = {0x89, 'S', 'M', 'I', 'C', '\r', '\n', 0x1a};
constexpr Magic kDictionaryMagic = {0x89, 'S', 'M', 'I', 'D', '\r', '\n', 0x1a};

/// A 4-character section tag ("HEAD", "ITEM", ...).
using Tag = std::array<char, 4>;
constexpr Tag make_tag(const char (&text)[5]) { return {text[0], text[1], text[2], text[3]}; }
std::string tag_name(const Tag& tag);

/// A section to write: tag and payload bytes.
struct Section {
  Tag tag;
  std::vector<uint8_t> payload;
};

/// A section of a parsed buffer: its payload points into that buffer.
struct SectionView {
  Tag tag;
  const uint8_t* data;
  std::size_t size;
  std::size_t offset;  ///< byte position of the section (its tag) in the buffer
};

/// Preamble flag: the u32 after the flags counts the committed sections (an in-place append
/// writes its sections, syncs, then raises the count and syncs again). A reader takes exactly
/// that many sections: fewer is a truncated file (FormatError); bytes after them are an append
/// that was interrupted before it committed, ignored (ContainerView::torn_bytes).
constexpr uint16_t kFlagCommittedCount = 1;

struct ContainerView {
  uint16_t version = 0;
  uint16_t flags = 0;
  std::vector<SectionView> sections;
  uint64_t end = 0;         ///< byte offset just after the last (committed) section
  uint64_t torn_bytes = 0;  ///< bytes after `end`: an interrupted append (counted files only)
};

/// CRC-32 (zlib's) of `size` bytes, continuing from `crc`.
uint32_t crc32(const uint8_t* data, std::size_t size, uint32_t crc = 0);

/// The bytes of sections, each with its length and CRC (no preamble).
std::vector<uint8_t> encode_sections(const std::vector<Section>& sections);
/// Preamble + sections: a whole container.
std::vector<uint8_t> encode_container(const Magic& magic, uint16_t version,
                                      const std::vector<Section>& sections);

/// Verify and split a container held in memory. `kind` ("smic collection") and `name` (the
/// file's path or "<bytes>") make the messages. Throws FormatError for a wrong magic, version
/// 0 or newer than kFormatVersion, a truncated section or a CRC mismatch.
ContainerView parse_container(const uint8_t* data, std::size_t size, const Magic& magic,
                              const std::string& kind, const std::string& name);

/// Unsigned LEB128 of `value` (7 bits a byte, high bit = more follows): how count tables are
/// stored.
void append_varint(std::vector<uint8_t>& out, uint64_t value);

/// The whole file at `path`. Throws IoError (the message names the path) when it cannot be read.
std::vector<uint8_t> read_file(const std::string& path);

/// Write `size` bytes to `path` atomically (temporary file in the same folder, fsync, rename;
/// an existing file's mode is kept). Throws IoError; the target is untouched on failure.
void atomic_write(const std::string& path, const uint8_t* data, std::size_t size);

/// Atomically replace `path` by its current bytes followed by `extra` (copy, append, fsync,
/// rename): the original is left as it was if anything fails.
void atomic_append(const std::string& path, const std::vector<uint8_t>& original,
                   const std::vector<uint8_t>& extra);

/// A file written atomically piece by piece, for content too large to hold in memory: bytes go
/// to a fresh temporary file beside `path` (O_EXCL, the target's mode kept); commit() fsyncs
/// and renames it over `path`. Destroyed without commit() (an exception, a cancelled write),
/// the temporary is removed and the target is untouched. A killed process can leave the
/// temporary (".NAME.PID.N.tmp") behind, never a partial target.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Append bytes at the end. Throws IoError.
  void write(const uint8_t* data, std::size_t size);
  void write(const std::vector<uint8_t>& bytes) { write(bytes.data(), bytes.size()); }
  /// Overwrite bytes already written (a length or a table patched once known).
  void write_at(uint64_t offset, const uint8_t* data, std::size_t size);
  /// Bytes written so far (the end of the file).
  uint64_t size() const { return size_; }
  /// fsync, close, rename over the target. Throws IoError (the temporary is then removed).
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

/// A section whose payload is `prefix` (known only at the end: a table of offsets, a length)
/// followed by streamed data. begin() reserves the tag, length and prefix_size bytes; data()
/// appends payload bytes after the prefix; end(prefix) writes the prefix, the length and the
/// CRC (of tag, length, prefix and data, combined without reading the data back).
class StreamedSection {
 public:
  StreamedSection(AtomicFile& file, const Tag& tag, std::size_t prefix_size);
  void data(const uint8_t* bytes, std::size_t size);
  void data(const std::vector<uint8_t>& bytes) { data(bytes.data(), bytes.size()); }
  /// Finish the section; `prefix` must have prefix_size bytes.
  void end(const std::vector<uint8_t>& prefix);

 private:
  AtomicFile& file_;
  Tag tag_;
  std::size_t prefix_size_;
  uint64_t start_;
  uint64_t data_size_ = 0;
  uint32_t data_crc_ = 0;
};

}  // namespace smic
