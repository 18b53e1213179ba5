/* SPDX-License-Identifier: MIT */
/*
 * gva.c - the GVA page tables (gva.h): roots, install after a full walk,
 * guest fences, and the host's zaps and aging through the reverse maps.
 *
 * Invariant (what makes a GVA hit safe): a valid leaf for gfn G exists only
 * while G's spte is present, maps the leaf's host page and carries SPTE_GVA,
 * and (W) only while the spte is writable. Installs check it under mmu_lock
 * for read; every change of such an spte under mmu_lock for write calls
 * kvm_gva_zap_gfn before its TLB flush. The same holds for the guest
 * page-table pages a valid interior path was built from, except that their
 * zap resets the nodes mirroring them (their content may have changed).
 * In the flush-all mode (the seed's) a zap instead marks every root stale,
 * and stale roots, which miss, are the only ones breaking the invariant.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "kvm_host.h"
#include "tdp_iter.h"

/* tdp_iter walks a node as a struct tdp_table: the entries come first. */
_Static_assert(offsetof(struct gva_node, e) == 0, "gva_node entries first");
_Static_assert(GVA_VALID == TDP_TABLE_BIT, "a GVA link is a tdp table entry");

/* The node an iterator's current entry is in. */
static inline struct gva_node *iter_node(const struct tdp_iter *iter)
{
	return (struct gva_node *)(void *)iter->pt_path[iter->level];
}

static inline unsigned int rmap_bucket(gfn_t gfn)
{
	return (unsigned int)((gfn * 0x9e3779b97f4a7c15ULL) >> 50) & (GVA_RMAP_BUCKETS - 1);
}

static inline unsigned int pt_bucket(gfn_t gfn)
{
	return (unsigned int)((gfn * 0x9e3779b97f4a7c15ULL) >> 54) & (GVA_PT_BUCKETS - 1);
}

static struct gva_node *rmap_node(struct gva_rmap *r)
{
	return (struct gva_node *)((char *)(r - r->idx) - offsetof(struct gva_node, rmap));
}

static void gva_lock(struct kvm_gva *g)
{
	unsigned int spins = 0;

	while (atomic_exchange_explicit(&g->lock, 1, memory_order_acquire)) {
		do
			spin_relax(&spins);     /* the holder may be a preempted vCPU */
		while (atomic_load_explicit(&g->lock, memory_order_relaxed));
	}
}

/* Debug builds: the functions that change the tables say they need it. */
static inline void gva_assert_locked(struct kvm_gva *g)
{
	DEBUG_BUG_ON(!atomic_load_explicit(&g->lock, memory_order_relaxed));
	(void)g;
}

static void gva_unlock(struct kvm_gva *g)
{
	atomic_store_explicit(&g->lock, 0, memory_order_release);
}

static struct gva_node *node_alloc(struct kvm *kvm, struct gva_root *root, int level,
				   gfn_t vpn);

static struct gva_root *root_alloc(struct kvm *kvm, int levels, bool global)
{
	struct gva_root *r = calloc(1, sizeof(*r));
	struct gva_node *top;

	if (!r)
		return NULL;
	r->levels = levels;
	r->global = global;
	top = node_alloc(kvm, r, levels, 0);
	if (!top) {
		free(r);
		return NULL;
	}
	atomic_init(&r->top, top);
	return r;
}

static void root_free(struct kvm *kvm, struct gva_root *r);

int kvm_gva_init(struct kvm *kvm)
{
	struct kvm_gva *g = &kvm->gva;

	memset(g, 0, sizeof(*g));
	for (int i = 0; i < 2; i++) {
		g->global[i] = root_alloc(kvm, i ? 4 : 3, true);
		if (!g->global[i]) {
			kvm_gva_destroy(kvm);
			return -ENOMEM;
		}
		atomic_init(&g->global[i]->key, i ? 9ULL << 60 : 8ULL << 60);
	}
	return 0;
}

