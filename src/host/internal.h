/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what the files of src/host share and nobody else sees.
 */
#ifndef TANDEM_HOST_INTERNAL_H
#define TANDEM_HOST_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include "tandem/host.h"
#include "tandem/pgtable.h"
#include "mm_types.h"
#include "base/compiler.h"
#include "base/fault_inject.h"
#include "base/list.h"
#include "base/lock.h"

/*
 * PTE layout (x86-64): hardware bits plus software bits 9-11.
 * A present PTE maps pfn = (pte & PTE_PFN_MASK) >> PAGE_SHIFT. A non-present
 * PTE is 0 (none). _PAGE_USER clear on a present PTE means PROT_NONE: the
 * frame stays mapped but no access is allowed.
 * Upper levels (pgd, pud, pmd entries) hold PRESENT|RW|USER|ACCESSED and the
 * pfn of the next table.
 */
#define _PAGE_PRESENT  PTE_BIT_PRESENT
#define _PAGE_RW       PTE_BIT_RW
#define _PAGE_USER     (1ULL << 2)
#define _PAGE_ACCESSED (1ULL << 5)
#define _PAGE_DIRTY    (1ULL << 6)
#define _PAGE_SPECIAL  (1ULL << 9)   /* no struct page ref/rmap: zero page */
#define PTE_PFN_MASK   PTE_PFN_BITS
#define _PAGE_TABLE    (_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED)

#define PTRS_PER_TABLE 512
#define PT_LEVELS      4            /* level 4 = pgd ... level 1 = pte */
#define LEVEL_SHIFT(l) (PAGE_SHIFT + 9 * ((l) - 1))
#define LEVEL_SIZE(l)  (1ULL << LEVEL_SHIFT(l))
#define LEVEL_INDEX(a, l) (((a) >> LEVEL_SHIFT(l)) & (PTRS_PER_TABLE - 1))

/*
 * A swap entry is a non-present PTE with _PAGE_SWP set and the swap slot
 * in the pfn bits. Everything else non-present is 0 (none).
 */
#define _PAGE_SWP      (1ULL << 1)

static inline bool pte_none(pte_t p)    { return p == 0; }
static inline bool pte_is_swap(pte_t p)
{
	return !(p & _PAGE_PRESENT) && (p & _PAGE_SWP);
}
static inline uint64_t pte_swp_slot(pte_t p) { return (p & PTE_PFN_MASK) >> PAGE_SHIFT; }
static inline pte_t swp_slot_pte(uint64_t slot)
{
	return ((slot << PAGE_SHIFT) & PTE_PFN_MASK) | _PAGE_SWP;
}
static inline bool pte_present(pte_t p) { return p & _PAGE_PRESENT; }
static inline bool pte_write(pte_t p)   { return p & _PAGE_RW; }
static inline bool pte_user(pte_t p)    { return p & _PAGE_USER; }
static inline bool pte_young(pte_t p)   { return p & _PAGE_ACCESSED; }
static inline bool pte_dirty(pte_t p)   { return p & _PAGE_DIRTY; }
static inline bool pte_special(pte_t p) { return p & _PAGE_SPECIAL; }
static inline pfn_t pte_pfn(pte_t p)    { return (p & PTE_PFN_MASK) >> PAGE_SHIFT; }
static inline pte_t pfn_pte(pfn_t pfn, pte_t bits)
{
	return ((pfn << PAGE_SHIFT) & PTE_PFN_MASK) | bits;
}

#define RMAP_LOCKS 256

struct zone {
	spinlock_t lock;
	struct list_head free_list;     /* PG_buddy pages; under lock */
	pfn_t start_pfn, end_pfn;
	atomic_long nr_free;
	int nid;
};

