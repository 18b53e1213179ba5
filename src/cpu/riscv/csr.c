/* SPDX-License-Identifier: MIT */
/*
 * csr.c - the hart's control and status registers, traps, interrupts and
 * the xRET instructions (privileged architecture 1.12).
 *
 * A CSR this hart does not implement raises illegal-instruction, as the
 * spec requires and as OpenSBI relies on when it probes optional CSRs
 * behind a trap handler. PMP CSRs hold what is written (no checks). Sstc:
 * stimecmp, enabled by menvcfg.STCE. FS is read-only zero (no F/D).
 * All of this runs on the hart's thread.
 */
#include "rv_int.h"

/* Pick the soft-TLB tables for the current privilege, MPRV and SUM. */
void rv_update_mmu_idx(struct rv_hart *h)
{
	unsigned int dpriv = h->priv;

	if (h->priv == RV_PRV_M && (h->mstatus & MSTATUS_MPRV))
		dpriv = rv_get_mpp(h);
	h->fetch_idx = h->priv == RV_PRV_M ? MMU_M : h->priv == RV_PRV_S ? MMU_S : MMU_U;
	h->data_idx = dpriv == RV_PRV_M ? MMU_M :
		      dpriv == RV_PRV_U ? MMU_U :
		      (h->mstatus & MSTATUS_SUM) ? MMU_S_SUM : MMU_S;
	h->dtlb = h->v->stlb[h->data_idx];
	h->itlb = h->v->stlb[h->fetch_idx];
}

/* Take a trap at pc; returns the handler's pc. */
uint64_t rv_trap(struct rv_hart *h, uint64_t pc, uint64_t cause, uint64_t tval, bool irq)
{
	bool to_s = h->priv <= RV_PRV_S &&
		    ((irq ? h->mideleg : h->medeleg) >> cause) & 1;
	uint64_t mcause = cause | (irq ? 1ULL << 63 : 0);
	uint64_t tvec;

	if (irq)
		h->stat.interrupts++;
	else
		h->stat.exceptions++;
	h->lr_valid = false;
	if (to_s) {
		h->scause = mcause;
		h->sepc = pc;
		h->stval = tval;
		h->mstatus &= ~(MSTATUS_SPIE | MSTATUS_SPP);
		if (h->mstatus & MSTATUS_SIE)
			h->mstatus |= MSTATUS_SPIE;
		if (h->priv == RV_PRV_S)
			h->mstatus |= MSTATUS_SPP;
		h->mstatus &= ~MSTATUS_SIE;
		h->priv = RV_PRV_S;
		tvec = h->stvec;
	} else {
		h->mcause = mcause;
		h->mepc = pc;
		h->mtval = tval;
		h->mstatus &= ~(MSTATUS_MPIE | MSTATUS_MPP);
		if (h->mstatus & MSTATUS_MIE)
			h->mstatus |= MSTATUS_MPIE;
		h->mstatus |= (uint64_t)h->priv << MSTATUS_MPP_SHIFT;
		h->mstatus &= ~MSTATUS_MIE;
		h->priv = RV_PRV_M;
		tvec = h->mtvec;
	}
	rv_update_mmu_idx(h);
	if ((tvec & 3) == 1 && irq)
		return (tvec & ~3ULL) + 4 * cause;
	return tvec & ~3ULL;
}

uint64_t rv_mret(struct rv_hart *h)
{
	unsigned int mpp = rv_get_mpp(h);

	h->mstatus &= ~MSTATUS_MIE;
	if (h->mstatus & MSTATUS_MPIE)
		h->mstatus |= MSTATUS_MIE;
	h->mstatus |= MSTATUS_MPIE;
	h->mstatus &= ~MSTATUS_MPP;     /* MPP = U, the least-privileged mode */
	if (mpp != RV_PRV_M)
		h->mstatus &= ~MSTATUS_MPRV;
	h->priv = mpp;
	h->lr_valid = false;
	rv_update_mmu_idx(h);
	return h->mepc;
}

