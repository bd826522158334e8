local cjson = require "cjson"
local graphcall = require "graphcall"
local H = require "helper"

local KEEP = { mediaConfig = true, meetingInfo = true }

local function built(kind, spec)
  local json, err = graphcall.build(kind, spec)
  assert(json, err and tostring(err))
  return json, cjson.decode(json)
end

local function build_err(kind, spec)
  local json, err = graphcall.build(kind, spec)
  assert.is_nil(json)
  assert.is_table(err)
  return err
end

-- A valid create-call spec to vary in the error cases.
local function p2p()
  return {
    callbackUri = "https://bot.contoso.com/callback",
    targets = { { identity = { user = { id = "112f7296-5fa4-42ca-bae8-6a692b15d4b8" } } } },
    requestedModalities = { "audio" },
    mediaConfig = graphcall.serviceHostedMediaConfig {},
  }
end

describe("build('call') for the ten reference scenarios", function()
  for _, ex in ipairs(H.seeds) do
    describe(ex, function()
      local seed = H.json_fixture("seed/" .. ex .. "/request.json")

      it("builds the seed without its implied @odata.type annotations back to the seed", function()
        local stripped = H.strip(seed, KEEP)
        -- the stripping really removed annotations, so the library had to add them back
        assert.is_true(H.count_annotations(stripped) < H.count_annotations(seed))
        local _, out = built("call", stripped)
        assert.same(seed, out)
      end)

      it("builds the seed as it is to itself", function()
        local _, out = built("call", seed)
        assert.same(seed, out)
      end)
    end)
  end
end)

describe("build() of actions", function()
  local cases = {
    answer = "req-answer.json", reject = "req-reject.json", redirect = "req-redirect.json",
    transfer = "req-transfer.json", playPrompt = "req-playprompt.json",
    recordResponse = "req-recordresponse.json", subscribeToTone = "req-subscribetotone.json",
    cancelMediaProcessing = "req-cancelmediaprocessing.json", mute = "req-mute.json",
    unmute = "req-unmute.json", updateRecordingStatus = "req-updaterecordingstatus.json",
    changeScreenSharingRole = "req-changescreensharingrole.json",
    sendDtmfTones = "req-senddtmftones.json", invite = "req-participants-invite.json",
    ["participant.mute"] = "req-participant-mute.json",
    startHoldMusic = "req-participant-startholdmusic.json",
    stopHoldMusic = "req-participant-stopholdmusic.json",
  }
  for kind, file in pairs(cases) do
    it(kind .. " builds " .. file .. " to itself", function()
      local req = H.json_fixture("graph/" .. file)
      local _, out = built(kind, req)
      assert.same(req, out)
    end)
  end

  it("does not annotate an action body, but annotates typed values inside it", function()
    local _, out = built("playPrompt", {
      clientContext = "c1",
      prompts = { { mediaInfo = { uri = "https://cdn.example.com/a.wav" } } },
    })
    assert.is_nil(out["@odata.type"])
    -- prompt is abstract with one concrete type in v1.0: mediaPrompt
    assert.equal("#microsoft.graph.mediaPrompt", out.prompts[1]["@odata.type"])
    assert.is_nil(out.prompts[1].mediaInfo["@odata.type"])
  end)

  it("checks action parameters: playPrompt takes at most 20 prompts", function()
    local prompts = {}
    for i = 1, 21 do prompts[i] = { mediaInfo = { uri = "https://cdn.example.com/" .. i } } end
    local err = build_err("playPrompt", { prompts = prompts })
    assert.equal("max_items", err.code)
    assert.equal("prompts", err.path)
  end)

  it("rejects a reject reason outside the enum", function()
    local err = build_err("reject", { reason = "tired" })
    assert.equal("enum", err.code)
    assert.equal("reason", err.path)
  end)

  it("requires an answer's mediaConfig but not its callbackUri", function()
    local err = build_err("answer", { acceptedModalities = { "audio" } })
    assert.equal("required", err.code)
    assert.equal("mediaConfig", err.path)
    local _, out = built("answer", { acceptedModalities = { "audio" },
                                     mediaConfig = graphcall.appHostedMediaConfig { blob = "x" } })
    assert.equal("x", out.mediaConfig.blob)
  end)

  it("types answer's callOptions as incomingCallOptions", function()
    local _, out = built("answer", { acceptedModalities = { "audio" },
      mediaConfig = graphcall.serviceHostedMediaConfig {}, callOptions = { isDeltaRosterEnabled = true } })
    assert.equal("#microsoft.graph.incomingCallOptions", out.callOptions["@odata.type"])
  end)
end)

