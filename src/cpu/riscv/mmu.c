/* SPDX-License-Identifier: MIT */
/*
 * mmu.c - the hart's side of address translation: the Sv39/Sv48 walk over
 * guest page tables in guest memory, the slow path of every access
 * (soft-TLB miss -> GVA table -> on a miss guest walk -> GPA tables -> host
 * fault -> refill and GVA install, or an MMIO exit), and the decoded-code
 * cache. The GVA tables are the kvm layer's (src/kvm/gva.h: keys, the
 * install protocol, how host zaps and guest fences reach them); this file
 * applies the hart's regime to their entries and feeds them full walks.
 *
 * Everything runs on the hart's thread in guest mode: the host pointers
 * taken here stay valid until the hart leaves guest mode, because a host
 * invalidation zaps the spte and then waits for this vCPU to leave (WAIT
 * kick mode). A fault leaves guest mode, faults the page in through the
 * host, and re-enters; re-entry handles a pending TLB flush, which bumps
 * h->gen. A translation built across such an exit is thrown away and
 * walked again when h->gen moved: the walk may have read a guest
 * page-table page that the host has since taken back.
 *
 * The walker's memory accesses go through the secondary MMU like any other
 * (kvm_tdp_translate, then the fault path); A and D are set in the guest
 * PTE with a compare-and-swap on the host frame, so two harts walking the
 * same table, or a hart and guest software writing the PTE, never lose an
 * update.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "rv_int.h"
#include "kvm/kvm_host.h"

#define RV_MMIO  2      /* gpa_to_host: no RAM there (in guest mode) */
#define RV_NOMEM 3      /* gpa_to_host: -EFAULT from the host: an access fault */

#define PTE_V (1ULL << 0)
#define PTE_R (1ULL << 1)
#define PTE_W (1ULL << 2)
#define PTE_X (1ULL << 3)
#define PTE_U (1ULL << 4)
#define PTE_G (1ULL << 5)
#define PTE_A (1ULL << 6)
#define PTE_D (1ULL << 7)
#define PTE_PPN_SHIFT 10
#define PTE_PPN_MASK  ((1ULL << 44) - 1)
/* PBMT (Svpbmt), N (Svnapot) and reserved bits: this hart has neither
 * extension, so a leaf with any of them set is a page fault. */
#define PTE_RESERVED  (0x3ffULL << 54)

#define PA_BITS 56

static int exc(struct rv_hart *h, uint64_t cause, uint64_t tval)
{
	h->exc_cause = cause;
	h->exc_tval = tval;
	return RV_EXC;
}

static uint64_t page_fault_cause(enum rv_acc acc)
{
	return acc == ACC_FETCH ? EXC_INSN_PAGE : acc == ACC_WRITE ? EXC_STORE_PAGE : EXC_LOAD_PAGE;
}

static uint64_t access_fault_cause(enum rv_acc acc)
{
	return acc == ACC_FETCH ? EXC_INSN_ACCESS : acc == ACC_WRITE ? EXC_STORE_ACCESS :
	       EXC_LOAD_ACCESS;
}

/*
 * The host address of gpa for an access, in guest mode. Returns RV_OK
 * (*host valid until the hart leaves guest mode), RV_MMIO (no RAM: the
 * caller exits to the VMM), RV_NOMEM (the host has no mapping there), all
 * in guest mode; or -EINTR / a fatal host error, outside guest mode.
 */
static int gpa_to_host(struct rv_hart *h, gpa_t gpa, bool write, void **host)
{
	struct kvm_vcpu *kv = &h->v->kvm_vcpu;
	struct vcpu_stats *vs = &h->v->stat;

	if (gpa >> PA_BITS)
		return RV_MMIO;
	for (;;) {
		bool fast;
		char *p = kvm_tdp_translate(h->kvm, gpa >> PAGE_SHIFT, write, &fast);
		int r;

		if (p) {
			if (fast)
				vs->fast_faults++;
			*host = p + (gpa & (PAGE_SIZE - 1));
			return RV_OK;
		}
		kvm_vcpu_exit_guest_mode(kv);
		r = kvm_mmu_page_fault(kv, gpa, write);
		if (r == RET_PF_FIXED) {
			vs->faults++;
		} else if (r == RET_PF_RETRY) {
			vs->fault_retries++;
			sched_yield();  /* let the invalidation finish */
		} else if (r != RET_PF_MMIO && r != -EFAULT) {
			return r;       /* -ENOMEM, -ESRCH, -EIO: the host failed us */
		}
		int e = rv_enter(h);

		if (e)
			return e;
		if (r == RET_PF_MMIO)
			return RV_MMIO;
		if (r == -EFAULT)
			return RV_NOMEM;
	}
}

