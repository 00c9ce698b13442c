// Coding dictionaries: storage (.smicd), tables, and coding items with them.
//
// The float arithmetic of loading atoms and reconstructing items follows the numpy reference
// it replaced operation for operation (float64 accumulation, numpy's pairwise sums, the same
// roundings), so decoded embeddings and re-encoded files are bit-identical to earlier ones.
#include "smic/coding_dictionary.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "format/bytes.hpp"
#include "kernels/cpu.hpp"
#include "format/json.hpp"
#include "kernels/vector_kernels.hpp"
#include "smic/container.hpp"
#include "smic/item_choice.hpp"
#include "smic/quantizer.hpp"
#include "smic/range_coder.hpp"
#include "smic/residual.hpp"
#include "smic/transform.hpp"

namespace smic {

namespace {

constexpr std::size_t kMaxAtoms = std::size_t{1} << 16;
constexpr std::size_t kMaxDim = std::size_t{1} << 14;
constexpr std::size_t kMaxAtomValues = std::size_t{1} << 26;

const Tag kDhdr = make_tag("DHDR");
const Tag kAtom = make_tag("ATOM");
const Tag kTabl = make_tag("TABL");
const Tag kXfrm = make_tag("XFRM");
const Tag kXqnt = make_tag("XQNT");  // the transform's quantiser, only when not greedy

double row_norm(const double* row, std::size_t dim, std::vector<double>& scratch) {
  scratch.resize(dim);
  for (std::size_t j = 0; j < dim; ++j) scratch[j] = row[j] * row[j];
  return std::sqrt(detail::pairwise_sum(scratch.data(), dim));
}

// float32 rows as numpy's int8 atom storage computes them: per-atom scale max|a| / 127
// (float32), levels round-half-even of a / scale (float32), clipped to [-127, 127].
std::vector<uint8_t> store_atoms(const float* atoms, std::size_t k, std::size_t dim,
                                 AtomPrecision precision) {
  std::vector<uint8_t> out;
  if (precision == AtomPrecision::kFloat16) {
    out.reserve(2 * k * dim);
    for (std::size_t i = 0; i < k * dim; ++i) detail::put_u16(out, detail::float_to_half(atoms[i]));
    return out;
  }
  std::vector<float> scales(k);
  for (std::size_t a = 0; a < k; ++a) {
    float peak = 0;
    for (std::size_t j = 0; j < dim; ++j) peak = std::max(peak, std::fabs(atoms[a * dim + j]));
    const float scale = peak / 127.0f;
    scales[a] = scale > 0 ? scale : 1.0f;
    uint32_t bits;
    std::memcpy(&bits, &scales[a], 4);
    detail::put_u32(out, bits);
  }
  std::vector<int32_t> symbols(k * dim);
  std::vector<uint64_t> counts(256, 0);
  for (std::size_t a = 0; a < k; ++a)
    for (std::size_t j = 0; j < dim; ++j) {
      const float q = std::nearbyint(atoms[a * dim + j] / scales[a]);
      const int level = static_cast<int>(std::clamp(q, -127.0f, 127.0f));
      symbols[a * dim + j] = level + 128;
      ++counts[static_cast<std::size_t>(level + 128)];
    }
  std::vector<uint8_t> coded{1};
  for (uint64_t c : counts) detail::put_varint(coded, c);
  const std::vector<uint32_t> freqs = frequencies_from_counts(counts.data(), counts.size());
  const StaticModel model(freqs.data(), freqs.size());
  const std::vector<uint8_t> stream = encode_static(symbols.data(), symbols.size(), model);
  coded.insert(coded.end(), stream.begin(), stream.end());
  if (coded.size() < 1 + k * dim) {
    out.insert(out.end(), coded.begin(), coded.end());
  } else {
    out.push_back(0);
    for (int32_t s : symbols) out.push_back(static_cast<uint8_t>(static_cast<int8_t>(s - 128)));
  }
  return out;
}

// The stored atoms as rows times a per-atom factor: float16 values (factor 1) or int8 levels
// (factor: the atom's stored scale). Every row value is exactly a float16.
struct StoredAtoms {
  std::vector<float> rows;
  std::vector<double> factor;
};

// Decode a stored payload; FormatError if damaged.
StoredAtoms decode_atoms(const std::vector<uint8_t>& payload, std::size_t k, std::size_t dim,
                         AtomPrecision precision, const std::string& name) {
  // Sizes are checked against the payload before anything K x d is allocated.
  if (precision == AtomPrecision::kFloat16 && payload.size() != 2 * k * dim)
    throw FormatError(name + ": atoms: expected " + std::to_string(2 * k * dim) +
                      " bytes of float16, found " + std::to_string(payload.size()));
  std::vector<uint64_t> counts;  // int8, range-coded: the level counts
  std::size_t stream_start = 0;  // and where their stream starts in the payload
  if (precision == AtomPrecision::kInt8) {
    if (payload.size() < 4 * k + 1) throw FormatError(name + ": atoms: truncated scales");
    const uint8_t* rest = payload.data() + 4 * k;
    const std::size_t rest_size = payload.size() - 4 * k;
    if (rest[0] > 1) throw FormatError(name + ": atoms: unknown coding flag " + std::to_string(rest[0]));
    if (rest[0] == 0 && rest_size != 1 + k * dim)
      throw FormatError(name + ": atoms: expected " + std::to_string(k * dim) +
                        " int8 values, found " + std::to_string(rest_size - 1) + " bytes");
    if (rest[0] == 1) {
      detail::Reader reader(rest + 1, rest_size - 1, name + ": atom table");
      counts = reader.varints(256);
      stream_start = 4 * k + 1 + reader.pos();
      uint64_t total = 0;  // the writer counts exactly the K x d levels it codes
      for (uint64_t c : counts) total += std::min<uint64_t>(c, uint64_t{1} << 40);
      if (total != k * dim)
        throw FormatError(name + ": atoms: the level table counts " + std::to_string(total) +
                          " values, expected " + std::to_string(k * dim));
    }
  }
  StoredAtoms stored{std::vector<float>(k * dim), std::vector<double>(k, 1.0)};
  if (precision == AtomPrecision::kFloat16) {
    for (std::size_t i = 0; i < k * dim; ++i)
      stored.rows[i] = detail::half_to_float(detail::get_u16(payload.data() + 2 * i));
  } else {
    std::vector<float> scales(k);
    std::memcpy(scales.data(), payload.data(), 4 * k);  // little-endian hosts only (x86, arm)
    std::vector<int32_t> levels(k * dim);
    if (counts.empty()) {  // flag 0: raw int8
      for (std::size_t i = 0; i < k * dim; ++i) levels[i] = static_cast<int8_t>(payload[4 * k + 1 + i]);
    } else {
      try {
        const std::vector<uint32_t> freqs = frequencies_from_counts(counts.data(), 256);
        const StaticModel model(freqs.data(), freqs.size());
        decode_static(payload.data() + stream_start, payload.size() - stream_start, model,
                      levels.data(), k * dim);
      } catch (const std::exception& e) {
        throw FormatError(name + ": atoms: " + e.what());
      }
      for (auto& v : levels) v -= 128;
    }
    for (std::size_t i = 0; i < k * dim; ++i) stored.rows[i] = static_cast<float>(levels[i]);
    for (std::size_t a = 0; a < k; ++a) stored.factor[a] = scales[a];
  }
  return stored;
}

// Unit-norm float32 atoms of stored ones (FormatError if one is zero or not finite), and the
// float32 factor f of each, atom ~ f * row, by which the coder scales its products with rows.
std::vector<float> normalize_atoms(const StoredAtoms& stored, std::size_t k, std::size_t dim,
                                   const std::string& name, std::vector<float>* row_scale) {
  std::vector<double> atoms(k * dim);
  for (std::size_t a = 0; a < k; ++a)
    for (std::size_t j = 0; j < dim; ++j)
      atoms[a * dim + j] = static_cast<double>(stored.rows[a * dim + j]) * stored.factor[a];
  std::vector<float> out(k * dim);
  if (row_scale) row_scale->assign(k, 0.0f);
  std::vector<double> scaled(dim), scratch;
  for (std::size_t a = 0; a < k; ++a) {
    const double* row = atoms.data() + a * dim;
    double peak = 0;
    for (std::size_t j = 0; j < dim; ++j) {
      if (!std::isfinite(row[j])) throw FormatError(name + ": atoms: non-finite values");
      peak = std::max(peak, std::fabs(row[j]));
    }
    if (peak == 0) throw FormatError(name + ": atoms: an atom is zero");
    for (std::size_t j = 0; j < dim; ++j) scaled[j] = row[j] / peak;  // in [-1, 1]
    const double norm = row_norm(scaled.data(), dim, scratch);
    for (std::size_t j = 0; j < dim; ++j) out[a * dim + j] = static_cast<float>(scaled[j] / norm);
    if (row_scale) (*row_scale)[a] = static_cast<float>(stored.factor[a] / (peak * norm));
  }
  return out;
}

uint32_t json_uint(const json::Value* v, const char* field, uint64_t most) {
  if (!v || v->kind != json::Value::Kind::kInt || v->integer < 0 ||
      static_cast<uint64_t>(v->integer) > most)
    throw InvalidArgument(std::string(field) + " must be an integer in [0, " +
                          std::to_string(most) + "]");
  return static_cast<uint32_t>(v->integer);
}

double json_number(const json::Value* v, const char* field) {
  if (!v || !v->is_number()) throw InvalidArgument(std::string(field) + " must be a number");
  return v->as_double();
}

CodingParams params_from_json(const json::Value& p) {
  if (p.kind != json::Value::Kind::kObject) throw InvalidArgument("params must be an object");
  CodingParams out;
  out.s_max = json_uint(p.find("s_max"), "s_max", kMaxAtoms);
  out.step = json_number(p.find("step"), "step");
  out.rounding = json_number(p.find("rounding"), "rounding");
  out.rd_lambda = json_number(p.find("rd_lambda"), "rd_lambda");
  const json::Value* layout = p.find("layout");
  if (!layout || layout->kind != json::Value::Kind::kString ||
      (layout->text != "smic" && layout->text != "paper"))
    throw InvalidArgument("layout must be 'smic' or 'paper'");
  out.layout = layout->text == "paper" ? ItemLayout::kPaper : ItemLayout::kSorted;
  out.paper_bits = json_uint(p.find("paper_bits"), "paper_bits", 16);
  out.paper_range = json_number(p.find("paper_range"), "paper_range");
  out.validate();
  return out;
}

std::vector<uint32_t> table_from(const std::vector<uint64_t>& counts) {
  return frequencies_from_counts(counts.data(), counts.size());
}

}  // namespace

// ---- CodingParams / TableCounts / ItemCodes -------------------------------------------------

void CodingParams::validate() const {
  require(s_max >= 1, "n_nonzero must be an integer >= 1, got " + std::to_string(s_max));
  require(std::isfinite(step) && step > 0 && step <= 1,
          "step must be in (0, 1], got " + json::python_float_repr(step));
  require(rounding >= 0 && rounding < 1,
          "rounding must be in [0, 1), got " + json::python_float_repr(rounding));
  require(std::isfinite(rd_lambda) && rd_lambda >= 0,
          "rd_lambda must be a finite number >= 0, got " + json::python_float_repr(rd_lambda));
  require(layout == ItemLayout::kSorted || layout == ItemLayout::kPaper, "unknown layout");
  require(paper_bits >= 1 && paper_bits <= 16,
          "paper_bits must be in [1, 16], got " + std::to_string(paper_bits));
  require(std::isfinite(paper_range) && paper_range > 0,
          "paper_range must be > 0, got " + json::python_float_repr(paper_range));
}

uint32_t CodingParams::max_level() const {
  return static_cast<uint32_t>(std::floor(1.0 / step + rounding));
}

uint32_t CodingParams::level_alphabet() const {
  return layout == ItemLayout::kPaper ? (uint32_t{1} << paper_bits) : 2 * max_level() + 1;
}

TableCounts TableCounts::flat(std::size_t n_atoms, const CodingParams& params) {
  TableCounts t;
  t.count.assign(params.s_max + 1, 0);
  t.first.assign(2 * n_atoms, 0);
  t.index.assign(n_atoms, 0);
  t.level.assign(params.level_alphabet(), 0);
  return t;
}

ItemColumns<const int32_t> ItemCodes::columns() const {
  return {counts.data(), first.data(), rest_index.data(), rest_level.data()};
}

ItemCodes ItemCodes::slice(std::size_t start, std::size_t stop) const {
  std::vector<std::size_t> rows(stop - start);
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = start + i;
  return take(rows);
}

ItemCodes ItemCodes::take(const std::vector<std::size_t>& rows) const {
  ItemCodes out;
  out.n = rows.size();
  out.width = width;
  out.counts.reserve(out.n);
  out.first.reserve(out.n);
  out.rest_index.reserve(out.n * width);
  out.rest_level.reserve(out.n * width);
  for (std::size_t r : rows) {
    out.counts.push_back(counts[r]);
    out.first.push_back(first[r]);
    out.rest_index.insert(out.rest_index.end(), rest_index.begin() + r * width,
                          rest_index.begin() + (r + 1) * width);
    out.rest_level.insert(out.rest_level.end(), rest_level.begin() + r * width,
                          rest_level.begin() + (r + 1) * width);
  }
  return out;
}

// ---- construction and storage ------------------------------------------------------------------

CodingDictionary::CodingDictionary(const float* atoms, std::size_t n_atoms, std::size_t dim,
                                   const CodingParams& params, AtomPrecision precision,
                                   TableCounts counts)
    : n_atoms_(n_atoms), dim_(dim), params_(params), precision_(precision),
      counts_(std::move(counts)) {
  require(n_atoms >= 1 && n_atoms <= kMaxAtoms && dim >= 1 && dim <= kMaxDim &&
              n_atoms * dim <= kMaxAtomValues,
          "atoms must be K x d with 1 <= K <= 65536, 1 <= d <= 16384 and K d <= 2^26, got " +
              std::to_string(n_atoms) + " x " + std::to_string(dim));
  require(precision == AtomPrecision::kFloat16 || precision == AtomPrecision::kInt8,
          "unknown atom precision");
  require_finite(atoms, n_atoms * dim, "atoms");
  atom_payload_ = store_atoms(atoms, n_atoms, dim, precision);
  try {
    finish("<dictionary>");
  } catch (const FormatError& e) {  // e.g. a zero atom: the caller's argument
    throw InvalidArgument(e.what());
  }
}

CodingDictionary::CodingDictionary(Stored, std::vector<uint8_t> atom_payload, std::size_t n_atoms,
                                   std::size_t dim, const CodingParams& params,
                                   AtomPrecision precision, TableCounts counts,
                                   const std::string& name)
    : n_atoms_(n_atoms), dim_(dim), params_(params), precision_(precision),
      atom_payload_(std::move(atom_payload)), counts_(std::move(counts)) {
  finish(name);
}

void CodingDictionary::finish(const std::string& name) {
  params_.validate();
  require(params_.s_max <= std::min(n_atoms_, dim_),
          "n_nonzero (" + std::to_string(params_.s_max) + ") must be <= min(n_atoms, d) = " +
              std::to_string(std::min(n_atoms_, dim_)));
  const std::size_t expected[4] = {params_.s_max + std::size_t{1}, 2 * n_atoms_, n_atoms_,
                                   params_.level_alphabet()};
  const std::vector<uint64_t>* tables[4] = {&counts_.count, &counts_.first, &counts_.index,
                                            &counts_.level};
  static const char* kNames[4] = {"count", "first", "index", "level"};
  flat_ = true;
  for (int t = 0; t < 4; ++t) {
    require(tables[t]->empty() || tables[t]->size() == expected[t],
            std::string(kNames[t]) + " table has " + std::to_string(tables[t]->size()) +
                " entries, expected " + std::to_string(expected[t]));
    for (uint64_t c : *tables[t]) flat_ = flat_ && c == 0;
  }
  atoms_ = normalize_atoms(decode_atoms(atom_payload_, n_atoms_, dim_, precision_, name), n_atoms_,
                           dim_, name, nullptr);
  if (params_.layout == ItemLayout::kPaper) {
    std::size_t width = 1;
    while (width < n_atoms_) width <<= 1;  // fixed-length indices
    const std::vector<uint32_t> index(width, 1), level(params_.level_alphabet(), 1);
    models_ = std::make_unique<ItemModels>(FrequencyTable{}, FrequencyTable{},
                                           FrequencyTable{index.data(), index.size()},
                                           FrequencyTable{level.data(), level.size()},
                                           params_.s_max, ItemLayout::kPaper);
  } else {
    std::vector<uint32_t> freqs[4];
    for (int t = 0; t < 4; ++t) {
      require(!tables[t]->empty(), std::string(kNames[t]) + " table is empty");
      freqs[t] = table_from(*tables[t]);
    }
    models_ = std::make_unique<ItemModels>(
        FrequencyTable{freqs[0].data(), freqs[0].size()},
        FrequencyTable{freqs[1].data(), freqs[1].size()},
        FrequencyTable{freqs[2].data(), freqs[2].size()},
        FrequencyTable{freqs[3].data(), freqs[3].size()}, params_.s_max, ItemLayout::kSorted);
  }
}

std::vector<uint8_t> CodingDictionary::header_json() const {
  json::Writer w;
  w.begin_object()
      .key("dim").integer(static_cast<int64_t>(dim_))
      .key("kind").string("smic-dictionary")
      .key("n_atoms").integer(static_cast<int64_t>(n_atoms_))
      .key("params").begin_object()
      .key("layout").string(params_.layout == ItemLayout::kPaper ? "paper" : "smic")
      .key("paper_bits").integer(params_.paper_bits)
      .key("paper_range").number(params_.paper_range)
      .key("rd_lambda").number(params_.rd_lambda)
      .key("rounding").number(params_.rounding)
      .key("s_max").integer(params_.s_max)
      .key("step").number(params_.step)
      .end_object()
      .key("precision").string(precision_name())
      .end_object();
  return {w.str().begin(), w.str().end()};
}

std::vector<uint8_t> CodingDictionary::tables_payload() const {
  std::vector<uint8_t> raw;
  for (const auto* table : {&counts_.count, &counts_.first, &counts_.index, &counts_.level}) {
    detail::put_varint(raw, table->size());
    for (uint64_t c : *table) detail::put_varint(raw, c);
  }
  return detail::zlib_compress(raw.data(), raw.size());
}

std::vector<uint8_t> CodingDictionary::to_bytes() const {
  std::vector<Section> sections{{kDhdr, header_json()}, {kAtom, atom_payload_}, {kTabl, tables_payload()}};
  if (transform_) sections.push_back({kXfrm, transform_->to_bytes()});
  if (transform_ && !transform_->quantiser_bytes().empty())
    sections.push_back({kXqnt, transform_->quantiser_bytes()});
  return encode_container(kDictionaryMagic, transform_ ? 2 : 1, sections);
}

std::shared_ptr<const CodingDictionary> CodingDictionary::with_transform(
    std::shared_ptr<const TransformModel> transform) const {
  if (transform)
    require(transform->dim() == dim_ && transform->n_atoms() == n_atoms_,
            "the transform is for " + std::to_string(transform->n_atoms()) + " atoms of dimension " +
                std::to_string(transform->dim()) + ", the dictionary has " + std::to_string(n_atoms_) +
                " of dimension " + std::to_string(dim_));
  auto out = std::shared_ptr<CodingDictionary>(new CodingDictionary(
      Stored{}, atom_payload_, n_atoms_, dim_, params_, precision_, counts_, "<dictionary>"));
  out->transform_ = std::move(transform);
  return out;
}

void CodingDictionary::save(const std::string& path) const {
  const std::vector<uint8_t> bytes = to_bytes();
  atomic_write(path, bytes.data(), bytes.size());
}

const std::array<uint8_t, 32>& CodingDictionary::hash() const {
  std::call_once(hash_once_, [this] {  // over the canonical sections: what save() writes
    std::vector<uint8_t> digest_input;
    const std::vector<uint8_t> header = header_json(), tables_bytes = tables_payload();
    const std::vector<uint8_t> transform_bytes = transform_ ? transform_->to_bytes() : std::vector<uint8_t>{};
    const std::vector<uint8_t> quantiser_bytes = transform_ ? transform_->quantiser_bytes() : std::vector<uint8_t>{};
    std::vector<std::pair<Tag, const std::vector<uint8_t>*>> parts = {
        {kDhdr, &header}, {kAtom, &atom_payload_}, {kTabl, &tables_bytes}};
    if (transform_) parts.push_back({kXfrm, &transform_bytes});  // version 1 hashes unchanged
    if (!quantiser_bytes.empty()) parts.push_back({kXqnt, &quantiser_bytes});  // greedy ones too
    for (const auto& [tag, payload] : parts) {
      digest_input.insert(digest_input.end(), tag.begin(), tag.end());
      detail::put_u64(digest_input, payload->size());
      digest_input.insert(digest_input.end(), payload->begin(), payload->end());
    }
    detail::sha256(digest_input.data(), digest_input.size(), hash_.data());
  });
  return hash_;
}

std::string CodingDictionary::hash_hex() const {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint8_t b : hash()) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::shared_ptr<const CodingDictionary> CodingDictionary::load(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return from_bytes(bytes.data(), bytes.size(), path);
}

std::shared_ptr<const CodingDictionary> CodingDictionary::from_bytes(const uint8_t* data,
                                                                     std::size_t size,
                                                                     const std::string& name) {
  const ContainerView view = parse_container(data, size, kDictionaryMagic, "smic dictionary", name);
  const SectionView* found[3] = {nullptr, nullptr, nullptr};
  const SectionView* transform_section = nullptr;
  const SectionView* quantiser_section = nullptr;
  for (const SectionView& s : view.sections) {  // the last of each tag counts
    if (s.tag == kDhdr) found[0] = &s;
    if (s.tag == kAtom) found[1] = &s;
    if (s.tag == kTabl) found[2] = &s;
    if (s.tag == kXfrm) transform_section = &s;
    if (s.tag == kXqnt) quantiser_section = &s;
  }
  if (transform_section && view.version < 2)
    throw FormatError(name + ": a transform section needs dictionary version 2, the file says " +
                      std::to_string(view.version));
  static const char* kTags[3] = {"DHDR", "ATOM", "TABL"};
  for (int t = 0; t < 3; ++t)
    if (!found[t]) throw FormatError(name + ": missing section " + kTags[t]);
  std::size_t n_atoms = 0, dim = 0;
  CodingParams params;
  AtomPrecision precision = AtomPrecision::kFloat16;
  try {
    const json::Value header =
        json::parse(std::string(reinterpret_cast<const char*>(found[0]->data), found[0]->size));
    n_atoms = json_uint(header.find("n_atoms"), "n_atoms", kMaxAtoms);
    dim = json_uint(header.find("dim"), "dim", kMaxDim);
    const json::Value* p = header.find("precision");
    if (!p || p->kind != json::Value::Kind::kString || (p->text != "float16" && p->text != "int8"))
      throw InvalidArgument("precision must be 'float16' or 'int8'");
    precision = p->text == "int8" ? AtomPrecision::kInt8 : AtomPrecision::kFloat16;
    const json::Value* params_json = header.find("params");
    if (!params_json) throw InvalidArgument("missing params");
    params = params_from_json(*params_json);
  } catch (const std::invalid_argument& e) {  // InvalidArgument and JSON errors
    throw FormatError(name + ": unreadable dictionary header (" + e.what() + ")");
  }
  if (n_atoms < 1 || dim < 1 || n_atoms * dim > kMaxAtomValues ||
      params.s_max > std::min(n_atoms, dim))
    throw FormatError(name + ": implausible dictionary header (n_atoms " +
                      std::to_string(n_atoms) + ", dim " + std::to_string(dim) + ", s_max " +
                      std::to_string(params.s_max) + ")");
  const std::size_t expected[4] = {params.s_max + std::size_t{1}, 2 * n_atoms, n_atoms,
                                   params.level_alphabet()};
  const std::size_t limit = 10 * (expected[0] + expected[1] + expected[2] + expected[3] + 4);
  const std::vector<uint8_t> tables =
      detail::zlib_decompress(found[2]->data, found[2]->size, limit, name + ": tables section");
  detail::Reader reader(tables.data(), tables.size(), name + ": tables");
  TableCounts counts;
  std::vector<uint64_t>* targets[4] = {&counts.count, &counts.first, &counts.index, &counts.level};
  static const char* kNames[4] = {"count", "first", "index", "level"};
  for (int t = 0; t < 4; ++t) {
    const uint64_t n = reader.varint();
    if (n != 0 && n != expected[t])
      throw FormatError(name + ": " + kNames[t] + " table has " + std::to_string(n) +
                        " entries, expected " + std::to_string(expected[t]));
    *targets[t] = reader.varints(static_cast<std::size_t>(n));
  }
  if (reader.left() != 0) throw FormatError(name + ": trailing bytes after the tables");
  std::vector<uint8_t> atom_payload(found[1]->data, found[1]->data + found[1]->size);
  std::shared_ptr<const TransformModel> transform;
  if (transform_section) {
    const TransformQuantiser quantiser =
        quantiser_section ? TransformModel::parse_quantiser(quantiser_section->data, quantiser_section->size, name)
                          : TransformQuantiser::kGreedy;
    transform = TransformModel::parse(transform_section->data, transform_section->size, name, quantiser);
    if (transform->dim() != dim || transform->n_atoms() != n_atoms)
      throw FormatError(name + ": the transform section does not match the atoms");
  }
  try {
    auto out = std::shared_ptr<CodingDictionary>(new CodingDictionary(
        Stored{}, std::move(atom_payload), n_atoms, dim, params, precision, std::move(counts), name));
    out->transform_ = std::move(transform);
    return out;
  } catch (const InvalidArgument& e) {  // tables the coder refuses
    throw FormatError(name + ": invalid dictionary (" + e.what() + ")");
  }
}

const OmpCoder& CodingDictionary::coder() const {
  std::call_once(coder_once_, [this] {
    // Correlations from the stored rows (exact float16) and a factor per atom: a single item
    // then reads the float16 copy of the rows, half the bytes of the float32 atoms.
    const StoredAtoms stored = decode_atoms(atom_payload_, n_atoms_, dim_, precision_, "atoms");
    std::vector<float> row_scale;
    normalize_atoms(stored, n_atoms_, dim_, "atoms", &row_scale);
    coder_ = std::make_unique<OmpCoder>(atoms_.data(), stored.rows.data(), row_scale.data(),
                                        n_atoms_, dim_, 1);
  });
  return *coder_;
}

// ---- table fitting ---------------------------------------------------------------------------

namespace {

TableCounts fit_counts(const ItemCodes& codes, std::size_t n_atoms, const CodingParams& params) {
  TableCounts t = TableCounts::flat(n_atoms, params);
  for (std::size_t i = 0; i < codes.n; ++i) {
    const auto count = static_cast<std::size_t>(codes.counts[i]);
    ++t.count[count];
    if (count > 0) ++t.first[static_cast<std::size_t>(codes.first[i])];
    for (std::size_t j = 0; j < codes.width; ++j) {
      const int32_t a = codes.rest_index[i * codes.width + j];
      if (a < 0) continue;
      ++t.index[static_cast<std::size_t>(a)];
      ++t.level[static_cast<std::size_t>(codes.rest_level[i * codes.width + j])];
    }
  }
  return t;
}

// numpy's float32 norm: float32 squares, float32 pairwise sum, float32 sqrt.
float float32_norm(const float* row, std::size_t n) {
  std::vector<float> squares(n);
  for (std::size_t j = 0; j < n; ++j) squares[j] = row[j] * row[j];
  return std::sqrt(detail::pairwise_sum(squares.data(), n));
}

}  // namespace

KsvdResult learn_for_rate(const float* unit, std::size_t n, std::size_t dim,
                          const CodingParams& params, AtomPrecision precision, KsvdOptions options,
                          std::size_t sparsity_iterations, const KsvdProgress& progress) {
  params.validate();
  require(params.layout == ItemLayout::kSorted,
          "learning for the rate needs the smic layout (the paper layout has no rate choice)");
  require(n >= 1 && dim >= 1, "embeddings must have at least one row and one column");
  require_finite(unit, n * dim, "embeddings");
  for (std::size_t i = 0; i < n; ++i) {
    double sq = 0.0;
    for (std::size_t j = 0; j < dim; ++j) sq += double(unit[i * dim + j]) * unit[i * dim + j];
    require(sq == 0.0 || std::fabs(std::sqrt(sq) - 1.0) <= 1e-3,
            "embeddings must have unit-norm rows (row " + std::to_string(i) + " has norm " +
                std::to_string(std::sqrt(sq)) + ")");
  }
  const std::size_t n_atoms = options.n_atoms, s = params.s_max;
  require(s <= std::min(n_atoms, dim), "n_nonzero (" + std::to_string(s) +
                                           ") must be <= min(n_atoms, d) = " +
                                           std::to_string(std::min(n_atoms, dim)));
  options.n_nonzero = s;
  ItemChoiceParams p;
  p.s_max = s;
  p.step = params.step;
  p.rounding = params.rounding;
  p.rd_lambda = params.rd_lambda;
  TableCounts counts = TableCounts::flat(n_atoms, params);
  ItemCodes codes;
  codes.n = n;
  codes.width = s - 1;
  std::vector<double> cosine(n);
  const int threads = options.n_threads;
  std::size_t iteration = 0;
  options.sparse_coder = [&](const float* atoms, std::int32_t* indices, float* coefs) {
    if (iteration++ < sparsity_iterations) {  // K-SVD's own coding: s_max atoms for every item
      const OmpCoder coder(atoms, n_atoms, dim, threads);
      coder.encode(unit, n, s, -1.0, indices, coefs, threads);
      return;
    }
    // The atoms as the file would store them, the tables of the last iteration's codes.
    const CodingDictionary current(atoms, n_atoms, dim, params, precision, counts);
    codes.counts.resize(n);
    codes.first.resize(n);
    codes.rest_index.resize(n * codes.width);
    codes.rest_level.resize(n * codes.width);
    choose_items(current.coder(), unit, n, p, current.flat() ? nullptr : &current.models(),
                 {codes.counts.data(), codes.first.data(), codes.rest_index.data(),
                  codes.rest_level.data(), cosine.data(), indices, coefs},
                 threads);
    counts = fit_counts(codes, n_atoms, params);
  };
  return learn_dictionary(unit, n, dim, options, progress);
}

std::shared_ptr<const CodingDictionary> CodingDictionary::with_tables(
    const float* atoms, std::size_t n_atoms, const float* unit, std::size_t n, std::size_t dim,
    CodingParams params, AtomPrecision precision, int n_threads, ItemCodes* codes_out) {
  require(n >= 1, "embeddings have no rows (N = 0): nothing to fit tables on");
  params.validate();
  if (params.layout == ItemLayout::kPaper) {
    // paper_range: the largest |coefficient| of the training items over the given atoms
    // (normalised in float32, as the numpy reference does).
    std::vector<float> normed(atoms, atoms + n_atoms * dim);
    for (std::size_t a = 0; a < n_atoms; ++a) {
      const float norm = float32_norm(atoms + a * dim, dim);
      for (std::size_t j = 0; j < dim; ++j) normed[a * dim + j] = atoms[a * dim + j] / norm;
    }
    OmpCoder coder(normed.data(), n_atoms, dim, n_threads);
    std::vector<int32_t> indices(n * params.s_max);
    std::vector<float> coefs(n * params.s_max);
    coder.encode(unit, n, params.s_max, -1.0, indices.data(), coefs.data(), n_threads);
    float peak = 0;
    for (float c : coefs) peak = std::max(peak, std::fabs(c));
    params.paper_range = std::max(static_cast<double>(peak), 1e-6);
  }
  auto draft = std::make_shared<const CodingDictionary>(atoms, n_atoms, dim, params, precision,
                                                        TableCounts::flat(n_atoms, params));
  ItemCodes codes = draft->choose(unit, n, n_threads);  // flat-model rates
  if (params.layout == ItemLayout::kPaper) {
    if (codes_out) *codes_out = std::move(codes);
    return draft;
  }
  auto fitted = [&](const ItemCodes& c) {
    return std::shared_ptr<const CodingDictionary>(new CodingDictionary(
        Stored{}, draft->atom_payload_, n_atoms, dim, params, precision,
        fit_counts(c, n_atoms, params), "<dictionary>"));
  };
  auto tuned = fitted(codes);
  codes = tuned->choose(unit, n, n_threads);  // rates of the fitted tables
  auto final_dictionary = fitted(codes);
  if (codes_out) *codes_out = std::move(codes);
  return final_dictionary;
}

// ---- coding ----------------------------------------------------------------------------------

ItemCodes CodingDictionary::choose(const float* unit, std::size_t n, int n_threads,
                                   std::vector<double>* cosine) const {
  ItemCodes codes;
  codes.n = n;
  codes.width = models_->row_width();
  codes.rest_index.resize(n * codes.width);
  codes.rest_level.resize(n * codes.width);
  if (params_.layout == ItemLayout::kPaper) {
    const std::size_t s = params_.s_max;
    std::vector<float> coefs(n * s);
    coder().encode(unit, n, s, -1.0, codes.rest_index.data(), coefs.data(), n_threads);
    const int32_t half = int32_t{1} << (params_.paper_bits - 1);
    const auto step = static_cast<float>(params_.paper_range / half);
    for (std::size_t i = 0; i < n * s; ++i) {
      if (codes.rest_index[i] < 0) {  // an early stop repeats atom 0 with coefficient 0
        codes.rest_index[i] = 0;
        codes.rest_level[i] = half;
        continue;
      }
      const float q = std::nearbyint(coefs[i] / step);
      const float clipped = std::clamp(q, static_cast<float>(-half), static_cast<float>(half - 1));
      codes.rest_level[i] = static_cast<int32_t>(clipped) + half;
    }
    codes.counts.assign(n, static_cast<int32_t>(s));
    codes.first.assign(n, 0);
    if (cosine) cosine->clear();
    return codes;
  }
  codes.counts.resize(n);
  codes.first.resize(n);
  std::vector<double> cos(n);
  ItemChoiceParams p;
  p.s_max = params_.s_max;
  p.step = params_.step;
  p.rounding = params_.rounding;
  p.rd_lambda = params_.rd_lambda;
  choose_items(coder(), unit, n, p, flat_ ? nullptr : models_.get(),
               {codes.counts.data(), codes.first.data(), codes.rest_index.data(),
                codes.rest_level.data(), cos.data()},
               n_threads);
  if (cosine) *cosine = std::move(cos);
  return codes;
}

void CodingDictionary::reconstruct(const ItemCodes& codes, float* out) const {
  const std::size_t d = dim_, w = codes.width;
  thread_local std::vector<double> row, scratch;  // no allocation per call (one item: 5 us)
  row.resize(d);
  for (std::size_t i = 0; i < codes.n; ++i) {
    std::fill(row.begin(), row.end(), 0.0);
    const int32_t* index = codes.rest_index.data() + i * w;
    const int32_t* level = codes.rest_level.data() + i * w;
    if (params_.layout == ItemLayout::kPaper) {
      const double half = static_cast<double>(uint32_t{1} << (params_.paper_bits - 1));
      const double scale = params_.paper_range / half;
      for (std::size_t j = 0; j < w; ++j) {
        if (index[j] < 0 || static_cast<std::size_t>(index[j]) >= n_atoms_)
          throw InvalidArgument("item " + std::to_string(i) + " uses atom " +
                            std::to_string(index[j]) + " of a " + std::to_string(n_atoms_) +
                            "-atom dictionary");
        const double weight = (static_cast<double>(level[j]) - half) * scale;
        const float* atom = atoms_.data() + static_cast<std::size_t>(index[j]) * d;
        for (std::size_t k = 0; k < d; ++k) row[k] += weight * static_cast<double>(atom[k]);
      }
    } else if (codes.counts[i] > 0) {
      const int32_t first = codes.first[i];
      const float* lead = atoms_.data() + static_cast<std::size_t>(first / 2) * d;
      const double sign = first % 2 == 1 ? -1.0 : 1.0;
      for (std::size_t k = 0; k < d; ++k) row[k] = sign * static_cast<double>(lead[k]);
      const ScalarQuantizer q{params_.step, 0.5, 0.0};
      const auto max_level = static_cast<int32_t>(params_.max_level());
      for (std::size_t j = 0; j < w; ++j) {
        if (index[j] < 0) continue;
        const int32_t value = level[j] - max_level;
        float weight;
        q.dequantize(&value, 1, &weight);
        const double wd = weight;
        const float* atom = atoms_.data() + static_cast<std::size_t>(index[j]) * d;
        for (std::size_t k = 0; k < d; ++k) row[k] += wd * static_cast<double>(atom[k]);
      }
    }
    const double norm = row_norm(row.data(), d, scratch);
    const double divisor = norm > 0 ? norm : 1.0;
    float* o = out + i * d;
    for (std::size_t k = 0; k < d; ++k) o[k] = static_cast<float>(row[k] / divisor);
  }
}

const ItemModels& CodingDictionary::models(IndexModel index_model) const {
  if (index_model == IndexModel::kOrder0) return *models_;
  require(params_.layout == ItemLayout::kSorted,
          "the remaining-atoms index model needs a dictionary of the smic layout");
  std::call_once(remaining_once_, [this] {
    remaining_models_ = std::make_unique<ItemModels>(models_->derive_remaining());
  });
  return *remaining_models_;
}

EncodedItems CodingDictionary::encode_items(const ItemCodes& codes, std::size_t chunk_size,
                                            int n_threads, IndexModel index_model) const {
  return smic::encode_items(models(index_model), codes.columns(), codes.n, chunk_size, n_threads);
}

ItemCodes CodingDictionary::empty_codes(std::size_t n) const {
  ItemCodes codes;
  codes.n = n;
  codes.width = models_->row_width();
  codes.counts.resize(n);
  codes.first.resize(n);
  codes.rest_index.resize(n * codes.width);
  codes.rest_level.resize(n * codes.width);
  return codes;
}

// The paper layout codes no count or first symbol: fill them, and check the indices (its index
// alphabet is padded to a power of two, so a corrupt stream may name atoms past K).
void CodingDictionary::check_decoded(ItemCodes& codes) const {
  if (params_.layout != ItemLayout::kPaper) return;
  std::fill(codes.counts.begin(), codes.counts.end(), static_cast<int32_t>(params_.s_max));
  std::fill(codes.first.begin(), codes.first.end(), 0);
  for (int32_t a : codes.rest_index)
    if (static_cast<std::size_t>(a) >= n_atoms_)
      throw DecodeError("an item uses atom " + std::to_string(a) + " of a " +
                        std::to_string(n_atoms_) + "-atom dictionary");
}

ItemCodes CodingDictionary::decode_items(const uint8_t* data, std::size_t size,
                                         const uint64_t* offsets, std::size_t n_offsets,
                                         std::size_t n_items, std::size_t chunk_size,
                                         std::size_t start, std::size_t stop,
                                         int n_threads, IndexModel index_model) const {
  ItemCodes codes = empty_codes(stop - start);
  smic::decode_items(models(index_model), data, size, offsets, n_offsets, n_items, chunk_size, start, stop,
                     {codes.counts.data(), codes.first.data(), codes.rest_index.data(),
                      codes.rest_level.data()},
                     n_threads);
  check_decoded(codes);
  return codes;
}

ItemCodes CodingDictionary::decode_chunk_items(const uint8_t* data, std::size_t size,
                                               const uint64_t* offsets, std::size_t n_offsets,
                                               std::size_t n_items, std::size_t chunk_size,
                                               std::size_t start, std::size_t stop,
                                               ChunkCheckpoints* record,
                                               const ChunkCheckpoints* resume,
                                               IndexModel index_model) const {
  ItemCodes codes = empty_codes(stop - start);
  smic::decode_chunk_items(models(index_model), data, size, offsets, n_offsets, n_items, chunk_size, start,
                           stop,
                           {codes.counts.data(), codes.first.data(), codes.rest_index.data(),
                            codes.rest_level.data()},
                           record, 16, resume);
  check_decoded(codes);
  return codes;
}

namespace {

// out[j] = float(double(row[j]) / divisor): IEEE division, the same in any vector width (one
// dimension of 1024 takes about 1.3 us in scalar divisions, a third of that four at a time).
void divide_row_generic(const float* row, std::size_t dim, double divisor, float* out) {
  for (std::size_t j = 0; j < dim; ++j) out[j] = static_cast<float>(static_cast<double>(row[j]) / divisor);
}

#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx2"))) void divide_row_avx2(const float* row, std::size_t dim,
                                                     double divisor, float* out) {
  for (std::size_t j = 0; j < dim; ++j) out[j] = static_cast<float>(static_cast<double>(row[j]) / divisor);
}
#endif

void divide_row(const float* row, std::size_t dim, double divisor, float* out) {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool avx2 = detail::use_avx2_kernels();
  if (avx2) return divide_row_avx2(row, dim, divisor, out);
#endif
  divide_row_generic(row, dim, divisor, out);
}

// Norm of one row as numpy computes it (squares in float64, pairwise sum); InvalidArgument
// naming the row if it holds NaN or infinity.
double checked_norm(const float* r, std::size_t dim, std::size_t row, std::vector<double>& squares) {
  squares.resize(dim);
  std::uint32_t nonfinite = 0;
  for (std::size_t j = 0; j < dim; ++j) {
    nonfinite |= detail::is_nonfinite(r[j]);
    squares[j] = static_cast<double>(r[j]) * static_cast<double>(r[j]);
  }
  if (nonfinite != 0)
    throw InvalidArgument("the embeddings (E) contain NaN or infinity (first at row " + std::to_string(row) + ")");
  return std::sqrt(detail::pairwise_sum(squares.data(), dim));
}

}  // namespace

