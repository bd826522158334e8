-- The emulator plays Graph as Graph documents itself (REFERENCE.md, Graph's v1.0 pages), and the
-- library takes what Graph documents: tenants and consent, the limits beyond the schema, error
-- shapes, documented id forms and completions, mediaState and hold updates, transfers.
local graphcall = require "graphcall"
local T = require "graphcall.test"
local E = require "emu"

local SCENARIO = {
  peers = { default = { answer = 100 }, ["+15550000008"] = { answer = false } },
  consent = { ["tenant-none"] = false, ["tenant-some"] = { "Calls.JoinGroupCall.All" } },
  capacity = 3,
}

local emu, bot

setup(function()
  emu = E.start { scenario = SCENARIO }
  bot = E.bot(emu)
end)

teardown(function()
  if bot then bot.close() end
  if emu then emu.stop() end
end)

local function client(tenant)
  return graphcall.client { tenantId = tenant, clientId = "app-1", clientSecret = "secret", authority = emu.url,
    graphUrl = emu.url .. "/v1.0", openidUrl = emu.url .. "/v1/.well-known/OpenIdConfiguration", loop = bot.loop,
    retries = 0 }
end

local function pstn(number, tenant)
  local spec = E.pstn_call(bot, number)
  spec.tenantId = tenant
  return spec
end

-- a raw request with a token of `tenant`: status, headers, decoded body
local function raw(tenant, method, path, body)
  local c = client(tenant)
  local token = assert(c:token())
  local res = assert(bot.loop:fetch { method = method, url = emu.url .. "/v1.0" .. path, body = body,
    headers = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json",
                ["client-request-id"] = "11111111-2222-3333-4444-555555555555" } })
  return res, graphcall.decode(res.body)
end

