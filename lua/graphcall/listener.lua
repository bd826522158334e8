--- The callback listener of a standalone bot: the calling service POSTs notifications to the
-- bot's `callbackUri`, and this answers them as Microsoft's samples do (REFERENCE.md §4, §7):
-- the `Authorization` JWT is verified first (403 and nothing dispatched when it fails), the
-- body parsed (400 when it is not a commsNotifications document), `202` sent at once, and
-- only then, on the next turn of the loop, are the events handed to the tracker and to the
-- handler. A handler that raises is logged with the call id; the listener keeps serving.
--
--   local listener = assert(graphcall.listener {
--     loop = client.loop, port = 8443, cert = "bot.pem", key = "bot.key",
--     verifier = client:verifier(),                 -- keys fetched and rolled over for you
--     files = "prompts",                            -- GET /prompts/... serves these files
--     on_event = function(ev, claims) ... end,
--   })
--
-- It also serves files from one folder (prompts the service fetches, REFERENCE.md §1.6),
-- with no way out of it, and hands any other request to `on_request`.
-- @module graphcall.listener
local core = require "graphcall.core"
local wire = require "graphcall.wire"
local strict = require "graphcall.strict"
local tracker_mod = require "graphcall.tracker"
local metrics_mod = require "graphcall.metrics"
local logs = require "graphcall.log"

local M = {}

local Listener = {}
Listener.__index = Listener

local JSON = { ["Content-Type"] = "application/json" }

local OPTIONS = { "loop", "host", "port", "path", "cert", "key", "maxBody", "timeout", "verifier", "verify", "tracker",
  "accept", "on_event", "on_request", "parse", "log", "files", "filesPrefix", "metrics", "maxConnections",
  "maxPerAddress", "deadline" }

--- Start listening.
-- @param opts `loop` (required), `host` ("127.0.0.1"), `port` (0: a free one), `path`
--   ("/callback", where notifications are POSTed; any query string is ignored), `cert` and
--   `key` (serve TLS), `maxConnections` (open at once: half the descriptor limit, at most
--   1024), `maxPerAddress` (of one client address: a quarter of maxConnections; over a cap the
--   oldest waiting connection of the biggest holder is closed), `deadline` (ms a client has to
--   send a whole request, headers and body, from its connection or its previous answer:
--   10000; a client that drips is dropped then), `verifier` (from `client:verifier()`, or a `graphcall.jwt` verifier;
--   required unless `verify = false`, which accepts unsigned callbacks: for tests only),
--   `tracker` (a `graphcall.tracker`; a new in-memory one by default), `on_event(ev,
--   claims)` for each event the tracker lets through, `on_request(req, method, uri, body)`
--   for other paths (404 without it), `files` and `filesPrefix` ("/prompts/"), `maxBody`
--   (bytes, 1 MiB), `timeout` (ms a client may stall, 10000), `parse` (options of
--   `parse_notifications`), `log`, `accept(events, claims, answer)` (instead of the tracker
--   and `on_event`: takes a verified body's events and calls answer(status) when it has
--   kept them; the request is answered then), `metrics` (a `graphcall.metrics` to count
--   callbacks received and refused in; its own by default; events are a bot's to count)
-- @return the listener, or nil and an error
function M.new(opts)
  if type(opts) ~= "table" or not opts.loop then error("bad argument #1 to 'listener' (loop is required)", 2) end
  strict.options(opts, OPTIONS, "listener")
  if opts.verify ~= false and not opts.verifier then
    error("bad argument #1 to 'listener' (a verifier is required; verify = false accepts unsigned callbacks)", 2)
  end
  local self = setmetatable({
    loop = opts.loop,
    path = opts.path or "/callback",
    verifier = opts.verify ~= false and opts.verifier or nil,
    tracker = opts.tracker or tracker_mod.new(),
    accept = opts.accept,
    on_event = opts.on_event,
    on_request = opts.on_request,
    parse_opts = opts.parse,
    log = opts.log or opts.loop.log,
    metrics = opts.metrics or metrics_mod.new(),
    stats = { received = 0, rejected = 0, malformed = 0, events = 0, dispatched = 0, dropped = 0, failed = 0 },
    queue = {}, nqueue = 0,
  }, Listener)
  local srv, err = self.loop:listen({
    host = opts.host, port = opts.port or 0, cert = opts.cert, key = opts.key,
    max_body = opts.maxBody or 1048576, timeout = opts.timeout,
    max_conns = opts.maxConnections, max_per_addr = opts.maxPerAddress, deadline = opts.deadline,
    files = opts.files, files_prefix = opts.files and (opts.filesPrefix or "/prompts/") or nil,
    -- under LuaJIT a call's bodies as strings crowd one chain of its string table (40,000/s
    -- in one process of two, 62,000 in the other): bytes, which the parser takes as they are
    raw_body = jit ~= nil,
  }, function(req, method, uri, body) self:_handle(req, method, uri, body) end)
  if not srv then return nil, err end
  self.server = srv
  self.port = srv:port()
  -- what the connection guard did, said once, then once per 10 s with a count (a flood must
  -- not become a flood of log lines)
  local say = logs.repeated(self.log, 10000, function() return self.loop:now() end)
  local seen = srv:stats()
  self.guard = self.loop:every(1000, function()
    if not self.server then return end
    local st = self.server:stats()
    if st.accept_errors > seen.accept_errors then
      say("accept", "warn", string.format("accept failed %d time(s) (out of descriptors?); accepting paused and "
        .. "resumed with a backoff", st.accept_errors - seen.accept_errors))
    end
    local closed = (st.evicted - seen.evicted) + (st.late - seen.late)
    if closed > 0 then
      say("guard", "warn", string.format("%d connection(s) closed: %d over the caps (maxConnections, "
        .. "maxPerAddress), %d that sent no whole request in time (deadline)", closed, st.evicted - seen.evicted,
        st.late - seen.late))
    end
    seen = st
  end)
  self.scheme = opts.cert and "https" or "http"
  self.host = opts.host or "127.0.0.1"
  return self
