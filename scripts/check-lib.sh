# The pieces of scripts/check.sh, sourced by it and by the harness's own
# negative controls (tests/harness/run.sh), which run them on small broken
# projects to show that a broken stage turns the summary red.
#
# A stage is: stage_begin, then stage_build and stage_test (or stage_fuzz),
# then stage_end. Whatever goes wrong inside a stage (meson setup, ninja, a
# test run that selects no test or leaves tests unrun) is recorded as that
# stage's failure with one line of cause; tests/summarize.py counts it.
#
# Everything is recorded under $RESULTS (set by check_init):
#   stages.tsv            NAME<TAB>ok|failed<TAB>SECONDS<TAB>CAUSE, a line a stage
#   NAME.testlog.json     meson's test log of the stage's tests
#   NAME.fuzz.tsv         FUZZER<TAB>ok|failed<TAB>RUNS<TAB>CAUSE

check_init() { # results dir
	RESULTS=$1
	rm -rf "$RESULTS"
	mkdir -p "$RESULTS"
	: >"$RESULTS/stages.tsv"
	JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
}

stage_begin() { # name, title
	STAGE=$1
	STAGE_CAUSE=""
	STAGE_START=$(date +%s)
	printf '\n== %s: %s\n' "$1" "$2"
}

# The first cause sticks: later steps of a failed stage do not run anyway.
stage_fail() { # cause
	[ -n "$STAGE_CAUSE" ] || STAGE_CAUSE=$1
	printf '  stage %s FAILED: %s\n' "$STAGE" "$1"
}

stage_end() {
	secs=$(($(date +%s) - STAGE_START))
	if [ -n "$STAGE_CAUSE" ]; then
		printf '%s\tfailed\t%s\t%s\n' "$STAGE" "$secs" "$STAGE_CAUSE" >>"$RESULTS/stages.tsv"
	else
		printf '%s\tok\t%s\t\n' "$STAGE" "$secs" >>"$RESULTS/stages.tsv"
	fi
	printf '  stage %s took %d min %02d s\n' "$STAGE" $((secs / 60)) $((secs % 60))
}

# The first line of a log that looks like a compiler's or meson's error, for
# the one-line cause; the log's tail goes to the output for the reader.
first_error() { # log
	grep -m1 -E '(^|[ :])(error|ERROR|Error):' "$1" | cut -c1-300
}

stage_build() { # source dir, build dir, meson setup args...
	src=$1 dir=$2
	shift 2
	[ -n "$STAGE_CAUSE" ] && return 1
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" "$src" "$@" >"$dir.setup.log" 2>&1
	else
		meson setup "$dir" "$src" "$@" >"$dir.setup.log" 2>&1
	fi || {
		tail -30 "$dir.setup.log"
		stage_fail "meson setup of $dir failed: $(first_error "$dir.setup.log") (log: $dir.setup.log)"
		return 1
	}
	ninja -C "$dir" -j "$JOBS" >"$dir.build.log" 2>&1 || {
		grep -E -A3 'error|warning' "$dir.build.log" | head -40
		stage_fail "build of $dir failed: $(first_error "$dir.build.log") (log: $dir.build.log)"
		return 1
	}
}

# Runs the tests that `meson test ARGS` selects. A selection of no test, or a
# run that ends before every selected test reported, fails the stage: the
# summary can only count what ran.
stage_test() { # build dir, meson test args...
	dir=$1
	shift
	[ -n "$STAGE_CAUSE" ] && return 1
	listed=$(meson test -C "$dir" --list "$@" 2>/dev/null | grep -v -e '^ninja: ' -e '^No .*tests defined' | grep -c .)
	if [ "$listed" -eq 0 ]; then
		stage_fail "meson test $* in $dir selects no test"
		return 1
	fi
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs --num-processes "$JOBS" "$@" >"$dir.test.log" 2>&1
	rc=$?
	grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout|Skipped|Expected Fail|Unexpected Pass):' "$dir.test.log"
	cp "$dir/meson-logs/testlog.json" "$RESULTS/$STAGE.testlog.json" 2>/dev/null ||
		: >"$RESULTS/$STAGE.testlog.json"
	ran=$(grep -c . "$RESULTS/$STAGE.testlog.json")
	if [ "$ran" -lt "$listed" ]; then
		tail -20 "$dir.test.log"
		stage_fail "only $ran of the $listed selected tests ran in $dir (meson test exited $rc; log: $dir.test.log)"
		return 1
	fi
}

# One libFuzzer target for SECONDS. A crash, a leak, a timeout (one input
# running over -timeout seconds: a hang) and running out of memory all fail;
# the cause names which, from libFuzzer's own report.
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
fuzz_one() { # executable, seconds, seeds dir or "", work dir
	f=$1 secs=$2 seeds=$3 work=$4
	name=$(basename "$f")
	mkdir -p "$work/corpus-$name"
	log=$work/$name.log
	"$f" -max_total_time="$secs" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" \
		-print_final_stats=1 -artifact_prefix="$work/$name-" \
		"$work/corpus-$name" $seeds >"$log" 2>&1
	rc=$?
	runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
	if [ "$rc" = 0 ]; then
		printf '%s\tok\t%s\t\n' "$name" "${runs:-0}" >>"$RESULTS/$STAGE.fuzz.tsv"
		printf '  %-24s ok     %s runs\n' "$name" "${runs:-0}"
		return 0
	fi
	if grep -q 'ERROR: libFuzzer: timeout' "$log"; then
		why="timeout: one input ran over ${FUZZ_TIMEOUT} s (a hang)"
	elif grep -q 'ERROR: libFuzzer: out-of-memory' "$log"; then
		why="out of memory: over ${FUZZ_RSS_MB} MB"
	elif grep -q 'ERROR: LeakSanitizer' "$log"; then
		why="leak"
	elif grep -qE 'ERROR: (AddressSanitizer|libFuzzer)|runtime error:' "$log"; then
		why="crash: $(grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer)|runtime error:' "$log" | cut -c1-200)"
	else
		why="exited $rc"
	fi
	artifact=$(grep -m1 -oE "Test unit written to [^ ]+" "$log" | cut -d' ' -f5)
	[ -n "$artifact" ] && why="$why; input saved as $artifact"
	printf '%s\tfailed\t%s\t%s\n' "$name" "${runs:-0}" "$why" >>"$RESULTS/$STAGE.fuzz.tsv"
	printf '  %-24s FAILED %s\n' "$name" "$why"
	tail -30 "$log"
	return 1
}
