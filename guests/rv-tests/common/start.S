/* SPDX-License-Identifier: MIT */
/*
 * start.S - entry on every hart (M mode, a0 = hart id, a1 = DTB), the M and
 * S trap vectors (all registers saved into a struct trap_frame on a per-hart
 * trap stack found through mscratch / sscratch), and run_lower.
 *
 * Per-hart stack block (HART_STACK = 32 KiB, from the top): 16 KiB main
 * stack, 8 KiB M trap stack, 8 KiB S trap stack.
 */
#define HART_STACK 0x8000
#define MAX_HARTS  8
#define FRAME      (36 * 8)
#define RT_RETURN_MAGIC 0x5254524554

	.section .text.init, "ax"
	.globl _start
_start:
	auipc	t2, 0			/* where this hart entered */
	.option push
	.option norelax
	la	gp, __global_pointer$
	.option pop
	mv	tp, a0
	/* rt_entry_pc / rt_entry_a1[hart] (in .data: hart 0 clears .bss
	 * while the others may already be here). */
	li	t0, MAX_HARTS
	bgeu	a0, t0, 6f
	slli	t1, a0, 3
	la	t0, rt_entry_pc
	add	t0, t0, t1
	sd	t2, 0(t0)
	la	t0, rt_entry_a1
	add	t0, t0, t1
	sd	a1, 0(t0)
6:
	csrw	mie, zero
	/* Until the real vector is in place, skip any trapping instruction
	 * (PMP CSRs, satp: optional on some harts). */
	la	t0, early_trap
	csrw	mtvec, t0
	/* PMP entry 0: NAPOT over the whole address space, RWX, so S and U
	 * may reach RAM and MMIO. */
	li	t0, -1
	csrw	pmpaddr0, t0
	li	t0, 0x1f
	csrw	pmpcfg0, t0
	csrw	satp, zero
	csrw	medeleg, zero
	csrw	mideleg, zero

	li	t0, MAX_HARTS
	bgeu	a0, t0, park_asm
	/* sp = top of this hart's block; trap stacks below the main stack */
	li	t1, HART_STACK
	mul	t2, a0, t1
	la	sp, __stack_top
	sub	sp, sp, t2
	li	t1, 0x4000
	sub	t0, sp, t1
	csrw	mscratch, t0
	li	t1, 0x2000
	sub	t0, t0, t1
	csrw	sscratch, t0
	la	t0, m_trap_entry
	csrw	mtvec, t0
	la	t0, s_trap_entry
	csrw	stvec, t0

	bnez	a0, 2f
	/* hart 0: clear .bss, then release the others */
	la	t0, __bss_start
	la	t1, __bss_end
1:	bgeu	t0, t1, 3f
	sd	zero, 0(t0)
	addi	t0, t0, 8
	j	1b
3:	fence	rw, rw
	la	t0, rt_boot_flag
	li	t1, 1
	sw	t1, 0(t0)
	j	4f
2:	la	t0, rt_boot_flag
5:	lw	t1, 0(t0)
	beqz	t1, 5b
	fence	rw, rw
4:	call	rt_main
park_asm:
	wfi
	j	park_asm

	.align 2
early_trap:
	csrr	t0, mepc
	addi	t0, t0, 4
	csrw	mepc, t0
	mret

/* Save x1, x3..x31 at 0(sp) (the frame); x2 saved separately. */
.macro SAVE_REGS
	sd	x1, 1*8(sp)
	sd	x3, 3*8(sp)
	sd	x4, 4*8(sp)
	sd	x5, 5*8(sp)
	sd	x6, 6*8(sp)
	sd	x7, 7*8(sp)
	sd	x8, 8*8(sp)
	sd	x9, 9*8(sp)
	sd	x10, 10*8(sp)
	sd	x11, 11*8(sp)
	sd	x12, 12*8(sp)
	sd	x13, 13*8(sp)
	sd	x14, 14*8(sp)
	sd	x15, 15*8(sp)
	sd	x16, 16*8(sp)
	sd	x17, 17*8(sp)
	sd	x18, 18*8(sp)
	sd	x19, 19*8(sp)
	sd	x20, 20*8(sp)
	sd	x21, 21*8(sp)
	sd	x22, 22*8(sp)
	sd	x23, 23*8(sp)
	sd	x24, 24*8(sp)
	sd	x25, 25*8(sp)
	sd	x26, 26*8(sp)
	sd	x27, 27*8(sp)
	sd	x28, 28*8(sp)
	sd	x29, 29*8(sp)
	sd	x30, 30*8(sp)
	sd	x31, 31*8(sp)
	sd	x0, 0(sp)
