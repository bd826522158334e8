/* notify.h: the commsNotifications the calling service POSTs to a bot, read from a parsed
 * JSON tape (json.h). Envelope checks, resource URL classification and the normalizations the
 * service's inconsistencies force (REFERENCE.md §0.4, §0.5). Values stay in the tape; this
 * only says where they are. No I/O, no Lua. */
#ifndef GC_NOTIFY_H
#define GC_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"

typedef enum {
  GC_N_CALL, GC_N_PARTICIPANTS, GC_N_OPERATION, GC_N_CONTENT_SHARING, GC_N_UNKNOWN
} gc_nkind;

typedef enum { GC_C_CREATED, GC_C_UPDATED, GC_C_DELETED, GC_C_OTHER } gc_nchange;

/* bytes of doc->text, or of the aux buffer given to gc_notify_scan when aux is set (an
 * escaped URL, decoded); len 0 = absent */
typedef struct { uint32_t off, len; uint8_t aux; } gc_span;

typedef struct {
  uint32_t tok;          /* the commsNotification object */
  uint32_t change_tok;   /* changeType string */
  uint32_t url_tok;      /* resourceUrl string (or 0) */
  uint32_t resource_tok; /* legacy resource string (or 0) */
  uint32_t data_tok;     /* resourceData (object or array), or 0 */
  uint32_t item_tok;     /* resourceData as one object: itself, or the first element of an
                            array (roster wrapper, content sharing); 0 if none */
  uint8_t kind;          /* gc_nkind */
  uint8_t change;        /* gc_nchange */
  gc_span call_id;       /* from the URL, else resourceData.id for a call */
  gc_span sub_id;        /* operation id, or content sharing session id, from the URL */
  uint64_t hash;         /* of the notification's JSON text: repeats hash alike */
} gc_notif;

typedef struct {
  size_t max_notifications;  /* per body; 0 = GC_NOTIFY_DEFAULT_MAX */
} gc_notify_limits;

#define GC_NOTIFY_DEFAULT_MAX 256

/* Read the envelope of a parsed body into out[0..*n). 0 on success; -1 with *err set (a static
 * message) if the body is not a commsNotifications object, or any notification in it is
 * malformed: then nothing of it is usable. aux (cleared first) receives decoded copies of
 * URLs that had JSON escapes (JSON allows "\/"); spans with aux set point into it. */
int gc_notify_scan(const gc_jdoc *doc, gc_notif *out, size_t cap, size_t *n, const char **err,
                   gc_buf *aux);

/* Classify a resource URL: /communications/calls/{id}[/participants|/operations/{op}|
 * /contentsharingsessions[/{id}]], also without the leading slash, under /app/calls, or as a
 * full https URL. Returns the kind; spans are offsets into url. */
gc_nkind gc_notify_classify(const char *url, size_t len, gc_span *call_id, gc_span *sub_id);

/* resultInfo {code, subcode|subCode, message}: numbers or numeric strings. Each of has_code,
 * has_subcode says whether that value was there and readable; *message is a string token or 0. */
void gc_notify_result(const gc_jdoc *doc, uint32_t obj, int64_t *code, int *has_code,
                      int64_t *subcode, int *has_subcode, uint32_t *message);

/* operationStatus in lower camel case ("notStarted", "running", "completed", "failed"), from
 * any letter case; NULL if it is none of them. */
const char *gc_notify_status(const char *s, size_t len);

/* callState in lower camel case ("established", "transferAccepted", ...), from any letter case
 * (a legacy example writes "Established"); NULL if it is none of Graph's members. */
const char *gc_notify_call_state(const char *s, size_t len);

/* The action an operation type belongs to: "#microsoft.graph.recordOperation" ->
 * "recordResponse", "...playPromptOperation" -> "playPrompt". Writes at most cap bytes to out
 * and returns the length, or 0 if the type is not an operation. */
size_t gc_notify_optype(const char *odata, size_t len, char *out, size_t cap);

/* A 64-bit hash of bytes (not cryptographic). */
uint64_t gc_hash64(const void *p, size_t len);

#endif
