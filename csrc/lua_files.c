/* lua_files.c: graphcall.core's private files and folders. Call logs, recordings and prompts
 * made from callers' data hold numbers and voices: they are created readable by the bot's
 * user alone (0600 files, 0700 folders), whatever the process's umask, and before anything
 * is written into them (a program told to write a file that exists keeps its mode). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua_glue.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

static int fail(lua_State *L, const char *what, const char *path) {
  lua_pushnil(L);
  lua_pushfstring(L, "cannot %s %s: %s", what, path, strerror(errno));
  return 2;
}

/* core.private_file(path) -> true | nil, err: the file exists, mode 0600 (made empty if it
 * was not there; one there already keeps its content and is made 0600) */
int gc_l_private_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail(L, "make", path);
  if (fchmod(fd, 0600) != 0) {
    int e = errno;
    (void)close(fd);
    errno = e;
    return fail(L, "make private", path);
  }
  (void)close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.private_dir(path) -> true | nil, err: a new folder, mode 0700 (true, unchanged, if
 * it is a folder already) */
int gc_l_private_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (mkdir(path, 0700) != 0) {
    struct stat st;
    int e = errno;
    if (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      lua_pushboolean(L, 1);
      return 1;
    }
    errno = e;
    return fail(L, "make the folder", path);
  }
  if (chmod(path, 0700) != 0) return fail(L, "make private", path);   /* (the umask took bits off) */
  lua_pushboolean(L, 1);
  return 1;
}
