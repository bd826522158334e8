-- rock-load.lua: run by tools/rock-check.sh under each interpreter against the installed rock.
local g = require "graphcall"
require "graphcall.tracker"
require "graphcall.jwt"
local evs = assert(g.parse_notifications('{"value":[{"changeType":"updated",'
  .. '"resourceUrl":"/communications/calls/c1","resourceData":{"state":"established"}}]}'))
assert(evs[1].state == "established" and evs[1].callId == "c1")
-- under LuaJIT the events come through the FFI from the installed core library
assert(not jit or package.loaded["graphcall.flat"], "graphcall.flat did not load from the rock")
assert(evs[1].data.state == "established")
local json = assert(g.build("call", { callbackUri = "https://bot.example.com/cb",
  requestedModalities = { "audio" }, mediaConfig = g.serviceHostedMediaConfig {},
  targets = { { identity = { user = { id = "u1" } } } } }))
assert(json:find('"#microsoft.graph.invitationParticipantInfo"', 1, true))
print((jit and jit.version or _VERSION) .. ": graphcall from the rock tree builds a call (" .. #json .. " bytes)")
-- the I/O half and the command
local loop = require("graphcall.loop").new { log = false }
local srv = assert(loop:listen({ port = 0 }, function(req) req:respond(204) end))
local res = assert(loop:fetch { url = "http://127.0.0.1:" .. srv:port() .. "/" })
assert(res.status == 204)
require "graphcall.client"
require "graphcall.listener"
require "graphcall.emulator"
for _, m in ipairs { "wire", "strict", "files", "call", "bot", "ivr", "script", "store", "runtime", "test", "trace",
                     "redis", "redisstore", "check" } do require("graphcall." .. m) end
print((jit and jit.version or _VERSION) .. ": graphcall.io answers on loopback")
