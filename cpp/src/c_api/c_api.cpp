// The C ABI (smic/smic.h) over the C++ format layer. Every entry point runs its body through
// `guard`, which turns each exception into a status code and a thread-local message: no C++
// exception or type crosses the boundary.
#include "smic/smic.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "format/json.hpp"
#include "smic/coding_dictionary.hpp"
#include "smic/collection.hpp"
#include "smic/container.hpp"
#include "smic/ksvd.hpp"
#include "smic/error.hpp"
#include "smic/search.hpp"

// The handles of smic.h. A dictionary handle holds a reference, so encoders and collections
// keep their dictionary alive after smic_dictionary_free.
struct smic_dictionary {
  std::shared_ptr<const smic::CodingDictionary> dictionary;
};

struct smic_encoder {
  std::shared_ptr<const smic::CodingDictionary> dictionary;
};

// Shared, so that a search index (which reads its collection) keeps it alive.
struct smic_collection {
  std::shared_ptr<smic::Collection> collection;
};

struct smic_search_index {
  std::shared_ptr<const smic::Collection> collection;
  std::unique_ptr<smic::SearchIndex> index;
};

namespace {

#define SMIC_STR2(x) #x
#define SMIC_STR(x) SMIC_STR2(x)
constexpr const char* kVersionString =
    SMIC_STR(SMIC_VERSION_MAJOR) "." SMIC_STR(SMIC_VERSION_MINOR) "." SMIC_STR(SMIC_VERSION_PATCH);
// What Python's compress records as HEAD "writer", so both write the same bytes.
const std::string kWriter = std::string("smic-fast ") + kVersionString;

thread_local std::string last_error;
thread_local int last_errno = 0;

// The core's messages name arguments as Python's API does ("the embeddings (E)"); a C caller
// passed `embeddings`, so the C library says that.
std::string c_words(std::string message) {
  static const std::pair<const char*, const char*> words[] = {
      {"the embeddings (E)", "the embeddings"},
      {"(N = 0)", "(n = 0)"},
  };
  for (const auto& [from, to] : words) {
    const std::size_t length = std::strlen(from);
    for (std::size_t at = message.find(from); at != std::string::npos;
         at = message.find(from, at + std::strlen(to)))
      message.replace(at, length, to);
  }
  return message;
}

// Sets the message and errno without throwing (a failed allocation leaves an empty text).
int fail(int status, const char* message, int error_number = 0) noexcept {
  last_errno = error_number;
  try {
    last_error = c_words(message);
  } catch (...) {
    last_error.clear();  // capacity kept: cannot throw
  }
  return status;
}

// An argument check in a C entry point: a message naming the function and the argument.
struct ArgumentError {
  std::string message;
};
// No item has the id asked for.
struct NotFound {
  std::string message;
};
// A caller's output buffer is too short (the message says how long it must be).
struct BufferTooSmall {
  std::string message;
};
// A caller's smic_read_rows returned `status` (not SMIC_OK).
struct ReaderStopped {
  int status;
  std::string message;
};

void need(bool condition, const char* function, const char* what) {
  if (!condition) throw ArgumentError{std::string(function) + ": " + what};
}

template <class Body>
int guard(Body&& body) noexcept {
  try {
    body();
    return SMIC_OK;
  } catch (const ArgumentError& e) {
    return fail(SMIC_ERR_INVALID_ARGUMENT, e.message.c_str());
  } catch (const NotFound& e) {
    return fail(SMIC_ERR_NOT_FOUND, e.message.c_str());
  } catch (const BufferTooSmall& e) {
    return fail(SMIC_ERR_BUFFER_TOO_SMALL, e.message.c_str());
  } catch (const ReaderStopped& e) {
    const bool known = e.status > 0 && e.status <= SMIC_ERR_INTERNAL;
    return fail(known ? e.status : SMIC_ERR_IO, e.message.c_str());
  } catch (const smic::DictionaryMismatchError& e) {
    return fail(SMIC_ERR_DICTIONARY_MISMATCH, e.what());
  } catch (const smic::DecodeError& e) {  // FormatError included
    return fail(SMIC_ERR_FORMAT, e.what());
  } catch (const smic::IoError& e) {
    return fail(SMIC_ERR_IO, e.what(), e.error_number());
  } catch (const std::invalid_argument& e) {  // smic::InvalidArgument included
    return fail(SMIC_ERR_INVALID_ARGUMENT, e.what());
  } catch (const std::bad_alloc&) {
    return fail(SMIC_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::length_error& e) {
    return fail(SMIC_ERR_OUT_OF_MEMORY, e.what());
  } catch (const std::exception& e) {
    return fail(SMIC_ERR_INTERNAL, e.what());
  } catch (...) {
    return fail(SMIC_ERR_INTERNAL, "unknown C++ exception");
  }
}

// n x dim floats must be addressable.
void need_shape(std::size_t n, std::size_t dim, const char* function) {
  need(dim > 0, function, "dim must be > 0");
  need(n <= std::numeric_limits<std::size_t>::max() / sizeof(float) / dim, function,
       "n x dim overflows size_t");
}

std::vector<std::string> id_list(const char* const* ids, std::size_t n, const char* function) {
  std::vector<std::string> out;
  if (ids == nullptr) return out;  // positions
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    need(ids[i] != nullptr, function, "ids has a NULL entry");
    out.emplace_back(ids[i]);
  }
  return out;
}

std::shared_ptr<const smic::CodingDictionary> optional_dictionary(const smic_dictionary* d) {
  return d == nullptr ? nullptr : d->dictionary;
}

std::vector<int64_t> pixel_list(const int64_t* pixels, std::size_t n) {
  if (pixels == nullptr) return {};
  return std::vector<int64_t>(pixels, pixels + n);
}

// The OpenMP thread count of one call: n_threads > 0 sets the calling thread's own setting
// (an OpenMP per-thread variable, so other threads' calls are unaffected) until the call ends.
class ThreadScope {
 public:
  ThreadScope(int n_threads, const char* function) {
    need(n_threads >= 0, function, "n_threads must be >= 0 (0: OpenMP's default)");
#ifdef _OPENMP
    if (n_threads > 0) {
      saved_ = omp_get_max_threads();
      omp_set_num_threads(n_threads);
    }
#endif
  }
  ~ThreadScope() {
#ifdef _OPENMP
    if (saved_ > 0) omp_set_num_threads(saved_);
#endif
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_ = 0;
};

// Copies `size` bytes (or chars) into a caller's buffer of `capacity`, or says how many it needs.
template <class T>
void give(const T* data, std::size_t size, T* out, std::size_t capacity, std::size_t* written,
          const char* function, const char* what) {
  need(written != nullptr, function, "written is NULL");
  need(out != nullptr || capacity == 0, function, "out is NULL with a non-zero capacity");
  *written = size;
  if (size > capacity)
    throw BufferTooSmall{std::string(function) + ": the " + what + " need " + std::to_string(size) +
                         " but the buffer holds " + std::to_string(capacity)};
  if (size) std::memcpy(out, data, size * sizeof(T));
}

// A file mapped read-only (an empty file maps to no bytes).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      throw smic::IoError(path + ": cannot open (" + std::strerror(error) + ")", error);
    }
    struct stat st;
    int error = 0;
    if (::fstat(fd, &st) != 0) error = errno;
    else if (!S_ISREG(st.st_mode)) error = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    if (error) {
      ::close(fd);
      throw smic::IoError(path + ": cannot read it as a file (" + std::strerror(error) + ")", error);
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* map = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      error = errno;
      ::close(fd);
      if (map == MAP_FAILED) throw smic::IoError(path + ": cannot map (" + std::strerror(error) + ")", error);
      data_ = static_cast<const uint8_t*>(map);
    } else {
      ::close(fd);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_ ? data_ : &empty_; }
  std::size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  static constexpr uint8_t empty_ = 0;
};

