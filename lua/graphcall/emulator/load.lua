--- Load-test a bot: incoming calls placed on it at a rate for a time, each with a scripted
-- caller of one of the scenario's kinds, then a report of what each call came to
-- (`graphcall emulate --load RATE --duration S --scenario FILE`).
--
--   load = {
--     webhook = "http://127.0.0.1:8443/callback", appId = APP_ID, tenantId = TENANT,
--     callers = {
--       { name = "sales", weight = 2, caller = { { on = "prompt", after = 1500, press = "1" } },
--         expect = { transferred = "+14255550100" } },
--       { name = "voicemail", caller = { { on = "prompt", after = 1500, press = "2" },
--                                        { on = "record", after = 300, speak = 3000 } },
--         expect = { pressed = "2", recordings = 1 } },
--     },
--   }
--
-- `expect` says what the call must come to, as the emulator saw it: `pressed` (the keys, a
-- string), `transferred` (the target's id, or true), `recordings` and `prompts` (how many, at
-- least), `answered` (true: the bot answered; false: it must not), `hangup` ("bot" or
-- "caller": who ended it). Every call must also have ended.
-- @module graphcall.emulator.load
local M = {}

-- p (0-1) of a sorted list
local function quantile(sorted, p)
  if #sorted == 0 then return nil end
  return sorted[math.max(1, math.ceil(p * #sorted))]
end

-- What went wrong with a call, or nil: its view against what its kind expects.
local function judge(view, expect)
  if view.state ~= "terminated" then return "still on when the test ended" end
  local answered = false
  for _, r in ipairs(view.requests or {}) do
    if r.action == "answer" and (r.status or 0) < 300 then answered = true end
  end
  expect = expect or {}
  if expect.answered == nil and not answered then return "not answered" end
  if expect.answered ~= nil and expect.answered ~= answered then
    return answered and "answered (it should not be)" or "not answered"
  end
  if expect.pressed ~= nil and view.pressed ~= expect.pressed then
    return string.format("pressed %q, expected %q", tostring(view.pressed or ""), expect.pressed)
  end
  if expect.transferred ~= nil then
    if expect.transferred == true and not view.transferred then return "not transferred" end
    if expect.transferred ~= true and view.transferred ~= expect.transferred then
      return "transferred to " .. tostring(view.transferred or "nobody") .. ", expected " .. expect.transferred
    end
  end
  for _, k in ipairs { "recordings", "prompts" } do
    if expect[k] ~= nil and #(view[k] or {}) < expect[k] then
      return string.format("%d %s, expected %d", #(view[k] or {}), k, expect[k])
    end
  end
  if expect.hangup ~= nil then
    local by = "the service"
    for _, l in ipairs(view.log or {}) do
      if l.what == "bot hangs up" then by = "bot" elseif l.what == "peer hangs up" then by = "caller" end
    end
    if by ~= expect.hangup then return "ended by " .. by .. ", expected " .. expect.hangup end
  end
end

--- Place the calls and wait for them to end.
-- @param emu the emulator (started)
-- @param o `rate` (calls a second, real time), `duration` (seconds), `load` (the scenario's
--   `load`, checked), `webhook` (overrides load's), `wait` (seconds to wait for the calls to
--   end after the last one is placed, 120), `done(report)` called at the end
function M.run(emu, o)
  local load, loop = o.load, emu.loop
  local kinds, order = load.callers, {}
  for i, k in ipairs(kinds) do for _ = 1, k.weight or 1 do order[#order + 1] = i end end
  local total = math.max(1, math.floor(o.rate * o.duration + 0.5))
  local placed, failed0 = {}, emu.stats.notificationsFailed
  local t0 = loop:now()
  local tick
  tick = loop:every(5, function()
    local want = math.min(total, math.floor((loop:now() - t0) / 1000 * o.rate) + 1)
    while #placed < want do
      local kind = kinds[order[#placed % #order + 1]]
      local ok, call = pcall(emu.place_incoming, emu, { webhook = o.webhook or load.webhook, appId = load.appId,
        tenantId = load.tenantId, from = kind.from, caller = kind.caller, answerBy = load.answerBy })
      placed[#placed + 1] = { kind = kind, call = ok and call or nil, err = not ok and tostring(call) or nil,
                              at = loop:now() }
    end
    if #placed >= total then tick:cancel() end
  end)
  local wait = (o.wait or 120) * 1000
  local check
  check = loop:every(200, function()
    if #placed < total then return end
    local live = 0
    for _, p in ipairs(placed) do
      if p.call and (p.call.state ~= "terminated" or p.call.sending) then live = live + 1 end
    end
    if live > 0 and loop:now() - placed[#placed].at < wait then return end
    check:cancel()
    local report = { placed = total, kinds = {}, latencies = {}, refused = emu.stats.notificationsFailed - failed0,
                     seconds = (loop:now() - t0) / 1000, failed = 0 }
    for _, k in ipairs(kinds) do report.kinds[#report.kinds + 1] = { name = k.name, calls = 0, ok = 0, why = {} } end
    local byname = {}
    for _, k in ipairs(report.kinds) do byname[k.name] = k end
    for _, p in ipairs(placed) do
      local r = byname[p.kind.name]
      r.calls = r.calls + 1
      local why = p.err and ("not placed: " .. p.err)
      if not why then
        local view = emu:call_view(p.call)
        for _, q in ipairs(view.requests or {}) do
          if q.action == "answer" then
            report.latencies[#report.latencies + 1] = q.at
            break
          end
        end
        why = judge(view, p.kind.expect)
      end
      if why then
        r.why[why] = (r.why[why] or 0) + 1
        report.failed = report.failed + 1
      else
        r.ok = r.ok + 1
      end
    end
    table.sort(report.latencies)
    report.p50, report.p99 = quantile(report.latencies, 0.5), quantile(report.latencies, 0.99)
    o.done(report)
  end)
end

--- The report as lines of text.
function M.text(r, rate, duration)
  local out = { string.format("load: %d calls placed (%.4g a second for %g s), over in %.1f s; answered %d, "
    .. "answer latency p50 %s ms, p99 %s ms; notifications refused or failed %d", r.placed, rate, duration,
    r.seconds, #r.latencies, tostring(r.p50 or "-"), tostring(r.p99 or "-"), r.refused) }
  for _, k in ipairs(r.kinds) do
    local whys = {}
    for why, n in pairs(k.why) do whys[#whys + 1] = string.format("%d %s", n, why) end
    table.sort(whys)
    out[#out + 1] = string.format("  %-16s %6d calls, %6d at their expected end%s", k.name, k.calls, k.ok,
      #whys > 0 and ("; " .. table.concat(whys, "; ")) or "")
  end
  out[#out + 1] = r.failed == 0 and "load: PASS" or string.format("load: FAIL (%d calls not at their expected end)",
    r.failed)
  return table.concat(out, "\n")
end

return M
