/* `smic info` in C: which dictionary a collection needs, then (when it embeds its dictionary
 * or the .smicd is given) what it holds and its rates, as JSON.
 *
 *   info collection.smic [shared.smicd]
 *
 * Prints "dictionary HASH embedded|shared", then the info JSON. A collection that needs a
 * .smicd that was not given: exit status 3 after the first line. Other errors: 1.
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
  char hash[65], *json = NULL;
  size_t size = 0;
  int embedded = 0, status, code = 1;

  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s collection.smic [shared.smicd]\n", argv[0]);
    return 2;
  }
  /* Asking the file, before opening it: no dictionary needed for that. */
  if ((status = smic_file_dictionary_hash(argv[1], hash, &embedded)) != SMIC_OK) {
    code = report(status, argv[1]);
    goto done;
  }
  printf("dictionary %s %s\n", hash, embedded ? "embedded" : "shared");
  if (!embedded && argc != 3) {
    fprintf(stderr, "%s: needs the .smicd whose hash is %s\n", argv[1], hash);
    code = 3;
    goto done;
  }
  if ((argc == 3 && (status = smic_dictionary_load(argv[2], &dictionary)) != SMIC_OK) ||
      (status = smic_collection_open_mapped(argv[1], dictionary, &collection)) != SMIC_OK) {
    code = report(status, argv[argc - 1]);
    goto done;
  }
  smic_collection_info(collection, NULL, 0, &size); /* SMIC_ERR_BUFFER_TOO_SMALL: the size */
  json = (char*)malloc(size);
  if (!json || (status = smic_collection_info(collection, json, size, &size)) != SMIC_OK) {
    code = json ? report(status, argv[1]) : 1;
    goto done;
  }
  printf("%s\n", json);
  code = 0;

done:
  free(json);
  smic_collection_free(collection);
  smic_dictionary_free(dictionary);
  return code;
}
