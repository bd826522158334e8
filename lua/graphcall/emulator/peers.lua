--- The other side of each call: scripted peers (answer, press keys, speak, hang up) and
-- meetings (attendees joining and leaving, rosters full or delta, content sharing).
-- @module graphcall.emulator.peers
local core = require "graphcall.core"
local U = require "graphcall.emulator.util"

local array, typed, alive, participant = U.array, U.typed, U.alive, U.participant

local Emulator = {}

-- ---- peers ------------------------------------------------------------------------------

function Emulator:_peer_script(key)
  local peers = self.scenario.peers or {}
  return peers[key] or peers.default or {}
end

local TONES = { ["0"] = "tone0", ["1"] = "tone1", ["2"] = "tone2", ["3"] = "tone3", ["4"] = "tone4",
  ["5"] = "tone5", ["6"] = "tone6", ["7"] = "tone7", ["8"] = "tone8", ["9"] = "tone9",
  ["*"] = "star", ["#"] = "pound", A = "a", B = "b", C = "c", D = "d", a = "a", b = "b", c = "c", d = "d" }

-- Events the scripted side reacts to: "established", "prompt", "promptEnd", "record",
-- "tones" (the bot sent DTMF). A step waits for its `on` event (counted from when the step
-- began waiting), then `after` ms, then acts.
function Emulator:_peer_event(call, ev)
  local w = call.peerWait
  if w and (w.on == ev) then
    call.peerWait = nil
    self:after(w.after or 0, function() self:_peer_act(call, w) end)
  end
end

function Emulator:_peer_next(call)
  if not alive(call) then return end
  call.peerStep = call.peerStep + 1
  local step = call.peer[call.peerStep]
  if not step then return end
  if step.on and step.on ~= "now" then
    call.peerWait = step
  else
    self:after(step.after or 0, function() self:_peer_act(call, step) end)
  end
end

--- The caller presses keys on a call: each heard by the bot as a toneInfo once it subscribed.
-- @param call the emulator's call
-- @param tones the keys, a string ("123#")
-- @param gap ms between two keys (150)
function Emulator:press(call, tones, gap)
  gap = gap or 150
  local t = 0
  for ch in tostring(tones):gmatch(".") do
    self:after(t, function()
      if not alive(call) then return end
      local tone = TONES[ch]
      if not tone then return end
      self:_log(call, "press", ch)
      call.pressed = call.pressed .. ch
      local rec = call.recording
      if rec and rec.stopTones[ch] then
        self:_finish_record(call, rec, "stopToneDetected", 200, 0, "Action completed, stop tone detected.")
      end
      if call.subscribed then
        call.toneSeq = call.toneSeq + 1
        self:_notify(call, { { changeType = "updated", data = self:_call_data(call, {
          state = call.state, toneInfo = typed("toneInfo", { sequenceId = call.toneSeq, tone = tone }) }) } },
          "call:tone")
      end
    end)
    t = t + gap
  end
  return t - gap   -- the last press: the next step starts watching from there
end

function Emulator:_peer_act(call, step)
  if not alive(call) then return end
  local wait = 0
  if step.press then
    wait = self:press(call, step.press, step.interDigit)
  end
  if step.speak then
    self:_log(call, "speak", tostring(step.speak))
    call.speaking = { from = self:now(), ms = step.speak }
    local rec = call.recording
    if rec then self:_speech(call, rec) end
    wait = math.max(wait, step.speak)
    self:after(step.speak, function() call.speaking = nil end)
  end
  if step.hold then   -- on hold for `hold` ms, then back
    self:_log(call, "peer holds", tostring(step.hold))
    self:_set_state(call, "hold")
    wait = math.max(wait, step.hold)
    self:after(step.hold, function()
      if alive(call) and call.state == "hold" then self:_set_state(call, "established") end
    end)
  end
  if step.hangup then
    self:_log(call, "peer hangs up")
    local pstn = call.peerKind == "phone"
    return self:_end(call, 200, pstn and 540000 or 4521,
      pstn and "The PSTN user hung up." or "The other side ended the call.")
  end
  self:after(wait, function() self:_peer_next(call) end)
end

function Emulator:_start_peer(call, script)
  call.peer = script or {}
  call.peerStep = 0
  self:_peer_next(call)
end

-- ---- rosters (meetings and group calls) ---------------------------------------------------

function Emulator:_roster(call, changed)
  if not call.group then return end
  call.rosterSeq = call.rosterSeq + 1
  local data
  if call.delta then
    local list = array {}
    for _, p in ipairs(changed) do
      local v = participant(p)
      v.rosterSequenceNumber = call.rosterSeq
      if p.removed then v.removedState = typed("removedState", { reason = "Removed from roster" }) end
      list[#list + 1] = v
    end
    data = array { typed("deltaParticipants", { sequenceNumber = call.rosterSeq, participants = list }) }
  else
    data = array {}
    for _, p in ipairs(call.participants) do
      if not p.removed then data[#data + 1] = participant(p) end
    end
  end
  self:_notify(call, { { changeType = "updated", rest = "/participants", data = data } }, "participants")
end

function Emulator:_join(call, who)
  who.id = who.id or core.uuid()
  who.sourceId = tostring(#call.participants + 1)
  call.participants[#call.participants + 1] = who
  self:_log(call, "joined", who.name or who.identityId)
  self:_roster(call, { who })
end

function Emulator:_leave(call, who)
  if who.removed then return end
  who.removed = true
  self:_log(call, "left", who.name or who.identityId)
  self:_roster(call, { who })
end

return Emulator
