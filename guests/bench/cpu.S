/* SPDX-License-Identifier: MIT */
/*
 * cpu.S - the CPU-bound guest: a register-only mixing loop (a checksum in
 * the style of xorshift: xor, add, sub, shifts and a counted branch; seven of
 * its ten instructions have compressed encodings, about the share in
 * OpenSBI and U-Boot), BG_CPU_ITERS times, then a check of the result and
 * the test device. No memory access, no trap, no interrupt (mie = 0): the
 * figure is the interpreter's dispatch and ALU cost alone.
 */
#include "bench_guests.h"

	.section .text.init, "ax"
	.globl _start
_start:
	csrr	t0, mhartid
	bnez	t0, park
	li	a0, BG_CPU_ITERS
	li	a1, 0x2545f491
	li	a4, 0
	/* BG_CPU_LOOP_INSNS instructions */
1:	xor	a1, a1, a0
	slli	a2, a1, 13
	add	a1, a1, a2
	srli	a2, a1, 7
	xor	a1, a1, a2
	slli	a2, a1, 17
	sub	a1, a1, a2
	add	a4, a4, a1
	addi	a0, a0, -1
	bnez	a0, 1b

	la	t0, checksum
	ld	t0, 0(t0)
	li	t2, BG_TEST_DEV
	bne	a4, t0, fail
	li	t1, BG_EXIT_PASS
	sw	t1, 0(t2)
park:
	wfi
	j	park
fail:
	li	t1, BG_EXIT_FAIL | (BG_FAIL_CHECKSUM << 16)
	sw	t1, 0(t2)
	j	park

	.section .rodata
	.balign 8
checksum:
	.dword	BG_CPU_CHECKSUM
