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
local cjson = require "cjson"
local core = require "graphcall.core"
local loopmod = require "graphcall.loop"
local wav = require "graphcall.wav"

local M = {}

local null = core.null
local unpack = table.unpack or unpack  -- luacheck: ignore 143
local GRAPH_AUD = "https://graph.microsoft.com"
local CALLBACK_ISS = "https://api.botframework.com"

-- JSON out: lua-cjson, with "/" unescaped as the service writes it ("\/" comes only from "/",
-- so "\\/" of a literal backslash before a slash stays right)
local function json(v) return (cjson.encode(v):gsub("\\/", "/")) end

local function array(t) return setmetatable(t or {}, cjson.array_mt) end

local function typed(name, t)
  t = t or {}
  t["@odata.type"] = "#microsoft.graph." .. name
  return t
end

local function result_info(code, subcode, message, spelling)
  return typed("resultInfo", { code = code, [spelling or "subcode"] = subcode, message = message })
end

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

local Emu = {}
Emu.__index = Emu

--- A new emulator (not yet listening: `emu:start()`).
-- @param opts `loop` (a `graphcall.loop`; a new one by default), `host` ("127.0.0.1"),
--   `port` (0: a free one), `scenario` (table), `speed` (1), `cert` and `key` (serve TLS),
--   `caFile` (CA bundle to verify the bot's TLS when POSTing callbacks and fetching
--   prompts), `log`, `shareKeys` (reuse the signing keys of other emulators of this process:
--   test harnesses start many)
function M.new(opts)
  opts = opts or {}
  local loop = opts.loop or loopmod.new { log = opts.log }
  local sc = opts.scenario or {}
  local self = setmetatable({
    loop = loop,
    log = opts.log or loop.log,
    host = opts.host or "127.0.0.1",
    port = opts.port or 0,
    cert = opts.cert, key = opts.key, caFile = opts.caFile,
    speed = opts.speed or sc.speed or 1,
    scenario = sc,
    calls = {}, ncalls = 0, open = 0,
    byRequestId = {},       -- client-request-id -> times an action was carried out
    stats = { requests = 0, actions = 0, callsCreated = 0, notificationsSent = 0,
              notificationsFailed = 0, notificationsDropped = 0, promptsFetched = 0, tokensIssued = 0 },
    recordings = {},
    tokenIssuers = {},
    bearers = {}, nbearers = 0,
    faults = {},
    promptCache = {},
    toneCache = {},
    sigCache = {},
    shareKeys = opts.shareKeys,
  }, Emu)
  for _, f in ipairs(sc.faults or {}) do self:add_fault(f) end
  return self
end

--- Emulated milliseconds (real time times the speed).
function Emu:now() return self.loop:now() * self.speed end

--- Run fn after `ms` emulated milliseconds.
function Emu:after(ms, fn) return self.loop:timer(ms / self.speed, fn) end

-- RSA keys take a while to make; emulators of one process may share theirs (opts.shareKeys)
local shared = {}
local function rsa(self, name)
  if not self.shareKeys then return core.rsa_key() end
  shared[name] = shared[name] or core.rsa_key()
  return shared[name]
end

local function new_keys(self)
  self.tokenKey = rsa(self, "token")
  self.tokenKid = "emu-token-" .. core.uuid():sub(1, 8)
  self.callbackKey = rsa(self, "callback")
  self.callbackKid = "emu-callback-" .. core.uuid():sub(1, 8)
  self.tokenJwks = '{"keys":[' .. self.tokenKey:jwk(self.tokenKid) .. "]}"
  self.callbackJwks = '{"keys":[' .. self.callbackKey:jwk(self.callbackKid) .. "]}"
  self.tokenKeys = assert(core.jwks(self.tokenJwks))
  self.sigCache = {}
end

--- Start listening.
-- @return the emulator, or nil and an error
function Emu:start()
  new_keys(self)
  self.badKey = rsa(self, "bad")
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
function Emu:close()
  if self.server then self.server:close() end
  self.server = nil
end

--- Rotate the key the callbacks are signed with (the old one leaves the key set): bots must
-- refetch on the unknown kid.
function Emu:rotate_keys()
  self.callbackKey = core.rsa_key()
  self.callbackKid = "emu-callback-" .. core.uuid():sub(1, 8)
  self.callbackJwks = '{"keys":[' .. self.callbackKey:jwk(self.callbackKid) .. "]}"
  self.sigCache = {}
  return self.callbackKid
end

-- ---- faults -----------------------------------------------------------------------------