// The hash of the dictionary a collection's bytes are coded with, and whether they embed it.
void dictionary_hash_of(const uint8_t* data, std::size_t size, const std::string& name, char hex[65],
                        int* embedded) {
  const smic::ContainerView view =
      smic::parse_container(data, size, smic::kCollectionMagic, "smic collection", name);
  if (view.sections.size() < 2)
    throw smic::FormatError(name + ": a collection needs a HEAD and a DICT or DREF section");
  const smic::SectionView& section = view.sections[1];
  std::string text;
  if (section.tag == smic::make_tag("DICT")) {
    text = smic::CodingDictionary::from_bytes(section.data, section.size, name + " (DICT)")->hash_hex();
    *embedded = 1;
  } else if (section.tag == smic::make_tag("DREF")) {
    if (section.size != 32) throw smic::FormatError(name + ": the DREF section must hold 32 bytes");
    static const char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < 32; ++i) {
      text += digits[section.data[i] >> 4];
      text += digits[section.data[i] & 15];
    }
    *embedded = 0;
  } else {
    throw smic::FormatError(name + ": the second section must be DICT or DREF, not " +
                            smic::tag_name(section.tag));
  }
  std::memcpy(hex, text.c_str(), 65);
}

// ---- options ---------------------------------------------------------------------------------

smic_write_options default_write_options() {
  smic_write_options o{};
  o.struct_size = sizeof(smic_write_options);
  o.chunk_size = 0;
  o.embed_dictionary = 1;
  o.residual_step = 0.0;
  o.model = nullptr;
  o.index_model = SMIC_INDEX_MODEL_AUTO;
  o.n_threads = 0;
  o.batch_items = 0;
  return o;
}

smic::WriteOptions write_options(const smic_write_options* given, const char* f) {
  const smic_write_options defaults = default_write_options();
  const smic_write_options& o = given ? *given : defaults;
  need(o.struct_size == sizeof(smic_write_options), f,
       "options->struct_size is not sizeof(smic_write_options): fill the options with "
       "smic_write_options_default first");
  smic::WriteOptions w;
  w.writer = kWriter;
  need(o.chunk_size <= smic::kMaxChunkSize, f, "options->chunk_size must be in [1, 65536] (0: 256)");
  w.chunk_size = o.chunk_size ? o.chunk_size : smic::kDefaultChunkSize;
  w.embed_dictionary = o.embed_dictionary != 0;
  need(o.residual_step == 0.0 ||
           (std::isfinite(o.residual_step) && o.residual_step >= 1e-4 && o.residual_step <= 1.0),
       f, "options->residual_step must be 0 (none) or in [1e-4, 1]");
  if (o.residual_step != 0.0) w.residual_step = o.residual_step;
  if (o.model) w.model = std::string(o.model);
  switch (o.index_model) {
    case SMIC_INDEX_MODEL_AUTO: break;
    case SMIC_INDEX_MODEL_ORDER0: w.index_model = smic::IndexModel::kOrder0; break;
    case SMIC_INDEX_MODEL_REMAINING: w.index_model = smic::IndexModel::kRemaining; break;
    default: throw ArgumentError{std::string(f) + ": options->index_model must be a smic_index_model (0, 1 or 2)"};
  }
  need(o.n_threads >= 0, f, "options->n_threads must be >= 0 (0: OpenMP's default)");
  w.n_threads = o.n_threads;
  return w;
}

std::size_t batch_items(const smic_write_options* o) { return o ? o->batch_items : 0; }

// A RowReader over a caller's smic_read_rows.
smic::RowReader row_reader(smic_read_rows read, void* user, std::size_t dim, const char* f) {
  return [read, user, dim, f](std::size_t start, std::size_t count, float* out) {
    const int status = read(user, start, count, out);
    if (status != SMIC_OK)
      throw ReaderStopped{status, std::string(f) + ": the row reader returned " + std::to_string(status) +
                                      " for rows [" + std::to_string(start) + ", " +
                                      std::to_string(start + count) + ")"};
    (void)dim;
  };
}

// ---- dictionary learning (Python's Dictionary.fit) --------------------------------------------

struct QualityPreset {
  const char* name;
  uint32_t s_max;
  double step, rd_lambda;
  std::size_t max_atoms;  // 0: no cap
  bool learn_rate;
};
constexpr QualityPreset kPresets[] = {
    {"low", 1, 0.25, 2e-2, 128, true},
    {"medium", 4, 0.125, 1.5e-3, 0, true},
    {"high", 8, 0.0625, 4e-4, 0, false},
};

smic_fit_options default_fit_options() {
  smic_fit_options o{};
  o.struct_size = sizeof(smic_fit_options);
  o.quality = "medium";
  o.n_atoms = 0;
  o.n_nonzero = 0;
  o.step = 0.0;
  o.rd_lambda = -1.0;
  o.learn = nullptr;
  o.layout = "smic";
  o.paper_bits = 8;
  o.precision = "float16";
  o.n_iter = 10;
  o.seed = 0;
  o.sample_size = 50000;
  o.n_threads = 0;
  return o;
}

// Python's default_n_atoms: about 3 sqrt(n) as a power of two in [8, 1024], at most n.
std::size_t default_n_atoms(std::size_t n) {
  const double k = std::exp2(std::nearbyint(std::log2(std::max(3.0 * std::sqrt(static_cast<double>(n)), 1.0))));
  return std::min<std::size_t>({std::max<std::size_t>(static_cast<std::size_t>(k), 8), 1024, n});
}

// The sorted rows a fit learns on: selection sampling (Knuth's algorithm S) driven by
// splitmix64 from `seed`; empty means every row.
std::vector<std::size_t> sample_rows(std::size_t n, std::size_t sample_size, uint64_t seed) {
  std::vector<std::size_t> rows;
  if (sample_size == 0 || n <= sample_size) return rows;
  rows.reserve(sample_size);
  uint64_t state = seed;
  const auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  };
  for (std::size_t i = 0; i < n && rows.size() < sample_size; ++i)
    if (static_cast<double>(n - i) * next() < static_cast<double>(sample_size - rows.size())) rows.push_back(i);
  return rows;
}