.endm
.macro RESTORE_REGS
	ld	x1, 1*8(sp)
	ld	x3, 3*8(sp)
	ld	x4, 4*8(sp)
	ld	x5, 5*8(sp)
	ld	x6, 6*8(sp)
	ld	x7, 7*8(sp)
	ld	x8, 8*8(sp)
	ld	x9, 9*8(sp)
	ld	x10, 10*8(sp)
	ld	x11, 11*8(sp)
	ld	x12, 12*8(sp)
	ld	x13, 13*8(sp)
	ld	x14, 14*8(sp)
	ld	x15, 15*8(sp)
	ld	x16, 16*8(sp)
	ld	x17, 17*8(sp)
	ld	x18, 18*8(sp)
	ld	x19, 19*8(sp)
	ld	x20, 20*8(sp)
	ld	x21, 21*8(sp)
	ld	x22, 22*8(sp)
	ld	x23, 23*8(sp)
	ld	x24, 24*8(sp)
	ld	x25, 25*8(sp)
	ld	x26, 26*8(sp)
	ld	x27, 27*8(sp)
	ld	x28, 28*8(sp)
	ld	x29, 29*8(sp)
	ld	x30, 30*8(sp)
	ld	x31, 31*8(sp)
	ld	x2, 2*8(sp)
.endm

/* M-mode vector (direct). mscratch = top of the free part of this hart's
 * M trap stack; it is lowered while a frame is live, so a trap inside the
 * handler nests below. */
	.align 4
	.globl m_trap_entry
m_trap_entry:
	csrrw	sp, mscratch, sp
	addi	sp, sp, -FRAME
	SAVE_REGS
	csrr	t0, mscratch
	sd	t0, 2*8(sp)
	csrr	t0, mepc
	sd	t0, 32*8(sp)
	csrr	t0, mstatus
	sd	t0, 33*8(sp)
	csrr	t0, mcause
	sd	t0, 34*8(sp)
	csrr	t0, mtval
	sd	t0, 35*8(sp)
	csrw	mscratch, sp
	mv	a0, sp
	call	m_trap_dispatch
	ld	t0, 32*8(sp)
	csrw	mepc, t0
	ld	t0, 33*8(sp)
	csrw	mstatus, t0
	addi	t0, sp, FRAME
	csrw	mscratch, t0
	RESTORE_REGS
	mret

	.align 4
	.globl s_trap_entry
s_trap_entry:
	csrrw	sp, sscratch, sp
	addi	sp, sp, -FRAME
	SAVE_REGS
	csrr	t0, sscratch
	sd	t0, 2*8(sp)
	csrr	t0, sepc
	sd	t0, 32*8(sp)
	csrr	t0, sstatus
	sd	t0, 33*8(sp)
	csrr	t0, scause
	sd	t0, 34*8(sp)
	csrr	t0, stval
	sd	t0, 35*8(sp)
	csrw	sscratch, sp
	mv	a0, sp
	call	s_trap_dispatch
	ld	t0, 32*8(sp)
	csrw	sepc, t0
	ld	t0, 33*8(sp)
	csrw	sstatus, t0
	addi	t0, sp, FRAME
	csrw	sscratch, t0
	RESTORE_REGS
	sret

/* uint64_t run_lower(mode a0, fn a1, arg a2): mret into fn(arg) at mode,
 * with ra = a stub that ecalls back with a7 = RT_RETURN_MAGIC; the M
 * handler then resumes at run_lower_resume with the saved sp. */
	.text
	.globl run_lower
	.globl run_lower_resume
run_lower:
	addi	sp, sp, -112
	sd	ra, 0(sp)
	sd	s0, 8(sp)
	sd	s1, 16(sp)
	sd	s2, 24(sp)
	sd	s3, 32(sp)
	sd	s4, 40(sp)
	sd	s5, 48(sp)
	sd	s6, 56(sp)
	sd	s7, 64(sp)
	sd	s8, 72(sp)
	sd	s9, 80(sp)
	sd	s10, 88(sp)
	sd	s11, 96(sp)
	la	t0, rt_saved_sp
	slli	t1, tp, 3
	add	t0, t0, t1
	sd	sp, 0(t0)
	li	t0, 3 << 11
	csrc	mstatus, t0
	slli	t1, a0, 11
	csrs	mstatus, t1
	csrw	mepc, a1
	mv	a0, a2
	la	ra, run_lower_back
	mret
run_lower_back:
	li	a7, RT_RETURN_MAGIC
	ecall
1:	j	1b
run_lower_resume:
	ld	ra, 0(sp)
	ld	s0, 8(sp)
	ld	s1, 16(sp)
	ld	s2, 24(sp)
	ld	s3, 32(sp)
	ld	s4, 40(sp)
	ld	s5, 48(sp)
	ld	s6, 56(sp)
	ld	s7, 64(sp)
	ld	s8, 72(sp)
	ld	s9, 80(sp)
	ld	s10, 88(sp)
	ld	s11, 96(sp)
	addi	sp, sp, 112
	ret

	.data
	.globl rt_boot_flag
	.align 3
rt_boot_flag:
	.word 0
	.word 0
	.globl rt_entry_pc
	.globl rt_entry_a1
rt_entry_pc:
	.fill MAX_HARTS, 8, 0
rt_entry_a1:
	.fill MAX_HARTS, 8, 0

	.section .tohost, "aw", @progbits
	.align 6
	.globl tohost
tohost:	.dword 0
	.align 6
	.globl fromhost
fromhost: .dword 0
