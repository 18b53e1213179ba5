/* SPDX-License-Identifier: MIT */
/*
 * stress_conformance.c - MMU notifier conformance of the primary MMU.
 *
 * A test subscriber, the "shadow MMU", caches hva -> frame translations
 * exactly as a secondary MMU does (KVM's fault path: snapshot the
 * invalidation sequence, GUP without the lock, take the lock, retry if an
 * invalidation ran or is running over the address, record, drop the page
 * reference). The host's PTE hook is the judge: on every removal or
 * downgrade of a PTE of the watched mm it asserts that
 *
 *   (a) the shadow MMU holds no translation for that address (the covering
 *       invalidate_range_start already dropped it), and
 *   (b) an invalidation covering the address is in progress: the shadow
 *       MMU's in-progress count is non-zero and its union range covers the
 *       address (what KVM's mmu_invalidate_retry_gfn relies on), and
 *   (c) stricter: the thread changing the PTE is itself between start and
 *       end of a range covering it (start and end run on the changing
 *       thread, so a bracket is per-thread),
 *
 * unless the subscriber was released (exit). It also checks that a cached
 * translation never points at a freed frame, that change_pte finds nothing
 * cached, and, at quiescence, that every cached translation agrees with the
 * host PTE (same frame, never writable where the PTE is not).
 *
 * Why the fill is safe (the protocol under test), as a timeline:
 *
 *   filler                               host (unmap / COW / protect)
 *   ---------------------------------    ---------------------------------
 *   lock; seq0 = seq; unlock
 *   GUP: page P, PTE maps P              start: lock; count++; widen; drop
 *                                              cached [s, e); unlock
 *                                        change the PTE (hook checks a-c)
 *                                        end: lock; seq++; count--; unlock
 *   lock
 *   count && addr in range -> retry      (start ran, end has not)
 *   seq != seq0            -> retry      (end ran as well)
 *   else record P; unlock; put_page(P)
 *
 * A translation recorded under the lock therefore always post-dates every
 * invalidation of its address that could have made P stale, and any later
 * change must pass through a start, which drops it first.
 *
 * Tests:
 *  - conformance_random: >= 100,000 random host operations on one mm from
 *    3 mutator threads (write, read, MADV_DONTNEED, mprotect down and back
 *    up, munmap + MAP_FIXED remap, MAP_FIXED over a mapping, fork + child
 *    writes + exit, GUP), while 2 filler threads fill the shadow MMU
 *    (>= 50,000 successful fills racing the mutators). Each mutator also
 *    owns a private region whose every byte it knows, and checks what it
 *    reads back there (DONTNEED and remap give zeroes, mprotect and a
 *    child's writes change nothing, COW keeps the parent's data). Then the
 *    quiescent check, then an exit race (the last mmput while fillers
 *    fault). Zero violations, zero integrity errors, the host invariants
 *    hold and every frame comes back.
 *  - break_*: each HOST_BREAK_* switch skips one class of invalidation. A
 *    focused deterministic scenario (fill translations, then munmap /
 *    DONTNEED / mprotect / COW-break / fork) has zero violations without
 *    the switch and some with it, and the random workload with the switch
 *    (stopping at the first violation) must report violations.
 *  - broken_fill_is_caught: a shadow MMU whose fill skips the retry check
 *    fails the random workload: the fills really race the invalidations.
 *
 * Knobs (environment): TANDEM_CONFORMANCE_OPS (mutator host calls, default
 * 100000), TANDEM_CONFORMANCE_FILLS (racing fills, 50000),
 * TANDEM_CONFORMANCE_MIN_SECONDS (run at least, 2),
 * TANDEM_CONFORMANCE_SECONDS (time cap, 300; the targets must be met
 * before it), TANDEM_CONFORMANCE_SEED. Threads interleave freely, so a
 * seed fixes the choice of operations, not the schedule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tandem/host.h"
#include "tandem/mmu_notifier.h"
#include "host/internal.h"
#include "base/prng.h"
#include "harness/util.h"

/*
 * The workload's address window: NR_REGIONS shared regions with gaps
 * between, which every mutator changes at random, then one private region
 * per mutator, which only its owner changes (so it knows what each byte
 * must hold: the data-integrity check).
 */
#define NR_MUTATORS    3
#define WINDOW_BASE    0x40000000ULL
#define REGION_PAGES   64                              /* 256 KiB */
#define REGION_STRIDE  ((REGION_PAGES + 16) * PAGE_SIZE) /* 64 KiB gap */
#define NR_REGIONS     4
#define SHARED_SPAN    (NR_REGIONS * REGION_STRIDE)
#define PRIV_PAGES     8
#define PRIV_BYTES     (PRIV_PAGES * PAGE_SIZE)
#define PRIV_STRIDE    ((PRIV_PAGES + 8) * PAGE_SIZE)
#define WINDOW_PAGES   ((SHARED_SPAN + NR_MUTATORS * PRIV_STRIDE) / PAGE_SIZE)

#define NR_FILLERS     2
#define DEFAULT_OPS    100000
#define DEFAULT_FILLS  50000
#define FILL_MAX_TRIES 1000

enum violation {
	V_CACHED,       /* removal/downgrade while a translation was cached */
	V_UNCOVERED,    /* ... with no in-progress invalidation covering it */
	V_THREAD,       /* ... by a thread not inside a covering range */
	V_CHANGE_PTE,   /* change_pte found a cached translation */
	V_STALE_FRAME,  /* a cached translation points at a freed frame */
	V_FINAL,        /* at quiescence, a translation disagrees with the PTE */
	V_REFILL,       /* a fill found the frame or permission changed under a
			 * cached translation, with no invalidation between */
	V_UNBALANCED,   /* end without start, or a range stack overflow */
	NR_VIOLATIONS
};

static const char *const violation_names[NR_VIOLATIONS] = {
	[V_CACHED] = "cached", [V_UNCOVERED] = "uncovered",
	[V_THREAD] = "thread-uncovered", [V_CHANGE_PTE] = "change_pte",
	[V_STALE_FRAME] = "stale-frame", [V_FINAL] = "final", [V_REFILL] = "refill",
	[V_UNBALANCED] = "unbalanced",
};

/* One cached translation ("spte"): the slot array is indexed by page. */
struct spte {
	pfn_t pfn;
	bool present, writable, young;
};

/*
 * The shadow MMU. Everything below lock is guarded by it; the slot is the
 * window [slot_base, slot_base + slot_pages pages), like a KVM memslot.
 */
struct shadow_mmu {
	struct mmu_notifier mn;
	struct host *host;
	struct mm *mm;
	hva_t slot_base;
	uint64_t slot_pages;
	struct mm *_Atomic watched;     /* the hook checks this mm */

