/* SPDX-License-Identifier: MIT */
/*
 * spte.h - the encoding of the GPA page tables' entries.
 *
 * A leaf spte maps one guest frame to one host frame:
 *
 *   bit  0     PRESENT
 *   bit  1     WRITABLE        the vCPU may write through it now
 *   bit  2     HOST_WRITABLE   the host PTE allowed writes at install
 *   bit  3     MMU_WRITABLE    the slot allows writes
 *   bit  5     ACCESSED        used since the last aging pass
 *   bit  6     DIRTY           written since install
 *   bit  9     GVA             a GVA table entry was built on this gfn (as
 *                              data or guest page table): a zap or a write
 *                              protection must reach the GVA tables (gva.h)
 *   bits 12-51 host pfn
 *
 * Invariants of a present leaf:
 *   1. WRITABLE implies HOST_WRITABLE, MMU_WRITABLE and DIRTY: a clean page
 *      is mapped read-only, and its first write goes through the lockless
 *      fast path (mmu.c), which sets WRITABLE and DIRTY together -- the
 *      write protection KVM uses where hardware has no dirty bit. So a
 *      write that hits a soft TLB never has to set a dirty bit, and a zap
 *      passes on exactly the pages guests wrote.
 *   2. HOST_WRITABLE | MMU_WRITABLE ("can unsync") says the fast path may
 *      make it writable without asking the host: never for a COW-shared,
 *      merged or read-only-slot page.
 *   3. ACCESSED: used (walked) since the last aging pass cleared it; a zap
 *      passes it on to the page, as DIRTY, so that reclaim hears of a use
 *      between its look and its unmap.
 *
 * An upper-level entry is 0 (no table) or the address of the child table
 * with TDP_TABLE_BIT set; it is set once and never cleared while the VM
 * lives.
 */
#ifndef TANDEM_KVM_SPTE_H
#define TANDEM_KVM_SPTE_H

#include <stdatomic.h>
#include "tandem/types.h"

typedef uint64_t spte_t;

#define SPTE_PRESENT       (1ULL << 0)
#define SPTE_WRITABLE      (1ULL << 1)
#define SPTE_HOST_WRITABLE (1ULL << 2)
#define SPTE_MMU_WRITABLE  (1ULL << 3)
#define SPTE_ACCESSED      (1ULL << 5)
#define SPTE_DIRTY         (1ULL << 6)
#define SPTE_GVA           (1ULL << 9)
#define SPTE_PFN_MASK      0x000ffffffffff000ULL

#define TDP_TABLE_BIT      (1ULL << 0)

/* Four levels of 512 entries: 36 bits of gfn (256 TiB of guest memory). */
#define TDP_LEVELS         4
#define TDP_ENTRIES        512
#define TDP_LEVEL_BITS     9
#define TDP_MAX_GFN        ((1ULL << (TDP_LEVELS * TDP_LEVEL_BITS)) - 1)

struct tdp_table {
	_Atomic spte_t e[TDP_ENTRIES];
};

static inline bool is_shadow_present(spte_t s) { return s & SPTE_PRESENT; }
static inline pfn_t spte_to_pfn(spte_t s) { return (s & SPTE_PFN_MASK) >> PAGE_SHIFT; }

static inline bool spte_can_unsync_write(spte_t s)
{
	return (s & (SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE)) ==
	       (SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE);
}

/* The child table of a present upper-level entry. */
static inline struct tdp_table *spte_to_child(spte_t s)
{
	return (struct tdp_table *)(uintptr_t)(s & ~TDP_TABLE_BIT);
}

static inline spte_t make_table_spte(struct tdp_table *child)
{
	return (spte_t)(uintptr_t)child | TDP_TABLE_BIT;
}

/*
 * The leaf for a frame: present, accessed (the fault that installs it is
 * an access), HOST_/MMU_WRITABLE as the host and the slot allow; WRITABLE
 * and DIRTY only for a write fault that may write (invariant 1).
 */
static inline spte_t make_leaf_spte(pfn_t pfn, bool write, bool host_writable,
				    bool mmu_writable)
{
	spte_t s = SPTE_PRESENT | SPTE_ACCESSED | ((spte_t)pfn << PAGE_SHIFT);

	if (host_writable)
		s |= SPTE_HOST_WRITABLE;
	if (mmu_writable)
		s |= SPTE_MMU_WRITABLE;
	if (write && host_writable && mmu_writable)
		s |= SPTE_WRITABLE | SPTE_DIRTY;
	return s;
}

#endif
