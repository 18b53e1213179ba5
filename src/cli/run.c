/* SPDX-License-Identifier: MIT */
/*
 * run.c - `tandem run`: the main job. VMs with vCPUs run checking guest
 * workloads while the host churns their memory; one progress line a second,
 * then a summary whose last line is the integrity checker's verdict:
 * `integrity: OK` (exit 0) or `integrity: FAILED: <what>` (exit 1).
 *
 * The scenario itself is src/workload/scenario.c (the stress test runs the
 * same code); this file parses options and prints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/opt.h"
#include "cli/report.h"
#include "tandem/workload.h"
#include "base/clock.h"
#include "base/compiler.h"
#include "base/xalloc.h"

#define CMD "run"

/* ---- options ---------------------------------------------------------------- */

enum run_guest { GUEST_C, GUEST_RISCV };

struct run_opts {
	struct scenario_config cfg;
	bool json, quiet;
	/* --guest riscv */
	unsigned int guest;             /* enum run_guest */
	unsigned int smp;
	unsigned int gva;               /* enum kvm_gva_mode */
	unsigned int gpc;               /* GPC_* below: the pages the host writes */
	const char *kernel, *bios, *append;
};

static const struct opt_choice break_choices[] = {
	{ "seq", KVM_BREAK_SEQ_CHECK,
	  "the fault skips its invalidation seq/in-progress check" },
	{ "flush-wait", KVM_BREAK_FLUSH_WAIT,
	  "TLB flushes don't wait for vCPUs in guest mode\n"
	  "(implies --kick wait unless given)" },
	{ "zap", KVM_BREAK_RANGE_ZAP,
	  "invalidate_range_start doesn't zap the sptes" },
	{ "aging", KVM_BREAK_AGING,
	  "the secondary MMU reports nothing young; reclaim then\n"
	  "evicts pages only guests use (hot set); no stall,\n"
	  "churn unchanged" },
	{ "gva-sfence", KVM_BREAK_GVA_SFENCE,
	  "--guest riscv: sfence.vma with an address leaves the\n"
	  "GVA tables' entries in place (a kernel's probe\n"
	  "finds a store after mprotect that did not fault)" },
	{ "gva-zap", KVM_BREAK_GVA_ZAP,
	  "--guest riscv: host invalidations (fork, reclaim)\n"
	  "do not reach the GVA tables" },
	{ "gpc-invalidate", KVM_BREAK_GPC_INVALIDATE,
	  "the notifier leaves gfn_to_pfn caches valid: the\n"
	  "clock device and the run-state writes go on\n"
	  "through the old frame" },
	{ "gpc-request", KVM_BREAK_GPC_REQUEST,
	  "a run-state cache is marked invalid but its vCPU\n"
	  "is neither told nor waited for" },
};

/* --gpc: the guest pages the host itself writes through gfn_to_pfn caches. */
#define GPC_CLOCK       (1u << 0)
#define GPC_RUNSTATE    (1u << 1)
#define GPC_ALL         (GPC_CLOCK | GPC_RUNSTATE)

static bool gpc_choice(unsigned int i, struct opt_choice *c)
{
	static const struct opt_choice users[] = {
		{ "clock", GPC_CLOCK, NULL }, { "runstate", GPC_RUNSTATE, NULL },
	};

	return opt_choice_at(users, ARRAY_SIZE(users), i, c);
}

static bool break_choice(unsigned int i, struct opt_choice *c)
{
	return opt_choice_at(break_choices, ARRAY_SIZE(break_choices), i, c);
}

static bool gva_choice(unsigned int i, struct opt_choice *c)
{
	static const struct opt_choice modes[] = {
		{ "targeted", KVM_GVA_TARGETED, NULL },
		{ "flush-all", KVM_GVA_FLUSH_ALL, NULL },
		{ "off", KVM_GVA_OFF, NULL },
	};

	return opt_choice_at(modes, ARRAY_SIZE(modes), i, c);
}

static bool workload_choice(unsigned int i, struct opt_choice *c)
{
	if (i >= WL_NR_WORKLOADS)
		return false;
	*c = (struct opt_choice){ wl_workload_name(i), i, NULL };
	return true;
}

static bool churn_choice(unsigned int i, struct opt_choice *c)
{
	if (i >= WL_NR_CHURN)
		return false;
	*c = (struct opt_choice){ wl_churn_name(i), 1u << i, NULL };
	return true;
}

static bool guest_choice(unsigned int i, struct opt_choice *c)
{
	static const struct opt_choice guests[] = {
		{ "c", GUEST_C, NULL }, { "riscv", GUEST_RISCV, NULL },
	};

	return opt_choice_at(guests, ARRAY_SIZE(guests), i, c);
}

static bool kick_choice(unsigned int i, struct opt_choice *c)
{
	if (i > KVM_KICK_RSEQ)
		return false;
	*c = (struct opt_choice){ kvm_kick_mode_name(i), i, NULL };
	return true;
}

#define CFG(m) OPT_FIELD(struct run_opts, cfg.m)
#define NOT_4K "not a multiple of the 4K page size"

