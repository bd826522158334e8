/* files.h: serving files from one folder to the calling service (prompts are WAV files it
 * fetches from the bot), with no way out of that folder: the URL path is percent-decoded
 * once, then every segment must be a plain name (no "", ".", "..", no leading dot, no
 * backslash, no NUL), and each is opened with O_NOFOLLOW under the one before, so neither
 * dot segments, encoded dots nor symlinks lead anywhere else. Directories are not listed. */
#ifndef GC_FILES_H
#define GC_FILES_H

#include <stddef.h>
#include <sys/stat.h>

#define GC_FILES_MAX_PATH 1024
#define GC_FILES_MAX_DEPTH 16

/* Open the regular file named by the raw (still percent-encoded) URL path `path` of `len`
 * bytes, relative to the folder open at rootfd. Returns an fd (O_RDONLY, close-on-exec) and
 * fills *st, or -1 when there is no such file or the path is refused: both answer 404. */
int gc_files_open(int rootfd, const char *path, size_t len, struct stat *st);

/* Percent-decode src into dst (at least len + 1 bytes). Returns the decoded length, or -1
 * on a malformed escape or an encoded NUL. */
long gc_url_decode(const char *src, size_t len, char *dst);

/* A Content-Type for a file name, by its extension. */
const char *gc_files_type(const char *name);

#endif
