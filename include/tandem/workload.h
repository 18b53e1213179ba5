/* SPDX-License-Identifier: MIT */
/*
 * workload.h - guest workloads, host churn and the integrity checker: the
 * scenario that `tandem run` and the stress test drive.
 *
 * A scenario is N VMs, each with its own host mm (the VMM process), M vCPUs
 * running guest code through the load/store API, and one churn thread doing
 * host operations on the VM's memory while the guests run: MADV_DONTNEED,
 * mprotect read-only and back, munmap + mmap of a slot's backing (the slot
 * updated), fork and the child's exit. Every data page a guest writes
 * carries (VM id, gfn, version); the checker knows the last version
 * committed for every page and fails on any read that disagrees (a lost
 * write, a stale read, another VM's or page's data, zeroes where data was
 * expected, data where the host discarded it). Churn adds its own checks:
 * nothing may change a page while it is read-only, nor a forked child's copy
 * after the fork. A read-only memslot per VM ("ROM") checks that guest
 * writes to it exit to the VMM with the right address and change nothing.
 *
 * The run ends at its deadline or at the first failure; then the VMM
 * re-reads every page through the host, tears everything down and checks
 * that every host frame came back.
 */
#ifndef TANDEM_WORKLOAD_H
#define TANDEM_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include "tandem/types.h"
#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/mmu_notifier.h"
#include "tandem/cpu.h"
#include "tandem/clockdev.h"

#define WL_MAX_VMS      16
#define WL_MAX_VCPUS    16      /* per VM */
#define WL_NR_SLOTS     8       /* RAM memslots per VM, equal sizes */
#define WL_GUEST_MEM_MIN (1ULL << 20)
#define WL_GUEST_MEM_MAX (16ULL << 30)
#define WL_FIRST_FAILURES 8     /* failures kept with details */

enum wl_workload {
	WL_MIXED,       /* each vCPU cycles through the four below */
	WL_SEQ,         /* sequential write passes over the vCPU's pages */
	WL_UNIFORM,     /* uniform random read/write */
	WL_ZIPF,        /* zipfian random read/write (theta 0.99, scrambled) */
	WL_VERIFY,      /* one write pass, then read-and-check passes */
	WL_NR_WORKLOADS
};

/* Churn operations (scenario_config.churn is a mask of these). */
enum wl_churn {
	WL_CHURN_DONTNEED,
	WL_CHURN_MPROTECT,
	WL_CHURN_REMAP,
	WL_CHURN_FORK,
	WL_NR_CHURN
};
#define WL_CHURN_ALL ((1u << WL_NR_CHURN) - 1)

enum wl_fail_kind {
	WL_FAIL_STALE,          /* own page, wrong version: lost write / stale read */
	WL_FAIL_OTHER_VM,       /* another VM's data */
	WL_FAIL_WRONG_GFN,      /* another page's data */
	WL_FAIL_ZERO,           /* zeroes where data was expected */
	WL_FAIL_CORRUPT,        /* check word wrong, garbage, freed-frame poison */
	WL_FAIL_RO_WRITE,       /* a page changed while mapped read-only */
	WL_FAIL_FORK_CHILD,     /* a forked child's copy changed after the fork */
	WL_FAIL_ROM,            /* ROM misread or changed */
	WL_FAIL_MMIO,           /* missing, extra or misdirected MMIO exit */
	WL_FAIL_ACCESS,         /* a guest access failed unexpectedly */
	WL_FAIL_HOST,           /* a host or KVM call of the VMM/churn failed */
	WL_FAIL_POISON,         /* host poison hits: freed frames written */
	WL_FAIL_LEAK,           /* host frames in use after teardown */
	WL_FAIL_KILLED,         /* VMs killed beyond what a run allows */
	WL_FAIL_CLOCK,          /* a guest saw the clock page go backwards or torn */
	WL_FAIL_CLOCK_LOST,     /* the clock device's last write is not in the page */
	WL_FAIL_RUNSTATE,       /* a run-state area not the vCPU's last entry's,
				 * torn, or going backwards */
	WL_NR_FAIL_KINDS
};

