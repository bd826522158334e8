--- The emulator's media: prompts fetched and played for their real length, recordings with
-- their timeouts and stop tones, in one queue per call (REFERENCE.md section 1.6); cancel.
-- @module graphcall.emulator.media
local core = require "graphcall.core"
local wav = require "graphcall.wav"
local U = require "graphcall.emulator.util"

local typed, result_info, alive, call_url = U.typed, U.result_info, U.alive, U.call_url
local op_view, doc_id, null = U.op_view, U.doc_id, U.null

local Emulator = {}

-- The service's codes for a prompt it cannot fetch or play are not documented: these are the
-- emulator's own (the status, failed, is the service's).
local function cannot_play(why)
  return result_info(400, 0, "Action failed, the prompt could not be played: " .. why)
end

-- ---- media: prompts and recordings share one queue per call (REFERENCE.md §1.6) -----------

local OPTYPE = { playPrompt = "playPromptOperation", recordResponse = "recordOperation",
  subscribeToTone = "subscribeToToneOperation", cancelMediaProcessing = "cancelMediaProcessingOperation",
  mute = "muteParticipantOperation", unmute = "unmuteParticipantOperation",
  ["participant.mute"] = "muteParticipantOperation",
  updateRecordingStatus = "updateRecordingStatusOperation", sendDtmfTones = "sendDtmfTonesOperation",
  invite = "inviteParticipantsOperation", startHoldMusic = "startHoldMusicOperation",
  stopHoldMusic = "stopHoldMusicOperation" }

function Emulator:_new_op(call, kind, body, status)
  local op = typed(OPTYPE[kind], { id = core.uuid(), status = status, clientContext = body.clientContext })
  call.ops[op.id] = op
  op.kind = kind
  return op
end

-- The operations whose completions Graph's own pages show with both ids upper case and
-- without dashes, and no `id` in resourceData (call-playprompt, call-record,
-- call-cancelmediaprocessing), while its answers write them lower case with dashes.
local DOC_FORM = { playPrompt = true, recordResponse = true, cancelMediaProcessing = true }

-- An operation's completion (or failure) notified, in the form its page documents.
function Emulator:_complete_op(call, op, status, ri, extra)
  if op.done then return end
  op.done = true
  op.status = status
  op.ended = self:now()
  local data = op_view(op, extra)
  data.resultInfo = ri
  local item = { changeType = "deleted", data = data }
  if DOC_FORM[op.kind] then
    local url = "/communications/calls/" .. doc_id(call.id) .. "/operations/" .. doc_id(op.id)
    data.id = nil
    data["@odata.id"] = url
    item.url, item.resource = url, nil
  elseif op.kind == "invite" then
    -- participant-invite's example 2: under .../operations/participants, its id null; only the
    -- clientContext says which invitation it was
    data.id = null
    data["@odata.id"] = nil
    item.rest = "/operations/participants"
  else
    data["@odata.id"] = call_url(call.id) .. "/operations/" .. op.id
    item.rest = "/operations/" .. op.id
  end
  self:_notify(call, { item }, "operation:" .. op.kind .. ":" .. status)
end

