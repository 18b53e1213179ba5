/* SPDX-License-Identifier: MIT */
/*
 * test_flush.c - remote TLB flushes and guest mode (tests/harness/
 * kvm_fixture.h): a TLB-flush request (and so an invalidation that zaps)
 * does not return while a vCPU is still in guest mode in the WAIT kick
 * mode, and does not wait for it in RSEQ mode, where the vCPU's next
 * access sees the request; a request that lands just before guest entry
 * is seen on entry; a request the vCPU consumed before the requester
 * looked is not waited for again. With KVM_BREAK_FLUSH_WAIT the host
 * frees a frame while a paused vCPU's soft TLB still maps it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdatomic.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/cpu.h"
#include "host/internal.h"
#include "kvm/kvm_host.h"
#include "harness/kvm_fixture.h"
#include "harness/util.h"

static int bg_flush_all(struct kt *t, uintptr_t unused)
{
	kvm_make_all_cpus_request(t->kvm, KVM_REQ_TLB_FLUSH, true);
	return 0;
}

static void test_flush_request_waits_for_guest_mode(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct vcpu_stats st0, st1;
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* page 0 in the soft TLB */
	pause_in_guest(t, 1);
	uint32_t epoch0 = atomic_load(&t->v->kvm_vcpu.exit_epoch);

	bg_start(bg, bg_flush_all, t, 0);
	assert_false(bg_done(bg, BLOCK_MS));
	/* Kicked (EXITING), not out: the requester still waits. */
	assert_int_not_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.exit_epoch), epoch0);
	assert_true(kt_paused(t));

	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	assert_true(atomic_load(&t->v->kvm_vcpu.exit_epoch) != epoch0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, &st0), 0);

	/* Page 0 is no longer in the soft TLB: its next read walks. */
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_true(st1.stlb_flushes > st0.stlb_flushes);
	kt_destroy(t);
}

/*
 * The lost wake-up (a waiting flush that hung `tandem bench kvm`): the vCPU
 * sees the request between the requester's setting of the bit and its read
 * of exit_epoch, exits, flushes, consumes the bit and enters guest mode
 * again; the requester then finds it in guest mode with nothing pending.
 * The hook holds the requester at that point until all of that happened.
 * The request must return: the vCPU did what was asked, and an idle guest
 * has no reason to exit again (waiting for exit_epoch alone slept until
 * the test's teardown stopped the vCPU).
 */
static void test_flush_request_consumed_before_snapshot(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct kt_reentry h = { 0 };
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* idle in guest mode */
	atomic_store(&h.armed, true);
	kvm_set_test_hook(t->kvm, kt_wait_reentry, &h);
	bg_start(bg, bg_flush_all, t, 0);
	assert_true(bg_done(bg, TIMEOUT_MS));
	assert_true(atomic_load(&h.reentered));         /* the interleaving happened */
	assert_int_equal(bg_join(bg), 0);
	kvm_set_test_hook(t->kvm, NULL, NULL);
	kt_destroy(t);
}

/*
 * The same through the host: a DONTNEED of a page the vCPU has mapped must
 * not return, and the host must not take the frame back, while the vCPU is
 * in guest mode (it could be using the old translation). With the flush
 * wait broken, the host frees the frame while the vCPU's soft TLB still
 * points at it.
 */