static void node_free_chain(struct kvm *kvm, struct gva_node *n)
{
	while (n) {
		struct gva_node *next = n->root_next;

		free(n);
		atomic_fetch_sub(&kvm->gva.nr_nodes, 1);
		n = next;
	}
}

/* With the VM: nothing walks the tables any more. */
static void root_free(struct kvm *kvm, struct gva_root *r)
{
	if (!r)
		return;
	node_free_chain(kvm, r->nodes);
	free(r);
}

void kvm_gva_destroy(struct kvm *kvm)
{
	for (unsigned int i = 0; i < kvm->gva.nr_roots; i++)
		root_free(kvm, kvm->gva.roots[i]);
	for (int i = 0; i < 2; i++)
		root_free(kvm, kvm->gva.global[i]);
	node_free_chain(kvm, kvm->gva.retired);
	BUG_ON(atomic_load(&kvm->gva.nr_nodes) != 0);
}

/* ---- nodes, leaves and the reverse maps (gva.lock held) ---------------- */

static void pt_unhash(struct gva_node *n)
{
	if (!n->pt_pprev)
		return;
	*n->pt_pprev = n->pt_next;
	if (n->pt_next)
		n->pt_next->pt_pprev = n->pt_pprev;
	n->pt_next = NULL;
	n->pt_pprev = NULL;
}

/* n now mirrors guest page-table page gfn (GVA_NO_GFN: none). */
static void set_pt_gfn(struct kvm *kvm, struct gva_node *n, gfn_t gfn)
{
	struct gva_node **head;

	gva_assert_locked(&kvm->gva);
	if (n->pt_gfn == gfn && (n->pt_pprev || gfn == GVA_NO_GFN))
		return;
	pt_unhash(n);
	n->pt_gfn = gfn;
	n->marked = false;
	if (gfn == GVA_NO_GFN)
		return;
	head = &kvm->gva.pt_hash[pt_bucket(gfn)];
	n->pt_next = *head;
	if (*head)
		(*head)->pt_pprev = &n->pt_next;
	*head = n;
	n->pt_pprev = head;
}

static struct gva_node *node_alloc(struct kvm *kvm, struct gva_root *root, int level,
				   gfn_t vpn)
{
	size_t size = sizeof(struct gva_node) +
		      (level == 1 ? GVA_ENTRIES * sizeof(struct gva_rmap) : 0);
	struct gva_node *n = aligned_alloc(64, (size + 63) & ~(size_t)63);

	if (!n)
		return NULL;
	for (int i = 0; i < GVA_ENTRIES; i++)
		atomic_init(&n->e[i], 0);
	if (level == 1) {
		for (int i = 0; i < GVA_ENTRIES; i++) {
			n->rmap[i].next = NULL;
			n->rmap[i].pprev = NULL;
			n->rmap[i].gfn = 0;
			n->rmap[i].idx = (uint32_t)i;
		}
	}
	memset(n->used, 0, sizeof(n->used));
	n->marked = false;
	n->pt_gfn = GVA_NO_GFN;
	n->pt_next = NULL;
	n->pt_pprev = NULL;
	n->root = root;
	n->level = level;
	n->vpn = vpn;
	n->root_next = root->nodes;
	root->nodes = n;
	atomic_fetch_add(&kvm->gva.nr_nodes, 1);
	return n;
}

/* Empty leaf idx of level-1 node n. Returns true if it held a mapping. */
static bool leaf_clear(struct gva_node *n, unsigned int idx)
{
	/* No exchange: every writer holds gva.lock but a refill setting A,
	 * whose bit this store drops along with the rest. */
	uint64_t old = atomic_load_explicit(&n->e[idx], memory_order_relaxed);
	struct gva_rmap *r = &n->rmap[idx];

	if (old)
		atomic_store_explicit(&n->e[idx], 0, memory_order_release);

	if (r->pprev) {
		*r->pprev = r->next;
		if (r->next)
			r->next->pprev = r->pprev;
		r->next = NULL;
		r->pprev = NULL;
	}
	return old & GVA_VALID;
}

