/* SPDX-License-Identifier: MIT */
/*
 * riscv_scenario.c - `tandem run --guest riscv` (workload.h): RISC-V virt
 * machines running the project's S-mode kernel over one overcommitted,
 * churning host, judged by the kernels' own checks and the host checker.
 *
 * Lifecycle (the caller's thread does all of it):
 *   SETUP     host_create (swap when the guests' RAM exceeds it); per VM a
 *             memfd for its console and virt_create with bootargs
 *             "vm=<id> secs=<S> <cfg.bootargs> <cfg.vm_bootargs[id]>"
 *   RUNNING   virt_start every VM; then poll: virt_wait(vm, 2 ms) on each
 *             VM still running (virt_wait also performs a guest's resets,
 *             which only this thread may do), a progress sample a second,
 *             and at cfg.timeout_ns every VM still running is stopped
 *   CHECK     per VM: stop (joins harts and churn), stats, its console
 *             scanned for the kernel's last line and its failure lines,
 *             each classified (enum rv_fail_kind: line_kind)
 *   TEARDOWN  virt_destroy every VM; then the host, as `tandem boot`
 *             judges it: frames given a moment to come back (kswapd may
 *             hold an isolated page or a last mmput), host_check_invariants,
 *             frames and swap slots in use, poison hits, host_destroy
 *
 * A VM whose kernel fails does not end the others' runs: each kernel
 * drains its processes and reports, and the verdict names every VM that
 * failed and the kinds of its failures.
 *
 * Each VM's kvm_config gets cfg.gva and cfg.breaks | cfg.vm_breaks[id]: a
 * GVA break on one VM shows its kind of failure in that VM alone.
 *
 * The console is a memfd rather than a pipe: the UART writes it from the
 * hart's thread and nobody has to drain it while the guest runs; the
 * kernel's output is a few KB (verbose=1: a line per process).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "workload_int.h"
#include "tandem/virt.h"
#include "base/clock.h"

#define MiB (1ULL << 20)
#define POLL_NS         (2 * NSEC_PER_MSEC)
#define SETTLE_TRIES    200             /* x 10 ms: frames coming back */
/* OpenSBI fw_jump (Debian's, as QEMU's) moves the device tree to RAM +
 * 34M: less RAM and it hangs before its banner. */
#define RV_RAM_MIN      (40 * MiB)

struct rv_vm {
	unsigned int id;
	struct virt *virt;
	int console_fd;
	bool started, ended, timed_out;
	int status;
	enum virt_exit exit;
	uint64_t ended_ns;
};

struct rv_sample {
	uint64_t t;
	uint64_t instret[WL_MAX_VMS], total_instret;
	uint64_t faults, invalidations, retries, flushes, churn;
	uint64_t gva_refills, gva_misses, sfence_vma, gva_zapped_leaves, gva_zapped_nodes;
	uint64_t pswpin, pswpout, free_pages, swap_free, swap_slots;
};

void rv_scenario_config_default(struct rv_scenario_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nr_vms = 2;
	cfg->nr_harts = 2;
	cfg->guest_mem = 256 * MiB;
	cfg->duration_ns = 10 * NSEC_PER_SEC;
	cfg->swap_bytes = WL_SWAP_AUTO;
	cfg->churn_interval_ms = 10;
}

/* Sized as the C-guest scenario's hosts (wl_host_mem_for, scenario.c). */
uint64_t rv_scenario_host_mem(const struct rv_scenario_config *cfg)
{
	return wl_host_mem_for(cfg->nr_vms, cfg->guest_mem);
}

static uint64_t rv_host_mem_min(const struct rv_scenario_config *cfg)
{
	return wl_host_mem_min_for(cfg->nr_vms, cfg->guest_mem);
}

uint64_t rv_scenario_swap_bytes(const struct rv_scenario_config *cfg)
{
	return wl_swap_bytes_for(cfg->nr_vms, cfg->guest_mem, cfg->host_mem, cfg->swap_bytes);
}

/* Every VM's breaks together. */
static unsigned int all_breaks(const struct rv_scenario_config *cfg)
{
	unsigned int all = cfg->breaks;

	for (unsigned int i = 0; i < WL_MAX_VMS; i++)
		all |= cfg->vm_breaks[i];
	return all;
}

