/* SPDX-License-Identifier: MIT */
/*
 * refill.S - the soft-TLB refill: random loads over more pages than the
 * soft TLB holds (bench_guests.h: the alias and spread regions, the five
 * timed sections). The hit and miss sections run the same loop, only its
 * shift differs, so miss - hit is what a miss adds: the refill.
 *
 * Page tables at BG_GVA_PT_PA:
 *   root      [0] VA 0 -> PA 0 (devices), [1] -> L1, [2] VA 0x8000_0000 ->
 *             RAM, RWX; both gigapages global
 *   L1        [0..15] -> the alias region's 16 L0 tables, [128..143] -> the
 *             spread region's
 *   L0        +0x2000: 8192 leaves onto the 64 alias frames, in turn;
 *             +0x12000: 8192 leaves onto the spread frames
 */
#include "rv_guest.h"

#define ROOT    BG_GVA_PT_PA
#define L1      (BG_GVA_PT_PA + 0x1000)
#define L0A     (BG_GVA_PT_PA + 0x2000)
#define L0B     (BG_GVA_PT_PA + 0x12000)
#define L0_TABLES (BG_GVA_PAGES / 512)
#define SPREAD_L1_IDX ((BG_GVA_SPREAD_VA - BG_GVA_VA) >> 21)

	.section .text.init, "ax"
	.globl _start
_start:
	bg_start
	bg_init_frames BG_GVA_ALIAS_PA, BG_GVA_ALIAS_FRAMES, 63
	bg_init_frames BG_GVA_SPREAD_PA, BG_GVA_PAGES, 63

	bg_zero ROOT, 1024              /* root and L1 */
	bg_set_pte ROOT, 0, PTE(0, PTE_LEAF_RW | PTE_G)
	bg_set_pte ROOT, 1, PTE(L1, PTE_V)
	bg_set_pte ROOT, 2, PTE(0x80000000, PTE_LEAF_RWX | PTE_G)
	bg_fill_ptes L1, PTE(L0A, PTE_V), L0_TABLES, -1
	bg_fill_ptes L1 + SPREAD_L1_IDX * 8, PTE(L0B, PTE_V), L0_TABLES, -1
	bg_fill_ptes L0A, PTE(BG_GVA_ALIAS_PA, PTE_LEAF_RW), BG_GVA_PAGES, BG_GVA_ALIAS_FRAMES - 1
	bg_fill_ptes L0B, PTE(BG_GVA_SPREAD_PA, PTE_LEAF_RW), BG_GVA_PAGES, -1
	bg_enter_s SATP_SV39 | (ROOT >> 12), s_main

s_main:
	bg_loads_init BG_GVA_VA, BG_GVA_PAGES

	/* 0: install the alias region; 1: hit, 64 pages; 2: miss, every page */
	bg_timed bg_seq_loads BG_GVA_PAGES
	bg_timed bg_random_loads BG_REFILL_LOADS, 64 - BG_REFILL_HIT_BITS, BG_REFILL_HIT_BASE
	bg_timed bg_random_loads BG_REFILL_LOADS, 64 - BG_GVA_PAGE_BITS, 0
	/* 3: install the spread region; 4: spread, every page */
	li	s4, BG_GVA_SPREAD_VA
	bg_timed bg_seq_loads BG_GVA_PAGES
	bg_timed bg_random_loads BG_REFILL_LOADS, 64 - BG_GVA_PAGE_BITS, 0

	bg_check_sum s5, checksum
	bg_runtime

	.section .rodata
	.balign 8
checksum:
	.dword	BG_REFILL_CHECKSUM