static void leaf_set(struct kvm *kvm, struct gva_node *n, unsigned int idx, gfn_t gfn,
		     uint64_t val)
{
	struct gva_rmap *r = &n->rmap[idx], **head = &kvm->gva.rmap_hash[rmap_bucket(gfn)];

	gva_assert_locked(&kvm->gva);
	leaf_clear(n, idx);
	n->used[idx / 64] |= 1ULL << (idx % 64);
	r->gfn = gfn;
	r->next = *head;
	if (*head)
		(*head)->pprev = &r->next;
	*head = r;
	r->pprev = head;
	/* Release: pairs with the walk's acquire (nothing to publish but the
	 * value, but keeps the rule uniform). */
	atomic_store_explicit(&n->e[idx], val, memory_order_release);
}

/* Drop what n's entries were built from: leaves go, links lose VALID (the
 * children mirror other pages and keep their entries). Returns leaves
 * cleared. */
static unsigned long node_reset_count(struct gva_node *n, unsigned long *used)
{
	unsigned long cleared = 0;

	for (unsigned int w = 0; w < GVA_ENTRIES / 64; w++) {
		uint64_t bits = n->used[w];

		while (bits) {
			unsigned int i = w * 64 + (unsigned int)__builtin_ctzll(bits);
			uint64_t e = atomic_load_explicit(&n->e[i], memory_order_relaxed);

			bits &= bits - 1;
			if (n->level == 1) {
				*used += (e & (GVA_VALID | GVA_A2)) == (GVA_VALID | GVA_A2);
				cleared += leaf_clear(n, i);
			} else if (e & GVA_VALID)
				atomic_store_explicit(&n->e[i], e & ~GVA_VALID,
						      memory_order_release);
		}
		/* Links stay (and stay used); leaves are gone. */
		if (n->level == 1)
			n->used[w] = 0;
	}
	return cleared;
}

static unsigned long node_reset(struct gva_node *n)
{
	unsigned long used = 0;

	return node_reset_count(n, &used);
}

/* n and everything below it: for a node about to mirror another page. */
static void subtree_reset(struct gva_node *n)
{
	if (n->level > 1) {
		for (unsigned int w = 0; w < GVA_ENTRIES / 64; w++)
			for (uint64_t bits = n->used[w]; bits; bits &= bits - 1) {
				unsigned int i = w * 64 + (unsigned int)__builtin_ctzll(bits);
				uint64_t e = atomic_load_explicit(&n->e[i], memory_order_relaxed);

				/* A used link names its child (install). */
				DEBUG_BUG_ON(!gva_child(e));
				subtree_reset(gva_child(e));
			}
	}
	node_reset(n);
}

/*
 * Empty root. If most of what it held served fewer than two refills (a
 * leaf's A is set by a refill, not by its install, and A2 by the next),
 * the guest flushes it faster than it reuses it -- an address space
 * switched to with ASID 0 and a full fence every time, the code that makes
 * the switch -- and an install, which costs about three walks, is wasted:
 * the next GVA_COLD_FACTOR times as many installs as it held (at least
 * GVA_COLD_MIN) are skipped (the misses just walk), then installing is
 * tried again: one install in 33 while the guest keeps flushing, all of
 * them again as soon as one entry serves a refill.
 */
#define GVA_COLD_MIN    8
#define GVA_COLD_FACTOR 4

static void root_reset(struct gva_root *root)
{
	unsigned long leaves = 0, used = 0;

	for (struct gva_node *n = root->nodes; n; n = n->root_next)
		leaves += node_reset_count(n, &used);
	atomic_store_explicit(&root->skip_installs,
			      leaves && used * 4 < leaves ?
			      (uint32_t)(GVA_COLD_FACTOR * MAX(leaves, GVA_COLD_MIN)) : 0,
			      memory_order_relaxed);
}

/* Make root empty for a fence of it (lazily: it misses until reset). */
/*
 * A full flush: every root misses until its next install empties it. No
 * lock: an install that checked the epoch under gva.lock just before the
 * bump sets its root's epoch to the old value, so its entry is a miss from
 * the bump on, and the next install empties the root.
 */