int rv_scenario_check_config(const struct rv_scenario_config *cfg, char *why, size_t len)
{
	if (cfg->nr_vms < 1 || cfg->nr_vms > WL_MAX_VMS)
		snprintf(why, len, "VMs: %u is out of range (1..%d)", cfg->nr_vms, WL_MAX_VMS);
	else if (cfg->nr_harts < 1 || cfg->nr_harts > KVM_MAX_VCPUS)
		snprintf(why, len, "harts per VM: %u is out of range (1..%d)", cfg->nr_harts,
			 KVM_MAX_VCPUS);
	else if (cfg->guest_mem < RV_RAM_MIN || cfg->guest_mem > VIRT_RAM_MAX ||
		 cfg->guest_mem % (2 * MiB))
		snprintf(why, len, "guest memory: %llu bytes is not a multiple of 2M in 40M..2G "
			 "(the RISC-V machine's RAM; OpenSBI fw_jump puts the device tree "
			 "at RAM + 34M)", (unsigned long long)cfg->guest_mem);
	else if (cfg->duration_ns == 0 || cfg->duration_ns > 86400ULL * NSEC_PER_SEC)
		snprintf(why, len, "duration: must be more than 0 and at most 24 hours");
	else if (cfg->churn_interval_ms > 60000)
		snprintf(why, len, "churn interval: %u ms is more than 60 s",
			 cfg->churn_interval_ms);
	else if (cfg->gva > KVM_GVA_OFF)
		snprintf(why, len, "GVA mode: %u is not targeted, flush-all or off",
			 (unsigned int)cfg->gva);
	else if (!cfg->bios || !cfg->kernel)
		snprintf(why, len, "no %s image given", cfg->bios ? "kernel" : "bios");
	else if (cfg->host_mem && (cfg->host_mem < HOST_RAM_MIN ||
				   cfg->host_mem > HOST_RAM_MAX ||
				   !PAGE_ALIGNED(cfg->host_mem)))
		snprintf(why, len, "host memory: %llu bytes is not a multiple of 4K in 16M..64G",
			 (unsigned long long)cfg->host_mem);
	else if (cfg->swap_bytes != WL_SWAP_AUTO &&
		 (cfg->swap_bytes > HOST_SWAP_MAX || !PAGE_ALIGNED(cfg->swap_bytes)))
		snprintf(why, len, "swap: %llu bytes is not a multiple of 4K up to 256G",
			 (unsigned long long)cfg->swap_bytes);
	else if (cfg->host_mem && cfg->host_mem < rv_host_mem_min(cfg) &&
		 rv_scenario_swap_bytes(cfg) == 0)
		snprintf(why, len, "host memory: %llu MiB is too small for %u VMs x %llu MiB "
			 "without swap (at least %llu MiB; default %llu MiB)",
			 (unsigned long long)(cfg->host_mem / MiB), cfg->nr_vms,
			 (unsigned long long)(cfg->guest_mem / MiB),
			 (unsigned long long)((rv_host_mem_min(cfg) + MiB - 1) / MiB),
			 (unsigned long long)(rv_scenario_host_mem(cfg) / MiB));
	else if (!cfg->host_mem && rv_host_mem_min(cfg) > HOST_RAM_MAX)
		snprintf(why, len, "guest memory: %u VMs x %llu MiB does not fit a 64G host",
			 cfg->nr_vms, (unsigned long long)(cfg->guest_mem / MiB));
	else if (all_breaks(cfg) & ~RV_SCENARIO_BREAKS)
		snprintf(why, len, "breaks: RISC-V VMs take only the GVA tables' "
			 "(KVM_BREAK_GVA_SFENCE, KVM_BREAK_GVA_ZAP) and the STA area's "
			 "(KVM_BREAK_GPC_REQUEST)");
	else
		return 0;
	return -EINVAL;
}

/* ---- the console: the kernel's last line and its failures ---------------- */

static const struct { const char *key, *name; } fail_kinds[RV_NR_FAIL_KINDS] = {
	[RV_FAIL_STALE_TRANSLATION] = { "stale_translation", "stale translation" },
	[RV_FAIL_WRONG_DATA] = { "wrong_data", "wrong data" },
	[RV_FAIL_PANIC] = { "panic", "panic" },
	[RV_FAIL_KILLED] = { "killed", "process killed" },
	[RV_FAIL_LEAK] = { "leak", "pages leaked" },
	[RV_FAIL_STEAL] = { "steal", "steal time" },
	[RV_FAIL_OTHER] = { "other", "other failure" },
	[RV_FAIL_NO_REPORT] = { "no_report", "no report" },
	[RV_FAIL_TIMEOUT] = { "timeout", "timed out" },
	[RV_FAIL_MACHINE] = { "machine", "machine" },
};

