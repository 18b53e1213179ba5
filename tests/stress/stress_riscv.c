/* SPDX-License-Identifier: MIT */
/*
 * stress_riscv.c - RISC-V harts over an overcommitted, churning host,
 * bounded in time (also under ThreadSanitizer), judged by the guest's own
 * checks and the host's.
 *
 * The guest is guests/rv-tests/memstress.elf (built by make test): each
 * hart stamps its slice of 52 MiB of guest RAM pass after pass and checks
 * the previous pass's stamps. The host has less RAM than that, with swap,
 * and the machine's churn thread forks the VMM's mm (COW breaks under the
 * harts' writes) and reclaims (swap-out) every few milliseconds. At the
 * end: every hart made passes with no wrong stamp, pages went to swap and
 * came back, the host's invariants hold and every frame came back.
 *
 * memstress runs without paging, so the GVA tables (seed 002) serve none
 * of its accesses. The second part is paged: `tandem run --guest riscv`'s
 * scenario, two VMs running the project's kernel (many Sv39 address
 * spaces, ASIDs recycled, COW fork, targeted fences) for the same time
 * over a host with half their RAM, swapping, with each VM's fork/reclaim
 * churn: their harts refill from the GVA tables while the host's zaps and
 * the guests' fences clear them. Judged by the scenario's verdict (each
 * kernel's own checks, the host's), with the GVA tables targeted (the
 * default), then for half the time in the flush-all mode.
 *
 * Knobs: STRESS_RISCV_SECS (default 3), STRESS_RISCV_HARTS (default 2).
 * The kernel and OpenSBI: make guest-kernel, Debian's opensbi (skipped
 * without it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "tandem/virt.h"
#include "tandem/workload.h"
#include "harness/util.h"

#define ELF        "build/rv-tests/memstress.elf"
#define KERNEL     "build/kernel/kernel.elf"
#define BIOS       "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"
#define MBOX       0x80300000ULL
#define MBOX_MAGIC 0x4d454d5354524553ULL
#define MAX_HARTS  8

struct mbox {
	uint64_t magic;
	uint64_t nharts;
	uint64_t passes[MAX_HARTS];
	uint64_t errors[MAX_HARTS];
	uint64_t bad_addr, bad_expected, bad_got;
};

static void run(unsigned int harts, unsigned int secs)
{
	struct host_config hc = { .ram_bytes = 40ULL << 20, .swap_bytes = 160ULL << 20 };
	struct virt_config vc;
	struct host_stats hs;
	struct virt_stats st;
	struct mbox mb = { 0 };
	struct virt *vm;
	struct host *host;
	char err[256];
	uint64_t end;
	int r;

	if (access(ELF, R_OK))
		fail_msg("%s is missing: make test builds it (make rv-tests)", ELF);
	assert_int_equal(host_create(&hc, &host), 0);
	virt_config_default(&vc);
	vc.ram_size = 64ULL << 20;
	vc.smp = harts;
	vc.kernel = ELF;
	vc.churn_interval_ms = 5;
	r = virt_create(host, &vc, &vm, err, sizeof(err));
	if (r)
		fail_msg("virt_create: %s", err);
	assert_int_equal(virt_start(vm), 0);
	/* Run for secs, or until every hart has made a few passes and the
	 * host has swapped both ways, whichever is later (bounded: 10 x). */
	end = ms_now() + (uint64_t)secs * 1000;
	for (;;) {
		bool enough = true;

		sleep_ms(50);
		assert_int_equal(virt_exit_reason(vm), VIRT_RUNNING);
		assert_int_equal(vmm_read_guest(virt_vmm(vm), MBOX, &mb, sizeof(mb)), 0);
		host_get_stats(host, &hs);
		for (unsigned int h = 0; h < harts; h++)
			enough &= mb.magic == MBOX_MAGIC && mb.passes[h] >= 3;
		enough &= hs.events[PSWPIN] > 0 && hs.events[PSWPOUT] > 0;
		if (ms_now() >= end && enough)
			break;
		if (ms_now() >= end + 9ULL * secs * 1000)
			fail_msg("no progress: passes %llu/%llu, swap in %llu out %llu",
				 (unsigned long long)mb.passes[0],
				 (unsigned long long)mb.passes[harts - 1],
				 (unsigned long long)hs.events[PSWPIN],
				 (unsigned long long)hs.events[PSWPOUT]);
	}
	virt_stop(vm);
	assert_int_equal(vmm_read_guest(virt_vmm(vm), MBOX, &mb, sizeof(mb)), 0);
	virt_get_stats(vm, &st);
	host_get_stats(host, &hs);
	print_message("      %u harts: %llu M instructions, passes %llu..%llu, swap in %llu "
		      "out %llu, churn %llu\n", harts, (unsigned long long)(st.instret / 1000000),
		      (unsigned long long)mb.passes[0], (unsigned long long)mb.passes[harts - 1],
		      (unsigned long long)hs.events[PSWPIN], (unsigned long long)hs.events[PSWPOUT],
		      (unsigned long long)st.churn_ops);
	assert_int_equal(mb.nharts, harts);
	for (unsigned int h = 0; h < harts; h++)
		if (mb.errors[h])
			fail_msg("hart %u: %llu wrong stamps; first at %#llx: expected %#llx, got %#llx",
				 h, (unsigned long long)mb.errors[h], (unsigned long long)mb.bad_addr,
				 (unsigned long long)mb.bad_expected, (unsigned long long)mb.bad_got);
	assert_true(st.churn_ops > 0);
	virt_destroy(vm);
	assert_int_equal(host_check_invariants(host), 0);
	assert_int_equal(host_frames_in_use(host), 0);
	host_get_stats(host, &hs);
	assert_int_equal(hs.swap_free_slots, hs.swap_slots);
	assert_int_equal(host_destroy(host), 0);
}

