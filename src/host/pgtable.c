/* SPDX-License-Identifier: MIT */
/*
 * pgtable.c - the 4-level host page table: walk, allocate, change, free.
 *
 * Tables are frames of the RAM arena (PG_pgtable, refcount 1), so they count
 * against host RAM as they do in Linux. The pgd is allocated with the mm and
 * freed with it; lower tables are allocated on demand by pte_alloc() and
 * freed by free_pgtables() once no VMA covers their span.
 *
 * Lock rules:
 *  - every read or change of an entry below the pgd happens with
 *    mm->page_table_lock held (entries are still accessed with READ_ONCE /
 *    WRITE_ONCE, for the lockless walkers later layers may add);
 *  - tables are freed only with mmap_lock held for write as well, so a
 *    fault or GUP (which hold mmap_lock for read) never sees a table vanish.
 *
 * Invariant (checked in set_pte): a present leaf is never replaced by a
 * present leaf of a different frame. The frame must first be cleared under
 * an invalidation, or a secondary MMU could keep using the old frame — in
 * KVM's words, that "would indicate a missing MMU notifier".
 */
#include <string.h>
#include "internal.h"

/*
 * Allocate a zeroed page-table frame. gfp: GFP_NORECLAIM when called
 * under page_table_lock (walks that allocate; faults and fork prepare
 * their tables beforehand with pte_alloc_prepare, where reclaim is
 * allowed), 0 elsewhere (a new mm's pgd).
 */
pte_t *pgtable_alloc(struct mm *mm, pfn_t *pfn, unsigned int gfp)
{
	struct page *page = alloc_page(mm->host, GFP_ZERO | GFP_PGTABLE | gfp);

	if (!page)
		return NULL;
	SetPageFlag(page, PG_pgtable);
	atomic_fetch_add(&mm->host->nr_pgtables, 1);
	*pfn = page_to_pfn(page);
	return pfn_table(mm->host, *pfn);
}

static void pgtable_free(struct mm *mm, pfn_t pfn)
{
	struct page *page = pfn_to_page(mm->host, pfn);

	BUG_ON(!PageFlag(page, PG_pgtable));
	ClearPageFlag(page, PG_pgtable);
	atomic_fetch_sub(&mm->host->nr_pgtables, 1);
	put_page(page);
}

/* Descend from the pgd to the PTE table covering addr. */
static pte_t *walk(struct mm *mm, hva_t addr, bool alloc)
{
	pte_t *table = mm->pgd;

	lockdep_assert_held(&mm->page_table_lock);
	DEBUG_BUG_ON(addr >= TASK_SIZE);
	for (int level = PT_LEVELS; level > 1; level--) {
		pte_t *entry = &table[LEVEL_INDEX(addr, level)];
		pte_t e = READ_ONCE(*entry);

		if (!pte_present(e)) {
			pfn_t pfn;

			if (!alloc)
				return NULL;
			if (!pgtable_alloc(mm, &pfn, GFP_NORECLAIM))
				return NULL;
			atomic_fetch_add(&mm->nr_pgtables, 1);
			e = pfn_pte(pfn, _PAGE_TABLE);
			WRITE_ONCE(*entry, e);
		}
		table = pfn_table(mm->host, pte_pfn(e));
	}
	return &table[LEVEL_INDEX(addr, 1)];
}

/*
 * Make sure the tables down to addr's PTE exist, allocating outside
 * page_table_lock so that the allocation may reclaim (which takes other
 * mms' page_table_locks). Called with mmap_lock held (tables are freed
 * only under it for write, so what is installed here stays). Returns 0 or
 * -ENOMEM; after -ENOMEM the upper levels it did install stay, empty, and
 * are freed with the VMA like any other table (as Linux's __pte_alloc).
 */
int pte_alloc_prepare(struct mm *mm, hva_t addr)
{
	lockdep_assert_held(&mm->mmap_lock);
	for (;;) {
		pte_t *table = mm->pgd;
		int level;

		spin_lock(&mm->page_table_lock);
		for (level = PT_LEVELS; level > 1; level--) {
			pte_t e = READ_ONCE(table[LEVEL_INDEX(addr, level)]);

			if (!pte_present(e))
				break;
			table = pfn_table(mm->host, pte_pfn(e));
		}
		spin_unlock(&mm->page_table_lock);
		if (level == 1)
			return 0;

		struct page *page = alloc_page(mm->host, GFP_ZERO | GFP_PGTABLE);

		if (!page)
			return -ENOMEM;
		SetPageFlag(page, PG_pgtable);
		spin_lock(&mm->page_table_lock);
		pte_t *entry = &table[LEVEL_INDEX(addr, level)];

		if (!pte_present(READ_ONCE(*entry))) {
			atomic_fetch_add(&mm->host->nr_pgtables, 1);
			atomic_fetch_add(&mm->nr_pgtables, 1);
			WRITE_ONCE(*entry, pfn_pte(page_to_pfn(page), _PAGE_TABLE));
			page = NULL;
		}
		spin_unlock(&mm->page_table_lock);
		if (page) {     /* another fault installed it first */
			ClearPageFlag(page, PG_pgtable);
			put_page(page);
		}
	}
}

