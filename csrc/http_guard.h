/* http_guard.h: what a listener lets clients hold. An evhttp server on its own drops a client
 * only when one read or write stalls for its timeout, so a client sending a byte every few
 * seconds is never dropped, and a thousand of them exhaust the descriptors: accept() then
 * fails on every turn of the loop. The guard stands between evhttp and its connections:
 *
 * - a cap on open connections and a smaller one per client address: a newcomer over its
 *   address's cap is closed, and over the cap on all, the oldest waiting connection of the
 *   address that holds the most, in the same turn of the loop, so one client cannot crowd the
 *   others out; and a
 *   hard ceiling of 1.5 times the cap on the descriptors held (closing ones included), where
 *   accepting pauses until connections are let go;
 * - a deadline for each request: from the connection's start, or the answer to its previous
 *   request, to the whole request (headers and body) being read; a client that drips, or
 *   sits idle, is dropped then;
 * - accept paused when descriptors run out (EMFILE, ENFILE, ENOBUFS, ENOMEM) and resumed
 *   after a backoff (50 ms, doubling to 1 s), instead of failing on every turn of the loop.
 *
 * The guard makes each connection's bufferevent (as evhttp would) and holds a reference to it:
 * when evhttp lets go of a connection, the bufferevent lives on, without callbacks, until the
 * guard's sweep (every 100 ms) sees that, counts the connection gone and drops the last
 * reference (which closes the socket). The same sweep enforces the deadlines. (A bufferevent
 * filter would tell at once when it is freed, but libevent 2.1's filter does not pass on
 * output written before its writing is enabled, which is how evhttp answers.) */
#ifndef GC_HTTP_GUARD_H
#define GC_HTTP_GUARD_H

#include <event2/http.h>
#include <openssl/ssl.h>

typedef struct gc_guard gc_guard;

typedef struct {
  int max_conns;        /* open connections; 0: half the descriptor limit, at most 1024 */
  int max_per_addr;     /* open connections of one client address; 0: a quarter of max_conns */
  long deadline_ms;     /* a request must be read within this; 0: 10 s */
} gc_guard_opts;

typedef struct {
  long long open;            /* connections open now (not counting those being closed) */
  long long accepted;        /* connections accepted since the start */
  long long evicted;         /* closed over a cap */
  long long late;            /* closed at their deadline */
  long long accept_errors;   /* accept() failures for want of descriptors or memory */
  int paused;                /* accepting is paused now */
} gc_guard_stats;

/* Guard the connections of http, bound at bound; ssl: serve TLS with it (or NULL). Installs
 * evhttp's bufferevent callback. NULL when out of memory. */
gc_guard *gc_guard_new(struct event_base *base, struct evhttp *http, struct evhttp_bound_socket *bound,
                       SSL_CTX *ssl, const gc_guard_opts *o);
/* A whole request was read: its connection's deadline stops while the bot answers it. */
void gc_guard_busy(gc_guard *g, struct evhttp_request *req);
/* The request is being answered: the deadline of the connection's next request starts. */
void gc_guard_idle(gc_guard *g, struct evhttp_request *req);
void gc_guard_get_stats(const gc_guard *g, gc_guard_stats *out);
/* Before evhttp_free: connections closed after it do not come back to the guard. */
void gc_guard_free(gc_guard *g);

#endif
