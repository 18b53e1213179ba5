/* SPDX-License-Identifier: MIT */
/*
 * test_riscv.c - the RISC-V hart's part of the coherence protocol, with
 * tiny programs assembled here (no cross toolchain needed):
 *
 *   - decoded code is checked against guest memory after a host
 *     invalidation: a code page the host drops (DONTNEED) is not run from
 *     its old decoded copy;
 *   - a TLB flush request empties the hart's soft TLB: a data page the host
 *     drops is read as the new (zero) page, not through the old frame;
 *   - an invalidation completes while a hart spins in a tight loop (the
 *     interpreter answers requests at taken branches) and while it sleeps
 *     in WFI (outside guest mode);
 *   - an interrupt line wakes WFI and the interrupt is taken; a stop wakes
 *     WFI too (no hang);
 *   - AMOs and LR/SC on two harts are atomic on host memory;
 *   - fence.i makes a hart run code it wrote itself;
 *   - a reset restarts a stopped hart from its boot registers and CSR reset
 *     values, running code rewritten meanwhile.
 *
 * The ISA itself is tested by the guest programs under guests/rv-tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "harness/rv_asm.h"
#include "harness/rv_fixture.h"
#include "base/compiler.h"

/* Data at 0x2000 (s1), a function at 0x1000, the trap handler at 0x100. */
#define DATA 0x2000
#define FUNC 0x1000
#define TRAP 0x100

/* Every program starts: s0 = RAM, s1 = DATA, mtvec = TRAP handler that
 * stores 0x7ad and mcause at DATA+16/+24 and spins. Returns its length. */
static unsigned int prologue(uint32_t *p)
{
	unsigned int n = 0;

	n += emit_base(p + n, S0, 0);
	n += emit_base(p + n, S1, DATA);
	p[n++] = addi(T0, S0, TRAP);
	p[n++] = csrrw(ZERO, CSR_MTVEC, T0);
	return n;
}

static void load_trap_handler(struct rt *t)
{
	uint32_t h[] = {
		addi(T3, ZERO, 0x7ad),
		sd(T3, S1, 16),
		csrrs(T4, CSR_MCAUSE, ZERO),
		sd(T4, S1, 24),
		jal(ZERO, 0),
	};

	rt_load(t, TRAP, h, ARRAY_SIZE(h));
}

/* A function at FUNC returning 1 in a0; the host drops its page; the hart
 * must not go on running the decoded copy (the new page is zeroes: an
 * illegal instruction). */
static void test_code_dropped_by_host_is_not_run(void **state)
{
	struct rt *t = rt_create();
	uint32_t p[64], f[] = { addi(A0, ZERO, 1), jalr(ZERO, RA, 0) };
	unsigned int n = prologue(p);

	n += emit_base(p + n, S2, FUNC);
	p[n++] = jalr(RA, S2, 0);
	p[n++] = sd(A0, S1, 0);
	p[n++] = addi(T2, T2, 1);
	p[n++] = sd(T2, S1, 8);
	p[n++] = jal(ZERO, -16);
	rt_load(t, 0, p, n);
	rt_load(t, FUNC, f, ARRAY_SIZE(f));
	load_trap_handler(t);
	rt_start(t, 1);
	rt_wait(t, DATA + 8, v > 1000);
	assert_int_equal(rt_read(t, DATA), 1);
	rt_dontneed(t, FUNC);
	rt_wait(t, DATA + 16, v == 0x7ad);
	assert_int_equal(rt_read(t, DATA + 24), 2);    /* illegal instruction */
	rt_destroy(t);
}

/* The hart copies a word of a data page in a loop; the host drops the
 * page: the copy must become the new page's zero, not the old frame's. */
static void test_data_dropped_by_host_reads_new_page(void **state)
{
	struct rt *t = rt_create();
	uint32_t p[64];
	unsigned int n = prologue(p);

	n += emit_base(p + n, S2, 0x3000);
	p[n++] = ld(T0, S2, 0);
	p[n++] = sd(T0, S1, 0);
	p[n++] = addi(T2, T2, 1);
	p[n++] = sd(T2, S1, 8);
	p[n++] = jal(ZERO, -16);
	rt_load(t, 0, p, n);
	load_trap_handler(t);
	rt_write(t, 0x3000, 42);
	rt_start(t, 1);
	rt_wait(t, DATA + 8, v > 1000);
	assert_int_equal(rt_read(t, DATA), 42);
	rt_dontneed(t, 0x3000);
	rt_wait(t, DATA, v == 0);
	assert_int_equal(rt_read(t, DATA + 16), 0);    /* no trap */
	rt_destroy(t);
}

