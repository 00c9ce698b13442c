// The C ABI (smic/smic.h) over the C++ format layer. Every entry point runs its body through
// `guard`, which turns each exception into a status code and a thread-local message: no C++
// exception or type crosses the boundary.
#include "smic/smic.h"

#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "smic/coding_dictionary.hpp"
#include "smic/collection.hpp"
#include "smic/error.hpp"

// The handles of smic.h. A dictionary handle holds a reference, so encoders and collections
// keep their dictionary alive after smic_dictionary_free.
struct smic_dictionary {
  std::shared_ptr<const smic::CodingDictionary> dictionary;
};

struct smic_encoder {
  std::shared_ptr<const smic::CodingDictionary> dictionary;
};

struct smic_collection {
  smic::Collection collection;
};

namespace {

#define SMIC_STR2(x) #x
#define SMIC_STR(x) SMIC_STR2(x)
constexpr const char* kVersionString =
    SMIC_STR(SMIC_VERSION_MAJOR) "." SMIC_STR(SMIC_VERSION_MINOR) "." SMIC_STR(SMIC_VERSION_PATCH);
// What Python's compress records as HEAD "writer", so both write the same bytes.
const std::string kWriter = std::string("smic-fast ") + kVersionString;

thread_local std::string last_error;

// Sets the message without throwing (a failed allocation leaves a fixed text).
int fail(int status, const char* message) noexcept {
  try {
    last_error = message;
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
  } catch (const smic::DictionaryMismatchError& e) {
    return fail(SMIC_ERR_DICTIONARY_MISMATCH, e.what());
  } catch (const smic::DecodeError& e) {  // FormatError included
    return fail(SMIC_ERR_FORMAT, e.what());
  } catch (const smic::IoError& e) {
    return fail(SMIC_ERR_IO, e.what());
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

}  // namespace

extern "C" {

// ---- library -----------------------------------------------------------------------------

unsigned smic_version(void) { return SMIC_VERSION_NUMBER; }

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
    *out = new smic_collection{smic::Collection::open(path, optional_dictionary(dictionary))};
  });
}

int smic_collection_from_bytes(const uint8_t* data, size_t size, const smic_dictionary* dictionary,
                               smic_collection** out) {
  return guard([&] {
    need(data != nullptr || size == 0, "smic_collection_from_bytes", "data is NULL");
    need(out != nullptr, "smic_collection_from_bytes", "out is NULL");
    std::vector<uint8_t> bytes(data, data + size);
    *out = new smic_collection{
        smic::Collection::from_bytes(std::move(bytes), optional_dictionary(dictionary))};
  });
}

void smic_collection_free(smic_collection* collection) { delete collection; }

int smic_collection_size(const smic_collection* collection, size_t* n_items) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_size", "collection is NULL");
    need(n_items != nullptr, "smic_collection_size", "n_items is NULL");
    *n_items = collection->collection.size();
  });
}

int smic_collection_dim(const smic_collection* collection, size_t* dim) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_dim", "collection is NULL");
    need(dim != nullptr, "smic_collection_dim", "dim is NULL");
    *dim = collection->collection.dim();
  });
}

int smic_collection_id(const smic_collection* collection, size_t index, const char** id) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_id", "collection is NULL");
    need(id != nullptr, "smic_collection_id", "id is NULL");
    const auto& ids = collection->collection.ids();
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
    const std::optional<std::size_t> found = collection->collection.find(id);
    if (!found) throw NotFound{"smic_collection_find: no item has the id '" + std::string(id) + "'"};
    *index = *found;
  });
}

int smic_collection_decode(const smic_collection* collection, size_t start, size_t stop,
                           float* out) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_decode", "collection is NULL");
    const std::size_t n = collection->collection.size();
    if (start > stop || stop > n) {
      throw ArgumentError{"smic_collection_decode: range [" + std::to_string(start) + ", " +
                          std::to_string(stop) + ") is not within the " + std::to_string(n) +
                          " items"};
    }
    if (start == stop) return;
    need(out != nullptr, "smic_collection_decode", "out is NULL");
    collection->collection.decode(start, stop, out);
  });
}

int smic_collection_dictionary(const smic_collection* collection, smic_dictionary** out) {
  return guard([&] {
    need(collection != nullptr, "smic_collection_dictionary", "collection is NULL");
    need(out != nullptr, "smic_collection_dictionary", "out is NULL");
    *out = new smic_dictionary{collection->collection.dictionary_ptr()};
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
    smic::CollectionWriter::append(path, embeddings ? embeddings : &empty, n, dim,
                                   id_list(ids, n, f), {}, replace != 0, chunk_size,
                                   optional_dictionary(dictionary));
  });
}

}  // extern "C"
