#!/bin/sh
# rock-check.sh: install the rock offline into a temporary tree for Lua 5.4 and 5.1 (LuaJIT's
# ABI), then load it from there under lua5.4 and luajit.
set -e
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
for v in 5.4 5.1; do
  luarocks make rockspec/graphcall-dev-1.rockspec --tree "$tree" --lua-version=$v --deps-mode=none >/dev/null
done
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua" LUA_CPATH="$tree/lib/lua/5.4/?.so" \
  lua5.4 tools/rock-load.lua
LUA_PATH="$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua" LUA_CPATH="$tree/lib/lua/5.1/?.so" \
  luajit tools/rock-load.lua
