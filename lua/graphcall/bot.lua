--- The bot: what a user makes to run calls. It ties a client, a callback listener, a store
-- and the one execution model (`graphcall.runtime`) together, and holds the handlers and the
-- flows.
--
--   local bot = graphcall.bot { client = client, listen = { port = 8443 }, prompts = "prompts" }
--   bot:flow(function(call)
--     call:answer()
--     local choice = call:collect { prompt = { text = "Press 1 for sales, 2 for support" }, max = 1 }
--     if choice == "1" then call:transfer { to = "+14255550100" } else call:hangup() end
--   end)
--   bot:run()
--
-- **Handlers.** `bot:on(name, fn)` for "incoming", "established", "tone", "roster",
-- "operation", "terminated", "sharing" and "event" (every one): `fn(call, ev)`. A handler that
-- raises is logged with the call id and the bot goes on. Outside a flow, `call:action(name,
-- spec)` sends any Graph action and gives an `Operation` that completes on its notification.
--
-- **Flows.** `bot:flow(fn)` runs fn(call) in a coroutine per call (each incoming call, and
-- each call placed with `bot:call`); the call object and its verbs are `graphcall.call` and
-- `graphcall.ivr`.
--
-- **Durable.** Every call keeps an append-only log in the store, and every event goes the same
-- way on every store: into the log, to the handlers, to the flow, which runs until it waits
-- again (`graphcall.runtime`). On a store of this process (memory, file) a waiting flow stays
-- here; a bot started again on the same file store replays its live calls from their logs and
-- carries them on. On a shared store (`graphcall.store.redis`) nothing of a call stays between
-- events, so any node takes any event.
-- @module graphcall.bot
local core = require "graphcall.core"
local strict = require "graphcall.strict"
local storemod = require "graphcall.store"
local tracker_mod = require "graphcall.tracker"
local wire = require "graphcall.wire"
local callmod = require "graphcall.call"
local runtime = require "graphcall.runtime"
local listener_mod = require "graphcall.listener"
local metrics_mod = require "graphcall.metrics"
local trace = require "graphcall.trace"
require "graphcall.ivr"   -- the flow verbs, methods of every call

local M = {}

local Bot = {}
Bot.__index = Bot

--- The call objects' class (`graphcall.call`), for code that extends it.
M.Call = callmod.Call
--- Operations started outside flows (`graphcall.call`).
M.Operation = callmod.Operation
--- An event as the log keeps it (`graphcall.call.compact`).
M.compact = callmod.compact

local OPTIONS = { "client", "listen", "listener", "callbackUri", "promptBase", "store", "prompts", "metrics", "node",
  "recordings", "voice", "speak", "keepAlive", "waitLimit", "verify", "verifier", "onStop", "log", "shared",
  "keepEnded", "lease", "sweep", "host", "keepWaiting" }
local LISTEN = { "host", "port", "cert", "key", "path", "maxBody", "timeout", "maxConnections", "maxPerAddress",
  "deadline" }
--- The events handlers are for (`bot:on`).
M.EVENTS = { "incoming", "established", "tone", "roster", "operation", "terminated", "sharing", "state", "event" }

