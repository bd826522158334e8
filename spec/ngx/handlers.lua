-- Handlers without a flow, for the nginx specs: each event in whichever worker takes it. The
-- caller presses a key; the bot answers, subscribes to tones, and hangs up on the key.
local function note(call, what)
  local d = ngx.shared.graphcall
  d:safe_set("seen:" .. call.id, (d:get("seen:" .. call.id) or "") .. what .. "@" .. ngx.worker.id() .. " ")
end

return {
  on = {
    incoming = function(call)
      note(call, "incoming")
      call:action("answer", { callbackUri = call.bot.callbackUri, acceptedModalities = { "audio" },
        mediaConfig = { ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig" } })
    end,
    established = function(call)
      note(call, "established")
      call:action("subscribeToTone", { clientContext = "keys" })
    end,
    tone = function(call, ev)
      note(call, "tone:" .. ev.toneInfo.tone)
      call:action("hangup")
    end,
    terminated = function(call) note(call, "terminated") end,
  },
}
