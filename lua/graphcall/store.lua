--- Where a bot keeps what it knows about each call: the tracker's state (`get`/`put`) and the
-- call's append-only event log (`append`/`log`), which the durable flows replay.
--
-- A store is any table with these methods (the interface later stores share):
--
--   get(callId) -> state | nil        put(callId, state)
--   append(callId, entry)             log(callId) -> array of entries (in order)
--   calls() -> array of callIds with a log       drop(callId)
--   idle(callId), optional: the call's flow was let go of while it waits; hold less of it
--
-- States and entries are plain data: strings, numbers, booleans, nested tables (and
-- `graphcall.null`), so a store may serialize them.
--
-- `store.redis{redis = client}` is shared by several processes (graphcall.redisstore).
-- `store.memory()` lives and dies with the process (its log keeps events as tables and other
-- entries as their JSON text). `store.file(dir)` keeps each call's log as
-- a file of JSON lines, appended and flushed entry by entry, so a bot that is killed and
-- started again on the same folder finds its live calls and resumes them. `store.single(s)`
-- gives a store of one process what the runtime needs beside it (leases, deadlines, keepAlive
-- times, heads), in that process's memory.
--
-- Every store writes JSON with one writer, `graphcall.wire.json` (integers exact, other
-- numbers read back the same), and reads it with `graphcall.wire.decode`.
-- @module graphcall.store
local core = require "graphcall.core"
local wire = require "graphcall.wire"
local tracker = require "graphcall.tracker"
local files = require "graphcall.files"

local M = {}

--- Log files a file store keeps open at most (then it closes them all and opens again the
-- ones it writes next).
M.HANDLES = 64

-- An entry as the in-memory store keeps it: an event's entry as it is (its event is the call's
-- own table, held by the call anyway), any other as its JSON text (a step's answer, an intent:
-- smaller as text than as tables, and read only by a replay or a trace)
local function kept(entry, text)
  if entry.k == "ev" and not text then return entry end
  return M.json(entry)
end

