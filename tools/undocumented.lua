-- tools/undocumented.lua FILE...: the public functions (`function M.name`, `function
-- Class:name`, not `_name`) without an LDoc comment (`---`) above them; exit 1 if any. `make
-- lint` runs it on lua/, so every public function is in the API reference.
local missing = 0
for _, path in ipairs(arg) do
  local lines = {}
  for l in io.lines(path) do lines[#lines + 1] = l end
  for i, l in ipairs(lines) do
    local name = l:match("^function ([%w_]+[.:][%a][%w_]*)%(") or l:match("^([%w_]+%.[%a][%w_]*) = function")
    if name and not name:match("[.:]_") then
      -- walk up through the comment block
      local j = i - 1
      local doc = false
      while j >= 1 and lines[j]:match("^%-%-") do
        if lines[j]:match("^%-%-%-") then doc = true end
        j = j - 1
      end
      if not doc then
        print(path .. ":" .. i .. ": " .. name .. " has no LDoc comment (---)")
        missing = missing + 1
      end
    end
  end
end
os.exit(missing == 0 and 0 or 1)
