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
 * requester's sleep gives it the core) -- up to a scheduler tick.
 *
 * Hence the RSEQ kick mode (vcpu_rseq.h): every access to guest memory in
 * guest mode is an rseq critical section, which the kernel aborts when the
 * thread is preempted, and the requester replaces the wait by one
 * membarrier(EXPEDITED_RSEQ) that aborts the running ones. Modes, requests
 * and exits work as above; only the wait changes.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
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
 * Called in guest mode; returns in guest mode, or -EINTR outside it. (It
 * also re-enters guest mode if called outside it, e.g. after -EINTR was
 * handled by a guest that means to go on.)
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

/* Re-enter guest mode after an exit, handling what arrives meanwhile.
 * Returns 0 in guest mode, or -EINTR outside it. */
static int vcpu_reenter_guest(struct kvm_vcpu *v)
{
	while (vcpu_enter_guest(v)) {
		int r = vcpu_handle_requests(v);

		if (r)
			return r;
	}
	return 0;
}

/* The access itself, in guest mode with the translation in the soft TLB.
 * Returns false if it must be retried from the slow path (RSEQ: a request
 * arrived or the section was aborted). */
static bool vcpu_access_in_guest(struct kvm_vcpu *v, gva_t gva, bool write,
				 uint64_t *val)
{
	struct stlb_entry *e = stlb_entry(v, gva);

#ifdef VCPU_HAVE_RSEQ
	if (v->rseq)
		return write ? stlb_rseq_store64(&v->requests, e, gva, *val)
			     : stlb_rseq_load64(&v->requests, e, gva, val);
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
 * -ESRCH / -EFAULT from the host (the access did not happen), or -EINTR
 * (stop requested). Every return but -EINTR is in guest mode, so a guest
 * that goes on after an error is still covered by the flush protocol.
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
			return vcpu_reenter_guest(v);
		}
		/* The host refused (-EFAULT, -ENOMEM, -ESRCH): the access did
		 * not happen; go back to the guest with the error. */
		int err = vcpu_reenter_guest(v);

		return err ? err : r;
enter:
		vcpu_test_hook(v, VCPU_HOOK_BEFORE_ENTER);
		if (vcpu_enter_guest(v))
			continue;
		/* In guest mode, requests checked, translation cached. */
		vcpu_test_hook(v, VCPU_HOOK_IN_GUEST);
		if (vcpu_access_in_guest(v, gva, write, val))
			return 0;
		vcpu_exit_guest(v); /* RSEQ: a request or an abort; again */
	}
}

#ifdef VCPU_HAVE_RSEQ
static int membarrier(int cmd)
{
	return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

static pthread_once_t rseq_once = PTHREAD_ONCE_INIT;
static bool rseq_ok;

static void rseq_probe(void)
{
	/* glibc registers an rseq area per thread unless told not to
	 * (glibc.pthread.rseq=0); the kernel must allow expedited RSEQ
	 * membarriers for this process. */
	rseq_ok = __rseq_size > 0 &&
		  membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ) == 0;
}
#endif

/* Whether the RSEQ kick mode can run here (registers it on first use). */
bool vcpu_rseq_available(void)
{
#ifdef VCPU_HAVE_RSEQ
	pthread_once(&rseq_once, rseq_probe);
	return rseq_ok;
#else
	return false;
#endif
}

/*
 * Set req on every vCPU, kick those in guest mode, and synchronize with
 * them as sync says. Requests do not wake a vCPU that is not running guest
 * code: it sees them at its next entry. Called with kvm->lock held.
 *  REQ_SYNC_NONE   set and kick only (aging, --break=flush-wait);
 *  REQ_SYNC_NOWAIT RSEQ: membarrier; WAIT: no sleep, but each vCPU seen in
 *                  guest mode is marked flush_pending with its exit_epoch
 *                  (kvm_flush_pending_vcpus tells when it has left); for
 *                  the OOM reaper's non-blockable invalidation;
 *  REQ_SYNC_WAIT   RSEQ: membarrier; WAIT: sleep until each vCPU that was
 *                  in guest mode has left it once (the header comment),
 *                  which also settles every flush_pending.
 * Returns the number of vCPUs seen in guest mode (IN or EXITING).
 */
