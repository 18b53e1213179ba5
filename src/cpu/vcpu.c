/* SPDX-License-Identifier: MIT */
/*
 * vcpu.c - the C-guest execution engine: a thread per vCPU running a C
 * function in guest mode, the requests it handles, and the slow path of a
 * guest access (soft-TLB miss -> lockless GPA walk -> fault -> refill).
 *
 * Guest mode and the request/kick protocol are the kvm layer's
 * (src/kvm/kvm_vcpu.c); this engine's part is to check requests at every
 * access and at bounded intervals, and to handle them outside guest mode
 * before entering again:
 *   KVM_REQ_TLB_FLUSH  empty the soft TLB (every mmu_idx);
 *   KVM_REQ_STOP       return -EINTR to the guest; the bit stays set, so
 *                      every later entry refuses too;
 *   KVM_REQ_GPC_INVALIDATE  refresh the run-state area's cache (kvm.h).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "tandem/cpu.h"
#include "kvm/kvm_host.h"
#include "base/rcu.h"

/* Handle pending requests; called outside guest mode. Returns -EINTR if
 * the vCPU must stop. */
static int vcpu_handle_requests(struct vcpu *v)
{
	struct kvm_vcpu *kv = &v->kvm_vcpu;

	/* A request nobody handles would refuse every entry forever. */
	BUG_ON(atomic_load_explicit(&kv->requests, memory_order_relaxed) &
	       ~((1UL << KVM_NR_REQUESTS) - 1));
	if (kvm_check_request(KVM_REQ_TLB_FLUSH, kv))
		stlb_flush(v);
	kvm_check_request(KVM_REQ_EVENT, kv);  /* C guests take no interrupts */
	/* KVM_REQ_GPC_INVALIDATE. A lost run-state page (-EIO) stops the
	 * area; the guest learns it from kvm_vcpu_runstate_error. */
	(void)kvm_vcpu_handle_gpc_invalidate(kv);
	if (vcpu_should_stop(v))
		return -EINTR;
	return 0;
}

bool vcpu_should_stop(struct vcpu *v)
{
	return atomic_load_explicit(&v->kvm_vcpu.requests, memory_order_relaxed) &
	       (1UL << KVM_REQ_STOP);
}

/* Enter guest mode, handling what arrives meanwhile. Returns 0 in guest
 * mode, or -EINTR outside it. */
static int vcpu_enter_guest(struct vcpu *v)
{
	while (kvm_vcpu_enter_guest_mode(&v->kvm_vcpu)) {
		int r = vcpu_handle_requests(v);

		if (r)
			return r;
	}
	return 0;
}

/*
 * Called in guest mode; returns in guest mode, or -EINTR outside it. (It
 * also re-enters guest mode if called outside it, e.g. after -EINTR was
 * handled by a guest that means to go on.)
 */
int vcpu_check_requests(struct vcpu *v)
{
	struct kvm_vcpu *kv = &v->kvm_vcpu;
	bool outside = atomic_load_explicit(&kv->mode, memory_order_relaxed) ==
		       OUTSIDE_GUEST_MODE;
	int r;

	if (!outside && !kvm_request_pending(kv))
		return 0;
	if (!outside)
		kvm_vcpu_exit_guest_mode(kv);
	r = vcpu_handle_requests(v);
	return r ? r : vcpu_enter_guest(v);
}

/* The access itself, in guest mode with the translation in the soft TLB.
 * Returns false if it must be retried from the slow path (RSEQ: a request
 * arrived or the section was aborted). */
static bool vcpu_access_in_guest(struct vcpu *v, gva_t gva, bool write, uint64_t *val)
{
	struct stlb_entry *e = stlb_entry(v, gva);

#ifdef TANDEM_HAVE_RSEQ
	if (v->rseq)
		return write ? stlb_rseq_store64(&v->kvm_vcpu.requests, v->stlb_cur,
						 stlb_offset(gva), gva, *val,
						 &v->stat.rseq_aborts)
			     : stlb_rseq_load64(&v->kvm_vcpu.requests, v->stlb_cur,
						stlb_offset(gva), gva, val,
						&v->stat.rseq_aborts);
#endif
	uint64_t *p = (uint64_t *)(e->addend + gva);

	if (write)
		__atomic_store_n(p, *val, __ATOMIC_RELAXED);
	else
		*val = __atomic_load_n(p, __ATOMIC_RELAXED);
	return true;
}

/*
 * A guest access that missed the soft TLB (or saw a request). Called in
 * guest mode; leaves it, resolves the translation, re-enters, and performs
 * the access. Returns 0, or a negative errno: -EINVAL unaligned, -ENOMEM /
 * -ESRCH / -EFAULT / -EIO from the host (the access did not happen), or
 * -EINTR (stop requested). Every return but -EINTR is in guest mode, so a
 * guest that goes on after an error is still covered by the flush protocol.
 */
