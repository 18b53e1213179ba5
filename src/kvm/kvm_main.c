/* SPDX-License-Identifier: MIT */
/*
 * kvm_main.c - a VM: its lifetime, and the MMU-notifier handlers through which
 * the host keeps the GPA page tables honest.
 *
 * invalidate_range_start (blockable):
 *   1. mn_active_invalidate_count++ (outside mmu_lock; caches that are
 *      invalidated before mmu_lock is taken check it on refresh);
 *   2. write_lock(mmu_lock); in_progress++; widen the in-progress hva
 *      range (it only grows until in_progress returns to 0);
 *   3. zap the sptes of every slot overlapping the range; if anything was
 *      zapped, flush every vCPU's TLB and wait (kvm_flush_remote_tlbs)
 *      *before* unlocking: after start returns no vCPU can reach the old
 *      frames, so the host may free them;
 *   4. write_unlock.
 * invalidate_range_end:
 *   seq++ then in_progress--, both release, no lock (kvm_host.h: the bump
 *   must be visible to any fault that sees the count drop, and end must
 *   not wait behind a flush that waits for vCPUs); active count--, wake
 *   waiters.
 *
 * invalidate_range_start (non-blockable: the OOM reaper; range flags lack
 * MMU_NOTIFIER_RANGE_BLOCKABLE): the same steps, but it must not sleep.
 *   - It tries mn_invalidate_lock, mmu_lock (write) and kvm->lock (the
 *     vCPU array, which a waiting flush holds while it sleeps) and returns
 *     -EAGAIN, having changed nothing, if one is taken. The notifier core
 *     then calls no end for it, so nothing may be left to undo.
 *   - With the locks, it zaps as above and sends KVM_REQ_TLB_FLUSH
 *     without waiting (KVM's pfncache did the same for the reaper: "clear
 *     the KVM_REQUEST_WAIT bit and send the request anyway"). In RSEQ
 *     mode membarrier still aborts running sections (a syscall that waits
 *     for its IPIs, never for a vCPU thread), so it is as safe as ever
 *     and start returns 0. In WAIT mode, a vCPU found in guest mode may
 *     still use a zapped translation and only a wait would tell when it
 *     stops, so start "would block": -EAGAIN, with the request left set
 *     and tlb_flush_pending recording that a flush is unconfirmed. The
 *     reaper retries (the VMM is stopping the victim's vCPUs); a retry
 *     succeeds once every vCPU then in guest mode has left it, and a
 *     blockable zapper meanwhile flushes (and waits) even if it finds
 *     nothing left to zap. Either way the vCPUs found in guest mode are
 *     counted (nonblock_flush_in_guest).
 *   end is the same for both kinds: it cannot fail, and never waits for a
 *   vCPU (it takes no lock that a waiting flush holds).
 *
 * Unlike KVM since 5.15 we count every start and end, whether or not a slot
 * overlaps: the counts stay balanced however the slots change
 * between start and end, which is the race 52ac8b358b0c closes with a wait.
 * The in-progress range is in hva space (as in 5.12-6.7), so it needs no
 * slot lookup either.
 */
#include <stdlib.h>
#include <string.h>
#include "kvm_host.h"
#include "base/rcu.h"

static inline struct kvm *mn_to_kvm(struct mmu_notifier *mn)
{
	return container_of(mn, struct kvm, mmu_notifier);
}

/*
 * Zap every spte whose slot maps an hva in [start, end). Called with
 * mmu_lock held for write, inside an RCU read-side section (slots).
 * Returns true if a TLB flush is due.
 */
bool kvm_unmap_hva_range_locked(struct kvm *kvm, hva_t start, hva_t end)
{
	struct kvm_memslots *slots = kvm_memslots(kvm);
	bool flush = false;

	lockdep_assert_held_write(&kvm->mmu_lock);
	for (unsigned int i = 0; i < slots->nr; i++) {
		const struct kvm_memory_slot *s = &slots->slots[i];
		gfn_t gs, ge;

		if (slot_hva_range_to_gfns(s, start, end, &gs, &ge))
			flush |= kvm_tdp_mmu_zap_gfn_range(kvm, gs, ge);
	}
	return flush;
}

