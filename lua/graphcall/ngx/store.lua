--- Calls' state and logs in an nginx shared dict, for the workers of one nginx: the store
-- interface of `graphcall.store` and what `graphcall.runtime` needs beside it (a per-call
-- lock, deadlines, keepAlive times), written with `safe_set`/`safe_add` only, so that nothing
-- is ever evicted. `graphcall.ngx` makes it; with Redis, `graphcall.store.redis` serves instead.
-- @module graphcall.ngx.store
local core = require "graphcall.core"
local tracker = require "graphcall.tracker"
local json = require("graphcall.wire").json

local M = {}

local function decode(s) return s and core.decode(s) or nil end

-- Every write goes through safe_set/safe_add: a full dict refuses the write instead of
-- evicting the least recently used entries, which would be another call's log.
local function put(dict, key, value, ttl)
  local ok, err = dict:safe_set(key, value, ttl or 0)
  if not ok then   -- a store error: the runtime retries what wrote it
    error(setmetatable({ code = "store", store = true, path = "",
      message = "the shared dict is full (" .. tostring(err) .. "), cannot write " .. key }, core.error_mt), 0)
  end
end
M.put = put

--- Take `key` in `dict` (a lock another worker may hold): retries for up to `wait` seconds.
-- @return a release function and the lock's token, or nil and "timeout" (or the dict's error)
function M.lock(dict, key, ttl, wait)
  local token = tostring(ngx.worker.pid()) .. ":" .. tostring(math.random())
  local deadline = ngx.now() + (wait or 10)
  local pause = 0.001
  while true do
    local ok, err = dict:safe_add(key, token, ttl or 30)
    if ok then
      return function()
        if dict:get(key) == token then dict:delete(key) end
      end, token
    end
    if err ~= "exists" then return nil, err end
    if ngx.now() >= deadline then return nil, "timeout" end
    ngx.sleep(pause)
    pause = math.min(pause * 2, 0.05)
  end
end

