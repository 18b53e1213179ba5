/* SPDX-License-Identifier: MIT */
/*
 * tdp.c - the GPA page tables: a 4-level radix tree of sptes, gfn -> frame.
 *
 * Table pages are the VM's own memory (not host frames, as KVM's page
 * tables are kernel memory) and are freed only when the VM is destroyed:
 * vCPUs walk the tables without mmu_lock, as hardware walks EPT, so a table
 * must outlive every walk that could be on it. An emptied table costs 4 KiB
 * until then.
 *
 * Lock rules:
 *  - a leaf changes to or from present only under mmu_lock for write, and
 *    only through tdp_set_spte(), the one bookkeeping point;
 *  - bits within a present leaf (accessed, dirty, writable-by-fast-path)
 *    change by cmpxchg, from the lockless walk or under mmu_lock for read;
 *    a zap's exchange makes any such racing cmpxchg fail;
 *  - upper-level entries are set once (under mmu_lock for write) and never
 *    cleared while the VM lives.
 */
#include <stdlib.h>
#include "kvm_host.h"

#define LEVEL_SHIFT(l) (9 * ((l) - 1))
#define LEVEL_INDEX(gfn, l) (((gfn) >> LEVEL_SHIFT(l)) & (TDP_ENTRIES - 1))
#define TABLE_BIT (1ULL << 0)

static struct tdp_table *table_alloc(struct kvm *kvm)
{
	struct tdp_table *t = aligned_alloc(PAGE_SIZE, sizeof(*t));

	BUG_ON(!t); /* 4 KiB of process memory: treat like GFP_NOFAIL */
	for (int i = 0; i < TDP_ENTRIES; i++)
		atomic_init(&t->e[i], 0);
	atomic_fetch_add(&kvm->nr_tables, 1);
	return t;
}

void tdp_init(struct kvm *kvm)
{
	kvm->root = table_alloc(kvm);
}

static void table_free(struct kvm *kvm, struct tdp_table *t, int level)
{
	if (level > 1) {
		for (int i = 0; i < TDP_ENTRIES; i++) {
			spte_t e = atomic_load_explicit(&t->e[i], memory_order_relaxed);

			if (e)
				table_free(kvm, (struct tdp_table *)(uintptr_t)(e & ~TABLE_BIT),
					   level - 1);
		}
	} else {
		for (int i = 0; i < TDP_ENTRIES; i++)
			BUG_ON(is_shadow_present(atomic_load(&t->e[i])));
	}
	free(t);
	atomic_fetch_sub(&kvm->nr_tables, 1);
}

/* Called when nothing else can reach the tables (VM teardown, after
 * every spte was zapped). */
void tdp_destroy(struct kvm *kvm)
{
	table_free(kvm, kvm->root, TDP_LEVELS);
	kvm->root = NULL;
}

static _Atomic spte_t *walk(struct kvm *kvm, gfn_t gfn, bool alloc)
{
	struct tdp_table *t = kvm->root;

	/* The index bits of four levels cover 36 bits of gfn: a larger gfn
	 * would alias a lower one. Callers that allocate check first. */
	if (gfn > TDP_MAX_GFN) {
		BUG_ON(alloc);
		return NULL;
	}
	for (int level = TDP_LEVELS; level > 1; level--) {
		_Atomic spte_t *ep = &t->e[LEVEL_INDEX(gfn, level)];
		/* Acquire: pairs with the release that published the table. */
		spte_t e = atomic_load_explicit(ep, memory_order_acquire);

		if (!e) {
			if (!alloc)
				return NULL;
			struct tdp_table *n = table_alloc(kvm);

			e = (spte_t)(uintptr_t)n | TABLE_BIT;
			atomic_store_explicit(ep, e, memory_order_release);
		}
		t = (struct tdp_table *)(uintptr_t)(e & ~TABLE_BIT);
	}
	return &t->e[LEVEL_INDEX(gfn, 1)];
}

/* Lockless: tables are never freed while the VM lives. */
_Atomic spte_t *tdp_walk(struct kvm *kvm, gfn_t gfn)
{
	return walk(kvm, gfn, false);
}

/* Called with mmu_lock held for write (the only table allocator). */
_Atomic spte_t *tdp_walk_alloc(struct kvm *kvm, gfn_t gfn)
{
	lockdep_assert_held_write(&kvm->mmu_lock);
	return walk(kvm, gfn, true);
}

