/* SPDX-License-Identifier: MIT */
/*
 * test_nonblock.c - non-blockable invalidations, the OOM reaper's
 * (tests/harness/kvm_fixture.h). A non-blockable start never sleeps:
 *   - with one of kvm's locks held elsewhere it returns -EAGAIN at once
 *     with nothing changed, and owes no end;
 *   - with the locks free it zaps and flushes without waiting for a vCPU
 *     in guest mode (counted): -EAGAIN for it in WAIT mode until the vCPU
 *     has left guest mode, 0 in RSEQ mode (membarrier);
 *   - its end does not wait for a vCPU either;
 *   - with the vCPUs stopped, as the reaper should find them, it zaps
 *     everything and succeeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/mmu_notifier.h"
#include "tandem/cpu.h"
#include "base/lock.h"
#include "host/internal.h"
#include "kvm/kvm_host.h"
#include "harness/kvm_fixture.h"
#include "harness/recorder.h"
#include "harness/util.h"

/* A thread that holds one of the VM's locks until told to let go. */
enum held_lock { HOLD_MMU_WRITE, HOLD_MMU_READ, HOLD_MN_INVALIDATE, HOLD_VCPUS,
		 NR_HOLD };

struct holder {
	pthread_t th;
	struct kvm *kvm;
	enum held_lock which;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool held, go;
};

static void *holder_main(void *a)
{
	struct holder *h = a;

	switch (h->which) {
	case HOLD_MMU_WRITE:     down_write(&h->kvm->mmu_lock); break;
	case HOLD_MMU_READ:      down_read(&h->kvm->mmu_lock); break;
	case HOLD_MN_INVALIDATE: mutex_lock(&h->kvm->mn_invalidate_lock); break;
	case HOLD_VCPUS:         mutex_lock(&h->kvm->lock); break;
	case NR_HOLD:            break;
	}
	pthread_mutex_lock(&h->lock);
	h->held = true;
	pthread_cond_broadcast(&h->cond);
	while (!h->go)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	switch (h->which) {
	case HOLD_MMU_WRITE:     up_write(&h->kvm->mmu_lock); break;
	case HOLD_MMU_READ:      up_read(&h->kvm->mmu_lock); break;
	case HOLD_MN_INVALIDATE: mutex_unlock(&h->kvm->mn_invalidate_lock); break;
	case HOLD_VCPUS:         mutex_unlock(&h->kvm->lock); break;
	case NR_HOLD:            break;
	}
	return NULL;
}

static void holder_start(struct holder *h, struct kvm *kvm, enum held_lock which)
{
	memset(h, 0, sizeof(*h));
	sync_init(&h->lock, &h->cond);
	h->kvm = kvm;
	h->which = which;
	assert_int_equal(pthread_create(&h->th, NULL, holder_main, h), 0);
	pthread_mutex_lock(&h->lock);
	bool held = wait_flag(&h->lock, &h->cond, &h->held, TIMEOUT_MS);
	pthread_mutex_unlock(&h->lock);
	assert_true(held);
}

static void holder_stop(struct holder *h)
{
	pthread_mutex_lock(&h->lock);
	h->go = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->th, NULL);
	sync_destroy(&h->lock, &h->cond);
}

/* The reaper's side, on a bg thread (start and end must share a thread):
 * a non-blockable start over [start, end) and, if it succeeded, what kvm
 * looked like inside the range, then end. Static, not on a test's stack:
 * a failed test may leave the bg thread running (kt_abandon). */
static struct nb_call {
	struct mmu_notifier_range r;
	long in_progress;               /* seen between start and end */
	bool zapped[NPAGES];            /* spte absent between start and end */
} nb_call;

static int bg_nonblock_range(struct kt *t, uintptr_t arg)
{
	struct nb_call *c = (struct nb_call *)arg;
	int ret = mmu_notifier_invalidate_range_start_nonblock(&c->r);

	if (ret)
		return ret;
	c->in_progress = kvm_in_progress(t, NULL, NULL);
	for (unsigned int i = 0; i < NPAGES; i++)
		c->zapped[i] = !is_shadow_present(gspte(t, i));
	mmu_notifier_invalidate_range_end(&c->r);
	return 0;
}

static int bg_set_region(struct kt *t, uintptr_t arg)
{
	return kvm_set_user_memory_region(t->kvm, (struct kvm_userspace_memory_region *)arg);
}

