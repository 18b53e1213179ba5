/* SPDX-License-Identifier: MIT */
/*
 * mm.c - address spaces: lifetime, mmap, munmap, mprotect, madvise, exit.
 *
 * Every path that removes or downgrades a PTE brackets the change with
 * mmu_notifier_invalidate_range_start/end over a range covering it, and the
 * frames it unmaps are freed only after start has returned:
 *
 *   path                 event               mmap_lock
 *   munmap, MAP_FIXED    UNMAP               write
 *   MADV_DONTNEED        CLEAR               read
 *   mprotect downgrade   PROTECTION_VMA      write
 *   COW break (fault.c)  CLEAR               read
 *   fork (fork.c)        PROTECTION_PAGE     write (parent)
 *   exit                 release()           write (after release)
 *
 * Lifetime: mm_users (address-space users) and mm_count (struct references)
 * as in Linux. The users collectively hold one mm_count; the last mmput()
 * runs exit_mmap() and drops it; the last mmdrop() frees the pgd and the
 * struct and unlinks it from the host.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "tandem/mmu_notifier.h"

int mm_create(struct host *host, struct mm **out)
{
	struct mm *mm;

	if (!host || !out)
		return -EINVAL;
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->host = host;
	rwsem_init(&mm->mmap_lock);
	spin_lock_init(&mm->page_table_lock);
	mm->pgd = pgtable_alloc(mm, &mm->pgd_pfn, 0);
	if (!mm->pgd) {
		rwsem_destroy(&mm->mmap_lock);
		mutex_destroy(&mm->page_table_lock);
		free(mm);
		return -ENOMEM;
	}
	mmu_notifier_subscriptions_init(&mm->notifier_subscriptions);
	INIT_LIST_HEAD(&mm->oom_link);
	atomic_store(&mm->mm_users, 1);
	atomic_store(&mm->mm_count, 1);
	spin_lock(&host->mm_list_lock);
	mm->id = ++host->next_mm_id;
	list_add_tail(&mm->mmlist, &host->mm_list);
	spin_unlock(&host->mm_list_lock);
	*out = mm;
	return 0;
}

void mmgrab(struct mm *mm)
{
	int old = atomic_fetch_add(&mm->mm_count, 1);

	BUG_ON(old <= 0);
}

void mmdrop(struct mm *mm)
{
	struct host *host = mm->host;

	if (atomic_fetch_sub_explicit(&mm->mm_count, 1, memory_order_acq_rel) != 1)
		return;
	BUG_ON(atomic_load(&mm->mm_users) != 0);
	BUG_ON(mm->nr_vmas || atomic_load(&mm->nr_pgtables));
	spin_lock(&host->mm_list_lock);
	list_del_init(&mm->mmlist);
	spin_unlock(&host->mm_list_lock);
	{
		struct page *pgd = pfn_to_page(host, mm->pgd_pfn);

		ClearPageFlag(pgd, PG_pgtable);
		atomic_fetch_sub(&host->nr_pgtables, 1);
		put_page(pgd);
	}
	mmu_notifier_subscriptions_destroy(&mm->notifier_subscriptions);
	rwsem_destroy(&mm->mmap_lock);
	mutex_destroy(&mm->page_table_lock);
	free(mm->vmas);
	free(mm);
}

void mmget(struct mm *mm)
{
	int old = atomic_fetch_add(&mm->mm_users, 1);

	BUG_ON(old <= 0);
}

bool mmget_not_zero(struct mm *mm)
{
	int old = atomic_load(&mm->mm_users);

	do {
		if (old == 0)
			return false;
	} while (!atomic_compare_exchange_weak(&mm->mm_users, &old, old + 1));
	return true;
}

struct zap_arg {
	long anon;
	long swap;
};

/* Called under page_table_lock for each non-none PTE being removed. */
static int zap_one(struct mm *mm, hva_t addr, pte_t *ptep, void *arg)
{
	struct zap_arg *za = arg;
	pte_t pte = READ_ONCE(*ptep);
	struct page *page;

	set_pte(mm, addr, ptep, 0);
	if (pte_is_swap(pte)) {
		swap_free(mm->host, pte_swp_slot(pte));
		za->swap++;
		return 0;
	}
	BUG_ON(!pte_present(pte));
	if (pte_special(pte))
		return 0;
	page = pfn_to_page(mm->host, pte_pfn(pte));
	if (pte_dirty(pte))
		set_page_dirty(page);
	page_remove_rmap(page, mm, addr);
	za->anon++;
	count_vm_event(mm->host, PGUNMAP);
	/* A swap-cache page whose slot no PTE references any more keeps the
	 * slot for nothing: drop it (else reclaim, holding the lock, will). */
	if (PageFlag(page, PG_swapcache) && trylock_page(page)) {
		try_to_free_swap_locked(page);
		unlock_page(page);
	}
	put_page(page);
	return 0;
}