static void mn_active_invalidate_inc(struct kvm *kvm)
{
	mutex_lock(&kvm->mn_invalidate_lock);
	kvm->mn_active_invalidate_count++;
	mutex_unlock(&kvm->mn_invalidate_lock);
}

static void mn_active_invalidate_dec(struct kvm *kvm)
{
	mutex_lock(&kvm->mn_invalidate_lock);
	BUG_ON(--kvm->mn_active_invalidate_count < 0);
	if (!kvm->mn_active_invalidate_count)
		pthread_cond_broadcast(&kvm->mn_invalidate_done);
	mutex_unlock(&kvm->mn_invalidate_lock);
}

/* Count [start, end) in progress and widen the in-progress range. Called
 * with mmu_lock held for write. */
static void mmu_invalidate_begin(struct kvm *kvm, hva_t start, hva_t end)
{
	lockdep_assert_held_write(&kvm->mmu_lock);
	/* Relaxed: an RMW, it continues the release sequence of the end that
	 * last dropped the count, which a fault's acquire load relies on. */
	if (atomic_fetch_add_explicit(&kvm->mmu_invalidate_in_progress, 1,
				      memory_order_relaxed) == 0) {
		kvm->mmu_invalidate_range_start = start;
		kvm->mmu_invalidate_range_end = end;
	} else {
		/* Grow only: faults must see the union of every range still
		 * in progress, not just the latest. */
		kvm->mmu_invalidate_range_start =
			MIN(kvm->mmu_invalidate_range_start, start);
		kvm->mmu_invalidate_range_end =
			MAX(kvm->mmu_invalidate_range_end, end);
	}
}

/*
 * The OOM reaper's start (header comment): every lock by trylock, nothing
 * changed until it is sure to succeed, no wait for vCPUs. Returns 0 or
 * -EAGAIN (then the core calls no end: nothing may be left to undo).
 */
