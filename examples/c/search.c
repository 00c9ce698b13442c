/* `smic search` in C: cosine top-k of query embeddings over a collection's codes, without
 * decoding its embeddings (the compressed-domain index).
 *
 *   search collection.smic queries.f32 K [shared.smicd]
 *
 * Prints per query and rank "query<TAB>rank<TAB>id<TAB>score" (score with 9 significant
 * digits). Exit status 0 on success, 1 on error.
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
  smic_search_index* index = NULL;
  float *queries = NULL, *scores = NULL;
  int64_t* positions = NULL;
  FILE* file = NULL;
  const char* id;
  long bytes;
  size_t dim = 0, n = 0, k, q, r;
  int status, code = 1;

  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s collection.smic queries.f32 K [shared.smicd]\n", argv[0]);
    return 2;
  }
  k = (size_t)strtoul(argv[3], NULL, 10);
  if ((argc == 5 && (status = smic_dictionary_load(argv[4], &dictionary)) != SMIC_OK) ||
      (status = smic_collection_open_mapped(argv[1], dictionary, &collection)) != SMIC_OK ||
      (status = smic_collection_dim(collection, &dim)) != SMIC_OK ||
      (status = smic_search_index_new(collection, 0, &index)) != SMIC_OK) {
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
  queries = (float*)malloc((size_t)bytes);
  positions = (int64_t*)malloc(n * (k ? k : 1) * sizeof(int64_t));
  scores = (float*)malloc(n * (k ? k : 1) * sizeof(float));
  if (!queries || !positions || !scores || fread(queries, sizeof(float), n * dim, file) != n * dim)
    goto done;
  if ((status = smic_search(index, queries, n, dim, k, 0, 0, 0, positions, scores, n * k)) !=
      SMIC_OK) {
    code = report(status, argv[2]);
    goto done;
  }
  for (q = 0; q < n; ++q)
    for (r = 0; r < k && positions[q * k + r] >= 0; ++r) {
      if ((status = smic_collection_id(collection, (size_t)positions[q * k + r], &id)) != SMIC_OK) {
        code = report(status, argv[1]);
        goto done;
      }
      printf("%zu\t%zu\t%s\t%.9g\n", q, r, id, (double)scores[q * k + r]);
    }
  code = 0;

done:
  if (file) fclose(file);
  free(scores);
  free(positions);
  free(queries);
  smic_search_index_free(index); /* it holds the collection: either may be freed first */
  smic_collection_free(collection);
  smic_dictionary_free(dictionary);
  return code;
}
