-- bench/soak.lua: a long run through three nodes on one Redis behind nginx: `--calls` calls
-- (10,000) taking `--notifications` notifications (10^6) from wrk (a key press with the next
-- sequenceId on one of the calls), with the resident memory of every process sampled after
-- each slice of load. Memory must be flat after the warm-up (the first slice): nodes keep no
-- call between events. Reports Redis memory per live call and Redis commands per
-- notification. `make soak` (SOAK_CALLS, SOAK_NOTIFICATIONS).
local graphcall = require "graphcall"
local E = require "emu"
local R = require "redis_helper"
local C = require "nodes_helper"
local N = require "ngx_helper"
local util = require "util"

local o = C.options(arg, { calls = 10000, notifications = 1000000, nodes = 3, slice = 20 },
  "bench/soak.lua [--calls N] [--notifications N] [--nodes N] [--slice SECONDS]")

local emu = E.start { speed = 1 }
local redis = R.start()
local ctl = graphcall.loop { log = false }
local token = C.callback_token(emu, ctl)
local prompts = E.tmpdir()
local function rcli(args) return E.sh("redis-cli -p " .. redis.port .. " " .. args) end

local ports, nodes = {}, {}
for n = 1, o.nodes do ports[n] = N.free_port() end
local lb = C.balancer(ports)
for n = 1, o.nodes do
  nodes[n] = C.node { script = "bench/cluster-bot.lua", emu = emu.url, redis = redis.port, public = lb.url,
                      prompts = prompts, port = ports[n], lease = 5, args = "--quiet" }
end

local function rss(pid)
  local f = pid and io.open("/proc/" .. pid .. "/status")
  if not f then return 0 end
  local kb = tonumber(f:read("*a"):match("VmRSS:%s*(%d+)")) or 0
  f:close()
  return kb
end
local function nginx_pids()
  local pid = io.open(lb.dir .. "/logs/nginx.pid"):read("*l")
  local f = io.open("/proc/" .. pid .. "/task/" .. pid .. "/children")
  local out = { pid }
  for kid in (f and f:read("*a") or ""):gmatch("%d+") do out[#out + 1] = kid end
  if f then f:close() end
  return out
end
local redis_pid = io.open(redis.dir .. "/redis.pid"):read("*l")

local function sample()
  local s = { redis = rss(redis_pid), lb = 0 }
  for n, node in ipairs(nodes) do s[n] = rss(node.pid) end
  for _, pid in ipairs(nginx_pids()) do s.lb = s.lb + rss(pid) end
  return s
end

rcli("config resetstat")
print(string.format("soak: %d nodes, %d calls, %d notifications (wrk 2 threads, 32 connections, %d s slices)",
  o.nodes, o.calls, o.notifications, o.slice))
local head = { "  sent      " }
for n = 1, o.nodes do head[#head + 1] = string.format("node%d KB ", n) end
head[#head + 1] = "nginx KB  redis KB  rate/s"
print(table.concat(head, " "))
local sent, errors, samples = 0, 0, {}
while sent < o.notifications do
  local secs = o.slice
  -- each slice goes on with new key presses (the same ones again would be repeats, dropped)
  local out = E.sh(string.format("GC_TOKEN=%s GC_THREADS=2 GC_CALLS=%d GC_OFFSET=%d wrk -t2 -c32 -d%ds "
    .. "-s bench/wrk-notify.lua %s", token, o.calls, (sent + 1000) * 4, secs, lb.url .. "/callback"))
  local r = util.wrk_result(out)
  sent, errors = sent + r.sent, errors + r.errors
  local s = sample()
  s.sent = sent
  samples[#samples + 1] = s
  local row = { string.format("  %-9d", sent) }
  for n = 1, o.nodes do row[#row + 1] = string.format("%8d ", s[n]) end
  row[#row + 1] = string.format("%8d  %8d  %6.0f", s.lb, s.redis, r.rate)
  print(table.concat(row, " "))
end

-- flat after the warm-up: the last sample against the first, for every process but Redis
-- (which holds the calls' logs: it grows with them, by design)
local first, last = samples[1], samples[#samples]
local worst = 0
for n = 1, o.nodes do worst = math.max(worst, (last[n] - first[n]) / first[n]) end
worst = math.max(worst, (last.lb - first.lb) / first.lb)
local live = tonumber(rcli("scard gc:calls"):match("%d+")) or 0
local used = tonumber(rcli("info memory"):match("used_memory:(%d+)")) or 0
-- a call's log: its key presses, one entry each (every call gets about as many)
local entries = tonumber(rcli("llen gc:{00000001-1a2b-4c3d-8e9f-0a1b2c3d4e5f}:log"):match("%d+")) or 0
local commands = 0
for c in rcli("info commandstats"):gmatch("calls=(%d+)") do commands = commands + tonumber(c) end
print(string.format("  resident memory after the warm-up: %+.1f%% at most (nodes and nginx); errors %d",
  worst * 100, errors))
print(string.format("  Redis: %d live calls, %.1f KB each (%d log entries a call, %.0f bytes an entry); "
  .. "%.1f commands per notification", live, used / math.max(1, live) / 1024, entries,
  used / math.max(1, live * math.max(1, entries)), commands / math.max(1, sent)))
-- every notification was news: each must be in a log (none lost, none dropped)
local logged = 0
local rc = require("graphcall.redis").new { port = redis.port, loop = ctl }
local cursor = "0"
repeat
  local page = assert(rc:call("SCAN", cursor, "MATCH", "gc:{*}:log", "COUNT", 1000))
  cursor = page[1]
  for _, k in ipairs(page[2]) do logged = logged + assert(rc:call("LLEN", k)) end
until cursor == "0"
rc:close()
print(string.format("  notifications answered 202: %d (and up to 32 in flight after each slice); in the calls' "
  .. "logs: %d", sent - errors, logged))
for _, n in ipairs(nodes) do n.remove() end
lb.stop()
redis.stop()
emu.stop()
ctl:close()
os.execute("rm -rf " .. prompts)
-- (wrk counts the answers it read: what was in flight when it stopped is logged, not counted)
local ok = errors == 0 and worst < 0.10 and live == o.calls and logged >= sent and logged <= sent + 32 * #samples
print(ok and "soak: PASS" or "soak: FAIL")
os.exit(ok and 0 or 1)
