-- Every wait is bounded by what it waits for: the README's hello flow and example (a), with each
-- notification the emulator sends them lost in turn, end as their callers expect, and a lost
-- notification costs no more than 3 s of silence (the flow asks the service what happened).
-- Not lost here: the incoming call itself (the bot never hears of it) and a caller's key press
-- (Graph keeps no record of tones to ask for; collect's re-prompts cover it).
local T = require "graphcall.test"

local readme_flow = require("helper").readme_flow

local function recorded(v)
  for _, l in ipairs(v.log) do if l.what == "recorded" then return true end end
  return false
end

local SALES = "+14255550100"
local CASES = {
  { name = "sales", caller = { { on = "prompt", after = 1500, press = "1" } },
    ok = function(v) return v.transferred == SALES end },
  { name = "voicemail", caller = { { on = "prompt", after = 1000, press = "2" },
                                   { on = "record", after = 300, speak = 1500 } },
    ok = function(v) return recorded(v) and v.state == "terminated" end },
}

-- the labels of what the emulator notified for the call (each notification once)
local function labels(v)
  local out, seen = {}, {}
  for _, l in ipairs(v.log) do
    if l.what == "notify" and not seen[l.detail] and l.detail ~= "call:incoming" and l.detail ~= "call:tone" then
      seen[l.detail] = true
      out[#out + 1] = l.detail
    end
  end
  return out
end

local function each_loss(script, cases)
  for _, c in ipairs(cases) do
    it(c.name .. ": each notification lost in turn, the caller's end, at most 3 s more silence", function()
      local h = T.new { script = script }
      local base = h:incoming { caller = c.caller }
      h:close()
      assert.truthy(c.ok(base), c.name .. " without a loss")
      local list = labels(base)
      assert.is_true(#list >= 6, table.concat(list, " "))
      for _, label in ipairs(list) do
        h = T.new { script = script, scenario = setmetatable({ faults = { { notification = label, drop = true } } },
                                                              { __index = T.load(script).scenario }) }
        local v = h:incoming { caller = c.caller }
        assert.truthy(c.ok(v), c.name .. " with " .. label .. " lost")
        assert.is_true(v.flow.finished, label)
        -- a recording's lost end is known once its limits have passed (initial silence, max
        -- duration 60 s, silence after: Graph gives no earlier word), anything else's at once
        local allowed = label:find("recordResponse", 1, true) and 3000 + 70000 or 3000
        local longer = T.duration(v) - T.duration(base)
        assert.is_true(longer <= allowed, label .. " lost: " .. longer .. " ms longer")
        h:close()
      end
    end)
  end
end

describe("a lost notification, the README's hello flow", function()
  local path = readme_flow()
  each_loss(path, CASES)
  teardown(function() os.remove(path) end)
end)

describe("a lost notification, example (a)", function()
  each_loss("examples/ivr.lua", {
    CASES[1], CASES[2],
    { name = "account", caller = { { on = "prompt", after = 500, press = "3" },
                                   { on = "promptEnd", after = 500, press = "1234#" } },
      ok = function(v) return v.pressed == "31234#" and v.state == "terminated" end },
  })
end)
