/* smic/smic.h compiled as C99 with -pedantic-errors -Werror (cpp/tests/CMakeLists.txt): the C ABI
 * header holds no C++; the function below is called by test_c_api.cpp so it links too. */
#include "smic/smic.h"

int smic_test_header_is_c99(void);

int smic_test_header_is_c99(void) {
  smic_dictionary* dictionary = NULL;
  size_t dim = 0;
  int status = smic_dictionary_load(NULL, &dictionary);
  if (status != SMIC_ERR_INVALID_ARGUMENT) return 1;
  if (smic_dictionary_dim(dictionary, &dim) != SMIC_ERR_INVALID_ARGUMENT) return 2;
  if (smic_version() != SMIC_VERSION_NUMBER) return 3;
  return 0;
}
