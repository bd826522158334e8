/* lua_spawn.c: graphcall.core.spawn and reap, for nginx (graphcall.ngx.loop): a worker starts
 * a program and polls for its end between light-thread sleeps, never blocking. Standalone
 * bots use the loop's child processes (graphcall.io) instead. */

#include "lua_glue.h"
#include "launch.h"
#include "lua_argv.h"

/* core.spawn({program, arg, ...}, outpath) -> pid | nil, err: output (stdout and stderr) to
 * the file outpath */
int gc_l_spawn(lua_State *L) {
  char *argv[GC_MAX_ARGS + 1];
  gc_l_check_argv(L, 1, argv);
  const char *out = luaL_checkstring(L, 2);
  pid_t pid;
  char err[256];
  if (gc_spawn(argv, -1, out, &pid, err, sizeof err) != 0) return gc_l_push_error(L, "spawn", err, NULL);
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

/* core.reap(pid) -> status (it ended) | nil (it runs) | false (no child any more: reaped by
 * someone else, its status unknown) */
int gc_l_reap(lua_State *L) {
  int status = 0;
  int r = gc_reap((pid_t)luaL_checkinteger(L, 1), &status);
  if (r > 0) lua_pushinteger(L, status);
  else if (r == 0) lua_pushnil(L);
  else lua_pushboolean(L, 0);
  return 1;
}
