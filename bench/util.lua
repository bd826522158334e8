-- bench/util.lua: what the benchmarks share: the fixtures, and a rate measured in batches
-- sized so the clock is read about once a millisecond, not once a call.
local M = {}
local unpack = table.unpack or unpack   -- luacheck: ignore 143

M.fixtures = os.getenv("GRAPHCALL_FIXTURES") or "spec/fixtures"
M.lua = jit and jit.version or _VERSION

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function M.fixture(rel) return M.read(M.fixtures .. "/" .. rel) end

--- Calls of fn per second of CPU time, over about `seconds`.
function M.rate(fn, seconds)
  local t0 = os.clock()
  local batch = 1
  repeat
    for _ = 1, batch do fn() end
    batch = batch * 2
  until os.clock() - t0 > 0.001
  local n = 0
  t0 = os.clock()
  while true do
    for _ = 1, batch do fn() end
    n = n + batch
    local t = os.clock() - t0
    if t >= seconds then return n / t end
  end
end

--- Best rates of a and b over three alternating rounds, so a noisy moment hurts both alike.
function M.compare(a, b, seconds)
  local ra, rb = 0, 0
  for _ = 1, 3 do
    ra = math.max(ra, M.rate(a, seconds))
    rb = math.max(rb, M.rate(b, seconds))
  end
  return ra, rb
end

--- The load average (1, 5, 15 minutes) as /proc/loadavg says, for a benchmark's first line:
-- a figure taken on a busy machine says so.
function M.loadavg()
  local f = io.open("/proc/loadavg")
  local text = f and f:read("*l") or ""
  if f then f:close() end
  local a, b, c = text:match("^(%S+) (%S+) (%S+)")
  return string.format("load average %s %s %s", a or "?", b or "?", c or "?")
end

--- Clock ticks (1/100 s) of CPU, user and system, that process `pid` has used (0 when it is
-- gone): /proc/<pid>/stat's utime and stime.
function M.cpu_ticks(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return 0 end
  local stat = f:read("*a"):gsub("^.-%) ", "")   -- (after "pid (comm) ": comm may hold spaces)
  f:close()
  local fields = {}
  for x in stat:gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)
end

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 end
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end
M.median = median

--- Rounds of measurements, alternating between `names` (the baseline among them), at least
-- `min` (3) and until the baseline's last round is within 20% of the one before it (at most
-- `max`, 6). `run(name)` returns {rate =, ...}.
-- @return per name {rates = {...}, median =, lo =, hi =, best = the best round's result}, and
--   whether the baseline was stable (a ratio to it is printed only then)
function M.rounds(names, baseline, run, min, max)
  min, max = min or 3, max or 6
  local out = {}
  for _, name in ipairs(names) do out[name] = { rates = {} } end
  local stable, n
  n = 0
  repeat
    n = n + 1
    for _, name in ipairs(names) do
      local r = run(name)
      local o = out[name]
      o.rates[#o.rates + 1] = r.rate
      if not o.best or r.rate > o.best.rate then o.best = r end
    end
    local b = out[baseline].rates
    stable = #b >= 2 and math.abs(b[#b] - b[#b - 1]) <= 0.2 * b[#b - 1]
  until n >= max or (n >= min and stable)
  for _, name in ipairs(names) do
    local o = out[name]
    o.median, o.lo, o.hi = median(o.rates), math.min(unpack(o.rates)), math.max(unpack(o.rates))
  end
  return out, stable
end

--- "NN% (median of N rounds, spread lo-hi%)" of a against b, or why there is no ratio; with
-- `target` (a fraction), whether the median meets it (a ratio that is not printed meets nothing).
function M.ratio(a, b, stable, target)
  local verdict = ""
  if not stable then
    if target then verdict = string.format("; target >= %.0f%%: NOT MET (no ratio)", 100 * target) end
    return string.format("no ratio: the baseline moved more than 20%% between its last rounds (%s)",
      table.concat((function()
        local t = {}
        for i, r in ipairs(b.rates) do t[i] = string.format("%.0f", r) end
        return t
      end)(), ", ")) .. verdict
  end
  local rs = {}
  for i = 1, #a.rates do rs[i] = a.rates[i] / b.rates[i] end
  local mid = median(rs)
  if target then
    verdict = string.format("; target >= %.0f%%: %s", 100 * target, mid >= target and "met" or "NOT MET")
  end
  return string.format("%.0f%% (median of %d rounds, each against the baseline of its round: %.0f-%.0f%%)%s",
    100 * mid, #rs, 100 * math.min(unpack(rs)), 100 * math.max(unpack(rs)), verdict)
end

--- What wrk printed (with bench/wrk-notify.lua's `not202` line): rate, requests sent,
-- errors (answers that were not 202 and socket errors) and the p50/p90/p99 latencies.
function M.wrk_result(text)
  local r = { rate = tonumber(text:match("Requests/sec:%s*([%d.]+)")) or 0,
              sent = tonumber(text:match("(%d+) requests in")) or 0,
              not202 = tonumber(text:match("not202 (%d+)")) or -1, sockerr = 0 }
  for _, k in ipairs { "connect", "read", "write", "timeout" } do
    r.sockerr = r.sockerr + (tonumber(text:match(k .. " (%d+)")) or 0)
  end
  r.errors = r.not202 + r.sockerr
  for _, p in ipairs { "50", "90", "99" } do r["p" .. p] = text:match("%s" .. p .. "%%%s+([%d.]+%a+)") end
  return r
end

return M
