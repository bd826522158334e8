-- examples/meeting.lua: join a scheduled meeting (the reference page's ex05), follow its roster
-- (delta rosters, sequence numbers and all: the tracker keeps it whole), greet everyone who
-- joins by name, and leave when the others have left (or after a minute).
--
--   graphcall run examples/meeting.lua --emulator --calls 1
local graphcall = require "graphcall"

return {
  start = function(bot)
    local call, err = bot:call {
      chatInfo = { threadId = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3NjBjZTQ5MDJk@thread.v2",
                   messageId = "0" },
      meetingInfo = graphcall.organizerMeetingInfo { organizer = { user = {
        id = "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96", tenantId = bot.client.tenantId } } },
      requestedModalities = { "audio" },
      mediaConfig = graphcall.serviceHostedMediaConfig {},
      callOptions = graphcall.outgoingCallOptions { isDeltaRosterEnabled = true },
      tenantId = bot.client.tenantId,
    }
    if not call then bot.log("error", "joining the meeting failed: " .. tostring(err)) end
  end,

  flow = function(call)
    if not call:ready() then return end
    local me = call.created and call.created.myParticipantId
    local greeted = {}
    call.greeted = {}
    local stop = call:now() + 60000
    local present = {}
    repeat
      local roster, why = call:wait({ kind = "participants" }, stop)
      if not roster then
        if why == "timeout" then break end
        return                                         -- the meeting ended
      end
      for _, p in ipairs(roster.participants) do       -- a delta: only who changed
        if p.id ~= me then present[p.id] = not p.removed or nil end
        if p.id ~= me and not p.removed and not greeted[p.id] then
          greeted[p.id] = true
          call.greeted[#call.greeted + 1] = p.name
          call:play { text = "Welcome, " .. tostring(p.name or "guest") .. "." }
        end
      end
    until next(greeted) and not next(present)         -- everyone who came has gone
    call:hangup()
  end,

  scenario = {
    meeting = { attendees = { { name = "Alice", join = 500, leave = 10000 },
                              { name = "Bob", join = 4000, leave = 8000 } } },
  },
}