static void gva_epoch_bump(struct kvm_gva *g)
{
	atomic_fetch_add_explicit(&g->epoch, 1, memory_order_release);
}

/* Every writer of seq holds gva.lock: no read-modify-write needed. */
static void root_seq_add(struct gva_root *root, uint32_t n, memory_order mo)
{
	atomic_store_explicit(&root->seq,
			      atomic_load_explicit(&root->seq, memory_order_relaxed) + n, mo);
}

/* A fence of root: installs whose walk began before it are dropped. */
static void root_fenced(struct gva_root *root)
{
	root_seq_add(root, 2, memory_order_release);
}

static void root_mark_stale(struct gva_root *root)
{
	atomic_store_explicit(&root->stale, true, memory_order_relaxed);
	root_fenced(root);
}

/* Changes between these two are a seqlock's writes: readers that overlap
 * them discard what they read. */
static void root_write_begin(struct gva_root *root)
{
	/* Acquire: the entry changes that follow stay after it; they are
	 * release stores, so a reader that sees one sees the odd seq. */
	atomic_fetch_add_explicit(&root->seq, 1, memory_order_acq_rel);
}

static void root_write_end(struct gva_root *root)
{
	root_seq_add(root, 1, memory_order_release);
}

static int satp_levels(uint64_t satp)
{
	return (satp >> 60) == 9 ? 4 : 3;
}

static gfn_t satp_root_gfn(uint64_t satp)
{
	return satp & ((1ULL << 44) - 1);
}

static uint16_t satp_asid(uint64_t satp)
{
	return (uint16_t)(satp >> 44);
}

/* ---- roots ----------------------------------------------------------- */

/*
 * The root serving address space satp (Sv39 or Sv48), made if needed: a
 * free slot, else the least recently fetched root, rekeyed. Any thread;
 * takes gva.lock. NULL if memory ran out.
 */
struct gva_root *kvm_gva_root_get(struct kvm *kvm, uint64_t satp)
{
	struct kvm_gva *g = &kvm->gva;
	uint64_t key = gva_satp_key(satp);
	int levels = satp_levels(satp);
	struct gva_root *r = NULL, *victim = NULL;

	gva_lock(g);
	for (unsigned int i = 0; i < g->nr_roots; i++) {
		struct gva_root *c = g->roots[i];

		if (atomic_load_explicit(&c->key, memory_order_relaxed) == key) {
			r = c;
			goto found;
		}
		if (!victim || c->last_use < victim->last_use)
			victim = c;
	}
	if (g->nr_roots < GVA_MAX_ROOTS) {
		r = root_alloc(kvm, levels, false);
		if (!r)
			goto out;
		set_pt_gfn(kvm, atomic_load_explicit(&r->top, memory_order_relaxed),
			   satp_root_gfn(satp));
		atomic_init(&r->key, key);
		atomic_init(&r->epoch, atomic_load_explicit(&g->epoch, memory_order_relaxed));
		g->roots[g->nr_roots++] = r;   /* read only under gva.lock */
		goto found;
	}
	/* Rekey the least recently used root: readers on it must not take
	 * its entries for the new address space's (seqlock). */
	r = victim;
	root_write_begin(r);
	root_reset(r);
	if (r->levels != levels) {
		/* Another depth: the old tree is retired (readers may still be
		 * on it; freed with the VM), a new top starts the new one. */
		struct gva_node *last = r->nodes;

		while (last && last->root_next)
			last = last->root_next;
		for (struct gva_node *n = r->nodes; n; n = n->root_next)
			set_pt_gfn(kvm, n, GVA_NO_GFN);
		if (last) {
			last->root_next = g->retired;
			g->retired = r->nodes;
		}
		r->nodes = NULL;
		r->levels = levels;
		struct gva_node *top = node_alloc(kvm, r, levels, 0);

		if (!top) {
			/* Leave it unusable: a key no satp has. */
			atomic_store_explicit(&r->key, ~0ULL, memory_order_relaxed);
			root_write_end(r);
			r = NULL;
			goto out;
		}
		atomic_store_explicit(&r->top, top, memory_order_release);
	}
	set_pt_gfn(kvm, atomic_load_explicit(&r->top, memory_order_relaxed),
		   satp_root_gfn(satp));
	atomic_store_explicit(&r->key, key, memory_order_relaxed);
	atomic_store_explicit(&r->stale, false, memory_order_relaxed);
	atomic_store_explicit(&r->epoch, atomic_load_explicit(&g->epoch, memory_order_relaxed),
			      memory_order_relaxed);
	root_write_end(r);
	g->stat.rekeys += 1;
found:
	r->last_use = ++g->tick;
out:
	gva_unlock(g);
	return r;
}

