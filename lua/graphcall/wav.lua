--- WAV files as the calling service plays them: prompts must be PCM WAV, 16 kHz, mono,
-- 16-bit (REFERENCE.md §1.6). `wav.check(bytes)` tells whether a file will play and how long
-- it lasts; `wav.tone{...}` makes a short tone (for demos and tests, no other tool needed).
-- @module graphcall.wav
local M = {}

local function u16(s, i) local a, b = s:byte(i, i + 1) return a + b * 256 end
local function u32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end
local function le16(n) return string.char(n % 256, math.floor(n / 256) % 256) end
local function le32(n)
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256, math.floor(n / 16777216) % 256)
end

--- Read a WAV header.
-- @param bytes the file
-- @return {format =, channels =, rate =, bits =, dataBytes =, ms =}, or nil and what is wrong
function M.info(bytes)
  if type(bytes) ~= "string" or #bytes < 12 or bytes:sub(1, 4) ~= "RIFF" or bytes:sub(9, 12) ~= "WAVE" then
    return nil, "not a RIFF/WAVE file"
  end
  local i, fmt, data = 13, nil, nil
  while i + 7 <= #bytes do
    local id, size = bytes:sub(i, i + 3), u32(bytes, i + 4)
    local body = i + 8
    if id == "fmt " then
      if size < 16 or body + 15 > #bytes then return nil, "fmt chunk too short" end
      fmt = { format = u16(bytes, body), channels = u16(bytes, body + 2), rate = u32(bytes, body + 4),
              bits = u16(bytes, body + 14) }
    elseif id == "data" then
      data = math.min(size, #bytes - body + 1)
      break
    end
    i = body + size + size % 2
  end
  if not fmt then return nil, "no fmt chunk" end
  if not data then return nil, "no data chunk" end
  local rate = fmt.rate * fmt.channels * fmt.bits / 8
  fmt.dataBytes = data
  fmt.ms = rate > 0 and math.floor(data * 1000 / rate) or 0
  return fmt
end

--- Whether the calling service can play the file: PCM, 16000 Hz, one channel, 16 bits.
-- @return the info (see `info`), or nil and why not
function M.check(bytes)
  local i, err = M.info(bytes)
  if not i then return nil, err end
  if i.format ~= 1 then return nil, "not PCM (format " .. i.format .. ")" end
  if i.rate ~= 16000 then return nil, "sample rate " .. i.rate .. " Hz, not 16000" end
  if i.channels ~= 1 then return nil, i.channels .. " channels, not mono" end
  if i.bits ~= 16 then return nil, i.bits .. "-bit samples, not 16" end
  return i
end

--- A sine tone as a WAV file.
-- @param o `ms` (duration, 500), `hz` (440; 0 for silence), `rate` (16000), `channels` (1),
--   `bits` (16), `volume` (0..1, 0.3)
-- @return the bytes
function M.tone(o)
  o = o or {}
  local ms, hz, rate = o.ms or 500, o.hz or 440, o.rate or 16000
  local channels, bits, vol = o.channels or 1, o.bits or 16, o.volume or 0.3
  local n = math.floor(rate * ms / 1000)
  local bytes = bits / 8
  local out = {}
  local amp = vol * (bits == 16 and 32767 or 127)
  for k = 0, n - 1 do
    local v = math.floor(amp * math.sin(2 * math.pi * hz * k / rate) + 0.5)
    local s
    if bits == 16 then s = le16(v % 65536) else s = string.char((v + 128) % 256) end
    out[#out + 1] = channels == 1 and s or s:rep(channels)
  end
  local data = table.concat(out)
  return "RIFF" .. le32(36 + #data) .. "WAVE" .. "fmt " .. le32(16) .. le16(1) .. le16(channels)
    .. le32(rate) .. le32(rate * channels * bytes) .. le16(channels * bytes) .. le16(bits)
    .. "data" .. le32(#data) .. data
end

return M
