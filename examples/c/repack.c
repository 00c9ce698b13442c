/* `smic repack` in C: merge a collection's batches (one per append) into one, atomically;
 * every item keeps its id and decodes to the same embedding.
 *
 *   repack collection.smic [shared.smicd]
 *
 * Prints "bytes BEFORE AFTER". Exit status 0 on success, 1 on error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "smic/smic.h"

static int report(int status, const char* what) {
  fprintf(stderr, "%s: %s: %s\n", what, smic_error_name(status), smic_last_error());
  return 1;
}

/* The file's size in bytes, or -1. */
static long file_size(const char* path) {
  long size = -1;
  FILE* file = fopen(path, "rb");
  if (file && fseek(file, 0, SEEK_END) == 0) size = ftell(file);
  if (file) fclose(file);
  return size;
}

int main(int argc, char** argv) {
  smic_dictionary* dictionary = NULL;
  long before;
  int status, code = 1;

  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s collection.smic [shared.smicd]\n", argv[0]);
    return 2;
  }
  before = file_size(argv[1]);
  if ((argc == 3 && (status = smic_dictionary_load(argv[2], &dictionary)) != SMIC_OK) ||
      (status = smic_collection_repack(argv[1], dictionary, 0)) != SMIC_OK) {
    code = report(status, argv[1]);
    goto done;
  }
  printf("bytes %ld %ld\n", before, file_size(argv[1]));
  code = 0;

done:
  smic_dictionary_free(dictionary);
  return code;
}
