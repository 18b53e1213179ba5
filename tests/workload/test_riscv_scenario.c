/* SPDX-License-Identifier: MIT */
/*
 * test_riscv_scenario.c - `tandem run --guest riscv`'s scenario
 * (src/workload/riscv_scenario.c) through its public calls: two RISC-V
 * VMs of two harts running the project's kernel (build/kernel/kernel.elf,
 * `make guest-kernel`) under OpenSBI over a host with half the RAM they
 * have, swapping and churning: both kernels end OK, swap ran both ways,
 * the host gets every frame back. A kernel told to break its COW
 * (`break=cow`) makes the verdict FAILED naming that VM and no other. Bad
 * configs are refused with a reason.
 *
 * Run from the top of the tree (the kernel's path is relative). Skipped if
 * Debian's OpenSBI is not installed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tandem/workload.h"

#define MB (1ULL << 20)
#define KERNEL "build/kernel/kernel.elf"
#define BIOS "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"

#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif

/*
 * A fixed amount of guest work rather than guest seconds: 6 lineages x
 * gens roots, each a fork tree of depth 3. Under TSan the interpreter runs
 * ~30 MIPS: a twentieth of the work.
 */
#ifdef TSAN
#define WORK "secs=0 gens=1"
#else
#define WORK "secs=0 gens=20"
#endif

static bool images_there(void)
{
	if (access(BIOS, R_OK)) {
		print_message("# %s missing (Debian package opensbi): skipped\n", BIOS);
		return false;
	}
	if (access(KERNEL, R_OK))
		fail_msg("%s missing: make guest-kernel (run from the top of the tree)", KERNEL);
	return true;
}

/* 2 VMs x 2 harts, 64 MiB each, over a 64 MiB host: swap is on. */
static struct rv_scenario_config small_config(void)
{
	struct rv_scenario_config cfg;

	rv_scenario_config_default(&cfg);
	cfg.nr_vms = 2;
	cfg.nr_harts = 2;
	cfg.guest_mem = 64 * MB;
	cfg.host_mem = 64 * MB;
	cfg.duration_ns = 1000000000ULL;       /* unused: WORK sets secs=0 */
	cfg.timeout_ns = 240000000000ULL;
	cfg.churn_interval_ms = 10;
	cfg.bios = BIOS;
	cfg.kernel = KERNEL;
	cfg.bootargs = WORK;
	return cfg;
}

static void assert_host_clean(const struct rv_scenario_result *r)
{
	assert_int_equal(r->invariants, 0);
	assert_int_equal(r->frames_in_use, 0);
	assert_int_equal(r->swap_slots_in_use, 0);
	assert_int_equal(r->poison_hits, 0);
}

static void test_defaults_valid(void **state)
{
	struct rv_scenario_config cfg;
	char why[256] = "";

	rv_scenario_config_default(&cfg);
	cfg.bios = BIOS;
	cfg.kernel = KERNEL;
	assert_int_equal(rv_scenario_check_config(&cfg, why, sizeof(why)), 0);
	assert_int_equal(cfg.nr_vms, 2);
	assert_int_equal(cfg.nr_harts, 2);
	assert_int_equal(rv_scenario_swap_bytes(&cfg), 0);
	cfg.host_mem = 64 * MB;
	assert_true(rv_scenario_swap_bytes(&cfg) >= 2 * cfg.guest_mem);
}

static void test_overcommitted_ok(void **state)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r = calloc(1, sizeof(*r));

	if (!images_there()) {
		free(r);
		skip();
	}
	assert_non_null(r);
	assert_int_equal(rv_scenario_run(&cfg, r), 0);
	print_message("# %.2f s, %llu instructions, swap in %llu out %llu, faults %llu, "
		      "invalidations %llu: %s\n", r->elapsed_s, (unsigned long long)r->instret,
		      (unsigned long long)r->host.events[PSWPIN],
		      (unsigned long long)r->host.events[PSWPOUT],
		      (unsigned long long)r->kvm.faults,
		      (unsigned long long)r->kvm.invalidations, r->verdict);
	for (unsigned int i = 0; i < cfg.nr_vms; i++)
		print_message("# vm%u: %s\n", i, r->vm[i].kernel_line);
	assert_true(r->ok);
	assert_string_equal(r->verdict, "OK");
	assert_true(r->swap_bytes > 0);
	for (unsigned int i = 0; i < cfg.nr_vms; i++) {
		const struct rv_scenario_vm_result *v = &r->vm[i];

		assert_true(v->ok);
		assert_true(v->kernel.seen);
		assert_true(v->kernel.ok);
		assert_int_equal(v->kernel.vm, i);
		assert_int_equal(v->kernel.harts, cfg.nr_harts);
		assert_int_equal(v->kernel.failures, 0);
		assert_true(v->kernel.procs > 1);
		assert_true(v->kernel.cow > 0);
		assert_non_null(strstr(v->kernel_line, "kernel: OK"));
		assert_int_equal(v->exit_status, 0);
		assert_true(v->instret > 0);
		assert_true(v->churn_ops > 0);
	}
	/* The host paged guest memory out and the guests paged it back. */
	assert_true(r->host.events[PSWPOUT] > 0);
	assert_true(r->host.events[PSWPIN] > 0);
	assert_host_clean(r);
	free(r);
}

