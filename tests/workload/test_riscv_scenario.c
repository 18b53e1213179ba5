/* SPDX-License-Identifier: MIT */
/*
 * test_riscv_scenario.c - `tandem run --guest riscv`'s scenario
 * (src/workload/riscv_scenario.c) through its public calls: two RISC-V
 * VMs of two harts running the project's kernel (build/kernel/kernel.elf,
 * `make guest-kernel`) under OpenSBI over a host with half the RAM they
 * have, swapping and churning: both kernels end OK, swap ran both ways,
 * the harts refilled their soft TLBs from the GVA tables and the host's
 * invalidations cleared GVA entries, the host gets every frame back; the
 * same in the flush-all and off GVA modes. A kernel told to break its COW
 * (`break=cow`) makes the verdict FAILED naming that VM and no other, and
 * so does each GVA break on one VM, with the kind of failure it causes:
 * gva-sfence a stale translation (a store after mprotect that did not
 * fault, an unmapped page still visible), gva-zap wrong data or a panic
 * with freed host frames written. Bad configs are refused with a reason.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
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

/* gva-zap's run (one hart) needs swap-out before its work is done: a
 * smaller host under TSan, where the work is 20 times the other runs'
 * (it ends at its first failure, 10-15 s in). A kernel that spins for
 * ever ends at the timeout. */
#ifdef TSAN
#define ZAP_HOST_MEM (24 * MB)
#define ZAP_WORK "secs=0 gens=20"
#define ZAP_TIMEOUT_NS (30 * 1000000000ULL)
#else
#define ZAP_HOST_MEM (48 * MB)
#define ZAP_WORK WORK
#define ZAP_TIMEOUT_NS (10 * 1000000000ULL)
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

/* A result to fill, or the test skipped when the firmware is missing. */
static struct rv_scenario_result *result_or_skip(void)
{
	struct rv_scenario_result *r;

	if (!images_there())
		skip();
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	return r;
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

static void print_result(const struct rv_scenario_result *r)
{
	print_message("# %.2f s, %llu instructions, swap in %llu out %llu, faults %llu, "
		      "invalidations %llu; gva refills %llu misses %llu installs %llu "
		      "zapped %llu leaves %llu nodes, sfence.vma %llu: %s\n", r->elapsed_s,
		      (unsigned long long)r->instret,
		      (unsigned long long)r->host.events[PSWPIN],
		      (unsigned long long)r->host.events[PSWPOUT],
		      (unsigned long long)r->kvm.faults,
		      (unsigned long long)r->kvm.invalidations,
		      (unsigned long long)r->gva.refills, (unsigned long long)r->gva.misses,
		      (unsigned long long)r->gva.installs,
		      (unsigned long long)r->gva.zapped_leaves,
		      (unsigned long long)r->gva.zapped_nodes,
		      (unsigned long long)r->gva.sfence_vma, r->verdict);
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		print_message("# vm%u: %s\n", i, r->vm[i].kernel_line);
		for (unsigned int j = 0; j < r->vm[i].nr_fail_lines; j++)
			print_message("# vm%u: %s\n", i, r->vm[i].fail_lines[j]);
	}
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
	struct rv_scenario_result *r = result_or_skip();

	assert_int_equal(rv_scenario_run(&cfg, r), 0);
	print_result(r);
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
	/* The GVA tables (targeted, the default) served soft-TLB misses, and
	 * the host's invalidations (the churn's forks write-protect, swap-out
	 * unmaps) cleared entries built on the pages they hit. */
	for (unsigned int i = 0; i < cfg.nr_vms; i++) {
		const struct rv_gva_stats *g = &r->vm[i].gva;

		assert_true(g->refills > 0);
		assert_true(g->misses > 0);
		assert_true(g->installs > 0);
		assert_true(g->sfence_vma > 0);
		assert_true(g->zapped_leaves > 0);
		assert_int_equal(g->flush_all, 0);
	}
	assert_int_equal(r->gva.refills, r->vm[0].gva.refills + r->vm[1].gva.refills);
	/* SBI STA (on by default): every hart of every kernel found it, set
	 * its area and read it at its ticks; kvm wrote the areas; the churn's
	 * forks and the reclaim invalidated their caches. */
	for (unsigned int i = 0; i < cfg.nr_vms; i++) {
		const struct rv_scenario_vm_result *v = &r->vm[i];

		assert_int_equal(v->kernel.sta, cfg.nr_harts);
		assert_true(v->kernel.steal_reads > 0);
		assert_int_equal(v->sta.probes, cfg.nr_harts);
		assert_int_equal(v->sta.calls, cfg.nr_harts);
		assert_int_equal(v->sta.errors, 0);
		assert_int_equal(v->sta.enables, cfg.nr_harts);
		assert_int_equal(v->sta.active, cfg.nr_harts);
		assert_true(v->sta.area_writes > v->kernel.steal_reads);
	}
	assert_true(r->sta.gpc_invalidations > 0);
	assert_int_equal(r->sta.area_writes, r->vm[0].sta.area_writes + r->vm[1].sta.area_writes);
	assert_host_clean(r);
	free(r);
}

