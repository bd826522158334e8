/* utf8.h: strict UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
#ifndef GC_UTF8_H
#define GC_UTF8_H

#include <stddef.h>

/* Length of the valid multi-byte sequence starting at s (s[0] >= 0x80), or 0 if invalid. */
size_t gc_utf8_seq(const unsigned char *s, size_t avail);
/* Offset of the first invalid byte, or len if all of s is valid. */
size_t gc_utf8_check(const char *s, size_t len);

#endif
