// Section container: encode, verify and split, atomic file writes.
#include "smic/container.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "format/bytes.hpp"

namespace smic {

std::string tag_name(const Tag& tag) {
  std::string out;
  for (char c : tag) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return "'" + out + "'";
}

uint32_t crc32(const uint8_t* data, std::size_t size, uint32_t crc) {
  uLong value = crc;
  while (size > 0) {  // zlib takes uInt lengths
    const auto part = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    value = ::crc32(value, data, part);
    data += part;
    size -= part;
  }
  return static_cast<uint32_t>(value);
}

std::vector<uint8_t> encode_sections(const std::vector<Section>& sections) {
  std::vector<uint8_t> out;
  for (const Section& s : sections) {
    const std::size_t head = out.size();
    out.insert(out.end(), s.tag.begin(), s.tag.end());
    detail::put_u64(out, s.payload.size());
    out.insert(out.end(), s.payload.begin(), s.payload.end());
    const uint32_t crc = crc32(out.data() + head, out.size() - head);
    detail::put_u32(out, crc);
  }
  return out;
}

std::vector<uint8_t> encode_container(const Magic& magic, uint16_t version,
                                      const std::vector<Section>& sections) {
  require(version >= 1 && version <= kFormatVersion,
          "format version must be in [1, " + std::to_string(kFormatVersion) + "], got " +
              std::to_string(version));
  std::vector<uint8_t> out(magic.begin(), magic.end());
  detail::put_u16(out, version);
  detail::put_u16(out, 0);
  detail::put_u32(out, 0);
  const std::vector<uint8_t> body = encode_sections(sections);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

ContainerView parse_container(const uint8_t* data, std::size_t size, const Magic& magic,
                              const std::string& kind, const std::string& name) {
  if (size < kPreambleBytes)
    throw FormatError(name + ": not a " + kind + " (only " + std::to_string(size) + " bytes)");
  if (std::memcmp(data, magic.data(), magic.size()) != 0)
    throw FormatError(name + ": not a " + kind + " (wrong magic bytes)");
  ContainerView view;
  view.version = detail::get_u16(data + 8);
  if (view.version > kFormatVersion)
    throw FormatError(name + ": format version " + std::to_string(view.version) +
                      " is newer than this smic_fast reads (" + std::to_string(kFormatVersion) +
                      "); upgrade smic-fast");
  if (view.version == 0) throw FormatError(name + ": invalid format version 0");
  view.flags = detail::get_u16(data + 10);
  const bool counted = view.flags & kFlagCommittedCount;
  const std::size_t committed = detail::get_u32(data + 12);
  std::size_t pos = kPreambleBytes;
  while (counted ? view.sections.size() < committed : pos < size) {
    if (counted && pos == size)
      throw FormatError(name + ": holds " + std::to_string(view.sections.size()) + " of the " +
                        std::to_string(committed) + " sections it committed (truncated?)");
    if (size - pos < 12)
      throw FormatError(name + ": truncated section header at byte " + std::to_string(pos));
    SectionView s;
    std::memcpy(s.tag.data(), data + pos, 4);
    const uint64_t length = detail::get_u64(data + pos + 4);
    const std::size_t start = pos + 12;
    if (size - start < 4 || length > size - start - 4)
      throw FormatError(name + ": section " + tag_name(s.tag) + " at byte " +
                        std::to_string(pos) + " claims " + std::to_string(length) +
                        " bytes but the file ends first (truncated?)");
    const uint32_t stored = detail::get_u32(data + start + length);
    if (stored != crc32(data + pos, 12 + length))
      throw FormatError(name + ": section " + tag_name(s.tag) + " at byte " +
                        std::to_string(pos) + " fails its CRC32 check (corrupted)");
    s.data = data + start;
    s.size = static_cast<std::size_t>(length);
    s.offset = pos;
    view.sections.push_back(s);
    pos = start + s.size + 4;
  }
  view.end = pos;
  view.torn_bytes = size - pos;
  return view;
}

std::vector<uint8_t> read_file(const std::string& path) {
  // POSIX open + fstat, not ifstream + tellg: tellg() of a directory on ext4 gives 2^63 - 1,
  // which became a 2^63-byte allocation ("out of memory") instead of an IO error.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    throw IoError(path + ": cannot open (" + std::strerror(error) + ")", error);
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    throw IoError(path + ": cannot stat (" + std::strerror(error) + ")", error);
  }
  if (S_ISDIR(st.st_mode))
    throw IoError(path + ": is a directory, not a file", EISDIR);
  // A regular file is read straight into a buffer of its size; past that size (a pipe, a
  // device, a file that grew since fstat) bytes come through a small buffer until end of file,
  // so a file read whole never holds twice its size.
  std::vector<uint8_t> out(S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) : 0);
  std::size_t filled = 0;
  uint8_t spill[1 << 16];
  for (;;) {
    const bool direct = filled < out.size();
    uint8_t* target = direct ? out.data() + filled : spill;
    const std::size_t room = direct ? std::min<std::size_t>(out.size() - filled, 1u << 30) : sizeof spill;
    const ssize_t n = ::read(fd, target, room);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      throw IoError(path + ": read failed (" + std::strerror(error) + ")", error);
    }
    if (n == 0) break;
    if (!direct) {
      out.insert(out.end(), spill, spill + n);
    }
    filled += static_cast<std::size_t>(n);
  }
  out.resize(filled);
  return out;
}