/* An access to a device: leave guest mode for the VMM's handler. */
static int rv_mmio(struct rv_hart *h, uint64_t va, gpa_t gpa, unsigned int size, bool write,
		   uint64_t *val)
{
	struct vcpu *v = h->v;

	int r = -EFAULT, e;

	kvm_vcpu_exit_guest_mode(&v->kvm_vcpu);
	v->stat.mmio_exits++;
	h->stat.mmio++;
	if (v->mmio_fn)
		r = v->mmio_fn(v, gpa, size, write, val, v->mmio_arg);
	if (!write && size < 8)
		*val &= (1ULL << (size * 8)) - 1;
	e = rv_enter(h);
	if (e)
		return e;
	if (r)  /* no device: a bus error, raised as an access fault */
		return exc(h, write ? EXC_STORE_ACCESS : EXC_LOAD_ACCESS, va);
	return RV_OK;
}

static void rv_fill(struct rv_hart *h, struct stlb_entry *table, uint64_t va, void *host,
		    unsigned int prot);

/*
 * The host address of a guest page-table entry. M mode's soft-TLB table
 * maps guest-physical addresses one to one, so it doubles as a physical
 * TLB for the walker: a hit skips the GPA-table walk; a miss goes through
 * gpa_to_host and fills it. Its entries go with every other soft-TLB
 * entry at a flush (every host invalidation sends one), so a hit never
 * outlives the frame. Same returns as gpa_to_host.
 */
static int pte_host(struct rv_hart *h, gpa_t gpa, bool write, void **host)
{
	struct stlb_entry *phys = h->v->stlb[MMU_M];
	struct stlb_entry *e = (struct stlb_entry *)((char *)phys + stlb_offset(gpa));
	uint64_t tag = gpa & (~(uint64_t)(PAGE_SIZE - 1) | 7);
	int r;

	if ((write ? e->addr_write : e->addr_read) == tag) {
		*host = (void *)(e->addend + gpa);
		return RV_OK;
	}
	r = gpa_to_host(h, gpa, write, host);
	if (r == RV_OK)
		rv_fill(h, phys, gpa, *host,
			STLB_PROT_READ | (write ? STLB_PROT_WRITE : 0));
	return r;
}

/* Privilege the access is checked at. */
static unsigned int acc_priv(const struct rv_hart *h, enum rv_acc acc)
{
	if (acc != ACC_FETCH && h->priv == RV_PRV_M && (h->mstatus & MSTATUS_MPRV))
		return rv_get_mpp(h);
	return h->priv;
}

/*
 * Translate va for acc. Returns RV_OK with *gpa and *prot (the STLB_PROT_*
 * the guest's PTE allows in this regime; write only once D is set),
 * RV_EXC, or a negative errno outside guest mode.
 */
