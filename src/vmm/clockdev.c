/* SPDX-License-Identifier: MIT */
/*
 * clockdev.c - the clock device (clockdev.h): seed 001's atomic-mode user
 * of the gfn_to_pfn cache.
 *
 * Two threads per device:
 *
 *   timer   every period, for each registered VM whose cache is not
 *           waiting for a refresh: kvm_gpc_read_lock, kvm_gpc_check, write
 *           the page (a seqcount: odd, fields, even), unlock. It never
 *           sleeps or blocks holding the read lock: the lock is a spinning
 *           reader-writer lock, and an invalidation waits for it (that
 *           wait is what makes the write safe). If check fails, it counts
 *           a miss, sets the VM's need_refresh and wakes the worker (an
 *           atomic counter and FUTEX_WAKE: a syscall that never sleeps).
 *   worker  process context: for each VM with need_refresh, refresh its
 *           cache (may sleep: GUP, swap-in, waiting out an invalidation),
 *           then clear need_refresh. A refresh that fails (the range is
 *           read-only, the memslot is being replaced, the mm is an OOM
 *           victim) is retried CLOCKDEV_RETRY_NS later.
 *
 * States of one VM, and who moves between them:
 *
 *   WRITING --(timer: check fails)--> NEED_REFRESH
 *   NEED_REFRESH --(worker: refresh ok)--> WRITING
 *   NEED_REFRESH --(worker or last pass: -EIO, the page is lost)--> LOST
 *                 (for good: the owner is told, clockdev_set_lost_fn)
 *
 * need_refresh is the handover: the timer stores true (release) after its
 * last look at the cache; the worker stores false (release) after its
 * refresh returned; each loads it with acquire. Between the two the timer
 * does not touch the VM, so a VM is never written while known stale, and
 * never refreshed by two threads (kvm_gpc_refresh serializes anyway).
 *
 * Invariants:
 *  1. Every write through khva happens under the read lock after check
 *     succeeded in the same critical section.
 *  2. The device remembers, per VM, the value of its last write and the
 *     cache's refresh count at that moment (last, last_refreshes). After
 *     the threads are joined, the page read through the VMM's mapping
 *     must hold that value -- unless the cache has been invalidated since
 *     (it no longer checks, or was refreshed since): then the page may
 *     also be all zero (the host discarded it legitimately). Anything
 *     else is a lost write.
 *  3. stop ends both waits promptly: the timer sleeps on the stop word
 *     (FUTEX_WAIT with the period as timeout), the worker on the kick
 *     counter; stop sets the word, bumps the counter and wakes both.
 *
 * Registration appends to vms[] and publishes nr_vms with release; the
 * threads load it with acquire, so a VM is complete before they see it.
 * Entries are never removed before destroy.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "tandem/clockdev.h"
#include "tandem/vmm.h"
#include "base/clock.h"
#include "base/compiler.h"

#define CLOCKDEV_RETRY_NS (1000ULL * NSEC_PER_USEC)    /* a failed refresh, again */

struct clockdev_vm {
	struct vmm *vmm;
	gpa_t gpa;
	struct gfn_to_pfn_cache gpc;    /* KVM_HOST_USES_PFN */
	/* The timer's, and stop's last pass (after the join): */
	uint64_t seq;                   /* writes so far */
	struct clock_page last;         /* what the last write stored */
	uint64_t last_refreshes;        /* gpc.stat.refreshes at that write */
	bool written;
	/* The handover (above). */
	_Atomic bool need_refresh;
	uint64_t retry_at;              /* the worker's: next try after a failure */
	/* A refresh's swap-in failed (-EIO): the page's data is lost to the VM
	 * (host.h), the owner was told (lost_fn) and the VM is left alone:
	 * need_refresh stays set, so the timer skips it too. */
	_Atomic bool lost;
	/* Written by one thread each, read by anyone. */
	_Atomic uint64_t writes, misses, refreshes, refresh_errors;
};

struct clockdev {
	uint64_t period_ns;
	pthread_mutex_t add_lock;       /* serializes clockdev_add_vm */
	struct clockdev_vm *vms[CLOCKDEV_MAX_VMS];
	_Atomic unsigned int nr_vms;
	pthread_t timer, worker;
	bool running;                   /* the caller's: threads started */
	_Atomic uint32_t stop;          /* futex word of the timer's sleep */
	_Atomic uint32_t kick;          /* futex word of the worker's sleep */
	_Atomic uint64_t overruns;
	clockdev_lost_fn lost_fn;       /* set before start */
	void *lost_arg;
};

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, 0);
}

