-- Redis as it is deployed: a password (`requirepass`) or an ACL user and password, given as a
-- redis:// URL, on the loop and in nginx (cosockets, pooled per credentials), the password in
-- no error and no line of `graphcall check`; and TLS (rediss://, `tls-port`, a CA and a
-- certificate made by the openssl command line), the server's certificate verified.
local E = require "emu"
local R = require "redis_helper"
local N = require "ngx_helper"
local graphcall = require "graphcall"
local redismod = require "graphcall.redis"

local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
local CPATH = os.getenv("LUA_CPATH") or ("./build/" .. E.lua .. "/?.so;;")

describe("Redis with AUTH", function()
  local server, loop
  local SECRET, USER_PW = "s3cret", "p@ss:w/rd"   -- the ACL user's needs percent-encoding in a URL

  setup(function()
    server = R.start { password = SECRET, args = "--requirepass " .. SECRET
      .. " --user graphcall on '>" .. USER_PW .. "' '~*' '&*' '+@all'" }
    loop = graphcall.loop { log = false }
  end)

  teardown(function()
    if server then server.stop() end
    if loop then loop:close() end
  end)

  local function client(url) return redismod.new { url = url, loop = loop } end

  it("authenticates with requirepass's password or an ACL user, from a redis:// URL", function()
    local r = client("redis://:" .. SECRET .. "@127.0.0.1:" .. server.port)
    assert.equal("OK", r:call("SET", "k", "v"))
    assert.equal("v", r:call("GET", "k"))
    assert.equal("default", r:call("ACL", "WHOAMI"))
    r:close()
    local u = client("redis://graphcall:p%40ss%3Aw%2Frd@127.0.0.1:" .. server.port .. "/")
    assert.equal("graphcall", u:call("ACL", "WHOAMI"))
    assert.equal("v", u:call("GET", "k"))
    u:close()
  end)

  it("says refused credentials without the password, and fails what waited behind them", function()
    local r = client("redis://:wrong-secret@127.0.0.1:" .. server.port)
    local results = {}
    for i = 1, 3 do r:call("GET", "k", function(v, e) results[i] = { v, e } end) end
    local v, err = r:call("PING")
    assert.is_nil(v)
    assert.equal("auth", err.code)
    assert.matches("Redis refused the credentials: WRONGPASS", err.message)
    assert.is_nil(err.message:find("wrong-secret", 1, true))
    for i = 1, 3 do assert.equal("auth", results[i][2].code) end
    -- and no password at all: the server's own NOAUTH
    local none = redismod.new { port = server.port, loop = loop }
    local _, nerr = none:call("GET", "k")
    assert.equal("redis", nerr.code)
    assert.matches("NOAUTH", nerr.message)
  end)

  it("reads URLs, and says what it cannot take without echoing a password", function()
    assert.same({ host = "10.0.0.5", port = 6380, user = "bot", password = "a:b@c" },
      redismod.parse_url("redis://bot:a%3Ab%40c@10.0.0.5:6380"))
    assert.same({ host = "10.0.0.5", port = 6379, password = "pw" }, redismod.parse_url("redis://:pw@10.0.0.5"))
    assert.same({ host = "10.0.0.5", port = 6380, password = "pw", tls = true },
      redismod.parse_url("rediss://:pw@10.0.0.5:6380"))
    local _, err = redismod.parse_url("http://:topsecret@h:1")
    assert.is_nil(err:find("topsecret", 1, true))
    local ok, e = pcall(redismod.new, { url = "redis://:topsecret@", loop = loop })
    assert.is_false(ok)
    assert.is_nil(tostring(e):find("topsecret", 1, true))
  end)

  it("graphcall check says a refused password in one line, without it", function()
    local emu = E.start {}
    finally(function() emu.stop() end)
    local out = E.sh(string.format("env LUA_PATH='%s' LUA_CPATH='%s' timeout 60 %s bin/graphcall check --connect %s "
      .. "--redis redis://:not-the-one@127.0.0.1:%d --prompts %s 2>&1; echo \"exit $?\"", LUA_PATH, CPATH, E.lua,
      emu.url, server.port, E.tmpdir()))
    assert.matches("graphcall check: Redis does not answer: Redis refused the credentials", out)
    assert.matches("exit 1", out)
    assert.is_nil(out:find("not-the-one", 1, true))
    out = E.sh(string.format("env LUA_PATH='%s' LUA_CPATH='%s' timeout 60 %s bin/graphcall check --connect %s "
      .. "--redis 'redis://graphcall:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d' --prompts %s 2>&1; echo \"exit $?\"", LUA_PATH,
      CPATH, E.lua, emu.url, server.port, E.tmpdir()))
    assert.matches("all is well", out)
  end)

  it("authenticates cosockets in nginx once per pooled connection", function()
    local port = N.free_port()
    local n = N.start { port = port, workers = 1, locations = string.format([[
      location = /ping { content_by_lua_block {
        local r = require("graphcall.redis").new { url = "redis://graphcall:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d" }
        local v, err = r:call("ACL", "WHOAMI")
        ngx.print(v or (err.code .. ": " .. err.message)) } }
      location = /bad { content_by_lua_block {
        local r = require("graphcall.redis").new { url = "redis://:nope-nope@127.0.0.1:%d" }
        local v, err = r:call("PING")
        ngx.print(v or (err.code .. ": " .. err.message)) } }]], server.port, server.port) }
    finally(function() n.stop() end)
    for _ = 1, 3 do   -- the first on a new connection (AUTH sent), the rest pooled
      assert.equal("graphcall", assert(loop:fetch { url = "http://127.0.0.1:" .. port .. "/ping" }).body)
    end
    local clients = E.sh(string.format("redis-cli -p %d --no-auth-warning -a %s client list", server.port, SECRET))
    local n_graphcall = select(2, clients:gsub("user=graphcall", ""))
    assert.equal(1, n_graphcall)   -- one pooled connection served the three
    local bad = assert(loop:fetch { url = "http://127.0.0.1:" .. port .. "/bad" }).body
    assert.matches("^auth: Redis refused the credentials", bad)
    assert.is_nil(bad:find("nope-nope", 1, true))
  end)

  describe("over TLS", function()
    local tls, dir

    setup(function()
      dir = E.tmpdir()
      E.sh(string.format("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        .. "-subj /CN=graphcall-test-ca && openssl req -newkey rsa:2048 -nodes -keyout r.key -out r.csr -subj "
        .. "/CN=127.0.0.1 && printf 'subjectAltName=IP:127.0.0.1,DNS:redis.test\\n' > ext && openssl x509 -req "
        .. "-in r.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out r.pem -days 2 -extfile ext && "
        .. "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other",
        dir))
      local port = N.free_port()
      tls = R.start { port = port, password = SECRET, cli = "--tls --cacert " .. dir .. "/ca.pem",
        args = string.format("--requirepass %s --port 0 --tls-port %d --tls-cert-file %s/r.pem --tls-key-file "
          .. "%s/r.key --tls-ca-cert-file %s/ca.pem --tls-auth-clients no", SECRET, port, dir, dir, dir) }
    end)

    teardown(function()
      if tls then tls.stop() end
      if dir then os.execute("rm -rf " .. dir) end
    end)

    it("talks to a tls-port Redis with the certificate verified, and refuses one it cannot verify", function()
      local r = redismod.new { url = "rediss://:" .. SECRET .. "@127.0.0.1:" .. tls.port, cafile = dir .. "/ca.pem",
                               loop = loop }
      assert.equal("OK", r:call("SET", "t", "over tls"))
      assert.equal("over tls", r:call("GET", "t"))
      r:close()
      local named = redismod.new { url = "rediss://:" .. SECRET .. "@127.0.0.1:" .. tls.port,
        cafile = dir .. "/ca.pem", servername = "redis.test", loop = loop }
      assert.equal("over tls", named:call("GET", "t"))
      named:close()
      -- another CA, another name: the handshake fails, said as such
      local other = redismod.new { url = "rediss://:" .. SECRET .. "@127.0.0.1:" .. tls.port,
                                   cafile = dir .. "/other.pem", loop = loop }
      local v, err = other:call("GET", "t")
      assert.is_nil(v)
      assert.matches("TLS: certificate verify failed", err.message)
      local wrong = redismod.new { url = "rediss://:" .. SECRET .. "@127.0.0.1:" .. tls.port,
        cafile = dir .. "/ca.pem", servername = "elsewhere.test", loop = loop }
      v, err = wrong:call("GET", "t")
      assert.is_nil(v)
      assert.matches("TLS: certificate verify failed", err.message)
      -- plain text to the TLS port: no answer that passes for one
      local plain = redismod.new { url = "redis://:" .. SECRET .. "@127.0.0.1:" .. tls.port, loop = loop,
                                   timeout = 1000 }
      v = plain:call("PING")
      assert.is_nil(v)
    end)

    it("graphcall check takes rediss:// with its CA file", function()
      local emu = E.start {}
      finally(function() emu.stop() end)
      local out = E.sh(string.format("env LUA_PATH='%s' LUA_CPATH='%s' timeout 60 %s bin/graphcall check --connect %s "
        .. "--redis rediss://:%s@127.0.0.1:%d --redis-ca-file %s/ca.pem --prompts %s 2>&1; echo \"exit $?\"",
        LUA_PATH, CPATH, E.lua, emu.url, SECRET, tls.port, dir, E.tmpdir()))
      assert.matches("all is well", out)
    end)

    it("keeps calls in a Redis Cluster over TLS with a password, its nodes found from one URL", function()
      local c = R.cluster { tls = dir, password = SECRET, cli = "--tls --cacert " .. dir .. "/ca.pem" }
      finally(function() c.stop() end)
      local first = c.seeds:match("^[^,]+")
      local r = redismod.new { cluster = "rediss://:" .. SECRET .. "@" .. first, cafile = dir .. "/ca.pem",
                               loop = loop }
      local store = require("graphcall.store").redis { redis = r }
      local ids = {}
      for i = 1, 12 do
        ids[i] = "tls-call-" .. i
        store:ingest(ids[i], { kind = "call", state = "establishing" }, { now = 1000, lease = 1500, watchdog = 2000 })
      end
      local calls = store:calls()
      assert.equal(12, #calls)
      local masters = {}
      for _, id in ipairs(ids) do masters[r:node_of(store:key(id, "log"))] = true end
      local n = 0
      for addr in pairs(masters) do
        n = n + 1
        assert.truthy(c.seeds:find(addr, 1, true))       -- the nodes it found: the cluster's, over TLS
      end
      assert.is_true(n >= 2)
      assert.equal(0, store.unreplicated)                 -- replicas acknowledged, over TLS too
      r:close()
      local wrong = redismod.new { cluster = "rediss://:not-it@" .. first, cafile = dir .. "/ca.pem", loop = loop }
      local v, err = wrong:call("GET", "x")
      assert.is_nil(v)
      assert.is_nil(tostring(err.message):find("not-it", 1, true))
    end)

    it("in nginx, over cosockets with nginx's trusted certificates and the certificate's name", function()
      local port = N.free_port()
      local n = N.start { port = port, workers = 1,
        http = string.format("lua_ssl_trusted_certificate %s/ca.pem; lua_ssl_verify_depth 2;", dir),
        locations = string.format([[
        location = /get { content_by_lua_block {
          local r = require("graphcall.redis").new { url = "rediss://:%s@127.0.0.1:%d", servername = "redis.test" }
          local v, err = r:call("GET", "t")
          ngx.print(v or (err.code .. ": " .. err.message)) } }]], SECRET, tls.port) }
      finally(function() n.stop() end)
      for _ = 1, 2 do
        assert.equal("over tls", assert(loop:fetch { url = "http://127.0.0.1:" .. port .. "/get" }).body)
      end
    end)
  end)
end)
