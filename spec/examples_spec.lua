-- The examples through the harness, each with what its scripted other side does.
local T = require "graphcall.test"

describe("example (b), the outbound notification call (ex09)", function()
  it("plays the message and takes the confirmation", function()
    local h = T.new { script = "examples/notify.lua" }
    local calls = h:finish_all()
    assert.equal(1, #calls)
    assert.equal("1", calls[1].flow.outcome)
    assert.equal("1", calls[1].pressed)
    assert.equal("terminated", calls[1].state)
    assert.equal(2, #calls[1].prompts)          -- the message, then the confirmation
    h:close()
  end)

  it("cancels when the callee presses 2, and reports a callee who never answers", function()
    local h = T.new { script = "examples/notify.lua", scenario = { peers = { ["+12345678901"] = { answer = 500,
      { on = "promptEnd", after = 300, press = "2" } } } } }
    assert.equal("2", h:finish_all()[1].flow.outcome)
    h:close()
    h = T.new { script = "examples/notify.lua", scenario = { peers = { ["+12345678901"] = { outcome = "timeout" } } } }
    local v = h:finish_all()[1]
    assert.is_nil(v.flow.outcome)                -- the flow ended at ready()
    assert.equal(10076, v.resultInfo.subcode)
    h:close()
  end)
end)

describe("example (c), joining a meeting (ex05)", function()
  it("follows the delta roster and greets each joiner once", function()
    local h = T.new { script = "examples/meeting.lua" }
    local v = h:finish_all()[1]
    assert.same({ "Alice", "Bob" }, v.flow.greeted)
    local state = h.bot.tracker:call(v.id)
    assert.equal(5, state.rosterSeq)              -- the bot, Alice, Bob joins, Bob leaves, Alice leaves
    local present = {}
    for id, p in pairs(state.roster) do if not p.removed then present[#present + 1] = id end end
    assert.equal(1, #present)                      -- the bot, who then left
    assert.equal("terminated", v.state)
    h:close()
  end)
end)

describe("example (d), a group call (ex03)", function()
  it("waits for both users, plays the announcement, leaves", function()
    local h = T.new { script = "examples/group.lua" }
    local v = h:finish_all()[1]
    assert.equal(2, v.flow.present)
    assert.equal(1, #v.prompts)
    assert.equal("terminated", v.state)
    h:close()
  end)
end)

describe("graphcall run", function()
  for _, ex in ipairs { "ivr", "notify", "meeting", "group" } do
    it("runs examples/" .. ex .. ".lua against the emulator to the end", function()
      local lua = jit and "luajit" or "lua5.4"
      local cpath = os.getenv("LUA_CPATH") or ("./build/" .. lua .. "/?.so;;")
      local out = io.popen(string.format("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='%s' timeout 60 "
        .. "%s bin/graphcall run examples/%s.lua --emulator --speed 8 --calls 1 --prompts build/prompts "
        .. "--trace build/trace-%s.html 2>&1; echo \"exit $?\"", cpath, lua, ex, ex)):read("*a")
      assert.matches("exit 0", out)
      assert.matches("call terminated", out)
      local f = assert(io.open("build/trace-" .. ex .. ".html"))
      local html = f:read("*a")
      f:close()
      assert.matches("<svg", html)
      assert.matches("call terminated", html)
    end)
  end

  it("lets go of a flow that waits with --keep-waiting, and runs it to its end all the same", function()
    local lua = jit and "luajit" or "lua5.4"
    local cpath = os.getenv("LUA_CPATH") or ("./build/" .. lua .. "/?.so;;")
    local out = io.popen(string.format("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='%s' timeout 60 "
      .. "%s bin/graphcall run examples/ivr.lua --emulator --speed 8 --calls 1 --prompts build/prompts "
      .. "--keep-waiting 100 2>&1; echo \"exit $?\"", cpath, lua)):read("*a")
    assert.matches("exit 0", out)
    assert.matches("call terminated", out)
    assert.matches("1 flow%(s%) started, 1 ended, 0 failed", out)
    assert.matches("; %d+ flow%(s%) let go of while they waited", out)
    out = io.popen(string.format("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='%s' %s bin/graphcall run "
      .. "examples/ivr.lua --keep-waiting soon 2>&1; echo \"exit $?\"", cpath, lua)):read("*a")
    assert.matches("exit 2", out)
    assert.matches("graphcall: --keep-waiting: a positive number, got soon", out, 1, true)
  end)
end)
