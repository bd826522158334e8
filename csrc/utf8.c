#include "utf8.h"

size_t gc_utf8_seq(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  if (c >= 0xC2 && c <= 0xDF) {
    if (avail >= 2 && (s[1] & 0xC0) == 0x80) return 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0;  /* surrogate */
    return 3;
  } else if (c >= 0xF0 && c <= 0xF4) {
    if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
        (s[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0;  /* > U+10FFFF */
    return 4;
  }
  return 0;
}

size_t gc_utf8_check(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    if (u[i] < 0x80) { i++; continue; }
    size_t n = gc_utf8_seq(u + i, len - i);
    if (!n) return i;
    i += n;
  }
  return len;
}
