/* SPDX-License-Identifier: MIT */
/*
 * mm.c - address spaces: lifetime, teardown, and the zap every unmapping
 * path shares.
 *
 * Every path that removes or downgrades a PTE brackets the change with
 * mmu_notifier_invalidate_range_start/end over a range covering it, and the
 * frames it unmaps are freed only after start has returned:
 *
 *   path                 event               mmap_lock   file
 *   munmap, MAP_FIXED    UNMAP               write       mmap.c
 *   MADV_DONTNEED        CLEAR               read        madvise.c
 *   mprotect downgrade   PROTECTION_VMA      write       mprotect.c
 *   COW break            CLEAR               read        fault.c
 *   fork                 PROTECTION_PAGE     write       fork.c
 *   reclaim              CLEAR               read        vmscan.c
 *   exit                 release()           write       here
 *
 * Lifetime: mm_users (address-space users) and mm_count (struct references)
 * as in Linux. The users collectively hold one mm_count; the last mmput()
 * runs exit_mmap() and drops it; the last mmdrop() frees the pgd and the
 * struct and unlinks it from the host.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "base/rcu.h"

int mm_create(struct host *host, struct mm **out)
{
	struct mm *mm;

	if (!host || !out)
		return -EINVAL;
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->host = host;
	rwsem_init(&mm->mmap_lock);
	spin_lock_init(&mm->page_table_lock);
	mm->pgd = pgtable_alloc(mm, &mm->pgd_pfn, 0);
	if (!mm->pgd) {
		rwsem_destroy(&mm->mmap_lock);
		mutex_destroy(&mm->page_table_lock);
		free(mm);
		return -ENOMEM;
	}
	mmu_notifier_subscriptions_init(&mm->notifier_subscriptions);
	INIT_LIST_HEAD(&mm->oom_link);
	atomic_store(&mm->mm_users, 1);
	atomic_store(&mm->mm_count, 1);
	spin_lock(&host->mm_list_lock);
	mm->id = ++host->next_mm_id;
	list_add_tail(&mm->mmlist, &host->mm_list);
	spin_unlock(&host->mm_list_lock);
	*out = mm;
	return 0;
}

void mmgrab(struct mm *mm)
{
	int old = atomic_fetch_add(&mm->mm_count, 1);

	BUG_ON(old <= 0);
}

void mmdrop(struct mm *mm)
{
	struct host *host = mm->host;

	if (atomic_fetch_sub_explicit(&mm->mm_count, 1, memory_order_acq_rel) != 1)
		return;
	BUG_ON(atomic_load(&mm->mm_users) != 0);
	BUG_ON(mm->nr_vmas || atomic_load(&mm->nr_pgtables));
	spin_lock(&host->mm_list_lock);
	list_del_init(&mm->mmlist);
	spin_unlock(&host->mm_list_lock);
	{
		struct page *pgd = pfn_to_page(host, mm->pgd_pfn);

		ClearPageFlag(pgd, PG_pgtable);
		atomic_fetch_sub(&host->nr_pgtables, 1);
		put_page(pgd);
	}
	mmu_notifier_subscriptions_destroy(&mm->notifier_subscriptions);
	rwsem_destroy(&mm->mmap_lock);
	mutex_destroy(&mm->page_table_lock);
	free(mm->vmas);
	free(mm);
}

void mmget(struct mm *mm)
{
	int old = atomic_fetch_add(&mm->mm_users, 1);

	BUG_ON(old <= 0);
}

bool mmget_not_zero(struct mm *mm)
{
	int old = atomic_load(&mm->mm_users);

	do {
		if (old == 0)
			return false;
	} while (!atomic_compare_exchange_weak(&mm->mm_users, &old, old + 1));
	return true;
}

struct zap_arg {
	long anon;
	long swap;
};

/* Called under page_table_lock for each non-none PTE being removed. */
static int zap_one(struct mm *mm, hva_t addr, pte_t *ptep, void *arg)
{
	struct zap_arg *za = arg;
	pte_t pte = READ_ONCE(*ptep);
	struct page *page;

	set_pte(mm, addr, ptep, 0);
	if (pte_is_swap(pte)) {
		swap_free(mm->host, pte_swp_slot(pte));
		za->swap++;
		return 0;
	}
	BUG_ON(!pte_present(pte));
	if (pte_special(pte))
		return 0;
	page = pfn_to_page(mm->host, pte_pfn(pte));
	if (pte_dirty(pte))
		set_page_dirty(page);
	page_remove_rmap(page, mm, addr);
	za->anon++;
	count_vm_event(mm->host, PGUNMAP);
	/* A swap-cache page whose slot no PTE references any more keeps the
	 * slot for nothing: drop it (else reclaim, holding the lock, will). */
	if (PageFlag(page, PG_swapcache) && trylock_page(page)) {
		try_to_free_swap_locked(page);
		unlock_page(page);
	}
	put_page(page);
	return 0;
}

/*
 * Remove every PTE in [start, end). Called with mmap_lock held and, unless
 * the mm's subscribers were released, inside an invalidation covering it.
 */
