/* The I/O half in C, on real loopback sockets: the libcurl client and the evhttp listener on
 * one loop; answers now and later; body limits; a slow client dropped; a reset; a cancel; a
 * server closed with a request still waiting. Run under valgrind and ASan too. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctest.h"
#include "http_client.h"
#include "http_server.h"
#include "ioloop.h"

static gc_loop *loop;

/* step until an item arrives (or ~3 s pass) */
static gc_io_item *next_item(void) {
  for (int i = 0; i < 300; i++) {
    gc_io_item *it = gc_loop_pop(loop);
    if (it) return it;
    gc_loop_step(loop, 10);
  }
  return NULL;
}

static int start(gc_http *h, uint64_t id, const char *method, const char *url, const char *body, long timeout) {
  gc_http_req r;
  memset(&r, 0, sizeof r);
  r.method = method;
  r.url = url;
  r.body = body;
  r.body_len = body ? strlen(body) : 0;
  r.timeout_ms = timeout;
  const char *hdr[] = { "X-Test: yes" };
  r.headers = hdr;
  r.nheaders = 1;
  const char *err;
  return gc_http_start(h, &r, id, &err);
}

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int main(void) {
  loop = gc_loop_new();
  CHECK(loop != NULL);
  gc_server_opts so;
  memset(&so, 0, sizeof so);
  so.max_body = 1024;
  so.timeout_ms = 300;
  so.tag = 7;
  const char *err = NULL;
  gc_server *srv = gc_server_new(loop, &so, &err);
  CHECK(srv != NULL);
  int port = gc_server_port(srv);
  CHECK(port > 0);
  gc_http *h = gc_http_new(loop, NULL);
  CHECK(h != NULL);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/cb?x=1", port);

  /* a POST, answered at once */
  CHECK(start(h, 1, "POST", url, "hello", 0) == 0);
  gc_io_item *it = next_item();
  CHECK(it && it->kind == GC_IO_REQUEST);
  gc_sreq *r = gc_sreq_of_item(it);
  CHECK_STR(gc_sreq_method(r), "POST");
  CHECK_STR(gc_sreq_uri(r), "/cb?x=1");
  CHECK_STR(gc_sreq_header(r, "x-test"), "yes");
  CHECK(gc_sreq_tag(r) == 7);
  size_t blen;
  const char *body = gc_sreq_body(r, &blen);
  CHECK(blen == 5 && memcmp(body, "hello", 5) == 0);
  const char *hdrs[] = { "X-Answer", "42" };
  CHECK(gc_sreq_respond(r, 202, hdrs, 1, "ok", 2) == 0);
  CHECK(gc_sreq_respond(r, 200, NULL, 0, NULL, 0) == -1);   /* once only */
  gc_sreq_free(r);
  it = next_item();
  CHECK(it && it->kind == GC_IO_RESPONSE);
  gc_xfer *x = (gc_xfer *)(void *)it;
  CHECK(x->id == 1 && x->status == 202 && x->code == GC_HX_OK);
  CHECK(x->body.len == 2 && memcmp(x->body.p, "ok", 2) == 0);
  CHECK(x->head.len > 0 && memmem(x->head.p, x->head.len, "X-Answer: 42", 12) != NULL);
  gc_xfer_free(x);

  /* answered later, after other work */
  CHECK(start(h, 2, "GET", url, NULL, 0) == 0);
  it = next_item();
  CHECK(it && it->kind == GC_IO_REQUEST);
  r = gc_sreq_of_item(it);
  for (int i = 0; i < 5; i++) gc_loop_step(loop, 5);
  CHECK(gc_sreq_pending(r));
  CHECK(gc_sreq_respond(r, 200, NULL, 0, "late", 4) == 0);
  gc_sreq_free(r);
  it = next_item();
  x = (gc_xfer *)(void *)it;
  CHECK(it && x->status == 200 && x->body.len == 4);
  gc_xfer_free(x);

  /* a request dropped without an answer gets 500 */
  CHECK(start(h, 3, "DELETE", url, NULL, 0) == 0);
  it = next_item();
  CHECK(it && it->kind == GC_IO_REQUEST && strcmp(gc_sreq_method(gc_sreq_of_item(it)), "DELETE") == 0);
  gc_sreq_free(gc_sreq_of_item(it));
  x = (gc_xfer *)(void *)next_item();
  CHECK(x && x->status == 500);
  gc_xfer_free(x);

  /* a body over the limit gets 413 and never reaches the queue */
  char *big = malloc(4096);
  memset(big, 'x', 4095);
  big[4095] = 0;
  CHECK(start(h, 4, "POST", url, big, 0) == 0);
  x = (gc_xfer *)(void *)next_item();
  CHECK(x && x->item.kind == GC_IO_RESPONSE && x->status == 413);
  gc_xfer_free(x);
  free(big);

  /* a reset: the connection closes without an answer */
  CHECK(start(h, 5, "POST", url, "once", 0) == 0);
  it = next_item();
  CHECK(it && it->kind == GC_IO_REQUEST);
  r = gc_sreq_of_item(it);
  CHECK(gc_sreq_reset(r) == 0);
  gc_sreq_free(r);
  for (;;) {  /* libcurl may try again on a new connection: answer that one */
    it = next_item();
    if (!it || it->kind == GC_IO_RESPONSE) break;
    r = gc_sreq_of_item(it);
    gc_sreq_respond(r, 200, NULL, 0, NULL, 0);
    gc_sreq_free(r);
  }
  x = (gc_xfer *)(void *)it;
  CHECK(x && (x->code == GC_HX_TRANSPORT || x->status == 200));
  if (x && x->code == GC_HX_TRANSPORT) CHECK(x->sent == 1);
  gc_xfer_free(x);

  /* a timeout, and a cancel */
  CHECK(start(h, 6, "GET", url, NULL, 100) == 0);
  it = next_item();
  CHECK(it && it->kind == GC_IO_REQUEST);
  r = gc_sreq_of_item(it);
  x = (gc_xfer *)(void *)next_item();
  CHECK(x && x->code == GC_HX_TIMEOUT && x->status == 0);
  CHECK_STR(gc_hx_code_name(x->code), "timeout");
  gc_xfer_free(x);
  gc_sreq_free(r);
  CHECK(start(h, 8, "GET", "http://127.0.0.1:9/", NULL, 0) == 0);
  CHECK(gc_http_cancel(h, 8) == 0);
  CHECK(gc_http_cancel(h, 8) == -1);
  x = (gc_xfer *)(void *)next_item();
  CHECK(x && x->id == 8 && x->code == GC_HX_CANCELLED);
  gc_xfer_free(x);
  CHECK(gc_http_in_flight(h) == 0);

  /* a slow client: half a request line, then nothing: the server drops it */
  int fd = raw_connect(port);
  CHECK(fd >= 0);
  CHECK(write(fd, "POST /cb HT", 11) == 11);
  for (int i = 0; i < 60; i++) gc_loop_step(loop, 10);
  char b[64];
  CHECK(read(fd, b, sizeof b) <= 0);
  close(fd);

  /* a request still waiting when its server goes, and one still in flight at the end */
  CHECK(start(h, 9, "GET", url, NULL, 0) == 0);
  it = next_item();
  CHECK(it && it->kind == GC_IO_REQUEST);
  r = gc_sreq_of_item(it);
  gc_server_free(srv);
  CHECK(!gc_sreq_pending(r));
  CHECK(gc_sreq_respond(r, 200, NULL, 0, NULL, 0) == -1);
  gc_sreq_free(r);
  CHECK(start(h, 10, "GET", "http://127.0.0.1:9/", NULL, 0) == 0);

  /* connection refused */
  x = (gc_xfer *)(void *)next_item();
  while (x && x->id != 10) { gc_xfer_free(x); x = (gc_xfer *)(void *)next_item(); }
  CHECK(x && x->code == GC_HX_CONNECT && !x->sent);
  gc_xfer_free(x);
  CHECK(start(h, 11, "GET", "http://127.0.0.1:9/", NULL, 0) == 0);
  gc_http_free(h);      /* drops it unqueued */
  gc_loop_free(loop);
  CTEST_END("c io http");
}
