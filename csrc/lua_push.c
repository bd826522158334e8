/* lua_push.c: what every file of the binding pushes: errors as values, and parsed JSON
 * (tape tokens) as Lua values. The bottom of the binding; it calls nothing above it. */
#include <stdint.h>
#include <string.h>

#include "lua_glue.h"

/* ---- errors as values --------------------------------------------------------------- */

static int error_tostring(lua_State *L) {
  lua_getfield(L, 1, "path");
  lua_getfield(L, 1, "message");
  const char *path = lua_tostring(L, -2);
  const char *msg = lua_tostring(L, -1);
  if (path && *path) lua_pushfstring(L, "%s: %s", path, msg ? msg : "?");
  else lua_pushstring(L, msg ? msg : "?");
  return 1;
}

/* Push nil, {code=, message=, path=} and return 2. */
int gc_l_push_error(lua_State *L, const char *code, const char *message, const char *path) {
  lua_pushnil(L);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  lua_pushstring(L, path ? path : "");
  lua_setfield(L, -2, "path");
  luaL_getmetatable(L, ERROR_MT);
  lua_setmetatable(L, -2);
  return 2;
}

void gc_l_push_open(lua_State *L) {
  if (luaL_newmetatable(L, ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

/* ---- JSON tokens as Lua values ------------------------------------------------------ */

void gc_l_push_str(lua_State *L, const gc_jdoc *d, uint32_t t, gc_buf *scratch) {
  size_t len;
  const char *s = gc_json_str(d, t, scratch, &len);
  if (!s) luaL_error(L, "out of memory");
  lua_pushlstring(L, s, len);
}

void gc_l_push_tok(lua_State *L, const gc_jdoc *d, uint32_t t, gc_buf *scratch) {
  const gc_jtok *k = &d->tok[t];
  switch (k->type) {
    case GC_J_NULL: lua_pushlightuserdata(L, NULL); break;
    case GC_J_TRUE: lua_pushboolean(L, 1); break;
    case GC_J_FALSE: lua_pushboolean(L, 0); break;
    case GC_J_STRING: gc_l_push_str(L, d, t, scratch); break;
    case GC_J_NUMBER: {
      int64_t v;
#ifndef GC_LUA51
      if (gc_json_int(d, t, 0, &v) == 0) { lua_pushinteger(L, (lua_Integer)v); break; }
#else
      (void)v;
#endif
      lua_pushnumber(L, (lua_Number)gc_json_num(d, t));
      break;
    }
    case GC_J_ARRAY: {
      luaL_checkstack(L, 4, "JSON nested too deep");
      lua_createtable(L, (int)k->len, 0);
      uint32_t c = t + 1;
      for (uint32_t i = 1; i <= k->len; i++) {
        gc_l_push_tok(L, d, c, scratch);
        lua_rawseti(L, -2, (int)i);
        c = d->tok[c].next;
      }
      break;
    }
    case GC_J_OBJECT: {
      luaL_checkstack(L, 4, "JSON nested too deep");
      lua_createtable(L, 0, (int)k->len);
      uint32_t c = t + 1;
      for (uint32_t i = 0; i < k->len; i++) {
        gc_l_push_str(L, d, c, scratch);
        gc_l_push_tok(L, d, c + 1, scratch);
        lua_rawset(L, -3);
        c = d->tok[c + 1].next;
      }
      break;
    }
  }
}

/* The members of object token t set into the table at idx (an absolute index), each unless the
 * table has that key already: a lazy table's eager fields, or what a handler set on it. Nothing
 * if t is not an object. */
void gc_l_fill_tok(lua_State *L, int idx, const gc_jdoc *d, uint32_t t, gc_buf *scratch) {
  const gc_jtok *k = &d->tok[t];
  if (k->type != GC_J_OBJECT) return;
  luaL_checkstack(L, 4, "JSON nested too deep");
  uint32_t c = t + 1;
  for (uint32_t i = 0; i < k->len; i++) {
    gc_l_push_str(L, d, c, scratch);
    lua_pushvalue(L, -1);
    lua_rawget(L, idx);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      gc_l_push_tok(L, d, c + 1, scratch);
      lua_rawset(L, idx);
    } else {
      lua_pop(L, 2);
    }
    c = d->tok[c + 1].next;
  }
}
