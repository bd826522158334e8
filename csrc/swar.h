/* swar.h: eight bytes at a time, for the JSON string fast paths of the reader and writer. */
#ifndef GC_SWAR_H
#define GC_SWAR_H

#include <stdint.h>
#include <string.h>

/* 1 if none of the 8 bytes at p needs attention inside a JSON string: no control character
 * (< 0x20), no '"', no '\\', no byte >= 0x80 (multi-byte UTF-8 is checked separately). */
static inline int gc_swar_plain8(const unsigned char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  uint64_t lo = (w - 0x20 * ones) & ~w;
  uint64_t q = w ^ (0x22 * ones);
  uint64_t b = w ^ (0x5c * ones);
  uint64_t hit = lo | ((q - ones) & ~q) | ((b - ones) & ~b) | w;
  return (hit & high) == 0;
}

/* Index (0..7) of the first byte at p that needs attention, as above; 8 if none. The lowest
 * flagged byte of these bit tricks is always exact (false positives only follow a true one). */
static inline unsigned gc_swar_stop8(const unsigned char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  uint64_t lo = (w - 0x20 * ones) & ~w;
  uint64_t q = w ^ (0x22 * ones);
  uint64_t b = w ^ (0x5c * ones);
  uint64_t hit = (lo | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & high;
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
