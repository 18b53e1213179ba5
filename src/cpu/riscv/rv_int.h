/* SPDX-License-Identifier: MIT */
/*
 * rv_int.h - the RISC-V hart's private state, shared by the files of
 * src/cpu/riscv: hart.c (run loop, interrupts, WFI), csr.c (CSRs, traps),
 * mmu.c (Sv39/Sv48 walk, the slow path of every access, decoded code),
 * exec.c (decoder and interpreter).
 *
 * Threads: everything here is the hart thread's own, except the fields
 * marked "any thread" (interrupt lines, mtimecmp, the wake-up hint).
 *
 * Guest mode: rv_exec runs in guest mode, where host pointers taken from
 * the soft TLB or from kvm_tdp_translate stay valid (an invalidation waits
 * for this vCPU to leave guest mode before the host reuses a frame). Any
 * path that leaves guest mode (a fault, an MMIO exit) must re-enter before
 * touching guest memory again, and must assume the soft TLB was flushed
 * meanwhile: h->gen tells.
 */
#ifndef TANDEM_RV_INT_H
#define TANDEM_RV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include "tandem/riscv.h"
#include "base/compiler.h"

/* mstatus bits. */
#define MSTATUS_SIE   (1ULL << 1)
#define MSTATUS_MIE   (1ULL << 3)
#define MSTATUS_SPIE  (1ULL << 5)
#define MSTATUS_UBE   (1ULL << 6)
#define MSTATUS_MPIE  (1ULL << 7)
#define MSTATUS_SPP   (1ULL << 8)
#define MSTATUS_MPP_SHIFT 11
#define MSTATUS_MPP   (3ULL << 11)
#define MSTATUS_FS    (3ULL << 13)
#define MSTATUS_MPRV  (1ULL << 17)
#define MSTATUS_SUM   (1ULL << 18)
#define MSTATUS_MXR   (1ULL << 19)
#define MSTATUS_TVM   (1ULL << 20)
#define MSTATUS_TW    (1ULL << 21)
#define MSTATUS_TSR   (1ULL << 22)
#define MSTATUS_UXL   (3ULL << 32)
#define MSTATUS_SXL   (3ULL << 34)
/* What software may change (FS is read-only zero: no F/D). */
#define MSTATUS_WMASK (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | \
		       MSTATUS_SPP | MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_SUM | \
		       MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR)
#define SSTATUS_MASK  (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_UBE | MSTATUS_SPP | \
		       MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_UXL)

#define MENVCFG_STCE  (1ULL << 63)

/* Interrupt bit masks. */
#define MIP_SSIP (1ULL << RV_IRQ_SSI)
#define MIP_MSIP (1ULL << RV_IRQ_MSI)
#define MIP_STIP (1ULL << RV_IRQ_STI)
#define MIP_MTIP (1ULL << RV_IRQ_MTI)
#define MIP_SEIP (1ULL << RV_IRQ_SEI)
#define MIP_MEIP (1ULL << RV_IRQ_MEI)
#define MIP_ALL  (MIP_SSIP | MIP_MSIP | MIP_STIP | MIP_MTIP | MIP_SEIP | MIP_MEIP)
#define SIP_MASK (MIP_SSIP | MIP_STIP | MIP_SEIP)
/* Delegable to S (mideleg's writable bits). */
#define MIDELEG_MASK SIP_MASK

/* Exception causes. */
enum {
	EXC_INSN_MISALIGNED = 0,
	EXC_INSN_ACCESS = 1,
	EXC_ILLEGAL = 2,
	EXC_BREAKPOINT = 3,
	EXC_LOAD_MISALIGNED = 4,
	EXC_LOAD_ACCESS = 5,
	EXC_STORE_MISALIGNED = 6,
	EXC_STORE_ACCESS = 7,
	EXC_ECALL_U = 8,
	EXC_ECALL_S = 9,
	EXC_ECALL_M = 11,
	EXC_INSN_PAGE = 12,
	EXC_LOAD_PAGE = 13,
	EXC_STORE_PAGE = 15,
};
#define MEDELEG_MASK 0xb3ffULL  /* every cause below 16 but 10, 11, 14 */

