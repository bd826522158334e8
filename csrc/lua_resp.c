/* lua_resp.c: graphcall.core's Redis protocol (RESP) codec, hiredis's command formatter and
 * reply reader, which do no I/O: the standalone transport (graphcall.io TCP streams) and the
 * OpenResty one (cosockets) feed the same reader. Replies become Lua values: status and
 * bulk strings as strings, integers as integers, nil as graphcall.null, arrays as tables;
 * an error reply is an error value, {err = message} inside an array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "lua_glue.h"

#define READER_MT "graphcall.resp.reader"
#define MAX_ARGS 4096
#define MAX_BUF ((size_t)64 << 20)   /* bytes of unread input a reader may hold */
/* What one reply may announce. hiredis 0.14 allocates an array for the count in its header
 * before any element arrives (`*399999999` is a 3.2 GB calloc), so the count is refused in
 * the reply-object hook, summed over the reply's nested arrays; a bulk string is bounded by
 * MAX_BUF (its bytes must have arrived before hiredis makes it). */
#define MAX_ELEMENTS (1 << 20)

/* core.resp_command(arg, ...) -> the command's bytes; numbers are written as Lua does */
int gc_l_resp_command(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 1) return luaL_error(L, "resp_command: no command");
  if (n > MAX_ARGS) return luaL_error(L, "resp_command: more than %d arguments", MAX_ARGS);
  const char **argv = lua_newuserdata(L, (size_t)n * (sizeof(char *) + sizeof(size_t)));
  size_t *lens = (size_t *)(void *)(argv + n);
  for (int i = 1; i <= n; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      return luaL_argerror(L, i, "a string or a number");
    argv[i - 1] = lua_tolstring(L, i, &lens[i - 1]);  /* numbers converted in place */
  }
  char *cmd = NULL;
  int len = redisFormatCommandArgv(&cmd, n, argv, lens);
  if (len < 0 || !cmd) return luaL_error(L, "out of memory");
  lua_pushlstring(L, cmd, (size_t)len);
  redisFreeCommand(cmd);
  return 1;
}

typedef struct {
  redisReader *r;
  redisReplyObjectFunctions fn;              /* hiredis's own, with the array hook bounded */
  const redisReplyObjectFunctions *base;
  long long elements;                        /* announced so far by the reply being read */
  char refused[96];                          /* why the hook refused, for the error */
} reader_ud;

static void *create_array(const redisReadTask *task, int elements) {
  reader_ud *u = task->privdata;
  if (!task->parent) u->elements = 0;        /* a new reply */
  if (elements > 0) u->elements += elements;
  if (elements > MAX_ELEMENTS || u->elements > MAX_ELEMENTS) {
    snprintf(u->refused, sizeof u->refused,
             "a reply announcing more than %d elements", MAX_ELEMENTS);
    return NULL;                             /* hiredis stops with an error, allocates nothing */
  }
  return u->base->createArray(task, elements);
}

static reader_ud *check_reader(lua_State *L) {
  reader_ud *u = luaL_checkudata(L, 1, READER_MT);
  if (!u->r) luaL_argerror(L, 1, "the reader is closed");
  return u;
}

static int reader_close(lua_State *L) {
  reader_ud *u = luaL_checkudata(L, 1, READER_MT);
  if (u->r) redisReaderFree(u->r);
  u->r = NULL;
  return 0;
}

