// Byte-oriented range coder with carry propagation (LZMA's scheme widened to 64 bits), and the
// integer-only probability models it codes with. Coders and models are separate (as in
// constriction): a model turns a symbol into (start, freq, total) and back, a coder turns those
// triples into bytes, so one stream can interleave several models.
//
// Format: the encoder keeps `low` (64 bits + a carry flag) and `range` (64 bits, >= 2^56 after
// normalisation, initially 2^64 - 1). Coding (start, freq, total) with total <= 2^31 sets
// r = range / total, low += r * start, range = r * freq, then shifts out bytes (most significant
// first) while range < 2^56. finish() shifts out all 8 bytes of low, so a stream that coded N
// normalisation shifts is exactly N + 8 bytes long and the decoder reads exactly those bytes.
// Everything is integer arithmetic: a stream decodes bit-exactly on any machine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "smic/error.hpp"

namespace smic {

/// Largest frequency total a coder accepts (every model's total must stay <= this).
constexpr uint32_t kMaxFrequencyTotal = uint32_t{1} << 31;

namespace detail {
[[noreturn]] void throw_truncated();
[[noreturn]] void throw_corrupt();
}  // namespace detail

/// Streaming range encoder; bytes accumulate in memory until finish().
///
/// Bytes leave `low` as soon as normalisation shifts them out, all of a step's bytes in one
/// 8-byte big-endian store (the byte count is range's leading zero bytes, so no loop and no
/// branch); a carry out of `low` is added into the bytes already written, walking back over a
/// run of 0xFF bytes. The bytes are those of LZMA's delayed-carry scheme (both write the
/// exact sum of the coded intervals), with no carry state to test per byte.
class RangeEncoder {
 public:
  RangeEncoder() = default;
  RangeEncoder(const RangeEncoder&) = delete;  // ptr_ points into out_
  RangeEncoder& operator=(const RangeEncoder&) = delete;
  RangeEncoder(RangeEncoder&&) = default;      // a moved vector keeps its buffer
  RangeEncoder& operator=(RangeEncoder&&) = default;

  /// Code the interval [start, start + freq) of [0, total). Throws InvalidArgument unless
  /// freq >= 1, start + freq <= total and total <= 2^31.
  void encode(uint32_t start, uint32_t freq, uint32_t total) {
    require(freq >= 1 && total <= kMaxFrequencyTotal && start <= total && freq <= total - start,
            "RangeEncoder::encode: need freq >= 1, start + freq <= total <= 2^31");
    encode_unchecked(start, freq, total);
  }

  /// encode() without the argument check, for models that guarantee its preconditions.
  void encode_unchecked(uint32_t start, uint32_t freq, uint32_t total) {
    const uint64_t r = range_ / total;
    member_step(r * start, r * freq);
  }

  /// encode_unchecked() for total == 2^total_bits (a shift instead of a division; same bytes).
  void encode_pow2_unchecked(uint32_t start, uint32_t freq, unsigned total_bits) {
    const uint64_t r = range_ >> total_bits;
    member_step(r * start, r * freq);
  }

  /// Code symbols[0..n) with a static table (cumulative frequencies `cum`, `alphabet` symbols,
  /// total `total`, or 2^bits when kPow2) — the same bytes as encode_unchecked per symbol, but
  /// with the coder state in locals: output-byte stores may alias anything, so state kept in
  /// members would be reloaded after every store. Calls bad_symbol(i) (which must throw) for a
  /// symbol outside [0, alphabet).
  /// kShifty picks how bytes leave: true for tables that code several bits per symbol (most
  /// steps shift a byte out; see step()), false for skewed ones (few steps do).
  template <bool kPow2, bool kShifty, class BadSymbol>
  void encode_static_run(const int32_t* symbols, std::size_t n, const uint32_t* cum,
                         uint32_t alphabet, uint32_t total, unsigned bits, BadSymbol&& bad_symbol) {
    uint64_t low = low_, range = range_;
    uint8_t* ptr = ptr_;
    const Divider by_total(kPow2 ? 1 : total);
    // Room for a chunk's bytes (a step writes at most 4) is made before the chunk, so the
    // steps themselves check nothing.
    constexpr std::size_t kChunk = 256, kChunkBytes = 4 * kChunk + kSlack;
    for (std::size_t i0 = 0; i0 < n; i0 += kChunk) {
      const std::size_t i1 = n - i0 > kChunk ? i0 + kChunk : n;
      if (static_cast<std::size_t>(end_ - ptr) < kChunkBytes) {
        ptr_ = ptr;
        grow_to(bytes_written() + kChunkBytes);
        ptr = ptr_;
      }
      for (std::size_t i = i0; i < i1; ++i) {
        const uint32_t s = static_cast<uint32_t>(symbols[i]);  // negatives become huge
        if (s >= alphabet) {
          low_ = low;
          range_ = range;
          ptr_ = ptr;
          bad_symbol(i);
        }
        const uint32_t start = cum[s], freq = cum[s + 1] - start;
        const uint64_t r = kPow2 ? range >> bits : by_total.divide(range);
        step<kShifty, false>(r * start, r * freq, low, range, ptr);
      }
    }
    low_ = low;
    range_ = range;
    ptr_ = ptr;
  }

