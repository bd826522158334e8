--- The Graph calling client: tokens, calls, actions and reads over HTTP (libcurl on the loop).
--
--   local graphcall = require "graphcall"
--   local client = graphcall.client { tenantId = T, clientId = APP, clientSecret = SECRET }
--   local call, err = client:create_call { callbackUri = ..., targets = ..., ... }
--   local op = client:playPrompt(call.id, { prompts = { ... } })
--   client:hangup(call.id)
--
-- Every method waits for its answer: inside a task of the loop it yields, elsewhere it runs
-- the loop until the answer is in. Give a function as the last argument instead and the
-- method returns at once and calls it with the result later (`fn(result, err)`): that is the
-- asynchronous path, with any number of requests in flight over reused connections.
--
-- Results: `create_call` gives the call (`call.id`); an action answered `200` with an
-- operation gives that operation (`op.id`, `op.status`, `op.clientContext`, `op.location`);
-- `202` and `204` give `true`. The second value describes the exchange: `{status =,
-- requestId =, clientRequestId =, attempts =, response =}` (`response`: the raw answer).
--
-- Errors are values: nil and `{code =, message =, status =, graphCode =, requestId =,
-- clientRequestId =, retryAfter =, attempts =, ambiguous =}`. `code` is `graph` (Graph
-- answered with an error status), `auth` (no token), a transport failure (`timeout`,
-- `connect`, `tls`, `transport`, `too_large`), `insecure` (plain http to a host that is not
-- loopback), or a `graphcall.build` code for a bad spec (nothing was sent). `ambiguous`
-- says the request went out and its fate is unknown: the action may have run.
--
-- Retries: 429 and 503 (the service refused the request, so any request may be repeated)
-- honour `Retry-After` or back off exponentially with jitter, and a retry after 503 takes a
-- new connection (REFERENCE.md §5.2). A 504, a timeout or a reset after the request went out
-- is retried only for what is safe to run twice (reads, DELETE, keepAlive, subscribeToTone,
-- mute, unmute, updateRecordingStatus, changeScreenSharingRole, cancelMediaProcessing);
-- answer, transfer, playPrompt and the rest are never repeated blindly (§5.2, §10).
-- @module graphcall.client
local core = require "graphcall.core"
local strict = require "graphcall.strict"
local response = require "graphcall.response"
local jwt = require "graphcall.jwt"
local metrics_mod = require "graphcall.metrics"
local wire = require "graphcall.wire"

local M = {}

M.AUTHORITY = "https://login.microsoftonline.com"
M.GRAPH_URL = "https://graph.microsoft.com/v1.0"
--- Where the calling service publishes the keys it signs callbacks with (REFERENCE.md §4.2).
M.OPENID_URL = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
M.SCOPE = "https://graph.microsoft.com/.default"

-- Actions bound to a call (REFERENCE.md §1), and whether running one twice is harmless.
M.CALL_ACTIONS = {
  answer = false, reject = false, redirect = false, transfer = false, playPrompt = false,
  recordResponse = false, sendDtmfTones = false,
  subscribeToTone = true, cancelMediaProcessing = true, keepAlive = true, mute = true,
  unmute = true, updateRecordingStatus = true, changeScreenSharingRole = true,
}

local default_loop

local function fail(code, message, extra)
  local err = { code = code, message = message, path = "" }
  for k, v in pairs(extra or {}) do err[k] = v end
  return setmetatable(err, core.error_mt)
end

--- True for a URL that may be plain http: its host is loopback (127.x, localhost, [::1]).
function M.loopback_url(url)
  local host = url:match("^[Hh][Tt][Tt][Pp]://%[([^%]]+)%]") or url:match("^[Hh][Tt][Tt][Pp]://([^/:?#]+)")
  if not host then return false end
  host = host:lower()
  return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local function check_url(url)
  if url:match("^[Hh][Tt][Tt][Pp][Ss]://") then return true end
  if M.loopback_url(url) then return true end
  return nil, fail("insecure", "refusing plain http to a host that is not loopback: " .. url)
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
M.escape = escape

