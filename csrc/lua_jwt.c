/* lua_jwt.c: graphcall.core's crypto: jwks and verify_jwt (the bot's side), rsa_key and
 * its jwk/sign (the emulator's side), and uuid. */
#include <stdlib.h>
#include <string.h>

#include "jws.h"
#include "jwt.h"
#include "lua_glue.h"

#define JWKS_MT "graphcall.jwks"
#define RSA_MT "graphcall.rsa"

typedef struct {
  gc_jwks *keys;
} jwks_ud;

static int jwks_gc(lua_State *L) {
  jwks_ud *u = luaL_checkudata(L, 1, JWKS_MT);
  gc_jwks_free(u->keys);
  u->keys = NULL;
  return 0;
}

static int jwks_count(lua_State *L) {
  jwks_ud *u = luaL_checkudata(L, 1, JWKS_MT);
  lua_pushinteger(L, (lua_Integer)gc_jwks_count(u->keys));
  return 1;
}

/* core.jwks(json) -> keyset | nil, err */
int gc_l_jwks(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  jwks_ud *u = lua_newuserdata(L, sizeof *u);
  u->keys = NULL;
  luaL_getmetatable(L, JWKS_MT);
  lua_setmetatable(L, -2);
  const char *err;
  u->keys = gc_jwks_parse(s, len, &err);
  if (!u->keys) return gc_l_push_error(L, "jwks", err, "");
  return 1;
}

/* core.verify_jwt(keyset, token, audience, issuers|nil, now, skew [, max_len])
 *   -> claims | nil, err */
int gc_l_verify_jwt(lua_State *L) {
  jwks_ud *u = luaL_checkudata(L, 1, JWKS_MT);
  size_t len;
  const char *tok = luaL_checklstring(L, 2, &len);
  const char *aud = luaL_checkstring(L, 3);
  const char *iss[8];
  size_t niss = 0;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    for (int i = 1; i <= 8; i++) {
      lua_rawgeti(L, 4, i);
      const char *s = lua_tostring(L, -1);
      lua_pop(L, 1);  /* the string stays referenced by the table */
      if (!s) break;
      iss[niss++] = s;
    }
  }
  gc_jwt_opts o = {
    aud, lua_isnoneornil(L, 4) ? NULL : iss, niss,
    (int64_t)luaL_checknumber(L, 5), (int64_t)luaL_optnumber(L, 6, 300),
    (size_t)luaL_optnumber(L, 7, 0),
  };
  gc_jwt_result r;
  if (gc_jwt_verify(u->keys, tok, len, &o, &r) != 0)
    return gc_l_push_error(L, gc_jwt_code_name(r.code), r.message, "");
  /* the claims, as Lua values: the text moves into a Lua string first, so nothing leaks if
   * building the table raises, and the decoder's tape (freed by its __gc) reads it */
  lua_pushlstring(L, r.claims.p, r.claims.len);
  gc_buf_free(&r.claims);
  size_t cl;
  const char *ctext = lua_tolstring(L, -1, &cl);
  decoder *dec = lua_touserdata(L, lua_upvalueindex(UV_DECODER));
  if (gc_json_parse(&dec->doc, ctext, cl, NULL, dec->doc.tok, dec->doc.cap) != 0)
    return gc_l_push_error(L, "malformed", "token claims are not JSON", "");
  gc_l_push_tok(L, &dec->doc, 0, &dec->scratch);
  return 1;
}

/* ---- signing (the emulator) ----------------------------------------------------------- */

typedef struct {
  gc_rsa *key;
} rsa_ud;

static int rsa_gc(lua_State *L) {
  rsa_ud *u = luaL_checkudata(L, 1, RSA_MT);
  gc_rsa_free(u->key);
  u->key = NULL;
  return 0;
}

static gc_rsa *check_rsa(lua_State *L) {
  rsa_ud *u = luaL_checkudata(L, 1, RSA_MT);
  if (!u->key) luaL_argerror(L, 1, "the key is freed");
  return u->key;
}

/* push the buffer as a string and free it (also when pushing raises: no leak in practice,
 * as lua_pushlstring only fails on out of memory, which then ends the script) */
static int push_buf(lua_State *L, gc_buf *b, int ok, const char *what) {
  if (!ok) {
    gc_buf_free(b);
    return luaL_error(L, "%s failed", what);
  }
  lua_pushlstring(L, b->p, b->len);
  gc_buf_free(b);
  return 1;
}

/* key:jwk(kid) -> the public key as JWK JSON text */
static int rsa_jwk(lua_State *L) {
  gc_rsa *k = check_rsa(L);
  const char *kid = luaL_checkstring(L, 2);
  gc_buf b;
  gc_buf_init(&b);
  if (gc_rsa_jwk(k, kid, &b) != 0) {
    gc_buf_free(&b);
    return luaL_argerror(L, 2, "kid must be letters, digits, '-', '_' or '.'");
  }
  return push_buf(L, &b, 1, "jwk");
}

/* key:sign(header_json, claims_json) -> compact RS256 JWS */
static int rsa_sign(lua_State *L) {
  gc_rsa *k = check_rsa(L);
  size_t hl, cl;
  const char *h = luaL_checklstring(L, 2, &hl);
  const char *c = luaL_checklstring(L, 3, &cl);
  gc_buf b;
  gc_buf_init(&b);
  return push_buf(L, &b, gc_jws_sign(k, h, hl, c, cl, &b) == 0, "signing");
}

/* core.rsa_key([bits = 2048]) -> a new RSA key */
int gc_l_rsa_key(lua_State *L) {
  int bits = (int)luaL_optinteger(L, 1, 2048);
  if (bits < 2048 || bits > 8192) return luaL_argerror(L, 1, "bits must be 2048 to 8192");
  rsa_ud *u = lua_newuserdata(L, sizeof *u);
  u->key = NULL;
  luaL_getmetatable(L, RSA_MT);
  lua_setmetatable(L, -2);
  u->key = gc_rsa_generate(bits);
  if (!u->key) return luaL_error(L, "RSA key generation failed");
  return 1;
}

/* core.uuid() -> a random UUID (version 4), as a client-request-id wants */
int gc_l_uuid(lua_State *L) {
  char s[37];
  if (gc_uuid4(s) != 0) return luaL_error(L, "no randomness available");
  lua_pushlstring(L, s, 36);
  return 1;
}

void gc_l_jwt_open(lua_State *L) {
  if (luaL_newmetatable(L, RSA_MT)) {
    lua_pushcfunction(L, rsa_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, rsa_gc);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, rsa_jwk);
    lua_setfield(L, -2, "jwk");
    lua_pushcfunction(L, rsa_sign);
    lua_setfield(L, -2, "sign");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, JWKS_MT)) {
    lua_pushcfunction(L, jwks_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, jwks_gc);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, jwks_count);
    lua_setfield(L, -2, "count");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}
