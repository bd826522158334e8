-- bench/http.lua: the HTTP halves, each against a baseline in the same run.
--
-- 1. create-call requests/s against the emulator (its own process): 1,000 in flight through
--    the asynchronous path (libcurl multi on the loop) versus the same client in a sequential
--    blocking loop. Target: 5x or better.
-- 2. memory per open call in the emulator: its Lua heap, calls driven (notifications to a bot).
-- The listener's own benchmark (signed notifications/s under wrk) is bench/listener.lua.
local graphcall = require "graphcall"
local util = require "util"

local lua = arg[-1] or "lua5.4"

local function start_emulator(scenario)
  local dir = os.tmpname()
  local f = assert(io.open(dir, "w"))
  f:write("return " .. scenario)
  f:close()
  local p = assert(io.popen(string.format(
    "sh -c 'echo $$; exec %s bin/graphcall emulate --port 0 --quiet --scenario %s'", lua, dir)))
  local pid = p:read("*l")
  local url = assert((p:read("*l") or ""):match("listening on (%S+)"), "the emulator did not start")
  return url, function()
    os.execute("kill " .. pid)
    p:close()
    os.remove(dir)
  end
end

local loop = graphcall.loop { log = false, http = { max_host_connections = 64 } }

local function client_for(url)
  return graphcall.client { tenantId = "t", clientId = "bench", clientSecret = "s", loop = loop,
    authority = url, graphUrl = url .. "/v1.0", retries = 0 }
end

local spec = {
  callbackUri = "https://bot.example.com/callback",
  source = { identity = { applicationInstance = { id = "3d913abb-aec0-4964-8fa6-3c6850c4f278" } } },
  targets = { { identity = { phone = { id = "+12345678901" } } } },
  requestedModalities = { "audio" },
  mediaConfig = graphcall.serviceHostedMediaConfig {},
  tenantId = "aa67bd4c-8475-432d-bd41-39f255720e0a",
}

-- ---- 1. create-call: in flight versus one at a time ---------------------------------------
-- On loopback both processes are busy on the CPU for every request, so the ratio is bounded
-- by (client + emulator + wake-ups) / the slower of the two; the same run with the emulator
-- answering after 20 ms (a round trip to a distant Graph) shows what the multi path is for.
local function create_calls(latency, seq_n, par_n)
  local url, stop = start_emulator(string.format("{ drive = false, latency = %s, capacity = 1e9 }", latency or "nil"))
  local client = client_for(url)
  assert(client:create_call(spec))                        -- token and connections warm

  local function sequential(n)
    local t0, errors = loop:now(), 0
    for _ = 1, n do
      if not client:create_call(spec) then errors = errors + 1 end
    end
    return n / ((loop:now() - t0) / 1000), errors
  end

  local function in_flight(n, width)
    local t0, done, started, errors = loop:now(), 0, 0, 0
    local function one()
      started = started + 1
      client:create_call(spec, function(call)
        if not call then errors = errors + 1 end
        done = done + 1
        if started < n then one() end
      end)
    end
    for _ = 1, math.min(width, n) do one() end
    loop:run_until(function() return done == n end, 120000)
    return n / ((loop:now() - t0) / 1000), errors
  end

  local seq, par, e1, e2 = 0, 0, 0, 0
  for _ = 1, 3 do                                          -- best of three, alternating
    local a, ea = sequential(seq_n)
    local b, eb = in_flight(par_n, 1000)
    seq, par = math.max(seq, a), math.max(par, b)
    e1, e2 = e1 + ea, e2 + eb
  end
  print(string.format("create-call (%s, %s; " .. util.loadavg()
    .. "): 1,000 in flight %.0f/s, sequential blocking %.0f/s; "
    .. "ratio %.2fx; errors %d", util.lua, latency and (latency .. " ms from the emulator") or "loopback",
    par, seq, par / seq, e1 + e2))
  stop()
end
create_calls(nil, 500, 5000)
create_calls(20, 50, 5000)

-- ---- 2. memory per open call in the emulator ---------------------------------------------
do
  local url, stop = start_emulator("{ peers = { default = { answer = 10 } }, capacity = 1e9 }")
  local client = client_for(url)
  local l = assert(graphcall.listener { loop = loop, verify = false })
  local s = graphcall.decode(assert(loop:fetch { url = url .. "/emulator/stats" }).body)
  local before = s.memoryKB
  local n, done = 2000, 0
  local call_spec = {}
  for k, v in pairs(spec) do call_spec[k] = v end
  call_spec.callbackUri = l:url()
  for _ = 1, n do client:create_call(call_spec, function() done = done + 1 end) end
  loop:run_until(function() return done == n end, 60000)
  loop:run_until(function() return l.stats.dispatched >= 2 * n end, 30000)  -- established everywhere
  s = graphcall.decode(assert(loop:fetch { url = url .. "/emulator/stats" }).body)
  print(string.format("emulator memory per open call: %.1f KB (%d calls open, Lua heap %.0f KB -> %.0f KB)",
    (s.memoryKB - before) / n, s.open, before, s.memoryKB))
  l:close()
  stop()
end
loop:close()