/*
 * Remove every PTE in [start, end). Called with mmap_lock held and, unless
 * the mm's subscribers were released, inside an invalidation covering it.
 */
void zap_page_range_locked(struct mm *mm, hva_t start, hva_t end)
{
	struct zap_arg za = { 0 };

	spin_lock(&mm->page_table_lock);
	walk_pte_range(mm, start, end, zap_one, &za);
	spin_unlock(&mm->page_table_lock);
	add_mm_counter(mm, MM_ANONPAGES, -za.anon);
	add_mm_counter(mm, MM_SWAPENTS, -za.swap);
}

/*
 * Check an (addr, len) pair from a caller. Returns 0 and the page-aligned
 * end, -EINVAL for an unaligned address, -ENOMEM for a range outside the
 * address space (a length that overflows when rounded up included).
 */
int mm_validate_range(hva_t addr, uint64_t len, hva_t *end)
{
	if (!PAGE_ALIGNED(addr))
		return -EINVAL;
	if (len > TASK_SIZE)
		return -ENOMEM;
	uint64_t alen = PAGE_ALIGN(len);
	if (addr < TASK_UNMAPPED_FLOOR || addr >= TASK_SIZE || alen > TASK_SIZE - addr)
		return -ENOMEM;
	*end = addr + alen;
	return 0;
}

/*
 * Unmap [start, end): split the VMAs at the edges, invalidate, zap, free
 * the tables nothing else needs, drop the VMAs. Called with mmap_lock held
 * for write. On -ENOMEM (a split failed) nothing has been unmapped.
 */
int do_munmap(struct mm *mm, hva_t start, hva_t end, bool notify)
{
	unsigned int i = vma_index(mm, start);
	int err;

	lockdep_assert_held_write(&mm->mmap_lock);
	if (i >= mm->nr_vmas || mm->vmas[i]->vm_start >= end)
		return 0;
	if (mm->vmas[i]->vm_start < start) {
		err = vma_split(mm, i, start);
		if (err)
			return err;
		i++;
	}
	unsigned int j = vma_index(mm, end - 1);
	if (j < mm->nr_vmas && mm->vmas[j]->vm_start < end && mm->vmas[j]->vm_end > end) {
		err = vma_split(mm, j, end);
		if (err) {
			/* Undo the first split: a failed call changes nothing
			 * (and twin VMAs would break vma.c invariant 2). */
			vma_merge_around(mm, start, start);
			return err;
		}
	}

	struct mmu_notifier_range range;
	bool notified = notify && !host_break(mm->host, HOST_BREAK_MUNMAP_NOTIFY);

	mmu_notifier_range_init(&range, MMU_NOTIFY_UNMAP, MMU_NOTIFIER_RANGE_BLOCKABLE,
				mm, start, end);
	if (notified)
		mmu_notifier_invalidate_range_start(&range);
	zap_page_range_locked(mm, start, end);
	if (notified)
		mmu_notifier_invalidate_range_end(&range);

	unsigned int k = i;

	while (k < mm->nr_vmas && mm->vmas[k]->vm_start < end)
		free(mm->vmas[k++]);
	vma_remove_range(mm, i, k - i);
	hva_t floor = i ? mm->vmas[i - 1]->vm_end : 0;
	hva_t ceiling = i < mm->nr_vmas ? mm->vmas[i]->vm_start : TASK_SIZE;

	spin_lock(&mm->page_table_lock);
	free_pgtables(mm, start, end, floor, ceiling);
	spin_unlock(&mm->page_table_lock);
	return 0;
}

