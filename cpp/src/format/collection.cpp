// Collections: parse, decode, write, append.
#include "smic/collection.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "format/bytes.hpp"
#include "format/json.hpp"

namespace smic {

namespace {

const Tag kHead = make_tag("HEAD");
const Tag kDict = make_tag("DICT");
const Tag kDref = make_tag("DREF");
const Tag kIds = make_tag("IDS_");
const Tag kItem = make_tag("ITEM");
const Tag kResd = make_tag("RESD");
constexpr std::size_t kMaxIdsBytes = std::size_t{1} << 30;  // zlib bombs stop here

std::string position_id(std::size_t i) { return std::to_string(i); }

bool implied_ids(const std::vector<std::string>& ids, std::size_t start) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] != position_id(start + i)) return false;
  return true;
}

std::vector<uint8_t> items_payload(std::size_t n, std::size_t chunk_size, const EncodedItems& encoded);
std::vector<uint8_t> ids_payload(const std::vector<std::string>& ids,
                                 const std::vector<int64_t>& pixels, std::size_t start);

// IDS_, ITEM and (with residual levels) RESD sections of one batch whose first item is at
// position `start`.
std::vector<Section> batch_sections(const CodingDictionary& dictionary, const ItemCodes& codes,
                                    const std::vector<std::string>& ids,
                                    const std::vector<int64_t>& pixels, std::size_t chunk_size,
                                    std::size_t start, const std::vector<int32_t>* levels,
                                    std::optional<double> step, int n_threads,
                                    IndexModel index_model, const EncodedItems* coded = nullptr) {
  EncodedItems own;
  if (!coded) own = dictionary.encode_items(codes, chunk_size, n_threads, index_model);
  const EncodedItems& encoded = coded ? *coded : own;
  std::vector<Section> out;
  out.push_back({kIds, ids_payload(ids, pixels, start)});
  out.push_back({kItem, items_payload(codes.n, chunk_size, encoded)});
  if (levels) {
    const ResidualScheme scheme{*step, dictionary.transform()};
    const std::vector<uint32_t> classes =
        scheme.transform ? scheme.transform->classes(codes) : std::vector<uint32_t>{};
    out.push_back({kResd, encode_residual(scheme, levels->data(), classes.data(), codes.n,
                                          dictionary.dim(), chunk_size)});
  }
  return out;
}

// The ITEM payload of n items coded in chunks.
std::vector<uint8_t> items_payload(std::size_t n, std::size_t chunk_size, const EncodedItems& encoded) {
  std::vector<uint8_t> item;
  detail::put_u32(item, static_cast<uint32_t>(n));
  detail::put_u32(item, static_cast<uint32_t>(chunk_size));
  detail::put_u32(item, static_cast<uint32_t>(encoded.offsets.size() - 1));
  for (uint64_t o : encoded.offsets) detail::put_u64(item, o);
  item.insert(item.end(), encoded.data.begin(), encoded.data.end());
  return item;
}

// The IDS_ payload of a batch whose first item is at `start`; empty ids are positions.
std::vector<uint8_t> ids_payload(const std::vector<std::string>& ids,
                                 const std::vector<int64_t>& pixels, std::size_t start) {
  // Default ids ("0", "1", ... by position) are implied, not stored: they would cost bits.
  json::Writer w;
  w.begin_object().key("ids");
  if (implied_ids(ids, start)) {
    w.null();
  } else {
    w.begin_array();
    for (const auto& id : ids) w.string(id);
    w.end_array();
  }
  w.key("pixels");
  if (pixels.empty()) {
    w.null();
  } else {
    w.begin_array();
    for (int64_t p : pixels) w.integer(p);
    w.end_array();
  }
  w.end_object();
  const std::string& text = w.str();
  return detail::zlib_compress(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// The id as text a message can show: control bytes as \xNN.
std::string printable_id(const std::string& id) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

void check_ids(const std::vector<std::string>& ids, std::size_t n,
               const std::unordered_set<std::string>& taken) {
  if (ids.empty()) return;
  require(ids.size() == n, "ids has " + std::to_string(ids.size()) + " entries for " +
                               std::to_string(n) + " embeddings");
  std::unordered_set<std::string> seen;
  for (const auto& id : ids) {
    require(!id.empty(), "ids must be non-empty strings");
    // C readers (smic.h) take ids as NUL-terminated strings: "a\0x" would read as "a".
    if (id.find('\0') != std::string::npos)
      throw InvalidArgument("item id '" + printable_id(id) +
                            "' contains a NUL byte: ids must not (C readers end an id there)");
    require(seen.insert(id).second && !taken.count(id), "duplicate item id '" + id + "'");
  }
}

void check_pixels(const std::vector<int64_t>& pixels, std::size_t n) {
  if (pixels.empty()) return;
  require(pixels.size() == n, "pixels must be " + std::to_string(n) +
                                  " positive integers (each image's pixel count)");
  for (int64_t p : pixels)
    require(p > 0, "pixels must be " + std::to_string(n) +
                       " positive integers (each image's pixel count)");
}

struct CodedBatch {
  std::vector<Section> sections;
  std::vector<double> cosine;
  IndexModel index_model = IndexModel::kOrder0;
};

// What HEAD's index_model field adds to a file: the remaining-atoms model's only cost.
constexpr std::size_t kIndexModelHeadBytes = sizeof(R"("index_model": "remaining", )") - 1;

// The items coded with `wanted`, or (nullopt) with the model of the smaller file: kRemaining
// only where its items section is smaller by more than the header field it needs (the paper
// layout has no choice).
EncodedItems encode_chosen(const CodingDictionary& dictionary, const ItemCodes& codes,
                           std::size_t chunk_size, int n_threads,
                           std::optional<IndexModel> wanted, IndexModel& chosen) {
  if (dictionary.params().layout == ItemLayout::kPaper) {
    require(!wanted || *wanted == IndexModel::kOrder0,
            "the remaining-atoms index model needs a dictionary of the smic layout");
    chosen = IndexModel::kOrder0;
    return dictionary.encode_items(codes, chunk_size, n_threads);
  }
  if (wanted) {
    chosen = *wanted;
    return dictionary.encode_items(codes, chunk_size, n_threads, chosen);
  }
  EncodedItems order0 = dictionary.encode_items(codes, chunk_size, n_threads, IndexModel::kOrder0);
  EncodedItems remaining = dictionary.encode_items(codes, chunk_size, n_threads, IndexModel::kRemaining);
  chosen = remaining.data.size() + kIndexModelHeadBytes < order0.data.size() ? IndexModel::kRemaining
                                                                             : IndexModel::kOrder0;
  return chosen == IndexModel::kRemaining ? std::move(remaining) : std::move(order0);
}

// Normalise, choose (unless codes are given), reconstruct as a reader will, refine, and make
// the sections of one batch.
CodedBatch code_batch(const CodingDictionary& dictionary, const float* embeddings, std::size_t n,
                      const std::vector<std::string>& ids, const std::vector<int64_t>& pixels,
                      std::size_t chunk_size, std::size_t start, std::optional<double> step,
                      int n_threads, const ItemCodes* given, std::vector<double>* norms_out,
                      std::optional<IndexModel> index_model) {
  const std::size_t d = dictionary.dim();
  std::vector<float> unit(n * d);
  std::vector<double> norms = CodingDictionary::normalize(embeddings, n, d, unit.data());
  ItemCodes chosen;
  if (given) {
    require(given->n == n, "codes are for " + std::to_string(given->n) + " items, not " +
                               std::to_string(n));
  } else {
    chosen = dictionary.choose(unit.data(), n, n_threads);
  }
  const ItemCodes& codes = given ? *given : chosen;
  std::vector<float> decoded(n * d);
  dictionary.reconstruct(codes, decoded.data());
  std::vector<int32_t> levels;
  if (step) {
    const ResidualScheme scheme{*step, dictionary.transform()};
    const std::vector<uint32_t> classes =
        scheme.transform ? scheme.transform->classes(codes) : std::vector<uint32_t>{};
    levels = residual_levels(scheme, unit.data(), decoded.data(), classes.data(), n, d);
    refine(scheme, decoded.data(), levels.data(), classes.data(), n, d);
  }
  CodedBatch out;
  out.cosine.resize(n);
  std::vector<double> products(d);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < d; ++j)
      products[j] = static_cast<double>(decoded[i * d + j]) * static_cast<double>(unit[i * d + j]);
    out.cosine[i] = detail::pairwise_sum(products.data(), d);
  }
  std::vector<std::string> ids_all = ids;
  if (ids_all.empty())
    for (std::size_t i = 0; i < n; ++i) ids_all.push_back(position_id(start + i));
  const EncodedItems encoded =
      encode_chosen(dictionary, codes, chunk_size, n_threads, index_model, out.index_model);
  out.sections = batch_sections(dictionary, codes, ids_all, pixels, chunk_size, start,
                                step ? &levels : nullptr, step, n_threads, out.index_model, &encoded);
  if (norms_out) *norms_out = std::move(norms);
  return out;
}

