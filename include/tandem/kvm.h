/* SPDX-License-Identifier: MIT */
/*
 * kvm.h - the secondary MMU: VMs, memslots, GPA page tables kept in step
 * with the host through MMU notifiers, and the vCPUs that use them.
 *
 * A VM belongs to one host mm (the VMM's address space). Guest memory is
 * host memory: a memslot maps a range of guest frames (gfn) onto a range of
 * the mm's virtual addresses (hva). The VM's GPA page tables (sptes) cache
 * gfn -> host frame translations built on demand from the host page tables
 * through GUP, holding no reference once installed; the host's invalidations
 * tell the VM when a translation must go.
 */
#ifndef TANDEM_KVM_H
#define TANDEM_KVM_H

#include "tandem/types.h"
#include "tandem/mm_types.h"

#define KVM_MAX_VCPUS    64
#define KVM_MAX_MEMSLOTS 512

/* Memslot flags, as in the KVM API. */
#define KVM_MEM_LOG_DIRTY_PAGES (1u << 0)
#define KVM_MEM_READONLY        (1u << 1)

struct kvm_userspace_memory_region {
	uint32_t slot;
	uint32_t flags;
	gpa_t guest_phys_addr;
	uint64_t memory_size;   /* 0 deletes the slot */
	hva_t userspace_addr;
};

/*
 * Switches that each disable one piece of the invalidation protocol, so a
 * user can watch the integrity checker catch the race (tandem run --break).
 */
enum kvm_break {
	KVM_BREAK_SEQ_CHECK   = 1u << 0, /* fault ignores in-progress/seq */
	KVM_BREAK_FLUSH_WAIT  = 1u << 1, /* TLB flush neither waits for vCPUs
					  * nor (RSEQ) calls membarrier */
	KVM_BREAK_RANGE_ZAP   = 1u << 2, /* range_start does not zap sptes */
	KVM_BREAK_AGING       = 1u << 3, /* the aging handlers report nothing
					  * young (they still clear and flush):
					  * reclaim evicts pages only guests use */
};
#define KVM_BREAK_ALL (KVM_BREAK_SEQ_CHECK | KVM_BREAK_FLUSH_WAIT | \
		       KVM_BREAK_RANGE_ZAP | KVM_BREAK_AGING)

/*
 * How a remote TLB flush makes sure no vCPU still uses a zapped translation.
 *  WAIT: KVM's protocol -- set the request, kick, sleep until every vCPU that
 *        was in guest mode has left it. A vCPU preempted in guest mode makes
 *        the flush wait for the scheduler to run it again.
 *  RSEQ: each soft-TLB hit is an rseq critical section that the kernel
 *        aborts on preemption (a VM exit, as on real hardware); the flush
 *        sets the request and calls membarrier(EXPEDITED_RSEQ) to abort the
 *        running ones. Never waits for a vCPU. x86-64, non-sanitizer builds.
 *  AUTO: RSEQ where available, else WAIT.
 */
struct kvm;
struct kvm_vcpu;

enum kvm_kick_mode {
	KVM_KICK_AUTO = 0,
	KVM_KICK_WAIT,
	KVM_KICK_RSEQ,
};

struct kvm_config {
	unsigned int breaks;    /* enum kvm_break */
	enum kvm_kick_mode kick;
};

/* The mode a VM resolved KVM_KICK_AUTO to. */
enum kvm_kick_mode kvm_kick_mode(struct kvm *kvm);
const char *kvm_kick_mode_name(enum kvm_kick_mode mode);

struct kvm;
struct kvm_vcpu;

int kvm_create_vm(struct mm *mm, const struct kvm_config *cfg, struct kvm **out);
/* Stops nothing: vCPUs must have been destroyed. */
void kvm_destroy_vm(struct kvm *kvm);
int kvm_set_user_memory_region(struct kvm *kvm,
			       const struct kvm_userspace_memory_region *mem);

struct kvm_stats {
	uint64_t faults;            /* slow-path faults resolved */
	uint64_t fast_faults;       /* resolved by the lockless fast path */
	uint64_t fault_retries;     /* slow path raced an invalidation */
	uint64_t invalidations;     /* invalidate_range_start calls (that got
				     * the locks: each has its end) */
	uint64_t nonblock_starts;   /* non-blockable starts (OOM reaper), all */
	uint64_t nonblock_eagain;   /* non-blockable starts refused (-EAGAIN) */
	uint64_t nonblock_flush_in_guest; /* non-blockable starts that found a
				     * vCPU in guest mode, not waited for
				     * (WAIT mode: -EAGAIN until it left;
				     * RSEQ: membarrier, 0) */
	uint64_t sptes_zapped;
	uint64_t tlb_flushes;       /* remote TLB flush requests */
	uint64_t mmio_exits;        /* guest access with no writable slot */
	uint64_t age_calls;
	uint64_t memslot_updates;
	uint64_t pgtable_pages;     /* GPA page-table pages now */
};
void kvm_get_stats(struct kvm *kvm, struct kvm_stats *st);

#endif