end

--- The URL of a path on this listener: `listener:url()` is the callback URL.
function Listener:url(path)
  local host = self.host:find(":", 1, true) and ("[" .. self.host .. "]") or self.host
  return string.format("%s://%s:%d%s", self.scheme, host, self.port, path or self.path)
end

local function call_of(ev) return ev.callId or "?" end

-- The bodies answered 202 in one turn of the loop, handed to the tracker and the handler on
-- the next (after the answers are on their way), in the order they came: `queue` holds body i's
-- events at 2i - 1 and its claims at 2i. One protected run takes them all; a handler (or a
-- store) that raises is logged with its call and the run goes on from the event after it.
-- `at` is the run's own cursor: a handler that runs the loop (a blocking fetch) dispatches what
-- came meanwhile in a run of its own.
local function run(self, q, n, at)
  local tracker, fn, stats, log = self.tracker, self.on_event, self.stats, self.log
  for i = at.body, n, 2 do
    local events, claims = q[i], q[i + 1] or nil
    for j = i == at.body and at.event or 1, #events do
      at.body, at.event = i, j + 1   -- where to go on from if this one raises
      local ev = events[j]
      local ok, why = tracker:accept(ev)
      if not ok then
        stats.dropped = stats.dropped + 1
        log("debug", string.format("call %s: %s %s notification dropped (%s)", call_of(ev), ev.changeType, ev.kind,
          why))
      else
        stats.dispatched = stats.dispatched + 1
        if fn then fn(ev, claims) end
      end
    end
    at.event = 1
  end
  at.body = n + 1
end

function Listener:_dispatch()
  local q, n = self.queue, self.nqueue
  self.queue, self.nqueue = {}, 0   -- what comes while these run is queued anew
  local at = { body = 1, event = 1 }
  while at.body <= n do
    local fine, err = xpcall(run, debug.traceback, self, q, n, at)
    if not fine then
      local ev = q[at.body][at.event - 1]
      self.stats.failed = self.stats.failed + 1
      self.log("error", string.format("call %s: handler failed on %s %s: %s", call_of(ev), ev.changeType, ev.kind,
        tostring(err)))
    end
  end
end

function Listener:_accept(req, body, claims)
  local events, err = core.parse_notifications(body, self.parse_opts)
  if not events and wire.legacy(tostring(body)) then   -- "204, and it comes again in Graph's format"
    self.stats.legacy = (self.stats.legacy or 0) + 1
    self.log("info", "callback in the legacy format: 204, for the same in Graph's format")
    return req:respond(204)
  end
  if not events then
    self.stats.malformed = self.stats.malformed + 1
    self.metrics:inc("refused", 1, "400")
    self.log("warn", "callback body refused: " .. tostring(err.message))
    req:respond(400, JSON, '{"error":{"code":"BadRequest","message":"not a commsNotifications body"}}')
    return
  end
  self.stats.events = self.stats.events + #events
  if self.accept then   -- answered once the events are kept (several nodes, graphcall.runtime)
    req:keep()
    return self.accept(events, claims, function(status)
      if status >= 400 then self.metrics:inc("refused", 1, tostring(status)) end
      req:respond(status)
    end)
  end
  req:respond(202)
  local n = self.nqueue
  self.queue[n + 1], self.queue[n + 2], self.nqueue = events, claims or false, n + 2
  if n == 0 then self.loop:defer(self._dispatch, self) end   -- after the 202s are on their way
end

function Listener:_reject(req, err)
  self.stats.rejected = self.stats.rejected + 1
  self.metrics:inc("refused", 1, "403")
  self.log("warn", "callback refused (403): " .. tostring(err and err.code) .. ": " .. tostring(err and err.message))
  req:respond(403)
end

function Listener:_handle(req, method, uri, body)
  if uri ~= self.path and uri:match("^[^?#]*") ~= self.path then
    if self.on_request then return self.on_request(req, method, uri, tostring(body)) end
    return req:respond(404)
  end
  if method ~= "POST" then return req:respond(405, { Allow = "POST" }) end
  self.stats.received = self.stats.received + 1
  self.metrics:inc("received")
  local v = self.verifier
  if not v then return self:_accept(req, body, nil) end
  local auth = req:header("Authorization")
  local claims, err = v:verify(auth)
  if claims then return self:_accept(req, body, claims) end
  if v.verify_async and (err.code == "unknown_kid" or err.code == "no_keys") then
    req:keep()                               -- new keys, maybe: fetch them, then decide
    return v:verify_async(auth, function(c, e)
      if c then self:_accept(req, body, c) else self:_reject(req, e) end
    end)
  end
  self:_reject(req, err)
end

--- Stop listening (requests still unanswered get 503).
function Listener:close()
  if self.guard then self.guard:cancel() end
  self.guard = nil
  if self.server then self.server:close() end
  self.server = nil
end

return M