const char *wl_workload_name(enum wl_workload w);
const char *wl_churn_name(enum wl_churn c);
const char *wl_fail_kind_name(enum wl_fail_kind k);    /* for people */
const char *wl_fail_kind_key(enum wl_fail_kind k);     /* for JSON */

struct wl_failure {
	enum wl_fail_kind kind;
	int vm;                 /* -1: not tied to a VM */
	int vcpu;               /* -1: found by the VMM (churn, final check) */
	uint64_t gfn;
	double t_s;             /* since the guests started */
	char msg[192];
};

/* One progress sample, about every second. */
struct scenario_progress {
	double t_s;
	double accesses_per_s;      /* guest loads and stores */
	double faults_per_s;        /* slow-path faults resolved */
	double invalidations_per_s; /* invalidate_range_start calls */
	uint64_t retries;           /* fault retries in the interval */
	uint64_t tlb_flushes;       /* remote TLB flushes in the interval */
	uint64_t churn_ops;         /* churn operations in the interval */
	uint64_t failures;          /* so far */
	/* --wss-interval: each VM's working set over the latest interval that
	 * ended since the previous sample (wss_nr_vms 0: none ended). */
	unsigned int wss_nr_vms;
	uint64_t wss_pages[WL_MAX_VMS];     /* guest RAM pages used */
	double wss_interval_s;              /* the interval's length (VM 0) */
	/* Memory: host free RAM, swap traffic (pages/s) in the interval, and
	 * each VM's resident and swapped guest memory (its mm's counters). */
	uint64_t free_pages;
	uint64_t swap_free_pages, swap_pages;
	double pswpin_per_s, pswpout_per_s;
	unsigned int nr_vms;
	uint64_t vm_rss_pages[WL_MAX_VMS];
	uint64_t vm_swap_pages[WL_MAX_VMS];
	bool vm_killed[WL_MAX_VMS];
	/* RISC-V VMs (rv_scenario_run): the harts' instructions retired,
	 * millions per second, summed and per VM (0 in C-guest runs), and
	 * which VMs' kernels have ended. */
	double mips;
	double vm_mips[WL_MAX_VMS];
	bool vm_ended[WL_MAX_VMS];
	/* RISC-V VMs' GVA tables, summed over VMs, in the interval: soft-TLB
	 * misses refilled from a GVA table and full guest page-table walks
	 * (GVA misses), per second; sfence.vma the harts executed; GVA
	 * entries cleared by host invalidations (leaves; nodes reset). */
	double gva_refills_per_s, gva_misses_per_s;
	uint64_t sfence_vma, gva_zapped_leaves, gva_zapped_nodes;
};

/* What scenario_config.end_when sees. */
struct scenario_status {
	double t_s;                     /* since the guests started */
	unsigned int vms_killed;
	struct host_stats host;
};

/* scenario_config.swap_bytes: swap sized by scenario_swap_bytes(). */
#define WL_SWAP_AUTO UINT64_MAX