static void invalidation_vs_guest_mode(unsigned int breaks)
{
	bool broken = breaks & KVM_BREAK_FLUSH_WAIT;
	struct kt *t = kt_create(breaks, KT_KICK_WAIT);
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(0) + 8, 7);
	pfn_t old_pfn = host_pfn(t, HVA(0));

	assert_int_equal(g_read(t, GPA(0) + 8), 7);
	pause_in_guest(t, 1);
	bg_start(bg, bg_dontneed, t, HVA(0));
	if (!broken) {
		assert_false(bg_done(bg, BLOCK_MS));
		/* Held in invalidate_range_start: the spte is gone, the PTE
		 * and the frame not yet. */
		assert_true(wait_zapped(t, 0, TIMEOUT_MS));
		assert_int_equal(host_pfn(t, HVA(0)), old_pfn);
		assert_true(kt_paused(t));
		kt_release(t);
		assert_int_equal(bg_join(bg), 0);
	} else {
		assert_true(bg_done(bg, TIMEOUT_MS));
		assert_true(kt_paused(t));
		assert_int_not_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
		assert_false(pte_present(mm_lookup_pte(t->mm, HVA(0))));
		/* The paused vCPU's soft TLB still maps the freed frame. */
		struct stlb_entry *e = stlb_entry(t->v, GPA(0));

		assert_int_equal(e->addr_read, GPA(0));
		assert_ptr_equal((void *)(e->addend + GPA(0)),
				 page_address(pfn_to_page(t->h, old_pfn)));
		kt_release(t);
		assert_int_equal(bg_join(bg), 0);
	}
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	/* Either way the request is seen before the next access. */
	assert_int_equal(g_read(t, GPA(0) + 8), 0);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

static void test_invalidation_waits_for_guest_mode(void **state)
{
	invalidation_vs_guest_mode(0);
}

/*
 * RSEQ kick mode: the invalidation does not wait for a vCPU in guest mode
 * (it may be preempted there for a scheduler tick), because that vCPU's
 * next access is an rseq section that checks the request first, and one
 * already inside a section is aborted by membarrier. So: with the vCPU
 * held in guest mode, DONTNEED returns and the host frees the frame; when
 * the vCPU goes on, its access takes the slow path (request seen, soft TLB
 * flushed) and page 0 reads back zero, never the freed frame.
 */
static void test_rseq_invalidation_does_not_wait(void **state)
{
	if (!kvm_rseq_available())
		skip(); /* sanitizer builds: the asm path is compiled out */
	struct kt *t = kt_create(0, KT_KICK_RSEQ);
	struct bg *bg = &t->bg;
	struct vcpu_stats st0, st1;

	assert_int_equal(kvm_kick_mode(t->kvm), KVM_KICK_RSEQ);
	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);
	pause_in_guest(t, 1);
	bg_start(bg, bg_dontneed, t, HVA(0));
	assert_true(bg_done(bg, TIMEOUT_MS));
	assert_int_equal(bg_join(bg), 0);
	assert_true(kt_paused(t));
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.mode) == OUTSIDE_GUEST_MODE, false);
	assert_false(pte_present(mm_lookup_pte(t->mm, HVA(0))));
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, &st0), 0);
	assert_true(st0.stlb_flushes > 0);
	assert_int_equal(g_read(t, GPA(0) + 8), 0);
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * A vCPU that does nothing but hit its soft TLB -- a guest loop with no
 * other exit -- must still see a flush: every hit checks the request word
 * (in RSEQ mode, inside the restartable section). The guest spins on page
 * 3; the host drops the page and writes the new one. In WAIT mode the
 * DONTNEED returns only once the vCPU has left guest mode; in RSEQ mode at
 * once. Either way the guest must then read the new value, not keep
 * reading the frame the host took back.
 */
