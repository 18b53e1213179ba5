/*
 * htif.S - the HTIF path alone: print "PASS htif" through HTIF's console
 * (device 1, command 1: putchar, acknowledged through fromhost) and exit
 * through tohost with status 0, touching neither the UART nor the test
 * device. Spike and tandem honour HTIF; QEMU's virt machine does not (the
 * runner skips this program with --no-htif).
 */
	.section .text.init, "ax", @progbits
	.globl _start
_start:
	csrr	t0, mhartid
	bnez	t0, park
	la	s0, tohost
	la	s1, fromhost
	la	s2, msg
	li	s3, 0x0101000000000000		/* device 1, command 1 */
1:	lbu	a0, 0(s2)
	beqz	a0, 3f
	or	t1, s3, a0
	sd	t1, 0(s0)
2:	ld	t2, 0(s1)			/* wait for the host's answer */
	beqz	t2, 2b
	sd	zero, 0(s1)
	addi	s2, s2, 1
	j	1b
3:	li	t1, 1				/* exit status 0: (0 << 1) | 1 */
	sd	t1, 0(s0)
park:	wfi
	j	park

	.section .rodata
msg:	.string "PASS htif\n"

	.section .tohost, "aw", @progbits
	.align	6
	.globl	tohost
tohost:	.dword	0
	.align	6
	.globl	fromhost
fromhost: .dword 0
