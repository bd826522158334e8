-- examples/ivr-load.lua: a load test of examples/ivr.lua, a scenario for `graphcall emulate`.
--
--   graphcall emulate --port 8090 --load 5 --duration 60 --scenario examples/ivr-load.lua &
--   graphcall run examples/ivr.lua --connect http://127.0.0.1:8090 --listen 127.0.0.1:8443
--
-- The emulator waits for the bot's callback URL to answer, places 5 incoming calls a second
-- for 60 s, each with one of the callers below in turn (sales twice as often), then prints the
-- answer latency, what each kind of caller's calls came to and the notifications the bot
-- refused, and exits 0 when every call came to what its kind expects.
local SALES = "+14255550100"

return {
  peers = { [SALES] = { answer = 2000 } },     -- sales answers the transfer
  load = {
    webhook = "http://127.0.0.1:8443/callback", appId = "graphcall-run", tenantId = "tenant-1",
    callers = {
      { name = "sales", weight = 2, caller = { { on = "prompt", after = 1500, press = "1" } },
        expect = { pressed = "1", transferred = SALES } },
      { name = "voicemail", caller = { { on = "prompt", after = 1500, press = "2" },
                                       { on = "record", after = 300, speak = 3000 } },
        expect = { pressed = "2", recordings = 1, hangup = "bot" } },
      { name = "account", caller = { { on = "prompt", after = 1500, press = "3" },
                                     { on = "prompt", after = 500, press = "1234#" } },
        expect = { pressed = "31234#", hangup = "bot" } },
      { name = "silent", caller = {}, expect = { prompts = 4, hangup = "bot" } },   -- three tries, goodbye
    },
  },
}
