// Range coder: out-of-line parts (flush, model tables, batch loops, frequency tables).
#include "smic/range_coder.hpp"

#include <algorithm>
#include <cmath>
#include <queue>
#include <stdexcept>
#include <string>

namespace smic {

namespace detail {
void throw_truncated() { throw DecodeError("range coder: data is truncated"); }
void throw_corrupt() { throw DecodeError("range coder: data is corrupt (target out of range)"); }
}  // namespace detail

namespace {

[[noreturn]] void throw_bad_symbol(std::size_t i, int32_t s, std::size_t alphabet) {
  throw InvalidArgument("symbols[" + std::to_string(i) + "] = " + std::to_string(s) +
                        " is outside [0, " + std::to_string(alphabet) + ")");
}

uint32_t highest_power_of_two_at_most(uint32_t n) {
  uint32_t p = 1;
  while (p <= n / 2) p <<= 1;
  return p;
}

unsigned bit_length(uint64_t x) {  // bits needed to write x (0 for x == 0)
  unsigned b = 0;
  while (x != 0) {
    ++b;
    x >>= 1;
  }
  return b;
}

}  // namespace

// ---- RangeEncoder / RangeDecoder ---------------------------------------------------------

void RangeEncoder::grow_to(std::size_t size) {
  const std::size_t used = bytes_written();
  if (size > out_.size()) out_.resize(std::max(2 * out_.size(), size + 64));
  ptr_ = out_.data() + used;
  end_ = out_.data() + out_.size();
}

void RangeEncoder::propagate_carry(uint8_t* ptr) {
  uint8_t* const begin = out_.data();
  while (ptr != begin) {
    --ptr;
    if (++*ptr != 0) return;  // 0xFF bytes become 0x00 and pass the carry on
  }
  throw std::logic_error("range coder: carry out of the first byte (an internal error)");
}

std::vector<uint8_t> RangeEncoder::finish() {
  // All of low, so the decoder needs no padding.
  if (static_cast<std::size_t>(end_ - ptr_) < kSlack) grow_to(bytes_written() + kSlack);
  store_be64(ptr_, low_);
  ptr_ += 8;
  out_.resize(bytes_written());
  std::vector<uint8_t> out = std::move(out_);
  *this = RangeEncoder();
  return out;
}

RangeDecoder::RangeDecoder(const uint8_t* data, std::size_t size) : data_(data), size_(size) {
  if (size < 8) detail::throw_truncated();
  for (; pos_ < 8; ++pos_) code_ = (code_ << 8) | data_[pos_];
}

RangeDecoder::RangeDecoder(const uint8_t* data, std::size_t size, const State& state)
    : data_(data), size_(size), pos_(state.pos), code_(state.code), range_(state.range) {
  if (size < 8 || state.pos < 8 || state.pos > size || state.range < kTop ||
      state.code >= state.range)
    throw DecodeError("range coder: a resume state that does not belong to this stream");
}

void RangeDecoder::finish() const {
  if (pos_ != size_)
    throw DecodeError("range coder: " + std::to_string(size_ - pos_) +
                      " unread byte(s) after the last symbol");
  // The encoder flushed low itself, so value - low is zero once every byte is read.
  if (code_ != 0) throw DecodeError("range coder: data is corrupt (bad final state)");
}

// ---- StaticModel --------------------------------------------------------------------------

StaticModel::StaticModel(const uint32_t* freqs, std::size_t n) : n_(static_cast<uint32_t>(n)) {
  require(n >= 1, "frequency table must not be empty");
  require(n <= kMaxFrequencyTotal, "frequency table has more than 2^31 entries");
  cum_.resize(n + 1);
  uint64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (freqs[i] == 0)
      throw InvalidArgument("freqs[" + std::to_string(i) + "] is 0; every frequency must be >= 1");
    cum_[i] = static_cast<uint32_t>(sum);
    sum += freqs[i];
    if (sum > kMaxFrequencyTotal)
      throw InvalidArgument("frequencies sum to more than 2^31");
  }
  cum_[n] = static_cast<uint32_t>(sum);
  const uint32_t total = cum_[n];
  if ((total & (total - 1)) == 0) pow2_bits_ = static_cast<int>(bit_length(total) - 1);

  // About 4 buckets per symbol (at most 2^18 of them), each covering 2^shift_ target values.
  const unsigned total_bits = bit_length(total - 1);  // every target fits in total_bits bits
  const unsigned want = std::min(18u, bit_length(n - 1) + 2);
  const unsigned lookup_bits = std::min(total_bits, want);
  shift_ = total_bits - lookup_bits;
  const uint32_t n_buckets = ((total - 1) >> shift_) + 1;
  bucket_.resize(std::size_t{n_buckets} + 1);
  uint32_t s = 0;
  for (uint32_t b = 0; b < n_buckets; ++b) {
    const uint64_t v = uint64_t{b} << shift_;
    while (cum_[s + 1] <= v) ++s;
    bucket_[b] = s;
  }
  bucket_[n_buckets] = n_ - 1;
}

