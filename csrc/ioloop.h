/* ioloop.h: the event loop of the I/O half (libevent). One thread, one loop: the libcurl
 * transport, the HTTP listener and signals all run on it, and what they finish is queued as
 * items for the caller to take after each step. Nothing here calls back into the caller from
 * inside libevent or libcurl, so a binding never runs its code (Lua) on their stacks.
 * Standalone only; OpenResty never loads the I/O half. */
#ifndef GC_IOLOOP_H
#define GC_IOLOOP_H

#include <stdint.h>

struct event_base;

typedef enum { GC_IO_RESPONSE, GC_IO_REQUEST, GC_IO_SIGNAL, GC_IO_STREAM, GC_IO_PROC } gc_io_kind;

/* The head of every queued item; the owner of the item type embeds it first. */
typedef struct gc_io_item {
  gc_io_kind kind;
  struct gc_io_item *next;
  void (*drop)(struct gc_io_item *);  /* frees an item nobody took (the loop is going away) */
} gc_io_item;

typedef struct gc_loop gc_loop;

gc_loop *gc_loop_new(void);
/* Frees the loop; items still queued are dropped. Free its clients and servers first. */
void gc_loop_free(gc_loop *l);
struct event_base *gc_loop_base(gc_loop *l);
struct evdns_base;
/* The loop's resolver (made at the first call), or NULL when none can be made. */
struct evdns_base *gc_loop_dns(gc_loop *l);

/* Run the loop until something is ready or timeout_ms passes (0: do not wait; < 0: no
 * timeout). Returns at once if items are already queued. 0, or -1 on a libevent error. */
int gc_loop_step(gc_loop *l, int64_t timeout_ms);

void gc_loop_push(gc_loop *l, gc_io_item *it);
gc_io_item *gc_loop_pop(gc_loop *l);  /* NULL when empty; the caller owns the item */
gc_io_item *gc_loop_peek(gc_loop *l); /* the next item, left queued */

/* What lives on the loop (clients, servers) registers a closer, so that freeing the loop
 * first closes them instead of leaving them on a freed event base. A child that goes away
 * on its own calls gc_loop_forget. */
int gc_loop_adopt(gc_loop *l, void (*close)(void *), void *arg);
void gc_loop_forget(gc_loop *l, void *arg);

/* Monotonic milliseconds (with fractions). */
double gc_loop_now(void);

/* Queue a GC_IO_SIGNAL item each time signo arrives (SIGINT, SIGTERM, ...). */
typedef struct {
  gc_io_item item;
  int signo;
} gc_io_signal;
int gc_loop_watch_signal(gc_loop *l, int signo);

#endif
