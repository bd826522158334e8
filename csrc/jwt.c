#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "json.h"
#include "jwt.h"

typedef struct {
  char *kid;
  EVP_PKEY *pkey;
} jwk;

struct gc_jwks {
  jwk *keys;
  size_t n;
};

static const char *const codes[] = {
  "ok", "malformed", "too_large", "alg", "unknown_kid", "signature", "expired",
  "not_yet_valid", "audience", "issuer", "tenant", "memory", "crit",
};

const char *gc_jwt_code_name(gc_jwt_code c) {
  return (unsigned)c < sizeof codes / sizeof *codes ? codes[c] : "unknown";
}

/* ---- base64 ------------------------------------------------------------------------ */

static int b64val(unsigned char c, int url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (url) {
    if (c == '-') return 62;
    if (c == '_') return 63;
  } else {
    if (c == '+') return 62;
    if (c == '/') return 63;
  }
  return -1;
}

static int b64_decode(const char *in, size_t len, gc_buf *out, int url) {
  out->len = 0;
  if (!url) {  /* standard base64 (x5c): padding allowed */
    while (len && in[len - 1] == '=') len--;
  }
  if (len % 4 == 1) return -1;
  if (gc_buf_reserve(out, len / 4 * 3 + 3) != 0) return -1;
  unsigned char *o = (unsigned char *)out->p;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64val((unsigned char)in[i], url);
    if (v < 0) return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *o++ = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return -1;  /* non-canonical trailing bits */
  out->len = (size_t)(o - (unsigned char *)out->p);
  return 0;
}

int gc_b64url_decode(const char *in, size_t len, gc_buf *out) {
  return b64_decode(in, len, out, 1);
}

/* ---- keys -------------------------------------------------------------------------- */

static EVP_PKEY *rsa_from_ne(const unsigned char *n, size_t nlen, const unsigned char *e,
                             size_t elen) {
  EVP_PKEY *pkey = NULL;
  BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  if (!bn || !be || !bld) goto done;
  if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be)) goto done;
  params = OSSL_PARAM_BLD_to_param(bld);
  ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0) goto done;
  if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) pkey = NULL;
done:
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  return pkey;
}

static EVP_PKEY *rsa_from_x5c(const char *b64, size_t len, gc_buf *tmp) {
  if (b64_decode(b64, len, tmp, 0) != 0) return NULL;
  const unsigned char *p = (const unsigned char *)tmp->p;
  X509 *cert = d2i_X509(NULL, &p, (long)tmp->len);
  if (!cert) return NULL;
  EVP_PKEY *pkey = X509_get_pubkey(cert);
  X509_free(cert);
  return pkey;
}

void gc_jwks_free(gc_jwks *k) {
  if (!k) return;
  for (size_t i = 0; i < k->n; i++) {
    free(k->keys[i].kid);
    EVP_PKEY_free(k->keys[i].pkey);
  }
  free(k->keys);
  free(k);
}

size_t gc_jwks_count(const gc_jwks *k) { return k ? k->n : 0; }

static const char *str_of(const gc_jdoc *d, uint32_t t, gc_buf *scratch, size_t *len) {
  if (!t || d->tok[t].type != GC_J_STRING) return NULL;
  return gc_json_str(d, t, scratch, len);
}

