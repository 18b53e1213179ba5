/* SPDX-License-Identifier: MIT */
/*
 * test_gva.c - the GVA page tables (src/kvm/gva.[ch]) as a RISC-V hart
 * builds and uses them (src/cpu/riscv/mmu.c), one protocol step a test:
 *
 *   - sfence.vma: by address, by ASID, or all, takes exactly the entries
 *     it covers; a global entry outlives an ASID fence, not an address one;
 *   - a satp switch keeps both address spaces' entries, and coming back
 *     refills from them without a walk;
 *   - a guest PTE rewritten without a fence may keep its old translation,
 *     but never past the host taking the old page back; a walk that began
 *     before a fence does not install its translation after it;
 *   - an install that gives up below a node it made leaves it linked:
 *     reused by the next install, followed by the reset of the node above;
 *   - a host invalidation of a data page, or of a guest page-table page,
 *     leaves no entry built on it once invalidate_range_start returned;
 *   - an entry gets W only once the guest PTE's D is set and the spte is
 *     dirty: the first write through it walks and sets D;
 *   - aging sees a page the guest reaches only through GVA refills;
 *   - KVM_GVA_OFF builds nothing; KVM_GVA_FLUSH_ALL empties every root at
 *     any host zap; the two --break switches fail the way they say.
 *
 * The guest is an agent in M mode: it parks in an ecall (the VMM's handler,
 * on the hart's thread, outside guest mode) until the test posts one
 * operation -- a load or store through Sv39 (MPRV with MPP = S: the S
 * regime), a physical load, a satp write, an sfence.vma -- does it and
 * parks again with the result. So while the test looks (kvm_gva_probe,
 * kvm_get_stats, the hart's stats as of the park), rewrites guest PTEs or
 * invalidates host pages, the hart is stopped at a known point and out of
 * guest mode: nothing moves but what the test does. Code fetches are M
 * mode's, physical: only the operations' data accesses touch the GVA
 * tables and count as walks or refills.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/mmu_notifier.h"
#include "kvm/kvm_host.h"
#include "harness/rv_asm.h"
#include "harness/rv_fixture.h"
#include "harness/util.h"

/* RAM layout (offsets from RT_RAM_BASE): the agent, two address spaces'
 * tables, 16 data pages whose first word is DATA_VAL(i). */
#define RAM_SIZE        0x20000
#define PT_A            0x1000          /* root, L1, L0 */
#define PT_B            0x4000
#define DATA(i)         (0x8000 + (uint64_t)(i) * PAGE_SIZE)
#define NR_DATA         16
#define DATA_VAL(i)     (0xda7a0000ULL + (i))
/* VPN2 1, VPN1 0: L0 entry i maps VA(i). */
#define VA_BASE         0x40000000ULL
#define VA(i)           (VA_BASE + (uint64_t)(i) * PAGE_SIZE)
#define RW_PAGE         (RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D)
#define EXC_LOAD_PAGE   13

/* ---- address spaces ---------------------------------------------------- */

struct as {
	uint64_t root, l1, l0;          /* RAM offsets of its tables */
	uint16_t asid;
};

static const struct as AS_A = { PT_A, PT_A + 0x1000, PT_A + 0x2000, 1 };
static const struct as AS_B = { PT_B, PT_B + 0x1000, PT_B + 0x2000, 2 };

static uint64_t as_satp(const struct as *a)
{
	return 8ULL << 60 | (uint64_t)a->asid << 44 | (RT_RAM_BASE + a->root) >> 12;
}

static gfn_t gfn_of(uint64_t off)
{
	return (RT_RAM_BASE + off) >> PAGE_SHIFT;
}

/* ---- the agent --------------------------------------------------------- */

enum agent_op {
	OP_LOAD = 1,            /* a0 = *(u64 *)va, S regime */
	OP_STORE,               /* *(u64 *)va = a2, S regime */
	OP_LOADP,               /* a0 = *(u64 *)pa, M mode, no translation */
	OP_SATP,                /* satp = a1 */
	OP_SFENCE_VA_ASID,      /* sfence.vma a1, a2 */
	OP_SFENCE_VA,           /* sfence.vma a1, x0 */
	OP_SFENCE_ASID,         /* sfence.vma x0, a2 */
	OP_SFENCE_ALL,          /* sfence.vma x0, x0 */
	OP_NR
};

struct agent {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool parked;            /* the hart waits in the ecall handler */
	bool posted, quit;
	uint64_t op, arg1, arg2;
	/* As of the last park: the operation's a0 and a1 (0, or 1 + mcause
	 * of the trap it took), and the hart's statistics. */
	uint64_t ret, err;
	struct rv_hart_stats st;
};

/* The VMM's ecall handler, on the hart's thread outside guest mode: report
 * the last operation, wait for the next. */
