-- wrk script for bench/listener.lua: POSTs signed commsNotifications, each one news (a key
-- press with the next sequenceId, on one of GC_CALLS calls, 1,000), and counts what was not a 202.
local token = os.getenv("GC_TOKEN") or ""
local n = 0
-- threads number themselves, so two threads never send the same key press
local threads = tonumber(os.getenv("GC_THREADS") or "1")
local counter = 0
local calls = tonumber(os.getenv("GC_CALLS") or "1000")   -- how many calls the key presses spread over
local offset = tonumber(os.getenv("GC_OFFSET") or "0")    -- where sequenceIds start (runs that follow one another)
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

local FMT = '{"@odata.type":"#microsoft.graph.commsNotifications","value":[{"@odata.type":'
  .. '"#microsoft.graph.commsNotification","changeType":"updated","resourceUrl":'
  .. '"/communications/calls/%08d-1a2b-4c3d-8e9f-0a1b2c3d4e5f","resourceData":{"@odata.type":'
  .. '"#microsoft.graph.call","state":"established","toneInfo":{"@odata.type":'
  .. '"#microsoft.graph.toneInfo","sequenceId":%d,"tone":"tone5"}}}]}'

function request()
  n = n + 1
  local seq = offset + n * threads + (tid or 0)
  return wrk.format(nil, nil, nil, string.format(FMT, seq % calls, seq))
end

local bad = 0
function response(status)
  if status ~= 202 then bad = bad + 1 end
end

function done(summary)
  io.write(string.format("not202 %d\n", summary.errors.status))
end
