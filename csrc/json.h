/* json.h: a strict JSON reader for input from outside (responses, notifications).
 *
 * One pass over the text produces a flat tape of tokens; nothing is copied or converted until
 * a caller asks for a value, so a consumer can skip whole subtrees for free. Inbound text is
 * hostile: size and depth are bounded, strings must be valid UTF-8, and every error is a
 * return value with the byte offset where it was found. No I/O, no Lua. */
#ifndef GC_JSON_H
#define GC_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

typedef enum {
  GC_J_NULL, GC_J_FALSE, GC_J_TRUE, GC_J_NUMBER, GC_J_STRING, GC_J_ARRAY, GC_J_OBJECT
} gc_jtype;

#define GC_J_ESCAPED 0x01  /* string: contains backslash escapes */
#define GC_J_INTEGER 0x02  /* number: no fraction or exponent */

typedef struct {
  uint8_t type;   /* gc_jtype */
  uint8_t flags;
  uint32_t off;   /* string: first byte after the quote; number: first byte */
  uint32_t len;   /* string/number: bytes of text; array: elements; object: members */
  uint32_t next;  /* index of the token after this value (and all it contains) */
  uint32_t end;   /* byte offset just past the value's text (closing quote or bracket) */
} gc_jtok;

typedef struct {
  size_t max_size;   /* bytes; 0 = GC_JSON_DEFAULT_MAX_SIZE */
  int max_depth;     /* 0 = GC_JSON_DEFAULT_MAX_DEPTH */
} gc_json_limits;

#define GC_JSON_DEFAULT_MAX_SIZE ((size_t)4 << 20)
#define GC_JSON_DEFAULT_MAX_DEPTH 64

typedef struct {
  const char *text;  /* not owned; must outlive the document */
  size_t size;
  gc_jtok *tok;
  uint32_t ntok, cap;
  /* on error */
  const char *error; /* static message, NULL on success */
  size_t error_at;   /* byte offset */
} gc_jdoc;

/* Parse text into doc (tokens: doc->tok[0] is the root). 0 on success, -1 on error with
 * doc->error and doc->error_at set. Free with gc_json_free either way. reuse/reuse_cap: a
 * token array from an earlier document to fill again (or NULL, 0); doc takes it over. */
int gc_json_parse(gc_jdoc *doc, const char *text, size_t size, const gc_json_limits *lim,
                  gc_jtok *reuse, uint32_t reuse_cap);
void gc_json_free(gc_jdoc *doc);

/* Object member lookup: index of the value token of key in object token obj, or 0 (the root
 * can never be a member value). */
uint32_t gc_json_get(const gc_jdoc *doc, uint32_t obj, const char *key, size_t keylen);

/* One pass over object obj: out[i] = the value token of key names[i], or 0 if absent (the
 * first of repeated keys wins; n <= 16). Cheaper than n calls of gc_json_get. Inline, so
 * that the lengths and compares of literal names fold at compile time. */
static inline void gc_json_fields(const gc_jdoc *doc, uint32_t obj, const char *const *names,
                                  size_t n, uint32_t *out);

/* String value, unescaped. If the token has no escapes, points into the text (no copy);
 * otherwise decodes into scratch (cleared first). Returns NULL if out of memory. */
const char *gc_json_str(const gc_jdoc *doc, uint32_t t, gc_buf *scratch, size_t *len);

/* 1 if the string token equals s exactly (escapes decoded). */
int gc_json_streq(const gc_jdoc *doc, uint32_t t, const char *s, size_t len);

/* Number value. gc_json_int returns 0 and sets *out if the token is an integer that fits
 * in int64 (or a numeric string, when strings is set); -1 otherwise. */
int gc_json_int(const gc_jdoc *doc, uint32_t t, int strings, int64_t *out);
double gc_json_num(const gc_jdoc *doc, uint32_t t);

/* ---- inline --------------------------------------------------------------------------- */

static inline void gc_json_fields(const gc_jdoc *d, uint32_t obj, const char *const *names,
                                  size_t n, uint32_t *out) {
  size_t nl[16];
  if (n > 16) n = 16;
  for (size_t i = 0; i < n; i++) {
    out[i] = 0;
    nl[i] = strlen(names[i]);
  }
  const gc_jtok *o = &d->tok[obj];
  if (o->type != GC_J_OBJECT) return;
  uint32_t k = obj + 1;
  for (uint32_t m = 0; m < o->len; m++) {
    uint32_t v = k + 1;
    const gc_jtok *kt = &d->tok[k];
    const char *ks = d->text + kt->off;
    for (size_t i = 0; i < n; i++) {
      if (out[i]) continue;
      if ((kt->flags & GC_J_ESCAPED) ? gc_json_streq(d, k, names[i], nl[i])
                                     : (kt->len == nl[i] && ks[0] == names[i][0] &&
                                        memcmp(ks, names[i], nl[i]) == 0)) {
        out[i] = v;
        break;
      }
    }
    k = d->tok[v].next;
  }
}

#endif
