/* The encoder driven directly through its push interface, without Lua. */
#include <stdlib.h>

#include "ctest.h"
#include "encode.h"
#include "schema.h"

static char out[4096];

/* Build a minimal valid P2P call, optionally replacing the modality. Returns the JSON text
 * (in out) or NULL with the error in *err. */
static const char *p2p(gc_enc *e, const char *modality) {
  gc_enc_init(e, gc_root_find("call", 4));
  gc_enc_begin_object(e, NULL, 0);
  gc_enc_key(e, "callbackUri", 11);
  gc_enc_string(e, "https://bot.example.com/cb", 26);
  gc_enc_key(e, "requestedModalities", 19);
  gc_enc_begin_array(e);
  gc_enc_string(e, modality, strlen(modality));
  gc_enc_end_array(e);
  gc_enc_key(e, "mediaConfig", 11);
  gc_enc_begin_object(e, "serviceHostedMediaConfig", 24);
  gc_enc_end_object(e);
  gc_enc_key(e, "targets", 7);
  gc_enc_begin_array(e);
  gc_enc_begin_object(e, NULL, 0);
  gc_enc_key(e, "identity", 8);
  gc_enc_begin_object(e, NULL, 0);
  gc_enc_key(e, "user", 4);
  gc_enc_begin_object(e, NULL, 0);
  gc_enc_key(e, "id", 2);
  gc_enc_integer(e, 5); /* wrong: ids are strings, unless modality is "audio" */
  gc_enc_end_object(e);
  gc_enc_end_object(e);
  gc_enc_end_object(e);
  gc_enc_end_array(e);
  int r = gc_enc_end_object(e);
  if (r || e->err.code) return NULL;
  snprintf(out, sizeof out, "%.*s", (int)e->out.len, e->out.p);
  return out;
}

static void test_errors(void) {
  gc_enc e;
  CHECK(p2p(&e, "smell") == NULL);
  CHECK(e.err.code == GC_E_ENUM);
  CHECK_STR(e.err.path, "requestedModalities[1]");
  gc_enc_free(&e);

  CHECK(p2p(&e, "audio") == NULL);
  CHECK(e.err.code == GC_E_TYPE);
  CHECK_STR(e.err.path, "targets[1].identity.user.id");
  CHECK_STR(gc_errcode_name(e.err.code), "type");
  gc_enc_free(&e);
}

static void test_annotations(void) {
  gc_enc e;
  gc_enc_init(&e, gc_root_find("call", 4));
  CHECK(gc_enc_begin_object(&e, NULL, 0) == 0);
  gc_enc_key(&e, "callbackUri", 11);
  gc_enc_string(&e, "http://localhost:8080/cb", 24);
  gc_enc_key(&e, "requestedModalities", 19);
  gc_enc_begin_array(&e);
  gc_enc_end_array(&e);
  gc_enc_key(&e, "mediaConfig", 11);
  gc_enc_begin_object(&e, "#microsoft.graph.appHostedMediaConfig", 37);
  gc_enc_key(&e, "blob", 4);
  gc_enc_string(&e, "b\"\n", 3);
  gc_enc_end_object(&e);
  gc_enc_key(&e, "meetingInfo", 11);
  gc_enc_begin_object(&e, "joinMeetingIdMeetingInfo", 24);
  gc_enc_key(&e, "joinMeetingId", 13);
  gc_enc_string(&e, "123", 3);
  gc_enc_key(&e, "passcode", 8);
  gc_enc_null(&e);
  gc_enc_end_object(&e);
  CHECK(gc_enc_end_object(&e) == 0);
  CHECK(e.err.code == GC_E_OK);
  snprintf(out, sizeof out, "%.*s", (int)e.out.len, e.out.p);
  CHECK_STR(out,
    "{\"@odata.type\":\"#microsoft.graph.call\",\"callbackUri\":\"http://localhost:8080/cb\","
    "\"requestedModalities\":[],\"mediaConfig\":{\"@odata.type\":"
    "\"#microsoft.graph.appHostedMediaConfig\",\"blob\":\"b\\\"\\n\"},\"meetingInfo\":{"
    "\"@odata.type\":\"#microsoft.graph.joinMeetingIdMeetingInfo\",\"joinMeetingId\":\"123\","
    "\"passcode\":null}}");
  gc_enc_free(&e);
}

