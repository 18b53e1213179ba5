/* SPDX-License-Identifier: MIT */
/*
 * mmu_notifier.c - the per-mm list of secondary MMUs and the calls that
 * reach them.
 *
 * Mechanism
 * ---------
 * Each mm embeds a struct mmu_notifier_subscriptions. Its subscribers form a
 * singly linked list (subs->list, mn->next), added at the head. Every host
 * call (range start/end, aging, change_pte, release) walks the list inside
 * an RCU read-side section, with no list lock; the pointers are published
 * with rcu_assign_pointer (release store) and read with rcu_dereference
 * (acquire load), so a reader that reaches a subscriber sees it fully
 * initialised. A subscriber is removed by unlinking it and then waiting for
 * a grace period, after which no reader can still be on it and the caller
 * may free it.
 *
 * range_lock is what keeps a subscriber from seeing half an invalidation.
 * invalidate_range_start takes it for read and invalidate_range_end drops
 * it; the list changes only with it held for write. So while any range is
 * open on this mm, the list is frozen, and its start and its end visit the
 * same subscribers.
 *
 * States of one struct mmu_notifier, as (registered, released, linked),
 * "linked" meaning reachable from subs->list (only the list knows):
 *
 *   IDLE      (0, -, 0)  never registered, or its unregister has returned
 *   LINKED    (1, 0, 1)  register
 *   RELEASED  (1, 1, 1)  exit's walk in mmu_notifier_release called ->release
 *   DETACHED  (1, 1, 0)  exit's detach emptied the list
 *   LEAVING   (0, *, *)  unregister claimed it (from LINKED, RELEASED or
 *                        DETACHED); it calls ->release unless released,
 *                        unlinks it unless detached, waits for a grace
 *                        period and drops the mm reference -> IDLE
 *
 * Invariants
 * ----------
 *  1. The list and subs->nr change only with range_lock held for write and
 *     subs->lock held, and nr is the length of the list. Hence no list
 *     change happens while any thread is between start and end: pairs are
 *     exact, and the non-blocking start can re-walk the list to undo.
 *  2. ->release runs at most once per registration: whoever wins
 *     atomic_exchange(&mn->released, true) calls it. If exit or unregister
 *     happen, it runs exactly once.
 *  3. A caller of ->release holds an RCU read-side section across the
 *     exchange and the call, and the exit path ends with synchronize_rcu().
 *     So exit does not return (and free frames) while ->release runs, even
 *     when unregister won the exchange. Likewise unregister does not return
 *     while exit's ->release of it runs.
 *  4. An unlinked subscriber keeps its next pointer, so a reader standing
 *     on it walks on; it may be freed only after the synchronize_rcu() that
 *     follows its unlinking, which unregister performs before it returns.
 *  5. No registration succeeds once mmu_notifier_release() has begun:
 *     register checks mm->exiting under subs->lock, release first passes
 *     through subs->lock after the host set exiting.
 *  6. registered is set by register and cleared by the unregister that
 *     claims mn, both under subs->lock of mn->mm; register holds an mmgrab
 *     on mm that this unregister, and only it, drops.
 *
 * Lock rules
 * ----------
 *  Order: mm->mmap_lock > subs->range_lock > subs->lock (as in mm_types.h).
 *  - invalidate_range_start and _end must be called by the same thread (it
 *    owns the read hold of range_lock); nested ranges on one mm are allowed.
 *  - Callbacks run inside an RCU read-side section, with range_lock held
 *    for read (start/end) or nothing (aging, change_pte, release); never
 *    with subs->lock, never with range_lock held for write.
 *  - register/unregister/release must not be called from a callback or by
 *    a thread that is between start and end on the same mm: they take
 *    range_lock for write (deadlock) or call synchronize_rcu() (which must
 *    not run inside a read-side section, rcu.h).
 *  - synchronize_rcu() is called with none of these locks held.
 *  - range_lock is glibc's reader-preferring rwlock (lock.c): while ranges
 *    overlap without a gap, register/unregister/release wait. Fine while
 *    those are rare; a writer-preferring lock would deadlock nested ranges.
 *
 * Unlike Linux (which unlinks without excluding ranges, so an unregistered
 * subscriber can miss an end), removal here waits for open ranges: that is
 * what lets a subscriber count its in-progress invalidations without ever
 * being left unbalanced.
 */
#include <errno.h>
#include "base/rcu.h"
#include "internal.h"

