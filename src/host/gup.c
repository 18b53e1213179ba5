/* SPDX-License-Identifier: MIT */
/*
 * gup.c - get_user_page: the primary MMU lookup a secondary MMU builds on,
 * and host-side reads/writes of an address space.
 *
 * GUP returns the frame mapped at an address with a reference, faulting it
 * in first (for write: breaking COW) and reports whether the PTE allows
 * writes. The reference is short-term: the caller installs its own mapping
 * and drops it, relying on MMU notifiers (not the reference) to learn when
 * the mapping must go. That is the seeds' whole point: no pinning.
 *
 * The PTE is marked accessed (and dirty for write), as a CPU access would,
 * so that aging sees pages a secondary MMU uses.
 */
#include <string.h>
#include "internal.h"

/* Called with mmap_lock held for read. */
int __get_user_page_locked(struct mm *mm, hva_t addr, unsigned int gup_flags,
			   struct page **pagep, bool *writable)
{
	bool write = gup_flags & FOLL_WRITE;
	struct vm_area_struct *vma;
	int err;

	lockdep_assert_held(&mm->mmap_lock);
	if (addr >= TASK_SIZE)
		return -EFAULT;
	addr &= PAGE_MASK;
	count_vm_event(mm->host, GUP_CALLS);
	vma = vma_lookup(mm, addr);
	if (!vma)
		return -EFAULT;
	if (write ? !(vma->vm_flags & VM_WRITE) : !(vma->vm_flags & VM_ACCESS_FLAGS))
		return -EFAULT;
	for (;;) {
		spin_lock(&mm->page_table_lock);
		pte_t *ptep = pte_offset(mm, addr);
		pte_t pte = ptep ? READ_ONCE(*ptep) : 0;

		if (pte_present(pte) && pte_user(pte) && (!write || pte_write(pte))) {
			struct page *page = pfn_to_page(mm->host, pte_pfn(pte));
			pte_t young = pte | _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);

			if (young != pte)
				set_pte(mm, addr, ptep, young);
			get_page(page);
			spin_unlock(&mm->page_table_lock);
			*pagep = page;
			if (writable)
				*writable = pte_write(pte);
			return 0;
		}
		spin_unlock(&mm->page_table_lock);
		if (gup_flags & FOLL_NOFAULT)
			return -EFAULT;
		err = handle_mm_fault(vma, addr, write ? FAULT_FLAG_WRITE : 0);
		if (err)
			return err;
	}
}

int get_user_page(struct mm *mm, hva_t addr, unsigned int gup_flags,
		  struct page **pagep, bool *writable)
{
	int err;

	if (!mm || !pagep || (gup_flags & ~(FOLL_WRITE | FOLL_NOFAULT)))
		return -EINVAL;
	if (!mmget_not_zero(mm))
		return -ESRCH;
	down_read(&mm->mmap_lock);
	err = __get_user_page_locked(mm, addr, gup_flags, pagep, writable);
	up_read(&mm->mmap_lock);
	mmput(mm);
	return err;
}

/*
 * Copy between buf and [addr, addr + len). mmap_lock is held for read
 * across each page's lookup *and* copy, so fork (which write-protects
 * under mmap_lock for write) cannot share a page between our lookup and
 * our write.
 */
static int64_t access_remote(struct mm *mm, hva_t addr, void *buf, uint64_t len,
			     bool write)
{
	uint64_t done = 0;
	int err = 0;

	if (!mm || (!buf && len))
		return -EINVAL;
	if (addr >= TASK_SIZE || len > TASK_SIZE - addr)
		return -EFAULT;
	if (!mmget_not_zero(mm))
		return -ESRCH;
	down_read(&mm->mmap_lock);
	while (done < len) {
		hva_t a = addr + done;
		uint64_t off = a & ~PAGE_MASK, n = MIN(PAGE_SIZE - off, len - done);
		struct page *page;

		err = __get_user_page_locked(mm, a, write ? FOLL_WRITE : 0, &page, NULL);
		if (err)
			break;
		char *p = (char *)page_address(page) + off;
		if (write) {
			memcpy(p, (const char *)buf + done, n);
			set_page_dirty(page);
		} else {
			memcpy((char *)buf + done, p, n);
		}
		put_page(page);
		done += n;
	}
	up_read(&mm->mmap_lock);
	mmput(mm);
	return err ? err : (int64_t)done;
}

int64_t mm_read(struct mm *mm, hva_t addr, void *buf, uint64_t len)
{
	return access_remote(mm, addr, buf, len, false);
}

int64_t mm_write(struct mm *mm, hva_t addr, const void *buf, uint64_t len)
{
	return access_remote(mm, addr, (void *)buf, len, true);
}
