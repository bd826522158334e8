--- graphcall inside OpenResty: the same bots, in nginx workers, without blocking any of them;
-- any worker takes any callback.
--
--   lua_shared_dict graphcall 64m;
--   init_worker_by_lua_block {
--     require("graphcall.ngx").init { script = "/etc/bot/ivr.lua", client = { tenantId = ..., ... },
--                                     callbackUri = "https://bot.contoso.com/callback",
--                                     promptBase = "https://bot.contoso.com/prompts/", prompts = "/srv/prompts" }
--   }
--   location = /callback { content_by_lua_block { require("graphcall.ngx").handle() } }
--   location /prompts/   { alias /srv/prompts/; }
--
-- **The handler** reads the body (size-limited), verifies the JWT (403, nothing dispatched),
-- parses (400), answers 202 at once and dispatches in `ngx.timer.at` (the service wants a
-- fast acknowledgement).
--
-- **State across workers.** Each call's tracker state and event log live in the shared dict
-- (`graphcall.ngx.store`), and a per-call lock (an `add` with a TTL in the same dict) lets one
-- worker at a time run a call. A flow is not kept in any worker's memory: for each event, the
-- worker that got it takes the lock, replays the call's log into a fresh coroutine (the
-- durable flows of `graphcall.bot`), appends the event, runs the flow until it waits again,
-- writes where it waits (its deadline) and lets go. A sweeper in every worker brings back
-- flows whose deadline has passed and sends keepAlive for live calls. So a call survives the
-- worker that ran it, `nginx -s reload`, and a full shared dict only as far as nginx keeps its
-- entries: see the README for the limits.
--
-- **Transport.** Cosockets (`graphcall.ngx.http`); the token, the OpenID document and the
-- JWKS are cached in the shared dict for all workers, refreshed by one worker at a time. No
-- libcurl, no blocking call, in any phase. The C core used here is the wire half only.
-- @module graphcall.ngx
local wire = require "graphcall.wire"
local jwt = require "graphcall.jwt"
local nloop = require "graphcall.ngx.loop"
local dictstore = require "graphcall.ngx.store"
local client_mod = require "graphcall.client"
local redis = require "graphcall.redis"
local storemod = require "graphcall.store"
local botmod = require "graphcall.bot"
local scripts = require "graphcall.script"
local strict = require "graphcall.strict"
local metrics_mod = require "graphcall.metrics"
local logs = require "graphcall.log"

local M = {}

-- ---- the bot of this worker ---------------------------------------------------------------

local state = {}   -- this worker's: bot, dict, options

-- a timer's function: fn(...) unless nginx is exiting
local function run(premature, fn, ...)
  if not premature then return fn(...) end
end

-- Tokens for all workers: one fetch at a time, the token in the dict until its end.
local function shared_tokens(client, dict)
  local fetch = client._with_token
  client._with_token = function(self, tenant, cb)
    tenant = tenant or self.tenantId
    local key = "tok:" .. tenant
    local tok = dict:get(key)
    if tok then return cb(tok) end
    local release = dictstore.lock(dict, "toklock:" .. tenant, 30, 30)
    tok = dict:get(key)
    if tok then
      if release then release() end
      return cb(tok)
    end
    self.tokens[tenant] = nil
    fetch(self, tenant, function(token, err)
      if token then
        local t = self.tokens[tenant]
        local life = (t and t.life or 3599)
        dict:safe_set(key, token, math.max(1, life - math.min(self.refreshBefore, life / 2)))
      end
      if release then release() end
      cb(token, err)
    end)
  end
end

