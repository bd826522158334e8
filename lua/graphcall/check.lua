--- What a deployment needs, tried before the first call comes (`graphcall check`, and
-- `graphcall run` when it talks to Graph for real): the credentials and callback URL, a token,
-- the callback signing keys, the folders, the Redis, the text-to-speech tools. Each problem is
-- one line that says what to fix.
-- @module graphcall.check
local core = require "graphcall.core"
local files = require "graphcall.files"

local M = {}

--- The environment variables `graphcall run` reads to talk to Graph (the secret, or a
-- certificate and its key: `GRAPHCALL_CLIENT_CERTIFICATE` and `GRAPHCALL_CLIENT_KEY`, PEM files).
M.ENV = { "GRAPHCALL_TENANT_ID", "GRAPHCALL_CLIENT_ID", "GRAPHCALL_CLIENT_SECRET", "GRAPHCALL_CALLBACK_URI" }

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  return text
end

--- The client's credentials from the environment: `{clientSecret =}`, or `{certificate =,
-- key =}` read from the files `GRAPHCALL_CLIENT_CERTIFICATE` and `GRAPHCALL_CLIENT_KEY` name.
-- @param getenv (os.getenv)
-- @return the options for `graphcall.client`, or nil and a problem
function M.credentials(getenv)
  getenv = getenv or os.getenv
  local cert, key = getenv("GRAPHCALL_CLIENT_CERTIFICATE"), getenv("GRAPHCALL_CLIENT_KEY")
  if (cert or "") == "" and (key or "") == "" then return { clientSecret = getenv("GRAPHCALL_CLIENT_SECRET") } end
  if (cert or "") == "" or (key or "") == "" then
    return nil, "GRAPHCALL_CLIENT_CERTIFICATE and GRAPHCALL_CLIENT_KEY go together: the certificate's PEM file "
      .. "and its key's"
  end
  local c, cerr = read(cert)
  if not c then return nil, "GRAPHCALL_CLIENT_CERTIFICATE: cannot read " .. tostring(cerr) end
  local k, kerr = read(key)
  if not k then return nil, "GRAPHCALL_CLIENT_KEY: cannot read " .. tostring(kerr) end
  local ok, why = core.x509_key_matches(c, k)
  if not ok then return nil, "GRAPHCALL_CLIENT_CERTIFICATE and GRAPHCALL_CLIENT_KEY: " .. why end
  return { certificate = c, key = k }
end

--- The environment variables that are unset or empty.
-- @param getenv (os.getenv)
-- @return a list of problems (strings)
function M.env(getenv)
  getenv = getenv or os.getenv
  local out = {}
  local certified = (getenv("GRAPHCALL_CLIENT_CERTIFICATE") or "") ~= ""
  for _, k in ipairs(M.ENV) do
    local v = getenv(k)
    if k == "GRAPHCALL_CLIENT_SECRET" and certified then
      local _, why = M.credentials(getenv)
      if why then out[#out + 1] = why end
    elseif not v or v == "" then
      out[#out + 1] = k .. " is not set: " .. (k == "GRAPHCALL_CALLBACK_URI"
        and "the public https URL Graph posts callbacks to (behind your TLS proxy), ending in /callback"
        or "your app registration's, from the Azure portal")
    end
  end
  return out
end

--- Whether Graph will take `uri` as a callback URL (https, or http on loopback only).
-- @return nil, or a problem
function M.callback(uri)
  if not uri or uri == "" then return "no callback URL: set GRAPHCALL_CALLBACK_URI (or --public)" end
  local ok, err = core.build("answer", { callbackUri = uri, mediaConfig =
    { ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig" } })
  if not ok then return "the callback URL " .. uri .. " will not do: " .. tostring(err) end
end

--- Whether a tool is on the PATH.
function M.tool(name)
  return files.which(name) ~= nil
end

--- Run the checks of `o` and give the problems found (an empty list: all is well).
-- @param o `client` (a `graphcall.client`: a token and the callback keys are fetched), `loop`,
--   `callbackUri`, `store` (a folder), `prompts` (a folder), `redis` (a `graphcall.redis`),
--   `tts` (true: espeak-ng and sox are needed), `env` (true: the environment variables)
-- @return a list of problems (strings)
function M.run(o)
  local problems = {}
  local function add(p) if p then problems[#problems + 1] = p end end
  if o.env then for _, p in ipairs(M.env()) do add(p) end end
  if o.callbackUri ~= false then add(M.callback(o.callbackUri)) end
  for _, k in ipairs { "store", "prompts" } do
    if o[k] then
      local ok, err = files.writable(o[k])
      if not ok then add(string.format("the %s folder: %s", k, err)) end
    end
  end
  if o.tts then
    for _, t in ipairs { "espeak-ng", "sox" } do
      if not M.tool(t) then
        add(t .. " is not installed: spoken prompts need it (Debian: apt-get install " .. t .. ")")
      end
    end
  end
  if o.client then
    local tok, terr = o.client:token()
    if not tok then
      add("no token from " .. tostring(o.client.authority) .. ": " .. tostring(terr)
        .. " (check GRAPHCALL_TENANT_ID, GRAPHCALL_CLIENT_ID, GRAPHCALL_CLIENT_SECRET and the app's consent)")
    end
    local v = o.client:verifier()
    local fetched, ferr
    o.loop:await(function(done) v:refresh(function(ok, e) fetched, ferr = ok, e done() end) end)
    if not fetched then
      add("no callback signing keys from " .. tostring(o.client.openidUrl) .. ": " .. tostring(ferr))
    end
  end
  if o.redis then
    local pong, rerr = o.redis:call("PING")
    if pong ~= "PONG" then add("Redis does not answer: " .. tostring(rerr and rerr.message or pong)) end
  end
  return problems
end

return M
