--- What the emulator checks in a request as the service would: strict JSON, Graph's schema,
-- the limits its pages document beyond the schema, and the calling roles a token carries.
-- @module graphcall.emulator.rules
local core = require "graphcall.core"
local strict = require "graphcall.strict"
local U = require "graphcall.emulator.util"

local null = U.null

local R = {}

local E164 = "^%+[1-9]%d%d%d%d%d%d+$"   -- +, then 7 to 15 digits (checked below)

-- Phone ids in a request, each with where it is.
local function phones(v, path, out)
  if type(v) ~= "table" then return out end
  if type(v.phone) == "table" and v.phone.id ~= nil then
    out[#out + 1] = { id = v.phone.id, at = path .. ".phone.id" }
  end
  for k, x in pairs(v) do
    if type(x) == "table" and k ~= "phone" then
      phones(x, path .. (type(k) == "number" and ("[" .. k .. "]") or ("." .. k)), out)
    end
  end
  return out
end

-- What the service documents beyond the schema (REFERENCE.md sections 1, 2, 5.2): nil, or why not.
local function limits(kind, doc)
  local ctx = doc.clientContext
  if type(ctx) == "string" and #ctx > 256 then
    return "clientContext: at most 256 characters (got " .. #ctx .. ")"
  end
  if kind == "recordResponse" then
    for _, k in ipairs { "initialSilenceTimeoutInSeconds", "maxSilenceTimeoutInSeconds",
                         "maxRecordDurationInSeconds" } do
      local v = doc[k]
      if v ~= nil and v ~= null and (type(v) ~= "number" or v < 1 or v > 120) then
        return k .. ": from 1 to 120 seconds (a recording is 2 minutes at most; got " .. tostring(v) .. ")"
      end
    end
  end
  for _, p in ipairs(phones(doc, kind, {})) do
    local id = p.id
    if type(id) ~= "string" or not id:match(E164) or #id > 16 then
      return p.at .. ": a phone number in E.164 form (+ and 8 to 15 digits; got " .. tostring(id) .. ")"
    end
  end
  if kind == "call" and #phones(doc.targets, "targets", {}) > 0 then
    local src = type(doc.source) == "table" and doc.source.identity
    if type(src) ~= "table" or type(src.applicationInstance) ~= "table" then
      return "source.identity.applicationInstance: a call to a phone number is made by an application instance with "
        .. "a number assigned"
    end
  end
end

--- Validate a body as the service would: strict JSON, Graph's schema, the documented limits.
-- @param kind the action ("call" for a new call)
-- @param body the request's body (text)
-- @return the decoded body, or nil and the service's message
function R.validate(kind, body)
  if kind == "keepAlive" then return {} end
  local doc
  if body == "" then
    doc = {}
  else
    local derr
    doc, derr = core.decode(body, 1048576)
    if doc == nil then return nil, "Unable to read JSON request payload: " .. tostring(derr and derr.message) end
  end
  if type(doc) ~= "table" then return nil, "the body is not a JSON object" end
  local ok, err = core.build(kind, doc)
  if not ok then return nil, tostring(err) end
  local why = limits(kind, doc)
  if why then return nil, why end
  return doc
end

--- The calling role a token must carry for a new call of this kind (REFERENCE.md section 6).
function R.role_for(doc)
  if type(doc.meetingInfo) == "table" then return "Calls.JoinGroupCall.All" end
  if type(doc.targets) == "table" and #doc.targets > 1 then return "Calls.InitiateGroupCall.All" end
  return "Calls.Initiate.All"
end

--- Whether a token's claims carry `role` (nil: any calling role).
function R.has_role(claims, role)
  for _, r in ipairs(type(claims.roles) == "table" and claims.roles or {}) do
    if r == role or (role == nil and type(r) == "string" and r:match("^Calls%.")) then return true end
  end
  return false
end

-- ---- scenarios: what a user writes, checked before anything runs ------------------------

local SCENARIO = { "peers", "incoming", "meeting", "faults", "credentials", "certificates", "consent", "capacity",
  "loss",
  "realism", "seed", "speed", "tokenLifetime", "keepAliveTimeout", "latency", "drive", "freshCallbacks",
  "webhookTimeout", "swapEstablished", "webhook", "appId", "tenantId", "caller", "establishDelay", "load" }
local PEER = { "answer", "outcome", "after", "ringTimeout", "resultInfo", "swapEstablished" }
local STEP = { "on", "after", "press", "interDigit", "speak", "hold", "hangup" }
local EVENTS = { "established", "prompt", "promptEnd", "record", "tones", "transferring", "now" }
local OUTCOMES = { "busy", "declined", "timeout" }
local INCOMING = { "after", "webhook", "appId", "tenantId", "from", "to", "caller", "answerBy" }
local MEETING = { "attendees", "share", "peer" }
local ATTENDEE = { "name", "id", "join", "leave" }
local SHARE = { "start", "stop", "update" }
local LOAD = { "webhook", "appId", "tenantId", "answerBy", "callers" }
local KIND = { "name", "weight", "from", "caller", "expect" }
local EXPECT = { "pressed", "transferred", "recordings", "prompts", "answered", "hangup" }
local FAULT = { "request", "notification", "status", "retryAfter", "delay", "reset", "drop", "duplicate",
  "reorder", "hold", "badSignature", "legacy", "times", "skip", "code", "message" }

local function member(v, list)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- keys of t that are not array items, checked against known
local function keys(t, known, where)
  if type(t) ~= "table" then strict.fail(string.format("%s: a table, got %s", where, type(t))) end
  local set = {}
  for _, k in ipairs(known) do set[k] = true end
  for k in pairs(t) do
    if type(k) ~= "number" and not set[k] then strict.fail(strict.unknown(where, k, known)) end
  end
end

--- A peer's or a caller's script: its own fields and its steps in order.
-- @param s the script
-- @param where its place, for the message ("scenario.peers[\"+1...\"]")
function R.script(s, where)
  keys(s, PEER, where)
  if s.outcome ~= nil and not member(s.outcome, OUTCOMES) then
    local hint = strict.closest(s.outcome, OUTCOMES)
    strict.fail(string.format("%s.outcome: '%s' is none of %s%s", where, tostring(s.outcome),
      table.concat(OUTCOMES, ", "), hint and (" (did you mean '" .. hint .. "'?)") or ""))
  end
  for i, step in ipairs(s) do
    local at = string.format("%s[%d]", where, i)
    keys(step, STEP, at)
    if step.on ~= nil and not member(step.on, EVENTS) then
      local hint = strict.closest(step.on, EVENTS)
      strict.fail(string.format("%s.on: unknown event '%s'%s", at, tostring(step.on),
        hint and (" (did you mean '" .. hint .. "'?)") or (" (one of " .. table.concat(EVENTS, ", ") .. ")")))
    end
    if step.press ~= nil and (type(step.press) ~= "string" or step.press:find("[^0-9*#A-Da-d]")) then
      strict.fail(string.format("%s.press: keys to press, 0-9 * # A-D (got %s)", at, tostring(step.press)))
    end
  end
end

--- An incoming call to place (`place_incoming`, `POST /emulator/incoming`, `incoming` of a scenario).
function R.incoming(inc, where)
  keys(inc, INCOMING, where)
  if inc.caller ~= nil then R.script(inc.caller, where .. ".caller") end
end

--- A fault rule.
function R.fault(f, where)
  keys(f, FAULT, where)
  if f.request == nil and f.notification == nil then
    strict.fail(where .. ": a fault names a request or a notification it applies to")
  end
end

--- The callers of a load test (`graphcall emulate --load`): each kind's name, weight, caller
-- script and what its call must come to (`expect`).
function R.load(l, where)
  keys(l, LOAD, where)
  if type(l.callers) ~= "table" or #l.callers == 0 then
    strict.fail(where .. ".callers: a list of kinds of caller ({name =, caller = {steps}, expect = {...}})")
  end
  for i, k in ipairs(l.callers) do
    local at = string.format("%s.callers[%d]", where, i)
    keys(k, KIND, at)
    if type(k.name) ~= "string" then strict.fail(at .. ".name: a name for this kind of caller") end
    if k.weight ~= nil and (type(k.weight) ~= "number" or k.weight < 1 or k.weight % 1 ~= 0) then
      strict.fail(at .. ".weight: a whole number, 1 or more (got " .. tostring(k.weight) .. ")")
    end
    if k.caller ~= nil then R.script(k.caller, at .. ".caller") end
    if k.expect ~= nil then keys(k.expect, EXPECT, at .. ".expect") end
  end
end

--- A whole scenario: every key known, every script, step, incoming call and fault checked;
-- raises at the user's line with the place of the mistake.
function R.scenario(sc, where)
  where = where or "scenario"
  keys(sc, SCENARIO, where)
  for k, p in pairs(sc.peers or {}) do R.script(p, string.format("%s.peers[%q]", where, tostring(k))) end
  for i, inc in ipairs(sc.incoming or {}) do R.incoming(inc, string.format("%s.incoming[%d]", where, i)) end
  if sc.caller ~= nil then R.script(sc.caller, where .. ".caller") end
  if sc.load ~= nil then R.load(sc.load, where .. ".load") end
  for i, f in ipairs(sc.faults or {}) do R.fault(f, string.format("%s.faults[%d]", where, i)) end
  local m = sc.meeting
  if m ~= nil then
    keys(m, MEETING, where .. ".meeting")
    for i, a in ipairs(m.attendees or {}) do keys(a, ATTENDEE, string.format("%s.meeting.attendees[%d]", where, i)) end
    if m.share ~= nil then keys(m.share, SHARE, where .. ".meeting.share") end
    if m.peer ~= nil then R.script(m.peer, where .. ".meeting.peer") end
  end
  for app, list in pairs(sc.certificates or {}) do
    local at = string.format("%s.certificates[%q]", where, tostring(app))
    if type(app) ~= "string" or type(list) ~= "table" then
      strict.fail(at .. ": an app id and a list of PEM certificates")
    end
    for i, pem in ipairs(list) do
      local ok, why = core.x509_thumbprints(type(pem) == "string" and pem or "")
      if not ok then strict.fail(string.format("%s[%d]: %s", at, i, why)) end
    end
  end
  if sc.realism ~= nil and sc.realism ~= "documented" and sc.realism ~= "strict" then
    strict.fail(where .. ".realism: \"documented\" or \"strict\", got " .. tostring(sc.realism))
  end
end

return R
