/* guests/kernel: Sv39 address spaces, ASIDs and their fences.
 *
 * Kernel: RAM mapped one to one with global gigapages (root entries 2..),
 * the same entries in every address space. Users: root entries 0 and 1.
 *
 * ASIDs (Linux's generation scheme): mm->ctx = generation << 16 | asid.
 * A switch to an mm whose generation is current reuses its ASID without
 * any flush. Otherwise a free ASID of the generation is taken; when none
 * is left the generation rolls over: the ASIDs live on a hart right now
 * stay with their mm (reserved), every other number is free again, and
 * every hart is marked flush_pending, so it runs sfence.vma zero, asid
 * for every ASID before it next loads one into satp. Any stale entries
 * of an ASID's previous owner are thus gone from every hart before the
 * ASID is used for its new owner.
 *
 * PTE changes (fork's write protection, COW, munmap, mprotect, sbrk
 * shrink) run on the hart where the mm is current and end with
 * mm_flush_va: sfence.vma va, asid here, and SBI RFENCE
 * remote_sfence_vma_asid on every other hart in mm->hart_mask (the harts
 * this mm has run on with its present ASID). */
#include "kernel.h"

#define GEN_SHIFT 16
#define ASID_MASK 0xffffUL

uint64_t kernel_satp;
static uint64_t kernel_root[512] __attribute__((aligned(4096)));
static struct spinlock asid_lock;
static uint64_t asid_gen = 1;
static uint64_t asid_map;      /* bit a: ASID a taken in this generation */
static unsigned asid_next = 1;
static unsigned nasid;         /* ASIDs 1..nasid in use; 0: no ASIDs (flush on switch) */

static inline void sfence_all_asid(uint64_t asid)
{
	__asm__ volatile("sfence.vma zero, %0" :: "r"(asid) : "memory");
	COUNT(sfences, 1);
}
static inline void sfence_va_asid(uint64_t va, uint64_t asid)
{
	__asm__ volatile("sfence.vma %0, %1" :: "r"(va), "r"(asid) : "memory");
	COUNT(sfences, 1);
}
static inline void sfence_everything(void)
{
	__asm__ volatile("sfence.vma zero, zero" ::: "memory");
	COUNT(sfences, 1);
}

void vm_init(uint64_t ram_base, uint64_t ram_end)
{
	if (ram_base < 0x80000000UL)
		panic("RAM below 0x80000000 would overlap user space");
	for (uint64_t g = ram_base & ~((1UL << 30) - 1); g < ram_end; g += 1UL << 30)
		kernel_root[g >> 30] = PA2PTE(g) | PTE_R | PTE_W | PTE_X | PTE_G | PTE_A | PTE_D | PTE_V;
	/* How many ASID bits does the hart keep? */
	csr_write(satp, MAKE_SATP(kernel_root, ASID_MASK));
	uint64_t got = (csr_read(satp) >> 44) & ASID_MASK;
	csr_write(satp, MAKE_SATP(kernel_root, 0));
	sfence_everything();
	unsigned hw = (unsigned)got;
	nasid = (unsigned)cfg.asids;
	if (nasid > 63)
		nasid = 63;
	if (nasid > hw)
		nasid = hw;
	if (nasid && nasid < (unsigned)nharts + 1)
		nasid = (unsigned)nharts + 1;  /* one per hart live, plus one */
	if (nasid > hw)
		nasid = 0;
	cfg.asids = nasid;
	kernel_satp = MAKE_SATP(kernel_root, 0);
	kprintf("kernel: satp ASID field keeps 0x%lx: using %u ASIDs (1..%u)%s\n",
		got, nasid, nasid, nasid ? "" : ", none: flush on every switch");
}

void vm_hart_init(void)
{
	csr_write(satp, kernel_satp);
	sfence_everything();
}

int mm_create(struct mm *mm)
{
	uint64_t *root = kalloc();
	if (!root)
		return -1;
	for (int i = 2; i < 512; i++)
		root[i] = kernel_root[i];
	mm->root = root;
	mm->ctx = 0;
	mm->hart_mask = 0;
	mm->brk = mm->heap_base = 0;
	return 0;
}