// ---- AdaptiveModel ------------------------------------------------------------------------

void AdaptiveModel::validate(uint64_t alphabet_size, uint64_t increment, uint64_t limit) {
  require(limit >= 2 && limit <= kMaxFrequencyTotal, "limit must be in [2, 2^31], got " +
                                                         std::to_string(limit));
  require(alphabet_size >= 1 && alphabet_size <= limit / 2,
          "alphabet_size must be in [1, limit / 2] = [1, " + std::to_string(limit / 2) +
              "], got " + std::to_string(alphabet_size));
  require(increment >= 1 && increment <= limit / 4,
          "increment must be in [1, limit / 4] = [1, " + std::to_string(limit / 4) + "], got " +
              std::to_string(increment));
}

AdaptiveModel::AdaptiveModel(uint32_t alphabet_size, uint32_t increment, uint32_t limit)
    : n_(alphabet_size), inc_(increment), limit_(limit) {
  validate(alphabet_size, increment, limit);
  freq_.assign(n_, 1);
  top_step_ = highest_power_of_two_at_most(n_);
  rebuild();
}

void AdaptiveModel::rebuild() {
  tree_.assign(std::size_t{n_} + 1, 0);
  uint32_t total = 0;
  for (uint32_t i = 1; i <= n_; ++i) {
    tree_[i] += freq_[i - 1];
    total += freq_[i - 1];
    const uint32_t parent = i + (i & (0u - i));
    if (parent <= n_) tree_[parent] += tree_[i];
  }
  total_ = total;
}

void AdaptiveModel::rescale() {
  // total <= limit + increment before; after halving <= (limit + increment + n) / 2 < limit.
  for (uint32_t& f : freq_) f -= f / 2;
  rebuild();
}

// ---- batch coding -------------------------------------------------------------------------

namespace {
// The power-of-two test is hoisted out of the loop (the compiler cannot: output byte stores
// may alias the model as far as it knows).
template <bool kPow2, bool kShifty>
void encode_static_loop(const int32_t* symbols, std::size_t n, const StaticModel& model,
                        RangeEncoder& enc) {
  const unsigned bits = kPow2 ? static_cast<unsigned>(model.pow2_bits()) : 0;
  enc.encode_static_run<kPow2, kShifty>(symbols, n, model.cumulative(), static_cast<uint32_t>(model.size()),
                               model.total(), bits, [&](std::size_t i) {
                                 throw_bad_symbol(i, symbols[i], model.size());
                               });
}
double model_entropy_bits(const StaticModel& model) {
  const uint32_t* cum = model.cumulative();
  const double total = model.total();
  double h = 0.0;
  for (std::size_t s = 0; s < model.size(); ++s) {
    const double p = (cum[s + 1] - cum[s]) / total;
    h -= p * std::log2(p);
  }
  return h;
}
}  // namespace

std::vector<uint8_t> encode_static(const int32_t* symbols, std::size_t n, const StaticModel& model) {
  RangeEncoder enc;
  enc.reserve(n / 4 + 64);
  // A step shifts bytes out about (bits it codes) / 8 of the time: the branchless output
  // pays from about 1.5 bits per symbol (measured: 2 symbols at 0.9 bits lose 2x with it, 256
  // at 5.8 bits gain 2x). The model's own entropy estimates it; it picks speed, not bytes.
  const bool shifty = model_entropy_bits(model) >= 1.5;
  if (model.pow2_bits() >= 0)
    shifty ? encode_static_loop<true, true>(symbols, n, model, enc)
           : encode_static_loop<true, false>(symbols, n, model, enc);
  else
    shifty ? encode_static_loop<false, true>(symbols, n, model, enc)
           : encode_static_loop<false, false>(symbols, n, model, enc);
  return enc.finish();
}

void decode_static(const uint8_t* data, std::size_t size, const StaticModel& model, int32_t* out,
                   std::size_t count) {
  RangeDecoder dec(data, size);
  for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(model.decode(dec));
  dec.finish();
}

std::vector<uint8_t> encode_adaptive(const int32_t* symbols, std::size_t n, uint32_t alphabet_size,
                                     uint32_t increment, uint32_t limit) {
  AdaptiveModel model(alphabet_size, increment, limit);
  RangeEncoder enc;
  enc.reserve(n / 4 + 64);
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t s = static_cast<uint32_t>(symbols[i]);
    if (s >= alphabet_size) throw_bad_symbol(i, symbols[i], alphabet_size);
    model.encode(enc, s);
  }
  return enc.finish();
}

void decode_adaptive(const uint8_t* data, std::size_t size, uint32_t alphabet_size,
                     uint32_t increment, uint32_t limit, int32_t* out, std::size_t count) {
  AdaptiveModel model(alphabet_size, increment, limit);
  RangeDecoder dec(data, size);
  for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(model.decode(dec));
  dec.finish();
}

// ---- frequency tables ---------------------------------------------------------------------

