/* SPDX-License-Identifier: MIT */
/*
 * ctxsw.S - address-space switches as a kernel makes them: satp to the
 * next of BG_CTX_SPACES spaces, then a load from each of its BG_CTX_PAGES
 * pages, with distinct ASIDs and no fence, or with ASID 0 and sfence.vma
 * x0, x0 after every switch (bench_guests.h: the three timed sections).
 *
 * Space k's tables at BG_GVA_PT_PA + k * 0x3000: its root ([0] devices and
 * [2] RAM, global gigapages as a kernel's own mappings; [1] -> its L1),
 * its L1 ([0] -> its L0), its L0 (BG_CTX_PAGES leaves from index
 * BG_GVA_SMALL_SLOT onto alias frames k * BG_CTX_PAGES ..). Frame f holds f
 * in doubleword (f & 7) * 64: page j's doubleword j * 64.
 */
#include "rv_guest.h"

#define SPACE(k)   (BG_GVA_PT_PA + (k) * 0x3000)
#define SATP_ASID(k)   (SATP_SV39 | ((k) + 1) << 44 | SPACE(k) >> 12)
#define SATP_NOASID(k) (SATP_SV39 | SPACE(k) >> 12)

.if BG_CTX_PAGES != 8 || BG_CTX_SPACES != 8
.error "the tables below are written for 8 spaces of 8 pages"
.endif

/* Space k's tables (t0-t5). */
.macro ctx_space k
	bg_set_pte SPACE(\k), 0, PTE(0, PTE_LEAF_RW | PTE_G)
	bg_set_pte SPACE(\k), 1, PTE(SPACE(\k) + 0x1000, PTE_V)
	bg_set_pte SPACE(\k), 2, PTE(0x80000000, PTE_LEAF_RWX | PTE_G)
	bg_set_pte SPACE(\k) + 0x1000, 0, PTE(SPACE(\k) + 0x2000, PTE_V)
	bg_fill_ptes SPACE(\k) + 0x2000 + BG_GVA_SMALL_SLOT * 8, PTE(BG_GVA_ALIAS_PA + (\k) * BG_CTX_PAGES * 4096, PTE_LEAF_RW), BG_CTX_PAGES, -1
.endm

/* n switches through the satp values at table (s2): s1 the space, s4
 * BG_GVA_SMALL_VA, s3 4096 (s6, t0-t3). */
.macro ctx_switches n, fence
	li	s6, \n
1:	addi	s1, s1, 1
	andi	s1, s1, BG_CTX_SPACES - 1
	slli	t0, s1, 3
	add	t0, t0, s2
	ld	t1, 0(t0)
	csrw	satp, t1
	\fence
	mv	t3, s4
	.irp j, 0, 1, 2, 3, 4, 5, 6, 7
	ld	t2, \j * 64(t3)
	add	s5, s5, t2
	add	t3, t3, s3
	.endr
	addi	s6, s6, -1
	bnez	s6, 1b
.endm

.macro ctx_section table, fence
	la	s2, \table
	bg_timed ctx_switches BG_CTX_SWITCHES, \fence
.endm

	.section .text.init, "ax"
	.globl _start
_start:
	bg_start
	bg_init_frames BG_GVA_ALIAS_PA, BG_GVA_ALIAS_FRAMES, 7
	bg_zero BG_GVA_PT_PA, BG_CTX_SPACES * 3 * 512
	.irp k, 0, 1, 2, 3, 4, 5, 6, 7
	ctx_space \k
	.endr
	bg_enter_s SATP_ASID(0), s_main

s_main:
	li	s1, 0
	li	s4, BG_GVA_SMALL_VA
	li	s5, 0
	li	s3, 4096

	ctx_section satp_same, nop
	/* one untimed round: the asid section starts with its tables built */
	la	s2, satp_asid
	ctx_switches BG_CTX_SPACES, nop
	ctx_section satp_asid, nop
	ctx_section satp_noasid, bg_full_fence

	bg_check_sum s5, checksum
	bg_runtime

	.section .rodata
	.balign 8
checksum:
	.dword	BG_CTX_CHECKSUM
satp_same:
	.rept BG_CTX_SPACES
	.dword	SATP_ASID(0)
	.endr
satp_asid:
	.irp k, 0, 1, 2, 3, 4, 5, 6, 7
	.dword	SATP_ASID(\k)
	.endr
satp_noasid:
	.irp k, 0, 1, 2, 3, 4, 5, 6, 7
	.dword	SATP_NOASID(\k)
	.endr