std::shared_ptr<const smic::CodingDictionary> fit(smic_read_rows read, void* user,
                                                  const float* memory, std::size_t n, std::size_t dim,
                                                  const smic_fit_options* given, const char* f) {
  const smic_fit_options defaults = default_fit_options();
  const smic_fit_options& o = given ? *given : defaults;
  need(o.struct_size == sizeof(smic_fit_options), f,
       "options->struct_size is not sizeof(smic_fit_options): fill the options with "
       "smic_fit_options_default first");
  need(n >= 1, f, "n must be >= 1: there are no rows to learn from");
  need_shape(n, dim, f);
  const std::string quality = o.quality ? o.quality : "medium";
  const QualityPreset* preset = nullptr;
  for (const QualityPreset& p : kPresets)
    if (quality == p.name) preset = &p;
  if (!preset)
    throw ArgumentError{std::string(f) + ": options->quality must be \"low\", \"medium\" or \"high\", got \"" +
                        quality + "\""};
  bool learn_rate = preset->learn_rate;
  if (o.learn) {
    const std::string learn = o.learn;
    need(learn == "rate" || learn == "sparsity", f, "options->learn must be NULL, \"rate\" or \"sparsity\"");
    learn_rate = learn == "rate";
  }
  const std::string layout = o.layout ? o.layout : "smic";
  need(layout == "smic" || layout == "paper", f, "options->layout must be \"smic\" or \"paper\"");
  const std::string precision_name = o.precision ? o.precision : "float16";
  need(precision_name == "float16" || precision_name == "int8", f,
       "options->precision must be \"float16\" or \"int8\"");
  need(o.n_threads >= 0, f, "options->n_threads must be >= 0 (0: OpenMP's default)");

  std::size_t k = o.n_atoms;
  if (k == 0) {
    k = default_n_atoms(n);
    if (preset->max_atoms) k = std::min(k, preset->max_atoms);
  }
  const std::vector<std::size_t> rows = sample_rows(n, o.sample_size, o.seed);
  const std::size_t m = rows.empty() ? n : rows.size();
  if (k > m)
    throw ArgumentError{std::string(f) + ": n_atoms (" + std::to_string(k) + ") must be <= the rows learned on (" +
                        std::to_string(m) + (rows.empty() ? ", every row)" : ", the sample)")};
  smic::CodingParams params;
  if (o.n_nonzero == 0) {
    params.s_max = static_cast<uint32_t>(std::min<std::size_t>({preset->s_max, k, dim}));
  } else {
    if (o.n_nonzero > std::min(k, dim))
      throw ArgumentError{std::string(f) + ": n_nonzero (" + std::to_string(o.n_nonzero) +
                          ") must be <= min(n_atoms, dim) = " + std::to_string(std::min(k, dim))};
    params.s_max = static_cast<uint32_t>(o.n_nonzero);
  }
  params.step = o.step == 0.0 ? preset->step : o.step;
  params.rd_lambda = o.rd_lambda < 0.0 ? preset->rd_lambda : o.rd_lambda;
  params.layout = layout == "paper" ? smic::ItemLayout::kPaper : smic::ItemLayout::kSorted;
  params.paper_bits = o.paper_bits;
  params.validate();
  const smic::AtomPrecision precision =
      precision_name == "int8" ? smic::AtomPrecision::kInt8 : smic::AtomPrecision::kFloat16;

  // The rows learned on, normalised (as Python's normalize_embeddings).
  std::vector<float> unit(m * dim);
  {
    std::vector<float> raw;
    const float* source = memory;
    if (read || !rows.empty()) {
      raw.resize(m * dim);
      std::size_t filled = 0;
      const auto take = [&](std::size_t start, std::size_t count) {
        if (read) {
          row_reader(read, user, dim, f)(start, count, raw.data() + filled * dim);
        } else {
          std::memcpy(raw.data() + filled * dim, memory + start * dim, count * dim * sizeof(float));
        }
        filled += count;
      };
      constexpr std::size_t kRun = 4096;  // rows per read
      if (rows.empty()) {
        for (std::size_t start = 0; start < n; start += kRun) take(start, std::min(kRun, n - start));
      } else {
        for (std::size_t i = 0; i < rows.size();) {
          std::size_t j = i + 1;
          while (j < rows.size() && rows[j] == rows[j - 1] + 1 && j - i < kRun) ++j;
          take(rows[i], j - i);
          i = j;
        }
      }
      source = raw.data();
    }
    smic::CodingDictionary::normalize(source, m, dim, unit.data());
  }
  smic::KsvdOptions options;
  options.n_atoms = k;
  options.n_nonzero = params.s_max;
  options.n_iter = o.n_iter;
  options.seed = o.seed;
  options.n_threads = o.n_threads;
  const smic::KsvdResult learned =
      learn_rate && params.layout == smic::ItemLayout::kSorted
          ? smic::learn_for_rate(unit.data(), m, dim, params, precision, options, o.n_iter / 2)
          : smic::learn_dictionary(unit.data(), m, dim, options);
  return smic::CodingDictionary::with_tables(learned.atoms.data(), k, unit.data(), m, dim, params,
                                             precision, o.n_threads);
}

const char* index_model_name(smic::IndexModel model) {
  return model == smic::IndexModel::kRemaining ? "remaining" : "order0";
}

// Python's Collection.info(), plus what a C caller cannot otherwise ask.
std::string info_json(const smic::Collection& c) {
  const std::size_t n = c.size();
  const uint64_t size = c.file_bytes();
  const smic::SectionBytes& s = c.section_bytes();
  const double item_bits = 8.0 * static_cast<double>(s.items + s.residual);
  std::size_t known = 0;
  double inverse_sum = 0;
  for (int64_t p : c.pixels())
    if (p > 0) {
      ++known;
      inverse_sum += 1.0 / static_cast<double>(p);
    }
  const smic::CodingDictionary& d = c.dictionary();
  const auto dn = static_cast<double>(n);
  smic::json::Writer w;
  w.begin_object().key("name").string(c.name());
  w.key("items").integer(static_cast<int64_t>(n)).key("dim").integer(static_cast<int64_t>(c.dim()));
  w.key("model");
  if (c.model()) w.string(*c.model()); else w.null();
  w.key("n_atoms").integer(static_cast<int64_t>(d.n_atoms()))
      .key("n_nonzero").integer(d.params().s_max)
      .key("layout").string(d.params().layout == smic::ItemLayout::kPaper ? "paper" : "smic")
      .key("precision").string(d.precision_name())
      .key("shared_dictionary").boolean(c.shared_dictionary())
      .key("dictionary_hash").string(d.hash_hex())
      .key("file_bytes").integer(static_cast<int64_t>(size));
  w.key("section_bytes").begin_object()
      .key("header").integer(static_cast<int64_t>(s.header))
      .key("dictionary").integer(static_cast<int64_t>(s.dictionary))
      .key("ids").integer(static_cast<int64_t>(s.ids))
      .key("items").integer(static_cast<int64_t>(s.items))
      .key("residual").integer(static_cast<int64_t>(s.residual))
      .end_object();
  w.key("bits_per_item");
  if (n) w.number(8.0 * static_cast<double>(size) / dn); else w.null();
  w.key("marginal_bits_per_item");
  if (n) w.number(item_bits / dn); else w.null();
  w.key("dictionary_share").number(static_cast<double>(s.dictionary) / static_cast<double>(size));
  w.key("format_version").integer(c.format_version());
  w.key("residual_step");
  if (c.residual_step()) w.number(*c.residual_step()); else w.null();
  w.key("residual_coding");
  if (!c.residual_step()) w.null(); else w.string(c.residual_transform() ? "transform" : "table");
  w.key("index_model").string(index_model_name(c.index_model()));
  if (n && known == n) {
    w.key("bits_per_pixel").number(8.0 * static_cast<double>(size) / dn * inverse_sum / dn);
    w.key("marginal_bits_per_pixel").number(item_bits / dn * inverse_sum / dn);
  }
  w.key("chunk_size").integer(static_cast<int64_t>(c.chunk_size()));
  w.key("batches").begin_array();
  for (std::size_t b : c.batch_sizes()) w.integer(static_cast<int64_t>(b));
  w.end_array();
  w.key("torn_bytes").integer(static_cast<int64_t>(c.torn_bytes()));
  w.key("mean_norm");
  if (c.mean_norm()) w.number(*c.mean_norm()); else w.null();
  w.key("writer");
  const smic::json::Value head = smic::json::parse(c.header_json());
  const smic::json::Value* writer = head.find("writer");
  if (writer && writer->kind == smic::json::Value::Kind::kString) w.string(writer->text); else w.null();
  w.end_object();
  return w.str();
}

