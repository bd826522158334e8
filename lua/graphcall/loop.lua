--- The event loop of a standalone bot: one thread runs the libcurl client, the HTTP listeners,
-- timers and signals (libevent underneath, `graphcall.io`), and Lua code runs only between
-- its steps, never inside libevent or libcurl.
--
-- Code waits without blocking the loop inside a *task* (a coroutine the loop runs):
-- `loop:spawn(fn)`, then `loop:sleep(ms)` or any call that awaits (an HTTP request, a Graph
-- action). The same calls made outside a task run the loop until their answer is in, so a
-- simple script reads top to bottom.
--
--   local loop = require("graphcall.loop").new()
--   loop:spawn(function()
--     local res = assert(loop:fetch { url = "http://127.0.0.1:8080/" })
--     print(res.status)
--     loop:stop()
--   end)
--   loop:run()
--
-- Errors raised by callbacks and tasks are logged and never stop the loop.
-- @module graphcall.loop
local gio = require "graphcall.io"
local response = require "graphcall.response"
local logs = require "graphcall.log"

local M = {}

local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack  -- luacheck: ignore 143

--- The default logger: one line on stderr, with the time to the millisecond
-- (`graphcall.log`, text format, every level).
-- @param level "debug", "info", "warn" or "error"
-- @param msg the text
-- @param fields what the line is about (`graphcall.log`)
M.stderr_log = logs.new { level = "debug", clock = function() return gio.wall() end }

local Loop = {}
Loop.__index = Loop

local Response = {}
Response.__index = Response

--- A response header by name (any case), or nil.
-- @function Response:header
function Response:header(name) return response.header(self.head, name) end

