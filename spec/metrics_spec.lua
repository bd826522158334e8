-- Metrics in Prometheus's text format: the text itself (checked by Debian's promtool), a node
-- of `graphcall run` serving /metrics, /healthz and /readyz while a call runs, and a real
-- Prometheus server on loopback scraping it.
local E = require "emu"
local N = require "ngx_helper"
local metrics = require "graphcall.metrics"
local graphcall = require "graphcall"

local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
local CPATH = os.getenv("LUA_CPATH") or ("./build/" .. E.lua .. "/?.so;;")

local P = require "prom_helper"
local read, promtool, value = P.read, P.promtool, P.value

describe("metrics", function()
  it("renders counters, labelled series and a histogram as promtool wants them", function()
    local m = metrics.new()
    m:inc("received", 3)
    m:inc("refused", 1, "403")
    m:inc("refused", 2, "400")
    m:inc("actions", 1, "playPrompt", "ok")
    m:inc("actions", 1, 'odd "name"\\', "4xx")
    m:observe("action_seconds", 0.07, "playPrompt")
    m:observe("action_seconds", 0.3, "playPrompt")
    m:observe("action_seconds", 42, "playPrompt")
    local text = m:render { calls_live = 2, version = "0.1.0" }
    local out, ok = promtool(text)
    assert.is_true(ok, out .. "\n" .. text)
    assert.equal(3, value(text, "graphcall_notifications_received_total"))
    assert.equal(1, value(text, 'graphcall_notifications_refused_total{status="403"}'))
    assert.equal(2, value(text, 'graphcall_notifications_refused_total{status="400"}'))
    assert.equal(1, value(text, 'graphcall_actions_total{action="odd \\"name\\"\\\\",outcome="4xx"}'))
    assert.equal(2, value(text, "graphcall_calls_live"))
    -- cumulative buckets, +Inf the count, the sum of what was observed
    assert.equal(0, value(text, 'graphcall_action_duration_seconds_bucket{action="playPrompt",le="0.05"}'))
    assert.equal(1, value(text, 'graphcall_action_duration_seconds_bucket{action="playPrompt",le="0.1"}'))
    assert.equal(2, value(text, 'graphcall_action_duration_seconds_bucket{action="playPrompt",le="10"}'))
    assert.equal(3, value(text, 'graphcall_action_duration_seconds_bucket{action="playPrompt",le="+Inf"}'))
    assert.equal(3, value(text, 'graphcall_action_duration_seconds_count{action="playPrompt"}'))
    assert.near(42.37, value(text, 'graphcall_action_duration_seconds_sum{action="playPrompt"}'), 1e-9)
    -- a series never counted: unlabelled ones read 0, labelled ones are absent
    assert.equal(0, value(text, "graphcall_flows_failed_total"))
    assert.is_nil(text:find('status="503"', 1, true))
  end)

  it("names each request to Graph by its action", function()
    local c = require "graphcall.client"
    assert.equal("createCall", c.action_of("POST", "/communications/calls"))
    assert.equal("playPrompt", c.action_of("POST", "/communications/calls/abc/playPrompt"))
    assert.equal("hangup", c.action_of("DELETE", "/communications/calls/abc"))
    assert.equal("invite", c.action_of("POST", "/communications/calls/abc/participants/invite"))
    assert.equal("deleteParticipant", c.action_of("DELETE", "/communications/calls/abc/participants/p1"))
    assert.equal("mute", c.action_of("POST", "/communications/calls/abc/participants/p1/mute"))
    assert.equal("get", c.action_of("GET", "/communications/calls/abc"))
  end)
end)