const char *rv_fail_kind_name(enum rv_fail_kind kind)
{
	return (unsigned int)kind < RV_NR_FAIL_KINDS ? fail_kinds[kind].name : "?";
}

const char *rv_fail_kind_key(enum rv_fail_kind kind)
{
	return (unsigned int)kind < RV_NR_FAIL_KINDS ? fail_kinds[kind].key : "?";
}

#define INIT_STATUS "init exited with status "

/*
 * The kind of one of the kernel's failure lines, by what guests/kernel
 * prints (user/work.c, main.c): -1 for init's exit status, which only
 * follows from the failures its processes reported (a kind of its own
 * only if nothing came before it).
 */
static int line_kind(const char *line)
{
	const char *st;

	if (strstr(line, "PANIC"))
		return RV_FAIL_PANIC;                   /* kernel: PANIC hart N: ... */
	if (strstr(line, "did not fault"))             /* the mprotect and munmap probes */
		return RV_FAIL_STALE_TRANSLATION;
	/* A page mapped fresh (zeroed by its kernel) that shows a stamp
	 * (0x5a in the top byte): the page munmap removed, still mapped.
	 * Anything else there is wrong data. */
	if ((st = strstr(line, "fresh mmap word")))
		return (st = strstr(st, " = ")) && strtoull(st + 3, NULL, 16) >> 56 == 0x5a ?
		       RV_FAIL_STALE_TRANSLATION : RV_FAIL_WRONG_DATA;
	if (strstr(line, "page says"))
		return RV_FAIL_WRONG_DATA;
	if (strstr(line, " killed (status") || strstr(line, ": wait "))
		return RV_FAIL_KILLED;
	if (strstr(line, "FAILURE: steal:"))
		return RV_FAIL_STEAL;
	if (strstr(line, "pages not returned"))
		return RV_FAIL_LEAK;
	if ((st = strstr(line, INIT_STATUS)))
		/* 0x100 | scause: the kernel killed init. */
		return strtol(st + strlen(INIT_STATUS), NULL, 10) & 0x100 ? RV_FAIL_KILLED : -1;
	return RV_FAIL_OTHER;
}

static void count_failure(struct rv_scenario_vm_result *vr, int kind)
{
	if (kind < 0) {
		if (vr->fail_kinds)
			return;
		kind = RV_FAIL_OTHER;
	}
	if (!vr->fail_kinds)
		vr->fail_kind = (enum rv_fail_kind)kind;
	vr->fail_kinds |= 1u << kind;
	vr->fail_count[kind]++;
}

static void report_parse(struct rv_kernel_report *k, const char *line)
{
	static const struct { const char *key; size_t off; } keys[] = {
#define K(name) { #name, offsetof(struct rv_kernel_report, name) }
		K(harts), K(procs), K(forks), K(cow), K(pgfaults), K(ctxsw),
		K(asid_rollovers), K(sfences), K(rfences), K(probes), K(kills), K(ms),
		K(failures), K(sta), K(steal_reads), K(steal_retries), K(steal_ns),
#undef K
	};
	const char *s = line;

	memset(k, 0, sizeof(*k));
	k->seen = true;
	k->ok = strncmp(line, "kernel: OK", 10) == 0;
	k->vm = -1;
	while ((s = strchr(s, ' '))) {
		const char *tok = ++s, *eq = strchr(tok, '=');
		size_t klen;

		if (!eq || memchr(tok, ' ', (size_t)(eq - tok)))
			continue;
		klen = (size_t)(eq - tok);
		if (klen == 2 && strncmp(tok, "vm", 2) == 0) {
			k->vm = strtoll(eq + 1, NULL, 10);
			continue;
		}
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
			if (strlen(keys[i].key) == klen && strncmp(tok, keys[i].key, klen) == 0) {
				uint64_t v = strtoull(eq + 1, NULL, 10);

				memcpy((char *)k + keys[i].off, &v, sizeof(v));
			}
	}
}

