#!/bin/sh
# Run the meson test suite in build dir $1 and close with 'N passed, M failed'.
set -u
build=$1; shift
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" >"$build/test-output.txt" 2>&1
rc=$?
# Show meson's per-test lines and any error logs, then our case count.
grep -v '^\(ok\|not ok\|1\.\.\|#\)' "$build/test-output.txt" | sed -n '1,400p'
python3 "$(dirname "$0")/test-summary.py" "$build/meson-logs/testlog.json" || rc=1
exit $rc
