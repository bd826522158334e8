-- Text to speech: a child process on the loop (no shell, the loop goes on while it speaks), a
-- voice of the user's own (a command template or a function), and errors that say what to fix.
local ivr = require "graphcall.ivr"
local wav = require "graphcall.wav"
local files = require "graphcall.files"
local graphcall = require "graphcall"
local T = require "graphcall.test"

local ROOT = "build/tts spec"

local function fresh(name)
  local dir = ROOT .. "/" .. name
  assert(files.mkdirs(dir))
  for _, f in ipairs(files.list(dir) or {}) do os.remove(dir .. "/" .. f) end
  return dir
end

local function chime(path)
  local f = assert(io.open(path, "wb"))
  f:write(wav.tone { ms = 400, hz = 440 })
  f:close()
end

describe("text to speech", function()
  it("speaks any text into a folder with spaces and quotes in its path, no shell between", function()
    local dir = fresh("it's \"here\"")
    local text = [[-- it's "quoted", $HOME `date` ; rm -rf /]]
    local name = ivr.speak(dir, text)
    local f = assert(io.open(dir .. "/" .. name, "rb"))
    local info = assert(wav.check(f:read("*a")))
    f:close()
    assert.is_true(info.ms > 500)
    assert.equal(name, ivr.speak(dir, text))        -- made once: the same file again
    assert.same({ name }, files.list(dir))          -- no temporary file left behind
  end)

  it("runs the voice as a child process while the loop goes on", function()
    local dir = fresh("loop")
    chime(dir .. "/chime.wav")
    local loop = graphcall.loop { log = false }
    local flag = dir .. "/go"
    -- the voice waits until the loop has run a timer: were the loop blocked while it speaks,
    -- the timer could never run and the voice would give up after 5 s
    local voice = { "sh", "-c", 'for i in $(seq 500); do [ -e "$1" ] && exec cp "$2" "$3"; sleep 0.01; done; exit 7',
                    "voice", flag, dir .. "/chime.wav", "{path}" }
    local name, err
    loop:spawn(function()
      local ok, e = pcall(ivr.speak, dir, "Hello.", nil, { loop = loop, speak = voice })
      if ok then name = e else err = e end
      loop:stop()
    end)
    loop:timer(20, function() assert(io.open(flag, "wb")):close() end)
    loop:run()
    loop:close()
    assert.is_nil(err)
    assert.matches("^tts%-%x+%.wav$", name)
  end)

  it("takes a function as the voice, and the harness says what was spoken", function()
    local dir = fresh("function")
    chime(dir .. "/chime.wav")
    local asked = {}
    local h = T.new { prompts = dir, flow = function(call)
      call:answer()
      call:play { text = "Your balance is 42 euros.", voice = "en-gb" }
      call:hangup()
    end }
    h.bot.speak = function(text, path, voice, run)
      asked[#asked + 1] = voice .. ": " .. text
      local res = assert(run { "cp", dir .. "/chime.wav", path })
      return res.status == 0
    end
    local v = h:incoming { caller = {} }
    h:close()
    assert.same({ "en-gb: Your balance is 42 euros." }, asked)
    assert.equal("Your balance is 42 euros.", v.prompts[1].text)
    assert.equal(400, v.prompts[1].ms)
  end)

  it("says a voice program that is not there, with what to install", function()
    local dir = fresh("missing")
    local ok, e = pcall(ivr.speak, dir, "Hi.", nil, { speak = { "no-such-voice-program", "{path}", "{text}" } })
    assert.is_false(ok)
    assert.matches("text%-to%-speech: no%-such%-voice%-program: No such file or directory", e)
    assert.same({}, files.list(dir))
  end)

  it("says what a failing voice program printed and its status", function()
    local dir = fresh("failing")
    local ok, e = pcall(ivr.speak, dir, "Hi.", nil,
                        { speak = { "sh", "-c", "echo 'voice not installed' >&2; exit 3" } })
    assert.is_false(ok)
    assert.equal("text-to-speech: sh exited with status 3: voice not installed", e)
  end)

  it("refuses what Graph would not play", function()
    local dir = fresh("notwav")
    local ok, e = pcall(ivr.speak, dir, "Hi.", nil, { speak = { "cp", "/etc/hostname", "{path}" } })
    assert.is_false(ok)
    assert.matches("the voice made no WAV Graph plays", e)
    assert.same({}, files.list(dir))
  end)

  it("says a prompts folder it cannot write to, not a missing program", function()
    local dir = fresh("unwritable")
    chime(dir .. "/file")
    local ok, e = pcall(ivr.speak, dir .. "/file", "Hi.")   -- a file where the folder should be
    assert.is_false(ok)
    assert.matches("the prompts folder .-/file is not writable %(.*Not a directory%)", e)
    assert.not_matches("installed", e)
  end)

  it("refuses a voice that is neither a template nor a function, at the user's line", function()
    local h = T.new { flow = function() end }
    local ok, e = pcall(graphcall.bot, { client = h.client, speak = "espeak-ng", listen = { port = 0 } })
    h:close()
    assert.is_false(ok)
    assert.matches("^spec/tts_spec%.lua:%d+: bot: speak: a command template %(a table%) or a function, got string", e)
  end)

  it("has graphcall.core's spawn and reap for nginx: no shell, never blocking, the output in a file", function()
    local core = require "graphcall.core"
    local out, flag = ROOT .. "/spawn out", ROOT .. "/spawn go"
    os.remove(flag)
    local pid = assert(core.spawn({ "sh", "-c", 'while [ ! -e "$1" ]; do sleep 0.01; done; echo "$0 said it"; exit 4',
                                    "it's me", flag }, out))
    assert.is_nil(core.reap(pid))                    -- running (until the flag): the caller asks again later
    assert(io.open(flag, "w")):close()
    local status
    for _ = 1, 500 do
      status = core.reap(pid)
      if status ~= nil then break end
      os.execute("sleep 0.01")
    end
    assert.equal(4, status)
    assert.is_false(core.reap(pid))                  -- reaped: no child any more
    local f = assert(io.open(out, "rb"))
    assert.equal("it's me said it\n", f:read("*a"))
    f:close()
    local nope, err = core.spawn({ "no-such-program-here" }, out)
    assert.is_nil(nope)
    assert.equal("spawn", err.code)
    assert.equal("no-such-program-here: No such file or directory", err.message)
  end)

  it("finds the programs it needs on the PATH without a shell (graphcall check)", function()
    assert.matches("/espeak%-ng$", files.which("espeak-ng"))
    assert.matches("/sox$", files.which("sox"))
    assert.is_nil(files.which("no-such-program-here"))
    assert.is_nil(files.which("../bin/sh"))                    -- a name, never a path
  end)
end)
