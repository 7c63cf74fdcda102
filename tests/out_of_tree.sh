#!/bin/sh
# The out-of-tree example as its author meets it (TAP output):
#   the build is installed into a staging root (DESTDIR), examples/out-of-tree
#   is copied outside the tree and built with its plain Makefile, which only
#   asks pkg-config; the installed devmig serves the copy's libmydev.so, the
#   copy's own program (mydev-server) is the second instance, `devmig
#   migrate` moves the device from one to the other, and `devmig region`
#   shows its registers and buffer arrived.
# Usage: out_of_tree.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/devmig-oot-XXXXXX")
pids=""
cleanup() {
	for p in $pids; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

n=0
echo "1..7"
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
	n=$((n + 1))
	echo "not ok $n - $1"
	[ -f "$tmp/log" ] && sed 's/^/# /' "$tmp/log"
	echo "Bail out! the later steps need this one"
	exit 1
}

# 1. install
meson install -C "$build" --no-rebuild --destdir "$tmp/root" >"$tmp/log" 2>&1 ||
	fail "meson install --destdir"
pc=$(find "$tmp/root" -name devmig.pc | head -n 1)
lib=$(find "$tmp/root" -name 'libdevmig.so.0' | head -n 1)
hdr=$(find "$tmp/root" -path '*/include/devmig/device.h' | head -n 1)
bin=$(find "$tmp/root" -path '*/bin/devmig' -type f | head -n 1)
[ -n "$pc" ] && [ -n "$lib" ] && [ -n "$hdr" ] && [ -n "$bin" ] &&
	[ -f "$(dirname "$hdr")/variant.h" ] ||
	{ find "$tmp/root" >"$tmp/log"; fail "the install has libdevmig.so.0, devmig/device.h, devmig.pc and devmig"; }
ok "installed: ${lib#$tmp/root}, ${hdr#$tmp/root}, ${pc#$tmp/root}"

# 2. the copy builds with pkg-config alone (plus the sanitizers the library
#    was built with, if any: an instrumented library needs its runtime first)
cp -R "$src/examples/out-of-tree" "$tmp/mydev"
rm -f "$tmp/mydev/libmydev.so" "$tmp/mydev/mydev-server"
cflags="-O2 -g -Wall -Wextra -Werror"
if readelf -d "$lib" | grep -q 'libasan'; then
	cflags="-O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined"
fi
PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$tmp/root" \
	make -C "$tmp/mydev" CFLAGS="$cflags" >"$tmp/log" 2>&1 || fail "make in the copy"
[ -f "$tmp/mydev/libmydev.so" ] && [ -x "$tmp/mydev/mydev-server" ] || fail "make built both"
ok "the copy outside the tree built libmydev.so and mydev-server"

# 3. served: by the installed devmig (loading the .so) and by its own program
export LD_LIBRARY_PATH="$(dirname "$lib")"
dm() { "$bin" "$@"; }
"$bin" serve --device "$tmp/mydev/libmydev.so" --socket "$tmp/a.sock" 2>"$tmp/a.log" &
pids="$pids $!" # the program itself, not a subshell: kill must reach it
"$tmp/mydev/mydev-server" --socket "$tmp/b.sock" 2>"$tmp/b.log" &
pids="$pids $!"
tries=0
while [ ! -S "$tmp/a.sock" ] || [ ! -S "$tmp/b.sock" ]; do
	tries=$((tries + 1))
	[ "$tries" -lt 400 ] || { cat "$tmp/a.log" "$tmp/b.log" >"$tmp/log"; fail "both serve"; }
	sleep 0.05
done
id=$(dm region read --socket "$tmp/a.sock" --region 0 --offset 0 --count 4 2>"$tmp/log")
[ "$id" = "4d594456" ] || fail "devmig serve --device libmydev.so serves it (ID '$id')"
ok "devmig serve --device .../libmydev.so and mydev-server serve it"

# 4. state on the source: the buffer (BAR2), SEED, and WRITES counted
for off in 0 4 4096 65532; do
	dm region write --socket "$tmp/a.sock" --region 2 --offset "$off" --data "$(printf '%08x' $((off + 0x1000000)))" 2>"$tmp/log" ||
		fail "region write at $off"
done
dm region write --socket "$tmp/a.sock" --region 0 --offset 4 --data 2a000000 2>"$tmp/log" ||
	fail "region write SEED"
ok "state written to the source"

# 5. migrate
dm migrate --socket "$tmp/a.sock" --to-socket "$tmp/b.sock" >"$tmp/log" 2>&1 ||
	fail "devmig migrate"
ok "devmig migrate moved it to mydev-server"

# 6. the destination has it
check() {
	got=$(dm region read --socket "$tmp/b.sock" --region "$1" --offset "$2" --count 4 2>"$tmp/log")
	[ "$got" = "$3" ] || { echo "region $1 at $2: '$got', expected '$3'" >>"$tmp/log"; return 1; }
}
check 2 0 01000000 && check 2 4 01000004 && check 2 4096 01001000 &&
	check 2 65532 0100fffc && check 2 8 00000000 && check 0 4 2a000000 &&
	check 0 8 04000000 || fail "the destination holds the buffer and registers"
ok "the destination holds the buffer, SEED and WRITES"

# 7. a file that is no variant is refused with a sentence
out=$(dm serve --device "$tmp/mydev/mydev.c" --socket "$tmp/c.sock" 2>&1)
rc=$?
case "$rc:$out" in
1:*"cannot load"*) ok "a file that is not a shared object is refused: $out" ;;
*) echo "$rc $out" >"$tmp/log"; fail "refusal" ;;
esac