static void scan_line(struct rv_scenario_vm_result *vr, char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
		line[--n] = '\0';
	if (strncmp(line, "kernel: OK", 10) == 0 || strncmp(line, "kernel: FAILED", 14) == 0) {
		report_parse(&vr->kernel, line);
		snprintf(vr->kernel_line, sizeof(vr->kernel_line), "%s", line);
		if (strncmp(line, "kernel: FAILED vm=", 18) == 0)
			return;         /* the report itself, not a failure line */
	}
	if (!strstr(line, "FAILURE") && !strstr(line, "FAILED") && !strstr(line, "PANIC"))
		return;
	if (strncmp(line, "kernel: OK", 10) == 0)
		return;
	/* "kernel: FAILED (panic)" follows the PANIC line: a failure of its
	 * own only when that line is missing (a panic whose message faulted
	 * panics again before printing it). */
	if (strstr(line, "FAILURE") || strstr(line, "PANIC"))
		count_failure(vr, line_kind(line));
	else if (strncmp(line, "kernel: FAILED (panic)", 22) == 0 &&
		 !(vr->fail_kinds & (1u << RV_FAIL_PANIC)))
		count_failure(vr, RV_FAIL_PANIC);
	if (vr->nr_fail_lines < RV_SCENARIO_FAIL_LINES)
		snprintf(vr->fail_lines[vr->nr_fail_lines++], sizeof(vr->fail_lines[0]), "%s",
			 line);
}

/* Read the whole console back, a line at a time (long lines cut). */
static void scan_console(struct rv_scenario_vm_result *vr, int fd)
{
	char buf[4096], line[1024];
	size_t ll = 0;
	off_t off = 0;
	ssize_t r;

	while ((r = pread(fd, buf, sizeof(buf), off)) > 0) {
		off += r;
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] == '\n') {
				line[ll] = '\0';
				scan_line(vr, line);
				ll = 0;
			} else if (ll < sizeof(line) - 1) {
				line[ll++] = buf[i];
			}
		}
	}
	if (ll) {
		line[ll] = '\0';
		scan_line(vr, line);
	}
	vr->console_bytes = (uint64_t)off;
}

/* ---- running -------------------------------------------------------------- */

static void take_sample(struct host *host, struct rv_vm *vms, unsigned int n,
			struct rv_sample *s)
{
	struct host_stats hs;

	memset(s, 0, sizeof(*s));
	s->t = clock_now_ns();
	for (unsigned int i = 0; i < n; i++) {
		struct kvm_stats ks;
		struct virt_live live;

		virt_get_live(vms[i].virt, &live);
		s->instret[i] = live.instret;
		s->total_instret += live.instret;
		s->gva_refills += live.gva_refills;
		s->gva_misses += live.ptw_walks;
		s->sfence_vma += live.sfence_vma;
		kvm_get_stats(vmm_kvm(virt_vmm(vms[i].virt)), &ks);
		s->faults += ks.faults + ks.fast_faults;
		s->invalidations += ks.invalidations;
		s->retries += ks.fault_retries;
		s->flushes += ks.tlb_flushes;
		s->gva_zapped_leaves += ks.gva_zapped_leaves;
		s->gva_zapped_nodes += ks.gva_zapped_nodes;
	}
	host_get_stats(host, &hs);
	s->pswpin = hs.events[PSWPIN];
	s->pswpout = hs.events[PSWPOUT];
	s->free_pages = hs.free_pages;
	s->swap_free = hs.swap_free_slots;
	s->swap_slots = hs.swap_slots;
}

static void report_progress(const struct rv_scenario_config *cfg, struct rv_vm *vms,
			    uint64_t start_ns, const struct rv_sample *a,
			    const struct rv_sample *b)
{
	struct scenario_progress p;
	double dt = (double)(b->t - a->t) / 1e9;

	if (dt <= 0)
		return;
	memset(&p, 0, sizeof(p));
	p.t_s = (double)(b->t - start_ns) / 1e9;
	p.faults_per_s = (double)(b->faults - a->faults) / dt;
	p.invalidations_per_s = (double)(b->invalidations - a->invalidations) / dt;
	p.retries = b->retries - a->retries;
	p.tlb_flushes = b->flushes - a->flushes;
	p.mips = (double)(b->total_instret - a->total_instret) / dt / 1e6;
	p.gva_refills_per_s = (double)(b->gva_refills - a->gva_refills) / dt;
	p.gva_misses_per_s = (double)(b->gva_misses - a->gva_misses) / dt;
	p.sfence_vma = b->sfence_vma - a->sfence_vma;
	p.gva_zapped_leaves = b->gva_zapped_leaves - a->gva_zapped_leaves;
	p.gva_zapped_nodes = b->gva_zapped_nodes - a->gva_zapped_nodes;
	p.free_pages = b->free_pages;
	p.swap_pages = b->swap_slots;
	p.swap_free_pages = b->swap_free;
	p.pswpin_per_s = (double)(b->pswpin - a->pswpin) / dt;
	p.pswpout_per_s = (double)(b->pswpout - a->pswpout) / dt;
	p.nr_vms = cfg->nr_vms;
	for (unsigned int i = 0; i < cfg->nr_vms; i++) {
		struct mm *mm = vmm_mm(virt_vmm(vms[i].virt));

		p.vm_mips[i] = (double)(b->instret[i] - a->instret[i]) / dt / 1e6;
		p.vm_rss_pages[i] = get_mm_counter(mm, MM_ANONPAGES);
		p.vm_swap_pages[i] = get_mm_counter(mm, MM_SWAPENTS);
		p.vm_ended[i] = vms[i].ended;
	}
	cfg->progress(&p, cfg->progress_arg);
}

