/* encode.h: schema-aware JSON writer for Graph request bodies.
 *
 * A push interface: the caller walks its own data (a Lua table, a test's literal) and reports
 * each value; the encoder checks it against the schema at that position, fills in @odata.type
 * where the schema implies it, and writes exact JSON. The first problem stops the encoding and
 * is described in enc->err with the path of the offending field. No I/O, no Lua. */
#ifndef GC_ENCODE_H
#define GC_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define GC_ENC_MAX_DEPTH 32
#define GC_ENC_TCACHE 32  /* power of two */

/* Stable error codes (err.code); the Lua layer exposes them as strings. */
typedef enum {
  GC_E_OK = 0,
  GC_E_REQUIRED,      /* a required field is missing or null */
  GC_E_ONE_OF,        /* none of a set of alternative fields is present */
  GC_E_TYPE,          /* wrong JSON type for the field */
  GC_E_ENUM,          /* string is not a member of the field's enum */
  GC_E_RANGE,         /* integer outside its Int32/Int64 range, or not finite */
  GC_E_HTTPS,         /* notification URL is not https (nor http on loopback) */
  GC_E_MAX_ITEMS,     /* collection longer than Graph allows */
  GC_E_UTF8,          /* string or key is not valid UTF-8 */
  GC_E_UNKNOWN_TYPE,  /* @odata.type names no type this library knows */
  GC_E_TYPE_REQUIRED, /* polymorphic field without @odata.type */
  GC_E_DEPTH,         /* nesting deeper than GC_ENC_MAX_DEPTH */
  GC_E_MEMORY,
  GC_E_STATE,         /* calls out of order: a bug in the caller */
  GC_E_UNKNOWN        /* checking (gc_enc.check): a property the schema does not declare */
} gc_errcode;

const char *gc_errcode_name(gc_errcode c);

typedef struct {
  gc_errcode code;
  char path[256];
  char message[256];
} gc_err;

/* What the next value should be, so the caller can tell an empty table's meaning. */
typedef enum { GC_EXPECT_ANY, GC_EXPECT_ARRAY, GC_EXPECT_OBJECT } gc_expect;

typedef struct {
  uint8_t is_array;
  uint8_t first;          /* no member written yet */
  uint8_t any;            /* below an unknown field: pass through, no checks */
  int16_t type;           /* object: its resolved type, or -1 */
  const void *field;      /* array: the collection field (const gc_field *) or NULL */
  const void *at;         /* the parent's field this frame is the value of, or NULL */
  uint64_t seen;          /* object: which of the type's fields were written */
  const char *key;        /* the key (object) or index (array) this frame sits at */
  size_t keylen;
  size_t index;           /* array: elements so far */
} gc_frame;

typedef struct {
  gc_buf out;
  gc_err err;
  int root;               /* type index being built */
  int check;              /* checking what the service sends against the schema: a property it
                             does not declare (but annotations, "@...") is an error, none is
                             required */
  int depth;
  const void *pending;    /* object: field of the key just written (NULL = unknown) */
  const char *key;        /* object: key just written */
  size_t keylen;
  int have_key;
  gc_frame st[GC_ENC_MAX_DEPTH];
  /* @odata.type lookups by string address: Lua interns strings, so a spec built once and
   * sent many times hits here; a hit is verified against a copy of the text, never trusted. */
  struct { const char *p; size_t len; int type; char text[64]; } tcache[GC_ENC_TCACHE];
} gc_enc;

/* Plain JSON, no schema: any value at the root, every table passed through as it is
 * (@odata.type written as given). The one writer of what graphcall keeps (logs, states). */
#define GC_ROOT_PLAIN (-1)

/* root: a gc_types index (see gc_root_find), or GC_ROOT_PLAIN. Keys passed to gc_enc_key must stay valid until
 * their value is complete (they are used for error paths). */
void gc_enc_init(gc_enc *e, int root);
/* Start a new document with e's buffer and caches (after gc_enc_init). */
void gc_enc_reset(gc_enc *e, int root);
void gc_enc_free(gc_enc *e);

gc_expect gc_enc_expect(const gc_enc *e);
/* odata: the object's own @odata.type (NULL if it has none). */
int gc_enc_begin_object(gc_enc *e, const char *odata, size_t odata_len);
int gc_enc_key(gc_enc *e, const char *k, size_t len);
int gc_enc_end_object(gc_enc *e);
int gc_enc_begin_array(gc_enc *e);
int gc_enc_end_array(gc_enc *e);
int gc_enc_string(gc_enc *e, const char *s, size_t len);
int gc_enc_integer(gc_enc *e, int64_t v);
int gc_enc_number(gc_enc *e, double v);
int gc_enc_bool(gc_enc *e, int b);
int gc_enc_null(gc_enc *e);
/* Record a problem found by the caller (say, a function value) at the current position. */
int gc_enc_fail(gc_enc *e, gc_errcode code, const char *message);

/* JSON string body escaping with UTF-8 validation; shared with other writers.
 * Returns 0, or -1 if s is not valid UTF-8. */
int gc_json_escape(gc_buf *b, const char *s, size_t len);
/* 1 if uri is https://host..., or http:// with a loopback host. */
int gc_uri_is_secure(const char *uri, size_t len);

#endif
