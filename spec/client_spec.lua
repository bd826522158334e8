-- The client over real loopback HTTP against the emulator, a separate process: tokens, the
-- ten reference scenarios, every action with its documented answer, errors and faults.
local graphcall = require "graphcall"
local H = require "helper"
local E = require "emu"

local SCENARIO = {
  peers = {
    default = { answer = 50 },
    ["+15550000001"] = { answer = 50 },
  },
}

local emu, bot

setup(function()
  emu = E.start { scenario = SCENARIO, speed = 4, realism = "strict" }   -- exact sequences asserted
  bot = E.bot(emu)
end)

teardown(function()
  if bot then bot.close() end
  if emu then emu.stop() end
end)

local function established(callId)
  return bot.wait(function()
    for _, ev in ipairs(bot.of(callId, "call")) do
      if ev.state == "established" then return true end
    end
  end)
end

local function new_call(number)
  local call, err = bot.client:create_call(E.pstn_call(bot, number or "+15550000001"))
  assert(call, err and tostring(err))
  assert(established(call.id), "not established")
  return call
end

describe("tokens", function()
  it("are fetched once for many requests waiting at the same time, then cached", function()
    local before = bot.control("GET", "/emulator/stats").tokensIssued
    local c = graphcall.client { tenantId = "tenant-9", clientId = "app-1", clientSecret = "s",
      authority = emu.url, graphUrl = emu.url .. "/v1.0", loop = bot.loop }
    local done, results = 0, {}
    for i = 1, 20 do
      local spec = E.pstn_call(bot, "+15550000001")
      spec.tenantId = "tenant-9"          -- the call's tenant is the one the token is for
      c:create_call(spec, function(call, err)
        results[i] = call or err
        done = done + 1
      end)
    end
    assert.is_true(bot.wait(function() return done == 20 end))
    for i = 1, 20 do assert.is_string(results[i].id, tostring(results[i].message)) end
    assert.equal(before + 1, bot.control("GET", "/emulator/stats").tokensIssued)
    assert.is_string(c:token())
    assert.equal(before + 1, bot.control("GET", "/emulator/stats").tokensIssued)
    for i = 1, 20 do c:hangup(results[i].id) end
  end)

  it("are renewed before they expire, with one refresh in flight", function()
    local e2 = E.start { scenario = { tokenLifetime = 2 }, speed = 1 }
    local b2 = E.bot(e2, { refreshBefore = 1 })
    local t1 = assert(b2.client:token())
    b2.loop:sleep(1200)                       -- inside the last half of its life
    local t2 = assert(b2.client:token())      -- still served, renewal under way
    assert.equal(t1, t2)
    b2.wait(function() return b2.client.tokens["tenant-1"].token ~= t1 end, 3000)
    local t3 = assert(b2.client:token())
    assert.are_not.equal(t1, t3)
    assert.equal(2, b2.control("GET", "/emulator/stats").tokensIssued)
    b2.close()
    e2.stop()
  end)

  it("reports bad credentials as an auth error with the identity platform's code", function()
    local e2 = E.start { scenario = { credentials = { clientId = "app-1", clientSecret = "right" } } }
    local b2 = E.bot(e2, { clientSecret = "wrong", retries = 0 })
    local call, err = b2.client:create_call(E.pstn_call(b2, "+15550000001"))
    assert.is_nil(call)
    assert.equal("auth", err.code)
    assert.equal("invalid_client", err.graphCode)
    assert.equal(401, err.status)
    b2.close()
    e2.stop()
  end)
end)

