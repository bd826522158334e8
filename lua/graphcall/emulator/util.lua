--- What the parts of the emulator share: JSON out, Graph's shapes (typed objects, result
-- infos, errors), and small facts about calls.
-- @module graphcall.emulator.util
local core = require "graphcall.core"
local wire = require "graphcall.wire"

local U = {}

U.null = core.null
U.unpack = table.unpack or unpack  -- luacheck: ignore 143
U.GRAPH_AUD = "https://graph.microsoft.com"
U.CALLBACK_ISS = "https://api.botframework.com"
U.JSON_CT = "application/json"

--- JSON out, as the service writes it: with graphcall's one writer ("/" unescaped, integers
-- exact, empty arrays marked with `array` written `[]`).
U.json = wire.json

--- A JSON array, `[]` when empty.
U.array = wire.array

--- A JSON object, `{}` when empty.
U.object = wire.object

--- A Graph object with its @odata.type.
function U.typed(name, t)
  t = t or {}
  t["@odata.type"] = "#microsoft.graph." .. name
  return t
end

--- A resultInfo (`spelling`: "subCode" where a payload spells it so).
function U.result_info(code, subcode, message, spelling)
  return U.typed("resultInfo", { code = code, [spelling or "subcode"] = subcode, message = message })
end

--- Graph's error body.
function U.graph_error(code, message)
  return { error = { code = code, message = message, innerError = {
    date = os.date("!%Y-%m-%dT%H:%M:%S"), ["request-id"] = core.uuid() } } }
end

--- An application/x-www-form-urlencoded body as a table.
function U.parse_form(body)
  local t = {}
  for pair in body:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function un(s)
      return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    t[un(k)] = un(v)
  end
  return t
end

--- An id as Graph's own notification examples write some (upper case, no dashes).
function U.doc_id(id) return (id:upper():gsub("-", "")) end

--- A call's path under Graph's root.
function U.call_url(id) return "/communications/calls/" .. id end

--- True while a call has not ended.
function U.alive(call) return call.state ~= "terminated" end

--- The JSON view of an operation (what the service answers and notifies).
function U.op_view(op, extra)
  local v = U.typed(op["@odata.type"]:sub(18), { id = op.id, status = op.status, clientContext = op.clientContext })
  for k, x in pairs(extra or {}) do v[k] = x end
  return v
end

--- The id of an identity set and its kind (phone, user, ...).
function U.identity_key(identity)
  if type(identity) ~= "table" then return nil end
  for _, k in ipairs { "phone", "user", "applicationInstance", "application", "guest" } do
    local v = identity[k]
    if type(v) == "table" and type(v.id) == "string" then return v.id, k end
  end
end

--- A participant of a roster, as the service writes it.
function U.participant(p)
  local streams = U.array { U.typed("mediaStream", { mediaType = "audio", sourceId = p.sourceId,
    direction = "sendReceive", serverMuted = false }) }
  return U.typed("participant", {
    id = p.id, isMuted = p.muted or false, isInLobby = false, mediaStreams = streams,
    info = U.typed("participantInfo", { identity = U.typed("identitySet", { [p.kind or "user"] =
      U.typed("identity", { id = p.identityId, displayName = p.name }) }), languageId = "en-US" }),
  })
end

return U
