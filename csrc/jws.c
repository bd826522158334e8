#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "jws.h"

struct gc_rsa {
  EVP_PKEY *pkey;
};

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void gc_b64url_encode(const unsigned char *in, size_t len, gc_buf *out) {
  if (gc_buf_reserve(out, (len + 2) / 3 * 4) != 0) return;
  char *o = out->p + out->len;
  size_t i = 0;
  for (; i + 2 < len; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    *o++ = B64URL[v >> 18];
    *o++ = B64URL[(v >> 12) & 63];
    *o++ = B64URL[(v >> 6) & 63];
    *o++ = B64URL[v & 63];
  }
  if (len - i == 1) {
    unsigned v = (unsigned)in[i] << 16;
    *o++ = B64URL[v >> 18];
    *o++ = B64URL[(v >> 12) & 63];
  } else if (len - i == 2) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
    *o++ = B64URL[v >> 18];
    *o++ = B64URL[(v >> 12) & 63];
    *o++ = B64URL[(v >> 6) & 63];
  }
  out->len = (size_t)(o - out->p);
}

gc_rsa *gc_rsa_generate(int bits) {
  if (bits < 2048) return NULL;
  gc_rsa *k = malloc(sizeof *k);
  if (!k) return NULL;
  k->pkey = EVP_RSA_gen((unsigned)bits);
  if (!k->pkey) {
    free(k);
    return NULL;
  }
  return k;
}

void gc_rsa_free(gc_rsa *k) {
  if (!k) return;
  EVP_PKEY_free(k->pkey);
  free(k);
}

static int add_bn(const gc_rsa *k, const char *name, gc_buf *out) {
  BIGNUM *bn = NULL;
  if (!EVP_PKEY_get_bn_param(k->pkey, name, &bn)) return -1;
  int n = BN_num_bytes(bn);
  unsigned char *tmp = malloc((size_t)n + 1);
  if (!tmp) {
    BN_free(bn);
    return -1;
  }
  BN_bn2bin(bn, tmp);
  gc_b64url_encode(tmp, (size_t)n, out);
  free(tmp);
  BN_free(bn);
  return 0;
}

int gc_rsa_jwk(const gc_rsa *k, const char *kid, gc_buf *out) {
  for (const char *p = kid; *p; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_' || c == '.';
    if (!ok) return -1;
  }
  gc_buf_addlit(out, "{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"");
  gc_buf_add(out, kid, strlen(kid));
  gc_buf_addlit(out, "\",\"n\":\"");
  if (add_bn(k, OSSL_PKEY_PARAM_RSA_N, out) != 0) return -1;
  gc_buf_addlit(out, "\",\"e\":\"");
  if (add_bn(k, OSSL_PKEY_PARAM_RSA_E, out) != 0) return -1;
  gc_buf_addlit(out, "\"}");
  return out->oom ? -1 : 0;
}

int gc_jws_sign(const gc_rsa *k, const char *header, size_t hlen, const char *claims, size_t clen,
                gc_buf *out) {
  size_t start = out->len;
  gc_b64url_encode((const unsigned char *)header, hlen, out);
  gc_buf_addc(out, '.');
  gc_b64url_encode((const unsigned char *)claims, clen, out);
  if (out->oom) return -1;
  size_t input_len = out->len - start;
  unsigned char sig[1024];
  size_t siglen = sizeof sig;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
           EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out->p + start, input_len) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) return -1;
  gc_buf_addc(out, '.');
  gc_b64url_encode(sig, siglen, out);
  return out->oom ? -1 : 0;
}

int gc_uuid4(char *out) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) return -1;
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 15];
  }
  *o = 0;
  return 0;
}
