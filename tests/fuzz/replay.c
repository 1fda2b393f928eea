/* Replay driver: runs a harness's LLVMFuzzerTestOneInput over files and directories (a
 * corpus), without libFuzzer. It makes every checked-in input, regression inputs included, a
 * plain test in every build (gcc, ASan+UBSan, TSan), not only in the clang fuzz build.
 * Usage: replay_<target> PATH... ; exit 0 if every input passed (a failed invariant aborts). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return perror(path), -1;
  uint8_t *data = NULL;
  size_t len = 0, cap = 0, n;
  uint8_t chunk[4096];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n > cap && !(data = realloc(data, cap = 2 * (len + n)))) abort();
    memcpy(data + len, chunk, n);
    len += n;
  }
  fclose(f);
  /* An exact-size heap copy, so an over-read past the input is an ASan report here too. */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) abort();
  if (len) memcpy(exact, data, len);
  free(data);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 1;
}

/* Returns the number of inputs run, or -1 on an unreadable path. */
static int run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return perror(path), -1;
  if (!S_ISDIR(st.st_mode)) return run_file(path);
  DIR *d = opendir(path);
  if (!d) return perror(path), -1;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char child[4096];
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    int r = run_path(child);
    if (r < 0) return closedir(d), -1;
    count += r;
  }
  closedir(d);
  return count;
}

int main(int argc, char **argv) {
  int total = 0;
  for (int i = 1; i < argc; i++) {
    int r = run_path(argv[i]);
    if (r < 0) return 1;
    total += r;
  }
  printf("%d inputs passed\n", total);
  return total > 0 ? 0 : 1; /* an empty corpus is a broken test, not a pass */
}
