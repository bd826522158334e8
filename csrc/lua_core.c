/* lua_core.c: graphcall.core, the Lua face of the wire half. The only C here that includes
 * lua.h; everything below it is plain C (encode, json, schema). */
#include <stdint.h>
#include <string.h>

#include "compat.h"
#include "encode.h"
#include "json.h"
#include "lua_glue.h"
#include "notify.h"
#include "pack.h"
#include "schema.h"


/* ---- build: walk a Lua table into the encoder --------------------------------------- */

static const char ODATA[] = "@odata.type";

/* __jsontype in the metatable ("array"/"object", the dkjson convention), else NULL */
static const char *jsontype(lua_State *L, int idx) {
  const char *r = NULL;
  if (luaL_getmetafield(L, idx, "__jsontype")) {
    r = lua_tostring(L, -1);
    if (r && strcmp(r, "array") == 0) r = "array";
    else if (r && strcmp(r, "object") == 0) r = "object";
    else r = NULL;
    lua_pop(L, 1);
  }
  return r;
}

/* Number of elements if table idx is a proper sequence 1..n, 0 if empty, -1 if it has
 * other keys, -2 if it has integer keys with holes. */
static long sequence_length(lua_State *L, int idx) {
  long count = 0;
  double max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER) { lua_pop(L, 1); return -1; }
    double k = lua_tonumber(L, -1);
    /* range first: converting an out-of-range double is undefined */
    if (!(k >= 1 && k < 9007199254740992.0) || k != (double)(int64_t)k) { lua_pop(L, 1); return -1; }
    if (k > max) max = k;
    count++;
  }
  if ((double)count != max) return -2;
  return count;
}

/* The encoder userdata: the C encoder plus what the walk needs from this Lua state. */
typedef struct {
  gc_enc e;                /* first: walk() gets &encoder.e and casts back */
  const char *odata_key;   /* content of the interned "@odata.type" string (upvalue 3) */
} encoder;

static int walk(lua_State *L, gc_enc *e, int idx);

static int walk_array(lua_State *L, gc_enc *e, int idx, long n) {
  if (gc_enc_begin_array(e)) return -1;
  for (long i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, (int)i);
    int r = walk(L, e, lua_gettop(L));
    lua_pop(L, 1);
    if (r) return -1;
  }
  return gc_enc_end_array(e);
}

static int walk_object(lua_State *L, gc_enc *e, int idx) {
  const char *odata = NULL;
  size_t olen = 0;
  lua_pushvalue(L, lua_upvalueindex(UV_ODATA)); /* "@odata.type", interned once */
  lua_rawget(L, idx);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      return gc_enc_fail(e, GC_E_TYPE, "@odata.type must be a string");
    }
    odata = lua_tolstring(L, -1, &olen);
  }
  /* the string stays referenced by the table, and on the stack until we return */
  int r = gc_enc_begin_object(e, odata, olen);
  if (r == 0) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        int numeric = lua_type(L, -2) == LUA_TNUMBER;
        lua_pop(L, 2);
        r = gc_enc_fail(e, GC_E_TYPE, numeric ? "expected an object, got array items"
                                              : "object keys must be strings");
        break;
      }
      size_t klen;
      const char *k = lua_tolstring(L, -2, &klen);
      /* short strings are interned in 5.4 and LuaJIT: same content, same address */
      if (k == ((encoder *)e)->odata_key) { lua_pop(L, 1); continue; }
      if (gc_enc_key(e, k, klen) || walk(L, e, lua_gettop(L))) { lua_pop(L, 2); r = -1; break; }
      lua_pop(L, 1);
    }
    if (r == 0) r = gc_enc_end_object(e);
  }
  lua_pop(L, 1);
  return r;
}

