/* vm_sv39 / vm_sv48 (SV_LEVELS = 3 / 4) - paging from S mode: aliases,
 * A/D updates (REQUIRE_HW_AD=1: the hardware must set them; otherwise a
 * page fault for a clear A/D is also accepted, the handler setting them as
 * Svade software would), page faults with cause and stval (invalid PTE,
 * SUM, MXR, read-only, no-exec, misaligned superpage, reserved W without
 * R, a fetch straddling into a no-exec page), MPRV with MPP = S, sfence.vma
 * after a PTE change, an unsupported satp mode ignored, ASIDs. */
#include "rt.h"
#include "insn.h"

#ifndef SV_LEVELS
#define SV_LEVELS 3
#endif
#ifndef REQUIRE_HW_AD
#define REQUIRE_HW_AD 0
#endif
#define SATP_MODE ((uint64_t)(SV_LEVELS == 3 ? 8 : 9) << 60)

#define PTE_V 0x01UL
#define PTE_R 0x02UL
#define PTE_W 0x04UL
#define PTE_X 0x08UL
#define PTE_U 0x10UL
#define PTE_G 0x20UL
#define PTE_A 0x40UL
#define PTE_D 0x80UL
#define RWX (PTE_R | PTE_W | PTE_X)
#define AD  (PTE_A | PTE_D)

static uint64_t pool[40][512] __attribute__((aligned(4096)));
static unsigned int pool_used;
static uint8_t phys[8][4096] __attribute__((aligned(4096)));
static uint8_t code_pages[2][4096] __attribute__((aligned(4096)));
static uint8_t mega[2 << 20] __attribute__((aligned(2 << 20)));

static uint64_t *alloc_pt(void)
{
	if (pool_used >= 40) {
		printf("FAIL out of page tables\n");
		exit_fail(99);
	}
	return memset(pool[pool_used++], 0, 4096);
}

static uint64_t *walk(uint64_t *root, uint64_t va, int level, int alloc)
{
	uint64_t *t = root;
	for (int l = SV_LEVELS - 1; l > level; l--) {
		uint64_t *e = &t[(va >> (12 + 9 * l)) & 511];
		if (!(*e & PTE_V)) {
			if (!alloc)
				return 0;
			*e = ((uint64_t)alloc_pt() >> 12) << 10 | PTE_V;
		}
		if (*e & RWX)
			return e;                   /* a leaf above: return it */
		t = (uint64_t *)((*e >> 10) << 12);
	}
	return &t[(va >> (12 + 9 * level)) & 511];
}

static void map(uint64_t *root, uint64_t va, uint64_t pa, int level, uint64_t flags)
{
	*walk(root, va, level, 1) = (pa >> 12) << 10 | flags;
}

static uint64_t *leaf(uint64_t *root, uint64_t va)
{
	return walk(root, va, 0, 0);
}

static uint64_t *root_a, *root_b;
#define TVA(i) (0x40000000UL + (uint64_t)(i) * 0x1000)
#define MEGA_VA 0x40200000UL

static uint64_t satp_for(uint64_t *root, uint64_t asid)
{
	return SATP_MODE | asid << 44 | (uint64_t)root >> 12;
}

static void sfence_all(void) { __asm__ volatile("sfence.vma" ::: "memory"); }

