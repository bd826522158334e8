--- The emulator's faults: rules a scenario (or `POST /emulator/faults`) adds, matched against
-- requests and notifications, and what a request fault does.
-- @module graphcall.emulator.faults
local Emulator = {}

-- ---- faults -----------------------------------------------------------------------------

--- Add a fault rule.
-- Requests: `{request = "POST /communications/calls", status = 429, retryAfter = 2}`,
-- `{request = "playPrompt", status = 503}`, `{request = ..., delay = ms}` (a slow answer),
-- `{request = ..., reset = true}` (the connection closes without an answer). `request` is an
-- action name ("playPrompt"), "token" for the token endpoint, or a Lua pattern that must
-- match the whole of "METHOD /path" (the path without `/v1.0`).
-- Notifications: `{notification = "call:established", drop = true}` (or `duplicate`,
-- `reorder`: held back and sent after the next one of its call, `badSignature`, `delay =
-- ms`, `legacy`: first in the legacy Skype format, again in Graph's once the bot answers
-- 204; a reordered one goes alone after `hold` ms, 1000, if no other comes); labels are
-- "call:<state>", "call:tone", "operation:<type>:<status>",
-- "participants", "contentSharing", and a rule matches a label or its prefix.
-- Both take `times` (how often it fires; 1 by default, 0 = always) and `skip` (matches to
-- let pass first).
function Emulator:add_fault(rule)
  local r = {}
  for k, v in pairs(rule) do r[k] = v end
  r.times = r.times or 1
  r.skip = r.skip or 0
  r.fired = 0
  self.faults[#self.faults + 1] = r
end

local function label_matches(label, p)
  return label == p or label:sub(1, #p + 1) == p .. ":"
end

function Emulator:_fault(kind, subject, action)
  for _, r in ipairs(self.faults) do
    local hit
    if kind == "request" and r.request then
      if r.request:match("^[%a.]+$") then hit = r.request == action   -- an action name, or "token"
      else hit = subject:match("^" .. r.request .. "$") ~= nil end
    elseif kind == "notification" and r.notification then
      hit = label_matches(subject, r.notification)
    end
    if hit and (r.times == 0 or r.fired < r.times) then
      if r.skip > 0 then
        r.skip = r.skip - 1
      else
        r.fired = r.fired + 1
        return r
      end
    end
  end
end

-- A request fault: answer with an error status, answer late, or drop the connection.
function Emulator:_apply_fault(req, f, proceed)
  if f.reset then return req:reset() end
  if f.status then
    local h = {}
    if f.retryAfter then h["Retry-After"] = tostring(f.retryAfter) end
    local code = f.code or (f.status == 429 and "TooManyRequests") or (f.status == 503 and "serviceNotAvailable")
      or (f.status == 504 and "GatewayTimeout") or "generalException"
    return self:_error(req, f.status, code, f.message or "Injected by the emulator's scenario.", h)
  end
  if f.delay then
    req:keep()
    return self.loop:timer(f.delay, proceed)  -- real milliseconds: a slow server, not emulated time
  end
  proceed()
end

return Emulator
