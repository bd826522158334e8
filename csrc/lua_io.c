/* lua_io.c: graphcall.io, the Lua face of the I/O half: the loop, the libcurl client, the
 * HTTP listener, TCP streams (Redis), child processes (text to speech). Lua never runs inside libevent or libcurl: a step runs
 * the loop, then Lua takes what finished with loop:pop() and answers from its own stack.
 *
 * Lifetimes: a client or a server holds its loop (user value), and the loop knows them
 * (gc_loop_adopt), so closing or collecting the loop first closes them; a request holds its
 * server. Every object has __gc and __close, and a closed one refuses further use. */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "compat.h"
#include "http_client.h"
#include "http_server.h"
#include "lua_argv.h"
#include "ioloop.h"
#include "proc.h"
#include "tcp.h"

#define LOOP_MT "graphcall.io.loop"
#define HTTP_MT "graphcall.io.http"
#define SERVER_MT "graphcall.io.server"
#define REQ_MT "graphcall.io.request"
#define STREAM_MT "graphcall.io.stream"
#define PROC_MT "graphcall.io.process"

typedef struct { gc_loop *l; } loop_ud;
typedef struct { gc_http *h; gc_loop *l; uint64_t next_id; } http_ud;
typedef struct { gc_server *s; gc_loop *l; } server_ud;
typedef struct { gc_sreq *r; int kept; } req_ud;
typedef struct { gc_tcp *t; gc_loop *l; } stream_ud;
typedef struct { gc_proc *p; gc_loop *l; } proc_ud;

static gc_loop *check_loop(lua_State *L, int i) {
  loop_ud *u = luaL_checkudata(L, i, LOOP_MT);
  if (!u->l) luaL_argerror(L, i, "the loop is closed");
  return u->l;
}

static int fail(lua_State *L, const char *code, const char *msg) {
  lua_pushnil(L);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  return 2;
}

static lua_Number opt_num(lua_State *L, int t, const char *k, lua_Number def) {
  lua_getfield(L, t, k);
  lua_Number v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* a string field, kept alive by the options table until the call returns */
static const char *opt_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *v = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
  lua_pop(L, 1);
  return v;
}

/* ---- the client ---------------------------------------------------------------------- */

static void close_http(void *arg) {
  http_ud *u = arg;
  gc_http_free(u->h);
  u->h = NULL;
  u->l = NULL;
}

static int http_close(lua_State *L) {
  http_ud *u = luaL_checkudata(L, 1, HTTP_MT);
  if (u->h) {
    gc_loop_forget(u->l, u);
    close_http(u);
  }
  return 0;
}

static http_ud *check_http(lua_State *L, int i) {
  http_ud *u = luaL_checkudata(L, i, HTTP_MT);
  if (!u->h) luaL_argerror(L, i, "the client is closed");
  return u;
}

/* http:request{method=, url=, headers = {name = value}, body=, timeout=ms,
 *   connect_timeout=ms, cafile=, max_body=, fresh=bool, once=bool} -> id | nil, err */
