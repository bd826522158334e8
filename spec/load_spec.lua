-- `graphcall emulate --load`: a load test of a user's bot (examples/ivr.lua under `graphcall
-- run`, its own process), placing calls at a rate with scripted callers, and the report: the
-- answer latency, what each kind of caller's calls came to, the notifications refused.
local E = require "emu"
local C = require "nodes_helper"
local N = require "ngx_helper"
local read = require("helper").read_if   -- ("" for a file not there)

local SALES = "+14255550100"

describe("graphcall emulate --load", function()
  it("drives a bot with callers at a rate and says what each kind's calls came to", function()
    local port = N.free_port()
    local webhook = "http://127.0.0.1:" .. port .. "/callback"
    local emu = E.start { args = "--load 4 --duration 2 --webhook " .. webhook, scenario = {
      peers = { [SALES] = { answer = 500 } },
      load = { appId = "graphcall-run", tenantId = "tenant-1", callers = {
        { name = "sales", caller = { { on = "prompt", after = 800, press = "1" } },
          expect = { pressed = "1", transferred = SALES } },
        { name = "voicemail", caller = { { on = "prompt", after = 800, press = "2" },
                                         { on = "record", after = 300, speak = 1000 } },
          expect = { pressed = "2", recordings = 1, hangup = "bot" } },
        -- what this flow does not do: the report says so for each call of the kind
        { name = "wrong", caller = { { on = "prompt", after = 800, press = "2" },
                                     { on = "record", after = 300, speak = 1000 } },
          expect = { pressed = "9" } },
      } } } }
    finally(function() emu.stop() end)
    os.execute("mkdir -p build/prompts")
    local bot = C.node { script = "examples/ivr.lua", emu = emu.url, public = "http://127.0.0.1:" .. port,
                         prompts = "build/prompts", port = port, noredis = true, args = "--quiet" }
    finally(function() bot.remove() end)
    local out
    for _ = 1, 600 do   -- the calls last a few seconds each; the emulator exits once all are over
      out = read(emu.dir .. "/stdout")
      if out:find("load: [PF]A") then break end
      os.execute("sleep 0.1")
    end
    assert.truthy(out:find("load: 8 calls placed (4 a second for 2 s)", 1, true), out)
    assert.truthy(out:find("answered 8, answer latency p50 %d+ ms, p99 %d+ ms; notifications refused or failed 0"), out)
    assert.truthy(out:find("sales%s+3 calls,%s+3 at their expected end\n"), out)
    assert.truthy(out:find("voicemail%s+3 calls,%s+3 at their expected end\n"), out)
    assert.truthy(out:find('wrong%s+2 calls,%s+0 at their expected end; 2 pressed "2", expected "9"'), out)
    assert.truthy(out:find("load: FAIL (2 calls not at their expected end)", 1, true), out)
    for _ = 1, 100 do if not E.alive(emu.pid) then break end os.execute("sleep 0.05") end
    assert.is_false(E.alive(emu.pid))   -- it exits at the end (1: a call did not come to its end)
  end)

  it("says a mistake in the load scenario at its place, before anything runs", function()
    local dir = E.tmpdir()
    finally(function() os.execute("rm -rf " .. dir) end)
    local f = assert(io.open(dir .. "/load.lua", "w"))
    f:write('return { load = { callers = { { name = "a", caller = {}, expect = { pressd = "1" } } } } }\n')
    f:close()
    local out = E.sh(string.format("env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='%s' %s bin/graphcall "
      .. "emulate --load 1 --duration 1 --scenario %s/load.lua 2>&1; echo rc=$?", os.getenv("LUA_CPATH") or "",
      E.lua, dir))
    assert.truthy(out:find("graphcall: scenario.load.callers[1].expect: unknown option 'pressd' (did you mean "
      .. "'pressed'?)", 1, true), out)
    assert.is_nil(out:find("traceback", 1, true), out)
    assert.truthy(out:find("rc=2", 1, true), out)
  end)
end)
