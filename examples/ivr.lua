-- examples/ivr.lua: an IVR main menu.
--
--   graphcall run examples/ivr.lua --emulator     (a scripted caller presses 2, leaves a message)
--
-- Answer, play the menu, take one digit (three tries, with no-input and no-match prompts):
-- 1 transfers to sales (a phone number), 2 records a voicemail (downloaded before the call
-- ends), 3 asks for a 4-digit PIN ended by #. Anything else, after three tries: goodbye.
local SALES = "+14255550100"

local function menu(call)
  return call:collect {
    prompt = { text = "Welcome to Contoso. For sales, press 1. To leave a message, press 2. "
      .. "To check your account, press 3." },
    max = 1, valid = "[123]", tries = 3, firstTimeout = 5000,
    noInput = { text = "Sorry, I did not hear a choice." },
    noMatch = { text = "Sorry, that is not a choice." },
  }
end

local function voicemail(call)
  local rec, err = call:record { prompt = { text = "Please leave a message after the beep. Press pound when done." },
                                 maxDuration = 60, maxSilence = 3, stopTones = { "#" } }
  if not rec then return nil, err end
  call:play { text = "Thank you. Your message has been recorded." }
  return rec
end

local function account(call)
  local pin, err = call:collect { prompt = { text = "Please enter your four digit PIN, then press pound." },
                                  min = 4, max = 4, terminator = "#", valid = "%d%d%d%d", tries = 2,
                                  noMatch = { text = "That PIN is not valid." } }
  if not pin then
    call:play { text = "Sorry, we could not verify your PIN. Goodbye." }
    return nil, err
  end
  call:play { text = "Thank you. Your PIN is accepted. Goodbye." }
  return pin
end

return {
  flow = function(call)
    call:finally(function(c) c.bot.log("info", "call " .. c.id .. ": menu flow over") end)
    if not call:answer() then return end
    local choice, err = menu(call)
    if not choice then
      if err.code ~= "hangup" then call:play { text = "Goodbye." } end
      return call:hangup()
    end
    if choice == "1" then
      call:play { text = "Connecting you to sales." }
      local ok = call:transfer { to = SALES }
      if not ok then
        call:play { text = "Sales is not available. Goodbye." }
        call:hangup()
      end
    elseif choice == "2" then
      voicemail(call)
      call:hangup()
    else
      account(call)
      call:hangup()
    end
  end,

  -- what `graphcall run examples/ivr.lua --emulator` plays: one caller, who picks voicemail
  scenario = {
    peers = { [SALES] = { answer = 2000 } },
    incoming = { { after = 500, from = { phone = { id = "+14255550199" } }, appId = "graphcall-run",
                   caller = { { on = "prompt", after = 1500, press = "2" },
                              { on = "record", after = 300, speak = 4000 } } } },
  },
}
