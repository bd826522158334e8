/* lua_notify.c: graphcall.core.parse_notifications, commsNotifications as Lua events.
 *
 * What handlers dispatch on is read eagerly (kind, ids, state, tones, status, resultInfo,
 * roster sequence numbers); everything else stays in the parsed tape until asked for: an
 * event's `data` and a roster participant's other fields are built on first access. The tape
 * and the body text are owned by a "graphcall.notifdoc" userdata that the lazy tables hold.
 *
 * A lazy table's own keys are Graph's fields only, so pairs() and cjson.encode see nothing
 * of the machinery. The lazy tables of one body share a private metatable that holds the
 * rest: {__index = lazy_index, [1] = document, [table] = token}, the token negated for an
 * event, whose token is its resourceData (built as `data`), rather than fields of the table
 * itself. A table loses the metatable once it is built in full. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_glue.h"
#include "notify.h"

#define DOC_MT "graphcall.notifdoc"          /* owns a malloc'd tape: has __gc */
#define DOC_INLINE_MT "graphcall.notifdoc.inline"  /* tape copied inside the userdata */
#define INLINE_TAPE_BYTES (64u << 10)

typedef struct {
  gc_jdoc doc;  /* text points into the body string held as the user value */
} notifdoc;

static int doc_gc(lua_State *L) {
  notifdoc *nd = luaL_checkudata(L, 1, DOC_MT);
  gc_json_free(&nd->doc);
  return 0;
}

static const char *const kinds[] = { "call", "participants", "operation", "contentSharing", "unknown" };

/* ---- small setters ------------------------------------------------------------------- */

static void set_str_tok(lua_State *L, const gc_jdoc *d, uint32_t t, const char *key,
                        gc_buf *scratch) {
  if (!t || d->tok[t].type != GC_J_STRING) return;
  gc_l_push_str(L, d, t, scratch);
  lua_setfield(L, -2, key);
}

static void set_member_str(lua_State *L, const gc_jdoc *d, uint32_t obj, const char *k,
                           gc_buf *scratch) {
  set_str_tok(L, d, obj ? gc_json_get(d, obj, k, strlen(k)) : 0, k, scratch);
}

static void set_span(lua_State *L, const gc_jdoc *d, const gc_buf *aux, gc_span s,
                     const char *key) {
  if (!s.len) return;
  lua_pushlstring(L, (s.aux ? aux->p : d->text) + s.off, s.len);
  lua_setfield(L, -2, key);
}

static void push_int(lua_State *L, int64_t v) {
#ifdef GC_LUA51
  lua_pushnumber(L, (lua_Number)v);
#else
  lua_pushinteger(L, (lua_Integer)v);
#endif
}

/* an integer (also from a numeric string) at token t */
static void set_int_tok(lua_State *L, const gc_jdoc *d, uint32_t t, const char *key) {
  int64_t v;
  if (!t || gc_json_int(d, t, 1, &v) != 0) return;
  push_int(L, v);
  lua_setfield(L, -2, key);
}

static void set_member_int(lua_State *L, const gc_jdoc *d, uint32_t obj, const char *k) {
  set_int_tok(L, d, obj ? gc_json_get(d, obj, k, strlen(k)) : 0, k);
}

static void set_result(lua_State *L, const gc_jdoc *d, uint32_t ri, gc_buf *scratch) {
  if (!ri || d->tok[ri].type != GC_J_OBJECT) return;
  int64_t code = 0, sub = 0;
  int hc, hs;
  uint32_t msg;
  gc_notify_result(d, ri, &code, &hc, &sub, &hs, &msg);
  lua_createtable(L, 0, 3);
  if (hc) { push_int(L, code); lua_setfield(L, -2, "code"); }
  if (hs) { push_int(L, sub); lua_setfield(L, -2, "subcode"); }
  set_str_tok(L, d, msg, "message", scratch);
  lua_setfield(L, -2, "resultInfo");
}

/* Make the table on top lazy: the shared metatable is at docidx (see above). */
static void set_lazy(lua_State *L, int docidx, uint32_t t, int event) {
  lua_pushvalue(L, -1);
  push_int(L, event ? -(int64_t)t : (int64_t)t);
  lua_rawset(L, docidx);
  lua_pushvalue(L, docidx);
  lua_setmetatable(L, -2);
}

/* ---- kinds ------------------------------------------------------------------------- */