/* ---- install --------------------------------------------------------- */

/*
 * Set SPTE_GVA in gfn's spte if it is present and maps host_page. Called
 * with gva.lock held, no mmu_lock: bits of a present leaf change by
 * cmpxchg, and a zap's exchange makes ours fail (tdp_mmu.c). A zap after
 * it sees SPTE_GVA and calls kvm_gva_zap_gfn, which waits for gva.lock
 * and so finds whatever this install adds. Returns the spte, or 0 if it
 * does not map host_page.
 */
static spte_t spte_mark_gva(struct kvm *kvm, gfn_t gfn, const void *host_page)
{
	_Atomic spte_t *sptep = gfn <= TDP_MAX_GFN ? kvm_tdp_mmu_leaf(kvm, gfn) : NULL;
	spte_t old;

	if (!sptep)
		return 0;
	old = atomic_load_explicit(sptep, memory_order_acquire);
	for (;;) {
		if (!is_shadow_present(old) ||
		    kvm->arena + (spte_to_pfn(old) << PAGE_SHIFT) != (const char *)host_page)
			return 0;
		if ((old & SPTE_GVA) ||
		    atomic_compare_exchange_weak_explicit(sptep, &old, old | SPTE_GVA,
							  memory_order_acq_rel,
							  memory_order_acquire))
			return old | SPTE_GVA;
	}
}

/* Node n mirrors the guest table at walk level i: its spte must map what
 * the walk read (checked once per node until a zap of it). */
static bool node_mark(struct kvm *kvm, struct gva_node *n, const struct gva_walk *w, int i)
{
	if (n->marked)
		return true;
	if (!spte_mark_gva(kvm, w->pt_gfn[i], w->pt_host[i]))
		return false;
	n->marked = true;
	return true;
}

/*
 * Install what a full walk found for va (gva.h). Called by a vCPU in guest
 * mode that has not handled a TLB flush since its walk began (the frames it
 * read are still mapped, or their zap is waiting for it right now), with
 * token as kvm_gva_begin returned before the walk. Skipped (-EAGAIN) if the
 * root was fenced or rekeyed, or the VM fully flushed, since token, or if an spte the walk used no
 * longer maps what it read; -EBUSY if the root is cold (root_reset); -ENOMEM
 * if a node could not be allocated.
 */
