#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "http_client.h"

#define POOL_MAX 64  /* idle easy handles kept for reuse */

typedef struct sockinfo {
  curl_socket_t fd;
  struct event *ev;
  gc_http *h;
  struct sockinfo *prev, *next;
} sockinfo;

struct gc_http {
  gc_loop *loop;
  CURLM *multi;
  struct event *timer;
  int running;
  gc_xfer *flight;      /* doubly linked, in flight (inside libcurl or waiting) */
  size_t nflight;
  gc_xfer *qhead, *qtail;  /* waiting for room inside libcurl */
  long active, max_active;
  sockinfo *socks;
  CURL *pool[POOL_MAX];
  int npool;
};

static const char *const hx_names[] = {
  "ok", "timeout", "connect", "tls", "too_large", "transport", "cancelled",
};

const char *gc_hx_code_name(gc_hx_code c) {
  return (unsigned)c < sizeof hx_names / sizeof *hx_names ? hx_names[c] : "transport";
}

/* ---- the multi socket dance (curl's hiperfifo) --------------------------------------- */

static void check_done(gc_http *h);

static void on_socket(evutil_socket_t fd, short what, void *arg) {
  gc_http *h = arg;
  int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  curl_multi_socket_action(h->multi, fd, action, &h->running);
  check_done(h);
  if (h->running <= 0) evtimer_del(h->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what;
  gc_http *h = arg;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->running);
  check_done(h);
}

/* CURLMOPT_TIMERFUNCTION: only arm our timer; the action runs from libevent */
static int timer_cb(CURLM *m, long timeout_ms, void *arg) {
  (void)m;
  gc_http *h = arg;
  if (timeout_ms < 0) {
    evtimer_del(h->timer);
  } else {
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    evtimer_add(h->timer, &tv);
  }
  return 0;
}

static void sock_remove(gc_http *h, sockinfo *s) {
  if (s->prev) s->prev->next = s->next;
  else h->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  event_free(s->ev);
  free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch the sockets libcurl asks for */
static int sock_cb(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp) {
  (void)e;
  gc_http *h = arg;
  sockinfo *s = sockp;
  if (what == CURL_POLL_REMOVE) {
    if (s) sock_remove(h, s);
    return 0;
  }
  short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->fd = fd;
    s->h = h;
    s->next = h->socks;
    if (h->socks) h->socks->prev = s;
    h->socks = s;
    curl_multi_assign(h->multi, fd, s);
  } else {
    event_free(s->ev);
  }
  s->ev = event_new(gc_loop_base(h->loop), fd, kind, on_socket, h);
  if (!s->ev || event_add(s->ev, NULL) != 0) return -1;
  return 0;
}

/* ---- transfers ----------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  gc_xfer *x = arg;
  size_t len = size * n;
  if (x->body.len + len > x->max_body) {
    x->code = GC_HX_TOO_LARGE;
    return 0;  /* libcurl stops the transfer */
  }
  gc_buf_add(&x->body, p, len);
  return x->body.oom ? 0 : len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  gc_xfer *x = arg;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) x->head.len = 0;  /* 1xx, then the real one */
  gc_buf_add(&x->head, p, len);
  return x->head.oom ? 0 : len;
}

/* The body of a `once` request, handed out forward only. */
static size_t on_read(char *p, size_t size, size_t n, void *arg) {
  gc_xfer *x = arg;
  size_t body = x->req_body.len ? x->req_body.len - 1 : 0;  /* without our NUL */
  size_t left = body - x->req_off, room = size * n;
  if (room > left) room = left;
  memcpy(p, x->req_body.p + x->req_off, room);
  x->req_off += room;
  return room;
}

/* ... and never rewound: libcurl's own retry on a dead reused connection then fails
 * (CURLE_SEND_FAIL_REWIND) rather than sending an action a second time */
static int on_seek(void *arg, curl_off_t off, int origin) {
  (void)arg; (void)off; (void)origin;
  return CURL_SEEKFUNC_CANTSEEK;
}

static void unlink_flight(gc_http *h, gc_xfer *x) {
  if (x->prev) x->prev->next = x->next;
  else h->flight = x->next;
  if (x->next) x->next->prev = x->prev;
  x->prev = x->next = NULL;
  h->nflight--;
}

