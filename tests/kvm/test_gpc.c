/* SPDX-License-Identifier: MIT */
/*
 * test_gpc.c - gfn_to_pfn_cache (src/kvm/pfncache.c), one protocol step a
 * test, each pausing a thread where the step matters:
 *
 *   - a refresh paused after its GUP while an invalidation of its page
 *     runs does not install the old frame (it retries);
 *   - a refresh that starts while an invalidation is between its start and
 *     its end sleeps until the end, once, without spinning;
 *   - an invalidation marks an active cache invalid before start returns,
 *     and none with --break=gpc-invalidate;
 *   - a memslot move or delete makes check fail;
 *   - deactivate leaves nothing for a later invalidation to find;
 *   - a cache over a page that is swapped out, COW-broken, DONTNEED'd or
 *     remapped always writes the frame the guest sees, once refreshed;
 *   - guest mode (the run-state area a vCPU writes at every entry with no
 *     lock): an invalidation of its page does not return while the vCPU
 *     is in guest mode, sends it KVM_REQ_GPC_INVALIDATE, and the vCPU's
 *     next entries write the new frame; with --break=gpc-request the
 *     vCPU is neither told nor waited for and writes the old frame;
 *   - the OOM reaper's non-blockable invalidation sends the request
 *     without waiting for a vCPU in guest mode, and counts it;
 *   - deactivate racing an invalidation held open, or a refresh paused
 *     after its GUP, leaves nothing behind;
 *   - the cache lock: a writer (an invalidation) waits for a reader in its
 *     read section, and a reader waits for a writer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "kvm/kvm_host.h"
#include "harness/kvm_fixture.h"
#include "harness/util.h"
#include "base/clock.h"
#include "tandem/mmu_notifier.h"

/* ---- a pause at the refresh's KVM_HOOK_GPC_AFTER_GUP --------------------- */

static void gup_pause_hook(struct kvm *kvm, enum kvm_hook_point at, struct kvm_vcpu *v,
			   void *arg)
{
	(void)kvm;
	(void)v;
	if (at == KVM_HOOK_GPC_AFTER_GUP)
		pause_once_hit(arg, TIMEOUT_MS);
}

struct refresher {
	struct gfn_to_pfn_cache *gpc;
	pthread_t th;
	atomic_long done;
	int ret;
};

static void *refresh_thread(void *arg)
{
	struct refresher *r = arg;

	r->ret = kvm_gpc_refresh(r->gpc, 8);
	atomic_store(&r->done, 1);
	return NULL;
}

static void refresher_start(struct refresher *r, struct gfn_to_pfn_cache *gpc)
{
	r->gpc = gpc;
	atomic_init(&r->done, 0);
	assert_int_equal(pthread_create(&r->th, NULL, refresh_thread, r), 0);
}

static int refresher_join(struct refresher *r)
{
	assert_true(wait_until_long(&r->done, 1, TIMEOUT_MS));
	pthread_join(r->th, NULL);
	return r->ret;
}

/* Write v through the cache (refreshing as needed), as a host user would. */
static void gpc_write(struct gfn_to_pfn_cache *gpc, uint64_t v)
{
	for (int tries = 0;; tries++) {
		assert_true(tries < 100);
		kvm_gpc_read_lock(gpc);
		if (kvm_gpc_check(gpc, 8)) {
			__atomic_store_n((uint64_t *)gpc->khva, v, __ATOMIC_RELAXED);
			kvm_gpc_read_unlock(gpc);
			return;
		}
		kvm_gpc_read_unlock(gpc);
		assert_int_equal(kvm_gpc_refresh(gpc, 8), 0);
	}
}

static bool gpc_valid(struct gfn_to_pfn_cache *gpc)
{
	bool ok;

	kvm_gpc_read_lock(gpc);
	ok = kvm_gpc_check(gpc, 8);
	kvm_gpc_read_unlock(gpc);
	return ok;
}

/* ---- tests ------------------------------------------------------------- */

static void test_activate_writes_guest_page(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct gfn_to_pfn_cache gpc;

	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(2) + 4090, 8), -EINVAL);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA_MMIO, 8), -EFAULT);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(2) + 16, 8), 0);
	assert_true(gpc_valid(&gpc));
	assert_int_equal(gpc.pfn, host_pfn(t, HVA(2)));
	gpc_write(&gpc, 0xc10c);
	assert_int_equal(host_load(t->mm, HVA(2) + 16), 0xc10c);
	kvm_gpc_destroy(&gpc);
	kt_destroy(t);
}

/* A refresh paused after its GUP while the page is dropped and faulted
 * back: it must not install the frame its GUP saw. */
