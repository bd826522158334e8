/* compat.h: the few Lua API differences between Lua 5.4 and LuaJIT 2.1 (Lua 5.1 API). */
#ifndef GC_COMPAT_H
#define GC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if defined(LUA_JITLIBNAME) || LUA_VERSION_NUM == 501
#define GC_LUA51 1
#define gc_rawlen(L, i) lua_objlen((L), (i))
#define gc_isinteger(L, i) 0
#else
#define gc_rawlen(L, i) lua_rawlen((L), (i))
#define gc_isinteger(L, i) lua_isinteger((L), (i))
#endif

#endif
