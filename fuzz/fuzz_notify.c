/* libFuzzer target: the JSON reader and the notification scanner on arbitrary bodies, with
 * every value the Lua layer would read taken out of the tape. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "notify.h"
#include "notify_flat.h"

static void touch(const gc_jdoc *d, gc_buf *scratch) {
  for (uint32_t t = 0; t < d->ntok; t++) {
    size_t len;
    int64_t v;
    switch (d->tok[t].type) {
      case GC_J_STRING: gc_json_str(d, t, scratch, &len); (void)gc_json_int(d, t, 1, &v); break;
      case GC_J_NUMBER: (void)gc_json_num(d, t); (void)gc_json_int(d, t, 0, &v); break;
      default: break;
    }
  }
}

/* every range the flat records give must lie inside the body or the decoded strings */
static void check_str(gc_fstr s, size_t body, size_t strs) {
  if (s.len < 0) return;
  if (s.off & GC_FLAT_STRS) {
    if ((size_t)(s.off & ~GC_FLAT_STRS) + (size_t)s.len > strs) abort();
  } else if ((size_t)s.off + (size_t)s.len > body) {
    abort();
  }
}

static void check_range(uint32_t off, uint32_t len, size_t body) {
  if ((size_t)off + len > body) abort();
}

static void flat(const uint8_t *data, size_t size) {
  static gc_flat *f;
  if (!f && !(f = gc_flat_new())) abort();
  const gc_flat_out *o = gc_flat_parse(f, (const char *)data, size, 1 << 20, 64, 16);
  if (o->err_code) return;
  size_t strs = o->strs_len;
  for (uint32_t i = 0; i < o->nev; i++) {
    const gc_flat_event *e = &o->ev[i];
    const gc_fstr *s = &e->change_type;
    for (int k = 0; k < 15; k++) check_str(s[k], size, strs);
    check_range(e->data_off, e->data_len, size);
    check_range(e->item_off, e->item_len, size);
    if ((size_t)e->part_first + e->part_count > o->npart) abort();
  }
  for (uint32_t i = 0; i < o->npart; i++) {
    check_str(o->part[i].id, size, strs);
    check_range(o->part[i].off, o->part[i].len, size);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  flat(data, size);
  gc_jdoc d;
  gc_json_limits lim = { 1 << 20, 64 };
  gc_buf scratch, aux;
  gc_buf_init(&scratch);
  gc_buf_init(&aux);
  if (gc_json_parse(&d, (const char *)data, size, &lim, NULL, 0) == 0) {
    touch(&d, &scratch);
    gc_notif ev[16];
    size_t n;
    const char *err;
    if (gc_notify_scan(&d, ev, 16, &n, &err, &aux) == 0) {
      for (size_t i = 0; i < n; i++) {
        uint32_t item = ev[i].item_tok;
        if (!item) continue;
        int64_t code, sub;
        int hc, hs;
        uint32_t msg;
        gc_notify_result(&d, gc_json_get(&d, item, "resultInfo", 10), &code, &hc, &sub, &hs, &msg);
        uint32_t ot = gc_json_get(&d, item, "@odata.type", 11);
        if (ot && d.tok[ot].type == GC_J_STRING) {
          char name[64];
          gc_notify_optype(d.text + d.tok[ot].off, d.tok[ot].len, name, sizeof name);
        }
        uint32_t st = gc_json_get(&d, item, "status", 6);
        if (st && d.tok[st].type == GC_J_STRING) gc_notify_status(d.text + d.tok[st].off, d.tok[st].len);
      }
    }
  }
  gc_json_free(&d);
  gc_buf_free(&scratch);
  gc_buf_free(&aux);
  return 0;
}