  /// Flush the state and return the coded bytes. The encoder is reset afterwards.
  std::vector<uint8_t> finish();

  /// Bytes emitted so far (the last of them can still change by a carry until finish()).
  std::size_t bytes_written() const {
    return ptr_ == nullptr ? 0 : static_cast<std::size_t>(ptr_ - out_.data());
  }

  /// Size the output buffer for about `bytes` bytes up front.
  void reserve(std::size_t bytes) {
    if (bytes + kSlack > static_cast<std::size_t>(end_ - ptr_))
      grow_to(bytes_written() + bytes + kSlack);
  }

 private:
  static constexpr uint64_t kTop = uint64_t{1} << 56;
  // Free bytes kept after ptr: one 8-byte store of low always fits.
  static constexpr std::size_t kSlack = 8;

  // A step on the member state, with the byte loop (measured: the branchless output loses
  // up to 1.5x on a member step, where loads and stores of the state, not the branch, set the
  // pace). The state is copied to locals: byte stores could alias the members, which would
  // then be stored and reloaded around every byte.
  void member_step(uint64_t offset, uint64_t new_range) {
    uint64_t low = low_, range = range_;
    uint8_t* ptr = ptr_;
    step<false, true>(offset, new_range, low, range, ptr);
    low_ = low;
    range_ = range;
    ptr_ = ptr;
  }

  // One coding step on any copy of the state (members, or locals in encode_static_run): add
  // `offset` to low, set range, then shift out range's leading zero bytes (at most 4: range >=
  // 2^56 / 2^31 before the step). kShifty: with no loop or branch, one store of all 8 bytes of
  // low, of which the first `shift` are final (up to carries) and the rest are overwritten by
  // the next store or finish(); else byte by byte while range < 2^56. Same bytes either way.
  // kCheckRoom: make room for the step's bytes as it writes them (else the caller has).
  template <bool kShifty, bool kCheckRoom>
  void step(uint64_t offset, uint64_t new_range, uint64_t& low, uint64_t& range, uint8_t*& ptr) {
    low += offset;
    if (low < offset) propagate_carry(ptr);  // wrapped past 2^64: at most once per step
    if (kShifty) {
      if (kCheckRoom && static_cast<std::size_t>(end_ - ptr) < kSlack) make_room(ptr);
      const unsigned shift = static_cast<unsigned>(__builtin_clzll(new_range)) & ~7u;  // 0..32
      store_be64(ptr, low);
      ptr += shift / 8;
      low <<= shift;
      range = new_range << shift;
    } else {
      range = new_range;
      while (range < kTop) {
        if (kCheckRoom && ptr == end_) make_room(ptr);
        *ptr++ = static_cast<uint8_t>(low >> 56);
        low <<= 8;
        range <<= 8;
      }
    }
  }
  // x / d for a fixed d in [1, 2^32): a multiplication by floor((2^64 - 1) / d) gives the
  // quotient or one less (it errs by under x / 2^64 < 1), and one comparison corrects it, so
  // the result is exactly x / d (the same bytes) without a division's latency per symbol.
  class Divider {
   public:
    explicit Divider(uint32_t d) : d_(d), m_(~uint64_t{0} / d) {}
    uint64_t divide(uint64_t x) const {
#ifdef __SIZEOF_INT128__
      __extension__ using U128 = unsigned __int128;  // no -Wpedantic note in users' builds
      uint64_t q = static_cast<uint64_t>((static_cast<U128>(x) * m_) >> 64);
      q += (x - q * d_) >= d_;
      return q;
#else
      return x / d_;
#endif
    }