static int invalidate_range_start_nonblock(struct kvm *kvm,
					   const struct mmu_notifier_range *range)
{
	bool flush = false, sync = !(kvm->cfg.breaks & KVM_BREAK_FLUSH_WAIT);
	int nr_in_guest = 0;

	kvm_stat_inc(kvm, nonblock_starts);
	if (!mutex_trylock(&kvm->mn_invalidate_lock))
		goto eagain;
	if (!down_write_trylock(&kvm->mmu_lock)) {
		mutex_unlock(&kvm->mn_invalidate_lock);
		goto eagain;
	}
	/* kvm->lock after mmu_lock (the lock order); taken now, not at the
	 * flush, because once sptes are zapped the flush must be sent. */
	if (!mutex_trylock(&kvm->lock)) {
		up_write(&kvm->mmu_lock);
		mutex_unlock(&kvm->mn_invalidate_lock);
		goto eagain;
	}

	/* Zap and flush first, and count the range in progress only once
	 * this start is sure to succeed: under mmu_lock for write throughout,
	 * so no fault can install an spte in between either way. */
	rcu_read_lock();
	if (!(kvm->cfg.breaks & KVM_BREAK_RANGE_ZAP))
		flush = kvm_unmap_hva_range_locked(kvm, range->start, range->end);
	if (flush) {
		kvm_stat_inc(kvm, tlb_flushes);
		nr_in_guest = kvm_make_all_cpus_request_nowait(kvm, KVM_REQ_TLB_FLUSH, sync);
	} else if (kvm->tlb_flush_pending) {
		/* An earlier attempt's flush: have its vCPUs left since? */
		nr_in_guest = kvm_flush_pending_vcpus(kvm);
	}
	rcu_read_unlock();
	if (nr_in_guest)
		kvm_stat_inc(kvm, nonblock_flush_in_guest);
	if (nr_in_guest && kvm->kick == KVM_KICK_WAIT && sync) {
		/* WAIT mode: a vCPU in guest mode may still use what was just
		 * zapped, and only waiting would tell when it stops: "would
		 * block". The request stays set (it exits at its next access);
		 * the zapped sptes are harmless (the host changed no PTE), but
		 * their flush is not confirmed: tlb_flush_pending. */
		kvm->tlb_flush_pending = true;
		mutex_unlock(&kvm->lock);
		up_write(&kvm->mmu_lock);
		mutex_unlock(&kvm->mn_invalidate_lock);
		goto eagain;
	}
	/* Confirmed (RSEQ: membarrier aborted what ran in guest mode). */
	kvm->tlb_flush_pending = false;

	/* Committed: this start succeeds and is owed its end. */
	kvm_stat_inc(kvm, invalidations);
	kvm->mn_active_invalidate_count++;
	mutex_unlock(&kvm->mn_invalidate_lock);
	/* Readers of a cache hold its lock for a few stores, never across a
	 * sleep, and gpc_lock is never held across a wait for a vCPU: this
	 * does not wait for one. Guest-mode users are sent their request
	 * without a wait (pfncache.c), under kvm->lock (still held). */
	gfn_to_pfn_cache_invalidate_start(kvm, range->start, range->end, false);
	mutex_unlock(&kvm->lock);
	mmu_invalidate_begin(kvm, range->start, range->end);
	up_write(&kvm->mmu_lock);
	return 0;
eagain:
	kvm_stat_inc(kvm, nonblock_eagain);
	return -EAGAIN;
}

static int kvm_mmu_notifier_invalidate_range_start(struct mmu_notifier *mn,
						   const struct mmu_notifier_range *range)
{
	struct kvm *kvm = mn_to_kvm(mn);
	bool flush = false;

	if (!mmu_notifier_range_blockable(range))
		return invalidate_range_start_nonblock(kvm, range);

	kvm_stat_inc(kvm, invalidations);
	mn_active_invalidate_inc(kvm);
	/* Counted first: a refresh that looked the page up before this sees
	 * the count (pfncache.c). */
	gfn_to_pfn_cache_invalidate_start(kvm, range->start, range->end, true);

	rcu_read_lock();
	down_write(&kvm->mmu_lock);
	mmu_invalidate_begin(kvm, range->start, range->end);
	if (!(kvm->cfg.breaks & KVM_BREAK_RANGE_ZAP))
		flush = kvm_unmap_hva_range_locked(kvm, range->start, range->end);
	if (flush || kvm->tlb_flush_pending)
		kvm_flush_remote_tlbs(kvm);
	up_write(&kvm->mmu_lock);
	rcu_read_unlock();
	return 0;
}

static void kvm_mmu_notifier_invalidate_range_end(struct mmu_notifier *mn,
						  const struct mmu_notifier_range *range)
{
	struct kvm *kvm = mn_to_kvm(mn);

	/* seq first, both release: a fault that sees in_progress drop (with
	 * acquire, under mmu_lock) must also see the new seq (kvm_host.h). */
	long was;

	atomic_fetch_add_explicit(&kvm->mmu_invalidate_seq, 1, memory_order_release);
	was = atomic_fetch_sub_explicit(&kvm->mmu_invalidate_in_progress, 1,
					memory_order_release);
	BUG_ON(was <= 0);
	mn_active_invalidate_dec(kvm);
}

