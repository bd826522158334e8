-- bench/build.lua: request-building throughput, graphcall.build("call", ex05) against
-- cjson.encode of the same Lua table in the same run. Prints one line per interpreter.
local cjson = require "cjson"
local graphcall = require "graphcall"

local shared = os.getenv("GRAPHCALL_SHARED") or "../shared"
local f = assert(io.open(shared .. "/fixtures/seed/ex05-join-meeting-service-media/request.json", "rb"))
local spec = cjson.decode(f:read("*a"))
f:close()

local function rate(fn, seconds)
  -- warm up, then run batches until the time is spent
  for _ = 1, 2000 do fn() end
  local n, batch = 0, 2000
  local t0 = os.clock()
  local t
  repeat
    for _ = 1, batch do fn() end
    n = n + batch
    t = os.clock() - t0
  until t >= seconds
  return n / t
end

local bytes = #assert(graphcall.build("call", spec))
local best_b, best_c = 0, 0
for _ = 1, 3 do -- best of three, alternating, so a noisy moment hurts both sides alike
  best_b = math.max(best_b, rate(function() return graphcall.build("call", spec) end, 0.4))
  best_c = math.max(best_c, rate(function() return cjson.encode(spec) end, 0.4))
end
local lua = jit and jit.version or _VERSION
print(string.format(
  "build ex05 (%s): graphcall.build %.0f req/s (%.1f MB/s, validated), cjson.encode %.0f req/s; ratio %.2fx",
  lua, best_b, best_b * bytes / 1e6, best_c, best_b / best_c))