static void exit_mmap(struct mm *mm)
{
	atomic_store(&mm->exiting, true);
	/* Secondary MMUs drop everything before a frame is freed. */
	mmu_notifier_release(mm);
	down_write(&mm->mmap_lock);
	if (mm->nr_vmas)
		do_munmap(mm, TASK_UNMAPPED_FLOOR, TASK_SIZE, false);
	BUG_ON(mm->nr_vmas);
	BUG_ON(atomic_load(&mm->rss[MM_ANONPAGES]) != 0);
	BUG_ON(atomic_load(&mm->rss[MM_SWAPENTS]) != 0);
	up_write(&mm->mmap_lock);
}

void mmput(struct mm *mm)
{
	if (atomic_fetch_sub_explicit(&mm->mm_users, 1, memory_order_acq_rel) != 1)
		return;
	exit_mmap(mm);
	mmdrop(mm);
}

#define MMAP_KNOWN_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_FIXED_NOREPLACE)

int mm_mmap(struct mm *mm, hva_t addr, uint64_t len, int prot, int flags,
	    hva_t *out)
{
	struct vm_area_struct *vma;
	hva_t end = 0; /* set on every path that reads it; -O2 cannot tell */
	int err;

	if (!mm || !out)
		return -EINVAL;
	if (len == 0 || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
		return -EINVAL;
	if ((flags & ~MMAP_KNOWN_FLAGS) || !(flags & MAP_PRIVATE) ||
	    !(flags & MAP_ANONYMOUS))
		return -EINVAL;
	if (len > TASK_SIZE - TASK_UNMAPPED_FLOOR)
		return -ENOMEM;
	len = PAGE_ALIGN(len);
	bool fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	if (fixed) {
		err = mm_validate_range(addr, len, &end);
		if (err)
			return err;
	}

	vma = calloc(1, sizeof(*vma));
	if (!vma)
		return -ENOMEM;
	down_write(&mm->mmap_lock);
	if (atomic_load(&mm->exiting)) {
		err = -ESRCH;
		goto out_unlock;
	}
	if (fixed) {
		struct vm_area_struct *next = find_vma(mm, addr);
		bool overlap = next && next->vm_start < end;

		if (overlap && (flags & MAP_FIXED_NOREPLACE)) {
			err = -EEXIST;
			goto out_unlock;
		}
		if (overlap) {
			err = do_munmap(mm, addr, end, true);
			if (err)
				goto out_unlock;
		}
	} else {
		/* A free, aligned hint is honoured; else top-down search. */
		struct vm_area_struct *next;

		if (addr && mm_validate_range(addr, len, &end) == 0 &&
		    (!(next = find_vma(mm, addr)) || next->vm_start >= end)) {
			/* hint fits */
		} else {
			err = get_unmapped_area(mm, len, &addr);
			if (err)
				goto out_unlock;
			end = addr + len;
		}
	}
	vma->vm_start = addr;
	vma->vm_end = end;
	vma->vm_flags = prot_to_vm_flags(prot);
	err = vma_insert(mm, vma);
	if (err)
		goto out_unlock;
	vma = NULL;
	vma_merge_around(mm, addr, end);
	*out = addr;
out_unlock:
	up_write(&mm->mmap_lock);
	free(vma);
	return err;
}

int mm_munmap(struct mm *mm, hva_t addr, uint64_t len)
{
	hva_t end;
	int err;

	if (!mm)
		return -EINVAL;
	if (len == 0)
		return -EINVAL;
	err = mm_validate_range(addr, len, &end);
	if (err)
		return err == -ENOMEM ? -EINVAL : err; /* as munmap(2) */
	down_write(&mm->mmap_lock);
	err = atomic_load(&mm->exiting) ? -ESRCH : do_munmap(mm, addr, end, true);
	up_write(&mm->mmap_lock);
	return err;
}

struct prot_arg {
	unsigned long vm_flags;
};

/* Apply a VMA's new protection to one PTE. Under page_table_lock. */
static int change_prot_one(struct mm *mm, hva_t addr, pte_t *ptep, void *arg)
{
	struct prot_arg *pa = arg;
	pte_t old = READ_ONCE(*ptep), pte = old;

	if (!pte_present(old))
		return 0;
	if (!(pa->vm_flags & VM_WRITE))
		pte &= ~_PAGE_RW;
	if (pa->vm_flags & VM_ACCESS_FLAGS)
		pte |= _PAGE_USER;
	else
		pte &= ~_PAGE_USER;
	if (pte != old)
		set_pte(mm, addr, ptep, pte);
	return 0;
}

/*
 * Change the protection of [start, end) = one whole vma. Downgrades are
 * bracketed by an invalidation; upgrades need none (a secondary MMU that
 * kept a read-only translation simply faults again for write).
 * Called with mmap_lock held for write.
 */
static void change_protection(struct vm_area_struct *vma, unsigned long newflags)
{
	struct mm *mm = vma->vm_mm;
	unsigned long lost = vma->vm_flags & ~newflags & VM_ACCESS_FLAGS;
	struct prot_arg pa = { .vm_flags = newflags };
	struct mmu_notifier_range range;
	bool notify = lost && !host_break(mm->host, HOST_BREAK_MPROTECT_NOTIFY);

	lockdep_assert_held_write(&mm->mmap_lock);
	mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_VMA,
				MMU_NOTIFIER_RANGE_BLOCKABLE, mm, vma->vm_start,
				vma->vm_end);
	if (notify)
		mmu_notifier_invalidate_range_start(&range);
	vma->vm_flags = (vma->vm_flags & ~VM_ACCESS_FLAGS) | newflags;
	spin_lock(&mm->page_table_lock);
	walk_pte_range(mm, vma->vm_start, vma->vm_end, change_prot_one, &pa);
	spin_unlock(&mm->page_table_lock);
	if (notify)
		mmu_notifier_invalidate_range_end(&range);
}