/* Until every VM has ended (or the timeout stopped it), a sample a second. */
static void run_loop(const struct rv_scenario_config *cfg, struct host *host,
		     struct rv_vm *vms, uint64_t start_ns)
{
	uint64_t timeout = cfg->timeout_ns ? cfg->timeout_ns :
			   2 * cfg->duration_ns + 60 * NSEC_PER_SEC;
	uint64_t next = start_ns + NSEC_PER_SEC;
	struct rv_sample prev, cur;
	unsigned int running = cfg->nr_vms;

	take_sample(host, vms, cfg->nr_vms, &prev);
	prev.t = start_ns;
	while (running) {
		uint64_t now;

		for (unsigned int i = 0; i < cfg->nr_vms; i++) {
			struct rv_vm *v = &vms[i];
			int r;

			if (v->ended)
				continue;
			r = virt_wait(v->virt, POLL_NS);
			if (r == -ETIMEDOUT)
				continue;
			v->status = r;
			v->exit = virt_exit_reason(v->virt);
			v->ended = true;
			v->ended_ns = clock_now_ns();
			running--;
		}
		now = clock_now_ns();
		if (cfg->progress && now >= next) {
			take_sample(host, vms, cfg->nr_vms, &cur);
			report_progress(cfg, vms, start_ns, &prev, &cur);
			prev = cur;
			next += NSEC_PER_SEC;
		}
		if (running && now - start_ns >= timeout) {
			/* The stop shows as VIRT_EXIT_USER at the next virt_wait. */
			for (unsigned int i = 0; i < cfg->nr_vms; i++)
				if (!vms[i].ended && !vms[i].timed_out) {
					vms[i].timed_out = true;
					virt_request_exit(vms[i].virt, VIRT_EXIT_USER, 1);
				}
		}
	}
}

/* ---- the verdicts ----------------------------------------------------------- */

/* "stale translation x2, wrong data x1": the kinds of the kernel's lines,
 * the first failure's first. */
static void line_kinds_text(const struct rv_scenario_vm_result *vr, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = -1; i < RV_NR_FAIL_KINDS && off < len; i++) {
		int k = i < 0 ? (int)vr->fail_kind : i;

		if (vr->fail_count[k] && (i < 0 || k != (int)vr->fail_kind))
			off += (size_t)snprintf(buf + off, len - off, "%s%s x%u", off ? ", " : "",
						rv_fail_kind_name(k), vr->fail_count[k]);
	}
}

/* A failure of the machine's end (no line of the kernel's says it). */
static void machine_failure(struct rv_scenario_vm_result *vr, enum rv_fail_kind kind)
{
	if (!vr->fail_kinds)
		vr->fail_kind = kind;
	vr->fail_kinds |= 1u << kind;
	vr->fail_count[kind] = 1;
}

