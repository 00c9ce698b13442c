// libFuzzer target: one item's bytes (as Dictionary.decode takes them) against a fixed small
// dictionary: decode or raise, never crash. The same bytes after a first byte are also decoded
// as a chunk of 1 to 8 items with the remaining-atoms index model (format version 3), and as
// one item refined by a transform-coded layer at a step the first byte picks (greedy levels,
// and dependent quantisation, its state machine and two grids, when that byte has bit 6 set).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "smic/coding_dictionary.hpp"

namespace {
std::shared_ptr<const smic::CodingDictionary> dictionary() {
  static const auto d = [] {
    const std::size_t k = 16, dim = 8;
    std::vector<float> atoms(k * dim);
    for (std::size_t i = 0; i < atoms.size(); ++i) atoms[i] = static_cast<float>((i * 7919) % 23) - 11.0f;
    smic::CodingParams p;
    return std::make_shared<const smic::CodingDictionary>(atoms.data(), k, dim, p,
                                                          smic::AtomPrecision::kFloat16,
                                                          smic::TableCounts::flat(k, p));
  }();
  return d;
}

// The same atoms with a small transform: 2 classes, rank 7, spreads from 2^-6 to 2^-1, flat
// tables (every magnitude and gain codable); levels read as greedy or dependent ones.
std::shared_ptr<const smic::CodingDictionary> make_refined(smic::TransformQuantiser quantiser) {
  {
    const std::size_t dim = 8, rank = 7, classes = 2;
    std::vector<uint16_t> atom_class(16);
    for (std::size_t a = 0; a < atom_class.size(); ++a) atom_class[a] = static_cast<uint16_t>(a % classes);
    std::vector<float> mean(classes * dim, 0.01f), basis(classes * rank * dim, 0.0f);
    std::vector<int16_t> scale(classes * rank);
    for (std::size_t c = 0; c < classes; ++c)
      for (std::size_t j = 0; j < rank; ++j) {
        basis[(c * rank + j) * dim + (j + c) % dim] = 1.0f;
        scale[c * rank + j] = static_cast<int16_t>(-4 - 3 * static_cast<int>(j));
      }
    auto t = std::make_shared<const smic::TransformModel>(dim, rank, classes, atom_class, mean.data(),
                                                          basis.data(), scale, 0.45, 0.05,
                                                          std::vector<uint64_t>{}, std::vector<uint64_t>{},
                                                          0.1, quantiser);
    return dictionary()->with_transform(t);
  }
}

std::shared_ptr<const smic::CodingDictionary> refined(bool dependent) {
  static const auto greedy = make_refined(smic::TransformQuantiser::kGreedy);
  static const auto two_grids = make_refined(smic::TransformQuantiser::kDependent);
  return dependent ? two_grids : greedy;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto d = dictionary();
  std::vector<float> out(d->dim());
  try {
    d->decode_one(data, size, out.data());
  } catch (const std::exception&) {
  }
  if (size >= 1) {
    const double step = 1.0 / (2 + data[0] % 64);  // 1/2 to 1/65
    try {
      refined((data[0] & 64) != 0)->decode_one(data + 1, size - 1, out.data(), step);
    } catch (const std::exception&) {
    }
    const std::size_t n = 1 + data[0] % 8, rest = size - 1;
    const uint64_t offsets[2] = {0, rest};
    try {
      d->decode_items(data + 1, rest, offsets, 2, n, n, 0, n, 1, smic::IndexModel::kRemaining);
    } catch (const std::exception&) {
    }
  }
  return 0;
}
