/* SPDX-License-Identifier: MIT */
/*
 * vmscan.c - reclaim: LRU lists, aging through host PTEs and secondary
 * MMUs, unmapping to swap, kswapd and direct reclaim.
 *
 * Anonymous pages live on two lists. New pages start active; kswapd and
 * direct reclaim move pages from the active tail to the inactive list and
 * scan the inactive tail. A scanned page that was referenced since the
 * last look -- by a host PTE's accessed bit *or* by any secondary MMU
 * (page_referenced asks mmu_notifier_clear_flush_young) -- goes back to
 * the active list: a page only a guest touches is as hot as any other.
 * An unreferenced one is unmapped (every PTE becomes a swap entry, each
 * change bracketed by a CLEAR invalidation so secondary MMUs drop it
 * first), written to its slot, and freed.
 *
 * A failed write loses nothing: the page stays in the swap cache, dirty,
 * and the swap entries point at it, so the next fault maps it back.
 *
 * Lock rules: lru.lock is a leaf (taken under page_table_lock by
 * put_page's free path); reclaim holds no lock but the page lock
 * (PG_locked) while it walks the rmap and calls notifiers. Page-table
 * allocations never enter direct reclaim (they may be under
 * page_table_lock); a thread already reclaiming never recurses.
 */
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include "internal.h"
#include "tandem/mmu_notifier.h"

#define SWAP_CLUSTER 32

void lru_init(struct host *host)
{
	rwsem_init(&host->reclaim_lock);
	spin_lock_init(&host->lru.lock);
	INIT_LIST_HEAD(&host->lru.active);
	INIT_LIST_HEAD(&host->lru.inactive);
}

static void add_locked(struct lruvec *lru, struct page *page, bool active)
{
	lockdep_assert_held(&lru->lock);
	SetPageFlag(page, PG_lru);
	if (active) {
		SetPageFlag(page, PG_active);
		list_add(&page->lru, &lru->active);
		lru->nr_active++;
	} else {
		ClearPageFlag(page, PG_active);
		list_add(&page->lru, &lru->inactive);
		lru->nr_inactive++;
	}
}

static void del_locked(struct lruvec *lru, struct page *page)
{
	lockdep_assert_held(&lru->lock);
	list_del_init(&page->lru);
	if (PageFlag(page, PG_active))
		lru->nr_active--;
	else
		lru->nr_inactive--;
	ClearPageFlag(page, PG_lru);
}

/* A new anonymous page (fault, COW copy, swap-in) joins the active list. */
void lru_cache_add(struct page *page)
{
	struct lruvec *lru = &page->host->lru;

	spin_lock(&lru->lock);
	if (!PageFlag(page, PG_lru))
		add_locked(lru, page, true);
	spin_unlock(&lru->lock);
}

/* put_page's free path: the last reference is gone. */
void lru_del_on_free(struct page *page)
{
	struct lruvec *lru = &page->host->lru;

	spin_lock(&lru->lock);
	if (PageFlag(page, PG_lru))
		del_locked(lru, page);
	spin_unlock(&lru->lock);
}

/* MADV_COLD: to the inactive list, referenced state dropped. */
void deactivate_page(struct page *page)
{
	struct lruvec *lru = &page->host->lru;

	spin_lock(&lru->lock);
	if (PageFlag(page, PG_lru) && PageFlag(page, PG_active)) {
		del_locked(lru, page);
		add_locked(lru, page, false);
		count_vm_event(page->host, PGDEACTIVATE);
	}
	spin_unlock(&lru->lock);
	ClearPageFlag(page, PG_referenced);
}

/* Take page off its list for reclaim, with a reference. */
bool isolate_lru_page(struct page *page)
{
	struct lruvec *lru = &page->host->lru;
	bool ok = false;

	spin_lock(&lru->lock);
	if (PageFlag(page, PG_lru) && get_page_unless_zero(page)) {
		del_locked(lru, page);
		ok = true;
	}
	spin_unlock(&lru->lock);
	return ok;
}

static void putback_lru_page(struct page *page, bool active)
{
	struct lruvec *lru = &page->host->lru;

	spin_lock(&lru->lock);
	if (!PageFlag(page, PG_lru))
		add_locked(lru, page, active);
	spin_unlock(&lru->lock);
	put_page(page);
}

/* Move up to nr pages from the active tail to the inactive list. */
static void shrink_active_list(struct host *host, unsigned long nr)
{
	struct lruvec *lru = &host->lru;

	spin_lock(&lru->lock);
	while (nr-- && !list_empty(&lru->active)) {
		struct page *page = list_last_entry(&lru->active, struct page, lru);

		del_locked(lru, page);
		add_locked(lru, page, false);
		count_vm_event(host, PGDEACTIVATE);
	}
	spin_unlock(&lru->lock);
}

