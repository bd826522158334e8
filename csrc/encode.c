#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "schema.h"
#include "swar.h"
#include "utf8.h"

static const char *const errnames[] = {
  "ok", "required", "one_of", "type", "enum", "range", "https", "max_items", "utf8",
  "unknown_type", "type_required", "depth", "memory", "state", "unknown",
};

const char *gc_errcode_name(gc_errcode c) {
  return (unsigned)c < sizeof(errnames) / sizeof(errnames[0]) ? errnames[c] : "unknown";
}

/* ---- JSON text ---------------------------------------------------------------------- */

/* 0: copy as is; otherwise the character after the backslash ('u' = \u00XX) */
static const char esc[256] = {
  'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
  'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
  0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

int gc_json_escape(gc_buf *b, const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  /* worst case \u00XX per byte */
  if (gc_buf_reserve(b, len * 6 + 2) != 0) return 0;
  char *o = b->p + b->len;
  size_t i = 0;
  while (i < len) {
    while (i + 8 <= len && gc_swar_plain8(u + i)) {
      memcpy(o, u + i, 8);
      o += 8;
      i += 8;
    }
    if (i >= len) break;
    unsigned c = u[i];
    if (c < 0x80) {
      char e = esc[c];
      if (!e) { *o++ = (char)c; i++; continue; }
      *o++ = '\\';
      *o++ = e;
      if (e == 'u') {
        static const char hex[] = "0123456789abcdef";
        *o++ = '0'; *o++ = '0'; *o++ = hex[c >> 4]; *o++ = hex[c & 15];
      }
      i++;
    } else {
      size_t n = gc_utf8_seq(u + i, len - i);
      if (!n) return -1;
      memcpy(o, u + i, n);
      o += n;
      i += n;
    }
  }
  b->len = (size_t)(o - b->p);
  return 0;
}

static int is_loopback(const char *h, size_t n) {
  if (n == 9 && strncmp(h, "localhost", 9) == 0) return 1;
  if (n == 5 && strncmp(h, "[::1]", 5) == 0) return 1;
  if (n >= 4 && strncmp(h, "127.", 4) == 0) {
    for (size_t i = 4; i < n; i++)
      if (!(h[i] == '.' || (h[i] >= '0' && h[i] <= '9'))) return 0;
    return 1;
  }
  return 0;
}

int gc_uri_is_secure(const char *uri, size_t len) {
  size_t skip;
  int https;
  if (len > 8 && strncasecmp(uri, "https://", 8) == 0) { skip = 8; https = 1; }
  else if (len > 7 && strncasecmp(uri, "http://", 7) == 0) { skip = 7; https = 0; }
  else return 0;
  const char *h = uri + skip, *end = uri + len, *p = h;
  while (p < end && *p != '/' && *p != '?' && *p != '#') p++;
  /* authority is [userinfo@]host[:port] */
  const char *at = memchr(h, '@', (size_t)(p - h));
  if (at) h = at + 1;
  const char *hend = p;
  if (h < p && *h == '[') {
    const char *rb = memchr(h, ']', (size_t)(p - h));
    if (!rb) return 0;
    hend = rb + 1;
  } else {
    const char *colon = memchr(h, ':', (size_t)(p - h));
    if (colon) hend = colon;
  }
  if (hend == h) return 0;
  for (const char *c = h; c < hend; c++)
    if ((unsigned char)*c <= ' ') return 0;
  return https || is_loopback(h, (size_t)(hend - h));
}

/* ---- errors and paths --------------------------------------------------------------- */

static void path_add(char *path, size_t *n, size_t cap, const char *s, size_t len) {
  if (*n + len >= cap) len = cap - 1 - *n;
  memcpy(path + *n, s, len);
  *n += len;
  path[*n] = 0;
}

/* Path of the current position: frames plus the pending key (if any). */
static void make_path(gc_enc *e, const char *extra, size_t extralen) {
  char *path = e->err.path;
  size_t n = 0, cap = sizeof(e->err.path);
  path[0] = 0;
  for (int i = 1; i <= e->depth; i++) {
    gc_frame *f = &e->st[i];
    gc_frame *parent = &e->st[i - 1];
    if (parent->is_array) {
      char idx[32];
      int k = snprintf(idx, sizeof idx, "[%zu]", parent->index + 1);
      path_add(path, &n, cap, idx, (size_t)k);
    } else if (f->key) {
      if (n) path_add(path, &n, cap, ".", 1);
      path_add(path, &n, cap, f->key, f->keylen);
    }
  }
  if (e->depth < 0) {  /* at the root, before any object */
    if (extra) path_add(path, &n, cap, extra, extralen);
    return;
  }
  gc_frame *top = &e->st[e->depth];
  if (top->is_array && extra == NULL) {
    char idx[32];
    int k = snprintf(idx, sizeof idx, "[%zu]", top->index + 1);
    path_add(path, &n, cap, idx, (size_t)k);
  } else if (extra) {
    if (n) path_add(path, &n, cap, ".", 1);
    path_add(path, &n, cap, extra, extralen);
  }
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int fail_at(gc_enc *e, gc_errcode code, const char *extra, size_t extralen,
                   const char *fmt, ...) {
  if (e->err.code) return -1;
  e->err.code = code;
  make_path(e, extra, extralen);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->err.message, sizeof e->err.message, fmt, ap);
  va_end(ap);
  return -1;
}

/* An error about the value being written now: its path is the pending key or next index. */
#define FAIL(e, code, ...) \
  fail_at((e), (code), (e)->have_key ? (e)->key : NULL, (e)->have_key ? (e)->keylen : 0, \
          __VA_ARGS__)

int gc_enc_fail(gc_enc *e, gc_errcode code, const char *message) {
  return FAIL(e, code, "%s", message);
}

/* ---- the walk ----------------------------------------------------------------------- */

void gc_enc_init(gc_enc *e, int root) {
  gc_buf_init(&e->out);
  memset(e->tcache, 0, sizeof e->tcache);
  gc_enc_reset(e, root);
}

void gc_enc_reset(gc_enc *e, int root) {
  e->out.len = 0;
  e->err.code = GC_E_OK;
  e->err.path[0] = e->err.message[0] = 0;
  e->root = root;
  e->check = 0;
  e->depth = -1;
  e->pending = NULL;
  e->have_key = 0;
  e->key = NULL;
  e->keylen = 0;
}

void gc_enc_free(gc_enc *e) { gc_buf_free(&e->out); }

/* The field that governs the next value, and whether that value is one element of it. */
typedef struct {
  const gc_field *f;   /* NULL: unknown, no checks */
  int element;         /* 1: an element of collection f */
  int any;             /* below an unknown field */
  int root;            /* the top-level object */
} slot;

static inline slot next_slot(const gc_enc *e) {
  slot s = { NULL, 0, 0, 0 };
  if (e->depth < 0) {
    if (e->root == GC_ROOT_PLAIN) s.any = 1;
    else s.root = 1;
    return s;
  }
  const gc_frame *top = &e->st[e->depth];
  if (top->any) { s.any = 1; return s; }
  if (top->is_array) {
    s.f = top->field;
    s.element = 1;
    if (!s.f) s.any = 1;
  } else {
    s.f = e->pending;
    if (!s.f) s.any = 1;
  }
  return s;
}

gc_expect gc_enc_expect(const gc_enc *e) {
  slot s = next_slot(e);
  if (s.root) return GC_EXPECT_OBJECT;
  if (!s.f) return GC_EXPECT_ANY;
  if ((s.f->flags & GC_F_COLLECTION) && !s.element) return GC_EXPECT_ARRAY;
  if (s.f->kind == GC_K_COMPLEX) return GC_EXPECT_OBJECT;
  return GC_EXPECT_ANY;
}

static const char *kind_name(const gc_field *f, int element) {
  if ((f->flags & GC_F_COLLECTION) && !element) return "an array";
  switch (f->kind) {
    case GC_K_STRING: return "a string";
    case GC_K_BOOL: return "a boolean";
    case GC_K_INT32: case GC_K_INT64: return "an integer";
    case GC_K_DOUBLE: return "a number";
    case GC_K_ENUM: return "a string (enum)";
    case GC_K_COMPLEX: return "an object";
    default: return "a value";
  }
}

/* Before any value: the separator, and the check that an array is not where a scalar goes. */
static inline int pre_value(gc_enc *e, slot *s, const char *got, int is_array) {
  *s = next_slot(e);
  if (e->err.code) return -1;
  if (e->depth >= 0) {
    gc_frame *top = &e->st[e->depth];
    if (!top->is_array && !e->have_key)
      return fail_at(e, GC_E_STATE, NULL, 0, "value without a key");
  }
  if (s->f && (s->f->flags & GC_F_COLLECTION) && !s->element && !is_array)
    return FAIL(e, GC_E_TYPE, "expected an array, got %s", got);
  if (s->f && (!(s->f->flags & GC_F_COLLECTION) || s->element) && is_array)
    return FAIL(e, GC_E_TYPE, "expected %s, got an array", kind_name(s->f, s->element));
  return 0;
}

static inline void sep(gc_enc *e) {
  if (e->depth < 0) return;
  gc_frame *top = &e->st[e->depth];
  if (top->is_array) {
    if (!top->first) gc_buf_addc(&e->out, ',');
    top->first = 0;
  }
}

/* After a value: mark the field as written, advance the array index. */
static inline int post_value(gc_enc *e) {
  if (e->depth >= 0) {
    gc_frame *top = &e->st[e->depth];
    if (top->is_array) {
      top->index++;
    } else {
      const gc_field *f = e->pending;
      if (f && top->type >= 0) {
        unsigned i = (unsigned)(f - &gc_fields[gc_types[top->type].field0]);
        if (i < 64) top->seen |= (uint64_t)1 << i;
      }
      e->have_key = 0;
      e->pending = NULL;
    }
  }
  if (e->out.oom) return fail_at(e, GC_E_MEMORY, NULL, 0, "out of memory");
  return 0;
}

static int push(gc_enc *e, int is_array, int type, const void *field, int any) {
  if (e->depth + 1 >= GC_ENC_MAX_DEPTH)
    return FAIL(e, GC_E_DEPTH, "nested deeper than %d levels", GC_ENC_MAX_DEPTH);
  gc_frame *f = &e->st[++e->depth];
  f->is_array = (uint8_t)is_array;
  f->first = 1;
  f->any = (uint8_t)any;
  f->type = (int16_t)type;
  f->field = field;
  f->at = e->pending;
  f->seen = 0;
  f->index = 0;
  if (e->depth > 0 && !e->st[e->depth - 1].is_array) {
    f->key = e->key;
    f->keylen = e->keylen;
  } else {
    f->key = NULL;
    f->keylen = 0;
  }
  e->have_key = 0;
  e->pending = NULL;
  return 0;
}

static void pop(gc_enc *e) {
  e->depth--;
  if (e->depth >= 0 && !e->st[e->depth].is_array) {
    /* restore the key this object/array sat at, so post_value can mark it */
    gc_frame *done = &e->st[e->depth + 1];
    e->have_key = 1;
    e->key = done->key;
    e->keylen = done->keylen;
    e->pending = done->at;
  }
}

static void list_concrete(int base, char *out, size_t cap) {
  size_t n = 0;
  out[0] = 0;
  for (int t = 0; t < gc_ntypes; t++) {
    if (t == base || !gc_type_is_a(t, base) || (gc_types[t].flags & GC_T_ABSTRACT)) continue;
    int k = snprintf(out + n, cap - n, "%s%s", n ? ", " : "", gc_types[t].name);
    if (k < 0 || (size_t)k >= cap - n) break;
    n += (size_t)k;
  }
}

int gc_enc_begin_object(gc_enc *e, const char *odata, size_t olen) {
  slot s;
  if (pre_value(e, &s, "an object", 0) != 0) return -1;
  int type = -1;
  const char *annot = NULL;  /* what to write as @odata.type */
  size_t annot_len = 0;
  int declared = -1;
  if (s.root) declared = e->root;
  else if (s.f && s.f->kind == GC_K_COMPLEX) declared = s.f->ref;
  else if (s.f) return FAIL(e, GC_E_TYPE, "expected %s, got an object",
                            kind_name(s.f, s.element));

  if (odata && e->root == GC_ROOT_PLAIN) {
    /* plain JSON: written as given */
    if (gc_utf8_check(odata, olen) != olen)
      return fail_at(e, GC_E_UTF8, "@odata.type", 11, "not valid UTF-8");
    annot = odata;
    annot_len = olen;
  } else if (odata) {
    uintptr_t a = (uintptr_t)odata;
    unsigned slot_i = (unsigned)((a >> 4) ^ (a >> 9)) & (GC_ENC_TCACHE - 1);
    int t;
    if (e->tcache[slot_i].p == odata && e->tcache[slot_i].len == olen &&
        memcmp(e->tcache[slot_i].text, odata, olen) == 0) {
      t = e->tcache[slot_i].type;
    } else {
      t = gc_type_find(odata, olen);
      if (t >= 0 && olen <= sizeof e->tcache[0].text) {
        e->tcache[slot_i].p = odata;
        e->tcache[slot_i].len = olen;
        e->tcache[slot_i].type = t;
        memcpy(e->tcache[slot_i].text, odata, olen);
      }
    }
    if (t >= 0) {
      if (declared >= 0 && !gc_type_is_a(t, declared)) {
        char alts[160];
        list_concrete(declared, alts, sizeof alts);
        if (gc_types[declared].flags & GC_T_ABSTRACT)
          return FAIL(e, GC_E_TYPE, "@odata.type %s is not a %s (use one of: %s)",
                      gc_types[t].name, gc_types[declared].name, alts);
        return FAIL(e, GC_E_TYPE, "@odata.type %s is not a %s", gc_types[t].name,
                    gc_types[declared].name);
      }
      type = t;
      if (odata[0] == '#') { annot = odata; annot_len = olen; }
      else { annot = gc_types[t].odata; annot_len = gc_types[t].name_len + 17u; }
    } else if (olen && odata[0] == '#') {
      /* a type this schema does not know (Graph adds types): kept, checked as declared */
      type = declared;
      annot = odata;
      annot_len = olen;
    } else {
      if (gc_utf8_check(odata, olen) != olen)
        return fail_at(e, GC_E_UTF8, "@odata.type", 11, "not valid UTF-8");
      return FAIL(e, GC_E_UNKNOWN_TYPE, "unknown @odata.type '%.*s'",
                  (int)(olen > 80 ? 80 : olen), odata);
    }
  } else if (declared >= 0) {
    const gc_type *d = &gc_types[declared];
    type = declared;
    if (d->flags & GC_T_ABSTRACT) {
      if (d->deflt < 0) {
        char alts[160];
        list_concrete(declared, alts, sizeof alts);
        return FAIL(e, GC_E_TYPE_REQUIRED, "%s is polymorphic: set @odata.type to one of: %s",
                    d->name, alts);
      }
      type = d->deflt;
    }
    if (!(gc_types[type].flags & GC_T_NO_ANNOTATION)) {
      annot = gc_types[type].odata;
      annot_len = gc_types[type].name_len + 17u; /* "#microsoft.graph." + name */
    }
  }

  sep(e);
  gc_buf_addc(&e->out, '{');
  if (push(e, 0, type, NULL, s.any || declared < 0) != 0) return -1;
  if (annot) {
    gc_buf_addlit(&e->out, "\"@odata.type\":\"");
    if (gc_json_escape(&e->out, annot, annot_len) != 0)
      return fail_at(e, GC_E_UTF8, "@odata.type", 11, "not valid UTF-8");
    gc_buf_addc(&e->out, '"');
    e->st[e->depth].first = 0;
  }
  return 0;
}

/* Edit distance of two short names, in any letter case (insertions, deletions, substitutions);
 * 99 when it is clearly large. */
static int name_distance(const char *a, size_t la, const char *b, size_t lb) {
  if (la > 48 || lb > 48 || (la > lb ? la - lb : lb - la) > 3) return 99;
  int prev[49], cur[49];
  for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      char x = a[i - 1], y = b[j - 1];
      if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
      if (y >= 'A' && y <= 'Z') y = (char)(y + 32);
      int v = prev[j - 1] + (x != y);
      if (prev[j] + 1 < v) v = prev[j] + 1;
      if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
      cur[j] = v;
    }
    memcpy(prev, cur, sizeof(int) * (lb + 1));
  }
  return prev[lb];
}

