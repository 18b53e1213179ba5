/* SPDX-License-Identifier: MIT */
/*
 * host_demo.c - `tandem host-demo`: threads act as processes on the primary
 * MMU under a recording MMU notifier, and every byte and notifier call is
 * checked. The scenario is src/workload/host_scenario.c; this file parses
 * options and prints its result.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/opt.h"
#include "tandem/workload.h"
#include "base/compiler.h"
#include "base/xalloc.h"

struct demo_opts {
	struct host_scenario_config cfg;
	bool json;
};

static const struct opt_choice break_choices[] = {
	{ "munmap-notify", HOST_BREAK_MUNMAP_NOTIFY, NULL },
	{ "dontneed-notify", HOST_BREAK_DONTNEED_NOTIFY, NULL },
	{ "mprotect-notify", HOST_BREAK_MPROTECT_NOTIFY, NULL },
	{ "cow-notify", HOST_BREAK_COW_NOTIFY, NULL },
	{ "fork-notify", HOST_BREAK_FORK_NOTIFY, NULL },
};

static bool break_choice(unsigned int i, struct opt_choice *c)
{
	if (i >= ARRAY_SIZE(break_choices))
		return false;
	*c = break_choices[i];
	return true;
}

#define CFG(m) OPT_FIELD(struct demo_opts, cfg.m)

static const struct opt demo_options[] = {
	{ "host-mem", 'm', OPT_SIZE, CFG(host_mem), .min = HOST_RAM_MIN, .max = HOST_RAM_MAX,
	  .align = PAGE_SIZE, .align_why = "not a multiple of the 4K page size", .arg = "SIZE",
	  .help = "host RAM, K/M/G suffix (default {default}; {range})" },
	{ "procs", 'p', OPT_NUM, CFG(nr_procs), .min = 1, .max = HOST_SCENARIO_MAX_PROCS,
	  .arg = "N", .help = "processes, one thread each (default {default}; {range})" },
	{ "duration", 'd', OPT_DURATION, CFG(duration_ns), .arg = "SECS",
	  .help = "run time, e.g. 3, 0.5, 250ms (default {default})" },
	{ "iterations", 'i', OPT_NUM, CFG(iterations), .min = 1, .arg = "N",
	  .help = "iterations per process; without --duration,\n"
		  "no time limit. A given --seed replays the same\n"
		  "operations (counts that hang on thread timing,\n"
		  "e.g. which side of a fork copies, still vary)" },
	{ "seed", 's', OPT_NUM, CFG(seed), .arg = "N",
	  .help = "random seed (default {default})" },
	{ "json", 0, OPT_FLAG, OPT_FIELD(struct demo_opts, json),
	  .help = "print the summary as JSON" },
	{ "break", 0, OPT_SET, CFG(breaks), .choices = break_choice, .flags = OPT_ADD,
	  .arg = "WHAT",
	  .help = "testing the checks: make the host skip one class\n"
		  "of notifier call (munmap-notify, dontneed-notify,\n"
		  "mprotect-notify, cow-notify, fork-notify); the run\n"
		  "must then end in 'verification: FAILED'" },
	{ "help", 'h', OPT_HELP, .help = "this text" },
};

static const struct opt_table demo_table = {
	.cmd = "host-demo",
	.opts = demo_options,
	.nr = ARRAY_SIZE(demo_options),
	.help_column = 25,
	.usage = host_demo_usage,
};

void host_demo_usage(FILE *f)
{
	struct demo_opts d = { 0 };

	host_scenario_config_default(&d.cfg);
	fprintf(f,
		"usage: tandem host-demo [options]\n"
		"\nThreads act as processes on the primary MMU: mmap, write, fork (COW),\n"
		"MADV_DONTNEED, mprotect, munmap, exit; every page is read back and\n"
		"checked, every notifier call counted. Ends with 'verification: OK'\n"
		"(exit 0) or 'verification: FAILED: <what>' (exit 1).\n"
		"\noptions:\n");
	opt_usage(f, &demo_table, &d);
}

/* The host events the summary shows. */
static const enum vm_event_item shown[] = {
	PGFAULT, PGFAULT_ZERO, PGFAULT_ZERO_PAGE, COW_BREAK, COW_REUSE,
	PGUNMAP, GUP_CALLS, PGALLOC, PGFREE,
};

