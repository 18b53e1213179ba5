/* SPDX-License-Identifier: MIT */
/*
 * bench.c - `tandem bench [<bench>...] [options]`: runs the named
 * benchmarks (all of them without a name) and formats their lines.
 *
 * Every figure is a median over --repeat runs, printed beside a baseline
 * measured in the same run, so a reader can judge it without knowing the
 * machine. Text lines are "bench <bench> <measure> key=value ..."; --json
 * prints one JSON array holding an object per line (with the raw samples).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/opt.h"
#include "cli/report.h"
#include "base/compiler.h"

struct bench {
	const char *name;
	const char *summary;
	int (*run)(const struct bench_opts *o);
};

static const struct bench benches[] = {
	{ "host", "primary MMU: demand-zero and COW faults, munmap, notifier calls",
	  bench_host },
	{ "kvm", "secondary MMU: first touch, soft-TLB hit, DONTNEED + refault, "
	  "2 MiB invalidation", bench_kvm },
	{ "idle", "idle page tracking: a mark and a read-back pass per page, VM and no VM",
	  bench_idle },
	{ "swap", "swap-out (MADV_PAGEOUT) and swap-in MiB/s beside pwrite/pread of "
	  "the same file", bench_swap },
	{ "riscv", "RISC-V guest MIPS (integer loop; random walk, Sv39) and OpenSBI +\n"
	  "         U-Boot time to prompt, beside QEMU TCG (~40 s; needs make bench-guests)",
	  bench_riscv },
	{ "gva", "GVA page tables: refill, full flush, context switch with and without\n"
	  "         ASIDs, guest fork+exit/s, host invalidation; beside --gva off and\n"
	  "         QEMU TCG (~2 min; needs make bench-guests guest-kernel)", bench_gva },
	{ "gpc", "gfn_to_pfn_cache: a write through a valid cache beside the uncached\n"
	  "         path (memslot, GUP, write, put_page) and a plain store; refresh;\n"
	  "         a guest entry writing its run-state area; the clock device's\n"
	  "         atomic-mode miss rate under the default run's churn", bench_gpc },
};
#define NR_BENCHES (sizeof(benches) / sizeof(benches[0]))

static bool json_first = true;  /* no object printed yet */

static const struct opt bench_options[] = {
	{ "repeat", 'r', OPT_NUM, OPT_FIELD(struct bench_opts, repeat), .min = 1, .max = 1000,
	  .arg = "N", .help = "runs per measure; the median is printed (default {default})" },
	/* The host arena holds ~2.5 regions (COW copies). */
	{ "size", 's', OPT_SIZE, OPT_FIELD(struct bench_opts, region_bytes), .min = 64 << 10,
	  .max = 8ULL << 30, .arg = "SIZE",
	  .help = "region per fault/munmap/first-touch/DONTNEED measure,\n"
		  "K/M/G suffix (default {default} = 16384 pages)" },
	{ "calls", 'c', OPT_NUM, OPT_FIELD(struct bench_opts, calls), .min = 1,
	  .max = 1000000000, .arg = "N",
	  .help = "loop length of per-call measures (default {default};\n"
		  "kvm warm_access makes 16 x N accesses per run)" },
	{ "only", 0, OPT_PATH, OPT_FIELD(struct bench_opts, only), .arg = "NAME",
	  .help = "run only the measure NAME (kvm: warm_access,\n"
		  "first_touch, dontneed_refault, invalidate_2m;\n"
		  "riscv: startup, cpu, mem, boot;\n"
		  "gva: refill, flush, ctxsw, fork, inval)" },
	{ "json", 0, OPT_FLAG, OPT_FIELD(struct bench_opts, json),
	  .help = "one JSON array of results instead of text lines" },
	{ "help", 'h', OPT_HELP, .help = "this text" },
};

static const struct opt_table bench_table = {
	.cmd = "bench",
	.opts = bench_options,
	.nr = ARRAY_SIZE(bench_options),
	.help_column = 20,
	.operands = true,       /* the benchmarks to run */
	.usage = bench_usage,
};

static void bench_opts_default(struct bench_opts *o)
{
	*o = (struct bench_opts){ .region_bytes = 64ULL << 20, .repeat = 5, .calls = 1000000 };
}

void bench_usage(FILE *f)
{
	struct bench_opts d;

	bench_opts_default(&d);
	fprintf(f,
		"usage: tandem bench [<bench>...] [options]\n"
		"\nRuns the named benchmarks, or all of them. Each figure is the median\n"
		"of --repeat runs beside a baseline measured in the same run.\n"
		"\nbenchmarks:\n");
	for (size_t i = 0; i < NR_BENCHES; i++)
		fprintf(f, "  %-6s %s\n", benches[i].name, benches[i].summary);
	fprintf(f, "\noptions:\n");
	opt_usage(f, &bench_table, &d);
}

