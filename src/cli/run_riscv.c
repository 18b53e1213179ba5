/* SPDX-License-Identifier: MIT */
/*
 * run_riscv.c - `tandem run --guest riscv`: prints what
 * rv_scenario_run (src/workload/riscv_scenario.c) did. run.c parses the
 * options. Three progress lines a second (guest MIPS, secondary-MMU rates;
 * GVA tables; memory), then a summary ending `integrity: OK` (exit 0) or
 * `integrity: FAILED: <what>` (exit 1), naming each VM that failed and the
 * kinds of its failures.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/report.h"
#include "tandem/workload.h"
#include "base/compiler.h"
#include "base/xalloc.h"

#define U(x) ((unsigned long long)(x))
#define MIB(pages) ((double)(pages) * PAGE_SIZE / (1 << 20))

#define KREP(m) REPORT_AT(struct rv_kernel_report, m)

/* What each VM's kernel said on its last line; "kernel" in JSON. */
static const struct report_field kernel_fields[] = {
	{ "harts", NULL, REPORT_U64, KREP(harts), REPORT_JSON },
	{ "procs", NULL, REPORT_U64, KREP(procs), REPORT_JSON },
	{ "forks", NULL, REPORT_U64, KREP(forks), REPORT_JSON },
	{ "cow", NULL, REPORT_U64, KREP(cow), REPORT_JSON },
	{ "pgfaults", NULL, REPORT_U64, KREP(pgfaults), REPORT_JSON },
	{ "ctxsw", NULL, REPORT_U64, KREP(ctxsw), REPORT_JSON },
	{ "asid_rollovers", NULL, REPORT_U64, KREP(asid_rollovers), REPORT_JSON },
	{ "sfences", NULL, REPORT_U64, KREP(sfences), REPORT_JSON },
	{ "rfences", NULL, REPORT_U64, KREP(rfences), REPORT_JSON },
	{ "probes", NULL, REPORT_U64, KREP(probes), REPORT_JSON },
	{ "kills", NULL, REPORT_U64, KREP(kills), REPORT_JSON },
	{ "ms", NULL, REPORT_U64, KREP(ms), REPORT_JSON },
	{ "failures", NULL, REPORT_U64, KREP(failures), REPORT_JSON },
	{ "sta", NULL, REPORT_U64, KREP(sta), REPORT_JSON },
	{ "steal_reads", NULL, REPORT_U64, KREP(steal_reads), REPORT_JSON },
	{ "steal_retries", NULL, REPORT_U64, KREP(steal_retries), REPORT_JSON },
	{ "steal_ns", NULL, REPORT_U64, KREP(steal_ns), REPORT_JSON },
};

/* The secondary MMU's table is run.c's (run_kvm_table). */

#define GVA(m) REPORT_AT(struct rv_gva_stats, m)

/* "GVA tables:" in text; "gva", totals and each VM's, in JSON. */
static const struct report_field gva_fields[] = {
	{ "refills", "refills", REPORT_U64, GVA(refills), REPORT_BOTH,
	  .note = "  ({/s}/s; soft-TLB misses served by a GVA table)" },
	{ "misses", "misses", REPORT_U64, GVA(misses), REPORT_BOTH,
	  .note = "  ({/s}/s; full guest page-table walks)" },
	{ "installs", "installs", REPORT_U64, GVA(installs), REPORT_BOTH,
	  .note = "  (skipped {install_skipped}, raced a fence {install_raced})" },
	{ "install_skipped", NULL, REPORT_U64, GVA(install_skipped), REPORT_JSON },
	{ "install_raced", NULL, REPORT_U64, GVA(install_raced), REPORT_JSON },
	{ "sfence_vma", "sfence.vma", REPORT_U64, GVA(sfence_vma), REPORT_BOTH,
	  .note = "  (page zaps {sfence_zaps}, root flushes {root_flushes})" },
	{ "sfence_zaps", NULL, REPORT_U64, GVA(sfence_zaps), REPORT_JSON },
	{ "root_flushes", NULL, REPORT_U64, GVA(root_flushes), REPORT_JSON },
	{ "zapped_leaves", "zapped by the host", REPORT_U64, GVA(zapped_leaves), REPORT_BOTH,
	  .note = " leaves, {zapped_nodes} nodes  (host invalidations; flush-all "
		  "flushes {flush_all})" },
	{ "zapped_nodes", NULL, REPORT_U64, GVA(zapped_nodes), REPORT_JSON },
	{ "flush_all", NULL, REPORT_U64, GVA(flush_all), REPORT_JSON },
	{ "rekeys", "root rekeys", REPORT_U64, GVA(rekeys), REPORT_BOTH,
	  .note = "  (a root reused for another address space)" },
	{ "nodes", "nodes", REPORT_U64, GVA(nodes), REPORT_BOTH, .note = "  at the end" },
};

