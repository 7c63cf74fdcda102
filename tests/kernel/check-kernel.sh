#!/bin/sh
# SPDX-License-Identifier: MIT
# make check-kernel: devmig against real kernel VFIO devices, in a TCG guest.
#
#   tests/kernel/check-kernel.sh [STATIC_BUILD_DIR]
#
# Debian 12's Linux 6.12 (bookworm-security) boots under QEMU (TCG) with an
# initramfs holding busybox, the VFIO modules, the kernel's mtty sample
# driver (built here out of tree from linux-source-6.12), and a statically
# linked devmig and mtty-probe. The guest (tests/kernel/guest-init.sh)
# migrates, saves and restores mtty devices and checks their registers.
#
# Nothing is installed on the system: packages are fetched with apt-get
# download through a private apt configuration (own sources list, state and
# cache under the cache dir), unpacked with dpkg-deb -x, and built into the
# cache. A second run needs no network.
#
# Environment:
#   DEVMIG_KERNEL_CACHE    the cache (default ~/.cache/devmig/kernel)
#   DEVMIG_KERNEL_VERSION  a linux-source-6.12 version (default: the newest)
#   DEVMIG_KERNEL_REFRESH  1: look for a newer kernel even with a warm cache
#   DEVMIG_KERNEL_TIMEOUT  seconds the guest may run (default 240)
#
# Output: one line per check, then "N passed, M failed"; exit 1 on any failure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build-kernel}
case $build in /*) ;; *) build=$top/$build ;; esac
cache=${DEVMIG_KERNEL_CACHE:-${HOME:-/root}/.cache/devmig/kernel}
timeout_s=${DEVMIG_KERNEL_TIMEOUT:-240}
series=6.12
suite=bookworm
t_start=$(date +%s.%N)

say() { echo "check-kernel: $*" >&2; }
die() { say "$*"; exit 1; }
elapsed() { echo "$(date +%s.%N) $1" | awk '{printf "%.1f s", $1 - $2}'; }

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# ---- a private apt: Debian's archive, our own lists, state and cache
apt_dir=$cache/apt
apt_setup() {
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
		"$apt_dir/etc/sources.list.d" "$apt_dir/etc/preferences.d" "$apt_dir/etc/apt.conf.d"
	key=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -r $key ] || die "$key is missing (package debian-archive-keyring)"
	cat >"$apt_dir/etc/sources.list" <<-EOF
	deb [signed-by=$key] http://deb.debian.org/debian $suite main
	deb [signed-by=$key] http://deb.debian.org/debian-security $suite-security main
	EOF
	: >"$apt_dir/status"
}
# apt-get/apt-cache with the private configuration; $1 is the dpkg status
# to plan against (empty: none installed; the system's: what it lacks).
apt_opts() {
	echo "-q -o Dir::Etc::sourcelist=$apt_dir/etc/sources.list" \
		"-o Dir::Etc::sourceparts=$apt_dir/etc/sources.list.d" \
		"-o Dir::Etc::preferencesparts=$apt_dir/etc/preferences.d" \
		"-o Dir::Etc::parts=$apt_dir/etc/apt.conf.d" \
		"-o Dir::State=$apt_dir -o Dir::State::Lists=$apt_dir/lists" \
		"-o Dir::State::status=$1 -o Dir::Cache=$apt_dir/cache" \
		"-o Debug::NoLocking=1 -o APT::Sandbox::User=$(id -un)"
}
apt_updated=
apt_update() {
	[ -n "$apt_updated" ] && return 0
	apt_setup
	say "updating the private package lists ($suite, $suite-security)"
	# shellcheck disable=SC2046
	apt-get $(apt_opts "$apt_dir/status") update >"$cache/apt-update.log" 2>&1 ||
		die "apt-get update failed: $(tail -n 3 "$cache/apt-update.log")"
	apt_updated=1
}
# download DIR PKG...: into DIR (apt-get download writes to the cwd)
download() {
	dir=$1
	shift
	mkdir -p "$dir"
	# shellcheck disable=SC2046
	(cd "$dir" && apt-get $(apt_opts "$apt_dir/status") download "$@" >"$cache/download.log" 2>&1) ||
		die "apt-get download $* failed: $(tail -n 3 "$cache/download.log")"
}

# ---- the kernel, its modules, mtty.ko, busybox
kernel_ready() {
	[ -f "$1/ready" ] && [ -f "$1/vmlinuz" ] && [ -f "$1/modules/order" ] && [ -x "$1/busybox" ]
}

prepare_kernel() {
	kdir=$1 ver=$2
	up=${ver%%-*}
	abi=$up+deb12
	debs=$kdir/debs
	rm -rf "$kdir"
	mkdir -p "$kdir/modules" "$kdir/root" "$kdir/img" "$kdir/uapi/linux" "$kdir/mtty"
	t=$(date +%s.%N)
	download "$debs" "linux-image-$abi-amd64=$ver" "linux-headers-$abi-amd64=$ver" \
		"linux-headers-$abi-common=$ver" "linux-kbuild-$abi=$ver" "linux-source-$series=$ver" \
		busybox-static
	say "downloaded Linux $ver and busybox-static ($(du -sh "$debs" | cut -f1), $(elapsed "$t"))"

	t=$(date +%s.%N)
	for p in linux-headers-$abi-amd64 linux-headers-$abi-common linux-kbuild-$abi busybox-static; do
		dpkg-deb -x "$debs/${p}_"*.deb "$kdir/root"
	done
	cp "$kdir/root/bin/busybox" "$kdir/busybox"
	# The headers' Makefile includes the -common one by its installed path.
	hdr=$kdir/root/usr/src/linux-headers-$abi-amd64
	common=$kdir/root/usr/src/linux-headers-$abi-common
	printf 'include %s/Makefile\n' "$common" >"$hdr/Makefile"
	cp "$common/include/uapi/linux/vfio.h" "$common/include/uapi/linux/iommufd.h" "$kdir/uapi/linux/"
	# The image: the kernel and the modules VFIO needs.
	dpkg-deb --fsys-tarfile "$debs/linux-image-$abi-amd64_"*.deb |
		tar -x -C "$kdir/img" --wildcards './boot/vmlinuz-*' '*/kernel/drivers/vfio/*' \
			'*/kernel/virt/lib/*' '*/kernel/drivers/iommu/iommufd/*' 2>/dev/null || true
	cp "$kdir/img/boot/vmlinuz-$abi-amd64" "$kdir/vmlinuz" ||
		die "no vmlinuz-$abi-amd64 in linux-image-$abi-amd64"
	# mtty.c only, streamed out of the source tarball.
	dpkg-deb --fsys-tarfile "$debs/linux-source-${series}_"*.deb |
		tar -xO "./usr/src/linux-source-$series.tar.xz" | xz -dc |
		tar -x -C "$kdir" "linux-source-$series/samples/vfio-mdev/mtty.c"
	mv "$kdir/linux-source-$series/samples/vfio-mdev/mtty.c" "$kdir/mtty/"
	rm -rf "$kdir/linux-source-$series"
	say "unpacked the kernel, its headers and mtty.c ($(elapsed "$t"))"

	t=$(date +%s.%N)
	echo 'obj-m := mtty.o' >"$kdir/mtty/Makefile"
	make -C "$hdr" M="$kdir/mtty" modules CONFIG_DEBUG_INFO_BTF_MODULES= \
		>"$kdir/mtty/build.log" 2>&1 || die "building mtty.ko failed: $(tail -n 20 "$kdir/mtty/build.log")"
	grep -aq "vermagic=$abi-amd64 " "$kdir/mtty/mtty.ko" ||
		die "mtty.ko was not built for $abi-amd64"
	say "built mtty.ko against the $abi-amd64 headers ($(elapsed "$t"))"

	# The modules decompressed (busybox insmod takes plain .ko), in
	# dependency order from their depends= fields.
	find "$kdir/img" -name '*.ko.xz' | while read -r f; do
		xz -dc "$f" >"$kdir/modules/$(basename "$f" .ko.xz).ko"
	done
	cp "$kdir/mtty/mtty.ko" "$kdir/modules/"
	order=
	module_file() { # name: its .ko (names use _ or - alike)
		for f in "$kdir/modules/$1.ko" "$kdir/modules/$(echo "$1" | tr _ -).ko"; do
			[ -f "$f" ] && echo "$f" && return 0
		done
		die "module $1 is not among the image's VFIO modules"
	}
	add_module() { # name (sh has no locals: only $1 survives the recursion)
		case " $order " in *" $1 "*) return 0 ;; esac
		for dep in $(tr '\0' '\n' <"$(module_file "$1")" | sed -n 's/^depends=//p' | tr , ' '); do
			add_module "$dep"
		done
		order="$order $(basename "$(module_file "$1")" .ko)"
	}
	for m in vfio_iommu_type1 mtty; do add_module $m; done
	echo "$order" >"$kdir/modules/order"
	# What the warm runs need is out: the headers, kbuild and packages go.
	rm -rf "$kdir/img" "$debs" "$kdir/root"
	echo "$ver" >"$kdir/ready"
}

ver=${DEVMIG_KERNEL_VERSION:-}
if [ -z "$ver" ] && [ "${DEVMIG_KERNEL_REFRESH:-0}" != 1 ] && [ -f "$cache/current" ]; then
	ver=$(cat "$cache/current")
	kernel_ready "$cache/$ver" || ver=
fi
if [ -z "$ver" ]; then
	apt_update
	# shellcheck disable=SC2046
	ver=$(apt-cache $(apt_opts "$apt_dir/status") policy "linux-source-$series" |
		sed -n 's/^ *Candidate: //p')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no linux-source-$series in $suite(-security)"
fi
kdir=$cache/$ver
if kernel_ready "$kdir"; then
	say "Linux $ver from the cache ($kdir)"
else
	apt_update
	prepare_kernel "$kdir" "$ver"
fi
echo "$ver" >"$cache/current"

# ---- QEMU: the system's, or bookworm's unpacked into the cache with what it needs
qemu=$(command -v qemu-system-x86_64 || true)
qemu_l=
qemu_env=
if [ -z "$qemu" ]; then
	qroot=$cache/qemu
	qlib=$qroot/usr/lib/x86_64-linux-gnu:$qroot/lib/x86_64-linux-gnu
	if ! [ -f "$qroot/ready" ] ||
		! LD_LIBRARY_PATH=$qlib "$qroot/usr/bin/qemu-system-x86_64" --version >/dev/null 2>&1; then
		t=$(date +%s.%N)
		apt_update
		rm -rf "$qroot"
		# What qemu-system-x86 needs beyond what this system has.
		# shellcheck disable=SC2046
		pkgs=$(apt-get $(apt_opts /var/lib/dpkg/status) -s install --no-install-recommends \
			qemu-system-x86 2>/dev/null | awk '/^Inst /{print $2}')
		[ -n "$pkgs" ] || die "cannot work out what qemu-system-x86 needs"
		# shellcheck disable=SC2086
		download "$qroot/debs" $pkgs
		for f in "$qroot/debs"/*.deb; do dpkg-deb -x "$f" "$qroot"; done
		rm -rf "$qroot/debs"
		LD_LIBRARY_PATH=$qlib "$qroot/usr/bin/qemu-system-x86_64" --version >/dev/null ||
			die "the unpacked QEMU does not run"
		touch "$qroot/ready"
		say "unpacked qemu-system-x86 and $(echo "$pkgs" | wc -w) packages it needs ($(elapsed "$t"))"
	fi
	qemu=$qroot/usr/bin/qemu-system-x86_64
	qemu_l="-L $qroot/usr/share/seabios -L $qroot/usr/share/qemu"
	qemu_env=$qlib
fi
# An unpacked libc (the system's was too old for it) comes with its own loader.
qemu_run=
if [ -n "$qemu_env" ] && [ -x "$cache/qemu/lib64/ld-linux-x86-64.so.2" ]; then
	qemu_run="$cache/qemu/lib64/ld-linux-x86-64.so.2 --library-path $qemu_env"
fi

# ---- devmig and mtty-probe, statically linked for the guest
t=$(date +%s.%N)
if ! [ -f "$build/build.ninja" ]; then
	meson setup "$build" "$top" -Dtests=false -Dprefer_static=true \
		-Dc_link_args=-static >"$cache/meson-setup.log" 2>&1 ||
		die "meson setup of the static build failed: $(tail -n 5 "$cache/meson-setup.log")"
fi
# GnuTLS does not link statically (p11-kit has no static library); the guest
# migrates over unix sockets only.
# --reconfigure: a build folder from before an option existed learns it.
meson setup --reconfigure "$build" "$top" -Dtls=disabled >"$cache/meson-configure.log" 2>&1 ||
	die "meson setup --reconfigure -Dtls=disabled failed: $(tail -n 5 "$cache/meson-configure.log")"
ninja -C "$build" tests/kernel/devmig-guest tests/kernel/mtty-probe >"$build/ninja.log" 2>&1 ||
	die "building the static devmig failed: $(grep -m5 -i error "$build/ninja.log")"
for b in tests/kernel/devmig-guest tests/kernel/mtty-probe; do
	if readelf -lW "$build/$b" | grep -q INTERP; then die "$build/$b is not statically linked"; fi
done
say "built devmig and mtty-probe statically ($(elapsed "$t"))"

results=$build/kernel-results.txt
: >"$results"
# ---- host check: devmig's own uAPI definitions against Linux 6.12's headers
if cc -Wall -Werror -D__user= -I "$kdir/uapi" -I "$top/lib/vmm" -o "$build/uapi-check" \
	"$here/uapi_check.c" >"$build/uapi-check.log" 2>&1 && "$build/uapi-check" >/dev/null; then
	echo "ok - uapi definitions: lib/vfio_uapi.h agrees with Linux $ver's vfio.h and iommufd.h" >>"$results"
else
	echo "not ok - uapi definitions: $(grep -m3 error "$build/uapi-check.log" | tr '\n' ' ')" >>"$results"
fi

# ---- the initramfs
t=$(date +%s.%N)
rootfs=$build/kernel-rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs/bin" "$rootfs/lib/modules" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp"
cp "$kdir/busybox" "$rootfs/bin/busybox"
for a in sh mount insmod echo cat grep sed tr cut tail head wc dd cp readlink basename \
	sleep usleep sync poweroff uname rm mkdir; do
	ln -s busybox "$rootfs/bin/$a"
done
cp "$kdir/modules/"*.ko "$kdir/modules/order" "$rootfs/lib/modules/"
cp "$build/tests/kernel/devmig-guest" "$rootfs/bin/devmig"
cp "$build/tests/kernel/mtty-probe" "$rootfs/bin/"
cp "$here/guest-init.sh" "$rootfs/init"
chmod 755 "$rootfs/init"
python3 "$here/mkcpio.py" "$rootfs" >"$build/kernel-initramfs.cpio"
say "initramfs: $(du -h "$build/kernel-initramfs.cpio" | cut -f1) ($(elapsed "$t"))"

# ---- boot
t=$(date +%s.%N)
console=$build/kernel-console.log
say "booting Linux $ver under QEMU (TCG), up to ${timeout_s} s"
set +e
# shellcheck disable=SC2086
LD_LIBRARY_PATH=$qemu_env timeout "$timeout_s" $qemu_run "$qemu" $qemu_l -accel tcg -m 512 -smp 1 \
	-nodefaults -display none -serial stdio -no-reboot \
	-kernel "$kdir/vmlinuz" -initrd "$build/kernel-initramfs.cpio" \
	-append "console=ttyS0 panic=-1 quiet loglevel=3" </dev/null >"$console" 2>&1
qrc=$?
set -e
say "the guest ran for $(elapsed "$t") (QEMU exit $qrc); console: $console"

tr -d '\r' <"$console" | sed -n 's/^KTEST //p' | grep -v '^END$' >>"$results" || true
grep -q '^KTEST END' "$console" ||
	echo "not ok - guest finished: no END line (QEMU exit $qrc; see $console)" >>"$results"
grep -v '^guest: ' "$results" || true
grep '^guest: ' "$results" >&2 || true
passed=$(grep -c '^ok ' "$results" || true)
failed=$(grep -c '^not ok ' "$results" || true)
say "total $(elapsed "$t_start")"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
