/* SPDX-License-Identifier: MIT */
/*
 * idle.c - idle page tracking: Linux's /sys/kernel/mm/page_idle/bitmap over
 * pfns, and a per-address-space form for VMMs that want a guest's working
 * set.
 *
 * A tracker marks frames idle, lets the workload run, and reads back which
 * are still idle: those that nobody -- no host PTE, no secondary MMU --
 * accessed in between. What is no longer idle is the interval's working set.
 *
 * A frame's two pieces of state:
 *   PG_idle  the mark. Set by a mark pass (page_idle_set) after the frame's
 *            young state was cleared everywhere; cleared by a read pass
 *            (page_idle_test) that finds the frame referenced, and with
 *            every other flag when the frame is freed.
 *   young    the evidence: the accessed bit of each host PTE mapping the
 *            frame (page_referenced walks the rmap), and the accessed state
 *            each secondary MMU keeps for it (asked through the notifiers).
 *
 * Invariants:
 *  1. The young bits are the authority, PG_idle only the mark: a frame is
 *     reported idle iff PG_idle is still set AND no mapping became young
 *     since it was set (the read re-checks, clearing what it consumes).
 *     Hence no host path needs to clear PG_idle on access (Linux does it in
 *     folio_mark_accessed): every host access to a user page goes through
 *     a PTE whose accessed bit it sets (faults and GUP do, mm_read and
 *     mm_write included), and every secondary access through an spte.
 *     Whoever else consumes a young bit -- reclaim's page_referenced --
 *     clears PG_idle as it does so (rmap.c, as Linux's
 *     folio_referenced_one), so an access is never lost to another ager.
 *  2. Only user pages take part: frames on an LRU list or mapped by a PTE.
 *     Free, reserved (the zero page) and page-table frames are skipped and
 *     never reported idle. A frame is examined under a reference (taken
 *     with get_page_unless_zero by pfn, as Linux's page_idle_get_folio, or
 *     under page_table_lock from a present PTE by address), so it cannot
 *     be freed and reused while we look; its kind is re-checked after.
 *  3. A mark clears the young state first and sets PG_idle second: an
 *     access in between leaves a young bit, which the read sees.
 *  4. A reference idle tracking consumes is handed to reclaim in
 *     PG_referenced (Linux keeps it in PG_young): a tracker that looked
 *     first must not make a hot page look cold to vmscan.
 *
 * Secondary TLBs, and the two flavours.
 *   By pfn (page_idle_mark/page_idle_get) the secondary MMUs are asked for
 *   clear_young, as Linux's page_idle does: no TLB flush. KVM's accessed
 *   bits, like the hardware's, are set by a walk, not by a TLB hit; so a
 *   vCPU whose soft-TLB entry for the page outlived the mark reaches the
 *   page without walking, and that access is unseen until the entry is
 *   evicted or flushed: the page reads idle although the guest used it.
 *   Cheap, and approximate, as in KVM.
 *   By address (mm_idle_mark_range/mm_idle_count_range) they are asked for
 *   clear_flush_young: a secondary MMU that finds the page young clears it
 *   and flushes its TLBs, so the next access walks and is seen. This is
 *   exact only if *every* clear of a secondary accessed bit flushes -- an
 *   spte made old without a flush keeps a TLB entry that no later flushing
 *   clear will find young -- so the read pass flushes too, and mixing the
 *   pfn flavour into the same interval brings the approximation back.
 *   Cost: one remote-TLB-flush request (not waited for) per young page.
 *
 * Locking: every entry point is called with no lock held and may sleep.
 * Per frame, page_referenced takes the page's rmap lock (to copy its
 * mappings), then each mapping mm's page_table_lock, then, with none held,
 * calls the notifiers (kvm takes mmu_lock for read, then kvm->lock to send
 * a flush request). The by-address walk takes mmap_lock for read and
 * page_table_lock, collects up to IDLE_BATCH present frames with a
 * reference each, and drops both before aging the batch: mmap_lock is
 * never held across a notifier call, and a writer (munmap, mprotect) waits
 * for one batch at most.
 */
#include "internal.h"

#define IDLE_BATCH 64

/* A frame that may take part (invariant 2); racy without a reference. */
static bool page_is_user(struct page *page)
{
	unsigned long f = atomic_load_explicit(&page->flags, memory_order_relaxed);

	if (f & (1UL << PG_buddy | 1UL << PG_reserved | 1UL << PG_pgtable))
		return false;
	return (f & (1UL << PG_lru)) || page_mapcount(page) > 0;
}

/* The frame at pfn with a reference, if it is a user page; else NULL. */
static struct page *page_idle_get_page(struct host *host, pfn_t pfn)
{
	struct page *page = pfn_to_page(host, pfn);

	if (!page_is_user(page) || !get_page_unless_zero(page))
		return NULL;
	/* Referenced now: it cannot be freed and come back as something
	 * else, so this second look is stable enough to act on. */
	if (!page_is_user(page)) {
		put_page(page);
		return NULL;
	}
	return page;
}

/* Clear the young state everywhere, then set the mark (invariant 3).
 * Called with a reference on page and no lock held. */
