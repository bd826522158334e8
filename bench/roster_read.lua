-- bench/roster_read.lua: a handler of a 1000-participant roster notification, graphcall against
-- Node.js (JSON.parse and the same loop, bench/roster-node.js) in the same run: one reading a
-- field each participant has eagerly (its id), one reading every field of every participant.
-- Target (issue 18): reading everything at >= 1.5x Node, reading ids no slower than before.
local graphcall = require "graphcall"
package.path = "./bench/?.lua;" .. package.path
local roster = require "roster"
local util = require "util"

local null = graphcall.null
local parse = graphcall.parse_notifications

local function read_one(text)
  local n = 0
  for _, ev in ipairs(parse(text)) do
    for _, p in ipairs(ev.participants) do if p.id then n = n + 1 end end
  end
  return n
end

local function read_all(text)
  local n = 0
  for _, ev in ipairs(parse(text)) do
    for _, p in ipairs(ev.participants) do
      local info = p.info
      local u = info.identity.user
      if p.id and u.displayName and u.id and u.tenantId and info.endpointType and info.region
         and info.languageId then n = n + 1 end
      for _, s in ipairs(p.mediaStreams) do
        if s.mediaType and s.label and s.sourceId and s.direction and s.serverMuted == false then
          n = n + 1
        end
      end
      if p.isMuted then n = n + 1 end
      if p.isInLobby == false and p.rosterSequenceNumber > 0 and p.metadata == null then n = n + 1 end
      if p.recordingInfo.recordingStatus and p.recordingInfo.initiator == null then n = n + 1 end
    end
  end
  return n
end

-- The floor of any builder: the same participants built in Lua with every string already
-- made, each table by one constructor naming its keys (what the fastest code that builds Lua
-- tables pays, with no parse at all). When it alone costs more than the target allows, no
-- parser can meet the target on that interpreter.
local function build(ps)
  local out = {}
  for i = 1, #ps do
    local p = ps[i]
    local info, ri = p.info, p.recordingInfo
    local id, u, ms = info.identity, info.identity.user, p.mediaStreams
    local a, b = ms[1], ms[2]
    out[i] = {
      ["@odata.type"] = p["@odata.type"], id = p.id,
      info = { ["@odata.type"] = info["@odata.type"],
        identity = { ["@odata.type"] = id["@odata.type"], user = { ["@odata.type"] = u["@odata.type"], id = u.id,
          displayName = u.displayName, tenantId = u.tenantId } },
        endpointType = info.endpointType, region = info.region, languageId = info.languageId },
      mediaStreams = {
        { ["@odata.type"] = a["@odata.type"], mediaType = a.mediaType, label = a.label, sourceId = a.sourceId,
          direction = a.direction, serverMuted = a.serverMuted },
        { ["@odata.type"] = b["@odata.type"], mediaType = b.mediaType, label = b.label, sourceId = b.sourceId,
          direction = b.direction, serverMuted = b.serverMuted } },
      isMuted = p.isMuted, isInLobby = p.isInLobby, rosterSequenceNumber = p.rosterSequenceNumber,
      metadata = p.metadata,
      recordingInfo = { ["@odata.type"] = ri["@odata.type"], recordingStatus = ri.recordingStatus,
                        initiator = ri.initiator },
    }
  end
  return out
end

local text = roster.text(1000)
local file = os.tmpname()
local f = assert(io.open(file, "wb"))
f:write(text)
f:close()

local function node()
  local p = io.popen("node bench/roster-node.js " .. file .. " 0.3 2>&1")
  local out = p:read("*a")
  p:close()
  local one, all = out:match('"one":([%d.e+]+),"all":([%d.e+]+)')
  local c1, c2 = out:match('"check":{"one":(%d+),"all":(%d+)}')
  if not one then return nil, out end
  return { one = tonumber(one), all = tonumber(all), check_one = tonumber(c1), check_all = tonumber(c2),
           version = out:match('"version":"([^"]+)"') }
end

local n1, n2 = read_one(text), read_all(text)
local js, why = node()
os.remove(file)
if not js then
  print("roster handlers: Node.js did not run (" .. tostring(why):gsub("\n.*", "") .. "); no ratio")
  os.exit(1)
end
assert(js.check_one == n1 and js.check_all == n2,
  string.format("the handlers disagree: Lua %d/%d, Node %d/%d", n1, n2, js.check_one, js.check_all))

local plain = graphcall.decode(text).value[1].resourceData
local floor = util.rate(function() return build(plain) end, 0.3)
local one = util.rate(function() return read_one(text) end, 0.3)
local all = util.rate(function() return read_all(text) end, 0.3)
for _ = 1, 2 do
  one = math.max(one, util.rate(function() return read_one(text) end, 0.3))
  all = math.max(all, util.rate(function() return read_all(text) end, 0.3))
  floor = math.max(floor, util.rate(function() return build(plain) end, 0.3))
end
print(string.format("roster handler, 1000 participants, %d bytes (%s; Node %s; %s):", #text, util.lua,
  js.version, util.loadavg()))
print(string.format("  reading ids:        graphcall %.2f ms a body, Node %.2f ms; %.2fx Node",
  1e3 / one, 1e3 / js.one, one / js.one))
print(string.format("  reading everything: graphcall %.2f ms a body, Node %.2f ms; %.2fx Node"
  .. " (target >= 1.5x: %s)", 1e3 / all, 1e3 / js.all, all / js.all,
  all / js.all >= 1.5 and "met" or "NOT MET"))
print(string.format("  the floor: the same tables by Lua's own constructors, every string made, no parse: %.2f ms"
  .. " a body; the target allows %.2f (%s)", 1e3 / floor, 1e3 / (1.5 * js.all),
  floor >= 1.5 * js.all and "room for a parser" or "not even the tables alone fit in it here"))
