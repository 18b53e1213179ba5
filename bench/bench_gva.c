/* SPDX-License-Identifier: MIT */
/*
 * bench_gva.c - `tandem bench gva`: the GVA page tables (seed 002) as a
 * guest sees them, beside the full two-stage walk they replace (the same
 * tandem with --gva off) and QEMU TCG running the same images, all in the
 * same run, runs alternating between the machines.
 *
 *   measure  guest                             figures (medians of --repeat runs)
 *   refill   refill.elf: random loads over     ns per load with misses; the refill =
 *            8192 pages (the alias region:     that minus ns per load over 64 pages
 *            host frames stay cached), 32x     that hit (same loop); the first touch
 *            the soft TLB; then over 8192      (walk + install); the same over the
 *            frames of their own (spread)      spread region
 *   flush    flush.elf: sfence.vma x0, x0 in   ns per flush (minus the same loop with a
 *            a loop, alone and with loads      nop); with 4 pages loaded after each
 *            from 4 pages after it             (their refills and the code's included)
 *   ctxsw    ctxsw.elf: satp switches among    ns per switch with distinct ASIDs and
 *            8 address spaces, 8 pages each    no fence; with ASID 0 and sfence.vma
 *            loaded per visit                  after each; the same loop without a switch
 *   fork     guests/kernel under OpenSBI       forks per second (forks / ms of its last
 *            fw_jump, fork-heavy bootargs      line): GVA targeted, off, flush-all, QEMU
 *   inval    inval.elf: random loads over the  the host call's median and mean; the
 *            spread region, while the host     guest's ns per load and slowdown beside
 *            swaps single pages out            a run without invalidations; full walks
 *            (MADV_PAGEOUT) every ms           added per invalidation: GVA targeted
 *                                              (a zap clears the page's leaves) and
 *                                              flush-all (a zap empties every table)
 *
 * The guests time their own sections (rdtime, 10 MHz on both machines)
 * and print the ticks on the UART (guests/bench/rv_guest.h): machine start,
 * table building and warm-up are not in the figures. Each guest checks its
 * sum and fails through the test device otherwise, and tandem's instret is
 * checked against the exact counts of bench_guests.h, so a wrong result on
 * either machine fails the bench instead of printing a speed.
 *
 * Targets (printed, not asserted): a GVA refill within 20 ns; a full flush
 * within 0.5 us (QEMU's is ~2.5 us).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "bench_rv.h"
#include "tandem/host.h"
#include "tandem/vmm.h"
#include "base/compiler.h"
#include "base/clock.h"
#include "base/prng.h"
#include "../guests/bench/bench_guests.h"

/* Fork-heavy: short-lived workers (2 rounds over 1 heap page), 12
 * lineages, 3 deep: ~1900 forks. */
#define KERNEL_ARGS     "vm=1 rounds=2 pages=1 lineages=12 depth=3 gens=10"
#define CONSOLE_MAX     (64 << 10)
#define MAX_SECTIONS    8

#define REFILL_TARGET_NS 20.0
#define FLUSH_TARGET_NS  500.0

#define INVAL_INTERVAL_NS (1000 * NSEC_PER_USEC)
#define INVAL_MAX_CALLS   100000
#define INVAL_SWAP_BYTES  (64ULL << 20)
#define INVAL_SEED        7

/* The machines a program runs on: tandem in each GVA mode, QEMU. */
enum machine { M_GVA, M_OFF, M_FLUSH_ALL, M_QEMU, NR_MACHINES };

static const enum kvm_gva_mode machine_gva[] = {
	[M_GVA] = KVM_GVA_TARGETED, [M_OFF] = KVM_GVA_OFF, [M_FLUSH_ALL] = KVM_GVA_FLUSH_ALL,
};

/* The machines of refill, flush and ctxsw, in the order they run. */
static const enum machine three[] = { M_GVA, M_OFF, M_QEMU };

struct gva_bench {
	struct rvb_env env;
	const struct bench_opts *o;
	bool q;                         /* QEMU is there */
};

