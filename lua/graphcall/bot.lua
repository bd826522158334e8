--- The bot runtime: calls as objects, handlers for what happens to them, and sequential flows
-- that survive the loss of the process running them.
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
-- each call placed with `bot:call`). Its verbs wait for their outcome without blocking the bot:
-- `answer`, `play`, `record`, `collect`, `transfer`, `redirect`, `reject`, `hangup`, `sleep`,
-- `wait` (see `graphcall.ivr` for the IVR blocks). A caller hanging up is a structured
-- cancellation: the verb that was waiting returns nil and `{code = "hangup", cause =
-- resultInfo}`, every later verb does the same without sending anything, and the functions
-- given to `call:finally(fn)` run once when the flow ends, however it ends.
--
-- **Durable.** Every call keeps an append-only log in the store: the notifications that came
-- in, each action's intent (with its client-request-id) before it is sent, and the outcome of
-- every step the flow waited for (HTTP answers, events taken, timeouts, the clock, random
-- numbers). A flow reads time and randomness only through `call:now()` and `call:random()`,
-- so given its log it is deterministic: replaying the log into a fresh coroutine brings it back
-- to where it was without sending anything again, and a bot started on the same store resumes
-- its live calls. The one window: an action whose intent is logged but whose answer is not
-- (the process died in between) is sent again with the same client-request-id.
-- @module graphcall.bot
local core = require "graphcall.core"
local storemod = require "graphcall.store"
local tracker_mod = require "graphcall.tracker"

local M = {}

local null = core.null

local Bot = {}
Bot.__index = Bot

local Call = {}
Call.__index = Call
M.Call = Call

local Operation = {}
Operation.__index = Operation
M.Operation = Operation

-- ---- events as plain data (what the log keeps) --------------------------------------------

local FIELDS = { "changeType", "kind", "state", "direction", "incoming", "tenantId", "operationId",
  "operationType", "status", "clientContext", "completionReason", "recordingLocation",
  "recordingAccessToken", "delta", "sequenceNumber", "fingerprint", "sessionId" }

local function plain(v, depth)
  if type(v) ~= "table" then return v end
  depth = (depth or 0) + 1
  if depth > 12 then return null end
  local out = {}
  for k, x in pairs(v) do out[k] = plain(x, depth) end
  return out
end

--- An event as the log keeps it: the fields flows and handlers dispatch on (and, for an
-- incoming call, who is calling), not the whole resourceData.
function M.compact(ev)
  local c = {}
  for _, k in ipairs(FIELDS) do
    local v = rawget(ev, k)
    if v ~= nil then c[k] = v end
  end
  if ev.toneInfo then c.toneInfo = { tone = ev.toneInfo.tone, sequenceId = ev.toneInfo.sequenceId } end
  if ev.resultInfo then c.resultInfo = plain(ev.resultInfo) end
  if ev.kind == "participants" then
    local ps = {}
    for i, p in ipairs(ev.participants or {}) do
      local info = p.info
      local id = type(info) == "table" and type(info.identity) == "table" and info.identity
      local who
      if id then
        for _, kind in ipairs { "user", "phone", "application", "applicationInstance", "guest" } do
          if type(id[kind]) == "table" then who = id[kind].displayName or id[kind].id break end
        end
      end
      ps[i] = { id = p.id, removed = p.removed, rosterSequenceNumber = p.rosterSequenceNumber, name = who }
    end
    c.participants = ps
  end
  if ev.incoming then
    local d = ev.data or {}
    c.source = plain(d.source)
    c.targets = plain(d.targets)
    c.callbackUri = d.callbackUri
  end
  return c
end

local function plain_error(err)
  if type(err) ~= "table" then return { code = "error", message = tostring(err) } end
  local out = {}
  for k, v in pairs(err) do
    if type(v) ~= "table" and type(v) ~= "function" and type(v) ~= "userdata" then out[k] = v end
  end
  return setmetatable(out, core.error_mt)
end

