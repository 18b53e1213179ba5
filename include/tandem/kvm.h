/* SPDX-License-Identifier: MIT */
/*
 * kvm.h - the secondary MMU: VMs, memslots, GPA page tables kept in step
 * with the host through MMU notifiers, and the vCPU object (modes,
 * requests, kicks and waits) that execution engines (include/tandem/cpu.h)
 * build on.
 *
 * A VM belongs to one host mm (the VMM's address space). Guest memory is
 * host memory: a memslot maps a range of guest frames (gfn) onto a range of
 * the mm's virtual addresses (hva). The VM's GPA page tables (sptes) cache
 * gfn -> host frame translations built on demand from the host page tables
 * through GUP, holding no reference once installed; the host's invalidations
 * tell the VM when a translation must go.
 */
#ifndef TANDEM_KVM_H
#define TANDEM_KVM_H

#include <pthread.h>
#include <stdatomic.h>
#include "tandem/types.h"

struct mm;

#define KVM_MAX_VCPUS    64
#define KVM_MAX_MEMSLOTS 512

/* Memslot flags, as in the KVM API. */
#define KVM_MEM_LOG_DIRTY_PAGES (1u << 0)
#define KVM_MEM_READONLY        (1u << 1)

struct kvm_userspace_memory_region {
	uint32_t slot;
	uint32_t flags;
	gpa_t guest_phys_addr;
	uint64_t memory_size;   /* 0 deletes the slot */
	hva_t userspace_addr;
};

/*
 * Switches that each disable one piece of the invalidation protocol, so a
 * user can watch the integrity checker catch the race (tandem run --break).
 */
enum kvm_break {
	KVM_BREAK_SEQ_CHECK   = 1u << 0, /* fault ignores in-progress/seq */
	KVM_BREAK_FLUSH_WAIT  = 1u << 1, /* TLB flush neither waits for vCPUs
					  * nor (RSEQ) calls membarrier */
	KVM_BREAK_RANGE_ZAP   = 1u << 2, /* range_start does not zap sptes */
	KVM_BREAK_AGING       = 1u << 3, /* the aging handlers report nothing
					  * young (they still clear and flush):
					  * reclaim evicts pages only guests use */
	KVM_BREAK_GVA_SFENCE  = 1u << 4, /* sfence.vma with an address leaves
					  * the GVA tables' entries in place */
	KVM_BREAK_GVA_ZAP     = 1u << 5, /* host invalidations do not reach
					  * the GVA tables */
	KVM_BREAK_GPC_INVALIDATE = 1u << 6, /* the notifier leaves gfn_to_pfn
					  * caches valid */
	KVM_BREAK_GPC_REQUEST = 1u << 7, /* a guest-mode cache is marked
					  * invalid, but its vCPU is neither
					  * sent KVM_REQ_GPC_INVALIDATE nor
					  * waited for: it goes on writing the
					  * old frame at every entry */
};
#define KVM_BREAK_ALL (KVM_BREAK_SEQ_CHECK | KVM_BREAK_FLUSH_WAIT | \
		       KVM_BREAK_RANGE_ZAP | KVM_BREAK_AGING | KVM_BREAK_GVA_SFENCE | \
		       KVM_BREAK_GVA_ZAP | KVM_BREAK_GPC_INVALIDATE | KVM_BREAK_GPC_REQUEST)
/* The breaks that let a present spte outlive its host PTE, so that a later
 * fault finds it mapping another frame: only under these is that not a
 * BUG (the checker is left to report the damage). */
#define KVM_BREAKS_STALE_SPTE (KVM_BREAK_SEQ_CHECK | KVM_BREAK_RANGE_ZAP)

/*
 * How a remote TLB flush makes sure no vCPU still uses a zapped translation.
 *  WAIT: KVM's protocol -- set the request, kick, sleep until every vCPU that
 *        was in guest mode has left it. A vCPU preempted in guest mode makes
 *        the flush wait for the scheduler to run it again.
 *  RSEQ: each soft-TLB hit is an rseq critical section that the kernel
 *        aborts on preemption (a VM exit, as on real hardware); the flush
 *        sets the request and calls membarrier(EXPEDITED_RSEQ) to abort the
 *        running ones. Never waits for a vCPU. x86-64, non-sanitizer builds.
 *  AUTO: RSEQ where available, else WAIT.
 */
