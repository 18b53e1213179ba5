/* amo_smp - AMOs and LR/SC between harts (run with 2 and 4): every hart
 * hammers shared words with amoadd/swap/and/or/xor/min/max(u), an LR/SC
 * increment loop and a spinlock (amoswap.w.aq / amoswap.w.rl) guarding a
 * plain counter; an AMO barrier; hart 0 checks the exact totals. Also the
 * single-hart LR/SC rules. */
#include "rt.h"
#include "insn.h"

#define N 3000

static volatile uint32_t c32;
static volatile uint64_t c64, lrsc64, orw, andw = ~0UL, xorw, plain;
static volatile uint32_t lrsc32, lock;
static volatile int32_t minw, maxw;
static volatile uint64_t minu = ~0UL, maxu;
static volatile uint64_t swapw;
static volatile uint32_t bar_count, bar_sense;
static unsigned int nharts;
static uint64_t other_page[512] __attribute__((aligned(4096)));

static void barrier(void)
{
	uint32_t sense = bar_sense;
	if (AMO("amoadd.w.aqrl", &bar_count, 1) == nharts - 1) {
		bar_count = 0;
		AMO("amoswap.w.rl", &bar_sense, !sense);
	} else {
		while (__atomic_load_n(&bar_sense, __ATOMIC_ACQUIRE) == sense)
			;
	}
}

static void spin_lock(void)
{
	while (AMO("amoswap.w.aq", &lock, 1))
		while (lock)
			;
}

static void spin_unlock(void)
{
	__asm__ volatile("amoswap.w.rl x0, x0, (%0)" :: "r"(&lock) : "memory");
}

static void work(unsigned long h)
{
	barrier();
	for (int i = 0; i < N; i++) {
		AMO("amoadd.w", &c32, 1);
		AMO("amoadd.d", &c64, 3);
		/* LR/SC increments, 32 and 64 bit */
		uint64_t t, fail;
		__asm__ volatile("1: lr.w %0, (%2)\naddi %0, %0, 1\nsc.w %1, %0, (%2)\nbnez %1, 1b"
				 : "=&r"(t), "=&r"(fail) : "r"(&lrsc32) : "memory");
		__asm__ volatile("1: lr.d.aq %0, (%2)\naddi %0, %0, 2\nsc.d.rl %1, %0, (%2)\nbnez %1, 1b"
				 : "=&r"(t), "=&r"(fail) : "r"(&lrsc64) : "memory");
		spin_lock();
		plain = plain + 1;
		spin_unlock();
		/* swap: each hart swaps in its own tag, keeps the value it got;
		 * the sum of everything ever seen is checked through c64 below */
		AMO("amoswap.d", &swapw, h);
	}
	AMO("amoor.d", &orw, 1UL << h);
	AMO("amoand.d", &andw, ~(1UL << (h * 2)));
	AMO("amoxor.d", &xorw, 0x100UL << h);
	AMO("amoxor.d", &xorw, 0x1UL);                 /* n times: parity */
	AMO("amomin.w", &minw, -(int64_t)(h + 1) * 1000);
	AMO("amomax.w", &maxw, (h + 1) * 1000);
	AMO("amominu.d", &minu, 0x1000 + h);
	AMO("amomaxu.d", &maxu, 0x8000000000000000UL + h);
	barrier();
}

void secondary_main(unsigned long h)
{
	while (!__atomic_load_n(&nharts, __ATOMIC_ACQUIRE))
		;
	if (h < nharts)
		work(h);
	park();
}

static void lrsc_rules(void)
{
	volatile uint64_t w = 5;
	uint64_t r, t;
	/* LR then SC to the same address: succeeds once */
	__asm__ volatile("lr.d %0, (%1)" : "=r"(t) : "r"(&w) : "memory");
	CHECK_EQ(t, 5);
	__asm__ volatile("sc.d %0, %2, (%1)" : "=&r"(r) : "r"(&w), "r"(6UL) : "memory");
	CHECK_EQ(r, 0);
	CHECK_EQ(w, 6);
	/* again, without a new LR: fails, no store */
	__asm__ volatile("sc.d %0, %2, (%1)" : "=&r"(r) : "r"(&w), "r"(7UL) : "memory");
	CHECK(r != 0);
	CHECK_EQ(w, 6);
	/* SC to another page than the LR's: fails */
	other_page[0] = 1;
	__asm__ volatile("lr.d %0, (%1)" : "=r"(t) : "r"(&w) : "memory");
	__asm__ volatile("sc.d %0, %2, (%1)" : "=&r"(r) : "r"(other_page), "r"(9UL) : "memory");
	CHECK(r != 0);
	CHECK_EQ(other_page[0], 1);
	/* lr.w sign-extends */
	volatile uint32_t w32 = 0x80000001;
	__asm__ volatile("lr.w %0, (%1)" : "=r"(t) : "r"(&w32) : "memory");
	CHECK_EQ(t, 0xffffffff80000001UL);
	__asm__ volatile("sc.w %0, %2, (%1)" : "=&r"(r) : "r"(&w32), "r"(2UL) : "memory");
	CHECK_EQ(r, 0);
	CHECK_EQ(w32, 2);
	/* AMO return values: old value, .w sign-extended */
	volatile uint32_t a32 = 0x7fffffff;
	CHECK_EQ(AMO("amoadd.w", &a32, 1), 0x7fffffff);
	CHECK_EQ(AMO("amoadd.w", &a32, 0), 0xffffffff80000000UL);
	CHECK_EQ(AMO("amoswap.w", &a32, 3), 0xffffffff80000000UL);
	CHECK_EQ(a32, 3);
	volatile int64_t s64 = -5;
	CHECK_EQ(AMO("amomin.d", &s64, 2), (uint64_t)-5);
	CHECK_EQ(s64, -5);
	CHECK_EQ(AMO("amominu.d", &s64, 2), (uint64_t)-5);
	CHECK_EQ(s64, 2);
	CHECK_EQ(AMO("amomax.d", &s64, -1), 2);
	CHECK_EQ(s64, 2);
	CHECK_EQ(AMO("amomaxu.d", &s64, -1), 2);
	CHECK_EQ(s64, -1);
	(void)t;
}

int main(void)
{
	lrsc_rules();
	unsigned int n = rt_nharts();
	if (n > MAX_HARTS)
		n = MAX_HARTS;
	printf("amo_smp: %u harts, %d iterations each\n", n, N);
	minw = 0;
	maxw = 0;
	__atomic_store_n(&nharts, n, __ATOMIC_RELEASE);
	work(0);
	CHECK_EQ(c32, (uint64_t)n * N);
	CHECK_EQ(c64, (uint64_t)n * N * 3);
	CHECK_EQ(lrsc32, (uint64_t)n * N);
	CHECK_EQ(lrsc64, (uint64_t)n * N * 2);
	CHECK_EQ(plain, (uint64_t)n * N);
	CHECK(swapw < n);
	uint64_t all = (1UL << n) - 1, even = 0;
	for (unsigned int h = 0; h < n; h++)
		even |= 1UL << (2 * h);
	CHECK_EQ(orw, all);
	CHECK_EQ(andw, ~even);
	CHECK_EQ(xorw, (all << 8) | (n & 1));
	CHECK_EQ((int64_t)minw, -(int64_t)n * 1000);
	CHECK_EQ((int64_t)maxw, (int64_t)n * 1000);
	CHECK_EQ(minu, 0x1000);
	CHECK_EQ(maxu, 0x8000000000000000UL + n - 1);
	return 0;
}