/* Aging: which slots' gfns back [start, end)? Called with mmu_lock held. */
static bool kvm_age_hva_range(struct kvm *kvm, hva_t start, hva_t end, bool clear)
{
	struct kvm_memslots *slots;
	bool young = false;

	kvm_stat_inc(kvm, age_calls);
	rcu_read_lock();
	slots = kvm_memslots(kvm);
	down_read(&kvm->mmu_lock);
	for (unsigned int i = 0; i < slots->nr; i++) {
		const struct kvm_memory_slot *s = &slots->slots[i];
		gfn_t gs, ge;

		if (slot_hva_range_to_gfns(s, start, end, &gs, &ge))
			young |= kvm_tdp_mmu_age_gfn_range(kvm, gs, ge, clear);
	}
	up_read(&kvm->mmu_lock);
	rcu_read_unlock();
	return young;
}

/*
 * What the aging handlers report. With --break=aging: nothing young. The
 * walk still runs and still clears the accessed bits (and clear_flush_young
 * still flushes when it found some), so the vCPUs and the host see exactly
 * the work of an intact run, and the lie is the only difference: whatever
 * reclaim then does to pages only guests use is the report's doing.
 */
static int age_report(struct kvm *kvm, bool young)
{
	return (kvm->cfg.breaks & KVM_BREAK_AGING) ? 0 : young;
}

static int kvm_mmu_notifier_clear_flush_young(struct mmu_notifier *mn, struct mm *mm,
					      hva_t start, hva_t end)
{
	struct kvm *kvm = mn_to_kvm(mn);
	bool young = kvm_age_hva_range(kvm, start, end, true);

	/* A vCPU's soft TLB hit does not set the accessed bit (only its
	 * walk does), so the next access must walk again to be seen. */
	if (young)
		kvm_make_all_cpus_request(kvm, KVM_REQ_TLB_FLUSH, false);
	return age_report(kvm, young);
}

static int kvm_mmu_notifier_clear_young(struct mmu_notifier *mn, struct mm *mm,
					hva_t start, hva_t end)
{
	struct kvm *kvm = mn_to_kvm(mn);

	/* No flush: cheaper, and approximate, as in KVM. */
	return age_report(kvm, kvm_age_hva_range(kvm, start, end, true));
}

static int kvm_mmu_notifier_test_young(struct mmu_notifier *mn, struct mm *mm,
				       hva_t address)
{
	struct kvm *kvm = mn_to_kvm(mn);

	return age_report(kvm, kvm_age_hva_range(kvm, address, address + PAGE_SIZE,
						 false));
}

/*
 * change_pte (kvm_set_spte_hva): the seed-era handler. The host calls it
 * between start and end, after start zapped the spte, so it normally finds
 * nothing (why Linux 6.10 removed it). If it does find one, it must not
 * let the new frame in through the back door: a different frame is zapped
 * (the next fault maps it honestly, respecting read-only slots and keeping
 * clean pages clean); the same frame only loses write permission when the
 * new PTE is read-only.
 */
static void kvm_mmu_notifier_change_pte(struct mmu_notifier *mn, struct mm *mm,
					hva_t address, pte_t pte)
{
	struct kvm *kvm = mn_to_kvm(mn);
	struct kvm_memslots *slots;
	bool flush = false;

	rcu_read_lock();
	slots = kvm_memslots(kvm);
	down_write(&kvm->mmu_lock);
	for (unsigned int i = 0; i < slots->nr; i++) {
		const struct kvm_memory_slot *s = &slots->slots[i];
		hva_t s_start = s->userspace_addr;

		if (address < s_start || address >= s_start + (s->npages << PAGE_SHIFT))
			continue;
		gfn_t gfn = s->base_gfn + ((address - s_start) >> PAGE_SHIFT);
		_Atomic spte_t *sptep = kvm_tdp_mmu_leaf(kvm, gfn);
		spte_t old = sptep ? atomic_load(sptep) : 0;

		if (!is_shadow_present(old))
			continue;
		if (!pte_is_present(pte) || pte_to_pfn(pte) != spte_to_pfn(old)) {
			tdp_mmu_set_spte(kvm, gfn, sptep, 0);
			flush = true;
		} else if (!pte_is_writable(pte) &&
			   (old & (SPTE_WRITABLE | SPTE_HOST_WRITABLE))) {
			tdp_mmu_set_spte(kvm, gfn, sptep,
				     old & ~(SPTE_WRITABLE | SPTE_HOST_WRITABLE));
			flush = true;
		}
	}
	if (flush || kvm->tlb_flush_pending)
		kvm_flush_remote_tlbs(kvm);
	up_write(&kvm->mmu_lock);
	rcu_read_unlock();
}

