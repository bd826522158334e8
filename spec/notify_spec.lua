local cjson = require "cjson"
local graphcall = require "graphcall"
local H = require "helper"

local CALL = "491f0b00-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
local OP = "0fe0623f-d628-42ed-b4bd-8ac290072cc5"

local function parse(text, opts)
  local evs, err = graphcall.parse_notifications(text, opts)
  assert(evs, err and tostring(err))
  return evs
end

local function one(rel)
  local evs = parse(H.fixture(rel))
  assert.equal(1, #evs)
  return evs[1]
end

-- the expected normalized fields of every notification fixture (subset match)
local expect = {
  ["graph/notify-call-establishing.json"] = { kind = "call", changeType = "updated", callId = CALL,
                                              state = "establishing" },
  ["graph/notify-call-established.json"] = { kind = "call", changeType = "updated", callId = CALL,
                                             state = "established" },
  ["graph/notify-call-terminating.json"] = { kind = "call", state = "terminating" },
  ["graph/notify-call-terminated.json"] = { kind = "call", changeType = "deleted", state = "terminated",
    resultInfo = { code = 200, subcode = 5001 } },
  ["graph/notify-call-terminated-keepalive-timeout.json"] = { kind = "call", changeType = "deleted",
    state = "terminated", resultInfo = { code = 408, subcode = 8537 } },
  ["graph/notify-call-deleted-after-reject.json"] = { kind = "call", changeType = "deleted", callId = CALL },
  ["graph/notify-redirect-terminated.json"] = { kind = "call", changeType = "deleted", state = "terminated" },
  ["graph/notify-incoming-call.json"] = { kind = "call", changeType = "created", state = "incoming",
    incoming = true, direction = "incoming", callId = CALL },
  ["graph/notify-incoming-call-pstn.json"] = { kind = "call", state = "incoming", incoming = true },
  ["graph/notify-incoming-call-policy-recording.json"] = { kind = "call", state = "incoming", incoming = true },
  ["graph/notify-tone-received.json"] = { kind = "call", state = "established",
    toneInfo = { tone = "tone5", sequenceId = 3 } },
  ["graph/notify-transferring.json"] = { kind = "call", state = "transferring" },
  ["graph/notify-transfer-accepted.json"] = { kind = "call", state = "transferAccepted" },
  ["graph/notify-transfer-completed.json"] = { kind = "call", changeType = "deleted", state = "terminated",
    resultInfo = { code = 0, subcode = 7015, message = "GracefulTransferCompleted" } },
  ["graph/notify-transfer-failed.json"] = { kind = "call", state = "established",
    resultInfo = { code = 500, subcode = 7000 } },
  ["graph/notify-playprompt-completed.json"] = { kind = "operation", changeType = "deleted", callId = CALL,
    operationId = OP, operationType = "playPrompt", status = "completed",
    resultInfo = { code = 200, subcode = 0, message = "Action completed successfully." } },
  ["graph/notify-playprompt-failed.json"] = { kind = "operation", operationType = "playPrompt",
    status = "failed", resultInfo = { code = 400, subcode = 8508 } },
  ["graph/notify-recordresponse-completed.json"] = { kind = "operation", operationType = "recordResponse",
    status = "completed", resultInfo = { code = 200, subcode = 8515 } },
  ["graph/notify-recordresponse-cancelled.json"] = { kind = "operation", operationType = "recordResponse",
    status = "failed" },
  ["graph/notify-holdmusic-completed.json"] = { kind = "operation", operationType = "startHoldMusic",
    status = "completed", operationId = OP, callId = CALL },
  ["graph/notify-invite-completed.json"] = { kind = "operation", operationType = "invite", status = "completed" },
  ["graph/notify-senddtmftones-completed.json"] = { kind = "operation", operationType = "sendDtmfTones",
    status = "completed" },
  ["graph/notify-content-sharing-started.json"] = { kind = "contentSharing", changeType = "created", callId = CALL },
  ["graph/notify-roster-updated.json"] = { kind = "participants", callId = CALL },
  ["graph/notify-screensharing-roster.json"] = { kind = "participants" },
  ["graph/notify-roster-delta.json"] = { kind = "participants", delta = true, sequenceNumber = 7 },
}
for _, ex in ipairs(H.seeds) do
  for _, name in ipairs { "notify-1-establishing.json", "notify-2-established.json" } do
    expect["seed/" .. ex .. "/" .. name] = { kind = "call", state = name:match("establish%w*") }
  end
end
local ex01 = "seed/ex01-p2p-voip-service-media/"
expect[ex01 .. "notify-3-content-sharing-started.json"] = { kind = "contentSharing", changeType = "created" }
expect[ex01 .. "notify-4-content-sharing-updated.json"] = { kind = "contentSharing", changeType = "updated" }
expect[ex01 .. "notify-5-content-sharing-ended.json"] = { kind = "contentSharing", changeType = "deleted" }
local ex05 = "seed/ex05-join-meeting-service-media/"
expect[ex05 .. "notify-3-roster-full.json"] = { kind = "participants" }
expect[ex05 .. "notify-4-roster-delta.json"] = { kind = "participants", delta = true }

local function subset(want, got, path)
  for k, v in pairs(want) do
    if type(v) == "table" then
      assert.is_table(got[k], path .. "." .. k)
      subset(v, got[k], path .. "." .. k)
    else
      assert.equal(v, got[k], path .. "." .. k)
    end
  end
end

describe("parse_notifications() on every fixture", function()
  local files = {}
  for _, dir in ipairs { "graph" } do
    local p = io.popen('ls "' .. H.fixtures .. '/' .. dir .. '"')
    for f in p:lines() do if f:match("^notify%-") then files[#files + 1] = dir .. "/" .. f end end
    p:close()
  end
  for _, ex in ipairs(H.seeds) do
    local p = io.popen('ls "' .. H.fixtures .. '/seed/' .. ex .. '"')
    for f in p:lines() do if f:match("^notify%-") then files[#files + 1] = "seed/" .. ex .. "/" .. f end end
    p:close()
  end

  it("finds every fixture and has expectations for each", function()
    assert.is_true(#files >= 35)
    for _, f in ipairs(files) do assert.is_table(expect[f], "no expectation for " .. f) end
  end)

  for _, f in ipairs(files) do
    it(f, function()
      local text = H.fixture(f)
      local ev = one(f)
      subset(expect[f] or {}, ev, f)
      local raw = cjson.decode(text).value[1]
      assert.equal(raw.resourceUrl, ev.resourceUrl)
      assert.equal(raw.resource, ev.resource)
      assert.is_number(ev.fingerprint)
      assert.is_true(ev.fingerprint >= 0 and ev.fingerprint < 2 ^ 53)
      -- data keeps every property of resourceData
      assert.same(raw.resourceData, ev.data)
      if ev.kind ~= "unknown" then assert.truthy(ev.callId) end
    end)
  end
end)

describe("notification details", function()
  it("gives an incoming call what answering needs", function()
    local ev = one("graph/notify-incoming-call.json")
    assert.is_true(ev.incoming)
    assert.equal(CALL, ev.callId)
    assert.truthy(ev.tenantId)
    assert.is_table(ev.data.source)
    assert.is_table(ev.data.targets)
  end)

  it("reads a delta roster: participants, rosterSequenceNumber, removed", function()
    local ev = one("graph/notify-roster-delta.json")
    assert.equal(2, #ev.participants)
    local a, b = ev.participants[1], ev.participants[2]
    assert.equal("2765eb15-01f8-47c6-b12b-c32111a4a86f", a.id)
    assert.equal(7, a.rosterSequenceNumber)
    assert.is_false(a.removed)
    assert.is_true(b.removed)
    -- the rest of a participant is built on first access
    assert.equal("Caller Name", a.info.identity.user.displayName)
    assert.equal("Removed from roster", b.removedState.reason)
  end)

  it("reads a full roster as participants with ids", function()
    local ev = one("seed/ex05-join-meeting-service-media/notify-3-roster-full.json")
    local raw = cjson.decode(H.fixture("seed/ex05-join-meeting-service-media/notify-3-roster-full.json"))
    assert.is_nil(ev.delta)
    assert.equal(#raw.value[1].resourceData, #ev.participants)
    for i, p in ipairs(ev.participants) do
      assert.equal(raw.value[1].resourceData[i].id, p.id)
      graphcall.materialize(p)
      assert.is_nil(rawget(p, "__tok"))
      assert.same(raw.value[1].resourceData[i].mediaStreams, p.mediaStreams)
    end
  end)

  it("builds the whole roster in one pass once a second participant is read", function()
    local roster = cjson.decode(H.fixture("graph/notify-roster-updated.json"))
    local data = roster.value[1].resourceData
    local proto = data[1]
    for i = 1, 5 do   -- five participants of the fixture's shape, ids and mute apart
      local p = cjson.decode(cjson.encode(proto))
      p.id, p.isMuted = "p" .. i, i % 2 == 0
      data[i] = p
    end
    local ev = parse(cjson.encode(roster))[1]
    local ps = ev.participants
    rawset(ps[4], "info", "set by the handler")
    assert.equal(proto.info.identity.user.displayName, ps[1].info.identity.user.displayName)
    assert.is_nil(getmetatable(ps[1]))
    for i = 2, 5 do assert.is_table(getmetatable(ps[i]), "still lazy: " .. i) end
    assert.is_true(ps[2].isMuted)                   -- the second: every one built
    for i = 1, 5 do
      local p = ps[i]
      assert.is_nil(getmetatable(p), "built: " .. i)
      assert.equal("p" .. i, rawget(p, "id"))
      assert.equal(i % 2 == 0, rawget(p, "isMuted"))
      assert.same(proto.mediaStreams, rawget(p, "mediaStreams"))
    end
    assert.equal("set by the handler", ps[4].info)  -- a handler's own value is kept
    assert.is_nil(rawget(ev, "data"))               -- the event's data is another lazy part
    assert.equal(5, #ev.data)
  end)

  it("refuses core.decode_into ranges outside the text", function()
    local core = require "graphcall.core"
    local t = {}
    assert.is_true(core.decode_into('{"a":1,"b":[2]}', { t, 0, 15 }))
    assert.same({ a = 1, b = { 2 } }, t)
    assert.has_error(function() core.decode_into("{}", { t, 1, 5 }) end,
      "bad argument #2 to 'decode_into' ((table, offset, length) triples within the text expected)")
    assert.has_error(function() core.decode_into("{}", { "x", 0, 2 }) end)
    local ok, err = core.decode_into('{"a":}', { {}, 0, 6 })
    assert.is_nil(ok)
    assert.equal("json", err.code)
  end)

  it("keeps an operation type's own fields", function()
    local ev = one("graph/notify-recordresponse-completed.json")
    assert.matches("^https://", ev.recordingLocation)
    assert.truthy(ev.recordingAccessToken)
    assert.truthy(ev.clientContext)
  end)

  it("reads content sharing sessions", function()
    local ev = one("seed/ex01-p2p-voip-service-media/notify-3-content-sharing-started.json")
    assert.equal(1, #ev.sessions)
    assert.truthy(ev.sessions[1].id)
  end)
end)

local function body(notifs)
  return cjson.encode { value = notifs }
end

describe("leniency the service forces", function()
  it("accepts resourceData as an object or as an array", function()
    local obj = parse(body { { changeType = "updated", resourceUrl = "/communications/calls/c1",
      resourceData = { ["@odata.type"] = "#microsoft.graph.call", state = "established" } } })[1]
    local arr = parse(body { { changeType = "updated", resourceUrl = "/communications/calls/c1",
      resourceData = { { ["@odata.type"] = "#microsoft.graph.call", state = "established" } } } })[1]
    assert.equal("established", obj.state)
    assert.equal("established", arr.state)
    -- a call (or an operation) is the resource itself, wrapped or not
    assert.equal("established", obj.data.state)
    assert.equal("established", arr.data.state)
    assert.is_nil(arr.data[1])
  end)

  it("gives an operation wrapped in an array as the operation itself", function()
    local ev = parse(body { { changeType = "deleted", resourceUrl = "/communications/calls/c1/operations/o1",
      resourceData = { { ["@odata.type"] = "#microsoft.graph.recordOperation", status = "completed",
                         recordingLocation = "https://x/rec.wav" } } } })[1]
    assert.equal("https://x/rec.wav", ev.recordingLocation)
    assert.equal("https://x/rec.wav", ev.data.recordingLocation)
  end)

  it("keeps a roster or a sharing session list as the array it is", function()
    local raw = H.json_fixture("graph/notify-roster-updated.json")
    local ev = parse(H.fixture("graph/notify-roster-updated.json"))[1]
    assert.equal(#raw.value[1].resourceData, #ev.data)
    local cs = parse(H.fixture("seed/ex01-p2p-voip-service-media/notify-3-content-sharing-started.json"))[1]
    assert.is_table(cs.data[1])
  end)

  it("accepts URLs without the leading slash, under /app/calls, and in full", function()
    for _, url in ipairs { "communications/calls/c1/operations/o1", "/app/calls/c1/operations/o1",
                           "https://graph.microsoft.com/v1.0/communications/calls/c1/operations/o1" } do
      local ev = parse(body { { changeType = "deleted", resourceUrl = url,
        resourceData = { ["@odata.type"] = "#microsoft.graph.playPromptOperation", status = "completed" } } })[1]
      assert.equal("operation", ev.kind, url)
      assert.equal("c1", ev.callId, url)
      assert.equal("o1", ev.operationId, url)
    end
  end)

  it("takes the legacy resource when resourceUrl is missing", function()
    local ev = parse(body { { changeType = "updated", resource = "/app/calls/c9/participants",
      resourceData = {} } })[1]
    assert.equal("participants", ev.kind)
    assert.equal("c9", ev.callId)
    assert.equal("/app/calls/c9/participants", ev.resourceUrl)
  end)

  it("normalizes operation status from any case", function()
    for raw, want in pairs { Running = "running", running = "running", NotStarted = "notStarted",
                             COMPLETED = "completed", Failed = "failed" } do
      local ev = parse(body { { changeType = "updated", resourceUrl = "/communications/calls/c/operations/o",
        resourceData = { ["@odata.type"] = "#microsoft.graph.inviteParticipantsOperation", status = raw } } })[1]
      assert.equal(want, ev.status, raw)
    end
  end)

  it("reads subcode and subCode, numbers and numeric strings", function()
    local text = [[{"value":[{"changeType":"deleted","resourceUrl":"/communications/calls/c",
      "resourceData":{"state":"terminated","resultInfo":{"code":"200","subcode":"5001","message":"m"}}},
      {"changeType":"updated","resourceUrl":"/communications/calls/c",
      "resourceData":{"state":"established","resultInfo":{"code":500,"subCode":7000}}}]}]]
    local evs = parse(text)
    assert.same({ code = 200, subcode = 5001, message = "m" }, evs[1].resultInfo)
    assert.same({ code = 500, subcode = 7000 }, evs[2].resultInfo)
    if math.type then assert.equal("integer", math.type(evs[1].resultInfo.code)) end
  end)

  it("reads several notifications from one POST, in order", function()
    local evs = parse(body {
      { changeType = "updated", resourceUrl = "/communications/calls/a", resourceData = { state = "establishing" } },
      { changeType = "updated", resourceUrl = "/communications/calls/a", resourceData = { state = "established" } },
      { changeType = "updated", resourceUrl = "/communications/calls/b/participants", resourceData = {} },
    })
    assert.equal(3, #evs)
    assert.equal("establishing", evs[1].state)
    assert.equal("established", evs[2].state)
    assert.equal("participants", evs[3].kind)
    assert.are_not.equal(evs[1].fingerprint, evs[2].fingerprint)
  end)

  it("calls what it cannot place 'unknown' and keeps its data", function()
    local ev = parse(body { { changeType = "updated", resourceUrl = "/communications/somethingNew/x",
      resourceData = { a = 1 } } })[1]
    assert.equal("unknown", ev.kind)
    assert.same({ a = 1 }, ev.data)
  end)

  it("gives the same fingerprint to the same notification in another batch", function()
    local n = { changeType = "updated", resourceUrl = "/communications/calls/a",
                resourceData = { state = "established" } }
    local text = cjson.encode(n)
    local alone = parse('{"value":[' .. text .. ']}')[1]
    local batched = parse('{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/z"},\n  '
      .. text .. '  ]}')[2]
    assert.equal(alone.fingerprint, batched.fingerprint)
  end)
end)

describe("hostile bodies", function()
  local cases = {
    truncated = '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a"',
    ["invalid JSON"] = '{"value":[}',
    ["not an object"] = '[1,2]',
    ["no value"] = '{"values":[]}',
    ["value not an array"] = '{"value":{}}',
    ["notification not an object"] = '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a"}, 5]}',
    ["changeType not a string"] = '{"value":[{"changeType":1,"resourceUrl":"/communications/calls/a"}]}',
    ["no resourceUrl"] = '{"value":[{"changeType":"updated"}]}',
    ["resourceUrl not a string"] = '{"value":[{"changeType":"updated","resourceUrl":{}}]}',
    ["resourceData a string"] =
      '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":"x"}]}',
    ["invalid UTF-8"] = '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/\xff"}]}',
  }
  for what, text in pairs(cases) do
    it("rejects a body that is " .. what .. ", whole", function()
      local evs, err = graphcall.parse_notifications(text)
      assert.is_nil(evs)
      assert.is_table(err)
      assert.truthy(err.code == "json" or err.code == "notification")
      assert.truthy(#err.message > 0)
    end)
  end

  it("limits nesting depth", function()
    local deep = '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":{"x":'
      .. string.rep("[", 100) .. string.rep("]", 100) .. '}}]}'
    local evs, err = graphcall.parse_notifications(deep)
    assert.is_nil(evs)
    assert.matches("deep", err.message)
    assert.truthy(graphcall.parse_notifications(deep, { max_depth = 200 }))
  end)

  it("limits size, 4 MiB by default", function()
    local pad = string.rep(" ", 4 * 1024 * 1024)
    local evs, err = graphcall.parse_notifications('{"value":[]}' .. pad)
    assert.is_nil(evs)
    assert.matches("too large", err.message)
    evs, err = graphcall.parse_notifications('{"value":[]}', { max_size = 5 })
    assert.is_nil(evs)
    assert.matches("too large", err.message)
  end)

  it("limits the number of notifications in one body", function()
    local n = { changeType = "updated", resourceUrl = "/communications/calls/a" }
    local many = {}
    for i = 1, 300 do many[i] = n end
    local evs, err = graphcall.parse_notifications(body(many))
    assert.is_nil(evs)
    assert.equal("notification", err.code)
    assert.equal(300, #graphcall.parse_notifications(body(many), { max_notifications = 300 }))
  end)

  it("shows only Graph's fields to pairs() and serializes with lua-cjson", function()
    for _, f in ipairs { "graph/notify-roster-delta.json", "graph/notify-playprompt-completed.json",
                         "seed/ex05-join-meeting-service-media/notify-3-roster-full.json",
                         "graph/notify-incoming-call.json" } do
      local ev = parse(H.fixture(f))[1]
      for k in pairs(ev) do assert.is_falsy(tostring(k):find("^__"), f .. ": " .. tostring(k)) end
      for _, p in ipairs(rawget(ev, "participants") or {}) do   -- rawget: a missing field builds data
        for k in pairs(p) do assert.is_falsy(tostring(k):find("^__"), f .. ": " .. tostring(k)) end
      end
      local text = cjson.encode(ev)                   -- what is built so far
      assert.is_nil(cjson.decode(text).data)
      graphcall.materialize(ev)                       -- data and every participant, built
      local raw = cjson.decode(H.fixture(f)).value[1].resourceData
      local full = cjson.decode(cjson.encode(ev))
      if ev.kind == "operation" or ev.kind == "call" then
        assert.same(raw[1] or raw, full.data)
      else
        assert.same(raw, full.data)
      end
      for i, p in ipairs(ev.participants or {}) do
        assert.is_nil(getmetatable(p), f .. " participant " .. i)
        assert.is_table(full.participants[i].info, f)
      end
      assert.is_nil(getmetatable(ev))
    end
  end)

  it("decodes nothing when a handler asks an event for a field it does not have", function()
    local ev = parse(H.fixture("graph/notify-call-established.json"))[1]
    assert.is_nil(ev.toneInfo)
    assert.is_nil(ev.resultInfo)
    assert.is_nil(rawget(ev, "data"))          -- still lazy
    assert.is_table(getmetatable(ev))
    assert.equal("established", ev.data.state)  -- and there when asked for
    assert.is_nil(getmetatable(ev))
  end)

  it("keeps lazy data valid after the body string is gone", function()
    local evs = parse(H.fixture("graph/notify-roster-delta.json") .. "")
    collectgarbage(); collectgarbage()
    assert.equal("Caller Name", evs[1].participants[1].info.identity.user.displayName)
    assert.equal(7, evs[1].data[1].sequenceNumber)
  end)
end)

describe("ids as Graph writes them", function()
  -- Graph's own completion examples (call-playprompt, call-record, call-cancelmediaprocessing)
  -- write the call and operation ids upper case without dashes; its answers and Location
  -- headers write the same ids lower case with dashes. Both read as the second.
  local function completion(url, data)
    return cjson.encode { value = { { changeType = "deleted", resourceUrl = url, resourceData = data } } }
  end

  it("reads a GUID in any case, with or without dashes, as the lower-case dashed form", function()
    local up = CALL:upper():gsub("-", "")
    local upop = OP:upper():gsub("-", "")
    for _, form in ipairs {
      { up, upop }, { CALL:upper(), OP:upper() }, { CALL, OP }, { CALL:gsub("-", ""), OP:gsub("-", "") },
    } do
      local url = "/communications/calls/" .. form[1] .. "/operations/" .. form[2]
      local ev = parse(completion(url, { ["@odata.type"] = "#microsoft.graph.playPromptOperation",
        ["@odata.id"] = url, status = "completed", clientContext = "ctx-1",
        resultInfo = { code = 200, subcode = 0, message = "Action completed successfully." } }))[1]
      assert.equal(CALL, ev.callId)
      assert.equal(OP, ev.operationId)
      assert.equal("completed", ev.status)
      assert.equal(url, ev.resourceUrl)          -- the text as sent stays as sent
    end
  end)

  it("reads a call's id from its resourceData the same way, and leaves other ids as they are", function()
    local ev = parse(completion("/communications/calls/" .. CALL:upper(), { ["@odata.type"] = "#microsoft.graph.call",
      state = "established" }))[1]
    assert.equal(CALL, ev.callId)
    for _, id in ipairs { "491f0b00-1a2b-4c3d-8e9f-63f3esaa1edb", "call-1", "ABC", string.rep("G", 32) } do
      ev = parse(completion("/communications/calls/" .. id, { state = "established" }))[1]
      assert.equal(id, ev.callId)
    end
  end)
end)
