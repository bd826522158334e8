--- A Redis client for graphcall's stores: one connection, commands pipelined and answered in
-- order, the protocol in the C core (hiredis's formatter and reader, which do no I/O).
-- Standalone it runs on a `graphcall.loop` (a TCP stream of the I/O half); inside nginx on
-- cosockets, with a keep-alive pool.
--
--   local redis = require("graphcall.redis").new { port = 6379, loop = loop }
--   local ok, err = redis:call("SET", "k", "v")            -- waits (in a task, or runs the loop)
--   redis:call("GET", "k", function(v, err) ... end)       -- a function last: async
--
-- Answers: strings, integers, `graphcall.null` for a nil bulk, tables for arrays (an error
-- inside one is `{err = message}`). An error reply gives nil and `{code = "redis", message}`;
-- a lost connection `{code = "closed"}` for every command that had not been answered (a write
-- among them may or may not have been applied).
-- @module graphcall.redis
local core = require "graphcall.core"

local M = {}
local unpack = table.unpack or unpack
local ngx = rawget(_G, "ngx")   -- inside nginx only

local function fail(code, message) return { code = code, message = message } end

-- ---- standalone: one stream on a graphcall.loop -------------------------------------------

local Loop = {}
Loop.__index = Loop

local function flush_failed(self, err)
  local q = self.queue
  self.queue, self.stream, self.open = {}, nil, false
  self.loop.busy = self.loop.busy - #q
  for _, cb in ipairs(q) do self.loop:protect("Redis callback", cb, nil, err) end
end

-- AUTH first on every connection, when there are credentials: its answer is the first
-- (a refusal fails what waited behind it; the error never carries the password)
local function auth_command(self)
  if not self.password then return nil end
  if self.user then return core.resp_command("AUTH", self.user, self.password) end
  return core.resp_command("AUTH", self.password)
end

local function auth_failed(e)
  return fail("auth", "Redis refused the credentials: " .. tostring(e))
end

function Loop:_connect()
  self.reader = core.resp_reader()
  self.queue, self.out, self.open = {}, {}, false
  local auth = auth_command(self)
  if auth then
    self.out[1] = auth
    self.queue[1] = function(_, e)
      if e then
        self.stream:close()
        flush_failed(self, auth_failed(e.message))
      end
    end
    self.loop.busy = self.loop.busy + 1
  end
  local stream, err = self.loop:tcp(self.host, self.port, function(ev, data)
    if ev == "open" then
      self.open = true
      if #self.out > 0 then self.stream:write(table.concat(self.out)) end
      self.out = {}
    elseif ev == "data" then
      self.reader:feed(data)
      while self.stream do                   -- (a refused AUTH closed it: the rest is not ours)
        local ok, got, v, e = pcall(self.reader.get, self.reader)
        if not ok then                       -- a protocol error: nothing after it can be trusted
          self.stream:close()
          return flush_failed(self, fail("protocol", tostring(got)))
        end
        if not got then break end
        local cb = table.remove(self.queue, 1)
        self.loop.busy = self.loop.busy - 1
        if cb then
          if e then self.loop:protect("Redis callback", cb, nil, fail("redis", e))
          else self.loop:protect("Redis callback", cb, v) end
        end
      end
    else
      flush_failed(self, fail("closed", data ~= "" and data or "the connection closed"))
    end
  end, self.timeout, self.tls and { tls = true, cafile = self.cafile, servername = self.servername } or nil)
  if not stream then return nil, err end
  self.stream = stream
  return true
end

function Loop:_send(args, cb)
  if not self.stream then
    local ok, err = self:_connect()
    if not ok then return cb(nil, fail("connect", err.message or tostring(err))) end
  end
  local bytes = core.resp_command(unpack(args, 1, args.n))
  self.queue[#self.queue + 1] = cb
  self.loop.busy = self.loop.busy + 1
  if self.open then
    local ok = self.stream:write(bytes)
    if not ok then return flush_failed(self, fail("closed", "the connection closed")) end
  else
    self.out[#self.out + 1] = bytes
  end
end

--- Run a command: `redis:call(name, arg, ...)` waits for its answer; with a function last,
-- it is called with (value) or (nil, err) instead.
-- @return the answer, or nil and an error
function Loop:call(...)
  local n = select("#", ...)
  local last = select(n, ...)
  if type(last) == "function" then
    return self:_send({ n = n - 1, ... }, last)
  end
  local args = { n = n, ... }
  return self.loop:await(function(done) self:_send(args, done) end)
end

--- Close the connection (commands not answered get `closed`).
function Loop:close()
  if self.stream then
    self.stream:close()
    flush_failed(self, fail("closed", "closed by the client"))
  end
end

-- ---- nginx: cosockets ---------------------------------------------------------------------

local Ngx = {}
Ngx.__index = Ngx

--- (nginx) Run a command on a pooled connection; yields the light thread, never the worker.
function Ngx:call(...)
  local n = select("#", ...)
  local last = select(n, ...)
  local cb
  if type(last) == "function" then cb, n = last, n - 1 end
  local v, err = self:_call({ n = n, ... })
  if cb then return cb(v, err) end
  return v, err
end

function Ngx:_call(args)
  local sock = ngx.socket.tcp()
  sock:settimeouts(self.timeout, self.timeout, self.timeout)
  local ok, err = sock:connect(self.host, self.port, { pool = self.pool, pool_size = self.pool_size })
  if not ok then return nil, fail("connect", err) end
  local fresh = sock:getreusedtimes() == 0
  if fresh and self.tls then   -- verified against nginx's lua_ssl_trusted_certificate
    ok, err = sock:sslhandshake(nil, self.servername or self.host, true)
    if not ok then
      sock:close()
      return nil, fail("closed", "TLS: " .. tostring(err))
    end
  end
  local reader = core.resp_reader()
  local auth = fresh and auth_command(self)
  local bytes = core.resp_command(unpack(args, 1, args.n))
  ok, err = sock:send(auth and (auth .. bytes) or bytes)   -- a pooled connection is authenticated already
  if not ok then
    sock:close()
    return nil, fail("closed", err)
  end
  while true do
    local pok, got, v, e = pcall(reader.get, reader)
    if not pok then
      sock:close()
      return nil, fail("protocol", tostring(got))
    end
    if got and auth then                  -- the AUTH answer, before the command's
      auth = nil
      if e then
        sock:close()
        return nil, auth_failed(e)
      end
    elseif got then
      sock:setkeepalive(60000, self.pool_size)
      if e then return nil, fail("redis", e) end
      return v
    else
      local data, rerr = sock:receiveany(65536)
      if not data then
        sock:close()
        return nil, fail("closed", rerr)
      end
      reader:feed(data)
    end
  end
end

--- Nothing to close: nginx pools its cosockets.
function Ngx.close() end

local function unescape(s) return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end

--- Where a Redis is, from its URL: `redis://[[user]:password@]host[:port][/]` (the user and
-- password percent-encoded as in any URL), or `rediss://...` for TLS.
-- @return {host =, port =, user =, password =, tls =}, or nil and what is wrong (never the
--   password)
function M.parse_url(url)
  if type(url) ~= "string" then return nil, "a redis:// URL is a string" end
  local scheme, rest = url:match("^(rediss?)://(.*)$")
  if not rest then return nil, "not a redis:// or rediss:// URL (redis://[user:password@]host:port)" end
  rest = rest:gsub("/%d*$", "")
  local cred, hostport = rest:match("^(.*)@([^@]*)$")
  hostport = hostport or rest
  local out = { tls = scheme == "rediss" or nil }
  if cred then
    local user, password = cred:match("^([^:]*):(.*)$")
    if not user then user, password = "", cred end
    out.user = user ~= "" and unescape(user) or nil
    out.password = unescape(password)
  end
  local host, port = hostport:match("^%[?([^%]]*)%]?:(%d+)$")
  if not host then host = hostport:match("^%[?([^%]:]+)%]?$") end
  if not host or host == "" then return nil, "redis://: no host" end
  out.host, out.port = host, tonumber(port or 6379)
  return out
end

--- A client. In nginx (a phase with cosockets) it uses them; elsewhere it needs `loop`.
-- @param o `url` ("redis://[user:password@]host:port"; or the parts:) `host` ("127.0.0.1": a
--   numeric address), `port` (6379), `user` and `password` (AUTH on each new connection: an
--   ACL user, or `requirepass`'s password alone), `tls` (true: TLS, the server's certificate
--   verified), `cafile` (the CA bundle it must chain to, standalone; in nginx,
--   `lua_ssl_trusted_certificate`), `servername` (the name its certificate must carry, when the
--   host is an address; the address by default, which nginx cannot check: give the name
--   there), `loop` (standalone), `timeout` (ms, 5000:
--   connecting, and each read or write in nginx), `pool_size` (nginx, 32)
-- @return the client
function M.new(o)
  o = o or {}
  if o.url then
    local parts, err = M.parse_url(o.url)
    if not parts then error("graphcall.redis: " .. err, 2) end
    local merged = {}
    for k, v in pairs(o) do merged[k] = v end
    for k, v in pairs(parts) do merged[k] = v end
    o = merged
  end
  local c = { host = o.host or "127.0.0.1", port = o.port or 6379, timeout = o.timeout or 5000,
              user = o.user, password = o.password, tls = o.tls, cafile = o.cafile, servername = o.servername }
  if o.loop then
    c.loop = o.loop
    return setmetatable(c, Loop)
  end
  if not (ngx and ngx.socket) then error("graphcall.redis: a loop is needed outside nginx", 2) end
  c.pool_size = o.pool_size or 32
  -- connections are pooled per credentials: one authenticated as another user is not reused
  c.pool = "graphcall-redis:" .. (c.tls and "tls:" or "") .. c.host .. ":" .. c.port .. ":" .. (c.user or "") .. ":"
    .. (c.password and core.hash(c.password) or "")
  return setmetatable(c, Ngx)
end

return M
