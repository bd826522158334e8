#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "ioloop.h"

#define MAX_SIGNALS 8

typedef struct child {
  void (*close)(void *);
  void *arg;
  struct child *next;
} child;

struct gc_loop {
  child *children;
  struct event_base *base;
  struct evdns_base *dns;      /* made at the first name looked up */
  struct event *wake;          /* bounds a step's wait */
  struct event *sig[MAX_SIGNALS];
  int nsig;
  gc_io_item *head, *tail;
};

static void wake_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what; (void)arg;  /* firing is the point: the step returns */
}

gc_loop *gc_loop_new(void) {
  /* a peer that hangs up must be an error on the write, not the end of the process */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  gc_loop *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->base = event_base_new();
  if (l->base) l->wake = evtimer_new(l->base, wake_cb, l);
  if (!l->base || !l->wake) {
    gc_loop_free(l);
    return NULL;
  }
  return l;
}

void gc_loop_free(gc_loop *l) {
  if (!l) return;
  while (l->children) {
    child *c = l->children;
    l->children = c->next;
    c->close(c->arg);
    free(c);
  }
  if (l->dns) {   /* lookups still going are cancelled; their callbacks run once more, and free them */
    evdns_base_free(l->dns, 1);
    event_base_loop(l->base, EVLOOP_NONBLOCK);
  }
  gc_io_item *it;
  while ((it = gc_loop_pop(l)) != NULL) it->drop(it);
  for (int i = 0; i < l->nsig; i++) event_free(l->sig[i]);
  if (l->wake) event_free(l->wake);
  if (l->base) event_base_free(l->base);
  free(l);
}

struct event_base *gc_loop_base(gc_loop *l) { return l->base; }

/* libevent's asynchronous resolver: the system's name servers and hosts file, read once */
struct evdns_base *gc_loop_dns(gc_loop *l) {
  if (!l->dns) l->dns = evdns_base_new(l->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
  if (!l->dns) {   /* no resolv.conf: the hosts file alone */
    l->dns = evdns_base_new(l->base, 0);
    if (l->dns) evdns_base_load_hosts(l->dns, NULL);
  }
  return l->dns;
}

int gc_loop_adopt(gc_loop *l, void (*close)(void *), void *arg) {
  child *c = malloc(sizeof *c);
  if (!c) return -1;
  c->close = close;
  c->arg = arg;
  c->next = l->children;
  l->children = c;
  return 0;
}

void gc_loop_forget(gc_loop *l, void *arg) {
  for (child **p = &l->children; *p; p = &(*p)->next) {
    if ((*p)->arg != arg) continue;
    child *c = *p;
    *p = c->next;
    free(c);
    return;
  }
}

int gc_loop_step(gc_loop *l, int64_t timeout_ms) {
  if (l->head || timeout_ms == 0) return event_base_loop(l->base, EVLOOP_NONBLOCK) < 0 ? -1 : 0;
  if (timeout_ms > 0) {
    struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000 };
    evtimer_add(l->wake, &tv);
  }
  int r = event_base_loop(l->base, EVLOOP_ONCE);
  evtimer_del(l->wake);
  return r < 0 ? -1 : 0;
}

void gc_loop_push(gc_loop *l, gc_io_item *it) {
  it->next = NULL;
  if (l->tail) l->tail->next = it;
  else l->head = it;
  l->tail = it;
}

gc_io_item *gc_loop_peek(gc_loop *l) { return l->head; }

gc_io_item *gc_loop_pop(gc_loop *l) {
  gc_io_item *it = l->head;
  if (!it) return NULL;
  l->head = it->next;
  if (!l->head) l->tail = NULL;
  it->next = NULL;
  return it;
}

double gc_loop_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void drop_signal(gc_io_item *it) { free(it); }

static void signal_cb(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  gc_loop *l = arg;
  gc_io_signal *s = malloc(sizeof *s);
  if (!s) return;  /* out of memory: this delivery is lost, the next one may not be */
  s->item.kind = GC_IO_SIGNAL;
  s->item.drop = drop_signal;
  s->signo = (int)fd;
  gc_loop_push(l, &s->item);
}

int gc_loop_watch_signal(gc_loop *l, int signo) {
  for (int i = 0; i < l->nsig; i++)
    if (event_get_signal(l->sig[i]) == signo) return 0;
  if (l->nsig == MAX_SIGNALS) return -1;
  struct event *ev = evsignal_new(l->base, signo, signal_cb, l);
  if (!ev || evsignal_add(ev, NULL) != 0) {
    if (ev) event_free(ev);
    return -1;
  }
  l->sig[l->nsig++] = ev;
  return 0;
}
