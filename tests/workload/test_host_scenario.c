/* SPDX-License-Identifier: MIT */
/*
 * test_host_scenario.c - the host scenario (src/workload/host_scenario.c)
 * through its public calls: a short run passes and accounts for what it
 * did; a bad config is refused with a reason; each host break is caught as
 * the notifier call it removes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/workload.h"

#define MB (1ULL << 20)

static struct host_scenario_config short_config(void)
{
	struct host_scenario_config cfg;

	host_scenario_config_default(&cfg);
	cfg.host_mem = 64 * MB;
	cfg.nr_procs = 2;
	cfg.duration_ns = 0;
	cfg.iterations = 3;
	cfg.seed = 7;
	return cfg;
}

static void test_defaults_valid(void **state)
{
	struct host_scenario_config cfg;
	char why[256] = "";

	host_scenario_config_default(&cfg);
	assert_int_equal(host_scenario_check_config(&cfg, why, sizeof(why)), 0);
	assert_int_equal(cfg.nr_procs, 4);
	assert_int_equal(cfg.host_mem, 256 * MB);
}

/* Every iteration forks once and checks three accesses that must fail; every
 * subscription sees one release and balanced ranges; the host ends empty. */
static void test_short_run_ok(void **state)
{
	struct host_scenario_config cfg = short_config();
	struct host_scenario_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	assert_int_equal(host_scenario_run(&cfg, r), 0);
	assert_true(r->ok);
	assert_string_equal(r->verdict, "OK");
	assert_int_equal(r->iterations, cfg.nr_procs * cfg.iterations);
	assert_int_equal(r->forks, r->iterations);
	assert_true(r->mms >= cfg.nr_procs + r->forks);
	assert_int_equal(r->efault_checks, 3 * r->iterations);
	assert_true(r->pages_verified > 0);
	assert_int_equal(r->subscriptions, r->mms);
	assert_int_equal(r->releases, r->mms);
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		assert_int_equal(r->starts[e], r->ends[e]);
	/* Two munmaps, a DONTNEED, an mprotect and a fork per iteration. */
	assert_true(r->starts[MMU_NOTIFY_UNMAP] >= 2 * r->iterations);
	assert_true(r->starts[MMU_NOTIFY_CLEAR] >= r->iterations);
	assert_int_equal(r->starts[MMU_NOTIFY_PROTECTION_VMA], r->iterations);
	assert_int_equal(r->starts[MMU_NOTIFY_PROTECTION_PAGE], r->iterations);
	assert_true(r->peak_frames > 0);
	assert_int_equal(r->invariants, 0);
	assert_int_equal(r->frames_in_use, 0);
	assert_int_equal(r->host.pgtable_pages, 0);
	assert_int_equal(r->host.nr_mms, 0);
	free(r);
}

static void test_bad_config(void **state)
{
	/* Each a short run's config (64M, 2 procs, 3 iterations) with one
	 * thing wrong. */
	static const struct {
		const char *what;
		struct host_scenario_config cfg;
		const char *why;
	} bad[] = {
		{ "no procs", { .host_mem = 64 * MB, .nr_procs = 0, .iterations = 3 },
		  "processes: 0 is out of range (1..64)" },
		{ "too many procs", { .host_mem = 64 * MB, .nr_procs = 65, .iterations = 3 },
		  "processes: 65 is out of range (1..64)" },
		{ "unaligned RAM", { .host_mem = 64 * MB + 1, .nr_procs = 2, .iterations = 3 },
		  "host memory: 67108865 bytes is not a multiple of 4K in 16M..64G" },
		{ "RAM too large", { .host_mem = HOST_RAM_MAX + 4096, .nr_procs = 2,
				     .iterations = 3 },
		  "is not a multiple of 4K in 16M..64G" },
		{ "endless", { .host_mem = 64 * MB, .nr_procs = 2 }, "the run would not end" },
		{ "unknown break", { .host_mem = 64 * MB, .nr_procs = 2, .iterations = 3,
				     .breaks = 1u << 20 },
		  "breaks: unknown bits 0x100000" },
		{ "RAM too small", { .host_mem = 16 * MB, .nr_procs = 64, .iterations = 3 },
		  "host memory: 16 MiB is too small for 64 procs" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct host_scenario_result *r = calloc(1, sizeof(*r));
		char why[256] = "";

		assert_non_null(r);
		print_message("# %s\n", bad[i].what);
		assert_int_equal(host_scenario_check_config(&bad[i].cfg, why, sizeof(why)),
				 -EINVAL);
		assert_non_null(strstr(why, bad[i].why));
		/* run refuses it the same way, and runs nothing */
		assert_int_equal(host_scenario_run(&bad[i].cfg, r), -EINVAL);
		assert_false(r->ok);
		assert_string_equal(r->verdict, why);
		assert_int_equal(r->mms, 0);
		free(r);
	}
}

/* Each host break removes one class of notifier call: the run must fail,
 * naming the call that did not notify. */
static void test_breaks_caught(void **state)
{
	static const struct {
		enum host_break bit;
		const char *why;
	} breaks[] = {
		{ HOST_BREAK_MUNMAP_NOTIFY, "munmap sent no unmap invalidation" },
		{ HOST_BREAK_DONTNEED_NOTIFY, "MADV_DONTNEED sent no clear invalidation" },
		{ HOST_BREAK_MPROTECT_NOTIFY,
		  "mprotect(PROT_READ) sent no protection_vma invalidation" },
		{ HOST_BREAK_COW_NOTIFY, "a COW break sent no clear invalidation" },
		{ HOST_BREAK_FORK_NOTIFY, "mm_fork sent no protection_page invalidation" },
	};

	for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
		struct host_scenario_config cfg = short_config();
		struct host_scenario_result *r = calloc(1, sizeof(*r));

		assert_non_null(r);
		cfg.nr_procs = 1;
		cfg.breaks = breaks[i].bit;
		assert_int_equal(host_scenario_run(&cfg, r), 0);
		print_message("# break %#x: %s\n", breaks[i].bit, r->verdict);
		assert_false(r->ok);
		assert_non_null(strstr(r->verdict, breaks[i].why));
		/* A failed run still tears everything down. */
		assert_int_equal(r->frames_in_use, 0);
		assert_int_equal(r->host.nr_mms, 0);
		free(r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_valid),
		cmocka_unit_test(test_short_run_ok),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_breaks_caught),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
