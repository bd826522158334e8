-- A real redis-server for the specs: its own port on loopback and a temporary directory;
-- started and stopped here.
local E = require "emu"

local R = {}

R.available = os.execute("command -v redis-server >/dev/null") == true
  or os.execute("command -v redis-server >/dev/null") == 0

-- A port for a server of its own (spec/ports.lua: once per process, outside the ephemeral ports)
R.port = require("ports").take

-- A server's log says its port was taken
local function taken(log)
  return log:find("Address already in use", 1, true) ~= nil
end

-- Wait for a server just started (its folder, its redis-cli) to answer: true, or nil, the end
-- of its log, and whether its port was taken (read before the ping: what holds it may answer)
local function up(dir, cli)
  local log
  for _ = 1, 100 do
    log = E.sh("tail -3 " .. dir .. "/redis.log 2>&1")
    if taken(log) then break end
    if E.sh(cli .. " ping 2>&1"):find("PONG", 1, true) then return true end
    os.execute("sleep 0.05")
  end
  return nil, log, taken(log)
end

--- Start redis-server (o.appendonly: true for the append-only file; o.args: more options of
-- redis-server; o.password: what redis-cli authenticates with; o.cli: more options of
-- redis-cli, for TLS). {port, dir, cli, stop(), restart()}
function R.start(o)
  o = o or {}
  local r = { dir = E.tmpdir(), port = o.port or R.port() }
  local cli
  local function at(port)
    r.port = port
    cli = "redis-cli -p " .. port .. (o.password and (" --no-auth-warning -a '" .. o.password .. "'") or "")
      .. (o.cli and (" " .. o.cli) or "")
    r.cli = cli
  end
  at(r.port)
  local function run()
    local out = E.sh(string.format("redis-server --port %d --bind 127.0.0.1 --dir %s --daemonize yes "
      .. "--pidfile %s/redis.pid --logfile %s/redis.log --save '' --appendonly %s %s",
      r.port, r.dir, r.dir, r.dir, o.appendonly and "yes" or "no", o.args or ""))
    local ok, log, lost = up(r.dir, cli)
    if ok then return true end
    return nil, "redis-server did not start: " .. out .. log, lost
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
    assert(run())
  end
  function r.flushall() E.sh(cli .. " flushall") end
  function r.stop()
    E.sh(cli .. " shutdown nosave 2>/dev/null")
    os.execute("sleep 0.1")
    os.execute("rm -rf " .. r.dir)
  end
  for try = 1, 3 do
    local ok, err, lost = run()
    if ok then break end
    if not lost or o.port or try == 3 then error(err) end
    at(R.port())
  end
  return r
end