static const struct opt run_options[] = {
	{ "guest", 'g', OPT_CHOICE, OPT_FIELD(struct run_opts, guest), .choices = guest_choice,
	  .arg = "KIND",
	  .help = "c: C guest workloads on software vCPUs (the default);\n"
		  "riscv: RISC-V virt machines (OpenSBI + the project's\n"
		  "kernel, guests/kernel) judged by the kernels' checks" },
	{ "vms", 0, OPT_NUM, CFG(nr_vms), .min = 1, .max = WL_MAX_VMS, .arg = "N",
	  .help = "VMs, each its own host mm (default {default}; {range})" },
	{ "vcpus", 0, OPT_NUM, CFG(nr_vcpus), .min = 1, .max = WL_MAX_VCPUS, .arg = "N",
	  .help = "vCPUs per VM (default {default}; {range})" },
	{ "guest-mem", 0, OPT_SIZE, CFG(guest_mem), .min = WL_GUEST_MEM_MIN,
	  .max = WL_GUEST_MEM_MAX, .align = 1ULL << 20, .align_why = "not a whole number of MiB",
	  .arg = "SIZE", .help = "guest RAM per VM, whole MiB (default {default}; {range})" },
	{ "host-mem", 0, OPT_SIZE, CFG(host_mem), .min = HOST_RAM_MIN, .max = HOST_RAM_MAX,
	  .align = PAGE_SIZE, .align_why = NOT_4K, .arg = "SIZE",
	  .help = "host RAM (default: twice the guest RAM + slack);\n"
		  "less than the guests need turns swap on (--swap)" },
	{ "swap", 0, OPT_SIZE, CFG(swap_bytes), .min = PAGE_SIZE, .max = HOST_SWAP_MAX,
	  .align = PAGE_SIZE, .align_why = NOT_4K, .flags = OPT_ZERO_OK, .arg = "SIZE",
	  .help = "swap file size (0: none; default: none when the\n"
		  "host RAM holds the guests, else all guest RAM\n"
		  "plus a quarter plus 64M). When RAM and swap run\n"
		  "out, the OOM killer kills the largest VM: it is\n"
		  "stopped with a reason and the others run on; the\n"
		  "verdict is the survivors' (more than one VM\n"
		  "killed fails)" },
	{ "swap-file", 0, OPT_PATH, CFG(swap_path), .arg = "PATH",
	  .help = "where the swap file goes (default: a temp file in\n"
		  "$TMPDIR or /tmp; unlinked at once either way)" },
	{ "swap-fail-writes", 0, OPT_NUM, CFG(swap_fail_writes), .max = 1000000000,
	  .arg = "N",
	  .help = "test switch: the first N swap writes fail (the\n"
		  "page must stay resident and dirty: nothing lost)" },
	{ "swap-fail-reads", 0, OPT_NUM, CFG(swap_fail_reads), .max = 1000000000,
	  .arg = "N",
	  .help = "test switch: the first N swap reads fail (the VM\n"
		  "that needed the page is stopped)" },
	{ "duration", 'd', OPT_DURATION, CFG(duration_ns), .max = 86400 * NSEC_PER_SEC,
	  .range_why = "more than 24 hours", .arg = "SECS",
	  .help = "run time, e.g. 10, 2.5, 500ms (default {default})" },
	{ "workload", 'w', OPT_CHOICE, CFG(workload), .choices = workload_choice,
	  .arg = "NAME",
	  .help = "mixed (each vCPU cycles through the others), seq,\n"
		  "uniform, zipf, verify (default {default})" },
	{ "write-ratio", 0, OPT_NUM, CFG(write_pct), .max = 100, .arg = "PCT",
	  .help = "writes per 100 random ops (default {default})" },
	{ "seed", 's', OPT_NUM, CFG(seed), .arg = "N",
	  .help = "seed of the guests' and churn's choices (default {default})" },
	{ "churn", 0, OPT_SET, CFG(churn), .choices = churn_choice,
	  .flags = OPT_LIST | OPT_ALL_NONE, .arg = "LIST",
	  .help = "all, none, or a comma list of dontneed, mprotect,\n"
		  "remap, fork (default all; with --break: the ops\n"
		  "that expose the race)" },
	{ "break", 0, OPT_SET, CFG(breaks), .choices = break_choice,
	  .flags = OPT_LIST | OPT_ADD, .arg = "LIST",
	  .help = "disable one piece of the protocol to watch the\n"
		  "checker catch the race (comma list or repeated):\n"
		  "{choices}\n"
		  "(--guest c: seq, flush-wait and zap imply --stall;\n"
		  "the run ends at the first failure; zap with fork\n"
		  "or remap churn may corrupt the host. --guest\n"
		  "riscv: every VM runs broken; the verdict names\n"
		  "each failure's kind)" },
	{ "gpc", 0, OPT_SET, OPT_FIELD(struct run_opts, gpc), .choices = gpc_choice,
	  .flags = OPT_LIST | OPT_ALL_NONE, .arg = "LIST",
	  .help = "the guest pages the host writes through gfn_to_pfn\n"
		  "caches, which the guests check: all, none, or a\n"
		  "comma list of clock (a clock device writes a clock\n"
		  "page into each VM every --clock-period, in atomic\n"
		  "mode), runstate (each vCPU's run-state area, written\n"
		  "at every guest entry; --guest riscv: the harts' SBI\n"
		  "STA areas, none turns STA off) (default all)" },
	{ "clock-period", 0, OPT_DURATION, CFG(clock_period_ns), .min = CLOCKDEV_PERIOD_MIN,
	  .max = CLOCKDEV_PERIOD_MAX, .range_why = "must be 10us to 1s", .arg = "SECS",
	  .help = "the clock device's period, e.g. 0.1ms, 1ms, 0.5\n"
		  "(default 0.1ms, i.e. 100 us)" },
	{ "stall", 0, OPT_FLAG, CFG(stall),
	  .help = "stall vCPUs at the protocol's vulnerable points until\n"
		  "the next host operation is done (harmless unless a\n"
		  "--break is on)" },
	{ "kick", 0, OPT_CHOICE, CFG(kick), .choices = kick_choice, .arg = "MODE",
	  .help = "how TLB flushes reach vCPUs in guest mode: wait\n"
		  "(sleep until they leave it, as KVM), rseq (abort\n"
		  "their restartable accesses with membarrier), auto\n"
		  "(rseq where available; the default)" },
	{ "wss-interval", 0, OPT_DURATION, CFG(wss_interval_ns), .min = 10 * NSEC_PER_MSEC,
	  .max = 3600 * NSEC_PER_SEC, .range_why = "must be 10ms to 1 hour", .arg = "SECS",
	  .help = "every SECS (e.g. 1, 0.5, 250ms) measure each VM's\n"
		  "working set -- the guest RAM pages its guests used in\n"
		  "that interval -- by idle page tracking: a line per\n"
		  "interval, last/mean/min/max in the summary (default\n"
		  "off)" },
	{ "smp", 0, OPT_NUM, OPT_FIELD(struct run_opts, smp), .min = 1, .max = KVM_MAX_VCPUS,
	  .arg = "N", .help = "--guest riscv: harts per VM (default: --vcpus, 2)" },
	{ "kernel", 0, OPT_PATH, OPT_FIELD(struct run_opts, kernel), .arg = "FILE",
	  .help = "--guest riscv: the kernel (default\n"
		  "build/kernel/kernel.elf: make guest-kernel)" },
	{ "bios", 0, OPT_PATH, OPT_FIELD(struct run_opts, bios), .arg = "FILE",
	  .help = "--guest riscv: the firmware (default Debian's\n"
		  "OpenSBI fw_jump.elf, package opensbi)" },
	{ "gva", 0, OPT_CHOICE, OPT_FIELD(struct run_opts, gva), .choices = gva_choice,
	  .arg = "MODE",
	  .help = "--guest riscv: the GVA page tables that refill the\n"
		  "harts' soft TLBs without a guest page-table walk:\n"
		  "targeted (host zaps clear the entries built on the\n"
		  "zapped pages; the default), flush-all (any host zap\n"
		  "empties them all), off (every miss walks)" },
	{ "append", 0, OPT_PATH, OPT_FIELD(struct run_opts, append), .arg = "STR",
	  .help = "--guest riscv: more kernel bootargs, after\n"
		  "'vm=N secs=DURATION' (e.g. 'verbose=1', 'break=cow')" },
	{ "json", 0, OPT_FLAG, OPT_FIELD(struct run_opts, json),
	  .help = "print the summary as JSON (progress goes to stderr)" },
	{ "quiet", 'q', OPT_FLAG, OPT_FIELD(struct run_opts, quiet),
	  .help = "no progress lines" },
	{ "help", 'h', OPT_HELP, .help = "this text" },
};

