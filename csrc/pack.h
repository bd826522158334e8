/* pack.h: a call's log held in fewer bytes than its JSON, for a process that keeps many calls
 * waiting (graphcall.store.memory). LZ77 in LZ4's byte format, its window primed with a built-in
 * dictionary of what a log says (Graph's vocabulary, the log's own keys), so even a short log
 * finds its keys there, and everything a call repeats (its id, an operation's id in the
 * operation and in its location, a clientContext) is said once.
 *
 * A packed text is a version byte and blocks; text appended later is a block of its own whose
 * window is the dictionary and everything before it, so appending costs the new text only.
 *   block: varint raw length, varint packed length, sequences
 *   sequence: token (literal count << 4 | match length - 4), count bytes of 255 past 15,
 *     literals, then (unless the block ends) a 2-byte little-endian distance and length bytes,
 *     or distance 0 and a lowercase UUID's 16 bytes (new ids are most of what a log says anew) */
#ifndef GC_PACK_H
#define GC_PACK_H

#include <stddef.h>

#include "buf.h"

/* A packed text's raw size at most; an unpack of anything that says more fails. */
#define GC_PACK_MAX (256u << 20)

/* out = packed (a packed text, or len 0 for none) with text appended as a new block.
 * 0, or -1 with *err (out of memory, a packed text that does not unpack, too large). */
int gc_pack_append(gc_buf *out, const char *packed, size_t plen, const char *text, size_t tlen,
                   const char **err);

/* out = the raw text of a packed one. 0, or -1 with *err on input that is not a packed text. */
int gc_unpack(gc_buf *out, const char *packed, size_t plen, const char **err);

#endif