static bool agent_ecall(struct rv_hart *h, unsigned int priv, void *arg)
{
	struct agent *ag = arg;

	pthread_mutex_lock(&ag->m);
	ag->ret = rv_hart_get_reg(h, A0);
	ag->err = rv_hart_get_reg(h, A1);
	rv_hart_get_stats(h, &ag->st);
	ag->parked = true;
	pthread_cond_broadcast(&ag->c);
	while (!ag->posted && !ag->quit)
		pthread_cond_wait(&ag->c, &ag->m);
	rv_hart_set_reg(h, A0, ag->posted ? ag->op : 0);
	rv_hart_set_reg(h, A1, ag->arg1);
	rv_hart_set_reg(h, A2, ag->arg2);
	ag->posted = false;
	ag->parked = false;
	pthread_mutex_unlock(&ag->m);
	return true;
}

static uint32_t jump(unsigned int from, unsigned int to)
{
	return jal(ZERO, ((int32_t)to - (int32_t)from) * 4);
}

/*
 * The agent's code, at RAM offset 0:
 *   0      j start
 *   trap:  (mtvec) MPRV and MPP off; a1 = 1 + mcause; a0 = 0; j loop
 *   start: mtvec = trap; t5 = MPRV | MPP=S; t6 = MPRV | MPP; MPRV, MPP off
 *   loop:  ecall; dispatch on a0 to one block per operation; each block
 *          ends with a1 = 0 and j loop.
 * A trap from M mode sets MPP to M: the handler clears it, so that the
 * next csrrs of t5 sets S again.
 */
static unsigned int agent_assemble(uint32_t *p)
{
	unsigned int n = 0, loop, to_loop, br[OP_NR];

	n++;                                    /* j start */
	p[n++] = csrrc(ZERO, CSR_MSTATUS, T6);
	p[n++] = csrrs(A1, CSR_MCAUSE, ZERO);
	p[n++] = addi(A1, A1, 1);
	p[n++] = addi(A0, ZERO, 0);
	to_loop = n++;
	p[0] = jump(0, n);
	n += emit_base(p + n, T0, 4);
	p[n++] = csrrw(ZERO, CSR_MTVEC, T0);
	p[n++] = addi(T5, ZERO, 1);
	p[n++] = slli(T5, T5, 17);
	p[n++] = addi(T0, ZERO, 1);
	p[n++] = slli(T0, T0, 11);
	p[n++] = or_(T5, T5, T0);               /* MPRV | MPP = S */
	p[n++] = addi(T6, ZERO, 1);
	p[n++] = slli(T6, T6, 17);
	p[n++] = addi(T0, ZERO, 3);
	p[n++] = slli(T0, T0, 11);
	p[n++] = or_(T6, T6, T0);               /* MPRV | MPP */
	p[n++] = csrrc(ZERO, CSR_MSTATUS, T6);
	loop = n;
	p[to_loop] = jump(to_loop, loop);
	p[n++] = ECALL;
	for (unsigned int op = 1; op < OP_NR; op++) {
		p[n++] = addi(T0, ZERO, (int32_t)op);
		br[op] = n++;
	}
	p[n] = jump(n, loop);                   /* no operation (quit) */
	n++;
	for (unsigned int op = 1; op < OP_NR; op++) {
		p[br[op]] = beq(A0, T0, ((int32_t)n - (int32_t)br[op]) * 4);
		switch (op) {
		case OP_LOAD:
			p[n++] = csrrs(ZERO, CSR_MSTATUS, T5);
			p[n++] = ld(A0, A1, 0);
			p[n++] = csrrc(ZERO, CSR_MSTATUS, T6);
			break;
		case OP_STORE:
			p[n++] = csrrs(ZERO, CSR_MSTATUS, T5);
			p[n++] = sd(A2, A1, 0);
			p[n++] = csrrc(ZERO, CSR_MSTATUS, T6);
			p[n++] = addi(A0, ZERO, 0);
			break;
		case OP_LOADP:
			p[n++] = ld(A0, A1, 0);
			break;
		case OP_SATP:
			p[n++] = csrrw(ZERO, CSR_SATP, A1);
			break;
		case OP_SFENCE_VA_ASID:
			p[n++] = sfence_vma(A1, A2);
			break;
		case OP_SFENCE_VA:
			p[n++] = sfence_vma(A1, ZERO);
			break;
		case OP_SFENCE_ASID:
			p[n++] = sfence_vma(ZERO, A2);
			break;
		case OP_SFENCE_ALL:
			p[n++] = sfence_vma(ZERO, ZERO);
			break;
		}
		p[n++] = addi(A1, ZERO, 0);
		p[n] = jump(n, loop);
		n++;
	}
	return n;
}

/* ---- the fixture: rv_fixture's VM, the agent on one hart ---------------- */

struct gt {
	struct rt *t;
	struct kvm *kvm;
	struct agent ag;
};

static bool agent_wait_parked_locked(struct agent *ag)
{
	return wait_flag(&ag->m, &ag->c, &ag->parked, RT_WAIT_MS);
}

/* Post op and wait until the hart has done it and parked again; returns
 * a0, and the error (0, or 1 + mcause) in *err. */
