#!/bin/sh
# total.sh DIR: add up the "N passed, N failed" last lines of every log in DIR.
p=0 f=0
for log in "$1"/*.log; do
  line=$(grep -E '^[a-z0-9 .:-]*[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -z "$line" ]; then f=$((f + 1)); echo "no result in $log"; continue; fi
  set -- $(echo "$line" | grep -oE '[0-9]+ (passed|failed)' | grep -oE '[0-9]+')
  p=$((p + $1)); f=$((f + $2))
done
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