namespace {

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void write_all(int fd, const uint8_t* data, std::size_t size, const std::string& tmp) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, std::min<std::size_t>(size, 1u << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(tmp + ": write failed (" + std::strerror(errno) + ")");
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Create a fresh temporary file beside `path` (O_EXCL; mode 0666 minus the umask, as a plain
// open would give), run `fill(fd)`, fsync, rename over `path`. Removes the temporary on failure.
template <class Fill>
void atomic_replace(const std::string& path, Fill fill) {
  static std::atomic<unsigned> counter{0};
  const std::string dir = parent_of(path);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = dir + "/." + base_of(path) + "." + std::to_string(::getpid()) + "." +
          std::to_string(counter++) + ".tmp";
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) {
      const int error = errno;
      throw IoError(path + ": cannot create a file in " + dir + " (" + std::strerror(error) + ")",
                    error);
    }
  }
  if (fd < 0) throw IoError(path + ": cannot create a temporary file in " + dir);
  try {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) ::fchmod(fd, st.st_mode & 07777);  // keep its mode
    fill(fd, tmp);
    if (::fsync(fd) != 0) throw IoError(tmp + ": fsync failed (" + std::strerror(errno) + ")");
    if (::close(fd) != 0) {
      fd = -1;
      throw IoError(tmp + ": close failed (" + std::strerror(errno) + ")");
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      const int error = errno;
      throw IoError(path + ": cannot replace (" + std::strerror(error) + ")", error);
    }
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace

void atomic_write(const std::string& path, const uint8_t* data, std::size_t size) {
  atomic_replace(path, [&](int fd, const std::string& tmp) { write_all(fd, data, size, tmp); });
}

void atomic_append(const std::string& path, const std::vector<uint8_t>& original,
                   const std::vector<uint8_t>& extra) {
  atomic_replace(path, [&](int fd, const std::string& tmp) {
    write_all(fd, original.data(), original.size(), tmp);
    write_all(fd, extra.data(), extra.size(), tmp);
  });
}

void append_varint(std::vector<uint8_t>& out, uint64_t value) { detail::put_varint(out, value); }

// ---- AtomicFile ------------------------------------------------------------------------------

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  static std::atomic<unsigned> counter{0};
  const std::string dir = parent_of(path);
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    tmp_ = dir + "/." + base_of(path) + "." + std::to_string(::getpid()) + ".s" +
           std::to_string(counter++) + ".tmp";
    fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) {
      const int error = errno;
      throw IoError(path + ": cannot create a file in " + dir + " (" + std::strerror(error) + ")",
                    error);
    }
  }
  if (fd_ < 0) throw IoError(path + ": cannot create a temporary file in " + dir);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) ::fchmod(fd_, st.st_mode & 07777);  // keep its mode
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const uint8_t* data, std::size_t size) {
  require(fd_ >= 0, "AtomicFile: already committed");
  write_all(fd_, data, size, tmp_);
  size_ += size;
}

void AtomicFile::write_at(uint64_t offset, const uint8_t* data, std::size_t size) {
  require(fd_ >= 0, "AtomicFile: already committed");
  require(offset + size <= size_, "AtomicFile: write_at past the end");
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, data, std::min<std::size_t>(size, 1u << 30),
                               static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(tmp_ + ": write failed (" + std::strerror(errno) + ")");
    }
    data += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  require(fd_ >= 0, "AtomicFile: already committed");
  if (::fsync(fd_) != 0) throw IoError(tmp_ + ": fsync failed (" + std::strerror(errno) + ")");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(tmp_.c_str());
    throw IoError(tmp_ + ": close failed (" + std::strerror(errno) + ")");
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp_.c_str());
    throw IoError(path_ + ": cannot replace (" + std::strerror(error) + ")", error);
  }
}

StreamedSection::StreamedSection(AtomicFile& file, const Tag& tag, std::size_t prefix_size)
    : file_(file), tag_(tag), prefix_size_(prefix_size), start_(file.size()) {
  const std::vector<uint8_t> reserved(12 + prefix_size, 0);
  file_.write(reserved);
}

void StreamedSection::data(const uint8_t* bytes, std::size_t size) {
  file_.write(bytes, size);
  data_crc_ = crc32(bytes, size, data_crc_);
  data_size_ += size;
}

void StreamedSection::end(const std::vector<uint8_t>& prefix) {
  require(prefix.size() == prefix_size_, "StreamedSection: prefix of the wrong size");
  std::vector<uint8_t> head(tag_.begin(), tag_.end());
  detail::put_u64(head, prefix_size_ + data_size_);
  head.insert(head.end(), prefix.begin(), prefix.end());
  file_.write_at(start_, head.data(), head.size());
  const uint32_t crc = static_cast<uint32_t>(
      ::crc32_combine(crc32(head.data(), head.size()), data_crc_, static_cast<z_off_t>(data_size_)));
  std::vector<uint8_t> tail;
  detail::put_u32(tail, crc);
  file_.write(tail);
}

}  // namespace smic
