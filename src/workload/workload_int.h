/* SPDX-License-Identifier: MIT */
/*
 * workload_int.h - what the pieces of src/workload share: the scenario, its
 * VMs and vCPUs, the page format and the freeze protocol between guests and
 * churn.
 *
 * Guest memory layout of a VM (gpa):
 *   [0, guest_mem)                RAM: WL_NR_SLOTS equal memslots, each its
 *                                 own host mapping (so one can be remapped)
 *   [guest_mem, +WL_ROM_PAGES)    ROM: a KVM_MEM_READONLY slot the VMM
 *                                 filled before the guests started
 *   [dev_gpa, +WL_DEV_PAGES)      device pages, RAM the host writes itself
 *                                 (seed 001): page 0 the clock page
 *                                 (clockdev.h), page 1 the vCPUs' run-state
 *                                 areas (64 bytes each, vCPU i at 64 * i).
 *                                 Not checker data pages: the guests only
 *                                 read them. Their "chunk" for the freeze
 *                                 protocol is nchunks (one past the RAM's):
 *                                 churn freezes it only to remap the region
 *                                 (no memslot for a moment); a discard
 *                                 needs no freeze, the guests accept zeroes
 *
 * Ownership: vCPU i of a VM owns the RAM gfns with gfn % nr_vcpus == i. Only
 * the owner writes its pages, and only the owner and the churn thread (with
 * the page's chunk frozen) change expected[gfn]: so the owner's checks are
 * exact, while other vCPUs' reads of the page check bounds.
 *
 * Freeze protocol (chunk = chunk_pages consecutive gfns, within one slot):
 *
 *   vCPU                                 churn
 *   ---------------------------------    ---------------------------------
 *   cur_chunk = c            (seq_cst)   frozen[c] = 1           (seq_cst)
 *   if frozen[c]: cur_chunk = -1, skip   wait until no cur_chunk == c
 *   ... access pages of c ...            host op on c; expected[c..] = 0
 *   cur_chunk = -1           (release)   frozen[c] = 0           (seq_cst)
 *
 * A Dekker pair: either the vCPU sees the chunk frozen, or the churn thread
 * sees the vCPU in it and waits. So while churn owns a chunk no guest
 * access, and no expected[] update, is in flight on it.
 */
#ifndef TANDEM_WORKLOAD_INT_H
#define TANDEM_WORKLOAD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "tandem/workload.h"
#include "tandem/vmm.h"
#include "base/compiler.h"
#include "base/prng.h"
#include "base/clock.h"

#define WL_ROM_PAGES    16
#define WL_ROM_SLOT     WL_NR_SLOTS     /* memslot id of the ROM */
#define WL_RING         8               /* recent writes remembered per vCPU */
#define WL_MAX_CHUNK_PAGES 512          /* 2 MiB */
#define WL_DEV_SLOT     (WL_NR_SLOTS + 1) /* memslot id of the device pages */
#define WL_DEV_PAGES    2
#define WL_RUNSTATE_LEN 64

/* ---- page format --------------------------------------------------------
 * word 0: tag = magic | VM id | gfn        (0 on a page never written)
 * word 1: version                          (commit point: written last)
 * word wl_check_index(version): wl_check_word(vm, gfn, version)
 * A write stores the check word, then the tag, then the version; an
 * interrupted or refused write leaves the old version valid (consecutive
 * versions use different check words). A page whose expected version is 0
 * (never written, discarded, remapped) must read version 0 and a tag of 0
 * (or its own tag: a first write that stopped before its version).
 */
#define WL_TAG_MAGIC    0x7a4eULL
#define WL_WORDS        (PAGE_SIZE / 8)
#define WL_POISON_WORD  0x6b6b6b6b6b6b6b6bULL  /* debug builds' freed frames */

static inline uint64_t wl_page_tag(unsigned int vm, gfn_t gfn)
{
	return WL_TAG_MAGIC << 48 | (uint64_t)(vm & 0xff) << 40 |
	       (gfn & ((1ULL << 40) - 1));
}

static inline unsigned int wl_check_index(uint64_t version)
{
	return 2 + (unsigned int)(version % (WL_WORDS - 2));
}

static inline uint64_t wl_check_word(unsigned int vm, gfn_t gfn, uint64_t version)
{
	return prng_mix64(wl_page_tag(vm, gfn) ^ prng_mix64(version + 1));
}

/* ROM word i of VM vm. */
static inline uint64_t wl_rom_word(unsigned int vm, uint64_t i)
{
	return prng_mix64(0x524f4dULL << 40 ^ (uint64_t)vm << 32 ^ i);
}