struct scenario_config {
	unsigned int nr_vms;
	unsigned int nr_vcpus;          /* per VM */
	uint64_t guest_mem;             /* per VM: multiple of 1 MiB */
	uint64_t host_mem;              /* 0: sized to fit (scenario_host_mem) */
	uint64_t duration_ns;
	enum wl_workload workload;
	unsigned int write_pct;         /* random workloads: writes per 100 ops */
	uint64_t seed;
	unsigned int churn;             /* mask of 1u << enum wl_churn */
	unsigned int churn_interval_us; /* pause between one VM's churn ops */
	unsigned int breaks;            /* enum kvm_break */
	enum kvm_kick_mode kick;        /* how TLB flushes reach vCPUs (kvm.h) */
	/*
	 * Stall vCPUs at the two vulnerable points of the protocol (after the
	 * fault's GUP, and in guest mode just before an access through a fresh
	 * translation) until the churn thread has finished its next host
	 * operation, or a few milliseconds -- a vCPU preempted at the wrong
	 * moment. The protocol makes this harmless; with a --break it turns a
	 * rare race into a certain one.
	 */
	bool stall;
	bool cross_reads;               /* also read other vCPUs' pages */
	bool prefault;                  /* pre-fault the host's RAM arena */
	/*
	 * The pages the host itself writes into each VM (seed 001), read and
	 * checked by the guests: a clock page written by the VMM's clock
	 * device (clockdev.h) every clock_period_ns (0: no clock device), and
	 * with runstate each vCPU's run-state area (kvm.h), written by its
	 * own thread at every guest entry. Both live in a small RAM region of
	 * their own ("device pages", not checker data pages) that churn
	 * discards, protects, remaps and forks like the rest.
	 */
	uint64_t clock_period_ns;
	bool runstate;
	/*
	 * Working-set sampling (0: off): every interval, count each VM's guest
	 * RAM pages used since the last mark (idle page tracking, host.h:
	 * mm_idle_count_range) and mark all of it idle again.
	 */
	uint64_t wss_interval_ns;
	/*
	 * Swap and OOM. swap_bytes: a swap file of that size (0: none;
	 * WL_SWAP_AUTO, the default: scenario_swap_bytes()); swap_path: where
	 * (NULL: a temp file, unlinked at once). With oom_killer (the default),
	 * RAM and swap running out kills the largest VM: it is stopped with a
	 * reason, the others run on and the verdict is theirs. swap_fail_writes
	 * / swap_fail_reads (test switches): the first N swap writes / reads
	 * after the guests start fail (host_swap_inject_failures). A write
	 * failure must lose nothing; a read failure stops the VM that needed
	 * the page.
	 */
	uint64_t swap_bytes;
	const char *swap_path;
	bool oom_killer;
	long swap_fail_writes, swap_fail_reads;
	void (*progress)(const struct scenario_progress *p, void *arg);
	void *progress_arg;
	/*
	 * End the run early (tests): called about every 100 ms while the
	 * guests run; true ends the run as the deadline would. Lets a test
	 * wait for the event it is about (a kill, swap traffic) with
	 * duration_ns as a generous cap, rather than bet on a fixed time on
	 * a loaded machine.
	 */
	bool (*end_when)(const struct scenario_status *st, void *arg);
	void *end_when_arg;
};

/* The `tandem run` defaults: 2 VMs x 2 vCPUs, 256 MiB each, all churn, 10 s. */
void scenario_config_default(struct scenario_config *cfg);
/* host_mem for cfg when it is 0: guest memory twice over (fork copies),
 * page tables and slack. */
uint64_t scenario_host_mem(const struct scenario_config *cfg);
/* 0, or -EINVAL with a reason for people in why. */
/* swap_bytes for cfg when it is WL_SWAP_AUTO: none unless the guests' RAM
 * exceeds the host's; then room for all guest RAM and some. */
uint64_t scenario_swap_bytes(const struct scenario_config *cfg);
int scenario_check_config(const struct scenario_config *cfg, char *why, size_t len);

struct scenario_counts {
	uint64_t accesses;              /* guest loads + stores */
	uint64_t page_reads;            /* own pages read and checked */
	uint64_t page_writes;           /* own pages written (committed) */
	uint64_t writes_refused;        /* -EFAULT: host mapping read-only */
	uint64_t cross_reads;           /* other vCPUs' pages read and checked */
	uint64_t frozen_skips;          /* ops skipped: churn owned the page */
	uint64_t rom_reads;
	uint64_t rom_writes;            /* each must be one MMIO exit */
	uint64_t mmio_exits;            /* seen by the VMM's handler */
	uint64_t stalls;                /* cfg.stall: vCPU stalls taken */
	uint64_t churn[WL_NR_CHURN];
	uint64_t pages_checked_by_churn;/* hashed/compared by mprotect and fork */
	uint64_t forks_skipped;         /* mm_fork -ENOMEM with swap on (RAM full) */
	/* Device pages (cfg.clock_period_ns, cfg.runstate). */
	uint64_t clock_reads;           /* consistent clock-page reads checked */
	uint64_t runstate_reads;        /* own run-state area reads checked */
	uint64_t runstate_sibling_reads;/* another vCPU's area */
	uint64_t dev_zero_reads;        /* of those, found discarded (version 0) */
	uint64_t dev_busy;              /* reads abandoned: the writer kept it odd */
	uint64_t dev_churn;             /* churn ops on the device pages */
};

