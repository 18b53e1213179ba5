/* SPDX-License-Identifier: MIT */
/*
 * flush.S - the full guest TLB flush, sfence.vma x0, x0, in a loop: alone,
 * and followed by loads from BG_FLUSH_PAGES pages, beside the same loops
 * with a nop in its place (bench_guests.h: the four timed sections).
 *
 * Page tables at BG_GVA_PT_PA: root [0] devices, [1] -> L1, [2] RAM (both
 * gigapages global); L1[0] -> L0, whose BG_FLUSH_PAGES leaves from index
 * BG_GVA_SMALL_SLOT map BG_GVA_SMALL_VA.. onto the first alias frames.
 */
#include "rv_guest.h"

#define ROOT    BG_GVA_PT_PA
#define L1      (BG_GVA_PT_PA + 0x1000)
#define L0      (BG_GVA_PT_PA + 0x2000)

.if BG_FLUSH_PAGES != 4
.error "flush_section loads from four pages"
.endif

/* BG_FLUSH_ITERS times insn, then (touch) a load from each page (s1,
 * s7..s9: their doublewords) (s6, t2). */
.macro flush_loop insn, touch
	li	s6, BG_FLUSH_ITERS
1:	\insn
	.if \touch
	ld	t2, 0(s1)
	add	s5, s5, t2
	ld	t2, 0(s7)
	add	s5, s5, t2
	ld	t2, 0(s8)
	add	s5, s5, t2
	ld	t2, 0(s9)
	add	s5, s5, t2
	.endif
	addi	s6, s6, -1
	bnez	s6, 1b
.endm

	.section .text.init, "ax"
	.globl _start
_start:
	bg_start
	bg_init_frames BG_GVA_ALIAS_PA, BG_FLUSH_PAGES, 63

	bg_zero ROOT, 1536              /* root, L1, L0 */
	bg_set_pte ROOT, 0, PTE(0, PTE_LEAF_RW | PTE_G)
	bg_set_pte ROOT, 1, PTE(L1, PTE_V)
	bg_set_pte ROOT, 2, PTE(0x80000000, PTE_LEAF_RWX | PTE_G)
	bg_set_pte L1, 0, PTE(L0, PTE_V)
	bg_fill_ptes L0 + BG_GVA_SMALL_SLOT * 8, PTE(BG_GVA_ALIAS_PA, PTE_LEAF_RW), BG_FLUSH_PAGES, -1
	bg_enter_s SATP_SV39 | (ROOT >> 12), s_main

s_main:
	li	s5, 0
	/* page j's doubleword j * 64 */
	li	s1, BG_GVA_SMALL_VA
	li	s7, BG_GVA_SMALL_VA + 0x1000 + 64
	li	s8, BG_GVA_SMALL_VA + 0x2000 + 128
	li	s9, BG_GVA_SMALL_VA + 0x3000 + 192

	bg_timed flush_loop nop, 0
	bg_timed flush_loop bg_full_fence, 0
	bg_timed flush_loop nop, 1
	bg_timed flush_loop bg_full_fence, 1

	bg_check_sum s5, checksum
	bg_runtime

	.section .rodata
	.balign 8
checksum:
	.dword	BG_FLUSH_CHECKSUM
