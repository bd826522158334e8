--- A local emulator of the Graph calling service, for developing and testing bots offline.
--
-- It is a real HTTP server (on graphcall's own loop and listener) that plays three parts:
--
-- * the identity platform: `POST /{tenant}/oauth2/v2.0/token` (client credentials; signed
--   RS256 access tokens with `expires_in`), the authority's OpenID document
--   `/{tenant}/v2.0/.well-known/openid-configuration` and its keys;
-- * Graph: `/v1.0/communications/calls` (create, GET, DELETE), every action of REFERENCE.md
--   §1 with its documented answer, participants and operations, with a bearer token from its
--   own token endpoint required (401 otherwise) and bodies validated against Graph's schema
--   (400 otherwise);
-- * the calling service's callbacks: `commsNotifications` POSTed to each call's
--   `callbackUri`, signed like the real service's (RS256, issuer
--   `https://api.botframework.com`, audience the app id the creating token was issued to,
--   `tid`), with their keys at `/v1/.well-known/OpenIdConfiguration` and `/v1/keys`.
--
-- What the other side of each call does comes from a scenario (a Lua table; see
-- `M.load_scenario` and the README): scripted peers answer after some time or never (busy,
-- declined, no answer), press keys, speak, hang up; incoming calls are placed to the bot;
-- meetings have attendees who join and leave; faults are injected (429 with Retry-After,
-- 503, slow answers, connection resets, dropped, duplicated and reordered notifications, bad
-- signatures). Time runs `speed` times faster than real time.
--
-- A small control API under `/emulator/` serves tests: place an incoming call, read a call's
-- log, count requests by `client-request-id`, rotate keys, add faults.
-- @module graphcall.emulator
local core = require "graphcall.core"
local loopmod = require "graphcall.loop"
local U = require "graphcall.emulator.util"
local rules = require "graphcall.emulator.rules"

local json, array, graph_error, CALLBACK_ISS = U.json, U.array, U.graph_error, U.CALLBACK_ISS
local JSON_CT = U.JSON_CT

local M = {}

-- ---- scenario ---------------------------------------------------------------------------

