#!/bin/sh
# rock-check.sh: install the rock offline into a temporary tree for Lua 5.4 and 5.1 (LuaJIT's
# ABI), then load it from there under lua5.4 and luajit, and start the installed command.
set -e
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
for v in 5.1 5.4; do
  luarocks make rockspec/graphcall-dev-1.rockspec --tree "$tree" --lua-version=$v --deps-mode=none >/dev/null
done
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
  lua5.4 tools/rock-load.lua
LUA_PATH="$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua;;" LUA_CPATH="$tree/lib/lua/5.1/?.so;;" \
  luajit tools/rock-load.lua
# the command luarocks installed (for 5.4, made last) starts the emulator; its wrapper finds
# the modules through luarocks' loader, which knows the default trees, not this one
line=$(LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
  timeout 5 "$tree/bin/graphcall" emulate --port 0 --quiet | head -n 1 || true)
case "$line" in
  "graphcall emulator listening on http://127.0.0.1:"*) echo "bin/graphcall from the rock tree: $line" ;;
  *) echo "the installed graphcall command did not start the emulator: $line"; exit 1 ;;
esac