/* reader:feed(bytes) */
static int reader_feed(lua_State *L) {
  reader_ud *u = check_reader(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (u->r->len - u->r->pos + n > MAX_BUF) return luaL_error(L, "a Redis reply larger than 64 MiB");
  if (redisReaderFeed(u->r, p, n) != REDIS_OK) return luaL_error(L, "out of memory");
  lua_pushboolean(L, 1);
  return 1;
}

static void push_reply(lua_State *L, const redisReply *r, int nested) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: lua_pushlstring(L, r->str, r->len); break;
    case REDIS_REPLY_INTEGER:
#ifdef GC_LUA51
      lua_pushnumber(L, (lua_Number)r->integer);
#else
      lua_pushinteger(L, (lua_Integer)r->integer);
#endif
      break;
    case REDIS_REPLY_NIL: lua_pushlightuserdata(L, NULL); break;
    case REDIS_REPLY_ERROR:
      (void)nested;
      lua_createtable(L, 0, 1);
      lua_pushlstring(L, r->str, r->len);
      lua_setfield(L, -2, "err");
      break;
    case REDIS_REPLY_ARRAY:
      luaL_checkstack(L, 4, "Redis reply nested too deep");
      lua_createtable(L, (int)r->elements, 0);
      for (size_t i = 0; i < r->elements; i++) {
        push_reply(L, r->element[i], 1);
        lua_rawseti(L, -2, (int)i + 1);
      }
      break;
    default: lua_pushnil(L); break;
  }
}

/* reader:get() -> true, value | true, nil, message (an error reply) | false (not complete
 * yet) | raises on a protocol error (the connection cannot be trusted after it) */
static int reader_get(lua_State *L) {
  reader_ud *u = check_reader(L);
  void *reply = NULL;
  if (redisReaderGetReply(u->r, &reply) != REDIS_OK)
    return luaL_error(L, "Redis protocol error: %s", u->refused[0] ? u->refused : u->r->errstr);
  if (!reply) {
    lua_pushboolean(L, 0);
    return 1;
  }
  redisReply *r = reply;
  lua_pushboolean(L, 1);
  if (r->type == REDIS_REPLY_ERROR) {
    lua_pushnil(L);
    lua_pushlstring(L, r->str, r->len);
    freeReplyObject(reply);
    return 3;
  }
  /* a Lua error (out of memory) while pushing would leak the reply: push under pcall-free
   * code only, so free after, and accept the leak on OOM as lua-cjson does for its buffers */
  push_reply(L, r, 0);
  freeReplyObject(reply);
  return 2;
}

/* Redis Cluster's key slot: CRC16 (XMODEM) of the key, or of its hash tag (what is between
 * the first '{' and the next '}', when that is not empty), modulo 16384 */
static unsigned crc16(const unsigned char *p, size_t n) {
  unsigned crc = 0;
  while (n--) {
    crc ^= (unsigned)*p++ << 8;
    for (int i = 0; i < 8; i++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
  }
  return crc & 0xffff;
}

static unsigned key_slot(const char *key, size_t len) {
  const char *open = memchr(key, '{', len);
  if (open) {
    size_t rest = len - (size_t)(open - key) - 1;
    const char *close = memchr(open + 1, '}', rest);
    if (close && close > open + 1) return crc16((const unsigned char *)open + 1, (size_t)(close - open - 1)) & 16383;
  }
  return crc16((const unsigned char *)key, len) & 16383;
}

/* core.resp_slot(key) -> the key's slot in a Redis Cluster (0..16383) */
int gc_l_resp_slot(lua_State *L) {
  size_t len;
  const char *key = luaL_checklstring(L, 1, &len);
  lua_pushinteger(L, (lua_Integer)key_slot(key, len));
  return 1;
}

/* core.resp_reader() -> a reader */
int gc_l_resp_reader(lua_State *L) {
  reader_ud *u = lua_newuserdata(L, sizeof *u);
  u->r = NULL;
  u->elements = 0;
  u->refused[0] = '\0';
  luaL_getmetatable(L, READER_MT);
  lua_setmetatable(L, -2);
  u->r = redisReaderCreate();
  if (!u->r) return luaL_error(L, "out of memory");
  u->base = u->r->fn;                        /* hiredis's defaults, static in the library */
  u->fn = *u->base;
  u->fn.createArray = create_array;
  u->r->fn = &u->fn;                         /* a userdata never moves: the pointer stays good */
  u->r->privdata = u;
  return 1;
}

void gc_l_resp_open(lua_State *L) {
  if (luaL_newmetatable(L, READER_MT)) {
    static const luaL_Reg m[] = { { "feed", reader_feed }, { "get", reader_get },
                                  { "close", reader_close }, { NULL, NULL } };
    lua_newtable(L);
    gc_setfuncs(L, m, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, reader_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, reader_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}
