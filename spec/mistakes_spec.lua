-- A user's mistake is an error at their line: each mistake a new user makes, made here, gives an
-- error that names what is wrong, suggests what was meant, and points at the user's file and
-- line (not graphcall's); a flow that fails, fails the test (or the run) at once.
local T = require "graphcall.test"
local graphcall = require "graphcall"
local E = require "emu"

local HERE = "mistakes_spec%.lua"

-- run a flow through the harness; the error it raises, and the line the flow marked
local function flow_error(flow, o)
  local marked
  local opts = { flow = function(call) flow(call, function() marked = debug.getinfo(2, "l").currentline end) end }
  for k, v in pairs(o or {}) do opts[k] = v end
  local h = T.new(opts)
  local ok, err = pcall(h.incoming, h, { caller = { { on = "prompt", after = 200, press = "1" } } })
  h:close()
  assert.is_false(ok, "the mistake passed")
  return tostring(err), marked
end

local function at_line(err, line)
  assert.matches(HERE .. ":" .. line .. ": ", err)
end

describe("a mistake in a flow is an error at the flow's line", function()
  it("collect { promt = ... }: unknown option, did you mean 'prompt'", function()
    local err, line = flow_error(function(call, mark)
      call:answer()
      mark() call:collect { promt = "Press 1.", valid = "1" }
    end)
    at_line(err, line)
    assert.matches("collect: unknown option 'promt' %(did you mean 'prompt'%?%)", err)
  end)

  it("collect { vaild = ... }: did you mean 'valid'", function()
    local err = flow_error(function(call) call:answer() call:collect { prompt = "Press 1.", vaild = "1" } end)
    assert.matches("collect: unknown option 'vaild' %(did you mean 'valid'%?%)", err)
  end)

  it("play { txt = ... }: a prompt says what to play, did you mean 'text'", function()
    local err, line = flow_error(function(call, mark)
      call:answer()
      mark() call:play { txt = "hello" }
    end)
    at_line(err, line)
    assert.matches("play: a prompt: unknown option 'txt' %(did you mean 'text'%?%)", err)
  end)

  it("transfer { target = ... }: unknown option, the ones known, and 'to' is required", function()
    local err, line = flow_error(function(call, mark)
      call:answer()
      mark() call:transfer { target = "+14255550100" }
    end)
    at_line(err, line)
    assert.matches("transfer: unknown option 'target' %(known: replacesCallId, to, transferee%)", err)
    err = flow_error(function(call) call:answer() call:transfer {} end)
    assert.matches("transfer: 'to' is required", err)
  end)

  it("request('playPromt'): no action of a call, did you mean 'playPrompt'", function()
    local err, line = flow_error(function(call, mark)
      call:answer()
      mark() call:request("playPromt", {})
    end)
    at_line(err, line)
    assert.matches("request: 'playPromt' is no action of a call %(did you mean 'playPrompt'%?%)", err)
  end)

  it("an action's misspelt parameter, before anything is sent", function()
    local err = flow_error(function(call)
      call:answer { acceptedModalites = { "audio" } }
    end)
    assert.matches("request: answer: acceptedModalites: is not a parameter of answer %(did you mean "
      .. "'acceptedModalities'%?%)", err)
  end)

  it("fails the test at once with the flow's own error and line (no later, unrelated assertion)", function()
    local err, line = flow_error(function(call, mark)
      call:answer()
      mark() error("the flow's own bug")
    end)
    at_line(err, line)
    assert.matches("the flow's own bug", err)
  end)
end)

describe("a mistake in what the user configures is an error at their line", function()
  it("bot{}, client{}, the harness, bot:on: unknown keys and events, with suggestions", function()
    local client = graphcall.client { tenantId = "t", clientId = "a", clientSecret = "s",
                                      authority = "http://127.0.0.1:9" }
    local ok, err = pcall(function() return graphcall.bot { client = client, promts = "prompts" } end)
    assert.is_false(ok)
    assert.matches(HERE .. ":%d+: bot: unknown option 'promts' %(did you mean 'prompts'%?%)", err)
    ok, err = pcall(function() return graphcall.client { tenantId = "t", clientId = "a", clientSecret = "s",
                                                         authorty = "x" } end)
    assert.is_false(ok)
    assert.matches(HERE .. ":%d+: client: unknown option 'authorty' %(did you mean 'authority'%?%)", err)
    ok, err = pcall(function() return T.new { scenrio = {} } end)
    assert.is_false(ok)
    assert.matches(HERE .. ":%d+: graphcall.test.new: unknown option 'scenrio' %(did you mean 'scenario'%?%)", err)
    local h = T.new {}
    ok, err = pcall(function() h.bot:on("establised", function() end) end)
    assert.is_false(ok)
    assert.matches(HERE .. ":%d+: bot:on: unknown event 'establised' %(did you mean 'established'%?%)", err)
    h:close()
  end)

  it("a scenario step's event, a peer's outcome, a fault's key: named by their place", function()
    local ok, err = pcall(function()
      return T.new { scenario = { peers = { ["+14255550100"] = { answer = 100, { on = "promt", press = "1" } } } } }
    end)
    assert.is_false(ok)
    assert.matches(HERE .. ":%d+: scenario%.peers%[\"%+14255550100\"%]%[1%]%.on: unknown event 'promt' "
      .. "%(did you mean 'prompt'%?%)", err)
    ok, err = pcall(function() return T.new { scenario = { peers = { default = { outcome = "bussy" } } } } end)
    assert.is_false(ok)
    assert.matches("outcome: 'bussy' is none of busy, declined, timeout %(did you mean 'busy'%?%)", err)
    ok, err = pcall(function() return T.new { scenario = { faults = { { notification = "call:established",
                                                                        dorp = true } } } } end)
    assert.is_false(ok)
    assert.matches("scenario%.faults%[1%]: unknown option 'dorp' %(did you mean 'drop'%?%)", err)
    local h = T.new {}
    ok, err = pcall(function() return h:incoming { caller = { { on = "promtEnd", press = "1" } } } end)
    assert.is_false(ok)
    assert.matches(HERE .. ":%d+: incoming call%.caller%[1%]%.on: unknown event 'promtEnd' "
      .. "%(did you mean 'promptEnd'%?%)", err)
    h:close()
  end)

  it("a script returning { flw = ... }: names flw, suggests flow", function()
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write("return { flw = function(call) call:answer() end }\n")
    f:close()
    local script, err = T.load(path)
    os.remove(path)
    assert.is_nil(script)
    assert.matches("unknown option 'flw' %(did you mean 'flow'%?%)", err)
  end)

  it("an answer an http callback URI cannot get: said at the flow's line, not silently refused", function()
    local h = T.new { flow = function(call)
      call.bot.callbackUri = "http://bot.example.com/callback"   -- what an unset GRAPHCALL_CALLBACK_URI gave
      if not call:answer() then return end
    end }
    local ok, err = pcall(h.incoming, h, { caller = {} })
    h:close()
    assert.is_false(ok)
    assert.matches(HERE .. ":%d+: request: answer: callbackUri: must be an https:// URL", tostring(err))
  end)
end)

describe("failures are loud", function()
  it("an action the service refuses is logged at warn with Graph's error, though the flow ignores it", function()
    local lines = {}
    local h = T.new { scenario = { faults = { { request = "playPrompt", status = 400, code = "8508",
                                                message = "Action failed." } } },
      log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end,
      flow = function(call)
        call:answer()
        call:play "Hello."          -- refused; the flow does not look
        call:hangup()
      end }
    h:incoming { caller = {} }
    h:close()
    assert.matches("warn call [%x%-]+: playPrompt refused: HTTP 400 8508 Action failed%.", table.concat(lines, "\n"))
  end)

  it("graphcall run exits non-zero when a flow failed", function()
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write([[return { flow = function(call) call:answer() error("broken on purpose") end,
      scenario = { incoming = { { after = 100, caller = {} } } } }
]])
    f:close()
    local out = E.sh(string.format("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='%s' timeout 60 %s "
      .. "bin/graphcall run %s --emulator --calls 1 --quiet 2>&1; echo \"exit $?\"",
      os.getenv("LUA_CPATH") or ("./build/" .. E.lua .. "/?.so;;"), E.lua, path))
    os.remove(path)
    assert.matches("broken on purpose", out)
    assert.matches("1 flow%(s%) failed", out)
    assert.matches("exit 1", out)
  end)
end)