int kvm_gva_install(struct kvm *kvm, struct gva_root *root, uint64_t token, uint64_t va,
		    const struct gva_walk *w)
{
	struct kvm_gva *g = &kvm->gva;
	struct tdp_iter iter;
	uint64_t leaf;
	struct gva_node *n;
	spte_t spte;
	gfn_t vpn;
	uint32_t seq = (uint32_t)token, epoch = (uint32_t)(token >> 32);
	int r = -EAGAIN;

	if ((seq & 1) || w->gfn > GVA_FRAME_MAX)
		return -EAGAIN;
	/* A root its guest flushes before it reuses it: let the miss walk
	 * (root_reset). Racy between harts on one root, and harmless. */
	uint32_t skip = atomic_load_explicit(&root->skip_installs, memory_order_relaxed);

	if (skip) {
		atomic_store_explicit(&root->skip_installs, skip - 1, memory_order_relaxed);
		return -EBUSY;
	}
	gva_lock(g);
	if (atomic_load_explicit(&g->epoch, memory_order_relaxed) != epoch ||
	    atomic_load_explicit(&root->seq, memory_order_relaxed) != seq ||
	    atomic_load_explicit(&root->key, memory_order_relaxed) !=
	    (root->global ? gva_global_key(w->key) : w->key)) {
		g->stat.install_raced += 1;
		goto out;
	}
	if (atomic_load_explicit(&root->stale, memory_order_relaxed) ||
	    atomic_load_explicit(&root->epoch, memory_order_relaxed) != epoch) {
		/* Fenced before the walk began: empty it now, lazily. */
		root_write_begin(root);
		root_reset(root);
		atomic_store_explicit(&root->stale, false, memory_order_relaxed);
		atomic_store_explicit(&root->epoch, epoch, memory_order_relaxed);
		root_write_end(root);
	}
	spte = spte_mark_gva(kvm, w->gfn, w->host);
	if (!spte || spte_to_pfn(spte) > GVA_FRAME_MAX)
		goto skipped;
	/* A clear: a refill sets it (the walk that installs has marked the
	 * spte accessed already), so A also tells whether the entry ever
	 * served a refill (root_reset). */
	leaf = (uint64_t)w->gfn << GVA_GFN_SHIFT | (uint64_t)spte_to_pfn(spte) << GVA_PFN_SHIFT |
	       GVA_VALID | (w->perms & GVA_PERMS);
	if (!(spte & SPTE_WRITABLE))
		leaf &= ~GVA_W;         /* clean: the first write must reach the spte */

	n = atomic_load_explicit(&root->top, memory_order_relaxed);
	/* A global root's top serves every address space's root table: it
	 * mirrors none (the children it links to do). */
	if (!root->global) {
		set_pt_gfn(kvm, n, w->pt_gfn[w->levels - 1]);
		if (!node_mark(kvm, n, w, w->levels - 1))
			goto skipped;
	}
	/* Down to va's leaf, building the path as kvm_tdp_mmu_leaf_alloc
	 * does: a link stored through iter.sptep is read again by the step
	 * down. */
	vpn = gva_vpn(va, w->levels);
	for_each_tdp_pte_at(iter, (struct tdp_table *)(void *)n, w->levels, 1, vpn, vpn + 1) {
		int level = iter.level;
		/* The child mirrors the guest table read one level down, if
		 * the walk went there; below a superpage, nothing. */
		bool mirrors = level - 2 >= w->leaf_level;
		gfn_t want = mirrors ? w->pt_gfn[level - 2] : GVA_NO_GFN;
		uint64_t e = iter.old_spte;
		struct gva_node *c;

		n = iter_node(&iter);
		if (level == 1) {
			leaf_set(kvm, n, (unsigned int)(iter.sptep - iter.pt_path[1]), w->gfn, leaf);
			g->stat.installs += 1;
			r = 0;
			goto out;
		}
		if (e) {
			c = gva_child(e);
			/* Built from another page (or from a superpage PTE that
			 * may have changed): start it over. */
			if (c->pt_gfn != want || (!mirrors && !(e & GVA_VALID))) {
				subtree_reset(c);
				set_pt_gfn(kvm, c, want);
			}
		} else {
			unsigned int i = (unsigned int)(iter.sptep - iter.pt_path[level]);

			c = node_alloc(kvm, root, level - 1, iter.gfn);
			if (!c) {
				r = -ENOMEM;
				goto out;
			}
			set_pt_gfn(kvm, c, want);
			/* Linked at once, without VALID (walkers miss it): a
			 * used entry always names its child, so a skip below
			 * leaves a link that subtree_reset follows and the
			 * next install reuses, not a hole and a lost node. */
			atomic_store_explicit(iter.sptep, (uint64_t)(uintptr_t)c,
					      memory_order_relaxed);
			n->used[i / 64] |= 1ULL << (i % 64);
		}
		if (mirrors && !node_mark(kvm, c, w, level - 2))
			goto skipped;
		if (!(e & GVA_VALID))
			/* Release: the walker that loads the link sees the
			 * child's entries as they are now. */
			atomic_store_explicit(iter.sptep, (uint64_t)(uintptr_t)c | GVA_VALID,
					      memory_order_release);
	}
	BUG();
skipped:
	g->stat.install_skipped += 1;
out:
	gva_unlock(g);
	return r;
}

