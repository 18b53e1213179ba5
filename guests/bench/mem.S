/* SPDX-License-Identifier: MIT */
/*
 * mem.S - the memory-bound guest: a random walk over BG_MEM_PAGES pages
 * (32 MiB) with Sv39 paging on, so almost every load misses a 256-entry
 * soft TLB and costs a guest page-table walk.
 *
 * In M mode, by physical address: write word (i & 63) * 64 of walked page
 * i with i (so each page is present on the host before the walk, and its
 * word lies on its own cache-line offset: no host cache-set aliasing of
 * the 8192 loads); build the tables at BG_MEM_PT_PA:
 *
 *   root[0]   1 GiB leaf, VA 0 -> PA 0 (MMIO: the test device), RW
 *   root[1]   -> L1: 16 entries -> 16 L0 tables, 8192 4 KiB leaves mapping
 *             VA BG_MEM_VA.. -> PA BG_MEM_PA.., RW
 *   root[2]   1 GiB leaf, VA 0x8000_0000 -> RAM (this code), RWX
 *
 * every leaf with A and D already set (the walk measures TLB refills, not
 * A/D updates); bg_enter_s (rv_guest.h): PMP open, satp = Sv39 | root,
 * mret to S mode. There, BG_MEM_ACCESSES times: x = x * A + C; page =
 * x >> (64 - BG_MEM_PAGE_BITS); load the word page wrote in M mode and
 * add it to a sum (BG_MEM_LOOP_INSNS instructions). The sum is checked
 * against the checksum below (the walk visits the pages a host model of
 * the LCG predicts), then the test device ends the run. Any trap fails
 * with BG_FAIL_TRAP | mcause << 4.
 */
#include "rv_guest.h"

#define L1_PA   (BG_MEM_PT_PA + 0x1000)
#define L0_PA   (BG_MEM_PT_PA + 0x2000)

	.section .text.init, "ax"
	.globl _start
_start:
	csrr	t0, mhartid
	bnez	t0, park
	la	t0, m_trap
	csrw	mtvec, t0

	/* the walked pages' words */
	li	t0, BG_MEM_PA
	li	t1, 0                   /* page index */
	li	t2, BG_MEM_PAGES
1:	andi	t3, t1, 63
	slli	t3, t3, 6
	add	t3, t3, t0
	sd	t1, 0(t3)
	li	t4, 4096
	add	t0, t0, t4
	addi	t1, t1, 1
	bne	t1, t2, 1b

	/* root and L1: zero, then their entries */
	li	t0, BG_MEM_PT_PA
	li	t1, 1024                /* two pages of 512 entries */
2:	sd	zero, 0(t0)
	addi	t0, t0, 8
	addi	t1, t1, -1
	bnez	t1, 2b
	li	t0, BG_MEM_PT_PA
	li	t1, PTE_LEAF_RW         /* root[0]: PA 0 */
	sd	t1, 0(t0)
	li	t1, ((L1_PA >> 12) << 10) | PTE_V
	sd	t1, 8(t0)
	li	t1, ((0x80000000 >> 12) << 10) | PTE_LEAF_RWX
	sd	t1, 16(t0)
	li	t0, L1_PA
	li	t1, ((L0_PA >> 12) << 10) | PTE_V
	li	t2, BG_MEM_PAGES / 512
	li	t3, 1 << 10             /* next page's PPN */
3:	sd	t1, 0(t0)
	addi	t0, t0, 8
	add	t1, t1, t3
	addi	t2, t2, -1
	bnez	t2, 3b
	/* the L0 tables, contiguous: 8192 leaves */
	li	t0, L0_PA
	li	t1, ((BG_MEM_PA >> 12) << 10) | PTE_LEAF_RW
	li	t2, BG_MEM_PAGES
4:	sd	t1, 0(t0)
	addi	t0, t0, 8
	add	t1, t1, t3
	addi	t2, t2, -1
	bnez	t2, 4b

	bg_enter_s (8 << 60) | (BG_MEM_PT_PA >> 12), s_walk

s_walk:
	li	s1, BG_MEM_LCG_SEED
	li	s2, BG_MEM_LCG_A
	li	s3, BG_MEM_LCG_C
	li	s4, BG_MEM_VA
	li	s5, 0
	li	s6, BG_MEM_ACCESSES
	/* BG_MEM_LOOP_INSNS instructions */
5:	mul	s1, s1, s2
	add	s1, s1, s3
	srli	t0, s1, 64 - BG_MEM_PAGE_BITS
	bg_load_page
	addi	s6, s6, -1
	bnez	s6, 5b

	bg_check_sum s5, checksum
	bg_runtime

	.section .rodata
	.balign 8
checksum:
	.dword	BG_MEM_CHECKSUM