struct kvm;
struct kvm_vcpu;

enum kvm_kick_mode {
	KVM_KICK_AUTO = 0,
	KVM_KICK_WAIT,
	KVM_KICK_RSEQ,
};

/*
 * How engines with guest paging (RISC-V harts) use the GVA page tables
 * (seed 002) and how host invalidations reach them:
 *  TARGETED:  a zap clears the entries built on the zapped gfns (reverse
 *             maps from gfn to leaves and to mirroring nodes);
 *  FLUSH_ALL: the seed's way: any host zap empties every GVA table;
 *  OFF:       no GVA tables: every soft-TLB miss walks the guest's tables
 *             (the baseline for tandem bench gva).
 */
enum kvm_gva_mode {
	KVM_GVA_TARGETED = 0,
	KVM_GVA_FLUSH_ALL,
	KVM_GVA_OFF,
};

struct kvm_config {
	unsigned int breaks;    /* enum kvm_break */
	enum kvm_kick_mode kick;
	enum kvm_gva_mode gva;
};

enum kvm_gva_mode kvm_gva_mode(struct kvm *kvm);
const char *kvm_gva_mode_name(enum kvm_gva_mode mode);   /* "targeted", ... */
/* Tests: the GVA leaf that address space satp (a RISC-V satp value) has for
 * va, as a lockless walk would find it now; 0 if none. */
uint64_t kvm_gva_probe(struct kvm *kvm, uint64_t satp, uint64_t va);

/* The mode a VM resolved KVM_KICK_AUTO to. */
enum kvm_kick_mode kvm_kick_mode(struct kvm *kvm);
const char *kvm_kick_mode_name(enum kvm_kick_mode mode);
/* Whether the RSEQ kick mode can run in this process (registers it with
 * the kernel on first use). */
bool kvm_rseq_available(void);

int kvm_create_vm(struct mm *mm, const struct kvm_config *cfg, struct kvm **out);
/* Stops nothing: vCPUs must have been destroyed. */
void kvm_destroy_vm(struct kvm *kvm);
int kvm_set_user_memory_region(struct kvm *kvm,
			       const struct kvm_userspace_memory_region *mem);

struct kvm_stats {
	uint64_t faults;            /* slow-path faults resolved */
	uint64_t fast_faults;       /* resolved by the lockless fast path */
	uint64_t fault_retries;     /* slow path raced an invalidation */
	uint64_t invalidations;     /* invalidate_range_start calls (that got
				     * the locks: each has its end) */
	uint64_t nonblock_starts;   /* non-blockable starts (OOM reaper), all */
	uint64_t nonblock_eagain;   /* non-blockable starts refused (-EAGAIN) */
	uint64_t nonblock_flush_in_guest; /* non-blockable starts that found a
				     * vCPU in guest mode, not waited for
				     * (WAIT mode: -EAGAIN until it left;
				     * RSEQ: membarrier, 0) */
	uint64_t sptes_zapped;
	uint64_t tlb_flushes;       /* remote TLB flush requests */
	uint64_t mmio_exits;        /* guest access with no writable slot */
	uint64_t age_calls;
	uint64_t memslot_updates;
	uint64_t pgtable_pages;     /* GPA page-table pages now */
	/* GVA page tables (seed 002) */
	uint64_t gva_installs;      /* entries built after a full walk */
	uint64_t gva_install_skipped; /* not built: mmu_lock busy or an spte gone */
	uint64_t gva_install_raced; /* not built: the root was fenced meanwhile */
	uint64_t gva_zapped_leaves; /* entries cleared by host invalidations */
	uint64_t gva_zapped_nodes;  /* nodes reset: their guest page table was zapped */
	uint64_t gva_sfence_zaps;   /* root x address zaps by sfence.vma */
	uint64_t gva_root_flushes;  /* roots emptied by sfence.vma without address */
	uint64_t gva_rekeys;        /* roots reused for another address space */
	uint64_t gva_flush_all;     /* FLUSH_ALL mode: host zaps that emptied all */
	uint64_t gva_nodes;         /* GVA table nodes now */
	/* gfn_to_pfn caches (seed 001), every cache of the VM */
	uint64_t gpc_refreshes;     /* caches (re)mapped by a refresh */
	uint64_t gpc_invalidations; /* caches marked invalid by the notifier */
	uint64_t gpc_requests;      /* KVM_REQ_GPC_INVALIDATE sent to a vCPU */
	uint64_t gpc_request_waits; /* ... that found it in guest mode and
				     * waited for its exit */
	uint64_t gpc_nonblock_in_guest; /* non-blockable invalidations (OOM
				     * reaper) that found a guest-mode user
				     * in guest mode and did not wait: should
				     * not happen, the VMM stops its vCPUs */
	uint64_t runstate_updates;  /* run-state areas written at guest entry */
};
void kvm_get_stats(struct kvm *kvm, struct kvm_stats *st);


