/* notify_flat.h: commsNotifications as plain C records, for LuaJIT's FFI.
 *
 * Under LuaJIT every lua_* call from C leaves compiled code, so building events through the
 * Lua C API (lua_notify.c) costs more than the parse. This is the same scan (notify.h) with
 * its results written to flat arrays that Lua reads through the FFI and turns into the same
 * events (lua/graphcall/flat.lua). Strings are byte ranges of the body, or of `strs` when
 * they had to be decoded (escapes). The lazy parts (an event's data, a participant's other
 * fields) are byte ranges of the body's JSON text, decoded again when first asked for.
 * No I/O, no Lua. Layouts here are mirrored by the cdef in flat.lua: change both. */
#ifndef GC_NOTIFY_FLAT_H
#define GC_NOTIFY_FLAT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define GC_EXPORT __attribute__((visibility("default")))
#else
#define GC_EXPORT
#endif

#define GC_FLAT_STRS 0x80000000u  /* in gc_fstr.off: the bytes are in strs, not the body */

typedef struct { uint32_t off; int32_t len; } gc_fstr;  /* len -1: absent */

enum {
  GC_F_INCOMING = 1, GC_F_TONE = 2, GC_F_SEQID = 4, GC_F_RESULT = 8, GC_F_CODE = 16,
  GC_F_SUBCODE = 32, GC_F_DELTA = 64, GC_F_SEQNUM = 128, GC_F_PARTS = 256,
  GC_F_ITEM_ARRAY = 512  /* item_off/len is a JSON array */
};

typedef struct {
  uint8_t kind;     /* gc_nkind */
  uint8_t change;   /* gc_nchange; GC_C_OTHER: change_type holds the text */
  uint8_t status;   /* operation status, 1..4 = notStarted, running, completed, failed; 0:
                       status_text holds the text if any */
  uint8_t pad;
  uint32_t flags;   /* GC_F_* */
  gc_fstr change_type, url, resource, call_id, sub_id;
  gc_fstr state, direction, tenant_id, call_chain_id, my_participant_id;
  gc_fstr tone, message, client_context, op_type, status_text;
  double fingerprint, sequence_id, code, subcode, sequence_number;
  uint32_t data_off, data_len;    /* the JSON text of data (len 0: none) */
  uint32_t item_off, item_len;    /* operation: its resourceData object; sharing: data */
  uint32_t part_first, part_count;
} gc_flat_event;

enum { GC_FP_RSN = 1, GC_FP_REMOVED = 2 };

typedef struct {
  gc_fstr id;
  double rsn;
  uint32_t off, len;  /* the participant's JSON text */
  uint32_t flags;     /* GC_FP_* */
} gc_flat_participant;

typedef struct {
  const gc_flat_event *ev;
  uint32_t nev;
  const gc_flat_participant *part;
  uint32_t npart;
  const char *strs;
  size_t strs_len;
  /* on failure: what core.parse_notifications would return as {code, message, path} */
  const char *err_code, *err_path;
  char err_msg[128];
} gc_flat_out;

typedef struct gc_flat gc_flat;

/* A reusable context (its arrays stay warm between bodies); NULL if out of memory. */
GC_EXPORT gc_flat *gc_flat_new(void);
GC_EXPORT void gc_flat_free(gc_flat *f);

/* Parse body and fill the context's output; err_code is NULL on success. max_size and
 * max_depth as in json.h (0 = default); max_n notifications at most (GC_NOTIFY_DEFAULT_MAX
 * is the usual). The output is valid until the next call. Bodies of
 * 64 MiB or more are refused (offsets are packed into Lua numbers). */
GC_EXPORT const gc_flat_out *gc_flat_parse(gc_flat *f, const char *body, size_t len,
                                           size_t max_size, int max_depth, size_t max_n);

#endif
