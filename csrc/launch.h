/* launch.h: start a program without a shell (posix_spawnp on an argument vector, so no text or
 * path needs quoting) and learn, without blocking, whether it has ended. Plain C under two
 * callers: the loop's child processes (proc.c) and graphcall.core's spawn/reap for nginx,
 * whose workers cannot block on a child. */
#ifndef GC_LAUNCH_H
#define GC_LAUNCH_H

#include <stddef.h>
#include <sys/types.h>

/* Start argv[0] (looked up in PATH) with argv and the environment; stdin is /dev/null, stdout
 * and stderr go to out_fd (>= 0) or to the file out_path (created or truncated). 0 with *pid
 * set, or -1 with err saying why (the program's name and errno's text). */
int gc_spawn(char *const argv[], int out_fd, const char *out_path, pid_t *pid, char *err, size_t errlen);

/* Has pid ended? 1 with *status its exit status (128 + n when signal n ended it), 0 while it
 * runs, -1 when it is no child of this process any more (another part of the process reaped
 * it: nginx's workers reap every child on SIGCHLD). Never blocks. */
int gc_reap(pid_t pid, int *status);

#endif
