/* SPDX-License-Identifier: MIT */
/*
 * stress_kvm.c - the secondary MMU under host churn, judged by the
 * integrity checker: the scenario of `tandem run`, small and bounded.
 *
 * Tests:
 *  - churn_all_ok: 2 VMs x 2 vCPUs, 16 MiB of guest RAM each, the mixed
 *    workload, every churn op (DONTNEED, mprotect, remap, fork) for
 *    TANDEM_STRESS_SECONDS (default 4): integrity OK, no poison hits, every
 *    frame back, every churn op ran, guest ROM writes exited to the VMM.
 *    The kick mode is KVM_KICK_AUTO: RSEQ in the debug build on x86-64,
 *    WAIT in sanitizer builds (vcpu_rseq.h). This is the test that must
 *    stay clean under ThreadSanitizer.
 *  - churn_wait_ok: the same, 2 s, with the waiting kick protocol (skipped
 *    in sanitizer builds, where churn_all_ok already ran it).
 *  - stalls_ok: the same with vCPUs stalled at the protocol's vulnerable
 *    points (cfg.stall) and no break: the stalls alone cause no failure.
 *  - break_seq, break_flush_wait, break_zap: each KVM_BREAK_* switch, with
 *    the churn `tandem run --break` uses for it, must make a short run
 *    (<= 5 s; it ends at the first failure) report integrity failures.
 *    flush-wait runs the waiting kick protocol, whose wait it removes (under
 *    RSEQ the access re-checks requests inside a restartable section, and
 *    the window left by a missing membarrier is a few instructions).
 *    Skipped under TSan: with a break on, guests really do race the host
 *    on guest memory (that is the point), and TSan would rightly report
 *    those races and fail the binary. They run in the debug and ASan builds.
 *  - wss_ok: churn_all_ok, 2 s, with the working-set sampler every 100 ms
 *    (idle page tracking marking and counting guest RAM while the guests
 *    run and churn remaps slots under it): integrity OK, intervals counted,
 *    working sets within guest RAM.
 *  - bad_config: scenario_run rejects bad configurations with -EINVAL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tandem/config.h"
#include "tandem/workload.h"
#include "harness/scenario.h"
#include "harness/util.h"

#ifdef TANDEM_TSAN
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif
#ifdef TANDEM_SANITIZER
#define UNDER_SANITIZER 1
#else
#define UNDER_SANITIZER 0
#endif

static void small_config(struct scenario_config *cfg, uint64_t seconds_ms)
{
	scenario_config_default(cfg);
	cfg->nr_vms = 2;
	cfg->nr_vcpus = 2;
	cfg->guest_mem = 16ULL << 20;
	cfg->duration_ns = seconds_ms * 1000000ULL;
	cfg->prefault = false;
	cfg->seed = env_u64("TANDEM_STRESS_SEED", 1);
}

static void print_result(const char *name, const struct scenario_result *r)
{
	printf("# %s: kick %s, %.2f s, %llu accesses, %llu faults (%llu retries), %llu "
	       "invalidations, %llu TLB flushes, churn %llu/%llu/%llu/%llu, ROM writes %llu, "
	       "final check %llu pages, poison %llu, frames %llu: %s\n", name,
	       kvm_kick_mode_name(r->kick), r->elapsed_s,
	       (unsigned long long)r->total.accesses, (unsigned long long)r->kvm.faults,
	       (unsigned long long)r->kvm.fault_retries,
	       (unsigned long long)r->kvm.invalidations,
	       (unsigned long long)r->kvm.tlb_flushes,
	       (unsigned long long)r->total.churn[WL_CHURN_DONTNEED],
	       (unsigned long long)r->total.churn[WL_CHURN_MPROTECT],
	       (unsigned long long)r->total.churn[WL_CHURN_REMAP],
	       (unsigned long long)r->total.churn[WL_CHURN_FORK],
	       (unsigned long long)r->total.rom_writes,
	       (unsigned long long)r->final_pages_checked,
	       (unsigned long long)r->poison_hits, (unsigned long long)r->frames_in_use,
	       r->verdict);
	print_failures(r);
}

static void assert_clean(const struct scenario_result *r)
{
	assert_true(r->ok);
	assert_int_equal(r->failures, 0);
	assert_int_equal(r->poison_hits, 0);
	assert_int_equal(r->frames_in_use, 0);
	assert_true(r->total.accesses > 0);
	assert_true(r->total.page_writes > 0);
	assert_true(r->total.page_reads > 0);
	assert_true(r->final_pages_checked == 2 * (16ULL << 20) / PAGE_SIZE);
}

static void churn_all_ok(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	small_config(&cfg, env_u64("TANDEM_STRESS_SECONDS", 4) * 1000);
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result("churn_all_ok", r);
	assert_clean(r);
	for (int k = 0; k < WL_NR_CHURN; k++)
		assert_true(r->total.churn[k] > 0);
	assert_true(r->kvm.invalidations > 0);
	assert_true(r->total.rom_writes > 0);
	assert_int_equal(r->total.mmio_exits, r->total.rom_writes);
	assert_int_equal(r->kvm.mmio_exits, r->total.rom_writes);
	free(r);
}

static void churn_wait_ok(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r;

	if (UNDER_SANITIZER) {
		skip();         /* AUTO is WAIT here: churn_all_ok ran it */
		return;
	}
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	small_config(&cfg, 2000);
	cfg.kick = KVM_KICK_WAIT;
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result("churn_wait_ok", r);
	assert_int_equal(r->kick, KVM_KICK_WAIT);
	assert_clean(r);
	for (int k = 0; k < WL_NR_CHURN; k++)
		assert_true(r->total.churn[k] > 0);
	free(r);
}