/* ---- gfn_to_pfn_cache (seed 001) ----------------------------------- */

/*
 * A guest page the host itself writes many times a second (a clock page,
 * a run-state area), mapped without a lasting reference: refresh looks the
 * page up through GUP, keeps its host address and drops the reference; the
 * notifier's invalidate_range_start marks the cache invalid (under the
 * write lock) before the host may change the page. A user takes the read
 * lock, checks, and writes through khva without sleeping; if check fails
 * it drops the lock and refreshes (which may sleep). See pfncache.c.
 */
/* Who uses a cache's host address (as seed 001's enum pfn_cache_usage). */
enum pfn_cache_usage {
	KVM_HOST_USES_PFN  = 1u << 0,   /* host code, under the read lock */
	KVM_GUEST_USES_PFN = 1u << 1,   /* a vCPU, in guest mode, with no lock:
					 * invalidation must send it
					 * KVM_REQ_GPC_INVALIDATE and wait */
};

struct gfn_to_pfn_cache {
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;          /* KVM_GUEST_USES_PFN: its user */
	unsigned int usage;             /* enum pfn_cache_usage bits */
	/* A reader-writer spinlock guarding everything below (read to use
	 * khva): bit 31 a writer, the rest readers (pfncache.c). Readers hold
	 * it for a few stores and never sleep, so a writer spins briefly. */
	_Atomic uint32_t lock;
	pthread_mutex_t refresh_lock;   /* one refresh (or deactivate) at a time */
	gpa_t gpa;
	hva_t uhva;                     /* of gpa's page, as its memslot maps it */
	uint64_t generation;            /* of the memslots uhva was found in */
	void *khva;                     /* host address of gpa (valid: usable) */
	pfn_t pfn;
	bool active;                    /* on kvm's list: invalidations reach it */
	/* khva maps gpa now (check says more). Written under the write lock;
	 * atomic because a guest-mode user's vCPU may glance at it without
	 * the lock (kvm_vcpu_runstate_*). */
	_Atomic bool valid;
	/* KVM_GUEST_USES_PFN: the vCPU holds khva for use in guest mode. Set
	 * by it under the read lock when it takes khva, cleared by it (release)
	 * outside guest mode when it lets go; while set, every invalidation
	 * over uhva sends it KVM_REQ_GPC_INVALIDATE and waits, valid or not. */
	_Atomic bool guest_mapped;
	struct gfn_to_pfn_cache *next;  /* kvm's list, under its gpc_lock */
	struct {                        /* under lock (write) */
		uint64_t refreshes, invalidations, retries, waits;
	} stat;
};

void kvm_gpc_init(struct gfn_to_pfn_cache *gpc, struct kvm *kvm);
/* A cache whose host address vcpu uses in guest mode (usage has
 * KVM_GUEST_USES_PFN): only vcpu's own thread, or anyone while it is not
 * running, may activate or refresh it. */
