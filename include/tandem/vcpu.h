/* SPDX-License-Identifier: MIT */
/*
 * vcpu.h - software vCPUs and the guest's load/store API.
 *
 * Guest code is C run on a vCPU thread. It reaches guest memory only through
 * vcpu_load64/vcpu_store64, whose hit path is the soft TLB: a direct-mapped,
 * per-vCPU table of (guest page -> host address addend) with separate read
 * and write comparators, as in QEMU's CPUTLB. A hit takes no lock and makes
 * no atomic read-modify-write: one compare of the tag and one check of the
 * request word (the kick), then the access. A miss leaves guest mode and
 * goes to vcpu_access_slow() (walk the GPA tables, fault, refill).
 *
 * Tables are kept per guest MMU mode (mmu_idx), so guest paging can add
 * privilege modes or ASIDs without a redesign; with paging off, gva == gpa.
 */
#ifndef TANDEM_VCPU_H
#define TANDEM_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include "tandem/types.h"

#define STLB_BITS     8
#define STLB_SIZE     (1u << STLB_BITS)
#define STLB_NB_MODES 2
#define STLB_INVALID  ((uint64_t)-1)

struct stlb_entry {
	uint64_t addr_read;     /* guest page if readable through addend, else -1 */
	uint64_t addr_write;    /* guest page if writable (and already dirty) */
	uintptr_t addend;       /* host address = gva + addend */
	uint64_t pad;
};

struct kvm;
struct kvm_vcpu;

/* Exit to the VMM for an access no slot backs (MMIO) or a write to a
 * read-only slot. Reads return *val. Called outside guest mode. */
typedef void (*vcpu_mmio_fn)(struct kvm_vcpu *vcpu, gpa_t gpa, bool write,
			     uint64_t *val, void *arg);
typedef int (*vcpu_guest_fn)(struct kvm_vcpu *vcpu, void *arg);

enum vcpu_hook_point {
	VCPU_HOOK_AFTER_GUP,    /* slow fault: frame looked up, mmu_lock not taken */
	VCPU_HOOK_IN_GUEST,     /* about to access guest memory in guest mode */
	VCPU_HOOK_BEFORE_ENTER, /* slow path: soft TLB filled, about to re-enter */
	VCPU_NR_HOOKS
};
typedef void (*vcpu_hook_fn)(struct kvm_vcpu *vcpu, enum vcpu_hook_point at, void *arg);

struct vcpu_stats {
	uint64_t accesses_slow;   /* accesses that missed the soft TLB */
	uint64_t stlb_fills;
	uint64_t stlb_flushes;
	uint64_t fast_faults;
	uint64_t faults;
	uint64_t fault_retries;
	uint64_t mmio_exits;
	uint64_t guest_exits;
};

struct kvm_vcpu {
	/* Hot: read on every guest access. */
	_Atomic unsigned long requests;
	bool rseq;                      /* hits run as rseq sections (vcpu_rseq.h) */
	unsigned int mmu_idx;
	struct stlb_entry *stlb_cur;    /* stlb[mmu_idx]: change them together */
	struct stlb_entry stlb[STLB_NB_MODES][STLB_SIZE];

	struct kvm *kvm;
	int vcpu_id;
	_Atomic int mode;               /* enum vcpu_mode (kvm_host.h) */
	_Atomic uint32_t exit_epoch;    /* ++ at every exit from guest mode */
	atomic_int waiters;             /* requesters sleeping on exit_epoch */
	/* Under kvm->lock: a non-waiting TLB flush (the OOM reaper's, WAIT
	 * mode) found this vCPU in guest mode at exit_epoch flush_snap; it
	 * is done with the zapped translations once exit_epoch moves. */
	bool flush_pending;
	uint32_t flush_snap;
	pthread_t thread;
	bool running;
	vcpu_guest_fn guest_fn;
	void *guest_arg;
	int guest_ret;
	vcpu_mmio_fn mmio_fn;
	void *mmio_arg;
	vcpu_hook_fn _Atomic hook;
	void *hook_arg;
	struct vcpu_stats stat;         /* written by the vCPU thread only */
};

