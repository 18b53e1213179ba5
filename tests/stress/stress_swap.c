/* SPDX-License-Identifier: MIT */
/*
 * stress_swap.c - the scenario of `tandem run` with host RAM overcommitted:
 * swap, the OOM killer and swap I/O errors under live guests, judged by the
 * integrity checker. Small and bounded (a few seconds each, also under
 * ThreadSanitizer). The guests run the seq workload (write passes over
 * their pages) with all churn, one op per VM every 100 ms.
 *
 * Tests:
 *  - overcommit_ok: 2 VMs x 32 MiB of guest RAM on a 32 MiB host with
 *    128 MiB of swap, the mixed workload and all churn: pages go out to
 *    swap and come back (pswpin, pswpout > 0), integrity OK, every frame
 *    back after teardown, no VM killed.
 *  - oom_kills_one: 2 VMs x 40 MiB on a 32 MiB host with 16 MiB of swap:
 *    RAM and swap run out, the OOM killer kills exactly one VM, the reaper
 *    unmaps it through the secondary MMU's non-blockable path
 *    (kvm nonblock_starts > 0, oom_reaped_pages > 0), the survivor ends
 *    integrity OK and every frame is back.
 *  - swap_write_errors: overcommitted, the first 1000 swap writes fail:
 *    the errors are counted, nothing is lost (integrity OK, final check of
 *    every page), no VM stopped.
 *  - swap_read_error: overcommitted, the first swap read fails: exactly the
 *    VM that needed the page is stopped with the read-error reason, the
 *    other ends integrity OK.
 *  - swap_config: the automatic swap size, and --swap 0 refusing a host too
 *    small for the guests.
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

#define MiB (1ULL << 20)

#ifdef TANDEM_TSAN
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

static void swap_config(struct scenario_config *cfg, uint64_t guest_mib, uint64_t host_mib,
			uint64_t swap_mib, uint64_t ms)
{
	scenario_config_default(cfg);
	cfg->nr_vms = 2;
	cfg->nr_vcpus = 2;
	cfg->guest_mem = guest_mib * MiB;
	cfg->host_mem = host_mib * MiB;
	cfg->swap_bytes = swap_mib * MiB;
	cfg->duration_ns = ms * 1000000ULL;
	cfg->prefault = false;
	/* Write passes: every page is touched at once, so RAM fills within a
	 * second even under ThreadSanitizer (the mixed workload's reads map
	 * the zero page and use no memory), and each pass reads back (swaps
	 * in) what the last one wrote before writing it again. */
	cfg->workload = WL_SEQ;
	/* All churn, but a tenth as often: DONTNEED and remap discard memory,
	 * and at the default rate they would keep a slow (TSan) guest's
	 * resident set below the host's RAM. */
	cfg->churn_interval_us = 100000;
	cfg->seed = env_u64("TANDEM_STRESS_SEED", 1);
}

/*
 * When a run may end: after min_s, and once what the test is about has
 * happened (swap traffic both ways, a kill, a write error) and had
 * settle_s to play out. The run's duration is only a cap: on a loaded
 * machine, or under TSan, the event takes longer to come, and a fixed
 * time would make the test a bet on the machine's speed.
 */
#define CAP_MS (UNDER_TSAN ? 60000 : 30000)

struct until {
	double min_s, settle_s;
	bool swap_both_ways, kill, write_error;
	double seen_at;                 /* when it all happened; 0: not yet */
};

static bool end_when(const struct scenario_status *st, void *arg)
{
	struct until *u = arg;
	bool seen = (!u->swap_both_ways || (st->host.events[PSWPIN] > 0 &&
					    st->host.events[PSWPOUT] > 0)) &&
		    (!u->kill || st->vms_killed > 0) &&
		    (!u->write_error || st->host.events[SWAP_WRITE_ERROR] > 0);

	if (!seen)
		return false;
	if (!u->seen_at)
		u->seen_at = st->t_s;
	return st->t_s >= u->min_s && st->t_s - u->seen_at >= u->settle_s;
}

static void until(struct scenario_config *cfg, struct until *u)
{
	cfg->duration_ns = CAP_MS * 1000000ULL;
	cfg->end_when = end_when;
	cfg->end_when_arg = u;
}

static void print_result(const char *name, const struct scenario_result *r)
{
	const struct host_stats *h = &r->host;

	printf("# %s: %.2f s, %llu accesses, swap in %llu out %llu, write errors %llu, "
	       "read errors %llu, pgsteal %llu, OOM kills %llu (reaped %llu, retries %llu), "
	       "kvm nonblock %llu (eagain %llu), VMs killed %u, final check %llu pages, "
	       "frames %llu: %s\n", name, r->elapsed_s,
	       (unsigned long long)r->total.accesses,
	       (unsigned long long)h->events[PSWPIN], (unsigned long long)h->events[PSWPOUT],
	       (unsigned long long)h->events[SWAP_WRITE_ERROR],
	       (unsigned long long)h->events[SWAP_READ_ERROR],
	       (unsigned long long)h->events[PGSTEAL], (unsigned long long)h->oom_kills,
	       (unsigned long long)h->oom_reaped_pages, (unsigned long long)h->oom_reap_retries,
	       (unsigned long long)r->kvm.nonblock_starts,
	       (unsigned long long)r->kvm.nonblock_eagain, r->vms_killed,
	       (unsigned long long)r->final_pages_checked,
	       (unsigned long long)r->frames_in_use, r->verdict);
	print_failures(r);
}

