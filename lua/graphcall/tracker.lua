--- Per-call tracking of notifications: at-least-once, out-of-order input in; each event once,
-- in a sane order, out (DESIGN.md, REFERENCE.md §3, §7).
--
--   local tracker = require("graphcall.tracker").new()     -- in-memory store
--   for _, ev in ipairs(events) do
--     local ok, why = tracker:accept(ev)
--     if ok then dispatch(ev) end                           -- why: duplicate, stale, final
--   end
--
-- Rules: call state never moves backwards (a late `establishing` after `established` changes
-- nothing) and `terminated` is final; `deleted` on the call means terminated whatever it says;
-- a repeated notification (same JSON text) or a repeated tone (same sequenceId: a key press is
-- told by it alone) is dropped,
-- and a full roster only when it repeats the roster applied last (a roster can return to an
-- earlier one);
-- delta rosters apply by sequenceNumber, a stale one is dropped and a gap is flagged on the
-- event (ev.gap = {from =, to =}) so the app can GET the participants; a full roster replaces;
-- operations are tracked by id and clientContext until completed or failed.
--
-- The store is anything with get(callId) -> state|nil and put(callId, state); state is a plain
-- table (strings, numbers, booleans, nested tables), so a store may serialize it.
-- @module graphcall.tracker
local M = {}

local DEDUP = 64  -- fingerprints remembered per call (at least)
local TONES = 64  -- tone sequenceIds remembered per call (older ones count as repeats)

-- Phases: moves inside a phase are free (established <-> hold <-> transferring), moves to a
-- lower phase are late news.
local PHASE = {
  incoming = 0, establishing = 1, ringing = 1,
  established = 2, hold = 2, transferring = 2, transferAccepted = 2, redirecting = 2,
  terminating = 3, terminated = 4,
}

-- Sets keyed by numbers use their decimal text: a store that writes the state as JSON would
-- make huge integer keys an error (a sparse array) and small ones an array with nulls, and
-- would read them back as strings. "%.0f" is exact to 2^53 on Lua 5.4 and LuaJIT alike.
local function key(n) return string.format("%.0f", n) end

