--- HTTP/1.1 over nginx cosockets, for graphcall inside OpenResty: the transport under the same
-- client API as libcurl's standalone one, never blocking a worker. Keep-alive pools per host,
-- TLS verified with `sslhandshake` (nginx's `lua_ssl_trusted_certificate` holds the CAs),
-- Content-Length and chunked bodies, connect/send/read timeouts.
--
--   local http = require "graphcall.ngx.http"
--   local res, err = http.request { method = "POST", url = "https://...", headers = {...}, body = s }
--   -- res: status, head (raw header block), body, res:header(name); err: code, message, sent
-- @module graphcall.ngx.http
local response = require "graphcall.response"

local M = {}

local Response = {}
Response.__index = Response
--- A header by name (any case).
function Response:header(name) return response.header(self.head, name) end

local function fail(code, message, sent)
  return nil, { code = code, message = message, sent = sent or false }
end

local function parse_url(url)
  local scheme, host, port, path = url:match("^(https?)://([^/:?#]+):?(%d*)([^#]*)$")
  if not scheme then
    scheme, host, port, path = url:match("^(https?)://%[([^%]]+)%]:?(%d*)([^#]*)$")
  end
  if not scheme then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if path == "" then path = "/" end
  return scheme, host, port, path
end

-- A body of known length, chunked, or up to the close of the connection.
local function read_body(sock, headers, max)
  local te = response.header(headers, "Transfer-Encoding")
  if te and te:lower():find("chunked", 1, true) then
    local parts, size = {}, 0
    while true do
      local line, err = sock:receive("*l")
      if not line then return nil, err end
      local n = tonumber(line:match("^%s*(%x+)"), 16)
      if not n then return nil, "bad chunk size" end
      if n == 0 then
        repeat line = sock:receive("*l") until not line or line == ""   -- trailers
        break
      end
      size = size + n
      if size > max then return nil, "too_large" end
      local data, derr = sock:receive(n)
      if not data then return nil, derr end
      parts[#parts + 1] = data
      sock:receive("*l")
    end
    return table.concat(parts)
  end
  local len = tonumber(response.header(headers, "Content-Length") or "")
  if len then
    if len > max then return nil, "too_large" end
    if len == 0 then return "" end
    return sock:receive(len)
  end
  return sock:receive("*a")
end

--- Send a request and read the answer.
-- @param o `method` ("GET"), `url`, `headers` ({name = value}), `body`, `timeout` (ms, 30000),
--   `connect_timeout` (ms, 10000), `max_body` (bytes, 64 MiB), `fresh` (a new connection),
--   `verify` (false: do not verify the TLS peer; tests only), `pool_size` (32)
-- @return res, or nil and {code = "connect"|"tls"|"timeout"|"transport"|"too_large", message,
--   sent}
function M.request(o)
  local scheme, host, port, path = parse_url(o.url or "")
  if not scheme then return fail("transport", "not an http(s) URL: " .. tostring(o.url)) end
  local sock = ngx.socket.tcp()
  local tmo = o.timeout or 30000
  sock:settimeouts(o.connect_timeout or 10000, tmo, tmo)
  local pool = scheme .. ":" .. host .. ":" .. port
  local ok, err = sock:connect(host, port, { pool = pool, pool_size = o.pool_size or 32 })
  if not ok then return fail(err == "timeout" and "timeout" or "connect", "connect to " .. pool .. ": " .. err) end
  if o.fresh and sock:getreusedtimes() > 0 then
    sock:close()
    sock = ngx.socket.tcp()
    sock:settimeouts(o.connect_timeout or 10000, tmo, tmo)
    ok, err = sock:connect(host, port, { pool = pool .. ":fresh" })
    if not ok then return fail("connect", "connect to " .. pool .. ": " .. err) end
  end
  if scheme == "https" and sock:getreusedtimes() == 0 then
    local sess
    sess, err = sock:sslhandshake(nil, host, o.verify ~= false)
    if not sess then
      sock:close()
      return fail("tls", "TLS with " .. host .. ": " .. tostring(err))
    end
  end
  local body = o.body
  local lines = { (o.method or "GET") .. " " .. path .. " HTTP/1.1", "Host: " .. host ..
    ((port == 80 or port == 443) and "" or (":" .. port)), "Connection: keep-alive" }
  local has_len = false
  for k, v in pairs(o.headers or {}) do
    if tostring(k):lower() == "content-length" then has_len = true end
    lines[#lines + 1] = k .. ": " .. tostring(v)
  end
  if body or (o.method and o.method ~= "GET" and o.method ~= "HEAD" and o.method ~= "DELETE") then
    if not has_len then lines[#lines + 1] = "Content-Length: " .. #(body or "") end
  end
  local req = table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
  local sent
  sent, err = sock:send(req)
  if not sent then
    sock:close()
    return fail(err == "timeout" and "timeout" or "transport", "send: " .. err, false)
  end
  -- the answer: status line, headers, body
  local status_line
  status_line, err = sock:receive("*l")
  if not status_line then
    sock:close()
    return fail(err == "timeout" and "timeout" or "transport", "no answer: " .. err, true)
  end
  local status = tonumber(status_line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then
    sock:close()
    return fail("transport", "not an HTTP answer: " .. status_line:sub(1, 60), true)
  end
  local head = { status_line }
  while true do
    local line, lerr = sock:receive("*l")
    if not line then
      sock:close()
      return fail("transport", "headers: " .. lerr, true)
    end
    if line == "" then break end
    head[#head + 1] = line
  end
  local raw = table.concat(head, "\r\n")
  local rbody = ""
  if o.method ~= "HEAD" and status ~= 204 and status ~= 304 and not (status >= 100 and status < 200) then
    rbody, err = read_body(sock, raw, o.max_body or 64 * 1048576)
    if not rbody then
      sock:close()
      return fail(err == "too_large" and "too_large" or (err == "timeout" and "timeout" or "transport"),
        "body: " .. tostring(err), true)
    end
  end
  local conn = response.header(raw, "Connection")
  if conn and conn:lower() == "close" then sock:close() else sock:setkeepalive(60000, o.pool_size or 32) end
  return setmetatable({ status = status, head = raw, body = rbody }, Response)
end

return M
