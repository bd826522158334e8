/* pack.c: see pack.h. Plain C, no Lua: the binding is in lua_core.c. */
#include <stdint.h>
#include <stdlib.h>

#include "pack.h"

#define VERSION 1  /* the first byte: the format and this dictionary together */
#define MIN_MATCH 4
#define MAX_DIST 65535u
#define HASH_BITS 12
#define CHAIN_DEPTH 24

/* What a log says, as graphcall.call.compact and the runtime write it (keys in any order):
 * the earlier a fragment, the less often it is used. Changing it changes VERSION. */
static const char DICT[] =
  "{\"@odata.type\":\"#microsoft.graph.participantInfo\",\"languageId\":null,\"countryCode\":null,"
  "\"region\":null,\"endpointType\":null,\"identity\":{\"@odata.type\":\"#microsoft.graph.identitySet\","
  "\"user\":{\"@odata.type\":\"#microsoft.graph.identity\",\"displayName\":\"\",\"id\":\"\"},"
  "\"phone\":{\"@odata.type\":\"#microsoft.graph.identity\",\"id\":\"+1\"}},\"replacesCallId\":null,"
  "\"targets\":[{\"@odata.type\":\"#microsoft.graph.invitationParticipantInfo\",\"identity\":"
  "{\"@odata.type\":\"#microsoft.graph.identitySet\",\"application\":{\"@odata.type\":"
  "\"#microsoft.graph.identity\",\"id\":\"\",\"displayName\":\"\"}}}],\"source\":"
  "{\"direction\":\"incoming\",\"incoming\":true,\"tenantId\":\"\",\"callbackUri\":\"https://"
  "/callback\",\"state\":\"incoming\",\"changeType\":\"created\",\"kind\":\"call\",\"k\":\"ev\"}"
  "{\"k\":\"start\",\"flow\":\"main\",\"dir\":\"incoming\",\"tenant\":\"\",\"created\":\"\",\"t\":}"
  "{\"kind\":\"participants\",\"participants\":[{\"id\":\"\",\"name\":\"\",\"removed\":true,"
  "\"rosterSequenceNumber\":}],\"sequenceNumber\":,\"sessionId\":\"\",\"delta\":true}"
  "{\"terminationReason\":\"\",\"state\":\"terminated\",\"resultInfo\":{\"subcode\":5001,"
  "\"message\":\"The conversation has ended.\",\"code\":200}}"
  "{\"completionReason\":\"maxSilenceTimeout\",\"recordingAccessToken\":\"\",\"recordingLocation\":"
  "\"https:///recordings/\",\"operationType\":\"recordResponse\",\"#microsoft.graph.recordOperation\""
  "{\"w\":\"download\",\"v\":{\"path\":\".wav\",\"bytes\":}}"
  "{\"k\":\"note\",\"text\":\"\"}{\"k\":\"end\",\"ok\":true}{\"k\":\"end\",\"ok\":false,\"error\":"
  "{\"a\":\"transfer\",\"a\":\"redirect\",\"a\":\"reject\",\"a\":\"stopHoldMusic\",\"a\":\"startHoldMusic\","
  "\"a\":\"cancelMediaProcessing\",\"a\":\"updateRecordingStatus\",\"a\":\"mute\",\"a\":\"unmute\","
  "\"a\":\"keepAlive\",\"a\":\"invite\",\"a\":\"place\",\"a\":\"hangup\",\"a\":\"recordResponse\","
  "\"#microsoft.graph.subscribeToToneOperation\",\"name\":\"subscribeToTone\",\"a\":\"subscribeToTone\","
  "\"status\":\"completed\",\"status\":\"running\",\"status\":\"failed\",\"status\":\"notStarted\","
  "{\"w\":\"answer\",\"v\":{\"res\":true},\"k\":\"step\",\"n\":1,\"t\":}"
  "{\"state\":\"establishing\",\"kind\":\"call\",\"changeType\":\"updated\",\"fingerprint\":}"
  "{\"w\":\"sleep\",\"w\":\"wait\",\"v\":{\"ev\":},\"k\":\"step\",\"n\":}"
  "{\"a\":\"answer\",\"crid\":\"\",\"n\":,\"k\":\"out\",\"d\":\"\\\"\\\"\",\"t\":}"
  "{\"toneInfo\":{\"tone\":\"tone\",\"sequenceId\":},\"sameState\":true,\"state\":\"established\"}"
  "{\"resultInfo\":{\"subcode\":0,\"message\":\"Action completed successfully.\",\"code\":200},"
  "\"operationType\":\"playPrompt\",\"kind\":\"operation\",\"changeType\":\"deleted\","
  "\"clientContext\":\"\",\"operationId\":\"\",\"status\":\"completed\"}"
  "{\"w\":\"playPrompt\",\"v\":{\"res\":{\"@odata.type\":\"#microsoft.graph.playPromptOperation\","
  "\"id\":\"\",\"clientContext\":\"\",\"status\":\"running\",\"name\":\"playPrompt\",\"location\":"
  "\"https:///v1.0/communications/calls//operations/\"}},\"k\":\"step\",\"n\":,\"t\":}"
  "{\"w\":\"now\",\"v\":{\"t\":},\"k\":\"step\",\"n\":,\"t\":}"
  "{\"t\":,\"k\":\"ev\",\"ev\":{\"kind\":\"call\",\"state\":\"established\",\"changeType\":\"updated\","
  "\"fingerprint\":}}{\"w\":\"now\",\"v\":{\"t\":},\"t\":,\"k\":\"step\",\"n\":}";

