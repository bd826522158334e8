/* flood: hostile clients for the listener's flood spec. N connections from one source
 * address to HOST:PORT, each sending one byte of a request every DRIP ms (0: nothing at
 * all, an idle client); a connection the server closes is opened again after a second.
 * Runs for SECONDS, then prints "connects N closes N".
 *
 *   flood HOST PORT SOURCE N DRIP SECONDS */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char REQUEST[] = "POST /callback HTTP/1.1\r\nHost: bot\r\nContent-Length: 100000\r\n\r\n";

typedef struct {
  int fd;
  long long next;   /* ms: the next byte, or the next connect */
  size_t sent;
} client;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_one(const struct sockaddr_in *to, const struct sockaddr_in *from) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (bind(fd, (const struct sockaddr *)from, sizeof *from) != 0 ||
      (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0 && errno != EINPROGRESS)) {
    close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: flood HOST PORT SOURCE N DRIP SECONDS\n");
    return 2;
  }
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
  struct sockaddr_in from = { .sin_family = AF_INET, .sin_port = 0 };
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1 || inet_pton(AF_INET, argv[3], &from.sin_addr) != 1) {
    fprintf(stderr, "flood: HOST and SOURCE are IPv4 addresses\n");
    return 2;
  }
  int n = atoi(argv[4]);
  long drip = atol(argv[5]);
  long long end = now_ms() + atol(argv[6]) * 1000;
  if (n <= 0) return 2;
  client *cs = calloc((size_t)n, sizeof *cs);
  struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
  if (!cs || !pfd) return 1;
  long long connects = 0, closes = 0, t = now_ms();
  for (int i = 0; i < n; i++) {
    cs[i].fd = -1;
    cs[i].next = t;
  }
  while ((t = now_ms()) < end) {
    for (int i = 0; i < n; i++) {
      client *c = &cs[i];
      if (c->fd < 0 && t >= c->next) {
        c->fd = open_one(&to, &from);
        c->sent = 0;
        c->next = c->fd < 0 ? t + 1000 : t + drip;
        if (c->fd >= 0) connects++;
      } else if (c->fd >= 0 && drip > 0 && t >= c->next) {
        if (send(c->fd, REQUEST + c->sent % (sizeof REQUEST - 1), 1, MSG_NOSIGNAL) == 1) c->sent++;
        c->next = t + drip;
      }
      pfd[i].fd = c->fd;
      pfd[i].events = POLLIN;
      pfd[i].revents = 0;
    }
    if (poll(pfd, (nfds_t)n, 50) > 0) {
      for (int i = 0; i < n; i++) {
        if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[512];
        ssize_t got = recv(cs[i].fd, buf, sizeof buf, 0);
        if (got > 0) continue;                     /* an answer (an error page): read, ignored */
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        close(cs[i].fd);
        cs[i].fd = -1;
        cs[i].next = t + 1000;
        closes++;
      }
    }
  }
  printf("connects %lld closes %lld\n", connects, closes);
  return 0;
}
