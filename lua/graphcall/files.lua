--- Folders and files through LuaFileSystem (Debian's lua-filesystem), never a shell: paths with
-- spaces, quotes or anything else are taken as they are.
-- @module graphcall.files
local core = require "graphcall.core"

local M = {}

-- loaded when first needed: a bot in nginx that never touches a folder does without it
local function lfs()
  local ok, mod = pcall(require, "lfs")
  if not ok then error("graphcall: folders need LuaFileSystem (Debian: lua-filesystem)", 3) end
  return mod
end

--- Make a folder and the folders above it that are missing (as `mkdir -p`), each one made
-- readable by this user alone (0700: they hold callers' numbers and voices).
-- @param path the folder
-- @return true, or nil and why not
function M.mkdirs(path)
  local fs = lfs()
  if fs.attributes(path, "mode") == "directory" then return true end
  local sofar = path:sub(1, 1) == "/" and "/" or ""
  for part in path:gmatch("[^/]+") do
    sofar = sofar .. part
    local mode = fs.attributes(sofar, "mode")
    if mode == nil then
      local ok, err = core.private_dir(sofar)
      if not ok and fs.attributes(sofar, "mode") ~= "directory" then   -- (another process made it)
        return nil, string.format("cannot make the folder %s: %s", sofar, tostring(err))
      end
    elseif mode ~= "directory" then
      return nil, string.format("%s is not a folder", sofar)
    end
    sofar = sofar .. "/"
  end
  return true
end

--- The names in a folder (not . and ..), sorted; an empty list if it is not there.
function M.list(dir)
  local fs = lfs()
  local out = {}
  if fs.attributes(dir, "mode") ~= "directory" then return out end
  for name in fs.dir(dir) do
    if name ~= "." and name ~= ".." then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

--- Whether a folder can be written (made if missing): a file is written into it and removed.
-- @return true, or nil and why not
function M.writable(dir)
  local ok, err = M.mkdirs(dir)
  if not ok then return nil, err end
  local probe = dir .. "/.graphcall-probe-" .. tostring(os.time()) .. tostring(math.random(1e6))
  local f, ferr = io.open(probe, "wb")
  if not f then return nil, string.format("cannot write in %s: %s", dir, tostring(ferr)) end
  f:close()
  os.remove(probe)
  return true
end

--- Where a program is on the PATH (as `command -v`, without a shell).
-- @param name the program's name
-- @return its path, or nil
function M.which(name)
  if name:find("/", 1, true) then return nil end
  local fs = lfs()
  for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    local path = dir .. "/" .. name
    local perm = fs.attributes(path, "permissions")
    if perm and fs.attributes(path, "mode") == "file" and perm:find("x", 1, true) then return path end
  end
end

return M