int mm_mprotect(struct mm *mm, hva_t addr, uint64_t len, int prot)
{
	unsigned long newflags;
	hva_t end;
	int err;

	if (!mm)
		return -EINVAL;
	if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))
		return -EINVAL;
	if (!PAGE_ALIGNED(addr))
		return -EINVAL;
	if (len == 0)
		return 0;
	err = mm_validate_range(addr, len, &end);
	if (err)
		return err;
	newflags = prot_to_vm_flags(prot);
	down_write(&mm->mmap_lock);
	if (atomic_load(&mm->exiting)) {
		err = -ESRCH;
		goto out;
	}
	if (!vma_range_mapped(mm, addr, end)) {
		err = -ENOMEM; /* as mprotect(2): a hole in the range */
		goto out;
	}
	unsigned int i = vma_index(mm, addr);
	if (mm->vmas[i]->vm_start < addr) {
		err = vma_split(mm, i, addr);
		if (err)
			goto out;
		i++;
	}
	unsigned int j = vma_index(mm, end - 1);
	if (mm->vmas[j]->vm_end > end) {
		err = vma_split(mm, j, end);
		if (err)
			goto out_merge;
	}
	for (; i < mm->nr_vmas && mm->vmas[i]->vm_start < end; i++)
		if ((mm->vmas[i]->vm_flags & VM_ACCESS_FLAGS) != newflags)
			change_protection(mm->vmas[i], newflags);
out_merge:
	vma_merge_around(mm, addr, end);
out:
	up_write(&mm->mmap_lock);
	return err;
}

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

pte_t mm_lookup_pte(struct mm *mm, hva_t addr)
{
	pte_t pte = 0, *ptep;

	if (!mm || addr >= TASK_SIZE)
		return 0;
	spin_lock(&mm->page_table_lock);
	ptep = pte_offset(mm, addr);
	if (ptep)
		pte = READ_ONCE(*ptep);
	spin_unlock(&mm->page_table_lock);
	return pte;
}