static uint64_t agent_do(struct gt *g, enum agent_op op, uint64_t arg1, uint64_t arg2,
			 uint64_t *err)
{
	struct agent *ag = &g->ag;
	uint64_t ret = 0;
	bool ok;

	pthread_mutex_lock(&ag->m);
	ok = agent_wait_parked_locked(ag);
	if (ok) {
		ag->op = op;
		ag->arg1 = arg1;
		ag->arg2 = arg2;
		ag->posted = true;
		ag->parked = false;
		pthread_cond_broadcast(&ag->c);
		ok = agent_wait_parked_locked(ag);
		ret = ag->ret;
		*err = ag->err;
	}
	pthread_mutex_unlock(&ag->m);
	if (!ok)
		fail_msg("the hart did not come back from operation %d", op);
	return ret;
}

static void agent_op(struct gt *g, enum agent_op op, uint64_t arg1, uint64_t arg2)
{
	uint64_t err;

	agent_do(g, op, arg1, arg2, &err);
	assert_int_equal(err, 0);
}

static uint64_t agent_load(struct gt *g, uint64_t va)
{
	uint64_t err, v = agent_do(g, OP_LOAD, va, 0, &err);

	if (err)
		fail_msg("load of %#llx: trap, mcause %llu", (unsigned long long)va,
			 (unsigned long long)(err - 1));
	return v;
}

static void agent_store(struct gt *g, uint64_t va, uint64_t val)
{
	agent_op(g, OP_STORE, va, val);
}

static void agent_satp(struct gt *g, const struct as *a)
{
	agent_op(g, OP_SATP, as_satp(a), 0);
}

/* The hart's statistics as of its last park. */
static struct rv_hart_stats agent_stats(struct gt *g)
{
	struct rv_hart_stats st;

	pthread_mutex_lock(&g->ag.m);
	st = g->ag.st;
	pthread_mutex_unlock(&g->ag.m);
	return st;
}

static struct kvm_stats vm_stats(struct gt *g)
{
	struct kvm_stats st;

	kvm_get_stats(g->kvm, &st);
	return st;
}

/* The tables of both address spaces (root[1] -> L1, L1[0] -> L0, no
 * leaves), the data pages' first words, the agent parked. */
static struct gt *gt_create(enum kvm_gva_mode mode, unsigned int breaks)
{
	struct gt *g = calloc(1, sizeof(*g));
	uint32_t code[256];
	unsigned int n;

	assert_non_null(g);
	sync_init(&g->ag.m, &g->ag.c);
	struct rt_config c = { .kvm = { .gva = mode, .breaks = breaks }, .ram_size = RAM_SIZE,
			       .ecall = agent_ecall, .ecall_arg = &g->ag };

	g->t = rt_create_cfg(&c);
	g->kvm = vmm_kvm(g->t->vmm);
	n = agent_assemble(code);
	assert_true(n <= ARRAY_SIZE(code) && n * 4 <= PT_A);
	rt_load(g->t, 0, code, n);
	for (int i = 0; i < 2; i++) {
		const struct as *a = i ? &AS_B : &AS_A;

		rt_write(g->t, a->root + 8, rt_pte(a->l1, RV_PTE_V));
		rt_write(g->t, a->l1, rt_pte(a->l0, RV_PTE_V));
	}
	for (int i = 0; i < NR_DATA; i++)
		rt_write(g->t, DATA(i), DATA_VAL(i));
	rt_start(g->t, 1);
	pthread_mutex_lock(&g->ag.m);
	bool ok = agent_wait_parked_locked(&g->ag);

	pthread_mutex_unlock(&g->ag.m);
	if (!ok)
		fail_msg("the agent never parked in its first ecall");
	return g;
}

static void gt_destroy(struct gt *g)
{
	pthread_mutex_lock(&g->ag.m);
	g->ag.quit = true;
	pthread_cond_broadcast(&g->ag.c);
	pthread_mutex_unlock(&g->ag.m);
	rt_destroy(g->t);
	sync_destroy(&g->ag.m, &g->ag.c);
	free(g);
}

/* Address space a maps VA(page) to data page i with flags. */
static void map(struct gt *g, const struct as *a, unsigned int page, unsigned int i,
		uint64_t flags)
{
	rt_write(g->t, a->l0 + page * 8, rt_pte(DATA(i), flags));
}

/* The GVA leaf address space a has for VA(page) now (0: none). */
static uint64_t probe(struct gt *g, const struct as *a, unsigned int page)
{
	return kvm_gva_probe(g->kvm, as_satp(a), VA(page));
}

/* The leaf for VA(page) maps data page i. */
static void assert_leaf_maps(struct gt *g, const struct as *a, unsigned int page, unsigned int i)
{
	uint64_t e = probe(g, a, page);

	if (!(e & GVA_VALID) || gva_leaf_gfn(e) != gfn_of(DATA(i)))
		fail_msg("ASID %u VA(%u): leaf %#llx, want one mapping data page %u",
			 a->asid, page, (unsigned long long)e, i);
}

/* ---- sfence.vma ------------------------------------------------------- */

/* A fence by address takes that page's entry and no other; after it the
 * guest sees the PTE it rewrote before the fence. */