int kvm_vcpu_create(struct kvm *kvm, int id, struct kvm_vcpu **out);
void kvm_vcpu_destroy(struct kvm_vcpu *vcpu);
void kvm_vcpu_set_mmio(struct kvm_vcpu *vcpu, vcpu_mmio_fn fn, void *arg);
void kvm_vcpu_set_hook(struct kvm_vcpu *vcpu, vcpu_hook_fn fn, void *arg);
/* Start a thread running fn(vcpu, arg) in guest mode. */
int kvm_vcpu_run(struct kvm_vcpu *vcpu, vcpu_guest_fn fn, void *arg);
/* Ask the guest to stop (vcpu_should_stop() turns true); join its thread. */
int kvm_vcpu_stop(struct kvm_vcpu *vcpu);
/* Ask the guest to stop without waiting for it: safe from any thread,
 * the vCPU's own included (an OOM notify may run on it). A running vCPU
 * notices at its next request check or slow-path access; kvm_vcpu_stop
 * still joins it later. */
void kvm_vcpu_request_stop(struct kvm_vcpu *vcpu);
void kvm_vcpu_get_stats(struct kvm_vcpu *vcpu, struct vcpu_stats *st);

/* Returns in guest mode, except -EINTR (stop requested). */
int vcpu_access_slow(struct kvm_vcpu *vcpu, gva_t gva, bool write, uint64_t *val);
/* Leave guest mode briefly: handle requests (the bounded-interval exit). */
int vcpu_check_requests(struct kvm_vcpu *vcpu);
bool vcpu_should_stop(struct kvm_vcpu *vcpu);

/* Keeps the low 3 bits: an unaligned access never matches a tag (tags are
 * page aligned), so it takes the slow path, which rejects it. */
#define STLB_CMP_MASK (~(uint64_t)(PAGE_SIZE - 1) | 7)

static inline struct stlb_entry *stlb_entry(struct kvm_vcpu *v, gva_t gva)
{
	/* One load for the table rather than mmu_idx, a shift and an add:
	 * a hit is a couple of dozen instructions, and this is ~7% of it. */
	return &v->stlb_cur[(gva >> PAGE_SHIFT) & (STLB_SIZE - 1)];
}

#include "tandem/vcpu_rseq.h"

/*
 * Guest memory accesses are relaxed atomics: another vCPU may access the
 * same guest word (a guest race, not ours), and ThreadSanitizer then checks
 * the one thing that matters -- that no guest access races with the host
 * reusing the frame.
 */
static inline int vcpu_load64(struct kvm_vcpu *v, gva_t gva, uint64_t *val)
{
	struct stlb_entry *e = stlb_entry(v, gva);

#ifdef VCPU_HAVE_RSEQ
	if (__builtin_expect(v->rseq, 1)) {
		if (__builtin_expect(stlb_rseq_load64(&v->requests, e, gva, val), 1))
			return 0;
		return vcpu_access_slow(v, gva, false, val);
	}
#endif
	if (__builtin_expect(e->addr_read == (gva & STLB_CMP_MASK) &&
			     !atomic_load_explicit(&v->requests, memory_order_relaxed), 1)) {
		*val = __atomic_load_n((uint64_t *)(e->addend + gva), __ATOMIC_RELAXED);
		return 0;
	}
	return vcpu_access_slow(v, gva, false, val);
}

static inline int vcpu_store64(struct kvm_vcpu *v, gva_t gva, uint64_t val)
{
	struct stlb_entry *e = stlb_entry(v, gva);

#ifdef VCPU_HAVE_RSEQ
	if (__builtin_expect(v->rseq, 1)) {
		if (__builtin_expect(stlb_rseq_store64(&v->requests, e, gva, val), 1))
			return 0;
		return vcpu_access_slow(v, gva, true, &val);
	}
#endif
	if (__builtin_expect(e->addr_write == (gva & STLB_CMP_MASK) &&
			     !atomic_load_explicit(&v->requests, memory_order_relaxed), 1)) {
		__atomic_store_n((uint64_t *)(e->addend + gva), val, __ATOMIC_RELAXED);
		return 0;
	}
	return vcpu_access_slow(v, gva, true, &val);
}

#endif