#define STA(m) REPORT_AT(struct rv_sta_stats, m)

/* "SBI STA:" in text; "sta", totals and each VM's, in JSON. */
static const struct report_field sta_fields[] = {
	{ "probes", "probes", REPORT_U64, STA(probes), REPORT_BOTH,
	  .note = "  (probe_extension(STA) answered by the VMM, beside OpenSBI)" },
	{ "calls", "calls", REPORT_U64, STA(calls), REPORT_BOTH,
	  .note = "  (errors {errors}; areas set {enables}, active at the end {active})" },
	{ "errors", NULL, REPORT_U64, STA(errors), REPORT_JSON },
	{ "enables", NULL, REPORT_U64, STA(enables), REPORT_JSON },
	{ "active", NULL, REPORT_U64, STA(active), REPORT_JSON },
	{ "area_writes", "area writes", REPORT_U64, STA(area_writes), REPORT_BOTH,
	  .note = "  ({/s}/s; at guest entry, through guest-mode gfn_to_pfn caches)" },
	{ "gpc_invalidations", "gpc invalidations", REPORT_U64, STA(gpc_invalidations),
	  REPORT_BOTH, .note = "  (requests {gpc_requests}, waited {gpc_request_waits}, "
			       "refreshes {gpc_refreshes})" },
	{ "gpc_requests", NULL, REPORT_U64, STA(gpc_requests), REPORT_JSON },
	{ "gpc_request_waits", NULL, REPORT_U64, STA(gpc_request_waits), REPORT_JSON },
	{ "gpc_refreshes", NULL, REPORT_U64, STA(gpc_refreshes), REPORT_JSON },
	{ "fork_child_writes", "fork child changed", REPORT_U64, STA(fork_child_writes),
	  REPORT_BOTH, .note = "  (churn forks whose child's copy of an area changed: "
			       "must be 0)" },
};
static const struct report_table sta_table = REPORT_TABLE(sta_fields);

#define RES(m) REPORT_AT(struct rv_scenario_result, m)

/* "memory (host totals; pages):" in text, "memory" in JSON. */
static const struct report_field memory_fields[] = {
	{ "swap_bytes", NULL, REPORT_U64, RES(swap_bytes), REPORT_JSON },
	{ "pswpin", "swapped in", REPORT_U64, RES(host.events[PSWPIN]), REPORT_BOTH,
	  .note = "  ({MiB} MiB)" },
	{ "pswpout", "swapped out", REPORT_U64, RES(host.events[PSWPOUT]), REPORT_BOTH,
	  .note = "  ({MiB} MiB)" },
	{ "pgscan", NULL, REPORT_U64, RES(host.events[PGSCAN]), REPORT_JSON },
	{ "pgsteal", "reclaimed (pgsteal)", REPORT_U64, RES(host.events[PGSTEAL]),
	  REPORT_BOTH, .note = "  (scanned {pgscan})" },
	{ "kswapd_wakeups", "kswapd wakeups", REPORT_U64, RES(host.events[KSWAPD_WAKEUP]),
	  REPORT_BOTH },
	{ "allocstalls", "direct reclaims", REPORT_U64, RES(host.events[ALLOCSTALL]),
	  REPORT_BOTH },
	{ "cow_breaks", "COW breaks", REPORT_U64, RES(host.events[COW_BREAK]), REPORT_BOTH,
	  .note = "  (guest writes after the churn's forks)" },
};

/* "host (after teardown):" in text; top-level members in JSON. */
static const struct report_field host_fields[] = {
	{ "invariants", "host_check_invariants", REPORT_INT, RES(invariants), REPORT_BOTH,
	  .note = "  (0: OK)" },
	{ "frames_in_use", "frames in use", REPORT_U64, RES(frames_in_use), REPORT_BOTH },
	{ "swap_slots_in_use", "swap slots in use", REPORT_U64, RES(swap_slots_in_use),
	  REPORT_BOTH },
	{ "poison_hits", "poison hits", REPORT_U64, RES(poison_hits), REPORT_BOTH },
};