static const struct opt_table run_table = {
	.cmd = CMD,
	.opts = run_options,
	.nr = ARRAY_SIZE(run_options),
	.help_column = 25,
	.usage = run_usage,
};

/* The breaks that open a race in the invalidation protocol: they imply
 * --stall and pick their churn. aging opens none (it changes what reclaim
 * chooses, not whether an invalidation is honoured). */
#define PROTOCOL_BREAKS (KVM_BREAK_SEQ_CHECK | KVM_BREAK_FLUSH_WAIT | KVM_BREAK_RANGE_ZAP)

/* Churn used with --break when --churn is not given: the host operations
 * that expose each race fastest (and, for zap, no fork or remap: those
 * allocate page tables from frames stale sptes may still write). */
static unsigned int break_churn(unsigned int breaks)
{
	unsigned int churn = 0;

	if (breaks & KVM_BREAK_SEQ_CHECK)
		churn |= 1u << WL_CHURN_FORK | 1u << WL_CHURN_MPROTECT;
	if (breaks & KVM_BREAK_FLUSH_WAIT)
		churn |= 1u << WL_CHURN_FORK | 1u << WL_CHURN_MPROTECT;
	if (breaks & KVM_BREAK_RANGE_ZAP)
		churn |= 1u << WL_CHURN_DONTNEED | 1u << WL_CHURN_MPROTECT;
	return churn;
}

void run_usage(FILE *f)
{
	struct run_opts d = { .gpc = GPC_ALL };

	scenario_config_default(&d.cfg);
	fprintf(f,
		"usage: tandem run [options]\n"
		"\nVMs run guest workloads on software vCPUs through the secondary MMU while\n"
		"the host churns their memory (MADV_DONTNEED, mprotect read-only and back,\n"
		"munmap + mmap of a memslot's backing, fork + child exit). Every page a guest\n"
		"writes carries (VM, gfn, version); the integrity checker fails on a lost\n"
		"write, a stale read, another VM's data, a write through a read-only mapping,\n"
		"or a forked child seeing a later write. Guest writes to a read-only slot\n"
		"(ROM) must exit to the VMM with their address. One progress line a second,\n"
		"then a summary ending 'integrity: OK' (exit 0) or 'integrity: FAILED: ...'\n"
		"(exit 1). Bad options: exit 2.\n"
		"\n--guest riscv runs RISC-V virt machines instead (OpenSBI + the project's\n"
		"kernel, build/kernel/kernel.elf from 'make guest-kernel'), each checking its\n"
		"own processes' pages, over the same overcommitted host with fork/reclaim\n"
		"churn; OK needs every kernel's 'kernel: OK ... failures=0' and a clean host.\n"
		"\noptions:\n");
	opt_usage(f, &run_table, &d);
}

/* The arena is real memory: refuse what this machine cannot hold rather
 * than meet the kernel's OOM killer. */
static int check_fits_machine(uint64_t host_mem, bool given)
{
	uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGE_SIZE);

	if (phys && host_mem > phys / 10 * 9) {
		fprintf(stderr, "tandem " CMD ": host memory %llu MiB%s does not fit this "
			"machine's %llu MiB of RAM\n", (unsigned long long)(host_mem >> 20),
			given ? "" : " (what the guests need)", (unsigned long long)(phys >> 20));
		return EXIT_USAGE;
	}
	return 0;
}

/* ---- --guest riscv ---------------------------------------------------------- */

#define DEFAULT_BIOS "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"
#define DEFAULT_KERNEL "build/kernel/kernel.elf"

/* The options of each kind of guest alone. */
static const char *const c_only_opts[] = {
	"workload", "write-ratio", "seed", "stall", "kick", "wss-interval",
	"swap-fail-writes", "swap-fail-reads", "clock-period",
};
static const char *const riscv_only_opts[] = { "smp", "kernel", "bios", "append", "gva" };

/* The name of the first break of mask (break_choices). */
static const char *break_name(unsigned int mask)
{
	struct opt_choice c;

	for (unsigned int i = 0; break_choice(i, &c); i++)
		if (mask & c.value)
			return c.name;
	return "?";
}

/* build/kernel/kernel.elf from the working directory, else from beside the
 * binary (build/<variant>/tandem); NULL if neither is there. */
static const char *find_kernel(void)
{
	static char path[4096];
	ssize_t n;
	char *slash;

	if (access(DEFAULT_KERNEL, R_OK) == 0)
		return DEFAULT_KERNEL;
	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0)
		return NULL;
	path[n] = '\0';
	slash = strrchr(path, '/');
	if (!slash || (size_t)(slash - path) + sizeof("/../kernel/kernel.elf") > sizeof(path))
		return NULL;
	strcpy(slash, "/../kernel/kernel.elf");
	return access(path, R_OK) == 0 ? path : NULL;
}