gc_jwks *gc_jwks_parse(const char *json, size_t len, const char **err) {
  gc_jdoc d;
  gc_json_limits lim = { 1 << 20, 16 };
  gc_buf a, b, s;
  gc_buf_init(&a);
  gc_buf_init(&b);
  gc_buf_init(&s);
  gc_jwks *ks = NULL;
  *err = NULL;
  if (gc_json_parse(&d, json, len, &lim, NULL, 0) != 0) { *err = "JWKS is not valid JSON"; goto out; }
  uint32_t keys = gc_json_get(&d, 0, "keys", 4);
  if (!keys || d.tok[keys].type != GC_J_ARRAY) { *err = "JWKS has no 'keys' array"; goto out; }
  ks = calloc(1, sizeof *ks);
  if (!ks || (d.tok[keys].len && !(ks->keys = calloc(d.tok[keys].len, sizeof *ks->keys)))) {
    *err = "out of memory";
    goto out;
  }
  uint32_t k = keys + 1;
  for (uint32_t i = 0; i < d.tok[keys].len; i++, k = d.tok[k].next) {
    if (d.tok[k].type != GC_J_OBJECT) continue;
    static const char *const names[] = { "kty", "kid", "n", "e", "x5c", "use" };
    uint32_t f[6];
    gc_json_fields(&d, k, names, 6, f);
    size_t l;
    const char *kty = str_of(&d, f[0], &s, &l);
    if (!kty || l != 3 || memcmp(kty, "RSA", 3) != 0) continue;
    const char *use = str_of(&d, f[5], &s, &l);
    if (use && !(l == 3 && memcmp(use, "sig", 3) == 0)) continue;
    EVP_PKEY *pkey = NULL;
    size_t nl, el;
    const char *n = str_of(&d, f[2], &s, &nl);
    if (n && gc_b64url_decode(n, nl, &a) == 0) {
      const char *e = str_of(&d, f[3], &s, &el);
      if (e && gc_b64url_decode(e, el, &b) == 0)
        pkey = rsa_from_ne((unsigned char *)a.p, a.len, (unsigned char *)b.p, b.len);
    } else if (f[4] && d.tok[f[4]].type == GC_J_ARRAY && d.tok[f[4]].len > 0) {
      size_t xl;
      const char *x = str_of(&d, f[4] + 1, &s, &xl);
      if (x) pkey = rsa_from_x5c(x, xl, &a);
    }
    if (!pkey) continue;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < 2048) {
      EVP_PKEY_free(pkey);
      continue;
    }
    const char *kid = str_of(&d, f[1], &s, &l);
    char *kc = malloc(kid ? l + 1 : 1);
    if (!kc) { EVP_PKEY_free(pkey); *err = "out of memory"; goto out; }
    if (kid) memcpy(kc, kid, l);
    kc[kid ? l : 0] = 0;
    ks->keys[ks->n].kid = kc;
    ks->keys[ks->n].pkey = pkey;
    ks->n++;
  }
  if (ks->n == 0) *err = "JWKS holds no RSA signing key of 2048 bits or more";
out:
  gc_json_free(&d);
  gc_buf_free(&a);
  gc_buf_free(&b);
  gc_buf_free(&s);
  if (*err) {
    gc_jwks_free(ks);
    return NULL;
  }
  return ks;
}

/* ---- verification ------------------------------------------------------------------ */

static int fail(gc_jwt_result *r, gc_jwt_code code, const char *msg) {
  r->code = code;
  r->message = msg;
  return -1;
}

static int streq_tok(const gc_jdoc *d, uint32_t t, const char *s) {
  return t && gc_json_streq(d, t, s, strlen(s));
}

/* a NumericDate claim: seconds, integer or not */
static int date_claim(const gc_jdoc *d, uint32_t t, double *out) {
  if (!t || d->tok[t].type != GC_J_NUMBER) return 0;
  *out = gc_json_num(d, t);
  return 1;
}

