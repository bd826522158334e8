# graphcall: build, test, demo and benchmarks for Lua 5.4 and LuaJIT 2.1.
#   make          build graphcall.core for both interpreters
#   make test     C unit tests + busted specs under lua5.4 and luajit
#   make demo     example (a), the IVR menu, against the local emulator with a scripted caller
#   make bench    request building, JSON, notification ingest, roster handlers against Node.js,
#                 HTTP client and listener, flows (1,000 calls at once, and 10,000 placed over 15 s),
#                 10,000 calls in real time (emulate --load),
#                 graphcall in nginx; each against a baseline in the same run
#   make bench-cluster  notifications/s with 1, 2 and 3 nodes on one Redis; a resume's cost
#   make chaos    the chaos run on three nodes (CHAOS_SECONDS), under lua5.4 and luajit
#   make chaos-cluster  the same on a Redis Cluster, a master killed mid-run
#   make soak     SOAK_CALLS calls, SOAK_NOTIFICATIONS notifications through three nodes
#   make asan     C tests and specs under AddressSanitizer + UBSan
#   make valgrind C tests under valgrind memcheck
#   make fuzz     libFuzzer on the notification parser, the JWT verifier, the file server's
#                 paths, the Redis reply reader and the log packer (FUZZ_SECONDS each)
#   make rock-check  luarocks make into a temporary tree, load it under lua5.4 and luajit
#   make lint     luacheck over every Lua file, and the layer check of the Lua half (tools/layers.lua:
#                 every require downward, no circle); the C builds with -Wall -Wextra, warnings fail CI
#   make doc      the API reference from the LDoc comments, into build/doc
#   make schema   regenerate csrc/schema_data.c from Graph's v1.0 metadata

SHARED  ?= ../shared
CC      ?= cc
CFLAGS  ?= -O2 -g -flto=auto
WARN    := -std=c99 -D_DEFAULT_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes
PIC     := -fPIC -fvisibility=hidden

CORE_SRC := csrc/buf.c csrc/utf8.c csrc/schema.c csrc/schema_data.c csrc/encode.c csrc/json.c \
            csrc/notify.c csrc/notify_flat.c csrc/pack.c csrc/jwt.c csrc/jws.c csrc/x509.c csrc/launch.c
BIND_SRC := csrc/lua_core.c csrc/lua_notify.c csrc/lua_jwt.c csrc/lua_push.c csrc/lua_resp.c csrc/lua_spawn.c csrc/lua_files.c csrc/lua_x509.c
LIBS     := -lcrypto -lhiredis
# the I/O half, its own module (graphcall.io): standalone only, OpenResty never loads it
IO_SRC   := csrc/buf.c csrc/ioloop.c csrc/http_client.c csrc/http_server.c csrc/http_guard.c csrc/files.c csrc/tcp.c \
            csrc/proc.c csrc/launch.c
