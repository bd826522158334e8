-- examples/group.lua: a group call to two Teams users (the reference page's ex03) that plays an
-- announcement once both have joined, then leaves.
--
--   graphcall run examples/group.lua --emulator --calls 1
local graphcall = require "graphcall"

local USERS = { "98da8a1a-1b87-452c-a713-65d3f10b5555", "bf5aae9a-d11d-47a8-93b1-782504c9c876" }

return {
  start = function(bot)
    local targets = {}
    for i, id in ipairs(USERS) do targets[i] = { identity = { user = { id = id, displayName = "user " .. i } } } end
    local call, err = bot:call {
      direction = "outgoing", subject = "Announcement",
      source = { identity = { application = { id = bot.client.clientId } } },
      targets = targets, requestedModalities = { "audio" },
      mediaConfig = graphcall.serviceHostedMediaConfig {}, tenantId = bot.client.tenantId,
    }
    if not call then bot.log("error", "the group call failed: " .. tostring(err)) end
  end,

  flow = function(call)
    if not call:ready() then return end
    local me = call.created and call.created.myParticipantId
    local deadline = call:now() + 30000
    local present = 0
    while present < #USERS do                          -- until both users are in
      local roster, why = call:wait({ kind = "participants" }, deadline)
      if not roster then
        if why ~= "timeout" then return end
        break
      end
      present = 0
      for _, p in ipairs(roster.participants) do
        if p.id ~= me and not p.removed then present = present + 1 end
      end
    end
    call.present = present
    call:play { text = "This is an announcement for everyone on this call. Thank you for joining." }
    call:hangup()
  end,

  scenario = {
    peers = { [USERS[1]] = { answer = 800 }, [USERS[2]] = { answer = 2500 } },
  },
}
