// libFuzzer target: open a collection from arbitrary bytes, then decode every item and each
// item alone; only smic exceptions may come out, and one item decodes as it does in a batch.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "smic/collection.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto col = smic::Collection::from_bytes(std::vector<uint8_t>(data, data + size), nullptr, "<fuzz>");
    const std::vector<float> all = col.embeddings();
    for (std::size_t i = 0; i < col.size() && i < 64; ++i) {
      const std::vector<float> one = col.item(i);
      if (std::memcmp(one.data(), all.data() + i * col.dim(), col.dim() * sizeof(float)) != 0)
        __builtin_trap();
    }
  } catch (const std::exception&) {
  }
  return 0;
}
