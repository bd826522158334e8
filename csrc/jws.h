/* jws.h: the signing side of JWT (RS256), for the local emulator, which plays the calling
 * service and its identity platform: it makes an RSA key, publishes it as a JWK, and signs
 * access tokens and callback tokens with it. OpenSSL's libcrypto; no I/O, no Lua. */
#ifndef GC_JWS_H
#define GC_JWS_H

#include <stddef.h>

#include "buf.h"

typedef struct gc_rsa gc_rsa;

/* A new RSA key of `bits` (2048 or more); NULL on failure. */
gc_rsa *gc_rsa_generate(int bits);
void gc_rsa_free(gc_rsa *k);

/* The public key as a JWK object: {"kty":"RSA","use":"sig","kid":...,"alg":"RS256","n":...,"e":...}.
 * kid must be plain (letters, digits, "-", "_", "."). 0 or -1. */
int gc_rsa_jwk(const gc_rsa *k, const char *kid, gc_buf *out);

/* The compact JWS base64url(header) "." base64url(claims) "." base64url(RS256 signature),
 * appended to out. header and claims are JSON texts the caller made. 0 or -1. */
int gc_jws_sign(const gc_rsa *k, const char *header, size_t hlen, const char *claims, size_t clen,
                gc_buf *out);

/* base64url without padding, appended to out. */
void gc_b64url_encode(const unsigned char *in, size_t len, gc_buf *out);

/* A random (version 4) UUID in its 36-character text form, from OpenSSL's CSPRNG; out has
 * room for 37 bytes. 0 or -1. */
int gc_uuid4(char *out);

#endif