	pthread_mutex_t lock;
	long inv_count;                 /* invalidations in progress */
	hva_t inv_start, inv_end;       /* their union, while inv_count > 0 */
	uint64_t seq;                   /* bumped by every end, before count-- */
	bool released;
	struct spte *sptes;
	long nr_sptes;
	/* statistics */
	uint64_t nr_starts, nr_ends, nr_zapped, nr_change_pte, nr_young_calls;
	uint64_t nr_checked;            /* removals/downgrades seen by the hook */
	uint64_t nr_checked_released;
	uint64_t starts_by_event[MMU_NOTIFY_NR_EVENTS];

	atomic_long violations[NR_VIOLATIONS];
	atomic_long nr_reported;
	bool no_retry;                  /* broken fill: skips the retry check */
	bool broken;                    /* a HOST_BREAK_* or no_retry: expect some */
};

/*
 * Ranges this thread has opened on a shadow MMU and not yet closed: start
 * and end of one range run on the thread that changes the PTEs.
 */
#define TL_MAX_OPEN 8
static __thread struct {
	const struct shadow_mmu *s;
	hva_t start, end;
} tl_open[TL_MAX_OPEN];
static __thread int tl_depth;

static void violation(struct shadow_mmu *s, enum violation v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void violation(struct shadow_mmu *s, enum violation v, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&s->violations[v], 1);
	if (atomic_fetch_add(&s->nr_reported, 1) >= (s->broken ? 3 : 8))
		return;
	va_start(ap, fmt);
	fprintf(stderr, "conformance: %sVIOLATION %s: ",
		s->broken ? "(expected, broken on purpose) " : "",
		violation_names[v]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static long total_violations(struct shadow_mmu *s)
{
	long n = 0;

	for (int v = 0; v < NR_VIOLATIONS; v++)
		n += atomic_load(&s->violations[v]);
	return n;
}

static inline struct shadow_mmu *to_shadow(struct mmu_notifier *mn)
{
	return container_of(mn, struct shadow_mmu, mn);
}

/* The slot entry for addr, or NULL outside the slot. Under s->lock. */
static struct spte *spte_of(struct shadow_mmu *s, hva_t addr)
{
	if (addr < s->slot_base)
		return NULL;
	uint64_t i = (addr - s->slot_base) >> PAGE_SHIFT;
	return i < s->slot_pages ? &s->sptes[i] : NULL;
}

/* Called with s->lock held. */
static void shadow_zap_range_locked(struct shadow_mmu *s, hva_t start, hva_t end)
{
	hva_t slot_end = s->slot_base + s->slot_pages * PAGE_SIZE;

	start = MAX(start, s->slot_base);
	end = MIN(end, slot_end);
	for (hva_t a = start; a < end; a += PAGE_SIZE) {
		struct spte *sp = spte_of(s, a);

		if (sp->present) {
			sp->present = false;
			s->nr_sptes--;
			s->nr_zapped++;
		}
	}
}

/* Called with s->lock held. */
static bool invalidation_covers_locked(struct shadow_mmu *s, hva_t addr)
{
	return s->inv_count > 0 && s->inv_start <= addr && addr < s->inv_end;
}

static bool this_thread_covers(const struct shadow_mmu *s, hva_t addr)
{
	for (int i = 0; i < tl_depth; i++)
		if (tl_open[i].s == s && tl_open[i].start <= addr && addr < tl_open[i].end)
			return true;
	return false;
}

static int shadow_invalidate_range_start(struct mmu_notifier *mn,
					 const struct mmu_notifier_range *range)
{
	struct shadow_mmu *s = to_shadow(mn);

	if (mmu_notifier_range_blockable(range))
		pthread_mutex_lock(&s->lock);
	else if (pthread_mutex_trylock(&s->lock))
		return -EAGAIN;
	if (tl_depth < TL_MAX_OPEN) {
		tl_open[tl_depth].s = s;
		tl_open[tl_depth].start = range->start;
		tl_open[tl_depth].end = range->end;
		tl_depth++;
	} else {
		violation(s, V_UNBALANCED, "more than %d nested ranges", TL_MAX_OPEN);
	}
	if (s->inv_count++ == 0) {
		s->inv_start = range->start;
		s->inv_end = range->end;
	} else {
		/* The union only grows until every invalidation has ended. */
		s->inv_start = MIN(s->inv_start, range->start);
		s->inv_end = MAX(s->inv_end, range->end);
	}
	shadow_zap_range_locked(s, range->start, range->end);
	s->nr_starts++;
	if ((unsigned int)range->event < MMU_NOTIFY_NR_EVENTS)
		s->starts_by_event[range->event]++;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void shadow_invalidate_range_end(struct mmu_notifier *mn,
					const struct mmu_notifier_range *range)
{
	struct shadow_mmu *s = to_shadow(mn);
	int i;

	pthread_mutex_lock(&s->lock);
	/* seq before count: a filler that sees the count drop sees seq move. */
	s->seq++;
	if (--s->inv_count < 0) {
		violation(s, V_UNBALANCED, "end [%#llx, %#llx) without start",
			  (unsigned long long)range->start,
			  (unsigned long long)range->end);
		s->inv_count = 0;
	}
	if (s->inv_count == 0)
		s->inv_start = s->inv_end = 0;
	s->nr_ends++;
	pthread_mutex_unlock(&s->lock);

	for (i = tl_depth - 1; i >= 0; i--)
		if (tl_open[i].s == s && tl_open[i].start == range->start &&
		    tl_open[i].end == range->end)
			break;
	if (i < 0) {
		violation(s, V_UNBALANCED, "end [%#llx, %#llx) on a thread without its start",
			  (unsigned long long)range->start,
			  (unsigned long long)range->end);
		return;
	}
	for (; i < tl_depth - 1; i++)
		tl_open[i] = tl_open[i + 1];
	tl_depth--;
}

static void shadow_release(struct mmu_notifier *mn, struct mm *mm)
{
	struct shadow_mmu *s = to_shadow(mn);

	pthread_mutex_lock(&s->lock);
	shadow_zap_range_locked(s, 0, TASK_SIZE);
	s->released = true;
	pthread_mutex_unlock(&s->lock);
}

static void shadow_change_pte(struct mmu_notifier *mn, struct mm *mm,
			      hva_t addr, pte_t pte)
{
	struct shadow_mmu *s = to_shadow(mn);
	struct spte *sp;

	pthread_mutex_lock(&s->lock);
	s->nr_change_pte++;
	sp = spte_of(s, addr);
	/* Called between start and end: start dropped it, fills retry. */
	if (sp && sp->present) {
		violation(s, V_CHANGE_PTE, "addr %#llx cached pfn %llu, new pte %#llx",
			  (unsigned long long)addr, (unsigned long long)sp->pfn,
			  (unsigned long long)pte);
		sp->present = false;
		s->nr_sptes--;
	}
	pthread_mutex_unlock(&s->lock);
}

static int shadow_age(struct shadow_mmu *s, hva_t start, hva_t end, bool clear)
{
	int young = 0;

	pthread_mutex_lock(&s->lock);
	s->nr_young_calls++;
	for (hva_t a = start & PAGE_MASK; a < end; a += PAGE_SIZE) {
		struct spte *sp = spte_of(s, a);

		if (sp && sp->present && sp->young) {
			young = 1;
			if (clear)
				sp->young = false;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return young;
}

static int shadow_clear_flush_young(struct mmu_notifier *mn, struct mm *mm,
				    hva_t start, hva_t end)
{
	return shadow_age(to_shadow(mn), start, end, true);
}

static int shadow_clear_young(struct mmu_notifier *mn, struct mm *mm,
			      hva_t start, hva_t end)
{
	return shadow_age(to_shadow(mn), start, end, true);
}

static int shadow_test_young(struct mmu_notifier *mn, struct mm *mm, hva_t addr)
{
	return shadow_age(to_shadow(mn), addr, addr + PAGE_SIZE, false);
}

static const struct mmu_notifier_ops shadow_ops = {
	.release = shadow_release,
	.clear_flush_young = shadow_clear_flush_young,
	.clear_young = shadow_clear_young,
	.test_young = shadow_test_young,
	.change_pte = shadow_change_pte,
	.invalidate_range_start = shadow_invalidate_range_start,
	.invalidate_range_end = shadow_invalidate_range_end,
};

/*
 * The checker, run by the host under mm->page_table_lock on every leaf PTE
 * change. Lock order: page_table_lock > s->lock (nothing takes them the
 * other way round: the shadow MMU never calls the host with s->lock held).
 */
static void conformance_pte_hook(void *arg, struct mm *mm, hva_t addr,
				 pte_t old, pte_t new)
{
	struct shadow_mmu *s = arg;
	struct spte *sp;

	if (mm != atomic_load_explicit(&s->watched, memory_order_relaxed))
		return;
	if (!pte_present(old))
		return; /* an install: never needs an invalidation */
	bool removal = !pte_present(new) || pte_pfn(new) != pte_pfn(old);
	bool downgrade = (pte_write(old) && !pte_write(new)) ||
			 (pte_user(old) && !pte_user(new));
	if (!removal && !downgrade)
		return; /* an upgrade, or accessed/dirty bits */

	pthread_mutex_lock(&s->lock);
	s->nr_checked++;
	if (s->released) {
		/* exit: release() dropped everything, no fill succeeds. */
		s->nr_checked_released++;
		goto out_unlock;
	}
	sp = spte_of(s, addr);
	if (sp && sp->present)
		violation(s, V_CACHED, "%s at %#llx: pte %#llx -> %#llx, shadow still "
			  "maps pfn %llu%s", removal ? "removal" : "downgrade",
			  (unsigned long long)addr, (unsigned long long)old,
			  (unsigned long long)new, (unsigned long long)sp->pfn,
			  sp->writable ? " writable" : "");
	if (!invalidation_covers_locked(s, addr))
		violation(s, V_UNCOVERED, "%s at %#llx: pte %#llx -> %#llx, %ld in "
			  "progress over [%#llx, %#llx)", removal ? "removal" : "downgrade",
			  (unsigned long long)addr, (unsigned long long)old,
			  (unsigned long long)new, s->inv_count,
			  (unsigned long long)s->inv_start, (unsigned long long)s->inv_end);
	if (!this_thread_covers(s, addr))
		violation(s, V_THREAD, "%s at %#llx: pte %#llx -> %#llx outside this "
			  "thread's ranges", removal ? "removal" : "downgrade",
			  (unsigned long long)addr, (unsigned long long)old,
			  (unsigned long long)new);
out_unlock:
	pthread_mutex_unlock(&s->lock);
}

static void shadow_init(struct shadow_mmu *s, struct host *host, struct mm *mm,
			unsigned int breaks)
{
	memset(s, 0, sizeof(*s));
	s->broken = breaks != HOST_BREAK_NONE;
	s->mn.ops = &shadow_ops;
	s->host = host;
	s->mm = mm;
	s->slot_base = WINDOW_BASE;
	s->slot_pages = WINDOW_PAGES;
	s->sptes = calloc(s->slot_pages, sizeof(*s->sptes));
	assert_non_null(s->sptes);
	pthread_mutex_init(&s->lock, NULL);
	host_set_pte_hook(host, conformance_pte_hook, s);
	assert_int_equal(mmu_notifier_register(&s->mn, mm), 0);
	atomic_store(&s->watched, mm);
}

static void shadow_destroy(struct shadow_mmu *s)
{
	host_set_pte_hook(s->host, NULL, NULL);
	pthread_mutex_destroy(&s->lock);
	free(s->sptes);
}

enum fill_result { FILL_OK, FILL_FAULT, FILL_REFUSED, FILL_GAVE_UP };

struct fill_stats {
	uint64_t fills, faults, refused, retries, gave_up, unexpected;
};

/*
 * The secondary MMU fault: map addr in the shadow MMU (for write if
 * write), following KVM's sequence-retry idiom. Never holds s->lock
 * across a host call.
 */
static enum fill_result shadow_fill(struct shadow_mmu *s, hva_t addr, bool write,
				    struct fill_stats *st)
{
	addr &= PAGE_MASK;
	for (int tries = 0; tries < FILL_MAX_TRIES; tries++) {
		struct page *page;
		bool writable = false;
		uint64_t seq;
		int err;

		pthread_mutex_lock(&s->lock);
		seq = s->seq;
		bool released = s->released;
		pthread_mutex_unlock(&s->lock);
		if (released || !spte_of(s, addr)) {
			st->refused++;
			return FILL_REFUSED;
		}

		err = get_user_page(s->mm, addr, write ? FOLL_WRITE : 0, &page, &writable);
		if (err) {
			/* -EFAULT: unmapped or not permitted; -ESRCH: exiting. */
			if (err != -EFAULT && err != -ESRCH) {
				fprintf(stderr, "conformance: get_user_page(%#llx, %d) = %d\n",
					(unsigned long long)addr, write, err);
				st->unexpected++;
			}
			st->faults++;
			return FILL_FAULT;
		}
		if (write && !writable) {
			fprintf(stderr, "conformance: GUP for write at %#llx returned "
				"a read-only page\n", (unsigned long long)addr);
			st->unexpected++;
		}

		pthread_mutex_lock(&s->lock);
		if (s->released) {
			pthread_mutex_unlock(&s->lock);
			put_page(page);
			st->refused++;
			return FILL_REFUSED;
		}
		if (!s->no_retry && (invalidation_covers_locked(s, addr) || s->seq != seq)) {
			pthread_mutex_unlock(&s->lock);
			put_page(page);
			st->retries++;
			sched_yield();
			continue;
		}
		struct spte *sp = spte_of(s, addr);
		if (sp->present && (sp->pfn != page_to_pfn(page) ||
				    (sp->writable && !writable)))
			violation(s, V_REFILL, "addr %#llx cached pfn %llu%s, GUP now "
				  "finds pfn %llu%s", (unsigned long long)addr,
				  (unsigned long long)sp->pfn,
				  sp->writable ? " writable" : "",
				  (unsigned long long)page_to_pfn(page),
				  writable ? " writable" : "");
		if (!sp->present)
			s->nr_sptes++;
		sp->present = true;
		sp->pfn = page_to_pfn(page);
		sp->writable = writable;
		sp->young = true;
		pthread_mutex_unlock(&s->lock);
		/* Nothing is pinned: the notifiers, not this ref, keep us right. */
		put_page(page);
		st->fills++;
		return FILL_OK;
	}
	st->gave_up++;
	return FILL_GAVE_UP;
}

/*
 * A "guest access" through the shadow MMU: the frame a cached translation
 * names must still be allocated (an invalidation would have dropped the
 * translation before the host could free it).
 */
static void shadow_check_access(struct shadow_mmu *s, hva_t addr)
{
	struct spte *sp;

	pthread_mutex_lock(&s->lock);
	sp = spte_of(s, addr);
	if (sp && sp->present && !is_zero_pfn(s->host, sp->pfn)) {
		struct page *page = pfn_to_page(s->host, sp->pfn);

		if (page_count(page) <= 0 || PageFlag(page, PG_buddy) ||
		    PageFlag(page, PG_pgtable))
			violation(s, V_STALE_FRAME, "addr %#llx cached pfn %llu is free "
				  "(refcount %d, flags %#lx)", (unsigned long long)addr,
				  (unsigned long long)sp->pfn, page_count(page),
				  (unsigned long)atomic_load(&page->flags));
	}
	pthread_mutex_unlock(&s->lock);
}

/*
 * With nothing else running: every cached translation agrees with the
 * host PTE. s->lock is not held across mm_lookup_pte (lock order).
 */
static long shadow_check_quiescent(struct shadow_mmu *s)
{
	long checked = 0;

	for (uint64_t i = 0; i < s->slot_pages; i++) {
		hva_t addr = s->slot_base + i * PAGE_SIZE;
		struct spte sp;

		pthread_mutex_lock(&s->lock);
		sp = s->sptes[i];
		pthread_mutex_unlock(&s->lock);
		if (!sp.present)
			continue;
		pte_t pte = mm_lookup_pte(s->mm, addr);
		checked++;
		if (!pte_present(pte) || !pte_user(pte) || pte_pfn(pte) != sp.pfn ||
		    (sp.writable && !pte_write(pte)))
			violation(s, V_FINAL, "addr %#llx cached pfn %llu%s, host pte %#llx",
				  (unsigned long long)addr, (unsigned long long)sp.pfn,
				  sp.writable ? " writable" : "", (unsigned long long)pte);
	}
	return checked;
}

static void shadow_print(struct shadow_mmu *s, const char *tag)
{
	pthread_mutex_lock(&s->lock);
	printf("[%s] shadow: starts %llu ends %llu zapped %llu change_pte %llu "
	       "checked %llu (after release %llu) cached-now %ld\n", tag,
	       (unsigned long long)s->nr_starts, (unsigned long long)s->nr_ends,
	       (unsigned long long)s->nr_zapped, (unsigned long long)s->nr_change_pte,
	       (unsigned long long)s->nr_checked,
	       (unsigned long long)s->nr_checked_released, s->nr_sptes);
	printf("[%s] starts by event:", tag);
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		if (s->starts_by_event[e])
			printf(" %s %llu", mmu_notifier_event_name(e),
			       (unsigned long long)s->starts_by_event[e]);
	pthread_mutex_unlock(&s->lock);
	printf("\n[%s] violations:", tag);
	for (int v = 0; v < NR_VIOLATIONS; v++)
		printf(" %s %ld", violation_names[v], atomic_load(&s->violations[v]));
	printf("\n");
}

/* ---- workload ----------------------------------------------------------- */


static hva_t region_base(unsigned int r)
{
	return WINDOW_BASE + r * REGION_STRIDE;
}

static hva_t priv_base(unsigned int i)
{
	return WINDOW_BASE + SHARED_SPAN + i * PRIV_STRIDE;
}

enum op_kind {
	OP_WRITE, OP_READ, OP_DONTNEED, OP_MPROTECT, OP_REMAP, OP_MAP_FIXED,
	OP_FORK, OP_GUP, OP_PRIVATE, NR_OP_KINDS
};

static const char *const op_names[NR_OP_KINDS] = {
	"write", "read", "dontneed", "mprotect", "munmap+mmap", "mmap_fixed",
	"fork", "gup", "private",
};

/* Cumulative weights out of 1000. */
static const unsigned int op_weights[NR_OP_KINDS] = {
	[OP_WRITE] = 300, [OP_READ] = 160, [OP_DONTNEED] = 80, [OP_MPROTECT] = 100,
	[OP_REMAP] = 50, [OP_MAP_FIXED] = 50, [OP_FORK] = 10, [OP_GUP] = 60,
	[OP_PRIVATE] = 150,
};

struct workload {
	struct host *host;
	struct mm *mm;
	struct shadow_mmu *s;
	uint64_t seed;
	uint64_t target_ops;
	uint64_t min_fills;             /* fills racing the mutators */
	double min_end;                 /* run at least until then ... */
	double deadline;                /* ... and at most until then */
	bool stop_on_violation;
	atomic_bool stop;               /* mutators */
	atomic_bool stop_fillers;
	atomic_ulong ops;               /* host calls made by mutators */
	atomic_ulong race_fills;        /* fills while mutators run */
	atomic_ulong op_counts[NR_OP_KINDS];
	atomic_ulong op_errors[NR_OP_KINDS];
	atomic_ulong unexpected;
	atomic_ulong integrity_errors;  /* private data that read back wrong */
	atomic_ulong integrity_checked; /* bytes compared */
	pthread_mutex_t stats_lock;
	struct fill_stats fill;         /* summed by fillers at exit */
	uint64_t access_checks;
};

struct worker {
	struct workload *w;
	pthread_t tid;
	uint64_t rng;
	unsigned int idx;
	unsigned char expected[PRIV_BYTES];     /* mutators: private region */
};

/*
 * Check a host call's result: success (0 or a byte count), the one errno
 * the operation may legitimately meet in this workload (0: none), or an
 * unexpected error, which fails the test.
 */
static void expect(struct workload *w, enum op_kind k, long err, long allowed)
{
	if (err >= 0)
		return;
	if (allowed && err == allowed) {
		atomic_fetch_add_explicit(&w->op_errors[k], 1, memory_order_relaxed);
		return;
	}
	if (atomic_fetch_add(&w->unexpected, 1) < 8)
		fprintf(stderr, "conformance: %s returned unexpected %ld\n",
			op_names[k], err);
}

/* A random page-aligned subrange of one region: [*addr, *addr + *len). */
static void random_subrange(uint64_t *rng, hva_t *addr, uint64_t *len)
{
	unsigned int r = prng_below(rng, NR_REGIONS);
	uint64_t first = prng_below(rng, REGION_PAGES);
	uint64_t n = 1 + prng_below(rng, MIN(16, REGION_PAGES - first));

	*addr = region_base(r) + first * PAGE_SIZE;
	*len = n * PAGE_SIZE;
}

/* A random byte address for the mutators: mostly inside a shared region,
 * sometimes in a gap; never in a private region. */
static hva_t random_addr(uint64_t *rng)
{
	if (prng_below(rng, 16) == 0)
		return WINDOW_BASE + prng_below(rng, SHARED_SPAN);
	return region_base(prng_below(rng, NR_REGIONS)) +
	       prng_below(rng, REGION_PAGES * PAGE_SIZE);
}

/* For the fillers: anywhere in the window, private regions included. */
static hva_t random_window_addr(uint64_t *rng)
{
	if (prng_below(rng, 4) == 0)
		return priv_base(prng_below(rng, NR_MUTATORS)) + prng_below(rng, PRIV_BYTES);
	return random_addr(rng);
}

static const int prot_rw = PROT_READ | PROT_WRITE;
static const int map_fixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

/* Read [off, off + len) of this mutator's private region and compare. */
static void private_verify(struct workload *w, struct worker *wk, uint64_t off,
			   uint64_t len)
{
	unsigned char got[PRIV_BYTES];
	long err = mm_read(w->mm, priv_base(wk->idx) + off, got, len);

	expect(w, OP_PRIVATE, err, 0);
	if (err < 0)
		return;
	atomic_fetch_add_explicit(&w->integrity_checked, len, memory_order_relaxed);
	if (memcmp(got, wk->expected + off, len) == 0)
		return;
	for (uint64_t i = 0; i < len; i++) {
		if (got[i] == wk->expected[off + i])
			continue;
		if (atomic_fetch_add(&w->integrity_errors, 1) < 8)
			fprintf(stderr, "conformance: INTEGRITY mutator %u at %#llx: "
				"read %#x, expected %#x\n", wk->idx,
				(unsigned long long)(priv_base(wk->idx) + off + i),
				got[i], wk->expected[off + i]);
		break;
	}
}

/*
 * An operation on this mutator's private region, whose contents it alone
 * decides (fillers GUP it and other mutators' forks write-protect it, but
 * neither may change a byte). Returns the number of host calls made.
 */
static unsigned int private_op(struct workload *w, struct worker *wk)
{
	uint64_t *rng = &wk->rng;
	hva_t base = priv_base(wk->idx), out;
	uint64_t first = prng_below(rng, PRIV_PAGES);
	uint64_t n = 1 + prng_below(rng, PRIV_PAGES - first);
	uint64_t off = prng_below(rng, PRIV_BYTES - 512), len = 1 + prng_below(rng, 512);
	unsigned char buf[512];
	unsigned int calls = 1;
	struct mm *child;
	long err;

	switch (prng_below(rng, 8)) {
	case 0: case 1: case 2:         /* write, then read it back */
		for (uint64_t i = 0; i < len; i++)
			buf[i] = (unsigned char)prng_next(rng);
		err = mm_write(w->mm, base + off, buf, len);
		expect(w, OP_PRIVATE, err, 0);
		memcpy(wk->expected + off, buf, len);
		private_verify(w, wk, off, len);
		return 2;
	case 3:                         /* drop pages: they read back as zeroes */
		err = mm_madvise(w->mm, base + first * PAGE_SIZE, n * PAGE_SIZE,
				 MADV_DONTNEED);
		expect(w, OP_PRIVATE, err, 0);
		memset(wk->expected + first * PAGE_SIZE, 0, n * PAGE_SIZE);
		private_verify(w, wk, first * PAGE_SIZE, n * PAGE_SIZE);
		return 2;
	case 4:                         /* protect: contents survive */
		err = mm_mprotect(w->mm, base + first * PAGE_SIZE, n * PAGE_SIZE,
				  prng_below(rng, 2) ? PROT_READ : PROT_NONE);
		expect(w, OP_PRIVATE, err, 0);
		err = mm_mprotect(w->mm, base + first * PAGE_SIZE, n * PAGE_SIZE, prot_rw);
		expect(w, OP_PRIVATE, err, 0);
		private_verify(w, wk, first * PAGE_SIZE, n * PAGE_SIZE);
		return 3;
	case 5:                         /* replace the mapping: zeroes */
		if (prng_below(rng, 2)) {
			err = mm_munmap(w->mm, base + first * PAGE_SIZE, n * PAGE_SIZE);
			expect(w, OP_PRIVATE, err, 0);
			calls++;
		}
		err = mm_mmap(w->mm, base + first * PAGE_SIZE, n * PAGE_SIZE, prot_rw,
			      map_fixed, &out);
		expect(w, OP_PRIVATE, err, 0);
		memset(wk->expected + first * PAGE_SIZE, 0, n * PAGE_SIZE);
		private_verify(w, wk, first * PAGE_SIZE, n * PAGE_SIZE);
		return calls + 1;
	case 6:                         /* a child's writes stay in the child */
		if (prng_below(rng, 8))
			return 0;
		err = mm_fork(w->mm, &child);
		expect(w, OP_PRIVATE, err, 0);
		if (err)
			return 1;
		memset(buf, 0xc5, sizeof(buf));
		for (int i = 0; i < 4; i++) {
			err = mm_write(child, base + prng_below(rng, PRIV_BYTES - 512),
				       buf, 512);
			expect(w, OP_PRIVATE, err, 0);
		}
		private_verify(w, wk, 0, PRIV_BYTES);
		/* The parent writes while the child still shares: COW. */
		for (uint64_t i = 0; i < len; i++)
			buf[i] = (unsigned char)prng_next(rng);
		err = mm_write(w->mm, base + off, buf, len);
		expect(w, OP_PRIVATE, err, 0);
		memcpy(wk->expected + off, buf, len);
		mmput(child);
		private_verify(w, wk, 0, PRIV_BYTES);
		return 9;
	default:                        /* read back a random stretch */
		private_verify(w, wk, off, len);
		return 1;
	}
}

/* One random operation; returns the number of host calls it made. */
static unsigned int mutator_op(struct workload *w, struct worker *wk)
{
	uint64_t *rng = &wk->rng;
	struct mm *mm = w->mm;
	unsigned int pick = prng_below(rng, 1000), k = 0;
	unsigned char buf[512] = { 0 };
	unsigned int calls = 1;
	hva_t addr, out;
	uint64_t len;
	long err;

	while (k < NR_OP_KINDS - 1 && pick >= op_weights[k])
		pick -= op_weights[k++];
	atomic_fetch_add_explicit(&w->op_counts[k], 1, memory_order_relaxed);

	switch ((enum op_kind)k) {
	case OP_WRITE:
		addr = random_addr(rng);
		len = 1 + prng_below(rng, sizeof(buf));
		memset(buf, (int)prng_next(rng), len);
		err = mm_write(mm, addr, buf, len);
		expect(w, k, err, -EFAULT);
		break;
	case OP_READ:
		addr = random_addr(rng);
		len = 1 + prng_below(rng, sizeof(buf));
		err = mm_read(mm, addr, buf, len);
		expect(w, k, err, -EFAULT);
		break;
	case OP_DONTNEED:
		random_subrange(rng, &addr, &len);
		err = mm_madvise(mm, addr, len, MADV_DONTNEED);
		expect(w, k, err, -ENOMEM); /* a hole */
		break;
	case OP_MPROTECT: {
		static const int downgrade[] = { PROT_READ, PROT_READ, PROT_READ,
						 PROT_NONE, PROT_READ | PROT_EXEC };
		random_subrange(rng, &addr, &len);
		err = mm_mprotect(mm, addr, len, downgrade[prng_below(rng, 5)]);
		expect(w, k, err, -ENOMEM);
		if (prng_below(rng, 2)) {
			err = mm_read(mm, addr, buf, 64);
			expect(w, OP_READ, err, -EFAULT);
			calls++;
		}
		err = mm_mprotect(mm, addr, len, prot_rw);
		expect(w, k, err, -ENOMEM);
		calls++;
		break;
	}
	case OP_REMAP:
		random_subrange(rng, &addr, &len);
		err = mm_munmap(mm, addr, len);
		expect(w, k, err, 0);
		err = mm_mmap(mm, addr, len, prot_rw, map_fixed, &out);
		expect(w, k, err, 0);
		calls++;
		break;
	case OP_MAP_FIXED:
		random_subrange(rng, &addr, &len);
		err = mm_mmap(mm, addr, len, prot_rw, map_fixed, &out);
		expect(w, k, err, 0);
		break;
	case OP_FORK: {
		struct mm *child;

		err = mm_fork(mm, &child);
		expect(w, k, err, 0);
		if (err)
			break;
		for (int i = 0; i < 4; i++) {
			addr = random_addr(rng);
			err = mm_write(child, addr, buf, 1 + prng_below(rng, 64));
			expect(w, OP_WRITE, err, -EFAULT);
		}
		mmput(child);
		calls += 5;
		break;
	}
	case OP_PRIVATE:
		calls = private_op(w, wk);
		break;
	case OP_GUP: {
		struct page *page;
		bool writable;

		addr = random_addr(rng);
		err = get_user_page(mm, addr, prng_below(rng, 2) ? FOLL_WRITE : 0,
				    &page, &writable);
		expect(w, k, err, -EFAULT);
		if (!err)
			put_page(page);
		break;
	}
	default:
		BUG();
	}
	return calls;
}

static bool workload_done(struct workload *w)
{
	if (atomic_load_explicit(&w->stop, memory_order_relaxed))
		return true;
	double t = secs_now();

	if ((atomic_load_explicit(&w->ops, memory_order_relaxed) >= w->target_ops &&
	     atomic_load_explicit(&w->race_fills, memory_order_relaxed) >= w->min_fills &&
	     t >= w->min_end) || t > w->deadline ||
	    (w->stop_on_violation && total_violations(w->s) > 0)) {
		atomic_store(&w->stop, true);
		return true;
	}
	return false;
}

static void *mutator_thread(void *arg)
{
	struct worker *wk = arg;
	struct workload *w = wk->w;

	while (!workload_done(w)) {
		unsigned int n = mutator_op(w, wk);

		atomic_fetch_add_explicit(&w->ops, n, memory_order_relaxed);
	}
	return NULL;
}

static void *filler_thread(void *arg)
{
	struct worker *wk = arg;
	struct workload *w = wk->w;
	struct fill_stats st = { 0 };
	uint64_t checks = 0;

	while (!atomic_load_explicit(&w->stop_fillers, memory_order_relaxed)) {
		hva_t addr = random_window_addr(&wk->rng);

		if (shadow_fill(w->s, addr, prng_below(&wk->rng, 2), &st) == FILL_OK &&
		    !atomic_load_explicit(&w->stop, memory_order_relaxed))
			atomic_fetch_add_explicit(&w->race_fills, 1, memory_order_relaxed);
		shadow_check_access(w->s, random_window_addr(&wk->rng));
		checks++;
	}
	pthread_mutex_lock(&w->stats_lock);
	w->fill.fills += st.fills;
	w->fill.faults += st.faults;
	w->fill.refused += st.refused;
	w->fill.retries += st.retries;
	w->fill.gave_up += st.gave_up;
	atomic_fetch_add(&w->unexpected, st.unexpected);
	w->access_checks += checks;
	pthread_mutex_unlock(&w->stats_lock);
	return NULL;
}

static void map_regions(struct mm *mm)
{
	hva_t out;

	for (unsigned int r = 0; r < NR_REGIONS; r++) {
		assert_int_equal(mm_mmap(mm, region_base(r), REGION_PAGES * PAGE_SIZE,
					 prot_rw, map_fixed, &out), 0);
		assert_int_equal(out, region_base(r));
	}
	for (unsigned int i = 0; i < NR_MUTATORS; i++)
		assert_int_equal(mm_mmap(mm, priv_base(i), PRIV_BYTES, prot_rw,
					 map_fixed, &out), 0);
}

static void start_workers(struct worker *wk, int n, struct workload *w,
			  void *(*fn)(void *), uint64_t salt)
{
	for (int i = 0; i < n; i++) {
		wk[i].w = w;
		wk[i].idx = i;
		wk[i].rng = prng_seed(w->seed, salt + (uint64_t)i);
		assert_int_equal(pthread_create(&wk[i].tid, NULL, fn, &wk[i]), 0);
	}
}

static void join_workers(struct worker *wk, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_join(wk[i].tid, NULL), 0);
}

struct run_result {
	uint64_t ops;
	double secs;
	long violations;
	uint64_t unexpected;
	uint64_t integrity_errors;
	uint64_t race_fills;
};

/*
 * Run the random workload on a fresh host with the given break switches,
 * tear everything down, check the host, and report.
 */
static struct run_result run_random(const char *tag, unsigned int breaks,
				    uint64_t target_ops, uint64_t min_fills,
				    double min_secs, double time_cap,
				    bool stop_on_violation, bool no_retry)
{
	struct host_config cfg = { .ram_bytes = 64ULL << 20, .prefault = true,
				   .breaks = breaks };
	struct workload *w = calloc(1, sizeof(*w));
	struct shadow_mmu *s = calloc(1, sizeof(*s));
	struct worker *mut = calloc(NR_MUTATORS, sizeof(*mut));
	struct worker *fil = calloc(NR_FILLERS, sizeof(*fil));
	struct run_result res = { 0 };
	struct host_stats hs;
	double t0;

	assert_non_null(w);
	assert_non_null(s);
	assert_non_null(mut);
	assert_non_null(fil);
	assert_int_equal(host_create(&cfg, &w->host), 0);
	assert_int_equal(mm_create(w->host, &w->mm), 0);
	map_regions(w->mm);
	shadow_init(s, w->host, w->mm, breaks);
	s->no_retry = no_retry;
	s->broken |= no_retry;
	w->s = s;
	w->seed = env_u64("TANDEM_CONFORMANCE_SEED", 0x5eed1234);
	w->target_ops = target_ops;
	w->min_fills = min_fills;
	w->stop_on_violation = stop_on_violation;
	pthread_mutex_init(&w->stats_lock, NULL);

	t0 = secs_now();
	w->min_end = t0 + min_secs;
	w->deadline = t0 + time_cap;
	start_workers(fil, NR_FILLERS, w, filler_thread, 1000);
	start_workers(mut, NR_MUTATORS, w, mutator_thread, 0);
	join_workers(mut, NR_MUTATORS);
	res.secs = secs_now() - t0;
	atomic_store(&w->stop_fillers, true);
	join_workers(fil, NR_FILLERS);
	struct fill_stats race = w->fill;
	uint64_t race_checks = w->access_checks;

	/* Quiescent: fill every page once more, then the shadow MMU must
	 * agree with the host page table. */
	for (uint64_t i = 0; i < WINDOW_PAGES; i++)
		shadow_fill(s, WINDOW_BASE + i * PAGE_SIZE, i & 1, &w->fill);
	atomic_fetch_add(&w->unexpected, w->fill.unexpected);
	long quiescent = shadow_check_quiescent(s);
	assert_int_equal(host_check_invariants(w->host), 0);
	host_get_stats(w->host, &hs);

	/*
	 * Exit race: the last mmput (release, then the unnotified teardown)
	 * while fillers keep faulting; they must be refused, or get -ESRCH.
	 */
	memset(&w->fill, 0, sizeof(w->fill));
	atomic_store(&w->stop_fillers, false);
	start_workers(fil, NR_FILLERS, w, filler_thread, 2000);
	sleep_ms(20);
	mmput(w->mm);
	sleep_ms(20);
	atomic_store(&w->stop_fillers, true);
	join_workers(fil, NR_FILLERS);
	pthread_mutex_lock(&s->lock);
	assert_true(s->released);
	assert_int_equal(s->nr_sptes, 0);
	assert_int_equal(s->inv_count, 0);
	pthread_mutex_unlock(&s->lock);
	assert_int_equal(mmu_notifier_unregister(&s->mn, w->mm), 0);

	res.ops = atomic_load(&w->ops);
	res.violations = total_violations(s);
	res.unexpected = atomic_load(&w->unexpected);
	res.integrity_errors = atomic_load(&w->integrity_errors);
	res.race_fills = atomic_load(&w->race_fills);
	printf("[%s] seed %#llx breaks %#x: %llu host ops from %d threads in %.2f s "
	       "(%.0f ops/s)\n", tag, (unsigned long long)w->seed, breaks,
	       (unsigned long long)res.ops, NR_MUTATORS, res.secs, res.ops / res.secs);
	printf("[%s] ops:", tag);
	for (int k = 0; k < NR_OP_KINDS; k++)
		printf(" %s %lu (err %lu)", op_names[k], atomic_load(&w->op_counts[k]),
		       atomic_load(&w->op_errors[k]));
	printf("\n[%s] %d fillers racing the mutators: fills %llu retries %llu "
	       "faults %llu gave-up %llu, access checks %llu\n", tag, NR_FILLERS,
	       (unsigned long long)race.fills, (unsigned long long)race.retries,
	       (unsigned long long)race.faults, (unsigned long long)race.gave_up,
	       (unsigned long long)race_checks);
	printf("[%s] fillers racing exit: fills %llu retries %llu faults %llu "
	       "refused %llu\n", tag, (unsigned long long)w->fill.fills,
	       (unsigned long long)w->fill.retries, (unsigned long long)w->fill.faults,
	       (unsigned long long)w->fill.refused);
	printf("[%s] host: cow_break %llu cow_reuse %llu pgunmap %llu gup %llu "
	       "notifier starts %llu\n", tag,
	       (unsigned long long)hs.events[COW_BREAK],
	       (unsigned long long)hs.events[COW_REUSE],
	       (unsigned long long)hs.events[PGUNMAP],
	       (unsigned long long)hs.events[GUP_CALLS],
	       (unsigned long long)hs.notifier_starts);
	printf("[%s] quiescent: %ld cached translations checked against host PTEs\n",
	       tag, quiescent);
	printf("[%s] integrity: %lu private bytes compared, %lu mismatches\n", tag,
	       atomic_load(&w->integrity_checked), atomic_load(&w->integrity_errors));
	shadow_print(s, tag);

	assert_int_equal(host_check_invariants(w->host), 0);
	assert_int_equal(host_frames_in_use(w->host), 0);
	shadow_destroy(s);
	assert_int_equal(host_destroy(w->host), 0);
	pthread_mutex_destroy(&w->stats_lock);
	free(mut);
	free(fil);
	free(s);
	free(w);
	return res;
}

static void conformance_random(void **state)
{
	uint64_t target = env_u64("TANDEM_CONFORMANCE_OPS", DEFAULT_OPS);
	uint64_t fills = env_u64("TANDEM_CONFORMANCE_FILLS", DEFAULT_FILLS);
	double min = (double)env_u64("TANDEM_CONFORMANCE_MIN_SECONDS", 2);
	double cap = (double)env_u64("TANDEM_CONFORMANCE_SECONDS", 300);
	struct run_result r = run_random("random", HOST_BREAK_NONE, target, fills,
					 min, cap, false, false);

	assert_int_equal(r.unexpected, 0);
	assert_int_equal(r.violations, 0);
	assert_int_equal(r.integrity_errors, 0);
	assert_true(r.ops >= target);
	assert_true(r.race_fills >= fills);
}

/* ---- focused break scenarios -------------------------------------------- */

#define FOCUS_PAGES 16

struct focus {
	struct host *host;
	struct mm *mm;
	struct shadow_mmu s;
	struct fill_stats st;
	hva_t base;
};

static void focus_setup(struct focus *f, unsigned int breaks)
{
	struct host_config cfg = { .ram_bytes = HOST_RAM_MIN, .breaks = breaks };
	hva_t out;

	memset(f, 0, sizeof(*f));
	assert_int_equal(host_create(&cfg, &f->host), 0);
	assert_int_equal(mm_create(f->host, &f->mm), 0);
	f->base = WINDOW_BASE;
	assert_int_equal(mm_mmap(f->mm, f->base, 2 * FOCUS_PAGES * PAGE_SIZE, prot_rw,
				 map_fixed, &out), 0);
	shadow_init(&f->s, f->host, f->mm, breaks);
}

static void focus_fill_all(struct focus *f, hva_t base, bool write)
{
	for (int i = 0; i < FOCUS_PAGES; i++)
		assert_int_equal(shadow_fill(&f->s, base + i * PAGE_SIZE, write, &f->st),
				 FILL_OK);
	pthread_mutex_lock(&f->s.lock);
	assert_true(f->s.nr_sptes >= FOCUS_PAGES);
	pthread_mutex_unlock(&f->s.lock);
}

static void focus_write_all(struct focus *f, struct mm *mm, hva_t base)
{
	char c = 'x';

	for (int i = 0; i < FOCUS_PAGES; i++)
		assert_int_equal(mm_write(mm, base + i * PAGE_SIZE, &c, 1), 1);
}

/* Returns the violations seen; tears down and checks the host. */
static long focus_teardown(struct focus *f)
{
	long v = total_violations(&f->s);

	assert_int_equal(mmu_notifier_unregister(&f->s.mn, f->mm), 0);
	mmput(f->mm);
	assert_int_equal(host_check_invariants(f->host), 0);
	assert_int_equal(host_frames_in_use(f->host), 0);
	shadow_destroy(&f->s);
	assert_int_equal(host_destroy(f->host), 0);
	return v;
}

static long scenario_munmap(unsigned int breaks)
{
	struct focus f;

	focus_setup(&f, breaks);
	focus_fill_all(&f, f.base, true);
	assert_int_equal(mm_munmap(f.mm, f.base, FOCUS_PAGES * PAGE_SIZE), 0);
	return focus_teardown(&f);
}

static long scenario_dontneed(unsigned int breaks)
{
	struct focus f;

	focus_setup(&f, breaks);
	focus_fill_all(&f, f.base, true);
	assert_int_equal(mm_madvise(f.mm, f.base, FOCUS_PAGES * PAGE_SIZE,
				    MADV_DONTNEED), 0);
	return focus_teardown(&f);
}

static long scenario_mprotect(unsigned int breaks)
{
	struct focus f;

	focus_setup(&f, breaks);
	focus_fill_all(&f, f.base, true);                 /* RW -> RO */
	assert_int_equal(mm_mprotect(f.mm, f.base, FOCUS_PAGES * PAGE_SIZE,
				     PROT_READ), 0);
	focus_fill_all(&f, f.base, false);                /* RO -> none */
	assert_int_equal(mm_mprotect(f.mm, f.base, FOCUS_PAGES * PAGE_SIZE,
				     PROT_NONE), 0);
	return focus_teardown(&f);
}

static long scenario_cow(unsigned int breaks)
{
	hva_t zero_base = WINDOW_BASE + FOCUS_PAGES * PAGE_SIZE;
	struct mm *child;
	struct focus f;

	focus_setup(&f, breaks);
	/* A page shared with a child: the parent's write copies it. */
	focus_write_all(&f, f.mm, f.base);
	assert_int_equal(mm_fork(f.mm, &child), 0);
	focus_fill_all(&f, f.base, false);
	focus_write_all(&f, f.mm, f.base);
	/* The shared zero page: a write replaces it with a new frame. */
	focus_fill_all(&f, zero_base, false);
	focus_write_all(&f, f.mm, zero_base);
	mmput(child);
	return focus_teardown(&f);
}

static long scenario_fork(unsigned int breaks)
{
	struct mm *child;
	struct focus f;

	focus_setup(&f, breaks);
	focus_fill_all(&f, f.base, true);
	assert_int_equal(mm_fork(f.mm, &child), 0);       /* parent RW -> RO */
	mmput(child);
	return focus_teardown(&f);
}

struct break_case {
	const char *name;
	unsigned int brk;
	long (*scenario)(unsigned int breaks);
};

static const struct break_case break_cases[] = {
	{ "munmap",   HOST_BREAK_MUNMAP_NOTIFY,   scenario_munmap },
	{ "dontneed", HOST_BREAK_DONTNEED_NOTIFY, scenario_dontneed },
	{ "mprotect", HOST_BREAK_MPROTECT_NOTIFY, scenario_mprotect },
	{ "cow",      HOST_BREAK_COW_NOTIFY,      scenario_cow },
	{ "fork",     HOST_BREAK_FORK_NOTIFY,     scenario_fork },
};

/*
 * One break switch: the focused scenario is clean without it and caught
 * with it, and the random workload (stopping at the first violation) fails
 * with it.
 */
static void run_break_case(const struct break_case *bc)
{
	char tag[64];
	long clean = bc->scenario(HOST_BREAK_NONE);
	long broken = bc->scenario(bc->brk);

	printf("[break-%s] focused scenario: %ld violations without the switch, "
	       "%ld with it\n", bc->name, clean, broken);
	assert_int_equal(clean, 0);
	assert_true(broken > 0);

	snprintf(tag, sizeof(tag), "break-%s-random", bc->name);
	struct run_result r = run_random(tag, bc->brk, 50000, 0, 0, 10.0, true, false);
	printf("[%s] random workload: %ld violations after %llu ops\n", tag,
	       r.violations, (unsigned long long)r.ops);
	assert_int_equal(r.unexpected, 0);
	assert_true(r.violations > 0);
}

/*
 * The other side of the protocol: a shadow MMU whose fill skips the retry
 * check (installs whatever GUP returned, even while an invalidation runs
 * or after one ran) must be caught too. This proves the workload really
 * races fills against invalidations of the same addresses.
 */
static void broken_fill_is_caught(void **state)
{
	struct run_result r = run_random("broken-fill-random", HOST_BREAK_NONE, 100000,
					 0, 0, 20.0, true, true);

	printf("[broken-fill-random] fill without the retry check: %ld violations "
	       "after %llu ops\n", r.violations, (unsigned long long)r.ops);
	assert_int_equal(r.unexpected, 0);
	assert_true(r.violations > 0);
}

static void break_munmap(void **state)   { run_break_case(&break_cases[0]); }
static void break_dontneed(void **state) { run_break_case(&break_cases[1]); }
static void break_mprotect(void **state) { run_break_case(&break_cases[2]); }
static void break_cow(void **state)      { run_break_case(&break_cases[3]); }
static void break_fork(void **state)     { run_break_case(&break_cases[4]); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(conformance_random),
		cmocka_unit_test(break_munmap),
		cmocka_unit_test(break_dontneed),
		cmocka_unit_test(break_mprotect),
		cmocka_unit_test(break_cow),
		cmocka_unit_test(break_fork),
		cmocka_unit_test(broken_fill_is_caught),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