/* YCSB's zipfian generator (Gray et al., "Quickly generating billion-record
 * synthetic databases"): ranks 0..n-1, rank 0 the most popular. */
struct wl_zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, two_cut;
};

struct scenario;
struct wl_vm;

struct wl_vcpu {
	/* Shared with the churn thread. */
	_Atomic int64_t cur_chunk __attribute__((aligned(64)));
	_Atomic uint64_t ring[WL_RING];         /* gfns about to be written */
	_Atomic unsigned int ring_pos;
	/* Published by the vCPU for progress lines. */
	_Atomic uint64_t pub_accesses __attribute__((aligned(64)));

	/* The vCPU thread's own (read by others only after it stopped). */
	struct wl_vm *vm __attribute__((aligned(64)));
	struct vcpu *vcpu;
	unsigned int idx;
	uint64_t n_own;                 /* pages owned */
	uint64_t rng;
	struct wl_zipf zipf;
	struct scenario_counts c;
	bool intent_write;              /* stall hook: a store is under way */
	unsigned int stall_tick[VCPU_NR_HOOKS];
	uint64_t mmio_count;            /* MMIO exits seen by the handler */
	gpa_t mmio_gpa;
	bool mmio_write;
	bool rom_write_pending;
	bool started;
	gpa_t last_gpa;                 /* of the latest access (error reports) */
	/* The device pages as this vCPU last read them consistently (0: not
	 * yet, or discarded): none of it may go backwards. */
	struct clock_page clk_seen;
	struct kvm_runstate_info rs_seen[WL_MAX_VCPUS];
};

struct wl_vm {
	struct scenario *sc;
	unsigned int id;
	struct vmm *vmm;                /* the VM's VMM: its RAM layout, exits */
	struct mm *mm;                  /* vmm's mm and VM, for short */
	struct kvm *kvm;
	struct wl_vcpu *vcpus[WL_MAX_VCPUS];
	unsigned int nr_vcpus;

	uint64_t npages;                /* RAM pages */
	uint64_t slot_pages;
	uint64_t chunk_pages, nchunks;
	/* RAM slot s is VMM RAM region s; the churn thread alone remaps
	 * them (vmm_remap_ram), and the working-set sampler holds the VMM's
	 * layout lock across each of its passes (wss.c). */
	gpa_t rom_gpa;                  /* the ROM: region WL_ROM_SLOT */
	gpa_t dev_gpa;                  /* device pages: region WL_DEV_SLOT */
	int clock_idx;                  /* in sc->clock; -1: none */
	_Atomic uint64_t dev_churn;     /* churn ops on the device pages */

	_Atomic uint32_t *expected;     /* per RAM gfn: last version committed */
	_Atomic uint8_t *frozen;        /* per chunk: churn owns it */
	_Atomic uint64_t churn_epoch;   /* ++ after each churn op's host step */

	pthread_t churn_thread;
	bool churn_started;
	uint64_t churn_rng;
	_Atomic uint64_t churn_ops[WL_NR_CHURN];
	_Atomic uint64_t churn_pages_checked;
	_Atomic uint64_t churn_fork_enomem;     /* forks skipped: no free frame */
	/* churn scratch */
	uint64_t *hash, *hash_ver;      /* mprotect region */
	uint32_t *exp_before, *exp_after;       /* fork */

	/* Working-set sampler (wss.c): its thread's own, except wss, which
	 * scenario.c reads under sc->wss_lock. */
	uint64_t wss_mark_ns;           /* when the current interval began */
	double wss_sum_pages, wss_mark_ns_sum, wss_count_ns_sum;
	uint64_t wss_marked, wss_counted;       /* pages over all passes */
	struct scenario_wss wss;

	/* Killed (OOM, swap read error): set once by wl_vm_kill, from any
	 * thread; then its vCPUs and churn stop and its failures are ignored. */
	_Atomic int killed;             /* enum wl_kill_reason */
	char kill_msg[160];             /* written before killed is set */
	double killed_at_s;
	_Atomic uint64_t failures_ignored;
};

struct scenario {
	struct scenario_config cfg;
	struct host *host;
	struct wl_vm *vms[WL_MAX_VMS];
	uint64_t start_ns, deadline_ns;
	atomic_bool stop;               /* churn threads: wind down */
	atomic_bool failed;             /* first failure seen: end the run */

	pthread_mutex_t fail_lock;
	_Atomic uint64_t fail_count[WL_NR_FAIL_KINDS];
	struct wl_failure first[WL_FIRST_FAILURES];     /* under fail_lock */
	unsigned int nr_first;

