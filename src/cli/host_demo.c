/* SPDX-License-Identifier: MIT */
/*
 * host_demo.c - `tandem host-demo`: threads act as processes on the primary
 * MMU under a recording MMU notifier, and every byte and notifier call is
 * checked. The scenario is src/workload/host_scenario.c; this file parses
 * options and prints its result.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "tandem/workload.h"
#include "base/compiler.h"
#include "base/xalloc.h"

struct demo_opts {
	struct host_scenario_config cfg;
	bool json;
};

static const struct {
	const char *name;
	enum host_break bit;
} break_names[] = {
	{ "munmap-notify", HOST_BREAK_MUNMAP_NOTIFY },
	{ "dontneed-notify", HOST_BREAK_DONTNEED_NOTIFY },
	{ "mprotect-notify", HOST_BREAK_MPROTECT_NOTIFY },
	{ "cow-notify", HOST_BREAK_COW_NOTIFY },
	{ "fork-notify", HOST_BREAK_FORK_NOTIFY },
};

/* The host events the summary shows. */
static const enum vm_event_item shown[] = {
	PGFAULT, PGFAULT_ZERO, PGFAULT_ZERO_PAGE, COW_BREAK, COW_REUSE,
	PGUNMAP, GUP_CALLS, PGALLOC, PGFREE,
};

void host_demo_usage(FILE *f)
{
	fprintf(f,
		"usage: tandem host-demo [options]\n"
		"\nThreads act as processes on the primary MMU: mmap, write, fork (COW),\n"
		"MADV_DONTNEED, mprotect, munmap, exit; every page is read back and\n"
		"checked, every notifier call counted. Ends with 'verification: OK'\n"
		"(exit 0) or 'verification: FAILED: <what>' (exit 1).\n"
		"\noptions:\n"
		"  -m, --host-mem SIZE    host RAM, K/M/G suffix (default 256M; 16M..64G)\n"
		"  -p, --procs N          processes, one thread each (default 4; 1..%d)\n"
		"  -d, --duration SECS    run time, e.g. 3, 0.5, 250ms (default 3)\n"
		"  -i, --iterations N     iterations per process; without --duration,\n"
		"                         no time limit. A given --seed replays the same\n"
		"                         operations (counts that hang on thread timing,\n"
		"                         e.g. which side of a fork copies, still vary)\n"
		"  -s, --seed N           random seed (default 1)\n"
		"      --json             print the summary as JSON\n"
		"      --break WHAT       testing the checks: make the host skip one class\n"
		"                         of notifier call (munmap-notify, dontneed-notify,\n"
		"                         mprotect-notify, cow-notify, fork-notify); the run\n"
		"                         must then end in 'verification: FAILED'\n"
		"  -h, --help             this text\n", HOST_SCENARIO_MAX_PROCS);
}

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

static int parse_opts(int argc, char **argv, struct demo_opts *o)
{
	static const struct option longopts[] = {
		{ "host-mem", required_argument, NULL, 'm' },
		{ "procs", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "seed", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "break", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool duration_set = false;
	size_t k;
	uint64_t v;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":m:p:d:i:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_size_arg("host-demo", "host-mem", optarg, HOST_RAM_MIN,
					 HOST_RAM_MAX, &o->cfg.host_mem))
				return EXIT_USAGE;
			if (!PAGE_ALIGNED(o->cfg.host_mem)) {
				fprintf(stderr, "tandem host-demo: --host-mem: '%s': not a "
					"multiple of the 4K page size\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'p':
			if (cli_u64_arg("host-demo", "procs", optarg, 1, HOST_SCENARIO_MAX_PROCS, &v))
				return EXIT_USAGE;
			o->cfg.nr_procs = (unsigned int)v;
			break;
		case 'd':
			if (cli_duration_arg("host-demo", "duration", optarg, &o->cfg.duration_ns))
				return EXIT_USAGE;
			duration_set = true;
			break;
		case 'i':
			if (cli_u64_arg("host-demo", "iterations", optarg, 1, UINT64_MAX,
					&o->cfg.iterations))
				return EXIT_USAGE;
			break;
		case 's':
			if (cli_u64_arg("host-demo", "seed", optarg, 0, UINT64_MAX, &o->cfg.seed))
				return EXIT_USAGE;
			break;
		case 'j':
			o->json = true;
			break;
		case 'b':
			for (k = 0; k < ARRAY_SIZE(break_names); k++)
				if (strcmp(optarg, break_names[k].name) == 0)
					break;
			if (k == ARRAY_SIZE(break_names)) {
				fprintf(stderr, "tandem host-demo: --break: '%s': unknown (have:",
					optarg);
				for (k = 0; k < ARRAY_SIZE(break_names); k++)
					fprintf(stderr, " %s", break_names[k].name);
				fprintf(stderr, ")\n");
				return EXIT_USAGE;
			}
			o->cfg.breaks |= break_names[k].bit;
			break;
		case 'h':
			host_demo_usage(stdout);
			return -1;
		default:
			cli_getopt_error("host-demo", c, argv);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tandem host-demo: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (o->cfg.iterations && !duration_set)
		o->cfg.duration_ns = 0;
	return 0;
}

int cmd_host_demo(int argc, char **argv)
{
	struct host_scenario_result *res;
	struct demo_opts o = { 0 };
	int err, status;

	host_scenario_config_default(&o.cfg);
	status = parse_opts(argc, argv, &o);
	if (status)
		return status < 0 ? 0 : status;
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
