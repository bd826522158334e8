/* The flat records LuaJIT reads through the FFI (notify_flat.h): ranges, decoded strings,
 * participants, reuse of one context across bodies, and errors. */
#include <stdlib.h>

#include "ctest.h"
#include "notify.h"
#include "notify_flat.h"

static char got[256];

static const char *str(const gc_flat_out *o, const char *body, gc_fstr s) {
  if (s.len < 0) return NULL;
  const char *p = (s.off & GC_FLAT_STRS) ? o->strs + (s.off & ~GC_FLAT_STRS) : body + s.off;
  snprintf(got, sizeof got, "%.*s", (int)s.len, p);
  return got;
}

static const char *range(const char *body, uint32_t off, uint32_t len) {
  snprintf(got, sizeof got, "%.*s", (int)len, body + off);
  return got;
}

static void test_call(gc_flat *f) {
  const char *b = "{\"value\":[{\"changeType\":\"updated\",\"resourceUrl\":"
                  "\"\\/communications\\/calls\\/c1\",\"resourceData\":{\"state\":\"est\\u0061blished\","
                  "\"direction\":\"incoming\",\"toneInfo\":{\"tone\":\"tone5\",\"sequenceId\":\"3\"},"
                  "\"resultInfo\":{\"code\":200,\"subCode\":\"5001\"}}}]}";
  const gc_flat_out *o = gc_flat_parse(f, b, strlen(b), 0, 0, GC_NOTIFY_DEFAULT_MAX);
  CHECK(o->err_code == NULL);
  CHECK(o->nev == 1);
  const gc_flat_event *e = &o->ev[0];
  CHECK(e->kind == GC_N_CALL && e->change == GC_C_UPDATED);
  CHECK_STR(str(o, b, e->url), "/communications/calls/c1");   /* decoded */
  CHECK(e->url.off & GC_FLAT_STRS);
  CHECK_STR(str(o, b, e->call_id), "c1");
  CHECK_STR(str(o, b, e->state), "established");
  CHECK(e->state.off & GC_FLAT_STRS);                          /* decoded */
  CHECK_STR(str(o, b, e->direction), "incoming");
  CHECK(!(e->direction.off & GC_FLAT_STRS));                   /* a range of the body */
  CHECK(e->tenant_id.len == -1 && e->resource.len == -1);
  CHECK(e->flags & GC_F_TONE);
  CHECK(e->flags & GC_F_SEQID && e->sequence_id == 3);
  CHECK_STR(str(o, b, e->tone), "tone5");
  CHECK((e->flags & (GC_F_RESULT | GC_F_CODE | GC_F_SUBCODE)) == (GC_F_RESULT | GC_F_CODE | GC_F_SUBCODE));
  CHECK(e->code == 200 && e->subcode == 5001);
  CHECK(!(e->flags & GC_F_INCOMING));
  CHECK(e->data_len > 0);
  CHECK(b[e->data_off] == '{' && b[e->data_off + e->data_len - 1] == '}');
  CHECK(e->fingerprint >= 0 && e->fingerprint < 9007199254740992.0);
}

static void test_roster(gc_flat *f) {
  const char *b = "{\"value\":[{\"changeType\":\"updated\",\"resourceUrl\":"
                  "\"/communications/calls/c1/participants\",\"resourceData\":[{\"id\":\"p1\","
                  "\"rosterSequenceNumber\":7},3,{\"id\":\"p2\",\"removedState\":{\"reason\":\"x\"}}]}]}";
  const gc_flat_out *o = gc_flat_parse(f, b, strlen(b), 0, 0, GC_NOTIFY_DEFAULT_MAX);
  CHECK(o->err_code == NULL && o->nev == 1);
  const gc_flat_event *e = &o->ev[0];
  CHECK(e->kind == GC_N_PARTICIPANTS && (e->flags & GC_F_PARTS));
  CHECK(e->part_count == 2);                                    /* the 3 is not a participant */
  const gc_flat_participant *p = &o->part[e->part_first];
  CHECK_STR(str(o, b, p[0].id), "p1");
  CHECK(p[0].flags == GC_FP_RSN && p[0].rsn == 7);
  CHECK_STR(range(b, p[0].off, p[0].len), "{\"id\":\"p1\",\"rosterSequenceNumber\":7}");
  CHECK_STR(str(o, b, p[1].id), "p2");
  CHECK(p[1].flags == GC_FP_REMOVED);
  CHECK(b[e->data_off] == '[');
}

