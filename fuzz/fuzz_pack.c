/* libFuzzer target: the log packer. Any bytes unpack or are refused (no crash, no read past
 * them); any text packs, alone and appended to itself, and unpacks to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gc_buf u, p, q;
  gc_buf_init(&u);
  (void)gc_unpack(&u, (const char *)data, size, NULL);
  gc_buf_free(&u);
  gc_buf_init(&p);
  gc_buf_init(&q);
  if (gc_pack_append(&p, NULL, 0, (const char *)data, size, NULL) != 0) abort();
  if (gc_pack_append(&q, p.p, p.len, (const char *)data, size, NULL) != 0) abort();
  if (gc_unpack(&u, q.p, q.len, NULL) != 0 || u.len != 2 * size) abort();
  if (size && (memcmp(u.p, data, size) != 0 || memcmp(u.p + size, data, size) != 0)) abort();
  gc_buf_free(&u);
  gc_buf_free(&p);
  gc_buf_free(&q);
  return 0;
}
