# devmig: a thin wrapper over meson + ninja.
#   make demo    build everything and run the demo
#   make check   build and run every test; ends with 'N passed, M failed'
#   make check-guest  a Linux guest in QEMU (vfio-user-pci) drives counter and memblk
#   make asan    the tests again under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz    build the libFuzzer targets with clang and run each (FUZZ_SECONDS)
#   make bench   build optimised and run the benchmarks
#   make install the library, its headers, devmig.pc and the CLI (PREFIX, DESTDIR)
#   make check-kernel  devmig against real kernel VFIO devices (mtty) in a TCG guest

BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
BENCH_BUILD ?= build-bench
KERNEL_BUILD ?= build-kernel
FUZZ_SECONDS ?= 60
PREFIX ?= /usr/local

.PHONY: all deps demo check check-guest asan fuzz bench install check-kernel clean

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/deps.sh build

$(BUILD)/build.ninja:
	meson setup $(BUILD)

demo: all
	./$(BUILD)/devmig demo

check: all
	scripts/run-tests.sh $(BUILD)

# Debian's kernel, busybox and QEMU come from Debian's archive into a cache
# (DEVMIG_GUEST_CACHE, default ~/.cache/devmig/guest); nothing is installed.
check-guest: all
	@scripts/deps.sh guest
	tests/guest/run.sh $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=all

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		scripts/run-tests.sh $(ASAN_BUILD)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=false \
		-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all

fuzz:
	@scripts/deps.sh fuzz
	$(MAKE) $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

$(BENCH_BUILD)/build.ninja:
	meson setup $(BENCH_BUILD) --buildtype=release -Dtests=false

bench: deps $(BENCH_BUILD)/build.ninja
	ninja -C $(BENCH_BUILD)
	scripts/bench.sh $(BENCH_BUILD)

install: all
	meson configure $(BUILD) -Dprefix=$(PREFIX)
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

# Fetches Debian's kernel, QEMU and busybox into ~/.cache/devmig/kernel
# (DEVMIG_KERNEL_CACHE) through a private apt configuration; installs nothing.
check-kernel:
	@scripts/deps.sh kernel
	tests/kernel/check-kernel.sh $(KERNEL_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(BENCH_BUILD) $(KERNEL_BUILD)
