/* SPDX-License-Identifier: MIT */
/*
 * host.h - the primary MMU: RAM frames, address spaces, faults, GUP.
 *
 * Functions return 0 (or a count) on success and a negative errno on
 * failure, each errno with one meaning:
 *   -EINVAL  malformed request (unaligned address, zero length where an
 *            operation needs one, unknown flag/advice, bad config)
 *   -ENOMEM  out of frames, or the address range is outside the address
 *            space (a length that overflows when page-aligned included) /
 *            no room for a mapping, or (mprotect, madvise) a hole in the
 *            range. munmap reports an out-of-space range as -EINVAL, as
 *            munmap(2) does.
 *   -EFAULT  no mapping at the address, or the access is not permitted
 *   -EEXIST  MAP_FIXED_NOREPLACE over an existing mapping
 *   -ESRCH   the address space is exiting
 * A failed call leaves no side effect unless its comment says otherwise.
 */
#ifndef TANDEM_HOST_H
#define TANDEM_HOST_H

#include <errno.h>
#include <sys/mman.h>
#include "tandem/types.h"

struct host;      /* a host: RAM, swap, its address spaces */
struct mm;        /* one address space (a VMM process) */
struct page;      /* one 4 KiB frame of RAM */

/* The address space: [TASK_UNMAPPED_FLOOR, TASK_SIZE). */
#define TASK_SIZE            (1ULL << 47)
#define TASK_UNMAPPED_FLOOR  0x10000ULL

#define HOST_RAM_MIN   (16ULL << 20)
#define HOST_RAM_MAX   (64ULL << 30)
#define HOST_MAX_NODES 8
#define HOST_SWAP_MAX  (256ULL << 30)

/*
 * Test-only switches that each skip one class of notifier call, so that
 * a conformance test can prove it notices. Never set outside tests.
 */
enum host_break {
	HOST_BREAK_NONE          = 0,
	HOST_BREAK_MUNMAP_NOTIFY   = 1u << 0,
	HOST_BREAK_DONTNEED_NOTIFY = 1u << 1,
	HOST_BREAK_MPROTECT_NOTIFY = 1u << 2,
	HOST_BREAK_COW_NOTIFY      = 1u << 3,
	HOST_BREAK_FORK_NOTIFY     = 1u << 4,
};

struct host_config {
	uint64_t ram_bytes;     /* HOST_RAM_MIN..HOST_RAM_MAX, multiple of PAGE_SIZE */
	int nr_nodes;           /* NUMA nodes the RAM is split across; 0 means 1 */
	bool prefault;          /* touch the arena at start (stable timings) */
	unsigned int breaks;    /* enum host_break; tests only */
	/* Debug builds check that freed frames stay poisoned. Normally a
	 * write into a freed frame is a BUG; with poison_count_only it is
	 * counted (host_stats.poison_hits) and reported, for runs that break
	 * a protocol on purpose to watch the damage. */
	bool poison_count_only;
	/* Swap: a real file of swap_bytes (0: no swap). swap_path NULL puts
	 * it in $TMPDIR (or /tmp); the file is unlinked at once either way
	 * unless keep_swap_file. */
	uint64_t swap_bytes;
	const char *swap_path;
	bool keep_swap_file;
	/* Reclaim: kswapd runs when free frames drop below the low
	 * watermark, up to high; direct reclaim when an allocation fails. */
	bool no_kswapd;
	/* OOM killer: without it an allocation that finds nothing to reclaim
	 * fails with -ENOMEM; with it, the largest mm is killed first. */
	bool oom_killer;
};

enum vm_event_item {
	PGFAULT,            /* handle_mm_fault calls */
	PGFAULT_ZERO,       /* demand-zero page allocated */
	PGFAULT_ZERO_PAGE,  /* read fault mapped the shared zero page */
	COW_BREAK,          /* write fault copied a shared page */
	COW_REUSE,          /* write fault reused an exclusive page */
	PGUNMAP,            /* PTEs of present pages removed */
	GUP_CALLS,
	PGALLOC,
	PGFREE,
	PGALLOC_FAIL,
	PSWPIN,             /* pages read from swap */
	PSWPOUT,            /* pages written to swap */
	SWAP_WRITE_ERROR,   /* failed swap writes (page kept, still dirty) */
	SWAP_READ_ERROR,    /* failed swap reads (the fault fails with -EIO) */
	PGSCAN,             /* pages looked at by reclaim */
	PGSTEAL,            /* pages reclaimed */
	PGACTIVATE,         /* referenced pages moved back to active */
	PGDEACTIVATE,
	PGREFERENCED_SECONDARY, /* referenced only through a secondary MMU */
	KSWAPD_WAKEUP,
	ALLOCSTALL,         /* direct reclaims */
	NR_VM_EVENTS
};