std::vector<double> CodingDictionary::normalize(const float* rows, std::size_t n, std::size_t dim,
                                                float* unit) {
  std::vector<double> norms(n);
  thread_local std::vector<double> squares;
  for (std::size_t i = 0; i < n; ++i) {
    norms[i] = checked_norm(rows + i * dim, dim, i, squares);
    divide_row(rows + i * dim, dim, norms[i] > 0 ? norms[i] : 1.0, unit + i * dim);
  }
  return norms;
}

const TransformModel& CodingDictionary::refinement(double residual_step, const char* caller) const {
  if (transform_ == nullptr)
    throw InvalidArgument(std::string(caller) + ": a residual step needs a dictionary with a transform-coded "
                          "refinement layer (learn one with smic_fast.coding.transform.learn_transform)");
  check_residual_step(residual_step);
  return *transform_;
}

std::vector<uint8_t> CodingDictionary::encode_one(const float* embedding, double residual_step) const {
  thread_local std::vector<float> unit;
  thread_local std::vector<double> squares;
  const TransformModel* t = residual_step != 0 ? &refinement(residual_step, "encode_one") : nullptr;
  unit.resize(dim_);
  const double norm = checked_norm(embedding, dim_, 0, squares);
  divide_row(embedding, dim_, norm > 0 ? norm : 1.0, unit.data());
  const ItemCodes codes = choose(unit.data(), 1, 1);
  if (t == nullptr) return encode_items(codes, 1, 1).data;
  // The refinement as a collection computes it (residual_levels of the atoms' reconstruction),
  // coded after the item's symbols in one stream.
  thread_local std::vector<float> decoded;
  thread_local std::vector<int32_t> levels;
  decoded.resize(dim_);
  levels.resize(dim_);
  reconstruct(codes, decoded.data());
  const std::vector<uint32_t> classes = t->classes(codes);
  t->levels(unit.data(), decoded.data(), classes.data(), 1, residual_step, levels.data());
  validate_items(models(), codes.columns(), 1);
  RangeEncoder enc;
  enc.reserve(encode_bound(residual_step));
  encode_item(models(), enc, codes.columns(), 0);
  t->encode(enc, levels.data(), classes.data(), 1, TransformModel::step_index(residual_step));
  return enc.finish();
}

