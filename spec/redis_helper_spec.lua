-- The specs' own Redis servers: the ports they take (spec/ports.lua), and a port found taken at start (two
-- cluster nodes were once drawn one port, and CI failed on "Address already in use").
local R = require "redis_helper"

describe("the specs' redis-server helper", function()
  if not R.available then
    pending("redis-server is not installed")
    return
  end

  local function ephemeral()
    local f = assert(io.open("/proc/sys/net/ipv4/ip_local_port_range"))
    local lo, hi = f:read("*n", "*n")
    f:close()
    return lo, hi
  end

  it("hands out each port once, outside the kernel's ephemeral ports", function()
    local lo, hi = ephemeral()
    local seen = {}
    for _ = 1, 500 do
      local p = R.port()
      assert.is_nil(seen[p])
      seen[p] = true
      assert.is_true(p < lo or p > hi)
    end
  end)

  -- the port R.port gives next is held by another server (which would answer a ping, too)
  local function holding(fn)
    local port, holder = R.port, nil
    R.port = function()
      local p = port()
      if not holder then
        holder = R.start { port = p }
        return p
      end
      return p
    end
    local ok, err = pcall(fn)
    R.port = port
    if holder then holder.stop() end
    assert(ok, err)
    return holder.port
  end

  it("starts a server on another port when its own is taken", function()
    local srv
    local held = holding(function() srv = R.start() end)
    finally(function() srv.stop() end)
    assert.are_not.equal(held, srv.port)
    assert.matches("PONG", io.popen(srv.cli .. " ping"):read("*a"))
  end)

  for _, kind in ipairs(R.kinds(pending)) do
    if kind[2] then
      it("forms a cluster when a node's port is taken", function()
        local c
        local held = holding(function() c = R.cluster() end)
        finally(function() c.stop() end)
        for port in c.seeds:gmatch(":(%d+)") do assert.are_not.equal(held, tonumber(port)) end
        assert.matches("cluster_state:ok", io.popen(c.cli .. " cluster info"):read("*a"))
      end)
    end
  end
end)
