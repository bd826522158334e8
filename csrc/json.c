#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "swar.h"
#include "utf8.h"

typedef struct {
  uint32_t tok;    /* container token */
  uint32_t count;  /* members so far */
} level;

static int grow_tape(gc_jdoc *d) {
  uint32_t cap = d->cap ? d->cap * 2 : 64;
  if (cap < d->cap) return -1;
  gc_jtok *t = realloc(d->tok, (size_t)cap * sizeof *t);
  if (!t) return -1;
  d->tok = t;
  d->cap = cap;
  return 0;
}

static inline int add_tok(gc_jdoc *d, uint8_t type, uint8_t flags, size_t off, size_t len) {
  if (d->ntok == d->cap && grow_tape(d) != 0) return -1;
  gc_jtok *t = &d->tok[d->ntok++];
  t->type = type;
  t->flags = flags;
  t->off = (uint32_t)off;
  t->len = (uint32_t)len;
  t->next = d->ntok;
  t->end = (uint32_t)(off + len + (type == GC_J_STRING));
  return 0;
}

/* bytes that stand for themselves inside a JSON string */
static const unsigned char plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
  R16(0), R16(0),
  1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* '"' */
  R16(1), R16(1),
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,   /* '\\' */
  R16(1), R16(1),
  R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static int hex4(const unsigned char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0) return -1;
    v = v << 4 | (unsigned)h;
  }
  *out = v;
  return 0;
}

#define FAIL(msg, at) do { d->error = (msg); d->error_at = (size_t)(at); goto fail; } while (0)

/* Scan a string starting after its opening quote; returns the offset of the closing quote. */
static inline int scan_string(gc_jdoc *d, const unsigned char *s, size_t n, size_t i, size_t *end,
                       uint8_t *flags) {
  *flags = 0;
  for (;;) {
    /* fast path: plain ASCII eight bytes at a time, straight to the first stop byte */
    for (;;) {
      if (i + 8 <= n) {
        unsigned k = gc_swar_stop8(s + i);
        i += k;
        if (k < 8) break;
      } else {
        while (i < n && plain[s[i]]) i++;
        break;
      }
    }
    if (i >= n) { d->error = "unterminated string"; d->error_at = n; return -1; }
    unsigned c = s[i];
    if (c == '"') { *end = i; return 0; }
    if (c < 0x20) { d->error = "control character in string"; d->error_at = i; return -1; }
    if (c == '\\') {
      *flags |= GC_J_ESCAPED;
      if (i + 1 >= n) { d->error = "unterminated string"; d->error_at = n; return -1; }
      c = s[i + 1];
      if (c == 'u') {
        unsigned u;
        if (i + 6 > n || hex4(s + i + 2, &u) != 0) {
          d->error = "bad \\u escape"; d->error_at = i; return -1;
        }
        if (u >= 0xDC00 && u <= 0xDFFF) {
          d->error = "lone low surrogate"; d->error_at = i; return -1;
        }
        if (u >= 0xD800 && u <= 0xDBFF) {
          unsigned lo;
          if (i + 12 > n || s[i + 6] != '\\' || s[i + 7] != 'u' || hex4(s + i + 8, &lo) != 0 ||
              lo < 0xDC00 || lo > 0xDFFF) {
            d->error = "lone high surrogate"; d->error_at = i; return -1;
          }
          i += 12;
        } else {
          i += 6;
        }
        continue;
      }
      if (!strchr("\"\\/bfnrt", (int)c) || c == 0) {
        d->error = "bad escape"; d->error_at = i; return -1;
      }
      i += 2;
      continue;
    }
    size_t k = gc_utf8_seq(s + i, n - i);
    if (!k) { d->error = "invalid UTF-8 in string"; d->error_at = i; return -1; }
    i += k;
  }
}

static int scan_number(const unsigned char *s, size_t n, size_t i, size_t *end, uint8_t *flags) {
  size_t st = i;
  *flags = GC_J_INTEGER;
  if (i < n && s[i] == '-') i++;
  if (i >= n) return -1;
  if (s[i] == '0') i++;
  else if (s[i] >= '1' && s[i] <= '9') { while (i < n && s[i] >= '0' && s[i] <= '9') i++; }
  else return -1;
  if (i < n && s[i] == '.') {
    *flags = 0;
    i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return -1;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    *flags = 0;
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return -1;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  }
  (void)st;
  *end = i;
  return 0;
}

static inline size_t skip_ws(const unsigned char *s, size_t n, size_t i) {
  while (i < n) {
    unsigned c = s[i];
    if (c > ' ') break;
    if (c == ' ') {
      /* indentation comes in runs of spaces */
      uint64_t w;
      if (i + 8 <= n && (memcpy(&w, s + i, 8), w == 0x2020202020202020ULL)) { i += 8; continue; }
      i++;
    } else if (c == '\n' || c == '\r' || c == '\t') {
      i++;
    } else {
      break;
    }
  }
  return i;
}

