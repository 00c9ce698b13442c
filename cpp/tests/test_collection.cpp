// Collections (.smic, smic/collection.hpp): write/read round trips, random access, appends in
// place and by copy, repack, streaming writes, shared dictionaries, damaged files refused.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "smic/collection.hpp"
#include "support.hpp"

namespace {

constexpr std::size_t kDim = 16;

std::vector<float> decoded_all(const smic::Collection& c) {
  std::vector<float> out(c.size() * c.dim());
  c.decode(0, c.size(), out.data());
  return out;
}

}  // namespace

TEST_CASE("write then read: ids, pixels, header and embeddings as coded") {
  const auto d = smic_test::small_dictionary();
  const std::size_t n = 700;
  const auto x = smic_test::unit_rows(n, kDim, 11);
  std::vector<std::string> ids;
  std::vector<int64_t> pixels;
  for (std::size_t i = 0; i < n; ++i) {
    ids.push_back("img_" + std::to_string(i) + ".jpg");
    pixels.push_back(static_cast<int64_t>(100 + i));
  }
  smic_test::TempDir dir;
  const std::string path = dir.file("c.smic");
  smic::WriteOptions opt;
  opt.model = "ViT-test";
  opt.chunk_size = 64;
  const auto result = smic::CollectionWriter::write(path, x.data(), n, kDim, *d, ids, pixels, opt);
  REQUIRE(result.cosine.size() == n);

  const auto c = smic::Collection::open(path);
  CHECK(c.size() == n);
  CHECK(c.dim() == kDim);
  CHECK(c.ids() == ids);
  CHECK(c.pixels() == pixels);
  CHECK(c.model() == std::optional<std::string>("ViT-test"));
  CHECK(c.chunk_size() == 64);
  CHECK_FALSE(c.shared_dictionary());
  CHECK(c.dictionary().hash_hex() == d->hash_hex());
  CHECK(c.find("img_42.jpg") == std::optional<std::size_t>(42));
  CHECK_FALSE(c.find("nope").has_value());
  const auto bytes = smic_test::read_bytes(path);
  CHECK(c.file_bytes() == bytes.size());
  const auto& sb = c.section_bytes();
  CHECK(sb.header + sb.dictionary + sb.ids + sb.items + sb.residual == bytes.size());  // preamble in header

  // What a reader decodes is what the writer measured, and is the dictionary's reconstruction
  // of the writer's codes.
  const auto all = decoded_all(c);
  std::vector<float> unit(n * kDim);
  smic::CodingDictionary::normalize(x.data(), n, kDim, unit.data());
  const auto codes = d->choose(unit.data(), n, 1);
  std::vector<float> expected(n * kDim);
  d->reconstruct(codes, expected.data());
  CHECK(all == expected);
  for (std::size_t i = 0; i < n; i += 37) {
    double dot = 0;
    for (std::size_t j = 0; j < kDim; ++j) dot += double(all[i * kDim + j]) * unit[i * kDim + j];
    CHECK(dot == doctest::Approx(result.cosine[i]).epsilon(1e-5));
  }
  // Random access: one item, a range across chunks, then the cached path again.
  for (std::size_t i : {0, 63, 64, 65, 699, 300, 64}) {
    CAPTURE(i);
    CHECK(c.item(i) == std::vector<float>(all.begin() + static_cast<std::ptrdiff_t>(i * kDim),
                                          all.begin() + static_cast<std::ptrdiff_t>((i + 1) * kDim)));
  }
  std::vector<float> range((200 - 60) * kDim);
  c.decode(60, 200, range.data());
  CHECK(std::equal(range.begin(), range.end(), all.begin() + 60 * kDim));
  std::vector<float> none(1);
  CHECK_THROWS_AS(c.decode(5, 4, none.data()), smic::InvalidArgument);
  CHECK_THROWS_AS(c.decode(0, n + 1, none.data()), smic::InvalidArgument);
  // write_bytes gives the file's bytes.
  const auto in_memory = smic::CollectionWriter::write_bytes(x.data(), n, kDim, *d, ids, pixels, opt, nullptr);
  CHECK(in_memory == bytes);
  const auto from_memory = smic::Collection::from_bytes(in_memory);
  CHECK(decoded_all(from_memory) == all);
}