/* A hart spinning on one instruction (no memory access) in the page the
 * host drops: the invalidation waits for it to leave guest mode, which it
 * does at its next taken branch; then it runs the new page (zeroes). */
static void test_invalidation_ends_while_hart_spins(void **state)
{
	struct rt *t = rt_create();
	uint32_t p[64], spin[] = { addi(T2, ZERO, 1), sd(T2, S1, 8), jal(ZERO, 0) };
	unsigned int n = prologue(p);

	n += emit_base(p + n, S2, FUNC);
	p[n++] = jalr(ZERO, S2, 0);
	rt_load(t, 0, p, n);
	rt_load(t, FUNC, spin, ARRAY_SIZE(spin));
	load_trap_handler(t);
	rt_start(t, 1);
	rt_wait(t, DATA + 8, v == 1);
	rt_dontneed(t, FUNC);
	rt_wait(t, DATA + 16, v == 0x7ad);
	rt_destroy(t);
}

/* WFI with nothing enabled sleeps (few instructions retired) until an
 * interrupt line is raised; the interrupt is then taken. */
static void test_wfi_sleeps_until_interrupt(void **state)
{
	struct rt *t = rt_create();
	struct rv_hart_stats st;
	uint32_t p[64];
	unsigned int n = prologue(p);

	p[n++] = addi(T0, ZERO, 8);
	p[n++] = csrrw(ZERO, CSR_MIE, T0);              /* MSIE */
	p[n++] = csrrs(ZERO, CSR_MSTATUS, T0);          /* MIE */
	p[n++] = addi(T2, ZERO, 1);
	p[n++] = sd(T2, S1, 8);
	p[n++] = WFI;
	p[n++] = jal(ZERO, -4);
	rt_load(t, 0, p, n);
	load_trap_handler(t);
	rt_start(t, 1);
	rt_wait(t, DATA + 8, v == 1);
	sleep_ms(50);
	/* Still asleep: no interrupt taken. */
	assert_int_equal(rt_read(t, DATA + 16), 0);
	rv_hart_set_irq(t->harts[0], RV_IRQ_MSI, true);
	rt_wait(t, DATA + 16, v == 0x7ad);
	assert_int_equal(rt_read(t, DATA + 24), (1ULL << 63) | RV_IRQ_MSI);
	rv_hart_set_irq(t->harts[0], RV_IRQ_MSI, false);
	assert_int_equal(vcpu_stop(rv_hart_vcpu(t->harts[0])), 0);
	rv_hart_get_stats(t->harts[0], &st);
	assert_true(st.wfi_sleeps >= 1);
	assert_true(st.interrupts == 1);
	t->stopped[0] = true;
	rt_destroy(t);
}

/* A stop request wakes a hart in WFI with no timer armed (it would sleep
 * for ever otherwise). */
struct stopper { struct vcpu *v; atomic_bool done; int ret; };
static void *stop_thread(void *arg)
{
	struct stopper *s = arg;

	s->ret = vcpu_stop(s->v);
	atomic_store(&s->done, true);
	return NULL;
}
static void test_stop_wakes_wfi(void **state)
{
	struct rt *t = rt_create();
	struct stopper st = { 0 };
	uint32_t p[64];
	unsigned int n = prologue(p);
	uint64_t end;
	pthread_t th;

	p[n++] = addi(T2, ZERO, 1);
	p[n++] = sd(T2, S1, 8);
	p[n++] = WFI;
	p[n++] = jal(ZERO, -4);
	rt_load(t, 0, p, n);
	load_trap_handler(t);
	rt_start(t, 1);
	rt_wait(t, DATA + 8, v == 1);
	sleep_ms(20);
	st.v = rv_hart_vcpu(t->harts[0]);
	assert_int_equal(pthread_create(&th, NULL, stop_thread, &st), 0);
	end = ms_now() + RT_WAIT_MS;
	while (!atomic_load(&st.done)) {
		if (ms_now() > end)
			fail_msg("vcpu_stop did not wake the hart sleeping in WFI");
		sleep_ms(1);
	}
	pthread_join(th, NULL);
	assert_int_equal(st.ret, 0);
	t->stopped[0] = true;
	rt_destroy(t);
}

/* Two harts: amoadd on one word, LR/SC increments on another; both
 * totals exact. */
