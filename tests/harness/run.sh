#!/bin/bash
# Negative controls of the test harness itself (scripts/check.sh and
# tests/summarize.py). Each case breaks something the way a change could and
# asserts that the summary goes red and names the cause: a stage whose build
# fails under one sanitizer only, a warning only a release build sees, a
# stage that selects no test, a test program that dies mid-way, a fuzzer that
# hangs, a skip in CI, a guest test whose QEMU is missing in CI. The stages
# run the same functions check.sh runs (scripts/check-lib.sh), on the small
# projects in tests/harness/fixtures/.
#
# TAP on stdout; exit 0 when every control went red as it must.
set -u
cd "$(dirname "$0")/../.."
. scripts/check-lib.sh

here=tests/harness
work=$(mktemp -d /tmp/uvirtio-harness-XXXXXX)
trap 'rm -rf "$work"' EXIT
n=0 bad=0

tap() { # ok?, name, detail file
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		bad=$((bad + 1))
		echo "not ok $n - $2"
		[ -n "${3:-}" ] && [ -f "$3" ] && sed 's/^/#   /' "$3" | tail -25
	fi
}

# Runs `body` as a whole check run into its own results dir, then holds the
# summary to `want`: red (exit non-zero, a failure counted on its last line,
# a failure line matching `expect`) or green (exit 0, something passed,
# nothing failed: the positive twin of a red case, so that a red is the
# broken case and not a harness that is always red).
expect() { # red|green, name, expect (ERE, red only), body...
	want=$1 name=$2 pattern=$3
	shift 3
	results=$work/$(echo "$name" | tr -c 'a-z0-9\n' '-')
	(check_init "$results" && "$@") >"$results.run.log" 2>&1
	CI=${SUMMARY_CI:-} python3 tests/summarize.py "$results" >"$results.summary" 2>&1
	rc=$?
	cat "$results.run.log" >>"$results.summary"
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$results.summary" | tail -1)
	if [ "$want" = red ]; then
		[ "$rc" != 0 ] && echo "$last" | grep -qE ', [1-9][0-9]* failed' &&
			grep -qE "$pattern" "$results.summary"
	else
		[ "$rc" = 0 ] && echo "$last" | grep -qE '^[1-9][0-9]* passed, 0 failed'
	fi
	tap $? "$name: $want expected; summary exit $rc, '$last'" "$results.summary"
}
expect_red() { expect red "$@"; }
expect_green() { expect green "$1" "" "${@:2}"; }

fixture() { echo "$here/fixtures/$1"; }

gcc_stage() { # fixture
	stage_begin gcc "fixture $1"
	stage_build "$(fixture "$1")" "$work/$1-gcc" && stage_test "$work/$1-gcc"
	stage_end
}

tsan_stage() { # fixture
	stage_begin tsan "fixture $1"
	CC=clang stage_build "$(fixture "$1")" "$work/$1-tsan" -Db_sanitize=thread -Db_lundef=false &&
		stage_test "$work/$1-tsan"
	stage_end
}

release_stage() { # fixture
	stage_begin release "fixture $1"
	stage_build "$(fixture "$1")" "$work/$1-release" -Dbuildtype=release -Dwerror=true &&
		stage_test "$work/$1-release"
	stage_end
}

fuzz_stage() { # seconds, seeds dir or ""
	stage_begin fuzz "the fuzzer that hangs on one input, seeds '$2'"
	clang -g -fsanitize=fuzzer "$(fixture fuzz-hang)/hang.c" -o "$work/fuzz_hang" ||
		stage_fail "cannot build the fuzz-hang fixture"
	[ -n "$STAGE_CAUSE" ] || fuzz_one "$work/fuzz_hang" "$1" "$2" "$work"
	stage_end
}

# A meson test log with one whole program skipped, and one TAP program with a
# case skipped for a missing tool, as a stage's results.
skip_stage() {
	stage_begin gcc "canned test log with skips"
	cat >"$RESULTS/gcc.testlog.json" <<-'EOF'
		{"name": "guest_data", "result": "SKIP", "returncode": 77, "protocol": "exitcode", "stdout": "run: SKIP: qemu-system-x86_64 not installed\n"}
		{"name": "bench_blk", "result": "OK", "returncode": 0, "protocol": "tap", "stdout": "1..2\nok 1 - a\nok 2 - qsd # SKIP qemu-storage-daemon not installed\n"}
		{"name": "unit", "result": "OK", "returncode": 0, "protocol": "tap", "stdout": "1..1\nok 1 - x\n"}
	EOF
	stage_end
}

