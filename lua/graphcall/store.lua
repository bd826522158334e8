--- Where a bot keeps what it knows about each call: the tracker's state (`get`/`put`) and the
-- call's append-only event log (`append`/`log`), which the durable flows replay.
--
-- A store is any table with these methods (the interface later stores share):
--
--   get(callId) -> state | nil        put(callId, state)
--   append(callId, entry)             log(callId) -> array of entries (in order)
--   calls() -> array of callIds with a log       drop(callId)
--
-- States and entries are plain data: strings, numbers, booleans, nested tables (and
-- `graphcall.null`), so a store may serialize them.
--
-- `store.redis{redis = client}` is shared by several processes (graphcall.redisstore).
-- `store.memory()` lives and dies with the process. `store.file(dir)` keeps each call's log as
-- a file of JSON lines, appended and flushed entry by entry, so a bot that is killed and
-- started again on the same folder finds its live calls and resumes them.
-- @module graphcall.store
local cjson = require "cjson.safe"
local core = require "graphcall.core"

local M = {}

--- An in-memory store.
function M.memory()
  local states, logs = {}, {}
  return {
    get = function(_, id) return states[id] end,
    put = function(_, id, st) states[id] = st end,
    append = function(_, id, entry)
      local l = logs[id]
      if not l then
        l = {}
        logs[id] = l
      end
      l[#l + 1] = entry
    end,
    log = function(_, id) return logs[id] or {} end,
    calls = function()
      local out = {}
      for id in pairs(logs) do out[#out + 1] = id end
      table.sort(out)
      return out
    end,
    drop = function(_, id)
      states[id] = nil
      logs[id] = nil
    end,
    delete = function(_, id) states[id] = nil end,
  }
end

--- JSON text of a state or a log entry, as every store writes it (lua-cjson, with "/" not
-- escaped); raises, saying why, for what JSON cannot hold.
function M.json(v)
  local s, err = cjson.encode(v)
  if not s then error("graphcall: cannot write JSON: " .. tostring(err), 2) end
  if s:find("\\/", 1, true) then s = s:gsub("\\/", "/") end   -- cjson writes "\/" for "/"
  return s
end
local json = M.json

local function safe(id)
  if type(id) ~= "string" or not id:match("^[%w%-_.]+$") or id:sub(1, 1) == "." then
    error("store: a call id must be letters, digits, '-', '_' or '.' (got " .. tostring(id) .. ")", 3)
  end
  return id
end

--- A store on disk: `dir/<callId>.log` (JSON lines) and `dir/<callId>.state` (JSON).
-- The folder must exist. A torn last line (the process died while writing it) is ignored.
function M.file(dir)
  local open = {}   -- callId -> file handle for appending
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
      f = assert(io.open(path(id, ".log"), "ab"))
      f:setvbuf("no")
      open[id] = f
    end
    f:write(json(entry), "\n")
  end

  function self.calls()
    local out = {}
    local p = io.popen('ls -1 "' .. dir .. '" 2>/dev/null')
    for name in p:lines() do
      local id = name:match("^(.+)%.log$")
      if id then out[#out + 1] = id end
    end
    p:close()
    table.sort(out)
    return out
  end

  function self.drop(_, id)
    if open[id] then open[id]:close() end
    open[id], logs[id], states[id] = nil, nil, nil
    os.remove(path(id, ".log"))
    os.remove(path(id, ".state"))
  end

  function self.delete(_, id)
    states[id] = nil
    os.remove(path(id, ".state"))
  end

  return self
end

--- A store in Redis, shared by several nodes: see `graphcall.redisstore`.
-- @param o `redis` (a `graphcall.redis` client), `ttl`, `keep`, `sleep`
function M.redis(o) return require("graphcall.redisstore").new(o) end

return M