static int walk_table(lua_State *L, gc_enc *e, int idx) {
  if (!lua_checkstack(L, 8)) return gc_enc_fail(e, GC_E_MEMORY, "Lua stack exhausted");
  gc_expect want = gc_enc_expect(e);
  /* where the schema says object, the table is walked as one: no sequence pass */
  if (want == GC_EXPECT_OBJECT) return walk_object(L, e, idx);
  const char *jt = jsontype(L, idx);  /* luaL_getmetafield: cheap without a metatable */
  long n = sequence_length(L, idx);
  if (jt && strcmp(jt, "object") == 0) {
    if (want == GC_EXPECT_ARRAY && n == 0) return walk_array(L, e, idx, 0);
    return walk_object(L, e, idx);
  }
  if (n == -2) return gc_enc_fail(e, GC_E_TYPE, "array has holes (nil items)");
  if (want == GC_EXPECT_ARRAY) {
    if (n < 0) return gc_enc_begin_object(e, NULL, 0);  /* reported as a type mismatch */
    return walk_array(L, e, idx, n);
  }
  if (n > 0 || (n == 0 && jt)) return walk_array(L, e, idx, n);
  return walk_object(L, e, idx);
}

static int walk(lua_State *L, gc_enc *e, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      return gc_enc_string(e, s, len);
    }
    case LUA_TNUMBER:
      if (gc_isinteger(L, idx)) return gc_enc_integer(e, (int64_t)lua_tointeger(L, idx));
      return gc_enc_number(e, (double)lua_tonumber(L, idx));
    case LUA_TBOOLEAN:
      return gc_enc_bool(e, lua_toboolean(L, idx));
    case LUA_TTABLE:
      return walk_table(L, e, idx);
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) return gc_enc_null(e);  /* cjson.null */
      /* fallthrough */
    default: {
      char msg[64];
      snprintf(msg, sizeof msg, "a %s cannot be sent as JSON", luaL_typename(L, idx));
      return gc_enc_fail(e, GC_E_TYPE, msg);
    }
  }
}

/* Encoder and decoder state live in userdata kept as upvalues: reused across calls (their
 * buffers stay warm), and freed by __gc even if a Lua error (out of memory) cuts a call short. */
#define ENC_MT "graphcall.encoder"
#define DEC_MT "graphcall.decoder"


static int enc_gc(lua_State *L) {
  encoder *enc = luaL_checkudata(L, 1, ENC_MT);
  gc_enc_free(&enc->e);
  return 0;
}

static int dec_gc(lua_State *L) {
  decoder *d = luaL_checkudata(L, 1, DEC_MT);
  gc_json_free(&d->doc);
  gc_buf_free(&d->scratch);
  gc_buf_free(&d->aux);
  return 0;
}

/* What an encoding gives Lua: the text, or nil and the error; a big buffer is let go. */
static int finish(lua_State *L, gc_enc *e, int r) {
  int n;
  if (r || e->err.code) {
    n = gc_l_push_error(L, gc_errcode_name(e->err.code), e->err.message, e->err.path);
  } else {
    lua_pushlstring(L, e->out.p, e->out.len);
    n = 1;
  }
  if (e->out.cap > KEEP_BYTES || e->out.oom) gc_buf_free(&e->out);
  return n;
}

/* core.build(name, spec) -> json | nil, err */
static int l_build(lua_State *L) {
  size_t nlen;
  const char *name = luaL_checklstring(L, 1, &nlen);
  luaL_checktype(L, 2, LUA_TTABLE);
  int root = gc_root_find(name, nlen);
  if (root < 0) return luaL_argerror(L, 1, lua_pushfstring(L, "unknown type or action '%s'", name));
  encoder *enc = lua_touserdata(L, lua_upvalueindex(UV_ENCODER));
  gc_enc *e = &enc->e;
  gc_enc_reset(e, root);
  return finish(L, e, walk(L, e, 2));
}

/* core.check(type, value) -> true | nil, err: a value as the service sends it (a resource, an
 * operation, a notification), against Graph's schema: no property the schema does not declare
 * (annotations aside), every enum member known, every type right; nothing is required. */
static int l_check(lua_State *L) {
  size_t nlen;
  const char *name = luaL_checklstring(L, 1, &nlen);
  luaL_checktype(L, 2, LUA_TTABLE);
  int root = gc_root_find(name, nlen);
  if (root < 0) return luaL_argerror(L, 1, lua_pushfstring(L, "unknown type '%s'", name));
  encoder *enc = lua_touserdata(L, lua_upvalueindex(UV_ENCODER));
  gc_enc *e = &enc->e;
  gc_enc_reset(e, root);
  e->check = 1;
  int n = finish(L, e, walk(L, e, 2));
  if (n == 1) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  return n;
}

