--- The emulator's calls: their state machine, the notifications it POSTs to each call's
-- callbackUri (signed, in order per call unless a fault says otherwise), ringing and answering.
-- @module graphcall.emulator.calls
local core = require "graphcall.core"
local U = require "graphcall.emulator.util"

local json, array, typed, result_info = U.json, U.array, U.typed, U.result_info
local alive, call_url, CALLBACK_ISS = U.alive, U.call_url, U.CALLBACK_ISS

local Emulator = {}

-- ---- calls: state and notifications -----------------------------------------------------


-- Sign (cached a few minutes per audience and tenant) the callback token.
function Emulator:_callback_token(call, bad)
  local key = call.appId .. "|" .. call.tenantId .. (bad and "|bad" or "")
  local c = self.sigCache[key]
  local now = os.time()
  if c and c.exp - now > 600 then return c.token end
  local exp = now + 3600
  local token = (bad and self.badKey or self.callbackKey):sign(
    json { alg = "RS256", typ = "JWT", kid = self.callbackKid },
    json { aud = call.appId, iss = CALLBACK_ISS, iat = now, nbf = now, exp = exp, tid = call.tenantId })
  self.sigCache[key] = { token = token, exp = exp }
  return token
end

--- True with probability p, from the emulator's own seeded generator under the documented
-- realism (never under `strict`): what Graph documents that it may do.
function Emulator:_chance(p)
  if self.realism == "strict" then return false end
  -- Park and Miller's minimal standard generator: exact in doubles on every Lua
  self.rng = self.rng * 16807 % 2147483647
  return self.rng / 2147483647 < p
end