static void judge_vm(const struct rv_vm *v, struct rv_scenario_vm_result *vr,
		     double timeout_s)
{
	const struct rv_kernel_report *k = &vr->kernel;
	char *w = vr->verdict, kinds[160];
	size_t len = sizeof(vr->verdict);
	const char *first = vr->nr_fail_lines ? vr->fail_lines[0] : "";
	const char *first_sep = vr->nr_fail_lines ? "; first: " : "";

	vr->ok = false;
	line_kinds_text(vr, kinds, sizeof(kinds));
	if (v->timed_out) {
		machine_failure(vr, RV_FAIL_TIMEOUT);
		snprintf(w, len, "vm%u: timed out: no end after %.0f s (harts stopped)%s%s%s%s",
			 v->id, timeout_s, kinds[0] ? "; kernel failures: " : "", kinds,
			 first_sep, first);
	} else if (!k->seen) {
		machine_failure(vr, RV_FAIL_NO_REPORT);
		snprintf(w, len, "vm%u: no report: no 'kernel: OK|FAILED' line on its console "
			 "(%s, status %d)%s%s%s%s", v->id, vr->exit_name, v->status,
			 kinds[0] ? "; kernel failures: " : "", kinds, first_sep, first);
	} else if (!k->ok || k->failures) {
		if (!vr->fail_kinds) {
			/* FAILED with no failure line we know. */
			count_failure(vr, RV_FAIL_OTHER);
			line_kinds_text(vr, kinds, sizeof(kinds));
		}
		snprintf(w, len, "vm%u: kernel: FAILED: %s (failures=%llu; %s, status %d)%s%s",
			 v->id, kinds, (unsigned long long)k->failures, vr->exit_name, v->status,
			 first_sep, first);
	} else if (k->vm != (int64_t)v->id) {
		machine_failure(vr, RV_FAIL_MACHINE);
		snprintf(w, len, "vm%u: its kernel reported vm=%lld", v->id, (long long)k->vm);
	} else if (v->exit != VIRT_EXIT_POWEROFF || v->status != 0) {
		machine_failure(vr, RV_FAIL_MACHINE);
		snprintf(w, len, "vm%u: kernel: OK, but the machine ended with %s, status %d",
			 v->id, vr->exit_name, v->status);
	} else if (vr->sta.fork_child_writes) {
		machine_failure(vr, RV_FAIL_WRONG_DATA);
		snprintf(w, len, "vm%u: kernel: OK, but %llu churn fork children saw their copy "
			 "of an SBI STA area change after the fork: a hart wrote through a stale "
			 "gfn_to_pfn cache", v->id, (unsigned long long)vr->sta.fork_child_writes);
	} else {
		vr->ok = true;
	}
	if (vr->ok)
		snprintf(w, len, "OK");
}

/* After teardown: the host whole and empty (as `tandem boot` checks it). */
static void judge_host(struct host *host, struct rv_scenario_result *res)
{
	struct host_stats hs;

	res->frames_in_use = host_frames_in_use(host);
	for (int i = 0; i < SETTLE_TRIES && res->frames_in_use; i++) {
		clock_sleep_ns(10 * NSEC_PER_MSEC);
		res->frames_in_use = host_frames_in_use(host);
	}
	res->invariants = host_check_invariants(host);
	host_get_stats(host, &hs);
	res->swap_slots_in_use = hs.swap_slots - hs.swap_free_slots;
	res->poison_hits = hs.poison_hits;
}

static void verdict(struct rv_scenario_result *res, int destroy_err)
{
	size_t off = 0, len = sizeof(res->verdict);
	char *w = res->verdict;

#define ADD(...) do { if (off < len) off += (size_t)snprintf(w + off, len - off, __VA_ARGS__); } while (0)
	for (unsigned int i = 0; i < res->nr_vms; i++)
		if (!res->vm[i].ok)
			ADD("%s%s", off ? "; " : "", res->vm[i].verdict);
	if (res->invariants)
		ADD("%shost_check_invariants: %s", off ? "; " : "", strerror(-res->invariants));
	if (res->frames_in_use || res->swap_slots_in_use)
		ADD("%shost: %llu frames and %llu swap slots still in use after teardown",
		    off ? "; " : "", (unsigned long long)res->frames_in_use,
		    (unsigned long long)res->swap_slots_in_use);
	if (res->poison_hits)
		ADD("%shost: %llu freed frames were written", off ? "; " : "",
		    (unsigned long long)res->poison_hits);
	if (destroy_err)
		ADD("%shost_destroy: %s (an mm outlived its VM)", off ? "; " : "",
		    strerror(-destroy_err));
#undef ADD
	res->ok = off == 0;
	if (res->ok)
		snprintf(w, len, "OK");
}

/* ---- setup and the whole run ------------------------------------------------ */

static int vm_setup(const struct rv_scenario_config *cfg, struct host *host,
		    struct rv_vm *v, char *why, size_t len)
{
	struct virt_config vc;
	char name[32], args[256], err[256];
	uint64_t secs = (cfg->duration_ns + NSEC_PER_SEC - 1) / NSEC_PER_SEC;
	const char *extra = cfg->vm_bootargs[v->id];
	int ret;