--- An in-memory store. Its log keeps events as tables and other entries as their JSON text,
-- decoded when the log is read; what comes before a call's `idle` (its flow let go of while it
-- waits) packed (`graphcall.core.pack`: the JSON in about a third of the bytes).
-- @param o optional: `text` (true: events as text too, for a bot that keeps no call object
--   between events, `graphcall.bot{shared = true}`, where nothing else holds them)
function M.memory(o)
  local text = o and o.text or false
  local states, logs, packed = {}, {}, {}   -- logs: entries since the call's last idle
  local s = {
    get = function(_, id) return states[id] end,
    put = function(_, id, st) states[id] = st end,
    append = function(_, id, entry)
      local l = logs[id]
      if not l then
        l = {}
        logs[id] = l
      end
      l[#l + 1] = kept(entry, text)
    end,
    log = function(_, id)
      local p, l = packed[id], logs[id]
      local out = p and core.decode("[" .. assert(core.unpack(p)) .. "]") or {}
      local n = #out
      for i = 1, l and #l or 0 do
        local e = l[i]
        if type(e) == "string" then e = core.decode(e) end
        out[n + i] = e
      end
      return out
    end,
    calls = function()
      local out = {}
      for id in pairs(logs) do out[#out + 1] = id end
      for id in pairs(packed) do if not logs[id] then out[#out + 1] = id end end
      table.sort(out)
      return out
    end,
    drop = function(_, id)
      states[id], logs[id], packed[id] = nil, nil, nil
    end,
    delete = function(_, id) states[id] = nil end,
    --- The call's flow is let go of until its next event (`shared`, or `keepWaiting`): its
    -- entries since the last time packed onto the rest, as one block.
    idle = function(_, id)
      local l = logs[id]
      if not l then return end
      local texts = {}
      for i, e in ipairs(l) do texts[i] = type(e) == "string" and e or M.json(e) end
      local p = packed[id]
      packed[id], logs[id] = core.pack((p and "," or "") .. table.concat(texts, ","), p), nil
    end,
  }
  s.forget = s.drop   -- an ended call the process lets go of: here, the only place it was kept
  return s
end

--- JSON text of a state or a log entry, as every store writes it (`graphcall.wire.json`).
M.json = wire.json
local json = M.json

local function safe(id)
  if type(id) ~= "string" or not id:match("^[%w%-_.]+$") or id:sub(1, 1) == "." then
    error("store: a call id must be letters, digits, '-', '_' or '.' (got " .. tostring(id) .. ")", 3)
  end
  return id
end

--- A store on disk: `dir/<callId>.log` (JSON lines) and `dir/<callId>.state` (JSON).
-- The folder is made if missing (any path: no shell is involved); it must be writable. A torn
-- last line (the process died while writing it) is ignored.
function M.file(dir)
  local ok, err = files.writable(dir)
  if not ok then error("graphcall.store.file: " .. err, 2) end
  local open, nopen = {}, 0   -- callId -> file handle for appending (at most HANDLES at once)
  local logs = {}   -- callId -> entries read or written in this process
  local states = {}
  local self = {}
  local function path(id, ext) return dir .. "/" .. safe(id) .. ext end

  function self.get(_, id)
    if states[id] ~= nil then return states[id] or nil end
    local f = io.open(path(id, ".state"), "rb")
    if not f then
      states[id] = false
      return nil
    end
    local st = core.decode(f:read("*a"))
    f:close()
    states[id] = type(st) == "table" and st or false
    return states[id] or nil
  end

  function self.put(_, id, st)
    states[id] = st
    local tmp = path(id, ".state.tmp")
    assert(core.private_file(tmp))
    local f = assert(io.open(tmp, "wb"))
    f:write(json(st))
    f:close()
    assert(os.rename(tmp, path(id, ".state")))
  end

  function self.log(_, id)
    if logs[id] then return logs[id] end
    local entries = {}
    local f = io.open(path(id, ".log"), "rb")
    if f then
      for line in f:lines() do
        local e = core.decode(line)
        if type(e) == "table" then entries[#entries + 1] = e end
      end
      f:close()
    end
    logs[id] = entries
    return entries
  end

  function self.append(s, id, entry)
    local l = s:log(id)
    l[#l + 1] = entry
    local f = open[id]
    if not f then
      if nopen >= M.HANDLES then   -- a descriptor per call ever seen would run the process out
        for k, h in pairs(open) do h:close() open[k] = nil end
        nopen = 0
      end
      assert(core.private_file(path(id, ".log")))   -- callers' numbers: the bot's user alone reads it
      f = assert(io.open(path(id, ".log"), "ab"))
      f:setvbuf("no")
      open[id], nopen = f, nopen + 1
    end
    f:write(json(entry), "\n")
  end

  function self.calls()
    local out = {}
    for _, name in ipairs(files.list(dir)) do
      local id = name:match("^(.+)%.log$")
      if id then out[#out + 1] = id end
    end
    return out
  end

  -- an ended call the process lets go of: its files stay, its handle and what was read go
  local function forget(id)
    if open[id] then
      open[id]:close()
      nopen = nopen - 1
    end
    open[id], logs[id], states[id] = nil, nil, nil
  end
  function self.forget(_, id) forget(id) end
  -- a call whose flow the process let go of while it waits: read again from its file when needed
  function self.idle(_, id) forget(id) end

  function self.drop(_, id)
    forget(id)
    os.remove(path(id, ".log"))
    os.remove(path(id, ".state"))
  end

  function self.delete(_, id)
    states[id] = nil
    os.remove(path(id, ".state"))
  end

  return self
end

--- What the runtime needs beside a store that one process alone uses (memory, file, or one of
-- the user's with the interface above): the call's lease (this process's queue per call is
-- the lock already), deadlines, keepAlive times and the head of each call, in memory. A
-- process started again on the same file store finds its live calls by their logs.
-- @param base the store
-- @return a store with the runtime's interface (`graphcall.runtime`), base's own methods kept
function M.single(base)
  local due, ka, heads = {}, {}, {}
  local s = setmetatable({}, { __index = base })
  function s.lock(_, _, _, _) return function() end, 1 end
  function s.renew() return true end
  -- a head is kept as one string (flow, dir, tenant, state, ended: NUL-separated), a third of
  -- what a table of them is, for every call waiting in the process; a table when read
  local function v(x) return x ~= "" and x or nil end
  local function unpack_head(text)
    local flow, dir, tenant, state, ended = text:match("^(%Z*)%z(%Z*)%z(%Z*)%z(%Z*)%z(%Z*)$")
    return { flow = v(flow), dir = v(dir), tenant = v(tenant), state = v(state), ended = ended == "1" or nil }
  end
  local function pack_head(hd)
    return table.concat({ hd.flow or "", hd.dir or "", hd.tenant or "", hd.state or "", hd.ended and "1" or "" }, "\0")
  end
  -- what an entry says of the call's head
  local function into(hd, e)
    local k = e.k
    if k == "start" then hd.flow, hd.dir, hd.tenant = e.flow or "main", e.dir, e.tenant
    elseif k == "end" then hd.ended = true
    elseif k == "ev" and e.ev.kind == "call" and e.ev.state then hd.state = e.ev.state
    else return false end
    return true
  end
  function s.append(self, id, entry)
    base.append(self, id, entry)
    local text = heads[id]
    if text then
      local hd = unpack_head(text)
      if into(hd, entry) then heads[id] = pack_head(hd) end
    end
  end
  --- The call's head: {flow, dir, tenant, state, ended} as its log says, or nil.
  function s.head(self, id)
    local text = heads[id]
    if text then return unpack_head(text) end
    local entries = self:log(id)
    if #entries == 0 then return nil end
    local hd = {}
    for _, e in ipairs(entries) do into(hd, e) end
    heads[id] = pack_head(hd)
    return hd
  end
  local function scan(set, now)
    local out = {}
    for id, at in pairs(set) do if at <= now then out[#out + 1] = id end end
    return out
  end
  function s.set_due(_, id, at) due[id] = at end
  function s.clear_due(_, id) due[id] = nil end
  function s.due_at(_, id) return due[id] end
  function s.due(_, now) return scan(due, now) end
  function s.set_ka(_, id, at) ka[id] = at end
  function s.clear_ka(_, id) ka[id] = nil end
  function s.ka_at(_, id) return ka[id] end
  function s.ka_due(_, now) return scan(ka, now) end
  function s.expire(_, id)
    due[id], ka[id] = nil, nil
  end
  local states = tracker.memory_store(json, core.decode)
  --- A call whose flow waits (`shared`, `keepWaiting`): the base store's `idle`, and its
  -- tracker state held as text.
  function s.idle(self, id)
    if base.idle then base.idle(self, id) end
    states:idle(id)
  end
  function s.drop(self, id)
    base.drop(self, id)
    due[id], ka[id], heads[id] = nil, nil, nil
    states:delete(id)
  end
  --- An ended call this process lets go of: what it held of it in memory (the base store's
  -- `forget`, when it has one: the memory store forgets the call, the file store keeps its files).
  function s.forget(self, id)
    if base.forget then base.forget(self, id) end
    due[id], ka[id], heads[id] = nil, nil, nil
    states:delete(id)
  end
  function s.tracker() return states end
  return s
end

--- A store in Redis, shared by several nodes: see `graphcall.redisstore`.
-- @param o `redis` (a `graphcall.redis` client), `ttl`, `keep`, `sleep`
function M.redis(o) return require("graphcall.redisstore").new(o) end

return M
