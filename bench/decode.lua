-- bench/decode.lua: JSON text to Lua tables, graphcall.decode against cjson.decode in the
-- same run, on the ex05 roster notification and a generated 1000-participant roster.
local cjson = require "cjson"
local graphcall = require "graphcall"
package.path = "./bench/?.lua;" .. package.path
local roster = require "roster"
local util = require "util"

local lua = util.lua
for _, case in ipairs {
  { "ex05 roster", util.fixture("seed/ex05-join-meeting-service-media/notify-3-roster-full.json") },
  { "1000-participant roster", roster.text(1000) },
} do
  local name, text = case[1], case[2]
  assert(graphcall.decode(text))
  local g, c = util.compare(function() return graphcall.decode(text) end,
                            function() return cjson.decode(text) end, 0.3)
  print(string.format("decode %s, %d bytes (%s; " .. util.loadavg()
    .. "): graphcall %.1f MB/s, cjson %.1f MB/s; ratio %.2fx",
    name, #text, lua, g * #text / 1e6, c * #text / 1e6, g / c))
end