void zap_page_range_locked(struct mm *mm, hva_t start, hva_t end)
{
	struct zap_arg za = { 0 };

	spin_lock(&mm->page_table_lock);
	walk_pte_range(mm, start, end, zap_one, &za);
	spin_unlock(&mm->page_table_lock);
	add_mm_counter(mm, MM_ANONPAGES, -za.anon);
	add_mm_counter(mm, MM_SWAPENTS, -za.swap);
}

static void exit_mmap(struct mm *mm)
{
	/* release() waits for a grace period (mmu_notifier.c), which never
	 * ends inside a read-side section: a put that can be the last must
	 * not be made in one (mmput_async is for those places). */
	BUG_ON(rcu_read_lock_held());
	atomic_store(&mm->exiting, true);
	/* Secondary MMUs drop everything before a frame is freed. */
	mmu_notifier_release(mm);
	down_write(&mm->mmap_lock);
	if (mm->nr_vmas)
		do_munmap(mm, TASK_UNMAPPED_FLOOR, TASK_SIZE, false);
	BUG_ON(mm->nr_vmas);
	BUG_ON(atomic_load(&mm->rss[MM_ANONPAGES]) != 0);
	BUG_ON(atomic_load(&mm->rss[MM_SWAPENTS]) != 0);
	up_write(&mm->mmap_lock);
}

void mmput(struct mm *mm)
{
	if (atomic_fetch_sub_explicit(&mm->mm_users, 1, memory_order_acq_rel) != 1)
		return;
	exit_mmap(mm);
	mmdrop(mm);
}

pte_t mm_lookup_pte(struct mm *mm, hva_t addr)
{
	pte_t pte = 0, *ptep;

	if (!mm || addr >= TASK_SIZE)
		return 0;
	spin_lock(&mm->page_table_lock);
	ptep = pte_offset(mm, addr);
	if (ptep)
		pte = READ_ONCE(*ptep);
	spin_unlock(&mm->page_table_lock);
	return pte;
}

uint64_t get_mm_counter(struct mm *mm, enum mm_counter member)
{
	long v = atomic_load_explicit(&mm->rss[member], memory_order_relaxed);

	/* Updates race with each other (a zap and a fault on other pages):
	 * a sum read mid-way may dip below 0 for a moment. */
	return v > 0 ? (uint64_t)v : 0;
}

struct host *mm_host(struct mm *mm)
{
	return mm->host;
}

void mmput_async(struct mm *mm)
{
	struct host *host = mm->host;

	if (atomic_fetch_sub_explicit(&mm->mm_users, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_lock(&host->async_put_lock);
	list_add_tail(&mm->async_put_link, &host->async_put);
	pthread_cond_broadcast(&host->async_put_wait);
	pthread_mutex_unlock(&host->async_put_lock);
}

static void *async_put_main(void *arg)
{
	struct host *host = arg;

	pthread_mutex_lock(&host->async_put_lock);
	for (;;) {
		while (!host->async_put_stop && list_empty(&host->async_put))
			pthread_cond_wait(&host->async_put_wait, &host->async_put_lock);
		if (list_empty(&host->async_put))
			break;          /* stopping, nothing queued */
		struct mm *mm = list_first_entry(&host->async_put, struct mm, async_put_link);

		/* In flight until its mmdrop is done: a drainer that sees the
		 * queue empty and nothing in flight sees the mm gone (its pgd
		 * freed, unless another reference holds it). */
		list_del_init(&mm->async_put_link);
		host->async_put_inflight++;
		pthread_mutex_unlock(&host->async_put_lock);
		exit_mmap(mm);
		mmdrop(mm);
		pthread_mutex_lock(&host->async_put_lock);
		host->async_put_inflight--;
		pthread_cond_broadcast(&host->async_put_wait);
	}
	pthread_mutex_unlock(&host->async_put_lock);
	return NULL;
}

int mmput_async_init(struct host *host)
{
	pthread_mutex_init(&host->async_put_lock, NULL);
	pthread_cond_init(&host->async_put_wait, NULL);
	INIT_LIST_HEAD(&host->async_put);
	if (pthread_create(&host->async_put_worker, NULL, async_put_main, host)) {
		pthread_cond_destroy(&host->async_put_wait);
		pthread_mutex_destroy(&host->async_put_lock);
		return -EAGAIN;
	}
	host->async_put_running = true;
	return 0;
}

void mmput_async_drain(struct host *host)
{
	pthread_mutex_lock(&host->async_put_lock);
	while (!list_empty(&host->async_put) || host->async_put_inflight)
		pthread_cond_wait(&host->async_put_wait, &host->async_put_lock);
	pthread_mutex_unlock(&host->async_put_lock);
}

void mmput_async_exit(struct host *host)
{
	if (!host->async_put_running)
		return;
	pthread_mutex_lock(&host->async_put_lock);
	host->async_put_stop = true;
	pthread_cond_broadcast(&host->async_put_wait);
	pthread_mutex_unlock(&host->async_put_lock);
	pthread_join(host->async_put_worker, NULL);
	host->async_put_running = false;
	pthread_cond_destroy(&host->async_put_wait);
	pthread_mutex_destroy(&host->async_put_lock);
}