int gc_jwt_verify(const gc_jwks *keys, const char *tok, size_t len, const gc_jwt_opts *o,
                  gc_jwt_result *r) {
  static const char *const default_issuers[] = {
    "https://api.botframework.com", "https://graph.microsoft.com",
  };
  memset(r, 0, sizeof *r);
  gc_buf_init(&r->claims);
  size_t max = o->max_len ? o->max_len : GC_JWT_DEFAULT_MAX_LEN;
  if (len > max) return fail(r, GC_JWT_TOO_LARGE, "token is larger than allowed");
  const char *dot1 = memchr(tok, '.', len);
  const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok)) : NULL;
  if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)))
    return fail(r, GC_JWT_MALFORMED, "token is not three dot-separated parts");

  gc_buf hb, sig;
  gc_buf_init(&hb);
  gc_buf_init(&sig);
  gc_jdoc hd, cd;
  memset(&hd, 0, sizeof hd);
  memset(&cd, 0, sizeof cd);
  gc_json_limits lim = { max, 8 };
  int rc = -1;
  EVP_MD_CTX *md = NULL;

  /* header: RS256 only, and a kid we know */
  if (gc_b64url_decode(tok, (size_t)(dot1 - tok), &hb) != 0 ||
      gc_json_parse(&hd, hb.p ? hb.p : "", hb.len, &lim, NULL, 0) != 0 ||
      hd.tok[0].type != GC_J_OBJECT) {
    fail(r, GC_JWT_MALFORMED, "token header is not base64url JSON");
    goto out;
  }
  static const char *const hnames[] = { "alg", "kid", "crit" };
  uint32_t hf[3];
  gc_json_fields(&hd, 0, hnames, 3, hf);
  if (!streq_tok(&hd, hf[0], "RS256")) { fail(r, GC_JWT_ALG, "algorithm is not RS256"); goto out; }
  if (hf[2]) {  /* whatever it lists, we understand none of it */
    fail(r, GC_JWT_CRIT, "token header lists critical extensions (crit) this verifier does not understand");
    goto out;
  }
  if (!hf[1] || hd.tok[hf[1]].type != GC_J_STRING) {
    fail(r, GC_JWT_UNKNOWN_KID, "token header has no kid");
    goto out;
  }
  const jwk *key = NULL;
  for (size_t i = 0; keys && i < keys->n && !key; i++)
    if (streq_tok(&hd, hf[1], keys->keys[i].kid)) key = &keys->keys[i];
  if (!key) { fail(r, GC_JWT_UNKNOWN_KID, "no key with the token's kid"); goto out; }

  /* signature over "header.payload" */
  if (gc_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - tok), &sig) != 0 || sig.len == 0) {
    fail(r, GC_JWT_MALFORMED, "signature is not base64url");
    goto out;
  }
  md = EVP_MD_CTX_new();
  if (!md) { fail(r, GC_JWT_MEMORY, "out of memory"); goto out; }
  if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key->pkey) != 1 ||
      EVP_DigestVerify(md, (unsigned char *)sig.p, sig.len, (const unsigned char *)tok,
                       (size_t)(dot2 - tok)) != 1) {
    fail(r, GC_JWT_SIGNATURE, "signature does not verify");
    goto out;
  }

  /* claims, now that they are the service's words */
  if (gc_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &r->claims) != 0 ||
      gc_json_parse(&cd, r->claims.p ? r->claims.p : "", r->claims.len, &lim, NULL, 0) != 0 ||
      cd.tok[0].type != GC_J_OBJECT) {
    fail(r, GC_JWT_MALFORMED, "token claims are not base64url JSON");
    goto out;
  }
  static const char *const cnames[] = { "iss", "aud", "exp", "nbf", "tid" };
  uint32_t cf[5];
  gc_json_fields(&cd, 0, cnames, 5, cf);
  const char *const *iss = o->issuers ? o->issuers : default_issuers;
  size_t niss = o->issuers ? o->nissuers : 2;
  int iss_ok = 0;
  for (size_t i = 0; i < niss && !iss_ok; i++) iss_ok = streq_tok(&cd, cf[0], iss[i]);
  if (!iss_ok) { fail(r, GC_JWT_ISSUER, "issuer is not accepted"); goto out; }
  int aud_ok = 0;
  if (o->audience && cf[1]) {
    if (cd.tok[cf[1]].type == GC_J_STRING) {
      aud_ok = streq_tok(&cd, cf[1], o->audience);
    } else if (cd.tok[cf[1]].type == GC_J_ARRAY) {
      uint32_t a = cf[1] + 1;
      for (uint32_t i = 0; i < cd.tok[cf[1]].len && !aud_ok; i++, a = cd.tok[a].next)
        aud_ok = streq_tok(&cd, a, o->audience);
    }
  }
  if (!aud_ok) { fail(r, GC_JWT_AUDIENCE, "audience is not this bot"); goto out; }
  double exp, nbf;
  if (!date_claim(&cd, cf[2], &exp)) { fail(r, GC_JWT_EXPIRED, "token has no exp"); goto out; }
  if ((double)o->now > exp + (double)o->skew) { fail(r, GC_JWT_EXPIRED, "token has expired"); goto out; }
  if (cf[3] && !date_claim(&cd, cf[3], &nbf)) { fail(r, GC_JWT_MALFORMED, "nbf is not a number"); goto out; }
  if (cf[3] && (double)o->now + (double)o->skew < nbf) {
    fail(r, GC_JWT_NOT_YET_VALID, "token is not valid yet");
    goto out;
  }
  if (!cf[4] || cd.tok[cf[4]].type != GC_J_STRING || cd.tok[cf[4]].len == 0) {
    fail(r, GC_JWT_TENANT, "token has no tid (tenant) claim");
    goto out;
  }
  r->code = GC_JWT_OK;
  r->message = NULL;
  rc = 0;
out:
  EVP_MD_CTX_free(md);
  gc_json_free(&hd);
  gc_json_free(&cd);
  gc_buf_free(&hb);
  gc_buf_free(&sig);
  if (rc != 0) gc_buf_free(&r->claims);
  return rc;
}
