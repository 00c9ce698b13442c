// The range coder (smic/range_coder.hpp): round trips, the pinned bytes of tests/golden,
// a reference encoder written from the format's definition, and the entropy bound.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "smic/range_coder.hpp"
#include "support.hpp"

namespace {

const std::vector<int32_t> kGoldenSymbols = {0, 1, 2, 3, 2, 1, 0, 0, 0, 3, 3, 1, 2, 0, 1, 1};

std::vector<int32_t> zipf(std::size_t n, uint32_t alphabet, uint64_t seed) {
  std::vector<double> w(alphabet);
  for (uint32_t s = 0; s < alphabet; ++s) w[s] = 1.0 / (s + 1.0);
  std::discrete_distribution<int32_t> dist(w.begin(), w.end());
  std::mt19937_64 rng(seed);
  std::vector<int32_t> out(n);
  for (auto& s : out) s = dist(rng);
  return out;
}

double entropy_bits(const std::vector<int32_t>& symbols, uint32_t alphabet) {
  std::vector<double> counts(alphabet, 0.0);
  for (const int32_t s : symbols) counts[static_cast<std::size_t>(s)] += 1;
  double bits = 0;
  const double n = static_cast<double>(symbols.size());
  for (const double c : counts)
    if (c > 0) bits -= c * std::log2(c / n);
  return bits;
}

// The format from its definition: low as a big integer (bytes, most significant first) that
// never wraps, so no carry logic; the output is low after the final 8-byte flush.
std::vector<uint8_t> reference_encode(const std::vector<int32_t>& symbols, const std::vector<uint32_t>& freqs) {
  std::vector<uint8_t> low(8, 0);  // big-endian digits; grows by one byte per shift
  uint64_t range = ~uint64_t{0};
  uint64_t total = 0;
  for (const uint32_t f : freqs) total += f;
  const auto add_at_end = [&](unsigned __int128 value) {  // low += value (in the last 8 bytes)
    std::size_t i = low.size();
    unsigned __int128 carry = value;
    while (carry != 0 && i > 0) {
      --i;
      const unsigned __int128 sum = low[i] + (carry & 0xFF);
      low[i] = static_cast<uint8_t>(sum);
      carry = (carry >> 8) + (sum >> 8);
    }
  };
  for (const int32_t s : symbols) {
    uint64_t start = 0;
    for (int32_t j = 0; j < s; ++j) start += freqs[static_cast<std::size_t>(j)];
    const uint64_t r = range / total;
    add_at_end(static_cast<unsigned __int128>(r) * start);
    range = r * freqs[static_cast<std::size_t>(s)];
    while (range < (uint64_t{1} << 56)) {
      low.push_back(0);
      range <<= 8;
    }
  }
  // Leading byte(s): the stream is shifts + 8 bytes, the top digits beyond that are the carry
  // out of the first byte, which a valid coder never produces.
  return low;
}

}  // namespace

TEST_CASE("the coder writes the golden bytes of tests/golden and decodes them") {
  const std::vector<uint32_t> pow2 = {5, 4, 3, 4}, odd = {5, 4, 3, 7};
  const smic::StaticModel m16(pow2.data(), pow2.size()), m19(odd.data(), odd.size());
  CHECK(m16.pow2_bits() == 4);
  CHECK(m19.pow2_bits() == -1);
  const auto static16 = smic::encode_static(kGoldenSymbols.data(), kGoldenSymbols.size(), m16);
  const auto static19 = smic::encode_static(kGoldenSymbols.data(), kGoldenSymbols.size(), m19);
  const auto adaptive = smic::encode_adaptive(kGoldenSymbols.data(), kGoldenSymbols.size(), 4, 24, 128);
  CHECK(static16 == smic_test::read_bytes(smic_test::golden_path("range_coder_static_pow2.bin")));
  CHECK(static19 == smic_test::read_bytes(smic_test::golden_path("range_coder_static_odd.bin")));
  CHECK(adaptive == smic_test::read_bytes(smic_test::golden_path("range_coder_adaptive.bin")));
  std::vector<int32_t> out(kGoldenSymbols.size());
  smic::decode_static(static16.data(), static16.size(), m16, out.data(), out.size());
  CHECK(out == kGoldenSymbols);
  smic::decode_static(static19.data(), static19.size(), m19, out.data(), out.size());
  CHECK(out == kGoldenSymbols);
  smic::decode_adaptive(adaptive.data(), adaptive.size(), 4, 24, 128, out.data(), out.size());
  CHECK(out == kGoldenSymbols);
  CHECK(static16 == reference_encode(kGoldenSymbols, pow2));
  CHECK(static19 == reference_encode(kGoldenSymbols, odd));
}

