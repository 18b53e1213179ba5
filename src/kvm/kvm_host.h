/* SPDX-License-Identifier: MIT */
/*
 * kvm_host.h - the secondary MMU's internal state and the calls execution
 * engines (src/cpu) make into it: the lockless translation, the fault
 * path and vCPU request plumbing, as Linux's kvm_host.h serves arch code.
 *
 * THE invariant of the whole system: while an spte maps frame F under
 * mmu_lock, the host still maps F at the spte's hva. The host changes a PTE
 * only after invalidate_range_start returned, and that handler zaps the
 * sptes under mmu_lock for write and flushes every vCPU's soft TLB; a fault
 * installs an spte only if no invalidation of its hva ran or is running
 * since it looked the frame up (the sequence-retry idiom below). So a frame
 * seen through a present spte, under mmu_lock or from guest mode, is never
 * a frame the host has taken back.
 *
 * Sequence-retry idiom (one for every fill of a secondary mapping):
 *
 *   fault (reader)                       invalidation (writer)
 *   ---------------------------------    -----------------------------------
 *   seq = mmu_invalidate_seq (acquire)   start: write_lock(mmu_lock)
 *   GUP -> frame (may sleep)                    in_progress++, widen range
 *   write_lock(mmu_lock)                        zap sptes, flush TLBs (wait)
 *   retry if in_progress && hva in range        write_unlock
 *         or seq != mmu_invalidate_seq   host changes the PTE, frees frame
 *   install spte                         end:   seq++          (release)
 *   write_unlock; put_page                      in_progress--  (release)
 *
 * If the reader's GUP saw the old PTE, either the writer had not yet
 * started (start then zaps what the reader installs, since the reader
 * installs under mmu_lock before start takes it) or the reader, under
 * mmu_lock after start released it, sees in_progress (start's increment)
 * or, once end has dropped it, the bumped seq -- end bumps seq before it
 * drops the count, both with release, and the reader loads the count with
 * acquire before it loads seq -- and retries.
 *
 * end takes no lock: a waiting TLB flush holds mmu_lock while it sleeps
 * for vCPUs in guest mode, and the OOM reaper's end must not wait for a
 * vCPU any more than its start may. Begins are serialized by mmu_lock, so
 * a begin that finds the count at 0 knows every earlier range has ended.
 *
 * Lock order: slots_lock > (notifier range_lock) > mmu_lock > kvm->lock.
 * Never call synchronize_rcu() with mmu_lock held or from a notifier
 * callback. The fault path holds an RCU read-side section from its memslot
 * lookup until the spte is installed, so a memslot update that waits for a
 * grace period waits for every fault that used the old slot.
 */
#ifndef TANDEM_KVM_HOST_H
#define TANDEM_KVM_HOST_H

#include <pthread.h>
#include "tandem/kvm.h"
#include "tandem/host.h"
#include "tandem/pgtable.h"
#include "tandem/mmu_notifier.h"
#include "base/compiler.h"
#include "base/fault_inject.h"
#include "base/lock.h"
#include "spte.h"
#include "gva.h"

/* ---- memslots ---- */
#define KVM_MEMSLOT_INVALID (1u << 16)  /* being deleted or moved */

struct kvm_memory_slot {
	gfn_t base_gfn;
	uint64_t npages;
	hva_t userspace_addr;
	uint32_t flags;
	uint32_t id;
};

/* An immutable, RCU-published set of slots sorted by base_gfn. */
struct kvm_memslots {
	uint64_t generation;
	unsigned int nr;
	struct kvm_memory_slot slots[];
};

static inline hva_t slot_gfn_to_hva(const struct kvm_memory_slot *s, gfn_t gfn)
{
	return s->userspace_addr + ((gfn - s->base_gfn) << PAGE_SHIFT);
}

/*
 * The gfns of slot s that back hvas in [start, end): [*gs, *ge). Returns
 * false if the slot backs none of them. Used by every hva-range handler.
 */
static inline bool slot_hva_range_to_gfns(const struct kvm_memory_slot *s,
					  hva_t start, hva_t end, gfn_t *gs, gfn_t *ge)
{
	hva_t s_start = s->userspace_addr;
	hva_t s_end = s_start + (s->npages << PAGE_SHIFT);
	hva_t a = MAX(start, s_start), b = MIN(end, s_end);

	if (a >= b)
		return false;
	*gs = s->base_gfn + ((a - s_start) >> PAGE_SHIFT);
	*ge = s->base_gfn + ((b - s_start + PAGE_SIZE - 1) >> PAGE_SHIFT);
	return true;
}

static inline bool slot_is_writable(const struct kvm_memory_slot *s)
{
	return !(s->flags & KVM_MEM_READONLY);
}

struct kvm_vcpu;

