-- The live calls page of a node (`/calls`): live calls with their state, the flow's step, how
-- long they have lasted and the node, recent ones below, each opening its trace; laid out by
-- headless chromium at two widths (no sideways scroll), a screenshot kept in build/screenshots.
local E = require "emu"
local N = require "ngx_helper"
local P = require "prom_helper"
local graphcall = require "graphcall"

local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
local CPATH = os.getenv("LUA_CPATH") or ("./build/" .. E.lua .. "/?.so;;")
local SHOTS = "build/screenshots"

local SCENARIO = [[
return {
  peers = { ["+14255550100"] = { answer = 2000 } },
  incoming = {
    { after = 300, from = { phone = { id = "+14255550101" } }, appId = "graphcall-run",
      caller = { { on = "prompt", after = 1000, press = "2" }, { on = "record", after = 300, speak = 8000 } } },
    { after = 900, from = { phone = { id = "+14255550102" } }, appId = "graphcall-run",
      caller = { { on = "prompt", after = 1500, press = "2" }, { on = "record", after = 300, speak = 8000 } } },
    { after = 1500, from = { phone = { id = "+14255550103" } }, appId = "graphcall-run",
      caller = { { on = "prompt", after = 500, press = "2" }, { on = "record", after = 300, speak = 8000 } } },
  },
}
]]

-- chromium's view of a page: the DOM after a probe script ran, or a screenshot
local PROBE = [[<script>
window.addEventListener("load", function () {
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = "PROBE rows " + document.querySelectorAll("tr").length + " scroll " +
    (document.documentElement.scrollWidth > window.innerWidth + 1 ? "sideways" : "none");
  document.body.appendChild(out);
});
</script>]]

local function chromium(html, width, shot)
  local dir = E.tmpdir()
  local path = dir .. "/page.html"
  local f = assert(io.open(path, "w"))
  f:write(shot and html or html:gsub("</body>", PROBE .. "</body>"))
  f:close()
  local args = shot and ("--screenshot=" .. shot) or "--dump-dom"
  -- the page reloads itself every 2 s: a virtual second is enough to lay it out
  local out = E.sh(string.format("timeout 60 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
    .. "--window-size=%d,800 --virtual-time-budget=1000 %s 'file://%s' 2>/dev/null", width, args, path))
  os.execute("rm -rf " .. dir)
  return out
end

describe("the live calls page", function()
  local dir, port, pid, loop

  setup(function()
    loop = graphcall.loop { log = false }
    dir = E.tmpdir()
    port = N.free_port()
    local f = assert(io.open(dir .. "/scenario.lua", "w"))
    f:write(SCENARIO)
    f:close()
    pid = E.sh(string.format("exec env LUA_PATH='%s' LUA_CPATH='%s' %s bin/graphcall run examples/ivr.lua "
      .. "--emulator %s/scenario.lua --listen 127.0.0.1:%d --prompts %s/prompts --node bot-a --quiet "
      .. ">%s/out 2>%s/err & echo $!", LUA_PATH, CPATH, E.lua, dir, port, dir, dir, dir)):match("%d+")
    for _ = 1, 500 do
      if P.read(dir .. "/out"):find("bot listening on", 1, true) then break end
      os.execute("sleep 0.02")
    end
    os.execute("mkdir -p " .. SHOTS)
  end)

  teardown(function()
    if pid then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
    if dir then os.execute("rm -rf " .. dir) end
    if loop then loop:close() end
  end)

  local function get(path)
    return assert(loop:fetch { url = "http://127.0.0.1:" .. port .. path })
  end

  it("lists the live calls with their state, step, duration and node, then the ended ones", function()
    local page
    for _ = 1, 300 do   -- the three callers are all in their voicemail within about 5 s
      page = get("/calls").body
      local live = tonumber(page:match("(%d+) live"))
      if live == 3 and select(2, page:gsub("recordResponse", "")) >= 3 then break end
      loop:sleep(100)
    end
    assert.matches("3 live, 0 recent", page, 1, true)
    assert.matches('<meta http-equiv="refresh" content="2">', page, 1, true)
    assert.is_nil(page:find("<script", 1, true))           -- no script, nothing from the network
    assert.is_nil(page:find("https?://"))
    assert.equal(3, select(2, page:gsub('class="live">established<', "")))
    assert.equal(3, select(2, page:gsub("<td class=\"wide\">bot%-a</td>", "")))
    assert.equal(3, select(2, page:gsub("recordResponse &quot;Please leave a message", "")))
    local ids = {}
    for id in page:gmatch('<a href="calls/([^"]+)">') do ids[#ids + 1] = id end
    assert.equal(3, #ids)
    -- in a browser: a row per call and the header, no sideways scroll, wide or narrow
    for _, width in ipairs { 1280, 420 } do
      local dom = chromium(page, width)
      assert.matches("PROBE rows 4 scroll none", dom, 1, true)
    end
    chromium(page, 1280, SHOTS .. "/calls-live.png")
    assert.is_true(#P.read(SHOTS .. "/calls-live.png") > 10000)
    -- each call's trace
    local trace = get("/calls/" .. ids[1])
    assert.equal(200, trace.status)
    assert.matches("<h2>call " .. ids[1]:gsub("%-", "%%-") .. "</h2>", trace.body)
    assert.equal(404, get("/calls/no-such-call").status)
    assert.equal(404, get("/calls/..%2Fetc").status)
    -- once they have hung up: recent, with how long they lasted
    for _ = 1, 300 do
      page = get("/calls").body
      if page:find("0 live, 3 recent", 1, true) then break end
      loop:sleep(100)
    end
    assert.matches("0 live, 3 recent", page, 1, true)
    assert.equal(3, select(2, page:gsub('class="ended">terminated<', "")))
    for secs in page:gmatch('<td class="n">([%d.]+) s</td>') do assert.is_true(tonumber(secs) > 5) end
  end)
end)
