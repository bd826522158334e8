/* Files served from one folder: what opens, and every way out that must not (files.c). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "ctest.h"
#include "files.h"

static char root[] = "/tmp/gc-files-XXXXXX";
static char outside[] = "/tmp/gc-outside-XXXXXX";

static void put(const char *dir, const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f) { fputs(text, f); fclose(f); }
}

static int opens(int rootfd, const char *path) {
  struct stat st;
  int fd = gc_files_open(rootfd, path, strlen(path), &st);
  if (fd >= 0) close(fd);
  return fd >= 0;
}

int main(void) {
  char buf[256];
  CHECK(mkdtemp(root) && mkdtemp(outside));
  snprintf(buf, sizeof buf, "%s/sub", root);
  CHECK(mkdir(buf, 0755) == 0);
  put(root, "a.wav", "a");
  put(root, "sub/b.wav", "b");
  put(root, ".hidden", "h");
  put(outside, "secret", "s");
  char target[256], link[256];
  snprintf(target, sizeof target, "%s/secret", outside);
  snprintf(link, sizeof link, "%s/link", root);
  CHECK(symlink(target, link) == 0);
  snprintf(link, sizeof link, "%s/out", root);
  CHECK(symlink(outside, link) == 0);
  int rootfd = open(root, O_RDONLY | O_DIRECTORY);
  CHECK(rootfd >= 0);

  CHECK(opens(rootfd, "a.wav"));
  CHECK(opens(rootfd, "/a.wav"));
  CHECK(opens(rootfd, "sub/b.wav"));
  CHECK(opens(rootfd, "sub/%62.wav"));          /* an encoded plain letter is fine */
  CHECK(!opens(rootfd, "../secret"));
  CHECK(!opens(rootfd, "%2e%2e/secret"));
  CHECK(!opens(rootfd, "%2E%2E%2Fsecret"));
  CHECK(!opens(rootfd, "sub/../../secret"));
  CHECK(!opens(rootfd, "sub/./b.wav"));
  CHECK(!opens(rootfd, "link"));                /* a symlink to a file outside */
  CHECK(!opens(rootfd, "out/secret"));          /* a symlink to a folder outside */
  CHECK(!opens(rootfd, ".hidden"));
  CHECK(!opens(rootfd, "sub"));                 /* folders are not listed */
  CHECK(!opens(rootfd, "sub/"));
  CHECK(!opens(rootfd, "sub//b.wav"));
  CHECK(!opens(rootfd, "a.wav%00"));
  CHECK(!opens(rootfd, "a.wav%"));
  CHECK(!opens(rootfd, "a.wav%4"));
  CHECK(!opens(rootfd, "%zz"));
  CHECK(!opens(rootfd, "sub\\b.wav"));
  CHECK(!opens(rootfd, ""));
  CHECK(!opens(rootfd, "missing.wav"));
  char deep[2048];
  size_t n = 0;
  for (int i = 0; i < 20; i++) n += (size_t)snprintf(deep + n, sizeof deep - n, "sub/");
  CHECK(!opens(rootfd, deep));
  char longp[1100];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  CHECK(!opens(rootfd, longp));

  char out[16];
  CHECK(gc_url_decode("%41b%2f", 7, out) == 3 && strcmp(out, "Ab/") == 0);
  CHECK(gc_url_decode("%", 1, out) == -1);
  CHECK(gc_url_decode("%0", 2, out) == -1);
  CHECK(gc_url_decode("%00", 3, out) == -1);
  CHECK_STR(gc_files_type("x.WAV"), "audio/wav");
  CHECK_STR(gc_files_type("noext"), "application/octet-stream");

  close(rootfd);
  snprintf(buf, sizeof buf, "rm -rf %s %s", root, outside);
  CHECK(system(buf) == 0);
  CTEST_END("c io files");
}
