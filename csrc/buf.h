/* buf.h: a growable byte buffer, the output of every writer in the core. */
#ifndef GC_BUF_H
#define GC_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
  char *p;
  size_t len, cap;
  int oom;  /* sticky: set once an allocation failed; later writes are dropped */
} gc_buf;

void gc_buf_init(gc_buf *b);
void gc_buf_free(gc_buf *b);
/* Make room for n more bytes; 0 on success, -1 (and oom set) on failure. */
int gc_buf_grow(gc_buf *b, size_t n);

static inline int gc_buf_reserve(gc_buf *b, size_t n) {
  return (b->cap - b->len >= n) ? 0 : gc_buf_grow(b, n);
}
static inline void gc_buf_add(gc_buf *b, const void *s, size_t n) {
  if (n == 0) return;  /* b->p may still be NULL: no pointer arithmetic on it */
  if (gc_buf_reserve(b, n) == 0) { memcpy(b->p + b->len, s, n); b->len += n; }
}
static inline void gc_buf_addc(gc_buf *b, char c) {
  if (gc_buf_reserve(b, 1) == 0) b->p[b->len++] = c;
}
#define gc_buf_addlit(b, s) gc_buf_add((b), (s), sizeof(s) - 1)

#endif
