-- Bot nodes as their own processes (`graphcall run` on one Redis) and Debian's nginx as a
-- round-robin load balancer in front of them, all on loopback; started and stopped here.
local E = require "emu"
local N = require "ngx_helper"

local C = {}

local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
local CPATH = os.getenv("LUA_CPATH") or ("./build/" .. (jit and "luajit" or "lua5.4") .. "/?.so;;")

local read = require("helper").read_if

--- Options `--name value` of a command line into `o` (its defaults say which names exist;
-- numbers where the default is one); a bad one prints `usage` and exits 2.
function C.options(args, o, usage)
  local i = 1
  while args[i] do
    local k = args[i]:match("^%-%-(.+)$")
    local v = args[i + 1]
    if type(o[k]) == "number" then v = tonumber(v or "") end
    if not k or o[k] == nil or v == nil then
      io.stderr:write("usage: ", usage, "\n")
      os.exit(2)
    end
    o[k] = v
    i = i + 2
  end
  return o
end

--- A signed callback token from the emulator (for load generators), through `loop`.
function C.callback_token(emu, loop)
  local cjson = require "cjson"
  local graphcall = require "graphcall"
  local res = assert(loop:fetch { method = "POST", url = emu.url .. "/emulator/callback-token",
    body = cjson.encode { appId = "graphcall-run", tenantId = "tenant-1" } })
  return graphcall.decode(res.body).token
end

--- The examples' scenarios merged: peers who answer, a meeting with attendees.
function C.scenario()
  local T = require "graphcall.test"
  local sc = { peers = {}, freshCallbacks = true }
  for _, ex in ipairs { "ivr", "notify", "group", "meeting" } do
    local s = assert(T.load("examples/" .. ex .. ".lua")).scenario or {}
    for k, v in pairs(s.peers or {}) do sc.peers[k] = v end
    sc.meeting = sc.meeting or s.meeting
  end
  return sc
end

--- nginx balancing round-robin over 127.0.0.1:ports (on `port`, or a free one). {url, port, stop()}
-- `workers`: nginx's worker processes (1: one round-robin, so a call's notifications go to
-- the nodes in turn; a benchmark gives it one a core, as `auto` would in production).
function C.balancer(ports, port, workers)
  local user = io.popen("id -u"):read("*l") == "0" and "user root root;" or ""
  local dir = E.tmpdir()
  port = port or N.free_port()
  os.execute("mkdir -p " .. dir .. "/logs " .. dir .. "/conf")
  local servers = {}
  for i, p in ipairs(ports) do servers[i] = "server 127.0.0.1:" .. p .. " max_fails=0;" end
  -- a node that is down or fails is skipped, and a callback it failed goes to the next: POST
  -- too (non_idempotent), the tracker drops what a dying node had kept already
  return N.run(user .. string.format([[
worker_processes %d;
daemon on;
pid %s/logs/nginx.pid;
error_log %s/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # callbacks in a round of their own (the prompts the service fetches do not move it on): a
  # call's notifications, one POST after another, go to the nodes in turn
  upstream bots { %s keepalive 32; }
  upstream files { %s keepalive 32; }
  server {
    listen 127.0.0.1:%d;
    client_max_body_size 4m;
    location / {
      proxy_pass http://bots; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 non_idempotent; proxy_next_upstream_tries 3;
      proxy_connect_timeout 1s;
    }
    location /prompts/ {
      proxy_pass http://files; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503; proxy_connect_timeout 1s;
    }
  }
}
]], workers or 1, dir, dir, table.concat(servers, " "), table.concat(servers, " "), port), { dir = dir, port = port })
end

--- A node: `graphcall run script --redis` on its own port. o: script, redis (port), cluster
-- (a Redis Cluster's seeds: `--redis-cluster`), emu
-- (url), public (the balancer's URL), prompts (a folder shared by the nodes), lease,
-- port, args (more options), noredis (calls in the node's memory: no --redis).
-- {port, pid, log(), kill(), start(), stop(), remove()}
function C.node(o)
  local node = { port = o.port or N.free_port(), dir = E.tmpdir() }
  node.logfile = node.dir .. "/node.log"
  function node.start()
    local cmd = string.format("exec env LUA_PATH='%s' LUA_CPATH='%s' %s bin/graphcall run %s --connect %s "
      .. "--listen 127.0.0.1:%d %s --public %s --prompts %s %s",
      LUA_PATH, CPATH, o.lua or E.lua, o.script, o.emu, node.port,
      o.noredis and "" or (o.cluster and ("--redis-cluster " .. o.cluster) or ("--redis 127.0.0.1:" .. o.redis))
        .. (o.lease and (" --lease " .. o.lease) or ""),
      o.public, o.prompts, o.args or "")
    node.pid = E.sh(string.format("%s >>%s 2>&1 & echo $!", cmd, node.logfile)):match("%d+")
    for _ = 1, 200 do
      if read(node.logfile):find("bot listening on http://127.0.0.1:" .. node.port, 1, true) then return node end
      os.execute("sleep 0.02")
    end
    error("the node did not start: " .. read(node.logfile))
  end
  function node.log() return read(node.logfile) end
  function node.kill()
    if node.pid then os.execute("kill -9 " .. node.pid .. " 2>/dev/null") end
    node.pid = nil
  end
  function node.stop()
    if node.pid then
      os.execute("kill " .. node.pid .. " 2>/dev/null")
      for _ = 1, 100 do
        if not E.sh("kill -0 " .. node.pid .. " 2>&1 && echo alive"):find("alive") then break end
        os.execute("sleep 0.05")
      end
      node.kill()
    end
  end
  function node.remove()
    node.stop()
    os.execute("rm -rf " .. node.dir)
  end
  return node.start()
end

return C
