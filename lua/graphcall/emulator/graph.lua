--- Graph's API as the emulator serves it: calls created, read and deleted, every action of
-- REFERENCE.md section 1 with its documented answer, participants and operations.
-- @module graphcall.emulator.graph
local core = require "graphcall.core"
local U = require "graphcall.emulator.util"
local rules = require "graphcall.emulator.rules"

local array, typed, result_info, null = U.array, U.typed, U.result_info, U.null
local alive, call_url, op_view, identity_key = U.alive, U.call_url, U.op_view, U.identity_key
local participant = U.participant

local Emulator = {}

-- ---- Graph: calls -------------------------------------------------------------------------

local function opt(v) if v == nil then return null end return v end

function Emulator:_call_object(call)
  local r = call.request or {}
  local source = r.source
  if type(source) ~= "table" then
    source = typed("participantInfo", { identity = typed("identitySet", {
      application = typed("identity", { id = call.appId }) }) })
  end
  source = typed("participantInfo", {
    identity = source.identity, countryCode = opt(source.countryCode), endpointType = opt(source.endpointType),
    region = opt(source.region), languageId = opt(source.languageId) })
  local targets = array {}
  for i, t in ipairs(r.targets or {}) do
    targets[i] = typed("invitationParticipantInfo", { identity = t.identity, endpointType = opt(t.endpointType),
      region = null, replacesCallId = opt(t.replacesCallId), languageId = opt(t.languageId) })
  end
  return typed("call", {
    ["@odata.context"] = self.url .. "/v1.0/$metadata#app/calls/$entity",
    id = call.id, state = call.state, direction = call.direction, callbackUri = call.callbackUri,
    callChainId = call.callChainId, callRoutes = array {}, source = source, targets = targets,
    requestedModalities = r.requestedModalities or array { "audio" }, activeModalities = array {},
    mediaConfig = r.mediaConfig, routingPolicies = array {}, tenantId = call.tenantId,   -- (not null: required)
    myParticipantId = call.myParticipantId, subject = opt(r.subject), terminationReason = null,
    ringingTimeoutInSeconds = null, mediaState = null, resultInfo = call.resultInfo or null,
    answeredBy = null, chatInfo = opt(r.chatInfo), meetingInfo = opt(r.meetingInfo), transcription = null,
    meetingCapability = null, toneInfo = null,
  })
end

-- Whether established comes before establishing: as the scenario says, else (documented
-- realism) now and then, as Graph's create-call page warns.
function Emulator:_swap(...)
  for _, v in ipairs { ... } do if v ~= nil then return v end end
  return self:_chance(0.25)
end

-- Calls of an application that have not ended (Graph: 100 at once per app, `capacity`).
function Emulator:_live(appId) return self.liveByApp[appId] or 0 end

