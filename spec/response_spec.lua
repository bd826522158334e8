local cjson = require "cjson"
local graphcall = require "graphcall"
local H = require "helper"

describe("parse_call_response()", function()
  for _, ex in ipairs(H.seeds) do
    it("parses the 201 answer of " .. ex, function()
      local body = H.fixture("seed/" .. ex .. "/response.json")
      local headers = H.fixture("seed/" .. ex .. "/response-headers.txt")
      local call, err = graphcall.parse_call_response(201, headers, body)
      assert.is_table(call, err and tostring(err))
      local expected = cjson.decode(body)
      assert.same(expected, call)
      local loc_id = headers:match("Location:%s*%S+/calls/([%w%-]+)")
      assert.equal(loc_id, call.id)
      assert.equal("establishing", call.state)
    end)
  end

  it("takes the id from Location when the body has none", function()
    local call = graphcall.parse_call_response(201,
      { ["location"] = "https://graph.microsoft.com/v1.0/communications/calls/abc-123" },
      '{"state":"establishing"}')
    assert.equal("abc-123", call.id)
    call = graphcall.parse_call_response(201,
      "HTTP/1.1 201 Created\r\nLOCATION: https://graph.microsoft.com/v1.0/communications/calls/xyz\r\n", "")
    assert.equal("xyz", call.id)
  end)

  it("fails clearly without any id", function()
    local call, err = graphcall.parse_call_response(201, {}, "{}")
    assert.is_nil(call)
    assert.equal("response", err.code)
  end)

  it("fails on a body that is not JSON or not an object", function()
    local call, err = graphcall.parse_call_response(201, {}, '{"id": "x",')
    assert.is_nil(call)
    assert.equal("json", err.code)
    call, err = graphcall.parse_call_response(201, {}, '[1]')
    assert.is_nil(call)
    assert.equal("response", err.code)
  end)

  it("turns a Graph error body into an error value", function()
    local body = H.fixture("graph/error-404-call-not-found.json")
    local call, err = graphcall.parse_call_response(404, { ["request-id"] = "r-1" }, body)
    assert.is_nil(call)
    assert.equal("graph", err.code)
    assert.equal(404, err.status)
    assert.equal("8522", err.graphCode)
    assert.equal("Call not found.", err.message)
    assert.equal("r-1", err.requestId)
    assert.equal("28b200d4-0000-4b3d-8cc7-ba3145d404e9", err.clientRequestId)
  end)

  it("reads Retry-After on throttling", function()
    local _, err = graphcall.parse_call_response(429, { ["Retry-After"] = "7" },
      H.fixture("graph/error-429.json"))
    assert.equal(429, err.status)
    assert.equal(7, err.retryAfter)
  end)
end)

describe("decode()", function()
  it("decodes JSON with escapes, unicode and nulls", function()
    local v = graphcall.decode('{"a":[1,-2.5e3,"x\\u00e9\\ud83d\\ude00\\n",null,true,false],"b":{}}')
    assert.same({ 1, -2500, "xé😀\n", graphcall.null, true, false }, v.a)
    assert.same({}, v.b)
  end)

  it("keeps integers integers on Lua 5.4", function()
    local v = graphcall.decode('{"n":9007199254740993}')
    if math.type then
      assert.equal("integer", math.type(v.n))
      assert.equal(9007199254740993, v.n)
    else
      assert.equal(9007199254740992, v.n)
    end
  end)

  local bad = {
    ["trailing comma"] = '{"a":1,}',
    ["truncated"] = '{"a":[1,2',
    ["single quotes"] = "{'a':1}",
    ["trailing data"] = '{} {}',
    ["leading zero"] = '{"a":01}',
    ["bare word"] = '{"a":nul}',
    ["control character"] = '{"a":"x\1"}',
    ["bad escape"] = '{"a":"\\x"}',
    ["lone surrogate"] = '{"a":"\\ud800"}',
    ["invalid UTF-8"] = '{"a":"\xff"}',
    ["overlong UTF-8"] = '{"a":"\xc0\xaf"}',
    ["empty"] = '',
  }
  for what, text in pairs(bad) do
    it("rejects " .. what, function()
      local v, err = graphcall.decode(text)
      assert.is_nil(v)
      assert.equal("json", err.code)
      assert.matches("at byte %d+", err.message)
    end)
  end

  it("limits depth and size", function()
    local deep = string.rep("[", 65) .. string.rep("]", 65)
    local v, err = graphcall.decode(deep)
    assert.is_nil(v)
    assert.matches("deep", err.message)
    assert.is_table(graphcall.decode(string.rep("[", 64) .. string.rep("]", 64)))
    v, err = graphcall.decode('{"a":"' .. string.rep("x", 100) .. '"}', 50)
    assert.is_nil(v)
    assert.matches("too large", err.message)
  end)
end)