/* ---- guest fences ---------------------------------------------------- */

/* Zap va's leaf in root: the leaf, or the whole part built from a guest
 * superpage that covers va. Links without VALID are followed too: their
 * child keeps entries. */
static void root_zap_va(struct gva_root *root, uint64_t va)
{
	struct gva_node *top = atomic_load_explicit(&root->top, memory_order_relaxed);
	gfn_t vpn = gva_vpn(va, top->level);
	struct tdp_iter iter;

	for_each_tdp_pte_at(iter, (struct tdp_table *)(void *)top, top->level, 1, vpn, vpn + 1) {
		if (!iter.old_spte)
			continue;
		if (iter.level == 1) {
			leaf_clear(iter_node(&iter), (unsigned int)(iter.sptep - iter.pt_path[1]));
		} else if (gva_child(iter.old_spte)->pt_gfn == GVA_NO_GFN) {
			subtree_reset(gva_child(iter.old_spte));
			break;
		}
	}
}

/*
 * sfence.vma from a vCPU: with has_va, the leaf of va; else everything.
 * With has_asid, only the roots of that ASID: global mappings live in the
 * global roots, which a fence of one ASID does not order (the spec); else
 * every root, the global ones included.
 */
void kvm_gva_sfence(struct kvm *kvm, bool has_va, uint64_t va, bool has_asid, uint16_t asid)
{
	struct kvm_gva *g = &kvm->gva;

	if (has_va && (kvm->cfg.breaks & KVM_BREAK_GVA_SFENCE))
		return;
	if (!has_va && !has_asid) {
		/* Everything: one increment; each root empties at its next
		 * install. */
		gva_epoch_bump(g);
		return;
	}
	gva_lock(g);
	for (unsigned int i = 0; i < g->nr_roots + 2; i++) {
		struct gva_root *r = i < g->nr_roots ? g->roots[i] : g->global[i - g->nr_roots];
		uint64_t key = atomic_load_explicit(&r->key, memory_order_relaxed);

		/* A fence of one ASID orders no global mapping. */
		if (has_asid && (r->global || satp_asid(key) != asid))
			continue;
		if (atomic_load_explicit(&r->stale, memory_order_relaxed) ||
		    atomic_load_explicit(&r->epoch, memory_order_relaxed) !=
		    atomic_load_explicit(&g->epoch, memory_order_relaxed))
			continue;       /* empty already, as far as anyone can see */
		if (has_va) {
			root_zap_va(r, va);
			root_fenced(r);
			g->stat.sfence_zaps++;
		} else {
			root_mark_stale(r);
			g->stat.root_flushes++;
		}
	}
	gva_unlock(g);
}

/* ---- the host's zaps and aging ---------------------------------------- */

/*
 * gfn's spte, which has SPTE_GVA, is being zapped (unmapped) or write
 * protected: clear every leaf mapping gfn, and if unmapped reset every node
 * mirroring it. Called with mmu_lock held for write, before the flush.
 */
void kvm_gva_zap_gfn(struct kvm *kvm, gfn_t gfn, bool unmapped)
{
	struct kvm_gva *g = &kvm->gva;
	unsigned long leaves = 0, nodes = 0;

	lockdep_assert_held_write(&kvm->mmu_lock);
	if (kvm->cfg.breaks & KVM_BREAK_GVA_ZAP)
		return;
	if (kvm->cfg.gva == KVM_GVA_FLUSH_ALL) {
		kvm_gva_flush_all(kvm);
		return;
	}
	gva_lock(g);
	for (struct gva_rmap *r = g->rmap_hash[rmap_bucket(gfn)], *next; r; r = next) {
		next = r->next;
		if (r->gfn == gfn)
			leaves += leaf_clear(rmap_node(r), r->idx);
	}
	if (unmapped) {
		for (struct gva_node *n = g->pt_hash[pt_bucket(gfn)]; n; n = n->pt_next) {
			if (n->pt_gfn != gfn)
				continue;
			leaves += node_reset(n);
			n->marked = false;
			nodes++;
		}
	}
	g->stat.zapped_leaves += leaves;
	g->stat.zapped_nodes += nodes;
	gva_unlock(g);
}

