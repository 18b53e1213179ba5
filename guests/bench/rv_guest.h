/* SPDX-License-Identifier: MIT */
/*
 * rv_guest.h - what the assembly of the bench guests shares (guests/bench/
 * *.S; C never includes it): the Sv39 PTE bits, and macros for the steps
 * every program takes the same way:
 *
 *   bg_start           hart 0 goes on (others park), M-mode traps fail the run
 *   bg_init_frames     the data the loads read, in M mode by physical address
 *   bg_zero / bg_fill_ptes / bg_set_pte   page tables, the same way
 *   bg_enter_s         PMP open, counters readable from S, satp, mret to S
 *   bg_loads_init / bg_seq_loads / bg_random_loads   loads over a region
 *   bg_tick / bg_timed rdtime into a register / a timed section
 *   bg_print_ticks     a section's ticks (end - start) to the UART
 *   bg_check_sum       compare a sum with a checksum, pass or fail
 *   bg_runtime         park, fail, the M-mode trap handler, print_hex
 *
 * Timed sections: a program reads the time CSR (10 MHz on both machines)
 * before and after each section it times and prints the difference as 16
 * hex digits and a newline on the ns16550a UART (0x1000_0000, mapped in S
 * mode by a gigapage at VA 0), which the benchmark reads back: only the
 * section is timed, not the machine's start, the table building or the
 * warm-up. Every macro executes a fixed number of instructions whatever
 * the data (print_hex looks its digits up), so the programs' instruction
 * counts stay exact.
 */
#ifndef TANDEM_RV_GUEST_H
#define TANDEM_RV_GUEST_H

#include "bench_guests.h"

#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_G 0x20
#define PTE_A 0x40
#define PTE_D 0x80
#define PTE_LEAF_RW  (PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
#define PTE_LEAF_RWX (PTE_LEAF_RW | PTE_X)
/* A PTE for physical address pa with bits */
#define PTE(pa, bits) ((((pa) >> 12) << 10) | (bits))
#define SATP_SV39 (8 << 60)

/* Hart 0 goes on; M-mode traps go to m_trap (bg_runtime). */
.macro bg_start
	csrr	t0, mhartid
	bnez	t0, park
	la	t0, m_trap
	csrw	mtvec, t0
.endm

/* n doublewords from physical address addr on: zero (t0, t1). */
.macro bg_zero addr, n
	li	t0, \addr
	li	t1, \n
1:	sd	zero, 0(t0)
	addi	t0, t0, 8
	addi	t1, t1, -1
	bnez	t1, 1b
.endm

/* n entries of the table at addr: entry i = first + ((i & mask) << 10),
 * i.e. pointing (i & mask) pages past first's (t0-t5). */
.macro bg_fill_ptes addr, first, n, mask
	li	t0, \addr
	li	t1, 0
	li	t2, \n
	li	t3, \first
	li	t4, \mask
1:	and	t5, t1, t4
	slli	t5, t5, 10
	add	t5, t5, t3
	sd	t5, 0(t0)
	addi	t0, t0, 8
	addi	t1, t1, 1
	bne	t1, t2, 1b
.endm

/* Frame f of the n from physical address pa holds f in its doubleword
 * (f & mask) * 64 (a cache line of its own within the frame, so the loads
 * of different frames do not pile up on one host cache set) (t0-t5). */
.macro bg_init_frames pa, n, mask
	li	t0, \pa
	li	t1, 0
	li	t2, \n
	li	t3, \mask
	li	t4, 4096
1:	and	t5, t1, t3
	slli	t5, t5, 6
	add	t5, t5, t0
	sd	t1, 0(t5)
	add	t0, t0, t4
	addi	t1, t1, 1
	bne	t1, t2, 1b
.endm

/* One entry: table[idx] = pte (t0, t1). */
.macro bg_set_pte table, idx, pte
	li	t0, \table + (\idx) * 8
	li	t1, \pte
	sd	t1, 0(t0)
.endm

/* PMP entry 0 opens everything to S; S may read time (mcounteren.TM);
 * satp = satp_val; mret to label in S mode. */
