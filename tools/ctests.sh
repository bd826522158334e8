#!/bin/sh
# ctests.sh RESULTS TEST...: run each C unit test, show its output, and keep it in
# RESULTS/NAME.log for tools/total.sh; a test that printed nothing (it crashed) counts as failed.
results=$1
shift
for t in "$@"; do
  log="$results/$(basename "$t").log"
  "$t" > "$log" 2>&1
  cat "$log"
  grep -q . "$log" || echo "0 passed, 1 failed" >> "$log"
done
