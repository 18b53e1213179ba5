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

spinlock_t *page_rmap_lock(struct page *page)
{
	return &page->host->rmap_locks[page_to_pfn(page) % RMAP_LOCKS];
}

/* Called with mm->page_table_lock held; the caller holds the mapping's
 * page reference. */
void page_add_anon_rmap(struct page *page, struct mm *mm, hva_t addr)
{
	struct rmap_item *item = malloc(sizeof(*item));
	spinlock_t *lock = page_rmap_lock(page);

	lockdep_assert_held(&mm->page_table_lock);
	BUG_ON(!item); /* a few bytes: treat like the kernel's GFP_NOFAIL */
	item->mm = mm;
	item->addr = addr;
	spin_lock(lock);
	item->next = page->rmap;
	page->rmap = item;
	atomic_fetch_add_explicit(&page->_mapcount, 1, memory_order_relaxed);
	spin_unlock(lock);
	SetPageFlag(page, PG_anon);
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
