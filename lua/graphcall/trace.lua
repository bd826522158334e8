--- Call traces: each call's timeline (notifications in, requests out and their answers,
-- operations, states, timeouts, with times), read from its log, as text for the log and as a
-- self-contained HTML page with an inline SVG sequence chart (no network, no script).
--
--   local trace = require("graphcall.trace").new(bot)
--   ...
--   trace:write("calls.html")           -- every call the bot has seen
--   print(trace.text(bot.store:log(callId)))
-- @module graphcall.trace
local core = require "graphcall.core"

local M = {}

--- One line for an event (a notification as the bot's log keeps it).
function M.describe(ev)
  if ev.kind == "call" then
    if ev.incoming then
      local source = rawget(ev, "source") or (type(ev.data) == "table" and ev.data.source)
      local src = type(source) == "table" and type(source.identity) == "table" and source.identity or {}
      local who = src.phone or src.user or src.application or {}
      return "incoming call from " .. tostring(who.id or who.displayName or "?")
    end
    if ev.toneInfo then return string.format("tone %s (#%s)", ev.toneInfo.tone, tostring(ev.toneInfo.sequenceId)) end
    local s = "call " .. tostring(ev.state or ev.changeType)
    local ri = ev.resultInfo
    if type(ri) == "table" then
      s = s .. string.format(" %s/%s %s", tostring(ri.code), tostring(ri.subcode), ri.message or "")
    end
    if ev.synthetic then s = s .. " (found by keepAlive)" end
    return s
  elseif ev.kind == "operation" then
    local s = string.format("%s %s", tostring(ev.operationType), tostring(ev.status))
    local ri = ev.resultInfo
    if type(ri) == "table" and ri.code then
      s = s .. string.format(" %s/%s", tostring(ri.code), tostring(ri.subcode))
    end
    if ev.completionReason then s = s .. " " .. tostring(ev.completionReason) end
    return s
  elseif ev.kind == "participants" then
    return string.format("roster%s: %d participant(s)%s", ev.delta and " (delta)" or "", #(ev.participants or {}),
      ev.sequenceNumber and (" #" .. ev.sequenceNumber) or "")
  elseif ev.kind == "contentSharing" then
    return "content sharing " .. tostring(ev.changeType)
  end
  return tostring(ev.kind) .. " " .. tostring(ev.changeType)
end

local function answer(v)
  if v.hangup then return "not sent: the call had ended" end
  if v.err then
    return "error " .. tostring(v.err.status or v.err.code) .. " " .. tostring(v.err.graphCode or v.err.message or "")
  end
  if type(v.res) == "table" then
    return "200 operation " .. tostring(v.res.status) .. (v.res.id and (" " .. tostring(v.res.id):sub(1, 8)) or "")
  end
  return "accepted"
end

--- The rows of a call's timeline: {t = ms from the start, dir = "in"|"out"|"answer"|"flow", text =}.
function M.rows(entries)
  local rows, t0 = {}, nil
  for _, e in ipairs(entries) do
    t0 = t0 or e.t
    local t = (e.t and t0) and (e.t - t0) or 0
    if e.k == "ev" then
      rows[#rows + 1] = { t = t, dir = "in", text = M.describe(e.ev) }
    elseif e.k == "out" then
      local text = e.a .. (e.d and (" " .. e.d) or "") .. "  (client-request-id " .. tostring(e.crid):sub(1, 8) .. ")"
      rows[#rows + 1] = { t = t, dir = "out", text = text }
    elseif e.k == "note" then
      rows[#rows + 1] = { t = t, dir = "flow", text = tostring(e.text) }
    elseif e.k == "step" and e.w and e.w ~= "wait" and e.w ~= "now" and e.w ~= "random" and e.w ~= "download" then
      rows[#rows + 1] = { t = t, dir = "answer", text = e.w .. ": " .. answer(e.v) }
    elseif e.k == "step" and e.w == "wait" and e.v.timeout then
      rows[#rows + 1] = { t = t, dir = "flow", text = "timeout" }
    elseif e.k == "step" and e.w == "download" then
      local text = e.v.path and ("recording saved: " .. tostring(e.v.path):match("[^/]*$")) or "download failed"
      rows[#rows + 1] = { t = t, dir = "flow", text = text }
    elseif e.k == "start" then
      local text = "flow " .. tostring(e.flow) .. " starts (" .. tostring(e.dir) .. ")"
      rows[#rows + 1] = { t = t, dir = "flow", text = text }
    elseif e.k == "end" then
      rows[#rows + 1] = { t = t, dir = "flow", text = e.ok and "flow ends" or "flow failed" }
    end
  end
  return rows
end

--- The timeline as text, one line per row.
function M.text(entries, id)
  local out = {}
  if id then out[1] = "call " .. id end
  for _, r in ipairs(M.rows(entries)) do
    local arrow = ({ ["in"] = "<-- ", out = "--> ", answer = "<.. ", flow = "  * " })[r.dir]
    out[#out + 1] = string.format("%9.3f s %s%s", r.t / 1000, arrow, r.text)
  end
  return table.concat(out, "\n")
end

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

-- Text in lines of at most `width` bytes, at spaces; a longer word (a file name) is broken,
-- never inside a character.
local function wrap(text, width)
  local lines, line = {}, ""
  local function flush() if line ~= "" then lines[#lines + 1] = line line = "" end end
  for word in tostring(text):gmatch("%S+") do
    while #word > width do
      flush()
      local n = width
      while n > 1 and word:byte(n + 1) and word:byte(n + 1) >= 0x80 and word:byte(n + 1) < 0xC0 do n = n - 1 end
      lines[#lines + 1] = word:sub(1, n)
      word = word:sub(n + 1)
    end
    if line == "" then line = word
    elseif #line + 1 + #word <= width then line = line .. " " .. word
    else
      flush()
      line = word
    end
  end
  flush()
  if #lines == 0 then lines[1] = "" end
  return lines
end

local LINE = 14      -- px between two lines of a label
local MIDDLE = 46    -- characters of a label between the two lifelines
local RIGHT = 32     -- characters of a flow step's label, right of the bot's lifeline

-- The space a pause of `dt` ms takes: none under a second, then growing with its logarithm
-- (a 5 s silence shows as a gap, an hour does not take the page).
local function gap(dt)
  if dt < 1000 then return 0 end
  return math.min(160, math.floor(36 * math.log(dt / 500) / math.log(2)))
end

local function tspans(lines, x)
  local out = {}
  for i, l in ipairs(lines) do
    out[i] = string.format('<tspan x="%d"%s>%s</tspan>', x, i > 1 and (' dy="' .. LINE .. '"') or "", esc(l))
  end
  return table.concat(out)
end

--- An SVG sequence chart of a call: the calling service on the left, the bot on the right, one
-- row per step, time down the side: a pause of a second or more shows as a gap, with its
-- length. Long labels wrap; the chart scales down to the page's width.
function M.svg(entries)
  local rows = M.rows(entries)
  local W, top = 860, 48
  local gx, bx = 250, 610
  local body, y, prev = {}, top, nil
  for _, r in ipairs(rows) do
    local g = prev and gap(r.t - prev) or 0
    if g > 0 then
      body[#body + 1] = string.format('<rect x="0" y="%d" width="%d" height="%d" fill="#f3f3f3"/>', y, W, g - 6)
      body[#body + 1] = string.format('<text x="8" y="%d" fill="#999" font-style="italic">%.1f s later</text>',
        y + math.floor(g / 2), (r.t - prev) / 1000)
      y = y + g
    end
    prev = r.t
    local color = ({ ["in"] = "#1f5fa8", out = "#2a7d2a", answer = "#777", flow = "#a05a00" })[r.dir]
    if r.dir == "flow" then
      local lines = wrap(r.text, RIGHT)
      local cy = y + 6
      body[#body + 1] = string.format('<text x="8" y="%d" fill="#666">%.3f s</text>', cy + 4, r.t / 1000)
      body[#body + 1] = string.format('<circle cx="%d" cy="%d" r="4" fill="%s"/>', bx, cy, color)
      body[#body + 1] = string.format('<text x="%d" y="%d" fill="%s">%s</text>', bx + 10, cy + 4, color,
        tspans(lines, bx + 10))
      y = y + #lines * LINE + 10
    else
      local lines = wrap(r.text, MIDDLE)
      local ay = y + #lines * LINE + 2
      local x1, x2 = gx, bx
      if r.dir == "out" then x1, x2 = bx, gx end
      body[#body + 1] = string.format('<text x="8" y="%d" fill="#666">%.3f s</text>', ay + 4, r.t / 1000)
      body[#body + 1] = string.format('<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>',
        (gx + bx) / 2, y + LINE - 2, color, tspans(lines, (gx + bx) / 2))
      body[#body + 1] = string.format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" %s marker-end="url(#a)"/>',
        x1, ay, x2 + (x2 > x1 and -2 or 2), ay, color, r.dir == "answer" and 'stroke-dasharray="4,3"' or "")
      y = ay + 12
    end
  end
  local h = y + 16
  local out = { string.format('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" '
    .. 'style="max-width:%dpx;height:auto" font-family="sans-serif" font-size="12">', W, h, W),
    '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
    .. '<path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>',
    string.format('<text x="%d" y="20" text-anchor="middle" font-weight="bold">Graph calling service</text>', gx),
    string.format('<text x="%d" y="20" text-anchor="middle" font-weight="bold">bot (flow)</text>', bx),
    string.format('<line x1="%d" y1="30" x2="%d" y2="%d" stroke="#999"/>', gx, gx, h - 10),
    string.format('<line x1="%d" y1="30" x2="%d" y2="%d" stroke="#999"/>', bx, bx, h - 10) }
  for _, b in ipairs(body) do out[#out + 1] = b end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n")
end

--- A whole page for a set of calls: {{id =, entries =}, ...}.
function M.html(calls, title)
  local parts = { '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" '
    .. 'content="width=device-width, initial-scale=1"><title>' .. esc(title or "graphcall trace")
    .. "</title><style>body{font-family:sans-serif;margin:24px;color:#222}h2{font-size:16px;margin-top:32px}"
    .. "pre{background:#f6f6f6;padding:12px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}"
    .. ".k{color:#666}</style></head><body>",
    "<h1>" .. esc(title or "graphcall trace") .. "</h1>",
    "<p class=\"k\">Blue: notifications from the service. Green: requests from the bot. Grey, dashed: "
    .. "their answers. Orange: the flow's own steps (start, digits collected, timeouts, end). A grey band is a "
    .. "pause of a second or more.</p>" }
  for _, c in ipairs(calls) do
    local rows = M.rows(c.entries)
    local last = rows[#rows]
    parts[#parts + 1] = string.format("<h2>call %s</h2><p class=\"k\">%d steps over %.3f s</p>", esc(c.id),
      #rows, last and last.t / 1000 or 0)
    parts[#parts + 1] = M.svg(c.entries)
    parts[#parts + 1] = "<pre>" .. esc(M.text(c.entries)) .. "</pre>"
  end
  parts[#parts + 1] = "</body></html>\n"
  return table.concat(parts, "\n")
end

-- ---- the live calls page ------------------------------------------------------------------

--- What the calls page says of one call, from its log: `{id, direction, state, step, started,
-- ms, node, ended, events}` (`step`: the last thing the flow did or sent; `ms`: how long it has
-- lasted, to `now` while live).
-- @param id the call's id
-- @param entries its log
-- @param now ms since the epoch
function M.summary(id, entries, now)
  local s = { id = id, events = 0 }
  local last_t
  for _, e in ipairs(entries) do
    s.started = s.started or e.t
    last_t = e.t or last_t
    if e.at then s.node = e.at end
    if e.k == "start" then s.direction = s.direction or e.dir end
    if e.k == "end" then s.ended = true end
    if e.k == "ev" then
      s.events = s.events + 1
      local ev = e.ev or {}
      if ev.incoming then s.direction = s.direction or "incoming" end
      if ev.kind == "call" and ev.state then s.state = ev.state end
      if ev.kind == "call" and (ev.state == "terminated" or ev.changeType == "deleted") then s.ended = true end
    end
  end
  for _, r in ipairs(M.rows(entries)) do
    if r.dir == "out" or r.dir == "flow" then s.step = r.text end
  end
  s.ms = s.started and math.max(0, (s.ended and last_t or now) - s.started) or 0
  return s
end

--- The live calls page: live calls first (longest first), then recent ones; each opens its
-- trace at `link(id)`. Self-contained (no script, no network); it reloads itself every
-- `refresh` seconds.
-- @param calls summaries (`summary`)
-- @param o optional: `title`, `refresh` (seconds, 2), `link(id)` (the trace's URL: "calls/<id>")
function M.calls_page(calls, o)
  o = o or {}
  local live, recent = {}, {}
  for _, c in ipairs(calls) do
    if c.ended then recent[#recent + 1] = c else live[#live + 1] = c end
  end
  table.sort(live, function(a, b) return (a.started or 0) < (b.started or 0) end)
  table.sort(recent, function(a, b) return (a.started or 0) > (b.started or 0) end)
  local link = o.link or function(id) return "calls/" .. id end
  local title = o.title or "graphcall: calls"
  local parts = { '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" '
    .. 'content="width=device-width, initial-scale=1"><meta http-equiv="refresh" content="' .. (o.refresh or 2)
    .. '"><title>' .. esc(title) .. "</title><style>"
    .. "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;width:100%;"
    .. "font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top}"
    .. "th{background:#f3f3f3}td.step{overflow-wrap:anywhere}td.n{text-align:right;white-space:nowrap}"
    .. ".live{color:#0a7d32;font-weight:bold}.ended{color:#777}.k{color:#666}"
    .. "@media (max-width:700px){.wide{display:none}}</style></head><body>",
    "<h1>" .. esc(title) .. "</h1>",
    string.format('<p class="k">%d live, %d recent; this page reloads every %d s.</p>', #live, #recent,
      o.refresh or 2) }
  local function rows(list, cls)
    if #list == 0 then return '<p class="k">None.</p>' end
    local out = { '<table><tr><th>call</th><th>state</th><th>flow step</th><th>duration</th>'
      .. '<th class="wide">started (UTC)</th><th class="wide">direction</th><th class="wide">node</th>'
      .. '<th class="wide">events</th></tr>' }
    for _, c in ipairs(list) do
      out[#out + 1] = string.format('<tr><td><a href="%s">%s</a></td><td class="%s">%s</td><td class="step">%s</td>'
        .. '<td class="n">%.1f s</td><td class="wide">%s</td><td class="wide">%s</td><td class="wide">%s</td>'
        .. '<td class="n wide">%d</td></tr>',
        esc(link(c.id)), esc(c.id), cls, esc(c.state or "-"), esc(c.step or "-"), (c.ms or 0) / 1000,
        c.started and os.date("!%H:%M:%S", math.floor(c.started / 1000)) or "-", esc(c.direction or "-"),
        esc(c.node or "-"), c.events or 0)
    end
    out[#out + 1] = "</table>"
    return table.concat(out, "\n")
  end
  parts[#parts + 1] = "<h2>live</h2>"
  parts[#parts + 1] = rows(live, "live")
  parts[#parts + 1] = "<h2>recent</h2>"
  parts[#parts + 1] = rows(recent, "ended")
  parts[#parts + 1] = "</body></html>\n"
  return table.concat(parts, "\n")
end

local Trace = {}
Trace.__index = Trace

--- A trace of a bot's calls (read from its store when written).
function M.new(bot) return setmetatable({ bot = bot }, Trace) end

--- Write every call the bot has seen as one HTML page.
-- @return the path
function Trace:write(path)
  local ids = {}
  for id in pairs(self.bot.calls) do ids[#ids + 1] = id end
  for id in pairs(self.bot.runtime and self.bot.runtime.away or {}) do ids[#ids + 1] = id end   -- (let go of)
  table.sort(ids)
  local calls = {}
  for _, id in ipairs(ids) do calls[#calls + 1] = { id = id, entries = self.bot.store:log(id) } end
  assert(core.private_file(path))   -- callers' numbers: the bot's user alone reads it
  local f = assert(io.open(path, "w"))
  f:write(M.html(calls, "graphcall trace"))
  f:close()
  return path
end

return M