local function form(t)
  local parts = {}
  for _, kv in ipairs(t) do parts[#parts + 1] = escape(kv[1]) .. "=" .. escape(kv[2]) end
  return table.concat(parts, "&")
end

local Client = {}
Client.__index = Client

local OPTIONS = { "tenantId", "clientId", "clientSecret", "authority", "graphUrl", "openidUrl", "caFile", "loop",
  "metrics", "timeout", "connectTimeout", "retries", "backoff", "maxBackoff", "maxRetryAfter", "refreshBefore", "log",
  "random", "certificate", "key", "assertionAlg" }

--- How a client assertion is typed (RFC 7523), as the token endpoint takes it.
M.ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

--- A client.
-- @param opts `tenantId`, `clientId`, `clientSecret` (required); `authority`
--   (`M.AUTHORITY`), `graphUrl` (`M.GRAPH_URL`), `openidUrl` (`M.OPENID_URL`), `caFile` (CA
--   bundle for TLS; the system's otherwise), `loop` (a `graphcall.loop`; one shared by
--   default), `timeout` (ms per attempt, 30000), `connectTimeout` (ms, 10000), `retries`
--   (3), `backoff` (first delay in ms, 500), `maxBackoff` (30000), `maxRetryAfter` (seconds
--   of Retry-After worth waiting, 120), `refreshBefore` (seconds before expiry a token is
--   renewed, 300), `log`, `metrics` (a `graphcall.metrics` its requests are counted in; its
--   own by default); instead of `clientSecret`, certificate credentials (what Microsoft
--   recommends for production apps): `certificate` and `key` (PEM texts: the certificate
--   registered for the app, and its unencrypted RSA private key), `assertionAlg` ("PS256",
--   with the SHA-256 thumbprint `x5t#S256`, as current MSAL sends; or "RS256", with `x5t`)
-- @return the client; raises on missing credentials (a programming error)
function M.new(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'client' (table expected)", 2) end
  strict.options(opts, OPTIONS, "client")
  local needed = { "tenantId", "clientId", "clientSecret" }
  if opts.certificate ~= nil or opts.key ~= nil then needed = { "tenantId", "clientId", "certificate", "key" } end
  for _, k in ipairs(needed) do
    if type(opts[k]) ~= "string" or opts[k] == "" then
      error("bad argument #1 to 'client' (" .. k .. " is required"
        .. (k == "clientSecret" and ", or certificate and key" or "") .. ")", 2)
    end
  end
  local thumbprints
  if opts.certificate then
    local ok, why = core.x509_key_matches(opts.certificate, opts.key)
    if not ok then error("bad argument #1 to 'client' (certificate and key: " .. why .. ")", 2) end
    thumbprints = core.x509_thumbprints(opts.certificate)
    local alg = opts.assertionAlg
    if alg ~= nil and alg ~= "PS256" and alg ~= "RS256" then
      error("bad argument #1 to 'client' (assertionAlg: \"PS256\" or \"RS256\", got " .. tostring(alg) .. ")", 2)
    end
  end
  local loop = opts.loop
  if not loop then
    -- loaded only here: in nginx a client runs on cosockets, without the I/O half
    default_loop = default_loop or require("graphcall.loop").new()
    loop = default_loop
  end
  local self = setmetatable({
    callTenants = {}, ncallTenants = 0,
    tenantId = opts.tenantId, clientId = opts.clientId, secret = opts.clientSecret,
    certificate = opts.certificate, key = opts.key, thumbprints = thumbprints,
    assertionAlg = opts.assertionAlg or "PS256",
    authority = (opts.authority or M.AUTHORITY):gsub("/+$", ""),
    graphUrl = (opts.graphUrl or M.GRAPH_URL):gsub("/+$", ""),
    openidUrl = opts.openidUrl or M.OPENID_URL,
    caFile = opts.caFile,
    loop = loop,
    timeout = opts.timeout or 30000,
    connectTimeout = opts.connectTimeout or 10000,
    retries = opts.retries or 3,
    backoff = opts.backoff or 500,
    maxBackoff = opts.maxBackoff or 30000,
    maxRetryAfter = opts.maxRetryAfter or 120,
    refreshBefore = opts.refreshBefore or 300,
    log = opts.log or loop.log,
    metrics = opts.metrics or metrics_mod.new(),
    tokens = {},
    random = opts.random or math.random,
  }, Client)
  for _, k in ipairs { "authority", "graphUrl", "openidUrl" } do
    local ok, err = check_url(self[k])
    if not ok then error("bad argument #1 to 'client' (" .. k .. ": " .. err.message .. ")", 2) end
  end
  return self
end

-- Wait or call back: the one shape of every public method.
local function run(self, cb, start)
  if cb then
    start(cb)
    return
  end
  return self.loop:await(start)
end

-- ---- sending, with retries --------------------------------------------------------------

local function retry_after(res)
  local v = res and res:header("Retry-After")
  return v and tonumber(v:match("^%s*(%d+)%s*$"))
end

-- How long to wait before attempt n + 1, or nil: no retry.
function Client:_retry_delay(res, err, req, attempt)
  if attempt > self.retries then return nil end
  local backoff = math.min(self.maxBackoff, self.backoff * 2 ^ (attempt - 1))
  backoff = backoff / 2 + self.random() * backoff / 2  -- jitter: peers do not retry in step
  if res then
    local s = res.status
    if s == 429 or s == 503 then
      local ra = retry_after(res)
      if ra then
        if ra > self.maxRetryAfter then return nil end
        return ra * 1000, s == 503
      end
      return backoff, s == 503
    end
    if s == 504 and req.idempotent then return backoff end
    return nil
  end
  if err.code == "tls" or err.code == "too_large" or err.code == "cancelled" then return nil end
  if not err.sent or req.idempotent then return backoff end  -- nothing went out, or harmless
  return nil
end

-- Send req ({method, url, body, headers, idempotent, auth = tenant|false}); cb(res, err, meta).
function Client:_send(req, cb)
  local ok, uerr = check_url(req.url)
  if not ok then return cb(nil, uerr) end
  local crid = req.clientRequestId or core.uuid()
  local attempt, refreshed = 0, false
  local try
  local started = self.loop:now()
  local function finish(res, err)
    local meta = { attempts = attempt, clientRequestId = crid }
    local kind = req.kind or req.method
    local outcome = not res and "error" or res.status >= 500 and "5xx" or res.status >= 400 and "4xx" or "ok"
    local ms = self.loop:now() - started
    self.metrics:inc("actions", 1, kind, outcome)
    self.metrics:observe("action_seconds", ms / 1000, kind)
    -- every request is logged, with what its answer was (an operator follows a call by its id)
    local code = err and (err.innerCode or err.graphCode or (not res and err.code)) or nil
    self.log(outcome == "ok" and "info" or "warn", string.format("%s%s %s%s in %d ms (client-request-id %s)",
      req.call and ("call " .. req.call .. ": ") or "", kind, res and res.status or "failed",
      code and (" " .. tostring(code)) or "", math.floor(ms), crid),
      { call = req.call, action = kind, clientRequestId = crid, status = res and res.status or nil, code = code,
        ms = math.floor(ms) })
    if res then
      meta.status = res.status
      meta.requestId = res:header("request-id")
      meta.response = res
    end
    if err then
      err.attempts = err.attempts or attempt   -- a token error keeps the token fetch's count
      err.clientRequestId = err.clientRequestId or crid
      return cb(nil, err, meta)
    end
    return cb(res, nil, meta)
  end
  local function attempt_with(token, fresh)
    local headers = { ["client-request-id"] = crid, Accept = "application/json" }
    for k, v in pairs(req.headers or {}) do headers[k] = v end
    if token then headers.Authorization = "Bearer " .. token end
    local body = req.make_body and req.make_body() or req.body   -- (a new assertion each attempt)
    if body and not headers["Content-Type"] then headers["Content-Type"] = "application/json" end
    local id, rerr = self.loop:request({
      method = req.method, url = req.url, headers = headers, body = body,
      timeout = self.timeout, connect_timeout = self.connectTimeout, cafile = self.caFile,
      fresh = fresh, once = not req.idempotent,
    }, function(res, err)
      if res and res.status == 401 and req.auth ~= false and not refreshed then
        refreshed = true                 -- a token revoked or expired early: one more try
        local t = self.tokens[req.auth or self.tenantId]
        if t and t.token == token then t.token = nil end
        return try(false)
      end
      local delay, fresh_next = self:_retry_delay(res, err, req, attempt)
      if delay then
        self.log("warn", string.format("%s %s: %s; retry %d in %.0f ms (client-request-id %s)",
          req.method, req.url, res and ("HTTP " .. res.status) or err.code, attempt, delay, crid))
        self.loop:timer(delay, function() try(fresh_next) end)
        return
      end
      if err then
        return finish(nil, fail(err.code, err.message, { ambiguous = err.sent or nil }))
      end
      if res.status >= 400 then
        local _, gerr = response.parse_error(res.status, res.head, res.body)
        -- the service may have acted before it failed: an action's fate is unknown
        if not req.idempotent and (res.status == 500 or res.status == 502 or res.status == 504) then
          gerr.ambiguous = true
        end
        return finish(res, gerr)
      end
      return finish(res)
    end)
    if not id then return finish(nil, fail("transport", rerr.message)) end
  end
  try = function(fresh)
    attempt = attempt + 1
    if req.auth == false then return attempt_with(nil, fresh) end
    self:_with_token(req.auth, function(token, terr)
      if not token then return finish(nil, terr) end
      attempt_with(token, fresh)
    end)
  end
  try(false)
end

-- ---- tokens (REFERENCE.md §6) -----------------------------------------------------------

-- A client assertion for the token endpoint of `url` (Microsoft identity platform,
-- "certificate credentials"): signed with the certificate's key, good for ten minutes, a jti
-- of its own each time.
function Client:_assertion(url)
  local now = os.time()
  local header = self.assertionAlg == "RS256"
    and wire.json { alg = "RS256", typ = "JWT", x5t = self.thumbprints.x5t }
    or wire.json { alg = "PS256", typ = "JWT", ["x5t#S256"] = self.thumbprints.x5tS256 }
  local claims = wire.json { aud = url, iss = self.clientId, sub = self.clientId, jti = core.uuid(),
                             nbf = now, iat = now, exp = now + 600 }
  return assert(core.x509_sign(self.key, self.assertionAlg, header, claims))
end

function Client:_fetch_token(tenant)
  local t = self.tokens[tenant]
  if t.refreshing then return end
  t.refreshing = true
  local url = self.authority .. "/" .. escape(tenant) .. "/oauth2/v2.0/token"
  local function body()   -- a retry sends a new assertion: a jti is good once
    local fields = { { "client_id", self.clientId }, { "scope", M.SCOPE } }
    if self.certificate then
      fields[#fields + 1] = { "client_assertion_type", M.ASSERTION_TYPE }
      fields[#fields + 1] = { "client_assertion", self:_assertion(url) }
    else
      fields[#fields + 1] = { "client_secret", self.secret }
    end
    fields[#fields + 1] = { "grant_type", "client_credentials" }
    return form(fields)
  end
  self:_send({
    method = "POST", auth = false, idempotent = true, kind = "token", url = url,
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
    make_body = body,
  }, function(res, err, meta)
    t.refreshing = false
    local doc = res and core.decode(res.body)
    if res and (type(doc) ~= "table" or type(doc.access_token) ~= "string") then
      err = fail("auth", "the token endpoint answered without an access_token")
    end
    if err then
      if err.code == "graph" then  -- an OAuth error body: {"error":..., "error_description":...}
        local d = core.decode(meta.response and meta.response.body or "") or {}
        err = fail("auth", type(d) == "table" and d.error_description or err.message,
          { status = err.status, graphCode = type(d) == "table" and d.error or nil,
            clientRequestId = err.clientRequestId, attempts = err.attempts })
      elseif err.code ~= "auth" then
        err = fail("auth", "no token: " .. err.message, { cause = err.code, attempts = err.attempts })
      end
      -- a token still valid keeps serving; waiters get the error
    else
      local life = tonumber(doc.expires_in) or 3599
      t.token = doc.access_token
      t.life = life
      t.expires = self.loop:now() + life * 1000
    end
    local waiters = t.waiters
    t.waiters = {}
    for _, w in ipairs(waiters) do
      if err then w(nil, err) else w(t.token) end
    end
  end)
end

-- Get a valid token for `tenant` (the client's own by default), refreshing ahead of
-- expiry; one refresh in flight however many callers wait for it.
function Client:_with_token(tenant, cb)
  tenant = tenant or self.tenantId
  local t = self.tokens[tenant]
  if not t then
    t = { waiters = {} }
    self.tokens[tenant] = t
  end
  if t.token then
    local left = t.expires - self.loop:now()
    local margin = math.min(self.refreshBefore, t.life / 2) * 1000
    if left > margin then return cb(t.token) end
    if left > 0 then      -- good for now: use it, and renew in the background
      self:_fetch_token(tenant)
      return cb(t.token)
    end
  end
  t.waiters[#t.waiters + 1] = cb
  self:_fetch_token(tenant)
end

--- An access token for `tenant` (default: the client's), from the cache or fetched.
-- @return the token text, or nil and an error (`code = "auth"`)
function Client:token(tenant, cb)
  if type(tenant) == "function" then tenant, cb = nil, tenant end
  return run(self, cb, function(done) self:_with_token(tenant, done) end)
end

-- ---- Graph requests ---------------------------------------------------------------------

local function location_id(res, seg)
  local loc = res and res:header("Location")
  return loc and loc:match("/" .. seg .. "/([^/?#]+)/?[?#]?[^/]*$"), loc
end

-- Decode a 2xx answer into what the method returns: the operation (or object) in the body,
-- else true.
local function result(res)
  if not res.body:find("%S") then
    local id, loc = location_id(res, "operations")
    if id then return { id = id, location = loc } end
    return true
  end
  local doc, derr = core.decode(res.body)
  if doc == nil then return nil, derr end
  if type(doc) ~= "table" then return nil, fail("response", "the answer is not a JSON object") end
  local id, loc = location_id(res, "operations")
  if type(doc.id) ~= "string" and id then doc.id = id end
  doc.location = loc
  return doc
end

-- The tenant of the calls this client created (a call is its tenant's: a token of another
-- is refused, 403 7505), so that actions on them need not name it; a bounded memory.
local function remember(self, id, tenant)
  if self.ncallTenants >= 100000 then self.callTenants, self.ncallTenants = {}, 0 end
  self.callTenants[id] = tenant
  self.ncallTenants = self.ncallTenants + 1
end

--- What a request to Graph is called in metrics and logs: its action ("playPrompt",
-- "createCall", "hangup", "invite", "deleteParticipant"), or "get" for a read.
-- @param method the HTTP method
-- @param path the path under the Graph URL
function M.action_of(method, path)
  if method == "GET" then return "get" end
  local rest = path:match("^/communications/calls(.*)$")
  if not rest then return method end
  if rest == "" then return "createCall" end
  local tail = rest:match("^/[^/]+(.*)$") or ""
  if tail == "" then return method == "DELETE" and "hangup" or method end
  if tail:match("^/participants/[^/]+$") then
    return method == "DELETE" and "deleteParticipant" or (tail == "/participants/invite" and "invite" or method)
  end
  return tail:match("([^/]+)$") or method
end

function Client:_graph(method, path, body, opts, cb)
  local tenant = opts.tenant
  if tenant == nil then
    local id = path:match("^/communications/calls/([^/]+)")
    tenant = id and self.callTenants[id]
  end
  self:_send({ method = method, url = self.graphUrl .. path, body = body, kind = M.action_of(method, path),
               call = path:match("^/communications/calls/([^/]+)"),
               idempotent = opts.idempotent, auth = tenant, clientRequestId = opts.clientRequestId },
    function(res, err, meta)
      if err then return cb(nil, err, meta) end
      local value, rerr = (opts.decode or result)(res)
      if value == nil then return cb(nil, rerr, meta) end
      if opts.tenant and path == "/communications/calls" and type(value.id) == "string" then
        remember(self, value.id, opts.tenant)
      end
      return cb(value, nil, meta)
    end)
end

local function build(kind, spec, cb)
  if spec == nil then spec = {} end
  if type(spec) ~= "table" then error("bad argument (" .. kind .. ": spec table expected)", 3) end
  local body, err = core.build(kind, spec)
  if not body then cb(nil, err) end
  return body
end

local function calls(id) return "/communications/calls/" .. escape(id) end

-- Methods accept an options table before the callback: {tenant = "<tenant id>"} sends with
-- that tenant's token (a multi-tenant bot acts for the call's tenant, REFERENCE.md §2);
-- {clientRequestId = ...} sends with that id (a flow resuming a request it may have sent).
local function split(a, b)
  if type(a) == "function" then return {}, a end
  return a or {}, b
end

--- Create a call (POST /communications/calls): the spec as for `graphcall.build("call", spec)`.
-- @return the call as Graph answered it (`call.id`, `call.state`, ...), or nil and an error
function Client:create_call(spec, o, cb)
  o, cb = split(o, cb)
  return run(self, cb, function(done)
    local body = build("call", spec, done)
    if not body then return end
    self:_graph("POST", "/communications/calls", body, {
      -- a token of the call's tenant (another tenant's is refused: 403 7505)
      tenant = o.tenant or (type(spec.tenantId) == "string" and spec.tenantId ~= "" and spec.tenantId) or nil,
      decode = function(res) return response.parse_call_response(res.status, res.head, res.body) end,
    }, done)
  end)
end

--- Run an action on a call: `client:action(callId, "playPrompt", spec)`. Each action also
-- has its own method of the same name: `client:playPrompt(callId, spec)`.
function Client:action(callId, name, spec, o, cb)
  o, cb = split(o, cb)
  local idempotent = M.CALL_ACTIONS[name]
  if idempotent == nil then error("bad argument #2 to 'action' (unknown action '" .. tostring(name) .. "')", 2) end
  return run(self, cb, function(done)
    local body
    if name ~= "keepAlive" then            -- keepAlive is a POST without a body (§1.10)
      body = build(name, spec, done)
      if not body then return end
    end
    self:_graph("POST", calls(callId) .. "/" .. name, body,
      { tenant = o.tenant, idempotent = idempotent, clientRequestId = o.clientRequestId }, done)
  end)
end

for name in pairs(M.CALL_ACTIONS) do
  Client[name] = function(self, callId, spec, o, cb)
    if type(spec) == "function" then spec, o, cb = nil, nil, spec end
    return self:action(callId, name, spec, o, cb)
  end
end

--- Hang up (DELETE the call); `true` on 204.
function Client:hangup(callId, o, cb)
  o, cb = split(o, cb)
  return run(self, cb, function(done)
    self:_graph("DELETE", calls(callId), nil, { tenant = o.tenant, idempotent = true,
                                                clientRequestId = o.clientRequestId }, done)
  end)
end

--- Invite participants (group calls): POST .../participants/invite; gives the operation.
function Client:invite(callId, spec, o, cb)
  o, cb = split(o, cb)
  return run(self, cb, function(done)
    local body = build("invite", spec, done)
    if not body then return end
    self:_graph("POST", calls(callId) .. "/participants/invite", body, { tenant = o.tenant }, done)
  end)
end

local PARTICIPANT_ACTIONS = { mute = "participant.mute", startHoldMusic = "startHoldMusic",
                              stopHoldMusic = "stopHoldMusic" }

--- Run an action on a participant: "mute", "startHoldMusic" or "stopHoldMusic".
function Client:participant_action(callId, participantId, name, spec, o, cb)
  o, cb = split(o, cb)
  local kind = PARTICIPANT_ACTIONS[name]
  if not kind then error("bad argument #3 to 'participant_action' (unknown action '" .. tostring(name) .. "')", 2) end
  return run(self, cb, function(done)
    local body = build(kind, spec, done)
    if not body then return end
    self:_graph("POST", calls(callId) .. "/participants/" .. escape(participantId) .. "/" .. name, body,
      { tenant = o.tenant, idempotent = name == "mute" }, done)
  end)
end

--- Mute another participant (group calls).
function Client:mute_participant(callId, pid, spec, o, cb)
  return self:participant_action(callId, pid, "mute", spec, o, cb)
end
--- Put a participant on hold with music.
function Client:startHoldMusic(callId, pid, spec, o, cb)
  return self:participant_action(callId, pid, "startHoldMusic", spec, o, cb)
end
--- Take a participant off hold.
function Client:stopHoldMusic(callId, pid, spec, o, cb)
  return self:participant_action(callId, pid, "stopHoldMusic", spec, o, cb)
end

--- Remove a participant (DELETE .../participants/{id}); `true` on 204.
function Client:delete_participant(callId, pid, o, cb)
  o, cb = split(o, cb)
  return run(self, cb, function(done)
    self:_graph("DELETE", calls(callId) .. "/participants/" .. escape(pid), nil,
      { tenant = o.tenant, idempotent = true }, done)
  end)
end

local function read(self, path, o, cb, pick)
  o, cb = split(o, cb)
  return run(self, cb, function(done)
    self:_graph("GET", path, nil, { tenant = o.tenant, idempotent = true, decode = function(res)
      local doc, err = core.decode(res.body)
      if doc == nil then return nil, err end
      if pick then return pick(doc) end
      return doc
    end }, done)
  end)
end

--- GET the call.
function Client:get_call(callId, o, cb) return read(self, calls(callId), o, cb) end
--- GET the participants: an array of participant objects.
function Client:list_participants(callId, o, cb)
  return read(self, calls(callId) .. "/participants", o, cb, function(doc)
    if type(doc) ~= "table" or type(doc.value) ~= "table" then
      return nil, fail("response", "the participants answer has no value array")
    end
    return doc.value
  end)
end
--- GET one participant.
function Client:get_participant(callId, pid, o, cb)
  return read(self, calls(callId) .. "/participants/" .. escape(pid), o, cb)
end
--- GET an operation.
function Client:get_operation(callId, opId, o, cb)
  return read(self, calls(callId) .. "/operations/" .. escape(opId), o, cb)
end

-- ---- verifying callbacks (REFERENCE.md §4) ---------------------------------------------

local Verifier = {}
Verifier.__index = Verifier

--- A verifier of the calling service's callback tokens whose keys this client fetches: the
-- OpenID document at `openidUrl`, then its `jwks_uri`; cached, refreshed every `maxAge`
-- seconds (7200, as Microsoft's samples), and refetched when a token names an unknown key,
-- at most once per `minRefetch` seconds (60).
-- @param opts `appId` (the bot's; the client id by default), `issuers`, `skew`, `maxAge`,
--   `minRefetch`
function Client:verifier(opts)
  opts = strict.options(opts, { "appId", "issuers", "skew", "maxAge", "minRefetch" }, "verifier")
  return setmetatable({
    client = self, appId = opts.appId or self.clientId, issuers = opts.issuers, skew = opts.skew,
    maxAge = (opts.maxAge or 7200) * 1000, minRefetch = (opts.minRefetch or 60) * 1000,
    waiters = {}, fetched = nil, lastFetch = nil,
  }, Verifier)
end

--- Fetch the keys now (single flight); cb(true) or cb(nil, err).
function Verifier:refresh(cb)
  self.waiters[#self.waiters + 1] = cb or function() end
  if self.fetching then return end
  self.fetching = true
  local client = self.client
  local loop = client.loop
  self.lastFetch = loop:now()
  local function done(ok, err)
    self.fetching = false
    if ok then self.fetched = loop:now() end
    if err then client.log("warn", "callback keys: " .. tostring(err.message)) end
    local ws = self.waiters
    self.waiters = {}
    for _, w in ipairs(ws) do w(ok, err) end
  end
  client:_send({ method = "GET", url = client.openidUrl, auth = false, idempotent = true, kind = "keys" },
    function(res, err)
    if err then return done(nil, err) end
    local doc = core.decode(res.body)
    local uri = type(doc) == "table" and doc.jwks_uri
    if type(uri) ~= "string" then return done(nil, fail("jwks", "the OpenID document has no jwks_uri")) end
    client:_send({ method = "GET", url = uri, auth = false, idempotent = true, kind = "keys" }, function(kres, kerr)
      if kerr then return done(nil, kerr) end
      local ok, jerr
      self.jwksText = kres.body
      if self.jwt then
        ok, jerr = self.jwt:set_keys(kres.body)
      else
        local v
        v, jerr = jwt.new { appId = self.appId, jwks = kres.body, issuers = self.issuers, skew = self.skew }
        self.jwt, ok = v, v ~= nil
      end
      return done(ok or nil, jerr)
    end)
  end)
end

--- Verify an Authorization header with the keys at hand (no fetching).
-- @return claims, or nil and err (`code = "no_keys"` before the first fetch)
function Verifier:verify(authorization)
  if not self.jwt then
    return nil, fail("no_keys", "the callback keys have not been fetched yet")
  end
  return self.jwt:verify(authorization)
end

--- Verify, fetching keys first when there are none, when they are older than `maxAge`, or
-- (rate-limited) when the token names a key not among them; cb(claims) or cb(nil, err).
function Verifier:verify_async(authorization, cb)
  local now = self.client.loop:now()
  if not self.jwt then
    return self:refresh(function() cb(self:verify(authorization)) end)
  end
  if self.fetched and now - self.fetched > self.maxAge then self:refresh() end  -- in the background
  local claims, err = self:verify(authorization)
  if claims or err.code ~= "unknown_kid" then return cb(claims, err) end
  if self.lastFetch and now - self.lastFetch < self.minRefetch then return cb(nil, err) end
  self:refresh(function() cb(self:verify(authorization)) end)
end

M.Client = Client
M.Verifier = Verifier
return M