static const char *target_word(bool met)
{
	return met ? "met" : "not met";
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of n values (sorts them), for lists too long for bench_median. */
static double median_sort(double *v, unsigned int n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* What a run leaves besides its console: tandem's counters, and the share
 * of the run's wall time this process (or QEMU, a child) had a CPU: well
 * below 1 on a busy machine, where every wall-clock figure grows by about
 * its inverse. */
struct run_out {
	struct virt_stats vs;
	struct kvm_stats ks;
	double cpu_share;
};

/* CPU seconds used by this process and its reaped children. */
static double cpu_seconds(void)
{
	struct rusage self, kids;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
			kids.ru_stime.tv_sec) +
	       (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
			kids.ru_stime.tv_usec) / 1e6;
}

/*
 * Run base on machine m with its console captured: *console (the caller
 * frees it), what else it left in *out, hooks beside a tandem guest. -1
 * after saying why.
 */
static int run_console(const struct gva_bench *gb, const struct rvb_config *base,
		       enum machine m, const struct rvb_hooks *hooks, struct run_out *out,
		       char **console)
{
	struct rvb_config c = *base;
	double sec, cpu0 = cpu_seconds();
	int fd, r;

	*console = NULL;
	memset(out, 0, sizeof(*out));
	fd = rvb_console_open(&gb->env);
	if (fd < 0)
		return -1;
	c.out_fd = fd;
	if (m == M_QEMU) {
		r = rvb_qemu_run(&gb->env, &c, &sec);
	} else {
		c.gva = machine_gva[m];
		r = rvb_tandem_run(&gb->env, &c, hooks, &sec, &out->vs, &out->ks);
	}
	if (!r) {
		out->cpu_share = (cpu_seconds() - cpu0) / sec;
		*console = malloc(CONSOLE_MAX);
		if (*console)
			rvb_console_read(fd, *console, CONSOLE_MAX);
		else
			r = rvb_fail(&gb->env, "out of memory");
	}
	close(fd);
	return r;
}

/*
 * One run of guest program name on machine m: its nr timed sections in ns.
 * tandem must retire exactly insns instructions (bench_guests.h; the
 * powering-off store does not retire). swap_bytes and hooks: tandem's.
 */
static int run_sections(const struct gva_bench *gb, const char *name, enum machine m,
			uint64_t insns, unsigned int nr, double *ns, struct run_out *out,
			const struct rvb_hooks *hooks, uint64_t swap_bytes)
{
	char elf[PATH_MAX + 16], *console;
	uint64_t ticks[MAX_SECTIONS];
	struct rvb_config c;
	unsigned int got;

	rvb_guest_path(&gb->env, name, elf, sizeof(elf));
	rvb_config_init(&c, NULL, elf);
	c.swap_bytes = swap_bytes;
	if (run_console(gb, &c, m, hooks, out, &console))
		return -1;
	got = rvb_parse_ticks(console, ticks, MAX_SECTIONS);
	free(console);
	if (got != nr)
		return rvb_fail(&gb->env, "%s on %s: %u timed sections printed, expected %u",
				name, m == M_QEMU ? "qemu" : "tandem", got, nr);
	for (unsigned int i = 0; i < nr; i++)
		ns[i] = (double)ticks[i] * RVB_TICK_NS;
	if (m != M_QEMU && out->vs.instret != insns - 1)
		return rvb_fail(&gb->env, "%s: tandem retired %llu instructions, expected %llu: "
				"bench_guests.h is out of date, or the guest took another path",
				name, (unsigned long long)out->vs.instret,
				(unsigned long long)(insns - 1));
	return 0;
}

/* What a measure makes of one run's section times (ns): its figures. */
typedef void (*derive_fn)(const double *ns, double *fig);

/* What run_three leaves per machine: the last run's, and the median CPU
 * share. */
struct three_out {
	struct run_out last[NR_MACHINES];
	double cpu_share[NR_MACHINES];
};

/*
 * rep runs of program name on tandem (GVA targeted), tandem (GVA off) and
 * QEMU (when there), in turn; derive turns each run's nsec section times
 * into nfig figures: fig[m][k][i], figure k of run i on machine m, and
 * med[m][k], its median (0 for a machine left out).
 */
static int run_three(const struct gva_bench *gb, const char *name, uint64_t insns,
		     unsigned int nsec, derive_fn derive, unsigned int nfig, unsigned int rep,
		     double fig[NR_MACHINES][nfig][rep], double med[NR_MACHINES][nfig],
		     struct three_out *out)
{
	double share[NR_MACHINES][rep];

	memset(out, 0, sizeof(*out));
	memset(med, 0, NR_MACHINES * sizeof(*med));
	for (unsigned int i = 0; i < rep; i++) {
		for (unsigned int j = 0; j < ARRAY_SIZE(three); j++) {
			enum machine m = three[j];
			double ns[MAX_SECTIONS], f[nfig];

			if (m == M_QEMU && !gb->q)
				continue;
			if (run_sections(gb, name, m, insns, nsec, ns, &out->last[m], NULL, 0))
				return -1;
			derive(ns, f);
			for (unsigned int k = 0; k < nfig; k++)
				fig[m][k][i] = f[k];
			share[m][i] = out->last[m].cpu_share;
		}
	}
	for (unsigned int j = 0; j < ARRAY_SIZE(three); j++) {
		enum machine m = three[j];

		if (m == M_QEMU && !gb->q)
			continue;
		for (unsigned int k = 0; k < nfig; k++)
			med[m][k] = bench_median(fig[m][k], rep);
		out->cpu_share[m] = bench_median(share[m], rep);
	}
	return 0;
}

/* ---- refill ------------------------------------------------------------------ */

enum { RF_INSTALL, RF_HIT, RF_MISS, RF_INSTALL_SPREAD, RF_SPREAD, RF_REFILL,
       RF_SPREAD_REFILL, NR_RF };

static void refill_derive(const double *ns, double *f)
{
	double hit = ns[1] / BG_REFILL_LOADS;

	f[RF_INSTALL] = ns[0] / BG_GVA_PAGES;
	f[RF_HIT] = hit;
	f[RF_MISS] = ns[2] / BG_REFILL_LOADS;
	f[RF_INSTALL_SPREAD] = ns[3] / BG_GVA_PAGES;
	f[RF_SPREAD] = ns[4] / BG_REFILL_LOADS;
	f[RF_REFILL] = f[RF_MISS] - hit;
	f[RF_SPREAD_REFILL] = f[RF_SPREAD] - hit;
}

static int measure_refill(struct gva_bench *gb)
{
	unsigned int rep = gb->o->repeat;
	double fig[NR_MACHINES][NR_RF][rep], med[NR_MACHINES][NR_RF];
	struct three_out x;
	bool q = gb->q;

	if (run_three(gb, "refill", BG_REFILL_INSNS, BG_REFILL_SECTIONS, refill_derive, NR_RF,
		      rep, fig, med, &x))
		return -1;

	double *t = med[M_GVA], *off = med[M_OFF], *qm = med[M_QEMU];
	struct bench_field f[] = {
		BENCH_NUM("tandem_ns_per_load", t[RF_MISS]),
		BENCH_NUM("tandem_hit_ns", t[RF_HIT]),
		BENCH_NUM("tandem_refill_ns", t[RF_REFILL]),
		BENCH_NUM("tandem_install_ns", t[RF_INSTALL]),
		BENCH_NUM("off_ns_per_load", off[RF_MISS]),
		BENCH_NUM("off_hit_ns", off[RF_HIT]),
		BENCH_NUM("off_refill_ns", off[RF_REFILL]),
		BENCH_NUM("off_install_ns", off[RF_INSTALL]),
		BENCH_RATIO("speedup_vs_off", off[RF_REFILL] / t[RF_REFILL]),
		BENCH_INT("pages", BG_GVA_PAGES),
		BENCH_INT("loads", BG_REFILL_LOADS),
		BENCH_INT("tandem_gva_refills", x.last[M_GVA].vs.gva_refills),
		BENCH_INT("off_walks", x.last[M_OFF].vs.ptw_walks),
		BENCH_RATIO("tandem_cpu_share", x.cpu_share[M_GVA]),
		BENCH_NUM("target_refill_ns", REFILL_TARGET_NS),
		BENCH_INT("repeat", rep),
		BENCH_SAMPLES("tandem_refill_samples_ns", fig[M_GVA][RF_REFILL], rep),
		BENCH_SAMPLES("off_refill_samples_ns", fig[M_OFF][RF_REFILL], rep),
		/* QEMU's, when installed */
		BENCH_NUM("qemu_ns_per_load", qm[RF_MISS]),
		BENCH_NUM("qemu_hit_ns", qm[RF_HIT]),
		BENCH_NUM("qemu_refill_ns", qm[RF_REFILL]),
		BENCH_NUM("qemu_install_ns", qm[RF_INSTALL]),
		BENCH_RATIO("speedup_vs_qemu", qm[RF_REFILL] / t[RF_REFILL]),
		BENCH_RATIO("qemu_cpu_share", x.cpu_share[M_QEMU]),
		BENCH_SAMPLES("qemu_refill_samples_ns", fig[M_QEMU][RF_REFILL], rep),
	};
	bench_report(gb->o, "gva", "refill", f, q ? ARRAY_SIZE(f) : ARRAY_SIZE(f) - 7);

	struct bench_field g[] = {
		BENCH_NUM("tandem_ns_per_load", t[RF_SPREAD]),
		BENCH_NUM("tandem_refill_ns", t[RF_SPREAD_REFILL]),
		BENCH_NUM("tandem_install_ns", t[RF_INSTALL_SPREAD]),
		BENCH_NUM("off_ns_per_load", off[RF_SPREAD]),
		BENCH_NUM("off_refill_ns", off[RF_SPREAD_REFILL]),
		BENCH_NUM("off_install_ns", off[RF_INSTALL_SPREAD]),
		BENCH_RATIO("speedup_vs_off", off[RF_SPREAD_REFILL] / t[RF_SPREAD_REFILL]),
		BENCH_INT("pages", BG_GVA_PAGES),
		BENCH_INT("loads", BG_REFILL_LOADS),
		BENCH_INT("repeat", rep),
		BENCH_NUM("qemu_ns_per_load", qm[RF_SPREAD]),
		BENCH_NUM("qemu_refill_ns", qm[RF_SPREAD_REFILL]),
		BENCH_NUM("qemu_install_ns", qm[RF_INSTALL_SPREAD]),
		BENCH_RATIO("speedup_vs_qemu", qm[RF_SPREAD_REFILL] / t[RF_SPREAD_REFILL]),
	};
	bench_report(gb->o, "gva", "refill_spread", g, q ? ARRAY_SIZE(g) : ARRAY_SIZE(g) - 4);
	bench_note(gb->o, "refill target: a GVA refill within %.0f ns: %s (%.1f ns; the full "
		   "walk it replaces %.1f ns)", REFILL_TARGET_NS,
		   target_word(t[RF_REFILL] <= REFILL_TARGET_NS), t[RF_REFILL], off[RF_REFILL]);
	return 0;
}

/* ---- flush ------------------------------------------------------------------- */

enum { FL_FLUSH, FL_TOUCH, NR_FL };

static void flush_derive(const double *ns, double *f)
{
	f[FL_FLUSH] = (ns[1] - ns[0]) / BG_FLUSH_ITERS;
	f[FL_TOUCH] = (ns[3] - ns[2]) / BG_FLUSH_ITERS;
}

static int measure_flush(struct gva_bench *gb)
{
	unsigned int rep = gb->o->repeat;
	double fig[NR_MACHINES][NR_FL][rep], med[NR_MACHINES][NR_FL];
	struct three_out x;
	bool q = gb->q;

	if (run_three(gb, "flush", BG_FLUSH_INSNS, BG_FLUSH_SECTIONS, flush_derive, NR_FL,
		      rep, fig, med, &x))
		return -1;

	double *t = med[M_GVA], *off = med[M_OFF], *qm = med[M_QEMU];
	struct bench_field f[] = {
		BENCH_NUM("tandem_ns_per_flush", t[FL_FLUSH]),
		BENCH_NUM("tandem_touch_ns_per_flush", t[FL_TOUCH]),
		BENCH_NUM("off_ns_per_flush", off[FL_FLUSH]),
		BENCH_NUM("off_touch_ns_per_flush", off[FL_TOUCH]),
		BENCH_INT("flushes", BG_FLUSH_ITERS),
		BENCH_INT("touched_pages", BG_FLUSH_PAGES),
		BENCH_RATIO("tandem_cpu_share", x.cpu_share[M_GVA]),
		BENCH_NUM("target_ns", FLUSH_TARGET_NS),
		BENCH_INT("repeat", rep),
		BENCH_SAMPLES("tandem_samples_ns", fig[M_GVA][FL_FLUSH], rep),
		BENCH_NUM("qemu_ns_per_flush", qm[FL_FLUSH]),
		BENCH_NUM("qemu_touch_ns_per_flush", qm[FL_TOUCH]),
		BENCH_RATIO("speedup_vs_qemu", qm[FL_FLUSH] / t[FL_FLUSH]),
		BENCH_RATIO("qemu_cpu_share", x.cpu_share[M_QEMU]),
		BENCH_SAMPLES("qemu_samples_ns", fig[M_QEMU][FL_FLUSH], rep),
	};
	bench_report(gb->o, "gva", "flush", f, q ? ARRAY_SIZE(f) : ARRAY_SIZE(f) - 5);
	bench_note(gb->o, "flush target: a full guest TLB flush within %.1f us: %s (%.2f us; "
		   "with %d pages loaded after it %.2f us)", FLUSH_TARGET_NS / 1e3,
		   target_word(t[FL_FLUSH] <= FLUSH_TARGET_NS), t[FL_FLUSH] / 1e3,
		   BG_FLUSH_PAGES, t[FL_TOUCH] / 1e3);
	return 0;
}

/* ---- ctxsw ------------------------------------------------------------------- */

enum { CS_SAME, CS_ASID, CS_NOASID, NR_CS };

static void ctxsw_derive(const double *ns, double *f)
{
	for (unsigned int k = 0; k < NR_CS; k++)
		f[k] = ns[k] / BG_CTX_SWITCHES;
}

static int measure_ctxsw(struct gva_bench *gb)
{
	unsigned int rep = gb->o->repeat;
	double fig[NR_MACHINES][NR_CS][rep], med[NR_MACHINES][NR_CS];
	struct three_out x;
	bool q = gb->q;

	if (run_three(gb, "ctxsw", BG_CTX_INSNS, BG_CTX_SECTIONS, ctxsw_derive, NR_CS, rep,
		      fig, med, &x))
		return -1;

	double *t = med[M_GVA], *off = med[M_OFF], *qm = med[M_QEMU];
	struct bench_field f[] = {
		BENCH_NUM("tandem_asid_ns", t[CS_ASID]),
		BENCH_NUM("tandem_noasid_ns", t[CS_NOASID]),
		BENCH_NUM("tandem_same_ns", t[CS_SAME]),
		BENCH_NUM("off_asid_ns", off[CS_ASID]),
		BENCH_NUM("off_noasid_ns", off[CS_NOASID]),
		BENCH_NUM("off_same_ns", off[CS_SAME]),
		BENCH_RATIO("asid_speedup", t[CS_NOASID] / t[CS_ASID]),
		BENCH_RATIO("speedup_vs_off", off[CS_ASID] / t[CS_ASID]),
		BENCH_INT("spaces", BG_CTX_SPACES),
		BENCH_INT("pages_per_space", BG_CTX_PAGES),
		BENCH_INT("switches", BG_CTX_SWITCHES),
		BENCH_RATIO("tandem_cpu_share", x.cpu_share[M_GVA]),
		BENCH_INT("repeat", rep),
		BENCH_SAMPLES("tandem_asid_samples_ns", fig[M_GVA][CS_ASID], rep),
		BENCH_SAMPLES("tandem_noasid_samples_ns", fig[M_GVA][CS_NOASID], rep),
		BENCH_NUM("qemu_asid_ns", qm[CS_ASID]),
		BENCH_NUM("qemu_noasid_ns", qm[CS_NOASID]),
		BENCH_NUM("qemu_same_ns", qm[CS_SAME]),
		BENCH_RATIO("speedup_vs_qemu", qm[CS_ASID] / t[CS_ASID]),
		BENCH_RATIO("qemu_cpu_share", x.cpu_share[M_QEMU]),
	};
	bench_report(gb->o, "gva", "ctxsw", f, q ? ARRAY_SIZE(f) : ARRAY_SIZE(f) - 5);
	return 0;
}

/* ---- fork -------------------------------------------------------------------- */

/* forks= and ms= of the kernel's "kernel: OK ..." line; -1 if it failed. */
static int parse_kernel_line(const char *console, double *forks, double *ms)
{
	const char *line = strstr(console, "kernel: OK ");
	const char *f, *m, *end;

	if (!line || strstr(console, "kernel: FAILED"))
		return -1;
	end = line + strcspn(line, "\r\n");
	f = strstr(line, " forks=");
	m = strstr(line, " ms=");
	if (!f || !m || f > end || m > end || !strstr(line, " failures=0"))
		return -1;
	*forks = strtod(f + 7, NULL);
	*ms = strtod(m + 4, NULL);
	return *ms > 0 ? 0 : -1;
}

static int measure_fork(struct gva_bench *gb)
{
	static const enum machine ms[] = { M_GVA, M_OFF, M_FLUSH_ALL, M_QEMU };
	unsigned int rep = gb->o->repeat;
	double fig[NR_MACHINES][rep], share[NR_MACHINES][rep], med[NR_MACHINES] = { 0 };
	double forks = 0;
	struct run_out out[NR_MACHINES];
	char kernel[PATH_MAX + 32];
	struct rvb_config c;
	bool q = gb->q;

	snprintf(kernel, sizeof(kernel), "%s/../kernel/kernel.elf", gb->env.guests);
	if (access(kernel, R_OK) || access(RVB_OPENSBI_FW_JUMP, R_OK)) {
		bench_note(gb->o, "fork: skipped: %s or %s missing (make guest-kernel; Debian "
			   "package opensbi)", kernel, RVB_OPENSBI_FW_JUMP);
		return 0;
	}
	rvb_config_init(&c, RVB_OPENSBI_FW_JUMP, kernel);
	c.bootargs = KERNEL_ARGS;
	memset(out, 0, sizeof(out));
	for (unsigned int i = 0; i < rep; i++) {
		for (unsigned int j = 0; j < ARRAY_SIZE(ms); j++) {
			enum machine m = ms[j];
			char *console;
			double ms_run;

			if (m == M_QEMU && !q)
				continue;
			if (run_console(gb, &c, m, NULL, &out[m], &console))
				return -1;
			if (parse_kernel_line(console, &forks, &ms_run)) {
				free(console);
				return rvb_fail(&gb->env, "fork: the kernel on %s did not end with "
						"'kernel: OK ... failures=0'",
						m == M_QEMU ? "qemu" : "tandem");
			}
			free(console);
			fig[m][i] = forks * 1e3 / ms_run;
			share[m][i] = out[m].cpu_share;
		}
	}
	for (unsigned int j = 0; j < ARRAY_SIZE(ms); j++)
		if (ms[j] != M_QEMU || q)
			med[ms[j]] = bench_median(fig[ms[j]], rep);

	struct bench_field f[] = {
		BENCH_NUM("tandem_forks_per_s", med[M_GVA]),
		BENCH_NUM("off_forks_per_s", med[M_OFF]),
		BENCH_NUM("flush_all_forks_per_s", med[M_FLUSH_ALL]),
		BENCH_RATIO("speedup_vs_off", med[M_GVA] / med[M_OFF]),
		BENCH_INT("forks", (uint64_t)forks),
		BENCH_INT("tandem_walks", out[M_GVA].vs.ptw_walks),
		BENCH_INT("tandem_gva_refills", out[M_GVA].vs.gva_refills),
		BENCH_INT("off_walks", out[M_OFF].vs.ptw_walks),
		BENCH_RATIO("tandem_cpu_share", bench_median(share[M_GVA], rep)),
		BENCH_INT("repeat", rep),
		BENCH_NUM("qemu_forks_per_s", med[M_QEMU]),
		BENCH_RATIO("ratio_vs_qemu", med[M_GVA] / med[M_QEMU]),
		/* JSON only: arrays, and a value with spaces */
		BENCH_STR("bootargs", KERNEL_ARGS),
		BENCH_SAMPLES("tandem_samples", fig[M_GVA], rep),
		BENCH_SAMPLES("qemu_samples", fig[M_QEMU], rep),
	};
	if (!gb->o->json) {
		bench_report(gb->o, "gva", "fork", f, q ? 12 : 10);
		bench_note(gb->o, "fork: guests/kernel '%s' under OpenSBI fw_jump, 1 hart; "
			   "forks per second of guest time (its ms=)", KERNEL_ARGS);
	} else if (q) {
		bench_report(gb->o, "gva", "fork", f, ARRAY_SIZE(f));
	} else {
		struct bench_field g[] = { f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8],
					   f[9], f[12], f[13] };

		bench_report(gb->o, "gva", "fork", g, ARRAY_SIZE(g));
	}
	return 0;
}