/* The RISC-V scenario from the options, or EXIT_USAGE after saying why. */
static int riscv_opts(struct run_opts *o, uint64_t given, struct rv_scenario_config *rc)
{
	const unsigned int fork_only = 1u << WL_CHURN_FORK;
	char why[256];

	for (size_t i = 0; i < ARRAY_SIZE(c_only_opts); i++)
		if (opt_given(&run_table, given, c_only_opts[i])) {
			fprintf(stderr, "tandem " CMD ": --%s does not apply to --guest riscv\n",
				c_only_opts[i]);
			return EXIT_USAGE;
		}
	if (o->cfg.breaks & ~RV_SCENARIO_BREAKS) {
		fprintf(stderr, "tandem " CMD ": --break=%s is a C guests' break (seq, "
			"flush-wait, zap, aging: their stall points, churn and working-set "
			"reports show them); --guest riscv takes gva-sfence, gva-zap and "
			"gpc-request\n",
			break_name(o->cfg.breaks & ~RV_SCENARIO_BREAKS));
		return EXIT_USAGE;
	}
	/* --gpc: the harts' run-state areas are SBI STA's; there is no clock
	 * device on the virt machine. */
	if (opt_given(&run_table, given, "gpc") && o->gpc == GPC_CLOCK) {
		fprintf(stderr, "tandem " CMD ": --gpc clock: the RISC-V machine has no clock "
			"device; its gfn_to_pfn caches are the harts' SBI STA areas (--gpc "
			"runstate, the default, or none)\n");
		return EXIT_USAGE;
	}
	if (!opt_given(&run_table, given, "churn"))
		o->cfg.churn = fork_only;
	if (o->cfg.churn & ~fork_only) {
		fprintf(stderr, "tandem " CMD ": --churn: with --guest riscv only 'fork' (each "
			"VM's fork of the VMM's mm and reclaim, every 10 ms; the default) or "
			"'none': dontneed, mprotect and remap change or refuse memory a real "
			"guest relies on\n");
		return EXIT_USAGE;
	}
	rv_scenario_config_default(rc);
	rc->sbi_sta_off = !(o->gpc & GPC_RUNSTATE);
	rc->nr_vms = o->cfg.nr_vms;
	rc->nr_harts = opt_given(&run_table, given, "smp") ? o->smp : o->cfg.nr_vcpus;
	rc->guest_mem = o->cfg.guest_mem;
	rc->host_mem = o->cfg.host_mem;
	rc->swap_bytes = o->cfg.swap_bytes;
	rc->swap_path = o->cfg.swap_path;
	rc->duration_ns = o->cfg.duration_ns;
	rc->churn_interval_ms = o->cfg.churn ? o->cfg.churn_interval_us / 1000 : 0;
	rc->bootargs = o->append;
	rc->gva = (enum kvm_gva_mode)o->gva;
	rc->breaks = o->cfg.breaks;
	rc->bios = o->bios ? o->bios : DEFAULT_BIOS;
	rc->kernel = o->kernel ? o->kernel : find_kernel();
	if (!rc->kernel) {
		fprintf(stderr, "tandem " CMD ": the RISC-V guest kernel " DEFAULT_KERNEL " is "
			"missing: build it with 'make guest-kernel' (needs Debian's "
			"gcc-riscv64-unknown-elf), or give --kernel FILE\n");
		return EXIT_USAGE;
	}
	if (o->kernel && access(o->kernel, R_OK)) {
		fprintf(stderr, "tandem " CMD ": --kernel: '%s': %s\n", o->kernel,
			strerror(errno));
		return EXIT_USAGE;
	}
	if (access(rc->bios, R_OK)) {
		if (o->bios)
			fprintf(stderr, "tandem " CMD ": --bios: '%s': %s\n", o->bios,
				strerror(errno));
		else
			fprintf(stderr, "tandem " CMD ": the firmware " DEFAULT_BIOS " is missing: "
				"install Debian's opensbi package (apt-get install opensbi), "
				"or give --bios FILE\n");
		return EXIT_USAGE;
	}
	if (rv_scenario_check_config(rc, why, sizeof(why))) {
		fprintf(stderr, "tandem " CMD ": %s\n", why);
		return EXIT_USAGE;
	}
	if (rc->breaks & KVM_BREAK_GVA_ZAP)
		fprintf(stderr, "tandem " CMD ": note: with --break=gva-zap the harts write "
			"host frames after the host freed them (COW breaks after the churn's "
			"forks, swap-out), which may hold host page tables by then: the host "
			"may crash before the verdict\n");
	return check_fits_machine(rc->host_mem ? rc->host_mem : rv_scenario_host_mem(rc),
				  rc->host_mem != 0);
}

/* What options imply for each other, and whether the run fits this machine. */
static int check_opts(struct run_opts *o, uint64_t given)
{
	struct scenario_config *cfg = &o->cfg;
	char why[256];

	if (cfg->breaks & PROTOCOL_BREAKS) {
		cfg->stall = true;
		if (!opt_given(&run_table, given, "churn"))
			cfg->churn = break_churn(cfg->breaks);
		/* Under RSEQ the access re-checks requests inside a restartable
		 * section: what flush-wait breaks is the waiting protocol's. */
		if ((cfg->breaks & KVM_BREAK_FLUSH_WAIT) && !opt_given(&run_table, given, "kick"))
			cfg->kick = KVM_KICK_WAIT;
	}
	if (scenario_check_config(cfg, why, sizeof(why))) {
		fprintf(stderr, "tandem " CMD ": %s\n", why);
		return EXIT_USAGE;
	}
	/* The arena is pre-faulted: it must fit. */
	if (check_fits_machine(cfg->host_mem ? cfg->host_mem : scenario_host_mem(cfg),
			       cfg->host_mem != 0))
		return EXIT_USAGE;
	if ((cfg->breaks & KVM_BREAK_RANGE_ZAP) &&
	    (cfg->churn & (1u << WL_CHURN_FORK | 1u << WL_CHURN_REMAP)))
		fprintf(stderr, "tandem " CMD ": note: with --break=zap, fork and remap churn "
			"allocate host page tables from frames that stale sptes may still "
			"write: the host may hit a BUG before the checker's verdict\n");
	return 0;
}

/* ---- summary metrics ---------------------------------------------------------- */

/* report_style.show bits: rows that only some runs print in text. */
#define SHOW_STALLS     (1u << 0)       /* --stall (or a break implying it) */

static const char *churn_key(unsigned int k)
{
	return wl_churn_name(k);
}

#define COUNT(m) REPORT_AT(struct scenario_counts, m)

/* "guests:" in text; "totals" and each VM's "counts" in JSON. */
static const struct report_field counts_fields[] = {
	{ "accesses", "accesses", REPORT_U64, COUNT(accesses), REPORT_BOTH,
	  .note = "  ({/s}/s)" },
	{ "page_reads", "pages read+checked", REPORT_U64, COUNT(page_reads), REPORT_BOTH },
	{ "page_writes", "pages written", REPORT_U64, COUNT(page_writes), REPORT_BOTH,
	  .note = "  (each checked first)" },
	{ "writes_refused", "writes refused", REPORT_U64, COUNT(writes_refused), REPORT_BOTH,
	  .note = "  (-EFAULT: host mapping read-only)" },
	{ "cross_reads", "cross-vCPU reads", REPORT_U64, COUNT(cross_reads), REPORT_BOTH },
	{ "frozen_skips", "skipped (frozen)", REPORT_U64, COUNT(frozen_skips), REPORT_BOTH,
	  .note = "  (churn owned the page)" },
	{ "rom_reads", "ROM reads", REPORT_U64, COUNT(rom_reads), REPORT_BOTH },
	{ "rom_writes", "ROM writes", REPORT_U64, COUNT(rom_writes), REPORT_BOTH,
	  .note = "  (MMIO exits to the VMM: {mmio_exits})" },
	{ "mmio_exits", NULL, REPORT_U64, COUNT(mmio_exits), REPORT_JSON },
	{ "stalls", "stalls", REPORT_U64, COUNT(stalls), REPORT_BOTH, .when = SHOW_STALLS },
	/* The text has its own "churn:" line for these. */
	{ "churn", NULL, REPORT_U64_ARRAY, COUNT(churn), REPORT_JSON, .nr = WL_NR_CHURN,
	  .name = churn_key },
	{ "pages_checked_by_churn", NULL, REPORT_U64, COUNT(pages_checked_by_churn),
	  REPORT_JSON },
	{ "forks_skipped", NULL, REPORT_U64, COUNT(forks_skipped), REPORT_JSON },
};

#define KVM(m) REPORT_AT(struct kvm_stats, m)

