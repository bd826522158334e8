/* launch.c: posix_spawnp and waitpid(WNOHANG), nothing more. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "launch.h"

extern char **environ;

int gc_spawn(char *const argv[], int out_fd, const char *out_path, pid_t *pid, char *err, size_t errlen) {
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (out_path) {
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  } else {
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);   /* dup2 clears close-on-exec */
  }
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", argv[0], strerror(rc));
    return -1;
  }
  return 0;
}

int gc_reap(pid_t pid, int *status) {
  int st = 0;
  pid_t r;
  do r = waitpid(pid, &st, WNOHANG); while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  if (r < 0) return -1;
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
  return 1;
}
