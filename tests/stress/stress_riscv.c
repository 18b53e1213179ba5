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
 * Knobs: STRESS_RISCV_SECS (default 3), STRESS_RISCV_HARTS (default 2).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <unistd.h>
#include "tandem/virt.h"
#include "harness/util.h"

#define ELF        "build/rv-tests/memstress.elf"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_harts_over_swapping_churning_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
