-- bench/flows.lua: what one bot process carries through the full IVR flow (example (a): answer,
-- the menu, the caller presses 2, leaves a message that is downloaded, thanks, hangs up)
-- against the emulator in its own process, all calls at once; the Lua heap per live call (the
-- log included); and replaying a call's log against running it live, in the same run.
--   BENCH_CALLS=10000 make bench   (1,000 by default; for 10,000: BENCH_SPEED=1 BENCH_RAMP=15000
--   BENCH_MENU=30000 BENCH_FIRST_TIMEOUT=40000: the calls placed over 15 s, the caller at the
--   menu 30 s, in real time, the menu waiting 40 s for a first digit)
-- BENCH_SHARED=1: the bot keeps nothing of a call between its events (`shared = true`: each
-- event replays the flow from the call's log, as on Redis), on the in-memory store.
-- BENCH_KEEP_WAITING=ms: flows kept in the process, let go of once they have waited that long
-- (`keepWaiting`), replayed at their next event.
local graphcall = require "graphcall"
local T = require "graphcall.test"
local util = require "util"

local N = tonumber(os.getenv("BENCH_CALLS") or "1000")
local lua = arg[-1] or "lua5.4"
local shared = os.getenv("BENCH_SHARED") == "1"
local letgo = tonumber(os.getenv("BENCH_KEEP_WAITING") or "")
local mode = shared and "; shared = true" or letgo and ("; keepWaiting = " .. letgo) or ""
local polled = shared or letgo   -- (calls counted from the emulator's view: not all kept here)

local sc = os.tmpname()
local f = assert(io.open(sc, "w"))
f:write("return { }")
f:close()
local p = assert(io.popen(string.format(
  "sh -c 'echo $$; exec %s bin/graphcall emulate --port 0 --quiet --speed %s --scenario %s'", lua,
  os.getenv("BENCH_SPEED") or "4", sc)))
local pid = p:read("*l")
local url = assert((p:read("*l") or ""):match("listening on (%S+)"), "the emulator did not start")

local loop = graphcall.loop { log = function(level, msg) if level == "error" then io.stderr:write(msg, "\n") end end,
                              http = { max_host_connections = 64, max_active = 64 } }
local client = graphcall.client { tenantId = "tenant-1", clientId = "bench", clientSecret = "s", loop = loop,
  authority = url, graphUrl = url .. "/v1.0", openidUrl = url .. "/v1/.well-known/OpenIdConfiguration",
  timeout = 60000 }
os.execute("mkdir -p build/prompts build/bench-recordings")
local bot = assert(graphcall.bot { client = client, prompts = "build/prompts", recordings = "build/bench-recordings",
                                   verifier = client:verifier(), shared = shared, keepWaiting = letgo,
                                   keepEnded = N })   -- every call's log is read at the end
-- examples/ivr.lua, its menu's first timeout BENCH_FIRST_TIMEOUT ms when given: callers placed
-- over 15 s and all at the menu at once wait there longer than its 5 s, and would hear its
-- no-input prompt and the menu again (and be sampled mid-prompt) rather than wait
local firstTimeout = tonumber(os.getenv("BENCH_FIRST_TIMEOUT") or "")
local ivr = "examples/ivr.lua"
if firstTimeout then
  local text, n = util.read(ivr):gsub("firstTimeout = 5000,", "firstTimeout = " .. math.floor(firstTimeout) .. ",")
  assert(n == 1, "examples/ivr.lua: its menu's firstTimeout = 5000 not found")
  ivr = os.tmpname()
  local out = assert(io.open(ivr, "w"))
  out:write(text)
  out:close()
end
bot:flow(assert(T.load(ivr)).flow)
if firstTimeout then
  os.remove(ivr)
  mode = mode .. string.format("; the menu waits %g s for a digit", firstTimeout / 1000)
end
bot:start()

-- the caller presses 2 long enough after the menu begins (emulator ms: 2.5 s here at --speed 4)
-- that every call is waiting at the menu at one moment: a live call's steady state, measured
-- (BENCH_MENU=ms for more calls)
local caller = { { on = "prompt", after = tonumber(os.getenv("BENCH_MENU") or "10000"), press = "2" },
                 { on = "record", after = 200, speak = 600 } }
local body = require("cjson").encode { webhook = bot.callbackUri, appId = "bench", tenantId = "tenant-1",
                                       caller = caller, from = { phone = { id = "+14255550199" } } }
collectgarbage()
collectgarbage()
local base = collectgarbage("count")
local t0, c0 = loop:now(), os.clock()
local placed = 0
-- all at once, or BENCH_RAMP ms apart in all, a hundred at a time
local ramp = tonumber(os.getenv("BENCH_RAMP") or "0")
local function place(from, to)
  for _ = from, to do
    loop:request({ method = "POST", url = url .. "/emulator/incoming", body = body, timeout = 60000 },
      function(res) if res and res.status == 201 then placed = placed + 1 end end)
  end
end
if ramp > 0 then
  for first = 1, N, 100 do loop:timer(ramp * (first - 1) / N, function() place(first, math.min(N, first + 99)) end) end
else
  place(1, N)
end

-- shared, no call object outlives its event: the calls are counted from the emulator's view
-- (polled) and the bot's count of flows over
local seen = { live = 0 }
local function away()
  local n = 0
  for _ in pairs(bot.runtime.away) do n = n + 1 end
  return n
end
local function counts()
  if shared then return seen.live, bot.stats.finished end
  local live, done = 0, 0
  for _, c in pairs(bot.calls) do
    if c.finished then done = done + 1 elseif c.flowing then live = live + 1 end
  end
  if letgo then return live + away(), bot.stats.finished end
  return live, done
end

-- the heap with every call live: measured once, when all are in their flows and none is over
-- (most of them between sending the answer and its notifications), and again when every call
-- waits at the menu, nothing in flight (each after a full collection)
local peak, menu
local polling   -- (the bench's own poll of the emulator is out)
-- the bot between two events: nothing received and not yet taken, nothing queued for a call or
-- ready to run, no request out (the emulator's view says where the calls are, not the bot's)
local function still()
  return loop:in_flight() == (polling and 1 or 0) and bot.listener.nqueue == 0 and next(bot.runtime.queues) == nil
    and loop.rhead > loop.rtail and loop.nlater == 0
end
local function at_menu()
  if shared then return seen.menu == N and still() end
  -- (with keepWaiting, the moment the most are let go of: all of them with 1,000 calls; with
  -- 10,000 over 15 s some are always back for a no-input prompt, kept a second after it)
  if letgo then
    local n = away()
    return seen.menu == N and still()
      and (not menu or n >= menu.away + math.max(1, math.floor(N / 100)) or n == N and menu.away < N)
  end
  local n = 0
  for _, c in pairs(bot.calls) do
    if c.finished or not (c.flowing and c.subscribed and c.waiter) then return false end
    n = n + 1
  end
  return n == N and loop:in_flight() == 0
end
-- a call whose incoming notification never reached the bot (the service gave up on it) has no
-- flow: the run is over when no flow is live and nothing has moved for two seconds
local quiet_since
local _ = os.getenv("BENCH_PROGRESS") and loop:every(5000, function()
  local l, d = counts()
  io.stderr:write(string.format("%.0f s: placed %d, live %d, done %d, in flight %d, timers %d, ready %d\n",
    (loop:now() - t0) / 1000, placed, l, d, loop:in_flight(), loop.nheap, loop.rtail - loop.rhead + 1))
  if os.getenv("BENCH_PROGRESS") == "2" then
    for cid, c in pairs(bot.calls) do
      if not c.finished then
        io.stderr:write(require("graphcall.trace").text(bot.store:log(cid), cid), "\n")
        break
      end
    end
  end
end)
-- with many calls some end before the last one starts: then the heap is measured (after a
-- full collection) each time the number of live calls passes its last maximum by a tenth
local most = 0
-- the bench's own work (its reading of the emulator's counts, its collections before each
-- sample of the heap), not the bot's: left out of the bot's CPU
local pollcpu = 0
local function sample()
  local c = os.clock()
  collectgarbage()
  collectgarbage()
  local kb = collectgarbage("count")
  pollcpu = pollcpu + os.clock() - c
  return kb
end
local sampler = loop:every(500, function()
  if polled and not polling then
    polling = true
    loop:request({ url = url .. "/emulator/summary", timeout = 60000 }, function(res)
      local pc0 = os.clock()
      polling = false
      local sum = res and res.status == 200 and graphcall.decode(res.body)
      if not sum then return end
      -- waiting at the menu: established, the menu heard, no key pressed (exact when all are)
      seen.live = sum.calls - (sum.states.terminated or 0)
      seen.menu = sum.pressed == 0 and math.min(sum.states.established or 0, sum.prompted) or 0
      pollcpu = pollcpu + os.clock() - pc0
    end)
  end
  if polled then return end   -- (no sample while all are live: the poll is in flight then)
  local live = counts()
  if live > most * 1.1 or (live == N and not peak) then
    most = live
    peak = { kb = sample(), live = live }
  end
end)
loop:run_until(function()
  local live, done = counts()
  if live == N and done == 0 and not (peak and peak.live == N) then
    peak = { kb = sample(), live = N }
  end
  if (not menu or letgo and menu.away < N) and not polling and at_menu() then
    menu = { kb = sample(), away = letgo and away() or 0 }
  end
  if done == N then return true end
  if live == 0 and placed == N and loop:in_flight() == (polling and 1 or 0) then
    quiet_since = quiet_since or loop:now()
    return loop:now() - quiet_since > 2000
  end
  quiet_since = nil
  return false
end, 600000)
sampler:cancel()
local wall, cpu = (loop:now() - t0) / 1000, os.clock() - c0 - pollcpu
local live, done = counts()
local recorded, failed = 0, bot.stats.failedFlows
local ids = bot.store:calls()
for _, cid in ipairs(ids) do
  for _, e in ipairs(bot.store:log(cid)) do
    if e.k == "step" and e.w == "download" and e.v.path then recorded = recorded + 1 end
  end
end
-- a call counts by its end as its caller expects it (the emulator's view: the caller pressed 2,
-- left one message, and the call is over), not by whether its flow raised
-- (every call's view: more than the 4 MB a body may be by default; let go of before the replays)
local expected, refused = 0
local function at_end(v) return v.state == "terminated" and v.pressed == "2" and #(v.recordings or {}) == 1 end
do
  local listed = graphcall.decode(assert(loop:fetch { url = url .. "/emulator/calls", timeout = 60000 }).body,
                                  1073741824)
  if os.getenv("BENCH_PROGRESS") then   -- why the calls that did not reach their end did not
    for _, v in ipairs(listed.calls or {}) do
      if not at_end(v) then
        local view = graphcall.decode(assert(loop:fetch { url = url .. "/emulator/calls/" .. v.id }).body)
        local said = {}
        for _, l in ipairs(view.log) do said[#said + 1] = string.format("%d %s %s", l.t, l.what, l.detail or "") end
        io.stderr:write(v.id, ":\n  ", table.concat(said, "\n  "), "\n")
      end
    end
  end
  refused = graphcall.decode(assert(loop:fetch { url = url .. "/emulator/stats", timeout = 60000 }).body)
    .notificationsFailed
  if shared then live = 0 end
  for _, v in ipairs(listed.calls or {}) do
    if at_end(v) then expected = expected + 1 end
    if shared and v.state ~= "terminated" then live = live + 1 end
  end
end
collectgarbage()
print(string.format("flows (%s%s; %s): %d calls %s through the IVR flow: %d at the end their caller expects "
  .. "(%d flows finished, %d recordings downloaded, %d flows failed, %d still live, %d never reached the bot; "
  .. "%d notifications refused); "
  .. "%.1f s wall, %.1f s CPU (%.2f ms a call)%s%s", util.lua, mode, util.loadavg(), N,
  ramp > 0 and string.format("placed over %.0f s", ramp / 1000) or "at once", expected, done, recorded,
  failed, live, N - done - live, refused, wall, cpu, 1000 * cpu / N,
  letgo and string.format("; %.1f flows let go of a call", bot.runtime.stats.letGo / N) or "",
  expected == N and "" or string.format("; FAILED: %d calls did not reach their end", N - expected)))
if peak and peak.live > 0 then
  print(string.format("flows (%s%s): Lua heap per live call %.1f KB (%d calls live, log included; %.0f KB -> %.0f KB)",
    util.lua, mode, (peak.kb - base) / peak.live, peak.live, base, peak.kb))
end
local at_menu_kb = menu and (menu.kb - base) / N
print(string.format("flows (%s%s): Lua heap per live call waiting at the menu %s (target 2 KB: %s)", util.lua, mode,
  menu and string.format("%.2f KB (all %d calls%s; %.0f KB -> %.0f KB)", at_menu_kb, N,
    letgo and string.format(", %d of them let go of", menu.away) or "", base, menu.kb)
  or "not measured (the calls were never all at the menu at once)",
  at_menu_kb and at_menu_kb <= 2 and "met" or "NOT MET"))

-- replay: the log of a finished call into a fresh flow, against the live CPU per call; the
-- emulator stopped first (with 10,000 calls it may still be delivering their last notifications,
-- which the bot would take during the replays)
os.execute("kill " .. pid)
loop:sleep(200)
local id
local entries
for _, cid in ipairs(ids) do
  local l = bot.store:log(cid)
  for _, e in ipairs(l) do if e.k == "end" then id, entries = cid, l end end
  if id then break end
end
assert(id, "no call finished")
local rt0 = os.clock()
local reps = 0
repeat
  local r = bot:replay(entries)
  assert(r.finished, tostring(r.error))
  reps = reps + 1
until os.clock() - rt0 > 1
local per = (os.clock() - rt0) / reps
print(string.format("flows (%s%s): replaying a call's log (%d entries) %.3f ms, running it live %.2f ms of "
  .. "CPU; ratio %.1fx", util.lua, mode, #entries, per * 1000, 1000 * cpu / N, (cpu / N) / per))

bot:close()
loop:close()
p:close()
os.remove(sc)
os.execute("rm -rf build/bench-recordings")
if expected ~= N then os.exit(1) end
