/* SPDX-License-Identifier: MIT */
/*
 * gva.h - GVA page tables (seed 002): per VM, per guest address space,
 * radix tables that map a guest-virtual page straight to a host page, so
 * that an engine's soft-TLB miss is refilled by one lockless walk instead
 * of a walk of the guest's page tables, the memslots and the GPA tables.
 *
 * An address space is a *root*, keyed by the guest's satp (translation
 * mode, ASID and root page table): two processes with different ASIDs keep
 * their entries side by side, and switching between them flushes nothing.
 * Entries keep the guest PTE's own permission bits (R, W, X, U) and the
 * engine applies the regime (U, S, S+SUM, MXR) at refill time, so one
 * table serves every regime without a separate table per regime.
 *
 * A root is a tree shaped like the GPA tables and walked by the same
 * iterator (tdp_iter.h: 512 entries a level, top down; the lookup is a
 * direct walk, as kvm_tdp_mmu_leaf is), whose interior nodes mirror the guest's own
 * page-table pages: node->pt_gfn is the guest page-table page its entries
 * were built from (GVA_NO_GFN below a guest superpage, where the entries
 * come from the superpage PTE one level up).
 *
 * Entry encoding (64 bits):
 *   0                 empty
 *   child [| VALID]   an interior entry; without VALID it is kept
 *                     only so the child can be linked again without being
 *                     rebuilt (a host zap of the parent's page-table page
 *                     does not change the child's page-table page)
 *   gfn << 36 | host pfn << 8 | A | perms | VALID
 *                     a leaf (level-1 node): the guest page (the decoded-
 *                     code cache is keyed by it) and the host frame backing
 *                     it, R/W/X/U/G as the guest PTE allows -- W only if
 *                     the PTE had D set and the spte was writable (and
 *                     dirty) when installed -- and A, set by a refill since
 *                     aging last cleared it, and A2, by a refill after that
 *                     (root_reset: was the entry worth its install?). 28 bits each: a gfn or pfn
 *                     beyond (1 TiB) is not installed.
 *
 * Coherence with the guest (the RISC-V rules):
 *   - an entry is installed only after a full walk set A in the guest PTE
 *     (and D for a writable entry), so a refill never has to set them;
 *   - sfence.vma with an address zaps that page's leaf in every root the
 *     fence covers (all roots, or the roots of one ASID); without an
 *     address it marks the ASID's roots stale, or (no ASID either) moves
 *     the VM's epoch: they miss until their next install clears them
 *     (lazily: a full flush is one store);
 *   - an install that raced a fence of its root is dropped: the installer
 *     samples root->seq before its walk and installs only if it has not
 *     moved (every fence of the root and every reset moves it).
 *
 * Coherence with the host: a GVA entry is a secondary mapping like an
 * spte. Every gfn a walk read -- the data page and each guest page-table
 * page -- gets SPTE_GVA in its spte when an entry is built on it. Whoever
 * zaps or write-protects such an spte (tdp_mmu_set_spte, under mmu_lock
 * for write) calls kvm_gva_zap_gfn, which through the reverse maps clears
 * every leaf mapping that gfn and resets every node mirroring it, before
 * the invalidation's TLB flush; so when invalidate_range_start returns, no
 * GVA entry built on the range is left. An install sets SPTE_GVA first (by
 * cmpxchg, on an spte still mapping the page its walk read), then under
 * gva.lock checks that the spte still does and still has SPTE_GVA: a zap
 * that came first is seen there, and one that comes later finds the new
 * entry when it takes gva.lock after its exchange of the spte.
 *
 * Lockless readers (vCPUs in guest mode) never see freed memory: nodes and
 * roots are freed only with the VM. A root reused for another address space
 * (the least recently used one, when all GVA_MAX_ROOTS are taken) is
 * rekeyed under a seqlock (root->seq odd while it changes), and a reader
 * discards what it read if seq moved.
 *
 * Lock rules: kvm->gva.lock (a yielding spinlock) guards every change to the tables, the reverse
 * maps and the roots; lock order mmu_lock > gva.lock. It is held for short,
 * bounded work and never across a wait (vCPUs in guest mode take it, and so
 * does the OOM reaper's non-blocking invalidation). Entries are atomics,
 * read lockless with acquire (a node's contents are visible to a reader that
 * sees the link publishing it).
 */