/* One kernel breaks copy-on-write on purpose: its run fails, by name; the
 * other's does not; the host is still whole afterwards. */
static void test_kernel_failure_named(void **state)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r = calloc(1, sizeof(*r));

	if (!images_there()) {
		free(r);
		skip();
	}
	assert_non_null(r);
	cfg.vm_bootargs[1] = "break=cow";
	assert_int_equal(rv_scenario_run(&cfg, r), 0);
	print_message("# verdict: %s\n", r->verdict);
	for (unsigned int j = 0; j < r->vm[1].nr_fail_lines; j++)
		print_message("# vm1: %s\n", r->vm[1].fail_lines[j]);
	assert_false(r->ok);
	assert_true(r->vm[0].ok);
	assert_false(r->vm[1].ok);
	assert_true(r->vm[1].kernel.seen);
	assert_false(r->vm[1].kernel.ok);
	assert_true(r->vm[1].kernel.failures > 0);
	assert_true(r->vm[1].nr_fail_lines > 0);
	assert_non_null(strstr(r->verdict, "vm1: kernel: FAILED"));
	assert_null(strstr(r->verdict, "vm0"));
	assert_host_clean(r);
	free(r);
}

static void test_bad_config(void **state)
{
	static const struct {
		const char *what;
		struct rv_scenario_config cfg;
		const char *why;
	} bad[] = {
		{ "no VMs", { .nr_vms = 0, .nr_harts = 1, .guest_mem = 64 * MB,
			      .duration_ns = 1, .bios = BIOS, .kernel = KERNEL },
		  "VMs: 0 is out of range" },
		{ "too many harts", { .nr_vms = 1, .nr_harts = 65, .guest_mem = 64 * MB,
				      .duration_ns = 1, .bios = BIOS, .kernel = KERNEL },
		  "harts per VM: 65 is out of range (1..64)" },
		{ "RAM not 2M", { .nr_vms = 1, .nr_harts = 1, .guest_mem = 65 * MB,
				  .duration_ns = 1, .bios = BIOS, .kernel = KERNEL },
		  "not a multiple of 2M in 40M..2G" },
		{ "RAM too small for OpenSBI", { .nr_vms = 1, .nr_harts = 1, .guest_mem = 32 * MB,
						 .duration_ns = 1, .bios = BIOS, .kernel = KERNEL },
		  "not a multiple of 2M in 40M..2G" },
		{ "RAM too large", { .nr_vms = 1, .nr_harts = 1, .guest_mem = 4096 * MB,
				     .duration_ns = 1, .bios = BIOS, .kernel = KERNEL },
		  "not a multiple of 2M in 40M..2G" },
		{ "no kernel", { .nr_vms = 1, .nr_harts = 1, .guest_mem = 64 * MB,
				 .duration_ns = 1, .bios = BIOS },
		  "no kernel image given" },
		{ "host too small without swap",
		  { .nr_vms = 2, .nr_harts = 1, .guest_mem = 64 * MB, .host_mem = 64 * MB,
		    .swap_bytes = 0, .duration_ns = 1, .bios = BIOS, .kernel = KERNEL },
		  "host memory: 64 MiB is too small for 2 VMs x 64 MiB without swap" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rv_scenario_result *r = calloc(1, sizeof(*r));
		char why[256] = "";

		assert_non_null(r);
		print_message("# %s\n", bad[i].what);
		assert_int_equal(rv_scenario_check_config(&bad[i].cfg, why, sizeof(why)),
				 -EINVAL);
		assert_non_null(strstr(why, bad[i].why));
		assert_int_equal(rv_scenario_run(&bad[i].cfg, r), -EINVAL);
		assert_false(r->ok);
		assert_string_equal(r->verdict, why);
		free(r);
	}
}

/* A missing image is refused before any VM runs, the host torn down. */
static void test_missing_kernel(void **state)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	cfg.kernel = "build/kernel/no-such-kernel.elf";
	assert_int_equal(rv_scenario_run(&cfg, r), -ENOENT);
	assert_false(r->ok);
	print_message("# %s\n", r->verdict);
	assert_non_null(strstr(r->verdict, "vm0"));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_valid),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_missing_kernel),
		cmocka_unit_test(test_overcommitted_ok),
		cmocka_unit_test(test_kernel_failure_named),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
