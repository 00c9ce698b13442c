/* smic.h: the C ABI of the smic core (libsmic_c, CMake target smic::c).
 *
 * A C99 header with no C++ type in it: C, Rust, Go, Zig or a Triton backend can read and write
 * .smic collections and .smicd dictionaries through it. Only `smic_*` symbols are exported.
 *
 * Rules (docs/cpp.md has the long form):
 *  - Every function that can fail returns an int status: SMIC_OK (0) or one of enum
 *    smic_status. smic_error_name(code) names a code; smic_last_error() gives the message of
 *    the most recent failing call *on the calling thread* (thread-local, like errno: a
 *    successful call leaves it as it was). Outputs are written only on SMIC_OK, except the
 *    `written` size of smic_encode, which on SMIC_ERR_BUFFER_TOO_SMALL holds the size needed.
 *  - Handles are opaque. Each *_free accepts NULL. A dictionary is immutable once loaded: one
 *    handle may serve any number of threads at once. A collection handle is read-only and may
 *    be read from several threads at once. An encoder is a per-thread context: use one encoder
 *    from one thread at a time (make one per thread; they are cheap).
 *  - Encoders and collections keep their dictionary alive: smic_dictionary_free may be called
 *    before freeing them.
 *  - Embeddings are float32, row-major (n x dim). Sizes are size_t. Strings are UTF-8,
 *    NUL-terminated. Paths are passed to the C library as they are.
 */
#ifndef SMIC_SMIC_H
#define SMIC_SMIC_H

#include <stddef.h>
#include <stdint.h>

#define SMIC_VERSION_MAJOR 0
#define SMIC_VERSION_MINOR 1
#define SMIC_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, the value smic_version() returns. */
#define SMIC_VERSION_NUMBER \
  (SMIC_VERSION_MAJOR * 10000 + SMIC_VERSION_MINOR * 100 + SMIC_VERSION_PATCH)

#if defined(_WIN32) && defined(SMIC_C_BUILDING)
#define SMIC_API __declspec(dllexport)
#elif defined(_WIN32)
#define SMIC_API __declspec(dllimport)
#elif defined(__GNUC__)
#define SMIC_API __attribute__((visibility("default")))
#else
#define SMIC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. STABLE: the values below never change meaning or number; later versions may
 * add codes (treat any unknown non-zero value as a failure and print smic_error_name()).
 * The text of smic_last_error() is for people and may change between versions. */
typedef enum smic_status {
  SMIC_OK = 0,
  SMIC_ERR_INVALID_ARGUMENT = 1,    /* a NULL pointer, a size or value out of range */
  SMIC_ERR_FORMAT = 2,              /* bytes truncated, corrupted, of another kind or newer version */
  SMIC_ERR_DICTIONARY_MISMATCH = 3, /* a collection needs its shared dictionary, or got another */
  SMIC_ERR_IO = 4,                  /* a file could not be read, written or renamed */
  SMIC_ERR_BUFFER_TOO_SMALL = 5,    /* an output buffer is shorter than the result */
  SMIC_ERR_OUT_OF_MEMORY = 6,       /* an allocation failed */
  SMIC_ERR_NOT_FOUND = 7,           /* no item has the requested id */
  SMIC_ERR_INTERNAL = 8             /* a bug in smic: please report it with the message */
} smic_status;

typedef struct smic_dictionary smic_dictionary; /* a loaded .smicd: immutable, thread-safe */
typedef struct smic_encoder smic_encoder;       /* per-thread encoding context */
typedef struct smic_collection smic_collection; /* an opened .smic: read-only, thread-safe */

/* ---- library ---------------------------------------------------------------------------- */

/* SMIC_VERSION_NUMBER of the library actually loaded (compare with the header's). */
SMIC_API unsigned smic_version(void);
/* "MAJOR.MINOR.PATCH" of the library loaded. */
SMIC_API const char* smic_version_string(void);
/* The name of a status code ("SMIC_ERR_FORMAT"), "SMIC_ERR_UNKNOWN" for an unknown code.
 * Static storage: never free it. */
SMIC_API const char* smic_error_name(int status);
/* The message of the last failing call on this thread ("" if none). Valid until the next
 * failing call on this thread. */
SMIC_API const char* smic_last_error(void);

/* ---- dictionaries (.smicd) --------------------------------------------------------------- */

SMIC_API int smic_dictionary_load(const char* path, smic_dictionary** out);
SMIC_API int smic_dictionary_from_bytes(const uint8_t* data, size_t size, smic_dictionary** out);
SMIC_API int smic_dictionary_save(const smic_dictionary* dictionary, const char* path);
SMIC_API void smic_dictionary_free(smic_dictionary* dictionary);
SMIC_API int smic_dictionary_dim(const smic_dictionary* dictionary, size_t* dim);
SMIC_API int smic_dictionary_n_atoms(const smic_dictionary* dictionary, size_t* n_atoms);
/* The dictionary's SHA-256 (what a collection's DREF section holds) as 64 hex digits and a
 * NUL into hex (65 bytes). */
SMIC_API int smic_dictionary_hash(const smic_dictionary* dictionary, char hex[65]);

/* ---- one item: encode and decode ---------------------------------------------------------- */

