#!/bin/sh
# The whole test suite, as `make check` and CI run it:
#   1. the unit and tool tests (gcc, -O2),
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. the threaded tests under ThreadSanitizer (clang),
#   4. every libFuzzer target for FUZZ_SECONDS (default 60) each,
# then one line `N passed, N failed` counting every test case.
set -u
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
jobs=$(nproc 2>/dev/null || echo 2)
logs=""

step() { printf '\n== %s\n' "$*"; }

setup() { # dir, extra meson args...
	dir=$1; shift
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1
	else
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1
	fi || { cat "$dir.setup.log"; return 1; }
	ninja -C "$dir" -j "$jobs" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; return 1; }
}

run_suite() { # dir, meson test args...
	dir=$1; shift
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "$@" 2>&1 | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout):' || true
	logs="$logs $dir/meson-logs/testlog.json"
}

# The front-end's huge-page guest memory is tested when the kernel has huge
# pages free; as root, reserve a few (8 MiB) if none are, so it runs.
if [ "$(id -u)" = 0 ] && grep -q '^HugePages_Free: *0$' /proc/meminfo 2>/dev/null; then
	echo 4 >/proc/sys/vm/nr_hugepages 2>/dev/null || true
fi

step "unit and tool tests (gcc)"
setup build && run_suite build

step "unit and tool tests under ASan + UBSan (gcc)"
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
	-Dc_args=-fno-sanitize-recover=all -Dc_link_args=-fno-sanitize-recover=all &&
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_suite build-asan

step "threaded tests under TSan (clang)"
CC=clang setup build-tsan -Db_sanitize=thread -Db_lundef=false &&
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_suite build-tsan --suite threaded

step "fuzzers, ${FUZZ_SECONDS}s each (clang, libFuzzer + ASan + UBSan)"
fuzz_results=build-fuzz.results
rm -f "$fuzz_results"
if CC=clang setup build-fuzz -Dfuzz=true -Db_sanitize=none; then
	for f in build-fuzz/tests/fuzz/fuzz_*; do
		[ -x "$f" ] && [ -f "$f" ] || continue
		name=$(basename "$f")
		corpus=build-fuzz/corpus/$name
		mkdir -p "$corpus"
		seeds=tests/fuzz/corpus/$name
		[ -d "$seeds" ] || seeds=""
		if "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="build-fuzz/$name-" "$corpus" $seeds >"build-fuzz/$name.log" 2>&1; then
			echo "$name ok" >>"$fuzz_results"
			printf '  %-24s ok   %s\n' "$name" "$(grep -E '^stat::number_of_executed_units' "build-fuzz/$name.log" | awk '{print $2}') runs"
		else
			echo "$name failed" >>"$fuzz_results"
			printf '  %-24s FAILED\n' "$name"
			tail -40 "build-fuzz/$name.log"
		fi
	done
fi

step "summary"
python3 tests/summarize.py $logs --fuzz "$fuzz_results"