static void test_sfence_by_address(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	struct kvm_stats k0;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_A, 1, 1, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_int_equal(agent_load(g, VA(1)), DATA_VAL(1));
	assert_leaf_maps(g, &AS_A, 0, 0);
	assert_leaf_maps(g, &AS_A, 1, 1);
	k0 = vm_stats(g);

	agent_op(g, OP_SFENCE_VA, VA(0), 0);
	assert_int_equal(probe(g, &AS_A, 0), 0);
	assert_leaf_maps(g, &AS_A, 1, 1);            /* another address: kept */
	assert_true(vm_stats(g).gva_sfence_zaps > k0.gva_sfence_zaps);

	/* The guest's own protocol: rewrite, fence, use. */
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	map(g, &AS_A, 0, 2, RW_PAGE);
	agent_op(g, OP_SFENCE_VA, VA(0), 0);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(2));
	assert_leaf_maps(g, &AS_A, 0, 2);
	gt_destroy(g);
}

/* Fences of one ASID (with and without an address) take that ASID's
 * entries and keep another's; a fence of everything takes both. */
static void test_sfence_by_asid(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	struct kvm_stats k0;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_B, 0, 1, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	agent_satp(g, &AS_B);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(1));
	assert_leaf_maps(g, &AS_A, 0, 0);
	assert_leaf_maps(g, &AS_B, 0, 1);

	agent_op(g, OP_SFENCE_VA_ASID, VA(0), AS_A.asid);
	assert_int_equal(probe(g, &AS_A, 0), 0);
	assert_leaf_maps(g, &AS_B, 0, 1);

	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_leaf_maps(g, &AS_A, 0, 0);
	k0 = vm_stats(g);
	agent_op(g, OP_SFENCE_ASID, 0, AS_A.asid);
	assert_int_equal(probe(g, &AS_A, 0), 0);
	assert_leaf_maps(g, &AS_B, 0, 1);
	assert_int_equal(vm_stats(g).gva_root_flushes, k0.gva_root_flushes + 1);

	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_leaf_maps(g, &AS_A, 0, 0);
	agent_op(g, OP_SFENCE_ALL, 0, 0);
	assert_int_equal(probe(g, &AS_A, 0), 0);
	assert_int_equal(probe(g, &AS_B, 0), 0);
	gt_destroy(g);
}

/* A global mapping lives in the global root: every address space finds it,
 * a fence of an ASID (ASID 0 too, the global root's own) leaves it, a fence
 * of its address takes it. */
static void test_sfence_global_entry(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	struct as a0 = AS_A;
	uint64_t e;

	a0.asid = 0;
	map(g, &a0, 0, 0, RW_PAGE);
	map(g, &a0, 3, 3, RW_PAGE | RV_PTE_G);
	agent_satp(g, &a0);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_int_equal(agent_load(g, VA(3)), DATA_VAL(3));
	assert_leaf_maps(g, &a0, 0, 0);
	e = probe(g, &a0, 3);
	assert_true(e & GVA_G);
	assert_int_equal(gva_leaf_gfn(e), gfn_of(DATA(3)));
	/* B never ran: it sees the global root's entry, not its own. */
	assert_int_equal(probe(g, &AS_B, 3), e);
	assert_int_equal(probe(g, &AS_B, 0), 0);

	agent_op(g, OP_SFENCE_ASID, 0, 0);
	assert_int_equal(probe(g, &a0, 0), 0);
	assert_int_equal(probe(g, &a0, 3), e);
	agent_op(g, OP_SFENCE_ASID, 0, AS_B.asid);
	assert_int_equal(probe(g, &a0, 3), e);

	agent_op(g, OP_SFENCE_VA, VA(3), 0);
	assert_int_equal(probe(g, &a0, 3), 0);
	assert_int_equal(probe(g, &AS_B, 3), 0);
	gt_destroy(g);
}

/* ---- ASID switch ------------------------------------------------------ */

/* Two address spaces map VA(0) to different pages; switching satp back
 * and forth keeps both entries, and each return refills from the GVA table
 * (the switch emptied the soft TLB) without a walk. */
static void test_asid_switch_keeps_both(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	struct rv_hart_stats s0, s1;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_B, 0, 1, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	agent_satp(g, &AS_B);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(1));
	for (int round = 0; round < 2; round++) {
		const struct as *a = round ? &AS_B : &AS_A;

		agent_satp(g, a);
		s0 = agent_stats(g);
		assert_int_equal(agent_load(g, VA(0)), DATA_VAL(round));
		s1 = agent_stats(g);
		assert_int_equal(s1.gva_refills, s0.gva_refills + 1);
		assert_int_equal(s1.ptw_walks, s0.ptw_walks);
		assert_int_equal(s1.gva_installs, s0.gva_installs);
		assert_leaf_maps(g, &AS_A, 0, 0);
		assert_leaf_maps(g, &AS_B, 0, 1);
	}
	assert_int_equal(vm_stats(g).gva_rekeys, 0);
	gt_destroy(g);
}

/* ---- guest PTE writes, host invalidations ----------------------------- */

/*
 * The guest rewrites a PTE and does not fence: the old translation may
 * stay (it does, in the soft TLB and in the GVA table), but once the host
 * drops the old page no entry maps it, and the guest reads either the old
 * gfn's new (zero) page or the new mapping -- never the freed frame.
 */