static void futex_wait_ns(_Atomic uint32_t *uaddr, uint32_t val, uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / NSEC_PER_SEC), (long)(ns % NSEC_PER_SEC) };

	/* EAGAIN (the word moved), EINTR, ETIMEDOUT: the caller looks again. */
	futex(uaddr, FUTEX_WAIT_PRIVATE, val, ns == UINT64_MAX ? NULL : &ts);
}

static void stat_inc(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

int clockdev_create(uint64_t period_ns, struct clockdev **out)
{
	struct clockdev *dev;

	if (period_ns < CLOCKDEV_PERIOD_MIN || period_ns > CLOCKDEV_PERIOD_MAX)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->period_ns = period_ns;
	BUG_ON(pthread_mutex_init(&dev->add_lock, NULL));
	*out = dev;
	return 0;
}

int clockdev_add_vm(struct clockdev *dev, struct vmm *vmm, gpa_t gpa)
{
	struct clockdev_vm *cv;
	unsigned int n;
	int r;

	if (!vmm || (gpa & (CLOCKDEV_PAGE_LEN - 1)))
		return -EINVAL;
	cv = calloc(1, sizeof(*cv));
	if (!cv)
		return -ENOMEM;
	cv->vmm = vmm;
	cv->gpa = gpa;
	kvm_gpc_init(&cv->gpc, vmm_kvm(vmm));
	r = kvm_gpc_activate(&cv->gpc, gpa, CLOCKDEV_PAGE_LEN);
	if (r)
		goto out_destroy;
	BUG_ON(pthread_mutex_lock(&dev->add_lock));
	n = atomic_load_explicit(&dev->nr_vms, memory_order_relaxed);
	if (n == CLOCKDEV_MAX_VMS) {
		BUG_ON(pthread_mutex_unlock(&dev->add_lock));
		r = -ENOSPC;
		goto out_destroy;
	}
	dev->vms[n] = cv;
	/* Release: pairs with the threads' acquire of nr_vms. */
	atomic_store_explicit(&dev->nr_vms, n + 1, memory_order_release);
	BUG_ON(pthread_mutex_unlock(&dev->add_lock));
	return (int)n;

out_destroy:
	kvm_gpc_destroy(&cv->gpc);
	free(cv);
	return r;
}

/* Called with cv->gpc's read lock held and the cache checked: a few
 * stores through khva, nothing that sleeps. The seqcount as kvm's
 * run-state area: odd (relaxed), release fence, fields, even (release). */
static void clock_write_locked(struct clockdev_vm *cv, uint64_t now)
{
	struct clock_page *p = cv->gpc.khva;
	uint64_t ver = 2 * cv->seq;

	__atomic_store_n(&p->version, ver + 1, __ATOMIC_RELAXED);
	atomic_thread_fence(memory_order_release);
	__atomic_store_n(&p->time_ns, now, __ATOMIC_RELAXED);
	__atomic_store_n(&p->seq, cv->seq + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&p->version, ver + 2, __ATOMIC_RELEASE);
	cv->seq++;
	cv->last = (struct clock_page){ .version = ver + 2, .time_ns = now, .seq = cv->seq };
	/* Stable under the read lock: refresh changes it under the write lock. */
	cv->last_refreshes = cv->gpc.stat.refreshes;
	cv->written = true;
	stat_inc(&cv->writes);
}

/* VM i's clock page could not be swapped in (worker or last pass). */
static void clock_lost(struct clockdev *dev, unsigned int i)
{
	struct clockdev_vm *cv = dev->vms[i];

	stat_inc(&cv->refresh_errors);
	atomic_store_explicit(&cv->lost, true, memory_order_relaxed);
	if (dev->lost_fn)
		dev->lost_fn(dev->lost_arg, i, -EIO);
}

void clockdev_set_lost_fn(struct clockdev *dev, clockdev_lost_fn fn, void *arg)
{
	BUG_ON(dev->running);
	dev->lost_fn = fn;
	dev->lost_arg = arg;
}

/* Process context (the worker, or stop's last pass): refresh VM i's cache,
 * counting the outcome. 0, -EIO (its page is lost: the owner was told), or
 * another error (counted; the caller may try again). */
static int clock_refresh(struct clockdev *dev, unsigned int i)
{
	struct clockdev_vm *cv = dev->vms[i];
	int r = kvm_gpc_refresh(&cv->gpc, CLOCKDEV_PAGE_LEN);

	if (r == -EIO)
		clock_lost(dev, i);
	else if (r)
		stat_inc(&cv->refresh_errors);
	else
		stat_inc(&cv->refreshes);
	return r;
}

/* The timer's visit of one VM (atomic mode). Returns true if the worker
 * must be woken. */
static bool clock_tick_vm(struct clockdev_vm *cv, uint64_t now)
{
	bool ok;

	if (atomic_load_explicit(&cv->need_refresh, memory_order_acquire))
		return false;           /* the worker has it */
	kvm_gpc_read_lock(&cv->gpc);
	ok = kvm_gpc_check(&cv->gpc, CLOCKDEV_PAGE_LEN);
	if (ok)
		clock_write_locked(cv, now);
	kvm_gpc_read_unlock(&cv->gpc);
	if (ok)
		return false;
	stat_inc(&cv->misses);
	/* Release: our look at the cache is over before the worker starts. */
	atomic_store_explicit(&cv->need_refresh, true, memory_order_release);
	return true;
}

static void *clock_timer_main(void *arg)
{
	struct clockdev *dev = arg;
	uint64_t next = clock_now_ns();

	while (!atomic_load_explicit(&dev->stop, memory_order_acquire)) {
		unsigned int n = atomic_load_explicit(&dev->nr_vms, memory_order_acquire);
		uint64_t now = clock_now_ns();
		bool wake = false;

		for (unsigned int i = 0; i < n; i++)
			wake |= clock_tick_vm(dev->vms[i], now);
		if (wake) {
			/* Never sleeps: a counter bump and a wake-up syscall. */
			atomic_fetch_add_explicit(&dev->kick, 1, memory_order_release);
			futex(&dev->kick, FUTEX_WAKE_PRIVATE, 1, NULL);
		}
		next += dev->period_ns;
		now = clock_now_ns();
		if (now >= next) {
			/* Late (a loaded machine): skip the lost periods rather
			 * than write in a burst. */
			atomic_fetch_add_explicit(&dev->overruns, 1, memory_order_relaxed);
			next = now + dev->period_ns;
		}
		futex_wait_ns(&dev->stop, 0, next - now);
	}
	return NULL;
}

/* Refresh every VM the timer handed over whose retry time has come.
 * Returns the nearest retry time of those that failed (UINT64_MAX: none). */
static uint64_t clock_refresh_pending(struct clockdev *dev)
{
	unsigned int n = atomic_load_explicit(&dev->nr_vms, memory_order_acquire);
	uint64_t retry = UINT64_MAX, now = clock_now_ns();

	for (unsigned int i = 0; i < n; i++) {
		struct clockdev_vm *cv = dev->vms[i];

		int r;

		if (!atomic_load_explicit(&cv->need_refresh, memory_order_acquire) ||
		    atomic_load_explicit(&cv->lost, memory_order_relaxed))
			continue;
		if (now < cv->retry_at) {
			retry = MIN(retry, cv->retry_at);
			continue;
		}
		r = clock_refresh(dev, i);
		if (r == -EIO)
			continue;
		if (r) {
			cv->retry_at = clock_now_ns() + CLOCKDEV_RETRY_NS;
			retry = MIN(retry, cv->retry_at);
			continue;
		}
		/* Release: the refresh is done before the timer looks again. */
		atomic_store_explicit(&cv->need_refresh, false, memory_order_release);
	}
	return retry;
}

static void *clock_worker_main(void *arg)
{
	struct clockdev *dev = arg;

	for (;;) {
		uint32_t seen = atomic_load_explicit(&dev->kick, memory_order_acquire);
		uint64_t retry, now;

		if (atomic_load_explicit(&dev->stop, memory_order_acquire))
			break;
		retry = clock_refresh_pending(dev);
		now = clock_now_ns();
		/* A kick after `seen` makes the wait return at once. */
		futex_wait_ns(&dev->kick, seen, retry == UINT64_MAX ? UINT64_MAX :
			      retry > now ? retry - now : 1);
	}
	return NULL;
}

int clockdev_start(struct clockdev *dev)
{
	int r;

	if (dev->running)
		return -EBUSY;
	atomic_store(&dev->stop, 0);
	r = -pthread_create(&dev->worker, NULL, clock_worker_main, dev);
	if (r)
		return r;
	r = -pthread_create(&dev->timer, NULL, clock_timer_main, dev);
	if (r) {
		atomic_store_explicit(&dev->stop, 1, memory_order_release);
		atomic_fetch_add(&dev->kick, 1);
		futex(&dev->kick, FUTEX_WAKE_PRIVATE, 1, NULL);
		pthread_join(dev->worker, NULL);
		return r;
	}
	dev->running = true;
	return 0;
}

/* After the threads are joined: refresh what needs it and write once more
 * (process context, so the refresh may sleep here). */
static void clock_last_pass(struct clockdev *dev)
{
	unsigned int n = atomic_load_explicit(&dev->nr_vms, memory_order_acquire);
	uint64_t now = clock_now_ns();

	for (unsigned int i = 0; i < n; i++) {
		struct clockdev_vm *cv = dev->vms[i];
		bool ok;

		if (atomic_load_explicit(&cv->lost, memory_order_relaxed))
			continue;
		kvm_gpc_read_lock(&cv->gpc);
		ok = kvm_gpc_check(&cv->gpc, CLOCKDEV_PAGE_LEN);
		if (!ok) {
			kvm_gpc_read_unlock(&cv->gpc);
			if (clock_refresh(dev, i))
				continue;       /* e.g. an OOM victim: check judges */
			kvm_gpc_read_lock(&cv->gpc);
			ok = kvm_gpc_check(&cv->gpc, CLOCKDEV_PAGE_LEN);
		}
		if (ok)
			clock_write_locked(cv, now);
		kvm_gpc_read_unlock(&cv->gpc);
		atomic_store_explicit(&cv->need_refresh, false, memory_order_relaxed);
	}
}

void clockdev_stop(struct clockdev *dev)
{
	if (!dev->running)
		return;
	atomic_store_explicit(&dev->stop, 1, memory_order_release);
	futex(&dev->stop, FUTEX_WAKE_PRIVATE, 1, NULL);
	atomic_fetch_add_explicit(&dev->kick, 1, memory_order_release);
	futex(&dev->kick, FUTEX_WAKE_PRIVATE, 1, NULL);
	pthread_join(dev->timer, NULL);
	pthread_join(dev->worker, NULL);
	dev->running = false;
	clock_last_pass(dev);
}

int clockdev_check(struct clockdev *dev, unsigned int idx, char *why, size_t len)
{
	struct clockdev_vm *cv;
	struct clock_page page;
	bool current;
	int r;

	if (idx >= atomic_load_explicit(&dev->nr_vms, memory_order_acquire))
		return -EINVAL;
	cv = dev->vms[idx];
	if (atomic_load_explicit(&cv->lost, memory_order_relaxed))
		return 0;               /* nothing to compare: its owner was told */
	BUG_ON(dev->running);
	if (!cv->written)
		return 0;               /* nothing written: nothing to lose */
	/* Invariant 2: has an invalidation reached the cache since the last
	 * write? (Read before the page: a discard after this look would be
	 * a change to guest memory after stop, which the caller excludes.) */
	kvm_gpc_read_lock(&cv->gpc);
	current = kvm_gpc_check(&cv->gpc, CLOCKDEV_PAGE_LEN) &&
		  cv->gpc.stat.refreshes == cv->last_refreshes;
	kvm_gpc_read_unlock(&cv->gpc);
	r = vmm_read_guest(cv->vmm, cv->gpa, &page, sizeof(page));
	if (r)
		return r;
	if (page.version == cv->last.version && page.time_ns == cv->last.time_ns &&
	    page.seq == cv->last.seq)
		return 0;
	if (!current && !page.version && !page.time_ns && !page.seq)
		return 0;               /* discarded after the last write */
	snprintf(why, len, "clock page at gpa %#llx holds version %llu seq %llu, but the "
		 "device last wrote version %llu seq %llu through a cache that %s: a write "
		 "through a stale host mapping", (unsigned long long)cv->gpa,
		 (unsigned long long)page.version, (unsigned long long)page.seq,
		 (unsigned long long)cv->last.version, (unsigned long long)cv->last.seq,
		 current ? "was never invalidated since" : "was invalidated since");
	return 1;
}

void clockdev_get_stats(struct clockdev *dev, unsigned int idx, struct clockdev_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (idx >= atomic_load_explicit(&dev->nr_vms, memory_order_acquire))
		return;
	st->writes = atomic_load_explicit(&dev->vms[idx]->writes, memory_order_relaxed);
	st->misses = atomic_load_explicit(&dev->vms[idx]->misses, memory_order_relaxed);
	st->refreshes = atomic_load_explicit(&dev->vms[idx]->refreshes, memory_order_relaxed);
	st->refresh_errors = atomic_load_explicit(&dev->vms[idx]->refresh_errors,
						  memory_order_relaxed);
	st->overruns = atomic_load_explicit(&dev->overruns, memory_order_relaxed);
}

void clockdev_destroy(struct clockdev *dev)
{
	if (!dev)
		return;
	clockdev_stop(dev);
	for (unsigned int i = 0; i < atomic_load(&dev->nr_vms); i++) {
		kvm_gpc_destroy(&dev->vms[i]->gpc);
		free(dev->vms[i]);
	}
	BUG_ON(pthread_mutex_destroy(&dev->add_lock));
	free(dev);
}
