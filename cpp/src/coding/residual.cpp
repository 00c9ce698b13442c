// Residual refinement layer (RESD sections).
#include "smic/residual.hpp"

#include <algorithm>
#include <cmath>

#include "coding/residual_target.hpp"
#include "format/bytes.hpp"
#include "format/json.hpp"
#include "smic/quantizer.hpp"
#include "smic/range_coder.hpp"
#include "smic/transform.hpp"

namespace smic {

void check_residual_step(double step) {
  require(std::isfinite(step) && step >= kMinResidualStep && step <= 1.0,
          "residual_step must be in [0.0001, 1], got " + json::python_float_repr(step));
}

std::vector<int32_t> residual_levels(const float* unit, const float* decoded, std::size_t n,
                                     std::size_t dim, double step) {
  std::vector<float> difference(n * dim);
  for (std::size_t i = 0; i < n; ++i)
    detail::residual_target(unit + i * dim, decoded + i * dim, dim, difference.data() + i * dim);
  std::vector<int32_t> levels(n * dim);
  ScalarQuantizer{step, 0.5, 0.0}.quantize(difference.data(), difference.size(), levels.data());
  return levels;
}

void refine(float* decoded, const int32_t* levels, std::size_t n, std::size_t dim, double step) {
  const ScalarQuantizer q{step, 0.5, 0.0};
  std::vector<float> correction(dim);
  std::vector<double> squares(dim);
  for (std::size_t i = 0; i < n; ++i) {
    float* row = decoded + i * dim;
    q.dequantize(levels + i * dim, dim, correction.data());
    for (std::size_t j = 0; j < dim; ++j) {
      row[j] = row[j] + correction[j];
      squares[j] = static_cast<double>(row[j]) * static_cast<double>(row[j]);
    }
    const double norm = std::sqrt(detail::pairwise_sum(squares.data(), dim));
    const double divisor = norm > 0 ? norm : 1.0;
    for (std::size_t j = 0; j < dim; ++j)
      row[j] = static_cast<float>(static_cast<double>(row[j]) / divisor);
  }
}

std::vector<uint8_t> encode_residual(const int32_t* levels, std::size_t n, std::size_t dim,
                                     double step, std::size_t chunk_size) {
  check_residual_step(step);
  require(chunk_size >= 1, "chunk_size must be >= 1");
  uint32_t max_level = 0;
  for (std::size_t i = 0; i < n * dim; ++i)
    max_level = std::max(max_level, static_cast<uint32_t>(std::abs(static_cast<int64_t>(levels[i]))));
  const std::size_t alphabet = 2 * std::size_t{max_level} + 1;
  std::vector<int32_t> symbols(n * dim);
  std::vector<uint64_t> counts(alphabet, 0);
  for (std::size_t i = 0; i < n * dim; ++i) {
    symbols[i] = levels[i] + static_cast<int32_t>(max_level);
    ++counts[static_cast<std::size_t>(symbols[i])];
  }
  const std::vector<uint32_t> freqs = frequencies_from_counts(counts.data(), counts.size());
  const StaticModel model(freqs.data(), freqs.size());
  const std::size_t n_chunks = (n + chunk_size - 1) / chunk_size;
  std::vector<uint8_t> out;
  detail::put_f64(out, step);
  detail::put_u32(out, max_level);
  for (std::size_t v : {n, dim, chunk_size, n_chunks}) detail::put_u32(out, static_cast<uint32_t>(v));
  for (uint64_t c : counts) detail::put_varint(out, c);
  std::vector<uint8_t> data;
  std::vector<uint64_t> offsets{0};
  for (std::size_t c = 0; c < n_chunks; ++c) {
    const std::size_t begin = c * chunk_size, end = std::min(n, begin + chunk_size);
    const std::vector<uint8_t> chunk =
        encode_static(symbols.data() + begin * dim, (end - begin) * dim, model);
    data.insert(data.end(), chunk.begin(), chunk.end());
    offsets.push_back(data.size());
  }
  for (uint64_t o : offsets) detail::put_u64(out, o);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<int32_t> residual_levels(const ResidualScheme& scheme, const float* unit,
                                     const float* decoded, const uint32_t* classes, std::size_t n,
                                     std::size_t dim) {
  if (!scheme.transform) return residual_levels(unit, decoded, n, dim, scheme.step);
  require(scheme.transform->dim() == dim, "transform dimension differs from the items'");
  std::vector<int32_t> levels(n * dim);
  scheme.transform->levels(unit, decoded, classes, n, scheme.step, levels.data());
  return levels;
}

void refine(const ResidualScheme& scheme, float* decoded, const int32_t* levels,
            const uint32_t* classes, std::size_t n, std::size_t dim) {
  if (!scheme.transform) return refine(decoded, levels, n, dim, scheme.step);
  require(scheme.transform->dim() == dim, "transform dimension differs from the items'");
  scheme.transform->refine(decoded, levels, classes, n, scheme.step);
}

namespace {

// Header of a transform-coded RESD payload; the offsets and chunks follow.
std::vector<uint8_t> transform_header(double step, int32_t step_index, std::size_t n,
                                      std::size_t dim, std::size_t chunk_size) {
  std::vector<uint8_t> out;
  detail::put_f64(out, step);
  detail::put_u32(out, static_cast<uint32_t>(step_index));
  const std::size_t n_chunks = (n + chunk_size - 1) / chunk_size;
  for (std::size_t v : {n, dim, chunk_size, n_chunks}) detail::put_u32(out, static_cast<uint32_t>(v));
  return out;
}

std::vector<uint8_t> transform_chunk(const TransformModel& model, const int32_t* levels,
                                     const uint32_t* classes, std::size_t n, int32_t step_index) {
  RangeEncoder enc;
  model.encode(enc, levels, classes, n, step_index);
  return enc.finish();
}

// The chunk offsets (n_chunks + 1 u64) that end both residual payloads, then the coded bytes;
// FormatError naming `name` unless they start at 0, end at the payload's end and never fall.
void read_chunk_offsets(detail::Reader& reader, std::size_t n_chunks, const std::string& name,
                        std::vector<uint64_t>& offsets, const uint8_t*& data, std::size_t& data_size) {
  if (reader.left() / 8 < n_chunks + 1) throw FormatError(name + ": truncated residual section");
  offsets.resize(n_chunks + 1);
  for (auto& o : offsets) o = reader.u64();
  data = reader.here();
  data_size = reader.left();
  if (offsets[0] != 0 || offsets.back() != data_size || !std::is_sorted(offsets.begin(), offsets.end()))
    throw FormatError(name + ": corrupt chunk offsets in residual section");
}

}  // namespace

std::vector<uint8_t> encode_residual(const ResidualScheme& scheme, const int32_t* levels,
                                     const uint32_t* classes, std::size_t n, std::size_t dim,
                                     std::size_t chunk_size) {
  if (!scheme.transform) return encode_residual(levels, n, dim, scheme.step, chunk_size);
  check_residual_step(scheme.step);
  require(chunk_size >= 1, "chunk_size must be >= 1");
  const int32_t t = TransformModel::step_index(scheme.step);
  std::vector<uint8_t> out = transform_header(scheme.step, t, n, dim, chunk_size);
  std::vector<uint8_t> data;
  std::vector<uint64_t> offsets{0};
  for (std::size_t begin = 0; begin < n; begin += chunk_size) {
    const std::size_t count = std::min(chunk_size, n - begin);
    const std::vector<uint8_t> chunk =
        transform_chunk(*scheme.transform, levels + begin * dim, classes + begin, count, t);
    data.insert(data.end(), chunk.begin(), chunk.end());
    offsets.push_back(data.size());
  }
  for (uint64_t o : offsets) detail::put_u64(out, o);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

ResidualWriter::ResidualWriter(const ResidualScheme& scheme, std::size_t dim, std::size_t chunk_size)
    : ResidualWriter(scheme.step, dim, chunk_size) {
  transform_ = scheme.transform;
  if (transform_) require(transform_->dim() == dim, "transform dimension differs from the items'");
}

ResidualWriter::ResidualWriter(double step, std::size_t dim, std::size_t chunk_size)
    : step_(step), dim_(dim), chunk_size_(chunk_size) {
  check_residual_step(step);
  require(dim >= 1 && chunk_size >= 1, "ResidualWriter: dim and chunk_size must be >= 1");
  // A unit vector minus a unit vector has coordinates in [-2, 2]: |level| <= 2 / step + 1.
  bound_ = static_cast<int64_t>(2.0 / step) + 2;
  histogram_.assign(static_cast<std::size_t>(2 * bound_ + 1), 0);
}

void ResidualWriter::count(const int32_t* levels, std::size_t n) {
  require(!model_ && coded_items_ == 0, "ResidualWriter: count() after the first chunk()");
  if (transform_) {  // fixed tables: nothing to count but the items
    n_items_ += n;
    return;
  }
  for (std::size_t i = 0; i < n * dim_; ++i) {
    const int64_t level = levels[i];
    require(level >= -bound_ && level <= bound_,
            "residual level " + std::to_string(level) + " out of range");
    ++histogram_[static_cast<std::size_t>(level + bound_)];
    max_level_ = std::max(max_level_, static_cast<uint32_t>(level < 0 ? -level : level));
  }
  n_items_ += n;
}

void ResidualWriter::freeze() {
  if (model_) return;
  const auto m = static_cast<int64_t>(max_level_);
  counts_.assign(histogram_.begin() + (bound_ - m), histogram_.begin() + (bound_ + m + 1));
  const std::vector<uint32_t> freqs = frequencies_from_counts(counts_.data(), counts_.size());
  model_ = std::make_shared<const StaticModel>(freqs.data(), freqs.size());
}

std::size_t ResidualWriter::prefix_size() const {
  const std::size_t n_chunks = (n_items_ + chunk_size_ - 1) / chunk_size_;
  if (transform_) return 8 + 4 + 4 * 4 + 8 * (n_chunks + 1);
  std::vector<uint8_t> varints;
  const auto m = static_cast<int64_t>(max_level_);
  for (int64_t l = -m; l <= m; ++l) detail::put_varint(varints, histogram_[static_cast<std::size_t>(l + bound_)]);
  return 8 + 4 + 4 * 4 + varints.size() + 8 * (n_chunks + 1);
}

std::vector<uint8_t> ResidualWriter::prefix() const {
  const std::size_t n_chunks = (n_items_ + chunk_size_ - 1) / chunk_size_;
  std::vector<uint8_t> out;
  if (transform_) {
    out = transform_header(step_, TransformModel::step_index(step_), n_items_, dim_, chunk_size_);
    std::vector<uint64_t> offsets = offsets_;
    offsets.resize(n_chunks + 1, offsets_.back());
    for (uint64_t o : offsets) detail::put_u64(out, o);
    return out;
  }
  detail::put_f64(out, step_);
  detail::put_u32(out, max_level_);
  for (std::size_t v : {n_items_, dim_, chunk_size_, n_chunks}) detail::put_u32(out, static_cast<uint32_t>(v));
  const auto m = static_cast<int64_t>(max_level_);
  for (int64_t l = -m; l <= m; ++l) detail::put_varint(out, histogram_[static_cast<std::size_t>(l + bound_)]);
  std::vector<uint64_t> offsets = offsets_;
  offsets.resize(n_chunks + 1, offsets_.back());  // chunks not coded (yet) are empty
  for (uint64_t o : offsets) detail::put_u64(out, o);
  return out;
}

std::vector<uint8_t> ResidualWriter::chunk(const int32_t* levels, std::size_t n,
                                           const uint32_t* classes) {
  require(n >= 1 && n <= chunk_size_ && coded_items_ + n <= n_items_ &&
              (n == chunk_size_ || coded_items_ + n == n_items_),
          "ResidualWriter: chunks must hold chunk_size items (fewer only for the last)");
  if (transform_) {
    require(classes != nullptr, "ResidualWriter: a transform-coded chunk needs its classes");
    std::vector<uint8_t> out =
        transform_chunk(*transform_, levels, classes, n, TransformModel::step_index(step_));
    offsets_.push_back(offsets_.back() + out.size());
    coded_items_ += n;
    return out;
  }
  freeze();
  symbols_.resize(n * dim_);
  const auto m = static_cast<int32_t>(max_level_);
  for (std::size_t i = 0; i < n * dim_; ++i) symbols_[i] = levels[i] + m;
  std::vector<uint8_t> out = encode_static(symbols_.data(), symbols_.size(), *model_);
  offsets_.push_back(offsets_.back() + out.size());
  coded_items_ += n;
  return out;
}

ResidualCode ResidualCode::parse(const uint8_t* payload, std::size_t size, const std::string& name,
                                 const TransformModel* transform) {
  detail::Reader reader(payload, size, name + ": residual section");
  if (transform) {
    if (size < 28) throw FormatError(name + ": truncated residual section");
    ResidualCode r;
    r.transform_ = transform;
    r.step_ = reader.f64();
    r.step_index_ = static_cast<int32_t>(reader.u32());
    r.n_items_ = reader.u32();
    r.dim_ = reader.u32();
    r.chunk_size_ = reader.u32();
    const std::size_t n_chunks = reader.u32();
    if (!(std::isfinite(r.step_) && r.step_ >= kMinResidualStep && r.step_ <= 1.0) ||
        r.step_index_ != TransformModel::step_index(r.step_) || r.dim_ != transform->dim() ||
        r.chunk_size_ < 1 || n_chunks != (r.n_items_ + r.chunk_size_ - 1) / r.chunk_size_)
      throw FormatError(name + ": inconsistent transform-coded residual section (step=" +
                        json::python_float_repr(r.step_) + ", n=" + std::to_string(r.n_items_) +
                        ", chunks=" + std::to_string(n_chunks) + ")");
    read_chunk_offsets(reader, n_chunks, name, r.offsets_, r.data_, r.data_size_);
    return r;
  }
  if (size < 28) throw FormatError(name + ": truncated residual section");
  ResidualCode r;
  r.step_ = reader.f64();
  r.max_level_ = reader.u32();
  r.n_items_ = reader.u32();
  r.dim_ = reader.u32();
  r.chunk_size_ = reader.u32();
  const std::size_t n_chunks = reader.u32();
  if (!(std::isfinite(r.step_) && r.step_ >= kMinResidualStep && r.step_ <= 1.0) ||
      r.max_level_ > 2.0 / r.step_ + 1 || r.dim_ < 1 || r.chunk_size_ < 1 ||
      n_chunks != (r.n_items_ + r.chunk_size_ - 1) / r.chunk_size_)
    throw FormatError(name + ": inconsistent residual section (step=" +
                      json::python_float_repr(r.step_) + ", n=" + std::to_string(r.n_items_) +
                      ", chunks=" + std::to_string(n_chunks) + ")");
  const std::vector<uint64_t> counts = reader.varints(2 * std::size_t{r.max_level_} + 1);
  read_chunk_offsets(reader, n_chunks, name, r.offsets_, r.data_, r.data_size_);
  try {
    const std::vector<uint32_t> freqs = frequencies_from_counts(counts.data(), counts.size());
    r.model_ = std::make_shared<const StaticModel>(freqs.data(), freqs.size());
  } catch (const InvalidArgument& e) {
    throw FormatError(name + ": bad residual table (" + e.what() + ")");
  }
  return r;
}

std::pair<std::size_t, std::size_t> ResidualCode::chunk_span(std::size_t start, std::size_t stop) const {
  require(start <= stop && stop <= n_items_, "residual item range out of bounds");
  if (start == stop) return {start, start};
  return {start / chunk_size_ * chunk_size_,
          std::min(n_items_, (stop + chunk_size_ - 1) / chunk_size_ * chunk_size_)};
}

void ResidualCode::levels(std::size_t start, std::size_t stop, int32_t* out,
                          const std::string& name, const uint32_t* classes) const {
  if (!transform_) return levels(start, stop, out, name);
  require(classes != nullptr, "transform-coded residual levels need the items' classes");
  require(start <= stop && stop <= n_items_, "residual item range out of bounds");
  if (start == stop) return;
  const std::size_t first = start / chunk_size_, last = (stop + chunk_size_ - 1) / chunk_size_;
  const std::size_t span_start = first * chunk_size_;
  std::vector<int32_t> rows;
  for (std::size_t c = first; c < last; ++c) {
    const std::size_t begin = c * chunk_size_;
    const std::size_t count = std::min(chunk_size_, n_items_ - begin);
    rows.resize(count * dim_);
    try {
      RangeDecoder dec(data_ + offsets_[c], offsets_[c + 1] - offsets_[c]);
      transform_->decode(dec, classes + (begin - span_start), count, step_index_, rows.data());
      dec.finish();  // the chunk must end exactly where its offsets say
    } catch (const DecodeError& e) {
      throw FormatError(name + ": corrupt residual data (" + e.what() + ")");
    }
    const std::size_t lo = std::max(start, begin), hi = std::min(stop, begin + count);
    std::copy(rows.begin() + (lo - begin) * dim_, rows.begin() + (hi - begin) * dim_,
              out + (lo - start) * dim_);
  }
}

void ResidualCode::levels(std::size_t start, std::size_t stop, int32_t* out,
                          const std::string& name) const {
  require(!transform_, "transform-coded residual levels need the items' classes");
  require(start <= stop && stop <= n_items_, "residual item range out of bounds");
  if (start == stop) return;
  const std::size_t first = start / chunk_size_, last = (stop + chunk_size_ - 1) / chunk_size_;
  const auto offset = static_cast<int32_t>(max_level_);
  std::vector<int32_t> row(dim_);
  for (std::size_t c = first; c < last; ++c) {
    const std::size_t begin = c * chunk_size_;
    const std::size_t count = std::min(chunk_size_, n_items_ - begin);
    try {
      RangeDecoder dec(data_ + offsets_[c], offsets_[c + 1] - offsets_[c]);
      for (std::size_t i = begin; i < begin + count; ++i) {
        for (std::size_t j = 0; j < dim_; ++j) row[j] = static_cast<int32_t>(model_->decode(dec));
        if (i >= start && i < stop)
          for (std::size_t j = 0; j < dim_; ++j) out[(i - start) * dim_ + j] = row[j] - offset;
      }
      dec.finish();  // the chunk must end exactly where its offsets say
    } catch (const DecodeError& e) {
      throw FormatError(name + ": corrupt residual data (" + e.what() + ")");
    }
  }
}

}  // namespace smic