static int http_request(lua_State *L) {
  http_ud *u = check_http(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  gc_http_req r;
  memset(&r, 0, sizeof r);
  r.method = opt_str(L, 2, "method");
  r.url = opt_str(L, 2, "url");
  if (!r.url) return luaL_argerror(L, 2, "url is required");
  r.timeout_ms = (long)opt_num(L, 2, "timeout", 0);
  r.connect_timeout_ms = (long)opt_num(L, 2, "connect_timeout", 0);
  r.cafile = opt_str(L, 2, "cafile");
  r.max_body = (size_t)opt_num(L, 2, "max_body", 0);
  lua_getfield(L, 2, "fresh");
  r.fresh_connect = lua_toboolean(L, -1);
  lua_getfield(L, 2, "once");
  r.once = lua_toboolean(L, -1);
  lua_pop(L, 2);
  lua_getfield(L, 2, "body");          /* stack 3: the body, alive for the call */
  if (!lua_isnil(L, 3)) r.body = luaL_checklstring(L, 3, &r.body_len);
  /* headers as "Name: value" lines, in a table at 5 that keeps them alive */
  lua_getfield(L, 2, "headers");       /* 4 */
  lua_newtable(L);                     /* 5 */
  const char *lines[64];
  if (lua_type(L, 4) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      if (r.nheaders == 64) return luaL_argerror(L, 2, "more than 64 headers");
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        return luaL_argerror(L, 2, "headers must map names to strings");
      const char *line = lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
      if (strpbrk(line, "\r\n")) return luaL_argerror(L, 2, "a header must not contain CR or LF");
      lua_rawseti(L, 5, (int)r.nheaders + 1);
      lines[r.nheaders++] = line;
      lua_pop(L, 1);
    }
  }
  r.headers = lines;
  uint64_t id = ++u->next_id;
  const char *err;
  if (gc_http_start(u->h, &r, id, &err) != 0) return fail(L, "transport", err);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int http_cancel(lua_State *L) {
  http_ud *u = check_http(L, 1);
  lua_pushboolean(L, gc_http_cancel(u->h, (uint64_t)luaL_checkinteger(L, 2)) == 0);
  return 1;
}

static int http_in_flight(lua_State *L) {
  http_ud *u = check_http(L, 1);
  lua_pushinteger(L, (lua_Integer)gc_http_in_flight(u->h));
  return 1;
}

/* loop:http{max_host_connections =, max_total_connections =, max_active =} -> client */
static int loop_http(lua_State *L) {
  gc_loop *l = check_loop(L, 1);
  gc_http_opts o = { 0, 0, 0 };
  if (lua_istable(L, 2)) {
    o.max_host_connections = (long)opt_num(L, 2, "max_host_connections", 0);
    o.max_total_connections = (long)opt_num(L, 2, "max_total_connections", 0);
    o.max_active = (long)opt_num(L, 2, "max_active", 0);
  }
  http_ud *u = gc_newuserdata_uv(L, sizeof *u);
  memset(u, 0, sizeof *u);
  gc_setmetatable(L, HTTP_MT);
  lua_pushvalue(L, 1);
  gc_set_uservalue(L, -2);
  u->h = gc_http_new(l, &o);
  if (!u->h) return fail(L, "transport", "could not start libcurl");
  u->l = l;
  if (gc_loop_adopt(l, close_http, u) != 0) {
    close_http(u);
    return luaL_error(L, "out of memory");
  }
  return 1;
}

/* ---- TCP streams ---------------------------------------------------------------------- */

static void close_stream(void *arg) {
  stream_ud *u = arg;
  gc_tcp_free(u->t);
  u->t = NULL;
  u->l = NULL;
}

static int stream_close(lua_State *L) {
  stream_ud *u = luaL_checkudata(L, 1, STREAM_MT);
  if (u->t) {
    gc_loop_forget(u->l, u);
    close_stream(u);
  }
  return 0;
}

/* stream:write(bytes) -> true | nil, err */
static int stream_write(lua_State *L) {
  stream_ud *u = luaL_checkudata(L, 1, STREAM_MT);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (!u->t || !gc_tcp_is_open(u->t)) return fail(L, "closed", "the stream is closed");
  if (gc_tcp_write(u->t, p, n) != 0) return fail(L, "closed", "the stream is closed");
  lua_pushboolean(L, 1);
  return 1;
}

/* loop:tcp(host, port, id [, connect_timeout_ms [, {tls = true, cafile =, servername =}]])
 * -> stream | nil, err; what happens to it comes from loop:pop() as "stream", id, "open" |
 * "data" | "closed", bytes | why */
static int loop_tcp(lua_State *L) {
  gc_loop *l = check_loop(L, 1);
  const char *host = luaL_checkstring(L, 2);
  int port = (int)luaL_checkinteger(L, 3);
  uint64_t id = (uint64_t)luaL_checkinteger(L, 4);
  long timeout = (long)luaL_optinteger(L, 5, 0);
  int tls = 0;
  gc_tcp_tls topts = { NULL, NULL };
  if (lua_type(L, 6) == LUA_TTABLE) {
    lua_getfield(L, 6, "tls");
    tls = lua_toboolean(L, -1);
    lua_pop(L, 1);
    topts.cafile = opt_str(L, 6, "cafile");
    topts.servername = opt_str(L, 6, "servername");
  }
  stream_ud *u = gc_newuserdata_uv(L, sizeof *u);
  memset(u, 0, sizeof *u);
  gc_setmetatable(L, STREAM_MT);
  lua_pushvalue(L, 1);
  gc_set_uservalue(L, -2);
  const char *err = NULL;
  u->t = tls ? gc_tcp_connect_tls(l, host, port, id, timeout, &topts, &err)
             : gc_tcp_connect(l, host, port, id, timeout, &err);
  if (!u->t) return fail(L, "connect", err);
  u->l = l;
  if (gc_loop_adopt(l, close_stream, u) != 0) {
    close_stream(u);
    return luaL_error(L, "out of memory");
  }
  return 1;
}

/* ---- child processes ------------------------------------------------------------------ */

static void close_proc(void *arg) {
  proc_ud *u = arg;
  gc_proc_free(u->p);
  u->p = NULL;
  u->l = NULL;
}

/* process:close(): kill it if it runs; its end is not reported */
static int proc_close(lua_State *L) {
  proc_ud *u = luaL_checkudata(L, 1, PROC_MT);
  if (u->p) {
    gc_loop_forget(u->l, u);
    close_proc(u);
  }
  return 0;
}

/* loop:process({program, arg, ...}, id) -> process | nil, err; its end comes from loop:pop()
 * as "process", id, status, output. No shell: the strings are the arguments as they are. */
static int loop_process(lua_State *L) {
  gc_loop *l = check_loop(L, 1);
  char *argv[GC_MAX_ARGS + 1];
  gc_l_check_argv(L, 2, argv);
  uint64_t id = (uint64_t)luaL_checkinteger(L, 3);
  proc_ud *u = gc_newuserdata_uv(L, sizeof *u);
  memset(u, 0, sizeof *u);
  gc_setmetatable(L, PROC_MT);
  lua_pushvalue(L, 1);
  gc_set_uservalue(L, -2);
  char err[256];
  u->p = gc_proc_spawn(l, argv, id, err, sizeof err);
  if (!u->p) return fail(L, "spawn", err);
  u->l = l;
  if (gc_loop_adopt(l, close_proc, u) != 0) {
    close_proc(u);
    return luaL_error(L, "out of memory");
  }
  return 1;
}

/* ---- the server ---------------------------------------------------------------------- */

static void close_server(void *arg) {
  server_ud *u = arg;
  gc_server_free(u->s);
  u->s = NULL;
  u->l = NULL;
}

static int server_close(lua_State *L) {
  server_ud *u = luaL_checkudata(L, 1, SERVER_MT);
  if (u->s) {
    gc_loop_forget(u->l, u);
    close_server(u);
  }
  return 0;
}

static int server_port(lua_State *L) {
  server_ud *u = luaL_checkudata(L, 1, SERVER_MT);
  if (!u->s) return luaL_argerror(L, 1, "the server is closed");
  lua_pushinteger(L, gc_server_port(u->s));
  return 1;
}

/* server:stats() -> {open=, accepted=, evicted=, late=, accept_errors=, paused=}: what the
 * connection guard counted (http_guard.h) */
static int server_stats(lua_State *L) {
  server_ud *u = luaL_checkudata(L, 1, SERVER_MT);
  if (!u->s) return luaL_argerror(L, 1, "the server is closed");
  gc_guard_stats st;
  gc_server_stats(u->s, &st);
  lua_createtable(L, 0, 6);
  lua_pushnumber(L, (lua_Number)st.open);
  lua_setfield(L, -2, "open");
  lua_pushnumber(L, (lua_Number)st.accepted);
  lua_setfield(L, -2, "accepted");
  lua_pushnumber(L, (lua_Number)st.evicted);
  lua_setfield(L, -2, "evicted");
  lua_pushnumber(L, (lua_Number)st.late);
  lua_setfield(L, -2, "late");
  lua_pushnumber(L, (lua_Number)st.accept_errors);
  lua_setfield(L, -2, "accept_errors");
  lua_pushboolean(L, st.paused);
  lua_setfield(L, -2, "paused");
  return 1;
}

/* loop:listen{host=, port=, cert=, key=, max_body=, max_headers=, timeout=ms, files=dir,
 *   files_prefix=, tag=, max_conns=, max_per_addr=, deadline=ms, raw_body=bool}
 *   -> server | nil, err
 * raw_body: each request's body comes as a GC_BODY_MT userdata (#body, tostring(body)); the
 * server's tag is kept negative to say so (tags are positive). */
static int loop_listen(lua_State *L) {
  gc_loop *l = check_loop(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  gc_server_opts o;
  memset(&o, 0, sizeof o);
  o.host = opt_str(L, 2, "host");
  o.port = (int)opt_num(L, 2, "port", 0);
  o.cert_file = opt_str(L, 2, "cert");
  o.key_file = opt_str(L, 2, "key");
  o.max_body = (size_t)opt_num(L, 2, "max_body", 0);
  o.max_headers = (size_t)opt_num(L, 2, "max_headers", 0);
  o.timeout_ms = (long)opt_num(L, 2, "timeout", 0);
  o.max_conns = (int)opt_num(L, 2, "max_conns", 0);
  o.max_per_addr = (int)opt_num(L, 2, "max_per_addr", 0);
  o.deadline_ms = (long)opt_num(L, 2, "deadline", 0);
  if (o.max_conns < 0 || o.max_per_addr < 0 || o.deadline_ms < 0)
    return luaL_argerror(L, 2, "max_conns, max_per_addr and deadline must not be negative");
  o.files_dir = opt_str(L, 2, "files");
  o.files_prefix = opt_str(L, 2, "files_prefix");
  o.tag = (int)opt_num(L, 2, "tag", 0);
  lua_getfield(L, 2, "raw_body");
  int raw = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (o.tag < 0 || (raw && o.tag == 0)) return luaL_argerror(L, 2, "tag must be positive");
  if (raw) o.tag = -o.tag;
  if (o.port < 0 || o.port > 65535) return luaL_argerror(L, 2, "port out of range");
  if (o.files_prefix && (o.files_prefix[0] != '/' || o.files_prefix[strlen(o.files_prefix) - 1] != '/'))
    return luaL_argerror(L, 2, "files_prefix must start and end with '/'");
  server_ud *u = gc_newuserdata_uv(L, sizeof *u);
  memset(u, 0, sizeof *u);
  gc_setmetatable(L, SERVER_MT);
  lua_pushvalue(L, 1);
  gc_set_uservalue(L, -2);
  const char *err;
  u->s = gc_server_new(l, &o, &err);
  if (!u->s) return fail(L, "listen", err);
  u->l = l;
  if (gc_loop_adopt(l, close_server, u) != 0) {
    close_server(u);
    return luaL_error(L, "out of memory");
  }
  return 1;
}

/* ---- requests ------------------------------------------------------------------------ */

static gc_sreq *check_req(lua_State *L) {
  req_ud *u = luaL_checkudata(L, 1, REQ_MT);
  return u->r;
}

static int req_gc(lua_State *L) {
  req_ud *u = luaL_checkudata(L, 1, REQ_MT);
  gc_sreq_free(u->r);
  u->r = NULL;
  return 0;
}

static int req_header(lua_State *L) {
  gc_sreq *r = check_req(L);
  const char *v = r ? gc_sreq_header(r, luaL_checkstring(L, 2)) : NULL;
  if (v) lua_pushstring(L, v);
  else lua_pushnil(L);
  return 1;
}

static void add_header(void *arg, const char *k, const char *v) {
  lua_State *L = arg;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = k; *p; p++) luaL_addchar(&b, (*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
  luaL_pushresult(&b);
  lua_pushstring(L, v);
  lua_rawset(L, -3);
}

/* req:headers() -> {lowercased name = value} */
static int req_headers(lua_State *L) {
  gc_sreq *r = check_req(L);
  lua_newtable(L);
  if (r) gc_sreq_headers(r, add_header, L);
  return 1;
}

static int req_peer(lua_State *L) {
  gc_sreq *r = check_req(L);
  const char *host = "";
  int port = 0;
  if (r) gc_sreq_peer(r, &host, &port);
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

static int req_pending(lua_State *L) {
  gc_sreq *r = check_req(L);
  lua_pushboolean(L, r && gc_sreq_pending(r));
  return 1;
}

/* req:respond(status [, {name = value}] [, body]) -> true | false (answered already, or
 * its client or server is gone) */
static int req_respond(lua_State *L) {
  gc_sreq *r = check_req(L);
  int status = (int)luaL_checkinteger(L, 2);
  if (status < 100 || status > 599) return luaL_argerror(L, 2, "HTTP status out of range");
  size_t blen = 0;
  const char *body = luaL_optlstring(L, 4, NULL, &blen);
  const char *pairs[2 * 32];
  size_t n = 0;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (n == 32) return luaL_argerror(L, 3, "more than 32 headers");
      const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
      if (!k || !v || lua_type(L, -2) != LUA_TSTRING) return luaL_argerror(L, 3, "headers must map names to strings");
      if (strpbrk(k, "\r\n:") || strpbrk(v, "\r\n")) return luaL_argerror(L, 3, "a header must not contain CR or LF");
      pairs[2 * n] = k;   /* both stay referenced by the table */
      pairs[2 * n + 1] = v;
      n++;
      lua_pop(L, 1);
    }
  }
  lua_pushboolean(L, r && gc_sreq_respond(r, status, pairs, n, body, blen) == 0);
  return 1;
}

/* req:keep(): the handler answers later (the loop answers 500 to one left unanswered) */
static int req_keep(lua_State *L) {
  req_ud *u = luaL_checkudata(L, 1, REQ_MT);
  u->kept = 1;
  return 0;
}

static int req_kept(lua_State *L) {
  req_ud *u = luaL_checkudata(L, 1, REQ_MT);
  lua_pushboolean(L, u->kept);
  return 1;
}

static int req_reset(lua_State *L) {
  gc_sreq *r = check_req(L);
  lua_pushboolean(L, r && gc_sreq_reset(r) == 0);
  return 1;
}

/* ---- the loop ------------------------------------------------------------------------ */

static int loop_close(lua_State *L) {
  loop_ud *u = luaL_checkudata(L, 1, LOOP_MT);
  gc_loop_free(u->l);  /* closes its clients and servers first */
  u->l = NULL;
  return 0;
}

/* loop:step(timeout_ms): run until something is ready or the time passes (0: poll) */
static int loop_step(lua_State *L) {
  gc_loop *l = check_loop(L, 1);
  lua_Number t = luaL_optnumber(L, 2, -1);
  if (gc_loop_step(l, t < 0 ? -1 : (int64_t)(t + 0.999)) != 0) return luaL_error(L, "event loop failed");
  return 0;
}

/* loop:pop() -> what finished, or nothing:
 *   "response", id, status, head, body, errcode|nil, errmsg|nil, sent, seconds
 *   "request", req, method, uri, body, tag (of the server)
 *   "stream", id, "open" | "data" | "closed", bytes | why
 *   "process", id, status, output
 *   "signal", signo */
static int loop_pop(lua_State *L) {
  gc_loop *l = check_loop(L, 1);
  /* everything is pushed while the item is still queued, so a Lua error (out of memory)
   * loses nothing; then it is taken */
  gc_io_item *it = gc_loop_peek(l);
  if (!it) return 0;
  switch (it->kind) {
    case GC_IO_RESPONSE: {
      gc_xfer *x = (gc_xfer *)(void *)it;
      lua_pushliteral(L, "response");
      lua_pushinteger(L, (lua_Integer)x->id);
      lua_pushinteger(L, x->status);
      lua_pushlstring(L, x->head.p ? x->head.p : "", x->head.len);
      lua_pushlstring(L, x->body.p ? x->body.p : "", x->body.len);
      if (x->code == GC_HX_OK) {
        lua_pushnil(L);
        lua_pushnil(L);
      } else {
        lua_pushstring(L, gc_hx_code_name(x->code));
        lua_pushstring(L, x->error);
      }
      lua_pushboolean(L, x->sent);
      lua_pushnumber(L, x->seconds);
      gc_xfer_free((gc_xfer *)(void *)gc_loop_pop(l));
      return 9;
    }
    case GC_IO_REQUEST: {
      gc_sreq *r = gc_sreq_of_item(it);
      lua_pushliteral(L, "request");
      req_ud *u = lua_newuserdata(L, sizeof *u);
      u->r = NULL;
      u->kept = 0;
      gc_setmetatable(L, REQ_MT);
      lua_pushstring(L, gc_sreq_method(r));
      lua_pushstring(L, gc_sreq_uri(r));
      size_t blen;
      const char *body = gc_sreq_body(r, &blen);
      int tag = gc_sreq_tag(r);
      if (tag < 0) {
        void *p = lua_newuserdata(L, blen);
        if (blen) memcpy(p, body, blen);
        luaL_getmetatable(L, GC_BODY_MT);
        lua_setmetatable(L, -2);
        tag = -tag;
      } else {
        lua_pushlstring(L, body, blen);
      }
      lua_pushinteger(L, tag);
      u->r = gc_sreq_of_item(gc_loop_pop(l));  /* from here on the userdata's __gc frees it */
      return 6;
    }
    case GC_IO_STREAM: {
      gc_tcp_item *t = (gc_tcp_item *)(void *)it;
      static const char *const names[] = { "open", "data", "closed" };
      lua_pushliteral(L, "stream");
      lua_pushinteger(L, (lua_Integer)t->id);
      lua_pushstring(L, names[t->event]);
      if (t->event == GC_TCP_DATA) lua_pushlstring(L, t->data, t->len);
      else lua_pushstring(L, t->error);
      gc_loop_pop(l);
      it->drop(it);
      return 4;
    }
    case GC_IO_PROC: {
      gc_proc_item *p = (gc_proc_item *)(void *)it;
      lua_pushliteral(L, "process");
      lua_pushinteger(L, (lua_Integer)p->id);
      lua_pushinteger(L, p->status);
      lua_pushlstring(L, p->output, p->len);
      gc_loop_pop(l);
      it->drop(it);
      return 4;
    }
    case GC_IO_SIGNAL: {
      lua_pushliteral(L, "signal");
      lua_pushinteger(L, ((gc_io_signal *)(void *)it)->signo);
      gc_loop_pop(l);
      it->drop(it);
      return 2;
    }
  }
  gc_loop_pop(l);
  it->drop(it);
  return 0;
}

static int loop_now(lua_State *L) {
  lua_pushnumber(L, gc_loop_now());
  return 1;
}

/* loop:watch_signal("SIGINT" | "SIGTERM" | "SIGHUP" | number) */
static int loop_watch_signal(lua_State *L) {
  gc_loop *l = check_loop(L, 1);
  int signo;
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *n = lua_tostring(L, 2);
    if (strcmp(n, "SIGINT") == 0) signo = SIGINT;
    else if (strcmp(n, "SIGTERM") == 0) signo = SIGTERM;
    else if (strcmp(n, "SIGHUP") == 0) signo = SIGHUP;
    else return luaL_argerror(L, 2, "SIGINT, SIGTERM or SIGHUP");
  } else {
    signo = (int)luaL_checkinteger(L, 2);
  }
  if (gc_loop_watch_signal(l, signo) != 0) return luaL_error(L, "cannot watch signal %d", signo);
  lua_pushinteger(L, signo);
  return 1;
}

/* io.loop() -> a new loop */
static int l_loop(lua_State *L) {
  loop_ud *u = lua_newuserdata(L, sizeof *u);
  u->l = NULL;
  gc_setmetatable(L, LOOP_MT);
  u->l = gc_loop_new();
  if (!u->l) return luaL_error(L, "could not create the event loop");
  return 1;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, gc_loop_now());
  return 1;
}

