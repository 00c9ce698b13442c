/* `smic append` in C: append the rows of a raw float32 file to a collection, in place (time
 * proportional to the new rows, under the file's lock; killed at any point, the earlier items
 * stay readable). New items take the next positions as ids.
 *
 *   append collection.smic rows.f32 [shared.smicd]
 *
 * Prints "items N" (the count after the append). Exit status 0 on success, 1 on error.
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
  float* rows = NULL;
  FILE* file = NULL;
  long bytes;
  size_t dim = 0, n = 0;
  int status, code = 1;

  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s collection.smic rows.f32 [shared.smicd]\n", argv[0]);
    return 2;
  }
  if ((argc == 4 && (status = smic_dictionary_load(argv[3], &dictionary)) != SMIC_OK) ||
      (status = smic_collection_open_mapped(argv[1], dictionary, &collection)) != SMIC_OK ||
      (status = smic_collection_dim(collection, &dim)) != SMIC_OK) {
    code = report(status, argv[1]);
    goto done;
  }
  file = fopen(argv[2], "rb");
  if (!file || fseek(file, 0, SEEK_END) != 0 || (bytes = ftell(file)) <= 0 ||
      (size_t)bytes % (dim * sizeof(float)) != 0 || fseek(file, 0, SEEK_SET) != 0) {
    fprintf(stderr, "%s: not a non-empty file of float32 rows of %zu values\n", argv[2], dim);
    goto done;
  }
  n = (size_t)bytes / (dim * sizeof(float));
  rows = (float*)malloc((size_t)bytes);
  if (!rows || fread(rows, sizeof(float), n * dim, file) != n * dim) goto done;
  if ((status = smic_collection_append_in_place(collection, rows, n, dim, NULL, NULL, 0, 0)) !=
          SMIC_OK ||
      (status = smic_collection_size(collection, &n)) != SMIC_OK) {
    code = report(status, argv[1]);
    goto done;
  }
  printf("items %zu\n", n);
  code = 0;

done:
  if (file) fclose(file);
  free(rows);
  smic_collection_free(collection);
  smic_dictionary_free(dictionary);
  return code;
}
