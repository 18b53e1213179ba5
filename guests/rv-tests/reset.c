/* reset - the SiFive test device's reset (0x7777): the machine starts
 * over as from power-on, its images loaded again, the rest of RAM kept.
 *
 * Boot 1 (no magic in the scratch RAM below, outside the ELF image):
 * changes a .data and a .bss word, sets mstatus.MIE and MPRV (MPP = M),
 * programs the PLIC, the UART's scratch register and hart 0's msip,
 * waits for every hart to count itself, then resets. Boot 2 (magic set):
 * every hart counted itself a second time and entered at _start with
 * a0 = hart id, a1 = the same DTB, in M mode with MIE = MPRV = 0; the ELF's
 * .data holds its initial value again, .bss is zero, and the devices are
 * back to their reset values. */
#include "rt.h"

#define SCRATCH      0x80800000UL
#define MAGIC_ADDR   (SCRATCH + 0x00)
#define BOOTS_ADDR   (SCRATCH + 0x08)       /* hart 0's boots */
#define DTB_ADDR     (SCRATCH + 0x10)       /* the DTB of boot 1 */
#define HART_BOOTS(h) (SCRATCH + 0x40 + 8UL * (h))
#define HART_A0(h)   (SCRATCH + 0x80 + 8UL * (h))
#define MAGIC        0x7465736572UL         /* "reset" */
#define DATA_INIT    0x0123456789abcdefUL

#define PLIC_BASE      0x0c000000UL
#define PLIC_PRIO(s)   (PLIC_BASE + 4UL * (s))
#define PLIC_ENABLE(c) (PLIC_BASE + 0x2000UL + 0x80UL * (c))
#define UART_SCR       (UART0_BASE + 7)
#define UART_IRQ       10

#define R64(a) (*(volatile uint64_t *)(a))

extern char _start[];
static volatile uint64_t data_word = DATA_INIT;
static volatile uint64_t bss_word;

void secondary_main(unsigned long hart)
{
	R64(HART_A0(hart)) = hart;
	__atomic_fetch_add((uint64_t *)HART_BOOTS(hart), 1, __ATOMIC_SEQ_CST);
	park();
}

/* Wait until every other hart has counted boots boots. */
static void wait_harts(unsigned int n, uint64_t boots)
{
	uint64_t t0 = mtime();

	for (unsigned int h = 1; h < n; h++)
		while (__atomic_load_n((uint64_t *)HART_BOOTS(h), __ATOMIC_SEQ_CST) != boots)
			if (mtime() - t0 > 20 * TIMEBASE_HZ) {
				printf("FAIL hart %u counted %lu boots, not %lu\n", h,
				       R64(HART_BOOTS(h)), boots);
				check_failures++;
				return;
			}
}

static void first_boot(unsigned int n)
{
	R64(MAGIC_ADDR) = MAGIC;
	R64(BOOTS_ADDR) = 1;
	R64(DTB_ADDR) = rt_dtb;
	wait_harts(n, 1);
	data_word = ~DATA_INIT;
	bss_word = 1;
	mmio_w32(PLIC_PRIO(UART_IRQ), 3);
	mmio_w32(PLIC_ENABLE(0), 1u << UART_IRQ);
	*(volatile uint8_t *)UART_SCR = 0x5a;
	mmio_w32(CLINT_MSIP(0), 1);             /* mie = 0: never taken */
	csr_set(mstatus, MSTATUS_MPP_M);
	csr_set(mstatus, MSTATUS_MPRV | MSTATUS_MIE);
	printf("resetting\n");
	__asm__ volatile("fence rw, rw" ::: "memory");
	mmio_w32(TESTDEV_BASE, 0x7777);
	for (uint64_t t0 = mtime(); mtime() - t0 < 5 * TIMEBASE_HZ;)
		;
	printf("FAIL the reset did not happen\n");
	exit_fail(2);
}

int main(void)
{
	unsigned int n = rt_nharts();
	uint64_t status = csr_read(mstatus);   /* M mode, or this traps */

	if (R64(MAGIC_ADDR) != MAGIC) {
		CHECK_EQ(R64(BOOTS_ADDR), 0);
		first_boot(n);
	}
	R64(BOOTS_ADDR)++;
	printf("after the reset: boot %lu, %u hart(s)\n", R64(BOOTS_ADDR), n);
	CHECK_EQ(R64(BOOTS_ADDR), 2);
	wait_harts(n, 2);

	/* Entered as at power-on. */
	for (unsigned int h = 0; h < n; h++) {
		CHECK_EQ(rt_entry_pc[h], (uint64_t)_start);
		CHECK_EQ(rt_entry_a1[h], R64(DTB_ADDR));
		if (h)
			CHECK_EQ(R64(HART_A0(h)), h);
	}
	CHECK_EQ(hartid(), 0);
	CHECK_EQ(csr_read(mhartid), 0);
	CHECK_EQ(rt_dtb, R64(DTB_ADDR));
	CHECK_EQ(status & (MSTATUS_MIE | MSTATUS_MPRV), 0);

	/* The image again; the RAM outside it kept (the magic). */
	CHECK_EQ(data_word, DATA_INIT);
	CHECK_EQ(bss_word, 0);

	/* The devices reset. */
	CHECK_EQ(mmio_r32(PLIC_PRIO(UART_IRQ)), 0);
	CHECK_EQ(mmio_r32(PLIC_ENABLE(0)), 0);
	CHECK_EQ(*(volatile uint8_t *)UART_SCR, 0);
	CHECK_EQ(mmio_r32(CLINT_MSIP(0)), 0);
	CHECK_EQ(csr_read(mip) & (1UL << IRQ_MSI), 0);
	return 0;
}
