#include <stdlib.h>

#include "buf.h"

void gc_buf_init(gc_buf *b) {
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}

void gc_buf_free(gc_buf *b) {
  free(b->p);
  gc_buf_init(b);
}

int gc_buf_grow(gc_buf *b, size_t n) {
  if (b->oom) return -1;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n) {
    if (cap > ((size_t)-1) / 2) { b->oom = 1; return -1; }
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (!p) { b->oom = 1; return -1; }
  b->p = p;
  b->cap = cap;
  return 0;
}
