-- bench/util.lua: what the benchmarks share: the fixtures, and a rate measured in batches
-- sized so the clock is read about once a millisecond, not once a call.
local M = {}

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