/* One VM's working set over the intervals of a run (cfg.wss_interval_ns). */
struct scenario_wss {
	uint64_t intervals;             /* completed */
	uint64_t last_pages;            /* pages used in the last interval */
	uint64_t min_pages, max_pages;
	double mean_pages;
	uint64_t last_mapped;           /* guest RAM pages mapped at the last count */
	double mark_ns_per_page;        /* mean cost of a pass, per page */
	double count_ns_per_page;
};

enum wl_kill_reason {
	WL_ALIVE,
	WL_KILLED_OOM,          /* picked by the OOM killer */
	WL_KILLED_SWAP_READ,    /* a swap-in it needed failed (-EIO) */
};

struct scenario_vm_result {
	struct scenario_counts c;
	enum wl_kill_reason killed;
	char kill_msg[160];             /* "vm1: killed by the OOM killer (...)" */
	double killed_at_s;
	uint64_t rss_pages, swap_pages; /* just before teardown (mm counters) */
	uint64_t failures_ignored;      /* found in it after it was killed */
	struct scenario_wss wss;        /* cfg.wss_interval_ns only */
	struct kvm_stats kvm;
	struct vcpu_stats vcpu;         /* summed over the VM's vCPUs */
	struct clockdev_stats clock;    /* its clock page's */
};

struct scenario_result {
	double elapsed_s;               /* guests running */
	double setup_s, teardown_s;
	uint64_t host_mem;
	unsigned int nr_vms;
	enum kvm_kick_mode kick;        /* what KVM_KICK_AUTO resolved to */
	struct scenario_counts total;
	struct kvm_stats kvm;           /* summed over VMs */
	struct vcpu_stats vcpu;
	struct clockdev_stats clock;    /* summed over VMs (overruns: the device's) */
	struct scenario_vm_result vm[WL_MAX_VMS];
	uint64_t final_pages_checked;   /* re-read through the host at the end */
	uint64_t poison_hits;
	uint64_t frames_in_use;         /* after teardown: must be 0 */
	struct host_stats host;         /* just before teardown */
	uint64_t swap_bytes;            /* what the host got */
	unsigned int vms_killed;        /* OOM + swap read error */
	uint64_t oom_fork_children;     /* OOM victims that were fork children */
	uint64_t fail_count[WL_NR_FAIL_KINDS];
	uint64_t failures;              /* sum of fail_count */
	struct wl_failure first[WL_FIRST_FAILURES];
	unsigned int nr_first;
	bool stopped_early;             /* ended at the first failure */
	bool ok;                        /* integrity: OK */
	char verdict[256];              /* "OK", or what failed */
};

/*
 * Run cfg to the end. Returns 0 when the scenario ran (res->ok is the
 * verdict), -EINVAL for a bad config, -EOPNOTSUPP if cfg->kick is RSEQ and
 * this build or kernel cannot do it, or another -errno if it could not be
 * set up; res->verdict then says why.
 */
int scenario_run(const struct scenario_config *cfg, struct scenario_result *res);

/* ---- processes under a recording MMU notifier (host_scenario.c) ---------
 *
 * No VM: threads act as processes on the primary MMU (mmap, write, fork
 * with COW on both sides, MADV_DONTNEED, mprotect, munmap, exit), each mm
 * watched by a subscriber that records every notifier call. Every page is
 * read back and checked, every call that must notify is checked to have
 * notified with the right event, and at the end the host must be empty and
 * pass host_check_invariants(). `tandem host-demo` runs it.
 */

#define HOST_SCENARIO_MAX_PROCS 64

struct host_scenario_config {
	uint64_t host_mem;              /* HOST_RAM_MIN..HOST_RAM_MAX, 4K multiple */
	unsigned int nr_procs;          /* 1..HOST_SCENARIO_MAX_PROCS threads */
	uint64_t duration_ns;           /* 0: no time limit */
	uint64_t iterations;            /* per process; 0: no limit */
	uint64_t seed;                  /* a seed replays the same operations */
	unsigned int breaks;            /* enum host_break: prove the checks notice */
};

