-- The README's five-minute flow, taken from the README itself, runs as the README says.
local T = require "graphcall.test"

local readme_flow = require("helper").readme_flow

describe("the README's flow", function()
  local path
  setup(function() path = readme_flow() end)
  teardown(function() os.remove(path) end)

  it("transfers a caller who presses 1", function()
    local h = T.new { script = path }
    local call = h:incoming { caller = { { on = "prompt", after = 1000, press = "1" } } }
    assert.equal("+14255550100", call.transferred)
    h:close()
  end)

  it("hangs up after three silences", function()
    local h = T.new { script = path }
    local call = h:incoming { caller = {} }
    assert.equal("", call.pressed)
    assert.equal("terminated", call.state)
    h:close()
  end)

  it("records a message for a caller who presses 2", function()
    local h = T.new { script = path }
    local call = h:incoming { caller = { { on = "prompt", after = 500, press = "2" },
                                         { on = "record", after = 100, speak = 1500 } } }
    local recorded
    for _, l in ipairs(call.log) do if l.what == "recorded" then recorded = l.detail end end
    assert.matches("1500 ms of speech", recorded)
    h:close()
  end)
end)
