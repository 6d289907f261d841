#!/bin/bash
# The whole test suite, as `make check` and CI run it. Stages (tests/README.md
# says what each runs and how to read the summary):
#   gcc      unit, tool, docs and conformance tests (gcc -O2), no real peers
#   release  a -Dbuildtype=release -Werror build and its unit tests
#   asan     everything under AddressSanitizer + UndefinedBehaviorSanitizer,
#            with the real peers (Linux guests under QEMU, qemu-storage-daemon)
#            run here once, and the injected-fault negative controls
#   tsan     the threaded unit, tool and conformance tests under ThreadSanitizer
#   fuzz     every libFuzzer target for FUZZ_SECONDS (default 60) each
#   harness  negative controls of this script itself: a stage that does not
#            build, a release-only warning, a stage that runs no test, a
#            hanging fuzzer, a guest test without QEMU in CI must all be red
# then tests/summarize.py prints every stage's time, every skip by name and
# the last line `N passed, N failed`. Exit non-zero when anything failed.
#
# UVIRTIO_CHECK_STAGES="gcc tsan" runs only those stages (for development;
# CI runs all of them).
set -u
cd "$(dirname "$0")/.."
. scripts/check-lib.sh

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
stages=${UVIRTIO_CHECK_STAGES:-gcc release asan tsan fuzz harness}
want() { case " $stages " in *" $1 "*) return 0 ;; esac; return 1; }

check_init build-check

# The front-end's huge-page guest memory is tested when the kernel has huge
# pages free; as root, reserve a few (8 MiB) if none are, so it runs.
if [ "$(id -u)" = 0 ] && grep -q '^HugePages_Free: *0$' /proc/meminfo 2>/dev/null; then
	echo 4 >/proc/sys/vm/nr_hugepages 2>/dev/null || true
fi

if want gcc; then
	stage_begin gcc "unit, tool, docs and conformance tests (gcc -O2)"
	stage_build . build && stage_test build --no-suite peer --no-suite negative
	stage_end
fi

if want release; then
	stage_begin release "release build (-Dbuildtype=release -Werror) and its unit tests"
	stage_build . build-release -Dbuildtype=release -Dwerror=true &&
		stage_test build-release --suite unit
	stage_end
fi

if want asan; then
	stage_begin asan "everything under ASan + UBSan (gcc), real peers and injected faults included"
	stage_build . build-asan -Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=all -Dc_link_args=-fno-sanitize-recover=all \
		-Dfault_injection=true &&
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 stage_test build-asan
	stage_end
fi

if want tsan; then
	stage_begin tsan "threaded unit, tool and conformance tests under TSan (clang)"
	CC=clang stage_build . build-tsan -Db_sanitize=thread -Db_lundef=false &&
		TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		stage_test build-tsan --suite threaded --no-suite peer --no-suite negative
	stage_end
fi

if want fuzz; then
	stage_begin fuzz "fuzzers, ${FUZZ_SECONDS} s each, -timeout=${FUZZ_TIMEOUT} (clang, libFuzzer + ASan + UBSan)"
	if CC=clang stage_build . build-fuzz -Dfuzz=true -Db_sanitize=none; then
		# One fuzzer per core at a time: each is single-threaded.
		n=0
		for f in build-fuzz/tests/fuzz/fuzz_*; do
			[ -x "$f" ] && [ -f "$f" ] || continue
			n=$((n + 1))
			seeds=tests/fuzz/corpus/$(basename "$f")
			[ -d "$seeds" ] || seeds=""
			[ "$(jobs -rp | wc -l)" -lt "$JOBS" ] || wait -n
			fuzz_one "$f" "$FUZZ_SECONDS" "$seeds" build-fuzz &
		done
		wait
		[ "$n" -gt 0 ] || stage_fail "build-fuzz has no fuzz_* target"
		ran=$(grep -c . "$RESULTS/fuzz.fuzz.tsv" 2>/dev/null)
		[ "${ran:-0}" = "$n" ] || stage_fail "only ${ran:-0} of $n fuzzers reported"
	fi
	stage_end
fi

if want harness; then
	stage_begin harness "negative controls: each broken case must turn the summary red"
	tests/harness/run.sh >"$RESULTS/harness.tap" 2>&1
	rc=$?
	grep -E '^(ok|not ok) ' "$RESULTS/harness.tap" | sed 's/^/  /'
	grep -q '^not ok ' "$RESULTS/harness.tap" || [ "$rc" = 0 ] ||
		stage_fail "tests/harness/run.sh exited $rc with no failed case: $(tail -1 "$RESULTS/harness.tap")"
	stage_end
fi

printf '\n== summary\n'
python3 tests/summarize.py "$RESULTS"
