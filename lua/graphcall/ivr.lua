--- IVR building blocks for flows: what FreeSWITCH's playAndGetDigits and Twilio's Gather give
-- IVR authors, built on what Graph offers (prompts from URLs, one key press per
-- notification). They are methods of the call object in a flow (`graphcall.call`):
--
--   call:answer()                                     incoming calls
--   call:play { text = "Welcome" }                    or file =, uri =, prompts = {...}, a list
--   local digits, err = call:collect { prompt = { text = "Enter your PIN" }, min = 4, max = 4,
--     terminator = "#", tries = 3, noInput = { text = "..." }, noMatch = { text = "..." } }
--   local rec = call:record { prompt = { text = "After the beep" }, maxDuration = 30 }
--   call:transfer { to = "+14255550100" }
--   call:hangup()
--
-- Every verb returns a value, or nil and an error: `hangup` (the caller hung up; `cause` is
-- the resultInfo), `noInput`, `noMatch`, `failed` (an operation failed; `resultInfo`), or the
-- client's error for a request that failed. Playing and recording share one queue per call
-- on the service (REFERENCE.md §1.6): the verbs wait for their own operations, so the queue
-- never shows.
--
-- Prompts: Graph plays 16 kHz mono 16-bit WAV from a URL, at most 20 per request, and has no
-- text-to-speech. A prompt is `{uri = "https://..."}` (played as is), `{file = "menu.wav"}` (a
-- file of the bot's prompts folder, served by its listener), or `{text = "..."}` (spoken with
-- espeak-ng, resampled by sox to what Graph plays, cached in the prompts folder by the text's
-- hash); a string is text. Longer lists are split into requests of 20.
-- @module graphcall.ivr
local core = require "graphcall.core"
local wav = require "graphcall.wav"
local strict = require "graphcall.strict"
local files = require "graphcall.files"
local callmod = require "graphcall.call"

local M = {}
local Call = callmod.Call
local err = callmod.err

