# Vireo — convenience entry points. The build itself is meson + ninja.
#   make          build (build/src/cli/vireo)
#   make run      install deps, build, prepare the default guest, boot it on the serial console
#   make check    install deps, build, run every test suite (unit, probe, linux, sanitizers, fuzz)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
MESON_TEST = meson test --print-errorlogs --num-processes 2

.PHONY: all deps run check check-unit check-probe check-linux check-linux-extra check-asan check-fuzz bench clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD)

deps:
	./tools/install-deps.sh

run: deps all
	./tools/guest-kit/default-guest.sh
	$(BUILD)/src/cli/vireo run

check: deps all
	$(MESON_TEST) -C $(BUILD) --suite unit --suite probe --suite net
	$(MAKE) check-asan check-fuzz
	$(MESON_TEST) -C $(BUILD) --suite linux

check-unit: all
	$(MESON_TEST) -C $(BUILD) --suite unit

check-probe: all
	$(MESON_TEST) -C $(BUILD) --suite probe

check-linux: all
	$(MESON_TEST) -C $(BUILD) --suite linux

# Not in check: the Debian cloud kernel (7 min to a SKIP on the nested CI host) and user-mode
# NAT with Linux user space (tests/linux/meson.build says why).
check-linux-extra: all
	$(MESON_TEST) -C $(BUILD) --suite linux-extra

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
check-asan:
	[ -f $(ASAN_BUILD)/build.ninja ] || CC=clang meson setup $(ASAN_BUILD) \
		-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ninja -C $(ASAN_BUILD)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
		$(MESON_TEST) -C $(ASAN_BUILD) --suite unit

# libFuzzer targets, short smoke run of each.
check-fuzz:
	[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true \
		-Dtests=false -Db_lundef=false -Dbuildtype=debugoptimized \
		-Db_sanitize=address,undefined -Dc_args=-fsanitize=fuzzer-no-link
	ninja -C $(FUZZ_BUILD)
	./fuzz/smoke.sh $(FUZZ_BUILD) 30

bench: all
	./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
