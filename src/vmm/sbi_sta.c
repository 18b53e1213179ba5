/* SPDX-License-Identifier: MIT */
/*
 * sbi_sta.c - an SBI extension the VMM implements beside the guest's own
 * firmware, as KVM implements SBI for its guests: steal-time accounting
 * (STA, SBI 2.0 chapter "Steal-time Accounting Extension", EID 0x535441),
 * backed by kvm's run-state area in its KVM_RUNSTATE_SBI_STA format
 * (kvm_vcpu_runstate_*: written by the vCPU's thread at every guest entry
 * through a guest-mode gfn_to_pfn cache).
 *
 * The hart hands us every ecall before it traps (rv_hart_config.ecall),
 * on its own thread, outside guest mode. We answer, from S mode only:
 *
 *   base probe_extension(STA)     a0 = SBI_SUCCESS, a1 = 1 (available)
 *   STA set_shmem (FID 0)         below
 *   STA, any other FID            SBI_ERR_NOT_SUPPORTED
 *
 * and return false for everything else -- other probes, other extensions,
 * every ecall from U or M mode -- so it traps to the firmware (OpenSBI in
 * M mode) as if we were not there. The S-mode kernel sees one SBI
 * implementation with one more extension; with the machine's STA off
 * (virt_config.sbi_sta_off) the hook is not installed and OpenSBI answers
 * the probe itself: not available.
 *
 * set_shmem(lo, hi, flags), checked in the spec's (and Linux's
 * kvm_sbi_sta_steal_time_set_shmem's) order:
 *
 *   1. flags != 0                         SBI_ERR_INVALID_PARAM
 *   2. lo = hi = all ones                 disable: deactivate, SBI_SUCCESS
 *   3. lo not 64-byte aligned             SBI_ERR_INVALID_PARAM
 *   4. hi != 0 (above RV64's addresses)   SBI_ERR_INVALID_ADDRESS
 *   5. kvm_vcpu_runstate_activate         SBI_SUCCESS; -EFAULT (no
 *                                         writable RAM: MMIO, ROM, a hole)
 *                                         SBI_ERR_INVALID_ADDRESS; else
 *                                         SBI_ERR_FAILED
 *
 * A call refused at 1, 3 or 4 leaves an earlier area as it was; one that
 * fails at 5 leaves none (activate drops the old area before it maps the
 * new one). a1 is 0 after every STA call.
 *
 * Invariants:
 *   1. Only the hart's own thread, outside guest mode, activates or
 *      deactivates its area (this hook), or anyone with the hart stopped
 *      (virt_sbi_reset: a machine reset forgets the area, as KVM's vCPU
 *      reset does; so does the kvm vCPU's teardown).
 *   2. sbi->sta_shmem is the hart thread's: it names the area kvm writes,
 *      or VIRT_SBI_NO_SHMEM.
 */
#include <errno.h>
#include <string.h>
#include "tandem/kvm.h"
#include "tandem/riscv.h"
#include "vmm/virt_dev.h"

#define SBI_EXT_BASE                    0x10
#define SBI_EXT_BASE_PROBE_EXT          3
#define SBI_EXT_STA                     0x535441
#define SBI_EXT_STA_STEAL_TIME_SET_SHMEM 0

#define SBI_SUCCESS                     0
#define SBI_ERR_FAILED                  (-1)
#define SBI_ERR_NOT_SUPPORTED           (-2)
#define SBI_ERR_INVALID_PARAM           (-3)
#define SBI_ERR_INVALID_ADDRESS         (-5)

#define SBI_SHMEM_DISABLE               UINT64_MAX
#define SBI_STA_SHMEM_ALIGN             64

#define REG_A0 10
#define REG_A1 11
#define REG_A2 12
#define REG_A6 16
#define REG_A7 17

#define sbi_stat_inc(sbi, f) \
	__atomic_store_n(&(sbi)->stat.f, (sbi)->stat.f + 1, __ATOMIC_RELAXED)

static void sta_shmem_set(struct virt_sbi *sbi, gpa_t gpa)
{
	__atomic_store_n(&sbi->sta_shmem, gpa, __ATOMIC_RELAXED);
}

