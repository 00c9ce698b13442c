/* `smic compress` in C: code a raw float32 file of n x dim rows (a memory map of it, never a
 * copy) into a .smic collection with the streaming writer, so memory stays one batch.
 *
 *   compress rows.f32 DIM out.smic [shared.smicd]
 *
 * Without a .smicd, a dictionary is learned on a sample of the rows (smic_dictionary_fit_rows)
 * and embedded in the file; with one, the file stores only its hash (as `smic compress
 * --dictionary`). Prints the collection's info as JSON. Exit status 0 on success, 1 on error.
 */
#define _DEFAULT_SOURCE /* madvise */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smic/smic.h"

enum { BATCH = 4096 };

typedef struct {
  const float* rows;
  size_t dim;
} input;

/* smic_read_rows over the mapped file: what smic_dictionary_fit_rows reads its sample with. */
static int read_rows(void* user, size_t start, size_t count, float* out) {
  const input* in = (const input*)user;
  memcpy(out, in->rows + start * in->dim, count * in->dim * sizeof(float));
  return SMIC_OK;
}

static int report(int status, const char* what) {
  fprintf(stderr, "%s: %s: %s\n", what, smic_error_name(status), smic_last_error());
  return 1;
}

int main(int argc, char** argv) {
  smic_dictionary* dictionary = NULL;
  smic_writer* writer = NULL;
  smic_collection* collection = NULL;
  smic_write_options options;
  struct stat st;
  input in = {NULL, 0};
  void* map = MAP_FAILED;
  char* json = NULL;
  size_t n = 0, start, size = 0, json_size = 0;
  long page = sysconf(_SC_PAGESIZE);
  int fd = -1, status = SMIC_OK, code = 1;

  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s rows.f32 DIM out.smic [shared.smicd]\n", argv[0]);
    return 2;
  }
  in.dim = (size_t)strtoul(argv[2], NULL, 10);
  fd = open(argv[1], O_RDONLY);
  if (in.dim == 0 || fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0 ||
      (size_t)st.st_size % (in.dim * sizeof(float)) != 0) {
    fprintf(stderr, "%s: not a non-empty file of float32 rows of %s values\n", argv[1], argv[2]);
    goto done;
  }
  size = (size_t)st.st_size;
  n = size / (in.dim * sizeof(float));
  map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    perror(argv[1]);
    goto done;
  }
  in.rows = (const float*)map;

  smic_write_options_default(&options);
  if (argc == 5) { /* a shared dictionary: the file refers to it by hash */
    if ((status = smic_dictionary_load(argv[4], &dictionary)) != SMIC_OK) {
      code = report(status, argv[4]);
      goto done;
    }
    options.embed_dictionary = 0;
  } else if ((status = smic_dictionary_fit_rows(read_rows, &in, n, in.dim, NULL, &dictionary)) !=
             SMIC_OK) { /* learned on at most 50,000 sampled rows, then embedded */
    code = report(status, "learning the dictionary");
    goto done;
  }

  if ((status = smic_writer_open(argv[3], n, in.dim, dictionary, NULL, NULL, &options, &writer)) !=
      SMIC_OK) {
    code = report(status, argv[3]);
    goto done;
  }
  for (start = 0; start < n; start += BATCH) {
    size_t count = n - start < BATCH ? n - start : BATCH;
    size_t end = (start + count) * in.dim * sizeof(float);
    if ((status = smic_writer_add(writer, in.rows + start * in.dim, count)) != SMIC_OK) {
      code = report(status, argv[3]); /* the writer is spent: free it, the target is untouched */
      goto done;
    }
    /* The rows are copied: drop the pages read so far, so the map does not fill memory. */
    madvise(map, end - end % (size_t)page, MADV_DONTNEED);
  }
  if ((status = smic_writer_finish(writer)) != SMIC_OK ||
      (status = smic_collection_open_mapped(argv[3], dictionary, &collection)) != SMIC_OK) {
    code = report(status, argv[3]);
    goto done;
  }
  /* Ask for the size, then fill (as every output with a capacity). */
  smic_collection_info(collection, NULL, 0, &json_size);
  json = (char*)malloc(json_size);
  if (!json || (status = smic_collection_info(collection, json, json_size, &json_size)) != SMIC_OK) {
    code = json ? report(status, argv[3]) : 1;
    goto done;
  }
  printf("%s\n", json);
  code = 0;

done:
  free(json);
  smic_collection_free(collection);
  smic_writer_free(writer);
  smic_dictionary_free(dictionary);
  if (map != MAP_FAILED) munmap(map, size);
  if (fd >= 0) close(fd);
  return code;
}
