/* proc.h: a child process on the loop (ioloop.h), for the programs a bot runs (text to speech):
 * started with posix_spawnp from an argument vector (no shell, so no quoting to get wrong),
 * its output (stdout and stderr, the first GC_PROC_KEEP bytes) read as it comes, its end
 * queued as an item. The loop goes on while it runs. Standalone only. */
#ifndef GC_PROC_H
#define GC_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "ioloop.h"

#define GC_PROC_KEEP 4096

typedef struct {
  gc_io_item item;   /* kind GC_IO_PROC */
  uint64_t id;       /* the process's, as given to gc_proc_spawn */
  int status;        /* the exit status; 128 + n if signal n ended it */
  char *output;      /* what it wrote (malloc'd, len bytes, at most GC_PROC_KEEP) */
  size_t len;
} gc_proc_item;

typedef struct gc_proc gc_proc;

/* Start argv[0] (looked up in PATH) with argv; stdin is /dev/null. NULL with *err set
 * (errno's text) when it cannot start (not found, not executable): then no item follows. */
gc_proc *gc_proc_spawn(gc_loop *l, char *const argv[], uint64_t id, char *err, size_t errlen);
/* Forget a process: a running one is killed (SIGKILL) and reaped; no item follows. */
void gc_proc_free(gc_proc *p);
int gc_proc_running(const gc_proc *p);

#endif
