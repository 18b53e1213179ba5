/* SPDX-License-Identifier: MIT */
/*
 * vcpu.c - vCPU threads: guest mode, requests, kicks, and the slow path of
 * a guest access.
 *
 * A vCPU is IN_GUEST_MODE while its thread runs guest code, and
 * OUTSIDE_GUEST_MODE while it handles a soft-TLB miss, a fault, an MMIO
 * exit or a request. Only in guest mode does it touch guest memory through
 * its soft TLB.
 *
 * Requests (kvm_make_all_cpus_request) and guest entry form a Dekker pair:
 *
 *   requester                            vCPU entering guest mode
 *   ---------------------------------    ---------------------------------
 *   requests |= bit        (seq_cst)     mode = IN_GUEST_MODE  (seq_cst)
 *   snap = exit_epoch; m = mode          if (requests) exit and handle
 *   if m != OUTSIDE and wait:            ... guest code: every access
 *     sleep until exit_epoch != snap         checks requests; a set bit
 *                                            exits guest mode (epoch++)
 * Either the vCPU sees the bit before it enters, or the requester sees it in
 * guest mode and waits for its next exit; every exit handles requests before
 * the next entry. So when a waiting request returns, no vCPU can still use a
 * translation the request flushed.
 *
 * Two cores, more vCPUs than that: a requester never spins. It sleeps on a
 * futex on exit_epoch; a vCPU that exits wakes sleepers (it checks a waiter
 * count, so exits with nobody waiting cost no syscall). A running vCPU sees
 * the request at its next guest access, so the wait is one access long; a
 * vCPU preempted in guest mode delays the wait until it runs again (the
 * requester's sleep gives it the core).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "kvm/kvm_host.h"
#include "vcpu_int.h"
#include "base/rcu.h"

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val)
{
	return syscall(SYS_futex, (uint32_t *)uaddr, op, val, NULL, NULL, 0);
}

void stlb_flush(struct kvm_vcpu *v)
{
	memset(v->stlb, 0xff, sizeof(v->stlb));
	v->stat.stlb_flushes++;
}

static void vcpu_exit_guest(struct kvm_vcpu *v)
{
	/* Release: the guest accesses made so far happen before anything a
	 * requester does after seeing this exit. */
	atomic_store_explicit(&v->mode, OUTSIDE_GUEST_MODE, memory_order_release);
	atomic_fetch_add_explicit(&v->exit_epoch, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&v->waiters, memory_order_seq_cst))
		futex(&v->exit_epoch, FUTEX_WAKE_PRIVATE, INT_MAX);
	v->stat.guest_exits++;
}

/* Handle pending requests; called outside guest mode. Returns -EINTR if
 * the vCPU must stop. */
static int vcpu_handle_requests(struct kvm_vcpu *v)
{
	unsigned long req = atomic_exchange_explicit(&v->requests, 0,
						     memory_order_acq_rel);

	if (req & (1UL << KVM_REQ_TLB_FLUSH))
		stlb_flush(v);
	if (req & (1UL << KVM_REQ_STOP)) {
		/* Keep it set: every later entry refuses too. */
		atomic_fetch_or(&v->requests, 1UL << KVM_REQ_STOP);
		return -EINTR;
	}
	return 0;
}

/* Enter guest mode; returns -EAGAIN (and stays outside) if a request
 * arrived, which the caller handles before trying again. */
static int vcpu_enter_guest(struct kvm_vcpu *v)
{
	atomic_store_explicit(&v->mode, IN_GUEST_MODE, memory_order_seq_cst);
	if (atomic_load_explicit(&v->requests, memory_order_seq_cst)) {
		vcpu_exit_guest(v);
		return -EAGAIN;
	}
	return 0;
}

bool vcpu_should_stop(struct kvm_vcpu *v)
{
	return atomic_load_explicit(&v->requests, memory_order_relaxed) &
	       (1UL << KVM_REQ_STOP);
}

/*
 * Called in guest mode; returns in guest mode, or -EINTR outside it.
 * Also called by a guest that goes on after a failed access (which returns
 * outside guest mode, e.g. -EFAULT from a read-only host mapping): it
 * re-enters guest mode here. Without that, the guest's next soft-TLB hit
 * would run outside guest mode, where a flush request does not wait for it.
 */
