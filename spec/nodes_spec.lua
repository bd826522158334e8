-- Three bot nodes (`graphcall run --redis`, each its own process) on one real redis-server
-- (and on a real Redis Cluster),
-- behind Debian's nginx as a round-robin balancer: the emulator calls through the balancer,
-- every example flow runs to its end with its events spread over the nodes.
local cjson = require "cjson"
local graphcall = require "graphcall"
local E = require "emu"
local R = require "redis_helper"
local C = require "nodes_helper"

local SALES = "+14255550100"


-- on one redis-server, and on a Redis Cluster (3 masters, 3 replicas: `--redis-cluster`)
for _, kind in ipairs(R.kinds(pending)) do
local on, cluster = kind[1], kind[2]
describe("graphcall run on three nodes sharing " .. on .. " behind a balancer", function()
  local emu, redis, lb, ctl, prompts, ports = nil, nil, nil, nil, nil, {}
  local nodes = {}

  setup(function()
    emu = E.start { scenario = C.scenario(), speed = 2 }
    redis = cluster and R.cluster() or R.start()
    -- the folder the other specs speak into: what is spoken once is cached there (and under
    -- AddressSanitizer's LD_PRELOAD, which the nodes inherit, espeak-ng does not run)
    prompts = "build/prompts"
    os.execute("mkdir -p " .. prompts)
    for i = 1, 3 do ports[i] = require("ngx_helper").free_port() end
    lb = C.balancer(ports)
    ctl = graphcall.loop { log = false }
  end)

  teardown(function()
    for _, n in ipairs(nodes) do n.remove() end
    if lb then lb.stop() end
    if redis then redis.stop() end
    if emu then emu.stop() end
    if ctl then ctl:close() end
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

  local function start_nodes(script)
    redis.flushall()                                -- what an earlier test left does not run here
    for i = 1, 3 do
      nodes[#nodes + 1] = C.node { script = script, emu = emu.url, redis = redis.port, cluster = redis.seeds,
                                   public = lb.url, prompts = prompts, port = ports[i] }
    end
    return { nodes[#nodes - 2], nodes[#nodes - 1], nodes[#nodes] }
  end

  local function stop_nodes(set)
    for _, n in ipairs(set) do n.stop() end
  end

  local function known()
    local ids = {}
    for _, v in ipairs(control("GET", "/emulator/calls").calls) do ids[v.id] = v end
    return ids
  end

  -- the calls the emulator has now that it did not have in `before`, once all have ended
  local function new_calls(before, n)
    local out
    local ok = poll(function()
      out = {}
      for id, v in pairs(known()) do
        if not before[id] then out[#out + 1] = v end
      end
      if #out < n then return false end
      for _, v in ipairs(out) do if v.state ~= "terminated" then return false end end
      return true
    end, 40000)
    return ok and out or nil, out
  end

  -- how many nodes logged an event of the call
  local function spread(set, id)
    local n = 0
    local pat = "call " .. id:gsub("%p", "%%%0") .. ": "
    for _, node in ipairs(set) do if node.log():find(pat) then n = n + 1 end end
    return n
  end

  local function logs(set)
    local out = {}
    for i, n in ipairs(set) do out[i] = "--- node " .. i .. "\n" .. n.log() end
    return table.concat(out, "\n")
  end

  local function no_errors(set)
    for _, n in ipairs(set) do
      local line = n.log():match("[^\n]* error [^\n]*")
      assert.is_nil(line, line)
    end
  end

  it("runs the IVR example: sales, voicemail and account calls, events taken by every node", function()
    local set = start_nodes("examples/ivr.lua")
    finally(function() stop_nodes(set) end)
    local before = known()
    local callers = {
      { { on = "prompt", after = 1500, press = "1" } },
      { { on = "prompt", after = 1500, press = "2" }, { on = "record", after = 300, speak = 3000 } },
      { { on = "prompt", after = 1500, press = "3" }, { on = "prompt", after = 500, press = "1234#" } },
    }
    for _, caller in ipairs(callers) do
      control("POST", "/emulator/incoming", cjson.encode { webhook = lb.url .. "/callback",
        appId = "graphcall-run", tenantId = "tenant-1", caller = caller })
    end
    local calls, seen = new_calls(before, 3)
    assert.is_truthy(calls, cjson.encode(seen) .. logs(set))
    local by = {}
    for _, v in ipairs(calls) do by[(v.pressed or ""):sub(1, 1)] = v end
    assert.is_truthy(by["1"] and by["2"] and by["3"], cjson.encode(calls) .. logs(set))
    assert.equal(SALES, by["1"].transferred)
    assert.is_true(#by["2"].prompts >= 2)                   -- the menu, the beep prompt, thanks
    assert.equal("31234#", by["3"].pressed)
    for _, v in ipairs(calls) do assert.is_true(spread(set, v.id) >= 2, logs(set)) end
    -- any node's calls page shows the calls of all of them (Redis), with the nodes that acted
    local page
    assert.is_true(poll(function()
      page = assert(ctl:fetch { url = "http://127.0.0.1:" .. set[1].port .. "/calls" }).body
      for _, v in ipairs(calls) do
        if not page:find('<a href="calls/' .. v.id .. '">', 1, true) then return false end
      end
      return true
    end, 10000), page)
    local nodes_named = {}
    for name in page:gmatch('<td class="wide">([^<]-:%d+)</td>') do nodes_named[name] = true end
    assert.is_true(next(nodes_named) ~= nil, page)
    no_errors(set)
  end)

  it("carries a call on while its slot moves to another master, then all its master's slots", function()
    if not cluster then return end
    local set = start_nodes("examples/ivr.lua")
    finally(function() stop_nodes(set) end)
    local before = known()
    control("POST", "/emulator/incoming", cjson.encode { webhook = lb.url .. "/callback",
      appId = "graphcall-run", tenantId = "tenant-1",
      caller = { { on = "prompt", after = 1500, press = "2" }, { on = "record", after = 300, speak = 8000 } } })
    local id
    assert.is_true(poll(function()
      for cid, v in pairs(known()) do
        if not before[cid] and v.state == "established" then id = cid end
      end
      return id ~= nil
    end, 10000))
    -- where its keys are: the bucket's slot (the store's own layout)
    local layout = require("graphcall.redisstore").new { redis = { cluster = true } }
    local from, slot = redis.master_of(layout:key(id, "log"))
    local to
    for _, n in ipairs(redis.nodes) do
      if n ~= from and n.role() == "master" then to = n break end
    end
    -- its slot moved mid-call (ASK and TRYAGAIN meanwhile), then the rest of that master's
    -- slots by redis-cli --cluster reshard
    redis.move_slot(slot, to, 300)
    assert.equal(to, (redis.master_of(layout:key(id, "log"))))
    local out = E.sh(string.format("redis-cli --cluster reshard 127.0.0.1:%d --cluster-from %s --cluster-to %s "
      .. "--cluster-slots %d --cluster-yes 2>&1", from.port, from.id(), to.id(), redis.slot_count(from)))
    assert.equal(0, redis.slot_count(from), out)
    local calls, seen = new_calls(before, 1)
    assert.is_truthy(calls, cjson.encode(seen) .. logs(set))
    assert.equal("2", calls[1].pressed)
    assert.is_true(#calls[1].prompts >= 2, cjson.encode(calls[1]))
    assert.equal(1, #calls[1].recordings, cjson.encode(calls[1]))
    no_errors(set)
  end)

  for _, ex in ipairs { "notify", "group", "meeting" } do
    it("runs examples/" .. ex .. ".lua: a call placed by each node, carried by all", function()
      local before = known()
      local set = start_nodes("examples/" .. ex .. ".lua")   -- each node's start places one
      finally(function() stop_nodes(set) end)
      local calls, seen = new_calls(before, 3)
      assert.is_truthy(calls, cjson.encode(seen) .. logs(set))
      assert.equal(3, #calls)
      for _, v in ipairs(calls) do
        assert.equal("outgoing", v.direction)
        if ex == "notify" then
          assert.equal("1", v.pressed)
          assert.equal(2, #v.prompts)
        elseif ex == "group" then
          assert.equal(1, #v.prompts)
        end
        assert.is_true(spread(set, v.id) >= 2, logs(set))
      end
      -- the emulator marks a call ended before its last notification is taken: wait for it
      local all
      assert.is_true(poll(function()
        all = logs(set)
        for _, v in ipairs(calls) do
          if not all:find("call " .. v.id:gsub("%p", "%%%0") .. ": call terminated") then return false end
        end
        return true
      end, 10000), all)
      no_errors(set)
    end)
  end
end)
end
