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
-- each of the three serves from a process of its own, as a bot does, and this one only drives
-- wrk: the listener served from here (it did until 2026-12-01) shared its turns with the
-- driver's polling for wrk's output, which the baseline did not; under LuaJIT, traces the
-- rounds of one compiled in the same process slowed another (the bare baseline's rate fell to
-- a fifth in some runs of `make bench`, for ratios over 200%)
if arg[1] == "--bare" then
  -- (the bodies as the listener takes them: bytes, not strings, under LuaJIT)
  local bare = assert(loop:listen({ port = 0, raw_body = jit ~= nil }, function(req) req:respond(202) end))
  io.write("http://127.0.0.1:", bare:port(), "/callback\n")
  io.flush()
  loop:run()
  return
end
-- the listener with its verified-token cache (a bot with one token), or without it (`--uncached`:
-- every notification pays for RS256); GET /count answers the events it dispatched
if arg[1] == "--cached" or arg[1] == "--uncached" then
  local listener = assert(graphcall.listener { loop = loop, on_event = function() events = events + 1 end,
    verifier = assert(jwt.new { appId = APP, jwks = util.read(arg[2]), cache = arg[1] == "--uncached" and 0 or nil }),
    on_request = function(req) req:respond(200, nil, tostring(events)) end })
  io.write(listener:url(), "\n")
  io.flush()
  loop:run()
  return
end
local key = core.rsa_key()
local token = key:sign(cjson.encode { alg = "RS256", typ = "JWT", kid = "k1" }, cjson.encode {
  aud = APP, iss = "https://api.botframework.com", nbf = os.time() - 60, exp = os.time() + 3600, tid = "t" })
local jwks_file = os.tmpname()
local jf = assert(io.open(jwks_file, "w"))
jf:write('{"keys":[' .. key:jwk("k1") .. "]}")
jf:close()
local function serve(flag)
  local proc = assert(io.popen(string.format("sh -c 'echo $$; exec %s bench/listener.lua %s'",
    arg[-1] or "lua5.4", flag)))
  return proc, proc:read("*l"), proc:read("*l")
end
local bare_proc, bare_pid, bare_url = serve("--bare")
local li_proc, li_pid, li_url = serve("--cached " .. jwks_file)
local un_proc, un_pid, un_url = serve("--uncached " .. jwks_file)

-- wrk runs while this process waits: it serves nothing. Each run's key presses are news (their
-- sequenceIds go on from where the last run's stopped): a repeat is dropped by the tracker at
-- a fraction of the cost, and rounds of repeats measured a cheaper listener than a bot has
local runs = 0
local function wrk(url)
  runs = runs + 1
  local p = io.popen(string.format("GC_OFFSET=%d GC_TOKEN=%s wrk -t1 -c32 -d%ds --latency -s bench/wrk-notify.lua %s"
    .. " 2>&1", runs * 10000000, token, SECONDS, url))
  local text = p:read("*a")
  p:close()
  return util.wrk_result(text)
end

-- rounds alternating between the three until the bare baseline holds still (util.rounds)
local urls = { listener = li_url, uncached = un_url, bare = bare_url }
local errs = {}
local res, stable = util.rounds({ "listener", "uncached", "bare" }, "bare", function(name)
  local r = wrk(urls[name])
  errs[name] = (errs[name] or 0) + r.errors   -- over every round
  return r
end)
local l, u, b = res.listener, res.uncached, res.bare
local counted = assert(loop:fetch { url = li_url:gsub("/callback$", "/count"), timeout = 10000 })
events = tonumber(counted.body) or 0
print(string.format("listener (%s; %s): %.0f signed notifications/s (median; rounds %.0f-%.0f; best round's p50 %s, "
  .. "p99 %s), bare 202 %.0f/s (rounds %.0f-%.0f); ratio %s; errors %d (bare %d); %d events dispatched",
  util.lua, util.loadavg(), l.median, l.lo, l.hi, l.best.p50, l.best.p99, b.median, b.lo, b.hi,
  util.ratio(l, b, stable, 0.70), errs.listener, errs.bare, events))
print(string.format("listener (%s) verifying RS256 on every notification (no token cache): %.0f/s (median); "
  .. "ratio %s; errors %d", util.lua, u.median, util.ratio(u, b, stable), errs.uncached))
loop:close()
os.execute("kill " .. bare_pid .. " " .. li_pid .. " " .. un_pid)
bare_proc:close()
li_proc:close()
un_proc:close()
os.remove(jwks_file)