static void test_refresh_paused_after_gup_retries(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct pause_once p;
	struct gfn_to_pfn_cache gpc;
	struct refresher r;

	pause_once_init(&p);
	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(3), 8), 0);
	assert_int_equal(mm_madvise(t->mm, HVA(3), P, MADV_DONTNEED), 0);
	assert_false(gpc_valid(&gpc));          /* invalidated before start returned */

	pause_once_arm(&p);
	kvm_set_test_hook(t->kvm, gup_pause_hook, &p);
	refresher_start(&r, &gpc);
	assert_true(pause_once_wait(&p, TIMEOUT_MS));
	/* The host takes that frame back while the refresh holds no lock. */
	assert_int_equal(mm_madvise(t->mm, HVA(3), P, MADV_DONTNEED), 0);
	host_store(t->mm, HVA(3) + 8, 0x5eed);  /* a new frame */
	pause_once_release(&p);
	assert_int_equal(refresher_join(&r), 0);
	kvm_set_test_hook(t->kvm, NULL, NULL);

	assert_true(gpc.stat.retries >= 1);
	assert_int_equal(gpc.pfn, host_pfn(t, HVA(3)));
	gpc_write(&gpc, 0xabc);
	assert_int_equal(host_load(t->mm, HVA(3)), 0xabc);
	assert_int_equal(host_load(t->mm, HVA(3) + 8), 0x5eed);
	kvm_gpc_destroy(&gpc);
	pause_once_destroy(&p);
	kt_destroy(t);
}

/* While an invalidation is held open between its start and its end, a
 * refresh sleeps (one wait, no retries) and finishes after the end. */
static void test_refresh_sleeps_during_invalidation(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU | KT_REC_AFTER_KVM);
	struct gfn_to_pfn_cache gpc;
	struct refresher r;
	struct bg bg;

	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(4), 8), 0);
	rec_arm(&t->rec, &(struct rec_trigger){ .kinds = REC_F(REC_START),
						.start = HVA(4), .end = HVA(4) + P,
						.pause = true });
	bg_start(&bg, bg_dontneed, t, HVA(4));
	assert_true(rec_wait_paused(&t->rec, TIMEOUT_MS));
	/* kvm's start has run: the cache is invalid already. */
	assert_false(gpc_valid(&gpc));
	assert_int_equal(gpc.stat.invalidations, 1);

	refresher_start(&r, &gpc);
	sleep_ms(BLOCK_MS);
	assert_int_equal(atomic_load(&r.done), 0);      /* still asleep */
	rec_resume(&t->rec);
	assert_int_equal(bg_join(&bg), 0);
	assert_int_equal(refresher_join(&r), 0);
	/* It slept, once, and never went round the loop for it. */
	assert_int_equal(gpc.stat.waits, 1);
	assert_int_equal(gpc.stat.retries, 0);
	assert_true(gpc_valid(&gpc));
	assert_int_equal(gpc.pfn, host_pfn(t, HVA(4)));
	kvm_gpc_destroy(&gpc);
	kt_destroy(t);
}

/* The invalidation is what keeps the cache honest: with it broken, the
 * cache still says valid over a freed frame. */
static void test_break_gpc_invalidate(void **state)
{
	struct kt *t = kt_create(KVM_BREAK_GPC_INVALIDATE, KT_NO_VCPU);
	struct gfn_to_pfn_cache gpc;

	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(5), 8), 0);
	pfn_t old = gpc.pfn;

	assert_int_equal(mm_madvise(t->mm, HVA(5), P, MADV_DONTNEED), 0);
	assert_true(gpc_valid(&gpc));
	assert_int_equal(gpc.pfn, old);
	assert_int_equal(gpc.stat.invalidations, 0);
	kvm_gpc_deactivate(&gpc);
	kvm_gpc_destroy(&gpc);
	kt_destroy(t);
}

/* A memslot move or delete makes check fail (the generation). */
static void test_memslot_change_fails_check(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct kvm_userspace_memory_region del = { .slot = 0 };
	struct gfn_to_pfn_cache gpc;

	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(1), 8), 0);
	kt_add_slot(t, 0, 0, GPA_MOVED, NPAGES * P, HVA_BASE);   /* move */
	assert_false(gpc_valid(&gpc));
	assert_int_equal(kvm_gpc_refresh(&gpc, 8), -EFAULT);    /* GPA(1): no slot now */
	kvm_gpc_deactivate(&gpc);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA_MOVED + P, 8), 0);
	assert_true(gpc_valid(&gpc));
	assert_int_equal(kvm_set_user_memory_region(t->kvm, &del), 0);
	assert_false(gpc_valid(&gpc));
	kvm_gpc_destroy(&gpc);
	kt_destroy(t);
}