--- A new loop.
--
-- On a virtual loop time stands still while anything runs, any HTTP request of the loop is in
-- flight or any program it started runs, and jumps to the next timer when nothing does:
-- minutes of prompts and timeouts pass in milliseconds. Everything that takes part must run
-- on this one loop (a test harness runs the emulator and the bot together).
-- @param opts optional: `log` (function(level, msg), default `stderr_log`; `false` for
--   silence), `http` (options of the libcurl client: `max_host_connections`,
--   `max_total_connections`, `max_active`: requests beyond `max_active` (128) wait for room
--   untimed, while one inside libcurl waiting for a connection to its host already spends
--   its `timeout`, so give `max_active` no more than `max_host_connections` when the
--   timeout is the server's time to answer), `virtual` (true: virtual time, see above)
-- @return the loop
function M.new(opts)
  opts = opts or {}
  local log = opts.log
  if log == nil then log = M.stderr_log elseif log == false then log = function() end end
  return setmetatable({
    io = gio.loop(),
    log = log,
    http_opts = opts.http,
    heap = {}, nheap = 0, seq = 0,           -- timers: a binary heap on (due, seq)
    ready = {}, rhead = 1, rtail = 0,         -- what runs before the next wait
    later = {}, nlater = 0,                   -- what runs after the next I/O step (5 slots each)
    pending = {},                             -- request id -> callback
    handlers = {}, ntags = 0,                 -- server tag -> handler
    signals = {},                             -- signo -> handler
    streams = {}, nstreams = 0,               -- TCP stream id -> on_event
    procs = {}, nprocs = 0, running_procs = 0, -- child process id -> {cb =, handle =}
    busy = 0,                                 -- answers awaited over streams
    tasks = setmetatable({}, { __mode = "k" }),
    running = false,
    virtual = opts.virtual or false, vnow = 0, wall0 = gio.wall(),
  }, Loop)
end

--- Milliseconds on a monotonic clock (virtual time on a virtual loop).
function Loop:now()
  if self.virtual then return self.vnow end
  return self.io:now()
end

--- Milliseconds since the epoch: a clock other processes share (durable flows use it, so a
-- deadline logged by one process holds in the next). Virtual on a virtual loop.
function Loop:wall()
  if self.virtual then return self.wall0 + self.vnow end
  return gio.wall()
end

-- ---- running callbacks ------------------------------------------------------------------

-- a TCP stream (Loop:tcp)
local Stream = {}
Stream.__index = Stream
--- Queue bytes for the peer.
-- @return true, or nil and an error when it is closed
function Stream:write(bytes) return self.s:write(bytes) end
--- Close the stream now (its handler hears nothing more).
function Stream:close()
  self.loop.streams[self.id] = nil
  self.s:close()
end

local function traceback(err) return debug.traceback(tostring(err), 2) end

--- Call fn(...) and log (not raise) what it raises; `what` names it in the log.
-- @return true if fn returned normally
function Loop:protect(what, fn, ...)
  local ok, err = xpcall(fn, traceback, ...)
  if not ok then self.log("error", what .. ": " .. tostring(err)) end
  return ok
end

local function push_ready(self, entry)
  self.rtail = self.rtail + 1
  self.ready[self.rtail] = entry
end

local function resume(self, co, args)
  local ok, err = coroutine.resume(co, unpack(args, 1, args.n))
  if not ok then
    self.tasks[co] = nil
    self.log("error", "task failed: " .. debug.traceback(co, tostring(err)))
  elseif coroutine.status(co) == "dead" then
    self.tasks[co] = nil
  end
end

local function run_ready(self)
  -- only what is queued now: what these queue runs on the next turn, after I/O
  local last = self.rtail
  local ran = self.rhead <= last
  while self.rhead <= last do
    local e = self.ready[self.rhead]
    self.ready[self.rhead] = nil
    self.rhead = self.rhead + 1
    resume(self, e.co, e.args)
  end
  return ran
end

--- Run fn(...) once the loop has done I/O again: what was just answered goes out on the
-- wire first (a listener answers 202, then dispatches).
function Loop:defer(fn, ...)
  -- flat, five slots a call (fn, n, up to three arguments): no table per call (the listener
  -- defers one run a turn for all its bodies; a caller may defer one a request)
  local later, i = self.later, self.nlater
  local n = select("#", ...)
  if n <= 3 then
    local a, b, c = ...
    later[i + 1], later[i + 2], later[i + 3], later[i + 4], later[i + 5] = fn, n, a, b, c
  else
    later[i + 1], later[i + 2], later[i + 3], later[i + 4], later[i + 5] = fn, -1, pack(...), nil, nil
  end
  self.nlater = i + 5
end

--- Start a task: fn(...) runs in a coroutine the loop drives, from the next turn on.
-- @return the coroutine
function Loop:spawn(fn, ...)
  local co = coroutine.create(fn)
  self.tasks[co] = true
  push_ready(self, { co = co, args = pack(...) })
  return co
end

--- True inside a task of this loop.
function Loop:in_task()
  local co = coroutine.running()
  return co ~= nil and self.tasks[co] == true
end

--- Wait for an asynchronous operation: start(done) begins it and arranges for done(...) to
-- be called once; await returns what done was given. Inside a task the task yields;
-- elsewhere the loop runs until done is called. With `park` (a function), a task that must
-- wait calls park() first: its driver learns that it waits for an event (`graphcall.runtime`
-- keeps it, to be resumed by done, or drops it, to be replayed from its log).
function Loop:await(start, park)
  local fired, waiting, results = false, false, nil
  local co = coroutine.running()
  local in_task = co ~= nil and self.tasks[co] == true
  start(function(...)
    if fired then return end
    fired = true
    if waiting and in_task then push_ready(self, { co = co, args = pack(...) })
    else results = pack(...) end
  end)
  if not fired then
    if in_task then
      waiting = true
      if park then park() end
      return coroutine.yield()
    end
    waiting = true
    self:run_until(function() return fired end)
  end
  return unpack(results, 1, results.n)
end

-- ---- timers -----------------------------------------------------------------------------

local function heap_less(a, b) return a.due < b.due or (a.due == b.due and a.seq < b.seq) end

-- Each timer knows its place in the heap (`pos`), so a cancelled one leaves it at once: a call
-- that parks again cancels its last deadline, and those lay in the heap until they came due
-- (minutes), 2 KB a waiting call, and woke the loop for nothing.
local function sift_up(h, i)
  local t = h[i]
  while i > 1 do
    local p = math.floor(i / 2)
    local q = h[p]
    if not heap_less(t, q) then break end
    h[i], q.pos = q, i
    i = p
  end
  h[i], t.pos = t, i
end

local function sift_down(h, i, n)
  local t = h[i]
  while true do
    local l = 2 * i
    if l > n then break end
    local c = h[l]
    if l < n and heap_less(h[l + 1], c) then
      l = l + 1
      c = h[l]
    end
    if not heap_less(c, t) then break end
    h[i], c.pos = c, i
    i = l
  end
  h[i], t.pos = t, i
end

local function heap_push(self, t)
  local n = self.nheap + 1
  self.nheap = n
  self.heap[n] = t
  sift_up(self.heap, n)
end

-- take timer t out of the heap
local function heap_remove(self, t)
  local h, n, i = self.heap, self.nheap, t.pos
  t.pos = nil
  local last = h[n]
  h[n] = nil
  n = n - 1
  self.nheap = n
  if i > n then return end
  h[i], last.pos = last, i
  if i > 1 and heap_less(last, h[math.floor(i / 2)]) then sift_up(h, i) else sift_down(h, i, n) end
end

local Timer = {}
Timer.__index = Timer

--- Stop a timer before it fires (a no-op after).
-- @function Timer:cancel
function Timer:cancel()
  self.cancelled = true
  if self.pos then heap_remove(self.loop, self) end
  if self.tick then self.tick:cancel() end   -- (loop:every's: the next tick too)
end

--- Call fn() once, `ms` milliseconds from now.
-- @return a timer (`timer:cancel()`)
function Loop:timer(ms, fn)
  self.seq = self.seq + 1
  local t = setmetatable({ due = self:now() + math.max(0, ms), seq = self.seq, fn = fn, loop = self }, Timer)
  heap_push(self, t)
  return t
end

--- Call fn() every `ms` milliseconds until the returned timer is cancelled.
function Loop:every(ms, fn)
  local handle = setmetatable({}, Timer)
  local function tick()
    if handle.cancelled then return end
    handle.tick = self:timer(ms, tick)
    fn()
  end
  handle.tick = self:timer(ms, tick)
  return handle
end

--- In a task: pause it for `ms` milliseconds (outside a task: run the loop that long).
function Loop:sleep(ms)
  return self:await(function(done) self:timer(ms, done) end)
end

local function fire_timers(self)
  local now = self:now()
  local fired = false
  local h = self.heap
  while self.nheap > 0 and h[1].due <= now do
    local t = h[1]
    heap_remove(self, t)
    fired = true
    self:protect("timer", t.fn)
  end
  return fired
end

-- ---- I/O --------------------------------------------------------------------------------

local function dispatch(self, kind, a, b, c, d, e, f, g, h)
  if kind == "response" then
    local cb = self.pending[a]
    self.pending[a] = nil
    if not cb then return end
    if e then
      self:protect("HTTP callback", cb, nil, { code = e, message = f, sent = g, seconds = h })
    else
      self:protect("HTTP callback", cb, setmetatable({ status = b, head = c, body = d, seconds = h }, Response))
    end
  elseif kind == "request" then
    local handler = self.handlers[e]
    if handler then
      self:protect("request handler", handler, a, b, c, d)
    end
    if a:pending() and not a:kept() then a:respond(500) end  -- a handler bug, or none
  elseif kind == "stream" then
    local fn = self.streams[a]
    if b == "closed" then self.streams[a] = nil end
    if fn then self:protect("stream handler", fn, b, c) end
  elseif kind == "process" then
    local p = self.procs[a]
    self.procs[a] = nil
    if p then
      self.running_procs = self.running_procs - 1
      p.handle:close()
      self:protect("process callback", p.cb, { status = b, output = c })
    end
  elseif kind == "signal" then
    local fn = self.signals[a]
    if fn then self:protect("signal handler", fn, a) end
  end
end

--- One turn: run what is ready, fire due timers, wait for I/O at most `max_wait` ms (less
-- if a timer is due sooner; no wait if anything ran this turn or is ready), then handle
-- what arrived.
function Loop:run_once(max_wait)
  local ran = run_ready(self)
  local fired = fire_timers(self)
  local later, nlater = self.later, self.nlater
  if nlater > 0 then self.later, self.nlater = {}, 0 end  -- what these defer waits a turn
  local wait = max_wait or -1
  if ran or fired or nlater > 0 or self.rhead <= self.rtail then
    wait = 0   -- what ran may be what the caller waits for: look again before sleeping
  elseif self.virtual then
    -- real I/O under way: time stands still meanwhile, unless nothing has come for a quarter
    -- of a second of real time (a server holding an answer back on a timer of its own)
    if self.running_procs > 0 or (self:in_flight() > 0 and self.io:now() - (self.progress or 0) < 250) then
      wait = 5
    elseif self.nheap > 0 then
      self.vnow = math.max(self.vnow, self.heap[1].due)   -- idle: jump to the next timer
      wait = 0
    end
  elseif self.nheap > 0 then
    local until_timer = math.max(0, self.heap[1].due - self:now())
    if wait < 0 or until_timer < wait then wait = until_timer end
  end
  self.io:step(wait)
  local io = self.io
  local got = false
  while true do
    local kind, a, b, c, d, e, f, g, h = io:pop()
    if not kind then break end
    got = true
    dispatch(self, kind, a, b, c, d, e, f, g, h)
  end
  if self.virtual and (got or ran or fired) then self.progress = self.io:now() end
  for i = 1, nlater, 5 do
    local n = later[i + 1]
    if n < 0 then
      local args = later[i + 2]
      self:protect("deferred call", later[i], unpack(args, 1, args.n))
    else
      self:protect("deferred call", later[i], unpack(later, i + 2, i + 1 + n))
    end
  end
end

--- Run until `loop:stop()`.
function Loop:run()
  self.running = true
  while self.running do self:run_once() end
end

--- Make `run()` return after the current turn.
function Loop:stop() self.running = false end

--- Run until pred() is true (checked after every turn) or `timeout_ms` passes.
-- @return true if pred became true, false on timeout
function Loop:run_until(pred, timeout_ms)
  -- the timeout is in real milliseconds, on a virtual loop too
  local deadline = timeout_ms and (self.io:now() + timeout_ms)
  while not pred() do
    local wait
    if deadline then
      wait = deadline - self.io:now()
      if wait <= 0 then return false end
    end
    self:run_once(wait)
  end
  return true
end

local function client(self)
  if not self.http then
    self.http = self.io:http(self.http_opts)
  end
  return self.http
end

--- Start an HTTP request; cb(res, err) is called from the loop when it ends.
-- @param opts `method`, `url`, `headers` ({name = value}), `body`, `timeout` (ms),
--   `connect_timeout` (ms), `cafile`, `max_body`, `fresh` (a new connection), `once` (the
--   request must not be sent twice: when its reused connection dies before an answer,
--   libcurl's transparent re-send is refused and the request fails with `sent` set)
-- @param cb function(res, err): res has `status`, `head` (raw header block), `body`,
--   `seconds` and `res:header(name)`; err has `code` (`timeout`, `connect`, `tls`,
--   `too_large`, `transport`, `cancelled`), `message` and `sent` (the request went out, so
--   the server may have acted on it)
-- @return a request id (for `cancel`), or nil and an error
function Loop:request(opts, cb)
  local id, err = client(self):request(opts)
  if not id then return nil, err end
  self.pending[id] = cb
  if self.virtual then self.progress = self.io:now() end
  return id
end

--- Cancel a request started with `request`; its callback gets err.code == "cancelled".
function Loop:cancel(id)
  if self.http then return self.http:cancel(id) end
  return false
end

--- An HTTP request that waits for its answer (yields in a task; runs the loop elsewhere).
-- @return res, or nil and err (see `request`)
function Loop:fetch(opts)
  return self:await(function(done)
    local id, err = self:request(opts, done)
    if not id then done(nil, err) end
  end)
end

--- Run a program as a child process; cb(res) or cb(nil, err) is called from the loop when it
-- ends, and the loop goes on meanwhile (a virtual clock stands still). No shell: `argv`'s
-- strings are the program (looked up in PATH) and its arguments as they are, so any text and
-- any path can be passed without quoting.
-- @param argv `{program, arg1, ...}`
-- @param cb function(res, err): res has `status` (the exit status; 128 + n when signal n ended
--   it) and `output` (what it wrote on stdout and stderr, the first 4 KiB); err has `code`
--   ("spawn": it could not start) and `message`
-- @return true, or nil and err when it could not start (cb is not called then)
function Loop:process(argv, cb)
  self.nprocs = self.nprocs + 1
  local id = self.nprocs
  local handle, err = self.io:process(argv, id)
  if not handle then return nil, err end
  self.procs[id] = { cb = cb, handle = handle }
  self.running_procs = self.running_procs + 1
  return true
end

--- Run a program and wait for its end (yields in a task; runs the loop elsewhere).
-- @param argv as `process`
-- @return res (`status`, `output`), or nil and err
function Loop:run_program(argv)
  return self:await(function(done)
    local ok, err = self:process(argv, done)
    if not ok then done(nil, err) end
  end)
end

--- Requests in flight on the loop: HTTP, and what others awaiting an answer over the loop
-- count in `loop.busy` (Redis commands), so a virtual clock stands still for them too.
function Loop:in_flight()
  return (self.http and self.http:in_flight() or 0) + self.busy
end

--- Listen for HTTP requests. handler(req, method, uri, body) runs for each one that the
-- server does not answer itself (files); it answers with `req:respond(status, headers,
-- body)` now, or calls `req:keep()` and answers later; a request left unanswered without
-- that gets 500.
-- @param opts `host` ("127.0.0.1"), `port` (0: any free one), `cert` and `key` (PEM files:
--   serve TLS), `max_body` (bytes, 4 MiB), `max_headers`, `timeout` (ms a connection may
--   stall reading or writing, 10 s), `files` (a folder served as is under `files_prefix`),
--   `raw_body` (true: each body comes as its bytes in a userdata, `#body` and `tostring(body)`,
--   which `parse_notifications` takes: under LuaJIT a string is interned, and bodies of one
--   length can crowd one chain of its string table)
-- @param handler function(req, method, uri, body)
-- @return the server (`server:port()`, `server:close()`), or nil and an error. Keep it while
--   it serves: a server the collector takes is closed, as sockets are in Lua.
function Loop:listen(opts, handler)
  self.ntags = self.ntags + 1
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.tag = self.ntags
  local srv, err = self.io:listen(o)
  if not srv then return nil, err end
  self.handlers[o.tag] = handler
  return srv
end

--- Open a TCP stream (for protocols other than HTTP: Redis). on_event("open"), then
-- on_event("data", bytes) as bytes arrive, and on_event("closed", why) once ("" when the
-- peer closed in order). The host is an address or a name, looked up by libevent's resolver
-- (the hosts file, then the system's name servers) while the loop goes on. `tls` ({tls =
-- true, cafile =, servername =}) opens it over TLS, the server's certificate verified (its
-- chain against `cafile` or the system's CAs, and `servername`, else the host's name, else
-- its address); "open" comes after the handshake.
-- @return the stream (`stream:write(bytes)` -> true | nil, err; `stream:close()`: no
--   "closed" event follows), or nil and an error
function Loop:tcp(host, port, on_event, connect_timeout, tls)
  self.nstreams = self.nstreams + 1
  local id = self.nstreams
  local s, err = self.io:tcp(host, port, id, connect_timeout, tls)
  if not s then return nil, err end
  self.streams[id] = on_event
  return setmetatable({ s = s, loop = self, id = id }, Stream)
end

--- Call fn(signo) when the process gets the signal ("SIGINT", "SIGTERM" or "SIGHUP").
function Loop:on_signal(name, fn)
  self.signals[self.io:watch_signal(name)] = fn
end

--- Close the loop, its client and its listeners. It cannot run again.
function Loop:close()
  self.running = false
  self.io:close()
end

return M
