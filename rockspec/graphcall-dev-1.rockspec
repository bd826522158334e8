rockspec_format = "3.0"
package = "graphcall"
version = "dev-1"
source = {
  url = "git+file:///graphcall",  -- `luarocks make` builds from the checkout; nothing is fetched
}
description = {
  summary = "Microsoft Teams / Graph calling bots and IVR flows in Lua",
  detailed = [[
graphcall builds Graph cloud-communications requests (create call, answer, playPrompt, ...)
from Lua tables, validated against Graph's v1.0 schema, with a C core for the wire work.
Runs on Lua 5.4 and LuaJIT 2.1 (OpenResty).
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  -- and Debian's lua-argparse (the command) and lua-filesystem (folders), not fetched
}
external_dependencies = {
  OPENSSL = { library = "crypto" },  -- the library form: Debian's headers are multiarch
  CURL = { library = "curl" },
  HIREDIS = { library = "hiredis" },
  LIBEVENT = { library = "event_openssl" },
}
build = {
  type = "builtin",
  modules = {
    ["graphcall.core"] = {
      sources = {
        "csrc/buf.c", "csrc/utf8.c", "csrc/schema.c", "csrc/schema_data.c",
        "csrc/encode.c", "csrc/json.c", "csrc/notify.c", "csrc/notify_flat.c", "csrc/pack.c",
        "csrc/jwt.c",
        "csrc/jws.c", "csrc/x509.c", "csrc/launch.c",
        "csrc/lua_core.c", "csrc/lua_notify.c", "csrc/lua_jwt.c", "csrc/lua_push.c",
        "csrc/lua_resp.c", "csrc/lua_spawn.c", "csrc/lua_files.c", "csrc/lua_x509.c",
      },
      libraries = { "crypto", "hiredis" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(HIREDIS_LIBDIR)" },
      defines = { "_DEFAULT_SOURCE" },
      incdirs = { "csrc" },
    },
    -- the I/O half: standalone bots only (OpenResty never loads it)
    ["graphcall.io"] = {
      sources = {
        "csrc/buf.c", "csrc/ioloop.c", "csrc/http_client.c", "csrc/http_server.c", "csrc/http_guard.c",
        "csrc/files.c",
        "csrc/tcp.c",
        "csrc/proc.c", "csrc/launch.c",
        "csrc/lua_io.c",
      },
      libraries = { "event", "event_openssl", "curl", "ssl", "crypto" },
      libdirs = { "$(CURL_LIBDIR)", "$(LIBEVENT_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      defines = { "_DEFAULT_SOURCE" },
      incdirs = { "csrc" },
    },
    ["graphcall"] = "lua/graphcall/init.lua",
    ["graphcall.bot"] = "lua/graphcall/bot.lua",
    ["graphcall.call"] = "lua/graphcall/call.lua",
    ["graphcall.check"] = "lua/graphcall/check.lua",
    ["graphcall.client"] = "lua/graphcall/client.lua",
    ["graphcall.emulator"] = "lua/graphcall/emulator/init.lua",
    ["graphcall.emulator.calls"] = "lua/graphcall/emulator/calls.lua",
    ["graphcall.emulator.control"] = "lua/graphcall/emulator/control.lua",
    ["graphcall.emulator.faults"] = "lua/graphcall/emulator/faults.lua",
    ["graphcall.emulator.graph"] = "lua/graphcall/emulator/graph.lua",
    ["graphcall.emulator.identity"] = "lua/graphcall/emulator/identity.lua",
    ["graphcall.emulator.load"] = "lua/graphcall/emulator/load.lua",
    ["graphcall.emulator.media"] = "lua/graphcall/emulator/media.lua",
    ["graphcall.emulator.peers"] = "lua/graphcall/emulator/peers.lua",
    ["graphcall.emulator.rules"] = "lua/graphcall/emulator/rules.lua",
    ["graphcall.emulator.util"] = "lua/graphcall/emulator/util.lua",
    ["graphcall.files"] = "lua/graphcall/files.lua",
    ["graphcall.flat"] = "lua/graphcall/flat.lua",
    ["graphcall.ivr"] = "lua/graphcall/ivr.lua",
    ["graphcall.jwt"] = "lua/graphcall/jwt.lua",
    ["graphcall.listener"] = "lua/graphcall/listener.lua",
    ["graphcall.log"] = "lua/graphcall/log.lua",
    ["graphcall.loop"] = "lua/graphcall/loop.lua",
    ["graphcall.metrics"] = "lua/graphcall/metrics.lua",
    ["graphcall.ngx"] = "lua/graphcall/ngx/init.lua",
    ["graphcall.ngx.http"] = "lua/graphcall/ngx/http.lua",
    ["graphcall.ngx.loop"] = "lua/graphcall/ngx/loop.lua",
    ["graphcall.ngx.store"] = "lua/graphcall/ngx/store.lua",
    ["graphcall.redis"] = "lua/graphcall/redis.lua",
    ["graphcall.redisstore"] = "lua/graphcall/redisstore.lua",
    ["graphcall.runtime"] = "lua/graphcall/runtime.lua",
    ["graphcall.response"] = "lua/graphcall/response.lua",
    ["graphcall.script"] = "lua/graphcall/script.lua",
    ["graphcall.store"] = "lua/graphcall/store.lua",
    ["graphcall.strict"] = "lua/graphcall/strict.lua",
    ["graphcall.test"] = "lua/graphcall/test.lua",
    ["graphcall.trace"] = "lua/graphcall/trace.lua",
    ["graphcall.tracker"] = "lua/graphcall/tracker.lua",
    ["graphcall.wav"] = "lua/graphcall/wav.lua",
    ["graphcall.wire"] = "lua/graphcall/wire.lua",
  },
  install = {
    bin = { graphcall = "bin/graphcall" },
  },
}