/* Deactivate takes the cache off the VM's list: a later invalidation
 * finds nothing of it, and its state says nothing is mapped. */
static void test_deactivate_leaves_nothing(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct gfn_to_pfn_cache gpc;

	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(6), 8), 0);
	kvm_gpc_deactivate(&gpc);
	assert_null(t->kvm->gpc_list);
	assert_false(gpc.valid);
	assert_null(gpc.khva);
	assert_int_equal(mm_madvise(t->mm, HVA(6), P, MADV_DONTNEED), 0);
	assert_int_equal(gpc.stat.invalidations, 0);
	assert_false(gpc_valid(&gpc));
	assert_int_equal(kvm_gpc_refresh(&gpc, 8), -EINVAL);   /* inactive */
	kvm_gpc_destroy(&gpc);
	kt_destroy(t);
}

/* Whatever the host does to the page, a write through the cache lands in
 * the frame the guest sees. */
static void test_writes_follow_the_host(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU | KT_SWAP);
	struct gfn_to_pfn_cache gpc;
	struct mm *child;
	uint64_t v = 0x1000;
	hva_t hva;

	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(7), 8), 0);
	gpc_write(&gpc, ++v);
	assert_int_equal(host_load(t->mm, HVA(7)), v);

	/* COW: fork, then the host's write breaks it; the cache follows. */
	child = ht_fork(t->ht, t->mm);
	assert_false(gpc_valid(&gpc));          /* fork write-protected it */
	gpc_write(&gpc, ++v);
	assert_int_equal(host_load(t->mm, HVA(7)), v);
	assert_int_equal(host_load(child, HVA(7)), v - 1);     /* the child's copy */
	ht_mmput(t->ht, child);

	/* Swap out, and in again. */
	assert_int_equal(mm_madvise(t->mm, HVA(7), P, MADV_PAGEOUT), 0);
	assert_false(gpc_valid(&gpc));
	gpc_write(&gpc, ++v);
	assert_int_equal(host_load(t->mm, HVA(7)), v);

	/* DONTNEED: a new zero page. */
	assert_int_equal(mm_madvise(t->mm, HVA(7), P, MADV_DONTNEED), 0);
	assert_false(gpc_valid(&gpc));
	gpc_write(&gpc, ++v);
	assert_int_equal(host_load(t->mm, HVA(7)), v);
	assert_int_equal(gpc.pfn, host_pfn(t, HVA(7)));

	/* Remap: unmap the page and map it anew. */
	assert_int_equal(mm_munmap(t->mm, HVA(7), P), 0);
	assert_false(gpc_valid(&gpc));
	assert_int_equal(mm_mmap(t->mm, HVA(7), P, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &hva), 0);
	assert_int_equal(hva, HVA(7));
	host_store(t->mm, HVA(7) + 8, 1);  /* the guest's page again, mapped */
	gpc_write(&gpc, ++v);
	assert_int_equal(host_load(t->mm, HVA(7)), v);
	assert_int_equal(gpc.pfn, host_pfn(t, HVA(7)));
	kvm_gpc_destroy(&gpc);
	kt_destroy(t);
}

/* ---- guest mode: the run-state area ------------------------------------ */

#define RS_PAGE 9                       /* the run-state area: page 9, offset 0 */
#define RS_OFF(f) offsetof(struct kvm_runstate_info, f)

static uint64_t rs_host(struct kt *t, size_t off)
{
	return host_load(t->mm, HVA(RS_PAGE) + off);
}

/* Activate t->v's run-state area at page RS_PAGE (the vCPU stopped
 * meanwhile: activation is the vCPU's own business while it runs). */
static void rs_activate(struct kt *t)
{
	assert_int_not_equal(vcpu_stop(t->v), -EINVAL);   /* the guest says -EINTR */
	assert_int_equal(kvm_vcpu_runstate_activate(&t->v->kvm_vcpu, GPA(RS_PAGE),
						    KVM_RUNSTATE_TANDEM), 0);
	kt_vcpu_start(t);
}

/* Wait until the guest's page shows entries beyond min (the vCPU enters
 * at least every millisecond: the mailbox guest checks requests). */
static bool rs_wait_entries(struct kt *t, uint64_t min)
{
	for (int ms = 0; ms < TIMEOUT_MS; ms++) {
		if (rs_host(t, RS_OFF(entries)) > min)
			return true;
		sleep_ms(1);
	}
	return false;
}

static bool gpc_request_pending(struct kt *t)
{
	return atomic_load(&t->v->kvm_vcpu.requests) & (1UL << KVM_REQ_GPC_INVALIDATE);
}

