// libFuzzer target through the C ABI: an embedding and an output capacity from the input;
// smic_encode either fits (and then decodes to the item the batch path reconstructs) or says
// SMIC_ERR_BUFFER_TOO_SMALL with the size needed and leaves the buffer untouched; it never
// writes past `capacity` (ASan watches the exact-size heap buffer).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "smic/smic.h"
#include "smic/coding_dictionary.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static smic_dictionary* dictionary = [] {
    const std::size_t k = 12, dim = 6;
    std::vector<float> atoms(k * dim);
    for (std::size_t i = 0; i < atoms.size(); ++i) atoms[i] = static_cast<float>((i * 37) % 11) - 5.0f;
    smic::CodingParams p;
    const smic::CodingDictionary d(atoms.data(), k, dim, p, smic::AtomPrecision::kFloat16,
                                   smic::TableCounts::flat(k, p));
    const std::vector<uint8_t> bytes = d.to_bytes();
    smic_dictionary* out = nullptr;
    if (smic_dictionary_from_bytes(bytes.data(), bytes.size(), &out) != SMIC_OK) __builtin_trap();
    return out;
  }();
  static smic_encoder* encoder = [] {
    smic_encoder* e = nullptr;
    if (smic_encoder_new(dictionary, &e) != SMIC_OK) __builtin_trap();
    return e;
  }();
  const std::size_t dim = 6;
  if (size < 1 + dim * sizeof(float)) return 0;
  const std::size_t capacity = data[0] % 48;
  float x[dim];
  std::memcpy(x, data + 1, sizeof x);
  std::vector<uint8_t> out(capacity ? capacity : 1, 0xAB);
  std::size_t written = 12345;
  const int status = smic_encode(encoder, x, capacity ? out.data() : nullptr, capacity, &written);
  if (status == SMIC_OK) {
    if (written > capacity) __builtin_trap();
    std::vector<float> decoded(dim);
    if (smic_decode(dictionary, out.data(), written, decoded.data()) != SMIC_OK) __builtin_trap();
  } else if (status == SMIC_ERR_BUFFER_TOO_SMALL) {
    if (written <= capacity) __builtin_trap();
    for (std::size_t i = 0; i < capacity; ++i)
      if (out[i] != 0xAB) __builtin_trap();
  } else if (status != SMIC_ERR_INVALID_ARGUMENT) {  // NaN / infinity input
    __builtin_trap();
  }
  return 0;
}