struct host_stats {
	uint64_t ram_pages;
	uint64_t free_pages;
	uint64_t pgtable_pages;     /* all mms' page-table pages, pgd included */
	uint64_t reserved_pages;    /* the zero page */
	uint64_t nr_mms;
	uint64_t watermark_min, watermark_low, watermark_high;
	uint64_t events[NR_VM_EVENTS];
	uint64_t notifier_starts;   /* invalidate_range_start calls, all mms */
	uint64_t poison_hits;       /* freed frames found written (debug builds) */
	uint64_t swap_slots, swap_free_slots;
	uint64_t lru_active, lru_inactive;
	uint64_t oom_kills, oom_reaped_pages, oom_reap_retries;
};

/*
 * OOM. When an allocation finds no free frame even after direct reclaim
 * (RAM and swap exhausted), the OOM killer picks the mm with the most
 * resident + swapped pages, marks it (its faults fail with -ENOMEM from
 * then on), calls the notify function -- from the allocating thread, with
 * no lock held: the VMM stops whatever runs on that mm, without waiting
 * for it (the allocating thread may be one of the victim's vCPUs) -- and
 * hands it to the OOM reaper thread, which unmaps its memory with
 * non-blockable invalidations, retrying while a secondary MMU says it
 * would block. The allocation retries meanwhile.
 */
typedef void (*oom_notify_fn)(void *arg, struct mm *victim, uint64_t pages);
void host_set_oom_notify(struct host *host, oom_notify_fn fn, void *arg);
bool mm_is_oom_victim(struct mm *mm);

/* Fault injection (tests, tandem run): fail the next n swap writes/reads. */
void host_swap_inject_failures(struct host *host, long writes, long reads);
/* Reclaim nr pages now (as kswapd would); returns pages reclaimed. */
unsigned long host_reclaim(struct host *host, unsigned long nr);

/* Host lifetime. host_destroy returns -EBUSY (and frees nothing) while any
 * mm is alive. */
int host_create(const struct host_config *cfg, struct host **out);
int host_destroy(struct host *host);
void host_get_stats(struct host *host, struct host_stats *st);
const char *vm_event_name(enum vm_event_item item);

/*
 * Debug checker: walks every mm's page tables and every frame; checks that
 * each frame's mapcount equals the PTEs mapping it and its rmap list, that
 * refcount >= mapcount, and that free + allocated + page-table + reserved
 * frames add up to RAM. Call only while nothing else runs. Returns 0,
 * -EUCLEAN after printing the violations found (the first 20), or -EINVAL
 * for a NULL host.
 */
int host_check_invariants(struct host *host);
/* Frames not free (other than reserved ones): 0 after a clean teardown. */
uint64_t host_frames_in_use(struct host *host);

/* Test hook: called under the mm's page_table_lock on every PTE change. */
typedef void (*pte_change_hook_t)(void *arg, struct mm *mm, hva_t addr,
				  pte_t old, pte_t new);
void host_set_pte_hook(struct host *host, pte_change_hook_t hook, void *arg);

/* Frames. */
#define GFP_ZERO   (1u << 0)    /* zero the frame */
#define GFP_ATOMIC (1u << 1)    /* may dip below the min watermark */
struct page *alloc_page(struct host *host, unsigned int gfp);
void get_page(struct page *page);
void put_page(struct page *page);   /* frees at refcount 0 */
pfn_t page_to_pfn(const struct page *page);
struct page *pfn_to_page(struct host *host, pfn_t pfn);
void *page_address(const struct page *page);
struct host *page_host(const struct page *page);
void set_page_dirty(struct page *page);
void mark_page_accessed(struct page *page);

/* Address spaces. mm_create returns an mm with mm_users = 1. */
enum mm_counter {
	MM_ANONPAGES,   /* resident anonymous pages */
	MM_SWAPENTS,    /* swap entries in page tables */
	NR_MM_COUNTERS
};
/* The mm's counter now (never below 0), and the host it belongs to. */
uint64_t get_mm_counter(struct mm *mm, enum mm_counter member);
struct host *mm_host(struct mm *mm);
int mm_create(struct host *host, struct mm **out);
void mmget(struct mm *mm);
bool mmget_not_zero(struct mm *mm);
void mmput(struct mm *mm);      /* the last user tears the mappings down */
void mmgrab(struct mm *mm);
void mmdrop(struct mm *mm);     /* the last reference frees the struct */