/* ---- inval ------------------------------------------------------------------- */

/*
 * The host's side of inval: from the guest's timed loop on (its instret
 * tells), every INVAL_INTERVAL_NS, MADV_PAGEOUT of one page of the spread
 * region, drawn from a fixed seed; each call timed.
 */
struct inval_ctx {
	bool invalidate;                /* false: the baseline run, no calls */
	struct virt *vm;
	struct mm *mm;
	hva_t spread;                   /* host address of the spread region */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	uint64_t prng;
	double *call_ns;
	unsigned int nr_calls;
	int err;
	struct host_stats hs;           /* the host's, at the end */
};

/* Instructions the machine has retired so far (any thread). */
static uint64_t bench_instret(struct virt *vm)
{
	struct virt_live live;

	virt_get_live(vm, &live);
	return live.instret;
}

static void *inval_thread(void *arg)
{
	struct inval_ctx *ix = arg;
	uint64_t next;

	/* The instructions outside the timed loop are nearly all before it
	 * (tables, first pass); the few after it (print, check) retire within
	 * its first dozen loads. */
	while (!atomic_load(&ix->stop) && bench_instret(ix->vm) < BG_INVAL_FIXED_INSNS)
		clock_sleep_ns(100 * NSEC_PER_USEC);
	next = clock_now_ns();
	while (!atomic_load(&ix->stop) && ix->nr_calls < INVAL_MAX_CALLS) {
		uint64_t now = clock_now_ns(), t0, page;
		int r;

		next += INVAL_INTERVAL_NS;
		if (next > now)
			clock_sleep_ns(next - now);
		if (atomic_load(&ix->stop))
			break;
		page = prng_below(&ix->prng, BG_GVA_PAGES);
		t0 = clock_now_ns();
		r = mm_madvise(ix->mm, ix->spread + page * PAGE_SIZE, PAGE_SIZE, MADV_PAGEOUT);
		ix->call_ns[ix->nr_calls++] = (double)(clock_now_ns() - t0);
		if (r) {
			ix->err = r;
			break;
		}
	}
	return NULL;
}