   private:
    uint64_t d_, m_;
  };
  void make_room(uint8_t*& ptr) {  // rare: the buffer doubles
    ptr_ = ptr;
    grow_to(bytes_written() + kSlack);
    ptr = ptr_;
  }
  static void store_be64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));  // one bswap+mov
  }
  // Add 1 to the number the written bytes [out_.data(), ptr) spell (never all 0xFF: the
  // coded value stays below 2^64 times 256^bytes).
  void propagate_carry(uint8_t* ptr);
  void grow_to(std::size_t size);  // make out_ at least `size` bytes, keeping what is written

  uint64_t low_ = 0;
  uint64_t range_ = ~uint64_t{0};
  std::vector<uint8_t> out_;  // output buffer; bytes [out_.data(), ptr_) are written
  uint8_t* ptr_ = nullptr;
  uint8_t* end_ = nullptr;
};

/// Streaming range decoder over a caller-owned buffer (which must outlive it). Reads are
/// bounds-checked: running past the end throws DecodeError("truncated").
class RangeDecoder {
 public:
  /// Throws DecodeError if `size` < 8 (every stream holds at least the 8 flushed bytes).
  RangeDecoder(const uint8_t* data, std::size_t size);

  /// Where a decoder stands between two symbols. A decoder made from it over the same stream
  /// decodes the following symbols exactly as the one it was taken from would have.
  struct State {
    std::size_t pos = 0;
    uint64_t code = 0;
    uint64_t range = 0;
  };
  State state() const { return {pos_, code_, range_}; }
  /// Resume a stream at a state taken from a decoder of it. Throws DecodeError for a state
  /// that no decoder of a stream this long can be in.
  RangeDecoder(const uint8_t* data, std::size_t size, const State& state);

  /// First half of decoding: the target value in [0, total) that the model maps to a symbol.
  /// Throws InvalidArgument for a total outside [1, 2^31], DecodeError for corrupt data.
  uint32_t decode_target(uint32_t total) {
    require(total >= 1 && total <= kMaxFrequencyTotal,
            "RangeDecoder::decode_target: total must be in [1, 2^31]");
    return decode_target_unchecked(total);
  }
  /// Second half: consume the symbol's interval [start, start + freq), which must contain
  /// the target just returned (else InvalidArgument).
  void consume(uint32_t start, uint32_t freq) {
    require(start <= target_ && target_ - start < freq,
            "RangeDecoder::consume: [start, start + freq) must contain the decoded target");
    consume_unchecked(start, freq);
  }

  /// Unchecked variants for models that guarantee the preconditions of the above.
  uint32_t decode_target_unchecked(uint32_t total) {
    r_ = range_ / total;
    return check_target(code_ / r_, total);
  }
  uint32_t decode_target_pow2_unchecked(unsigned total_bits) {
    r_ = range_ >> total_bits;
    return check_target(code_ / r_, uint64_t{1} << total_bits);
  }
  /// For a model whose symbol 0 codes as [0, freq0) of `total` (or of 2^total_bits): when the
  /// target falls there, consume it and return true without dividing for the target (one
  /// multiplication tells); else return false, and target_after_first_unchecked() gives the
  /// target. The same state either way as decode_target + consume.
  bool consume_if_first_unchecked(uint32_t freq0, uint32_t total) {
    r_ = range_ / total;
    return consume_if_below(freq0);
  }
  bool consume_if_first_pow2_unchecked(uint32_t freq0, unsigned total_bits) {
    r_ = range_ >> total_bits;
    return consume_if_below(freq0);
  }
  uint32_t target_after_first_unchecked(uint64_t total) { return check_target(code_ / r_, total); }
  /// decode_target_pow2_unchecked(1) by comparisons instead of a division (the same target,
  /// and the same DecodeError for the one impossible value).
  uint32_t decode_bit_target_unchecked() {
    r_ = range_ >> 1;
    return check_target(code_ < r_ ? 0 : (code_ - r_ < r_ ? 1 : 2), 2);
  }
  void consume_unchecked(uint32_t start, uint32_t freq) {
    code_ -= r_ * start;  // code < range stays true: target in [start, start + freq)
    range_ = r_ * freq;
    while (range_ < kTop) {
      if (pos_ == size_) detail::throw_truncated();
      code_ = (code_ << 8) | data_[pos_++];
      range_ <<= 8;
    }
  }

