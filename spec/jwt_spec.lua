-- Tokens are made here with the openssl command line and a key generated for the run, so the
-- verifier is checked against an independent signer.
local jwt = require "graphcall.jwt"

local APP = "11111111-2222-3333-4444-555555555555"
local TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
local NOW = 1736935800

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local function b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for k = 1, chars do
      local idx = math.floor(n / 2 ^ (18 - 6 * (k - 1))) % 64
      out[#out + 1] = B64:sub(idx + 1, idx + 1)
    end
  end
  return table.concat(out)
end

local function hex2bin(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  return out
end

local function json(t)  -- flat objects of strings and numbers, in a fixed order
  local parts = {}
  for _, kv in ipairs(t) do
    local k, v = kv[1], kv[2]
    parts[#parts + 1] = string.format("%q:%s", k, type(v) == "string" and string.format("%q", v) or tostring(v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local dir, keyfile, otherkey, pubpem

local function jwk_of(pem, kid)
  local mod = sh("openssl rsa -in " .. pem .. " -noout -modulus"):match("Modulus=(%x+)")
  return string.format('{"kty":"RSA","use":"sig","kid":"%s","e":"AQAB","n":"%s"}', kid, b64url(hex2bin(mod)))
end

local function sign(signing_input, pem)
  local f = assert(io.open(dir .. "/in", "wb"))
  f:write(signing_input)
  f:close()
  return sh("openssl dgst -sha256 -sign " .. pem .. " -binary " .. dir .. "/in")
end

local function token(opts)
  opts = opts or {}
  local header = opts.header or json { { "alg", "RS256" }, { "typ", "JWT" }, { "kid", opts.kid or "key-1" } }
  local claims = opts.claims or json {
    { "aud", opts.aud or APP }, { "iss", opts.iss or "https://api.botframework.com" },
    { "iat", NOW - 60 }, { "nbf", opts.nbf or (NOW - 60) }, { "exp", opts.exp or (NOW + 3600) },
    { "tid", opts.tid or TENANT },
  }
  local input = b64url(header) .. "." .. b64url(claims)
  return input .. "." .. b64url(sign(input, opts.pem or keyfile))
end

local verifier

setup(function()
  dir = sh("mktemp -d"):gsub("%s+$", "")
  keyfile, otherkey = dir .. "/k.pem", dir .. "/other.pem"
  sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. keyfile)
  sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. otherkey)
  pubpem = sh("openssl rsa -in " .. keyfile .. " -pubout")
  local jwks = '{"keys":[' .. jwk_of(keyfile, "key-1") .. "," .. jwk_of(otherkey, "key-2") .. "]}"
  verifier = assert(jwt.new { appId = APP, jwks = jwks, clock = function() return NOW end })
end)

teardown(function() if dir then sh("rm -rf " .. dir) end end)

local function rejects(tok, code)
  local claims, err = verifier:verify("Bearer " .. tok)
  assert.is_nil(claims)
  assert.equal(code, err.code, err.message)
  return err
end

describe("JWT verification", function()
  it("accepts a valid token and returns its claims", function()
    local claims, err = verifier:verify("Bearer " .. token())
    assert.is_table(claims, err and tostring(err))
    assert.equal(TENANT, claims.tid)
    assert.equal(APP, claims.aud)
    assert.equal(2, verifier.keys:count())
  end)

  it("accepts the graph.microsoft.com issuer and an aud array", function()
    local tok = token { claims = '{"aud":["x","' .. APP .. '"],"iss":"https://graph.microsoft.com",'
      .. '"exp":' .. (NOW + 60) .. ',"tid":"t"}' }
    assert.is_table(verifier:verify(tok))
  end)

  it("rejects a wrong signature", function()
    rejects(token { pem = otherkey, kid = "key-1" }, "signature")
    local t = token()
    rejects(t:sub(1, -6) .. (t:sub(-5, -5) == "A" and "B" or "A") .. t:sub(-4), "signature")
  end)

  it("rejects an unknown kid", function() rejects(token { kid = "key-9" }, "unknown_kid") end)
  it("rejects an expired token", function() rejects(token { exp = NOW - 301 }, "expired") end)
  it("allows the clock skew on exp", function() assert.is_table(verifier:verify(token { exp = NOW - 299 })) end)
  it("rejects a token not yet valid", function() rejects(token { nbf = NOW + 301 }, "not_yet_valid") end)
  it("rejects a wrong audience", function() rejects(token { aud = "someone-else" }, "audience") end)
  it("rejects a wrong issuer", function() rejects(token { iss = "https://evil.example" }, "issuer") end)
  it("rejects a token without a tenant", function() rejects(token { tid = "" }, "tenant") end)

  it("rejects alg none", function()
    local h = b64url('{"alg":"none","typ":"JWT","kid":"key-1"}')
    local c = b64url(json { { "aud", APP }, { "iss", "https://api.botframework.com" }, { "exp", NOW + 60 },
                            { "tid", TENANT } })
    rejects(h .. "." .. c .. ".", "alg")          -- the usual form: empty signature
    rejects(h .. "." .. c .. "." .. b64url("x"), "alg")
  end)

  it("rejects an HS256 token signed with the public key as the secret", function()
    local input = b64url('{"alg":"HS256","typ":"JWT","kid":"key-1"}') .. "." ..
      b64url(json { { "aud", APP }, { "iss", "https://api.botframework.com" }, { "exp", NOW + 60 }, { "tid", TENANT } })
    local f = assert(io.open(dir .. "/in", "wb")); f:write(input); f:close()
    local hexkey = (pubpem:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
    local mac = sh("openssl dgst -sha256 -mac HMAC -macopt hexkey:" .. hexkey .. " -binary " .. dir .. "/in")
    assert.equal(32, #mac)
    rejects(input .. "." .. b64url(mac), "alg")
  end)

  it("rejects a token whose header lists critical extensions (RFC 7515 4.1.11)", function()
    local header = '{"alg":"RS256","typ":"JWT","kid":"key-1","crit":["http://example.invalid/ext"],'
      .. '"http://example.invalid/ext":true}'
    rejects(token { header = header }, "crit")
    rejects(token { header = '{"alg":"RS256","kid":"key-1","crit":[]}' }, "crit")
    -- the same token without crit verifies: the signature was never the problem
    assert.is_table(verifier:verify(token { header = '{"alg":"RS256","kid":"key-1"}' }))
  end)

  it("rejects malformed base64", function()
    local t = token()
    local a, b, c = t:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    rejects(a .. "*." .. b .. "." .. c, "malformed")
    rejects("a.b", "malformed")
    rejects("a.b.c.d", "malformed")
    rejects(a .. "." .. b .. "." .. c .. "==", "malformed")
  end)

  it("rejects an oversized token before looking inside", function()
    rejects(token { tid = string.rep("t", 9000) }, "too_large")
  end)

  it("needs a bearer token at all", function()
    local claims, err = verifier:verify(nil)
    assert.is_nil(claims)
    assert.equal("missing", err.code)
  end)

  it("refuses key sets without usable keys", function()
    local v, err = jwt.new { appId = APP, jwks = '{"keys":[]}' }
    assert.is_nil(v)
    assert.equal("jwks", err.code)
    v, err = jwt.new { appId = APP, jwks = 'not json' }
    assert.is_nil(v)
    assert.equal("jwks", err.code)
  end)

  it("serves a token it verified before from its cache, but not once it expires", function()
    local now = NOW
    local v = assert(jwt.new { appId = APP, jwks = '{"keys":[' .. jwk_of(keyfile, "key-1") .. "]}",
                                clock = function() return now end })
    local tok = token { exp = NOW + 100 }
    assert.is_table(v:verify(tok))
    assert.equal(1, v.ncache)
    assert.same(v:verify(tok), v:verify(tok))
    now = NOW + 100 + 301                       -- past exp and the skew
    local claims, err = v:verify(tok)
    assert.is_nil(claims)
    assert.equal("expired", err.code)
    assert.equal(0, v.ncache)
    -- a tampered copy is a different string: verified on its own, and refused
    now = NOW
    local t2 = token()
    assert.is_table(v:verify(t2))
    rejects(t2:sub(1, -6) .. (t2:sub(-5, -5) == "A" and "B" or "A") .. t2:sub(-4), "signature")
  end)

  it("serves the header it saw last without a lookup, and keeps its count right", function()
    local now = NOW
    local v = assert(jwt.new { appId = APP, jwks = '{"keys":[' .. jwk_of(keyfile, "key-1") .. "]}",
                                clock = function() return now end, cache = 1 })
    local a, b = token { exp = NOW + 100, tid = "a" }, token { exp = NOW + 100, tid = "b" }
    assert.equal("a", v:verify("Bearer " .. a).tid)
    assert.equal("b", v:verify("Bearer " .. b).tid)   -- the cache was full: emptied, b kept
    assert.equal("b", v:verify("Bearer " .. b).tid)
    assert.equal("a", v:verify("Bearer " .. a).tid)   -- the last one is b: a verified again
    assert.equal(1, v.ncache)
    now = NOW + 100 + 301
    assert.equal("expired", select(2, v:verify("Bearer " .. a)).code)
    assert.equal(0, v.ncache)
    assert.equal("expired", select(2, v:verify("Bearer " .. b)).code)
    assert.equal(0, v.ncache)
  end)

  it("forgets what it verified when the keys change", function()
    local v = assert(jwt.new { appId = APP, jwks = '{"keys":[' .. jwk_of(keyfile, "key-1") .. "]}",
                                clock = function() return NOW end })
    local tok = token()
    assert.is_table(v:verify(tok))
    assert.is_true(v:set_keys('{"keys":[' .. jwk_of(otherkey, "key-2") .. "]}"))
    local claims, err = v:verify(tok)
    assert.is_nil(claims)
    assert.equal("unknown_kid", err.code)
  end)

  it("takes a new key set on rollover", function()
    local jwks = '{"keys":[' .. jwk_of(otherkey, "key-3") .. "]}"
    local v = assert(jwt.new { appId = APP, jwks = jwks, clock = function() return NOW end })
    local claims, err = v:verify(token { pem = keyfile, kid = "key-1" })
    assert.is_nil(claims)
    assert.equal("unknown_kid", err.code)
    assert.is_true(v:set_keys('{"keys":[' .. jwk_of(keyfile, "key-1") .. "]}"))
    assert.is_table(v:verify(token()))
  end)
end)