/* The `tandem host-demo` defaults: 256 MiB, 4 processes, 3 s, seed 1. */
void host_scenario_config_default(struct host_scenario_config *cfg);
/* 0, or -EINVAL with a reason for people in why (a run that could not end,
 * or host memory too small for the processes included). */
int host_scenario_check_config(const struct host_scenario_config *cfg, char *why,
			       size_t len);

struct host_scenario_result {
	double elapsed_s;
	uint64_t mms;                   /* address spaces, forked children included */
	uint64_t forks;
	uint64_t iterations;            /* over all processes */
	uint64_t pages_verified;        /* pages read back and compared */
	uint64_t efault_checks;         /* accesses that had to fail, and did */
	/* What the subscribers saw, summed over every subscription. */
	uint64_t subscriptions, releases, change_pte;
	uint64_t starts[MMU_NOTIFY_NR_EVENTS], ends[MMU_NOTIFY_NR_EVENTS];
	uint64_t peak_frames, peak_pgtables;    /* sampled while running */
	/* After every process exited: all must be back to 0. */
	struct host_stats host;
	int invariants;                 /* host_check_invariants() */
	uint64_t frames_in_use;
	bool ok;                        /* verification: OK */
	char verdict[640];              /* "OK", or the first failure */
};

/*
 * Run cfg to the end. Returns 0 when the scenario ran (res->ok is the
 * verdict), -EINVAL for a bad config, or another -errno if it could not be
 * set up (-ENOMEM, host_create's); res->verdict then says why.
 */
int host_scenario_run(const struct host_scenario_config *cfg,
		      struct host_scenario_result *res);

/* ---- RISC-V VMs running the project's kernel (riscv_scenario.c) ----------
 *
 * `tandem run --guest riscv`: N virt machines (virt.h), each with its own
 * VMM mm on one host, M harts, OpenSBI (fw_jump) as bios and the project's
 * S-mode kernel (guests/kernel) as the next stage, booted with
 * "vm=<id> secs=<duration>": its U-mode processes stamp, fork (COW), map,
 * protect and verify pages for that long, then it prints one last line,
 * "kernel: OK ... failures=0" or "kernel: FAILED ...", and powers off.
 * The host is overcommitted as for the C guests (swap), and churns with
 * what a real guest survives: each machine's own churn (virt.h:
 * churn_interval_ms) forks the VMM's mm and drops the child (the guest's
 * writes break COW) or reclaims a batch of pages; kswapd reclaims under
 * pressure. No DONTNEED, mprotect or remap: a real guest would read zeroes
 * or fault.
 *
 * The harts refill their soft TLBs from the VM's GVA page tables (kvm.h:
 * enum kvm_gva_mode, default targeted); the GVA breaks (KVM_BREAK_GVA_*)
 * disable one of their coherence steps, for every VM or for one.
 *
 * Verdict: OK iff every VM's console ends with its kernel's "kernel: OK"
 * line for its own vm id with failures=0 and the machine powered off with
 * status 0 before the timeout, AND after teardown the host passes
 * host_check_invariants, every frame and swap slot is free, no freed frame
 * was written (poison, debug builds) and host_destroy succeeds. A VM that
 * failed is named with the kinds of its failures (enum rv_fail_kind), read
 * from its kernel's failure lines or from how the machine ended.
 */

#define RV_SCENARIO_FAIL_LINES  4       /* console failure lines kept per VM */
/* The breaks a RISC-V VM takes: the GVA tables', and the run-state
 * cache's missed request (the harts' SBI STA areas; the others open races
 * of the C guests' engine and churn). */
#define RV_SCENARIO_BREAKS (KVM_BREAK_GVA_SFENCE | KVM_BREAK_GVA_ZAP | KVM_BREAK_GPC_REQUEST)