static int rv_translate(struct rv_hart *h, uint64_t va, enum rv_acc acc, gpa_t *gpa,
			unsigned int *prot, struct gva_walk *w)
{
	unsigned int priv = acc_priv(h, acc);
	uint64_t mode = h->satp >> 60;
	unsigned int levels, bits;
	uint64_t table, gen = h->gen, global;

	if (priv == RV_PRV_M || mode == 0) {
		if (va >> PA_BITS)
			return exc(h, access_fault_cause(acc), va);
		*gpa = va;
		*prot = STLB_PROT_READ | STLB_PROT_WRITE | STLB_PROT_EXEC;
		return RV_OK;
	}
	levels = mode == 8 ? 3 : 4;
	bits = 12 + 9 * levels;
	/* The upper bits must all equal bit (bits - 1). */
	if ((int64_t)(va << (64 - bits)) >> (64 - bits) != (int64_t)va)
		return exc(h, page_fault_cause(acc), va);
	h->stat.ptw_walks++;
	if (w) {
		w->key = h->satp;
		w->levels = (int)levels;
	}
restart:
	table = (h->satp & PTE_PPN_MASK) << PAGE_SHIFT;
	global = 0;     /* G on a non-leaf PTE makes everything below global */
	for (int level = (int)levels - 1; level >= 0; level--) {
		gpa_t pte_gpa = table + ((va >> (12 + 9 * level)) & 511) * 8;
		_Atomic uint64_t *ptep;
		uint64_t pte, need;
		void *host;
		int r;

		r = pte_host(h, pte_gpa, false, &host);
		if (r < 0)
			return r;
		if (h->gen != gen) {
			gen = h->gen;
			goto restart;
		}
		if (r != RV_OK)
			return exc(h, access_fault_cause(acc), va);
		ptep = host;
		if (w) {
			w->pt_gfn[level] = table >> PAGE_SHIFT;
			w->pt_host[level] = (void *)((uintptr_t)host & ~(uintptr_t)(PAGE_SIZE - 1));
		}
		pte = atomic_load_explicit(ptep, memory_order_acquire);
again:
		if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)) || (pte & PTE_RESERVED))
			return exc(h, page_fault_cause(acc), va);
		if (!(pte & (PTE_R | PTE_X))) {
			if (pte & (PTE_A | PTE_D | PTE_U))
				return exc(h, page_fault_cause(acc), va);
			global |= pte & PTE_G;
			table = ((pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK) << PAGE_SHIFT;
			continue;
		}
		/* A leaf. Superpages must be aligned. */
		uint64_t ppn = (pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK;

		if (level && (ppn & ((1ULL << (9 * level)) - 1)))
			return exc(h, page_fault_cause(acc), va);
		if (priv == RV_PRV_U && !(pte & PTE_U))
			return exc(h, page_fault_cause(acc), va);
		if (priv == RV_PRV_S && (pte & PTE_U) &&
		    (acc == ACC_FETCH || !(h->mstatus & MSTATUS_SUM)))
			return exc(h, page_fault_cause(acc), va);
		bool readable = (pte & PTE_R) || ((h->mstatus & MSTATUS_MXR) && (pte & PTE_X));

		if ((acc == ACC_READ && !readable) || (acc == ACC_WRITE && !(pte & PTE_W)) ||
		    (acc == ACC_FETCH && !(pte & PTE_X)))
			return exc(h, page_fault_cause(acc), va);
		need = PTE_A | (acc == ACC_WRITE ? PTE_D : 0);
		if ((pte & need) != need) {
			/* Set A (and D) in guest memory: a compare-and-swap on
			 * the frame, writable through the secondary MMU. */
			r = pte_host(h, pte_gpa, true, &host);
			if (r < 0)
				return r;
			if (h->gen != gen) {
				gen = h->gen;
				goto restart;
			}
			if (r != RV_OK)
				return exc(h, access_fault_cause(acc), va);
			ptep = host;
			if (!atomic_compare_exchange_strong(ptep, &pte, pte | need))
				goto again;     /* pte reloaded: check it anew */
			pte |= need;
		}
		*gpa = ((ppn << PAGE_SHIFT) & ~((1ULL << (12 + 9 * level)) - 1)) |
		       (va & ((1ULL << (12 + 9 * level)) - 1));
		*prot = (readable ? STLB_PROT_READ : 0) |
			((pte & PTE_W) && (pte & PTE_D) ? STLB_PROT_WRITE : 0) |
			((pte & PTE_X) ? STLB_PROT_EXEC : 0);
		if (w) {
			/* The PTE's own bits: the regime is applied at refill. */
			w->leaf_level = level;
			w->perms = ((pte & PTE_R) ? GVA_R : 0) |
				   ((pte & PTE_W) && (pte & PTE_D) ? GVA_W : 0) |
				   ((pte & PTE_X) ? GVA_X : 0) | ((pte & PTE_U) ? GVA_U : 0) |
				   (((pte | global) & PTE_G) ? GVA_G : 0);
		}
		return RV_OK;
	}
	return exc(h, page_fault_cause(acc), va);
}

/*
 * What a GVA leaf allows acc in the hart's regime: the checks
 * rv_translate makes on a leaf PTE (U pages from S only with SUM and
 * never fetched; MXR makes executable pages readable). 0: not allowed
 * by this entry, so the full walk decides (the guest may have granted
 * more since, and the walk raises the fault if not).
 */