/* "secondary MMU:" in text; "kvm", totals and each VM's, in JSON. */
static const struct report_field kvm_fields[] = {
	{ "faults", "faults", REPORT_U64, KVM(faults), REPORT_BOTH,
	  .note = "  ({/s}/s; fast path {fast_faults})" },
	{ "fast_faults", NULL, REPORT_U64, KVM(fast_faults), REPORT_JSON },
	{ "fault_retries", "fault retries", REPORT_U64, KVM(fault_retries), REPORT_BOTH },
	{ "invalidations", "invalidations", REPORT_U64, KVM(invalidations), REPORT_BOTH,
	  .note = "  ({/s}/s)" },
	{ "sptes_zapped", "sptes zapped", REPORT_U64, KVM(sptes_zapped), REPORT_BOTH },
	{ "tlb_flushes", "TLB flushes", REPORT_U64, KVM(tlb_flushes), REPORT_BOTH },
	{ "memslot_updates", "memslot updates", REPORT_U64, KVM(memslot_updates),
	  REPORT_BOTH },
	{ "mmio_exits", "MMIO exits", REPORT_U64, KVM(mmio_exits), REPORT_BOTH },
};

#define VCPU(m) REPORT_AT(struct vcpu_stats, m)

/* The last "secondary MMU:" line; "vcpu" in JSON. */
static const struct report_field vcpu_fields[] = {
	{ "accesses_slow", "vCPU soft-TLB", REPORT_U64, VCPU(accesses_slow), REPORT_BOTH,
	  .note = " misses, {stlb_fills} fills, {stlb_flushes} flushes, {guest_exits} "
		  "guest exits" },
	{ "stlb_fills", NULL, REPORT_U64, VCPU(stlb_fills), REPORT_JSON },
	{ "stlb_flushes", NULL, REPORT_U64, VCPU(stlb_flushes), REPORT_JSON },
	{ "guest_exits", NULL, REPORT_U64, VCPU(guest_exits), REPORT_JSON },
};

#define RES(m) REPORT_AT(struct scenario_result, m)

/* "memory (host totals; pages):" in text, "memory" in JSON; in pages. */
static const struct report_field memory_fields[] = {
	{ "swap_bytes", NULL, REPORT_U64, RES(swap_bytes), REPORT_JSON },
	{ "pswpin", "swapped in", REPORT_U64, RES(host.events[PSWPIN]), REPORT_BOTH,
	  .note = "  ({MiB} MiB)" },
	{ "pswpout", "swapped out", REPORT_U64, RES(host.events[PSWPOUT]), REPORT_BOTH,
	  .note = "  ({MiB} MiB)" },
	{ "swap_write_errors", "swap write errors", REPORT_U64,
	  RES(host.events[SWAP_WRITE_ERROR]), REPORT_BOTH,
	  .note = "  (page kept resident and dirty)" },
	{ "swap_read_errors", "swap read errors", REPORT_U64,
	  RES(host.events[SWAP_READ_ERROR]), REPORT_BOTH },
	{ "pgscan", NULL, REPORT_U64, RES(host.events[PGSCAN]), REPORT_JSON },
	{ "pgsteal", "reclaimed (pgsteal)", REPORT_U64, RES(host.events[PGSTEAL]),
	  REPORT_BOTH, .note = "  (scanned {pgscan})" },
	{ "pgactivate", "activated", REPORT_U64, RES(host.events[PGACTIVATE]), REPORT_BOTH,
	  .note = "  (referenced only by a guest: {pgreferenced_secondary})" },
	{ "pgreferenced_secondary", NULL, REPORT_U64,
	  RES(host.events[PGREFERENCED_SECONDARY]), REPORT_JSON },
	{ "kswapd_wakeups", "kswapd wakeups", REPORT_U64, RES(host.events[KSWAPD_WAKEUP]),
	  REPORT_BOTH },
	{ "allocstalls", "direct reclaims", REPORT_U64, RES(host.events[ALLOCSTALL]),
	  REPORT_BOTH, .note = "  (allocation stalls)" },
	{ "oom_kills", "OOM kills", REPORT_U64, RES(host.oom_kills), REPORT_BOTH,
	  .note = "  (reaped {oom_reaped_pages} pages, {oom_reap_retries} reaper retries"
		  "{oom_fork_children?; fork children among the victims})" },
	{ "oom_reaped_pages", NULL, REPORT_U64, RES(host.oom_reaped_pages), REPORT_JSON },
	{ "oom_reap_retries", NULL, REPORT_U64, RES(host.oom_reap_retries), REPORT_JSON },
	{ "oom_fork_children", NULL, REPORT_U64, RES(oom_fork_children), REPORT_JSON },
	{ "kvm_nonblock_starts", "KVM non-blockable", REPORT_U64, RES(kvm.nonblock_starts),
	  REPORT_BOTH, .note = "  invalidation starts (OOM reaper): {kvm_nonblock_eagain} "
			       "-EAGAIN, {kvm_nonblock_flush_in_guest} found vCPUs in "
			       "guest mode" },
	{ "kvm_nonblock_eagain", NULL, REPORT_U64, RES(kvm.nonblock_eagain), REPORT_JSON },
	{ "kvm_nonblock_flush_in_guest", NULL, REPORT_U64, RES(kvm.nonblock_flush_in_guest),
	  REPORT_JSON },
};

/* "host:" in text; top-level members in JSON. */
static const struct report_field host_fields[] = {
	{ "final_pages_checked", "final check", REPORT_U64, RES(final_pages_checked),
	  REPORT_BOTH, .note = "  pages re-read through the host" },
	{ "poison_hits", "poison hits", REPORT_U64, RES(poison_hits), REPORT_BOTH },
	{ "frames_in_use", "frames in use", REPORT_U64, RES(frames_in_use), REPORT_BOTH,
	  .note = "  after teardown" },
};

/* "gfn_to_pfn caches:" in text, "gpc" in JSON: the pages the host writes
 * into guest memory (seed 001), summed over VMs. */