int vcpu_check_requests(struct kvm_vcpu *v)
{
	bool outside = atomic_load_explicit(&v->mode, memory_order_relaxed) ==
		       OUTSIDE_GUEST_MODE;

	if (!outside && !atomic_load_explicit(&v->requests, memory_order_relaxed))
		return 0;
	if (!outside)
		vcpu_exit_guest(v);
	for (;;) {
		int r = vcpu_handle_requests(v);

		if (r)
			return r;
		if (vcpu_enter_guest(v) == 0)
			return 0;
	}
}

static void stlb_fill(struct kvm_vcpu *v, gva_t gva, void *host, bool writable)
{
	struct stlb_entry *e = stlb_entry(v, gva);
	uint64_t page = gva & ~(uint64_t)(PAGE_SIZE - 1);

	e->addr_read = page;
	e->addr_write = writable ? page : STLB_INVALID;
	e->addend = (uintptr_t)host - (uintptr_t)page;
	v->stat.stlb_fills++;
}

/*
 * A guest access that missed the soft TLB (or saw a request). Called in
 * guest mode; leaves it, resolves the translation, re-enters, and performs
 * the access. Returns 0, or a negative errno with the vCPU outside guest
 * mode: -EINVAL unaligned, -EINTR stop requested, -ENOMEM / -ESRCH / -EFAULT
 * from the host.
 */
int vcpu_access_slow(struct kvm_vcpu *v, gva_t gva, bool write, uint64_t *val)
{
	struct kvm *kvm = v->kvm;
	int r;

	if (gva & 7)
		return -EINVAL;
	v->stat.accesses_slow++;
	vcpu_exit_guest(v);
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
			stlb_fill(v, gva, host, write);
			goto enter;
		}
		r = kvm_mmu_page_fault(v, gva, write);
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
				v->mmio_fn(v, gva, write, val, v->mmio_arg);
			else if (!write)
				*val = ~0ULL;
			while (vcpu_enter_guest(v)) {
				r = vcpu_handle_requests(v);
				if (r)
					return r;
			}
			return 0;
		}
		return r;
