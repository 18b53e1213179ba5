/* SPDX-License-Identifier: MIT */
/*
 * test_gpc_scenario.c - the pages the host writes into guest memory
 * through gfn_to_pfn caches (seed 001), in the C-guest scenario: the clock
 * device's page and the vCPUs' run-state areas. A short default run is OK
 * and shows the caches at work; each break is caught as the kind of
 * failure it causes; bad settings are refused with a reason.
 *
 * Nothing here is timed: counts are asserted only where the run's own
 * structure guarantees them (the clock's last pass writes every page; a
 * discard of the device pages invalidates every cache over them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/config.h"
#include "tandem/workload.h"
#include "harness/scenario.h"

#define MB (1ULL << 20)

#ifdef TANDEM_TSAN
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

/* A break run writes freed frames on purpose: TSan would report the very
 * races the checker is to catch. */
#define SKIP_BREAK_UNDER_TSAN() do { \
	if (UNDER_TSAN) { \
		printf("# skipped: a deliberate race, under TSan\n"); \
		skip(); \
	} \
} while (0)

static void small_config(struct scenario_config *cfg)
{
	scenario_config_default(cfg);
	cfg->nr_vms = 2;
	cfg->nr_vcpus = 2;
	cfg->guest_mem = 16 * MB;
	cfg->duration_ns = 1500000000ULL;
	cfg->churn_interval_us = 2000;
	cfg->seed = 11;
}

/* Ends the run once it has failed (the run does so itself), or once the
 * churn has had the device pages long enough: never by the clock alone. */
static struct scenario_result *run(const struct scenario_config *cfg)
{
	struct scenario_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	assert_int_equal(scenario_run(cfg, r), 0);
	printf("# %s (clock writes %llu, misses %llu, gpc refreshes %llu, invalidations %llu, "
	       "requests %llu, run-state updates %llu, device churn %llu)\n", r->verdict,
	       (unsigned long long)r->clock.writes, (unsigned long long)r->clock.misses,
	       (unsigned long long)r->kvm.gpc_refreshes,
	       (unsigned long long)r->kvm.gpc_invalidations,
	       (unsigned long long)r->kvm.gpc_requests,
	       (unsigned long long)r->kvm.runstate_updates,
	       (unsigned long long)r->total.dev_churn);
	if (!r->ok)
		print_failures(r);
	return r;
}

static void test_defaults(void **state)
{
	struct scenario_config cfg;

	scenario_config_default(&cfg);
	assert_int_equal(cfg.clock_period_ns, CLOCKDEV_PERIOD_DEFAULT);
	assert_true(cfg.runstate);
}

/* Intact: OK, and every part of the machinery did something. The device
 * pages are discarded (only DONTNEED churn, so each op is a discard of
 * data or device pages), which must invalidate the caches over them. */
static void test_default_run_ok(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r;

	small_config(&cfg);
	cfg.churn = 1u << WL_CHURN_DONTNEED;
	r = run(&cfg);
	assert_true(r->ok);
	assert_true(r->total.dev_churn > 0);
	/* Activation refreshes each cache once; the discards more. */
	assert_true(r->kvm.gpc_refreshes > cfg.nr_vms * (cfg.nr_vcpus + 1));
	assert_true(r->kvm.gpc_invalidations > 0);
	assert_true(r->kvm.gpc_requests > 0);
	/* The discards made the clock device miss, and its worker refresh. */
	assert_true(r->clock.misses > 0);
	assert_true(r->clock.refreshes > 0);
	/* ... and then wrote on: a miss is the exception (a few per 1000). */
	assert_true(r->clock.misses * 4 < r->clock.writes);
	/* The clock's last pass writes every VM's page at least once. */
	assert_true(r->clock.writes >= cfg.nr_vms);
	for (unsigned int i = 0; i < cfg.nr_vms; i++)
		assert_true(r->vm[i].clock.writes > 0);
	assert_true(r->kvm.runstate_updates > 0);
	assert_true(r->total.clock_reads > 0);
	assert_true(r->total.runstate_reads > 0);
	assert_true(r->total.runstate_sibling_reads > 0);
	assert_int_equal(r->frames_in_use, 0);
	free(r);
}

/* Every churn op, the device pages included: still OK. */
static void test_all_churn_ok(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r;

	small_config(&cfg);
	r = run(&cfg);
	assert_true(r->ok);
	assert_true(r->kvm.gpc_invalidations > 0);
	free(r);
}