local function err(code, message, extra)
  local e = { code = code, message = message, path = "" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return setmetatable(e, core.error_mt)
end

-- ---- the bot ----------------------------------------------------------------------------------

--- A bot.
-- @param opts `client` (a `graphcall.client`; required), `listen` ({host, port, cert, key,
--   path, maxBody, timeout}: the callback listener to start; or `listener`, one made
--   already), `callbackUri` (the public URL of the listener's path, given to Graph; the
--   listener's own URL by default), `store` (`graphcall.store`; in memory by default; a file
--   store lets a restarted bot resume its calls), `prompts` (a folder: served under
--   /prompts/ and where spoken text is cached), `recordings` (a folder for downloaded
--   recordings; `prompts/../recordings` by default), `keepAlive` (ms between keepAlive
--   requests per live call, 15 minutes), `waitLimit` (ms a flow verb waits for a notification
--   that must come, an operation's end or a state, before it gives up with a `timeout` error:
--   the service never sends one twice, and one can be lost; 5 minutes), `verify` (false:
--   accept unsigned callbacks; tests only), `onStop` ("leave": live calls stay in the store
--   to resume; "hangup"), `log`, `shared` (run calls as several nodes on one store do, see
--   below; true by default when the store is shared: `graphcall.store.redis`), `lease`
--   (seconds a node holds a call while it runs it, 15), `sweep` (ms between sweeps, 500)
--
-- **Several nodes.** On a shared store, no call stays in the memory of this node: each event
-- is run under the call's lease by whichever node the load balancer gave it to, its flow
-- replayed from the log (`graphcall.runtime`). Calls placed with `bot:call` start on this
-- node and go on wherever their events land; a node that dies leaves its calls to the others.
-- @return the bot, or nil and an error
function M.new(opts)
  if type(opts) ~= "table" or not opts.client then error("bad argument #1 to 'bot' (client is required)", 2) end
  require "graphcall.ivr"   -- the flow verbs (it extends Call)
  local client = opts.client
  local loop = client.loop
  local self = setmetatable({
    client = client, loop = loop, log = opts.log or loop.log,
    store = opts.store or storemod.memory(),
    tracker = tracker_mod.new(),
    handlers = {}, flows = {}, calls = {},
    keepAliveEvery = opts.keepAlive or 15 * 60 * 1000,
    waitLimit = opts.waitLimit or 5 * 60 * 1000,
    onStop = opts.onStop or "leave",
    promptDir = opts.prompts,
    recordDir = opts.recordings or (opts.prompts and (opts.prompts .. "/../recordings")) or nil,
    stats = { calls = 0, flows = 0, resumed = 0, failedFlows = 0, finished = 0 },
  }, Bot)
  local shared = opts.shared
  if shared == nil then shared = self.store.lock ~= nil and not loop.parks end
  self.parks = loop.parks or shared or false
  local listen_tracker, accept = self.tracker, nil
  if shared then
    -- the tracker's state is in the store, read and written under the call's lease (with an
    -- inbox, in the same write as the log entry)
    self.tracker = tracker_mod.new { store = self.store:tracker(self.store.push ~= nil) }
    listen_tracker = { accept = function() return true end }
    -- a notification is answered once its events are in the store (the inbox)
    accept = function(events, claims, answer)
      loop:spawn(function()
        local ok = self.runtime:accept(events, claims)
        answer(ok and 202 or 503)
      end)
    end
    self.runtime = require("graphcall.runtime").new {
      bot = self, store = self.store, lease = opts.lease,
      go = function(fn) loop:spawn(fn) return true end,
      now = function() return loop:wall() end,
      sleep = function(ms) loop:sleep(ms) end,
      every = function(ms, fn) return loop:every(ms, function() loop:spawn(fn) end) end,
    }
    self.sweepEvery = opts.sweep or 500
  end
  local listener = opts.listener
  if not listener then
    local l = opts.listen or {}
    local lerr
    listener, lerr = require("graphcall.listener").new {
      loop = loop, host = l.host, port = l.port, cert = l.cert, key = l.key, path = l.path,
      maxBody = l.maxBody, timeout = l.timeout, tracker = listen_tracker, accept = accept,
      verifier = opts.verify ~= false and (opts.verifier or client:verifier()) or nil,
      verify = opts.verify,
      files = opts.prompts,
      on_event = function(ev, claims) self:_event(ev, claims) end,
      log = self.log,
    }
    if not listener then return nil, lerr end
  end
  self.listener = listener
  self.callbackUri = opts.callbackUri or listener:url()
  self.promptBase = opts.promptBase or listener:url("/prompts/")
  return self
end

--- Call fn(call, ev) on an event: "incoming", "established", "tone", "roster", "operation",
-- "terminated", "sharing", or "event" for every one.
function Bot:on(name, fn)
  local list = self.handlers[name] or {}
  list[#list + 1] = fn
  self.handlers[name] = list
  return self
end

--- Set the flow run for each call: `bot:flow(fn)`, or `bot:flow(name, fn)` for a named one
-- (`bot:call(spec, {flow = name})`). Flows are found again by name when a bot resumes.
function Bot:flow(name, fn)
  if type(name) == "function" then name, fn = "main", name end
  self.flows[name] = fn
  return self
end

local function event_name(ev)
  if ev.kind == "call" then
    if ev.incoming then return "incoming" end
    if ev.toneInfo then return "tone" end
    if ev.state == "terminated" or ev.changeType == "deleted" then return "terminated" end
    if ev.state == "established" then return "established" end
    return "state"
  end
  if ev.kind == "participants" then return "roster" end
  if ev.kind == "operation" then return "operation" end
  if ev.kind == "contentSharing" then return "sharing" end
  return "unknown"
end

function Bot:_emit(name, call, ev)
  for _, list in ipairs { self.handlers[name] or {}, self.handlers.event or {} } do
    for _, fn in ipairs(list) do
      local ok, e = xpcall(fn, debug.traceback, call, ev)
      if not ok then self.log("error", string.format("call %s: %s handler failed: %s", call.id, name, tostring(e))) end
    end
  end
end

local function new_call(self, id, fields)
  local call = setmetatable({
    id = id, bot = self, events = {}, consumed = {}, first = 1, nstep = 0, replay = {}, finals = {},
    ops = {}, state = nil, intents = {}, intentNames = {}, intentAt = {}, replayWhat = {},
  }, Call)
  for k, v in pairs(fields or {}) do call[k] = v end
  self.calls[id] = call
  self.stats.calls = self.stats.calls + 1
  return call
end

M.new_call = new_call
M.event_name = event_name

-- One event, through the tracker already: into the call's log, to its flow, to handlers.
function Bot:_event(ev, claims)
  local id = ev.callId
  if not id then return end
  if self.runtime then
    if ev.incoming then require("graphcall").materialize(ev) end   -- the caller goes into the log
    return self.runtime:dispatch({ ev }, claims)
  end
  local call = self.calls[id]
  if not call then
    call = new_call(self, id, { direction = ev.incoming and "incoming" or nil,
                                tenantId = ev.tenantId or (claims and claims.tid) })
  end
  local e = M.compact(ev)
  call:_input(e)
  local name = event_name(e)
  self:_emit(name, call, ev)
  if e.incoming and not call.flowing and self.flows.main then
    call.direction = "incoming"
    call:_start_flow("main")
  end
end

function Bot:_keepalive(call)
  if call.keepAliveTimer or self.parks then return end   -- (with a shared store the sweeper sends them)
  call.keepAliveTimer = self.loop:every(self.keepAliveEvery, function()
    if call.live_ended then return call.keepAliveTimer:cancel() end
    self.client:keepAlive(call.id, { tenant = call.tenantId }, function(ok, e)
      if ok or call.live_ended then return end
      if e.status == 404 then   -- the call is gone and its termination never came (REFERENCE.md §1.10)
        self.log("warn", "call " .. call.id .. ": keepAlive answered 404; the call is over")
        call:_input({ kind = "call", changeType = "deleted", state = "terminated", synthetic = true,
                      resultInfo = { code = 404, message = "keepAlive: call not found" } })
        self:_emit("terminated", call, call.events[#call.events])
      else
        self.log("warn", "call " .. call.id .. ": keepAlive failed: " .. tostring(e))
      end
    end)
  end)
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
  if self.runtime then   -- the flow starts here, under the call's lease, and goes on anywhere
    local tenant = spec.tenantId or opts.tenant or self.client.tenantId
    local small = { id = created.id, myParticipantId = created.myParticipantId }
    local ok, qerr = self.runtime:start(created.id, { start = opts.flow or "main", tenant = tenant, created = small })
    if not ok then return nil, qerr end
    return setmetatable({ id = created.id, bot = self, direction = "outgoing", tenantId = tenant, created = created,
                          events = {} }, Call)
  end
  local call = self.calls[created.id] or new_call(self, created.id)
  call.direction = "outgoing"
  call.tenantId = spec.tenantId or opts.tenant or self.client.tenantId
  call.created = created
  if self.flows[opts.flow or "main"] then call:_start_flow(opts.flow or "main") end
  return call
end

--- Start listening for callbacks and resume the calls the store knows that are not over
-- (on a shared store: start sweeping for calls whose deadline has passed, whoever ran them).
function Bot:start()
  if self.runtime then
    if not self.sweeper then
      local rt, busy = self.runtime, false
      self.sweeper = self.loop:every(self.sweepEvery, function()
        if busy then return end
        busy = true
        self.loop:spawn(function()
          self.loop:protect("sweep", rt.sweep, rt)
          busy = false
        end)
      end)
    end
    return self
  end
  for _, id in ipairs(self.store:calls()) do
    local entries = self.store:log(id)
    local started, ended
    for _, e in ipairs(entries) do
      if e.k == "start" then started = e end
      if e.k == "end" then ended = true end
    end
    if started and not ended and not self.calls[id] then self:_resume(id, entries, started) end
  end
  return self
end

function Bot:_resume(id, entries, started)
  local call = new_call(self, id, { direction = started.dir, tenantId = started.tenant, resumed = true,
                                    created = started.created })
  call:_load(entries, function(ev)
    self.tracker:accept(ev)   -- the tracker learns again what it had seen
    if ev.kind == "call" and (ev.state == "terminated" or ev.changeType == "deleted") then
      call.live_ended = #call.events
    end
    if ev.kind == "call" and ev.state then call.state = ev.state end
  end)
  self.stats.resumed = self.stats.resumed + 1
  self.log("info", string.format("call %s: resuming its flow from %d logged steps", id, #call.replay))
  call:_start_flow(started.flow, true)
end

--- Replay a recorded call log (`store:log(id)` of any store, or a trace's log) into a fresh
-- flow, sending nothing: a recorded call becomes a test. Runs the flow until it ends or asks
-- for a step the log does not have.
-- @return {ok =, steps = n, requests = {names in order}, finished =, error =}
function Bot:replay(entries, flowName)
  local started
  for _, e in ipairs(entries) do if e.k == "start" then started = e end end
  local id = "replay-" .. core.uuid()
  local call = new_call(self, id, { direction = started and started.dir, pure = true })
  local requests = {}
  call:_load(entries)
  local result = { ok = true }
  call.onPureEnd = function(why)
    result.ok, result.error = why == nil, why
  end
  call:_start_flow(flowName or (started and started.flow) or "main", true)
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

--- Stop: live calls are left to resume (onStop = "leave") or hung up (onStop = "hangup"). On a
-- shared store what this node has under way is finished first (up to 5 s), and live calls
-- are left to the other nodes.
function Bot:stop()
  if self.runtime then
    if self.sweeper then self.sweeper:cancel() end
    self.sweeper = nil
    self.loop:run_until(function() return self.runtime:busy() == 0 end, 5000)
  elseif self.onStop == "hangup" then
    local pending = 0
    for id, call in pairs(self.calls) do
      if not call.live_ended then
        pending = pending + 1
        self.client:hangup(id, { tenant = call.tenantId }, function() pending = pending - 1 end)
      end
    end
    self.loop:run_until(function() return pending == 0 end, 5000)
  end
  self.stopped = true
  self.loop:stop()
end

--- Stop listening and forget the calls (the store keeps what it has).
function Bot:close()
  if self.sweeper then self.sweeper:cancel() end
  if self.runtime then self.runtime:close() end
  for _, call in pairs(self.calls) do
    if call.keepAliveTimer then call.keepAliveTimer:cancel() end
  end
  self.listener:close()
end

-- ---- calls: the inbox and the log ---------------------------------------------------------

-- Take a logged call back: its events (each also given to on_event), the steps to replay, the
-- intents of its requests.
function Call:_load(entries, on_event)
  for _, e in ipairs(entries) do
    if e.k == "ev" then
      self.events[#self.events + 1] = e.ev
      if on_event then on_event(e.ev) end
    elseif e.k == "step" then
      self.replay[e.n] = e.v
      self.replayWhat[e.n] = e.w
    elseif e.k == "out" then
      self.intents[e.n] = e.crid
      self.intentNames[e.n] = e.a
      self.intentAt[e.n] = #self.events    -- events after it may show that it went through
    end
  end
end

-- Append to the call's log, with the time (ms since the epoch) for traces.
function Call:_log(entry)
  entry.t = math.floor(self.bot.loop:wall())
  self.bot.store:append(self.id, entry)
end

function Call:_input(e)
  self:_log({ k = "ev", ev = e })
  local i = #self.events + 1
  self.events[i] = e
  if e.kind == "call" then
    if e.state then self.state = e.state end
    if e.state == "terminated" or e.changeType == "deleted" then
      self.live_ended = self.live_ended or i
      if self.keepAliveTimer then self.keepAliveTimer:cancel() end
    elseif e.state == "established" then
      self.bot:_keepalive(self)
    end
  elseif e.kind == "operation" then
    local op = self.ops[e.operationId]
    if op and (e.status == "completed" or e.status == "failed") then op:_complete(e) end
  end
  local w = self.waiter
  if w then self:_offer(w) end
end

-- Give the waiting step what it waits for, if it is there: the first event not taken that
-- matches, or the end of the call.
function Call:_offer(w)
  local events, consumed = self.events, self.consumed
  while self.first <= #events and consumed[self.first] do self.first = self.first + 1 end
  for i = self.first, #events do
    if not consumed[i] and w.filter(events[i]) then
      self.waiter = nil
      return w.done({ ev = i })
    end
  end
  if self.live_ended and not w.keep_on_hangup then
    self.waiter = nil
    return w.done({ hangup = self.live_ended })
  end
end

--- True inside this call's flow.
function Call:in_flow()
  return self.co ~= nil and coroutine.running() == self.co
end

-- One step of the flow: live, start(done, n) does it and done(value) ends it (value is logged
-- with what the step was: "wait", "now", "random", an action's name, ...); in replay the logged
-- value comes back and nothing is done, provided the flow asks for the same kind of step.
function Call:_step(what, start, park)
  if not self:in_flow() then error("this call's flow verbs run inside its flow (bot:flow)", 3) end
  local n = self.nstep + 1
  self.nstep = n
  local v = self.replay[n]
  if v ~= nil then
    local was = self.replayWhat[n]
    if was and was ~= what then
      error(string.format("call %s: the flow is not deterministic: step %d was %s in the log, %s now "
        .. "(read time and randomness through call:now() and call:random())", self.id, n, was, what), 0)
    end
    self.replay[n] = nil
  elseif self.pure then    -- replaying a recorded log only: the log is over, the flow is not
    local why = string.format("the recorded log ends at step %d", n - 1)
    if self.onPureEnd then self.onPureEnd(why) end
    self.co = nil
    return coroutine.yield()    -- never resumed: the replay stops here
  else
    self.replaying = false
    -- a flow that must wait for the next event parks when calls are shared: dropped, brought
    -- back by replay wherever that event lands
    v = self.bot.loop:await(function(done) start(done, n) end, park and self.bot.parks and (self.onpark or true) or nil)
    self:_log({ k = "step", n = n, w = what, v = v })
  end
  if v.ev then self.consumed[v.ev] = true end
  if v.hangup then
    self.consumed[v.hangup] = true
    self.ended = self.events[v.hangup]
  end
  return v
end

local function hangup_error(self)
  local e = self.ended or self.events[self.live_ended or 0] or {}
  return err("hangup", "the call has ended", { cause = e.resultInfo })
end

--- In a flow: the time, in milliseconds since the epoch (logged: the same on replay).
function Call:now()
  return self:_step("now", function(done) done({ t = self.bot.loop:wall() }) end).t
end

--- In a flow: a random number as math.random gives it (logged: the same on replay).
function Call:random(m, n)
  local r = self:_step("random", function(done) done({ r = math.random() }) end).r
  if not m then return r end
  if not n then m, n = 1, m end
  return m + math.floor(r * (n - m + 1))
end

--- In a flow: wait for the next event that `filter(ev)` accepts (events not taken by an earlier
-- wait, in the order they came), until `deadline` (ms since the epoch, from `call:now()`).
-- @return the event, or nil and "timeout", or nil and the hangup error
function Call:wait(filter, deadline)
  if type(filter) == "table" then
    local want = filter
    filter = function(e)
      for k, v in pairs(want) do if e[k] ~= v then return false end end
      return true
    end
  end
  local loop = self.bot.loop
  local v = self:_step("wait", function(done)
    local timer
    local w = { filter = filter, deadline = deadline, done = function(x)
      if timer then timer:cancel() end
      done(x)
    end }
    self.waiter = w
    self:_offer(w)
    if self.waiter ~= w or not deadline then return end
    if loop:wall() >= deadline then   -- passed already (a flow brought back after its deadline)
      self.waiter = nil
      return done({ timeout = true })
    end
    if self.bot.parks then return end   -- the flow is dropped; its driver keeps the deadline
    timer = loop:timer(deadline - loop:wall(), function()
      if self.waiter == w then
        self.waiter = nil
        done({ timeout = true })
      end
    end)
  end, true)
  if v.ev then return self.events[v.ev] end
  if v.timeout then return nil, "timeout" end
  return nil, hangup_error(self)
end

--- In a flow: pause for `ms` (a hangup ends the pause: nil and the hangup error).
function Call:sleep(ms)
  local _, why = self:wait(function() return false end, self:now() + ms)
  if why == "timeout" then return true end
  return nil, why
end

--- Register fn(call) to run once when the flow ends, however it ends (cleanup).
function Call:finally(fn)
  self.finals[#self.finals + 1] = fn
end

--- True once the flow knows the call has ended.
function Call:over() return self.ended ~= nil end

-- The call states that show an action sent before a restart went through: a second answer
-- on an answered call fails, so the state is read again instead (REFERENCE.md section 5.2).
local TOOK = {
  answer = { establishing = true, established = true, transferring = true, transferAccepted = true },
  transfer = { transferring = true, transferAccepted = true },
  reject = { terminating = true, terminated = true },
  redirect = { terminating = true, terminated = true },
  hangup = { terminating = true, terminated = true },
}

-- An action, in a flow: intent logged, then sent (with the logged client-request-id when a
-- resumed flow sends it again), its answer logged. `send(opts, cb)` does the request.
function Call:_send_step(name, send)
  local log = self.bot.log
  local v = self:_step(name, function(done, n)
    if self.live_ended then return done({ hangup = self.live_ended }) end
    local crid = self.intents[n]
    local function go()
      send({ tenant = self.tenantId, clientRequestId = crid }, function(res, e)
        if res == nil then return done({ err = plain_error(e) }) end
        done({ res = plain(res) })
      end)
    end
    if not crid then
      crid = core.uuid()
      self:_log({ k = "out", n = n, a = name, crid = crid })
      return go()
    end
    -- the intent is logged, its answer is not: the process died in between (the window)
    local took = TOOK[name]
    if took then
      for i = (self.intentAt[n] or 0) + 1, #self.events do
        local e = self.events[i]
        if e.kind == "call" and took[e.state] then
          log("info", string.format("call %s: %s went out before the restart (the call is %s); not sent again",
            self.id, name, e.state))
          return done({ res = true })
        end
      end
      return self.bot.client:get_call(self.id, { tenant = self.tenantId }, function(res)
        if type(res) == "table" and took[res.state] then
          log("info", string.format("call %s: %s went out before the restart (the call is %s); not sent again",
            self.id, name, res.state))
          return done({ res = true })
        end
        log("warn", string.format("call %s: %s was not carried out before the restart (the call is %s); "
          .. "sending it with client-request-id %s", self.id, name, type(res) == "table" and tostring(res.state)
          or "unknown", crid))
        go()
      end)
    end
    log("warn", string.format("call %s: %s may have been sent before the restart; sending it again "
      .. "with client-request-id %s", self.id, name, crid))
    go()
  end)
  if v.hangup then return nil, hangup_error(self) end
  if v.err then return nil, setmetatable(v.err, core.error_mt) end
  return v.res
end

--- In a flow: run a Graph action on this call and wait for its HTTP answer (the operation of
-- a 200, or true). `call:op_done(op)` then waits for an operation's completion.
function Call:request(name, spec)
  local client = self.bot.client
  return self:_send_step(name, function(o, cb)
    if name == "hangup" then return client:hangup(self.id, o, cb) end
    if name == "invite" then return client:invite(self.id, spec, o, cb) end
    return client:action(self.id, name, spec, o, cb)
  end)
end

--- In a flow: wait for an operation (from `call:request`) to complete or fail.
-- @return the completion event (status, resultInfo, recordingLocation, ...), or nil and err
function Call:op_done(op)
  if type(op) ~= "table" then return nil, err("operation", "no operation") end
  if op.status == "completed" or op.status == "failed" then return op end
  -- the service does not send a notification twice: one that was lost must not hold the flow
  local ev, e = self:wait(function(x)
    return x.kind == "operation" and x.operationId == op.id and (x.status == "completed" or x.status == "failed")
  end, self:now() + self.bot.waitLimit)
  if not ev then
    if e == "timeout" then
      return nil, err("timeout", "no completion of operation " .. tostring(op.id) .. " came in time")
    end
    return nil, e
  end
  return ev
end

function Call:_start_flow(name, resumed)
  local fn = self.bot.flows[name or "main"]
  if not fn then
    self.bot.log("error", "call " .. self.id .. ": no flow named " .. tostring(name))
    return
  end
  self.flowing = true
  self.replaying = resumed or false
  if not resumed then
    local c = self.created
    self:_log({ k = "start", flow = name or "main", dir = self.direction, tenant = self.tenantId,
                created = c and { id = c.id, myParticipantId = c.myParticipantId } or nil })
  end
  local bot = self.bot
  bot.stats.flows = bot.stats.flows + 1
  local body = self:_flow_body(fn)
  if bot.parks then return body end   -- the caller drives it (graphcall.runtime)
  self.co = bot.loop:spawn(body)
end

-- The flow's coroutine body: the flow, then what ends it (hang up, log, finally).
function Call:_flow_body(fn)
  local bot = self.bot
  return function()
    local ok, e = xpcall(fn, debug.traceback, self)
    -- the store refused a write: not the flow's failure; the runtime retries it (the call goes on)
    if not ok and type(e) == "table" and e.store then error(e, 0) end
    if not ok then
      bot.stats.failedFlows = bot.stats.failedFlows + 1
      bot.log("error", string.format("call %s: flow failed: %s", self.id, tostring(e)))
    end
    -- the flow is over: the call too, unless it ended already
    if self.pure then
      if not ok and self.onPureEnd then self.onPureEnd(e) end
      self.finished = true
      return
    end
    if not self.ended and not self.live_ended then
      self:_send_step("hangup", function(o, cb) bot.client:hangup(self.id, o, cb) end)
    end
    self:_log({ k = "end", ok = ok })
    self.co = nil
    for _, f in ipairs(self.finals) do
      local fine, fe = xpcall(f, debug.traceback, self)
      if not fine then bot.log("error", string.format("call %s: finally failed: %s", self.id, tostring(fe))) end
    end
    self.finished = true
    bot.stats.finished = bot.stats.finished + 1
  end
end

-- ---- actions outside a flow: operations ---------------------------------------------------

--- Send a Graph action on this call from anywhere (a handler, a task): returns an Operation at
-- once. `op.status` is "sending", then "running", "completed" or "failed"; `op:wait()` waits
-- for the end (yields in a task); `op:on_done(fn)` calls fn(op) then. Actions answered 202 or
-- 204 complete with their answer; those answered with an operation complete on its
-- notification (or at once when the answer says so).
function Call:action(name, spec)
  local op = setmetatable({ name = name, status = "sending", call = self, waiters = {} }, Operation)
  local client = self.bot.client
  local function answered(res, e)
    if res == nil then
      op.error = e
      return op:_finish("failed")
    end
    if res == true then return op:_finish("completed") end
    op.id, op.result = res.id, res
    local s = type(res.status) == "string" and res.status:lower() or "running"
    if s == "completed" or s == "failed" then return op:_finish(s) end
    op.status = "running"
    if op.id then self.ops[op.id] = op end
  end
  local o = { tenant = self.tenantId }
  if name == "hangup" then client:hangup(self.id, o, answered)
  elseif name == "invite" then client:invite(self.id, spec, o, answered)
  else client:action(self.id, name, spec, o, answered) end
  return op
end

function Operation:_complete(ev)
  self.event = ev
  self.resultInfo = ev.resultInfo
  self:_finish(ev.status)
end

function Operation:_finish(status)
  if self.done then return end
  self.done = true
  self.status = status
  if self.id then self.call.ops[self.id] = nil end
  for _, fn in ipairs(self.waiters) do fn(self) end
  self.waiters = nil
end

--- Call fn(op) when the operation ends (at once if it has).
function Operation:on_done(fn)
  if self.done then fn(self) else self.waiters[#self.waiters + 1] = fn end
  return self
end

--- Wait for the operation to end. @return true if it completed, or nil and its status/error
function Operation:wait()
  self.call.bot.loop:await(function(done) self:on_done(function() done() end) end)
  if self.status == "completed" then return true end
  return nil, self.error or err("operation", "the operation " .. tostring(self.status),
                                { resultInfo = self.resultInfo })
end

return M