static void release_easy(gc_http *h, gc_xfer *x) {
  CURL *e = x->easy;
  x->easy = NULL;
  if (!e) return;
  if (x->added) {
    curl_multi_remove_handle(h->multi, e);
    x->added = 0;
    h->active--;
  } else {  /* still waiting: out of the queue */
    gc_xfer **p = &h->qhead, *prev = NULL;
    while (*p && *p != x) { prev = *p; p = &(*p)->qnext; }
    if (*p) {
      *p = x->qnext;
      if (h->qtail == x) h->qtail = prev;
    }
    x->qnext = NULL;
  }
  if (h->npool < POOL_MAX) {
    curl_easy_reset(e);
    h->pool[h->npool++] = e;
  } else {
    curl_easy_cleanup(e);
  }
  curl_slist_free_all(x->hdrs);
  x->hdrs = NULL;
  gc_buf_free(&x->req_body);
}

static gc_hx_code classify(CURLcode rc) {
  switch (rc) {
    case CURLE_OK: return GC_HX_OK;
    case CURLE_OPERATION_TIMEDOUT: return GC_HX_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return GC_HX_CONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER: return GC_HX_TLS;
    case CURLE_SEND_FAIL_REWIND: return GC_HX_TRANSPORT;  /* see on_seek */
    default: return GC_HX_TRANSPORT;
  }
}

/* Move waiting transfers into libcurl while there is room. */
static void promote(gc_http *h) {
  while (h->qhead && h->active < h->max_active) {
    gc_xfer *x = h->qhead;
    h->qhead = x->qnext;
    if (!h->qhead) h->qtail = NULL;
    x->qnext = NULL;
    if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
      x->code = GC_HX_TRANSPORT;
      strcpy(x->error, "libcurl refused the request");
      unlink_flight(h, x);
      release_easy(h, x);
      gc_loop_push(h->loop, &x->item);
      continue;
    }
    x->added = 1;
    h->active++;
  }
}

static void check_done(gc_http *h) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    gc_xfer *x = NULL;
    CURL *e = m->easy_handle;
    CURLcode rc = m->data.result;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    if (!x) continue;
    long status = 0, reqsize = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &x->seconds);
    x->status = status;
    x->sent = reqsize > 0;
    if (x->code == GC_HX_OK) x->code = classify(rc);
    if (x->code == GC_HX_TOO_LARGE) strcpy(x->error, "response body is larger than allowed");
    else if (rc == CURLE_SEND_FAIL_REWIND) {
      snprintf(x->error, sizeof x->error, "the connection closed before an answer; not sent again, "
               "as this request must not run twice");
      x->sent = 1;
    }
    else if (x->code != GC_HX_OK && !x->error[0])
      snprintf(x->error, sizeof x->error, "%s", curl_easy_strerror(rc));
    if (x->code != GC_HX_OK) x->status = 0;
    unlink_flight(h, x);
    release_easy(h, x);
    gc_loop_push(h->loop, &x->item);
  }
  promote(h);
}

void gc_xfer_free(gc_xfer *x) {
  if (!x) return;
  gc_buf_free(&x->head);
  gc_buf_free(&x->body);
  gc_buf_free(&x->req_body);
  curl_slist_free_all(x->hdrs);
  free(x);
}

static void drop_xfer(gc_io_item *it) { gc_xfer_free((gc_xfer *)(void *)it); }

/* ---- the client ---------------------------------------------------------------------- */

gc_http *gc_http_new(gc_loop *loop, const gc_http_opts *o) {
  static int global_done;
  if (!global_done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    global_done = 1;
  }
  gc_http *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->loop = loop;
  h->multi = curl_multi_init();
  h->timer = evtimer_new(gc_loop_base(loop), on_timer, h);
  if (!h->multi || !h->timer) {
    gc_http_free(h);
    return NULL;
  }
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  if (o && o->max_host_connections > 0)
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, o->max_host_connections);
  if (o && o->max_total_connections > 0)
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, o->max_total_connections);
  h->max_active = (o && o->max_active > 0) ? o->max_active : 128;
  return h;
}

void gc_http_free(gc_http *h) {
  if (!h) return;
  while (h->flight) {
    gc_xfer *x = h->flight;
    unlink_flight(h, x);
    release_easy(h, x);
    gc_xfer_free(x);
  }
  for (int i = 0; i < h->npool; i++) curl_easy_cleanup(h->pool[i]);
  if (h->multi) curl_multi_cleanup(h->multi);
  while (h->socks) sock_remove(h, h->socks);  /* any libcurl did not hand back */
  if (h->timer) event_free(h->timer);
  free(h);
}

size_t gc_http_in_flight(const gc_http *h) { return h->nflight; }

#define SETOPT(e, opt, v) ok = ok && curl_easy_setopt((e), (opt), (v)) == CURLE_OK

