// The transform-coded refinement layer (smic/transform.hpp): levels coded and decoded exactly,
// XFRM bytes round trip, refinement brings items closer, single items match the collection.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "smic/coding_dictionary.hpp"
#include "smic/collection.hpp"
#include "smic/range_coder.hpp"
#include "smic/transform.hpp"
#include "support.hpp"

namespace {

std::shared_ptr<const smic::CodingDictionary> golden_transform_dictionary(const char* name = "transform.smicd") {
  return smic::CodingDictionary::load(smic_test::golden_path(name));
}

// The golden transforms: greedy levels, and dependent quantisation (XQNT = 2).
constexpr const char* kGoldenTransforms[] = {"transform.smicd", "dependent.smicd"};

double dot(const float* a, const float* b, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}

// n unit rows (seeded), their atoms' reconstruction and their classes: what a layer refines.
struct Residuals {
  std::vector<float> unit, decoded;
  std::vector<uint32_t> classes;
};

Residuals residuals(const smic::CodingDictionary& d, std::size_t n, uint64_t seed) {
  Residuals r;
  r.unit = smic_test::unit_rows(n, d.dim(), seed);
  const auto codes = d.choose(r.unit.data(), n, 1);
  r.decoded.resize(n * d.dim());
  d.reconstruct(codes, r.decoded.data());
  r.classes = d.transform()->classes(codes);
  return r;
}

}  // namespace

TEST_CASE("a transform's XFRM bytes parse back to the same transform") {
  const auto d = golden_transform_dictionary();
  const smic::TransformModel* t = d->transform();
  REQUIRE(t != nullptr);
  CHECK(t->dim() == d->dim());
  CHECK(t->n_atoms() == d->n_atoms());
  CHECK(t->rank() < t->dim());
  const auto bytes = t->to_bytes();
  const auto back = smic::TransformModel::parse(bytes.data(), bytes.size(), "<xfrm>");
  CHECK(back->to_bytes() == bytes);
  CHECK(back->basis() == t->basis());
  CHECK(back->counts() == t->counts());
  // Truncated payloads are FormatErrors.
  for (std::size_t n = 0; n < bytes.size(); n += 9)
    CHECK_THROWS_AS(smic::TransformModel::parse(bytes.data(), n, "<xfrm>"), smic::FormatError);
  // Without the transform the dictionary hashes differently; with it again, the same.
  const auto without = d->with_transform(nullptr);
  CHECK(without->hash_hex() != d->hash_hex());
  CHECK(without->with_transform(d->transform_ptr())->hash_hex() == d->hash_hex());
}

TEST_CASE("levels round trip through the coder and refine items towards their embeddings") {
  for (const char* name : kGoldenTransforms) {
  CAPTURE(name);
  const auto d = golden_transform_dictionary(name);
  const smic::TransformModel& t = *d->transform();
  const std::size_t n = 200, dim = d->dim();
  const auto [unit, decoded, classes] = residuals(*d, n, 71);
  CHECK(classes.size() == n);
  double previous = 0;
  for (double step : {0.2, 0.05, 0.01}) {
    CAPTURE(step);
    const int32_t si = smic::TransformModel::step_index(step);
    std::vector<int32_t> levels(n * dim);
    t.levels(unit.data(), decoded.data(), classes.data(), n, step, levels.data());
    smic::RangeEncoder enc;
    t.encode(enc, levels.data(), classes.data(), n, si);
    const auto bytes = enc.finish();
    smic::RangeDecoder dec(bytes.data(), bytes.size());
    std::vector<int32_t> back(n * dim, 12345);
    t.decode(dec, classes.data(), n, si, back.data());
    dec.finish();
    CHECK(back == levels);
    // The ideal code length is close to the bytes written.
    std::vector<double> bits(n);
    t.bits(levels.data(), classes.data(), n, si, bits.data());
    double total = 0;
    for (double b : bits) total += b;
    CHECK(bytes.size() * 8.0 <= total * 1.02 + 64);
    // Refined items are closer to their embeddings than the atoms alone.
    auto refined = decoded;
    t.refine(refined.data(), levels.data(), classes.data(), n, step);
    double before = 0, after = 0;
    for (std::size_t i = 0; i < n; ++i) {
      before += dot(&decoded[i * dim], &unit[i * dim], dim) / n;
      after += dot(&refined[i * dim], &unit[i * dim], dim) / n;
      CHECK(dot(&refined[i * dim], &refined[i * dim], dim) == doctest::Approx(1.0).epsilon(1e-5));
    }
    CHECK(after > before);
    CHECK(after > previous);  // a finer step refines further
    previous = after;
  }
  }
}