enum req_sync { REQ_SYNC_NONE, REQ_SYNC_NOWAIT, REQ_SYNC_WAIT };

static int make_all_cpus_request_locked(struct kvm *kvm, unsigned int req,
					enum req_sync sync)
{
	uint32_t snap[KVM_MAX_VCPUS];
	bool in_guest[KVM_MAX_VCPUS] = { 0 };
	int n, nr_in_guest = 0;

	lockdep_assert_held(&kvm->lock);
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
		in_guest[i] = true;
		nr_in_guest++;
	}
	/* A vCPU seen outside will check this request before it next enters:
	 * any flush still pending on it is settled by this one. */
	if (sync != REQ_SYNC_NONE && kvm->kick == KVM_KICK_WAIT) {
		for (int i = 0; i < n; i++) {
			kvm->vcpus[i]->flush_pending = in_guest[i] && sync == REQ_SYNC_NOWAIT;
			kvm->vcpus[i]->flush_snap = snap[i];
		}
	}
	if (sync == REQ_SYNC_NONE || !nr_in_guest)
		return nr_in_guest;
#ifdef VCPU_HAVE_RSEQ
	if (kvm->kick == KVM_KICK_RSEQ) {
		/* Instead of waiting: abort every section still running with
		 * an old translation (vcpu_rseq.h). Needed only if a vCPU was
		 * seen in guest mode: one seen outside will check the request
		 * (set above, seq_cst) when it enters. membarrier waits for
		 * the IPIs it sends, never for a vCPU thread to be scheduled,
		 * so the non-blockable flavour calls it too. */
		BUG_ON(membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ));
		return nr_in_guest;
	}
#endif
	if (sync != REQ_SYNC_WAIT)
		return nr_in_guest;
	for (int i = 0; i < n; i++) {
		struct kvm_vcpu *v = kvm->vcpus[i];

		if (!in_guest[i])
			continue;
		atomic_fetch_add_explicit(&v->waiters, 1, memory_order_seq_cst);
		while (atomic_load_explicit(&v->exit_epoch, memory_order_acquire) == snap[i])
			futex(&v->exit_epoch, FUTEX_WAIT_PRIVATE, snap[i]);
		atomic_fetch_sub_explicit(&v->waiters, 1, memory_order_relaxed);
	}
	return nr_in_guest;
}

/* With wait: RSEQ membarrier or WAIT sleep; without: set and kick only. */
int kvm_make_all_cpus_request(struct kvm *kvm, unsigned int req, bool wait)
{
	int nr_in_guest;

	mutex_lock(&kvm->lock);
	nr_in_guest = make_all_cpus_request_locked(kvm, req,
						   wait ? REQ_SYNC_WAIT : REQ_SYNC_NONE);
	mutex_unlock(&kvm->lock);
	return nr_in_guest;
}

int kvm_make_all_cpus_request_nowait(struct kvm *kvm, unsigned int req, bool sync)
{
	return make_all_cpus_request_locked(kvm, req,
					    sync ? REQ_SYNC_NOWAIT : REQ_SYNC_NONE);
}

int kvm_flush_pending_vcpus(struct kvm *kvm)
{
	int n = atomic_load(&kvm->nr_vcpus), nr = 0;

	lockdep_assert_held(&kvm->lock);
	for (int i = 0; i < n; i++) {
		struct kvm_vcpu *v = kvm->vcpus[i];

		if (!v->flush_pending)
			continue;
		/* Acquire: pairs with the exit's epoch bump, as the wait's. */
		if (atomic_load_explicit(&v->exit_epoch, memory_order_acquire) !=
		    v->flush_snap)
			v->flush_pending = false;
		else
			nr++;
	}
	return nr;
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
	v->stlb_cur = v->stlb[0];
	v->rseq = kvm->kick == KVM_KICK_RSEQ;
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

void kvm_vcpu_request_stop(struct kvm_vcpu *v)
{
	atomic_fetch_or_explicit(&v->requests, 1UL << KVM_REQ_STOP, memory_order_seq_cst);
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