/*
 * The swap device: a real file of nr_slots 4 KiB slots.
 *   map[slot]   swap PTEs referencing the slot (fork shares them);
 *   cache[slot] the swap-cache page for the slot, holding one reference
 *               (PG_swapcache, page->private == slot), or NULL.
 * A slot is free iff map == 0 and cache == NULL. All under lock. A page's
 * content moves between frame and slot only with PG_locked held.
 */
struct swap_info {
	int fd;
	char path[256];
	uint64_t nr_slots;
	spinlock_t lock;
	uint32_t *map;
	struct page **cache;
	uint64_t nr_free;
	uint64_t cursor;
	atomic_long fail_writes;        /* fault injection: fail the next N */
	atomic_long fail_reads;
};

/* LRU lists of anonymous pages (active, inactive), under lock. A page is on
 * one iff PG_lru; PG_active says which. Reclaim isolates pages (clears
 * PG_lru, takes a reference) before working on them. */
struct lruvec {
	spinlock_t lock;
	struct list_head active, inactive;
	long nr_active, nr_inactive;
};

struct host {
	struct host_config cfg;
	struct swap_info *swap;         /* NULL: no swap */
	struct lruvec lru;
	struct rwsem reclaim_lock;      /* read: a reclaim pass; write: the checker */
	pthread_t kswapd;
	bool kswapd_running;
	pthread_mutex_t kswapd_lock;
	pthread_cond_t kswapd_wait;
	bool kswapd_stop, kswapd_woken;
	/* mmput_async's worker (mm.c): last puts made where exit_mmap may
	 * not run, done here instead. */
	pthread_t async_put_worker;
	bool async_put_running, async_put_stop;
	pthread_mutex_t async_put_lock;
	pthread_cond_t async_put_wait;  /* work queued, or the queue drained */
	struct list_head async_put;     /* mms with mm_users == 0, not yet exited */
	int async_put_inflight;         /* taken off the queue, not yet dropped */
	/* OOM (oom.c) */
	struct mutex oom_lock;          /* one kill at a time */
	oom_notify_fn oom_notify;
	void *oom_notify_arg;
	pthread_t oom_reaper;
	bool oom_reaper_running, oom_reaper_stop;
	pthread_mutex_t oom_queue_lock;
	pthread_cond_t oom_queue_wait;
	struct list_head oom_queue;     /* victims, each mmgrab'd */
	atomic_long oom_pending;        /* victims not yet reaped */
	atomic_long oom_kills, oom_reaped_pages, oom_reap_retries;
	char *arena;
	uint64_t arena_bytes;
	struct page *pages;
	pfn_t nr_pages;
	int nr_nodes;
	struct zone zones[HOST_MAX_NODES];
	atomic_long nr_free;            /* sum over zones: the watermark check */
	atomic_uint next_node;          /* round-robin node choice */
	long wmark_min, wmark_low, wmark_high;
	struct page *zero_page;
	spinlock_t rmap_locks[RMAP_LOCKS];
	spinlock_t mm_list_lock;
	struct list_head mm_list;
	unsigned int next_mm_id;
	atomic_long nr_pgtables;
	atomic_long poison_hits;
	atomic_long events[NR_VM_EVENTS];
	pte_change_hook_t _Atomic pte_hook;
	void *_Atomic pte_hook_arg;
};

static inline void count_vm_event(struct host *host, enum vm_event_item item)
{
	atomic_fetch_add_explicit(&host->events[item], 1, memory_order_relaxed);
}

static inline bool host_break(struct host *host, enum host_break b)
{
	return host->cfg.breaks & b;
}

static inline bool is_zero_pfn(struct host *host, pfn_t pfn)
{
	return pfn == page_to_pfn(host->zero_page);
}

static inline void add_mm_counter(struct mm *mm, enum mm_counter c, long v)
{
	atomic_fetch_add_explicit(&mm->rss[c], v, memory_order_relaxed);
}

/* page_alloc.c */
#define GFP_NORECLAIM (1u << 8)  /* internal: never enter direct reclaim */
#define GFP_PGTABLE   (1u << 9)  /* internal: a page-table frame (the
				  * FAULT_SITE_PGTABLE injection site) */
