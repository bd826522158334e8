-- What graphcall keeps reads back exactly: one JSON writer (graphcall.wire.json, the C core's
-- plain writer) for every store, and the stores of one process.
local graphcall = require "graphcall"
local wire = require "graphcall.wire"
local storemod = require "graphcall.store"
local helper = require "helper"

local function roundtrip(v) return wire.decode(wire.json(v)) end

describe("the stores' JSON", function()
  it("writes integers exactly, beyond 2^53 too (Lua 5.4 integers)", function()
    for _, n in ipairs { 0, -1, 9007199254740993, 115119524685643, -9007199254740993 } do
      if math.type and math.type(n) == "integer" then
        assert.equal(n, roundtrip({ n = n }).n)
        assert.equal(tostring(n), wire.json(n))
      end
    end
    if math.maxinteger then
      assert.equal(math.maxinteger, roundtrip(math.maxinteger))
      assert.equal(math.mininteger, roundtrip(math.mininteger))
    end
  end)

  it("writes other numbers with the digits that read back the same", function()
    for _, x in ipairs { 0.1, 1 / 3, 2 ^ 60 + 0.0, 1e300, -2.5e-300, 115119524685643.0 } do
      assert.equal(x, roundtrip({ x }) [1])
    end
    assert.has_error(function() wire.json(0 / 0) end)
    assert.has_error(function() wire.json(math.huge) end)
  end)

  it("keeps every fingerprint of every notification fixture, from either ingest path", function()
    local n = 0
    for _, name in ipairs(helper.fixture_names("graph")) do
      if name:match("^notify") then
        local events = assert(graphcall.parse_notifications(helper.fixture("graph/" .. name)))
        for _, ev in ipairs(events) do
          n = n + 1
          local e = require("graphcall.call").compact(ev)
          assert.equal(ev.fingerprint, roundtrip(e).fingerprint)
        end
      end
    end
    assert.is_true(n >= 10)
  end)

  it("writes '/' as is, escapes what JSON must, refuses what it cannot hold, naming it", function()
    assert.equal('{"u":"https://a/b"}', wire.json({ u = "https://a/b" }))
    assert.equal('"a\\"b\\\\c\\n"', wire.json('a"b\\c\n'))
    assert.equal("[]", wire.json(graphcall.array {}))
    assert.equal("null", wire.json(graphcall.null))
    local ok, err = pcall(wire.json, { a = { f = print } })
    assert.is_false(ok)
    assert.matches("a%.f: a function cannot be sent as JSON", err)
    assert.has_error(function() wire.json({ [1] = 1, [3] = 3 }) end)
  end)
end)

