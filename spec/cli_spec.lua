-- The command line (lua-argparse): help for the command and each subcommand, the version,
-- `graphcall check` (what a deployment needs, one line a problem), and `graphcall test`, the
-- README's way to run a user's specs, run here on the README's own hello flow and spec.
local E = require "emu"
local H = require "helper"

local CPATH = os.getenv("LUA_CPATH") or ("./build/" .. E.lua .. "/?.so;;")
local ROOT = io.popen("pwd"):read("*l")

-- bin/graphcall with the tree's modules; output and exit status
local function graphcall(args, env, dir)
  local out = E.sh(string.format("cd '%s' && env %s LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH='%s' "
    .. "timeout 120 %s '%s/bin/graphcall' %s 2>&1; echo \"exit $?\"", dir or ROOT, env or "", ROOT, ROOT,
    CPATH:gsub("%./", ROOT .. "/"), E.lua, ROOT, args))
  return out, tonumber(out:match("exit (%d+)\n?$"))
end

describe("graphcall --help", function()
  it("lists the commands, the environment, and prints the version", function()
    local out, rc = graphcall("--help")
    assert.equal(0, rc)
    for _, c in ipairs { "emulate", "run", "check", "test", "GRAPHCALL_TENANT_ID", "GRAPHCALL_CALLBACK_URI" } do
      assert.matches(c, out, 1, true)
    end
    out, rc = graphcall("--version")
    assert.equal(0, rc)
    assert.matches("^graphcall %S+ %(", out)
  end)

  it("shows every option of each command with its default", function()
    local out, rc = graphcall("run --help")
    assert.equal(0, rc)
    for _, o in ipairs { "--emulator", "--connect", "--listen", "--store", "--redis", "--redis-cluster",
                         "--redis-wait", "--redis-buckets", "--lease", "--public",
                         "--prompts", "--trace", "--speed", "--calls", "--keep-alive", "--keep-waiting",
                         "--on-stop", "--quiet",
                         "--realism", "--seed", "--loss", "1.5)", "GRAPHCALL_CLIENT_SECRET" } do
      assert.matches(o, out, 1, true)
    end
    out = graphcall("emulate --help")
    for _, o in ipairs { "--port", "--host", "--scenario", "--speed", "--cert", "--key", "--ca-file", "--quiet" } do
      assert.matches(o, out, 1, true)
    end
    out = graphcall("check --help")
    assert.matches("--store", out, 1, true)
  end)

  it("says a mistake in one line and exits 2", function()
    local out, rc = graphcall("run")
    assert.equal(2, rc)
    assert.matches("graphcall: missing argument 'flow'", out)
    out, rc = graphcall("run x.lua --on-stop never")
    assert.equal(2, rc)
    assert.matches("on%-stop", out)
    out, rc = graphcall("run examples/ivr.lua --connect http://127.0.0.1:1 --redis-cluster 10.0.0.5")
    assert.equal(2, rc)
    assert.matches("graphcall: --redis-cluster: 10.0.0.5 is not host:port", out, 1, true)
    out, rc = graphcall("run x.lua --redis-wait=-1")
    assert.equal(2, rc)
    assert.matches("--redis-wait: a whole number, 0 or more", out, 1, true)
    out, rc = graphcall("run x.lua --speed fast")   -- the option named, not only the problem
    assert.equal(2, rc)
    assert.matches("graphcall: --speed: a positive number, got fast", out, 1, true)
    out, rc = graphcall("run x.lua --redis 127.0.0.1:6379 --keep-waiting 1000")
    assert.equal(2, rc)
    assert.matches("graphcall: --keep-waiting: with --redis every flow is let go of after each event already",
                   out, 1, true)
    out, rc = graphcall("run x.lua --redis-buckets=0")
    assert.equal(2, rc)
    assert.matches("--redis-buckets: a whole number from 1 to 1024", out, 1, true)
    out, rc = graphcall("run x.lua --redis 127.0.0.1:6379 --redis-cluster 127.0.0.1:7000")
    assert.equal(2, rc)
    assert.matches("redis", out)
    out, rc = graphcall("frobnicate")
    assert.equal(2, rc)
    assert.matches("unknown command 'frobnicate'", out)
  end)
end)

describe("graphcall check", function()
  local emu
  setup(function() emu = E.start {} end)
  teardown(function() if emu then emu.stop() end end)

  it("against the emulator with writable folders: all is well", function()
    local dir = E.tmpdir()
    local out, rc = graphcall(string.format("check --connect %s --store '%s/with space' --prompts \"%s/it's\"",
                                            emu.url, dir, dir))
    assert.equal(0, rc, out)
    assert.matches("all is well", out)
    os.execute("rm -rf " .. dir)
  end)

  it("says each problem in one line, with what to fix, and exits 1", function()
    local out, rc = graphcall("check --store /proc/graphcall-cannot --prompts /proc/graphcall-neither",
      "-u GRAPHCALL_TENANT_ID -u GRAPHCALL_CLIENT_ID -u GRAPHCALL_CLIENT_SECRET "
      .. "GRAPHCALL_CALLBACK_URI=http://bot.example.com/cb")
    assert.equal(1, rc)
    assert.matches("graphcall check: GRAPHCALL_TENANT_ID is not set", out)
    assert.matches("graphcall check: GRAPHCALL_CLIENT_SECRET is not set", out)
    assert.matches("graphcall check: the callback URL http://bot.example.com/cb will not do: callbackUri: must be an "
      .. "https:// URL", out)
    assert.matches("graphcall check: the store folder: cannot make the folder /proc/graphcall%-cannot", out)
    assert.matches("graphcall check: the prompts folder", out)
  end)

  it("finds credentials the identity platform refuses before the first call", function()
    local sc = E.tmpdir()
    local f = assert(io.open(sc .. "/scenario.lua", "w"))
    f:write('return { credentials = { clientId = "graphcall-run", clientSecret = "the-right-one" } }\n')
    f:close()
    local strict = E.start { scenario = { credentials = { clientId = "graphcall-run", clientSecret = "right" } } }
    local out, rc = graphcall("check --connect " .. strict.url)
    strict.stop()
    os.execute("rm -rf " .. sc)
    assert.equal(1, rc)
    assert.matches("graphcall check: no token from", out)
  end)
end)

describe("graphcall test, the README's way to run a user's specs", function()
  it("runs the README's hello spec against the README's hello flow, from any folder", function()
    local dir = E.tmpdir()
    local flow = assert(io.open(dir .. "/hello.lua", "w"))
    flow:write(H.read(H.readme_flow()))
    flow:close()
    local text = H.read("README.md")
    local spec = text:match("```lua\n(local T = require \"graphcall.test\"\ndescribe%(\"hello\".-)```")
    assert(spec, "the README has no hello spec")
    os.execute("mkdir -p " .. dir .. "/spec")
    local sf = assert(io.open(dir .. "/spec/hello_spec.lua", "w"))
    sf:write(spec)
    sf:close()
    local cmd = text:match("```sh\n(graphcall test[^\n]*)\n")
    assert(cmd, "the README shows no graphcall test command")
    local out, rc = graphcall(cmd:gsub("^graphcall ", ""), nil, dir)
    os.execute("rm -rf " .. dir)
    assert.equal(0, rc, out)
    assert.matches("2 successes / 0 failures", out)
  end)
end)
