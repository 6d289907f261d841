# Short names for the meson build. `make run` and `make check` install the
# Debian packages they need first (as root), so they work on a fresh machine.
BUILD ?= build

.PHONY: all deps run check bench install clean

all: deps
	@[ -d $(BUILD) ] || meson setup $(BUILD) >/dev/null
	@ninja -C $(BUILD) >/dev/null

deps:
	@scripts/install-deps.sh

# The main job on its embedded defaults: the virtio-blk device and driver over
# the loopback transport, with a temporary image.
run: all
	@$(BUILD)/tools/uvirtio demo

# Every test: unit, sanitizers, threads, fuzzers. Ends with `N passed, N failed`.
check: deps
	@scripts/check.sh

bench: all
	@$(BUILD)/tools/uvirtio bench ring

install: all
	meson install -C $(BUILD)

clean:
	rm -rf build build-release build-asan build-tsan build-fuzz build-check build*.log