/* The vCPU consumes KVM_REQ_GPC_INVALIDATE when it next leaves guest
 * mode (the mailbox guest checks requests every millisecond). */
static void wait_request_handled(struct kt *t)
{
	for (int ms = 0; ms < TIMEOUT_MS && gpc_request_pending(t); ms++)
		sleep_ms(1);
	assert_false(gpc_request_pending(t));
}

/* The run-state area active, written at least once, and the vCPU paused
 * in guest mode after an entry that wrote it. */
static void rs_paused_in_guest(struct kt *t)
{
	rs_activate(t);
	assert_true(rs_wait_entries(t, 0));
	pause_in_guest(t, 1);
}

/* Bad input: alignment, format, no RAM. */
static void test_runstate_bad_input(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct vcpu *v;

	assert_int_equal(vcpu_create(t->kvm, 0, &v), 0);
	assert_int_equal(kvm_vcpu_runstate_activate(&v->kvm_vcpu, GPA(1) + 8,
						    KVM_RUNSTATE_TANDEM), -EINVAL);
	assert_int_equal(kvm_vcpu_runstate_activate(&v->kvm_vcpu, GPA(1), 7), -EINVAL);
	assert_int_equal(kvm_vcpu_runstate_activate(&v->kvm_vcpu, GPA_HOLE,
						    KVM_RUNSTATE_TANDEM), -EFAULT);
	assert_int_equal(kvm_vcpu_runstate_activate(&v->kvm_vcpu, GPA_RO,
						    KVM_RUNSTATE_TANDEM), -EFAULT);
	assert_null(t->kvm->gpc_list);          /* nothing left active */
	/* A good one is written at once, version even. */
	assert_int_equal(kvm_vcpu_runstate_activate(&v->kvm_vcpu, GPA(1) + 64,
						    KVM_RUNSTATE_TANDEM), 0);
	assert_int_equal(host_load(t->mm, HVA(1) + 64 + RS_OFF(version)), 2);
	vcpu_destroy(v);                        /* deactivates it */
	assert_null(t->kvm->gpc_list);
	kt_destroy(t);
}

/*
 * The activation's first write (outside guest mode, so no request waits
 * for it) goes through the cache only if it still checks: the host takes
 * the page back between the refresh and that write (DONTNEED, from the
 * hook there), and the old frame -- held by the test, so that a stale
 * write would land somewhere it can look -- stays untouched; the request
 * is left for the vCPU's next entry.
 */
struct zap_at_activation {
	struct kt *t;
	struct page *old;
	int fired;
};

static void zap_at_activation_hook(struct kvm *kvm, enum kvm_hook_point at,
				   struct kvm_vcpu *v, void *arg)
{
	struct zap_at_activation *z = arg;
	bool writable;

	(void)kvm;
	(void)v;
	if (at != KVM_HOOK_RUNSTATE_ACTIVATED || z->fired++)
		return;
	if (get_user_page(z->t->mm, HVA(1), 0, &z->old, &writable) == 0)
		mm_madvise(z->t->mm, HVA(1), P, MADV_DONTNEED);
}

static void test_runstate_first_write_checks_cache(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct zap_at_activation z = { .t = t };
	struct kvm_stats k0;
	struct vcpu *v;
	const uint64_t *old;

	assert_int_equal(vcpu_create(t->kvm, 0, &v), 0);
	k0 = kstats(t);
	kvm_set_test_hook(t->kvm, zap_at_activation_hook, &z);
	assert_int_equal(kvm_vcpu_runstate_activate(&v->kvm_vcpu, GPA(1),
						    KVM_RUNSTATE_TANDEM), 0);
	kvm_set_test_hook(t->kvm, NULL, NULL);
	assert_int_equal(z.fired, 1);
	assert_non_null(z.old);
	assert_int_equal(kstats(t).gpc_invalidations - k0.gpc_invalidations, 1);
	old = page_address(z.old);
	for (size_t i = 0; i < PAGE_SIZE / 8; i++)
		if (__atomic_load_n(&old[i], __ATOMIC_RELAXED))
			fail_msg("the frame the host took back was written at offset %zu", i * 8);
	assert_int_equal(host_load(t->mm, HVA(1) + RS_OFF(version)), 0);
	assert_true(atomic_load(&v->kvm_vcpu.requests) & (1UL << KVM_REQ_GPC_INVALIDATE));
	put_page(z.old);
	vcpu_destroy(v);
	kt_destroy(t);
}

/* The area accounts wall time (clock_fast_ns: the TSC where constant):
 * in guest mode plus outside it is the time since activation, give or
 * take the last stretch. */
