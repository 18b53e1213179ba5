#!/usr/bin/env bash
# guest-kernel.sh TANDEM [ARGS...] - boot the project's own S-mode kernel
# (guests/kernel: U-mode processes with their own Sv39 address spaces and
# recycled ASIDs, fork with copy-on-write, mmap/munmap/mprotect with their
# fences, a timer-driven scheduler on every hart) under Debian's OpenSBI on
# `tandem boot`, over a host that swaps and forks the VMM, and require the
# kernel's own verdict (every stamped page verified, every fence probe
# killed, every page returned), the exit status 0, and tandem's integrity
# and frame verdicts. Extra ARGS go to tandem boot.
set -uo pipefail
cd "$(dirname "$0")/.."
tandem=${1:?usage: guest-kernel.sh TANDEM [ARGS...]}
shift
elf=build/kernel/kernel.elf
[ -f "$elf" ] || { echo "guest-kernel: $elf is missing (make guest-kernel)"; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout -k 5 300 "$tandem" boot --smp 2 --mem 128M --host-mem 64M --swap 256M --churn 20 \
	--kernel "$elf" --append "vm=1 gens=10" "$@" </dev/null >"$log" 2>&1
rc=$?
ok=1
[ "$rc" -eq 0 ] || { echo "guest-kernel: exit status $rc"; ok=0; }
grep -q '^kernel: OK .* failures=0' "$log" || { echo "guest-kernel: no 'kernel: OK ... failures=0' line"; ok=0; }
grep -qx 'integrity: OK' "$log" || { echo "guest-kernel: no 'integrity: OK'"; ok=0; }
grep -qx 'frames: all returned' "$log" || { echo "guest-kernel: frames not all returned"; ok=0; }
grep -E '^kernel: |^tandem boot: ' "$log"
if [ "$ok" -ne 1 ]; then
	tail -n 40 "$log"
	exit 1
fi
