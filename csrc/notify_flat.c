/* notify_flat.c: commsNotifications as flat records (notify_flat.h). The choices of what is
 * read eagerly and how are lua_notify.c's; the two are checked against each other on every
 * fixture by spec/notify_spec.lua under LuaJIT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"
#include "notify_flat.h"

#define KEEP (1u << 20)          /* larger warm buffers are released before the next body */
#define MAX_BODY ((size_t)64 << 20)

struct gc_flat {
  gc_flat_out out;
  gc_jdoc doc;
  gc_buf aux, scratch, strs;
  gc_notif *notif;
  size_t notif_cap;
  gc_flat_event *ev;
  size_t ev_cap;
  gc_flat_participant *part;
  size_t part_cap, npart;
  int oom;
};

gc_flat *gc_flat_new(void) {
  gc_flat *f = calloc(1, sizeof *f);
  return f;
}

void gc_flat_free(gc_flat *f) {
  if (!f) return;
  gc_json_free(&f->doc);
  gc_buf_free(&f->aux);
  gc_buf_free(&f->scratch);
  gc_buf_free(&f->strs);
  free(f->notif);
  free(f->ev);
  free(f->part);
  free(f);
}

static const gc_fstr ABSENT = { 0, -1 };

static gc_fstr copy_str(gc_flat *f, const char *p, size_t len) {
  gc_fstr s = { GC_FLAT_STRS | (uint32_t)f->strs.len, (int32_t)len };
  gc_buf_add(&f->strs, p, len);
  if (f->strs.oom) f->oom = 1;
  return s;
}

/* a string token: a range of the body, or decoded into strs when it has escapes */
static gc_fstr str_tok(gc_flat *f, uint32_t t) {
  if (!t || f->doc.tok[t].type != GC_J_STRING) return ABSENT;
  const gc_jtok *k = &f->doc.tok[t];
  if (!(k->flags & GC_J_ESCAPED)) return (gc_fstr){ k->off, (int32_t)k->len };
  size_t len;
  const char *p = gc_json_str(&f->doc, t, &f->scratch, &len);
  if (!p) { f->oom = 1; return ABSENT; }
  return copy_str(f, p, len);
}

static gc_fstr span(gc_flat *f, gc_span s) {
  if (!s.len) return ABSENT;
  if (s.aux) return copy_str(f, f->aux.p + s.off, s.len);
  return (gc_fstr){ s.off, (int32_t)s.len };
}

/* the JSON text of any value token */
static void text_of(const gc_jdoc *d, uint32_t t, uint32_t *off, uint32_t *len) {
  const gc_jtok *k = &d->tok[t];
  uint32_t start = k->type == GC_J_STRING ? k->off - 1 : k->off;
  uint32_t end = k->type == GC_J_NUMBER ? k->off + k->len : k->end;
  *off = start;
  *len = end - start;
}

static int int_tok(const gc_jdoc *d, uint32_t t, double *out) {
  int64_t v;
  if (!t || gc_json_int(d, t, 1, &v) != 0) return 0;
  *out = (double)v;
  return 1;
}

static void result(gc_flat *f, gc_flat_event *e, uint32_t ri) {
  if (!ri || f->doc.tok[ri].type != GC_J_OBJECT) return;
  int64_t code = 0, sub = 0;
  int hc, hs;
  uint32_t msg;
  gc_notify_result(&f->doc, ri, &code, &hc, &sub, &hs, &msg);
  e->flags |= GC_F_RESULT;
  if (hc) { e->flags |= GC_F_CODE; e->code = (double)code; }
  if (hs) { e->flags |= GC_F_SUBCODE; e->subcode = (double)sub; }
  e->message = str_tok(f, msg);
}

static void call_fields(gc_flat *f, gc_flat_event *e, uint32_t item) {
  const gc_jdoc *d = &f->doc;
  if (!item) return;
  static const char *const names[] = { "state", "direction", "tenantId", "callChainId",
                                       "myParticipantId", "toneInfo", "resultInfo" };
  uint32_t t[7];
  gc_json_fields(d, item, names, 7, t);
  const char *state = NULL;
  if (t[0] && d->tok[t[0]].type == GC_J_STRING)
    state = gc_notify_call_state(d->text + d->tok[t[0]].off, d->tok[t[0]].len);
  /* as the body writes it when that is already Graph's spelling: no copy */
  if (state && !gc_json_streq(d, t[0], state, strlen(state))) e->state = copy_str(f, state, strlen(state));
  else e->state = str_tok(f, t[0]);
  e->direction = str_tok(f, t[1]);
  e->tenant_id = str_tok(f, t[2]);
  e->call_chain_id = str_tok(f, t[3]);
  e->my_participant_id = str_tok(f, t[4]);
  if (state && strcmp(state, "incoming") == 0) e->flags |= GC_F_INCOMING;
  if (t[5] && d->tok[t[5]].type == GC_J_OBJECT) {
    e->flags |= GC_F_TONE;
    e->tone = str_tok(f, gc_json_get(d, t[5], "tone", 4));
    if (int_tok(d, gc_json_get(d, t[5], "sequenceId", 10), &e->sequence_id))
      e->flags |= GC_F_SEQID;
  }
  result(f, e, t[6]);
}

