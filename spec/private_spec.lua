-- Private by default: what a bot writes holds callers' numbers and voices (call logs, their
-- state, recordings, spoken prompts, the trace page), so it is readable by the bot's user
-- alone (0600 files, 0700 folders) even under a umask that would let everyone read it.
local E = require "emu"
local lfs = require "lfs"
local core = require "graphcall.core"

local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
local CPATH = os.getenv("LUA_CPATH") or ("./build/" .. E.lua .. "/?.so;;")

local function perms(path) return lfs.attributes(path, "permissions") end

describe("what a bot writes", function()
  local dir
  setup(function() dir = E.tmpdir() end)
  teardown(function() if dir then os.execute("rm -rf " .. dir) end end)

  it("is the bot's user's alone under umask 000: logs, state, recordings, prompts, the trace", function()
    local out = E.sh(string.format("umask 000; env LUA_PATH='%s' LUA_CPATH='%s' timeout 120 %s bin/graphcall run "
      .. "examples/ivr.lua --emulator --speed 4 --calls 1 --store %s/bot/store --prompts %s/bot/prompts "
      .. "--trace %s/trace.html 2>&1; echo \"exit $?\"", LUA_PATH, CPATH, E.lua, dir, dir, dir))
    assert.matches("exit 0", out)
    local seen = { log = 0, wav = 0, rec = 0 }
    for _, folder in ipairs { "bot", "bot/store", "bot/prompts", "bot/recordings" } do
      assert.equal("rwx------", perms(dir .. "/" .. folder), folder)
    end
    for _, folder in ipairs { "bot/store", "bot/prompts", "bot/recordings" } do
      for name in lfs.dir(dir .. "/" .. folder) do
        if name ~= "." and name ~= ".." then
          assert.equal("rw-------", perms(dir .. "/" .. folder .. "/" .. name), folder .. "/" .. name)
          if name:find("%.log$") then seen.log = seen.log + 1 end
          if folder == "bot/prompts" and name:find("%.wav$") then seen.wav = seen.wav + 1 end
          if folder == "bot/recordings" then seen.rec = seen.rec + 1 end
        end
      end
    end
    assert.equal(1, seen.log)            -- the one call's log
    assert.is_true(seen.wav >= 2)        -- the menu and the goodbye, spoken
    assert.equal(1, seen.rec)            -- the voicemail
    assert.equal("rw-------", perms(dir .. "/trace.html"))
  end)

  it("private_file makes a file 0600, keeping what it holds; private_dir a folder 0700", function()
    local path = dir .. "/open.txt"
    local f = assert(io.open(path, "w"))
    f:write("kept")
    f:close()
    os.execute("chmod 644 " .. path)
    assert.is_true(core.private_file(path))
    assert.equal("rw-------", perms(path))
    assert.equal("kept", io.open(path):read("*a"))
    assert.is_true(core.private_dir(dir .. "/d"))
    assert.equal("rwx------", perms(dir .. "/d"))
    assert.is_true(core.private_dir(dir .. "/d"))            -- there already: fine
    local ok, err = core.private_dir(path)                      -- a file is no folder
    assert.is_nil(ok)
    assert.matches("cannot make the folder .*open%.txt", err)
    ok, err = core.private_file(dir .. "/missing/x")
    assert.is_nil(ok)
    assert.matches("No such file", err)
    os.execute("ln -s " .. path .. " " .. dir .. "/link")
    assert.is_nil((core.private_file(dir .. "/link")))          -- no following a planted link
  end)
end)
