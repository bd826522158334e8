/* compat.h: the few Lua API differences between Lua 5.4 and LuaJIT 2.1 (Lua 5.1 API). */
#ifndef GC_COMPAT_H
#define GC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* The module is built with -fvisibility=hidden: only luaopen_* is exported, and the core's
 * functions call each other directly, not through the PLT. */
#if defined(__GNUC__)
#define GC_EXPORT __attribute__((visibility("default")))
#else
#define GC_EXPORT
#endif

/* A request body handed to Lua as bytes in a userdata rather than a string (graphcall.io's
 * listen{raw_body = true}): LuaJIT interns every string, and bodies of one length that differ
 * only where its hash does not look (a call's key presses) fall into one chain of the string
 * table. graphcall.core's parse_notifications takes either. */
#define GC_BODY_MT "graphcall.body"

#if defined(LUA_JITLIBNAME) || LUA_VERSION_NUM == 501
#define GC_LUA51 1
#define gc_rawlen(L, i) lua_objlen((L), (i))
#define gc_isinteger(L, i) 0
/* PUC Lua 5.1 headers (luarocks --lua-version=5.1) lack luaL_setfuncs; LuaJIT has it. Ours
 * works for both. */
static inline void gc_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name; l++) {
    for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
/* a userdata with one user value: a table holding it, as 5.1 userdata have only an env */
static inline void *gc_newuserdata_uv(lua_State *L, size_t sz) { return lua_newuserdata(L, sz); }
static inline void gc_set_uservalue(lua_State *L, int ud) {  /* pops the value */
  if (ud < 0) ud = lua_gettop(L) + ud + 1;
  lua_createtable(L, 1, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  lua_setfenv(L, ud);
}
static inline void gc_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}
static inline void *gc_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (!p || !lua_getmetatable(L, ud)) return NULL;
  luaL_getmetatable(L, tname);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}
#else
#define gc_testudata luaL_testudata
#define gc_setmetatable luaL_setmetatable
#define gc_setfuncs luaL_setfuncs
#define gc_newuserdata_uv(L, sz) lua_newuserdatauv((L), (sz), 1)
#define gc_set_uservalue(L, ud) lua_setiuservalue((L), (ud), 1)
#define gc_rawlen(L, i) lua_rawlen((L), (i))
#define gc_isinteger(L, i) lua_isinteger((L), (i))
#endif

#endif