--- A store (the interface of `graphcall.store`) in a shared dict, written under the call's
-- lock: `st:<id>` (JSON), `log:<id>` (the number of log entries) and `le:<id>:<n>` (entry n,
-- JSON), so an append writes one entry and never rewrites the log. Nothing is evicted: when
-- the dict is full a write raises an error and the step that wrote it does not happen (see
-- `handle` for the reserve that keeps room for accepted notifications). Ended calls expire
-- after `ttl` seconds.
function M.new(dict, ttl)
  ttl = ttl or 3600
  local keep = ttl * 4     -- a live call's entries outlast any call
  local s = {}
  function s.get(_, id) return decode(dict:get("st:" .. id)) end
  function s.put(_, id, st) put(dict, "st:" .. id, json(st), keep) end
  function s.append(self, id, entry)
    local n = (dict:get("log:" .. id) or 0) + 1
    put(dict, "le:" .. id .. ":" .. n, json(entry), keep)
    put(dict, "log:" .. id, n, keep)
    -- the head: what a worker needs to know before reading the whole log
    local k, ev = entry.k, entry.ev
    if k == "start" or k == "end" or (k == "ev" and ev.kind == "call" and ev.state) then
      local hd = self:head(id) or {}
      if k == "ev" and hd.state == ev.state then return end
      if k == "start" then hd.flow, hd.dir, hd.tenant = entry.flow, entry.dir, entry.tenant
      elseif k == "end" then hd.ended = true
      else hd.state = ev.state end
      put(dict, "hd:" .. id, json(hd), keep)
    end
  end
  --- The call's head: {flow, dir, tenant, state, ended} as its log says, or nil.
  function s.head(_, id) return decode(dict:get("hd:" .. id)) end
  function s.log(_, id)
    local out = {}
    for i = 1, dict:get("log:" .. id) or 0 do
      local e = decode(dict:get("le:" .. id .. ":" .. i))
      if type(e) ~= "table" then break end      -- expired: the rest is gone too
      out[#out + 1] = e
    end
    return out
  end
  function s.calls()
    local out = {}
    for _, k in ipairs(dict:get_keys(0)) do
      local id = k:match("^log:(.+)$")
      if id then out[#out + 1] = id end
    end
    return out
  end
  local function each(id, fn)
    for i = 1, dict:get("log:" .. id) or 0 do fn("le:" .. id .. ":" .. i) end
    for _, k in ipairs { "log:", "st:", "trk:", "hd:" } do fn(k .. id) end
  end
  function s.drop(_, id) each(id, function(k) dict:delete(k) end) end
  function s.expire(_, id, seconds)   -- an ended call: kept a while for traces, then gone
    each(id, function(k) dict:expire(k, seconds or ttl) end)
    dict:delete("due:" .. id)
    dict:delete("ka:" .. id)
  end
  -- what the runtime needs beside the store (graphcall.redisstore has the same)
  local tokens = {}
  function s.lock(_, id, lttl, wait)
    local release, token = M.lock(dict, "lock:" .. id, lttl, wait)
    if not release then return nil, token end
    tokens[id] = token
    return function()
      if tokens[id] == token then tokens[id] = nil end
      release()
    end, token
  end
  function s.renew(_, id, lttl)
    local t = tokens[id]
    if not t or dict:get("lock:" .. id) ~= t then return false end
    return dict:expire("lock:" .. id, lttl) == true
  end
  function s.tracker()
    return tracker.text_store(function(id) return dict:get("trk:" .. id) end,
                              function(id, text) put(dict, "trk:" .. id, text, keep) end, json, core.decode)
  end
  -- Deadlines and keepAlive times: `due:<id>` / `ka:<id>` hold them (the truth), and an index
  -- finds the ones that are due without walking the dict: a list per SLOT ms (`dq:<slot>`,
  -- `kq:<slot>`) that each set appends the call to, taken whole by the first sweep after its
  -- slot has passed (an entry whose time has moved or gone since is skipped). A sweep costs
  -- what is due, not what is stored. A full walk happens when the index has no cursor (a
  -- fresh dict) and every `FULL` seconds, in case a worker died holding entries it had taken.
  local SLOT, FULL = 50, 300
  local function scan(prefix, now)
    local out = {}
    for _, k in ipairs(dict:get_keys(0)) do
      local id = k:sub(1, #prefix) == prefix and k:sub(#prefix + 1)
      local at = id and dict:get(k)
      if at and at <= now then out[#out + 1] = id end
    end
    return out
  end
  local function index(q, id, at)
    local ok, err = dict:rpush(q .. math.ceil(at / SLOT), id)
    if not ok then
      error(setmetatable({ code = "store", store = true, path = "", message = "the shared dict is full ("
        .. tostring(err) .. "), cannot index " .. id }, core.error_mt), 0)
    end
  end
  local function due_from(q, prefix, now)
    local cursor, last = q .. "next", dict:get(q .. "full")
    local from, to = dict:get(cursor), math.floor(now / SLOT)
    local out, seen = {}, {}
    for slot = from or to + 1, to do
      local k = q .. slot
      while true do
        local id = dict:lpop(k)
        if not id then break end
        local at = not seen[id] and dict:get(prefix .. id)
        if at and at <= now then
          seen[id] = true
          out[#out + 1] = id
        end
      end
    end
    if not from or to + 1 > from then dict:safe_set(cursor, to + 1) end
    if not from or not last or now - last > FULL * 1000 then
      dict:safe_set(q .. "full", now)
      return scan(prefix, now)
    end
    return out
  end
  function s.set_due(_, id, at)
    put(dict, "due:" .. id, at, keep)
    index("dq:", id, at)
  end
  function s.clear_due(_, id) dict:delete("due:" .. id) end
  function s.due_at(_, id) return dict:get("due:" .. id) end
  function s.due(_, now) return due_from("dq:", "due:", now) end
  function s.set_ka(_, id, at)
    put(dict, "ka:" .. id, at, 0)
    index("kq:", id, at)
  end
  function s.clear_ka(_, id) dict:delete("ka:" .. id) end
  function s.ka_at(_, id) return dict:get("ka:" .. id) end
  function s.ka_due(_, now) return due_from("kq:", "ka:", now) end
  return s
end

return M