describe("build() validation", function()
  it("names a missing required field", function()
    for _, field in ipairs { "callbackUri", "requestedModalities", "mediaConfig" } do
      local spec = p2p()
      spec[field] = nil
      local err = build_err("call", spec)
      assert.equal("required", err.code)
      assert.equal(field, err.path)
      assert.matches("required", err.message)
    end
  end)

  it("treats a null required field as missing", function()
    local spec = p2p()
    spec.callbackUri = graphcall.null
    local err = build_err("call", spec)
    assert.equal("required", err.code)
    assert.equal("callbackUri", err.path)
  end)

  it("needs targets or meetingInfo", function()
    local spec = p2p()
    spec.targets = nil
    local err = build_err("call", spec)
    assert.equal("one_of", err.code)
    assert.matches("targets", err.message)
    assert.matches("meetingInfo", err.message)
  end)

  it("names a nested missing field with its full path", function()
    local spec = p2p()
    spec.targets[1].identity = nil
    local err = build_err("call", spec)
    assert.equal("required", err.code)
    assert.equal("targets[1].identity", err.path)
  end)

  it("reports a wrong type with its path", function()
    local spec = p2p()
    spec.targets[1].identity.user.id = 42
    local err = build_err("call", spec)
    assert.equal("type", err.code)
    assert.equal("targets[1].identity.user.id", err.path)
    assert.matches("expected a string", err.message)
    assert.equal("targets[1].identity.user.id: " .. err.message, tostring(err))
  end)

  it("reports a scalar where an array belongs, and an array where an object belongs", function()
    local spec = p2p()
    spec.requestedModalities = "audio"
    local err = build_err("call", spec)
    assert.equal("type", err.code)
    assert.equal("requestedModalities", err.path)

    spec = p2p()
    spec.source = { { identity = {} } }
    err = build_err("call", spec)
    assert.equal("type", err.code)
    assert.equal("source", err.path)
  end)

  it("rejects an unknown modality", function()
    local spec = p2p()
    spec.requestedModalities = { "audio", "smell" }
    local err = build_err("call", spec)
    assert.equal("enum", err.code)
    assert.equal("requestedModalities[2]", err.path)
    assert.matches("'smell'", err.message)
    assert.matches("videoBasedScreenSharing", err.message)
  end)

  it("does not accept Graph's unknownFutureValue sentinel", function()
    local spec = p2p()
    spec.requestedModalities = { "unknownFutureValue" }
    assert.equal("enum", build_err("call", spec).code)
  end)

  it("needs https for callbackUri, http only for loopback", function()
    local bad = { "http://bot.contoso.com/callback", "ftp://bot.contoso.com/",
                  "bot.contoso.com/callback", "https://", "http://localhost.evil.com/",
                  "http://127.0.0.1.evil.com/" }
    for _, uri in ipairs(bad) do
      local spec = p2p()
      spec.callbackUri = uri
      local err = build_err("call", spec)
      assert.equal("https", err.code, uri)
      assert.equal("callbackUri", err.path)
    end
    local good = { "https://bot.contoso.com/callback", "HTTPS://bot.contoso.com:8443/x",
                   "http://localhost:8080/cb", "http://127.0.0.1/cb", "http://[::1]:9/cb" }
    for _, uri in ipairs(good) do
      local spec = p2p()
      spec.callbackUri = uri
      assert.truthy(graphcall.build("call", spec), uri)
    end
  end)

  it("applies the https rule to action callbackUris too", function()
    local err = build_err("reject", { reason = "busy", callbackUri = "http://example.com/" })
    assert.equal("https", err.code)
  end)

  it("allows at most 5 targets in a group call", function()
    local spec = p2p()
    for i = 1, 5 do spec.targets[i] = { identity = { user = { id = "u" .. i } } } end
    assert.truthy(graphcall.build("call", spec))
    spec.targets[6] = { identity = { user = { id = "u6" } } }
    local err = build_err("call", spec)
    assert.equal("max_items", err.code)
    assert.equal("targets", err.path)
    assert.matches("at most 5", err.message)
  end)

  it("rejects invalid UTF-8 in values and keys", function()
    local spec = p2p()
    spec.subject = "caf\xc3"
    local err = build_err("call", spec)
    assert.equal("utf8", err.code)
    assert.equal("subject", err.path)

    spec = p2p()
    spec.targets[1].identity.user.displayName = "\xed\xa0\x80" -- a UTF-16 surrogate
    err = build_err("call", spec)
    assert.equal("utf8", err.code)
    assert.equal("targets[1].identity.user.displayName", err.path)

    spec = p2p()
    spec["x\xff"] = 1
    assert.equal("utf8", build_err("call", spec).code)

    spec = p2p()
    spec.extra = { "\xc0\xaf" } -- overlong, in a pass-through field
    assert.equal("utf8", build_err("call", spec).code)
  end)

  it("needs @odata.type on a polymorphic field and lists the choices", function()
    local spec = p2p()
    spec.mediaConfig = {}
    local err = build_err("call", spec)
    assert.equal("type_required", err.code)
    assert.equal("mediaConfig", err.path)
    assert.matches("serviceHostedMediaConfig", err.message)
    assert.matches("appHostedMediaConfig", err.message)
  end)

  it("rejects an @odata.type that does not fit the field", function()
    local spec = p2p()
    spec.mediaConfig = { ["@odata.type"] = "#microsoft.graph.organizerMeetingInfo" }
    local err = build_err("call", spec)
    assert.equal("type", err.code)
    assert.equal("mediaConfig", err.path)
    spec.mediaConfig = { ["@odata.type"] = "noSuchConfig" }
    assert.equal("unknown_type", build_err("call", spec).code)
  end)

  it("checks Int32 ranges and integer-ness", function()
    local err = build_err("redirect", { targets = p2p().targets, timeout = 2 ^ 31 })
    assert.equal("range", err.code)
    assert.equal("timeout", err.path)
    err = build_err("redirect", { targets = p2p().targets, timeout = 1.5 })
    assert.equal("type", err.code)
    assert.truthy(graphcall.build("redirect", { targets = p2p().targets, timeout = 30 }))
  end)

  it("rejects values JSON cannot carry", function()
    local spec = p2p()
    spec.extra = function() end
    local err = build_err("call", spec)
    assert.equal("type", err.code)
    assert.equal("extra", err.path)
    spec = p2p()
    spec.extra = 0 / 0
    assert.equal("range", build_err("call", spec).code)
  end)

  it("rejects arrays with holes and tables mixing items and fields", function()
    local spec = p2p()
    spec.extra = { 1, nil, 3 }
    assert.equal("type", build_err("call", spec).code)
    spec = p2p()
    spec.extra = { 1, x = 2 }
    assert.equal("type", build_err("call", spec).code)
  end)

  it("limits nesting depth instead of overflowing", function()
    local spec = p2p()
    local deep = {}
    spec.extra = deep
    for _ = 1, 100 do deep.x = {}; deep = deep.x end
    assert.equal("depth", build_err("call", spec).code)
    -- a cycle ends the same way
    spec = p2p()
    local t = {}
    t.self = t
    spec.extra = t
    assert.equal("depth", build_err("call", spec).code)
  end)

  it("raises on programming errors", function()
    assert.has_error(function() graphcall.build("nosuchthing", {}) end)
    assert.has_error(function() graphcall.build("call", "not a table") end)
    assert.has_error(function() graphcall.build(nil, {}) end)
  end)
end)