-- The prompts of an operation start playing now, one after the other: each is kept in the
-- call's record with when it starts (what played and what was cut short is read from the
-- operation's end, `Emulator:played`).
function Emulator:_playing(call, op, each)
  local at = math.floor(self:now() - call.started)
  for _, p in ipairs(each) do
    call.prompts[#call.prompts + 1] = { uri = p.uri, at = at, ms = p.ms, op = op }
    at = at + p.ms
  end
  self:_peer_event(call, "prompt")
end

--- What a call's caller heard, in order: `{uri =, at =, ms =, cutShort =}` for each prompt
-- that started (`at` in ms since the call began, as its log); a prompt still playing is not
-- cut short.
function Emulator:played(call)
  local out = {}
  for _, p in ipairs(call.prompts) do
    local op = p.op
    local stop = op.status ~= "completed" and op.ended and math.floor(op.ended - call.started)
                 or math.floor(self:now() - call.started)
    if p.at < stop or (p.at == stop and op.status == "completed") then
      out[#out + 1] = { uri = p.uri, at = p.at, ms = p.ms,
                        cutShort = op.status ~= "completed" and op.ended ~= nil and p.at + p.ms > stop }
    end
  end
  return out
end

-- Fetch a prompt and measure it (cached per URI for a minute); cb(ms) or cb(nil, why).
function Emulator:_fetch_prompt(uri, cb)
  local c = self.promptCache[uri]
  if c and self.loop:now() - c.at < 60000 then return cb(c.ms, c.err) end
  self.stats.promptsFetched = self.stats.promptsFetched + 1
  self.loop:request({ url = uri, timeout = 10000, connect_timeout = 5000, cafile = self.caFile,
                      max_body = 16 * 1048576 }, function(res, err)
    local ms, why
    if err then why = "unreachable (" .. err.code .. ")"
    elseif res.status ~= 200 then why = "HTTP " .. res.status
    else
      local info, werr = wav.check(res.body)
      if info then ms = info.ms else why = werr end
    end
    self.promptCache[uri] = { at = self.loop:now(), ms = ms, err = why }
    cb(ms, why)
  end)
end

-- Fetch every prompt of a list, in order; cb(total_ms, nil, {{uri =, ms =}, ...}) or
-- cb(nil, why).
function Emulator:_measure(prompts, cb)
  local total, i, each = 0, 0, {}
  local function step()
    i = i + 1
    local p = prompts[i]
    if not p then return cb(total, nil, each) end
    local uri = type(p) == "table" and type(p.mediaInfo) == "table" and p.mediaInfo.uri
    if type(uri) ~= "string" then return cb(nil, "prompt without mediaInfo.uri") end
    self:_fetch_prompt(uri, function(ms, why)
      if not ms then return cb(nil, uri .. ": " .. why) end
      each[#each + 1] = { uri = uri, ms = ms }
      total = total + ms
      step()
    end)
  end
  step()
end

function Emulator:_media_next(call)
  if call.mediaBusy or not alive(call) then return end
  local op = table.remove(call.media, 1)
  if not op then return end
  call.mediaBusy = op
  if op.kind == "playPrompt" then self:_run_prompt(call, op) else self:_run_record(call, op) end
end

function Emulator:_media_done(call, op)
  if call.mediaBusy == op then call.mediaBusy = nil end
  if op.timer then op.timer:cancel() end
  self:_media_next(call)
end

function Emulator:_run_prompt(call, op)
  self:_measure(op.prompts, function(ms, why, each)
    if not alive(call) or op.done then return end
    if not ms then
      self:_log(call, "prompt failed", why)
      self:_complete_op(call, op, "failed", cannot_play(why))
      return self:_media_done(call, op)
    end
    self:_log(call, "prompt", string.format("%d ms", ms))
    self:_playing(call, op, each)
    op.timer = self:after(ms, function()
      if op.done then return end
      self:_complete_op(call, op, "completed", result_info(200, 0, "Action completed successfully."))
      self:_peer_event(call, "promptEnd")
      self:_media_done(call, op)
    end)
  end)
end

function Emulator:_finish_record(call, rec, reason, code, subcode, message)
  local op = rec.op
  if op.done then return end
  call.recording = nil
  if rec.timers then for _, t in ipairs(rec.timers) do t:cancel() end end
  local spoken = rec.spoken or 0
  if rec.speechFrom then spoken = spoken + (self:now() - rec.speechFrom) end
  local id = core.uuid()
  local token = core.uuid()
  local ms = math.max(100, math.floor(spoken / 100 + 0.5) * 100)
  self.recordings[id] = { ms = ms, token = token }
  local location = self.url .. "/emulator/recordings/" .. id
  call.recordings[#call.recordings + 1] = { at = math.floor(rec.from - call.started), ms = ms,
    completionReason = reason, recordingLocation = location }
  self:_log(call, "recorded", string.format("%s, %d ms of speech", reason, math.floor(spoken)))
  self:_complete_op(call, op, "completed", result_info(code, subcode, message), {
    recordingLocation = location, recordingAccessToken = token, completionReason = reason })
  self:_media_done(call, op)
end

-- Speech starts (or is already going) while recording.
function Emulator:_speech(call, rec)
  if rec.speechFrom or not call.speaking then return end
  rec.speechFrom = self:now()
  rec.heard = true
  local left = call.speaking.ms - (self:now() - call.speaking.from)
  rec.timers[#rec.timers + 1] = self:after(left, function()
    if call.recording ~= rec then return end
    rec.spoken = (rec.spoken or 0) + (self:now() - rec.speechFrom)
    rec.speechFrom = nil
    rec.timers[#rec.timers + 1] = self:after(rec.maxSilence, function()
      if call.recording == rec then
        self:_finish_record(call, rec, "maxSilenceTimeout", 200, 0, "Action completed, max silence timeout.")
      end
    end)
  end)
end

function Emulator:_run_record(call, op)
  local b = op.body
  local function begin()
    if not alive(call) or op.done then return end
    local rec = { op = op, timers = {}, stopTones = {}, from = self:now(),
                  initialSilence = (b.initialSilenceTimeoutInSeconds or 5) * 1000,
                  maxSilence = (b.maxSilenceTimeoutInSeconds or 5) * 1000,
                  maxDuration = (b.maxRecordDurationInSeconds or 5) * 1000 }
    for _, t in ipairs(b.stopTones or {}) do rec.stopTones[t] = true end
    call.recording = rec
    self:_log(call, "recording")
    self:_peer_event(call, "record")
    rec.timers[#rec.timers + 1] = self:after(rec.maxDuration, function()
      if call.recording == rec then
        self:_finish_record(call, rec, "maxRecordDurationReached", 200, 8515,
          "Action completed, max record duration reached.")
      end
    end)
    rec.timers[#rec.timers + 1] = self:after(rec.initialSilence, function()
      if call.recording == rec and not rec.heard then
        self:_finish_record(call, rec, "initialSilenceTimeout", 200, 0, "Action completed, initial silence timeout.")
      end
    end)
    self:_speech(call, rec)
  end
  local beep = b.playBeep == false and 0 or 200
  if type(b.prompts) == "table" and #b.prompts > 0 then
    self:_measure(b.prompts, function(ms, why, each)
      if not alive(call) or op.done then return end
      if not ms then
        self:_complete_op(call, op, "failed", cannot_play(why),
          { completionReason = "playPromptFailed", recordingLocation = "", recordingAccessToken = "" })
        return self:_media_done(call, op)
      end
      self:_playing(call, op, each)
      op.timer = self:after(ms + beep, begin)
    end)
  else
    op.timer = self:after(beep, begin)
  end
end

function Emulator:_cancel_media(call)
  local ops = {}
  if call.mediaBusy then ops[1] = call.mediaBusy end
  for _, op in ipairs(call.media) do ops[#ops + 1] = op end
  call.media = {}
  call.mediaBusy = nil
  if call.recording then
    for _, t in ipairs(call.recording.timers) do t:cancel() end
    call.recording = nil
  end
  for _, op in ipairs(ops) do
    if op.timer then op.timer:cancel() end
    local extra = op.kind == "recordResponse" and { completionReason = "operationCanceled",
      recordingLocation = "", recordingAccessToken = "" } or nil
    self:_complete_op(call, op, "failed", result_info(400, 8508, "Action failed, the operation was cancelled."), extra)
  end
end

return Emulator
