-- Ports for the servers the specs start (redis-server, nginx, graphcall nodes).
local P = {}

-- Ports for servers to listen on, below the kernel's range of ephemeral ports (above it if
-- there is no room below): a port the kernel hands out to outgoing connections can be taken as
-- one's local end between our check and the server's bind. Each port is handed out once in a
-- process (two nodes of a cluster drawn the same free port collided), checked free here, and a
-- server that still finds its port taken is started again on new ones (redis_helper's R.start and R.cluster).
local given, span = {}, nil
local function ports_span()
  local lo, hi = 32768, 60999
  local f = io.open("/proc/sys/net/ipv4/ip_local_port_range")
  if f then
    local a, b = f:read("*n", "*n")
    f:close()
    if a and b then lo, hi = a, b end
  end
  if lo - 1024 >= 4000 then return math.max(1024, lo - 12000), lo - 1 end
  if 65535 - hi >= 4000 then return hi + 1, 65535 end
  return 1024, 65535
end

--- A free port on loopback for a server that binds it itself, never the same twice.
function P.take()
  if not span then
    math.randomseed(os.time() + (tonumber(tostring({}):match("(%x+)$"), 16) or 0) % 1000003)
    local a, b = ports_span()
    span = { a = a, n = b - a + 1, next = math.random(0, b - a) }
  end
  local loop = require("graphcall").loop { log = false }
  for _ = 1, span.n do
    local port = span.a + span.next
    span.next = (span.next + 1) % span.n
    if not given[port] then
      given[port] = true
      local srv = loop:listen({ port = port }, function() end)
      if srv then
        srv:close()
        loop:close()
        return port
      end
    end
  end
  loop:close()
  error("no free port left between " .. span.a .. " and " .. (span.a + span.n - 1))
end

return P
