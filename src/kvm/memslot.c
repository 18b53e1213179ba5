/* SPDX-License-Identifier: MIT */
/*
 * memslot.c - guest physical memory layout: slots mapping gfn ranges onto
 * host virtual ranges, changed while vCPUs run.
 *
 * The slot set is an immutable array sorted by base_gfn, published with RCU;
 * every update builds a new array and swaps it in under slots_lock, bumping
 * the generation. Lookups run inside an RCU read-side section (the fault
 * path holds one until its spte is installed).
 *
 * Deleting or moving a slot is two swaps, as in KVM:
 *   1. publish a copy in which the slot is KVM_MEMSLOT_INVALID: new faults
 *      on it retry; synchronize_rcu() waits for faults that saw it valid,
 *      which have installed their sptes by then;
 *   2. zap the slot's sptes under mmu_lock and flush every vCPU's TLB (and
 *      wait), so no vCPU can reach the old mapping;
 *   3. publish the final array; synchronize_rcu(); free the old arrays.
 * So when the update returns, the deleted range is unreachable.
 *
 * Both arrays are allocated before the first is published: an update
 * either fails with -ENOMEM having changed nothing, or cannot fail any
 * more. (Failing after step 1 would leave the slot invalid, its guest
 * memory unreachable, until the VMM deleted it.)
 *
 * Called from the VMM, never from a notifier callback or with mmu_lock held.
 */
#include <stdlib.h>
#include <string.h>
#include "kvm_host.h"
#include "base/rcu.h"

/* KVM_MEM_LOG_DIRTY_PAGES is refused (-EINVAL) until dirty logging
 * exists: a logged slot's sptes must be write-protected and every write
 * recorded, and a slot that claimed the flag without that would silently
 * lose the log. */
#define KVM_MEM_FLAGS KVM_MEM_READONLY

/* Binary search; called inside an RCU read-side section. */
struct kvm_memory_slot *gfn_to_memslot(struct kvm_memslots *slots, gfn_t gfn)
{
	unsigned int lo = 0, hi = slots->nr;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		struct kvm_memory_slot *s = &slots->slots[mid];