struct kvm {
	struct mm *mm;
	struct host *host;              /* mm's host */
	char *arena;                    /* host frame 0: frame pfn is at arena + pfn * 4 KiB */
	struct kvm_config cfg;
	enum kvm_kick_mode kick;        /* WAIT or RSEQ, resolved at creation */
	struct mmu_notifier mmu_notifier;
	bool mn_registered;

	/* mmu_lock guards the sptes' contents (write to zap or install; read
	 * for the aging walks, which change bits with atomics) and the
	 * invalidate state below. */
	struct rwsem mmu_lock;
	_Atomic unsigned long mmu_invalidate_seq;   /* ++ by end, no lock */
	/* ++ by start under mmu_lock, -- by end without it (header comment) */
	_Atomic long mmu_invalidate_in_progress;
	hva_t mmu_invalidate_range_start;           /* union of ranges in progress, */
	hva_t mmu_invalidate_range_end;             /* set by start under mmu_lock */
	bool mm_released;                           /* under mmu_lock */
	/* Under mmu_lock: a non-blockable start zapped sptes but could not
	 * wait for the vCPUs in guest mode (-EAGAIN). Until a flush confirms
	 * them gone, every zapper flushes even if it zaps nothing: the sptes
	 * it would have found are gone, not the translations. */
	bool tlb_flush_pending;

	/* Invalidations between start and end, counted outside mmu_lock (for
	 * caches invalidated before mmu_lock is taken). */
	struct mutex mn_invalidate_lock;
	long mn_active_invalidate_count;
	pthread_cond_t mn_invalidate_done;

	struct tdp_table *root;                     /* GPA page tables */
	atomic_long nr_tables;

	struct kvm_gva gva;                         /* GVA page tables (gva.h) */

	/* gfn_to_pfn caches (pfncache.c): the active ones, which every
	 * invalidate_range_start looks at. */
	struct mutex gpc_lock;
	struct gfn_to_pfn_cache *gpc_list;
	/* The published memslots' generation, readable without RCU (a
	 * cache's check compares it). */
	_Atomic uint64_t memslots_generation;

	struct mutex slots_lock;                    /* serializes slot updates */
	struct kvm_memslots *_Atomic memslots;      /* RCU */

	struct mutex lock;                          /* vcpus[] */
	struct kvm_vcpu *vcpus[KVM_MAX_VCPUS];
	atomic_int nr_vcpus;

	kvm_hook_fn _Atomic test_hook;              /* tests only */
	void *test_hook_arg;

	struct {
		atomic_ulong faults, fast_faults, fault_retries, invalidations,
			nonblock_starts, nonblock_eagain, nonblock_flush_in_guest,
			sptes_zapped, tlb_flushes, mmio_exits, age_calls,
			memslot_updates, gpc_refreshes, gpc_invalidations,
			gpc_requests, gpc_request_waits, gpc_nonblock_in_guest;
	} stat;
};

static inline struct kvm_memslots *kvm_memslots(struct kvm *kvm)
{
	return __atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE);
}

#define kvm_stat_inc(kvm, f) \
	atomic_fetch_add_explicit(&(kvm)->stat.f, 1, memory_order_relaxed)

/* memslot.c; lookups need an RCU read-side section. */
struct kvm_memory_slot *gfn_to_memslot(struct kvm_memslots *slots, gfn_t gfn);
void kvm_free_memslots(struct kvm *kvm);

/* tdp_mmu.c: the GPA page tables (map / zap / age), over tdp_iter.h. */
int kvm_tdp_mmu_init(struct kvm *kvm);
void kvm_tdp_mmu_destroy(struct kvm *kvm);
/* Lockless (a vCPU's walk): the leaf for gfn, or NULL if no table holds it. */
_Atomic spte_t *kvm_tdp_mmu_leaf(struct kvm *kvm, gfn_t gfn);
/* mmu_lock held for write: the leaf for gfn, allocating the tables on the
 * way; NULL if a table allocation failed (-ENOMEM). */
_Atomic spte_t *kvm_tdp_mmu_leaf_alloc(struct kvm *kvm, gfn_t gfn);
void tdp_mmu_set_spte(struct kvm *kvm, gfn_t gfn, _Atomic spte_t *sptep, spte_t new);
bool kvm_tdp_mmu_zap_gfn_range(struct kvm *kvm, gfn_t start, gfn_t end);
bool kvm_tdp_mmu_age_gfn_range(struct kvm *kvm, gfn_t start, gfn_t end, bool clear);

/* gva.c: the GVA page tables (gva.h). */
int kvm_gva_init(struct kvm *kvm);
void kvm_gva_destroy(struct kvm *kvm);
struct gva_root *kvm_gva_root_get(struct kvm *kvm, uint64_t satp);
int kvm_gva_install(struct kvm *kvm, struct gva_root *root, uint64_t token, uint64_t va,
		    const struct gva_walk *w);
