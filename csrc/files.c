#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "files.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long gc_url_decode(const char *src, size_t len, char *dst) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    if (c == '%') {
      if (i + 2 >= len) return -1;
      int a = hexval(src[i + 1]), b = hexval(src[i + 2]);
      if (a < 0 || b < 0) return -1;
      c = (char)(a * 16 + b);
      if (c == 0) return -1;
      i += 2;
    } else if (c == 0) {
      return -1;
    }
    dst[o++] = c;
  }
  dst[o] = 0;
  return (long)o;
}

static int plain_name(const char *s, size_t n) {
  if (n == 0 || s[0] == '.') return 0;  /* "", ".", "..", and hidden files */
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\\' || s[i] == 0) return 0;
  return 1;
}

int gc_files_open(int rootfd, const char *path, size_t len, struct stat *st) {
  char buf[GC_FILES_MAX_PATH + 1];
  if (len > GC_FILES_MAX_PATH) return -1;
  long n = gc_url_decode(path, len, buf);
  if (n <= 0) return -1;
  char *p = buf, *end = buf + n;
  while (p < end && *p == '/') p++;  /* the prefix's own slash */
  int cur = rootfd, depth = 0;
  while (p < end) {
    char *slash = memchr(p, '/', (size_t)(end - p));
    char *segend = slash ? slash : end;
    if (!plain_name(p, (size_t)(segend - p)) || ++depth > GC_FILES_MAX_DEPTH) break;
    *segend = 0;
    int last = slash == NULL;
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY);
    int fd = openat(cur, p, flags);
    if (cur != rootfd) close(cur);
    cur = rootfd;
    if (fd < 0) return -1;
    if (last) {
      if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
      }
      return fd;
    }
    cur = fd;
    p = segend + 1;
  }
  if (cur != rootfd) close(cur);
  return -1;  /* a refused segment, too deep, or a path ending in a folder */
}

const char *gc_files_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot) {
    if (strcasecmp(dot, ".wav") == 0) return "audio/wav";
    if (strcasecmp(dot, ".json") == 0) return "application/json";
    if (strcasecmp(dot, ".txt") == 0) return "text/plain; charset=utf-8";
    if (strcasecmp(dot, ".html") == 0) return "text/html; charset=utf-8";
  }
  return "application/octet-stream";
}
