// The C ABI (smic/smic.h) end to end, through libsmic_c as a C program links it: write, open,
// decode, encode and decode single items, appends; NULL, zero and short-buffer arguments and
// damaged files give statuses and messages, never a crash (run it under ASan/UBSan too).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "smic/smic.h"
#include "support.hpp"

namespace {

constexpr std::size_t kDim = 16;

// A dictionary handle from the core's bytes (the C ABI has no dictionary learning yet).
smic_dictionary* c_dictionary(uint64_t seed = 1) {
  const auto bytes = smic_test::small_dictionary(24, kDim, seed)->to_bytes();
  smic_dictionary* d = nullptr;
  REQUIRE(smic_dictionary_from_bytes(bytes.data(), bytes.size(), &d) == SMIC_OK);
  REQUIRE(d != nullptr);
  return d;
}

std::string last_error() { return smic_last_error(); }

}  // namespace

TEST_CASE("library: version and status names") {
  CHECK(smic_version() == SMIC_VERSION_NUMBER);
  CHECK(std::string(smic_version_string()) ==
        std::to_string(SMIC_VERSION_MAJOR) + "." + std::to_string(SMIC_VERSION_MINOR) + "." +
            std::to_string(SMIC_VERSION_PATCH));
  CHECK(std::string(smic_error_name(SMIC_OK)) == "SMIC_OK");
  CHECK(std::string(smic_error_name(SMIC_ERR_FORMAT)) == "SMIC_ERR_FORMAT");
  CHECK(std::string(smic_error_name(SMIC_ERR_BUFFER_TOO_SMALL)) == "SMIC_ERR_BUFFER_TOO_SMALL");
  CHECK(std::string(smic_error_name(-5)) == "SMIC_ERR_UNKNOWN");
  CHECK(std::string(smic_error_name(9999)) == "SMIC_ERR_UNKNOWN");
}