.macro bg_enter_s satp_val, label
	li	t0, -1
	csrw	pmpaddr0, t0
	li	t0, 0x1f                /* NAPOT, RWX */
	csrw	pmpcfg0, t0
	li	t0, 7
	csrw	mcounteren, t0
	li	t0, \satp_val
	csrw	satp, t0
	sfence.vma
	li	t0, 3 << 11             /* MPP = S */
	csrc	mstatus, t0
	li	t0, 1 << 11
	csrs	mstatus, t0
	la	t0, \label
	csrw	mepc, t0
	mret
.endm

/* Add doubleword (p & 63) * 64 of page p (t0) of the region at s4 to s5
 * (t1, t2). */
.macro bg_load_page
	slli	t1, t0, 12
	andi	t2, t0, 63
	slli	t2, t2, 6
	add	t1, t1, t2
	add	t1, t1, s4
	ld	t2, 0(t1)
	add	s5, s5, t2
.endm

/* The registers of the loads below: the LCG (s1 x = seed, s2 A, s3 C),
 * the region (s4 base), the sum (s5 = 0), the page mask (s9). */
.macro bg_loads_init base, pages
	li	s1, BG_MEM_LCG_SEED
	li	s2, BG_MEM_LCG_A
	li	s3, BG_MEM_LCG_C
	li	s4, \base
	li	s5, 0
	li	s9, \pages - 1
.endm

/* Load page 0, 1, .. n - 1 of the region in turn (the first pass, which
 * fills the tables) (t0-t3). */
.macro bg_seq_loads n
	li	t0, 0
	li	t3, \n
1:	bg_load_page
	addi	t0, t0, 1
	bne	t0, t3, 1b
.endm

/* n loads, each at a page drawn from a 64-bit LCG: x = x * A + C, p =
 * ((x >> shift) + add) & s9 (s6, s7, s8: the count, the shift, add)
 * (t0-t2). BG_LOADS_LOOP_INSNS instructions a load. */
.macro bg_random_loads n, shift, add
	li	s6, \n
	li	s7, \shift
	li	s8, \add
1:	mul	s1, s1, s2
	add	s1, s1, s3
	srl	t0, s1, s7
	add	t0, t0, s8
	and	t0, t0, s9
	bg_load_page
	addi	s6, s6, -1
	bnez	s6, 1b
.endm

.macro bg_tick reg
	rdtime	\reg
.endm

/* sfence.vma x0, x0: a macro, to hand to one that takes an instruction. */
.macro bg_full_fence
	sfence.vma
.endm

/* A timed section: the ticks body takes, printed (s10, s11, a0, t0-t3). */
.macro bg_timed body:vararg
	bg_tick	s10
	\body
	bg_tick	s11
	bg_print_ticks s10, s11
.endm

/* Print end - start (ticks) on the UART (a0, t0-t3, ra). */
.macro bg_print_ticks start, end
	sub	a0, \end, \start
	call	print_hex
.endm

/* sum == the doubleword at label sum_label: pass, else fail (t0-t2). */
.macro bg_check_sum sum, sum_label
	la	t0, \sum_label
	ld	t0, 0(t0)
	li	t2, BG_TEST_DEV
	bne	\sum, t0, fail
	li	t1, BG_EXIT_PASS
	sw	t1, 0(t2)
	j	park
.endm

/* park, fail (checksum), m_trap (any M-mode trap), print_hex, the digits. */
.macro bg_runtime
park:
	wfi
	j	park
fail:
	li	t2, BG_TEST_DEV
	li	t1, BG_EXIT_FAIL | (BG_FAIL_CHECKSUM << 16)
	sw	t1, 0(t2)
	j	park

	.balign 4
m_trap:
	csrr	t0, mcause
	slli	t0, t0, 4 + 16
	li	t1, BG_EXIT_FAIL | (BG_FAIL_TRAP << 16)
	or	t1, t1, t0
	li	t2, BG_TEST_DEV
	sw	t1, 0(t2)
	j	park

/* a0 as 16 hex digits and a newline on the UART: a fixed count of
 * instructions for any value (t0-t3). */
print_hex:
	li	t0, BG_UART
	la	t1, hex_digits
	li	t2, 60
1:	srl	t3, a0, t2
	andi	t3, t3, 15
	add	t3, t3, t1
	lbu	t3, 0(t3)
	sb	t3, 0(t0)
	addi	t2, t2, -4
	bgez	t2, 1b
	li	t3, '\n'
	sb	t3, 0(t0)
	ret

	.section .rodata
hex_digits:
	.ascii	"0123456789abcdef"
	.previous
.endm

#endif
