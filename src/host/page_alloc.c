/* SPDX-License-Identifier: MIT */
/*
 * page_alloc.c - the RAM arena, struct page, and the frame allocator.
 *
 * The arena is one anonymous mapping of the configured size, split into 4 KiB
 * frames; struct page i describes frame i (pfn i). Frames are split evenly
 * across nr_nodes NUMA nodes, each a zone with its own free list and lock.
 *
 * Invariants:
 *  1. A frame is free iff PG_buddy is set; then _refcount == 0,
 *     _mapcount == 0, rmap == NULL and it is on exactly one zone free list.
 *  2. host->nr_free == sum of zones' nr_free == number of PG_buddy frames.
 *  3. The zero page is PG_reserved: get_page/put_page ignore it and it is
 *     never freed; its contents stay zero.
 *  4. Debug builds fill a freed frame with POISON_FREE and check the fill is
 *     intact when it is allocated again, so a write through a stale
 *     translation (a missing invalidation) is caught at the next allocation.
 *
 * Watermarks: an allocation without GFP_ATOMIC fails once nr_free would
 * drop below wmark_min. (Reclaim, kswapd and the low/high marks are used by
 * the memory-pressure layer.)
 *
 * Fault injection (base/fault_inject.h): an allocation the test asked to
 * fail returns NULL at once, before reclaim or the OOM killer could hide
 * the failure, counted as PGALLOC_FAIL like a real one. Page-table frames
 * (GFP_PGTABLE) are their own site, FAULT_SITE_PGTABLE; every other frame
 * is FAULT_SITE_PAGE_ALLOC.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

#define POISON_FREE 0x6b

pfn_t page_to_pfn(const struct page *page)
{
	return (pfn_t)(page - page->host->pages);
}

struct page *pfn_to_page(struct host *host, pfn_t pfn)
{
	BUG_ON(pfn >= host->nr_pages);
	return &host->pages[pfn];
}

void *page_address(const struct page *page)
{
	return page->host->arena + (page_to_pfn(page) << PAGE_SHIFT);
}

struct host *page_host(const struct page *page)
{
	return page->host;
}

static void zone_free_locked(struct zone *zone, struct page *page)
{
	lockdep_assert_held(&zone->lock);
	SetPageFlag(page, PG_buddy);
	list_add(&page->lru, &zone->free_list);
	atomic_fetch_add(&zone->nr_free, 1);
}

/*
 * Map the arena, build the zones and the struct pages, reserve the zero
 * page, free every other frame and set the watermarks. Called once from
 * host_create; page_alloc_exit undoes it.
 */
int page_alloc_init(struct host *host)
{
	host->nr_nodes = host->cfg.nr_nodes ? host->cfg.nr_nodes : 1;
	host->arena_bytes = host->cfg.ram_bytes;
	host->nr_pages = host->cfg.ram_bytes >> PAGE_SHIFT;
	host->arena = mmap(NULL, host->arena_bytes, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			   (host->cfg.prefault ? MAP_POPULATE : 0), -1, 0);
	if (host->arena == MAP_FAILED)
		return -ENOMEM;
	host->pages = calloc(host->nr_pages, sizeof(struct page));
	if (!host->pages) {
		munmap(host->arena, host->arena_bytes);
		return -ENOMEM;
	}
	for (int i = 0; i < RMAP_LOCKS; i++)
		spin_lock_init(&host->rmap_locks[i]);
	spin_lock_init(&host->mm_list_lock);
	lru_init(host);
	INIT_LIST_HEAD(&host->mm_list);

	pfn_t per_node = host->nr_pages / (pfn_t)host->nr_nodes;
	for (int n = 0; n < host->nr_nodes; n++) {
		struct zone *zone = &host->zones[n];

		spin_lock_init(&zone->lock);
		INIT_LIST_HEAD(&zone->free_list);
		zone->nid = n;
		zone->start_pfn = per_node * (pfn_t)n;
		zone->end_pfn = n == host->nr_nodes - 1 ? host->nr_pages
							: zone->start_pfn + per_node;
	}
	for (pfn_t pfn = 0; pfn < host->nr_pages; pfn++) {
		struct page *page = &host->pages[pfn];

		page->host = host;
		INIT_LIST_HEAD(&page->lru);
		for (int n = 0; n < host->nr_nodes; n++)
			if (pfn >= host->zones[n].start_pfn && pfn < host->zones[n].end_pfn)
				page->nid = n;
	}

	/* pfn 0 is the shared zero page; the rest go on the free lists, low
	 * pfns first out. */
	host->zero_page = &host->pages[0];
	SetPageFlag(host->zero_page, PG_reserved);
	atomic_store(&host->zero_page->_refcount, 1);
	memset(page_address(host->zero_page), 0, PAGE_SIZE);
	for (pfn_t pfn = host->nr_pages; pfn-- > 1;) {
		struct page *page = &host->pages[pfn];
		struct zone *zone = &host->zones[page->nid];

#ifdef TANDEM_DEBUG
		memset(page_address(page), POISON_FREE, PAGE_SIZE);
#endif
		spin_lock(&zone->lock);
		zone_free_locked(zone, page);
		spin_unlock(&zone->lock);
	}
	atomic_store(&host->nr_free, (long)host->nr_pages - 1);

	/* Linux sizes min_free_kbytes as ~sqrt(16 * lowmem KiB); a fixed
	 * fraction keeps small test hosts usable. low/high are +25%/+50%. */
	host->wmark_min = MAX(16L, (long)host->nr_pages / 256);
	host->wmark_low = host->wmark_min + host->wmark_min / 4;
	host->wmark_high = host->wmark_min + host->wmark_min / 2;

	return 0;
}

