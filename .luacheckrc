-- luacheck (Debian lua-check): `make lint`. The code runs on Lua 5.4 and LuaJIT 2.1.
std = "max"
max_line_length = 120
files["spec"] = { std = "+busted" }
files["bench/roster.lua"] = { max_line_length = false }  -- a JSON template
self = false  -- methods need not use self
files["bench/wrk-notify.lua"] = { globals = { "wrk", "request", "response", "done", "setup", "tid" } }  -- wrk's API
files["lua/graphcall/ngx"] = { std = "+ngx_lua" }   -- runs inside OpenResty
files["spec/ngx"] = { std = "+ngx_lua+busted" }
files["examples/openresty"] = { std = "+ngx_lua" }
