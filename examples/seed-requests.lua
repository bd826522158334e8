-- examples/seed-requests.lua (make demo): build the create-call request of every scenario of
-- Graph's "Create call" reference page, from Lua specs that leave out every @odata.type
-- graphcall can infer, and show one call written by hand.
local graphcall = require "graphcall"

-- 1. A call written by hand: a bot (application instance) dials a phone number.
local json, err = graphcall.build("call", {
  callbackUri = "https://bot.contoso.com/callback",
  source = { identity = { applicationInstance = { id = "3d913abb-aec0-4964-8fa6-3c6850c4f278",
                                                  displayName = "Calling Bot" } } },
  targets = { { identity = { phone = { id = "+12345678901" } } } },
  requestedModalities = { "audio" },
  mediaConfig = graphcall.serviceHostedMediaConfig {},
  tenantId = "aa67bd4c-8475-432d-bd41-39f255720e0a",
})
print("-- a PSTN call written in Lua:")
print(json or tostring(err))

-- 2. A mistake, and what graphcall says about it.
local _, e = graphcall.build("call", {
  callbackUri = "http://bot.contoso.com/callback",
  targets = { { identity = { user = { id = "112f7296" } } } },
  requestedModalities = { "audio" },
  mediaConfig = graphcall.serviceHostedMediaConfig {},
})
print("\n-- an http callbackUri is refused:")
print(string.format("code=%s path=%s message=%s", e.code, e.path, e.message))

-- 3. The ten reference scenarios.
local fixtures = os.getenv("GRAPHCALL_FIXTURES") or "spec/fixtures"
local seeds = {
  "ex01-p2p-voip-service-media", "ex02-p2p-voip-app-media", "ex03-group-call-service-media",
  "ex04-group-call-app-media", "ex05-join-meeting-service-media", "ex06-join-meeting-app-media",
  "ex07-join-meeting-id-passcode", "ex08-join-meeting-id", "ex09-p2p-pstn-service-media",
  "ex10-p2p-pstn-app-media",
}

-- drop the annotations graphcall infers (all but the polymorphic mediaConfig/meetingInfo)
local function strip(v, under)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if k ~= "@odata.type" or under == "mediaConfig" or under == "meetingInfo" then
      out[k] = strip(x, type(k) == "string" and k or under)
    end
  end
  return out
end

for _, ex in ipairs(seeds) do
  local f = io.open(fixtures .. "/seed/" .. ex .. "/request.json", "rb")
  if not f then
    print("\n(" .. ex .. ": fixtures not found under " .. fixtures .. "; set GRAPHCALL_FIXTURES)")
    break
  end
  local spec = assert(graphcall.decode(f:read("*a")))
  f:close()
  local body, berr = graphcall.build("call", strip(spec))
  print("\n-- " .. ex .. " (POST /communications/calls):")
  print(body or ("error: " .. tostring(berr)))
end