/* The declared property of type t that `k` is a slip of the keyboard for, or NULL: close in
 * spelling (at most a third of its letters off), not the same. */
static const gc_field *misspelt(int t, const char *k, size_t len) {
  const gc_type *ty = &gc_types[t];
  const gc_field *best = NULL;
  int bestd = 99;
  for (unsigned i = 0; i < ty->nfields; i++) {
    const gc_field *f = &gc_fields[ty->field0 + i];
    int d = name_distance(k, len, f->name, f->len);
    if (d < bestd) { best = f; bestd = d; }
  }
  int allowed = best ? (int)(best->len / 3) : 0;
  if (allowed < 1) allowed = 1;
  return best && bestd > 0 && bestd <= allowed ? best : NULL;
}

int gc_enc_key(gc_enc *e, const char *k, size_t len) {
  if (e->err.code) return -1;
  if (e->depth < 0 || e->st[e->depth].is_array || e->have_key)
    return fail_at(e, GC_E_STATE, NULL, 0, "key outside an object");
  gc_frame *top = &e->st[e->depth];
  e->key = k;
  e->keylen = len;
  e->have_key = 1;
  e->pending = (!top->any && top->type >= 0) ? gc_field_find(top->type, k, len) : NULL;
  if (e->check && !e->pending && !top->any && top->type >= 0 && !(len && k[0] == '@'))
    return fail_at(e, GC_E_UNKNOWN, k, len, "is not a property of %s in Graph's v1.0 metadata",
                   gc_types[top->type].name);
  /* building: a property a closed type (or an action) does not declare passes (Graph's own
   * examples send some), unless it is a misspelling of one it does */
  if (!e->check && !e->pending && !top->any && top->type >= 0 && !(len && k[0] == '@') &&
      (!(gc_types[top->type].flags & GC_T_OPEN) || (gc_types[top->type].flags & GC_T_ACTION))) {
    const gc_field *f = misspelt(top->type, k, len);
    const char *tn = gc_types[top->type].name;
    if (f)
      return fail_at(e, GC_E_UNKNOWN, k, len, "is not a %s of %s (did you mean '%s'?)",
                     strncmp(tn, "action:", 7) == 0 ? "parameter" : "property",
                     strncmp(tn, "action:", 7) == 0 ? tn + 7 : tn, f->name);
  }
  if (gc_buf_reserve(&e->out, len + 4) != 0) return fail_at(e, GC_E_MEMORY, NULL, 0, "out of memory");
  if (!top->first) e->out.p[e->out.len++] = ',';
  top->first = 0;
  e->out.p[e->out.len++] = '"';
  if (e->pending) {
    /* equal to a schema name: plain ASCII, nothing to escape or validate */
    memcpy(e->out.p + e->out.len, k, len);
    e->out.len += len;
  } else if (gc_json_escape(&e->out, k, len) != 0) {
    return FAIL(e, GC_E_UTF8, "key is not valid UTF-8");
  }
  gc_buf_add(&e->out, "\":", 2);
  return 0;
}