struct page *alloc_page_node(struct host *host, int nid, unsigned int gfp);
void __free_page(struct page *page);
bool get_page_unless_zero(struct page *page);
bool trylock_page(struct page *page);
void unlock_page(struct page *page);
void wait_on_page_locked(struct page *page);

/* swap.c: callers hold no page_table_lock unless stated. */
int swap_init(struct host *host);
void swap_exit(struct host *host);
int add_to_swap(struct page *page);             /* page locked */
void swap_duplicate(struct host *host, uint64_t slot);
void swap_free(struct host *host, uint64_t slot);
struct page *lookup_swap_cache(struct host *host, uint64_t slot);
int swap_readpage(struct host *host, uint64_t slot, struct page *page);
int swap_writepage(struct host *host, uint64_t slot, struct page *page);
bool try_to_free_swap_locked(struct page *page);   /* page locked */
bool remove_mapping_swap(struct page *page, int expected_refs);
int swapin_page(struct host *host, uint64_t slot, struct page **pagep);
uint32_t swap_count(struct host *host, uint64_t slot);

/* oom.c */
/* mm.c */
/* Drop a user where the teardown may not run (inside an RCU read-side
 * section, e.g. reclaim called from a secondary MMU's fault): the last
 * put hands exit_mmap to the host's worker, as Linux's mmput_async. */
void mmput_async(struct mm *mm);
int mmput_async_init(struct host *host);
/* Wait until every queued teardown is done, then stop the worker. */
void mmput_async_exit(struct host *host);
/* Wait until every queued teardown is done. */
void mmput_async_drain(struct host *host);

/* page_alloc.c */
int page_alloc_init(struct host *host);
void page_alloc_exit(struct host *host);

int oom_init(struct host *host);
void oom_exit(struct host *host);
bool out_of_memory(struct host *host);

/* vmscan.c */
void lru_init(struct host *host);
void lru_cache_add(struct page *page);
void lru_del_on_free(struct page *page);
void deactivate_page(struct page *page);
unsigned long try_to_free_pages(struct host *host, unsigned long nr);
unsigned long reclaim_pages(struct host *host, struct list_head *pages, bool force);
bool isolate_lru_page(struct page *page);
int kswapd_start(struct host *host);
void kswapd_stop(struct host *host);
void wakeup_kswapd(struct host *host);
static inline bool PageFlag(const struct page *page, enum pageflags f)
{
	return atomic_load_explicit(&((struct page *)page)->flags,
				    memory_order_relaxed) & (1UL << f);
}

static inline void SetPageFlag(struct page *page, enum pageflags f)
{
	atomic_fetch_or_explicit(&page->flags, 1UL << f, memory_order_relaxed);
}
static inline void ClearPageFlag(struct page *page, enum pageflags f)
{
	atomic_fetch_and_explicit(&page->flags, ~(1UL << f), memory_order_relaxed);
}
static inline bool TestClearPageFlag(struct page *page, enum pageflags f)
{
	return atomic_fetch_and_explicit(&page->flags, ~(1UL << f),
					 memory_order_relaxed) & (1UL << f);
}
static inline int page_count(struct page *page)
{
	return atomic_load_explicit(&page->_refcount, memory_order_relaxed);
}
static inline int page_mapcount(struct page *page)
{
	return atomic_load_explicit(&page->_mapcount, memory_order_relaxed);
}

/* pgtable.c: page-table walks; callers hold mm->page_table_lock. */
pte_t *pte_offset(struct mm *mm, hva_t addr);          /* NULL if no table */
pte_t *pte_alloc(struct mm *mm, hva_t addr);           /* NULL on -ENOMEM */
int pte_alloc_prepare(struct mm *mm, hva_t addr);      /* mmap_lock held */
void set_pte(struct mm *mm, hva_t addr, pte_t *ptep, pte_t pte);
pte_t *pgtable_alloc(struct mm *mm, pfn_t *pfn, unsigned int gfp);
void free_pgtables(struct mm *mm, hva_t start, hva_t end, hva_t floor,
		   hva_t ceiling);