  /// Check that the stream ended exactly here: all bytes consumed and the final state is the
  /// one the encoder flushed. Throws DecodeError otherwise.
  void finish() const;

  std::size_t position() const { return pos_; }

 private:
  static constexpr uint64_t kTop = uint64_t{1} << 56;

  // code_ / r_ < freq0 exactly when code_ < r_ * freq0 (r_ * freq0 <= range_: no overflow)
  bool consume_if_below(uint32_t freq0) {
    if (code_ >= r_ * freq0) return false;
    target_ = 0;
    consume_unchecked(0, freq0);
    return true;
  }

  uint32_t check_target(uint64_t v, uint64_t total) {
    if (v >= total) detail::throw_corrupt();
    target_ = static_cast<uint32_t>(v);
    return target_;
  }

  const uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  uint64_t code_ = 0;  // value - low, always < range_
  uint64_t range_ = ~uint64_t{0};
  uint64_t r_ = 1;
  uint32_t target_ = 0;
};

/// Static model: a fixed table of frequencies (each >= 1, sum <= 2^31). Decoding looks the
/// target up in a bucket table over its top bits, then scans (or bisects) a short range.
class StaticModel {
 public:
  /// Throws InvalidArgument for an empty table, a zero frequency or a sum above 2^31.
  StaticModel(const uint32_t* freqs, std::size_t n);

  std::size_t size() const { return n_; }
  uint32_t total() const { return cum_[n_]; }
  /// log2(total()) when the total is a power of two, else -1.
  int pow2_bits() const { return pow2_bits_; }
  /// size() + 1 cumulative frequencies: symbol s codes as [cum[s], cum[s + 1]).
  const uint32_t* cumulative() const { return cum_.data(); }

  /// Code `symbol` (< size(), else InvalidArgument).
  void encode(RangeEncoder& enc, uint32_t symbol) const {
    require(symbol < n_, "StaticModel::encode: symbol out of range");
    encode_unchecked(enc, symbol);
  }
  void encode_unchecked(RangeEncoder& enc, uint32_t symbol) const {
    const uint32_t start = cum_[symbol], freq = cum_[symbol + 1] - start;
    if (pow2_bits_ >= 0)
      enc.encode_pow2_unchecked(start, freq, static_cast<unsigned>(pow2_bits_));
    else
      enc.encode_unchecked(start, freq, cum_[n_]);
  }

  uint32_t decode(RangeDecoder& dec) const {
    const uint32_t v = pow2_bits_ >= 0
                           ? dec.decode_target_pow2_unchecked(static_cast<unsigned>(pow2_bits_))
                           : dec.decode_target_unchecked(cum_[n_]);
    const uint32_t s = lookup(v);
    dec.consume_unchecked(cum_[s], cum_[s + 1] - cum_[s]);
    return s;
  }

  /// decode() for a model whose symbol 0 is the likely one: a multiplication decides it, and
  /// the division for the target is made only for the other symbols. The same result and
  /// state as decode().
  uint32_t decode_zero_likely(RangeDecoder& dec) const {
    const bool zero = pow2_bits_ >= 0
                          ? dec.consume_if_first_pow2_unchecked(cum_[1], static_cast<unsigned>(pow2_bits_))
                          : dec.consume_if_first_unchecked(cum_[1], cum_[n_]);
    if (zero) return 0;
    const uint32_t s = lookup(dec.target_after_first_unchecked(cum_[n_]));
    dec.consume_unchecked(cum_[s], cum_[s + 1] - cum_[s]);
    return s;
  }

  /// The symbol whose interval contains v (v < total()).
  uint32_t lookup(uint32_t v) const {
    const uint32_t b = v >> shift_;
    uint32_t lo = bucket_[b], hi = bucket_[b + 1];  // the answer lies in [lo, hi]
    if (hi - lo <= 8) {
      while (cum_[lo + 1] <= v) ++lo;
      return lo;
    }
    while (lo < hi) {  // largest s in [lo, hi] with cum_[s] <= v
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      if (cum_[mid] <= v)
        lo = mid;
      else
        hi = mid - 1;
    }
    return lo;
  }

