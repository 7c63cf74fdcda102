#!/bin/sh
# Make sure the build dependencies are present. As root, install what is
# missing from Debian's packages; otherwise print the exact install line.
# Usage: scripts/deps.sh [build|fuzz|guest|kernel]
set -eu
want=${1:-build}

missing=""
need_pkg() { # package, test command
	pkg=$1; shift
	if ! "$@" >/dev/null 2>&1; then missing="$missing $pkg"; fi
}
have_hdr() { printf '#include <%s>\n' "$1" | cc -E -x c - >/dev/null 2>&1; }

need_pkg gcc            command -v cc
need_pkg libc6-dev      have_hdr stdio.h
need_pkg linux-libc-dev have_hdr linux/vfio.h
need_pkg meson          command -v meson
need_pkg ninja-build    command -v ninja
need_pkg pkg-config     command -v pkg-config
need_pkg python3        command -v python3
need_pkg libjson-c-dev  pkg-config --exists json-c
need_pkg libcmocka-dev  pkg-config --exists cmocka
need_pkg libgnutls28-dev pkg-config --exists gnutls  # TLS between hosts
need_pkg iproute2       command -v ip  # tests/test_cli.c: migration between netns
if [ "$want" = kernel ]; then
	# tests/kernel/check-kernel.sh: the static build, mtty.ko, unpacking.
	need_pkg make                     command -v make
	need_pkg gcc-12                   command -v x86_64-linux-gnu-gcc-12
	need_pkg xz-utils                 command -v xz
	need_pkg binutils                 command -v readelf
	need_pkg debian-archive-keyring   test -r /usr/share/keyrings/debian-archive-keyring.gpg
	need_pkg libc6-dev                sh -c 'ls /usr/lib/x86_64-linux-gnu/libc.a'
fi
if [ "$want" = fuzz ]; then
	need_pkg clang              command -v clang
	# libFuzzer and the sanitizer runtimes for clang 14 live here.
	need_pkg libclang-rt-14-dev sh -c 'ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a'
fi

if [ "$want" = guest ]; then
	# tests/guest/run.sh: a kernel module build (make; kbuild's objtool links
	# libelf) and Debian's own tools for the package cache.
	need_pkg make    command -v make
	need_pkg libelf1 sh -c 'for d in /usr/lib/*-linux-gnu /lib/*-linux-gnu; do
		[ -e "$d/libelf.so.1" ] && exit 0; done; exit 1'
	need_pkg apt     command -v apt-get
	need_pkg dpkg    command -v dpkg-deb
fi

[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "devmig: installing build dependencies:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
	exit 0
fi
echo "devmig: missing build dependencies. Install them with:" >&2
echo "    sudo apt-get install -y$missing" >&2
exit 1
