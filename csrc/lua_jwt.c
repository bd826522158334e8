/* lua_jwt.c: graphcall.core.jwks and graphcall.core.verify_jwt. */
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "lua_glue.h"

#define JWKS_MT "graphcall.jwks"

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

void gc_l_jwt_open(lua_State *L) {
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