void CodingDictionary::decode_one(const uint8_t* data, std::size_t size, float* out,
                                  double residual_step) const {
  if (residual_step == 0) {
    const uint64_t offsets[2] = {0, size};
    const ItemCodes codes = decode_items(data, size, offsets, 2, 1, 1, 0, 1, 1);
    reconstruct(codes, out);
    return;
  }
  const TransformModel& t = refinement(residual_step, "decode_one");
  ItemCodes codes = empty_codes(1);
  RangeDecoder dec(data, size);
  decode_item(models(), dec, {codes.counts.data(), codes.first.data(), codes.rest_index.data(),
                              codes.rest_level.data()});
  check_decoded(codes);
  const std::vector<uint32_t> classes = t.classes(codes);
  std::vector<int32_t> levels(dim_);
  t.decode(dec, classes.data(), 1, TransformModel::step_index(residual_step), levels.data());
  dec.finish();
  reconstruct(codes, out);
  t.refine(out, levels.data(), classes.data(), 1, residual_step);
}

std::size_t CodingDictionary::encode_bound(double residual_step) const {
  // Each coded symbol (total <= 2^31) shifts out at most 4 bytes; the flush adds 8.
  std::size_t symbols = params_.layout == ItemLayout::kPaper
                            ? 2 * std::size_t{params_.s_max}
                            : 2 + 2 * (std::size_t{params_.s_max} - 1);
  // The refinement: the gain, then per axis at most its magnitude, its sign, an escape's length
  // and its bits in two pieces.
  if (residual_step != 0) symbols += 1 + 5 * refinement(residual_step, "encode_bound").rank();
  return 4 * symbols + 8;
}

}  // namespace smic