static unsigned int gva_prot(const struct rv_hart *h, unsigned int priv, uint64_t e,
			     enum rv_acc acc)
{
	unsigned int prot, need;

	if (priv == RV_PRV_U && !(e & GVA_U))
		return 0;
	if (priv == RV_PRV_S && (e & GVA_U) && (acc == ACC_FETCH || !(h->mstatus & MSTATUS_SUM)))
		return 0;
	prot = ((e & GVA_R) || ((h->mstatus & MSTATUS_MXR) && (e & GVA_X)) ? STLB_PROT_READ : 0) |
	       ((e & GVA_W) ? STLB_PROT_WRITE : 0) | ((e & GVA_X) ? STLB_PROT_EXEC : 0);
	need = acc == ACC_READ ? STLB_PROT_READ : acc == ACC_WRITE ? STLB_PROT_WRITE :
	       STLB_PROT_EXEC;
	return (prot & need) ? prot : 0;
}

/* The GVA root for the current satp, fetched (gva.lock) when satp moved
 * or the root was reused for another address space. */
static struct gva_root *hart_gva_root(struct rv_hart *h)
{
	struct gva_root *root = h->gva_root;

	if (likely(root && h->gva_key == h->satp &&
		   atomic_load_explicit(&root->key, memory_order_relaxed) == h->satp))
		return root;
	for (unsigned int i = 0; i < RV_GVA_RECENT; i++) {
		root = h->gva_recent[i].root;
		if (root && h->gva_recent[i].key == h->satp &&
		    atomic_load_explicit(&root->key, memory_order_relaxed) == h->satp)
			goto out;
	}
	root = kvm_gva_root_get(h->kvm, h->satp);
	if (root) {
		h->gva_recent[h->gva_recent_next].key = h->satp;
		h->gva_recent[h->gva_recent_next].root = root;
		h->gva_recent_next = (h->gva_recent_next + 1) % RV_GVA_RECENT;
	}
out:
	h->gva_root = root;
	h->gva_key = h->satp;
	return root;
}

/*
 * Translate va for acc, then find the host address of what it reaches.
 *
 * With paging on, a GVA table hit is the whole answer (the fast refill: no
 * guest page table, memslot or GPA table is touched). Otherwise the full
 * walk: rv_translate, then gpa_to_host (for a write if acc is ACC_WRITE).
 * A host fault on the way may have let a soft-TLB flush in; then the walk
 * may have read a guest page-table frame the host has since taken back, so
 * it is done again. A walk that needed no flush is installed in the GVA
 * table, under the root's seq taken before it (an sfence.vma meanwhile
 * drops it). Returns RV_EXC from the walk, or what gpa_to_host returns.
 */
