--- A harness for testing flows with busted: the flow runs in a bot against the emulator, both
-- on one loop in virtual time, so a flow with minutes of prompts and timeouts runs in a
-- fraction of a second, over real HTTP on loopback (signed callbacks, the real client).
--
--   local T = require "graphcall.test"
--   it("transfers a caller who presses 1", function()
--     local h = T.new { script = "examples/ivr.lua" }          -- or flow = function(call) ... end
--     local call = h:incoming { caller = { { on = "prompt", after = 500, press = "1" } } }
--     assert.equal("+14255550100", call.transferred)
--     h:close()
--   end)
--
-- `h:incoming{...}` places an incoming call (the emulator's `place_incoming`: `caller` steps,
-- `from`) and `h:outgoing(spec)` has the bot place one (`bot:call`); both run until the flow
-- has finished and give what the emulator saw of the call (`graphcall.emulator`'s
-- `call_view`): `state`, `pressed` (the keys, a string), `prompts` (what played, in order:
-- `{text =, file =, uri =, at =, ms =, cutShort =}`, `text` when the flow spoke it, `file`
-- when it was a file of the prompts folder), `recordings`, `transferred` (the target; nil
-- when there was none), `resultInfo`, `requests` (every request on the call, refused ones
-- included), `log` (every step with its time in emulated ms), plus `flow` (the bot's call).
-- `T.replay{script =, log =}` runs a recorded log into a fresh bot and flow, sending nothing,
-- and gives the requests it made (a recorded call as a test).
-- @module graphcall.test
local core = require "graphcall.core"
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local storemod = require "graphcall.store"
local scripts = require "graphcall.script"
local strict = require "graphcall.strict"
local files = require "graphcall.files"

local M = {}

local Harness = {}
Harness.__index = Harness

--- Load a flow script (`graphcall.script.load`): a Lua file returning {flow = fn, flows =
-- {...}, on = {event = fn(call, ev)}, scenario = {...}, start = fn(bot)}.
-- @function load
M.load = scripts.load

local NEW = { "script", "flow", "flows", "scenario", "prompts", "store", "log", "realtime", "replay", "realism",
              "seed", "flowErrors", "keepEnded", "keepWaiting" }

--- A new harness.
-- @param o `script` (a path) or `flow` (a function) and `flows`; `scenario` (the emulator's;
--   the script's by default); `prompts` (folder for prompts and spoken text, `build/prompts`);
--   `store`; `log` (false: quiet); `realtime` (true: real time instead of virtual); `replay`
--   (true: keep nothing of a call between its events and replay its flow from the log for
--   each one, as nodes on a shared store do: a flow that passes this way is deterministic);
--   `realism` and `seed` of the emulator ("documented", with seed 1 or GRAPHCALL_SEED: the
--   same choices each run; "strict": one notification a POST, in order); `flowErrors` ("raise",
--   the default: a flow that raises fails the test at once, with the flow's own line; "log");
--   `keepEnded` (the bot's: ended calls it keeps in memory); `keepWaiting` (the bot's: ms a
--   waiting flow stays in memory before it is let go of, to be replayed at its next event)
function M.new(o)
  o = strict.options(o, NEW, "graphcall.test.new")
  local script = {}
  if o.script then script = assert(M.load(o.script)) end
  local loop = graphcall.loop { virtual = not o.realtime, log = o.log or false }
  local prompts = o.prompts or os.getenv("GRAPHCALL_PROMPTS") or "build/prompts"
  assert(files.mkdirs(prompts))
  local emu = emulator.new { loop = loop, scenario = o.scenario or script.scenario or {}, log = loop.log,
                             shareKeys = true, realism = o.realism,
                             seed = o.seed or tonumber(os.getenv("GRAPHCALL_SEED")) or 1 }
  assert(emu:start())
  local client = graphcall.client { tenantId = "tenant-1", clientId = "app-1", clientSecret = "secret",
    authority = emu.url, graphUrl = emu.url .. "/v1.0", openidUrl = emu.url .. "/v1/.well-known/OpenIdConfiguration",
    loop = loop }
  local bot = assert(graphcall.bot { client = client, prompts = prompts, store = o.store or storemod.memory(),
                                     verifier = client:verifier { minRefetch = 0 }, shared = o.replay,
                                     keepEnded = o.keepEnded, keepWaiting = o.keepWaiting })
  scripts.apply(bot, { flow = o.flow or script.flow, flows = o.flows or script.flows, on = script.on })
  local self = setmetatable({ loop = loop, emulator = emu, client = client, bot = bot, script = script }, Harness)
  if o.flowErrors ~= "log" then
    -- a flow that raises fails the test at once, with the flow's own line
    bot.onFlowError = function(_, e) self.flowError = self.flowError or e end
  end
  bot:start()
  if script.start then script.start(bot) end
  return self
end

--- Run the loop until pred() holds (or `ms` of real time pass); a flow that raised meanwhile
-- fails the test here, with its own message and line.
-- @return true if pred held
function Harness:run_until(pred, ms)
  local held = self.loop:run_until(function() return self.flowError ~= nil or pred() end, ms or 10000)
  if self.flowError then
    local e = self.flowError
    self.flowError = nil
    error(type(e) == "string" and e or tostring(e), 0)
  end
  return held
end

-- True once the call's flow has ended: the call object kept here says so, else (`replay`)
-- the head of its log.
function Harness:_over(id)
  local c = self.bot.calls[id]
  if c then return c.finished == true end
  local hd = self.bot.runtime.store:head(id)
  return hd ~= nil and hd.ended == true
end

-- The calls the bot has: kept here, or (`replay`) in its store.
function Harness:_ids()
  local ids, seen = {}, {}
  for id in pairs(self.bot.calls) do ids[#ids + 1], seen[id] = id, true end
  for id in pairs(self.bot.runtime.away) do ids[#ids + 1], seen[id] = id, true end   -- (`keepWaiting`)
  if self.bot.runtime.keep then return ids end
  for _, id in ipairs(self.bot.store:calls()) do
    if not seen[id] then ids[#ids + 1] = id end
  end
  return ids
end

-- What the emulator saw of a call, each prompt said as the flow gave it (`text`, or `file`
-- of the prompts folder), with the bot's call object as `flow`.
function Harness:_view(id, ecall)
  local bot = self.bot
  local view = ecall and self.emulator:call_view(ecall) or { id = id, prompts = {}, recordings = {}, requests = {} }
  local base = bot.promptBase
  for _, p in ipairs(view.prompts) do
    p.text = bot.spoken[p.uri]
    if not p.text and p.uri:sub(1, #base) == base then p.file = p.uri:sub(#base + 1) end
  end
  view.flow = bot.calls[id]
  return view
end

function Harness:_finish(id, ecall)
  ecall = ecall or self.emulator.calls[id]
  self:run_until(function()
    return self:_over(id) and ecall and ecall.state == "terminated"
  end)
  return self:_view(id, ecall)
end

--- What the emulator has seen of a call so far (see the module), while it goes on.
-- @param id the call's id
function Harness:view(id)
  return self:_view(id, self.emulator.calls[id])
end

--- Place an incoming call to the bot and run it to the end of its flow.
-- @param inc as `emulator:place_incoming` (`caller`, `from`, ...); the webhook is the bot's
-- @return what the emulator saw of the call (see the module), with `flow` the bot's call
function Harness:incoming(inc)
  inc = inc or {}
  inc.webhook = inc.webhook or self.bot.callbackUri
  inc.appId = inc.appId or "app-1"
  inc.tenantId = inc.tenantId or "tenant-1"
  local call = self.emulator:place_incoming(inc)
  return self:_finish(call.id, call)
end

--- Have the bot place a call and run it to the end of its flow.
-- @param spec as `bot:call` (a phone number string is a PSTN call from the bot)
-- @param opts as `bot:call` (`flow`, `tenant`)
function Harness:outgoing(spec, opts)
  if type(spec) == "string" then
    spec = { targets = { { identity = { phone = { id = spec } } } },
             source = { identity = { applicationInstance = { id = "3d913abb-aec0-4964-8fa6-3c6850c4f278" } } },
             requestedModalities = { "audio" }, mediaConfig = graphcall.serviceHostedMediaConfig {},
             tenantId = "tenant-1" }
  end
  local call = assert(self.bot:call(spec, opts))
  return self:_finish(call.id)
end

--- Run until every call the bot has is over (its flow finished, the emulator's call ended).
-- @return the emulator's views of the calls (see the module), in the order they were made
function Harness:finish_all(ms)
  local emu = self.emulator
  self:run_until(function()
    for _, id in ipairs(self:_ids()) do
      local e = emu.calls[id]
      if not self:_over(id) or (e and e.state ~= "terminated") then return false end
    end
    return true
  end, ms)
  local views = {}
  for _, id in ipairs(self:_ids()) do views[#views + 1] = self:_view(id, emu.calls[id]) end
  local function first(v) return v.log and v.log[1] and v.log[1].t or 0 end
  table.sort(views, function(a, b) return first(a) < first(b) end)
  return views
end

--- Replay a recorded call log into a flow, sending nothing: a call recorded once (with a file
-- store, `graphcall run --store DIR`, against a real tenant or the emulator) becomes a test.
-- @param o `script` or `flow`, and `log`: the entries, or the path of a `<callId>.log` file
-- @return as `bot:replay`: {ok =, finished =, requests = {...}, steps =, error =, call =}
function M.replay(o)
  local entries = o.log
  if type(entries) == "string" then
    entries = {}
    for line in assert(io.open(o.log, "rb")):lines() do
      local e = core.decode(line)
      if type(e) == "table" then entries[#entries + 1] = e end
    end
  end
  local h = M.new { script = o.script, flow = o.flow, flows = o.flows, log = o.logger }
  local r = h.bot:replay(entries)
  h:close()
  return r
end

--- The emulated milliseconds a call took, from its log.
function M.duration(view)
  local last = view.log and view.log[#view.log]
  return last and last.t or 0
end

--- Stop the bot and the emulator and close the loop (the harness is done).
function Harness:close()
  self.bot:close()
  self.emulator:close()
  self.loop:close()
end

return M