/*
 * Under swap pressure (host RAM below the guests', the write-pass workload
 * filling it at once): kswapd and direct reclaim swap the device pages out
 * too -- the host's writes through a cache set no accessed bit -- while the
 * clock device's timer, its worker, the vCPUs' entries and the churn run.
 * Still OK (and, in the TSan build, no report).
 */
static void test_swap_pressure_ok(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r;

	small_config(&cfg);
	cfg.guest_mem = 32 * MB;
	cfg.host_mem = 40 * MB;
	cfg.swap_bytes = 128 * MB;
	cfg.prefault = false;
	cfg.workload = WL_SEQ;
	cfg.churn_interval_us = 20000;
	r = run(&cfg);
	assert_true(r->ok);
	assert_true(r->host.events[PSWPOUT] > 0);
	assert_true(r->host.events[PSWPIN] > 0);
	assert_true(r->kvm.gpc_invalidations > 0);
	assert_true(r->kvm.runstate_updates > 0);
	assert_true(r->clock.writes > 0);
	assert_int_equal(r->frames_in_use, 0);
	free(r);
}

/* Off: no device reads, no clock writes, no run-state updates. */
static void test_off(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r;

	small_config(&cfg);
	cfg.clock_period_ns = 0;
	cfg.runstate = false;
	cfg.duration_ns = 500000000ULL;
	r = run(&cfg);
	assert_true(r->ok);
	assert_int_equal(r->clock.writes, 0);
	assert_int_equal(r->kvm.runstate_updates, 0);
	assert_int_equal(r->total.clock_reads + r->total.runstate_reads, 0);
	free(r);
}

/* A run with one gpc break, the device pages discarded by the churn, and
 * only the clock or only the run-state areas on: it must fail. */
static struct scenario_result *run_broken(unsigned int brk, bool clock)
{
	struct scenario_config cfg;
	struct scenario_result *r;

	small_config(&cfg);
	if (clock)
		cfg.runstate = false;
	else
		cfg.clock_period_ns = 0;
	cfg.churn = 1u << WL_CHURN_DONTNEED;
	cfg.breaks = brk;
	r = run(&cfg);
	assert_false(r->ok);
	return r;
}

/* --break=gpc-invalidate, clock only: after a discard of its page the
 * cache stays valid, the device writes a frame the host has freed, and
 * its last write is not in the guest's page. */
static void test_break_invalidate_clock(void **state)
{
	struct scenario_result *r;

	SKIP_BREAK_UNDER_TSAN();
	r = run_broken(KVM_BREAK_GPC_INVALIDATE, true);
	assert_true(r->fail_count[WL_FAIL_CLOCK_LOST] > 0);
	free(r);
}

/* --break=gpc-invalidate, run-state areas only: a vCPU keeps writing its
 * area through the old frame and reads its own area without its write. */
static void test_break_invalidate_runstate(void **state)
{
	struct scenario_result *r;

	SKIP_BREAK_UNDER_TSAN();
	r = run_broken(KVM_BREAK_GPC_INVALIDATE, false);
	assert_true(r->fail_count[WL_FAIL_RUNSTATE] > 0);
	free(r);
}

/* --break=gpc-request: the cache is marked invalid but the vCPU is not
 * told; it goes on writing through the address it had. */
static void test_break_request(void **state)
{
	struct scenario_result *r;

	SKIP_BREAK_UNDER_TSAN();
	r = run_broken(KVM_BREAK_GPC_REQUEST, false);
	assert_true(r->fail_count[WL_FAIL_RUNSTATE] > 0);
	/* Marked invalid, never refreshed by a request: none was sent. */
	assert_int_equal(r->kvm.gpc_requests, 0);
	free(r);
}

static void test_bad_config(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));
	char why[256] = "";

	assert_non_null(r);
	small_config(&cfg);
	cfg.clock_period_ns = CLOCKDEV_PERIOD_MIN - 1;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "clock period"));
	assert_int_equal(scenario_run(&cfg, r), -EINVAL);
	assert_non_null(strstr(r->verdict, "clock period"));
	cfg.clock_period_ns = CLOCKDEV_PERIOD_MAX + 1;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	cfg.clock_period_ns = 0;        /* off is fine */
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), 0);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_default_run_ok),
		cmocka_unit_test(test_all_churn_ok),
		cmocka_unit_test(test_swap_pressure_ok),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_break_invalidate_clock),
		cmocka_unit_test(test_break_invalidate_runstate),
		cmocka_unit_test(test_break_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