// The push-model writer: CollectionWriter::write_streaming runs on a worker thread and pulls
// rows through a RowReader that waits for the rows smic_writer_add hands over.
struct WriterStopped {};  // thrown by the reader when the writer is aborted

}  // namespace

struct smic_writer {
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t n = 0, dim = 0;
  std::size_t added = 0;           // rows handed over by smic_writer_add
  const float* pending = nullptr;  // rows of the current smic_writer_add not yet copied
  std::size_t pending_rows = 0;
  bool aborted = false, done = false, spent = false;
  std::exception_ptr error;  // what stopped the worker, if anything
  std::thread worker;

  ~smic_writer() { stop(); }

  // The worker's RowReader: copies rows [start, start + count) as smic_writer_add offers them.
  void read(std::size_t start, std::size_t count, float* out) {
    // write_streaming reads rows once, in order (no refinement layer: checked at open), so
    // each call asks for the rows that follow the last one's.
    std::unique_lock<std::mutex> lock(mutex);
    std::size_t filled = 0;
    while (filled < count) {
      changed.wait(lock, [&] { return aborted || pending_rows > 0; });
      if (aborted) throw WriterStopped{};
      const std::size_t take = std::min(count - filled, pending_rows);
      std::memcpy(out + filled * dim, pending, take * dim * sizeof(float));
      pending += take * dim;
      pending_rows -= take;
      filled += take;
      if (pending_rows == 0) changed.notify_all();
    }
    (void)start;
  }

  void stop() noexcept {
    {
      std::lock_guard<std::mutex> lock(mutex);
      aborted = true;
    }
    changed.notify_all();
    if (worker.joinable()) worker.join();
  }
};

extern "C" {

// ---- library -----------------------------------------------------------------------------

unsigned smic_version(void) { return SMIC_VERSION_NUMBER; }

unsigned smic_version_number(void) { return SMIC_VERSION_NUMBER; }

int smic_last_errno(void) { return last_errno; }

const char* smic_version_string(void) { return kVersionString; }

const char* smic_error_name(int status) {
  switch (status) {
    case SMIC_OK: return "SMIC_OK";
    case SMIC_ERR_INVALID_ARGUMENT: return "SMIC_ERR_INVALID_ARGUMENT";
    case SMIC_ERR_FORMAT: return "SMIC_ERR_FORMAT";
    case SMIC_ERR_DICTIONARY_MISMATCH: return "SMIC_ERR_DICTIONARY_MISMATCH";
    case SMIC_ERR_IO: return "SMIC_ERR_IO";
    case SMIC_ERR_BUFFER_TOO_SMALL: return "SMIC_ERR_BUFFER_TOO_SMALL";
    case SMIC_ERR_OUT_OF_MEMORY: return "SMIC_ERR_OUT_OF_MEMORY";
    case SMIC_ERR_NOT_FOUND: return "SMIC_ERR_NOT_FOUND";
    case SMIC_ERR_INTERNAL: return "SMIC_ERR_INTERNAL";
    default: return "SMIC_ERR_UNKNOWN";
  }
}

const char* smic_last_error(void) { return last_error.c_str(); }

// ---- dictionaries ------------------------------------------------------------------------

int smic_dictionary_load(const char* path, smic_dictionary** out) {
  return guard([&] {
    need(path != nullptr, "smic_dictionary_load", "path is NULL");
    need(out != nullptr, "smic_dictionary_load", "out is NULL");
    auto handle = std::make_unique<smic_dictionary>();
    handle->dictionary = smic::CodingDictionary::load(path);
    *out = handle.release();
  });
}

int smic_dictionary_from_bytes(const uint8_t* data, size_t size, smic_dictionary** out) {
  return guard([&] {
    need(data != nullptr || size == 0, "smic_dictionary_from_bytes", "data is NULL");
    need(out != nullptr, "smic_dictionary_from_bytes", "out is NULL");
    static const uint8_t empty = 0;
    auto handle = std::make_unique<smic_dictionary>();
    handle->dictionary = smic::CodingDictionary::from_bytes(data ? data : &empty, size);
    *out = handle.release();
  });
}

int smic_dictionary_save(const smic_dictionary* dictionary, const char* path) {
  return guard([&] {
    need(dictionary != nullptr, "smic_dictionary_save", "dictionary is NULL");
    need(path != nullptr, "smic_dictionary_save", "path is NULL");
    dictionary->dictionary->save(path);
  });
}

void smic_dictionary_free(smic_dictionary* dictionary) { delete dictionary; }

int smic_dictionary_dim(const smic_dictionary* dictionary, size_t* dim) {
  return guard([&] {
    need(dictionary != nullptr, "smic_dictionary_dim", "dictionary is NULL");
    need(dim != nullptr, "smic_dictionary_dim", "dim is NULL");
    *dim = dictionary->dictionary->dim();
  });
}

int smic_dictionary_n_atoms(const smic_dictionary* dictionary, size_t* n_atoms) {
  return guard([&] {
    need(dictionary != nullptr, "smic_dictionary_n_atoms", "dictionary is NULL");
    need(n_atoms != nullptr, "smic_dictionary_n_atoms", "n_atoms is NULL");
    *n_atoms = dictionary->dictionary->n_atoms();
  });
}

int smic_dictionary_hash(const smic_dictionary* dictionary, char hex[65]) {
  return guard([&] {
    need(dictionary != nullptr, "smic_dictionary_hash", "dictionary is NULL");
    need(hex != nullptr, "smic_dictionary_hash", "hex is NULL");
    const std::string text = dictionary->dictionary->hash_hex();
    if (text.size() != 64) throw std::logic_error("dictionary hash is not 64 hex digits");
    std::memcpy(hex, text.c_str(), 65);
  });
}

// ---- one item ----------------------------------------------------------------------------

int smic_encode_bound(const smic_dictionary* dictionary, size_t* bytes) {
  return smic_encode_bound_refined(dictionary, 0.0, bytes);
}

int smic_encode_bound_refined(const smic_dictionary* dictionary, double residual_step,
                              size_t* bytes) {
  return guard([&] {
    need(dictionary != nullptr, "smic_encode_bound", "dictionary is NULL");
    need(bytes != nullptr, "smic_encode_bound", "bytes is NULL");
    *bytes = dictionary->dictionary->encode_bound(residual_step);
  });
}

int smic_encoder_new(const smic_dictionary* dictionary, smic_encoder** out) {
  return guard([&] {
    need(dictionary != nullptr, "smic_encoder_new", "dictionary is NULL");
    need(out != nullptr, "smic_encoder_new", "out is NULL");
    auto handle = std::make_unique<smic_encoder>();
    handle->dictionary = dictionary->dictionary;
    (void)handle->dictionary->coder();  // the Gram matrix now, not in the first smic_encode
    *out = handle.release();
  });
}

void smic_encoder_free(smic_encoder* encoder) { delete encoder; }

int smic_encode(smic_encoder* encoder, const float* embedding, uint8_t* out, size_t capacity,
                size_t* written) {
  return smic_encode_refined(encoder, embedding, 0.0, out, capacity, written);
}

int smic_encode_refined(smic_encoder* encoder, const float* embedding, double residual_step,
                        uint8_t* out, size_t capacity, size_t* written) {
  return guard([&] {
    need(encoder != nullptr, "smic_encode", "encoder is NULL");
    need(embedding != nullptr, "smic_encode", "embedding is NULL");
    need(written != nullptr, "smic_encode", "written is NULL");
    need(out != nullptr || capacity == 0, "smic_encode", "out is NULL with a non-zero capacity");
    const std::vector<uint8_t> bytes = encoder->dictionary->encode_one(embedding, residual_step);
    *written = bytes.size();
    if (bytes.size() > capacity) {
      throw BufferTooSmall{"smic_encode: the item needs " + std::to_string(bytes.size()) +
                           " bytes but out holds " + std::to_string(capacity) +
                           " (smic_encode_bound gives a size that always suffices)"};
    }
    if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size());
  });
}

