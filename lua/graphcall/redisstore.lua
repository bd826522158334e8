--- Calls' state and logs in Redis, for several nodes (or nginx instances) sharing calls: the
-- store interface of `graphcall.store`, plus what a shared runtime needs (a per-call lease
-- with a fencing token, deadlines, keepAlive times). Made with `graphcall.store.redis(o)`.
--
-- Keys carry the call id as a hash tag, so all of a call's keys live in one slot (Redis
-- Cluster): `gc:{id}:log` (a list of JSON entries), `gc:{id}:st` (the bot's state),
-- `gc:{id}:trk` (the tracker's), `gc:{id}:hd` (a hash: flow, dir, tenant, state, ended),
-- `gc:{id}:lease` and `gc:{id}:fence`. Three keys are not per call: `gc:calls` (calls with a
-- log), `gc:due` and `gc:ka` (sorted sets of deadlines and keepAlive times).
--
-- **Fencing.** `lock(id)` takes the call's lease and a fencing token (a counter that only
-- grows). Every write made under it runs as a script that checks the lease still holds that
-- token, so a node whose lease ran out (it stalled, it was cut off) fails its writes with
-- `fenced`, and since an action's intent is logged before the action is sent, it sends
-- nothing. Appends are atomic (RPUSH and the head in one script).
-- @module graphcall.redisstore
local core = require "graphcall.core"
local tracker = require "graphcall.tracker"
local json = require("graphcall.wire").json

local M = {}
local Store = {}
Store.__index = Store

-- a write under the lease: KEYS[1] the lease, ARGV[1] the token ("" = not under a lease)
local FENCE = [[
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease of this call is held by another node')
end
]]

-- KEYS: lease, log, head, tracker state, inbox; ARGV: token, entry, ms to keep, tracker state
-- to write (or ""), "1" to take the inbox's first entry, then the head's fields
local APPEND = FENCE .. [[
local n = redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[3]) end
if ARGV[5] == '1' then redis.call('LPOP', KEYS[5]) end
if #ARGV > 5 then
  redis.call('HSET', KEYS[3], unpack(ARGV, 6))
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return n
]]

-- an inbox entry dropped (a duplicate): KEYS lease, tracker state, inbox; ARGV token, ms, state
local DROP = FENCE .. [[
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2]) end
return redis.call('LPOP', KEYS[3])
]]

local SET = FENCE .. [[
return redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
]]

local LOCK = [[
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], t, 'PX', ARGV[1])
return t
]]

local RENEW = [[
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
]]

local UNLOCK = [[
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
]]

local function key(id, what) return "gc:{" .. id .. "}:" .. what end

--- What a store raises when it cannot do a write or a read: `{code = "store", message}`, or
-- `{code = "fenced"}` when the call's lease is held by another node. The runtime retries the
-- work that raised it (`graphcall.runtime`); a flow never sees it as its own failure.
local function store_error(code, message)
  return setmetatable({ code = code, message = message, path = "", store = true }, core.error_mt)
end
M.error = store_error

-- a command that must work: raises with the error (the step that wrote does not happen)
local function must(self, ...)
  local v, err = self.redis:call(...)
  if v == nil and err then
    error(store_error("store", "Redis: " .. tostring(err.message or err.code)), 0)
  end
  return v
end

-- a script, loaded once per client (EVALSHA, and EVAL when the server lost it)
local function script(self, src, nkeys, ...)
  local sha = self.shas[src]
  if sha then
    local v, err = self.redis:call("EVALSHA", sha, nkeys, ...)
    if v ~= nil or not (err and err.message and err.message:find("^NOSCRIPT")) then return v, err end
  end
  self.shas[src] = must(self, "SCRIPT", "LOAD", src)
  return self.redis:call("EVALSHA", self.shas[src], nkeys, ...)
end