void kvm_gva_sfence(struct kvm *kvm, bool has_va, uint64_t va, bool has_asid, uint16_t asid);
void kvm_gva_zap_gfn(struct kvm *kvm, gfn_t gfn, bool unmapped);
void kvm_gva_flush_all(struct kvm *kvm);
bool kvm_gva_age_gfn(struct kvm *kvm, gfn_t gfn, bool clear);
void kvm_gva_get_stats(struct kvm *kvm, struct kvm_stats *st);

/* pfncache.c */
void gfn_to_pfn_cache_invalidate_start(struct kvm *kvm, hva_t start, hva_t end,
				       bool may_block);
void gfn_to_pfn_cache_invalidate_gfns(struct kvm *kvm, gfn_t start, gfn_t end);
/* The cache lock's write side (pfncache.c; tests use it directly). */
void gpc_write_lock(struct gfn_to_pfn_cache *gpc);
void gpc_write_unlock(struct gfn_to_pfn_cache *gpc);
/* kvm_vcpu.c: set req on the vCPUs whose ids are in the mask, kick those
 * in guest mode, and (wait) sleep until each of those has left guest mode
 * once -- in either kick mode: a guest-mode cache user is no rseq section.
 * Called with kvm->lock held. Returns the number found in guest mode. */
int kvm_make_vcpus_request_mask(struct kvm *kvm, unsigned int req, uint64_t ids, bool wait);

/* kvm.c */
void kvm_flush_remote_tlbs(struct kvm *kvm);
bool kvm_unmap_hva_range_locked(struct kvm *kvm, hva_t start, hva_t end);
static inline bool mmu_invalidate_retry_hva(struct kvm *kvm, unsigned long seq,
					    hva_t hva)
{
	lockdep_assert_held(&kvm->mmu_lock);
	/* Acquire: pairs with end's release decrement, after which its seq
	 * bump is visible to the load below. */
	if (atomic_load_explicit(&kvm->mmu_invalidate_in_progress, memory_order_acquire) &&
	    hva >= kvm->mmu_invalidate_range_start &&
	    hva < kvm->mmu_invalidate_range_end)
		return true;
	return atomic_load_explicit(&kvm->mmu_invalidate_seq,
				    memory_order_relaxed) != seq;
}

/* kvm_vcpu.c. Both return how many vCPUs the request found in guest mode
 * (IN or EXITING), i.e. how many a waiting request waited for. */
int kvm_make_all_cpus_request(struct kvm *kvm, unsigned int req, bool wait);
/* The non-blockable flavour, for the OOM reaper's invalidations: called
 * with kvm->lock held (taken by mutex_trylock), never waits for a vCPU.
 * With sync: RSEQ mode still calls membarrier (which waits for no vCPU);
 * WAIT mode marks the vCPUs found in guest mode flush_pending. */
int kvm_make_all_cpus_request_nowait(struct kvm *kvm, unsigned int req, bool sync);
/* kvm->lock held: how many flush_pending vCPUs have not left guest mode
 * since (the others are cleared). */
int kvm_flush_pending_vcpus(struct kvm *kvm);

static inline void kvm_test_hook(struct kvm *kvm, enum kvm_hook_point at,
				 struct kvm_vcpu *v)
{
	kvm_hook_fn fn = atomic_load_explicit(&kvm->test_hook, memory_order_acquire);

	if (unlikely(fn != NULL))
		fn(kvm, at, v, kvm->test_hook_arg);
}

static inline void vcpu_test_hook(struct kvm_vcpu *v, enum vcpu_hook_point at)
{
	vcpu_hook_fn fn = atomic_load_explicit(&v->hook, memory_order_acquire);

	if (unlikely(fn != NULL))
		fn(v, at, v->hook_arg);
}

/* mmu.c: the fault path. */
enum {
	RET_PF_FIXED = 0,   /* spte installed or already fine: retry the access */
	RET_PF_RETRY,       /* raced an invalidation or a slot update */
	RET_PF_MMIO,        /* no slot, or a write to a read-only slot */
};
/*
 * The slow path. Called from a vCPU outside guest mode, with no lock held.
 * Returns RET_PF_FIXED (retry the access), RET_PF_RETRY (retry the fault),
 * RET_PF_MMIO (exit to the VMM) or a negative errno (-ENOMEM: out of
 * memory; -ESRCH: the mm is gone; -EFAULT: the slot's hva is not mapped;
 * -EIO: a swap-in failed).
 */
int kvm_mmu_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa, bool write);
/* Lockless: the "hardware" walk; marks accessed/dirty, may make a spte
 * writable (fast path: *fast). Returns the host address of the frame, or
 * NULL if the access needs the slow path. */
void *kvm_tdp_translate(struct kvm *kvm, gfn_t gfn, bool write, bool *fast);

#endif