static const struct report_field gpc_fields[] = {
	{ "refreshes", "cache refreshes", REPORT_U64, RES(kvm.gpc_refreshes), REPORT_BOTH,
	  .note = "  ({/s}/s)" },
	{ "invalidations", "cache invalidations", REPORT_U64, RES(kvm.gpc_invalidations),
	  REPORT_BOTH, .note = "  (by the notifier)" },
	{ "requests", "GPC_INVALIDATE reqs", REPORT_U64, RES(kvm.gpc_requests), REPORT_BOTH,
	  .note = "  ({request_waits} waited for a vCPU in guest mode)" },
	{ "request_waits", NULL, REPORT_U64, RES(kvm.gpc_request_waits), REPORT_JSON },
	{ "nonblock_in_guest", NULL, REPORT_U64, RES(kvm.gpc_nonblock_in_guest),
	  REPORT_JSON },
	{ "runstate_updates", "run-state updates", REPORT_U64, RES(kvm.runstate_updates),
	  REPORT_BOTH, .note = "  (at guest entries)" },
	{ "clock_writes", "clock writes", REPORT_U64, RES(clock.writes), REPORT_BOTH,
	  .note = "  ({clock_misses} atomic-mode misses, {clock_refreshes} worker "
		  "refreshes, {clock_refresh_errors} failed, {clock_overruns} late ticks)" },
	{ "clock_misses", NULL, REPORT_U64, RES(clock.misses), REPORT_JSON },
	{ "clock_refreshes", NULL, REPORT_U64, RES(clock.refreshes), REPORT_JSON },
	{ "clock_refresh_errors", NULL, REPORT_U64, RES(clock.refresh_errors), REPORT_JSON },
	{ "clock_overruns", NULL, REPORT_U64, RES(clock.overruns), REPORT_JSON },
	{ "clock_reads", "guest reads", REPORT_U64, RES(total.clock_reads), REPORT_BOTH,
	  .note = " of the clock, {runstate_reads} of the own run-state area, "
		  "{runstate_sibling_reads} of a sibling's ({dev_zero_reads} discarded)" },
	{ "runstate_reads", NULL, REPORT_U64, RES(total.runstate_reads), REPORT_JSON },
	{ "runstate_sibling_reads", NULL, REPORT_U64, RES(total.runstate_sibling_reads),
	  REPORT_JSON },
	{ "dev_zero_reads", NULL, REPORT_U64, RES(total.dev_zero_reads), REPORT_JSON },
	{ "dev_busy", NULL, REPORT_U64, RES(total.dev_busy), REPORT_JSON },
	{ "dev_churn", "device-page churn", REPORT_U64, RES(total.dev_churn), REPORT_BOTH,
	  .note = "  (ops on the clock and run-state pages)" },
};

#define WSS(m) REPORT_AT(struct scenario_wss, m)

/* Each VM's "wss" in JSON (the text has a line per VM of its own). */
static const struct report_field wss_fields[] = {
	{ "intervals", NULL, REPORT_U64, WSS(intervals), REPORT_JSON },
	{ "last_pages", NULL, REPORT_U64, WSS(last_pages), REPORT_JSON },
	{ "mean_pages", NULL, REPORT_F64, WSS(mean_pages), REPORT_JSON, .prec = 1 },
	{ "min_pages", NULL, REPORT_U64, WSS(min_pages), REPORT_JSON },
	{ "max_pages", NULL, REPORT_U64, WSS(max_pages), REPORT_JSON },
	{ "last_mapped", NULL, REPORT_U64, WSS(last_mapped), REPORT_JSON },
	{ "mark_ns_per_page", NULL, REPORT_F64, WSS(mark_ns_per_page), REPORT_JSON,
	  .prec = 1 },
	{ "count_ns_per_page", NULL, REPORT_F64, WSS(count_ns_per_page), REPORT_JSON,
	  .prec = 1 },
};

static const struct report_table counts_table = REPORT_TABLE(counts_fields);
/* Shared with run_riscv.c (cli.h). */
const struct report_table run_kvm_table = REPORT_TABLE(kvm_fields);
static const struct report_table vcpu_table = REPORT_TABLE(vcpu_fields);
static const struct report_table memory_table = REPORT_TABLE(memory_fields);
static const struct report_table host_table = REPORT_TABLE(host_fields);
static const struct report_table wss_table = REPORT_TABLE(wss_fields);
static const struct report_table gpc_table = REPORT_TABLE(gpc_fields);

/* ---- output ------------------------------------------------------------------ */

#define U(x) ((unsigned long long)(x))
#define MIB(pages) ((double)(pages) * PAGE_SIZE / (1 << 20))

static void progress(const struct scenario_progress *p, void *arg)
{
	FILE *f = arg;

	fprintf(f, "[%5.1fs] accesses/s %7s  faults/s %7s  invalidations/s %6s  "
		"retries %5llu  tlb-flushes %6llu  churn %4llu%s\n",
		p->t_s, report_human(p->accesses_per_s), report_human(p->faults_per_s),
		report_human(p->invalidations_per_s), U(p->retries), U(p->tlb_flushes),
		U(p->churn_ops), p->failures ? "  FAILURES" : "");
	run_progress_memory(f, p);
	if (p->wss_nr_vms) {
		fprintf(f, "[%5.1fs] working set (%.2f s):", p->t_s, p->wss_interval_s);
		for (unsigned int i = 0; i < p->wss_nr_vms; i++)
			fprintf(f, "  vm%u %s pages (%.1f MiB)", i,
				report_human((double)p->wss_pages[i]), MIB(p->wss_pages[i]));
		fputc('\n', f);
	}
	fflush(f);
}

void run_progress_memory(FILE *f, const struct scenario_progress *p)
{
	fprintf(f, "[%5.1fs] memory: free %.1f MiB", p->t_s, MIB(p->free_pages));
	if (p->swap_pages)
		fprintf(f, "  swap %.1f/%.0f MiB used  swap-in %s pages/s  swap-out %s pages/s",
			MIB(p->swap_pages - p->swap_free_pages), MIB(p->swap_pages),
			report_human(p->pswpin_per_s), report_human(p->pswpout_per_s));
	for (unsigned int i = 0; i < p->nr_vms; i++) {
		fprintf(f, "  vm%u rss %.1f MiB", i, MIB(p->vm_rss_pages[i]));
		if (p->swap_pages)
			fprintf(f, " swapped %.1f MiB", MIB(p->vm_swap_pages[i]));
		if (p->vm_killed[i])
			fprintf(f, " KILLED");
		if (p->vm_ended[i])
			fprintf(f, " ended");
	}
	fputc('\n', f);
}

/* The names of the bits set in mask, comma-separated; "none" if none. */
static void name_list(opt_choices_fn choices, unsigned int mask, char *buf, size_t len);

void run_break_names(unsigned int breaks, char *buf, size_t len)
{
	name_list(break_choice, breaks, buf, len);
}

static void name_list(opt_choices_fn choices, unsigned int mask, char *buf, size_t len)
{
	struct opt_choice c;
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned int i = 0; choices(i, &c); i++)
		if (mask & c.value)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "," : "",
						c.name);
	if (!off)
		snprintf(buf, len, "none");
}

static void print_failures(const struct scenario_result *r)
{
	printf("failures:\n");
	for (int k = 0; k < WL_NR_FAIL_KINDS; k++)
		if (r->fail_count[k])
			printf("  %-45s %llu\n", wl_fail_kind_name(k), U(r->fail_count[k]));
	printf("  first %u:\n", r->nr_first);
	for (unsigned int i = 0; i < r->nr_first; i++) {
		const struct wl_failure *f = &r->first[i];
		char who[48] = "";

		if (f->vm >= 0 && f->vcpu >= 0)
			snprintf(who, sizeof(who), "vm%d vcpu%d", f->vm, f->vcpu);
		else if (f->vm >= 0)
			snprintf(who, sizeof(who), "vm%d vmm", f->vm);
		else
			snprintf(who, sizeof(who), "host");
		printf("  [%6.3fs] %-13s %s: %s\n", f->t_s, who, wl_fail_kind_key(f->kind),
		       f->msg);
	}
}

