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
 *     remapped always writes the frame the guest sees, once refreshed.
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

/* ---- a pause at the refresh's KVM_HOOK_GPC_AFTER_GUP --------------------- */

struct gup_pause {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool armed, paused, released;
};

static void gup_pause_hook(struct kvm *kvm, enum kvm_hook_point at, struct kvm_vcpu *v,
			   void *arg)
{
	struct gup_pause *p = arg;

	(void)kvm;
	(void)v;
	if (at != KVM_HOOK_GPC_AFTER_GUP)
		return;
	pthread_mutex_lock(&p->m);
	if (p->armed) {
		p->armed = false;
		p->paused = true;
		pthread_cond_broadcast(&p->c);
		/* Bounded: a test that fails before it releases leaves a
		 * failure, not a hung thread. */
		wait_flag(&p->m, &p->c, &p->released, TIMEOUT_MS);
		p->paused = false;
	}
	pthread_mutex_unlock(&p->m);
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
	struct gup_pause p = { .armed = false };
	struct gfn_to_pfn_cache gpc;
	struct refresher r;
	pfn_t seen;

	sync_init(&p.m, &p.c);
	kvm_gpc_init(&gpc, t->kvm);
	assert_int_equal(kvm_gpc_activate(&gpc, GPA(3), 8), 0);
	assert_int_equal(mm_madvise(t->mm, HVA(3), P, MADV_DONTNEED), 0);
	assert_false(gpc_valid(&gpc));          /* invalidated before start returned */

	p.armed = true;
	kvm_set_test_hook(t->kvm, gup_pause_hook, &p);
	refresher_start(&r, &gpc);
	pthread_mutex_lock(&p.m);
	assert_true(wait_flag(&p.m, &p.c, &p.paused, TIMEOUT_MS));
	pthread_mutex_unlock(&p.m);
	seen = host_pfn(t, HVA(3));             /* the frame its GUP found */
	/* The host takes that frame back while the refresh holds no lock. */
	assert_int_equal(mm_madvise(t->mm, HVA(3), P, MADV_DONTNEED), 0);
	host_store(t->mm, HVA(3) + 8, 0x5eed);  /* a new frame */
	pthread_mutex_lock(&p.m);
	p.released = true;
	pthread_cond_broadcast(&p.c);
	pthread_mutex_unlock(&p.m);
	assert_int_equal(refresher_join(&r), 0);
	kvm_set_test_hook(t->kvm, NULL, NULL);

	assert_true(gpc.stat.retries >= 1);
	assert_int_equal(gpc.pfn, host_pfn(t, HVA(3)));
	(void)seen;
	gpc_write(&gpc, 0xabc);
	assert_int_equal(host_load(t->mm, HVA(3)), 0xabc);
	assert_int_equal(host_load(t->mm, HVA(3) + 8), 0x5eed);
	kvm_gpc_destroy(&gpc);
	sync_destroy(&p.m, &p.c);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
