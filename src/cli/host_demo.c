/* SPDX-License-Identifier: MIT */
/*
 * host_demo.c - `tandem host-demo`: threads act as processes on the primary
 * MMU under a recording MMU notifier, and every byte and notifier call is
 * checked. The scenario is src/workload/host_scenario.c; this file parses
 * options and prints its result.
 */
#include <errno.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "cli/opt.h"
#include "cli/report.h"
#include "tandem/workload.h"
#include "base/compiler.h"
#include "base/xalloc.h"

/* ---- options ------------------------------------------------------------ */

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
	return opt_choice_at(break_choices, ARRAY_SIZE(break_choices), i, c);
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

/* ---- summary metrics ----------------------------------------------------- */

#define RES(m) REPORT_AT(struct host_scenario_result, m)

/* What the processes did: the first text lines, top-level JSON members. */
static const struct report_field work_fields[] = {
	{ "address_spaces", "address spaces", REPORT_U64, RES(mms), REPORT_BOTH,
	  .note = " ({forks} of them forked children)" },
	{ "forks", NULL, REPORT_U64, RES(forks), REPORT_JSON },
	{ "iterations", "iterations", REPORT_U64, RES(iterations), REPORT_BOTH },
	{ "pages_verified", "pages verified", REPORT_U64, RES(pages_verified), REPORT_BOTH },
	{ "efault_checks", "-EFAULT checks", REPORT_U64, RES(efault_checks), REPORT_BOTH },
};

/* The host events shown, in this order. */
static const unsigned int shown_events[] = {
	PGFAULT, PGFAULT_ZERO, PGFAULT_ZERO_PAGE, COW_BREAK, COW_REUSE,
	PGUNMAP, GUP_CALLS, PGALLOC, PGFREE,
};

static const char *event_name(unsigned int e)
{
	return vm_event_name(e);
}

/* "host events:" in text, "events" in JSON. */
static const struct report_field event_fields[] = {
	{ "events", NULL, REPORT_U64_ARRAY, RES(host.events), REPORT_BOTH,
	  .nr = ARRAY_SIZE(shown_events), .index = shown_events, .name = event_name },
};

/* The host after every process exited: the last lines before the verdict. */
static const struct report_field end_fields[] = {
	{ "host_check_invariants", "host_check_invariants", REPORT_INT, RES(invariants),
	  REPORT_BOTH },
	{ "host_frames_in_use", "host_frames_in_use", REPORT_U64, RES(frames_in_use),
	  REPORT_BOTH },
};

static const struct report_table work_table = REPORT_TABLE(work_fields);
static const struct report_table event_table = REPORT_TABLE(event_fields);
static const struct report_table end_table = REPORT_TABLE(end_fields);

/* ---- output --------------------------------------------------------------- */

#define U(x) ((unsigned long long)(x))

static void print_text(const struct demo_opts *o, const struct host_scenario_result *r)
{
	static const struct report_style rows = { .indent = 2, .label_width = 19 };
	static const struct report_style end = { .label_width = 21 };
	const struct host_scenario_config *cfg = &o->cfg;

	printf("tandem host-demo: %u procs, host-mem %llu MiB, seed %llu, %.2f s\n",
	       cfg->nr_procs, U(cfg->host_mem >> 20), U(cfg->seed), r->elapsed_s);
	report_text(stdout, &rows, &work_table, r);
	printf("host events:\n");
	report_text(stdout, &rows, &event_table, r);
	printf("notifier calls (invalidate_range start/end, by event):\n");
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		if (r->starts[e] || r->ends[e])
			printf("  %-19s %llu/%llu\n", mmu_notifier_event_name(e),
			       U(r->starts[e]), U(r->ends[e]));
	printf("  change_pte          %llu\n", U(r->change_pte));
	printf("  release             %llu (subscriptions %llu)\n", U(r->releases),
	       U(r->subscriptions));
	printf("frames in use         peak %llu (sampled; %llu KiB), end %llu\n",
	       U(r->peak_frames), U(r->peak_frames * (PAGE_SIZE >> 10)), U(r->frames_in_use));
	printf("page-table pages      peak %llu, end %llu\n", U(r->peak_pgtables),
	       U(r->host.pgtable_pages));
	report_text(stdout, &end, &end_table, r);
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
	       "\"elapsed_s\": %.3f,\n ", cfg->nr_procs, U(cfg->host_mem), U(cfg->seed),
	       (double)cfg->duration_ns / 1e9, U(cfg->iterations), r->elapsed_s);
	report_json(stdout, &work_table, r);
	printf(",\n ");
	report_json(stdout, &event_table, r);
	printf(",\n \"notifier\": {\"subscriptions\": %llu, \"release\": %llu, "
	       "\"change_pte\": %llu, \"events\": {", U(r->subscriptions), U(r->releases),
	       U(r->change_pte));
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		printf("%s\"%s\": {\"starts\": %llu, \"ends\": %llu}", e ? ", " : "",
		       mmu_notifier_event_name(e), U(r->starts[e]), U(r->ends[e]));
	printf("}},\n \"frames_in_use\": {\"peak\": %llu, \"end\": %llu}, "
	       "\"pgtable_pages\": {\"peak\": %llu, \"end\": %llu},\n ",
	       U(r->peak_frames), U(r->frames_in_use), U(r->peak_pgtables),
	       U(r->host.pgtable_pages));
	report_json(stdout, &end_table, r);
	printf(", \"verification\": \"%s\"", r->ok ? "OK" : "FAILED");
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