/* Called with mm->page_table_lock held. */
pte_t *pte_offset(struct mm *mm, hva_t addr)
{
	return walk(mm, addr, false);
}

/* Called with mm->page_table_lock held. NULL when out of frames. */
pte_t *pte_alloc(struct mm *mm, hva_t addr)
{
	return walk(mm, addr, true);
}

/*
 * The one function through which every leaf PTE changes. Called with
 * mm->page_table_lock held. Rmap, refcount and RSS bookkeeping stay with the
 * caller, which knows why the PTE changes.
 */
void set_pte(struct mm *mm, hva_t addr, pte_t *ptep, pte_t pte)
{
	pte_t old = READ_ONCE(*ptep);

	lockdep_assert_held(&mm->page_table_lock);
	BUG_ON(pte_present(old) && pte_present(pte) && pte_pfn(old) != pte_pfn(pte));
	call_pte_hook(mm, addr, old, pte);
	WRITE_ONCE(*ptep, pte);
}

/*
 * Visit every non-none leaf PTE in [start, end), skipping absent tables.
 * Called with mm->page_table_lock held; fn may change the PTE (via set_pte).
 */
int walk_pte_range(struct mm *mm, hva_t start, hva_t end, pte_walk_fn fn,
		   void *arg)
{
	hva_t addr = start;

	lockdep_assert_held(&mm->page_table_lock);
	while (addr < end) {
		pte_t *table = mm->pgd;
		int level;

		/* Find the lowest table present for addr; skip a hole at
		 * the level where it appears. */
		for (level = PT_LEVELS; level > 1; level--) {
			pte_t e = READ_ONCE(table[LEVEL_INDEX(addr, level)]);

			if (!pte_present(e))
				break;
			table = pfn_table(mm->host, pte_pfn(e));
		}
		if (level > 1) {
			hva_t next = (addr & ~(LEVEL_SIZE(level) - 1)) + LEVEL_SIZE(level);

			addr = next < addr ? end : next; /* overflow: done */
			continue;
		}
		hva_t table_end = (addr & ~(LEVEL_SIZE(2) - 1)) + LEVEL_SIZE(2);
		hva_t stop = MIN(end, table_end);

		for (; addr < stop; addr += PAGE_SIZE) {
			pte_t *ptep = &table[LEVEL_INDEX(addr, 1)];

			if (pte_none(READ_ONCE(*ptep)))
				continue;
			int r = fn(mm, addr, ptep, arg);
			if (r)
				return r;
		}
	}
	return 0;
}

static bool table_empty(const pte_t *table)
{
	for (int i = 0; i < PTRS_PER_TABLE; i++)
		if (!pte_none(READ_ONCE(table[i])))
			return false;
	return true;
}

/*
 * Free the tables below `table` (at `level`, entries spanning
 * LEVEL_SIZE(level)) that serve only [floor, ceiling) and intersect
 * [start, end).
 */
static void free_level(struct mm *mm, pte_t *table, int level, hva_t base,
		       hva_t start, hva_t end, hva_t floor, hva_t ceiling)
{
	uint64_t entry_size = LEVEL_SIZE(level);

	for (int i = 0; i < PTRS_PER_TABLE; i++) {
		hva_t cs = base + (hva_t)i * entry_size;
		hva_t ce = cs + entry_size;
		pte_t e = READ_ONCE(table[i]);

		if (ce <= start || cs >= end || !pte_present(e))
			continue;
		pte_t *child = pfn_table(mm->host, pte_pfn(e));

		if (level - 1 > 1)
			free_level(mm, child, level - 1, cs, start, end, floor,
				   ceiling);
		if (cs < floor || ce > ceiling)
			continue;       /* a VMA outside the hole still uses it */
		/* No VMA covers [cs, ce): every leaf below must be gone. */
		BUG_ON(!table_empty(child));
		WRITE_ONCE(table[i], 0);
		pgtable_free(mm, pte_pfn(e));
		atomic_fetch_sub(&mm->nr_pgtables, 1);
	}
}

/*
 * After [start, end) was unmapped: free page tables that no VMA needs any
 * more. [floor, ceiling) is the hole around it (previous VMA's end, next
 * VMA's start). Called with mmap_lock held for write and page_table_lock.
 */
void free_pgtables(struct mm *mm, hva_t start, hva_t end, hva_t floor,
		   hva_t ceiling)
{
	lockdep_assert_held_write(&mm->mmap_lock);
	lockdep_assert_held(&mm->page_table_lock);
	free_level(mm, mm->pgd, PT_LEVELS, 0, start, end, floor, ceiling);
}
