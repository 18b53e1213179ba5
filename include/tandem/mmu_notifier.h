/* SPDX-License-Identifier: MIT */
/*
 * mmu_notifier.h - how the primary MMU (host) tells secondary MMUs (kvm, a
 * device model, ...) that a range of an address space is about to change,
 * has changed, or is being aged. This is the only thing the host knows of
 * secondary MMUs.
 *
 * Protocol a subscriber relies on:
 *  1. Every change that removes a PTE or downgrades it (unmap, zap, COW
 *     break, write-protect, migration, reclaim) is bracketed by
 *     invalidate_range_start() and invalidate_range_end() over a range that
 *     covers it. start runs before the PTE changes; a page whose PTE was
 *     removed is freed only after start has returned.
 *  2. Between start and end, a subscriber must not establish a new
 *     translation in the range (the PTE may change again at any moment);
 *     it counts in-progress invalidations and retries its fills.
 *  3. A range whose flags lack MMU_NOTIFIER_RANGE_BLOCKABLE comes from a
 *     path that may not sleep (the OOM reaper); start may then return
 *     -EAGAIN and must not wait. Otherwise start returns 0.
 *  4. release() runs exactly once per subscription, when the address space
 *     is torn down (before its pages are freed) or from unregister,
 *     whichever is first. Once the call that ran it (exit's release or
 *     unregister) has returned, no other callback follows; until then,
 *     callbacks from other threads may still arrive (as in Linux).
 *  5. Registration and removal never land in the middle of an
 *     invalidation: a subscriber sees start and end in pairs.
 *
 * Callbacks run inside an RCU read-side section and may sleep (blockable
 * ranges only), but must not call synchronize_rcu() or register/unregister
 * on the same mm.
 */
#ifndef TANDEM_MMU_NOTIFIER_H
#define TANDEM_MMU_NOTIFIER_H

#include <stdatomic.h>
#include "tandem/types.h"

struct mm;
struct mmu_notifier;

enum mmu_notifier_event {
	MMU_NOTIFY_UNMAP = 0,       /* munmap, exit: the VMA goes away */
	MMU_NOTIFY_CLEAR,           /* PTEs cleared, VMA stays (DONTNEED, COW, reclaim) */
	MMU_NOTIFY_PROTECTION_VMA,  /* mprotect downgrade of a VMA */
	MMU_NOTIFY_PROTECTION_PAGE, /* write-protect of pages (fork, KSM) */
	MMU_NOTIFY_SOFT_DIRTY,
	MMU_NOTIFY_RELEASE,         /* the OOM reaper and teardown */
	MMU_NOTIFY_MIGRATE,         /* page migration */
	MMU_NOTIFY_EXCLUSIVE,
	MMU_NOTIFY_NR_EVENTS
};

const char *mmu_notifier_event_name(enum mmu_notifier_event event);

#define MMU_NOTIFIER_RANGE_BLOCKABLE (1u << 0)

struct mmu_notifier_range {
	struct mm *mm;
	hva_t start;  /* page aligned */
	hva_t end;    /* exclusive, page aligned */
	enum mmu_notifier_event event;
	unsigned int flags;
};

static inline bool mmu_notifier_range_blockable(const struct mmu_notifier_range *r)
{
	return r->flags & MMU_NOTIFIER_RANGE_BLOCKABLE;
}

struct mmu_notifier_ops {
	/* The mm is being torn down (or this subscription unregistered):
	 * drop every translation. Called once. */
	void (*release)(struct mmu_notifier *mn, struct mm *mm);
	/* Clear the accessed state of [start, end), flushing the secondary
	 * TLB; return nonzero if any of it was young. */
	int (*clear_flush_young)(struct mmu_notifier *mn, struct mm *mm,
				 hva_t start, hva_t end);
	/* The same without the flush: cheaper, approximate. */
	int (*clear_young)(struct mmu_notifier *mn, struct mm *mm,
			   hva_t start, hva_t end);
	/* Nonzero if address was young; changes nothing. */
	int (*test_young)(struct mmu_notifier *mn, struct mm *mm, hva_t address);
	/* The PTE for address now is pte (seed-era; called between start and
	 * end, so a subscriber that zaps in start finds nothing to change). */
	void (*change_pte)(struct mmu_notifier *mn, struct mm *mm, hva_t address,
			   pte_t pte);
	int (*invalidate_range_start)(struct mmu_notifier *mn,
				      const struct mmu_notifier_range *range);
	void (*invalidate_range_end)(struct mmu_notifier *mn,
				     const struct mmu_notifier_range *range);
};

struct mmu_notifier {
	const struct mmu_notifier_ops *ops;
	struct mm *mm;                          /* set by register */
	struct mmu_notifier *_Atomic next;      /* RCU list link */
	atomic_bool released;                   /* release() has been called */
	bool registered;                        /* guarded by subscriptions->lock */
};

/*
 * Subscriber API. register takes a reference on mm's struct (mmgrab) and
 * unregister drops it; unregister waits for callbacks in flight and calls
 * release() if exit has not. Errors: -EINVAL for a NULL/ops-less notifier,
 * one already registered, or (unregister) one not registered on this mm;
 * -ESRCH if the mm is already being torn down.
 */
int mmu_notifier_register(struct mmu_notifier *mn, struct mm *mm);
int mmu_notifier_unregister(struct mmu_notifier *mn, struct mm *mm);

/* Host API (called by src/host). */
bool mm_has_notifiers(struct mm *mm);
void mmu_notifier_range_init(struct mmu_notifier_range *range,
			     enum mmu_notifier_event event, unsigned int flags,
			     struct mm *mm, hva_t start, hva_t end);
/* Blockable ranges: always returns 0. */
int mmu_notifier_invalidate_range_start(struct mmu_notifier_range *range);
/* Clears BLOCKABLE; returns -EAGAIN if a subscriber would block (then no
 * matching end is owed: the subscribers that had succeeded got theirs). */
int mmu_notifier_invalidate_range_start_nonblock(struct mmu_notifier_range *range);
void mmu_notifier_invalidate_range_end(struct mmu_notifier_range *range);
void mmu_notifier_release(struct mm *mm);
int mmu_notifier_clear_flush_young(struct mm *mm, hva_t start, hva_t end);
int mmu_notifier_clear_young(struct mm *mm, hva_t start, hva_t end);
int mmu_notifier_test_young(struct mm *mm, hva_t address);
void mmu_notifier_change_pte(struct mm *mm, hva_t address, pte_t pte);

#endif
