-- Shared by the specs: where the fixtures are, and small JSON helpers that do not depend on
-- graphcall itself (lua-cjson decodes what graphcall writes).
local cjson = require "cjson"

local H = {}

-- a plain copy of ../shared/fixtures, so a clone alone is enough
H.fixtures = os.getenv("GRAPHCALL_FIXTURES") or "spec/fixtures"

function H.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

--- A file's text, or "" when it is not there (yet): for polling what a process writes.
function H.read_if(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

function H.fixture(rel) return H.read(H.fixtures .. "/" .. rel) end
function H.json_fixture(rel) return cjson.decode(H.fixture(rel)) end

--- The README's five-minute flow (the `-- hello.lua` block), written to a temporary file.
-- @return the file's path (os.remove it when done)
function H.readme_flow()
  local text = H.read("README.md")
  local code = text:match("```lua\n(%-%- hello%.lua\n.-)```")
  assert(code, "the README has no hello.lua block")
  local path = os.tmpname() .. ".lua"
  local out = assert(io.open(path, "w"))
  out:write(code)
  out:close()
  return path
end

--- The file names in a folder of the fixtures, sorted.
function H.fixture_names(dir)
  local out = {}
  local p = io.popen("ls -1 '" .. H.fixtures .. "/" .. dir .. "'")
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  return out
end

H.seeds = {
  "ex01-p2p-voip-service-media", "ex02-p2p-voip-app-media",
  "ex03-group-call-service-media", "ex04-group-call-app-media",
  "ex05-join-meeting-service-media", "ex06-join-meeting-app-media",
  "ex07-join-meeting-id-passcode", "ex08-join-meeting-id",
  "ex09-p2p-pstn-service-media", "ex10-p2p-pstn-app-media",
}

--- A deep copy of v without @odata.type, except under the keys in keep.
function H.strip(v, keep, under)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if not (k == "@odata.type" and not (keep[under] )) then
      out[k] = H.strip(x, keep, type(k) == "string" and k or under)
    end
  end
  return out
end

--- Count @odata.type annotations in a decoded value.
function H.count_annotations(v)
  if type(v) ~= "table" then return 0 end
  local n = v["@odata.type"] and 1 or 0
  for _, x in pairs(v) do n = n + H.count_annotations(x) end
  return n
end

return H