static int bg_register_unregister(struct kt *t, uintptr_t arg)
{
	struct mmu_notifier *mn = (struct mmu_notifier *)arg;
	int r = mmu_notifier_register(mn, t->mm);

	return r ? r : mmu_notifier_unregister(mn, t->mm);
}

static long mn_active_count(struct kt *t)
{
	mutex_lock(&t->kvm->mn_invalidate_lock);
	long n = t->kvm->mn_active_invalidate_count;

	mutex_unlock(&t->kvm->mn_invalidate_lock);
	return n;
}

/*
 * With one of kvm's locks held by another thread (mmu_lock for write, as an
 * invalidation or a fault installing an spte; for read, as an aging walk;
 * mn_invalidate_lock; the vCPU array's lock, as a waiting flush), a
 * non-blockable start returns -EAGAIN while the lock is still held, i.e.
 * without waiting for it, and changes nothing: no spte zapped, in_progress,
 * the active count and seq untouched, no invalidation counted. The core
 * owes no end and leaves nothing open: a registration (which takes the
 * range lock for write) and a blockable start/end then go through.
 */
static void test_nonblock_start_eagain(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct bg *bg = &t->bg;
	static struct holder h;         /* not on the stack: see nb_call */
	struct nb_call *c = &nb_call;
	const unsigned int n = 4;

	map_pages(t, n, 0x500);
	for (int which = 0; which < NR_HOLD; which++) {
		spte_t before[4], held[4];
		unsigned long seq0 = kvm_seq(t);
		struct kvm_stats k0 = kstats(t), k1;

		for (unsigned int i = 0; i < n; i++)
			before[i] = gspte(t, i);
		memset(c, 0, sizeof(*c));
		mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA(0), HVA(n));
		holder_start(&h, t->kvm, which);
		bg_start(bg, bg_nonblock_range, t, (uintptr_t)c);
		/* It returns while the lock is still held: it did not wait. */
		bool prompt = bg_done(bg, TIMEOUT_MS);

		for (unsigned int i = 0; i < n; i++)
			held[i] = gspte(t, i);
		holder_stop(&h);
		int ret = bg_join(bg);

		assert_true(prompt);
		assert_int_equal(ret, -EAGAIN);
		assert_int_equal(mmu_notifier_range_blockable(&c->r), false);
		for (unsigned int i = 0; i < n; i++) {
			assert_int_equal(held[i], before[i]);
			assert_int_equal(gspte(t, i), before[i]);
		}
		assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
		assert_int_equal(mn_active_count(t), 0);
		assert_int_equal(kvm_seq(t), seq0);
		k1 = kstats(t);
		assert_int_equal(k1.nonblock_eagain - k0.nonblock_eagain, 1);
		assert_int_equal(k1.invalidations, k0.invalidations);
		assert_int_equal(k1.sptes_zapped, k0.sptes_zapped);
		assert_int_equal(k1.tlb_flushes, k0.tlb_flushes);
		assert_int_equal(k1.nonblock_flush_in_guest, k0.nonblock_flush_in_guest);
	}

	/* Balanced: nothing holds the range lock (register takes it for
	 * write), and a blockable range over the same pages works. */
	static struct recorder extra;           /* not on the stack: see nb_call */

	rec_init(&extra, 2, REC_ALL);
	bg_start(bg, bg_register_unregister, t, (uintptr_t)&extra.mn);
	assert_true(bg_done(bg, TIMEOUT_MS));
	assert_int_equal(bg_join(bg), 0);
	assert_int_equal(rec_calls(&extra, REC_RELEASE), 1);
	rec_destroy(&extra);

	struct mmu_notifier_range r;
	unsigned long seq0 = kvm_seq(t);

	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				t->mm, HVA(0), HVA(n));
	assert_int_equal(mmu_notifier_invalidate_range_start(&r), 0);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 1);
	for (unsigned int i = 0; i < n; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	mmu_notifier_invalidate_range_end(&r);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(kvm_seq(t), seq0 + 1);
	/* And the guest faults the pages back in, undisturbed. */
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(g_read(t, GPA(i) + 8), 0x500 + i);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/* Run a non-blockable start (and its end, if it succeeds) on the bg
 * thread; returns its result, asserting that it came back while the vCPU
 * was still paused in guest mode: it did not wait for it. */
static int nonblock_range_vs_paused(struct kt *t, hva_t start, hva_t end)
{
	struct nb_call *c = &nb_call;
	struct bg *bg = &t->bg;

	memset(c, 0, sizeof(*c));
	mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, start, end);
	bg_start(bg, bg_nonblock_range, t, (uintptr_t)c);
	bool prompt = bg_done(bg, TIMEOUT_MS);

	assert_true(kt_paused(t));
	assert_true(prompt);
	return bg_join(bg);
}

