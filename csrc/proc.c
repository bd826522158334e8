/* proc.c: child processes on the loop: spawned (launch.c) with their output on a pipe read
 * with a libevent event, the exit reaped without blocking (the pipe's end says the child is
 * going; gc_reap then, again on a short timer until it is gone). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "proc.h"
#include "launch.h"

struct gc_proc {
  gc_loop *l;
  uint64_t id;
  pid_t pid;               /* 0 once reaped */
  int fd;                  /* the pipe's read end; -1 once at its end */
  struct event *ev;        /* reads the pipe, then polls for the exit */
  char out[GC_PROC_KEEP];
  size_t len;
  int done;                /* the item was queued */
};

static void drop_item(gc_io_item *it) {
  gc_proc_item *p = (gc_proc_item *)(void *)it;
  free(p->output);
  free(p);
}

static void finish(gc_proc *p, int status) {
  p->pid = 0;
  p->done = 1;
  gc_proc_item *it = calloc(1, sizeof *it);
  char *copy = it ? malloc(p->len ? p->len : 1) : NULL;
  if (!copy) {   /* out of memory: the end is lost; the caller's timeout is the backstop */
    free(it);
    return;
  }
  memcpy(copy, p->out, p->len);
  it->item.kind = GC_IO_PROC;
  it->item.drop = drop_item;
  it->id = p->id;
  it->status = status;
  it->output = copy;
  it->len = p->len;
  gc_loop_push(p->l, &it->item);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg);

/* The pipe is at its end: reap the child now if it is gone, else look again in 10 ms. */
static void reap(gc_proc *p) {
  int st = 255;
  if (gc_reap(p->pid, &st) != 0) {
    if (p->ev) event_free(p->ev);
    p->ev = NULL;
    finish(p, st);
    return;
  }
  if (p->ev) event_free(p->ev);
  p->ev = evtimer_new(gc_loop_base(p->l), poll_cb, p);
  struct timeval tv = { 0, 10000 };
  if (p->ev) evtimer_add(p->ev, &tv);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what;
  reap(arg);
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  gc_proc *p = arg;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n > 0) {
    size_t keep = (size_t)n < sizeof p->out - p->len ? (size_t)n : sizeof p->out - p->len;
    memcpy(p->out + p->len, buf, keep);
    p->len += keep;
    return;
  }
  close(p->fd);
  p->fd = -1;
  reap(p);
}

gc_proc *gc_proc_spawn(gc_loop *l, char *const argv[], uint64_t id, char *err, size_t errlen) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    return NULL;
  }
  gc_proc *p = calloc(1, sizeof *p);
  if (!p) {
    close(fds[0]);
    close(fds[1]);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  p->l = l;
  p->id = id;
  p->fd = fds[0];
  int rc = gc_spawn(argv, fds[1], NULL, &p->pid, err, errlen);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    free(p);
    return NULL;
  }
  fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK);
  p->ev = event_new(gc_loop_base(l), p->fd, EV_READ | EV_PERSIST, read_cb, p);
  if (!p->ev || event_add(p->ev, NULL) != 0) {
    snprintf(err, errlen, "out of memory");
    gc_proc_free(p);
    return NULL;
  }
  return p;
}

int gc_proc_running(const gc_proc *p) { return p && !p->done; }

void gc_proc_free(gc_proc *p) {
  if (!p) return;
  if (p->ev) event_free(p->ev);
  if (p->fd >= 0) close(p->fd);
  if (p->pid > 0) {
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {}
  }
  free(p);
}