enter:
		vcpu_test_hook(v, VCPU_HOOK_BEFORE_ENTER);
		if (vcpu_enter_guest(v))
			continue;
		break;
	}
	/* In guest mode, requests checked, translation in the soft TLB. */
	vcpu_test_hook(v, VCPU_HOOK_IN_GUEST);
	struct stlb_entry *e = stlb_entry(v, gva);
	uint64_t *p = (uint64_t *)(e->addend + gva);

	if (write)
		__atomic_store_n(p, *val, __ATOMIC_RELAXED);
	else
		*val = __atomic_load_n(p, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Set req on every vCPU and, with wait, sleep until each vCPU that was in
 * guest mode has left it once (see the header comment). Requests do not
 * wake a vCPU that is not running guest code: it sees them at its next
 * entry.
 */
void kvm_make_all_cpus_request(struct kvm *kvm, unsigned int req, bool wait)
{
	uint32_t snap[KVM_MAX_VCPUS];
	bool need[KVM_MAX_VCPUS] = { 0 };
	int n;

	mutex_lock(&kvm->lock);
	n = atomic_load(&kvm->nr_vcpus);
	for (int i = 0; i < n; i++) {
		struct kvm_vcpu *v = kvm->vcpus[i];

		atomic_fetch_or_explicit(&v->requests, 1UL << req, memory_order_seq_cst);
		snap[i] = atomic_load_explicit(&v->exit_epoch, memory_order_seq_cst);
		int mode = IN_GUEST_MODE;
		/* The kick: a running vCPU notices the bit at its next access;
		 * EXITING tells it (and us) that it is on its way out. */
		if (!atomic_compare_exchange_strong(&v->mode, &mode, EXITING_GUEST_MODE) &&
		    mode == OUTSIDE_GUEST_MODE)
			continue;
		need[i] = wait;
	}
	for (int i = 0; i < n; i++) {
		struct kvm_vcpu *v = kvm->vcpus[i];

		if (!need[i])
			continue;
		atomic_fetch_add_explicit(&v->waiters, 1, memory_order_seq_cst);
		while (atomic_load_explicit(&v->exit_epoch, memory_order_acquire) == snap[i])
			futex(&v->exit_epoch, FUTEX_WAIT_PRIVATE, snap[i]);
		atomic_fetch_sub_explicit(&v->waiters, 1, memory_order_relaxed);
	}
	mutex_unlock(&kvm->lock);
}

int kvm_vcpu_create(struct kvm *kvm, int id, struct kvm_vcpu **out)
{
	struct kvm_vcpu *v;

	if (!kvm || !out || id < 0 || id >= KVM_MAX_VCPUS)
		return -EINVAL;
	v = aligned_alloc(64, (sizeof(*v) + 63) & ~(size_t)63);
	if (!v)
		return -ENOMEM;
	memset(v, 0, sizeof(*v));
	memset(v->stlb, 0xff, sizeof(v->stlb));
	v->kvm = kvm;
	v->vcpu_id = id;
	atomic_init(&v->mode, OUTSIDE_GUEST_MODE);
	mutex_lock(&kvm->lock);
	int n = atomic_load(&kvm->nr_vcpus);
	for (int i = 0; i < n; i++) {
		if (kvm->vcpus[i]->vcpu_id == id) {
			mutex_unlock(&kvm->lock);
			free(v);
			return -EEXIST;
		}
	}
	kvm->vcpus[n] = v;
	atomic_store(&kvm->nr_vcpus, n + 1);
	mutex_unlock(&kvm->lock);
	*out = v;
	return 0;
}

void kvm_vcpu_destroy(struct kvm_vcpu *v)
{
	struct kvm *kvm = v->kvm;

	BUG_ON(v->running);
	mutex_lock(&kvm->lock);
	int n = atomic_load(&kvm->nr_vcpus);
	for (int i = 0; i < n; i++) {
		if (kvm->vcpus[i] == v) {
			kvm->vcpus[i] = kvm->vcpus[n - 1];
			kvm->vcpus[n - 1] = NULL;
			atomic_store(&kvm->nr_vcpus, n - 1);
			break;
		}
	}
	mutex_unlock(&kvm->lock);
	free(v);
}

void kvm_vcpu_set_mmio(struct kvm_vcpu *v, vcpu_mmio_fn fn, void *arg)
{
	v->mmio_fn = fn;
	v->mmio_arg = arg;
}

void kvm_vcpu_set_hook(struct kvm_vcpu *v, vcpu_hook_fn fn, void *arg)
{
	v->hook_arg = arg;
	atomic_store_explicit(&v->hook, fn, memory_order_release);
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *v = arg;

	rcu_register_current_thread();
	while (vcpu_enter_guest(v)) {
		if (vcpu_handle_requests(v)) {
			v->guest_ret = -EINTR;
			return NULL;
		}
	}
	v->guest_ret = v->guest_fn(v, v->guest_arg);
	if (atomic_load_explicit(&v->mode, memory_order_relaxed) != OUTSIDE_GUEST_MODE)
		vcpu_exit_guest(v);
	return NULL;
}

int kvm_vcpu_run(struct kvm_vcpu *v, vcpu_guest_fn fn, void *arg)
{
	if (!v || !fn || v->running)
		return -EINVAL;
	v->guest_fn = fn;
	v->guest_arg = arg;
	atomic_fetch_and(&v->requests, ~(1UL << KVM_REQ_STOP));
	if (pthread_create(&v->thread, NULL, vcpu_thread, v))
		return -EAGAIN;
	v->running = true;
	return 0;
}

int kvm_vcpu_stop(struct kvm_vcpu *v)
{
	if (!v->running)
		return -EINVAL;
	atomic_fetch_or_explicit(&v->requests, 1UL << KVM_REQ_STOP, memory_order_seq_cst);
	pthread_join(v->thread, NULL);
	v->running = false;
	return v->guest_ret;
}

void kvm_vcpu_get_stats(struct kvm_vcpu *v, struct vcpu_stats *st)
{
	*st = v->stat; /* read after the thread stopped, or approximately */
}
