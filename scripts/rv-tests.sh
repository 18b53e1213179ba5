#!/usr/bin/env bash
# rv-tests.sh - run tandem's bare-metal RISC-V test programs (guests/rv-tests)
# on an emulator: QEMU to check the tests, tandem to check tandem.
#
#   scripts/rv-tests.sh --emu 'qemu-system-riscv64 -M virt -bios none -nographic -m 128M'
#   scripts/rv-tests.sh --emu 'build/release/tandem boot --bios none' \
#       --smp-flag --smp --kernel-flag --kernel
#
# Options:
#   --emu CMD          emulator command prefix (required)
#   --smp-flag F       flag before the hart count (default -smp)
#   --kernel-flag F    flag before the ELF (default -kernel)
#   --dir D            where the ELFs are (default build/rv-tests)
#   --timeout S        seconds per run (default 60)
#   --only 'a b'       run only these test names
#   --skip 'a b'       skip these test names
#   --no-htif          skip htif (QEMU's virt machine has no HTIF)
#   --no-require       skip the variants that require optional behaviour
#                      (hardware A/D update, misaligned emulation)
#   --verbose          print every run's console output
# A run passes when the emulator exits 0 and printed "PASS <name>".
# Prints one line per run and a summary; exits 1 if any run failed.
set -u

EMU= SMPF=-smp KF=-kernel DIR=build/rv-tests TMO=60 ONLY= SKIP= NOREQ=0 NOHTIF=0 VERBOSE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--emu) EMU=$2; shift 2 ;;
	--smp-flag) SMPF=$2; shift 2 ;;
	--kernel-flag) KF=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--timeout) TMO=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	--skip) SKIP=$2; shift 2 ;;
	--no-require) NOREQ=1; shift ;;
	--no-htif) NOHTIF=1; shift ;;
	--verbose) VERBOSE=1; shift ;;
	-h|--help) sed -n '2,24p' "$0"; exit 0 ;;
	*) echo "rv-tests.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -n "$EMU" ] || { echo "rv-tests.sh: --emu is required" >&2; exit 2; }

# name harts [require]
RUNS="
hello 1
hello 4
isa_alu 1
isa_m 1
isa_c 1
csr_trap 1
priv 1
vm_sv39 1
vm_sv48 1
vm_sv39_hwad 1 require
vm_sv48_hwad 1 require
misaligned 1
misaligned_ok 1 require
amo_smp 2
amo_smp 4
irq 2
reset 1
reset 2
htif 1 htif
"

in_list() { local x; for x in $2; do [ "$x" = "$1" ] && return 0; done; return 1; }

pass=0 fail=0 failed=
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while read -r name harts req; do
	[ -n "$name" ] || continue
	[ -n "$ONLY" ] && ! in_list "$name" "$ONLY" && continue
	in_list "$name" "$SKIP" && continue
	[ "$NOREQ" = 1 ] && [ "${req:-}" = require ] && continue
	[ "$NOHTIF" = 1 ] && [ "${req:-}" = htif ] && continue
	elf=$DIR/$name.elf
	label="$name (smp $harts)"
	if [ ! -f "$elf" ]; then
		echo "FAIL $label: $elf missing"
		fail=$((fail + 1)); failed="$failed $name/$harts"
		continue
	fi
	start=$(date +%s.%N)
	# shellcheck disable=SC2086
	timeout -k 5 "$TMO" $EMU $SMPF "$harts" $KF "$elf" </dev/null >"$log" 2>&1
	rc=$?
	secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	why=
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		why="timeout after ${TMO}s"
	elif [ $rc -ne 0 ]; then
		why="exit status $rc"
	elif ! tr -d '\r' <"$log" | grep -qx "PASS $name"; then
		why="no 'PASS $name' line"
	fi
	if [ -z "$why" ]; then
		echo "PASS $label ${secs}s"
		pass=$((pass + 1))
		[ "$VERBOSE" = 1 ] && sed 's/^/    /' "$log"
	else
		echo "FAIL $label: $why"
		sed 's/^/    /' "$log" | tail -n 40
		fail=$((fail + 1)); failed="$failed $name/$harts"
	fi
done <<<"$RUNS"

echo "rv-tests: $pass passed, $fail failed${failed:+ (failed:$failed)}"
[ $fail -eq 0 ]
