-- examples/notify.lua: an outbound notification call (the reference page's ex09: the bot's
-- application instance calls a phone number), which plays a message and collects a
-- confirmation digit.
--
--   graphcall run examples/notify.lua --emulator --calls 1
local graphcall = require "graphcall"

local TO = "+12345678901"

return {
  start = function(bot)
    local call, err = bot:call {
      source = { identity = { applicationInstance = { id = "3d913abb-aec0-4964-8fa6-3c6850c4f278",
                                                      displayName = "Calling Bot" } } },
      targets = { { identity = { phone = { id = TO } } } },
      requestedModalities = { "audio" },
      mediaConfig = graphcall.serviceHostedMediaConfig {},
      tenantId = bot.client.tenantId,
    }
    if not call then bot.log("error", "the notification call failed: " .. tostring(err)) end
  end,

  flow = function(call)
    if not call:ready() then return end                 -- the callee answered (or not)
    local answer = call:collect {
      prompt = { text = "Hello, this is Contoso. Your appointment is tomorrow at ten. "
        .. "Press 1 to confirm, or 2 to cancel." },
      valid = "[12]", tries = 2, noMatch = { text = "Please press 1 or 2." },
    }
    if answer == "1" then
      call:play { text = "Thank you, your appointment is confirmed. Goodbye." }
    elseif answer == "2" then
      call:play { text = "Your appointment is cancelled. Goodbye." }
    end
    call.outcome = answer or "none"
    call:hangup()
  end,

  scenario = {
    peers = { [TO] = { answer = 1500, { on = "promptEnd", after = 800, press = "1" } } },
  },
}
