--- Flow scripts: a Lua file that returns what a bot runs, loaded the same way by every host
-- (`graphcall run`, `graphcall.ngx`, the test harness `graphcall.test`).
--
--   return {
--     flow = function(call) ... end,            -- the flow of each call ("main")
--     flows = { name = function(call) ... end },  -- named flows (`bot:call(spec, {flow = name})`)
--     on = { tone = function(call, ev) ... end }, -- handlers (`bot:on`)
--     scenario = { ... },                       -- what `--emulator` plays
--     start = function(bot) ... end,            -- run once the bot has started (standalone)
--   }
-- @module graphcall.script
local strict = require "graphcall.strict"

local M = {}

local SCRIPT = { "flow", "flows", "on", "scenario", "start" }

--- Load a flow script.
-- @param path the file
-- @return the script's table, or nil and a message
function M.load(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, script = pcall(chunk)
  if not ok then return nil, script end
  if type(script) ~= "table" then
    return nil, path .. ": a flow script returns {flow = function(call) ... end, ...} (or flows, on, start)"
  end
  for k in pairs(script) do
    if not SCRIPT.set then
      SCRIPT.set = {}
      for _, n in ipairs(SCRIPT) do SCRIPT.set[n] = true end
    end
    if not SCRIPT.set[k] then return nil, path .. ": " .. strict.unknown("the script's table", k, SCRIPT) end
  end
  if not script.flow and not script.flows and not script.start and not script.on then
    return nil, path .. ": a flow script returns {flow = function(call) ... end, ...} (or flows, on, start)"
  end
  for k, v in pairs { flow = "function", flows = "table", on = "table", scenario = "table", start = "function" } do
    if script[k] ~= nil and type(script[k]) ~= v then
      return nil, string.format("%s: the script's %s is a %s, got %s", path, k, v, type(script[k]))
    end
  end
  return script
end

--- Give a bot a script's flows and handlers (`flow`, `flows`, `on`).
-- @param bot a `graphcall.bot`
-- @param script a script's table (or any table with those fields)
-- @return the bot
function M.apply(bot, script)
  if script.flow then bot:flow(script.flow) end
  for name, fn in pairs(script.flows or {}) do bot:flow(name, fn) end
  for name, fn in pairs(script.on or {}) do bot:on(name, fn) end
  return bot
end

return M
