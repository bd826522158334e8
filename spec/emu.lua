-- What the specs over real HTTP share: the emulator started as its own process (the
-- `graphcall emulate` command, on a free loopback port), and a bot in this process (loop,
-- client, listener) that records what reaches it.
local graphcall = require "graphcall"

local E = {}

E.lua = jit and "luajit" or "lua5.4"
local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
-- the modules this run was built as (make asan builds its own)
local CPATH = os.getenv("LUA_CPATH") or ("./build/" .. (jit and "luajit" or "lua5.4") .. "/?.so;;")

function E.sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

--- Whether a process is alive (and not a zombie).
function E.alive(pid)
  local f = io.open("/proc/" .. tostring(pid) .. "/stat")
  if not f then return false end
  local stat = f:read("*l") or ""
  f:close()
  return not stat:match("^%d+ %b() Z")
end

-- Emulators not stopped (a spec that failed before it stopped its own) are killed when the
-- specs' Lua state closes.
E.running = {}
local function reap()
  for pid in pairs(E.running) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
end
local reaper = newproxy and newproxy(true) or setmetatable({}, { __gc = reap })   -- luacheck: ignore 113
if newproxy then getmetatable(reaper).__gc = reap end   -- luacheck: ignore 113
E.reaper = reaper

function E.tmpdir()
  return (E.sh("mktemp -d"):gsub("%s+$", ""))
end