/* STA off in the machine: the kernels' probes reach OpenSBI, which has
 * none; nothing is written; the run is as good. One VM. */
static void test_sta_off_ok(void **state)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r = result_or_skip();

	cfg.nr_vms = 1;
	cfg.host_mem = 48 * MB;
	cfg.sbi_sta_off = true;
	assert_int_equal(rv_scenario_run(&cfg, r), 0);
	print_result(r);
	assert_true(r->ok);
	assert_true(r->vm[0].kernel.seen);
	assert_int_equal(r->vm[0].kernel.sta, 0);
	assert_int_equal(r->vm[0].kernel.steal_reads, 0);
	assert_int_equal(r->sta.probes, 0);
	assert_int_equal(r->sta.calls, 0);
	assert_int_equal(r->sta.area_writes, 0);
	assert_host_clean(r);
	free(r);
}

/* The other GVA modes end OK too: flush-all empties every table at each
 * host zap (flush_all counts them, no entry is zapped one by one); off
 * builds none (every soft-TLB miss is a walk). One VM, half the work. */
static void run_gva_mode(enum kvm_gva_mode mode)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r = result_or_skip();

	cfg.nr_vms = 1;
	cfg.host_mem = 48 * MB;
	cfg.gva = mode;
	assert_int_equal(rv_scenario_run(&cfg, r), 0);
	print_result(r);
	assert_true(r->ok);
	assert_true(r->vm[0].kernel.ok);
	assert_true(r->vm[0].kernel.procs > 1);
	assert_true(r->gva.misses > 0);
	assert_int_equal(r->gva.zapped_leaves, 0);
	assert_int_equal(r->gva.zapped_nodes, 0);
	if (mode == KVM_GVA_FLUSH_ALL) {
		assert_true(r->gva.refills > 0);
		assert_true(r->gva.installs > 0);
		assert_true(r->gva.flush_all > 0);
	} else {
		assert_int_equal(r->gva.refills, 0);
		assert_int_equal(r->gva.installs, 0);
	}
	assert_host_clean(r);
	free(r);
}

static void test_gva_flush_all_ok(void **state)
{
	run_gva_mode(KVM_GVA_FLUSH_ALL);
}

static void test_gva_off_ok(void **state)
{
	run_gva_mode(KVM_GVA_OFF);
}

/* One kernel breaks copy-on-write on purpose: its run fails, by name; the
 * other's does not; the host is still whole afterwards. */
static void test_kernel_failure_named(void **state)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r = result_or_skip();

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
	/* First another process's stamps in a page (then also init's copies
	 * overwritten, processes killed, pages leaked). */
	assert_int_equal(r->vm[1].fail_kind, RV_FAIL_WRONG_DATA);
	assert_true(r->vm[1].fail_count[RV_FAIL_WRONG_DATA] > 0);
	assert_non_null(strstr(r->verdict, "vm1: kernel: FAILED: wrong data x"));
	assert_int_equal(r->vm[0].fail_kinds, 0);
	assert_host_clean(r);
	free(r);
}

/*
 * VM 1's targeted sfence.vma leaves its GVA entries in place: its kernel's
 * probes find a store after mprotect(PROT_READ), or a load after munmap,
 * that did not fault, and fresh mappings that show the unmapped page's
 * stamps -- a stale translation, first -- and pages with another
 * process's stamps (wrong data), nothing worse: a stale entry maps a frame
 * the guest still owns. VM 0 is OK and the host whole: the host's own
 * invalidations still reach the tables.
 */