function Emulator:_create_call(req, claims, doc)
  local call = self:_new_call {
    direction = "outgoing", callbackUri = doc.callbackUri, appId = claims.appid,
    tenantId = doc.tenantId or claims.tid, request = doc,
    serviceMedia = type(doc.mediaConfig) == "table"
      and doc.mediaConfig["@odata.type"] ~= "#microsoft.graph.appHostedMediaConfig",
  }
  self.stats.callsCreated = self.stats.callsCreated + 1
  local opts = type(doc.callOptions) == "table" and doc.callOptions or {}
  call.delta = opts.isDeltaRosterEnabled == true
  call.sharing = opts.isContentSharingNotificationEnabled == true
  local targets = type(doc.targets) == "table" and doc.targets or {}
  call.group = type(doc.meetingInfo) == "table" or #targets > 1
  self:_log(call, "created", call.group and "group" or "p2p")
  self:_reply(req, 201, self:_call_object(call), {
    Location = self.url .. "/v1.0/communications/calls/" .. call.id })
  if self.scenario.drive == false then return call end  -- load tests of the API alone: no callbacks
  -- who is on the other side
  local script
  if type(doc.meetingInfo) == "table" then
    local m = self.scenario.meeting or {}
    for _, a in ipairs(m.attendees or {}) do
      call.attendees[#call.attendees + 1] = { kind = "user", identityId = a.id or core.uuid(), name = a.name,
        join = a.join, leave = a.leave }
    end
    script = m.peer or self:_peer_script("meeting")
  else
    local key, kind = identity_key(targets[1] and targets[1].identity)
    call.peerKind = kind
    script = self:_peer_script(key)
    for i = 2, #targets do
      local k2 = identity_key(targets[i].identity)
      local s2 = self:_peer_script(k2)
      if s2.answer ~= false and not s2.outcome then
        call.attendees[#call.attendees + 1] = { kind = "user", identityId = k2, name = k2, join = s2.answer or 300 }
      end
    end
  end
  if call.group then
    if #targets > 0 then  -- a group call: the first target stands for the call's peer
      local k1 = identity_key(targets[1].identity)
      table.insert(call.attendees, 1, { kind = "user", identityId = k1, name = k1, join = 0 })
    end
  end
  call.swap = self:_swap(script.swapEstablished, self.scenario.swapEstablished)
  self:after(20, function() self:_establishing(call) end)
  self:_ring(call, script)
  self:_start_peer(call, script)
  return call
end

--- Place an incoming call to the bot (REFERENCE.md §2).
-- @param inc `webhook` (the bot's calling webhook; required), `from` (an identitySet; a
--   phone number by default), `to` (the bot's identitySet), `tenantId`, `appId` (audience
--   of the callback tokens), `caller` (the scripted caller: steps as for peers), `answerBy`
--   (ms the bot has to answer, 15000)
-- @return the call
function Emulator:place_incoming(inc)
  rules.incoming(inc, "incoming call")
  local sc = self.scenario
  local from = inc.from or { phone = { id = "+14255550199" } }
  local fromSet = typed("identitySet", {})
  for k, v in pairs(from) do fromSet[k] = typed("identity", { id = v.id, displayName = v.displayName }) end
  local appId = inc.appId or sc.appId or "00000000-0000-0000-0000-000000000000"
  local call = self:_new_call {
    direction = "incoming", state = "incoming", callbackUri = inc.webhook or sc.webhook,
    appId = appId, tenantId = inc.tenantId or sc.tenantId or "00000000-0000-0000-0000-0000000000aa",
    incomingPending = true,
  }
  call.peerKind = from.phone and "phone" or "user"
  call.caller = inc.caller or sc.caller or {}
  call.swap = self:_swap(call.caller.swapEstablished, sc.swapEstablished)
  local target = inc.to or { application = { id = appId, displayName = "Bot" } }
  local toSet = typed("identitySet", {})
  for k, v in pairs(target) do toSet[k] = typed("identity", { id = v.id, displayName = v.displayName }) end
  call.request = { source = typed("participantInfo", { identity = fromSet }),
                   targets = { typed("invitationParticipantInfo", { identity = toSet }) },
                   requestedModalities = array { "audio" } }
  self:_log(call, "incoming")
  local data = self:_call_object(call)
  data["@odata.context"] = nil
  data["@odata.id"] = call_url(call.id)
  data.incomingContext = typed("incomingContext", { sourceParticipantId = core.uuid() })
  self:_notify(call, { { changeType = "created", data = data } }, "call:incoming")
  call.answerTimer = self:after(inc.answerBy or 15000, function()
    if call.state == "incoming" then
      self:_log(call, "not answered in time")
      self:_end(call, 480, 10076, "Callee could not be reached.")
    end
  end)
  return call
end

-- ---- Graph: actions -----------------------------------------------------------------------

local CALL_ACTIONS = {
  answer = true, reject = true, redirect = true, transfer = true, playPrompt = true, recordResponse = true,
  subscribeToTone = true, cancelMediaProcessing = true, keepAlive = true, mute = true, unmute = true,
  updateRecordingStatus = true, changeScreenSharingRole = true, sendDtmfTones = true,
}

function Emulator:_op_reply(req, call, op, status, extra)
  local body = op_view(op, extra)
  self:_reply(req, status or 200, body, {
    Location = self.url .. "/v1.0/communications/calls/" .. call.id .. "/operations/" .. op.id })
end

function Emulator:_media_op(req, call, kind, body)
  if not call.serviceMedia then
    return self:_error(req, 400, "BadRequest", kind .. " needs service-hosted media")
  end
  if call.state ~= "established" then
    return self:_error(req, 400, "BadRequest", kind .. " needs an established call (state is " .. call.state .. ")")
  end
  local op = self:_new_op(call, kind, body, "running")
  op.body = body
  op.prompts = body.prompts or {}
  if kind == "recordResponse" and body.bargeInAllowed == true then
    table.insert(call.media, 1, op)   -- ahead of what is queued; the running one is stopped
    local busy = call.mediaBusy
    if busy then
      call.mediaBusy = nil
      if busy.timer then busy.timer:cancel() end
      self:_complete_op(call, busy, "failed", result_info(400, 8508, "Action failed, the operation was cancelled."))
    end
  else
    call.media[#call.media + 1] = op
  end
  self:_op_reply(req, call, op, 200, kind == "recordResponse" and { recordingLocation = null } or nil)
  self:_media_next(call)
end

function Emulator:_action(req, call, name, body)
  local st = call.state
  if name == "answer" or name == "reject" or name == "redirect" then
    if st ~= "incoming" then
      return self:_error(req, 400, "BadRequest", "Call is not in the incoming state (" .. st .. ").")
    end
    call.incomingPending = nil
    if call.answerTimer then call.answerTimer:cancel() end
    self:_reply(req, 202)
    if body.callbackUri then call.callbackUri = body.callbackUri end
    if name == "answer" then
      call.serviceMedia = type(body.mediaConfig) == "table"
        and body.mediaConfig["@odata.type"] ~= "#microsoft.graph.appHostedMediaConfig"
      local opts = type(body.callOptions) == "table" and body.callOptions or {}
      call.delta, call.sharing = opts.isDeltaRosterEnabled == true, opts.isContentSharingNotificationEnabled == true
      call.state = "establishing"
      self:_log(call, "answered")
      self:_establishing(call)
      self:_established(call, self.scenario.establishDelay or 50)
      self:_start_peer(call, call.caller)
    elseif name == "reject" then
      self:_log(call, "rejected", body.reason)
      call.state = "terminated"
      self:_closed(call)
      call.ended = self:now()
      self:_notify(call, { { changeType = "deleted", data = self:_call_data(call) } }, "call:terminated")
    else
      self:_log(call, "redirected")
      call.redirectedTo = body.targets
      self:after(100, function()
        if call.state == "terminated" then return end
        call.state = "terminated"
        self:_closed(call)
        self:_notify(call, { { changeType = "deleted", data = self:_call_data(call, {
          id = call.id, state = "terminated", direction = call.direction, callbackUri = call.callbackUri }) } },
          "call:terminated")
      end)
    end
    return
  end
  if name == "keepAlive" then
    self:_arm_keepalive(call)
    return self:_reply(req, 200)
  end
  if name == "playPrompt" or name == "recordResponse" then return self:_media_op(req, call, name, body) end
  if name == "subscribeToTone" then
    call.subscribed = true
    return self:_op_reply(req, call, self:_new_op(call, name, body, "completed"))
  end
  if name == "cancelMediaProcessing" then
    local op = self:_new_op(call, name, body, "completed")
    self:_op_reply(req, call, op)
    return self:_cancel_media(call)
  end
  if name == "mute" or name == "unmute" or name == "updateRecordingStatus" then
    local op = self:_new_op(call, name, body, "completed")
    self:_op_reply(req, call, op, 200, name == "updateRecordingStatus" and { resultInfo = null } or nil)
    if name ~= "updateRecordingStatus" then
      for _, p in ipairs(call.participants) do
        if p.id == call.myParticipantId then p.muted = name == "mute" self:_roster(call, { p }) end
      end
    end
    return
  end
  if name == "changeScreenSharingRole" then
    self:_reply(req, 202)
    for _, p in ipairs(call.participants) do
      if p.id == call.myParticipantId then self:_roster(call, { p }) end
    end
    return
  end
  if name == "sendDtmfTones" then
    local op = self:_new_op(call, name, body, "running")
    self:_op_reply(req, call, op)
    local tones = body.tones or {}
    self:_log(call, "bot sent tones", table.concat(tones, ","))
    self:after(#tones * (body.delayBetweenTonesMs or 300), function()
      if not alive(call) then return end
      self:_complete_op(call, op, "completed", nil, { completionReason = "completedSuccessfully" })
      self:_peer_event(call, "tones")
    end)
    return
  end
  if name == "transfer" then
    self:_reply(req, 202)
    local target = type(body.transferTarget) == "table" and body.transferTarget.identity
    local key = identity_key(target)
    local peer = self:_peer_script(key)
    call.transferTarget = key
    self:_log(call, "transfer", key)
    self:after(50, function()
      if not alive(call) then return end
      self:_set_state(call, "transferring")
      self:_peer_event(call, "transferring")
      if peer.answer == false or peer.outcome then
        self:after(peer.ringTimeout or 1000, function()
          if not alive(call) then return end
          self:_log(call, "transfer failed")
          local d = self:_call_data(call, { state = "established",
            resultInfo = result_info(500, 7000, "The transfer target did not answer.", "subCode") })
          call.state = "established"
          self:_notify(call, { { changeType = "updated", data = d } }, "call:established")
        end)
        return
      end
      self:after(peer.answer or 300, function()
        if not alive(call) then return end
        -- transferAccepted and the audio-inactive update may come either way round (REFERENCE.md 7)
        if self:_chance(0.5) then
          self:_media_state(call, "inactive")
          self:_set_state(call, "transferAccepted")
        else
          self:_set_state(call, "transferAccepted")
          self:_media_state(call, "inactive")
        end
        self:after(100, function()
          if not alive(call) then return end
          self:_log(call, "transferred", key)
          call.transferred = key
          self:_end(call, 0, 7015, "GracefulTransferCompleted")
        end)
      end)
    end)
    return
  end
  self:_error(req, 400, "BadRequest", "unsupported action " .. name)
end

function Emulator:_invite(req, call, body)
  local op = self:_new_op(call, "invite", body, "Running")
  local parts = array {}
  for i, p in ipairs(body.participants or {}) do parts[i] = p end
  self:_op_reply(req, call, op, 200, { resultInfo = null, participants = parts })
  local wait = 0
  for _, p in ipairs(parts) do
    local key, kind = identity_key(p.identity)
    local peer = self:_peer_script(key)
    if peer.answer ~= false and not peer.outcome then
      wait = math.max(wait, peer.answer or 300)
      self:after(peer.answer or 300, function()
        if alive(call) then
          call.group = true
          self:_join(call, { kind = kind == "phone" and "phone" or "user", identityId = key, name = key })
        end
      end)
    end
  end
  self:after(wait + 10, function()
    if alive(call) then self:_complete_op(call, op, "completed", nil, { participants = parts }) end
  end)
end

function Emulator:_participant_action(req, call, pid, name, body)
  local who
  for _, p in ipairs(call.participants) do if p.id == pid and not p.removed then who = p end end
  if not who then return self:_error(req, 404, "itemNotFound", "Participant not found.") end
  if name == "mute" then
    who.muted = true
    self:_op_reply(req, call, self:_new_op(call, "participant.mute", body, "completed"))
    return self:_roster(call, { who })
  end
  local op = self:_new_op(call, name, body, "running")
  self:_op_reply(req, call, op, 202)
  self:after(200, function() if alive(call) then self:_complete_op(call, op, "completed") end end)
end

-- ---- routing ------------------------------------------------------------------------------

-- Validate an action body as the service would: strict JSON, then Graph's schema.
local function consent_error(self, req)
  return self:_error(req, 403, "7504", "Insufficient enterprise tenant permissions, cannot access this API.")
end

local function tenant_error(self, req)
  return self:_error(req, 403, "7505", "Request authorization tenant mismatch.")
end

function Emulator:_graph(req, method, path, body, claims)
  local crid = req:header("client-request-id")
  -- an action carried out: counted by client-request-id, with what it was and on which call
  local count = function(action, callId)
    local info = { action = action, call = callId }
    if crid then
      self.byRequestId[crid] = (self.byRequestId[crid] or 0) + 1
      self.requestInfo[crid] = info
    end
    self.stats.actions = self.stats.actions + 1
    return info
  end
  if path == "/communications/calls" then
    if method ~= "POST" then return self:_error(req, 405, "BadRequest", "Method not allowed.") end
    local doc, err = rules.validate("call", body)
    if not doc then return self:_error(req, 400, "BadRequest", err) end
    if type(doc.tenantId) == "string" and doc.tenantId ~= claims.tid then return tenant_error(self, req) end
    if not rules.has_role(claims, rules.role_for(doc)) then return consent_error(self, req) end
    if self:_live(claims.appid) >= (self.scenario.capacity or 100) then
      return self:_error(req, 429, "TooManyRequests", "Too many concurrent calls for this application.",
                         { ["Retry-After"] = "2" })
    end
    local info = count("create")
    info.call = self:_create_call(req, claims, doc).id
    return
  end
  local id, rest = path:match("^/communications/calls/([^/]+)(.*)$")
  if not id then return self:_error(req, 404, "itemNotFound", "Resource not found.") end
  local call = self.calls[id]
  if not call or call.state == "terminated" then return self:_error(req, 404, "8522", "Call not found.") end
  -- a call is its tenant's: another tenant's token is refused; an app without calling
  -- permissions in the tenant can do nothing with it
  if claims.tid ~= call.tenantId then return tenant_error(self, req) end
  if not rules.has_role(claims, nil) then return consent_error(self, req) end
  if rest == "" then
    if method == "GET" then return self:_reply(req, 200, self:_call_object(call)) end
    if method == "DELETE" then
      count("hangup", call.id)
      self:_reply(req, 204)
      self:_log(call, "bot hangs up")
      self:_set_state(call, "terminating")
      return self:after(100, function() self:_end(call, 200, 5001, "The conversation has ended.") end)
    end
    return self:_error(req, 405, "BadRequest", "Method not allowed.")
  end
  local action = rest:match("^/microsoft%.graph%.(%a+)$") or rest:match("^/(%a+)$")
  if action and CALL_ACTIONS[action] and method == "POST" then
    local doc, err = rules.validate(action, body)
    if not doc then return self:_error(req, 400, "BadRequest", err) end
    count(action, call.id)
    self:_log(call, "action", action)
    return self:_action(req, call, action, doc)
  end
  if rest == "/participants" and method == "GET" then
    local list = array {}
    for _, p in ipairs(call.participants) do if not p.removed then list[#list + 1] = participant(p) end end
    return self:_reply(req, 200, { value = list })
  end
  if rest == "/participants/invite" or rest == "/participants/microsoft.graph.invite" then
    if method ~= "POST" then return self:_error(req, 405, "BadRequest", "Method not allowed.") end
    local doc, err = rules.validate("invite", body)
    if not doc then return self:_error(req, 400, "BadRequest", err) end
    count("invite", call.id)
    return self:_invite(req, call, doc)
  end
  local pid, paction = rest:match("^/participants/([^/]+)/?(.*)$")
  if pid then
    paction = paction:gsub("^microsoft%.graph%.", "")
    if paction == "" then
      local who
      for _, p in ipairs(call.participants) do if p.id == pid and not p.removed then who = p end end
      if not who then return self:_error(req, 404, "itemNotFound", "Participant not found.") end
      if method == "GET" then return self:_reply(req, 200, participant(who)) end
      if method == "DELETE" then
        count("participant.delete", call.id)
        self:_reply(req, 204)
        return self:_leave(call, who)
      end
    elseif method == "POST" and (paction == "mute" or paction == "startHoldMusic" or paction == "stopHoldMusic") then
      local doc, err = rules.validate(paction == "mute" and "participant.mute" or paction, body)
      if not doc then return self:_error(req, 400, "BadRequest", err) end
      count("participant." .. paction, call.id)
      return self:_participant_action(req, call, pid, paction, doc)
    end
    return self:_error(req, 405, "BadRequest", "Method not allowed.")
  end
  local opId = rest:match("^/operations/([^/]+)$")
  if opId and method == "GET" then
    local op = call.ops[opId]
    if not op then return self:_error(req, 404, "itemNotFound", "Operation not found.") end
    return self:_reply(req, 200, op_view(op))
  end
  self:_error(req, 404, "itemNotFound", "Resource not found.")
end

return Emulator