-- The fingerprints remembered, as the one string the state keeps them in: " fp fp ... ".
local function ring_of(fps)
  return " " .. table.concat(fps, " ") .. (#fps > 0 and " " or "")
end

--- The in-memory store. With `encode` and `decode` (a JSON writer and reader), its
-- `idle(callId)` holds a call's state as text until the call's next event: thousands of
-- calls wait in one process, and a waiting call's state is a third of the bytes as text.
-- @param encode optional: fn(state) -> text
-- @param decode optional: fn(text) -> state
-- @return a store for `tracker.new`
function M.memory_store(encode, decode)
  local calls = {}
  return {
    tables = true,   -- a state is the same Lua table from put to get (text only while idle)
    get = function(_, id)
      local st = calls[id]
      if type(st) == "string" then
        st = decode(st)
        calls[id] = st
      end
      return st
    end,
    put = function(_, id, state) calls[id] = state end,
    delete = function(_, id) calls[id] = nil end,
    idle = function(_, id)
      local st = calls[id]
      if not encode or type(st) ~= "table" then return end
      if st.fpnew then   -- (the sets of fingerprints as the ring they are read from)
        local fps = {}
        for _, set in ipairs { st.fpold or {}, st.fpnew } do
          for fp in pairs(set) do fps[#fps + 1] = key(fp) end
        end
        st.ring = ring_of(fps)
        st.ringn, st.fpnew, st.fpold, st.fpn = #fps, nil, nil, nil
      end
      calls[id] = encode(st)
    end,
  }
end

--- A store that keeps each state as text (JSON) in `get(id) -> text` / `put(id, text)` (the
-- shared dict, Redis). With `split`, the fingerprints remembered (a string, most of the state)
-- are kept beside the text rather than in it: `get(id) -> text, ring`, `put(id, text, ring)`,
-- so the JSON to decode and encode for every event is a few hundred bytes.
-- @param get fn(id) -> the state's text (and its ring, with split), or nil
-- @param put fn(id, text[, ring])
-- @param encode fn(state) -> text
-- @param decode fn(text) -> state
-- @param split keep the ring apart
-- @return a store for `tracker.new`
function M.text_store(get, put, encode, decode, split)
  return {
    get = function(_, id)
      local text, ring = get(id)
      local st = text and decode(text)
      if type(st) ~= "table" then return nil end
      if split and type(ring) == "string" then st.ring = ring end
      return st
    end,
    put = function(_, id, st)
      local ring = st.ring
      if not (split and type(ring) == "string") then return put(id, encode(st)) end
      st.ring = nil
      local ok, text = pcall(encode, st)
      st.ring = ring
      if not ok then error(text, 2) end
      put(id, text, ring)
    end,
  }
end

local Tracker = {}
Tracker.__index = Tracker

--- tracker.new{store = ..., dedup = 64 (the fingerprints remembered per call: the last `dedup` at
-- least; in memory up to twice as many)}
function M.new(opts)
  opts = opts or {}
  local store = opts.store or M.memory_store()
  return setmetatable({ store = store, dedup = opts.dedup or DEDUP, tables = store.tables }, Tracker)
end

-- The state is flat, so that it is small as JSON and cheap to read and write for every event
-- (Redis runs this module on it): the fingerprints remembered are one string (" fp fp ... "),
-- the tones one string of TONES "0"/"1", for the sequenceIds up to the newest. What a call
-- has not had yet (a key press, a roster, an operation) it has no field for: thousands of
-- calls wait in one process.
local function new_state()
  return { ring = " ", ringn = 0 }
end

-- A state written by an earlier version (a ring and a set of tones as tables), made flat.
local function flatten(st)
  if type(st.ring) == "table" then
    local fps = {}
    for _, fp in ipairs(st.ring) do fps[#fps + 1] = fp end
    st.ring, st.ringn, st.ringpos, st.seen = ring_of(fps), #fps, nil, nil
  end
  if type(st.tones) == "table" then
    local bits, max = {}, st.maxTone
    for i = 1, TONES do
      bits[i] = (max and st.tones[key(max - TONES + i)]) and "1" or "0"
    end
    st.tones, st.ntones = table.concat(bits), nil
  end
  return st
end

-- Remember a fingerprint; true if it was already there. A store that keeps states as Lua
-- tables (never encoded) keeps them as two sets of numbers, the newest fingerprints and the
-- ones before them, each of up to `dedup`: no string is built or searched for an event, and
-- no key is ever removed (Lua 5.4 pays for a set that keys leave and enter by rehashing it
-- again and again: 1.3 us an event in the listener, twice the rest of the tracker). At least
-- the last `dedup` are remembered, at most twice as many.
local function seen_before(self, st, fp)
  if not fp then return false end
  if self.tables then
    local cur = st.fpnew
    if not cur then
      cur = {}
      local n = 0
      for f in (st.ring or ""):gmatch("%d+") do
        cur[tonumber(f)] = true
        n = n + 1
      end
      st.fpnew, st.fpn, st.ring, st.ringn = cur, n, nil, nil
    end
    if cur[fp] then return true end
    local old = st.fpold
    if old and old[fp] then return true end
    local n = st.fpn + 1
    if n > self.dedup then
      st.fpold, cur, n = cur, {}, 1
      st.fpnew = cur
    end
    cur[fp], st.fpn = true, n
    return false
  end
  local k = key(fp)
  if st.ring:find(" " .. k .. " ", 1, true) then return true end
  local ring = st.ring .. k .. " "
  if st.ringn >= self.dedup then ring = ring:sub((ring:find(" ", 2, true))) else st.ringn = st.ringn + 1 end
  st.ring = ring
  return false
end

-- a window with only the newest in it, made once (on first use: Redis loads this module as a
-- function library, where the string library is not at hand until a function runs)
local ONE_TONE

-- Remember a tone's sequenceId; true if it came before (or is too far behind the newest to
-- tell: a repeat whose record was let go).
local function tone_before(st, seq)
  local max, bits = st.maxTone, st.tones
  if max == nil or seq > max then
    local shift = max and seq - max or TONES
    if shift >= TONES then
      ONE_TONE = ONE_TONE or string.rep("0", TONES - 1) .. "1"
      bits = ONE_TONE
    else bits = bits:sub(shift + 1) .. string.rep("0", shift - 1) .. "1" end
    st.tones, st.maxTone = bits, seq
    return false
  end
  local back = max - seq
  if back >= TONES then return true end
  local pos = TONES - back
  if bits:sub(pos, pos) == "1" then return true end
  st.tones = bits:sub(1, pos - 1) .. "1" .. bits:sub(pos + 1)
  return false
end

-- the sequenceId of a call event's key press, or nil
local function tone_seq(ev)
  local tone = ev.toneInfo
  return tone and tone.sequenceId
end

local function apply_call(st, ev)
  local state = ev.state
  if ev.changeType == "deleted" then state = "terminated" end
  if st.state == "terminated" then return false, "final" end
  local tone = ev.toneInfo
  if tone and tone.sequenceId ~= nil then
    if tone_before(st, tone.sequenceId) then return false, "duplicate" end
  end
  if state then
    local cur, new = PHASE[st.state], PHASE[state]
    if cur and new and new < cur then
      if not tone then return false, "stale" end
      ev.staleState = true   -- the tone is news, its state is not
      return true
    end
    -- the same state again (a mediaState update says `established` again): news, but not a
    -- new state; handlers of the state do not run twice
    if state == st.state and not tone then ev.sameState = true end
    st.state = state
  end
  return true
end

local function apply_roster(st, ev)
  local roster = st.roster
  if ev.delta then
    if not roster then
      roster = {}
      st.roster = roster
    end
    local seq = ev.sequenceNumber
    if seq ~= nil and st.rosterSeq ~= nil then
      if seq <= st.rosterSeq then return false, "stale" end
      if seq > st.rosterSeq + 1 then ev.gap = { from = st.rosterSeq + 1, to = seq - 1 } end
    end
    if seq ~= nil then st.rosterSeq = seq end
    for _, p in ipairs(ev.participants or {}) do
      local id = p.id
      if id then
        local known = roster[id]
        local rsn = p.rosterSequenceNumber
        if not (known and rsn and known.rosterSequenceNumber and rsn < known.rosterSequenceNumber) then
          if p.removed then roster[id] = { removed = true, rosterSequenceNumber = rsn }
          else roster[id] = { rosterSequenceNumber = rsn } end
        end
      end
    end
  else
    roster = {}
    for _, p in ipairs(ev.participants or {}) do
      if p.id and not p.removed then roster[p.id] = { rosterSequenceNumber = p.rosterSequenceNumber } end
    end
    st.roster = roster
  end
  return true
end

-- (an operation's record, and where its clientContext leads, made on the first one)
local function ops_of(st)
  local ops = st.ops
  if not ops then
    ops = {}
    st.ops, st.contexts = ops, st.contexts or {}
  end
  return ops
end

-- An operation's record is one string, "status|operationType|clientContext": a call keeps one
-- for each operation it ever had, and a string is a third of a table of three. (A record an
-- earlier version wrote is a table.)
local function nonempty(x) return x ~= "" and x or nil end

local function op_fields(rec)
  if type(rec) == "table" then return rec.status, rec.operationType, rec.clientContext end
  local status, optype, ctx = rec:match("^([^|]*)|([^|]*)|(.*)$")
  return nonempty(status), nonempty(optype), nonempty(ctx)
end

local function op_record(status, optype, ctx)
  return (status or "") .. "|" .. (optype or "") .. "|" .. (ctx or "")
end

local FINAL = { completed = true, failed = true }

local function apply_operation(st, ev)
  local id, ctx = ev.operationId, ev.clientContext
  local ops = ops_of(st)
  local opid = id and ops[id] and id
  if not opid and ctx then
    local byctx = st.contexts[ctx]
    opid = byctx and ops[byctx] and byctx
  end
  local status, optype, known
  if opid then status, optype, known = op_fields(ops[opid]) end
  if opid and FINAL[status] then return false, "final" end
  opid = opid or id   -- (an operation without an id is not kept)
  if ctx and opid then st.contexts[ctx] = opid end
  if opid then ops[opid] = op_record(ev.status or status, ev.operationType or optype, ctx or known) end
  return true
end

--- Decide whether an event is news. Returns true, or false and why ("duplicate", "stale",
-- "final"). Updates the call's state in the store.
function Tracker:accept(ev)
  local id = ev.callId
  if not id then return true end  -- nothing to track it by
  local st = self.store:get(id)
  st = st and flatten(st) or new_state()
  -- A full roster is the whole state, and the same roster can come back (A, B, A when
  -- someone joins and leaves): it repeats only if it is the roster applied last.
  local full_roster = ev.kind == "participants" and not ev.delta
  if full_roster then
    -- (kept as its decimal text: a JSON writer with 14 digits, Redis's, would round it)
    local fp = ev.fingerprint and key(ev.fingerprint)
    if fp and fp == st.rosterFp then return false, "duplicate" end
    st.rosterFp = fp
  elseif not (ev.kind == "call" and tone_seq(ev)) and seen_before(self, st, ev.fingerprint) then
    -- (a key press needs no fingerprint: its sequenceId says whether it came before, and its
    -- window is kept anyway; the bulk of an IVR's notifications leave the fingerprints alone)
    self.store:put(id, st)
    return false, "duplicate"
  end
  local ok, why = true, nil
  if ev.kind == "call" then ok, why = apply_call(st, ev)
  elseif ev.kind == "participants" then ok, why = apply_roster(st, ev)
  elseif ev.kind == "operation" then ok, why = apply_operation(st, ev) end
  self.store:put(id, st)
  return ok, why
end

--- Accept each event and call fn(ev) for the news; returns how many were dispatched.
function Tracker:dispatch(events, fn)
  local n = 0
  for _, ev in ipairs(events) do
    if self:accept(ev) then
      n = n + 1
      fn(ev)
    end
  end
  return n
end

--- Register an operation the bot started (from the action's 200 answer), so its completion is
-- matched by id or clientContext; a synchronous completed/failed status closes it at once.
function Tracker:expect(callId, op)
  local st = self.store:get(callId)
  st = st and flatten(st) or new_state()
  if op.id then ops_of(st)[op.id] = op_record(op.status, op.operationType, op.clientContext) end
  if op.clientContext and op.id then st.contexts[op.clientContext] = op.id end
  self.store:put(callId, st)
end

--- The call's tracked state: state, roster (id -> {rosterSequenceNumber, removed}), rosterSeq.
function Tracker:call(callId)
  local st = self.store:get(callId)
  if st and st.roster == nil then st.roster = {} end   -- (none came yet)
  return st
end

--- A tracked operation, by id or clientContext.
function Tracker:operation(callId, which)
  local st = self.store:get(callId)
  local ops = st and st.ops
  if not ops then return nil end
  local contexts = st.contexts or {}
  local id = ops[which] and which or contexts[which]
  local rec = id and ops[id]
  if not rec then return nil end
  local status, optype, ctx = op_fields(rec)
  return { id = id, status = status, operationType = optype, clientContext = ctx }
end

return M
