/* SPDX-License-Identifier: MIT */
/*
 * tdp_mmu.c - the GPA page tables: a 4-level radix tree of sptes mapping
 * gfn -> host frame, and what is done to it: map (find or build the path to
 * a leaf), zap and age ranges. The walking is tdp_iter's; this file is the
 * policy.
 *
 * Table pages are the VM's own memory (not host frames, as KVM's page
 * tables are kernel memory) and are freed only when the VM is destroyed:
 * vCPUs walk the tables without mmu_lock, as hardware walks EPT, so a table
 * must outlive every walk that could be on it. An emptied table costs 4 KiB
 * until then.
 *
 * Lock rules:
 *  - a leaf changes to or from present only under mmu_lock for write, and
 *    only through tdp_mmu_set_spte(), the one bookkeeping point;
 *  - bits within a present leaf (accessed, dirty, writable-by-fast-path)
 *    change by cmpxchg, from the lockless walk or under mmu_lock for read;
 *    a zap's exchange makes any such racing cmpxchg fail;
 *  - upper-level entries are set once (under mmu_lock for write, with a
 *    release store) and never cleared while the VM lives.
 */
#include <stdlib.h>
#include "kvm_host.h"
#include "tdp_iter.h"

static struct tdp_table *tdp_table_alloc(struct kvm *kvm)
{
	struct tdp_table *t = fault_aligned_alloc(FAULT_SITE_TDP_TABLE, PAGE_SIZE, sizeof(*t));

	if (!t)
		return NULL;
	for (int i = 0; i < TDP_ENTRIES; i++)
		atomic_init(&t->e[i], 0);
	atomic_fetch_add(&kvm->nr_tables, 1);
	return t;
}

int kvm_tdp_mmu_init(struct kvm *kvm)
{
	kvm->root = tdp_table_alloc(kvm);
	return kvm->root ? 0 : -ENOMEM;
}

static void tdp_table_free(struct kvm *kvm, struct tdp_table *t, int level)
{
	for (int i = 0; i < TDP_ENTRIES; i++) {
		spte_t e = atomic_load_explicit(&t->e[i], memory_order_relaxed);

		if (level > 1 && e)
			tdp_table_free(kvm, spte_to_child(e), level - 1);
		else
			BUG_ON(is_shadow_present(e));
	}
	free(t);
	atomic_fetch_sub(&kvm->nr_tables, 1);
}

/* Called when nothing else can reach the tables (VM teardown, after every
 * spte was zapped). */
void kvm_tdp_mmu_destroy(struct kvm *kvm)
{
	if (kvm->root)
		tdp_table_free(kvm, kvm->root, TDP_LEVELS);
	kvm->root = NULL;
}

/* Lockless: tables are never freed while the VM lives. One gfn, so the
 * iterator's bookkeeping is left out: this is every vCPU walk's path. */
_Atomic spte_t *kvm_tdp_mmu_leaf(struct kvm *kvm, gfn_t gfn)
{
	struct tdp_table *t = kvm->root;

	DEBUG_BUG_ON(gfn > TDP_MAX_GFN);
	for (int level = TDP_LEVELS; level > 1; level--) {
		/* Acquire: pairs with the release that published the child. */
		spte_t e = atomic_load_explicit(
			&t->e[(gfn >> (TDP_LEVEL_BITS * (level - 1))) & (TDP_ENTRIES - 1)],
			memory_order_acquire);

		if (!e)
			return NULL;
		t = spte_to_child(e);
	}
	return &t->e[gfn & (TDP_ENTRIES - 1)];
}

/* Called with mmu_lock held for write (the only table allocator). */
_Atomic spte_t *kvm_tdp_mmu_leaf_alloc(struct kvm *kvm, gfn_t gfn)
{
	struct tdp_iter iter;

	lockdep_assert_held_write(&kvm->mmu_lock);
	BUG_ON(gfn > TDP_MAX_GFN);
	for_each_tdp_pte(iter, kvm->root, gfn, gfn + 1) {
		if (iter.level == 1)
			return iter.sptep;
		if (iter.old_spte)
			continue;
		struct tdp_table *child = tdp_table_alloc(kvm);

		if (!child)
			return NULL;
		/* Release: a lockless walker that loads this entry sees the
		 * child's zeroed entries (pairs with tdp_iter's acquire). */
		atomic_store_explicit(iter.sptep, make_table_spte(child),
				      memory_order_release);
	}
	BUG();
}

