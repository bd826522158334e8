/* The notification scanner: URL classification, normalizations, and regressions found by
 * fuzzing. */
#include <stdlib.h>

#include "ctest.h"
#include "notify.h"

static gc_nkind classify(const char *url, char *id, char *sub) {
  gc_span c, s;
  gc_nkind k = gc_notify_classify(url, strlen(url), &c, &s);
  snprintf(id, 64, "%.*s", (int)c.len, url + c.off);
  snprintf(sub, 64, "%.*s", (int)s.len, url + s.off);
  return k;
}

static void test_classify(void) {
  char id[64], sub[64];
  CHECK(classify("/communications/calls/abc", id, sub) == GC_N_CALL);
  CHECK_STR(id, "abc");
  CHECK(classify("communications/calls/abc/participants", id, sub) == GC_N_PARTICIPANTS);
  CHECK(classify("/app/calls/abc/operations/op1", id, sub) == GC_N_OPERATION);
  CHECK_STR(sub, "op1");
  CHECK(classify("/communications/calls/abc/contentsharingsessions/s1", id, sub) == GC_N_CONTENT_SHARING);
  CHECK_STR(sub, "s1");
  CHECK(classify("https://graph.microsoft.com/v1.0/communications/calls/x/", id, sub) == GC_N_CALL);
  CHECK_STR(id, "x");
  CHECK(classify("/communications/calls/", id, sub) == GC_N_UNKNOWN);
  CHECK(classify("/communications/calls/a/operations", id, sub) == GC_N_UNKNOWN);
  CHECK(classify("/communications/calls/a/participants/p", id, sub) == GC_N_UNKNOWN);
  CHECK(classify("/xcommunications/calls/a", id, sub) == GC_N_UNKNOWN);
  CHECK(classify("", id, sub) == GC_N_UNKNOWN);
}

static void test_result(void) {
  const char *s = "{\"a\":{\"code\":\"200\",\"subCode\":5001,\"message\":\"m\"},"
                  "\"b\":{\"code\":1e38,\"subcode\":-1e300},\"c\":{\"code\":200.0,\"subcode\":\"x\"}}";
  gc_jdoc d;
  CHECK(gc_json_parse(&d, s, strlen(s), NULL, NULL, 0) == 0);
  int64_t code = 0, sub = 0;
  int hc, hs;
  uint32_t msg;
  gc_notify_result(&d, gc_json_get(&d, 0, "a", 1), &code, &hc, &sub, &hs, &msg);
  CHECK(hc && code == 200 && hs && sub == 5001 && msg);
  /* found by fuzzing: numbers outside int64 must not be converted */
  gc_notify_result(&d, gc_json_get(&d, 0, "b", 1), &code, &hc, &sub, &hs, &msg);
  CHECK(!hc && !hs && !msg);
  gc_notify_result(&d, gc_json_get(&d, 0, "c", 1), &code, &hc, &sub, &hs, &msg);
  CHECK(hc && code == 200 && !hs);
  gc_json_free(&d);
}

static void test_status_and_types(void) {
  CHECK_STR(gc_notify_status("Running", 7), "running");
  CHECK_STR(gc_notify_status("NOTSTARTED", 10), "notStarted");
  CHECK(gc_notify_status("run", 3) == NULL);
  char out[64];
  size_t n = gc_notify_optype("#microsoft.graph.recordOperation", 32, out, sizeof out);
  CHECK(n == 14 && memcmp(out, "recordResponse", n) == 0);
  n = gc_notify_optype("#microsoft.graph.playPromptOperation", 36, out, sizeof out);
  CHECK(n == 10 && memcmp(out, "playPrompt", n) == 0);
  CHECK(gc_notify_optype("#microsoft.graph.call", 21, out, sizeof out) == 0);
  CHECK(gc_notify_optype("Operation", 9, out, sizeof out) == 0);
}

static void test_scan(void) {
  const char *s = "{\"value\":[{\"changeType\":\"updated\",\"resourceUrl\":\"\\/communications\\/calls\\/c1\","
                  "\"resourceData\":{\"state\":\"established\"}},"
                  "{\"changeType\":\"deleted\",\"resource\":\"/app/calls/c2/operations/o\"}]}";
  gc_jdoc d;
  CHECK(gc_json_parse(&d, s, strlen(s), NULL, NULL, 0) == 0);
  gc_notif ev[4];
  size_t n;
  const char *err;
  gc_buf aux;
  gc_buf_init(&aux);
  CHECK(gc_notify_scan(&d, ev, 4, &n, &err, &aux) == 0);
  CHECK(n == 2);
  CHECK(ev[0].kind == GC_N_CALL && ev[0].change == GC_C_UPDATED && ev[0].call_id.aux);
  CHECK(ev[0].call_id.len == 2 && memcmp(aux.p + ev[0].call_id.off, "c1", 2) == 0);
  CHECK(ev[1].kind == GC_N_OPERATION && ev[1].change == GC_C_DELETED && !ev[1].call_id.aux);
  CHECK(ev[0].hash != ev[1].hash);
  CHECK(gc_notify_scan(&d, ev, 1, &n, &err, &aux) != 0);  /* over capacity: refused whole */
  gc_json_free(&d);
  gc_buf_free(&aux);
}

int main(void) {
  test_classify();
  test_result();
  test_status_and_types();
  test_scan();
  CTEST_END("c notify");
}