/* io.wall() -> milliseconds since the epoch (the same across processes, unlike now()) */
static int l_wall(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1e3 + (lua_Number)ts.tv_nsec / 1e6);
  return 1;
}

/* a raw body's length and its bytes as a string */
static int body_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)gc_rawlen(L, 1));
  return 1;
}

static int body_tostring(lua_State *L) {
  lua_pushlstring(L, luaL_checkudata(L, 1, GC_BODY_MT), gc_rawlen(L, 1));
  return 1;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  gc_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

GC_EXPORT int luaopen_graphcall_io(lua_State *L) {
  static const luaL_Reg loop_m[] = {
    { "step", loop_step }, { "pop", loop_pop }, { "now", loop_now }, { "http", loop_http },
    { "listen", loop_listen }, { "watch_signal", loop_watch_signal }, { "close", loop_close },
    { "tcp", loop_tcp }, { "process", loop_process }, { NULL, NULL },
  };
  static const luaL_Reg http_m[] = {
    { "request", http_request }, { "cancel", http_cancel }, { "in_flight", http_in_flight },
    { "close", http_close }, { NULL, NULL },
  };
  static const luaL_Reg server_m[] = { { "port", server_port }, { "stats", server_stats },
                                       { "close", server_close }, { NULL, NULL } };
  static const luaL_Reg req_m[] = {
    { "header", req_header }, { "headers", req_headers }, { "peer", req_peer },
    { "pending", req_pending }, { "respond", req_respond }, { "reset", req_reset },
    { "keep", req_keep }, { "kept", req_kept }, { NULL, NULL },
  };
  new_class(L, LOOP_MT, loop_m, loop_close);
  new_class(L, HTTP_MT, http_m, http_close);
  new_class(L, SERVER_MT, server_m, server_close);
  new_class(L, REQ_MT, req_m, req_gc);
  static const luaL_Reg stream_m[] = { { "write", stream_write }, { "close", stream_close }, { NULL, NULL } };
  new_class(L, STREAM_MT, stream_m, stream_close);
  static const luaL_Reg proc_m[] = { { "close", proc_close }, { NULL, NULL } };
  new_class(L, PROC_MT, proc_m, proc_close);
  luaL_newmetatable(L, GC_BODY_MT);
  lua_pushcfunction(L, body_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, body_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = { { "loop", l_loop }, { "now", l_now }, { "wall", l_wall }, { NULL, NULL } };
  lua_newtable(L);
  gc_setfuncs(L, funcs, 0);
  return 1;
}
