/* misaligned - misaligned loads and stores (also across a page boundary)
 * either work with the right data or trap with cause 4 / 6 and stval = the
 * address (REQUIRE_MISALIGNED_OK=1: they must work); misaligned AMOs and
 * SC must trap (6: store/AMO), LR with 4 or 6. */
#include "rt.h"
#include "insn.h"

#ifndef REQUIRE_MISALIGNED_OK
#define REQUIRE_MISALIGNED_OK 0
#endif

static uint8_t buf[8192] __attribute__((aligned(4096)));
static unsigned int worked, trapped;

static void fill(void)
{
	for (unsigned int i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
}

static uint64_t expect_le(const uint8_t *p, unsigned int n, int sext)
{
	uint64_t v = 0;
	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	if (sext && n < 8 && (v >> (8 * n - 1) & 1))
		v |= ~0UL << (8 * n);
	return v;
}

#define TRY_LOAD(op, n, sext, off) do { \
	uint8_t *p = buf + (off); uint64_t r = 0; \
	trap_expect(); r = LOAD(op, p); uint64_t c = trap_end(); \
	if (c == TRAP_NONE) { worked++; CHECK_EQ(r, expect_le(p, n, sext)); } \
	else { trapped++; CHECK_EQ(c, CAUSE_MISALIGNED_LOAD); CHECK_EQ(trap_last()->tval, (uint64_t)p); \
		if (REQUIRE_MISALIGNED_OK) printf("FAIL %s at +0x%x trapped\n", op, (unsigned)(off)), check_failures++; } \
	} while (0)

#define TRY_STORE(op, n, off) do { \
	uint8_t *p = buf + (off); uint64_t v = 0x8877665544332211UL; fill(); \
	trap_expect(); STORE(op, p, v); uint64_t c = trap_end(); \
	if (c == TRAP_NONE) { worked++; CHECK_EQ(expect_le(p, n, 0), n == 8 ? v : v & ((1UL << (8 * n)) - 1)); \
		CHECK_EQ(p[-1], (uint8_t)((p - buf - 1) * 7 + 1)); CHECK_EQ(p[n], (uint8_t)((p - buf + n) * 7 + 1)); } \
	else { trapped++; CHECK_EQ(c, CAUSE_MISALIGNED_STORE); CHECK_EQ(trap_last()->tval, (uint64_t)p); \
		CHECK_EQ(p[0], (uint8_t)((p - buf) * 7 + 1)); \
		if (REQUIRE_MISALIGNED_OK) printf("FAIL %s at +0x%x trapped\n", op, (unsigned)(off)), check_failures++; } \
	} while (0)

int main(void)
{
	static const unsigned int offs[] = { 0x101, 0x103, 0x105, 0x107, 0xfff, 0xffd, 0xffb, 0xff9 };
	fill();
	for (unsigned int i = 0; i < 8; i++) {
		unsigned int o = offs[i];
		TRY_LOAD("lh", 2, 1, o);
		TRY_LOAD("lhu", 2, 0, o);
		TRY_LOAD("lw", 4, 1, o);
		TRY_LOAD("lw", 4, 1, o + 1);
		TRY_LOAD("lwu", 4, 0, o);
		TRY_LOAD("ld", 8, 0, o);
		TRY_LOAD("ld", 8, 0, o + 1);
		TRY_LOAD("ld", 8, 0, o + 3);
		TRY_STORE("sh", 2, o);
		TRY_STORE("sw", 4, o);
		TRY_STORE("sw", 4, o + 1);
		TRY_STORE("sd", 8, o);
		TRY_STORE("sd", 8, o + 1);
		TRY_STORE("sd", 8, o + 3);
	}
	printf("misaligned loads/stores: %u worked, %u trapped\n", worked, trapped);
	CHECK(worked == 0 || trapped == 0);       /* consistent behaviour */

	/* AMOs: always a trap, 6 by the spec (store/AMO); QEMU 7.2 raises 4 */
	uint8_t *p = buf + 0x202;
	uint64_t r, c;
	unsigned int amo4 = 0;
#define AMO_MIS(op, a) do { trap_expect(); r = AMO(op, a, 1); c = trap_end(); \
	if (c == CAUSE_MISALIGNED_LOAD) amo4++; \
	else CHECK_EQ(c, CAUSE_MISALIGNED_STORE); \
	if (c != TRAP_NONE) CHECK_EQ(trap_last()->tval, (uint64_t)(a)); } while (0)
	AMO_MIS("amoadd.w", p);
	AMO_MIS("amoswap.d", p + 2);
	AMO_MIS("amoor.d", buf + 0x204);     /* 4-aligned .d */
	AMO_MIS("amomaxu.w", p + 1);
	if (amo4)
		printf("note: %u misaligned AMOs raised cause 4 (QEMU 7.2), not 6\n", amo4);
	/* SC without a reservation: a trap (4 / 6) or a failure; never a store */
	fill();
	uint64_t before = *(volatile uint64_t *)(buf + 0x200);
	trap_expect();
	r = AMO("sc.w", p, 1);
	c = trap_end();
	CHECK(c == CAUSE_MISALIGNED_STORE || c == CAUSE_MISALIGNED_LOAD || (c == TRAP_NONE && r != 0));
	printf("misaligned sc.w: %s\n", c == TRAP_NONE ? "failed without a trap" : "trapped");
	CHECK_EQ(*(volatile uint64_t *)(buf + 0x200), before);
	trap_expect();
	__asm__ volatile("lr.w %0, (%1)" : "=r"(r) : "r"(p) : "memory");
	c = trap_end();
	CHECK(c == CAUSE_MISALIGNED_LOAD || c == CAUSE_MISALIGNED_STORE);
	printf("misaligned lr.w: cause %lu\n", c);
	trap_expect();
	__asm__ volatile("lr.d %0, (%1)" : "=r"(r) : "r"(buf + 0x204) : "memory");
	c = trap_end();
	CHECK(c == CAUSE_MISALIGNED_LOAD || c == CAUSE_MISALIGNED_STORE);
	(void)r;
	return 0;
}
