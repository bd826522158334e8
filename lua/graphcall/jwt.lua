--- Verifying that a callback POST comes from the calling service (REFERENCE.md §4), as
-- Microsoft's samples do: the `Authorization: Bearer` JWT, RS256 against the service's JWKS
-- keys (by kid), issuer in the allowed set, audience = the bot's app id, exp/nbf with a
-- bounded clock skew, and a tid (tenant) claim.
--
--   local jwt = require "graphcall.jwt"
--   local verifier = assert(jwt.new { appId = APP_ID, jwks = jwks_json })
--   local claims, err = verifier:verify(headers["Authorization"])
--   if not claims then return 403 end            -- err.code says why; dispatch nothing
--
-- This verifier takes the JWKS text and does no I/O; call verifier:set_keys(jwks_json) on
-- rollover (an "unknown_kid" error is the signal to refetch). A standalone bot gets one that
-- fetches and refreshes its keys from graphcall.client: client:verifier().
-- @module graphcall.jwt
local core = require "graphcall.core"

local M = {}

M.ISSUERS = { "https://api.botframework.com", "https://graph.microsoft.com" }
M.DEFAULT_SKEW = 300  -- seconds, as .NET's default
M.CACHE = 256         -- verified tokens remembered (the service sends one token many times)

local Verifier = {}
Verifier.__index = Verifier

--- jwt.new{appId =, jwks =, issuers = M.ISSUERS, skew = 300, max_len = 8192, clock = os.time,
-- cache = M.CACHE (verified tokens remembered; 0: none)}
-- Returns a verifier, or nil and an error if the key set is unusable.
function M.new(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'new' (table expected)", 2) end
  if type(opts.appId) ~= "string" or opts.appId == "" then
    error("bad argument #1 to 'new' (appId: the bot's app id is required)", 2)
  end
  local self = setmetatable({
    appId = opts.appId,
    issuers = opts.issuers or M.ISSUERS,
    skew = opts.skew or M.DEFAULT_SKEW,
    max_len = opts.max_len,
    clock = opts.clock or os.time,
    cache_max = opts.cache or M.CACHE, cache = {}, ncache = 0,
  }, Verifier)
  local ok, err = self:set_keys(opts.jwks)
  if not ok then return nil, err end
  return self
end

--- Replace the key set (JWKS JSON text).
function Verifier:set_keys(jwks)
  if type(jwks) ~= "string" then error("bad argument to 'set_keys' (JWKS JSON text expected)", 2) end
  local keys, err = core.jwks(jwks)
  if not keys then return nil, err end
  self.keys = keys
  self.cache, self.ncache, self.last = {}, 0, nil   -- what verified under the old keys is checked again
  return true
end

--- Verify an Authorization header value ("Bearer <jwt>") or a bare token.
-- @return the claims table (with tid), or nil and {code=, message=}; codes: missing,
--   malformed, too_large, alg, crit, unknown_kid, signature, expired, not_yet_valid,
--   audience, issuer, tenant. Every one means: answer 403, dispatch nothing.
function Verifier:verify(authorization)
  if type(authorization) ~= "string" or authorization == "" then
    return nil, setmetatable({ code = "missing", message = "no bearer token", path = "" }, core.error_mt)
  end
  local now = self.clock()
  -- The same bytes verify the same way: a header seen before is served from the cache while
  -- its token's exp (and nbf) still hold; new keys empty the cache. The last one is compared
  -- first: the service sends one token with many notifications, and a compare of equal
  -- lengths costs less than hashing the header for a lookup (Lua 5.4 hashes long strings whole).
  local hit = self.last
  if not (hit and hit.header == authorization) then hit = self.cache[authorization] end
  if hit then
    if now <= hit.exp + self.skew and now + self.skew >= hit.nbf then
      self.last = hit
      return hit.claims
    end
    if self.cache[authorization] == hit then
      self.cache[authorization] = nil
      self.ncache = self.ncache - 1
    end
    self.last = nil
  end
  local token = authorization:match("^[Bb]earer%s+(%S+)%s*$") or authorization
  local claims, err = core.verify_jwt(self.keys, token, self.appId, self.issuers, now, self.skew, self.max_len)
  if claims and self.cache_max > 0 then
    if self.ncache >= self.cache_max then self.cache, self.ncache = {}, 0 end
    hit = { header = authorization, claims = claims, exp = tonumber(claims.exp) or 0, nbf = tonumber(claims.nbf) or 0 }
    self.cache[authorization], self.last = hit, hit
    self.ncache = self.ncache + 1
  end
  return claims, err
end

return M