#define for_each_subscriber(mn, subs)                                   \
	for (mn = rcu_dereference((subs)->list); mn;                    \
	     mn = rcu_dereference(mn->next))

static const char *const event_names[] = {
	[MMU_NOTIFY_UNMAP] = "unmap",
	[MMU_NOTIFY_CLEAR] = "clear",
	[MMU_NOTIFY_PROTECTION_VMA] = "protection_vma",
	[MMU_NOTIFY_PROTECTION_PAGE] = "protection_page",
	[MMU_NOTIFY_SOFT_DIRTY] = "soft_dirty",
	[MMU_NOTIFY_RELEASE] = "release",
	[MMU_NOTIFY_MIGRATE] = "migrate",
	[MMU_NOTIFY_EXCLUSIVE] = "exclusive",
};

const char *mmu_notifier_event_name(enum mmu_notifier_event event)
{
	BUILD_BUG_ON(ARRAY_SIZE(event_names) != MMU_NOTIFY_NR_EVENTS);
	if ((unsigned int)event >= MMU_NOTIFY_NR_EVENTS)
		return "unknown";
	return event_names[event];
}

void mmu_notifier_subscriptions_init(struct mmu_notifier_subscriptions *subs)
{
	rcu_assign_pointer(subs->list, NULL);
	spin_lock_init(&subs->lock);
	rwsem_init(&subs->range_lock);
	atomic_init(&subs->nr, 0);
	for (unsigned int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		atomic_init(&subs->nr_calls[e], 0);
	atomic_init(&subs->nr_young_calls, 0);
}

/*
 * Called when the mm struct is freed (last mmdrop): every subscriber holds
 * an mmgrab, so all have been unregistered and none is linked.
 */
void mmu_notifier_subscriptions_destroy(struct mmu_notifier_subscriptions *subs)
{
	WARN_ON_ONCE(rcu_dereference_protected(subs->list) != NULL);
	WARN_ON_ONCE(atomic_load(&subs->nr) != 0);
	rwsem_destroy(&subs->range_lock);
	mutex_destroy(&subs->lock);
}

bool mm_has_notifiers(struct mm *mm)
{
	return atomic_load_explicit(&mm->notifier_subscriptions.nr,
				    memory_order_relaxed) != 0;
}

void mmu_notifier_range_init(struct mmu_notifier_range *range,
			     enum mmu_notifier_event event, unsigned int flags,
			     struct mm *mm, hva_t start, hva_t end)
{
	BUG_ON((unsigned int)event >= MMU_NOTIFY_NR_EVENTS);
	WARN_ON_ONCE(start > end || !PAGE_ALIGNED(start) || !PAGE_ALIGNED(end));
	range->mm = mm;
	range->start = start;
	range->end = end;
	range->event = event;
	range->flags = flags;
}

/*
 * Count a range that has just been opened. Called with range_lock held for
 * read: from here until its end, the list is frozen (invariant 1).
 */
static void range_open_locked(struct mmu_notifier_subscriptions *subs,
			      const struct mmu_notifier_range *range)
{
	lockdep_assert_held_read(&subs->range_lock);
	BUG_ON((unsigned int)range->event >= MMU_NOTIFY_NR_EVENTS);
	atomic_fetch_add_explicit(&subs->nr_calls[range->event], 1,
				  memory_order_relaxed);
}

/*
 * Called with no lock of this mm held; returns with range_lock held for
 * read (released by mmu_notifier_invalidate_range_end on this thread).
 */
int mmu_notifier_invalidate_range_start(struct mmu_notifier_range *range)
{
	struct mmu_notifier_subscriptions *subs = &range->mm->notifier_subscriptions;
	struct mmu_notifier *mn;

	range->flags |= MMU_NOTIFIER_RANGE_BLOCKABLE;
	down_read(&subs->range_lock);
	range_open_locked(subs, range);
	/* Relaxed is enough: nr changes only under range_lock held for
	 * write, and our down_read orders us after any such change. */
	if (atomic_load_explicit(&subs->nr, memory_order_relaxed) == 0)
		return 0;

	rcu_read_lock();
	for_each_subscriber(mn, subs) {
		int ret;

		if (!mn->ops->invalidate_range_start)
			continue;
		ret = mn->ops->invalidate_range_start(mn, range);
		/* Protocol 3: -EAGAIN only for non-blockable ranges. The
		 * subscriber still gets its end, as if it had returned 0. */
		WARN_ON_ONCE(ret != 0);
	}
	rcu_read_unlock();
	return 0;
}

/*
 * The OOM reaper's start: never sleeps on range_lock, and gives up as soon
 * as one subscriber would block. On -EAGAIN nothing is left open: the
 * subscribers walked before the failing one got their end here, the
 * failing one gets no end (a start that can fail must not need one), those
 * after it were not called, range_lock is released, and the caller must
 * not call end. A call that got range_lock is counted in nr_calls even if
 * a subscriber then failed it. On 0 the caller owes an end, as for start.
 */
int mmu_notifier_invalidate_range_start_nonblock(struct mmu_notifier_range *range)
{
	struct mmu_notifier_subscriptions *subs = &range->mm->notifier_subscriptions;
	struct mmu_notifier *mn, *failed = NULL;

	range->flags &= ~MMU_NOTIFIER_RANGE_BLOCKABLE;
	/* A writer (register/unregister/release) holds it: would block. */
	if (!down_read_trylock(&subs->range_lock))
		return -EAGAIN;
	range_open_locked(subs, range);
	if (atomic_load_explicit(&subs->nr, memory_order_relaxed) == 0)
		return 0;

	rcu_read_lock();
	for_each_subscriber(mn, subs) {
		int ret;

		if (!mn->ops->invalidate_range_start)
			continue;
		ret = mn->ops->invalidate_range_start(mn, range);
		if (ret == -EAGAIN) {
			failed = mn;
			break;
		}
		/* Any other error is a subscriber bug; treat it as success
		 * (it will get its end). */
		WARN_ON_ONCE(ret != 0);
	}
	if (failed) {
		/* The list is the one the first walk saw (invariant 1), so
		 * this walk meets exactly the subscribers that succeeded
		 * before reaching the failing one. */
		for_each_subscriber(mn, subs) {
			if (mn == failed)
				break;
			if (mn->ops->invalidate_range_end)
				mn->ops->invalidate_range_end(mn, range);
		}
	}
	rcu_read_unlock();

	if (failed) {
		up_read(&subs->range_lock);
		return -EAGAIN;
	}
	return 0;
}

/*
 * Called by the thread that opened the range with a successful start, with
 * range_lock still held for read; drops it.
 */
void mmu_notifier_invalidate_range_end(struct mmu_notifier_range *range)
{
	struct mmu_notifier_subscriptions *subs = &range->mm->notifier_subscriptions;
	struct mmu_notifier *mn;

	lockdep_assert_held_read(&subs->range_lock);
	if (atomic_load_explicit(&subs->nr, memory_order_relaxed) != 0) {
		rcu_read_lock();
		for_each_subscriber(mn, subs) {
			if (mn->ops->invalidate_range_end)
				mn->ops->invalidate_range_end(mn, range);
		}
		rcu_read_unlock();
	}
	up_read(&subs->range_lock);
}

/*
 * Aging and change_pte do not take range_lock: they change no translation
 * that a range brackets, and a subscriber that joins or leaves meanwhile
 * merely is, or is not, asked. A racy nr check is therefore fine here.
 */
/* Ask every subscriber to age [start, end); flush picks the op. Every
 * subscriber must age its own copy: no early exit. */
static int young_walk(struct mm *mm, hva_t start, hva_t end, bool flush)
{
	struct mmu_notifier_subscriptions *subs = &mm->notifier_subscriptions;
	struct mmu_notifier *mn;
	int young = 0;

	atomic_fetch_add_explicit(&subs->nr_young_calls, 1, memory_order_relaxed);
	if (atomic_load_explicit(&subs->nr, memory_order_relaxed) == 0)
		return 0;
	rcu_read_lock();
	for_each_subscriber(mn, subs) {
		int (*op)(struct mmu_notifier *, struct mm *, hva_t, hva_t) =
			flush ? mn->ops->clear_flush_young : mn->ops->clear_young;

		if (op)
			young |= op(mn, mm, start, end);
	}
	rcu_read_unlock();
	return young;
}

int mmu_notifier_clear_flush_young(struct mm *mm, hva_t start, hva_t end)
{
	return young_walk(mm, start, end, true);
}

int mmu_notifier_clear_young(struct mm *mm, hva_t start, hva_t end)
{
	return young_walk(mm, start, end, false);
}

int mmu_notifier_test_young(struct mm *mm, hva_t address)
{
	struct mmu_notifier_subscriptions *subs = &mm->notifier_subscriptions;
	struct mmu_notifier *mn;
	int young = 0;

	atomic_fetch_add_explicit(&subs->nr_young_calls, 1, memory_order_relaxed);
	if (atomic_load_explicit(&subs->nr, memory_order_relaxed) == 0)
		return 0;
	rcu_read_lock();
	/* test_young changes nothing, so the first yes answers it. */
	for_each_subscriber(mn, subs) {
		if (mn->ops->test_young && mn->ops->test_young(mn, mm, address)) {
			young = 1;
			break;
		}
	}
	rcu_read_unlock();
	return young;
}

void mmu_notifier_change_pte(struct mm *mm, hva_t address, pte_t pte)
{
	struct mmu_notifier_subscriptions *subs = &mm->notifier_subscriptions;
	struct mmu_notifier *mn;

	if (atomic_load_explicit(&subs->nr, memory_order_relaxed) == 0)
		return;
	rcu_read_lock();
	for_each_subscriber(mn, subs) {
		if (mn->ops->change_pte)
			mn->ops->change_pte(mn, mm, address, pte);
	}
	rcu_read_unlock();
}

/*
 * Call ->release unless someone already has (invariant 2). Called inside an
 * RCU read-side section (invariant 3).
 */
static void mn_release_once(struct mmu_notifier *mn, struct mm *mm)
{
	if (atomic_exchange(&mn->released, true))
		return;
	if (mn->ops->release)
		mn->ops->release(mn, mm);
}

/*
 * Subscribe mn to mm. Called with no lock of mm held, not from a callback.
 * Takes mmap_lock and range_lock for write, so the subscriber's first
 * callback of a range is a start (protocol 5). On success mm carries one
 * more mmgrab reference, dropped by mmu_notifier_unregister(). A subscriber
 * may be registered again only after its unregister has returned.
 */
int mmu_notifier_register(struct mmu_notifier *mn, struct mm *mm)
{
	struct mmu_notifier_subscriptions *subs;
	int ret = 0;

	if (!mn || !mn->ops || !mm)
		return -EINVAL;
	subs = &mm->notifier_subscriptions;
	lockdep_assert_not_held(&subs->range_lock);

	down_write(&mm->mmap_lock);
	down_write(&subs->range_lock);
	spin_lock(&subs->lock);
	if (mn->registered) {
		ret = -EINVAL;
		goto out_unlock;
	}
	/* Pairs with the lock/unlock at the top of mmu_notifier_release()
	 * (invariant 5): if exiting is still false here, release has not
	 * passed subs->lock yet and its walk will find mn. */
	if (atomic_load(&mm->exiting) || atomic_load(&mm->mm_users) == 0) {
		ret = -ESRCH;
		goto out_unlock;
	}

	mn->mm = mm;
	atomic_store_explicit(&mn->released, false, memory_order_relaxed);
	mmgrab(mm);
	atomic_store_explicit(&mn->next, rcu_dereference_protected(subs->list),
			      memory_order_relaxed);
	/* Publish: a reader that loads mn sees ops, mm, next, released. */
	rcu_assign_pointer(subs->list, mn);
	atomic_fetch_add(&subs->nr, 1);
	mn->registered = true;
out_unlock:
	spin_unlock(&subs->lock);
	up_write(&subs->range_lock);
	up_write(&mm->mmap_lock);
	return ret;
}

/*
 * Unlink mn from the list if it is still on it. Called with range_lock
 * held for write and subs->lock held. Returns whether it was linked.
 */
static bool mn_unlink_locked(struct mmu_notifier_subscriptions *subs,
			     struct mmu_notifier *mn)
{
	struct mmu_notifier *_Atomic *pp = &subs->list;
	struct mmu_notifier *cur;

	lockdep_assert_held_write(&subs->range_lock);
	lockdep_assert_held(&subs->lock);
	while ((cur = rcu_dereference_protected(*pp)) != NULL) {
		if (cur == mn) {
			/* mn->next stays: a reader on mn walks on (inv. 4). */
			rcu_assign_pointer(*pp, rcu_dereference_protected(mn->next));
			atomic_fetch_sub(&subs->nr, 1);
			return true;
		}
		pp = &cur->next;
	}
	return false;
}

/*
 * Remove mn from mm. Called with no lock of mm held, not from a callback,
 * not between start and end. Calls ->release if exit has not; returns only
 * when no callback of mn is running or can start, so the caller may free
 * mn. Then drops register's mmgrab (mm may be freed by it).
 *
 * Racing with the exit path (mmu_notifier_release) on another thread:
 *
 *   unregister (U)                        exit: release (R)
 *   ---------------------------------     ---------------------------------
 *   claim: registered = false             exiting = true; lock/unlock
 *   rcu_read_lock                         rcu_read_lock
 *   xchg(released) -> false: U wins       xchg(released) -> true: skip mn
 *   ->release(mn) ...                     rcu_read_unlock
 *   ...                                   detach all (list = NULL)
 *   ... still running                     synchronize_rcu: waits for U's
 *   rcu_read_unlock                         section, so ->release is done
 *   unlink: mn not on the list            return; exit frees the frames
 *   synchronize_rcu, mmdrop
 *
 * With the roles swapped (R's exchange first), U's synchronize_rcu comes
 * after U's exchange, which saw R's, which R made inside its read-side
 * section: U waits for R's ->release of mn before it returns and the
 * caller frees mn. Either way ->release runs once (invariant 2), exit
 * frees nothing while it runs, and mn is freed only after every reader
 * that could reach it has left (unlinked by U or detached by R, then U's
 * grace period).
 */
int mmu_notifier_unregister(struct mmu_notifier *mn, struct mm *mm)
{
	struct mmu_notifier_subscriptions *subs;

	if (!mn || !mm)
		return -EINVAL;
	subs = &mm->notifier_subscriptions;
	lockdep_assert_not_held(&subs->range_lock);

	/* Claim mn: a second (or concurrent) unregister now gets -EINVAL
	 * and cannot drop the mm reference twice (invariant 6). */
	spin_lock(&subs->lock);
	if (!mn->registered || mn->mm != mm) {
		spin_unlock(&subs->lock);
		return -EINVAL;
	}
	mn->registered = false;
	spin_unlock(&subs->lock);

	rcu_read_lock();
	mn_release_once(mn, mm);
	rcu_read_unlock();

	/* Waits for open ranges, so mn never misses the end of a start. */
	down_write(&subs->range_lock);
	spin_lock(&subs->lock);
	mn_unlink_locked(subs, mn);
	spin_unlock(&subs->lock);
	up_write(&subs->range_lock);

	/* Pairs with every reader's rcu_read_unlock: after this, no walk
	 * that could see mn (nor R's ->release of it) is still running. */
	synchronize_rcu();
	mmdrop(mm);
	return 0;
}

/*
 * The address space is being torn down: called by the host's exit path
 * once mm_users reached 0 and mm->exiting is set, before any frame is
 * freed, with no lock of mm held. Every subscriber gets ->release once (if
 * unregister did not call it already), then all are detached; when this
 * returns no callback for mm is running, and none will start. Subscribers
 * stay registered: their owners still unregister them (which drops their
 * mmgrab and returns 0).
 */
void mmu_notifier_release(struct mm *mm)
{
	struct mmu_notifier_subscriptions *subs = &mm->notifier_subscriptions;
	struct mmu_notifier *mn;

	lockdep_assert_not_held(&subs->range_lock);
	WARN_ON_ONCE(!atomic_load(&mm->exiting));

	/* Invariant 5: every register that saw exiting == false has linked
	 * its subscriber before this, so the walk below finds it. */
	spin_lock(&subs->lock);
	spin_unlock(&subs->lock);
	/* Acquire: if the last subscriber was unlinked by an unregister,
	 * that unregister's ->release happened before we return. */
	if (atomic_load_explicit(&subs->nr, memory_order_acquire) == 0)
		return;

	rcu_read_lock();
	for_each_subscriber(mn, subs)
		mn_release_once(mn, mm);
	rcu_read_unlock();

	/* Detach the whole list. Nodes keep their next pointers for
	 * readers still on them (invariant 4); unregister will not find
	 * them on the list and so will not unlink them again. */
	down_write(&subs->range_lock);
	spin_lock(&subs->lock);
	rcu_assign_pointer(subs->list, NULL);
	atomic_store(&subs->nr, 0);
	spin_unlock(&subs->lock);
	up_write(&subs->range_lock);

	/* Invariant 3: waits for every ->release under way, ours or a
	 * racing unregister's, and for every walk that saw the old list. */
	synchronize_rcu();
}
