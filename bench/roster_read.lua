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

local one = util.rate(function() return read_one(text) end, 0.3)
local all = util.rate(function() return read_all(text) end, 0.3)
for _ = 1, 2 do
  one = math.max(one, util.rate(function() return read_one(text) end, 0.3))
  all = math.max(all, util.rate(function() return read_all(text) end, 0.3))
end
print(string.format("roster handler, 1000 participants, %d bytes (%s; Node %s; %s):", #text, util.lua,
  js.version, util.loadavg()))
print(string.format("  reading ids:        graphcall %.2f ms a body, Node %.2f ms; %.2fx Node",
  1e3 / one, 1e3 / js.one, one / js.one))
print(string.format("  reading everything: graphcall %.2f ms a body, Node %.2f ms; %.2fx Node"
  .. " (target >= 1.5x: %s)", 1e3 / all, 1e3 / js.all, all / js.all,
  all / js.all >= 1.5 and "met" or "NOT MET"))
