// Coding dictionaries (.smicd, smic/coding_dictionary.hpp): save/load round trips, hashes,
// single-item coding, and damaged files refused.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "smic/coding_dictionary.hpp"
#include "smic/container.hpp"
#include "support.hpp"

namespace {

double cosine(const float* a, const float* b, std::size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace

TEST_CASE("a dictionary saved and loaded again is the same dictionary, byte for byte") {
  const auto d = smic_test::small_dictionary();
  CHECK_FALSE(d->flat());
  smic_test::TempDir dir;
  const std::string path = dir.file("d.smicd");
  d->save(path);
  const auto bytes = smic_test::read_bytes(path);
  CHECK(bytes == d->to_bytes());
  const auto loaded = smic::CodingDictionary::load(path);
  CHECK(loaded->n_atoms() == d->n_atoms());
  CHECK(loaded->dim() == d->dim());
  CHECK(loaded->atoms() == d->atoms());
  CHECK(loaded->table_counts().index == d->table_counts().index);
  CHECK(loaded->table_counts().level == d->table_counts().level);
  CHECK(loaded->params().s_max == d->params().s_max);
  CHECK(loaded->params().step == d->params().step);
  CHECK(loaded->hash_hex() == d->hash_hex());
  CHECK(loaded->hash_hex().size() == 64);
  CHECK(loaded->to_bytes() == bytes);
  // float16 atoms: each stored row renormalised to unit norm.
  for (std::size_t k = 0; k < d->n_atoms(); ++k) {
    const float* a = &loaded->atoms()[k * d->dim()];
    CHECK(cosine(a, a, d->dim()) == doctest::Approx(1.0));
  }
}

TEST_CASE("int8 atoms round trip too, and differ in hash from float16") {
  const auto atoms = smic_test::unit_rows(20, 12, 5);
  smic::CodingParams p;
  const smic::CodingDictionary f16(atoms.data(), 20, 12, p, smic::AtomPrecision::kFloat16,
                                   smic::TableCounts::flat(20, p));
  const smic::CodingDictionary i8(atoms.data(), 20, 12, p, smic::AtomPrecision::kInt8,
                                  smic::TableCounts::flat(20, p));
  CHECK(f16.hash_hex() != i8.hash_hex());
  const auto bytes = i8.to_bytes();
  const auto back = smic::CodingDictionary::from_bytes(bytes.data(), bytes.size());
  CHECK(back->precision() == smic::AtomPrecision::kInt8);
  CHECK(back->atoms() == i8.atoms());
  CHECK(back->hash_hex() == i8.hash_hex());
  // int8 atoms are close to the originals, not equal.
  for (std::size_t k = 0; k < 20; ++k) CHECK(cosine(&atoms[k * 12], &i8.atoms()[k * 12], 12) > 0.999);
}

TEST_CASE("encode_one / decode_one: bytes within the bound, decoding to the chosen atoms") {
  const auto d = smic_test::small_dictionary();
  const auto x = smic_test::unit_rows(50, d->dim(), 77);
  std::vector<float> out(d->dim()), via_batch(d->dim());
  double mean_cos = 0;
  for (std::size_t i = 0; i < 50; ++i) {
    const float* xi = &x[i * d->dim()];
    const auto bytes = d->encode_one(xi);
    CHECK(bytes.size() <= d->encode_bound());
    CHECK(bytes.size() >= 8);
    d->decode_one(bytes.data(), bytes.size(), out.data());
    // The same as reconstructing the batch path's codes of the item.
    const auto codes = d->choose(xi, 1, 1);
    d->reconstruct(codes, via_batch.data());
    CHECK(out == via_batch);
    mean_cos += cosine(out.data(), xi, d->dim()) / 50;
  }
  // Random 16-d rows over 24 atoms, 4 atoms each: well above chance (~0.2).
  CHECK(mean_cos > 0.6);
}

TEST_CASE("damaged dictionaries: every truncation and CRC-breaking flip is a FormatError") {
  const auto good = smic_test::small_dictionary(10, 8, 3, 60)->to_bytes();
  for (std::size_t n = 0; n < good.size(); n += 7) {
    CAPTURE(n);
    CHECK_THROWS_AS(smic::CodingDictionary::from_bytes(good.data(), n), smic::FormatError);
  }
  for (std::size_t byte = 16; byte < good.size(); byte += 5) {
    auto bad = good;
    bad[byte] ^= 0x10;
    CAPTURE(byte);
    CHECK_THROWS_AS(smic::CodingDictionary::from_bytes(bad.data(), bad.size()), smic::FormatError);
  }
  // A collection's magic in a dictionary reader.
  auto other = good;
  other[4] = 'C';
  CHECK_THROWS_WITH_AS(smic::CodingDictionary::from_bytes(other.data(), other.size(), "d.smicd"),
                       doctest::Contains("d.smicd"), smic::FormatError);
}

TEST_CASE("a valid container with a damaged payload is still a FormatError, not a crash") {
  // Re-seal each section with a correct CRC after changing its payload: the parser of the
  // payload itself must refuse it.
  const auto good = smic_test::small_dictionary(10, 8, 3, 60)->to_bytes();
  const auto view = smic::parse_container(good.data(), good.size(), smic::kDictionaryMagic,
                                          "smic dictionary", "<t>");
  for (std::size_t s = 0; s < view.sections.size(); ++s) {
    std::vector<smic::Section> sections;
    for (const auto& v : view.sections)
      sections.push_back({v.tag, std::vector<uint8_t>(v.data, v.data + v.size)});
    auto& payload = sections[s].payload;
    CAPTURE(smic::tag_name(sections[s].tag));
    payload.resize(payload.size() / 2);  // half of it
    const auto bytes = smic::encode_container(smic::kDictionaryMagic, view.version, sections);
    CHECK_THROWS_AS(smic::CodingDictionary::from_bytes(bytes.data(), bytes.size()), smic::FormatError);
  }
}

TEST_CASE("bad arguments are InvalidArgument") {
  const auto atoms = smic_test::unit_rows(4, 8, 1);
  smic::CodingParams p;
  p.step = 0;
  CHECK_THROWS_AS(smic::CodingDictionary(atoms.data(), 4, 8, p, smic::AtomPrecision::kFloat16,
                                         smic::TableCounts::flat(4, p)),
                  smic::InvalidArgument);
  smic::CodingParams ok;
  std::vector<float> zero_row = atoms;
  for (std::size_t j = 0; j < 8; ++j) zero_row[j] = 0;
  CHECK_THROWS_AS(smic::CodingDictionary(zero_row.data(), 4, 8, ok, smic::AtomPrecision::kFloat16,
                                         smic::TableCounts::flat(4, ok)),
                  smic::InvalidArgument);
  const auto d = smic_test::small_dictionary();
  std::vector<float> nan_row(d->dim(), 0.1f);
  nan_row[3] = std::nanf("");
  CHECK_THROWS_AS(d->encode_one(nan_row.data()), smic::InvalidArgument);
  CHECK_THROWS_AS(smic::CodingDictionary::load("/nonexistent/dir/d.smicd"), smic::IoError);
}
