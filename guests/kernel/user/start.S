	.section .text.ustart
	.globl _ustart
_ustart:			/* sp = USTACK_TOP, set by the kernel */
	call	main
	mv	a0, a0
	li	a7, 1		/* SYS_EXIT */
	ecall
1:	j	1b