static uint64_t *build(int variant)
{
	uint64_t *r = alloc_pt();
	map(r, 0, 0, 2, PTE_V | PTE_R | PTE_W | AD);                  /* MMIO */
	map(r, 0x80000000UL, 0x80000000UL, 2, PTE_V | RWX | AD);      /* RAM */
	/* 0: aliases 0 and 1 -> phys[0] (b: phys[1]) */
	map(r, TVA(0), (uint64_t)phys[variant], 0, PTE_V | PTE_R | PTE_W | AD);
	map(r, TVA(1), (uint64_t)phys[variant], 0, PTE_V | PTE_R | PTE_W | AD);
	/* 2: A and D clear */
	map(r, TVA(2), (uint64_t)phys[2], 0, PTE_V | PTE_R | PTE_W);
	/* 3: invalid; 4: U page; 5: execute-only; 6: read-only; 7: RW no X */
	map(r, TVA(3), (uint64_t)phys[3], 0, PTE_R | PTE_W | AD);
	map(r, TVA(4), (uint64_t)phys[3], 0, PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | AD);
	map(r, TVA(5), (uint64_t)code_pages[0], 0, PTE_V | PTE_X | AD);
	map(r, TVA(6), (uint64_t)phys[3], 0, PTE_V | PTE_R | AD);
	map(r, TVA(7), (uint64_t)code_pages[0], 0, PTE_V | PTE_R | PTE_W | AD);
	/* 8: W without R (reserved); 9: for sfence; 10, 11: straddle X | no-X */
	map(r, TVA(8), (uint64_t)phys[3], 0, PTE_V | PTE_W | AD);
	map(r, TVA(9), (uint64_t)phys[4], 0, PTE_V | PTE_R | PTE_W | AD);
	map(r, TVA(10), (uint64_t)code_pages[0], 0, PTE_V | PTE_R | PTE_X | AD);
	map(r, TVA(11), (uint64_t)code_pages[1], 0, PTE_V | PTE_R | AD);
	/* a megapage, and a misaligned one (PPN[0] != 0) */
	map(r, MEGA_VA, (uint64_t)mega, 1, PTE_V | PTE_R | PTE_W | AD);
	map(r, MEGA_VA + (2 << 20), (uint64_t)mega + 0x1000, 1, PTE_V | PTE_R | PTE_W | AD);
	return r;
}

/* ---- S-mode accessors ---- */
static volatile uint64_t s_val;
static uint64_t s_ld(uint64_t va) { return *(volatile uint64_t *)va; }
static uint64_t s_sd(uint64_t va) { *(volatile uint64_t *)va = s_val; return 0; }
static uint64_t s_call(uint64_t va) { return ((uint64_t (*)(uint64_t))va)(1); }
static uint64_t s_ld_sum(uint64_t va)
{
	csr_set(sstatus, MSTATUS_SUM);
	uint64_t v = *(volatile uint64_t *)va;
	csr_clear(sstatus, MSTATUS_SUM);
	return v;
}
static uint64_t s_ld_mxr(uint64_t va)
{
	csr_set(sstatus, MSTATUS_MXR);
	uint64_t v = *(volatile uint64_t *)va;
	csr_clear(sstatus, MSTATUS_MXR);
	return v;
}
static uint64_t s_sfence_ld(uint64_t va)
{
	__asm__ volatile("sfence.vma %0" :: "r"(va) : "memory");
	return *(volatile uint64_t *)va;
}
static uint64_t s_satp_swap(uint64_t v) { return csr_swap(satp, v); }

#define S_RUN(fn, va) run_lower(PRV_S, fn, va)
/* expect fault cause c with stval va */
#define VM_FAULT(c, fn, va) do { trap_expect(); S_RUN(fn, va); uint64_t __c = trap_end(); \
	if (__c != (uint64_t)(c) || trap_last()->tval != (uint64_t)(va)) { \
		printf("FAIL %s:%d: %s(0x%lx): cause %ld stval 0x%lx, expected %d / 0x%lx\n", \
		       __FILE__, __LINE__, #fn, (uint64_t)(va), (long)__c, trap_last()->tval, \
		       (int)(c), (uint64_t)(va)); check_failures++; } } while (0)
#define VM_OK(fn, va) ({ trap_expect(); uint64_t __r = S_RUN(fn, va); uint64_t __c = trap_end(); \
	if (__c != TRAP_NONE) { printf("FAIL %s:%d: %s(0x%lx): cause %ld stval 0x%lx\n", \
		__FILE__, __LINE__, #fn, (uint64_t)(va), (long)__c, trap_last()->tval); \
		check_failures++; } __r; })

/* Software A/D (Svade): a page fault on a valid leaf lacking A, or D for a
 * store, sets them and retries. */
