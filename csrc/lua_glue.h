/* lua_glue.h: what the files of the binding layer share (graphcall.core).
 * The binding reads top-down: lua_core.c opens lua_notify.c and lua_jwt.c (and registers
 * lua_resp.c's and lua_spawn.c's functions); they stand on lua_push.c, which calls nothing
 * above it. */
#ifndef GC_LUA_GLUE_H
#define GC_LUA_GLUE_H

#include "compat.h"
#include "buf.h"
#include "json.h"

#define ERROR_MT "graphcall.error"
#define KEEP_BYTES (1u << 20)  /* larger reusable buffers are released after use */

/* upvalues of every graphcall.core function */
#define UV_ENCODER 1
#define UV_DECODER 2
#define UV_ODATA 3
#define UV_LAZY 4  /* the __index of lazy tables (it has the first three itself) */

typedef struct {
  gc_jdoc doc;
  gc_buf scratch;
  gc_buf aux;  /* decoded escaped URLs of the notifications being read */
} decoder;

/* lua_push.c: the bottom of the binding, used by every file above it */
void gc_l_push_open(lua_State *L);  /* the error metatable */
/* nil, {code=, message=, path=} with the error metatable; returns 2 */
int gc_l_push_error(lua_State *L, const char *code, const char *message, const char *path);
/* the JSON value at token t as Lua values (null = lightuserdata NULL) */
void gc_l_push_tok(lua_State *L, const gc_jdoc *d, uint32_t t, gc_buf *scratch);
void gc_l_push_str(lua_State *L, const gc_jdoc *d, uint32_t t, gc_buf *scratch);
void gc_l_fill_tok(lua_State *L, int idx, const gc_jdoc *d, uint32_t t, gc_buf *scratch);

/* lua_spawn.c */
int gc_l_spawn(lua_State *L);
int gc_l_reap(lua_State *L);
int gc_l_private_file(lua_State *L);
int gc_l_private_dir(lua_State *L);
int gc_l_x509_thumbprints(lua_State *L);
int gc_l_x509_key_matches(lua_State *L);
int gc_l_x509_sign(lua_State *L);
int gc_l_x509_verify(lua_State *L);
int gc_l_b64url_decode(lua_State *L);

/* lua_jwt.c */
void gc_l_jwt_open(lua_State *L);
int gc_l_jwks(lua_State *L);
int gc_l_verify_jwt(lua_State *L);
int gc_l_rsa_key(lua_State *L);
int gc_l_uuid(lua_State *L);

/* lua_notify.c */
void gc_l_notify_open(lua_State *L);
/* lua_resp.c */
void gc_l_resp_open(lua_State *L);
int gc_l_resp_command(lua_State *L);
int gc_l_resp_reader(lua_State *L);
int gc_l_resp_slot(lua_State *L);

int gc_l_parse_notifications(lua_State *L);
int gc_l_materialize(lua_State *L);
int gc_l_lazy_index(lua_State *L);  /* needs upvalues 1-3 */

#endif