	/* Working-set sampler (cfg.wss_interval_ns). */
	pthread_t wss_thread;
	bool wss_started;
	pthread_mutex_t wss_lock;       /* every vm->wss, and wss_rounds */
	uint64_t wss_rounds;            /* intervals completed for every VM */
	double wss_interval_s;          /* the last round's length (VM 0) */
	uint64_t wss_reported;          /* rounds in progress lines (run_loop's) */

	_Atomic unsigned int nr_vms_up; /* vms[] entries the OOM notify may see */
	_Atomic unsigned int vms_killed;
	_Atomic uint64_t oom_fork_children;
	pthread_mutex_t kill_lock;      /* serializes wl_vm_kill */
	struct clockdev *clock;         /* cfg.clock_period_ns: every VM's */
};

/* checker.c */
void wl_fail(struct scenario *sc, enum wl_fail_kind kind, int vm, int vcpu,
	     gfn_t gfn, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Check the header (tag, version) of page gfn of VM vm against its expected
 * version. Returns -1 if it matches (then, for expected > 0, the caller
 * checks the check word), else the failure kind, with a description. */
int wl_check_header(unsigned int vm, gfn_t gfn, uint64_t expected, uint64_t tag,
		    uint64_t version, char *why, size_t len);
/* The same for a page another vCPU owns: its version must lie within
 * [lo, hi + 1] (hi + 1: a write of the owner's in flight). */
int wl_check_header_bounds(unsigned int vm, gfn_t gfn, uint64_t lo, uint64_t hi,
			   uint64_t tag, uint64_t version, char *why, size_t len);
uint64_t wl_hash_page(const void *page);
/* Re-read every RAM page and the ROM of vm through the host (after its
 * vCPUs stopped); returns pages checked. */
uint64_t wl_final_check(struct wl_vm *vm);
/* The clock device's verdict on vm's clock page (after clockdev_stop). */
void wl_clock_final_check(struct wl_vm *vm);

/* Stop vm for good (reason, message), without waiting for its threads:
 * callable from any thread, its own vCPUs' included. Returns false if it
 * was already killed. */
bool wl_vm_kill(struct wl_vm *vm, enum wl_kill_reason why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline bool wl_vm_dead(struct wl_vm *vm)
{
	return atomic_load_explicit(&vm->killed, memory_order_acquire) != WL_ALIVE ||
	       (vm->mm && mm_is_oom_victim(vm->mm));
}

/* scenario.c: to += s, every counter (riscv_scenario.c sums too). */
void wl_kvm_stats_add(struct kvm_stats *to, const struct kvm_stats *s);

/* workload.c */
int wl_guest_main(struct vcpu *v, void *arg);
/* Host sizing shared by the C-guest and RISC-V scenarios (scenario.c). */
uint64_t wl_host_mem_for(unsigned int nr_vms, uint64_t guest_mem);
uint64_t wl_host_mem_min_for(unsigned int nr_vms, uint64_t guest_mem);
uint64_t wl_swap_bytes_for(unsigned int nr_vms, uint64_t guest_mem, uint64_t host_mem,
			   uint64_t swap_bytes);

void wl_mmio(void *opaque, struct vcpu *v, gpa_t gpa, unsigned int size, bool write,
	     uint64_t *val);
void wl_stall_hook(struct kvm_vcpu *v, enum vcpu_hook_point at, void *arg);

/* Guest physical address of vCPU idx's run-state area. */
static inline gpa_t wl_runstate_gpa(const struct wl_vm *vm, unsigned int idx)
{
	return vm->dev_gpa + PAGE_SIZE + (gpa_t)idx * WL_RUNSTATE_LEN;
}

/* churn.c */
void *wl_churn_main(void *arg);

/* wss.c */
void *wl_wss_main(void *arg);

static inline double wl_elapsed_s(const struct scenario *sc)
{
	return (double)(clock_now_ns() - sc->start_ns) / 1e9;
}

static inline bool wl_should_end(struct scenario *sc)
{
	return atomic_load_explicit(&sc->stop, memory_order_relaxed) ||
	       atomic_load_explicit(&sc->failed, memory_order_relaxed);
}

static inline bool wl_vm_should_end(struct wl_vm *vm)
{
	return wl_should_end(vm->sc) ||
	       atomic_load_explicit(&vm->killed, memory_order_relaxed) != WL_ALIVE;
}

static inline uint64_t wl_chunk_of(const struct wl_vm *vm, gfn_t gfn)
{
	return gfn / vm->chunk_pages;
}

static inline hva_t wl_gfn_to_hva(const struct wl_vm *vm, gfn_t gfn)
{
	return vmm_ram_hva(vm->vmm, (unsigned int)(gfn / vm->slot_pages)) +
	       (gfn % vm->slot_pages) * PAGE_SIZE;
}

#endif