int gc_enc_end_object(gc_enc *e) {
  if (e->err.code) return -1;
  if (e->depth < 0 || e->st[e->depth].is_array || e->have_key)
    return fail_at(e, GC_E_STATE, NULL, 0, "end of object out of place");
  gc_frame *top = &e->st[e->depth];
  if (top->type >= 0 && !top->any && !e->check) {
    const gc_type *t = &gc_types[top->type];
    if ((top->seen & t->required) != t->required) {
      for (unsigned i = 0; i < t->nfields && i < 64; i++) {
        const gc_field *f = &gc_fields[t->field0 + i];
        if (((t->required >> i) & 1) && !((top->seen >> i) & 1))
          return fail_at(e, GC_E_REQUIRED, f->name, f->len, "is required");
      }
    }
    int has_one_of = t->one_of != 0, one_of_seen = (top->seen & t->one_of) != 0;
    if (has_one_of && !one_of_seen) {
      char names[128];
      size_t nn = 0;
      names[0] = 0;
      for (unsigned i = 0; i < t->nfields; i++) {
        const gc_field *f = &gc_fields[t->field0 + i];
        if (!(f->flags & GC_F_ONE_OF)) continue;
        int k = snprintf(names + nn, sizeof names - nn, "%s%s", nn ? " or " : "", f->name);
        if (k > 0 && (size_t)k < sizeof names - nn) nn += (size_t)k;
      }
      return fail_at(e, GC_E_ONE_OF, NULL, 0, "%s: one of %s is required",
                     e->depth == 0 ? t->name : "object", names);
    }
  }
  gc_buf_addc(&e->out, '}');
  pop(e);
  return post_value(e);
}