/* The most bytes smic_encode can write for one item of this dictionary. */
SMIC_API int smic_encode_bound(const smic_dictionary* dictionary, size_t* bytes);
/* A per-thread encoding context (builds the dictionary's coder on first use, so the first
 * smic_encode is not slower than the next). */
SMIC_API int smic_encoder_new(const smic_dictionary* dictionary, smic_encoder** out);
SMIC_API void smic_encoder_free(smic_encoder* encoder);
/* Encode one embedding (dim finite floats, any norm: it is normalised first) into out: the
 * bytes Python's Dictionary.encode gives, those the collection writer stores for it as a chunk
 * of one. NaN or infinity: SMIC_ERR_INVALID_ARGUMENT. Runs on the calling thread only.
 * On SMIC_OK *written is their count; on SMIC_ERR_BUFFER_TOO_SMALL it is the count needed and
 * out is untouched. */
SMIC_API int smic_encode(smic_encoder* encoder, const float* embedding, uint8_t* out,
                         size_t capacity, size_t* written);
/* Decode the bytes of smic_encode into the unit-norm embedding (dim floats). */
SMIC_API int smic_decode(const smic_dictionary* dictionary, const uint8_t* data, size_t size,
                         float* out);

/* The same with the dictionary's transform-coded refinement layer at residual_step (in
 * [1e-4, 1]; 0: none, as above): the levels are coded after the item's symbols in the same
 * bytes, those Python's Dictionary.encode(embedding, residual_step) gives, and they decode to
 * exactly the embedding a collection written at that step holds for the item. A dictionary
 * without a transform, or a step out of range: SMIC_ERR_INVALID_ARGUMENT. Decode with the step
 * the bytes were encoded with (it is not stored in them). */
SMIC_API int smic_encode_bound_refined(const smic_dictionary* dictionary, double residual_step,
                                       size_t* bytes);
SMIC_API int smic_encode_refined(smic_encoder* encoder, const float* embedding,
                                 double residual_step, uint8_t* out, size_t capacity,
                                 size_t* written);
SMIC_API int smic_decode_refined(const smic_dictionary* dictionary, const uint8_t* data,
                                 size_t size, double residual_step, float* out);

/* ---- collections (.smic) ------------------------------------------------------------------ */

/* Open a collection. One coded against a shared dictionary needs it as `dictionary`
 * (SMIC_ERR_DICTIONARY_MISMATCH otherwise); pass NULL for one that embeds its dictionary. */
SMIC_API int smic_collection_open(const char* path, const smic_dictionary* dictionary,
                                  smic_collection** out);
/* The same from bytes in memory (copied: the buffer may be freed after the call). */
SMIC_API int smic_collection_from_bytes(const uint8_t* data, size_t size,
                                        const smic_dictionary* dictionary, smic_collection** out);
SMIC_API void smic_collection_free(smic_collection* collection);
SMIC_API int smic_collection_size(const smic_collection* collection, size_t* n_items);
SMIC_API int smic_collection_dim(const smic_collection* collection, size_t* dim);
/* The id of item `index` (valid while the collection is open). */
SMIC_API int smic_collection_id(const smic_collection* collection, size_t index, const char** id);
/* The position of the item with this id; SMIC_ERR_NOT_FOUND if there is none. */
SMIC_API int smic_collection_find(const smic_collection* collection, const char* id,
                                  size_t* index);
/* The unit-norm embeddings of items [start, stop) into out ((stop - start) x dim floats),
 * decoding only the chunks that hold them: what Python's col[start:stop] gives. */
SMIC_API int smic_collection_decode(const smic_collection* collection, size_t start, size_t stop,
                                    float* out);
/* The collection's dictionary (a new handle: free it with smic_dictionary_free). */
SMIC_API int smic_collection_dictionary(const smic_collection* collection, smic_dictionary** out);

/* Write n embeddings (n x dim, any norm) coded with `dictionary` as a new collection at `path`,
 * atomically (a temporary file renamed over the target). ids: n NUL-terminated unique strings,
 * or NULL for positions ("0", "1", ...). embed_dictionary != 0 stores the dictionary in the
 * file; 0 stores only its hash (readers then need the .smicd). chunk_size: items per
 * independently decodable chunk, 0 for the default (256). Coding runs on OpenMP's default
 * number of threads (OMP_NUM_THREADS). */
SMIC_API int smic_collection_write(const char* path, const float* embeddings, size_t n, size_t dim,
                                   const smic_dictionary* dictionary, const char* const* ids,
                                   int embed_dictionary, size_t chunk_size);
/* Append n embeddings to the collection at `path`, atomically; earlier items are untouched.
 * ids: as for smic_collection_write (NULL continues the positions). An id already present is
 * SMIC_ERR_INVALID_ARGUMENT unless replace != 0: the old item is then dropped and the new one
 * appended. chunk_size 0: the collection's. dictionary: the shared .smicd of a collection that
 * refers to one, else NULL. */
SMIC_API int smic_collection_append(const char* path, const float* embeddings, size_t n,
                                    size_t dim, const char* const* ids, int replace,
                                    size_t chunk_size, const smic_dictionary* dictionary);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SMIC_SMIC_H */