/* Isolate up to nr pages from the inactive tail onto list. */
static unsigned long isolate_inactive(struct host *host, unsigned long nr,
				      struct list_head *list)
{
	struct lruvec *lru = &host->lru;
	unsigned long n = 0, scanned = 0;

	spin_lock(&lru->lock);
	while (n < nr && !list_empty(&lru->inactive) && scanned++ < nr * 4) {
		struct page *page = list_last_entry(&lru->inactive, struct page, lru);

		if (!get_page_unless_zero(page)) {
			list_move(&page->lru, &lru->inactive); /* being freed */
			continue;
		}
		del_locked(lru, page);
		list_add_tail(&page->lru, list);
		n++;
	}
	spin_unlock(&lru->lock);
	return n;
}

struct unmap_arg {
	uint64_t slot;
	bool force;             /* MADV_PAGEOUT: unmap even if young */
	bool failed;
	bool referenced;        /* used since the first look: activate */
};

/*
 * One mapping of page: PTE -> swap entry, under a CLEAR invalidation.
 *
 * A use since reclaim's first look (page_referenced) keeps the page:
 *   - second look, before the invalidation: test_young asks the secondary
 *     MMUs whether they used it since, without clearing or flushing --
 *     cheap, and a young page then keeps its secondary mappings too;
 *   - a use after that, before the zap, reaches the page through the zap
 *     itself: secondary MMUs pass an accessed translation's young bit on
 *     (mark_page_accessed), as the host PTE's accessed bit is checked.
 */
static bool unmap_one(struct page *page, struct mm *mm, hva_t addr, void *arg)
{
	struct unmap_arg *ua = arg;
	struct mmu_notifier_range range;
	pte_t *ptep;

	if (!mmget_not_zero(mm)) {
		ua->failed = true;      /* exiting: its exit will unmap it */
		return false;
	}
	if (!ua->force && mmu_notifier_test_young(mm, addr)) {
		ua->failed = ua->referenced = true;
		mmput_async(mm);
		return false;
	}
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				mm, addr, addr + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	spin_lock(&mm->page_table_lock);
	ptep = page_pte_locked(page, mm, addr);
	if (ptep) {
		pte_t pte = READ_ONCE(*ptep);

		if (!ua->force && (pte_young(pte) || TestClearPageFlag(page, PG_referenced))) {
			/* used since we looked: keep it */
			ua->failed = ua->referenced = true;
		} else {
			swap_duplicate(mm->host, ua->slot);
			set_pte(mm, addr, ptep, swp_slot_pte(ua->slot));
			if (pte_dirty(pte))
				SetPageFlag(page, PG_dirty);
			page_remove_rmap(page, mm, addr);
			add_mm_counter(mm, MM_ANONPAGES, -1);
			add_mm_counter(mm, MM_SWAPENTS, 1);
			put_page(page); /* the PTE's reference */
		}
	}
	spin_unlock(&mm->page_table_lock);
	mmu_notifier_invalidate_range_end(&range);
	/* Async: reclaim runs inside allocations, some of them made inside
	 * an RCU read-side section (a secondary MMU's fault), where the
	 * mm's teardown, if this is its last user, may not run. */
	mmput_async(mm);
	return !ua->failed;
}

/*
 * Reclaim the isolated pages on list (each holds our reference). Pages not
 * reclaimed go back to an LRU list. force: unmap even referenced pages
 * (MADV_PAGEOUT). Returns the number freed.
 */
unsigned long reclaim_pages(struct host *host, struct list_head *list, bool force)
{
	struct page *page, *next;
	unsigned long freed = 0;

	list_for_each_entry_safe(page, next, list, lru) {
		bool activate = false;

		list_del_init(&page->lru);
		count_vm_event(host, PGSCAN);
		if (!trylock_page(page)) {
			putback_lru_page(page, false);
			continue;
		}
		if (page_mapcount(page) > 0 && !force) {
			int secondary = 0;
			int refs = page_referenced_ex(page, true, &secondary);

			if (refs && refs == secondary)
				count_vm_event(host, PGREFERENCED_SECONDARY);
			if (refs || TestClearPageFlag(page, PG_referenced)) {
				count_vm_event(host, PGACTIVATE);
				activate = true;
				goto keep_locked;
			}
		}
		if (!PageFlag(page, PG_swapcache) && add_to_swap(page))
			goto keep_locked;       /* swap full or absent */
		if (page_mapcount(page) > 0) {
			struct unmap_arg ua = { .slot = page->private, .force = force };

			rmap_walk(page, unmap_one, &ua);
			if (ua.referenced) {
				count_vm_event(host, PGACTIVATE);
				activate = true;
			}
			if (page_mapcount(page) > 0)
				goto keep_locked;
		}
		if (PageFlag(page, PG_dirty)) {
			ClearPageFlag(page, PG_dirty);
			if (swap_writepage(host, page->private, page)) {
				/* Nothing lost: resident, dirty, still cached;
				 * the swap entries find it here. */
				SetPageFlag(page, PG_dirty);
				activate = true;
				goto keep_locked;
			}
		}
		/* Clean, unmapped, on disk: drop it unless a fault took it. */
		if (!remove_mapping_swap(page, 2))
			goto keep_locked;
		unlock_page(page);
		put_page(page);         /* ours: the frame is free now */
		count_vm_event(host, PGSTEAL);
		freed++;
		continue;
keep_locked:
		/* No swap PTE left (they went away, or a fault mapped the
		 * page back while we held its lock, so its swap_free could
		 * not drop the cache entry)? Then the slot is not needed. */
		try_to_free_swap_locked(page);
		unlock_page(page);
		putback_lru_page(page, activate);
	}
	return freed;
}