static void test_required(void) {
  gc_enc e;
  gc_enc_init(&e, gc_root_find("call", 4));
  gc_enc_begin_object(&e, NULL, 0);
  CHECK(gc_enc_end_object(&e) != 0);
  CHECK(e.err.code == GC_E_REQUIRED);
  CHECK_STR(e.err.path, "callbackUri");
  gc_enc_free(&e);
}

static void test_numbers(void) {
  gc_enc e;
  gc_enc_init(&e, gc_root_find("redirect", 8));
  gc_enc_begin_object(&e, NULL, 0);
  gc_enc_key(&e, "timeout", 7);
  CHECK(gc_enc_number(&e, 30.0) == 0);   /* integral double: written as an integer */
  gc_enc_key(&e, "x", 1);
  CHECK(gc_enc_number(&e, 0.1) == 0);
  gc_enc_key(&e, "y", 1);
  CHECK(gc_enc_integer(&e, INT64_MIN) == 0);
  snprintf(out, sizeof out, "%.*s", (int)e.out.len, e.out.p);
  CHECK_STR(out, "{\"timeout\":30,\"x\":0.1,\"y\":-9223372036854775808");
  gc_enc_free(&e);

  gc_enc_init(&e, gc_root_find("redirect", 8));
  gc_enc_begin_object(&e, NULL, 0);
  gc_enc_key(&e, "timeout", 7);
  CHECK(gc_enc_integer(&e, (int64_t)1 << 40) != 0);
  CHECK(e.err.code == GC_E_RANGE);
  CHECK_STR(e.err.path, "timeout");
  gc_enc_free(&e);
}

static void test_root_errors(void) {
  /* a scalar where the body belongs: reported, with no frame to read */
  gc_enc e;
  gc_enc_init(&e, gc_root_find("call", 4));
  CHECK(gc_enc_string(&e, "x", 1) != 0);
  CHECK(e.err.code == GC_E_TYPE);
  CHECK_STR(e.err.path, "");
  gc_enc_free(&e);
  gc_enc_init(&e, gc_root_find("call", 4));
  CHECK(gc_enc_begin_array(&e) != 0);
  CHECK(e.err.code == GC_E_TYPE);
  gc_enc_free(&e);
}

static void test_uri(void) {
  CHECK(gc_uri_is_secure("https://a.example/x", 19));
  CHECK(gc_uri_is_secure("http://127.0.0.1:80/", 20));
  CHECK(gc_uri_is_secure("http://user@localhost/", 22));
  CHECK(!gc_uri_is_secure("http://localhost@evil.com/", 26));
  CHECK(!gc_uri_is_secure("http://a.example/", 17));
  CHECK(!gc_uri_is_secure("https://", 8));
  CHECK(!gc_uri_is_secure("https://:443/", 13));
}

static void test_schema(void) {
  int call = gc_type_find("#microsoft.graph.call", 21);
  CHECK(call >= 0);
  CHECK(gc_type_find("call", 4) == call);
  CHECK(gc_type_find("answer", 6) < 0);      /* an action is not a type */
  CHECK(gc_root_find("answer", 6) >= 0);
  CHECK(gc_field_find(call, "callbackUri", 11) != NULL);
  CHECK(gc_field_find(call, "nope", 4) == NULL);
  int ms = gc_type_find("serviceHostedMediaConfig", 24);
  CHECK(gc_type_is_a(ms, gc_type_find("mediaConfig", 11)));
  CHECK(!gc_type_is_a(ms, call));
  /* sorted, as gc_type_find's binary search needs */
  for (int i = 1; i < gc_ntypes; i++) CHECK(strcmp(gc_types[i - 1].name, gc_types[i].name) < 0);
}

int main(void) {
  test_errors();
  test_annotations();
  test_required();
  test_numbers();
  test_root_errors();
  test_uri();
  test_schema();
  CTEST_END("c encode");
}
