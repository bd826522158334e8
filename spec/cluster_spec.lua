-- Several nginx instances sharing calls in one real redis-server (and in a Redis Cluster),
-- behind Debian's nginx as a round-robin load balancer, all on loopback: the emulator's
-- callbacks for one call reach both instances; the IVR example runs to its end, and so do the
-- calls the other examples place (started by a request to one instance).
local cjson = require "cjson"
local graphcall = require "graphcall"
local E = require "emu"
local N = require "ngx_helper"
local R = require "redis_helper"
local C = require "nodes_helper"

local SALES = "+14255550100"

-- on one redis-server, and on a Redis Cluster (3 masters, 3 replicas)
for _, kind in ipairs(R.kinds(pending)) do
local on, cluster = kind[1], kind[2]
describe("graphcall on several nginx instances sharing " .. on, function()
  local emu, redis, nodes, lb, ctl, prompts = nil, nil, {}, nil, nil, nil

  setup(function()
    local sc = C.scenario()
    sc.peers[SALES] = { answer = 500 }
    emu = E.start { scenario = sc, speed = 2 }
    redis = cluster and R.cluster() or R.start()
    local where = cluster and string.format("{ cluster = %q }", redis.seeds)
      or string.format("{ port = %d }", redis.port)
    prompts = E.tmpdir()
    -- the balancer's port first: the instances give Graph its URL
    local lbport = N.free_port()
    local url = "http://127.0.0.1:" .. lbport
    for i = 1, 2 do
      nodes[i] = N.start { loglevel = "info", init = string.format([[
        require("graphcall.ngx").init {
          script = "spec/cluster_flows.lua", redis = %s, sweep = 200, lease = 3,
          client = { tenantId = "tenant-1", clientId = "app-1", clientSecret = "s", authority = %q,
                     graphUrl = %q, openidUrl = %q },
          callbackUri = %q, promptBase = %q, prompts = %q, minRefetch = 0,
        }]], where, emu.url, emu.url .. "/v1.0", emu.url .. "/v1/.well-known/OpenIdConfiguration",
        url .. "/callback", url .. "/prompts/", prompts),
        -- an example's start(bot), run in this instance: its calls get the example's flow by name
        locations = [[
          location = /start { content_by_lua_block {
            local name = ngx.var.arg_ex
            local bot = require("graphcall.ngx").bot()
            local ex = require("graphcall.test").load("examples/" .. name .. ".lua")
            ex.start(setmetatable({ call = function(_, spec, opts)
              opts = opts or {}
              opts.flow = name
              return bot:call(spec, opts)
            end }, { __index = bot }))
            ngx.say("started")
          } }]] }
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
    lb = C.balancer({ nodes[1].port, nodes[2].port }, lbport)
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

  for _, ex in ipairs { "notify", "group", "meeting" } do
    it("runs the calls examples/" .. ex .. ".lua places, their events taken by both instances", function()
      local before = {}
      for _, v in ipairs(control("GET", "/emulator/calls").calls) do before[v.id] = true end
      local res = assert(ctl:fetch { url = "http://127.0.0.1:" .. nodes[1].port .. "/start?ex=" .. ex })
      assert.equal(200, res.status, res.body)
      local calls
      assert.is_true(poll(function()
        calls = {}
        for _, v in ipairs(control("GET", "/emulator/calls").calls) do
          if not before[v.id] then calls[#calls + 1] = v end
        end
        if #calls < 1 then return false end
        for _, v in ipairs(calls) do if v.state ~= "terminated" then return false end end
        return true
      end, 40000), logs())
      assert.equal(1, #calls)
      local v = calls[1]
      if ex == "notify" then
        assert.equal("1", v.pressed)
        assert.equal(2, #v.prompts)
      elseif ex == "group" then
        assert.equal(1, #v.prompts)
      end
      local pat = "call " .. v.id:gsub("%-", "%%-") .. ": "
      assert.truthy(nodes[1].log():find(pat), "no event of the call in the first instance")
      assert.truthy(nodes[2].log():find(pat), "no event of the call in the second instance")
      assert.is_nil(logs():find("[error]", 1, true), logs():match("[^\n]*%[error%][^\n]*"))
    end)
  end

  it("carries calls on when one instance is killed (SIGKILL) in the middle of them", function()
    local ids = {}
    for i = 1, 4 do
      ids[i] = control("POST", "/emulator/incoming", cjson.encode { webhook = lb.url .. "/callback",
        appId = "app-1", tenantId = "tenant-1", caller = { { on = "prompt", after = 2500, press = "1" } } }).id
    end
    assert.is_true(poll(function()
      for _, id in ipairs(ids) do
        if #(control("GET", "/emulator/calls/" .. id).prompts or {}) < 1 then return false end
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
end