uint64_t *mm_walk(struct mm *mm, uint64_t va, bool alloc)
{
	if (va >= 0x80000000UL)
		return NULL;
	uint64_t *pt = mm->root;
	for (int level = 2; level > 0; level--) {
		uint64_t *pte = &pt[(va >> (PGSHIFT + 9 * level)) & 511];
		if (*pte & PTE_V) {
			if (*pte & (PTE_R | PTE_W | PTE_X))
				return NULL;  /* a superpage: not in user space */
			pt = (uint64_t *)PTE2PA(*pte);
		} else {
			if (!alloc)
				return NULL;
			uint64_t *n = kalloc();
			if (!n)
				return NULL;
			*pte = PA2PTE(n) | PTE_V;
			pt = n;
		}
	}
	return &pt[(va >> PGSHIFT) & 511];
}

int mm_map(struct mm *mm, uint64_t va, uint64_t pa, uint64_t perm)
{
	uint64_t *pte = mm_walk(mm, va, true);
	if (!pte)
		return -1;
	if (*pte & PTE_V)
		panic("mm_map: %p already mapped", (void *)va);
	*pte = PA2PTE(pa) | perm | PTE_V;
	return 0;
}

/* Visit every user leaf: fn(pte, va). */
static void for_each_leaf(struct mm *mm, void (*fn)(uint64_t *pte, uint64_t va, void *arg), void *arg)
{
	for (int i = 0; i < 2; i++) {
		uint64_t e1 = mm->root[i];
		if (!(e1 & PTE_V))
			continue;
		uint64_t *l1 = (uint64_t *)PTE2PA(e1);
		for (int j = 0; j < 512; j++) {
			if (!(l1[j] & PTE_V))
				continue;
			uint64_t *l0 = (uint64_t *)PTE2PA(l1[j]);
			for (int k = 0; k < 512; k++)
				if (l0[k] & PTE_V)
					fn(&l0[k], ((uint64_t)i << 30) | ((uint64_t)j << 21) | ((uint64_t)k << 12), arg);
		}
	}
}

static void put_leaf(uint64_t *pte, uint64_t va, void *arg)
{
	(void)va; (void)arg;
	page_put(PTE2PA(*pte));
	*pte = 0;
}

/* The mm must not be live on any hart (switch_kernel_mm first). */
void mm_destroy(struct mm *mm)
{
	if (!mm->root)
		return;
	for_each_leaf(mm, put_leaf, NULL);
	for (int i = 0; i < 2; i++) {
		uint64_t e1 = mm->root[i];
		if (!(e1 & PTE_V))
			continue;
		uint64_t *l1 = (uint64_t *)PTE2PA(e1);
		for (int j = 0; j < 512; j++)
			if (l1[j] & PTE_V)
				page_put(PTE2PA(l1[j]));
		page_put((uint64_t)l1);
	}
	page_put((uint64_t)mm->root);
	mm->root = NULL;
}

/* The targeted fence after a PTE change in mm, current on this hart. */
void mm_flush_va(struct mm *mm, uint64_t va, uint64_t len)
{
	if (cfg.break_sfence)
		return;          /* deliberately broken: see README */
	uint64_t me = mycpu()->hartid;
	uint64_t npages = len ? (len + PGSIZE - 1) >> PGSHIFT : ~0UL;
	if (!nasid) {
		if (npages > 16)
			sfence_everything();
		else
			for (uint64_t i = 0; i < npages; i++) {
				__asm__ volatile("sfence.vma %0, zero" :: "r"(va + i * PGSIZE) : "memory");
				COUNT(sfences, 1);
			}
	} else {
		uint64_t asid = mm->ctx & ASID_MASK;
		if (npages > 16)
			sfence_all_asid(asid);
		else
			for (uint64_t i = 0; i < npages; i++)
				sfence_va_asid(va + i * PGSIZE, asid);
		uint64_t others = mm->hart_mask & ~(1UL << me);
		if (others) {
			long e = sbi_remote_sfence_vma_asid(others, npages > 16 ? 0 : va,
							    npages > 16 ? ~0UL : npages * PGSIZE, asid);
			if (e)
				panic("remote sfence.vma.asid: SBI error %ld", e);
			COUNT(rfences, 1);
		}
		return;
	}
	uint64_t others = mm->hart_mask & ~(1UL << me);
	if (others) {
		/* no ASIDs: remote_sfence_vma (FID 1) */
		sbi_call(0x52464E43, 1, (long)others, 0, npages > 16 ? 0 : (long)va,
			 npages > 16 ? -1L : (long)(npages * PGSIZE), 0);
		COUNT(rfences, 1);
	}
}

