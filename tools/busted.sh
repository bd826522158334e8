#!/bin/sh
# busted.sh LUA CPATH_DIR LOG: run the busted specs under one interpreter and record
# "N passed, N failed" in LOG for tools/total.sh.
lua=$1 dir=$2 log=$3
out=$(mktemp)
LUA_CPATH="./$dir/?.so;;" busted --lua="$lua" -o utfTerminal spec >"$out" 2>&1
rc=$?
cat "$out"
line=$(grep -E '^[0-9]+ success' "$out" | tail -n 1)
if [ -z "$line" ]; then
  echo "busted ($lua): no summary (exit $rc)"
  echo "0 passed, 1 failed" > "$log"
else
  set -- $(echo "$line" | grep -oE '[0-9]+')
  # successes / failures / errors / pending
  echo "$lua: $1 passed, $(($2 + $3)) failed"
  echo "$1 passed, $(($2 + $3)) failed" > "$log"
fi
rm -f "$out"