/* core.encode(value) -> json | nil, err: plain JSON, no schema (integers exact, other numbers
 * with the digits that read back the same, "/" unescaped, UTF-8 checked): what graphcall keeps */
static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  encoder *enc = lua_touserdata(L, lua_upvalueindex(UV_ENCODER));
  gc_enc *e = &enc->e;
  gc_enc_reset(e, GC_ROOT_PLAIN);
  return finish(L, e, walk(L, e, 1));
}

/* core.fields(kind) -> the names of the properties (or an action's parameters) of a kind
 * build() takes, or nil */
static int l_fields(lua_State *L) {
  size_t nlen;
  const char *name = luaL_checklstring(L, 1, &nlen);
  int t = gc_root_find(name, nlen);
  if (t < 0) return 0;
  const gc_type *ty = &gc_types[t];
  lua_createtable(L, ty->nfields, 0);
  for (unsigned i = 0; i < ty->nfields; i++) {
    const gc_field *f = &gc_fields[ty->field0 + i];
    lua_pushlstring(L, f->name, f->len);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* core.types() -> array of names build() takes */
static int l_types(lua_State *L) {
  lua_createtable(L, gc_ntypes, 0);
  for (int t = 0; t < gc_ntypes; t++) {
    const char *n = gc_types[t].name;
    if (strncmp(n, "action:", 7) == 0) n += 7;
    lua_pushstring(L, n);
    lua_rawseti(L, -2, t + 1);
  }
  return 1;
}

/* ---- decode: JSON text to Lua tables ------------------------------------------------ */

/* core.decode(text [, max_size [, max_depth]]) -> value | nil, err */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  gc_json_limits lim = { (size_t)luaL_optnumber(L, 2, 0), (int)luaL_optinteger(L, 3, 0) };
  decoder *d = lua_touserdata(L, lua_upvalueindex(UV_DECODER));
  gc_jtok *tok = d->doc.tok;
  uint32_t cap = d->doc.cap;
  int r = gc_json_parse(&d->doc, s, len, &lim, tok, cap);
  if (r != 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "invalid JSON: %s at byte %zu", d->doc.error, d->doc.error_at + 1);
    return gc_l_push_error(L, "json", msg, "");
  }
  gc_l_push_tok(L, &d->doc, 0, &d->scratch);
  if ((size_t)d->doc.cap * sizeof(gc_jtok) > KEEP_BYTES) gc_json_free(&d->doc);
  if (d->scratch.cap > KEEP_BYTES) gc_buf_free(&d->scratch);
  return 1;
}

/* core.decode_into(text, list [, max_depth]) -> true | nil, err: for each (table, offset,
 * length) of list, the JSON object at that byte range of text set into the table, member by
 * member, unless the table has the key (graphcall.flat's lazy participants, in one call) */
static int l_decode_into(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  gc_json_limits lim = { len, (int)luaL_optinteger(L, 3, 0) };
  lua_settop(L, 2);
  decoder *d = lua_touserdata(L, lua_upvalueindex(UV_DECODER));
  int n = (int)gc_rawlen(L, 2), r = 0;
  for (int i = 1; i + 2 <= n && r == 0; i += 3) {
    lua_rawgeti(L, 2, i);
    lua_rawgeti(L, 2, i + 1);
    lua_rawgeti(L, 2, i + 2);
    lua_Number off = lua_tonumber(L, 4), n2 = lua_tonumber(L, 5);
    if (lua_type(L, 3) != LUA_TTABLE || !(off >= 0 && n2 > 0 && off + n2 <= (lua_Number)len))
      return luaL_argerror(L, 2, "(table, offset, length) triples within the text expected");
    r = gc_json_parse(&d->doc, s + (size_t)off, (size_t)n2, &lim, d->doc.tok, d->doc.cap);
    if (r == 0) gc_l_fill_tok(L, 3, &d->doc, 0, &d->scratch);
    lua_settop(L, 2);
  }
  if (r != 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "invalid JSON: %s", d->doc.error);
    gc_l_push_error(L, "json", msg, "");
  }
  if ((size_t)d->doc.cap * sizeof(gc_jtok) > KEEP_BYTES) gc_json_free(&d->doc);
  if (d->scratch.cap > KEEP_BYTES) gc_buf_free(&d->scratch);
  if (r != 0) return 2;
  lua_pushboolean(L, 1);
  return 1;
}

