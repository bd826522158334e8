/* bench/json_parse.c: the C tape parser alone (no Lua), in GB/s, against a baseline in the same
 * run: a byte-at-a-time pass that counts JSON's structural characters, the simplest scan a
 * tokenizer could make. Input: a file (the generated roster). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: json_parse FILE\n"); return 2; }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  static char buf[8 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  gc_jdoc d;
  gc_jtok *tok = NULL;
  uint32_t cap = 0;
  gc_json_limits lim = { sizeof buf, 0 };
  double best_p = 0, best_m = 0;
  volatile size_t sink = 0;
  for (int round = 0; round < 5; round++) {
    int iters = 0;
    double t0 = now(), t;
    do {
      if (gc_json_parse(&d, buf, n, &lim, tok, cap) != 0) { fprintf(stderr, "%s\n", d.error); return 1; }
      tok = d.tok; cap = d.cap;
      iters++;
    } while ((t = now() - t0) < 0.2);
    if (iters * n / t > best_p) best_p = iters * n / t;
    iters = 0;
    t0 = now();
    do {
      size_t c = 0;
      for (size_t i = 0; i < n; i++) {
        switch (buf[i]) { case '{': case '[': case '"': case ':': case ',': c++; break; default: break; }
      }
      sink += c;
      iters++;
    } while ((t = now() - t0) < 0.2);
    if (iters * n / t > best_m) best_m = iters * n / t;
  }
  gc_json_free(&d);
  printf("C parse %zu bytes: tape parser %.2f GB/s, byte-scan baseline %.2f GB/s; ratio %.2f\n",
         n, best_p / 1e9, best_m / 1e9, best_p / best_m);
  return (int)(sink & 0);
}