/* The mm is going away: drop every translation before its frames go. */
static void kvm_mmu_notifier_release(struct mmu_notifier *mn, struct mm *mm)
{
	struct kvm *kvm = mn_to_kvm(mn);

	down_write(&kvm->mmu_lock);
	kvm->mm_released = true;
	if (kvm_tdp_mmu_zap_gfn_range(kvm, 0, TDP_MAX_GFN + 1) || kvm->tlb_flush_pending)
		kvm_flush_remote_tlbs(kvm);
	up_write(&kvm->mmu_lock);
}

static const struct mmu_notifier_ops kvm_mmu_notifier_ops = {
	.invalidate_range_start = kvm_mmu_notifier_invalidate_range_start,
	.invalidate_range_end = kvm_mmu_notifier_invalidate_range_end,
	.clear_flush_young = kvm_mmu_notifier_clear_flush_young,
	.clear_young = kvm_mmu_notifier_clear_young,
	.test_young = kvm_mmu_notifier_test_young,
	.change_pte = kvm_mmu_notifier_change_pte,
	.release = kvm_mmu_notifier_release,
};

/*
 * Flush every vCPU's soft TLB and wait until none can still use an old
 * translation. Called with mmu_lock held for write, after zapping (or
 * with tlb_flush_pending set, which this settles).
 */
void kvm_flush_remote_tlbs(struct kvm *kvm)
{
	lockdep_assert_held_write(&kvm->mmu_lock);
	kvm_stat_inc(kvm, tlb_flushes);
	kvm_make_all_cpus_request(kvm, KVM_REQ_TLB_FLUSH,
				  !(kvm->cfg.breaks & KVM_BREAK_FLUSH_WAIT));
	kvm->tlb_flush_pending = false;
}

/* The struct and its locks, once nothing else is left. */
static void kvm_free(struct kvm *kvm)
{
	pthread_cond_destroy(&kvm->mn_invalidate_done);
	rwsem_destroy(&kvm->mmu_lock);
	mutex_destroy(&kvm->mn_invalidate_lock);
	mutex_destroy(&kvm->slots_lock);
	mutex_destroy(&kvm->lock);
	mutex_destroy(&kvm->gpc_lock);
	free(kvm);
}

