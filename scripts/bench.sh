#!/bin/sh
# Run every benchmark in build dir $1.
set -eu
build=$1
for exe in "$build"/bench/bench_*; do
	[ -f "$exe" ] && [ -x "$exe" ] || continue # not meson's .p object dirs
	echo "== $(basename "$exe")"
	"$exe"
done
