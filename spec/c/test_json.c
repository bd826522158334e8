/* The JSON reader on valid, hostile and edge-case input. */
#include <stdlib.h>

#include "ctest.h"
#include "json.h"

static int parses(const char *s) {
  gc_jdoc d;
  int r = gc_json_parse(&d, s, strlen(s), NULL, NULL, 0);
  gc_json_free(&d);
  return r == 0;
}

static void test_valid(void) {
  const char *ok[] = { "{}", "[]", "0", "-0.5e+3", "\"\"", "true", " null ", "[[],{}]",
                       "{\"a\":{\"b\":[1,2,{\"c\":\"\\u20ac\"}]}}", "\"\\ud83d\\ude00\"",
                       "\"caf\xc3\xa9\"" };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) CHECK(parses(ok[i]));
}

static void test_invalid(void) {
  const char *bad[] = { "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{1:2}", "01",
                        "1.", ".5", "-", "1e", "tru", "nulll", "\"\\u12\"", "\"\\ud800\"",
                        "\"\\udc00\"", "\"\x01\"", "\"\xc3\"", "\"\xf5\x80\x80\x80\"", "[1]x",
                        "\"abc" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK(!parses(bad[i]));
  }
}

static void test_limits(void) {
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  gc_jdoc d;
  gc_json_limits lim = { 0, 99 };
  CHECK(gc_json_parse(&d, deep, 200, &lim, NULL, 0) != 0);
  CHECK_STR(d.error, "nested too deep");
  gc_json_free(&d);
  lim.max_depth = 100;
  CHECK(gc_json_parse(&d, deep, 200, &lim, NULL, 0) == 0);
  gc_json_free(&d);
  lim.max_size = 10;
  CHECK(gc_json_parse(&d, deep, 200, &lim, NULL, 0) != 0);
  CHECK_STR(d.error, "body too large");
  gc_json_free(&d);
}

static void test_access(void) {
  const char *s = "{\"value\":[{\"changeType\":\"updated\",\"n\":\"42\",\"m\":-7,"
                  "\"e\":\"a\\\"b\\u00e9\"}],\"x\":1.5}";
  gc_jdoc d;
  CHECK(gc_json_parse(&d, s, strlen(s), NULL, NULL, 0) == 0);
  uint32_t v = gc_json_get(&d, 0, "value", 5);
  CHECK(v && d.tok[v].type == GC_J_ARRAY && d.tok[v].len == 1);
  uint32_t n0 = v + 1;
  uint32_t ct = gc_json_get(&d, n0, "changeType", 10);
  CHECK(gc_json_streq(&d, ct, "updated", 7));
  int64_t i = 0;
  CHECK(gc_json_int(&d, gc_json_get(&d, n0, "n", 1), 1, &i) == 0 && i == 42);
  CHECK(gc_json_int(&d, gc_json_get(&d, n0, "n", 1), 0, &i) != 0);
  CHECK(gc_json_int(&d, gc_json_get(&d, n0, "m", 1), 0, &i) == 0 && i == -7);
  gc_buf scratch;
  gc_buf_init(&scratch);
  size_t len;
  const char *e = gc_json_str(&d, gc_json_get(&d, n0, "e", 1), &scratch, &len);
  CHECK(e && len == 5 && memcmp(e, "a\"b\xc3\xa9", 5) == 0);
  gc_buf_free(&scratch);
  uint32_t x = gc_json_get(&d, 0, "x", 1);
  CHECK(x && gc_json_num(&d, x) == 1.5);
  CHECK(d.tok[v].next == x - 1);   /* skipping the array lands on the next key */
  CHECK(gc_json_get(&d, 0, "missing", 7) == 0);
  gc_json_free(&d);
}

static void test_reuse(void) {
  gc_jdoc d;
  CHECK(gc_json_parse(&d, "[1,2,3]", 7, NULL, NULL, 0) == 0);
  gc_jtok *t = d.tok;
  uint32_t cap = d.cap;
  CHECK(gc_json_parse(&d, "{\"a\":true}", 10, NULL, t, cap) == 0);
  CHECK(d.tok == t && d.ntok == 3 && d.tok[2].type == GC_J_TRUE);
  gc_json_free(&d);
}

int main(void) {
  test_valid();
  test_invalid();
  test_limits();
  test_access();
  test_reuse();
  CTEST_END("c json");
}
