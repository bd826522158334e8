-- bench/load.lua: calls in real time. `graphcall emulate --load` (its own process, at the
-- emulator's real speed) places BENCH_LOAD_RATE incoming calls a second (167) for
-- BENCH_LOAD_SECONDS (60: 10,000 calls) on one bot process (`graphcall run examples/ivr.lua`
-- under this interpreter), with examples/ivr-load.lua's callers (sales, voicemail, account,
-- silent). The target: every call answered within the service's ring time (15 s) and at the
-- end its caller expects, counted by the emulator, not by whether a flow raised.
package.path = "./spec/?.lua;" .. package.path
local E = require "emu"
local C = require "nodes_helper"
local N = require "ngx_helper"
local util = require "util"

local RATE = tonumber(os.getenv("BENCH_LOAD_RATE") or "167")
local SECONDS = tonumber(os.getenv("BENCH_LOAD_SECONDS") or "60")

local port = N.free_port()
local webhook = "http://127.0.0.1:" .. port .. "/callback"
local emu = E.start { args = string.format("--load %g --duration %g --webhook %s --scenario examples/ivr-load.lua",
  RATE, SECONDS, webhook) }
os.execute("mkdir -p build/prompts")
local bot = C.node { script = "examples/ivr.lua", emu = emu.url, public = "http://127.0.0.1:" .. port,
                     prompts = "build/prompts", port = port, noredis = true, args = "--quiet" }
local read = require("helper").read_if   -- ("" for a file not there)
local function cpu(pid) return util.cpu_ticks(pid) / 100 end   -- seconds of CPU the process has used
local load0 = util.loadavg()
local out, peak = "", 0
for _ = 1, (SECONDS + 600) * 10 do
  out = read(emu.dir .. "/stdout")
  if out:find("load: [PF]A") then break end
  local rss = tonumber(read("/proc/" .. bot.pid .. "/status"):match("VmRSS:%s*(%d+)")) or 0
  peak = math.max(peak, rss)
  os.execute("sleep 0.1")
end
local botcpu = bot.pid and cpu(bot.pid) or 0
print(string.format("load (%s; %s): %d calls a second for %d s on one bot process; the bot used %.1f s of CPU, "
  .. "resident memory at most %.1f MB", util.lua, load0, RATE, SECONDS, botcpu, peak / 1024))
for line in out:gmatch("[^\n]+") do
  if not line:find("listening on") and not line:find("waiting for") then print("  " .. line) end
end
local total = math.floor(RATE * SECONDS + 0.5)
local pass = out:find("load: PASS", 1, true) ~= nil and out:find("answered " .. total, 1, true) ~= nil
print(string.format("  target: %d calls over %d s in real time, all answered and at their expected end: %s",
  total, SECONDS, pass and "met" or "NOT MET"))
bot.remove()
emu.stop()
