--- The emulator as the identity platform: tokens by client credentials, the signing keys of
-- tokens and callbacks, the bearer check of every Graph request, the callback tokens.
-- @module graphcall.emulator.identity
local core = require "graphcall.core"
local U = require "graphcall.emulator.util"

local json, array, unpack, parse_form = U.json, U.array, U.unpack, U.parse_form
local GRAPH_AUD = U.GRAPH_AUD

local Emulator = {}

-- RSA keys take a while to make; emulators of one process may share theirs (opts.shareKeys)
local shared = {}
function Emulator:_rsa(name)
  if not self.shareKeys then return core.rsa_key() end
  shared[name] = shared[name] or core.rsa_key()
  return shared[name]
end

function Emulator:_new_keys()
  self.tokenKey = self:_rsa("token")
  self.tokenKid = "emu-token-" .. core.uuid():sub(1, 8)
  self.callbackKey = self:_rsa("callback")
  self.callbackKid = "emu-callback-" .. core.uuid():sub(1, 8)
  self.tokenJwks = '{"keys":[' .. self.tokenKey:jwk(self.tokenKid) .. "]}"
  self.callbackJwks = '{"keys":[' .. self.callbackKey:jwk(self.callbackKid) .. "]}"
  self.tokenKeys = assert(core.jwks(self.tokenJwks))
  self.sigCache = {}
end

--- Rotate the key the callbacks are signed with (the old one leaves the key set): bots must
-- refetch on the unknown kid.
function Emulator:rotate_keys()
  self.callbackKey = core.rsa_key()
  self.callbackKid = "emu-callback-" .. core.uuid():sub(1, 8)
  self.callbackJwks = '{"keys":[' .. self.callbackKey:jwk(self.callbackKid) .. "]}"
  self.sigCache = {}
  return self.callbackKid
end

-- ---- certificate credentials ------------------------------------------------------------

local ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

