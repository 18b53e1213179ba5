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
# The RISC-V guests: the project's own test programs are built with
# Debian's bare-metal cross compiler; the real guests are Debian's OpenSBI
# and U-Boot; the boot test makes its disk image with mkfs.ext4 -d.
command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || need+=(gcc-riscv64-unknown-elf)
[ -f /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf ] || need+=(opensbi)
[ -f /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin ] || need+=(u-boot-qemu)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq "${need[@]}" pkg-config >/dev/null
fi
