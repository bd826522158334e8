--- graphcall: Microsoft Graph calling bots and IVR flows in Lua.
-- Everything of `graphcall.wire` (build, decode, parse_notifications, the constructors of
-- Graph's polymorphic types, null, array, object), and the constructors of the layers above
-- it, each loaded on first use so that the wire alone stays free of I/O (OpenResty loads
-- `graphcall` without libcurl or libevent). See README.md for the model.
-- @module graphcall
local wire = require "graphcall.wire"

local M = {}
for k, v in pairs(wire) do M[k] = v end

--- A Graph calling client (tokens, calls, actions over HTTP): see `graphcall.client`.
-- @param opts as `graphcall.client.new`
function M.client(opts) return require("graphcall.client").new(opts) end

--- A callback listener (JWT-verified notifications, 202, dispatch): see `graphcall.listener`.
-- @param opts as `graphcall.listener.new`
function M.listener(opts) return require("graphcall.listener").new(opts) end

--- A bot: calls, handlers and durable sequential flows: see `graphcall.bot`, `graphcall.ivr`.
-- @param opts as `graphcall.bot.new`
function M.bot(opts) return require("graphcall.bot").new(opts) end

--- A new event loop for a standalone bot: see `graphcall.loop`.
-- @param opts as `graphcall.loop.new`
function M.loop(opts) return require("graphcall.loop").new(opts) end

return M
