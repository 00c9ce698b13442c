// libFuzzer target: bytes become an embedding; encoding it then decoding gives exactly what
// the batch path reconstructs for the same item (the round trip must be exact); the item's
// symbols coded with the remaining-atoms index model decode to the same item; and encoding
// with the atoms screened (int8 bounds, exact products for the candidates) gives the bytes of
// the full product, for this dictionary and for one 300 values deep (two depth blocks and a
// tail), whatever the embedding's scale and shape. A one-atom dictionary with skewed tables
// (every atom priced: the entropy-constrained choice) round-trips and ignores screening too.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "smic/coding_dictionary.hpp"
#include "smic/omp.hpp"

namespace {

std::shared_ptr<const smic::CodingDictionary> make_dictionary(std::size_t k, std::size_t dim) {
  std::vector<float> atoms(k * dim);
  for (std::size_t i = 0; i < atoms.size(); ++i) atoms[i] = std::sin(static_cast<float>(i) * 1.7f);
  smic::CodingParams p;
  p.s_max = 3;
  return std::make_shared<const smic::CodingDictionary>(atoms.data(), k, dim, p,
                                                        smic::AtomPrecision::kFloat16,
                                                        smic::TableCounts::flat(k, p));
}

// One atom per item, rd_lambda 0.05, first-symbol counts falling as 1/j: cheap and dear atoms.
std::shared_ptr<const smic::CodingDictionary> make_one_atom_dictionary(std::size_t k, std::size_t dim) {
  std::vector<float> atoms(k * dim);
  for (std::size_t i = 0; i < atoms.size(); ++i) atoms[i] = std::cos(static_cast<float>(i) * 0.37f);
  smic::CodingParams p;
  p.s_max = 1;
  p.rd_lambda = 0.05;
  smic::TableCounts counts = smic::TableCounts::flat(k, p);
  for (std::size_t j = 0; j < counts.first.size(); ++j) counts.first[j] = 1 + 1000 / (j + 1);
  return std::make_shared<const smic::CodingDictionary>(atoms.data(), k, dim, p,
                                                        smic::AtomPrecision::kFloat16, counts);
}

// Traps unless the item's bytes decode to what the batch path reconstructs for it.
void check_round_trip(const smic::CodingDictionary& d, const float* x, std::size_t dim) {
  const std::vector<uint8_t> bytes = d.encode_one(x);
  std::vector<float> decoded(dim), unit(dim), expected(dim);
  d.decode_one(bytes.data(), bytes.size(), decoded.data());
  smic::CodingDictionary::normalize(x, 1, dim, unit.data());
  d.reconstruct(d.choose(unit.data(), 1, 1), expected.data());
  if (std::memcmp(decoded.data(), expected.data(), dim * sizeof(float)) != 0) __builtin_trap();
}

// Traps unless screened and full encodes of x give the same bytes.
void check_screening(const smic::CodingDictionary& d, const float* x) {
  smic::set_atom_screening("on");
  const std::vector<uint8_t> screened = d.encode_one(x);
  smic::set_atom_screening("off");
  const std::vector<uint8_t> full = d.encode_one(x);
  smic::set_atom_screening("auto");
  if (screened != full) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::size_t k = 16, dim = 8, deep_dim = 300;
  static const auto d = make_dictionary(k, dim);
  static const auto deep = make_dictionary(48, deep_dim);
  static const auto one_atom = make_one_atom_dictionary(48, deep_dim);
  if (size < dim * sizeof(float)) return 0;
  std::vector<float> x(dim);
  std::memcpy(x.data(), data, dim * sizeof(float));
  for (float v : x)
    if (!std::isfinite(v) || std::fabs(v) > 1e30f) return 0;
  const std::vector<uint8_t> bytes = d->encode_one(x.data());
  if (bytes.size() > d->encode_bound()) __builtin_trap();
  std::vector<float> decoded(dim), unit(dim), expected(dim);
  d->decode_one(bytes.data(), bytes.size(), decoded.data());
  smic::CodingDictionary::normalize(x.data(), 1, dim, unit.data());
  d->reconstruct(d->choose(unit.data(), 1, 1), expected.data());
  if (std::memcmp(decoded.data(), expected.data(), dim * sizeof(float)) != 0) __builtin_trap();
  const smic::ItemCodes codes = d->choose(unit.data(), 1, 1);
  const smic::EncodedItems coded = d->encode_items(codes, 1, 1, smic::IndexModel::kRemaining);
  const smic::ItemCodes back = d->decode_items(coded.data.data(), coded.data.size(), coded.offsets.data(),
                                               coded.offsets.size(), 1, 1, 0, 1, 1,
                                               smic::IndexModel::kRemaining);
  if (back.counts != codes.counts || back.rest_index != codes.rest_index) __builtin_trap();
  d->reconstruct(back, decoded.data());
  if (std::memcmp(decoded.data(), expected.data(), dim * sizeof(float)) != 0) __builtin_trap();
  check_screening(*d, x.data());
  if (size >= deep_dim * sizeof(float)) {
    std::vector<float> y(deep_dim);
    std::memcpy(y.data(), data, deep_dim * sizeof(float));
    for (float v : y)
      if (!std::isfinite(v) || std::fabs(v) > 1e30f) return 0;
    check_screening(*deep, y.data());
    check_round_trip(*one_atom, y.data(), deep_dim);
    check_screening(*one_atom, y.data());
  }
  return 0;
}
