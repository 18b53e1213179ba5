/*
 * guests/kernel: steal time through SBI's steal-time accounting extension
 * (STA, SBI 2.0), read the way Linux's paravirt steal clock does
 * (arch/riscv/kernel/paravirt.c), and checked.
 *
 * At boot each hart probes STA and, if the SBI implementation has it (on
 * tandem: the VMM, beside OpenSBI), gives it a 64-byte area of its own,
 * sta_area[hart], by physical address (the kernel's mapping is one to
 * one). The hypervisor writes the area while the hart is not running guest
 * code: sequence odd, steal (ns), sequence even.
 *
 * At every timer tick the hart reads its area: sequence, read fence,
 * steal, read fence, sequence again; a pair that differs is torn (the
 * writer came in between) and is read again. Checked:
 *   1. a consistent read (both sequences equal) has an even sequence --
 *      an odd one means a write was seen half done;
 *   2. steal never goes back (it is a sum of times);
 *   3. the sequence never goes back either;
 *   4. a hart that found STA also got its area set (set_shmem succeeded);
 *   5. the area keeps being written: between two ticks the hart ran guest
 *      code again, and a hypervisor that writes at every guest entry (KVM
 *      at every vCPU load, tandem at every entry) moved the sequence. One
 *      that stays put for STEAL_STALL_TICKS ticks in a row is being written
 *      somewhere else -- a frame the host took back (a missed
 *      invalidation of its cached mapping: tandem's --break=gpc-request).
 * A violation is printed as "kernel: FAILURE: steal: ..." and counted.
 */
#include "kernel.h"

#define SBI_EXT_BASE            0x10
#define SBI_EXT_BASE_PROBE_EXT  3
#define SBI_EXT_STA             0x535441
#define SBI_STA_SET_SHMEM       0
#define STEAL_MAX_TRIES         1000
#define STEAL_STALL_TICKS       40

struct sbi_sta_struct {
	uint32_t sequence;
	uint32_t flags;
	uint64_t steal;
	uint8_t preempted;
	uint8_t pad[47];
};
_Static_assert(sizeof(struct sbi_sta_struct) == 64, "SBI STA shared memory");

static struct sbi_sta_struct sta_area[MAX_HARTS] __attribute__((aligned(64)));
int sta_harts;                  /* harts whose area is set */

/* On each hart at boot, on that hart. */
void steal_init(void)
{
	struct cpu *c = mycpu();
	struct sbiret r = sbi_call(SBI_EXT_BASE, SBI_EXT_BASE_PROBE_EXT, SBI_EXT_STA, 0, 0, 0, 0);
	uint64_t pa = (uint64_t)&sta_area[c->hartid];

	c->sta = false;
	if (r.error || r.value == 0)
		return;
	r = sbi_call(SBI_EXT_STA, SBI_STA_SET_SHMEM, (long)pa, 0, 0, 0, 0);
	if (r.error) {
		kprintf("kernel: FAILURE: steal: hart %lu: STA probed, but set_shmem(%p) = %ld\n",
			c->hartid, (void *)pa, r.error);
		COUNT(failures, 1);
		return;
	}
	c->sta = true;
	c->steal_seq = 0;
	c->steal_last = 0;
	c->steal_stalls = 0;
	__atomic_fetch_add(&sta_harts, 1, __ATOMIC_RELAXED);
}

/* From the timer tick, on the hart whose area it is. */
void steal_check(void)
{
	struct cpu *c = mycpu();
	volatile struct sbi_sta_struct *st = &sta_area[c->hartid];
	uint32_t seq, seq2;
	uint64_t steal;
	int tries = 0;

	if (!c->sta)
		return;
	for (;;) {
		seq = st->sequence;
		__asm__ volatile("fence r, r" ::: "memory");
		steal = st->steal;
		__asm__ volatile("fence r, r" ::: "memory");
		seq2 = st->sequence;
		if (seq == seq2)
			break;
		COUNT(steal_retries, 1);
		if (++tries == STEAL_MAX_TRIES) {
			kprintf("kernel: FAILURE: steal: hart %lu: no consistent read in %d tries "
				"(sequence %u, then %u)\n", c->hartid, tries, seq, seq2);
			COUNT(failures, 1);
			c->sta = false;
			return;
		}
	}
	COUNT(steal_reads, 1);
	if (seq & 1) {
		kprintf("kernel: FAILURE: steal: hart %lu: odd sequence %u read twice (steal %lu)\n",
			c->hartid, seq, steal);
		COUNT(failures, 1);
		c->sta = false;         /* one report is enough */
		return;
	}
	if (steal < c->steal_last || seq < c->steal_seq) {
		kprintf("kernel: FAILURE: steal: hart %lu: went back: steal %lu -> %lu, "
			"sequence %u -> %u\n", c->hartid, c->steal_last, steal, c->steal_seq, seq);
		COUNT(failures, 1);
		c->sta = false;
		return;
	}
	if (seq == c->steal_seq && ++c->steal_stalls == STEAL_STALL_TICKS) {
		kprintf("kernel: FAILURE: steal: hart %lu: area not written for %d ticks "
			"(sequence %u, steal %lu)\n", c->hartid, STEAL_STALL_TICKS, seq, steal);
		COUNT(failures, 1);
		c->sta = false;
		return;
	}
	if (seq != c->steal_seq)
		c->steal_stalls = 0;
	c->steal_last = steal;
	c->steal_seq = seq;
}

/* Steal summed over the harts, as last read (for the final report). */
uint64_t steal_total_ns(void)
{
	uint64_t sum = 0;

	for (int i = 0; i < MAX_HARTS; i++)
		sum += cpus[i].steal_last;
	return sum;
}