struct fork_arg { struct mm *child; int err; };

static void fork_leaf(uint64_t *pte, uint64_t va, void *arg)
{
	struct fork_arg *fa = arg;
	if (fa->err)
		return;
	if (*pte & PTE_SWW)
		*pte &= ~PTE_W;             /* shared from now on: copy on write */
	uint64_t pa = PTE2PA(*pte);
	uint64_t *c = mm_walk(fa->child, va, true);
	if (!c) {
		fa->err = -1;
		return;
	}
	page_get(pa);
	*c = *pte;
}

int mm_fork(struct mm *parent, struct mm *child)
{
	struct fork_arg fa = { child, 0 };
	for_each_leaf(parent, fork_leaf, &fa);
	child->brk = parent->brk;
	child->heap_base = parent->heap_base;
	/* The parent lost W on its writable pages: fence its whole ASID. */
	mm_flush_va(parent, 0, 0);
	return fa.err;
}

int mm_alloc_range(struct mm *mm, uint64_t va, uint64_t len, uint64_t perm)
{
	for (uint64_t a = va; a < va + len; a += PGSIZE) {
		uint64_t *pte = mm_walk(mm, a, false);
		if (pte && (*pte & PTE_V))
			return -1;
	}
	for (uint64_t a = va; a < va + len; a += PGSIZE) {
		void *pg = kalloc();
		if (!pg || mm_map(mm, a, (uint64_t)pg, perm) < 0) {
			if (pg)
				page_put((uint64_t)pg);
			mm_unmap_range(mm, va, a - va, true);
			return -1;
		}
	}
	return 0;
}

/* Clear the PTEs, fence, and only then drop the pages. */
int mm_unmap_range(struct mm *mm, uint64_t va, uint64_t len, bool must_exist)
{
	if (must_exist)
		for (uint64_t a = va; a < va + len; a += PGSIZE) {
			uint64_t *pte = mm_walk(mm, a, false);
			if (!pte || !(*pte & PTE_V))
				return -1;
		}
	uint64_t batch[32];
	uint64_t a = va;
	while (a < va + len) {
		uint64_t start = a;
		int n = 0;
		while (a < va + len && n < 32) {
			uint64_t *pte = mm_walk(mm, a, false);
			if (pte && (*pte & PTE_V)) {
				batch[n++] = PTE2PA(*pte);
				*pte = 0;
			}
			a += PGSIZE;
		}
		mm_flush_va(mm, start, a - start);
		for (int i = 0; i < n; i++)
			page_put(batch[i]);
	}
	return 0;
}

int mm_protect_range(struct mm *mm, uint64_t va, uint64_t len, uint64_t prot)
{
	if (!(prot & PROT_READ))
		return -1;
	for (uint64_t a = va; a < va + len; a += PGSIZE) {
		uint64_t *pte = mm_walk(mm, a, false);
		if (!pte || !(*pte & PTE_V))
			return -1;
	}
	for (uint64_t a = va; a < va + len; a += PGSIZE) {
		uint64_t *pte = mm_walk(mm, a, false);
		uint64_t e = *pte & ~(PTE_R | PTE_W | PTE_X | PTE_SWW);
		e |= PTE_R;
		if (prot & PROT_EXEC)
			e |= PTE_X;
		if (prot & PROT_WRITE) {
			e |= PTE_SWW;
			if (page_refs(PTE2PA(e)) == 1)
				e |= PTE_W;
		}
		*pte = e;
	}
	mm_flush_va(mm, va, len);
	return 0;
}