IO_BIND  := csrc/lua_io.c
IO_LIBS  := -levent -levent_openssl -lcurl -lssl -lcrypto
HDRS     := $(wildcard csrc/*.h)

LUA54_INC := /usr/include/lua5.4
JIT_INC   := /usr/include/luajit-2.1

B := build
SO54  := $(B)/lua5.4/graphcall/core.so
SOJIT := $(B)/luajit/graphcall/core.so
IO54  := $(B)/lua5.4/graphcall/io.so
IOJIT := $(B)/luajit/graphcall/io.so

# Debian packages the targets need; `make deps` installs them when run as root.
PKGS := prometheus build-essential lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev lua-cjson lua-busted \
        luarocks libcurl4-openssl-dev libssl-dev openssl lua-expat clang libclang-rt-14-dev valgrind \
        lua-check lua-ldoc lua-discount lua-argparse lua-filesystem libevent-dev curl espeak-ng sox nginx libnginx-mod-http-lua lua-resty-core \
        libhiredis-dev redis-server chromium

.PHONY: lint doc fuzz all deps test test-asan demo bench asan valgrind rock-check schema check-schema clean \
        chaos chaos-cluster soak bench-cluster

all: $(SO54) $(SOJIT) $(IO54) $(IOJIT)

deps:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(SO54): $(CORE_SRC) $(BIND_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(PIC) -shared -I$(LUA54_INC) -o $@ $(CORE_SRC) $(BIND_SRC) $(LIBS)

$(SOJIT): $(CORE_SRC) $(BIND_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(PIC) -shared -I$(JIT_INC) -o $@ $(CORE_SRC) $(BIND_SRC) $(LIBS)

$(IO54): $(IO_SRC) $(IO_BIND) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(PIC) -shared -I$(LUA54_INC) -o $@ $(IO_SRC) $(IO_BIND) $(IO_LIBS)

$(IOJIT): $(IO_SRC) $(IO_BIND) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(PIC) -shared -I$(JIT_INC) -o $@ $(IO_SRC) $(IO_BIND) $(IO_LIBS)

# ---- tests -------------------------------------------------------------------------------
C_TESTS := $(patsubst spec/c/%.c,$(B)/ctest/%,$(wildcard spec/c/test_*.c))

# the I/O half's tests link the I/O half (test_io_*.c)
$(B)/ctest/test_io_%: spec/c/test_io_%.c spec/c/ctest.h $(IO_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Icsrc -o $@ $< $(IO_SRC) $(IO_LIBS)

$(B)/ctest/%: spec/c/%.c spec/c/ctest.h $(CORE_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Icsrc -o $@ $< $(CORE_SRC) $(LIBS) -lm

# hostile clients for the listener's flood spec (always build/tools: the specs name it)
FLOOD := build/tools/flood
$(FLOOD): tools/flood.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O2 -o $@ $<

# The specs, demo, benchmarks and fuzz corpora read spec/fixtures/, a plain copy of the JSON
# payloads of ../shared/fixtures: a clone alone is enough.
FIXTURES := spec/fixtures

test: deps all $(C_TESTS) $(FLOOD)
	@rm -rf $(B)/results && mkdir -p $(B)/results
	@tools/ctests.sh $(B)/results $(C_TESTS)
	@tools/busted.sh lua5.4 $(B)/lua5.4 $(B)/results/busted-lua5.4.log
	@tools/busted.sh luajit $(B)/luajit $(B)/results/busted-luajit.log
	@tools/total.sh $(B)/results

asan: deps
	@mkdir -p $(B)/asan
	$(MAKE) --no-print-directory B=$(B)/asan CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  test-asan

test-asan: all $(C_TESTS) $(FLOOD)
	@rm -rf $(B)/results && mkdir -p $(B)/results
	@tools/ctests.sh $(B)/results $(C_TESTS)
	@PATH="$(CURDIR)/tools/asan-bin:$$PATH" LD_PRELOAD="$$(clang -print-file-name=libclang_rt.asan-x86_64.so)" \
	  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  tools/busted.sh lua5.4 $(B)/lua5.4 $(B)/results/busted-lua5.4.log
	@tools/total.sh $(B)/results

valgrind: deps $(C_TESTS)
	@for t in $(C_TESTS); do valgrind -q --error-exitcode=99 \
	  --leak-check=full --errors-for-leak-kinds=definite $$t || exit 1; done

rock-check: deps
	@tools/rock-check.sh

# ---- lint and docs ---------------------------------------------------------------------
lint: deps
	luacheck -q lua spec bench examples tools bin/graphcall
	lua5.4 tools/layers.lua
	lua5.4 tools/undocumented.lua $$(find lua -name '*.lua' | sort)
	@# every module is in the rockspec, or the installed rock lacks it
	@for f in $$(find lua -name '*.lua' | sort); do grep -q "\"$$f\"" rockspec/graphcall-dev-1.rockspec || \
	  { echo "lint: $$f is not in rockspec/graphcall-dev-1.rockspec"; exit 1; }; done

# ldoc exits 0 on warnings; any warning it prints fails the target (Markdown by lua-discount)
doc: deps
	@out=$$(ldoc . 2>&1); echo "$$out"; \
	if echo "$$out" | grep -vE '^(reading configuration from|output written to) ' | grep -q .; then \
	  echo "doc: fix the warnings above"; exit 1; fi

# ---- fuzzing: libFuzzer (clang) with ASan + UBSan; FUZZ_SECONDS per target -------------
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(B)/fuzz/fuzz_notify $(B)/fuzz/fuzz_jwt $(B)/fuzz/fuzz_files $(B)/fuzz/fuzz_resp \
                $(B)/fuzz/fuzz_pack

# Redis replies through the Lua binding's reader (hiredis underneath), on Lua 5.4
$(B)/fuzz/fuzz_resp: fuzz/fuzz_resp.c csrc/lua_resp.c $(HDRS)
	@mkdir -p $(dir $@)
	clang $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Icsrc -I$(LUA54_INC) -o $@ $< csrc/lua_resp.c -llua5.4 -lhiredis -lm

$(B)/fuzz/fuzz_files: fuzz/fuzz_files.c csrc/files.c $(HDRS)
	@mkdir -p $(dir $@)
	clang $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Icsrc -o $@ $< csrc/files.c

$(B)/fuzz/%: fuzz/%.c $(CORE_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	clang $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Icsrc -o $@ $< $(CORE_SRC) $(LIBS) -lm

fuzz: deps $(FUZZ_TARGETS)
	@rm -rf $(B)/fuzz/corpus-notify && mkdir -p $(B)/fuzz/corpus-notify $(B)/fuzz/corpus-jwt $(B)/fuzz/corpus-files \
	  $(B)/fuzz/corpus-resp $(B)/fuzz/corpus-pack
	@split -l 8 spec/logs/ivr.jsonl $(B)/fuzz/corpus-pack/ivr-
	@cp $(FIXTURES)/graph/notify-*.json $(B)/fuzz/corpus-notify/
	@for f in $(FIXTURES)/seed/*/notify-*.json; do \
	  cp $$f $(B)/fuzz/corpus-notify/$$(basename $$(dirname $$f))-$$(basename $$f); done
	@cp fuzz/corpus/jwt/* $(B)/fuzz/corpus-jwt/
	@cp fuzz/corpus/files/* $(B)/fuzz/corpus-files/
	@cp fuzz/corpus/resp/* $(B)/fuzz/corpus-resp/
	@for t in notify:65536 jwt:12000 files:1200 resp:4096 pack:8192; do name=$${t%%:*}; \
	  echo "fuzz_$$name: $(FUZZ_SECONDS) s"; \
	  if $(B)/fuzz/fuzz_$$name -max_total_time=$(FUZZ_SECONDS) -max_len=$${t#*:} -print_final_stats=1 \
	       -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus-$$name > $(B)/fuzz/$$name.log 2>&1; then \
	    grep -E 'stat::number_of_executed_units|Done' $(B)/fuzz/$$name.log; \
	  else tail -n 40 $(B)/fuzz/$$name.log; echo "fuzz_$$name FAILED (crash input in $(B)/fuzz/)"; exit 1; fi; \
	done

# ---- demo, bench, schema -----------------------------------------------------------------
demo: deps all
	@mkdir -p $(B)/demo
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$(B)/lua5.4/?.so;;" \
	  lua5.4 bin/graphcall run examples/ivr.lua --emulator --speed 2 --calls 1 \
	  --prompts $(B)/prompts --store $(B)/demo/store-$$$$ --trace $(B)/demo/trace.html

bench: deps all $(B)/bench/json_parse
	@$(MAKE) --no-print-directory PKGS="wrk nodejs" deps
	@for lua in lua5.4 luajit; do \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/build.lua || exit 1; done
	@for lua in lua5.4 luajit; do \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/decode.lua || exit 1; done
	@for lua in lua5.4 luajit; do \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/notify.lua || exit 1; done
	@lua5.4 -e 'package.path="./bench/?.lua;"..package.path; io.write(require("roster").text(1000))' \
	  > $(B)/bench/roster-1000.json
	@$(B)/bench/json_parse $(B)/bench/roster-1000.json
	@for lua in lua5.4 luajit; do \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/roster_read.lua || exit 1; done
	@for lua in lua5.4 luajit; do \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/http.lua || exit 1; done
	@for lua in lua5.4 luajit; do \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/listener.lua || exit 1; done
	@for lua in lua5.4 luajit; do \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/flows.lua || exit 1; \
	  BENCH_SHARED=1 LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/flows.lua || exit 1; \
	  BENCH_KEEP_WAITING=1000 LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/flows.lua || exit 1; done
	@for lua in lua5.4 luajit; do for mode in BENCH_SHARED=1 BENCH_KEEP_WAITING=1000; do \
	  env $$mode BENCH_CALLS=10000 BENCH_SPEED=1 BENCH_RAMP=15000 BENCH_MENU=30000 BENCH_FIRST_TIMEOUT=40000 \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/flows.lua || exit 1; done; done
	@for lua in lua5.4 luajit; do \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;;" \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua bench/load.lua || exit 1; done
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;;" LUA_CPATH="./$(B)/luajit/?.so;;" \
	  luajit bench/ngx.lua

# several nodes on one Redis: the chaos run (CHAOS_SECONDS of load, nodes killed, Redis
# restarted, faults), the soak (SOAK_CALLS calls, SOAK_NOTIFICATIONS notifications, memory
# sampled), notifications/s with 1, 2 and 3 nodes and the cost of a resume
CHAOS_SECONDS ?= 120
SOAK_CALLS ?= 10000
SOAK_NOTIFICATIONS ?= 1000000
chaos: deps all
	@for lua in lua5.4 luajit; do \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua tools/chaos.lua --seconds $(CHAOS_SECONDS) --lua $$lua \
	    --max-failover 3000 || exit 1; done

# the same on a Redis Cluster (3 masters, 3 replicas): a master killed mid-run, then one
# stopped (SIGSTOP) and resumed past its failover; a call on it waits out the failover
# (cluster-node-timeout 1 s and the election) besides its node's lease
chaos-cluster: deps all
	@for lua in lua5.4 luajit; do for master in kill stop; do \
	  LUA_CPATH="./$(B)/$$lua/?.so;;" $$lua tools/chaos.lua --seconds $(CHAOS_SECONDS) --lua $$lua \
	    --redis cluster --master $$master --max-failover 5000 || exit 1; done; done

soak: deps all
	@$(MAKE) --no-print-directory PKGS=wrk deps
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;./spec/?.lua;;" LUA_CPATH="./$(B)/lua5.4/?.so;;" \
	  lua5.4 bench/soak.lua --calls $(SOAK_CALLS) --notifications $(SOAK_NOTIFICATIONS)

bench-cluster: deps all
	@$(MAKE) --no-print-directory PKGS=wrk deps
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;./bench/?.lua;./spec/?.lua;;" LUA_CPATH="./$(B)/lua5.4/?.so;;" \
	  lua5.4 bench/cluster.lua

$(B)/bench/json_parse: bench/json_parse.c $(CORE_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O2 -DNDEBUG -Icsrc -o $@ $< $(CORE_SRC) $(LIBS) -lm

# Only these two read ../shared (Graph's metadata); a clone without it skips the check.
CSDL := $(SHARED)/graph/v1.0-metadata.csdl

schema:
	@test -f $(CSDL) || { echo "schema: no $(CSDL) (set SHARED=...)"; exit 1; }
	lua5.4 tools/gen-schema.lua $(CSDL) > csrc/schema_data.c.new
	mv csrc/schema_data.c.new csrc/schema_data.c

check-schema:
	@if [ ! -f $(CSDL) ]; then echo "schema: no $(CSDL) here; staleness check skipped"; \
	elif lua5.4 tools/gen-schema.lua $(CSDL) | cmp -s - csrc/schema_data.c; then \
	  echo "schema: csrc/schema_data.c matches the metadata"; \
	else echo "csrc/schema_data.c is stale: run make schema"; exit 1; fi

clean:
	rm -rf $(B)