describe("build() JSON text", function()
  it("passes unknown properties through unchanged, at any depth", function()
    local spec = p2p()
    spec.ringingTimeoutInSeconds = 30
    spec.targets[1].identity.user.tenantId = "t-1"
    spec.mediaConfig.removeFromDefaultAudioGroup = false
    spec.custom = { nested = { list = { 1, "two", true } } }
    local _, out = built("call", spec)
    assert.equal(30, out.ringingTimeoutInSeconds)
    assert.equal("t-1", out.targets[1].identity.user.tenantId)
    assert.is_false(out.mediaConfig.removeFromDefaultAudioGroup)
    assert.same({ nested = { list = { 1, "two", true } } }, out.custom)
  end)

  it("writes JSON null for graphcall.null and cjson.null", function()
    assert.equal(cjson.null, graphcall.null)
    local spec = p2p()
    spec.subject = graphcall.null
    spec.tenantId = cjson.null
    local json = built("call", spec)
    assert.matches('"subject":null', json, 1, true)
    assert.matches('"tenantId":null', json, 1, true)
  end)

  it("escapes quotes, backslashes and control characters exactly", function()
    local spec = p2p()
    spec.subject = 'a"b\\c\n\t\r\b\f\0\1\31/'
    local json = built("call", spec)
    assert.matches('"subject":"a\\"b\\\\c\\n\\t\\r\\b\\f\\u0000\\u0001\\u001f/"', json, 1, true)
    assert.equal(spec.subject, cjson.decode(json).subject)
  end)

  it("keeps non-ASCII UTF-8 as it is", function()
    local spec = p2p()
    spec.subject = "Reunião ☎ 😀"
    local json = built("call", spec)
    assert.matches('"subject":"Reunião ☎ 😀"', json, 1, true)
  end)

  it("keeps integers integers and writes other numbers exactly", function()
    local spec = p2p()
    spec.a, spec.b, spec.c, spec.d = 7, -2147483648, 0.1, 1e300
    local json, out = built("call", spec)
    assert.matches('"a":7[,}]', json)
    assert.matches('"b":%-2147483648[,}]', json)
    assert.equal(0.1, out.c)
    assert.equal(1e300, out.d)
  end)

  it("writes an empty table as [] where the schema says collection, {} elsewhere", function()
    local spec = p2p()
    spec.mediaConfig = graphcall.serviceHostedMediaConfig { preFetchMedia = {} }
    spec.callOptions = {}
    local json = built("call", spec)
    assert.matches('"preFetchMedia":[]', json, 1, true)
    assert.matches('"callOptions":{"@odata.type":"#microsoft.graph.outgoingCallOptions"}', json, 1, true)
  end)

  it("honours graphcall.array and graphcall.object on pass-through fields", function()
    local spec = p2p()
    spec.list, spec.map, spec.plain = graphcall.array(), graphcall.object(), {}
    local json = built("call", spec)
    assert.matches('"list":[]', json, 1, true)
    assert.matches('"map":{}', json, 1, true)
    assert.matches('"plain":{}', json, 1, true)
  end)

  it("accepts short and full type names and writes the full annotation", function()
    for _, name in ipairs { "serviceHostedMediaConfig", "microsoft.graph.serviceHostedMediaConfig",
                            "#microsoft.graph.serviceHostedMediaConfig" } do
      local spec = p2p()
      spec.mediaConfig = { ["@odata.type"] = name }
      local _, out = built("call", spec)
      assert.equal("#microsoft.graph.serviceHostedMediaConfig", out.mediaConfig["@odata.type"])
    end
  end)

  it("writes @odata.type first in each object", function()
    local json = built("call", p2p())
    assert.matches('^{"@odata.type":"#microsoft.graph.call"', json)
    assert.matches('"identity":{"@odata.type":"#microsoft.graph.identitySet"', json, 1, true)
  end)

  it("keeps an @odata.type the schema does not know", function()
    local spec = p2p()
    spec.targets[1].identity = { ["@odata.type"] = "#microsoft.graph.futureIdentitySet",
                                 user = { id = "x" } }
    local _, out = built("call", spec)
    assert.equal("#microsoft.graph.futureIdentitySet", out.targets[1].identity["@odata.type"])
  end)

  it("offers constructors for the polymorphic types", function()
    local t = graphcall.joinMeetingIdMeetingInfo { joinMeetingId = "1" }
    assert.equal("#microsoft.graph.joinMeetingIdMeetingInfo", t["@odata.type"])
    assert.equal("#microsoft.graph.tokenMeetingInfo", graphcall.typed("tokenMeetingInfo")["@odata.type"])
    assert.has_error(function() graphcall.typed("nope") end)
  end)

  it("lists what it can build", function()
    local kinds = graphcall.kinds()
    local set = {}
    for _, k in ipairs(kinds) do set[k] = true end
    assert.is_true(set.call and set.answer and set.playPrompt and set["participant.mute"])
  end)
end)

