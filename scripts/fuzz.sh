#!/bin/sh
# Run every fuzz target in build dir $1 for $2 seconds each, starting from the
# committed seed corpus (fuzz/corpus/NAME). New inputs go to a scratch
# directory so the repository is not modified. Fails on the first crash.
set -eu
build=$1; secs=$2
top=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
n=0
for exe in "$build"/fuzz/fuzz_*; do
	[ -f "$exe" ] && [ -x "$exe" ] || continue # not meson's fuzz_NAME.p object dirs
	name=$(basename "$exe"); name=${name#fuzz_}
	mkdir -p "$scratch/$name" "$scratch/art-$name"
	echo "fuzz: $name for ${secs}s"
	"$exe" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$scratch/art-$name/" \
		"$scratch/$name" "$top/fuzz/corpus/$name" >"$scratch/$name.log" 2>&1 || {
		tail -50 "$scratch/$name.log"; echo "fuzz: $name FAILED"; exit 1; }
	grep -a -E 'stat::number_of_executed_units' "$scratch/$name.log" | sed "s/^/fuzz: $name: /"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "fuzz: no targets built in $build"; exit 1; }
echo "fuzz: $n targets, no crashes"
