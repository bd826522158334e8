-- examples/openresty/bot.lua: the flow nginx runs (nginx.conf's init_worker_by_lua_block).
-- The same kind of script `graphcall run` takes; inside nginx each event of a call may reach
-- another worker, which replays the call's log from the shared dict and goes on from there.
-- Plus handlers (`on`): they see every event, in whichever worker takes it.
local SALES = "+14255550100"

return {
  flow = function(call)
    if not call:answer() then return end
    local choice, err = call:collect {
      prompt = { text = "Welcome to Contoso. For sales, press 1. To hear the opening hours, press 2." },
      max = 1, valid = "[12]", tries = 3, firstTimeout = 5000,
      noInput = { text = "Sorry, I did not hear a choice." },
      noMatch = { text = "Sorry, that is not a choice." },
    }
    if choice == "1" then
      call:play { text = "Connecting you to sales." }
      if call:transfer { to = SALES } then return end
      call:play { text = "Sales is not available." }
    elseif choice == "2" then
      call:play { text = "We are open from nine to five, Monday to Friday." }
    elseif err.code == "hangup" then
      return
    end
    call:play { text = "Goodbye." }
    call:hangup()
  end,

  on = {
    terminated = function(call, ev)
      local ri = ev.resultInfo or {}
      ngx.log(ngx.NOTICE, "call ", call.id, " ended: ", ri.code or "?", "/", ri.subcode or "?")
    end,
  },
}