#define DICT_LEN (sizeof DICT - 1)

static int fail(const char **err, const char *why) {
  if (err) *err = why;
  return -1;
}

static void put_varint(gc_buf *b, size_t v) {
  while (v >= 0x80) {
    gc_buf_addc(b, (char)(v | 0x80));
    v >>= 7;
  }
  gc_buf_addc(b, (char)v);
}

static int get_varint(const unsigned char **p, const unsigned char *end, size_t *v) {
  size_t r = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (*p >= end) return -1;
    unsigned c = *(*p)++;
    r |= (size_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *v = r;
      return 0;
    }
  }
  return -1;
}

static void put_count(gc_buf *b, size_t n) {  /* the part of a count past 15 */
  while (n >= 255) {
    gc_buf_addc(b, (char)255);
    n -= 255;
  }
  gc_buf_addc(b, (char)n);
}

static int get_count(const unsigned char **p, const unsigned char *end, size_t *n) {
  for (;;) {
    if (*p >= end) return -1;
    unsigned c = *(*p)++;
    *n += c;
    if (*n > GC_PACK_MAX) return -1;
    if (c != 255) return 0;
  }
}

/* A lowercase UUID (8-4-4-4-12 hex digits), the ids a log is full of: 36 bytes said in 16. */
#define UUID_LEN 36
static const char HEX[] = "0123456789abcdef";

static int hexval(unsigned c) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  return -1;
}

