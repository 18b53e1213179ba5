/* SPDX-License-Identifier: MIT */
/*
 * fault.c - resolving a host page fault on private anonymous memory.
 *
 * PTE state machine for one address (fault side):
 *
 *   none --read--> zero page (RO, special)   --write--> new page (RW) [copy]
 *   none --write--> new zeroed page (RW, dirty)
 *   RO page, sole owner (refcount == 1) --write--> same page RW   [reuse]
 *   RO page, shared (fork, GUP ref)     --write--> copy (RW)      [copy]
 *
 * A copy replaces a present PTE's frame, so it is bracketed by an
 * invalidation (CLEAR) and clears the PTE before installing the new one
 * (set_pte forbids changing a present PTE's frame in place). Reuse only
 * adds write permission: no invalidation is needed.
 *
 * Reuse tests refcount == 1, not mapcount: an extra reference (GUP by a
 * secondary MMU still holding the page) means someone may still look at the
 * old frame, so the writer gets a copy (Linux 5.8's COW rule).
 *
 * All functions are called with mmap_lock held (any mode) and return 0 when
 * the caller should retry the access (the PTE may now allow it, or a racing
 * fault changed it) or a negative errno.
 */
#include <string.h>
#include "internal.h"
#include "tandem/mmu_notifier.h"

static int do_anonymous_page(struct vm_area_struct *vma, hva_t addr, bool write)
{
	struct mm *mm = vma->vm_mm;
	struct page *page = NULL;
	pte_t *ptep, pte;
	int err = 0;

	if (write) {
		page = alloc_page(mm->host, GFP_ZERO);
		if (!page)
			return -ENOMEM;
		SetPageFlag(page, PG_swapbacked);
		pte = pfn_pte(page_to_pfn(page), _PAGE_PRESENT | _PAGE_USER |
			      _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY);
	} else {
		pte = pfn_pte(page_to_pfn(mm->host->zero_page), _PAGE_PRESENT |
			      _PAGE_USER | _PAGE_ACCESSED | _PAGE_SPECIAL);
	}
	spin_lock(&mm->page_table_lock);
	ptep = pte_alloc(mm, addr);
	if (!ptep) {
		err = -ENOMEM;
		goto out_unlock;
	}
	if (!pte_none(READ_ONCE(*ptep)))
		goto out_unlock; /* raced with another fault: retry */
	if (atomic_load(&mm->oom_victim)) {
		err = -ENOMEM;  /* killed while we allocated: reaped or being so */
		goto out_unlock;
	}
	if (page) {
		if (page_add_anon_rmap(page, mm, addr)) {
			err = -ENOMEM;  /* PTE still none; the page is put below */
			goto out_unlock;
		}
		add_mm_counter(mm, MM_ANONPAGES, 1);
		count_vm_event(mm->host, PGFAULT_ZERO);
		lru_cache_add(page);
		page = NULL; /* the PTE owns the allocation reference */
	} else {
		count_vm_event(mm->host, PGFAULT_ZERO_PAGE);
	}
	set_pte(mm, addr, ptep, pte);
out_unlock:
	spin_unlock(&mm->page_table_lock);
	if (page)
		put_page(page);
	return err;
}

/*
 * Write fault on a present read-only PTE of a writable VMA. Called with
 * page_table_lock held; returns with it released.
 */
static int do_wp_page(struct vm_area_struct *vma, hva_t addr, pte_t *ptep,
		      pte_t orig)
{
	struct mm *mm = vma->vm_mm;
	struct host *host = mm->host;
	struct page *old = NULL, *new;
	struct mmu_notifier_range range;
	bool notify = !host_break(host, HOST_BREAK_COW_NOTIFY);
	int ret = 0;
	pte_t pte;

	lockdep_assert_held(&mm->page_table_lock);
	if (!pte_special(orig)) {
		old = pfn_to_page(host, pte_pfn(orig));
		if (page_count(old) == 1) {
			/* Sole owner: nobody else can see this frame. */
			BUG_ON(page_mapcount(old) != 1);
			set_pte(mm, addr, ptep, orig | _PAGE_RW | _PAGE_DIRTY |
				_PAGE_ACCESSED);
			spin_unlock(&mm->page_table_lock);
			count_vm_event(host, COW_REUSE);
			return 0;
		}
		get_page(old); /* keep it while we copy without the lock */
	}
	spin_unlock(&mm->page_table_lock);

	new = alloc_page(host, old ? 0 : GFP_ZERO);
	if (!new) {
		if (old)
			put_page(old);
		return -ENOMEM;
	}
	if (old)
		memcpy(page_address(new), page_address(old), PAGE_SIZE);
	SetPageFlag(new, PG_swapbacked);

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				mm, addr, addr + PAGE_SIZE);
	if (notify)
		mmu_notifier_invalidate_range_start(&range);
	spin_lock(&mm->page_table_lock);
	if (READ_ONCE(*ptep) != orig || atomic_load(&mm->oom_victim)) {
		/* Changed under us (zapped, or another fault won): retry;
		 * or killed meanwhile: nothing may refill it. */
		if (atomic_load(&mm->oom_victim))
			ret = -ENOMEM;
		spin_unlock(&mm->page_table_lock);
		put_page(new);
		goto out;
	}
	/* The rmap item first: if it cannot be had, the old read-only PTE
	 * stays and the write fails with -ENOMEM (secondary MMUs have only
	 * lost a translation they will fault back). */
	if (page_add_anon_rmap(new, mm, addr)) {
		ret = -ENOMEM;
		spin_unlock(&mm->page_table_lock);
		put_page(new);
		goto out;
	}
	pte = pfn_pte(page_to_pfn(new), _PAGE_PRESENT | _PAGE_USER | _PAGE_RW |
		      _PAGE_ACCESSED | _PAGE_DIRTY);
	set_pte(mm, addr, ptep, 0);
	set_pte(mm, addr, ptep, pte);
	lru_cache_add(new);
	if (old) {
		page_remove_rmap(old, mm, addr);
		put_page(old); /* the old PTE's reference */
	} else {
		add_mm_counter(mm, MM_ANONPAGES, 1);
	}
	spin_unlock(&mm->page_table_lock);
	count_vm_event(host, COW_BREAK);
	if (notify)
		mmu_notifier_change_pte(mm, addr, pte);