/*
 * mmap-like calls. Only private anonymous memory: flags may hold
 * MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE (MAP_SHARED
 * and anything else: -EINVAL). prot is PROT_NONE or a mix of PROT_READ,
 * PROT_WRITE, PROT_EXEC.
 */
int mm_mmap(struct mm *mm, hva_t addr, uint64_t len, int prot, int flags,
	    hva_t *out);
int mm_munmap(struct mm *mm, hva_t addr, uint64_t len);
int mm_mprotect(struct mm *mm, hva_t addr, uint64_t len, int prot);
/* advice: MADV_DONTNEED drops the pages; MADV_NORMAL, MADV_RANDOM,
 * MADV_SEQUENTIAL and MADV_WILLNEED are accepted and do nothing; others
 * come with later features (-EINVAL until then). mm_mprotect and mm_madvise
 * accept a zero length as a no-op, as mprotect(2)/madvise(2) do. */
int mm_madvise(struct mm *mm, hva_t addr, uint64_t len, int advice);
/* Copy-on-write fork: *child gets mm_users = 1. */
int mm_fork(struct mm *parent, struct mm **child);

/*
 * GUP: fault the page at addr in (for write, breaking COW) and return it
 * with a reference; *writable says whether the PTE allows writes now.
 * Takes mmap_lock for read itself. No long-term pin: the caller drops the
 * reference with put_page() as soon as it has used or mapped the page.
 */
#define FOLL_WRITE   (1u << 0)  /* fault for write */
#define FOLL_NOFAULT (1u << 1)  /* only if already mapped: -EFAULT otherwise */
int get_user_page(struct mm *mm, hva_t addr, unsigned int gup_flags,
		  struct page **pagep, bool *writable);

/* Copy bytes to/from an address space like process_vm_readv/writev,
 * faulting as needed and setting accessed/dirty. Returns len or -errno
 * (nothing is written past the first failing page). */
int64_t mm_read(struct mm *mm, hva_t addr, void *buf, uint64_t len);
int64_t mm_write(struct mm *mm, hva_t addr, const void *buf, uint64_t len);

/* Read the PTE for addr (0 if none, or for a NULL mm); for tests and tools. */
pte_t mm_lookup_pte(struct mm *mm, hva_t addr);

/*
 * Idle page tracking (src/host/idle.c), like /sys/kernel/mm/page_idle.
 * Only user pages take part (on an LRU list or mapped); free, reserved and
 * page-table frames are skipped and never reported idle.
 *
 * page_idle_mark: for each user page in pfns [start, start + nr), clear its
 * young state -- host PTEs' accessed bits, and secondary MMUs' through
 * mmu_notifier_clear_young (no secondary TLB flush, as in Linux and KVM) --
 * then mark it idle (PG_idle). Returns the number of pages marked.
 * page_idle_get: bit i of bitmap (word i / 64, bit i % 64; (nr + 63) / 64
 * words, all written) says whether pfn start + i is still idle: marked, and
 * no mapping young since (the check clears the young bits it consumes and
 * the mark of a page found used). Returns the number of idle pages.
 * Because no secondary TLB is flushed, a guest access that hits a vCPU's
 * soft TLB entry which outlived the mark goes unseen (the page reads idle).
 * Both return -EINVAL for a NULL host or bitmap, or a range beyond RAM.
 *
 * mm_idle_mark_range / mm_idle_count_range: the same for the frames mapped
 * (present, not the zero page) in [start, end) of mm, for a VMM sizing a
 * guest's working set: mark them; then count those still idle (*idle) and
 * those mapped (*mapped; either pointer may be NULL), the working set being
 * mapped - idle. These ask secondary MMUs for clear_flush_young (in both
 * passes): a young page's secondary TLB entries are flushed, so later
 * guest accesses are seen and the count is exact, for one flush request per
 * young page. Do not mix in page_idle_* over the same pages meanwhile.
 * Return the pages marked / 0, -EINVAL (NULL mm, unaligned or inverted
 * range, end > TASK_SIZE) or -ESRCH (the mm is exiting). A zero-length
 * range does nothing.
 *
 * All four are called with no lock held and may sleep.
 */
int page_idle_mark(struct host *host, pfn_t start, uint64_t nr);
int page_idle_get(struct host *host, pfn_t start, uint64_t nr, uint64_t *bitmap);
int mm_idle_mark_range(struct mm *mm, hva_t start, hva_t end);
int mm_idle_count_range(struct mm *mm, hva_t start, hva_t end, uint64_t *idle,
			uint64_t *mapped);

#endif