static void add_participants(gc_flat *f, gc_flat_event *e, uint32_t arr) {
  const gc_jdoc *d = &f->doc;
  e->flags |= GC_F_PARTS;
  e->part_first = (uint32_t)f->npart;
  e->part_count = 0;
  if (!arr || d->tok[arr].type != GC_J_ARRAY) return;
  uint32_t n = d->tok[arr].len;
  if (f->part_cap - f->npart < n) {
    size_t cap = f->part_cap ? f->part_cap : 64;
    while (cap - f->npart < n) cap *= 2;
    gc_flat_participant *p = realloc(f->part, cap * sizeof *p);
    if (!p) { f->oom = 1; return; }
    f->part = p;
    f->part_cap = cap;
  }
  static const char *const names[] = { "id", "rosterSequenceNumber", "removedState" };
  uint32_t c = arr + 1;
  for (uint32_t i = 0; i < n; i++, c = d->tok[c].next) {
    if (d->tok[c].type != GC_J_OBJECT) continue;
    uint32_t t[3];
    gc_json_fields(d, c, names, 3, t);
    gc_flat_participant *p = &f->part[f->npart++];
    p->id = str_tok(f, t[0]);
    p->flags = 0;
    p->rsn = 0;
    if (int_tok(d, t[1], &p->rsn)) p->flags |= GC_FP_RSN;
    if (t[2] && d->tok[t[2]].type != GC_J_NULL) p->flags |= GC_FP_REMOVED;
    text_of(d, c, &p->off, &p->len);
    e->part_count++;
  }
}

static void participants_fields(gc_flat *f, gc_flat_event *e, const gc_notif *n) {
  const gc_jdoc *d = &f->doc;
  uint32_t item = n->item_tok;
  uint32_t ot = item ? gc_json_get(d, item, "@odata.type", 11) : 0;
  if (ot && gc_json_streq(d, ot, "#microsoft.graph.deltaParticipants", 34)) {
    e->flags |= GC_F_DELTA;
    if (int_tok(d, gc_json_get(d, item, "sequenceNumber", 14), &e->sequence_number))
      e->flags |= GC_F_SEQNUM;
    add_participants(f, e, gc_json_get(d, item, "participants", 12));
  } else {
    add_participants(f, e, n->data_tok);
  }
}

static void operation_fields(gc_flat *f, gc_flat_event *e, const gc_notif *n) {
  const gc_jdoc *d = &f->doc;
  uint32_t item = n->item_tok;
  e->sub_id = n->sub_id.len ? span(f, n->sub_id)
                            : str_tok(f, item ? gc_json_get(d, item, "id", 2) : 0);
  if (!item) return;
  static const char *const names[] = { "@odata.type", "status", "clientContext", "resultInfo" };
  uint32_t t[4];
  gc_json_fields(d, item, names, 4, t);
  if (t[0] && d->tok[t[0]].type == GC_J_STRING) {
    char name[64];
    size_t len = gc_notify_optype(d->text + d->tok[t[0]].off, d->tok[t[0]].len, name, sizeof name);
    e->op_type = len ? copy_str(f, name, len) : copy_str(f, "unknown", 7);
  }
  if (t[1] && d->tok[t[1]].type == GC_J_STRING) {
    static const char *const st[] = { "notStarted", "running", "completed", "failed" };
    const char *s = gc_notify_status(d->text + d->tok[t[1]].off, d->tok[t[1]].len);
    for (int i = 0; s && i < 4; i++)
      if (s == st[i] || strcmp(s, st[i]) == 0) e->status = (uint8_t)(i + 1);
    if (!e->status) e->status_text = str_tok(f, t[1]);
  }
  e->client_context = str_tok(f, t[2]);
  result(f, e, t[3]);
  text_of(d, item, &e->item_off, &e->item_len);
}

