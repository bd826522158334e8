-- Every notification example of Graph's calling pages that the fixtures carry (REFERENCE.md's
-- files and the Create call page's ten scenarios), POSTed to a bot's listener as the service
-- would send it, reaches the handler it should; an operation's completion reaches the flow step
-- that waits for it, also in the id form Graph's own pages write (upper case, no dashes).
local cjson = require "cjson"
local graphcall = require "graphcall"
local wire = require "graphcall.wire"
local H = require "helper"

-- the handler each example is for
local function expected(name)
  if name:find("incoming%-call") then return "incoming" end
  if name:find("tone%-received") then return "tone" end
  if name:find("roster") then return "roster" end
  if name:find("content%-sharing") then return "sharing" end
  -- (a failed transfer brings the call back: established again, with the resultInfo)
  if name:find("established") or name:find("transfer%-failed") then return "established" end
  if name:find("terminated") or name:find("deleted") or name:find("redirect") or name:find("transfer%-completed") then
    return "terminated"
  end
  if name:find("completed") or name:find("failed") and not name:find("transfer") or name:find("cancelled") then
    return "operation"
  end
  return "state"    -- establishing, terminating, transferring, transferAccepted
end

local function examples()
  local out = {}
  for _, name in ipairs(H.fixture_names("graph")) do
    if name:match("^notify%-") then out[#out + 1] = "graph/" .. name end
  end
  for _, ex in ipairs(H.seeds) do
    local p = io.popen("ls " .. H.fixtures .. "/seed/" .. ex)
    for name in p:lines() do if name:match("^notify%-") then out[#out + 1] = "seed/" .. ex .. "/" .. name end end
    p:close()
  end
  return out
end

local loop = graphcall.loop { log = false }
local client = graphcall.client { tenantId = "t", clientId = "app-1", clientSecret = "s",
                                  authority = "http://127.0.0.1:9", graphUrl = "http://127.0.0.1:9/v1.0", loop = loop }

local function new_bot()
  local got = { names = {}, events = {} }
  local bot = assert(graphcall.bot { client = client, verify = false, log = function() end })
  for _, n in ipairs { "incoming", "established", "tone", "roster", "operation", "terminated", "sharing", "state" } do
    bot:on(n, function(call, ev)
      got.names[#got.names + 1] = n
      got.events[#got.events + 1] = ev
      got.call = call
    end)
  end
  bot:start()
  return bot, got
end

local function post(bot, text)
  local res = assert(loop:fetch { method = "POST", url = bot.callbackUri, body = text,
                                  headers = { ["Content-Type"] = "application/json" } })
  return res.status
end

teardown(function() loop:close() end)

describe("every notification example of Graph's calling pages", function()
  for _, rel in ipairs(examples()) do
    local name = rel:match("[^/]+$")
    it(rel .. " reaches its " .. expected(name) .. " handler", function()
      local bot, got = new_bot()
      assert.equal(202, post(bot, H.fixture(rel)))
      assert.is_true(loop:run_until(function() return #got.names > 0 end, 3000), rel)
      assert.equal(expected(name), got.names[1], rel)
      local ev = got.events[1]
      assert.is_string(ev.callId)
      assert.equal(wire.id(ev.callId), ev.callId)      -- one form of each id
      bot:close()
    end)
  end
end)

describe("an operation's completion reaches the flow step that waits for it", function()
  local OPS = { "notify-playprompt-completed", "notify-playprompt-failed", "notify-recordresponse-completed",
                "notify-recordresponse-cancelled", "notify-senddtmftones-completed", "notify-invite-completed",
                "notify-holdmusic-completed" }
  for _, op in ipairs(OPS) do
    for _, form in ipairs { "as the fixture writes it", "in the id form of Graph's own pages" } do
      it(op .. ", " .. form, function()
        local doc = cjson.decode(H.fixture("graph/" .. op .. ".json"))
        local note = doc.value[1]
        local url = note.resourceUrl or note.resource
        local callId, opId = url:match("calls/([^/]+)/operations/([^/]+)$")
        local data = note.resourceData
        opId = data.id ~= cjson.null and data.id or opId
        if form ~= "as the fixture writes it" then
          local up = function(s) return (s:upper():gsub("%-", "")) end
          note.resourceUrl = "/communications/calls/" .. up(callId) .. "/operations/" .. up(opId)
          note.resource = nil
          data.id = nil
        end
        local bot = new_bot()
        local got
        bot:flow("waiter", function(call)
          got = { call:op_done({ id = opId, status = "running", clientContext = data.clientContext }, 60000) }
        end)
        assert.is_true(bot.runtime:start(wire.id(callId), { start = "waiter", tenant = "t" }))
        loop:run_until(function() return bot.calls[wire.id(callId)] ~= nil end, 1000)
        assert.equal(202, post(bot, cjson.encode(doc)))
        assert.is_true(loop:run_until(function() return got ~= nil end, 3000), op)
        local ev = got[1]
        assert.is_table(ev, got[2] and tostring(got[2]))
        assert.equal("operation", ev.kind)
        assert.equal(data.status:lower(), ev.status)
        assert.is_nil(ev.synthetic)
        bot:close()
      end)
    end
  end
end)