# A meson test log with one exitcode program that failed and said why.
fail_stage() {
	stage_begin asan "canned test log with a failed program"
	cat >"$RESULTS/asan.testlog.json" <<-'EOF'
		{"name": "guest_readonly", "result": "FAIL", "returncode": 1, "protocol": "exitcode", "stdout": "run: boot readonly: ...\nrun.py: FAIL: boot readonly: guest says FAIL: no swap write error\nrun: last 40 lines of the console:\n[   9.1] reboot: Power down\n"}
	EOF
	stage_end
}

expect_red "a failed program's summary line says why it failed (CI shows only the summary)" \
	'asan: guest_readonly: fail \(exit 1\): run.py: FAIL: boot readonly: guest says FAIL: no swap write error$' \
	fail_stage

expect_red "a file that fails to compile under TSan alone" \
	'stage tsan failed: build of .* failed: .*does not compile under ThreadSanitizer' \
	tsan_stage tsan-only-error
expect_green "the same file in the gcc stage" gcc_stage tsan-only-error

expect_red "a warning only the release build sees" \
	"stage release failed: build of .* failed: .*(unused variable|-Werror=unused)" \
	release_stage release-only-warning
expect_green "the same file in the gcc stage" gcc_stage release-only-warning

expect_red "a stage that selects no test" 'stage gcc failed: meson test .*selects no test' \
	gcc_stage no-tests

expect_red "a TAP program that dies after one of three cases" \
	'2 case\(s\) never reported' gcc_stage dies-mid-way

expect_red "a fuzzer that hangs on one input, at -timeout=$FUZZ_TIMEOUT" \
	"fuzz: fuzz_hang: timeout: one input ran over $FUZZ_TIMEOUT s" \
	fuzz_stage 60 "$(fixture fuzz-hang)/seeds"
expect_green "the same fuzzer without that input" fuzz_stage 2 ""

SUMMARY_CI=true expect_red "with CI=true, a test skipped for a missing tool" \
	'skipped in CI: run: SKIP: qemu-system-x86_64 not installed' skip_stage
SUMMARY_CI=true expect_red "with CI=true, a TAP case skipped for a missing tool" \
	'bench_blk: skipped in CI, a tool is missing: qsd # SKIP qemu-storage-daemon' skip_stage
results=$work/skips-listed
(check_init "$results" && skip_stage) >/dev/null 2>&1
CI= python3 tests/summarize.py "$results" >"$results.summary" 2>&1
if grep -q 'gcc: guest_data: run: SKIP: qemu-system-x86_64 not installed' "$results.summary" &&
	grep -q 'gcc: bench_blk: qsd # SKIP qemu-storage-daemon not installed' "$results.summary" &&
	tail -1 "$results.summary" | grep -qx '2 passed, 0 failed, 2 skipped'; then
	tap 0 "outside CI every skip is listed by name with its reason"
else
	tap 1 "outside CI every skip is listed by name with its reason" "$results.summary"
fi

# The guest harness with a QEMU that does not exist: in CI a failure (exit 1),
# elsewhere a skip (77); never a pass, never a Python traceback.
guest() { # CI value, expected status, expected line (ERE)
	UVIRTIO_QEMU=/nonexistent/qemu-system-x86_64 CI=$1 python3 tests/guest/run.py \
		--test=data --uvirtio=/nonexistent/uvirtio >"$work/guest.log" 2>&1
	rc=$?
	if [ "$rc" = "$2" ] && grep -qE "$3" "$work/guest.log" && ! grep -q Traceback "$work/guest.log"; then
		tap 0 "guest test with UVIRTIO_QEMU missing, CI='$1': exit $rc"
	else
		tap 1 "guest test with UVIRTIO_QEMU missing, CI='$1': exit $rc, expected $2" "$work/guest.log"
	fi
}
guest true 1 'run: FAIL: /nonexistent/qemu-system-x86_64 not installed; CI installs it'
guest "" 77 'run: SKIP: /nonexistent/qemu-system-x86_64 not installed'

echo "1..$n"
[ "$bad" = 0 ]
