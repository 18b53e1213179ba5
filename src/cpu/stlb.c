/* SPDX-License-Identifier: MIT */
/*
 * stlb.c - the soft TLB's slow side: fill and flush. The hit path is
 * inline in cpu.h (and cpu_rseq.h); everything here runs on the vCPU's own
 * thread, outside guest mode, so no entry changes under a running access.
 */
#include <string.h>
#include "tandem/cpu.h"

/*
 * Clear the tables of the mmu_idx bits in mask. Clearing 4 x 8 KiB would be
 * most of the cost of a guest's full TLB flush, and a context switch is one:
 * only the entries filled since the table's last flush are cleared (all of
 * it if there were more than STLB_LOG).
 */
void stlb_flush_mask(struct vcpu *v, unsigned int mask)
{
	for (unsigned int m = 0; m < STLB_NB_MODES; m++) {
		unsigned int n = v->stlb_nlog[m];

		if (!(mask & (1u << m)) || !n)
			continue;
		if (n > STLB_LOG) {
			memset(v->stlb[m], 0xff, sizeof(v->stlb[m]));
		} else {
			for (unsigned int i = 0; i < n; i++) {
				struct stlb_entry *e = &v->stlb[m][v->stlb_log[m][i]];

				e->addr_read = e->addr_write = e->addr_code = STLB_INVALID;
			}
		}
		v->stlb_nlog[m] = 0;
	}
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
	stlb_note_fill(v, v->mmu_idx, (unsigned int)(stlb_offset(gva) >> STLB_ENTRY_SHIFT));
	v->stat.stlb_fills++;
}
