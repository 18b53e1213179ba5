/* SPDX-License-Identifier: MIT */
/*
 * hart.c - the RISC-V hart's life: creation and reset, the run loop that
 * enters and leaves guest mode around the interpreter, requests, interrupt
 * lines from devices, and WFI.
 *
 * The run loop, outside guest mode: handle requests (KVM_REQ_TLB_FLUSH
 * empties the soft TLB and bumps h->gen and h->code_gen, so decoded code
 * is checked against guest memory again), take a pending interrupt, sleep in WFI,
 * then enter guest mode and interpret until a request, an interrupt hint,
 * WFI or the instruction budget ends the chunk. In guest mode the
 * interpreter checks the request word at every taken branch and page
 * crossing, so a kick is answered within a bounded number of instructions.
 *
 * WFI sleeps on wfi_cond until an interrupt line, mtimecmp, or a stop
 * wakes it (irq_hint set under wfi_lock: no lost wake-up), or until the
 * next timer deadline. It sleeps outside guest mode, so no flush waits
 * for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "rv_int.h"
#include "base/clock.h"
#include "base/rcu.h"
#include "kvm/kvm_host.h"

void rv_clock_init(struct rv_clock *clk, uint64_t freq_hz)
{
	clk->origin_ns = clock_now_ns();
	clk->freq_hz = freq_hz ? freq_hz : 10000000;
}

uint64_t rv_clock_read(const struct rv_clock *clk)
{
	uint64_t ns = clock_now_ns() - clk->origin_ns;

	return (uint64_t)((unsigned __int128)ns * clk->freq_hz / NSEC_PER_SEC);
}

uint64_t rv_clock_to_ns(const struct rv_clock *clk, uint64_t ticks)
{
	unsigned __int128 ns = (unsigned __int128)ticks * NSEC_PER_SEC / clk->freq_hz;

	if (ns > UINT64_MAX - clk->origin_ns)
		return UINT64_MAX;
	return clk->origin_ns + (uint64_t)ns;
}

/* Something may have made an interrupt pending: the request makes a
 * running hart leave the interpreter at its next check; the hint under
 * wfi_lock wakes one sleeping in WFI. Any thread. */
static void rv_wake(struct rv_hart *h)
{
	kvm_make_request_and_kick(KVM_REQ_EVENT, &h->v->kvm_vcpu);
	pthread_mutex_lock(&h->wfi_lock);
	atomic_store_explicit(&h->irq_hint, 1, memory_order_relaxed);
	pthread_cond_signal(&h->wfi_cond);
	pthread_mutex_unlock(&h->wfi_lock);
}

static void rv_vcpu_wake(struct vcpu *v)
{
	rv_wake(v->engine);
}

void rv_hart_set_irq(struct rv_hart *h, unsigned int irq, bool level)
{
	uint64_t bit = 1ULL << irq;

	BUG_ON(!(bit & (MIP_MSIP | MIP_MEIP | MIP_SEIP)));
	if (level)
		atomic_fetch_or(&h->mip_lines, bit);
	else
		atomic_fetch_and(&h->mip_lines, ~bit);
	rv_wake(h);
}

void rv_hart_set_mtimecmp(struct rv_hart *h, uint64_t ticks)
{
	atomic_store(&h->mtimecmp, ticks);
	rv_wake(h);
}

uint64_t rv_hart_get_mtimecmp(struct rv_hart *h)
{
	return atomic_load(&h->mtimecmp);
}

uint64_t rv_hart_get_reg(struct rv_hart *h, unsigned int reg)
{
	return reg < 32 ? h->x[reg] : 0;
}

void rv_hart_set_reg(struct rv_hart *h, unsigned int reg, uint64_t val)
{
	if (reg && reg < 32)
		h->x[reg] = val;
}

uint64_t rv_hart_get_pc(struct rv_hart *h)
{
	return h->pc;
}

struct vcpu *rv_hart_vcpu(struct rv_hart *h)
{
	return h->v;
}

/* mip as software reads it: the bits software sets, the device lines,
 * and the timers compared now. */
uint64_t rv_read_mip(struct rv_hart *h)
{
	uint64_t mip = h->mip_sw | atomic_load_explicit(&h->mip_lines, memory_order_relaxed);
	uint64_t now = rv_time(h);

	if (now >= atomic_load_explicit(&h->mtimecmp, memory_order_relaxed))
		mip |= MIP_MTIP;
	if ((h->menvcfg & MENVCFG_STCE) && now >= h->stimecmp)
		mip |= MIP_STIP;
	return mip;
}

void rv_flush_tlb(struct rv_hart *h)
{
	stlb_flush(h->v);
	h->gen++;
}

/* Guest TLB maintenance (sfence.vma, a satp or MXR change): translations
 * change, guest-physical memory does not, so M mode's table (gpa -> host:
 * the walker's physical TLB) and decoded code stay. */
void rv_flush_guest_tlb(struct rv_hart *h)
{
	stlb_flush_mask(h->v, (1u << MMU_U) | (1u << MMU_S) | (1u << MMU_S_SUM));
	h->gen++;
}

