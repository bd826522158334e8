#include <string.h>

#include "notify.h"

#define LIT(s) (s), (sizeof(s) - 1)

static int span_eq(const char *p, size_t len, const char *lit, size_t litlen) {
  return len == litlen && memcmp(p, lit, len) == 0;
}

static int ieq(const char *a, const char *b, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (char)(y + 32);
    if (x != y) return 0;
  }
  return 1;
}

/* next path segment of url starting at *i (no leading '/'); advances past it and one '/' */
static gc_span segment(const char *url, size_t len, size_t *i) {
  gc_span s = { (uint32_t)*i, 0, 0 };
  size_t j = *i;
  while (j < len && url[j] != '/' && url[j] != '?' && url[j] != '#') j++;
  s.len = (uint32_t)(j - *i);
  *i = (j < len && url[j] == '/') ? j + 1 : len;
  return s;
}

static const char *find(const char *hay, size_t n, const char *needle, size_t m) {
  if (m > n) return NULL;
  /* the service writes it first, after an optional slash */
  if (memcmp(hay, needle, m) == 0) return hay;
  if (n > m && hay[0] == '/' && memcmp(hay + 1, needle, m) == 0) return hay + 1;
  for (const char *p = hay; (p = memchr(p, needle[0], (size_t)(hay + n - p))) != NULL; p++) {
    if ((size_t)(hay + n - p) < m) return NULL;
    if (memcmp(p, needle, m) == 0) return p;
  }
  return NULL;
}

gc_nkind gc_notify_classify(const char *url, size_t len, gc_span *call_id, gc_span *sub_id) {
  call_id->off = call_id->len = 0;
  sub_id->off = sub_id->len = 0;
  /* the calls collection: communications/calls/ or the legacy app/calls/, anywhere after an
   * optional scheme, host and version */
  const char *p = find(url, len, LIT("communications/calls/"));
  size_t skip = sizeof("communications/calls/") - 1;
  if (!p) {
    p = find(url, len, LIT("app/calls/"));
    skip = sizeof("app/calls/") - 1;
  }
  if (!p || (p > url && p[-1] != '/')) return GC_N_UNKNOWN;
  size_t i = (size_t)(p - url) + skip;
  *call_id = segment(url, len, &i);
  if (!call_id->len) return GC_N_UNKNOWN;
  if (i >= len) return GC_N_CALL;
  gc_span s = segment(url, len, &i);
  const char *seg = url + s.off;
  if (s.len == 0 && i >= len) return GC_N_CALL;  /* trailing slash */
  if (span_eq(seg, s.len, LIT("participants")) && i >= len) return GC_N_PARTICIPANTS;
  if (span_eq(seg, s.len, LIT("operations"))) {
    *sub_id = segment(url, len, &i);
    return sub_id->len && i >= len ? GC_N_OPERATION : GC_N_UNKNOWN;
  }
  if (s.len == 22 && ieq(seg, "contentsharingsessions", 22)) {
    if (i < len) *sub_id = segment(url, len, &i);
    return i >= len ? GC_N_CONTENT_SHARING : GC_N_UNKNOWN;
  }
  return GC_N_UNKNOWN;
}

static uint32_t str_member(const gc_jdoc *d, uint32_t obj, const char *k, size_t klen) {
  uint32_t t = gc_json_get(d, obj, k, klen);
  return (t && d->tok[t].type == GC_J_STRING) ? t : 0;
}

/* kind from resourceData's @odata.type, for URLs that say nothing */
static gc_nkind kind_of_type(const gc_jdoc *d, uint32_t item) {
  uint32_t t = item ? str_member(d, item, LIT("@odata.type")) : 0;
  if (!t) return GC_N_UNKNOWN;
  const char *s = d->text + d->tok[t].off;
  size_t n = d->tok[t].len;
  if (span_eq(s, n, LIT("#microsoft.graph.call"))) return GC_N_CALL;
  if (span_eq(s, n, LIT("#microsoft.graph.participant")) ||
      span_eq(s, n, LIT("#microsoft.graph.deltaParticipants"))) return GC_N_PARTICIPANTS;
  if (span_eq(s, n, LIT("#microsoft.graph.contentSharingSession"))) return GC_N_CONTENT_SHARING;
  if (n > 9 && memcmp(s + n - 9, "Operation", 9) == 0) return GC_N_OPERATION;
  return GC_N_UNKNOWN;
}

