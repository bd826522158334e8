#!/bin/sh
# rock-check.sh: install the rock offline into a temporary tree for Lua 5.4 and for LuaJIT (Lua
# 5.1's ABI, luarocks told its interpreter is luajit), load it from there under lua5.4 and
# luajit, and run the installed command under both.
set -e
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
# luarocks for LuaJIT: Lua 5.1's ABI, luajit's headers, and the installed command wrapped for
# luajit: the luajit.lua of the README's Install section, as it prints it
awk '/^cat > luajit.lua <<.EOF.$/ { on = 1; next } on && /^EOF$/ { exit } on' README.md > "$tree/luajit-config.lua"
grep -q '^lua_interpreter = "luajit"$' "$tree/luajit-config.lua" || { echo "README: no luajit.lua in Install"; exit 1; }
LUAROCKS_CONFIG="$tree/luajit-config.lua" luarocks make rockspec/graphcall-dev-1.rockspec --tree "$tree/jit" \
  --lua-version=5.1 --deps-mode=none >/dev/null
luarocks make rockspec/graphcall-dev-1.rockspec --tree "$tree/54" --lua-version=5.4 --deps-mode=none >/dev/null
LUA_PATH="$tree/54/share/lua/5.4/?.lua;$tree/54/share/lua/5.4/?/init.lua;;" LUA_CPATH="$tree/54/lib/lua/5.4/?.so;;" \
  lua5.4 tools/rock-load.lua
LUA_PATH="$tree/jit/share/lua/5.1/?.lua;$tree/jit/share/lua/5.1/?/init.lua;;" LUA_CPATH="$tree/jit/lib/lua/5.1/?.so;;" \
  luajit tools/rock-load.lua
# the commands luarocks installed: their wrappers find the modules through luarocks' loader,
# which knows the default trees, not these; each must start the emulator and know its Lua
for t in 54:5.4 jit:5.1; do
  dir=${t%%:*} v=${t##*:}
  env="LUA_PATH=$tree/$dir/share/lua/$v/?.lua;$tree/$dir/share/lua/$v/?/init.lua;; LUA_CPATH=$tree/$dir/lib/lua/$v/?.so;;"
  version=$(env $env "$tree/$dir/bin/graphcall" --version)
  line=$(env $env timeout 5 "$tree/$dir/bin/graphcall" emulate --port 0 --quiet | head -n 1 || true)
  case "$line" in
    "graphcall emulator listening on http://127.0.0.1:"*) echo "bin/graphcall from the $dir tree ($version): $line" ;;
    *) echo "the graphcall command installed for $dir did not start the emulator: $line"; exit 1 ;;
  esac
  case "$dir:$version" in
    jit:*LuaJIT*|54:*"Lua 5.4"*) ;;
    *) echo "the graphcall command installed for $dir runs under the wrong Lua: $version"; exit 1 ;;
  esac
done