local function literal(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do
    local key = type(k) == "number" and ("[" .. k .. "]") or ("[" .. string.format("%q", k) .. "]")
    parts[#parts + 1] = indent .. "  " .. key .. " = " .. literal(x, indent .. "  ")
  end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

--- Start `graphcall emulate` with a scenario table; returns {url, pid, stop(), log}.
function E.start(opts)
  opts = opts or {}
  local dir = E.tmpdir()
  -- Graph's documented liberties (batches, swaps) by default, from a fixed seed (or
  -- GRAPHCALL_SEED): the same choices every run; `realism = "strict"` where a spec asserts the
  -- exact sequence the emulator sends
  local args = { "--port 0", "--speed " .. (opts.speed or 1), "--realism " .. (opts.realism or "documented"),
                 "--seed " .. (opts.seed or os.getenv("GRAPHCALL_SEED") or 1) }
  if opts.scenario then
    local f = assert(io.open(dir .. "/scenario.lua", "w"))
    f:write("return ", literal(opts.scenario), "\n")
    f:close()
    args[#args + 1] = "--scenario " .. dir .. "/scenario.lua"
  end
  if opts.cert then args[#args + 1] = "--cert " .. opts.cert .. " --key " .. opts.key end
  if opts.caFile then args[#args + 1] = "--ca-file " .. opts.caFile end
  if opts.quiet ~= false then args[#args + 1] = "--quiet" end
  if opts.args then args[#args + 1] = opts.args end
  local log = dir .. "/emulator.log"
  -- in the background, its first line in a file: a spec that fails before it stops the
  -- emulator leaves a process behind, never a pipe whose close would wait for it
  local pid = E.sh(string.format("exec env LUA_PATH=\"%s\" LUA_CPATH=\"%s\" %s bin/graphcall emulate %s "
    .. ">%s/stdout 2>%s & echo $!", LUA_PATH, CPATH, opts.lua or E.lua, table.concat(args, " "), dir, log))
    :match("%d+")
  local line = ""
  for _ = 1, 1500 do   -- up to 30 s on a loaded machine; it is ready in well under one
    local f = io.open(dir .. "/stdout")
    line = f and f:read("*l") or ""
    if f then f:close() end
    if line:find("listening on", 1, true) or not E.alive(pid) then break end
    os.execute("sleep 0.02")
  end
  local url = line:match("listening on (%S+)")
  local emu = { pid = pid, url = url, dir = dir, log = log }
  E.running[pid] = true
  function emu.stop()
    if emu.stopped then return end
    emu.stopped = true
    os.execute("kill " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not E.alive(pid) then break end
      os.execute("sleep 0.02")
    end
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    E.running[pid] = nil
    os.execute("rm -rf " .. dir)
  end
  if not url then
    local f = io.open(log)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    emu.stop()
    error("the emulator did not start: " .. line .. " " .. text)
  end
  return emu
end

--- A bot against the emulator: {loop, client, listener, events, wait(pred, ms), control()}.
function E.bot(emu, opts)
  opts = opts or {}
  local loop = opts.loop or graphcall.loop { log = opts.log or false }
  local bot = { loop = loop, events = {}, calls = {} }
  local base = opts.url or emu.url
  bot.client = graphcall.client {
    tenantId = opts.tenantId or "tenant-1", clientId = opts.clientId or "app-1",
    clientSecret = opts.clientSecret or "secret", authority = base, graphUrl = base .. "/v1.0",
    openidUrl = base .. "/v1/.well-known/OpenIdConfiguration", loop = loop, caFile = opts.caFile,
    retries = opts.retries, backoff = opts.backoff or 50, timeout = opts.timeout,
    refreshBefore = opts.refreshBefore,
  }
  bot.verifier = bot.client:verifier { minRefetch = opts.minRefetch or 0 }
  local listener, err = graphcall.listener {
    loop = loop, verifier = bot.verifier, files = opts.files, cert = opts.cert, key = opts.key,
    host = "127.0.0.1",
    on_event = function(ev, claims)
      graphcall.materialize(ev)
      bot.events[#bot.events + 1] = ev
      ev.claims = claims
      if opts.on_event then opts.on_event(ev, bot) end
    end,
  }
  assert(listener, err and err.message)
  bot.listener = listener
  bot.callback = listener:url()
  --- run the loop until pred() or the timeout (ms); true if pred became true
  function bot.wait(pred, ms) return loop:run_until(pred, ms or 5000) end
  --- the events of one call, optionally of one kind
  function bot.of(callId, kind)
    local out = {}
    for _, ev in ipairs(bot.events) do
      if ev.callId == callId and (not kind or ev.kind == kind) then out[#out + 1] = ev end
    end
    return out
  end
  --- true once the call has terminated
  function bot.ended(callId)
    for _, ev in ipairs(bot.events) do
      if ev.callId == callId and ev.kind == "call" and ev.state == "terminated" then return true end
    end
    return false
  end
  --- the emulator's control API: (method, path, body) -> decoded JSON, status
  function bot.control(method, path, body)
    local res = assert(loop:fetch { method = method, url = base .. path, body = body, cafile = opts.caFile,
                                    headers = body and { ["Content-Type"] = "application/json" } or nil })
    return graphcall.decode(res.body), res.status
  end
  function bot.close()
    listener:close()
    if not opts.loop then loop:close() end
  end
  return bot
end

--- Run the curl command line in the background while `loop` keeps serving, until it exits;
-- returns what it printed. (A separate process: it sees the server as any client would.)
function E.curl(loop, args)
  local out = os.tmpname()
  os.execute(string.format("(env -u LD_PRELOAD curl -s %s > %s.part 2>&1; mv %s.part %s.done) &", args, out, out, out))
  local f
  local tick = loop:every(10, function() end)   -- wake up to look for the file
  loop:run_until(function()
    f = io.open(out .. ".done", "rb")
    return f ~= nil
  end, 10000)
  tick:cancel()
  assert(f, "curl did not finish")
  local text = f:read("*a")
  f:close()
  os.remove(out .. ".done")
  os.remove(out)
  return text
end

--- A create-call spec to a phone number, with the bot's callback URL.
function E.pstn_call(bot, number)
  return {
    callbackUri = bot.callback,
    source = { identity = { applicationInstance = { id = "3d913abb-aec0-4964-8fa6-3c6850c4f278" } } },
    targets = { { identity = { phone = { id = number } } } },
    requestedModalities = { "audio" },
    mediaConfig = graphcall.serviceHostedMediaConfig {},
    tenantId = "tenant-1",
  }
end

return E