// HEAD and DICT (or DREF) of a new collection whose items had these norms.
std::vector<Section> head_sections(std::size_t dim, const std::vector<double>& norms,
                                   const CodingDictionary& dictionary, const WriteOptions& options,
                                   IndexModel index_model) {
  json::Writer head;
  head.begin_object().key("dim").integer(static_cast<int64_t>(dim));
  if (index_model == IndexModel::kRemaining) head.key("index_model").string("remaining");
  head.key("kind").string("smic-collection")
      .key("mean_norm").number(options.mean_norm ? *options.mean_norm
                                                 : detail::pairwise_sum(norms.data(), norms.size()) /
                                                       static_cast<double>(norms.size()))
      .key("model");
  if (options.model) {
    head.string(*options.model);
  } else {
    head.null();
  }
  if (options.residual_step && dictionary.transform())
    head.key("residual_coding").string("transform");
  if (options.residual_step) head.key("residual_step").number(*options.residual_step);
  head.key("writer").string(options.writer).end_object();
  std::vector<Section> sections;
  sections.push_back({kHead, {head.str().begin(), head.str().end()}});
  if (options.embed_dictionary) {
    sections.push_back({kDict, dictionary.to_bytes()});
  } else {
    sections.push_back({kDref, {dictionary.hash().begin(), dictionary.hash().end()}});
  }
  return sections;
}

// CodingDictionary::normalize of rows [start, start + n): a NaN or infinity is reported at its
// row in the whole input, not in the batch.
std::vector<double> normalize_rows(const float* rows, std::size_t n, std::size_t dim, float* unit,
                                   std::size_t start) {
  for (std::size_t i = 0; i < n * dim; ++i)
    if (!std::isfinite(rows[i]))
      throw InvalidArgument("the embeddings (E) contain NaN or infinity (first at row " +
                            std::to_string(start + i / dim) + ")");
  return CodingDictionary::normalize(rows, n, dim, unit);
}

// The lowest format version that describes a collection (docs/format.md).
uint16_t file_version(IndexModel index_model, bool residual, bool transform) {
  if (residual && transform) return 4;
  return index_model == IndexModel::kRemaining ? 3 : residual ? 2 : 1;
}

std::size_t checked_chunk(std::size_t chunk_size) {
  require(chunk_size >= 1 && chunk_size <= kMaxChunkSize,
          "chunk_size must be in [1, 65536], got " + std::to_string(chunk_size));
  return chunk_size;
}

}  // namespace

// ---- reading ---------------------------------------------------------------------------------

