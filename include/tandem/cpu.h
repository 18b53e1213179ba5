/* SPDX-License-Identifier: MIT */
/*
 * cpu.h - execution engines: the soft TLB, and the C-guest engine whose
 * guests reach guest memory through vcpu_load64/vcpu_store64.
 *
 * Guest code is C run on a vCPU thread. Its hit path is the soft TLB: a
 * direct-mapped, per-vCPU table of (guest page -> host address addend) with
 * separate read, write and fetch comparators, as in QEMU's CPUTLB, one table
 * per guest MMU mode (mmu_idx). A hit takes no lock and makes no atomic
 * read-modify-write: one check of the request word (the kick) and one
 * compare of the tag, then the access. A miss leaves guest mode and goes to
 * vcpu_access_slow() (walk the GPA tables, fault, refill).
 *
 * struct vcpu embeds the kvm layer's vCPU object (kvm.h: modes, requests,
 * kicks); the engine handles the requests kvm sends (KVM_REQ_TLB_FLUSH
 * empties every soft-TLB table) before it enters guest mode again. With
 * paging off (C guests), gva == gpa and mmu_idx is 0.
 */
#ifndef TANDEM_CPU_H
#define TANDEM_CPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include "tandem/types.h"
#include "tandem/config.h"
#include "tandem/kvm.h"

#define STLB_BITS     8
#define STLB_SIZE     (1u << STLB_BITS)
#define STLB_NB_MODES 4         /* mmu_idx: e.g. U, S, S+SUM, M */
#define STLB_INVALID  ((uint64_t)-1)
#define STLB_LOG      32        /* fills remembered per table (struct vcpu) */

/*
 * One soft-TLB entry: host address = gva + addend, and a comparator per
 * access type that holds the guest page when that access may use the
 * entry (STLB_INVALID otherwise). 32 bytes, in 64-byte aligned tables: an
 * entry never spans two cache lines. The addend comes first: a hit loads
 * it from (table + offset) with no displacement, which is on a
 * pointer-chasing guest's critical path (cpu_rseq.h, "Cost").
 */
struct stlb_entry {
	uintptr_t addend;
	uint64_t addr_read;
	uint64_t addr_write;    /* writable (and already dirty in the spte) */
	uint64_t addr_code;     /* fetchable */
};
#define STLB_ENTRY_SHIFT 5
_Static_assert(sizeof(struct stlb_entry) == 1u << STLB_ENTRY_SHIFT, "stlb entry size");
_Static_assert(offsetof(struct stlb_entry, addend) == 0, "stlb addend first");

/* Permissions for stlb_fill. */
#define STLB_PROT_READ  (1u << 0)
#define STLB_PROT_WRITE (1u << 1)
#define STLB_PROT_EXEC  (1u << 2)

struct vcpu;

/* Exit to the VMM for an access of size bytes (1, 2, 4 or 8; naturally
 * aligned) no slot backs (MMIO), or a write to a read-only slot. Reads
 * return *val (the low size bytes count). Called outside guest mode.
 * Returns 0, or -EFAULT if nothing is there (an engine with access
 * faults raises one; the C engine reads all-ones). */
typedef int (*vcpu_mmio_fn)(struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
			    uint64_t *val, void *arg);
typedef int (*vcpu_guest_fn)(struct vcpu *vcpu, void *arg);

struct vcpu_stats {
	uint64_t accesses_slow;   /* accesses that missed the soft TLB */
	uint64_t stlb_fills;
	uint64_t stlb_flushes;
	uint64_t fast_faults;
	uint64_t faults;
	uint64_t fault_retries;
	uint64_t mmio_exits;
	uint64_t guest_exits;
	uint64_t rseq_aborts;     /* hits restarted by the kernel (cpu_rseq.h) */
};

struct vcpu {
	/* Hot: read on every guest access. */
	struct kvm_vcpu kvm_vcpu;       /* requests is its first word */
	struct stlb_entry *stlb_cur;    /* stlb[mmu_idx]: change them together */
	bool rseq;                      /* RSEQ kick mode: the slow path's access too
					 * is an rseq section (cpu_rseq.h) */
	unsigned int mmu_idx;

	pthread_t thread;
	bool running;
	vcpu_guest_fn guest_fn;
	void *guest_arg;
	int guest_ret;
	vcpu_mmio_fn mmio_fn;
	void *mmio_arg;
	/* Another execution engine's state (the RISC-V hart, riscv.h), and
	 * how to wake its thread from a sleep outside guest mode (WFI) when
	 * a stop is requested. NULL for the C-guest engine. */
	void *engine;
	void (*wake)(struct vcpu *vcpu);
	struct vcpu_stats stat;         /* written by the vCPU thread only */
	/* The entries filled in each table since its last flush, so that a
	 * flush clears those rather than the whole 8 KiB table (a guest's full
	 * fence and a satp switch are a flush each): up to STLB_LOG indices;
	 * stlb_nlog STLB_LOG + 1 means more, clear it all; 0, nothing to do.
	 * vCPU thread only. */
	uint8_t stlb_nlog[STLB_NB_MODES];
	uint8_t stlb_log[STLB_NB_MODES][STLB_LOG];

	struct stlb_entry stlb[STLB_NB_MODES][STLB_SIZE] __attribute__((aligned(64)));
};

static inline struct vcpu *to_vcpu(struct kvm_vcpu *kv)
{
	return (struct vcpu *)((char *)kv - offsetof(struct vcpu, kvm_vcpu));
}

static inline int vcpu_id(const struct vcpu *v)
{
	return v->kvm_vcpu.vcpu_id;
}

