-- bench/cluster-bot.lua: the bot of bench/cluster.lua and bench/soak.lua: a handler only, so
-- what is measured is what each notification costs the shared runtime (the inbox before the
-- 202, the lease, the tracker's state, the log entry and the head, in Redis).
local tones = 0
return {
  on = { tone = function() tones = tones + 1 end },
}
