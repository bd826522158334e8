--- Calls' state and logs in Redis, for several nodes (or nginx instances) sharing calls: the
-- store interface of `graphcall.store`, plus what a shared runtime needs (a per-call lease
-- with a fencing token, deadlines, keepAlive times). Made with `graphcall.store.redis(o)`.
--
-- Keys carry the call id as a hash tag, so all of a call's keys live in one slot (Redis
-- Cluster): `gc:{id}:log` (a list of JSON entries), `gc:{id}:st` (the bot's state),
-- `gc:{id}:hd` (a hash: flow, dir, tenant, state, ended, the tracker's state `trk`, `x` when
-- the keys' time to live was last extended, and the lease: its token `ls`, until when it
-- holds `lx`, the last fencing token `fn`; `q` when the inbox may hold entries; `w` what can
-- end the parked flow's wait) and `gc:{id}:in` (the inbox). The lease lives in the head so
-- that a function that reads or writes the head takes or lets go of it in the same command.
-- Keys not per call: `gc:calls` (calls with a log), `gc:due` and `gc:ka` (sorted sets of
-- deadlines and keepAlive times), `gc:inbox` (calls whose inbox waits), `gc:recent` (calls
-- that ended last).
--
-- **One round trip per notification.** `ingest` runs the tracker (`graphcall.tracker`, the
-- same source, inside Redis), the log's append, the head and, for a call whose flow is to go
-- on, the lease, in one function of the store's Redis library: a notification of a call
-- without a flow costs one round trip and four commands; one its parked flow does not wait
-- for, the same.
--
-- **Fencing.** `lock(id)` takes the call's lease and a fencing token (a counter that only
-- grows). Every write made under it runs as a function that checks the head still holds that
-- token, so a node whose lease another took (it stalled, it was cut off) fails its writes with
-- `fenced`, and since an action's intent is logged before the action is sent, it sends
-- nothing. Appends are atomic (RPUSH and the head in one function).
-- @module graphcall.redisstore
local core = require "graphcall.core"
local tracker = require "graphcall.tracker"
local json = require("graphcall.wire").json

-- seconds since the epoch, to the millisecond: when a lease runs out (nginx's clock there)
local ngx = rawget(_G, "ngx")
local wall = ngx and ngx.now or (function()
  local gio = require "graphcall.io"
  return function() return gio.wall() / 1000 end
end)()

local M = {}
local Store = {}
Store.__index = Store

-- A write under the lease: KEYS[1] the head, ARGV[1] the token ("" = not under a lease).
-- The token is checked, not the lease's time: a lease that ran out is refused once another
-- node took the call (its token replaced this one), and harmless until then.
local FENCE = [[
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'ls') ~= ARGV[1] then
  return redis.error_reply('FENCED the lease of this call is held by another node')
end
]]

-- entries sent as one argument, "\n" between them (JSON text has no raw newline)
local LINES = [[
local function lines(text)
  local out, i = {}, 1
  while true do
    local j = string.find(text, '\n', i, true)
    out[#out + 1] = string.sub(text, i, (j or 0) - 1)
    if not j then return out end
    i = j + 1
  end
end
]]

-- A write of the call's flow under its lease: entries, the tracker's state, the inbox entry
-- they came from, the head, the deadline and the lease itself, each when given. KEYS head
-- (the lease's), log, head, inbox, gc:due, gc:calls; ARGV token, entries (JSON, "\n" between
-- them; "" for none), ms to keep, tracker state (or ""), "1" to take the inbox's first entry,
-- the deadline ("" leave it, "-" clear it), the call's id, "1" to let go of the lease, then the
-- head's fields. The keys' time to live is set with the log's first entry (then kept by
-- `ingest`). `park` (the park's): the lease is let go unless the inbox may hold entries; then
-- the answer is 'q', with the head's fields and the deadline left for the park to write with
-- what it takes. Returns 1 when entries wait after the lease was let go.
local WRITE_FN = "local function write(KEYS, ARGV, park)\n" .. [[
local h = redis.call('HMGET', KEYS[1], 'ls', 'q')
if ARGV[1] ~= '' and h[1] ~= ARGV[1] then
  return redis.error_reply('FENCED the lease of this call is held by another node')
end
local letgo = ARGV[8] == '1' or (park and h[2] ~= '1')
local set = {}
if ARGV[4] ~= '' then set[1], set[2] = 'trk', ARGV[4] end
for k = 9, #ARGV do set[#set + 1] = ARGV[k] end
if letgo then set[#set + 1], set[#set + 2] = 'ls', '' end
local later = park and not letgo
if #set > 0 and not later then redis.call('HSET', KEYS[3], unpack(set)) end
local n = 0
if ARGV[2] ~= '' then
  local entries = lines(ARGV[2])
  n = redis.call('RPUSH', KEYS[2], unpack(entries))
  if n == #entries then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
    redis.call('SADD', KEYS[6], ARGV[7])
  end
end
if ARGV[5] == '1' then redis.call('LPOP', KEYS[4]) end
if later then return 'q', set, ARGV[6] end
if ARGV[6] == '-' then redis.call('ZREM', KEYS[5], ARGV[7])
elseif ARGV[6] ~= '' then redis.call('ZADD', KEYS[5], ARGV[6], ARGV[7]) end
if letgo and h[2] == '1' then return redis.call('EXISTS', KEYS[4]) end
return 0
end
]]
local WRITE = "return write(KEYS, ARGV)\n"   -- (the library has `write`)

-- nothing: a write for a WAIT to follow on its connection
local ACK = "return 1\n"

-- an inbox entry dropped (a duplicate): KEYS head (the lease's), head, inbox; ARGV token, tracker state,
-- its fingerprints (each "" for none)
local DROP = FENCE .. [[
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], 'trk', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'fp', ARGV[3]) end
return redis.call('LPOP', KEYS[3])
]]

-- the tracker's state, written on its own (an operation the bot started): KEYS head (the lease's), head
local SETTRK = FENCE .. [[
if ARGV[3] ~= '' then return redis.call('HSET', KEYS[2], 'trk', ARGV[2], 'fp', ARGV[3]) end
return redis.call('HSET', KEYS[2], 'trk', ARGV[2])
]]

local SET = FENCE .. [[
return redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
]]

-- KEYS head; ARGV lease ms, ms to keep, now (ms): the new fencing token, or false (held). A
-- head made here (a call without a log yet) is kept as the fence was, `keep` ms.
local LOCK = [[
local h = redis.call('HMGET', KEYS[1], 'ls', 'lx', 'fn')
if h[1] and h[1] ~= '' and (tonumber(h[2]) or 0) > tonumber(ARGV[3]) then return false end
local t = (tonumber(h[3]) or 0) + 1
redis.call('HSET', KEYS[1], 'ls', t, 'lx', ARGV[3] + ARGV[1], 'fn', t, 'w', '')
if not h[3] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return t
]]

-- KEYS head; ARGV token, lease ms, now (ms)
local RENEW = [[
if redis.call('HGET', KEYS[1], 'ls') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lx', ARGV[3] + ARGV[2])
return 1
]]

-- KEYS head, inbox: 1 when entries wait in the inbox (for whoever takes the lease next)
local UNLOCK = [[
local h = redis.call('HMGET', KEYS[1], 'ls', 'q')
if h[1] == ARGV[1] then redis.call('HSET', KEYS[1], 'ls', '') end
if h[2] ~= '1' then return 0 end
return redis.call('EXISTS', KEYS[2])
]]

-- Keys. One bucket (one server): `gc:{id}:what` and the shared `gc:what`. Buckets (a
-- cluster): the call's keys and its bucket's shared keys carry the bucket's hash tag, so a
-- script that touches both stays in one slot: `gc:{tag}:id:what` and `gc:{tag}:what`.
local function key(self, id, what)
  if self.buckets == 1 then return "gc:{" .. id .. "}:" .. what end
  return "gc:{" .. self.tags[self:bucket(id) + 1] .. "}:" .. id .. ":" .. what
end

-- a shared key of the call's bucket
local function shared(self, id, what)
  if self.buckets == 1 then return "gc:" .. what end
  return "gc:{" .. self.tags[self:bucket(id) + 1] .. "}:" .. what
end

-- a shared key of bucket b (0-based)
local function bucket_key(self, b, what)
  if self.buckets == 1 then return "gc:" .. what end
  return "gc:{" .. self.tags[b + 1] .. "}:" .. what
end

-- The buckets' hash tags, one in each 1/n of the slots: with a cluster's slots split evenly
-- over its masters, so are the buckets (and the calls).
local tag_cache = {}
local function bucket_tags(n)
  if tag_cache[n] then return tag_cache[n] end
  local tags = {}
  for b = 0, n - 1 do
    local j = 0
    while math.floor(core.resp_slot("b" .. b .. "." .. j) * n / 16384) ~= b do j = j + 1 end
    tags[b + 1] = "b" .. b .. "." .. j
  end
  tag_cache[n] = tags
  return tags
end

--- The Redis key of a call's part (`log`, `st`, `hd`, `in`, `lease`, `fence`).
function Store:key(id, what) return key(self, id, what) end

--- The Redis key of a shared set (`calls`, `due`, `ka`, `inbox`, `recent`) the call is in.
function Store:shared_key(id, what) return shared(self, id, what) end

--- The bucket of a call (0-based): its id's slot, spread over the buckets.
function Store:bucket(id) return math.floor(core.resp_slot(id) * self.buckets / 16384) end

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

local unpack = table.unpack or unpack   -- luacheck: ignore 143
local pack = table.pack or function(...) return { n = select("#", ...), ... } end

-- A write, and with `ack` (and the store's `replicas`) a WAIT behind it on its connection:
-- acknowledged by that many replicas before it counts as done. When they do not within
-- `replicaTimeout` ms (no replica in sync), the write counts as unreplicated and that master's
-- writes are not waited for during 5 s (a WAIT holds its connection: each one timing out would
-- hold every write behind it), unless that master was replaced meanwhile.
local function send(self, ack, ...)
  if not ack or self.replicas == 0 then return self.redis:call(...) end
  local now, first = self.clock() * 1000, (select(4, ...))   -- (the script's first key)
  local node = self.redis.node_of and self.redis:node_of(first) or ""
  if (self.noWait[node] or 0) > now then
    self:_unreplicated()
    return self.redis:call(...)
  end
  local results = self.redis:pipeline({ pack(...), { n = 3, "WAIT", self.replicas, self.replicaTimeout } })
  local v, err = results[1][1], results[1][2]
  if err ~= nil then return v, err end
  -- WAIT cut off (the connection lost, its master maybe gone) or refused (UNBLOCKED: its master
  -- became a replica, and drops the write when it syncs): not done; the caller's retry finds it
  -- done, or does it
  local acked, werr = results[2][1], results[2][2]
  if werr then return nil, werr end
  if (tonumber(acked) or 0) < self.replicas then
    -- a master stopped (not killed) past a failover answers its clients before it learns it
    -- was replaced, and its writes are dropped then: done only if the cluster says it is still
    -- the master of the key's slot: the node that ran it (a MOVED or an ASK sends it on)
    if self.redis.refresh then
      node = results.node or node
      local ok, rerr = self.redis:refresh()
      if not ok then return nil, rerr end
      if self.redis:node_of(first) ~= node then
        return nil, { code = "failover", message = "WAIT: " .. node .. " is no longer the master of the key's slot" }
      end
    end
    self:_unreplicated()
    self.noWait[node] = now + 5000
  end
  return v
end

function Store:_unreplicated()
  self.unreplicated = self.unreplicated + 1
  if self.metrics then self.metrics:inc("unreplicated") end
end

-- this module's Redis library (below, once every script is defined)
local library

-- the library loaded where a server does not have it (a new server, one that restarted
-- without its data, another node of a cluster); another client may have loaded it meanwhile
local function load_library(self, lib)
  local ok, err = self.redis:call("FUNCTION", "LOAD", lib.text)
  if not ok and not (err and err.message and err.message:find("already exists", 1, true)) then return nil, err end
  return true
end

-- FCALL, the library loaded first where the server does not have it
local function fcall(self, ack, lib, name, nkeys, ...)
  local v, err = send(self, ack, "FCALL", name, nkeys, ...)
  if v ~= nil or not (err and err.message and err.message:find("Function not found", 1, true)) then
    return v, err
  end
  local ok, lerr = load_library(self, lib)
  if not ok then return nil, lerr end
  return send(self, ack, "FCALL", name, nkeys, ...)
end

-- one of this module's scripts, as its library's function; `ack`: `send`'s
local function eval(self, ack, src, nkeys, ...)
  local lib = library()
  return fcall(self, ack, lib, lib.names[src], nkeys, ...)
end

local function script(self, src, nkeys, ...) return eval(self, false, src, nkeys, ...) end

-- a write's answer, or what Redis refused it for raised: fenced (another node holds the call) or
-- the store's error
local function refused(id, v, err)
  if v == nil and err then
    local msg = tostring(err.message or err.code)
    if msg:find("FENCED", 1, true) then error(store_error("fenced", "call " .. id .. ": fenced: " .. msg), 0) end
    error(store_error("store", "Redis: " .. msg), 0)
  end
  return v
end

-- keys: the keys written (a key or a list); the head (the lease's) is always KEYS[1]; `ack`:
-- `send`'s
local function fenced(self, ack, id, src, keys, ...)
  if type(keys) ~= "table" then keys = { keys } end
  local args = { key(self, id, "hd") }
  for i, k in ipairs(keys) do args[i + 1] = k end
  args[#args + 1] = self.tokens[id] or ""
  local extra = pack(...)
  for i = 1, extra.n do args[#args + 1] = extra[i] end
  return refused(id, eval(self, ack, src, 1 + #keys, unpack(args)))
end

--- A store on a `graphcall.redis` client.
-- @param o `redis` (a client), `ttl` (seconds an ended call's keys are kept, 3600), `keep`
--   (seconds a live call's keys are kept without a write, 4 * ttl), `sleep` (fn(ms), for
--   waiting on a lease: the loop's or ngx.sleep), `clock` (seconds since the epoch, to the
--   millisecond: when a lease runs out; the nodes' clocks must agree within a fraction of a
--   lease, as NTP keeps them: a node whose clock runs ahead takes a call early, and the one
--   that held it is fenced, not doubled),
--   `buckets` (how many buckets the calls are spread over: 1 on one server, 16 on a cluster,
--   about five a master; every node of a deployment must use the same, for as long as calls
--   are kept), `sweepLease` (ms a node holds a bucket's
--   sweep without renewing it, 500: a dead node's buckets are swept by the others two of
--   these after it was last seen, before its calls' leases run out), `replicas` (how many replicas must acknowledge a
--   notification's event and a flow's intents before graphcall goes on, `WAIT`: 1 on a
--   cluster, 0 otherwise), `replicaTimeout` (ms that wait lasts at most, 500), `metrics` (a
--   `graphcall.metrics`: unreplicated writes counted; the bot's, given by `graphcall.bot`)
function M.new(o)
  assert(o and o.redis, "graphcall.store.redis: a graphcall.redis client (redis =)")
  local ttl = o.ttl or 3600
  local buckets = o.buckets or (o.redis.cluster and 16 or 1)
  if type(buckets) ~= "number" or buckets ~= math.floor(buckets) or buckets < 1 or buckets > 1024 then
    error("graphcall.store.redis: buckets: a whole number from 1 to 1024, not " .. tostring(o.buckets), 2)
  end
  if buckets == 1 and o.redis.cluster then   -- (the shared sets would be one slot, the calls' others)
    error("graphcall.store.redis: buckets: 2 or more on a Redis Cluster, not 1", 2)
  end
  return setmetatable({ redis = o.redis, ttl = ttl, keepMs = math.floor((o.keep or ttl * 4) * 1000),
                        tokens = {}, sleep = o.sleep, clock = o.clock or wall,
                        pendingTrk = {}, pendingFp = {}, popNext = {}, held = {}, serial = 0,
                        buckets = buckets, tags = buckets > 1 and bucket_tags(buckets) or nil,
                        sweeping = {}, sweepLease = o.sweepLease or 500,
                        replicas = o.replicas or (o.redis.cluster and 1 or 0), replicaTimeout = o.replicaTimeout or 500,
                        noWait = {}, unreplicated = 0, metrics = o.metrics, waiting = {},
                        prefix = core.uuid():sub(1, 8) .. ":" }, Store)
end

-- a command on every bucket (fn(b) gives it), sent at once; the answers in bucket order
local function each_bucket(self, fn, buckets)
  local list = buckets
  if not list then
    list = {}
    for b = 0, self.buckets - 1 do list[#list + 1] = b end
  end
  local out, left, failed = {}, #list, nil
  if left == 0 then return out end
  local function collect(done)
    for i, b in ipairs(list) do
      local args = table.pack and table.pack(fn(b)) or { n = select("#", fn(b)), fn(b) }
      args[args.n + 1] = function(v, err)
        if v == nil and err then failed = failed or err end
        out[i] = v
        left = left - 1
        if left == 0 and done then done() end
      end
      self.redis:call(unpack(args, 1, args.n + 1))
    end
  end
  local loop = self.redis.loop
  if loop then loop:await(collect) else collect() end
  if failed then error(store_error("store", "Redis: " .. tostring(failed.message or failed.code)), 0) end
  return out
end

--- The flow's state of a call (a table), or nil.
function Store:get(id)
  local v = must(self, "GET", key(self, id, "st"))
  return type(v) == "string" and core.decode(v) or nil
end

--- Keep the flow's state of a call, under its lease (fenced: refused when another holds it).
function Store:put(id, st) fenced(self, false, id, SET, key(self, id, "st"), json(st), self.keepMs) end

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

-- Entries a flow logs while it runs that nothing outside depends on yet (its start, steps,
-- notes) wait and go with the next one that must be written (an action's intent, before the
-- action is sent) or with the flow's park: one write where there were several. If the process
-- dies first, the replay does them again (the call's watchdog deadline brings it back).
local DEFER = { start = true, step = true, note = true }

-- entries waiting: {texts..., head = {field = value}} (what they change in the head)
local function hold(held, entry)
  held[#held + 1] = json(entry)
  local f = { head_fields(entry) }
  for i = 1, #f, 2 do held.head[f[i]] = f[i + 1] end
end

local function head_list(held)
  local out = {}
  for k, v in pairs(held.head) do out[#out + 1], out[#out + 2] = k, v end
  return out
end

-- WRITE's arguments after the token, for what waits; what was kept back for it is taken;
-- `wake`: what can end the flow's wait (a park's), kept in the head
local function write_args(self, id, held, due, last, wake)
  local trk, pop = self.pendingTrk[id] or "", self.popNext[id] and "1" or ""
  local fields = head_list(held)
  if wake then fields[#fields + 1], fields[#fields + 2] = "w", wake end
  if self.pendingFp[id] then fields[#fields + 1], fields[#fields + 2] = "fp", self.pendingFp[id] end
  self.pendingTrk[id], self.pendingFp[id], self.popNext[id] = nil, nil, nil
  return table.concat(held, "\n"), self.keepMs, trk, pop, due or "", id, last and "1" or "", unpack(fields)
end

-- what waits, written (with the tracker's state kept back for it, tracker{defer}, and the
-- inbox entry it came from), and the deadline ("" leave it, "-" clear it) and the lease
local function write(self, id, held, due, last)
  local waiting = fenced(self, #held > 0, id, WRITE, { key(self, id, "log"), key(self, id, "hd"), key(self, id, "in"),
                                        shared(self, id, "due"), shared(self, id, "calls") },
                         write_args(self, id, held, due, last))
  if last then self.tokens[id] = nil end
  return waiting == 1
end

--- Add an entry to a call's log, under its lease, with its head, its tracker state and the
-- inbox entry it came from in the same write (all or none). While the call's flow runs
-- (`defer`), its start, steps and notes wait for the next entry or the park, and so does an
-- entry that `may_wait` (the intent of an action whose repeat is harmless).
function Store:append(id, entry, may_wait)
  local held = self.held[id]
  if held and (DEFER[entry.k] or may_wait) then return hold(held, entry) end
  self.held[id] = held and { head = {} } or nil
  held = held or { head = {} }
  hold(held, entry)
  write(self, id, held)
end

--- From now until the park (or `flush`), the call's start, steps and notes wait to be written
-- with what follows.
function Store:defer(id) self.held[id] = self.held[id] or { head = {} } end

--- Forget what waits (`defer`): the flow's run was cut; a replay logs it again.
function Store:discard(id) self.held[id] = nil end

--- Write what waits (`defer`), and stop waiting.
function Store:flush(id)
  local held = self.held[id]
  self.held[id] = nil
  if held and #held > 0 then write(self, id, held) end
end

-- What `ingest` and the park share in the library: the call's head and the tracker on its
-- state (`c`), an event the tracker let through into the log, and the head written after.
local LIB_HELPERS = [[
local function head_of(key)
  local h = redis.call('HMGET', key, 'flow', 'ended', 'dir', 'tenant', 'state', 'trk', 'x', 'fp', 'ls', 'lx', 'q',
    'w')
  -- (every field named here: the table is sized once)
  local c = { flow = h[1], ended = h[2] == '1', dir = h[3], tenant = h[4], state = h[5], was = h[5],
              text = h[6] or false, ring = h[8] or false, x = tonumber(h[7]) or false, tr = false, e = false,
              n = 0, changed = false, ls = h[9] or '', lx = tonumber(h[10]) or 0, q = h[11] == '1', w = h[12] or '',
              set = false }
  c.tr = tracker.new { store = tracker.text_store(function() return c.text or nil, c.ring or nil end,
    function(_, t, r) c.text, c.ring = t, r end, cjson.encode, cjson.decode, true) }
  return c
end

-- whether an event may end the wait the call's flow parked on (`w`, the park's: '' any event,
-- else a list as `graphcall.call` makes it: "t,o", "c=established", "-"); the call's end
-- always may
local WAKE_KIND = { operation = 'o', participants = 'p', contentSharing = 's' }
local function wakes(w, e)
  if w == '' then return true end
  local k = e.kind
  local tone = k == 'call' and type(e.toneInfo) == 'table'
  if k == 'call' and (e.state == 'terminated' or e.changeType == 'deleted') then return true end
  local letter = WAKE_KIND[k]
  if k ~= 'call' and not letter then return true end   -- (a kind this list does not name)
  local state = k == 'call' and not tone and ('c=' .. tostring(e.state))
  for t in string.gmatch(w, '[^,]+') do
    if t == letter or (k == 'call' and (t == 'c' or (tone and t == 't') or t == state)) then return true end
  end
  return false
end

-- the event (its JSON text and decoded) through the tracker and into the log (KEYS[2]) with
-- what the tracker marked on it: the text logged and the marks ('' for none), or nil and why not
local function log_event(c, KEYS, id, etext, now)
  local e = cjson.decode(etext)
  e.callId = id
  c.e = e
  local ok, why = c.tr:accept(e)
  if not ok then return nil, why end
  local flags = ''
  if e.gap ~= nil or e.staleState ~= nil or e.sameState ~= nil then
    flags = cjson.encode({ gap = e.gap, staleState = e.staleState, sameState = e.sameState })
    etext = string.sub(etext, 1, -2) .. ',' .. string.sub(flags, 2)
  end
  c.n = redis.call('RPUSH', KEYS[2], '{"k":"ev","t":' .. now .. ',"ev":' .. etext .. '}')
  if e.kind == 'call' and e.state then c.state, c.changed = e.state, true end
  return etext, flags
end

-- the head after the events logged (tracker, state, when the keys' time to live was last
-- extended, with `c.set`'s fields: the lease) and the keepAlive time of a call just
-- established. KEYS[2] log, [3] head, [6] gc:ka, [8] gc:calls; `now` ms as text
local function head_after(c, KEYS, id, keep, now, kaMs)
  local set = c.set or {}
  set[#set + 1], set[#set + 2] = 'trk', c.text
  if c.ring then set[#set + 1], set[#set + 2] = 'fp', c.ring end
  if c.changed then set[#set + 1], set[#set + 2] = 'state', c.state end
  local extend = c.n == 1 or not c.x or tonumber(now) - c.x > keep / 2
  if extend then set[#set + 1], set[#set + 2] = 'x', now end
  redis.call('HSET', KEYS[3], unpack(set))
  if extend then
    redis.call('PEXPIRE', KEYS[2], keep)
    redis.call('PEXPIRE', KEYS[3], keep)
  end
  if c.n == 1 then redis.call('SADD', KEYS[8], id) end
  if kaMs ~= 0 and c.state == 'established' and c.was ~= 'established' then
    redis.call('ZADD', KEYS[6], 'NX', now + kaMs, id)
  end
end
]]

-- a notification's event: tracker, log, head, keepAlive time and, for a call whose flow goes
-- on (or starts) here, the lease and the watchdog deadline, in one script. KEYS head (the lease's), log,
-- head, inbox, gc:due, gc:ka, gc:inbox, gc:calls; ARGV the event (JSON), its tenant for the
-- inbox entry (`,"tid":...`, or "": the entry is built here, only when it is queued), the
-- call's id, a token for the lease, lease ms, ms to keep, now (ms), "1" if an incoming call
-- starts a flow, keepAlive ms ("0": none), the watchdog deadline, the token of the lease this
-- node holds on the call ("" for none)
local INGEST_BODY = [[
local id, keep, now = ARGV[3], tonumber(ARGV[6]), tonumber(ARGV[7])
local c = head_of(KEYS[3])
-- held by another node, or entries wait: after them (a lease held by this node is `mine`);
-- the inbox's flag may outlive its entries: cleared when found so
local held = c.ls ~= '' and c.lx > now
local mine = held and ARGV[11] ~= '' and c.ls == ARGV[11]
local waits = c.q and redis.call('EXISTS', KEYS[4]) == 1
if (held and not mine) or waits then
  redis.call('RPUSH', KEYS[4], '{"e":' .. ARGV[1] .. ARGV[2] .. '}')
  redis.call('PEXPIRE', KEYS[4], keep)
  redis.call('ZADD', KEYS[7], 'NX', now, id)
  if not c.q then redis.call('HSET', KEYS[3], 'q', '1') end
  return {'queued'}
end
if c.q then c.set = { 'q', '' } end
local logged, flags = log_event(c, KEYS, id, ARGV[1], ARGV[7])
if not logged then   -- (flags: why not)
  local set = c.set or {}
  set[#set + 1], set[#set + 2] = 'trk', c.text
  if c.ring then set[#set + 1], set[#set + 2] = 'fp', c.ring end
  redis.call('HSET', KEYS[3], unpack(set))
  return {'dup', flags}
end
-- the flow goes on (or starts) here, unless it waits for something else: the event is logged,
-- for the flow to find when what it waits for comes
local drive = not c.ended and (c.flow or (ARGV[8] == '1' and c.e.incoming)) and (mine or wakes(c.w, c.e))
if drive and not mine then   -- the lease, in the head's write
  local set = c.set or {}
  set[#set + 1], set[#set + 2], set[#set + 3], set[#set + 4] = 'ls', ARGV[4], 'lx', now + tonumber(ARGV[5])
  set[#set + 1], set[#set + 2] = 'w', ''
  c.set = set
end
head_after(c, KEYS, id, keep, ARGV[7], tonumber(ARGV[9]))
if drive then
  if mine then return { 'mine', flags } end
  redis.call('ZADD', KEYS[5], ARGV[10], id)
  return { 'drive', flags, redis.call('LRANGE', KEYS[2], 0, -1) }
end
return { 'logged', flags, c.dir or '', c.tenant or '', c.state or '', c.ended and '1' or '' }
]]

-- A flow's park that lets go of the call (the runtime's last item on it), its write first (as
-- WRITE). Events that came to other nodes while this one held the call wait in its inbox:
-- they go into the log here, through the tracker as `ingest` takes them, the lease stays and
-- the watchdog deadline is set, and the node drives the flow on with them: no lock, no reading
-- of the inbox, no write an event. An inbox that holds anything else (a flow's start) is left
-- to the lease's next holder, as before. KEYS as `ingest`'s; ARGV now (ms), the watchdog
-- deadline, keepAlive ms ("0": none), lease ms, then WRITE's (its "let go" ignored).
local PARK_BODY = [[
local w = {}
for i = 5, #ARGV do w[#w + 1] = ARGV[i] end
local id, keep, now = w[7], tonumber(w[3]), ARGV[1]
w[8] = ''
local r, set, due = write({ KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[8] }, w, true)
if r ~= 'q' then return r end   -- let go, nothing waiting; or fenced
-- the inbox may hold entries: the lease is this node's still; the head's fields and the
-- flow's deadline are written with what happens to them (one HSET, one ZADD)
local function deadline()
  if due == '-' then redis.call('ZREM', KEYS[5], id)
  elseif due ~= '' then redis.call('ZADD', KEYS[5], due, id) end
end
local function letgo(waits)
  set[#set + 1], set[#set + 2], set[#set + 3], set[#set + 4] = 'ls', '', 'q', waits and '1' or ''
  redis.call('HSET', KEYS[3], unpack(set))
  deadline()
  return waits and 1 or 0
end
local texts = redis.call('LRANGE', KEYS[4], 0, -1)
-- an entry as `ingest` queues it: {"e":<the event as the node sent it>,"tid":...}; the event's
-- text is logged as it is (cjson here would round its 64-bit numbers)
local events = {}
for i, t in ipairs(texts) do
  local ok, v = pcall(cjson.decode, t)
  local tail = ok and type(v) == 'table' and type(v.e) == 'table'
    and (v.tid == nil and '}' or type(v.tid) == 'string' and (',"tid":' .. cjson.encode(v.tid) .. '}'))
  if not tail or string.sub(t, 1, 5) ~= '{"e":' or string.sub(t, -#tail) ~= tail then return letgo(true) end
  events[i] = { string.sub(t, 6, -#tail - 1), v.tid or '' }
end
if #events == 0 then return letgo(false) end
local c = head_of(KEYS[3])
for i = 1, #set, 2 do   -- (the tracker's state the write kept back is the one to go on from)
  if set[i] == 'trk' then c.text = set[i + 1] elseif set[i] == 'fp' then c.ring = set[i + 1] end
end
local out = {}
for _, ev in ipairs(events) do
  local etext = log_event(c, KEYS, id, ev[1], now)
  if etext then out[#out + 1], out[#out + 2] = etext, ev[2] end
end
-- the inbox taken: its flag goes, and the lease goes (duplicates all) or is held on
local n = #set
if #out == 0 then
  set[n + 1], set[n + 2], set[n + 3], set[n + 4] = 'q', '', 'ls', ''
else
  local lx = tonumber(now) + tonumber(ARGV[4])
  set[n + 1], set[n + 2], set[n + 3], set[n + 4], set[n + 5], set[n + 6] = 'q', '', 'lx', lx, 'w', ''
end
c.set = set
head_after(c, KEYS, id, keep, now, tonumber(ARGV[3]))
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[7], id)
if #out == 0 then   -- duplicates all
  deadline()
  return 0
end
redis.call('ZADD', KEYS[5], ARGV[2], id)
return { 'took', out, redis.call('LRANGE', KEYS[2], 0, -1) }
]]

-- a log's lines (JSON texts) as its entries
local function entries_of(lines)
  local out = {}
  for _, line in ipairs(lines) do
    local e = core.decode(line)
    if type(e) == "table" then out[#out + 1] = e end
  end
  return out
end

--- The flow parked (or is done with a step): what waits (`defer`) written and the call's
-- deadline set (`at`, ms) or cleared, in one write; with `last`, the lease let go with it,
-- unless events wait in the call's inbox (they came to other nodes meanwhile): they are taken
-- into the log in the same script, through the tracker, and the lease stays.
-- @param id the call's id
-- @param at the flow's deadline (ms since the epoch), or nil
-- @param last true: the lease is let go (nothing else is queued on the call here)
-- @param o with `last`, for the events to take (without it, none are): `now`, `watchdog` (the
--   deadline while the flow goes on with them), `lease` (ms), `keepAlive` (ms, or nil), `wake`
--   (what can end the flow's wait, `graphcall.call.WAKE_KIND`'s letters, or nil: any event;
--   until the lease is taken again, `ingest` logs other events without taking the call)
-- @return with `last`: `{events = {{e =, tid =}...}, entries =}` (taken: the events as the log
--   keeps them, the log; the lease is still this store's), true (let go; entries wait in the
--   inbox that only the lease's next holder takes: a flow's start), or false (let go)
function Store:park(id, at, last, o)
  local held = self.held[id] or { head = {} }
  self.held[id] = nil
  local due = at and string.format("%.1f", at) or "-"
  if not (last and o) then return write(self, id, held, due, last) end
  local lib = library()
  local r = refused(id, fcall(self, #held > 0, lib, lib.park, 8, key(self, id, "hd"), key(self, id, "log"),
    key(self, id, "hd"), key(self, id, "in"), shared(self, id, "due"), shared(self, id, "ka"),
    shared(self, id, "inbox"), shared(self, id, "calls"),
    math.floor(o.now), string.format("%.1f", o.watchdog), o.keepAlive and math.floor(o.keepAlive) or "0",
    math.floor(o.lease), self.tokens[id] or "", write_args(self, id, held, due, true, o.wake or "")))
  if type(r) ~= "table" then
    self.tokens[id] = nil
    return r == 1
  end
  -- events taken count as dispatched once a replica has them, as an ingest's do (a write with
  -- entries of the flow's was acknowledged already: WAIT counts every write before it)
  if #held == 0 and self.replicas > 0 then eval(self, true, ACK, 1, key(self, id, "hd")) end
  local events = {}
  for i = 1, #r[2], 2 do
    events[#events + 1] = { e = core.decode(r[2][i]), tid = r[2][i + 1] ~= "" and r[2][i + 1] or nil }
  end
  return { events = events, entries = entries_of(r[3]) }
end

--- Take a notification's event of a call in one script: the tracker's verdict, the entry in
-- the log, the head and keepAlive time, and for a call whose flow goes on (or an incoming
-- call that starts one here) the call's lease, its watchdog deadline and its log.
-- @param id the call's id
-- @param e the event as the log keeps it (`graphcall.call.compact`)
-- @param o `tid` (the tenant of the notification's token), `now` (ms), `lease`
--   (ms), `flow` (true: an incoming call starts a flow), `keepAlive` (ms, or nil), `watchdog`
--   (the deadline that brings the call back if this process dies while it runs the flow)
-- @return `{queued = true}` (the call is held: the event waits in its inbox), `{dup = why}`,
--   `{drive = true, flags =, entries =}` (the lease is this store's: `release` lets it go),
--   `{drive = true, mine = true, flags =}` (the event is in; the lease was this store's already),
--   `{flags =, dir =, tenant =, state =, ended =}` (the head once the event is in); `flags` are
--   what the tracker marked on the event (`gap`, `staleState`, `sameState`), or nil
function Store:ingest(id, e, o)
  self.serial = self.serial + 1
  local token = self.prefix .. self.serial
  local etext = json(e)
  local lib = library()
  local r, err = fcall(self, true, lib, lib.ingest, 8, key(self, id, "hd"), key(self, id, "log"),
    key(self, id, "hd"), key(self, id, "in"), shared(self, id, "due"), shared(self, id, "ka"),
    shared(self, id, "inbox"),
    shared(self, id, "calls"), etext, o.tid and (',"tid":' .. json(o.tid)) or "", id, token, math.floor(o.lease),
    self.keepMs, math.floor(o.now), o.flow and "1" or "", o.keepAlive and math.floor(o.keepAlive) or "0",
    string.format("%.1f", o.watchdog), self.tokens[id] or "")
  if r == nil and err then error(store_error("store", "Redis: " .. tostring(err.message or err.code)), 0) end
  local what = r[1]
  if what == "queued" then return { queued = true } end
  if what == "dup" then return { dup = r[2] } end
  if what == "mine" then return { drive = true, mine = true, flags = r[2] ~= "" and core.decode(r[2]) or nil } end
  local flags = r[2] ~= "" and core.decode(r[2]) or nil
  if what == "drive" then
    self.tokens[id] = token
    return { drive = true, flags = flags, entries = entries_of(r[3]) }
  end
  return { flags = flags, dir = r[3] ~= "" and r[3] or nil, tenant = r[4] ~= "" and r[4] or nil,
           state = r[5] ~= "" and r[5] or nil, ended = r[6] == "1" or nil }
end

--- Let go of the lease this store holds on the call (`ingest`'s or `lock`'s).
-- @return true when events wait in the call's inbox (whoever lets go takes them next)
function Store:release(id)
  local t = self.tokens[id]
  if not t then return self:_let_go(id) end
  self.tokens[id] = nil
  return script(self, UNLOCK, 2, key(self, id, "hd"), key(self, id, "in"), t) == 1
end

-- ---- the inbox: notifications accepted (answered 202) and not yet in the log ----------------

-- KEYS the call's inbox, gc:inbox; ARGV the entry, now, the call's id
local PUSH = [[
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'q', '1')
return redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[3])
]]

--- Keep an entry in the call's inbox (an outgoing call's start, or an accepted notification's
-- event), in one script acknowledged as `ingest` is: a node that dies after this leaves it to
-- the others (`gc:inbox` says since when).
function Store:push(id, text, now)
  local v, err = eval(self, true, PUSH, 3, key(self, id, "in"), shared(self, id, "inbox"), key(self, id, "hd"), text,
                      now or math.floor(self.clock() * 1000), id)
  if v == nil and err then error(store_error("store", "Redis: " .. tostring(err.message or err.code)), 0) end
end

--- The call's inbox, oldest first (JSON texts).
function Store:inbox(id)
  local v = must(self, "LRANGE", key(self, id, "in"), 0, -1)
  return type(v) == "table" and v or {}
end

--- The next `append` takes the inbox's first entry with it, in the same script.
function Store:take_with_next(id) self.popNext[id] = true end

--- Drop the inbox's first entry (a duplicate), with the tracker's state kept back.
function Store:drop_first(id)
  fenced(self, false, id, DROP, { key(self, id, "hd"), key(self, id, "in") }, self.pendingTrk[id] or "",
         self.pendingFp[id] or "")
  self.pendingTrk[id], self.pendingFp[id], self.popNext[id] = nil, nil, nil
end

--- The inbox is empty (under the lease): forget it, unless an entry came meanwhile.
function Store:inbox_done(id, now)
  must(self, "ZREM", shared(self, id, "inbox"), id)
  if (must(self, "LLEN", key(self, id, "in")) or 0) > 0 then
    must(self, "ZADD", shared(self, id, "inbox"), now or math.floor(self.clock() * 1000), id)
  end
end

--- Since when (ms) the call's inbox has entries nobody took, or nil.
function Store:inbox_since(id) return tonumber((must(self, "ZSCORE", shared(self, id, "inbox"), id))) end

--- Calls with inbox entries since before `before` (ms): left by a node that died.
function Store:inbox_due(before)
  return self:_ranged("inbox", before)
end

local LEASE_FIELDS = { ls = true, lx = true, fn = true, q = true, w = true }

--- The call's head: {flow, dir, tenant, state, ended} as its log says, or nil.
function Store:head(id)
  local v = must(self, "HGETALL", key(self, id, "hd"))
  if type(v) ~= "table" or #v == 0 then return nil end
  local h, any = {}, false
  for i = 1, #v, 2 do
    local f = v[i]
    if not LEASE_FIELDS[f] then h[f], any = v[i + 1], true end
  end
  if not any then return nil end   -- (a lease taken on a call that has logged nothing)
  if h.dir == "" then h.dir = nil end
  if h.tenant == "" then h.tenant = nil end
  h.ended = h.ended == "1" or nil
  return h
end

--- A call's log, its entries in order.
function Store:log(id)
  return entries_of(must(self, "LRANGE", key(self, id, "log"), 0, -1))
end

--- The ids of the calls the store has, sorted.
function Store:calls()
  local v = {}
  for _, ids in ipairs(each_bucket(self, function(b) return "SMEMBERS", bucket_key(self, b, "calls") end)) do
    for _, id in ipairs(ids) do v[#v + 1] = id end
  end
  table.sort(v)
  return v
end

--- How many calls are live: in the list of calls (an ended one leaves it).
function Store:live_count()
  local n = 0
  for _, c in ipairs(each_bucket(self, function(b) return "SCARD", bucket_key(self, b, "calls") end)) do n = n + c end
  return n
end

--- Whether Redis answers (raises when it does not, as every command of the store), and agrees
-- on the buckets: raises when the calls in Redis are spread over another count than this
-- store's (`graphcall run` and `/readyz` say so). Redis keeps the count (`gc:buckets`, set by
-- the first node): a node given another would put calls where the others do not look for them.
function Store:ping()
  local pong = must(self, "PING") == "PONG"
  if not self.bucketsAgreed then
    must(self, "SET", "gc:buckets", self.buckets, "NX")
    local n = tonumber(must(self, "GET", "gc:buckets"))
    if n ~= self.buckets then
      error(store_error("store", string.format("buckets: this node spreads calls over %d bucket(s), the calls in "
        .. "Redis are spread over %s: every node must use the same (graphcall.store.redis's buckets)", self.buckets,
        tostring(n))), 0)
    end
    self.bucketsAgreed = true
  end
  return pong
end

local PARTS = { "log", "st", "hd", "in" }

--- Forget a call now (its log, state, tracker, head and inbox).
function Store:drop(id)
  self.held[id] = nil
  for _, p in ipairs(PARTS) do must(self, "DEL", key(self, id, p)) end
  must(self, "SREM", shared(self, id, "calls"), id)
end

--- An ended call: its keys go after `seconds` (the store's ttl).
-- KEYS the call's parts (PARTS), gc:due, gc:ka, gc:inbox, gc:calls, gc:recent; ARGV ms, id,
-- now (ms; buckets only), the token of the lease this store holds ("": none). The lease is let
-- go here; the answer: -1 (not held), 0, or 1 when entries wait in the inbox (late events,
-- for whoever takes the lease next), the inbox being left as it is only then.
local EXPIRE = [[
local h = redis.call('HMGET', KEYS[3], 'ls', 'q')
local mine, waits = ARGV[4] ~= '' and h[1] == ARGV[4], 0
if mine then redis.call('HSET', KEYS[3], 'ls', '') end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
if h[2] == '1' then
  redis.call('PEXPIRE', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[2])
  waits = redis.call('EXISTS', KEYS[4])
end
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
redis.call('SREM', KEYS[8], ARGV[2])
if ARGV[3] ~= '' then   -- buckets: a sorted set by when, so the calls page can merge them
  redis.call('ZADD', KEYS[9], ARGV[3], ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[9], 0, -101)
-- the calls page lists the last hundred ended (trimmed now and then, not at every call)
elseif redis.call('LPUSH', KEYS[9], ARGV[2]) > 150 then
  redis.call('LTRIM', KEYS[9], 0, 99)
end
return mine and waits or -1
]]

--- An ended call: its keys go after `seconds` (the store's ttl); it leaves the list of calls,
-- the deadlines and keepAlive times, and joins the calls that ended last (one script). The
-- lease this store holds on it is let go with it (the release after says what `release` would).
function Store:expire(id, seconds)
  self:flush(id)
  local ms = math.floor((seconds or self.ttl) * 1000)
  local v, err = script(self, EXPIRE, 9, key(self, id, "log"), key(self, id, "st"), key(self, id, "hd"),
                        key(self, id, "in"),
                        shared(self, id, "due"), shared(self, id, "ka"), shared(self, id, "inbox"),
                        shared(self, id, "calls"), shared(self, id, "recent"), ms, id,
                        self.buckets > 1 and math.floor(self.clock() * 1000) or "", self.tokens[id] or "")
  if v == nil and err then error(store_error("store", "Redis: " .. tostring(err.message or err.code)), 0) end
  if v >= 0 then
    self.tokens[id] = nil
    if v == 1 then self.waiting[id] = true end
  end
end

-- The lease was let go with the call's end (`expire`): whether entries wait, once.
function Store:_let_go(id)
  local w = self.waiting[id]
  self.waiting[id] = nil
  return w
end

--- The ids of the calls that ended last (a hundred at most; their logs go after the ttl).
function Store:recent()
  if self.buckets == 1 then return must(self, "LRANGE", "gc:recent", 0, 99) end
  local all = {}
  local lists = each_bucket(self, function(b)
    return "ZREVRANGE", bucket_key(self, b, "recent"), 0, 99, "WITHSCORES" end)
  for _, v in ipairs(lists) do
    for i = 1, #v, 2 do all[#all + 1] = { id = v[i], at = tonumber(v[i + 1]) } end
  end
  table.sort(all, function(a, b) return a.at > b.at end)
  local out = {}
  for i = 1, math.min(100, #all) do out[i] = all[i].id end
  return out
end

--- The tracker's state of each call, as `graphcall.tracker` wants a store: the head's `trk`
-- (JSON) and `fp` (its fingerprints, apart: `tracker.text_store`'s split). With `defer`, a put
-- is kept back and written by the next `append` or `drop_first` of the call, in the same script.
function Store:tracker(defer)
  return tracker.text_store(function(id)
    local v = must(self, "HMGET", key(self, id, "hd"), "trk", "fp")
    local text, ring = v and v[1], v and v[2]
    return type(text) == "string" and text or nil, type(ring) == "string" and ring or nil
  end, function(id, text, ring)
    if defer then
      self.pendingTrk[id], self.pendingFp[id] = text, ring
      return
    end
    fenced(self, false, id, SETTRK, key(self, id, "hd"), text, ring or "")
  end, json, core.decode, true)
end

--- Take the call's lease for `ttl` seconds, waiting up to `wait` seconds for it.
-- @return a release function and the fencing token, or nil and "timeout"
function Store:lock(id, ttl, wait)
  local deadline = self.clock() + (wait or 10)
  local pause = 2
  while true do
    local t = script(self, LOCK, 1, key(self, id, "hd"), math.floor((ttl or 30) * 1000), self.keepMs,
                     math.floor(self.clock() * 1000))
    if t and t ~= core.null then         -- a Lua false from the script is a nil reply
      self.tokens[id] = tostring(t)
      return function()   -- (true when events wait in the inbox)
        if self.tokens[id] ~= tostring(t) then return self:_let_go(id) end   -- (let go already)
        self.tokens[id] = nil
        return script(self, UNLOCK, 2, key(self, id, "hd"), key(self, id, "in"), tostring(t)) == 1
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
  local v = script(self, RENEW, 1, key(self, id, "hd"), t, math.floor((ttl or 30) * 1000),
                   math.floor(self.clock() * 1000))
  return v == 1
end

-- Deadlines (ms since the epoch) of flows that wait, and keepAlive times: sorted sets.

--- Set when a call's flow is due (a deadline's half millisecond is meaningful: the
-- runtime's watchdogs).
function Store:set_due(id, at) must(self, "ZADD", shared(self, id, "due"), string.format("%.1f", at), id) end
--- The call's flow waits for no deadline any more.
function Store:clear_due(id) must(self, "ZREM", shared(self, id, "due"), id) end
--- Calls whose flows are due at `now` (at most 100).
function Store:due(now) return self:_ranged("due", now) end
--- Set when a call's next keepAlive is due.
function Store:set_ka(id, at) must(self, "ZADD", shared(self, id, "ka"), at, id) end
--- The call needs no keepAlive any more.
function Store:clear_ka(id) must(self, "ZREM", shared(self, id, "ka"), id) end
--- Calls whose keepAlive is due at `now` (at most 100).
function Store:ka_due(now) return self:_ranged("ka", now) end
--- When a call's next keepAlive is due, or nil.
function Store:ka_at(id) return tonumber((must(self, "ZSCORE", shared(self, id, "ka"), id))) end
--- When a call's flow is due, or nil.
function Store:due_at(id) return tonumber((must(self, "ZSCORE", shared(self, id, "due"), id))) end


-- calls of a sorted set (due, ka, inbox) up to `upto`, from every bucket (100 at most each)
function Store:_ranged(what, upto)
  local out = {}
  for _, ids in ipairs(each_bucket(self, function(b)
    return "ZRANGEBYSCORE", bucket_key(self, b, what), "-inf", upto, "LIMIT", 0, 100 end)) do
    for _, id in ipairs(ids) do out[#out + 1] = id end
  end
  return out
end

-- ---- sweeping buckets: each swept by the node that holds its lease -------------------------

-- The buckets' sweep leases and the nodes that sweep, in one hash (`gc:sweep`: bucket ->
-- "node@until", "n:node" -> when last seen), so that one script a round shares them out:
-- this node seen, its leases renewed, those beyond its share (buckets / nodes alive) let go and
-- free ones taken up to it. A node not seen for two leases is forgotten: its buckets, free by
-- then, go to the others. Redis's clock, not the nodes'. KEYS gc:sweep; ARGV this node, lease
-- ms, buckets. Returns the nodes alive and this node's buckets.
local ASSIGN = [[
local me, lease, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HGETALL', KEYS[1])
local alive, holder = 1, {}
for i = 1, #h, 2 do
  local f, v = h[i], h[i + 1]
  if string.sub(f, 1, 2) == 'n:' then
    if f ~= 'n:' .. me then
      if tonumber(v) >= now - 2 * lease then alive = alive + 1 else redis.call('HDEL', KEYS[1], f) end
    end
  else
    local who, till = string.match(v, '^(.*)@(%d+)$')
    if who and tonumber(till) >= now then holder[tonumber(f)] = who end
  end
end
local share = math.ceil(n / alive)
local mine = {}
for b = 0, n - 1 do if holder[b] == me then mine[#mine + 1] = b end end
while #mine > share do redis.call('HDEL', KEYS[1], tostring(table.remove(mine))) end
for b = 0, n - 1 do
  if #mine >= share then break end
  if not holder[b] then mine[#mine + 1] = b end
end
local set = { 'n:' .. me, now }
for _, b in ipairs(mine) do set[#set + 1], set[#set + 2] = tostring(b), me .. '@' .. (now + lease) end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('PEXPIRE', KEYS[1], 10 * lease + 60000)
return { alive, mine }
]]

-- what is due in a bucket: KEYS due, inbox, ka; ARGV now, inbox entries older than this (""
-- none), keepAlive times up to this ("" none)
local DUE = [[
local none = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
local inbox = ARGV[2] ~= '' and redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, 100) or none
local ka = ARGV[3] ~= '' and redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3], 'LIMIT', 0, 100) or none
return { due, inbox, ka }
]]

--- What a sweep finds: flows due at `now`, inboxes nobody took since `inboxBefore`, keepAlive
-- times due at `kaNow` (each nil: not looked for). One server: every node looks at all of it
-- (a call's lease keeps one at a time on a call). Buckets: each bucket is swept by the node
-- that holds its lease, the buckets shared out among the nodes alive (`gc:sweep`, one script
-- a round), then one script a bucket this node holds. A node that dies leaves its buckets to
-- the others two leases (`sweepLease`) after it was last seen.
-- @return {due = ids, inbox = ids, ka = ids}
function Store:sweep(now, inboxBefore, kaNow)
  now = math.floor(now)
  if self.buckets == 1 then
    return { due = self:due(now), inbox = inboxBefore and self:inbox_due(inboxBefore) or {},
             ka = kaNow and self:ka_due(kaNow) or {} }
  end
  local r = script(self, ASSIGN, 1, "gc:sweep", self.prefix, self.sweepLease, self.buckets)
  if type(r) ~= "table" then
    error(store_error("store", "Redis: the buckets' sweeps could not be shared out"), 0)
  end
  local list = r[2]
  self.sweeping, self.nodesAlive = {}, r[1]
  for _, b in ipairs(list) do self.sweeping[b] = true end
  local lib = library()
  local function ask(b)
    return "FCALL", lib.names[DUE], 3, bucket_key(self, b, "due"), bucket_key(self, b, "inbox"),
      bucket_key(self, b, "ka"), now, inboxBefore and math.floor(inboxBefore) or "", kaNow and math.floor(kaNow) or ""
  end
  local ok, answers = pcall(each_bucket, self, ask, list)
  if not ok and tostring(answers.message):find("Function not found", 1, true) then   -- a new master
    local loaded, lerr = load_library(self, lib)
    if not loaded then error(lerr, 0) end
    ok, answers = pcall(each_bucket, self, ask, list)
  end
  if not ok then error(answers, 0) end
  local out = { due = {}, inbox = {}, ka = {} }
  for _, a in ipairs(answers) do
    for k, name in ipairs { "due", "inbox", "ka" } do
      for _, id in ipairs(a[k]) do out[name][#out[name] + 1] = id end
    end
  end
  return out
end

--- The buckets this node sweeps (0-based, sorted).
function Store:swept()
  local list = {}
  for b in pairs(self.sweeping) do list[#list + 1] = b end
  table.sort(list)
  return list
end

-- One Redis library (Redis 7 functions) holds every script of this module: loaded once per
-- server (`FUNCTION LOAD`: kept with the server's data and copied to its replicas, so a
-- failover finds it), not once per script and per client as `SCRIPT LOAD` was. The ingest and
-- the park run graphcall.tracker's own source in it (Redis's Lua 5.1 and its cjson). The
-- names carry a hash of the source, so two versions of graphcall can share a server.
local lib
library = function()
  if lib then return lib end
  local path = assert(package.searchpath("graphcall.tracker", package.path), "graphcall.tracker: not found")
  local f = assert(io.open(path, "rb"))
  local src = f:read("*a")
  f:close()
  local helpers = LIB_HELPERS .. LINES .. WRITE_FN
  local scripts = { { "ingest", INGEST_BODY }, { "park", PARK_BODY }, { "write", WRITE }, { "drop", DROP },
    { "settrk", SETTRK }, { "set", SET }, { "lock", LOCK }, { "renew", RENEW }, { "unlock", UNLOCK },
    { "push", PUSH }, { "expire", EXPIRE }, { "assign", ASSIGN }, { "due", DUE }, { "ack", ACK } }
  local all = { src, helpers }
  for _, s in ipairs(scripts) do all[#all + 1] = s[2] end
  local hash = core.hash(table.concat(all, "\n"))
  local parts, names = { "#!lua name=graphcall_" .. hash, "local tracker = (function()", src, "end)()", helpers }, {}
  for _, s in ipairs(scripts) do
    local name = "gc_" .. s[1] .. "_" .. hash
    parts[#parts + 1] = "redis.register_function('" .. name .. "', function(KEYS, ARGV)\n" .. s[2] .. "\nend)"
    names[s[2]] = name
  end
  lib = { ingest = names[INGEST_BODY], park = names[PARK_BODY], names = names,
          text = table.concat(parts, "\n") .. "\n" }
  return lib
end

return M
