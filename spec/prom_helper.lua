-- Debian's promtool and a real Prometheus server on loopback, for the specs of /metrics.
local E = require "emu"
local N = require "ngx_helper"

local P = {}

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

--- A file's text, or "" when it is not there yet (`helper.read_if`).
P.read = require("helper").read_if

--- promtool's verdict on a text: its output, and true when it passed.
function P.promtool(text)
  local dir = E.tmpdir()
  write(dir .. "/m.txt", text)
  local out = E.sh("promtool check metrics < " .. dir .. "/m.txt 2>&1; echo \"exit $?\"")
  os.execute("rm -rf " .. dir)
  return out, out:match("exit (%d+)\n?$") == "0"
end

--- The value of a series in a scraped text (nil when absent).
function P.value(text, series)
  for line in text:gmatch("[^\n]+") do
    local name, v = line:match("^(.+) (%S+)$")
    if name == series then return tonumber(v) end
  end
end

--- A Prometheus server scraping 127.0.0.1:target every second, in dir:
-- {query(q) -> the first result or nil, log(), stop()}.
function P.server(dir, target, loop)
  local cjson = require "cjson"
  local port = N.free_port()
  write(dir .. "/prometheus.yml", string.format([[
global: { scrape_interval: 1s, scrape_timeout: 1s }
scrape_configs:
  - job_name: graphcall
    static_configs: [ { targets: ["127.0.0.1:%d"] } ]
]], target))
  local pid = E.sh(string.format("exec prometheus --config.file=%s/prometheus.yml --storage.tsdb.path=%s/tsdb "
    .. "--web.listen-address=127.0.0.1:%d >%s/prometheus.log 2>&1 & echo $!", dir, dir, port, dir)):match("%d+")
  local p = {}
  function p.query(q)
    local res = loop:fetch { url = string.format("http://127.0.0.1:%d/api/v1/query?query=%s", port, q) }
    local doc = res and res.status == 200 and cjson.decode(res.body)
    return doc and doc.data and doc.data.result and doc.data.result[1] or nil
  end
  --- the first result of q once one is there and ok(result) says so (up to 60 s: the server
  -- starts, then scrapes every second)
  function p.wait(q, ok)
    for _ = 1, 600 do
      local r = p.query(q)
      if r and (not ok or ok(r)) then return r end
      os.execute("sleep 0.1")
    end
  end
  function p.log() return P.read(dir .. "/prometheus.log") end
  function p.stop()
    if pid then
      os.execute("kill " .. pid .. " 2>/dev/null")
      for _ = 1, 50 do
        if not E.sh("kill -0 " .. pid .. " 2>&1 && echo alive"):find("alive") then break end
        os.execute("sleep 0.1")
      end
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
    end
    pid = nil
  end
  return p
end

return P
