--- Reading Graph's answers: the created call, and Graph's error bodies.
-- @module graphcall.response
local core = require "graphcall.core"

local M = {}

local error_mt = core.error_mt

local function fail(code, message, extra)
  local err = { code = code, message = message, path = "" }
  for k, v in pairs(extra or {}) do err[k] = v end
  return nil, setmetatable(err, error_mt)
end

--- Look up a header by name, case-insensitively, in a table or a raw header block.
local function header(headers, name)
  name = name:lower()
  if type(headers) == "table" then
    for k, v in pairs(headers) do
      if type(k) == "string" and k:lower() == name then
        return type(v) == "table" and v[1] or v
      end
    end
  elseif type(headers) == "string" then
    for line in headers:gmatch("[^\r\n]+") do
      local k, v = line:match("^([^:%s]+)%s*:%s*(.-)%s*$")
      if k and k:lower() == name then return v end
    end
  end
  return nil
end
M.header = header

--- Graph's error body -> {code="graph", status=, message=, graphCode=, requestId=, ...}.
-- The innerError chain is walked for the most specific code (REFERENCE.md §5.1).
function M.parse_error(status, headers, body)
  local extra = { status = status, requestId = header(headers, "request-id"),
                  clientRequestId = header(headers, "client-request-id"),
                  retryAfter = tonumber(header(headers, "Retry-After") or "") }
  local doc = type(body) == "string" and body ~= "" and core.decode(body) or nil
  local e = type(doc) == "table" and type(doc.error) == "table" and doc.error or nil
  if not e then
    return fail("graph", "HTTP " .. tostring(status), extra)
  end
  extra.graphCode = type(e.code) == "string" and e.code or nil
  local inner = e.innerError or e.innererror
  local depth = 0
  while type(inner) == "table" and depth < 8 do
    extra.requestId = extra.requestId or inner["request-id"]
    extra.clientRequestId = extra.clientRequestId or inner["client-request-id"]
    if type(inner.code) == "string" then extra.innerCode = inner.code end
    inner = inner.innerError or inner.innererror
    depth = depth + 1
  end
  local msg = type(e.message) == "string" and e.message or ("HTTP " .. tostring(status))
  return fail("graph", msg, extra)
end

--- The answer to POST /communications/calls.
-- @param status HTTP status (201 expected)
-- @param headers table of headers, or the raw header block
-- @param body the response body
-- @return the call as a Lua table with its `id` (from the body, else from Location),
--   or nil and an error
function M.parse_call_response(status, headers, body)
  if type(status) ~= "number" then
    error("bad argument #1 to 'parse_call_response' (number expected, got " .. type(status) .. ")", 2)
  end
  if status < 200 or status > 299 then return M.parse_error(status, headers, body) end
  local call
  if type(body) == "string" and body:find("%S") then
    local err
    call, err = core.decode(body)
    if call == nil then return nil, err end
    if type(call) ~= "table" then return fail("response", "response body is not a JSON object") end
  else
    call = {}
  end
  if type(call.id) ~= "string" or call.id == "" then
    local loc = header(headers, "Location")
    local id = loc and loc:match("/calls/([^/?#]+)/?[?#]?.*$")
    if not id then
      return fail("response", "no call id in the body nor in the Location header", { status = status })
    end
    call.id = id
  end
  return call
end

return M
