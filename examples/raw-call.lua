-- examples/raw-call.lua: a live call against the local emulator, over real HTTP both ways, with
-- the client and the listener alone (no bot, no flow): what the flow runtime stands on.
--
-- It starts `graphcall emulate` (a separate process) with a scripted callee, then runs a bot:
-- a client that gets its token from the emulator and places the reference page's PSTN call
-- (seed ex09), and a listener that verifies every notification's signature and prints it as
-- one line. When the call is established the bot subscribes to tones and plays a prompt it
-- serves itself; the callee presses 1 after hearing it; the bot hangs up. Run it from a clone:
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/lua5.4/?.so;;" lua5.4 examples/raw-call.lua
local graphcall = require "graphcall"
local wav = require "graphcall.wav"

local lua = arg[-1] or "lua5.4"
local dir = os.getenv("DEMO_DIR") or "build/demo"
os.execute("mkdir -p " .. dir .. "/prompts")

-- the callee: answers after 800 ms, presses 1 half a second after the prompt ends
local scenario = dir .. "/scenario.lua"
local f = assert(io.open(scenario, "w"))
f:write([[return { peers = { ["+12345678901"] = { answer = 800, { on = "promptEnd", after = 500, press = "1" } } } }]])
f:close()

-- the prompt the service will fetch from the bot: 16 kHz mono 16-bit, as Graph requires
f = assert(io.open(dir .. "/prompts/welcome.wav", "wb"))
f:write(wav.tone { ms = 1200, hz = 523 })
f:close()

-- 1. the emulator, its own process on a free port
local emu = assert(io.popen(string.format(
  "sh -c 'echo $$; exec %s bin/graphcall emulate --port 0 --quiet --scenario %s'", lua, scenario)))
local pid = emu:read("*l")
local url = (emu:read("*l") or ""):match("listening on (%S+)")
if not url then
  io.stderr:write("demo: the emulator did not start\n")
  os.exit(1)
end
print("emulator  " .. url)

-- 2. the bot: loop, client, listener
local loop = graphcall.loop()
local client = graphcall.client {
  tenantId = "aa67bd4c-8475-432d-bd41-39f255720e0a", clientId = "demo-app", clientSecret = "demo-secret",
  authority = url, graphUrl = url .. "/v1.0", openidUrl = url .. "/v1/.well-known/OpenIdConfiguration",
  loop = loop,
}

local t0 = loop:now()
local waiting = {}   -- tasks waiting for an event: {pred, done}

local function describe(ev)
  if ev.kind == "call" and ev.toneInfo then return "tone " .. ev.toneInfo.tone end
  if ev.kind == "call" then
    local ri = ev.resultInfo
    local why = ri and string.format(" (%s/%s %s)", ri.code, ri.subcode, ri.message) or ""
    return "state " .. tostring(ev.state) .. why
  end
  if ev.kind == "operation" then return ev.operationType .. " " .. ev.status end
  return ev.kind
end

local listener = assert(graphcall.listener {
  loop = loop, verifier = client:verifier(), files = dir .. "/prompts",
  on_event = function(ev, claims)
    print(string.format("%7.3f s  call %s  %-8s %s  [signed for %s]", (loop:now() - t0) / 1000,
      ev.callId:sub(1, 8), ev.changeType, describe(ev), claims.aud))
    for i = #waiting, 1, -1 do
      local w = waiting[i]
      if w.pred(ev) then
        table.remove(waiting, i)
        w.done(ev)
      end
    end
  end,
})
print("bot       " .. listener:url() .. "  (prompts under " .. listener:url("/prompts/") .. ")")

local function next_event(pred)
  return loop:await(function(done) waiting[#waiting + 1] = { pred = pred, done = done } end)
end

-- 3. the call, as the reference page's ex09: a bot's application instance calls a phone number
local ok = false
loop:spawn(function()
  local call, err = client:create_call {
    callbackUri = listener:url(),
    source = { identity = { applicationInstance = { id = "3d913abb-aec0-4964-8fa6-3c6850c4f278",
                                                    displayName = "Calling Bot" } } },
    targets = { { identity = { phone = { id = "+12345678901" } } } },
    requestedModalities = { "audio" },
    mediaConfig = graphcall.serviceHostedMediaConfig {},
    tenantId = "aa67bd4c-8475-432d-bd41-39f255720e0a",
  }
  if not call then error("create_call: " .. tostring(err)) end
  print(string.format("%7.3f s  call %s  created (201, state %s)", (loop:now() - t0) / 1000,
    call.id:sub(1, 8), call.state))
  next_event(function(ev) return ev.callId == call.id and ev.state == "established" end)
  assert(client:subscribeToTone(call.id, {}))
  local op = assert(client:playPrompt(call.id, { clientContext = "welcome", prompts = {
    graphcall.mediaPrompt { mediaInfo = { uri = listener:url("/prompts/welcome.wav"), resourceId = "welcome" } } } }))
  print(string.format("%7.3f s  call %s  playPrompt sent (operation %s, %s)", (loop:now() - t0) / 1000,
    call.id:sub(1, 8), op.id:sub(1, 8), op.status))
  local key = next_event(function(ev) return ev.callId == call.id and ev.toneInfo ~= nil end)
  print(string.format("%7.3f s  call %s  the callee pressed %s: hanging up", (loop:now() - t0) / 1000,
    call.id:sub(1, 8), key.toneInfo.tone))
  assert(client:hangup(call.id))
  next_event(function(ev) return ev.callId == call.id and ev.state == "terminated" end)
  ok = true
end)

local finished = loop:run_until(function() return ok end, 15000)
local s = listener.stats
print(string.format("notifications: %d received, %d dispatched, %d refused", s.received, s.dispatched, s.rejected))
listener:close()
loop:close()
os.execute("kill " .. pid)
emu:close()
if not finished then
  io.stderr:write("demo: the call did not finish in time\n")
  os.exit(1)
end
print("demo: done")
