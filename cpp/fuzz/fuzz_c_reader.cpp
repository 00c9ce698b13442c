// libFuzzer target through the C ABI (issue 31): arbitrary bytes as a collection and as a
// dictionary, read by every C entry point that takes them. Each call gives a known status;
// an output with a capacity is written whole on SMIC_OK and left untouched on
// SMIC_ERR_BUFFER_TOO_SMALL (with *written the size needed); ASan watches exact-size buffers.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "smic/smic.h"

namespace {

void check_status(int status) {
  if (status < SMIC_OK || status > SMIC_ERR_INTERNAL || status == SMIC_ERR_INTERNAL) __builtin_trap();
  if (status != SMIC_OK && smic_last_error()[0] == '\0') __builtin_trap();
}

// An output of `capacity` elements filled with a sentinel: untouched unless the call says SMIC_OK.
template <class T>
void check_untouched(const std::vector<T>& out, int status, T sentinel) {
  if (status == SMIC_OK) return;
  for (const T& v : out)
    if (std::memcmp(&v, &sentinel, sizeof(T)) != 0) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::size_t capacity = size ? data[0] : 0;  // a short capacity, chosen by the input

  char hex[65];
  int embedded = -1;
  check_status(smic_bytes_dictionary_hash(data, size, hex, &embedded));

  smic_dictionary* dictionary = nullptr;
  int status = smic_dictionary_from_bytes(data, size, &dictionary);
  check_status(status);
  if (status == SMIC_OK) {
    std::vector<uint8_t> out(capacity, 0xA5);
    std::size_t written = 0;
    status = smic_dictionary_to_bytes(dictionary, out.data(), out.size(), &written);
    check_status(status);
    check_untouched<uint8_t>(out, status, 0xA5);
    if (status == SMIC_ERR_BUFFER_TOO_SMALL && written <= capacity) __builtin_trap();
  }

  smic_collection* collection = nullptr;
  status = smic_collection_from_bytes(data, size, dictionary, &collection);
  check_status(status);
  if (status == SMIC_OK) {
    std::size_t n = 0, dim = 0, written = 0;
    if (smic_collection_size(collection, &n) != SMIC_OK || smic_collection_dim(collection, &dim) != SMIC_OK)
      __builtin_trap();
    std::vector<char> json(capacity, 'x');
    status = smic_collection_info(collection, json.data(), json.size(), &written);
    check_status(status);
    check_untouched<char>(json, status, 'x');
    if (status == SMIC_OK && (written == 0 || json[written - 1] != '\0')) __builtin_trap();
    unsigned version = 0;
    check_status(smic_collection_format_version(collection, &version));
    const std::size_t stop = n < 8 ? n : 8;
    std::vector<float> items(stop * dim > 0 ? stop * dim - (capacity & 1) : 0, -2.0f);
    status = smic_collection_decode_into(collection, 0, stop, items.data(), items.size(), 1);
    check_status(status);
    check_untouched<float>(items, status, -2.0f);
    smic_search_index* index = nullptr;
    status = smic_search_index_new(collection, 1, &index);
    check_status(status);
    if (status == SMIC_OK) {
      std::vector<float> query(dim, 0.0f);
      query[capacity % dim] = 1.0f;
      const std::size_t k = 1 + capacity % 4;
      std::vector<int64_t> positions(k, -7);
      std::vector<float> scores(k, -7.0f);
      status = smic_search(index, query.data(), 1, dim, k, capacity % 3, 0, 1, positions.data(),
                           scores.data(), k);
      check_status(status);
      if (status == SMIC_OK)
        for (int64_t p : positions)
          if (p < -1 || p >= static_cast<int64_t>(n)) __builtin_trap();
      smic_search_index_free(index);
    }
    // From bytes there is no file to append to.
    std::vector<float> row(dim, 0.5f);
    if (smic_collection_append_in_place(collection, row.data(), 1, dim, nullptr, nullptr, 0, 1) == SMIC_OK)
      __builtin_trap();
    smic_collection_free(collection);
  }
  smic_dictionary_free(dictionary);
  return 0;
}
