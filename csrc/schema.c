#include <string.h>
#include <strings.h>

#include "schema.h"

/* gc_types is sorted by name (the generator sorts it) */
static int find_exact(const char *name, size_t len) {
  int lo = 0, hi = gc_ntypes - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    const char *n = gc_types[mid].name;
    size_t nl = gc_types[mid].name_len;
    size_t m = nl < len ? nl : len;
    int c = 0;
    for (size_t i = 0; i < m && !c; i++) c = (unsigned char)n[i] - (unsigned char)name[i];
    if (c == 0) c = (nl > len) - (nl < len);
    if (c == 0) return mid;
    if (c < 0) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

static const char ns[] = "microsoft.graph.";

/* "#microsoft.graph.x", "microsoft.graph.x" and "x" all name x */
static void short_name(const char **name, size_t *len) {
  if (*len && (*name)[0] == '#') { (*name)++; (*len)--; }
  if (*len > sizeof(ns) - 1 && memcmp(*name, ns, sizeof(ns) - 1) == 0) {
    *name += sizeof(ns) - 1;
    *len -= sizeof(ns) - 1;
  }
}

int gc_type_matches(int t, const char *name, size_t len) {
  short_name(&name, &len);
  return gc_types[t].name_len == len && gc_name_eq(gc_types[t].name, name, len);
}

int gc_type_find(const char *name, size_t len) {
  short_name(&name, &len);
  int t = find_exact(name, len);
  return (t >= 0 && (gc_types[t].flags & GC_T_ACTION)) ? -1 : t;
}

int gc_root_find(const char *name, size_t len) {
  char key[64] = "action:";
  if (len < sizeof(key) - 8) {
    memcpy(key + 7, name, len);
    int t = find_exact(key, len + 7);
    if (t >= 0) return t;
  }
  return gc_type_find(name, len);
}

const gc_field *gc_field_find(int t, const char *name, size_t len) {
  const gc_type *ty = &gc_types[t];
  const gc_field *f = &gc_fields[ty->field0], *end = f + ty->nfields;
  for (; f < end; f++)
    if (f->len == len && f->name[0] == name[0] && gc_name_eq(f->name, name, len)) return f;
  return NULL;
}

int gc_type_is_a(int t, int base) {
  while (t >= 0) {
    if (t == base) return 1;
    t = gc_types[t].base;
  }
  return 0;
}

int gc_enum_find_nocase(int e, const char *s, size_t len) {
  const gc_enum *en = &gc_enums[e];
  for (int i = 0; i < en->nmembers; i++) {
    const char *m = gc_enum_members[en->member0 + i];
    if (strlen(m) == len && strncasecmp(m, s, len) == 0) return i;
  }
  return -1;
}

int gc_enum_find(int e, const char *s, size_t len) {
  const gc_enum *en = &gc_enums[e];
  if (memchr(s, 0, len)) return -1;  /* keeps the m[len] read below inside m */
  for (int i = 0; i < en->nmembers; i++) {
    const char *m = gc_enum_members[en->member0 + i];
    if (m[0] == (len ? s[0] : 0) && strncmp(m, s, len) == 0 && m[len] == 0) return i;
  }
  return -1;
}
