--- The loop of graphcall inside OpenResty: the same interface as `graphcall.loop` (timers,
-- awaiting, HTTP requests) on nginx's own machinery, so `graphcall.client` and `graphcall.bot`
-- run unchanged in a worker. Requests go over cosockets (`graphcall.ngx.http`); timers are
-- `ngx.timer.at`; waiting is a semaphore, never a blocking call.
--
-- Flows do not stay in a worker's memory between events (any worker takes any callback): a
-- flow that waits for an event *parks* (its coroutine is dropped) and is brought back by
-- replaying its log when the event comes, in whichever worker (`graphcall.ngx`).
-- @module graphcall.ngx.loop
local core = require "graphcall.core"
local http = require "graphcall.ngx.http"
local logs = require "graphcall.log"

local M = {}

local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack  -- luacheck: ignore 143

--- What a parked flow yields to the driver that resumed it.
M.PARK = setmetatable({}, { __tostring = function() return "graphcall.ngx.PARK" end })

local Loop = {}
Loop.__index = Loop

--- A loop for this worker.
-- @param opts `log` (default: ngx.log), `logFormat` ("text", or "json": each message one
--   JSON object, `graphcall.log`'s, in nginx's error log), `node` (names this nginx in JSON
--   lines), `http` (options of requests: `verify`, `pool_size`)
function M.new(opts)
  opts = opts or {}
  local log = opts.log
  if not log then
    local levels = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR }
    if opts.logFormat == "json" then
      local node = opts.node or ("worker " .. tostring(ngx.worker.id()))
      log = function(level, msg, fields)
        ngx.update_time()
        ngx.log(levels[level] or ngx.NOTICE, logs.json_line(ngx.now() * 1000, level, tostring(msg), fields, node))
      end
    else
      log = function(level, msg) ngx.log(levels[level] or ngx.NOTICE, msg) end
    end
  end
  return setmetatable({ log = log, parks = true, http_opts = opts.http or {}, inflight = 0 }, Loop)
end

--- Milliseconds since the epoch (nginx's clock, updated first); `wall` is the same.
function Loop:now()
  ngx.update_time()
  return ngx.now() * 1000
end
Loop.wall = Loop.now

--- Call fn(...) and log (not raise) what it raises.
-- @return true if fn returned normally
function Loop:protect(what, fn, ...)
  local ok, err = xpcall(fn, debug.traceback, ...)
  if not ok then self.log("error", what .. ": " .. tostring(err)) end
  return ok
end

local Timer = {}
Timer.__index = Timer
--- Stop a timer before it fires (a no-op after).
function Timer:cancel() self.cancelled = true end

--- Call fn() once, `ms` from now, in a timer context of this worker.
function Loop:timer(ms, fn)
  local t = setmetatable({}, Timer)
  local ok, err = ngx.timer.at(math.max(0, ms) / 1000, function(premature)
    if premature or t.cancelled then return end
    self:protect("timer", fn)
  end)
  if not ok then self.log("error", "cannot start a timer: " .. tostring(err)) end
  return t
end

--- Call fn() every `ms` milliseconds until the returned timer is cancelled.
function Loop:every(ms, fn)
  local t = setmetatable({}, Timer)
  local function tick(premature)
    if premature or t.cancelled then return end
    self:protect("timer", fn)
    if not t.cancelled then ngx.timer.at(ms / 1000, tick) end
  end
  ngx.timer.at(ms / 1000, tick)
  return t
end

--- Run fn(...) soon, in a timer context of its own.
function Loop:defer(fn, ...)
  local args = pack(...)
  ngx.timer.at(0, function(premature)
    if not premature then self:protect("deferred call", fn, unpack(args, 1, args.n)) end
  end)
end

--- Start a task: fn(...) in a timer context (a light thread) of its own.
function Loop:spawn(fn, ...)
  local args = pack(...)
  ngx.timer.at(0, function(premature) if not premature then self:protect("task", fn, unpack(args, 1, args.n)) end end)
end

--- Always true: in nginx, code that can wait runs where cosockets yield.
function Loop:in_task() return true end

--- Wait for done(...). A `park` wait that is not done at once yields PARK to whoever resumed
-- the flow (the driver drops it); any other wait sleeps on a semaphore (other light threads
-- of this worker, a retry timer say, call done).
function Loop:await(start, park)
  local fired, res, sema = false, nil, nil
  start(function(...)
    if fired then return end
    fired = true
    res = pack(...)
    if sema then sema:post(1) end
  end)
  if fired then return unpack(res, 1, res.n) end
  if park then return coroutine.yield(M.PARK) end
  sema = require("ngx.semaphore").new()
  local ok, err = sema:wait(600)
  if not ok and not fired then error("graphcall: a wait ended without its answer: " .. tostring(err), 2) end
  return unpack(res, 1, res.n)
end

--- Pause this light thread for `ms` milliseconds.
function Loop:sleep(ms) ngx.sleep(ms / 1000) return true end

--- Start a request; cb(res, err) when it ends (in a light thread of this worker).
function Loop:request(opts, cb)
  local o = {}
  for k, v in pairs(self.http_opts) do o[k] = v end
  for k, v in pairs(opts) do o[k] = v end
  self.inflight = self.inflight + 1
  local function run()
    local res, err = http.request(o)
    self.inflight = self.inflight - 1
    self:protect("HTTP callback", cb, res, err)
  end
  -- inside a flow or a handler the request can run right here (cosockets yield); elsewhere
  -- (init_worker) it needs a timer context
  if ngx.get_phase() == "init_worker" then
    ngx.timer.at(0, run)
  else
    run()
  end
  return self.inflight
end

--- Run a program as a child process, no shell; cb(res) or cb(nil, err) when it ends, as the
-- standalone loop's `process` (res: `status`, `output`). A worker cannot wait for a child
-- (Debian's nginx has no `ngx.pipe`), so it polls between light-thread sleeps; nginx reaps
-- its workers' children itself, and then the status is unknown: 0 here, and the caller
-- checks what the program made.
function Loop:process(argv, cb)
  local function go()
    local out = os.tmpname()
    local pid, err = core.spawn(argv, out)
    if not pid then
      os.remove(out)
      return self:protect("process callback", cb, nil, err)
    end
    local status, waited = nil, 0
    while status == nil do
      ngx.sleep(waited < 100 and 0.005 or 0.02)
      waited = waited + 1
      status = core.reap(pid)
    end
    local f = io.open(out, "rb")
    local text = f and f:read(4096) or ""
    if f then f:close() end
    os.remove(out)
    self:protect("process callback", cb, { status = status or 0, output = text })
  end
  if ngx.get_phase() == "init_worker" then ngx.timer.at(0, go) else go() end
  return true
end

--- Run a program and wait for its end; res (`status`, `output`), or nil and err.
function Loop:run_program(argv)
  return self:await(function(done) self:process(argv, done) end)
end

--- An HTTP request that waits for its answer.
-- @return res, or nil and err
function Loop:fetch(opts)
  return self:await(function(done) self:request(opts, done) end)
end

--- Requests in flight in this worker.
function Loop:in_flight() return self.inflight end

--- Not in nginx, which runs its own event loop: raises.
function Loop:run_until() error("graphcall.ngx.loop: nginx runs the loop; nothing to run until", 2) end

--- Nothing to close: nginx owns the machinery.
function Loop:close() end

return M
