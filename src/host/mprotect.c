/* SPDX-License-Identifier: MIT */
/*
 * mprotect.c - changing the protection of a range. The VMAs are split at
 * its edges and given the new flags; the PTEs follow. A downgrade (write
 * or all access taken away) is an invalidation (MMU_NOTIFY_PROTECTION_VMA):
 * secondary MMUs drop their translations before a PTE loses a permission.
 * An upgrade changes no PTE: the next fault installs the new permission.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

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