/* Pages 0 and 2 mapped, the vCPU paused in guest mode about to read page
 * 1 through its soft TLB. Returns the vCPU's stats before the pause. */
static struct vcpu_stats map_and_pause_in_guest(struct kt *t)
{
	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* page 0 in the soft TLB */
	assert_int_equal(g_read(t, GPA(2) + 8), 0);     /* page 2: outside the range */
	struct vcpu_stats st = g_stats(t);

	pause_in_guest(t, 1);
	assert_true(is_shadow_present(gspte(t, 0)));
	assert_true(is_shadow_present(gspte(t, 1)));
	return st;
}

/*
 * A slot update settles a flush that a non-blockable start left pending.
 * WAIT mode, the vCPU held in guest mode with page 0 in its soft TLB: the
 * reaper's start zaps page 0 but cannot wait for the vCPU (-EAGAIN). A
 * delete of the slot then finds nothing left to zap, yet must not return
 * while the vCPU can still use its translation of page 0: it flushes and
 * waits as if it had zapped.
 */
static void test_slot_update_settles_pending_flush(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct kvm_userspace_memory_region del = { .slot = 0 };
	struct bg *bg = &t->bg;

	map_and_pause_in_guest(t);
	assert_int_equal(nonblock_range_vs_paused(t, HVA(0), HVA(NPAGES)), -EAGAIN);
	for (unsigned int i = 0; i < NPAGES; i++)       /* zapped: nothing left */
		assert_false(is_shadow_present(gspte(t, i)));
	bg_start(bg, bg_set_region, t, (uintptr_t)&del);
	assert_false(bg_done(bg, BLOCK_MS));            /* it waits for the vCPU */
	assert_true(kt_paused(t));
	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	expect_mmio_read(t, GPA(0) + 8);                /* the slot is gone */
	kt_destroy(t);
}

/*
 * The non-blockable flavour of the lost wake-up (test_flush.c): the vCPU
 * sees the reaper's request between its setting and the reaper's read of
 * exit_epoch, exits, flushes, consumes it and enters again. The reaper
 * finds it in guest mode and answers -EAGAIN with the flush pending on it;
 * its retry must find the flush settled -- the vCPU consumed the request --
 * rather than wait for an exit an idle guest never makes.
 */
static void test_nonblock_pending_flush_settled_by_consume(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct kt_reentry h = { 0 };
	struct nb_call *c = &nb_call;

	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* idle in guest mode */
	atomic_store(&h.armed, true);
	kvm_set_test_hook(t->kvm, kt_wait_reentry, &h);
	memset(c, 0, sizeof(*c));
	mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA(0), HVA(1));
	assert_int_equal(bg_nonblock_range(t, (uintptr_t)c), -EAGAIN);
	assert_true(atomic_load(&h.reentered));         /* the interleaving happened */
	kvm_set_test_hook(t->kvm, NULL, NULL);
	/* The retry: nothing to zap, and the pending flush is settled. */
	memset(c, 0, sizeof(*c));
	mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA(0), HVA(1));
	assert_int_equal(bg_nonblock_range(t, (uintptr_t)c), 0);
	kt_destroy(t);
}

/*
 * The OOM reaper's end must not wait for a vCPU any more than its start
 * may. WAIT mode: a non-blockable range is open (it zapped nothing, so its
 * start succeeded), then a vCPU is held in guest mode and a DONTNEED zaps
 * a page it mapped, so that DONTNEED's flush sleeps for the vCPU (holding
 * mmu_lock). The reaper's end must return meanwhile; it used to take
 * mmu_lock and sleep until the vCPU was released.
 */
struct nb_reaper {
	struct kt *t;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mmu_notifier_range r;
	int start_ret;
	bool started, go, ended;
};