/* The seed's way: any host invalidation empties every root. Called with
 * mmu_lock held for write. */
void kvm_gva_flush_all(struct kvm *kvm)
{
	struct kvm_gva *g = &kvm->gva;

	gva_lock(g);
	gva_epoch_bump(g);
	g->stat.flush_all++;
	gva_unlock(g);
}

/*
 * Whether a leaf mapping gfn was used since the last clear (and with
 * clear, clear it): a refill through a GVA entry sets its A, not the
 * spte's. Called with mmu_lock held (read).
 */
bool kvm_gva_age_gfn(struct kvm *kvm, gfn_t gfn, bool clear)
{
	struct kvm_gva *g = &kvm->gva;
	bool young = false;

	lockdep_assert_held(&kvm->mmu_lock);
	gva_lock(g);
	for (struct gva_rmap *r = g->rmap_hash[rmap_bucket(gfn)]; r; r = r->next) {
		_Atomic uint64_t *ep;
		uint64_t e;

		if (r->gfn != gfn)
			continue;
		ep = &rmap_node(r)->e[r->idx];
		e = atomic_load_explicit(ep, memory_order_relaxed);
		if (!(e & GVA_VALID) || !(e & GVA_A))
			continue;
		young = true;
		if (clear)
			atomic_compare_exchange_strong(ep, &e, e & ~GVA_A);
	}
	gva_unlock(g);
	return young;
}

/* ---- for tests and statistics ----------------------------------------- */

uint64_t kvm_gva_probe(struct kvm *kvm, uint64_t satp, uint64_t va)
{
	struct kvm_gva *g = &kvm->gva;
	uint64_t e = 0;

	gva_lock(g);
	for (unsigned int i = 0; i < g->nr_roots; i++) {
		_Atomic uint64_t *leafp;

		if (atomic_load_explicit(&g->roots[i]->key, memory_order_relaxed) !=
		    gva_satp_key(satp))
			continue;
		e = kvm_gva_lookup(g->roots[i], gva_satp_key(satp),
				   atomic_load_explicit(&g->epoch, memory_order_relaxed), va, &leafp);
		break;
	}
	if (!e && (satp >> 60)) {
		_Atomic uint64_t *leafp;

		e = kvm_gva_lookup(gva_global_root(g, satp), gva_global_key(satp),
				   atomic_load_explicit(&g->epoch, memory_order_relaxed), va, &leafp);
	}
	gva_unlock(g);
	return e;
}

void kvm_gva_get_stats(struct kvm *kvm, struct kvm_stats *st)
{
	struct kvm_gva *g = &kvm->gva;

	gva_lock(g);
	st->gva_installs = g->stat.installs;
	st->gva_install_skipped = g->stat.install_skipped;
	st->gva_install_raced = g->stat.install_raced;
	st->gva_zapped_leaves = g->stat.zapped_leaves;
	st->gva_zapped_nodes = g->stat.zapped_nodes;
	st->gva_sfence_zaps = g->stat.sfence_zaps;
	/* The epoch counts full fences and FLUSH_ALL zaps. */
	st->gva_root_flushes = g->stat.root_flushes +
			       atomic_load_explicit(&g->epoch, memory_order_relaxed) -
			       g->stat.flush_all;
	st->gva_rekeys = g->stat.rekeys;
	st->gva_flush_all = g->stat.flush_all;
	gva_unlock(g);
	st->gva_nodes = (uint64_t)atomic_load(&g->nr_nodes);
}
