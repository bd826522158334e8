--- The wire: Graph request bodies built from Lua tables that mirror Graph's JSON, Graph's
-- answers read, the notifications the calling service POSTs back parsed (graphcall.jwt
-- verifies them, graphcall.tracker orders them), and the one JSON writer of what graphcall
-- keeps. No I/O: safe in every nginx phase. `graphcall` gives all of it, with the
-- constructors of the layers above (client, listener, bot, loop).
-- @module graphcall.wire
local core = require "graphcall.core"
local response = require "graphcall.response"

local M = {
  _VERSION = "graphcall 0.1.0-dev",
  --- JSON null; the same value as cjson.null, so either one works in a spec.
  null = core.null,
}

local known = {}
for _, name in ipairs(core.types()) do known[name] = true end

--- Build the JSON body of a Graph object or action.
-- build(kind, spec): kind is "call" or an action name ("answer", "playPrompt",
-- "participant.mute", ...); spec is a table mirroring Graph's JSON (camelCase names).
-- Returns the JSON text, or nil and an error {code=, message=, path=}. Raises on a kind it
-- does not know or a spec that is not a table (programming errors).
M.build = core.build

--- The names build() takes: Graph types and action parameter sets.
function M.kinds()
  local out = {}
  for name in pairs(known) do out[#out + 1] = name end
  table.sort(out)
  return out
end

local array_mt = { __jsontype = "array" }
local object_mt = { __jsontype = "object" }

--- Mark a table as a JSON array (an empty one encodes as [] where the schema does not say).
function M.array(t) return setmetatable(t or {}, array_mt) end
--- Mark a table as a JSON object (an empty one encodes as {}).
function M.object(t) return setmetatable(t or {}, object_mt) end

--- Give a table its @odata.type: graphcall.typed("serviceHostedMediaConfig", {...}).
function M.typed(name, t)
  if type(name) ~= "string" or not known[name] or name:find(":", 1, true) then
    error("bad argument #1 to 'typed' (unknown Graph type '" .. tostring(name) .. "')", 2)
  end
  t = t or {}
  t["@odata.type"] = "#microsoft.graph." .. name
  return t
end

-- Constructors for the polymorphic types a call needs: each gives its table the Graph type
-- of its name (`@odata.type`), which the service needs to tell the kinds apart.

--- A `serviceHostedMediaConfig`: the service plays prompts, records and hears tones (IVR).
-- @param t its fields (`preFetchMedia`: a list of mediaInfo), or nil
-- @return t, typed
function M.serviceHostedMediaConfig(t) return M.typed("serviceHostedMediaConfig", t) end
--- An `appHostedMediaConfig`: the bot handles the media itself (`blob`).
-- @param t its fields (`blob`)
-- @return t, typed
function M.appHostedMediaConfig(t) return M.typed("appHostedMediaConfig", t) end
--- An `organizerMeetingInfo` (a meeting by its organizer's identity).
-- @param t its fields (`organizer`: an identitySet)
-- @return t, typed
function M.organizerMeetingInfo(t) return M.typed("organizerMeetingInfo", t) end
--- A `joinMeetingIdMeetingInfo` (a meeting by its join id and passcode).
-- @param t its fields (`joinMeetingId`, `passcode`)
-- @return t, typed
function M.joinMeetingIdMeetingInfo(t) return M.typed("joinMeetingIdMeetingInfo", t) end
--- A `tokenMeetingInfo` (a meeting by a token).
-- @param t its fields (`token`)
-- @return t, typed
function M.tokenMeetingInfo(t) return M.typed("tokenMeetingInfo", t) end
--- A `mediaPrompt`: one prompt for playPrompt or recordResponse.
-- @param t its fields (`mediaInfo` = {uri =, resourceId =})
-- @return t, typed
function M.mediaPrompt(t) return M.typed("mediaPrompt", t) end
--- An `incomingCallOptions` (answer's `callOptions`).
-- @param t its fields (`isContentSharingNotificationEnabled`, `isDeltaRosterEnabled`, ...)
-- @return t, typed
function M.incomingCallOptions(t) return M.typed("incomingCallOptions", t) end
--- An `outgoingCallOptions` (a new call's `callOptions`).
-- @param t its fields (`isContentSharingNotificationEnabled`, `isDeltaRosterEnabled`, ...)
-- @return t, typed
function M.outgoingCallOptions(t) return M.typed("outgoingCallOptions", t) end

--- Decode JSON text (strict, size- and depth-limited) into Lua values; null is graphcall.null.
-- decode(text [, max_size [, max_depth]]) returns the value, or nil and an error.
M.decode = core.decode

--- Parse the body of a callback POST (commsNotifications) into events.
-- parse_notifications(body [, opts]); opts: max_size (bytes, default 4 MiB), max_depth
-- (default 64), max_notifications (256). Returns an array of events, or nil and an error
-- (nothing of a bad body is returned). Verify the sender first (graphcall.jwt) and hand the
-- events to a tracker (graphcall.tracker) so each reaches handlers once and in order.
M.parse_notifications = core.parse_notifications

-- Under LuaJIT the same events are built through the FFI (graphcall.flat): each lua_* call
-- from C leaves compiled code, which cost more than the parse. GRAPHCALL_FFI=0 turns it off.
local flat = jit and os.getenv("GRAPHCALL_FFI") ~= "0" and select(2, pcall(require, "graphcall.flat"))
if type(flat) ~= "table" then flat = nil end
if flat then M.parse_notifications = flat.parse end

--- Build a lazy table in full: an event's `data` and its roster participants, or one roster
-- participant's fields. Reading any missing field does the same; this is for pairs() and
-- cjson.encode of a whole event, and for dropping the parsed body early. Returns t.
M.materialize = core.materialize
if flat then
  function M.materialize(t) return flat.materialize(t) or core.materialize(t) end
end

M.parse_call_response = response.parse_call_response
M.parse_error = response.parse_error

--- An id as graphcall compares ids: a GUID in any case, with or without dashes, as the
-- lower-case dashed form of Graph's answers (its notifications may write
-- "57DAB8B1894C409AB240BD8BEAE78896" for "57dab8b1-894c-409a-b240-bd8beae78896"); any other
-- id as it is. Events from `parse_notifications` carry their ids in this form already.
-- @param id a string (or nil)
-- @return the id in that form
function M.id(id)
  if type(id) ~= "string" then return id end
  local n = #id
  if n == 36 and id:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
    return id:lower()
  end
  if n == 32 and not id:find("%X") then
    local h = id:lower()
    return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-" .. h:sub(13, 16) .. "-" .. h:sub(17, 20) .. "-" .. h:sub(21)
  end
  return id
end

--- True for a callback body in the legacy (pre-Graph, Skype) format: a JSON object that is no
-- commsNotifications (it has no `value`). Microsoft's Teams documentation: answer it 204 and
-- the platform sends the notification again in Graph's format.
-- @param body the text
function M.legacy(body)
  local doc = core.decode(body, 1048576, 16)
  return type(doc) == "table" and doc.value == nil and next(doc) ~= nil and #doc == 0
end

--- JSON text of plain data (what the stores keep: log entries, states): integers exact, other
-- numbers with the digits that read back the same, "/" as is, UTF-8 checked; raises, saying
-- why, for what JSON cannot hold (a function, an array with holes, a cycle).
-- @param v a string, number, boolean, `graphcall.null` or table of them
-- @return the text
function M.json(v)
  local s, err = core.encode(v)
  if not s then error("graphcall: cannot write JSON: " .. tostring(err), 2) end
  return s
end

return M
