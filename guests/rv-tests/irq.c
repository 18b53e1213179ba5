/* irq - interrupts (run with 2 harts): the machine timer through CLINT
 * mtimecmp, WFI waking with mstatus.MIE = 0, an IPI through msip from hart
 * 0 to hart 1 and back, the supervisor timer through Sstc (skipped with a
 * message when menvcfg.STCE does not stick), and SSIP set by M taken in S. */
#include "rt.h"

#define TIMEOUT (2 * TIMEBASE_HZ)

static volatile unsigned int mti, msi[MAX_HARTS], sti, ssi;
static volatile unsigned int hart1_ready;

static int m_hook(struct trap_frame *f)
{
	if (f->cause == (CAUSE_INTR | IRQ_MTI)) {
		mmio_w64(CLINT_MTIMECMP(hartid()), ~0UL);
		mti++;
		return 1;
	}
	if (f->cause == (CAUSE_INTR | IRQ_MSI)) {
		mmio_w32(CLINT_MSIP(hartid()), 0);
		msi[hartid()]++;
		if (hartid() == 1)
			mmio_w32(CLINT_MSIP(0), 1);          /* reply */
		return 1;
	}
	return 0;
}

static int s_hook(struct trap_frame *f)
{
	if (f->cause == (CAUSE_INTR | IRQ_STI)) {
		csr_write(stimecmp, ~0UL);
		sti++;
		return 1;
	}
	if (f->cause == (CAUSE_INTR | IRQ_SSI)) {
		csr_clear(sip, 1UL << IRQ_SSI);
		ssi++;
		return 1;
	}
	return 0;
}

static int wait_for(volatile unsigned int *v, unsigned int want)
{
	uint64_t t0 = mtime();
	while (*v < want)
		if (mtime() - t0 > TIMEOUT)
			return 0;
	return 1;
}

void secondary_main(unsigned long h)
{
	if (h != 1)
		park();
	mmio_w64(CLINT_MTIMECMP(h), ~0UL);
	csr_write(mie, 1UL << IRQ_MSI);
	csr_set(mstatus, MSTATUS_MIE);
	__atomic_store_n(&hart1_ready, 1, __ATOMIC_RELEASE);
	for (;;)
		__asm__ volatile("wfi");
}

static void timer(void)
{
	mmio_w64(CLINT_MTIMECMP(0), ~0UL);
	csr_write(mie, 1UL << IRQ_MTI);
	CHECK(!(csr_read(mip) & (1UL << IRQ_MTI)));
	uint64_t target = mtime() + TIMEBASE_HZ / 1000;      /* 1 ms */
	mmio_w64(CLINT_MTIMECMP(0), target);
	csr_set(mstatus, MSTATUS_MIE);
	CHECK(wait_for(&mti, 1));
	CHECK(mtime() >= target);
	csr_clear(mstatus, MSTATUS_MIE);
	CHECK_EQ(mti, 1);
	CHECK(!(csr_read(mip) & (1UL << IRQ_MTI)));            /* cleared by mtimecmp */

	/* WFI with MIE = 0: wakes when MTIP becomes pending, no trap */
	target = mtime() + TIMEBASE_HZ / 100;                 /* 10 ms */
	mmio_w64(CLINT_MTIMECMP(0), target);
	uint64_t t0 = mtime();
	while (!(csr_read(mip) & (1UL << IRQ_MTI)) && mtime() - t0 < TIMEOUT)
		__asm__ volatile("wfi");
	CHECK(mtime() >= target);
	CHECK(csr_read(mip) & (1UL << IRQ_MTI));
	CHECK_EQ(mti, 1);
	/* then enabling MIE takes it */
	csr_set(mstatus, MSTATUS_MIE);
	CHECK(wait_for(&mti, 2));
	csr_clear(mstatus, MSTATUS_MIE);
	/* mtimecmp in the past: pending at once */
	mmio_w64(CLINT_MTIMECMP(0), 0);
	CHECK(csr_read(mip) & (1UL << IRQ_MTI));
	mmio_w64(CLINT_MTIMECMP(0), ~0UL);
	CHECK(!(csr_read(mip) & (1UL << IRQ_MTI)));
	csr_write(mie, 0);
}

static void ipi(void)
{
	if (rt_nharts() < 2) {
		printf("FAIL irq needs 2 harts for the IPI\n");
		check_failures++;
		return;
	}
	uint64_t t0 = mtime();
	while (!hart1_ready && mtime() - t0 < TIMEOUT)
		;
	CHECK(hart1_ready);
	csr_write(mie, 1UL << IRQ_MSI);
	csr_set(mstatus, MSTATUS_MIE);
	for (unsigned int i = 1; i <= 3; i++) {
		mmio_w32(CLINT_MSIP(1), 1);
		CHECK(wait_for(&msi[0], i));
		CHECK_EQ(msi[1], i);
	}
	csr_clear(mstatus, MSTATUS_MIE);
	csr_write(mie, 0);
	CHECK(!(csr_read(mip) & (1UL << IRQ_MSI)));
}

static uint64_t s_timer(uint64_t a)
{
	uint64_t now;
	__asm__ volatile("rdtime %0" : "=r"(now));
	csr_write(stimecmp, now + TIMEBASE_HZ / 1000);
	csr_set(sie, 1UL << IRQ_STI);
	csr_set(sstatus, MSTATUS_SIE);
	uint64_t t0 = now;
	while (!sti) {
		__asm__ volatile("rdtime %0" : "=r"(now));
		if (now - t0 > TIMEOUT)
			break;
	}
	csr_clear(sstatus, MSTATUS_SIE);
	csr_clear(sie, 1UL << IRQ_STI);
	return sti;
}

static uint64_t s_soft(uint64_t a)
{
	csr_set(sie, 1UL << IRQ_SSI);
	csr_set(sstatus, MSTATUS_SIE);         /* pending already: taken here */
	__asm__ volatile("nop");
	csr_clear(sstatus, MSTATUS_SIE);
	csr_clear(sie, 1UL << IRQ_SSI);
	return ssi;
}

static void supervisor(void)
{
	csr_write(mcounteren, 7);
	/* Sstc: menvcfg.STCE (bit 63) */
	trap_expect();
	csr_set(menvcfg, 1UL << 63);
	uint64_t env = csr_read(menvcfg);
	uint64_t c = trap_end();
	if (c != TRAP_NONE || !(env >> 63)) {
		printf("skip: no Sstc (menvcfg.STCE %s)\n", c != TRAP_NONE ? "traps" : "reads 0");
	} else {
		printf("Sstc: menvcfg.STCE set\n");
		csr_write(mideleg, 1UL << IRQ_STI);
		CHECK_EQ(run_lower(PRV_S, s_timer, 0), 1);
		CHECK(!(csr_read(mip) & (1UL << IRQ_STI)));
		csr_write(mideleg, 0);
	}

	/* SSIP set by M, taken in S through mideleg */
	csr_write(mideleg, 1UL << IRQ_SSI);
	csr_set(mip, 1UL << IRQ_SSI);
	CHECK(csr_read(sip) & (1UL << IRQ_SSI));
	CHECK_EQ(run_lower(PRV_S, s_soft, 0), 1);
	CHECK(!(csr_read(mip) & (1UL << IRQ_SSI)));
	csr_write(mideleg, 0);
}

int main(void)
{
	m_trap_hook = m_hook;
	s_trap_hook = s_hook;
	timer();
	ipi();
	supervisor();
	return 0;
}