/* The kinds of access, for permissions and fault causes. */
enum rv_acc { ACC_READ, ACC_WRITE, ACC_FETCH };

/* mmu_idx: one soft-TLB table per translation regime. */
enum { MMU_U = 0, MMU_S = 1, MMU_S_SUM = 2, MMU_M = 3 };

/*
 * One decoded instruction. handler is a label address of the
 * interpreter (computed goto); rd is 32 (a sink register) when the
 * instruction's rd is x0, so no handler tests for it.
 */
struct rv_insn {
	const void *handler;
	int32_t imm;
	uint8_t rd, rs1, rs2, len;
};
_Static_assert(sizeof(struct rv_insn) == 16, "rv_insn size");

#define RV_SLOTS (PAGE_SIZE / 2)

/*
 * The decoded code of one guest-physical page. raw is the copy the slots
 * were decoded from (lazily, slot by slot); gen is the hart's code_gen
 * when raw was last checked against guest memory. A host TLB flush (every
 * host invalidation sends one) and fence.i bump code_gen, so the next
 * fetch from the page compares raw with what guest memory holds now and
 * starts over if they differ.
 */
struct rv_code_page {
	gpa_t gpa;
	uint64_t gen;
	struct rv_code_page *next;      /* hash chain */
	struct rv_insn slot[RV_SLOTS + 1]; /* + the page-end sentinel */
	uint64_t raw[PAGE_SIZE / 8];
};

#define RV_GVA_RECENT   8       /* per-hart cache of GVA roots by satp */
#define RV_CODE_HASH    1024
#define RV_CODE_MAX     768     /* pages; beyond, the whole cache goes */

struct rv_hart {
	uint64_t x[33];                 /* x[32]: where writes to x0 go */
	uint64_t pc;
	struct vcpu *v;
	struct kvm *kvm;
	unsigned int priv;
	bool wfi;

	/* Soft-TLB tables for data and fetch in the current regime
	 * (rv_update_mmu_idx), and the decoded page of each fetch entry. */
	struct stlb_entry *dtlb, *itlb;
	unsigned int data_idx, fetch_idx;
	struct rv_code_page *codeptr[STLB_NB_MODES][STLB_SIZE];
	uint64_t gen;                   /* ++ at every soft-TLB flush */
	/* ++ when guest memory may have changed under decoded code: a host
	 * TLB flush (an invalidation), fence.i, a reset. Guest TLB
	 * maintenance (sfence.vma, satp) changes translations, not memory,
	 * and leaves decoded pages alone (they are keyed by gpa). */
	uint64_t code_gen;

	/* The GVA table root serving satp gva_key (NULL: none fetched yet);
	 * roots live as long as the VM. gva_on: the VM uses GVA tables. */
	struct gva_root *gva_root;
	uint64_t gva_key;
	bool gva_on;
	/* The roots of the last few address spaces this hart ran, so that a
	 * switch back finds its root without gva.lock (a root reused for
	 * another space fails the key check and is fetched again). */
	struct {
		uint64_t key;
		struct gva_root *root;
	} gva_recent[RV_GVA_RECENT];
	unsigned int gva_recent_next;

	/* CSRs. */
	uint64_t mstatus, misa, medeleg, mideleg, mie, mip_sw;
	uint64_t mtvec, mscratch, mepc, mcause, mtval, mcounteren, menvcfg, mcountinhibit;
	uint64_t stvec, sscratch, sepc, scause, stval, scounteren, senvcfg, satp, stimecmp;
	uint64_t pmpcfg[16], pmpaddr[64];
	uint64_t hartid;
	uint64_t instret;

	uint64_t fence_word;            /* the target of fence's locked RMW */

	/* LR/SC reservation. */
	bool lr_valid;
	uint64_t lr_addr, lr_val;

