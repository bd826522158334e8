-- A flow for the nginx specs: a caller who never presses anything, short timeouts (the
-- sweeper brings the flow back at each deadline, in whichever worker).
return {
  flow = function(call)
    if not call:answer() then return end
    local digit, err = call:collect { prompt = "Press a key.", firstTimeout = 400, tries = 3,
                                      noInput = "Nothing?" }
    call.result = digit or err.code
    call:play "Goodbye."
    call:hangup()
  end,
}