static volatile unsigned int sw_ad;
static int ad_hook(struct trap_frame *f)
{
	if (f->cause != CAUSE_LOAD_PAGE && f->cause != CAUSE_STORE_PAGE && f->cause != CAUSE_FETCH_PAGE)
		return 0;
	uint64_t *root = (uint64_t *)((csr_read(satp) & ((1UL << 44) - 1)) << 12);
	uint64_t *e = leaf(root, f->tval);
	if (!e || !(*e & PTE_V))
		return 0;
	uint64_t need = PTE_A | (f->cause == CAUSE_STORE_PAGE ? PTE_D : 0);
	if ((*e & need) == need)
		return 0;
	*e |= need;
	sw_ad++;
	sfence_all();
	return 1;
}

static void test_ad(void)
{
	uint64_t *e = leaf(root_a, TVA(2));
	*(volatile uint64_t *)phys[2] = 0x1111;
	m_trap_hook = ad_hook;
	sw_ad = 0;
	CHECK_EQ(VM_OK(s_ld, TVA(2)), 0x1111);
	CHECK(*e & PTE_A);
	CHECK(!(*e & PTE_D));
	unsigned int after_load = sw_ad;
	s_val = 0x2222;
	VM_OK(s_sd, TVA(2));
	CHECK(*e & PTE_D);
	CHECK_EQ(*(volatile uint64_t *)phys[2], 0x2222);
	/* a store to a clean page with A set */
	*e &= ~PTE_D;
	sfence_all();
	VM_OK(s_sd, TVA(2));
	CHECK(*e & PTE_D);
	/* a megapage leaf: A/D land in the level-1 PTE */
	uint64_t *m = walk(root_a, MEGA_VA, 1, 0);
	*m &= ~AD;
	sfence_all();
	VM_OK(s_sd, MEGA_VA + 0x1234 * 8);
	CHECK((*m & AD) == AD);
	m_trap_hook = 0;
	printf("A/D: %s (%u software updates)\n", sw_ad ? "page faults, set by the handler (Svade)" :
	       "set by hardware", sw_ad);
	(void)after_load;
	if (REQUIRE_HW_AD)
		CHECK_EQ(sw_ad, 0);
}

static void test_faults(void)
{
	/* invalid PTE: load, store, fetch */
	VM_FAULT(CAUSE_LOAD_PAGE, s_ld, TVA(3));
	VM_FAULT(CAUSE_STORE_PAGE, s_sd, TVA(3) + 8);
	VM_FAULT(CAUSE_FETCH_PAGE, s_call, TVA(3));
	/* unmapped VA (no table) and a non-canonical VA */
	VM_FAULT(CAUSE_LOAD_PAGE, s_ld, 0x7f000000UL);
	uint64_t noncanon = SV_LEVELS == 3 ? 0x0000004000000000UL : 0x0000800000000000UL;
	VM_FAULT(CAUSE_LOAD_PAGE, s_ld, noncanon);
	/* U page from S: fault without SUM, fine with it; never executable */
	*(volatile uint64_t *)phys[3] = 0x3333;
	VM_FAULT(CAUSE_LOAD_PAGE, s_ld, TVA(4));
	VM_FAULT(CAUSE_STORE_PAGE, s_sd, TVA(4));
	CHECK_EQ(VM_OK(s_ld_sum, TVA(4)), 0x3333);
	/* the fetch: SUM does not allow it (and the entry stays cleared) */
	VM_FAULT(CAUSE_FETCH_PAGE, s_call, TVA(4));
	/* execute-only: no read unless MXR; executable */
	VM_FAULT(CAUSE_LOAD_PAGE, s_ld, TVA(5));
	CHECK_EQ(VM_OK(s_ld_mxr, TVA(5)), *(volatile uint64_t *)code_pages[0]);
	CHECK_EQ(VM_OK(s_call, TVA(5)), 43);
	/* read-only: store faults */
	CHECK_EQ(VM_OK(s_ld, TVA(6)), 0x3333);
	VM_FAULT(CAUSE_STORE_PAGE, s_sd, TVA(6) + 16);
	/* RW, not X: fetch faults; the same code through an X alias runs */
	VM_FAULT(CAUSE_FETCH_PAGE, s_call, TVA(7));
	/* W without R is reserved */
	VM_FAULT(CAUSE_LOAD_PAGE, s_ld, TVA(8));
	VM_FAULT(CAUSE_STORE_PAGE, s_sd, TVA(8));
	/* megapage ok; misaligned megapage faults */
	*(volatile uint64_t *)(mega + 0x1008) = 0x4444;
	CHECK_EQ(VM_OK(s_ld, MEGA_VA + 0x1008), 0x4444);
	VM_FAULT(CAUSE_LOAD_PAGE, s_ld, MEGA_VA + (2 << 20) + 8);
	/* a 32-bit instruction at 0xffe of an X page running into a no-X page:
	 * epc = the instruction, stval = it or (spec) the faulting half's page */
	trap_expect();
	S_RUN(s_call, TVA(10) + 8);
	uint64_t c = trap_end();
	CHECK_EQ(c, CAUSE_FETCH_PAGE);
	CHECK_EQ(trap_last()->epc, TVA(10) + 0xffe);
	CHECK(trap_last()->tval == TVA(11) || trap_last()->tval == TVA(10) + 0xffe);
	printf("straddling fetch fault: stval = %s\n",
	       trap_last()->tval == TVA(11) ? "the second page" : "the instruction address");
	/* the same with the second page executable */
	*leaf(root_a, TVA(11)) |= PTE_X;
	sfence_all();
	CHECK_EQ(VM_OK(s_call, TVA(10) + 8), 2);
}

