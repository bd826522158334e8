/* http_guard.c: caps, deadlines and accept backoff for an evhttp server (http_guard.h). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "http_guard.h"

#define SWEEP_MS 100

typedef struct conn {
  struct bufferevent *bev;     /* evhttp's, and one reference of the guard's */
  uint64_t serial;             /* order of arrival: the oldest is evicted first */
  long long since;             /* ms: when it started waiting for its request */
  unsigned char addr[16];      /* the peer's address (IPv4 mapped into IPv6), once known */
  int known, busy, dropped;
} conn;

struct gc_guard {
  struct event_base *base;
  struct evconnlistener *lev;
  SSL_CTX *ssl;
  int max_conns, max_per_addr;
  long deadline_ms;
  conn **slots;                /* open addressing by the bufferevent's address */
  size_t nslots, used;         /* used: slots taken (connections, live or let go) */
  uint64_t serial;
  struct event *sweep, *kick, *resume;
  long backoff_ms;
  int held;                    /* tracked connections, closing ones too: the descriptors in use */
  int placed;                  /* open ones whose address is known: what the caps count */
  int full;                    /* accepting paused at the ceiling (1.5 x max_conns) */
  gc_guard_stats st;
};

static long long now_ms(const gc_guard *g) {
  struct timeval tv;
  event_base_gettimeofday_cached(g->base, &tv);
  return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- the table of connections, by their bufferevent ------------------------------------ */

static size_t slot_of(const gc_guard *g, const struct bufferevent *bev) {
  uint64_t h = (uint64_t)(uintptr_t)bev;
  h ^= h >> 17;
  h *= 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 29) & (g->nslots - 1);
}

static int table_put(gc_guard *g, conn *c) {
  if (g->used * 2 >= g->nslots) return -1;
  size_t i = slot_of(g, c->bev);
  while (g->slots[i]) i = (i + 1) & (g->nslots - 1);
  g->slots[i] = c;
  g->used++;
  return 0;
}

static conn *table_get(const gc_guard *g, const struct bufferevent *bev) {
  size_t i = slot_of(g, bev);
  while (g->slots[i]) {
    if (g->slots[i]->bev == bev) return g->slots[i];
    i = (i + 1) & (g->nslots - 1);
  }
  return NULL;
}

/* Linear probing's deletion: the entries after the hole that belong before it move up. */
static void table_del(gc_guard *g, size_t i) {
  size_t mask = g->nslots - 1;
  g->slots[i] = NULL;
  g->used--;
  for (size_t j = (i + 1) & mask; g->slots[j]; j = (j + 1) & mask) {
    size_t home = slot_of(g, g->slots[j]->bev);
    int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      g->slots[i] = g->slots[j];
      g->slots[j] = NULL;
      i = j;
    }
  }
}

/* ---- the sweep: connections evhttp let go, deadlines, caps ------------------------------ */

/* evhttp reads the end of the stream and lets the connection go itself. */
static void drop(gc_guard *g, conn *c) {
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
  c->dropped = 1;
  g->st.open--;
  if (c->known) g->placed--;
}

