/* SPDX-License-Identifier: MIT */
/*
 * mm_types.h - (private to src/host) the primary MMU's core objects: frames (struct page),
 * address spaces (struct mm) and their areas (struct vm_area_struct).
 *
 * Lock order (outermost first):
 *   mm->mmap_lock  >  notifier range_lock (held across start..end)
 *                  >  mm->page_table_lock  >  page rmap lock  >  zone lock
 * A subscriber's callbacks run with the range_lock held for read and none of
 * the others; the host never holds page_table_lock across a notifier call.
 */
#ifndef TANDEM_HOST_MM_TYPES_H
#define TANDEM_HOST_MM_TYPES_H

#include <stdatomic.h>
#include "tandem/types.h"
#include "tandem/mmu_notifier.h"
#include "base/list.h"
#include "base/lock.h"

/*
 * Per-mm state, embedded in struct mm.
 *   lock       serializes list updates (register, unregister, release).
 *   range_lock is held for read from invalidate_range_start to _end, and
 *              for write by register, so no subscriber joins mid-range.
 */
struct mmu_notifier_subscriptions {
	struct mmu_notifier *_Atomic list;
	spinlock_t lock;
	struct rwsem range_lock;
	atomic_int nr;                          /* subscribers on the list */
	atomic_long nr_calls[MMU_NOTIFY_NR_EVENTS];  /* range starts by event */
	atomic_long nr_young_calls;
};

void mmu_notifier_subscriptions_init(struct mmu_notifier_subscriptions *subs);
void mmu_notifier_subscriptions_destroy(struct mmu_notifier_subscriptions *subs);

struct host;

enum pageflags {
	PG_locked,      /* frame is being worked on (migration, swap I/O) */
	PG_referenced,  /* second-chance bit for LRU aging */
	PG_dirty,       /* content differs from any backing copy */
	PG_lru,         /* on an LRU list */
	PG_active,      /* on the active LRU list */
	PG_swapbacked,  /* anonymous: backed by swap when reclaimed */
	PG_swapcache,   /* in the swap cache; private holds the swap entry */
	PG_ksm,         /* merged KSM page */
	PG_idle,        /* idle page tracking: not accessed since marked */
	PG_reserved,    /* never freed, never refcounted (the zero page) */
	PG_pgtable,     /* holds a page table */
	PG_anon,        /* anonymous page mapped by private VMAs */
	PG_buddy,       /* free, on a zone's free list */
	NR_PAGEFLAGS
};

struct rmap_item;

/*
 * struct page - one per 4 KiB frame of the RAM arena.
 *
 * _refcount  every PTE mapping holds one reference; GUP, the swap cache and
 *            in-flight work hold others. 0 iff the frame is free.
 * _mapcount  number of PTEs mapping the frame; always equal to the length
 *            of the rmap list (checked by host_check_invariants()).
 * rmap       list of (mm, address) mapping this frame; guarded by the
 *            page's rmap lock (hashed by pfn, see rmap.c).
 * lru        zone free list while PG_buddy, else LRU list membership.
 */
struct page {
	atomic_ulong flags;
	atomic_int _refcount;
	atomic_int _mapcount;
	struct list_head lru;
	struct rmap_item *rmap;
	unsigned long private;
	int nid;
	struct host *host;
};

/* VMA flags. */
#define VM_READ       0x00000001UL
#define VM_WRITE      0x00000002UL
#define VM_EXEC       0x00000004UL
#define VM_ACCESS_FLAGS (VM_READ | VM_WRITE | VM_EXEC)
#define VM_MERGEABLE  0x80000000UL  /* KSM may merge its pages */

struct vm_area_struct {
	hva_t vm_start;
	hva_t vm_end;           /* exclusive */
	unsigned long vm_flags;
	struct mm *vm_mm;
};

/*
 * struct mm - one address space.
 *
 * mm_users counts users of the address space (the VMM "process", forks in
 * flight, GUP in progress); at zero the mappings are torn down (exit_mmap).
 * mm_count counts references to the struct itself (one held collectively
 * by the users, plus one per notifier subscription); at zero it is freed.
 *
 * vmas[] is sorted by address and non-overlapping; reading it needs
 * mmap_lock (any mode), changing it needs mmap_lock for write.
 * Page-table entries change only under page_table_lock, through set_pte().
 */
struct mm {
	struct host *host;
	unsigned int id;
	struct rwsem mmap_lock;
	spinlock_t page_table_lock;
	pfn_t pgd_pfn;
	pte_t *pgd;

	struct vm_area_struct **vmas;
	unsigned int nr_vmas;
	unsigned int vma_cap;

	atomic_long rss[NR_MM_COUNTERS];
	atomic_long nr_pgtables;        /* page-table pages below pgd */
	atomic_int mm_users;
	atomic_int mm_count;
	atomic_bool exiting;            /* exit_mmap has begun */
	atomic_bool oom_victim;         /* chosen by the OOM killer: faults fail */
	atomic_bool oom_reaped;         /* the reaper has unmapped it */
	struct list_head oom_link;      /* the reaper's queue */
	struct list_head async_put_link; /* host->async_put, mmput_async */

	struct mmu_notifier_subscriptions notifier_subscriptions;
	struct list_head mmlist;        /* host->mm_list, under host->mm_list_lock */
};

#endif