int smic_decode(const smic_dictionary* dictionary, const uint8_t* data, size_t size, float* out) {
  return smic_decode_refined(dictionary, data, size, 0.0, out);
}

int smic_decode_refined(const smic_dictionary* dictionary, const uint8_t* data, size_t size,
                        double residual_step, float* out) {
  return guard([&] {
    need(dictionary != nullptr, "smic_decode", "dictionary is NULL");
    need(data != nullptr || size == 0, "smic_decode", "data is NULL");
    need(out != nullptr, "smic_decode", "out is NULL");
    static const uint8_t empty = 0;
    dictionary->dictionary->decode_one(data ? data : &empty, size, out, residual_step);
  });
}

// ---- collections -------------------------------------------------------------------------

int smic_collection_open(const char* path, const smic_dictionary* dictionary,
                         smic_collection** out) {
  return guard([&] {
    need(path != nullptr, "smic_collection_open", "path is NULL");
    need(out != nullptr, "smic_collection_open", "out is NULL");
    *out = new smic_collection{std::make_shared<smic::Collection>(
        smic::Collection::open(path, optional_dictionary(dictionary)))};
  });
}

int smic_collection_from_bytes(const uint8_t* data, size_t size, const smic_dictionary* dictionary,
                               smic_collection** out) {
  return guard([&] {
    need(data != nullptr || size == 0, "smic_collection_from_bytes", "data is NULL");
    need(out != nullptr, "smic_collection_from_bytes", "out is NULL");
    std::vector<uint8_t> bytes(data, data + size);
    *out = new smic_collection{std::make_shared<smic::Collection>(
        smic::Collection::from_bytes(std::move(bytes), optional_dictionary(dictionary)))};
  });
}

void smic_collection_free(smic_collection* collection) { delete collection; }

int smic_collection_size(const smic_collection* collection, size_t* n_items) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_size", "collection is NULL");
    need(n_items != nullptr, "smic_collection_size", "n_items is NULL");
    *n_items = collection->collection->size();
  });
}

int smic_collection_dim(const smic_collection* collection, size_t* dim) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_dim", "collection is NULL");
    need(dim != nullptr, "smic_collection_dim", "dim is NULL");
    *dim = collection->collection->dim();
  });
}

int smic_collection_id(const smic_collection* collection, size_t index, const char** id) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_id", "collection is NULL");
    need(id != nullptr, "smic_collection_id", "id is NULL");
    const auto& ids = collection->collection->ids();
    if (index >= ids.size()) {
      throw ArgumentError{"smic_collection_id: index " + std::to_string(index) +
                          " out of range for " + std::to_string(ids.size()) + " items"};
    }
    *id = ids[index].c_str();
  });
}

int smic_collection_find(const smic_collection* collection, const char* id, size_t* index) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_find", "collection is NULL");
    need(id != nullptr, "smic_collection_find", "id is NULL");
    need(index != nullptr, "smic_collection_find", "index is NULL");
    const std::optional<std::size_t> found = collection->collection->find(id);
    if (!found) throw NotFound{"smic_collection_find: no item has the id '" + std::string(id) + "'"};
    *index = *found;
  });
}

int smic_collection_decode(const smic_collection* collection, size_t start, size_t stop,
                           float* out) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_decode", "collection is NULL");
    const std::size_t n = collection->collection->size();
    if (start > stop || stop > n) {
      throw ArgumentError{"smic_collection_decode: range [" + std::to_string(start) + ", " +
                          std::to_string(stop) + ") is not within the " + std::to_string(n) +
                          " items"};
    }
    if (start == stop) return;
    need(out != nullptr, "smic_collection_decode", "out is NULL");
    collection->collection->decode(start, stop, out);
  });
}

int smic_collection_dictionary(const smic_collection* collection, smic_dictionary** out) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_dictionary", "collection is NULL");
    need(out != nullptr, "smic_collection_dictionary", "out is NULL");
    *out = new smic_dictionary{collection->collection->dictionary_ptr()};
  });
}

int smic_collection_write(const char* path, const float* embeddings, size_t n, size_t dim,
                          const smic_dictionary* dictionary, const char* const* ids,
                          int embed_dictionary, size_t chunk_size) {
  return guard([&] {
    const char* f = "smic_collection_write";
    need(path != nullptr, f, "path is NULL");
    need(dictionary != nullptr, f, "dictionary is NULL");
    need_shape(n, dim, f);
    need(embeddings != nullptr || n == 0, f, "embeddings is NULL");
    smic::WriteOptions options;
    options.writer = kWriter;
    options.embed_dictionary = embed_dictionary != 0;
    options.chunk_size = chunk_size == 0 ? smic::kDefaultChunkSize : chunk_size;
    static const float empty = 0.0f;
    smic::CollectionWriter::write(path, embeddings ? embeddings : &empty, n, dim,
                                  *dictionary->dictionary, id_list(ids, n, f), {}, options);
  });
}

