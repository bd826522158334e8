-- Certificate credentials: a client signs its token requests with a certificate's key instead
-- of a secret (PS256 with x5t#S256 as current MSAL does, or RS256 with x5t), for any tenant;
-- the emulator takes assertions only from certificates registered for the app (a scenario,
-- the command line, the control API) and refuses a wrong key, an unknown certificate, an
-- expired assertion and a replayed one, in the identity platform's words. The signature is
-- checked by the openssl command line too, not only by the code that made it.
local E = require "emu"
local graphcall = require "graphcall"
local core = require "graphcall.core"
local wire = require "graphcall.wire"
local cjson = require "cjson"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function b64url_decode(s) return core.b64url_decode(s) end

describe("certificate credentials", function()
  local dir, certA, keyA, certB, keyB, emu, loop

  local function client(o)
    local opts = { tenantId = "tenant-1", clientId = "app-cert", authority = emu.url, graphUrl = emu.url .. "/v1.0",
                   loop = loop, retries = 0 }
    for k, v in pairs(o or {}) do opts[k] = v end
    return graphcall.client(opts)
  end

  -- POST an assertion to the emulator's token endpoint by hand
  local function token_request(assertion, tenant)
    local body = "grant_type=client_credentials&client_id=app-cert&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
      .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
      .. "&client_assertion=" .. assertion
    local res = assert(loop:fetch { method = "POST", url = emu.url .. "/" .. (tenant or "tenant-1")
      .. "/oauth2/v2.0/token", body = body, headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    return res.status, cjson.decode(res.body)
  end

  local function signed(key, header, claims) return assert(core.x509_sign(key, header.alg, wire.json(header),
    wire.json(claims))) end

  setup(function()
    dir = E.tmpdir()
    for _, n in ipairs { "a", "b" } do
      E.sh(string.format("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/%s.key -out %s/%s.pem -days 2 "
        .. "-subj /CN=bot-%s", dir, n, dir, n, n))
    end
    certA, keyA = read(dir .. "/a.pem"), read(dir .. "/a.key")
    certB, keyB = read(dir .. "/b.pem"), read(dir .. "/b.key")
    emu = E.start { scenario = { certificates = { ["app-cert"] = { certA } } },
                    args = "--certificate app-cli=" .. dir .. "/b.pem" }
    loop = graphcall.loop { log = false }
  end)

  teardown(function()
    if emu then emu.stop() end
    if loop then loop:close() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("gets tokens with a registered certificate, PS256 and RS256, for each tenant", function()
    local ps = client { certificate = certA, key = keyA }
    assert.is_string((ps:token()))
    assert.is_string((ps:token("tenant-2")))          -- a multi-tenant bot: its own assertion per tenant
    local rs = client { certificate = certA, key = keyA, assertionAlg = "RS256" }
    local tok, err = rs:token()
    assert.is_string(tok, err and err.message)
  end)

  it("signs an assertion as the identity platform documents it, checked by openssl", function()
    local url = emu.url .. "/tenant-1/oauth2/v2.0/token"
    local c = client { certificate = certA, key = keyA }
    local assertion = c:_assertion(url)
    local h64, c64, s64 = assertion:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    local header, claims = cjson.decode(b64url_decode(h64)), cjson.decode(b64url_decode(c64))
    assert.equal("PS256", header.alg)
    assert.equal("JWT", header.typ)
    local s256 = E.sh(string.format("openssl x509 -in %s/a.pem -outform DER | openssl dgst -sha256 -binary | "
      .. "base64 -w0 | tr '+/' '-_' | tr -d '='", dir))
    assert.equal(s256, header["x5t#S256"])
    assert.equal(url, claims.aud)
    assert.equal("app-cert", claims.iss)
    assert.equal("app-cert", claims.sub)
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", claims.jti)
    assert.equal(600, claims.exp - claims.nbf)
    assert.is_true(math.abs(claims.iat - os.time()) <= 5)
    -- PSS, salt as long as the digest: what openssl verifies with the certificate's key
    local f = assert(io.open(dir .. "/input", "wb"))
    f:write(h64 .. "." .. c64)
    f:close()
    f = assert(io.open(dir .. "/sig", "wb"))
    f:write(b64url_decode(s64))
    f:close()
    local out = E.sh(string.format("openssl x509 -in %s/a.pem -pubkey -noout > %s/pub.pem && openssl dgst -sha256 "
      .. "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -verify %s/pub.pem -signature %s/sig %s/input",
      dir, dir, dir, dir, dir))
    assert.matches("Verified OK", out)
    -- and RS256 carries the SHA-1 thumbprint, x5t
    local rs = client { certificate = certA, key = keyA, assertionAlg = "RS256" }
    local rh = cjson.decode(b64url_decode(rs:_assertion(url):match("^[^.]+")))
    local s1 = E.sh(string.format("openssl x509 -in %s/a.pem -outform DER | openssl dgst -sha1 -binary | "
      .. "base64 -w0 | tr '+/' '-_' | tr -d '='", dir))
    assert.same({ alg = "RS256", typ = "JWT", x5t = s1 }, rh)
  end)

  it("refuses an unregistered certificate, a wrong key, an expired assertion and a replay", function()
    local _, err = client { certificate = certB, key = keyB }:token()
    assert.equal("auth", err.code)
    assert.equal("invalid_client", err.graphCode)
    assert.matches("AADSTS700027: .*The key was not found", err.message)
    local url = emu.url .. "/tenant-1/oauth2/v2.0/token"
    local now = os.time()
    local claims = { aud = url, iss = "app-cert", sub = "app-cert", jti = core.uuid(), nbf = now, iat = now,
                     exp = now + 600 }
    local s256 = core.x509_thumbprints(certA).x5tS256
    -- A's thumbprint, B's key
    local status, doc = token_request(signed(keyB, { alg = "PS256", typ = "JWT", ["x5t#S256"] = s256 }, claims))
    assert.equal(401, status)
    assert.matches("AADSTS700027: .*did not match the expected signature value", doc.error_description)
    -- expired
    claims.jti, claims.nbf, claims.exp = core.uuid(), now - 3600, now - 1800
    status, doc = token_request(signed(keyA, { alg = "PS256", typ = "JWT", ["x5t#S256"] = s256 }, claims))
    assert.equal(401, status)
    assert.matches("AADSTS700024: Client assertion is not within its valid time range", doc.error_description)
    -- another tenant's token endpoint
    claims.jti, claims.nbf, claims.exp = core.uuid(), now, now + 600
    status = token_request(signed(keyA, { alg = "PS256", typ = "JWT", ["x5t#S256"] = s256 }, claims), "tenant-9")
    assert.equal(401, status)
    -- once, not twice
    local once = signed(keyA, { alg = "PS256", typ = "JWT", ["x5t#S256"] = s256 }, claims)
    assert.equal(200, (token_request(once)))
    status, doc = token_request(once)
    assert.equal(401, status)
    assert.matches("presented before", doc.error_description)
    -- secrets still work for apps that use them
    local sc = client { clientId = "app-secret", clientSecret = "s" }
    assert.is_string((sc:token()))
  end)

  it("registers certificates from the command line and the control API", function()
    -- graphcall emulate --certificate app-cli=b.pem
    local cli = client { clientId = "app-cli", certificate = certB, key = keyB }
    local tok, err = cli:token()
    assert.is_string(tok, err and err.message)
    -- POST /emulator/certificates
    local other = client { clientId = "app-api", certificate = certA, key = keyA }
    assert.is_nil((other:token()))
    local res = assert(loop:fetch { method = "POST", url = emu.url .. "/emulator/certificates",
      body = cjson.encode { appId = "app-api", certificate = certA } })
    assert.equal(201, res.status)
    assert.equal(core.x509_thumbprints(certA).sha1, cjson.decode(res.body).thumbprint)
    other = client { clientId = "app-api", certificate = certA, key = keyA }
    assert.is_string((other:token()))
    res = assert(loop:fetch { method = "POST", url = emu.url .. "/emulator/certificates",
      body = cjson.encode { appId = "app-api", certificate = "not a certificate" } })
    assert.equal(400, res.status)
  end)

  it("says a key that is not the certificate's, or an unknown algorithm, at the user's line", function()
    local ok, err = pcall(function() client { certificate = certA, key = keyB } end)
    assert.is_false(ok)
    assert.matches("cert_spec.lua:%d+: bad argument #1 to 'client' %(certificate and key: the key is not the "
      .. "certificate's%)", err)
    ok, err = pcall(function() client { certificate = certA, key = keyA, assertionAlg = "HS256" } end)
    assert.is_false(ok)
    assert.matches("assertionAlg: \"PS256\" or \"RS256\", got HS256", err)
    ok, err = pcall(function() client { certificate = certA } end)
    assert.is_false(ok)
    assert.matches("key is required", err)
    ok, err = pcall(function() client { certificate = "junk", key = keyA } end)
    assert.is_false(ok)
    assert.matches("not a PEM certificate", err)
  end)
end)