out:
	if (notify)
		mmu_notifier_invalidate_range_end(&range);
	if (old)
		put_page(old); /* ours */
	return ret;
}

/*
 * The PTE holds a swap entry: find the page in the swap cache or read it
 * in, and map it read-only (a write fault then goes through do_wp_page,
 * which reuses the page once nothing else holds it). Dropping the last swap
 * reference releases the swap cache entry, so that reuse can happen.
 * Returns 0 (retry the access), -ENOMEM, or -EIO (the slot could not be
 * read: the data is lost, and the caller -- the VM that needed it -- dies).
 * After -ENOMEM the PTE is still the swap entry; the page may have been
 * read into the swap cache meanwhile (a later fault maps it from there).
 */
static int do_swap_page(struct vm_area_struct *vma, hva_t addr, pte_t entry)
{
	struct mm *mm = vma->vm_mm;
	struct host *host = mm->host;
	uint64_t slot = pte_swp_slot(entry);
	struct page *page;
	pte_t *ptep;
	int err;

	err = swapin_page(host, slot, &page);
	if (err == -EAGAIN)
		return 0;       /* the entry went away: look again */
	if (err)
		return err;
	spin_lock(&mm->page_table_lock);
	ptep = pte_offset(mm, addr);
	if (!ptep || READ_ONCE(*ptep) != entry || atomic_load(&mm->oom_victim)) {
		bool killed = atomic_load(&mm->oom_victim);

		spin_unlock(&mm->page_table_lock);
		put_page(page);
		return killed ? -ENOMEM : 0;
	}
	if (page_add_anon_rmap(page, mm, addr)) {
		/* The PTE stays a swap entry; the page stays in the swap
		 * cache, where the next fault finds it. */
		spin_unlock(&mm->page_table_lock);
		put_page(page);
		return -ENOMEM;
	}
	get_page(page); /* the PTE's reference */
	add_mm_counter(mm, MM_ANONPAGES, 1);
	add_mm_counter(mm, MM_SWAPENTS, -1);
	set_pte(mm, addr, ptep, pfn_pte(page_to_pfn(page), _PAGE_PRESENT |
		_PAGE_USER | _PAGE_ACCESSED));
	spin_unlock(&mm->page_table_lock);
	swap_free(host, slot);
	mark_page_accessed(page);
	put_page(page);
	return 0;
}

/*
 * Resolve a fault at addr in vma. Called with mmap_lock held (any mode).
 * Returns 0 (retry the access), -EFAULT (not permitted) or -ENOMEM.
 */
int handle_mm_fault(struct vm_area_struct *vma, hva_t addr, unsigned int flags)
{
	struct mm *mm = vma->vm_mm;
	bool write = flags & FAULT_FLAG_WRITE;
	pte_t *ptep, pte;

	lockdep_assert_held(&mm->mmap_lock);
	count_vm_event(mm->host, PGFAULT);
	if (atomic_load_explicit(&mm->oom_victim, memory_order_relaxed))
		return -ENOMEM; /* being reaped: nothing may refill it */
	if (write ? !(vma->vm_flags & VM_WRITE) : !(vma->vm_flags & VM_ACCESS_FLAGS))
		return -EFAULT;
	addr &= PAGE_MASK;
	int err = pte_alloc_prepare(mm, addr);

	if (err)
		return err;
	spin_lock(&mm->page_table_lock);
	ptep = pte_offset(mm, addr);
	pte = ptep ? READ_ONCE(*ptep) : 0;
	if (pte_none(pte)) {
		spin_unlock(&mm->page_table_lock);
		return do_anonymous_page(vma, addr, write);
	}
	if (pte_is_swap(pte)) {
		spin_unlock(&mm->page_table_lock);
		return do_swap_page(vma, addr, pte);
	}
	BUG_ON(!pte_present(pte));
	if (write && !pte_write(pte))
		return do_wp_page(vma, addr, ptep, pte);
	/* Permitted already (a racing fault fixed it): mark it used. */
	pte |= _PAGE_USER | _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
	if (pte != READ_ONCE(*ptep))
		set_pte(mm, addr, ptep, pte);
	spin_unlock(&mm->page_table_lock);
	return 0;
}
