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
--
-- A Redis Cluster (`cluster =`): the slot map from every node's `CLUSTER NODES` (each slot to
-- the master that claims it with the highest config epoch: `slot_map`), a connection (a pool in
-- nginx) per node, each command sent to the master of its key's slot (`core.resp_slot`),
-- `MOVED` and `ASK` followed, and a failover waited out: a master that refuses connections,
-- `CLUSTERDOWN` or `TRYAGAIN` make the command go again once the map is read again, within
-- `failover` ms. A command cut off after it went is never sent twice. `client.moved`,
-- `client.asked` and `client.refreshes` count the redirections and the map's readings.
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
  if self.watching then
    self.watching:cancel()
    self.watching = nil
  end
  self.loop.busy = self.loop.busy - #q
  for _, cb in ipairs(q) do
    if cb then self.loop:protect("Redis callback", cb, nil, err) end
  end
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

-- No answer for `timeout` ms while commands wait (a server stopped, a peer gone without a
-- reset, which no write ever notices): the connection is closed and they fail with `timeout`
-- (like `closed`: they may have been done). One timer a connection, armed while commands wait.
local function watch(self, ms)
  if self.watching then return end
  self.watching = self.loop:timer(ms, function()
    self.watching = nil
    if not self.stream or #self.queue == 0 then return end
    local quiet = self.loop:now() - self.progress
    if quiet < self.timeout then return watch(self, self.timeout - quiet) end
    self.stream:close()
    flush_failed(self, fail("timeout", string.format("no answer from %s:%d in %d ms", self.host, self.port,
      math.floor(quiet))))
  end)
end

function Loop:_connect()
  self.reader = core.resp_reader()
  self.queue, self.out, self.open, self.progress = {}, {}, false, self.loop:now()
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
        self.progress = self.loop:now()
        if cb then
          if e then self.loop:protect("Redis callback", cb, nil, fail("redis", e))
          else self.loop:protect("Redis callback", cb, v) end
        end
      end
    else   -- closed before it opened: nothing was sent (a failover's dead master refuses)
      flush_failed(self, fail(self.open and "closed" or "connect", data ~= "" and data or "the connection closed"))
    end
  end, self.timeout, self.tls and { tls = true, cafile = self.cafile, servername = self.servername } or nil)
  if not stream then return nil, err end
  self.stream = stream
  return true
end

