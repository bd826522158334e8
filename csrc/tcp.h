/* tcp.h: a plain TCP stream on the loop (ioloop.h), for protocols other than HTTP (Redis).
 * What happens to it (connected, bytes read, closed) is queued as items; writes are
 * buffered by libevent and go out as the socket takes them; TLS with OpenSSL bufferevents.
 * No protocol here: bytes only. Standalone only. */
#ifndef GC_TCP_H
#define GC_TCP_H

#include <stddef.h>
#include <stdint.h>

#include "ioloop.h"

typedef enum { GC_TCP_OPEN, GC_TCP_DATA, GC_TCP_CLOSED } gc_tcp_event;

typedef struct {
  gc_io_item item;   /* kind GC_IO_STREAM */
  uint64_t id;       /* the stream's, as given to gc_tcp_connect */
  int event;         /* gc_tcp_event */
  char *data;        /* GC_TCP_DATA: the bytes read (malloc'd, len bytes) */
  size_t len;
  char error[128];   /* GC_TCP_CLOSED: why ("" for an orderly close by the peer) */
} gc_tcp_item;

typedef struct gc_tcp gc_tcp;

/* Connect to a numeric address (IPv4 or IPv6; "localhost" is 127.0.0.1): no name lookup,
 * which would block the loop. NULL with *err set if it cannot even start; otherwise the
 * outcome arrives as an OPEN or CLOSED item. timeout_ms bounds the connect (0: 10 s). */
gc_tcp *gc_tcp_connect(gc_loop *l, const char *host, int port, uint64_t id, long timeout_ms,
                       const char **err);

typedef struct {
  const char *cafile;       /* PEM bundle the server's certificate must chain to; NULL: the system's */
  const char *servername;   /* the name its certificate must carry (and SNI); NULL: the address */
} gc_tcp_tls;

/* The same over TLS (1.2 or later), the server's certificate verified: its chain, and its
 * name or address. OPEN comes once the handshake is done; a failed one closes with why
 * ("TLS: certificate verify failed", ...). */
gc_tcp *gc_tcp_connect_tls(gc_loop *l, const char *host, int port, uint64_t id, long timeout_ms,
                           const gc_tcp_tls *tls, const char **err);
/* Queue bytes for the peer; -1 if the stream is closed or out of memory. */
int gc_tcp_write(gc_tcp *t, const void *p, size_t n);
/* Close now (no CLOSED item follows) and free. */
void gc_tcp_free(gc_tcp *t);
int gc_tcp_is_open(const gc_tcp *t);

#endif
