local cjson = require "cjson"
local graphcall = require "graphcall"
local tracker = require "graphcall.tracker"
local H = require "helper"

local function events(rel) return assert(graphcall.parse_notifications(H.fixture(rel))) end

local function call_event(id, state, extra)
  local rd = { ["@odata.type"] = "#microsoft.graph.call", state = state }
  for k, v in pairs(extra or {}) do rd[k] = v end
  local change = state == "terminated" and "deleted" or "updated"
  return assert(graphcall.parse_notifications(cjson.encode { value = {
    { changeType = change, resourceUrl = "/communications/calls/" .. id, resourceData = rd } } }))[1]
end

local function delta(id, seq, participants)
  local ps = {}
  for i, p in ipairs(participants) do
    ps[i] = { ["@odata.type"] = "#microsoft.graph.participant", id = p[1], rosterSequenceNumber = p[2],
              removedState = p[3] and { reason = "Removed from roster" } or nil }
  end
  return assert(graphcall.parse_notifications(cjson.encode { value = {
    { changeType = "updated", resourceUrl = "/communications/calls/" .. id .. "/participants",
      resourceData = { { ["@odata.type"] = "#microsoft.graph.deltaParticipants", sequenceNumber = seq,
                         participants = ps } } } } }))[1]
end

describe("tracker", function()
  local t
  before_each(function() t = tracker.new() end)

  it("dispatches a repeated notification once", function()
    local seen = {}
    local body = H.fixture("graph/notify-call-established.json")
    for _ = 1, 3 do
      t:dispatch(assert(graphcall.parse_notifications(body)), function(ev) seen[#seen + 1] = ev end)
    end
    assert.equal(1, #seen)
    local ok, why = t:accept(events("graph/notify-call-established.json")[1])
    assert.is_false(ok)
    assert.equal("duplicate", why)
  end)

  it("never moves call state backwards: a late establishing changes nothing", function()
    assert.is_true(t:accept(call_event("c1", "established")))
    local ok, why = t:accept(call_event("c1", "establishing"))
    assert.is_false(ok)
    assert.equal("stale", why)
    assert.equal("established", t:call("c1").state)
  end)

  it("takes establishing then established in order too", function()
    assert.is_true(t:accept(call_event("c1", "establishing")))
    assert.is_true(t:accept(call_event("c1", "established")))
    assert.equal("established", t:call("c1").state)
  end)

  it("moves freely inside the established phase (hold, transfer failure)", function()
    t:accept(call_event("c1", "established"))
    assert.is_true(t:accept(call_event("c1", "transferring")))
    assert.is_true(t:accept(call_event("c1", "established", { resultInfo = { code = 500, subCode = 7000 } })))
    assert.equal("established", t:call("c1").state)
  end)

  it("makes terminated final", function()
    t:accept(call_event("c1", "established"))
    assert.is_true(t:accept(call_event("c1", "terminated")))
    local ok, why = t:accept(call_event("c1", "established", { subject = "late" }))
    assert.is_false(ok)
    assert.equal("final", why)
    assert.equal("terminated", t:call("c1").state)
  end)

  it("treats a deleted call as terminated even without a state", function()
    local ev = events("graph/notify-call-deleted-after-reject.json")[1]
    assert.is_true(t:accept(ev))
    assert.equal("terminated", t:call(ev.callId).state)
  end)

  it("drops a repeated tone but keeps each new one, even out of order", function()
    local function tone(seq, key)
      return call_event("c1", "established", { toneInfo = { sequenceId = seq, tone = key } })
    end
    t:accept(call_event("c1", "established"))
    assert.is_true(t:accept(tone(2, "tone2")))
    assert.is_true(t:accept(tone(1, "tone1")))   -- late, but news
    local ok, why = t:accept(tone(2, "tone2"))
    assert.is_false(ok)
    assert.equal("duplicate", why)
  end)

  it("tells a repeated key press by its sequenceId, with no fingerprint remembered for it", function()
    local t2 = tracker.new { dedup = 4 }
    local first = call_event("c2", "established")
    assert.is_true(t2:accept(first))
    local presses = {}
    for seq = 1, 20 do
      presses[seq] = call_event("c2", "established", { toneInfo = { sequenceId = seq, tone = "tone1" } })
      assert.is_true(t2:accept(presses[seq]))
    end
    local st = t2:call("c2")
    local n = 0
    for _ in pairs(st.fpnew) do n = n + 1 end
    assert.equal(1, n)                                      -- the first event's alone
    assert.is_false(t2:accept(first))                       -- still known after 20 key presses
    for seq = 1, 20 do
      local ok, why = t2:accept(presses[seq])             -- the same text again
      assert.is_false(ok)
      assert.equal("duplicate", why)
    end
    -- a toneInfo without a sequenceId has only its fingerprint to tell a repeat by
    local bare = call_event("c2", "established", { toneInfo = { tone = "tone9" } })
    assert.is_true(t2:accept(bare))
    assert.is_false(t2:accept(bare))
  end)

  it("applies delta rosters by sequenceNumber and ignores stale ones", function()
    assert.is_true(t:accept(delta("m1", 1, { { "a", 1 }, { "b", 1 } })))
    assert.is_true(t:accept(delta("m1", 2, { { "b", 2, true } })))
    local ok, why = t:accept(delta("m1", 2, { { "c", 2 } }))   -- same seq, other content
    assert.is_false(ok)
    assert.equal("stale", why)
    ok, why = t:accept(delta("m1", 1, { { "a", 1, true } }))
    assert.is_false(ok)
    assert.equal("stale", why)
    local roster = t:call("m1").roster
    assert.is_nil(roster.a.removed)
    assert.is_true(roster.b.removed)
    assert.is_nil(roster.c)
  end)

  it("reports a gap so the app can refetch the participants", function()
    t:accept(delta("m1", 1, { { "a", 1 } }))
    local ev = delta("m1", 4, { { "d", 4 } })
    assert.is_true(t:accept(ev))
    assert.same({ from = 2, to = 3 }, ev.gap)
    assert.equal(4, t:call("m1").rosterSeq)
    local next_ev = delta("m1", 5, { { "e", 5 } })
    t:accept(next_ev)
    assert.is_nil(next_ev.gap)
  end)

  it("replaces the roster on a full roster", function()
    t:accept(delta("m1", 1, { { "a", 1 }, { "b", 1 } }))
    local full = events("seed/ex05-join-meeting-service-media/notify-3-roster-full.json")[1]
    assert.is_true(t:accept(full))
    local roster = t:call(full.callId).roster
    for _, p in ipairs(full.participants) do assert.is_table(roster[p.id]) end
  end)

  it("applies a full roster that returns to an earlier one, drops one that repeats the last", function()
    local function full(ids)
      local ps = {}
      for i, pid in ipairs(ids) do ps[i] = { ["@odata.type"] = "#microsoft.graph.participant", id = pid } end
      return assert(graphcall.parse_notifications(cjson.encode { value = { { changeType = "updated",
        resourceUrl = "/communications/calls/m2/participants", resourceData = ps } } }))[1]
    end
    assert.is_true(t:accept(full { "bot", "alice" }))
    assert.is_true(t:accept(full { "bot", "alice", "bob" }))
    assert.is_true(t:accept(full { "bot", "alice" }))        -- bob left: the same text as before
    assert.is_nil(t:call("m2").roster.bob)
    local ok, why = t:accept(full { "bot", "alice" })         -- delivered twice
    assert.is_false(ok)
    assert.equal("duplicate", why)
  end)

  it("applies the fixture delta roster", function()
    local ev = events("graph/notify-roster-delta.json")[1]
    assert.is_true(t:accept(ev))
    local st = t:call(ev.callId)
    assert.equal(7, st.rosterSeq)
    assert.is_true(st.roster["3f0e9a11-0000-4c2b-8d7e-6a5b4c3d2e1f"].removed)
  end)

  it("tracks operations by id and clientContext until completed or failed", function()
    local ev = events("graph/notify-playprompt-completed.json")[1]
    t:expect(ev.callId, { id = ev.operationId, clientContext = ev.clientContext, status = "running" })
    assert.equal("running", t:operation(ev.callId, ev.clientContext).status)
    assert.is_true(t:accept(ev))
    assert.equal("completed", t:operation(ev.callId, ev.operationId).status)
    assert.equal("completed", t:operation(ev.callId, ev.clientContext).status)
    -- a second completion of the same operation, in another text, is not news
    local again = events("graph/notify-playprompt-failed.json")[1]
    local ok, why = t:accept(again)
    assert.is_false(ok)
    assert.equal("final", why)
  end)

  it("uses the store interface it is given", function()
    local gets, puts = 0, 0
    local mem = tracker.memory_store()
    local store = {
      get = function(_, id) gets = gets + 1; return mem:get(id) end,
      put = function(_, id, st) puts = puts + 1; mem:put(id, st) end,
    }
    local t2 = tracker.new { store = store }
    t2:accept(call_event("c1", "established"))
    assert.equal(1, gets)
    assert.equal(1, puts)
    assert.equal("established", mem:get("c1").state)
  end)

  it("keeps no field for what a call has not had yet (a key press, a roster, an operation)", function()
    local mem = tracker.memory_store()
    local t5 = tracker.new { store = mem }
    assert.is_true((t5:accept(call_event("lean", "established"))))
    local st = mem:get("lean")
    assert.is_nil(st.tones)
    assert.is_nil(st.roster)
    assert.is_nil(st.ops)
    assert.is_nil(st.contexts)
    local fields = 0
    for _ in pairs(st) do fields = fields + 1 end
    assert.is_true(fields <= 4, fields .. " fields")
    assert.same({}, t5:call("lean").roster)          -- read as an empty roster
    assert.is_nil(t5:operation("lean", "op-1"))
    t5:expect("lean", { id = "op-1", clientContext = "ctx-1", status = "running" })
    assert.equal("running", t5:operation("lean", "ctx-1").status)
    assert.equal("string", type(mem:get("lean").ops["op-1"]))   -- an operation's record: one string
    assert.same({ id = "op-1", clientContext = "ctx-1", status = "running" }, t5:operation("lean", "op-1"))
    -- a record an earlier version wrote (a table) is read as it was
    mem:put("old-op", { state = "established", ring = " ", ringn = 0, contexts = { ["c|9"] = "op-9" },
      ops = { ["op-9"] = { id = "op-9", status = "completed", clientContext = "c|9", operationType = "playPrompt" } } })
    assert.same({ id = "op-9", status = "completed", clientContext = "c|9", operationType = "playPrompt" },
                t5:operation("old-op", "c|9"))
    assert.is_true((t5:accept(call_event("lean", "established", { toneInfo = { tone = "tone1", sequenceId = 1 } }))))
    assert.equal(64, #mem:get("lean").tones)
  end)

  it("remembers the last 64 tone sequenceIds of a call, and takes older ones for repeats", function()
    local function tone(seq)
      return call_event("c9", "established", { toneInfo = { tone = "tone1", sequenceId = seq } })
    end
    for seq = 1, 1000 do assert.is_true((t:accept(tone(seq)))) end
    assert.equal(64, #t:call("c9").tones)          -- one character a sequenceId, the newest last
    assert.equal(1000, t:call("c9").maxTone)
    assert.is_false((t:accept(tone(1000))))
    assert.is_false((t:accept(tone(950))))
    assert.is_false((t:accept(tone(900))))       -- older than the window: a repeat
    assert.is_true((t:accept(tone(1001))))
  end)

  it("goes on from a state an earlier version wrote (its ring and tones were tables)", function()
    local first = call_event("old", "established", { n = 1 })
    local mem = tracker.memory_store()
    mem:put("old", { ring = { string.format("%.0f", first.fingerprint) }, ringpos = 1, tones = { ["5"] = true,
      ["7"] = true }, ntones = 2, maxTone = 7, roster = {}, ops = {}, contexts = {}, state = "established" })
    local t4 = tracker.new { store = mem }
    local function tone(seq)
      return call_event("old", "established", { toneInfo = { tone = "tone1", sequenceId = seq } })
    end
    assert.is_false((t4:accept(call_event("old", "established", { n = 1 }))))   -- its fingerprint is known
    assert.is_false((t4:accept(tone(7))))
    assert.is_false((t4:accept(tone(5))))
    assert.is_true((t4:accept(tone(6))))
    assert.is_true((t4:accept(tone(8))))
    assert.equal("string", type(mem:get("old").tones))
    assert.is_true(mem:get("old").fpnew[first.fingerprint])   -- in memory: a set of numbers
  end)

  it("holds a waiting call's state as text (idle) and goes on from it at the call's next event", function()
    local mem = tracker.memory_store(graphcall.json, graphcall.decode)
    local t6 = tracker.new { store = mem, dedup = 4 }
    local evs = {}
    for i = 1, 6 do evs[i] = call_event("w1", "established", { n = i }) end
    for i = 1, 6 do assert.is_true((t6:accept(evs[i]))) end
    assert.is_true((t6:accept(call_event("w1", "established", { toneInfo = { tone = "tone1", sequenceId = 3 } }))))
    t6:expect("w1", { id = "op-1", clientContext = "ctx-1", status = "running", operationType = "playPrompt" })
    mem:idle("w1")
    mem:idle("nobody")                                   -- (no state: nothing to do)
    local raw
    for i = 1, 9 do
      local name, v = debug.getupvalue(mem.get, i)
      if name == "calls" then raw = v end
    end
    assert.equal("string", type(raw.w1))
    assert.is_nil(raw.nobody)
    assert.is_nil(raw.w1:find("fpnew", 1, true))         -- the sets of numbers as one ring of text
    -- everything known before is known after
    for i = 1, 6 do assert.is_false((t6:accept(evs[i])), "event " .. i) end
    assert.is_false((t6:accept(call_event("w1", "established", { toneInfo = { tone = "tone1", sequenceId = 3 } }))))
    assert.is_true((t6:accept(call_event("w1", "established", { toneInfo = { tone = "tone1", sequenceId = 4 } }))))
    assert.same({ id = "op-1", clientContext = "ctx-1", status = "running", operationType = "playPrompt" },
                t6:operation("w1", "ctx-1"))
    assert.equal("established", t6:call("w1").state)
    assert.equal("table", type(raw.w1))                   -- a table again from its next event
    assert.is_true(mem:get("w1").fpn ~= nil)
    -- without a writer, idle keeps the table
    local plain = tracker.memory_store()
    plain:put("x", { state = "established" })
    plain:idle("x")
    assert.same({ state = "established" }, plain:get("x"))
  end)

  it("remembers a bounded number of fingerprints per call: the last dedup at least, twice that at most", function()
    local t3 = tracker.new { dedup = 4 }
    local evs = {}
    for i = 1, 13 do evs[i] = call_event("c1", "established", { n = i }) end
    local function count(set)
      local n = 0
      for _ in pairs(set or {}) do n = n + 1 end
      return n
    end
    for i = 1, 6 do assert.is_true(t3:accept(evs[i])) end
    local st = t3:call("c1")
    assert.equal(6, count(st.fpnew) + count(st.fpold))
    for i = 1, 6 do assert.is_false(t3:accept(evs[i])) end   -- all six still known
    for i = 7, 9 do assert.is_true(t3:accept(evs[i])) end
    assert.equal(5, count(st.fpnew) + count(st.fpold))     -- the last 4, and the one after them
    for i = 5, 9 do assert.is_false(t3:accept(evs[i])) end
    assert.is_true(t3:accept(evs[2]))     -- let go: taken for news again
    assert.is_false(t3:accept(evs[2]))
    for i = 10, 13 do assert.is_true(t3:accept(evs[i])) end
    for i = 10, 13 do assert.is_false(t3:accept(evs[i])) end   -- never fewer than the last 4
    assert.is_true(count(st.fpnew) + count(st.fpold) <= 8)
  end)
end)

-- nginx's shared dict and Redis keep the state as JSON text: every get is a fresh decode
describe("tracker with a store that keeps the state as JSON", function()
  local text = {}
  local t
  before_each(function()
    text = {}
    t = tracker.new { store = {
      get = function(_, id) return text[id] and cjson.decode(text[id]) end,
      put = function(_, id, st) text[id] = cjson.encode(st) end,   -- raises if it cannot
    } }
  end)

  local function tone(id, seq)
    return call_event(id, "established", { toneInfo = { tone = "tone1", sequenceId = seq } })
  end

  it("takes tones out of order and drops repeats, with any sequenceId", function()
    for _, seq in ipairs { 1, 3, 2, 123456789, 9007199254740991 } do
      assert.is_true((t:accept(tone("c1", seq))), "sequenceId " .. seq)
    end
    for _, seq in ipairs { 3, 2, 123456789, 9007199254740991 } do
      assert.is_false((t:accept(tone("c1", seq))), "sequenceId " .. seq)
    end
  end)

  it("keeps the fingerprints apart from the JSON when the store splits them, and reads them back", function()
    local texts, rings = {}, {}
    local t2 = tracker.new { store = tracker.text_store(function(id) return texts[id], rings[id] end,
      function(id, body, ring) texts[id], rings[id] = body, ring end, cjson.encode, cjson.decode, true) }
    local ev = call_event("c9", "established", { n = 1 })
    assert.is_true((t2:accept(ev)))
    assert.is_nil(texts.c9:find('"ring"', 1, true))
    assert.truthy(rings.c9:find(string.format(" %.0f ", ev.fingerprint), 1, true))
    assert.is_false((t2:accept(call_event("c9", "established", { n = 1 }))))
  end)

  it("drops a repeated notification after its fingerprint went through JSON", function()
    local ev = call_event("c2", "established", { n = 1 })
    assert.is_true((t:accept(ev)))
    local again = call_event("c2", "established", { n = 1 })
    local ok, why = t:accept(again)
    assert.is_false(ok)
    assert.equal("duplicate", why)
  end)

  it("keeps rosters and operations", function()
    assert.is_true((t:accept(delta("c3", 1, { { "p1", 1 } }))))
    assert.is_true((t:accept(delta("c3", 2, { { "p2", 2 } }))))
    assert.is_false((t:accept(delta("c3", 1, { { "p1", 1 } }))))
    assert.is_table(t:call("c3").roster.p2)
  end)
end)