int smic_collection_append(const char* path, const float* embeddings, size_t n, size_t dim,
                           const char* const* ids, int replace, size_t chunk_size,
                           const smic_dictionary* dictionary) {
  return guard([&] {
    const char* f = "smic_collection_append";
    need(path != nullptr, f, "path is NULL");
    need_shape(n, dim, f);
    need(embeddings != nullptr || n == 0, f, "embeddings is NULL");
    static const float empty = 0.0f;
    if (replace == 0) {  // in place, O(added), under the file's lock (as Python's append)
      smic::Collection collection = smic::Collection::open_mapped(path, optional_dictionary(dictionary));
      collection.append_in_place(embeddings ? embeddings : &empty, n, dim, id_list(ids, n, f), {},
                                 chunk_size);
      return;
    }
    smic::CollectionWriter::append(path, embeddings ? embeddings : &empty, n, dim,
                                   id_list(ids, n, f), {}, replace != 0, chunk_size,
                                   optional_dictionary(dictionary));
  });
}

// ---- issue 31: memory, learning, batch coding ----

int smic_dictionary_to_bytes(const smic_dictionary* dictionary, uint8_t* out, size_t capacity,
                             size_t* written) {
  return guard([&] {
    const char* f = "smic_dictionary_to_bytes";
    need(dictionary != nullptr, f, "dictionary is NULL");
    need(written != nullptr, f, "written is NULL");
    const std::vector<uint8_t> bytes = dictionary->dictionary->to_bytes();
    give(bytes.data(), bytes.size(), out, capacity, written, f, "dictionary's bytes");
  });
}

int smic_fit_options_default(smic_fit_options* options) {
  return guard([&] {
    need(options != nullptr, "smic_fit_options_default", "options is NULL");
    *options = default_fit_options();
  });
}

int smic_dictionary_fit(const float* rows, size_t n, size_t dim, const smic_fit_options* options,
                        smic_dictionary** out) {
  return guard([&] {
    const char* f = "smic_dictionary_fit";
    need(rows != nullptr, f, "rows is NULL");
    need(out != nullptr, f, "out is NULL");
    auto handle = std::make_unique<smic_dictionary>();
    handle->dictionary = fit(nullptr, nullptr, rows, n, dim, options, f);
    *out = handle.release();
  });
}

int smic_dictionary_fit_rows(smic_read_rows read, void* user, size_t n, size_t dim,
                             const smic_fit_options* options, smic_dictionary** out) {
  return guard([&] {
    const char* f = "smic_dictionary_fit_rows";
    need(read != nullptr, f, "read is NULL");
    need(out != nullptr, f, "out is NULL");
    auto handle = std::make_unique<smic_dictionary>();
    handle->dictionary = fit(read, user, nullptr, n, dim, options, f);
    *out = handle.release();
  });
}

int smic_decode_into(const smic_dictionary* dictionary, const uint8_t* data, size_t size,
                     double residual_step, float* out, size_t capacity) {
  return guard([&] {
    const char* f = "smic_decode_into";
    need(dictionary != nullptr, f, "dictionary is NULL");
    need(data != nullptr || size == 0, f, "data is NULL");
    need(out != nullptr || capacity == 0, f, "out is NULL with a non-zero capacity");
    const std::size_t dim = dictionary->dictionary->dim();
    if (capacity < dim)
      throw BufferTooSmall{std::string(f) + ": an item needs " + std::to_string(dim) +
                           " floats but out holds " + std::to_string(capacity)};
    static const uint8_t empty = 0;
    std::vector<float> item(dim);  // out is written only on success
    dictionary->dictionary->decode_one(data ? data : &empty, size, item.data(), residual_step);
    std::memcpy(out, item.data(), dim * sizeof(float));
  });
}

int smic_encode_batch(const smic_dictionary* dictionary, const float* embeddings, size_t n,
                      double residual_step, int n_threads, uint8_t* out, size_t capacity,
                      size_t* offsets, size_t* written) {
  return guard([&] {
    const char* f = "smic_encode_batch";
    need(dictionary != nullptr, f, "dictionary is NULL");
    need(embeddings != nullptr || n == 0, f, "embeddings is NULL");
    need(offsets != nullptr, f, "offsets is NULL (it holds n + 1 values)");
    need(written != nullptr, f, "written is NULL");
    need(out != nullptr || capacity == 0, f, "out is NULL with a non-zero capacity");
    need(n_threads >= 0, f, "n_threads must be >= 0 (0: OpenMP's default)");
    const smic::CodingDictionary& d = *dictionary->dictionary;
    need_shape(n, d.dim(), f);
    (void)d.coder();  // built once, before the threads share it
    std::vector<std::vector<uint8_t>> items(n);
    std::exception_ptr error;
    std::mutex error_mutex;
    const auto count = static_cast<std::ptrdiff_t>(n);
#ifdef _OPENMP
    const int threads = n_threads > 0 ? n_threads : omp_get_max_threads();
#pragma omp parallel for num_threads(threads) schedule(dynamic, 64)
#endif
    for (std::ptrdiff_t i = 0; i < count; ++i) {
      try {
        items[static_cast<std::size_t>(i)] =
            d.encode_one(embeddings + static_cast<std::size_t>(i) * d.dim(), residual_step);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    std::size_t total = 0;
    for (const auto& item : items) total += item.size();
    *written = total;
    if (total > capacity)
      throw BufferTooSmall{std::string(f) + ": the items need " + std::to_string(total) +
                           " bytes but out holds " + std::to_string(capacity)};
    std::size_t at = 0;
    for (std::size_t i = 0; i < n; ++i) {
      offsets[i] = at;
      if (!items[i].empty()) std::memcpy(out + at, items[i].data(), items[i].size());
      at += items[i].size();
    }
    offsets[n] = at;
  });
}

// ---- issue 31: asking a file what it is ----

int smic_file_dictionary_hash(const char* path, char hex[65], int* embedded) {
  return guard([&] {
    const char* f = "smic_file_dictionary_hash";
    need(path != nullptr, f, "path is NULL");
    need(hex != nullptr, f, "hex is NULL");
    need(embedded != nullptr, f, "embedded is NULL");
    const MappedFile file(path);
    dictionary_hash_of(file.data(), file.size(), path, hex, embedded);
  });
}

int smic_bytes_dictionary_hash(const uint8_t* data, size_t size, char hex[65], int* embedded) {
  return guard([&] {
    const char* f = "smic_bytes_dictionary_hash";
    need(data != nullptr || size == 0, f, "data is NULL");
    need(hex != nullptr, f, "hex is NULL");
    need(embedded != nullptr, f, "embedded is NULL");
    static const uint8_t empty = 0;
    dictionary_hash_of(data ? data : &empty, size, "<bytes>", hex, embedded);
  });
}

int smic_collection_info(const smic_collection* collection, char* json, size_t capacity,
                         size_t* written) {
  return guard([&] {
    const char* f = "smic_collection_info";
    need(collection != nullptr, f, "collection is NULL");
    need(written != nullptr, f, "written is NULL");
    const std::string text = info_json(*collection->collection);
    give(text.c_str(), text.size() + 1, json, capacity, written, f, "info's JSON bytes (with its NUL)");
  });
}

int smic_collection_format_version(const smic_collection* collection, unsigned* version) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_format_version", "collection is NULL");
    need(version != nullptr, "smic_collection_format_version", "version is NULL");
    *version = collection->collection->format_version();
  });
}