TEST_CASE("encode_one at a step decodes to exactly the collection's item at that step") {
  for (const char* name : kGoldenTransforms) {
  CAPTURE(name);
  const auto d = golden_transform_dictionary(name);
  const std::size_t n = 50, dim = d->dim();
  const auto x = smic_test::unit_rows(n, dim, 72);
  smic::WriteOptions opt;
  opt.residual_step = 0.05;
  opt.embed_dictionary = true;
  opt.chunk_size = 8;
  const auto bytes = smic::CollectionWriter::write_bytes(x.data(), n, dim, *d, {}, {}, opt, nullptr);
  const auto c = smic::Collection::from_bytes(bytes);
  CHECK(c.residual_transform());
  CHECK(c.format_version() == 4);
  std::vector<float> one(dim);
  for (std::size_t i = 0; i < n; ++i) {
    const auto code = d->encode_one(&x[i * dim], 0.05);
    CHECK(code.size() <= d->encode_bound(0.05));
    d->decode_one(code.data(), code.size(), one.data(), 0.05);
    CAPTURE(i);
    CHECK(one == c.item(i));
  }
  // Out-of-range steps and a dictionary without a transform are refused.
  CHECK_THROWS_AS(d->encode_one(x.data(), 2.0), smic::InvalidArgument);
  CHECK_THROWS_AS(d->with_transform(nullptr)->encode_one(x.data(), 0.05), smic::InvalidArgument);
  }
}

TEST_CASE("the transform model refuses bad construction arguments") {
  const std::size_t dim = 4, rank = 2;
  const std::vector<float> mean(dim, 0.0f);
  const std::vector<float> basis = {1, 0, 0, 0, 0, 1, 0, 0};
  CHECK_NOTHROW(smic::TransformModel(dim, rank, 1, {0, 0}, mean.data(), basis.data(), {0, 0}, 0.5, 0.0, {}));
  CHECK_THROWS_AS(smic::TransformModel(dim, dim, 1, {0, 0}, mean.data(), basis.data(), {0, 0}, 0.5, 0.0, {}),
                  smic::InvalidArgument);  // rank must be < dim
  CHECK_THROWS_AS(smic::TransformModel(dim, rank, 1, {0, 1}, mean.data(), basis.data(), {0, 0}, 0.5, 0.0, {}),
                  smic::InvalidArgument);  // class 1 of 1
  CHECK_THROWS_AS(smic::TransformModel(dim, rank, 1, {0, 0}, mean.data(), basis.data(), {0, 0}, 1.0, 0.0, {}),
                  smic::InvalidArgument);  // rounding in [0, 1)
  CHECK_THROWS_AS(smic::TransformModel(dim, rank, 1, {0, 0}, mean.data(), basis.data(), {0, 999}, 0.5, 0.0, {}),
                  smic::InvalidArgument);  // scale in [-256, 256]
}

TEST_CASE("the quantiser is an encoder choice stored in XQNT, and greedy dictionaries stay as they were") {
  const auto d = golden_transform_dictionary();
  const smic::TransformModel& greedy = *d->transform();
  CHECK(greedy.quantiser() == smic::TransformQuantiser::kGreedy);
  CHECK(greedy.quantiser_bytes().empty());
  const auto xfrm = greedy.to_bytes();
  const auto trellis = smic::TransformModel::parse(xfrm.data(), xfrm.size(), "<xfrm>",
                                                   smic::TransformQuantiser::kTrellis);
  CHECK(trellis->to_bytes() == xfrm);  // the XFRM payload does not hold it
  CHECK(trellis->quantiser_bytes() == std::vector<uint8_t>{1});
  const auto with = d->with_transform(trellis);
  CHECK(with->hash_hex() != d->hash_hex());
  const auto bytes = with->to_bytes();
  const auto back = smic::CodingDictionary::from_bytes(bytes.data(), bytes.size(), "<dict>");
  CHECK(back->transform()->quantiser() == smic::TransformQuantiser::kTrellis);
  CHECK(back->hash_hex() == with->hash_hex());
  const auto plain_bytes = d->to_bytes();
  const std::string tag = "XQNT";
  CHECK(std::search(plain_bytes.begin(), plain_bytes.end(), tag.begin(), tag.end()) == plain_bytes.end());
  const uint8_t one = 1, seven = 7, two[2] = {1, 1};
  CHECK(smic::TransformModel::parse_quantiser(&one, 1, "<q>") == smic::TransformQuantiser::kTrellis);
  CHECK_THROWS_AS(smic::TransformModel::parse_quantiser(&seven, 1, "<q>"), smic::FormatError);
  CHECK_THROWS_AS(smic::TransformModel::parse_quantiser(two, 2, "<q>"), smic::FormatError);
  CHECK_THROWS_AS(smic::TransformModel::parse_quantiser(two, 0, "<q>"), smic::FormatError);

  // The trellis's levels decode with the same model and refine items further per bit.
  const std::size_t n = 200, dim = d->dim();
  const auto [unit, decoded, classes] = residuals(*d, n, 72);
  const double step = 0.05;
  const int32_t si = smic::TransformModel::step_index(step);
  std::vector<int32_t> levels(n * dim);
  trellis->levels(unit.data(), decoded.data(), classes.data(), n, step, levels.data());
  smic::RangeEncoder enc;
  trellis->encode(enc, levels.data(), classes.data(), n, si);
  const auto stream = enc.finish();
  smic::RangeDecoder dec(stream.data(), stream.size());
  std::vector<int32_t> again(n * dim, 7);
  greedy.decode(dec, classes.data(), n, si, again.data());
  CHECK(again == levels);
}

