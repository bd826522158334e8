-- bench/build.lua: request-building throughput, graphcall.build("call", ex05) against
-- cjson.encode of the same Lua table in the same run. Prints one line per interpreter.
local cjson = require "cjson"
local graphcall = require "graphcall"
package.path = "./bench/?.lua;" .. package.path
local util = require "util"

local spec = cjson.decode(util.fixture("seed/ex05-join-meeting-service-media/request.json"))

local bytes = #assert(graphcall.build("call", spec))
local best_b, best_c = util.compare(function() return graphcall.build("call", spec) end,
                                    function() return cjson.encode(spec) end, 0.4)
local lua = util.lua
print(string.format(
  "build ex05 (%s; " .. util.loadavg()
  .. "): graphcall.build %.0f req/s (%.1f MB/s, validated), cjson.encode %.0f req/s; ratio %.2fx",
  lua, best_b, best_b * bytes / 1e6, best_c, best_b / best_c))