int smic_collection_open_mapped(const char* path, const smic_dictionary* dictionary,
                                smic_collection** out) {
  return guard([&] {
    need(path != nullptr, "smic_collection_open_mapped", "path is NULL");
    need(out != nullptr, "smic_collection_open_mapped", "out is NULL");
    *out = new smic_collection{std::make_shared<smic::Collection>(
        smic::Collection::open_mapped(path, optional_dictionary(dictionary)))};
  });
}

int smic_collection_decode_into(const smic_collection* collection, size_t start, size_t stop,
                                float* out, size_t capacity, int n_threads) {
  return guard([&] {
    const char* f = "smic_collection_decode_into";
    need(collection != nullptr, f, "collection is NULL");
    const smic::Collection& c = *collection->collection;
    const std::size_t n = c.size();
    if (start > stop || stop > n)
      throw ArgumentError{std::string(f) + ": range [" + std::to_string(start) + ", " +
                          std::to_string(stop) + ") is not within the " + std::to_string(n) + " items"};
    need(out != nullptr || capacity == 0, f, "out is NULL with a non-zero capacity");
    const std::size_t needed = (stop - start) * c.dim();
    if (capacity < needed)
      throw BufferTooSmall{std::string(f) + ": items [" + std::to_string(start) + ", " +
                           std::to_string(stop) + ") need " + std::to_string(needed) +
                           " floats but out holds " + std::to_string(capacity)};
    if (start == stop) return;
    const ThreadScope threads(n_threads, f);
    c.decode(start, stop, out);
  });
}

// ---- issue 31: writing collections ----

int smic_write_options_default(smic_write_options* options) {
  return guard([&] {
    need(options != nullptr, "smic_write_options_default", "options is NULL");
    *options = default_write_options();
  });
}

int smic_collection_write_ex(const char* path, const float* embeddings, size_t n, size_t dim,
                             const smic_dictionary* dictionary, const char* const* ids,
                             const int64_t* pixels, const smic_write_options* options) {
  return guard([&] {
    const char* f = "smic_collection_write_ex";
    need(path != nullptr, f, "path is NULL");
    need(dictionary != nullptr, f, "dictionary is NULL");
    need_shape(n, dim, f);
    need(embeddings != nullptr || n == 0, f, "embeddings is NULL");
    const smic::WriteOptions w = write_options(options, f);
    static const float empty = 0.0f;
    smic::CollectionWriter::write(path, embeddings ? embeddings : &empty, n, dim,
                                  *dictionary->dictionary, id_list(ids, n, f), pixel_list(pixels, n), w);
  });
}

int smic_collection_write_to_bytes(const float* embeddings, size_t n, size_t dim,
                                   const smic_dictionary* dictionary, const char* const* ids,
                                   const int64_t* pixels, const smic_write_options* options,
                                   uint8_t* out, size_t capacity, size_t* written) {
  return guard([&] {
    const char* f = "smic_collection_write_to_bytes";
    need(dictionary != nullptr, f, "dictionary is NULL");
    need(written != nullptr, f, "written is NULL");
    need_shape(n, dim, f);
    need(embeddings != nullptr || n == 0, f, "embeddings is NULL");
    const smic::WriteOptions w = write_options(options, f);
    static const float empty = 0.0f;
    smic::WriteResult result;
    const std::vector<uint8_t> bytes = smic::CollectionWriter::write_bytes(
        embeddings ? embeddings : &empty, n, dim, *dictionary->dictionary, id_list(ids, n, f),
        pixel_list(pixels, n), w, &result);
    give(bytes.data(), bytes.size(), out, capacity, written, f, "collection's bytes");
  });
}

int smic_collection_write_rows(const char* path, smic_read_rows read, void* user, size_t n,
                               size_t dim, const smic_dictionary* dictionary,
                               const char* const* ids, const int64_t* pixels,
                               const smic_write_options* options) {
  return guard([&] {
    const char* f = "smic_collection_write_rows";
    need(path != nullptr, f, "path is NULL");
    need(read != nullptr, f, "read is NULL");
    need(dictionary != nullptr, f, "dictionary is NULL");
    need_shape(n, dim, f);
    const smic::WriteOptions w = write_options(options, f);
    smic::CollectionWriter::write_streaming(path, row_reader(read, user, dim, f), n, dim,
                                            *dictionary->dictionary, id_list(ids, n, f),
                                            pixel_list(pixels, n), w, nullptr, batch_items(options));
  });
}

int smic_writer_open(const char* path, size_t n, size_t dim, const smic_dictionary* dictionary,
                     const char* const* ids, const int64_t* pixels,
                     const smic_write_options* options, smic_writer** out) {
  return guard([&] {
    const char* f = "smic_writer_open";
    need(path != nullptr, f, "path is NULL");
    need(dictionary != nullptr, f, "dictionary is NULL");
    need(out != nullptr, f, "out is NULL");
    need(n >= 1, f, "n must be >= 1: a collection holds at least one item");
    need_shape(n, dim, f);
    if (dim != dictionary->dictionary->dim())
      throw ArgumentError{std::string(f) + ": dim is " + std::to_string(dim) + " but the dictionary's is " +
                          std::to_string(dictionary->dictionary->dim())};
    const smic::WriteOptions w = write_options(options, f);
    need(!w.residual_step, f,
         "a residual_step needs every row twice: write with smic_collection_write_rows instead");
    auto writer = std::make_unique<smic_writer>();
    writer->n = n;
    writer->dim = dim;
    smic_writer* self = writer.get();
    std::vector<std::string> id_strings = id_list(ids, n, f);
    std::vector<int64_t> pixel_values = pixel_list(pixels, n);
    const std::size_t batch = batch_items(options);
    writer->worker = std::thread([self, path = std::string(path), id_strings = std::move(id_strings),
                                  pixel_values = std::move(pixel_values), w, batch,
                                  dict = dictionary->dictionary] {
      std::exception_ptr error;
      try {
        smic::CollectionWriter::write_streaming(
            path, [self](std::size_t start, std::size_t count, float* rows) { self->read(start, count, rows); },
            self->n, self->dim, *dict, id_strings, pixel_values, w, nullptr, batch);
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(self->mutex);
        self->error = error;
        self->done = true;
      }
      self->changed.notify_all();
    });
    *out = writer.release();
  });
}

