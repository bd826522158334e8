-- graphcall.redis against a real redis-server on loopback: the standalone transport (a TCP
-- stream on graphcall.loop) and the nginx one (cosockets), one codec (hiredis, in the core).
local cjson = require "cjson"
local graphcall = require "graphcall"
local core = require "graphcall.core"
local redis = require "graphcall.redis"
local R = require "redis_helper"
local N = require "ngx_helper"

describe("graphcall.redis", function()
  local srv, loop, r

  setup(function()
    srv = R.start()
    loop = graphcall.loop { log = false }
    r = redis.new { port = srv.port, loop = loop }
  end)

  teardown(function()
    if r then r:close() end
    if loop then loop:close() end
    if srv then srv.stop() end
  end)

  it("formats commands with hiredis and reads every kind of reply", function()
    assert.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n", core.resp_command("SET", "k", 12))
    local rd = core.resp_reader()
    rd:feed("+OK\r\n:-5\r\n$-1\r\n*3\r\n$2\r\nab\r\n-ERR in\r\n*0\r\n-WRONGTYPE no\r\n$5\r\nab")
    assert.same({ true, "OK" }, { rd:get() })
    assert.same({ true, -5 }, { rd:get() })
    assert.same({ true, core.null }, { rd:get() })
    assert.same({ true, { "ab", { err = "ERR in" }, {} } }, { rd:get() })
    assert.same({ true, nil, "WRONGTYPE no" }, { rd:get() })
    assert.same({ false }, { rd:get() })            -- "$5\r\nab": not all there yet
    rd:feed("cde\r\n")
    assert.same({ true, "abcde" }, { rd:get() })
    rd:feed("?bad\r\n")
    assert.has_error(function() rd:get() end)
    assert.has_error(function() core.resp_command("SET", {}) end)
  end)

  it("runs commands on the loop and waits for their answers", function()
    assert.equal("OK", r:call("SET", "greeting", "hello"))
    assert.equal("hello", r:call("GET", "greeting"))
    assert.equal(graphcall.null, r:call("GET", "nothing"))
    assert.equal(3, r:call("RPUSH", "list", "a", "b", "c"))
    assert.same({ "a", "b", "c" }, r:call("LRANGE", "list", 0, -1))
    local v, err = r:call("INCR", "greeting")
    assert.is_nil(v)
    assert.equal("redis", err.code)
    assert.truthy(err.message:find("not an integer", 1, true))
  end)

  it("pipelines: a thousand commands at once, answered in order", function()
    local got, n = {}, 1000
    for _ = 1, n do
      r:call("INCR", "counter", function(v) got[#got + 1] = v end)
    end
    assert.is_true(loop:run_until(function() return #got == n end, 5000))
    for i = 1, n do assert.equal(i, got[i]) end
    assert.equal(0, loop.busy)
  end)

  it("fails what was not answered when the server goes, and connects again after", function()
    local gone = R.start()
    local r2 = redis.new { port = gone.port, loop = loop }
    assert.equal("PONG", r2:call("PING"))
    local result, err
    r2:call("BLPOP", "never", 0, function(v, e) result, err = v, e end)   -- waits forever
    loop:run_until(function() return false end, 100)
    gone.restart()                                       -- SIGKILL, then a new server
    assert.is_true(loop:run_until(function() return err ~= nil end, 5000))
    assert.is_nil(result)
    assert.equal("closed", err.code)
    assert.equal("PONG", r2:call("PING"))                -- a new connection
    r2:close()
    gone.stop()
    local r3 = redis.new { port = gone.port, loop = loop, timeout = 500 }
    local v, cerr = r3:call("PING")
    assert.is_nil(v)
    assert.equal("closed", cerr.code)                    -- refused: nothing listens
  end)

  it("refuses names it would have to look up (that would block the loop)", function()
    local r4 = redis.new { host = "redis.example.com", loop = loop }
    local v, err = r4:call("PING")
    assert.is_nil(v)
    assert.equal("connect", err.code)
    assert.truthy(err.message:find("numeric", 1, true))
  end)

  it("runs inside nginx on cosockets", function()
    local port = N.free_port()
    local n = N.start { port = port, workers = 1, locations = string.format([[
      location = /r { content_by_lua_block {
        local r = require("graphcall.redis").new { port = %d }
        local out = {}
        out.set = r:call("SET", "ngx", "from nginx")
        out.get = r:call("GET", "ngx")
        out.list = r:call("LRANGE", "list", 0, -1)
        local _, err = r:call("INCR", "ngx")
        out.err = err.code
        local many = {}
        for i = 1, 50 do many[i] = r:call("INCR", "ngxcount") end
        out.last = many[50]
        ngx.print(require("cjson").encode(out)) } }]], srv.port) }
    local res = assert(loop:fetch { url = "http://127.0.0.1:" .. port .. "/r" })
    n.stop()
    assert.equal(200, res.status)
    local out = cjson.decode(res.body)
    assert.same({ set = "OK", get = "from nginx", list = { "a", "b", "c" }, err = "redis", last = 50 }, out)
  end)
end)