static void call_fields(lua_State *L, const gc_jdoc *d, uint32_t item, gc_buf *scratch) {
  if (!item) return;
  static const char *const names[] = { "state", "direction", "tenantId", "callChainId",
                                       "myParticipantId", "toneInfo", "resultInfo" };
  uint32_t f[7];
  gc_json_fields(d, item, names, 7, f);
  const char *state = NULL;
  if (f[0] && d->tok[f[0]].type == GC_J_STRING)
    state = gc_notify_call_state(d->text + d->tok[f[0]].off, d->tok[f[0]].len);
  if (state) {
    lua_pushstring(L, state);
    lua_setfield(L, -2, "state");
  } else {
    set_str_tok(L, d, f[0], "state", scratch);
  }
  for (int i = 1; i < 5; i++) set_str_tok(L, d, f[i], names[i], scratch);
  if (state && strcmp(state, "incoming") == 0) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "incoming");
  }
  uint32_t ti = f[5];
  if (ti && d->tok[ti].type == GC_J_OBJECT) {
    lua_createtable(L, 0, 2);
    set_member_str(L, d, ti, "tone", scratch);
    set_member_int(L, d, ti, "sequenceId");
    lua_setfield(L, -2, "toneInfo");
  }
  set_result(L, d, f[6], scratch);
}

static void participant_proxy(lua_State *L, const gc_jdoc *d, int docidx, uint32_t p,
                              gc_buf *scratch) {
  static const char *const names[] = { "id", "rosterSequenceNumber", "removedState" };
  uint32_t f[3];
  gc_json_fields(d, p, names, 3, f);
  lua_createtable(L, 0, 3);
  set_lazy(L, docidx, p, 0);
  set_str_tok(L, d, f[0], "id", scratch);
  set_int_tok(L, d, f[1], "rosterSequenceNumber");
  lua_pushboolean(L, f[2] && d->tok[f[2]].type != GC_J_NULL);
  lua_setfield(L, -2, "removed");
}

static void push_participants(lua_State *L, const gc_jdoc *d, int docidx, uint32_t arr,
                              gc_buf *scratch) {
  uint32_t n = (arr && d->tok[arr].type == GC_J_ARRAY) ? d->tok[arr].len : 0;
  lua_createtable(L, (int)n, 0);
  uint32_t c = arr + 1;
  int k = 0;
  for (uint32_t i = 0; i < n; i++, c = d->tok[c].next) {
    if (d->tok[c].type != GC_J_OBJECT) continue;
    participant_proxy(L, d, docidx, c, scratch);
    lua_rawseti(L, -2, ++k);
  }
}

static void participants_fields(lua_State *L, const gc_jdoc *d, int docidx, const gc_notif *e,
                                gc_buf *scratch) {
  uint32_t item = e->item_tok;
  uint32_t ot = item ? gc_json_get(d, item, "@odata.type", 11) : 0;
  if (ot && gc_json_streq(d, ot, "#microsoft.graph.deltaParticipants", 34)) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "delta");
    set_member_int(L, d, item, "sequenceNumber");
    push_participants(L, d, docidx, gc_json_get(d, item, "participants", 12), scratch);
  } else if (e->data_tok && d->tok[e->data_tok].type == GC_J_ARRAY) {
    push_participants(L, d, docidx, e->data_tok, scratch);
  } else {
    push_participants(L, d, docidx, 0, scratch);
  }
  lua_setfield(L, -2, "participants");
}

