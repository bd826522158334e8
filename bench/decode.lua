-- bench/decode.lua: JSON text to Lua tables, graphcall.decode against cjson.decode in the
-- same run, on the ex05 roster notification and a generated 1000-participant roster.
local cjson = require "cjson"
local graphcall = require "graphcall"
package.path = "./bench/?.lua;" .. package.path
local roster = require "roster"

local shared = os.getenv("GRAPHCALL_SHARED") or "../shared"
local function read(p) local f = assert(io.open(p, "rb")); local s = f:read("*a"); f:close(); return s end

local function rate(fn, seconds)
  for _ = 1, 20 do fn() end
  local n, batch, t0, t = 0, 20, os.clock(), 0
  repeat
    for _ = 1, batch do fn() end
    n = n + batch
    t = os.clock() - t0
  until t >= seconds
  return n / t
end

local lua = jit and jit.version or _VERSION
for _, case in ipairs {
  { "ex05 roster", read(shared .. "/fixtures/seed/ex05-join-meeting-service-media/notify-3-roster-full.json") },
  { "1000-participant roster", roster.text(1000) },
} do
  local name, text = case[1], case[2]
  assert(graphcall.decode(text))
  local g, c = 0, 0
  for _ = 1, 3 do
    g = math.max(g, rate(function() return graphcall.decode(text) end, 0.3))
    c = math.max(c, rate(function() return cjson.decode(text) end, 0.3))
  end
  print(string.format("decode %s, %d bytes (%s): graphcall %.1f MB/s, cjson %.1f MB/s; ratio %.2fx",
    name, #text, lua, g * #text / 1e6, c * #text / 1e6, g / c))
end