void page_alloc_exit(struct host *host)
{
	for (int i = 0; i < RMAP_LOCKS; i++)
		mutex_destroy(&host->rmap_locks[i]);
	for (int n = 0; n < host->nr_nodes; n++)
		mutex_destroy(&host->zones[n].lock);
	mutex_destroy(&host->mm_list_lock);
	munmap(host->arena, host->arena_bytes);
	free(host->pages);
}

#ifdef TANDEM_DEBUG
static void check_poison(struct page *page)
{
	const unsigned char *p = page_address(page);

	for (size_t i = 0; i < PAGE_SIZE; i++) {
		if (p[i] != POISON_FREE) {
			struct host *host = page->host;
			long n = atomic_fetch_add(&host->poison_hits, 1);

			if (n < 5)
				fprintf(stderr,
					"tandem: freed frame %llu written at offset %zu "
					"(0x%02x): a stale translation outlived its page\n",
					(unsigned long long)page_to_pfn(page), i, p[i]);
			if (!host->cfg.poison_count_only)
				BUG();
			return;
		}
	}
}

#endif
static struct page *zone_alloc(struct zone *zone)
{
	struct page *page = NULL;

	spin_lock(&zone->lock);
	if (!list_empty(&zone->free_list)) {
		page = list_first_entry(&zone->free_list, struct page, lru);
		list_del_init(&page->lru);
		ClearPageFlag(page, PG_buddy);
		atomic_fetch_sub(&zone->nr_free, 1);
	}
	spin_unlock(&zone->lock);
	return page;
}

/*
 * Allocate one frame, preferably on node nid (-1: round-robin), falling back
 * to the other nodes. The frame comes back with _refcount 1 and no flags.
 */
static bool claim_frame(struct host *host, long reserve)
{
	/* Claim the frame in the global count first, so concurrent
	 * allocators cannot all pass the watermark check together. */
	if (atomic_fetch_sub(&host->nr_free, 1) - 1 < reserve) {
		atomic_fetch_add(&host->nr_free, 1);
		return false;
	}
	return true;
}

struct page *alloc_page_node(struct host *host, int nid, unsigned int gfp)
{
	struct page *page = NULL;
	long reserve = (gfp & GFP_ATOMIC) ? 0 : host->wmark_min;