static void test_runstate_accounts_time(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct kvm_runstate_info rs;
	uint64_t t0, t1;

	rs_activate(t);
	t0 = clock_now_ns();
	for (unsigned int i = 0; i < 10; i++) {
		g_read(t, GPA(i));              /* a miss: an exit and an entry */
		sleep_ms(10);
	}
	t1 = clock_now_ns();
	assert_int_not_equal(vcpu_stop(t->v), -EINVAL);
	kvm_vcpu_runstate_get(&t->v->kvm_vcpu, &rs);
	assert_true(rs.entries >= 10);
	/* Between the last entry before t0 and the stop after t1. */
	assert_true(rs.time_in_guest + rs.time_outside >= (t1 - t0) * 9 / 10);
	assert_true(rs.time_in_guest + rs.time_outside <= (t1 - t0) + 200 * NSEC_PER_MSEC);
	assert_true(rs.time_in_guest > rs.time_outside);        /* it idles in guest mode */
	kt_vcpu_start(t);
	kt_destroy(t);
}

/*
 * The vCPU is paused in guest mode after the entry that wrote its
 * run-state area. An invalidation of that page (DONTNEED) marks the cache
 * invalid, sends KVM_REQ_GPC_INVALIDATE and does not return while the
 * vCPU is in guest mode: it might be writing through the old address. Once
 * it leaves, the invalidation returns; the vCPU refreshes before entering
 * again, and its later entries land in the guest's new page.
 */
static void test_guest_mode_invalidation_waits_for_vcpu(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct kvm_stats k0, k1;
	uint64_t e0;

	rs_paused_in_guest(t);
	e0 = rs_host(t, RS_OFF(entries));
	assert_int_equal(rs_host(t, RS_OFF(version)) & 1, 0);
	k0 = kstats(t);

	bg_start(&t->bg, bg_dontneed, t, HVA(RS_PAGE));
	assert_false(bg_done(&t->bg, BLOCK_MS));        /* waits for the vCPU */
	assert_true(kt_paused(t));
	assert_true(gpc_request_pending(t));
	kt_release(t);
	assert_int_equal(bg_join(&t->bg), 0);
	k1 = kstats(t);
	assert_int_equal(k1.gpc_invalidations - k0.gpc_invalidations, 1);
	assert_int_equal(k1.gpc_requests - k0.gpc_requests, 1);
	assert_int_equal(k1.gpc_request_waits - k0.gpc_request_waits, 1);

	/* The new page (zeroes after DONTNEED) gets the vCPU's later entries,
	 * which only grow. */
	assert_true(rs_wait_entries(t, e0));
	assert_int_equal(t->v->kvm_vcpu.runstate.gpc.pfn, host_pfn(t, HVA(RS_PAGE)));
	assert_true(rs_host(t, RS_OFF(time_in_guest)) > 0);
	kt_destroy(t);
}

/*
 * Two invalidations of the page while the vCPU is in guest mode: the first
 * marks the cache invalid and waits; the second finds it invalid already,
 * but the vCPU still holds the old address (it has not handled the
 * request), so the second waits too -- else it would free the frame under
 * the vCPU's entry write.
 */
static void test_second_invalidation_waits_too(void **state)
{
	struct kt *t = kt_create(0, 0);
	static struct bg bg2;
	struct kvm_stats k0, k1;

	rs_paused_in_guest(t);
	k0 = kstats(t);
	bg_start(&t->bg, bg_dontneed, t, HVA(RS_PAGE));
	assert_false(bg_done(&t->bg, BLOCK_MS));
	bg_start(&bg2, bg_dontneed, t, HVA(RS_PAGE));
	assert_false(bg_done(&bg2, BLOCK_MS));          /* waits as well */
	assert_true(kt_paused(t));
	kt_release(t);
	assert_int_equal(bg_join(&t->bg), 0);
	assert_int_equal(bg_join(&bg2), 0);
	k1 = kstats(t);
	assert_int_equal(k1.gpc_invalidations - k0.gpc_invalidations, 1);
	assert_int_equal(k1.gpc_requests - k0.gpc_requests, 2);
	kt_destroy(t);
}

/*
 * A memslot delete leaves the host mapping in place, but the page is no
 * longer the guest's: the vCPU holding the run-state cache's address is
 * told (and waited for), lets go, and its refresh finds no slot -- its
 * later entries write nothing there.
 */