TEST_CASE("positional ids, appends in place and by copy, repack: items decode unchanged") {
  const auto d = smic_test::small_dictionary();
  const auto x = smic_test::unit_rows(300, kDim, 12);
  smic_test::TempDir dir;
  const std::string path = dir.file("a.smic");
  smic::WriteOptions opt;
  opt.chunk_size = 32;
  smic::CollectionWriter::write(path, x.data(), 100, kDim, *d, {}, {}, opt);
  auto c = smic::Collection::open(path);
  CHECK(c.ids()[99] == "99");
  const auto before = decoded_all(c);

  c.append_in_place(x.data() + 100 * kDim, 100, kDim, {}, {});
  CHECK(c.size() == 200);
  CHECK(c.ids()[150] == "150");
  CHECK(c.batch_sizes() == std::vector<std::size_t>{100, 100});
  const auto reopened = smic::Collection::open(path);
  CHECK(reopened.size() == 200);
  const auto after_in_place = decoded_all(reopened);
  CHECK(std::equal(before.begin(), before.end(), after_in_place.begin()));
  CHECK(decoded_all(c) == after_in_place);
  // An id already there is refused in place, and nothing is written.
  const auto size_before = smic_test::read_bytes(path).size();
  CHECK_THROWS_AS(c.append_in_place(x.data(), 1, kDim, {"5"}, {}), smic::InvalidArgument);
  CHECK(smic_test::read_bytes(path).size() == size_before);

  smic::CollectionWriter::append(path, x.data() + 200 * kDim, 100, kDim,
                                 std::vector<std::string>(), {}, false);
  const auto three = smic::Collection::open(path);
  CHECK(three.size() == 300);
  CHECK(three.batch_sizes().size() == 3);
  const auto all3 = decoded_all(three);
  CHECK(std::equal(after_in_place.begin(), after_in_place.end(), all3.begin()));

  smic::CollectionWriter::repack(path);
  const auto packed = smic::Collection::open(path);
  CHECK(packed.batch_sizes() == std::vector<std::size_t>{300});
  CHECK(packed.ids() == three.ids());
  CHECK(decoded_all(packed) == all3);
  CHECK(packed.file_bytes() <= three.file_bytes());
}

TEST_CASE("replace drops the old item and keeps every other one") {
  const auto d = smic_test::small_dictionary();
  const auto x = smic_test::unit_rows(60, kDim, 13);
  smic_test::TempDir dir;
  const std::string path = dir.file("r.smic");
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.push_back("id" + std::to_string(i));
  smic::WriteOptions opt;
  opt.chunk_size = 16;
  smic::CollectionWriter::write(path, x.data(), 50, kDim, *d, ids, {}, opt);
  const auto old = smic::Collection::open(path);
  const auto old_all = decoded_all(old);
  CHECK_THROWS_AS(smic::CollectionWriter::append(path, x.data() + 50 * kDim, 1, kDim, {"id7"}, {}, false),
                  smic::InvalidArgument);
  smic::CollectionWriter::append(path, x.data() + 50 * kDim, 1, kDim, {"id7"}, {}, true);
  const auto c = smic::Collection::open(path);
  CHECK(c.size() == 50);
  const auto pos = c.find("id7");
  REQUIRE(pos.has_value());
  CHECK(*pos == 49);
  for (const char* id : {"id0", "id6", "id8", "id49"}) {
    CAPTURE(id);
    CHECK(c.item(*c.find(id)) == old.item(*old.find(id)));
  }
  CHECK(c.item(*pos) != old.item(7));
}

TEST_CASE("write_streaming gives exactly write()'s bytes") {
  const auto d = smic_test::small_dictionary();
  const std::size_t n = 333;
  const auto x = smic_test::unit_rows(n, kDim, 14);
  smic_test::TempDir dir;
  smic::WriteOptions opt;
  opt.chunk_size = 20;
  smic::CollectionWriter::write(dir.file("whole.smic"), x.data(), n, kDim, *d, {}, {}, opt);
  const auto rows = smic::stacked_rows({{x.data(), 100, smic::RowType::kFloat32},
                                        {x.data() + 100 * kDim, n - 100, smic::RowType::kFloat32}},
                                       kDim);
  smic::CollectionWriter::write_streaming(dir.file("stream.smic"), rows, n, kDim, *d, {}, {}, opt,
                                          nullptr, 40);
  CHECK(smic_test::read_bytes(dir.file("stream.smic")) == smic_test::read_bytes(dir.file("whole.smic")));
  // A reader that throws: nothing is left at the target.
  const smic::RowReader failing = [](std::size_t start, std::size_t, float*) {
    if (start > 0) throw std::runtime_error("disk gone");
  };
  CHECK_THROWS_AS(smic::CollectionWriter::write_streaming(dir.file("failed.smic"), failing, n, kDim,
                                                          *d, {}, {}, opt, nullptr, 40),
                  std::runtime_error);
  CHECK_THROWS_AS(smic_test::read_bytes(dir.file("failed.smic")), std::runtime_error);
}

TEST_CASE("a shared dictionary: DREF by hash, needed to open, another one refused") {
  const auto d = smic_test::small_dictionary();
  const auto other = smic_test::small_dictionary(24, kDim, 99);
  const auto x = smic_test::unit_rows(40, kDim, 15);
  smic_test::TempDir dir;
  const std::string path = dir.file("s.smic");
  smic::WriteOptions opt;
  opt.embed_dictionary = false;
  smic::CollectionWriter::write(path, x.data(), 40, kDim, *d, {}, {}, opt);
  CHECK_THROWS_AS(smic::Collection::open(path), smic::DictionaryMismatchError);
  const std::string hash_start = d->hash_hex().substr(0, 12);
  CHECK_THROWS_WITH_AS(smic::Collection::open(path, other), doctest::Contains(hash_start.c_str()),
                       smic::DictionaryMismatchError);
  const auto c = smic::Collection::open(path, d);
  CHECK(c.shared_dictionary());
  CHECK(c.size() == 40);
  // An embedding copy is bigger by about the dictionary's bytes.
  smic::WriteOptions embed;
  smic::CollectionWriter::write(dir.file("e.smic"), x.data(), 40, kDim, *d, {}, {}, embed);
  CHECK(decoded_all(smic::Collection::open(dir.file("e.smic"))) == decoded_all(c));
  CHECK(smic_test::read_bytes(dir.file("e.smic")).size() >
        smic_test::read_bytes(path).size() + d->to_bytes().size() / 2);
}

