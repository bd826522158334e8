--- Log lines an operator can use. A logger is `log(level, message, fields)`: `fields` (may be
-- nil) says what the line is about: `call`, `flow`, `event`, `action`, `clientRequestId`,
-- `status`, `code` (Graph's result code), `ms`. The text format puts the time to the
-- millisecond before the level; the JSON format writes one object a line, the fields as keys
-- (a message `call <id>: ...` gives `call` when the fields do not).
--
--   local logs = require "graphcall.log"
--   local log = logs.new { format = "json", node = "bot-1", clock = function() return loop:wall() end }
--   log("info", "call 42: playPrompt answered 200", { action = "playPrompt", status = 200 })
--   --> {"time":"2026-11-30T16:09:17.123Z","level":"info","node":"bot-1","call":"42",...}
--
-- An error that repeats (a flood of refused connections, a full dict, a store away) is said
-- once, then once per interval with how many times it came (`repeated`).
-- @module graphcall.log
local wire = require "graphcall.wire"

local M = {}

--- The levels, lowest first.
M.LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }

-- the JSON keys, in the order a reader expects them
local ORDER = { "time", "level", "node", "call", "flow", "event", "action", "clientRequestId", "status", "code",
                "ms", "msg" }
local KNOWN = {}
for _, k in ipairs(ORDER) do KNOWN[k] = true end

local function stamp(ms, full)
  local s = math.floor(ms / 1000)
  local frac = math.floor(ms - s * 1000)
  if full then return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%03dZ", frac) end
  return os.date("!%H:%M:%S", s) .. string.format(".%03d", frac)
end

--- One JSON log line (no newline).
-- @param t ms since the epoch
-- @param level the level
-- @param msg the message
-- @param fields what it is about (see above), or nil
-- @param node names the process, or nil
function M.json_line(t, level, msg, fields, node)
  fields = fields or {}
  local v = { time = stamp(t, true), level = level, node = node, msg = msg }
  for k, x in pairs(fields) do v[k] = x end
  if v.call == nil and type(msg) == "string" then v.call = msg:match("^call ([^%s:]+):") end
  local out = {}
  for _, k in ipairs(ORDER) do
    if v[k] ~= nil then out[#out + 1] = wire.json(k) .. ":" .. wire.json(v[k]) end
  end
  local extra = {}
  for k in pairs(v) do if not KNOWN[k] and type(k) == "string" then extra[#extra + 1] = k end end
  table.sort(extra)
  for _, k in ipairs(extra) do
    local ok, text = pcall(wire.json, v[k])
    out[#out + 1] = wire.json(k) .. ":" .. (ok and text or wire.json(tostring(v[k])))
  end
  return "{" .. table.concat(out, ",") .. "}"
end

--- A logger writing one line a message.
-- @param o optional: `format` ("text", the default, or "json"), `node` (names this process in
--   JSON lines), `clock` (ms since the epoch; os.time's seconds by default), `level` (the
--   lowest written: "info" by default), `out` (a file: io.stderr by default)
-- @return log(level, message, fields)
function M.new(o)
  o = o or {}
  local json = o.format == "json"
  if o.format ~= nil and o.format ~= "text" and not json then
    error("bad argument #1 to 'graphcall.log.new' (format: \"text\" or \"json\", got " .. tostring(o.format) .. ")", 2)
  end
  local clock = o.clock or function() return os.time() * 1000 end
  local lowest = M.LEVELS[o.level or "info"] or 2
  local out, node = o.out or io.stderr, o.node
  return function(level, msg, fields)
    if (M.LEVELS[level] or 4) < lowest then return end
    local t = clock()
    if json then
      out:write(M.json_line(t, level, tostring(msg), fields, node), "\n")
    else
      out:write(string.format("%s %-5s %s\n", stamp(t), level, tostring(msg)))
    end
  end
end

--- A logger of repeated messages.
-- @param log the logger: log(level, message)
-- @param interval ms between two lines of one kind
-- @param now the clock: ms
-- @return say(kind, level, message): logs it, or counts it when a line of this kind was
--   logged less than `interval` ago (the count goes with the next line of the kind)
function M.repeated(log, interval, now)
  local kinds = {}
  return function(kind, level, message)
    local k = kinds[kind]
    local t = now()
    if k and t - k.at < interval then
      k.n = k.n + 1
      return false
    end
    if k and k.n > 0 then
      message = string.format("%s (and %d more like it in the last %.0f s)", message, k.n, (t - k.at) / 1000)
    end
    kinds[kind] = { at = t, n = 0 }
    log(level, message)
    return true
  end
end

return M
