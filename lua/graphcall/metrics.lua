--- What a bot counts, in Prometheus's text format (exposition format 0.0.4).
--
--   local metrics = require "graphcall.metrics"
--   local m = metrics.new()                               -- this process's counters
--   local m = metrics.new { dict = ngx.shared.graphcall } -- nginx: summed over the workers
--   m:inc("refused", 1, "403")
--   m:observe("action_seconds", 0.120, "playPrompt")
--   io.write(m:render { calls_live = 3 })
--
-- A bot makes one and counts into it (`bot.metrics`); its listener serves it at `/metrics`,
-- and `graphcall.ngx.metrics()` in an nginx location. The series are `M.DEFS`; a labelled
-- series appears once it has been counted, an unlabelled one always.
-- @module graphcall.metrics
local M = {}

-- Buckets of the action latency histogram, in seconds.
M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

--- The series: short name -> Prometheus name, type, help, label names. Gauges, and the
-- counters marked `given` (kept elsewhere), are given at render time.
M.DEFS = {
  { "received", "graphcall_notifications_received_total", "counter",
    "Callback POSTs received on the callback path." },
  { "refused", "graphcall_notifications_refused_total", "counter",
    "Callbacks refused, by the status answered: 403 (no valid signature), 400 (not a notification), "
      .. "413 (too large), 503 (the store could not keep it).", { "status" } },
  { "dispatched", "graphcall_events_dispatched_total", "counter",
    "Notification events taken into a call's log and handed to its handlers and flow." },
  { "duplicates", "graphcall_events_duplicate_total", "counter",
    "Notification events dropped as duplicates (delivered twice, or older than what the call knows)." },
  { "actions", "graphcall_actions_total", "counter",
    "Requests sent to Graph and to the identity platform, by action and outcome "
      .. "(ok, 4xx, 5xx, or error: no answer).", { "action", "outcome" } },
  { "action_seconds", "graphcall_action_duration_seconds", "histogram",
    "Time from sending a request to its answer, retries included, by action.", { "action" } },
  { "calls_live", "graphcall_calls_live", "gauge", "Calls not ended, as the store has them." },
  { "flows_started", "graphcall_flows_started_total", "counter", "Flows started (resumed ones not counted)." },
  { "flows_ended", "graphcall_flows_ended_total", "counter", "Flows that ran to their end." },
  { "flows_failed", "graphcall_flows_failed_total", "counter", "Flows that raised an error." },
  { "lost", "graphcall_notifications_lost_total", "counter",
    "Notifications that never came: a deadline passed and the call was asked what happened." },
  { "resumes", "graphcall_flow_resumes_total", "counter",
    "Flows taken up again from their log (a restart, a failover, a deadline)." },
  { "let_go", "graphcall_flows_let_go_total", "counter",
    "Flows that waited longer than keepWaiting, let go of from memory (replayed from their log at their next event)." },
  { "takeovers", "graphcall_lease_takeovers_total", "counter",
    "Calls carried on after the process that held them died." },
  { "store_errors", "graphcall_store_errors_total", "counter",
    "Writes or reads the store refused or could not answer." },
  { "unreplicated", "graphcall_redis_unreplicated_total", "counter",
    "Writes graphcall waits to see on a replica (a notification's event, a flow's intents) that no replica "
      .. "acknowledged in time (a master without a replica in sync): a failover then may lose them." },
  { "connections_open", "graphcall_connections_open", "gauge",
    "Client connections open on the standalone listener now." },
  { "connections_closed", "graphcall_connections_closed_total", "counter",
    "Client connections the standalone listener closed: over its caps (evicted) or for want of a whole "
      .. "request by its deadline (late).", { "reason" }, given = true },
  { "accept_errors", "graphcall_accept_errors_total", "counter",
    "Connections the standalone listener could not accept (out of descriptors or memory).", given = true },
  { "info", "graphcall_build_info", "gauge", "1, labelled with the library's version and the interpreter.",
    { "version", "lua" } },
}

local by_name = {}
for _, d in ipairs(M.DEFS) do
  by_name[d[1]] = { name = d[2], type = d[3], help = d[4], labels = d[5], given = d.given }
end

local Metrics = {}
Metrics.__index = Metrics

