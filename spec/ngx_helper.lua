-- Real nginx for the specs: a generated config in a temporary prefix, on loopback, with two
-- workers, graphcall's modules (the LuaJIT build) and a shared dict; started and stopped here.
local E = require "emu"

local N = {}

N.available = os.execute("test -f /usr/lib/nginx/modules/ngx_http_lua_module.so") == true
  or os.execute("test -f /usr/lib/nginx/modules/ngx_http_lua_module.so") == 0

-- a port for a server of its own (spec/ports.lua: once per process, outside the ephemeral ports)
local free_port = require("ports").take
N.free_port = free_port

--- Start nginx: o.init (Lua for init_worker, a string), o.locations (extra config), o.http
-- (directives of the http block), o.workers.
function N.start(o)
  local dir = E.tmpdir()
  local port = o.port or free_port()
  os.execute("mkdir -p " .. dir .. "/logs " .. dir .. "/conf " .. dir .. "/prompts")
  local root = io.popen("pwd"):read("*l")
  local user = io.popen("id -u"):read("*l") == "0" and "user root root;" or ""
  local conf = user .. string.format([[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes %d;
daemon on;
pid %s/logs/nginx.pid;
error_log %s/logs/error.log %s;
events { worker_connections 4096; accept_mutex off; }
http {
  access_log off;
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;;";
  lua_package_cpath "%s/build/luajit/?.so;;";
  lua_shared_dict graphcall %s;
  client_body_buffer_size 1m;
  client_max_body_size 1m;
  %s
  init_worker_by_lua_block {
    %s
  }
  server {
    listen 127.0.0.1:%d reuseport;
    location = /callback { content_by_lua_block { require("graphcall.ngx").handle() } }
    location /prompts/ { alias %s/prompts/; }
    location = /metrics { content_by_lua_block { require("graphcall.ngx").metrics() } }
    location = /readyz { content_by_lua_block { require("graphcall.ngx").readyz() } }
    %s
  }
}
]], o.workers or 2, dir, dir, o.loglevel or "info", root, root, root, root, o.dict or "32m", o.http or "", o.init or "",
    port, dir, o.locations or "")
  return N.run(conf, { dir = dir, port = port })
end

--- Start nginx on a whole config (conf/nginx.conf of a new prefix, or o.dir): o.port, o.env
-- (a string of NAME=value words put before the command).
function N.run(conf, o)
  local dir, port = o.dir, o.port
  if not dir then
    dir = E.tmpdir()
    os.execute("mkdir -p " .. dir .. "/logs " .. dir .. "/conf " .. dir .. "/prompts")
  end
  local f = assert(io.open(dir .. "/conf/nginx.conf", "w"))
  f:write(conf)
  f:close()
  local n = { dir = dir, port = port, url = "http://127.0.0.1:" .. port, prompts = dir .. "/prompts" }
  function n.cmd(args)
    return E.sh((o.env or "") .. " nginx -p " .. dir .. "/ -c conf/nginx.conf " .. (args or ""))
  end
  function n.log()
    local lf = io.open(dir .. "/logs/error.log")
    local text = lf and lf:read("*a") or ""
    if lf then lf:close() end
    return text
  end
  function n.stop()
    n.cmd("-s stop")
    for _ = 1, 50 do
      if not io.open(dir .. "/logs/nginx.pid") then break end
      os.execute("sleep 0.05")
    end
    os.execute("rm -rf " .. dir)
  end
  local out = n.cmd("")
  if out:find("emerg", 1, true) then error("nginx did not start: " .. out) end
  os.execute("sleep 0.3")
  return n
end

return N