static int hexd(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Graph writes one id in two forms: "57dab8b1-894c-409a-b240-bd8beae78896" in answers and
 * Location headers, "57DAB8B1894C409AB240BD8BEAE78896" in some notifications (the playPrompt,
 * recordResponse and cancelMediaProcessing completions of its own pages). A GUID in either form
 * (any case, with or without dashes) is read as the first; any other id stays as it is. */
static int canon_guid(const gc_jdoc *d, gc_buf *aux, gc_span *sp) {
  if (sp->len != 32 && sp->len != 36) return 0;
  const char *s = sp->aux ? aux->p + sp->off : d->text + sp->off;
  char hex[32];
  size_t h = 0;
  int changed = sp->len == 32;
  for (uint32_t i = 0; i < sp->len; i++) {
    char c = s[i];
    if (sp->len == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
      if (c != '-') return 0;
      continue;
    }
    if (!hexd(c)) return 0;
    if (c >= 'A' && c <= 'F') { c = (char)(c + 32); changed = 1; }
    hex[h++] = c;
  }
  if (!changed) return 0;
  uint32_t off = (uint32_t)aux->len;
  static const int groups[] = { 8, 4, 4, 4, 12 };
  size_t k = 0;
  for (int g = 0; g < 5; g++) {
    if (g) gc_buf_addc(aux, '-');
    gc_buf_add(aux, hex + k, (size_t)groups[g]);
    k += (size_t)groups[g];
  }
  if (aux->oom) return -1;
  sp->off = off;
  sp->len = 36;
  sp->aux = 1;
  return 0;
}

int gc_notify_scan(const gc_jdoc *d, gc_notif *out, size_t cap, size_t *n, const char **err,
                   gc_buf *aux) {
  *n = 0;
  aux->len = 0;
  if (d->ntok == 0 || d->tok[0].type != GC_J_OBJECT) {
    *err = "body is not a JSON object";
    return -1;
  }
  uint32_t value = gc_json_get(d, 0, LIT("value"));
  if (!value || d->tok[value].type != GC_J_ARRAY) {
    *err = "body has no 'value' array of notifications";
    return -1;
  }
  if (d->tok[value].len > cap) {
    *err = "too many notifications in one body";
    return -1;
  }
  uint32_t t = value + 1;
  for (uint32_t k = 0; k < d->tok[value].len; k++, t = d->tok[t].next) {
    gc_notif *e = &out[k];
    memset(e, 0, sizeof *e);
    if (d->tok[t].type != GC_J_OBJECT) { *err = "a notification is not an object"; return -1; }
    e->tok = t;
    static const char *const names[] = { "changeType", "resourceUrl", "resource", "resourceData" };
    uint32_t f[4];
    gc_json_fields(d, t, names, 4, f);
    e->change_tok = (f[0] && d->tok[f[0]].type == GC_J_STRING) ? f[0] : 0;
    if (!e->change_tok) { *err = "a notification has no changeType string"; return -1; }
    const char *cs = d->text + d->tok[e->change_tok].off;
    size_t cl = d->tok[e->change_tok].len;
    e->change = span_eq(cs, cl, LIT("created")) ? GC_C_CREATED
              : span_eq(cs, cl, LIT("updated")) ? GC_C_UPDATED
              : span_eq(cs, cl, LIT("deleted")) ? GC_C_DELETED : GC_C_OTHER;

    uint32_t u = f[1];
    if (u && d->tok[u].type != GC_J_STRING) { *err = "resourceUrl is not a string"; return -1; }
    uint32_t r = f[2];
    if (r && d->tok[r].type != GC_J_STRING && d->tok[r].type != GC_J_NULL) {
      *err = "resource is not a string"; return -1;
    }
    if (r && d->tok[r].type == GC_J_NULL) r = 0;
    if (!u && !r) { *err = "a notification has no resourceUrl"; return -1; }
    e->url_tok = u;
    e->resource_tok = r;

    uint32_t data = f[3];
    if (data) {
      uint8_t ty = d->tok[data].type;
      if (ty == GC_J_NULL) data = 0;
      else if (ty != GC_J_OBJECT && ty != GC_J_ARRAY) {
        *err = "resourceData is neither an object nor an array"; return -1;
      }
    }
    e->data_tok = data;
    if (data && d->tok[data].type == GC_J_OBJECT) e->item_tok = data;
    else if (data && d->tok[data].len > 0 && d->tok[data + 1].type == GC_J_OBJECT) e->item_tok = data + 1;

    /* kind and ids from the URL; an escaped one ("\/") is decoded into aux */
    uint32_t ut = u ? u : r;
    uint32_t base = d->tok[ut].off;
    size_t ulen = d->tok[ut].len;
    uint8_t in_aux = 0;
    const char *url = d->text + base;
    if (d->tok[ut].flags & GC_J_ESCAPED) {
      gc_buf tmp;
      gc_buf_init(&tmp);
      const char *dec = gc_json_str(d, ut, &tmp, &ulen);
      base = (uint32_t)aux->len;
      if (dec) gc_buf_add(aux, dec, ulen);
      gc_buf_free(&tmp);
      if (!dec || aux->oom) { *err = "out of memory"; return -1; }
      url = aux->p + base;
      in_aux = 1;
    }
    gc_span cid, sid;
    gc_nkind kind = gc_notify_classify(url, ulen, &cid, &sid);
    /* participant-invite's own examples send both the invitation's completion (its id null)
     * and the roster that follows it under .../operations/participants: no operation id, and
     * what it is by its @odata.type */
    if (kind == GC_N_OPERATION && span_eq(url + sid.off, sid.len, LIT("participants"))) {
      sid.len = 0;
      gc_nkind by_type = kind_of_type(d, e->item_tok);
      if (by_type != GC_N_UNKNOWN) kind = by_type;
    }
    if (cid.len) {
      e->call_id.off = base + cid.off;
      e->call_id.len = cid.len;
      e->call_id.aux = in_aux;
    }
    if (sid.len) {
      e->sub_id.off = base + sid.off;
      e->sub_id.len = sid.len;
      e->sub_id.aux = in_aux;
    }
    if (kind == GC_N_UNKNOWN) kind = kind_of_type(d, e->item_tok);
    e->kind = (uint8_t)kind;
    if (!e->call_id.len && kind == GC_N_CALL && e->item_tok) {
      uint32_t id = str_member(d, e->item_tok, LIT("id"));
      if (id && !(d->tok[id].flags & GC_J_ESCAPED)) {
        e->call_id.off = d->tok[id].off;
        e->call_id.len = d->tok[id].len;
      }
    }
    if (canon_guid(d, aux, &e->call_id) != 0 || canon_guid(d, aux, &e->sub_id) != 0) {
      *err = "out of memory";
      return -1;
    }
    e->hash = gc_hash64(d->text + d->tok[t].off, d->tok[t].end - d->tok[t].off);
    (*n)++;
  }
  *err = NULL;
  return 0;
}

static int read_int(const gc_jdoc *d, uint32_t t, int64_t *v) {
  if (!t) return 0;
  if (gc_json_int(d, t, 1, v) == 0) return 1;
  /* 200.0 is an integer too */
  if (d->tok[t].type == GC_J_NUMBER) {
    double x = gc_json_num(d, t);
    /* range first: converting an out-of-range double is undefined */
    if (x > -9.2e18 && x < 9.2e18 && x == (double)(int64_t)x) { *v = (int64_t)x; return 1; }
  }
  return 0;
}

void gc_notify_result(const gc_jdoc *d, uint32_t obj, int64_t *code, int *has_code,
                      int64_t *subcode, int *has_subcode, uint32_t *message) {
  *has_code = *has_subcode = 0;
  *message = 0;
  if (!obj || d->tok[obj].type != GC_J_OBJECT) return;
  *has_code = read_int(d, gc_json_get(d, obj, LIT("code")), code);
  uint32_t sc = gc_json_get(d, obj, LIT("subcode"));
  if (!sc) sc = gc_json_get(d, obj, LIT("subCode"));
  *has_subcode = read_int(d, sc, subcode);
  *message = str_member(d, obj, LIT("message"));
}

const char *gc_notify_status(const char *s, size_t len) {
  static const char *const names[] = { "notStarted", "running", "completed", "failed" };
  for (size_t i = 0; i < 4; i++)
    if (strlen(names[i]) == len && ieq(names[i], s, len)) return names[i];
  return NULL;
}

const char *gc_notify_call_state(const char *s, size_t len) {
  static const char *const names[] = { "incoming", "establishing", "established", "hold", "transferring",
                                       "transferAccepted", "redirecting", "terminating", "terminated",
                                       "unknownFutureValue" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i]) == len && ieq(names[i], s, len)) return names[i];
  return NULL;
}