int gc_http_start(gc_http *h, const gc_http_req *r, uint64_t id, const char **err) {
  gc_xfer *x = calloc(1, sizeof *x);
  if (!x) { *err = "out of memory"; return -1; }
  x->item.kind = GC_IO_RESPONSE;
  x->item.drop = drop_xfer;
  x->id = id;
  x->owner = h;
  x->max_body = r->max_body ? r->max_body : (size_t)64 << 20;
  gc_buf_init(&x->head);
  gc_buf_init(&x->body);
  gc_buf_init(&x->req_body);
  CURL *e = h->npool ? h->pool[--h->npool] : curl_easy_init();
  if (!e) { gc_xfer_free(x); *err = "out of memory"; return -1; }
  x->easy = e;
  int ok = 1;
  SETOPT(e, CURLOPT_URL, r->url);
  SETOPT(e, CURLOPT_PRIVATE, (char *)x);
  SETOPT(e, CURLOPT_NOSIGNAL, 1L);
  SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
  SETOPT(e, CURLOPT_TCP_NODELAY, 1L);
  SETOPT(e, CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(e, CURLOPT_WRITEDATA, x);
  SETOPT(e, CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(e, CURLOPT_HEADERDATA, x);
  SETOPT(e, CURLOPT_ERRORBUFFER, x->error);
  if (r->cafile) SETOPT(e, CURLOPT_CAINFO, r->cafile);
  if (r->timeout_ms > 0) SETOPT(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  if (r->connect_timeout_ms > 0) SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
  if (r->fresh_connect) SETOPT(e, CURLOPT_FRESH_CONNECT, 1L);
  const char *m = r->method ? r->method : "GET";
  if (strcmp(m, "GET") == 0) {
    SETOPT(e, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(m, "HEAD") == 0) {
    SETOPT(e, CURLOPT_NOBODY, 1L);
  } else {
    if (r->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
      /* our copy: the caller's buffer may go away; an empty body still sends Content-Length */
      gc_buf_add(&x->req_body, r->body ? r->body : "", r->body ? r->body_len : 0);
      gc_buf_addc(&x->req_body, 0);
      if (x->req_body.oom) ok = 0;
      if (r->once && r->body_len) {
        SETOPT(e, CURLOPT_POST, 1L);
        SETOPT(e, CURLOPT_READFUNCTION, on_read);
        SETOPT(e, CURLOPT_READDATA, x);
        SETOPT(e, CURLOPT_SEEKFUNCTION, on_seek);
        SETOPT(e, CURLOPT_SEEKDATA, x);
        SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
      } else {
        SETOPT(e, CURLOPT_POSTFIELDSIZE, (long)(r->body ? r->body_len : 0));
        SETOPT(e, CURLOPT_POSTFIELDS, x->req_body.p);
      }
    } else {
      SETOPT(e, CURLOPT_HTTPGET, 1L);
    }
    if (strcmp(m, "POST") != 0) SETOPT(e, CURLOPT_CUSTOMREQUEST, m);
  }
  /* no "Expect: 100-continue" round trip for larger bodies */
  struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
  for (size_t i = 0; hl && i < r->nheaders; i++) {
    struct curl_slist *n = curl_slist_append(hl, r->headers[i]);
    if (!n) { curl_slist_free_all(hl); hl = NULL; }
    else hl = n;
  }
  if (!hl) ok = 0;
  x->hdrs = hl;
  SETOPT(e, CURLOPT_HTTPHEADER, hl);
  if (!ok) {
    *err = "could not set up the request (bad option or out of memory)";
    curl_easy_cleanup(e);
    x->easy = NULL;
    gc_xfer_free(x);
    return -1;
  }
  if (h->active < h->max_active) {
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
      *err = "libcurl refused the request";
      curl_easy_cleanup(e);
      x->easy = NULL;
      gc_xfer_free(x);
      return -1;
    }
    x->added = 1;
    h->active++;
  } else {
    if (h->qtail) h->qtail->qnext = x;
    else h->qhead = x;
    h->qtail = x;
  }
  x->next = h->flight;
  if (h->flight) h->flight->prev = x;
  h->flight = x;
  h->nflight++;
  return 0;
}

int gc_http_cancel(gc_http *h, uint64_t id) {
  for (gc_xfer *x = h->flight; x; x = x->next) {
    if (x->id != id) continue;
    long reqsize = 0;
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &reqsize);
    x->sent = reqsize > 0;
    unlink_flight(h, x);
    release_easy(h, x);
    x->code = GC_HX_CANCELLED;
    x->status = 0;
    strcpy(x->error, "cancelled");
    gc_loop_push(h->loop, &x->item);
    promote(h);
    return 0;
  }
  return -1;
}
