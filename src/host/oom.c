/* SPDX-License-Identifier: MIT */
/*
 * oom.c - the OOM killer and the OOM reaper.
 *
 * out_of_memory() runs in a thread whose allocation failed after direct
 * reclaim: RAM is full and nothing more can be swapped out. It picks the
 * mm with the most pages (resident + swapped), marks it oom_victim (from
 * then on its faults fail with -ENOMEM, so nothing refills it), tells the
 * VMM (host_set_oom_notify) so that it stops the VM on that mm, and queues
 * it for the reaper. Only one victim is pending at a time: while one is
 * being reaped, further failures wait for it rather than kill again.
 *
 * The reaper thread unmaps the victim's memory without blocking on the
 * victim or its secondary MMUs, as Linux's oom_reaper does: it only tries
 * mmap_lock, and brackets each VMA with
 * mmu_notifier_invalidate_range_start_nonblock(). A secondary MMU that
 * would have to block (its lock is busy, or a vCPU it would have to wait
 * for is still in guest mode) answers -EAGAIN, and the reaper tries again
 * shortly: the VMM is stopping that VM meanwhile. Frames and swap slots
 * come back as the PTEs are zapped; the mm's own exit later finds little
 * left to do.
 *
 * Lock rules: oom_lock serializes victim selection; the queue has its own
 * mutex; the reaper takes mmap_lock for read (trylock) and never holds the
 * queue lock while reaping.
 */
#include <stdlib.h>
#include <time.h>
#include "internal.h"
#include "tandem/mmu_notifier.h"

void host_set_oom_notify(struct host *host, oom_notify_fn fn, void *arg)
{
	mutex_lock(&host->oom_lock);
	host->oom_notify = fn;
	host->oom_notify_arg = arg;
	mutex_unlock(&host->oom_lock);
}

bool mm_is_oom_victim(struct mm *mm)
{
	return atomic_load(&mm->oom_victim);
}

static uint64_t mm_badness(struct mm *mm)
{
	return (uint64_t)(atomic_load(&mm->rss[MM_ANONPAGES]) +
			  atomic_load(&mm->rss[MM_SWAPENTS]) +
			  atomic_load(&mm->nr_pgtables));
}

/*
 * Called by an allocator that found nothing to reclaim. Returns true if
 * memory should come back (a victim was chosen, or one is being reaped):
 * the caller may wait and retry. false: nothing left to kill.
 */
bool out_of_memory(struct host *host)
{
	struct mm *mm, *victim = NULL;
	uint64_t best = 0;
	oom_notify_fn notify;
	void *notify_arg;

	if (atomic_load(&host->oom_pending))
		return true;
	mutex_lock(&host->oom_lock);
	if (atomic_load(&host->oom_pending)) {
		mutex_unlock(&host->oom_lock);
		return true;
	}
	spin_lock(&host->mm_list_lock);
	list_for_each_entry(mm, &host->mm_list, mmlist) {
		uint64_t b;

		if (atomic_load(&mm->oom_victim) || atomic_load(&mm->exiting) ||
		    atomic_load(&mm->mm_users) == 0)
			continue;
		b = mm_badness(mm);
		if (b > best) {
			best = b;
			victim = mm;
		}
	}
	if (victim) {
		mmgrab(victim);
		atomic_store(&victim->oom_victim, true);
		atomic_fetch_add(&host->oom_pending, 1);
		atomic_fetch_add(&host->oom_kills, 1);
	}
	spin_unlock(&host->mm_list_lock);
	notify = host->oom_notify;
	notify_arg = host->oom_notify_arg;
	mutex_unlock(&host->oom_lock);
	if (!victim)
		return false;

	fprintf(stderr, "tandem: out of memory: killed mm %u (%llu pages resident or swapped)\n",
		victim->id, (unsigned long long)best);
	if (notify)
		notify(notify_arg, victim, best);
	pthread_mutex_lock(&host->oom_queue_lock);
	list_add_tail(&victim->oom_link, &host->oom_queue);
	pthread_cond_signal(&host->oom_queue_wait);
	pthread_mutex_unlock(&host->oom_queue_lock);
	return true;
}

/* Unmap every VMA of mm without blocking. Returns -EAGAIN to retry. */
static int oom_reap(struct mm *mm)
{
	int err = 0;

	if (!down_read_trylock(&mm->mmap_lock))
		return -EAGAIN;
	for (unsigned int i = 0; i < mm->nr_vmas && !err; i++) {
		struct vm_area_struct *vma = mm->vmas[i];
		struct mmu_notifier_range range;

		mmu_notifier_range_init(&range, MMU_NOTIFY_UNMAP, 0, mm,
					vma->vm_start, vma->vm_end);
		if (mmu_notifier_invalidate_range_start_nonblock(&range)) {
			err = -EAGAIN;
			break;
		}
		zap_page_range_locked(mm, vma->vm_start, vma->vm_end);
		mmu_notifier_invalidate_range_end(&range);
	}
	up_read(&mm->mmap_lock);
	return err;
}

static void *oom_reaper_main(void *arg)
{
	struct host *host = arg;

	pthread_mutex_lock(&host->oom_queue_lock);
	for (;;) {
		while (!host->oom_reaper_stop && list_empty(&host->oom_queue))
			pthread_cond_wait(&host->oom_queue_wait, &host->oom_queue_lock);
		if (list_empty(&host->oom_queue))
			break;          /* stopping, nothing queued */
		struct mm *mm = list_first_entry(&host->oom_queue, struct mm, oom_link);

		list_del_init(&mm->oom_link);
		pthread_mutex_unlock(&host->oom_queue_lock);

		long before = (long)atomic_load(&host->nr_free);
		/* Retry while the victim's secondary MMUs would block (the VMM
		 * is stopping them) -- for a bounded time, then leave the rest
		 * to the mm's exit. */
		for (int tries = 0; tries < 5000; tries++) {
			if (atomic_load(&mm->exiting) || oom_reap(mm) == 0)
				break;
			atomic_fetch_add(&host->oom_reap_retries, 1);
			struct timespec ts = { 0, 200000 };

			nanosleep(&ts, NULL);
		}
		long got = (long)atomic_load(&host->nr_free) - before;

		atomic_fetch_add(&host->oom_reaped_pages, got > 0 ? got : 0);
		atomic_store(&mm->oom_reaped, true);
		atomic_fetch_sub(&host->oom_pending, 1);
		mmdrop(mm);
		pthread_mutex_lock(&host->oom_queue_lock);
	}
	pthread_mutex_unlock(&host->oom_queue_lock);
	return NULL;
}

int oom_init(struct host *host)
{
	mutex_init(&host->oom_lock);
	pthread_mutex_init(&host->oom_queue_lock, NULL);
	pthread_cond_init(&host->oom_queue_wait, NULL);
	INIT_LIST_HEAD(&host->oom_queue);
	if (pthread_create(&host->oom_reaper, NULL, oom_reaper_main, host))
		return -EAGAIN;
	host->oom_reaper_running = true;
	return 0;
}

void oom_exit(struct host *host)
{
	if (host->oom_reaper_running) {
		pthread_mutex_lock(&host->oom_queue_lock);
		host->oom_reaper_stop = true;
		pthread_cond_signal(&host->oom_queue_wait);
		pthread_mutex_unlock(&host->oom_queue_lock);
		pthread_join(host->oom_reaper, NULL);
		host->oom_reaper_running = false;
	}
	pthread_cond_destroy(&host->oom_queue_wait);
	pthread_mutex_destroy(&host->oom_queue_lock);
	mutex_destroy(&host->oom_lock);
}