static void test_break_gva_sfence(void **state)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r = result_or_skip();

	cfg.vm_breaks[1] = KVM_BREAK_GVA_SFENCE;
	assert_int_equal(rv_scenario_run(&cfg, r), 0);
	print_result(r);
	assert_false(r->ok);
	assert_true(r->vm[0].ok);
	assert_false(r->vm[1].ok);
	assert_int_equal(r->vm[1].breaks, KVM_BREAK_GVA_SFENCE);
	assert_true(r->vm[1].kernel.seen);
	assert_false(r->vm[1].kernel.ok);
	assert_true(r->vm[1].kernel.failures > 0);
	assert_int_equal(r->vm[1].fail_kind, RV_FAIL_STALE_TRANSLATION);
	assert_true(r->vm[1].fail_count[RV_FAIL_STALE_TRANSLATION] > 0);
	/* Wrong data too, no worse: a parent's stale writable entry after
	 * fork's write protection writes the page its child shares. */
	assert_int_equal(r->vm[1].fail_kinds & ~(1u << RV_FAIL_STALE_TRANSLATION |
						   1u << RV_FAIL_WRONG_DATA), 0);
	assert_non_null(strstr(r->verdict, "vm1: kernel: FAILED: stale translation x"));
	assert_true(strstr(r->verdict, "did not fault") || strstr(r->verdict, "fresh mmap"));
	assert_null(strstr(r->verdict, "vm0"));
	/* The break: no fence with an address reached VM 1's tables. */
	assert_int_equal(r->vm[1].gva.sfence_zaps, 0);
	assert_true(r->vm[0].gva.sfence_zaps > 0);
	assert_host_clean(r);
	free(r);
}

/*
 * Host invalidations do not reach the GVA tables: after a swap-out the
 * hart goes on using the frame the host took back (debug builds fill it
 * with 0x6b), and the kernel's own memory goes first: it panics (a trap
 * at 0x6b6b..., "bad page"), or finds wrong data or a process killed, or
 * it never ends (a trap taken for ever through a trap vector read from a
 * freed frame: the timeout), or it dies before it can say anything (the
 * firmware's own fatal-trap path ends the machine through the test device:
 * no report, a failure status).
 * Never a stale translation alone: that is what gva-sfence shows.
 *
 * One VM of one hart, so that no other guest owns the frames it writes;
 * no churn, so that the host allocates no page tables for forks from them
 * (with forks the host itself may be corrupted, as by --break=zap in the
 * C guests' runs); the host reclaims under its own pressure.
 */
static void test_break_gva_zap(void **state)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r = result_or_skip();
	const unsigned int memory_kinds = 1u << RV_FAIL_PANIC | 1u << RV_FAIL_WRONG_DATA |
					  1u << RV_FAIL_KILLED | 1u << RV_FAIL_TIMEOUT |
					  1u << RV_FAIL_NO_REPORT;

	cfg.nr_vms = 1;
	cfg.nr_harts = 1;
	cfg.host_mem = ZAP_HOST_MEM;
	cfg.churn_interval_ms = 0;
	cfg.bootargs = ZAP_WORK;
	cfg.timeout_ns = ZAP_TIMEOUT_NS;
	cfg.breaks = KVM_BREAK_GVA_ZAP;
	assert_int_equal(rv_scenario_run(&cfg, r), 0);
	print_result(r);
	print_message("# kinds %#x, first %s; freed frames written %llu\n", r->vm[0].fail_kinds,
		      rv_fail_kind_name(r->vm[0].fail_kind), (unsigned long long)r->poison_hits);
	assert_false(r->ok);
	assert_false(r->vm[0].ok);
	assert_int_equal(r->vm[0].breaks, KVM_BREAK_GVA_ZAP);
	assert_non_null(strstr(r->verdict, "vm0: "));
	/* The host reclaimed, and nothing reached the GVA tables. */
	assert_true(r->host.events[PSWPOUT] > 0);
	assert_int_equal(r->gva.zapped_leaves, 0);
	assert_int_equal(r->gva.zapped_nodes, 0);
	assert_true(r->vm[0].fail_kinds & memory_kinds);
	assert_true(r->vm[0].fail_kind == RV_FAIL_PANIC ||
		    r->vm[0].fail_kind == RV_FAIL_WRONG_DATA ||
		    r->vm[0].fail_kind == RV_FAIL_KILLED || r->vm[0].fail_kind == RV_FAIL_TIMEOUT ||
		    r->vm[0].fail_kind == RV_FAIL_NO_REPORT);
	/* No report is only a memory kind when the machine says it failed. */
	if (r->vm[0].fail_kind == RV_FAIL_NO_REPORT)
		assert_int_not_equal(r->vm[0].exit_status, 0);
	assert_int_equal(r->vm[0].fail_kinds & ~(memory_kinds | 1u << RV_FAIL_STALE_TRANSLATION |
						   1u << RV_FAIL_LEAK | 1u << RV_FAIL_OTHER), 0);
	/* The host's structures are whole: only guest data went to freed frames. */
	assert_int_equal(r->invariants, 0);
	assert_int_equal(r->frames_in_use, 0);
	assert_int_equal(r->swap_slots_in_use, 0);
	free(r);
}