static void assert_ok(const struct scenario_result *r)
{
	assert_true(r->ok);
	assert_int_equal(r->failures, 0);
	assert_int_equal(r->poison_hits, 0);
	assert_int_equal(r->frames_in_use, 0);
	assert_true(r->total.page_writes > 0);
}

/* The one killed VM of r (asserts there is exactly one). */
static unsigned int the_killed(const struct scenario_result *r)
{
	unsigned int n = 0, which = 0;

	for (unsigned int i = 0; i < r->nr_vms; i++)
		if (r->vm[i].killed) {
			n++;
			which = i;
		}
	assert_int_equal(n, 1);
	assert_int_equal(r->vms_killed, 1);
	return which;
}

static void overcommit_ok(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	struct until u = { .min_s = (double)env_u64("TANDEM_STRESS_SECONDS", 3),
			   .swap_both_ways = true };

	swap_config(&cfg, 32, 32, 128, 0);
	until(&cfg, &u);
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result("overcommit_ok", r);
	assert_ok(r);
	assert_int_equal(r->vms_killed, 0);
	assert_true(r->host.events[PSWPOUT] > 0);
	assert_true(r->host.events[PSWPIN] > 0);
	assert_true(r->host.events[PGSTEAL] > 0);
	assert_int_equal(r->final_pages_checked, 2 * (32 * MiB) / PAGE_SIZE);
	free(r);
}

static void oom_kills_one(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));
	unsigned int k;

	assert_non_null(r);
	struct until u = { .kill = true, .settle_s = 1 };

	swap_config(&cfg, 40, 32, 16, 0);
	until(&cfg, &u);
	/* No churn that discards memory (DONTNEED, remap): RAM and swap fill
	 * within seconds even under TSan. */
	cfg.churn = 1u << WL_CHURN_MPROTECT | 1u << WL_CHURN_FORK;
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result("oom_kills_one", r);
	assert_ok(r);
	k = the_killed(r);
	assert_int_equal(r->vm[k].killed, WL_KILLED_OOM);
	assert_true(strstr(r->vm[k].kill_msg, "killed by the OOM killer") != NULL);
	assert_true(r->host.oom_kills >= 1);
	assert_true(r->host.oom_reaped_pages > 0);
	assert_true(r->vm[k].kvm.nonblock_starts > 0);
	/* The survivor was checked in full; the victim not at all. */
	assert_int_equal(r->final_pages_checked, (40 * MiB) / PAGE_SIZE);
	free(r);
}

static void swap_write_errors(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	struct until u = { .min_s = 2, .write_error = true, .swap_both_ways = true,
			   .settle_s = 1 };

	swap_config(&cfg, 32, 32, 128, 0);
	until(&cfg, &u);
	cfg.swap_fail_writes = 1000;
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result("swap_write_errors", r);
	assert_ok(r);
	assert_int_equal(r->vms_killed, 0);
	assert_true(r->host.events[SWAP_WRITE_ERROR] > 0);
	assert_true(r->host.events[SWAP_WRITE_ERROR] <= 1000);
	assert_int_equal(r->host.events[SWAP_READ_ERROR], 0);
	assert_int_equal(r->final_pages_checked, 2 * (32 * MiB) / PAGE_SIZE);
	free(r);
}

static void swap_read_error(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));
	unsigned int k;

	assert_non_null(r);
	struct until u = { .kill = true, .settle_s = 1 };

	swap_config(&cfg, 32, 32, 128, 0);
	until(&cfg, &u);
	cfg.swap_fail_reads = 1;
	assert_int_equal(scenario_run(&cfg, r), 0);
	print_result("swap_read_error", r);
	assert_ok(r);
	assert_int_equal(r->host.events[SWAP_READ_ERROR], 1);
	k = the_killed(r);
	assert_int_equal(r->vm[k].killed, WL_KILLED_SWAP_READ);
	assert_true(strstr(r->vm[k].kill_msg, "swap-in read error") != NULL);
	assert_true(strstr(r->vm[k].kill_msg, "VM stopped") != NULL);
	assert_int_equal(r->final_pages_checked, (32 * MiB) / PAGE_SIZE);
	free(r);
}

static void swap_config_auto(void **state)
{
	struct scenario_config cfg;
	struct scenario_result *r = calloc(1, sizeof(*r));
	char why[256];

	assert_non_null(r);
	scenario_config_default(&cfg);
	assert_true(cfg.oom_killer);
	assert_int_equal(cfg.swap_bytes, WL_SWAP_AUTO);
	/* Default host sizing holds the guests: no swap. */
	assert_int_equal(scenario_swap_bytes(&cfg), 0);
	/* Host RAM below what the guests need: swap for all of it. */
	cfg.host_mem = 256 * MiB;
	assert_true(scenario_swap_bytes(&cfg) >= 2 * cfg.guest_mem);
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), 0);
	/* ... unless swap is off: then the host is too small. */
	cfg.swap_bytes = 0;
	assert_int_equal(scenario_run(&cfg, r), -EINVAL);
	assert_true(strstr(r->verdict, "too small") != NULL);
	cfg.swap_bytes = PAGE_SIZE + 1;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	cfg.swap_bytes = 0;
	cfg.host_mem = 0;
	cfg.swap_fail_reads = -1;
	assert_int_equal(scenario_check_config(&cfg, why, sizeof(why)), -EINVAL);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(swap_config_auto),
		cmocka_unit_test(overcommit_ok),
		cmocka_unit_test(oom_kills_one),
		cmocka_unit_test(swap_write_errors),
		cmocka_unit_test(swap_read_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
