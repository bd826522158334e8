/* x509.c: certificate credentials, signing and checking client assertions (x509.h). */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "jws.h"
#include "jwt.h"
#include "x509.h"

#define MAX_PEM (64 * 1024)

static X509 *read_cert(const char *pem, size_t len, const char **err) {
  if (len == 0 || len > MAX_PEM) {
    *err = "the certificate is empty or larger than 64 KiB";
    return NULL;
  }
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  ERR_clear_error();
  if (!x) *err = "not a PEM certificate (-----BEGIN CERTIFICATE-----)";
  return x;
}

static EVP_PKEY *read_key(const char *pem, size_t len, const char **err) {
  if (len == 0 || len > MAX_PEM) {
    *err = "the key is empty or larger than 64 KiB";
    return NULL;
  }
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  /* no passphrase callback: an encrypted key is refused, never prompted for */
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"") : NULL;
  BIO_free(b);
  ERR_clear_error();
  if (!k) {
    *err = "not an unencrypted PEM private key (-----BEGIN PRIVATE KEY----- or RSA PRIVATE KEY)";
    return NULL;
  }
  if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k) < 2048) {
    EVP_PKEY_free(k);
    *err = "the key is not an RSA key of 2048 bits or more";
    return NULL;
  }
  return k;
}

int gc_x509_thumbprints(const char *pem, size_t len, gc_thumbprints *out, const char **err) {
  X509 *x = read_cert(pem, len, err);
  if (!x) return -1;
  unsigned n1 = 0, n2 = 0;
  int ok = X509_digest(x, EVP_sha1(), out->sha1, &n1) == 1 && X509_digest(x, EVP_sha256(), out->sha256, &n2) == 1;
  X509_free(x);
  if (!ok || n1 != sizeof out->sha1 || n2 != sizeof out->sha256) {
    *err = "cannot hash the certificate";
    return -1;
  }
  return 0;
}

int gc_x509_key_matches(const char *cert_pem, size_t clen, const char *key_pem, size_t klen, const char **err) {
  X509 *x = read_cert(cert_pem, clen, err);
  if (!x) return -1;
  EVP_PKEY *k = read_key(key_pem, klen, err);
  int ok = k && X509_check_private_key(x, k) == 1;
  ERR_clear_error();
  if (k && !ok) *err = "the key is not the certificate's";
  EVP_PKEY_free(k);
  X509_free(x);
  return ok ? 0 : -1;
}

/* RS256 or PS256 on a digest context: 0, or -1 for another algorithm */
static int set_alg(EVP_PKEY_CTX *pctx, const char *alg) {
  if (strcmp(alg, "RS256") == 0) return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 ? 0 : -1;
  if (strcmp(alg, "PS256") == 0)
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 ? 0 : -1;
  return -1;
}

int gc_x509_sign(const char *key_pem, size_t klen, const char *alg, const char *header, size_t hlen,
                 const char *claims, size_t clen, gc_buf *out, const char **err) {
  if (strcmp(alg, "RS256") != 0 && strcmp(alg, "PS256") != 0) {
    *err = "the algorithm is RS256 or PS256";
    return -1;
  }
  EVP_PKEY *k = read_key(key_pem, klen, err);
  if (!k) return -1;
  size_t start = out->len;
  gc_b64url_encode((const unsigned char *)header, hlen, out);
  gc_buf_addc(out, '.');
  gc_b64url_encode((const unsigned char *)claims, clen, out);
  unsigned char sig[1024];
  size_t siglen = sizeof sig;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  int ok = !out->oom && md && EVP_PKEY_get_size(k) <= (int)sizeof sig &&
           EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, k) == 1 && set_alg(pctx, alg) == 0 &&
           EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out->p + start, out->len - start) == 1;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(k);
  ERR_clear_error();
  if (!ok) {
    *err = out->oom ? "out of memory" : "cannot sign";
    return -1;
  }
  gc_buf_addc(out, '.');
  gc_b64url_encode(sig, siglen, out);
  if (out->oom) {
    *err = "out of memory";
    return -1;
  }
  return 0;
}

int gc_x509_verify(const char *cert_pem, size_t clen, const char *alg, const char *token, size_t tlen,
                   const char **err) {
  if (strcmp(alg, "RS256") != 0 && strcmp(alg, "PS256") != 0) {
    *err = "the algorithm is RS256 or PS256";
    return -1;
  }
  const char *dot2 = NULL;
  for (size_t i = tlen; i > 0; i--)
    if (token[i - 1] == '.') { dot2 = token + i - 1; break; }
  if (!dot2 || !memchr(token, '.', (size_t)(dot2 - token))) {
    *err = "not a compact JWS";
    return -1;
  }
  X509 *x = read_cert(cert_pem, clen, err);
  if (!x) return -1;
  EVP_PKEY *pub = X509_get_pubkey(x);
  X509_free(x);
  gc_buf sig;
  gc_buf_init(&sig);
  int ok = 0;
  *err = "the signature does not hold";
  if (!pub) {
    *err = "the certificate has no usable key";
  } else if (gc_b64url_decode(dot2 + 1, tlen - (size_t)(dot2 - token) - 1, &sig) != 0) {
    *err = "the signature is not base64url";
  } else {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    ok = md && EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pub) == 1 && set_alg(pctx, alg) == 0 &&
         EVP_DigestVerify(md, (const unsigned char *)sig.p, sig.len, (const unsigned char *)token,
                          (size_t)(dot2 - token)) == 1;
    EVP_MD_CTX_free(md);
  }
  EVP_PKEY_free(pub);
  gc_buf_free(&sig);
  ERR_clear_error();
  return ok ? 0 : -1;
}