	snprintf(name, sizeof(name), "tandem-vm%u-console", v->id);
	v->console_fd = memfd_create(name, MFD_CLOEXEC);
	if (v->console_fd < 0) {
		ret = -errno;
		snprintf(why, len, "vm%u: console memfd: %s", v->id, strerror(-ret));
		return ret;
	}
	ret = snprintf(args, sizeof(args), "vm=%u secs=%llu%s%s%s%s", v->id,
		       (unsigned long long)secs, cfg->bootargs ? " " : "",
		       cfg->bootargs ? cfg->bootargs : "", extra ? " " : "", extra ? extra : "");
	if (ret >= (int)sizeof(args)) {
		snprintf(why, len, "vm%u: bootargs longer than %zu bytes", v->id,
			 sizeof(args) - 1);
		return -EINVAL;
	}
	virt_config_default(&vc);
	vc.ram_size = cfg->guest_mem;
	vc.smp = cfg->nr_harts;
	vc.bios = cfg->bios;
	vc.kernel = cfg->kernel;
	vc.bootargs = args;
	vc.console_out = v->console_fd;
	vc.churn_interval_ms = cfg->churn_interval_ms;
	vc.sbi_sta_off = cfg->sbi_sta_off;
	vc.kvm.gva = cfg->gva;
	vc.kvm.breaks = cfg->breaks | cfg->vm_breaks[v->id];
	ret = virt_create(host, &vc, &v->virt, err, sizeof(err));
	if (ret)
		snprintf(why, len, "vm%u: %s", v->id, err);
	return ret;
}

static void gva_stats(struct rv_gva_stats *g, const struct virt_stats *vs,
		      const struct kvm_stats *ks)
{
	g->refills = vs->gva_refills;
	g->misses = vs->ptw_walks;
	g->sfence_vma = vs->sfence_vma;
	g->installs = ks->gva_installs;
	g->install_skipped = ks->gva_install_skipped;
	g->install_raced = ks->gva_install_raced;
	g->zapped_leaves = ks->gva_zapped_leaves;
	g->zapped_nodes = ks->gva_zapped_nodes;
	g->sfence_zaps = ks->gva_sfence_zaps;
	g->root_flushes = ks->gva_root_flushes;
	g->rekeys = ks->gva_rekeys;
	g->flush_all = ks->gva_flush_all;
	g->nodes = ks->gva_nodes;
}

static void sta_stats(struct rv_sta_stats *t, const struct virt_stats *vs,
		      const struct kvm_stats *ks)
{
	t->probes = vs->sta_probes;
	t->calls = vs->sta_calls;
	t->errors = vs->sta_errors;
	t->enables = vs->sta_enables;
	t->active = vs->sta_active;
	t->area_writes = ks->runstate_updates;
	t->gpc_refreshes = ks->gpc_refreshes;
	t->gpc_invalidations = ks->gpc_invalidations;
	t->gpc_requests = ks->gpc_requests;
	t->gpc_request_waits = ks->gpc_request_waits;
	t->fork_child_writes = vs->sta_fork_child_writes;
}

static void sta_stats_add(struct rv_sta_stats *sum, const struct rv_sta_stats *t)
{
	const uint64_t *from = (const uint64_t *)t;
	uint64_t *to = (uint64_t *)sum;

	_Static_assert(sizeof(*t) % sizeof(uint64_t) == 0, "rv_sta_stats: uint64_t only");
	for (size_t i = 0; i < sizeof(*t) / sizeof(uint64_t); i++)
		to[i] += from[i];
}

static void gva_stats_add(struct rv_gva_stats *sum, const struct rv_gva_stats *g)
{
	const uint64_t *from = (const uint64_t *)g;
	uint64_t *to = (uint64_t *)sum;

	_Static_assert(sizeof(*g) % sizeof(uint64_t) == 0, "rv_gva_stats: uint64_t only");
	for (size_t i = 0; i < sizeof(*g) / sizeof(uint64_t); i++)
		to[i] += from[i];
}

static void collect_vm(struct rv_vm *v, struct rv_scenario_vm_result *vr, uint64_t start_ns)
{
	struct virt_stats vs;
	struct mm *mm = vmm_mm(virt_vmm(v->virt));

	vr->exit_status = v->timed_out ? -ETIMEDOUT : v->status;
	vr->exit_name = virt_exit_name(v->exit);
	vr->ended_at_s = (double)(v->ended_ns - start_ns) / 1e9;
	virt_get_stats(v->virt, &vs);
	vr->instret = vs.instret;
	vr->exceptions = vs.exceptions;
	vr->interrupts = vs.interrupts;
	vr->ptw_walks = vs.ptw_walks;
	vr->churn_ops = vs.churn_ops;
	kvm_get_stats(vmm_kvm(virt_vmm(v->virt)), &vr->kvm);
	gva_stats(&vr->gva, &vs, &vr->kvm);
	sta_stats(&vr->sta, &vs, &vr->kvm);
	vr->rss_pages = get_mm_counter(mm, MM_ANONPAGES);
	vr->swap_pages = get_mm_counter(mm, MM_SWAPENTS);
	scan_console(vr, v->console_fd);
}