void kvm_gpc_init_for_vcpu(struct gfn_to_pfn_cache *gpc, struct kvm_vcpu *vcpu,
			   unsigned int usage);
/* Start caching gpa's page for len bytes from gpa (one page at most) and
 * refresh: 0, -EINVAL (crosses a page), -EFAULT (no memslot), -ENOMEM. */
int kvm_gpc_activate(struct gfn_to_pfn_cache *gpc, gpa_t gpa, unsigned int len);
/* With gpc->lock held for read (kvm_gpc_read_lock): may len bytes at gpa
 * be used through khva now? */
bool kvm_gpc_check(struct gfn_to_pfn_cache *gpc, unsigned int len);
void kvm_gpc_read_lock(struct gfn_to_pfn_cache *gpc);
void kvm_gpc_read_unlock(struct gfn_to_pfn_cache *gpc);
/* Make check succeed again (may sleep; no lock held): 0 or -errno. */
int kvm_gpc_refresh(struct gfn_to_pfn_cache *gpc, unsigned int len);
void kvm_gpc_deactivate(struct gfn_to_pfn_cache *gpc);
void kvm_gpc_destroy(struct gfn_to_pfn_cache *gpc);

/* ---- the vCPU object ------------------------------------------------- */

/*
 * A vCPU's mode, as in KVM. IN_GUEST_MODE while its thread runs guest code
 * (and may use its soft TLB); OUTSIDE_GUEST_MODE while it handles a miss, a
 * fault, an exit or a request; EXITING_GUEST_MODE when a requester has
 * kicked it and it has not left yet.
 */
enum vcpu_mode {
	OUTSIDE_GUEST_MODE,
	IN_GUEST_MODE,
	EXITING_GUEST_MODE,
};

/* Requests (bits of kvm_vcpu.requests), handled outside guest mode by the
 * execution engine before it enters again. */
#define KVM_REQ_TLB_FLUSH 0     /* drop every soft-TLB entry */
#define KVM_REQ_STOP      1     /* leave the run loop; stays set */
#define KVM_REQ_EVENT     2     /* an interrupt may be pending: look (as KVM's) */
#define KVM_REQ_GPC_INVALIDATE 3 /* a cache this vCPU uses in guest mode was
				 * invalidated: refresh it before entering
				 * (kvm_vcpu_handle_gpc_invalidate) */
#define KVM_NR_REQUESTS   4

/* Test points where a hook may pause a vCPU thread (kvm_vcpu_set_hook). */
enum vcpu_hook_point {
	VCPU_HOOK_AFTER_GUP,    /* slow fault: frame looked up, mmu_lock not taken */
	VCPU_HOOK_IN_GUEST,     /* about to access guest memory in guest mode */
	VCPU_HOOK_BEFORE_ENTER, /* slow path: soft TLB filled, about to re-enter */
	VCPU_NR_HOOKS
};
struct kvm_vcpu;
typedef void (*vcpu_hook_fn)(struct kvm_vcpu *vcpu, enum vcpu_hook_point at, void *arg);

/*
 * The run-state area: a vCPU's accounting, which the vCPU thread itself
 * writes into guest memory at every guest entry through a gfn_to_pfn
 * cache used in guest mode -- without the cache's lock (seed 001's
 * "physical address used by a vCPU in guest mode"). Between entries the
 * vCPU keeps the host address it wrote last (hva); only its handling of
 * KVM_REQ_GPC_INVALIDATE, outside guest mode, changes it. So an
 * invalidation of that page must send the request and wait until the vCPU
 * is out of guest mode (pfncache.c).
 *
 * Two guest formats: the project's (struct kvm_runstate_info, for C and
 * RISC-V guests that ask for it) and SBI's steal-time accounting
 * extension (STA: struct sbi_sta_struct, set by the guest's
 * SBI_EXT_STA_STEAL_TIME_SET_SHMEM call).
 */
enum kvm_runstate_fmt {
	KVM_RUNSTATE_TANDEM = 1,
	KVM_RUNSTATE_SBI_STA,
};