/*
 * The one place a leaf spte is replaced (STYLE.md practice 6). Called with
 * mmu_lock held for write. Replacing a present leaf with a present leaf of
 * a different frame means an invalidation was missed: the old frame could
 * still be in a vCPU's TLB, so it is a bug, as in KVM's handle_changed_spte.
 * A zapped spte passes its dirty and accessed state to the host page, which
 * the host still maps (the invariant in kvm_host.h): a write must not be
 * lost to swap, nor a use to reclaim, which looks at the page's referenced
 * flag after the unmap that zapped it (vmscan.c).
 */
void tdp_mmu_set_spte(struct kvm *kvm, gfn_t gfn, _Atomic spte_t *sptep, spte_t new)
{
	spte_t old;

	lockdep_assert_held_write(&kvm->mmu_lock);
	DEBUG_BUG_ON(is_shadow_present(new) && (new & SPTE_WRITABLE) &&
		     !(new & SPTE_DIRTY));      /* spte.h invariant 1 */
	old = atomic_exchange_explicit(sptep, new, memory_order_acq_rel);
	if (is_shadow_present(old) && is_shadow_present(new))
		BUG_ON(spte_to_pfn(old) != spte_to_pfn(new));
	/* GVA entries built on this gfn go before the flush that follows
	 * (gva.h); with FLUSH_ALL, every GVA table goes at any zap. */
	if (is_shadow_present(old)) {
		bool unmapped = !is_shadow_present(new);

		if (kvm->cfg.gva == KVM_GVA_FLUSH_ALL && unmapped &&
		    !(kvm->cfg.breaks & KVM_BREAK_GVA_ZAP))
			kvm_gva_flush_all(kvm);
		else if ((old & SPTE_GVA) &&
			 (unmapped || ((old & SPTE_WRITABLE) && !(new & SPTE_WRITABLE))))
			kvm_gva_zap_gfn(kvm, gfn, unmapped);
	}
	if (is_shadow_present(old) && !is_shadow_present(new)) {
		struct page *page = pfn_to_page(kvm->host, spte_to_pfn(old));

		kvm_stat_inc(kvm, sptes_zapped);
		if (old & SPTE_DIRTY)
			set_page_dirty(page);
		if (old & SPTE_ACCESSED)
			mark_page_accessed(page);
	}
}

/* Zap [start, end); returns true if anything was zapped (a flush is due).
 * Called with mmu_lock held for write. */
bool kvm_tdp_mmu_zap_gfn_range(struct kvm *kvm, gfn_t start, gfn_t end)
{
	struct tdp_iter iter;
	bool flush = false;

	lockdep_assert_held_write(&kvm->mmu_lock);
	for_each_tdp_pte(iter, kvm->root, start, end) {
		if (iter.level != 1 || !is_shadow_present(iter.old_spte))
			continue;
		tdp_mmu_set_spte(kvm, iter.gfn, iter.sptep, 0);
		flush = true;
	}
	return flush;
}

/*
 * Test (and with clear, clear) the accessed bits of [start, end); true if
 * any was set. Called with mmu_lock held for read: only bits of present
 * leaves change, by cmpxchg. A cmpxchg that fails lost to a zap or a
 * racing walk: the page was young either way.
 */
bool kvm_tdp_mmu_age_gfn_range(struct kvm *kvm, gfn_t start, gfn_t end, bool clear)
{
	struct tdp_iter iter;
	bool young = false;

	lockdep_assert_held(&kvm->mmu_lock);
	for_each_tdp_pte(iter, kvm->root, start, end) {
		spte_t old = iter.old_spte;

		if (iter.level != 1 || !is_shadow_present(old))
			continue;
		/* A GVA refill uses the page without walking the spte: its
		 * leaves carry their own accessed bit. */
		if ((old & SPTE_GVA) && kvm_gva_age_gfn(kvm, iter.gfn, clear))
			young = true;
		if (!(old & SPTE_ACCESSED))
			continue;
		young = true;
		if (clear)
			atomic_compare_exchange_strong(iter.sptep, &old, old & ~SPTE_ACCESSED);
	}
	return young;
}