static void *nb_reaper_main(void *a)
{
	struct nb_reaper *n = a;

	/* start and end on one thread: it owns the range (mmu_notifier.c). */
	n->start_ret = mmu_notifier_invalidate_range_start_nonblock(&n->r);
	pthread_mutex_lock(&n->lock);
	n->started = true;
	pthread_cond_broadcast(&n->cond);
	wait_flag(&n->lock, &n->cond, &n->go, 10 * TIMEOUT_MS);
	pthread_mutex_unlock(&n->lock);
	if (n->start_ret == 0)
		mmu_notifier_invalidate_range_end(&n->r);
	pthread_mutex_lock(&n->lock);
	n->ended = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

static void test_nonblock_end_does_not_wait_for_vcpu(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct nb_reaper n = { .t = t };
	struct bg *bg = &t->bg;
	bool ended;

	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* page 0: spte, soft TLB */
	sync_init(&n.lock, &n.cond);
	mmu_notifier_range_init(&n.r, MMU_NOTIFY_RELEASE, 0, t->mm, HVA(5), HVA(6));
	assert_int_equal(pthread_create(&n.th, NULL, nb_reaper_main, &n), 0);
	pthread_mutex_lock(&n.lock);
	assert_true(wait_flag(&n.lock, &n.cond, &n.started, TIMEOUT_MS));
	pthread_mutex_unlock(&n.lock);
	assert_int_equal(n.start_ret, 0);

	pause_in_guest(t, 1);
	bg_start(bg, bg_dontneed, t, HVA(0));
	assert_false(bg_done(bg, BLOCK_MS));            /* its flush waits for the vCPU */

	pthread_mutex_lock(&n.lock);
	n.go = true;
	pthread_cond_broadcast(&n.cond);
	ended = wait_flag(&n.lock, &n.cond, &n.ended, 10 * BLOCK_MS);
	pthread_mutex_unlock(&n.lock);
	bool still_paused = kt_paused(t);

	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	pthread_join(n.th, NULL);
	sync_destroy(&n.lock, &n.cond);
	assert_true(ended);                             /* did not wait for the vCPU */
	assert_true(still_paused);
	assert_true(g_wait(t, TIMEOUT_MS));
	kt_destroy(t);
}

/*
 * WAIT mode, a vCPU held in guest mode, the locks free. A non-blockable
 * start zaps its range and sends the TLB flush, but only a wait could tell
 * when the vCPU stops using what was zapped: it returns -EAGAIN at once
 * (the vCPU still paused, kicked but not out), with nothing in progress,
 * and counts the vCPU. A retry before the vCPU has left guest mode fails
 * the same way, though nothing is left to zap. So does a blockable zapper
 * not skip the flush: a DONTNEED of page 0 waits for the vCPU and leaves
 * the PTE (and frame) alone until then. Once the vCPU has left guest mode,
 * the reaper's retry succeeds.
 */
static void test_nonblock_start_eagain_in_guest(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct vcpu_stats st_pre = map_and_pause_in_guest(t), st0, st1;
	struct bg *bg = &t->bg;
	struct nb_call *c = &nb_call;
	pfn_t f0 = host_pfn(t, HVA(0));
	uint32_t epoch0 = atomic_load(&t->v->kvm_vcpu.exit_epoch);
	unsigned long seq0 = kvm_seq(t);
	struct kvm_stats k0 = kstats(t), k1;

	assert_int_equal(nonblock_range_vs_paused(t, HVA(0), HVA(2)), -EAGAIN);
	assert_int_not_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.exit_epoch), epoch0);
	assert_true(atomic_load(&t->v->kvm_vcpu.requests) & (1UL << KVM_REQ_TLB_FLUSH));
	/* Zapped (harmless: the host changed no PTE), nothing in progress. */
	assert_false(is_shadow_present(gspte(t, 0)));
	assert_false(is_shadow_present(gspte(t, 1)));
	assert_true(is_shadow_present(gspte(t, 2)));
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(mn_active_count(t), 0);
	assert_int_equal(kvm_seq(t), seq0);
	k1 = kstats(t);
	assert_int_equal(k1.nonblock_eagain - k0.nonblock_eagain, 1);
	assert_int_equal(k1.nonblock_flush_in_guest - k0.nonblock_flush_in_guest, 1);
	assert_int_equal(k1.tlb_flushes - k0.tlb_flushes, 1);
	assert_int_equal(k1.invalidations, k0.invalidations);

	/* Retry, the vCPU still in guest mode: nothing to zap, still -EAGAIN
	 * (and no second request). */
	assert_int_equal(nonblock_range_vs_paused(t, HVA(0), HVA(2)), -EAGAIN);
	k1 = kstats(t);
	assert_int_equal(k1.nonblock_eagain - k0.nonblock_eagain, 2);
	assert_int_equal(k1.nonblock_flush_in_guest - k0.nonblock_flush_in_guest, 2);
	assert_int_equal(k1.tlb_flushes - k0.tlb_flushes, 1);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);

	/* A blockable invalidation finds nothing to zap but still waits. */
	bg_start(bg, bg_dontneed, t, HVA(0));
	assert_false(bg_done(bg, BLOCK_MS));
	assert_int_equal(host_pfn(t, HVA(0)), f0);
	assert_true(kt_paused(t));
	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	assert_false(pte_present(mm_lookup_pte(t->mm, HVA(0))));
	assert_true(atomic_load(&t->v->kvm_vcpu.exit_epoch) != epoch0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, &st0), 0);

	/* The reaper's retry now succeeds (in_progress raised in between). */
	memset(c, 0, sizeof(*c));
	mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA(0), HVA(2));
	assert_int_equal(bg_nonblock_range(t, (uintptr_t)c), 0);
	assert_int_equal(c->in_progress, 1);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(mn_active_count(t), 0);

	/* The vCPU flushed its soft TLB: page 0 walks again (and reads the
	 * zero page DONTNEED left behind). */
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_true(st1.stlb_flushes > st_pre.stlb_flushes);
	assert_int_equal(g_read(t, GPA(0) + 8), 0);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * RSEQ mode: the same non-blockable start returns 0 with the vCPU still
 * paused in guest mode -- membarrier, which waits for no vCPU, has made
 * the vCPU's next access check the request -- and counts the vCPU. The
 * vCPU, released, takes the slow path at once and flushes its soft TLB.
 */