uint64_t rv_sret(struct rv_hart *h)
{
	unsigned int spp = (h->mstatus & MSTATUS_SPP) ? RV_PRV_S : RV_PRV_U;

	h->mstatus &= ~MSTATUS_SIE;
	if (h->mstatus & MSTATUS_SPIE)
		h->mstatus |= MSTATUS_SIE;
	h->mstatus |= MSTATUS_SPIE;
	h->mstatus &= ~(MSTATUS_SPP | MSTATUS_MPRV);
	h->priv = spp;
	h->lr_valid = false;
	rv_update_mmu_idx(h);
	return h->sepc;
}

/*
 * Take the highest-priority pending and enabled interrupt, if any (the
 * run loop calls this between chunks, outside guest mode). Returns true
 * if one was taken.
 */
bool rv_take_interrupt(struct rv_hart *h)
{
	static const unsigned int prio[] = {
		RV_IRQ_MEI, RV_IRQ_MSI, RV_IRQ_MTI, RV_IRQ_SEI, RV_IRQ_SSI, RV_IRQ_STI,
	};
	uint64_t pending = rv_read_mip(h) & h->mie;
	uint64_t m, s;

	if (!pending)
		return false;
	m = pending & ~h->mideleg;
	s = pending & h->mideleg;
	if (!(h->priv < RV_PRV_M || (h->mstatus & MSTATUS_MIE)))
		m = 0;
	if (!(h->priv < RV_PRV_S || (h->priv == RV_PRV_S && (h->mstatus & MSTATUS_SIE))))
		s = 0;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t set = pass ? s : m;

		for (unsigned int i = 0; i < ARRAY_SIZE(prio); i++)
			if (set & (1ULL << prio[i])) {
				h->pc = rv_trap(h, h->pc, prio[i], 0, true);
				return true;
			}
	}
	return false;
}

/* Counter access from S or U mode (mcounteren / scounteren). */
static bool counter_allowed(struct rv_hart *h, unsigned int bit)
{
	if (h->priv == RV_PRV_M)
		return true;
	if (!((h->mcounteren >> bit) & 1))
		return false;
	return h->priv == RV_PRV_S || ((h->scounteren >> bit) & 1);
}

enum {
	CSR_SSTATUS = 0x100, CSR_SIE = 0x104, CSR_STVEC = 0x105, CSR_SCOUNTEREN = 0x106,
	CSR_SENVCFG = 0x10a, CSR_SSCRATCH = 0x140, CSR_SEPC = 0x141, CSR_SCAUSE = 0x142,
	CSR_STVAL = 0x143, CSR_SIP = 0x144, CSR_STIMECMP = 0x14d, CSR_SATP = 0x180,
	CSR_MSTATUS = 0x300, CSR_MISA = 0x301, CSR_MEDELEG = 0x302, CSR_MIDELEG = 0x303,
	CSR_MIE = 0x304, CSR_MTVEC = 0x305, CSR_MCOUNTEREN = 0x306, CSR_MENVCFG = 0x30a,
	CSR_MCOUNTINHIBIT = 0x320, CSR_MSCRATCH = 0x340, CSR_MEPC = 0x341,
	CSR_MCAUSE = 0x342, CSR_MTVAL = 0x343, CSR_MIP = 0x344,
	CSR_PMPCFG0 = 0x3a0, CSR_PMPADDR0 = 0x3b0,
	CSR_MCYCLE = 0xb00, CSR_MINSTRET = 0xb02,
	CSR_CYCLE = 0xc00, CSR_TIME = 0xc01, CSR_INSTRET = 0xc02,
	CSR_MVENDORID = 0xf11, CSR_MARCHID = 0xf12, CSR_MIMPID = 0xf13,
	CSR_MHARTID = 0xf14, CSR_MCONFIGPTR = 0xf15,
};