static void test_harts_over_swapping_churning_host(void **state)
{
	run((unsigned int)env_u64("STRESS_RISCV_HARTS", 2),
	    (unsigned int)env_u64("STRESS_RISCV_SECS", 3));
}

/* The kernels start lineages for secs, then drain; the host has half
 * the guests' RAM. */
static void run_kernels(enum kvm_gva_mode gva, unsigned int harts, unsigned int secs)
{
	struct rv_scenario_config cfg;
	struct rv_scenario_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	if (access(BIOS, R_OK)) {
		free(r);
		print_message("      %s missing (Debian package opensbi): skipped\n", BIOS);
		skip();
	}
	if (access(KERNEL, R_OK))
		fail_msg("%s is missing: make guest-kernel", KERNEL);
	rv_scenario_config_default(&cfg);
	cfg.nr_vms = 2;
	cfg.nr_harts = harts;
	cfg.guest_mem = 64ULL << 20;
	cfg.host_mem = 64ULL << 20;
	cfg.duration_ns = (uint64_t)secs * NSEC_PER_SEC;
	cfg.timeout_ns = 20ULL * (secs + 10) * NSEC_PER_SEC;
	cfg.churn_interval_ms = 5;
	cfg.bios = BIOS;
	cfg.kernel = KERNEL;
	cfg.gva = gva;
	assert_int_equal(rv_scenario_run(&cfg, r), 0);
	print_message("      %s, %u harts: %.2f s, %llu M instructions, swap in %llu out %llu; "
		      "gva refills %llu misses %llu, zapped %llu leaves %llu nodes, flush-all "
		      "%llu; %s\n", kvm_gva_mode_name(gva), harts, r->elapsed_s,
		      (unsigned long long)(r->instret / 1000000),
		      (unsigned long long)r->host.events[PSWPIN],
		      (unsigned long long)r->host.events[PSWPOUT],
		      (unsigned long long)r->gva.refills, (unsigned long long)r->gva.misses,
		      (unsigned long long)r->gva.zapped_leaves,
		      (unsigned long long)r->gva.zapped_nodes,
		      (unsigned long long)r->gva.flush_all, r->verdict);
	for (unsigned int i = 0; i < r->nr_vms && !r->ok; i++)
		for (unsigned int j = 0; j < r->vm[i].nr_fail_lines; j++)
			print_message("      vm%u: %s\n", i, r->vm[i].fail_lines[j]);
	assert_true(r->ok);
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		assert_true(r->vm[i].kernel.ok);
		assert_true(r->vm[i].kernel.procs > 1);
		assert_true(r->vm[i].churn_ops > 0);
	}
	assert_true(r->host.events[PSWPIN] > 0);
	assert_true(r->host.events[PSWPOUT] > 0);
	assert_true(r->gva.refills > 0);
	if (gva == KVM_GVA_TARGETED)
		assert_true(r->gva.zapped_leaves > 0);
	else
		assert_true(r->gva.flush_all > 0);
	assert_int_equal(r->invariants, 0);
	assert_int_equal(r->frames_in_use, 0);
	assert_int_equal(r->swap_slots_in_use, 0);
	assert_int_equal(r->poison_hits, 0);
	free(r);
}

static void test_kernels_gva_targeted(void **state)
{
	run_kernels(KVM_GVA_TARGETED, (unsigned int)env_u64("STRESS_RISCV_HARTS", 2),
		    (unsigned int)env_u64("STRESS_RISCV_SECS", 3));
}

/* The seed's way, for half the time: every host zap empties every table. */
static void test_kernels_gva_flush_all(void **state)
{
	unsigned int secs = (unsigned int)env_u64("STRESS_RISCV_SECS", 3);

	run_kernels(KVM_GVA_FLUSH_ALL, (unsigned int)env_u64("STRESS_RISCV_HARTS", 2),
		    secs > 1 ? secs / 2 : 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_harts_over_swapping_churning_host),
		cmocka_unit_test(test_kernels_gva_targeted),
		cmocka_unit_test(test_kernels_gva_flush_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