describe("the emulator, as Graph documents it", function()
  it("answers a body that is not JSON with 400 in Graph's error shape, its request-id in the header too", function()
    local call = assert(bot.client:create_call(pstn("+15550000001", "tenant-1")))
    local res, doc = raw("tenant-1", "POST", "/communications/calls/" .. call.id .. "/playPrompt", "{not json")
    assert.equal(400, res.status)
    assert.equal("BadRequest", doc.error.code)
    assert.matches("Unable to read JSON request payload", doc.error.message)
    assert.equal(res:header("request-id"), doc.error.innerError["request-id"])
    assert.equal("11111111-2222-3333-4444-555555555555", doc.error.innerError["client-request-id"])
    bot.client:hangup(call.id)
  end)

  it("refuses another tenant's token on a call with 403 7505, and a call for another tenant", function()
    local call = assert(bot.client:create_call(pstn("+15550000001", "tenant-1")))
    local ok, err = client("tenant-2"):hangup(call.id, { tenant = "tenant-2" })
    assert.is_nil(ok)
    assert.equal(403, err.status)
    assert.equal("7505", err.graphCode)
    local c2 = client("tenant-2")
    local made, cerr = c2:create_call(pstn("+15550000001", "tenant-1"), { tenant = "tenant-2" })
    assert.is_nil(made)
    assert.equal("7505", cerr.graphCode)
    assert.is_true(bot.client:hangup(call.id))      -- its own tenant's token: fine
  end)

  it("refuses an app without calling consent in the tenant (403 7504), and a token for common", function()
    for _, tenant in ipairs { "tenant-none", "common", "tenant-some" } do
      local made, err = client(tenant):create_call(pstn("+15550000001", tenant))
      assert.is_nil(made, tenant)
      assert.equal(403, err.status)
      assert.equal("7504", err.graphCode, tenant)
    end
  end)

  it("checks the limits its pages document beyond the schema, naming the field", function()
    local call = assert(bot.client:create_call(pstn("+15550000001", "tenant-1")))
    local cases = {
      { "playPrompt", { prompts = { graphcall.mediaPrompt { mediaInfo = { uri = "https://x/a.wav" } } },
                        clientContext = string.rep("c", 257) }, "clientContext: at most 256 characters" },
      { "recordResponse", { maxRecordDurationInSeconds = 121 }, "maxRecordDurationInSeconds: from 1 to 120" },
      { "recordResponse", { initialSilenceTimeoutInSeconds = 0 }, "initialSilenceTimeoutInSeconds: from 1 to 120" },
      { "transfer", { transferTarget = { identity = { phone = { id = "4255550100" } } } },
        "transferTarget.identity.phone.id: a phone number in E.164 form" },
    }
    for _, c in ipairs(cases) do
      local ok, err = bot.client:action(call.id, c[1], c[2])
      assert.is_nil(ok, c[1])
      assert.equal(400, err.status)
      assert.matches(c[3], err.message, 1, true)
    end
    local spec = pstn("+15550000001", "tenant-1")
    spec.source = nil
    local made, err = bot.client:create_call(spec)
    assert.is_nil(made)
    assert.matches("source.identity.applicationInstance", err.message, 1, true)
    spec = pstn("+1555", "tenant-1")
    made, err = bot.client:create_call(spec)
    assert.is_nil(made)
    assert.matches("targets[1].identity.phone.id: a phone number in E.164 form", err.message, 1, true)
    bot.client:hangup(call.id)
  end)

  it("takes as many calls of an app at once as its capacity (Graph: 100), then answers 429", function()
    local made = {}
    local err
    for i = 1, 4 do
      local call, e = bot.client:create_call(pstn("+1555000000" .. i, "tenant-1"))
      if call then made[#made + 1] = call else err = e end
    end
    assert.equal(3, #made)
    assert.equal(429, err.status)
    for _, c in ipairs(made) do bot.client:hangup(c.id) end
    assert.is_true(bot.wait(function()
      for _, c in ipairs(made) do if not bot.ended(c.id) then return false end end
      return true
    end))
    local again = assert(bot.client:create_call(pstn("+15550000001", "tenant-1")))   -- room again
    bot.client:hangup(again.id)
  end)

  it("writes empty collections as [] (Debian's lua-cjson has no array_mt; the emulator writes with graphcall's)",
     function()
    local call = assert(bot.client:create_call(pstn("+15550000008", "tenant-1")))   -- rings: nobody joined
    local res = raw("tenant-1", "GET", "/communications/calls/" .. call.id .. "/participants")
    assert.equal(200, res.status)
    assert.matches('"value":%[%]', res.body)
    res = raw("tenant-1", "GET", "/communications/calls/" .. call.id)
    assert.matches('"callRoutes":%[%]', res.body)
    assert.matches('"activeModalities":%[%]', res.body)
    bot.client:hangup(call.id)
  end)

  it("names the call and the action of each client-request-id it carried out", function()
    local call = assert(bot.client:create_call(pstn("+15550000001", "tenant-1")))
    local _, _, meta = bot.client:hangup(call.id)
    local reqs = bot.control("GET", "/emulator/requests")
    assert.same({ count = 1, action = "hangup", call = call.id }, reqs[meta.clientRequestId])
  end)
end)

describe("the library, fed Graph as Graph documents it", function()
  it("finishes an invitation whose completion has no id (participant-invite's example)", function()
    local invited
    local h = T.new { scenario = { peers = { ["+14255550123"] = { answer = 300 } } }, flow = function(call)
      call:answer()
      invited = { call:invite "+14255550123" }
      call:hangup()
    end }
    local v = h:incoming { caller = {} }
    assert.is_true(invited[1], invited[2] and tostring(invited[2]))
    assert.equal("terminated", v.state)
    h:close()
  end)

  it("plays and records with completions in the id form of their pages (upper case, no dashes)", function()
    local got
    local h = T.new { flow = function(call)
      call:answer()
      got = { play = call:play "Hello.", rec = call:record { maxDuration = 3 } }
      call:hangup()
    end }
    local v = h:incoming { caller = { { on = "record", after = 100, speak = 1000 } } }
    assert.is_true(got.play)
    assert.is_table(got.rec)
    assert.is_string(got.rec.path)
    assert.equal("terminated", v.state)
    assert.is_true(T.duration(v) < 60000)          -- no wait ran into its limit
    h:close()
  end)

  it("runs the established handlers once though mediaState updates say established again", function()
    local established, states = 0, 0
    local h = T.new { flow = function(call) call:answer() call:sleep(3000) call:hangup() end }
    h.bot:on("established", function() established = established + 1 end)
    h.bot:on("state", function() states = states + 1 end)
    h:incoming { caller = { { on = "established", after = 500, hold = 1000 } } }
    assert.equal(1, established)
    assert.is_true(states >= 3)                     -- the mediaState update, hold, established after hold
    h:close()
  end)

  it("tells a caller hanging up during a transfer from a transfer that went through", function()
    local got
    local h = T.new { scenario = { peers = { ["+14255550100"] = { answer = 2000 } } }, flow = function(call)
      call:answer()
      got = { call:transfer { to = "+14255550100" } }
    end }
    h:incoming { caller = { { on = "transferring", after = 100, hangup = true } } }
    assert.is_nil(got[1])
    assert.equal("hangup", got[2].code)
    assert.equal(540000, got[2].cause.subcode)
    h:close()
    h = T.new { scenario = { peers = { ["+14255550100"] = { answer = 200 } } }, flow = function(call)
      call:answer()
      got = { call:transfer { to = "+14255550100" } }
    end }
    local v = h:incoming { caller = {} }
    assert.is_true(got[1])
    assert.equal("+14255550100", v.transferred)
    h:close()
  end)
end)

describe("the emulator's realism", function()
  local function notified(v)
    local out = {}
    for _, l in ipairs(v.log) do if l.what == "notified" then out[#out + 1] = l.detail end end
    return out
  end

  local CALLERS = {
    { caller = { { on = "prompt", after = 1500, press = "1" } }, check = function(v) return v.transferred end },
    { caller = { { on = "prompt", after = 1000, press = "2" }, { on = "record", after = 300, speak = 2000 } },
      check = function(v)
        for _, l in ipairs(v.log) do if l.what == "recorded" then return true end end
      end },
    { caller = { { on = "prompt", after = 500, press = "3" }, { on = "promptEnd", after = 500, press = "1234#" } },
      check = function(v) return v.pressed == "31234#" end },
  }

  it("runs example (a) to the end its callers expect under several seeds, and under strict", function()
    local batched, swapped = 0, 0
    for _, realism in ipairs { "documented", "strict" } do
      for seed = 1, realism == "strict" and 1 or 6 do
        for i, c in ipairs(CALLERS) do
          local h = T.new { script = "examples/ivr.lua", realism = realism, seed = seed }
          local v = h:incoming { caller = c.caller }
          assert.equal("terminated", v.state, realism .. " seed " .. seed .. " caller " .. i)
          assert.truthy(c.check(v), realism .. " seed " .. seed .. " caller " .. i)
          assert.is_true(v.flow.finished)
          for _, d in ipairs(notified(v)) do
            if d:find("+", 1, true) then
              batched = batched + 1
              assert.equal("documented", realism)          -- strict sends one at a time
            end
          end
          local order = {}
          for _, d in ipairs(notified(v)) do
            for label in d:gmatch("[^+]+") do
              if label == "call:establishing" or label == "call:established" then order[#order + 1] = label end
            end
          end
          if order[1] == "call:established" then
            swapped = swapped + 1
            assert.equal("documented", realism)
          end
          h:close()
        end
      end
    end
    assert.is_true(batched > 0, "no POST carried several notifications")
    assert.is_true(swapped > 0, "established never came before establishing")
  end)

  it("makes the same choices from the same seed", function()
    local runs = {}
    for r = 1, 2 do
      local h = T.new { script = "examples/ivr.lua", seed = 42 }
      runs[r] = table.concat(notified(h:incoming { caller = CALLERS[1].caller }), ",")
      h:close()
    end
    assert.equal(runs[1], runs[2])
  end)

  it("loses notifications at the rate a scenario sets (loss)", function()
    local h = T.new { script = "examples/ivr.lua", scenario = { loss = 1 } }
    local call = h.emulator:place_incoming { webhook = h.bot.callbackUri, appId = "app-1", tenantId = "tenant-1",
                                             caller = {} }
    h:run_until(function() return call.state == "terminated" end)
    assert.equal("terminated", call.state)               -- nobody answered: the bot never heard of it
    assert.is_nil(h.bot.calls[call.id])
    assert.is_true(h.emulator.stats.notificationsDropped >= 1)
    h:close()
  end)
end)

describe("the webhook's own answers (Teams: incoming call notifications)", function()
  local CALLER = { { on = "prompt", after = 1500, press = "1" } }

  it("answers a notification in the legacy format 204, and takes it again in Graph's", function()
    local h = T.new { script = "examples/ivr.lua",
                      scenario = { faults = { { notification = "call:incoming", legacy = true } } } }
    local v = h:incoming { caller = CALLER }
    assert.equal("+14255550100", v.transferred)
    local answered
    for _, l in ipairs(v.log) do if l.what == "legacy answered 204" then answered = true end end
    assert.is_true(answered)
    assert.equal(1, h.bot.listener.stats.legacy)
    h:close()
  end)

  it("follows a 302 to the bot's deployment of the caller's region", function()
    local h = T.new { script = "examples/ivr.lua" }
    local hops = 0
    local front = assert(h.loop:listen({ port = 0 }, function(req)
      hops = hops + 1
      req:respond(302, { Location = h.bot.callbackUri })
    end))
    local v = h:incoming { caller = CALLER, webhook = "http://127.0.0.1:" .. front:port() .. "/callback" }
    assert.equal("+14255550100", v.transferred)
    assert.equal(1, hops)                 -- the answer's callbackUri takes the rest straight to the bot
    front:close()
    h:close()
  end)
end)