/*
 * The one place a leaf spte is replaced (STYLE.md practice 6). Called with
 * mmu_lock held for write. Replacing a present leaf with a present leaf of
 * a different frame means an invalidation was missed: the old frame could
 * still be in a vCPU's TLB, so it is a bug, as in KVM's handle_changed_spte.
 * A zapped dirty spte passes its dirtiness to the host page, which is still
 * mapped by the host (the invariant in kvm_host.h).
 */
void tdp_set_spte(struct kvm *kvm, gfn_t gfn, _Atomic spte_t *sptep, spte_t new)
{
	spte_t old;

	lockdep_assert_held_write(&kvm->mmu_lock);
	old = atomic_exchange_explicit(sptep, new, memory_order_acq_rel);
	if (is_shadow_present(old) && is_shadow_present(new))
		BUG_ON(spte_to_pfn(old) != spte_to_pfn(new));
	if (is_shadow_present(old) && !is_shadow_present(new)) {
		kvm_stat_inc(kvm, sptes_zapped);
		if (old & SPTE_DIRTY)
			set_page_dirty(pfn_to_page(kvm->mm->host, spte_to_pfn(old)));
	}
	(void)gfn;
}

/*
 * Call fn for every present leaf in [start, end), skipping absent tables.
 * Returns the OR of fn's results. Caller holds mmu_lock (mode per fn).
 */
static bool for_each_leaf(struct kvm *kvm, struct tdp_table *t, int level,
			  gfn_t base, gfn_t start, gfn_t end, tdp_leaf_fn fn,
			  void *arg)
{
	uint64_t span = 1ULL << LEVEL_SHIFT(level);
	bool ret = false;
	unsigned int first = start > base ? (unsigned int)((start - base) / span) : 0;

	for (unsigned int i = first; i < TDP_ENTRIES; i++) {
		gfn_t s = base + i * span;

		if (s >= end)
			break;
		spte_t e = atomic_load_explicit(&t->e[i], memory_order_acquire);

		if (!e)
			continue;
		if (level > 1)
			ret |= for_each_leaf(kvm, (struct tdp_table *)(uintptr_t)(e & ~TABLE_BIT),
					     level - 1, s, start, end, fn, arg);
		else if (is_shadow_present(e))
			ret |= fn(kvm, s, &t->e[i], e, arg);
	}
	return ret;
}

bool tdp_for_each_leaf(struct kvm *kvm, gfn_t start, gfn_t end, tdp_leaf_fn fn,
		       void *arg)
{
	lockdep_assert_held(&kvm->mmu_lock);
	if (start >= end)
		return false;
	return for_each_leaf(kvm, kvm->root, TDP_LEVELS, 0, start, MIN(end, TDP_MAX_GFN + 1),
			     fn, arg);
}

static bool zap_leaf(struct kvm *kvm, gfn_t gfn, _Atomic spte_t *sptep,
		     spte_t old, void *arg)
{
	tdp_set_spte(kvm, gfn, sptep, 0);
	return true;
}

/* Zap [start, end); returns true if anything was zapped (a flush is due).
 * Called with mmu_lock held for write. */
bool kvm_tdp_zap_gfn_range(struct kvm *kvm, gfn_t start, gfn_t end)
{
	lockdep_assert_held_write(&kvm->mmu_lock);
	return tdp_for_each_leaf(kvm, start, end, zap_leaf, NULL);
}

static bool age_leaf(struct kvm *kvm, gfn_t gfn, _Atomic spte_t *sptep,
		     spte_t old, void *arg)
{
	bool clear = *(bool *)arg;

	if (!(old & SPTE_ACCESSED))
		return false;
	/* It is fine for this to fail: a zap or a racing walk got there
	 * first, and the page was young either way. */
	if (clear)
		atomic_compare_exchange_strong(sptep, &old, old & ~SPTE_ACCESSED);
	return true;
}

/* Test (and with clear, clear) the accessed bits of [start, end). Called
 * with mmu_lock held for read: only bits of present leaves change. */
bool kvm_tdp_age_gfn_range(struct kvm *kvm, gfn_t start, gfn_t end, bool clear)
{
	lockdep_assert_held(&kvm->mmu_lock);
	return tdp_for_each_leaf(kvm, start, end, age_leaf, &clear);
}
