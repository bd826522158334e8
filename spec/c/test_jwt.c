/* The JWT verifier's checks that come before any signature: base64url, structure, algorithm,
 * key lookup, size; and the JWKS reader. Signed tokens are covered by spec/jwt_spec.lua. */
#include <stdlib.h>

#include "ctest.h"
#include "jwt.h"

static const char JWKS[] =
  "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"key-1\",\"e\":\"AQAB\",\"n\":\"o9CnOkZkx2EvFEe7w3Q3cM5a1myMJjWCcSfjw-Nh6P9RrLVpq13yNQ6gw7e4ZPmUFFBj4vm3kdVlpmGyqvPtNUrHZ1X_-c1OX5AkvJXE2amJOcWTjeeKu3ZU_nGsmJdOw1TPf1CLPs2P2-ojKsv7XqzOI5xVgKmesGhvgLoFUQgfOcGO6G4_gnzAy3WKZ-vR2fTBYZ50qWb9HQ_AyPmm3hVxuesTuwbM_vwnbyhfaU7J4lOUQevR3-_Ct_o4iQ8fGDbix-YInZoDEy3PUshKgkyM8ewRj0pX7n9YfBIgGC0wnIXmUjryEbu5bjw4S6v3l9rpF0gCZRxf-PBUi_8HuQ\"},"
  "{\"kty\":\"EC\",\"kid\":\"ec\"},{\"kty\":\"RSA\",\"kid\":\"small\",\"e\":\"AQAB\",\"n\":\"AQAB\"}]}";

static void test_b64url(void) {
  gc_buf b;
  gc_buf_init(&b);
  CHECK(gc_b64url_decode("aGVsbG8", 7, &b) == 0 && b.len == 5 && memcmp(b.p, "hello", 5) == 0);
  CHECK(gc_b64url_decode("", 0, &b) == 0 && b.len == 0);
  CHECK(gc_b64url_decode("-_8", 3, &b) == 0 && b.len == 2);
  CHECK(gc_b64url_decode("aGVsbG8=", 8, &b) != 0);   /* no padding in JWS */
  CHECK(gc_b64url_decode("a+b/", 4, &b) != 0);       /* standard alphabet is not base64url */
  CHECK(gc_b64url_decode("a", 1, &b) != 0);          /* impossible length */
  CHECK(gc_b64url_decode("aGVsbG9", 7, &b) != 0);    /* non-canonical trailing bits */
  gc_buf_free(&b);
}

static gc_jwt_code verify(const gc_jwks *k, const char *tok) {
  gc_jwt_opts o = { "app", NULL, 0, 1736935800, 300, 0 };
  gc_jwt_result r;
  gc_jwt_verify(k, tok, strlen(tok), &o, &r);
  gc_buf_free(&r.claims);
  return r.code;
}

static void test_tokens(void) {
  const char *err;
  gc_jwks *k = gc_jwks_parse(JWKS, sizeof JWKS - 1, &err);
  CHECK(k != NULL);
  CHECK(gc_jwks_count(k) == 1);   /* the EC key and the 24-bit key are skipped */
  /* {"alg":"RS256","kid":"key-1"} . {"aud":"app"} . AAAA */
  CHECK(verify(k, "eyJhbGciOiJSUzI1NiIsImtpZCI6ImtleS0xIn0.eyJhdWQiOiJhcHAifQ.AAAA") == GC_JWT_SIGNATURE);
  /* {"alg":"RS256","kid":"nope"} */
  CHECK(verify(k, "eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.e30.AAAA") == GC_JWT_UNKNOWN_KID);
  /* {"alg":"none"} and {"alg":"HS256","kid":"key-1"} */
  CHECK(verify(k, "eyJhbGciOiJub25lIn0.e30.") == GC_JWT_ALG);
  CHECK(verify(k, "eyJhbGciOiJIUzI1NiIsImtpZCI6ImtleS0xIn0.e30.AAAA") == GC_JWT_ALG);
  /* {"alg":"RS256","kid":"key-1","crit":["exp"]}: checked before the signature */
  CHECK(verify(k, "eyJhbGciOiJSUzI1NiIsImtpZCI6ImtleS0xIiwiY3JpdCI6WyJleHAiXX0.e30.AAAA") == GC_JWT_CRIT);
  CHECK(strcmp(gc_jwt_code_name(GC_JWT_CRIT), "crit") == 0);
  CHECK(verify(k, "not-a-token") == GC_JWT_MALFORMED);
  CHECK(verify(k, "a.b.c.d") == GC_JWT_MALFORMED);
  CHECK(verify(k, "!!.e30.AAAA") == GC_JWT_MALFORMED);
  CHECK(verify(k, "") == GC_JWT_MALFORMED);
  char *big = malloc(9000);
  memset(big, 'a', 8999);
  big[8999] = 0;
  CHECK(verify(k, big) == GC_JWT_TOO_LARGE);
  free(big);
  CHECK(strcmp(gc_jwt_code_name(GC_JWT_NOT_YET_VALID), "not_yet_valid") == 0);
  gc_jwks_free(k);

  CHECK(gc_jwks_parse("{\"keys\":[]}", 11, &err) == NULL && err);
  CHECK(gc_jwks_parse("{}", 2, &err) == NULL && err);
  CHECK(gc_jwks_parse("[", 1, &err) == NULL && err);
}

int main(void) {
  test_b64url();
  test_tokens();
  CTEST_END("c jwt");
}