static int translate_host(struct rv_hart *h, uint64_t va, enum rv_acc acc, gpa_t *gpa,
			  unsigned int *prot, void **host)
{
	unsigned int priv = acc_priv(h, acc);
	struct gva_root *root = NULL, *global = NULL;
	struct gva_walk walk;

	if (h->gva_on && priv != RV_PRV_M && (h->satp >> 60)) {
		_Atomic uint64_t *leafp;
		uint64_t e;

		/* The address space's own root, then the global mappings. */
		root = hart_gva_root(h);
		global = gva_global_root(&h->kvm->gva, h->satp);
		uint32_t epoch = atomic_load_explicit(&h->kvm->gva.epoch, memory_order_acquire);

		if (((root && (e = kvm_gva_lookup(root, h->satp, epoch, va, &leafp))) ||
		     (e = kvm_gva_lookup(global, gva_global_key(h->satp), epoch, va, &leafp))) &&
		    (*prot = gva_prot(h, priv, e, acc))) {
			uint64_t off = va & (PAGE_SIZE - 1);

			/* Used since aging looked: the host sees it here (A);
			 * and reused (A2: gva.c's root_reset). A failed
			 * exchange lost to a zap or another refill; e stays
			 * what was read (the exchange must not reload it: a
			 * zap's 0 would send this access to gfn 0 and host
			 * frame 0). What e maps stays this vCPU's until it
			 * leaves guest mode: a zap's flush waits for that. */
			if (unlikely((e & (GVA_A | GVA_A2)) != (GVA_A | GVA_A2))) {
				uint64_t expected = e;

				atomic_compare_exchange_strong(leafp, &expected,
							       e | ((e & GVA_A) ? GVA_A2 : GVA_A));
			}
			*gpa = (gva_leaf_gfn(e) << PAGE_SHIFT) | off;
			*host = h->kvm->arena + (gva_leaf_pfn(e) << PAGE_SHIFT) + off;
			h->stat.gva_refills++;
			return RV_OK;
		}
	}
	for (;;) {
		uint64_t gen = h->gen;
		uint64_t token = root ? kvm_gva_begin(&h->kvm->gva, root) : 0;
		uint64_t gtoken = global ? kvm_gva_begin(&h->kvm->gva, global) : 0;
		int r = rv_translate(h, va, acc, gpa, prot, root ? &walk : NULL);

		if (r)
			return r;
		r = gpa_to_host(h, *gpa, acc == ACC_WRITE, host);
		if (r < 0)
			return r;
		if (h->gen != gen)
			continue;       /* flushed meanwhile: walk again */
		if (r == RV_OK && root) {
			walk.gfn = *gpa >> PAGE_SHIFT;
			walk.host = (void *)((uintptr_t)*host & ~(uintptr_t)(PAGE_SIZE - 1));
			bool g = walk.perms & GVA_G;

			int ri = kvm_gva_install(h->kvm, g ? global : root, g ? gtoken : token,
						 va, &walk);

			if (ri == 0)
				h->stat.gva_installs++;
			else if (ri == -EBUSY)
				h->stat.gva_cold_skips++;
		}
		return r;
	}
}

/* Add prot for va's page to table's entry (or replace the entry). */
static void rv_fill(struct rv_hart *h, struct stlb_entry *table, uint64_t va, void *host,
		    unsigned int prot)
{
	struct stlb_entry *e = (struct stlb_entry *)((char *)table + stlb_offset(va));
	uint64_t page = va & ~(uint64_t)(PAGE_SIZE - 1);
	uintptr_t addend = ((uintptr_t)host & ~(uintptr_t)(PAGE_SIZE - 1)) - (uintptr_t)page;

	if (!(e->addend == addend &&
	      (e->addr_read == page || e->addr_write == page || e->addr_code == page))) {
		e->addr_read = e->addr_write = e->addr_code = STLB_INVALID;
		e->addend = addend;
	}
	if (prot & STLB_PROT_READ)
		e->addr_read = page;
	if (prot & STLB_PROT_WRITE)
		e->addr_write = page;
	if (prot & STLB_PROT_EXEC)
		e->addr_code = page;
	stlb_note_fill(h->v, (unsigned int)((table - &h->v->stlb[0][0]) / STLB_SIZE),
		       (unsigned int)(e - table));
	h->v->stat.stlb_fills++;
}

/*
 * The host address for an aligned access of size at addr that cannot
 * cross a page, refilling the data soft TLB. RV_OK with *host (NULL:
 * MMIO at *gpa), RV_EXC, or a negative errno outside guest mode.
 */
static int rv_data_host(struct rv_hart *h, uint64_t addr, bool write, void **host, gpa_t *gpa)
{
	unsigned int prot;
	int r = translate_host(h, addr, write ? ACC_WRITE : ACC_READ, gpa, &prot, host);

	if (r < 0 || r == RV_EXC)
		return r;
	if (r == RV_NOMEM)
		return exc(h, write ? EXC_STORE_ACCESS : EXC_LOAD_ACCESS, addr);
	if (r == RV_MMIO) {
		*host = NULL;
		return RV_OK;
	}
	h->v->stat.accesses_slow++;
	rv_fill(h, h->dtlb, addr, *host,
		write ? (prot & (STLB_PROT_READ | STLB_PROT_WRITE)) : (prot & STLB_PROT_READ));
	return RV_OK;
}

static uint64_t host_load(const void *p, unsigned int size)
{
	switch (size) {
	case 1: return __atomic_load_n((const uint8_t *)p, __ATOMIC_RELAXED);
	case 2: return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
	case 4: return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED);
	default: return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
	}
}