static void test_alias_sfence(void)
{
	s_val = 0xabcdef;
	VM_OK(s_sd, TVA(0) + 64);
	CHECK_EQ(VM_OK(s_ld, TVA(1) + 64), 0xabcdef);
	CHECK_EQ(*(volatile uint64_t *)(phys[0] + 64), 0xabcdef);
	/* sfence.vma after a PTE change */
	*(volatile uint64_t *)phys[4] = 4;
	*(volatile uint64_t *)phys[5] = 5;
	CHECK_EQ(VM_OK(s_ld, TVA(9)), 4);
	*leaf(root_a, TVA(9)) = ((uint64_t)phys[5] >> 12) << 10 | PTE_V | PTE_R | PTE_W | AD;
	CHECK_EQ(VM_OK(s_sfence_ld, TVA(9)), 5);
	/* invalidate it: the next access faults */
	*leaf(root_a, TVA(9)) = 0;
	trap_expect();
	S_RUN(s_sfence_ld, TVA(9));
	CHECK_EQ(trap_end(), CAUSE_LOAD_PAGE);
	*leaf(root_a, TVA(9)) = ((uint64_t)phys[4] >> 12) << 10 | PTE_V | PTE_R | PTE_W | AD;
	sfence_all();
}

static void test_mprv(void)
{
	*(volatile uint64_t *)(phys[0] + 128) = 0x77;
	uint64_t v, old = csr_read(mstatus);
	/* M loads and stores through S's translation */
	__asm__ volatile("li t0, 3 << 11\ncsrc mstatus, t0\nli t0, (1 << 11) | (1 << 17)\n"
			 "csrs mstatus, t0\nld %0, 0(%1)\nsd %2, 8(%1)\ncsrc mstatus, t0"
			 : "=&r"(v) : "r"(TVA(1) + 128), "r"(0x88UL) : "t0", "memory");
	CHECK_EQ(v, 0x77);
	CHECK_EQ(*(volatile uint64_t *)(phys[0] + 136), 0x88);
	csr_write(mstatus, old);
}

