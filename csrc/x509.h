/* x509.h: certificate credentials (Microsoft identity platform, "certificate credentials"):
 * a bot signs a client assertion with its certificate's key, RS256 (with the certificate's
 * SHA-1 thumbprint, x5t) or PS256 (SHA-256, x5t#S256, what current MSAL sends); the emulator
 * checks it against the certificates registered for the app. PEM in, no I/O, no Lua.
 * OpenSSL's libcrypto. */
#ifndef GC_X509_H
#define GC_X509_H

#include <stddef.h>

#include "buf.h"

typedef struct {
  unsigned char sha1[20];     /* of the certificate's DER encoding */
  unsigned char sha256[32];
} gc_thumbprints;

/* The thumbprints of the first certificate in pem. 0, or -1 and *err (static text). */
int gc_x509_thumbprints(const char *pem, size_t len, gc_thumbprints *out, const char **err);

/* Whether key_pem (a private key, PKCS#8 or PKCS#1) is the key of cert_pem's certificate.
 * 0 when it is, -1 and *err otherwise. */
int gc_x509_key_matches(const char *cert_pem, size_t clen, const char *key_pem, size_t klen, const char **err);

/* The compact JWS of header and claims (JSON texts the caller made) signed with key_pem:
 * alg "RS256" (PKCS#1 v1.5) or "PS256" (PSS, salt as long as the digest), appended to out.
 * 0, or -1 and *err. */
int gc_x509_sign(const char *key_pem, size_t klen, const char *alg, const char *header, size_t hlen,
                 const char *claims, size_t clen, gc_buf *out, const char **err);

/* Check the signature of a compact JWS whose header says alg (RS256 or PS256) with the public
 * key of cert_pem's certificate. 0 when it holds; -1 and *err otherwise. */
int gc_x509_verify(const char *cert_pem, size_t clen, const char *alg, const char *token, size_t tlen,
                   const char **err);

#endif