/* Guest ABI, little endian, 64 bytes, 64-byte aligned in guest memory.
 * version is a seqcount: odd while the host writes, even when the rest is
 * consistent. Times are nanoseconds and only grow. */
struct kvm_runstate_info {
	uint64_t version;
	uint64_t entries;               /* guest entries */
	uint64_t time_in_guest;         /* wall time in guest mode */
	uint64_t time_outside;          /* wall time outside it: exits, faults,
					 * requests, sleeps (WFI) */
	uint64_t time_runnable;         /* runnable but not running on a host
					 * CPU (steal; the thread's schedstat
					 * run_delay), in and out of guest mode */
	uint64_t state_entry_time;      /* host monotonic ns of the last entry */
	uint64_t pad[2];
};

/* SBI STA shared memory (SBI spec 2.0, chapter 16), 64 bytes. */
struct sbi_sta_struct {
	uint32_t sequence;              /* odd while the host writes */
	uint32_t flags;
	uint64_t steal;                 /* ns */
	uint8_t preempted;
	uint8_t pad[47];
};

struct kvm_runstate {
	struct gfn_to_pfn_cache gpc;    /* KVM_GUEST_USES_PFN, of this vCPU */
	unsigned int fmt;               /* 0: off */
	/* vCPU thread only (or while it is not running): */
	void *hva;                      /* written at entry; NULL: none */
	uint64_t t_last;                /* last entry or exit */
	uint64_t time_in_guest, time_outside, time_runnable, entries;
	uint64_t version;
	uint64_t run_delay_last;        /* schedstat run_delay at the last
					 * sample (UINT64_MAX: none yet on
					 * this thread) */
	uint64_t steal_sample_at;       /* next schedstat read (ns) */
	uint64_t retry_at;              /* refresh failed: next try (ns) */
	int schedstat_fd;               /* -1 if closed; 0: not yet tried */
	uint64_t updates;               /* areas written */
	int err;                        /* -EIO: a refresh's swap-in failed, the
					 * area's page is lost; no more writes */
};

/*
 * struct kvm_vcpu - what the kvm layer knows of a vCPU. An execution engine
 * embeds it (struct vcpu in cpu.h) and registers it with kvm_vcpu_init.
 * requests comes first: every guest access of the engine reads it.
 */
struct kvm_vcpu {
	_Atomic unsigned long requests;
	_Atomic int mode;               /* enum vcpu_mode */
	_Atomic uint32_t exit_epoch;    /* ++ at every exit from guest mode */
	atomic_int waiters;             /* requesters sleeping on exit_epoch */
	struct kvm *kvm;
	int vcpu_id;
	/* Under kvm->lock: a non-waiting TLB flush (the OOM reaper's, WAIT
	 * mode) found this vCPU in guest mode at exit_epoch flush_snap; it
	 * is done with the zapped translations once exit_epoch moves or the
	 * request is consumed. */
	bool flush_pending;
	uint32_t flush_snap;
	vcpu_hook_fn _Atomic hook;
	void *hook_arg;
	uint64_t guest_exits;           /* written by the vCPU thread only */
	struct kvm_runstate runstate;   /* above; the vCPU thread's */
};

/*
 * Register vcpu (memory owned by the caller, zeroed or not) with kvm as
 * vCPU id. -EINVAL for a bad id, -EEXIST if id is taken, -ENOSPC when the
 * VM has KVM_MAX_VCPUS. kvm_vcpu_uninit unregisters it; the vCPU must be
 * outside guest mode with no thread running it.
 */
int kvm_vcpu_init(struct kvm_vcpu *vcpu, struct kvm *kvm, int id);
void kvm_vcpu_uninit(struct kvm_vcpu *vcpu);
void kvm_vcpu_set_hook(struct kvm_vcpu *vcpu, vcpu_hook_fn fn, void *arg);