static void print_text(const struct demo_opts *o, const struct host_scenario_result *r)
{
	const struct host_scenario_config *cfg = &o->cfg;

	printf("tandem host-demo: %u procs, host-mem %llu MiB, seed %llu, %.2f s\n",
	       cfg->nr_procs, (unsigned long long)(cfg->host_mem >> 20),
	       (unsigned long long)cfg->seed, r->elapsed_s);
	printf("  address spaces      %llu (%llu of them forked children)\n",
	       (unsigned long long)r->mms, (unsigned long long)r->forks);
	printf("  iterations          %llu\n", (unsigned long long)r->iterations);
	printf("  pages verified      %llu\n", (unsigned long long)r->pages_verified);
	printf("  -EFAULT checks      %llu\n", (unsigned long long)r->efault_checks);
	printf("host events:\n");
	for (size_t i = 0; i < ARRAY_SIZE(shown); i++)
		printf("  %-19s %llu\n", vm_event_name(shown[i]),
		       (unsigned long long)r->host.events[shown[i]]);
	printf("notifier calls (invalidate_range start/end, by event):\n");
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		if (r->starts[e] || r->ends[e])
			printf("  %-19s %llu/%llu\n", mmu_notifier_event_name(e),
			       (unsigned long long)r->starts[e], (unsigned long long)r->ends[e]);
	printf("  change_pte          %llu\n", (unsigned long long)r->change_pte);
	printf("  release             %llu (subscriptions %llu)\n",
	       (unsigned long long)r->releases, (unsigned long long)r->subscriptions);
	printf("frames in use         peak %llu (sampled; %llu KiB), end %llu\n",
	       (unsigned long long)r->peak_frames,
	       (unsigned long long)(r->peak_frames * (PAGE_SIZE >> 10)),
	       (unsigned long long)r->frames_in_use);
	printf("page-table pages      peak %llu, end %llu\n",
	       (unsigned long long)r->peak_pgtables, (unsigned long long)r->host.pgtable_pages);
	printf("host_check_invariants %d\n", r->invariants);
	printf("host_frames_in_use    %llu\n", (unsigned long long)r->frames_in_use);
	if (r->ok)
		printf("verification: OK\n");
	else
		printf("verification: FAILED: %s\n", r->verdict);
}

static void print_json(const struct demo_opts *o, const struct host_scenario_result *r)
{
	const struct host_scenario_config *cfg = &o->cfg;

	printf("{\"command\": \"host-demo\", \"procs\": %u, \"host_mem\": %llu, "
	       "\"seed\": %llu, \"duration_s\": %.3f, \"iterations_per_proc\": %llu, "
	       "\"elapsed_s\": %.3f,\n", cfg->nr_procs, (unsigned long long)cfg->host_mem,
	       (unsigned long long)cfg->seed, (double)cfg->duration_ns / 1e9,
	       (unsigned long long)cfg->iterations, r->elapsed_s);
	printf(" \"address_spaces\": %llu, \"forks\": %llu, \"iterations\": %llu, "
	       "\"pages_verified\": %llu, \"efault_checks\": %llu,\n",
	       (unsigned long long)r->mms, (unsigned long long)r->forks,
	       (unsigned long long)r->iterations, (unsigned long long)r->pages_verified,
	       (unsigned long long)r->efault_checks);
	printf(" \"events\": {");
	for (size_t i = 0; i < ARRAY_SIZE(shown); i++)
		printf("%s\"%s\": %llu", i ? ", " : "", vm_event_name(shown[i]),
		       (unsigned long long)r->host.events[shown[i]]);
	printf("},\n \"notifier\": {\"subscriptions\": %llu, \"release\": %llu, "
	       "\"change_pte\": %llu, \"events\": {", (unsigned long long)r->subscriptions,
	       (unsigned long long)r->releases, (unsigned long long)r->change_pte);
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		printf("%s\"%s\": {\"starts\": %llu, \"ends\": %llu}", e ? ", " : "",
		       mmu_notifier_event_name(e), (unsigned long long)r->starts[e],
		       (unsigned long long)r->ends[e]);
	printf("}},\n \"frames_in_use\": {\"peak\": %llu, \"end\": %llu}, "
	       "\"pgtable_pages\": {\"peak\": %llu, \"end\": %llu},\n",
	       (unsigned long long)r->peak_frames, (unsigned long long)r->frames_in_use,
	       (unsigned long long)r->peak_pgtables, (unsigned long long)r->host.pgtable_pages);
	printf(" \"host_check_invariants\": %d, \"host_frames_in_use\": %llu, "
	       "\"verification\": \"%s\"", r->invariants, (unsigned long long)r->frames_in_use,
	       r->ok ? "OK" : "FAILED");
	if (!r->ok) {
		printf(", \"failure\": ");
		json_print_string(stdout, r->verdict);
	}
	printf("}\n");
}

int cmd_host_demo(int argc, char **argv)
{
	struct host_scenario_result *res;
	struct demo_opts o = { 0 };
	uint64_t given;
	int err, status;

	host_scenario_config_default(&o.cfg);
	status = opt_parse(&demo_table, argc, argv, &o, &given, NULL);
	if (status)
		return status < 0 ? 0 : status;
	/* --iterations alone: as many as asked, however long they take. */
	if (opt_given(&demo_table, given, "iterations") &&
	    !opt_given(&demo_table, given, "duration"))
		o.cfg.duration_ns = 0;
	res = xcalloc(1, sizeof(*res));
	err = host_scenario_run(&o.cfg, res);
	if (err) {
		fprintf(stderr, "tandem host-demo: %s\n", res->verdict);
		free(res);
		return err == -EINVAL ? EXIT_USAGE : 1;
	}
	if (o.json)
		print_json(&o, res);
	else
		print_text(&o, res);
	status = res->ok ? 0 : 1;
	free(res);
	return status;
}
