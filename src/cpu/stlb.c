/* SPDX-License-Identifier: MIT */
/*
 * stlb.c - the soft TLB's slow side: fill and flush. The hit path is
 * inline in cpu.h (and cpu_rseq.h); everything here runs on the vCPU's own
 * thread, outside guest mode, so no entry changes under a running access.
 */
#include <string.h>
#include "tandem/cpu.h"

void stlb_flush_mask(struct vcpu *v, unsigned int mask)
{
	unsigned int todo = v->stlb_dirty & mask;

	/* A full flush of 4 x 8 KiB is most of the cost of a guest's full
	 * TLB flush: only tables filled since their last flush are cleared. */
	while (todo) {
		unsigned int m = (unsigned int)__builtin_ctz(todo);

		memset(v->stlb[m], 0xff, sizeof(v->stlb[m]));
		todo &= todo - 1;
	}
	v->stlb_dirty &= ~mask;
	v->stat.stlb_flushes++;
}

void stlb_flush(struct vcpu *v)
{
	stlb_flush_mask(v, (1u << STLB_NB_MODES) - 1);
}

/*
 * Map the page of gva to host in the current mmu_idx's table, for the
 * accesses prot allows. STLB_PROT_WRITE only once the spte is dirty (the
 * fill follows a write that made it so), so that a write hit never needs
 * to set a dirty bit.
 */
void stlb_fill(struct vcpu *v, gva_t gva, void *host, unsigned int prot)
{
	struct stlb_entry *e = stlb_entry(v, gva);
	uint64_t page = gva & ~(uint64_t)(PAGE_SIZE - 1);

	e->addr_read = (prot & STLB_PROT_READ) ? page : STLB_INVALID;
	e->addr_write = (prot & STLB_PROT_WRITE) ? page : STLB_INVALID;
	e->addr_code = (prot & STLB_PROT_EXEC) ? page : STLB_INVALID;
	e->addend = (uintptr_t)host - (uintptr_t)page;
	v->stlb_dirty |= 1u << v->mmu_idx;
	v->stat.stlb_fills++;
}
