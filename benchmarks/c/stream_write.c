/* Streaming write from C of the first N rows of a memory-mapped float32 .npy (benchmarks/
 * bench_c_streaming.py): smic_writer_open / _add (4,096 rows at a time) / _finish with a shared
 * dictionary, dropping the input's pages once the writer has copied them.
 *
 *   stream_write E.npy N shared.smicd out.smic
 *
 * Prints one JSON line: rows, dim, seconds, and memory from /proc/self (kB): the RSS once the
 * input is mapped and the dictionary loaded (VmHWM is restarted there through clear_refs),
 * the peak RSS after, and the input's pages resident at the end.
 */
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smic/smic.h"

enum { BATCH = 4096 };

static long status_kb(const char* field) {
  char line[256];
  long value = -1;
  size_t length = strlen(field);
  FILE* file = fopen("/proc/self/status", "r");
  while (file && fgets(line, sizeof line, file))
    if (strncmp(line, field, length) == 0 && line[length] == ':') value = atol(line + length + 1);
  if (file) fclose(file);
  return value;
}

/* Resident kB of the mappings of `path` (a real path). */
static long mapped_kb(const char* path) {
  char line[4096];
  long total = 0;
  int inside = 0;
  FILE* file = fopen("/proc/self/smaps", "r");
  while (file && fgets(line, sizeof line, file)) {
    char* name = strchr(line, '/');
    /* A mapping's first line starts with its address range (lowercase hex); its fields with
     * a capitalised name. */
    if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
      if (name) name[strcspn(name, "\n")] = 0;
      inside = name && strcmp(name, path) == 0;
    } else if (inside && strncmp(line, "Rss:", 4) == 0) {
      total += atol(line + 4);
    }
  }
  if (file) fclose(file);
  return total;
}

static int fail(int status, const char* what) {
  fprintf(stderr, "%s: %s: %s\n", what, smic_error_name(status), smic_last_error());
  return 1;
}

int main(int argc, char** argv) {
  smic_dictionary* dictionary = NULL;
  smic_writer* writer = NULL;
  smic_write_options options;
  struct stat st;
  struct timespec t0, t1;
  char real[4096];
  const unsigned char* bytes;
  const float* rows;
  size_t n, rows_in_file = 0, dim = 0, header, start, offset;
  long page = sysconf(_SC_PAGESIZE), base_kb;
  int fd, status;
  FILE* clear;
  const char* shape;

  if (argc != 5) {
    fprintf(stderr, "usage: %s E.npy N shared.smicd out.smic\n", argv[0]);
    return 2;
  }
  n = (size_t)strtoull(argv[2], NULL, 10);
  fd = open(argv[1], O_RDONLY);
  if (fd < 0 || fstat(fd, &st) != 0 || !realpath(argv[1], real)) return fail(SMIC_ERR_IO, argv[1]);
  bytes = (const unsigned char*)mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  if (bytes == MAP_FAILED) return fail(SMIC_ERR_IO, argv[1]);
  /* .npy: magic, version, header length (u16 in version 1, u32 in 2 and 3), the header dict. */
  if (memcmp(bytes, "\x93NUMPY", 6) != 0) return fail(SMIC_ERR_FORMAT, argv[1]);
  header = bytes[6] == 1 ? 10 + (size_t)(bytes[8] | bytes[9] << 8)
                         : 12 + (size_t)(bytes[8] | bytes[9] << 8 | bytes[10] << 16 | (size_t)bytes[11] << 24);
  if (!strstr((const char*)bytes + 10, "'descr': '<f4'") || !strstr((const char*)bytes + 10, "'fortran_order': False") ||
      !(shape = strstr((const char*)bytes + 10, "'shape': (")) ||
      sscanf(shape, "'shape': (%zu, %zu)", &rows_in_file, &dim) != 2 || n == 0 || n > rows_in_file)
    return fail(SMIC_ERR_FORMAT, "the .npy is not a C-order float32 (rows, dim) array of at least N rows");
  rows = (const float*)(bytes + header);

  if ((status = smic_dictionary_load(argv[3], &dictionary)) != SMIC_OK) return fail(status, argv[3]);
  smic_write_options_default(&options);
  options.embed_dictionary = 0;
  base_kb = status_kb("VmRSS");
  if ((clear = fopen("/proc/self/clear_refs", "w"))) { /* VmHWM restarts from here */
    fputs("5", clear);
    fclose(clear);
  }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if ((status = smic_writer_open(argv[4], n, dim, dictionary, NULL, NULL, &options, &writer)) != SMIC_OK)
    return fail(status, argv[4]);
  for (start = 0; start < n; start += BATCH) {
    size_t count = n - start < BATCH ? n - start : BATCH;
    if ((status = smic_writer_add(writer, rows + start * dim, count)) != SMIC_OK) return fail(status, argv[4]);
    offset = header + (start + count) * dim * sizeof(float); /* copied: drop the pages read */
    madvise((void*)bytes, offset - offset % (size_t)page, MADV_DONTNEED);
  }
  if ((status = smic_writer_finish(writer)) != SMIC_OK) return fail(status, argv[4]);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("{\"rows\": %zu, \"dim\": %zu, \"seconds\": %.3f, \"base_kb\": %ld, \"hwm_kb\": %ld, \"input_kb\": %ld}\n",
         n, dim, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), base_kb,
         status_kb("VmHWM"), mapped_kb(real));
  smic_writer_free(writer);
  smic_dictionary_free(dictionary);
  munmap((void*)bytes, (size_t)st.st_size);
  close(fd);
  return 0;
}
