#!/usr/bin/env lua5.4
--[[
gen-schema.lua: generate csrc/schema_data.c from Graph's v1.0 metadata (CSDL).

  lua5.4 tools/gen-schema.lua ../shared/graph/v1.0-metadata.csdl > csrc/schema_data.c

Field names, types, enums, abstract/open flags and nullability come from the CSDL. The few
facts the CSDL does not carry (which fields a create-call needs, the https rule, the group call
limit, which type an abstract field means by default) live in POLICY below, each with its source
in ../shared/graph/REFERENCE.md. Needs lua-expat (Debian lua-expat).
]]

local lxp = require "lxp"

-- Entity and complex types the calling API reads and writes (REFERENCE.md §1, §9); their
-- property types are pulled in transitively.
local ROOTS = {
  "call", "participant", "commsOperation", "contentSharingSession",
  "playPromptOperation", "recordOperation", "subscribeToToneOperation",
  "cancelMediaProcessingOperation", "muteParticipantOperation", "unmuteParticipantOperation",
  "updateRecordingStatusOperation", "inviteParticipantsOperation", "sendDtmfTonesOperation",
  "startHoldMusicOperation", "stopHoldMusicOperation",
  "commsNotification", "commsNotifications", "deltaParticipants",
}

-- Bound actions, keyed by what graphcall.build() calls them; value = {CSDL name, binding type}.
local ACTIONS = {
  answer = {"answer", "call"}, reject = {"reject", "call"}, redirect = {"redirect", "call"},
  transfer = {"transfer", "call"}, playPrompt = {"playPrompt", "call"},
  recordResponse = {"recordResponse", "call"}, subscribeToTone = {"subscribeToTone", "call"},
  cancelMediaProcessing = {"cancelMediaProcessing", "call"}, keepAlive = {"keepAlive", "call"},
  mute = {"mute", "call"}, unmute = {"unmute", "call"},
  updateRecordingStatus = {"updateRecordingStatus", "call"},
  changeScreenSharingRole = {"changeScreenSharingRole", "call"},
  sendDtmfTones = {"sendDtmfTones", "call"},
  invite = {"invite", "Collection(graph.participant)"},
  ["participant.mute"] = {"mute", "participant"},
  startHoldMusic = {"startHoldMusic", "participant"},
  stopHoldMusic = {"stopHoldMusic", "participant"},
}

-- Derived types that are not reached through an abstract base but that real payloads use
-- under their base's annotation (the seeds put applicationInstance/phone under identitySet,
-- tenantId under identity). Their fields are found through the base type.
local EXTRA_DERIVED = {
  "communicationsIdentitySet",
  "communicationsApplicationIdentity", "communicationsApplicationInstanceIdentity",
  "communicationsEncryptedIdentity", "communicationsGuestIdentity",
  "communicationsPhoneIdentity", "communicationsUserIdentity",
}

local POLICY = {
  -- §1.1: callbackUri, requestedModalities and mediaConfig are required; targets (P2P, group)
  -- or meetingInfo (join meeting) says whom to call.
  required = {
    call = {"callbackUri", "requestedModalities", "mediaConfig"},
  },
  one_of = { call = {"targets", "meetingInfo"} },
  -- §1.2: the CSDL marks answer's callbackUri non-nullable; the docs call it optional.
  not_required = { ["action:answer"] = {"callbackUri"} },
  -- Notification URLs must be https (plain http only for loopback, for local development).
  https = { "callbackUri" },
  -- §1.1/fixtures: a group call takes at most 5 VoIP targets; §1.4: redirect rings up to 25;
  -- §1.6: at most 20 prompts per playPrompt; §1.7: at most 1 prompt for recordResponse.
  max_items = {
    ["call.targets"] = 5, ["action:redirect.targets"] = 25,
    ["action:playPrompt.prompts"] = 20, ["action:recordResponse.prompts"] = 1,
  },
  -- §1.1 body: a call created by the bot carries outgoingCallOptions.
  default_derived = { callOptions = "outgoingCallOptions" },
  -- Graph's own examples send mediaInfo bare (preFetchMedia, recordResponse prompts): the
  -- type is concrete and final, so the annotation would only be noise.
  no_annotation = { mediaInfo = true },
}

