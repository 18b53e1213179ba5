/* isa_c - the C extension (isa_c_asm.S has the instructions). */
#include "rt.h"

typedef uint64_t (*fn1)(uint64_t);
typedef uint64_t (*fn2)(uint64_t, uint64_t);
#define F1(n) extern uint64_t n(uint64_t)
#define F2(n) extern uint64_t n(uint64_t, uint64_t)
F1(c_addi); F1(c_addi_big); F1(c_addiw); F1(c_sextw); F1(c_li); F1(c_li31);
F1(c_lui_neg); F1(c_lui_pos); F1(c_addi16sp); F1(c_addi4spn);
F1(c_slli); F1(c_slli1); F1(c_srli); F1(c_srli1); F1(c_srai); F1(c_srai1);
F1(c_andi); F1(c_andi15);
F2(c_mv); F2(c_add); F2(c_sub); F2(c_xor); F2(c_or); F2(c_and); F2(c_subw); F2(c_addw);
F2(c_lw); F2(c_lw0); F2(c_ld); F2(c_ld248); F2(c_sw); F2(c_sd);
F1(c_sp_w); F1(c_sp_d); F1(c_jumps); F1(c_branches); F1(c_backloop); F1(c_ebreak);
F1(c_nop); F1(straddle_page);
extern char straddle_insn[];

/* c_sp_w leaves the reloaded doubleword in a1 */
static uint64_t sp_w_a1(uint64_t v)
{
	register uint64_t a0 __asm__("a0") = v;
	register uint64_t a1 __asm__("a1");
	__asm__ volatile("call c_sp_w" : "+r"(a0), "=r"(a1) :: "ra", "memory");
	return a1;
}

static uint64_t buf[40];

int main(void)
{
	CHECK_EQ(c_addi(3), (uint64_t)-2);
	CHECK_EQ(c_addi_big(1), 32);
	CHECK_EQ(c_addiw(0x7fffffff), 0xffffffff80000000UL);
	CHECK_EQ(c_sextw(0x12345678ffffffffUL), ~0UL);
	CHECK_EQ(c_li(0), (uint64_t)-32);
	CHECK_EQ(c_li31(0), 31);
	CHECK_EQ(c_lui_neg(0), 0xfffffffffffe0000UL);
	CHECK_EQ(c_lui_pos(0), 0x1f000);
	CHECK_EQ(c_addi16sp(0), 64);
	CHECK_EQ(c_addi4spn(0), (1020UL << 8) | 4);
	CHECK_EQ(c_slli(1), 0x8000000000000000UL);
	CHECK_EQ(c_slli1(0xc000000000000001UL), 0x8000000000000002UL);
	CHECK_EQ(c_srli(0x8000000000000000UL), 1);
	CHECK_EQ(c_srli1(0x8000000000000000UL), 0x4000000000000000UL);
	CHECK_EQ(c_srai(0x8000000000000000UL), ~0UL);
	CHECK_EQ(c_srai1(0x8000000000000000UL), 0xc000000000000000UL);
	CHECK_EQ(c_andi(0xffUL), 0xfe);
	CHECK_EQ(c_andi15(0x1234), 4);
	CHECK_EQ(c_mv(1, 0xabc), 0xabc);
	CHECK_EQ(c_add(0x7fffffffffffffffUL, 1), 0x8000000000000000UL);
	CHECK_EQ(c_sub(0, 1), ~0UL);
	CHECK_EQ(c_xor(0xff00, 0x0ff0), 0xf0f0);
	CHECK_EQ(c_or(0xff00, 0x0ff0), 0xfff0);
	CHECK_EQ(c_and(0xff00, 0x0ff0), 0x0f00);
	CHECK_EQ(c_subw(0x80000000UL, 1), 0x7fffffff);
	CHECK_EQ(c_subw(0, 1), ~0UL);
	CHECK_EQ(c_addw(0x7fffffff, 1), 0xffffffff80000000UL);
	CHECK_EQ(c_addw(0x100000000UL, 5), 5);

	buf[0] = 0x8000000112345678UL;
	buf[1] = 0x1122334455667788UL;
	buf[31] = 0xdeadbeefcafef00dUL;
	CHECK_EQ(c_lw((uint64_t)buf, (uint64_t)buf), 0xffffffff80000001UL);  /* sign-extended */
	CHECK_EQ(c_lw0(0, (uint64_t)buf), 0x12345678);
	CHECK_EQ(c_ld(0, (uint64_t)buf), 0x1122334455667788UL);
	CHECK_EQ(c_ld248(0, (uint64_t)buf), 0xdeadbeefcafef00dUL);
	c_sw((uint64_t)buf, 0xaaaaaaaa99999999UL);
	CHECK_EQ(buf[0], 0x9999999912345678UL);
	c_sd((uint64_t)buf, 0x0102030405060708UL);
	CHECK_EQ(buf[1], 0x0102030405060708UL);
	CHECK_EQ(c_sp_w(0x00000000f0000001UL), 0xfffffffff0000001UL);
	CHECK_EQ(sp_w_a1(0x00000000f0000001UL), 0xf000000100000000UL);
	CHECK_EQ(c_sp_d(0x123456789abcdef0UL), 0x123456789abcdef0UL);

	CHECK_EQ(c_jumps(0), 3);
	CHECK_EQ(c_branches(0), 1 | 4);
	CHECK_EQ(c_branches(5), 2 | 8);
	CHECK_EQ(c_backloop(10), 55);
	CHECK_EQ(c_nop(0), 9);

	trap_expect();
	uint64_t r = c_ebreak(0);
	uint64_t cause = trap_end();
	CHECK_EQ(cause, CAUSE_BREAKPOINT);
	CHECK_EQ(r, 2);                                   /* resumed after it */
	CHECK_EQ(trap_last()->epc & 0xfff, ((uint64_t)c_ebreak + 2) & 0xfff);
	CHECK(trap_last()->tval == 0 || trap_last()->tval == trap_last()->epc);

	CHECK_EQ((uint64_t)straddle_insn & 0xfff, 0xffe);
	CHECK_EQ(straddle_page(0), 0x123);
	/* modify the straddling instruction's immediate (in its second half)
	 * and run it again: fence.i makes the new code visible */
	volatile uint16_t *hi = (volatile uint16_t *)(straddle_insn + 2);
	uint16_t old = *hi;
	*hi = (uint16_t)((old & 0x000f) | (0x033 << 4));   /* imm[11:0] = 0x033 */
	__asm__ volatile("fence.i" ::: "memory");
	CHECK_EQ(straddle_page(0), 0x101 + 0x33);
	*hi = old;
	__asm__ volatile("fence.i" ::: "memory");
	CHECK_EQ(straddle_page(0), 0x123);
	return 0;
}
