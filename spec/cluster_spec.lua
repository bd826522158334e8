-- Several nginx instances sharing calls in one real redis-server, behind Debian's nginx as a
-- round-robin load balancer, all on loopback: the emulator's callbacks for one call reach
-- both instances, and the IVR example runs to its end.
local cjson = require "cjson"
local graphcall = require "graphcall"
local E = require "emu"
local N = require "ngx_helper"
local R = require "redis_helper"

local SALES = "+14255550100"

describe("graphcall on several nginx instances sharing Redis", function()
  local emu, redis, nodes, lb, ctl, prompts = nil, nil, {}, nil, nil, nil

  setup(function()
    emu = E.start { scenario = { peers = { [SALES] = { answer = 500 } }, freshCallbacks = true }, speed = 2 }
    redis = R.start()
    prompts = E.tmpdir()
    local lbport = N.free_port()
    local url = "http://127.0.0.1:" .. lbport
    for i = 1, 2 do
      nodes[i] = N.start { loglevel = "info", init = string.format([[
        require("graphcall.ngx").init {
          script = "examples/ivr.lua", redis = { port = %d }, sweep = 200, lease = 3,
          client = { tenantId = "tenant-1", clientId = "app-1", clientSecret = "s", authority = %q,
                     graphUrl = %q, openidUrl = %q },
          callbackUri = %q, promptBase = %q, prompts = %q, minRefetch = 0,
        }]], redis.port, emu.url, emu.url .. "/v1.0", emu.url .. "/v1/.well-known/OpenIdConfiguration",
        url .. "/callback", url .. "/prompts/", prompts) }
    end
    -- the prompts folder is shared, so either node serves what the other spoke
    for _, n in ipairs(nodes) do
      local conf = n.dir .. "/conf/nginx.conf"
      local f = io.open(conf)
      local text = f:read("*a"):gsub("alias " .. n.dir:gsub("%p", "%%%0") .. "/prompts/;", "alias " .. prompts .. "/;")
      f:close()
      f = io.open(conf, "w")
      f:write(text)
      f:close()
      n.cmd("-s reload")
    end
    local user = io.popen("id -u"):read("*l") == "0" and "user root root;" or ""
    local dir = E.tmpdir()
    os.execute("mkdir -p " .. dir .. "/logs " .. dir .. "/conf")
    lb = N.run(user .. string.format([[
worker_processes 1;
daemon on;
pid %s/logs/nginx.pid;
error_log %s/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream bots { server 127.0.0.1:%d; server 127.0.0.1:%d; keepalive 16; }
  server {
    listen 127.0.0.1:%d;
    location / { proxy_pass http://bots; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
]], dir, dir, nodes[1].port, nodes[2].port, lbport), { dir = dir, port = lbport })
    os.execute("sleep 0.5")
    ctl = graphcall.loop { log = false }
  end)

  teardown(function()
    if lb then lb.stop() end
    for _, n in ipairs(nodes) do n.stop() end
    if redis then redis.stop() end
    if emu then emu.stop() end
    if ctl then ctl:close() end
    if prompts then os.execute("rm -rf " .. prompts) end
  end)

  local function control(method, path, body)
    local res = assert(ctl:fetch { method = method, url = emu.url .. path, body = body })
    return graphcall.decode(res.body)
  end

  local function poll(pred, ms)
    for _ = 1, (ms or 30000) / 50 do
      if pred() then return true end
      ctl:sleep(50)
    end
    return false
  end

  local function logs() return nodes[1].log() .. nodes[2].log() end

  it("runs the IVR example end to end, one call's events taken by both instances", function()
    local id = control("POST", "/emulator/incoming", cjson.encode { webhook = lb.url .. "/callback",
      appId = "app-1", tenantId = "tenant-1", caller = { { on = "prompt", after = 1500, press = "1" } } }).id
    local v
    assert.is_true(poll(function() v = control("GET", "/emulator/calls/" .. id) return v.state == "terminated" end),
                   logs())
    assert.equal(SALES, v.transferred)
    assert.equal("1", v.pressed)
    local pat = "call " .. id:gsub("%-", "%%-") .. ": "
    assert.truthy(nodes[1].log():find(pat), "no event of the call in the first instance")
    assert.truthy(nodes[2].log():find(pat), "no event of the call in the second instance")
    assert.is_nil(logs():find("[error]", 1, true), logs():match("[^\n]*%[error%][^\n]*"))
  end)

  it("carries calls on when one instance is killed (SIGKILL) in the middle of them", function()
    local ids = {}
    for i = 1, 4 do
      ids[i] = control("POST", "/emulator/incoming", cjson.encode { webhook = lb.url .. "/callback",
        appId = "app-1", tenantId = "tenant-1", caller = { { on = "prompt", after = 2500, press = "1" } } }).id
    end
    assert.is_true(poll(function()
      for _, id in ipairs(ids) do
        if (control("GET", "/emulator/calls/" .. id).prompts or 0) < 1 then return false end
      end
      return true
    end))
    -- the master and its workers at once; the balancer sends everything to the other now
    -- (its children from /proc: pkill hangs under the ASan run's LD_PRELOAD)
    local pid = io.open(nodes[2].dir .. "/logs/nginx.pid"):read("*l")
    local f = io.open("/proc/" .. pid .. "/task/" .. pid .. "/children")
    local kids = f and f:read("*a") or ""
    if f then f:close() end
    os.execute("kill -9 " .. pid .. " " .. kids)
    for _, id in ipairs(ids) do
      local v
      assert.is_true(poll(function() v = control("GET", "/emulator/calls/" .. id) return v.state == "terminated" end),
                     nodes[1].log())
      assert.equal(SALES, v.transferred)
    end
  end)
end)
