/* http_server.h: the inbound HTTP listener on the I/O loop, libevent's evhttp: callbacks
 * from the calling service (and, in the emulator, Graph's API). Limits for hostile clients
 * (body size, header size, read/write timeouts, connection count), TLS from a certificate
 * and key with libevent's OpenSSL bufferevents, and files served from one folder (files.h)
 * without queueing anything. Every other request is queued on the loop as a gc_sreq, to be
 * answered by whoever takes it, now or later. */
#ifndef GC_HTTP_SERVER_H
#define GC_HTTP_SERVER_H

#include <stddef.h>

#include "http_guard.h"
#include "ioloop.h"

typedef struct gc_server gc_server;

typedef struct {
  const char *host;          /* address to bind; "127.0.0.1" if NULL */
  int port;                  /* 0: any free port (see gc_server_port) */
  const char *cert_file;     /* PEM chain and key: serve TLS */
  const char *key_file;
  size_t max_body;           /* larger bodies get 413; 0 = 4 MiB */
  size_t max_headers;        /* 0 = 16 KiB */
  long timeout_ms;           /* a connection idle this long while reading or writing is
                                dropped (slow clients); 0 = 10 s */
  int max_conns;             /* open connections (http_guard.h); 0: half the descriptor limit,
                                at most 1024 */
  int max_per_addr;          /* of one client address; 0: a quarter of max_conns */
  long deadline_ms;          /* a whole request must be read within this; 0 = 10 s */
  const char *files_dir;     /* serve GET/HEAD files_prefix... from this folder */
  const char *files_prefix;  /* e.g. "/prompts/" */
  int tag;                   /* the caller's name for this server, carried by its requests */
} gc_server_opts;

/* NULL and *err (static text) on failure: bad address, port in use, unreadable cert/key. */
gc_server *gc_server_new(gc_loop *l, const gc_server_opts *o, const char **err);
int gc_server_port(const gc_server *s);
/* What the guard counted: connections open, accepted, evicted, late, accept errors. */
void gc_server_stats(const gc_server *s, gc_guard_stats *out);
/* Stops listening; requests still waiting for an answer get 503. */
void gc_server_free(gc_server *s);

typedef struct gc_sreq gc_sreq;

/* The request's parts; valid until it is answered (the strings and body are the server's). */
const char *gc_sreq_method(const gc_sreq *r);
const char *gc_sreq_uri(const gc_sreq *r);
const char *gc_sreq_header(const gc_sreq *r, const char *name);
/* Call fn for every header, in order. */
void gc_sreq_headers(const gc_sreq *r, void (*fn)(void *, const char *, const char *), void *arg);
const char *gc_sreq_body(gc_sreq *r, size_t *len);
void gc_sreq_peer(const gc_sreq *r, const char **host, int *port);
int gc_sreq_pending(const gc_sreq *r);  /* not answered yet, and its server is still there */
int gc_sreq_tag(const gc_sreq *r);      /* the tag of the server it came to */

/* Answer (headers as "Name", "value" pairs). -1 if it was answered already or is gone. */
int gc_sreq_respond(gc_sreq *r, int status, const char *const *headers, size_t npairs,
                    const char *body, size_t len);
/* Close the connection without an answer (a fault the emulator can play). */
int gc_sreq_reset(gc_sreq *r);
/* Free a request taken from the loop; one never answered gets 500. */
void gc_sreq_free(gc_sreq *r);

/* The queue item of a request is its first member. */
gc_sreq *gc_sreq_of_item(gc_io_item *it);

#endif