static void test_amo_and_lrsc_between_harts(void **state)
{
	struct rt *t = rt_create();
	uint32_t p[64];
	unsigned int n = prologue(p);

	p[n++] = addi(T1, ZERO, 1);
	p[n++] = addi(T2, ZERO, 2000);
	p[n++] = slli(T2, T2, 3);                       /* 16000 iterations */
	p[n++] = addi(S3, S1, 8);
	/* loop: */
	p[n++] = amoadd_d(ZERO, S1, T1);
	p[n++] = lr_d(T3, S3);                      /* retry: */
	p[n++] = addi(T3, T3, 1);
	p[n++] = sc_d(T4, S3, T3);
	p[n++] = bne(T4, ZERO, -12);
	p[n++] = addi(T2, T2, -1);
	p[n++] = bne(T2, ZERO, -24);
	p[n++] = addi(S4, S1, 32);
	p[n++] = amoadd_d(ZERO, S4, T1);
	p[n++] = jal(ZERO, 0);
	rt_load(t, 0, p, n);
	load_trap_handler(t);
	rt_start(t, 2);
	rt_wait(t, DATA + 32, v == 2);
	assert_int_equal(rt_read(t, DATA), 32000);
	assert_int_equal(rt_read(t, DATA + 8), 32000);
	assert_int_equal(rt_read(t, DATA + 16), 0);
	rt_destroy(t);
}

/* A hart rewrites an instruction of a function it has run, executes
 * fence.i, and runs the new instruction. */
static void test_fence_i_runs_rewritten_code(void **state)
{
	struct rt *t = rt_create();
	uint32_t p[64], f[] = { addi(A0, ZERO, 1), jalr(ZERO, RA, 0) };
	uint64_t patch = addi(A0, ZERO, 2);
	unsigned int n = prologue(p);

	n += emit_base(p + n, S2, FUNC);
	p[n++] = jalr(RA, S2, 0);
	p[n++] = sd(A0, S1, 0);
	p[n++] = ld(T0, S1, 40);
	p[n++] = sw(T0, S2, 0);
	p[n++] = FENCE_I;
	p[n++] = jalr(RA, S2, 0);
	p[n++] = sd(A0, S1, 8);
	p[n++] = jal(ZERO, 0);
	rt_load(t, 0, p, n);
	rt_load(t, FUNC, f, ARRAY_SIZE(f));
	load_trap_handler(t);
	rt_write(t, DATA + 40, patch);
	rt_start(t, 1);
	rt_wait(t, DATA + 8, v != 0);
	assert_int_equal(rt_read(t, DATA), 1);
	assert_int_equal(rt_read(t, DATA + 8), 2);
	rt_destroy(t);
}

/*
 * A walk that crosses a host invalidation is done again. The hart loads
 * through Sv39 (M mode with MPRV, MPP = S); the load's data page faults
 * in the host, and while the fault is paused the host drops the guest's
 * last-level page-table page. The translation the hart walked before the
 * fault came from a frame the host has taken back: the hart must walk
 * again (and find the new, empty table: a load page fault), not use it.
 */
static void pause_hook(struct kvm_vcpu *v, enum vcpu_hook_point at, void *arg)
{
	(void)v;
	if (at == VCPU_HOOK_AFTER_GUP)
		pause_once_hit(arg, RT_WAIT_MS);
}

#define PT_ROOT 0x4000
#define PT_L1   0x5000
#define PT_L0   0x6000
#define VA_BASE 0x40000000ULL   /* VPN2 1, VPN1 0: L0 maps VA_BASE + n * 4K */
#define RW_PAGE (RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D)