--- Add a fault rule.
-- Requests: `{request = "POST /communications/calls", status = 429, retryAfter = 2}`,
-- `{request = "playPrompt", status = 503}`, `{request = ..., delay = ms}` (a slow answer),
-- `{request = ..., reset = true}` (the connection closes without an answer). `request` is an
-- action name ("playPrompt"), "token" for the token endpoint, or a Lua pattern that must
-- match the whole of "METHOD /path" (the path without `/v1.0`).
-- Notifications: `{notification = "call:established", drop = true}` (or `duplicate`,
-- `reorder`: held back and sent after the next one of its call, `badSignature`, `delay =
-- ms`; a reordered one goes alone after `hold` ms, 1000, if no other comes); labels are
-- "call:<state>", "call:tone", "operation:<type>:<status>",
-- "participants", "contentSharing", and a rule matches a label or its prefix.
-- Both take `times` (how often it fires; 1 by default, 0 = always) and `skip` (matches to
-- let pass first).
function Emu:add_fault(rule)
  local r = {}
  for k, v in pairs(rule) do r[k] = v end
  r.times = r.times or 1
  r.skip = r.skip or 0
  r.fired = 0
  self.faults[#self.faults + 1] = r
end

local function label_matches(label, p)
  return label == p or label:sub(1, #p + 1) == p .. ":"
end

function Emu:_fault(kind, subject, action)
  for _, r in ipairs(self.faults) do
    local hit
    if kind == "request" and r.request then
      if r.request:match("^[%a.]+$") then hit = r.request == action   -- an action name, or "token"
      else hit = subject:match("^" .. r.request .. "$") ~= nil end
    elseif kind == "notification" and r.notification then
      hit = label_matches(subject, r.notification)
    end
    if hit and (r.times == 0 or r.fired < r.times) then
      if r.skip > 0 then
        r.skip = r.skip - 1
      else
        r.fired = r.fired + 1
        return r
      end
    end
  end
end

-- ---- HTTP helpers -----------------------------------------------------------------------

local JSON_CT = "application/json"

function Emu:_reply(req, status, body, headers)
  local h = headers or {}
  h["request-id"] = h["request-id"] or core.uuid()
  local crid = req:header("client-request-id")
  if crid then h["client-request-id"] = crid end
  if body ~= nil then
    h["Content-Type"] = h["Content-Type"] or JSON_CT
    if type(body) == "table" then body = json(body) end
  end
  req:respond(status, h, body)
end

local function graph_error(code, message)
  return { error = { code = code, message = message, innerError = {
    date = os.date("!%Y-%m-%dT%H:%M:%S"), ["request-id"] = core.uuid() } } }
end

function Emu:_error(req, status, code, message, headers)
  local body = graph_error(code, message)
  body.error.innerError["client-request-id"] = req:header("client-request-id")
  self:_reply(req, status, body, headers)
end

local function parse_form(body)
  local t = {}
  for pair in body:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function un(s)
      return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    t[un(k)] = un(v)
  end
  return t
end

-- ---- identity ---------------------------------------------------------------------------

function Emu:_token(req, tenant, body)
  local f = parse_form(body)
  local creds = self.scenario.credentials
  if f.grant_type ~= "client_credentials" then
    return self:_reply(req, 400, { error = "unsupported_grant_type",
      error_description = "AADSTS70003: The app requested an unsupported grant type." })
  end
  if not f.client_id or f.client_id == "" or not f.client_secret then
    return self:_reply(req, 400, { error = "invalid_request",
      error_description = "AADSTS900144: The request body must contain client_id and client_secret." })
  end
  if creds and (f.client_id ~= creds.clientId or f.client_secret ~= creds.clientSecret) then
    return self:_reply(req, 401, { error = "invalid_client",
      error_description = "AADSTS7000215: Invalid client secret provided." })
  end
  if not (f.scope or ""):match("/%.default$") then
    return self:_reply(req, 400, { error = "invalid_scope",
      error_description = "AADSTS1002012: The provided value for scope is not valid." })
  end
  local life = self.scenario.tokenLifetime or 3599
  local now = os.time()
  local iss = "https://sts.windows.net/" .. tenant .. "/"
  if not self.tokenIssuers[iss] then
    self.tokenIssuers[iss] = true
    self.tokenIssuerList = nil
  end
  local claims = json { aud = GRAPH_AUD, iss = iss, iat = now, nbf = now,
    exp = now + math.ceil(life / self.speed), tid = tenant, appid = f.client_id,
    roles = array { "Calls.Initiate.All", "Calls.InitiateGroupCall.All", "Calls.JoinGroupCall.All",
                    "Calls.AccessMedia.All" } }
  local token = self.tokenKey:sign(json { alg = "RS256", typ = "JWT", kid = self.tokenKid }, claims)
  self.stats.tokensIssued = self.stats.tokensIssued + 1
  self:_reply(req, 200, { token_type = "Bearer", expires_in = life, ext_expires_in = life,
                          access_token = token })
end

-- The claims of a valid access token from our own token endpoint, or nil.
function Emu:_bearer(req)
  local auth = req:header("Authorization") or ""
  local token = auth:match("^[Bb]earer%s+(%S+)$")
  if not token then return nil end
  local cached = self.bearers[token]   -- a token is verified once, then served until it expires
  if cached and cached.exp > os.time() then return cached end
  local list = self.tokenIssuerList
  if not list then
    list = {}
    for iss in pairs(self.tokenIssuers) do list[#list + 1] = iss end
    self.tokenIssuerList = list
  end
  for i = 1, #list, 8 do  -- the verifier takes eight issuers at a time
    local chunk = { unpack(list, i, math.min(#list, i + 7)) }
    local claims, err = core.verify_jwt(self.tokenKeys, token, GRAPH_AUD, chunk, os.time(), 0)
    if claims then
      if self.nbearers >= 1000 then self.bearers, self.nbearers = {}, 0 end
      self.bearers[token] = claims
      self.nbearers = self.nbearers + 1
      return claims
    end
    if err.code ~= "issuer" then return nil end
  end
  return nil
end

-- ---- calls: state and notifications -----------------------------------------------------

local function call_url(id) return "/communications/calls/" .. id end

-- Sign (cached a few minutes per audience and tenant) the callback token.
function Emu:_callback_token(call, bad)
  local key = call.appId .. "|" .. call.tenantId .. (bad and "|bad" or "")
  local c = self.sigCache[key]
  local now = os.time()
  if c and c.exp - now > 600 then return c.token end
  local exp = now + 3600
  local token = (bad and self.badKey or self.callbackKey):sign(
    json { alg = "RS256", typ = "JWT", kid = self.callbackKid },
    json { aud = call.appId, iss = CALLBACK_ISS, iat = now, nbf = now, exp = exp, tid = call.tenantId })
  self.sigCache[key] = { token = token, exp = exp }
  return token
end

function Emu:_log(call, what, detail)
  call.log[#call.log + 1] = { t = math.floor(self:now() - call.started), what = what, detail = detail }
end

-- Deliver one notification body to the call's callbackUri, in order: the next waits for
-- this one's answer (the bot sees a call's notifications in the order they were made,
-- unless a fault reorders them).
function Emu:_deliver(call, body, label, bad)
  local q = call.outbox
  q[#q + 1] = { body = body, label = label, bad = bad }
  if call.sending then return end
  local function send_next()
    local item = table.remove(q, 1)
    if not item then
      call.sending = false
      return
    end
    call.sending = true
    local uri = call.callbackUri
    self.loop:request({
      method = "POST", url = uri, body = item.body, timeout = 15000, connect_timeout = 5000,
      cafile = self.caFile, fresh = self.scenario.freshCallbacks,
      headers = { ["Content-Type"] = "application/json; charset=utf-8",
                  Authorization = "Bearer " .. self:_callback_token(call, item.bad),
                  ["User-Agent"] = "Microsoft-Skype/3.0,(Calling/1.0)",
                  ["Scenario-ID"] = call.callChainId,
                  ["X-Microsoft-Skype-Chain-ID"] = call.callChainId },
    }, function(res, err)
      if res and res.status >= 200 and res.status < 300 then
        self.stats.notificationsSent = self.stats.notificationsSent + 1
        self:_log(call, "notified", item.label)
      else
        self.stats.notificationsFailed = self.stats.notificationsFailed + 1
        local why = res and ("HTTP " .. res.status) or (err.code .. ": " .. err.message)
        self:_log(call, "notify failed", item.label .. " (" .. why .. ")")
        self.log("warn", string.format("call %s: callback %s to %s failed: %s", call.id, item.label, uri, why))
        if call.incomingPending and item.label == "call:incoming" then
          self:_end(call, 480, 10076, "Callee could not be reached.", true)
        end
      end
      send_next()
    end)
  end
  send_next()
end

-- Make and send a notification (with the faults that match it). items: an array of
-- {changeType =, rest = "/operations/x" or nil, data = resourceData}; label names it for the
-- log and the fault rules.
function Emu:_notify(call, items, label)
  if not call.callbackUri then return end
  local value = {}
  for i, it in ipairs(items) do
    local url = call_url(call.id) .. (it.rest or "")
    value[i] = { ["@odata.type"] = "#microsoft.graph.commsNotification", changeType = it.changeType,
                 resource = "/app/calls/" .. call.id .. (it.rest or ""), resourceUrl = url,
                 resourceData = it.data }
  end
  local body = json { ["@odata.type"] = "#microsoft.graph.commsNotifications", value = value }
  self:_log(call, "notify", label)
  local f = self:_fault("notification", label)
  if f then self:_log(call, "fault", label .. " " .. (f.drop and "dropped" or f.duplicate and "duplicated"
    or f.reorder and "reordered" or f.badSignature and "bad signature" or "delayed")) end
  if f and f.drop then
    self.stats.notificationsDropped = self.stats.notificationsDropped + 1
    return
  end
  if f and f.delay then
    return self:after(f.delay, function() self:_deliver(call, body, label) end)
  end
  if f and f.reorder then
    -- late, not lost: behind the call's next notification, or on its own after a while
    local h = { body = body, label = label }
    call.held = h
    self:after(f.hold or 1000, function()
      if call.held == h then
        call.held = nil
        self:_deliver(call, h.body, h.label)
      end
    end)
    return
  end
  self:_deliver(call, body, label, f and f.badSignature)
  if f and f.duplicate then self:_deliver(call, body, label) end
  if call.held then
    local h = call.held
    call.held = nil
    self:_deliver(call, h.body, h.label)
  end
end

function Emu:_call_data(call, extra)
  local d = typed("call", { ["@odata.id"] = call_url(call.id) })
  for k, v in pairs(extra or {}) do d[k] = v end
  return d
end

function Emu:_set_state(call, state, extra, changeType)
  call.state = state
  local data = self:_call_data(call, extra)
  data.state = state
  self:_notify(call, { { changeType = changeType or "updated", data = data } }, "call:" .. state)
end

-- The call ends: state terminated, the `deleted` notification, timers stopped.
function Emu:_end(call, code, subcode, message, quiet)
  if call.state == "terminated" then return end
  call.state = "terminated"
  call.ended = self:now()
  call.resultInfo = code and result_info(code, subcode, message) or nil
  for _, op in pairs(call.ops) do
    if op.status == "running" or op.status == "notStarted" then op.status = "failed" end
  end
  call.media = {}
  if call.keepAliveTimer then call.keepAliveTimer:cancel() end
  self.open = self.open - 1
  self:_log(call, "ended", code and (code .. "/" .. subcode .. " " .. message) or "")
  if not quiet then
    self:_notify(call, { { changeType = "deleted", data = self:_call_data(call, {
      state = "terminated", resultInfo = call.resultInfo }) } }, "call:terminated")
  end
  -- keep the record a while for GET /emulator/calls/{id}; Graph itself answers 404 now
  self:after(600000, function() self.calls[call.id] = nil end)
end

local function alive(call) return call.state ~= "terminated" end

-- The service's codes for a prompt it cannot fetch or play are not documented: these are the
-- emulator's own (the status, failed, is the service's).
local function cannot_play(why)
  return result_info(400, 0, "Action failed, the prompt could not be played: " .. why)
end

-- ---- peers ------------------------------------------------------------------------------

local function identity_key(identity)
  if type(identity) ~= "table" then return nil end
  for _, k in ipairs { "phone", "user", "applicationInstance", "application", "guest" } do
    local v = identity[k]
    if type(v) == "table" and type(v.id) == "string" then return v.id, k end
  end
end

function Emu:_peer_script(key)
  local peers = self.scenario.peers or {}
  return peers[key] or peers.default or {}
end

local TONES = { ["0"] = "tone0", ["1"] = "tone1", ["2"] = "tone2", ["3"] = "tone3", ["4"] = "tone4",
  ["5"] = "tone5", ["6"] = "tone6", ["7"] = "tone7", ["8"] = "tone8", ["9"] = "tone9",
  ["*"] = "star", ["#"] = "pound", A = "a", B = "b", C = "c", D = "d", a = "a", b = "b", c = "c", d = "d" }

-- Events the scripted side reacts to: "established", "prompt", "promptEnd", "record",
-- "tones" (the bot sent DTMF). A step waits for its `on` event (counted from when the step
-- began waiting), then `after` ms, then acts.
function Emu:_peer_event(call, ev)
  local w = call.peerWait
  if w and (w.on == ev) then
    call.peerWait = nil
    self:after(w.after or 0, function() self:_peer_act(call, w) end)
  end
end

function Emu:_peer_next(call)
  if not alive(call) then return end
  call.peerStep = call.peerStep + 1
  local step = call.peer[call.peerStep]
  if not step then return end
  if step.on and step.on ~= "now" then
    call.peerWait = step
  else
    self:after(step.after or 0, function() self:_peer_act(call, step) end)
  end
end

function Emu:press(call, tones, gap)
  gap = gap or 150
  local t = 0
  for ch in tostring(tones):gmatch(".") do
    self:after(t, function()
      if not alive(call) then return end
      local tone = TONES[ch]
      if not tone then return end
      self:_log(call, "press", ch)
      call.pressed = call.pressed .. ch
      local rec = call.recording
      if rec and rec.stopTones[ch] then
        self:_finish_record(call, rec, "stopToneDetected", 200, 0, "Action completed, stop tone detected.")
      end
      if call.subscribed then
        call.toneSeq = call.toneSeq + 1
        self:_notify(call, { { changeType = "updated", data = self:_call_data(call, {
          state = call.state, toneInfo = typed("toneInfo", { sequenceId = call.toneSeq, tone = tone }) }) } },
          "call:tone")
      end
    end)
    t = t + gap
  end
  return t - gap   -- the last press: the next step starts watching from there
end

function Emu:_peer_act(call, step)
  if not alive(call) then return end
  local wait = 0
  if step.press then
    wait = self:press(call, step.press, step.interDigit)
  end
  if step.speak then
    self:_log(call, "speak", tostring(step.speak))
    call.speaking = { from = self:now(), ms = step.speak }
    local rec = call.recording
    if rec then self:_speech(call, rec) end
    wait = math.max(wait, step.speak)
    self:after(step.speak, function() call.speaking = nil end)
  end
  if step.hangup then
    self:_log(call, "peer hangs up")
    local pstn = call.peerKind == "phone"
    return self:_end(call, 200, pstn and 540000 or 4521,
      pstn and "The PSTN user hung up." or "The other side ended the call.")
  end
  self:after(wait, function() self:_peer_next(call) end)
end

function Emu:_start_peer(call, script)
  call.peer = script or {}
  call.peerStep = 0
  self:_peer_next(call)
end

-- ---- media: prompts and recordings share one queue per call (REFERENCE.md §1.6) -----------

local OPTYPE = { playPrompt = "playPromptOperation", recordResponse = "recordOperation",
  subscribeToTone = "subscribeToToneOperation", cancelMediaProcessing = "cancelMediaProcessingOperation",
  mute = "muteParticipantOperation", unmute = "unmuteParticipantOperation",
  ["participant.mute"] = "muteParticipantOperation",
  updateRecordingStatus = "updateRecordingStatusOperation", sendDtmfTones = "sendDtmfTonesOperation",
  invite = "inviteParticipantsOperation", startHoldMusic = "startHoldMusicOperation",
  stopHoldMusic = "stopHoldMusicOperation" }

function Emu:_new_op(call, kind, body, status)
  local op = typed(OPTYPE[kind], { id = core.uuid(), status = status, clientContext = body.clientContext })
  call.ops[op.id] = op
  op.kind = kind
  return op
end

local function op_view(op, extra)
  local v = typed(op["@odata.type"]:sub(18), { id = op.id, status = op.status, clientContext = op.clientContext })
  for k, x in pairs(extra or {}) do v[k] = x end
  return v
end

function Emu:_complete_op(call, op, status, ri, extra)
  if op.done then return end
  op.done = true
  op.status = status
  local data = op_view(op, extra)
  data["@odata.id"] = call_url(call.id) .. "/operations/" .. op.id
  data.resultInfo = ri
  self:_notify(call, { { changeType = "deleted", rest = "/operations/" .. op.id, data = data } },
    "operation:" .. op.kind .. ":" .. status)
end

-- Fetch a prompt and measure it (cached per URI for a minute); cb(ms) or cb(nil, why).
function Emu:_fetch_prompt(uri, cb)
  local c = self.promptCache[uri]
  if c and self.loop:now() - c.at < 60000 then return cb(c.ms, c.err) end
  self.stats.promptsFetched = self.stats.promptsFetched + 1
  self.loop:request({ url = uri, timeout = 10000, connect_timeout = 5000, cafile = self.caFile,
                      max_body = 16 * 1048576 }, function(res, err)
    local ms, why
    if err then why = "unreachable (" .. err.code .. ")"
    elseif res.status ~= 200 then why = "HTTP " .. res.status
    else
      local info, werr = wav.check(res.body)
      if info then ms = info.ms else why = werr end
    end
    self.promptCache[uri] = { at = self.loop:now(), ms = ms, err = why }
    cb(ms, why)
  end)
end

-- Fetch every prompt of a list, in order; cb(total_ms) or cb(nil, why).
function Emu:_measure(prompts, cb)
  local total, i = 0, 0
  local function step()
    i = i + 1
    local p = prompts[i]
    if not p then return cb(total) end
    local uri = type(p) == "table" and type(p.mediaInfo) == "table" and p.mediaInfo.uri
    if type(uri) ~= "string" then return cb(nil, "prompt without mediaInfo.uri") end
    self:_fetch_prompt(uri, function(ms, why)
      if not ms then return cb(nil, uri .. ": " .. why) end
      total = total + ms
      step()
    end)
  end
  step()
end

function Emu:_media_next(call)
  if call.mediaBusy or not alive(call) then return end
  local op = table.remove(call.media, 1)
  if not op then return end
  call.mediaBusy = op
  if op.kind == "playPrompt" then self:_run_prompt(call, op) else self:_run_record(call, op) end
end

function Emu:_media_done(call, op)
  if call.mediaBusy == op then call.mediaBusy = nil end
  if op.timer then op.timer:cancel() end
  self:_media_next(call)
end

function Emu:_run_prompt(call, op)
  self:_measure(op.prompts, function(ms, why)
    if not alive(call) or op.done then return end
    if not ms then
      self:_log(call, "prompt failed", why)
      self:_complete_op(call, op, "failed", cannot_play(why))
      return self:_media_done(call, op)
    end
    self:_log(call, "prompt", string.format("%d ms", ms))
    call.prompts = call.prompts + 1
    self:_peer_event(call, "prompt")
    op.timer = self:after(ms, function()
      if op.done then return end
      self:_complete_op(call, op, "completed", result_info(200, 0, "Action completed successfully."))
      self:_peer_event(call, "promptEnd")
      self:_media_done(call, op)
    end)
  end)
end

function Emu:_finish_record(call, rec, reason, code, subcode, message)
  local op = rec.op
  if op.done then return end
  call.recording = nil
  if rec.timers then for _, t in ipairs(rec.timers) do t:cancel() end end
  local spoken = rec.spoken or 0
  if rec.speechFrom then spoken = spoken + (self:now() - rec.speechFrom) end
  local id = core.uuid()
  local token = core.uuid()
  self.recordings[id] = { ms = math.max(100, math.floor(spoken / 100 + 0.5) * 100), token = token }
  self:_log(call, "recorded", string.format("%s, %d ms of speech", reason, math.floor(spoken)))
  self:_complete_op(call, op, "completed", result_info(code, subcode, message), {
    recordingLocation = self.url .. "/emulator/recordings/" .. id,
    recordingAccessToken = token, completionReason = reason })
  self:_media_done(call, op)
end

-- Speech starts (or is already going) while recording.
function Emu:_speech(call, rec)
  if rec.speechFrom or not call.speaking then return end
  rec.speechFrom = self:now()
  rec.heard = true
  local left = call.speaking.ms - (self:now() - call.speaking.from)
  rec.timers[#rec.timers + 1] = self:after(left, function()
    if call.recording ~= rec then return end
    rec.spoken = (rec.spoken or 0) + (self:now() - rec.speechFrom)
    rec.speechFrom = nil
    rec.timers[#rec.timers + 1] = self:after(rec.maxSilence, function()
      if call.recording == rec then
        self:_finish_record(call, rec, "maxSilenceTimeout", 200, 0, "Action completed, max silence timeout.")
      end
    end)
  end)
end

function Emu:_run_record(call, op)
  local b = op.body
  local function begin()
    if not alive(call) or op.done then return end
    local rec = { op = op, timers = {}, stopTones = {},
                  initialSilence = (b.initialSilenceTimeoutInSeconds or 5) * 1000,
                  maxSilence = (b.maxSilenceTimeoutInSeconds or 5) * 1000,
                  maxDuration = (b.maxRecordDurationInSeconds or 5) * 1000 }
    for _, t in ipairs(b.stopTones or {}) do rec.stopTones[t] = true end
    call.recording = rec
    self:_log(call, "recording")
    self:_peer_event(call, "record")
    rec.timers[#rec.timers + 1] = self:after(rec.maxDuration, function()
      if call.recording == rec then
        self:_finish_record(call, rec, "maxRecordDurationReached", 200, 8515,
          "Action completed, max record duration reached.")
      end
    end)
    rec.timers[#rec.timers + 1] = self:after(rec.initialSilence, function()
      if call.recording == rec and not rec.heard then
        self:_finish_record(call, rec, "initialSilenceTimeout", 200, 0, "Action completed, initial silence timeout.")
      end
    end)
    self:_speech(call, rec)
  end
  local beep = b.playBeep == false and 0 or 200
  if type(b.prompts) == "table" and #b.prompts > 0 then
    self:_measure(b.prompts, function(ms, why)
      if not alive(call) or op.done then return end
      if not ms then
        self:_complete_op(call, op, "failed", cannot_play(why),
          { completionReason = "playPromptFailed", recordingLocation = "", recordingAccessToken = "" })
        return self:_media_done(call, op)
      end
      call.prompts = call.prompts + 1
      self:_peer_event(call, "prompt")
      op.timer = self:after(ms + beep, begin)
    end)
  else
    op.timer = self:after(beep, begin)
  end
end

function Emu:_cancel_media(call)
  local ops = {}
  if call.mediaBusy then ops[1] = call.mediaBusy end
  for _, op in ipairs(call.media) do ops[#ops + 1] = op end
  call.media = {}
  call.mediaBusy = nil
  if call.recording then
    for _, t in ipairs(call.recording.timers) do t:cancel() end
    call.recording = nil
  end
  for _, op in ipairs(ops) do
    if op.timer then op.timer:cancel() end
    local extra = op.kind == "recordResponse" and { completionReason = "operationCanceled",
      recordingLocation = "", recordingAccessToken = "" } or nil
    self:_complete_op(call, op, "failed", result_info(400, 8508, "Action failed, the operation was cancelled."), extra)
  end
end

-- ---- rosters (meetings and group calls) ---------------------------------------------------

local function participant(p)
  local streams = array { typed("mediaStream", { mediaType = "audio", sourceId = p.sourceId,
    direction = "sendReceive", serverMuted = false }) }
  return typed("participant", {
    id = p.id, isMuted = p.muted or false, isInLobby = false, mediaStreams = streams,
    info = typed("participantInfo", { identity = typed("identitySet", { [p.kind or "user"] =
      typed("identity", { id = p.identityId, displayName = p.name }) }), languageId = "en-US" }),
  })
end

function Emu:_roster(call, changed)
  if not call.group then return end
  call.rosterSeq = call.rosterSeq + 1
  local data
  if call.delta then
    local list = array {}
    for _, p in ipairs(changed) do
      local v = participant(p)
      v.rosterSequenceNumber = call.rosterSeq
      if p.removed then v.removedState = typed("removedState", { reason = "Removed from roster" }) end
      list[#list + 1] = v
    end
    data = array { typed("deltaParticipants", { sequenceNumber = call.rosterSeq, participants = list }) }
  else
    data = array {}
    for _, p in ipairs(call.participants) do
      if not p.removed then data[#data + 1] = participant(p) end
    end
  end
  self:_notify(call, { { changeType = "updated", rest = "/participants", data = data } }, "participants")
end

function Emu:_join(call, who)
  who.id = who.id or core.uuid()
  who.sourceId = tostring(#call.participants + 1)
  call.participants[#call.participants + 1] = who
  self:_log(call, "joined", who.name or who.identityId)
  self:_roster(call, { who })
end

function Emu:_leave(call, who)
  if who.removed then return end
  who.removed = true
  self:_log(call, "left", who.name or who.identityId)
  self:_roster(call, { who })
end

-- ---- establishing a call ----------------------------------------------------------------

-- `establishing` goes out when signalling starts (after create, or after answer); with the
-- scenario's (or the peer's) swapEstablished it is held back and sent after `established` (the service may
-- deliver the two in either order, REFERENCE.md §1.1).
function Emu:_establishing(call)
  if alive(call) and not call.swap then self:_set_state(call, "establishing") end
end

function Emu:_established(call, delay)
  if not alive(call) then return end
  local swap = call.swap
  self:after(delay or 0, function()
    if not alive(call) then return end
    self:_set_state(call, "established")
    if swap then self:_set_state(call, "establishing") call.state = "established" end
    self:_log(call, "established")
    self:_arm_keepalive(call)
    if call.group then
      self:_join(call, { kind = "application", identityId = call.appId, name = "Bot", id = call.myParticipantId })
      for _, a in ipairs(call.attendees) do
        if (a.join or 0) <= 0 then self:_join(call, a)
        else self:after(a.join, function() if alive(call) then self:_join(call, a) end end) end
        if a.leave then self:after(a.leave, function() if alive(call) then self:_leave(call, a) end end) end
      end
      local share = self.scenario.meeting and self.scenario.meeting.share
      if share and call.sharing then self:_share(call, share) end
    end
    self:_peer_event(call, "established")
  end)
end

function Emu:_share(call, share)
  local sid = core.uuid():gsub("-", ""):upper()
  local function send(changeType)
    self:_notify(call, { { changeType = changeType, rest = "/contentsharingsessions",
      data = array { typed("contentSharingSession", { id = sid }) } } }, "contentSharing")
  end
  self:after(share.start or 100, function() if alive(call) then send("created") end end)
  if share.update then self:after(share.update, function() if alive(call) then send("updated") end end) end
  if share.stop then self:after(share.stop, function() if alive(call) then send("deleted") end end) end
end

function Emu:_arm_keepalive(call)
  if call.keepAliveTimer then call.keepAliveTimer:cancel() end
  call.keepAliveTimer = self:after((self.scenario.keepAliveTimeout or 45 * 60) * 1000, function()
    if alive(call) then
      self:_log(call, "keepAlive timeout")
      self:_end(call, 408, 8537, "Call was terminated because of keep alive timeout.")
    end
  end)
end

local OUTCOMES = {
  busy = { 486, 0, "The callee is busy." },
  declined = { 603, 0, "The callee declined the call." },
  timeout = { 480, 10076, "Callee could not be reached." },
}

-- The peer's side of ringing: answer, or end the call with the right outcome.
function Emu:_ring(call, script)
  if script.answer == false or script.outcome then
    local out = OUTCOMES[script.outcome or "timeout"] or OUTCOMES.timeout
    local ri = script.resultInfo
    local wait
    if (script.outcome or "timeout") == "timeout" then wait = script.ringTimeout or 30000
    else wait = script.after or 1000 end
    self:after(wait, function()
      if alive(call) then
        self:_end(call, ri and ri.code or out[1], ri and ri.subcode or out[2], ri and ri.message or out[3])
      end
    end)
    return
  end
  self:after(script.answer or 300, function()
    if alive(call) then self:_established(call) end
  end)
end

function Emu:_new_call(fields)
  local call = {
    id = core.uuid(), log = {}, ops = {}, media = {}, outbox = {}, participants = {}, attendees = {},
    state = "establishing", toneSeq = 0, rosterSeq = 0, prompts = 0, pressed = "", started = self:now(),
    myParticipantId = core.uuid(), callChainId = core.uuid(),
  }
  for k, v in pairs(fields) do call[k] = v end
  self.calls[call.id] = call
  self.ncalls = self.ncalls + 1
  self.open = self.open + 1
  return call
end

-- ---- Graph: calls -------------------------------------------------------------------------

local function opt(v) if v == nil then return null end return v end

function Emu:_call_object(call)
  local r = call.request or {}
  local source = r.source
  if type(source) ~= "table" then
    source = typed("participantInfo", { identity = typed("identitySet", {
      application = typed("identity", { id = call.appId }) }) })
  end
  source = typed("participantInfo", {
    identity = source.identity, countryCode = opt(source.countryCode), endpointType = opt(source.endpointType),
    region = opt(source.region), languageId = opt(source.languageId) })
  local targets = array {}
  for i, t in ipairs(r.targets or {}) do
    targets[i] = typed("invitationParticipantInfo", { identity = t.identity, endpointType = opt(t.endpointType),
      region = null, replacesCallId = opt(t.replacesCallId), languageId = opt(t.languageId) })
  end
  return typed("call", {
    ["@odata.context"] = self.url .. "/v1.0/$metadata#app/calls/$entity",
    id = call.id, state = call.state, direction = call.direction, callbackUri = call.callbackUri,
    callChainId = call.callChainId, callRoutes = array {}, source = source, targets = targets,
    requestedModalities = r.requestedModalities or array { "audio" }, activeModalities = array {},
    mediaConfig = r.mediaConfig or null, routingPolicies = array {}, tenantId = call.tenantId,
    myParticipantId = call.myParticipantId, subject = opt(r.subject), terminationReason = null,
    ringingTimeoutInSeconds = null, mediaState = null, resultInfo = call.resultInfo or null,
    answeredBy = null, chatInfo = opt(r.chatInfo), meetingInfo = opt(r.meetingInfo), transcription = null,
    meetingCapability = null, toneInfo = null,
  })
end

function Emu:_create_call(req, claims, doc)
  local call = self:_new_call {
    direction = "outgoing", callbackUri = doc.callbackUri, appId = claims.appid,
    tenantId = doc.tenantId or claims.tid, request = doc,
    serviceMedia = type(doc.mediaConfig) == "table"
      and doc.mediaConfig["@odata.type"] ~= "#microsoft.graph.appHostedMediaConfig",
  }
  self.stats.callsCreated = self.stats.callsCreated + 1
  local opts = type(doc.callOptions) == "table" and doc.callOptions or {}
  call.delta = opts.isDeltaRosterEnabled == true
  call.sharing = opts.isContentSharingNotificationEnabled == true
  local targets = type(doc.targets) == "table" and doc.targets or {}
  call.group = type(doc.meetingInfo) == "table" or #targets > 1
  self:_log(call, "created", call.group and "group" or "p2p")
  self:_reply(req, 201, self:_call_object(call), {
    Location = self.url .. "/v1.0/communications/calls/" .. call.id })
  if self.scenario.drive == false then return end  -- load tests of the API alone: no callbacks
  -- who is on the other side
  local script
  if type(doc.meetingInfo) == "table" then
    local m = self.scenario.meeting or {}
    for _, a in ipairs(m.attendees or {}) do
      call.attendees[#call.attendees + 1] = { kind = "user", identityId = a.id or core.uuid(), name = a.name,
        join = a.join, leave = a.leave }
    end
    script = m.peer or self:_peer_script("meeting")
  else
    local key, kind = identity_key(targets[1] and targets[1].identity)
    call.peerKind = kind
    script = self:_peer_script(key)
    for i = 2, #targets do
      local k2 = identity_key(targets[i].identity)
      local s2 = self:_peer_script(k2)
      if s2.answer ~= false and not s2.outcome then
        call.attendees[#call.attendees + 1] = { kind = "user", identityId = k2, name = k2, join = s2.answer or 300 }
      end
    end
  end
  if call.group then
    if #targets > 0 then  -- a group call: the first target stands for the call's peer
      local k1 = identity_key(targets[1].identity)
      table.insert(call.attendees, 1, { kind = "user", identityId = k1, name = k1, join = 0 })
    end
  end
  call.swap = script.swapEstablished or self.scenario.swapEstablished
  self:after(20, function() self:_establishing(call) end)
  self:_ring(call, script)
  self:_start_peer(call, script)
end

--- Place an incoming call to the bot (REFERENCE.md §2).
-- @param inc `webhook` (the bot's calling webhook; required), `from` (an identitySet; a
--   phone number by default), `to` (the bot's identitySet), `tenantId`, `appId` (audience
--   of the callback tokens), `caller` (the scripted caller: steps as for peers), `answerBy`
--   (ms the bot has to answer, 15000)
-- @return the call
function Emu:place_incoming(inc)
  local sc = self.scenario
  local from = inc.from or { phone = { id = "+14255550199" } }
  local fromSet = typed("identitySet", {})
  for k, v in pairs(from) do fromSet[k] = typed("identity", { id = v.id, displayName = v.displayName }) end
  local appId = inc.appId or sc.appId or "00000000-0000-0000-0000-000000000000"
  local call = self:_new_call {
    direction = "incoming", state = "incoming", callbackUri = inc.webhook or sc.webhook,
    appId = appId, tenantId = inc.tenantId or sc.tenantId or "00000000-0000-0000-0000-0000000000aa",
    incomingPending = true,
  }
  call.peerKind = from.phone and "phone" or "user"
  call.caller = inc.caller or sc.caller or {}
  call.swap = call.caller.swapEstablished or sc.swapEstablished
  local target = inc.to or { application = { id = appId, displayName = "Bot" } }
  local toSet = typed("identitySet", {})
  for k, v in pairs(target) do toSet[k] = typed("identity", { id = v.id, displayName = v.displayName }) end
  call.request = { source = typed("participantInfo", { identity = fromSet }),
                   targets = { typed("invitationParticipantInfo", { identity = toSet }) },
                   requestedModalities = array { "audio" } }
  self:_log(call, "incoming")
  local data = self:_call_object(call)
  data["@odata.context"] = nil
  data["@odata.id"] = call_url(call.id)
  data.incomingContext = typed("incomingContext", { sourceParticipantId = core.uuid() })
  self:_notify(call, { { changeType = "created", data = data } }, "call:incoming")
  call.answerTimer = self:after(inc.answerBy or 15000, function()
    if call.state == "incoming" then
      self:_log(call, "not answered in time")
      self:_end(call, 480, 10076, "Callee could not be reached.")
    end
  end)
  return call
end

-- ---- Graph: actions -----------------------------------------------------------------------

local CALL_ACTIONS = {
  answer = true, reject = true, redirect = true, transfer = true, playPrompt = true, recordResponse = true,
  subscribeToTone = true, cancelMediaProcessing = true, keepAlive = true, mute = true, unmute = true,
  updateRecordingStatus = true, changeScreenSharingRole = true, sendDtmfTones = true,
}

function Emu:_op_reply(req, call, op, status, extra)
  local body = op_view(op, extra)
  self:_reply(req, status or 200, body, {
    Location = self.url .. "/v1.0/communications/calls/" .. call.id .. "/operations/" .. op.id })
end

function Emu:_media_op(req, call, kind, body)
  if not call.serviceMedia then
    return self:_error(req, 400, "BadRequest", kind .. " needs service-hosted media")
  end
  if call.state ~= "established" then
    return self:_error(req, 400, "BadRequest", kind .. " needs an established call (state is " .. call.state .. ")")
  end
  local op = self:_new_op(call, kind, body, "running")
  op.body = body
  op.prompts = body.prompts or {}
  if kind == "recordResponse" and body.bargeInAllowed == true then
    table.insert(call.media, 1, op)   -- ahead of what is queued; the running one is stopped
    local busy = call.mediaBusy
    if busy then
      call.mediaBusy = nil
      if busy.timer then busy.timer:cancel() end
      self:_complete_op(call, busy, "failed", result_info(400, 8508, "Action failed, the operation was cancelled."))
    end
  else
    call.media[#call.media + 1] = op
  end
  self:_op_reply(req, call, op, 200, kind == "recordResponse" and { recordingLocation = null } or nil)
  self:_media_next(call)
end

function Emu:_action(req, call, name, body)
  local st = call.state
  if name == "answer" or name == "reject" or name == "redirect" then
    if st ~= "incoming" then
      return self:_error(req, 400, "BadRequest", "Call is not in the incoming state (" .. st .. ").")
    end
    call.incomingPending = nil
    if call.answerTimer then call.answerTimer:cancel() end
    self:_reply(req, 202)
    if body.callbackUri then call.callbackUri = body.callbackUri end
    if name == "answer" then
      call.serviceMedia = type(body.mediaConfig) == "table"
        and body.mediaConfig["@odata.type"] ~= "#microsoft.graph.appHostedMediaConfig"
      local opts = type(body.callOptions) == "table" and body.callOptions or {}
      call.delta, call.sharing = opts.isDeltaRosterEnabled == true, opts.isContentSharingNotificationEnabled == true
      call.state = "establishing"
      self:_log(call, "answered")
      self:_establishing(call)
      self:_established(call, self.scenario.establishDelay or 50)
      self:_start_peer(call, call.caller)
    elseif name == "reject" then
      self:_log(call, "rejected", body.reason)
      call.state = "terminated"
      self.open = self.open - 1
      call.ended = self:now()
      self:_notify(call, { { changeType = "deleted", data = self:_call_data(call) } }, "call:terminated")
    else
      self:_log(call, "redirected")
      call.redirectedTo = body.targets
      self:after(100, function()
        if call.state == "terminated" then return end
        call.state = "terminated"
        self.open = self.open - 1
        self:_notify(call, { { changeType = "deleted", data = self:_call_data(call, {
          id = call.id, state = "terminated", direction = call.direction, callbackUri = call.callbackUri }) } },
          "call:terminated")
      end)
    end
    return
  end
  if name == "keepAlive" then
    self:_arm_keepalive(call)
    return self:_reply(req, 200)
  end
  if name == "playPrompt" or name == "recordResponse" then return self:_media_op(req, call, name, body) end
  if name == "subscribeToTone" then
    call.subscribed = true
    return self:_op_reply(req, call, self:_new_op(call, name, body, "completed"))
  end
  if name == "cancelMediaProcessing" then
    local op = self:_new_op(call, name, body, "completed")
    self:_op_reply(req, call, op)
    return self:_cancel_media(call)
  end
  if name == "mute" or name == "unmute" or name == "updateRecordingStatus" then
    local op = self:_new_op(call, name, body, "completed")
    self:_op_reply(req, call, op, 200, name == "updateRecordingStatus" and { resultInfo = null } or nil)
    if name ~= "updateRecordingStatus" then
      for _, p in ipairs(call.participants) do
        if p.id == call.myParticipantId then p.muted = name == "mute" self:_roster(call, { p }) end
      end
    end
    return
  end
  if name == "changeScreenSharingRole" then
    self:_reply(req, 202)
    for _, p in ipairs(call.participants) do
      if p.id == call.myParticipantId then self:_roster(call, { p }) end
    end
    return
  end
  if name == "sendDtmfTones" then
    local op = self:_new_op(call, name, body, "running")
    self:_op_reply(req, call, op)
    local tones = body.tones or {}
    self:_log(call, "bot sent tones", table.concat(tones, ","))
    self:after(#tones * (body.delayBetweenTonesMs or 300), function()
      if not alive(call) then return end
      self:_complete_op(call, op, "completed", nil, { completionReason = "completedSuccessfully" })
      self:_peer_event(call, "tones")
    end)
    return
  end
  if name == "transfer" then
    self:_reply(req, 202)
    local target = type(body.transferTarget) == "table" and body.transferTarget.identity
    local key = identity_key(target)
    local peer = self:_peer_script(key)
    call.transferTarget = key
    self:_log(call, "transfer", key)
    self:after(50, function()
      if not alive(call) then return end
      self:_set_state(call, "transferring")
      if peer.answer == false or peer.outcome then
        self:after(peer.ringTimeout or 1000, function()
          if not alive(call) then return end
          self:_log(call, "transfer failed")
          local d = self:_call_data(call, { state = "established",
            resultInfo = result_info(500, 7000, "The transfer target did not answer.", "subCode") })
          call.state = "established"
          self:_notify(call, { { changeType = "updated", data = d } }, "call:established")
        end)
        return
      end
      self:after(peer.answer or 300, function()
        if not alive(call) then return end
        self:_set_state(call, "transferAccepted")
        self:after(100, function()
          if not alive(call) then return end
          self:_log(call, "transferred", key)
          call.transferred = key
          self:_end(call, 0, 7015, "GracefulTransferCompleted")
        end)
      end)
    end)
    return
  end
  self:_error(req, 400, "BadRequest", "unsupported action " .. name)
end

function Emu:_invite(req, call, body)
  local op = self:_new_op(call, "invite", body, "Running")
  local parts = array {}
  for i, p in ipairs(body.participants or {}) do parts[i] = p end
  self:_op_reply(req, call, op, 200, { resultInfo = null, participants = parts })
  local wait = 0
  for _, p in ipairs(parts) do
    local key, kind = identity_key(p.identity)
    local peer = self:_peer_script(key)
    if peer.answer ~= false and not peer.outcome then
      wait = math.max(wait, peer.answer or 300)
      self:after(peer.answer or 300, function()
        if alive(call) then
          call.group = true
          self:_join(call, { kind = kind == "phone" and "phone" or "user", identityId = key, name = key })
        end
      end)
    end
  end
  self:after(wait + 10, function()
    if alive(call) then self:_complete_op(call, op, "completed", nil, { participants = parts }) end
  end)
end

function Emu:_participant_action(req, call, pid, name, body)
  local who
  for _, p in ipairs(call.participants) do if p.id == pid and not p.removed then who = p end end
  if not who then return self:_error(req, 404, "itemNotFound", "Participant not found.") end
  if name == "mute" then
    who.muted = true
    self:_op_reply(req, call, self:_new_op(call, "participant.mute", body, "completed"))
    return self:_roster(call, { who })
  end
  local op = self:_new_op(call, name, body, "running")
  self:_op_reply(req, call, op, 202)
  self:after(200, function() if alive(call) then self:_complete_op(call, op, "completed") end end)
end

-- ---- routing ------------------------------------------------------------------------------

-- Validate an action body as the service would: strict JSON, then Graph's schema.
local function validate(kind, body)
  if kind == "keepAlive" then return {} end
  local doc = body ~= "" and core.decode(body, 1048576) or {}
  if type(doc) ~= "table" then return nil, "the body is not a JSON object" end
  local ok, err = core.build(kind, doc)
  if not ok then return nil, tostring(err) end
  return doc
end

function Emu:_graph(req, method, path, body, claims)
  local crid = req:header("client-request-id")
  local count = function()
    if crid then self.byRequestId[crid] = (self.byRequestId[crid] or 0) + 1 end
    self.stats.actions = self.stats.actions + 1
  end
  if path == "/communications/calls" then
    if method ~= "POST" then return self:_error(req, 405, "BadRequest", "Method not allowed.") end
    local doc, err = validate("call", body)
    if not doc then return self:_error(req, 400, "BadRequest", err) end
    count()
    return self:_create_call(req, claims, doc)
  end
  local id, rest = path:match("^/communications/calls/([^/]+)(.*)$")
  if not id then return self:_error(req, 404, "itemNotFound", "Resource not found.") end
  local call = self.calls[id]
  if not call or call.state == "terminated" then return self:_error(req, 404, "8522", "Call not found.") end
  if rest == "" then
    if method == "GET" then return self:_reply(req, 200, self:_call_object(call)) end
    if method == "DELETE" then
      count()
      self:_reply(req, 204)
      self:_log(call, "bot hangs up")
      self:_set_state(call, "terminating")
      return self:after(100, function() self:_end(call, 200, 5001, "The conversation has ended.") end)
    end
    return self:_error(req, 405, "BadRequest", "Method not allowed.")
  end
  local action = rest:match("^/microsoft%.graph%.(%a+)$") or rest:match("^/(%a+)$")
  if action and CALL_ACTIONS[action] and method == "POST" then
    local doc, err = validate(action, body)
    if not doc then return self:_error(req, 400, "BadRequest", err) end
    count()
    self:_log(call, "action", action)
    return self:_action(req, call, action, doc)
  end
  if rest == "/participants" and method == "GET" then
    local list = array {}
    for _, p in ipairs(call.participants) do if not p.removed then list[#list + 1] = participant(p) end end
    return self:_reply(req, 200, { value = list })
  end
  if rest == "/participants/invite" or rest == "/participants/microsoft.graph.invite" then
    if method ~= "POST" then return self:_error(req, 405, "BadRequest", "Method not allowed.") end
    local doc, err = validate("invite", body)
    if not doc then return self:_error(req, 400, "BadRequest", err) end
    count()
    return self:_invite(req, call, doc)
  end
  local pid, paction = rest:match("^/participants/([^/]+)/?(.*)$")
  if pid then
    paction = paction:gsub("^microsoft%.graph%.", "")
    if paction == "" then
      local who
      for _, p in ipairs(call.participants) do if p.id == pid and not p.removed then who = p end end
      if not who then return self:_error(req, 404, "itemNotFound", "Participant not found.") end
      if method == "GET" then return self:_reply(req, 200, participant(who)) end
      if method == "DELETE" then
        count()
        self:_reply(req, 204)
        return self:_leave(call, who)
      end
    elseif method == "POST" and (paction == "mute" or paction == "startHoldMusic" or paction == "stopHoldMusic") then
      local doc, err = validate(paction == "mute" and "participant.mute" or paction, body)
      if not doc then return self:_error(req, 400, "BadRequest", err) end
      count()
      return self:_participant_action(req, call, pid, paction, doc)
    end
    return self:_error(req, 405, "BadRequest", "Method not allowed.")
  end
  local opId = rest:match("^/operations/([^/]+)$")
  if opId and method == "GET" then
    local op = call.ops[opId]
    if not op then return self:_error(req, 404, "itemNotFound", "Operation not found.") end
    return self:_reply(req, 200, op_view(op))
  end
  self:_error(req, 404, "itemNotFound", "Resource not found.")
end

-- A JSON view of a call for tests and the trace: state, log, and what the peer saw.
function Emu:call_view(call)
  return { id = call.id, state = call.state, direction = call.direction, log = call.log,
    pressed = call.pressed, prompts = call.prompts, transferred = call.transferred or null,
    resultInfo = call.resultInfo or null, notifications = #call.log }
end

function Emu:_control(req, method, path, body)
  if path == "/emulator/stats" then
    collectgarbage()
    local repeats = 0
    for _, n in pairs(self.byRequestId) do if n > 1 then repeats = repeats + n - 1 end end
    local fired = 0
    for _, r in ipairs(self.faults) do fired = fired + r.fired end
    local s = { calls = self.ncalls, open = self.open, memoryKB = collectgarbage("count"),
                repeatedRequestIds = repeats, faultsFired = fired }
    for k, v in pairs(self.stats) do s[k] = v end
    return self:_reply(req, 200, s)
  end
  if path == "/emulator/incoming" and method == "POST" then
    local doc = core.decode(body ~= "" and body or "{}")
    if type(doc) ~= "table" or type(doc.webhook or self.scenario.webhook) ~= "string" then
      return self:_error(req, 400, "BadRequest", "webhook is required")
    end
    local call = self:place_incoming(doc)
    return self:_reply(req, 201, { id = call.id })
  end
  if path == "/emulator/callback-token" and method == "POST" then   -- for load generators
    local doc = core.decode(body ~= "" and body or "{}")
    if type(doc) ~= "table" or type(doc.appId) ~= "string" then
      return self:_error(req, 400, "BadRequest", "appId is required")
    end
    return self:_reply(req, 200, { token = self:_callback_token({ appId = doc.appId,
      tenantId = doc.tenantId or self.scenario.tenantId or "tenant-1" }) })
  end
  if path == "/emulator/rotate-keys" and method == "POST" then
    return self:_reply(req, 200, { kid = self:rotate_keys() })
  end
  if path == "/emulator/faults" and method == "POST" then
    local doc = core.decode(body)
    if type(doc) ~= "table" then return self:_error(req, 400, "BadRequest", "a JSON array of rules") end
    for _, r in ipairs(doc) do self:add_fault(r) end
    return self:_reply(req, 200, { faults = #self.faults })
  end
  if path == "/emulator/requests" then
    return self:_reply(req, 200, self.byRequestId)
  end
  local rid = path:match("^/emulator/recordings/([%w%-]+)$")
  if rid then
    local r = self.recordings[rid]
    local auth = req:header("Authorization") or ""
    if not r then return self:_error(req, 404, "itemNotFound", "No such recording.") end
    if auth ~= "Bearer " .. r.token then
      return self:_error(req, 401, "Unauthorized", "recordingAccessToken required")
    end
    -- what was "said", made when first asked for, once per length (to the 100 ms): making a
    -- WAV in Lua costs, and thousands of calls record at once in a load test
    local bytes = self.toneCache[r.ms]
    if not bytes then
      bytes = wav.tone { ms = r.ms, hz = 220 }
      self.toneCache[r.ms] = bytes
    end
    return self:_reply(req, 200, bytes, { ["Content-Type"] = "application/octet-stream" })
  end
  if path == "/emulator/calls" and method == "GET" then   -- every call, without its log
    local out = {}
    for _, call in pairs(self.calls) do
      local v = self:call_view(call)
      v.log = nil
      out[#out + 1] = v
    end
    table.sort(out, function(a, b) return a.id < b.id end)
    return self:_reply(req, 200, { calls = out })
  end
  local cid, verb = path:match("^/emulator/calls/([^/]+)/?(%a*)$")
  if cid then
    local call = self.calls[cid]
    if not call then return self:_error(req, 404, "itemNotFound", "No such call.") end
    if verb == "" then return self:_reply(req, 200, self:call_view(call)) end
    if verb == "hangup" and method == "POST" then
      self:_peer_act(call, { hangup = true })
      return self:_reply(req, 200, { state = call.state })
    end
    if verb == "press" and method == "POST" then
      local doc = core.decode(body)
      self:press(call, type(doc) == "table" and doc.tones or "")
      return self:_reply(req, 200, {})
    end
  end
  self:_error(req, 404, "itemNotFound", "Unknown emulator endpoint.")
end

function Emu:_handle(req, method, uri, body)
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

-- A request fault: answer with an error status, answer late, or drop the connection.
function Emu:_apply_fault(req, f, proceed)
  if f.reset then return req:reset() end
  if f.status then
    local h = {}
    if f.retryAfter then h["Retry-After"] = tostring(f.retryAfter) end
    local code = f.code or (f.status == 429 and "TooManyRequests") or (f.status == 503 and "serviceNotAvailable")
      or (f.status == 504 and "GatewayTimeout") or "generalException"
    return self:_error(req, f.status, code, f.message or "Injected by the emulator's scenario.", h)
  end
  if f.delay then
    req:keep()
    return self.loop:timer(f.delay, proceed)  -- real milliseconds: a slow server, not emulated time
  end
  proceed()
end

--- Run the emulator's loop until it is stopped.
function Emu:run() self.loop:run() end

return M
