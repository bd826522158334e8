-- Durable by construction, with real processes: the emulator and a bot (`graphcall run` with a
-- file store) are separate processes; the bot is killed with SIGKILL in the middle of the
-- menu, a new one starts on the same store and the same callback URL, and the caller's call
-- goes on to the end, no action sent twice.
local cjson = require "cjson"
local E = require "emu"

local SALES = "+14255550100"
local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
local CPATH = os.getenv("LUA_CPATH") or ("./build/" .. (jit and "luajit" or "lua5.4") .. "/?.so;;")

local free_port = require("ports").take

local function start_bot(url, port, store, log, extra)
  -- the first line is the bot's pid, the last "exit N" once it has exited
  local cmd = string.format("sh -c 'env LUA_PATH=\"%s\" LUA_CPATH=\"%s\" %s bin/graphcall run "
    .. "examples/ivr.lua --connect %s --listen 127.0.0.1:%d --store %s --prompts build/prompts %s 2>>%s & "
    .. "echo $!; wait $!; echo exit $?' 2>/dev/null",
    LUA_PATH, CPATH, E.lua, url, port, store, extra or "", log)
  local p = assert(io.popen(cmd, "r"))
  local pid = p:read("*l")
  local line = p:read("*l") or ""
  local bot = { pid = pid, pipe = p }
  -- idempotent; in a finally: a spec that fails leaves no bot whose pipe would wait for it
  function bot.kill(signal)
    if bot.closed then return "" end
    bot.closed = true
    os.execute("kill " .. (signal or "-9") .. " " .. pid .. " 2>/dev/null")
    local rest = p:read("*a")
    p:close()
    return rest
  end
  if not line:match("listening on") then
    bot.kill()
    error("the bot did not start: " .. line)
  end
  return bot
end

describe("a bot killed mid-flow", function()
  it("is resumed by a new process on the same store, and the call goes on to the end", function()
    local emu = E.start { scenario = { peers = { [SALES] = { answer = 500 } } } }
    local dir = E.tmpdir()
    local port = free_port()
    local ctl = require("graphcall").loop { log = false }
    local bots = {}
    finally(function()
      for _, b in ipairs(bots) do b.kill() end
      ctl:close()
      emu.stop()
      os.execute("rm -rf " .. dir)
    end)
    local b1 = start_bot(emu.url, port, dir .. "/store", dir .. "/bot.log")
    bots[1] = b1
    local function poll(pred, ms)   -- ask again every 50 ms
      for _ = 1, ms / 50 do
        if pred() then return true end
        ctl:sleep(50)
      end
      return false
    end
    local function control(method, path, body)
      local res = assert(ctl:fetch { method = method, url = emu.url .. path, body = body })
      return require("graphcall").decode(res.body)
    end
    -- the caller presses 1 four seconds into the menu (a 7.6 s prompt)
    local call = control("POST", "/emulator/incoming", cjson.encode {
      webhook = "http://127.0.0.1:" .. port .. "/callback", appId = "graphcall-run", tenantId = "tenant-1",
      caller = { { on = "prompt", after = 4000, press = "1" } } })
    assert.is_string(call.id)
    assert.is_true(poll(function()
      return #(control("GET", "/emulator/calls/" .. call.id).prompts or {}) >= 1
    end, 10000))
    ctl:sleep(1000)
    b1.kill()

    local b2 = start_bot(emu.url, port, dir .. "/store", dir .. "/bot.log")
    bots[2] = b2

    local view
    assert.is_true(poll(function()
      view = control("GET", "/emulator/calls/" .. call.id)
      return view.state == "terminated"
    end, 20000), "the call did not end")
    assert.equal(SALES, view.transferred)
    assert.equal("1", view.pressed)
    local repeats = 0
    for _, r in pairs(control("GET", "/emulator/requests")) do repeats = repeats + r.count - 1 end
    assert.equal(0, repeats)
    local f = io.open(dir .. "/bot.log")
    local text = f:read("*a")
    f:close()
    assert.truthy(text:find("resuming its flow", 1, true), text)
  end)
end)

describe("SIGTERM", function()
  it("with --on-stop hangup hangs up the live calls and exits 0", function()
    local emu = E.start { scenario = {} }
    local dir = E.tmpdir()
    local port = free_port()
    local ctl = require("graphcall").loop { log = false }
    local b
    finally(function()
      if b then b.kill() end
      ctl:close()
      emu.stop()
      os.execute("rm -rf " .. dir)
    end)
    b = start_bot(emu.url, port, dir .. "/store", dir .. "/bot.log", "--on-stop hangup")
    local res = assert(ctl:fetch { method = "POST", url = emu.url .. "/emulator/incoming", body = cjson.encode {
      webhook = "http://127.0.0.1:" .. port .. "/callback", appId = "graphcall-run", tenantId = "tenant-1" } })
    local id = require("graphcall").decode(res.body).id
    local view
    for _ = 1, 100 do
      ctl:sleep(50)
      view = require("graphcall").decode(assert(ctl:fetch { url = emu.url .. "/emulator/calls/" .. id }).body)
      if #(view.prompts or {}) >= 1 then break end
    end
    local rest = b.kill("-TERM")
    assert.matches("exit 0", rest)
    for _ = 1, 40 do
      ctl:sleep(50)
      view = require("graphcall").decode(assert(ctl:fetch { url = emu.url .. "/emulator/calls/" .. id }).body)
      if view.state == "terminated" then break end
    end
    assert.equal("terminated", view.state)
    local hung = false
    for _, l in ipairs(view.log) do if l.what == "bot hangs up" then hung = true end end
    assert.is_true(hung)
  end)
end)