static void page_idle_set(struct page *page, bool flush)
{
	if (page_referenced(page, flush))
		SetPageFlag(page, PG_referenced);       /* invariant 4 */
	SetPageFlag(page, PG_idle);
}

/* Still idle? Consumes the young state it finds (invariant 1). Called with
 * a reference on page and no lock held. */
static bool page_idle_test(struct page *page, bool flush)
{
	if (!PageFlag(page, PG_idle))
		return false;
	if (page_referenced(page, flush)) {
		ClearPageFlag(page, PG_idle);           /* page_referenced did too */
		SetPageFlag(page, PG_referenced);       /* invariant 4 */
		return false;
	}
	/* Re-read: reclaim may have found it young meanwhile (invariant 1). */
	return PageFlag(page, PG_idle);
}

static int pfn_range_valid(struct host *host, pfn_t start, uint64_t nr)
{
	return host && start <= host->nr_pages && nr <= host->nr_pages - start;
}

int page_idle_mark(struct host *host, pfn_t start, uint64_t nr)
{
	int marked = 0;

	if (!pfn_range_valid(host, start, nr))
		return -EINVAL;
	for (pfn_t pfn = start; pfn < start + nr; pfn++) {
		struct page *page = page_idle_get_page(host, pfn);

		if (!page)
			continue;
		page_idle_set(page, false);
		put_page(page);
		marked++;
	}
	return marked;
}

int page_idle_get(struct host *host, pfn_t start, uint64_t nr, uint64_t *bitmap)
{
	int idle = 0;

	if (!pfn_range_valid(host, start, nr) || (nr && !bitmap))
		return -EINVAL;
	for (uint64_t i = 0; i < nr; i += 64)
		bitmap[i / 64] = 0;
	for (uint64_t i = 0; i < nr; i++) {
		struct page *page = page_idle_get_page(host, start + i);

		if (!page)
			continue;
		if (page_idle_test(page, false)) {
			bitmap[i / 64] |= 1ULL << (i % 64);
			idle++;
		}
		put_page(page);
	}
	return idle;
}

/* ---- by address ---------------------------------------------------------- */

struct idle_batch {
	struct page *pages[IDLE_BATCH];
	unsigned int nr;
	hva_t next;                     /* where the walk resumes when full */
};

/* walk_pte_range callback, under page_table_lock: take the frames of
 * present PTEs (the PTE's own reference makes get_page safe). The zero
 * page (special) is nobody's working set. */
static int idle_collect_one(struct mm *mm, hva_t addr, pte_t *ptep, void *arg)
{
	struct idle_batch *b = arg;
	pte_t pte = READ_ONCE(*ptep);
	struct page *page;

	lockdep_assert_held(&mm->page_table_lock);
	if (!pte_present(pte) || pte_special(pte))
		return 0;
	page = pfn_to_page(mm->host, pte_pfn(pte));
	get_page(page);
	b->pages[b->nr++] = page;
	b->next = addr + PAGE_SIZE;
	return b->nr == IDLE_BATCH;
}

static int mm_idle_range_valid(struct mm *mm, hva_t start, hva_t end)
{
	return mm && PAGE_ALIGNED(start) && PAGE_ALIGNED(end) && start <= end &&
	       end <= TASK_SIZE;
}

/*
 * Mark (count == NULL) or count the frames mapped in [start, end), batch by
 * batch (header comment). A frame found unmapped by the time its batch is
 * aged (a racing zap) is left out of the count.
 */
static int mm_idle_walk(struct mm *mm, hva_t start, hva_t end, uint64_t *idle,
			uint64_t *mapped)
{
	hva_t addr = start;
	int marked = 0;

	if (!mmget_not_zero(mm))
		return -ESRCH;
	while (addr < end) {
		struct idle_batch b = { .nr = 0 };
		int full;

		down_read(&mm->mmap_lock);
		spin_lock(&mm->page_table_lock);
		full = walk_pte_range(mm, addr, end, idle_collect_one, &b);
		spin_unlock(&mm->page_table_lock);
		up_read(&mm->mmap_lock);
		addr = full ? b.next : end;

		for (unsigned int i = 0; i < b.nr; i++) {
			struct page *page = b.pages[i];

			if (!mapped) {
				page_idle_set(page, true);
				marked++;
			} else {
				bool is_idle = page_idle_test(page, true);

				if (page_mapcount(page) > 0) {
					(*mapped)++;
					*idle += is_idle;
				}
			}
			put_page(page);
		}
	}
	mmput(mm);
	return marked;
}

int mm_idle_mark_range(struct mm *mm, hva_t start, hva_t end)
{
	if (!mm_idle_range_valid(mm, start, end))
		return -EINVAL;
	return mm_idle_walk(mm, start, end, NULL, NULL);
}

int mm_idle_count_range(struct mm *mm, hva_t start, hva_t end, uint64_t *idle,
			uint64_t *mapped)
{
	uint64_t i = 0, m = 0;
	int err;

	if (!mm_idle_range_valid(mm, start, end))
		return -EINVAL;
	err = mm_idle_walk(mm, start, end, &i, &m);
	if (err < 0)
		return err;
	if (idle)
		*idle = i;
	if (mapped)
		*mapped = m;
	return 0;
}
