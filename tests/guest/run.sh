#!/usr/bin/env bash
# make check-guest: a Linux guest in a real QEMU drives devmig's counter and
# memblk devices through vfio-user-pci.
#
#   tests/guest/run.sh [BUILD_DIR]
#
# Debian packages come from Debian's archive into a cache (nothing is
# installed system-wide; apt runs with its own sources, state and cache):
# bookworm's 6.1 kernel, its headers and kbuild (to build the guest module
# tests/guest/devmig_guest.c), busybox-static (the guest's userland), and
# trixie-backports' qemu-system-x86 with its libraries, run unpacked through
# its own dynamic loader. The first run downloads (~125 MB); later runs use
# the cache and need no network.
#
# Environment:
#   DEVMIG_GUEST_CACHE    cache directory (default ~/.cache/devmig/guest)
#   DEVMIG_GUEST_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   DEVMIG_GUEST_SECURITY security mirror (default http://deb.debian.org/debian-security)
#   DEVMIG_GUEST_REFRESH  1: fetch the newest packages again
#   DEVMIG_GUEST_TIMEOUT  seconds the guest may run (default 240)
#
# Output: one line per check ("ok - ..." / "not ok - ..."), then
# "N passed, M failed"; exit status 1 when a check failed.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
cache=${DEVMIG_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/devmig/guest}
mirror=${DEVMIG_GUEST_MIRROR:-http://deb.debian.org/debian}
security=${DEVMIG_GUEST_SECURITY:-http://deb.debian.org/debian-security}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
guest_timeout=${DEVMIG_GUEST_TIMEOUT:-240}
work=$build/guest
run=$work/run
memblk_size_mb=64
memblk_chunk=65536

passed=0
failed=0
pids=()
start=$SECONDS

say() { echo "# $*"; }
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
die() { # a step the rest depends on failed: report it and stop
	not_ok "$*"
	finish
}
finish() {
	cleanup
	echo "$passed passed, $failed failed"
	say "check-guest took $((SECONDS - start)) s"
	if [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then exit 0; fi
	exit 1
}
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=()
}
trap 'cleanup' EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# ---- packages: a private apt per suite set ----

# apt_root NAME SUITE...: sources and state under $cache/apt/NAME.
apt_root() {
	local r=$cache/apt/$1 s url
	shift
	mkdir -p "$r/lists/partial" "$r/archives/partial" "$r/sources.list.d" "$r/preferences.d"
	[ -f "$r/status" ] || : >"$r/status"
	: >"$r/sources.list"
	for s in "$@"; do
		case $s in *-security) url=$security ;; *) url=$mirror ;; esac
		echo "deb [signed-by=$keyring] $url $s main" >>"$r/sources.list"
	done
}
apt_opts() { # NAME
	local r=$cache/apt/$1
	echo "-o Dir::Etc::sourcelist=$r/sources.list -o Dir::Etc::sourceparts=$r/sources.list.d" \
		"-o Dir::Etc::preferences=$r/preferences -o Dir::Etc::preferencesparts=$r/preferences.d" \
		"-o Dir::State=$r -o Dir::State::lists=$r/lists -o Dir::State::status=$r/status" \
		"-o Dir::Cache=$r -o Dir::Cache::archives=$r/archives" \
		"-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=" \
		"-o Acquire::Languages=none -o Debug::NoLocking=1 -o APT::Sandbox::User=$(id -un)"
}
# shellcheck disable=SC2046
apt_() { local n=$1; shift; apt-get -q $(apt_opts "$n") "$@"; }
# shellcheck disable=SC2046
apt_cache() { local n=$1; shift; apt-cache $(apt_opts "$n") "$@"; }

