--- The emulator's control API for tests and tools (`/emulator/...`): place incoming calls,
-- read calls (one, all, or counted) and requests, add faults, rotate keys, stats.
-- @module graphcall.emulator.control
local core = require "graphcall.core"
local wav = require "graphcall.wav"
local U = require "graphcall.emulator.util"
local rules = require "graphcall.emulator.rules"

local array = U.array

local Emulator = {}

--- A view of a call for tests and the trace (`GET /emulator/calls/{id}`, the harness): `id`,
-- `state`, `direction`, `log` (`{t =, what =, detail =}`, t in ms since the call began),
-- what the other side saw: `pressed` (the keys, a string), `prompts` (what played, `played`),
-- `recordings` (`{at =, ms =, completionReason =, recordingLocation =}`), `transferred` (the
-- target's id, absent when there was no transfer), `resultInfo` (absent while the call is on),
-- and `requests`: every request the bot made on the call, refused ones included (`{at =,
-- method =, path =, action =, status =, error = {code =, message =}}`).
function Emulator:call_view(call)
  return { id = call.id, state = call.state, direction = call.direction, log = call.log,
    pressed = call.pressed, prompts = array(self:played(call)), recordings = array(call.recordings),
    requests = array(call.requests), transferred = call.transferred, resultInfo = call.resultInfo,
    notifications = #call.log }
end

function Emulator:_control(req, method, path, body)
  if path == "/emulator/stats" then
    collectgarbage()
    local repeats = 0
    for _, n in pairs(self.byRequestId) do if n > 1 then repeats = repeats + n - 1 end end
    local fired = 0
    for _, r in ipairs(self.faults) do fired = fired + r.fired end
    local s = { calls = self.ncalls, open = self.open, memoryKB = collectgarbage("count"),
                repeatedRequestIds = repeats, faultsFired = fired }
    for k, v in pairs(self.stats) do s[k] = v end
    return self:_reply(req, 200, s)
  end
  if path == "/emulator/incoming" and method == "POST" then
    local doc = core.decode(body ~= "" and body or "{}")
    if type(doc) ~= "table" or type(doc.webhook or self.scenario.webhook) ~= "string" then
      return self:_error(req, 400, "BadRequest", "webhook is required")
    end
    local ok, call = pcall(self.place_incoming, self, doc)
    if not ok then return self:_error(req, 400, "BadRequest", (tostring(call):gsub("^[^:]*:%d+: ", ""))) end
    return self:_reply(req, 201, { id = call.id })
  end
  if path == "/emulator/callback-token" and method == "POST" then   -- for load generators
    local doc = core.decode(body ~= "" and body or "{}")
    if type(doc) ~= "table" or type(doc.appId) ~= "string" then
      return self:_error(req, 400, "BadRequest", "appId is required")
    end
    return self:_reply(req, 200, { token = self:_callback_token({ appId = doc.appId,
      tenantId = doc.tenantId or self.scenario.tenantId or "tenant-1" }) })
  end
  if path == "/emulator/certificates" and method == "POST" then   -- certificate credentials of an app
    local doc = core.decode(body ~= "" and body or "{}")
    if type(doc) ~= "table" or type(doc.appId) ~= "string" or type(doc.certificate) ~= "string" then
      return self:_error(req, 400, "BadRequest", "appId and certificate (PEM) are required")
    end
    local sha1, why = self:register_certificate(doc.appId, doc.certificate)
    if not sha1 then return self:_error(req, 400, "BadRequest", "certificate: " .. why) end
    return self:_reply(req, 201, { appId = doc.appId, thumbprint = sha1 })
  end
  if path == "/emulator/rotate-keys" and method == "POST" then
    return self:_reply(req, 200, { kid = self:rotate_keys() })
  end
  if path == "/emulator/faults" and method == "POST" then
    local doc = core.decode(body)
    if type(doc) ~= "table" then return self:_error(req, 400, "BadRequest", "a JSON array of rules") end
    for i, r in ipairs(doc) do
      local ok, e = pcall(rules.fault, r, "faults[" .. i .. "]")
      if not ok then return self:_error(req, 400, "BadRequest", (tostring(e):gsub("^[^:]*:%d+: ", ""))) end
    end
    for _, r in ipairs(doc) do self:add_fault(r) end
    return self:_reply(req, 200, { faults = #self.faults })
  end
  if path == "/emulator/requests" then   -- by client-request-id: how often, what, on which call
    local out = {}
    for crid, n in pairs(self.byRequestId) do
      local info = self.requestInfo[crid] or {}
      out[crid] = { count = n, action = info.action, call = info.call }
    end
    return self:_reply(req, 200, out)
  end
  local rid = path:match("^/emulator/recordings/([%w%-]+)$")
  if rid then
    local r = self.recordings[rid]
    local auth = req:header("Authorization") or ""
    if not r then return self:_error(req, 404, "itemNotFound", "No such recording.") end
    if auth ~= "Bearer " .. r.token then
      return self:_error(req, 401, "Unauthorized", "recordingAccessToken required")
    end
    -- what was "said", made when first asked for, once per length (to the 100 ms): making a
    -- WAV in Lua costs, and thousands of calls record at once in a load test
    local bytes = self.toneCache[r.ms]
    if not bytes then
      bytes = wav.tone { ms = r.ms, hz = 220 }
      self.toneCache[r.ms] = bytes
    end
    return self:_reply(req, 200, bytes, { ["Content-Type"] = "application/octet-stream" })
  end
  if path == "/emulator/summary" and method == "GET" then   -- counts only: cheap with 10,000 calls
    local s = { calls = 0, states = U.object(), prompted = 0, pressed = 0, recorded = 0 }
    for _, call in pairs(self.calls) do
      s.calls = s.calls + 1
      s.states[call.state] = (s.states[call.state] or 0) + 1
      if call.pressed ~= "" then s.pressed = s.pressed + 1 end
      if #call.recordings > 0 then s.recorded = s.recorded + 1 end
      if call.prompts[1] and #self:played(call) > 0 then s.prompted = s.prompted + 1 end
    end
    return self:_reply(req, 200, s)
  end
  if path == "/emulator/calls" and method == "GET" then   -- every call, without its log
    local out = {}
    for _, call in pairs(self.calls) do
      local v = self:call_view(call)
      v.log = nil
      out[#out + 1] = v
    end
    table.sort(out, function(a, b) return a.id < b.id end)
    return self:_reply(req, 200, { calls = out })
  end
  local cid, verb = path:match("^/emulator/calls/([^/]+)/?(%a*)$")
  if cid then
    local call = self.calls[cid]
    if not call then return self:_error(req, 404, "itemNotFound", "No such call.") end
    if verb == "" then return self:_reply(req, 200, self:call_view(call)) end
    if verb == "hangup" and method == "POST" then
      self:_peer_act(call, { hangup = true })
      return self:_reply(req, 200, { state = call.state })
    end
    if verb == "press" and method == "POST" then
      local doc = core.decode(body)
      self:press(call, type(doc) == "table" and doc.tones or "")
      return self:_reply(req, 200, {})
    end
  end
  self:_error(req, 404, "itemNotFound", "Unknown emulator endpoint.")
end

return Emulator
