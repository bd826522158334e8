-- What the harness (graphcall.test) gives a tester: what played (text, file or URI, when, cut
-- short or not), the keys, the recordings, the transfer (nil when there was none) and every
-- request the bot made on the call, refused ones included.
local T = require "graphcall.test"
local wav = require "graphcall.wav"
local files = require "graphcall.files"

local DIR = "build/harness-prompts"

local function harness(flow)
  assert(files.mkdirs(DIR))
  local f = assert(io.open(DIR .. "/chime.wav", "wb"))
  f:write(wav.tone { ms = 700, hz = 440 })
  f:close()
  return T.new { flow = flow, prompts = DIR }
end

local function ended_at(view)
  for _, l in ipairs(view.log) do if l.what == "ended" then return l.t end end
end

describe("the harness's view of a call", function()
  it("lists what played: spoken text, a file of the prompts folder, in order with their times", function()
    local h = harness(function(call)
      call:answer()
      assert(call:play { { text = "Welcome to Contoso." }, { file = "chime.wav" } })
      assert(call:play "Goodbye.")
      call:hangup()
    end)
    local v = h:incoming { caller = {} }
    assert.equal(3, #v.prompts)
    assert.equal("Welcome to Contoso.", v.prompts[1].text)
    assert.is_nil(v.prompts[1].file)
    assert.equal("chime.wav", v.prompts[2].file)
    assert.is_nil(v.prompts[2].text)
    assert.equal(700, v.prompts[2].ms)
    assert.equal("Goodbye.", v.prompts[3].text)
    assert.equal(v.prompts[1].at + v.prompts[1].ms, v.prompts[2].at)   -- one request, back to back
    assert.is_true(v.prompts[3].at >= v.prompts[2].at + 700)
    for _, p in ipairs(v.prompts) do
      assert.is_false(p.cutShort)
      assert.matches("^http://127%.0%.0%.1:%d+/prompts/", p.uri)
    end
    assert.is_nil(v.transferred)             -- nothing was transferred: nil, not a null that is truthy
    assert.same({}, v.recordings)
    h:close()
  end)

  it("says which prompt the caller's hang-up cut short, and leaves out what never started", function()
    local h = harness(function(call)
      call:answer()
      call:play { { file = "chime.wav" }, { text = "A long message that the caller will not wait for." },
                  { file = "chime.wav" } }
      call:hangup()
    end)
    local v = h:incoming { caller = { { on = "prompt", after = 1000, hangup = true } } }
    assert.equal(2, #v.prompts)
    assert.is_false(v.prompts[1].cutShort)   -- 700 ms, over before the hang-up
    assert.is_true(v.prompts[2].cutShort)
    assert.equal("A long message that the caller will not wait for.", v.prompts[2].text)
    h:close()
  end)

  it("lists recordings with their length and reason", function()
    local h = harness(function(call)
      call:answer()
      assert(call:record { prompt = "Speak after the beep.", maxDuration = 10, download = false })
      call:hangup()
    end)
    local v = h:incoming { caller = { { on = "record", after = 300, speak = 2000 } } }
    assert.equal(1, #v.recordings)
    local r = v.recordings[1]
    assert.equal(2000, r.ms)
    assert.equal("maxSilenceTimeout", r.completionReason)
    assert.matches("/emulator/recordings/", r.recordingLocation)
    assert.is_true(r.at >= v.prompts[1].at + v.prompts[1].ms)   -- after the prompt and its beep
    assert.equal("Speak after the beep.", v.prompts[1].text)
    h:close()
  end)

  it("keeps every request on the call, refused ones too: one that came after the end is seen", function()
    local h = harness(function(call)
      call:answer()
      call:play "Hello, and welcome to the Contoso helpline."      -- the caller hangs up meanwhile
    end)
    local v = h:incoming { caller = { { on = "prompt", after = 200, hangup = true } } }
    -- what a stale sender does (another process, a handler with an old id): play on a call that ended
    local chime = { mediaInfo = { uri = h.bot.promptBase .. "chime.wav" } }
    local res, err = h.client:playPrompt(v.id, { prompts = { chime } })
    assert.is_nil(res)
    assert.equal(404, err.status)
    v = h:view(v.id)
    local after = {}
    for _, r in ipairs(v.requests) do
      assert.is_number(r.status)
      if r.at >= ended_at(v) then after[#after + 1] = r end
    end
    assert.equal("answer", v.requests[1].action)
    assert.equal(202, v.requests[1].status)
    assert.equal("playPrompt", v.requests[2].action)
    assert.equal(200, v.requests[2].status)
    assert.equal(1, #after)
    assert.equal("playPrompt", after[1].action)
    assert.equal("/playPrompt", after[1].path)
    assert.equal(404, after[1].status)
    assert.equal("8522", after[1].error.code)
    h:close()
  end)

  it("shows a well-behaved flow sending nothing after the caller hung up", function()
    local h = T.new { script = "examples/ivr.lua" }
    local v = h:incoming { caller = { { on = "prompt", after = 500, hangup = true } } }
    assert.is_true(#v.requests >= 2)
    for _, r in ipairs(v.requests) do
      assert.is_true(r.at <= ended_at(v), r.action)
      assert.is_true(r.status < 400, r.action)
    end
    h:close()
  end)
end)