static void test_walk_redone_after_invalidation_during_fault(void **state)
{
	struct rt *t = rt_create();
	struct pause_once pz;
	uint32_t p[96];
	unsigned int n = prologue(p);
	int spin;

	pause_once_init(&pz);
	/* Page tables: root[1] -> L1, L1[0] -> L0, L0[2] -> DATA, L0[7] -> 0x7000. */
	rt_write(t, PT_ROOT + 8, rt_pte(PT_L1, RV_PTE_V));
	rt_write(t, PT_L1, rt_pte(PT_L0, RV_PTE_V));
	rt_write(t, PT_L0 + 2 * 8, rt_pte(DATA, RW_PAGE));
	rt_write(t, PT_L0 + 7 * 8, rt_pte(0x7000, RW_PAGE));

	/* satp = Sv39 | root ppn */
	p[n++] = addi(T0, ZERO, 1);
	p[n++] = slli(T0, T0, 63);
	n += emit_base(p + n, T1, PT_ROOT);
	p[n++] = srli(T1, T1, 12);
	p[n++] = or_(T0, T0, T1);
	p[n++] = csrrw(ZERO, CSR_SATP, T0);
	/* s2 = VA of DATA (0x4000_2000), s3 = VA of page 7; t0 = MPRV | MPP=S */
	p[n++] = addi(S2, ZERO, 1);
	p[n++] = slli(S2, S2, 18);
	p[n++] = addi(S3, S2, 7);
	p[n++] = addi(S2, S2, 2);
	p[n++] = slli(S2, S2, 12);
	p[n++] = slli(S3, S3, 12);
	p[n++] = addi(T0, ZERO, 1);
	p[n++] = slli(T0, T0, 17);
	p[n++] = addi(T1, ZERO, 1);
	p[n++] = slli(T1, T1, 11);
	p[n++] = or_(T0, T0, T1);
	/* A first load through the tables (of DATA): faults them all in. */
	p[n++] = csrrs(ZERO, CSR_MSTATUS, T0);
	p[n++] = ld(T2, S2, 0);
	p[n++] = csrrc(ZERO, CSR_MSTATUS, T0);
	/* marker 1, then wait for go (DATA + 32) */
	p[n++] = addi(T2, ZERO, 1);
	p[n++] = sd(T2, S1, 8);
	spin = (int)n;
	p[n++] = ld(T3, S1, 32);
	p[n] = beq(T3, ZERO, (spin - (int)n) * 4);
	n++;
	/* The load whose data page faults (and is paused). */
	p[n++] = csrrs(ZERO, CSR_MSTATUS, T0);
	p[n++] = ld(T2, S3, 0);
	p[n++] = csrrc(ZERO, CSR_MSTATUS, T0);
	p[n++] = addi(T2, ZERO, 2);                     /* no fault: marker 2 */
	p[n++] = sd(T2, S1, 8);
	p[n++] = jal(ZERO, 0);
	assert_true(n * 4 < TRAP);
	rt_load(t, 0, p, n);
	load_trap_handler(t);
	rt_start(t, 1);
	kvm_vcpu_set_hook(&rv_hart_vcpu(t->harts[0])->kvm_vcpu, pause_hook, &pz);
	rt_wait(t, DATA + 8, v == 1);
	pause_once_arm(&pz);
	rt_write(t, DATA + 32, 1);
	if (!pause_once_wait(&pz, RT_WAIT_MS))
		fail_msg("the hart never faulted on the data page");
	/* The hart is in the fault, outside guest mode: this does not wait. */
	rt_dontneed(t, PT_L0);
	pause_once_release(&pz);
	rt_wait(t, DATA + 16, v == 0x7ad);
	assert_int_equal(rt_read(t, DATA + 24), 13);   /* load page fault */
	assert_int_equal(rt_read(t, DATA + 8), 1);     /* the load never completed */
	kvm_vcpu_set_hook(&rv_hart_vcpu(t->harts[0])->kvm_vcpu, NULL, NULL);
	rt_destroy(t);
	pause_once_destroy(&pz);
}

/*
 * rv_hart_reset: refused while the vCPU runs; afterwards the hart starts
 * again at reset_pc with the new boot registers, its CSRs at their reset
 * values (mscratch read as 0 again), and runs code the host rewrote while
 * it was stopped (decoded code and soft TLB emptied). Stats keep counting.
 */