int gc_enc_begin_array(gc_enc *e) {
  slot s;
  if (pre_value(e, &s, "an array", 1) != 0) return -1;
  if (s.root) return FAIL(e, GC_E_TYPE, "a request body is an object, got an array");
  sep(e);
  gc_buf_addc(&e->out, '[');
  return push(e, 1, -1, s.f, s.any);
}

int gc_enc_end_array(gc_enc *e) {
  if (e->err.code) return -1;
  if (e->depth < 0 || !e->st[e->depth].is_array)
    return fail_at(e, GC_E_STATE, NULL, 0, "end of array out of place");
  gc_frame *top = &e->st[e->depth];
  const gc_field *f = top->field;
  if (f && f->max_items && top->index > f->max_items) {
    size_t n = top->index;
    pop(e);
    return FAIL(e, GC_E_MAX_ITEMS, "has %zu items; at most %u allowed", n,
                (unsigned)f->max_items);
  }
  gc_buf_addc(&e->out, ']');
  pop(e);
  return post_value(e);
}

static int check_null_ok(gc_enc *e, const slot *s) {
  if (!s->f) return 0;
  if (s->element && s->f->kind != GC_K_ANY)
    return FAIL(e, GC_E_TYPE, "expected %s, got null", kind_name(s->f, 1));
  if (!s->element && (s->f->flags & GC_F_REQUIRED))
    return FAIL(e, GC_E_REQUIRED, "is required and cannot be null");
  return 0;
}

