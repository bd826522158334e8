-- The emulator's part of the calling service, seen by a bot over real HTTP: outcomes of
-- outgoing calls, incoming calls, transfers, media (prompts, recordings, tones), rosters,
-- content sharing, keepAlive, and the notification faults a bot must survive.
local graphcall = require "graphcall"
local wav = require "graphcall.wav"
local E = require "emu"

local SPEED = 5

local SCENARIO = {
  keepAliveTimeout = 4,          -- seconds (emulated) without keepAlive before the call ends
  peers = {
    default = { answer = 100 },
    ["+15550000002"] = { outcome = "busy", after = 100 },
    ["+15550000003"] = { outcome = "declined", after = 100 },
    ["+15550000004"] = { outcome = "timeout", ringTimeout = 500 },
    ["+15550000005"] = { answer = 100, { on = "established", after = 300, hangup = true } },
    ["+15550000006"] = { answer = 100, { on = "promptEnd", after = 100, press = "42#" },
                         { after = 500, hangup = true } },
    ["+15550000007"] = { answer = 100, { on = "record", after = 100, speak = 800 } },
    ["+15550000008"] = { answer = false },
    ["+15550000010"] = { answer = 100, swapEstablished = true },
    ["+15550000009"] = { answer = 100, { on = "established", after = 100, press = "1" },
                         { on = "prompt", after = 200, press = "9" } },
  },
  meeting = {
    attendees = { { name = "Alice", join = 0 }, { name = "Bob", join = 400, leave = 1200 } },
    share = { start = 300, stop = 900 },
  },
}

local emu, bot, prompts, dir

setup(function()
  dir = E.tmpdir()
  local function put(name, bytes)
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(bytes)
    f:close()
  end
  put("short.wav", wav.tone { ms = 400 })
  put("long.wav", wav.tone { ms = 5000 })
  put("8k.wav", wav.tone { ms = 400, rate = 8000 })
  put("stereo.wav", wav.tone { ms = 400, channels = 2 })
  put("text.wav", "not a wav at all")
  emu = E.start { scenario = SCENARIO, speed = SPEED, realism = "strict" }   -- exact sequences asserted
  bot = E.bot(emu, { files = dir })
  prompts = bot.listener:url("/prompts/")
end)

teardown(function()
  if bot then bot.close() end
  if emu then emu.stop() end
  if dir then os.execute("rm -rf " .. dir) end
end)

local function call_to(number, extra)
  local spec = E.pstn_call(bot, number)
  for k, v in pairs(extra or {}) do
    if v == graphcall.null then spec[k] = nil else spec[k] = v end
  end
  local call, err = bot.client:create_call(spec)
  assert(call, err and tostring(err))
  return call
end