describe("a node's /metrics, /healthz and /readyz", function()
  local node, dir, port, prom, loop

  local function get(path, base)
    local res, err = loop:fetch { url = (base or ("http://127.0.0.1:" .. port)) .. path }
    assert(res, err and err.message)
    return res
  end

  setup(function()
    loop = graphcall.loop { log = false }
    dir = E.tmpdir()
    port = N.free_port()
    -- the IVR example against its own scenario: one caller, who leaves a voicemail
    node = E.sh(string.format("cd %s >/dev/null; exec env LUA_PATH='%s' LUA_CPATH='%s' %s bin/graphcall run "
      .. "examples/ivr.lua --emulator --speed 4 --listen 127.0.0.1:%d --prompts %s/prompts >%s/node.log 2>&1 & echo $!",
      ".", LUA_PATH, CPATH, E.lua, port, dir, dir)):match("%d+")
    for _ = 1, 500 do
      if read(dir .. "/node.log"):find("bot listening on", 1, true) then break end
      os.execute("sleep 0.02")
    end
  end)

  teardown(function()
    if prom then prom.stop() end
    if node then os.execute("kill " .. node .. " 2>/dev/null") end
    os.execute("sleep 0.2")
    if node then os.execute("kill -9 " .. node .. " 2>/dev/null") end
    if dir then os.execute("rm -rf " .. dir) end
    if loop then loop:close() end
  end)

  it("counts the call as it runs, in a text promtool passes", function()
    local text
    for _ = 1, 600 do   -- the call takes about 3 s at --speed 4; what is waited for is its end
      text = get("/metrics").body
      if (value(text, "graphcall_flows_ended_total") or 0) >= 1 then break end
      os.execute("sleep 0.05")
    end
    assert.equal(1, value(text, "graphcall_flows_ended_total"), read(dir .. "/node.log"))
    local out, ok = promtool(text)
    assert.is_true(ok, out)
    assert.equal(1, value(text, "graphcall_flows_started_total"))
    assert.equal(0, value(text, "graphcall_flows_failed_total"))
    assert.equal(0, value(text, "graphcall_calls_live"))
    assert.is_true(value(text, "graphcall_notifications_received_total") >= 4)
    assert.is_true(value(text, "graphcall_events_dispatched_total") >= 4)
    assert.equal(1, value(text, 'graphcall_actions_total{action="answer",outcome="ok"}'))
    assert.equal(1, value(text, 'graphcall_actions_total{action="recordResponse",outcome="ok"}'))
    assert.is_true(value(text, 'graphcall_actions_total{action="playPrompt",outcome="ok"}') >= 2)
    assert.is_true(value(text, 'graphcall_actions_total{action="token",outcome="ok"}') >= 1)
    assert.equal(1, value(text, 'graphcall_action_duration_seconds_count{action="answer"}'))
    assert.matches('graphcall_build_info{version="[%d.]+', text)
  end)

  it("says it is alive and ready, and refuses what is not a GET", function()
    local h = get("/healthz")
    assert.equal(200, h.status)
    local r = get("/readyz")
    assert.equal(200, r.status)
    assert.equal("token: ok\nkeys: ok\nstore: ok\n", r.body)
    local res = loop:fetch { method = "POST", url = "http://127.0.0.1:" .. port .. "/metrics", body = "x" }
    assert.equal(405, res.status)
  end)

  it("is scraped by a real Prometheus server", function()
    prom = P.server(dir, port, loop)
    local got = prom.wait("graphcall_flows_ended_total")
    assert.is_table(got, prom.log())
    assert.equal("1", got.value[2])
    assert.equal("graphcall", got.metric.job)
    assert.equal("1", prom.wait("up").value[2])   -- and the scrape was healthy
  end)
end)

describe("graphcall run --log-format json", function()
  it("writes one JSON object a line: time to the ms, level, node, call, action, client-request-id", function()
    local dir = E.tmpdir()
    finally(function() os.execute("rm -rf " .. dir) end)
    local out = E.sh(string.format("env LUA_PATH='%s' LUA_CPATH='%s' timeout 120 %s bin/graphcall run examples/ivr.lua "
      .. "--emulator --speed 4 --calls 1 --prompts %s/prompts --log-format json --node bot-7 2>&1 >/dev/null; "
      .. "echo \"exit $?\"", LUA_PATH, CPATH, E.lua, dir))
    assert.matches("exit 0\n?$", out)
    local cjson = require "cjson"
    local lines, actions, events, last = 0, {}, 0, nil
    for line in out:gmatch("[^\n]+") do
      if not line:match("^exit") then
        local ok, v = pcall(cjson.decode, line)
        assert.is_true(ok and type(v) == "table", "not a JSON object: " .. line)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", v.time)
        assert.equal("bot-7", v.node)
        assert.is_string(v.level)
        assert.is_string(v.msg)
        if v.action then
          actions[v.action] = v
          assert.matches("^%x+%-", v.clientRequestId)
          assert.is_number(v.ms)
        end
        if v.event then
          assert.is_string(v.call)
          if v.flow == "main" then events = events + 1 end   -- (the incoming call comes before its flow)
        end
        lines, last = lines + 1, v
      end
    end
    assert.is_true(lines > 10, out)
    assert.equal(202, actions.answer.status)
    assert.is_string(actions.answer.call)
    assert.equal(200, actions.recordResponse.status)
    assert.is_true(events >= 4, out)
    assert.matches("^graphcall: 1 flow%(s%) started, 1 ended, 0 failed; %d+ request%(s%)", last.msg)
  end)
end)