function Loop:_send(args, cb, asking)
  if asking then self:_send({ n = 1, "ASKING" }, false) end   -- the same connection, just before
  if not self.stream then
    local ok, err = self:_connect()
    if not ok then
      if cb then cb(nil, fail("connect", err.message or tostring(err))) end
      return
    end
  end
  local bytes = core.resp_command(unpack(args, 1, args.n))
  if #self.queue == 0 then self.progress = self.loop:now() end
  self.queue[#self.queue + 1] = cb
  watch(self, self.timeout)
  self.loop.busy = self.loop.busy + 1
  if self.open then
    local ok = self.stream:write(bytes)
    if not ok then return flush_failed(self, fail("closed", "the connection closed")) end
  else
    self.out[#self.out + 1] = bytes
  end
end

-- commands one after the other on the connection: cb({{value, err}, ...}) once all answered
function Loop:_sendmany(list, cb, asking)
  local results, left = {}, #list
  for i, args in ipairs(list) do
    self:_send(args, function(v, err)
      results[i] = { v, err }
      left = left - 1
      if left == 0 then cb(results) end
    end, asking and i == 1)
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

--- Run commands one after the other on one connection, sent at once: `redis:pipeline({{"SET",
-- "k", "v"}, {"WAIT", 1, 100}})` (a command that needs the connection of the one before, as
-- WAIT does). On a cluster they go where the first one's key is.
-- @return their answers, `{{value, err}, ...}`
function Loop:pipeline(list)
  for _, args in ipairs(list) do args.n = args.n or #args end
  return self.loop:await(function(done) self:_sendmany(list, done) end)
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

function Ngx:_send(args, cb, asking) return cb(self:_call(args, asking)) end

-- commands sent at once on a pooled connection (ASKING before the first, when asked); their
-- answers {{value, err}, ...}, or nil and an error for all (not connected, cut off)
function Ngx:_exchange(list, asking)
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
  local auth = fresh and auth_command(self)   -- a pooled connection is authenticated already
  local parts = { auth or nil }
  if asking then parts[#parts + 1] = core.resp_command("ASKING") end
  for _, args in ipairs(list) do parts[#parts + 1] = core.resp_command(unpack(args, 1, args.n)) end
  ok, err = sock:send(table.concat(parts))
  if not ok then
    sock:close()
    return nil, fail("closed", err)
  end
  local results = {}
  while #results < #list do
    local pok, got, v, e = pcall(reader.get, reader)
    if not pok then
      sock:close()
      return nil, fail("protocol", tostring(got))
    end
    if got and auth then                  -- the AUTH answer, before the commands'
      auth = nil
      if e then
        sock:close()
        return nil, auth_failed(e)
      end
    elseif got and asking then            -- ASKING's OK
      asking = nil
    elseif got then
      results[#results + 1] = e and { nil, fail("redis", e) } or { v }
    else
      local data, rerr = sock:receiveany(65536)
      if not data then
        sock:close()
        return nil, fail("closed", rerr)
      end
      reader:feed(data)
    end
  end
  sock:setkeepalive(60000, self.pool_size)
  return results
end

function Ngx:_call(args, asking)
  local results, err = self:_exchange({ args }, asking)
  if not results then return nil, err end
  return results[1][1], results[1][2]
end

function Ngx:_sendmany(list, cb, asking)
  local results, err = self:_exchange(list, asking)
  if not results then
    results = {}
    for i = 1, #list do results[i] = { nil, err } end
  end
  return cb(results)
end

--- (nginx) Commands sent at once on one pooled connection (`Loop:pipeline`).
function Ngx:pipeline(list)
  for _, args in ipairs(list) do args.n = args.n or #args end
  local out
  self:_sendmany(list, function(results) out = results end)
  return out
end

--- Nothing to close: nginx pools its cosockets.
function Ngx.close() end


-- ---- Redis Cluster: a client per node, commands sent where their key's slot lives ---------

local Cluster = {}
Cluster.__index = Cluster

-- commands without a key go to any node; SCRIPT LOAD and FUNCTION LOAD to every master (a
-- script is run where its keys live, and a replica that takes over must have it too: loading
-- it again where it is missing is the caller's NOSCRIPT path, as on one server)
local KEYLESS = { PING = true, INFO = true, CLUSTER = true, SCRIPT = true, FUNCTION = true,
                  COMMAND = true, TIME = true, DBSIZE = true, WAIT = true }
local EVALS = { EVAL = true, EVALSHA = true, EVAL_RO = true, EVALSHA_RO = true, FCALL = true, FCALL_RO = true }

local function command_key(args)
  local name = tostring(args[1]):upper()
  if EVALS[name] then return (tonumber(args[3]) or 0) > 0 and args[4] or nil, name end
  if KEYLESS[name] then return nil, name end
  return args[2], name
end

-- answers that mean "not here, not now": nothing was done, the command may go again
local function redirect(err)
  if not (err and err.code == "redis" and err.message) then return nil end
  local m = err.message
  local slot, addr = m:match("^MOVED (%d+) (%S+)")
  if slot then return "moved", tonumber(slot), addr end
  slot, addr = m:match("^ASK (%d+) (%S+)")
  if slot then return "ask", tonumber(slot), addr end
  if m:find("^TRYAGAIN") or m:find("^CLUSTERDOWN") or m:find("^LOADING") or m:find("^MASTERDOWN") then
    return "again"
  end
end

local function split_addr(addr)
  local host, port = addr:match("^%[?([^%]]*)%]?:(%d+)$")
  return host, tonumber(port)
end

function Cluster:_node(addr)
  local node = self.nodes[addr]
  if node then return node end
  local host, port = split_addr(addr)
  node = self.make(host, port)
  self.nodes[addr] = node
  return node
end

-- after `ms`: fn() (a timer of the loop; in nginx the light thread sleeps)
function Cluster:_later(ms, fn)
  if self.loop then return self.loop:timer(ms, fn) end
  ngx.sleep(ms / 1000)
  return fn()
end

--- The slot map from the views of several nodes (`CLUSTER NODES`' text from each): for each
-- slot, the master that claims it with the highest config epoch, as Redis itself decides. A
-- master that comes back after its replica took over claims its old slots until it learns
-- otherwise; its view alone would send writes to it that it then drops.
-- @param views a list of `{text =, host =}` (`host`: the node asked, for a master whose own
--   address it does not know yet)
-- @return `slots` (slot + 1 -> "host:port") and `masters` (their addresses), or nil when no
--   view claims a slot
function M.slot_map(views)
  local epoch, owner = {}, {}
  for _, view in ipairs(views) do
    for line in view.text:gmatch("[^\n]+") do
      local f = {}
      for w in line:gmatch("%S+") do f[#f + 1] = w end
      local flags = "," .. (f[3] or "") .. ","
      local host, port = (f[2] or ""):match("^(.*):(%d+)@")
      local e = tonumber(f[7])
      if flags:find(",master,", 1, true) and not flags:find(",noaddr,", 1, true) and port and port ~= "0" and e then
        local addr = (host == "" and view.host or host) .. ":" .. port
        for i = 9, #f do
          local a, b = f[i]:match("^(%d+)%-(%d+)$")
          a = a or f[i]:match("^(%d+)$")   -- ("[slot->-node]", a slot migrating: in a range too)
          for slot = (tonumber(a) or 0) + 1, a and (tonumber(b or a) + 1) or 0 do
            if not epoch[slot] or e > epoch[slot] then epoch[slot], owner[slot] = e, addr end
          end
        end
      end
    end
  end
  local masters, seen = {}, {}
  for slot = 1, 16384 do
    local addr = owner[slot]
    if addr and not seen[addr] then seen[addr], masters[#masters + 1] = true, addr end
  end
  if #masters == 0 then return nil end
  return owner, masters
end

--- Milliseconds a slot map's refresh waits for the nodes that have not answered once more
-- than half have (standalone; in nginx the nodes are asked one after another).
M.REFRESH_GRACE = 200

-- The slot map from every node known (the masters, then the seeds): `M.slot_map`
function Cluster:_refresh(done)
  if self.refreshing then
    self.refreshing[#self.refreshing + 1] = done
    return
  end
  self.refreshing = { done }
  local order, seen = {}, {}
  for _, list in ipairs { self.masters or {}, self.seeds } do
    for _, addr in ipairs(list) do
      if not seen[addr] then seen[addr], order[#order + 1] = true, addr end
    end
  end
  local views, pending, lastErr, settled, grace = {}, #order, nil, false, nil
  local function settle()
    if settled then return end
    settled = true
    if grace then grace:cancel() end
    local slots, masters = M.slot_map(views)
    if slots then
      self.slots, self.masters = slots, masters
      self.refreshes = self.refreshes + 1
    end
    local waiting = self.refreshing
    self.refreshing = nil
    local err = not slots and (lastErr or fail("connect", "no node of the cluster answered")) or nil
    for _, cb in ipairs(waiting) do cb(err) end
  end
  for _, addr in ipairs(order) do
    self:_node(addr):_send({ n = 2, "CLUSTER", "NODES" }, function(v, err)
      if settled then return end
      if type(v) == "string" then
        views[#views + 1] = { text = v, host = (split_addr(addr)) }
      else
        lastErr = err or fail("redis", "CLUSTER NODES: no answer")
      end
      pending = pending - 1
      if pending == 0 then return settle() end
      -- a node that hangs (stopped, swapping) would hold every command behind the refresh
      -- until its timeout: once most nodes have answered, the rest get a moment more. A
      -- majority's views hold the newest config epoch of every slot.
      if self.loop and not grace and #views > #order / 2 then grace = self.loop:timer(M.REFRESH_GRACE, settle) end
    end)
  end
end

-- The slot map, then the command on the node its key's slot is on (any node without a key),
-- following MOVED and ASK, and waiting out a failover or a migration (TRYAGAIN, CLUSTERDOWN, a
-- master that refuses connections) for up to `failover` ms. A command cut off after it went
-- (`closed`) is not sent again: it may have been done.
function Cluster:_send(args, cb, state)
  state = state or { tries = 0, since = nil }
  if not self.slots then
    return self:_refresh(function(err)
      if err then
        if args.many then return cb({ { nil, err } }) end
        return cb(nil, err)
      end
      return self:_send(args, cb, state)
    end)
  end
  local first = args.many and args.many[1] or args
  local key, name = command_key(first)
  if not args.many and (name == "SCRIPT" or name == "FUNCTION") and tostring(args[2]):upper() == "LOAD" then
    return self:_everywhere(args, cb)
  end
  local addr = state.ask or (key and self.slots[core.resp_slot(key) + 1]) or self.masters[1]
  local asking = state.ask ~= nil
  state.ask = nil
  if self.suspect[addr] and not asking then
    -- a node that failed may be back as something else (a master back after its failover
    -- claims its old slots until it learns): the map again, from every node, before it is used
    self.suspect[addr] = nil
    return self:_refresh(function() return self:_send(args, cb, state) end)
  end
  -- (a pipeline: its first command says where it goes, and whether it goes again)
  local function finish(v, err, results)
    if results then return cb(results) end
    return cb(v, err)
  end
  local function answered(v, err, results)
    if err == nil then return finish(v, nil, results) end
    local how, slot, to = redirect(err)
    local lost = err.code == "closed" or err.code == "timeout"
    if lost or err.code == "connect" then self.suspect[addr] = true end
    if not how and err.code ~= "connect" then
      if lost then self:_refresh(function() end) end   -- the map for the next one
      return finish(nil, err, results)
    end
    state.tries = state.tries + 1
    local now = self.clock()
    state.since = state.since or now
    if (how == "moved" or how == "ask") and state.tries > 16 then return finish(nil, err, results) end
    if (now - state.since) * 1000 > self.failover then return finish(nil, err, results) end
    if how == "moved" then
      self.moved = self.moved + 1
      self.slots[slot + 1] = to
      self:_refresh(function() end)
      return self:_send(args, cb, state)
    elseif how == "ask" then
      self.asked = self.asked + 1
      state.ask = to
      return self:_send(args, cb, state)
    end
    -- a failover under way (refused, CLUSTERDOWN) or a slot moving (TRYAGAIN): again, later
    self:_later(math.min(25 * state.tries, 200), function()
      if how == "again" and not err.message:find("^CLUSTERDOWN") then return self:_send(args, cb, state) end
      self:_refresh(function() self:_send(args, cb, state) end)
    end)
  end
  if args.many then
    return self:_node(addr):_sendmany(args.many, function(results)
      results.node = addr   -- (where it ran: a redirect moves it)
      return answered(results[1][1], results[1][2], results)
    end, asking)
  end
  self:_node(addr):_send(args, answered, asking)
end

-- a command for every master (loading a script): the first error, or the first answer
function Cluster:_everywhere(args, cb)
  local left, firstErr, answer = #self.masters, nil, nil
  for _, addr in ipairs(self.masters) do
    self:_node(addr):_send(args, function(v, err)
      if err and not firstErr then firstErr = err end
      if v ~= nil and answer == nil then answer = v end
      left = left - 1
      if left == 0 then
        if firstErr and answer == nil then return cb(nil, firstErr) end
        return cb(answer)
      end
    end)
  end
end

--- Run a command on the node that has its key (`graphcall.redis`'s `call`).
function Cluster:call(...)
  local n = select("#", ...)
  local last = select(n, ...)
  if type(last) == "function" then return self:_send({ n = n - 1, ... }, last) end
  local args = { n = n, ... }
  if self.loop then return self.loop:await(function(done) self:_send(args, done) end) end
  local v, err
  self:_send(args, function(a, b) v, err = a, b end)
  return v, err
end

--- Commands sent at once to the master of the first one's key (`Loop:pipeline`); the results'
-- `node` says which node ran them ("host:port", after any MOVED or ASK).
function Cluster:pipeline(list)
  for _, args in ipairs(list) do args.n = args.n or #args end
  local job = { many = list }
  if self.loop then return self.loop:await(function(done) self:_send(job, done) end) end
  local out
  self:_send(job, function(results) out = results end)
  return out
end

--- Read the slot map again from the nodes (a majority's views decide each slot's master).
-- @return true, or nil and the error when no node answered
function Cluster:refresh()
  local function start(done) self:_refresh(function(err) done(err == nil or nil, err) end) end
  if self.loop then return self.loop:await(start) end
  local ok, err
  start(function(a, b) ok, err = a, b end)
  return ok, err
end

--- The address ("host:port") of the master that holds a key's slot (after the first command).
function Cluster:node_of(key) return self.slots and self.slots[core.resp_slot(key) + 1] end

--- A client of the node that holds a key's slot now (for a command about that node, `INFO`).
function Cluster:on(key)
  if not self.slots then self:call("PING") end
  return self:_node(self:node_of(key) or self.masters[1])
end

--- Close every node's connection.
function Cluster:close()
  for _, node in pairs(self.nodes) do node:close() end
end

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

-- the seeds of a cluster: "redis://...,redis://..." or "host:port,host:port", or a list of them
local function cluster_seeds(spec, o)
  local list = {}
  if type(spec) == "string" then
    for item in spec:gmatch("[^,%s]+") do list[#list + 1] = item end
  elseif type(spec) == "table" then
    for _, item in ipairs(spec) do list[#list + 1] = item end
  end
  if #list == 0 then error("graphcall.redis: cluster: no node given (host:port,... or redis://...,...)", 3) end
  local seeds = {}
  for _, item in ipairs(list) do
    local parts, err
    if type(item) == "string" and item:match("^rediss?://") then
      parts, err = M.parse_url(item)
      if not parts then error("graphcall.redis: cluster: " .. err, 3) end
    elseif type(item) == "string" then
      local host, port = split_addr(item)
      if not host then error("graphcall.redis: cluster: " .. item .. " is not host:port", 3) end
      parts = { host = host, port = port }
    else
      parts = item
    end
    -- the first node that gives credentials or TLS gives them for all
    for _, k in ipairs { "user", "password", "tls" } do
      if o[k] == nil and parts[k] ~= nil then o[k] = parts[k] end
    end
    seeds[#seeds + 1] = (parts.host or "127.0.0.1") .. ":" .. (parts.port or 6379)
  end
  return seeds
end

local function new_cluster(o, c)
  local seeds = cluster_seeds(o.cluster, o)
  c.user, c.password, c.tls = o.user, o.password, o.tls
  local cl = setmetatable({ seeds = seeds, nodes = {}, suspect = {}, loop = o.loop, cluster = true,
                            refreshes = 0, moved = 0, asked = 0,
                            failover = o.failover or 10000,
                            clock = o.loop and function() return o.loop:now() / 1000 end or ngx.now }, Cluster)
  function cl.make(host, port)
    local n = {}
    for k, v in pairs(c) do n[k] = v end
    n.host, n.port = host, port
    if o.loop then return setmetatable(n, Loop) end
    n.pool = "graphcall-redis:" .. (n.tls and "tls:" or "") .. host .. ":" .. port .. ":" .. (n.user or "") .. ":"
      .. (n.password and core.hash(n.password) or "")
    return setmetatable(n, Ngx)
  end
  return cl
end

--- A client. In nginx (a phase with cosockets) it uses them; elsewhere it needs `loop`.
-- @param o `url` ("redis://[user:password@]host:port"; or the parts:) `host` ("127.0.0.1": an
--   address or a name, looked up without holding the loop; in nginx, by its `resolver`),
--   `port` (6379), `user` and `password` (AUTH on each new connection: an
--   ACL user, or `requirepass`'s password alone), `tls` (true: TLS, the server's certificate
--   verified), `cafile` (the CA bundle it must chain to, standalone; in nginx,
--   `lua_ssl_trusted_certificate`), `servername` (the name its certificate must carry: the
--   host's name by default, else its address, which nginx cannot check: give the name
--   there), `loop` (standalone), `timeout` (ms, 5000: connecting, and each read or write in
--   nginx; standalone, an answer: commands that get none for this long fail with `timeout`
--   and the connection is closed), `pool_size` (nginx, 32); for a Redis
--   Cluster, `cluster` (its nodes, or some of them: "redis://[user:password@]host:port,...",
--   "host:port,...", or a list; the first with credentials or rediss:// gives them for all)
--   and `failover` (ms a command waits out a failover or a slot's migration, 10000)
-- @return the client (`client.cluster` is true for a cluster)
function M.new(o)
  o = o or {}
  if o.cluster then
    local copy = {}
    for k, v in pairs(o) do copy[k] = v end
    o = copy
  elseif o.url then
    local parts, err = M.parse_url(o.url)
    if not parts then error("graphcall.redis: " .. err, 2) end
    local merged = {}
    for k, v in pairs(o) do merged[k] = v end
    for k, v in pairs(parts) do merged[k] = v end
    o = merged
  end
  local c = { host = o.host or "127.0.0.1", port = o.port or 6379, timeout = o.timeout or 5000,
              user = o.user, password = o.password, tls = o.tls, cafile = o.cafile, servername = o.servername }
  if not o.loop and not (ngx and ngx.socket) then error("graphcall.redis: a loop is needed outside nginx", 2) end
  if o.loop then c.loop = o.loop else c.pool_size = o.pool_size or 32 end
  if o.cluster then return new_cluster(o, c) end
  if o.loop then return setmetatable(c, Loop) end
  -- connections are pooled per credentials: one authenticated as another user is not reused
  c.pool = "graphcall-redis:" .. (c.tls and "tls:" or "") .. c.host .. ":" .. c.port .. ":" .. (c.user or "") .. ":"
    .. (c.password and core.hash(c.password) or "")
  return setmetatable(c, Ngx)
end

return M
