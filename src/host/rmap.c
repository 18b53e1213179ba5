/* SPDX-License-Identifier: MIT */
/*
 * rmap.c - reverse map: from a frame to every (mm, address) mapping it.
 *
 * Each mapped frame keeps a singly linked list of rmap_items, one per PTE
 * that maps it. Linux reaches anonymous mappings through anon_vma chains and
 * KSM pages through stable-tree rmap_items; an explicit list serves both
 * cases (fork, KSM merges across address spaces) with one mechanism, at the
 * cost of one small allocation per extra mapping.
 *
 * Invariants:
 *  1. page->_mapcount == length of page->rmap, at every lock release.
 *  2. An item (mm, addr) exists iff mm's PTE for addr maps this page.
 *     Both change together, under mm->page_table_lock.
 *  3. The list is guarded by the page's rmap lock (hashed by pfn). It nests
 *     inside page_table_lock. A walker that must visit the PTEs copies the
 *     list under the rmap lock, takes an mm reference per entry (the item's
 *     existence keeps mm alive until then), drops the rmap lock, then takes
 *     each mm's page_table_lock and re-checks the PTE.
 */
#include <stdlib.h>
#include "internal.h"
#include "tandem/mmu_notifier.h"

spinlock_t *page_rmap_lock(struct page *page)
{
	return &page->host->rmap_locks[page_to_pfn(page) % RMAP_LOCKS];
}

/*
 * Called with mm->page_table_lock held; the caller holds the mapping's
 * page reference. Returns 0, or -ENOMEM with nothing changed: callers add
 * the rmap item before they set the PTE (invariant 2), so that a failure
 * here leaves the PTE as it was.
 */
int page_add_anon_rmap(struct page *page, struct mm *mm, hva_t addr)
{
	struct rmap_item *item;
	spinlock_t *lock = page_rmap_lock(page);

	lockdep_assert_held(&mm->page_table_lock);
	/* Our locks sleep (lock.h): allocating under page_table_lock is
	 * allowed, and cannot recurse into reclaim. */
	item = fault_malloc(FAULT_SITE_RMAP, sizeof(*item));
	if (!item)
		return -ENOMEM;
	item->mm = mm;
	item->addr = addr;
	spin_lock(lock);
	item->next = page->rmap;
	page->rmap = item;
	atomic_fetch_add_explicit(&page->_mapcount, 1, memory_order_relaxed);
	spin_unlock(lock);
	SetPageFlag(page, PG_anon);
	return 0;
}

/* Called with mm->page_table_lock held. The mapping's reference is the
 * caller's to drop. */
void page_remove_rmap(struct page *page, struct mm *mm, hva_t addr)
{
	spinlock_t *lock = page_rmap_lock(page);
	struct rmap_item **pp, *found = NULL;

	lockdep_assert_held(&mm->page_table_lock);
	spin_lock(lock);
	for (pp = &page->rmap; *pp; pp = &(*pp)->next) {
		if ((*pp)->mm == mm && (*pp)->addr == addr) {
			found = *pp;
			*pp = found->next;
			break;
		}
	}
	BUG_ON(!found); /* unmapping a mapping the rmap never saw */
	int old = atomic_fetch_sub_explicit(&page->_mapcount, 1, memory_order_relaxed);
	BUG_ON(old <= 0);
	spin_unlock(lock);
	free(found);
}

bool page_rmap_contains(struct page *page, struct mm *mm, hva_t addr)
{
	spinlock_t *lock = page_rmap_lock(page);
	bool found = false;

	spin_lock(lock);
	for (struct rmap_item *it = page->rmap; it; it = it->next)
		if (it->mm == mm && it->addr == addr)
			found = true;
	spin_unlock(lock);
	return found;
}

int page_rmap_count(struct page *page)
{
	spinlock_t *lock = page_rmap_lock(page);
	int n = 0;

	spin_lock(lock);
	for (struct rmap_item *it = page->rmap; it; it = it->next)
		n++;
	spin_unlock(lock);
	return n;
}