static void host_store(void *p, unsigned int size, uint64_t val)
{
	switch (size) {
	case 1: __atomic_store_n((uint8_t *)p, (uint8_t)val, __ATOMIC_RELAXED); break;
	case 2: __atomic_store_n((uint16_t *)p, (uint16_t)val, __ATOMIC_RELAXED); break;
	case 4: __atomic_store_n((uint32_t *)p, (uint32_t)val, __ATOMIC_RELAXED); break;
	default: __atomic_store_n((uint64_t *)p, val, __ATOMIC_RELAXED); break;
	}
}

/*
 * A load the soft TLB did not satisfy. *val is zero-extended; the caller
 * sign-extends. Misaligned loads are emulated a byte at a time (the spec
 * allows either that or a trap; QEMU does the same).
 */
int rv_load_slow(struct rv_hart *h, uint64_t addr, unsigned int size, uint64_t *val)
{
	void *host;
	gpa_t gpa;
	int r;

	if (addr & (size - 1)) {
		uint64_t v = 0, b;

		for (unsigned int i = 0; i < size; i++) {
			r = rv_load_slow(h, addr + i, 1, &b);
			if (r) {
				if (r == RV_EXC)
					h->exc_tval = addr;
				return r;
			}
			v |= b << (8 * i);
		}
		*val = v;
		return RV_OK;
	}
	r = rv_data_host(h, addr, false, &host, &gpa);
	if (r)
		return r;
	if (!host)
		return rv_mmio(h, addr, gpa, size, false, val);
	*val = host_load(host, size);
	return RV_OK;
}

int rv_store_slow(struct rv_hart *h, uint64_t addr, unsigned int size, uint64_t val)
{
	void *host;
	gpa_t gpa;
	int r;

	if (addr & (size - 1)) {
		/* Both pages must allow the store before any byte lands. */
		uint64_t last = addr + size - 1;

		if ((addr ^ last) >> PAGE_SHIFT) {
			r = rv_data_host(h, last, true, &host, &gpa);
			if (r) {
				if (r == RV_EXC)
					h->exc_tval = addr;
				return r;
			}
		}
		for (unsigned int i = 0; i < size; i++) {
			r = rv_store_slow(h, addr + i, 1, val >> (8 * i));
			if (r) {
				if (r == RV_EXC)
					h->exc_tval = addr;
				return r;
			}
		}
		return RV_OK;
	}
	r = rv_data_host(h, addr, true, &host, &gpa);
	if (r)
		return r;
	if (!host)
		return rv_mmio(h, addr, gpa, size, true, &val);
	host_store(host, size, val);
	return RV_OK;
}

/* The host address for an AMO, LR (write false) or SC: aligned, RAM only. */
int rv_amo_host(struct rv_hart *h, uint64_t addr, unsigned int size, bool write, void **host)
{
	gpa_t gpa;
	int r;

	if (addr & (size - 1))
		return exc(h, write ? EXC_STORE_MISALIGNED : EXC_LOAD_MISALIGNED, addr);
	r = rv_data_host(h, addr, write, host, &gpa);
	if (r)
		return r;
	if (!*host)
		return exc(h, write ? EXC_STORE_ACCESS : EXC_LOAD_ACCESS, addr);
	return RV_OK;
}

/* 16 bits of an instruction at addr (the second half of one that
 * straddles two pages), not cached. */
int rv_fetch16_slow(struct rv_hart *h, uint64_t addr, uint16_t *out)
{
	unsigned int prot;
	void *host;
	gpa_t gpa;
	int r = translate_host(h, addr, ACC_FETCH, &gpa, &prot, &host);

	if (r < 0 || r == RV_EXC)
		return r;
	if (r != RV_OK)
		return exc(h, EXC_INSN_ACCESS, addr);
	*out = (uint16_t)host_load(host, 2);
	return RV_OK;
}

/* ---- decoded code -------------------------------------------------- */

static unsigned int code_hash(gpa_t gpa)
{
	return (unsigned int)((gpa >> PAGE_SHIFT) * 0x9e3779b97f4a7c15ULL >> 54) &
	       (RV_CODE_HASH - 1);
}

void rv_code_flush(struct rv_hart *h)
{
	for (unsigned int i = 0; i < RV_CODE_HASH; i++) {
		struct rv_code_page *p = h->code_hash[i];

		while (p) {
			struct rv_code_page *next = p->next;

			free(p);
			p = next;
		}
		h->code_hash[i] = NULL;
	}
	h->code_pages = 0;
}

