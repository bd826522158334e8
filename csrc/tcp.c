/* tcp.c: TCP streams on the loop, with libevent's socket bufferevents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "tcp.h"

struct gc_tcp {
  gc_loop *l;
  struct bufferevent *bev;   /* NULL once closed */
  uint64_t id;
  int connected;
};

static void drop_item(gc_io_item *it) {
  gc_tcp_item *t = (gc_tcp_item *)(void *)it;
  free(t->data);
  free(t);
}

static gc_tcp_item *new_item(gc_tcp *t, int event) {
  gc_tcp_item *it = calloc(1, sizeof *it);
  if (!it) return NULL;
  it->item.kind = GC_IO_STREAM;
  it->item.drop = drop_item;
  it->id = t->id;
  it->event = event;
  return it;
}

static void shut(gc_tcp *t, const char *why) {
  if (!t->bev) return;
  bufferevent_free(t->bev);
  t->bev = NULL;
  gc_tcp_item *it = new_item(t, GC_TCP_CLOSED);
  if (!it) return;   /* out of memory: the stream is closed all the same */
  snprintf(it->error, sizeof it->error, "%s", why);
  gc_loop_push(t->l, &it->item);
}

static void read_cb(struct bufferevent *bev, void *arg) {
  gc_tcp *t = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  size_t n = evbuffer_get_length(in);
  if (!n) return;
  gc_tcp_item *it = new_item(t, GC_TCP_DATA);
  char *p = it ? malloc(n) : NULL;
  if (!p) {
    free(it);
    return shut(t, "out of memory");   /* bytes cannot be dropped from a stream */
  }
  evbuffer_remove(in, p, n);
  it->data = p;
  it->len = n;
  gc_loop_push(t->l, &it->item);
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
  gc_tcp *t = arg;
  if (what & BEV_EVENT_CONNECTED) {
    t->connected = 1;
    bufferevent_set_timeouts(bev, NULL, NULL);
    gc_tcp_item *it = new_item(t, GC_TCP_OPEN);
    if (!it) return shut(t, "out of memory");
    gc_loop_push(t->l, &it->item);
    return;
  }
  if (what & BEV_EVENT_EOF) {
    read_cb(bev, arg);                    /* what came before the close */
    return shut(t, "");
  }
  if (what & BEV_EVENT_TIMEOUT) return shut(t, t->connected ? "timeout" : "connect timeout");
  char why[100];
  int e = EVUTIL_SOCKET_ERROR();
  snprintf(why, sizeof why, "%s%s", t->connected ? "" : "connect: ", evutil_socket_error_to_string(e));
  shut(t, why);
}

gc_tcp *gc_tcp_connect(gc_loop *l, const char *host, int port, uint64_t id, long timeout_ms,
                       const char **err) {
  struct sockaddr_storage ss;
  int sslen = (int)sizeof ss;
  char addr[128];
  if (!host || strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (port <= 0 || port > 65535) { *err = "bad port"; return NULL; }
  snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
  if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
    *err = "not a numeric address (names are not looked up: it would block the loop)";
    return NULL;
  }
  gc_tcp *t = calloc(1, sizeof *t);
  if (!t) { *err = "out of memory"; return NULL; }
  t->l = l;
  t->id = id;
  t->bev = bufferevent_socket_new(gc_loop_base(l), -1, BEV_OPT_CLOSE_ON_FREE);
  if (!t->bev) { free(t); *err = "out of memory"; return NULL; }
  bufferevent_setcb(t->bev, read_cb, NULL, event_cb, t);
  struct timeval tv = { (timeout_ms > 0 ? timeout_ms : 10000) / 1000,
                        ((timeout_ms > 0 ? timeout_ms : 10000) % 1000) * 1000 };
  bufferevent_set_timeouts(t->bev, NULL, &tv);
  bufferevent_enable(t->bev, EV_READ | EV_WRITE);
  if (bufferevent_socket_connect(t->bev, (struct sockaddr *)&ss, sslen) != 0) {
    /* refused at once (no such route): the CLOSED item says so, as for a later failure */
    shut(t, "connect failed");
  }
  return t;
}

int gc_tcp_write(gc_tcp *t, const void *p, size_t n) {
  if (!t->bev) return -1;
  return bufferevent_write(t->bev, p, n) == 0 ? 0 : -1;
}

int gc_tcp_is_open(const gc_tcp *t) { return t->bev != NULL; }

void gc_tcp_free(gc_tcp *t) {
  if (!t) return;
  if (t->bev) bufferevent_free(t->bev);
  free(t);
}