TEST_CASE("dependent quantisation: XQNT 2, twice the tables, levels on two interleaved grids") {
  const auto d = golden_transform_dictionary("dependent.smicd");
  const smic::TransformModel& t = *d->transform();
  CHECK(t.quantiser() == smic::TransformQuantiser::kDependent);
  CHECK(t.dependent());
  CHECK(t.quantiser_bytes() == std::vector<uint8_t>{2});
  CHECK(t.counts().size() == 2 * smic::kTransformContexts * (smic::kTransformEscape + 1));
  const uint8_t two = 2, three = 3;
  CHECK(smic::TransformModel::parse_quantiser(&two, 1, "<q>") == smic::TransformQuantiser::kDependent);
  CHECK_THROWS_AS(smic::TransformModel::parse_quantiser(&three, 1, "<q>"), smic::FormatError);
  const auto xfrm = t.to_bytes();
  CHECK(smic::TransformModel::parse(xfrm.data(), xfrm.size(), "<xfrm>", smic::TransformQuantiser::kDependent)
            ->to_bytes() == xfrm);
  // read as greedy, the tables are too long: the quantiser is part of what the bytes mean
  CHECK_THROWS_AS(smic::TransformModel::parse(xfrm.data(), xfrm.size(), "<xfrm>"), smic::FormatError);
  const auto bytes = d->to_bytes();
  CHECK(smic::CodingDictionary::from_bytes(bytes.data(), bytes.size(), "<dict>")->hash_hex() == d->hash_hex());

  // The levels reconstruct as the state machine says: at each coded axis quantiser state >> 1,
  // level k at (2|k| - quantiser - bias) * step / 2; the state moves on the parity of |k|.
  const std::size_t n = 100, dim = d->dim(), rank = t.rank();
  const auto [unit, decoded, classes] = residuals(*d, n, 73);
  const double step = 0.05;
  std::vector<int32_t> levels(n * dim);
  t.levels(unit.data(), decoded.data(), classes.data(), n, step, levels.data());
  auto refined = decoded;
  t.refine(refined.data(), levels.data(), classes.data(), n, step);
  const int32_t si = smic::TransformModel::step_index(step);
  std::size_t odd_quantiser = 0, nonzero = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t c = classes[i];
    const int32_t gain = levels[i * dim + dim - 1];
    std::vector<double> row(dim);
    for (std::size_t k = 0; k < dim; ++k) row[k] = double(decoded[i * dim + k]) + t.mean()[c * dim + k];
    unsigned state = 0;
    for (std::size_t j = 0; j < rank; ++j) {
      const int32_t q = levels[i * dim + j];
      if (t.scale()[c * rank + j] + si + gain + 16 < 0) {
        CHECK(q == 0);
        continue;
      }
      const int32_t a = q < 0 ? -q : q;
      if (a != 0) {
        const double y = (2.0 * a - (state >> 1) - t.bias()) * step / 2 * (q < 0 ? -1 : 1);
        const float* axis = t.basis().data() + (c * rank + j) * dim;
        for (std::size_t k = 0; k < dim; ++k) row[k] += float(y) * axis[k];
        ++nonzero;
        odd_quantiser += state >> 1;
      }
      state = smic::kTransformNextState[state][a & 1];
    }
    double norm = 0;
    for (double v : row) norm += v * v;
    for (std::size_t k = 0; k < dim; ++k)
      CHECK(refined[i * dim + k] == doctest::Approx(row[k] / std::sqrt(norm)).epsilon(1e-4));
  }
  CHECK(nonzero > 0);
  CHECK(odd_quantiser > 0);  // both grids are used
  CHECK(odd_quantiser < nonzero);
}