static int is_dash(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

static int uuid_at(const unsigned char *p, size_t left) {
  if (left < UUID_LEN) return 0;
  for (size_t i = 0; i < UUID_LEN; i++)
    if (is_dash(i) ? p[i] != '-' : hexval(p[i]) < 0) return 0;
  return 1;
}

static void put_uuid(gc_buf *b, const unsigned char *p) {
  unsigned char bin[16];
  size_t k = 0;
  for (size_t i = 0; i < UUID_LEN; i += 2) {
    if (is_dash(i)) i++;
    bin[k++] = (unsigned char)(hexval(p[i]) << 4 | hexval(p[i + 1]));
  }
  gc_buf_add(b, bin, 16);
}

/* literals, then a match (dist, mlen), a UUID (dist 0, uuid), or nothing (the block's end) */
static void put_sequence(gc_buf *b, const unsigned char *lit, size_t nlit, size_t dist, size_t mlen,
                         const unsigned char *uuid) {
  size_t m = mlen ? mlen - MIN_MATCH : 0;
  gc_buf_addc(b, (char)(((nlit < 15 ? nlit : 15) << 4) | (m < 15 ? m : 15)));
  if (nlit >= 15) put_count(b, nlit - 15);
  gc_buf_add(b, lit, nlit);
  if (uuid) {
    gc_buf_addc(b, 0);
    gc_buf_addc(b, 0);
    put_uuid(b, uuid);
    return;
  }
  if (!mlen) return;
  gc_buf_addc(b, (char)(dist & 0xff));
  gc_buf_addc(b, (char)(dist >> 8));
  if (m >= 15) put_count(b, m - 15);
}

static uint32_t hash4(const unsigned char *p) {
  uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  return (v * 2654435761u) >> (32 - HASH_BITS);
}

typedef struct {
  const unsigned char *w;
  size_t from, n;
  uint32_t head[1 << HASH_BITS];
  uint32_t *prev;  /* chain links, indexed pos - from */
} matcher;

static void insert(matcher *m, size_t pos) {
  if (pos + MIN_MATCH > m->n) return;
  uint32_t h = hash4(m->w + pos);
  m->prev[pos - m->from] = m->head[h];
  m->head[h] = (uint32_t)(pos - m->from);
}

/* the longest match for pos in the window, its length (0: none) and *dist */
static size_t longest(const matcher *m, size_t pos, size_t *dist) {
  size_t best = 0;
  if (pos + MIN_MATCH > m->n) return 0;
  uint32_t c = m->head[hash4(m->w + pos)];
  for (int depth = 0; c != UINT32_MAX && depth < CHAIN_DEPTH; depth++, c = m->prev[c]) {
    size_t cand = c + m->from, len = 0;
    if (pos - cand > MAX_DIST) break;
    while (pos + len < m->n && m->w[cand + len] == m->w[pos + len]) len++;
    if (len > best) {
      best = len;
      *dist = pos - cand;
    }
  }
  return best;
}

/* The sequences of w[start, n), matches reaching back into w[0, start) too. (Waiting a byte
 * for a longer match saved 1% of an IVR's log for 40% more time.) */
static int compress(gc_buf *b, const unsigned char *w, size_t start, size_t n) {
  matcher *m = malloc(sizeof *m);
  if (!m) return -1;
  m->w = w;
  m->n = n;
  m->from = start > MAX_DIST ? start - MAX_DIST : 0;
  m->prev = malloc((n - m->from + 1) * sizeof *m->prev);
  if (!m->prev) {
    free(m);
    return -1;
  }
  for (size_t i = 0; i < (1u << HASH_BITS); i++) m->head[i] = UINT32_MAX;
  for (size_t i = m->from; i < start; i++) insert(m, i);
  size_t pos = start, lit = start;
  while (pos + MIN_MATCH <= n) {
    size_t dist = 0;
    size_t best = longest(m, pos, &dist);
    if (best < 20 && uuid_at(w + pos, n - pos)) {  /* a new id: said in binary */
      put_sequence(b, w + lit, pos - lit, 0, 0, w + pos);
      best = UUID_LEN;
    } else if (best < MIN_MATCH) {
      insert(m, pos);
      pos++;
      continue;
    } else {
      put_sequence(b, w + lit, pos - lit, dist, best, NULL);
    }
    for (size_t end = pos + best; pos < end; pos++) insert(m, pos);
    lit = pos;
  }
  put_sequence(b, w + lit, n - lit, 0, 0, NULL);
  free(m->prev);
  free(m);
  return b->oom ? -1 : 0;
}

/* Unpack the blocks of p[0, plen) after what w already holds (the dictionary first). */
static int expand(gc_buf *w, const unsigned char *p, size_t plen, const char **err) {
  const unsigned char *end = p + plen;
  while (p < end) {
    size_t raw, clen;
    if (get_varint(&p, end, &raw) || get_varint(&p, end, &clen) || clen > (size_t)(end - p))
      return fail(err, "a packed block's header is cut short");
    if (raw > GC_PACK_MAX || w->len - DICT_LEN + raw > GC_PACK_MAX)
      return fail(err, "a packed text says it is too large");
    if (gc_buf_reserve(w, raw) != 0) return fail(err, "out of memory");
    const unsigned char *q = p, *qend = p + clen;
    size_t goal = w->len + raw;
    while (q < qend) {
      unsigned tok = *q++;
      size_t nlit = tok >> 4, m = tok & 15;
      if (nlit == 15 && get_count(&q, qend, &nlit)) return fail(err, "a packed count is cut short");
      if (nlit > (size_t)(qend - q) || nlit > goal - w->len) return fail(err, "packed literals overrun");
      memcpy(w->p + w->len, q, nlit);
      w->len += nlit;
      q += nlit;
      if (q == qend) break;  /* the last sequence: literals only */
      if (qend - q < 2) return fail(err, "a packed distance is cut short");
      size_t dist = (size_t)q[0] | (size_t)q[1] << 8;
      q += 2;
      if (dist == 0) {  /* a UUID, 16 bytes */
        if (m != 0 || qend - q < 16 || goal - w->len < UUID_LEN) return fail(err, "a packed UUID is cut short");
        for (size_t i = 0; i < UUID_LEN; i++) {
          if (is_dash(i)) {
            w->p[w->len++] = '-';
            continue;
          }
          w->p[w->len++] = HEX[*q >> 4];
          w->p[w->len++] = HEX[*q++ & 15];
          i++;
        }
        continue;
      }
      if (m == 15 && get_count(&q, qend, &m)) return fail(err, "a packed count is cut short");
      m += MIN_MATCH;
      if (dist > w->len) return fail(err, "a packed distance reaches before the text");
      if (m > goal - w->len) return fail(err, "a packed match overruns its block");
      for (size_t i = 0; i < m; i++, w->len++) w->p[w->len] = w->p[w->len - dist];  /* may overlap */
    }
    if (w->len != goal) return fail(err, "a packed block is not as long as it says");
    p = qend;
  }
  return 0;
}

static int window(gc_buf *w, const char *packed, size_t plen, const char **err) {
  gc_buf_add(w, DICT, DICT_LEN);
  if (w->oom) return fail(err, "out of memory");
  if (plen == 0) return 0;
  if ((unsigned char)packed[0] != VERSION) return fail(err, "not a packed text (or of another version)");
  return expand(w, (const unsigned char *)packed + 1, plen - 1, err);
}

int gc_unpack(gc_buf *out, const char *packed, size_t plen, const char **err) {
  gc_buf w;
  gc_buf_init(&w);
  if (plen == 0) {
    gc_buf_free(&w);
    return fail(err, "not a packed text (empty)");
  }
  if (window(&w, packed, plen, err) != 0) {
    gc_buf_free(&w);
    return -1;
  }
  gc_buf_add(out, w.p + DICT_LEN, w.len - DICT_LEN);
  gc_buf_free(&w);
  return out->oom ? fail(err, "out of memory") : 0;
}

int gc_pack_append(gc_buf *out, const char *packed, size_t plen, const char *text, size_t tlen,
                   const char **err) {
  gc_buf w;
  gc_buf_init(&w);
  if (window(&w, packed, plen, err) != 0) goto failed;
  if (w.len - DICT_LEN + tlen > GC_PACK_MAX) {
    fail(err, "a packed text would be too large");
    goto failed;
  }
  size_t start = w.len;
  gc_buf_add(&w, text, tlen);
  if (plen == 0) gc_buf_addc(out, (char)VERSION);
  else gc_buf_add(out, packed, plen);
  gc_buf body;
  gc_buf_init(&body);
  if (w.oom || compress(&body, (const unsigned char *)w.p, start, w.len) != 0) {
    gc_buf_free(&body);
    fail(err, "out of memory");
    goto failed;
  }
  put_varint(out, tlen);
  put_varint(out, body.len);
  gc_buf_add(out, body.p, body.len);
  gc_buf_free(&body);
  gc_buf_free(&w);
  return out->oom ? fail(err, "out of memory") : 0;
failed:
  gc_buf_free(&w);
  return -1;
}