size_t gc_notify_optype(const char *s, size_t len, char *out, size_t cap) {
  static const char prefix[] = "#microsoft.graph.";
  static const struct { const char *type, *action; } map[] = {
    { "recordOperation", "recordResponse" },
    { "muteParticipantOperation", "mute" },
    { "unmuteParticipantOperation", "unmute" },
    { "inviteParticipantsOperation", "invite" },
  };
  if (len > sizeof prefix - 1 && memcmp(s, prefix, sizeof prefix - 1) == 0) {
    s += sizeof prefix - 1;
    len -= sizeof prefix - 1;
  }
  for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
    size_t n = strlen(map[i].type);
    if (n == len && memcmp(map[i].type, s, n) == 0) {
      size_t m = strlen(map[i].action);
      if (m > cap) return 0;
      memcpy(out, map[i].action, m);
      return m;
    }
  }
  if (len <= 9 || memcmp(s + len - 9, "Operation", 9) != 0) return 0;
  len -= 9;  /* playPromptOperation -> playPrompt */
  if (len > cap) return 0;
  memcpy(out, s, len);
  return len;
}

static inline uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

static inline uint64_t rotl(uint64_t x, int r) { return x << r | x >> (64 - r); }

/* Four independent lanes of 8 bytes (in the manner of xxHash64), so the multiplies overlap
 * instead of waiting on each other; the lanes are mixed at the end. */
uint64_t gc_hash64(const void *p, size_t len) {
  const unsigned char *s = p;
  const uint64_t P1 = 0x9e3779b185ebca87ULL, P2 = 0xc2b2ae3d27d4eb4fULL;
  uint64_t a = P1 ^ len, b = P2, c = 0x165667b19e3779f9ULL, e = 0x27d4eb2f165667c5ULL;
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    uint64_t w[4];
    memcpy(w, s + i, 32);
    a = rotl(a + w[0] * P2, 31) * P1;
    b = rotl(b + w[1] * P2, 31) * P1;
    c = rotl(c + w[2] * P2, 31) * P1;
    e = rotl(e + w[3] * P2, 31) * P1;
  }
  uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(e, 18) + len;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    h = rotl(h ^ mix(w * P2), 27) * P1;
  }
  uint64_t w = 0;
  for (size_t k = 0; i + k < len; k++) w |= (uint64_t)s[i + k] << (8 * k);
  h ^= mix(w + len);
  return mix(h);
}