--- Load a scenario file: a Lua chunk returning a table (run with no access to the rest of
-- the program: no io, no os).
-- @return the scenario table, or nil and an error
function M.load_scenario(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  local env = { math = math, string = string, table = table, pairs = pairs, ipairs = ipairs,
                tostring = tostring, tonumber = tonumber }
  local chunk, cerr
  if setfenv then  -- luacheck: ignore 113
    chunk, cerr = loadstring(text, "@" .. path)  -- luacheck: ignore 113
    if chunk then setfenv(chunk, env) end  -- luacheck: ignore 113
  else
    chunk, cerr = load(text, "@" .. path, "t", env)
  end
  if not chunk then return nil, cerr end
  local ok, sc = pcall(chunk)
  if not ok then return nil, sc end
  if type(sc) ~= "table" then return nil, path .. ": a scenario returns a table" end
  return sc
end

-- ---- the emulator -----------------------------------------------------------------------

local Emulator = {}
Emulator.__index = Emulator

--- A new emulator (not yet listening: `emu:start()`).
-- @param opts `loop` (a `graphcall.loop`; a new one by default), `host` ("127.0.0.1"),
--   `port` (0: a free one), `scenario` (table), `speed` (1), `cert` and `key` (serve TLS),
--   `caFile` (CA bundle to verify the bot's TLS when POSTing callbacks and fetching
--   prompts), `log`, `shareKeys` (reuse the signing keys of other emulators of this process:
--   test harnesses start many), `realism` ("documented", the default: what Graph documents
--   it may do, it does now and then: several notifications in one POST, establishing and
--   established swapped, transferAccepted and the audio-inactive update swapped; "strict":
--   one notification a POST, in order), `seed` (of those choices: the same seed, the same
--   choices; a new one each run by default), `loss` (the share of notifications lost, 0)
function M.new(opts)
  opts = opts or {}
  local loop = opts.loop or loopmod.new { log = opts.log }
  local sc = opts.scenario or {}
  rules.scenario(sc)   -- a mistake in it is said now, at the user's line, naming the place
  local realism = opts.realism or sc.realism or "documented"
  if realism ~= "documented" and realism ~= "strict" then
    error("bad argument #1 to 'emulator' (realism: \"documented\" or \"strict\", got " .. tostring(realism) .. ")", 2)
  end
  local seed = math.floor(tonumber(opts.seed or sc.seed) or (os.time() % 1000000 + 1)) % 2147483646 + 1
  local self = setmetatable({
    realism = realism, seed = seed, rng = seed, loss = tonumber(opts.loss or sc.loss) or 0,
    loop = loop,
    log = opts.log or loop.log,
    host = opts.host or "127.0.0.1",
    port = opts.port or 0,
    cert = opts.cert, key = opts.key, caFile = opts.caFile,
    speed = opts.speed or sc.speed or 1,
    scenario = sc,
    calls = {}, ncalls = 0, open = 0, liveByApp = {},
    byRequestId = {},       -- client-request-id -> times an action was carried out
    requestInfo = {},       -- client-request-id -> {action =, call =}
    stats = { requests = 0, actions = 0, callsCreated = 0, notificationsSent = 0,
              notificationsFailed = 0, notificationsDropped = 0, promptsFetched = 0, tokensIssued = 0 },
    recordings = {},
    recording = setmetatable({}, { __mode = "k" }),   -- a request on a call -> its record
    tokenIssuers = {},
    bearers = {}, nbearers = 0,
    faults = {},
    promptCache = {},
    toneCache = {},
    sigCache = {},
    shareKeys = opts.shareKeys,
  }, Emulator)
  for _, f in ipairs(sc.faults or {}) do self:add_fault(f) end
  for app, list in pairs(sc.certificates or {}) do
    for _, pem in ipairs(list) do assert(self:register_certificate(app, pem)) end
  end
  return self
end

--- Emulated milliseconds (real time times the speed).
function Emulator:now() return self.loop:now() * self.speed end

--- Run fn after `ms` emulated milliseconds.
function Emulator:after(ms, fn) return self.loop:timer(ms / self.speed, fn) end

-- the parts, each a concept of the service (their methods are the emulator's)
local parts = {}
parts[#parts + 1] = require "graphcall.emulator.identity"
parts[#parts + 1] = require "graphcall.emulator.faults"
parts[#parts + 1] = require "graphcall.emulator.calls"
parts[#parts + 1] = require "graphcall.emulator.peers"
parts[#parts + 1] = require "graphcall.emulator.media"
parts[#parts + 1] = require "graphcall.emulator.graph"
parts[#parts + 1] = require "graphcall.emulator.control"
for _, part in ipairs(parts) do
  for k, v in pairs(part) do Emulator[k] = v end
end

--- Start listening.
-- @return the emulator, or nil and an error
function Emulator:start()
  self:_new_keys()
  self.badKey = self:_rsa("bad")
  local srv, err = self.loop:listen({ host = self.host, port = self.port, cert = self.cert, key = self.key,
                                      max_body = 4 * 1048576 }, function(...) self:_handle(...) end)
  if not srv then return nil, err end
  self.server = srv
  self.port = srv:port()
  self.url = string.format("%s://%s:%d", self.cert and "https" or "http", self.host, self.port)
  for _, inc in ipairs(self.scenario.incoming or {}) do
    self:after(inc.after or 0, function() self:place_incoming(inc) end)
  end
  return self
end

--- Stop listening and drop every call.
function Emulator:close()
  if self.server then self.server:close() end
  self.server = nil
end

-- ---- HTTP helpers -----------------------------------------------------------------------


-- A request on a call is kept in the call's record, whatever its answer (refused ones too:
-- a test proves with it that nothing was sent after the caller hung up).
function Emulator:_record(req, method, gpath)
  local id, rest = gpath:match("^/communications/calls/([^/]+)(.*)$")
  local call = id and self.calls[id]
  if not call then return end
  local action = rest:match("^/microsoft%.graph%.(%a+)$") or rest:match("^/(%a+)$")
    or rest:match("^/participants/[^/]+/microsoft%.graph%.(%a+)$") or rest:match("^/participants/[^/]+/(%a+)$")
  if rest == "" then action = method == "DELETE" and "hangup" or nil end
  local r = { at = math.floor(self:now() - call.started), method = method, path = rest, action = action }
  call.requests[#call.requests + 1] = r
  self.recording[req] = r
end

function Emulator:_reply(req, status, body, headers)
  local r = self.recording[req]
  if r then
    self.recording[req] = nil
    r.status = status
    local e = type(body) == "table" and type(body.error) == "table" and body.error
    if e then r.error = { code = e.code, message = e.message } end
  end
  local h = headers or {}
  -- an error's body names its request-id: the header says the same one
  local inner = type(body) == "table" and type(body.error) == "table" and body.error.innerError
  h["request-id"] = h["request-id"] or (inner and inner["request-id"]) or core.uuid()
  local crid = req:header("client-request-id")
  if crid then h["client-request-id"] = crid end
  if body ~= nil then
    h["Content-Type"] = h["Content-Type"] or JSON_CT
    if type(body) == "table" then body = json(body) end
  end
  req:respond(status, h, body)
end

function Emulator:_error(req, status, code, message, headers)
  local body = graph_error(code, message)
  body.error.innerError["client-request-id"] = req:header("client-request-id")
  self:_reply(req, status, body, headers)
end

function Emulator:_handle(req, method, uri, body)
  self.stats.requests = self.stats.requests + 1
  local path = uri:match("^[^?#]*")
  if path:sub(1, 10) == "/emulator/" then return self:_control(req, method, path, body) end
  -- identity
  local tenant = path:match("^/([^/]+)/oauth2/v2%.0/token$")
  if tenant then
    local f = self:_fault("request", "POST /token", "token")
    if f then return self:_apply_fault(req, f, function() self:_token(req, tenant, body) end) end
    if method ~= "POST" then return self:_reply(req, 405) end
    return self:_token(req, tenant, body)
  end
  tenant = path:match("^/([^/]+)/v2%.0/%.well%-known/openid%-configuration$")
  if tenant then
    return self:_reply(req, 200, { issuer = self.url .. "/" .. tenant .. "/v2.0",
      token_endpoint = self.url .. "/" .. tenant .. "/oauth2/v2.0/token",
      jwks_uri = self.url .. "/" .. tenant .. "/discovery/v2.0/keys",
      authorization_endpoint = self.url .. "/" .. tenant .. "/oauth2/v2.0/authorize",
      response_types_supported = array { "code", "id_token", "code id_token", "token id_token", "token" },
      id_token_signing_alg_values_supported = array { "RS256" },
      token_endpoint_auth_methods_supported = array { "client_secret_post", "client_secret_basic" },
      grant_types_supported = array { "client_credentials" },
      subject_types_supported = array { "pairwise" }, tenant_region_scope = "NA" })
  end
  if path:match("^/[^/]+/discovery/v2%.0/keys$") then
    return self:_reply(req, 200, self.tokenJwks)
  end
  if path == "/v1/.well-known/OpenIdConfiguration" then
    return self:_reply(req, 200, { issuer = CALLBACK_ISS, authorization_endpoint = self.url .. "/",
      jwks_uri = self.url .. "/v1/keys", id_token_signing_alg_values_supported = array { "RSA256" },
      token_endpoint_auth_methods_supported = array { "private_key_jwt" } })
  end
  if path == "/v1/keys" then return self:_reply(req, 200, self.callbackJwks) end
  -- Graph
  local gpath = path:match("^/v1%.0(/.*)$")
  if not gpath then return self:_error(req, 404, "itemNotFound", "Resource not found.") end
  self:_record(req, method, gpath)
  local claims = self:_bearer(req)
  if not claims then
    return self:_error(req, 401, "InvalidAuthenticationToken", "Access token validation failure.",
      { ["WWW-Authenticate"] = 'Bearer realm="", authorization_uri="' .. self.url .. '/common/oauth2/authorize"' })
  end
  local action = gpath:match("/(%a+)$")
  local f = self:_fault("request", method .. " " .. gpath, action)
  if f then return self:_apply_fault(req, f, function() self:_graph(req, method, gpath, body, claims) end) end
  local latency = self.scenario.latency
  if latency then   -- the round trip to a distant service, in real milliseconds
    req:keep()
    return self.loop:timer(latency, function() self:_graph(req, method, gpath, body, claims) end)
  end
  self:_graph(req, method, gpath, body, claims)
end

--- Run the emulator's loop until it is stopped.
function Emulator:run() self.loop:run() end

return M