local function states(callId)
  local out = {}
  for _, ev in ipairs(bot.of(callId, "call")) do
    -- (a mediaState update says the call's state again: the tracker marks it sameState)
    if not ev.toneInfo and not ev.sameState then out[#out + 1] = ev.state end
  end
  return out
end

local function last_call_event(callId)
  local evs = bot.of(callId, "call")
  return evs[#evs]
end

local function established(callId)
  return bot.wait(function()
    for _, s in ipairs(states(callId)) do if s == "established" then return true end end
  end)
end

local function op_event(callId, opId)
  local found
  bot.wait(function()
    for _, ev in ipairs(bot.of(callId, "operation")) do
      if ev.operationId == opId then found = ev return true end
    end
  end, 8000)
  return found
end

local function prompt(name) return graphcall.mediaPrompt { mediaInfo = { uri = prompts .. name } } end

describe("outgoing calls", function()
  for number, want in pairs {
    ["+15550000002"] = { 486, 0 }, ["+15550000003"] = { 603, 0 }, ["+15550000004"] = { 480, 10076 },
  } do
    it(number .. " ends with resultInfo " .. want[1] .. "/" .. want[2], function()
      local call = call_to(number)
      assert.is_true(bot.wait(function() return bot.ended(call.id) end))
      local ev = last_call_event(call.id)
      assert.equal("deleted", ev.changeType)
      assert.equal(want[1], ev.resultInfo.code)
      assert.equal(want[2], ev.resultInfo.subcode)
      assert.same({ "establishing", "terminated" }, states(call.id))
    end)
  end

  it("may send established before establishing (swapEstablished): the call stays established", function()
    local call = call_to("+15550000010")
    assert.is_true(bot.wait(function() return #states(call.id) >= 1 end))
    bot.loop:sleep(300)
    assert.same({ "established" }, states(call.id))   -- the late establishing was stale
    local view = bot.control("GET", "/emulator/calls/" .. call.id)
    local sent = {}
    for _, l in ipairs(view.log) do if l.what == "notify" then sent[#sent + 1] = l.detail end end
    assert.same({ "call:established", "call:establishing", "call:mediaState" }, sent)
    bot.client:hangup(call.id)
  end)

  it("a PSTN callee hanging up ends the call with 200/540000", function()
    local call = call_to("+15550000005")
    assert.is_true(bot.wait(function() return bot.ended(call.id) end))
    assert.same({ "establishing", "established", "terminated" }, states(call.id))
    assert.equal(540000, last_call_event(call.id).resultInfo.subcode)
  end)

  it("hanging up: 204, then terminating and terminated 200/5001", function()
    local call = call_to("+15550000001")
    assert.is_true(established(call.id))
    assert.is_true(bot.client:hangup(call.id))
    assert.is_true(bot.wait(function() return bot.ended(call.id) end))
    assert.same({ "establishing", "established", "terminating", "terminated" }, states(call.id))
    assert.same({ code = 200, subcode = 5001, message = "The conversation has ended." },
      last_call_event(call.id).resultInfo)
    local again, err = bot.client:hangup(call.id)
    assert.is_nil(again)
    assert.equal("8522", err.graphCode)
  end)

  it("without keepAlive the call ends 408/8537; keepAlive keeps it, then 404s once it is gone", function()
    local call = call_to("+15550000001")
    assert.is_true(established(call.id))
    bot.loop:sleep(2500 / SPEED)
    assert.is_true(bot.client:keepAlive(call.id))
    bot.loop:sleep(2500 / SPEED)                    -- 5 s since establishment, 2.5 s since keepAlive
    assert.is_false(bot.ended(call.id))
    assert.is_true(bot.wait(function() return bot.ended(call.id) end))
    assert.same({ code = 408, subcode = 8537 }, { code = last_call_event(call.id).resultInfo.code,
                                                  subcode = last_call_event(call.id).resultInfo.subcode })
    local ok, err = bot.client:keepAlive(call.id)
    assert.is_nil(ok)
    assert.equal(404, err.status)
  end)
end)

describe("incoming calls", function()
  local function place(extra)
    local body = { webhook = bot.callback, tenantId = "tenant-1", appId = "app-1",
                   from = { phone = { id = "+14255550199" } } }
    for k, v in pairs(extra or {}) do body[k] = v end
    local r, status = bot.control("POST", "/emulator/incoming", require("cjson").encode(body))
    assert.equal(201, status)
    local ev
    assert.is_true(bot.wait(function()
      for _, e in ipairs(bot.of(r.id, "call")) do if e.incoming then ev = e return true end end
    end))
    return r.id, ev
  end

  it("arrive as created/incoming with the caller, and can be answered", function()
    local id, ev = place { caller = { { on = "established", after = 100, hangup = true } } }
    assert.equal("created", ev.changeType)
    assert.equal("incoming", ev.direction)
    assert.equal("+14255550199", ev.data.source.identity.phone.id)
    assert.equal("tenant-1", ev.tenantId)
    local ok, err, meta = bot.client:answer(id, { callbackUri = bot.callback, acceptedModalities = { "audio" },
      mediaConfig = graphcall.serviceHostedMediaConfig {} })
    assert.is_true(ok, err and tostring(err))
    assert.equal(202, meta.status)
    assert.is_true(bot.wait(function() return bot.ended(id) end))
    assert.same({ "incoming", "establishing", "established", "terminated" }, states(id))
  end)

  it("can be rejected (call deleted) or redirected (deleted, terminated)", function()
    local id = place()
    assert.is_true(bot.client:reject(id, { reason = "busy" }))
    assert.is_true(bot.wait(function()
      for _, ev in ipairs(bot.of(id, "call")) do if ev.changeType == "deleted" then return true end end
    end))
    local id2 = place()
    assert.is_true(bot.client:redirect(id2, { targets = { { identity = { phone = { id = "+15550000001" } } } } }))
    assert.is_true(bot.wait(function() return bot.ended(id2) end))
    local again, err = bot.client:answer(id2, { acceptedModalities = { "audio" },
      mediaConfig = graphcall.serviceHostedMediaConfig {} })
    assert.is_nil(again)
    assert.equal(404, err.status)
  end)

  it("end 480/10076 when nobody answers in time", function()
    local id = place { answerBy = 1000 }
    assert.is_true(bot.wait(function() return bot.ended(id) end))
    assert.equal(10076, last_call_event(id).resultInfo.subcode)
  end)

  it("answer is refused on a call that is not incoming", function()
    local call = call_to("+15550000001")
    assert.is_true(established(call.id))
    local ok, err = bot.client:answer(call.id, { acceptedModalities = { "audio" },
      mediaConfig = graphcall.serviceHostedMediaConfig {} })
    assert.is_nil(ok)
    assert.equal(400, err.status)
    bot.client:hangup(call.id)
  end)
end)

describe("transfers", function()
  it("fail back to established with resultInfo 500/7000 when the target does not answer", function()
    local call = call_to("+15550000001")
    assert.is_true(established(call.id))
    assert.is_true(bot.client:transfer(call.id, {
      transferTarget = { identity = { phone = { id = "+15550000008" } } } }))
    assert.is_true(bot.wait(function()
      local ev = last_call_event(call.id)
      return ev.state == "established" and ev.resultInfo ~= nil
    end))
    local ev = last_call_event(call.id)
    assert.equal(500, ev.resultInfo.code)
    assert.equal(7000, ev.resultInfo.subcode)
    assert.equal(7000, ev.data.resultInfo.subCode)   -- spelled as the service spells it there
    bot.client:hangup(call.id)
  end)
end)

describe("media", function()
  local call
  before_each(function()
    call = call_to("+15550000001")
    assert(established(call.id))
  end)
  after_each(function() bot.client:hangup(call.id) end)

  it("plays a prompt for its real length, fetched from the bot", function()
    local t0 = bot.loop:now()
    local op = assert(bot.client:playPrompt(call.id, { prompts = { prompt("short.wav"), prompt("short.wav") } }))
    local ev = op_event(call.id, op.id)
    assert.equal("completed", ev.status)
    assert.is_true(bot.loop:now() - t0 >= 800 / SPEED)
  end)

  for name, why in pairs { ["8k.wav"] = "8000", ["stereo.wav"] = "channels", ["text.wav"] = "RIFF",
                           ["missing.wav"] = "404" } do
    it("fails a prompt that cannot play: " .. name, function()
      local op = assert(bot.client:playPrompt(call.id, { prompts = { prompt(name) } }))
      local ev = op_event(call.id, op.id)
      assert.equal("failed", ev.status)
      assert.matches(why, ev.resultInfo.message)
    end)
  end

  it("fails a prompt on an unreachable host", function()
    local op = assert(bot.client:playPrompt(call.id, { prompts = {
      graphcall.mediaPrompt { mediaInfo = { uri = "http://127.0.0.1:1/x.wav" } } } }))
    assert.equal("failed", op_event(call.id, op.id).status)
  end)

  it("queues prompts and recordings; cancelMediaProcessing fails them all with 400/8508", function()
    local a = assert(bot.client:playPrompt(call.id, { prompts = { prompt("long.wav") } }))
    local b = assert(bot.client:recordResponse(call.id, { maxRecordDurationInSeconds = 10 }))
    bot.loop:sleep(300 / SPEED)
    assert.is_table(assert(bot.client:cancelMediaProcessing(call.id, {})))
    for _, op in ipairs { a, b } do
      local ev = op_event(call.id, op.id)
      assert.equal("failed", ev.status)
      assert.same({ 400, 8508 }, { ev.resultInfo.code, ev.resultInfo.subcode })
    end
    assert.equal("operationCanceled", op_event(call.id, b.id).completionReason)
  end)
end)

describe("the scripted caller", function()
  it("presses keys after a prompt: toneInfo with increasing sequenceIds once subscribed", function()
    local call = call_to("+15550000006")
    assert.is_true(established(call.id))
    assert.equal("completed", assert(bot.client:subscribeToTone(call.id, {})).status)
    assert(bot.client:playPrompt(call.id, { prompts = { prompt("short.wav") } }))
    assert.is_true(bot.wait(function() return bot.ended(call.id) end))
    local tones, seqs = {}, {}
    for _, ev in ipairs(bot.of(call.id, "call")) do
      if ev.toneInfo then
        tones[#tones + 1] = ev.toneInfo.tone
        seqs[#seqs + 1] = ev.toneInfo.sequenceId
      end
    end
    assert.same({ "tone4", "tone2", "pound" }, tones)
    assert.same({ 1, 2, 3 }, seqs)
  end)

  it("is not heard without subscribeToTone", function()
    local call = call_to("+15550000009")
    assert.is_true(established(call.id))
    bot.loop:sleep(400 / SPEED)                          -- "1" is pressed, unheard
    assert(bot.client:subscribeToTone(call.id, {}))
    assert(bot.client:playPrompt(call.id, { prompts = { prompt("short.wav") } }))
    assert.is_true(bot.wait(function()
      for _, ev in ipairs(bot.of(call.id, "call")) do if ev.toneInfo then return true end end
    end))
    local heard = {}
    for _, ev in ipairs(bot.of(call.id, "call")) do if ev.toneInfo then heard[#heard + 1] = ev.toneInfo.tone end end
    assert.same({ "tone9" }, heard)
    local view = bot.control("GET", "/emulator/calls/" .. call.id)
    assert.equal("19", view.pressed)
    -- the control API's view: what played and every request, as JSON
    assert.equal(1, #view.prompts)
    assert.equal(prompts .. "short.wav", view.prompts[1].uri)
    assert.is_number(view.prompts[1].ms)
    assert.is_false(view.prompts[1].cutShort)
    local asked = {}
    for _, r in ipairs(view.requests) do asked[#asked + 1] = r.action .. " " .. r.status end
    assert.same({ "subscribeToTone 200", "playPrompt 200" }, asked)
    assert.is_nil(view.transferred)
    assert.same({}, view.recordings)
    bot.client:hangup(call.id)
  end)

  it("GET /emulator/summary counts what GET /emulator/calls lists", function()
    local call = call_to("+15550000009")
    assert.is_true(established(call.id))
    assert(bot.client:subscribeToTone(call.id, {}))
    assert(bot.client:playPrompt(call.id, { prompts = { prompt("short.wav") } }))
    assert.is_true(bot.wait(function()
      for _, ev in ipairs(bot.of(call.id, "call")) do if ev.toneInfo then return true end end
    end))
    local function count()
      local want = { calls = 0, states = {}, prompted = 0, pressed = 0, recorded = 0 }
      for _, v in ipairs(bot.control("GET", "/emulator/calls").calls) do
        want.calls = want.calls + 1
        want.states[v.state] = (want.states[v.state] or 0) + 1
        if #v.prompts > 0 then want.prompted = want.prompted + 1 end
        if v.pressed ~= "" then want.pressed = want.pressed + 1 end
        if #v.recordings > 0 then want.recorded = want.recorded + 1 end
      end
      return want
    end
    -- (the other tests' calls may still be ending: a summary between two lists that agree)
    local want, sum
    for _ = 1, 50 do
      local before = count()
      sum = bot.control("GET", "/emulator/summary")
      want = count()
      if require("luassert.util").deepcompare(before, want) then break end
    end
    assert.same(want, sum)
    assert.is_true(sum.calls > 1 and sum.prompted >= 1 and sum.pressed >= 1 and sum.states.established >= 1)
    bot.client:hangup(call.id)
  end)

  it("speaks into a recording: completed with a recordingLocation to download with its token", function()
    local call = call_to("+15550000007")
    assert.is_true(established(call.id))
    local op = assert(bot.client:recordResponse(call.id, { prompts = { prompt("short.wav") },
      maxSilenceTimeoutInSeconds = 1, maxRecordDurationInSeconds = 10, playBeep = true }))
    assert.is_true(op.recordingLocation == graphcall.null)
    local ev = op_event(call.id, op.id)
    assert.equal("completed", ev.status)
    assert.equal("maxSilenceTimeout", ev.completionReason)
    local res = assert(bot.loop:fetch { url = ev.recordingLocation,
      headers = { Authorization = "Bearer " .. ev.recordingAccessToken } })
    assert.equal(200, res.status)
    local info = assert(wav.check(res.body))
    assert.is_true(info.ms >= 700 and info.ms <= 900, tostring(info.ms))
    local denied = assert(bot.loop:fetch { url = ev.recordingLocation })
    assert.equal(401, denied.status)
    bot.client:hangup(call.id)
  end)

  it("silence ends a recording at initialSilenceTimeout; the cap at 200/8515", function()
    local call = call_to("+15550000001")
    assert.is_true(established(call.id))
    local a = assert(bot.client:recordResponse(call.id, { initialSilenceTimeoutInSeconds = 1, playBeep = false }))
    assert.equal("initialSilenceTimeout", op_event(call.id, a.id).completionReason)
    bot.client:hangup(call.id)
    local c2 = call_to("+15550000007")
    assert.is_true(established(c2.id))
    local b = assert(bot.client:recordResponse(c2.id, { maxRecordDurationInSeconds = 1, playBeep = false }))
    local ev = op_event(c2.id, b.id)
    assert.equal("maxRecordDurationReached", ev.completionReason)
    assert.same({ 200, 8515 }, { ev.resultInfo.code, ev.resultInfo.subcode })
    bot.client:hangup(c2.id)
  end)
end)

describe("meetings", function()
  local meeting = {
    chatInfo = { threadId = "19:meeting_x@thread.v2", messageId = "0" },
    meetingInfo = graphcall.organizerMeetingInfo { organizer = { user = { id = "org-1", tenantId = "tenant-1" } } },
  }

  it("send the full roster as attendees join and leave, and content sharing when enabled", function()
    local call = call_to(nil, { targets = graphcall.null, meetingInfo = meeting.meetingInfo,
      chatInfo = meeting.chatInfo,
      callOptions = graphcall.outgoingCallOptions { isContentSharingNotificationEnabled = true } })
    assert.is_true(bot.wait(function() return #bot.of(call.id, "contentSharing") >= 2 end, 8000))
    assert.is_true(bot.wait(function()
      local r = bot.of(call.id, "participants")
      return #r > 0 and #r[#r].participants == 2 and r[#r].participants[2].info.identity.user.displayName == "Alice"
        and #r >= 4
    end, 8000))
    local rosters = bot.of(call.id, "participants")
    local sizes = {}
    for _, r in ipairs(rosters) do
      assert.is_nil(r.delta)
      sizes[#sizes + 1] = #r.participants
    end
    assert.same({ 1, 2, 3, 2 }, sizes)   -- the bot, Alice, Bob joins, Bob leaves
    local cs = bot.of(call.id, "contentSharing")
    assert.equal("created", cs[1].changeType)
    assert.equal("deleted", cs[#cs].changeType)
    bot.client:hangup(call.id)
  end)

  it("send delta rosters with sequence numbers when isDeltaRosterEnabled", function()
    local call = call_to(nil, { targets = graphcall.null, meetingInfo = meeting.meetingInfo,
      chatInfo = meeting.chatInfo,
      callOptions = graphcall.outgoingCallOptions { isDeltaRosterEnabled = true } })
    assert.is_true(bot.wait(function() return #bot.of(call.id, "participants") >= 4 end, 8000))
    local rosters = bot.of(call.id, "participants")
    for i, r in ipairs(rosters) do
      assert.is_true(r.delta)
      assert.equal(i, r.sequenceNumber)
      assert.equal(1, #r.participants)
    end
    assert.is_true(rosters[4].participants[1].removed)
    local state = bot.listener.tracker:call(call.id)
    local present = 0
    for _, p in pairs(state.roster) do if not p.removed then present = present + 1 end end
    assert.equal(2, present)
    bot.client:hangup(call.id)
  end)
end)

describe("notification faults", function()
  local function fault(rule) bot.control("POST", "/emulator/faults", require("cjson").encode { rule }) end
  -- each test's call is over before the next test's fault is armed
  local function hangup(call)
    bot.client:hangup(call.id)
    assert.is_true(bot.wait(function() return bot.ended(call.id) end))
  end

  it("a duplicated notification reaches the handler once", function()
    local before = bot.listener.stats.dropped
    fault { notification = "call:established", duplicate = true }
    local call = call_to("+15550000001")
    assert.is_true(established(call.id))
    bot.wait(function() return bot.listener.stats.dropped > before end)
    assert.same({ "establishing", "established" }, states(call.id))
    assert.equal(before + 1, bot.listener.stats.dropped)
    hangup(call)
  end)

  it("a reordered establishing after established leaves the call established", function()
    fault { notification = "call:establishing", reorder = true }
    local call = call_to("+15550000001")
    assert.is_true(established(call.id))
    bot.loop:sleep(200)
    assert.same({ "established" }, states(call.id))    -- the late establishing was stale
    assert.equal("established", bot.listener.tracker:call(call.id).state)
    hangup(call)
  end)

  it("a bad signature gets 403 and is never dispatched", function()
    local before = bot.listener.stats.rejected
    fault { notification = "call:established", badSignature = true }
    local call = call_to("+15550000001")
    assert.is_true(bot.wait(function() return bot.listener.stats.rejected > before end))
    bot.loop:sleep(300)
    -- the refused `established` never reached the bot; the mediaState update after it did,
    -- and says the call is established
    local evs = bot.of(call.id, "call")
    assert.same({ "establishing", "established" }, states(call.id))
    assert.equal("active", evs[#evs].data.mediaState.audio)
    local view = bot.control("GET", "/emulator/calls/" .. call.id)
    local failed = false
    for _, l in ipairs(view.log) do
      if l.what == "notify failed" and l.detail:find("HTTP 403", 1, true) then failed = true end
    end
    assert.is_true(failed)
    hangup(call)
  end)

  it("a dropped termination is found by keepAlive's 404", function()
    fault { notification = "call:terminated", drop = true }
    local call = call_to("+15550000005")
    assert.is_true(established(call.id))
    bot.loop:sleep(600 / SPEED + 200)
    assert.is_false(bot.ended(call.id))
    local ok, err = bot.client:keepAlive(call.id)
    assert.is_nil(ok)
    assert.equal("8522", err.graphCode)
  end)

  it("rotated keys are fetched again when a callback names an unknown kid", function()
    bot.control("POST", "/emulator/rotate-keys")
    local before = bot.listener.stats.rejected
    local call = call_to("+15550000001")
    assert.is_true(established(call.id))
    assert.equal(before, bot.listener.stats.rejected)
    bot.client:hangup(call.id)
  end)
end)

describe("every notification the emulator sent", function()
  it("parsed as commsNotifications; none refused but the bad signature", function()
    assert.equal(0, bot.listener.stats.malformed)
    assert.equal(1, bot.listener.stats.rejected)
  end)
end)

describe("a webhook slow to answer", function()
  it("has the service's webhookTimeout from when the POST is sent, not while it waits for a connection", function()
    -- 100 calls' notifications at once, each answered after a second: the emulator's 64
    -- connections to one host take them in two rounds; the second round's POSTs wait a second
    -- for a connection, then get their answer in one (the timeout, 1.8 s, is the bot's time)
    local slow = E.start { scenario = { webhookTimeout = 1800 } }
    local loop = graphcall.loop { log = false }
    local answered = 0
    local server = assert(loop:listen({ host = "127.0.0.1", port = 0 }, function(req)
      req:keep()
      loop:timer(1000, function()
        answered = answered + 1
        req:respond(202)
      end)
    end))
    local webhook = "http://127.0.0.1:" .. server:port() .. "/callback"
    local placed = 0
    for _ = 1, 100 do
      loop:request({ method = "POST", url = slow.url .. "/emulator/incoming", timeout = 10000,
                     body = graphcall.json { webhook = webhook, appId = "app-1", answerBy = 60000 } },
        function(res) if res and res.status == 201 then placed = placed + 1 end end)
    end
    loop:run_until(function() return placed == 100 and answered == 100 end, 20000)
    loop:sleep(300)   -- (a POST that gave up would be refused by now)
    local stats = graphcall.decode(assert(loop:fetch { url = slow.url .. "/emulator/stats" }).body)
    server:close()
    loop:close()
    slow.stop()
    assert.equal(100, answered)
    assert.equal(0, stats.notificationsFailed)
    assert.equal(100, stats.notificationsSent)
  end)
end)
