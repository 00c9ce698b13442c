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
 *  - Output buffers carry their capacity (as zstd's dstCapacity): a `capacity` in elements
 *    (bytes, floats, entries), and where a size can be reported, `*written` holds the count
 *    needed on SMIC_ERR_BUFFER_TOO_SMALL (the buffer is then untouched). Functions of 0.1.0
 *    without a capacity (smic_decode, smic_collection_decode) stay for existing callers.
 *  - IO errors keep the errno of the failed system call: smic_last_errno().
 *  - n_threads: threads of that call (0: OpenMP's default, OMP_NUM_THREADS or every core).
 *    Results never depend on it.
 *  - Option structs (smic_write_options, smic_fit_options) start with struct_size: fill them
 *    with their *_default function, then change fields. Later versions append fields and
 *    accept the sizes of earlier ones.
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
typedef struct smic_writer smic_writer;         /* a collection being written row batch by batch */
typedef struct smic_search_index smic_search_index; /* compressed-domain search over a collection */

/* ---- library ---------------------------------------------------------------------------- */

/* SMIC_VERSION_NUMBER of the library actually loaded (compare with the header's). Kept for
 * 0.1.0 callers; new code should call smic_version_number(), whose name says it is a number
 * (print it with %u, never %s). */
SMIC_API unsigned smic_version(void);
/* The same number: SMIC_VERSION_NUMBER of the library loaded (MAJOR * 10000 + MINOR * 100 +
 * PATCH), as ZSTD_versionNumber(). */
SMIC_API unsigned smic_version_number(void);
/* "MAJOR.MINOR.PATCH" of the library loaded. */
SMIC_API const char* smic_version_string(void);
/* The name of a status code ("SMIC_ERR_FORMAT"), "SMIC_ERR_UNKNOWN" for an unknown code.
 * Static storage: never free it. */
SMIC_API const char* smic_error_name(int status);
/* The message of the last failing call on this thread ("" if none). Valid until the next
 * failing call on this thread. */
SMIC_API const char* smic_last_error(void);
/* The errno of the system call behind the last failing call on this thread when that call
 * failed with SMIC_ERR_IO (ENOENT, EACCES, EISDIR, ENOSPC, ...); 0 when its status was another
 * one or no errno applies. Like smic_last_error, a successful call leaves it as it was. */
SMIC_API int smic_last_errno(void);

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
/* The .smicd bytes of the dictionary (what smic_dictionary_save writes) into out. On SMIC_OK
 * *written is their count; on SMIC_ERR_BUFFER_TOO_SMALL it is the count needed (out may be
 * NULL with capacity 0 to ask for it). */
SMIC_API int smic_dictionary_to_bytes(const smic_dictionary* dictionary, uint8_t* out,
                                      size_t capacity, size_t* written);

/* ---- dictionary learning ------------------------------------------------------------------ */

/* Rows of an input read a batch at a time: write rows [start, start + count) (count x dim
 * float32, any norm) into out and return SMIC_OK (0). Any other value stops the call that
 * asked, which returns it (SMIC_ERR_IO when it is not a smic_status) with nothing written.
 * Called from the thread that made the call (never from several at once). */
typedef int (*smic_read_rows)(void* user, size_t start, size_t count, float* out);

/* What smic_dictionary_fit learns; the fields and defaults of Python's Dictionary.fit. */
typedef struct smic_fit_options {
  size_t struct_size;    /* sizeof(smic_fit_options), set by smic_fit_options_default */
  const char* quality;   /* "low", "medium" (default) or "high": sets the four fields below
                            that are left at their defaults */
  size_t n_atoms;        /* K; 0: about 3 sqrt(n) as a power of two in [8, 1024] (at most 128
                            for "low"), at most n */
  size_t n_nonzero;      /* most atoms per item; 0: the quality's (1, 4, 8) */
  double step;           /* coefficient ratio step in (0, 1]; 0: the quality's */
  double rd_lambda;      /* price of one bit in cosine (>= 0); negative: the quality's */
  const char* learn;     /* NULL: the quality's; "rate" or "sparsity" */
  const char* layout;    /* "smic" (default) or "paper" */
  unsigned paper_bits;   /* paper layout: bits per coefficient in [1, 16]; default 8 */
  const char* precision; /* "float16" (default) or "int8" */
  size_t n_iter;         /* K-SVD iterations; default 10 */
  uint64_t seed;         /* of the initial atoms and of the sample; default 0 */
  size_t sample_size;    /* learn on at most this many rows (a seeded uniform sample, rows
                            read in increasing order); default 50000; 0: every row */
  int n_threads;         /* 0: OpenMP's default */
} smic_fit_options;

/* Fill options with the defaults (Python's Dictionary.fit defaults). */
SMIC_API int smic_fit_options_default(smic_fit_options* options);
/* Learn a dictionary and its coding tables from n rows (n x dim, any norm: normalised first),
 * as `smic dictionary fit` and Python's Dictionary.fit do: K-SVD (learn "sparsity") or K-SVD
 * whose later iterations code with the coder's rate choice (learn "rate"), then the coding
 * tables. With n <= sample_size (or sample_size 0) the dictionary is the one Python's
 * Dictionary.fit learns from the same rows, byte for byte; above it, the sample is drawn by
 * smic's own seeded generator (not numpy's), so the rows learned on differ from Python's.
 * options NULL: the defaults. The new handle goes to *out (free it with smic_dictionary_free).
 * Time: n_iter passes of OMP over the rows learned on. */
SMIC_API int smic_dictionary_fit(const float* rows, size_t n, size_t dim,
                                 const smic_fit_options* options, smic_dictionary** out);
/* The same, reading the rows through `read` (only the rows learned on, in increasing order,
 * in runs of consecutive rows): memory is the sample (sample_size x dim floats), not n rows. */
SMIC_API int smic_dictionary_fit_rows(smic_read_rows read, void* user, size_t n, size_t dim,
                                      const smic_fit_options* options, smic_dictionary** out);

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
/* smic_decode_refined with the output's capacity in floats (dim needed; residual_step 0: no
 * refinement layer): SMIC_ERR_BUFFER_TOO_SMALL, out untouched, when capacity < dim. */
SMIC_API int smic_decode_into(const smic_dictionary* dictionary, const uint8_t* data, size_t size,
                              double residual_step, float* out, size_t capacity);

/* Encode n embeddings (n x dim, any norm) one by one, as smic_encode_refined does each (the
 * same bytes), on n_threads threads. Item i's bytes are out[offsets[i], offsets[i + 1]);
 * offsets holds n + 1 values. On SMIC_OK *written is the total (offsets[n]); on
 * SMIC_ERR_BUFFER_TOO_SMALL it is the total needed and out and offsets are untouched
 * (n x smic_encode_bound_refined always suffices). */
SMIC_API int smic_encode_batch(const smic_dictionary* dictionary, const float* embeddings,
                               size_t n, double residual_step, int n_threads, uint8_t* out,
                               size_t capacity, size_t* offsets, size_t* written);

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
/* Append n embeddings to the collection at `path`; earlier items are untouched. ids: as for
 * smic_collection_write (NULL continues the positions). An id already present is
 * SMIC_ERR_INVALID_ARGUMENT unless replace != 0: the old item is then dropped and the new one
 * appended. chunk_size 0: the collection's. dictionary: the shared .smicd of a collection that
 * refers to one, else NULL. Without replace the batch is appended in place, under the file's
 * lock and kill-safe, as smic_collection_append_in_place (the file is mapped to open it, not
 * copied); with replace the file is rewritten atomically (a temporary renamed over it). Either
 * way the bytes are those of Python's Collection.append. */
SMIC_API int smic_collection_append(const char* path, const float* embeddings, size_t n,
                                    size_t dim, const char* const* ids, int replace,
                                    size_t chunk_size, const smic_dictionary* dictionary);

/* ---- asking a file what it is ------------------------------------------------------------ */

/* The dictionary the collection at `path` (or in data[0, size)) is coded with, without
 * opening it as a collection (no shared dictionary needed): its SHA-256 as 64 hex digits and
 * a NUL into hex (65 bytes), and *embedded = 1 when the file embeds it (DICT section), 0 when
 * it stores only the hash (DREF: readers need that .smicd; compare with smic_dictionary_hash).
 * The file is mapped, not read whole; every section's CRC is checked. */
SMIC_API int smic_file_dictionary_hash(const char* path, char hex[65], int* embedded);
SMIC_API int smic_bytes_dictionary_hash(const uint8_t* data, size_t size, char hex[65],
                                        int* embedded);

/* What an opened collection holds, as one JSON object (UTF-8, NUL-terminated) with the keys
 * of Python's smic_fast.open(p).info(): "items", "dim", "model" (null if none), "n_atoms",
 * "n_nonzero", "layout", "precision", "shared_dictionary", "dictionary_hash", "file_bytes",
 * "section_bytes" {"header", "dictionary", "ids", "items", "residual"}, "bits_per_item",
 * "marginal_bits_per_item", "dictionary_share", "format_version", "residual_step" (null if
 * none), "residual_coding" (null, "table" or "transform"), "index_model" ("order0" or
 * "remaining"), "bits_per_pixel" and "marginal_bits_per_pixel" (only when every item has a
 * pixel count); and besides: "name" (the path, or "<bytes>"), "chunk_size" (the first
 * batch's), "batches" (items per batch, in order), "torn_bytes" (an interrupted append's
 * leftover), "mean_norm", "writer". Rates are counted from the bytes of the file. Keys may be
 * added in later versions. *written: bytes with the NUL (needed ones on
 * SMIC_ERR_BUFFER_TOO_SMALL; json may be NULL with capacity 0 to ask). */
SMIC_API int smic_collection_info(const smic_collection* collection, char* json, size_t capacity,
                                  size_t* written);
/* The lowest format version that describes the collection (1 to 4; docs/format.md). */
SMIC_API int smic_collection_format_version(const smic_collection* collection, unsigned* version);

/* Open a collection by mapping its file read-only (mmap) instead of reading it whole: items
 * are paged in as they are decoded. As smic_collection_open otherwise. The file must not be
 * truncated or rewritten in place while the handle lives (in-place appends and repacks, which
 * rename a new file over it, are safe). */
SMIC_API int smic_collection_open_mapped(const char* path, const smic_dictionary* dictionary,
                                         smic_collection** out);

/* smic_collection_decode with the output's capacity in floats ((stop - start) x dim needed)
 * and a thread count. */
SMIC_API int smic_collection_decode_into(const smic_collection* collection, size_t start,
                                         size_t stop, float* out, size_t capacity, int n_threads);

/* ---- writing collections -------------------------------------------------------------------- */

typedef enum smic_index_model {
  SMIC_INDEX_MODEL_AUTO = 0,      /* whichever gives the smaller file (Python's "auto") */
  SMIC_INDEX_MODEL_ORDER0 = 1,    /* one index table (format versions 1 and 2) */
  SMIC_INDEX_MODEL_REMAINING = 2  /* the remaining-atoms model (format version 3) */
} smic_index_model;

/* How a new collection is written (Python's compress arguments). */
typedef struct smic_write_options {
  size_t struct_size;     /* sizeof(smic_write_options), set by smic_write_options_default */
  size_t chunk_size;      /* items per independently decodable chunk, in [1, 65536]; 0: 256 */
  int embed_dictionary;   /* 1 (default): the file carries the dictionary; 0: only its hash */
  double residual_step;   /* 0 (default): atoms only; in [1e-4, 1]: a refinement layer */
  const char* model;      /* CLIP model name recorded in the header; NULL: none */
  int index_model;        /* a smic_index_model; default SMIC_INDEX_MODEL_AUTO */
  int n_threads;          /* 0: OpenMP's default */
  size_t batch_items;     /* streaming: rows coded at a time (whole chunks); 0: 4096 */
} smic_write_options;

/* Fill options with the defaults. */
SMIC_API int smic_write_options_default(smic_write_options* options);

/* Write n embeddings (n x dim, any norm) as a new collection at `path`, atomically, with
 * options (NULL: the defaults). ids: n unique NUL-terminated strings or NULL (positions);
 * pixels: n pixel counts (> 0) for bits-per-pixel figures, or NULL. The bytes are those of
 * Python's compress(E, path, dictionary=..., ...) with the same arguments. */
SMIC_API int smic_collection_write_ex(const char* path, const float* embeddings, size_t n,
                                      size_t dim, const smic_dictionary* dictionary,
                                      const char* const* ids, const int64_t* pixels,
                                      const smic_write_options* options);
/* The same into memory: on SMIC_OK *written is the count of bytes in out; on
 * SMIC_ERR_BUFFER_TOO_SMALL the count needed (out untouched; coding runs again on the
 * retry, so give a generous capacity). */
SMIC_API int smic_collection_write_to_bytes(const float* embeddings, size_t n, size_t dim,
                                            const smic_dictionary* dictionary,
                                            const char* const* ids, const int64_t* pixels,
                                            const smic_write_options* options, uint8_t* out,
                                            size_t capacity, size_t* written);
/* Write a collection of n rows read through `read`, batch_items rows at a time (a memory map,
 * a file, a generator): memory stays a batch plus tens of bytes per item, never n x dim
 * floats. With a residual_step the rows are read twice (a second pass codes the refinement
 * once its table is known). The bytes are smic_collection_write_ex's. */
SMIC_API int smic_collection_write_rows(const char* path, smic_read_rows read, void* user,
                                        size_t n, size_t dim, const smic_dictionary* dictionary,
                                        const char* const* ids, const int64_t* pixels,
                                        const smic_write_options* options);

/* A streaming writer for programs that push rows: open with the number of rows n (ids and
 * pixels, if any, for all n rows: they are copied), add rows in batches of any size, in order,
 * then finish, which commits the file atomically (a temporary renamed over `path`). Abort (or
 * free before finish) leaves `path` untouched. Rows are coded on a worker thread while the
 * caller prepares the next batch; smic_writer_add returns once the library has copied the
 * rows (the caller may then reuse the buffer). Memory: one batch (batch_items rows) plus tens
 * of bytes per item, whatever n. The file is smic_collection_write_ex's, byte for byte.
 * A residual_step needs every row twice: use smic_collection_write_rows for it
 * (SMIC_ERR_INVALID_ARGUMENT here). A failure inside the writer (a NaN row, a full disk) is
 * returned by the smic_writer_add or smic_writer_finish that meets it; the writer is then
 * spent (later calls return SMIC_ERR_INVALID_ARGUMENT) and only smic_writer_free remains.
 * One writer is used from one thread at a time. */
SMIC_API int smic_writer_open(const char* path, size_t n, size_t dim,
                              const smic_dictionary* dictionary, const char* const* ids,
                              const int64_t* pixels, const smic_write_options* options,
                              smic_writer** out);
SMIC_API int smic_writer_add(smic_writer* writer, const float* rows, size_t count);
/* Rows added so far. */
SMIC_API int smic_writer_rows(const smic_writer* writer, size_t* added);
/* Every one of the n rows must have been added. */
SMIC_API int smic_writer_finish(smic_writer* writer);
SMIC_API int smic_writer_abort(smic_writer* writer);
/* Frees the writer; an unfinished one is aborted first. Accepts NULL. */
SMIC_API void smic_writer_free(smic_writer* writer);

/* ---- appends and repack --------------------------------------------------------------------- */

/* Append n embeddings to the file `collection` was opened from (smic_collection_open or
 * _open_mapped), in place and in time proportional to n, as Python's Collection.append: under
 * an exclusive flock the new sections go after the committed ones, are fsynced, and only then
 * does the preamble's committed count take them in; killed at any point, the file holds every
 * earlier item unchanged. ids (n unique strings, none already in the collection) or NULL
 * (the next positions); pixels or NULL; chunk_size 0: the collection's. The handle then holds
 * the new items too. SMIC_ERR_IO when the file changed since it was opened (open it again).
 * Not while another call uses this handle (search indexes built on it included: build a new
 * one to search the new items). */
SMIC_API int smic_collection_append_in_place(smic_collection* collection, const float* embeddings,
                                             size_t n, size_t dim, const char* const* ids,
                                             const int64_t* pixels, size_t chunk_size,
                                             int n_threads);
/* Rewrite the collection at `path` with all its batches merged into one, atomically (what
 * `smic repack` does): after many small appends the rate returns to that of one batch; every
 * item keeps its id and decodes to exactly the same embedding. dictionary: the shared
 * .smicd of a collection that refers to one, else NULL. */
SMIC_API int smic_collection_repack(const char* path, const smic_dictionary* dictionary,
                                    int n_threads);

/* ---- search in the compressed domain ---------------------------------------------------------- */

/* Build the search index of a collection (decodes every item's code, not its embedding; what
 * `smic search` and Python's Collection.search use). The index keeps the collection alive:
 * smic_collection_free may come first. Immutable: any number of threads may search it. */
SMIC_API int smic_search_index_new(const smic_collection* collection, int n_threads,
                                   smic_search_index** out);
SMIC_API void smic_search_index_free(smic_search_index* index);
/* Items indexed, and the bytes the index holds. */
SMIC_API int smic_search_index_size(const smic_search_index* index, size_t* n_items,
                                    size_t* memory_bytes);
/* Cosine top-k of n_queries queries (n_queries x dim, any non-zero norm): positions and
 * scores of query q are entries [q k, (q + 1) k), best first (positions index the collection:
 * smic_collection_id names them). A row with fewer than k candidates ends with position -1
 * and score -INFINITY. nprobe: scan only the nprobe lists whose atoms score highest (0: every
 * item, exact). rerank: re-score that many candidates with their refined embeddings (needs a
 * refinement layer; 0: none). capacity: entries of positions and of scores (n_queries x k
 * needed). Results do not depend on n_threads. */
SMIC_API int smic_search(const smic_search_index* index, const float* queries, size_t n_queries,
                         size_t dim, size_t k, size_t nprobe, size_t rerank, int n_threads,
                         int64_t* positions, float* scores, size_t capacity);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SMIC_SMIC_H */
