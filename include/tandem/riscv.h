/* SPDX-License-Identifier: MIT */
/*
 * riscv.h - the RISC-V RV64IMAC hart: an execution engine beside the C-guest
 * one (cpu.h), on the same struct vcpu, soft TLB and request / kick /
 * guest-mode protocol. Privileged architecture 1.12: M, S and U modes,
 * traps and delegation, interrupts, WFI, Sv39/Sv48 with ASIDs, Sstc, PMP
 * CSRs accepted (no checks), Zicsr, Zifencei.
 *
 * Every guest memory access -- fetch, load, store, AMO, and the hart's own
 * page-table walk -- goes through the soft TLB and, on a miss, through the
 * GPA tables (kvm), faulting into the host mm like the C engine. Accesses
 * no RAM backs exit to the vCPU's MMIO handler (vmm dispatch) with their
 * size.
 *
 * Threads: a hart runs on its vCPU thread (vcpu_run with rv_hart_main).
 * The interrupt-line functions below may be called from any thread (a
 * device's, another hart's); they wake a hart sleeping in WFI.
 *
 * The VM of a hart must use the WAIT kick mode: the interpreter checks
 * requests at block boundaries, not in rseq sections (rv_hart_create
 * refuses an RSEQ VM with -EOPNOTSUPP).
 */
#ifndef TANDEM_RISCV_H
#define TANDEM_RISCV_H

#include <stdatomic.h>
#include "tandem/types.h"
#include "tandem/cpu.h"

/* Interrupt numbers (mip / mie bits). */
#define RV_IRQ_SSI  1
#define RV_IRQ_MSI  3
#define RV_IRQ_STI  5
#define RV_IRQ_MTI  7
#define RV_IRQ_SEI  9
#define RV_IRQ_MEI  11

/* Privilege levels. */
#define RV_PRV_U 0
#define RV_PRV_S 1
#define RV_PRV_M 3

/* The machine's time base (CLINT mtime, the time CSR): ticks at freq_hz
 * since origin_ns on the host's monotonic clock. Shared by every hart. */
struct rv_clock {
	uint64_t origin_ns;
	uint64_t freq_hz;               /* 10 MHz on the virt machine */
};
void rv_clock_init(struct rv_clock *clk, uint64_t freq_hz);
uint64_t rv_clock_read(const struct rv_clock *clk);
/* Host monotonic time (ns) at which the clock reads ticks. */
uint64_t rv_clock_to_ns(const struct rv_clock *clk, uint64_t ticks);

struct rv_hart;

/*
 * Environment calls the engine hands to the VMM before taking the trap
 * (NULL: none). Called on the hart's thread, outside guest mode, for an
 * ECALL from priv; return true if handled (the hart then skips the ecall),
 * false to trap as usual. Used for SBI extensions implemented by the VMM
 * beside the firmware (vmm/sbi_sta.c: STA, for S-mode callers), as KVM
 * implements SBI for its guests; the rest goes to the firmware (OpenSBI).
 */
typedef bool (*rv_ecall_fn)(struct rv_hart *hart, unsigned int priv, void *arg);

struct rv_hart_config {
	uint64_t hartid;                /* mhartid */
	uint64_t reset_pc;
	uint64_t a0, a1, a2;            /* boot registers: hart id, DTB, dynamic info */
	unsigned int priv;              /* privilege at reset (RV_PRV_M) */
	const struct rv_clock *clock;   /* required */
	rv_ecall_fn ecall;
	void *ecall_arg;
};

/*
 * Make the vCPU v (vcpu_create / vmm_create_vcpu, not running) a RISC-V
 * hart. -EINVAL (bad config), -EOPNOTSUPP (VM in RSEQ kick mode), -ENOMEM.
 * rv_hart_destroy after the vCPU has stopped, before vcpu_destroy.
 */
int rv_hart_create(struct vcpu *v, const struct rv_hart_config *cfg, struct rv_hart **out);
void rv_hart_destroy(struct rv_hart *hart);
/*
 * Reset the hart, its vCPU not running (-EBUSY otherwise; -EINVAL for a
 * bad cfg): every register and CSR back to rv_hart_create's values, pc,
 * a0..a2 and the privilege from cfg, mtimecmp to UINT64_MAX, no LR
 * reservation, no WFI, no pending exception; the soft TLB and the decoded
 * code emptied. The device lines (set_irq) are the devices' and stay as
 * they are: a machine reset resets its devices, which lower them. The
 * statistics keep counting across resets (per run, cumulative).
 */
int rv_hart_reset(struct rv_hart *hart, const struct rv_hart_config *cfg);
struct vcpu *rv_hart_vcpu(struct rv_hart *hart);
/* The vCPU thread's function: vcpu_run(v, rv_hart_main, hart). Returns 0
 * when stopped (vcpu_request_stop / vcpu_stop), or a negative errno if
 * the host failed an access fatally (-ENOMEM, -EIO, -ESRCH). */
int rv_hart_main(struct vcpu *v, void *hart);

/* Interrupt lines, from any thread. level: MSI (CLINT msip), MEI / SEI
 * (PLIC contexts). MTI is computed from mtimecmp; STI from stimecmp (Sstc)
 * or, without Sstc, set by M-mode software in mip. */
void rv_hart_set_irq(struct rv_hart *hart, unsigned int irq, bool level);
void rv_hart_set_mtimecmp(struct rv_hart *hart, uint64_t ticks);
uint64_t rv_hart_get_mtimecmp(struct rv_hart *hart);

/* Register access for the VMM, on the hart's thread (an ecall handler) or
 * while the hart is stopped. */
uint64_t rv_hart_get_reg(struct rv_hart *hart, unsigned int reg);
void rv_hart_set_reg(struct rv_hart *hart, unsigned int reg, uint64_t val);
uint64_t rv_hart_get_pc(struct rv_hart *hart);

/*
 * Decoded code is cached per hart, validated against guest memory when
 * the soft TLB is refilled after a flush (host invalidations flush it), and
 * dropped by fence.i. A VMM that writes code into guest RAM behind a
 * running hart (DMA) relies on the guest's fence.i, as on hardware.
 */

struct rv_hart_stats {
	uint64_t instret;
	uint64_t exceptions;
	uint64_t interrupts;
	uint64_t ecalls_to_vmm;
	uint64_t wfi_sleeps;
	uint64_t ptw_walks;             /* guest page-table walks (soft-TLB misses with paging) */
	uint64_t code_pages_decoded;    /* decoded-code pages built or rebuilt */
	uint64_t code_pages_checked;    /* revalidated after a soft-TLB flush */
	uint64_t sfence_vma;
	uint64_t gva_refills;           /* soft-TLB misses refilled from a GVA table */
	uint64_t gva_installs;          /* GVA entries built after a full walk */
	uint64_t gva_cold_skips;        /* full walks not installed: their root is
					 * flushed before it is reused (gva.c) */
	uint64_t fence_i;
	uint64_t mmio;
};
/* Approximate while the hart runs (its thread writes them). Cumulative
 * over the run: rv_hart_reset does not clear them. */
void rv_hart_get_stats(struct rv_hart *hart, struct rv_hart_stats *st);
/* The counters of rv_hart_stats that a sampler reads while the hart runs. */
struct rv_hart_live {
	uint64_t instret, ptw_walks, gva_refills, sfence_vma;
};
/* Any thread, while the hart runs too: exact as of the interpreter's last
 * return to its run loop (a few thousand branches behind at most). For
 * rates sampled during a run. */
void rv_hart_get_live(struct rv_hart *hart, struct rv_hart_live *live);

#endif