void virt_sbi_init(struct virt_sbi *sbi, struct kvm_vcpu *vcpu)
{
	memset(sbi, 0, sizeof(*sbi));
	sbi->vcpu = vcpu;
	sbi->sta_shmem = VIRT_SBI_NO_SHMEM;
}

static long sbi_sta_set_shmem(struct virt_sbi *sbi, uint64_t lo, uint64_t hi, uint64_t flags)
{
	int r;

	if (flags != 0)
		return SBI_ERR_INVALID_PARAM;
	if (lo == SBI_SHMEM_DISABLE && hi == SBI_SHMEM_DISABLE) {
		kvm_vcpu_runstate_deactivate(sbi->vcpu);
		sta_shmem_set(sbi, VIRT_SBI_NO_SHMEM);
		sbi_stat_inc(sbi, sta_disables);
		return SBI_SUCCESS;
	}
	if (lo & (SBI_STA_SHMEM_ALIGN - 1))
		return SBI_ERR_INVALID_PARAM;
	if (hi != 0)
		return SBI_ERR_INVALID_ADDRESS;
	r = kvm_vcpu_runstate_activate(sbi->vcpu, lo, KVM_RUNSTATE_SBI_STA);
	if (r) {
		/* activate deactivated the old area first */
		sta_shmem_set(sbi, VIRT_SBI_NO_SHMEM);
		return r == -EFAULT ? SBI_ERR_INVALID_ADDRESS :
		       r == -EINVAL ? SBI_ERR_INVALID_PARAM : SBI_ERR_FAILED;
	}
	sta_shmem_set(sbi, lo);
	sbi_stat_inc(sbi, sta_enables);
	return SBI_SUCCESS;
}

bool virt_sbi_ecall(struct rv_hart *hart, unsigned int priv, void *arg)
{
	struct virt_sbi *sbi = arg;
	uint64_t eid, fid;
	long err;

	if (priv != RV_PRV_S)
		return false;
	eid = rv_hart_get_reg(hart, REG_A7);
	fid = rv_hart_get_reg(hart, REG_A6);
	if (eid == SBI_EXT_BASE) {
		if (fid != SBI_EXT_BASE_PROBE_EXT || rv_hart_get_reg(hart, REG_A0) != SBI_EXT_STA)
			return false;
		rv_hart_set_reg(hart, REG_A0, SBI_SUCCESS);
		rv_hart_set_reg(hart, REG_A1, 1);
		sbi_stat_inc(sbi, sta_probes);
		return true;
	}
	if (eid != SBI_EXT_STA)
		return false;
	if (fid == SBI_EXT_STA_STEAL_TIME_SET_SHMEM)
		err = sbi_sta_set_shmem(sbi, rv_hart_get_reg(hart, REG_A0),
					rv_hart_get_reg(hart, REG_A1),
					rv_hart_get_reg(hart, REG_A2));
	else
		err = SBI_ERR_NOT_SUPPORTED;
	sbi_stat_inc(sbi, sta_calls);
	if (err)
		sbi_stat_inc(sbi, sta_errors);
	rv_hart_set_reg(hart, REG_A0, (uint64_t)err);
	rv_hart_set_reg(hart, REG_A1, 0);
	return true;
}

void virt_sbi_reset(struct virt_sbi *sbi)
{
	kvm_vcpu_runstate_deactivate(sbi->vcpu);
	sta_shmem_set(sbi, VIRT_SBI_NO_SHMEM);
}

void virt_sbi_get_stats(const struct virt_sbi *sbi, struct virt_sbi_stats *st)
{
	st->sta_probes = __atomic_load_n(&sbi->stat.sta_probes, __ATOMIC_RELAXED);
	st->sta_calls = __atomic_load_n(&sbi->stat.sta_calls, __ATOMIC_RELAXED);
	st->sta_errors = __atomic_load_n(&sbi->stat.sta_errors, __ATOMIC_RELAXED);
	st->sta_enables = __atomic_load_n(&sbi->stat.sta_enables, __ATOMIC_RELAXED);
	st->sta_disables = __atomic_load_n(&sbi->stat.sta_disables, __ATOMIC_RELAXED);
	st->sta_active = __atomic_load_n(&sbi->sta_shmem, __ATOMIC_RELAXED) != VIRT_SBI_NO_SHMEM;
}
