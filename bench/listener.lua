-- bench/listener.lua: signed notifications/s through the callback listener (JWT RS256 + parse
-- + tracker + 202, then dispatch), against the same listener machinery answering 202 without
-- looking at the body, in the same run. Load from wrk (its own process, one thread, 32
-- connections); latency percentiles and the count of answers that were not 202.
local cjson = require "cjson"
local graphcall = require "graphcall"
local core = require "graphcall.core"
local jwt = require "graphcall.jwt"
local util = require "util"

local APP = "11111111-2222-3333-4444-555555555555"
local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "3")

local loop = graphcall.loop { log = false }
local key = core.rsa_key()
local token = key:sign(cjson.encode { alg = "RS256", typ = "JWT", kid = "k1" }, cjson.encode {
  aud = APP, iss = "https://api.botframework.com", nbf = os.time() - 60, exp = os.time() + 3600, tid = "t" })
local verifier = assert(jwt.new { appId = APP, jwks = '{"keys":[' .. key:jwk("k1") .. "]}" })

local events = 0
local listener = assert(graphcall.listener { loop = loop, verifier = verifier,
  on_event = function() events = events + 1 end })
-- the same without the verified-token cache: every notification pays for RS256
local uncached = assert(graphcall.listener { loop = loop, on_event = function() events = events + 1 end,
  verifier = assert(jwt.new { appId = APP, jwks = '{"keys":[' .. key:jwk("k1") .. "]}", cache = 0 }) })
local bare = assert(loop:listen({ port = 0 }, function(req) req:respond(202) end))

-- run wrk in the background while the loop serves; parse what it printed
local function wrk(url)
  local out = os.tmpname()
  os.execute(string.format("(GC_TOKEN=%s wrk -t1 -c32 -d%ds --latency -s bench/wrk-notify.lua %s > %s.part 2>&1;"
    .. " mv %s.part %s.done) &", token, SECONDS, url, out, out, out))
  local f
  local tick = loop:every(20, function() end)
  loop:run_until(function()
    f = io.open(out .. ".done")
    return f ~= nil
  end, (SECONDS + 30) * 1000)
  tick:cancel()
  local text = assert(f, "wrk did not finish"):read("*a")
  f:close()
  os.remove(out .. ".done")
  os.remove(out)
  return util.wrk_result(text)
end

local best, errs = {}, {}
for _ = 1, 2 do  -- alternating, best of two
  for name, url in pairs { listener = listener:url(), uncached = uncached:url(),
                           bare = "http://127.0.0.1:" .. bare:port() .. "/callback" } do
    local r = wrk(url)
    if not best[name] or r.rate > best[name].rate then best[name] = r end
    errs[name] = (errs[name] or 0) + r.errors   -- over every round, not only the best
  end
end
local l, u, b = best.listener, best.uncached, best.bare
print(string.format("listener (%s): %.0f signed notifications/s (p50 %s, p90 %s, p99 %s), bare 202 %.0f/s "
  .. "(p50 %s, p99 %s); ratio %.0f%%; errors %d (bare %d); %d events dispatched",
  util.lua, l.rate, l.p50, l.p90, l.p99, b.rate, b.p50, b.p99, 100 * l.rate / b.rate, errs.listener, errs.bare, events))
print(string.format("listener (%s) verifying RS256 on every notification (no token cache): %.0f/s "
  .. "(p50 %s, p99 %s); ratio %.0f%%; errors %d", util.lua, u.rate, u.p50, u.p99, 100 * u.rate / b.rate, errs.uncached))
loop:close()