local path = assert(arg[1], "usage: gen-schema.lua v1.0-metadata.csdl")
local csdl_file = assert(io.open(path, "rb"))
local xml = csdl_file:read("a")
csdl_file:close()

-- Parse only the microsoft.graph namespace: ComplexType, EntityType, EnumType, Action.
local types, enums, actions = {}, {}, {}
local cur, cur_action
local ns
local p = lxp.new({
  StartElement = function(_, name, a)
    if name == "Schema" then ns = a.Namespace
    elseif ns ~= "microsoft.graph" then return
    elseif name == "ComplexType" or name == "EntityType" then
      cur = { name = a.Name, base = a.BaseType and a.BaseType:gsub("^graph%.", ""),
              abstract = a.Abstract == "true", open = a.OpenType == "true",
              entity = name == "EntityType", props = {} }
      types[a.Name] = cur
    elseif name == "EnumType" then
      cur = { name = a.Name, enum = true, members = {} }
      enums[a.Name] = cur
    elseif name == "Member" and cur and cur.enum then
      cur.members[#cur.members + 1] = a.Name
    elseif name == "Property" and cur and not cur.enum then
      cur.props[#cur.props + 1] = { name = a.Name, type = a.Type, nonnull = a.Nullable == "false" }
    elseif name == "Action" then
      cur_action = { name = a.Name, params = {} }
    elseif name == "Parameter" and cur_action then
      cur_action.params[#cur_action.params + 1] =
        { name = a.Name, type = a.Type, nonnull = a.Nullable == "false" }
    end
  end,
  EndElement = function(_, name)
    if ns ~= "microsoft.graph" then return end
    if name == "ComplexType" or name == "EntityType" or name == "EnumType" then cur = nil
    elseif name == "Action" and cur_action then
      local b = cur_action.params[1]
      local key = cur_action.name .. "@" .. (b and b.type or "")
      actions[key] = cur_action
      cur_action = nil
    end
  end,
})
assert(p:parse(xml))
assert(p:parse())
p:close()

local EDM = {
  ["Edm.String"] = "STRING", ["Edm.Boolean"] = "BOOL", ["Edm.Int32"] = "INT32",
  ["Edm.Int64"] = "INT64", ["Edm.Int16"] = "INT32", ["Edm.Byte"] = "INT32",
  ["Edm.Double"] = "DOUBLE", ["Edm.Single"] = "DOUBLE", ["Edm.Decimal"] = "DOUBLE",
  ["Edm.DateTimeOffset"] = "STRING", ["Edm.Guid"] = "STRING", ["Edm.Duration"] = "STRING",
  ["Edm.Binary"] = "STRING", ["Edm.Date"] = "STRING", ["Edm.TimeOfDay"] = "STRING",
}

local function split_type(t)
  local coll = false
  local inner = t:match("^Collection%((.*)%)$")
  if inner then coll, t = true, inner end
  return t, coll
end

-- Closure of the types reachable from ROOTS and the action parameters.
local want, order = {}, {}
local function need(name)
  if want[name] then return end
  local t = assert(types[name], "unknown type " .. name)
  want[name] = true
  order[#order + 1] = name
  if t.base and t.base ~= "entity" then need(t.base) end
  for _, pr in ipairs(t.props) do
    local ty = split_type(pr.type)
    local short = ty:match("^graph%.(.*)$")
    if short and types[short] then need(short) end
  end
end
for _, r in ipairs(ROOTS) do need(r) end
local action_keys = {}
for k in pairs(ACTIONS) do action_keys[#action_keys + 1] = k end
table.sort(action_keys)
for _, k in ipairs(action_keys) do
  local csdl, binding = ACTIONS[k][1], ACTIONS[k][2]
  if not binding:find("%(") then binding = "graph." .. binding end
  local a = assert(actions[csdl .. "@" .. binding], "no action " .. csdl .. " bound to " .. binding)
  for i = 2, #a.params do
    local ty = split_type(a.params[i].type)
    local short = ty:match("^graph%.(.*)$")
    if short and types[short] then need(short) end
  end
end
for _, d in ipairs(EXTRA_DERIVED) do need(d) end
-- Concrete types of every abstract type in the closure (mediaConfig, meetingInfo, prompt...).
repeat
  local added = false
  for name, t in pairs(types) do
    if not want[name] and t.base and want[t.base] and types[t.base].abstract then
      need(name); added = true
    end
  end
until not added

local function derived_of(name)
  local out = {}
  for _, n in ipairs(order) do
    local b = types[n].base
    while b do
      if b == name then out[#out + 1] = n break end
      b = types[b] and types[b].base
    end
  end
  table.sort(out)
  return out
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

-- Build the flattened field table of each type: own and inherited fields (CSDL), then fields
-- only its derived types declare (flag DERIVED), so a field a payload sends under the base's
-- annotation is still checked.
local enum_names, enum_index = {}, {}
local function enum_ref(name)
  if not enum_index[name] then
    enum_names[#enum_names + 1] = name
    enum_index[name] = #enum_names - 1
  end
  return enum_index[name]
end

local out_types = {}
local function mkfield(owner, pr, extra_flags)
  local ty, coll = split_type(pr.type)
  local short = ty:match("^graph%.(.*)$")
  local f = { name = pr.name, flags = {} }
  if coll then f.flags[#f.flags + 1] = "COLLECTION" end
  if pr.nonnull then f.flags[#f.flags + 1] = "NONNULL" end
  if EDM[ty] then f.kind = EDM[ty]
  elseif short and enums[short] then f.kind = "ENUM"; f.enum = short; enum_ref(short)
  elseif short and types[short] then f.kind = "COMPLEX"; f.type = short
  else f.kind = "ANY" end
  for _, fl in ipairs(extra_flags or {}) do f.flags[#f.flags + 1] = fl end
  local key = owner .. "." .. pr.name
  if POLICY.max_items[key] then f.max_items = POLICY.max_items[key] end
  if set_of(POLICY.https)[pr.name] and f.kind == "STRING" then f.flags[#f.flags + 1] = "HTTPS" end
  return f
end

local function requiredness(owner, f, nonnull, is_entity)
  local req = set_of(POLICY.required[owner])[f.name]
  if not is_entity and nonnull then req = true end
  if set_of(POLICY.not_required[owner])[f.name] then req = false end
  if req then f.flags[#f.flags + 1] = "REQUIRED" end
  if set_of(POLICY.one_of[owner])[f.name] then f.flags[#f.flags + 1] = "ONE_OF" end
end

local function chain(name)
  local c, n = {}, name
  while n and n ~= "entity" do table.insert(c, 1, n); n = types[n].base end
  return c
end

table.sort(order)
for _, name in ipairs(order) do
  local t = types[name]
  local fields, seen = {}, {}
  local entity = t.entity
  if entity then
    local idf = mkfield(name, { name = "id", type = "Edm.String" })
    fields[#fields + 1] = idf; seen.id = true
  end
  for _, tn in ipairs(chain(name)) do
    for _, pr in ipairs(types[tn].props) do
      if not seen[pr.name] then
        local fl = mkfield(name, pr)
        requiredness(name, fl, pr.nonnull, entity)
        fields[#fields + 1] = fl; seen[pr.name] = true
      end
    end
  end
  if not t.abstract then
    for _, d in ipairs(derived_of(name)) do
      for _, pr in ipairs(types[d].props) do
        if not seen[pr.name] then
          fields[#fields + 1] = mkfield(name, pr, { "DERIVED" }); seen[pr.name] = true
        end
      end
    end
  end
  local concrete = {}
  for _, d in ipairs(derived_of(name)) do
    if not types[d].abstract then concrete[#concrete + 1] = d end
  end
  local deflt = POLICY.default_derived[name]
  if not deflt and t.abstract and #concrete == 1 then deflt = concrete[1] end
  out_types[#out_types + 1] = {
    name = name, odata = "#microsoft.graph." .. name, base = t.base ~= "entity" and t.base or nil,
    abstract = t.abstract, open = t.open, fields = fields, deflt = deflt,
    noannot = POLICY.no_annotation[name], concrete = concrete,
  }
end

for _, k in ipairs(action_keys) do
  local csdl, binding = ACTIONS[k][1], ACTIONS[k][2]
  if not binding:find("%(") then binding = "graph." .. binding end
  local a = actions[csdl .. "@" .. binding]
  local owner = "action:" .. k
  local fields = {}
  for i = 2, #a.params do
    local pr = a.params[i]
    local fl = mkfield(owner, pr)
    requiredness(owner, fl, pr.nonnull, false)
    fields[#fields + 1] = fl
  end
  out_types[#out_types + 1] = { name = owner, action = true, fields = fields, open = true,
                                binding = ACTIONS[k][2] }
end

table.sort(out_types, function(x, y) return x.name < y.name end)
local tindex = {}
for i, t in ipairs(out_types) do tindex[t.name] = i - 1 end
table.sort(enum_names)
for i, n in ipairs(enum_names) do enum_index[n] = i - 1 end

-- Emit C.
local w = {}
local function emit(s, ...) w[#w + 1] = string.format(s, ...) end
emit("/* GENERATED by tools/gen-schema.lua from Graph's v1.0 metadata. Do not edit: change the\n")
emit(" * generator's POLICY and run `make schema`. */\n")
emit("#include \"schema.h\"\n\n")

emit("static const char *const enum_members[] = {\n")
local mstart = {}
local nm = 0
for _, n in ipairs(enum_names) do
  mstart[n] = nm
  local ms = {}
  for _, m in ipairs(enums[n].members) do ms[#ms + 1] = string.format("%q", m) end
  emit("  /* %s */ %s,\n", n, table.concat(ms, ", "))
  nm = nm + #enums[n].members
end
emit("};\n\n")
emit("const gc_enum gc_enums[] = {\n")
for _, n in ipairs(enum_names) do
  emit("  { %q, %d, %d },\n", n, mstart[n], #enums[n].members)
end
emit("};\nconst int gc_nenums = %d;\n\n", #enum_names)
emit("const char *const *const gc_enum_members = enum_members;\n\n")

emit("const gc_field gc_fields[] = {\n")
local nf = 0
for _, t in ipairs(out_types) do
  t.field0 = nf
  emit("  /* %s */\n", t.name)
  for _, f in ipairs(t.fields) do
    local flags = #f.flags > 0 and ("GC_F_" .. table.concat(f.flags, " | GC_F_")) or "0"
    local ref = -1
    if f.kind == "ENUM" then ref = enum_index[f.enum]
    elseif f.kind == "COMPLEX" then ref = assert(tindex[f.type], f.type) end
    emit("  { %q, %d, GC_K_%s, %s, %d, %d },%s\n", f.name, #f.name, f.kind, flags, ref,
         f.max_items or 0, f.type and (" /* " .. f.type .. " */") or
         (f.enum and (" /* enum " .. f.enum .. " */") or ""))
    nf = nf + 1
  end
end
emit("};\n\n")

emit("const gc_type gc_types[] = {\n")
for _, t in ipairs(out_types) do
  local flags = {}
  if t.abstract then flags[#flags + 1] = "GC_T_ABSTRACT" end
  if t.open then flags[#flags + 1] = "GC_T_OPEN" end
  if t.noannot or t.action then flags[#flags + 1] = "GC_T_NO_ANNOTATION" end
  if t.action then flags[#flags + 1] = "GC_T_ACTION" end
  local req, oneof = 0, 0
  assert(#t.fields <= 64, t.name .. " has more than 64 fields")
  for i, f in ipairs(t.fields) do
    for _, fl in ipairs(f.flags) do
      if fl == "REQUIRED" then req = req | (1 << (i - 1)) end
      if fl == "ONE_OF" then oneof = oneof | (1 << (i - 1)) end
    end
  end
  emit("  { %q, %d, %s, %d, %d, %d, %d, %s, 0x%xu, 0x%xu },\n", t.name, #t.name,
       t.odata and string.format("%q", t.odata) or "NULL",
       t.base and tindex[t.base] or -1, t.deflt and tindex[t.deflt] or -1,
       t.field0, #t.fields, #flags > 0 and table.concat(flags, " | ") or "0", req, oneof)
end
emit("};\nconst int gc_ntypes = %d;\n", #out_types)

io.write(table.concat(w))