/*
 * Guest mode, for execution engines (called by the vCPU's own thread).
 * kvm_vcpu_enter_guest_mode sets IN_GUEST_MODE then checks requests (a
 * Dekker pair with kvm_make_all_cpus_request): -EAGAIN, and the vCPU is
 * back outside guest mode, if one is pending; the caller handles it and
 * tries again. kvm_vcpu_exit_guest_mode leaves guest mode and wakes the
 * requesters waiting for that exit.
 */
int kvm_vcpu_enter_guest_mode(struct kvm_vcpu *vcpu);
void kvm_vcpu_exit_guest_mode(struct kvm_vcpu *vcpu);

/*
 * Run-state area (struct kvm_runstate above), from the vCPU's thread or
 * while it is not running. activate: gpa 64-byte aligned, in a writable
 * memslot; the area is written at once and then at every entry. 0,
 * -EINVAL, -EFAULT (no such RAM), -ENOMEM. deactivate stops the writes.
 */
int kvm_vcpu_runstate_activate(struct kvm_vcpu *vcpu, gpa_t gpa, enum kvm_runstate_fmt fmt);
void kvm_vcpu_runstate_deactivate(struct kvm_vcpu *vcpu);
/* Engines: on KVM_REQ_GPC_INVALIDATE (and at any exit if a refresh is
 * owed), outside guest mode: refresh the vCPU's guest-mode caches. 0, or
 * -EIO (once) if the refresh's swap-in failed: the page's data is lost to
 * the VM, as for any access that needed it (host.h), and the area is
 * written no more (kvm_vcpu_runstate_error says so from then on). Other
 * failures (no memslot for now, out of memory) are retried later. */
int kvm_vcpu_handle_gpc_invalidate(struct kvm_vcpu *vcpu);
/* 0, or the error that stopped the run-state area (-EIO). vCPU thread. */
static inline int kvm_vcpu_runstate_error(const struct kvm_vcpu *vcpu)
{
	return vcpu->runstate.err;
}
/* What the vCPU's run-state area holds now (host accounting). */
void kvm_vcpu_runstate_get(struct kvm_vcpu *vcpu, struct kvm_runstate_info *out);

static inline bool kvm_request_pending(struct kvm_vcpu *vcpu)
{
	return atomic_load_explicit(&vcpu->requests, memory_order_relaxed) != 0;
}

/* Test and clear request req; called by the vCPU's thread, outside guest
 * mode. Acquire: what the requester did before setting it is visible. */
static inline bool kvm_check_request(int req, struct kvm_vcpu *vcpu)
{
	unsigned long bit = 1UL << req;

	if (!(atomic_load_explicit(&vcpu->requests, memory_order_relaxed) & bit))
		return false;
	return atomic_fetch_and_explicit(&vcpu->requests, ~bit, memory_order_acq_rel) & bit;
}

/*
 * Test points on a requester's path (kvm_set_test_hook): a test may pause
 * the requesting thread there to force an interleaving with a vCPU.
 */
enum kvm_hook_point {
	KVM_HOOK_REQUEST_SET,   /* a request's bit is set on vcpu; its mode and
				 * exit epoch not yet read */
	KVM_HOOK_SLOT_INVALID,  /* a slot update: the INVALID copy published and
				 * its grace period over; the zap not yet done
				 * (vcpu NULL) */
	KVM_HOOK_GPC_AFTER_GUP, /* a gfn_to_pfn_cache refresh: page looked up,
				 * not yet installed (vcpu NULL) */
	KVM_HOOK_RUNSTATE_ACTIVATED, /* a run-state area's activation: its cache
				 * refreshed, the first write not yet done */
	KVM_NR_HOOKS
};
typedef void (*kvm_hook_fn)(struct kvm *kvm, enum kvm_hook_point at,
			    struct kvm_vcpu *vcpu, void *arg);
/* Tests only: call fn at every hook point (NULL: none). */
void kvm_set_test_hook(struct kvm *kvm, kvm_hook_fn fn, void *arg);

/* Set req on vcpu and kick it out of guest mode; returns at once. Any thread. */
void kvm_make_request_and_kick(int req, struct kvm_vcpu *vcpu);

#endif
