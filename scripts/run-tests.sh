#!/usr/bin/env bash
# Run every test binary of the given variants and print one aggregate line
# last: "N passed, N failed, N skipped". cmocka prints per-binary "[  PASSED  ] N" and
# "[  FAILED  ] N" lines; a binary that dies before its summary counts as
# one failure.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
skipped=0
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1 abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1 halt_on_error=1}"

# One whole-tree check: a command that must exit 0; counts as one test.
check() {
	local name=$1 log rc start secs status=ok
	shift
	log=$(mktemp)
	start=$(date +%s)
	"$@" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); status=FAIL; fi
	printf '%-4s %-5s %-32s %3d passed %3d failed %2d skipped %4ds\n' "$status" "tree" "$name" \
		$((rc == 0)) $((rc != 0)) 0 "$secs"
	if [ "$rc" -ne 0 ]; then sed 's/^/    | /' "$log" | tail -30; fi
	rm -f "$log"
}

# The layering rule (DESIGN.md), on the first variant's objects, and the
# check's own proof that it catches an upward include or call.
if [ $# -gt 0 ]; then
	check layers scripts/check-layers.sh --objs "build/$1"
	check layers-self-test scripts/check-layers.sh --self-test
fi
# The examples: built against a staging install with pkg-config (make
# examples), each must run and exit 0.
for e in build/examples/*; do
	[ -x "$e" ] && check "example ${e##*/}" "$e"
done
# The project's own RISC-V programs on each variant's tandem boot: every
# instruction class, traps, paging, AMOs on 2 and 4 harts, interrupts.
for v in "$@"; do
	[ -x "build/$v/tandem" ] && [ -d build/rv-tests ] &&
		check "rv-tests ($v)" scripts/rv-tests.sh --dir build/rv-tests --timeout 120 \
			--emu "build/$v/tandem boot --bios none" --smp-flag --smp --kernel-flag --kernel
done
# Debian's OpenSBI + U-Boot on the debug tandem boot, the console driven
# through a checked dialogue (tests/boot/uboot_dialogue.c): on a roomy host,
# then with 96M of host RAM under 256M of guest RAM, swap and churn (swap-in
# and swap-out both required). Both end with tandem's integrity and
# frame-leak verdicts.
if [[ " $* " == *" debug "* ]] && [ -x build/debug/tandem ] &&
	[ -x build/debug/tests/boot/uboot_dialogue ]; then
	check "uboot dialogue (roomy)" build/debug/tests/boot/uboot_dialogue \
		--tandem build/debug/tandem --mem 256M
	check "uboot dialogue (swap+churn)" build/debug/tests/boot/uboot_dialogue \
		--tandem build/debug/tandem --mem 256M --host-mem 96M --swap 512M \
		--churn 50 --expect-swap
fi
# The project's own kernel (guests/kernel) under OpenSBI on each variant,
# over a swapping, forking host: its verdict and tandem's.
for v in "$@"; do
	[ -x "build/$v/tandem" ] && [ -f build/kernel/kernel.elf ] &&
		check "guest kernel ($v)" scripts/guest-kernel.sh "build/$v/tandem"
done
# Debian's OpenSBI + U-Boot, reset from U-Boot's prompt (SBI SRST ->
# the test device), must come up again: the machine reset end to end.
for v in "$@"; do
	[ -x "build/$v/tandem" ] && [ -f /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin ] &&
		check "u-boot reset ($v)" scripts/uboot-reset.sh "build/$v/tandem"
done
for v in "$@"; do
	for t in build/$v/tests/test_* build/$v/tests/*/test_* build/$v/tests/stress/stress_*; do
		[ -x "$t" ] || continue
		# A binary whose source is gone (renamed, split) is stale.
		[ -f "tests/${t#build/$v/tests/}.c" ] || continue
		log=$(mktemp)
		start=$(date +%s)
		"$t" >"$log" 2>&1
		rc=$?
		secs=$(( $(date +%s) - start ))
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		k=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		p=${p:-0}; f=${f:-0}; k=${k:-0}
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
		passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))
		status=ok; [ "$f" -ne 0 ] && status=FAIL
		printf '%-4s %-5s %-32s %3d passed %3d failed %2d skipped %4ds\n' "$status" "$v" "${t#build/$v/tests/}" "$p" "$f" "$k" "$secs"
		if [ "$f" -ne 0 ]; then sed 's/^/    | /' "$log" | tail -60; fi
		rm -f "$log"
	done
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
