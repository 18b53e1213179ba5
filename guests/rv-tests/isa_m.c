/* isa_m - the M extension: MUL/MULH/MULHSU/MULHU, DIV/DIVU/REM/REMU and the
 * W forms, with the spec's edge cases (division by zero, INT_MIN / -1). */
#include "rt.h"
#include "insn.h"

#define MIN64 0x8000000000000000UL
#define MAX64 0x7fffffffffffffffUL
#define ALL1  0xffffffffffffffffUL
#define SX32(x) ((uint64_t)(int64_t)(int32_t)(uint32_t)(x))

static void mul(void)
{
	CHECK_EQ(RR("mul", 7, 6), 42);
	CHECK_EQ(RR("mul", ALL1, ALL1), 1);
	CHECK_EQ(RR("mul", MIN64, ALL1), MIN64);
	CHECK_EQ(RR("mul", 0x100000001UL, 0x100000001UL), 0x200000001UL);
	CHECK_EQ(RR("mulh", ALL1, ALL1), 0);            /* (-1)(-1) = 1 */
	CHECK_EQ(RR("mulh", MIN64, MIN64), 0x4000000000000000UL);
	CHECK_EQ(RR("mulh", MIN64, 1), ALL1);
	CHECK_EQ(RR("mulh", MAX64, MAX64), 0x3fffffffffffffffUL);
	CHECK_EQ(RR("mulh", 2, 3), 0);
	CHECK_EQ(RR("mulhu", ALL1, ALL1), 0xfffffffffffffffeUL);
	CHECK_EQ(RR("mulhu", MIN64, 2), 1);
	CHECK_EQ(RR("mulhu", ALL1, 1), 0);
	CHECK_EQ(RR("mulhsu", ALL1, ALL1), ALL1);       /* -1 * (2^64-1) */
	CHECK_EQ(RR("mulhsu", 1, ALL1), 0);
	CHECK_EQ(RR("mulhsu", MIN64, ALL1), 0x8000000000000000UL);
	CHECK_EQ(RR("mulhsu", 2, MIN64), 1);
	CHECK_EQ(RR("mulw", 0x7fffffff, 2), ALL1 - 1);   /* 0xfffffffe sext */
	CHECK_EQ(RR("mulw", 0x10000, 0x10000), 0);
	CHECK_EQ(RR("mulw", 0xffffffff00000003UL, 0x500000005UL), 15);
	CHECK_EQ(RR("mulw", 0x8000, 0x10000), 0xffffffff80000000UL);
}

static void div(void)
{
	CHECK_EQ(RR("div", 42, 6), 7);
	CHECK_EQ(RR("div", (uint64_t)-7, 2), (uint64_t)-3);   /* rounds to zero */
	CHECK_EQ(RR("rem", (uint64_t)-7, 2), (uint64_t)-1);   /* sign of dividend */
	CHECK_EQ(RR("rem", 7, (uint64_t)-2), 1);
	CHECK_EQ(RR("div", 7, (uint64_t)-2), (uint64_t)-3);
	CHECK_EQ(RR("divu", ALL1, 2), MAX64);
	CHECK_EQ(RR("remu", ALL1, 10), 5);
	/* by zero: quotient all ones, remainder = dividend */
	CHECK_EQ(RR("div", 5, 0), ALL1);
	CHECK_EQ(RR("div", (uint64_t)-5, 0), ALL1);
	CHECK_EQ(RR("divu", 5, 0), ALL1);
	CHECK_EQ(RR("rem", (uint64_t)-5, 0), (uint64_t)-5);
	CHECK_EQ(RR("remu", 5, 0), 5);
	/* overflow: INT_MIN / -1 = INT_MIN, remainder 0 */
	CHECK_EQ(RR("div", MIN64, ALL1), MIN64);
	CHECK_EQ(RR("rem", MIN64, ALL1), 0);
	CHECK_EQ(RR("divu", MIN64, ALL1), 0);
	CHECK_EQ(RR("remu", MIN64, ALL1), MIN64);

	/* W forms: operands are the low 32 bits, results sign-extended */
	CHECK_EQ(RR("divw", 0xffffffff0000002aUL, 6), 7);
	CHECK_EQ(RR("divw", SX32(-7), 2), (uint64_t)-3);
	CHECK_EQ(RR("divw", 0x80000000UL, ALL1), 0xffffffff80000000UL);
	CHECK_EQ(RR("remw", 0x80000000UL, ALL1), 0);
	CHECK_EQ(RR("divw", 5, 0), ALL1);
	CHECK_EQ(RR("divw", 5, 0x100000000UL), ALL1);    /* low word zero */
	CHECK_EQ(RR("remw", 0x1fffffffbUL, 0), (uint64_t)-5);  /* dividend sext */
	CHECK_EQ(RR("divuw", 0xffffffffUL, 2), 0x7fffffff);
	CHECK_EQ(RR("divuw", 0xfffffffeUL, 1), 0xfffffffffffffffeUL); /* sext of u32 */
	CHECK_EQ(RR("divuw", 0x1234, 0), ALL1);
	CHECK_EQ(RR("remuw", 0xfffffffbUL, 0), 0xfffffffffffffffbUL);
	CHECK_EQ(RR("remuw", 0xffffffffUL, 10), 5);
	CHECK_EQ(RR("remw", SX32(-7), 2), (uint64_t)-1);
	CHECK_EQ(RR("divuw", 0x80000000UL, ALL1), 0);
	CHECK_EQ(RR("remuw", 0x80000000UL, ALL1), 0xffffffff80000000UL);
}

/* A pseudo-random sweep against C arithmetic (compiled to the same
 * instructions by gcc, but on different operands: catches gross errors). */
static void sweep(void)
{
	uint64_t x = 0x9e3779b97f4a7c15UL;
	for (int i = 0; i < 200; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		uint64_t a = x, b = (x >> (i % 64)) | 1;
		if (i % 3 == 0)
			b = (uint64_t)(int64_t)(int8_t)b;
		__uint128_t pu = (__uint128_t)a * b;
		__int128_t ps = (__int128_t)(int64_t)a * (int64_t)b;
		CHECK_EQ(RR("mulhu", a, b), (uint64_t)(pu >> 64));
		CHECK_EQ(RR("mulh", a, b), (uint64_t)((unsigned __int128)ps >> 64));
		CHECK_EQ(RR("divu", a, b), a / b);
		CHECK_EQ(RR("remu", a, b), a % b);
		if (b != ALL1 || a != MIN64) {
			CHECK_EQ(RR("div", a, b), (uint64_t)((int64_t)a / (int64_t)b));
			CHECK_EQ(RR("rem", a, b), (uint64_t)((int64_t)a % (int64_t)b));
		}
	}
}

int main(void)
{
	mul();
	div();
	sweep();
	return 0;
}
