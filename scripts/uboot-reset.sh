#!/usr/bin/env bash
# uboot-reset.sh - Debian's OpenSBI + U-Boot on tandem boot, reset from
# U-Boot's prompt (SBI SRST -> OpenSBI -> the syscon-reboot test device),
# then U-Boot must come up again and answer.
#
#   scripts/uboot-reset.sh [TANDEM] [U-BOOT]
#       TANDEM  default build/release/tandem
#       U-BOOT  default /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin
#   TIMEOUT=S   seconds allowed for each step (default 120)
#
# The console is a fifo: each command is typed once the prompt it answers
# is on the log, not after a guessed sleep. Passes (exit 0) when the run
# shows OpenSBI's banner twice, U-Boot answers `version` after the reset,
# `poweroff` ends the run with status 0 and tandem counted one reset.
set -u
TANDEM=${1:-build/release/tandem}
UBOOT=${2:-/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin}
TMO=${TIMEOUT:-120}

[ -x "$TANDEM" ] || { echo "uboot-reset: $TANDEM: not found" >&2; exit 2; }
[ -f "$UBOOT" ] || { echo "uboot-reset: $UBOOT: not found (skipped)"; exit 0; }

dir=$(mktemp -d)
log=$dir/console.log
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	exec 3>&- 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
mkfifo "$dir/in"
exec 3<>"$dir/in"       # read-write: opening does not wait for the reader
"$TANDEM" boot --bootdelay -1 --kernel "$UBOOT" <"$dir/in" >"$log" 2>&1 &
pid=$!

count() { grep -a -o -- "$1" "$log" 2>/dev/null | wc -l; }

fail() {
	echo "uboot-reset: $*"
	tail -n 40 "$log" | tr -d '\r'
	exit 1
}

# wait_for PATTERN N: until PATTERN occurs N times in the log.
wait_for() {
	local end=$((SECONDS + TMO))
	while [ "$(count "$1")" -lt "$2" ]; do
		kill -0 "$pid" 2>/dev/null || fail "tandem ended while waiting for '$1' x$2"
		[ $SECONDS -lt $end ] || fail "timed out after ${TMO}s waiting for '$1' x$2"
		sleep 0.2
	done
}

wait_for '=> ' 1
printf 'reset\r' >&3
wait_for 'OpenSBI v' 2
wait_for '=> ' 2
printf 'version\r' >&3
wait_for '=> ' 3
printf 'poweroff\r' >&3
end=$((SECONDS + TMO))
while kill -0 "$pid" 2>/dev/null; do
	[ $SECONDS -lt $end ] || fail "tandem did not power off within ${TMO}s"
	sleep 0.2
done
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "exit status $rc"
[ "$(count 'OpenSBI v')" -eq 2 ] || fail "OpenSBI's banner $(count 'OpenSBI v') times, not 2"
# version's answer: the U-Boot banner line after the third prompt.
tr -d '\r' <"$log" | sed -n '/^=> version/,$p' | grep -aq '^U-Boot 20' ||
	fail "no answer to version after the reset"
grep -aq 'resets 1, .*exit power-off, status 0' "$log" || fail "tandem's summary line"
echo "uboot-reset: OpenSBI twice, U-Boot answered after the reset, power-off"