function Emulator:_log(call, what, detail)
  call.log[#call.log + 1] = { t = math.floor(self:now() - call.started), what = what, detail = detail }
end

-- Deliver notifications to the call's callbackUri, in order: a POST waits for the one before
-- it to be answered (the bot sees a call's notifications in the order they were made, unless
-- a fault reorders them). `value` is the notifications of one POST; with the documented
-- realism, what waits to be sent may go together in one POST, as Graph batches them.
function Emulator:_deliver(call, value, label, bad, legacy)
  local q = call.outbox
  q[#q + 1] = { value = value, label = label, bad = bad, legacy = legacy }
  if call.sending then return end
  local send_next
  local function post(item, uri, hops)
    local body = item.legacy and json(item.legacy)
      or json { ["@odata.type"] = "#microsoft.graph.commsNotifications", value = item.value }
    self.loop:request({
      -- the service waits about 5 s for a webhook's answer (comms-samples #191)
      method = "POST", url = uri, body = body, timeout = self.scenario.webhookTimeout or 5000,
      connect_timeout = 5000,
      cafile = self.caFile, fresh = self.scenario.freshCallbacks,
      headers = { ["Content-Type"] = "application/json; charset=utf-8",
                  Authorization = "Bearer " .. self:_callback_token(call, item.bad),
                  ["User-Agent"] = "Microsoft-Skype/3.0,(Calling/1.0)",
                  ["Scenario-ID"] = call.callChainId,
                  ["X-Microsoft-Skype-Chain-ID"] = call.callChainId },
    }, function(res, err)
      local to = res and res.status == 302 and res:header("Location")
      if to and hops < 3 then   -- the bot sends it to a deployment of its region (Teams docs)
        self:_log(call, "redirected by the bot", item.label .. " to " .. to)
        return post(item, to, hops + 1)
      end
      if item.legacy and res and res.status == 204 then
        -- the bot asks for Graph's format: the same notification again, in it
        self:_log(call, "legacy answered 204", item.label)
        return post({ value = item.value, label = item.label }, uri, hops)
      end
      if res and res.status >= 200 and res.status < 300 then
        self.stats.notificationsSent = self.stats.notificationsSent + 1
        self:_log(call, "notified", item.label)
      else
        self.stats.notificationsFailed = self.stats.notificationsFailed + 1
        local why = res and ("HTTP " .. res.status) or (err.code .. ": " .. err.message)
        self:_log(call, "notify failed", item.label .. " (" .. why .. ")")
        self.log("warn", string.format("call %s: callback %s to %s failed: %s", call.id, item.label, uri, why))
        if call.incomingPending and item.label:find("call:incoming", 1, true) == 1 then
          self:_end(call, 480, 10076, "Callee could not be reached.", true)
        end
      end
      send_next()
    end)
  end
  send_next = function()
    local item = table.remove(q, 1)
    if not item then
      call.sending = false
      return
    end
    call.sending = true
    if not item.bad and not item.legacy and q[1] and not q[1].bad and not q[1].legacy and self:_chance(0.5) then
      local all, labels = {}, { item.label }
      for _, v in ipairs(item.value) do all[#all + 1] = v end
      while q[1] and not q[1].bad and #all < 8 do
        local nxt = table.remove(q, 1)
        for _, v in ipairs(nxt.value) do all[#all + 1] = v end
        labels[#labels + 1] = nxt.label
      end
      item = { value = all, label = table.concat(labels, "+"), batch = labels }
    end
    post(item, call.callbackUri, 0)
  end
  send_next()
end

-- The legacy (Skype) form of a call notification, which a bot answers 204 to have it again in
-- Graph's (Teams docs, "Incoming call notifications"): the conversation as the Skype bot
-- calling API sent it. Only its being no commsNotifications is documented; its fields are
-- those of that API.
local function legacy_form(call)
  return { id = call.id, isMultiparty = false, presentedModalityTypes = array { "audio" },
           callState = call.state, participants = array { { originator = true, identity = "caller" },
                                                          { originator = false, identity = call.appId } } }
end

-- Make and send a notification (with the faults that match it). items: an array of
-- {changeType =, rest = "/operations/x" or nil, data = resourceData}; label names it for the
-- log and the fault rules.
function Emulator:_notify(call, items, label)
  if not call.callbackUri then return end
  local value = {}
  for i, it in ipairs(items) do
    local url = it.url or (call_url(call.id) .. (it.rest or ""))
    value[i] = { ["@odata.type"] = "#microsoft.graph.commsNotification", changeType = it.changeType,
                 resource = not it.url and ("/app/calls/" .. call.id .. (it.rest or "")) or nil, resourceUrl = url,
                 resourceData = it.data }
  end
  local body = value
  self:_log(call, "notify", label)
  local f = self:_fault("notification", label)
  if not f and self.loss > 0 and self:_chance(self.loss) then f = { drop = true } end   -- the service loses some
  if f then self:_log(call, "fault", label .. " " .. (f.drop and "dropped" or f.duplicate and "duplicated"
    or f.reorder and "reordered" or f.badSignature and "bad signature" or f.legacy and "legacy format first"
    or "delayed")) end
  if f and f.drop then
    self.stats.notificationsDropped = self.stats.notificationsDropped + 1
    return
  end
  if f and f.delay then
    return self:after(f.delay, function() self:_deliver(call, body, label) end)
  end
  if f and f.reorder then
    -- late, not lost: behind the call's next notification, or on its own after a while
    local h = { body = body, label = label }
    call.held = h
    self:after(f.hold or 1000, function()
      if call.held == h then
        call.held = nil
        self:_deliver(call, h.body, h.label)
      end
    end)
    return
  end
  self:_deliver(call, body, label, f and f.badSignature, f and f.legacy and legacy_form(call) or nil)
  if f and f.duplicate then self:_deliver(call, body, label) end
  if call.held then
    local h = call.held
    call.held = nil
    self:_deliver(call, h.body, h.label)
  end
end

function Emulator:_call_data(call, extra)
  local d = typed("call", { ["@odata.id"] = call_url(call.id) })
  for k, v in pairs(extra or {}) do d[k] = v end
  return d
end

function Emulator:_set_state(call, state, extra, changeType)
  call.state = state
  local data = self:_call_data(call, extra)
  data.state = state
  self:_notify(call, { { changeType = changeType or "updated", data = data } }, "call:" .. state)
end

-- The call ends: state terminated, the `deleted` notification, timers stopped.
function Emulator:_end(call, code, subcode, message, quiet)
  if call.state == "terminated" then return end
  call.state = "terminated"
  call.ended = self:now()
  call.resultInfo = code and result_info(code, subcode, message) or nil
  for _, op in pairs(call.ops) do
    if op.status == "running" or op.status == "notStarted" then op.status, op.ended = "failed", self:now() end
  end
  call.media = {}
  if call.keepAliveTimer then call.keepAliveTimer:cancel() end
  self:_closed(call)
  self:_log(call, "ended", code and (code .. "/" .. subcode .. " " .. message) or "")
  if not quiet then
    self:_notify(call, { { changeType = "deleted", data = self:_call_data(call, {
      state = "terminated", resultInfo = call.resultInfo }) } }, "call:terminated")
  end
  -- keep the record a while for GET /emulator/calls/{id}; Graph itself answers 404 now
  self:after(600000, function() self.calls[call.id] = nil end)
end

-- ---- establishing a call ----------------------------------------------------------------

-- `establishing` goes out when signalling starts (after create, or after answer); with the
-- scenario's (or the peer's) swapEstablished it is held back and sent after `established` (the service may
-- deliver the two in either order, REFERENCE.md §1.1).
function Emulator:_establishing(call)
  if alive(call) and not call.swap then self:_set_state(call, "establishing") end
end

-- The call's media state changed: an update that carries the call's state again (a bot must
-- not take it for a new state).
function Emulator:_media_state(call, audio)
  local d = self:_call_data(call, { state = call.state, mediaState = typed("callMediaState", { audio = audio }) })
  self:_notify(call, { { changeType = "updated", data = d } }, "call:mediaState")
end

function Emulator:_established(call, delay)
  if not alive(call) then return end
  local swap = call.swap
  self:after(delay or 0, function()
    if not alive(call) then return end
    self:_set_state(call, "established")
    if swap then self:_set_state(call, "establishing") call.state = "established" end
    self:_media_state(call, "active")
    self:_log(call, "established")
    self:_arm_keepalive(call)
    if call.group then
      self:_join(call, { kind = "application", identityId = call.appId, name = "Bot", id = call.myParticipantId })
      for _, a in ipairs(call.attendees) do
        if (a.join or 0) <= 0 then self:_join(call, a)
        else self:after(a.join, function() if alive(call) then self:_join(call, a) end end) end
        if a.leave then self:after(a.leave, function() if alive(call) then self:_leave(call, a) end end) end
      end
      local share = self.scenario.meeting and self.scenario.meeting.share
      if share and call.sharing then self:_share(call, share) end
    end
    self:_peer_event(call, "established")
  end)
end

function Emulator:_share(call, share)
  local sid = core.uuid():gsub("-", ""):upper()
  local function send(changeType)
    self:_notify(call, { { changeType = changeType, rest = "/contentsharingsessions",
      data = array { typed("contentSharingSession", { id = sid }) } } }, "contentSharing")
  end
  self:after(share.start or 100, function() if alive(call) then send("created") end end)
  if share.update then self:after(share.update, function() if alive(call) then send("updated") end end) end
  if share.stop then self:after(share.stop, function() if alive(call) then send("deleted") end end) end
end

function Emulator:_arm_keepalive(call)
  if call.keepAliveTimer then call.keepAliveTimer:cancel() end
  call.keepAliveTimer = self:after((self.scenario.keepAliveTimeout or 45 * 60) * 1000, function()
    if alive(call) then
      self:_log(call, "keepAlive timeout")
      self:_end(call, 408, 8537, "Call was terminated because of keep alive timeout.")
    end
  end)
end

local OUTCOMES = {
  busy = { 486, 0, "The callee is busy." },
  declined = { 603, 0, "The callee declined the call." },
  timeout = { 480, 10076, "Callee could not be reached." },
}

-- The peer's side of ringing: answer, or end the call with the right outcome.
function Emulator:_ring(call, script)
  if script.answer == false or script.outcome then
    local out = OUTCOMES[script.outcome or "timeout"] or OUTCOMES.timeout
    local ri = script.resultInfo
    local wait
    if (script.outcome or "timeout") == "timeout" then wait = script.ringTimeout or 30000
    else wait = script.after or 1000 end
    self:after(wait, function()
      if alive(call) then
        self:_end(call, ri and ri.code or out[1], ri and ri.subcode or out[2], ri and ri.message or out[3])
      end
    end)
    return
  end
  self:after(script.answer or 300, function()
    if alive(call) then self:_established(call) end
  end)
end

-- A call begins or ends: the open calls, in all and by application.
function Emulator:_opened(call)
  self.open = self.open + 1
  self.liveByApp[call.appId or ""] = (self.liveByApp[call.appId or ""] or 0) + 1
end

function Emulator:_closed(call)
  self.open = self.open - 1
  self.liveByApp[call.appId or ""] = (self.liveByApp[call.appId or ""] or 1) - 1
end

function Emulator:_new_call(fields)
  local call = {
    id = core.uuid(), log = {}, ops = {}, media = {}, outbox = {}, participants = {}, attendees = {},
    state = "establishing", toneSeq = 0, rosterSeq = 0, prompts = {}, recordings = {}, requests = {},
    pressed = "", started = self:now(),
    myParticipantId = core.uuid(), callChainId = core.uuid(),
  }
  for k, v in pairs(fields) do call[k] = v end
  self.calls[call.id] = call
  self.ncalls = self.ncalls + 1
  self:_opened(call)
  return call
end

return Emulator