/* satp: Bare, Sv39 or Sv48; a write of another mode is ignored. */
static void write_satp(struct rv_hart *h, uint64_t val, bool *resync)
{
	uint64_t mode = val >> 60;

	if (mode != 0 && mode != 8 && mode != 9)
		return;
	/* 16 ASID bits, 44 PPN bits. */
	val &= (0xfULL << 60) | (0xffffULL << 44) | ((1ULL << 44) - 1);
	if (val != h->satp) {
		h->satp = val;
		/* The soft TLB is not tagged by ASID: a new root or ASID
		 * flushes it (only the tables used since the last flush, so a
		 * switch costs little); the GVA tables keep each ASID's
		 * translations, and the misses after the switch refill from
		 * them. */
		rv_flush_guest_tlb(h);
		*resync = true;
	}
}

static void write_mstatus(struct rv_hart *h, uint64_t val, uint64_t mask, bool *resync)
{
	uint64_t old = h->mstatus;

	mask &= MSTATUS_WMASK;
	if (((val & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT) == 2)
		val = (val & ~MSTATUS_MPP) | (old & MSTATUS_MPP);   /* reserved: keep */
	h->mstatus = (old & ~mask) | (val & mask);
	/* MXR changes what the cached read permissions mean. */
	if ((old ^ h->mstatus) & MSTATUS_MXR)
		rv_flush_guest_tlb(h);
	if ((old ^ h->mstatus) & (MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_SUM | MSTATUS_MXR |
				  MSTATUS_MIE | MSTATUS_SIE)) {
		rv_update_mmu_idx(h);
		*resync = true;
	}
}

/*
 * One CSR instruction's access. write: whether the instruction writes
 * (csrrw always; csrrs/csrrc only with rs1 != x0), val the new value.
 * Returns RV_EXC (illegal instruction) without side effects if the CSR
 * does not exist or the access is not allowed.
 */
int rv_csr_op(struct rv_hart *h, unsigned int csr, uint64_t *old, bool write,
	      uint64_t val, uint64_t icount, bool *resync)
{
	unsigned int min_priv = (csr >> 8) & 3;
	uint64_t r = 0;

	if (h->priv < min_priv || (write && (csr >> 10) == 3))
		return RV_EXC;
	switch (csr) {
	case CSR_SSTATUS:
		r = h->mstatus & SSTATUS_MASK;
		if (write)
			write_mstatus(h, val, SSTATUS_MASK, resync);
		break;
	case CSR_SIE:
		r = h->mie & h->mideleg;
		if (write)
			h->mie = (h->mie & ~h->mideleg) | (val & h->mideleg & SIP_MASK);
		*resync = true;
		break;
	case CSR_SIP:
		r = rv_read_mip(h) & h->mideleg;
		if (write && (h->mideleg & MIP_SSIP))
			h->mip_sw = (h->mip_sw & ~MIP_SSIP) | (val & MIP_SSIP);
		*resync = true;
		break;
	case CSR_STVEC: r = h->stvec; if (write) h->stvec = val & ~2ULL; break;
	case CSR_SCOUNTEREN: r = h->scounteren; if (write) h->scounteren = val & 7; break;
	case CSR_SENVCFG: r = h->senvcfg; if (write) h->senvcfg = val & 1; break;
	case CSR_SSCRATCH: r = h->sscratch; if (write) h->sscratch = val; break;
	case CSR_SEPC: r = h->sepc; if (write) h->sepc = val & ~1ULL; break;
	case CSR_SCAUSE: r = h->scause; if (write) h->scause = val; break;
	case CSR_STVAL: r = h->stval; if (write) h->stval = val; break;
	case CSR_STIMECMP:
		/* M may always reach it (OpenSBI probes it to detect Sstc);
		 * S only with menvcfg.STCE and mcounteren.TM. */
		if (h->priv < RV_PRV_M &&
		    (!(h->menvcfg & MENVCFG_STCE) || !(h->mcounteren & 2)))
			return RV_EXC;
		r = h->stimecmp;
		if (write) {
			h->stimecmp = val;
			*resync = true;
		}
		break;
	case CSR_SATP:
		if (h->priv == RV_PRV_S && (h->mstatus & MSTATUS_TVM))
			return RV_EXC;
		r = h->satp;
		if (write)
			write_satp(h, val, resync);
		break;
	case CSR_MSTATUS:
		r = h->mstatus;
		if (write)
			write_mstatus(h, val, ~0ULL, resync);
		break;
	case CSR_MISA: r = h->misa; break;     /* writes ignored */
	case CSR_MEDELEG: r = h->medeleg; if (write) h->medeleg = val & MEDELEG_MASK; break;
	case CSR_MIDELEG:
		r = h->mideleg;
		if (write) {
			h->mideleg = val & MIDELEG_MASK;
			*resync = true;
		}
		break;
	case CSR_MIE:
		r = h->mie;
		if (write) {
			h->mie = val & MIP_ALL;
			*resync = true;
		}
		break;
	case CSR_MIP:
		r = rv_read_mip(h);
		/* Software may set SSIP, STIP (without Sstc) and SEIP. */
		if (write) {
			uint64_t wm = MIP_SSIP | MIP_SEIP |
				      ((h->menvcfg & MENVCFG_STCE) ? 0 : MIP_STIP);

			h->mip_sw = (h->mip_sw & ~wm) | (val & wm);
			*resync = true;
		}
		break;
	case CSR_MTVEC: r = h->mtvec; if (write) h->mtvec = val & ~2ULL; break;
	case CSR_MCOUNTEREN: r = h->mcounteren; if (write) h->mcounteren = val & 7; break;
	case CSR_MENVCFG:
		r = h->menvcfg;
		if (write) {
			h->menvcfg = val & (MENVCFG_STCE | 1);
			*resync = true;
		}
		break;
	case CSR_MCOUNTINHIBIT: r = h->mcountinhibit; if (write) h->mcountinhibit = val & 5; break;
	case CSR_MSCRATCH: r = h->mscratch; if (write) h->mscratch = val; break;
	case CSR_MEPC: r = h->mepc; if (write) h->mepc = val & ~1ULL; break;
	case CSR_MCAUSE: r = h->mcause; if (write) h->mcause = val; break;
	case CSR_MTVAL: r = h->mtval; if (write) h->mtval = val; break;
	case CSR_MCYCLE:
	case CSR_MINSTRET:
		r = h->instret + icount;
		if (write)
			h->instret = val - icount;
		break;
	case CSR_CYCLE:
	case CSR_INSTRET:
		if (!counter_allowed(h, csr - CSR_CYCLE))
			return RV_EXC;
		r = h->instret + icount;
		break;
	case CSR_TIME:
		if (!counter_allowed(h, 1))
			return RV_EXC;
		r = rv_time(h);
		break;
	case CSR_MVENDORID: case CSR_MARCHID: case CSR_MIMPID: case CSR_MCONFIGPTR:
		r = 0;
		break;
	case CSR_MHARTID: r = h->hartid; break;
	default:
		if (csr >= CSR_PMPCFG0 && csr < CSR_PMPCFG0 + 16) {
			if (csr & 1)
				return RV_EXC;  /* odd pmpcfg: RV32 only */
			r = h->pmpcfg[csr - CSR_PMPCFG0];
			if (write)
				h->pmpcfg[csr - CSR_PMPCFG0] = val;
			break;
		}
		if (csr >= CSR_PMPADDR0 && csr < CSR_PMPADDR0 + 64) {
			r = h->pmpaddr[csr - CSR_PMPADDR0];
			if (write)
				h->pmpaddr[csr - CSR_PMPADDR0] = val & ((1ULL << 54) - 1);
			break;
		}
		return RV_EXC;
	}
	*old = r;
	return RV_OK;
}
