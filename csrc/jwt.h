/* jwt.h: verifying the bearer token the calling service sends with every notification
 * (REFERENCE.md §4): RS256 against a JWKS key set, issuer, audience, exp/nbf with a bounded
 * clock skew, tenant present. OpenSSL (libcrypto) does the RSA; everything the token says is
 * hostile until the signature checks out. No I/O, no Lua. */
#ifndef GC_JWT_H
#define GC_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct gc_jwks gc_jwks;

/* Parse a JWKS document ({"keys":[{"kty":"RSA","kid":...,"n":...,"e":...} or with "x5c"]}).
 * Keys that are not RSA, or RSA under 2048 bits, are skipped. NULL with *err if the document
 * is malformed or holds no usable key. */
gc_jwks *gc_jwks_parse(const char *json, size_t len, const char **err);
void gc_jwks_free(gc_jwks *k);
size_t gc_jwks_count(const gc_jwks *k);

typedef enum {
  GC_JWT_OK = 0,
  GC_JWT_MALFORMED,      /* not three base64url parts of JSON */
  GC_JWT_TOO_LARGE,
  GC_JWT_ALG,            /* anything but RS256 (none, HS256, ...) */
  GC_JWT_UNKNOWN_KID,
  GC_JWT_SIGNATURE,
  GC_JWT_EXPIRED,
  GC_JWT_NOT_YET_VALID,
  GC_JWT_AUDIENCE,
  GC_JWT_ISSUER,
  GC_JWT_TENANT,         /* no tid claim */
  GC_JWT_MEMORY,
  GC_JWT_CRIT            /* the header lists critical extensions (RFC 7515 §4.1.11); we
                            understand none, so such a token is invalid */
} gc_jwt_code;

const char *gc_jwt_code_name(gc_jwt_code c);

typedef struct {
  const char *audience;            /* the bot's app id; required */
  const char *const *issuers;      /* NULL: the two Microsoft's samples accept */
  size_t nissuers;
  int64_t now;                     /* Unix seconds */
  int64_t skew;                    /* seconds of clock skew allowed on exp/nbf */
  size_t max_len;                  /* 0: GC_JWT_DEFAULT_MAX_LEN */
} gc_jwt_opts;

#define GC_JWT_DEFAULT_MAX_LEN 8192

typedef struct {
  gc_jwt_code code;
  const char *message;   /* static */
  gc_buf claims;         /* on success: the payload's JSON text; caller frees */
} gc_jwt_result;

/* Verify token (the compact JWS, without "Bearer "). 0 and r->claims on success; -1 and
 * r->code/message otherwise. Initializes r either way; free r->claims with gc_buf_free. */
int gc_jwt_verify(const gc_jwks *keys, const char *token, size_t len, const gc_jwt_opts *o,
                  gc_jwt_result *r);

/* base64url without padding (RFC 7515 §2); -1 on any other character or a bad length. */
int gc_b64url_decode(const char *in, size_t len, gc_buf *out);

#endif