-- Callback keys for all workers: the JWKS text in the dict; each worker builds its verifier.
local function shared_keys(verifier, dict)
  local refresh = verifier.refresh
  local function adopt()
    local text = dict:get("jwks")
    if text and text ~= verifier.jwksText then
      if verifier.jwt then
        verifier.jwt:set_keys(text)
      else
        verifier.jwt = jwt.new { appId = verifier.appId, jwks = text, issuers = verifier.issuers, skew = verifier.skew }
      end
      verifier.jwksText = text
      verifier.fetched = ngx.now() * 1000
    end
  end
  verifier.refresh = function(self, cb)
    cb = cb or function() end
    -- what failed to verify was checked against these keys: keys other than these in the dict
    -- once the lock is ours were fetched meanwhile (by the burst of callbacks that came with
    -- this one, as a rule), and are taken instead of fetching again
    local had = self.jwksText
    local release = dictstore.lock(dict, "jwkslock", 30, 30)
    local text, fetchedAt = dict:get("jwks"), dict:get("jwksAt")
    if (text and text ~= "" and text ~= had)
       or (fetchedAt and ngx.now() * 1000 - fetchedAt < self.minRefetch) then   -- another just did
      adopt()
      if release then release() end
      return cb(self.jwt ~= nil)
    end
    refresh(self, function(ok, err)
      if ok then
        dict:safe_set("jwks", self.jwksText or "", 0)
        dict:safe_set("jwksAt", ngx.now() * 1000, 0)
      end
      if release then release() end
      cb(ok, err)
    end)
  end
  verifier.adopt = adopt
  return verifier
end

local OPTIONS = { "script", "flow", "flows", "on", "setup", "client", "callbackUri", "promptBase", "prompts",
  "voice", "speak", "dict", "logFormat", "node",
  "verify", "maxBody", "keepAlive", "waitLimit", "ttl", "sweep", "reserve", "redis", "lease", "http", "minRefetch" }