static const struct report_table kernel_table = REPORT_TABLE(kernel_fields);
static const struct report_table gva_table = REPORT_TABLE(gva_fields);
static const struct report_table memory_table = REPORT_TABLE(memory_fields);
static const struct report_table host_table = REPORT_TABLE(host_fields);

/* Of the soft-TLB misses with paging on, the share a GVA table served. */
static double refilled_pct(double refills, double misses)
{
	return refills + misses > 0 ? 100.0 * refills / (refills + misses) : 0;
}

static void progress(const struct scenario_progress *p, void *arg)
{
	FILE *f = arg;

	fprintf(f, "[%5.1fs] guest MIPS %7.1f (", p->t_s, p->mips);
	for (unsigned int i = 0; i < p->nr_vms; i++)
		fprintf(f, "%svm%u %.1f", i ? " " : "", i, p->vm_mips[i]);
	fprintf(f, ")  faults/s %7s  invalidations/s %6s  retries %5llu  tlb-flushes %6llu\n",
		report_human(p->faults_per_s), report_human(p->invalidations_per_s),
		U(p->retries), U(p->tlb_flushes));
	fprintf(f, "[%5.1fs] gva: refills/s %7s  misses/s %7s (%4.1f%% refilled)  "
		"sfence.vma %6llu  zapped by host %5llu leaves %4llu nodes\n", p->t_s,
		report_human(p->gva_refills_per_s), report_human(p->gva_misses_per_s),
		refilled_pct(p->gva_refills_per_s, p->gva_misses_per_s), U(p->sfence_vma),
		U(p->gva_zapped_leaves), U(p->gva_zapped_nodes));
	run_progress_memory(f, p);
	fflush(f);
}

static const char *break_list(unsigned int breaks)
{
	static char buf[64];

	run_break_names(breaks, buf, sizeof(buf));
	return buf;
}

static double mips(uint64_t instret, double s)
{
	return s > 0 ? (double)instret / s / 1e6 : 0;
}

