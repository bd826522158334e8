--- Tables a user writes (a verb's options, a bot's, a scenario's), checked where they are
-- written: a key nobody reads is an error that names it, suggests the closest known one, and
-- points at the user's line, not the library's; so is a required key that is missing.
--
--   strict.options(o, { "prompt", "min", "max" }, "collect")   -- in a function the user calls
--
-- The error points at the first frame of the stack that is not graphcall's own code (nor C):
-- the user's line, however deep in the library the check runs.
-- @module graphcall.strict
local M = {}

-- graphcall's own files: where this one is (".../graphcall/")
local LIB = debug.getinfo(1, "S").source:match("^@(.*[/\\])[^/\\]+$") or ""

-- The stack level (as `error` counts it, from the caller of this function's caller) of the
-- first frame that is the user's.
local function user_level()
  local l = 3
  while true do
    local info = debug.getinfo(l, "S")
    if not info then return 1 end
    local src = info.source
    if src ~= "=[C]" and not (src:sub(1, 1) == "@" and src:sub(2, #LIB + 1) == LIB) then return l - 1 end
    l = l + 1
  end
end

--- Raise `msg` at the user's line (the first frame outside graphcall).
-- @param msg the message
function M.fail(msg)
  error(msg, user_level())
end

-- The edit distance of a and b (insertions, deletions, substitutions, adjacent swaps).
local function distance(a, b)
  local la, lb = #a, #b
  if math.abs(la - lb) > 3 then return 99 end
  local prev2, prev = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, prev2[j - 2] + 1)
      end
      cur[j] = v
    end
    prev2, prev = prev, cur
  end
  return prev[lb]
end

--- The known name closest to `name`, if one is close enough to be what was meant.
-- @param name what was written
-- @param known a list of names
-- @return the suggestion, or nil
function M.closest(name, known)
  if type(name) ~= "string" then return nil end
  local best, bestd
  local lower = name:lower()
  for _, k in ipairs(known) do
    local d = distance(lower, k:lower())
    if d < (bestd or math.huge) then best, bestd = k, d end
  end
  if best and bestd <= math.max(1, math.floor(#best / 3)) then return best end
end

--- The message for an unknown key: "what: unknown option 'promt' (did you mean 'prompt'?)".
function M.unknown(what, key, known)
  local hint = M.closest(key, known)
  local msg = string.format("%s: unknown option '%s'", what, tostring(key))
  if hint then return msg .. " (did you mean '" .. hint .. "'?)" end
  local list = {}
  for i, k in ipairs(known) do list[i] = k end
  table.sort(list)
  return msg .. " (known: " .. table.concat(list, ", ") .. ")"
end

--- Check a table of options: every key known, every required one there; raises at the
-- user's line.
-- @param o the table (nil is an empty one)
-- @param known a list of the keys it may have
-- @param what what the table is for, in the message ("collect", "bot")
-- @param required a list of keys it must have
-- @return o
function M.options(o, known, what, required)
  if o == nil then o = {} end
  if type(o) ~= "table" then M.fail(string.format("%s: options are a table, got %s", what, type(o))) end
  local set = known.set
  if not set then
    set = {}
    for _, k in ipairs(known) do set[k] = true end
    known.set = set
  end
  for k in pairs(o) do
    if not set[k] then M.fail(M.unknown(what, k, known)) end
  end
  for _, k in ipairs(required or {}) do
    if o[k] == nil then M.fail(string.format("%s: '%s' is required", what, k)) end
  end
  return o
end

return M
