--- What the emulator checks in a request as the service would: strict JSON, Graph's schema,
-- the limits its pages document beyond the schema, and the calling roles a token carries.
-- @module graphcall.emulator.rules
local core = require "graphcall.core"
local U = require "graphcall.emulator.util"

local null = U.null

local R = {}

local E164 = "^%+[1-9]%d%d%d%d%d%d+$"   -- +, then 7 to 15 digits (checked below)

-- Phone ids in a request, each with where it is.
local function phones(v, path, out)
  if type(v) ~= "table" then return out end
  if type(v.phone) == "table" and v.phone.id ~= nil then
    out[#out + 1] = { id = v.phone.id, at = path .. ".phone.id" }
  end
  for k, x in pairs(v) do
    if type(x) == "table" and k ~= "phone" then
      phones(x, path .. (type(k) == "number" and ("[" .. k .. "]") or ("." .. k)), out)
    end
  end
  return out
end

-- What the service documents beyond the schema (REFERENCE.md sections 1, 2, 5.2): nil, or why not.
local function limits(kind, doc)
  local ctx = doc.clientContext
  if type(ctx) == "string" and #ctx > 256 then
    return "clientContext: at most 256 characters (got " .. #ctx .. ")"
  end
  if kind == "recordResponse" then
    for _, k in ipairs { "initialSilenceTimeoutInSeconds", "maxSilenceTimeoutInSeconds",
                         "maxRecordDurationInSeconds" } do
      local v = doc[k]
      if v ~= nil and v ~= null and (type(v) ~= "number" or v < 1 or v > 120) then
        return k .. ": from 1 to 120 seconds (a recording is 2 minutes at most; got " .. tostring(v) .. ")"
      end
    end
  end
  for _, p in ipairs(phones(doc, kind, {})) do
    local id = p.id
    if type(id) ~= "string" or not id:match(E164) or #id > 16 then
      return p.at .. ": a phone number in E.164 form (+ and 8 to 15 digits; got " .. tostring(id) .. ")"
    end
  end
  if kind == "call" and #phones(doc.targets, "targets", {}) > 0 then
    local src = type(doc.source) == "table" and doc.source.identity
    if type(src) ~= "table" or type(src.applicationInstance) ~= "table" then
      return "source.identity.applicationInstance: a call to a phone number is made by an application instance with "
        .. "a number assigned"
    end
  end
end

-- Validate a body as the service would: strict JSON, Graph's schema, the documented limits.
function R.validate(kind, body)
  if kind == "keepAlive" then return {} end
  local doc
  if body == "" then
    doc = {}
  else
    local derr
    doc, derr = core.decode(body, 1048576)
    if doc == nil then return nil, "Unable to read JSON request payload: " .. tostring(derr and derr.message) end
  end
  if type(doc) ~= "table" then return nil, "the body is not a JSON object" end
  local ok, err = core.build(kind, doc)
  if not ok then return nil, tostring(err) end
  local why = limits(kind, doc)
  if why then return nil, why end
  return doc
end

-- The calling roles a token must carry for a call of this kind (REFERENCE.md section 6).
function R.role_for(doc)
  if type(doc.meetingInfo) == "table" then return "Calls.JoinGroupCall.All" end
  if type(doc.targets) == "table" and #doc.targets > 1 then return "Calls.InitiateGroupCall.All" end
  return "Calls.Initiate.All"
end

function R.has_role(claims, role)
  for _, r in ipairs(type(claims.roles) == "table" and claims.roles or {}) do
    if r == role or (role == nil and type(r) == "string" and r:match("^Calls%.")) then return true end
  end
  return false
end

return R