int gc_enc_null(gc_enc *e) {
  slot s;
  if (e->err.code) return -1;
  s = next_slot(e);
  if (s.root) return FAIL(e, GC_E_TYPE, "a request body is an object, got null");
  if (check_null_ok(e, &s) != 0) return -1;
  /* null is fine where an array goes too; skip pre_value's array check */
  if (e->depth >= 0 && !e->st[e->depth].is_array && !e->have_key)
    return fail_at(e, GC_E_STATE, NULL, 0, "value without a key");
  sep(e);
  gc_buf_addlit(&e->out, "null");
  return post_value(e);
}

int gc_enc_bool(gc_enc *e, int b) {
  slot s;
  if (pre_value(e, &s, "a boolean", 0) != 0) return -1;
  if (s.root) return FAIL(e, GC_E_TYPE, "a request body is an object, got a boolean");
  if (s.f && s.f->kind != GC_K_BOOL && s.f->kind != GC_K_ANY)
    return FAIL(e, GC_E_TYPE, "expected %s, got a boolean", kind_name(s.f, s.element));
  sep(e);
  if (b) gc_buf_addlit(&e->out, "true"); else gc_buf_addlit(&e->out, "false");
  return post_value(e);
}

static void put_int(gc_buf *b, int64_t v) {
  char tmp[24];
  char *p = tmp + sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
  if (v < 0) *--p = '-';
  gc_buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

static int check_int(gc_enc *e, const slot *s, int64_t v) {
  if (s->root) return FAIL(e, GC_E_TYPE, "a request body is an object, got a number");
  if (!s->f) return 0;
  switch (s->f->kind) {
    case GC_K_INT32:
      if (v < INT32_MIN || v > INT32_MAX)
        return FAIL(e, GC_E_RANGE, "%" PRId64 " is out of the Int32 range", v);
      return 0;
    case GC_K_INT64: case GC_K_DOUBLE: case GC_K_ANY:
      return 0;
    default:
      return FAIL(e, GC_E_TYPE, "expected %s, got a number", kind_name(s->f, s->element));
  }
}

int gc_enc_integer(gc_enc *e, int64_t v) {
  slot s;
  if (pre_value(e, &s, "a number", 0) != 0) return -1;
  if (check_int(e, &s, v) != 0) return -1;
  sep(e);
  put_int(&e->out, v);
  return post_value(e);
}

int gc_enc_number(gc_enc *e, double v) {
  slot s;
  if (pre_value(e, &s, "a number", 0) != 0) return -1;
  if (!isfinite(v)) return FAIL(e, GC_E_RANGE, "%g cannot be written as JSON", v);
  /* integral values print as integers: Lua 5.1/LuaJIT have no integer subtype */
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    int64_t i = (int64_t)v;
    if (check_int(e, &s, i) != 0) return -1;
    sep(e);
    put_int(&e->out, i);
    return post_value(e);
  }
  if (s.root) return FAIL(e, GC_E_TYPE, "a request body is an object, got a number");
  if (s.f && s.f->kind != GC_K_DOUBLE && s.f->kind != GC_K_ANY) {
    if (s.f->kind == GC_K_INT32 || s.f->kind == GC_K_INT64)
      return FAIL(e, GC_E_TYPE, "expected an integer, got %g", v);
    return FAIL(e, GC_E_TYPE, "expected %s, got a number", kind_name(s.f, s.element));
  }
  char tmp[40];
  int n = snprintf(tmp, sizeof tmp, "%.15g", v);
  if (strtod(tmp, NULL) != v) n = snprintf(tmp, sizeof tmp, "%.17g", v);
  sep(e);
  gc_buf_add(&e->out, tmp, (size_t)n);
  return post_value(e);
}