struct rv_scenario_config {
	unsigned int nr_vms;            /* 1..WL_MAX_VMS */
	unsigned int nr_harts;          /* per VM, 1..KVM_MAX_VCPUS */
	uint64_t guest_mem;             /* per VM: 40M..2G, a multiple of 2M */
	uint64_t host_mem;              /* 0: sized to fit (guest RAM twice + slack) */
	uint64_t swap_bytes;            /* WL_SWAP_AUTO (default): as scenario_swap_bytes */
	const char *swap_path;          /* NULL: a temp file, unlinked at once */
	/* The kernel's secs= (rounded up to whole seconds): it starts new
	 * process lineages for that long, then drains and reports. */
	uint64_t duration_ns;
	uint64_t timeout_ns;            /* a VM not ended by then fails; 0: 2 x duration + 60 s */
	unsigned int churn_interval_ms; /* each VM's fork / reclaim churn; 0: off */
	const char *bios;               /* OpenSBI fw_jump (ELF) */
	const char *kernel;             /* guests/kernel's kernel.elf */
	const char *bootargs;           /* appended to every VM's (may be NULL) */
	const char *vm_bootargs[WL_MAX_VMS];    /* appended to VM i's only (tests) */
	enum kvm_gva_mode gva;          /* every VM's GVA tables (default targeted) */
	unsigned int breaks;            /* RV_SCENARIO_BREAKS, every VM */
	unsigned int vm_breaks[WL_MAX_VMS];     /* more, VM i's only (tests) */
	bool sbi_sta_off;               /* no SBI STA from the VMM (virt_config) */
	void (*progress)(const struct scenario_progress *p, void *arg);
	void *progress_arg;
};

/* Defaults: 2 VMs x 2 harts, 256 MiB each, 10 s, churn every 10 ms; bios
 * and kernel NULL (the caller knows where they are). */
void rv_scenario_config_default(struct rv_scenario_config *cfg);
/* host_mem for cfg when it is 0, and swap for WL_SWAP_AUTO. */
uint64_t rv_scenario_host_mem(const struct rv_scenario_config *cfg);
uint64_t rv_scenario_swap_bytes(const struct rv_scenario_config *cfg);
/* 0, or -EINVAL with a reason for people in why (files are not looked at). */
int rv_scenario_check_config(const struct rv_scenario_config *cfg, char *why, size_t len);

/* What one VM's kernel said on its last line ("kernel: OK vm=.. ..."). */
struct rv_kernel_report {
	bool seen;                      /* a "kernel: OK|FAILED" line was found */
	bool ok;                        /* it said OK */
	int64_t vm;                     /* vm= (-1: absent) */
	uint64_t harts, procs, forks, cow, pgfaults, ctxsw, asid_rollovers;
	uint64_t sfences, rfences, probes, kills, ms, failures;
	/* steal time (SBI STA): harts that set their area, consistent reads,
	 * torn reads retried, steal summed over harts as last read */
	uint64_t sta, steal_reads, steal_retries, steal_ns;
};

/*
 * What went wrong in a VM that failed. The kernel's failure lines
 * (guests/kernel: "work: FAILURE ...", "kernel: FAILURE ...", "kernel:
 * PANIC ...") give the first seven kinds; the machine the last three.
 */
enum rv_fail_kind {
	RV_FAIL_STALE_TRANSLATION,      /* a translation outlived its guest fence:
					 * a probe's store after mprotect(PROT_READ)
					 * or load after munmap did not fault, or a
					 * fresh mapping showed the unmapped page */
	RV_FAIL_WRONG_DATA,             /* a page's stamp was not the one written (a
					 * lost write, stale or foreign data) */
	RV_FAIL_PANIC,                  /* "kernel: PANIC" */
	RV_FAIL_KILLED,                 /* a process died of a fault its kernel did
					 * not explain (or went missing) */
	RV_FAIL_LEAK,                   /* the kernel's pages not all returned */
	RV_FAIL_STEAL,                  /* its SBI STA area read wrong: an odd
					 * sequence, steal going back, set_shmem
					 * refused ("kernel: FAILURE: steal:") */
	RV_FAIL_OTHER,                  /* another failure line (sbrk, mmap, ...) */
	RV_FAIL_NO_REPORT,              /* no "kernel: OK|FAILED" line at the end */
	RV_FAIL_TIMEOUT,                /* not ended by cfg.timeout_ns */
	RV_FAIL_MACHINE,                /* kernel OK, but another VM's id, or the
					 * machine did not power off with status 0 */
	RV_NR_FAIL_KINDS
};
const char *rv_fail_kind_name(enum rv_fail_kind kind);  /* "stale translation" */
const char *rv_fail_kind_key(enum rv_fail_kind kind);   /* "stale_translation" */