static void operation_fields(lua_State *L, const gc_jdoc *d, const gc_notif *e,
                             const gc_buf *aux, gc_buf *scratch) {
  uint32_t item = e->item_tok;
  if (e->sub_id.len) set_span(L, d, aux, e->sub_id, "operationId");
  else set_str_tok(L, d, item ? gc_json_get(d, item, "id", 2) : 0, "operationId", scratch);
  if (!item) return;
  static const char *const names[] = { "@odata.type", "status", "clientContext", "resultInfo" };
  uint32_t f[4];
  gc_json_fields(d, item, names, 4, f);
  uint32_t ot = f[0];
  if (ot && d->tok[ot].type == GC_J_STRING) {
    char name[64];
    size_t n = gc_notify_optype(d->text + d->tok[ot].off, d->tok[ot].len, name, sizeof name);
    lua_pushlstring(L, n ? name : "unknown", n ? n : 7);
    lua_setfield(L, -2, "operationType");
  }
  uint32_t st = f[1];
  if (st && d->tok[st].type == GC_J_STRING) {
    const char *s = gc_notify_status(d->text + d->tok[st].off, d->tok[st].len);
    if (s) lua_pushstring(L, s); else gc_l_push_str(L, d, st, scratch);
    lua_setfield(L, -2, "status");
  }
  set_str_tok(L, d, f[2], "clientContext", scratch);
  set_result(L, d, f[3], scratch);
  /* the type's own fields (recordingLocation, completionReason, participants, ...) */
  uint32_t c = item + 1;
  for (uint32_t i = 0; i < d->tok[item].len; i++, c = d->tok[c + 1].next) {
    size_t klen;
    const char *k = gc_json_str(d, c, scratch, &klen);
    if (!k || (klen && k[0] == '@')) continue;
    lua_pushlstring(L, k, klen);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    int taken = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (taken || (klen == 2 && memcmp(k, "id", 2) == 0)) { lua_pop(L, 1); continue; }
    gc_l_push_tok(L, d, c + 1, scratch);
    lua_rawset(L, -3);
  }
}

static void sharing_fields(lua_State *L, const gc_jdoc *d, const gc_notif *e,
                           const gc_buf *aux, gc_buf *scratch) {
  set_span(L, d, aux, e->sub_id, "sessionId");
  if (e->data_tok && d->tok[e->data_tok].type == GC_J_ARRAY) {
    gc_l_push_tok(L, d, e->data_tok, scratch);
  } else {
    lua_createtable(L, 1, 0);
    if (e->data_tok) {
      gc_l_push_tok(L, d, e->data_tok, scratch);
      lua_rawseti(L, -2, 1);
    }
  }
  lua_setfield(L, -2, "sessions");
}

/* ---- parse_notifications ------------------------------------------------------------ */

static int needs_doc(const gc_notif *e) {
  return e->kind == GC_N_PARTICIPANTS || e->data_tok;
}

/* The document that lazy tables hold: the tape (inside the userdata when small, so there is
 * no malloc and no finalizer; handed over from the decoder when large) and the body. */
static gc_jdoc *make_doc(lua_State *L, gc_jdoc *d) {
  size_t bytes = (size_t)d->ntok * sizeof(gc_jtok);
  notifdoc *nd;
  if (bytes <= INLINE_TAPE_BYTES) {
    nd = gc_newuserdata_uv(L, sizeof *nd + bytes);
    nd->doc = *d;
    nd->doc.tok = (gc_jtok *)(void *)(nd + 1);
    nd->doc.cap = nd->doc.ntok;
    memcpy(nd->doc.tok, d->tok, bytes);
    luaL_getmetatable(L, DOC_INLINE_MT);
  } else {
    nd = gc_newuserdata_uv(L, sizeof *nd);
    nd->doc = *d;
    d->tok = NULL;
    d->cap = d->ntok = 0;
    luaL_getmetatable(L, DOC_MT);
  }
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  gc_set_uservalue(L, -2);
  return &nd->doc;
}

static void push_event(lua_State *L, const gc_jdoc *d, int docidx, const gc_notif *e,
                       const gc_buf *aux, gc_buf *scratch) {
  static const char *const changes[] = { "created", "updated", "deleted" };
  lua_createtable(L, 0, 12);
  if (e->change < GC_C_OTHER) lua_pushstring(L, changes[e->change]);
  else gc_l_push_str(L, d, e->change_tok, scratch);
  lua_setfield(L, -2, "changeType");
  set_str_tok(L, d, e->url_tok, "resourceUrl", scratch);
  set_str_tok(L, d, e->resource_tok, "resource", scratch);
  if (!e->url_tok) set_str_tok(L, d, e->resource_tok, "resourceUrl", scratch);
  set_span(L, d, aux, e->call_id, "callId");
  lua_pushstring(L, kinds[e->kind]);
  lua_setfield(L, -2, "kind");
  /* 53 bits: an exact number in LuaJIT too */
  push_int(L, (int64_t)(e->hash & ((UINT64_C(1) << 53) - 1)));
  lua_setfield(L, -2, "fingerprint");
  switch (e->kind) {
    case GC_N_CALL: call_fields(L, d, e->item_tok, scratch); break;
    case GC_N_PARTICIPANTS: participants_fields(L, d, docidx, e, scratch); break;
    case GC_N_OPERATION: operation_fields(L, d, e, aux, scratch); break;
    case GC_N_CONTENT_SHARING: sharing_fields(L, d, e, aux, scratch); break;
    default: break;
  }
  /* data, built on first access: a call or an operation is the resource itself, also when
   * the service wraps it in an array; rosters and sharing sessions keep the array */
  uint32_t data = e->data_tok;
  if (e->kind == GC_N_CALL || e->kind == GC_N_OPERATION) data = e->item_tok;
  if (data) set_lazy(L, docidx, data, 1);
}