--- The voice spoken text gets when a prompt does not name one (espeak-ng's name).
M.VOICE = "en-us"

local own_loop   -- for `speak` outside a bot: a loop of its own, made when first needed

-- Run a program with `run` (the loop goes on meanwhile); raises what went wrong, naming the
-- program and what it said.
local function must(run, argv, hint)
  local res, e = run(argv)
  if not res then error(string.format("text-to-speech: %s%s", e.message, hint or ""), 0) end
  if res.status ~= 0 then
    local said = res.output:match("^%s*([^\n]*)") or ""
    error(string.format("text-to-speech: %s exited with status %d%s", argv[1], res.status,
      said ~= "" and (": " .. said) or ""), 0)
  end
end

local DEBIAN = " (install the Debian packages espeak-ng and sox)"

-- The voices a bot may be given: espeak-ng and sox (the default), a command template (one
-- program making a WAV at {path}), or a function.
local function voice_engine(speak)
  if speak == nil then
    return function(text, path, voice, run)
      local raw = path .. ".raw.wav"
      core.private_file(raw)   -- the caller's words may be in it: the bot's user alone reads it
      local ok, e = pcall(must, run, { "espeak-ng", "-v", voice, "-w", raw, "--", text }, DEBIAN)
      if ok then
        ok, e = pcall(must, run, { "sox", raw, "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", path },
                      DEBIAN)
      end
      os.remove(raw)
      if not ok then error(e, 0) end
    end
  end
  if type(speak) == "table" then
    return function(text, path, voice, run)
      local argv, with = {}, { text = text, path = path, voice = voice }
      for i, a in ipairs(speak) do argv[i] = (tostring(a):gsub("{(%a+)}", function(k) return with[k] end)) end
      must(run, argv)
    end
  end
  return function(text, path, voice, run)
    local ok, e = speak(text, path, voice, run)
    if not ok then error("text-to-speech: " .. tostring(e or "the voice function failed"), 0) end
  end
end

--- Make (once) the WAV for a text in `dir`, named by a hash of the voice and the text;
-- returns the file name. The program runs as a child process on the loop: the loop, its
-- other calls and a node's lease renewals go on while it speaks.
-- @param dir the prompts folder
-- @param text what to say
-- @param voice the voice (`M.VOICE`)
-- @param o optional: `loop` (the bot's; without one a loop of this module's own), `speak`
--   (the voice: nil for espeak-ng and sox; a command template, `{"mytts", "--out", "{path}",
--   "{text}"}`, one program that writes a WAV at `{path}`, `{text}` and `{voice}` put in as
--   they are, no shell; or a function(text, path, voice, run) that writes the WAV at path and
--   returns true, or nil and an error, where `run(argv)` runs a program on the loop and gives
--   `{status =, output =}`, or nil and an error when it could not start). What it
--   makes must be what Graph plays (16 kHz mono 16-bit PCM WAV), else the error says so.
-- @return the file's name in `dir`; raises, saying what to fix, when it cannot be made
function M.speak(dir, text, voice, o)
  o = o or {}
  voice = voice or M.VOICE
  local name = "tts-" .. core.hash(voice .. "\0" .. text) .. ".wav"
  local path = dir .. "/" .. name
  local f = io.open(path, "rb")
  if f then
    f:close()
    return name
  end
  -- its own temporary name: other processes (nodes sharing the folder) may speak it at once
  local tmp = path .. "." .. core.uuid() .. ".tmp.wav"
  -- made private before the program writes it: a file that exists keeps its mode
  local probe, why = core.private_file(tmp)
  if not probe then
    error(string.format("text-to-speech: the prompts folder %s is not writable (%s)", dir, tostring(why)), 0)
  end
  local loop = o.loop
  if not loop then
    own_loop = own_loop or require("graphcall.loop").new { log = false }
    loop = own_loop
  end
  local ok, e = pcall(voice_engine(o.speak), text, tmp, voice, function(argv) return loop:run_program(argv) end)
  if ok then
    local g = io.open(tmp, "rb")
    local bytes = g and g:read("*a")
    if g then g:close() end
    local info, bad = wav.check(bytes or "")
    if not info then
      ok, e = false, string.format("text-to-speech: the voice made no WAV Graph plays (%s; 16 kHz mono "
        .. "16-bit PCM)", tostring(bad))
    end
  end
  if not ok then
    os.remove(tmp)
    error(tostring(e), 0)
  end
  assert(os.rename(tmp, path))
  return name
end

-- What a prompt table may have, and each verb's options.
local PROMPT = { "text", "file", "uri", "voice", "resourceId", "clientContext" }
local COLLECT = { "prompt", "min", "max", "terminator", "firstTimeout", "interDigitTimeout", "tries", "valid",
                  "noInput", "noMatch", "bargeIn", "flush" }
local RECORD = { "prompt", "maxDuration", "maxSilence", "initialSilence", "stopTones", "beep", "download", "bargeIn" }
local TRANSFER = { "to", "replacesCallId", "transferee" }

-- A prompt as a verb was given it (a string, a table, a list of them): each table must say
-- what to play, with no key nobody reads; raises at the user's line.
local function check_prompt(p, what)
  local stack = { p }
  while #stack > 0 do
    local x = table.remove(stack)
    local t = type(x)
    if t == "table" then
      if x.text or x.file or x.uri then
        strict.options(x, PROMPT, what .. ": a prompt")
        for _, k in ipairs { "text", "file", "uri" } do
          if x[k] ~= nil and type(x[k]) ~= "string" then
            strict.fail(string.format("%s: a prompt's %s is a string, got %s", what, k, type(x[k])))
          end
        end
      elseif x.mediaInfo == nil then
        if #x == 0 then
          local key = next(x)
          if key == nil then strict.fail(what .. ": a prompt says what to play (text =, file = or uri =)") end
          strict.fail(strict.unknown(what .. ": a prompt", key, PROMPT))
        end
        for i = #x, 1, -1 do stack[#stack + 1] = x[i] end
        for k in pairs(x) do
          if type(k) ~= "number" and k ~= "clientContext" then strict.fail(strict.unknown(what, k, PROMPT)) end
        end
      end
    elseif t ~= "string" then
      strict.fail(string.format("%s: a prompt is a string or a table (text =, file =, uri =), got %s", what, t))
    end
  end
end
M.check_prompt = check_prompt

-- How long a WAV file of the prompts folder plays (ms), read once; nil if it is no WAV.
local function file_ms(bot, name)
  local lengths = bot.mediaLengths
  local uri = bot.promptBase .. name
  if lengths[uri] then return lengths[uri] end
  local f = io.open(bot.promptDir .. "/" .. name, "rb")
  if not f then return nil end
  local info = wav.info(f:read("*a"))
  f:close()
  lengths[uri] = info and info.ms or nil
  return lengths[uri]
end

-- The mediaPrompts for what a verb was given: a prompt, a string, or a list of them; `ms` on
-- the list is how long they play when every length is known (the bot's files and spoken
-- text; a `uri` prompt's is measured once, `uri_ms`), else nil.
function Call:_prompts(p)
  local b = self.bot
  local out, ms = {}, 0
  local function one(x)
    if type(x) == "string" then x = { text = x } end
    if type(x) ~= "table" then error("a prompt is a string or a table (text =, file =, uri =)", 4) end
    if x.text or x.file or x.uri then
      local uri, len = x.uri
      if x.text then
        if not b.promptDir then error("spoken prompts need the bot's prompts folder (prompts =)", 4) end
        local name = M.speak(b.promptDir, x.text, x.voice or b.voice, { loop = b.loop, speak = b.speak })
        uri, len = b.promptBase .. name, file_ms(b, name)
        b.spoken[uri] = x.text
      elseif x.file then
        if not b.promptDir then error("prompt files need the bot's prompts folder (prompts =)", 4) end
        uri, len = b.promptBase .. x.file, file_ms(b, x.file)
      else
        len = self:_uri_ms(uri)
      end
      ms = ms and len and ms + len
      out[#out + 1] = { ["@odata.type"] = "#microsoft.graph.mediaPrompt",
                        mediaInfo = { uri = uri, resourceId = x.resourceId } }
    elseif x.mediaInfo then
      ms = ms and type(x.mediaInfo) == "table" and x.mediaInfo.uri and self:_uri_ms(x.mediaInfo.uri)
      ms = ms or nil
      out[#out + 1] = x
    else
      for _, y in ipairs(x) do one(y) end
    end
  end
  one(p)
  return setmetatable(out, { __index = { ms = ms } })
end

-- How long a prompt at a URI plays: a logged step (fetched once per bot, then from memory),
-- so a replay asks the same steps.
function Call:_uri_ms(uri)
  local b = self.bot
  local v = self:_step("measure", function(done)
    if b.mediaLengths[uri] then return done({ ms = b.mediaLengths[uri] }) end
    b.loop:request({ url = uri, timeout = 10000 }, function(res)
      local info = res and res.status == 200 and wav.info(res.body)
      if info then b.mediaLengths[uri] = info.ms end
      done({ ms = info and info.ms or nil })
    end)
  end)
  return v.ms
end

--- How long a prompt whose length is not known may take (ms) before the flow asks.
M.PROMPT = 30000

--- Answer an incoming call and wait until it is established.
-- @param opts the answer's fields (acceptedModalities, mediaConfig, callOptions, ...):
--   service-hosted audio with the bot's callbackUri by default
function Call:answer(opts)
  local spec = { callbackUri = self.bot.callbackUri, acceptedModalities = { "audio" },
                 mediaConfig = { ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig" } }
  for k, v in pairs(opts or {}) do spec[k] = v end
  local ok, e = self:request("answer", spec)
  if not ok then return nil, e end
  return self:ready(M.ANSWERED)
end

--- How long an answered call takes to be established (ms): then the flow asks.
M.ANSWERED = 1000
--- How long a callee may ring before the service gives up (ms; Graph documents none): then
-- the flow asks.
M.RINGING = 60000

--- Wait until the call is established (an outgoing call: until the callee answers). If the
-- notification does not come in `expect` ms (and a margin), the flow asks the service.
-- @param expect ms (`graphcall.ivr.RINGING` by default; `ANSWERED` after an answer)
-- @return true, or nil and the hangup error (the call ended first)
function Call:ready(expect)
  local ev, e = self:_await_state(function(x)
    return x.kind == "call" and not x.toneInfo and (x.state == "established" or x.state == "terminated")
  end, function(st) return st == "established" or st == "hold" end, expect or M.RINGING, "the call's established state",
    "c=established")
  if ev and (ev.state == "established" or ev.state == "hold") then return true end
  if e == "timeout" then return nil, err("timeout", "the call was not established in time") end
  if ev then self.ended = ev end
  return nil, e or err("hangup", "the call ended before it was established", { cause = ev and ev.resultInfo })
end

--- Reject an incoming call ("none", "busy", "forbidden").
function Call:reject(reason)
  return self:request("reject", { reason = reason or "none" })
end

--- Redirect an incoming call to targets (a number, an identitySet, or a list of them).
function Call:redirect(to, timeout)
  return self:request("redirect", { targets = M.targets(to), timeout = timeout })
end

--- An invitationParticipantInfo for "+14255550100", `{user = {id = ...}}` or an identity set.
function M.target(to)
  if type(to) == "string" then
    if to:match("^%+%d+$") then return { identity = { phone = { id = to } } } end
    return { identity = { user = { id = to } } }
  end
  if to.identity then return to end
  return { identity = to }
end

--- The `targets` of a call for `to`: one target (as `target`) or a list of them.
function M.targets(to)
  if type(to) == "string" or to.identity or to.user or to.phone or to.application or to.applicationInstance then
    return { M.target(to) }
  end
  local out = {}
  for i, t in ipairs(to) do out[i] = M.target(t) end
  return out
end

local function chunks(list, n)
  local out = {}
  for i = 1, #list, n do
    local c = {}
    for j = i, math.min(#list, i + n - 1) do c[#c + 1] = list[j] end
    out[#out + 1] = c
  end
  return out
end

-- Start one playPrompt request and give its operation (not waiting for the end).
function Call:_start_play(prompts, ctx)
  return self:request("playPrompt", { prompts = prompts, clientContext = ctx })
end

-- An action whose operation the verb waits for: the completion and the operation, or nil and
-- an error (`failed`, with the resultInfo, when it did not complete; `hangup`; the client's).
function Call:_operation(name, spec, failure, expect)
  local op, e = self:request(name, spec)
  if not op then return nil, e end
  local done, de = self:op_done(op, expect)
  if not done then return nil, de end
  if done.status ~= "completed" then
    return nil, err("failed", failure, { resultInfo = done.resultInfo, reason = done.completionReason })
  end
  return done, op
end

--- Play prompts and wait until they have played.
-- @param p a prompt or a list (see the module), or `{prompt, ...}` with `clientContext`
-- @return true, or nil and an error (`failed` with the operation's resultInfo, `hangup`)
function Call:play(p)
  check_prompt(p, "play")
  local prompts = self:_prompts(p)
  for _, c in ipairs(chunks(prompts, 20)) do
    local ms
    if #prompts <= 20 then ms = prompts.ms end     -- (each request's own length when split)
    local done, e = self:_operation("playPrompt", { prompts = c, clientContext = type(p) == "table"
                                    and p.clientContext or nil }, "the prompt did not play", ms or M.PROMPT)
    if not done then return nil, e end
  end
  return true
end

function Call:_subscribe()
  if self.subscribed then return true end
  local op, e = self:request("subscribeToTone", {})
  if not op then return nil, e end
  self.subscribed = true
  return true
end

local DIGIT = { tone0 = "0", tone1 = "1", tone2 = "2", tone3 = "3", tone4 = "4", tone5 = "5", tone6 = "6",
  tone7 = "7", tone8 = "8", tone9 = "9", star = "*", pound = "#", a = "A", b = "B", c = "C", d = "D" }

local function is_tone(e) return e.kind == "call" and e.toneInfo ~= nil end

--- Collect digits (playAndGetDigits): play a prompt, take the key presses, retry on no input
-- or a wrong answer.
-- @param o `prompt`, `min` (1), `max` (1), `terminator` ("#"; not part of the digits),
--   `firstTimeout` (ms for the first digit after the prompt, 5000), `interDigitTimeout` (ms,
--   3000), `tries` (3), `valid` (a Lua pattern the whole answer must match), `noInput` and
--   `noMatch` (prompts played before the next try), `bargeIn` (true: the first digit stops
--   the prompt), `flush` (drop keys pressed before this collect; by default they count, as
--   type-ahead)
-- @return the digits, or nil and an error (`noInput`, `noMatch` once the tries are spent;
--   `hangup`)
function Call:collect(o)
  o = strict.options(o, COLLECT, "collect")
  for _, k in ipairs { "prompt", "noInput", "noMatch" } do
    if o[k] ~= nil then check_prompt(o[k], "collect: " .. k) end
  end
  local min, max = o.min or 1, o.max or 1
  local term = o.terminator == nil and "#" or o.terminator
  local first, inter = o.firstTimeout or 5000, o.interDigitTimeout or 3000
  local bargeIn = o.bargeIn ~= false
  local ok, e = self:_subscribe()
  if not ok then return nil, e end
  if o.flush then
    while true do
      local ev = self:_wait(is_tone, self:now(), "t")
      if not ev then break end
    end
  end
  local last = "noInput"
  for try = 1, o.tries or 3 do
    local digits, finished = "", false
    local function take(ev)
      local d = DIGIT[ev.toneInfo.tone]
      if not d then return end
      if term and term ~= "" and d == term then
        finished = true
      else
        digits = digits .. d
        if #digits >= max then finished = true end
      end
    end
    -- the prompt, with what is pressed while it plays (and before: type-ahead)
    local prompt = o.prompt
    if try > 1 then
      local again = last == "noMatch" and o.noMatch or o.noInput
      if again then prompt = { again, o.prompt } end
    end
    if prompt then
      local list = self:_prompts(prompt)
      local op, pe = self:_start_play(list)
      if not op then return nil, pe end
      local playing, cancelled = true, false
      local ends_by = self:now() + (list.ms or M.PROMPT) + callmod.MARGIN   -- then ask
      while playing and not finished do
        local ev, we = self:_wait(function(x)
          return is_tone(x) or callmod.ends(x, op)
        end, ends_by, "t,o")
        if not ev and we == "timeout" then   -- the prompt's end never came: ask what it became
          ev, we = self:op_done(op, 0)
        end
        if not ev then
          if we and we.code == "timeout" then return nil, err("timeout", "the prompt's end never came") end
          return nil, we
        end
        if ev.kind == "operation" then
          playing = false
        else
          take(ev)
          if bargeIn and not cancelled then   -- the first key stops the prompt
            cancelled = true
            local c, ce = self:request("cancelMediaProcessing", {})
            if not c then return nil, ce end
          end
        end
      end
      if playing and cancelled then  -- let the cancelled prompt's end go by (it ends at once)
        local _, we = self:op_done(op, 0)
        if we and we.code == "hangup" then return nil, we end
      elseif playing then           -- finished while playing, no barge-in: wait for its end
        local _, we = self:op_done(op, math.max(0, ends_by - callmod.MARGIN - self:now()))
        if we and we.code == "hangup" then return nil, we end
      end
    end
    -- the digits after the prompt
    while not finished do
      local ev, we = self:_wait(is_tone, self:now() + (digits == "" and first or inter), "t")
      if not ev then
        if we ~= "timeout" then return nil, we end
        break
      end
      take(ev)
    end
    if digits == "" then
      last = "noInput"
      self:_note("collect: no digits")
    elseif #digits < min or (o.valid and not digits:match("^" .. o.valid .. "$")) then
      last = "noMatch"
      self:_note("collect: " .. digits .. ", no match")
    else
      self:_note("collected " .. digits)
      return digits
    end
  end
  return nil, err(last, last == "noInput" and "no digits were entered" or "the digits did not match")
end

--- Record what the caller says (recordResponse) and download the recording before the call
-- ends (the service discards it soon after, REFERENCE.md §1.7).
-- @param o `prompt`, `maxDuration` (s, 5), `maxSilence` (s, 5), `initialSilence` (s, 5),
--   `stopTones` ({"#"}), `beep` (true), `download` (true: into the bot's recordings folder)
-- @return {location =, path =, bytes =, reason =, resultInfo =}, or nil and an error
function Call:record(o)
  o = strict.options(o, RECORD, "record")
  if o.prompt ~= nil then check_prompt(o.prompt, "record: prompt") end
  local spec = { maxRecordDurationInSeconds = o.maxDuration, maxSilenceTimeoutInSeconds = o.maxSilence,
                 initialSilenceTimeoutInSeconds = o.initialSilence, stopTones = o.stopTones,
                 playBeep = o.beep ~= false, bargeInAllowed = o.bargeIn }
  local prompt_ms = 0
  if o.prompt then
    spec.prompts = self:_prompts(o.prompt)
    prompt_ms = spec.prompts.ms or M.PROMPT
  end
  -- what it may take: the prompt, the beep, silence before speech, the message, silence after
  local expect = prompt_ms + 1000 + 1000 * ((o.initialSilence or 5) + (o.maxDuration or 5) + (o.maxSilence or 5))
  local done, op = self:_operation("recordResponse", spec, "the recording failed", expect)
  if not done and op.code == "window" then   -- the one sent before a restart never began: again
    done, op = self:_operation("recordResponse", spec, "the recording failed", expect)
  end
  if not done then return nil, op end
  local rec = { location = done.recordingLocation, reason = done.completionReason, resultInfo = done.resultInfo }
  if o.download ~= false and type(rec.location) == "string" and rec.location ~= "" then
    local b = self.bot
    local got = self:_step("download", function(fin)
      b.loop:request({ url = rec.location, timeout = 60000,
                       headers = { Authorization = "Bearer " .. tostring(done.recordingAccessToken) } },
                     function(res, fe)
        if not res or res.status ~= 200 then
          return fin({ err = { code = "download", message = res and ("HTTP " .. res.status) or fe.message } })
        end
        local dir = b.recordDir or "."
        local made, merr = files.mkdirs(dir)
        if not made then return fin({ err = { code = "download", message = merr } }) end
        local path = dir .. "/" .. self.id .. "-" .. tostring(op.id) .. ".wav"
        core.private_file(path)   -- a caller's voice: the bot's user alone reads it
        local f = io.open(path, "wb")
        if not f then return fin({ err = { code = "download", message = "cannot write " .. path } }) end
        f:write(res.body)
        f:close()
        fin({ path = path, bytes = #res.body })
      end)
    end)
    if got.err then return nil, setmetatable(got.err, core.error_mt) end
    rec.path, rec.bytes = got.path, got.bytes
  end
  return rec
end

--- Transfer the call (blind; `replacesCallId` for a consultative transfer) and wait for the
-- outcome: true once the service has handed the caller over (the call ends), or nil and an
-- error (`failed` with the resultInfo: the call is back, established).
-- @param o `to` (a number, a user id, or an identity set), `replacesCallId`, `transferee`
function Call:transfer(o)
  strict.options(o, TRANSFER, "transfer", { "to" })
  local target = M.target(o.to)
  target.replacesCallId = o.replacesCallId
  local ok, e = self:request("transfer", { transferTarget = target, transferee = o.transferee })
  if not ok then return nil, e end
  local ev, we = self:_await_state(function(x)
    return x.kind == "call" and not x.toneInfo and (x.state == "terminated" or x.changeType == "deleted"
      or (x.state == "established" and x.resultInfo ~= nil))
  end, function(st) return st == "established" end, M.RINGING, "the transfer's outcome", "c=established")
  if not ev then
    if we == "timeout" then return nil, err("timeout", "the transfer's outcome never came") end
    if self.gone then   -- the call went away without a word: handed over, if the service had accepted it
      for _, x in ipairs(self.events) do
        if x.kind == "call" and x.state == "transferAccepted" then
          self.transferred = true
          return true
        end
      end
    end
    return nil, we
  end
  if ev.state == "established" then
    return nil, err("failed", "the transfer failed", { resultInfo = ev.resultInfo })
  end
  self.ended = ev
  -- handed over: 7015 (GracefulTransferCompleted), a consultative transfer's AppTransferred, or
  -- an end after the service accepted the transfer; any other end is the caller's hang-up
  local ri = type(ev.resultInfo) == "table" and ev.resultInfo or {}
  local accepted = false
  for _, x in ipairs(self.events) do
    if x.kind == "call" and x.state == "transferAccepted" then accepted = true end
  end
  if ri.subcode == 7015 or ev.terminationReason == "AppTransferred" or accepted then
    self.transferred = true
    return true
  end
  return nil, err("hangup", "the call ended before the transfer went through", { cause = ev.resultInfo })
end

--- Hang up and wait for the end of the call.
-- @return true (also when it had ended)
function Call:hangup()
  if self.ended then return true end
  local ok, e = self:request("hangup")
  if not ok then
    if e.code == "hangup" then return true end
    if e.status ~= 404 then return nil, e end
  end
  local ev = self:_await_state(function(x)
    return x.kind == "call" and (x.state == "terminated" or x.changeType == "deleted")
  end, function(st) return st == "terminated" end, M.ANSWERED, "the call's end after the hang-up", "-")
  if ev then self.ended = ev end
  return true
end

--- Invite participants into the call (group calls; a number, a user id, an identity set, or a
-- list of them) and wait until the invitation has completed.
function Call:invite(to)
  local done, e = self:_operation("invite", { participants = M.targets(to) }, "the invitation failed")
  if not done then return nil, e end
  return true
end

--- Send DTMF tones to the other side ("123#"), and wait until they are sent.
function Call:send_tones(digits, gap)
  local names = { ["*"] = "star", ["#"] = "pound" }
  local tones = {}
  for ch in tostring(digits):gmatch(".") do tones[#tones + 1] = names[ch] or ("tone" .. ch) end
  local done, e = self:_operation("sendDtmfTones", { tones = tones, delayBetweenTonesMs = gap },
                                  "the tones were not sent")
  if not done then return nil, e end
  return true
end

return M
