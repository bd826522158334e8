/* lua_argv.h: a program's argument vector from a Lua list of strings, for the two bindings
 * that start programs (lua_io.c's loop:process, lua_spawn.c's core.spawn). */
#ifndef GC_LUA_ARGV_H
#define GC_LUA_ARGV_H

#include <stddef.h>

#include "compat.h"

#define GC_MAX_ARGS 64

/* Fill argv (GC_MAX_ARGS + 1 slots) from the list at index idx, NULL-terminated; raises an
 * argument error if it is empty, too long or holds anything but strings. The strings stay
 * the list's: it must stay on the stack while argv is used. */
static inline void gc_l_check_argv(lua_State *L, int idx, char **argv) {
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t n = gc_rawlen(L, idx);
  if (n == 0) luaL_argerror(L, idx, "a program to run");
  if (n > GC_MAX_ARGS) luaL_argerror(L, idx, "too many arguments");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, idx, "arguments are strings");
    argv[i] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[n] = NULL;
}

#endif