--- Register a certificate for an app (PEM): its client assertions are then taken.
-- @return the certificate's SHA-1 thumbprint (hex), or nil and why the PEM is no certificate
function Emulator:register_certificate(appId, pem)
  local t, why = core.x509_thumbprints(pem)
  if not t then return nil, why end
  self.certificates = self.certificates or {}
  local list = self.certificates[appId] or {}
  self.certificates[appId] = list
  for _, c in ipairs(list) do if c.sha1 == t.sha1 then return t.sha1 end end
  list[#list + 1] = { pem = pem, sha1 = t.sha1, x5t = t.x5t, x5tS256 = t.x5tS256 }
  return t.sha1
end

local function b64url(s)   -- decoded, or nil
  if type(s) ~= "string" then return nil end
  return (core.b64url_decode(s))
end

local function hex(s) return (s:gsub(".", function(c) return string.format("%02X", c:byte()) end)) end

local function refused(why) return "AADSTS700027: Client assertion contains an invalid signature. [Reason - " .. why end

-- A client assertion (Microsoft identity platform, "certificate credentials"): signed with a
-- certificate registered for the app, in RS256 (x5t) or PS256 (x5t#S256), for this token
-- endpoint, now, once. nil, or what the identity platform answers.
function Emulator:_assertion_error(tenant, f, url)
  local token = f.client_assertion
  local h64, c64 = token:match("^([%w%-_]+)%.([%w%-_]+)%.[%w%-_]+$")
  local header = h64 and core.decode(b64url(h64) or "")
  local claims = c64 and core.decode(b64url(c64) or "")
  if type(header) ~= "table" or type(claims) ~= "table" then
    return "AADSTS50027: JWT token is invalid or malformed."
  end
  local alg, x5t, s256 = header.alg, header.x5t, header["x5t#S256"]
  if alg ~= "RS256" and alg ~= "PS256" then
    return refused("The algorithm " .. tostring(alg) .. " is not supported.]")
  end
  local used = b64url(type(s256) == "string" and s256 or x5t)
  local thumb = used and hex(used) or "?"
  local cert
  for _, c in ipairs((self.certificates or {})[f.client_id] or {}) do
    if (s256 ~= nil and s256 == c.x5tS256) or (s256 == nil and x5t ~= nil and x5t == c.x5t) then cert = c end
  end
  if not cert then
    return refused("The key was not found., Thumbprint of key used by client: '" .. thumb .. "']")
  end
  if not core.x509_verify(cert.pem, alg, token) then
    return refused("The provided signature value did not match the expected signature value., Thumbprint of "
      .. "key used by client: '" .. thumb .. "']")
  end
  -- the emulator's own words from here: Microsoft documents the claims, not these answers
  if claims.aud ~= url and claims.aud ~= "https://login.microsoftonline.com/" .. tenant .. "/oauth2/v2.0/token" then
    return refused("The audience " .. tostring(claims.aud) .. " is not this token endpoint (" .. url .. ").]")
  end
  if claims.iss ~= f.client_id or claims.sub ~= f.client_id then
    return refused("iss and sub must be the client id " .. f.client_id .. ".]")
  end
  local now = os.time()
  if type(claims.exp) ~= "number" or claims.exp <= now - 300 or (tonumber(claims.nbf) or 0) > now + 300 then
    return string.format("AADSTS700024: Client assertion is not within its valid time range. Current time: %s, "
      .. "assertion valid from %s, expiry time of assertion %s.", os.date("!%Y-%m-%dT%H:%M:%SZ", now),
      os.date("!%Y-%m-%dT%H:%M:%SZ", tonumber(claims.nbf) or 0), os.date("!%Y-%m-%dT%H:%M:%SZ",
      tonumber(claims.exp) or 0))
  end
  if type(claims.jti) ~= "string" or claims.jti == "" then return refused("The assertion has no jti.]") end
  self.jtis = self.jtis or {}
  local key = f.client_id .. "\0" .. claims.jti
  if self.jtis[key] then return refused("The assertion was presented before (jti " .. claims.jti .. ").]") end
  self.njtis = (self.njtis or 0) + 1
  if self.njtis > 10000 then   -- bounded: the expired ones go
    for k, exp in pairs(self.jtis) do if exp < now - 300 then self.jtis[k] = nil end end
    self.njtis = 0
  end
  self.jtis[key] = claims.exp
  return nil
end

-- ---- identity ---------------------------------------------------------------------------

function Emulator:_token(req, tenant, body)
  local f = parse_form(body)
  local creds = self.scenario.credentials
  if f.grant_type ~= "client_credentials" then
    return self:_reply(req, 400, { error = "unsupported_grant_type",
      error_description = "AADSTS70003: The app requested an unsupported grant type." })
  end
  local assertion = f.client_assertion_type ~= nil or f.client_assertion ~= nil
  if not f.client_id or f.client_id == "" or (not assertion and not f.client_secret) then
    return self:_reply(req, 400, { error = "invalid_request",
      error_description = "AADSTS900144: The request body must contain client_id and client_secret." })
  end
  if assertion then
    if f.client_assertion_type ~= ASSERTION_TYPE or type(f.client_assertion) ~= "string" then
      return self:_reply(req, 400, { error = "invalid_request", error_description = "AADSTS900144: The request "
        .. "body must contain client_assertion and client_assertion_type " .. ASSERTION_TYPE .. "." })
    end
    local why = self:_assertion_error(tenant, f, self.url .. "/" .. tenant .. "/oauth2/v2.0/token")
    if why then return self:_reply(req, 401, { error = "invalid_client", error_description = why }) end
  elseif creds and (f.client_id ~= creds.clientId or f.client_secret ~= creds.clientSecret) then
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
    exp = now + math.ceil(life / self.speed), tid = tenant, appid = f.client_id, roles = self:_roles(tenant) }
  local token = self.tokenKey:sign(json { alg = "RS256", typ = "JWT", kid = self.tokenKid }, claims)
  self.stats.tokensIssued = self.stats.tokensIssued + 1
  self:_reply(req, 200, { token_type = "Bearer", expires_in = life, ext_expires_in = life,
                          access_token = token })
end

-- The claims of a valid access token from our own token endpoint, or nil.
local ALL_ROLES = { "Calls.Initiate.All", "Calls.InitiateGroupCall.All", "Calls.JoinGroupCall.All",
                    "Calls.AccessMedia.All" }

-- The application permissions an admin of `tenant` consented to: all calling ones, unless the
-- scenario's `consent` says otherwise for that tenant (false: none; a list: those). A token
-- for `common` or `organizations` carries none (REFERENCE.md section 6: comms-samples #309).
function Emulator:_roles(tenant)
  local c = self.scenario.consent
  local granted = ALL_ROLES
  if tenant == "common" or tenant == "organizations" then granted = {}
  elseif type(c) == "table" and c[tenant] == false then granted = {}
  elseif type(c) == "table" and type(c[tenant]) == "table" then granted = c[tenant] end
  local out = array {}
  for i, r in ipairs(granted) do out[i] = r end
  return out
end

function Emulator:_bearer(req)
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

return Emulator
