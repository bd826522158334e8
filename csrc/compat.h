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
#else
#define gc_setfuncs luaL_setfuncs
#define gc_rawlen(L, i) lua_rawlen((L), (i))
#define gc_isinteger(L, i) lua_isinteger((L), (i))
#endif

#endif