Collection Collection::open(const std::string& path, std::shared_ptr<const CodingDictionary> shared) {
  // The file's identity before its bytes: an in-place append refuses a file replaced since
  // (a rename gives a new inode), so a stale reader never appends to another file's content.
  struct stat st;
  const bool known = ::stat(path.c_str(), &st) == 0;
  Collection c = from_bytes(read_file(path), std::move(shared), path);
  if (known) c.file_identity_ = {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  return c;
}

Collection Collection::from_bytes(std::vector<uint8_t> bytes,
                                  std::shared_ptr<const CodingDictionary> shared,
                                  const std::string& name) {
  Collection c;
  c.name_ = name;
  c.bytes_ = std::move(bytes);
  c.data_ = c.bytes_.data();
  c.data_size_ = c.bytes_.size();
  c.parse(std::move(shared));
  return c;
}

Collection Collection::open_mapped(const std::string& path, std::shared_ptr<const CodingDictionary> shared) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    throw IoError(path + ": cannot open (" + std::strerror(error) + ")", error);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    throw IoError(path + ": cannot stat (" + std::strerror(error) + ")", error);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    const int error = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    throw IoError(path + ": not a regular file (" + std::strerror(error) + ")", error);
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  Collection c;
  c.name_ = path;
  c.file_identity_ = {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  if (size > 0) {
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    const int error = errno;
    ::close(fd);
    if (map == MAP_FAILED) throw IoError(path + ": cannot map (" + std::strerror(error) + ")", error);
    c.mapping_ = std::shared_ptr<const void>(map, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
    c.data_ = static_cast<const uint8_t*>(map);
    c.data_size_ = size;
  } else {
    ::close(fd);
    c.data_ = c.bytes_.data();  // empty: parse reports a truncated file
  }
  c.parse(std::move(shared));
  return c;
}

void Collection::parse(std::shared_ptr<const CodingDictionary> shared) {
  const std::string& name = name_;
  view_ = parse_container(data_, data_size_, kCollectionMagic, "smic collection", name);
  const auto& sections = view_.sections;
  if (sections.size() < 2 || sections[0].tag != kHead)
    throw FormatError(name + ": the first section must be HEAD");
  header_json_.assign(reinterpret_cast<const char*>(sections[0].data), sections[0].size);
  try {
    const json::Value header = json::parse(header_json_);
    if (header.kind != json::Value::Kind::kObject) throw std::invalid_argument("not an object");
    const json::Value* dim = header.find("dim");
    if (!dim || dim->kind != json::Value::Kind::kInt || dim->integer < 1 || dim->integer > (1 << 14))
      throw std::invalid_argument("'dim' must be an integer in [1, 16384]");
    dim_ = static_cast<std::size_t>(dim->integer);
    if (const json::Value* m = header.find("model"); m && m->kind == json::Value::Kind::kString)
      model_ = m->text;
    if (const json::Value* m = header.find("mean_norm"); m && m->is_number())
      mean_norm_ = m->as_double();
    if (const json::Value* s = header.find("residual_step"); s && !s->is_null()) {
      if (!s->is_number()) throw std::invalid_argument("residual_step must be a number");
      try {
        check_residual_step(s->as_double());
      } catch (const InvalidArgument& e) {
        throw FormatError(name + ": bad header (" + e.what() + ")");
      }
      residual_step_ = s->as_double();
    }
    if (const json::Value* m = header.find("residual_coding")) {
      if (m->kind != json::Value::Kind::kString || m->text != "transform")
        throw std::invalid_argument("unknown residual_coding (this library knows \"transform\")");
      if (view_.version < 4)
        throw std::invalid_argument("residual_coding needs format version 4, the file says " +
                                    std::to_string(view_.version));
      residual_transform_ = true;
    }
    if (const json::Value* m = header.find("index_model")) {
      if (m->kind != json::Value::Kind::kString || m->text != "remaining")
        throw std::invalid_argument("unknown index_model (this library knows \"remaining\")");
      if (view_.version < 3)
        throw std::invalid_argument("index_model needs format version 3, the file says " +
                                    std::to_string(view_.version));
      index_model_ = IndexModel::kRemaining;
    }
  } catch (const std::invalid_argument& e) {
    throw FormatError(name + ": unreadable header (" + e.what() + ")");
  }
  section_bytes_.header = kPreambleBytes + kSectionOverhead + sections[0].size;
  const SectionView& dict = sections[1];
  section_bytes_.dictionary = kSectionOverhead + dict.size;
  if (dict.tag == kDict) {
    dictionary_ = CodingDictionary::from_bytes(dict.data, dict.size, name + " (embedded dictionary)");
    shared_ = false;
  } else if (dict.tag == kDref) {
    if (dict.size != 32) throw FormatError(name + ": dictionary reference must be 32 bytes");
    static const char* hex = "0123456789abcdef";
    std::string wanted;
    for (std::size_t i = 0; i < 32; ++i) {
      wanted += hex[dict.data[i] >> 4];
      wanted += hex[dict.data[i] & 15];
    }
    if (!shared)
      throw DictionaryMismatchError(name + " was coded with shared dictionary " + wanted +
                                    "; pass it (Python: smic_fast.open(path, dictionary='....smicd'); C: "
                                    "smic_collection_open(path, dictionary, &out))");
    if (shared->hash_hex() != wanted)
      throw DictionaryMismatchError(name + " needs dictionary " + wanted +
                                    ", but the one given has hash " + shared->hash_hex());
    dictionary_ = std::move(shared);
    shared_ = true;
  } else {
    throw FormatError(name + ": second section must be DICT or DREF, found " + tag_name(dict.tag));
  }
  if (dictionary_->dim() != dim_)
    throw FormatError(name + ": header dimension " + std::to_string(dim_) +
                      " != dictionary dimension " + std::to_string(dictionary_->dim()));
  if (residual_transform_ && !residual_step_)
    throw FormatError(name + ": residual_coding without a residual_step");
  if (residual_step_ && residual_transform_ != (dictionary_->transform() != nullptr))
    throw FormatError(name + (residual_transform_
                                  ? ": a transform-coded refinement layer, but the dictionary has no transform"
                                  : ": a refinement layer of one table, but the dictionary has a transform"));
  if (index_model_ == IndexModel::kRemaining && dictionary_->params().layout != ItemLayout::kSorted)
    throw FormatError(name + ": index_model \"remaining\" with a paper-layout dictionary");
  const std::size_t per_batch = residual_step_ ? 3 : 2;
  const std::size_t rest = sections.size() - 2;
  if (rest % per_batch) throw FormatError(name + ": a batch with missing sections (truncated?)");
  for (std::size_t s = 2; s < sections.size(); s += per_batch) {
    const bool ok = sections[s].tag == kIds && sections[s + 1].tag == kItem &&
                    (per_batch == 2 || sections[s + 2].tag == kResd);
    if (!ok)
      throw FormatError(name + ": expected sections " +
                        std::string(per_batch == 2 ? "IDS_ ITEM" : "IDS_ ITEM RESD") + ", found " +
                        tag_name(sections[s].tag) + " " + tag_name(sections[s + 1].tag) +
                        (per_batch == 3 ? " " + tag_name(sections[s + 2].tag) : ""));
    read_batch(sections[s], sections[s + 1], per_batch == 3 ? &sections[s + 2] : nullptr, s);
  }
}

void Collection::read_batch(const SectionView& ids_section, const SectionView& items,
                            const SectionView* residual, std::size_t first_section) {
  const std::string& name = name_;
  const std::vector<uint8_t> text =
      detail::zlib_decompress(ids_section.data, ids_section.size, kMaxIdsBytes,
                              name + ": unreadable ids section");
  json::Value meta;
  try {
    meta = json::parse(std::string(text.begin(), text.end()));
  } catch (const std::invalid_argument& e) {
    throw FormatError(name + ": unreadable ids section (" + e.what() + ")");
  }
  const json::Value* ids = meta.kind == json::Value::Kind::kObject ? meta.find("ids") : nullptr;
  const json::Value* pixels = meta.kind == json::Value::Kind::kObject ? meta.find("pixels") : nullptr;
  if (!ids || !pixels) throw FormatError(name + ": unreadable ids section (missing ids or pixels)");
  if (items.size < 12) throw FormatError(name + ": truncated items section");
  const std::size_t n_items = detail::get_u32(items.data);
  const std::size_t chunk_size = detail::get_u32(items.data + 4);
  const std::size_t n_chunks = detail::get_u32(items.data + 8);
  const uint64_t table_end = 12 + 8 * (uint64_t{n_chunks} + 1);
  const std::string inconsistent = name + ": inconsistent items section (n=" +
                                   std::to_string(n_items) + ", chunks=" +
                                   std::to_string(n_chunks) + ")";
  if (chunk_size < 1 || chunk_size > kMaxChunkSize ||
      n_chunks != (n_items + chunk_size - 1) / chunk_size || items.size < table_end)
    throw FormatError(inconsistent);
  const std::size_t start = ids_.size();
  std::vector<std::string> batch_ids;
  if (ids->is_null()) {
    for (std::size_t i = 0; i < n_items; ++i) batch_ids.push_back(position_id(start + i));
  } else {
    if (ids->kind != json::Value::Kind::kArray || ids->items.size() != n_items)
      throw FormatError(inconsistent);
    for (const auto& v : ids->items) {
      if (v.kind != json::Value::Kind::kString) throw FormatError(inconsistent);
      batch_ids.push_back(v.text);
    }
  }
  std::vector<int64_t> batch_pixels(n_items, 0);
  if (!pixels->is_null()) {
    if (pixels->kind != json::Value::Kind::kArray || pixels->items.size() != n_items)
      throw FormatError(inconsistent);
    for (std::size_t i = 0; i < n_items; ++i) {
      const auto& v = pixels->items[i];
      if (v.kind != json::Value::Kind::kInt || v.integer <= 0) throw FormatError(inconsistent);
      batch_pixels[i] = v.integer;
    }
  }
  Batch batch;
  batch.start = start;
  batch.n_items = n_items;
  batch.chunk_size = chunk_size;
  batch.first_section = first_section;
  batch.offsets.resize(n_chunks + 1);
  for (std::size_t c = 0; c <= n_chunks; ++c) batch.offsets[c] = detail::get_u64(items.data + 12 + 8 * c);
  batch.data = items.data + table_end;
  batch.data_size = items.size - table_end;
  if (batch.offsets[0] != 0 || batch.offsets.back() != batch.data_size ||
      !std::is_sorted(batch.offsets.begin(), batch.offsets.end()))
    throw FormatError(name + ": corrupt chunk offsets in items section");
  // Implied ids (positions) are unique among themselves and not indexed (a million positions
  // would cost ~70 bytes each in the index); find() recognises them. Explicit ids must differ
  // from each other, from earlier explicit ids and from earlier positions.
  batch.implied = ids->is_null();
  if (batch.implied) {
    if (!index_.empty())
      for (const auto& id : batch_ids)
        if (index_.count(id)) throw FormatError(name + ": duplicate item ids");
  } else {
    std::unordered_set<std::string> seen;
    for (const auto& id : batch_ids)
      if (!seen.insert(id).second || find(id)) throw FormatError(name + ": duplicate item ids");
  }
  if (residual) {
    ResidualCode code = ResidualCode::parse(residual->data, residual->size, name,
                                            residual_transform_ ? dictionary_->transform() : nullptr);
    if (code.n_items() != n_items || code.dim() != dim_ || code.chunk_size() != chunk_size ||
        code.step() != *residual_step_)
      throw FormatError(name + ": residual section does not match its items section");
    batch.residual = code;
    section_bytes_.residual += kSectionOverhead + residual->size;
  }
  if (!batch.implied)
    for (std::size_t k = 0; k < batch_ids.size(); ++k) index_.emplace(batch_ids[k], start + k);
  ids_.insert(ids_.end(), std::make_move_iterator(batch_ids.begin()), std::make_move_iterator(batch_ids.end()));
  pixels_.insert(pixels_.end(), batch_pixels.begin(), batch_pixels.end());
  section_bytes_.ids += kSectionOverhead + ids_section.size;
  section_bytes_.items += kSectionOverhead + items.size;
  batches_.push_back(std::move(batch));
}

std::optional<std::size_t> Collection::find(const std::string& id) const {
  const auto it = index_.find(id);
  if (it != index_.end()) return it->second;
  // Not indexed: an implied id, the canonical decimal of a position in a batch without ids.
  if (id.empty() || id.size() > 18 || (id.size() > 1 && id[0] == '0')) return std::nullopt;
  std::size_t position = 0;
  for (char c : id) {
    if (c < '0' || c > '9') return std::nullopt;
    position = position * 10 + static_cast<std::size_t>(c - '0');
  }
  if (position >= ids_.size()) return std::nullopt;
  const auto batch = std::upper_bound(batches_.begin(), batches_.end(), position,
                                      [](std::size_t p, const Batch& b) { return p < b.start; });
  if (batch == batches_.begin() || !std::prev(batch)->implied) return std::nullopt;
  return position;
}

std::vector<std::size_t> Collection::batch_sizes() const {
  std::vector<std::size_t> out;
  for (const Batch& b : batches_) out.push_back(b.n_items);
  return out;
}

std::vector<std::size_t> Collection::chunk_bounds() const {
  std::vector<std::size_t> out;
  for (const Batch& b : batches_)
    for (std::size_t local = 0; local < b.n_items; local += b.chunk_size) out.push_back(b.start + local);
  out.push_back(size());
  return out;
}

std::size_t Collection::chunk_size() const {
  return batches_.empty() ? kDefaultChunkSize : batches_.front().chunk_size;
}

const Collection::Batch& Collection::locate(std::size_t position, std::size_t& local) const {
  // Batches are few (one per append): a linear scan is cheaper than a search structure.
  for (const Batch& b : batches_)
    if (position < b.start + b.n_items) {
      local = position - b.start;
      return b;
    }
  throw InvalidArgument("item " + std::to_string(position) + " out of range for " +
                        std::to_string(size()) + " items");
}

ItemCodes Collection::chunk_codes(std::size_t batch, std::size_t lo, std::size_t hi) const {
  const Batch& b = batches_[batch];
  const std::size_t chunk = lo / b.chunk_size;
  std::shared_ptr<const ChunkCheckpoints> known;
  {
    std::lock_guard<std::mutex> lock(checkpoints_->mutex);
    auto& per_batch = checkpoints_->per_batch;
    if (per_batch.size() < batches_.size()) per_batch.resize(batches_.size());
    if (per_batch[batch].size() < b.offsets.size() - 1) per_batch[batch].resize(b.offsets.size() - 1);
    known = per_batch[batch][chunk];
  }
  try {
    if (known)
      return dictionary_->decode_chunk_items(b.data, b.data_size, b.offsets.data(),
                                             b.offsets.size(), b.n_items, b.chunk_size, lo, hi,
                                             nullptr, known.get(), index_model_);
    auto record = std::make_shared<ChunkCheckpoints>();
    ItemCodes out = dictionary_->decode_chunk_items(b.data, b.data_size, b.offsets.data(),
                                                    b.offsets.size(), b.n_items, b.chunk_size, lo,
                                                    hi, record.get(), nullptr, index_model_);
    std::lock_guard<std::mutex> lock(checkpoints_->mutex);
    checkpoints_->per_batch[batch][chunk] = std::move(record);
    return out;
  } catch (const FormatError&) {
    throw;
  } catch (const DecodeError& e) {
    throw FormatError(name_ + ": corrupt items (" + e.what() + ")");
  }
}

void Collection::check_range(std::size_t start, std::size_t stop) const {
  // The message is built only on failure: this runs for every col[i].
  if (!(start <= stop && stop <= size()))
    throw InvalidArgument("need 0 <= start <= stop <= " + std::to_string(size()));
}

ItemCodes Collection::codes(std::size_t start, std::size_t stop) const {
  check_range(start, stop);
  if (start < stop) {  // within one chunk: through its checkpoints
    std::size_t local = 0;
    const Batch& b = locate(start, local);
    const std::size_t chunk_end = std::min(b.n_items, (local / b.chunk_size + 1) * b.chunk_size);
    if (local + (stop - start) <= chunk_end)
      return chunk_codes(static_cast<std::size_t>(&b - batches_.data()), local,
                         local + (stop - start));
  }
  ItemCodes out;
  out.width = dictionary_->models().row_width();
  for (const Batch& b : batches_) {
    const std::size_t lo = std::max(start, b.start), hi = std::min(stop, b.start + b.n_items);
    if (lo >= hi) continue;
    ItemCodes part;
    try {
      part = dictionary_->decode_items(b.data, b.data_size, b.offsets.data(), b.offsets.size(),
                                       b.n_items, b.chunk_size, lo - b.start, hi - b.start, 1,
                                       index_model_);
    } catch (const FormatError&) {
      throw;
    } catch (const DecodeError& e) {
      throw FormatError(name_ + ": corrupt items (" + e.what() + ")");
    }
    out.n += part.n;
    out.counts.insert(out.counts.end(), part.counts.begin(), part.counts.end());
    out.first.insert(out.first.end(), part.first.begin(), part.first.end());
    out.rest_index.insert(out.rest_index.end(), part.rest_index.begin(), part.rest_index.end());
    out.rest_level.insert(out.rest_level.end(), part.rest_level.begin(), part.rest_level.end());
  }
  return out;
}

void Collection::decode(std::size_t start, std::size_t stop, float* out) const {
  check_range(start, stop);
  for (const Batch& b : batches_) {
    const std::size_t lo = std::max(start, b.start), hi = std::min(stop, b.start + b.n_items);
    if (lo >= hi) continue;
    const ItemCodes part = codes(lo, hi);
    float* rows = out + (lo - start) * dim_;
    dictionary_->reconstruct(part, rows);
    if (b.residual) {
      std::vector<int32_t> levels((hi - lo) * dim_);
      batch_levels(b, lo - b.start, hi - b.start, levels.data());
      const ResidualScheme scheme{b.residual->step(), b.residual->transform()};
      const std::vector<uint32_t> classes =
          scheme.transform ? scheme.transform->classes(part) : std::vector<uint32_t>{};
      refine(scheme, rows, levels.data(), classes.data(), hi - lo, dim_);
    }
  }
}

void Collection::batch_levels(const Batch& b, std::size_t lo, std::size_t hi, int32_t* out) const {
  if (!b.residual->transform()) return b.residual->levels(lo, hi, out, name_);
  // Transform-coded levels decode chunk by chunk with each item's class (its first atom).
  const auto span = b.residual->chunk_span(lo, hi);
  const std::vector<uint32_t> classes =
      b.residual->transform()->classes(codes(b.start + span.first, b.start + span.second));
  b.residual->levels(lo, hi, out, name_, classes.data());
}

std::vector<float> Collection::item(std::size_t index) const {
  require(index < size(), "item " + std::to_string(index) + " out of range for " +
                              std::to_string(size()) + " items");
  std::vector<float> out(dim_);
  decode(index, index + 1, out.data());
  return out;
}

std::vector<float> Collection::embeddings() const {
  std::vector<float> out(size() * dim_);
  decode(0, size(), out.data());
  return out;
}

// ---- writing ---------------------------------------------------------------------------------

// The arguments of a new collection, checked the same way by every writer; returns the chunk size.
static std::size_t check_new_collection(std::size_t n, std::size_t dim, const CodingDictionary& dictionary,
                                  const std::vector<std::string>& ids,
                                  const std::vector<int64_t>& pixels, const WriteOptions& options) {
  require(n >= 1, "the embeddings (E) have no rows (N = 0): nothing to compress");
  require(dim == dictionary.dim(), "the embeddings (E) have dimension " + std::to_string(dim) +
                                       " but the dictionary has " + std::to_string(dictionary.dim()));
  const std::size_t chunk = checked_chunk(options.chunk_size);
  if (options.residual_step) check_residual_step(*options.residual_step);
  check_ids(ids, n, {});
  check_pixels(pixels, n);
  return chunk;
}

std::vector<uint8_t> CollectionWriter::write_bytes(const float* embeddings, std::size_t n,
                                                   std::size_t dim,
                                                   const CodingDictionary& dictionary,
                                                   const std::vector<std::string>& ids,
                                                   const std::vector<int64_t>& pixels,
                                                   const WriteOptions& options,
                                                   WriteResult* result, const ItemCodes* codes) {
  const std::size_t chunk = check_new_collection(n, dim, dictionary, ids, pixels, options);
  std::vector<double> norms;
  CodedBatch batch = code_batch(dictionary, embeddings, n, ids, pixels, chunk, 0,
                                options.residual_step, options.n_threads, codes, &norms,
                                options.index_model);
  std::vector<Section> sections = head_sections(dim, norms, dictionary, options, batch.index_model);
  for (auto& s : batch.sections) sections.push_back(std::move(s));
  if (result) result->cosine = std::move(batch.cosine);
  return encode_container(kCollectionMagic,
                          file_version(batch.index_model, options.residual_step.has_value(),
                                       dictionary.transform() != nullptr),
                          sections);
}

WriteResult CollectionWriter::write(const std::string& path, const float* embeddings,
                                    std::size_t n, std::size_t dim,
                                    const CodingDictionary& dictionary,
                                    const std::vector<std::string>& ids,
                                    const std::vector<int64_t>& pixels,
                                    const WriteOptions& options, const ItemCodes* codes) {
  WriteResult result;
  const std::vector<uint8_t> bytes =
      write_bytes(embeddings, n, dim, dictionary, ids, pixels, options, &result, codes);
  atomic_write(path, bytes.data(), bytes.size());
  return result;
}

WriteResult CollectionWriter::append(const std::string& path, const float* embeddings,
                                     std::size_t n, std::size_t dim,
                                     const std::vector<std::string>& ids,
                                     const std::vector<int64_t>& pixels, bool replace,
                                     std::size_t chunk_size,
                                     std::shared_ptr<const CodingDictionary> shared,
                                     int n_threads) {
  const Collection col = Collection::open(path, std::move(shared));
  require(n >= 1, "the embeddings (E) have no rows (N = 0): nothing to compress");
  require(dim == col.dim(), "the embeddings (E) must have " + std::to_string(col.dim()) + " columns, got " +
                                std::to_string(dim));
  std::unordered_set<std::string> replaced;
  if (replace)
    for (const auto& id : ids)
      if (col.find(id)) replaced.insert(id);
  std::unordered_set<std::string> taken;
  for (const auto& id : col.ids())
    if (!replaced.count(id)) taken.insert(id);
  check_ids(ids, n, taken);
  check_pixels(pixels, n);
  if (ids.empty())  // implied ids of new items must not collide either
    for (std::size_t i = 0; i < n; ++i)
      require(!taken.count(position_id(col.size() - replaced.size() + i)),
              "duplicate item id '" + position_id(col.size() - replaced.size() + i) + "'");
  const std::size_t chunk = checked_chunk(chunk_size ? chunk_size : col.chunk_size());
  const CodingDictionary& dictionary = col.dictionary();
  const std::size_t start = col.size() - replaced.size();
  CodedBatch batch = code_batch(dictionary, embeddings, n, ids, pixels, chunk, start,
                                col.residual_step(), n_threads, nullptr, nullptr,
                                col.index_model());
  WriteResult result{std::move(batch.cosine)};
  const auto& sections = col.view_.sections;
  if (replaced.empty()) {
    const std::vector<uint8_t> extra = encode_sections(batch.sections);
    // The committed part only (not a torn tail); a counted file counts the new sections too.
    std::vector<uint8_t> head(col.data_, col.data_ + col.view_.end);
    if (col.view_.flags & kFlagCommittedCount) {
      const auto count = static_cast<uint32_t>(sections.size() + batch.sections.size());
      for (int i = 0; i < 4; ++i) head[12 + i] = static_cast<uint8_t>(count >> (8 * i));
    }
    atomic_append(path, head, extra);
    return result;
  }
  // Drop the replaced items: untouched batches keep their bytes (when nothing before them
  // moved), the others are re-packed from their decoded symbols and residual levels.
  std::vector<Section> out;
  for (std::size_t s = 0; s < 2; ++s)
    out.push_back({sections[s].tag, {sections[s].data, sections[s].data + sections[s].size}});
  std::size_t position = 0;
  const std::size_t per_batch = col.residual_step() ? 3 : 2;
  for (const Collection::Batch& b : col.batches_) {
    std::vector<std::size_t> rows;
    for (std::size_t r = 0; r < b.n_items; ++r)
      if (!replaced.count(col.ids()[b.start + r])) rows.push_back(r);
    if (rows.size() == b.n_items && position == b.start) {
      for (std::size_t s = b.first_section; s < b.first_section + per_batch; ++s)
        out.push_back({sections[s].tag, {sections[s].data, sections[s].data + sections[s].size}});
    } else if (!rows.empty()) {
      const ItemCodes kept = col.codes(b.start, b.start + b.n_items).take(rows);
      std::vector<std::string> kept_ids;
      std::vector<int64_t> kept_pixels;
      bool all_pixels = true;
      for (std::size_t r : rows) {
        kept_ids.push_back(col.ids()[b.start + r]);
        kept_pixels.push_back(col.pixels()[b.start + r]);
        all_pixels = all_pixels && col.pixels()[b.start + r] > 0;
      }
      if (!all_pixels) kept_pixels.clear();
      std::vector<int32_t> levels;
      if (b.residual) {
        std::vector<int32_t> all(b.n_items * col.dim());
        col.batch_levels(b, 0, b.n_items, all.data());
        for (std::size_t r : rows)
          levels.insert(levels.end(), all.begin() + r * col.dim(), all.begin() + (r + 1) * col.dim());
      }
      for (auto& s : batch_sections(dictionary, kept, kept_ids, kept_pixels, b.chunk_size, position,
                                    b.residual ? &levels : nullptr, col.residual_step(), n_threads,
                                    col.index_model()))
        out.push_back(std::move(s));
    }
    position += rows.size();
  }
  for (auto& s : batch.sections) out.push_back(std::move(s));
  const std::vector<uint8_t> bytes = encode_container(kCollectionMagic, col.format_version(), out);
  atomic_write(path, bytes.data(), bytes.size());
  return result;
}

// ---- streaming write -------------------------------------------------------------------------

RowReader stacked_rows(std::vector<RowBlock> blocks, std::size_t dim) {
  std::size_t total = 0;
  for (const RowBlock& b : blocks) {
    require(b.data || b.rows == 0, "stacked_rows: a block without data");
    total += b.rows;
  }
  return [blocks = std::move(blocks), dim, total](std::size_t start, std::size_t count, float* out) {
    require(start <= total && count <= total - start, "rows out of range");
    std::size_t first = 0;  // row index where the current block starts
    for (const RowBlock& b : blocks) {
      if (count == 0) break;
      if (start >= first + b.rows) {
        first += b.rows;
        continue;
      }
      const std::size_t local = start - first, take = std::min(count, b.rows - local);
      const std::size_t values = take * dim, offset = local * dim;
      switch (b.type) {
        case RowType::kFloat32: {
          const float* p = static_cast<const float*>(b.data) + offset;
          std::copy(p, p + values, out);
          break;
        }
        case RowType::kFloat64: {
          const double* p = static_cast<const double*>(b.data) + offset;
          for (std::size_t i = 0; i < values; ++i) out[i] = static_cast<float>(p[i]);
          break;
        }
        case RowType::kFloat16: {
          const uint16_t* p = static_cast<const uint16_t*>(b.data) + offset;
          for (std::size_t i = 0; i < values; ++i) out[i] = detail::half_to_float(p[i]);
          break;
        }
      }
      out += values;
      start += take;
      count -= take;
      first += b.rows;
    }
  };
}

WriteResult CollectionWriter::write_streaming(const std::string& path, const RowReader& rows,
                                              std::size_t n, std::size_t dim,
                                              const CodingDictionary& dictionary,
                                              const std::vector<std::string>& ids,
                                              const std::vector<int64_t>& pixels,
                                              const WriteOptions& options, const ItemCodes* codes,
                                              std::size_t batch_items) {
  require(n <= 0xFFFFFFFFu, "a batch holds at most 2^32 - 1 items");
  const std::size_t chunk = check_new_collection(n, dim, dictionary, ids, pixels, options);
  if (codes)
    require(codes->n == n, "codes are for " + std::to_string(codes->n) + " items, not " +
                               std::to_string(n));
  // Batches hold whole chunks, so each chunk is coded exactly as in one go.
  const std::size_t wanted = batch_items ? batch_items : kDefaultStreamBatch;
  const std::size_t batch = std::max<std::size_t>(1, (wanted + chunk - 1) / chunk) * chunk;
  const std::optional<double> step = options.residual_step;

  // Pass 1: normalise, choose, reconstruct (refine) and range-code each batch; keep per item
  // only its norm, its cosine and its coded bytes (and, for the refinement pass, its symbols).
  WriteResult result;
  result.cosine.resize(n);
  std::vector<double> norms;
  norms.reserve(n);
  // Without a given index model both are coded, batch by batch, and the smaller kept at the end.
  const bool paper = dictionary.params().layout == ItemLayout::kPaper;
  require(!paper || !options.index_model || *options.index_model == IndexModel::kOrder0,
          "the remaining-atoms index model needs a dictionary of the smic layout");
  const bool both = !paper && !options.index_model;
  const IndexModel fixed = options.index_model.value_or(IndexModel::kOrder0);
  EncodedItems items, items_remaining;
  items.offsets.push_back(0);
  items_remaining.offsets.push_back(0);
  ItemCodes kept;  // every item's symbols, only when a refinement pass needs them again
  kept.width = dictionary.models().row_width();
  std::optional<ResidualWriter> residual;
  const ResidualScheme scheme{step.value_or(0.0), dictionary.transform()};
  if (step) residual.emplace(scheme, dim, chunk);
  std::vector<float> raw(batch * dim), unit(batch * dim), decoded(batch * dim);
  std::vector<double> products(dim);
  for (std::size_t start = 0; start < n; start += batch) {
    const std::size_t count = std::min(batch, n - start);
    rows(start, count, raw.data());
    const std::vector<double> batch_norms = normalize_rows(raw.data(), count, dim, unit.data(), start);
    norms.insert(norms.end(), batch_norms.begin(), batch_norms.end());
    const ItemCodes part = codes ? codes->slice(start, start + count)
                                 : dictionary.choose(unit.data(), count, options.n_threads);
    dictionary.reconstruct(part, decoded.data());
    if (step) {
      const std::vector<uint32_t> classes =
          scheme.transform ? scheme.transform->classes(part) : std::vector<uint32_t>{};
      const std::vector<int32_t> levels =
          residual_levels(scheme, unit.data(), decoded.data(), classes.data(), count, dim);
      residual->count(levels.data(), count);
      refine(scheme, decoded.data(), levels.data(), classes.data(), count, dim);
      if (!codes) {
        kept.n += part.n;
        kept.counts.insert(kept.counts.end(), part.counts.begin(), part.counts.end());
        kept.first.insert(kept.first.end(), part.first.begin(), part.first.end());
        kept.rest_index.insert(kept.rest_index.end(), part.rest_index.begin(), part.rest_index.end());
        kept.rest_level.insert(kept.rest_level.end(), part.rest_level.begin(), part.rest_level.end());
      }
    }
    for (std::size_t i = 0; i < count; ++i) {
      for (std::size_t j = 0; j < dim; ++j)
        products[j] = static_cast<double>(decoded[i * dim + j]) * static_cast<double>(unit[i * dim + j]);
      result.cosine[start + i] = detail::pairwise_sum(products.data(), dim);
    }
    const auto add = [&](EncodedItems& to, IndexModel model) {
      const EncodedItems coded = dictionary.encode_items(part, chunk, options.n_threads, model);
      const uint64_t base = to.data.size();
      to.data.insert(to.data.end(), coded.data.begin(), coded.data.end());
      for (std::size_t c = 1; c < coded.offsets.size(); ++c) to.offsets.push_back(base + coded.offsets[c]);
    };
    add(items, both ? IndexModel::kOrder0 : fixed);
    if (both) add(items_remaining, IndexModel::kRemaining);
  }
  IndexModel index_model = fixed;
  if (both && items_remaining.data.size() + kIndexModelHeadBytes < items.data.size()) {
    index_model = IndexModel::kRemaining;
    items = std::move(items_remaining);
  }
  items_remaining = {};

  AtomicFile file(path);
  std::vector<Section> sections = head_sections(dim, norms, dictionary, options, index_model);
  norms = {};
  sections.push_back({kIds, ids_payload(ids, pixels, 0)});
  sections.push_back({kItem, items_payload(n, chunk, items)});
  items = {};
  file.write(encode_container(kCollectionMagic,
                              file_version(index_model, step.has_value(), dictionary.transform() != nullptr),
                              sections));
  sections.clear();
  if (step) {
    // Pass 2: the refinement levels again, chunk by chunk, now that their table is known.
    const ItemCodes& all = codes ? *codes : kept;
    StreamedSection resd(file, kResd, residual->prefix_size());
    for (std::size_t start = 0; start < n; start += batch) {
      const std::size_t count = std::min(batch, n - start);
      rows(start, count, raw.data());
      normalize_rows(raw.data(), count, dim, unit.data(), start);
      const ItemCodes part = all.slice(start, start + count);
      dictionary.reconstruct(part, decoded.data());
      const std::vector<uint32_t> classes =
          scheme.transform ? scheme.transform->classes(part) : std::vector<uint32_t>{};
      const std::vector<int32_t> levels =
          residual_levels(scheme, unit.data(), decoded.data(), classes.data(), count, dim);
      for (std::size_t c = 0; c < count; c += chunk)
        resd.data(residual->chunk(levels.data() + c * dim, std::min(chunk, count - c),
                                  classes.empty() ? nullptr : classes.data() + c));
    }
    resd.end(residual->prefix());
  }
  file.commit();
  return result;
}

// ---- appends in place ------------------------------------------------------------------------

Collection::PendingAppend Collection::prepare_append(const float* embeddings, std::size_t n,
                                                     std::size_t dim,
                                                     const std::vector<std::string>& ids,
                                                     const std::vector<int64_t>& pixels,
                                                     std::size_t chunk_size, int n_threads) const {
  require(n >= 1, "the embeddings (E) have no rows (N = 0): nothing to compress");
  require(dim == dim_, "E must have " + std::to_string(dim_) + " columns, got " + std::to_string(dim));
  check_ids(ids, n, {});  // within the batch; against the collection through its index below
  for (const auto& id : ids) require(!find(id), "duplicate item id '" + id + "'");
  if (ids.empty())
    for (std::size_t i = 0; i < n; ++i)
      require(!find(position_id(size() + i)), "duplicate item id '" + position_id(size() + i) + "'");
  check_pixels(pixels, n);
  const std::size_t chunk = checked_chunk(chunk_size ? chunk_size : this->chunk_size());
  CodedBatch batch = code_batch(*dictionary_, embeddings, n, ids, pixels, chunk, size(),
                                residual_step_, n_threads, nullptr, nullptr, index_model_);
  PendingAppend out;
  out.bytes = encode_sections(batch.sections);
  out.n_sections = batch.sections.size();
  out.result.cosine = std::move(batch.cosine);
  return out;
}

namespace {

void pwrite_all(int fd, const uint8_t* data, std::size_t size, uint64_t offset, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, std::min<std::size_t>(size, 1u << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(path + ": write failed (" + std::strerror(errno) + ")", errno);
    }
    data += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
}

void sync(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) throw IoError(path + ": fdatasync failed (" + std::strerror(errno) + ")", errno);
}

struct Fd {
  int fd;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

}  // namespace

void Collection::write_append(const PendingAppend& batch) const {
  const std::string& path = name_;
  Fd file{::open(path.c_str(), O_RDWR | O_CLOEXEC)};
  if (file.fd < 0) {
    const int error = errno;
    throw IoError(path + ": cannot open for appending (" + std::strerror(error) + ")", error);
  }
  if (::flock(file.fd, LOCK_EX) != 0)  // one appender at a time; readers need no lock
    throw IoError(path + ": cannot lock (" + std::strerror(errno) + ")", errno);
  uint8_t preamble[kPreambleBytes];
  struct stat st;
  if (::pread(file.fd, preamble, kPreambleBytes, 0) != static_cast<ssize_t>(kPreambleBytes) ||
      ::fstat(file.fd, &st) != 0)
    throw IoError(path + ": cannot read its preamble");
  const uint16_t flags = detail::get_u16(preamble + 10);
  const bool counted = flags & kFlagCommittedCount;
  const std::size_t committed = counted ? detail::get_u32(preamble + 12) : 0;
  const auto size = static_cast<uint64_t>(st.st_size);
  const bool same_file = !file_identity_ || (file_identity_->first == static_cast<uint64_t>(st.st_dev) &&
                                             file_identity_->second == static_cast<uint64_t>(st.st_ino));
  const bool unchanged = same_file && std::memcmp(preamble, data_, 10) == 0 && size >= view_.end &&
                         (counted ? committed == view_.sections.size() : size == view_.end);
  if (!unchanged)
    throw IoError(path + ": changed since it was opened (another writer?); open it again to append");
  const uint64_t count = view_.sections.size() + batch.n_sections;
  require(count <= 0xFFFFFFFFu, "too many sections for one file; repack it");
  std::vector<uint8_t> head;
  if (!counted) {  // first in-place append: count the sections there are before adding any
    detail::put_u16(head, static_cast<uint16_t>(flags | kFlagCommittedCount));
    detail::put_u32(head, static_cast<uint32_t>(view_.sections.size()));
    pwrite_all(file.fd, head.data(), head.size(), 10, path);
    sync(file.fd, path);
  }
  try {
    if (size > view_.end && ::ftruncate(file.fd, static_cast<off_t>(view_.end)) != 0)  // a torn tail
      throw IoError(path + ": cannot truncate (" + std::strerror(errno) + ")", errno);
    pwrite_all(file.fd, batch.bytes.data(), batch.bytes.size(), view_.end, path);
    sync(file.fd, path);
    head.clear();
    detail::put_u32(head, static_cast<uint32_t>(count));  // the commit: 4 bytes in one sector
    pwrite_all(file.fd, head.data(), head.size(), 12, path);
    sync(file.fd, path);
  } catch (...) {
    // Failed (a full disk, say) rather than killed: put the file back as it was, best effort.
    // Were this to fail too, the uncommitted tail is ignored by readers all the same.
    if (::ftruncate(file.fd, static_cast<off_t>(view_.end)) == 0 && !counted &&
        ::pwrite(file.fd, preamble + 10, 6, 10) == 6)
      ::fdatasync(file.fd);
    throw;
  }
}

void Collection::adopt_append(PendingAppend&& batch) {
  appended_.push_back(std::make_unique<std::vector<uint8_t>>(std::move(batch.bytes)));
  const std::vector<uint8_t>& bytes = *appended_.back();
  const std::size_t first = view_.sections.size();
  std::size_t pos = 0;
  for (std::size_t k = 0; k < batch.n_sections; ++k) {
    SectionView s;
    std::memcpy(s.tag.data(), bytes.data() + pos, 4);
    s.size = static_cast<std::size_t>(detail::get_u64(bytes.data() + pos + 4));
    s.data = bytes.data() + pos + 12;
    s.offset = view_.end + pos;
    view_.sections.push_back(s);
    pos += 12 + s.size + 4;
  }
  view_.end += bytes.size();
  view_.torn_bytes = 0;
  view_.flags |= kFlagCommittedCount;
  const auto& sections = view_.sections;
  read_batch(sections[first], sections[first + 1], residual_step_ ? &sections[first + 2] : nullptr, first);
}

WriteResult Collection::append_in_place(const float* embeddings, std::size_t n, std::size_t dim,
                                        const std::vector<std::string>& ids,
                                        const std::vector<int64_t>& pixels,
                                        std::size_t chunk_size, int n_threads) {
  PendingAppend batch = prepare_append(embeddings, n, dim, ids, pixels, chunk_size, n_threads);
  write_append(batch);
  WriteResult result = std::move(batch.result);
  adopt_append(std::move(batch));
  return result;
}

// ---- repack ------------------------------------------------------------------------------------

void CollectionWriter::repack(const std::string& path, std::shared_ptr<const CodingDictionary> shared,
                              int n_threads) {
  const Collection col = Collection::open(path, std::move(shared));
  const std::size_t n = col.size(), dim = col.dim(), chunk = col.chunk_size();
  require(n >= 1, path + " holds no items");
  require(n <= 0xFFFFFFFFu, "a batch holds at most 2^32 - 1 items");
  const ItemCodes codes = col.codes(0, n);
  const EncodedItems encoded = col.dictionary().encode_items(codes, chunk, n_threads, col.index_model());
  std::vector<int64_t> pixels = col.pixels();
  if (std::any_of(pixels.begin(), pixels.end(), [](int64_t p) { return p <= 0; })) pixels.clear();
  const auto& sections = col.view_.sections;
  std::vector<Section> out;
  for (std::size_t s = 0; s < 2; ++s)
    out.push_back({sections[s].tag, {sections[s].data, sections[s].data + sections[s].size}});
  out.push_back({kIds, ids_payload(col.ids(), pixels, 0)});
  out.push_back({kItem, items_payload(n, chunk, encoded)});
  AtomicFile file(path);
  file.write(encode_container(kCollectionMagic, col.format_version(), out));
  out.clear();
  if (const auto step = col.residual_step()) {
    // The refinement levels of every item, counted then coded chunk by chunk in one table.
    const TransformModel* transform = col.dictionary().transform();
    ResidualWriter residual(ResidualScheme{*step, transform}, dim, chunk);
    std::vector<int32_t> levels;
    auto read_levels = [&](std::size_t start, std::size_t stop) {
      levels.resize((stop - start) * dim);
      for (const Collection::Batch& b : col.batches_) {
        const std::size_t lo = std::max(start, b.start), hi = std::min(stop, b.start + b.n_items);
        if (lo < hi) col.batch_levels(b, lo - b.start, hi - b.start, levels.data() + (lo - start) * dim);
      }
    };
    std::vector<uint32_t> classes;
    if (transform) classes = transform->classes(codes);
    for (std::size_t start = 0; start < n; start += chunk) {
      const std::size_t stop = std::min(n, start + chunk);
      read_levels(start, stop);
      residual.count(levels.data(), stop - start);
    }
    StreamedSection resd(file, kResd, residual.prefix_size());
    for (std::size_t start = 0; start < n; start += chunk) {
      const std::size_t stop = std::min(n, start + chunk);
      read_levels(start, stop);
      resd.data(residual.chunk(levels.data(), stop - start, classes.empty() ? nullptr : classes.data() + start));
    }
    resd.end(residual.prefix());
  }
  file.commit();
}

}  // namespace smic
