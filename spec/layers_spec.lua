-- tools/layers.lua (in make lint): the Lua half reads top-down. Run here on copies of lua/
-- with a fault put in, so the check is known to catch what it is for.
local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit $?\"")
  local out = p:read("*a")
  p:close()
  return out
end

local function copy_with(edit)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. " && cp -r lua " .. dir .. "/"))
  if edit then
    local path = dir .. "/lua/graphcall/" .. edit.file
    local f = assert(io.open(path, "ab"))
    f:write("\n", edit.add, "\n")
    f:close()
  end
  return dir
end

local function check(dir)
  local out = sh("lua5.4 tools/layers.lua " .. dir)
  os.execute("rm -rf " .. dir)
  return out
end

describe("the layer check", function()
  it("passes on the project as it is", function()
    assert.matches("every require downward, no circle\nexit 0", sh("lua5.4 tools/layers.lua"))
  end)

  it("fails on a require that runs upward, a lazy one too, naming file and line", function()
    local out = check(copy_with { file = "tracker.lua",
      add = "local function later() return require('graphcall.bot') end" })
    assert.matches("lua/graphcall/tracker.lua:%d+: graphcall.tracker %(wire%) requires graphcall.bot %(hosts%)", out)
    assert.matches("exit 1", out)
  end)

  it("fails on a circle inside one layer", function()
    local out = check(copy_with { file = "call.lua", add = "local _ = require 'graphcall.ivr'" })
    assert.matches("a circle: graphcall.[%a.]+ %-> graphcall.[%a.]+ %-> graphcall.[%a.]+", out)
    assert.matches("exit 1", out)
  end)

  it("fails on a module in no layer", function()
    local dir = copy_with()
    local f = assert(io.open(dir .. "/lua/graphcall/stray.lua", "wb"))
    f:write("return {}\n")
    f:close()
    local out = check(dir)
    assert.matches("graphcall.stray is in no layer", out)
    assert.matches("exit 1", out)
  end)
end)
