// libFuzzer target: open a collection from arbitrary bytes, read items one at a time (last to
// first, then again: the second reads resume from the decoder checkpoints the first ones kept),
// then decode every item at once; only smic exceptions may come out, a read gives the same
// bits every time, and one item decodes as it does in the batch.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "smic/collection.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto col = smic::Collection::from_bytes(std::vector<uint8_t>(data, data + size), nullptr, "<fuzz>");
    const std::size_t n = col.size() < 64 ? col.size() : 64;
    std::vector<std::vector<float>> single(n);
    for (std::size_t i = n; i-- > 0;) {
      try {
        single[i] = col.item(i);
      } catch (const std::exception&) {
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      try {
        if (col.item(i) != single[i]) __builtin_trap();
      } catch (const std::exception&) {
        if (!single[i].empty()) __builtin_trap();  // read once, must read again
      }
    }
    const std::vector<float> all = col.embeddings();
    for (std::size_t i = 0; i < n; ++i) {
      if (single[i].size() != col.dim() ||
          std::memcmp(single[i].data(), all.data() + i * col.dim(), col.dim() * sizeof(float)) != 0)
        __builtin_trap();
    }
  } catch (const std::exception&) {
  }
  return 0;
}
