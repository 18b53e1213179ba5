#!/usr/bin/env bash
# Install the Debian packages tandem builds against, if any is missing.
# liburcu: RCU read sides and grace periods; cmocka: the test framework;
# libfdt + dtc: the RISC-V virt machine's device tree.
set -euo pipefail
need=()
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
have_pc liburcu-memb || need+=(liburcu-dev)
have_pc cmocka || need+=(libcmocka-dev)
# libfdt: the virt machine's device tree (Debian ships no libfdt.pc).
[ -f /usr/include/libfdt.h ] || need+=(libfdt-dev)
# dtc: the tests decompile the device tree.
command -v dtc >/dev/null 2>&1 || need+=(device-tree-compiler)
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq "${need[@]}" pkg-config >/dev/null
fi