--- Set up this worker (init_worker_by_lua).
--
-- Handlers (`on = {incoming = fn, tone = fn, ...}`, or `setup = function(bot) bot:on(...) end`,
-- which runs in every worker) get each event in whichever worker takes it, under the call's
-- lock. Nothing of a call stays in a worker between events: `call:action` sends, and what it
-- started completes as an `operation` event, not through the Operation object (which lives
-- only until the handler returns). Sequences that wait belong in flows, which are durable.
-- @param o `script` (a flow script as `graphcall run` takes: `flow`, `flows`, `on`; its
--   `start` is not run: in nginx place calls from a request handler) or `flow`/`flows`/`on`/
--   `setup`; `client`
--   (options of `graphcall.client`); `callbackUri` (the public URL of the handler's location);
--   `promptBase` (the public URL under which nginx serves `prompts`); `prompts` (the folder);
--   `voice` and `speak` (spoken text, as `graphcall.bot`'s: the program runs as a child
--   process the worker polls);
--   `dict` ("graphcall"); `verify` (false: accept unsigned callbacks; tests only); `maxBody`
--   (bytes, 1 MiB); `keepAlive` (ms, 15 min); `waitLimit`; `ttl` (seconds an ended call's
--   log is kept, 3600); `sweep` (ms between sweeps, 250); `reserve` (bytes of the dict kept
--   free: below it callbacks are answered 503 with Retry-After; 1/16 of the dict, at most 4 MiB);
--   `redis` ("redis://[user:password@]host:port", or {host =, port =, user =,
--   password =}: keep the calls in Redis, shared with other nginx instances, instead of the
--   dict; a Redis Cluster: "redis://host:port,redis://host:port,..." or {cluster = ...},
--   `graphcall.redis`'s options, and `buckets`, `graphcall.store.redis`'s); `lease` (seconds
--   a worker holds a call while it runs it, renewed meanwhile, 1.5: when a worker or an
--   instance dies holding it, the call waits that long, and a quarter second, for another);
--   `logFormat` ("json": one JSON object a message in the error log, `graphcall.log`'s fields;
--   "text" by default), `node` (names this nginx in them)
function M.init(o)
  strict.options(o, OPTIONS, "graphcall.ngx.init")
  local dict = ngx.shared[o.dict or "graphcall"]
  if not dict then error("graphcall.ngx: no lua_shared_dict " .. tostring(o.dict or "graphcall"), 2) end
  if o.logFormat ~= nil and o.logFormat ~= "text" and o.logFormat ~= "json" then
    strict.fail("graphcall.ngx.init: logFormat: \"text\" or \"json\", got " .. tostring(o.logFormat))
  end
  local loop = nloop.new { http = o.http, logFormat = o.logFormat, node = o.node }
  local copts = {}
  for k, v in pairs(o.client or {}) do copts[k] = v end
  copts.loop = loop
  -- counted in the dict: /metrics of any worker shows the sum over all of them
  local metrics = metrics_mod.new { dict = dict }
  copts.metrics = metrics
  local client = client_mod.new(copts)
  shared_tokens(client, dict)
  -- the calls' state: this nginx's shared dict, or Redis shared by several nginx (and nodes)
  local store
  if o.redis then
    -- a list of URLs (a comma between them) is a Redis Cluster's nodes
    local ro = o.redis
    if type(ro) == "string" then ro = ro:find(",", 1, true) and { cluster = ro } or { url = ro } end
    local r = redis.new(ro)
    store = storemod.redis { redis = r, ttl = o.ttl, clock = ngx.now, buckets = ro.buckets,
                             sleep = function(ms) ngx.sleep(ms / 1000) end }
  else
    store = dictstore.new(dict, o.ttl)
  end
  local stub = { url = function(_, path) return path or o.callbackUri end, close = function() end }
  local bot = assert(botmod.new { client = client, listener = stub, callbackUri = o.callbackUri, metrics = metrics,
    node = o.node,
    promptBase = o.promptBase, prompts = o.prompts, voice = o.voice, speak = o.speak, store = store,
    keepAlive = o.keepAlive,
    waitLimit = o.waitLimit, log = loop.log, lease = o.lease, host = {
      go = function(fn, ...) return ngx.timer.at(0, run, fn, ...) end,
      now = function() ngx.update_time() return ngx.now() * 1000 end,
      sleep = function(ms) ngx.sleep(ms / 1000) end,
      every = function(ms, fn)
        local t = { cancel = function(self) self.cancelled = true end }
        local function tick(premature)
          if premature or t.cancelled then return end
          fn()
          if not t.cancelled then ngx.timer.at(ms / 1000, tick) end
        end
        ngx.timer.at(ms / 1000, tick)
        return t
      end,
      where = function() return "worker " .. ngx.worker.id() end,
    } })
  local script = o.script and assert(scripts.load(o.script)) or {}
  scripts.apply(bot, { flow = o.flow or script.flow, flows = o.flows or script.flows, on = o.on or script.on })
  if o.setup then o.setup(bot) end
  state.bot, state.dict, state.loop, state.opts, state.store = bot, dict, loop, o, store
  state.metrics = metrics
  state.say = logs.repeated(loop.log, 10000, function() return ngx.now() * 1000 end)
  state.verifier = o.verify ~= false and shared_keys(client:verifier { minRefetch = o.minRefetch }, dict) or nil
  stub.verifier = state.verifier   -- what /readyz checks
  state.maxBody = o.maxBody or 1048576
  state.runtime = bot.runtime
  state.reserve = o.reserve or math.min(dict:capacity() / 16, 4 * 1048576)
  -- the sweeper: flows whose deadline has passed, and keepAlive
  ngx.timer.every((o.sweep or 250) / 1000, function(premature)
    if premature then return end
    local ok, err = pcall(M.sweep)
    if not ok then ngx.log(ngx.ERR, "graphcall: sweep failed: ", err) end
  end)
  return bot
end

--- The bot of this worker (after init).
function M.bot() return state.bot end

--- Bring back the flows whose deadline has passed, send keepAlive to the calls due for it
-- (every worker sweeps; the call's lease keeps one at a time on a call).
function M.sweep() return state.runtime:sweep() end

local function respond(status, body)
  ngx.status = status
  if body then
    ngx.header["Content-Type"] = "application/json"
    ngx.print(body)
  end
  return ngx.exit(status)
end

-- A callback refused: counted (the sum over workers is in /metrics)
local function refuse(status, body)
  state.metrics:inc("refused", 1, tostring(status))
  return respond(status, body)
end

-- The body: in memory, or in the file nginx spooled it to (a body over
-- client_body_buffer_size), up to maxBody; nil when it is larger.
local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return #body <= state.maxBody and body or nil end
  local path = ngx.req.get_body_file()
  if not path then return "" end
  local f = io.open(path, "rb")   -- a local file nginx just wrote: the read does not wait on the network
  if not f then return nil end
  local size = f:seek("end")
  if not size or size > state.maxBody then
    f:close()
    return nil
  end
  f:seek("set")
  body = f:read("*a")
  f:close()
  return body
end

--- The content handler of the callback location.
function M.handle()
  if ngx.req.get_method() ~= "POST" then
    ngx.header["Allow"] = "POST"
    return respond(405)
  end
  state.metrics:inc("received")
  local len = tonumber(ngx.var.http_content_length or "")
  if len and len > state.maxBody then return refuse(413) end
  local body = read_body()
  if not body then return refuse(413) end
  local claims
  local v = state.verifier
  if v then
    v.adopt()
    local err
    claims, err = v:verify(ngx.var.http_authorization)
    if not claims and (err.code == "unknown_kid" or err.code == "no_keys") then
      v:refresh()
      claims, err = v:verify(ngx.var.http_authorization)
    end
    if not claims then
      state.say("403", "warn", "callback refused (403): " .. tostring(err.code) .. ": " .. tostring(err.message))
      return refuse(403)
    end
  end
  -- room for what this body will write, or the service is told to come back (nothing of a
  -- notification answered 202 may fail for want of space)
  local dict = state.dict
  if not state.opts.redis and dict:free_space() < state.reserve then
    state.say("full", "error", "the shared dict is nearly full (" .. dict:free_space() .. " bytes free); "
      .. "callbacks answered 503")
    ngx.header["Retry-After"] = "1"
    return refuse(503)
  end
  local events, perr = wire.parse_notifications(body)
  if not events and wire.legacy(body) then   -- "204, and it comes again in Graph's format"
    ngx.log(ngx.INFO, "graphcall: callback in the legacy format: 204, for the same in Graph's format")
    return respond(204)
  end
  if not events then
    state.say("400", "warn", "callback body refused: " .. tostring(perr.message))
    return refuse(400, '{"error":{"code":"BadRequest","message":"not a commsNotifications body"}}')
  end
  for _, ev in ipairs(events) do
    if ev.incoming then wire.materialize(ev) end   -- the caller's identity goes into the log
  end
  -- with Redis, the events are in their calls' inboxes before the 202 (nothing accepted is lost)
  if not state.runtime:accept(events, claims) then return refuse(503) end
  return respond(202)
end

--- The content handler of a `/metrics` location: the counters of every worker, summed
-- (Prometheus's text format, `graphcall.metrics`).
function M.metrics()
  ngx.header["Content-Type"] = metrics_mod.CONTENT_TYPE
  ngx.print(state.bot:render_metrics())
  return ngx.exit(200)
end

--- The content handler of a `/calls` location (prefix): the live calls page at `/calls`, each
-- call's trace at `/calls/<id>` (`graphcall.trace.calls_page`).
function M.calls()
  local id = ngx.var.uri:match("^/calls/(.+)$")
  local ok, page = pcall(state.bot.calls_page, state.bot, id)
  ngx.header["Content-Type"] = ok and page and "text/html; charset=utf-8" or "text/plain"
  if not ok then
    ngx.status = 503
    ngx.print("the store is unreachable\n")
    return ngx.exit(503)
  end
  if not page then
    ngx.status = 404
    ngx.print("no such call\n")
    return ngx.exit(404)
  end
  ngx.print(page)
  return ngx.exit(200)
end

--- The content handler of a `/healthz` location: 200 while the worker answers.
function M.healthz()
  ngx.header["Content-Type"] = "text/plain"
  ngx.print("ok\n")
  return ngx.exit(200)
end

--- The content handler of a `/readyz` location: 200 when a token, the callback keys and the
-- store are at hand (each tried now), else 503; one line each.
function M.readyz()
  local ready, checks = state.bot:readiness()
  local out = {}
  for _, k in ipairs { "token", "keys", "store" } do
    out[#out + 1] = k .. ": " .. (checks[k] == true and "ok" or tostring(checks[k]))
  end
  ngx.status = ready and 200 or 503
  ngx.header["Content-Type"] = "text/plain"
  ngx.print(table.concat(out, "\n"), "\n")
  return ngx.exit(ngx.status)
end

return M