static void test_reset_restarts_hart(void **state)
{
	struct rt *t = rt_create();
	struct rv_hart_config c = { .hartid = 0, .reset_pc = RT_RAM_BASE, .a0 = 0x55,
				    .priv = RV_PRV_M, .clock = &t->clk };
	struct rv_hart_stats st;
	uint32_t p[64];
	unsigned int n = 0, imm_at;
	uint64_t before;

	p[n++] = csrrs(S3, CSR_MSCRATCH, ZERO);   /* before the prologue uses t0 */
	n += prologue(p + n);
	p[n++] = sd(S3, S1, 40);
	p[n++] = sd(A0, S1, 32);
	imm_at = n;
	p[n++] = addi(T1, ZERO, 1);
	p[n++] = csrrw(ZERO, CSR_MSCRATCH, S1);
	p[n++] = sd(T1, S1, 0);
	p[n++] = jal(ZERO, 0);
	rt_load(t, 0, p, n);
	load_trap_handler(t);
	rt_start(t, 1);
	rt_wait(t, DATA, v == 1);
	assert_int_equal(rt_read(t, DATA + 32), 0);
	assert_int_equal(rt_read(t, DATA + 40), 0);
	assert_int_equal(rv_hart_reset(t->harts[0], &c), -EBUSY);

	assert_int_equal(vcpu_stop(rv_hart_vcpu(t->harts[0])), 0);
	rv_hart_get_stats(t->harts[0], &st);
	before = st.instret;
	assert_true(before > 0);
	assert_int_equal(rv_hart_get_reg(t->harts[0], T1), 1);
	/* Rewritten behind the stopped hart, no fence.i. */
	p[imm_at] = addi(T1, ZERO, 2);
	rt_load(t, 0, p, n);
	rt_write(t, DATA, 0);
	c.clock = NULL;
	assert_int_equal(rv_hart_reset(t->harts[0], &c), -EINVAL);
	c.clock = &t->clk;
	assert_int_equal(rv_hart_reset(t->harts[0], &c), 0);
	assert_int_equal(rv_hart_get_pc(t->harts[0]), RT_RAM_BASE);
	assert_int_equal(rv_hart_get_reg(t->harts[0], A0), 0x55);
	assert_int_equal(rv_hart_get_reg(t->harts[0], T1), 0);
	assert_int_equal(vcpu_run(rv_hart_vcpu(t->harts[0]), rv_hart_main, t->harts[0]), 0);
	rt_wait(t, DATA, v == 2);
	assert_int_equal(rt_read(t, DATA + 32), 0x55);
	assert_int_equal(rt_read(t, DATA + 40), 0);    /* mscratch was reset */
	assert_int_equal(vcpu_stop(rv_hart_vcpu(t->harts[0])), 0);
	t->stopped[0] = true;
	rv_hart_get_stats(t->harts[0], &st);
	assert_true(st.instret > before);
	rt_destroy(t);
}

/* Bad configurations are refused. */
static void test_create_refuses_bad_config(void **state)
{
	struct host_config hc = { .ram_bytes = 16ULL << 20 };
	struct kvm_config rseq = { .kick = KVM_KICK_RSEQ };
	struct rv_clock clk;
	struct rv_hart_config c = { .priv = RV_PRV_M, .clock = &clk };
	struct rv_hart *h;
	struct host *host;
	struct vmm *vmm;
	struct vcpu *v;

	rv_clock_init(&clk, 10000000);
	assert_int_equal(host_create(&hc, &host), 0);
	if (kvm_rseq_available() && vmm_create(host, &rseq, &vmm) == 0) {
		assert_int_equal(vmm_create_vcpu(vmm, 0, &v), 0);
		assert_int_equal(rv_hart_create(v, &c, &h), -EOPNOTSUPP);
		vmm_destroy(vmm);
	}
	struct kvm_config wait = { .kick = KVM_KICK_WAIT };

	assert_int_equal(vmm_create(host, &wait, &vmm), 0);
	assert_int_equal(vmm_create_vcpu(vmm, 0, &v), 0);
	assert_int_equal(rv_hart_create(v, NULL, &h), -EINVAL);
	c.clock = NULL;
	assert_int_equal(rv_hart_create(v, &c, &h), -EINVAL);
	c.clock = &clk;
	c.priv = 2;
	assert_int_equal(rv_hart_create(v, &c, &h), -EINVAL);
	c.priv = RV_PRV_M;
	assert_int_equal(rv_hart_create(v, &c, &h), 0);
	assert_int_equal(rv_hart_create(v, &c, &h), -EINVAL);   /* already a hart */
	rv_hart_destroy(h);
	vmm_destroy(vmm);
	assert_int_equal(host_destroy(host), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_code_dropped_by_host_is_not_run),
		cmocka_unit_test(test_data_dropped_by_host_reads_new_page),
		cmocka_unit_test(test_invalidation_ends_while_hart_spins),
		cmocka_unit_test(test_wfi_sleeps_until_interrupt),
		cmocka_unit_test(test_stop_wakes_wfi),
		cmocka_unit_test(test_amo_and_lrsc_between_harts),
		cmocka_unit_test(test_fence_i_runs_rewritten_code),
		cmocka_unit_test(test_walk_redone_after_invalidation_during_fault),
		cmocka_unit_test(test_create_refuses_bad_config),
		cmocka_unit_test(test_reset_restarts_hart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
