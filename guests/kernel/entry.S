/* guests/kernel: entry points, trap vector, context switch, return to U.
 *
 * While a hart runs U code, sscratch holds the running process's trap
 * frame; while it runs the kernel, sscratch is 0. The vector swaps sp
 * with sscratch and so tells the two cases apart. Trap frame layout
 * (struct trapframe in proc.c): x0..x31 at 8*i, then epc, kernel sp,
 * kernel tp. */

#define TF_EPC 256
#define TF_KSP 264
#define TF_KTP 272
#define BOOT_STACK 16384

	.section .text.entry
	.globl _start
_start:				/* boot hart: a0 = hart id, a1 = DTB */
	li	t0, 8
	bgeu	a0, t0, park
	la	sp, boot_stacks
	li	t1, BOOT_STACK
	addi	t2, a0, 1
	mul	t1, t1, t2
	add	sp, sp, t1
	la	t0, __bss_start
	la	t1, __bss_end
1:	bgeu	t0, t1, 2f
	sd	zero, 0(t0)
	addi	t0, t0, 8
	j	1b
2:	call	kmain
	j	park

	.globl _secondary
_secondary:			/* other harts (SBI HSM): a0 = hart id, a1 = opaque */
	li	t0, 8
	bgeu	a0, t0, park
	la	sp, boot_stacks
	li	t1, BOOT_STACK
	addi	t2, a0, 1
	mul	t1, t1, t2
	add	sp, sp, t1
	call	secondary_main
park:
	wfi
	j	park

	.text
	.balign 4
	.globl trap_vector
trap_vector:
	csrrw	sp, sscratch, sp
	beqz	sp, from_kernel
	/* from U: sp = trap frame, sscratch = user sp */
	sd	x1, 8(sp)
	sd	x3, 24(sp)
	sd	x4, 32(sp)
	sd	x5, 40(sp)
	sd	x6, 48(sp)
	sd	x7, 56(sp)
	sd	x8, 64(sp)
	sd	x9, 72(sp)
	sd	x10, 80(sp)
	sd	x11, 88(sp)
	sd	x12, 96(sp)
	sd	x13, 104(sp)
	sd	x14, 112(sp)
	sd	x15, 120(sp)
	sd	x16, 128(sp)
	sd	x17, 136(sp)
	sd	x18, 144(sp)
	sd	x19, 152(sp)
	sd	x20, 160(sp)
	sd	x21, 168(sp)
	sd	x22, 176(sp)
	sd	x23, 184(sp)
	sd	x24, 192(sp)
	sd	x25, 200(sp)
	sd	x26, 208(sp)
	sd	x27, 216(sp)
	sd	x28, 224(sp)
	sd	x29, 232(sp)
	sd	x30, 240(sp)
	sd	x31, 248(sp)
	csrr	t0, sscratch
	sd	t0, 16(sp)
	csrw	sscratch, zero
	csrr	t0, sepc
	sd	t0, TF_EPC(sp)
	ld	tp, TF_KTP(sp)
	ld	sp, TF_KSP(sp)
	call	usertrap
	/* usertrap never returns: it ends in user_return */
	j	park

from_kernel:
	csrrw	sp, sscratch, sp	/* sp back, sscratch 0 again */
	addi	sp, sp, -160
	sd	ra, 0(sp)
	sd	t0, 8(sp)
	sd	t1, 16(sp)
	sd	t2, 24(sp)
	sd	a0, 32(sp)
	sd	a1, 40(sp)
	sd	a2, 48(sp)
	sd	a3, 56(sp)
	sd	a4, 64(sp)
	sd	a5, 72(sp)
	sd	a6, 80(sp)
	sd	a7, 88(sp)
	sd	t3, 96(sp)
	sd	t4, 104(sp)
	sd	t5, 112(sp)
	sd	t6, 120(sp)
	csrr	t0, sepc
	sd	t0, 128(sp)
	csrr	t0, sstatus
	sd	t0, 136(sp)
	csrr	a0, scause
	csrr	a1, sepc
	csrr	a2, stval
	call	kerneltrap
	ld	t0, 128(sp)
	csrw	sepc, t0
	ld	t0, 136(sp)
	csrw	sstatus, t0
	ld	ra, 0(sp)
	ld	t0, 8(sp)
	ld	t1, 16(sp)
	ld	t2, 24(sp)
	ld	a0, 32(sp)
	ld	a1, 40(sp)
	ld	a2, 48(sp)
	ld	a3, 56(sp)
	ld	a4, 64(sp)
	ld	a5, 72(sp)
	ld	a6, 80(sp)
	ld	a7, 88(sp)
	ld	t3, 96(sp)
	ld	t4, 104(sp)
	ld	t5, 112(sp)
	ld	t6, 120(sp)
	addi	sp, sp, 160
	sret

	/* user_return(tf): sstatus.SPP must already be U. */
	.globl user_return
user_return:
	csrw	sscratch, a0
	ld	t0, TF_EPC(a0)
	csrw	sepc, t0
	ld	x1, 8(a0)
	ld	x2, 16(a0)
	ld	x3, 24(a0)
	ld	x4, 32(a0)
	ld	x5, 40(a0)
	ld	x6, 48(a0)
	ld	x7, 56(a0)
	ld	x8, 64(a0)
	ld	x9, 72(a0)
	ld	x11, 88(a0)
	ld	x12, 96(a0)
	ld	x13, 104(a0)
	ld	x14, 112(a0)
	ld	x15, 120(a0)
	ld	x16, 128(a0)
	ld	x17, 136(a0)
	ld	x18, 144(a0)
	ld	x19, 152(a0)
	ld	x20, 160(a0)
	ld	x21, 168(a0)
	ld	x22, 176(a0)
	ld	x23, 184(a0)
	ld	x24, 192(a0)
	ld	x25, 200(a0)
	ld	x26, 208(a0)
	ld	x27, 216(a0)
	ld	x28, 224(a0)
	ld	x29, 232(a0)
	ld	x30, 240(a0)
	ld	x31, 248(a0)
	ld	x10, 80(a0)
	sret

	/* swtch(old, new): save callee-saved registers in *old, load *new. */
	.globl swtch
swtch:
	sd	ra, 0(a0)
	sd	sp, 8(a0)
	sd	s0, 16(a0)
	sd	s1, 24(a0)
	sd	s2, 32(a0)
	sd	s3, 40(a0)
	sd	s4, 48(a0)
	sd	s5, 56(a0)
	sd	s6, 64(a0)
	sd	s7, 72(a0)
	sd	s8, 80(a0)
	sd	s9, 88(a0)
	sd	s10, 96(a0)
	sd	s11, 104(a0)
	ld	ra, 0(a1)
	ld	sp, 8(a1)
	ld	s0, 16(a1)
	ld	s1, 24(a1)
	ld	s2, 32(a1)
	ld	s3, 40(a1)
	ld	s4, 48(a1)
	ld	s5, 56(a1)
	ld	s6, 64(a1)
	ld	s7, 72(a1)
	ld	s8, 80(a1)
	ld	s9, 88(a1)
	ld	s10, 96(a1)
	ld	s11, 104(a1)
	ret

	/* The workload, a flat binary linked at USER_BASE. */
	.section .rodata
	.balign 4096
	.globl user_image, user_image_end
user_image:
	.incbin USER_BIN
user_image_end:
	.bss
	.balign 16
	.globl boot_stacks
boot_stacks:
	.space BOOT_STACK * 8