static void fill(gc_flat *f, gc_flat_event *e, const gc_notif *n) {
  const gc_jdoc *d = &f->doc;
  memset(e, 0, sizeof *e);
  gc_fstr *absent[] = { &e->change_type, &e->url, &e->resource, &e->call_id, &e->sub_id,
                        &e->state, &e->direction, &e->tenant_id, &e->call_chain_id,
                        &e->my_participant_id, &e->tone, &e->message, &e->client_context,
                        &e->op_type, &e->status_text };
  for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) *absent[i] = ABSENT;
  e->kind = n->kind;
  e->change = n->change;
  if (n->change >= GC_C_OTHER) e->change_type = str_tok(f, n->change_tok);
  e->url = str_tok(f, n->url_tok);
  e->resource = str_tok(f, n->resource_tok);
  e->call_id = span(f, n->call_id);
  e->fingerprint = (double)(n->hash & ((UINT64_C(1) << 53) - 1));
  switch (n->kind) {
    case GC_N_CALL: call_fields(f, e, n->item_tok); break;
    case GC_N_PARTICIPANTS: participants_fields(f, e, n); break;
    case GC_N_OPERATION: operation_fields(f, e, n); break;
    case GC_N_CONTENT_SHARING:
      e->sub_id = span(f, n->sub_id);
      if (n->data_tok) {
        text_of(d, n->data_tok, &e->item_off, &e->item_len);
        if (d->tok[n->data_tok].type == GC_J_ARRAY) e->flags |= GC_F_ITEM_ARRAY;
      }
      break;
    default: break;
  }
  uint32_t data = (n->kind == GC_N_CALL || n->kind == GC_N_OPERATION) ? n->item_tok : n->data_tok;
  if (data) text_of(d, data, &e->data_off, &e->data_len);
}

static const gc_flat_out *fail(gc_flat *f, const char *code, const char *msg, const char *path) {
  f->out.nev = f->out.npart = 0;
  f->out.err_code = code;
  f->out.err_path = path;
  snprintf(f->out.err_msg, sizeof f->out.err_msg, "%s", msg);
  return &f->out;
}

/* release what a huge body left warm, before the next one */
static void trim(gc_flat *f) {
  if ((size_t)f->doc.cap * sizeof(gc_jtok) > KEEP) gc_json_free(&f->doc);
  if (f->scratch.cap > KEEP || f->scratch.oom) gc_buf_free(&f->scratch);
  if (f->strs.cap > KEEP || f->strs.oom) gc_buf_free(&f->strs);
  if (f->aux.cap > KEEP || f->aux.oom) gc_buf_free(&f->aux);
  if (f->part_cap * sizeof *f->part > KEEP) {
    free(f->part);
    f->part = NULL;
    f->part_cap = 0;
  }
}

const gc_flat_out *gc_flat_parse(gc_flat *f, const char *body, size_t len, size_t max_size,
                                 int max_depth, size_t max_n) {
  trim(f);
  f->oom = 0;
  f->npart = 0;
  f->strs.len = 0;
  f->out.err_code = f->out.err_path = NULL;
  f->out.err_msg[0] = 0;
  if (len >= MAX_BODY) return fail(f, "json", "body too large", "");
  gc_json_limits lim = { max_size, max_depth };
  gc_jdoc *d = &f->doc;
  if (gc_json_parse(d, body, len, &lim, d->tok, d->cap) != 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "invalid JSON: %s at byte %zu", d->error, d->error_at + 1);
    return fail(f, "json", msg, "");
  }
  uint32_t value = gc_json_get(d, 0, "value", 5);
  size_t want = (value && d->tok[value].type == GC_J_ARRAY) ? d->tok[value].len : 0;
  if (want > max_n) return fail(f, "notification", "too many notifications in one body", "value");
  size_t cap = want ? want : 1;
  if (f->notif_cap < cap) {
    gc_notif *nn = realloc(f->notif, cap * sizeof *nn);
    gc_flat_event *ne = nn ? realloc(f->ev, cap * sizeof *ne) : NULL;
    if (nn) f->notif = nn;
    if (ne) f->ev = ne;
    if (!nn || !ne) return fail(f, "memory", "out of memory", "");
    f->notif_cap = f->ev_cap = cap;
  }
  size_t n;
  const char *err;
  if (gc_notify_scan(d, f->notif, cap, &n, &err, &f->aux) != 0)
    return fail(f, "notification", err, "");
  for (size_t i = 0; i < n; i++) fill(f, &f->ev[i], &f->notif[i]);
  if (f->oom) return fail(f, "memory", "out of memory", "");
  f->out.ev = f->ev;
  f->out.nev = (uint32_t)n;
  f->out.part = f->part;
  f->out.npart = (uint32_t)f->npart;
  f->out.strs = f->strs.p;
  f->out.strs_len = f->strs.len;
  return &f->out;
}
