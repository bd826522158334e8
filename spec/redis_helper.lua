-- A real redis-server for the specs: its own port on loopback and a temporary directory;
-- started and stopped here.
local E = require "emu"

local R = {}

R.available = os.execute("command -v redis-server >/dev/null") == true
  or os.execute("command -v redis-server >/dev/null") == 0

--- Start redis-server (o.appendonly: true for the append-only file; o.args: more options of
-- redis-server; o.password: what redis-cli authenticates with; o.cli: more options of
-- redis-cli, for TLS). {port, dir, cli, stop(), restart()}
function R.start(o)
  o = o or {}
  local N = require "ngx_helper"
  local r = { dir = E.tmpdir(), port = o.port or N.free_port() }
  local cli = "redis-cli -p " .. r.port .. (o.password and (" --no-auth-warning -a '" .. o.password .. "'") or "")
    .. (o.cli and (" " .. o.cli) or "")
  r.cli = cli
  local function run()
    local out = E.sh(string.format("redis-server --port %d --bind 127.0.0.1 --dir %s --daemonize yes "
      .. "--pidfile %s/redis.pid --logfile %s/redis.log --save '' --appendonly %s %s",
      r.port, r.dir, r.dir, r.dir, o.appendonly and "yes" or "no", o.args or ""))
    for _ = 1, 100 do
      if E.sh(cli .. " ping 2>&1"):find("PONG", 1, true) then return end
      os.execute("sleep 0.05")
    end
    error("redis-server did not start: " .. out)
  end
  function r.kill()
    E.sh("kill -9 $(cat " .. r.dir .. "/redis.pid) 2>/dev/null")
    os.execute("sleep 0.2")
  end
  --- Restart: SIGKILL, or `graceful` (SHUTDOWN: the append-only file is written out first).
  function r.restart(graceful)
    if graceful then
      E.sh(cli .. " shutdown 2>/dev/null")
      for _ = 1, 100 do
        if not E.sh(cli .. " ping 2>&1"):find("PONG", 1, true) then break end
        os.execute("sleep 0.02")
      end
    else
      r.kill()
    end
    run()
  end
  function r.stop()
    E.sh(cli .. " shutdown nosave 2>/dev/null")
    os.execute("sleep 0.1")
    os.execute("rm -rf " .. r.dir)
  end
  run()
  return r
end

return R
