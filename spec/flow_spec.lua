-- Flows through the harness (graphcall.test): the bot and the emulator on one loop in virtual
-- time, over real loopback HTTP. Example (a), the IVR main menu, and the runtime's rules:
-- hang-up as cancellation, timeouts, retries, wrong digits, barge-in, type-ahead, the log and
-- its replay, keepAlive's 404, handlers and operations outside flows.
local T = require "graphcall.test"
local graphcall = require "graphcall"
local storemod = require "graphcall.store"

local SALES = "+14255550100"

local function actions(view)
  local out = {}
  for _, l in ipairs(view.log) do if l.what == "action" then out[#out + 1] = l.detail end end
  return out
end

local function logged(view, what)
  for _, l in ipairs(view.log) do if l.what == what then return l end end
end

-- The bot of harness `h` dies (its calls and coroutines lost); a new bot, on `store` (or on a
-- copy of it without the answer of the step `cut`: what a process that died between sending an
-- action and logging its answer leaves) and the same callback URL, takes over.
-- @return the new bot (started), and the lines it logged
local function take_over(h, store, callId, cut, script)
  local old = h.bot
  old:close()
  old.calls = {}
  if cut then
    local copy, dropped = storemod.memory(), false
    for _, e in ipairs(store:log(callId)) do
      if e.k == "step" and e.w == cut then dropped = true else copy:append(callId, e) end
    end
    assert.is_true(dropped)
    store = copy
  end
  local lines = {}
  local bot = assert(graphcall.bot { client = h.client, store = store, prompts = "build/prompts",
    verifier = h.client:verifier(), listen = { port = tonumber(old.callbackUri:match(":(%d+)/")) },
    log = function(_, msg) lines[#lines + 1] = msg end })
  bot:flow(T.load(script or "examples/ivr.lua").flow)
  bot:start()
  return bot, lines
end

describe("example (a), the IVR main menu", function()
  local h
  before_each(function() h = T.new { script = "examples/ivr.lua" } end)
  after_each(function() h:close() end)

  it("transfers a caller who presses 1 to sales", function()
    local v = h:incoming { caller = { { on = "prompt", after = 1500, press = "1" } } }
    assert.equal(SALES, v.transferred)
    assert.equal(7015, v.resultInfo.subcode)
    assert.is_true(v.flow.transferred)
  end)

  it("records a voicemail, downloads it before the call ends, thanks and hangs up", function()
    local v = h:incoming { caller = { { on = "prompt", after = 1000, press = "2" },
                                      { on = "record", after = 300, speak = 4000 } } }
    assert.equal("terminated", v.state)
    local rec = logged(v, "recorded")
    assert.matches("maxSilenceTimeout, 4000 ms of speech", rec.detail)
    local files = io.popen("ls build/recordings/" .. v.id .. "-*.wav 2>/dev/null"):read("*a")
    assert.matches("%.wav", files)
    assert.truthy(logged(v, "bot hangs up"))
    assert.same({ "answer", "subscribeToTone", "playPrompt", "cancelMediaProcessing", "recordResponse",
                  "playPrompt" }, actions(v))
  end)

  it("takes a four-digit PIN ended by #", function()
    local v = h:incoming { caller = { { on = "prompt", after = 500, press = "3" },
                                      { on = "promptEnd", after = 500, press = "1234#" } } }
    assert.equal("31234#", v.pressed)
    assert.truthy(logged(v, "bot hangs up"))
    assert.is_nil(v.transferred)
  end)

  it("after three wrong digits says goodbye and hangs up", function()
    local v = h:incoming { caller = { { on = "prompt", after = 500, press = "9" },
                                      { on = "prompt", after = 2500, press = "8" },
                                      { on = "prompt", after = 2500, press = "7" } } }
    assert.equal("987", v.pressed)
    assert.truthy(logged(v, "bot hangs up"))
    local plays = 0
    for _, a in ipairs(actions(v)) do if a == "playPrompt" then plays = plays + 1 end end
    assert.equal(4, plays)   -- three menus (with the no-match prompt before the 2nd and 3rd), goodbye
  end)

  it("after three silences (first-digit timeouts) says goodbye", function()
    local v = h:incoming { caller = {} }
    assert.equal("", v.pressed)
    assert.truthy(logged(v, "bot hangs up"))
    assert.is_true(T.duration(v) > 3 * 5000)   -- three 5 s timeouts passed, in virtual time
  end)

  it("a caller hanging up mid-menu ends the flow: finally once, nothing sent after", function()
    local v = h:incoming { caller = { { on = "prompt", after = 1000, hangup = true } } }
    assert.equal(540000, v.resultInfo.subcode)
    local ended
    for i, l in ipairs(v.log) do
      if l.what == "ended" then ended = i end
      if ended and l.what == "action" then error("an action after the hangup: " .. l.detail) end
    end
    assert.is_true(v.flow.finished)
    assert.equal("hangup", select(2, v.flow:over() and nil, { code = "hangup" }).code)
  end)
end)

describe("collect", function()
  local function harness(flow, scenario) return T.new { flow = flow, scenario = scenario } end

  it("counts digits pressed during the prompt (type-ahead) and stops the prompt (barge-in)", function()
    local got
    local h = harness(function(call)
      call:answer()
      got = { call:collect { prompt = { text = "Enter three digits." }, min = 3, max = 3 } }
      call:hangup()
    end)
    local v = h:incoming { caller = { { on = "prompt", after = 300, press = "123" } } }
    assert.equal("123", got[1])
    assert.truthy(logged(v, "action"))
    local cancels = 0
    for _, a in ipairs(actions(v)) do if a == "cancelMediaProcessing" then cancels = cancels + 1 end end
    assert.equal(1, cancels)
    h:close()
  end)

  it("without barge-in lets the prompt play to its end, digits still count", function()
    local got
    local h = harness(function(call)
      call:answer()
      got = call:collect { prompt = { text = "Enter a digit." }, bargeIn = false }
      call:hangup()
    end)
    local v = h:incoming { caller = { { on = "prompt", after = 100, press = "5" } } }
    assert.equal("5", got)
    for _, a in ipairs(actions(v)) do assert.are_not.equal("cancelMediaProcessing", a) end
    h:close()
  end)

  it("ends on the inter-digit timeout with what it has, and reports noMatch below min", function()
    local results = {}
    local h = harness(function(call)
      call:answer()
      results[1] = { call:collect { min = 2, max = 4, tries = 1, interDigitTimeout = 2000 } }
      call:hangup()
    end)
    h:incoming { caller = { { on = "established", after = 500, press = "7" } } }
    assert.is_nil(results[1][1])
    assert.equal("noMatch", results[1][2].code)
    h:close()
  end)

  it("plays more than 20 prompts in requests of 20", function()
    local h = harness(function(call)
      call:answer()
      local list = {}
      for i = 1, 25 do list[i] = { text = "Item " .. (i % 3) } end
      assert(call:play(list))
      call:hangup()
    end)
    local v = h:incoming { caller = {} }
    local plays = 0
    for _, a in ipairs(actions(v)) do if a == "playPrompt" then plays = plays + 1 end end
    assert.equal(2, plays)
    assert.equal(25, #v.prompts)                 -- each played, in order, one after the other
    for i, p in ipairs(v.prompts) do
      assert.equal("Item " .. (i % 3), p.text)
      assert.is_false(p.cutShort)
      if i > 1 then assert.is_true(p.at >= v.prompts[i - 1].at + v.prompts[i - 1].ms) end
    end
    h:close()
  end)
end)

describe("the durable log", function()
  it("replays a recorded call into a fresh flow: the same requests, nothing sent", function()
    local store = storemod.memory()
    local h = T.new { script = "examples/ivr.lua", store = store }
    local v = h:incoming { caller = { { on = "prompt", after = 500, press = "3" },
                                      { on = "promptEnd", after = 500, press = "1234#" } } }
    local entries = store:log(v.id)
    local sent = {}
    for _, e in ipairs(entries) do if e.k == "out" then sent[#sent + 1] = e.a end end
    local before = h.emulator.stats.requests
    local r = h.bot:replay(entries)
    assert.is_true(r.finished, tostring(r.error))
    assert.same(sent, r.requests)
    assert.equal(before, h.emulator.stats.requests)
    h:close()
  end)

  it("replays a call recorded in a file store (what `graphcall run --store` keeps) as a test", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local h = T.new { script = "examples/ivr.lua", store = storemod.file(dir) }
    local v = h:incoming { caller = { { on = "prompt", after = 500, press = "1" } } }
    h:close()
    local r = T.replay { script = "examples/ivr.lua", log = dir .. "/" .. v.id .. ".log" }
    assert.is_true(r.finished, tostring(r.error))
    assert.same({ "answer", "subscribeToTone", "playPrompt", "cancelMediaProcessing", "playPrompt", "transfer" },
      r.requests)
    assert.is_true(r.call.transferred)
    os.execute("rm -rf " .. dir)
  end)

  it("keeps the last keepEnded ended calls in memory and forgets older ones", function()
    local store = storemod.memory()
    local h = T.new { script = "examples/ivr.lua", store = store, keepEnded = 3 }
    local ids = {}
    for i = 1, 6 do ids[i] = h:incoming { caller = { { on = "prompt", after = 500, press = "1" } } }.id end
    local kept = {}
    for id in pairs(h.bot.calls) do kept[#kept + 1] = id end
    table.sort(kept)
    local last = { ids[4], ids[5], ids[6] }
    table.sort(last)
    assert.same(last, kept)
    assert.same({}, store:log(ids[1]))
    assert.same(last, store:calls())
    assert.is_true(#store:log(ids[6]) > 10)
    assert.equal(6, h.bot.stats.finished)
    h:close()
  end)

  it("holds a few descriptors at most for the calls it took on a file store, and keeps their logs", function()
    local lfs = require "lfs"
    local function fds()
      local n = 0
      for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
      return n
    end
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local h = T.new { script = "examples/ivr.lua", store = storemod.file(dir), keepEnded = 2 }
    local caller = { { on = "prompt", after = 500, press = "1" } }
    h:incoming { caller = caller }   -- the connections made once
    local before, ids = fds(), {}
    for i = 1, storemod.HANDLES + 16 do ids[i] = h:incoming { caller = caller }.id end
    assert.is_true(fds() - before <= storemod.HANDLES, "descriptors: " .. before .. " -> " .. fds())
    h:close()
    for _, id in ipairs(ids) do
      local r = T.replay { script = "examples/ivr.lua", log = dir .. "/" .. id .. ".log" }
      assert.is_true(r.finished, tostring(r.error))
    end
    os.execute("rm -rf " .. dir)
  end)

  it("refuses a keepEnded that is not a count", function()
    local client = graphcall.client { tenantId = "t", clientId = "c", clientSecret = "s" }
    assert.error_matches(function() graphcall.bot { client = client, keepEnded = -1 } end,
      "keepEnded: a whole number of calls %(0 or more%), got %-1")
    assert.error_matches(function() graphcall.bot { client = client, keepEnded = "10" } end, "keepEnded")
  end)

  it("catches a flow that does not do what its log says", function()
    local store = storemod.memory()
    local h = T.new { script = "examples/ivr.lua", store = store }
    local v = h:incoming { caller = { { on = "prompt", after = 500, press = "1" } } }
    local other = T.new { flow = function(call)
      call:answer()
      call:hangup()            -- the log says subscribeToTone came next
    end }
    local r = other.bot:replay(store:log(v.id))
    assert.is_false(r.ok)
    assert.matches("not deterministic: step %d+ was subscribeToTone in the log, hangup now", r.error)
    other:close()
    h:close()
  end)

  it("resumes a live call from the store in a new bot, and the call goes on", function()
    local store = storemod.memory()
    local h = T.new { script = "examples/ivr.lua", store = store }
    local call = h.emulator:place_incoming { webhook = h.bot.callbackUri, appId = "app-1", tenantId = "tenant-1",
      caller = { { on = "prompt", after = 3000, press = "1" } } }
    -- run until the menu is playing, then lose the bot; a new one takes over
    h:run_until(function() return #call.prompts >= 1 end)
    local bot = take_over(h, store, call.id)
    assert.equal(1, bot.stats.resumed)
    h:run_until(function() return call.state == "terminated" end)
    assert.equal(SALES, call.transferred)
    for crid, n in pairs(h.emulator.byRequestId) do assert.equal(1, n, crid) end
    local starts = 0
    for _, e in ipairs(store:log(call.id)) do if e.k == "start" then starts = starts + 1 end end
    assert.equal(1, starts)                                -- resumed, not started again
    bot:close()
    h.emulator:close()
    h.loop:close()
  end)

  it("resumes a call the bot placed, and its flow goes on where it was", function()
    local store = storemod.memory()
    local h = T.new { script = "examples/notify.lua", store = store }
    local id
    h:run_until(function()
      for cid, c in pairs(h.emulator.calls) do if #c.prompts >= 1 then id = cid return true end end
    end)
    local bot = take_over(h, store, id, nil, "examples/notify.lua")
    assert.equal(1, bot.stats.resumed)
    local call = h.emulator.calls[id]
    h:run_until(function() return call.state == "terminated" and bot.calls[id] and bot.calls[id].finished end)
    assert.equal("1", call.pressed)
    assert.equal("1", bot.calls[id].outcome)
    for crid, n in pairs(h.emulator.byRequestId) do assert.equal(1, n, crid) end
    bot:close()
    h.emulator:close()
    h.loop:close()
  end)
end)

describe("one execution model", function()
  -- the same flows, with each call kept in the process (a memory store), kept and let go of
  -- while it waits (`keepWaiting`), and with every event replayed from the log into a fresh
  -- flow (as nodes on a shared store run them)
  local callers = {
    sales = { { on = "prompt", after = 1500, press = "1" } },
    voicemail = { { on = "prompt", after = 1000, press = "2" }, { on = "record", after = 300, speak = 2000 } },
    pin = { { on = "prompt", after = 500, press = "3" }, { on = "promptEnd", after = 500, press = "1234#" } },
    silent = {},
  }
  for name, caller in pairs(callers) do
    it("runs example (a) for a " .. name .. " caller the same kept, let go of while it waits and replayed per event",
       function()
      local got = {}
      for _, how in ipairs { {}, { keepWaiting = 100 }, { replay = true } } do
        local h = T.new { script = "examples/ivr.lua", replay = how.replay, keepWaiting = how.keepWaiting }
        local v = h:incoming { caller = caller }
        assert.equal("terminated", v.state)
        got[#got + 1] = { actions = actions(v), pressed = v.pressed, transferred = v.transferred }
        h:run_until(function() return h.bot.runtime:busy() == 0 end)
        if how.replay then assert.is_nil(h.bot.calls[v.id]) else assert.truthy(h.bot.calls[v.id]) end
        for crid, n in pairs(h.emulator.byRequestId) do assert.equal(1, n, crid) end   -- nothing sent twice
        if how.keepWaiting then assert.is_true(h.bot.runtime.stats.letGo >= 1) end
        -- (a flow let go of and brought back is not resumed; a shared one's deadline is)
        if not how.replay then assert.equal(0, h.bot.runtime.stats.resumed) end
        h:close()
      end
      assert.same(got[1], got[2])
      assert.same(got[1], got[3])
      assert.is_true(#got[1].actions >= 3)
    end)
  end

  it("wakes a kept flow at its deadline to the millisecond (a timer of the process, not the sweep)", function()
    local waited
    local h = T.new { flow = function(call)
      call:answer()
      local t0 = call:now()
      call:sleep(1234)
      waited = call:now() - t0
      call:hangup()
    end }
    h:incoming { caller = {} }
    assert.equal(1234, waited)
    h:close()
  end)
end)

describe("flows let go of while they wait (keepWaiting)", function()
  -- (example (a) run this way for every kind of caller: "one execution model", above)
  it("holds a waiting call as its log alone, counts it live, and brings it back at its next event", function()
    local h = T.new { script = "examples/ivr.lua", keepWaiting = 200 }
    local rt = h.bot.runtime
    local call = h.emulator:place_incoming { webhook = h.bot.callbackUri, appId = "app-1", tenantId = "tenant-1",
      caller = { { on = "prompt", after = 3000, press = "1" } } }
    h:run_until(function() return rt.away[call.id] end)
    local n = #h.bot.store:log(call.id)
    assert.is_nil(h.bot.calls[call.id])           -- no call object, no coroutine
    assert.equal(1, h.bot:live_count())
    assert.equal(1, rt.stats.letGo)
    assert.matches("graphcall_flows_let_go_total 1\n", h.bot:render_metrics())
    h:run_until(function() return call.state == "terminated" end)
    assert.equal(SALES, call.transferred)
    assert.is_nil(rt.away[call.id])
    assert.is_true(#h.bot.store:log(call.id) > n)
    for crid, k in pairs(h.emulator.byRequestId) do assert.equal(1, k, crid) end
    h:close()
  end)

  it("lets go of a flow on a file store too, its log read again from the file", function()
    local dir = os.tmpname()
    os.remove(dir)
    local h = T.new { script = "examples/ivr.lua", keepWaiting = 200, store = storemod.file(dir) }
    local v = h:incoming { caller = { { on = "prompt", after = 2000, press = "1" } } }
    assert.equal(SALES, v.transferred)
    assert.is_true(h.bot.runtime.stats.letGo >= 1)
    for crid, k in pairs(h.emulator.byRequestId) do assert.equal(1, k, crid) end
    h:close()
    os.execute("rm -rf " .. dir)
  end)

  it("hangs up the calls it let go of when the bot stops with onStop = hangup", function()
    local h = T.new { script = "examples/ivr.lua", keepWaiting = 200 }
    h.bot.onStop = "hangup"
    local call = h.emulator:place_incoming { webhook = h.bot.callbackUri, appId = "app-1", tenantId = "tenant-1",
      caller = { { on = "prompt", after = 60000, press = "1" } } }
    h:run_until(function() return h.bot.runtime.away[call.id] end)
    h.bot:stop()
    h:run_until(function() return call.state == "terminated" end)
    assert.equal("terminated", call.state)
    h:close()
  end)

  it("names the option and the problem when keepWaiting is not milliseconds, or has nothing to do", function()
    local client = graphcall.client { tenantId = "t", clientId = "c", clientSecret = "s" }
    local ok, err = pcall(graphcall.bot, { client = client, keepWaiting = "2s" })
    assert.is_false(ok)
    assert.matches("bot: keepWaiting: milliseconds %(0 or more%), got 2s", tostring(err))
    ok, err = pcall(graphcall.bot, { client = client, keepWaiting = 1000, shared = true })
    assert.is_false(ok)
    assert.matches("bot: keepWaiting: a shared bot", tostring(err))
  end)
end)

describe("deadlines of flows parked in the process", function()
  it("keep one timer of the host for all of them, and wake each to the millisecond", function()
    local waited, asked = {}, {}
    local h = T.new { flow = function(call)
      call:answer()
      local ms = 400 + 37 * call:random(1, 60)
      local t0 = call:now()
      call:sleep(ms)
      waited[call.id], asked[call.id] = call:now() - t0, ms
      call:hangup()
    end }
    -- the runtime's timers counted as the host makes, fires and cancels them
    local rt = h.bot.runtime
    local host_timer, live, most = rt.timer, 0, 0
    rt.timer = function(ms, fn)
      live = live + 1
      most = math.max(most, live)
      local t
      t = host_timer(ms, function()
        live = live - 1
        fn()
      end)
      local cancel = t.cancel
      return setmetatable({ cancel = function(x)
        if not t.cancelled and t.pos then live = live - 1 end
        cancel(t)
        return x
      end }, { __index = t })
    end
    for _ = 1, 30 do
      h.emulator:place_incoming { webhook = h.bot.callbackUri, appId = "app-1", tenantId = "tenant-1", caller = {} }
    end
    h:run_until(function() return rt.alarms.n == 30 end)
    local views = h:finish_all()
    assert.equal(30, #views)
    for id, ms in pairs(asked) do assert.equal(ms, waited[id], id) end
    local n = 0
    for _ in pairs(waited) do n = n + 1 end
    assert.equal(30, n)
    assert.equal(1, most)            -- one timer at a time, for the soonest
    h:run_until(function() return rt:busy() == 0 end)
    assert.equal(0, rt.alarms.n)
    h:close()
  end)
end)

describe("the window of an action sent and not logged", function()
  -- the process died after sending `answer`, before logging its answer: the resumed flow
  -- sees the call established and does not answer twice (a second answer fails)
  it("does not send an answer again when the call shows it went through", function()
    local store = storemod.memory()
    local h = T.new { script = "examples/ivr.lua", store = store }
    local call = h.emulator:place_incoming { webhook = h.bot.callbackUri, appId = "app-1", tenantId = "tenant-1",
      caller = { { on = "prompt", after = 3000, press = "1" } } }
    h:run_until(function() return #call.prompts >= 1 end)
    local bot, lines = take_over(h, store, call.id, "answer")
    h:run_until(function() return call.state == "terminated" end)
    assert.equal(SALES, call.transferred)
    for crid, n in pairs(h.emulator.byRequestId) do assert.equal(1, n, crid) end
    assert.matches("answer went out before the restart %(the call is establish%a*%); not sent again",
                   table.concat(lines, "\n"))
    bot:close()
    h.emulator:close()
    h.loop:close()
  end)
end)

describe("the window of a recording", function()
  -- the process died after sending recordResponse, before logging its answer, while the caller
  -- speaks: the resumed flow does not record over the message; it waits for the recording's
  -- end (its clientContext is the logged client-request-id) and goes on from there
  it("does not send recordResponse again while the recording it sent may be under way", function()
    local store = storemod.memory()
    local h = T.new { script = "examples/ivr.lua", store = store }
    local call = h.emulator:place_incoming { webhook = h.bot.callbackUri, appId = "app-1", tenantId = "tenant-1",
      caller = { { on = "prompt", after = 1000, press = "2" }, { on = "record", after = 300, speak = 1500 } } }
    h:run_until(function()
      for _, l in ipairs(call.log) do if l.what == "speak" then return true end end
    end)
    local bot, lines = take_over(h, store, call.id, "recordResponse")
    h:run_until(function() return call.state == "terminated" and bot.calls[call.id] and bot.calls[call.id].finished end)
    for crid, n in pairs(h.emulator.byRequestId) do assert.equal(1, n, crid) end
    local recordings = {}
    for _, l in ipairs(call.log) do if l.what == "recorded" then recordings[#recordings + 1] = l.detail end end
    assert.equal(1, #recordings)
    assert.matches("1500 ms of speech", recordings[1])
    assert.matches("recordResponse may be under way since before the restart; waiting for its end",
                   table.concat(lines, "\n"))
    local files = io.popen("ls build/recordings/" .. call.id .. "-*.wav 2>/dev/null"):read("*a")
    assert.matches("%.wav", files)
    bot:close()
    h.emulator:close()
    h.loop:close()
  end)
end)

describe("the runtime", function()
  it("finds a call whose termination never came with keepAlive's 404", function()
    local ended, over
    local h = T.new { scenario = { faults = { { notification = "call:terminated", drop = true } } },
      flow = function(call)
        call:answer()
        local _, e = call:sleep(60 * 60 * 1000)     -- an hour: the caller leaves meanwhile
        ended = e
        call:finally(function() over = true end)
      end }
    h:incoming { caller = { { on = "established", after = 1000, hangup = true } } }
    assert.equal("hangup", ended.code)
    assert.equal(404, ended.cause.code)
    assert.is_true(over)
    h:close()
  end)

  it("asks the service when a prompt's end never comes, and goes on within its length + 3 s", function()
    local got, lines = nil, {}
    local h = T.new { scenario = { faults = { { notification = "operation:playPrompt", drop = true } } },
      log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end,
      flow = function(call)
        call:answer()
        got = { call:play { text = "Hello." } }
        call:hangup()
      end }
    local v = h:incoming { caller = {} }
    assert.is_true(got[1])
    assert.equal(1, h.bot.stats.lost)
    assert.matches("warn call [%x%-]+: the completion of playPrompt [%x%-]+ never came; the service says completed",
                   table.concat(lines, "\n"))
    -- from the prompt's start to the hang-up: its length, the margin, the question
    local started, hung
    for _, l in ipairs(v.log) do
      if l.what == "prompt" then started = l.t end
      if l.what == "bot hangs up" then hung = l.t end
    end
    local ms = tonumber(logged(v, "prompt").detail:match("(%d+) ms"))
    assert.is_true(hung - started <= ms + 3000, (hung - started) .. " ms for a " .. ms .. " ms prompt")
    assert.is_true(hung - started >= ms + 2000)
    h:close()
  end)

  it("logs a failing handler with the call id and goes on", function()
    local lines = {}
    local h = T.new { log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end,
      flow = function(call) call:answer() call:play { text = "Hello." } call:hangup() end }
    local tones = 0
    h.bot:on("established", function() error("handler bug") end)
    h.bot:on("terminated", function() tones = tones + 1 end)
    local v = h:incoming { caller = {} }
    assert.equal("terminated", v.state)
    assert.equal(1, tones)
    local found = false
    for _, l in ipairs(lines) do
      if l:find("call " .. v.id .. ": established handler failed", 1, true) then found = true end
    end
    assert.is_true(found)
    h:close()
  end)

  it("gives operations outside flows that complete on their notification", function()
    local op
    local h = T.new { flow = function(call) call:answer() call:sleep(10000) call:hangup() end }
    h.bot:on("established", function(call)
      op = call:action("playPrompt", { prompts = { graphcall.mediaPrompt {
        mediaInfo = { uri = h.bot.promptBase .. require("graphcall.ivr").speak("build/prompts", "Hi.") } } } })
    end)
    h:incoming { caller = {} }
    assert.equal("completed", op.status)
    assert.equal(200, op.resultInfo.code)
    h:close()
  end)

  it("places outgoing calls and runs their flow: ex09, a notification call with a confirmation", function()
    local confirmed
    local h = T.new { scenario = { peers = { ["+12345678901"] = { answer = 800,
                                               { on = "promptEnd", after = 300, press = "1" } } } },
      flow = function(call)
        if not call:ready() then return end
        confirmed = call:collect { prompt = { text = "Your appointment is tomorrow. Press 1 to confirm." } }
        call:hangup()
      end }
    local v = h:outgoing("+12345678901")
    assert.equal("1", confirmed)
    assert.equal("terminated", v.state)
    h:close()
  end)
end)
