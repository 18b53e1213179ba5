/* SPDX-License-Identifier: MIT */
/*
 * inval.S - a guest that keeps a GVA table full while the host takes its
 * pages away: the spread region (bench_guests.h) loaded in order (not
 * timed: it builds the tables), then BG_INVAL_LOADS random loads over it
 * (timed), while the benchmark swaps single data pages out. Each comes
 * back by a swap-in fault with its contents, so the sum stays exact.
 *
 * Page tables at BG_GVA_PT_PA: root [0] devices, [1] -> L1, [2] RAM (both
 * gigapages global); L1[128..143] -> 16 L0 tables of 8192 leaves onto the
 * spread frames.
 */
#include "rv_guest.h"

#define ROOT    BG_GVA_PT_PA
#define L1      (BG_GVA_PT_PA + 0x1000)
#define L0      (BG_GVA_PT_PA + 0x2000)
#define SPREAD_L1_IDX ((BG_GVA_SPREAD_VA - BG_GVA_VA) >> 21)

	.section .text.init, "ax"
	.globl _start
_start:
	bg_start
	bg_init_frames BG_GVA_SPREAD_PA, BG_GVA_PAGES, 63

	bg_zero ROOT, 1024              /* root and L1 */
	bg_set_pte ROOT, 0, PTE(0, PTE_LEAF_RW | PTE_G)
	bg_set_pte ROOT, 1, PTE(L1, PTE_V)
	bg_set_pte ROOT, 2, PTE(0x80000000, PTE_LEAF_RWX | PTE_G)
	bg_fill_ptes L1 + SPREAD_L1_IDX * 8, PTE(L0, PTE_V), BG_GVA_PAGES / 512, -1
	bg_fill_ptes L0, PTE(BG_GVA_SPREAD_PA, PTE_LEAF_RW), BG_GVA_PAGES, -1
	bg_enter_s SATP_SV39 | (ROOT >> 12), s_main

s_main:
	bg_loads_init BG_GVA_SPREAD_VA, BG_GVA_PAGES
	bg_seq_loads BG_GVA_PAGES
	bg_timed bg_random_loads BG_INVAL_LOADS, 64 - BG_GVA_PAGE_BITS, 0

	bg_check_sum s5, checksum
	bg_runtime

	.section .rodata
	.balign 8
checksum:
	.dword	BG_INVAL_CHECKSUM