# The kernel, its headers and kbuild, busybox: $cache/kernel.
fetch_kernel() {
	local d=$cache/kernel tmp abi ver deb
	if [ -f "$d/.done" ] && [ "${DEVMIG_GUEST_REFRESH:-0}" != 1 ]; then
		return 0
	fi
	apt_root bookworm bookworm bookworm-security
	apt_ bookworm update >"$work/apt-bookworm.log" 2>&1 ||
		{ tail -5 "$work/apt-bookworm.log"; return 1; }
	abi=$(apt_cache bookworm depends linux-image-amd64 |
		sed -n 's/.*Depends: linux-image-\(6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -1)
	[ -n "$abi" ] || { echo "no linux-image-6.1.0-*-amd64 in bookworm"; return 1; }
	ver=$(apt_cache bookworm show --no-all-versions "linux-image-$abi" | sed -n 's/^Version: //p')
	say "fetching Linux $abi ($ver), its headers and kbuild, busybox-static"
	tmp=$cache/kernel.tmp
	rm -rf "$tmp" && mkdir -p "$tmp/debs" "$tmp/root"
	(cd "$tmp/debs" && apt_ bookworm download "linux-image-$abi" "linux-headers-$abi" \
		"linux-headers-${abi%-amd64}-common" "linux-kbuild-6.1=$ver" busybox-static) \
		>"$work/apt-bookworm.log" 2>&1 || { tail -5 "$work/apt-bookworm.log"; return 1; }
	for deb in "$tmp"/debs/linux-headers-* "$tmp"/debs/linux-kbuild-* "$tmp"/debs/busybox-static_*; do
		dpkg-deb -x "$deb" "$tmp/root" || return 1
	done
	# Only the kernel image itself, not its 400 MB of modules.
	dpkg-deb --fsys-tarfile "$tmp"/debs/linux-image-"$abi"_*.deb |
		tar -x -C "$tmp/root" "./boot/vmlinuz-$abi" || return 1
	[ -x "$tmp/root/bin/busybox" ] && [ -f "$tmp/root/boot/vmlinuz-$abi" ] || return 1
	rm -rf "$tmp/debs"
	echo "$abi $ver" >"$tmp/version"
	rm -rf "$d" && mv "$tmp" "$d"
	touch "$d/.done"
}

# qemu-system-x86 from trixie-backports and every library it needs: $cache/qemu.
fetch_qemu() {
	local d=$cache/qemu tmp pkgs
	if [ -f "$d/.done" ] && [ "${DEVMIG_GUEST_REFRESH:-0}" != 1 ]; then
		return 0
	fi
	apt_root trixie trixie trixie-backports
	apt_ trixie update >"$work/apt-trixie.log" 2>&1 || { tail -5 "$work/apt-trixie.log"; return 1; }
	# The closure as if installing on an empty system, then each package downloaded.
	pkgs=$(apt_ trixie --print-uris -y --no-install-recommends install -t trixie-backports \
		qemu-system-x86 2>>"$work/apt-trixie.log" | sed -n "s/^'[^']*' \([^_ ]*\)_\([^_ ]*\)_.*/\1=\2/p" |
		sed 's/%3a/:/g')
	[ -n "$pkgs" ] || { tail -5 "$work/apt-trixie.log"; return 1; }
	say "fetching qemu-system-x86 and $(echo "$pkgs" | wc -l) packages it needs from trixie"
	tmp=$cache/qemu.tmp
	rm -rf "$tmp" && mkdir -p "$tmp/debs" "$tmp/root"
	# shellcheck disable=SC2086
	(cd "$tmp/debs" && apt_ trixie download $pkgs) >>"$work/apt-trixie.log" 2>&1 ||
		{ tail -5 "$work/apt-trixie.log"; return 1; }
	for deb in "$tmp"/debs/*.deb; do
		dpkg-deb -x "$deb" "$tmp/root" || return 1
	done
	[ -x "$tmp/root/usr/bin/qemu-system-x86_64" ] || return 1
	rm -rf "$tmp/debs"
	echo "$pkgs" | sed -n 's/^qemu-system-x86=//p' >"$tmp/version"
	rm -rf "$d" && mv "$tmp" "$d"
	touch "$d/.done"
}

mkdir -p "$work" "$cache"
t=$SECONDS
fetch_kernel || die "packages: bookworm kernel, headers, kbuild, busybox-static into $cache/kernel"
fetch_qemu || die "packages: trixie-backports qemu-system-x86 into $cache/qemu"
read -r abi kver <"$cache/kernel/version"
qver=$(cat "$cache/qemu/version")
ok "packages: Linux $abi ($kver) and QEMU $qver unpacked in $cache ($((SECONDS - t)) s)"

kroot=$cache/kernel/root
qroot=$cache/qemu/root
busybox=$kroot/bin/busybox
kdir=$kroot/usr/src/linux-headers-$abi

# ---- the guest module, built against the guest kernel's headers ----

t=$SECONDS
# The headers' Makefile includes the common part by absolute path: point it here.
sed -i "s|^include .*/usr/src/\(linux-headers-[^/]*-common\)/Makefile|include $kroot/usr/src/\1/Makefile|" \
	"$kdir/Makefile"
mod=$work/module
rm -rf "$mod" && mkdir -p "$mod"
cp "$top/tests/guest/devmig_guest.c" "$mod/"
cp -r "$top/tests/guest/kinclude" "$mod/"
# shellcheck disable=SC2016 # $(src) is kbuild's
printf 'obj-m := devmig_guest.o\nccflags-y := -I$(src)/kinclude -I%s\n' \
	"$top/devices/memblk" >"$mod/Kbuild"
if nice make -C "$kdir" M="$mod" CONFIG_DEBUG_INFO_BTF_MODULES= modules >"$work/module.log" 2>&1 &&
	[ -f "$mod/devmig_guest.ko" ]; then
	ok "module: devmig_guest.ko built against $abi headers ($((SECONDS - t)) s)"
else
	tail -30 "$work/module.log"
	die "module: devmig_guest.ko built against $abi headers (log: $work/module.log)"
fi

# ---- the initramfs: busybox, /init, the module ----

ird=$work/initramfs
rm -rf "$ird" && mkdir -p "$ird/bin" "$ird/dev" "$ird/proc" "$ird/sys"
cp "$busybox" "$ird/bin/busybox"
install -m 0755 "$top/tests/guest/init" "$ird/init"
cp "$mod/devmig_guest.ko" "$ird/"
echo "memblk_blocks=$((memblk_size_mb * 256)) memblk_chunk=$memblk_chunk" >"$ird/modparams"
(cd "$ird" && find . | "$busybox" cpio -o -H newc >"$work/initramfs.cpio" 2>/dev/null)

# ---- the devices ----

rm -rf "$run" && mkdir -p "$run"
"$build/devmig" serve --device counter --socket "$run/counter.sock" >"$run/counter.log" 2>&1 &
pids+=($!)
"$build/devmig" serve --device memblk --socket "$run/memblk.sock" \
	--args "size=${memblk_size_mb}M,chunk=$((memblk_chunk / 1024))K" >"$run/memblk.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	[ -S "$run/counter.sock" ] && [ -S "$run/memblk.sock" ] && break
	sleep 0.05
done
{ [ -S "$run/counter.sock" ] && [ -S "$run/memblk.sock" ]; } ||
	die "devices: devmig serve counter and memblk (logs in $run)"
ok "devices: counter and memblk served by $build/devmig"

# ---- QEMU ----

ldso=$qroot/usr/lib64/ld-linux-x86-64.so.2
libpath=$qroot/usr/lib/x86_64-linux-gnu
dev_json() { # socket, root port
	printf '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"%s"},"bus":"%s"}' "$1" "$2"
}
# shellcheck disable=SC2054 # the commas are QEMU's
qemu=("$ldso" --library-path "$libpath" "$qroot/usr/bin/qemu-system-x86_64"
	-L "$qroot/usr/share/qemu" -L "$qroot/usr/share/seabios"
	-nodefaults -no-user-config -display none -no-reboot
	-accel tcg -cpu max -smp 1 -m 512M
	-object memory-backend-memfd,id=mem,size=512M,share=on
	-machine q35,memory-backend=mem
	-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1
	-device pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2
	-device "$(dev_json "$run/counter.sock" rp1)"
	-device "$(dev_json "$run/memblk.sock" rp2)"
	-kernel "$kroot/boot/vmlinuz-$abi" -initrd "$work/initramfs.cpio"
	-append "console=ttyS0 quiet loglevel=3 panic=-1"
	-serial "file:$run/console.log")
# Its own modules come first; a system QEMU's (another version) must not be
# loaded at all: as root, hide their folder in a private mount namespace.
export QEMU_MODULE_DIR=$libpath/qemu
sysmods=/usr/lib/x86_64-linux-gnu/qemu
wrap=()
if [ -d "$sysmods" ]; then
	if [ "$(id -u)" = 0 ]; then
		mkdir -p "$run/empty"
		# shellcheck disable=SC2016
		wrap=(unshare -m --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
			sh "$run/empty" "$sysmods")
	else
		say "warning: $sysmods holds another QEMU's modules and only root can hide them"
	fi
fi

t=$SECONDS
rc=0
timeout -k 5 "$guest_timeout" "${wrap[@]}" "${qemu[@]}" >"$run/qemu.log" 2>&1 || rc=$?
cleanup
tr -d '\r' <"$run/console.log" >"$run/console.txt" 2>/dev/null || : >"$run/console.txt"
if [ "$rc" -eq 0 ] && grep -q '^devmig-guest: end of guest' "$run/console.txt"; then
	ok "qemu: QEMU $qver booted the guest, which ran to its end and powered off ($((SECONDS - t)) s)"
else
	not_ok "qemu: QEMU $qver booted the guest, which ran to its end and powered off (exit $rc after $((SECONDS - t)) s, limit ${guest_timeout} s)"
	echo "# --- QEMU's output ($run/qemu.log)"; tail -20 "$run/qemu.log" | sed 's/^/# /'
	echo "# --- the guest console ($run/console.log)"; tail -40 "$run/console.txt" | sed 's/^/# /'
fi

# ---- the guest's checks ----

sed -n 's/^devmig-guest: \(# .*\)$/\1/p' "$run/console.txt"
guest_ok=$(grep -c '^devmig-guest: ok - ' "$run/console.txt" || true)
guest_bad=$(grep -c '^devmig-guest: not ok - ' "$run/console.txt" || true)
sed -n 's/^devmig-guest: \(\(not \)\{0,1\}ok - .*\)$/\1/p' "$run/console.txt"
passed=$((passed + guest_ok))
failed=$((failed + guest_bad))
done_line=$(sed -n 's/^devmig-guest: done \([0-9]*\) checks, \([0-9]*\) failed$/\1 \2/p' "$run/console.txt")
if [ -n "$done_line" ] && [ "${done_line% *}" -eq $((guest_ok + guest_bad)) ] &&
	[ "${done_line#* }" -eq "$guest_bad" ] && [ "$guest_ok" -gt 0 ]; then
	ok "guest: the module finished and all its ${done_line% *} checks reached the host"
else
	not_ok "guest: the module finished and all its checks reached the host (done line: '${done_line:-none}', seen $guest_ok ok, $guest_bad not ok)"
fi
finish
