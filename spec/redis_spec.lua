-- graphcall.redis against a real redis-server on loopback: the standalone transport (a TCP
-- stream on graphcall.loop) and the nginx one (cosockets), one codec (hiredis, in the core).
local cjson = require "cjson"
local graphcall = require "graphcall"
local core = require "graphcall.core"
local redis = require "graphcall.redis"
local R = require "redis_helper"
local N = require "ngx_helper"

describe("graphcall.redis", function()
  local srv, loop, r

  setup(function()
    srv = R.start()
    loop = graphcall.loop { log = false }
    r = redis.new { port = srv.port, loop = loop }
  end)

  teardown(function()
    if r then r:close() end
    if loop then loop:close() end
    if srv then srv.stop() end
  end)

  it("formats commands with hiredis and reads every kind of reply", function()
    assert.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n", core.resp_command("SET", "k", 12))
    local rd = core.resp_reader()
    rd:feed("+OK\r\n:-5\r\n$-1\r\n*3\r\n$2\r\nab\r\n-ERR in\r\n*0\r\n-WRONGTYPE no\r\n$5\r\nab")
    assert.same({ true, "OK" }, { rd:get() })
    assert.same({ true, -5 }, { rd:get() })
    assert.same({ true, core.null }, { rd:get() })
    assert.same({ true, { "ab", { err = "ERR in" }, {} } }, { rd:get() })
    assert.same({ true, nil, "WRONGTYPE no" }, { rd:get() })
    assert.same({ false }, { rd:get() })            -- "$5\r\nab": not all there yet
    rd:feed("cde\r\n")
    assert.same({ true, "abcde" }, { rd:get() })
    rd:feed("?bad\r\n")
    assert.has_error(function() rd:get() end)
    assert.has_error(function() core.resp_command("SET", {}) end)
  end)

  it("refuses a reply that announces more elements than it may hold, before allocating them", function()
    local function refused(bytes)
      local rd = core.resp_reader()
      rd:feed(bytes)
      local ok, err = pcall(rd.get, rd)
      return not ok and tostring(err)
    end
    -- found by fuzz_resp: hiredis 0.14 would calloc 8.9 GB for this header
    assert.matches("Redis protocol error: a reply announcing more than 1048576 elements",
      refused("*1111111115\r\n-E\r\n-E\r\n+\r\n"), 1, true)
    assert.matches("more than 1048576 elements", refused("*399999999\r\n"), 1, true)
    -- nested arrays count together: the outer one's element and the inner one's 2^20
    assert.matches("more than 1048576 elements", refused("*1\r\n*1048576\r\n"), 1, true)
    -- the budget is per reply: two large replies in a row both pass
    local rd = core.resp_reader()
    local n = 600000
    local big = "*" .. n .. "\r\n" .. string.rep(":1\r\n", n)
    rd:feed(big .. big)
    for _ = 1, 2 do
      local ok, v = rd:get()
      assert.is_true(ok)
      assert.equal(n, #v)
    end
  end)

  it("runs commands on the loop and waits for their answers", function()
    assert.equal("OK", r:call("SET", "greeting", "hello"))
    assert.equal("hello", r:call("GET", "greeting"))
    assert.equal(graphcall.null, r:call("GET", "nothing"))
    assert.equal(3, r:call("RPUSH", "list", "a", "b", "c"))
    assert.same({ "a", "b", "c" }, r:call("LRANGE", "list", 0, -1))
    local v, err = r:call("INCR", "greeting")
    assert.is_nil(v)
    assert.equal("redis", err.code)
    assert.truthy(err.message:find("not an integer", 1, true))
  end)

  it("pipelines: a thousand commands at once, answered in order", function()
    local got, n = {}, 1000
    for _ = 1, n do
      r:call("INCR", "counter", function(v) got[#got + 1] = v end)
    end
    assert.is_true(loop:run_until(function() return #got == n end, 5000))
    for i = 1, n do assert.equal(i, got[i]) end
    assert.equal(0, loop.busy)
  end)

  it("fails what was not answered when the server goes, and connects again after", function()
    local gone = R.start()
    finally(function() gone.stop() end)
    local r2 = redis.new { port = gone.port, loop = loop }
    assert.equal("PONG", r2:call("PING"))
    local result, err
    r2:call("BLPOP", "never", 0, function(v, e) result, err = v, e end)   -- waits forever
    loop:run_until(function() return false end, 100)
    gone.restart()                                       -- SIGKILL, then a new server
    assert.is_true(loop:run_until(function() return err ~= nil end, 5000))
    assert.is_nil(result)
    assert.equal("closed", err.code)
    assert.equal("PONG", r2:call("PING"))                -- a new connection
    r2:close()
    gone.kill()
    local r3 = redis.new { port = gone.port, loop = loop, timeout = 500 }
    local v, cerr = r3:call("PING")
    assert.is_nil(v)
    assert.equal("connect", cerr.code)                   -- refused: nothing listens, nothing was sent
  end)

  it("gives up on a server that stops answering (timeout), and connects again once it answers", function()
    local E = require "emu"
    local stuck = R.start()
    finally(function()
      E.sh("kill -CONT $(cat " .. stuck.dir .. "/redis.pid) 2>/dev/null")
      stuck.stop()
    end)
    local r2 = redis.new { port = stuck.port, loop = loop, timeout = 300 }
    assert.equal("OK", r2:call("SET", "k", "1"))
    E.sh("kill -STOP $(cat " .. stuck.dir .. "/redis.pid)")   -- the connection stays up, nothing answers
    local t0 = loop:now()
    local results = r2:pipeline({ { "INCR", "k" }, { "GET", "k" } })
    local waited = loop:now() - t0
    for _, res in ipairs(results) do
      assert.is_nil(res[1])
      assert.equal("timeout", res[2].code)                 -- (sent, maybe done: like `closed`)
    end
    assert.matches("no answer from 127.0.0.1:%d+ in %d+ ms", results[1][2].message)
    assert.is_true(waited >= 290 and waited < 3000, waited)
    E.sh("kill -CONT $(cat " .. stuck.dir .. "/redis.pid)")
    assert.equal("2", r2:call("GET", "k"))                 -- a new connection; the INCR went through
    r2:close()
  end)

  -- a name /etc/hosts gives 127.0.0.1 (besides localhost, which needs no lookup)
  local function loopback_name()
    local f = io.open("/etc/hosts")
    if not f then return nil end
    for line in f:lines() do
      local addr, names = line:match("^%s*(%S+)%s+([^#]+)")
      if addr == "127.0.0.1" then
        for name in names:gmatch("%S+") do
          if name ~= "localhost" and name:match("^[%w.-]+$") then f:close() return name end
        end
      end
    end
    f:close()
  end

  it("looks a host name up (libevent's resolver: the hosts file, then DNS), and refuses what is not one", function()
    local name = loopback_name()
    if name then
      local r4 = redis.new { host = name, port = srv.port, loop = loop }
      assert.equal("PONG", r4:call("PING"))
      r4:close()
    else
      print("(no name for 127.0.0.1 in /etc/hosts besides localhost: the lookup is not tried)")
    end
    local r5 = redis.new { host = "redis example", loop = loop }
    local v, err = r5:call("PING")
    assert.is_nil(v)
    assert.equal("connect", err.code)
    assert.matches("not an address or a host name", err.message, 1, true)
  end)

  it("runs inside nginx on cosockets", function()
    local port = N.free_port()
    local n = N.start { port = port, workers = 1, locations = string.format([[
      location = /r { content_by_lua_block {
        local r = require("graphcall.redis").new { port = %d }
        local out = {}
        out.set = r:call("SET", "ngx", "from nginx")
        out.get = r:call("GET", "ngx")
        out.list = r:call("LRANGE", "list", 0, -1)
        local _, err = r:call("INCR", "ngx")
        out.err = err.code
        local many = {}
        for i = 1, 50 do many[i] = r:call("INCR", "ngxcount") end
        out.last = many[50]
        ngx.print(require("cjson").encode(out)) } }]], srv.port) }
    local res = assert(loop:fetch { url = "http://127.0.0.1:" .. port .. "/r" })
    n.stop()
    assert.equal(200, res.status)
    local out = cjson.decode(res.body)
    assert.same({ set = "OK", get = "from nginx", list = { "a", "b", "c" }, err = "redis", last = 50 }, out)
  end)
end)

describe("graphcall.redis: the slot map", function()
  -- CLUSTER NODES as Redis 7 writes it: id, address, flags, master, ping, pong, epoch, link, slots
  local fresh = table.concat({
    "a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460",
    "b2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922 [5461->-c3]",
    "c3 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383",
    "d4 127.0.0.1:7004@17004 master - 0 0 7 connected 5461-10922",   -- b2's replica, promoted
    "b2 127.0.0.1:7002@17002 master,fail - 0 0 2 disconnected",
  }, "\n") .. "\n"
  -- b2 back after its failover, before it has learnt: its old slots, its old epoch
  local stale = table.concat({
    "b2 :7002@17002 myself,master - 0 0 2 connected 5461-10922",
    "d4 127.0.0.1:7004@17004 slave b2 0 0 2 connected",
    "a1 127.0.0.1:7001@17001 master - 0 0 1 connected 0-5460",
    "e5 :0@0 master,noaddr - 0 0 9 disconnected 0-16383",
  }, "\n")

  it("gives each slot to the master that claims it with the highest config epoch", function()
    for _, views in ipairs { { { text = stale, host = "127.0.0.1" }, { text = fresh, host = "127.0.0.1" } },
                             { { text = fresh, host = "127.0.0.1" }, { text = stale, host = "127.0.0.1" } } } do
      local slots, masters = redis.slot_map(views)
      assert.equal("127.0.0.1:7001", slots[1])
      assert.equal("127.0.0.1:7001", slots[5461])
      assert.equal("127.0.0.1:7004", slots[5462])
      assert.equal("127.0.0.1:7004", slots[10923])
      assert.equal("127.0.0.1:7003", slots[10924])
      assert.equal("127.0.0.1:7003", slots[16384])
      table.sort(masters)
      assert.same({ "127.0.0.1:7001", "127.0.0.1:7003", "127.0.0.1:7004" }, masters)
    end
  end)

  it("takes a master's own address from the node asked when the view leaves it out", function()
    local slots = redis.slot_map { { text = stale, host = "10.0.0.9" } }
    assert.equal("10.0.0.9:7002", slots[5462])
    assert.equal("127.0.0.1:7001", slots[1])
  end)

  it("has no map when no view claims a slot", function()
    assert.is_nil(redis.slot_map {})
    assert.is_nil(redis.slot_map { { text = "d4 127.0.0.1:7004@17004 slave b2 0 0 2 connected\n", host = "h" } })
  end)
end)

describe("graphcall.redis on a cluster", function()
  local c, loop, r
  local E = require "emu"

  setup(function()
    c = R.cluster()
    loop = graphcall.loop { log = false }
    r = redis.new { cluster = c.seeds, loop = loop }
  end)

  teardown(function()
    if r then r:close() end
    if loop then loop:close() end
    if c then c.stop() end
  end)

  it("sends each command to the master of its key's slot, scripts too", function()
    for i = 1, 30 do assert.equal("OK", r:call("SET", "key" .. i, i)) end
    local where = {}
    for i = 1, 30 do
      assert.equal(tostring(i), r:call("GET", "key" .. i))
      local n, slot = c.master_of("key" .. i)
      assert.equal(slot, core.resp_slot("key" .. i))
      assert.equal("127.0.0.1:" .. n.port, r:node_of("key" .. i))
      where[n.port] = true
    end
    local masters = 0
    for _ in pairs(where) do masters = masters + 1 end
    assert.equal(3, masters)                              -- thirty keys: all three masters
    assert.equal(0, r.moved)                              -- the map was right: no redirection
    assert.equal("7", r:call("EVAL", "return redis.call('GET', KEYS[1])", 1, "key7"))
    -- a script loaded on every master: EVALSHA runs wherever its key is
    local sha = r:call("SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])")
    for i = 1, 30 do assert.equal(i + 1, r:call("EVALSHA", sha, 1, "key" .. i)) end
    -- keys of two slots in one script: Redis refuses, the error says so
    local _, err = r:call("EVAL", "return 1", 2, "key1", "key2")
    assert.matches("CROSSSLOT", err.message)
  end)

  it("follows ASK while a slot migrates and MOVED once it has, and reads the map again", function()
    local from, slot = c.master_of("mig")
    local to
    for _, n in ipairs(c.nodes) do
      if n ~= from and n.role() == "master" then to = n break end
    end
    assert.equal("OK", r:call("SET", "mig", "before"))
    -- the slot half-way: "mig" moved, a new key of the slot not on the old master yet
    E.sh(to.cli .. " cluster setslot " .. slot .. " importing " .. from.id())
    E.sh(from.cli .. " cluster setslot " .. slot .. " migrating " .. to.id())
    E.sh(from.cli .. " migrate 127.0.0.1 " .. to.port .. " '' 0 5000 keys mig")
    assert.equal("before", r:call("GET", "mig"))
    assert.equal(1, r.asked)
    assert.equal("OK", r:call("SET", "{mig}new", "during"))   -- not on the old master: ASK
    assert.equal(2, r.asked)
    assert.equal(0, r.moved)
    -- the slot is the new master's: the old one says MOVED, the client learns the map
    for _, n in ipairs(c.nodes) do
      if n.role() == "master" then E.sh(n.cli .. " cluster setslot " .. slot .. " node " .. to.id()) end
    end
    assert.equal("during", r:call("GET", "{mig}new"))
    assert.is_true(r.moved >= 1)
    assert.equal("127.0.0.1:" .. to.port, r:node_of("mig"))
    local moved = r.moved
    assert.equal("before", r:call("GET", "mig"))
    assert.equal(moved, r.moved)                          -- learnt: straight to the new master
  end)

  it("reads the slot map without waiting for a node that hangs: most nodes' views are enough", function()
    local replica
    for _, n in ipairs(c.nodes) do if n.role() == "slave" then replica = n end end
    replica.signal("STOP")                                -- asked, and never answers
    local fresh = redis.new { cluster = c.seeds, loop = loop }
    local t0 = loop:now()
    local ok, v = pcall(fresh.call, fresh, "SET", "hang", "1")   -- its first command reads the map
    local took = loop:now() - t0
    replica.signal("CONT")
    fresh:close()
    assert.is_true(ok, v)
    assert.equal("OK", v)
    -- the node's timeout is 5 s; the others answer at once and the refresh waits 200 ms more
    assert.is_true(took < 2500, took)
  end)

  it("waits out a failover: a master killed, its replica takes over, the write goes there", function()
    assert.equal("OK", r:call("SET", "fo", "1"))
    loop:sleep(200)                                        -- replicated
    local master = c.master_of("fo")
    master.kill()
    local t0 = loop:now()
    -- the first command may be cut off (it went to the dead master); none is sent twice
    local v, err
    for _ = 1, 3 do
      v, err = r:call("INCR", "fo")
      if v then break end
      assert.truthy(err.code == "closed" or err.code == "connect", err.code)
    end
    assert.equal(2, v)
    assert.is_true(loop:now() - t0 < 10000)
    assert.is_true(r.refreshes >= 2)
    assert.not_equal("127.0.0.1:" .. master.port, r:node_of("fo"))
    master.start()                                         -- back, as a replica
    c.wait_ok()
    assert.equal("slave", master.role())
    assert.equal("2", r:call("GET", "fo"))
  end)

  it("runs inside nginx on cosockets, a pool per node", function()
    local port = N.free_port()
    local n = N.start { port = port, workers = 1, locations = string.format([[
      location = /r { content_by_lua_block {
        local r = require("graphcall.redis").new { cluster = %q }
        local out = { sets = 0 }
        for i = 1, 30 do if r:call("SET", "ngx" .. i, i) == "OK" then out.sets = out.sets + 1 end end
        out.get = r:call("GET", "ngx17")
        out.nodes = 0
        for _ in pairs(r.nodes) do out.nodes = out.nodes + 1 end
        ngx.print(require("cjson").encode(out)) } }]], c.seeds) }
    local res = assert(loop:fetch { url = "http://127.0.0.1:" .. port .. "/r" })
    n.stop()
    assert.equal(200, res.status, res.body)
    local out = cjson.decode(res.body)
    assert.same({ sets = 30, get = "17", nodes = out.nodes }, out)
    assert.is_true(out.nodes >= 3)
    assert.equal("17", r:call("GET", "ngx17"))
  end)
end)

-- every store spec on one server and on a cluster (3 masters, 3 replicas; the calls in buckets)
for _, on in ipairs { "one server", "a cluster" } do
describe("graphcall.store.redis on " .. on, function()
  local srv, loop, r, store
  local cluster = on == "a cluster"

  local function new_client()
    if cluster then return redis.new { cluster = srv.seeds, loop = loop } end
    return redis.new { port = srv.port, loop = loop }
  end
  local function K(id, what) return store:key(id, what) end
  -- the call's lease as its head keeps it: the token, or nil (let go, or never taken)
  local function lease_of(id)
    local ls = r:call("HGET", K(id, "hd"), "ls")
    return ls ~= core.null and ls ~= "" and ls or nil
  end
  -- a bot on a store, its Graph and its listener nowhere: what the runtime does with the store
  local function new_bot(o)
    o.client = graphcall.client { tenantId = "t", clientId = "a", clientSecret = "s",
                                  authority = "http://127.0.0.1:1", loop = loop }
    o.listener = { url = function() return "http://127.0.0.1:1/callback" end, close = function() end }
    return assert(graphcall.bot(o))
  end
  -- the node a call's keys are on (for INFO)
  local function node(id) return cluster and r:on(K(id, "hd")) or r end

  setup(function()
    srv = cluster and R.cluster() or R.start()
    loop = graphcall.loop { log = false }
    r = new_client()
    store = require("graphcall.store").redis { redis = r, ttl = 60, sleep = function(ms) loop:sleep(ms) end }
  end)

  teardown(function()
    if r then r:close() end
    if loop then loop:close() end
    if srv then srv.stop() end
  end)

  it("keeps a call's log, state and head, under keys hashed on the call id", function()
    local id = "call-1"
    store:append(id, { k = "ev", ev = { kind = "call", state = "incoming", incoming = true } })
    store:append(id, { k = "start", flow = "main", dir = "incoming", tenant = "t1" })
    store:append(id, { k = "step", n = 1, w = "answer", v = { res = { url = "https://x/y" } } })
    store:put(id, { n = 1 })
    assert.same({ n = 1 }, store:get(id))
    local log = store:log(id)
    assert.equal(3, #log)
    assert.equal("https://x/y", log[3].v.res.url)            -- no "\/" in what is kept
    assert.same({ flow = "main", dir = "incoming", tenant = "t1", state = "incoming" }, store:head(id))
    assert.same({ id }, store:calls())
    -- every key of the call in one slot: {call-1} on one server, its bucket's on a cluster,
    -- where the bucket's shared keys are too (a script touches one slot)
    local keys = node(id):call("KEYS", "*call-1*")
    table.sort(keys)
    assert.same({ K(id, "hd"), K(id, "log"), K(id, "st") }, keys)
    local slot = core.resp_slot(K(id, "log"))
    assert.equal(slot, core.resp_slot(K(id, "in")))
    if cluster then
      assert.equal(string.format("gc:{%s}:call-1:hd", store.tags[store:bucket(id) + 1]), K(id, "hd"))
      assert.equal(slot, core.resp_slot(store:shared_key(id, "due")))
    else
      assert.equal("gc:{call-1}:hd", K(id, "hd"))
    end
    store:append(id, { k = "end", ok = true })
    assert.is_true(store:head(id).ended)
    store:expire(id, 1)
    assert.same({}, store:calls())
    local pttl = r:call("PTTL", K(id, "log"))
    assert.is_true(pttl > 0 and pttl <= 1000)
  end)

  it("lets go of the lease with the call's end, and says whether late events wait in its inbox", function()
    for _, late in ipairs { false, true } do
      local id = late and "call-end-late" or "call-end"
      local release = assert(store:lock(id, 5))
      store:append(id, { k = "start", flow = "main", dir = "incoming", tenant = "t1" })
      if late then store:push(id, '{"e":{"kind":"call","state":"terminated"}}', 1000) end
      store:append(id, { k = "end", ok = true })
      store:expire(id, 60)
      assert.is_nil(lease_of(id))                         -- let go in the same script
      assert.equal(late, release() == true)               -- (the inbox's next holder takes it)
      assert.is_falsy(release())                          -- once
      assert.equal(late and 1 or 0, #store:inbox(id))
      -- (the sweeper's list of inboxes left waiting: this process takes it, told by release)
      assert.equal(core.null, r:call("ZSCORE", store:shared_key(id, "inbox"), id))
      assert.truthy(r:call("PTTL", K(id, "hd")) <= 60000)
      assert.truthy(store:recent()[1] == id)
      assert.truthy(store:lock(id, 5, 0))                 -- free for whoever comes next
    end
  end)

  it("keeps the tracker's state as JSON without its seen set, and takes it back whole", function()
    local tracker = require("graphcall.tracker").new { store = store:tracker() }
    local function tone(seq)
      return assert(graphcall.parse_notifications(cjson.encode { value = { { changeType = "updated",
        resourceUrl = "/communications/calls/call-2", resourceData = { state = "established",
        toneInfo = { tone = "tone1", sequenceId = seq } } } } }))[1]
    end
    assert.is_true((tracker:accept(tone(1))))
    assert.is_true((tracker:accept(tone(3))))
    assert.is_true((tracker:accept(tone(2))))
    assert.is_false((tracker:accept(tone(2))))
    local text = r:call("HGET", K("call-2", "hd"), "trk")
    assert.is_nil(text:find('"seen"', 1, true))
  end)

  it("fences a node whose lease ran out: its writes fail and the log has only the new holder's", function()
    local id = "call-3"
    local other = require("graphcall.store").redis { redis = new_client() }
    local releaseA, tA = store:lock(id, 0.2)
    assert.is_function(releaseA)
    store:append(id, { k = "ev", ev = { kind = "call" }, by = "A" })
    assert.is_nil((other:lock(id, 5, 0)))                   -- held
    loop:sleep(300)                                         -- A stalls past its lease
    local releaseB, tB = other:lock(id, 5, 0)
    assert.is_function(releaseB)
    assert.is_true(tB > tA)
    local ok, err = pcall(store.append, store, id, { k = "out", n = 1, a = "transfer", crid = "x", by = "A" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("fenced", 1, true))
    assert.has_error(function() store:put(id, { by = "A" }) end)
    other:append(id, { k = "out", n = 1, a = "hangup", crid = "y", by = "B" })
    local by = {}
    for _, e in ipairs(store:log(id)) do by[#by + 1] = e.by end
    assert.same({ "A", "B" }, by)
    releaseA()                                              -- too late: B's lease stays
    assert.equal(tostring(tB), lease_of(id))
    releaseB()
    assert.is_nil(lease_of(id))
  end)

  it("waits for a lease another holder lets go", function()
    local id = "call-4"
    local release = store:lock(id, 5)
    loop:timer(100, release)
    local other = require("graphcall.store").redis { redis = new_client(), sleep = function(ms) loop:sleep(ms) end }
    local t0 = loop:now()
    local release2 = other:lock(id, 5, 3)
    assert.is_function(release2)
    assert.is_true(loop:now() - t0 >= 90)
    release2()
  end)

  it("keeps accepted events in an inbox that leaves with the log append, in one script", function()
    local id = "call-in"
    local t = store:tracker(true)
    local release = store:lock(id, 5)
    store:push(id, '{"e":{"kind":"call","state":"established"}}', 1000)
    store:push(id, '{"e":{"kind":"call","state":"established"}}', 2000)
    assert.same({ id }, store:inbox_due(1500))            -- since the first push
    assert.equal(2, #store:inbox(id))
    t:put(id, { ring = {}, tones = {}, state = "established" })
    assert.equal(graphcall.null, r:call("HGET", K(id, "hd"), "trk"))   -- kept back for the append
    store:take_with_next(id)
    store:append(id, { k = "ev", ev = { kind = "call", state = "established" } })
    assert.equal(1, #store:inbox(id))
    assert.truthy(r:call("HGET", K(id, "hd"), "trk"):find("established", 1, true))
    store:drop_first(id)                                  -- the second was a duplicate
    assert.same({}, store:inbox(id))
    assert.equal(1, #store:log(id))
    store:inbox_done(id, 3000)
    assert.same({}, store:inbox_due(5000))
    store:push(id, "{}", 4000)
    store:inbox_done(id, 4500)                            -- one came meanwhile: it stays due
    assert.same({ id }, store:inbox_due(5000))
    release()
  end)

  -- the commands Redis ran since `before` (scripts' and functions' own included), on the
  -- node of the call's keys; not the replicas' REPLCONF ACK, nor WAIT (on a cluster, apart)
  local function ran(id, before)
    local n = 0
    for name, c in node(id):call("INFO", "commandstats"):gmatch("cmdstat_([%w|]+):calls=(%d+)") do
      if name ~= "replconf" and name ~= "wait" then n = n + tonumber(c) end
    end
    return n - (before or 0) - 1      -- (this INFO itself)
  end

  it("takes a notification's event in one call to Redis: the tracker's verdict, the log, the head", function()
    local id = "call-ing"
    local o = { tid = "t1", now = 1000, lease = 1500, keepAlive = 60000, watchdog = 2750.5 }
    local function tone(seq, fp)
      return { kind = "call", state = "established", fingerprint = fp, toneInfo = { tone = "tone1", sequenceId = seq } }
    end
    assert.same({ state = "established" }, store:ingest(id, tone(1, 4503599627370497), o))
    local before = ran(id)
    local r2 = store:ingest(id, tone(2, 4503599627370499), o)
    assert.same({ state = "established" }, r2)
    local n = ran(id, before)
    assert.is_true(n <= 6, n)                     -- FCALL and 4 or 5 commands in it
    assert.same({ dup = "duplicate" }, store:ingest(id, tone(2, 4503599627370499), o))   -- the same text again
    assert.same({ dup = "duplicate" }, store:ingest(id, tone(2, 17), o))                 -- the same tone
    local log = store:log(id)
    assert.equal(2, #log)
    assert.equal(2, log[2].ev.toneInfo.sequenceId)
    assert.equal(4503599627370499, log[2].ev.fingerprint)                               -- exact, 53 bits
    assert.equal(1000, log[2].t)
    assert.equal("established", store:head(id).state)
    -- the tracker's fingerprints beside its state, not in its JSON (what Redis decodes every event);
    -- a key press has none kept (its sequenceId tells a repeat)
    assert.is_nil((r:call("HGET", K(id, "hd"), "fp") or ""):find(" 4503599627370499 ", 1, true))
    local fid = "call-fp"
    local media = { kind = "call", state = "established", fingerprint = 4503599627370501 }
    assert.same({ state = "established" }, store:ingest(fid, media, o))
    assert.same({ dup = "duplicate" }, store:ingest(fid, media, o))
    assert.truthy(r:call("HGET", K(fid, "hd"), "fp"):find(" 4503599627370501 ", 1, true))
    assert.is_nil(r:call("HGET", K(id, "hd"), "trk"):find('"ring"', 1, true))
    assert.same({ id }, (function()
      local listed = {}
      for _, c in ipairs(store:calls()) do if c == id then listed[#listed + 1] = c end end
      return listed
    end)())
    assert.equal(61000, store:ka_at(id))                              -- established: keepAlive from now on
    -- a call with a flow: the lease, the watchdog deadline and the log come back with it
    store:append(id, { k = "start", flow = "main", dir = "incoming", tenant = "t1" })
    local r3 = store:ingest(id, tone(3, 21), o)
    assert.is_true(r3.drive)
    assert.equal(4, #r3.entries)
    assert.equal(2750.5, store:due_at(id))
    assert.truthy(lease_of(id))
    -- held: by this store (its event is in the log, the lease stays), then by another (the inbox)
    assert.same({ drive = true, mine = true }, store:ingest(id, tone(4, 22), o))
    local other = require("graphcall.store").redis { redis = new_client() }
    assert.same({ queued = true }, other:ingest(id, tone(5, 23), o))
    assert.equal(5, #store:log(id))
    assert.equal(1, #store:inbox(id))
    -- the flow parks, waiting till 9000: the event in the inbox is taken into the log with the
    -- park, through the tracker, and the lease stays (the flow goes on with it)
    local po = { now = 1200, watchdog = 3200.5, lease = 1500, keepAlive = 60000 }
    local before_park = ran(id)
    local taken = store:park(id, 9000, true, po)
    local took = ran(id, before_park)
    -- one FCALL: write, inbox, tracker, log, head, lease, deadline; on a cluster a no-op with
    -- a WAIT behind it (loaded the first time): a replica has the events before they count as taken
    assert.is_true(took <= (cluster and 13 or 11), took)
    assert.equal(1, #taken.events)
    assert.equal(5, taken.events[1].e.toneInfo.sequenceId)
    assert.equal(23, taken.events[1].e.fingerprint)
    assert.equal("t1", taken.events[1].tid)
    assert.equal(6, #taken.entries)
    assert.equal(5, taken.entries[6].ev.toneInfo.sequenceId)
    assert.same({}, store:inbox(id))
    assert.is_nil(store:inbox_since(id))
    assert.truthy(lease_of(id))
    assert.equal(3200.5, store:due_at(id))
    -- a duplicate waiting: dropped by the tracker, and the park lets go as asked
    assert.same({ queued = true }, other:ingest(id, tone(5, 23), o))
    assert.is_false(store:park(id, 9000, true, po))
    assert.is_nil(lease_of(id))
    assert.equal(9000, store:due_at(id))
    assert.equal(6, #store:log(id))
    assert.same({}, store:inbox(id))
    -- a flow's start waiting (a call placed by a process): left to the lease's next holder
    assert.truthy(store:lock(id, 5))
    store:push(id, '{"start":"main","tenant":"t1"}', 1300)
    assert.is_true(store:park(id, 9500, true, po))
    assert.is_nil(lease_of(id))
    assert.equal(1, #store:inbox(id))
    assert.equal(9500, store:due_at(id))
  end)

  it("logs an event its parked flow does not wait for without taking the call; one it may take wakes it", function()
    local id = "call-wake"
    local o = { tid = "t1", now = 1000, lease = 1500, watchdog = 2750.5 }
    local seq = 0
    local function tone()
      seq = seq + 1
      return { kind = "call", state = "established", toneInfo = { tone = "tone1", sequenceId = seq } }
    end
    local function state(st, fp) return { kind = "call", state = st, fingerprint = fp } end
    local function op(n) return { kind = "operation", status = "completed", operationId = "op-" .. n } end
    store:append(id, { k = "start", flow = "main", dir = "incoming", tenant = "t1" })
    local function park(wake)
      assert.is_false(store:park(id, 9000, true, { now = 1100, watchdog = 2750.5, lease = 1500, wake = wake }))
      assert.is_nil(lease_of(id))
    end
    local function logged(e) local got = store:ingest(id, e, o) assert.is_nil(got.drive) assert.is_nil(lease_of(id)) end
    local function drives(e) assert.is_true(store:ingest(id, e, o).drive) assert.truthy(lease_of(id)) end
    drives(state("establishing", 1))                      -- no park yet: any event
    park("t")                                             -- a key press
    logged(op(1))
    logged(state("established", 2))
    drives(tone())
    park("t,o")                                           -- a prompt's end or a key press
    logged(state("established", 3))
    drives(op(2))
    park("c=established")                                 -- an answer's outcome
    logged(tone())
    logged(state("transferring", 4))
    logged(op(3))
    drives(state("established", 5))
    park("-")                                             -- a pause: nothing but the call's end
    logged(tone())
    logged(op(4))
    logged({ kind = "participants", participants = {} })
    drives(state("terminated", 6))                        -- the end always wakes it
    park(nil)                                             -- a filter of the user's: anything
    drives(op(5))
    -- what was logged without the flow is in the log, in order, for its replay
    local kinds = {}
    for _, e in ipairs(store:log(id)) do
      if e.k == "ev" then kinds[#kinds + 1] = e.ev.kind == "operation" and e.ev.operationId or e.ev.state end
    end
    assert.same({ "establishing", "op-1", "established", "established", "established", "op-2", "established",
                  "transferring", "op-3", "established", "established", "op-4", "terminated", "op-5" }, kinds)
    -- a lock (the sweeper's, at a deadline) forgets the park's list: the flow runs again
    park("-")
    local release = assert(store:lock(id, 5))
    release()
    drives(op(6))
  end)

  it("keeps a flow's steps back until its next intent or its park, and writes them in order", function()
    local id = "call-def"
    store:lock(id, 5)
    store:defer(id)
    store:append(id, { k = "start", flow = "main", dir = "incoming", tenant = "t1" })
    store:append(id, { k = "step", n = 1, w = "now", v = { t = 5 } })
    assert.equal(0, r:call("LLEN", K(id, "log")))             -- nothing outside depends on them yet
    store:append(id, { k = "out", n = 2, a = "answer", crid = "c1" })  -- an intent: it and all before it
    assert.equal(3, r:call("LLEN", K(id, "log")))
    assert.equal("main", store:head(id).flow)                          -- the start's head came with it
    store:append(id, { k = "step", n = 2, w = "answer", v = { res = true } })
    -- the intent of an action whose repeat is harmless waits too (the call's `may_wait`)
    store:append(id, { k = "out", n = 3, a = "subscribeToTone", crid = "c2" }, true)
    assert.equal(3, r:call("LLEN", K(id, "log")))
    store:park(id, nil, true)
    local kinds = {}
    for _, e in ipairs(store:log(id)) do kinds[#kinds + 1] = e.k end
    assert.same({ "start", "step", "out", "step", "out" }, kinds)
    assert.is_nil(lease_of(id))
  end)

  it("lets go of a call whose flow ended in a process that died before it could", function()
    -- the log says the flow ended; the watchdog deadline brings the sweeper, which expires it
    local bot = new_bot { store = store, shared = true, log = function() end }
    bot:flow(function() end)
    local id = "call-ended"
    store:append(id, { k = "start", flow = "main", dir = "incoming", tenant = "t" })
    store:append(id, { k = "end", ok = true })
    store:set_due(id, 1)
    local calls = store:shared_key(id, "calls")
    assert.truthy(r:call("SISMEMBER", calls, id) == 1)
    bot.runtime:sweep()
    assert.is_true(loop:run_until(function() return r:call("SISMEMBER", calls, id) == 0 end, 5000))
    assert.is_nil(store:due_at(id))
    assert.is_true(r:call("PTTL", K(id, "log")) > 0)     -- kept a while for traces, then gone
    bot:close()
  end)

  it("leaves a deadline to the process that holds the call: one try, no waiting on its lease", function()
    local id = "call-held-due"
    local bot = new_bot { store = store, shared = true, log = function() end }
    local other = require("graphcall.store").redis { redis = new_client() }
    local tries, lock = 0, store.lock
    store.lock = function(s, cid, ...)
      if cid == id then tries = tries + 1 end
      return lock(s, cid, ...)
    end
    finally(function() store.lock = nil end)
    -- a timer of this process for a deadline another process moved on (the flow went on there)
    store:set_due(id, loop:wall() + 60000)
    assert(bot.runtime:enqueue(id, { due = true }))
    assert.is_true(loop:run_until(function() return bot.runtime.queues[id] == nil end, 5000))
    assert.equal(0, tries)                               -- not due: no lease taken to find that out
    local release = assert(other:lock(id, 5))            -- another process runs the call's flow
    store:set_due(id, 1)
    local t0 = loop:now()
    assert(bot.runtime:enqueue(id, { due = true }))
    assert.is_true(loop:run_until(function() return bot.runtime.queues[id] == nil end, 5000))
    assert.equal(1, tries)
    assert.is_true(loop:now() - t0 < 1000, loop:now() - t0)
    assert.equal(1, store:due_at(id))                    -- still due: the holder's park sets the next
    release()
    store.lock = nil
    store:clear_due(id)
    bot:close()
  end)

  it("runs a parked flow again only for an event it may take; the handlers see every one", function()
    local id = "call-wakes"
    local function notification(rd, kind)
      rd["@odata.type"] = "#microsoft.graph." .. (kind or "call")
      return assert(graphcall.parse_notifications(cjson.encode { value = {
        { changeType = "updated", resourceUrl = "/communications/calls/" .. id
          .. (kind and ("/operations/" .. rd.id) or ""), resourceData = rd } } }))
    end
    local incoming = notification { state = "incoming", direction = "incoming",
      source = { identity = { phone = { id = "+14255550123" } } } }
    local bot = new_bot { store = store, shared = true, log = function() end }
    local runs, got, seen = 0, nil, {}
    bot:flow(function(call)
      runs = runs + 1
      got = assert(call:wait { kind = "operation" }).operationId   -- (a table: the wait names the kind)
    end)
    bot:on("tone", function(_, ev) seen[#seen + 1] = ev.toneInfo.tone end)
    local rt = bot.runtime
    local function settle() assert.is_true(loop:run_until(function() return rt.queues[id] == nil end, 5000)) end
    assert(rt:accept(incoming))
    settle()
    assert.equal(1, runs)
    for n = 1, 3 do      -- key presses, a state: not what the flow waits for
      assert(rt:accept(notification { state = "established", toneInfo = { tone = "tone" .. n, sequenceId = n } }))
      settle()
    end
    assert(rt:accept(notification { state = "established" }))
    settle()
    assert.equal(1, runs)                                  -- logged; the flow was not replayed
    assert.same({ "tone1", "tone2", "tone3" }, seen)       -- and the handlers had them
    assert(rt:accept(notification({ id = "op-1", status = "completed" }, "commsOperation")))
    settle()
    assert.equal(2, runs)
    assert.equal("op-1", got)
    assert.equal("end", store:log(id)[#store:log(id)].k)
    bot:close()
  end)

  it("hands the events a park took to the handlers of the node that held the call, then its flow", function()
    local id = "call-take"
    local function notification(rd)
      rd["@odata.type"] = "#microsoft.graph.call"
      return assert(graphcall.parse_notifications(cjson.encode { value = {
        { changeType = "updated", resourceUrl = "/communications/calls/" .. id, resourceData = rd } } }))
    end
    local incoming = notification { state = "incoming", direction = "incoming",
      source = { identity = { phone = { id = "+14255550123" } } } }
    local function tone(n)
      return notification { state = "established", toneInfo = { tone = "tone" .. n, sequenceId = n } }
    end
    -- two nodes on one store; the flow waits for two keys, each handler says which node took what
    local took, bots = { a = {}, b = {} }, {}
    for _, name in ipairs { "a", "b" } do
      local s = name == "a" and store or require("graphcall.store").redis { redis = new_client(), ttl = 60 }
      local bot = new_bot { store = s, shared = true, log = function() end }
      bot:flow(function(call)
        for _ = 1, 2 do assert(call:wait(function(e) return e.toneInfo ~= nil end)) end
      end)
      bot:on("tone", function(_, ev)
        local t = took[name]
        t[#t + 1] = ev.toneInfo.tone
        -- while this node holds the call, the next key comes to the other node: into the inbox
        if ev.toneInfo.tone == "tone1" then assert(bots.b.runtime:accept(tone(2))) end
      end)
      bots[name] = bot
    end
    local a = bots.a.runtime
    assert(a:accept(incoming))
    assert.is_true(loop:run_until(function() return a.queues[id] == nil end, 5000))
    assert.is_nil(lease_of(id))                             -- parked: let go
    -- (the lease taken again would be a lock; the flow's end lets go of it last of all)
    local locks, released, last_token = 0, false, nil
    -- (this call's: other tests' runtimes on the same store may lock calls of theirs meanwhile,
    -- a deadline of one of them come due)
    store.lock = function(s, cid, ...)
      if cid == id then locks = locks + 1 end
      return getmetatable(store).__index.lock(s, cid, ...)
    end
    store.release = function(s, cid, ...)
      if cid == id then last_token = s.tokens[cid] end
      local v = getmetatable(store).__index.release(s, cid, ...)
      released = released or cid == id
      return v
    end
    finally(function() store.lock, store.release = nil, nil end)
    assert(a:accept(tone(1)))
    assert.is_true(loop:run_until(function() return released end, 5000))
    store.lock, store.release = nil, nil
    -- the park after tone1 took tone2: the same node's handler, then the flow, which ended
    assert.same({ "tone1", "tone2" }, took.a)
    assert.same({}, took.b)
    local kinds, log = {}, store:log(id)
    for _, e in ipairs(log) do
      if e.k == "ev" or e.k == "start" then
        kinds[#kinds + 1] = e.k == "ev" and (e.ev.toneInfo and e.ev.toneInfo.tone or e.ev.state) or e.k
      end
    end
    assert.same({ "incoming", "start", "tone1", "tone2" }, kinds)
    assert.equal("end", log[#log].k)
    assert.is_true(log[#log].ok)
    assert.equal(0, locks)                                -- no lease taken again for tone2
    assert.equal(0, r:call("EXISTS", K(id, "in")))
    assert.is_nil(lease_of(id), "A's token then: " .. tostring(last_token))
    assert.equal(core.null, r:call("ZSCORE", store:shared_key(id, "inbox"), id))
    for _, bot in pairs(bots) do bot:close() end
  end)

  it("renews the leases of the calls it drives while flows start and end under a slow renew", function()
    local bot = new_bot { store = store, shared = true, log = function() end }
    local rt = bot.runtime
    local held = {}
    for i = 1, 20 do
      local id = "renew-" .. i
      assert(store:lock(id, 30, 1))
      held[id], rt.driving[id] = true, true
    end
    -- a renew that waits (a store far away, a failover): meanwhile the call being renewed ends
    -- and a hundred others start in this process
    local renew, renewed, n = store.renew, {}, 0
    store.renew = function(s, id, lease)
      loop:sleep(1)
      rt.driving[id] = nil
      n = n + 1
      if n == 1 then for j = 1, 100 do rt.driving["new-" .. j] = true end end
      renewed[id] = true
      return renew(s, id, lease)
    end
    local ok, err
    loop:spawn(function() ok, err = pcall(rt._renew, rt) end)
    assert.is_true(loop:run_until(function() return ok ~= nil end, 10000))
    store.renew = renew
    assert.is_true(ok, tostring(err))
    for id in pairs(held) do assert.is_true(renewed[id], id) end
    assert.is_nil(renewed["new-1"])   -- started after the round began: the next round's
    bot:close()
  end)

  it("keeps its scripts as one library of functions, loaded again where a server lost it", function()
    local id = "call-lib"
    local s = require("graphcall.store").redis { redis = new_client(), ttl = 60 }
    local function loads()
      local n = 0
      for _, nd in ipairs(cluster and srv.nodes or { { port = srv.port } }) do
        local rc = redis.new { port = nd.port, loop = loop }
        local ok, info = pcall(rc.call, rc, "INFO", "commandstats")
        if ok and type(info) == "string" then
          n = n + tonumber(info:match("cmdstat_script|load:calls=(%d+)") or 0)
        end
        rc:close()
      end
      return n
    end
    local before = loads()
    local release = assert(s:lock(id, 5))
    s:append(id, { k = "start", flow = "main", dir = "incoming", tenant = "t1" })
    s:put(id, { n = 1 })
    release()
    assert.equal(before, loads())                          -- no SCRIPT LOAD: the library's functions
    -- a server that lost it (restarted without its data): the next call loads it again
    for _, nd in ipairs(cluster and srv.nodes or { { port = srv.port } }) do
      local rc = redis.new { port = nd.port, loop = loop }
      pcall(rc.call, rc, "FUNCTION", "FLUSH")
      rc:close()
    end
    release = assert(s:lock(id, 5))
    s:append(id, { k = "end", ok = true })
    release()
    assert.equal(2, #s:log(id))
    assert.is_nil(lease_of(id))
    s.redis:close()
  end)

  it("says a Redis that is away once, then that it is back: no line a round, no traceback", function()
    if cluster then return end   -- (one server of its own, killed)
    local own = R.start()
    local r2 = redis.new { port = own.port, loop = loop }
    local s2 = require("graphcall.store").redis { redis = r2, sleep = function(ms) loop:sleep(ms) end }
    local lines = {}
    local bot = new_bot { store = s2, sweep = 20,
      log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end }
    bot:start()
    loop:sleep(100)
    own.kill()
    loop:sleep(500)                                        -- some 25 rounds of the sweeper, Redis away
    own.restart()
    loop:sleep(500)
    local text = table.concat(lines, "\n")
    assert.equal(1, select(2, text:gsub("the store is unreachable", "")), text)
    assert.matches("info the store is back after %d+ ms", text)
    assert.is_nil(text:find("traceback", 1, true), text)
    bot:close()
    r2:close()
    own.stop()
  end)

  it("has a replica acknowledge an event before it counts as taken (WAIT), and goes on without one", function()
    if not cluster then return end   -- (one server has no replica here)
    local id = "call-wait"
    local o = { tid = "t1", now = 1000, lease = 1500, watchdog = 2000 }
    local ev = { kind = "call", state = "establishing" }
    local waits = function()
      return tonumber(node(id):call("INFO", "commandstats"):match("cmdstat_wait:calls=(%d+)") or 0)
    end
    assert.equal(1, store.replicas)                        -- on a cluster, by default
    local before = waits()
    store:ingest(id, ev, o)
    assert.equal(before + 1, waits())                      -- the FCALL and a WAIT behind it
    assert.equal(0, store.unreplicated)
    -- the replica stops answering: the wait gives up after replicaTimeout, counts it, and for
    -- 5 s that master's writes go on without waiting (each would hold the connection)
    local replica = srv.replica_of((srv.master_of(K(id, "log"))))
    replica.signal("STOP")
    finally(function() replica.signal("CONT") end)
    local t0 = loop:now()
    store:ingest(id, { kind = "call", state = "established" }, o)
    local took = loop:now() - t0
    assert.is_true(took >= 400, took)
    assert.equal(1, store.unreplicated)
    t0 = loop:now()
    store:ingest(id, { kind = "call", state = "established", toneInfo = { tone = "tone1", sequenceId = 1 } }, o)
    assert.is_true(loop:now() - t0 < 400)
    assert.equal(2, store.unreplicated)
    replica.signal("CONT")
    assert.equal(3, #store:log(id))
  end)

  it("does not count an event as taken by a master that was replaced while it was stopped", function()
    if not cluster then return end   -- (one server has no replica here)
    -- its own store: the last spec left a master whose writes are not waited for a while
    local s = require("graphcall.store").redis { redis = new_client(), ttl = 60 }
    local id = "call-stopped"
    local o = { tid = "t1", now = 1000, lease = 1500, watchdog = 2000 }
    s:ingest(id, { kind = "call", state = "establishing" }, o)   -- (its connection to the master)
    local master = srv.master_of(K(id, "log"))
    local replica = srv.replica_of(master)
    master.signal("STOP")
    finally(function() master.signal("CONT") end)
    for _ = 1, 300 do                                     -- the node timeout (1 s), the election
      if replica.role() == "master" then break end
      loop:sleep(50)
    end
    assert.equal("master", replica.role())
    -- the client still sends the call's keys to the old master, which runs the write once
    -- resumed, before it learns it was replaced, and drops it when it syncs from the new one
    loop:timer(300, function() master.signal("CONT") end)
    local ev = { kind = "call", state = "established" }
    local ok, err = pcall(s.ingest, s, id, ev, o)
    -- the old master resumed says the cluster is ok before it learns it was replaced: wait for
    -- it to be the new master's replica, in sync
    for _ = 1, 300 do
      if master.role() == "slave" then break end
      loop:sleep(50)
    end
    assert.equal("slave", master.role())
    srv.wait_ok(30)
    loop:sleep(100)                                       -- (the client sees the old master close)
    if ok then                                            -- (the old master said MOVED first)
      assert.equal(2, #s:log(id))
    else                                                  -- not taken: the service sends it again
      local msg = tostring(err.message)
      assert.truthy(msg:find("UNBLOCKED", 1, true) or msg:find("no longer the master", 1, true), msg)
      assert.equal(1, #s:log(id))
      srv.wait_replicated(replica)                        -- (the retry's WAIT is then answered)
      s:ingest(id, ev, o)
      assert.equal(2, #s:log(id))
    end
    -- nothing counted as done on the replaced master's word; a write the new master took while
    -- its replica (the old master) was still syncing is counted unreplicated, against it
    assert.is_nil(s.noWait["127.0.0.1:" .. master.port])
    for addr in pairs(s.noWait) do assert.equal("127.0.0.1:" .. replica.port, addr) end
    assert.is_true(s.unreplicated <= (ok and 1 or 0), s.unreplicated)
    s.redis:close()
  end)

  it("asks the cluster whose a slot is when no replica acknowledged: done only on its master", function()
    if not cluster then return end   -- (one server has no replica here)
    local s = require("graphcall.store").redis { redis = new_client(), ttl = 60, replicaTimeout = 2000 }
    local id = "call-moved"
    local o = { tid = "t1", now = 1000, lease = 1500, watchdog = 2000 }
    s:ingest(id, { kind = "call", state = "establishing" }, o)
    local master, slot = srv.master_of(K(id, "log"))
    local replica, masters = srv.replica_of(master), srv.masters()
    local to = masters[1] ~= master and masters[1] or masters[2]
    -- no replica acknowledges this write in time, and meanwhile the slot goes to another
    -- master: the write is not counted as done on the strength of a node that no longer has it
    replica.signal("STOP")
    finally(function() replica.signal("CONT") end)
    loop:timer(50, function() srv.move_slot(slot, to, 0, masters) end)
    local refreshes = s.redis.refreshes
    local ev = { kind = "call", state = "established", toneInfo = { tone = "tone1", sequenceId = 1 } }
    local ok, err = pcall(s.ingest, s, id, ev, o)
    assert.is_false(ok)
    assert.matches("no longer the master of the key's slot", err.message)
    assert.is_true(s.redis.refreshes > refreshes)
    assert.equal("127.0.0.1:" .. to.port, s.redis:node_of(K(id, "log")))
    replica.signal("CONT")
    -- the service sends it again: here the slot's keys went with it, so the tracker drops it
    assert.same({ dup = "duplicate" }, s:ingest(id, ev, o))
    assert.equal(2, #s:log(id))
    assert.equal(0, s.unreplicated)
    s.redis:close()
  end)

  it("counts a write the old master sent on (MOVED) as done where it ran, when no replica acknowledged", function()
    if not cluster then return end   -- (one server has no replica here)
    local s = require("graphcall.store").redis { redis = new_client(), ttl = 60 }
    local id = "call-sent-on"
    local o = { tid = "t1", now = 1000, lease = 1500, watchdog = 2000 }
    s:ingest(id, { kind = "call", state = "establishing" }, o)
    local master, slot = srv.master_of(K(id, "log"))
    local masters = srv.masters()
    local to = masters[1] ~= master and masters[1] or masters[2]
    -- the slot goes to another master behind the client's back, whose replica does not answer:
    -- the write is sent on there (MOVED), done, and not acknowledged
    srv.move_slot(slot, to, 0, masters)
    local replica = srv.replica_of(to)
    replica.signal("STOP")
    finally(function() replica.signal("CONT") end)
    local moved = s.redis.moved
    s:ingest(id, { kind = "call", state = "established" }, o)
    replica.signal("CONT")
    assert.is_true(s.redis.moved > moved)
    assert.equal(1, s.unreplicated)                       -- against the master that has it
    assert.is_not_nil(s.noWait["127.0.0.1:" .. to.port])
    assert.is_nil(s.noWait["127.0.0.1:" .. master.port])
    assert.equal(2, #s:log(id))
    s.redis:close()
  end)

  it("shares the buckets' sweeps out among the nodes, and takes a dead node's over", function()
    if not cluster then return end   -- (one server: every node sweeps all, as before)
    local storemod = require("graphcall.store")
    local s1 = storemod.redis { redis = new_client(), sweepLease = 300 }
    local s2 = storemod.redis { redis = new_client(), sweepLease = 300 }
    local n = s1.buckets
    assert.equal(16, n)                                   -- on a cluster, by default
    r:call("DEL", "gc:sweep")                             -- (what the other specs' sweeps left)
    s1:sweep(1000)
    assert.equal(n, #s1:swept())                          -- alone: all of them
    s2:sweep(1000)
    assert.equal(0, #s2:swept())                          -- all held; it waits its turn
    s1:sweep(2000)                                        -- it sees the other: half let go
    assert.equal(n / 2, #s1:swept())
    s2:sweep(3000)
    assert.equal(n / 2, #s2:swept())
    assert.equal(2, s2.nodesAlive)
    local mine = {}
    for _, b in ipairs(s1:swept()) do mine[b] = true end
    for _, b in ipairs(s2:swept()) do assert.is_nil(mine[b]) end
    -- a flow due in a bucket of the second: only the second brings it back
    local id
    for i = 1, 100 do
      id = "due-" .. i
      if not mine[s1:bucket(id)] then break end
    end
    s1:set_due(id, 2500)
    assert.same({}, s1:sweep(3500).due)
    assert.same({ id }, s2:sweep(3500).due)
    s2:clear_due(id)
    -- the second stops (dies): two leases later it is forgotten and the first sweeps all
    loop:sleep(700)
    s1:sweep(10000)
    assert.equal(n, #s1:swept())
    assert.equal(1, s1.nodesAlive)
  end)

  it("refuses a node whose buckets are not the calls' in Redis, and one bucket on a cluster", function()
    local storemod = require("graphcall.store")
    assert.is_true(store:ping())                          -- the first: the count is kept
    local other = storemod.redis { redis = new_client(), buckets = 8 }
    local ok, err = pcall(other.ping, other)
    assert.is_false(ok)
    assert.matches("buckets: this node spreads calls over 8 bucket%(s%), the calls in Redis are spread over "
      .. store.buckets .. ": every node must use the same", err.message)
    if cluster then
      local bad, why = pcall(storemod.redis, { redis = new_client(), buckets = 1 })
      assert.is_false(bad)
      assert.matches("buckets: 2 or more on a Redis Cluster, not 1", why)
    end
  end)

  it("keeps deadlines and keepAlive times in sorted sets", function()
    store:set_due("a", 1000)
    store:set_due("b", 3000)
    store:set_ka("a", 2000)
    assert.same({ "a" }, store:due(2000))
    local both = store:due(5000)
    table.sort(both)
    assert.same({ "a", "b" }, both)
    assert.equal(2000, store:ka_at("a"))
    store:clear_due("a")
    assert.same({ "b" }, store:due(5000))
    assert.same({ "a" }, store:ka_due(2500))
    store:clear_ka("a")
    assert.same({}, store:ka_due(2500))
  end)
end)
end
