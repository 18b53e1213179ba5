/* SPDX-License-Identifier: MIT */
/*
 * mmu.c - the secondary MMU's fault path.
 *
 * A vCPU that misses its soft TLB first walks the GPA tables itself, with no
 * lock, as the hardware would (kvm_tdp_translate). That walk is also the
 * fast path: it marks a present spte accessed, and for a write it may make a
 * present read-only spte writable and dirty -- but only when the host PTE
 * was writable at install and the slot allows writes (spte_can_unsync_write),
 * never for a page that is COW-shared, merged, or in a read-only slot.
 *
 * Everything else goes to the slow path (kvm_mmu_page_fault), which follows
 * the sequence-retry idiom of kvm_host.h: snapshot mmu_invalidate_seq, look
 * the frame up through the host (GUP: may sleep, fault, break COW), take
 * mmu_lock, retry if an invalidation ran or is running over the hva, else
 * install the spte, unlock, and drop the GUP reference. Nothing stays pinned.
 */
#include <sched.h>
#include "kvm_host.h"
#include "base/rcu.h"

/*
 * Lockless walk from a vCPU. Returns the host address of the frame if the
 * spte allows the access (after marking it accessed/dirty, or making it
 * writable: *fast), else NULL. A cmpxchg that loses to a zap returns NULL:
 * the caller faults.
 */
void *kvm_tdp_translate(struct kvm *kvm, gfn_t gfn, bool write, bool *fast)
{
	_Atomic spte_t *sptep;
	spte_t old, new;

	*fast = false;
	if (gfn > TDP_MAX_GFN)
		return NULL;
	sptep = kvm_tdp_mmu_leaf(kvm, gfn);
	if (!sptep)
		return NULL;
	old = atomic_load_explicit(sptep, memory_order_acquire);
	for (;;) {
		if (!is_shadow_present(old))
			return NULL;
		new = old | SPTE_ACCESSED;
		if (write) {
			if (!(old & SPTE_WRITABLE)) {
				if (!spte_can_unsync_write(old))
					return NULL;
				new |= SPTE_WRITABLE;
				*fast = true;
			}
			new |= SPTE_DIRTY;
		}
		if (new == old ||
		    atomic_compare_exchange_weak_explicit(sptep, &old, new,
							  memory_order_acq_rel,
							  memory_order_acquire))
			break;
	}
	if (*fast)
		kvm_stat_inc(kvm, fast_faults);
	/* The arena's address arithmetic, not page_address(): this is every
	 * vCPU walk's path. */
	return kvm->arena + (spte_to_pfn(new) << PAGE_SHIFT);
}

/*
 * Look up the host frame behind hva. A read fault maps the page writable
 * only if it is already writable in the host (no fault taken for it):
 * faulting for write on a read would break COW needlessly, and mapping a
 * COW-shared page writable would leak writes into the other sharer.
 */
static int faultin_pfn(struct kvm *kvm, hva_t hva, bool write, struct page **page,
		       bool *writable)
{
	int r;

	if (write)
		return get_user_page(kvm->mm, hva, FOLL_WRITE, page, writable);
	r = get_user_page(kvm->mm, hva, FOLL_WRITE | FOLL_NOFAULT, page, writable);
	if (r == 0)
		return 0;
	return get_user_page(kvm->mm, hva, 0, page, writable);
}

int kvm_mmu_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa, bool write)
{
	struct kvm *kvm = vcpu->kvm;
	gfn_t gfn = gpa >> PAGE_SHIFT;
	struct kvm_memory_slot *slot, slot_copy;
	_Atomic spte_t *sptep;
	struct page *page;
	spte_t old, new;
	bool writable;
	unsigned long seq;
	hva_t hva;
	int r;

	if (gfn > TDP_MAX_GFN) {
		kvm_stat_inc(kvm, mmio_exits);
		return RET_PF_MMIO;
	}
	/*
	 * A user reference for the whole fault, taken and dropped outside
	 * the RCU section: the mm's exit (release() waits for a grace
	 * period) cannot start while we are in it, so GUP's own mmput is
	 * never the last, and ours, if it is, runs the exit outside the
	 * section. -ESRCH: the mm is exiting.
	 */
	if (!mmget_not_zero(kvm->mm))
		return -ESRCH;
	/* The RCU section spans lookup to install: a slot update waits for
	 * us before it zaps (memslot.c). */
	rcu_read_lock();
	slot = gfn_to_memslot(kvm_memslots(kvm), gfn);
	if (!slot || (write && (slot->flags & KVM_MEM_READONLY))) {
		kvm_stat_inc(kvm, mmio_exits);
		r = RET_PF_MMIO;
		goto out_rcu;
	}
	if (slot->flags & KVM_MEMSLOT_INVALID) {
		r = RET_PF_RETRY;
		goto out_rcu;
	}
	slot_copy = *slot;
	hva = slot_gfn_to_hva(&slot_copy, gfn);

	/* Pairs with the release in invalidate_range_end: a GUP that runs
	 * after this load sees the PTE as of that end or later. */
	seq = atomic_load_explicit(&kvm->mmu_invalidate_seq, memory_order_acquire);

	r = faultin_pfn(kvm, hva, write, &page, &writable);
	if (r)
		goto out_rcu;
	vcpu_test_hook(vcpu, VCPU_HOOK_AFTER_GUP);
	/* With the check broken, widen the window it guards so that a user
	 * watching --break=seq sees the race in seconds, not hours. */
	if (kvm->cfg.breaks & KVM_BREAK_SEQ_CHECK)
		sched_yield();

	down_write(&kvm->mmu_lock);
	/* Our user reference keeps the exit, and so release(), away. */
	BUG_ON(kvm->mm_released);
	if (!(kvm->cfg.breaks & KVM_BREAK_SEQ_CHECK) &&
	    mmu_invalidate_retry_hva(kvm, seq, hva)) {
		kvm_stat_inc(kvm, fault_retries);
		r = RET_PF_RETRY;
		goto out_unlock;
	}
	sptep = kvm_tdp_mmu_leaf_alloc(kvm, gfn);
	if (!sptep) {
		r = -ENOMEM;
		goto out_unlock;
	}
	old = atomic_load_explicit(sptep, memory_order_relaxed);
	new = make_leaf_spte(page_to_pfn(page), write, writable, slot_is_writable(&slot_copy));
	if (is_shadow_present(old) && spte_to_pfn(old) == spte_to_pfn(new))
		new |= old & (SPTE_DIRTY | SPTE_ACCESSED | SPTE_GVA);
	else if (is_shadow_present(old) && (kvm->cfg.breaks & KVM_BREAKS_STALE_SPTE))
		/* Only a break of the zap or the seq check lets a stale spte
		 * survive to here; drop it so the checker, not
		 * tdp_mmu_set_spte's BUG, reports the damage. */
		tdp_mmu_set_spte(kvm, gfn, sptep, 0);
	tdp_mmu_set_spte(kvm, gfn, sptep, new);
	/* RET_PF_FIXED promises that the access can now go through: a fault
	 * that installed an spte not allowing it would send its vCPU round
	 * the miss-fault loop forever. */
	BUG_ON(write && !(new & SPTE_WRITABLE));
	kvm_stat_inc(kvm, faults);
	if (write)
		set_page_dirty(page);
	mark_page_accessed(page);
	r = RET_PF_FIXED;
out_unlock:
	up_write(&kvm->mmu_lock);
	put_page(page);
out_rcu:
	rcu_read_unlock();
	mmput(kvm->mm);
	return r;
}
