/* TCP streams on the loop (tcp.h), on real loopback sockets: connect, bytes both ways, the
 * peer closing, a refused connect, a name that would need a lookup, and a stream freed with
 * items still queued. Run under valgrind and ASan too. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctest.h"
#include "ioloop.h"
#include "tcp.h"

static gc_loop *loop;

static gc_tcp_item *next_item(void) {
  for (int i = 0; i < 300; i++) {
    gc_io_item *it = gc_loop_pop(loop);
    if (it) return (gc_tcp_item *)(void *)it;
    gc_loop_step(loop, 10);
  }
  return NULL;
}

static void drop(gc_tcp_item *it) { if (it) it->item.drop(&it->item); }

static int listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0) return -1;
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

static void test_both_ways(void) {
  int port, lfd = listener(&port);
  CHECK(lfd >= 0);
  const char *err = NULL;
  gc_tcp *t = gc_tcp_connect(loop, "127.0.0.1", port, 7, 0, &err);
  CHECK(t != NULL);
  gc_tcp_item *it = next_item();
  CHECK(it && it->id == 7 && it->event == GC_TCP_OPEN);
  drop(it);
  int cfd = accept(lfd, NULL, NULL);
  CHECK(cfd >= 0);
  CHECK(gc_tcp_write(t, "PING\r\n", 6) == 0);
  char buf[16] = { 0 };
  for (int i = 0; i < 100 && buf[0] == 0; i++) {
    gc_loop_step(loop, 10);
    (void)recv(cfd, buf, sizeof buf - 1, MSG_DONTWAIT);
  }
  CHECK_STR(buf, "PING\r\n");
  CHECK(write(cfd, "+PONG\r\n", 7) == 7);
  it = next_item();
  CHECK(it && it->event == GC_TCP_DATA && it->len == 7 && memcmp(it->data, "+PONG\r\n", 7) == 0);
  drop(it);
  /* the peer closes after a last word: the word, then an orderly close */
  CHECK(write(cfd, "bye", 3) == 3);
  close(cfd);
  it = next_item();
  int got_bye = 0;
  if (it && it->event == GC_TCP_DATA) {
    got_bye = it->len == 3 && memcmp(it->data, "bye", 3) == 0;
    drop(it);
    it = next_item();
  }
  CHECK(got_bye);
  CHECK(it && it->event == GC_TCP_CLOSED && it->error[0] == 0);
  drop(it);
  CHECK(!gc_tcp_is_open(t));
  CHECK(gc_tcp_write(t, "x", 1) == -1);
  gc_tcp_free(t);
  close(lfd);
}

static void test_refused(void) {
  int port, lfd = listener(&port);
  close(lfd);                                   /* nothing listens there now */
  const char *err = NULL;
  gc_tcp *t = gc_tcp_connect(loop, "localhost", port, 8, 1000, &err);
  CHECK(t != NULL);
  gc_tcp_item *it = next_item();
  CHECK(it && it->id == 8 && it->event == GC_TCP_CLOSED);
  CHECK(it && strncmp(it->error, "connect", 7) == 0);
  drop(it);
  gc_tcp_free(t);
  /* not an address nor a name: refused at once */
  CHECK(gc_tcp_connect(loop, "redis example", 6379, 9, 0, &err) == NULL);
  CHECK(err && strstr(err, "not an address or a host name") != NULL);
  char long_name[300];
  memset(long_name, 'a', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  CHECK(gc_tcp_connect(loop, long_name, 6379, 9, 0, &err) == NULL);
  CHECK(gc_tcp_connect(loop, "127.0.0.1", 70000, 9, 0, &err) == NULL);
  /* a name: looked up by the loop's resolver; freed while the lookup goes on, it is cancelled */
  err = NULL;
  t = gc_tcp_connect(loop, "redis.example.com", 6379, 9, 1000, &err);
  CHECK(t != NULL && err == NULL);
  gc_tcp_free(t);
}

static void test_freed_with_items(void) {
  int port, lfd = listener(&port);
  const char *err = NULL;
  gc_tcp *t = gc_tcp_connect(loop, "::1", port, 10, 0, &err);
  if (!t) t = gc_tcp_connect(loop, "127.0.0.1", port, 10, 0, &err);
  CHECK(t != NULL);
  for (int i = 0; i < 20; i++) gc_loop_step(loop, 5);
  gc_tcp_free(t);                               /* its items stay queued; the loop drops them */
  close(lfd);
}

int main(void) {
  loop = gc_loop_new();
  CHECK(loop != NULL);
  test_both_ways();
  test_refused();
  test_freed_with_items();
  gc_loop_free(loop);
  CTEST_END("c io tcp");
}
