/* http_client.h: outbound HTTP with libcurl's multi socket interface on the I/O loop (the
 * pattern of curl's hiperfifo example): many requests in flight from one thread over reused
 * keep-alive connections. A finished request is queued on the loop as a gc_xfer; no caller
 * code runs inside a libcurl callback. */
#ifndef GC_HTTP_CLIENT_H
#define GC_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ioloop.h"

typedef struct gc_http gc_http;

typedef struct {
  long max_host_connections;  /* per host; 0 = libcurl's default (no limit) */
  long max_total_connections; /* 0 = no limit */
  long max_active;            /* transfers inside libcurl at once; the rest wait their turn
                                 in a queue (libcurl's handle removal is linear in the handles
                                 it holds); 0 = 128 */
} gc_http_opts;

typedef struct {
  const char *method;          /* "GET", "POST", "DELETE", ... */
  const char *url;
  const char *const *headers;  /* "Name: value" lines */
  size_t nheaders;
  const char *body;            /* may be NULL; copied */
  size_t body_len;
  long timeout_ms;             /* whole request; 0 = none */
  long connect_timeout_ms;     /* 0 = libcurl's default */
  const char *cafile;          /* CA bundle to verify the peer with; NULL = system's */
  size_t max_body;             /* response bytes kept at most; more fails the request */
  int fresh_connect;           /* a new connection (a retry after 503 wants one) */
  int once;                    /* must not be sent twice: libcurl re-sends a request whose
                                  reused connection closed before any answer; with `once` the
                                  body cannot be rewound, so that fails instead */
} gc_http_req;

/* Why a request failed below HTTP, or GC_HX_OK. */
typedef enum {
  GC_HX_OK = 0,
  GC_HX_TIMEOUT,     /* connect or total timeout */
  GC_HX_CONNECT,     /* refused, unreachable, name not found */
  GC_HX_TLS,         /* handshake or certificate verification */
  GC_HX_TOO_LARGE,   /* response body over max_body */
  GC_HX_TRANSPORT,   /* anything else: reset, empty reply, ... */
  GC_HX_CANCELLED
} gc_hx_code;

const char *gc_hx_code_name(gc_hx_code c);

/* A finished request, queued on the loop (kind GC_IO_RESPONSE). */
typedef struct gc_xfer {
  gc_io_item item;
  uint64_t id;
  long status;              /* HTTP status, 0 if none arrived */
  gc_hx_code code;
  int sent;                 /* request bytes went out: a failed request may have acted */
  double seconds;           /* total time */
  char error[256];          /* libcurl's words when code != GC_HX_OK */
  gc_buf head;              /* the last response header block, raw */
  gc_buf body;
  /* private */
  void *easy;
  struct curl_slist *hdrs;
  gc_buf req_body;
  size_t max_body;
  size_t req_off;           /* bytes of req_body handed to libcurl (once mode) */
  gc_http *owner;
  int added;                /* inside libcurl (else waiting its turn) */
  struct gc_xfer *prev, *next;  /* in flight */
  struct gc_xfer *qnext;        /* waiting */
} gc_xfer;

gc_http *gc_http_new(gc_loop *loop, const gc_http_opts *o);
/* Frees the client; requests in flight are dropped unqueued. */
void gc_http_free(gc_http *h);

/* Start a request with the caller's id. 0, or -1 and *err (static text). */
int gc_http_start(gc_http *h, const gc_http_req *r, uint64_t id, const char **err);
/* Cancel a request in flight: it is queued at once with GC_HX_CANCELLED. 0 if found. */
int gc_http_cancel(gc_http *h, uint64_t id);
size_t gc_http_in_flight(const gc_http *h);

/* Free a gc_xfer taken from the loop. */
void gc_xfer_free(gc_xfer *x);

#endif
