// libFuzzer target: one item's bytes (as Dictionary.decode takes them) against a fixed small
// dictionary: decode or raise, never crash. The same bytes after a first byte are also decoded
// as a chunk of 1 to 8 items with the remaining-atoms index model (format version 3).
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
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto d = dictionary();
  std::vector<float> out(d->dim());
  try {
    d->decode_one(data, size, out.data());
  } catch (const std::exception&) {
  }
  if (size >= 1) {
    const std::size_t n = 1 + data[0] % 8, rest = size - 1;
    const uint64_t offsets[2] = {0, rest};
    try {
      d->decode_items(data + 1, rest, offsets, 2, n, n, 0, n, 1, smic::IndexModel::kRemaining);
    } catch (const std::exception&) {
    }
  }
  return 0;
}