static void test_slot_delete_reaches_guest_mode_cache(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct kvm_userspace_memory_region del = { .slot = 0 };
	struct kvm_stats k0, k1;
	uint64_t e, e0;

	rs_activate(t);
	assert_true(rs_wait_entries(t, 0));
	k0 = kstats(t);
	assert_int_equal(kvm_set_user_memory_region(t->kvm, &del), 0);
	k1 = kstats(t);
	assert_int_equal(k1.gpc_requests - k0.gpc_requests, 1);
	/* The guest's accesses now exit (MMIO: no slot) and enter again. */
	wait_request_handled(t);
	e = rs_host(t, RS_OFF(entries));
	for (unsigned int i = 0; i < 8; i++)
		g_load(t, GPA(i), &e0, NULL);
	assert_int_equal(rs_host(t, RS_OFF(entries)), e);
	assert_false(atomic_load(&t->v->kvm_vcpu.runstate.gpc.guest_mapped));
	kt_destroy(t);
}

/* With the vCPU outside guest mode the invalidation sends the request but
 * has nobody to wait for; the vCPU refreshes at its next entry. */
static void test_guest_mode_invalidation_vcpu_outside(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct kvm_stats k0, k1;
	uint64_t e0;

	rs_activate(t);
	assert_true(rs_wait_entries(t, 0));
	kt_arm(t, VCPU_HOOK_BEFORE_ENTER);              /* outside guest mode */
	g_post(t, G_LOAD, GPA(2) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	e0 = rs_host(t, RS_OFF(entries));
	k0 = kstats(t);
	assert_int_equal(mm_madvise(t->mm, HVA(RS_PAGE), P, MADV_DONTNEED), 0);
	k1 = kstats(t);
	assert_int_equal(k1.gpc_requests - k0.gpc_requests, 1);
	assert_int_equal(k1.gpc_request_waits - k0.gpc_request_waits, 0);
	assert_true(gpc_request_pending(t));
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_true(rs_wait_entries(t, e0));
	assert_int_equal(t->v->kvm_vcpu.runstate.gpc.pfn, host_pfn(t, HVA(RS_PAGE)));
	kt_destroy(t);
}

/*
 * --break=gpc-request: the cache is marked invalid but the vCPU is neither
 * told nor waited for, so the invalidation returns with the vCPU in guest
 * mode, and the vCPU goes on writing the frame the host took back. (The
 * test holds a reference on that frame so that the stale writes land in a
 * frame nobody reuses; the checker of tandem run finds them by poison.)
 */
static void test_break_gpc_request(void **state)
{
	struct kt *t = kt_create(KVM_BREAK_GPC_REQUEST, 0);
	struct page *old;
	bool writable;
	uint64_t e_old;

	rs_activate(t);
	assert_true(rs_wait_entries(t, 0));
	assert_int_equal(get_user_page(t->mm, HVA(RS_PAGE), 0, &old, &writable), 0);
	pause_in_guest(t, 1);
	bg_start(&t->bg, bg_dontneed, t, HVA(RS_PAGE));
	assert_true(bg_done(&t->bg, TIMEOUT_MS));       /* no wait */
	assert_int_equal(bg_join(&t->bg), 0);
	assert_true(kt_paused(t));
	assert_false(gpc_request_pending(t));
	assert_int_equal(kstats(t).gpc_requests, 0);
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	e_old = __atomic_load_n((uint64_t *)((char *)page_address(old) + RS_OFF(entries)),
				__ATOMIC_RELAXED);
	/* The old frame keeps counting (each access to a new page is an exit
	 * and an entry); the guest's page stays zero. */
	for (unsigned int i = 2; i < 6; i++)
		g_read(t, GPA(i));
	for (int ms = 0; ms < TIMEOUT_MS &&
	     __atomic_load_n((uint64_t *)((char *)page_address(old) + RS_OFF(entries)),
			     __ATOMIC_RELAXED) == e_old; ms++)
		sleep_ms(1);
	assert_true(__atomic_load_n((uint64_t *)((char *)page_address(old) + RS_OFF(entries)),
				    __ATOMIC_RELAXED) > e_old);
	assert_int_equal(rs_host(t, RS_OFF(entries)), 0);
	assert_int_not_equal(vcpu_stop(t->v), -EINVAL);
	put_page(old);
	kt_vcpu_start(t);
	kt_destroy(t);
}

/*
 * The OOM reaper's non-blockable invalidation, over the run-state page
 * while its vCPU is paused in guest mode: start returns 0 at once (no
 * wait), having marked the cache invalid and sent the request, and counts
 * the vCPU it found in guest mode. The page has no spte (only the host
 * writes it), so no TLB flush is involved.
 */
/* start and end on one thread (the range lock is the thread's); what the
 * test checks between them, recorded here. Static: kt_abandon. */
static struct oom_call {
	struct mmu_notifier_range r;
	bool paused, pending;
	struct kvm_stats k;
} oom_call;

static int bg_oom_range(struct kt *t, uintptr_t arg)
{
	int ret = mmu_notifier_invalidate_range_start_nonblock(&oom_call.r);

	(void)arg;
	if (ret)
		return ret;
	oom_call.paused = kt_paused(t);
	oom_call.pending = gpc_request_pending(t);
	oom_call.k = kstats(t);
	mmu_notifier_invalidate_range_end(&oom_call.r);
	return 0;
}

static void test_oom_reap_does_not_wait_for_guest_mode(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct kvm_stats k0, *k1 = &oom_call.k;

	rs_paused_in_guest(t);
	k0 = kstats(t);
	memset(&oom_call, 0, sizeof(oom_call));
	mmu_notifier_range_init(&oom_call.r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA(RS_PAGE),
				HVA(RS_PAGE + 1));
	bg_start(&t->bg, bg_oom_range, t, 0);
	assert_true(bg_done(&t->bg, TIMEOUT_MS));       /* while still paused */
	assert_int_equal(bg_join(&t->bg), 0);
	assert_true(oom_call.paused);
	assert_true(oom_call.pending);
	assert_true(kt_paused(t));
	assert_int_equal(k1->gpc_invalidations - k0.gpc_invalidations, 1);
	assert_int_equal(k1->gpc_requests - k0.gpc_requests, 1);
	assert_int_equal(k1->gpc_nonblock_in_guest - k0.gpc_nonblock_in_guest, 1);
	assert_int_equal(k1->gpc_request_waits, k0.gpc_request_waits);
	kt_release(t);
	/* The vCPU handles the request when it next leaves guest mode. */
	wait_request_handled(t);
	kt_destroy(t);
}

/*
 * Deactivate racing an invalidation: with kvm's start done (cache marked
 * invalid) and the invalidation held open before its end, deactivate
 * completes without waiting for the end, takes the cache off the list,
 * and a refresh then refuses (inactive); the end finds nothing of it. A
 * deactivate racing a refresh paused after its GUP waits for it (the
 * refresh lock) and leaves the cache inactive with nothing mapped.
 */
static int bg_deactivate(struct kt *t, uintptr_t arg)
{
	(void)t;
	kvm_gpc_deactivate((struct gfn_to_pfn_cache *)arg);
	return 0;
}

static void test_deactivate_races_invalidation(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU | KT_REC_AFTER_KVM);
	struct pause_once p;
	struct gfn_to_pfn_cache gpc;
	struct refresher r;
	struct bg bg;

	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(10), 8), 0);
	rec_arm(&t->rec, &(struct rec_trigger){ .kinds = REC_F(REC_START),
						.start = HVA(10), .end = HVA(10) + P,
						.pause = true });
	bg_start(&bg, bg_dontneed, t, HVA(10));
	assert_true(rec_wait_paused(&t->rec, TIMEOUT_MS));
	assert_false(gpc_valid(&gpc));
	kvm_gpc_deactivate(&gpc);               /* does not wait for the end */
	assert_null(t->kvm->gpc_list);
	assert_null(gpc.khva);
	assert_int_equal(kvm_gpc_refresh(&gpc, 8), -EINVAL);
	rec_resume(&t->rec);
	assert_int_equal(bg_join(&bg), 0);
	assert_int_equal(gpc.stat.invalidations, 1);

	/* Against a refresh paused after its GUP. */
	pause_once_init(&p);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(10), 8), 0);
	assert_int_equal(mm_madvise(t->mm, HVA(10), P, MADV_DONTNEED), 0);
	pause_once_arm(&p);
	kvm_set_test_hook(t->kvm, gup_pause_hook, &p);
	refresher_start(&r, &gpc);
	assert_true(pause_once_wait(&p, TIMEOUT_MS));
	bg_start(&bg, bg_deactivate, t, (uintptr_t)&gpc);
	assert_false(bg_done(&bg, BLOCK_MS));   /* behind the refresh */
	pause_once_release(&p);
	assert_int_equal(refresher_join(&r), 0);
	assert_int_equal(bg_join(&bg), 0);
	kvm_set_test_hook(t->kvm, NULL, NULL);
	assert_null(t->kvm->gpc_list);
	assert_false(gpc_valid(&gpc));
	assert_null(gpc.khva);
	assert_int_equal(mm_madvise(t->mm, HVA(10), P, MADV_DONTNEED), 0);
	assert_int_equal(gpc.stat.invalidations, 2);    /* the second activation's
							 * DONTNEED; not this one */
	kvm_gpc_destroy(&gpc);
	pause_once_destroy(&p);
	kt_destroy(t);
}

