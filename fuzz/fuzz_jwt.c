/* libFuzzer target: the JWT verifier on arbitrary tokens (first byte even), and the JWKS
 * reader on arbitrary key sets (first byte odd). The key is a fixed 2048-bit test key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

static const char JWKS[] =
  "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"key-1\",\"e\":\"AQAB\",\"n\":\"o9CnOkZkx2EvFEe7w3Q3cM5a1myMJjWCcSfjw-Nh6P9RrLVpq13yNQ6gw7e4ZPmUFFBj4vm3kdVlpmGyqvPtNUrHZ1X_-c1OX5AkvJXE2amJOcWTjeeKu3ZU_nGsmJdOw1TPf1CLPs2P2-ojKsv7XqzOI5xVgKmesGhvgLoFUQgfOcGO6G4_gnzAy3WKZ-vR2fTBYZ50qWb9HQ_AyPmm3hVxuesTuwbM_vwnbyhfaU7J4lOUQevR3-_Ct_o4iQ8fGDbix-YInZoDEy3PUshKgkyM8ewRj0pX7n9YfBIgGC0wnIXmUjryEbu5bjw4S6v3l9rpF0gCZRxf-PBUi_8HuQ\"}]}";

static gc_jwks *keys;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *err;
  if (!keys) keys = gc_jwks_parse(JWKS, sizeof JWKS - 1, &err);
  if (!keys) abort();
  if (size == 0) return 0;
  if (data[0] & 1) {
    gc_jwks *k = gc_jwks_parse((const char *)data + 1, size - 1, &err);
    gc_jwks_free(k);
    return 0;
  }
  gc_jwt_opts o = { "11111111-2222-3333-4444-555555555555", NULL, 0, 1736935800, 300, 0 };
  gc_jwt_result r;
  gc_jwt_verify(keys, (const char *)data + 1, size - 1, &o, &r);
  gc_buf_free(&r.claims);
  return 0;
}
