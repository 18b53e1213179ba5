/* SPDX-License-Identifier: MIT */
/*
 * vma.c - the VMA set of an mm: a sorted array of non-overlapping areas.
 *
 * Lookups are binary searches; inserts and removals move the tail of the
 * array. Linux uses a maple tree; a sorted array keeps every operation
 * simple and is fast for the few hundred areas a VMM creates.
 *
 * Invariants:
 *  1. vmas[i]->vm_end <= vmas[i+1]->vm_start; every vma is non-empty,
 *     page aligned, inside [TASK_UNMAPPED_FLOOR, TASK_SIZE).
 *  2. Two touching vmas with the same vm_flags are merged by
 *     vma_merge_around() after any call that may create them.
 * Readers hold mmap_lock in any mode; every change holds it for write.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define MAX_MAP_COUNT 65530 /* Linux's vm.max_map_count default */

unsigned long prot_to_vm_flags(int prot)
{
	unsigned long f = 0;

	if (prot & PROT_READ)
		f |= VM_READ;
	if (prot & PROT_WRITE)
		f |= VM_WRITE;
	if (prot & PROT_EXEC)
		f |= VM_EXEC;
	return f;
}

unsigned int vma_index(struct mm *mm, hva_t addr)
{
	unsigned int lo = 0, hi = mm->nr_vmas;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (mm->vmas[mid]->vm_end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct vm_area_struct *find_vma(struct mm *mm, hva_t addr)
{
	unsigned int i = vma_index(mm, addr);

	return i < mm->nr_vmas ? mm->vmas[i] : NULL;
}

struct vm_area_struct *vma_lookup(struct mm *mm, hva_t addr)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	return vma && vma->vm_start <= addr ? vma : NULL;
}

/*
 * Make room for nr more vmas (the map count limit allowing): the next nr
 * inserts cannot fail. For a caller that must not fail once it has begun
 * changing the mm. Called with mmap_lock held for write; 0 or -ENOMEM.
 */
int vma_prealloc(struct mm *mm, unsigned int nr)
{
	lockdep_assert_held_write(&mm->mmap_lock);
	if (nr > MAX_MAP_COUNT - mm->nr_vmas)
		return -ENOMEM;
	if (mm->nr_vmas + nr > mm->vma_cap) {
		unsigned int cap = mm->vma_cap ? mm->vma_cap * 2 : 16;

		while (cap < mm->nr_vmas + nr)
			cap *= 2;
		struct vm_area_struct **v = fault_realloc(FAULT_SITE_VMA, mm->vmas,
							   cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		mm->vmas = v;
		mm->vma_cap = cap;
	}
	return 0;
}

/* Called with mmap_lock held for write; vma must not overlap any other. */
int vma_insert(struct mm *mm, struct vm_area_struct *vma)
{
	int err = vma_prealloc(mm, 1);

	if (err)
		return err;
	unsigned int i = vma_index(mm, vma->vm_start);

	BUG_ON(i < mm->nr_vmas && mm->vmas[i]->vm_start < vma->vm_end);
	memmove(&mm->vmas[i + 1], &mm->vmas[i],
		(mm->nr_vmas - i) * sizeof(mm->vmas[0]));
	mm->vmas[i] = vma;
	mm->nr_vmas++;
	vma->vm_mm = mm;
	return 0;
}

/* Called with mmap_lock held for write; the caller frees the vma. */
void vma_remove_index(struct mm *mm, unsigned int idx)
{
	lockdep_assert_held_write(&mm->mmap_lock);
	BUG_ON(idx >= mm->nr_vmas);
	memmove(&mm->vmas[idx], &mm->vmas[idx + 1],
		(mm->nr_vmas - idx - 1) * sizeof(mm->vmas[0]));
	mm->nr_vmas--;
}

/* Remove vmas[idx, idx + nr) with one move of the tail, so unmapping many
 * areas (exit) stays linear. Called with mmap_lock held for write; the
 * caller frees the vmas. */
void vma_remove_range(struct mm *mm, unsigned int idx, unsigned int nr)
{
	lockdep_assert_held_write(&mm->mmap_lock);
	BUG_ON(idx > mm->nr_vmas || nr > mm->nr_vmas - idx);
	memmove(&mm->vmas[idx], &mm->vmas[idx + nr],
		(mm->nr_vmas - idx - nr) * sizeof(mm->vmas[0]));
	mm->nr_vmas -= nr;
}

/*
 * Split vmas[idx] at addr (strictly inside it) into [start, addr) at idx
 * and [addr, end) at idx + 1. Called with mmap_lock held for write.
 */
int vma_split(struct mm *mm, unsigned int idx, hva_t addr)
{
	struct vm_area_struct *vma = mm->vmas[idx], *tail;
	int err;

	lockdep_assert_held_write(&mm->mmap_lock);
	BUG_ON(addr <= vma->vm_start || addr >= vma->vm_end || !PAGE_ALIGNED(addr));
	tail = fault_malloc(FAULT_SITE_VMA, sizeof(*tail));
	if (!tail)
		return -ENOMEM;
	*tail = *vma;
	tail->vm_start = addr;
	vma->vm_end = addr;
	err = vma_insert(mm, tail);
	if (err) {
		vma->vm_end = tail->vm_end;
		free(tail);
	}
	return err;
}

/*
 * Merge touching vmas with equal flags in the neighbourhood of [start, end).
 * Called with mmap_lock held for write.
 */
void vma_merge_around(struct mm *mm, hva_t start, hva_t end)
{
	unsigned int i = vma_index(mm, start ? start - 1 : 0);

	lockdep_assert_held_write(&mm->mmap_lock);
	while (i + 1 < mm->nr_vmas && mm->vmas[i]->vm_start <= end) {
		struct vm_area_struct *a = mm->vmas[i], *b = mm->vmas[i + 1];

		if (a->vm_end == b->vm_start && a->vm_flags == b->vm_flags) {
			a->vm_end = b->vm_end;
			vma_remove_index(mm, i + 1);
			free(b);
			continue;
		}
		i++;
	}
}

/* True if every byte of [start, end) is inside some vma. mmap_lock held. */
bool vma_range_mapped(struct mm *mm, hva_t start, hva_t end)
{
	hva_t addr = start;

	for (unsigned int i = vma_index(mm, start); i < mm->nr_vmas && addr < end; i++) {
		if (mm->vmas[i]->vm_start > addr)
			return false;
		addr = mm->vmas[i]->vm_end;
	}
	return addr >= end;
}

/*
 * Find room for len bytes, top-down from TASK_SIZE as Linux's default
 * layout does. Called with mmap_lock held.
 */
int get_unmapped_area(struct mm *mm, uint64_t len, hva_t *out)
{
	hva_t ceiling = TASK_SIZE;

	for (unsigned int i = mm->nr_vmas; ; i--) {
		hva_t floor = i ? mm->vmas[i - 1]->vm_end : TASK_UNMAPPED_FLOOR;

		if (ceiling >= floor && ceiling - floor >= len) {
			*out = ceiling - len;
			return 0;
		}
		if (i == 0)
			return -ENOMEM;
		ceiling = mm->vmas[i - 1]->vm_start;
	}
}