static void print_text(const struct run_opts *o, const struct scenario_result *r)
{
	const struct scenario_config *cfg = &o->cfg;
	const struct scenario_counts *t = &r->total;
	const struct report_style st = {
		.indent = 2, .label_width = 20, .value_width = 14,
		.seconds = r->elapsed_s, .show = cfg->stall ? SHOW_STALLS : 0,
	};
	char churn[64], brk[64];

	name_list(churn_choice, cfg->churn, churn, sizeof(churn));
	name_list(break_choice, cfg->breaks, brk, sizeof(brk));
	printf("tandem run: %u VMs x %u vCPUs, %llu MiB guest RAM each, host %llu MiB, "
	       "swap %llu MiB, workload %s (%u%% writes), churn %s, kick %s, seed %llu%s%s%s\n",
	       cfg->nr_vms, cfg->nr_vcpus, U(cfg->guest_mem >> 20), U(r->host_mem >> 20),
	       U(r->swap_bytes >> 20), wl_workload_name(cfg->workload), cfg->write_pct, churn,
	       kvm_kick_mode_name(r->kick), U(cfg->seed), cfg->breaks ? ", BREAK " : "",
	       cfg->breaks ? brk : "", cfg->stall ? ", stalls on" : "");
	printf("  ran %.2f s%s (setup %.2f s, teardown %.2f s)\n", r->elapsed_s,
	       r->stopped_early ? ", stopped at the first failure" : "", r->setup_s,
	       r->teardown_s);
	printf("guests:\n");
	report_text(stdout, &st, &counts_table, t);
	printf("secondary MMU:\n");
	report_text(stdout, &st, &run_kvm_table, &r->kvm);
	report_text(stdout, &st, &vcpu_table, &r->vcpu);
	if (cfg->clock_period_ns || cfg->runstate) {
		if (cfg->clock_period_ns)
			printf("gfn_to_pfn caches (clock every %.0f us, run-state areas %s):\n",
			       (double)cfg->clock_period_ns / 1e3, cfg->runstate ? "on" : "off");
		else
			printf("gfn_to_pfn caches (no clock, run-state areas on):\n");
		report_text(stdout, &st, &gpc_table, r);
	}
	printf("churn:\n  ");
	for (unsigned int k = 0; k < WL_NR_CHURN; k++)
		printf("%s %llu  ", wl_churn_name(k), U(t->churn[k]));
	printf("(pages compared %llu", U(t->pages_checked_by_churn));
	if (t->forks_skipped)
		printf("; forks skipped, no free frame for page tables: %llu",
		       U(t->forks_skipped));
	printf(")\n");
	printf("per VM:\n");
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		const struct scenario_vm_result *v = &r->vm[i];

		printf("  vm%-2u accesses %s  faults %s  retries %llu  invalidations %s  "
		       "tlb-flushes %s  churn %llu/%llu/%llu/%llu\n", i,
		       report_human((double)v->c.accesses), report_human((double)v->kvm.faults),
		       U(v->kvm.fault_retries), report_human((double)v->kvm.invalidations),
		       report_human((double)v->kvm.tlb_flushes), U(v->c.churn[0]),
		       U(v->c.churn[1]), U(v->c.churn[2]), U(v->c.churn[3]));
	}
	printf("memory (host totals; pages):\n");
	report_text(stdout, &st, &memory_table, r);
	for (unsigned int i = 0; i < r->nr_vms; i++)
		printf("  vm%-2u final rss %.1f MiB, swapped %.1f MiB%s\n", i,
		       MIB(r->vm[i].rss_pages), MIB(r->vm[i].swap_pages),
		       r->vm[i].killed ? " (killed)" : "");
	if (r->vms_killed) {
		printf("killed VMs (their memory is gone by design; not judged):\n");
		for (unsigned int i = 0; i < r->nr_vms; i++)
			if (r->vm[i].killed)
				printf("  [%6.3fs] %s; %llu failures in it after the kill "
				       "ignored\n", r->vm[i].killed_at_s, r->vm[i].kill_msg,
				       U(r->vm[i].failures_ignored));
	}
	if (cfg->wss_interval_ns) {
		printf("working set (every %.3g s: guest RAM pages used in the interval):\n",
		       (double)cfg->wss_interval_ns / 1e9);
		for (unsigned int i = 0; i < r->nr_vms; i++) {
			const struct scenario_wss *w = &r->vm[i].wss;
			double ram = (double)(cfg->guest_mem >> PAGE_SHIFT);

			printf("  vm%-2u last %llu (%.1f%% of RAM)  mean %.0f  min %llu  max %llu  "
			       "over %llu intervals; mapped %llu; passes %.0f ns/page mark, "
			       "%.0f ns/page count\n", i, U(w->last_pages),
			       100.0 * (double)w->last_pages / ram, w->mean_pages,
			       U(w->min_pages), U(w->max_pages), U(w->intervals),
			       U(w->last_mapped), w->mark_ns_per_page, w->count_ns_per_page);
		}
	}
	printf("host:\n");
	report_text(stdout, &st, &host_table, r);
	if (r->failures)
		print_failures(r);
	if (r->ok)
		printf("integrity: OK\n");
	else
		printf("integrity: FAILED: %s\n", r->verdict);
}

static const char *kill_key(enum wl_kill_reason k)
{
	switch (k) {
	case WL_KILLED_OOM:
		return "\"oom\"";
	case WL_KILLED_SWAP_READ:
		return "\"swap_read_error\"";
	default:
		return "null";
	}
}