-- keys: the keys written (a key or a list); the lease is always KEYS[1]
local unpack = table.unpack or unpack   -- luacheck: ignore 143
local function fenced(self, id, src, keys, ...)
  if type(keys) ~= "table" then keys = { keys } end
  local args = { key(id, "lease") }
  for i, k in ipairs(keys) do args[i + 1] = k end
  args[#args + 1] = self.tokens[id] or ""
  local extra = table.pack and table.pack(...) or { n = select("#", ...), ... }
  for i = 1, extra.n do args[#args + 1] = extra[i] end
  local v, err = script(self, src, 1 + #keys, unpack(args))
  if v == nil and err then
    local msg = tostring(err.message or err.code)
    if msg:find("^FENCED") then error(store_error("fenced", "call " .. id .. ": fenced: " .. msg), 0) end
    error(store_error("store", "Redis: " .. msg), 0)
  end
  return v
end

--- A store on a `graphcall.redis` client.
-- @param o `redis` (a client), `ttl` (seconds an ended call's keys are kept, 3600), `keep`
--   (seconds a live call's keys are kept without a write, 4 * ttl), `sleep` (fn(ms), for
--   waiting on a lease: the loop's or ngx.sleep), `clock` (seconds, for that wait: os.time)
function M.new(o)
  assert(o and o.redis, "graphcall.store.redis: a graphcall.redis client (redis =)")
  local ttl = o.ttl or 3600
  return setmetatable({ redis = o.redis, ttl = ttl, keepMs = math.floor((o.keep or ttl * 4) * 1000),
                        tokens = {}, shas = {}, sleep = o.sleep, clock = o.clock or os.time,
                        pendingTrk = {}, popNext = {} }, Store)
end

--- The flow's state of a call (a table), or nil.
function Store:get(id)
  local v = must(self, "GET", key(id, "st"))
  return type(v) == "string" and core.decode(v) or nil
end

--- Keep the flow's state of a call, under its lease (fenced: refused when another holds it).
function Store:put(id, st) fenced(self, id, SET, key(id, "st"), json(st), self.keepMs) end

-- what an entry changes in the head: flow, direction and tenant at the start, the call's
-- state from its events, ended at the end
local function head_fields(entry)
  local k, ev = entry.k, entry.ev
  if k == "start" then
    return "flow", entry.flow or "main", "dir", entry.dir or "", "tenant", entry.tenant or ""
  elseif k == "end" then
    return "ended", "1"
  elseif k == "ev" and ev.kind == "call" and ev.state then
    return "state", ev.state
  end
end

--- Add an entry to a call's log, under its lease, with its head, its tracker state and the
-- inbox entry it came from in the same write (all or none).
function Store:append(id, entry)
  -- with the tracker's state kept back for it (tracker{defer}) and the inbox entry it came from
  local trk, pop = self.pendingTrk[id] or "", self.popNext[id] and "1" or ""
  local n = fenced(self, id, APPEND, { key(id, "log"), key(id, "hd"), key(id, "trk"), key(id, "in") },
                   json(entry), self.keepMs, trk, pop, head_fields(entry))
  self.pendingTrk[id], self.popNext[id] = nil, nil
  if n == 1 then must(self, "SADD", "gc:calls", id) end
end

-- ---- the inbox: notifications accepted (answered 202) and not yet in the log ----------------

--- Keep an accepted notification's event (JSON text) in the call's inbox, before the 202: a
-- node that dies after answering leaves it to the others (`gc:inbox` says since when).
function Store:push(id, text, now)
  must(self, "RPUSH", key(id, "in"), text)
  must(self, "ZADD", "gc:inbox", "NX", now or math.floor(self.clock() * 1000), id)
end

--- The call's inbox, oldest first (JSON texts).
function Store:inbox(id)
  local v = must(self, "LRANGE", key(id, "in"), 0, -1)
  return type(v) == "table" and v or {}
end

--- The next `append` takes the inbox's first entry with it, in the same script.
function Store:take_with_next(id) self.popNext[id] = true end

--- Drop the inbox's first entry (a duplicate), with the tracker's state kept back.
function Store:drop_first(id)
  fenced(self, id, DROP, { key(id, "trk"), key(id, "in") }, self.keepMs, self.pendingTrk[id] or "")
  self.pendingTrk[id], self.popNext[id] = nil, nil
end

--- The inbox is empty (under the lease): forget it, unless an entry came meanwhile.
function Store:inbox_done(id, now)
  must(self, "ZREM", "gc:inbox", id)
  if (must(self, "LLEN", key(id, "in")) or 0) > 0 then
    must(self, "ZADD", "gc:inbox", now or math.floor(self.clock() * 1000), id)
  end
end

--- Since when (ms) the call's inbox has entries nobody took, or nil.
function Store:inbox_since(id) return tonumber((must(self, "ZSCORE", "gc:inbox", id))) end

--- Calls with inbox entries since before `before` (ms): left by a node that died.
function Store:inbox_due(before)
  return must(self, "ZRANGEBYSCORE", "gc:inbox", "-inf", before, "LIMIT", 0, 100)
end

--- The call's head: {flow, dir, tenant, state, ended} as its log says, or nil.
function Store:head(id)
  local v = must(self, "HGETALL", key(id, "hd"))
  if type(v) ~= "table" or #v == 0 then return nil end
  local h = {}
  for i = 1, #v, 2 do h[v[i]] = v[i + 1] end
  if h.dir == "" then h.dir = nil end
  if h.tenant == "" then h.tenant = nil end
  h.ended = h.ended == "1" or nil
  return h
end

--- A call's log, its entries in order.
function Store:log(id)
  local out = {}
  for _, line in ipairs(must(self, "LRANGE", key(id, "log"), 0, -1)) do
    local e = core.decode(line)
    if type(e) == "table" then out[#out + 1] = e end
  end
  return out
end

--- The ids of the calls the store has, sorted.
function Store:calls()
  local v = must(self, "SMEMBERS", "gc:calls")
  table.sort(v)
  return v
end

--- How many calls are live: in the list of calls (an ended one leaves it).
function Store:live_count() return must(self, "SCARD", "gc:calls") end

--- Whether Redis answers (raises when it does not, as every command of the store).
function Store:ping() return must(self, "PING") == "PONG" end

local PARTS = { "log", "st", "trk", "hd", "in" }

--- Forget a call now (its log, state, tracker, head and inbox).
function Store:drop(id)
  for _, p in ipairs(PARTS) do must(self, "DEL", key(id, p)) end
  must(self, "SREM", "gc:calls", id)
end

--- An ended call: its keys go after `seconds` (the store's ttl).
function Store:expire(id, seconds)
  local ms = math.floor((seconds or self.ttl) * 1000)
  for _, p in ipairs(PARTS) do must(self, "PEXPIRE", key(id, p), ms) end
  must(self, "ZREM", "gc:due", id)
  must(self, "ZREM", "gc:ka", id)
  must(self, "ZREM", "gc:inbox", id)
  -- last: once the call has left the list of calls, nothing is due for it any more
  must(self, "SREM", "gc:calls", id)
  must(self, "LPUSH", "gc:recent", id)   -- the calls page lists the last hundred ended
  must(self, "LTRIM", "gc:recent", 0, 99)
end

--- The ids of the calls that ended last (a hundred at most; their logs go after the ttl).
function Store:recent() return must(self, "LRANGE", "gc:recent", 0, 99) end

--- The tracker's state of each call, as `graphcall.tracker` wants a store (the `seen` set is
-- its fingerprint ring again, so it is not written). With `defer`, a put is kept back and
-- written by the next `append` or `drop_first` of the call, in the same script.
function Store:tracker(defer)
  return tracker.text_store(function(id)
    local v = must(self, "GET", key(id, "trk"))
    return type(v) == "string" and v or nil
  end, function(id, text)
    if defer then self.pendingTrk[id] = text return end
    fenced(self, id, SET, key(id, "trk"), text, self.keepMs)
  end, json, core.decode)
end

--- Take the call's lease for `ttl` seconds, waiting up to `wait` seconds for it.
-- @return a release function and the fencing token, or nil and "timeout"
function Store:lock(id, ttl, wait)
  local deadline = self.clock() + (wait or 10)
  local pause = 2
  while true do
    local t = script(self, LOCK, 2, key(id, "lease"), key(id, "fence"), math.floor((ttl or 30) * 1000),
                     self.keepMs)
    if t and t ~= core.null then         -- a Lua false from the script is a nil reply
      self.tokens[id] = tostring(t)
      return function()
        if self.tokens[id] == tostring(t) then self.tokens[id] = nil end
        script(self, UNLOCK, 1, key(id, "lease"), tostring(t))
      end, t
    end
    if self.clock() >= deadline or not self.sleep then return nil, "timeout" end
    self.sleep(pause)
    pause = math.min(pause * 2, 50)
  end
end

--- Extend the lease this store holds on the call to `ttl` seconds from now (a long step).
-- @return true, or false when the lease is not this store's any more
function Store:renew(id, ttl)
  local t = self.tokens[id]
  if not t then return false end
  local v = script(self, RENEW, 1, key(id, "lease"), t, math.floor((ttl or 30) * 1000))
  return v == 1
end

-- Deadlines (ms since the epoch) of flows that wait, and keepAlive times: sorted sets.

--- Set when a call's flow is due (a deadline's half millisecond is meaningful: the
-- runtime's watchdogs).
function Store:set_due(id, at) must(self, "ZADD", "gc:due", string.format("%.1f", at), id) end
--- The call's flow waits for no deadline any more.
function Store:clear_due(id) must(self, "ZREM", "gc:due", id) end
--- Calls whose flows are due at `now` (at most 100).
function Store:due(now) return must(self, "ZRANGEBYSCORE", "gc:due", "-inf", now, "LIMIT", 0, 100) end
--- Set when a call's next keepAlive is due.
function Store:set_ka(id, at) must(self, "ZADD", "gc:ka", at, id) end
--- The call needs no keepAlive any more.
function Store:clear_ka(id) must(self, "ZREM", "gc:ka", id) end
--- Calls whose keepAlive is due at `now` (at most 100).
function Store:ka_due(now) return must(self, "ZRANGEBYSCORE", "gc:ka", "-inf", now, "LIMIT", 0, 100) end
--- When a call's next keepAlive is due, or nil.
function Store:ka_at(id) return tonumber((must(self, "ZSCORE", "gc:ka", id))) end
--- When a call's flow is due, or nil.
function Store:due_at(id) return tonumber((must(self, "ZSCORE", "gc:due", id))) end

return M