double bench_median(const double *v, unsigned int n)
{
	double tmp[n ? n : 1];

	if (!n)
		return 0;
	memcpy(tmp, v, n * sizeof(*v));
	for (unsigned int i = 1; i < n; i++) {    /* n is small: insertion sort */
		double x = tmp[i];
		unsigned int j = i;

		for (; j > 0 && tmp[j - 1] > x; j--)
			tmp[j] = tmp[j - 1];
		tmp[j] = x;
	}
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

bool bench_wants(const struct bench_opts *o, const char *name)
{
	return !o->only || strcmp(o->only, name) == 0;
}

void bench_note(const struct bench_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (o->json)
		return;
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

void bench_report(const struct bench_opts *o, const char *bench, const char *name,
		  const struct bench_field *fields, unsigned int nr_fields)
{
	if (!o->json) {
		printf("bench %s %s", bench, name);
		for (unsigned int i = 0; i < nr_fields; i++) {
			const struct bench_field *f = &fields[i];

			switch (f->kind) {
			case BF_NUM:
				printf(" %s=%.*f", f->key, f->prec, f->num);
				break;
			case BF_INT:
				printf(" %s=%llu", f->key, (unsigned long long)f->u);
				break;
			case BF_STR:
				printf(" %s=%s", f->key, f->str);
				break;
			case BF_SAMPLES:
				break;
			}
		}
		putchar('\n');
		fflush(stdout);
		return;
	}
	printf("%s  {\"bench\": ", json_first ? "" : ",\n");
	json_first = false;
	json_print_string(stdout, bench);
	printf(", \"measure\": ");
	json_print_string(stdout, name);
	for (unsigned int i = 0; i < nr_fields; i++) {
		const struct bench_field *f = &fields[i];

		printf(", ");
		json_print_string(stdout, f->key);
		printf(": ");
		switch (f->kind) {
		case BF_NUM:
			printf("%.3f", f->num);
			break;
		case BF_INT:
			printf("%llu", (unsigned long long)f->u);
			break;
		case BF_STR:
			json_print_string(stdout, f->str);
			break;
		case BF_SAMPLES:
			putchar('[');
			for (unsigned int j = 0; j < f->nr_samples; j++)
				printf("%s%.3f", j ? ", " : "", f->samples[j]);
			putchar(']');
			break;
		}
	}
	putchar('}');
	fflush(stdout);
}

/* Two cores, shared: say how busy the machine was, to judge the noise. */
static void note_machine(const struct bench_opts *o)
{
	char load[64] = "?";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (!fgets(load, sizeof(load), f))
			strcpy(load, "?");
		fclose(f);
		load[strcspn(load, "\n")] = '\0';
	}
	if (!o->json) {
		bench_note(o, "machine: %ld online CPUs, /proc/loadavg %s",
			   sysconf(_SC_NPROCESSORS_ONLN), load);
		return;
	}
	/* JSON has no comments: the same context as the first object. */
	struct bench_field fields[] = {
		BENCH_INT("online_cpus", (uint64_t)sysconf(_SC_NPROCESSORS_ONLN)),
		BENCH_STR("loadavg", load),
	};
	bench_report(o, "tandem", "machine", fields, ARRAY_SIZE(fields));
}

static const struct bench *find_bench(const char *name)
{
	for (size_t i = 0; i < NR_BENCHES; i++)
		if (strcmp(benches[i].name, name) == 0)
			return &benches[i];
	return NULL;
}

int cmd_bench(int argc, char **argv)
{
	const struct bench *run[NR_BENCHES];
	unsigned int nr_run = 0;
	struct bench_opts o;
	int status, first;

	bench_opts_default(&o);
	status = opt_parse(&bench_table, argc, argv, &o, NULL, &first);
	if (status)
		return status < 0 ? 0 : status;
	/* Check every name before running anything. */
	for (int i = first; i < argc; i++) {
		const struct bench *b = find_bench(argv[i]);

		if (!b) {
			fprintf(stderr, "tandem bench: unknown benchmark '%s' (have:", argv[i]);
			for (size_t j = 0; j < NR_BENCHES; j++)
				fprintf(stderr, " %s", benches[j].name);
			fprintf(stderr, ")\n");
			return EXIT_USAGE;
		}
		bool dup = false;
		for (unsigned int j = 0; j < nr_run; j++)
			dup |= run[j] == b;
		if (!dup)
			run[nr_run++] = b;
	}
	if (nr_run == 0)
		for (size_t i = 0; i < NR_BENCHES; i++)
			run[nr_run++] = &benches[i];

	if (o.json)
		printf("[\n");
	note_machine(&o);
	for (unsigned int i = 0; i < nr_run; i++)
		if (run[i]->run(&o))
			status = 1;
	if (o.json)
		printf("%s]\n", json_first ? "" : "\n");
	return status;
}
