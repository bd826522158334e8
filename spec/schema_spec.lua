-- What the emulator sends (every notification and every Graph answer of the examples' calls and
-- of a flow that uses the other actions), read back from JSON and checked against Graph's v1.0
-- schema (core.check): no property the metadata does not declare, every enum member known
-- (in any letter case: the metadata writes "Completed", the service "completed").
local core = require "graphcall.core"
local wire = require "graphcall.wire"
local T = require "graphcall.test"

-- the envelope of a notification: what commsNotification declares, and the extras Graph's
-- pages show on it (resourceData, the legacy resource, a callbackUri)
local EXTRAS = { resourceData = true, resource = true, callbackUri = true }

-- Not declared by the v1.0 metadata, yet on Graph's own v1.0 payloads (its types are open;
-- REFERENCE.md 0.5): found by checking every payload of the reference fixtures (the create-call
-- examples' responses, the notifications and operations of the other pages). The emulator may
-- send these because Graph's pages show them, and nothing else the metadata does not declare.
local H = require "helper"
local DOCUMENTED = { ["deltaParticipants.participants"] = "a navigation property of deltaParticipants" }

-- remove what `path` ("a.b[2].c") names from v
local function remove(v, path)
  local parent, key = v, nil
  for part in path:gmatch("[^%.]+") do
    local name, idx = part:match("^([^%[]*)%[(%d+)%]$")
    if key ~= nil then parent = parent[key] end
    if type(parent) ~= "table" then return false end
    if name then
      if name ~= "" then parent = parent[name] end
      if type(parent) ~= "table" then return false end
      key = tonumber(idx)
    else
      key = part
    end
  end
  if type(parent) == "table" and key ~= nil and parent[key] ~= nil then parent[key] = nil return true end
  return false
end

local function learn(kind, v, from)
  for _ = 1, 100 do
    local ok, err = core.check(kind, v)
    if ok then return end
    local t = err.message:match("is not a property of (%w+)")
    local prop = err.path:match("([^%.%]]+)$")
    if not (t and prop and remove(v, err.path)) then return end
    DOCUMENTED[t .. "." .. prop] = from
  end
end

local function typed_items(v, fn)
  if type(v) ~= "table" then return end
  for _, it in ipairs(v[1] and v or { v }) do
    local t = type(it) == "table" and it["@odata.type"]
    if type(t) == "string" then fn(t:gsub("^#microsoft%.graph%.", ""), it) end
  end
end

for _, dir in ipairs { "graph" } do
  for _, name in ipairs(H.fixture_names(dir)) do
    local doc = core.decode(H.fixture(dir .. "/" .. name))
    if type(doc) == "table" then
      if type(doc.value) == "table" then
        for _, note in ipairs(doc.value) do typed_items(note.resourceData, function(t, it) learn(t, it, name) end) end
      else
        typed_items(doc, function(t, it) learn(t, it, name) end)
      end
    end
  end
end
for _, ex in ipairs(H.seeds) do
  typed_items(core.decode(H.fixture("seed/" .. ex .. "/response.json")), function(t, it)
    learn(t, it, ex .. "/response.json")
  end)
end

local function without_documented(v)
  if type(v) ~= "table" then return v end
  local t = type(v["@odata.type"]) == "string" and v["@odata.type"]:gsub("^#microsoft%.graph%.", "")
  local out = {}
  for k, x in pairs(v) do
    if not (t and DOCUMENTED[t .. "." .. tostring(k)]) then out[k] = without_documented(x) end
  end
  if t == "deltaParticipants" and type(v.participants) == "table" then   -- checked as participants
    out.participants = nil
  end
  return out
end

local function check_resource(what, v, problems)
  if type(v) ~= "table" then return end
  if type(v.participants) == "table" and v["@odata.type"] == "#microsoft.graph.deltaParticipants" then
    check_resource(what .. ".participants", v.participants, problems)
  end
  v = without_documented(v)
  local items = v[1] and v or { v }
  for i, it in ipairs(items) do
    local t = type(it) == "table" and it["@odata.type"]
    if type(t) ~= "string" then
      problems[#problems + 1] = what .. "[" .. i .. "]: no @odata.type"
    else
      local ok, err = core.check(t:gsub("^#microsoft%.graph%.", ""), it)
      if not ok then problems[#problems + 1] = what .. " " .. t .. ": " .. tostring(err) end
    end
  end
end

local function watch(h, seen)
  local emu = h.emulator
  local deliver, reply = emu._deliver, emu._reply
  emu._deliver = function(self, call, value, ...)
    seen.notifications[#seen.notifications + 1] = core.decode(wire.json(value))
    return deliver(self, call, value, ...)
  end
  emu._reply = function(self, req, status, body, headers)
    if type(body) == "table" then seen.answers[#seen.answers + 1] = core.decode(wire.json(body)) end
    return reply(self, req, status, body, headers)
  end
end

local function run_all()
  local seen = { notifications = {}, answers = {} }
  local function with(o, go)
    local h = T.new(o)
    watch(h, seen)
    go(h)
    h:close()
  end
  for _, caller in ipairs {
    { { on = "prompt", after = 1500, press = "1" } },
    { { on = "prompt", after = 1000, press = "2" }, { on = "record", after = 300, speak = 1500 } },
    { { on = "prompt", after = 500, press = "3" }, { on = "promptEnd", after = 500, press = "1234#" } },
    { { on = "established", after = 500, hold = 800 }, { on = "prompt", after = 800, hangup = true } },
  } do
    with({ script = "examples/ivr.lua" }, function(h) h:incoming { caller = caller } end)
  end
  for _, ex in ipairs { "notify", "meeting", "group" } do
    with({ script = "examples/" .. ex .. ".lua" }, function(h) h:finish_all() end)
  end
  with({ scenario = { peers = { ["+14255550123"] = { answer = 200 } } }, flow = function(call)
    call:answer()
    call:invite "+14255550123"
    call:send_tones "12#"
    call:request("mute", {})
    call:request("unmute", {})
    call:request("updateRecordingStatus", { status = "recording" })
    local ps = assert(call.bot.client:list_participants(call.id))
    if ps[1] then call.bot.client:get_participant(call.id, ps[1].id) end
    call.bot.client:get_call(call.id)
    call:hangup()
  end }, function(h) h:incoming { caller = {} } end)
  return seen
end

describe("what the emulator sends, against Graph's v1.0 schema", function()
  local seen
  setup(function() seen = run_all() end)

  it("notifications: envelopes and resources declared, enums known", function()
    local problems, n = {}, 0
    for _, value in ipairs(seen.notifications) do
      for _, note in ipairs(value) do
        n = n + 1
        local envelope = {}
        for k, v in pairs(note) do if not EXTRAS[k] then envelope[k] = v end end
        local ok, err = core.check("commsNotification", envelope)
        if not ok then problems[#problems + 1] = "envelope: " .. tostring(err) end
        check_resource(tostring(note.resourceUrl), note.resourceData, problems)
      end
    end
    assert.is_true(n >= 60, n .. " notifications")
    assert.same({}, problems)
  end)

  it("knows the undeclared properties Graph's own payloads carry, and catches any other", function()
    assert.truthy(DOCUMENTED["call.terminationReason"])
    assert.truthy(DOCUMENTED["recordOperation.completionReason"])
    local problems = {}
    local note = seen.notifications[1][1]
    local call = {}
    for k, v in pairs(note.resourceData) do call[k] = v end
    call.stateOfMind = "calm"
    check_resource("a made-up property", call, problems)
    assert.equal(1, #problems)
    assert.matches("stateOfMind: is not a property of call", problems[1])
    problems = {}
    check_resource("a made-up enum member", { ["@odata.type"] = "#microsoft.graph.call", state = "dancing" }, problems)
    assert.matches("'dancing' is not a callState", problems[1])
  end)

  it("Graph's answers: calls, operations, participants", function()
    local problems, n = {}, 0
    for _, body in ipairs(seen.answers) do
      if body["@odata.type"] then
        n = n + 1
        check_resource("answer", body, problems)
      elseif type(body.value) == "table" and not body.error then   -- a collection
        n = n + 1
        check_resource("answer.value", body.value, problems)
      end
    end
    assert.is_true(n >= 20, n .. " answers")
    assert.same({}, problems)
  end)
end)
