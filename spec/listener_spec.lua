-- The callback listener over real loopback HTTP: what it refuses and how (403, 400, 405, 404,
-- 413), that a failing handler is logged with its call id and changes nothing else, files
-- served with no way out of their folder, and TLS both ways with a CA made for the run.
local cjson = require "cjson"
local graphcall = require "graphcall"
local core = require "graphcall.core"
local jwt = require "graphcall.jwt"
local H = require "helper"
local E = require "emu"

local APP = "11111111-2222-3333-4444-555555555555"

describe("the listener", function()
  local loop, key, listener, seen, logs, url, token

  local function sign(claims, k)
    return (k or key):sign(cjson.encode { alg = "RS256", typ = "JWT", kid = "k1" }, cjson.encode(claims))
  end

  setup(function()
    logs = {}
    loop = graphcall.loop { log = function(level, msg) logs[#logs + 1] = level .. " " .. msg end }
    key = core.rsa_key()
    local verifier = assert(jwt.new { appId = APP, jwks = '{"keys":[' .. key:jwk("k1") .. "]}" })
    seen = {}
    listener = assert(graphcall.listener { loop = loop, verifier = verifier, maxBody = 65536,
      on_event = function(ev)
        if ev.state == "established" and ev.callId == "boom" then error("handler bug") end
        seen[#seen + 1] = ev
      end,
      on_request = function(req, method, uri) req:respond(200, {}, method .. " " .. uri) end })
    url = listener:url()
    token = "Bearer " .. sign { aud = APP, iss = "https://api.botframework.com", exp = os.time() + 600,
                                nbf = os.time() - 10, tid = "tenant-1" }
  end)

  teardown(function() loop:close() end)

  local function post(body, auth, target)
    return assert(loop:fetch { method = "POST", url = target or url, body = body,
      headers = { Authorization = auth, ["Content-Type"] = "application/json" } })
  end

  -- a body of `established` notifications, one for each call id
  local function notifications(ids)
    local value = {}
    for i, id in ipairs(ids) do
      value[i] = { changeType = "updated", resourceUrl = "/communications/calls/" .. id,
                   resourceData = { ["@odata.type"] = "#microsoft.graph.call", state = "established" } }
    end
    return cjson.encode { value = value }
  end
  local function established(id) return notifications { id } end

  it("answers 202 to a verified notification and dispatches it once", function()
    local res = post(established("c1"), token)
    assert.equal(202, res.status)
    assert.equal("", res.body)
    loop:run_until(function() return #seen == 1 end, 1000)
    assert.equal("c1", seen[1].callId)
    assert.equal(202, post(established("c1"), token).status)    -- delivered again: not news
    loop:sleep(50)
    assert.equal(1, #seen)
  end)

  it("takes notifications on its path whatever the query string; a longer path is another", function()
    local before = #seen
    assert.equal(202, post(established("q1"), token, listener:url("/callback?tenant=t1&x=%2F")).status)
    assert.equal(202, post(established("q2"), token, listener:url("/callback?")).status)
    loop:run_until(function() return #seen == before + 2 end, 1000)
    assert.equal("q1", seen[before + 1].callId)
    assert.equal("q2", seen[before + 2].callId)
    local res = post(established("q3"), token, listener:url("/callback/more?x=1"))
    assert.equal(200, res.status)   -- on_request's
    assert.equal("POST /callback/more?x=1", res.body)
  end)

  it("answers 403 and dispatches nothing without a valid token", function()
    local before = #seen
    local other = core.rsa_key()
    for _, auth in ipairs { false, "Bearer x.y.z", sign({ aud = APP, iss = "https://api.botframework.com",
      exp = os.time() + 600, tid = "t" }, other), sign({ aud = "someone-else",
      iss = "https://api.botframework.com", exp = os.time() + 600, tid = "t" }) } do
      local res = post(established("c2"), auth and (auth:find("^Bearer") and auth or "Bearer " .. auth) or nil)
      assert.equal(403, res.status)
    end
    loop:sleep(50)
    assert.equal(before, #seen)
    assert.equal(4, listener.stats.rejected)
  end)

  it("answers 400 to a body that is not commsNotifications, 405 to GET, 413 to a huge body", function()
    assert.equal(400, post("{not json", token).status)
    assert.equal(400, post('{"value":[{"changeType":"updated"}]}', token).status)
    local res = assert(loop:fetch { url = url })
    assert.equal(405, res.status)
    assert.equal(413, post(string.rep(" ", 70000) .. established("c3"), token).status)
    assert.equal(2, listener.stats.malformed)
  end)

  it("hands other paths to on_request (404 without one)", function()
    local res = assert(loop:fetch { url = listener:url("/health?x=1") })
    assert.equal(200, res.status)
    assert.equal("GET /health?x=1", res.body)
    local l2 = assert(graphcall.listener { loop = loop, verify = false })
    assert.equal(404, assert(loop:fetch { url = l2:url("/other") }).status)
    l2:close()
  end)

  it("hands a body over as bytes when asked (raw_body): parsed as its text, read after it is gone", function()
    local got
    local srv = assert(loop:listen({ port = 0, raw_body = true }, function(req, _, _, body)
      got = body
      req:respond(202)
    end))
    finally(function() srv:close() end)
    local text = H.fixture("graph/notify-roster-updated.json")
    local res = assert(loop:fetch { method = "POST", url = "http://127.0.0.1:" .. srv:port() .. "/", body = text })
    assert.equal(202, res.status)
    assert.equal("userdata", type(got))
    assert.equal(#text, #got)
    assert.equal(text, tostring(got))
    local events = assert(core.parse_notifications(got))
    local same = assert(graphcall.parse_notifications(got))   -- (under LuaJIT: the FFI path's entry)
    assert.equal(events[1].callId, same[1].callId)
    got = nil   -- luacheck: ignore 311 (only the lazy parts hold the bytes now)
    collectgarbage()
    collectgarbage()                                      -- the lazy parts hold the bytes
    local want = assert(core.parse_notifications(text))
    assert.same(core.materialize(want[1]), core.materialize(events[1]))
    assert.is_true(#events[1].participants > 0)
    -- the listener asks for it under LuaJIT; its other paths still get the body as a string
    local l3 = assert(graphcall.listener { loop = loop, verify = false,
      on_request = function(req, _, _, body) req:respond(200, {}, type(body) .. " " .. body) end })
    finally(function() l3:close() end)
    local other = assert(loop:fetch { method = "POST", url = l3:url("/other"), body = "hi" })
    assert.equal("string hi", other.body)
    assert.equal(202, assert(loop:fetch { method = "POST", url = l3:url(), body = established("c9") }).status)
  end)

  it("logs a failing handler with the call id and keeps serving", function()
    assert.equal(202, post(established("boom"), token).status)
    assert.equal(202, post(established("after-boom"), token).status)
    loop:run_until(function() return seen[#seen].callId == "after-boom" end, 1000)
    local found = false
    for _, l in ipairs(logs) do
      if l:find("^error call boom: handler failed") and l:find("handler bug", 1, true) then found = true end
    end
    assert.is_true(found)
    assert.equal(1, listener.stats.failed)
  end)

  it("goes on after a failing handler with the events after it, in order, in one turn or several", function()
    local order = {}
    local l4 = assert(graphcall.listener { loop = loop, verify = false, on_event = function(ev)
      order[#order + 1] = ev.callId
      if ev.callId:find("^bad") then error("bad " .. ev.callId) end
    end })
    -- three bodies sent at once (their 202s in one turn of the loop, or in several)
    local answered = 0
    for _, ids in ipairs { { "a1", "bad1", "a2" }, { "bad2" }, { "a3", "a4", "bad3" } } do
      loop:request({ method = "POST", url = l4:url(), body = notifications(ids) }, function(res)
        assert.equal(202, res.status)
        answered = answered + 1
      end)
    end
    loop:run_until(function() return answered == 3 and #order == 7 end, 2000)
    -- (which body comes first is the connections' affair; a body's events keep their order)
    local at = {}
    for i, id in ipairs(order) do at[id] = i end
    for _, id in ipairs { "a1", "bad1", "a2", "bad2", "a3", "a4", "bad3" } do assert.is_number(at[id], id) end
    assert.is_true(at.a1 < at.bad1 and at.bad1 < at.a2)
    assert.is_true(at.a3 < at.a4 and at.a4 < at.bad3)
    assert.equal(3, l4.stats.failed)
    assert.equal(7, l4.stats.dispatched)
    l4:close()
  end)

  it("goes on after a handler that ran the loop (a blocking fetch) and then raised", function()
    local order = {}
    local l5
    l5 = assert(graphcall.listener { loop = loop, verify = false, on_event = function(ev)
      order[#order + 1] = ev.callId
      if ev.callId == "nest" then
        -- another body comes and is dispatched while this handler waits, then this one raises
        local res = assert(loop:fetch { method = "POST", url = l5:url(), body = notifications { "inner" } })
        assert.equal(202, res.status)
        loop:run_until(function() return order[#order] == "inner" end, 2000)
        error("after the nested run")
      end
    end })
    assert.equal(202, post(notifications { "nest", "after-nest" }, nil, l5:url()).status)
    loop:run_until(function() return order[#order] == "after-nest" end, 2000)
    assert.same({ "nest", "inner", "after-nest" }, order)
    assert.equal(1, l5.stats.failed)
    l5:close()
  end)

  it("refuses to start without a verifier unless told verify = false", function()
    assert.has_error(function() graphcall.listener { loop = loop } end)
  end)

  it("answers each verified POST before it runs the handler", function()
    -- a separate process (curl) measures how long the 202 took while the handler blocks
    local slow = assert(graphcall.listener { loop = loop, verify = false,
      on_event = function() local t = os.clock() while os.clock() - t < 0.5 do end end })
    local out = E.curl(loop, string.format(
      "-o /dev/null -w '%%{http_code} %%{time_total}' -X POST --data-binary '%s' %s",
      established("slow"), slow:url()))
    local code, secs = out:match("^(%d+) ([%d.]+)")
    assert.equal("202", code)
    assert.is_true(tonumber(secs) < 0.4, out)
    slow:close()
  end)
end)

describe("files", function()
  local loop, dir, l, outside

  setup(function()
    loop = graphcall.loop { log = false }
    dir = E.tmpdir()
    outside = E.tmpdir()
    E.sh(string.format("mkdir -p %s/sub && printf hello > %s/a.wav && printf deep > %s/sub/b.wav && "
      .. "printf secret > %s/secret.txt && ln -s %s/secret.txt %s/link.wav && ln -s %s %s/out && "
      .. "printf hidden > %s/.hidden", dir, dir, dir, outside, outside, dir, outside, dir, dir))
    l = assert(graphcall.listener { loop = loop, verify = false, files = dir })
  end)

  teardown(function()
    loop:close()
    os.execute("rm -rf " .. dir .. " " .. outside)
  end)

  -- curl with --path-as-is: nothing normalizes ".." before the server sees it
  local function serve(path, method)
    local how = method == "HEAD" and "-I" or ("-X " .. (method or "GET"))
    return E.curl(loop, string.format("--path-as-is %s -o - -w ' %%{http_code}' 'http://127.0.0.1:%d%s'",
      how, l.port, path))
  end

  it("serves what is in the folder", function()
    assert.equal("hello 200", serve("/prompts/a.wav"))
    assert.equal("deep 200", serve("/prompts/sub/b.wav"))
    local head = serve("/prompts/a.wav", "HEAD")
    assert.matches("Content%-Length: 5", head)
    assert.matches(" 200$", head)
    assert.is_nil(head:find("hello", 1, true))
  end)

  for _, path in ipairs { "/prompts/../" .. "secret.txt", "/prompts/%2e%2e/secret.txt", "/prompts/%2E%2E%2Fsecret.txt",
                          "/prompts/sub/../../secret.txt", "/prompts/link.wav", "/prompts/out/secret.txt",
                          "/prompts/.hidden", "/prompts/", "/prompts/sub", "/prompts/sub/", "/prompts/sub//b.wav",
                          "/prompts/a.wav%00", "/prompts/%zz", "/prompts/sub\\b.wav" } do
    it("refuses " .. path, function()
      local out = serve(path)
      assert.is_nil(out:find("secret", 1, true))
      assert.matches("40[04]$", out)
    end)
  end

  it("takes only GET and HEAD", function()
    assert.matches("405$", serve("/prompts/a.wav", "POST"))
  end)

end)

describe("TLS both ways", function()
  local dir, emu, bot

  setup(function()
    dir = E.tmpdir()
    E.sh(table.concat({
      "cd " .. dir,
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj '/CN=graphcall test CA'",
      "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj '/CN=127.0.0.1'",
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf",
      "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile ext.cnf",
    }, " && "))
    emu = E.start { scenario = { peers = { default = { answer = 50 } } }, speed = 4,
                    cert = dir .. "/srv.pem", key = dir .. "/srv.key", caFile = dir .. "/ca.pem" }
    bot = E.bot(emu, { caFile = dir .. "/ca.pem", cert = dir .. "/srv.pem", key = dir .. "/srv.key" })
  end)

  teardown(function()
    if bot then bot.close() end
    if emu then emu.stop() end
    os.execute("rm -rf " .. dir)
  end)

  it("the client talks https to the emulator, which calls back the bot over https", function()
    assert.matches("^https://", emu.url)
    assert.matches("^https://", bot.callback)
    local call = assert(bot.client:create_call(E.pstn_call(bot, "+15550000001")))
    assert.is_true(bot.wait(function()
      for _, ev in ipairs(bot.of(call.id, "call")) do if ev.state == "established" then return true end end
    end))
    assert.is_true(bot.client:hangup(call.id))
  end)

  it("a client without the CA refuses the emulator's certificate", function()
    local c = graphcall.client { tenantId = "t", clientId = "a", clientSecret = "s", loop = bot.loop,
      authority = emu.url, graphUrl = emu.url .. "/v1.0", retries = 0 }
    local tok, err = c:token()
    assert.is_nil(tok)
    assert.equal("auth", err.code)
    assert.equal("tls", err.cause)
  end)

  it("an emulator without the CA cannot deliver to the bot", function()
    local e2 = E.start { scenario = { peers = { default = { answer = 50 } } }, speed = 4 }
    local c = graphcall.client { tenantId = "t", clientId = "a", clientSecret = "s", loop = bot.loop,
      authority = e2.url, graphUrl = e2.url .. "/v1.0" }
    local call = assert(c:create_call(E.pstn_call(bot, "+15550000001")))
    bot.loop:sleep(300)
    assert.equal(0, #bot.of(call.id))
    local res = assert(bot.loop:fetch { url = e2.url .. "/emulator/calls/" .. call.id })
    assert.matches("tls", res.body)
    e2.stop()
  end)
end)

describe("the seed fixtures through the listener", function()
  it("every notification fixture is accepted and dispatched", function()
    local loop = graphcall.loop { log = false }
    local n = 0
    local l = assert(graphcall.listener { loop = loop, verify = false, on_event = function() n = n + 1 end })
    local files = {}
    for f in E.sh("ls spec/fixtures/graph/notify-*.json spec/fixtures/seed/*/notify-*.json"):gmatch("%S+") do
      files[#files + 1] = f:gsub("^spec/fixtures/", "")
    end
    for _, f in ipairs(files) do
      assert.equal(202, assert(loop:fetch { method = "POST", url = l:url(), body = H.fixture(f) }).status, f)
    end
    loop:run_until(function() return n >= #files - 2 end, 1000)
    assert.equal(0, l.stats.malformed)
    assert.is_true(l.stats.events >= #files)
    loop:close()
  end)
end)

-- the listener answers 202 first and dispatches on the loop's next turn (loop:defer)
describe("the loop's deferred calls", function()
  it("run after the next I/O step, in order, with their arguments (nils and more than three too)", function()
    local loop = graphcall.loop { log = false }
    local got = {}
    local function rec(...) got[#got + 1] = { n = select("#", ...), ... } end
    loop:defer(rec)
    loop:defer(rec, nil, 2)
    loop:defer(rec, 1, nil, 3)
    loop:defer(rec, 1, 2, 3, nil, 5)
    loop:defer(function() loop:defer(rec, "next turn") end)
    assert.same({}, got)
    loop:run_once(0)
    assert.same({ { n = 0 }, { n = 2, nil, 2 }, { n = 3, 1, nil, 3 }, { n = 5, 1, 2, 3, nil, 5 } }, got)
    loop:run_once(0)
    assert.same({ n = 1, "next turn" }, got[5])
    loop:close()
  end)

  it("logs what a deferred call raises and runs the rest", function()
    local logged = {}
    local loop = graphcall.loop { log = function(level, msg) logged[#logged + 1] = level .. " " .. msg end }
    local ran = false
    loop:defer(error, "deferred boom")
    loop:defer(function() ran = true end)
    loop:run_once(0)
    assert.is_true(ran)
    assert.matches("^error deferred call: deferred boom", logged[1])
    loop:close()
  end)
end)