static void stalls_ok(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	small_config(&cfg, 2000);
	cfg.stall = true;
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result("stalls_ok", r);
	assert_clean(r);
	assert_true(r->total.stalls > 0);
	free(r);
}

static void wss_ok(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));
	uint64_t npages = (16ULL << 20) / PAGE_SIZE;

	assert_non_null(r);
	small_config(&cfg, 2000);
	cfg.wss_interval_ns = 100000000ULL;
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result("wss_ok", r);
	assert_clean(r);
	assert_true(r->total.churn[WL_CHURN_REMAP] > 0);
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		const struct scenario_wss *w = &r->vm[i].wss;

		printf("#   vm%u working set: %llu intervals, last %llu, mean %.0f, min %llu, "
		       "max %llu of %llu pages; %.0f ns/page mark, %.0f ns/page count\n", i,
		       (unsigned long long)w->intervals, (unsigned long long)w->last_pages,
		       w->mean_pages, (unsigned long long)w->min_pages,
		       (unsigned long long)w->max_pages, (unsigned long long)npages,
		       w->mark_ns_per_page, w->count_ns_per_page);
		assert_true(w->intervals >= 3);
		assert_true(w->min_pages <= w->max_pages && w->max_pages <= npages);
		assert_true(w->last_pages <= w->last_mapped && w->last_mapped <= npages);
		assert_true(w->mean_pages > 0);
	}
	free(r);
}

/*
 * A break must be caught. The churn matches `tandem run --break=X` without
 * --churn (run.c): fork and mprotect expose seq and flush-wait, DONTNEED
 * and mprotect expose zap. Each run ends at its first failure.
 */
static void break_is_caught(unsigned int brk, unsigned int churn,
			    enum kvm_kick_mode kick, const char *name)
{
	struct scenario_config cfg;
	struct scenario_result *r;

	if (UNDER_TSAN) {
		/* See the header: real races on guest memory by design. */
		skip();
		return;
	}
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	small_config(&cfg, 5000);
	cfg.breaks = brk;
	cfg.stall = true;
	cfg.churn = churn;
	cfg.kick = kick;
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result(name, r);
	assert_false(r->ok);
	assert_true(r->failures > 0);
	free(r);
}

static void break_seq(void **state)
{
	break_is_caught(KVM_BREAK_SEQ_CHECK, 1u << WL_CHURN_FORK | 1u << WL_CHURN_MPROTECT,
			KVM_KICK_AUTO, "break_seq");
}

static void break_flush_wait(void **state)
{
	break_is_caught(KVM_BREAK_FLUSH_WAIT, 1u << WL_CHURN_FORK | 1u << WL_CHURN_MPROTECT,
			KVM_KICK_WAIT, "break_flush_wait");
}

static void break_zap(void **state)
{
	break_is_caught(KVM_BREAK_RANGE_ZAP,
			1u << WL_CHURN_DONTNEED | 1u << WL_CHURN_MPROTECT, KVM_KICK_AUTO,
			"break_zap");
}

static void bad_config(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));
	char why[256];

	assert_non_null(r);
	scenario_config_default(&cfg);
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), 0);

	cfg.nr_vms = 0;
	assert_int_equal(scenario_run(&cfg, r), -EINVAL);
	assert_true(strstr(r->verdict, "VMs") != NULL);
	scenario_config_default(&cfg);
	cfg.nr_vcpus = WL_MAX_VCPUS + 1;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	scenario_config_default(&cfg);
	cfg.guest_mem = (1ULL << 20) + PAGE_SIZE;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	scenario_config_default(&cfg);
	cfg.host_mem = 64ULL << 20;        /* far too small for 2 x 256 MiB */
	cfg.swap_bytes = 0;                /* (with swap, the default, it runs) */
	assert_int_equal(scenario_run(&cfg, r), -EINVAL);
	assert_true(strstr(r->verdict, "too small") != NULL);
	scenario_config_default(&cfg);
	cfg.write_pct = 101;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	scenario_config_default(&cfg);
	cfg.breaks = 1u << 30;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	scenario_config_default(&cfg);
	cfg.duration_ns = 0;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	scenario_config_default(&cfg);
	cfg.wss_interval_ns = 1000000;     /* 1 ms: below 10 ms */
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	assert_true(strstr(why, "working-set") != NULL);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_config),
		cmocka_unit_test(churn_all_ok),
		cmocka_unit_test(churn_wait_ok),
		cmocka_unit_test(stalls_ok),
		cmocka_unit_test(wss_ok),
		cmocka_unit_test(break_seq),
		cmocka_unit_test(break_flush_wait),
		cmocka_unit_test(break_zap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
