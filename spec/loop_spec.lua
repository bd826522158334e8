-- graphcall.loop's timers: a heap on (due, order made); a cancelled timer leaves it at once.
local graphcall = require "graphcall"

describe("the loop's timers", function()
  local loop
  before_each(function() loop = graphcall.loop { log = false, virtual = true } end)
  after_each(function() loop:close() end)

  local function run_all() loop:run_until(function() return loop.nheap == 0 end, 10000000) end

  it("fire in order of when they are due, those due together in the order they were made", function()
    local fired = {}
    for i, ms in ipairs { 30, 10, 20, 10, 0, 30 } do
      loop:timer(ms, function() fired[#fired + 1] = i end)
    end
    run_all()
    assert.same({ 5, 2, 4, 3, 1, 6 }, fired)
  end)

  it("leave the heap when cancelled, and never fire", function()
    local fired = {}
    local t = {}
    for i = 1, 5 do t[i] = loop:timer(i * 100, function() fired[#fired + 1] = i end) end
    t[2]:cancel()
    t[5]:cancel()
    assert.equal(3, loop.nheap)
    t[2]:cancel()   -- again: nothing more
    assert.equal(3, loop.nheap)
    run_all()
    assert.same({ 1, 3, 4 }, fired)
    t[1]:cancel()   -- after it fired: nothing
    assert.equal(0, loop.nheap)
  end)

  it("keep their order through any mix of timers made and cancelled", function()
    math.randomseed(7)
    for _ = 1, 20 do
      local live, fired = {}, {}
      local timers = {}
      for i = 1, 300 do
        local due = math.random(0, 50)
        timers[i] = loop:timer(due, function() fired[#fired + 1] = i end)
        live[i] = due
        if math.random() < 0.4 then
          local j = math.random(1, i)
          timers[j]:cancel()
          live[j] = nil
        end
      end
      local want = {}
      for i in pairs(live) do want[#want + 1] = i end
      table.sort(want, function(a, b) return live[a] < live[b] or (live[a] == live[b] and a < b) end)
      assert.equal(#want, loop.nheap)
      run_all()
      assert.same(want, fired)
    end
  end)

  it("can cancel one another, and themselves, as they fire", function()
    local fired = {}
    local b
    loop:timer(10, function()
      fired[#fired + 1] = "a"
      b:cancel()
    end)
    b = loop:timer(10, function() fired[#fired + 1] = "b" end)
    local c
    c = loop:timer(20, function()
      fired[#fired + 1] = "c"
      c:cancel()
    end)
    run_all()
    assert.same({ "a", "c" }, fired)
  end)

  it("repeat with every() until cancelled, leaving no timer behind", function()
    local n = 0
    local h
    h = loop:every(100, function()
      n = n + 1
      if n == 3 then h:cancel() end
    end)
    local other = 0
    local r = loop:every(250, function() other = other + 1 end)
    loop:run_until(function() return n == 3 end, 10000000)
    assert.equal(1, other)
    r:cancel()
    assert.equal(0, loop.nheap)
  end)
end)

describe("the loop's servers", function()
  it("serve while kept; one the collector takes is closed, and a kept one goes on", function()
    local loop = graphcall.loop { log = false }
    local kept = assert(loop:listen({ port = 0 }, function(req) req:respond(204) end))
    local dropped = assert(loop:listen({ port = 0 }, function(req) req:respond(204) end))
    local port = dropped:port()
    assert.equal(204, assert(loop:fetch { url = "http://127.0.0.1:" .. port .. "/" }).status)
    dropped = nil   -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    local res, err = loop:fetch { url = "http://127.0.0.1:" .. port .. "/", timeout = 2000 }
    assert.is_nil(res)
    assert.is_string(err.code)
    assert.equal(204, assert(loop:fetch { url = "http://127.0.0.1:" .. kept:port() .. "/" }).status)
    loop:close()
  end)
end)
