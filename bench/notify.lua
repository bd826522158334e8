-- bench/notify.lua: notification ingest, body in to events ready for a handler, against the
-- baseline a competent Lua developer would write: cjson.decode plus the same normalization in
-- plain Lua. Same run, best of three; prints events/s, MB/s and the ratio. Under LuaJIT
-- graphcall builds events through the FFI (graphcall.flat); the Lua C API path it replaced is
-- measured too, for the record.
local cjson = require "cjson"
local graphcall = require "graphcall"
package.path = "./bench/?.lua;" .. package.path
local roster = require "roster"
local util = require "util"

-- ---- the baseline ---------------------------------------------------------------------
local null = cjson.null
local STATUS = { notstarted = "notStarted", running = "running", completed = "completed", failed = "failed" }

local function int(v)
  if type(v) == "number" then return v end
  if type(v) == "string" and v:match("^%-?%d+$") then return tonumber(v) end
end

local function result(ri)
  if type(ri) ~= "table" then return nil end
  local msg = ri.message
  return { code = int(ri.code), subcode = int(ri.subcode or ri.subCode),
           message = type(msg) == "string" and msg or nil }
end

local function participants(list)
  local out = {}
  for i, p in ipairs(list) do
    p.removed = p.removedState ~= nil and p.removedState ~= null
    out[i] = p
  end
  return out
end

local function baseline(body)
  local doc = cjson.decode(body)
  local events = {}
  for i, n in ipairs(doc.value) do
    local url = n.resourceUrl or n.resource
    local path = url:gsub("^https?://[^/]+/v1%.0", ""):gsub("^/", "")
    local callId, rest = path:match("^communications/calls/([^/]+)/?(.*)$")
    if not callId then callId, rest = path:match("^app/calls/([^/]+)/?(.*)$") end
    local data = n.resourceData
    local item = data
    if type(data) == "table" and data[1] then item = data[1] end
    local ev = { changeType = n.changeType, resourceUrl = n.resourceUrl, resource = n.resource,
                 callId = callId, data = data }
    if rest == "" then
      ev.kind = "call"
      ev.state, ev.direction, ev.tenantId = item.state, item.direction, item.tenantId
      ev.incoming = item.state == "incoming" or nil
      if type(item.toneInfo) == "table" then
        ev.toneInfo = { tone = item.toneInfo.tone, sequenceId = int(item.toneInfo.sequenceId) }
      end
      ev.resultInfo = result(item.resultInfo)
    elseif rest == "participants" then
      ev.kind = "participants"
      if item and item["@odata.type"] == "#microsoft.graph.deltaParticipants" then
        ev.delta, ev.sequenceNumber = true, int(item.sequenceNumber)
        ev.participants = participants(item.participants)
      else
        ev.participants = participants(data)
      end
    elseif rest:match("^operations/") then
      ev.kind = "operation"
      ev.operationId = rest:match("^operations/([^/]+)")
      ev.status = STATUS[(item.status or ""):lower()]
      ev.clientContext = item.clientContext
      ev.resultInfo = result(item.resultInfo)
    else
      ev.kind = "unknown"
    end
    events[i] = ev
  end
  return events
end

-- ---- the run ---------------------------------------------------------------------------
local lua = util.lua
for _, case in ipairs {
  { "ex01 established", util.fixture("seed/ex01-p2p-voip-service-media/notify-2-established.json") },
  { "ex05 full roster", util.fixture("seed/ex05-join-meeting-service-media/notify-3-roster-full.json") },
  { "1000-participant roster", roster.text(1000) },
} do
  local name, body = case[1], case[2]
  local a, b = assert(graphcall.parse_notifications(body)), baseline(body)
  assert(a[1].kind == b[1].kind and a[1].callId == b[1].callId)
  local g, c = util.compare(function() return graphcall.parse_notifications(body) end,
                            function() return baseline(body) end, 0.3)
  print(string.format("ingest %s, %d bytes (%s; " .. util.loadavg() .. "): graphcall %.0f events/s %.1f MB/s, "
    .. "cjson+Lua %.0f events/s %.1f MB/s; ratio %.2fx",
    name, #body, lua, g, g * #body / 1e6, c, c * #body / 1e6, g / c))
  if jit then
    local core = require "graphcall.core"
    local f, capi = util.compare(function() return graphcall.parse_notifications(body) end,
                                 function() return core.parse_notifications(body) end, 0.3)
    print(string.format("  (LuaJIT: FFI %.0f events/s, Lua C API %.0f events/s; %.2fx)", f, capi, f / capi))
  end
end