/* core.hash(text) -> 16 hex digits (64-bit, not cryptographic): names for cached files */
static int l_hash(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char out[17];
  snprintf(out, sizeof out, "%016llx", (unsigned long long)gc_hash64(s, len));
  lua_pushlstring(L, out, 16);
  return 1;
}

/* core.pack(text [, packed]) -> packed: text packed, or appended to a packed text as a block */
static int l_pack(lua_State *L) {
  size_t tlen, plen = 0;
  const char *text = luaL_checklstring(L, 1, &tlen);
  const char *packed = luaL_optlstring(L, 2, "", &plen);
  gc_buf out;
  gc_buf_init(&out);
  const char *err = NULL;
  if (gc_pack_append(&out, packed, plen, text, tlen, &err) != 0) {
    gc_buf_free(&out);
    return luaL_error(L, "graphcall.core.pack: %s", err);
  }
  lua_pushlstring(L, out.p, out.len);
  gc_buf_free(&out);
  return 1;
}

/* core.unpack(packed) -> text, or nil and an error */
static int l_unpack(lua_State *L) {
  size_t plen;
  const char *packed = luaL_checklstring(L, 1, &plen);
  gc_buf out;
  gc_buf_init(&out);
  const char *err = NULL;
  if (gc_unpack(&out, packed, plen, &err) != 0) {
    gc_buf_free(&out);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushlstring(L, out.p ? out.p : "", out.len);
  gc_buf_free(&out);
  return 1;
}

static const luaL_Reg funcs[] = {
  { "build", l_build },
  { "encode", l_encode },
  { "check", l_check },
  { "fields", l_fields },
  { "types", l_types },
  { "decode", l_decode },
  { "decode_into", l_decode_into },
  { "parse_notifications", gc_l_parse_notifications },
  { "materialize", gc_l_materialize },
  { "jwks", gc_l_jwks },
  { "verify_jwt", gc_l_verify_jwt },
  { "rsa_key", gc_l_rsa_key },
  { "uuid", gc_l_uuid },
  { "hash", l_hash },
  { "pack", l_pack },
  { "unpack", l_unpack },
  { "resp_command", gc_l_resp_command },
  { "resp_reader", gc_l_resp_reader },
  { "resp_slot", gc_l_resp_slot },
  { "spawn", gc_l_spawn },
  { "reap", gc_l_reap },
  { "private_file", gc_l_private_file },
  { "private_dir", gc_l_private_dir },
  { "x509_thumbprints", gc_l_x509_thumbprints },
  { "x509_key_matches", gc_l_x509_key_matches },
  { "x509_sign", gc_l_x509_sign },
  { "x509_verify", gc_l_x509_verify },
  { "b64url_decode", gc_l_b64url_decode },
  { NULL, NULL },
};

GC_EXPORT int luaopen_graphcall_core(lua_State *L) {
  gc_l_push_open(L);
  gc_l_notify_open(L);
  gc_l_jwt_open(L);
  gc_l_resp_open(L);
  if (luaL_newmetatable(L, ENC_MT)) {
    lua_pushcfunction(L, enc_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, DEC_MT)) {
    lua_pushcfunction(L, dec_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  encoder *enc = lua_newuserdata(L, sizeof *enc);
  gc_enc_init(&enc->e, 0);
  luaL_getmetatable(L, ENC_MT);
  lua_setmetatable(L, -2);
  decoder *d = lua_newuserdata(L, sizeof *d);
  memset(d, 0, sizeof *d);
  gc_buf_init(&d->scratch);
  gc_buf_init(&d->aux);
  luaL_getmetatable(L, DEC_MT);
  lua_setmetatable(L, -2);
  lua_pushlstring(L, ODATA, sizeof ODATA - 1);
  enc->odata_key = lua_tostring(L, -1);  /* kept alive as an upvalue of every function */
  for (int i = 0; i < 3; i++) lua_pushvalue(L, -3);
  lua_pushcclosure(L, gc_l_lazy_index, 3);  /* the __index of lazy tables, upvalue 4 */
  gc_setfuncs(L, funcs, 4);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  luaL_getmetatable(L, ERROR_MT);
  lua_setfield(L, -2, "error_mt");
  return 1;
}