static void peer_of(conn *c) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0) return;
  memset(c->addr, 0, sizeof c->addr);
  if (ss.ss_family == AF_INET) {
    c->addr[10] = c->addr[11] = 0xff;
    memcpy(c->addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    memcpy(c->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
  } else {
    return;
  }
  c->known = 1;
}

static int held_by(const gc_guard *g, const unsigned char *addr) {
  int n = 0;
  for (size_t i = 0; i < g->nslots; i++) {
    conn *c = g->slots[i];
    if (c && c->known && !c->dropped && memcmp(c->addr, addr, 16) == 0) n++;
  }
  return n;
}

/* Over an address's cap: the newcomer goes (the connections it has keep their place). Over
 * the cap on all: the oldest waiting connection of the address that holds the most. */
static void enforce(gc_guard *g, conn *fresh) {
  const unsigned char *victim = NULL;
  if (held_by(g, fresh->addr) > g->max_per_addr) {
    g->st.evicted++;
    drop(g, fresh);
    return;
  }
  /* the connections of this turn not placed yet are not counted: each is placed (or closed
   * over its address's cap) in turn, so a burst of newcomers never evicts the ones before */
  if (g->placed > g->max_conns) {
    int most = 0;
    for (size_t i = 0; i < g->nslots; i++) {     /* quadratic, but only over the cap */
      conn *c = g->slots[i];
      if (!c || !c->known || c->dropped) continue;
      int n = held_by(g, c->addr);
      if (n > most) {
        most = n;
        victim = c->addr;
      }
    }
  }
  if (!victim) return;
  conn *oldest = NULL;
  for (size_t i = 0; i < g->nslots; i++) {
    conn *c = g->slots[i];
    if (c && c->known && !c->busy && !c->dropped && memcmp(c->addr, victim, 16) == 0 &&
        (!oldest || c->serial < oldest->serial))
      oldest = c;
  }
  if (!oldest) oldest = fresh;
  g->st.evicted++;
  drop(g, oldest);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what;
  gc_guard *g = arg;
  long long now = now_ms(g);
  for (size_t i = 0; i < g->nslots;) {
    conn *c = g->slots[i];
    if (!c) {
      i++;
      continue;
    }
    bufferevent_data_cb rd, wr;
    bufferevent_event_cb ev;
    void *cbarg;
    bufferevent_getcb(c->bev, &rd, &wr, &ev, &cbarg);
    if (!rd && !wr && !ev) {                     /* evhttp let it go: the last reference is ours */
      if (!c->dropped) g->st.open--;
      if (!c->dropped && c->known) g->placed--;
      g->held--;
      bufferevent_decref(c->bev);
      free(c);
      table_del(g, i);                           /* (an entry may move into slot i: look again) */
      continue;
    }
    if (!c->known && !c->dropped) {
      peer_of(c);
      if (c->known) {
        g->placed++;
        enforce(g, c);
      }
    }
    if (!c->busy && !c->dropped && now - c->since > g->deadline_ms) {
      g->st.late++;
      drop(g, c);
    }
    i++;
  }
  if (g->full && g->held < g->max_conns && !g->st.paused) {   /* room again */
    g->full = 0;
    evconnlistener_enable(g->lev);
  }
}

static struct bufferevent *new_bev(struct event_base *base, void *arg) {
  gc_guard *g = arg;
  struct bufferevent *bev = NULL;
  if (g->ssl) {
    SSL *ssl = SSL_new(g->ssl);
    if (!ssl) return NULL;
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  } else {
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  }
  if (!bev) return NULL;
  conn *c = calloc(1, sizeof *c);
  if (!c) return bev;                            /* untracked: no cap, no deadline */
  c->bev = bev;
  c->serial = ++g->serial;
  c->since = now_ms(g);
  if (table_put(g, c) != 0) {
    free(c);
    return bev;
  }
  bufferevent_incref(bev);
  g->st.open++;
  g->held++;
  g->st.accepted++;
  g->backoff_ms = 0;
  /* the caps are enforced once evhttp has given it its socket: later in this turn */
  event_active(g->kick, EV_TIMEOUT, 0);
  if (g->lev && g->held >= g->max_conns + g->max_conns / 2 && !g->full) {
    g->full = 1;                                 /* a hard ceiling on descriptors, until a sweep */
    evconnlistener_disable(g->lev);
  }
  return bev;
}

/* ---- accept backoff ------------------------------------------------------------------ */

/* evconnlistener's error callback gets evhttp's argument, not ours: the guards are found
 * by their listener (a few servers per process at most) */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static gc_guard *registry[64];

static gc_guard *guard_of(struct evconnlistener *lev) {
  gc_guard *g = NULL;
  pthread_mutex_lock(&registry_lock);
  for (size_t i = 0; i < sizeof registry / sizeof *registry; i++)
    if (registry[i] && registry[i]->lev == lev) g = registry[i];
  pthread_mutex_unlock(&registry_lock);
  return g;
}

static void on_resume(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what;
  gc_guard *g = arg;
  g->st.paused = 0;
  if (!g->full) evconnlistener_enable(g->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg) {
  (void)arg;
  int err = EVUTIL_SOCKET_ERROR();
  gc_guard *g = guard_of(lev);
  if (!g) return;
  g->st.accept_errors++;
  if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) return;  /* (a client's reset) */
  g->backoff_ms = g->backoff_ms ? g->backoff_ms * 2 : 50;
  if (g->backoff_ms > 1000) g->backoff_ms = 1000;
  evconnlistener_disable(lev);
  g->st.paused = 1;
  struct timeval tv = { g->backoff_ms / 1000, (g->backoff_ms % 1000) * 1000 };
  event_add(g->resume, &tv);
}

/* ---- the guard ------------------------------------------------------------------------ */

gc_guard *gc_guard_new(struct event_base *base, struct evhttp *http, struct evhttp_bound_socket *bound,
                       SSL_CTX *ssl, const gc_guard_opts *o) {
  gc_guard *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->base = base;
  g->ssl = ssl;
  g->max_conns = o && o->max_conns > 0 ? o->max_conns : 0;
  if (!g->max_conns) {
    struct rlimit rl;
    long lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 2048;
    g->max_conns = (int)(lim / 2 < 1024 ? lim / 2 : 1024);
    if (g->max_conns < 8) g->max_conns = 8;
  }
  g->max_per_addr = o && o->max_per_addr > 0 ? o->max_per_addr : g->max_conns / 4;
  if (g->max_per_addr < 1) g->max_per_addr = 1;
  g->deadline_ms = o && o->deadline_ms > 0 ? o->deadline_ms : 10000;
  /* room for the cap, the connections accepted over it and those let go before a sweep */
  g->nslots = 256;
  while (g->nslots < (size_t)g->max_conns * 8) g->nslots *= 2;
  g->slots = calloc(g->nslots, sizeof *g->slots);
  g->resume = event_new(base, -1, 0, on_resume, g);
  g->sweep = event_new(base, -1, EV_PERSIST, on_sweep, g);
  g->kick = event_new(base, -1, 0, on_sweep, g);
  if (!g->slots || !g->resume || !g->sweep || !g->kick) goto fail;
  struct timeval every = { 0, SWEEP_MS * 1000 };
  event_add(g->sweep, &every);
  g->lev = bound ? evhttp_bound_socket_get_listener(bound) : NULL;
  if (g->lev) {
    int placed = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < sizeof registry / sizeof *registry && !placed; i++)
      if (!registry[i]) registry[i] = g, placed = 1;
    pthread_mutex_unlock(&registry_lock);
    if (placed) evconnlistener_set_error_cb(g->lev, on_accept_error);
  }
  evhttp_set_bevcb(http, new_bev, g);
  return g;
fail:
  free(g->slots);
  if (g->resume) event_free(g->resume);
  if (g->sweep) event_free(g->sweep);
  if (g->kick) event_free(g->kick);
  free(g);
  return NULL;
}