/* A flush after which guest memory may differ: decoded code is checked
 * against it again. */
void rv_flush_tlb_and_code(struct rv_hart *h)
{
	rv_flush_tlb(h);
	h->code_gen++;
}

/* Outside guest mode. -EINTR if the hart must stop, -EIO if its STA area's
 * page was lost. */
int rv_handle_requests(struct rv_hart *h)
{
	struct kvm_vcpu *kv = &h->v->kvm_vcpu;
	int r;

	BUG_ON(atomic_load_explicit(&kv->requests, memory_order_relaxed) &
	       ~((1UL << KVM_NR_REQUESTS) - 1));
	if (kvm_check_request(KVM_REQ_TLB_FLUSH, kv))
		rv_flush_tlb_and_code(h);
	/* Interrupts are looked at by the run loop after every chunk. */
	kvm_check_request(KVM_REQ_EVENT, kv);
	/* KVM_REQ_GPC_INVALIDATE: -EIO if the STA area's page was lost
	 * (a failed swap-in), fatal as for any access that needed it. */
	r = kvm_vcpu_handle_gpc_invalidate(kv);
	if (r)
		return r;
	if (vcpu_should_stop(h->v))
		return -EINTR;
	return 0;
}

/* Enter guest mode, handling requests that arrive meanwhile: 0 in guest
 * mode, -EINTR outside it. */
int rv_enter(struct rv_hart *h)
{
	while (kvm_vcpu_enter_guest_mode(&h->v->kvm_vcpu)) {
		int r = rv_handle_requests(h);

		if (r)
			return r;
	}
	return 0;
}

/* Sleep until an interrupt may be pending, a stop, or the next timer
 * deadline. Outside guest mode. */
