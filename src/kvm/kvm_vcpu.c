/* SPDX-License-Identifier: MIT */
/*
 * kvm_vcpu.c - the vCPU object: registration with its VM, guest mode,
 * requests, kicks and the waits that make a remote TLB flush safe. What a
 * vCPU executes, and how it handles a request, is its execution engine's
 * business (src/cpu); this file is the half both sides share, as KVM's
 * kvm_main.c owns kvm_make_all_cpus_request and the arch run loop handles.
 *
 * A vCPU is IN_GUEST_MODE while its thread runs guest code, and
 * OUTSIDE_GUEST_MODE while it handles a soft-TLB miss, a fault, an MMIO
 * exit or a request. Only in guest mode does it touch guest memory through
 * its soft TLB, and every such access checks the request word first.
 *
 * Requests and guest entry form a Dekker pair:
 *
 *   requester                            vCPU entering guest mode
 *   ---------------------------------    ---------------------------------
 *   requests |= bit        (seq_cst)     mode = IN_GUEST_MODE  (seq_cst)
 *   snap = exit_epoch; m = mode          if (requests) exit and handle
 *   if m != OUTSIDE and wait:            ... guest code: every access
 *     sleep while exit_epoch == snap         checks requests; a set bit
 *       and the bit is still set             exits guest mode (epoch++),
 *                                            then consumes the bit
 *
 * Either the vCPU sees the bit before it enters, or the requester sees it in
 * guest mode and waits for its next exit; every exit handles requests before
 * the next entry. So when a waiting request returns, no vCPU can still use a
 * translation the request flushed.
 *
 * Why "and the bit is still set": the vCPU may see the bit between the
 * requester's two steps, exit, consume it and enter again before the
 * requester reads exit_epoch:
 *
 *   requester                            vCPU in guest mode
 *   ---------------------------------    ---------------------------------
 *   requests |= bit
 *                                        access sees the bit: exit (epoch
 *                                        E -> E+1), flush, consume, enter
 *   snap = E+1; mode IN -> EXITING
 *   sleep until exit_epoch != E+1        requests == 0: no reason to exit
 *
 * The vCPU has done what was asked, and nothing will make it exit: waiting
 * for the epoch alone would sleep forever. A consumed bit means the vCPU
 * left guest mode after it was set (bits are consumed only outside guest
 * mode, after an exit), so the wait is over. A bit set again by another
 * requester still ends in an exit, since every access checks it.
 *
 * Two cores, more vCPUs than that: a requester never spins. It sleeps on a
 * futex on exit_epoch; a vCPU that exits wakes sleepers (it checks a waiter
 * count, so exits with nobody waiting cost no syscall). A running vCPU sees
 * the request at its next guest access, so the wait is one access long; a
 * vCPU preempted in guest mode delays the wait until it runs again (the
 * requester's sleep gives it the core) -- up to a scheduler tick.
 *
 * Hence the RSEQ kick mode (cpu_rseq.h): every access to guest memory in
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
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "kvm_host.h"

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val)
{
	return syscall(SYS_futex, (uint32_t *)uaddr, op, val, NULL, NULL, 0);
}

static void runstate_enter(struct kvm_vcpu *v);
static void runstate_exit(struct kvm_vcpu *v);

void kvm_vcpu_exit_guest_mode(struct kvm_vcpu *v)
{
	if (v->runstate.hva)
		runstate_exit(v);
	/* Release: the guest accesses made so far happen before anything a
	 * requester does after seeing this exit. */
	atomic_store_explicit(&v->mode, OUTSIDE_GUEST_MODE, memory_order_release);
	atomic_fetch_add_explicit(&v->exit_epoch, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&v->waiters, memory_order_seq_cst))
		futex(&v->exit_epoch, FUTEX_WAKE_PRIVATE, INT_MAX);
	v->guest_exits++;
}

