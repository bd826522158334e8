-- Under LuaJIT, graphcall.parse_notifications goes through the FFI (graphcall.flat). It must
-- give exactly what the Lua C API path (graphcall.core) gives: the same events, the same lazy
-- parts, the same errors, on every notification fixture and on bodies made awkward on purpose.
local H = require "helper"

if not jit then
  describe("graphcall.flat", function()
    it("is LuaJIT's path only: Lua 5.4 builds events through the C API", function()
      assert.is_nil(package.loaded["graphcall.flat"])
      assert.equal(require("graphcall.core").parse_notifications,
                   require("graphcall").parse_notifications)
    end)
  end)
  return
end

local graphcall = require "graphcall"
local core = require "graphcall.core"
local flat = require "graphcall.flat"

local function files()
  local out = {}
  local p = io.popen("ls " .. H.fixtures .. "/graph/notify-*.json " .. H.fixtures .. "/seed/*/notify-*.json")
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- rewrite the text inside JSON strings (keys too), leaving the rest as it is
local function in_strings(text, fn)
  local out, i, n = {}, 1, #text
  while i <= n do
    local c = text:sub(i, i)
    if c ~= '"' then
      out[#out + 1] = c
      i = i + 1
    else
      local j = i + 1
      while text:sub(j, j) ~= '"' do j = j + (text:sub(j, j) == "\\" and 2 or 1) end
      out[#out + 1] = '"' .. fn(text:sub(i + 1, j - 1)) .. '"'
      i = j + 1
    end
  end
  return table.concat(out)
end

local function variants(text)
  return {
    plain = text,
    -- JSON allows "\/": URLs arrive escaped from some serializers
    slashes = in_strings(text, function(s) return (s:gsub("/", "\\/")) end),
    -- every 'e' as \u0065, keys included
    unicode = in_strings(text, function(s) return (s:gsub("e", "\\u0065")) end),
  }
end

local function full(evs, materialize)
  for _, ev in ipairs(evs) do materialize(ev) end
  return evs
end

describe("graphcall.flat (LuaJIT's FFI ingest)", function()
  it("is what graphcall.parse_notifications is under LuaJIT", function()
    assert.equal(flat.parse, graphcall.parse_notifications)
  end)

  for _, path in ipairs(files()) do
    for name, body in pairs(variants(H.read(path))) do
      it("builds what the C API builds: " .. path:match("[^/]+/[^/]+$") .. " (" .. name .. ")", function()
        local a = assert(flat.parse(body))
        local b = assert(core.parse_notifications(body))
        -- the eager fields alike before anything lazy is read
        for i = 1, #b do
          for k, v in pairs(b[i]) do
            if type(v) ~= "table" then assert.equal(v, rawget(a[i], k), k) end
          end
          assert.equal(rawget(b[i], "data") == nil, rawget(a[i], "data") == nil)
        end
        assert.same(full(b, core.materialize), full(a, graphcall.materialize))
      end)
    end
  end

  it("reads lazy parts on first access and then drops the metatable", function()
    local body = H.fixture("seed/ex05-join-meeting-service-media/notify-3-roster-full.json")
    local ev = flat.parse(body)[1]
    local p = ev.participants[1]
    assert.is_table(getmetatable(p))
    assert.is_table(p.info)                       -- read from the body's text now
    assert.is_nil(getmetatable(p))
    assert.same(core.materialize(core.parse_notifications(body)[1]).data, ev.data)
    assert.is_nil(getmetatable(ev))
  end)

  it("keeps lazy parts readable after later bodies reuse the C buffers", function()
    local a = flat.parse(H.fixture("graph/notify-roster-updated.json"))[1]
    for _ = 1, 50 do flat.parse(H.fixture("graph/notify-call-established.json")) end
    local want = core.materialize(core.parse_notifications(H.fixture("graph/notify-roster-updated.json"))[1])
    assert.same(want, graphcall.materialize(a))
  end)

  it("gives the C API's errors, as values with its metatable", function()
    for _, body in ipairs {
      "", "{", "[]", '{"value": 3}', '{"value": [1]}', '{"value": [{"resourceUrl": "/x"}]}',
      '{"value": [{"changeType": "updated"}]}', '{"value": [{"changeType": "updated", "resourceUrl": 5}]}',
      '{"value": [{"changeType": "updated", "resourceUrl": "/communications/calls/a", "resourceData": 1}]}',
      '{"value": ["\\ud800"]}', '{"value": [] } x',
    } do
      local a, ea = flat.parse(body)
      local b, eb = core.parse_notifications(body)
      assert.is_nil(a)
      assert.is_nil(b)
      assert.same({ eb.code, eb.message, eb.path }, { ea.code, ea.message, ea.path })
      assert.equal(tostring(eb), tostring(ea))
    end
  end)

  it("applies the limits the C API applies", function()
    local body = H.fixture("graph/notify-call-established.json")
    for _, opts in ipairs { { max_size = 100 }, { max_depth = 2 }, { max_notifications = 0 } } do
      local _, ea = flat.parse(body, opts)
      local _, eb = core.parse_notifications(body, opts)
      assert.same({ eb.code, eb.message, eb.path }, { ea.code, ea.message, ea.path })
    end
    local many = '{"value": [' .. string.rep(
      '{"changeType": "updated", "resourceUrl": "/communications/calls/a"},', 299) ..
      '{"changeType": "updated", "resourceUrl": "/communications/calls/a"}]}'
    local _, err = flat.parse(many)
    assert.equal("value", err.path)
    assert.equal(300, #flat.parse(many, { max_notifications = 300 }))
  end)

  it("refuses what is not a string, as the C API does", function()
    assert.has_error(function() flat.parse(nil) end)
    assert.has_error(function() flat.parse({}) end)
  end)
end)
