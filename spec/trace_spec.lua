-- The trace page: what played and what was collected, long text wrapped, pauses shown as
-- gaps, and the page laid out by a real browser (headless chromium) at two widths with no
-- label outside the chart or on top of another.
local T = require "graphcall.test"
local trace = require "graphcall.trace"

-- A voicemail call of example (a), as the bot logged it.
local function voicemail()
  local h = T.new { script = "examples/ivr.lua" }
  local v = h:incoming { caller = { { on = "prompt", after = 1500, press = "2" },
                                    { on = "record", after = 300, speak = 4000 } } }
  local entries = h.bot.store:log(v.id)
  h:close()
  return entries, v.id
end

local function texts(rows, dir)
  local out = {}
  for _, r in ipairs(rows) do if not dir or r.dir == dir then out[#out + 1] = r.text end end
  return out
end

describe("the trace", function()
  local entries, id
  setup(function() entries, id = voicemail() end)

  it("says what each prompt played and the digits collected", function()
    local out = table.concat(texts(trace.rows(entries), "out"), "\n")
    assert.matches('playPrompt "Welcome to Contoso%. For sales, press 1%..-"  %(client%-request%-id', out)
    assert.matches('recordResponse "Please leave a message after the beep%..-"', out)
    assert.matches('playPrompt "Thank you%. Your message has been recorded%."', out)
    assert.same({ "flow main starts (incoming)", "collected 2" }, { texts(trace.rows(entries), "flow")[1],
                                                                   texts(trace.rows(entries), "flow")[2] })
  end)

  it("shows a pause of a second or more as a gap with its length, shorter ones not", function()
    local svg = trace.svg(entries)
    local gaps = {}
    for s in svg:gmatch(">(%d+%.%d) s later<") do gaps[#gaps + 1] = tonumber(s) end
    assert.is_true(#gaps >= 2)                      -- the menu until the key, the message
    for _, g in ipairs(gaps) do assert.is_true(g >= 1.0) end
    local rows = trace.rows(entries)
    local long = 0
    for i = 2, #rows do if rows[i].t - rows[i - 1].t >= 1000 then long = long + 1 end end
    assert.equal(long, #gaps)
  end)

  it("wraps long labels, breaking a word longer than a line, never inside a character", function()
    local name = "recording saved: " .. string.rep("9ac404b8-", 8) .. "é.wav"
    local svg = trace.svg { { k = "start", t = 0, flow = "main", dir = "incoming" },
                            { k = "step", t = 10, n = 1, w = "download", v = { path = "/r/" .. name:sub(18) } } }
    local longest = 0
    for line in svg:gmatch("<tspan[^>]*>([^<]*)</tspan>") do longest = math.max(longest, #line) end
    assert.is_true(longest <= 32, "a line of " .. longest)
    assert.matches("é%.wav</tspan>", svg)            -- the two bytes of é together
    assert.is_true(select(2, svg:gsub("<tspan", "")) >= 3)
  end)

  describe("in a browser", function()
    -- the page with a script that measures every label of every chart, run by chromium: the
    -- script writes what is wrong into the page, and --dump-dom prints it
    local PROBE = [[<script>
window.addEventListener("load", function () {
  var bad = [];
  if (document.documentElement.scrollWidth > window.innerWidth + 1) bad.push("the page scrolls sideways");
  document.querySelectorAll("svg").forEach(function (svg) {
    var box = svg.getBoundingClientRect(), seen = [];
    svg.querySelectorAll("text").forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (r.left < box.left - 1 || r.right > box.right + 1) bad.push("outside: " + t.textContent);
      seen.forEach(function (o) {
        var q = o.getBoundingClientRect();
        if (r.left < q.right - 1 && q.left < r.right - 1 && r.top < q.bottom - 1 && q.top < r.bottom - 1)
          bad.push("overlap: " + t.textContent + " / " + o.textContent);
      });
      seen.push(t);
    });
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = "PROBE " + document.querySelectorAll("svg text").length + " labels; " +
    (bad.length ? bad.join(" | ") : "all in place");
  document.body.appendChild(out);
});
</script>]]

    local function render(width)
      local page = trace.html({ { id = id, entries = entries } }, "voicemail")
      page = page:gsub("</body>", function() return PROBE .. "</body>" end)
      local path = os.tmpname() .. ".html"
      local f = assert(io.open(path, "w"))
      f:write(page)
      f:close()
      local p = io.popen(string.format("timeout 60 chromium --headless --no-sandbox --disable-gpu "
        .. "--window-size=%d,900 --virtual-time-budget=2000 --dump-dom 'file://%s' 2>/dev/null", width, path))
      local dom = p:read("*a")
      p:close()
      os.remove(path)
      return dom:match("<pre id=\"probe\">(PROBE [^<]*)</pre>") or ("no result from chromium: " .. dom:sub(1, 200))
    end

    for _, width in ipairs { 1280, 420 } do
      it("lays out every label inside its chart, none on another, at " .. width .. " px", function()
        local result = render(width)
        assert.matches("^PROBE %d+ labels; all in place$", result)
        assert.is_true(tonumber(result:match("PROBE (%d+)")) > 30)
      end)
    end
  end)
end)