/* --break=gpc-request on one VM: an invalidated STA cache sends its hart
 * no request, so the hart goes on writing the frame the host took back
 * (COW-broken by the churn's fork, or swapped out and freed; a debug
 * build's host counts the writes into freed frames: poison_count_only).
 * The kernel sees its area stop moving (steal), or the frame's next owner
 * -- another of its pages -- written (wrong data, a panic). The frame's
 * next owner may be the other VM's page (one host, one allocator): that VM
 * may fail too, never of steal. Or it may be a host page-table page, and
 * the host dies of a BUG on the PTE it finds (SIGABRT): the run goes in a
 * child process. Under TSan the stale writes are data races, reported. */
static void test_break_gpc_request(void **state)
{
	struct rv_scenario_config cfg = small_config();
	struct rv_scenario_result *r;
	const unsigned int kinds = 1u << RV_FAIL_STEAL | 1u << RV_FAIL_WRONG_DATA |
				   1u << RV_FAIL_PANIC;
	const unsigned int also = 1u << RV_FAIL_STALE_TRANSLATION | 1u << RV_FAIL_KILLED |
				  1u << RV_FAIL_LEAK | 1u << RV_FAIL_OTHER |
				  1u << RV_FAIL_TIMEOUT | 1u << RV_FAIL_NO_REPORT;
	int status;
	pid_t pid;

	if (!images_there())
		skip();
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(r != MAP_FAILED);
	cfg.timeout_ns = ZAP_TIMEOUT_NS;
	cfg.vm_breaks[1] = KVM_BREAK_GPC_REQUEST;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(rv_scenario_run(&cfg, r) == 0 ? 0 : 2);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status)) {
		print_message("# the host died of signal %d (a host page-table page written "
			      "through the stale cache)\n", WTERMSIG(status));
		assert_int_equal(WTERMSIG(status), SIGABRT);
		munmap(r, sizeof(*r));
		return;
	}
	assert_true(WIFEXITED(status));
#ifdef TSAN
	/* TSan sees the hart's stale writes race with the host's own use of
	 * the frame (swap-out reading it, its next owner writing it) and
	 * makes the child exit with its exitcode. */
	if (WEXITSTATUS(status) == 66) {
		print_message("# ThreadSanitizer reported the stale writes' races\n");
		munmap(r, sizeof(*r));
		return;
	}
#endif
	assert_int_equal(WEXITSTATUS(status), 0);
	print_result(r);
	print_message("# kinds %#x, first %s; freed frames written %llu\n", r->vm[1].fail_kinds,
		      rv_fail_kind_name(r->vm[1].fail_kind), (unsigned long long)r->poison_hits);
	assert_false(r->ok);
	assert_false(r->vm[1].ok);
	assert_int_equal(r->vm[1].breaks, KVM_BREAK_GPC_REQUEST);
	assert_int_equal(r->vm[0].fail_kinds & ~(kinds | also), 0);
	assert_false(r->vm[0].fail_kinds & 1u << RV_FAIL_STEAL);
	assert_non_null(strstr(r->verdict, "vm1: "));
	assert_true(r->vm[1].sta.gpc_invalidations > 0);
	assert_true(r->vm[1].fail_kinds & kinds);
	assert_int_equal(r->vm[1].fail_kinds & ~(kinds | also), 0);
	assert_int_equal(r->frames_in_use, 0);
	munmap(r, sizeof(*r));
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
		cmocka_unit_test(test_gva_flush_all_ok),
		cmocka_unit_test(test_gva_off_ok),
		cmocka_unit_test(test_break_gva_sfence),
		cmocka_unit_test(test_break_gva_zap),
		cmocka_unit_test(test_sta_off_ok),
		cmocka_unit_test(test_break_gpc_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