int kvm_create_vm(struct mm *mm, const struct kvm_config *cfg, struct kvm **out)
{
	struct kvm *kvm;
	int err;

	if (!mm || !out)
		return -EINVAL;
	if (cfg && (cfg->breaks & ~KVM_BREAK_ALL))
		return -EINVAL;
	if (cfg && (unsigned int)cfg->kick > KVM_KICK_RSEQ)
		return -EINVAL;
	if (cfg && (unsigned int)cfg->gva > KVM_GVA_OFF)
		return -EINVAL;
	if (cfg && cfg->kick == KVM_KICK_RSEQ && !kvm_rseq_available())
		return -EOPNOTSUPP;
	kvm = calloc(1, sizeof(*kvm));
	if (!kvm)
		return -ENOMEM;
	if (cfg)
		kvm->cfg = *cfg;
	kvm->kick = kvm->cfg.kick;
	if (kvm->kick == KVM_KICK_AUTO)
		kvm->kick = kvm_rseq_available() ? KVM_KICK_RSEQ : KVM_KICK_WAIT;
	kvm->mm = mm;
	kvm->host = mm_host(mm);
	kvm->arena = page_address(pfn_to_page(kvm->host, 0));
	rwsem_init(&kvm->mmu_lock);
	mutex_init(&kvm->mn_invalidate_lock);
	pthread_cond_init(&kvm->mn_invalidate_done, NULL);
	mutex_init(&kvm->slots_lock);
	mutex_init(&kvm->lock);
	mutex_init(&kvm->gpc_lock);
	kvm->memslots = fault_calloc(FAULT_SITE_MEMSLOTS, 1, sizeof(struct kvm_memslots));
	if (!kvm->memslots) {
		err = -ENOMEM;
		goto out_free;
	}
	err = kvm_tdp_mmu_init(kvm);
	if (err)
		goto out_slots;
	err = kvm_gva_init(kvm);
	if (err)
		goto out_tdp_only;
	kvm->mmu_notifier.ops = &kvm_mmu_notifier_ops;
	err = mmu_notifier_register(&kvm->mmu_notifier, mm);
	if (err)
		goto out_tdp;
	*out = kvm;
	return 0;
out_tdp:
	kvm_gva_destroy(kvm);
out_tdp_only:
	kvm_tdp_mmu_destroy(kvm);
out_slots:
	free(kvm->memslots);
out_free:
	kvm_free(kvm);
	return err;
}

void kvm_destroy_vm(struct kvm *kvm)
{
	BUG_ON(atomic_load(&kvm->nr_vcpus) != 0);
	/* Calls release (zap everything) unless exit already did. */
	mmu_notifier_unregister(&kvm->mmu_notifier, kvm->mm);
	BUG_ON(kvm->mn_active_invalidate_count != 0);
	BUG_ON(kvm->gpc_list);          /* every cache deactivated */
	kvm_gva_destroy(kvm);
	kvm_tdp_mmu_destroy(kvm);
	kvm_free_memslots(kvm);
	kvm_free(kvm);
}

enum kvm_kick_mode kvm_kick_mode(struct kvm *kvm)
{
	return kvm->kick;
}

const char *kvm_kick_mode_name(enum kvm_kick_mode mode)
{
	switch (mode) {
	case KVM_KICK_AUTO: return "auto";
	case KVM_KICK_WAIT: return "wait";
	case KVM_KICK_RSEQ: return "rseq";
	}
	return "?";
}

const char *kvm_gva_mode_name(enum kvm_gva_mode mode)
{
	switch (mode) {
	case KVM_GVA_TARGETED: return "targeted";
	case KVM_GVA_FLUSH_ALL: return "flush-all";
	case KVM_GVA_OFF: return "off";
	}
	return "?";
}

void kvm_get_stats(struct kvm *kvm, struct kvm_stats *st)
{
	memset(st, 0, sizeof(*st));
#define S(f) st->f = atomic_load_explicit(&kvm->stat.f, memory_order_relaxed)
	S(faults); S(fast_faults); S(fault_retries); S(invalidations);
	S(nonblock_starts); S(nonblock_eagain); S(nonblock_flush_in_guest); S(sptes_zapped);
	S(tlb_flushes); S(mmio_exits); S(age_calls); S(memslot_updates);
	S(gpc_refreshes); S(gpc_invalidations); S(gpc_requests); S(gpc_request_waits);
	S(gpc_nonblock_in_guest);
#undef S
	mutex_lock(&kvm->lock);
	for (int i = 0; i < atomic_load(&kvm->nr_vcpus); i++)
		st->runstate_updates += __atomic_load_n(&kvm->vcpus[i]->runstate.updates,
							__ATOMIC_RELAXED);
	mutex_unlock(&kvm->lock);
	st->pgtable_pages = (uint64_t)atomic_load(&kvm->nr_tables);
	kvm_gva_get_stats(kvm, st);
}

enum kvm_gva_mode kvm_gva_mode(struct kvm *kvm)
{
	return kvm->cfg.gva;
}
