/* libFuzzer target: Redis replies (outside input, from the server) through graphcall's reader
 * as Lua sees it (hiredis's reader under csrc/lua_resp.c, Lua 5.4): the input is fed in two
 * pieces split where its first byte says, then every complete reply is taken and turned into
 * Lua values. A protocol error must be an error, never a crash or a leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua_glue.h"

int gc_l_resp_reader(lua_State *L);
void gc_l_resp_open(lua_State *L);

static int run(lua_State *L) {
  const char *data = lua_touserdata(L, 1);
  size_t size = (size_t)lua_tointeger(L, 2);
  size_t cut = size ? ((unsigned char)data[0] * size) / 256 : 0;
  gc_l_resp_reader(L);                          /* the reader, at index 3 */
  for (int piece = 0; piece < 2; piece++) {
    const char *p = piece ? data + cut : data;
    size_t n = piece ? size - cut : cut;
    lua_getfield(L, 3, "feed");
    lua_pushvalue(L, 3);
    lua_pushlstring(L, p, n);
    lua_call(L, 2, 0);
    for (int i = 0; i < 10000; i++) {           /* every complete reply */
      lua_getfield(L, 3, "get");
      lua_pushvalue(L, 3);
      lua_call(L, 1, 3);
      int got = lua_toboolean(L, -3);
      lua_pop(L, 3);
      if (!got) break;
    }
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = luaL_newstate();
  if (!L) abort();
  gc_l_resp_open(L);
  lua_pushcfunction(L, run);
  lua_pushlightuserdata(L, (void *)data);
  lua_pushinteger(L, (lua_Integer)size);
  (void)lua_pcall(L, 2, 0, 0);                  /* a protocol error raises: that is fine */
  lua_close(L);
  return 0;
}