-- Where the numbers live: a table of this process, or an nginx shared dict that every worker
-- adds to. A series' key is "short|label|label"; the dict also keeps the list of the keys it
-- has seen (numbered, so rendering needs no walk over the whole dict).
local SAMPLES = 10000   -- the last observations of a histogram kept in this process, for quantiles

local function local_store()
  local values, keys = {}, {}
  return {
    samples = {},
    add = function(key, n)
      local v = values[key]
      if v == nil then keys[#keys + 1] = key end
      values[key] = (v or 0) + n
    end,
    get = function(key) return values[key] end,
    keys = function() return keys end,
  }
end

local function dict_store(dict)
  return {
    add = function(key, n)
      local k = "m|" .. key
      -- incr without an initial value, safe_add: nothing evicted (the dict holds calls' state)
      if dict:incr(k, n) then return end
      if dict:safe_add(k, 0) then   -- this worker made the series: it goes into the index
        local i = dict:incr("m#n", 1)
        if not i then
          dict:safe_add("m#n", 0)
          i = dict:incr("m#n", 1)
        end
        if i then dict:safe_set("m#" .. i, key) end
      end
      dict:incr(k, n)
    end,
    get = function(key) return dict:get("m|" .. key) end,
    keys = function()
      local out = {}
      for i = 1, dict:get("m#n") or 0 do
        local key = dict:get("m#" .. i)
        if key then out[#out + 1] = key end
      end
      return out
    end,
  }
end

--- Counters of this process, or (`dict`) of an nginx shared dict, summed over its workers.
-- @param opts optional: `dict` (an `ngx.shared` dict)
-- @return the metrics
function M.new(opts)
  local dict = opts and opts.dict
  return setmetatable({ s = dict and dict_store(dict) or local_store() }, Metrics)
end

local function key(name, ...)
  local n = select("#", ...)
  if n == 0 then return name end
  local parts = { name }
  for i = 1, n do
    local v = tostring(select(i, ...)):gsub("|", "/")
    parts[i + 1] = v
  end
  return table.concat(parts, "|")
end

--- Add n (1 by default) to a counter, its label values after n.
-- @param name a short name of `M.DEFS` ("refused", "actions", ...)
-- @param n how many
-- @param label the first label value (none for a series without labels)
-- @param ... the other label values, in the order of the series' labels
function Metrics:inc(name, n, label, ...)
  -- (a series without labels, the most counted, without building its key)
  if label == nil and ... == nil then return self.s.add(name, n or 1) end
  self.s.add(key(name, label, ...), n or 1)
end

--- Observe a value of a histogram (seconds), its label values after it.
function Metrics:observe(name, v, ...)
  local bucket = #M.BUCKETS + 1
  for i, b in ipairs(M.BUCKETS) do
    if v <= b then bucket = i break end
  end
  local k = key(name, ...)
  self.s.add(k .. "|#" .. bucket, 1)
  self.s.add(k .. "|#sum", v)
  local ring = self.s.samples
  if ring then
    local r = ring[name] or { n = 0 }
    ring[name] = r
    r.n = r.n + 1
    r[(r.n - 1) % SAMPLES + 1] = v
  end
end

--- A quantile of a histogram's last observations in this process, whatever their labels
-- (nil when none, or when the counters are in a dict).
-- @param name the histogram's short name
-- @param q from 0 to 1 (0.5: the median)
function Metrics:quantile(name, q)
  local r = self.s.samples and self.s.samples[name]
  if not r or r.n == 0 then return nil end
  local sorted = {}
  for i = 1, math.min(r.n, SAMPLES) do sorted[i] = r[i] end
  table.sort(sorted)
  return sorted[math.max(1, math.ceil(q * #sorted))]
end

--- The sum of a counter over all its label values (`m:total("actions")`), or over those
-- whose labels `match(values)` accepts.
function Metrics:total(name, match)
  local n = 0
  for _, k in ipairs(self.s.keys()) do
    local parts = {}
    for p in (k .. "|"):gmatch("([^|]*)|") do parts[#parts + 1] = p end
    if table.remove(parts, 1) == name and (not match or match(parts)) then n = n + (self.s.get(k) or 0) end
  end
  return n
end

--- The value of a series (nil when never counted): `m:get("refused", "403")`.
function Metrics:get(name, ...)
  return self.s.get(key(name, ...))
end

local function escape(v)
  return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function labels(names, values, extra)
  local out = {}
  for i, n in ipairs(names or {}) do out[#out + 1] = n .. '="' .. escape(values[i] or "") .. '"' end
  if extra then out[#out + 1] = extra end
  if #out == 0 then return "" end
  return "{" .. table.concat(out, ",") .. "}"
end

local function number(v)
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  local short = string.format("%.15g", v)   -- the shortest that reads back the same
  if tonumber(short) == v then return short end
  return string.format("%.17g", v)
end

--- The text Prometheus scrapes (`Content-Type: text/plain; version=0.0.4`).
-- @param gauges the values given now: `{ calls_live = n, connections_closed = { late = n } }`
-- @return the text
function Metrics:render(gauges)
  gauges = gauges or {}
  local series = {}   -- short name -> list of {values, key}
  for _, k in ipairs(self.s.keys()) do
    local parts = {}
    for p in (k .. "|"):gmatch("([^|]*)|") do parts[#parts + 1] = p end
    local name = table.remove(parts, 1)
    local d = by_name[name]
    if d and d.type == "histogram" then
      local list = series[name] or {}
      series[name] = list
      local tag = table.remove(parts)   -- "#3", "#sum"
      local id = table.concat(parts, "|")
      local h = list[id]
      if not h then
        h = { values = parts, buckets = {} }
        list[id] = h
        list[#list + 1] = h
      end
      if tag == "#sum" then h.sum = self.s.get(k) else h.buckets[tonumber(tag:sub(2))] = self.s.get(k) end
    elseif d and d.labels then
      local list = series[name] or {}
      series[name] = list
      list[#list + 1] = { values = parts, value = self.s.get(k) }
    end
  end
  local out = {}
  for _, def in ipairs(M.DEFS) do
    local short = def[1]
    local d = by_name[short]
    out[#out + 1] = "# HELP " .. d.name .. " " .. d.help
    out[#out + 1] = "# TYPE " .. d.name .. " " .. d.type
    if short == "info" then
      out[#out + 1] = d.name .. labels(d.labels, { gauges.version or "", jit and jit.version or _VERSION }) .. " 1"
    elseif d.type == "histogram" then
      for _, h in ipairs(series[short] or {}) do
        local cum = 0
        for i, b in ipairs(M.BUCKETS) do
          cum = cum + (h.buckets[i] or 0)
          local le = 'le="' .. number(b) .. '"'
          out[#out + 1] = d.name .. "_bucket" .. labels(d.labels, h.values, le) .. " " .. number(cum)
        end
        cum = cum + (h.buckets[#M.BUCKETS + 1] or 0)
        out[#out + 1] = d.name .. "_bucket" .. labels(d.labels, h.values, 'le="+Inf"') .. " " .. number(cum)
        out[#out + 1] = d.name .. "_sum" .. labels(d.labels, h.values) .. " " .. number(h.sum or 0)
        out[#out + 1] = d.name .. "_count" .. labels(d.labels, h.values) .. " " .. number(cum)
      end
    elseif d.type == "gauge" then
      out[#out + 1] = d.name .. " " .. number(gauges[short] or 0)
    elseif d.given and d.labels then   -- counted elsewhere (the listener's C side): label -> value
      local list = {}
      for label, v in pairs(gauges[short] or {}) do list[#list + 1] = { label, v } end
      table.sort(list, function(a, b) return a[1] < b[1] end)
      for _, lv in ipairs(list) do out[#out + 1] = d.name .. labels(d.labels, { lv[1] }) .. " " .. number(lv[2]) end
    elseif d.given then
      out[#out + 1] = d.name .. " " .. number(gauges[short] or 0)
    elseif d.labels then
      local list = series[short] or {}
      table.sort(list, function(a, b) return table.concat(a.values, "|") < table.concat(b.values, "|") end)
      for _, s in ipairs(list) do
        out[#out + 1] = d.name .. labels(d.labels, s.values) .. " " .. number(s.value or 0)
      end
    else
      out[#out + 1] = d.name .. " " .. number(self.s.get(short) or 0)
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- The Content-Type of `render`'s text.
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

return M