static void test_pte_rewrite_without_fence(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	struct rv_hart_stats s0, s1;
	uint64_t v;

	map(g, &AS_A, 0, 0, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	map(g, &AS_A, 0, 1, RW_PAGE);                /* no fence */
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_leaf_maps(g, &AS_A, 0, 0);
	/* Through the GVA table too: a satp round trip empties the soft TLB. */
	agent_satp(g, &AS_B);
	agent_satp(g, &AS_A);
	s0 = agent_stats(g);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	s1 = agent_stats(g);
	assert_int_equal(s1.gva_refills, s0.gva_refills + 1);

	rt_dontneed(g->t, DATA(0));
	assert_int_equal(probe(g, &AS_A, 0), 0);
	v = agent_load(g, VA(0));
	if (v == DATA_VAL(1))
		assert_leaf_maps(g, &AS_A, 0, 1);
	else if (v == 0)
		assert_leaf_maps(g, &AS_A, 0, 0);
	else
		fail_msg("the guest read %#llx: neither page 0's new content nor page 1's",
			 (unsigned long long)v);
	gt_destroy(g);
}

/*
 * An install whose walk began before a fence of its root is dropped: the
 * hart's walk of VA(1) reads the PTE, then its fault on the data page is
 * paused (VCPU_HOOK_AFTER_GUP) while the PTE is rewritten and fenced, as
 * another hart would. The walk's translation may serve the access in
 * flight, but must not stay in the GVA table after the fence.
 */
struct race {
	struct gt *g;
	bool armed;
	int fired;
};

static void race_hook(struct kvm_vcpu *v, enum vcpu_hook_point at, void *arg)
{
	struct race *r = arg;

	(void)v;
	if (at != VCPU_HOOK_AFTER_GUP || !r->armed)
		return;
	r->armed = false;
	r->fired++;
	map(r->g, &AS_A, 1, 2, RW_PAGE);
	kvm_gva_sfence(r->g->kvm, true, VA(1), false, 0);
}

static void test_install_raced_by_fence(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	struct kvm_vcpu *kv = &rv_hart_vcpu(g->t->harts[0])->kvm_vcpu;
	struct race r = { .g = g };
	struct kvm_stats k0, k1;
	uint64_t v, e;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_A, 1, 1, RW_PAGE);
	agent_satp(g, &AS_A);
	/* The page tables' sptes in place: VA(1)'s walk takes no fault, its
	 * data page (never touched by the hart) does. */
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	k0 = vm_stats(g);
	r.armed = true;
	kvm_vcpu_set_hook(kv, race_hook, &r);
	v = agent_load(g, VA(1));
	kvm_vcpu_set_hook(kv, NULL, NULL);
	assert_int_equal(r.fired, 1);
	k1 = vm_stats(g);
	/* In flight, the old translation or the new one. */
	assert_true(v == DATA_VAL(1) || v == DATA_VAL(2));
	e = probe(g, &AS_A, 1);
	if (e)
		assert_leaf_maps(g, &AS_A, 1, 2);
	assert_true(k1.gva_install_raced > k0.gva_install_raced);
	/* And the next access walks the rewritten PTE. */
	agent_satp(g, &AS_B);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(1)), DATA_VAL(2));
	assert_leaf_maps(g, &AS_A, 1, 2);
	gt_destroy(g);
}

/*
 * A second subscriber on the VM's mm, registered after the VM's, watching
 * one host page: at each of its callbacks for a range covering that page
 * it records whether the VM's invalidation is in progress (its start has
 * returned and its end has not run: the subscribers' order does not
 * matter) and the GVA leaves of some pages.
 */
#define OBS_MAX_PAGES 4
#define OBS_MAX       4

struct observer {
	struct mmu_notifier mn;         /* first: the callbacks cast back */
	struct gt *g;
	hva_t watch;
	const struct as *as;
	unsigned int nr_pages;          /* VA(0 .. nr_pages) probed */
	int nr;
	struct { long in_progress; uint64_t leaf[OBS_MAX_PAGES]; } obs[OBS_MAX];
};

static void observe(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct observer *o = (struct observer *)mn;

	if (o->watch < r->start || o->watch >= r->end || o->nr == OBS_MAX)
		return;
	o->obs[o->nr].in_progress = atomic_load(&o->g->kvm->mmu_invalidate_in_progress);
	for (unsigned int i = 0; i < o->nr_pages; i++)
		o->obs[o->nr].leaf[i] = probe(o->g, o->as, i);
	o->nr++;
}

static int observe_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	observe(mn, r);
	return 0;
}

static const struct mmu_notifier_ops observer_ops = {
	.invalidate_range_start = observe_start,
	.invalidate_range_end = observe,
};

static void observer_register(struct observer *o, struct gt *g, uint64_t watch_off,
			      const struct as *a, unsigned int nr_pages)
{
	memset(o, 0, sizeof(*o));
	o->mn.ops = &observer_ops;
	o->g = g;
	o->watch = g->t->ram + watch_off;
	o->as = a;
	o->nr_pages = nr_pages;
	assert_int_equal(mmu_notifier_register(&o->mn, vmm_mm(g->t->vmm)), 0);
}

