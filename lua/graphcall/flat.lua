--- Notification ingest through LuaJIT's FFI (internal; `graphcall.parse_notifications` uses it
-- under LuaJIT). The C core scans the body into flat records (csrc/notify_flat.h) and this
-- builds the same events lua_notify.c builds through the Lua C API, in compiled code. Lazy
-- parts keep the byte range of their JSON text and are decoded by `core.decode` when read.
-- @module graphcall.flat
-- @local
local ffi = require "ffi"
local core = require "graphcall.core"

local M = {}

ffi.cdef [[
typedef struct { uint32_t off; int32_t len; } gc_fstr;
typedef struct {
  uint8_t kind, change, status, pad;
  uint32_t flags;
  gc_fstr change_type, url, resource, call_id, sub_id;
  gc_fstr state, direction, tenant_id, call_chain_id, my_participant_id;
  gc_fstr tone, message, client_context, op_type, status_text;
  double fingerprint, sequence_id, code, subcode, sequence_number;
  uint32_t data_off, data_len;
  uint32_t item_off, item_len;
  uint32_t part_first, part_count;
} gc_flat_event;
typedef struct { gc_fstr id; double rsn; uint32_t off, len; uint32_t flags; } gc_flat_participant;
typedef struct {
  const gc_flat_event *ev; uint32_t nev;
  const gc_flat_participant *part; uint32_t npart;
  const char *strs;
  size_t strs_len;
  const char *err_code, *err_path;
  char err_msg[128];
} gc_flat_out;
typedef struct gc_flat gc_flat;
gc_flat *gc_flat_new(void);
void gc_flat_free(gc_flat *f);
const gc_flat_out *gc_flat_parse(gc_flat *f, const char *body, size_t len, size_t max_size,
                                 int max_depth, size_t max_n);
]]

-- the C functions are in graphcall.core's own library: find it as require did
local path = package.searchpath("graphcall.core", package.cpath)
local ok, lib = pcall(ffi.load, path or "")
if not (path and ok) then return nil end

local ctx = ffi.gc(lib.gc_flat_new(), lib.gc_flat_free)
if ctx == nil then return nil end

local band = bit.band
local tnew = require "table.new"
local ffistring, cast = ffi.string, ffi.cast
local rawget, rawset, setmetatable, getmetatable = rawget, rawset, setmetatable, getmetatable
local decode, decode_into, null = core.decode, core.decode_into, core.null
local floor = math.floor

local STRS = 0x80000000
local F_INCOMING, F_TONE, F_SEQID, F_RESULT, F_CODE, F_SUBCODE, F_DELTA, F_SEQNUM, F_PARTS =
  1, 2, 4, 8, 16, 32, 64, 128, 256
local F_ITEM_ARRAY = 512
local FP_RSN, FP_REMOVED = 1, 2
local KINDS = { [0] = "call", "participants", "operation", "contentSharing", "unknown" }
local CHANGES = { [0] = "created", "updated", "deleted" }
local STATUS = { "notStarted", "running", "completed", "failed" }
local PACK = 2 ^ 26  -- a lazy table's range as one number: offset * PACK + length (< 64 MiB)