static int inval_during(struct rvb_machine *tm, void *arg)
{
	struct inval_ctx *ix = arg;
	struct vmm *vmm = virt_vmm(tm->vm);
	int r;

	ix->vm = tm->vm;
	ix->mm = vmm_mm(vmm);
	vmm_layout_lock(vmm);
	ix->spread = vmm_ram_hva(vmm, VIRT_RAM_SLOT) + (BG_GVA_SPREAD_PA - VIRT_RAM_BASE);
	vmm_layout_unlock(vmm);
	if (!ix->invalidate)
		return 0;
	r = pthread_create(&ix->thread, NULL, inval_thread, ix);
	if (r) {
		fprintf(stderr, "tandem bench gva: pthread_create: %s\n", strerror(r));
		return -1;
	}
	ix->started = true;
	return 0;
}

static void inval_done(struct rvb_machine *tm, void *arg)
{
	struct inval_ctx *ix = arg;

	atomic_store(&ix->stop, true);
	if (ix->started)
		pthread_join(ix->thread, NULL);
	ix->started = false;
	host_get_stats(tm->host, &ix->hs);
}

/* The runs of inval: a baseline without invalidations, then each mode. */
enum { IV_BASE, IV_TARGETED, IV_FLUSH_ALL, NR_IV };
static const struct {
	const char *name;
	enum machine m;
	bool invalidate;
} inval_runs[NR_IV] = {
	[IV_BASE] = { "base", M_GVA, false },
	[IV_TARGETED] = { "targeted", M_GVA, true },
	[IV_FLUSH_ALL] = { "flush_all", M_FLUSH_ALL, true },
};