	if (should_fail((gfp & GFP_PGTABLE) ? FAULT_SITE_PGTABLE : FAULT_SITE_PAGE_ALLOC)) {
		count_vm_event(host, PGALLOC_FAIL);
		return NULL;
	}
	if (!claim_frame(host, reserve)) {
		/* Direct reclaim: free some frames ourselves, then retry. */
		bool ok = false;

		if (!(gfp & (GFP_ATOMIC | GFP_NORECLAIM)) && host->swap) {
			/* Keep reclaiming while it makes progress (others may
			 * take the frames we free before we claim one); give
			 * up to the OOM killer after rounds that free nothing. */
			for (int tries = 0, idle = 0; tries < 64 && idle < 4 && !ok; tries++) {
				count_vm_event(host, ALLOCSTALL);
				wakeup_kswapd(host);
				idle = try_to_free_pages(host, 32) ? 0 : idle + 1;
				ok = claim_frame(host, reserve);
			}
		}
		/* Nothing reclaimable: kill the largest mm and wait a little
		 * for the reaper to bring its frames back. Short: the caller
		 * may hold an mmap_lock (a fault), and a writer queued behind
		 * it keeps the reaper's trylock from succeeding, so a long wait
		 * here only delays the reap (a 5 s wait let a second victim
		 * die under TSan). */
		for (int tries = 0; !ok && host->cfg.oom_killer && tries < 2000 &&
		     !(gfp & (GFP_ATOMIC | GFP_NORECLAIM)); tries++) {
			if (!out_of_memory(host))
				break;
			struct timespec ts = { 0, 100000 };

			nanosleep(&ts, NULL);
			ok = claim_frame(host, reserve);
		}
		if (!ok) {
			count_vm_event(host, PGALLOC_FAIL);
			return NULL;
		}
	}
	if (atomic_load(&host->nr_free) < host->wmark_low)
		wakeup_kswapd(host);
	if (nid < 0 || nid >= host->nr_nodes)
		nid = (int)(atomic_fetch_add(&host->next_node, 1) % (unsigned)host->nr_nodes);
	for (int i = 0; i < host->nr_nodes && !page; i++)
		page = zone_alloc(&host->zones[(nid + i) % host->nr_nodes]);
	BUG_ON(!page); /* nr_free said there was one */
	BUG_ON(page_count(page) != 0 || page_mapcount(page) != 0 || page->rmap);
#ifdef TANDEM_DEBUG
	check_poison(page);
#endif
	atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
	page->private = 0;
	atomic_store_explicit(&page->_refcount, 1, memory_order_relaxed);
	if (gfp & GFP_ZERO)
		memset(page_address(page), 0, PAGE_SIZE);
	count_vm_event(host, PGALLOC);
	return page;
}

struct page *alloc_page(struct host *host, unsigned int gfp)
{
	return alloc_page_node(host, -1, gfp);
}

/* Return a frame whose last reference is gone to its zone. */
void __free_page(struct page *page)
{
	struct host *host = page->host;
	struct zone *zone = &host->zones[page->nid];

	BUG_ON(page_count(page) != 0);
	BUG_ON(page_mapcount(page) != 0 || page->rmap);
	BUG_ON(PageFlag(page, PG_reserved) || PageFlag(page, PG_buddy));
	if (PageFlag(page, PG_lru))
		lru_del_on_free(page);
	BUG_ON(PageFlag(page, PG_swapcache) || PageFlag(page, PG_locked));
#ifdef TANDEM_DEBUG
	memset(page_address(page), POISON_FREE, PAGE_SIZE);
#endif
	atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
	spin_lock(&zone->lock);
	zone_free_locked(zone, page);
	spin_unlock(&zone->lock);
	atomic_fetch_add(&host->nr_free, 1);
	count_vm_event(host, PGFREE);
}

void get_page(struct page *page)
{
	if (PageFlag(page, PG_reserved))
		return;
	int old = atomic_fetch_add_explicit(&page->_refcount, 1, memory_order_relaxed);
	BUG_ON(old <= 0); /* a reference to a free frame */
}

void put_page(struct page *page)
{
	if (PageFlag(page, PG_reserved))
		return;
	/* acq_rel: every access made under the reference happens-before
	 * the frame is reused. */
	int old = atomic_fetch_sub_explicit(&page->_refcount, 1, memory_order_acq_rel);
	BUG_ON(old <= 0);
	if (old == 1)
		__free_page(page);
}

bool get_page_unless_zero(struct page *page)
{
	int old = atomic_load_explicit(&page->_refcount, memory_order_relaxed);

	do {
		if (old == 0)
			return false;
	} while (!atomic_compare_exchange_weak(&page->_refcount, &old, old + 1));
	return true;
}

/* PG_locked: held while a page's content moves between frame and swap. */
bool trylock_page(struct page *page)
{
	return !(atomic_fetch_or_explicit(&page->flags, 1UL << PG_locked,
					  memory_order_acquire) & (1UL << PG_locked));
}

void unlock_page(struct page *page)
{
	BUG_ON(!PageFlag(page, PG_locked));
	atomic_fetch_and_explicit(&page->flags, ~(1UL << PG_locked), memory_order_release);
}

/* Held only across one swap I/O: yield until it is done. */
void wait_on_page_locked(struct page *page)
{
	while (atomic_load_explicit(&page->flags, memory_order_acquire) & (1UL << PG_locked))
		sched_yield();
}

void set_page_dirty(struct page *page)
{
	if (!PageFlag(page, PG_reserved) && !PageFlag(page, PG_dirty))
		SetPageFlag(page, PG_dirty);
}

void mark_page_accessed(struct page *page)
{
	if (!PageFlag(page, PG_reserved) && !PageFlag(page, PG_referenced))
		SetPageFlag(page, PG_referenced);
}
