/* libFuzzer target: the path of a file request (files.c), decoded and opened under a folder
 * that holds two files, a hidden one, and symlinks out to a secret. Whatever the path, a file
 * that opens must be one of the two inside; anything else is a way out, and aborts. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"

static int rootfd = -1;
static ino_t allowed[2];
static char root[] = "/tmp/gc-fuzz-files-XXXXXX";

static void cleanup(void) {
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  if (system(cmd) != 0) fputs("fuzz_files: could not remove the test folder\n", stderr);
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) abort();
  fputs(text, f);
  fclose(f);
}

static void setup(void) {
  char path[512];
  if (!mkdtemp(root)) abort();
  atexit(cleanup);
  snprintf(path, sizeof path, "%s/in", root);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/in/sub", root);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/in/a.wav", root);
  put(path, "a");
  snprintf(path, sizeof path, "%s/in/sub/b.wav", root);
  put(path, "b");
  snprintf(path, sizeof path, "%s/in/.hidden", root);
  put(path, "h");
  snprintf(path, sizeof path, "%s/secret", root);
  put(path, "s");
  char link[512];
  snprintf(link, sizeof link, "%s/in/link", root);
  if (symlink(path, link) != 0) abort();
  snprintf(link, sizeof link, "%s/in/up", root);
  if (symlink(root, link) != 0) abort();
  snprintf(path, sizeof path, "%s/in", root);
  rootfd = open(path, O_RDONLY | O_DIRECTORY);
  struct stat st;
  snprintf(path, sizeof path, "%s/in/a.wav", root);
  stat(path, &st);
  allowed[0] = st.st_ino;
  snprintf(path, sizeof path, "%s/in/sub/b.wav", root);
  stat(path, &st);
  allowed[1] = st.st_ino;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (rootfd < 0) setup();
  struct stat st;
  int fd = gc_files_open(rootfd, (const char *)data, size, &st);
  if (fd >= 0) {
    if (st.st_ino != allowed[0] && st.st_ino != allowed[1]) abort();
    close(fd);
  }
  char out[GC_FILES_MAX_PATH + 1];
  if (size <= GC_FILES_MAX_PATH) {
    long n = gc_url_decode((const char *)data, size, out);
    if (n > (long)size) abort();
  }
  return 0;
}