/* Copy the frame into p->raw; true if it differed. Word by word, as
 * relaxed atomics: other harts may be writing the page. */
static bool code_copy(struct rv_code_page *p, const void *host)
{
	const uint64_t *src = host;
	bool differs = false;

	for (unsigned int i = 0; i < PAGE_SIZE / 8; i++) {
		uint64_t w = __atomic_load_n(&src[i], __ATOMIC_RELAXED);

		if (w != p->raw[i]) {
			p->raw[i] = w;
			differs = true;
		}
	}
	return differs;
}

/*
 * The decoded page for pc, refilling the fetch soft TLB on a miss. In
 * guest mode; RV_OK, RV_EXC, or a negative errno outside guest mode.
 */
int rv_code_lookup(struct rv_hart *h, uint64_t pc, struct rv_code_page **out)
{
	uint64_t page = pc & ~(uint64_t)(PAGE_SIZE - 1);
	unsigned int idx = (unsigned int)(stlb_offset(pc) >> STLB_ENTRY_SHIFT);
	struct stlb_entry *e = &h->itlb[idx];
	struct rv_code_page *p;

	if (e->addr_code == page && (p = h->codeptr[h->fetch_idx][idx])) {
		*out = p;
		return RV_OK;
	}
	unsigned int prot, b;
	void *host;
	gpa_t gpa;
	int r = translate_host(h, pc, ACC_FETCH, &gpa, &prot, &host);

	if (r < 0 || r == RV_EXC)
		return r;
	if (r != RV_OK)
		return exc(h, EXC_INSN_ACCESS, pc);
	host = (char *)host - (gpa & (PAGE_SIZE - 1));
	gpa &= ~(uint64_t)(PAGE_SIZE - 1);
	b = code_hash(gpa);
	for (p = h->code_hash[b]; p; p = p->next)
		if (p->gpa == gpa)
			break;
	if (!p) {
		if (h->code_pages >= RV_CODE_MAX) {
			/* Start over: no decoded page is in use here (the
			 * interpreter holds none across a lookup), and the
			 * flush drops every codeptr. */
			rv_code_flush(h);
			rv_flush_tlb(h);
		}
		p = malloc(sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->gpa = gpa;
		p->next = h->code_hash[b];
		h->code_hash[b] = p;
		h->code_pages++;
		memset(p->raw, 0, sizeof(p->raw));
		code_copy(p, host);
		rv_code_page_reset(h, p);
		h->stat.code_pages_decoded++;
	} else if (p->gen != h->code_gen) {
		/* Flushed since last checked: the host may have given the
		 * page other contents (DONTNEED, remap). */
		h->stat.code_pages_checked++;
		if (code_copy(p, host)) {
			rv_code_page_reset(h, p);
			h->stat.code_pages_decoded++;
		}
	}
	p->gen = h->code_gen;
	rv_fill(h, h->itlb, pc, host, STLB_PROT_EXEC);
	h->codeptr[h->fetch_idx][idx] = p;
	*out = p;
	return RV_OK;
}

/*
 * sfence.vma rs1, rs2: the VM's GVA tables drop what the fence covers (the
 * page of addr, or everything; in the roots of ASID asid, or all), and this
 * hart's soft TLB, which holds the current address space only, drops the
 * page in every regime, or every translated regime's table (M mode's holds
 * no translation: rv_flush_guest_tlb).
 */
void rv_sfence_vma(struct rv_hart *h, bool has_addr, uint64_t addr, bool has_asid,
		   uint64_t asid)
{
	h->stat.sfence_vma++;
	if (h->gva_on)
		kvm_gva_sfence(h->kvm, has_addr, addr, has_asid, (uint16_t)asid);
	if (!has_addr) {
		rv_flush_guest_tlb(h);
		return;
	}
	uint64_t page = addr & ~(uint64_t)(PAGE_SIZE - 1);

	for (unsigned int m = 0; m < STLB_NB_MODES; m++) {
		struct stlb_entry *e = (struct stlb_entry *)((char *)h->v->stlb[m] +
							     stlb_offset(addr));

		if (e->addr_read == page || e->addr_write == page || e->addr_code == page)
			e->addr_read = e->addr_write = e->addr_code = STLB_INVALID;
	}
}
