-- graphcall inside real nginx (Debian's nginx + libnginx-mod-http-lua, LuaJIT), two workers on
-- loopback: the emulator (its own process) calls the bot in nginx; the IVR example runs end to
-- end with its events spread over both workers; bad signatures get 403; `nginx -s reload` in the
-- middle of a call loses nothing.
local cjson = require "cjson"
local graphcall = require "graphcall"
local E = require "emu"
local N = require "ngx_helper"
local H = require "helper"
local P = require "prom_helper"

local SALES = "+14255550100"

describe("graphcall in nginx", function()
  local emu, nginx, ctl

  setup(function()
    emu = E.start { scenario = { peers = { [SALES] = { answer = 500 } }, freshCallbacks = true }, speed = 2 }
    local port = N.free_port()
    local url = "http://127.0.0.1:" .. port
    nginx = N.start { port = port, init = string.format([[
      require("graphcall.ngx").init {
        script = "examples/ivr.lua",
        client = { tenantId = "tenant-1", clientId = "app-1", clientSecret = "s", authority = %q,
                   graphUrl = %q, openidUrl = %q },
        callbackUri = %q, promptBase = %q, prompts = %q, minRefetch = 0,
      }]], emu.url, emu.url .. "/v1.0", emu.url .. "/v1/.well-known/OpenIdConfiguration", url .. "/callback",
      url .. "/prompts/", "PROMPTS") }
    -- the prompts folder is the nginx prefix's: put it in the config and reload
    local conf = nginx.dir .. "/conf/nginx.conf"
    local f = io.open(conf)
    local text = f:read("*a"):gsub('"PROMPTS"', '"' .. nginx.prompts .. '"')
    f:close()
    f = io.open(conf, "w")
    f:write(text)
    f:close()
    nginx.cmd("-s reload")
    os.execute("sleep 0.5")
    ctl = graphcall.loop { log = false }
  end)

  teardown(function()
    if nginx then nginx.stop() end
    if emu then emu.stop() end
    if ctl then ctl:close() end
  end)

  local function control(method, path, body)
    local res = assert(ctl:fetch { method = method, url = emu.url .. path, body = body })
    return graphcall.decode(res.body)
  end

  local function poll(pred, ms)
    for _ = 1, (ms or 20000) / 50 do
      if pred() then return true end
      ctl:sleep(50)
    end
    return false
  end

  local function place(caller)
    return control("POST", "/emulator/incoming", cjson.encode { webhook = nginx.url .. "/callback",
      appId = "app-1", tenantId = "tenant-1", caller = caller }).id
  end

  local function view(id) return control("GET", "/emulator/calls/" .. id) end

  it("runs the IVR example end to end, its events taken by more than one worker (one killed mid-call)", function()
    -- which worker nginx gives a connection is the kernel's choice; the worker that took the
    -- call's first event is killed (SIGKILL) mid-call, so another one must take the rest: the
    -- call goes on from what the shared dict holds
    local id = place { { on = "prompt", after = 1500, press = "1" } }
    local pat = "(%d+)#%d+: [^\n]-call " .. id:gsub("%-", "%%-") .. ": [^\n]-%(worker %d%)"
    local first
    assert.is_true(poll(function() first = nginx.log():match(pat) return first ~= nil end), nginx.log())
    os.execute("kill -9 " .. first)
    local v
    assert.is_true(poll(function() v = view(id) return v.state == "terminated" end), nginx.log())
    assert.equal(SALES, v.transferred)
    local log = nginx.log()
    local pids = {}
    for pid in log:gmatch(pat) do pids[pid] = true end
    pids[first] = nil
    assert.is_truthy(next(pids), "no other worker took the call's events")
    assert.is_nil(log:find("flow's driver failed", 1, true))
  end)

  it("answers 403 to a bad signature and dispatches nothing", function()
    local body = cjson.encode { value = { { changeType = "updated", resourceUrl = "/communications/calls/forged-1",
      resourceData = { state = "established" } } } }
    for _, auth in ipairs { "Bearer x.y.z", "" } do
      local res = assert(ctl:fetch { method = "POST", url = nginx.url .. "/callback", body = body,
                                     headers = { Authorization = auth } })
      assert.equal(403, res.status)
    end
    ctl:sleep(200)
    assert.is_nil(nginx.log():find("call forged-1", 1, true))
  end)

  it("fetches the callback keys once for a burst of signed callbacks that finds none (minRefetch 0)", function()
    -- each callback of the burst fails for want of keys and asks for them: the first fetches,
    -- the others (in both workers) take what it fetched once the lock is theirs
    local core = require "graphcall.core"
    local key = core.rsa_key()
    local token = key:sign(cjson.encode { alg = "RS256", typ = "JWT", kid = "k1" }, cjson.encode {
      aud = "app-1", iss = "https://api.botframework.com", nbf = os.time() - 60, exp = os.time() + 3600, tid = "t" })
    local port = N.free_port()
    local url = "http://127.0.0.1:" .. port
    local n2 = N.start { port = port, init = string.format([[
      require("graphcall.ngx").init {
        on = { state = function() end },
        client = { tenantId = "tenant-1", clientId = "app-1", clientSecret = "s", authority = %q,
                   graphUrl = %q, openidUrl = %q },
        callbackUri = %q, minRefetch = 0,
      }]], emu.url, emu.url .. "/v1.0", url .. "/openid", url .. "/callback"),
      locations = string.format([[
      location = /openid { default_type application/json; return 200 '{"jwks_uri": "%s/keys"}'; }
      location = /keys { content_by_lua_block {
        ngx.shared.graphcall:incr("keys-fetched", 1, 0)
        ngx.sleep(0.05)           -- (a fetch that takes a moment: the burst waits for it)
        ngx.print(%q) } }
      location = /fetched { content_by_lua_block {
        ngx.print(ngx.shared.graphcall:get("keys-fetched") or 0) } }]], url,
        cjson.encode { keys = { cjson.decode(key:jwk("k1")) } }) }
    finally(function() n2.stop() end)
    local body = cjson.encode { value = { { changeType = "updated", resourceUrl = "/communications/calls/burst-1",
      resourceData = { state = "established" } } } }
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write(body)
    f:close()
    -- (curl without the ASan run's LD_PRELOAD: it deadlocks in setlocale under it)
    local codes = E.sh(string.format("seq 40 | env -u LD_PRELOAD xargs -P 40 -I{} curl -s -m 30 -o /dev/null "
      .. "-w '%%{http_code}\\n' -H 'Authorization: Bearer %s' --data-binary @%s %s/callback", token, file, url))
    os.remove(file)
    local n = 0
    for code in codes:gmatch("%d+") do
      assert.equal("202", code, n2.log())
      n = n + 1
    end
    assert.equal(40, n)
    assert.equal("1", assert(ctl:fetch { url = url .. "/fetched" }).body, n2.log())
  end)

  it("brings flows back at their deadlines (the sweeper): three silences, then goodbye", function()
    local port = N.free_port()
    local url = "http://127.0.0.1:" .. port
    local n2 = N.start { port = port, init = string.format([[
      require("graphcall.ngx").init {
        script = "spec/ngx/silent.lua", sweep = 100,
        client = { tenantId = "tenant-1", clientId = "app-1", clientSecret = "s", authority = %q,
                   graphUrl = %q, openidUrl = %q },
        callbackUri = %q, promptBase = %q, prompts = %q, minRefetch = 0,
      }]], emu.url, emu.url .. "/v1.0", emu.url .. "/v1/.well-known/OpenIdConfiguration", url .. "/callback",
      url .. "/prompts/", nginx.prompts) }
    finally(function() n2.stop() end)
    local id = control("POST", "/emulator/incoming", cjson.encode { webhook = url .. "/callback",
      appId = "app-1", tenantId = "tenant-1", caller = {} }).id
    local v
    assert.is_true(poll(function() v = view(id) return v.state == "terminated" end), n2.log())
    local plays = 0
    for _, l in ipairs(v.log) do if l.what == "action" and l.detail == "playPrompt" then plays = plays + 1 end end
    assert.equal(4, plays)                    -- the prompt three times (no-input before the 2nd, 3rd), goodbye
    assert.equal("", v.pressed)
    local found = false
    for _, l in ipairs(v.log) do if l.what == "bot hangs up" then found = true end end
    assert.is_true(found)
  end)

  it("loses nothing when nginx reloads in the middle of a call", function()
    local id = place { { on = "prompt", after = 2500, press = "1" } }
    assert.is_true(poll(function() return #(view(id).prompts or {}) >= 1 end))
    nginx.cmd("-s reload")                      -- new workers; the shared dict stays
    local v
    assert.is_true(poll(function() v = view(id) return v.state == "terminated" end), nginx.log())
    assert.equal(SALES, v.transferred)
    assert.equal("1", v.pressed)
  end)

  local function init(script, url, extra)
    return string.format([[
      require("graphcall.ngx").init {
        script = %q, sweep = 100, %s
        client = { tenantId = "tenant-1", clientId = "app-1", clientSecret = "s", authority = %q,
                   graphUrl = %q, openidUrl = %q },
        callbackUri = %q, promptBase = %q, prompts = %q, minRefetch = 0,
      }]], script, extra or "", emu.url, emu.url .. "/v1.0", emu.url .. "/v1/.well-known/OpenIdConfiguration",
      url .. "/callback", url .. "/prompts/", nginx.prompts)
  end

  it("runs bot:on handlers without a flow, each event in whichever worker takes it", function()
    local port = N.free_port()
    local url = "http://127.0.0.1:" .. port
    local n2 = N.start { port = port, init = init("spec/ngx/handlers.lua", url), locations = [[
      location = /seen { content_by_lua_block {
        ngx.print(ngx.shared.graphcall:get("seen:" .. ngx.var.arg_id) or "") } }]] }
    finally(function() n2.stop() end)
    local id = control("POST", "/emulator/incoming", cjson.encode { webhook = url .. "/callback",
      appId = "app-1", tenantId = "tenant-1", caller = { { on = "established", after = 300, press = "7" } } }).id
    local v
    assert.is_true(poll(function() v = view(id) return v.state == "terminated" end), n2.log())
    assert.equal("7", v.pressed, cjson.encode(v.log) .. n2.log())
    local seen
    assert.is_true(poll(function()
      seen = assert(ctl:fetch { url = url .. "/seen?id=" .. id }).body
      return seen:find("terminated", 1, true) ~= nil
    end, 5000), seen)
    -- every handler ran once, in order, for its event
    local names = {}
    for what in seen:gmatch("(%S+)@%d") do names[#names + 1] = what end
    assert.same({ "incoming", "established", "tone:tone7", "terminated" }, names)
    local bye = false
    for _, l in ipairs(v.log) do if l.what == "bot hangs up" then bye = true end end
    assert.is_true(bye)
  end)

  it("finds deadlines and keepAlive times by their index, without walking the dict", function()
    local port = N.free_port()
    local url = "http://127.0.0.1:" .. port
    local n2 = N.start { port = port, init = init("spec/ngx/silent.lua", url, "verify = false,"),
      http = "lua_shared_dict ix 1m;", locations = [[
      location = /index { content_by_lua_block {
        local real, walks = ngx.shared.ix, 0      -- (a dict of its own: the workers sweep theirs)
        -- the dict, counting the walks over all its keys
        local dict = setmetatable({ get_keys = function(_, n) walks = walks + 1 return real:get_keys(n) end }, {
          __index = function(_, k) return function(_, ...) return real[k](real, ...) end end })
        local st = require("graphcall.ngx.store").new(dict)
        local now = ngx.now() * 1000
        local out = {}
        local function say(list) table.sort(list) out[#out + 1] = table.concat(list, ",") end
        say(st:due(now))                          -- no cursor yet: one walk, which sets it
        st:set_due("ix-a", now + 100)
        st:set_due("ix-b", now + 100)
        st:set_due("ix-b", now + 100000)          -- moved later: not due at +500
        st:set_due("ix-c", now + 100)
        st:clear_due("ix-c")                      -- gone
        for i = 1, 500 do st:set_due("ix-far-" .. i, now + 3600000) end
        st:set_ka("ix-k", now + 200)
        say(st:due(now + 500))
        say(st:due(now + 600))                    -- nothing twice
        say(st:ka_due(now))                       -- (the keepAlive index's first sweep walks once)
        say(st:ka_due(now + 300))
        say(st:due(now + 100050))                 -- (a deadline may be found up to a slot, 50 ms, late)
        out[#out + 1] = "walks " .. walks
        ngx.print(table.concat(out, "|")) } }]] }
    finally(function() n2.stop() end)
    local body = assert(ctl:fetch { url = url .. "/index" }).body
    assert.equal("|ix-a|||ix-k|ix-b|walks 2", body, n2.log())
  end)

  it("answers 503 with Retry-After when the shared dict is nearly full, and 202 once there is room", function()
    local port = N.free_port()
    local url = "http://127.0.0.1:" .. port
    local n2 = N.start { port = port, dict = "1m",
      init = init("spec/ngx/silent.lua", url, "verify = false, reserve = 65536,"),
      locations = [[
      location = /fill { content_by_lua_block {
        local d, i = ngx.shared.graphcall, 0
        while d:safe_set("junk:" .. i, string.rep("x", 1000)) do i = i + 1 end
        ngx.print(i) } }
      location = /drain { content_by_lua_block {
        for _, k in ipairs(ngx.shared.graphcall:get_keys(0)) do
          if k:find("^junk:") then ngx.shared.graphcall:delete(k) end
        end
        ngx.shared.graphcall:flush_expired() } }]] }
    finally(function() n2.stop() end)
    local body = cjson.encode { value = { { changeType = "updated", resourceUrl = "/communications/calls/full-1",
      resourceData = { state = "established" } } } }
    local filled = tonumber(assert(ctl:fetch { url = url .. "/fill" }).body)
    assert.is_true(filled > 100)
    local res = assert(ctl:fetch { method = "POST", url = url .. "/callback", body = body })
    assert.equal(503, res.status)
    assert.equal("1", res:header("Retry-After"))
    for _ = 1, 40 do   -- a flood of them: counted, not logged one by one
      assert.equal(503, assert(ctl:fetch { method = "POST", url = url .. "/callback", body = body }).status)
    end
    local said = 0
    for _ in n2.log():gmatch("nearly full") do said = said + 1 end
    assert.is_true(said >= 1 and said <= 2, n2.log())          -- once per worker in 10 s
    local text = assert(ctl:fetch { url = url .. "/metrics" }).body
    assert.equal(41, P.value(text, 'graphcall_notifications_refused_total{status="503"}'), text)
    assert.equal(41, P.value(text, "graphcall_notifications_received_total"))
    assert.is_true(select(2, P.promtool(text)))
    assert.is_nil(n2.log():find("call full-1", 1, true))       -- nothing dispatched
    assert(ctl:fetch { url = url .. "/drain" })
    res = assert(ctl:fetch { method = "POST", url = url .. "/callback", body = body })
    assert.equal(202, res.status)
    assert.is_true(poll(function() return n2.log():find("call full-1", 1, true) ~= nil end, 3000))
  end)

  it("reads a body nginx spooled to a file (a 20-participant roster, over client_body_buffer_size), logs JSON",
     function()
    local port = N.free_port()
    local url = "http://127.0.0.1:" .. port
    local n2 = N.start { port = port, init = init("spec/ngx/silent.lua", url,
      'verify = false, maxBody = 65536, logFormat = "json", node = "ngx-1",'),
      locations = [[
      location = /spooled { client_body_buffer_size 8k;
                            content_by_lua_block { require("graphcall.ngx").handle() } }]] }
    finally(function() n2.stop() end)
    local doc = H.json_fixture("graph/notify-roster-updated.json")
    local one = doc.value[1].resourceData[1]
    local roster = {}
    for i = 1, 20 do
      local p = cjson.decode(cjson.encode(one))
      p.id = string.format("2765eb15-01f8-47c6-b12b-%012d", i)
      p.info.identity.user.displayName = "Participant " .. i .. " " .. string.rep("x", 400)
      roster[i] = p
    end
    doc.value[1].resourceUrl = "/communications/calls/roster-1/participants"
    doc.value[1].resourceData = roster
    local body = cjson.encode(doc)
    assert.is_true(#body > 12 * 1024)
    local res = assert(ctl:fetch { method = "POST", url = url .. "/spooled", body = body })
    assert.equal(202, res.status, n2.log())
    assert.is_true(poll(function() return n2.log():find("call roster-1", 1, true) ~= nil end, 3000), n2.log())
    -- the handler's log lines as JSON objects (logFormat = "json"), with the call and the node
    local line = n2.log():match('{"time":"[^\n]-"call":"roster%-1"[^\n]-}')
    assert.is_string(line, n2.log())
    assert.matches('"node":"ngx%-1"', line)
    assert.matches('"level":"info"', line)
    -- over maxBody: 413, counted
    doc.value[1].resourceData[1].info.identity.user.displayName = string.rep("y", 70000)
    res = assert(ctl:fetch { method = "POST", url = url .. "/spooled", body = cjson.encode(doc) })
    assert.equal(413, res.status)
    local text = assert(ctl:fetch { url = url .. "/metrics" }).body
    assert.equal(1, P.value(text, 'graphcall_notifications_refused_total{status="413"}'), text)
  end)

  it("runs the README's nginx.conf (examples/openresty's) as printed, but for where the modules are and the port",
     function()
    local port = N.free_port()
    local url = "http://127.0.0.1:" .. port
    local root = io.popen("pwd"):read("*l")
    local printed = H.read("README.md"):match("\n```nginx\n(.-)```\n")
    assert.equal(H.read("examples/openresty/nginx.conf"), printed)
    local conf = printed
      :gsub('lua_package_path "[^"]*";',
            string.format('lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;;";', root, root))
      :gsub('lua_package_cpath "[^"]*";', string.format('lua_package_cpath "%s/build/luajit/?.so;;";', root))
      :gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")
    if io.popen("id -u"):read("*l") == "0" then conf = "user root root;\n" .. conf end
    local dir = E.tmpdir()
    os.execute("mkdir -p " .. dir .. "/logs " .. dir .. "/conf " .. dir .. "/prompts")
    os.execute("cp examples/openresty/bot.lua " .. dir .. "/")
    local n3 = N.run(conf, { dir = dir, port = port, env = table.concat({
      "GRAPHCALL_TENANT_ID=tenant-1", "GRAPHCALL_CLIENT_ID=app-1", "GRAPHCALL_CLIENT_SECRET=s",
      "GRAPHCALL_CALLBACK_URI=" .. url .. "/callback", "GRAPHCALL_GRAPH_URL=" .. emu.url .. "/v1.0",
      "GRAPHCALL_AUTHORITY=" .. emu.url, "GRAPHCALL_OPENID_URL=" .. emu.url .. "/v1/.well-known/OpenIdConfiguration",
    }, " ") })
    local prom
    -- (busted keeps one finally per test: everything this test started is stopped here)
    finally(function()
      if prom then prom.stop() end
      n3.stop()
    end)
    local id = control("POST", "/emulator/incoming", cjson.encode { webhook = url .. "/callback",
      appId = "app-1", tenantId = "tenant-1", caller = { { on = "prompt", after = 800, press = "2" } } }).id
    local v
    assert.is_true(poll(function() v = view(id) return v.state == "terminated" end), n3.log())
    assert.equal("2", v.pressed)
    assert.is_true(#v.prompts >= 3, n3.log())          -- menu, opening hours, goodbye
    local bye = false
    for _, l in ipairs(v.log) do if l.what == "bot hangs up" then bye = true end end
    assert.is_true(bye)
    assert.is_true(poll(function() return n3.log():find("call " .. id .. " ended: ", 1, true) ~= nil end, 3000))
    -- the operator's locations: ready, and counters summed over the workers, scraped by Prometheus
    local ready = assert(ctl:fetch { url = url .. "/readyz" })
    assert.equal(200, ready.status, ready.body)
    assert.equal("token: ok\nkeys: ok\nstore: ok\n", ready.body)
    assert.equal(200, assert(ctl:fetch { url = url .. "/healthz" }).status)
    local text = assert(ctl:fetch { url = url .. "/metrics" }).body
    assert.is_true(select(2, P.promtool(text)), text)
    assert.equal(1, P.value(text, "graphcall_flows_started_total"), text)
    assert.is_true(poll(function()
      text = assert(ctl:fetch { url = url .. "/metrics" }).body
      return P.value(text, "graphcall_flows_ended_total") == 1
    end, 3000), text)
    assert.is_true(P.value(text, 'graphcall_actions_total{action="playPrompt",outcome="ok"}') >= 3, text)
    -- the calls page: the call, ended, and its trace
    local calls = assert(ctl:fetch { url = url .. "/calls" })
    assert.equal(200, calls.status)
    assert.matches("0 live, 1 recent", calls.body, 1, true)
    assert.truthy(calls.body:find('<a href="calls/' .. id .. '">', 1, true), calls.body)
    assert.truthy(calls.body:find('class="ended">terminated<', 1, true), calls.body)
    local one = assert(ctl:fetch { url = url .. "/calls/" .. id })
    assert.equal(200, one.status)
    assert.truthy(one.body:find("<h2>call " .. id .. "</h2>", 1, true))
    prom = P.server(dir, port, ctl)
    local got = prom.wait("graphcall_flows_ended_total")
    assert.is_table(got, prom.log())
    assert.equal("1", got.value[2])
  end)
end)