static void print_text(const struct rv_scenario_config *cfg,
		       const struct rv_scenario_result *r)
{
	const struct report_style st = {
		.indent = 2, .label_width = 22, .value_width = 14, .seconds = r->elapsed_s,
	};
	char brk[64];

	run_break_names(cfg->breaks, brk, sizeof(brk));
	printf("tandem run --guest riscv: %u VMs x %u harts, %llu MiB guest RAM each, host "
	       "%llu MiB, swap %llu MiB, churn %s", cfg->nr_vms, cfg->nr_harts,
	       U(cfg->guest_mem >> 20), U(r->host_mem >> 20), U(r->swap_bytes >> 20),
	       cfg->churn_interval_ms ? "fork/reclaim every " : "none");
	if (cfg->churn_interval_ms)
		printf("%u ms", cfg->churn_interval_ms);
	printf(", gva %s%s%s, secs=%llu%s%s\n", kvm_gva_mode_name(cfg->gva),
	       cfg->breaks ? ", BREAK " : "", cfg->breaks ? brk : "",
	       U((cfg->duration_ns + 999999999) / 1000000000),
	       cfg->bootargs ? ", bootargs + " : "", cfg->bootargs ? cfg->bootargs : "");
	printf("  kernel %s, bios %s\n", cfg->kernel, cfg->bios);
	printf("  ran %.2f s (setup %.2f s, teardown %.2f s); %llu instructions, %.1f MIPS\n",
	       r->elapsed_s, r->setup_s, r->teardown_s, U(r->instret),
	       mips(r->instret, r->elapsed_s));
	printf("guests (each kernel's last line):\n");
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		const struct rv_scenario_vm_result *v = &r->vm[i];
		const struct rv_kernel_report *k = &v->kernel;

		printf("  vm%-2u %-6s procs %llu  forks %llu  cow %llu  pgfaults %llu  ctxsw %llu  "
		       "asid-rollovers %llu  sfences %llu  rfences %llu  probes %llu  "
		       "failures %llu  (%.2f s, %.1f MIPS, %s)\n"
		       "       steal: harts with STA %llu  reads %llu  torn %llu  steal %.1f ms\n", i,
		       !k->seen ? "NONE" : k->ok ? "OK" : "FAILED", U(k->procs), U(k->forks),
		       U(k->cow), U(k->pgfaults), U(k->ctxsw), U(k->asid_rollovers),
		       U(k->sfences), U(k->rfences), U(k->probes), U(k->failures),
		       v->ended_at_s, mips(v->instret, v->ended_at_s), v->exit_name, U(k->sta),
		       U(k->steal_reads), U(k->steal_retries), (double)k->steal_ns / 1e6);
	}
	printf("secondary MMU:\n");
	report_text(stdout, &st, &run_kvm_table, &r->kvm);
	printf("GVA tables (%s; %.1f%% of soft-TLB misses refilled):\n",
	       kvm_gva_mode_name(cfg->gva),
	       refilled_pct((double)r->gva.refills, (double)r->gva.misses));
	report_text(stdout, &st, &gva_table, &r->gva);
	printf("SBI STA (steal time; %s):\n", cfg->sbi_sta_off ? "off" : "on");
	report_text(stdout, &st, &sta_table, &r->sta);
	printf("per VM:\n");
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		const struct rv_scenario_vm_result *v = &r->vm[i];

		printf("  vm%-2u instructions %s  exceptions %s  interrupts %s  page walks %s  "
		       "faults %s  invalidations %s  churn %llu  final rss %.1f MiB, swapped "
		       "%.1f MiB\n", i, report_human((double)v->instret),
		       report_human((double)v->exceptions), report_human((double)v->interrupts),
		       report_human((double)v->ptw_walks),
		       report_human((double)(v->kvm.faults + v->kvm.fast_faults)),
		       report_human((double)v->kvm.invalidations), U(v->churn_ops),
		       MIB(v->rss_pages), MIB(v->swap_pages));
		printf("       gva refills %s  misses %s  installs %s  sfence.vma %s  zapped by "
		       "host %s leaves %s nodes%s%s\n", report_human((double)v->gva.refills),
		       report_human((double)v->gva.misses), report_human((double)v->gva.installs),
		       report_human((double)v->gva.sfence_vma),
		       report_human((double)v->gva.zapped_leaves),
		       report_human((double)v->gva.zapped_nodes), v->breaks ? "  BREAK " : "",
		       v->breaks ? break_list(v->breaks) : "");
	}
	printf("memory (host totals; pages):\n");
	report_text(stdout, &st, &memory_table, r);
	printf("host (after teardown):\n");
	report_text(stdout, &st, &host_table, r);
	if (!r->ok) {
		printf("failures:\n");
		for (unsigned int i = 0; i < r->nr_vms; i++) {
			const struct rv_scenario_vm_result *v = &r->vm[i];

			if (v->ok)
				continue;
			printf("  %s\n", v->verdict);
			printf("    vm%u kind: %s", i, rv_fail_kind_name(v->fail_kind));
			for (int k = 0; k < RV_NR_FAIL_KINDS; k++)
				if ((v->fail_kinds & (1u << k)) && k != (int)v->fail_kind)
					printf(", %s", rv_fail_kind_name(k));
			printf("\n");
			for (unsigned int j = 0; j < v->nr_fail_lines; j++)
				printf("    vm%u console: %s\n", i, v->fail_lines[j]);
			if (v->kernel_line[0])
				printf("    vm%u console: %s\n", i, v->kernel_line);
		}
	}
	if (r->ok)
		printf("integrity: OK\n");
	else
		printf("integrity: FAILED: %s\n", r->verdict);
}