TEST_CASE("a refinement layer brings items closer and survives an append") {
  const auto d = smic_test::small_dictionary();
  const auto x = smic_test::unit_rows(120, kDim, 16);
  smic_test::TempDir dir;
  smic::WriteOptions coarse, fine;
  fine.residual_step = 0.05;
  const auto r0 = smic::CollectionWriter::write(dir.file("0.smic"), x.data(), 100, kDim, *d, {}, {}, coarse);
  const auto r1 = smic::CollectionWriter::write(dir.file("1.smic"), x.data(), 100, kDim, *d, {}, {}, fine);
  double m0 = 0, m1 = 0;
  for (std::size_t i = 0; i < 100; ++i) {
    m0 += r0.cosine[i] / 100;
    m1 += r1.cosine[i] / 100;
  }
  CHECK(m1 > m0 + 0.05);
  auto c = smic::Collection::open(dir.file("1.smic"));
  CHECK(c.residual_step() == std::optional<double>(0.05));
  CHECK(c.format_version() == 2);
  const auto r = c.append_in_place(x.data() + 100 * kDim, 20, kDim, {}, {});
  double m_app = 0;
  for (double v : r.cosine) m_app += v / 20;
  CHECK(m_app > m0);
  CHECK(smic::Collection::open(dir.file("1.smic")).size() == 120);
}

TEST_CASE("damaged collections: truncations and flips raise FormatError, never garbage") {
  const auto d = smic_test::small_dictionary(12, 8, 4, 80);
  const auto x = smic_test::unit_rows(60, 8, 17);
  smic::WriteOptions opt;
  opt.chunk_size = 16;
  const auto good = smic::CollectionWriter::write_bytes(x.data(), 60, 8, *d, {}, {}, opt, nullptr);
  const auto all = decoded_all(smic::Collection::from_bytes(good));
  std::size_t refused = 0, tried = 0;
  for (std::size_t n = 0; n < good.size(); n += 3) {
    ++tried;
    try {
      const auto c = smic::Collection::from_bytes(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
      (void)decoded_all(c);
    } catch (const smic::FormatError&) {
      ++refused;
    }
  }
  CHECK(refused == tried);
  // A flipped bit past the preamble breaks a CRC: refused when opening.
  for (std::size_t byte = 16; byte < good.size(); byte += 11) {
    auto bad = good;
    bad[byte] ^= 0x01;
    CAPTURE(byte);
    CHECK_THROWS_AS(smic::Collection::from_bytes(bad), smic::FormatError);
  }
  // A dictionary is not a collection.
  CHECK_THROWS_WITH_AS(smic::Collection::from_bytes(d->to_bytes()), doctest::Contains("wrong magic"),
                       smic::FormatError);
  CHECK(all.size() == 60 * 8);
}

TEST_CASE("bad write arguments are InvalidArgument and write nothing") {
  const auto d = smic_test::small_dictionary();
  const auto x = smic_test::unit_rows(4, kDim, 18);
  smic_test::TempDir dir;
  const std::string path = dir.file("bad.smic");
  smic::WriteOptions opt;
  CHECK_THROWS_AS(smic::CollectionWriter::write(path, x.data(), 4, kDim + 1, *d, {}, {}, opt),
                  smic::InvalidArgument);
  CHECK_THROWS_AS(smic::CollectionWriter::write(path, x.data(), 4, kDim, *d, {"a", "a", "b", "c"}, {}, opt),
                  smic::InvalidArgument);
  CHECK_THROWS_AS(smic::CollectionWriter::write(path, x.data(), 4, kDim, *d, {"a"}, {}, opt),
                  smic::InvalidArgument);
  smic::WriteOptions zero_chunk;
  zero_chunk.chunk_size = 0;
  CHECK_THROWS_AS(smic::CollectionWriter::write(path, x.data(), 4, kDim, *d, {}, {}, zero_chunk),
                  smic::InvalidArgument);
  auto nan = x;
  nan[5] = std::nanf("");
  CHECK_THROWS_AS(smic::CollectionWriter::write(path, nan.data(), 4, kDim, *d, {}, {}, opt),
                  smic::InvalidArgument);
  CHECK_THROWS_AS(smic_test::read_bytes(path), std::runtime_error);
  CHECK_THROWS_AS(smic::Collection::open(dir.file("missing.smic")), smic::IoError);
}