int kvm_vcpu_enter_guest_mode(struct kvm_vcpu *v)
{
	atomic_store_explicit(&v->mode, IN_GUEST_MODE, memory_order_seq_cst);
	if (atomic_load_explicit(&v->requests, memory_order_seq_cst)) {
		kvm_vcpu_exit_guest_mode(v);
		return -EAGAIN;
	}
	/* In guest mode with no request pending: an invalidation of the
	 * run-state page now waits for this vCPU to leave guest mode, or
	 * set its request before we looked (and we would have exited). */
	if (v->runstate.hva)
		runstate_enter(v);
	return 0;
}

#ifdef TANDEM_HAVE_RSEQ
#include <sys/rseq.h>

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

bool kvm_rseq_available(void)
{
#ifdef TANDEM_HAVE_RSEQ
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

/* Acquire: a consumed bit means the vCPU exited and handled it; what it
 * did before consuming happens before what the requester does next. */
static bool request_pending(struct kvm_vcpu *v, unsigned int req)
{
	return atomic_load_explicit(&v->requests, memory_order_acquire) & (1UL << req);
}

/* Sleep until v, seen in guest mode at exit_epoch snap, has left it (or
 * consumed req: the header comment's lost wake-up). */
static void wait_for_exit(struct kvm_vcpu *v, unsigned int req, uint32_t snap)
{
	atomic_fetch_add_explicit(&v->waiters, 1, memory_order_seq_cst);
	while (atomic_load_explicit(&v->exit_epoch, memory_order_acquire) == snap &&
	       request_pending(v, req))
		futex(&v->exit_epoch, FUTEX_WAIT_PRIVATE, snap);
	atomic_fetch_sub_explicit(&v->waiters, 1, memory_order_relaxed);
}

/* Set req on v and kick it: true if it was in guest mode (IN or EXITING),
 * with *snap its exit epoch then. */
static bool request_and_kick(struct kvm *kvm, struct kvm_vcpu *v, unsigned int req,
			     uint32_t *snap)
{
	int mode = IN_GUEST_MODE;

	atomic_fetch_or_explicit(&v->requests, 1UL << req, memory_order_seq_cst);
	kvm_test_hook(kvm, KVM_HOOK_REQUEST_SET, v);
	*snap = atomic_load_explicit(&v->exit_epoch, memory_order_seq_cst);
	/* The kick: a running vCPU notices the bit at its next access;
	 * EXITING tells it (and us) that it is on its way out. */
	return atomic_compare_exchange_strong(&v->mode, &mode, EXITING_GUEST_MODE) ||
	       mode != OUTSIDE_GUEST_MODE;
}

/* request_and_kick on each vCPU whose id is in ids (called with kvm->lock
 * held, so the vCPUs stay): in_guest[i] and snap[i] by index; returns how
 * many were in guest mode and *n the vCPUs looked at. */
static int request_and_kick_mask(struct kvm *kvm, unsigned int req, uint64_t ids, int *n,
				 uint32_t *snap, bool *in_guest)
{
	int nr_in_guest = 0;

	lockdep_assert_held(&kvm->lock);
	*n = atomic_load(&kvm->nr_vcpus);
	for (int i = 0; i < *n; i++) {
		struct kvm_vcpu *v = kvm->vcpus[i];

		if (!(ids & (1ULL << v->vcpu_id)))
			continue;
		if (req == KVM_REQ_GPC_INVALIDATE)
			kvm_stat_inc(kvm, gpc_requests);
		in_guest[i] = request_and_kick(kvm, v, req, &snap[i]);
		nr_in_guest += in_guest[i];
	}
	return nr_in_guest;
}

int kvm_make_vcpus_request_mask(struct kvm *kvm, unsigned int req, uint64_t ids, bool wait)
{
	uint32_t snap[KVM_MAX_VCPUS];
	bool in_guest[KVM_MAX_VCPUS] = { 0 };
	int n, nr_in_guest = request_and_kick_mask(kvm, req, ids, &n, snap, in_guest);

	for (int i = 0; wait && i < n; i++)
		if (in_guest[i])
			wait_for_exit(kvm->vcpus[i], req, snap[i]);
	return nr_in_guest;
}

static int make_all_cpus_request_locked(struct kvm *kvm, unsigned int req,
					enum req_sync sync)
{
	uint32_t snap[KVM_MAX_VCPUS];
	bool in_guest[KVM_MAX_VCPUS] = { 0 };
	int n, nr_in_guest = request_and_kick_mask(kvm, req, ~0ULL, &n, snap, in_guest);

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
#ifdef TANDEM_HAVE_RSEQ
	if (kvm->kick == KVM_KICK_RSEQ) {
		/* Instead of waiting: abort every section still running with
		 * an old translation (cpu_rseq.h). Needed only if a vCPU was
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
	for (int i = 0; i < n; i++)
		if (in_guest[i])
			wait_for_exit(kvm->vcpus[i], req, snap[i]);
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
		/* Acquire: pairs with the exit's epoch bump, as the wait's. A
		 * consumed flush also settles it (the lost wake-up above). */
		if (atomic_load_explicit(&v->exit_epoch, memory_order_acquire) !=
		    v->flush_snap || !request_pending(v, KVM_REQ_TLB_FLUSH))
			v->flush_pending = false;
		else
			nr++;
	}
	return nr;
}

void kvm_make_request_and_kick(int req, struct kvm_vcpu *v)
{
	int mode = IN_GUEST_MODE;

	atomic_fetch_or_explicit(&v->requests, 1UL << req, memory_order_seq_cst);
	atomic_compare_exchange_strong(&v->mode, &mode, EXITING_GUEST_MODE);
}

int kvm_vcpu_init(struct kvm_vcpu *v, struct kvm *kvm, int id)
{
	int n, err = 0;

	if (!v || !kvm || id < 0 || id >= KVM_MAX_VCPUS)
		return -EINVAL;
	memset(v, 0, sizeof(*v));
	v->kvm = kvm;
	v->vcpu_id = id;
	atomic_init(&v->mode, OUTSIDE_GUEST_MODE);
	kvm_gpc_init_for_vcpu(&v->runstate.gpc, v, KVM_GUEST_USES_PFN);
	mutex_lock(&kvm->lock);
	n = atomic_load(&kvm->nr_vcpus);
	for (int i = 0; i < n; i++)
		if (kvm->vcpus[i]->vcpu_id == id)
			err = -EEXIST;
	if (!err && n == KVM_MAX_VCPUS)
		err = -ENOSPC;
	if (!err) {
		kvm->vcpus[n] = v;
		atomic_store(&kvm->nr_vcpus, n + 1);
	}
	mutex_unlock(&kvm->lock);
	if (err)
		kvm_gpc_destroy(&v->runstate.gpc);
	return err;
}

void kvm_vcpu_uninit(struct kvm_vcpu *v)
{
	struct kvm *kvm = v->kvm;
	int n;

	BUG_ON(atomic_load(&v->mode) != OUTSIDE_GUEST_MODE);
	/* Off the cache list first: an invalidation then finds no cache
	 * naming this vCPU (it looks vCPUs up by id under kvm->lock). */
	kvm_vcpu_runstate_deactivate(v);
	kvm_gpc_destroy(&v->runstate.gpc);
	mutex_lock(&kvm->lock);
	n = atomic_load(&kvm->nr_vcpus);
	for (int i = 0; i < n; i++) {
		if (kvm->vcpus[i] == v) {
			kvm->vcpus[i] = kvm->vcpus[n - 1];
			kvm->vcpus[n - 1] = NULL;
			atomic_store(&kvm->nr_vcpus, n - 1);
			break;
		}
	}
	mutex_unlock(&kvm->lock);
}

void kvm_set_test_hook(struct kvm *kvm, kvm_hook_fn fn, void *arg)
{
	kvm->test_hook_arg = arg;
	atomic_store_explicit(&kvm->test_hook, fn, memory_order_release);
}

void kvm_vcpu_set_hook(struct kvm_vcpu *v, vcpu_hook_fn fn, void *arg)
{
	v->hook_arg = arg;
	atomic_store_explicit(&v->hook, fn, memory_order_release);
}

/*
 * ---- The run-state area (kvm.h, struct kvm_runstate) ----
 *
 * The vCPU thread accounts wall time at each entry and exit and, at each
 * entry, writes the area through rs->hva with no lock: rs->hva is the
 * cache's host address as of the vCPU's last refresh, and only its own
 * handling of KVM_REQ_GPC_INVALIDATE (outside guest mode) changes it. An
 * invalidation of the page marks the cache invalid, sends that request
 * and waits for the vCPU to leave guest mode (pfncache.c), so a write
 * through rs->hva always lands in the frame the guest sees.
 *
 * Times come from clock_fast_ns (the TSC where it is constant: two reads
 * per entry and exit pair, ~25 ns less than clock_gettime's two).
 *
 * Steal time is the thread's schedstat run_delay (time runnable on a
 * runqueue but not running), read at most once a millisecond from
 * /proc/thread-self/schedstat, opened by the vCPU's thread itself (a new
 * thread -- vcpu_run again -- is noticed by a failed read and reopened).
 */
#include <fcntl.h>
#include <stdio.h>
#include "base/clock.h"

#define RUNSTATE_SIZE        64
#define RUNSTATE_STEAL_EVERY NSEC_PER_MSEC
#define RUNSTATE_RETRY_AFTER NSEC_PER_MSEC

_Static_assert(sizeof(struct kvm_runstate_info) == RUNSTATE_SIZE, "runstate ABI");
_Static_assert(sizeof(struct sbi_sta_struct) == RUNSTATE_SIZE, "SBI STA ABI");

#define rs_add(rs, f, d) __atomic_store_n(&(rs)->f, (rs)->f + (d), __ATOMIC_RELAXED)

/* schedstat's run_delay (ns), or false if it cannot be read. */
static bool read_run_delay(struct kvm_runstate *rs, uint64_t *out)
{
	char buf[96];
	unsigned long long delay;
	ssize_t n;

	for (int tries = 0; tries < 2; tries++) {
		if (rs->schedstat_fd <= 0) {
			rs->schedstat_fd = open("/proc/thread-self/schedstat",
						O_RDONLY | O_CLOEXEC);
			if (rs->schedstat_fd < 0) {
				rs->schedstat_fd = -1;
				return false;
			}
			rs->run_delay_last = UINT64_MAX;    /* a new thread: no delta */
		}
		n = pread(rs->schedstat_fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			if (sscanf(buf, "%*s %llu", &delay) == 1) {
				*out = delay;
				return true;
			}
		}
		close(rs->schedstat_fd);
		rs->schedstat_fd = 0;
	}
	rs->schedstat_fd = -1;
	return false;
}

static void runstate_sample_steal(struct kvm_runstate *rs, uint64_t now)
{
	uint64_t delay;

	rs->steal_sample_at = now + RUNSTATE_STEAL_EVERY;
	if (rs->schedstat_fd < 0 || !read_run_delay(rs, &delay))
		return;
	if (rs->run_delay_last != UINT64_MAX && delay > rs->run_delay_last)
		rs_add(rs, time_runnable, delay - rs->run_delay_last);
	rs->run_delay_last = delay;
}

/* Write the area through rs->hva (vCPU thread, in guest mode or not
 * running). The seqcount: odd, release fence, the fields, even (release). */
static void runstate_write(struct kvm_runstate *rs)
{
	if (rs->fmt == KVM_RUNSTATE_TANDEM) {
		struct kvm_runstate_info *ri = rs->hva;

		__atomic_store_n(&ri->version, rs->version + 1, __ATOMIC_RELAXED);
		atomic_thread_fence(memory_order_release);
		__atomic_store_n(&ri->entries, rs->entries, __ATOMIC_RELAXED);
		__atomic_store_n(&ri->time_in_guest, rs->time_in_guest, __ATOMIC_RELAXED);
		__atomic_store_n(&ri->time_outside, rs->time_outside, __ATOMIC_RELAXED);
		__atomic_store_n(&ri->time_runnable, rs->time_runnable, __ATOMIC_RELAXED);
		__atomic_store_n(&ri->state_entry_time, rs->t_last, __ATOMIC_RELAXED);
		__atomic_store_n(&ri->version, rs->version + 2, __ATOMIC_RELEASE);
	} else {
		struct sbi_sta_struct *st = rs->hva;
		uint32_t seq = (uint32_t)rs->version;

		/* Guests read sequence, steal, sequence (Linux's
		 * kvm_sbi_sta_steal_time): the same seqcount in 32 bits. */
		__atomic_store_n(&st->sequence, seq + 1, __ATOMIC_RELAXED);
		atomic_thread_fence(memory_order_release);
		__atomic_store_n(&st->steal, rs->time_runnable, __ATOMIC_RELAXED);
		__atomic_store_n(&st->preempted, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&st->sequence, seq + 2, __ATOMIC_RELEASE);
	}
	rs->version += 2;
	rs_add(rs, updates, 1);
}

/* The time since the last entry or exit, to be added to the state that
 * ends now; returns now. */
static uint64_t runstate_elapsed(struct kvm_runstate *rs, uint64_t *delta)
{
	uint64_t now = clock_fast_ns();

	*delta = now > rs->t_last ? now - rs->t_last : 0;
	rs->t_last = now;
	return now;
}

static void runstate_enter(struct kvm_vcpu *v)
{
	struct kvm_runstate *rs = &v->runstate;
	uint64_t d, now = runstate_elapsed(rs, &d);

	rs_add(rs, time_outside, d);
	rs_add(rs, entries, 1);
	if (now >= rs->steal_sample_at)
		runstate_sample_steal(rs, now);
	runstate_write(rs);
}

static void runstate_exit(struct kvm_vcpu *v)
{
	struct kvm_runstate *rs = &v->runstate;
	uint64_t d;

	runstate_elapsed(rs, &d);
	rs_add(rs, time_in_guest, d);
}

/* Outside guest mode: make rs->hva the cache's current address, refreshing
 * it if an invalidation took it. On failure rs->hva stays NULL (no writes)
 * and the next exit after RUNSTATE_RETRY_AFTER tries again. */
static int runstate_refresh(struct kvm_vcpu *v, uint64_t now)
{
	struct kvm_runstate *rs = &v->runstate;
	struct gfn_to_pfn_cache *gpc = &rs->gpc;
	int r;

	/* Let go of the old address (we are outside guest mode: our writes
	 * through it are done); release: an invalidation that sees this no
	 * longer needs to wait for us. */
	rs->hva = NULL;
	atomic_store_explicit(&gpc->guest_mapped, false, memory_order_release);
	kvm_gpc_read_lock(gpc);
	while (!kvm_gpc_check(gpc, RUNSTATE_SIZE)) {
		kvm_gpc_read_unlock(gpc);
		r = kvm_gpc_refresh(gpc, RUNSTATE_SIZE);
		if (r == -EIO) {
			rs->err = r;
			rs->retry_at = UINT64_MAX;
			return r;
		}
		if (r) {
			rs->retry_at = now + RUNSTATE_RETRY_AFTER;
			return 0;
		}
		kvm_gpc_read_lock(gpc);
	}
	/* Valid now; an invalidation from here on sets our request, which
	 * the next entry sees before it writes (kvm_vcpu_enter_guest_mode). */
	rs->hva = gpc->khva;
	atomic_store_explicit(&gpc->guest_mapped, true, memory_order_relaxed);
	kvm_gpc_read_unlock(gpc);
	return 0;
}

int kvm_vcpu_handle_gpc_invalidate(struct kvm_vcpu *v)
{
	struct kvm_runstate *rs = &v->runstate;
	bool req = kvm_check_request(KVM_REQ_GPC_INVALIDATE, v);
	uint64_t now;

	BUG_ON(atomic_load_explicit(&v->mode, memory_order_relaxed) != OUTSIDE_GUEST_MODE);
	if (!rs->fmt || rs->err || (!req && rs->hva))
		return 0;
	now = clock_fast_ns();
	if (!req && now < rs->retry_at)
		return 0;
	return runstate_refresh(v, now);
}

int kvm_vcpu_runstate_activate(struct kvm_vcpu *v, gpa_t gpa, enum kvm_runstate_fmt fmt)
{
	struct kvm_runstate *rs = &v->runstate;
	int r;

	if ((fmt != KVM_RUNSTATE_TANDEM && fmt != KVM_RUNSTATE_SBI_STA) ||
	    (gpa & (RUNSTATE_SIZE - 1)))
		return -EINVAL;
	BUG_ON(atomic_load_explicit(&v->mode, memory_order_relaxed) != OUTSIDE_GUEST_MODE);
	kvm_vcpu_runstate_deactivate(v);
	r = kvm_gpc_activate(&rs->gpc, gpa, RUNSTATE_SIZE);
	if (r) {
		kvm_gpc_deactivate(&rs->gpc);
		return r;
	}
	clock_fast_init();
	rs->fmt = fmt;
	rs->err = 0;
	rs->t_last = clock_fast_ns();
	rs->steal_sample_at = 0;
	rs->retry_at = 0;
	r = runstate_refresh(v, rs->t_last);
	if (r) {
		kvm_vcpu_runstate_deactivate(v);
		return r;
	}
	kvm_test_hook(v->kvm, KVM_HOOK_RUNSTATE_ACTIVATED, v);
	/* Its first write now, so the guest finds it filled at once. Not in
	 * guest mode, so under the read lock and only if the cache still
	 * checks: an invalidation since the refresh sent us a request but
	 * did not wait for us (we were outside guest mode). */
	kvm_gpc_read_lock(&rs->gpc);
	if (rs->hva && kvm_gpc_check(&rs->gpc, RUNSTATE_SIZE) && rs->hva == rs->gpc.khva)
		runstate_write(rs);
	kvm_gpc_read_unlock(&rs->gpc);
	return 0;
}

void kvm_vcpu_runstate_deactivate(struct kvm_vcpu *v)
{
	struct kvm_runstate *rs = &v->runstate;

	rs->hva = NULL;
	rs->fmt = 0;
	atomic_store_explicit(&rs->gpc.guest_mapped, false, memory_order_release);
	kvm_gpc_deactivate(&rs->gpc);
	/* A pending request about it is harmless: handled as a no-op. */
	if (rs->schedstat_fd > 0)
		close(rs->schedstat_fd);
	rs->schedstat_fd = 0;
}

void kvm_vcpu_runstate_get(struct kvm_vcpu *v, struct kvm_runstate_info *out)
{
	struct kvm_runstate *rs = &v->runstate;

	memset(out, 0, sizeof(*out));
	out->version = __atomic_load_n(&rs->updates, __ATOMIC_RELAXED) * 2;
	out->entries = __atomic_load_n(&rs->entries, __ATOMIC_RELAXED);
	out->time_in_guest = __atomic_load_n(&rs->time_in_guest, __ATOMIC_RELAXED);
	out->time_outside = __atomic_load_n(&rs->time_outside, __ATOMIC_RELAXED);
	out->time_runnable = __atomic_load_n(&rs->time_runnable, __ATOMIC_RELAXED);
}
