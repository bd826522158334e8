-- bench/roster.lua: a generated 1000-participant roster notification (about 960 KB), in the
-- shape of the service's roster updates (fixtures/graph/notify-roster-updated.json).
local M = {}

function M.text(n)
  n = n or 1000
  local parts = {}
  for i = 1, n do
    parts[i] = string.format([[{"@odata.type":"#microsoft.graph.participant","id":"%08x-01f8-47c6-b12b-c32111a4a86f","info":{"@odata.type":"#microsoft.graph.participantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"%08x-0000-4e22-a1bc-06ea7343958e","displayName":"Participant %d","tenantId":"aa67bd4c-8475-432d-bd41-39f255720e0a"}},"endpointType":"default","region":"westus","languageId":"en-US"},"mediaStreams":[{"@odata.type":"#microsoft.graph.mediaStream","mediaType":"audio","label":"main-audio","sourceId":"%d","direction":"sendReceive","serverMuted":false},{"@odata.type":"#microsoft.graph.mediaStream","mediaType":"video","label":"main-video","sourceId":"%d","direction":"receiveOnly","serverMuted":false}],"isMuted":%s,"isInLobby":false,"rosterSequenceNumber":%d,"metadata":null,"recordingInfo":{"@odata.type":"#microsoft.graph.recordingInfo","recordingStatus":"notRecording","initiator":null}}]],
      i, i, i, 2 * i, 2 * i + 1, i % 3 == 0 and "true" or "false", i)
  end
  return '{"@odata.type":"#microsoft.graph.commsNotifications","value":[{"@odata.type":"#microsoft.graph.commsNotification","changeType":"updated","resourceUrl":"/communications/calls/491f0b00-1a2b-4c3d-8e9f-0a1b2c3d4e5f/participants","resourceData":['
    .. table.concat(parts, ",") .. ']}]}'
end

return M