static __thread bool in_reclaim;

/* Free up to nr frames; returns how many were freed. */
unsigned long try_to_free_pages(struct host *host, unsigned long nr)
{
	struct lruvec *lru = &host->lru;
	unsigned long freed = 0;
	long budget;

	if (in_reclaim || !host->swap)
		return 0;
	/* reclaim_lock orders before mmap_lock (the checker holds it while
	 * it takes each mmap_lock), and a direct reclaimer may hold one:
	 * only try, and let the checker's quiescent run win. */
	if (!down_read_trylock(&host->reclaim_lock))
		return 0;
	in_reclaim = true;
	/* Scan at most about twice around the lists: a page referenced at
	 * the first look has its young bits cleared and comes back old,
	 * unless it is used again meanwhile (then it is hot: keep it). */
	spin_lock(&lru->lock);
	budget = 2 * (lru->nr_active + lru->nr_inactive) + SWAP_CLUSTER;
	spin_unlock(&lru->lock);
	while (freed < nr && budget > 0) {
		LIST_HEAD_DECL(list);

		spin_lock(&lru->lock);
		long inactive = lru->nr_inactive, active = lru->nr_active;
		spin_unlock(&lru->lock);
		/* Keep the inactive list at least as long as the active one. */
		if (inactive < active || inactive < SWAP_CLUSTER)
			shrink_active_list(host, SWAP_CLUSTER);
		unsigned long got = isolate_inactive(host, SWAP_CLUSTER, &list);

		if (!got)
			break;
		budget -= (long)got;
		freed += reclaim_pages(host, &list, false);
	}
	up_read(&host->reclaim_lock);
	in_reclaim = false;
	return freed;
}

unsigned long host_reclaim(struct host *host, unsigned long nr)
{
	return try_to_free_pages(host, nr);
}

static void *kswapd_main(void *arg)
{
	struct host *host = arg;

	pthread_mutex_lock(&host->kswapd_lock);
	for (;;) {
		while (!host->kswapd_stop && !host->kswapd_woken)
			pthread_cond_wait(&host->kswapd_wait, &host->kswapd_lock);
		if (host->kswapd_stop)
			break;
		host->kswapd_woken = false;
		pthread_mutex_unlock(&host->kswapd_lock);
		count_vm_event(host, KSWAPD_WAKEUP);
		while (atomic_load(&host->nr_free) < host->wmark_high) {
			if (!try_to_free_pages(host, SWAP_CLUSTER)) {
				/* Nothing reclaimable now: back off briefly. */
				struct timespec ts = { 0, 1000000 };

				nanosleep(&ts, NULL);
				break;
			}
		}
		pthread_mutex_lock(&host->kswapd_lock);
	}
	pthread_mutex_unlock(&host->kswapd_lock);
	return NULL;
}

void wakeup_kswapd(struct host *host)
{
	if (!host->kswapd_running)
		return;
	pthread_mutex_lock(&host->kswapd_lock);
	if (!host->kswapd_woken) {
		host->kswapd_woken = true;
		pthread_cond_signal(&host->kswapd_wait);
	}
	pthread_mutex_unlock(&host->kswapd_lock);
}

int kswapd_start(struct host *host)
{
	pthread_mutex_init(&host->kswapd_lock, NULL);
	pthread_cond_init(&host->kswapd_wait, NULL);
	if (!host->swap || host->cfg.no_kswapd)
		return 0;
	if (pthread_create(&host->kswapd, NULL, kswapd_main, host))
		return -EAGAIN;
	host->kswapd_running = true;
	return 0;
}

void kswapd_stop(struct host *host)
{
	if (host->kswapd_running) {
		pthread_mutex_lock(&host->kswapd_lock);
		host->kswapd_stop = true;
		pthread_cond_signal(&host->kswapd_wait);
		pthread_mutex_unlock(&host->kswapd_lock);
		pthread_join(host->kswapd, NULL);
		host->kswapd_running = false;
	}
	pthread_cond_destroy(&host->kswapd_wait);
	pthread_mutex_destroy(&host->kswapd_lock);
}
