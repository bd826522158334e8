/* swar.h: eight bytes at a time, for the JSON string fast paths of the reader and writer. */
#ifndef GC_SWAR_H
#define GC_SWAR_H

#include <stdint.h>
#include <string.h>

/* High bit set in each of the 8 bytes at p that needs attention inside a JSON string: a
 * control character (< 0x20), '"', '\\', or a byte >= 0x80 (multi-byte UTF-8 is checked
 * separately). The lowest flagged byte is always exact (false positives only follow a true
 * one), which is all the callers use. */
static inline uint64_t gc_swar_mask8(const unsigned char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  uint64_t lo = (w - 0x20 * ones) & ~w;
  uint64_t q = w ^ (0x22 * ones);
  uint64_t b = w ^ (0x5c * ones);
  return (lo | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & high;
}

/* 1 if none of the 8 bytes at p needs attention. */
static inline int gc_swar_plain8(const unsigned char *p) { return gc_swar_mask8(p) == 0; }

/* Index (0..7) of the first byte at p that needs attention; 8 if none. */
static inline unsigned gc_swar_stop8(const unsigned char *p) {
  uint64_t hit = gc_swar_mask8(p);
  if (!hit) return 8;
#if defined(__GNUC__)
  return (unsigned)__builtin_ctzll(hit) >> 3;
#else
  unsigned k = 0;
  while (!(hit & 0x80)) { hit >>= 8; k++; }
  return k;
#endif
}

#endif
