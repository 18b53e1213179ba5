/* SPDX-License-Identifier: MIT */
/*
 * mmap.c - mapping and unmapping areas: mm_mmap (private anonymous memory,
 * MAP_FIXED / MAP_FIXED_NOREPLACE / a hint) and mm_munmap. An unmap
 * invalidates (MMU_NOTIFY_UNMAP), zaps, frees the page tables no VMA needs
 * any more, and shrinks or drops the VMAs; MAP_FIXED over a mapping unmaps
 * first, as mmap(2) does.
 *
 * Failures change nothing (-ENOMEM for memory): whatever an operation must
 * allocate, it allocates before the first change. Only a hole punched
 * inside one VMA needs a new VMA, so unmapping the head or tail of a
 * mapping, or whole mappings, cannot fail -- which is what lets a caller
 * undo a fresh mmap that merged with a neighbour.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

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
 * Unmap [start, end): invalidate, zap, free the tables nothing else
 * needs, then shrink the VMAs that straddle an edge and drop those inside.
 * Called with mmap_lock held for write. Returns 0, or -ENOMEM with nothing
 * unmapped when [start, end) is a hole inside one VMA and the VMA for the
 * part above it cannot be had; any other unmap cannot fail.
 */
int do_munmap(struct mm *mm, hva_t start, hva_t end, bool notify)
{
	unsigned int i = vma_index(mm, start), k;
	int err;

	lockdep_assert_held_write(&mm->mmap_lock);
	if (i >= mm->nr_vmas || mm->vmas[i]->vm_start >= end)
		return 0;
	if (mm->vmas[i]->vm_start < start && mm->vmas[i]->vm_end > end) {
		/* The one allocation, before any change: [end, vm_end). */
		err = vma_split(mm, i, end);
		if (err)
			return err;
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

	/* A VMA that starts below start keeps its head ... */
	if (mm->vmas[i]->vm_start < start) {
		mm->vmas[i]->vm_end = start;
		i++;
	}
	/* ... those inside go, and one that ends above end keeps its tail. */
	k = i;
	while (k < mm->nr_vmas && mm->vmas[k]->vm_end <= end)
		free(mm->vmas[k++]);
	if (k < mm->nr_vmas && mm->vmas[k]->vm_start < end)
		mm->vmas[k]->vm_start = end;
	vma_remove_range(mm, i, k - i);
	hva_t floor = i ? mm->vmas[i - 1]->vm_end : 0;
	hva_t ceiling = i < mm->nr_vmas ? mm->vmas[i]->vm_start : TASK_SIZE;

	spin_lock(&mm->page_table_lock);
	free_pgtables(mm, start, end, floor, ceiling);
	spin_unlock(&mm->page_table_lock);
	return 0;
}

#define MMAP_KNOWN_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_FIXED_NOREPLACE)

/*
 * MAP_FIXED over [start, end) unmaps what is there, then inserts one VMA.
 * Reserve what both need before anything is unmapped, so that running out
 * (of memory for the VMA array, or under the map count limit) leaves the
 * old mappings in place: at the peak, one more entry if the range is a
 * hole inside one VMA (do_munmap's split); at the end, one more than the
 * VMAs the range covers whole, gone by then. Called with mmap_lock held for
 * write; 0 or -ENOMEM.
 */
static int mmap_fixed_prealloc(struct mm *mm, hva_t start, hva_t end)
{
	unsigned int whole = 0, hole = 0;

	for (unsigned int i = vma_index(mm, start);
	     i < mm->nr_vmas && mm->vmas[i]->vm_start < end; i++) {
		const struct vm_area_struct *v = mm->vmas[i];

		if (v->vm_start >= start && v->vm_end <= end)
			whole++;
		else if (v->vm_start < start && v->vm_end > end)
			hole = 1;
	}
	return vma_prealloc(mm, hole + (whole ? 0 : 1));
}

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

	vma = fault_calloc(FAULT_SITE_VMA, 1, sizeof(*vma));
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
			err = mmap_fixed_prealloc(mm, addr, end);
			if (!err)
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
