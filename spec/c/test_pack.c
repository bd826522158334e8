/* The log packer: round trips, blocks appended, and what it refuses. */
#include <stdlib.h>

#include "ctest.h"
#include "pack.h"

static int roundtrip(const char *s, size_t n) {
  gc_buf p, u;
  gc_buf_init(&p);
  gc_buf_init(&u);
  const char *err = NULL;
  int ok = gc_pack_append(&p, NULL, 0, s, n, &err) == 0 && gc_unpack(&u, p.p, p.len, &err) == 0 &&
           u.len == n && (n == 0 || memcmp(u.p, s, n) == 0);
  gc_buf_free(&p);
  gc_buf_free(&u);
  return ok;
}

static void test_roundtrip(void) {
  CHECK(roundtrip("", 0));
  CHECK(roundtrip("a", 1));
  CHECK(roundtrip("abcabcabcabcabcabcabcabc", 24));
  const char *ev = "{\"t\":1796175117693,\"k\":\"ev\",\"ev\":{\"state\":\"established\",\"kind\":\"call\","
                   "\"fingerprint\":6661469513670507,\"changeType\":\"updated\"}}";
  CHECK(roundtrip(ev, strlen(ev)));
  /* a long run (overlapping matches, counts past 255) and every byte value */
  char big[70000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i < 1000 ? 'x' : (i * 7919) % 251);
  CHECK(roundtrip(big, sizeof big));
}

static void test_uuids(void) {
  /* new lowercase ids in 16 bytes; uppercase ones, broken ones, ids cut by the end as they are */
  const char *s = "{\"id\":\"7a9e009b-6856-49eb-9777-fd8e5bf97e80\",\"crid\":\"7A9E009B-6856-49EB-9777-FD8E5BF97E80\","
                  "\"x\":\"7a9e009b-6856-49eb-9777-fd8e5bf97e8\",\"y\":\"7a9e009b_6856-49eb-9777-fd8e5bf97e80\"}"
                  "0f8438c5-311e-4c9d-8ab0-1e913329f597";
  CHECK(roundtrip(s, strlen(s)));
  CHECK(roundtrip(s, strlen(s) - 1));
  const char *ids = "1f9bda0e-d5af-4155-983a-bc4d4d26e340 f237f42a-5314-48bc-8629-dc1e4062a432";
  gc_buf p, u;
  gc_buf_init(&p);
  gc_buf_init(&u);
  CHECK(gc_pack_append(&p, NULL, 0, ids, strlen(ids), NULL) == 0);
  CHECK(p.len <= 1 + 2 + 2 * (1 + 2 + 16) + 1 + 1);  /* two ids, a space: 16 bytes an id */
  CHECK(gc_unpack(&u, p.p, p.len - 1, NULL) != 0);     /* an id cut short is refused */
  gc_buf_free(&p);
  gc_buf_free(&u);
}

static void test_small(void) {
  /* a log's event says little the dictionary does not: packed in under half */
  const char *ev = "{\"t\":1796175117693,\"k\":\"ev\",\"ev\":{\"state\":\"established\",\"kind\":\"call\","
                   "\"fingerprint\":6661469513670507,\"changeType\":\"updated\"}}";
  gc_buf p;
  gc_buf_init(&p);
  CHECK(gc_pack_append(&p, NULL, 0, ev, strlen(ev), NULL) == 0);
  CHECK(p.len * 2 < strlen(ev));  /* (its time and fingerprint are new digits) */
  gc_buf_free(&p);
}

static void test_append(void) {
  gc_buf p, q, u;
  gc_buf_init(&p);
  gc_buf_init(&u);
  CHECK(gc_pack_append(&p, NULL, 0, "first entry,", 12, NULL) == 0);
  for (int i = 0; i < 50; i++) {
    gc_buf_init(&q);
    CHECK(gc_pack_append(&q, p.p, p.len, "first entry,", 12, NULL) == 0);
    gc_buf_free(&p);
    p = q;
  }
  CHECK(gc_unpack(&u, p.p, p.len, NULL) == 0);
  CHECK(u.len == 51 * 12);
  CHECK(memcmp(u.p + 50 * 12, "first entry,", 12) == 0);
  CHECK(p.len <= 20 + 50 * 6);  /* each repeat one match into the block before it: 6 bytes a block */
  gc_buf_free(&p);
  gc_buf_free(&u);
}

static void test_refused(void) {
  const char *err = NULL;
  gc_buf u;
  gc_buf_init(&u);
  CHECK(gc_unpack(&u, "", 0, &err) != 0);
  CHECK(gc_unpack(&u, "\2", 1, &err) != 0);
  CHECK_STR(err, "not a packed text (or of another version)");
  CHECK(gc_unpack(&u, "\1\5\1\x50", 4, &err) != 0);  /* 5 bytes said, literals cut short */
  CHECK(gc_unpack(&u, "\1\3\3\x00\xff\xff", 6, &err) != 0);  /* a distance too far back */
  CHECK_STR(err, "a packed distance reaches before the text");
  CHECK(gc_unpack(&u, "\1\xff\xff\xff\xff\x0f\0", 7, &err) != 0);  /* says 4 GB */
  CHECK_STR(err, "a packed text says it is too large");
  gc_buf p;
  gc_buf_init(&p);
  CHECK(gc_pack_append(&p, "x", 1, "text", 4, &err) != 0);  /* appending to what is not packed */
  gc_buf_free(&p);
  gc_buf_free(&u);
}

int main(void) {
  test_roundtrip();
  test_uuids();
  test_small();
  test_append();
  test_refused();
  CTEST_END("pack");
}