/*
 * Visit every (mm, address) mapping page. Called with no lock held; fn runs
 * with none held either and must take the mm's page_table_lock and re-check
 * that the PTE still maps page (it may have changed since the snapshot).
 * fn returns false to stop early. Returns the number of mappings visited.
 *
 * The list is copied under the rmap lock with an mm reference per entry:
 * while an item exists its mm cannot be freed (exit removes every item
 * before the last mmdrop), so mmgrab under the lock is safe.
 */
int rmap_walk(struct page *page, rmap_one_fn fn, void *arg)
{
	spinlock_t *lock = page_rmap_lock(page);
	struct rmap_item stack[8], *copy = stack;
	int n = 0, cap = ARRAY_SIZE(stack), visited = 0;

	spin_lock(lock);
	for (struct rmap_item *it = page->rmap; it; it = it->next)
		n++;
	if (n > cap) {
		spin_unlock(lock);
		copy = malloc((size_t)n * 2 * sizeof(*copy));
		BUG_ON(!copy);
		cap = n * 2;
		spin_lock(lock);
	}
	n = 0;
	for (struct rmap_item *it = page->rmap; it && n < cap; it = it->next) {
		copy[n].mm = it->mm;
		copy[n].addr = it->addr;
		mmgrab(it->mm);
		n++;
	}
	spin_unlock(lock);

	int i;
	for (i = 0; i < n; i++) {
		visited++;
		if (!fn(page, copy[i].mm, copy[i].addr, arg))
			break;
	}
	for (int j = 0; j < n; j++)
		mmdrop(copy[j].mm);
	if (copy != stack)
		free(copy);
	return visited;
}

/* The PTE for addr if it maps page; under page_table_lock. */
pte_t *page_pte_locked(struct page *page, struct mm *mm, hva_t addr)
{
	pte_t *ptep = pte_offset(mm, addr);

	lockdep_assert_held(&mm->page_table_lock);
	if (!ptep)
		return NULL;
	pte_t pte = READ_ONCE(*ptep);
	if (!pte_present(pte) || pte_special(pte) || pte_pfn(pte) != page_to_pfn(page))
		return NULL;
	return ptep;
}

struct referenced_arg {
	int referenced;
	int secondary;                  /* of which through secondary MMUs */
	bool flush;                     /* clear_flush_young (reclaim) or
					 * clear_young (idle tracking) */
};

static bool referenced_one(struct page *page, struct mm *mm, hva_t addr, void *arg)
{
	struct referenced_arg *ra = arg;
	pte_t *ptep;

	spin_lock(&mm->page_table_lock);
	ptep = page_pte_locked(page, mm, addr);
	if (ptep && pte_young(READ_ONCE(*ptep))) {
		set_pte(mm, addr, ptep, READ_ONCE(*ptep) & ~_PAGE_ACCESSED);
		ra->referenced++;
	}
	spin_unlock(&mm->page_table_lock);
	if (!ptep)
		return true;
	/* A page only a guest touches is hot too: ask the secondary MMUs. */
	if (ra->flush ? mmu_notifier_clear_flush_young(mm, addr, addr + PAGE_SIZE)
		      : mmu_notifier_clear_young(mm, addr, addr + PAGE_SIZE)) {
		ra->referenced++;
		ra->secondary++;
	}
	return true;
}

/*
 * How many mappings of page were used since the last call, host PTEs and
 * secondary MMUs alike; clears what it counts. flush: ask the secondary
 * MMUs for clear_flush_young (exact; reclaim) rather than clear_young
 * (cheaper, may miss accesses through a secondary TLB; idle tracking).
 */
int page_referenced_ex(struct page *page, bool flush, int *secondary)
{
	struct referenced_arg ra = { .flush = flush };

	rmap_walk(page, referenced_one, &ra);
	/* The young bits just consumed were also idle tracking's evidence
	 * (idle.c): a used page must not read idle because reclaim looked
	 * first. Linux clears it in folio_referenced_one for the same reason. */
	if (ra.referenced)
		ClearPageFlag(page, PG_idle);
	if (secondary)
		*secondary = ra.secondary;
	return ra.referenced;
}

int page_referenced(struct page *page, bool flush)
{
	return page_referenced_ex(page, flush, NULL);
}
