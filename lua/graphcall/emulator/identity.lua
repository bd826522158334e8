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

-- ---- identity ---------------------------------------------------------------------------

function Emulator:_token(req, tenant, body)
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