/* The observations made inside the VM's invalidation: at least one, and
 * in each, the leaf of page i zero iff gone[i]. Unregisters. */
static void observer_check(struct observer *o, const bool *gone)
{
	int inside = 0;

	assert_int_equal(mmu_notifier_unregister(&o->mn, vmm_mm(o->g->t->vmm)), 0);
	for (int k = 0; k < o->nr; k++) {
		if (o->obs[k].in_progress <= 0)
			continue;
		inside++;
		for (unsigned int i = 0; i < o->nr_pages; i++)
			if (gone[i] ? o->obs[k].leaf[i] != 0 : o->obs[k].leaf[i] == 0)
				fail_msg("inside the invalidation, VA(%u)'s leaf is %#llx: "
					 "want %s", i, (unsigned long long)o->obs[k].leaf[i],
					 gone[i] ? "none" : "one");
	}
	if (!inside)
		fail_msg("no callback of the observer ran between the VM's start and end "
			 "(%d observations)", o->nr);
}

/* The host drops a data page: its entry is gone before the VM's
 * invalidate_range_start returns; another page's entry stays (targeted). */
static void test_host_zap_of_data_page(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	const bool gone[] = { true, false };
	struct observer o;
	struct kvm_stats k0;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_A, 1, 1, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_int_equal(agent_load(g, VA(1)), DATA_VAL(1));
	assert_leaf_maps(g, &AS_A, 0, 0);
	k0 = vm_stats(g);
	observer_register(&o, g, DATA(0), &AS_A, 2);
	rt_dontneed(g->t, DATA(0));
	observer_check(&o, gone);
	assert_int_equal(probe(g, &AS_A, 0), 0);
	assert_leaf_maps(g, &AS_A, 1, 1);
	assert_true(vm_stats(g).gva_zapped_leaves > k0.gva_zapped_leaves);
	assert_int_equal(agent_load(g, VA(0)), 0);   /* the new, zero page */
	gt_destroy(g);
}

/* The host drops the guest's last-level page-table page: every entry whose
 * walk read it is gone before the VM's start returns (the node mirroring
 * it is reset), and the guest's next walk reads the new, empty table. */
static void test_host_zap_of_page_table_page(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	const bool gone[OBS_MAX_PAGES] = { true, true, true, true };
	struct observer o;
	struct kvm_stats k0;
	uint64_t err;

	agent_satp(g, &AS_A);
	for (unsigned int i = 0; i < OBS_MAX_PAGES; i++) {
		map(g, &AS_A, i, i, RW_PAGE);
		assert_int_equal(agent_load(g, VA(i)), DATA_VAL(i));
		assert_leaf_maps(g, &AS_A, i, i);
	}
	k0 = vm_stats(g);
	observer_register(&o, g, AS_A.l0, &AS_A, OBS_MAX_PAGES);
	rt_dontneed(g->t, AS_A.l0);
	observer_check(&o, gone);
	for (unsigned int i = 0; i < OBS_MAX_PAGES; i++)
		assert_int_equal(probe(g, &AS_A, i), 0);
	assert_true(vm_stats(g).gva_zapped_nodes > k0.gva_zapped_nodes);
	agent_do(g, OP_LOAD, VA(2), 0, &err);
	assert_int_equal(err, 1 + EXC_LOAD_PAGE);
	gt_destroy(g);
}

/* ---- the dirty bit ----------------------------------------------------- */

/*
 * An entry allows writes only if the guest PTE had D and the spte was
 * dirty when it was built, so the first write through a clean PTE walks
 * and sets D before it lands:
 *   - a PTE with W and D read first: the spte is clean (read fault), the
 *     entry has no W; the write after it makes the spte dirty, the new
 *     entry has W;
 *   - a PTE with W, no D, to a page whose spte is writable (written
 *     through an alias with D): the entry still has no W and D stays
 *     clear; the write sets D, lands, and the entry gets W.
 */
static void test_dirty_bit_before_first_write(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	const uint64_t clean = RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A;
	uint64_t e;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_A, 1, 1, RW_PAGE);                /* the alias of page 1 */
	map(g, &AS_A, 2, 1, clean);
	agent_satp(g, &AS_A);

	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	e = probe(g, &AS_A, 0);
	assert_true((e & GVA_VALID) && (e & GVA_R));
	assert_false(e & GVA_W);                     /* the spte is clean */
	agent_store(g, VA(0), 0x5eed);
	assert_true(probe(g, &AS_A, 0) & GVA_W);
	assert_int_equal(rt_read(g->t, DATA(0)), 0x5eed);

	agent_store(g, VA(1), 0xa11a5);               /* the spte of page 1 is dirty */
	assert_true(probe(g, &AS_A, 1) & GVA_W);
	assert_int_equal(agent_load(g, VA(2)), 0xa11a5);
	e = probe(g, &AS_A, 2);
	assert_true((e & GVA_VALID) && gva_leaf_gfn(e) == gfn_of(DATA(1)));
	assert_false(e & GVA_W);                     /* the PTE is clean */
	assert_int_equal(rt_read(g->t, AS_A.l0 + 2 * 8), rt_pte(DATA(1), clean));
	agent_store(g, VA(2), 0xd1d);
	assert_int_equal(rt_read(g->t, AS_A.l0 + 2 * 8), rt_pte(DATA(1), clean | RV_PTE_D));
	assert_int_equal(rt_read(g->t, DATA(1)), 0xd1d);
	assert_true(probe(g, &AS_A, 2) & GVA_W);
	gt_destroy(g);
}