static void test_nonblock_start_rseq_in_guest(void **state)
{
	if (!kvm_rseq_available())
		skip(); /* sanitizer builds: the asm path is compiled out */
	struct kt *t = kt_create(0, KT_KICK_RSEQ);
	struct vcpu_stats st_pre = map_and_pause_in_guest(t), st0, st1;
	struct nb_call *c = &nb_call;
	uint32_t epoch0 = atomic_load(&t->v->kvm_vcpu.exit_epoch);
	unsigned long seq0 = kvm_seq(t);
	struct kvm_stats k0 = kstats(t), k1;

	assert_int_equal(nonblock_range_vs_paused(t, HVA(0), HVA(2)), 0);
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.exit_epoch), epoch0);
	assert_int_equal(c->in_progress, 1);
	assert_true(c->zapped[0] && c->zapped[1]);
	assert_false(c->zapped[2]);
	assert_true(is_shadow_present(gspte(t, 2)));
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(kvm_seq(t), seq0 + 1);
	assert_int_equal(mn_active_count(t), 0);
	k1 = kstats(t);
	assert_int_equal(k1.invalidations - k0.invalidations, 1);
	assert_int_equal(k1.tlb_flushes - k0.tlb_flushes, 1);
	assert_int_equal(k1.nonblock_flush_in_guest - k0.nonblock_flush_in_guest, 1);
	assert_int_equal(k1.nonblock_eagain, k0.nonblock_eagain);
	assert_false(t->kvm->tlb_flush_pending);

	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, &st0), 0);
	assert_true(st0.stlb_flushes > st_pre.stlb_flushes);
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/* As the reaper should find it: the vCPU stopped first. The start zaps
 * everything, flushes, and finds nobody in guest mode. */
static void test_nonblock_start_vcpus_stopped(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct nb_call *c = &nb_call;

	map_pages(t, NPAGES, 0x600);
	assert_int_equal(vcpu_stop(t->v), -EINTR);
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	struct kvm_stats k0 = kstats(t), k1;

	memset(c, 0, sizeof(*c));
	mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA_BASE,
				HVA_BASE + NPAGES * P);
	assert_int_equal(bg_nonblock_range(t, (uintptr_t)c), 0);
	assert_int_equal(c->in_progress, 1);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_true(c->zapped[i]);
	k1 = kstats(t);
	assert_int_equal(k1.sptes_zapped - k0.sptes_zapped, NPAGES);
	assert_int_equal(k1.tlb_flushes - k0.tlb_flushes, 1);
	assert_int_equal(k1.nonblock_flush_in_guest, k0.nonblock_flush_in_guest);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	kt_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KT_TEST(test_nonblock_start_eagain),
		KT_TEST(test_nonblock_start_eagain_in_guest),
		KT_TEST(test_nonblock_end_does_not_wait_for_vcpu),
		KT_TEST(test_slot_update_settles_pending_flush),
		KT_TEST(test_nonblock_pending_flush_settled_by_consume),
		KT_TEST(test_nonblock_start_rseq_in_guest),
		KT_TEST(test_nonblock_start_vcpus_stopped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
