#!/bin/sh
# Run every benchmark in build dir $1.
set -eu
build=$1
for exe in "$build"/bench/bench_*; do
	[ -x "$exe" ] || continue
	echo "== $(basename "$exe")"
	"$exe"
done