enum { IF_NS, IF_WALKS, IF_CALL_MEDIAN, IF_CALL_MEAN, IF_CALLS, IF_SWAPOUTS, NR_IF };

static int measure_inval(struct gva_bench *gb)
{
	unsigned int rep = gb->o->repeat;
	double fig[NR_IV][NR_IF][rep], med[NR_IV][NR_IF];
	double *calls = malloc(INVAL_MAX_CALLS * sizeof(*calls));
	struct kvm_stats ks[NR_IV];
	double share[NR_IV][rep];

	if (!calls)
		return rvb_fail(&gb->env, "out of memory");
	for (unsigned int i = 0; i < rep; i++) {
		for (unsigned int k = 0; k < NR_IV; k++) {
			struct inval_ctx ix = { .invalidate = inval_runs[k].invalidate,
						.prng = prng_seed(INVAL_SEED, i), .call_ns = calls };
			struct rvb_hooks hooks = { inval_during, inval_done, &ix };
			struct run_out out;
			double ns;

			atomic_init(&ix.stop, false);
			if (run_sections(gb, "inval", inval_runs[k].m, BG_INVAL_INSNS,
					 BG_INVAL_SECTIONS, &ns, &out, &hooks,
					 INVAL_SWAP_BYTES)) {
				free(calls);
				return -1;
			}
			if (ix.err) {
				free(calls);
				return rvb_fail(&gb->env, "inval: MADV_PAGEOUT: %s",
						strerror(-ix.err));
			}
			fig[k][IF_NS][i] = ns / BG_INVAL_LOADS;
			fig[k][IF_WALKS][i] = (double)out.vs.ptw_walks;
			ks[k] = out.ks;
			share[k][i] = out.cpu_share;
			fig[k][IF_CALLS][i] = ix.nr_calls;
			fig[k][IF_SWAPOUTS][i] = (double)ix.hs.events[PSWPOUT];
			fig[k][IF_CALL_MEAN][i] = 0;
			for (unsigned int c = 0; c < ix.nr_calls; c++)
				fig[k][IF_CALL_MEAN][i] += calls[c] / ix.nr_calls;
			fig[k][IF_CALL_MEDIAN][i] = median_sort(calls, ix.nr_calls);
		}
	}
	free(calls);
	for (unsigned int k = 0; k < NR_IV; k++)
		for (unsigned int j = 0; j < NR_IF; j++)
			med[k][j] = bench_median(fig[k][j], rep);

	for (unsigned int k = IV_TARGETED; k < NR_IV; k++) {
		double *b = med[IV_BASE], *v = med[k];
		double calls_n = v[IF_CALLS] ? v[IF_CALLS] : 1;
		struct bench_field f[] = {
			BENCH_STR("gva", inval_runs[k].name),
			BENCH_NUM("call_median_us", v[IF_CALL_MEDIAN] / 1e3),
			BENCH_NUM("call_mean_us", v[IF_CALL_MEAN] / 1e3),
			BENCH_NUM("ns_per_load", v[IF_NS]),
			BENCH_NUM("base_ns_per_load", b[IF_NS]),
			BENCH_RATIO("slowdown", v[IF_NS] / b[IF_NS]),
			BENCH_NUM("walks_per_inval", (v[IF_WALKS] - b[IF_WALKS]) / calls_n),
			BENCH_INT("invalidations", (uint64_t)v[IF_CALLS]),
			BENCH_INT("swapouts", (uint64_t)v[IF_SWAPOUTS]),
			BENCH_INT("gva_zapped_leaves", ks[k].gva_zapped_leaves),
			BENCH_INT("gva_flush_all", ks[k].gva_flush_all),
			BENCH_INT("interval_us", INVAL_INTERVAL_NS / NSEC_PER_USEC),
			BENCH_RATIO("cpu_share", bench_median(share[k], rep)),
			BENCH_INT("repeat", rep),
			BENCH_SAMPLES("ns_per_load_samples", fig[k][IF_NS], rep),
			BENCH_SAMPLES("call_median_samples_ns", fig[k][IF_CALL_MEDIAN], rep),
		};
		bench_report(gb->o, "gva", "inval", f, ARRAY_SIZE(f));
	}
	bench_note(gb->o, "inval: %d random loads over %d pages on frames of their own while "
		   "the host swaps one of them out (MADV_PAGEOUT) every %llu us; base: the same "
		   "guest, GVA targeted, no invalidations; walks_per_inval: full walks beyond "
		   "base's, per call", BG_INVAL_LOADS, BG_GVA_PAGES,
		   INVAL_INTERVAL_NS / NSEC_PER_USEC);
	return 0;
}

