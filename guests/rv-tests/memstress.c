/*
 * memstress - the guest half of tests/stress/stress_riscv.c (not run by
 * scripts/rv-tests.sh: it never ends by itself). Every hart owns a slice
 * of a region of RAM and, pass after pass, checks that each page still
 * holds what it wrote in the previous pass (a stamp of hart, page and
 * version in every 64th word) and writes the next version. The host
 * swaps, forks and reclaims this memory meanwhile; a lost write, a stale
 * read or another page's data shows up as a wrong stamp. Results go to a
 * mailbox in RAM that the host reads.
 */
#include "rt.h"

#define REGION_BASE 0x80400000UL
#define REGION_END  0x83800000UL        /* with 64 MiB of RAM: below the DTB */
#define MBOX        0x80300000UL
#define MBOX_MAGIC  0x4d454d5354524553UL  /* "MEMSTRES" */
#define STRIDE      64                  /* words between two stamps */

struct mbox {
	uint64_t magic;
	uint64_t nharts;
	uint64_t passes[MAX_HARTS];
	uint64_t errors[MAX_HARTS];
	uint64_t bad_addr, bad_expected, bad_got;
};

static uint64_t stamp(unsigned long h, uint64_t page, uint64_t version)
{
	return (0x5aUL << 56) | ((uint64_t)h << 48) | (page << 20) | (version & 0xfffff);
}

static void stress(unsigned long h, unsigned int n)
{
	volatile struct mbox *mb = (volatile struct mbox *)MBOX;
	uint64_t pages = (REGION_END - REGION_BASE) / 4096 / n;
	uint64_t first = h * pages;

	for (uint64_t version = 1;; version++) {
		for (uint64_t p = first; p < first + pages; p++) {
			volatile uint64_t *w = (volatile uint64_t *)(REGION_BASE + p * 4096);
			uint64_t want = version == 1 ? 0 : stamp(h, p, version - 1);

			for (unsigned int i = 0; i < 512; i += STRIDE) {
				uint64_t got = w[i];

				if (got != want) {
					if (__atomic_fetch_add(&mb->errors[h], 1, __ATOMIC_SEQ_CST) == 0) {
						mb->bad_addr = (uint64_t)&w[i];
						mb->bad_expected = want;
						mb->bad_got = got;
					}
				}
				w[i] = stamp(h, p, version);
			}
		}
		mb->passes[h] = version;
	}
}

void secondary_main(unsigned long hart)
{
	volatile struct mbox *mb = (volatile struct mbox *)MBOX;

	while (mb->magic != MBOX_MAGIC)
		;
	stress(hart, (unsigned int)mb->nharts);
}

int main(void)
{
	volatile struct mbox *mb = (volatile struct mbox *)MBOX;
	unsigned int n = rt_nharts();

	for (unsigned int i = 0; i < MAX_HARTS; i++)
		mb->passes[i] = mb->errors[i] = 0;
	mb->nharts = n;
	__atomic_store_n(&mb->magic, MBOX_MAGIC, __ATOMIC_SEQ_CST);
	printf("memstress: %u harts over [0x%lx, 0x%lx)\n", n, REGION_BASE, REGION_END);
	stress(0, n);
	return 0;
}
