/* SPDX-License-Identifier: MIT */
/*
 * madvise.c - advice on a range: MADV_DONTNEED drops its pages (the next
 * access reads zeroes) under an MMU_NOTIFY_CLEAR invalidation; MADV_COLD
 * deactivates them and clears their young bits; MADV_PAGEOUT reclaims them
 * now. The hints NORMAL, RANDOM, SEQUENTIAL and WILLNEED are accepted and
 * do nothing.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* MADV_DONTNEED: drop the pages; the next touch reads zeroes. */
static int madvise_dontneed(struct mm *mm, hva_t start, hva_t end)
{
	lockdep_assert_held_read(&mm->mmap_lock);
	for (unsigned int i = vma_index(mm, start);
	     i < mm->nr_vmas && mm->vmas[i]->vm_start < end; i++) {
		struct vm_area_struct *vma = mm->vmas[i];
		hva_t s = MAX(start, vma->vm_start), e = MIN(end, vma->vm_end);
		struct mmu_notifier_range range;
		bool notify = !host_break(mm->host, HOST_BREAK_DONTNEED_NOTIFY);

		mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR,
					MMU_NOTIFIER_RANGE_BLOCKABLE, mm, s, e);
		if (notify)
			mmu_notifier_invalidate_range_start(&range);
		zap_page_range_locked(mm, s, e);
		if (notify)
			mmu_notifier_invalidate_range_end(&range);
	}
	return 0;
}

struct cold_arg {
	bool pageout;
	struct list_head pages;         /* isolated for MADV_PAGEOUT */
};

/* Under page_table_lock: deactivate (COLD) or isolate (PAGEOUT) one page
 * this mm maps. Shared pages are left alone, as Linux does. */
static int cold_one(struct mm *mm, hva_t addr, pte_t *ptep, void *arg)
{
	struct cold_arg *ca = arg;
	pte_t pte = READ_ONCE(*ptep);
	struct page *page;

	if (!pte_present(pte) || pte_special(pte))
		return 0;
	page = pfn_to_page(mm->host, pte_pfn(pte));
	if (page_mapcount(page) != 1)
		return 0;
	if (pte_young(pte))
		set_pte(mm, addr, ptep, pte & ~_PAGE_ACCESSED);
	if (ca->pageout) {
		if (isolate_lru_page(page))
			list_add_tail(&page->lru, &ca->pages);
	} else {
		deactivate_page(page);
	}
	return 0;
}

/*
 * MADV_COLD: the range's pages go to the inactive list, their young bits
 * cleared (secondary MMUs too, through clear_young). MADV_PAGEOUT: they
 * are reclaimed now, referenced or not. Called with mmap_lock for read.
 */
static int madvise_cold_pageout(struct mm *mm, hva_t start, hva_t end, bool pageout)
{
	struct cold_arg ca = { .pageout = pageout };

	lockdep_assert_held_read(&mm->mmap_lock);
	INIT_LIST_HEAD(&ca.pages);
	if (pageout && !mm->host->swap)
		return 0;       /* nowhere to put them: as Linux without swap */
	mmu_notifier_clear_young(mm, start, end);
	spin_lock(&mm->page_table_lock);
	walk_pte_range(mm, start, end, cold_one, &ca);
	spin_unlock(&mm->page_table_lock);
	if (pageout)
		reclaim_pages(mm->host, &ca.pages, true);
	return 0;
}

int mm_madvise(struct mm *mm, hva_t addr, uint64_t len, int advice)
{
	hva_t end;
	int err;

	if (!mm)
		return -EINVAL;
	switch (advice) {
	case MADV_NORMAL:
	case MADV_RANDOM:
	case MADV_SEQUENTIAL:
	case MADV_WILLNEED:
	case MADV_DONTNEED:
	case MADV_COLD:
	case MADV_PAGEOUT:
		break;
	default:
		return -EINVAL;
	}
	if (!PAGE_ALIGNED(addr))
		return -EINVAL;
	if (len == 0)
		return 0;
	err = mm_validate_range(addr, len, &end);
	if (err)
		return err;
	down_read(&mm->mmap_lock);
	if (atomic_load(&mm->exiting))
		err = -ESRCH;
	else if (!vma_range_mapped(mm, addr, end))
		err = -ENOMEM; /* as madvise(2); nothing done */
	else if (advice == MADV_DONTNEED)
		err = madvise_dontneed(mm, addr, end);
	else if (advice == MADV_COLD || advice == MADV_PAGEOUT)
		err = madvise_cold_pageout(mm, addr, end, advice == MADV_PAGEOUT);
	up_read(&mm->mmap_lock);
	return err;
}
