-- tools/layers.lua: the Lua half reads top-down. Every module of lua/graphcall is in exactly one
-- layer, and a module requires only modules of its own layer or below, never round a circle;
-- a `require` inside a function (a lazy one) counts the same. `make lint` runs it; it exits 1
-- on the first problems, naming file and line.
--
--   lua5.4 tools/layers.lua [--graph] [DIR]   (--graph prints each module's requires; DIR holds
--                                             lua/graphcall, "." by default)

local LAYERS = {
  { name = "wire", "graphcall.core", "graphcall.wire", "graphcall.strict", "graphcall.response", "graphcall.metrics",
    "graphcall.log",
    "graphcall.flat", "graphcall.tracker", "graphcall.jwt", "graphcall.wav" },
  { name = "I/O", "graphcall.io", "graphcall.loop", "graphcall.files", "graphcall.client",
    "graphcall.listener", "graphcall.redis", "graphcall.ngx.loop", "graphcall.ngx.http" },
  { name = "calls", "graphcall.call", "graphcall.ivr", "graphcall.trace" },
  { name = "durability", "graphcall.store", "graphcall.redisstore", "graphcall.ngx.store",
    "graphcall.runtime" },
  { name = "hosts", "graphcall", "graphcall.script", "graphcall.check", "graphcall.bot", "graphcall.ngx",
    "graphcall.test", "graphcall.emulator", "graphcall.emulator.*" },
}

local layer_of = {}
for i, l in ipairs(LAYERS) do
  for _, m in ipairs(l) do
    if layer_of[m] then error("tools/layers.lua: " .. m .. " is in two layers") end
    layer_of[m] = i
  end
end

local function layer(m)
  if layer_of[m] then return layer_of[m] end
  local parent = m:match("^(.*)%.[^.]+$")
  return parent and layer_of[parent .. ".*"]
end

local show, root = false, "."
for _, a in ipairs(arg) do
  if a == "--graph" then show = true else root = a end
end

-- the modules: lua/graphcall/**.lua, named as require names them
local files = {}
local p = io.popen("cd '" .. root:gsub("'", "'\\''") .. "' && find lua/graphcall -name '*.lua' | sort")
for path in p:lines() do files[#files + 1] = path end
p:close()
if #files == 0 then
  io.stderr:write("layers: no lua/graphcall under ", root, "\n")
  os.exit(1)
end

local function module_name(path)
  local m = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return m
end

local problems, graph, names = {}, {}, {}
for _, path in ipairs(files) do
  local m = module_name(path)
  names[#names + 1] = m
  graph[m] = {}
  if not layer(m) then
    problems[#problems + 1] = path .. ": " .. m .. " is in no layer (add it to tools/layers.lua)"
  end
  local n = 0
  for line in io.lines(root .. "/" .. path) do
    n = n + 1
    local code = line:gsub("%-%-.*$", "")
    for req in code:gmatch("require%s*%(?%s*[\"']([%w_.]+)[\"']") do
      graph[m][#graph[m] + 1] = { to = req, line = n, path = path }
    end
    for req in code:gmatch("require%s*,%s*[\"']([%w_.]+)[\"']") do   -- pcall(require, "x")
      graph[m][#graph[m] + 1] = { to = req, line = n, path = path }
    end
  end
end

-- upward requires
for _, m in ipairs(names) do
  local lm = layer(m)
  for _, r in ipairs(graph[m]) do
    if r.to == "graphcall" or r.to:match("^graphcall%.") then
      local lr = layer(r.to)
      if not lr then
        problems[#problems + 1] = string.format("%s:%d: requires %s, which is in no layer", r.path, r.line, r.to)
      elseif lm and lr > lm then
        problems[#problems + 1] = string.format("%s:%d: %s (%s) requires %s (%s), a layer above it",
          r.path, r.line, m, LAYERS[lm].name, r.to, LAYERS[lr].name)
      end
    end
  end
end

-- circles: depth-first, each one reported once
local state, stack = {}, {}
local function visit(m)
  state[m] = "open"
  stack[#stack + 1] = m
  for _, r in ipairs(graph[m] or {}) do
    if graph[r.to] then
      if state[r.to] == "open" then
        local from
        for i, s in ipairs(stack) do if s == r.to then from = i end end
        local ring = {}
        for i = from, #stack do ring[#ring + 1] = stack[i] end
        ring[#ring + 1] = r.to
        problems[#problems + 1] = string.format("%s:%d: a circle: %s", r.path, r.line, table.concat(ring, " -> "))
      elseif not state[r.to] then
        visit(r.to)
      end
    end
  end
  stack[#stack] = nil
  state[m] = "done"
end
table.sort(names)
for _, m in ipairs(names) do if not state[m] then visit(m) end end

if show then
  for i, l in ipairs(LAYERS) do
    print(string.format("%d %s", i, l.name))
    for _, m in ipairs(names) do
      if layer(m) == i then
        local seen, tos = {}, {}
        for _, r in ipairs(graph[m]) do
          if r.to:match("^graphcall") and not seen[r.to] then
            seen[r.to] = true
            tos[#tos + 1] = r.to:gsub("^graphcall%.", "")
          end
        end
        table.sort(tos)
        print(string.format("    %-24s -> %s", m, table.concat(tos, " ")))
      end
    end
  end
end

if #problems > 0 then
  for _, s in ipairs(problems) do io.stderr:write(s, "\n") end
  io.stderr:write(string.format("layers: %d problem(s)\n", #problems))
  os.exit(1)
end
print(string.format("layers: %d modules in %d layers, every require downward, no circle", #names, #LAYERS))