/* A VM's GVA tables (kvm_stats' gva_*) and its harts' use of them. */
struct rv_gva_stats {
	uint64_t refills;               /* soft-TLB misses refilled from a GVA table */
	uint64_t misses;                /* full guest page-table walks (paging on) */
	uint64_t sfence_vma;            /* executed by the harts */
	uint64_t installs, install_skipped, install_raced;
	uint64_t zapped_leaves;         /* entries cleared by host invalidations */
	uint64_t zapped_nodes;          /* nodes reset: their guest page table zapped */
	uint64_t sfence_zaps, root_flushes, rekeys, flush_all;
	uint64_t nodes;                 /* at the end */
};

/* A VM's SBI steal-time accounting (virt_stats sta_*) and the run-state
 * areas kvm wrote for it through its gfn_to_pfn caches (kvm_stats). */
struct rv_sta_stats {
	uint64_t probes;                /* probe_extension(STA) answered by the VMM */
	uint64_t calls, errors;         /* STA calls; those that returned an error */
	uint64_t enables;               /* areas set */
	uint64_t active;                /* harts with an area at the end */
	uint64_t area_writes;           /* kvm_stats.runstate_updates */
	uint64_t gpc_refreshes, gpc_invalidations, gpc_requests, gpc_request_waits;
	uint64_t fork_child_writes;     /* virt_stats.sta_fork_child_writes */
};

struct rv_scenario_vm_result {
	bool ok;
	char verdict[384];              /* "OK", or "vm1: ..." what failed */
	/* !ok: the kind of the first failure (of the kernel's lines if it
	 * printed any, else of the machine's end), every kind seen (1 << kind),
	 * and how many: the kernel's failure lines of each kind, 1 for the
	 * machine's kinds. */
	enum rv_fail_kind fail_kind;
	unsigned int fail_kinds;
	unsigned int fail_count[RV_NR_FAIL_KINDS];
	int exit_status;                /* the machine's (virt_wait); -ETIMEDOUT */
	const char *exit_name;          /* virt_exit_name() */
	double ended_at_s;              /* since the harts started */
	struct rv_kernel_report kernel;
	char kernel_line[384];          /* the last "kernel: OK|FAILED" line */
	char fail_lines[RV_SCENARIO_FAIL_LINES][192];  /* first FAILURE/PANIC lines */
	unsigned int nr_fail_lines;
	uint64_t console_bytes;
	uint64_t instret, exceptions, interrupts, ptw_walks, churn_ops;
	struct kvm_stats kvm;
	struct rv_gva_stats gva;
	struct rv_sta_stats sta;
	unsigned int breaks;            /* the VM's (cfg.breaks | cfg.vm_breaks[i]) */
	uint64_t rss_pages, swap_pages; /* just before teardown */
};

struct rv_scenario_result {
	double elapsed_s;               /* harts started .. last VM ended */
	double setup_s, teardown_s;
	uint64_t host_mem, swap_bytes;
	unsigned int nr_vms;
	uint64_t instret;               /* all harts */
	struct kvm_stats kvm;           /* summed over VMs */
	struct rv_gva_stats gva;        /* summed over VMs */
	struct rv_sta_stats sta;        /* summed over VMs */
	struct host_stats host;         /* after the VMs stopped, before teardown */
	struct rv_scenario_vm_result vm[WL_MAX_VMS];
	/* The host after teardown. */
	int invariants;                 /* host_check_invariants(): 0 */
	uint64_t frames_in_use, swap_slots_in_use, poison_hits;
	bool ok;
	char verdict[1024];             /* "OK", or what failed, VMs named */
};

/*
 * Run cfg to the end. Returns 0 when it ran (res->ok is the verdict),
 * -EINVAL for a bad config, or another -errno if it could not be set up
 * (-ENOENT: an image is missing; res->verdict says which).
 */
int rv_scenario_run(const struct rv_scenario_config *cfg, struct rv_scenario_result *res);

#endif