static void rv_wfi_sleep(struct rv_hart *h)
{
	uint64_t cmp = atomic_load(&h->mtimecmp);
	uint64_t deadline_ns, now_ns;
	struct timespec ts;

	if ((h->menvcfg & MENVCFG_STCE) && h->stimecmp < cmp)
		cmp = h->stimecmp;
	deadline_ns = rv_clock_to_ns(h->clock, cmp);
	now_ns = clock_now_ns();
	if (deadline_ns <= now_ns)
		return;
	h->stat.wfi_sleeps++;
	pthread_mutex_lock(&h->wfi_lock);
	if (cmp == UINT64_MAX) {
		/* No timer armed: only a line, mtimecmp or a stop ends this
		 * (each sets irq_hint under wfi_lock: rv_wake). */
		while (!atomic_load_explicit(&h->irq_hint, memory_order_relaxed))
			pthread_cond_wait(&h->wfi_cond, &h->wfi_lock);
	} else {
		clock_deadline(CLOCK_REALTIME, &ts, deadline_ns - now_ns);
		while (!atomic_load_explicit(&h->irq_hint, memory_order_relaxed))
			if (pthread_cond_timedwait(&h->wfi_cond, &h->wfi_lock, &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&h->wfi_lock);
}

int rv_hart_main(struct vcpu *v, void *arg)
{
	struct rv_hart *h = arg;
	struct kvm_vcpu *kv = &v->kvm_vcpu;
	int r;

	BUG_ON(v->engine != h);
	/* vcpu_run's thread entered guest mode before calling us. */
	if (atomic_load_explicit(&kv->mode, memory_order_relaxed) != OUTSIDE_GUEST_MODE)
		kvm_vcpu_exit_guest_mode(kv);
	for (;;) {
		r = rv_handle_requests(h);
		if (r)
			break;
		atomic_store_explicit(&h->irq_hint, 0, memory_order_relaxed);
		if (rv_take_interrupt(h))
			h->wfi = false;
		if (h->wfi) {
			if (rv_read_mip(h) & h->mie) {
				h->wfi = false;
			} else {
				rv_wfi_sleep(h);
				continue;
			}
		}
		if (kvm_vcpu_enter_guest_mode(kv))
			continue;
		r = rv_exec(h);
		if (r < 0)
			break;
		kvm_vcpu_exit_guest_mode(kv);
	}
	if (atomic_load_explicit(&kv->mode, memory_order_relaxed) != OUTSIDE_GUEST_MODE)
		kvm_vcpu_exit_guest_mode(kv);
	return r == -EINTR ? 0 : r;
}

static bool rv_hart_config_ok(const struct rv_hart_config *cfg)
{
	return cfg && cfg->clock &&
	       (cfg->priv == RV_PRV_M || cfg->priv == RV_PRV_S || cfg->priv == RV_PRV_U);
}

/*
 * Every architectural register and CSR to its reset value, the boot
 * registers from cfg; the hart's bookkeeping that outlives a reset is
 * left alone: the vCPU, the WFI lock, the device lines (mip_lines: the
 * devices own them), the decoded code and soft TLB (the caller flushes),
 * the flush generation (only ever grows: decoded pages compare it), the
 * statistics. rv_hart_create runs it on a zeroed hart, so the two agree.
 */
static void rv_hart_reset_state(struct rv_hart *h, const struct rv_hart_config *cfg)
{
	h->clock = cfg->clock;
	h->ecall = cfg->ecall;
	h->ecall_arg = cfg->ecall_arg;
	h->hartid = cfg->hartid;

	memset(h->x, 0, sizeof(h->x));
	h->pc = cfg->reset_pc;
	h->x[10] = cfg->a0;
	h->x[11] = cfg->a1;
	h->x[12] = cfg->a2;
	h->priv = cfg->priv;
	h->wfi = false;

	/* RV64 IMAC + S + U: no F/D, so FS stays off. */
	h->misa = (2ULL << 62) | (1u << ('I' - 'A')) | (1u << ('M' - 'A')) |
		  (1u << ('A' - 'A')) | (1u << ('C' - 'A')) | (1u << ('S' - 'A')) |
		  (1u << ('U' - 'A'));
	h->mstatus = (2ULL << 32) | (2ULL << 34);       /* UXL = SXL = 64 */
	h->medeleg = h->mideleg = h->mie = h->mip_sw = 0;
	h->mtvec = h->mscratch = h->mepc = h->mcause = h->mtval = 0;
	h->mcounteren = h->menvcfg = h->mcountinhibit = 0;
	h->stvec = h->sscratch = h->sepc = h->scause = h->stval = 0;
	h->scounteren = h->senvcfg = h->satp = 0;
	h->stimecmp = UINT64_MAX;
	memset(h->pmpcfg, 0, sizeof(h->pmpcfg));
	memset(h->pmpaddr, 0, sizeof(h->pmpaddr));
	/* minstret restarts; the statistics keep the instructions retired
	 * before (rv_hart_get_stats adds them). */
	h->stat.instret += h->instret;
	h->instret = 0;
	rv_publish_live(h);
	h->fence_word = 0;

	h->lr_valid = false;
	h->lr_addr = h->lr_val = 0;
	h->exc_cause = h->exc_tval = 0;
	memset(h->tmp, 0, sizeof(h->tmp));
	atomic_store(&h->mtimecmp, UINT64_MAX);
	atomic_store_explicit(&h->irq_hint, 0, memory_order_relaxed);
	rv_update_mmu_idx(h);
}

int rv_hart_create(struct vcpu *v, const struct rv_hart_config *cfg, struct rv_hart **out)
{
	struct rv_hart *h;

	if (!v || !out || !rv_hart_config_ok(cfg) || v->running || v->engine)
		return -EINVAL;
	if (kvm_kick_mode(v->kvm_vcpu.kvm) != KVM_KICK_WAIT)
		return -EOPNOTSUPP;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->v = v;
	h->kvm = v->kvm_vcpu.kvm;
	h->gva_on = kvm_gva_mode(h->kvm) != KVM_GVA_OFF;
	pthread_mutex_init(&h->wfi_lock, NULL);
	pthread_cond_init(&h->wfi_cond, NULL);
	rv_hart_reset_state(h, cfg);
	v->engine = h;
	v->wake = rv_vcpu_wake;
	*out = h;
	return 0;
}

int rv_hart_reset(struct rv_hart *h, const struct rv_hart_config *cfg)
{
	if (!h || !rv_hart_config_ok(cfg))
		return -EINVAL;
	if (h->v->running)
		return -EBUSY;
	rv_hart_reset_state(h, cfg);
	/* Nothing decoded or translated before the reset may be used after:
	 * the images were loaded again and satp is 0. */
	rv_code_flush(h);
	memset(h->codeptr, 0, sizeof(h->codeptr));
	rv_flush_tlb_and_code(h);
	/* The VM's GVA tables were built from page tables the reloaded
	 * images may have overwritten, and new software need not fence
	 * before it turns paging on. */
	kvm_gva_sfence(h->kvm, false, 0, false, 0);
	return 0;
}

void rv_hart_destroy(struct rv_hart *h)
{
	if (!h)
		return;
	BUG_ON(h->v->running);
	h->v->engine = NULL;
	h->v->wake = NULL;
	rv_code_flush(h);
	pthread_mutex_destroy(&h->wfi_lock);
	pthread_cond_destroy(&h->wfi_cond);
	free(h);
}

void rv_hart_get_stats(struct rv_hart *h, struct rv_hart_stats *st)
{
	*st = h->stat;
	st->instret = h->stat.instret + h->instret;
}

void rv_hart_get_live(struct rv_hart *h, struct rv_hart_live *live)
{
	live->instret = atomic_load_explicit(&h->pub_instret, memory_order_relaxed);
	live->ptw_walks = atomic_load_explicit(&h->pub_ptw_walks, memory_order_relaxed);
	live->gva_refills = atomic_load_explicit(&h->pub_gva_refills, memory_order_relaxed);
	live->sfence_vma = atomic_load_explicit(&h->pub_sfence_vma, memory_order_relaxed);
}
