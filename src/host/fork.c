/* SPDX-License-Identifier: MIT */
/*
 * fork.c - copy-on-write duplication of an address space.
 *
 * The child gets a copy of every VMA and of every present PTE. Frames are
 * shared (refcount and mapcount up, a child rmap entry) and, in writable
 * VMAs, write-protected in both parent and child, so that the first write on
 * either side copies (fault.c). Write-protecting the parent downgrades its
 * PTEs, so the parent's writable VMAs are bracketed by a PROTECTION_PAGE
 * invalidation: a secondary MMU must not keep writing the shared frame.
 *
 * Locks: parent mmap_lock for write (no fault or GUP in the parent while
 * PTEs are copied); the parent's page_table_lock, then the child's, which
 * nobody else can see yet.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "tandem/mmu_notifier.h"

struct copy_arg {
	struct mm *child;
	struct vm_area_struct *vma;
	int err;
	long copied;
	long swapped;
};

/* Under both page_table_locks. */
static int copy_one(struct mm *src, hva_t addr, pte_t *ptep, void *arg)
{
	struct copy_arg *ca = arg;
	struct mm *dst = ca->child;
	pte_t pte = READ_ONCE(*ptep);
	pte_t *dptep;

	dptep = pte_alloc(dst, addr);
	if (!dptep) {
		ca->err = -ENOMEM;
		return 1;
	}
	if (pte_is_swap(pte)) {
		/* Parent and child share the slot; whoever faults first
		 * reads it in, and the other finds it in the swap cache. */
		swap_duplicate(src->host, pte_swp_slot(pte));
		set_pte(dst, addr, dptep, pte);
		ca->swapped++;
		return 0;
	}
	BUG_ON(!pte_present(pte));
	/* The rmap item first: if it fails, this PTE is left as it was in
	 * both mms and the walk stops. */
	if (!pte_special(pte)) {
		struct page *page = pfn_to_page(src->host, pte_pfn(pte));

		if (page_add_anon_rmap(page, dst, addr)) {
			ca->err = -ENOMEM;
			return 1;
		}
		get_page(page);
		ca->copied++;
	}
	if ((ca->vma->vm_flags & VM_WRITE) && pte_write(pte)) {
		pte &= ~_PAGE_RW;
		set_pte(src, addr, ptep, pte);
	}
	/* The child has not used the page yet: start it old. */
	set_pte(dst, addr, dptep, pte & ~_PAGE_ACCESSED);
	return 0;
}

/*
 * Create the child's page tables wherever the parent has a PTE table in
 * vma, before the copy takes both page_table_locks: allocations here may
 * reclaim (under those locks they may not). Called with both mmap_locks
 * held for write; returns 0 or -ENOMEM.
 */
static int prepare_child_tables(struct mm *src, struct mm *dst,
				struct vm_area_struct *vma)
{
	for (hva_t a = vma->vm_start; a < vma->vm_end;
	     a = (a & ~(LEVEL_SIZE(2) - 1)) + LEVEL_SIZE(2)) {
		spin_lock(&src->page_table_lock);
		bool has = pte_offset(src, a) != NULL;
		spin_unlock(&src->page_table_lock);
		if (has) {
			int err = pte_alloc_prepare(dst, a);

			if (err)
				return err;
		}
	}
	return 0;
}

static int copy_vma_ptes(struct mm *src, struct mm *dst,
			 struct vm_area_struct *vma)
{
	struct copy_arg ca = { .child = dst, .vma = vma };
	int err = prepare_child_tables(src, dst, vma);

	if (err)
		return err;
	struct mmu_notifier_range range;
	bool notify = (vma->vm_flags & VM_WRITE) &&
		      !host_break(src->host, HOST_BREAK_FORK_NOTIFY);

	mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_PAGE,
				MMU_NOTIFIER_RANGE_BLOCKABLE, src, vma->vm_start,
				vma->vm_end);
	if (notify)
		mmu_notifier_invalidate_range_start(&range);
	spin_lock(&src->page_table_lock);
	spin_lock(&dst->page_table_lock);
	walk_pte_range(src, vma->vm_start, vma->vm_end, copy_one, &ca);
	spin_unlock(&dst->page_table_lock);
	spin_unlock(&src->page_table_lock);
	add_mm_counter(dst, MM_ANONPAGES, ca.copied);
	add_mm_counter(dst, MM_SWAPENTS, ca.swapped);
	if (notify)
		mmu_notifier_invalidate_range_end(&range);
	return ca.err;
}

/*
 * On failure (-ENOMEM) the child is torn down; PTEs of the parent that were
 * write-protected stay so (the next write fault makes them writable again).
 */
int mm_fork(struct mm *parent, struct mm **childp)
{
	struct mm *child;
	int err;

	if (!parent || !childp)
		return -EINVAL;
	err = mm_create(parent->host, &child);
	if (err)
		return err;
	down_write(&parent->mmap_lock);
	if (atomic_load(&parent->exiting)) {
		err = -ESRCH;
		goto out_unlock;
	}
	down_write(&child->mmap_lock);
	for (unsigned int i = 0; i < parent->nr_vmas && !err; i++) {
		struct vm_area_struct *vma = fault_malloc(FAULT_SITE_VMA, sizeof(*vma));

		if (!vma) {
			err = -ENOMEM;
			break;
		}
		*vma = *parent->vmas[i];
		err = vma_insert(child, vma);
		if (err) {
			free(vma);
			break;
		}
		err = copy_vma_ptes(parent, child, parent->vmas[i]);
	}
	up_write(&child->mmap_lock);
out_unlock:
	up_write(&parent->mmap_lock);
	if (err) {
		mmput(child);
		return err;
	}
	*childp = child;
	return 0;
}