--- The places a multi-process spec runs on: {"one redis-server", false} and {"a Redis Cluster",
-- true}, the cluster left out under AddressSanitizer (said as pending): the C it runs is the
-- one-server run's, and the processes it starts would make the sanitized run CI's longest part.
-- `pending`: busted's, from the spec.
function R.kinds(pending)
  local out = { { "one redis-server", false } }
  if (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
    pending("on a Redis Cluster: not under AddressSanitizer")
  else
    out[2] = { "a Redis Cluster", true }
  end
  return out
end

--- A Redis Cluster: `o.masters` (3) masters with a replica each, `cluster-node-timeout`
-- `o.timeout` ms (1000), formed with `redis-cli --cluster create`; `o.args` more options of
-- every node, `o.password` (requirepass and masterauth), `o.tls` (a folder with ca.pem, r.pem
-- and r.key: TLS only, the bus and replication too) with `o.cli` (redis-cli's TLS options).
-- {seeds ("host:port,..."), nodes = {{port, cli, role(), kill(), start()}}, cli (redis-cli -c
-- on the first node), wait_ok(), stop()}
function R.cluster(o)
  o = o or {}
  local c = { nodes = {} }
  local addrs = {}
  for i = 1, (o.masters or 3) * 2 do
    local n = { dir = E.tmpdir() }
    local listen
    local function at(port, bus)
      n.port, n.bus = port, bus
      -- (a node stopped with SIGSTOP never answers: redis-cli would wait for it forever)
      n.cli = "timeout 10 redis-cli -p " .. port .. (o.cli and (" " .. o.cli) or "")
        .. (o.password and (" --no-auth-warning -a " .. o.password) or "")
      -- TLS (o.tls: the folder of ca.pem, r.pem, r.key): clients, replication and the bus
      listen = o.tls and string.format("--port 0 --tls-port %d --tls-cluster yes --tls-replication yes "
        .. "--tls-cert-file %s/r.pem --tls-key-file %s/r.key --tls-ca-cert-file %s/ca.pem --tls-auth-clients no",
        port, o.tls, o.tls, o.tls) or ("--port " .. port)
    end
    at(R.port(), R.port())
    local auth = o.password and ("--requirepass " .. o.password .. " --masterauth " .. o.password) or ""
    local function run()
      local out = E.sh(string.format("redis-server %s %s --cluster-port %d --bind 127.0.0.1 --dir %s "
        .. "--daemonize yes --pidfile %s/redis.pid --logfile %s/redis.log --save '' --appendonly no "
        .. "--cluster-enabled yes --cluster-config-file %s/nodes.conf --cluster-node-timeout %d "
        .. "--repl-diskless-sync-delay 0 %s",
        listen, auth, n.bus, n.dir, n.dir, n.dir, n.dir, o.timeout or 1000, o.args or ""))
      local ok, log, lost = up(n.dir, n.cli)
      if ok then return true end
      return nil, "redis-server (cluster node) did not start: " .. out .. log, lost
    end
    --- Start the node (again: on its ports; the first time, on new ones if its were taken).
    function n.start(first)
      for try = 1, first and 3 or 1 do
        local ok, err, lost = run()
        if ok then return end
        if not lost or try == 3 or not first then error(err, 0) end
        at(R.port(), R.port())
      end
    end
    function n.signal(sig) E.sh("kill -" .. sig .. " $(cat " .. n.dir .. "/redis.pid) 2>/dev/null") end
    function n.kill()
      E.sh("kill -9 $(cat " .. n.dir .. "/redis.pid) 2>/dev/null")
      os.execute("sleep 0.1")
    end
    function n.id() return (E.sh(n.cli .. " cluster myid 2>&1"):match("%x+")) end
    function n.role()
      return (E.sh(n.cli .. " role 2>&1"):match("^(%a+)"))
    end
    c.nodes[i] = n
  end
  local opts = (o.cli or "") .. (o.password and (" --no-auth-warning -a " .. o.password) or "")
  -- started and formed, or none left running
  local ok, err = pcall(function()
    for i, n in ipairs(c.nodes) do
      n.start(true)
      addrs[i] = "127.0.0.1:" .. n.port
    end
    c.seeds = table.concat(addrs, ",")
    c.cli = "redis-cli -c -p " .. c.nodes[1].port .. " " .. opts
    local out = E.sh("redis-cli " .. opts .. " --cluster create " .. table.concat(addrs, " ")
      .. " --cluster-replicas 1 --cluster-yes")
    if not out:find("All 16384 slots covered", 1, true) then error("redis-cli --cluster create: " .. out) end
  end)
  if not ok then
    for _, n in ipairs(c.nodes) do n.kill() os.execute("rm -rf " .. n.dir) end
    error(err, 0)
  end
  --- Wait until every live node says the cluster is ok and every live replica has synced.
  function c.wait_ok(seconds)
    for _ = 1, (seconds or 20) * 20 do
      local fine = true
      for _, n in ipairs(c.nodes) do
        local info = E.sh(n.cli .. " cluster info 2>&1")
        if not info:find("Could not connect", 1, true) then
          -- a replica that never synced cannot take over: wait for its link too
          local repl = E.sh(n.cli .. " info replication 2>&1")
          if not info:find("cluster_state:ok", 1, true)
            or (repl:find("role:slave", 1, true) and not repl:find("master_link_status:up", 1, true)) then
            fine = false
          end
        end
      end
      if fine then return true end
      os.execute("sleep 0.05")
    end
    error("the cluster did not come to cluster_state:ok")
  end
  --- The nodes that say they are masters now.
  function c.masters()
    local out = {}
    for _, n in ipairs(c.nodes) do
      if n.role() == "master" then out[#out + 1] = n end
    end
    return out
  end
  --- Wait until a master's replica has acknowledged everything it took (a replica's link up is
  -- not enough: its master may not count it online yet).
  function c.wait_replicated(master, seconds)
    for _ = 1, seconds or 20 do
      if tonumber(E.sh(master.cli .. " wait 1 1000 2>&1"):match("%d+") or 0) >= 1 then return true end
    end
    error("no replica of 127.0.0.1:" .. master.port .. " acknowledged its writes")
  end
  --- The node that is master of a key's slot now.
  function c.master_of(key)
    local slot = tonumber(E.sh(c.nodes[1].cli .. " cluster keyslot '" .. key .. "'"):match("%d+"))
    return c.master_of_slot(slot)
  end
  --- The master of a slot now, and the slot (`among`: the nodes asked, all by default).
  function c.master_of_slot(slot, among)
    for _, n in ipairs(among or c.nodes) do   -- each master says its own slots (others may lag)
      for _, r in ipairs(c.own_slots(n)) do
        if slot >= r[1] and slot <= r[2] then return n, slot end
      end
    end
  end
  --- The slot ranges a node says are its own ({{from, to}, ...}; none for a replica).
  function c.own_slots(node)
    local ranges = {}
    for line in E.sh(node.cli .. " cluster nodes 2>&1"):gmatch("[^\n]+") do
      if line:find("myself", 1, true) and line:find("master", 1, true) then
        for token in (line:match(" connected (.*)$") or ""):gmatch("%S+") do
          local a, b = token:match("^(%d+)%-(%d+)$")
          if a then ranges[#ranges + 1] = { tonumber(a), tonumber(b) }
          elseif token:match("^%d+$") then ranges[#ranges + 1] = { tonumber(token), tonumber(token) } end
        end
      end
    end
    return ranges
  end
  --- The replica of a master (a node of c.nodes), or nil: the first the master itself lists
  -- (`ROLE`; another node's view of a replica that just came back may lag).
  function c.replica_of(master)
    local out = E.sh(master.cli .. " role 2>&1")
    if not out:match("^master") then return nil end
    for port in out:gmatch("\n[%d.]+\n(%d+)\n") do
      for _, n in ipairs(c.nodes) do
        if n.port == tonumber(port) then return n end
      end
    end
  end
  --- Move a slot to another master as `redis-cli --cluster reshard` does (importing and
  -- migrating, its keys, then the slot's new owner told to every master), `pause` ms between
  -- the steps: commands on the slot meanwhile get ASK and TRYAGAIN. `masters`: the nodes told
  -- (by default every node that says it is a master; a stopped one would answer nothing).
  function c.move_slot(slot, to, pause, masters)
    local from = assert(c.master_of_slot(slot, masters))
    local function wait() os.execute("sleep " .. (pause or 0) / 1000) end
    E.sh(to.cli .. " cluster setslot " .. slot .. " importing " .. from.id())
    E.sh(from.cli .. " cluster setslot " .. slot .. " migrating " .. to.id())
    wait()
    local keys = E.sh(from.cli .. " cluster getkeysinslot " .. slot .. " 1000")
    local list = {}
    for k in keys:gmatch("[^\n]+") do list[#list + 1] = "'" .. k .. "'" end
    if #list > 0 then
      local auth = o.password and (" auth " .. o.password) or ""
      E.sh(from.cli .. " migrate 127.0.0.1 " .. to.port .. " '' 0 5000" .. auth .. " keys " .. table.concat(list, " "))
    end
    wait()
    for _, n in ipairs(masters or c.nodes) do
      if masters or n.role() == "master" then E.sh(n.cli .. " cluster setslot " .. slot .. " node " .. to.id()) end
    end
    return from
  end
  --- How many slots a master has.
  function c.slot_count(master)
    local n = 0
    for _, r in ipairs(c.own_slots(master)) do n = n + r[2] - r[1] + 1 end
    return n
  end
  --- Every key gone, on every master.
  function c.flushall()
    for _, n in ipairs(c.nodes) do
      if n.role() == "master" then E.sh(n.cli .. " flushall") end
    end
  end
  function c.stop()
    for _, n in ipairs(c.nodes) do
      E.sh(n.cli .. " shutdown nosave 2>/dev/null")
    end
    os.execute("sleep 0.1")
    for _, n in ipairs(c.nodes) do os.execute("rm -rf " .. n.dir) end
  end
  c.wait_ok()
  return c
end

return R
