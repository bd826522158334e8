/* lua_x509.c: graphcall.core's certificate credentials (x509.h): the thumbprints of a
 * certificate, whether a key is its key, signing a client assertion, checking one. PEM texts
 * in and out; nothing is kept between calls (a token is asked for once an hour or so). */
#include "jws.h"
#include "jwt.h"
#include "lua_glue.h"
#include "x509.h"

static int fail(lua_State *L, const char *err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

static void push_hex(lua_State *L, const unsigned char *p, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  char s[64];
  for (size_t i = 0; i < n && i < 32; i++) {
    s[2 * i] = hex[p[i] >> 4];
    s[2 * i + 1] = hex[p[i] & 15];
  }
  lua_pushlstring(L, s, 2 * n);
}

static void push_b64url(lua_State *L, const unsigned char *p, size_t n) {
  gc_buf b;
  gc_buf_init(&b);
  gc_b64url_encode(p, n, &b);
  if (b.oom) {
    gc_buf_free(&b);
    luaL_error(L, "out of memory");
    return;
  }
  lua_pushlstring(L, b.p, b.len);
  gc_buf_free(&b);
}

/* core.x509_thumbprints(pem) -> {sha1 = "HEX", x5t = b64url(sha1), x5tS256 = b64url(sha256)}
 * | nil, err */
int gc_l_x509_thumbprints(lua_State *L) {
  size_t len;
  const char *pem = luaL_checklstring(L, 1, &len);
  gc_thumbprints t;
  const char *err = NULL;
  if (gc_x509_thumbprints(pem, len, &t, &err) != 0) return fail(L, err);
  lua_createtable(L, 0, 3);
  push_hex(L, t.sha1, sizeof t.sha1);
  lua_setfield(L, -2, "sha1");
  push_b64url(L, t.sha1, sizeof t.sha1);
  lua_setfield(L, -2, "x5t");
  push_b64url(L, t.sha256, sizeof t.sha256);
  lua_setfield(L, -2, "x5tS256");
  return 1;
}

/* core.x509_key_matches(cert_pem, key_pem) -> true | nil, err */
int gc_l_x509_key_matches(lua_State *L) {
  size_t cl, kl;
  const char *c = luaL_checklstring(L, 1, &cl);
  const char *k = luaL_checklstring(L, 2, &kl);
  const char *err = NULL;
  if (gc_x509_key_matches(c, cl, k, kl, &err) != 0) return fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.x509_sign(key_pem, alg, header_json, claims_json) -> compact JWS | nil, err */
int gc_l_x509_sign(lua_State *L) {
  size_t kl, hl, cl;
  const char *k = luaL_checklstring(L, 1, &kl);
  const char *alg = luaL_checkstring(L, 2);
  const char *h = luaL_checklstring(L, 3, &hl);
  const char *c = luaL_checklstring(L, 4, &cl);
  gc_buf b;
  gc_buf_init(&b);
  const char *err = NULL;
  if (gc_x509_sign(k, kl, alg, h, hl, c, cl, &b, &err) != 0) {
    gc_buf_free(&b);
    return fail(L, err);
  }
  lua_pushlstring(L, b.p, b.len);
  gc_buf_free(&b);
  return 1;
}

/* core.x509_verify(cert_pem, alg, token) -> true | nil, err */
int gc_l_x509_verify(lua_State *L) {
  size_t cl, tl;
  const char *c = luaL_checklstring(L, 1, &cl);
  const char *alg = luaL_checkstring(L, 2);
  const char *t = luaL_checklstring(L, 3, &tl);
  const char *err = NULL;
  if (gc_x509_verify(c, cl, alg, t, tl, &err) != 0) return fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.b64url_decode(s) -> bytes | nil (not base64url without padding) */
int gc_l_b64url_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  gc_buf b;
  gc_buf_init(&b);
  if (gc_b64url_decode(s, len, &b) != 0) {
    gc_buf_free(&b);
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, b.p ? b.p : "", b.len);
  gc_buf_free(&b);
  return 1;
}