static void print_json(const struct run_opts *o, const struct scenario_result *r)
{
	const struct scenario_config *cfg = &o->cfg;
	char churn[64], brk[64];

	name_list(churn_choice, cfg->churn, churn, sizeof(churn));
	name_list(break_choice, cfg->breaks, brk, sizeof(brk));
	printf("{\"command\": \"run\", \"config\": {\"vms\": %u, \"vcpus\": %u, "
	       "\"guest_mem\": %llu, \"host_mem\": %llu, \"duration_s\": %.3f, "
	       "\"workload\": \"%s\", \"write_pct\": %u, \"seed\": %llu, \"churn\": \"%s\", "
	       "\"break\": \"%s\", \"stall\": %s, \"kick\": \"%s\"", cfg->nr_vms,
	       cfg->nr_vcpus, U(cfg->guest_mem), U(r->host_mem),
	       (double)cfg->duration_ns / 1e9, wl_workload_name(cfg->workload),
	       cfg->write_pct, U(cfg->seed), churn, brk, cfg->stall ? "true" : "false",
	       kvm_kick_mode_name(r->kick));
	if (cfg->wss_interval_ns)
		printf(", \"wss_interval_s\": %.3f", (double)cfg->wss_interval_ns / 1e9);
	printf(", \"clock_period_ns\": %llu, \"runstate\": %s", U(cfg->clock_period_ns),
	       cfg->runstate ? "true" : "false");
	printf(", \"swap_bytes\": %llu, \"swap_fail_writes\": %ld, \"swap_fail_reads\": %ld",
	       U(r->swap_bytes), cfg->swap_fail_writes, cfg->swap_fail_reads);
	printf("},\n");
	printf(" \"elapsed_s\": %.3f, \"setup_s\": %.3f, \"teardown_s\": %.3f, "
	       "\"stopped_early\": %s,\n", r->elapsed_s, r->setup_s, r->teardown_s,
	       r->stopped_early ? "true" : "false");
	printf(" \"totals\": {");
	report_json(stdout, &counts_table, &r->total);
	printf("},\n \"kvm\": {");
	report_json(stdout, &run_kvm_table, &r->kvm);
	printf("},\n \"vcpu\": {");
	report_json(stdout, &vcpu_table, &r->vcpu);
	printf("},\n \"gpc\": {");
	report_json(stdout, &gpc_table, r);
	printf("},\n \"vms\": [");
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		printf("%s\n  {\"vm\": %u, \"counts\": {", i ? "," : "", i);
		report_json(stdout, &counts_table, &r->vm[i].c);
		printf("}, \"kvm\": {");
		report_json(stdout, &run_kvm_table, &r->vm[i].kvm);
		printf("}");
		if (cfg->wss_interval_ns) {
			printf(", \"wss\": {");
			report_json(stdout, &wss_table, &r->vm[i].wss);
			printf("}");
		}
		printf("}");
	}
	printf("],\n \"memory\": {");
	report_json(stdout, &memory_table, r);
	printf(",\n  \"vms\": [");
	for (unsigned int i = 0; i < r->nr_vms; i++) {
		const struct scenario_vm_result *v = &r->vm[i];

		printf("%s{\"vm\": %u, \"rss_pages\": %llu, \"swap_pages\": %llu, "
		       "\"killed\": %s", i ? ", " : "", i, U(v->rss_pages), U(v->swap_pages),
		       kill_key(v->killed));
		if (v->killed) {
			printf(", \"killed_at_s\": %.3f, \"failures_ignored\": %llu, "
			       "\"reason\": ", v->killed_at_s, U(v->failures_ignored));
			json_print_string(stdout, v->kill_msg);
		}
		printf("}");
	}
	printf("]},\n ");
	report_json(stdout, &host_table, r);
	printf(",\n \"failures\": {");
	for (int k = 0, first = 1; k < WL_NR_FAIL_KINDS; k++) {
		if (!r->fail_count[k])
			continue;
		printf("%s\"%s\": %llu", first ? "" : ", ", wl_fail_kind_key(k),
		       U(r->fail_count[k]));
		first = 0;
	}
	printf("},\n \"first_failures\": [");
	for (unsigned int i = 0; i < r->nr_first; i++) {
		const struct wl_failure *f = &r->first[i];

		printf("%s{\"kind\": \"%s\", \"vm\": %d, \"vcpu\": %d, \"gfn\": %llu, "
		       "\"t_s\": %.3f, \"message\": ", i ? ", " : "", wl_fail_kind_key(f->kind),
		       f->vm, f->vcpu, U(f->gfn), f->t_s);
		json_print_string(stdout, f->msg);
		printf("}");
	}
	printf("],\n \"integrity\": \"%s\", \"verdict\": ", r->ok ? "OK" : "FAILED");
	json_print_string(stdout, r->verdict);
	printf("}\n");
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = { .gpc = GPC_ALL };
	struct scenario_result *res;
	uint64_t given;
	int status, err;

	scenario_config_default(&o.cfg);
	status = opt_parse(&run_table, argc, argv, &o, &given, NULL);
	if (status)
		return status < 0 ? 0 : status;
	if (!(o.gpc & GPC_CLOCK) && opt_given(&run_table, given, "clock-period")) {
		fprintf(stderr, "tandem " CMD ": --clock-period needs the clock (--gpc "
			"all or a list with clock)\n");
		return EXIT_USAGE;
	}
	if (!(o.gpc & GPC_CLOCK))
		o.cfg.clock_period_ns = 0;
	o.cfg.runstate = o.gpc & GPC_RUNSTATE;
	if ((o.cfg.breaks & KVM_BREAK_GPC_INVALIDATE) && !o.gpc) {
		fprintf(stderr, "tandem " CMD ": --break=gpc-invalidate needs a cache to break "
			"(--gpc clock or runstate)\n");
		return EXIT_USAGE;
	}
	if ((o.cfg.breaks & KVM_BREAK_GPC_REQUEST) && !(o.gpc & GPC_RUNSTATE)) {
		fprintf(stderr, "tandem " CMD ": --break=gpc-request breaks the run-state "
			"areas' caches (--gpc runstate)\n");
		return EXIT_USAGE;
	}
	if (o.guest == GUEST_RISCV) {
		struct rv_scenario_config rc;

		status = riscv_opts(&o, given, &rc);
		return status ? status : run_riscv(&rc, o.json, o.quiet);
	}
	for (size_t i = 0; i < ARRAY_SIZE(riscv_only_opts); i++)
		if (opt_given(&run_table, given, riscv_only_opts[i])) {
			fprintf(stderr, "tandem " CMD ": --%s needs --guest riscv\n",
				riscv_only_opts[i]);
			return EXIT_USAGE;
		}
	if (o.cfg.breaks & RV_SCENARIO_BREAKS) {
		fprintf(stderr, "tandem " CMD ": --break=%s needs --guest riscv (the C guests' "
			"vCPUs have no guest page tables, so no GVA tables)\n",
			break_name(o.cfg.breaks & RV_SCENARIO_BREAKS));
		return EXIT_USAGE;
	}
	status = check_opts(&o, given);
	if (status)
		return status;
	if (!o.quiet) {
		o.cfg.progress = progress;
		o.cfg.progress_arg = o.json ? stderr : stdout;
	}
	res = xcalloc(1, sizeof(*res));
	err = scenario_run(&o.cfg, res);
	if (err == -EINVAL || err == -EOPNOTSUPP) {
		fprintf(stderr, "tandem " CMD ": %s\n", res->verdict);
		free(res);
		return EXIT_USAGE;
	}
	if (err) {
		fprintf(stderr, "tandem " CMD ": could not set up the scenario: %s\n",
			res->verdict);
		if (o.json)
			printf("{\"command\": \"run\", \"integrity\": \"FAILED\", \"verdict\": "
			       "\"setup failed\"}\n");
		else
			printf("integrity: FAILED: setup: %s\n", res->verdict);
		free(res);
		return 1;
	}
	if (o.json)
		print_json(&o, res);
	else
		print_text(&o, res);
	status = res->ok ? 0 : 1;
	free(res);
	return status;
}
