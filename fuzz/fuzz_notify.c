/* libFuzzer target: the JSON reader and the notification scanner on arbitrary bodies, with
 * every value the Lua layer would read taken out of the tape. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "notify.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
