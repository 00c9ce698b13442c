// libFuzzer target: one item's bytes (as Dictionary.decode takes them) against a fixed small
// dictionary: decode or raise, never crash.
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
  return 0;
}