int rv_scenario_run(const struct rv_scenario_config *cfg, struct rv_scenario_result *res)
{
	struct host_config hc = { 0 };
	struct rv_vm vms[WL_MAX_VMS];
	struct host *host;
	unsigned int nr_up = 0;
	uint64_t t0 = clock_now_ns(), start_ns;
	char why[sizeof(res->verdict)] = "";
	int err, destroy_err;

	memset(res, 0, sizeof(*res));
	memset(vms, 0, sizeof(vms));
	if (!cfg) {
		snprintf(res->verdict, sizeof(res->verdict), "no config");
		return -EINVAL;
	}
	if (rv_scenario_check_config(cfg, why, sizeof(why))) {
		snprintf(res->verdict, sizeof(res->verdict), "%s", why);
		return -EINVAL;
	}
	res->nr_vms = cfg->nr_vms;
	res->host_mem = cfg->host_mem ? cfg->host_mem : rv_scenario_host_mem(cfg);
	res->swap_bytes = rv_scenario_swap_bytes(cfg);
	hc.ram_bytes = res->host_mem;
	hc.swap_bytes = res->swap_bytes;
	hc.swap_path = cfg->swap_path;
	/* Under gva-zap the harts write frames the host freed: count them
	 * (the verdict names them) rather than stop at the first. */
	hc.poison_count_only = (all_breaks(cfg) & (KVM_BREAK_GVA_ZAP | KVM_BREAK_GPC_REQUEST)) != 0;
	err = host_create(&hc, &host);
	if (err) {
		snprintf(res->verdict, sizeof(res->verdict), "host_create (%llu MiB, swap %llu "
			 "MiB): %s", (unsigned long long)(res->host_mem / MiB),
			 (unsigned long long)(res->swap_bytes / MiB), strerror(-err));
		return err;
	}
	for (; nr_up < cfg->nr_vms; nr_up++) {
		vms[nr_up].id = nr_up;
		vms[nr_up].console_fd = -1;
		res->vm[nr_up].breaks = cfg->breaks | cfg->vm_breaks[nr_up];
		err = vm_setup(cfg, host, &vms[nr_up], why, sizeof(why));
		if (err) {
			nr_up++;        /* its memfd, maybe */
			goto out_teardown;
		}
	}
	start_ns = clock_now_ns();
	res->setup_s = (double)(start_ns - t0) / 1e9;
	for (unsigned int i = 0; i < nr_up; i++) {
		err = virt_start(vms[i].virt);
		if (err) {
			snprintf(why, sizeof(why), "vm%u: starting the harts: %s", i,
				 strerror(-err));
			goto out_teardown;
		}
		vms[i].started = true;
	}
	run_loop(cfg, host, vms, start_ns);
	res->elapsed_s = (double)(clock_now_ns() - start_ns) / 1e9;

	/* CHECK */
	for (unsigned int i = 0; i < nr_up; i++) {
		struct rv_scenario_vm_result *vr = &res->vm[i];

		virt_stop(vms[i].virt);
		collect_vm(&vms[i], vr, start_ns);
		judge_vm(&vms[i], vr, (double)(cfg->timeout_ns ? cfg->timeout_ns :
					       2 * cfg->duration_ns + 60 * NSEC_PER_SEC) / 1e9);
		res->instret += vr->instret;
		wl_kvm_stats_add(&res->kvm, &vr->kvm);
		gva_stats_add(&res->gva, &vr->gva);
		sta_stats_add(&res->sta, &vr->sta);
	}
	host_get_stats(host, &res->host);

out_teardown:
	t0 = clock_now_ns();
	for (unsigned int i = 0; i < nr_up; i++) {
		virt_destroy(vms[i].virt);
		if (vms[i].console_fd >= 0)
			close(vms[i].console_fd);
	}
	if (!err)
		judge_host(host, res);
	destroy_err = host_destroy(host);
	res->teardown_s = (double)(clock_now_ns() - t0) / 1e9;
	if (err) {
		snprintf(res->verdict, sizeof(res->verdict), "%s", why);
		return err;
	}
	verdict(res, destroy_err);
	return 0;
}