static conn *conn_of(gc_guard *g, struct evhttp_request *req) {
  struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;
  struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
  return bev ? table_get(g, bev) : NULL;
}

void gc_guard_busy(gc_guard *g, struct evhttp_request *req) {
  conn *c = g ? conn_of(g, req) : NULL;
  if (c) c->busy = 1;
}

void gc_guard_idle(gc_guard *g, struct evhttp_request *req) {
  conn *c = g ? conn_of(g, req) : NULL;
  if (!c) return;
  c->busy = 0;
  c->since = now_ms(g);
}

void gc_guard_get_stats(const gc_guard *g, gc_guard_stats *out) { *out = g->st; }

void gc_guard_free(gc_guard *g) {
  if (!g) return;
  pthread_mutex_lock(&registry_lock);
  for (size_t i = 0; i < sizeof registry / sizeof *registry; i++)
    if (registry[i] == g) registry[i] = NULL;
  pthread_mutex_unlock(&registry_lock);
  if (g->lev) evconnlistener_set_error_cb(g->lev, NULL);
  for (size_t i = 0; i < g->nslots; i++) {
    conn *c = g->slots[i];
    if (!c) continue;
    bufferevent_decref(c->bev);   /* evhttp_free lets go of the rest */
    free(c);
  }
  event_free(g->resume);
  event_free(g->sweep);
  event_free(g->kick);
  free(g->slots);
  free(g);
}