static void test_operation(gc_flat *f) {
  const char *b = "{\"value\":[{\"changeType\":\"deleted\",\"resourceUrl\":"
                  "\"/communications/calls/c1/operations/o1\",\"resourceData\":{\"@odata.type\":"
                  "\"#microsoft.graph.recordOperation\",\"status\":\"COMPLETED\",\"clientContext\":\"k\","
                  "\"recordingLocation\":\"https://x\"}},{\"changeType\":\"moved\",\"resource\":"
                  "\"/communications/calls/c1/operations/o2\",\"resourceData\":{\"status\":\"odd\"}}]}";
  const gc_flat_out *o = gc_flat_parse(f, b, strlen(b), 0, 0, GC_NOTIFY_DEFAULT_MAX);
  CHECK(o->err_code == NULL && o->nev == 2);
  const gc_flat_event *e = &o->ev[0];
  CHECK(e->kind == GC_N_OPERATION && e->status == 3);
  CHECK_STR(str(o, b, e->sub_id), "o1");
  CHECK_STR(str(o, b, e->op_type), "recordResponse");
  CHECK_STR(str(o, b, e->client_context), "k");
  CHECK(e->item_len > 0 && b[e->item_off] == '{');
  e = &o->ev[1];
  CHECK(e->change == GC_C_OTHER);
  CHECK_STR(str(o, b, e->change_type), "moved");
  CHECK(e->status == 0);
  CHECK_STR(str(o, b, e->status_text), "odd");
  CHECK(e->url.len == -1);
  CHECK_STR(str(o, b, e->resource), "/communications/calls/c1/operations/o2");
}

static void test_errors(gc_flat *f) {
  const gc_flat_out *o = gc_flat_parse(f, "{\"value\":", 9, 0, 0, GC_NOTIFY_DEFAULT_MAX);
  CHECK_STR(o->err_code, "json");
  CHECK(strncmp(o->err_msg, "invalid JSON: ", 14) == 0);
  o = gc_flat_parse(f, "{\"value\":[1]}", 13, 0, 0, GC_NOTIFY_DEFAULT_MAX);
  CHECK_STR(o->err_code, "notification");
  CHECK_STR(o->err_msg, "a notification is not an object");
  o = gc_flat_parse(f, "{\"value\":[{},{}]}", 17, 0, 0, 1);
  CHECK_STR(o->err_path, "value");
  CHECK(o->nev == 0);
  /* a huge roster, then a small body: the warm buffers are trimmed, the output still right */
  size_t n = 40000;
  char *big = malloc(n * 16 + 128);
  size_t len = (size_t)sprintf(big, "{\"value\":[{\"changeType\":\"updated\",\"resourceUrl\":"
                               "\"/communications/calls/c/participants\",\"resourceData\":[");
  for (size_t i = 0; i < n; i++) len += (size_t)sprintf(big + len, "%s{\"id\":\"p\"}", i ? "," : "");
  len += (size_t)sprintf(big + len, "]}]}");
  o = gc_flat_parse(f, big, len, 0, 0, GC_NOTIFY_DEFAULT_MAX);
  CHECK(o->err_code == NULL && o->npart == n);
  free(big);
  test_call(f);
}

int main(void) {
  gc_flat *f = gc_flat_new();
  CHECK(f != NULL);
  test_call(f);
  test_roster(f);
  test_operation(f);
  test_call(f);
  test_errors(f);
  gc_flat_free(f);
  CTEST_END("c notify flat");
}