int vcpu_access_slow(struct vcpu *v, gva_t gva, bool write, uint64_t *val)
{
	struct kvm_vcpu *kv = &v->kvm_vcpu;
	struct kvm *kvm = kv->kvm;
	int r;

	if (gva & 7)
		return -EINVAL;
	v->stat.accesses_slow++;
	kvm_vcpu_exit_guest_mode(kv);
	for (;;) {
		struct stlb_entry *e;
		bool fast;
		void *host;

		r = vcpu_handle_requests(v);
		if (r)
			return r;
		e = stlb_entry(v, gva);
		if ((write ? e->addr_write : e->addr_read) == (gva & STLB_CMP_MASK))
			goto enter;

		/* With paging off, gva == gpa. */
		host = kvm_tdp_translate(kvm, gva >> PAGE_SHIFT, write, &fast);
		if (host) {
			if (fast)
				v->stat.fast_faults++;
			/* Cache write permission only for a dirty writable spte
			 * (a write made it so), so that later write hits need
			 * not set the dirty bit. */
			stlb_fill(v, gva, host, STLB_PROT_READ | (write ? STLB_PROT_WRITE : 0));
			goto enter;
		}
		r = kvm_mmu_page_fault(kv, gva, write);
		if (r == RET_PF_FIXED) {
			v->stat.faults++;
			continue;
		}
		if (r == RET_PF_RETRY) {
			v->stat.fault_retries++;
			sched_yield(); /* let the invalidation finish */
			continue;
		}
		if (r == RET_PF_MMIO) {
			v->stat.mmio_exits++;
			if (v->mmio_fn)
				(void)v->mmio_fn(v, gva, 8, write, val, v->mmio_arg);
			else if (!write)
				*val = ~0ULL;
			return vcpu_enter_guest(v);
		}
		/* The host refused (-EFAULT, -ENOMEM, -ESRCH, -EIO): the access
		 * did not happen; go back to the guest with the error. */
		int err = vcpu_enter_guest(v);

		return err ? err : r;
enter:
		vcpu_test_hook(kv, VCPU_HOOK_BEFORE_ENTER);
		if (kvm_vcpu_enter_guest_mode(kv))
			continue;
		/* In guest mode, requests checked, translation cached. */
		vcpu_test_hook(kv, VCPU_HOOK_IN_GUEST);
		if (vcpu_access_in_guest(v, gva, write, val))
			return 0;
		kvm_vcpu_exit_guest_mode(kv); /* RSEQ: a request or an abort; again */
	}
}

int vcpu_create(struct kvm *kvm, int id, struct vcpu **out)
{
	struct vcpu *v;
	int err;

	if (!kvm || !out)
		return -EINVAL;
	v = aligned_alloc(64, (sizeof(*v) + 63) & ~(size_t)63);
	if (!v)
		return -ENOMEM;
	memset(v, 0, sizeof(*v));
	err = kvm_vcpu_init(&v->kvm_vcpu, kvm, id);
	if (err) {
		free(v);
		return err;
	}
	memset(v->stlb, 0xff, sizeof(v->stlb));
	memset(v->stlb_nlog, 0, sizeof(v->stlb_nlog));
	v->stlb_cur = v->stlb[0];
	v->rseq = kvm_kick_mode(kvm) == KVM_KICK_RSEQ;
	*out = v;
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	BUG_ON(v->running);
	kvm_vcpu_uninit(&v->kvm_vcpu);
	free(v);
}

void vcpu_set_mmio(struct vcpu *v, vcpu_mmio_fn fn, void *arg)
{
	v->mmio_fn = fn;
	v->mmio_arg = arg;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;

	rcu_register_current_thread();
	if (vcpu_enter_guest(v)) {
		v->guest_ret = -EINTR;
		return NULL;
	}
	v->guest_ret = v->guest_fn(v, v->guest_arg);
	if (atomic_load_explicit(&v->kvm_vcpu.mode, memory_order_relaxed) != OUTSIDE_GUEST_MODE)
		kvm_vcpu_exit_guest_mode(&v->kvm_vcpu);
	return NULL;
}

int vcpu_run(struct vcpu *v, vcpu_guest_fn fn, void *arg)
{
	if (!v || !fn || v->running)
		return -EINVAL;
	v->guest_fn = fn;
	v->guest_arg = arg;
	atomic_fetch_and(&v->kvm_vcpu.requests, ~(1UL << KVM_REQ_STOP));
	if (pthread_create(&v->thread, NULL, vcpu_thread, v))
		return -EAGAIN;
	v->running = true;
	return 0;
}

void vcpu_request_stop(struct vcpu *v)
{
	kvm_make_request_and_kick(KVM_REQ_STOP, &v->kvm_vcpu);
	if (v->wake)
		v->wake(v);
}

int vcpu_stop(struct vcpu *v)
{
	if (!v->running)
		return -EINVAL;
	vcpu_request_stop(v);
	pthread_join(v->thread, NULL);
	v->running = false;
	return v->guest_ret;
}

void vcpu_get_stats(struct vcpu *v, struct vcpu_stats *st)
{
	*st = v->stat; /* read after the thread stopped, or approximately */
	st->guest_exits = v->kvm_vcpu.guest_exits;
}