TEST_CASE("static coding equals the reference encoder, carries included") {
  std::mt19937_64 rng(4);
  for (int trial = 0; trial < 60; ++trial) {
    CAPTURE(trial);
    const uint32_t alphabet = 1 + static_cast<uint32_t>(rng() % 40);
    const unsigned bits = 1 + static_cast<unsigned>(rng() % 26);
    std::vector<uint32_t> freqs(alphabet);
    for (auto& f : freqs) f = 1 + static_cast<uint32_t>(rng() % ((uint64_t{1} << bits) - 1));
    uint64_t sum = 0;
    for (auto f : freqs) sum += f;
    if (sum > smic::kMaxFrequencyTotal) continue;
    std::vector<int32_t> symbols(rng() % 300);
    for (auto& s : symbols) s = static_cast<int32_t>(rng() % alphabet);
    const smic::StaticModel model(freqs.data(), freqs.size());
    const auto bytes = smic::encode_static(symbols.data(), symbols.size(), model);
    CHECK(bytes == reference_encode(symbols, freqs));
    std::vector<int32_t> back(symbols.size());
    smic::decode_static(bytes.data(), bytes.size(), model, back.data(), back.size());
    CHECK(back == symbols);
  }
  // Symbols at the top of the range push carries through runs of 0xFF bytes.
  const std::vector<uint32_t> edge = {1, (1u << 31) - 2, 1};
  const smic::StaticModel model(edge.data(), edge.size());
  std::discrete_distribution<int32_t> pick({0.3, 0.4, 0.3});
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int32_t> symbols(300);
    for (auto& s : symbols) s = pick(rng);
    const auto bytes = smic::encode_static(symbols.data(), symbols.size(), model);
    CHECK(bytes == reference_encode(symbols, edge));
    std::vector<int32_t> back(symbols.size());
    smic::decode_static(bytes.data(), bytes.size(), model, back.data(), back.size());
    CHECK(back == symbols);
  }
}

TEST_CASE("both byte outputs and the member path write the reference bytes, carries included") {
  // encode_static writes a step's bytes in one store for a model of >= 1.5 bits of entropy
  // and byte by byte below; RangeEncoder::encode (the member path) always byte by byte, into
  // a buffer grown from nothing. Top-of-range symbols push carries through 0xFF runs.
  std::mt19937_64 rng(9);
  const std::vector<std::vector<uint32_t>> models = {
      {1, (1u << 31) - 2, 1},                                      // ~0 bits: byte loop
      {1u << 29, 1u << 29, 1u << 29, (1u << 29) - 2, 1, 1},         // ~2 bits: one store
      {3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59}, // ~3.8 bits, odd total
  };
  for (std::size_t m = 0; m < models.size(); ++m) {
    CAPTURE(m);
    const auto& freqs = models[m];
    const smic::StaticModel model(freqs.data(), freqs.size());
    std::vector<double> w(freqs.size(), 1.0);
    w.back() = w.size();  // the top symbol often: carries
    std::discrete_distribution<int32_t> pick(w.begin(), w.end());
    for (const std::size_t n : {0u, 1u, 7u, 300u, 20000u}) {
      CAPTURE(n);
      std::vector<int32_t> symbols(n);
      for (auto& s : symbols) s = pick(rng);
      const auto reference = reference_encode(symbols, freqs);
      CHECK(smic::encode_static(symbols.data(), n, model) == reference);
      smic::RangeEncoder enc;
      for (const int32_t s : symbols) enc.encode(model.cumulative()[s],
                                                 model.cumulative()[s + 1] - model.cumulative()[s],
                                                 model.total());
      CHECK(enc.finish() == reference);
    }
  }
}

