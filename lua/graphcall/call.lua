--- A call as a flow and its handlers see it, and the operations started on it: the call's
-- events, its append-only log (what came in, each action's intent before it is sent, the
-- outcome of every step the flow waited for), and the steps of a flow, which replay from that
-- log without doing anything twice. `graphcall.ivr` adds the IVR verbs; `graphcall.runtime`
-- drives flows; `graphcall.bot` is what users make.
--
-- **Flows.** A flow is `fn(call)` in a coroutine per call. Its verbs wait for their outcome
-- without blocking anything: `request`, `op_done`, `wait`, `sleep`, `now`, `random` here, the
-- IVR verbs in `graphcall.ivr`. A caller hanging up is a structured cancellation: the verb
-- that was waiting returns nil and `{code = "hangup", cause = resultInfo}`, every later verb
-- does the same without sending anything, and the functions given to `call:finally(fn)` run
-- once when the flow ends, however it ends.
--
-- **Durable.** A flow reads time and randomness only through `call:now()` and
-- `call:random()`, so given its log it is deterministic: replaying the log into a fresh
-- coroutine brings it back to where it was without sending anything again. The one window:
-- an action whose intent is logged but whose answer is not (the process died in between) is
-- sent again with the same client-request-id (`answer`, `transfer`, `reject`, `redirect` and
-- `hangup` only when the call's state does not show they went through).
-- @module graphcall.call
local core = require "graphcall.core"
local wire = require "graphcall.wire"
local strict = require "graphcall.strict"

local M = {}

local null = core.null

local Call = {}
Call.__index = Call
M.Call = Call

local Operation = {}
Operation.__index = Operation
M.Operation = Operation

-- ---- events as plain data (what the log keeps) --------------------------------------------

local FIELDS = { "changeType", "kind", "state", "direction", "incoming", "tenantId", "operationId",
  "operationType", "status", "clientContext", "completionReason", "recordingLocation",
  "recordingAccessToken", "delta", "sequenceNumber", "fingerprint", "sessionId", "sameState" }

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
  if ev.kind == "call" and (ev.state == "terminated" or ev.changeType == "deleted") then
    -- how a consultative transfer ends (AppTransferred, without a resultInfo)
    local d = ev.data
    c.terminationReason = type(d) == "table" and type(d.terminationReason) == "string" and d.terminationReason or nil
  end
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

--- An error value: `{code =, message =, path = ""}` and what `extra` adds.
-- @param code the stable code ("hangup", "timeout", "failed", ...)
-- @param message what happened
-- @param extra more fields (`cause`, `resultInfo`, ...)
function M.err(code, message, extra)
  local e = { code = code, message = message, path = "" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return setmetatable(e, core.error_mt)
end
local err = M.err


-- ---- a call -------------------------------------------------------------------------------

--- A new call object of `bot` (registered in `bot.calls`).
-- @param bot the bot it belongs to (its client, store, loop, log, waitLimit)
-- @param id the call's id
-- @param fields more fields (direction, tenantId, created, state, ...)
function M.new(bot, id, fields)
  local call = setmetatable({
    id = id, bot = bot, events = {}, consumed = {}, first = 1, nstep = 0, replay = {}, finals = {},
    ops = {}, state = nil, intents = {}, intentNames = {}, intentAt = {}, replayWhat = {},
  }, Call)
  for k, v in pairs(fields or {}) do call[k] = v end
  bot.calls[id] = call
  bot.stats.calls = bot.stats.calls + 1
  return call
end

--- The name of the handlers an event goes to: "incoming", "tone", "terminated",
-- "established", "state", "roster", "operation", "sharing" or "unknown".
function M.event_name(ev)
  if ev.kind == "call" then
    if ev.incoming then return "incoming" end
    if ev.toneInfo then return "tone" end
    if ev.state == "terminated" or ev.changeType == "deleted" then return "terminated" end
    if ev.state == "established" and not ev.sameState then return "established" end
    return "state"
  end
  if ev.kind == "participants" then return "roster" end
  if ev.kind == "operation" then return "operation" end
  if ev.kind == "contentSharing" then return "sharing" end
  return "unknown"
end


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

-- Append to the call's log, with the time (ms since the epoch) for traces; `may_wait`: the
-- store may keep it back for the flow's next write (`graphcall.redisstore`'s `defer`).
function Call:_log(entry, may_wait)
  entry.t = math.floor(self.bot.loop:wall())
  self.bot.store:append(self.id, entry, may_wait)
end

-- An event (as the log keeps it, `compact`) into the call's log and its events; an
-- operation started outside a flow completes on it. The flow's wait is given it by its driver
-- (`wake`). `logged`: the store has it in the log already (`graphcall.redisstore`'s ingest).
function Call:_input(e, logged)
  if not logged then self:_log({ k = "ev", ev = e }) end
  self:_seen(e)
  if e.kind == "operation" then
    local op = self.ops[e.operationId]
    if op and (e.status == "completed" or e.status == "failed") then op:_complete(e) end
  end
end

-- An event of the call's log: among its events, and what it says of the call's state.
function Call:_seen(e)
  local i = #self.events + 1
  self.events[i] = e
  if e.kind == "call" then
    if e.state then self.state = e.state end
    if e.state == "terminated" or e.changeType == "deleted" then self.live_ended = self.live_ended or i end
  end
end

-- Give the waiting step what it waits for, if it is there: the first event not taken that
-- matches, the end of the call, or its deadline (ms since the epoch) when it has passed.
function Call:_offer(w)
  local events, consumed = self.events, self.consumed
  while self.first <= #events and consumed[self.first] do self.first = self.first + 1 end
  for i = self.first, #events do
    if not consumed[i] and w.filter(events[i]) then
      self.waiter = nil
      return w.done({ ev = i })
    end
  end
  if (self.live_ended or self.gone) and not w.keep_on_hangup then
    self.waiter = nil
    return w.done({ hangup = self.live_ended or true })
  end
  if w.deadline and self.bot.loop:wall() >= w.deadline then
    self.waiter = nil
    return w.done({ timeout = true })
  end
end

--- Wake the flow parked on this call if what it waits for is there now (an event, the end of
-- the call, its deadline): its driver calls this after each event and at the deadline.
-- @return true if the flow goes on (it runs again, then parks or ends), false if it still waits
function Call:wake()
  local w = self.waiter
  if not w then return false end
  self:_offer(w)
  return self.waiter ~= w
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
    -- a step that waits for an event *parks*: its driver is told (it may drop the flow, to be
    -- replayed wherever the next event lands, or keep it and `wake` it)
    v = self.bot.loop:await(function(done) start(done, n) end, park and self.parker or nil)
    self:_log({ k = "step", n = n, w = what, v = v })
  end
  if v.ev then self.consumed[v.ev] = true end
  if type(v.hangup) == "number" then   -- (true: the call is gone, its end never came)
    self.consumed[v.hangup] = true
    self.ended = self.events[v.hangup]
  end
  return v
end

local function hangup_error(self)
  local e = self.ended or self.events[self.live_ended or 0] or {}
  return err("hangup", "the call has ended", { cause = e.resultInfo })
end

--- What a wait for a notification keeps beyond what it waits for (ms) before it asks the
-- service what happened: a lost notification costs this much silence at most.
M.MARGIN = 2000

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

-- What can end a wait, for a store that takes events without the flow (`graphcall.redisstore`'s
-- ingest): the events a wait's filter may accept, as a list ("t,o"): t a key press, c any call
-- event, c=state a call event in that state (not a key press), o an operation's, p the
-- roster's, s content sharing; "-" none; or nil (any event). The call's end always can. A
-- wait's list covers all it may take, never less.
M.WAKE_KIND = { call = "c", operation = "o", participants = "p", contentSharing = "s" }

-- `call:wait`, and `wake` (M.WAKE_KIND's letters) for the store
function Call:_wait(filter, deadline, wake)
  local v = self:_step("wait", function(done)
    local w = { filter = filter, deadline = deadline, done = done, wake = wake }
    self.waiter = w
    self:_offer(w)   -- (if it must wait, the flow parks; its driver keeps the deadline)
  end, true)
  if v.ev then return self.events[v.ev] end
  if v.timeout then return nil, "timeout" end
  return nil, hangup_error(self)
end

--- In a flow: wait for the next event that `filter(ev)` accepts (events not taken by an earlier
-- wait, in the order they came), until `deadline` (ms since the epoch, from `call:now()`).
-- @param filter fn(ev) true to take it, or a table of fields the event must have
-- @param deadline ms since the epoch, or nil (the call's end)
-- @return the event, or nil and "timeout", or nil and the hangup error
function Call:wait(filter, deadline)
  local wake
  if type(filter) == "table" then
    local want = filter
    wake = M.WAKE_KIND[want.kind]
    filter = function(e)
      for k, v in pairs(want) do if e[k] ~= v then return false end end
      return true
    end
  end
  return self:_wait(filter, deadline, wake)
end

--- In a flow: pause for `ms` (a hangup ends the pause: nil and the hangup error).
function Call:sleep(ms)
  local _, why = self:_wait(function() return false end, self:now() + ms, "-")
  if why == "timeout" then return true end
  return nil, why
end

--- Register fn(call) to run once when the flow ends, however it ends (cleanup).
function Call:finally(fn)
  self.finals[#self.finals + 1] = fn
end

--- True once the flow knows the call has ended.
function Call:over() return self.ended ~= nil end

-- The actions whose parameters have a clientContext (Graph's v1.0 metadata).
local CONTEXT = { playPrompt = true, recordResponse = true, cancelMediaProcessing = true, subscribeToTone = true,
  invite = true, mute = true, unmute = true, updateRecordingStatus = true, sendDtmfTones = true,
  startHoldMusic = true, stopHoldMusic = true }

-- Actions a second one of which changes nothing (the state they set is set, the media they stop
-- is stopped): their intent may wait to be written with the flow's next write, as its steps
-- do. A process that dies before then leaves no trace of them, and the replay sends them again.
local REPEATABLE = { subscribeToTone = true, cancelMediaProcessing = true, mute = true, unmute = true,
  updateRecordingStatus = true, changeScreenSharingRole = true, keepAlive = true }

-- The call states that show an action sent before a restart went through: a second answer
-- on an answered call fails, so the state is read again instead (REFERENCE.md section 5.2).
local TOOK = {
  answer = { establishing = true, established = true, transferring = true, transferAccepted = true },
  transfer = { transferring = true, transferAccepted = true },
  reject = { terminating = true, terminated = true },
  redirect = { terminating = true, terminated = true },
  hangup = { terminating = true, terminated = true },
}

-- Text cut to at most n bytes, on a character boundary (the log is JSON: UTF-8 only).
local function cut(s, n)
  if #s <= n then return s end
  s = s:sub(1, n - 3):gsub("[\192-\247][\128-\191]*$", "")
  return s .. "..."
end

-- A few words for the trace on what an action plays: each prompt's text (as the flow spoke
-- it), its file of the prompts folder, or its URI.
local function prompts_note(bot, spec)
  local list = type(spec) == "table" and spec.prompts
  if type(list) ~= "table" then return nil end
  local names, base = {}, bot.promptBase
  for _, p in ipairs(list) do
    local uri = type(p) == "table" and type(p.mediaInfo) == "table" and p.mediaInfo.uri
    if type(uri) == "string" then
      local text = bot.spoken and bot.spoken[uri]
      if text then names[#names + 1] = '"' .. text .. '"'
      elseif base and uri:sub(1, #base) == base then names[#names + 1] = uri:sub(#base + 1)
      else names[#names + 1] = uri end
    end
  end
  return #names > 0 and cut(table.concat(names, " + "), 400) or nil
end

-- In a flow: a line for the trace (what a verb made of the events: the digits collected), in
-- the log once, when it happens live (a replay finds it there).
function Call:_note(text)
  if self.replaying or self.pure or not self:in_flow() then return end
  self:_log({ k = "note", text = cut(text, 400) })
end

-- An action, in a flow: intent logged (with `note`, for the trace), then sent (with the logged
-- client-request-id when a resumed flow sends it again), its answer logged. `send(opts, cb)`
-- does the request.
function Call:_send_step(name, send, note)
  local log = self.bot.log
  local v = self:_step(name, function(done, n)
    if self.live_ended or self.gone then return done({ hangup = self.live_ended or true }) end
    local crid = self.intents[n]
    local function go()
      send({ tenant = self.tenantId, clientRequestId = crid }, function(res, e)
        if res == nil then
          -- said even when the flow goes on without looking (`if not call:answer() then return end`)
          log("warn", string.format("call %s: %s refused: %s%s", self.id, name,
            e and e.status and ("HTTP " .. tostring(e.status) .. " ") or "", tostring(e and (e.graphCode
              and (e.graphCode .. " " .. tostring(e.message)) or e.message or e.code))))
          return done({ err = plain_error(e) })
        end
        done({ res = plain(res) })
      end)
    end
    if not crid then
      crid = core.uuid()
      self:_log({ k = "out", n = n, a = name, crid = crid, d = note, at = self.bot.node }, REPEATABLE[name])
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
    -- an operation that went through says so: its notifications carry the clientContext the
    -- request was sent with (its client-request-id)
    if CONTEXT[name] then
      for i = (self.intentAt[n] or 0) + 1, #self.events do
        local e = self.events[i]
        if e.kind == "operation" and e.clientContext == crid then
          log("info", string.format("call %s: %s went out before the restart (its operation %s is %s); "
            .. "not sent again", self.id, name, tostring(e.operationId), tostring(e.status)))
          return done({ res = { id = e.operationId, status = "running", clientContext = crid, name = name } })
        end
      end
      if name == "recordResponse" then
        -- a recording may be under way: its end is waited for (by its clientContext) before the
        -- request goes again, which would record over what the caller is saying
        log("warn", string.format("call %s: %s may be under way since before the restart; waiting for its "
          .. "end before sending it again (client-request-id %s)", self.id, name, crid))
        return done({ res = { status = "running", clientContext = crid, name = name, window = true } })
      end
    end
    log("warn", string.format("call %s: %s may have been sent before the restart; sending it again "
      .. "with client-request-id %s", self.id, name, crid))
    go()
  end)
  if v.hangup then return nil, hangup_error(self) end
  if v.err then return nil, setmetatable(v.err, core.error_mt) end
  return v.res
end

local ACTIONS = { "answer", "reject", "redirect", "transfer", "playPrompt", "recordResponse", "subscribeToTone",
  "sendDtmfTones", "cancelMediaProcessing", "keepAlive", "mute", "unmute", "updateRecordingStatus",
  "changeScreenSharingRole", "invite", "hangup" }
local IS_ACTION = {}
for _, a in ipairs(ACTIONS) do IS_ACTION[a] = true end

--- In a flow: run a Graph action on this call and wait for its HTTP answer (the operation of
-- a 200, or true). `call:op_done(op)` then waits for an operation's completion. An action that
-- takes a `clientContext` is sent with one (the request's client-request-id, unless the spec
-- has its own), so that a completion without an operation id still finds its operation.
function Call:request(name, spec)
  -- a mistake in what the flow asks for is the flow's, at its line, before anything is sent
  if not IS_ACTION[name] then
    strict.fail(string.format("request: '%s' is no action of a call%s", tostring(name),
      strict.closest(name, ACTIONS) and (" (did you mean '" .. strict.closest(name, ACTIONS) .. "'?)") or ""))
  end
  if name ~= "hangup" then
    if spec ~= nil and type(spec) ~= "table" then
      strict.fail(string.format("request: %s: the spec is a table, got %s", name, type(spec)))
    end
    local ok, e = core.build(name, spec or {})
    if not ok then strict.fail("request: " .. name .. ": " .. tostring(e)) end
  end
  local client = self.bot.client
  return self:_send_step(name, function(o, cb)
    if name == "hangup" then return client:hangup(self.id, o, cb) end
    local ctx
    if CONTEXT[name] and type(spec) == "table" and spec.clientContext == nil then
      local copy = {}
      for k, v in pairs(spec) do copy[k] = v end
      copy.clientContext = o.clientRequestId
      spec, ctx = copy, copy.clientContext
    end
    local function answered(res, e)
      -- the operation knows its context even when the answer does not repeat it, and its action
      if type(res) == "table" then
        if ctx and res.clientContext == nil then res.clientContext = ctx end
        res.name = res.name or name
      end
      cb(res, e)
    end
    if name == "invite" then return client:invite(self.id, spec, o, answered) end
    return client:action(self.id, name, spec, o, answered)
  end, prompts_note(self.bot, spec))
end

--- True for the end (completed or failed) of `op`, an operation a request gave: by its id in
-- either of Graph's forms, or, for a completion that has none (participant-invite's example),
-- by its clientContext.
-- @param x an event
-- @param op the operation (a table with `id`, `clientContext`)
function M.ends(x, op)
  if x.kind ~= "operation" or (x.status ~= "completed" and x.status ~= "failed") then return false end
  if x.operationId and op.id then return x.operationId == wire.id(op.id) end
  return x.clientContext ~= nil and x.clientContext == op.clientContext
end
local ends = M.ends

-- A notification that should have come by now did not: counted and logged (live only).
function Call:_lost(what, answer)
  local bot = self.bot
  bot.stats.lost = (bot.stats.lost or 0) + 1
  bot.metrics:inc("lost")
  bot.log("warn", string.format("call %s: %s never came; the service says %s", self.id, what, answer))
end

-- In a flow: ask the service (a logged step) for the call (`GET`), or one of its operations:
-- `{res = the object}`, `{gone = true}` (404), or `{err = ...}`.
function Call:_ask(opId)
  local client = self.bot.client
  return self:_step("ask", function(done)
    local function answered(res, e)
      if res ~= nil then return done({ res = plain(res) }) end
      if e and e.status == 404 then return done({ gone = true }) end
      done({ err = plain_error(e) })
    end
    if opId then return client:get_operation(self.id, opId, { tenant = self.tenantId }, answered) end
    client:get_call(self.id, { tenant = self.tenantId }, answered)
  end)
end

-- The call is gone (the service answered 404) though its end never came: what the flow does
-- from here on is as after a hang-up.
function Call:_gone(what)
  self.gone = true
  self.ended = self.ended or { kind = "call", state = "terminated", synthetic = true,
                               resultInfo = { code = 404, message = what .. ": the call is gone" } }
  return nil, hangup_error(self)
end

--- In a flow: wait for an operation (from `call:request`) to complete or fail. The service
-- never sends a completion twice and may lose one: after `expect` ms (what the operation takes:
-- a prompt's length, a recording's limits) and a margin (`graphcall.call.MARGIN`), the flow
-- asks the service what became of it (GET the operation), logs a warning and goes on from
-- the answer. The bot's `waitLimit` stays as the last resort.
-- @param op the operation (`call:request`'s answer)
-- @param expect ms the operation should take (nil: unknown, the wait is the bot's waitLimit)
-- @return the completion event (status, resultInfo, recordingLocation, ...), or nil and err
function Call:op_done(op, expect)
  if type(op) ~= "table" then return nil, err("operation", "no operation") end
  local s = type(op.status) == "string" and op.status:lower()
  if s == "completed" or s == "failed" then return op end
  local limit = self:now() + self.bot.waitLimit
  while true do
    local deadline = expect and math.min(self:now() + expect + M.MARGIN, limit) or limit
    local ev, e = self:_wait(function(x) return ends(x, op) end, deadline, "o")
    if ev then return ev end
    if e ~= "timeout" then return nil, e end
    if op.window then   -- nothing of it came: it never reached the service (the caller sends it again)
      return nil, err("window", tostring(op.name) .. " sent before a restart never began")
    end
    local what = "the completion of " .. tostring(op.name or "operation") .. " " .. tostring(op.id)
    local a = op.id and self:_ask(op.id) or { err = { message = "no operation id to ask about" } }
    local r = type(a.res) == "table" and a.res or {}
    local status = type(r.status) == "string" and r.status:lower()
    if status == "completed" or status == "failed" then
      if not self.replaying then self:_lost(what, status) end
      return { kind = "operation", operationId = op.id, operationType = op.name, status = status,
               clientContext = r.clientContext or op.clientContext, resultInfo = r.resultInfo,
               completionReason = r.completionReason, recordingLocation = r.recordingLocation,
               recordingAccessToken = r.recordingAccessToken, synthetic = true }
    end
    if a.gone then
      -- the operation is gone: so is the call, or the operation ended long ago
      local c = self:_ask()
      if c.gone then
        if not self.replaying then self:_lost(what, "the call is gone") end
        return self:_gone(what)
      end
      if not self.replaying then self:_lost(what, "the operation is over") end
      return { kind = "operation", operationId = op.id, operationType = op.name, status = "completed",
               clientContext = op.clientContext, synthetic = true }
    end
    if self:now() >= limit then
      return nil, err("timeout", "no completion of operation " .. tostring(op.id) .. " came in time")
    end
    expect = expect or 0   -- still running (or the service did not say): wait a margin more
  end
end

--- In a flow: wait for the call's state (an event `accept(ev)` takes: true to return it), for
-- `expect` ms and a margin, then ask the service (GET the call): a state `want(state)` takes
-- is as if its notification had come; 404 ends the call. The bot's `waitLimit` stays as the
-- last resort.
-- @return the event (or a stand-in for it, `synthetic`), or nil and "timeout" or the hangup error
function Call:_await_state(accept, want, expect, what, wake)
  local limit = self:now() + self.bot.waitLimit
  while true do
    local ev, e = self:_wait(accept, math.min(self:now() + expect + M.MARGIN, limit), wake or "c")
    if ev then return ev end
    if e ~= "timeout" then return nil, e end
    local a = self:_ask()
    if a.gone then
      if not self.replaying then self:_lost(what, "the call is gone") end
      return self:_gone(what)
    end
    local st = type(a.res) == "table" and type(a.res.state) == "string" and a.res.state
    if st and want(st) then
      if not self.replaying then self:_lost(what, "the call is " .. st) end
      return { kind = "call", state = st, resultInfo = a.res.resultInfo, synthetic = true }
    end
    if self:now() >= limit then return nil, "timeout" end
  end
end

-- The body of the flow `name` for this call (its coroutine's function), logging its start
-- unless `resumed`; nil when the bot has no such flow. Its driver runs it (`graphcall.runtime`).
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
  if not resumed and not self.pure then bot.metrics:inc("flows_started") end
  return self:_flow_body(fn)
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
      if not self.pure then bot.metrics:inc("flows_failed") end
      bot.log("error", string.format("call %s: flow failed: %s", self.id, tostring(e)))
      if bot.onFlowError then bot.onFlowError(self, e) end
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
    bot.metrics:inc("flows_ended")
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

--- Wait for the operation to end.
-- @return true if it completed, or nil and its status/error
function Operation:wait()
  self.call.bot.loop:await(function(done) self:on_done(function() done() end) end)
  if self.status == "completed" then return true end
  return nil, self.error or err("operation", "the operation " .. tostring(self.status),
                                { resultInfo = self.resultInfo })
end

return M