static inline pte_t *pfn_table(struct host *host, pfn_t pfn)
{
	return (pte_t *)(host->arena + (pfn << PAGE_SHIFT));
}

/* Walk the present-or-swap leaf PTEs of [start, end): calls fn for each
 * non-none PTE; stops early if fn returns nonzero (and returns that). */
typedef int (*pte_walk_fn)(struct mm *mm, hva_t addr, pte_t *ptep, void *arg);
int walk_pte_range(struct mm *mm, hva_t start, hva_t end, pte_walk_fn fn,
		   void *arg);

/* rmap.c: called under the mapping mm's page_table_lock. */
struct rmap_item {
	struct mm *mm;
	hva_t addr;
	struct rmap_item *next;
};
int page_add_anon_rmap(struct page *page, struct mm *mm, hva_t addr); /* 0, -ENOMEM */
void page_remove_rmap(struct page *page, struct mm *mm, hva_t addr);
bool page_rmap_contains(struct page *page, struct mm *mm, hva_t addr);
int page_rmap_count(struct page *page);
spinlock_t *page_rmap_lock(struct page *page);
typedef bool (*rmap_one_fn)(struct page *page, struct mm *mm, hva_t addr, void *arg);
int rmap_walk(struct page *page, rmap_one_fn fn, void *arg);
pte_t *page_pte_locked(struct page *page, struct mm *mm, hva_t addr);
int page_referenced(struct page *page, bool flush);
int page_referenced_ex(struct page *page, bool flush, int *secondary);

/* vma.c: callers hold mmap_lock (write to change the array). */
struct vm_area_struct *find_vma(struct mm *mm, hva_t addr); /* first vm_end > addr */
struct vm_area_struct *vma_lookup(struct mm *mm, hva_t addr);
unsigned int vma_index(struct mm *mm, hva_t addr);      /* first vm_end > addr */
int vma_prealloc(struct mm *mm, unsigned int nr);
int vma_insert(struct mm *mm, struct vm_area_struct *vma);
void vma_remove_index(struct mm *mm, unsigned int idx);
void vma_remove_range(struct mm *mm, unsigned int idx, unsigned int nr);
int vma_split(struct mm *mm, unsigned int idx, hva_t addr);
void vma_merge_around(struct mm *mm, hva_t start, hva_t end);
bool vma_range_mapped(struct mm *mm, hva_t start, hva_t end);
int get_unmapped_area(struct mm *mm, uint64_t len, hva_t *out);
unsigned long prot_to_vm_flags(int prot);

/* mm.c */
void zap_page_range_locked(struct mm *mm, hva_t start, hva_t end);
int do_munmap(struct mm *mm, hva_t start, hva_t end, bool notify);
int mm_validate_range(hva_t addr, uint64_t len, hva_t *end);

/* fault.c: called with mmap_lock held (any mode). */
#define FAULT_FLAG_WRITE (1u << 0)
int handle_mm_fault(struct vm_area_struct *vma, hva_t addr, unsigned int flags);

/* gup.c: with mmap_lock held for read. */
int __get_user_page_locked(struct mm *mm, hva_t addr, unsigned int gup_flags,
			   struct page **pagep, bool *writable);

static inline void call_pte_hook(struct mm *mm, hva_t addr, pte_t old, pte_t new)
{
	struct host *host = mm->host;
	pte_change_hook_t hook = atomic_load_explicit(&host->pte_hook,
						      memory_order_acquire);
	if (unlikely(hook))
		hook(atomic_load_explicit(&host->pte_hook_arg, memory_order_relaxed),
		     mm, addr, old, new);
}

#endif