static void print_json(const struct rv_scenario_config *cfg,
		       const struct rv_scenario_result *r)
{
	printf("{\"command\": \"run\", \"config\": {\"guest\": \"riscv\", \"vms\": %u, "
	       "\"harts\": %u, \"guest_mem\": %llu, \"host_mem\": %llu, \"swap_bytes\": %llu, "
	       "\"duration_s\": %.3f, \"churn_interval_ms\": %u, \"kernel\": ", cfg->nr_vms,
	       cfg->nr_harts, U(cfg->guest_mem), U(r->host_mem), U(r->swap_bytes),
	       (double)cfg->duration_ns / 1e9, cfg->churn_interval_ms);
	json_print_string(stdout, cfg->kernel);
	printf(", \"bios\": ");
	json_print_string(stdout, cfg->bios);
	printf(", \"bootargs\": ");
	json_print_string(stdout, cfg->bootargs ? cfg->bootargs : "");
	printf(", \"gva\": \"%s\", \"break\": \"%s\"", kvm_gva_mode_name(cfg->gva),
	       break_list(cfg->breaks));
	printf("},\n \"elapsed_s\": %.3f, \"setup_s\": %.3f, \"teardown_s\": %.3f, "
	       "\"instret\": %llu,\n \"kvm\": {", r->elapsed_s, r->setup_s, r->teardown_s,
	       U(r->instret));
	report_json(stdout, &run_kvm_table, &r->kvm);
	printf("},\n \"gva\": {");
	report_json(stdout, &gva_table, &r->gva);
	printf("},\n \"sta\": {");
	report_json(stdout, &sta_table, &r->sta);
	printf("},\n \"vms\": [");
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		const struct rv_scenario_vm_result *v = &r->vm[i];

		printf("%s\n  {\"vm\": %u, \"ok\": %s, \"verdict\": ", i ? "," : "", i,
		       v->ok ? "true" : "false");
		json_print_string(stdout, v->verdict);
		printf(", \"exit\": ");
		json_print_string(stdout, v->exit_name);
		printf(", \"exit_status\": %d, \"ended_at_s\": %.3f, \"instret\": %llu, "
		       "\"exceptions\": %llu, \"interrupts\": %llu, \"ptw_walks\": %llu, "
		       "\"churn_ops\": %llu, \"rss_pages\": %llu, \"swap_pages\": %llu, "
		       "\"console_bytes\": %llu, \"kernel_line\": ", v->exit_status,
		       v->ended_at_s, U(v->instret), U(v->exceptions), U(v->interrupts),
		       U(v->ptw_walks), U(v->churn_ops), U(v->rss_pages), U(v->swap_pages),
		       U(v->console_bytes));
		json_print_string(stdout, v->kernel_line);
		printf(", \"kernel\": {\"ok\": %s, ", v->kernel.seen && v->kernel.ok ? "true" :
		       "false");
		report_json(stdout, &kernel_table, &v->kernel);
		printf("}, \"kvm\": {");
		report_json(stdout, &run_kvm_table, &v->kvm);
		printf("}, \"gva\": {");
		report_json(stdout, &gva_table, &v->gva);
		printf("}, \"sta\": {");
		report_json(stdout, &sta_table, &v->sta);
		printf("}, \"break\": \"%s\", \"failure_kind\": ", break_list(v->breaks));
		if (v->ok)
			printf("null");
		else
			printf("\"%s\"", rv_fail_kind_key(v->fail_kind));
		printf(", \"failures\": {");
		for (int k = 0, first = 1; k < RV_NR_FAIL_KINDS; k++) {
			if (!(v->fail_kinds & (1u << k)))
				continue;
			printf("%s\"%s\": %u", first ? "" : ", ", rv_fail_kind_key(k),
			       v->fail_count[k]);
			first = 0;
		}
		printf("}, \"failure_lines\": [");
		for (unsigned int j = 0; j < v->nr_fail_lines; j++) {
			printf("%s", j ? ", " : "");
			json_print_string(stdout, v->fail_lines[j]);
		}
		printf("]}");
	}
	printf("],\n \"memory\": {");
	report_json(stdout, &memory_table, r);
	printf("},\n ");
	report_json(stdout, &host_table, r);
	printf(",\n \"integrity\": \"%s\", \"verdict\": ", r->ok ? "OK" : "FAILED");
	json_print_string(stdout, r->verdict);
	printf("}\n");
}

int run_riscv(struct rv_scenario_config *cfg, bool json, bool quiet)
{
	struct rv_scenario_result *res = xcalloc(1, sizeof(*res));
	int err, status;

	if (!quiet) {
		cfg->progress = progress;
		cfg->progress_arg = json ? stderr : stdout;
	}
	err = rv_scenario_run(cfg, res);
	if (err == -EINVAL || err == -ENOENT || err == -EACCES || err == -E2BIG) {
		fprintf(stderr, "tandem run: %s\n", res->verdict);
		free(res);
		return EXIT_USAGE;
	}
	if (err) {
		fprintf(stderr, "tandem run: could not set up the RISC-V scenario: %s\n",
			res->verdict);
		if (json)
			printf("{\"command\": \"run\", \"integrity\": \"FAILED\", \"verdict\": "
			       "\"setup failed\"}\n");
		else
			printf("integrity: FAILED: setup: %s\n", res->verdict);
		free(res);
		return 1;
	}
	if (json)
		print_json(cfg, res);
	else
		print_text(cfg, res);
	status = res->ok ? 0 : 1;
	free(res);
	return status;
}
