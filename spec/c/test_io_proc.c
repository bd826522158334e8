/* Child processes on the loop (proc.h, launch.h): output and exit status as an item, a
 * program that is not there, a signal's end, output kept to its limit, a process freed while
 * it runs (killed and reaped), and the loop going on while one runs. Run under valgrind and
 * ASan too. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctest.h"
#include "ioloop.h"
#include "proc.h"
#include "launch.h"

static gc_loop *loop;

static gc_proc_item *next_item(void) {
  for (int i = 0; i < 500; i++) {
    gc_io_item *it = gc_loop_pop(loop);
    if (it) return (gc_proc_item *)(void *)it;
    gc_loop_step(loop, 10);
  }
  return NULL;
}

static void drop(gc_proc_item *it) { if (it) it->item.drop(&it->item); }

static void test_output_and_status(void) {
  char *argv[] = { "sh", "-c", "printf 'out '; printf 'err' >&2; exit 3", NULL };
  char err[128] = "";
  gc_proc *p = gc_proc_spawn(loop, argv, 11, err, sizeof err);
  CHECK(p != NULL);
  CHECK(gc_proc_running(p));
  gc_proc_item *it = next_item();
  CHECK(it && it->item.kind == GC_IO_PROC && it->id == 11 && it->status == 3);
  CHECK(it && it->len == 7 && memcmp(it->output, "out err", 7) == 0);
  CHECK(!gc_proc_running(p));
  drop(it);
  gc_proc_free(p);
}

static void test_arguments_as_they_are(void) {
  char *argv[] = { "printf", "%s|%s", "it's \"quoted\"", "$HOME `x`", NULL };
  char err[128] = "";
  gc_proc *p = gc_proc_spawn(loop, argv, 12, err, sizeof err);
  gc_proc_item *it = next_item();
  const char *want = "it's \"quoted\"|$HOME `x`";
  CHECK(it && it->status == 0 && it->len == strlen(want) && memcmp(it->output, want, it->len) == 0);
  drop(it);
  gc_proc_free(p);
}

static void test_not_found(void) {
  char *argv[] = { "no-such-program-here", NULL };
  char err[128] = "";
  gc_proc *p = gc_proc_spawn(loop, argv, 13, err, sizeof err);
  if (p) {
    /* under valgrind, posix_spawn cannot report a failed exec: the child exits 127, as a
     * shell's would */
    gc_proc_item *it = next_item();
    CHECK(it && it->id == 13 && it->status == 127);
    drop(it);
    gc_proc_free(p);
    return;
  }
  CHECK_STR(err, "no-such-program-here: No such file or directory");
  CHECK(gc_loop_pop(loop) == NULL);   /* nothing follows */
}

static void test_signal(void) {
  char *argv[] = { "sh", "-c", "kill -9 $$", NULL };
  char err[128] = "";
  gc_proc *p = gc_proc_spawn(loop, argv, 14, err, sizeof err);
  gc_proc_item *it = next_item();
  CHECK(it && it->status == 128 + 9);
  drop(it);
  gc_proc_free(p);
}

static void test_output_limit(void) {
  char *argv[] = { "head", "-c", "100000", "/dev/zero", NULL };
  char err[128] = "";
  gc_proc *p = gc_proc_spawn(loop, argv, 15, err, sizeof err);
  gc_proc_item *it = next_item();
  CHECK(it && it->status == 0 && it->len == GC_PROC_KEEP);   /* read to the end, kept to the limit */
  drop(it);
  gc_proc_free(p);
}

static void test_loop_goes_on(void) {
  /* the child ends only once a file exists that this thread makes after stepping the loop:
   * were a step blocked on the child, it would never return */
  char flag[] = "/tmp/gc-proc-flag-XXXXXX";
  int fd = mkstemp(flag);
  CHECK(fd >= 0);
  close(fd);
  unlink(flag);
  char script[160];
  snprintf(script, sizeof script, "while [ ! -e '%s' ]; do sleep 0.01; done", flag);
  char *argv[] = { "sh", "-c", script, NULL };
  char err[128] = "";
  gc_proc *p = gc_proc_spawn(loop, argv, 16, err, sizeof err);
  CHECK(p != NULL);
  for (int i = 0; i < 5; i++) gc_loop_step(loop, 10);
  CHECK(gc_loop_pop(loop) == NULL);    /* the steps returned; the child still runs */
  CHECK(gc_proc_running(p));
  fd = open(flag, O_CREAT | O_WRONLY, 0600);
  CHECK(fd >= 0);
  close(fd);
  gc_proc_item *it = next_item();
  CHECK(it && it->id == 16 && it->status == 0);
  drop(it);
  gc_proc_free(p);
  unlink(flag);
}

static void test_freed_while_running(void) {
  char *argv[] = { "sleep", "30", NULL };
  char err[128] = "";
  gc_proc *p = gc_proc_spawn(loop, argv, 17, err, sizeof err);
  CHECK(p != NULL);
  gc_loop_step(loop, 10);
  gc_proc_free(p);                    /* killed and reaped at once, no item */
  gc_loop_step(loop, 10);
  CHECK(gc_loop_pop(loop) == NULL);
}

static void test_spawn_to_file(void) {
  char path[] = "/tmp/gc-spawn-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  char *argv[] = { "sh", "-c", "echo to the file; exit 5", NULL };
  pid_t pid;
  char err[128] = "";
  CHECK(gc_spawn(argv, -1, path, &pid, err, sizeof err) == 0);
  int status = -1, r = 0;
  for (int i = 0; i < 500 && (r = gc_reap(pid, &status)) == 0; i++) gc_loop_step(loop, 10);
  CHECK(r == 1 && status == 5);
  CHECK(gc_reap(pid, &status) == -1);   /* no child any more */
  FILE *f = fopen(path, "r");
  char buf[64] = "";
  CHECK(f && fgets(buf, sizeof buf, f));
  if (f) fclose(f);
  CHECK_STR(buf, "to the file\n");
  unlink(path);
}

int main(void) {
  loop = gc_loop_new();
  test_output_and_status();
  test_arguments_as_they_are();
  test_not_found();
  test_signal();
  test_output_limit();
  test_loop_goes_on();
  test_freed_while_running();
  test_spawn_to_file();
  gc_loop_free(loop);
  CTEST_END("c io proc");
}