#ifndef TANDEM_KVM_GVA_H
#define TANDEM_KVM_GVA_H

#include <stdatomic.h>
#include "tandem/types.h"
#include "base/lock.h"

#define GVA_ENTRIES     512
#define GVA_LEVEL_BITS  9
#define GVA_MAX_LEVELS  4
#define GVA_MAX_ROOTS   32
#define GVA_NO_GFN      ((gfn_t)-1)

#define GVA_VALID   (1ULL << 0)   /* = TDP_TABLE_BIT: tdp_iter walks GVA trees */
#define GVA_A2      (1ULL << 1)   /* a leaf refilled again after A was set */
#define GVA_R       (1ULL << 2)
#define GVA_W       (1ULL << 3)
#define GVA_X       (1ULL << 4)
#define GVA_U       (1ULL << 5)
#define GVA_G       (1ULL << 6)
#define GVA_A       (1ULL << 7)
#define GVA_PERMS   (GVA_R | GVA_W | GVA_X | GVA_U | GVA_G)
#define GVA_PFN_SHIFT 8
#define GVA_GFN_SHIFT 36
#define GVA_FRAME_BITS 28
#define GVA_FRAME_MAX ((1ULL << GVA_FRAME_BITS) - 1)

static inline uint64_t gva_leaf_pfn(uint64_t e)
{
	return (e >> GVA_PFN_SHIFT) & GVA_FRAME_MAX;
}

static inline uint64_t gva_leaf_gfn(uint64_t e)
{
	return e >> GVA_GFN_SHIFT;
}

/* A leaf's place in the reverse map of the gfn it maps. */
struct gva_rmap {
	struct gva_rmap *next;
	struct gva_rmap **pprev;        /* NULL: the leaf is empty */
	gfn_t gfn;
	uint32_t idx;                   /* of the leaf in its node */
};

struct gva_root;

struct gva_node {
	_Atomic uint64_t e[GVA_ENTRIES];
	/* Under gva.lock. */
	gfn_t pt_gfn;                   /* guest page-table page mirrored */
	struct gva_node *pt_next, **pt_pprev;   /* pt_gfn's chain (pt_pprev NULL: none) */
	struct gva_node *root_next;     /* every node of the root */
	struct gva_root *root;
	gfn_t vpn;                      /* first guest-virtual page number covered */
	int level;                      /* 1: entries are leaves */
	/* pt_gfn's spte was checked to map the page a walk read and given
	 * SPTE_GVA, and no zap of it came since (a zap clears this). */
	bool marked;
	uint64_t used[GVA_ENTRIES / 64]; /* entries that may be non-zero */
	struct gva_rmap rmap[];         /* level 1 only: GVA_ENTRIES of them */
};

struct gva_root {
	/* Read lockless by vCPUs. */
	_Atomic uint32_t seq;           /* odd while rekeyed or reset; += 2 per fence */
	_Atomic uint64_t key;           /* the guest's satp (mode | ASID | root PPN) */
	_Atomic bool stale;             /* flushed by an ASID fence: misses until reset */
	_Atomic uint32_t epoch;         /* kvm_gva.epoch it was last emptied for */
	_Atomic uint32_t skip_installs; /* cold: installs still to skip (root_reset) */
	struct gva_node *_Atomic top;
	/* Under gva.lock. */
	int levels;
	bool global;                    /* kvm_gva.global[]: no page-table root */
	uint64_t last_use;
	struct gva_node *nodes;         /* root_next chain */
};

#define GVA_RMAP_BUCKETS 16384
#define GVA_PT_BUCKETS   1024

struct kvm_gva {
	/* A spinlock that yields: held for short, bounded work by vCPUs in
	 * guest mode, where a futex sleep and wake per install cost more than
	 * the walk the table saves. */
	atomic_int lock;
	/* ++ by a full fence (sfence.vma x0, x0) and, in FLUSH_ALL mode, a
	 * host zap: every root whose epoch differs misses until its next
	 * install empties it. A full flush is then one store, however many
	 * roots and entries there are. */
	_Atomic uint32_t epoch;
	struct gva_root *roots[GVA_MAX_ROOTS];  /* set once, freed with the VM */
	/* Global mappings (a G bit on the path) exist in every address space
	 * alike, so they live in one root per translation mode, found after a
	 * miss in the ASID's root, and kept across ASID fences. */
	struct gva_root *global[2];     /* Sv39, Sv48 */
	unsigned int nr_roots;
	uint64_t tick;
	struct gva_rmap *rmap_hash[GVA_RMAP_BUCKETS];
	struct gva_node *pt_hash[GVA_PT_BUCKETS];
	struct gva_node *retired;       /* nodes of a root rekeyed to another depth */
	atomic_long nr_nodes;
	struct {        /* under lock */
		uint64_t installs, install_skipped, install_raced, zapped_leaves,
			zapped_nodes, sfence_zaps, root_flushes, rekeys, flush_all;
	} stat;
};