static void test_satp_asid(void)
{
	uint64_t cur = csr_read(satp);
	/* unsupported modes: the write is ignored */
	static const uint64_t bad[] = { 1, 5, 11, 15 };
	for (unsigned int i = 0; i < 4; i++) {
		csr_write(satp, bad[i] << 60 | ((uint64_t)root_b >> 12));
		CHECK_EQ(csr_read(satp), cur);
		csr_write(satp, cur);
	}
	/* from S too */
	CHECK_EQ(VM_OK(s_satp_swap, 11UL << 60 | ((uint64_t)root_b >> 12)), cur);
	CHECK_EQ(csr_read(satp), cur);
	/* mode 10 (Sv57): tandem has none; QEMU 7.2 does */
	csr_write(satp, 10UL << 60 | (cur & ((1UL << 60) - 1)));
	if (csr_read(satp) != cur)
		printf("note: satp accepts mode 10 (Sv57)\n");
	csr_write(satp, cur);
	/* ASID width */
	csr_write(satp, cur | 0xffffUL << 44);
	uint64_t asids = (csr_read(satp) >> 44) & 0xffff;
	printf("satp ASID bits: 0x%lx\n", asids);
	csr_write(satp, cur);
	sfence_all();
	if (!asids) {
		printf("no ASIDs: skipping the ASID checks\n");
		return;
	}
	/* two spaces, two ASIDs, the same VA onto different frames */
	*(volatile uint64_t *)phys[0] = 100;
	*(volatile uint64_t *)phys[1] = 200;
	uint64_t sa = satp_for(root_a, 1 & asids), sb = satp_for(root_b, 2 & asids);
	csr_write(satp, sa);
	CHECK_EQ(VM_OK(s_ld, TVA(0)), 100);
	csr_write(satp, sb);
	CHECK_EQ(VM_OK(s_ld, TVA(0)), 200);
	csr_write(satp, sa);
	CHECK_EQ(VM_OK(s_ld, TVA(0)), 100);
	/* change space a's PTE; sfence.vma for ASID a only */
	*leaf(root_a, TVA(0)) = ((uint64_t)phys[5] >> 12) << 10 | PTE_V | PTE_R | PTE_W | AD;
	*(volatile uint64_t *)phys[5] = 500;
	__asm__ volatile("sfence.vma zero, %0" :: "r"(1 & asids) : "memory");
	CHECK_EQ(VM_OK(s_ld, TVA(0)), 500);
	csr_write(satp, sb);
	CHECK_EQ(VM_OK(s_ld, TVA(0)), 200);
	csr_write(satp, cur);
	*leaf(root_a, TVA(0)) = ((uint64_t)phys[0] >> 12) << 10 | PTE_V | PTE_R | PTE_W | AD;
	sfence_all();
}

int main(void)
{
	/* code page 0 at 0: "addi a0, a0, 42; ret" (run at TVA(5), TVA(7)) */
	uint32_t *cp = (uint32_t *)code_pages[0];
	cp[0] = 0x02a50513;            /* addi a0, a0, 42 */
	cp[1] = 0x00008067;            /* ret */
	/* straddle (entered at TVA(10) + 8: a jump to 0xffc);
	 * 0xffc: c.nop; 0xffe: addi a0, a0, 1 (split); 0x1002: ret */
	uint16_t *h = (uint16_t *)code_pages[0];
	uint16_t *h1 = (uint16_t *)code_pages[1];
	h[0x7fe] = 0x0001;             /* c.nop at 0xffc */
	h[0x7ff] = 0x0513;             /* addi a0, a0, 1 = 0x00150513 */
	h1[0] = 0x0015;
	h1[1] = 0x8082;                /* c.jr ra */
	cp[2] = 0x7f50006f;            /* jal x0, +0xff4 (to 0xffc) */
	__asm__ volatile("fence.i" ::: "memory");

	root_a = build(0);
	root_b = build(1);
	csr_write(satp, satp_for(root_a, 0));
	sfence_all();
	printf("Sv%d, satp 0x%lx\n", SV_LEVELS == 3 ? 39 : 48, csr_read(satp));
	test_alias_sfence();
	test_ad();
	test_faults();
	test_mprv();
	test_satp_asid();
	csr_write(satp, 0);
	sfence_all();
	return 0;
}