int gc_json_parse(gc_jdoc *d, const char *text, size_t n, const gc_json_limits *lim,
                  gc_jtok *reuse, uint32_t reuse_cap) {
  size_t max_size = lim && lim->max_size ? lim->max_size : GC_JSON_DEFAULT_MAX_SIZE;
  int max_depth = lim && lim->max_depth ? lim->max_depth : GC_JSON_DEFAULT_MAX_DEPTH;
  const unsigned char *s = (const unsigned char *)text;
  level small[GC_JSON_DEFAULT_MAX_DEPTH];
  level *stack = NULL;
  int depth = 0;
  size_t i = 0;

  memset(d, 0, sizeof *d);
  d->tok = reuse;
  d->cap = reuse ? reuse_cap : 0;
  d->text = text;
  d->size = n;
  if (n > max_size) FAIL("body too large", max_size);
  if (n > 0xFFFFFFF0u) FAIL("body too large", 0);
  stack = max_depth <= GC_JSON_DEFAULT_MAX_DEPTH ? small : malloc((size_t)max_depth * sizeof *stack);
  if (!stack) FAIL("out of memory", 0);

value:
  i = skip_ws(s, n, i);
  if (i >= n) FAIL(d->ntok ? "truncated" : "empty body", i);
  switch (s[i]) {
    case '{': case '[': {
      if (depth >= max_depth) FAIL("nested too deep", i);
      int obj = s[i] == '{';
      if (add_tok(d, obj ? GC_J_OBJECT : GC_J_ARRAY, 0, i, 0)) FAIL("out of memory", i);
      stack[depth].tok = d->ntok - 1;
      stack[depth].count = 0;
      depth++;
      i = skip_ws(s, n, i + 1);
      if (i < n && s[i] == (obj ? '}' : ']')) { i++; goto close; }
      if (obj) goto key;
      stack[depth - 1].count++;
      goto value;
    }
    case '"': {
      size_t end;
      uint8_t fl;
      if (scan_string(d, s, n, i + 1, &end, &fl)) goto fail;
      if (add_tok(d, GC_J_STRING, fl, i + 1, end - i - 1)) FAIL("out of memory", i);
      i = end + 1;
      break;
    }
    case 't':
      if (n - i < 4 || memcmp(s + i, "true", 4)) FAIL("bad literal", i);
      if (add_tok(d, GC_J_TRUE, 0, i, 4)) FAIL("out of memory", i);
      i += 4;
      break;
    case 'f':
      if (n - i < 5 || memcmp(s + i, "false", 5)) FAIL("bad literal", i);
      if (add_tok(d, GC_J_FALSE, 0, i, 5)) FAIL("out of memory", i);
      i += 5;
      break;
    case 'n':
      if (n - i < 4 || memcmp(s + i, "null", 4)) FAIL("bad literal", i);
      if (add_tok(d, GC_J_NULL, 0, i, 4)) FAIL("out of memory", i);
      i += 4;
      break;
    default: {
      size_t end;
      uint8_t fl;
      if (scan_number(s, n, i, &end, &fl)) FAIL("unexpected character", i);
      if (add_tok(d, GC_J_NUMBER, fl, i, end - i)) FAIL("out of memory", i);
      i = end;
    }
  }

after:
  if (depth == 0) {
    i = skip_ws(s, n, i);
    if (i != n) FAIL("trailing data after JSON value", i);
    if (stack != small) free(stack);
    return 0;
  }
  i = skip_ws(s, n, i);
  if (i >= n) FAIL("truncated", i);
  {
    gc_jtok *top = &d->tok[stack[depth - 1].tok];
    if (s[i] == ',') {
      i++;
      if (top->type == GC_J_OBJECT) goto key;
      stack[depth - 1].count++;
      goto value;
    }
    if (s[i] == (top->type == GC_J_OBJECT ? '}' : ']')) { i++; goto close; }
    FAIL(top->type == GC_J_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'", i);
  }

key:
  i = skip_ws(s, n, i);
  if (i >= n) FAIL("truncated", i);
  if (s[i] != '"') FAIL("expected a string key", i);
  {
    size_t end;
    uint8_t fl;
    if (scan_string(d, s, n, i + 1, &end, &fl)) goto fail;
    if (add_tok(d, GC_J_STRING, fl, i + 1, end - i - 1)) FAIL("out of memory", i);
    i = skip_ws(s, n, end + 1);
    if (i >= n) FAIL("truncated", i);
    if (s[i] != ':') FAIL("expected ':'", i);
    i++;
    stack[depth - 1].count++;
    goto value;
  }

close:
  depth--;
  {
    gc_jtok *c = &d->tok[stack[depth].tok];
    c->len = stack[depth].count;
    c->next = d->ntok;
    c->end = (uint32_t)i;
  }
  goto after;

fail:
  if (stack != small) free(stack);
  return -1;
}

void gc_json_free(gc_jdoc *d) {
  free(d->tok);
  d->tok = NULL;
  d->ntok = d->cap = 0;
}

int gc_json_streq(const gc_jdoc *d, uint32_t t, const char *s, size_t len) {
  const gc_jtok *k = &d->tok[t];
  if (k->type != GC_J_STRING) return 0;
  if (!(k->flags & GC_J_ESCAPED))
    return k->len == len && memcmp(d->text + k->off, s, len) == 0;
  gc_buf b;
  gc_buf_init(&b);
  size_t n;
  const char *v = gc_json_str(d, t, &b, &n);
  int eq = v && n == len && memcmp(v, s, len) == 0;
  gc_buf_free(&b);
  return eq;
}

uint32_t gc_json_get(const gc_jdoc *d, uint32_t obj, const char *key, size_t keylen) {
  const gc_jtok *o = &d->tok[obj];
  if (o->type != GC_J_OBJECT) return 0;
  uint32_t k = obj + 1;
  for (uint32_t m = 0; m < o->len; m++) {
    uint32_t v = k + 1;
    if (gc_json_streq(d, k, key, keylen)) return v;
    k = d->tok[v].next;
  }
  return 0;
}

static void put_utf8(gc_buf *b, unsigned cp) {
  char tmp[4];
  size_t n;
  if (cp < 0x80) { tmp[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { tmp[0] = (char)(0xC0 | cp >> 6); tmp[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    tmp[0] = (char)(0xE0 | cp >> 12); tmp[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    tmp[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    tmp[0] = (char)(0xF0 | cp >> 18); tmp[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    tmp[2] = (char)(0x80 | (cp >> 6 & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
  }
  gc_buf_add(b, tmp, n);
}

const char *gc_json_str(const gc_jdoc *d, uint32_t t, gc_buf *scratch, size_t *len) {
  const gc_jtok *k = &d->tok[t];
  const unsigned char *s = (const unsigned char *)d->text + k->off;
  if (!(k->flags & GC_J_ESCAPED)) { *len = k->len; return (const char *)s; }
  scratch->len = 0;
  if (gc_buf_reserve(scratch, k->len) != 0) return NULL;
  size_t i = 0, n = k->len;
  while (i < n) {
    size_t j = i;
    while (j < n && s[j] != '\\') j++;
    gc_buf_add(scratch, s + i, j - i);
    if (j >= n) break;
    /* escapes were validated by the parser */
    unsigned c = s[j + 1];
    switch (c) {
      case 'b': gc_buf_addc(scratch, '\b'); i = j + 2; break;
      case 'f': gc_buf_addc(scratch, '\f'); i = j + 2; break;
      case 'n': gc_buf_addc(scratch, '\n'); i = j + 2; break;
      case 'r': gc_buf_addc(scratch, '\r'); i = j + 2; break;
      case 't': gc_buf_addc(scratch, '\t'); i = j + 2; break;
      case 'u': {
        unsigned u = 0, lo = 0;
        hex4(s + j + 2, &u);
        i = j + 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
          hex4(s + j + 8, &lo);
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
          i = j + 12;
        }
        put_utf8(scratch, u);
        break;
      }
      default: gc_buf_addc(scratch, (char)c); i = j + 2; break;
    }
  }
  if (scratch->oom) return NULL;
  *len = scratch->len;
  return scratch->p ? scratch->p : "";
}

static int parse_int(const char *p, size_t len, int64_t *out) {
  char tmp[32];
  if (len == 0 || len >= sizeof tmp) return -1;
  memcpy(tmp, p, len);
  tmp[len] = 0;
  char *end;
  errno = 0;
  long long v = strtoll(tmp, &end, 10);
  if (errno || *end || end == tmp) return -1;
  *out = v;
  return 0;
}

int gc_json_int(const gc_jdoc *d, uint32_t t, int strings, int64_t *out) {
  const gc_jtok *k = &d->tok[t];
  if (k->type == GC_J_NUMBER && (k->flags & GC_J_INTEGER))
    return parse_int(d->text + k->off, k->len, out);
  if (strings && k->type == GC_J_STRING && !(k->flags & GC_J_ESCAPED)) {
    const char *p = d->text + k->off;
    size_t len = k->len;
    size_t i = (len && p[0] == '-') ? 1 : 0;
    if (i == len) return -1;
    for (; i < len; i++) if (p[i] < '0' || p[i] > '9') return -1;
    return parse_int(p, len, out);
  }
  return -1;
}

double gc_json_num(const gc_jdoc *d, uint32_t t) {
  const gc_jtok *k = &d->tok[t];
  char tmp[64];
  const char *p = d->text + k->off;
  size_t len = k->len;
  if (k->type != GC_J_NUMBER) return 0;
  if (len < sizeof tmp) {
    memcpy(tmp, p, len);
    tmp[len] = 0;
    return strtod(tmp, NULL);
  }
  char *big = malloc(len + 1);
  if (!big) return 0;
  memcpy(big, p, len);
  big[len] = 0;
  double v = strtod(big, NULL);
  free(big);
  return v;
}
