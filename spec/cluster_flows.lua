-- spec/cluster_flows.lua: every example's flow in one script (the IVR's as the flow of incoming
-- calls, the others by name), for nginx instances that must each know every flow: any
-- instance takes any callback of any call.
local T = require "graphcall.test"

local flows = {}
for _, ex in ipairs { "notify", "group", "meeting" } do
  flows[ex] = assert(T.load("examples/" .. ex .. ".lua")).flow
end
return { flow = assert(T.load("examples/ivr.lua")).flow, flows = flows }