int gc_enc_string(gc_enc *e, const char *str, size_t len) {
  slot s;
  if (pre_value(e, &s, "a string", 0) != 0) return -1;
  if (s.root) return FAIL(e, GC_E_TYPE, "a request body is an object, got a string");
  if (s.f) {
    switch (s.f->kind) {
      case GC_K_STRING:
        if ((s.f->flags & GC_F_HTTPS) && !gc_uri_is_secure(str, len))
          return FAIL(e, GC_E_HTTPS,
                      "must be an https:// URL (http:// only for localhost/127.0.0.1/[::1])");
        break;
      case GC_K_ENUM:
        /* unknownFutureValue is Graph's evolvability sentinel, never a value to send */
        if ((e->check ? gc_enum_find_nocase(s.f->ref, str, len) : gc_enum_find(s.f->ref, str, len)) < 0 ||
            (len == 18 && memcmp(str, "unknownFutureValue", 18) == 0)) {
          const gc_enum *en = &gc_enums[s.f->ref];
          char alts[160];
          size_t n = 0;
          alts[0] = 0;
          for (int i = 0; i < en->nmembers; i++) {
            const char *m = gc_enum_members[en->member0 + i];
            if (strcmp(m, "unknownFutureValue") == 0) continue;
            int k = snprintf(alts + n, sizeof alts - n, "%s%s", n ? ", " : "", m);
            if (k < 0 || (size_t)k >= sizeof alts - n) break;
            n += (size_t)k;
          }
          if (gc_utf8_check(str, len) != len)
            return FAIL(e, GC_E_UTF8, "not valid UTF-8");
          return FAIL(e, GC_E_ENUM, "'%.*s' is not a %s (one of: %s)",
                      (int)(len > 60 ? 60 : len), str, en->name, alts);
        }
        break;
      case GC_K_ANY:
        break;
      default:
        return FAIL(e, GC_E_TYPE, "expected %s, got a string", kind_name(s.f, s.element));
    }
  }
  sep(e);
  gc_buf_addc(&e->out, '"');
  if (gc_json_escape(&e->out, str, len) != 0) {
    size_t at = gc_utf8_check(str, len);
    return FAIL(e, GC_E_UTF8, "not valid UTF-8 (byte %zu)", at + 1);
  }
  gc_buf_addc(&e->out, '"');
  return post_value(e);
}