int bench_gva(const struct bench_opts *o)
{
	static const char *const guests[] = { "refill", "flush", "ctxsw", "inval" };
	struct gva_bench gb = { .o = o };
	bool any = bench_wants(o, "refill") || bench_wants(o, "flush") ||
		   bench_wants(o, "ctxsw") || bench_wants(o, "fork") || bench_wants(o, "inval");

	if (!any)
		return 0;
	if (rvb_env_init(&gb.env, o, "gva", guests, ARRAY_SIZE(guests)))
		return 1;
	gb.q = gb.env.qemu[0];
	bench_note(o, "gva: guests %s, 1 hart, %d MiB RAM; tandem (GVA targeted), tandem "
		   "--gva off and QEMU run in turn; each figure the median of %u runs, timed "
		   "by the guest (rdtime) around its sections", gb.env.guests, BG_RAM_MB,
		   o->repeat);
	rvb_note_qemu(&gb.env);
	if (bench_wants(o, "refill") && measure_refill(&gb))
		return 1;
	if (bench_wants(o, "flush") && measure_flush(&gb))
		return 1;
	if (bench_wants(o, "ctxsw") && measure_ctxsw(&gb))
		return 1;
	if (bench_wants(o, "fork") && measure_fork(&gb))
		return 1;
	if (bench_wants(o, "inval") && measure_inval(&gb))
		return 1;
	return 0;
}
