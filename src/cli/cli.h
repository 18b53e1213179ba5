/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the pieces of the tandem command share: exit codes, option
 * parsing helpers, the commands, and the bench reporting interface.
 *
 * Exit codes (every command):
 *   0  success (for host-demo: verification OK)
 *   1  the run itself failed (verification failed, a host call failed)
 *   2  usage error (unknown command, option or value); nothing was run
 */
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TANDEM_VERSION "0.1.0"

#define EXIT_USAGE 2

/* --- parse.c ------------------------------------------------------------ */

#define PARSE_NONZERO (1u << 0)  /* reject 0 */

/*
 * "<decimal digits>[K|M|G]" (binary multiples, either case) into bytes.
 * No sign, no spaces, no fraction. Returns 0, or -EINVAL (garbage: *why
 * says what) or -ERANGE (does not fit in 64 bits).
 */
int parse_size(const char *s, unsigned int flags, uint64_t *out, const char **why);
/* Plain decimal unsigned integer; same errors. */
int parse_u64(const char *s, unsigned int flags, uint64_t *out, const char **why);
/* "<decimal>[.<decimal>][s|ms]" (seconds unless "ms") into nanoseconds. */
int parse_duration(const char *s, unsigned int flags, uint64_t *out_ns,
		   const char **why);

/*
 * The same, reporting "tandem <cmd>: --<opt>: '<value>': <why>" on stderr.
 * An integer must also lie in [min, max]. Return 0 or -1.
 */
int cli_size_arg(const char *cmd, const char *opt, const char *val,
		 uint64_t min, uint64_t max, uint64_t *out);
int cli_u64_arg(const char *cmd, const char *opt, const char *val,
		uint64_t min, uint64_t max, uint64_t *out);
int cli_duration_arg(const char *cmd, const char *opt, const char *val,
		     uint64_t *out_ns);
/* "tandem <cmd>: --<opt>: '<val>': <why>" (without the value if val is
 * NULL) on stderr. Returns -1. */
int cli_bad_value(const char *cmd, const char *opt, const char *val, const char *why);
/* Report getopt_long's '?' or ':' (optstring must start with ':'). */
void cli_getopt_error(const char *cmd, int c, char **argv);

/* --- commands ----------------------------------------------------------- */

/* argv[0] is the command name; getopt_long starts at argv[1]. */
int cmd_host_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_boot(int argc, char **argv);
void host_demo_usage(FILE *f);
void bench_usage(FILE *f);
void run_usage(FILE *f);
void boot_usage(FILE *f);

/* --- run.c / run_riscv.c ------------------------------------------------ */

struct scenario_progress;
struct rv_scenario_config;
/* The "memory:" progress line of `tandem run`. */
void run_progress_memory(FILE *f, const struct scenario_progress *p);
/* The --break names of breaks (enum kvm_break), comma-separated; "none". */
void run_break_names(unsigned int breaks, char *buf, size_t len);
/* `tandem run --guest riscv` once run.c has parsed and checked the options:
 * runs cfg, prints progress (unless quiet) and the summary (text or JSON);
 * returns the exit status. */
int run_riscv(struct rv_scenario_config *cfg, bool json, bool quiet);

/* --- benchmarks (bench.c runs them, bench/ holds them) ------------------ */

struct bench_opts {
	uint64_t region_bytes;  /* --size */
	unsigned int repeat;    /* --repeat */
	uint64_t calls;         /* --calls: loop length of per-call measures */
	const char *only;       /* --only: run just this measure (NULL: all) */
	bool json;
};

/*
 * One output line: "bench <bench> <name> key=value ..." in text, or a JSON
 * object with the same keys. A field is a number, an integer, a string or
 * an array of numbers (JSON only; the text line leaves arrays out).
 */
enum bench_field_kind { BF_NUM, BF_INT, BF_STR, BF_SAMPLES };
struct bench_field {
	const char *key;
	enum bench_field_kind kind;
	double num;
	int prec;               /* BF_NUM: decimals in text */
	uint64_t u;
	const char *str;
	const double *samples;
	unsigned int nr_samples;
};
#define BENCH_NUM(k, v)  { .key = (k), .kind = BF_NUM, .num = (v), .prec = 1 }
#define BENCH_RATIO(k, v) { .key = (k), .kind = BF_NUM, .num = (v), .prec = 2 }
#define BENCH_INT(k, v)  { .key = (k), .kind = BF_INT, .u = (v) }
#define BENCH_STR(k, v)  { .key = (k), .kind = BF_STR, .str = (v) }
#define BENCH_SAMPLES(k, a, n) { .key = (k), .kind = BF_SAMPLES, .samples = (a), \
				 .nr_samples = (n) }

void bench_report(const struct bench_opts *o, const char *bench, const char *name,
		  const struct bench_field *fields, unsigned int nr_fields);
/* A "# ..." context line in text mode; nothing in JSON mode. */
void bench_note(const struct bench_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Median of n values (sorts a copy). */
double bench_median(const double *v, unsigned int n);
/* Whether --only lets measure `name` run. */
bool bench_wants(const struct bench_opts *o, const char *name);

/* Each benchmark returns 0, or 1 after printing why it failed. */
int bench_host(const struct bench_opts *o);
int bench_kvm(const struct bench_opts *o);
int bench_idle(const struct bench_opts *o);
int bench_swap(const struct bench_opts *o);
int bench_riscv(const struct bench_opts *o);
int bench_gva(const struct bench_opts *o);
int bench_gpc(const struct bench_opts *o);

/* The secondary MMU's metrics (run.c), printed by both tandem run modes. */
struct report_table;
extern const struct report_table run_kvm_table;

#endif