int smic_writer_add(smic_writer* writer, const float* rows, size_t count) {
  return guard([&] {
    const char* f = "smic_writer_add";
    need(writer != nullptr, f, "writer is NULL");
    need(rows != nullptr || count == 0, f, "rows is NULL");
    std::unique_lock<std::mutex> lock(writer->mutex);
    need(!writer->spent, f, "the writer is finished, aborted or failed: free it");
    if (writer->done) {  // the worker stopped before taking every row: its error
      writer->spent = true;
      if (writer->error) std::rethrow_exception(writer->error);
      throw std::logic_error("smic_writer_add: the writer stopped without an error");
    }
    if (count > writer->n - writer->added)
      throw ArgumentError{std::string(f) + ": " + std::to_string(count) + " rows would make " +
                          std::to_string(writer->added + count) + ", more than the " +
                          std::to_string(writer->n) + " declared at smic_writer_open"};
    if (count == 0) return;
    writer->pending = rows;
    writer->pending_rows = count;
    writer->added += count;
    writer->changed.notify_all();
    writer->changed.wait(lock, [&] { return writer->pending_rows == 0 || writer->done; });
    if (writer->pending_rows != 0) {  // the worker stopped while rows were offered
      writer->pending_rows = 0;
      writer->pending = nullptr;
      writer->spent = true;
      if (writer->error) std::rethrow_exception(writer->error);
      throw std::logic_error("smic_writer_add: the writer stopped without an error");
    }
    writer->pending = nullptr;
  });
}

int smic_writer_rows(const smic_writer* writer, size_t* added) {
  return guard([&] {
    need(writer != nullptr, "smic_writer_rows", "writer is NULL");
    need(added != nullptr, "smic_writer_rows", "added is NULL");
    *added = writer->added;  // written only by the caller's own thread (smic_writer_add)
  });
}

int smic_writer_finish(smic_writer* writer) {
  return guard([&] {
    const char* f = "smic_writer_finish";
    need(writer != nullptr, f, "writer is NULL");
    {
      std::lock_guard<std::mutex> lock(writer->mutex);
      need(!writer->spent, f, "the writer is finished, aborted or failed: free it");
      if (writer->added != writer->n && !writer->done)
        throw ArgumentError{std::string(f) + ": " + std::to_string(writer->added) + " of the " +
                            std::to_string(writer->n) + " rows declared at smic_writer_open were added"};
      writer->spent = true;
    }
    writer->worker.join();  // it has every row: it codes the last batch and commits the file
    if (writer->error) std::rethrow_exception(writer->error);
  });
}

int smic_writer_abort(smic_writer* writer) {
  return guard([&] {
    need(writer != nullptr, "smic_writer_abort", "writer is NULL");
    writer->stop();  // the worker's reader throws; the temporary file is removed
    writer->spent = true;
  });
}

void smic_writer_free(smic_writer* writer) { delete writer; }

// ---- issue 31: appends and repack ----

int smic_collection_append_in_place(smic_collection* collection, const float* embeddings, size_t n,
                                    size_t dim, const char* const* ids, const int64_t* pixels,
                                    size_t chunk_size, int n_threads) {
  return guard([&] {
    const char* f = "smic_collection_append_in_place";
    need(collection != nullptr, f, "collection is NULL");
    need_shape(n, dim, f);
    need(embeddings != nullptr || n == 0, f, "embeddings is NULL");
    need(n_threads >= 0, f, "n_threads must be >= 0 (0: OpenMP's default)");
    static const float empty = 0.0f;
    collection->collection->append_in_place(embeddings ? embeddings : &empty, n, dim,
                                            id_list(ids, n, f), pixel_list(pixels, n), chunk_size,
                                            n_threads);
  });
}

int smic_collection_repack(const char* path, const smic_dictionary* dictionary, int n_threads) {
  return guard([&] {
    const char* f = "smic_collection_repack";
    need(path != nullptr, f, "path is NULL");
    need(n_threads >= 0, f, "n_threads must be >= 0 (0: OpenMP's default)");
    smic::CollectionWriter::repack(path, optional_dictionary(dictionary), n_threads);
  });
}

// ---- issue 31: search ----

int smic_search_index_new(const smic_collection* collection, int n_threads, smic_search_index** out) {
  return guard([&] {
    const char* f = "smic_search_index_new";
    need(collection != nullptr, f, "collection is NULL");
    need(out != nullptr, f, "out is NULL");
    need(n_threads >= 0, f, "n_threads must be >= 0 (0: OpenMP's default)");
    auto handle = std::make_unique<smic_search_index>();
    handle->collection = collection->collection;
    handle->index = std::make_unique<smic::SearchIndex>(*handle->collection, n_threads);
    *out = handle.release();
  });
}

void smic_search_index_free(smic_search_index* index) { delete index; }

int smic_search_index_size(const smic_search_index* index, size_t* n_items, size_t* memory_bytes) {
  return guard([&] {
    need(index != nullptr, "smic_search_index_size", "index is NULL");
    need(n_items != nullptr || memory_bytes != nullptr, "smic_search_index_size",
         "n_items and memory_bytes are both NULL");
    if (n_items) *n_items = index->index->size();
    if (memory_bytes) *memory_bytes = index->index->memory_bytes();
  });
}

int smic_search(const smic_search_index* index, const float* queries, size_t n_queries, size_t dim,
                size_t k, size_t nprobe, size_t rerank, int n_threads, int64_t* positions,
                float* scores, size_t capacity) {
  return guard([&] {
    const char* f = "smic_search";
    need(index != nullptr, f, "index is NULL");
    need(queries != nullptr || n_queries == 0, f, "queries is NULL");
    need(k >= 1, f, "k must be >= 1");
    need(n_threads >= 0, f, "n_threads must be >= 0 (0: OpenMP's default)");
    if (dim != index->index->dim())
      throw ArgumentError{std::string(f) + ": dim is " + std::to_string(dim) + " but the collection's is " +
                          std::to_string(index->index->dim())};
    need(n_queries <= std::numeric_limits<std::size_t>::max() / k, f, "n_queries x k overflows size_t");
    need((positions != nullptr && scores != nullptr) || capacity == 0, f,
         "positions or scores is NULL with a non-zero capacity");
    const std::size_t needed = n_queries * k;
    if (capacity < needed)
      throw BufferTooSmall{std::string(f) + ": " + std::to_string(n_queries) + " queries of k = " +
                           std::to_string(k) + " need " + std::to_string(needed) +
                           " entries but positions and scores hold " + std::to_string(capacity)};
    if (n_queries == 0) return;
    smic::SearchOptions options;
    options.k = k;
    options.nprobe = nprobe;
    options.rerank = rerank;
    options.n_threads = n_threads;
    const smic::SearchResult result = index->index->search(queries, n_queries, options);
    std::memcpy(positions, result.positions.data(), needed * sizeof(int64_t));
    std::memcpy(scores, result.scores.data(), needed * sizeof(float));
  });
}

}  // extern "C"