 private:
  uint32_t n_;
  int pow2_bits_ = -1;           // log2(total) when total is a power of two, else -1
  unsigned shift_ = 0;           // bucket of v is v >> shift_
  std::vector<uint32_t> cum_;    // n + 1 cumulative frequencies, cum_[0] = 0
  std::vector<uint32_t> bucket_; // symbol containing (b << shift_); last entry n - 1
};

/// Adaptive model, integer-only so encoder and decoder stay in lockstep on any machine: every
/// symbol starts at frequency 1; after coding a symbol its frequency grows by `increment`;
/// when the total exceeds `limit` every frequency is halved, rounding up. Cumulative
/// frequencies live in a Fenwick tree (query, update and decode by descent in O(log n)).
class AdaptiveModel {
 public:
  /// Throws InvalidArgument unless 1 <= alphabet_size <= limit / 2, 1 <= increment <= limit / 4
  /// and limit <= 2^31 (these bounds make one halving enough and keep rescales rare).
  AdaptiveModel(uint32_t alphabet_size, uint32_t increment = 24, uint32_t limit = 1u << 16);

  static void validate(uint64_t alphabet_size, uint64_t increment, uint64_t limit);

  std::size_t size() const { return n_; }
  uint32_t total() const { return total_; }

  void encode(RangeEncoder& enc, uint32_t symbol) {
    require(symbol < n_, "AdaptiveModel::encode: symbol out of range");
    enc.encode_unchecked(prefix(symbol), freq_[symbol], total_);
    update(symbol);
  }

  uint32_t decode(RangeDecoder& dec) {
    const uint32_t v = dec.decode_target_unchecked(total_);
    // Fenwick descent: the largest pos with prefix(pos) <= v is the symbol containing v.
    uint32_t pos = 0, rem = v;
    for (uint32_t step = top_step_; step != 0; step >>= 1) {
      const uint32_t next = pos + step;
      if (next <= n_ && tree_[next] <= rem) {
        pos = next;
        rem -= tree_[next];
      }
    }
    dec.consume_unchecked(v - rem, freq_[pos]);
    update(pos);
    return pos;
  }

 private:
  uint32_t prefix(uint32_t symbol) const {  // sum of freq_[0 .. symbol)
    uint32_t s = 0;
    for (uint32_t i = symbol; i != 0; i &= i - 1) s += tree_[i];
    return s;
  }
  void update(uint32_t symbol) {
    freq_[symbol] += inc_;
    for (uint32_t i = symbol + 1; i <= n_; i += i & (0u - i)) tree_[i] += inc_;
    total_ += inc_;
    if (total_ > limit_) rescale();
  }
  void rescale();   // halve every frequency (rounding up) and rebuild the tree
  void rebuild();

  uint32_t n_, inc_, limit_, total_ = 0, top_step_ = 1;
  std::vector<uint32_t> freq_;
  std::vector<uint32_t> tree_;  // 1-based Fenwick tree over freq_
};

/// Code all of `symbols` with a static model. Throws InvalidArgument naming the first symbol
/// outside [0, model.size()).
std::vector<uint8_t> encode_static(const int32_t* symbols, std::size_t n, const StaticModel& model);
/// Decode `count` symbols into `out`; throws DecodeError for truncated or corrupt data or for
/// bytes left over after the last symbol.
void decode_static(const uint8_t* data, std::size_t size, const StaticModel& model, int32_t* out,
                   std::size_t count);

/// Same with a fresh AdaptiveModel(alphabet_size, increment, limit).
std::vector<uint8_t> encode_adaptive(const int32_t* symbols, std::size_t n, uint32_t alphabet_size,
                                     uint32_t increment, uint32_t limit);
void decode_adaptive(const uint8_t* data, std::size_t size, uint32_t alphabet_size,
                     uint32_t increment, uint32_t limit, int32_t* out, std::size_t count);

/// Frequency table from symbol counts. Zero counts become 1. If total_bits >= 0, or if the sum
/// would exceed 2^31 (then total_bits = 31), the table is rescaled to sum exactly
/// 2^total_bits with every entry >= 1, close to the least code-length loss: proportional
/// floors, then greedy +1/-1 steps by marginal gain c / (q +- 1/2). Integer-only and
/// deterministic. Throws InvalidArgument if n == 0, n > 2^total_bits, total_bits > 31 or the
/// counts sum past 2^64.
std::vector<uint32_t> frequencies_from_counts(const uint64_t* counts, std::size_t n,
                                              int total_bits = -1);

}  // namespace smic