TEST_CASE("static and adaptive rates stay near the entropy") {
  const uint32_t alphabet = 256;
  const auto symbols = zipf(200000, alphabet, 11);
  const double h = entropy_bits(symbols, alphabet);
  std::vector<uint64_t> counts(alphabet, 0);
  for (const int32_t s : symbols) ++counts[static_cast<std::size_t>(s)];
  const auto freqs = smic::frequencies_from_counts(counts.data(), alphabet);
  const smic::StaticModel exact(freqs.data(), freqs.size());
  const auto bytes = smic::encode_static(symbols.data(), symbols.size(), exact);
  CHECK(bytes.size() * 8.0 <= h * 1.001 + 64);
  CHECK(bytes.size() * 8.0 >= h * 0.999);  // no code beats the empirical entropy by much
  const auto f24 = smic::frequencies_from_counts(counts.data(), alphabet, 24);
  uint64_t total = 0;
  for (auto f : f24) {
    CHECK(f >= 1);
    total += f;
  }
  CHECK(total == (uint64_t{1} << 24));
  const smic::StaticModel scaled(f24.data(), f24.size());
  CHECK(smic::encode_static(symbols.data(), symbols.size(), scaled).size() * 8.0 <= h * 1.001 + 64);
  const auto adaptive = smic::encode_adaptive(symbols.data(), symbols.size(), alphabet, 24, 1u << 18);
  CHECK(adaptive.size() * 8.0 <= h * 1.01);
  std::vector<int32_t> back(symbols.size());
  smic::decode_adaptive(adaptive.data(), adaptive.size(), alphabet, 24, 1u << 18, back.data(), back.size());
  CHECK(back == symbols);
}

TEST_CASE("the decoder refuses truncated, extended and corrupt streams with DecodeError") {
  const std::vector<uint32_t> freqs = {7, 1, 1, 1, 5};
  const smic::StaticModel model(freqs.data(), freqs.size());
  const auto symbols = zipf(2000, 5, 3);
  const auto bytes = smic::encode_static(symbols.data(), symbols.size(), model);
  std::vector<int32_t> out(symbols.size());
  for (std::size_t n = 0; n < bytes.size(); n += 13) {
    CAPTURE(n);
    CHECK_THROWS_AS(smic::decode_static(bytes.data(), n, model, out.data(), out.size()), smic::DecodeError);
  }
  auto longer = bytes;
  longer.push_back(0);
  CHECK_THROWS_AS(smic::decode_static(longer.data(), longer.size(), model, out.data(), out.size()),
                  smic::DecodeError);
  // Asking for fewer symbols than were coded leaves bytes over: refused too.
  CHECK_THROWS_AS(smic::decode_static(bytes.data(), bytes.size(), model, out.data(), out.size() - 1),
                  smic::DecodeError);
  // A flipped byte decodes to other symbols or is refused, never reads out of bounds (ASan).
  std::size_t refused_or_changed = 0;
  for (std::size_t i = 0; i < bytes.size(); i += 17) {
    auto bad = bytes;
    bad[i] ^= 0x5A;
    try {
      smic::decode_static(bad.data(), bad.size(), model, out.data(), out.size());
      refused_or_changed += out != symbols;
    } catch (const smic::DecodeError&) {
      ++refused_or_changed;
    }
  }
  CHECK(refused_or_changed == (bytes.size() + 16) / 17);
}

TEST_CASE("bad models and symbols are InvalidArgument") {
  const std::vector<uint32_t> zero = {3, 0, 2};
  CHECK_THROWS_AS(smic::StaticModel(zero.data(), zero.size()), smic::InvalidArgument);
  CHECK_THROWS_AS(smic::StaticModel(zero.data(), 0), smic::InvalidArgument);
  const std::vector<uint32_t> huge = {1u << 31, 1};
  CHECK_THROWS_AS(smic::StaticModel(huge.data(), huge.size()), smic::InvalidArgument);
  const std::vector<uint32_t> ok = {1, 2};
  const smic::StaticModel model(ok.data(), ok.size());
  const std::vector<int32_t> bad = {0, 1, 2};
  CHECK_THROWS_WITH_AS(smic::encode_static(bad.data(), bad.size(), model), doctest::Contains("2"),
                       smic::InvalidArgument);
  const std::vector<int32_t> negative = {-1};
  CHECK_THROWS_AS(smic::encode_static(negative.data(), 1, model), smic::InvalidArgument);
  CHECK_THROWS_AS(smic::AdaptiveModel(0), smic::InvalidArgument);
  CHECK_THROWS_AS(smic::AdaptiveModel(4, 100, 128), smic::InvalidArgument);
  smic::RangeEncoder enc;
  CHECK_THROWS_AS(enc.encode(3, 0, 10), smic::InvalidArgument);
  CHECK_THROWS_AS(enc.encode(8, 3, 10), smic::InvalidArgument);
  const uint8_t few[4] = {0, 0, 0, 0};
  CHECK_THROWS_AS(smic::RangeDecoder(few, 4), smic::DecodeError);
}
