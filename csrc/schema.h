/* schema.h: the compact description of Graph's calling types that drives both encoding and
 * validation. The tables live in schema_data.c, generated from Graph's v1.0 metadata by
 * tools/gen-schema.lua; lookups are in schema.c. */
#ifndef GC_SCHEMA_H
#define GC_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  GC_K_STRING, GC_K_BOOL, GC_K_INT32, GC_K_INT64, GC_K_DOUBLE,
  GC_K_ENUM, GC_K_COMPLEX, GC_K_ANY
} gc_kind;

/* field flags */
#define GC_F_COLLECTION 0x01
#define GC_F_REQUIRED   0x02  /* must be present and not null */
#define GC_F_NONNULL    0x04  /* CSDL Nullable="false"; informational where not REQUIRED */
#define GC_F_HTTPS      0x08  /* a notification URL: https, or http on loopback */
#define GC_F_DERIVED    0x10  /* declared by a derived type, accepted under the base */
#define GC_F_ONE_OF     0x20  /* at least one ONE_OF field of the type must be present */

/* type flags */
#define GC_T_ABSTRACT      0x01
#define GC_T_OPEN          0x02
#define GC_T_NO_ANNOTATION 0x04  /* never add @odata.type for it */
#define GC_T_ACTION        0x08  /* an action's parameter set, not a Graph type */

typedef struct {
  const char *name;
  uint16_t len;
  uint8_t kind;      /* gc_kind */
  uint8_t flags;     /* GC_F_* */
  int16_t ref;       /* gc_types index (COMPLEX) or gc_enums index (ENUM), else -1 */
  uint16_t max_items;/* collections: 0 = no limit */
} gc_field;

typedef struct {
  const char *name;  /* short name: "call", or "action:answer" */
  uint16_t name_len;
  const char *odata; /* "#microsoft.graph.call"; NULL for actions */
  int16_t base;      /* gc_types index of the base type, or -1 */
  int16_t deflt;     /* concrete type meant when only the base is known, or -1 */
  uint16_t field0, nfields;
  uint8_t flags;     /* GC_T_* */
  uint64_t required; /* bit i: field field0+i is REQUIRED */
  uint64_t one_of;   /* bit i: field field0+i is ONE_OF */
} gc_type;

typedef struct {
  const char *name;
  uint16_t member0, nmembers;
} gc_enum;

extern const gc_type gc_types[];
extern const int gc_ntypes;
extern const gc_field gc_fields[];
extern const gc_enum gc_enums[];
extern const int gc_nenums;
extern const char *const *const gc_enum_members;

/* Index of a type by short name ("mediaPrompt") or full annotation ("#microsoft.graph.x",
 * "microsoft.graph.x"); -1 if unknown. */
int gc_type_find(const char *name, size_t len);
/* 1 if name (in any of gc_type_find's forms) names type t. */
int gc_type_matches(int t, const char *name, size_t len);
/* What graphcall.build() can build: an action's parameters ("answer", "participant.mute")
 * or a type ("call"); -1 if neither. */
int gc_root_find(const char *name, size_t len);
/* Equality of a length-counted string with a schema name, without a libc call: schema names
 * are short, and this runs for every key. */
static inline int gc_name_eq(const char *a, const char *b, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* Field of type t named name, or NULL. */
const gc_field *gc_field_find(int t, const char *name, size_t len);
/* 1 if type t is base or derives from it. */
int gc_type_is_a(int t, int base);
/* Index of the enum member, or -1. */
int gc_enum_find(int e, const char *s, size_t len);
/* The same in any letter case: the metadata writes operationStatus "Completed", the service
 * "completed" (REFERENCE.md 0.5). */
int gc_enum_find_nocase(int e, const char *s, size_t len);

#endif