--- A bot.
--
-- **Several nodes.** On a shared store, no call stays in the memory of this node: each event
-- is run under the call's lease by whichever node the load balancer gave it to, its flow
-- replayed from the log (`graphcall.runtime`). Calls placed with `bot:call` start on this
-- node and go on wherever their events land; a node that dies leaves its calls to the others.
-- @param opts `client` (a `graphcall.client`; required), `listen` ({host, port, cert, key,
--   path, maxBody, timeout, maxConnections, maxPerAddress, deadline}: the callback listener to
--   start, as `graphcall.listener` takes them; or `listener`, one made
--   already), `callbackUri` (the public URL of the listener's path, given to Graph; the
--   listener's own URL by default), `store` (`graphcall.store`; in memory by default; a file
--   store lets a restarted bot resume its calls), `prompts` (a folder: served under
--   /prompts/ and where spoken text is cached), `voice` (of spoken text, `graphcall.ivr.VOICE`
--   by default), `speak` (how text is spoken: espeak-ng and sox by default; a command
--   template or a function, see `graphcall.ivr.speak`), `recordings` (a folder for downloaded
--   recordings; `prompts/../recordings` by default), `keepAlive` (ms between keepAlive
--   requests per live call, 15 minutes), `waitLimit` (ms a flow verb waits for a notification
--   that must come, an operation's end or a state, before it gives up with a `timeout` error:
--   the service never sends one twice, and one can be lost; 5 minutes), `verify` (false:
--   accept unsigned callbacks; tests only), `onStop` ("leave": live calls stay in the store
--   to resume; "hangup"), `log`, `shared` (true: keep nothing of a call in this process
--   between its events, as several nodes on one store must; true by default when the store is
--   shared: `graphcall.store.redis`), `keepEnded` (a bot alone on its store: how many ended
--   calls it keeps in memory, the last ones, for `bot.calls`, the calls page and traces; older
--   ones are let go of, and on the memory store forgotten: 1000), `keepWaiting` (a bot alone
--   on its store: ms a flow that waits stays in memory as it is; then it is let go of, the
--   call object and its coroutine dropped and the log packed, and replayed from its log at its
--   next event or deadline: a call waiting at a menu in under 2 KB instead of 14-20, for a
--   replay each time a flow waited that long; nil: kept until the call ends), `lease` (seconds a node
--   holds a call while it runs it, renewed meanwhile: 1.5, so a node's calls go on elsewhere
--   within about 2 s of its death), `sweep` (ms between sweeps for deadlines and keepAlive,
--   250), `host` (how the host runs things, for `graphcall.runtime`: `go`, `now`, `sleep`,
--   `every`, `timer`, `where`; the bot's loop by default), `metrics` (a `graphcall.metrics`;
--   the client's by default, so its requests are counted with the rest), `node` (this
--   process's name: each request in a call's log says which node sent it, and the calls page
--   shows it)
-- @return the bot, or nil and an error
function M.new(opts)
  strict.options(opts, OPTIONS, "bot", { "client" })
  if opts.listen ~= nil then strict.options(opts.listen, LISTEN, "bot: listen") end
  if opts.speak ~= nil and type(opts.speak) ~= "function" and type(opts.speak) ~= "table" then
    strict.fail("bot: speak: a command template (a table) or a function, got " .. type(opts.speak))
  end
  if opts.onStop ~= nil and opts.onStop ~= "leave" and opts.onStop ~= "hangup" then
    strict.fail("bot: onStop: \"leave\" or \"hangup\", got " .. tostring(opts.onStop))
  end
  local kw = opts.keepWaiting
  if kw ~= nil and not (type(kw) == "number" and kw >= 0) then
    strict.fail("bot: keepWaiting: milliseconds (0 or more), got " .. tostring(kw))
  end
  local ke = opts.keepEnded
  if ke ~= nil and not (type(ke) == "number" and ke >= 0 and ke % 1 == 0) then
    strict.fail("bot: keepEnded: a whole number of calls (0 or more), got " .. tostring(ke))
  end
  local client = opts.client
  local loop = client.loop
  local store = opts.store or storemod.memory { text = opts.shared == true }
  local self = setmetatable({
    client = client, loop = loop, log = opts.log or loop.log,
    store = store, handlers = {}, flows = {}, calls = {},
    keepAliveEvery = opts.keepAlive or 15 * 60 * 1000,
    waitLimit = opts.waitLimit or 5 * 60 * 1000,
    onStop = opts.onStop or "leave",
    promptDir = opts.prompts, voice = opts.voice, speak = opts.speak,
    recordDir = opts.recordings or (opts.prompts and (opts.prompts .. "/../recordings")) or nil,
    sweepEvery = opts.sweep or 250,
    stats = { calls = 0, flows = 0, resumed = 0, failedFlows = 0, finished = 0, lost = 0 },
    metrics = opts.metrics or client.metrics,
    node = opts.node,
    mediaLengths = {},   -- prompt URI -> ms it plays (for the waits on a prompt's end)
    spoken = {},         -- prompt URI -> the text spoken into it (tests and traces say what played)
  }, Bot)
  -- what the runtime needs of a store (lease, deadlines, keepAlive times, head): a store of
  -- this process alone gets them in this process's memory
  local backend = store.lock and store or storemod.single(store)
  if store.unreplicated and store.metrics == nil then store.metrics = self.metrics end   -- (Redis: WAIT)
  local shared = opts.shared
  if shared == nil then shared = store.lock ~= nil end
  if shared and kw ~= nil then   -- (a mistake that would pass silently: nothing to let go of)
    strict.fail("bot: keepWaiting: a shared bot (a shared store, or shared = true) lets go of every flow after "
      .. "each event already; keepWaiting is for a bot alone on its store")
  end
  -- the tracker's state is the backend's, read and written under the call's lease (with an
  -- inbox, in the same write as the log entry)
  self.tracker = tracker_mod.new { store = backend:tracker(backend.push ~= nil) }
  local host = opts.host or {
    go = function(fn, ...) loop:spawn(fn, ...) return true end,
    now = function() return loop:wall() end,
    sleep = function(ms) loop:sleep(ms) end,
    every = function(ms, fn) return loop:every(ms, function() loop:spawn(fn) end) end,
    timer = function(ms, fn) return loop:timer(ms, fn) end,
  }
  self.runtime = runtime.new {
    bot = self, store = backend, lease = opts.lease, keep = not loop.parks and not shared,
    keepEnded = opts.keepEnded, keepWaiting = opts.keepWaiting,
    go = host.go, now = host.now, sleep = host.sleep, every = host.every, timer = host.timer,
    where = host.where,
  }
  local listener = opts.listener
  if not listener then
    local l = opts.listen or {}
    local accept
    if backend.push then
      -- a notification is answered once its events are in the store (the inbox)
      accept = function(events, claims, answer)
        loop:spawn(function()
          local ok = self.runtime:accept(events, claims)
          answer(ok and 202 or 503)
        end)
      end
    end
    local lerr
    listener, lerr = listener_mod.new {
      loop = loop, host = l.host, port = l.port, cert = l.cert, key = l.key, path = l.path,
      maxBody = l.maxBody, timeout = l.timeout, accept = accept, maxConnections = l.maxConnections,
      maxPerAddress = l.maxPerAddress, deadline = l.deadline,
      tracker = { accept = function() return true end },   -- (the runtime's, under the lease)
      verifier = opts.verify ~= false and (opts.verifier or client:verifier()) or nil,
      verify = opts.verify,
      files = opts.prompts,
      on_event = function(ev, claims) self:_event(ev, claims) end,
      on_request = function(req, method, uri) self:_serve(req, method, uri) end,
      log = self.log, metrics = self.metrics,
    }
    if not listener then return nil, lerr end
  end
  self.listener = listener
  self.callbackUri = opts.callbackUri or listener:url()
  self.promptBase = opts.promptBase or listener:url("/prompts/")
  return self
end

-- ---- what an operator reads: /metrics, /healthz, /readyz -----------------------------------

--- How many calls are live (not ended): as the store counts them when it can (Redis), else
-- as this process has them.
function Bot:live_count()
  local store = self.store
  if store.live_count then return store:live_count() end
  local n = 0
  if self.runtime.keep then
    for _, c in pairs(self.calls) do
      if not (c.finished or c.live_ended or c.ended or c.pure) then n = n + 1 end
    end
    for _ in pairs(self.runtime.away) do n = n + 1 end   -- (flows let go of while they wait)
    return n
  end
  local backend = self.runtime.store
  for _, id in ipairs(store:calls()) do
    local hd = backend:head(id)
    if hd and not hd.ended then n = n + 1 end
  end
  return n
end

--- The metrics as Prometheus scrapes them (`graphcall.metrics`), the live calls counted now.
function Bot:render_metrics()
  local ok, live = pcall(self.live_count, self)
  local g = { calls_live = ok and live or 0, version = wire._VERSION:match("%d.*$") }
  local srv = self.listener and self.listener.server
  if srv and srv.stats then
    local st = srv:stats()
    g.connections_open, g.accept_errors = st.open, st.accept_errors
    g.connections_closed = { evicted = st.evicted, late = st.late }
  end
  return self.metrics:render(g)
end

--- Whether this bot can take calls: a token for its tenant, the callback signing keys and
-- the store, each tried now (a token or keys not fetched yet are fetched). In a task.
-- @return true or false, and {token =, keys =, store =}: true, or what is wrong
function Bot:readiness()
  local client, loop = self.client, self.loop
  local checks = {}
  local token, terr = client:token(client.tenantId)
  checks.token = token and true or tostring(terr and terr.message or terr)
  local v = self.listener and self.listener.verifier
  if v and v.refresh and not v.jwt then
    loop:await(function(done) v:refresh(done) end)
  end
  checks.keys = (not v or v.jwt ~= nil or v.refresh == nil) and true or "the callback keys are not fetched"
  local store = self.store
  local ok, e = pcall(function() if store.ping then assert(store:ping()) else store:calls() end end)
  checks.store = ok and true or tostring(type(e) == "table" and e.message or e)
  local ready = true
  for _, c in pairs(checks) do if c ~= true then ready = false end end
  return ready, checks
end

--- What the calls page shows: a summary of each live call and of the recent ended ones the
-- store still has (`graphcall.trace.summary`), at most `limit` (100).
function Bot:call_summaries(limit)
  limit = limit or 100
  local store, now = self.store, self.loop:wall()
  local out, seen = {}, {}
  local lists = { store:calls(), store.recent and store:recent() or {} }
  for _, list in ipairs(lists) do
    for _, id in ipairs(list) do
      if not seen[id] and #out < limit then
        seen[id] = true
        local entries = store:log(id)
        if #entries > 0 then out[#out + 1] = trace.summary(id, entries, now) end
      end
    end
  end
  return out
end

--- The live calls page (`graphcall.trace.calls_page`), or one call's trace page; nil when
-- there is no such call.
-- @param id a call's id, or nil for the list
function Bot:calls_page(id)
  if not id then
    return trace.calls_page(self:call_summaries(), { title = "graphcall: calls" .. (self.node and (" on "
      .. self.node) or ""), link = function(c) return "calls/" .. c end })
  end
  if not id:match("^[%w%-_.]+$") then return nil end
  local entries = self.store:log(id)
  if #entries == 0 then return nil end
  return trace.html({ { id = id, entries = entries } }, "call " .. id)
end

local PLAIN = { ["Content-Type"] = "text/plain; charset=utf-8" }
local HTML = { ["Content-Type"] = "text/html; charset=utf-8" }

-- Requests to the listener other than callbacks and prompts.
function Bot:_serve(req, method, uri)
  local path = uri:match("^[^?#]*")
  if method ~= "GET" and method ~= "HEAD" then
    if path == "/metrics" or path == "/healthz" or path == "/readyz" or path:match("^/calls") then
      return req:respond(405, { Allow = "GET" })
    end
    return req:respond(404)
  end
  if path == "/calls" or path:match("^/calls/") then
    local ok, page = pcall(self.calls_page, self, path:match("^/calls/(.+)$"))
    if not ok then return req:respond(503, PLAIN, "the store is unreachable\n") end
    if not page then return req:respond(404, PLAIN, "no such call\n") end
    return req:respond(200, HTML, page)
  end
  if path == "/metrics" then
    return req:respond(200, { ["Content-Type"] = metrics_mod.CONTENT_TYPE }, self:render_metrics())
  elseif path == "/healthz" then
    return req:respond(200, PLAIN, "ok\n")
  elseif path == "/readyz" then
    req:keep()
    self.loop:spawn(function()
      local ok, ready, checks = pcall(self.readiness, self)
      if not ok then ready, checks = false, { error = tostring(ready) } end
      local out = {}
      for _, k in ipairs { "token", "keys", "store", "error" } do
        if checks[k] ~= nil then out[#out + 1] = k .. ": " .. (checks[k] == true and "ok" or checks[k]) end
      end
      req:respond(ready and 200 or 503, PLAIN, table.concat(out, "\n") .. "\n")
    end)
    return
  end
  return req:respond(404)
end

--- Call fn(call, ev) on an event: "incoming", "established", "tone", "roster", "operation",
-- "terminated", "sharing", or "event" for every one.
-- @param name the event's name
-- @param fn the handler
-- @return the bot
function Bot:on(name, fn)
  local ok = false
  for _, e in ipairs(M.EVENTS) do if e == name then ok = true end end
  if not ok then strict.fail((strict.unknown("bot:on", name, M.EVENTS):gsub("unknown option", "unknown event"))) end
  if type(fn) ~= "function" then strict.fail("bot:on: a handler is a function, got " .. type(fn)) end
  local list = self.handlers[name] or {}
  list[#list + 1] = fn
  self.handlers[name] = list
  return self
end

--- Set the flow run for each call: `bot:flow(fn)`, or `bot:flow(name, fn)` for a named one
-- (`bot:call(spec, {flow = name})`). Flows are found again by name when a bot resumes.
-- @param name the flow's name ("main" when only a function is given)
-- @param fn the flow: fn(call)
-- @return the bot
function Bot:flow(name, fn)
  if type(name) == "function" then name, fn = "main", name end
  if type(name) ~= "string" or type(fn) ~= "function" then
    strict.fail("bot:flow: a flow is a function (and a name)")
  end
  self.flows[name] = fn
  return self
end

-- The handlers of an event (the runtime calls this under the call's lease).
function Bot:_emit(name, call, ev)
  for _, list in ipairs { self.handlers[name] or {}, self.handlers.event or {} } do
    for _, fn in ipairs(list) do
      local ok, e = xpcall(fn, debug.traceback, call, ev)
      if not ok then self.log("error", string.format("call %s: %s handler failed: %s", call.id, name, tostring(e))) end
    end
  end
end

-- One event from the listener: to the runtime.
function Bot:_event(ev)
  if not ev.callId then return end
  if ev.incoming then wire.materialize(ev) end   -- the caller goes into the log
  return self.runtime:dispatch({ ev })
end

--- Place a call (POST /communications/calls) and run a flow for it.
-- @param spec the call as for `client:create_call`; `callbackUri` defaults to the bot's
-- @param opts `flow` (name; "main"), `tenant`
-- @return the call object, or nil and an error
function Bot:call(spec, opts)
  opts = opts or {}
  spec.callbackUri = spec.callbackUri or self.callbackUri
  local created, e = self.client:create_call(spec, { tenant = opts.tenant })
  if not created then return nil, e end
  local tenant = spec.tenantId or opts.tenant or self.client.tenantId
  local rt, id = self.runtime, created.id
  -- kept here, the call object is the one its flow runs on; shared, it stands for the call
  -- whose flow runs wherever its events land
  local call = rt.keep and (self.calls[id] or callmod.new(self, id))
               or setmetatable({ id = id, bot = self, events = {} }, callmod.Call)
  call.direction, call.tenantId, call.created = "outgoing", tenant, created
  local small = { id = id, myParticipantId = created.myParticipantId }
  local ok, qerr = rt:start(id, { start = opts.flow or "main", tenant = tenant, created = small })
  if not ok then return nil, qerr end
  return call
end

--- Start sweeping for deadlines and keepAlive, and resume the calls of a store of this
-- process whose flow had not ended (a bot started again on its file store).
-- @return the bot
function Bot:start()
  local rt = self.runtime
  if not self.sweeper then
    local busy = false
    self.sweeper = self.loop:every(self.sweepEvery, function()
      if busy then return end
      busy = true
      self.loop:spawn(function()
        self.loop:protect("sweep", rt.sweep, rt)
        busy = false
      end)
    end)
  end
  if rt.keep then
    for _, id in ipairs(self.store:calls()) do
      if not self.calls[id] then
        local started, ended
        for _, e in ipairs(self.store:log(id)) do
          if e.k == "start" then started = true end
          if e.k == "end" then ended = true end
        end
        if started and not ended then
          self.stats.resumed = self.stats.resumed + 1
          self.log("info", string.format("call %s: resuming its flow from its log", id))
          rt:resume(id)
        end
      end
    end
  end
  return self
end

--- Replay a recorded call log (`store:log(id)` of any store, or a trace's log) into a fresh
-- flow, sending nothing: a recorded call becomes a test. Runs the flow until it ends or asks
-- for a step the log does not have.
-- @param entries the log
-- @param flowName the flow to run (the one the log started, else "main")
-- @return {ok =, steps = n, requests = {names in order}, finished =, error =}
function Bot:replay(entries, flowName)
  local started
  for _, e in ipairs(entries) do if e.k == "start" then started = e end end
  local id = "replay-" .. core.uuid()
  local call = callmod.new(self, id, { direction = started and started.dir, pure = true })
  local requests = {}
  call:_load(entries)
  local result = { ok = true }
  call.onPureEnd = function(why)
    result.ok, result.error = why == nil, why
  end
  local body = call:_start_flow(flowName or (started and started.flow) or "main", true)
  if body then call.co = self.loop:spawn(body) end
  self.loop:run_until(function() return call.finished or result.error ~= nil end, 10000)
  for n = 1, call.nstep do if call.intentNames[n] then requests[#requests + 1] = call.intentNames[n] end end
  result.steps, result.requests, result.finished, result.call = call.nstep, requests, call.finished, call
  self.calls[id] = nil
  return result
end

--- Run until `bot:stop()` (SIGINT and SIGTERM stop it too).
function Bot:run()
  self:start()
  self.loop:on_signal("SIGINT", function() self:stop() end)
  self.loop:on_signal("SIGTERM", function() self:stop() end)
  self.loop:run()
end

--- Stop: what this process has under way is finished first (up to 5 s); live calls are left
-- to resume (onStop = "leave"; on a shared store, to the other nodes) or hung up (onStop =
-- "hangup", on a store of this process).
function Bot:stop()
  if self.sweeper then self.sweeper:cancel() end
  self.sweeper = nil
  if self.onStop == "hangup" and self.runtime.keep then
    local pending = 0
    local function hangup(id, tenant)
      pending = pending + 1
      self.client:hangup(id, { tenant = tenant }, function() pending = pending - 1 end)
    end
    for id, call in pairs(self.calls) do
      if not call.live_ended and not call.finished then hangup(id, call.tenantId) end
    end
    for id in pairs(self.runtime.away) do
      local hd = self.runtime.store:head(id)
      if hd and not hd.ended and hd.state ~= "terminated" then hangup(id, hd.tenant) end
    end
    self.loop:run_until(function() return pending == 0 end, 5000)
  end
  self.loop:run_until(function() return self.runtime:busy() == 0 end, 5000)
  self.stopped = true
  self.loop:stop()
end

--- Stop listening and forget the calls (the store keeps what it has).
function Bot:close()
  if self.sweeper then self.sweeper:cancel() end
  self.sweeper = nil
  self.runtime:close()
  self.listener:close()
end

return M
