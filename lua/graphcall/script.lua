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
local M = {}

--- Load a flow script.
-- @param path the file
-- @return the script's table, or nil and a message
function M.load(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, script = pcall(chunk)
  if not ok then return nil, script end
  if type(script) ~= "table" or (not script.flow and not script.flows and not script.start and not script.on) then
    return nil, path .. ": a flow script returns {flow = function(call) ... end, ...} (or flows, on, start)"
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