/* ---- the cache lock ------------------------------------------------------ */

struct locker {
	struct gfn_to_pfn_cache *gpc;
	pthread_t th;
	pthread_mutex_t m;
	pthread_cond_t c;
	bool in, leave;
	atomic_long done;
};

/* A reader on its own thread: read-lock, say so, hold until told. */
static void *reader_thread(void *arg)
{
	struct locker *l = arg;

	kvm_gpc_read_lock(l->gpc);
	pthread_mutex_lock(&l->m);
	l->in = true;
	pthread_cond_broadcast(&l->c);
	wait_flag(&l->m, &l->c, &l->leave, TIMEOUT_MS);
	pthread_mutex_unlock(&l->m);
	kvm_gpc_read_unlock(l->gpc);
	atomic_store(&l->done, 1);
	return NULL;
}

static void locker_release(struct locker *l)
{
	pthread_mutex_lock(&l->m);
	l->leave = true;
	pthread_cond_broadcast(&l->c);
	pthread_mutex_unlock(&l->m);
}

static void test_lock_readers_and_writers(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct gfn_to_pfn_cache gpc;
	struct locker l = { .gpc = &gpc };
	struct bg bg;

	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(11), 8), 0);
	sync_init(&l.m, &l.c);

	/* A reader in its section holds off the invalidation's write lock. */
	atomic_init(&l.done, 0);
	assert_int_equal(pthread_create(&l.th, NULL, reader_thread, &l), 0);
	pthread_mutex_lock(&l.m);
	assert_true(wait_flag(&l.m, &l.c, &l.in, TIMEOUT_MS));
	pthread_mutex_unlock(&l.m);
	bg_start(&bg, bg_dontneed, t, HVA(11));
	assert_false(bg_done(&bg, BLOCK_MS));
	assert_int_equal(gpc.stat.invalidations, 0);
	locker_release(&l);
	assert_int_equal(bg_join(&bg), 0);
	pthread_join(l.th, NULL);
	assert_int_equal(gpc.stat.invalidations, 1);

	/* A writer holds off a new reader. */
	l.in = l.leave = false;
	atomic_store(&l.done, 0);
	gpc_write_lock(&gpc);
	assert_int_equal(pthread_create(&l.th, NULL, reader_thread, &l), 0);
	sleep_ms(BLOCK_MS);
	pthread_mutex_lock(&l.m);
	assert_false(l.in);
	pthread_mutex_unlock(&l.m);
	gpc_write_unlock(&gpc);
	pthread_mutex_lock(&l.m);
	assert_true(wait_flag(&l.m, &l.c, &l.in, TIMEOUT_MS));
	pthread_mutex_unlock(&l.m);
	locker_release(&l);
	assert_true(wait_until_long(&l.done, 1, TIMEOUT_MS));
	pthread_join(l.th, NULL);

	/* Nested sections of two caches on one thread. */
	struct gfn_to_pfn_cache g2;

	kvm_gpc_init(&g2, t->kvm);
	assert_int_equal(kvm_gpc_activate(&g2, GPA(12), 8), 0);
	kvm_gpc_read_lock(&gpc);
	kvm_gpc_read_lock(&g2);
	kvm_gpc_read_unlock(&gpc);
	kvm_gpc_read_unlock(&g2);
	kvm_gpc_destroy(&g2);
	kvm_gpc_destroy(&gpc);
	sync_destroy(&l.m, &l.c);
	kt_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KT_TEST(test_activate_writes_guest_page),
		KT_TEST(test_refresh_paused_after_gup_retries),
		KT_TEST(test_refresh_sleeps_during_invalidation),
		KT_TEST(test_break_gpc_invalidate),
		KT_TEST(test_memslot_change_fails_check),
		KT_TEST(test_deactivate_leaves_nothing),
		KT_TEST(test_writes_follow_the_host),
		KT_TEST(test_runstate_bad_input),
		KT_TEST(test_runstate_first_write_checks_cache),
		KT_TEST(test_runstate_accounts_time),
		KT_TEST(test_guest_mode_invalidation_waits_for_vcpu),
		KT_TEST(test_guest_mode_invalidation_vcpu_outside),
		KT_TEST(test_second_invalidation_waits_too),
		KT_TEST(test_slot_delete_reaches_guest_mode_cache),
		KT_TEST(test_break_gpc_request),
		KT_TEST(test_oom_reap_does_not_wait_for_guest_mode),
		KT_TEST(test_deactivate_races_invalidation),
		KT_TEST(test_lock_readers_and_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