describe("the ten reference scenarios", function()
  for _, ex in ipairs(H.seeds) do
    it(ex .. ": created, answered like the seed response, notifications verified", function()
      local spec = graphcall.decode(H.fixture("seed/" .. ex .. "/request.json"))
      spec.callbackUri = bot.callback
      local call, err, meta = bot.client:create_call(spec)
      assert.is_table(call, err and tostring(err))
      assert.equal(201, meta.status)
      -- the seed response's shape: each of its fields is there, with the same kind of value
      local seed = graphcall.decode(H.fixture("seed/" .. ex .. "/response.json"))
      for k, v in pairs(seed) do
        assert.is_not_nil(call[k], ex .. ": missing " .. k)
        if v ~= graphcall.null and call[k] ~= graphcall.null then
          assert.equal(type(v), type(call[k]), ex .. ": " .. k)
        end
      end
      assert.equal("establishing", call.state)
      assert.equal("outgoing", call.direction)
      assert.equal(bot.callback, call.callbackUri)
      assert.is_true(established(call.id), ex .. ": no established notification")
      local first = bot.of(call.id)[1]
      assert.equal("https://api.botframework.com", first.claims.iss)
      assert.equal("app-1", first.claims.aud)
      assert.equal(spec.tenantId or "tenant-1", first.claims.tid)
      if spec.meetingInfo then
        assert.is_true(bot.wait(function() return #bot.of(call.id, "participants") > 0 end), ex .. ": no roster")
      end
      assert.is_true(bot.client:hangup(call.id))
      assert.is_true(bot.wait(function() return bot.ended(call.id) end))
    end)
  end
end)

describe("actions", function()
  local call
  before_each(function() call = new_call() end)
  after_each(function() bot.client:hangup(call.id) end)

  local function op_done(opId)
    local found
    bot.wait(function()
      for _, ev in ipairs(bot.of(call.id, "operation")) do
        if ev.operationId == opId then found = ev return true end
      end
    end)
    return found
  end

  it("playPrompt: 200, a running operation with its Location, completed by notification", function()
    local dir = E.tmpdir()
    local f = assert(io.open(dir .. "/hi.wav", "wb"))
    f:write(require("graphcall.wav").tone { ms = 300 })
    f:close()
    local l = assert(graphcall.listener { loop = bot.loop, verify = false, files = dir })
    local op, err, meta = bot.client:playPrompt(call.id, { clientContext = "ctx-1",
      prompts = { graphcall.mediaPrompt { mediaInfo = { uri = l:url("/prompts/hi.wav") } } } })
    assert.is_table(op, err and tostring(err))
    assert.equal(200, meta.status)
    assert.equal("running", op.status)
    assert.equal("ctx-1", op.clientContext)
    assert.equal("/operations/" .. op.id, op.location:sub(-#op.id - 12))
    local ev = op_done(op.id)
    assert.equal("completed", ev.status)
    assert.equal("playPrompt", ev.operationType)
    assert.equal(200, ev.resultInfo.code)
    l:close()
    os.execute("rm -rf " .. dir)
  end)

  it("recordResponse: a running recordOperation; subscribeToTone, cancelMediaProcessing, "
    .. "mute, unmute, updateRecordingStatus: completed at once", function()
    local op = assert(bot.client:recordResponse(call.id, { maxRecordDurationInSeconds = 1 }))
    assert.equal("running", op.status)
    assert.equal("#microsoft.graph.recordOperation", op["@odata.type"])
    for name, spec in pairs { subscribeToTone = {}, cancelMediaProcessing = {}, mute = {}, unmute = {},
                              updateRecordingStatus = { status = "recording" } } do
      local o, err, meta = bot.client[name](bot.client, call.id, spec)
      assert.is_table(o, name .. ": " .. tostring(err))
      assert.equal(200, meta.status, name)
      assert.equal("completed", o.status, name)
      assert.is_string(o.id, name)
    end
    local ev = op_done(op.id)                         -- the recording was cancelled
    assert.equal("failed", ev.status)
    assert.equal(8508, ev.resultInfo.subcode)
  end)

  it("sendDtmfTones: running, then completed with its completionReason", function()
    local op = assert(bot.client:sendDtmfTones(call.id, { tones = { "tone1", "pound" }, delayBetweenTonesMs = 50 }))
    assert.equal("running", op.status)
    local ev = op_done(op.id)
    assert.equal("completed", ev.status)
    assert.equal("completedSuccessfully", ev.completionReason)
  end)

  it("keepAlive: 200 and true; changeScreenSharingRole: 202 and true", function()
    local ok, err, meta = bot.client:keepAlive(call.id)
    assert.is_true(ok, err and tostring(err))
    assert.equal(200, meta.status)
    ok, err, meta = bot.client:changeScreenSharingRole(call.id, { role = "viewer" })
    assert.is_true(ok, err and tostring(err))
    assert.equal(202, meta.status)
  end)

  it("reads: the call, its participants, an operation", function()
    local c = assert(bot.client:get_call(call.id))
    assert.equal(call.id, c.id)
    assert.equal("established", c.state)
    local op = assert(bot.client:subscribeToTone(call.id, {}))
    local o = assert(bot.client:get_operation(call.id, op.id))
    assert.equal(op.id, o.id)
    assert.is_table(assert(bot.client:list_participants(call.id)))
  end)

  it("transfer: 202, then transferring, transferAccepted, terminated 0/7015", function()
    local ok, err, meta = bot.client:transfer(call.id, { transferTarget = {
      identity = { phone = { id = "+15550000001" } } } })
    assert.is_true(ok, err and tostring(err))
    assert.equal(202, meta.status)
    assert.is_true(bot.wait(function() return bot.ended(call.id) end))
    local states, media = {}, {}
    for _, ev in ipairs(bot.of(call.id, "call")) do
      -- mediaState updates say the call's state again; they are no new state (ev.sameState)
      if ev.sameState then media[#media + 1] = ev.state .. " " .. ev.data.mediaState.audio
      else states[#states + 1] = ev.state end
    end
    assert.same({ "establishing", "established", "transferring", "transferAccepted", "terminated" }, states)
    assert.same({ "established active", "transferAccepted inactive" }, media)
    local evs = bot.of(call.id, "call")
    assert.same({ code = 0, subcode = 7015, message = "GracefulTransferCompleted" }, evs[#evs].resultInfo)
  end)
end)

describe("group calls and participants", function()
  it("invite, participant mute, hold music, remove", function()
    local spec = E.pstn_call(bot, "+15550000001")
    spec.targets[2] = { identity = { phone = { id = "+15550000007" } } }
    local call = assert(bot.client:create_call(spec))
    assert.is_true(established(call.id))
    local op, err, meta = bot.client:invite(call.id, { participants = { { identity = { user = { id = "u-7" } } } } })
    assert.is_table(op, err and tostring(err))
    assert.equal(200, meta.status)
    assert.equal("Running", op.status)
    local joined
    assert.is_true(bot.wait(function()
      for _, ev in ipairs(bot.of(call.id, "participants")) do
        for _, p in ipairs(ev.participants) do
          local u = p.info and p.info.identity and p.info.identity.user
          if u and u.id == "u-7" then joined = p.id return true end
        end
      end
    end))
    local m = assert(bot.client:mute_participant(call.id, joined, {}))
    assert.equal("completed", m.status)
    local hold, herr, hmeta = bot.client:startHoldMusic(call.id, joined, {})
    assert.is_table(hold, herr and tostring(herr))
    assert.equal(202, hmeta.status)
    assert.equal("running", hold.status)
    assert.is_table((bot.client:stopHoldMusic(call.id, joined, {})))
    assert.is_table(assert(bot.client:get_participant(call.id, joined)))
    local ok, derr, dmeta = bot.client:delete_participant(call.id, joined)
    assert.is_true(ok, derr and tostring(derr))
    assert.equal(204, dmeta.status)
    local gone, gerr = bot.client:get_participant(call.id, joined)
    assert.is_nil(gone)
    assert.equal(404, gerr.status)
    assert.is_true(bot.client:hangup(call.id))
  end)
end)

describe("errors", function()
  it("a call that does not exist is Graph's 404 8522, with the request ids", function()
    local ok, err = bot.client:keepAlive("no-such-call")
    assert.is_nil(ok)
    assert.equal("graph", err.code)
    assert.equal(404, err.status)
    assert.equal("8522", err.graphCode)
    assert.is_string(err.requestId)
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", err.clientRequestId)
    assert.equal(1, err.attempts)
  end)

  it("a bad spec is refused before anything is sent", function()
    local before = bot.control("GET", "/emulator/stats").requests
    local call, err = bot.client:create_call { callbackUri = "http://bot.example.com/cb",
      requestedModalities = { "audio" }, mediaConfig = graphcall.serviceHostedMediaConfig {},
      targets = { { identity = { user = { id = "u" } } } } }
    assert.is_nil(call)
    assert.equal("https", err.code)
    assert.equal(before + 1, bot.control("GET", "/emulator/stats").requests)  -- only the stats call
  end)

  it("the emulator validates bodies as the service would (400) and wants a token (401)", function()
    local token = assert(bot.client:token())
    local res = assert(bot.loop:fetch { method = "POST", url = emu.url .. "/v1.0/communications/calls",
      headers = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" },
      body = '{"callbackUri":"https://x.example/cb","requestedModalities":["smell"],'
        .. '"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"},"targets":[]}' })
    assert.equal(400, res.status)
    assert.matches("requestedModalities", res.body)
    for _, auth in ipairs { false, "Bearer nonsense", "Bearer " .. token:sub(1, -3) .. "xx" } do
      res = assert(bot.loop:fetch { url = emu.url .. "/v1.0/communications/calls/x",
        headers = auth and { Authorization = auth } or nil })
      assert.equal(401, res.status)
      assert.equal("InvalidAuthenticationToken", graphcall.decode(res.body).error.code)
    end
  end)

  it("refuses plain http to a host that is not loopback", function()
    assert.has_error(function()
      graphcall.client { tenantId = "t", clientId = "a", clientSecret = "s", loop = bot.loop,
        authority = emu.url, graphUrl = "http://graph.example.com/v1.0" }
    end)
    local client = require "graphcall.client"
    for url, ok in pairs { ["http://127.0.0.1:8080/x"] = true, ["http://127.9.8.7/"] = true,
                           ["http://localhost/cb"] = true, ["http://[::1]:80/"] = true,
                           ["http://10.0.0.1/"] = false, ["http://127.0.0.1.evil.example/"] = false,
                           ["http://localhost.evil.example/"] = false } do
      assert.equal(ok, client.loopback_url(url), url)
    end
  end)

  it("an emulator that is down gives a clear connect error, after the retries", function()
    local c = graphcall.client { tenantId = "t", clientId = "a", clientSecret = "s", loop = bot.loop,
      authority = "http://127.0.0.1:1", graphUrl = "http://127.0.0.1:1/v1.0", backoff = 10, retries = 2 }
    local call, err = c:create_call(E.pstn_call(bot, "+15550000001"))
    assert.is_nil(call)
    assert.equal("auth", err.code)
    assert.equal("connect", err.cause)
    assert.matches("connect", err.message)
    assert.equal(3, err.attempts)
  end)
end)

describe("faults", function()
  local function fault(rule) bot.control("POST", "/emulator/faults", require("cjson").encode { rule }) end

  it("429 with Retry-After is honoured: the retry waits that long, then succeeds", function()
    local call = new_call()
    fault { request = "keepAlive", status = 429, retryAfter = 1 }
    local t0 = bot.loop:now()
    local ok, err, meta = bot.client:keepAlive(call.id)
    assert.is_true(ok, err and tostring(err))
    assert.is_true(bot.loop:now() - t0 >= 1000)
    assert.equal(2, meta.attempts)
    bot.client:hangup(call.id)
  end)

  it("a 429 asking for more than maxRetryAfter is returned, with its retryAfter", function()
    local call = new_call()
    fault { request = "keepAlive", status = 429, retryAfter = 3600 }
    local ok, err = bot.client:keepAlive(call.id)
    assert.is_nil(ok)
    assert.equal(429, err.status)
    assert.equal(3600, err.retryAfter)
    bot.client:hangup(call.id)
  end)

  it("503 is retried, even for an action that must not run twice (it was refused)", function()
    local call = new_call()
    fault { request = "playPrompt", status = 503, times = 2 }
    local op, err, meta = bot.client:playPrompt(call.id, { prompts = {
      graphcall.mediaPrompt { mediaInfo = { uri = "http://127.0.0.1:1/x.wav" } } } })
    assert.is_table(op, err and tostring(err))
    assert.equal(3, meta.attempts)
    bot.client:hangup(call.id)
  end)

  it("504 on an action is not repeated: the error says its fate is unknown", function()
    local call = new_call()
    fault { request = "playPrompt", status = 504 }
    local op, err = bot.client:playPrompt(call.id, { prompts = {
      graphcall.mediaPrompt { mediaInfo = { uri = "http://127.0.0.1:1/x.wav" } } } })
    assert.is_nil(op)
    assert.equal(504, err.status)
    assert.is_true(err.ambiguous)
    assert.equal(1, err.attempts)
    bot.client:hangup(call.id)
  end)

  it("a reset after sending is retried for a read, never for an action", function()
    local call = new_call()
    local before = bot.control("GET", "/emulator/stats").requests
    fault { request = "GET /communications/calls/[^/]+", reset = true }
    local c, err = bot.client:get_call(call.id)
    assert.is_table(c, err and tostring(err))        -- sent again (by libcurl or by the client)
    assert.equal(before + 4, bot.control("GET", "/emulator/stats").requests)  -- fault, read, read, stats
    fault { request = "sendDtmfTones", reset = true }
    local op, oerr = bot.client:sendDtmfTones(call.id, { tones = { "tone1" } })
    assert.is_nil(op)
    assert.equal("transport", oerr.code)
    assert.is_true(oerr.ambiguous)
    assert.equal(1, oerr.attempts)
    local counts = bot.control("GET", "/emulator/requests")
    assert.is_nil(counts[oerr.clientRequestId])          -- the emulator never ran it
    bot.client:hangup(call.id)
  end)

  it("a timeout is reported; a read is retried and gets through", function()
    local call = new_call()
    local c = graphcall.client { tenantId = "tenant-1", clientId = "app-1", clientSecret = "s", loop = bot.loop,
      authority = emu.url, graphUrl = emu.url .. "/v1.0", timeout = 300, backoff = 10 }
    local op, err = c:sendDtmfTones(call.id, { tones = { "tone1" } })   -- no fault: fine
    assert.is_table(op, err and tostring(err))
    fault { request = "sendDtmfTones", delay = 1000 }
    op, err = c:sendDtmfTones(call.id, { tones = { "tone1" } })
    assert.is_nil(op)
    assert.equal("timeout", err.code)
    assert.is_true(err.ambiguous)
    assert.equal(1, err.attempts)
    fault { request = "GET /communications/calls/[^/]+", delay = 1000 }
    local got, gerr, meta = c:get_call(call.id)
    assert.is_table(got, gerr and tostring(gerr))
    assert.equal(2, meta.attempts)
    bot.client:hangup(call.id)
  end)

  it("each request carries a fresh client-request-id, kept across its retries", function()
    local call = new_call()
    fault { request = "keepAlive", status = 503 }
    local _, _, m1 = bot.client:keepAlive(call.id)
    local _, _, m2 = bot.client:keepAlive(call.id)
    assert.are_not.equal(m1.clientRequestId, m2.clientRequestId)
    local counts = bot.control("GET", "/emulator/requests")
    assert.equal(1, counts[m1.clientRequestId].count)   -- refused once, carried out once
    assert.equal(1, counts[m2.clientRequestId].count)
    assert.equal(call.id, counts[m1.clientRequestId].call)
    assert.equal("keepAlive", counts[m1.clientRequestId].action)
    bot.client:hangup(call.id)
  end)
end)

describe("every notification", function()
  it("was a commsNotifications body the listener could parse, verified", function()
    assert.equal(0, bot.listener.stats.malformed)
    assert.equal(0, bot.listener.stats.rejected)
    assert.is_true(bot.listener.stats.dispatched > 50)
  end)
end)
