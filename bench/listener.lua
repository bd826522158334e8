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
local events = 0
-- the bare baseline serves from a process of its own: under LuaJIT, traces the listener's
-- rounds compiled in the same process could slow it down (its rate fell to a fifth in some
-- runs of `make bench`, for ratios over 200%)
if arg[1] == "--bare" then
  -- (the bodies as the listener takes them: bytes, not strings, under LuaJIT)
  local bare = assert(loop:listen({ port = 0, raw_body = jit ~= nil }, function(req) req:respond(202) end))
  io.write("http://127.0.0.1:", bare:port(), "/callback\n")
  io.flush()
  loop:run()
  return
end
-- the same without the verified-token cache (every notification pays for RS256) serves from a
-- process of its own too: under LuaJIT, the listener's rate fell to a third after rounds of it
-- in the same process in some runs (traces), which is not what a bot with one token sees
if arg[1] == "--uncached" then
  local uncached = assert(graphcall.listener { loop = loop, on_event = function() events = events + 1 end,
    verifier = assert(jwt.new { appId = APP, jwks = util.read(arg[2]), cache = 0 }) })
  io.write(uncached:url(), "\n")
  io.flush()
  loop:run()
  return
end
local key = core.rsa_key()
local token = key:sign(cjson.encode { alg = "RS256", typ = "JWT", kid = "k1" }, cjson.encode {
  aud = APP, iss = "https://api.botframework.com", nbf = os.time() - 60, exp = os.time() + 3600, tid = "t" })
local verifier = assert(jwt.new { appId = APP, jwks = '{"keys":[' .. key:jwk("k1") .. "]}" })

local listener = assert(graphcall.listener { loop = loop, verifier = verifier,
  on_event = function() events = events + 1 end })
local function serve(flag)
  local proc = assert(io.popen(string.format("sh -c 'echo $$; exec %s bench/listener.lua %s'",
    arg[-1] or "lua5.4", flag)))
  return proc, proc:read("*l"), proc:read("*l")
end
local bare_proc, bare_pid, bare_url = serve("--bare")
local jwks_file = os.tmpname()
local jf = assert(io.open(jwks_file, "w"))
jf:write('{"keys":[' .. key:jwk("k1") .. "]}")
jf:close()
local un_proc, un_pid, un_url = serve("--uncached " .. jwks_file)

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

-- rounds alternating between the three until the bare baseline holds still (util.rounds)
local urls = { listener = listener:url(), uncached = un_url, bare = bare_url }
local errs = {}
local res, stable = util.rounds({ "listener", "uncached", "bare" }, "bare", function(name)
  local r = wrk(urls[name])
  errs[name] = (errs[name] or 0) + r.errors   -- over every round
  return r
end)
local l, u, b = res.listener, res.uncached, res.bare
print(string.format("listener (%s; %s): %.0f signed notifications/s (median; rounds %.0f-%.0f; best round's p50 %s, "
  .. "p99 %s), bare 202 %.0f/s (rounds %.0f-%.0f); ratio %s; errors %d (bare %d); %d events dispatched",
  util.lua, util.loadavg(), l.median, l.lo, l.hi, l.best.p50, l.best.p99, b.median, b.lo, b.hi,
  util.ratio(l, b, stable), errs.listener, errs.bare, events))
print(string.format("listener (%s) verifying RS256 on every notification (no token cache): %.0f/s (median); "
  .. "ratio %s; errors %d", util.lua, u.median, util.ratio(u, b, stable), errs.uncached))
loop:close()
os.execute("kill " .. bare_pid .. " " .. un_pid)
bare_proc:close()
un_proc:close()
os.remove(jwks_file)
