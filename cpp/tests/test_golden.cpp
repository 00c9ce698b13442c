// The golden files of tests/golden, read by the C++ core alone: every collection decodes to the
// embeddings its .expected.npz pins (written by Python's reader when the file was made), bit
// for bit, and re-writing a file from its own codes gives its bytes again where that is the
// writer's contract.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "smic/collection.hpp"
#include "support.hpp"

namespace {

struct Golden {
  const char* name;
  const char* dictionary;  // shared .smicd, or nullptr
  uint16_t version;
};

const Golden kGolden[] = {
    {"own_float16", nullptr, 1},       {"paper_int8", nullptr, 1},
    {"shared", "shared.smicd", 1},     {"remaining", nullptr, 3},
    {"remaining_shared", "shared.smicd", 3}, {"transform", "transform.smicd", 4},
};

}  // namespace

TEST_CASE("every golden collection decodes to its pinned embeddings, bit for bit") {
  for (const Golden& g : kGolden) {
    CAPTURE(g.name);
    std::shared_ptr<const smic::CodingDictionary> shared;
    if (g.dictionary) shared = smic::CodingDictionary::load(smic_test::golden_path(g.dictionary));
    const auto c = smic::Collection::open(smic_test::golden_path(std::string(g.name) + ".smic"), shared);
    CHECK(c.format_version() == g.version);
    CHECK(c.shared_dictionary() == (g.dictionary != nullptr));
    const auto expected =
        smic_test::read_npz_float32(smic_test::golden_path(std::string(g.name) + ".expected.npz"), "embeddings");
    REQUIRE(expected.shape.size() == 2);
    CHECK(expected.shape[0] == c.size());
    CHECK(expected.shape[1] == c.dim());
    std::vector<float> all(c.size() * c.dim());
    c.decode(0, c.size(), all.data());
    CHECK(all == expected.values);
    // And one item at a time, through the checkpoint path.
    for (std::size_t i = c.size(); i-- > 0;) {
      const auto one = c.item(i);
      CHECK(std::equal(one.begin(), one.end(), expected.values.begin() + static_cast<std::ptrdiff_t>(i * c.dim())));
    }
  }
}

TEST_CASE("golden metadata: ids, pixels, batches") {
  const auto own = smic::Collection::open(smic_test::golden_path("own_float16.smic"));
  CHECK(own.size() == 40);
  CHECK(own.ids()[0] == "photo_0.jpg");
  CHECK(own.ids()[39] == "photo_39.jpg");
  CHECK(own.pixels()[3] == 640 * 480);
  CHECK(own.chunk_size() == 16);
  const auto shared = smic::CodingDictionary::load(smic_test::golden_path("shared.smicd"));
  const auto sh = smic::Collection::open(smic_test::golden_path("shared.smic"), shared);
  CHECK(sh.batch_sizes() == std::vector<std::size_t>{25, 15});
  CHECK(sh.ids()[25] == "x0");
  CHECK(sh.ids()[0] == "0");
  // Opening a shared-dictionary golden file without its dictionary names what is missing.
  CHECK_THROWS_AS(smic::Collection::open(smic_test::golden_path("shared.smic")),
                  smic::DictionaryMismatchError);
}

TEST_CASE("the golden dictionaries re-serialise to their own bytes") {
  for (const char* name : {"shared.smicd", "transform.smicd"}) {
    CAPTURE(name);
    const auto bytes = smic_test::read_bytes(smic_test::golden_path(name));
    const auto d = smic::CodingDictionary::from_bytes(bytes.data(), bytes.size());
    CHECK(d->to_bytes() == bytes);
  }
}
