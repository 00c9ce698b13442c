/* Open a .smic collection through the C ABI (smic/smic.h) and print every item's embedding:
 * the values Python's `smic_fast.open(path)[i]` gives, one item per line.
 *
 *   decode_collection photos.smic [shared.smicd]
 *
 * Output: a line "items N dim D", then per item "id<TAB>v0 v1 ... v(D-1)" with each float32
 * printed with 9 significant digits (enough to read it back exactly). Exit status 0 on
 * success, 1 on any error (its name and message go to stderr).
 */
#include <stdio.h>
#include <stdlib.h>

#include "smic/smic.h"

static int report(int status, const char* what) {
  fprintf(stderr, "%s: %s: %s\n", what, smic_error_name(status), smic_last_error());
  return 1;
}

int main(int argc, char** argv) {
  smic_dictionary* dictionary = NULL;
  smic_collection* collection = NULL;
  float* embedding = NULL;
  size_t n = 0, dim = 0, i, j;
  int status, exit_code = 1;

  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s collection.smic [shared.smicd]\n", argv[0]);
    return 2;
  }
  if (smic_version() / 100 != SMIC_VERSION_NUMBER / 100) {
    fprintf(stderr, "libsmic_c %s does not match smic.h %d.%d\n", smic_version_string(),
            SMIC_VERSION_MAJOR, SMIC_VERSION_MINOR);
    return 1;
  }
  /* A collection coded with a shared dictionary needs it; one that embeds it does not. */
  if (argc == 3 && (status = smic_dictionary_load(argv[2], &dictionary)) != SMIC_OK) {
    exit_code = report(status, argv[2]);
    goto done;
  }
  if ((status = smic_collection_open(argv[1], dictionary, &collection)) != SMIC_OK) {
    exit_code = report(status, argv[1]);
    goto done;
  }
  if ((status = smic_collection_size(collection, &n)) != SMIC_OK ||
      (status = smic_collection_dim(collection, &dim)) != SMIC_OK) {
    exit_code = report(status, argv[1]);
    goto done;
  }
  embedding = (float*)malloc(dim * sizeof(float));
  if (embedding == NULL) {
    fprintf(stderr, "out of memory\n");
    goto done;
  }
  printf("items %zu dim %zu\n", n, dim);
  for (i = 0; i < n; ++i) {
    const char* id = NULL;
    size_t found = 0;
    /* Random access: only the chunk holding item i is decoded. */
    if ((status = smic_collection_id(collection, i, &id)) != SMIC_OK ||
        (status = smic_collection_find(collection, id, &found)) != SMIC_OK ||
        (status = smic_collection_decode(collection, i, i + 1, embedding)) != SMIC_OK) {
      exit_code = report(status, argv[1]);
      goto done;
    }
    if (found != i) {
      fprintf(stderr, "id %s found at %zu, expected %zu\n", id, found, i);
      goto done;
    }
    printf("%s\t", id);
    for (j = 0; j < dim; ++j) printf(j + 1 < dim ? "%.9g " : "%.9g\n", (double)embedding[j]);
  }
  exit_code = 0;

done:
  free(embedding);
  smic_collection_free(collection); /* NULL is fine */
  smic_dictionary_free(dictionary);
  return exit_code;
}
