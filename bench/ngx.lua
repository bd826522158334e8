-- bench/ngx.lua: graphcall inside nginx (two workers, loopback).
--
-- 1. Load: wrk POSTs signed notifications (a key press on one of 1,000 calls each) to
--    graphcall.ngx.handle (body limit, RS256 JWT, parse, 202, then the dispatch: lock, tracker,
--    log in the shared dict), against a location in the same nginx that only does
--    cjson.decode and answers 202. Same run, alternating, best of two; rate, latency
--    percentiles, and every answer that was not a 202.
-- 2. Memory: live IVR calls (the emulator's callers wait at the menu), then the shared dict's
--    bytes per live call: the keys and values graphcall wrote, and the dict's used pages.
package.path = "./spec/?.lua;" .. package.path
local cjson = require "cjson"
local graphcall = require "graphcall"
local core = require "graphcall.core"
local E = require "emu"
local N = require "ngx_helper"
local util = require "util"

local APP = "11111111-2222-3333-4444-555555555555"
local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "3")
local LIVE = tonumber(os.getenv("BENCH_LIVE_CALLS") or "200")

if not N.available then
  print("ngx: skipped (no libnginx-mod-http-lua)")
  return
end

-- the bot's keys: served by the same nginx as an OpenID document and its JWKS
local key = core.rsa_key()
local token = key:sign(cjson.encode { alg = "RS256", typ = "JWT", kid = "k1" }, cjson.encode {
  aud = APP, iss = "https://api.botframework.com", nbf = os.time() - 60, exp = os.time() + 3600, tid = "t" })

local emu = E.start { speed = 1 }
-- the emulator signs the callbacks of the live calls: its keys are served beside ours
local ekeys = cjson.decode(E.sh("curl -s " .. cjson.decode(E.sh("curl -s " .. emu.url
  .. "/v1/.well-known/OpenIdConfiguration")).jwks_uri)).keys
local jwks = { cjson.decode(key:jwk("k1")) }
for _, k in ipairs(ekeys) do jwks[#jwks + 1] = k end
local port = N.free_port()
local url = "http://127.0.0.1:" .. port
local nginx = N.start { port = port, dict = "256m", loglevel = "warn", init = string.format([[
  require("graphcall.ngx").init {
    script = "examples/ivr.lua",
    client = { tenantId = "tenant-1", clientId = %q, clientSecret = "s", authority = %q, graphUrl = %q,
               openidUrl = %q },
    callbackUri = %q, promptBase = %q, prompts = "PROMPTS", minRefetch = 0,
  }]], APP, emu.url, emu.url .. "/v1.0", url .. "/openid", url .. "/callback", url .. "/prompts/"),
  locations = string.format([[
    location = /openid { default_type application/json; return 200 '{"jwks_uri": "%s/keys"}'; }
    location = /keys { default_type application/json; return 200 '%s'; }
    location = /bare { content_by_lua_block {
      ngx.req.read_body()
      local ok = pcall(require("cjson").decode, ngx.req.get_body_data() or "")
      ngx.exit(ok and 202 or 400) } }
    location = /stats { content_by_lua_block {
      local d = ngx.shared.graphcall
      local bytes, calls, entries, keys = 0, 0, 0, d:get_keys(0)
      for _, k in ipairs(keys) do
        local v = d:get(k)
        bytes = bytes + #k + (type(v) == "string" and #v or 8)
        if k:find("^log:") then calls, entries = calls + 1, entries + v end
      end
      ngx.print(require("cjson").encode { bytes = bytes, calls = calls, keys = #keys, entries = entries,
        used = d:capacity() - d:free_space() }) } }]], url, cjson.encode { keys = jwks }) }
-- the prompts folder is the prefix's: put it in the config
local conf = nginx.dir .. "/conf/nginx.conf"
local f = assert(io.open(conf))
local text = f:read("*a"):gsub('"PROMPTS"', '"' .. nginx.prompts .. '"')
f:close()
f = assert(io.open(conf, "w"))
f:write(text)
f:close()
nginx.cmd("-s reload")
os.execute("sleep 0.5")

local function wrk(path)
  local out = E.sh(string.format("GC_THREADS=2 GC_TOKEN=%s wrk -t2 -c64 -d%ds --latency -s bench/wrk-notify.lua %s",
    token, SECONDS, url .. path))
  return util.wrk_result(out)
end

local function stats() return cjson.decode(E.sh("curl -s " .. url .. "/stats")) end

-- wrk-notify's bodies go to /callback; the bare location takes the same bodies
local best, errors, sent = {}, { callback = 0, bare = 0 }, 0
for _ = 1, 2 do
  for _, name in ipairs { "callback", "bare" } do
    local r = wrk("/" .. name)
    errors[name] = errors[name] + r.errors
    if name == "callback" then sent = sent + r.sent end
    if not best[name] or r.rate > best[name].rate then best[name] = r end
  end
end
-- every accepted notification is in its call's log once the dispatch is through
local logged
for _ = 1, 100 do
  logged = stats().entries
  if logged >= sent then break end
  os.execute("sleep 0.1")
end
local g, b = best.callback, best.bare
print(string.format("ngx (2 workers): graphcall.ngx.handle %.0f signed notifications/s (p50 %s, p90 %s, "
  .. "p99 %s), cjson.decode + 202 %.0f/s (p50 %s, p99 %s); ratio %.0f%%; errors %d (bare %d); "
  .. "%d of %d accepted notifications logged", g.rate, g.p50, g.p90, g.p99, b.rate, b.p50, b.p99, 100 * g.rate / b.rate,
  errors.callback, errors.bare, logged, sent))

-- ---- memory per live call -------------------------------------------------------------------
local before = stats()
local ctl = graphcall.loop { log = false }
local ids = {}
for i = 1, LIVE do
  local res = assert(ctl:fetch { method = "POST", url = emu.url .. "/emulator/incoming",
    body = cjson.encode { webhook = url .. "/callback", appId = APP, tenantId = "tenant-1",
                          caller = { { on = "prompt", after = 600000, press = "1" } } } })
  ids[i] = cjson.decode(res.body).id
end
-- until every call waits at the menu (its prompt played)
for _ = 1, 600 do
  local waiting = 0
  for i = 1, LIVE, math.max(1, math.floor(LIVE / 20)) do
    local v = cjson.decode(assert(ctl:fetch { url = emu.url .. "/emulator/calls/" .. ids[i] }).body)
    if #(v.prompts or {}) >= 1 then waiting = waiting + 1 end
  end
  if waiting >= math.ceil(LIVE / math.max(1, math.floor(LIVE / 20))) then break end
  ctl:sleep(100)
end
ctl:sleep(500)
local after = stats()
local calls = after.calls - before.calls
print(string.format("ngx shared dict per live IVR call (at the menu, %d calls): %.1f KB of keys and values "
  .. "(%d keys per call), %.1f KB of the dict's pages", calls, (after.bytes - before.bytes) / calls / 1024,
  math.floor((after.keys - before.keys) / math.max(1, calls)), (after.used - before.used) / calls / 1024))
ctl:close()
if os.getenv("BENCH_NGX_LOG") then io.stderr:write(nginx.log()) end
nginx.stop()
emu.stop()