/* A C-guest vCPU of kvm with id: -EINVAL, -EEXIST, -ENOSPC, -ENOMEM. */
int vcpu_create(struct kvm *kvm, int id, struct vcpu **out);
void vcpu_destroy(struct vcpu *vcpu);
void vcpu_set_mmio(struct vcpu *vcpu, vcpu_mmio_fn fn, void *arg);
/* Start a thread running fn(vcpu, arg) in guest mode. */
int vcpu_run(struct vcpu *vcpu, vcpu_guest_fn fn, void *arg);
/* Ask the guest to stop (vcpu_should_stop() turns true); join its thread. */
int vcpu_stop(struct vcpu *vcpu);
/* Ask the guest to stop without waiting for it: safe from any thread,
 * the vCPU's own included (an OOM notify may run on it). A running vCPU
 * notices at its next request check or slow-path access; vcpu_stop
 * still joins it later. */
void vcpu_request_stop(struct vcpu *vcpu);
void vcpu_get_stats(struct vcpu *vcpu, struct vcpu_stats *st);

/* Returns in guest mode, except -EINTR (stop requested). */
int vcpu_access_slow(struct vcpu *vcpu, gva_t gva, bool write, uint64_t *val);
/* Leave guest mode briefly: handle requests (the bounded-interval exit). */
int vcpu_check_requests(struct vcpu *vcpu);
bool vcpu_should_stop(struct vcpu *vcpu);

/* The soft TLB (src/cpu/stlb.c); called by the vCPU's own thread. */
void stlb_flush(struct vcpu *vcpu);
/* Flush the tables of the mmu_idx bits in mask only. */
void stlb_flush_mask(struct vcpu *vcpu, unsigned int mask);
void stlb_fill(struct vcpu *vcpu, gva_t gva, void *host, unsigned int prot);

/* Remember that entry idx of table m was filled (stlb_flush_mask clears
 * only what was). A repeat is harmless. */
static inline void stlb_note_fill(struct vcpu *v, unsigned int m, unsigned int idx)
{
	_Static_assert(STLB_SIZE <= 256 && STLB_LOG < 255, "stlb log fits uint8_t");
	if (v->stlb_nlog[m] < STLB_LOG)
		v->stlb_log[m][v->stlb_nlog[m]] = (uint8_t)idx;
	if (v->stlb_nlog[m] <= STLB_LOG)
		v->stlb_nlog[m]++;
}

/* Keeps the low 3 bits: an unaligned access never matches a tag (tags are
 * page aligned), so it takes the slow path, which rejects it. */
#define STLB_CMP_MASK (~(uint64_t)(PAGE_SIZE - 1) | 7)

/* Byte offset of gva's entry in a table: the index times the entry size,
 * in one shift and one mask. */
static inline uint64_t stlb_offset(gva_t gva)
{
	return (gva >> (PAGE_SHIFT - STLB_ENTRY_SHIFT)) &
	       ((uint64_t)(STLB_SIZE - 1) << STLB_ENTRY_SHIFT);
}

static inline struct stlb_entry *stlb_entry(struct vcpu *v, gva_t gva)
{
	/* One load for the table rather than mmu_idx, a shift and an add:
	 * a hit is a couple of dozen instructions, and this is ~7% of it. */
	return (struct stlb_entry *)((char *)v->stlb_cur + stlb_offset(gva));
}

#include "tandem/cpu_rseq.h"

/*
 * Guest memory accesses are relaxed atomics: another vCPU may access the
 * same guest word (a guest race, not ours), and ThreadSanitizer then checks
 * the one thing that matters -- that no guest access races with the host
 * reusing the frame.
 *
 * Where rseq is built (x86-64, no sanitizer) the hit is the rseq section in
 * both kick modes, with no test of the mode: a hit must stay a short run of
 * instructions (cpu_rseq.h says why), and in WAIT mode the section only
 * adds a restart on preemption, which the slow path absorbs.
 */
static inline int vcpu_load64(struct vcpu *v, gva_t gva, uint64_t *val)
{
#ifdef TANDEM_HAVE_RSEQ
	if (__builtin_expect(stlb_rseq_load64(&v->kvm_vcpu.requests, v->stlb_cur,
					      stlb_offset(gva), gva, val,
					      &v->stat.rseq_aborts), 1))
		return 0;
#else
	struct stlb_entry *e = stlb_entry(v, gva);

	if (__builtin_expect(e->addr_read == (gva & STLB_CMP_MASK) &&
			     !kvm_request_pending(&v->kvm_vcpu), 1)) {
		*val = __atomic_load_n((uint64_t *)(e->addend + gva), __ATOMIC_RELAXED);
		return 0;
	}
#endif
	return vcpu_access_slow(v, gva, false, val);
}

static inline int vcpu_store64(struct vcpu *v, gva_t gva, uint64_t val)
{
#ifdef TANDEM_HAVE_RSEQ
	if (__builtin_expect(stlb_rseq_store64(&v->kvm_vcpu.requests, v->stlb_cur,
					       stlb_offset(gva), gva, val,
					       &v->stat.rseq_aborts), 1))
		return 0;
#else
	struct stlb_entry *e = stlb_entry(v, gva);

	if (__builtin_expect(e->addr_write == (gva & STLB_CMP_MASK) &&
			     !kvm_request_pending(&v->kvm_vcpu), 1)) {
		__atomic_store_n((uint64_t *)(e->addend + gva), val, __ATOMIC_RELAXED);
		return 0;
	}
#endif
	return vcpu_access_slow(v, gva, true, &val);
}

#endif