static lua_Number opt_field(lua_State *L, int t, const char *k, lua_Number def) {
  lua_getfield(L, t, k);
  lua_Number v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* core.parse_notifications(body [, {max_size =, max_depth =, max_notifications =}])
 *   -> events | nil, err */
int gc_l_parse_notifications(lua_State *L) {
  size_t len;
  const char *s;
  if (gc_testudata(L, 1, GC_BODY_MT)) {   /* a body as bytes (graphcall.io's raw_body) */
    s = lua_touserdata(L, 1);
    len = gc_rawlen(L, 1);
  } else {
    s = luaL_checklstring(L, 1, &len);
  }
  gc_json_limits lim = { 0, 0 };
  size_t maxn = GC_NOTIFY_DEFAULT_MAX;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lim.max_size = (size_t)opt_field(L, 2, "max_size", 0);
    lim.max_depth = (int)opt_field(L, 2, "max_depth", 0);
    maxn = (size_t)opt_field(L, 2, "max_notifications", GC_NOTIFY_DEFAULT_MAX);
  }
  lua_settop(L, 1);
  decoder *dec = lua_touserdata(L, lua_upvalueindex(UV_DECODER));
  gc_jdoc *d = &dec->doc;

  /* parse into the decoder's warm token array */
  if (gc_json_parse(d, s, len, &lim, d->tok, d->cap) != 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "invalid JSON: %s at byte %zu", d->error, d->error_at + 1);
    return gc_l_push_error(L, "json", msg, "");
  }
  gc_notif stackbuf[8];
  gc_notif *ev = stackbuf;
  uint32_t value = gc_json_get(d, 0, "value", 5);
  size_t want = (value && d->tok[value].type == GC_J_ARRAY) ? d->tok[value].len : 0;
  if (want > maxn)
    return gc_l_push_error(L, "notification", "too many notifications in one body", "value");
  if (want > 8) ev = lua_newuserdata(L, want * sizeof *ev);  /* collected with the call */
  size_t n;
  const char *err;
  gc_buf *aux = &dec->aux;
  if (gc_notify_scan(d, ev, want ? want : 1, &n, &err, aux) != 0)
    return gc_l_push_error(L, "notification", err, "");

  /* lazy parts need the tape and the body to outlive this call: a document takes both */
  int docidx = 0;
  for (size_t i = 0; i < n && !docidx; i++) {
    if (!needs_doc(&ev[i])) continue;
    d = make_doc(L, d);
    /* the shared metatable of this body's lazy tables, sized for all of them */
    size_t nlazy = 1;
    for (size_t j = i; j < n; j++) {
      nlazy++;
      uint32_t item = ev[j].item_tok;
      if (ev[j].kind == GC_N_PARTICIPANTS && item) nlazy += d->tok[item].len;
    }
    lua_createtable(L, 1, nlazy > 4096 ? 4096 : (int)nlazy);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, lua_upvalueindex(UV_LAZY));
    lua_setfield(L, -2, "__index");
    docidx = lua_gettop(L);
  }

  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    push_event(L, d, docidx, &ev[i], aux, &dec->scratch);
    lua_rawseti(L, -2, (int)i + 1);
  }
  if (dec->scratch.cap > KEEP_BYTES) gc_buf_free(&dec->scratch);
  if (aux->cap > KEEP_BYTES) gc_buf_free(aux);
  if (!docidx && (size_t)dec->doc.cap * sizeof(gc_jtok) > KEEP_BYTES) gc_json_free(&dec->doc);
  return 1;
}

/* ---- lazy tables ------------------------------------------------------------------- */

/* The document and token of lazy table t, from the shared metatable (left on the stack,
 * so the document stays alive); NULL, and nothing pushed, if t is not lazy. */