	/* Any thread. */
	_Atomic uint64_t mip_lines;     /* MSIP, MEIP, SEIP from devices */
	_Atomic uint64_t mtimecmp;
	_Atomic int irq_hint;           /* leave the interpreter: look again */
	/* stat.instret + instret and the translation counters as of the
	 * interpreter's last return to the run loop (every chunk of at most
	 * RV_BUDGET branches): what rv_hart_get_live reads from other threads
	 * while the hart runs. */
	_Atomic uint64_t pub_instret, pub_ptw_walks, pub_gva_refills, pub_sfence_vma;
	pthread_mutex_t wfi_lock;
	pthread_cond_t wfi_cond;

	const struct rv_clock *clock;
	rv_ecall_fn ecall;
	void *ecall_arg;

	/* The pending exception of a slow path (rv_exec raises it). */
	uint64_t exc_cause, exc_tval;

	/* Decoded code, by gpa. */
	struct rv_code_page *code_hash[RV_CODE_HASH];
	unsigned int code_pages;
	struct rv_insn tmp[3];          /* an instruction straddling two pages */

	struct rv_hart_stats stat;
};

/* Slow-path results. */
#define RV_OK    0
#define RV_EXC   1      /* h->exc_cause / exc_tval set; the access did not happen */

/* hart.c */
int rv_handle_requests(struct rv_hart *h);
int rv_enter(struct rv_hart *h);
void rv_flush_tlb(struct rv_hart *h);
void rv_flush_tlb_and_code(struct rv_hart *h);
void rv_flush_guest_tlb(struct rv_hart *h);
uint64_t rv_read_mip(struct rv_hart *h);

/* csr.c */
void rv_update_mmu_idx(struct rv_hart *h);
uint64_t rv_trap(struct rv_hart *h, uint64_t pc, uint64_t cause, uint64_t tval, bool irq);
/* Read and/or write CSR csr; returns RV_OK or RV_EXC (illegal). *flush:
 * the write changed translation or privilege state. */
int rv_csr_op(struct rv_hart *h, unsigned int csr, uint64_t *old, bool write,
	      uint64_t val, uint64_t icount, bool *resync);
bool rv_take_interrupt(struct rv_hart *h);
uint64_t rv_mret(struct rv_hart *h);
uint64_t rv_sret(struct rv_hart *h);

/* mmu.c */
int rv_load_slow(struct rv_hart *h, uint64_t addr, unsigned int size, uint64_t *val);
int rv_store_slow(struct rv_hart *h, uint64_t addr, unsigned int size, uint64_t val);
int rv_amo_host(struct rv_hart *h, uint64_t addr, unsigned int size, bool write, void **host);
int rv_code_lookup(struct rv_hart *h, uint64_t pc, struct rv_code_page **out);
int rv_fetch16_slow(struct rv_hart *h, uint64_t addr, uint16_t *out);
void rv_sfence_vma(struct rv_hart *h, bool has_addr, uint64_t addr, bool has_asid,
		   uint64_t asid);
void rv_code_flush(struct rv_hart *h);
void rv_code_page_reset(struct rv_hart *h, struct rv_code_page *p);

/* exec.c */
int rv_exec(struct rv_hart *h);
const void *rv_decode_handler(void);

/* On the hart's thread: make the instructions retired so far, and the
 * translation counters, visible to rv_hart_get_live. */
static inline void rv_publish_live(struct rv_hart *h)
{
	atomic_store_explicit(&h->pub_instret, h->stat.instret + h->instret,
			      memory_order_relaxed);
	atomic_store_explicit(&h->pub_ptw_walks, h->stat.ptw_walks, memory_order_relaxed);
	atomic_store_explicit(&h->pub_gva_refills, h->stat.gva_refills, memory_order_relaxed);
	atomic_store_explicit(&h->pub_sfence_vma, h->stat.sfence_vma, memory_order_relaxed);
}

static inline uint64_t rv_time(const struct rv_hart *h)
{
	return rv_clock_read(h->clock);
}

static inline unsigned int rv_get_mpp(const struct rv_hart *h)
{
	return (h->mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
}

#endif
