--- The one execution model: how an event becomes a step of a call's flow, for every host
-- (`graphcall.bot` standalone on any store, nodes on Redis, `graphcall.ngx` in nginx workers).
--
-- The events of a call that reach this process queue on the call, and one drain per call
-- takes the call's lease in the store, then for each item: the tracker (under the lease, so a
-- duplicate is dropped once for all processes), the log, the handlers, then the flow, run
-- until it waits again (it *parks*), its deadline written down, the lease let go. A sweeper
-- brings back flows whose deadline has passed and sends keepAlive.
--
-- **Where a parked flow lives.** On a store of this process alone (`keep`: memory, file) the
-- call object and its parked coroutine stay here, and the next event or the deadline wakes
-- it (`call:wake`); a timer of this process fires at the deadline. On a shared store nothing
-- of a call stays between events: the log is replayed into a fresh coroutine wherever the
-- next event lands. Either way the log is the truth: a kept flow is only a cache of what a
-- replay would rebuild (a process started again on a file store replays its live calls).
--
-- **One write per event.** On a store that can (`graphcall.store.redis`'s `ingest`), `accept`
-- puts each event of a notification into its call's log *before* the 202 is answered, with
-- the tracker's verdict, the head and, for a call whose flow goes on, the lease, in one write:
-- handlers and the flow then run from the call's queue. While the flow runs, its start, steps
-- and notes wait for its next action's intent or its park (`defer`), and the park writes them
-- with the deadline and the lease's release.
--
-- **The inbox.** An event of a call another process holds goes to the call's inbox in the
-- store (before the 202 too); the holder takes it when it lets go: its park takes the inbox's
-- events into the log through the tracker and keeps the lease (`graphcall.redisstore`);
-- otherwise (a flow's start waiting, an inbox left by a process that died) each entry leaves
-- the inbox in the same script that appends it to the log (with the tracker's state). So a
-- notification answered 202 is dispatched once, even when the process that answered dies:
-- the sweeper of another process finds the inbox left behind. Handlers then get the event as
-- the log keeps it (`graphcall.bot.compact`).
--
-- **Faults.** While a flow runs, its lease is renewed, and from before the append of an event
-- the flow will take until it waits again the call carries a deadline one lease ahead: if the
-- process dies in between, another process's sweeper takes the call once the lease has run
-- out and replays it. A write the store refuses (Redis gone,
-- or `fenced`: the lease ran out and another process holds the call) aborts the item without
-- ending the flow; the item is retried from where it got to, for up to `retryFor` ms.
-- @module graphcall.runtime
local core = require "graphcall.core"
local wire = require "graphcall.wire"
local callmod = require "graphcall.call"
local trace = require "graphcall.trace"

local M = {}
local Runtime = {}
Runtime.__index = Runtime

--- Seconds a process holds a call while it runs it (renewed every third of it): when the
-- process dies, another takes the call this long after its last renewal, and a little more.
M.LEASE = 1.5
--- The little more (ms): after a lease runs out, the call is due for another process's sweeper.
M.GRACE = 250
--- Ended calls a process alone (`keep`) holds in memory, the last ones; older ones it lets go of.
M.KEEP_ENDED = 1000

-- A watchdog deadline (the process running a step of the call must be alive by then) carries
-- half a millisecond in its score, so the sweeper that finds it passed knows the call's
-- process died mid-step, and when it was last alive: deadlines of flows are whole ms.
local function watchdog_at(self) return math.floor(self.now()) + self.lease * 1000 + M.GRACE + 0.5 end
local function is_watchdog(at) return at ~= nil and at % 1 == 0.5 end
--- True for what a store raises when it cannot read or write (the work is retried).
function M.store_error(e)
  return type(e) == "table" and e.store == true
end

local function keep_tables(e)
  if type(e) == "table" then return e end
  return debug.traceback(tostring(e), 2)
end

--- A runtime.
-- @param o `bot` (a `graphcall.bot`), `store` (a store with `lock`, `renew`, `head`, `set_due`,
--   ...: `graphcall.store.redis`, or the shared dict's), `lease` (seconds, `LEASE`), `go(fn, ...)`
--   (run fn(...) in its own light thread or task: true, or nil and an error), `now()` (ms since the
--   epoch), `sleep(ms)` (in that thread), `every(ms, fn)` (a repeating timer: `:cancel()`),
--   `where()` (names this process: given, each event is logged at info with it), `retryFor`
--   (ms an item is retried while the store refuses it, 60000), `lockWait` (seconds to wait for
--   a lease another process holds, 30), `acceptWait` (ms `accept` waits for a store that
--   refuses a write before it gives up: the answer is then 503; 2000), `keep` (true: parked
--   flows stay in this process, woken in place; for a store no other process writes),
--   `timer(ms, fn)` (a one-shot timer of this process, `:cancel()`: given, a parked flow's
--   deadline also fires here, to the millisecond, besides the sweeper's rounds),
--   `keepWaiting` (with `keep`: ms a parked flow stays in this process; then the sweeper lets
--   go of it and it is replayed from its log at its next event or deadline; nil: kept)
function M.new(o)
  return setmetatable({
    bot = o.bot, store = o.store, lease = o.lease or M.LEASE, go = o.go, now = o.now, sleep = o.sleep,
    every = o.every, timer = o.timer, where = o.where, retryFor = o.retryFor or 60000,
    lockWait = o.lockWait or 30, acceptWait = o.acceptWait or 2000, keep = o.keep or false,
    keepEnded = o.keepEnded or M.KEEP_ENDED, ended = { head = 1, tail = 0 }, endedSet = {},
    queues = {}, driving = {}, parking = {}, wakes = {}, log = o.bot.log,
    keepWaiting = o.keep and o.keepWaiting or nil, waiting = { head = 1, tail = 0, ids = {}, ats = {} }, away = {},
    alarms = { n = 0, at = {}, ids = {}, pos = {} },
    inboxed = o.store.push ~= nil and o.inbox ~= false,
    stats = { events = 0, duplicates = 0, resumed = 0, retried = 0, dropped = 0, takeovers = 0, letGo = 0 },
  }, Runtime)
end

-- ---- one call: as its log says, driven until it waits -------------------------------------

--- The call: the one this process keeps (`keep`), else as the store has it, in a fresh
-- object. The log is read only when a flow is to replay it (or `full`); other calls are what
-- their head says.
-- @return the call, its start entry (if it has a flow), true if its flow has ended
function Runtime:fresh(id, full)
  local bot, store = self.bot, self.store
  local kept = self.keep and bot.calls[id]
  if kept then return kept, kept.started, kept.finished end
  local hd = store:head(id)
  if not full and not (hd and hd.flow and not hd.ended) then
    local call = callmod.new(bot, id, { direction = hd and hd.dir, tenantId = hd and hd.tenant,
                                        state = hd and hd.state })
    return call, nil, hd and hd.ended
  end
  return self:_from_log(id, store:log(id))
end

-- A fresh call object as its log says.
-- @return the call, its start entry (if it has a flow), true if its flow has ended
function Runtime:_from_log(id, entries)
  self.away[id] = nil   -- (a flow let go of comes back here)
  local started, ended
  for _, e in ipairs(entries) do
    if e.k == "start" then started = e end
    if e.k == "end" then ended = true end
  end
  local call = callmod.new(self.bot, id, { direction = started and started.dir,
                                           tenantId = started and started.tenant,
                                           created = started and started.created,
                                           started = started })   -- (a call kept here knows its flow)
  call:_load(entries)
  return call, started, ended
end

-- Run body (the flow's, replaying then live) until it parks or ends; without a body, wake the
-- flow kept parked on the call (`keep`) with what came since.
-- @return "parked", "finished", or "aborted" and the error
local function run_body(self, call, body)
  local loop = self.bot.loop
  if loop.parks then   -- nginx: resumed right here; cosockets yield through it
    local co = coroutine.create(body)
    call.co = co
    call.parker = function() end   -- (a parked flow yields graphcall.ngx.loop.PARK to here)
    local ok, r = coroutine.resume(co)
    if not ok then return "aborted", r end
    if coroutine.status(co) == "dead" then return "finished" end
    return "parked"
  end
  -- the standalone loop: the flow is a task; it tells this one when it parks or ends
  return loop:await(function(done)
    call.parker = function() done("parked") end
    call.onend = function(ok, e) if ok then done("finished") else done("aborted", e) end end
    if not body then
      if not call:wake() then done("parked") end
      return
    end
    call.co = loop:spawn(function()
      local ok, e = xpcall(body, keep_tables)
      call.onend(ok, e)
    end)
  end)
end

-- ---- deadlines of the flows parked here: one heap, one timer --------------------------------
-- A flow parked with a deadline fires at it here (the sweeper finds it too): its call id in a
-- heap by time, in arrays (no table per call), and one timer of the host for the soonest. A
-- timer and a closure per waiting call were a fifth of what a call waiting in memory held.

local function swap(a, i, j)
  local at, ids = a.at, a.ids
  at[i], at[j] = at[j], at[i]
  ids[i], ids[j] = ids[j], ids[i]
  a.pos[ids[i]], a.pos[ids[j]] = i, j
end

local function sift_up(a, i)
  local at = a.at
  while i > 1 do
    local p = math.floor(i / 2)
    if at[p] <= at[i] then return end
    swap(a, i, p)
    i = p
  end
end

local function sift_down(a, i)
  local at, n = a.at, a.n
  while true do
    local l, m = 2 * i, i
    if l <= n and at[l] < at[m] then m = l end
    if l < n and at[l + 1] < at[m] then m = l + 1 end
    if m == i then return end
    swap(a, i, m)
    i = m
  end
end

local function unalarm(a, id)
  local i = a.pos[id]
  if not i then return end
  local n = a.n
  swap(a, i, n)
  a.at[n], a.ids[n], a.pos[id], a.n = nil, nil, nil, n - 1
  if i < n then
    sift_up(a, i)
    sift_down(a, i)
  end
end

-- The flow parked with a deadline (`at`, ms since the epoch), or with none (nil).
function Runtime:_alarm(id, at)
  local a = self.alarms
  unalarm(a, id)
  if not (self.timer and at) then return end
  local n = a.n + 1
  a.n, a.at[n], a.ids[n], a.pos[id] = n, at, id, n
  sift_up(a, n)
  self:_arm()
end

-- The host's timer, for the soonest deadline: set again only when a sooner one comes (one
-- that fires early, its deadline gone, finds nothing due and is set for the next).
function Runtime:_arm()
  local a = self.alarms
  if a.n == 0 then return end
  local soonest = a.at[1]
  if a.timer then
    if a.armed <= soonest then return end
    a.timer:cancel()
  end
  a.armed = soonest
  a.timer = self.timer(math.max(0, soonest - self.now()), function() self:_ring() end)
end

function Runtime:_ring()
  local a = self.alarms
  a.timer, a.armed = nil, nil
  local now = self.now()   -- (the timer's clock may run ahead of the wall clock deadlines are in)
  while a.n > 0 and a.at[1] <= now do
    local id = a.ids[1]
    unalarm(a, id)
    self:enqueue(id, { due = true })
  end
  self:_arm()
end

-- Renew the leases of the calls this process drives, and their watchdogs. The calls are taken
-- first: a renew waits for the store, and flows start and end meanwhile (a table changed under
-- pairs() fails with "invalid key to 'next'": the renewal of the rest was lost with it, and
-- other nodes took those calls over while this one still ran them).
function Runtime:_renew()
  local store, ids = self.store, {}
  for cid in pairs(self.driving) do ids[#ids + 1] = cid end
  for _, cid in ipairs(ids) do
    if self.driving[cid] then
      local ok, held = pcall(store.renew, store, cid, self.lease)
      if ok and held then pcall(store.set_due, store, cid, watchdog_at(self)) end
    end
  end
end

--- Drive a call's flow: replay (or wake the flow kept here, without a `body`), then live until
-- it waits; write down where it waits. Raises what the store raised when the flow could not
-- go on (the item is retried).
function Runtime:drive(call, body, watched)
  local store, id = self.store, call.id
  -- if this process dies in the middle, the call is due once its lease has run out
  if not watched then self:_watchdog(id) end
  -- one timer of this process renews the leases of the calls it is running, and their watchdogs
  if not self.renewer and self.every and store.renew then
    self.renewer = self.every(self.lease * 1000 / 3, function() self:_renew() end)
  end
  self.driving[id] = true
  if store.defer then store:defer(id) end   -- steps go with the next intent, or the park
  local how, e = run_body(self, call, body)
  self.driving[id] = nil
  if how == "aborted" then
    if store.defer then store:discard(id) end
    self.parking[id], self.wakes[id] = nil, nil
    self:_forget(id)   -- what the flow was is in the log; a retry replays it
    if M.store_error(e) then error(e, 0) end
    self.log("error", "call " .. id .. ": the flow's driver failed: " .. tostring(e))
    return how
  end
  if not self.keep then self.bot.calls[id] = nil end   -- nothing of the call stays in this process
  local w = call.waiter
  -- what can end the wait, for a store that takes the call's events without the flow meanwhile
  -- (the flow is dropped here: a flow kept in this process is woken by each of them)
  if how == "parked" and w and not self.keep then self.wakes[id] = w.wake end
  if how == "parked" and w and self.keepWaiting and not call.finished then self:_waiting(call) end
  if call.finished then
    self:_alarm(id)
    store:expire(id)
    self:_ended(id)
  elseif how == "parked" and w and w.deadline then
    -- (a store that parks writes it with what the flow logged and, when nothing else is
    -- queued on the call, the lease's release: `_drain`)
    if store.park then self.parking[id] = w.deadline else store:set_due(id, w.deadline) end
    self:_alarm(id, w.deadline)
  else
    self:_alarm(id)
    if store.park then self.parking[id] = false else store:clear_due(id) end
  end
  return how
end

-- An ended call, kept (`keep`) among the last `keepEnded` for the calls page, traces and
-- tests; the oldest beyond them is let go of (`store:forget`), unless its flow still runs (it
-- goes behind the others). Without this a process alone grows with every call it ever took.
function Runtime:_ended(id)
  local q, set = self.ended, self.endedSet
  if not self.keep or set[id] then return end
  q.tail = q.tail + 1
  q[q.tail], set[id] = id, true
  for _ = 1, q.tail - q.head + 1 - self.keepEnded do
    local old = q[q.head]
    q[q.head], q.head = nil, q.head + 1
    local c = self.bot.calls[old]
    if c and c.co and not c.finished then
      q.tail = q.tail + 1
      q[q.tail] = old
    else
      set[old] = nil
      self.bot.calls[old] = nil
      if self.store.forget then self.store:forget(old) end
    end
  end
end

-- A call this process no longer holds in memory (its flow is rebuilt from the log when needed).
function Runtime:_forget(id)
  self:_alarm(id)
  self.bot.calls[id] = nil
end

-- ---- flows that wait long: let go of (`keepWaiting`) ------------------------------------------
-- A flow kept in this process costs its coroutine, its call object and its events as tables
-- (14-20 KB); let go of, it costs its log (packed, on the memory store) and its deadline, and
-- a replay of its log at its next event (a fraction of a millisecond). Parks queue up in time
-- order: the sweeper lets go of those that still wait as they parked, keepWaiting ms on.

function Runtime:_waiting(call)
  local q, at = self.waiting, self.now()
  call.parkedAt = at
  q.tail = q.tail + 1
  q.ids[q.tail], q.ats[q.tail] = call.id, at
end

function Runtime:_let_go(now)
  local q, calls = self.waiting, self.bot.calls
  local before = now - self.keepWaiting
  while q.head <= q.tail and q.ats[q.head] <= before do
    local id, at = q.ids[q.head], q.ats[q.head]
    q.ids[q.head], q.ats[q.head], q.head = nil, nil, q.head + 1
    local call = calls[id]
    -- (still parked where it parked then, nothing queued for it)
    if call and call.parkedAt == at and call.waiter and not call.finished and not self.queues[id]
       and not self.driving[id] then
      calls[id] = nil
      self.away[id] = true
      if self.store.idle then self.store:idle(id) end
      self.stats.letGo = self.stats.letGo + 1
      self.bot.metrics:inc("let_go")
    end
  end
  if q.head > q.tail then q.head, q.tail = 1, 0 end
end

-- ---- the items of a call's queue ------------------------------------------------------------

-- An event the tracker let through, into the call's log (guarded by a watchdog deadline when
-- a flow will take it), then to handlers. `ev` is what handlers get.
function Runtime:_take(call, e, ev, started, ended)
  local bot, store, id = self.bot, self.store, call.id
  if (started and not ended) or (e.incoming and bot.flows.main and not started) then
    self:_watchdog(id)   -- from the append on, the flow must not be lost with this process
  end
  call:_input(e)
  if e.kind == "call" and e.state == "established" and not store:ka_at(id) then
    store:set_ka(id, self.now() + bot.keepAliveEvery)
  end
  if e.kind == "call" and e.state == "terminated" then self:_ended(id) end
  self:_taken(call, e, ev)
end

-- An event in the log: counted, to the handlers, said.
function Runtime:_taken(call, e, ev)
  local bot, id = self.bot, call.id
  self.stats.events = self.stats.events + 1
  bot.metrics:inc("dispatched")
  bot:_emit(callmod.event_name(e), call, ev)
  if self.where then
    self.log("info", string.format("call %s: %s (%s)", id, trace.describe(e), self.where()))
  end
end

-- The flow of a call that has one: woken where it is kept, else replayed from the log.
function Runtime:_resume(call, started, watched)
  if call.co then return self:drive(call, nil, watched) end
  return self:drive(call, self:_body(call, started.flow, true), watched)
end

-- A flow's body, the call keeping what it started as (for a kept call's next event).
function Runtime:_body(call, flow, resumed)
  local body = call:_start_flow(flow, resumed)
  if body then call.started = call.started or { flow = flow } end
  return body
end

-- Then the flow: on with the new event, or started by an incoming call.
function Runtime:_go_on(call, started, ended, incoming, watched)
  local bot = self.bot
  if not ended then
    if started then return self:_resume(call, started, watched) end
    if incoming and bot.flows.main then
      local body = self:_body(call, "main")
      if body then return self:drive(call, body, watched) end
    end
  end
  if not self.keep then bot.calls[call.id] = nil end
end

-- An event. Marks on the item say how far it got, so a retry goes on from there.
function Runtime:_event(item)
  local bot = self.bot
  local ev, claims = item.ev, item.claims
  local id = ev.callId
  if not item.accepted then
    local ok, why = bot.tracker:accept(ev)
    if not ok then
      self.stats.duplicates = self.stats.duplicates + 1
      bot.metrics:inc("duplicates")
      self.log("debug", "call " .. id .. ": " .. tostring(ev.kind) .. " notification dropped (" .. tostring(why) .. ")")
      return
    end
    item.accepted = true
  end
  local call, started, ended = self:fresh(id, item.logged)
  if not item.logged then
    call.tenantId = call.tenantId or ev.tenantId or (claims and claims.tid)
    if ev.incoming then call.direction = "incoming" end
    local e = callmod.compact(ev)
    self:_take(call, e, ev, started, ended)
    item.logged, item.e = true, e
  elseif item.e.incoming then
    call.direction = "incoming"
    call.tenantId = call.tenantId or item.e.tenantId or (claims and claims.tid)
  end
  self:_go_on(call, started, ended, item.e.incoming)
end

-- A deadline that may have passed (or a process that died holding the call); `force`: go on
-- from the log whatever the deadline (a retry after the store refused a write).
function Runtime:_due(id, force)
  local store = self.store
  local at = store:due_at(id)
  if not force and (at or math.huge) > self.now() then return end   -- another process did it
  if is_watchdog(at) and not force then
    -- the process that ran the call died mid-step: this one carries it on
    local gap = math.floor(self.now() - (at - 0.5 - self.lease * 1000 - M.GRACE))
    self.stats.takeovers = self.stats.takeovers + 1
    self.bot.metrics:inc("takeovers")
    self.log("warn", string.format("call %s: carried on %d ms after its process was last alive (failover)", id, gap))
  end
  local away = self.away[id]
  local call, started, ended = self:fresh(id, true)
  if started and not ended then
    if not call.co and not away then   -- (not a flow let go of while it waited: `keepWaiting`)
      self.stats.resumed = self.stats.resumed + 1
      self.bot.metrics:inc("resumes")
    end
    self:_resume(call, started)
  elseif not started and not ended and self.bot.flows.main and call.events[1]
         and call.events[1].incoming then   -- an incoming call whose flow did not get to start
    call.direction, call.tenantId = "incoming", call.events[1].tenantId
    self:drive(call, self:_body(call, "main"))
  elseif ended then
    store:expire(id)   -- the flow ended, and its process died before it let the call go
    if not self.keep then self.bot.calls[id] = nil end
  else
    store:clear_due(id)
    if not self.keep then self.bot.calls[id] = nil end
  end
end

-- If this process dies from now until the flow has run, the call is due once the lease has run
-- out: another process's sweeper goes on with it.
function Runtime:_watchdog(id)
  self.store:set_due(id, watchdog_at(self))
end

-- A call this process placed: its flow starts here (or goes on, if a retry finds it started).
function Runtime:_start(id, item)
  local call, started, ended = self:fresh(id, true)
  if ended then
    if not self.keep then self.bot.calls[id] = nil end
    return
  end
  if started then return self:_resume(call, started) end
  call.direction, call.tenantId, call.created = "outgoing", item.tenant, item.created
  self:drive(call, self:_body(call, item.start))
end

-- One inbox entry (the first of the inbox): tracker, log (the entry leaves the inbox in the
-- same write), handlers, flow.
function Runtime:_entry(id, text)
  local bot, store = self.bot, self.store
  local entry = core.decode(text)
  if type(entry) == "table" and entry.start then   -- a call placed by a process: start its flow
    local call, started, ended = self:fresh(id, true)
    if started or ended then return store:drop_first(id) end
    self:_watchdog(id)
    call.direction, call.tenantId, call.created = "outgoing", entry.tenant, entry.created
    store:take_with_next(id)   -- with the flow's start entry
    return self:drive(call, self:_body(call, entry.start))
  end
  local e = type(entry) == "table" and entry.e
  if type(e) ~= "table" then
    self.log("error", "call " .. id .. ": an inbox entry that is not an event; dropped")
    return store:drop_first(id)
  end
  e.callId = id
  local ok, why = bot.tracker:accept(e)
  e.callId = nil
  if not ok then
    self.stats.duplicates = self.stats.duplicates + 1
    bot.metrics:inc("duplicates")
    self.log("debug", "call " .. id .. ": " .. tostring(e.kind) .. " notification dropped (" .. tostring(why) .. ")")
    return store:drop_first(id)
  end
  local call, started, ended = self:fresh(id)
  call.tenantId = call.tenantId or e.tenantId or entry.tid
  if e.incoming then call.direction = "incoming" end
  store:take_with_next(id)   -- the entry leaves the inbox with the append
  self:_take(call, e, e, started, ended)
  self:_go_on(call, started, ended, e.incoming)
end

-- The call's inbox, until it is empty (entries other processes add meanwhile too).
function Runtime:_inbox(id, item)
  if item.swept then   -- the process that took these notifications died before it ran them
    local since = self.store:inbox_since(id)
    if since then
      self.stats.takeovers = self.stats.takeovers + 1
      self.bot.metrics:inc("takeovers")
      self.log("warn", string.format("call %s: carried on %d ms after its process was last alive (failover)",
        id, math.floor(self.now() - since)))
    end
    item.swept = nil
  end
  if item.resume then self:_due(id, true) end   -- a retry: the flow goes on from the log first
  while true do
    local texts = self.store:inbox(id)
    if #texts == 0 then break end
    for _, text in ipairs(texts) do
      item.resume = true    -- if this raises, the retry brings the flow on first
      self:_entry(id, text)
      item.resume = nil
    end
  end
  self.store:inbox_done(id, self.now())
end

-- An event the store took in one go (`ingest`: tracker, log, head): to the handlers, then the
-- flow, whose lease the ingest took. A retry (the store refused a write of the flow) goes on
-- from the log.
function Runtime:_logged(id, item)
  if item.emitted then return self:_due(id, true) end
  local bot, r, taken = self.bot, item.logged, item.taken   -- (taken: the events a park took)
  local call, started, ended
  if r.drive then   -- the log as it is now: the event is in it (and what came since, when mine)
    call, started, ended = self:_from_log(id, r.entries or self.store:log(id))
    r.entries = nil
  else
    call, ended = callmod.new(bot, id, { direction = r.dir, tenantId = r.tenant, state = r.state }), r.ended
    call:_input(item.e, true)
  end
  item.emitted = true
  local incoming
  for i = 1, taken and #taken or 1 do
    local e, tid = item.e, item.tid
    if taken then e, tid = taken[i].e, taken[i].tid end
    call.tenantId = call.tenantId or e.tenantId or tid
    if e.incoming then call.direction, incoming = "incoming", true end
    self:_taken(call, e, e)
  end
  if r.drive then return self:_go_on(call, started, ended, incoming, not r.mine) end
  if not self.keep then bot.calls[id] = nil end
end

function Runtime:_item(id, item)
  if item.logged then return self:_logged(id, item) end
  if item.kick then return self:_inbox(id, item) end
  if item.ev then return self:_event(item) end
  if item.due then return self:_due(id) end
  if item.resume then return self:_relearn(id) end
  if item.start then return self:_start(id, item) end
end

-- Take the call's lease; a store that is down is waited for (up to `until_ms`).
-- The store is away (Redis restarting, say): said once, until it is back; what waits on it is
-- retried meanwhile and counted.
function Runtime:_down(e)
  if self.down then return end
  self.down = { since = self.now(), retried = 0 }
  self.log("warn", "the store is unreachable (" .. tostring(type(e) == "table" and e.message or e)
    .. "); what needs it waits and is retried until it is back")
end

function Runtime:_up()
  local d = self.down
  if not d then return end
  self.down = nil
  self.log("info", string.format("the store is back after %d ms; %d item(s) retried",
    math.floor(self.now() - d.since), d.retried))
end

-- `once`: one try, "held" when another process holds the lease.
-- @return release, or nil and why not
local function take(self, id, until_ms, once)
  local pause, said = 50, false
  while true do
    local ok, release, err = pcall(self.store.lock, self.store, id, self.lease, not once and self.lockWait or 0)
    if ok and release then
      self:_up()
      return release
    end
    err = ok and err or release
    if once and err == "timeout" then return nil, "held" end
    if self.now() >= until_ms then return nil, err end
    if not ok and M.store_error(err) then
      self:_down(err)
    elseif not said then    -- held by another process that is slow to let go, or the dict is full
      said = true
      self.log("warn", "call " .. id .. ": no lease yet (" .. tostring(err) .. "); waiting for it")
    end
    self.sleep(pause)
    pause = math.min(pause * 2, 1000)
  end
end

-- Everything queued on the call, under one lease.
function Runtime:_drain(id)
  local q = self.queues[id]
  local i, release, give_up, pause, waiting = 1, nil, nil, 50, nil
  while q[i] do
    local got = q[i].logged
    if not release and q[i].due and not q[i].letGo then
      -- a deadline another process saw to (the flow went on there and set the next), or one
      -- while another runs the flow (its park sets the next; one that died holding the call
      -- lets its lease run out, and the next sweep finds the deadline): left without waiting
      local read, at = pcall(self.store.due_at, self.store, id)
      local ripe, err = read and (at or math.huge) <= self.now(), nil
      if ripe or not read then release, err = take(self, id, 0, true) end
      if read and not release and (err == "held" or not ripe) then
        q.due = false
        q[i], i = false, i + 1
        goto continue
      end
    end
    if not release and got and got.drive and not got.mine and not q[i].letGo then   -- the ingest took it
      release = function() return self.store:release(id) end
    elseif not release and not (got and not got.drive) then   -- (handlers alone need no lease)
      local err
      release, err = take(self, id, give_up or (self.now() + self.retryFor))
      if not release then
        local n = 0
        for j = i, #q do if q[j] then n = n + 1 end end
        self.stats.dropped = self.stats.dropped + n
        self.log("error", string.format("call %s: no lease (%s); %d item(s) dropped", id, tostring(err), n))
        break
      end
    end
    if q[i].kick then q.kick = false end     -- a kick queued from now on is a new one
    if q[i].due then q.due = false end
    local ok, e = xpcall(self._item, keep_tables, self, id, q[i])
    local at, wake = self.parking[id], self.wakes[id]
    self.parking[id], self.wakes[id] = nil, nil
    if ok and at ~= nil then   -- the flow parked: its deadline, and the lease if nothing else is queued
      local last = release ~= nil and not q[i + 1]
      local o = last and { now = self.now(), watchdog = watchdog_at(self), lease = self.lease * 1000,
                           keepAlive = self.bot.keepAliveEvery, wake = wake }
      ok, e = xpcall(self.store.park, keep_tables, self.store, id, at or nil, last, o)
      if ok and last and type(e) == "table" then
        -- events that came to other processes meanwhile, taken into the log with the park: the
        -- lease stays, and the flow goes on with them
        q[i + 1] = { logged = { drive = true, entries = e.entries }, taken = e.events }
      elseif ok and last then
        release, waiting = nil, e
      end
    end
    if ok or not M.store_error(e) then
      if not ok then self.log("error", "call " .. id .. ": " .. tostring(e)) end
      q[i], i, give_up, pause = false, i + 1, nil, 50
    else
      -- the store refused: let go, wait, take the lease again, go on from where the item got to
      self.bot.metrics:inc("store_errors")
      give_up = give_up or (self.now() + self.retryFor)
      if release then pcall(release) end
      release, q[i].letGo = nil, true
      if self.now() >= give_up then
        self.stats.dropped = self.stats.dropped + 1
        self.log("error", "call " .. id .. ": given up after retrying for " .. self.retryFor .. " ms: " .. tostring(e))
        q[i], i, give_up = false, i + 1, nil
      else
        self.stats.retried = self.stats.retried + 1
        if e.code == "store" then
          self:_down(e)
          self.down.retried = self.down.retried + 1
        else   -- fenced: another process took the call while this one was slow
          self.log("info", "call " .. id .. ": " .. tostring(e) .. "; retrying")
        end
        self.sleep(pause)
        pause = math.min(pause * 2, 1000)
      end
    end
    ::continue::
  end
  self.queues[id] = nil
  -- nothing of the call stays in this process: what the store holds of it, as little as it can
  if not self.keep and self.store.idle then self.store:idle(id) end
  if release then
    local ok, w = pcall(release)
    waiting = ok and w
  end
  -- events another node put in the inbox while this one held the call: taken now
  if waiting == true then self:enqueue(id, { kick = true }) end
end

--- Queue an item on a call: `{ev =, claims =}`, `{kick = true}` (take the inbox), `{due =
-- true}`, `{start = flow, tenant =, created =}`. Items of a call run in order, one call's at a
-- time in this process.
-- @return true, or nil and an error (no thread could be started)
function Runtime:enqueue(id, item)
  local q = self.queues[id]
  if q then
    if (item.due and q.due) or (item.kick and q.kick) then return true end   -- one waits already
    q[#q + 1] = item
    q.due = q.due or item.due
    q.kick = q.kick or item.kick
    return true
  end
  q = { item, due = item.due, kick = item.kick }
  self.queues[id] = q
  local ok, err = self.go(self._drain, self, id)   -- (no closure: LuaJIT compiles no FNEW)
  if not ok then
    self.queues[id] = nil
    return nil, err
  end
  return true
end

local json = wire.json

-- A store refusing a write a moment (Redis restarting) is waited for, within what the service
-- waits for an answer. fn() raises what the store raised.
local function patiently(self, id, fn)
  local give_up, pause = self.now() + self.acceptWait, 20
  while true do
    local ok, r = pcall(fn)
    if ok then return r end
    self.bot.metrics:inc("store_errors")
    if self.now() >= give_up then
      self.log("error", "call " .. id .. ": cannot keep the notification: " .. tostring(r))
      return nil, r
    end
    self.sleep(pause)
    pause = math.min(pause * 2, 200)
  end
end

--- Take the events of a notification body that is to be answered 202: with an inbox, each
-- is in its call's inbox in the store when this returns true (answer 202 then); without,
-- they are queued in this process (`dispatch`).
-- @return true, or nil and an error (answer 503: nothing of the body was taken, or part of
--   it, which the service's retry brings again and the tracker drops)
function Runtime:accept(events, claims)
  if not self.inboxed then return self:dispatch(events, claims) end
  if self.store.ingest then return self:_ingest(events, claims) end
  return self:_push(events, claims)
end

-- Each event into its call's inbox, then a kick to take it (a store without `ingest`).
-- (Apart from `accept`: a closure in `accept` would keep LuaJIT from compiling its common path.)
function Runtime:_push(events, claims)
  local now = math.floor(self.now())
  local tid = claims and claims.tid
  for _, ev in ipairs(events) do
    local id = ev.callId
    if id then
      local text = json { e = callmod.compact(ev), tid = tid }
      local ok, err = patiently(self, id, function()
        self.store:push(id, text, now)
        return true
      end)
      if not ok then return nil, err end
    end
  end
  for _, ev in ipairs(events) do
    if ev.callId then
      local ok, err = self:enqueue(ev.callId, { kick = true })
      if not ok then self.log("warn", "call " .. ev.callId .. ": " .. tostring(err) .. "; the sweeper will take it") end
    end
  end
  return true
end

-- Each event into its call's log in one write (`ingest`); what is news goes to the handlers
-- and the flow from the queue, what waits for a lease held elsewhere in the call's inbox.
function Runtime:_ingest(events, claims)
  local bot, store = self.bot, self.store
  local tid = claims and claims.tid
  for _, ev in ipairs(events) do
    local id = ev.callId
    if id then
      local e = callmod.compact(ev)
      local o = { tid = tid, now = self.now(), lease = self.lease * 1000, flow = bot.flows.main ~= nil,
                  keepAlive = bot.keepAliveEvery, watchdog = watchdog_at(self) }
      local r, err = patiently(self, id, function() return store:ingest(id, e, o) end)
      if not r then return nil, err end
      local item
      if r.dup then
        self.stats.duplicates = self.stats.duplicates + 1
        bot.metrics:inc("duplicates")
        self.log("debug", string.format("call %s: %s notification dropped (%s)", id, tostring(e.kind),
          tostring(r.dup)))
      elseif not r.queued then   -- (queued: the node holding the call takes it when it lets go;
        -- the sweeper, if that node died)
        for k, v in pairs(r.flags or {}) do e[k] = v end
        item = { logged = r, e = e, tid = tid }
      end
      local ok, qerr = true, nil
      if item then ok, qerr = self:enqueue(id, item) end
      if not ok then self.log("warn", "call " .. id .. ": " .. tostring(qerr) .. "; the sweeper will take it") end
    end
  end
  return true
end

--- Start the flow of a call this process placed (`bot:call`): with an inbox, kept there first,
-- so the flow starts even if this process dies now.
-- @param id the call's id
-- @param item `{start = flow name, tenant =, created = {id, myParticipantId}}`
-- @return true, or nil and an error
function Runtime:start(id, item)
  if not self.inboxed then return self:enqueue(id, item) end
  local ok, err = pcall(self.store.push, self.store, id, json(item), math.floor(self.now()))
  if not ok then return nil, err end
  return self:enqueue(id, { kick = true })
end

--- Queue the events of a notification body.
-- @return true, or nil and an error
function Runtime:dispatch(events, claims)
  for _, ev in ipairs(events) do
    if ev.callId then
      local ok, err = self:enqueue(ev.callId, { ev = ev, claims = claims })
      if not ok then return nil, err end
    end
  end
  return true
end

--- Bring back the flows whose deadline has passed, send keepAlive to the calls due for it.
-- Every process sweeps; a call's lease keeps one process at a time on it. A store that is away
-- is said once (and when it is back), not at every round.
function Runtime:sweep()
  local ok, e = pcall(self._sweep, self)
  if ok then return self:_up() end
  if M.store_error(e) then return self:_down(e) end
  error(e, 0)
end

function Runtime:_sweep()
  local store, bot = self.store, self.bot
  local now = self.now()
  if self.keepWaiting then self:_let_go(now) end
  -- keepAlive times are far apart (15 minutes): looked for every quarter of that, 5 s at most
  local kaEvery = math.min(5000, bot.keepAliveEvery / 4)
  local kaNow = now - (self.kaSwept or 0) >= kaEvery and now or nil
  -- inboxes that nobody took: the process that accepted them died
  local inboxBefore = self.inboxed and now - self.lease * 1000 - M.GRACE or nil
  local found
  if store.sweep then   -- (a store in buckets says which are this process's to sweep)
    found = store:sweep(now, inboxBefore, kaNow)
  else
    found = { due = store:due(now), inbox = inboxBefore and store:inbox_due(inboxBefore) or {},
              ka = kaNow and store:ka_due(now) or {} }
  end
  for _, id in ipairs(found.due) do self:enqueue(id, { due = true }) end
  for _, id in ipairs(found.inbox) do self:enqueue(id, { kick = true, swept = true }) end
  if not kaNow then return end
  self.kaSwept = now
  for _, id in ipairs(found.ka) do
    -- whoever moves the time on under the call's lease sends it
    local ok, release = pcall(store.lock, store, id, self.lease, 0.01)
    release = ok and release or nil
    local due = release and (store:ka_at(id) or math.huge) <= now
    if due then store:set_ka(id, now + bot.keepAliveEvery) end
    if release then
      local rok, waiting = pcall(release)
      if rok and waiting == true then self:enqueue(id, { kick = true }) end
    end
    if due then
      bot.client:keepAlive(id, function(fine, err)
        if fine or not err or err.status ~= 404 then return end
        self.log("warn", "call " .. id .. ": keepAlive answered 404; the call is over")
        store:clear_ka(id)   -- gone, and its termination never came: end it as if told
        self:enqueue(id, { ev = { callId = id, kind = "call", changeType = "deleted", state = "terminated",
          synthetic = true, resultInfo = { code = 404, message = "keepAlive: call not found" } } })
      end)
    end
  end
end

--- Go on with a call this process had (a bot started again on its store): its flow replayed
-- from the log, the tracker taught again what the log holds.
-- @param id the call's id
-- @return true, or nil and an error
function Runtime:resume(id)
  return self:enqueue(id, { resume = true })
end

function Runtime:_relearn(id)
  local call = self:fresh(id, true)
  for _, ev in ipairs(call.events) do
    ev.callId = id
    self.bot.tracker:accept(ev)
    ev.callId = nil
  end
  self:_due(id, true)
end

--- Stop the renewal and deadline timers (the process is stopping).
function Runtime:close()
  if self.renewer then self.renewer:cancel() end
  self.renewer = nil
  local a = self.alarms
  if a.timer then a.timer:cancel() end
  self.alarms = { n = 0, at = {}, ids = {}, pos = {} }
end

--- Calls with items queued or running in this process.
function Runtime:busy()
  local n = 0
  for _ in pairs(self.queues) do n = n + 1 end
  return n
end

return M