describe("a misspelt property", function()
  -- Graph's own examples send properties its metadata does not declare, so those pass; a slip
  -- of the keyboard on a declared one is an error that names it and what was meant
  it("of a closed type or an action's parameters is an error with a suggestion", function()
    local body, err = graphcall.build("answer", { callbackUri = "https://bot.example.com/cb",
      mediaConfig = graphcall.serviceHostedMediaConfig {}, acceptedModalites = { "audio" } })
    assert.is_nil(body)
    assert.equal("unknown", err.code)
    assert.equal("acceptedModalites", err.path)
    assert.matches("is not a parameter of answer %(did you mean 'acceptedModalities'%?%)", err.message)
    body, err = graphcall.build("playPrompt", { prompts = { graphcall.mediaPrompt {
      mediaInfo = { uri = "https://x.example.com/a.wav", resorceId = "1" } } } })
    assert.is_nil(body)
    assert.equal("prompts[1].mediaInfo.resorceId", err.path)
    assert.matches("did you mean 'resourceId'", err.message)
  end)

  it("passes where the type is open, or the name is no slip of a declared one", function()
    assert.is_string(graphcall.build("transfer", { transferTarget = { identity = { user = { id = "u" } } },
                                                   clientContext = "docs-examples-send-it" }))
    assert.is_string((graphcall.build("call", { callbackUri = "https://bot.example.com/cb",
      requestedModalities = { "audio" }, mediaConfig = graphcall.serviceHostedMediaConfig {},
      targets = { { identity = { user = { id = "u" } } } }, callbackUrl = "open type: kept" })))
  end)
end)