describe("a file store", function()
  it("reads back what it wrote in another process's lifetime, numbers exact", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local s = storemod.file(dir)
    s:append("c-1", { k = "ev", ev = { fingerprint = 115119524685643, seq = 9007199254740993, ratio = 0.1 } })
    s:put("c-1", { ring = { "115119524685643" }, n = 2 ^ 53 + 0.0 })
    local again = storemod.file(dir)   -- nothing cached: from the files
    local e = again:log("c-1")[1]
    assert.equal(115119524685643, e.ev.fingerprint)
    assert.equal(0.1, e.ev.ratio)
    if math.type then assert.equal(9007199254740993, e.ev.seq) end
    assert.equal(2 ^ 53, again:get("c-1").n)
    assert.same({ "c-1" }, again:calls())
    os.execute("rm -rf " .. dir)
  end)

  it("gets what the runtime needs beside it from store.single: leases, deadlines, heads", function()
    local s = storemod.single(storemod.memory())
    assert.is_nil(s:head("x"))
    s:append("x", { k = "start", flow = "main", dir = "incoming", tenant = "t" })
    s:append("x", { k = "ev", ev = { kind = "call", state = "established" } })
    assert.same({ flow = "main", dir = "incoming", tenant = "t", state = "established" }, s:head("x"))
    s:append("x", { k = "end", ok = true })
    assert.is_true(s:head("x").ended)
    s:set_due("x", 100)
    s:set_ka("x", 300)
    assert.same({ "x" }, s:due(100))
    assert.same({}, s:due(99))
    assert.same({ "x" }, s:ka_due(300))
    s:expire("x")
    assert.same({}, s:due(1000))
    assert.same({}, s:ka_due(1000))
    local release = assert(s:lock("x", 15, 1))
    release()
    assert.equal(3, #s:log("x"))     -- the store's own methods, as they were
  end)
end)

describe("a memory store", function()
  it("gives back its log in order: events as the call's own tables, other entries as written", function()
    local s = storemod.memory()
    local ev = { kind = "call", state = "established", fingerprint = 115119524685643 }
    s:append("c-1", { k = "start", flow = "main", t = 1 })
    s:append("c-1", { k = "ev", ev = ev, t = 2 })
    local function res()
      return { id = "op-1", status = "completed", resultInfo = { code = 200 }, big = 2 ^ 53 + 1.0 }
    end
    s:append("c-1", { k = "step", n = 1, w = "answer", t = 3, v = { res = res() } })
    s:append("c-1", { k = "out", n = 2, a = "playPrompt", crid = "c0ffee", t = 4, d = graphcall.null })
    local log = s:log("c-1")
    assert.equal(4, #log)
    assert.same({ "start", "ev", "step", "out" }, { log[1].k, log[2].k, log[3].k, log[4].k })
    assert.equal(ev, log[2].ev)                  -- the same table: the call holds it anyway
    assert.same({ k = "step", n = 1, w = "answer", t = 3, v = { res = res() } }, log[3])
    assert.equal(graphcall.null, log[4].d)
    -- each read is a copy: changing it changes nothing kept
    log[3].v.res.status = "changed"
    assert.equal("completed", s:log("c-1")[3].v.res.status)
    assert.same({}, s:log("c-2"))
    s:drop("c-1")
    assert.same({}, s:log("c-1"))
  end)

  it("keeps events as text too for a bot that keeps no call between events (shared = true)", function()
    local s = storemod.memory { text = true }
    local ev = { kind = "call", state = "established", fingerprint = 115119524685643 }
    s:append("c-1", { k = "ev", ev = ev, t = 2 })
    ev.state = "changed after"                   -- nothing of the caller's table is kept
    local log = s:log("c-1")
    assert.are_not.equal(ev, log[1].ev)
    assert.same({ k = "ev", t = 2, ev = { kind = "call", state = "established", fingerprint = 115119524685643 } },
                log[1])
  end)

  it("packs a call's log when its flow is let go of (idle), in a third of its JSON, read back as it was", function()
    for _, text in ipairs { true, false } do
      local s = storemod.memory { text = text }
      local log = {}
      -- (a call through examples/ivr.lua against the emulator, as bench/flows.lua drives it)
      for line in io.lines("spec/logs/ivr.jsonl") do
        local e = graphcall.decode(line)
        log[#log + 1] = e
        s:append("c-1", e)
        if #log == 10 then s:idle("c-1") end   -- let go of at the menu, then brought back
      end
      assert.is_true(#log > 30)
      assert.same(log, s:log("c-1"))
      s:idle("c-1")
      -- what the store holds of the call: one string, a third of the entries' JSON or less
      local json = 0
      for _, e in ipairs(log) do json = json + #storemod.json(e) + 1 end
      local held, tail
      for i = 1, 10 do
        local name, v = debug.getupvalue(s.log, i)
        if name == "packed" then held = v["c-1"] end
        if name == "logs" then tail = v["c-1"] end
      end
      assert.equal("string", type(held))
      assert.is_nil(tail)
      assert.is_true(#held <= json / 3, #held .. " bytes held for " .. json .. " of JSON")
      assert.same(log, s:log("c-1"))   -- reading leaves it as it was
      s:append("c-1", { k = "note", t = 1, text = "after a read" })
      assert.equal("after a read", s:log("c-1")[#log + 1].text)
      assert.same({ "c-1" }, s:calls())
      s:drop("c-1")
      assert.same({}, s:log("c-1"))
      assert.same({}, s:calls())
    end
  end)

  it("packs any text and appends to it, and refuses what is not a packed text", function()
    local core = require "graphcall.core"
    local p
    local all = {}
    for i = 1, 300 do   -- repeats, bytes of every value, a block far past 64 KB back
      local t = (i % 7 == 0) and string.rep(string.char(i % 256), i * 37) or ("entry " .. i .. string.char(i % 256))
      all[#all + 1] = t
      p = core.pack(t, p)
    end
    assert.equal(table.concat(all), core.unpack(p))
    assert.equal("", core.unpack(core.pack("")))
    for _, bad in ipairs { "", "x", p:sub(1, #p - 1), "\1\5\2\16\0", "\1\200" } do
      local ok, err = core.unpack(bad)
      assert.is_nil(ok)
      assert.is_string(err)
    end
    assert.has_error(function() core.pack("more", "not packed") end)
  end)

  it("is what a bot with shared = true keeps its calls in, as text", function()
    local bot = assert(graphcall.bot { shared = true, client = graphcall.client { tenantId = "t", clientId = "c",
                                                                                    clientSecret = "s" } })
    local ev = { kind = "call", state = "established" }
    bot.store:append("c-1", { k = "ev", ev = ev, t = 1 })
    assert.are_not.equal(ev, bot.store:log("c-1")[1].ev)
    bot:close()
  end)
end)