static void hit_sees_flush(unsigned int kick)
{
	struct kt *t = kt_create(0, kick);
	struct bg *bg = &t->bg;
	uint64_t end;
	bool returned, saw_new = false;

	host_store(t->mm, HVA(3) + 8, 7);
	assert_int_equal(g_read(t, GPA(3) + 8), 7);     /* in the soft TLB */
	atomic_store(&t->g.spin_stop, false);
	g_post(t, G_SPIN, GPA(3) + 8, 0);
	assert_true(wait_until_long((atomic_long *)&t->g.spin_reads, 10000, TIMEOUT_MS));

	bg_start(bg, bg_dontneed, t, HVA(3));
	returned = bg_done(bg, TIMEOUT_MS);
	if (returned) {
		host_store(t->mm, HVA(3) + 8, 9);
		end = ms_now() + TIMEOUT_MS;
		while (!(saw_new = atomic_load(&t->g.spin_last) == 9) && ms_now() < end)
			sleep_ms(1);
	}
	atomic_store(&t->g.spin_stop, true);            /* lets a stuck one go */
	assert_int_equal(bg_join(bg), 0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	assert_true(returned);                          /* WAIT: the vCPU left */
	assert_true(saw_new);                           /* the new frame, seen */
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

static void test_hit_sees_flush_wait(void **state)
{
	hit_sees_flush(KT_KICK_WAIT);
}

static void test_hit_sees_flush_rseq(void **state)
{
	if (!kvm_rseq_available())
		skip(); /* sanitizer builds: the asm path is compiled out */
	hit_sees_flush(KT_KICK_RSEQ);
}

/*
 * RSEQ mode: membarrier aborts the sections running at the time; a vCPU
 * in guest mode but between sections is not aborted, and it is the check
 * of the request word inside its next section that keeps it off the old
 * translation. The vCPU is held in guest mode just before its access to
 * page 3, whose soft-TLB entry it has just filled; the host drops page 3
 * (not waiting: RSEQ) and writes the new page. Released, the access must
 * see the request, refault, and read the new value -- not the frame the
 * host took back.
 */
static void test_rseq_section_checks_request(void **state)
{
	if (!kvm_rseq_available())
		skip(); /* sanitizer builds: the asm path is compiled out */
	struct kt *t = kt_create(0, KT_KICK_RSEQ);
	struct bg *bg = &t->bg;
	uint64_t out = 0;

	host_store(t->mm, HVA(3) + 8, 7);
	pause_in_guest(t, 3);                   /* entry filled, access next */
	bg_start(bg, bg_dontneed, t, HVA(3));
	assert_true(bg_done(bg, TIMEOUT_MS));   /* RSEQ: no wait for the vCPU */
	assert_int_equal(bg_join(bg), 0);
	assert_true(kt_paused(t));
	/* Page 4 takes the freed frame (the allocator is LIFO), so page 3's
	 * new frame is another one: a read through the old translation would
	 * see page 4's data. */
	host_store(t->mm, HVA(4) + 8, 0x44);
	host_store(t->mm, HVA(3) + 8, 9);
	assert_int_not_equal(host_pfn(t, HVA(3)), host_pfn(t, HVA(4)));
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, &out, NULL), 0);
	assert_int_equal(out, 9);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * RSEQ mode: the flush's membarrier aborts the sections running on other
 * CPUs, which is what lets the requester return without waiting while a
 * vCPU is mid-access. The vCPU, on a CPU of its own, is caught in a
 * section past its request and tag checks with the addend of page 3
 * loaded (G_HOLD: it spins there until released). The host drops page 3
 * and gives the freed frame to page 4. The membarrier must have restarted
 * the section: the load then refaults and never reads page 4's data
 * through the old addend. Without it the section would finish, once
 * released, on the frame the host took back.
 */
static void test_rseq_membarrier_aborts_running_section(void **state)
{
	if (!kvm_rseq_available())
		skip(); /* sanitizer builds: the asm path is compiled out */
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		skip(); /* the vCPU must be running while the host invalidates */
	struct kt *t = kt_create(0, KT_KICK_RSEQ);
	cpu_set_t vcpu_cpu, test_cpu, saved;
	struct vcpu_stats st0, st1;
	uint64_t out = 0, end;
	struct bg *bg = &t->bg;

	CPU_ZERO(&vcpu_cpu);
	CPU_SET(0, &vcpu_cpu);
	CPU_ZERO(&test_cpu);
	CPU_SET(1, &test_cpu);
	assert_int_equal(sched_getaffinity(0, sizeof(saved), &saved), 0);
	assert_int_equal(pthread_setaffinity_np(t->v->thread, sizeof(vcpu_cpu), &vcpu_cpu), 0);
	assert_int_equal(sched_setaffinity(0, sizeof(test_cpu), &test_cpu), 0);

	host_store(t->mm, HVA(3) + 8, 7);
	assert_int_equal(g_read(t, GPA(3) + 8), 7);     /* page 3 in the soft TLB */
	st0 = g_stats(t);
	t->g.hold_arrived = 0;
	t->g.hold_release = 0;
	g_post(t, G_HOLD, GPA(3) + 8, 0);
	end = ms_now() + TIMEOUT_MS;
	while (!__atomic_load_n(&t->g.hold_arrived, __ATOMIC_ACQUIRE) && ms_now() < end)
		sleep_ms(1);
	bool arrived = t->g.hold_arrived, returned = false;

	if (arrived) {                                  /* mid-section, running */
		bg_start(bg, bg_dontneed, t, HVA(3));
		returned = bg_done(bg, TIMEOUT_MS);     /* RSEQ: no wait */
		if (returned) {
			host_store(t->mm, HVA(4) + 8, 0x44);    /* takes the freed frame */
			host_store(t->mm, HVA(3) + 8, 9);
		}
	}
	/* Release the guest before any assertion: a held vCPU checks no
	 * request, and the teardown could not stop it. */
	__atomic_store_n(&t->g.hold_release, 1, __ATOMIC_RELEASE);
	assert_true(arrived);
	assert_true(returned);
	assert_int_equal(bg_join(bg), 0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, &out, &st1), 0);
	assert_int_equal(sched_setaffinity(0, sizeof(saved), &saved), 0);
	assert_true(out == 0 || out == 9);              /* not page 4's 0x44 */
	assert_true(st1.rseq_aborts > st0.rseq_aborts);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

static void test_invalidation_flush_wait_broken(void **state)
{
	invalidation_vs_guest_mode(KVM_BREAK_FLUSH_WAIT);
}

/*
 * A request that arrives while the vCPU is outside guest mode does not
 * wait for it; the vCPU must see it when it re-enters. Stop the vCPU with
 * a translation just put in its soft TLB, before it re-enters; the host
 * takes the page back meanwhile (the flush does not wait: the vCPU is
 * outside). On entry the vCPU must notice the request and walk again, not
 * use the entry it just filled.
 */
static void request_vs_guest_entry(unsigned int kick)
{
	struct kt *t = kt_create(0, kick);
	const unsigned int i = 7;
	struct bg *bg = &t->bg;
	uint64_t out = 1;

	host_store(t->mm, HVA(i) + 8, 0xA5);
	kt_arm(t, VCPU_HOOK_BEFORE_ENTER);
	g_post(t, G_LOAD, GPA(i) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	assert_true(is_shadow_present(gspte(t, i)));

	bg_start(bg, bg_dontneed, t, HVA(i));
	assert_true(bg_done(bg, TIMEOUT_MS));
	assert_int_equal(bg_join(bg), 0);
	assert_false(pte_present(mm_lookup_pte(t->mm, HVA(i))));
	assert_false(is_shadow_present(gspte(t, i)));

	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, &out, NULL), 0);
	assert_int_equal(out, 0);
	assert_int_equal(spte_to_pfn(gspte(t, i)), host_pfn(t, HVA(i)));
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/* WAIT mode: the access after entry is plain C (no request check of its
 * own), so the entry's check alone keeps it off the zapped frame. */
static void test_request_vs_guest_entry_wait(void **state)
{
	request_vs_guest_entry(KT_KICK_WAIT);
}

static void test_request_vs_guest_entry(void **state)
{
	request_vs_guest_entry(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KT_TEST(test_flush_request_waits_for_guest_mode),
		KT_TEST(test_flush_request_consumed_before_snapshot),
		KT_TEST(test_invalidation_waits_for_guest_mode),
		KT_TEST(test_invalidation_flush_wait_broken),
		KT_TEST(test_request_vs_guest_entry),
		KT_TEST(test_request_vs_guest_entry_wait),
		KT_TEST(test_rseq_invalidation_does_not_wait),
		KT_TEST(test_hit_sees_flush_wait),
		KT_TEST(test_hit_sees_flush_rseq),
		KT_TEST(test_rseq_section_checks_request),
		KT_TEST(test_rseq_membarrier_aborts_running_section),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