namespace {

struct U128 {
  uint64_t hi, lo;
};

U128 mul_wide(uint64_t a, uint64_t b) {  // portable 64 x 64 -> 128 bit product
  const uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32, b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
  const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
  return {p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32), (mid << 32) | (p00 & 0xFFFFFFFFu)};
}

bool less_wide(U128 x, U128 y) { return x.hi < y.hi || (x.hi == y.hi && x.lo < y.lo); }

// floor(a * b / c) for a <= c, c >= 1 and b < 2^32, by binary long multiplication modulo c.
uint64_t mul_div_floor(uint64_t a, uint32_t b, uint64_t c) {
  uint64_t q = 0, r = 0;  // invariant: q * c + r == a * (bits of b seen so far), r < c
  for (int bit = 31; bit >= 0; --bit) {
    q <<= 1;
    if (r >= c - r) {  // 2r >= c, written so nothing overflows
      r -= c - r;
      q += 1;
    } else {
      r += r;
    }
    if ((b >> bit) & 1u) {
      if (r >= c - a) {
        r -= c - a;
        q += 1;
      } else {
        r += a;
      }
    }
  }
  return q;
}

}  // namespace

std::vector<uint32_t> frequencies_from_counts(const uint64_t* counts, std::size_t n,
                                              int total_bits) {
  require(n >= 1, "counts must not be empty");
  require(total_bits <= 31, "total_bits must be <= 31, got " + std::to_string(total_bits));
  uint64_t sum = 0, n_zero = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (counts[i] > ~uint64_t{0} - sum) throw InvalidArgument("counts sum past 2^64");
    sum += counts[i];
    n_zero += counts[i] == 0;
  }
  std::vector<uint32_t> q(n);
  if (total_bits < 0) {
    if (n_zero <= kMaxFrequencyTotal && sum <= kMaxFrequencyTotal - n_zero) {
      for (std::size_t i = 0; i < n; ++i) q[i] = counts[i] == 0 ? 1 : static_cast<uint32_t>(counts[i]);
      return q;
    }
    total_bits = 31;
  }
  require(total_bits >= 0, "total_bits must be >= 0");
  const uint64_t m = uint64_t{1} << total_bits;
  require(n <= m, "cannot give " + std::to_string(n) + " symbols a frequency >= 1 within a total of 2^" +
                      std::to_string(total_bits));
  if (sum == 0) {  // no information: as uniform as integers allow
    for (std::size_t i = 0; i < n; ++i) q[i] = static_cast<uint32_t>(m / n + (i < m % n));
    return q;
  }
  // Zero counts cost nothing in code length, so they get the minimum, 1; the rest of the mass
  // is shared in proportion to the counts (floors), each at least 1.
  const uint64_t mass = m - n_zero;
  uint64_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    uint64_t v = 1;
    if (counts[i] != 0) v = std::max<uint64_t>(1, mul_div_floor(counts[i], static_cast<uint32_t>(mass), sum));
    q[i] = static_cast<uint32_t>(v);
    total += v;
  }
  // Greedy fix-ups: the code length sum c_i * log(1 / q_i) changes by about c_i / (q_i + 1/2)
  // for a +1 step and c_i / (q_i - 1/2) for a -1 step; take the best steps until the sum is
  // exact. Ties go to the lower index, so the table is deterministic.
  if (total < m) {
    auto gain_less = [&](std::size_t a, std::size_t b) {  // gain(a) < gain(b)?
      const U128 x = mul_wide(counts[a], 2 * uint64_t{q[b]} + 1);
      const U128 y = mul_wide(counts[b], 2 * uint64_t{q[a]} + 1);
      if (less_wide(x, y)) return true;
      if (less_wide(y, x)) return false;
      return a > b;
    };
    std::priority_queue<std::size_t, std::vector<std::size_t>, decltype(gain_less)> heap(gain_less);
    for (std::size_t i = 0; i < n; ++i)
      if (counts[i] != 0) heap.push(i);
    for (; total < m; ++total) {  // at most n steps: the floors lose less than 1 each
      const std::size_t i = heap.top();
      heap.pop();
      ++q[i];
      heap.push(i);
    }
  } else if (total > m) {
    auto cost_greater = [&](std::size_t a, std::size_t b) {  // cost(a) > cost(b)?
      const U128 x = mul_wide(counts[a], 2 * uint64_t{q[b]} - 1);
      const U128 y = mul_wide(counts[b], 2 * uint64_t{q[a]} - 1);
      if (less_wide(y, x)) return true;
      if (less_wide(x, y)) return false;
      return a > b;
    };
    std::priority_queue<std::size_t, std::vector<std::size_t>, decltype(cost_greater)> heap(
        cost_greater);
    for (std::size_t i = 0; i < n; ++i)
      if (q[i] > 1) heap.push(i);
    for (; total > m; --total) {  // at most n steps (one per entry raised to 1); n <= m
      const std::size_t i = heap.top();
      heap.pop();
      --q[i];
      if (q[i] > 1) heap.push(i);
    }
  }
  return q;
}

}  // namespace smic