static notifdoc *lazy_doc(lua_State *L, int t, uint32_t *tok, int *event) {
  if (!lua_getmetatable(L, t)) return NULL;
  lua_rawgeti(L, -1, 1);
  notifdoc *nd = gc_testudata(L, -1, DOC_INLINE_MT);
  if (!nd) nd = gc_testudata(L, -1, DOC_MT);
  lua_pushvalue(L, t);
  lua_rawget(L, -3);
  lua_Number v = lua_tonumber(L, -1);
  lua_pop(L, 2);
  if (!nd || v == 0) { lua_pop(L, 1); return NULL; }
  *event = v < 0;
  *tok = (uint32_t)(v < 0 ? -v : v);
  return nd;
}

/* A participant's fields from the tape into t, and t lazy no more: its entry in the shared
 * metatable (at mt) cleared, its metatable removed. */
static void fill_participant(lua_State *L, int t, int mt, const gc_jdoc *d, uint32_t tok,
                             gc_buf *scratch) {
  gc_l_fill_tok(L, t, d, tok, scratch);
  lua_pushvalue(L, t);
  lua_pushnil(L);
  lua_rawset(L, mt);
  lua_pushnil(L);
  lua_setmetatable(L, t);
}

/* Every participant of the body still lazy, in one pass over the shared metatable (clearing
 * entries during lua_next is allowed): a handler that reads a second participant walks the
 * roster, as a rule, and one pass costs less than a lookup and a call per participant. */
static void fill_rest(lua_State *L, int mt, const gc_jdoc *d, gc_buf *scratch) {
  lua_pushnil(L);
  while (lua_next(L, mt)) {
    if (lua_type(L, -2) == LUA_TTABLE && lua_tonumber(L, -1) > 0)
      fill_participant(L, lua_gettop(L) - 1, mt, d, (uint32_t)lua_tonumber(L, -1), scratch);
    lua_pop(L, 1);
  }
}

/* Build everything still in the tape into t: an event's data, or a participant's fields (and,
 * from the second participant on, those of all the others: mt[2] marks the first done). */
static void materialize(lua_State *L, int t) {
  uint32_t tok;
  int event;
  notifdoc *nd = lazy_doc(L, t, &tok, &event);
  if (!nd) return;
  int mt = lua_gettop(L);
  decoder *dec = lua_touserdata(L, lua_upvalueindex(UV_DECODER));
  if (event) {                           /* an event: data = resourceData */
    lua_pushstring(L, "data");
    gc_l_push_tok(L, &nd->doc, tok, &dec->scratch);
    lua_rawset(L, t);
    lua_pushvalue(L, t);
    lua_pushnil(L);
    lua_rawset(L, mt);
    lua_pushnil(L);
    lua_setmetatable(L, t);
  } else {                               /* a roster participant: all its fields */
    fill_participant(L, t, mt, &nd->doc, tok, &dec->scratch);
    lua_rawgeti(L, mt, 2);
    int first = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (first) {
      lua_pushboolean(L, 1);
      lua_rawseti(L, mt, 2);
    } else {
      fill_rest(L, mt, &nd->doc, &dec->scratch);
    }
  }
  lua_pop(L, 1);
}

int gc_l_lazy_index(lua_State *L) {
  /* an event's only lazy field is its data: a field it does not have decodes nothing */
  size_t klen = 0;
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &klen) : NULL;
  if (!(k && klen == 4 && memcmp(k, "data", 4) == 0)) {
    uint32_t tok;
    int event;
    if (lazy_doc(L, 1, &tok, &event)) {
      lua_pop(L, 1);
      if (event) return 0;
    }
  }
  materialize(L, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, 1);
  return 1;
}

/* core.materialize(t): build a lazy table in full (before pairs(), or to drop the tape); for
 * an event, its data and every roster participant */
int gc_l_materialize(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  materialize(L, 1);
  lua_pushliteral(L, "participants");
  lua_rawget(L, 1);
  if (lua_type(L, 2) == LUA_TTABLE) {
    size_t n = gc_rawlen(L, 2);
    for (size_t i = 1; i <= n; i++) {
      lua_rawgeti(L, 2, (int)i);
      if (lua_type(L, 3) == LUA_TTABLE) materialize(L, 3);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 1);
  return 1;
}

void gc_l_notify_open(lua_State *L) {
  if (luaL_newmetatable(L, DOC_MT)) {
    lua_pushcfunction(L, doc_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newmetatable(L, DOC_INLINE_MT);
  lua_pop(L, 1);
}
