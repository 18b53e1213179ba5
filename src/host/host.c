/* SPDX-License-Identifier: MIT */
/*
 * host.c - a host: its lifetime (create: frames, swap, kswapd, the OOM
 * reaper; destroy once no mm is left) and its statistics.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static const char *const vm_event_names[NR_VM_EVENTS] = {
	[PGFAULT] = "pgfault",
	[PGFAULT_ZERO] = "pgfault_zero",
	[PGFAULT_ZERO_PAGE] = "pgfault_zero_page",
	[COW_BREAK] = "cow_break",
	[COW_REUSE] = "cow_reuse",
	[PGUNMAP] = "pgunmap",
	[GUP_CALLS] = "gup",
	[PGALLOC] = "pgalloc",
	[PGFREE] = "pgfree",
	[PGALLOC_FAIL] = "pgalloc_fail",
	[PSWPIN] = "pswpin",
	[PSWPOUT] = "pswpout",
	[SWAP_WRITE_ERROR] = "swap_write_error",
	[SWAP_READ_ERROR] = "swap_read_error",
	[PGSCAN] = "pgscan",
	[PGSTEAL] = "pgsteal",
	[PGACTIVATE] = "pgactivate",
	[PGDEACTIVATE] = "pgdeactivate",
	[PGREFERENCED_SECONDARY] = "pgreferenced_secondary",
	[KSWAPD_WAKEUP] = "kswapd_wakeup",
	[ALLOCSTALL] = "allocstall",
};

const char *vm_event_name(enum vm_event_item item)
{
	if ((unsigned int)item >= NR_VM_EVENTS)
		return "?";
	return vm_event_names[item];
}

static int validate_config(const struct host_config *cfg)
{
	if (!cfg)
		return -EINVAL;
	if (cfg->ram_bytes < HOST_RAM_MIN || cfg->ram_bytes > HOST_RAM_MAX ||
	    !PAGE_ALIGNED(cfg->ram_bytes))
		return -EINVAL;
	if (cfg->nr_nodes < 0 || cfg->nr_nodes > HOST_MAX_NODES)
		return -EINVAL;
	if (!PAGE_ALIGNED(cfg->swap_bytes) || cfg->swap_bytes > HOST_SWAP_MAX)
		return -EINVAL;
	return 0;
}

int host_create(const struct host_config *cfg, struct host **out)
{
	struct host *host;
	int err = validate_config(cfg);

	if (err)
		return err;
	if (!out)
		return -EINVAL;
	host = calloc(1, sizeof(*host));
	if (!host)
		return -ENOMEM;
	host->cfg = *cfg;
	err = page_alloc_init(host);
	if (err) {
		free(host);
		return err;
	}
	err = swap_init(host);
	if (err)
		goto out_pages;
	err = kswapd_start(host);
	if (err)
		goto out_swap;
	err = mmput_async_init(host);
	if (err)
		goto out_kswapd;
	err = oom_init(host);
	if (err)
		goto out_async;
	*out = host;
	return 0;
out_async:
	mmput_async_exit(host);
out_kswapd:
	kswapd_stop(host);
out_swap:
	swap_exit(host);
out_pages:
	page_alloc_exit(host);
	free(host);
	return err;
}

int host_destroy(struct host *host)
{
	if (!host)
		return -EINVAL;
	/* A victim being reaped is still referenced by the reaper. */
	for (int i = 0; i < 10000 && atomic_load(&host->oom_pending); i++)
		sched_yield();
	/* An mm whose last put was handed to the worker is on its way out. */
	mmput_async_drain(host);
	spin_lock(&host->mm_list_lock);
	bool busy = !list_empty(&host->mm_list);
	spin_unlock(&host->mm_list_lock);
	if (busy)
		return -EBUSY;
	oom_exit(host);
	mmput_async_exit(host);
	kswapd_stop(host);
	swap_exit(host);
	mutex_destroy(&host->lru.lock);
	rwsem_destroy(&host->reclaim_lock);
	page_alloc_exit(host);
	free(host);
	return 0;
}

void host_set_pte_hook(struct host *host, pte_change_hook_t hook, void *arg)
{
	atomic_store_explicit(&host->pte_hook_arg, arg, memory_order_relaxed);
	atomic_store_explicit(&host->pte_hook, hook, memory_order_release);
}

uint64_t host_frames_in_use(struct host *host)
{
	return host->nr_pages - 1 - (uint64_t)atomic_load(&host->nr_free);
}

void host_get_stats(struct host *host, struct host_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->ram_pages = host->nr_pages;
	st->free_pages = (uint64_t)atomic_load(&host->nr_free);
	st->pgtable_pages = (uint64_t)atomic_load(&host->nr_pgtables);
	st->reserved_pages = 1;
	st->poison_hits = (uint64_t)atomic_load(&host->poison_hits);
	if (host->swap) {
		spin_lock(&host->swap->lock);
		st->swap_slots = host->swap->nr_slots;
		st->swap_free_slots = host->swap->nr_free;
		spin_unlock(&host->swap->lock);
	}
	st->oom_kills = (uint64_t)atomic_load(&host->oom_kills);
	st->oom_reaped_pages = (uint64_t)atomic_load(&host->oom_reaped_pages);
	st->oom_reap_retries = (uint64_t)atomic_load(&host->oom_reap_retries);
	spin_lock(&host->lru.lock);
	st->lru_active = (uint64_t)host->lru.nr_active;
	st->lru_inactive = (uint64_t)host->lru.nr_inactive;
	spin_unlock(&host->lru.lock);
	st->watermark_min = (uint64_t)host->wmark_min;
	st->watermark_low = (uint64_t)host->wmark_low;
	st->watermark_high = (uint64_t)host->wmark_high;
	for (int i = 0; i < NR_VM_EVENTS; i++)
		st->events[i] = (uint64_t)atomic_load_explicit(&host->events[i],
							       memory_order_relaxed);
	spin_lock(&host->mm_list_lock);
	struct mm *mm;
	list_for_each_entry(mm, &host->mm_list, mmlist) {
		st->nr_mms++;
		for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
			st->notifier_starts += (uint64_t)atomic_load_explicit(
				&mm->notifier_subscriptions.nr_calls[e],
				memory_order_relaxed);
	}
	spin_unlock(&host->mm_list_lock);
}