		if (gfn < s->base_gfn)
			hi = mid;
		else if (gfn >= s->base_gfn + s->npages)
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

static struct kvm_memslots *slots_alloc(unsigned int nr)
{
	return fault_calloc(FAULT_SITE_MEMSLOTS, 1, sizeof(struct kvm_memslots) +
			    nr * sizeof(struct kvm_memory_slot));
}

/* A copy of old with slot id removed (if present) and, if add, *add inserted
 * in gfn order. */
static struct kvm_memslots *slots_build(const struct kvm_memslots *old, uint32_t id,
					const struct kvm_memory_slot *add)
{
	struct kvm_memslots *n = slots_alloc(old->nr + 1);
	unsigned int j = 0;
	bool placed = !add;

	if (!n)
		return NULL;
	for (unsigned int i = 0; i < old->nr; i++) {
		if (old->slots[i].id == id)
			continue;
		if (!placed && add->base_gfn < old->slots[i].base_gfn) {
			n->slots[j++] = *add;
			placed = true;
		}
		n->slots[j++] = old->slots[i];
	}
	if (!placed)
		n->slots[j++] = *add;
	n->nr = j;
	n->generation = old->generation + 1;
	return n;
}

static void slots_publish(struct kvm *kvm, struct kvm_memslots *n)
{
	lockdep_assert_held(&kvm->slots_lock);
	__atomic_store_n(&kvm->memslots, n, __ATOMIC_RELEASE);
	atomic_store_explicit(&kvm->memslots_generation, n->generation, memory_order_release);
	kvm_stat_inc(kvm, memslot_updates);
}

static int check_region(struct kvm *kvm, const struct kvm_userspace_memory_region *mem,
			const struct kvm_memslots *slots, const struct kvm_memory_slot **oldp)
{
	const struct kvm_memory_slot *old = NULL;

	if (mem->slot >= KVM_MAX_MEMSLOTS || (mem->flags & ~KVM_MEM_FLAGS))
		return -EINVAL;
	for (unsigned int i = 0; i < slots->nr; i++)
		if (slots->slots[i].id == mem->slot)
			old = &slots->slots[i];
	*oldp = old;
	if (mem->memory_size == 0)
		return old ? 0 : -EINVAL;   /* deleting a slot that does not exist */
	if (!PAGE_ALIGNED(mem->guest_phys_addr) || !PAGE_ALIGNED(mem->memory_size) ||
	    !PAGE_ALIGNED(mem->userspace_addr))
		return -EINVAL;
	gfn_t base = mem->guest_phys_addr >> PAGE_SHIFT;
	uint64_t npages = mem->memory_size >> PAGE_SHIFT;
	if (base > TDP_MAX_GFN || npages > TDP_MAX_GFN + 1 - base)
		return -EINVAL;
	if (mem->userspace_addr >= TASK_SIZE || mem->memory_size > TASK_SIZE - mem->userspace_addr)
		return -EINVAL;
	if (old) {
		/* As KVM: an existing slot may move, not change its size,
		 * its backing or READONLY. */
		if (npages != old->npages || mem->userspace_addr != old->userspace_addr ||
		    ((mem->flags ^ old->flags) & KVM_MEM_READONLY))
			return -EINVAL;
	}
	for (unsigned int i = 0; i < slots->nr; i++) {
		const struct kvm_memory_slot *s = &slots->slots[i];

		if (s->id == mem->slot)
			continue;
		if (base < s->base_gfn + s->npages && s->base_gfn < base + npages)
			return -EEXIST;
	}
	return 0;
}

/*
 * Make slot `old` unreachable: steps 1 and 2 of the header comment. inv is
 * the current array with old marked KVM_MEMSLOT_INVALID, built by the
 * caller; the current array is freed. Called with slots_lock held.
 */
static void invalidate_slot(struct kvm *kvm, struct kvm_memslots *inv,
			    const struct kvm_memory_slot *old)
{
	struct kvm_memslots *cur = kvm_memslots(kvm);

	lockdep_assert_held(&kvm->slots_lock);
	slots_publish(kvm, inv);
	synchronize_rcu();
	free(cur);
	kvm_test_hook(kvm, KVM_HOOK_SLOT_INVALID, NULL);

	down_write(&kvm->mmu_lock);
	if (kvm_tdp_mmu_zap_gfn_range(kvm, old->base_gfn, old->base_gfn + old->npages) ||
	    kvm->tlb_flush_pending)
		kvm_flush_remote_tlbs(kvm);
	up_write(&kvm->mmu_lock);
	/* The host mapping may stay: a vCPU holding a gfn_to_pfn cache's
	 * address in the slot for guest mode must let go of it. */
	gfn_to_pfn_cache_invalidate_gfns(kvm, old->base_gfn, old->base_gfn + old->npages);
}

int kvm_set_user_memory_region(struct kvm *kvm,
			       const struct kvm_userspace_memory_region *mem)
{
	struct kvm_memslots *cur, *inv = NULL, *next;
	const struct kvm_memory_slot *old;
	struct kvm_memory_slot new_slot;
	int err;

	if (!kvm || !mem)
		return -EINVAL;
	mutex_lock(&kvm->slots_lock);
	cur = kvm_memslots(kvm);
	err = check_region(kvm, mem, cur, &old);
	if (err)
		goto out;
	new_slot = (struct kvm_memory_slot){
		.base_gfn = mem->guest_phys_addr >> PAGE_SHIFT,
		.npages = mem->memory_size >> PAGE_SHIFT,
		.userspace_addr = mem->userspace_addr,
		.flags = mem->flags,
		.id = mem->slot,
	};
	bool moving = old && new_slot.base_gfn != old->base_gfn;

	/* Delete or move: nothing of the old mapping may stay reachable. */
	if (old && (mem->memory_size == 0 || moving)) {
		struct kvm_memory_slot invalid = *old;

		invalid.flags |= KVM_MEMSLOT_INVALID;
		inv = slots_build(cur, old->id, &invalid);
		if (!inv) {
			err = -ENOMEM;
			goto out;
		}
	}
	/* Built from cur, not inv: they differ only in the old slot, which
	 * next drops or replaces. From here on nothing fails. */
	next = slots_build(cur, mem->slot, mem->memory_size ? &new_slot : NULL);
	if (!next) {
		free(inv);
		err = -ENOMEM;
		goto out;
	}
	if (inv) {
		struct kvm_memory_slot gone = *old;   /* old is in cur: freed next */

		next->generation = inv->generation + 1;
		invalidate_slot(kvm, inv, &gone);
		cur = inv;
	}
	slots_publish(kvm, next);
	synchronize_rcu();
	free(cur);
out:
	mutex_unlock(&kvm->slots_lock);
	return err;
}

/* VM teardown: no reader is left. */
void kvm_free_memslots(struct kvm *kvm)
{
	free(kvm_memslots(kvm));
	kvm->memslots = NULL;
}