/* ---- aging ------------------------------------------------------------- */

/*
 * A page the guest uses only through GVA refills is young: the refill
 * sets the leaf's A and the aging handlers look at it (the spte's own
 * accessed bit stays clear: no walk touches the spte). The host's idle
 * tracking (clear_flush_young) clears both and flushes the soft TLB, so
 * the next access misses it and refills from the GVA table.
 */
static void test_aging_sees_gva_refills(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	struct mm *mm = vmm_mm(g->t->vmm);
	hva_t hva = g->t->ram + DATA(0);
	struct rv_hart_stats s0, s1;
	uint64_t idle, mapped;

	map(g, &AS_A, 0, 0, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_leaf_maps(g, &AS_A, 0, 0);

	assert_int_equal(mm_idle_mark_range(mm, hva, hva + PAGE_SIZE), 1);
	/* No access since: not young. */
	assert_int_equal(mmu_notifier_test_young(mm, hva), 0);
	assert_int_equal(mm_idle_count_range(mm, hva, hva + PAGE_SIZE, &idle, &mapped), 0);
	assert_int_equal(mapped, 1);
	assert_int_equal(idle, 1);

	s0 = agent_stats(g);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	s1 = agent_stats(g);
	assert_int_equal(s1.gva_refills, s0.gva_refills + 1);
	assert_int_equal(s1.ptw_walks, s0.ptw_walks);
	assert_int_equal(mmu_notifier_test_young(mm, hva), 1);
	assert_int_equal(mm_idle_count_range(mm, hva, hva + PAGE_SIZE, &idle, &mapped), 0);
	assert_int_equal(mapped, 1);
	assert_int_equal(idle, 0);
	gt_destroy(g);
}

/* ---- modes and breaks -------------------------------------------------- */

/* KVM_GVA_OFF: no entry is built; every soft-TLB miss walks. */
static void test_gva_off_builds_nothing(void **state)
{
	struct gt *g = gt_create(KVM_GVA_OFF, 0);
	struct rv_hart_stats st;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_B, 0, 1, RW_PAGE);
	for (int round = 0; round < 3; round++) {
		agent_satp(g, round % 2 ? &AS_B : &AS_A);
		assert_int_equal(agent_load(g, VA(0)), DATA_VAL(round % 2));
	}
	assert_int_equal(probe(g, &AS_A, 0), 0);
	assert_int_equal(probe(g, &AS_B, 0), 0);
	st = agent_stats(g);
	assert_int_equal(st.gva_refills, 0);
	assert_int_equal(st.gva_installs, 0);
	assert_int_equal(st.ptw_walks, 3);
	assert_int_equal(vm_stats(g).gva_installs, 0);
	gt_destroy(g);
}

/* KVM_GVA_FLUSH_ALL: a host zap of a page no entry was built on empties
 * every root, the global ones too. */
static void test_flush_all_mode_empties_every_root(void **state)
{
	struct gt *g = gt_create(KVM_GVA_FLUSH_ALL, 0);
	struct kvm_stats k0;
	uint64_t err;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_A, 3, 3, RW_PAGE | RV_PTE_G);
	map(g, &AS_B, 0, 1, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_int_equal(agent_load(g, VA(3)), DATA_VAL(3));
	agent_satp(g, &AS_B);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(1));
	/* An unrelated page, mapped in the GPA tables by a physical load. */
	assert_int_equal(agent_do(g, OP_LOADP, RT_RAM_BASE + DATA(9), 0, &err), DATA_VAL(9));
	assert_int_equal(err, 0);
	assert_leaf_maps(g, &AS_A, 0, 0);
	assert_leaf_maps(g, &AS_A, 3, 3);
	assert_leaf_maps(g, &AS_B, 0, 1);
	k0 = vm_stats(g);
	rt_dontneed(g->t, DATA(9));
	assert_int_equal(probe(g, &AS_A, 0), 0);
	assert_int_equal(probe(g, &AS_A, 3), 0);
	assert_int_equal(probe(g, &AS_B, 0), 0);
	assert_true(vm_stats(g).gva_flush_all > k0.gva_flush_all);
	gt_destroy(g);
}

/* The host frame gfn's spte maps (the arena address an install checks). */
static void *frame_of(struct gt *g, gfn_t gfn)
{
	_Atomic spte_t *sptep = kvm_tdp_mmu_leaf(g->kvm, gfn);
	spte_t spte = sptep ? atomic_load(sptep) : 0;

	assert_true(is_shadow_present(spte));
	return g->kvm->arena + (spte_to_pfn(spte) << PAGE_SHIFT);
}

