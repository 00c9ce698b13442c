// Little-endian integers, LEB128 varints, zlib and a bounded reader: the small byte encodings
// inside sections (internal to the core).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "smic/error.hpp"

namespace smic::detail {

inline void put_u16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
inline void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void put_f64(std::vector<uint8_t>& out, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_u64(out, bits);
}
inline uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t get_u32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t get_u64(const uint8_t* p) {
  return uint64_t{get_u32(p)} | uint64_t{get_u32(p + 4)} << 32;
}
inline double get_f64(const uint8_t* p) {
  const uint64_t bits = get_u64(p);
  double v;
  std::memcpy(&v, &bits, 8);
  return v;
}

/// Unsigned LEB128 (7 bits a byte, high bit = more follows).
inline void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

/// Reads a payload front to back; every read checks the bytes left and throws FormatError
/// naming `what` when they run out.
class Reader {
 public:
  Reader(const uint8_t* data, std::size_t size, std::string what)
      : data_(data), size_(size), what_(std::move(what)) {}
  std::size_t pos() const { return pos_; }
  std::size_t left() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }
  void need(std::size_t n) const {
    if (n > left()) throw FormatError(what_ + ": truncated");
  }
  uint32_t u32() {
    need(4);
    pos_ += 4;
    return get_u32(data_ + pos_ - 4);
  }
  uint64_t u64() {
    need(8);
    pos_ += 8;
    return get_u64(data_ + pos_ - 8);
  }
  double f64() {
    need(8);
    pos_ += 8;
    return get_f64(data_ + pos_ - 8);
  }
  const uint8_t* take(std::size_t n) {
    need(n);
    pos_ += n;
    return data_ + pos_ - n;
  }
  uint64_t varint() {
    uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (shift > 63) throw FormatError(what_ + ": varint too long");
      if (left() == 0) throw FormatError(what_ + ": truncated varint");
      const uint8_t byte = data_[pos_++];
      value |= uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) return value;
    }
  }
  /// `count` varints; refuses before allocating when fewer bytes than values are left.
  std::vector<uint64_t> varints(std::size_t count) {
    if (count > left()) throw FormatError(what_ + ": truncated table");
    std::vector<uint64_t> out(count);
    for (auto& v : out) v = varint();
    return out;
  }

 private:
  const uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string what_;
};

/// zlib stream at level 9 (the bytes Python's zlib.compress(data, 9) gives with this zlib).
std::vector<uint8_t> zlib_compress(const uint8_t* data, std::size_t size);
/// Inflate a zlib stream of at most `limit` output bytes; FormatError naming `what` otherwise.
std::vector<uint8_t> zlib_decompress(const uint8_t* data, std::size_t size, std::size_t limit,
                                     const std::string& what);

/// numpy's pairwise summation of n values (what np.sum / np.linalg.norm compute along a
/// contiguous axis, in the array's own type), so that results match the Python reference bit
/// for bit: below 8 values a plain loop, up to 128 eight interleaved sums, above that the two
/// halves (split at a multiple of 8) summed recursively.
template <class T>
T pairwise_sum(const T* a, std::size_t n) {
  if (n < 8) {
    T res = 0;
    for (std::size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    T r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/// IEEE half <-> float, round to nearest even (numpy's conversions).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

/// SHA-256 of `data`.
void sha256(const uint8_t* data, std::size_t size, uint8_t out[32]);

}  // namespace smic::detail