/* A store page fault at va: copy on write. 0: retry, -1: kill. */
int mm_store_fault(struct mm *mm, uint64_t va)
{
	va &= ~(PGSIZE - 1);
	uint64_t *pte = mm_walk(mm, va, false);
	if (!pte || (*pte & (PTE_V | PTE_U)) != (PTE_V | PTE_U) || !(*pte & PTE_SWW))
		return -1;
	if (*pte & PTE_W) {
		/* stale TLB entry, or a hart that wants software A/D */
		*pte |= PTE_A | PTE_D;
		mm_flush_va(mm, va, PGSIZE);
		COUNT(spurious, 1);
		return 0;
	}
	uint64_t pa = PTE2PA(*pte);
	if (page_refs(pa) == 1 || cfg.break_cow) {
		/* last sharer (or, broken on purpose, share it writable) */
		*pte |= PTE_W | PTE_A | PTE_D;
		mm_flush_va(mm, va, PGSIZE);
		COUNT(cow, 1);
		return 0;
	}
	uint64_t *copy = kalloc();
	if (!copy)
		return -1;
	memcpy(copy, (void *)pa, PGSIZE);
	*pte = PA2PTE(copy) | (*pte & 0x3ff) | PTE_W | PTE_A | PTE_D;
	mm_flush_va(mm, va, PGSIZE);
	page_put(pa);
	COUNT(cow, 1);
	return 0;
}

/* A load or fetch fault: only a missing A bit (software A/D) is ours. */
int mm_access_fault(struct mm *mm, uint64_t va, uint64_t need)
{
	uint64_t *pte = mm_walk(mm, va & ~(PGSIZE - 1), false);
	if (!pte || (*pte & (PTE_V | PTE_U | need)) != (PTE_V | PTE_U | need))
		return -1;
	*pte |= PTE_A;
	mm_flush_va(mm, va & ~(PGSIZE - 1), PGSIZE);
	COUNT(spurious, 1);
	return 0;
}

int mm_copyin(struct mm *mm, char *dst, uint64_t va, uint64_t len)
{
	while (len) {
		uint64_t *pte = mm_walk(mm, va & ~(PGSIZE - 1), false);
		if (!pte || (*pte & (PTE_V | PTE_U | PTE_R)) != (PTE_V | PTE_U | PTE_R))
			return -1;
		uint64_t off = va & (PGSIZE - 1);
		uint64_t n = PGSIZE - off < len ? PGSIZE - off : len;
		memcpy(dst, (char *)PTE2PA(*pte) + off, n);
		dst += n;
		va += n;
		len -= n;
	}
	return 0;
}

/* ---------------- ASIDs ---------------- */

static void rollover(void)
{
	asid_gen++;
	asid_map = 0;
	COUNT(asid_rollovers, 1);
	for (int h = 0; h < MAX_HARTS; h++) {
		struct mm *m = cpus[h].active_mm;
		if (m) {
			uint64_t a = m->ctx & ASID_MASK;
			asid_map |= 1UL << a;
			m->ctx = asid_gen << GEN_SHIFT | a;
		}
		cpus[h].flush_pending = true;
	}
}

static void new_context(struct mm *mm)
{
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < nasid; i++) {
			unsigned a = 1 + (asid_next - 1 + i) % nasid;
			if (!(asid_map & (1UL << a))) {
				asid_map |= 1UL << a;
				asid_next = a % nasid + 1;
				mm->ctx = asid_gen << GEN_SHIFT | a;
				mm->hart_mask = 0;
				COUNT(asid_allocs, 1);
				return;
			}
		}
		rollover();
	}
	panic("no free ASID after a rollover");
}

void switch_mm(struct mm *mm)
{
	struct cpu *c = mycpu();
	acquire(&asid_lock);
	if (!nasid) {
		c->active_mm = mm;
		__atomic_fetch_or(&mm->hart_mask, 1UL << c->hartid, __ATOMIC_SEQ_CST);
		csr_write(satp, MAKE_SATP(mm->root, 0));
		sfence_everything();
		release(&asid_lock);
		return;
	}
	if ((mm->ctx >> GEN_SHIFT) != asid_gen)
		new_context(mm);
	if (c->flush_pending) {
		/* a rollover happened: every ASID may be reused now */
		for (unsigned a = 1; a <= nasid; a++)
			sfence_all_asid(a);
		c->flush_pending = false;
	}
	uint64_t asid = mm->ctx & ASID_MASK;
	c->active_mm = mm;
	c->active_asid = asid;
	__atomic_fetch_or(&mm->hart_mask, 1UL << c->hartid, __ATOMIC_SEQ_CST);
	csr_write(satp, MAKE_SATP(mm->root, asid));   /* no flush: the ASID tells them apart */
	release(&asid_lock);
}

void switch_kernel_mm(void)
{
	struct cpu *c = mycpu();
	acquire(&asid_lock);
	c->active_mm = NULL;
	c->active_asid = 0;
	csr_write(satp, kernel_satp);
	release(&asid_lock);
}
