/* isa_c_asm.S - compressed instructions, each in a tiny function called
 * from isa_c.c (explicit c.* mnemonics under .option rvc). */
	.option rvc
	.text

#define FN(name) .globl name; .type name, @function; .balign 2; name:

FN(c_addi)	c.addi a0, -5
		c.jr ra
FN(c_addi_big)	c.addi a0, 31
		c.jr ra
FN(c_addiw)	c.addiw a0, 1
		c.jr ra
FN(c_sextw)	c.addiw a0, 0
		c.jr ra
FN(c_li)	c.li a0, -32
		c.jr ra
FN(c_li31)	c.li a0, 31
		c.jr ra
FN(c_lui_neg)	c.lui a0, 0xfffe0
		c.jr ra
FN(c_lui_pos)	c.lui a0, 0x1f
		c.jr ra
/* returns the sp decrement of c.addi16sp sp, -64 ... then +496 - 496 */
FN(c_addi16sp)	c.mv a1, sp
		c.addi16sp sp, -64
		sub a0, a1, sp
		c.addi16sp sp, 496
		c.addi16sp sp, -496
		c.addi16sp sp, 64
		sub a1, a1, sp
		or a0, a0, a1          /* a1 must be 0: sp restored */
		c.jr ra
FN(c_addi4spn)	c.addi4spn a0, sp, 1020
		sub a0, a0, sp
		c.addi4spn a1, sp, 4
		sub a1, a1, sp
		c.slli a0, 8
		c.or a0, a1            /* 1020 << 8 | 4 */
		c.jr ra
FN(c_slli)	c.slli a0, 63
		c.jr ra
FN(c_slli1)	c.slli a0, 1
		c.jr ra
FN(c_srli)	c.srli a0, 63
		c.jr ra
FN(c_srli1)	c.srli a0, 1
		c.jr ra
FN(c_srai)	c.srai a0, 63
		c.jr ra
FN(c_srai1)	c.srai a0, 1
		c.jr ra
FN(c_andi)	c.andi a0, -2
		c.jr ra
FN(c_andi15)	c.andi a0, 15
		c.jr ra
FN(c_mv)	c.mv a0, a1
		c.jr ra
FN(c_add)	c.add a0, a1
		c.jr ra
FN(c_sub)	c.sub a0, a1
		c.jr ra
FN(c_xor)	c.xor a0, a1
		c.jr ra
FN(c_or)	c.or a0, a1
		c.jr ra
FN(c_and)	c.and a0, a1
		c.jr ra
FN(c_subw)	c.subw a0, a1
		c.jr ra
FN(c_addw)	c.addw a0, a1
		c.jr ra
/* loads: a1 = base */
FN(c_lw)	c.lw a0, 4(a1)
		c.jr ra
FN(c_lw0)	c.lw a0, 0(a1)
		c.jr ra
FN(c_ld)	c.ld a0, 8(a1)
		c.jr ra
FN(c_ld248)	c.ld a0, 248(a1)
		c.jr ra
/* stores: a0 = base, a1 = value */
FN(c_sw)	c.sw a1, 4(a0)
		c.jr ra
FN(c_sd)	c.sd a1, 8(a0)
		c.jr ra
/* sp-relative: store a0 with c.swsp/c.sdsp, reload with c.lwsp/c.ldsp */
FN(c_sp_w)	c.addi16sp sp, -32
		c.sdsp zero, 8(sp)
		c.swsp a0, 12(sp)
		c.lwsp a0, 12(sp)
		c.ldsp a1, 8(sp)
		c.addi16sp sp, 32
		c.jr ra                 /* a0 = sext(low word); a1 = word << 32 */
FN(c_sp_d)	c.addi16sp sp, -512
		c.sdsp a0, 504(sp)
		c.li a0, 0
		c.ldsp a0, 504(sp)
		c.addi16sp sp, 496
		c.addi16sp sp, 16
		c.jr ra
/* control transfer: return a bit mask of the paths taken */
FN(c_jumps)	c.li a0, 0
		c.j 1f
		c.li a0, -1             /* skipped */
1:		c.addi a0, 1
		la a1, 2f
		c.mv t0, ra
		c.jalr a1               /* ra = next insn */
3:		c.mv ra, t0
		c.jr ra
2:		la a2, 3b
		bne ra, a2, 4f
		c.addi a0, 2
4:		c.jr ra                 /* back to 3: */
FN(c_branches)	/* a0 = value; returns 1 if zero path taken by both tests */
		c.li a1, 0
		c.beqz a0, 1f
		c.addi a1, 2            /* nonzero */
		c.j 2f
1:		c.addi a1, 1
2:		c.bnez a0, 3f
		c.addi a1, 4            /* zero */
		c.mv a0, a1
		c.jr ra
3:		c.addi a1, 8
		c.mv a0, a1
		c.jr ra
FN(c_backloop)	/* sum 1..a0 with a backward c.bnez */
		c.li a1, 0
1:		c.add a1, a0
		c.addi a0, -1
		c.bnez a0, 1b
		c.mv a0, a1
		c.jr ra
FN(c_ebreak)	c.li a0, 1
		c.ebreak
		c.addi a0, 1
		c.jr ra
FN(c_nop)	c.nop
		c.li a0, 9
		c.jr ra

/* A 32-bit instruction straddling a page boundary (offset 0xffe), and a
 * compressed one right before it at 0xffc. */
	.section .text.straddle, "ax"
	.balign 4096
	.globl straddle_page
straddle_page:
	.option push
	.option norvc
	j	1f
	.org	straddle_page + 0xff8
1:	addi	a0, zero, 0x100   /* 0xff8 */
	.option rvc
	c.addi	a0, 1             /* 0xffc */
	.option norvc
	.globl straddle_insn
straddle_insn:
	addi	a0, a0, 0x22      /* 0xffe..0x1001 */
	ret
	.option pop