/* The root for the global mappings of address space satp's mode. */
static inline struct gva_root *gva_global_root(struct kvm_gva *g, uint64_t satp)
{
	return g->global[(satp >> 60) == 9];
}

/* The key a global root is looked up with: the mode alone. */
static inline uint64_t gva_global_key(uint64_t satp)
{
	return satp & (0xfULL << 60);
}

/* What a full walk read, for kvm_gva_install (levels as RISC-V numbers
 * them: 0 is the 4 KiB level). */
struct gva_walk {
	uint64_t key;                   /* the satp walked */
	int levels;                     /* 3 (Sv39) or 4 (Sv48) */
	int leaf_level;                 /* level of the leaf PTE: > 0 a superpage */
	gfn_t pt_gfn[GVA_MAX_LEVELS];   /* [i]: the guest table read at level i */
	void *pt_host[GVA_MAX_LEVELS];  /* its host page */
	gfn_t gfn;                      /* the data page */
	void *host;                     /* its host page */
	uint64_t perms;                 /* GVA_R/W/X/U/G the PTE allows (W: and D set) */
};

/* Taken before a walk whose result may be installed: the VM's epoch and
 * the root's seq (kvm_gva_install drops the result if either moved). */
static inline uint64_t kvm_gva_begin(struct kvm_gva *g, struct gva_root *root)
{
	uint64_t epoch = atomic_load_explicit(&g->epoch, memory_order_acquire);

	return epoch << 32 | atomic_load_explicit(&root->seq, memory_order_acquire);
}

static inline uint64_t gva_satp_key(uint64_t satp)
{
	return satp;
}

static inline unsigned int gva_index(uint64_t va, int level)
{
	return (unsigned int)(va >> (12 + GVA_LEVEL_BITS * (level - 1))) & (GVA_ENTRIES - 1);
}

static inline struct gva_node *gva_child(uint64_t e)
{
	return (struct gva_node *)(uintptr_t)(e & ~GVA_VALID);
}

/* va's page number in a tree of levels levels (the index tdp_iter uses). */
static inline gfn_t gva_vpn(uint64_t va, int levels)
{
	return (va >> 12) & ((1ULL << (GVA_LEVEL_BITS * levels)) - 1);
}

/*
 * The lockless walk (a vCPU in guest mode): the leaf mapping va in root,
 * if root still serves key and was emptied since the VM's last full flush
 * (epoch: kvm_gva.epoch as the caller loaded it); 0 on a miss. The seqlock makes a root rekeyed
 * meanwhile a miss (its entries may be another address space's).
 */
static inline uint64_t kvm_gva_lookup(struct gva_root *root, uint64_t key, uint32_t epoch,
				      uint64_t va, _Atomic uint64_t **leafp)
{
	uint32_t seq = atomic_load_explicit(&root->seq, memory_order_acquire);
	struct gva_node *n;
	uint64_t e = 0;

	if ((seq & 1) || atomic_load_explicit(&root->key, memory_order_relaxed) != key ||
	    atomic_load_explicit(&root->stale, memory_order_relaxed) ||
	    atomic_load_explicit(&root->epoch, memory_order_relaxed) != epoch)
		return 0;
	n = atomic_load_explicit(&root->top, memory_order_acquire);
	for (;;) {
		_Atomic uint64_t *ep = &n->e[gva_index(va, n->level)];

		e = atomic_load_explicit(ep, memory_order_acquire);
		if (!(e & GVA_VALID))
			return 0;
		if (n->level == 1) {
			*leafp = ep;
			break;
		}
		n = gva_child(e);
	}
	/* Ordered after the acquire loads above; an entry stored (with
	 * release) after a rekey began makes that begin visible here. */
	if (atomic_load_explicit(&root->seq, memory_order_relaxed) != seq)
		return 0;
	return e;
}

#endif