TEST_CASE("write, open, decode and find through the C ABI") {
  smic_dictionary* d = c_dictionary();
  size_t dim = 0, n_atoms = 0;
  CHECK(smic_dictionary_dim(d, &dim) == SMIC_OK);
  CHECK(smic_dictionary_n_atoms(d, &n_atoms) == SMIC_OK);
  CHECK(dim == kDim);
  CHECK(n_atoms == 24);
  char hex[65];
  std::memset(hex, 'x', sizeof hex);
  CHECK(smic_dictionary_hash(d, hex) == SMIC_OK);
  CHECK(std::strlen(hex) == 64);

  const std::size_t n = 300;
  const auto x = smic_test::unit_rows(n, kDim, 81);
  std::vector<std::string> id_text;
  for (std::size_t i = 0; i < n; ++i) id_text.push_back("item-" + std::to_string(i));
  std::vector<const char*> ids;
  for (const auto& s : id_text) ids.push_back(s.c_str());
  smic_test::TempDir dir;
  const std::string path = dir.file("c.smic");
  REQUIRE(smic_collection_write(path.c_str(), x.data(), n, kDim, d, ids.data(), 1, 64) == SMIC_OK);

  smic_collection* c = nullptr;
  REQUIRE(smic_collection_open(path.c_str(), nullptr, &c) == SMIC_OK);
  size_t size = 0, cdim = 0;
  CHECK(smic_collection_size(c, &size) == SMIC_OK);
  CHECK(smic_collection_dim(c, &cdim) == SMIC_OK);
  CHECK(size == n);
  CHECK(cdim == kDim);
  const char* id = nullptr;
  CHECK(smic_collection_id(c, 123, &id) == SMIC_OK);
  CHECK(std::string(id) == "item-123");
  size_t where = 0;
  CHECK(smic_collection_find(c, "item-250", &where) == SMIC_OK);
  CHECK(where == 250);
  CHECK(smic_collection_find(c, "nope", &where) == SMIC_ERR_NOT_FOUND);
  CHECK(where == 250);  // outputs untouched on failure

  std::vector<float> all(n * kDim);
  CHECK(smic_collection_decode(c, 0, n, all.data()) == SMIC_OK);
  for (std::size_t i = 0; i < n; i += 29) {
    double norm = 0, cosv = 0;
    for (std::size_t j = 0; j < kDim; ++j) {
      norm += double(all[i * kDim + j]) * all[i * kDim + j];
      cosv += double(all[i * kDim + j]) * x[i * kDim + j];
    }
    CHECK(norm == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(cosv > 0.3);
  }
  // A single item encoded with smic_encode decodes to what the collection holds for it.
  smic_encoder* e = nullptr;
  REQUIRE(smic_encoder_new(d, &e) == SMIC_OK);
  size_t bound = 0;
  CHECK(smic_encode_bound(d, &bound) == SMIC_OK);
  std::vector<uint8_t> buf(bound);
  std::vector<float> one(kDim);
  for (std::size_t i : {0, 1, 77, 299}) {
    size_t written = 0;
    REQUIRE(smic_encode(e, &x[i * kDim], buf.data(), buf.size(), &written) == SMIC_OK);
    CHECK(written >= 1);
    CHECK(written <= bound);
    CHECK(smic_decode(d, buf.data(), written, one.data()) == SMIC_OK);
    CHECK(std::equal(one.begin(), one.end(), all.begin() + static_cast<std::ptrdiff_t>(i * kDim)));
  }
  // The collection's dictionary is the one it was written with.
  smic_dictionary* cd = nullptr;
  CHECK(smic_collection_dictionary(c, &cd) == SMIC_OK);
  char hex2[65];
  CHECK(smic_dictionary_hash(cd, hex2) == SMIC_OK);
  CHECK(std::string(hex) == hex2);

  // From bytes (copied: the buffer may go away).
  smic_collection* c2 = nullptr;
  {
    auto bytes = smic_test::read_bytes(path);
    REQUIRE(smic_collection_from_bytes(bytes.data(), bytes.size(), nullptr, &c2) == SMIC_OK);
    std::fill(bytes.begin(), bytes.end(), 0);
  }
  std::vector<float> again(n * kDim);
  CHECK(smic_collection_decode(c2, 0, n, again.data()) == SMIC_OK);
  CHECK(again == all);

  smic_encoder_free(e);
  smic_dictionary_free(cd);
  smic_collection_free(c2);
  smic_collection_free(c);
  smic_dictionary_free(d);
}

TEST_CASE("shared dictionaries, appends and replace through the C ABI") {
  smic_dictionary* d = c_dictionary();
  smic_dictionary* other = c_dictionary(7);
  const auto x = smic_test::unit_rows(60, kDim, 82);
  smic_test::TempDir dir;
  const std::string path = dir.file("s.smic"), dpath = dir.file("s.smicd");
  REQUIRE(smic_collection_write(path.c_str(), x.data(), 40, kDim, d, nullptr, 0, 0) == SMIC_OK);
  CHECK(smic_dictionary_save(d, dpath.c_str()) == SMIC_OK);
  smic_collection* c = nullptr;
  CHECK(smic_collection_open(path.c_str(), nullptr, &c) == SMIC_ERR_DICTIONARY_MISMATCH);
  CHECK(c == nullptr);
  CHECK_FALSE(last_error().empty());
  CHECK(smic_collection_open(path.c_str(), other, &c) == SMIC_ERR_DICTIONARY_MISMATCH);
  smic_dictionary* loaded = nullptr;
  REQUIRE(smic_dictionary_load(dpath.c_str(), &loaded) == SMIC_OK);
  REQUIRE(smic_collection_open(path.c_str(), loaded, &c) == SMIC_OK);
  std::vector<float> before(40 * kDim);
  CHECK(smic_collection_decode(c, 0, 40, before.data()) == SMIC_OK);
  smic_collection_free(c);

  REQUIRE(smic_collection_append(path.c_str(), x.data() + 40 * kDim, 20, kDim, nullptr, 0, 0, loaded) ==
          SMIC_OK);
  REQUIRE(smic_collection_open(path.c_str(), loaded, &c) == SMIC_OK);
  size_t size = 0;
  CHECK(smic_collection_size(c, &size) == SMIC_OK);
  CHECK(size == 60);
  const char* id = nullptr;
  CHECK(smic_collection_id(c, 59, &id) == SMIC_OK);
  CHECK(std::string(id) == "59");
  std::vector<float> after(60 * kDim);
  CHECK(smic_collection_decode(c, 0, 60, after.data()) == SMIC_OK);
  CHECK(std::equal(before.begin(), before.end(), after.begin()));
  smic_collection_free(c);
  // An existing id: refused without replace, replaced with it.
  const char* dup[] = {"3"};
  CHECK(smic_collection_append(path.c_str(), x.data(), 1, kDim, dup, 0, 0, loaded) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_append(path.c_str(), x.data() + 59 * kDim, 1, kDim, dup, 1, 0, loaded) == SMIC_OK);
  REQUIRE(smic_collection_open(path.c_str(), loaded, &c) == SMIC_OK);
  CHECK(smic_collection_size(c, &size) == SMIC_OK);
  CHECK(size == 60);
  size_t where = 0;
  CHECK(smic_collection_find(c, "3", &where) == SMIC_OK);
  CHECK(where == 59);
  smic_collection_free(c);
  smic_dictionary_free(loaded);
  smic_dictionary_free(other);
  smic_dictionary_free(d);
}

TEST_CASE("NULL, zero sizes and short buffers give statuses, and outputs stay untouched") {
  smic_dictionary* d = c_dictionary();
  const auto x = smic_test::unit_rows(4, kDim, 83);
  smic_dictionary* nd = reinterpret_cast<smic_dictionary*>(0x1);  // must stay as it is
  CHECK(smic_dictionary_load(nullptr, &nd) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(nd == reinterpret_cast<smic_dictionary*>(0x1));
  CHECK(smic_dictionary_load("x.smicd", nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_dictionary_from_bytes(nullptr, 10, &nd) == SMIC_ERR_INVALID_ARGUMENT);
  const uint8_t zero[1] = {0};
  nd = nullptr;
  CHECK(smic_dictionary_from_bytes(zero, 0, &nd) == SMIC_ERR_FORMAT);
  CHECK(nd == nullptr);
  CHECK(smic_dictionary_save(nullptr, "x") == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_dictionary_save(d, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  size_t v = 7;
  CHECK(smic_dictionary_dim(nullptr, &v) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_dictionary_dim(d, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_dictionary_n_atoms(nullptr, &v) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_dictionary_hash(nullptr, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_encode_bound(nullptr, &v) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(v == 7);
  CHECK(std::string(smic_last_error()).find("NULL") != std::string::npos);

  smic_encoder* e = nullptr;
  CHECK(smic_encoder_new(nullptr, &e) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_encoder_new(d, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  REQUIRE(smic_encoder_new(d, &e) == SMIC_OK);
  size_t written = 0;
  std::vector<uint8_t> big(256, 0xAB);
  REQUIRE(smic_encode(e, x.data(), big.data(), big.size(), &written) == SMIC_OK);
  const size_t need = written;
  // Short buffers: BUFFER_TOO_SMALL, the size needed, nothing written.
  for (size_t capacity = 0; capacity < need; ++capacity) {
    std::vector<uint8_t> out(capacity + 1, 0xCD);
    size_t got = 0;
    CHECK(smic_encode(e, x.data(), capacity ? out.data() : nullptr, capacity, &got) ==
          SMIC_ERR_BUFFER_TOO_SMALL);
    CHECK(got == need);
    for (uint8_t b : out) CHECK(b == 0xCD);
  }
  CHECK(smic_encode(nullptr, x.data(), big.data(), big.size(), &written) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_encode(e, nullptr, big.data(), big.size(), &written) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_encode(e, x.data(), big.data(), big.size(), nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  std::vector<float> nan(kDim, 0.1f);
  nan[2] = NAN;
  CHECK(smic_encode(e, nan.data(), big.data(), big.size(), &written) == SMIC_ERR_INVALID_ARGUMENT);
  // Decoding: NULL, empty and damaged bytes.
  std::vector<float> out(kDim, 5.0f);
  CHECK(smic_decode(nullptr, big.data(), need, out.data()) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_decode(d, nullptr, need, out.data()) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_decode(d, big.data(), need, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_decode(d, big.data(), 0, out.data()) != SMIC_OK);
  for (size_t n = 0; n < need; ++n) CHECK(smic_decode(d, big.data(), n, out.data()) == SMIC_ERR_FORMAT);
  for (float f : out) CHECK(f == 5.0f);
  // Refined coding needs a transform: this dictionary has none.
  CHECK(smic_encode_bound_refined(d, 0.05, &v) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_encode_refined(e, x.data(), 0.05, big.data(), big.size(), &written) == SMIC_ERR_INVALID_ARGUMENT);

  // Collections.
  smic_collection* c = nullptr;
  CHECK(smic_collection_open(nullptr, nullptr, &c) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_open("x.smic", nullptr, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_from_bytes(nullptr, 5, nullptr, &c) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_from_bytes(zero, 0, nullptr, &c) == SMIC_ERR_FORMAT);
  CHECK(smic_collection_size(nullptr, &v) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_dim(nullptr, &v) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_decode(nullptr, 0, 1, out.data()) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_find(nullptr, "a", &v) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_dictionary(nullptr, &nd) == SMIC_ERR_INVALID_ARGUMENT);
  smic_test::TempDir dir;
  const std::string path = dir.file("w.smic");
  CHECK(smic_collection_write(nullptr, x.data(), 4, kDim, d, nullptr, 1, 0) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_write(path.c_str(), nullptr, 4, kDim, d, nullptr, 1, 0) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_write(path.c_str(), x.data(), 4, kDim, nullptr, nullptr, 1, 0) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_write(path.c_str(), x.data(), 4, kDim + 1, d, nullptr, 1, 0) == SMIC_ERR_INVALID_ARGUMENT);
  const char* null_id[] = {"a", nullptr, "c", "d"};
  CHECK(smic_collection_write(path.c_str(), x.data(), 4, kDim, d, null_id, 1, 0) == SMIC_ERR_INVALID_ARGUMENT);
  const char* dup_ids[] = {"a", "b", "a", "d"};
  CHECK(smic_collection_write(path.c_str(), x.data(), 4, kDim, d, dup_ids, 1, 0) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_open(path.c_str(), nullptr, &c) == SMIC_ERR_IO);  // nothing was written
  // No rows: refused (nothing to compress), nothing written.
  CHECK(smic_collection_write(path.c_str(), x.data(), 0, kDim, d, nullptr, 1, 0) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_open(path.c_str(), nullptr, &c) == SMIC_ERR_IO);
  REQUIRE(smic_collection_write(path.c_str(), x.data(), 4, kDim, d, nullptr, 1, 0) == SMIC_OK);
  REQUIRE(smic_collection_open(path.c_str(), nullptr, &c) == SMIC_OK);
  CHECK(smic_collection_decode(c, 2, 2, nullptr) == SMIC_OK);  // an empty range needs no buffer
  CHECK(smic_collection_decode(c, 0, 5, out.data()) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_decode(c, 3, 2, out.data()) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_decode(c, 0, 1, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  const char* id = "unchanged";
  CHECK(smic_collection_id(c, 4, &id) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(std::string(id) == "unchanged");
  CHECK(smic_collection_id(c, 0, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_find(c, nullptr, &v) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_append(path.c_str(), nullptr, 1, kDim, nullptr, 0, 0, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  CHECK(smic_collection_append(nullptr, x.data(), 1, kDim, nullptr, 0, 0, nullptr) == SMIC_ERR_INVALID_ARGUMENT);
  smic_collection_free(c);
  // Frees accept NULL.
  smic_collection_free(nullptr);
  smic_encoder_free(nullptr);
  smic_dictionary_free(nullptr);
  smic_encoder_free(e);
  smic_dictionary_free(d);
}

TEST_CASE("damaged and missing files: FORMAT and IO statuses with a message") {
  smic_dictionary* d = c_dictionary();
  const auto x = smic_test::unit_rows(50, kDim, 84);
  smic_test::TempDir dir;
  const std::string path = dir.file("d.smic");
  REQUIRE(smic_collection_write(path.c_str(), x.data(), 50, kDim, d, nullptr, 1, 16) == SMIC_OK);
  const auto good = smic_test::read_bytes(path);
  smic_collection* c = nullptr;
  std::size_t format = 0, tried = 0;
  for (std::size_t n = 0; n < good.size(); n += 5) {
    ++tried;
    const int status = smic_collection_from_bytes(good.data(), n, nullptr, &c);
    format += status == SMIC_ERR_FORMAT;
    if (status == SMIC_OK) smic_collection_free(c);
  }
  CHECK(format == tried);
  for (std::size_t byte = 16; byte < good.size(); byte += 7) {
    auto bad = good;
    bad[byte] ^= 0x80;
    c = nullptr;
    CAPTURE(byte);
    CHECK(smic_collection_from_bytes(bad.data(), bad.size(), nullptr, &c) == SMIC_ERR_FORMAT);
    CHECK(c == nullptr);
  }
  CHECK(std::string(smic_last_error()).find("CRC") != std::string::npos);
  CHECK(smic_collection_open(dir.file("missing.smic").c_str(), nullptr, &c) == SMIC_ERR_IO);
  CHECK(std::string(smic_last_error()).find("missing.smic") != std::string::npos);
  smic_dictionary* nd = nullptr;
  CHECK(smic_dictionary_load(path.c_str(), &nd) == SMIC_ERR_FORMAT);  // a collection, not a .smicd
  CHECK(smic_collection_append(dir.file("missing.smic").c_str(), x.data(), 1, kDim, nullptr, 0, 0, nullptr) ==
        SMIC_ERR_IO);
  smic_dictionary_free(d);
}

TEST_CASE("a failing call sets the thread's message and a successful one leaves it") {
  smic_dictionary* d = nullptr;
  CHECK(smic_dictionary_load("/nonexistent/x.smicd", &d) == SMIC_ERR_IO);
  const std::string message = smic_last_error();
  CHECK(message.find("/nonexistent/x.smicd") != std::string::npos);
  d = c_dictionary();
  CHECK(std::string(smic_last_error()) == message);
  smic_dictionary_free(d);
}

extern "C" int smic_test_header_is_c99(void);

TEST_CASE("a C99 translation unit calls the ABI") { CHECK(smic_test_header_is_c99() == 0); }