static struct gva_root *root_of(struct gt *g, const struct as *a)
{
	for (unsigned int i = 0; i < g->kvm->gva.nr_roots; i++)
		if (atomic_load(&g->kvm->gva.roots[i]->key) == as_satp(a))
			return g->kvm->gva.roots[i];
	fail_msg("no root for ASID %u", a->asid);
	return NULL;
}

/*
 * An install that gives up below a node it just made (the guest table
 * that node mirrors is no longer what the walk read: its spte went) leaves
 * that node linked, not valid: the next install there reuses it rather
 * than making another, and a reset of the node above, when the guest
 * points its root at another table, follows the link (a used entry that
 * named no child crashed that reset).
 */
static void test_install_skipped_below_new_node(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, 0);
	const uint64_t va = VA_BASE + (1ULL << 21);     /* VPN1 1: no L1 node yet */
	struct gva_root *root;
	struct gva_walk w;
	long nodes;

	map(g, &AS_A, 0, 0, RW_PAGE);
	map(g, &AS_B, 0, 3, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	assert_leaf_maps(g, &AS_A, 0, 0);
	root = root_of(g, &AS_A);
	/* What a walk of va through AS_A would read if A's L1 entry 1 named
	 * a last-level table at DATA(15), a page the hart never touched (no
	 * spte): the install checks that table last, after making its node. */
	w = (struct gva_walk){
		.key = as_satp(&AS_A), .levels = 3, .leaf_level = 0,
		.pt_gfn = { gfn_of(DATA(15)), gfn_of(AS_A.l1), gfn_of(AS_A.root) },
		.pt_host = { g->kvm->arena, frame_of(g, gfn_of(AS_A.l1)),
			     frame_of(g, gfn_of(AS_A.root)) },
		.gfn = gfn_of(DATA(0)), .host = frame_of(g, gfn_of(DATA(0))),
		.perms = GVA_R,
	};
	nodes = atomic_load(&g->kvm->gva.nr_nodes);
	assert_int_equal(kvm_gva_install(g->kvm, root, kvm_gva_begin(&g->kvm->gva, root),
					 va, &w), -EAGAIN);
	assert_int_equal(atomic_load(&g->kvm->gva.nr_nodes), nodes + 1);
	assert_int_equal(kvm_gva_probe(g->kvm, as_satp(&AS_A), va), 0);
	/* Again: the node made the first time serves. */
	assert_int_equal(kvm_gva_install(g->kvm, root, kvm_gva_begin(&g->kvm->gva, root),
					 va, &w), -EAGAIN);
	assert_int_equal(atomic_load(&g->kvm->gva.nr_nodes), nodes + 1);

	/* A's root entry 1 now names B's L1: the L2 node over A's L1 is
	 * reset, both its entries followed. */
	rt_write(g->t, AS_A.root + 8, rt_pte(AS_B.l1, RV_PTE_V));
	agent_op(g, OP_SFENCE_VA, VA(0), 0);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(3));
	assert_leaf_maps(g, &AS_A, 0, 3);
	gt_destroy(g);
}

/* --break gva-sfence: an address fence leaves the entry, so the guest goes
 * on reading the page its PTE no longer maps. --break gva-zap: a host zap
 * leaves the entry on the frame the host took back. */
static void test_breaks_fail_their_way(void **state)
{
	struct gt *g = gt_create(KVM_GVA_TARGETED, KVM_BREAK_GVA_SFENCE);

	map(g, &AS_A, 0, 0, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	map(g, &AS_A, 0, 1, RW_PAGE);
	agent_op(g, OP_SFENCE_VA, VA(0), 0);
	assert_leaf_maps(g, &AS_A, 0, 0);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));    /* stale */
	gt_destroy(g);

	g = gt_create(KVM_GVA_TARGETED, KVM_BREAK_GVA_ZAP);
	map(g, &AS_A, 0, 0, RW_PAGE);
	agent_satp(g, &AS_A);
	assert_int_equal(agent_load(g, VA(0)), DATA_VAL(0));
	uint64_t e = probe(g, &AS_A, 0);

	rt_dontneed(g->t, DATA(0));
	assert_int_equal(probe(g, &AS_A, 0), e);    /* on a freed frame */
	gt_destroy(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sfence_by_address),
		cmocka_unit_test(test_sfence_by_asid),
		cmocka_unit_test(test_sfence_global_entry),
		cmocka_unit_test(test_asid_switch_keeps_both),
		cmocka_unit_test(test_pte_rewrite_without_fence),
		cmocka_unit_test(test_install_raced_by_fence),
		cmocka_unit_test(test_install_skipped_below_new_node),
		cmocka_unit_test(test_host_zap_of_data_page),
		cmocka_unit_test(test_host_zap_of_page_table_page),
		cmocka_unit_test(test_dirty_bit_before_first_write),
		cmocka_unit_test(test_aging_sees_gva_refills),
		cmocka_unit_test(test_gva_off_builds_nothing),
		cmocka_unit_test(test_flush_all_mode_empties_every_root),
		cmocka_unit_test(test_breaks_fail_their_way),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