-- Lazy participants filled from their text in one call to C: t alone the first time; from the
-- second on, every participant of the body still lazy (a handler that reads a second walks the
-- roster, as a rule, and one call costs less than a decode and a copy per participant).
local function fill(t, mt)
  local list
  if mt.first then
    list = {}
    for k, v in pairs(mt) do
      if type(k) == "table" and v > 0 then
        local off = floor(v / PACK)
        list[#list + 1], list[#list + 2], list[#list + 3] = k, off, v - off * PACK
      end
    end
  else
    mt.first = true
    local v = mt[t]
    local off = floor(v / PACK)
    list = { t, off, v - off * PACK }
  end
  assert(decode_into(mt[1], list, mt[2]))
  for i = 1, #list, 3 do
    local p = list[i]
    mt[p] = nil
    setmetatable(p, nil)
  end
end

-- a lazy table's text, decoded: its data (an event) or its other fields (a participant)
local function materialize(t)
  local mt = getmetatable(t)
  local packed = mt and mt.flat and (mt[3] or mt[t])
  if not packed then return t end
  if packed > 0 then
    fill(t, mt)
    return t
  end
  packed = -packed
  local off = floor(packed / PACK)
  local text = mt[1]:sub(off + 1, off + packed - off * PACK)
  rawset(t, "data", decode(text, #text + 1, mt[2]))
  mt[t] = nil
  setmetatable(t, nil)
  return t
end

-- the body and the decoded strings of the body being read
local base, strs

local function str(s)
  local len = s.len
  if len < 0 then return nil end
  local off = s.off
  if off >= STRS then return ffistring(strs + (off - STRS), len) end
  return ffistring(base + off, len)
end

-- An event's only lazy field is its data: asking for a field it does not have (ev.toneInfo of
-- a call event without tones) must not decode anything.
local function lazy_index(t, k)
  local mt = getmetatable(t)
  if k ~= "data" and (mt[3] or mt[t] or 0) < 0 then return nil end
  materialize(t)
  return rawget(t, k)
end

-- the metatable the lazy tables of one body share, sized for them: [1] the body, [2] the
-- depth limit, [t] the range of lazy table t; or, for a body of one event alone, [3] its range
local function lazy_mt(body, max_depth, nlazy)
  local mt = tnew(2, nlazy + 2)
  mt.__index, mt.flat, mt[1], mt[2] = lazy_index, true, body, max_depth
  return mt
end

--- Build a lazy table of this module in full (see `graphcall.materialize`).
-- @return t, or nil if t is not one of this module's lazy tables
function M.materialize(t)
  local mt = getmetatable(t)
  if not (mt and mt.flat) then return nil end
  materialize(t)
  local parts = rawget(t, "participants")
  if type(parts) == "table" then
    for i = 1, #parts do materialize(parts[i]) end
  end
  return t
end

-- errors are graphcall.core's, with its metatable (tostring gives "path: message")
local error_mt = core.error_mt

local function err(out)
  return nil, setmetatable({ code = ffistring(out.err_code), message = ffistring(out.err_msg),
                             path = ffistring(out.err_path) }, error_mt)
end

--- Parse a commsNotifications body (as `core.parse_notifications`).
function M.parse(body, opts)
  if type(body) ~= "string" then
    -- a body as bytes (`loop:listen{raw_body = true}`): the C API reads it as it is
    if type(body) == "userdata" then return core.parse_notifications(body, opts) end
    error("bad argument #1 to 'parse_notifications' (string expected, got " .. type(body) .. ")", 2)
  end
  local max_size, max_depth, max_n = 0, 0, 256
  if opts ~= nil then
    max_size = opts.max_size or 0
    max_depth = opts.max_depth or 0
    max_n = opts.max_notifications or 256
  end
  local out = lib.gc_flat_parse(ctx, body, #body, max_size, max_depth, max_n)
  if out.err_code ~= nil then return err(out) end
  base, strs = cast("const char *", body), out.strs
  local n = out.nev
  local events = tnew(n, 0)
  local mt
  for i = 0, n - 1 do
    local e = out.ev[i]
    local kind, flags = e.kind, e.flags
    local resource = str(e.resource)
    local result
    if band(flags, F_RESULT) ~= 0 then
      result = { code = band(flags, F_CODE) ~= 0 and e.code or nil,
                 subcode = band(flags, F_SUBCODE) ~= 0 and e.subcode or nil,
                 message = str(e.message) }
    end
    -- one constructor per kind, naming every key it may set: the table is sized once
    local ev
    if kind == 0 then
      local tone
      if band(flags, F_TONE) ~= 0 then
        tone = { tone = str(e.tone), sequenceId = band(flags, F_SEQID) ~= 0 and e.sequence_id or nil }
      end
      ev = {
        changeType = CHANGES[e.change] or str(e.change_type),
        resourceUrl = str(e.url) or resource, resource = resource,
        callId = str(e.call_id), kind = "call", fingerprint = e.fingerprint,
        state = str(e.state), direction = str(e.direction), tenantId = str(e.tenant_id),
        callChainId = str(e.call_chain_id), myParticipantId = str(e.my_participant_id),
        incoming = band(flags, F_INCOMING) ~= 0 or nil, toneInfo = tone, resultInfo = result,
      }
    elseif kind == 1 then
      local list
      if band(flags, F_PARTS) ~= 0 then
        local first, count = e.part_first, e.part_count
        list = tnew(count, 0)
        if count > 0 then
          mt = mt or lazy_mt(body, max_depth, n + count)
          for j = 1, count do
            local p = out.part[first + j - 1]
            local pf = p.flags
            local t = setmetatable({
              id = str(p.id),
              rosterSequenceNumber = band(pf, FP_RSN) ~= 0 and p.rsn or nil,
              removed = band(pf, FP_REMOVED) ~= 0,
            }, mt)
            mt[t] = p.off * PACK + p.len
            list[j] = t
          end
        end
      end
      local delta = band(flags, F_DELTA) ~= 0
      ev = {
        changeType = CHANGES[e.change] or str(e.change_type),
        resourceUrl = str(e.url) or resource, resource = resource,
        callId = str(e.call_id), kind = "participants", fingerprint = e.fingerprint,
        delta = delta or nil,
        sequenceNumber = delta and band(flags, F_SEQNUM) ~= 0 and e.sequence_number or nil,
        participants = list,
      }
    elseif kind == 2 then
      ev = {
        changeType = CHANGES[e.change] or str(e.change_type),
        resourceUrl = str(e.url) or resource, resource = resource,
        callId = str(e.call_id), kind = "operation", fingerprint = e.fingerprint,
        operationId = str(e.sub_id), operationType = str(e.op_type),
        status = STATUS[e.status] or str(e.status_text), clientContext = str(e.client_context),
        resultInfo = result,
      }
      if e.item_len > 0 then
        -- the operation type's own fields (recordingLocation, completionReason, ...)
        local v = decode(body:sub(e.item_off + 1, e.item_off + e.item_len), e.item_len + 1, max_depth)
        for k, x in pairs(v) do
          if k ~= "id" and k:sub(1, 1) ~= "@" and rawget(ev, k) == nil then rawset(ev, k, x) end
        end
      end
    else
      local sessions
      if kind == 3 then
        sessions = {}
        if e.item_len > 0 then
          local v = decode(body:sub(e.item_off + 1, e.item_off + e.item_len), e.item_len + 1, max_depth)
          sessions = band(flags, F_ITEM_ARRAY) ~= 0 and v or { v }
        end
      end
      ev = {
        changeType = CHANGES[e.change] or str(e.change_type),
        resourceUrl = str(e.url) or resource, resource = resource,
        callId = str(e.call_id), kind = KINDS[kind], fingerprint = e.fingerprint,
        sessionId = kind == 3 and str(e.sub_id) or nil, sessions = sessions,
      }
    end
    if e.data_len > 0 then
      local packed = -(e.data_off * PACK + e.data_len)
      if n == 1 and not mt then
        -- the usual body, one notification and nothing else lazy: its range in the array part
        setmetatable(ev, { __index = lazy_index, flat = true, body, max_depth, packed })
      else
        mt = mt or lazy_mt(body, max_depth, n)
        setmetatable(ev, mt)
        mt[ev] = packed
      end
    end
    events[i + 1] = ev
  end
  return events
end

M.null = null
return M
