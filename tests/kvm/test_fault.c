/* SPDX-License-Identifier: MIT */
/*
 * test_fault.c - kvm's fault path against a real host (tests/harness/
 * kvm_fixture.h): the sequence-retry idiom driven deterministically, and
 * what a fault installs.
 *
 * The retry (a kvm_config break that switches it off makes a variant
 * assert that the damage then shows):
 *   - a fault paused between GUP and mmu_lock while the host changes the
 *     PTE (DONTNEED, remap, COW break) retries and maps the current frame;
 *     with KVM_BREAK_SEQ_CHECK it maps the frame the host let go of;
 *   - the seq snapshot precedes GUP: an invalidation that runs while the
 *     fault is inside the host's own fault makes it retry;
 *   - a fault during an open invalidation (held open by the fixture's
 *     recorder) retries until its end; broken, it maps the old frame, which
 *     the host then frees under a present spte (the watcher sees it);
 *   - the bookkeeping: in_progress, seq, and the union of open ranges.
 *
 * What a fault installs: a clean page read-only for the fast path and
 * unpinned, the zero page read-only, a COW-shared page read-only until a
 * write breaks COW; the fast path makes writable only what may be; a
 * present spte replaced by another frame BUGs unless a break allows it;
 * change_pte updates or drops a present spte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/mmu_notifier.h"
#include "tandem/cpu.h"
#include "tandem/vmm.h"
#include "host/internal.h"
#include "kvm/kvm_host.h"
#include "harness/kvm_fixture.h"
#include "harness/util.h"

/* ==== a fault racing an invalidation retries ============================ */

enum host_change { CHANGE_DONTNEED, CHANGE_REMAP, CHANGE_COW };

/*
 * The vCPU reads page i for the first time and stops after GUP (it holds
 * the old frame, mmu_lock not taken). The host then changes the PTE and
 * the invalidation completes in full. Resumed, the fault must see the seq
 * bump, retry, and map the host's current frame; with the seq check
 * broken it maps the old one.
 */
static void fault_after_gup_vs_change(enum host_change change, unsigned int breaks)
{
	bool broken = breaks & KVM_BREAK_SEQ_CHECK;
	struct kt *t = kt_create(breaks, 0);
	const unsigned int i = 3;
	const gpa_t gpa = GPA(i) + 8;
	uint64_t want = 0, out = 0;
	struct mm *child = NULL;

	host_store(t->mm, HVA(i) + 8, 0xA1);
	pfn_t old_pfn = host_pfn(t, HVA(i));
	struct vcpu_stats st0 = g_stats(t), st1;
	struct kvm_stats k0 = kstats(t), k1;
	long gups0 = kt_hook_calls(t, VCPU_HOOK_AFTER_GUP);
	unsigned long seq0 = kvm_seq(t);

	kt_arm(t, VCPU_HOOK_AFTER_GUP);
	g_post(t, G_LOAD, gpa, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	assert_false(is_shadow_present(gspte(t, i)));

	switch (change) {
	case CHANGE_DONTNEED:
		assert_int_equal(mm_madvise(t->mm, HVA(i), P, MADV_DONTNEED), 0);
		assert_false(pte_present(mm_lookup_pte(t->mm, HVA(i))));
		want = 0;
		break;
	case CHANGE_REMAP:
		assert_int_equal(mm_munmap(t->mm, HVA(i), P), 0);
		ht_mmap(t->mm, HVA(i), P, HT_RW, HT_FIXED);
		host_store(t->mm, HVA(i) + 8, 0xB2);
		want = 0xB2;
		break;
	case CHANGE_COW:
		child = ht_fork(t->ht, t->mm);
		host_store(t->mm, HVA(i) + 8, 0xC3);    /* breaks COW in the parent */
		want = 0xC3;
		break;
	}
	assert_true(kvm_seq(t) > seq0);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, &out, &st1), 0);
	k1 = kstats(t);

	spte_t s = gspte(t, i);
	pte_t pte = mm_lookup_pte(t->mm, HVA(i));

	assert_true(is_shadow_present(s));
	if (!broken) {
		/* One retry, two GUPs, and the spte maps what the host maps. */
		assert_int_equal(k1.fault_retries - k0.fault_retries, 1);
		assert_int_equal(st1.fault_retries - st0.fault_retries, 1);
		assert_int_equal(kt_hook_calls(t, VCPU_HOOK_AFTER_GUP) - gups0, 2);
		assert_true(pte_present(pte));
		assert_int_equal(spte_to_pfn(s), pte_pfn(pte));
		assert_int_not_equal(spte_to_pfn(s), old_pfn);
		assert_int_equal(out, want);
		if (child) {
			/* The guest's writes go to the parent only. */
			assert_int_equal(host_load(child, HVA(i) + 8), 0xA1);
			g_write(t, gpa, 0xD4);
			assert_int_equal(host_load(t->mm, HVA(i) + 8), 0xD4);
			assert_int_equal(host_load(child, HVA(i) + 8), 0xA1);
		}
		assert_int_equal(atomic_load(&t->stale), 0);
	} else {
		/* No retry: the spte maps the frame the host let go of. */
		assert_int_equal(k1.fault_retries - k0.fault_retries, 0);
		assert_int_equal(spte_to_pfn(s), old_pfn);
		assert_true(!pte_present(pte) || pte_pfn(pte) != spte_to_pfn(s));
		if (child) {
			/* ... which is now the child's, mapped writable: the
			 * guest reads and writes another process's memory. */
			assert_int_equal(out, 0xA1);
			g_write(t, gpa, 0xD4);
			assert_int_equal(host_load(child, HVA(i) + 8), 0xD4);
			assert_int_equal(host_load(t->mm, HVA(i) + 8), 0xC3);
		}
	}
	kt_destroy(t);
}

static void test_fault_retry_dontneed(void **state)
{
	fault_after_gup_vs_change(CHANGE_DONTNEED, 0);
}

static void test_fault_retry_remap(void **state)
{
	fault_after_gup_vs_change(CHANGE_REMAP, 0);
}

static void test_fault_retry_cow(void **state)
{
	fault_after_gup_vs_change(CHANGE_COW, 0);
}

static void test_fault_retry_broken_dontneed(void **state)
{
	fault_after_gup_vs_change(CHANGE_DONTNEED, KVM_BREAK_SEQ_CHECK);
}

static void test_fault_retry_broken_remap(void **state)
{
	fault_after_gup_vs_change(CHANGE_REMAP, KVM_BREAK_SEQ_CHECK);
}

static void test_fault_retry_broken_cow(void **state)
{
	fault_after_gup_vs_change(CHANGE_COW, KVM_BREAK_SEQ_CHECK);
}

/*
 * The seq snapshot must come before the frame lookup. Stop the vCPU inside
 * GUP (the host installing the PTE it will return) and run a whole
 * invalidation meanwhile: the fault must retry. A snapshot taken after GUP
 * would miss it -- and with a real PTE change in that window, map a frame
 * the host had already taken back.
 */
static void test_fault_seq_snapshot_before_gup(void **state)
{
	struct kt *t = kt_create(0, 0);
	const unsigned int i = 6;
	struct mmu_notifier_range r;
	uint64_t out = 1;

	struct kvm_stats k0 = kstats(t);

	kt_arm_pte_change(t, HVA(i));
	g_post(t, G_LOAD, GPA(i) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	/* The vCPU is in the host's fault, under page_table_lock: only a
	 * range that changes no PTE can run now. */
	unsigned long seq0 = kvm_seq(t);

	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				t->mm, HVA(i), HVA(i) + P);
	mmu_notifier_invalidate_range_start(&r);
	mmu_notifier_invalidate_range_end(&r);
	assert_int_equal(kvm_seq(t), seq0 + 1);
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, &out, NULL), 0);
	assert_int_equal(out, 0);
	assert_int_equal(kstats(t).fault_retries - k0.fault_retries, 1);
	assert_int_equal(spte_to_pfn(gspte(t, i)), host_pfn(t, HVA(i)));
	kt_destroy(t);
}

/*
 * An invalidation held open between kvm's start and the host's PTE change
 * (the test's recorder is older, so it runs after kvm's start). The GUP
 * still finds the old frame; the fault must retry for as long as the range
 * is open and map the new PTE after end. Broken, it maps the old frame,
 * which the host then frees under a present spte: the watcher sees it.
 */
static void fault_during_open_invalidation(unsigned int breaks)
{
	bool broken = breaks & KVM_BREAK_SEQ_CHECK;
	struct kt *t = kt_create(breaks, KT_REC_AFTER_KVM);
	const unsigned int i = 5;
	const gpa_t gpa = GPA(i) + 8;
	struct bg *bg = &t->bg;
	hva_t rs, re;
	uint64_t out = 0;

	host_store(t->mm, HVA(i) + 8, 0xA1);
	pfn_t old_pfn = host_pfn(t, HVA(i));

	assert_int_equal(g_read(t, gpa), 0xA1);
	assert_true(is_shadow_present(gspte(t, i)));

	rec_arm(&t->rec, &(struct rec_trigger){ .kinds = REC_F(REC_START),
						.start = HVA(i), .end = HVA(i) + P,
						.pause = true });
	bg_start(bg, bg_dontneed, t, HVA(i));
	assert_true(rec_wait_paused(&t->rec, TIMEOUT_MS));
	/* kvm's start ran: count raised over the page, spte zapped; the host
	 * has not touched the PTE yet. */
	assert_int_equal(kvm_in_progress(t, &rs, &re), 1);
	assert_true(rs <= HVA(i) && HVA(i) + P <= re);
	assert_false(is_shadow_present(gspte(t, i)));
	assert_int_equal(host_pfn(t, HVA(i)), old_pfn);

	struct kvm_stats k0 = kstats(t);
	long gups0 = kt_hook_calls(t, VCPU_HOOK_AFTER_GUP);

	g_post(t, G_LOAD, gpa, 0);
	if (!broken) {
		/* It keeps retrying and installs nothing. */
		assert_true(wait_until_long(&t->p.calls[VCPU_HOOK_AFTER_GUP], gups0 + 3,
					    TIMEOUT_MS));
		assert_true(kstats(t).fault_retries - k0.fault_retries >= 2);
		assert_false(g_wait(t, 0));
		assert_false(is_shadow_present(gspte(t, i)));
		rec_resume(&t->rec);
		assert_int_equal(bg_join(bg), 0);
		assert_true(g_wait(t, TIMEOUT_MS));
		assert_int_equal(g_reply(t, &out, NULL), 0);
		assert_int_equal(out, 0);
		spte_t s = gspte(t, i);

		assert_true(is_shadow_present(s));
		assert_int_equal(spte_to_pfn(s), host_pfn(t, HVA(i)));
		assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
		assert_int_equal(atomic_load(&t->stale), 0);
	} else {
		/* It maps the old frame while the range is open ... */
		assert_true(g_wait(t, TIMEOUT_MS));
		assert_int_equal(g_reply(t, &out, NULL), 0);
		assert_int_equal(out, 0xA1);
		assert_int_equal(kstats(t).fault_retries, k0.fault_retries);
		assert_int_equal(spte_to_pfn(gspte(t, i)), old_pfn);
		/* ... and the host then frees it under that spte. */
		rec_resume(&t->rec);
		assert_int_equal(bg_join(bg), 0);
		assert_true(atomic_load(&t->stale) >= 1);
		assert_false(pte_present(mm_lookup_pte(t->mm, HVA(i))));
		assert_true(is_shadow_present(gspte(t, i)));
		assert_int_equal(spte_to_pfn(gspte(t, i)), old_pfn);
	}
	kt_destroy(t);
}

static void test_fault_retry_in_progress(void **state)
{
	fault_during_open_invalidation(0);
}

static void test_fault_retry_in_progress_broken(void **state)
{
	fault_during_open_invalidation(KVM_BREAK_SEQ_CHECK);
}

/*
 * Bookkeeping: in_progress returns to 0 and seq grows by exactly one per
 * start/end pair; open ranges widen to their union, which persists until
 * the last one ends; a fault outside the union is not held back, one
 * inside it retries until in_progress drops to 0.
 */
static void test_invalidate_bookkeeping(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct mmu_notifier_range r1, r2;
	hva_t rs, re;

	/* Host operations: seq advances by the number of pairs. */
	unsigned long seq0 = kvm_seq(t);
	struct kvm_stats k0 = kstats(t);

	host_store(t->mm, HVA(0), 1);
	assert_int_equal(mm_madvise(t->mm, HVA(0), P, MADV_DONTNEED), 0);
	assert_int_equal(kvm_seq(t), seq0 + 1);
	assert_int_equal(mm_mprotect(t->mm, HVA_BASE, NPAGES * P, PROT_READ), 0);
	assert_int_equal(mm_mprotect(t->mm, HVA_BASE, NPAGES * P, HT_RW), 0);
	assert_int_equal(mm_madvise(t->mm, HVA_BASE, NPAGES * P, MADV_DONTNEED), 0);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_true(kvm_seq(t) >= seq0 + 3);
	assert_int_equal(kvm_seq(t) - seq0, kstats(t).invalidations - k0.invalidations);

	/* Two overlapping ranges opened by this thread. */
	seq0 = kvm_seq(t);
	mmu_notifier_range_init(&r1, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				t->mm, HVA(2), HVA(6));
	mmu_notifier_range_init(&r2, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				t->mm, HVA(4), HVA(10));
	mmu_notifier_invalidate_range_start(&r1);
	assert_int_equal(kvm_in_progress(t, &rs, &re), 1);
	assert_int_equal(rs, HVA(2));
	assert_int_equal(re, HVA(6));
	mmu_notifier_invalidate_range_start(&r2);
	assert_int_equal(kvm_in_progress(t, &rs, &re), 2);
	assert_int_equal(rs, HVA(2));
	assert_int_equal(re, HVA(10));
	assert_int_equal(kvm_seq(t), seq0);

	/* Outside the union: no retry. */
	struct kvm_stats k1 = kstats(t);

	assert_int_equal(g_read(t, GPA(12)), 0);
	assert_true(is_shadow_present(gspte(t, 12)));
	assert_int_equal(kstats(t).fault_retries, k1.fault_retries);

	/* Inside r2 only: held back while either range is open (the union
	 * stays until in_progress is 0). */
	g_post(t, G_LOAD, GPA(8), 0);
	assert_true(wait_until_long(&t->p.calls[VCPU_HOOK_AFTER_GUP],
				    kt_hook_calls(t, VCPU_HOOK_AFTER_GUP) + 2, TIMEOUT_MS));
	assert_false(g_wait(t, 0));
	mmu_notifier_invalidate_range_end(&r2);
	assert_int_equal(kvm_in_progress(t, &rs, &re), 1);
	assert_int_equal(rs, HVA(2));
	assert_int_equal(re, HVA(10));
	assert_int_equal(kvm_seq(t), seq0 + 1);
	long gups = kt_hook_calls(t, VCPU_HOOK_AFTER_GUP);

	assert_true(wait_until_long(&t->p.calls[VCPU_HOOK_AFTER_GUP], gups + 2, TIMEOUT_MS));
	assert_false(g_wait(t, 0));
	assert_false(is_shadow_present(gspte(t, 8)));
	mmu_notifier_invalidate_range_end(&r1);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(kvm_seq(t), seq0 + 2);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	assert_true(is_shadow_present(gspte(t, 8)));
	assert_true(kstats(t).fault_retries - k1.fault_retries >= 4);
	kt_destroy(t);
}

/* ==== what a fault installs ============================================= */

/*
 * A read fault on a writable, exclusive host page maps it writable (clean),
 * and keeps no reference; on an unpopulated page it maps the zero page
 * read-only, and a write then faults a fresh frame in.
 */
static void test_fault_writable_and_no_pin(void **state)
{
	struct kt *t = kt_create(0, 0);

	host_store(t->mm, HVA(0) + 8, 0x11);
	struct page *page = pfn_to_page(t->h, host_pfn(t, HVA(0)));

	assert_int_equal(page_count(page), 1);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x11);
	spte_t s = gspte(t, 0);

	/* A read maps the clean page read-only, write-protected for the
	 * fast path (spte.h invariant 1). */
	assert_true(is_shadow_present(s));
	assert_int_equal(s & (SPTE_WRITABLE | SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE |
			      SPTE_ACCESSED | SPTE_DIRTY),
			 SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE | SPTE_ACCESSED);
	assert_int_equal(spte_to_pfn(s), page_to_pfn(page));
	assert_int_equal(page_count(page), 1);      /* the GUP reference is gone */
	assert_int_equal(page_mapcount(page), 1);

	/* Its first write: the lockless fast path makes it writable and
	 * dirty, without a slow fault (no GUP, no mmu_lock). */
	struct vcpu_stats sa = g_stats(t), sb;

	assert_int_equal(g_store(t, GPA(0) + 16, 0x12, &sb), 0);
	assert_int_equal(sb.fast_faults, sa.fast_faults + 1);
	assert_int_equal(sb.faults, sa.faults);
	s = gspte(t, 0);
	assert_int_equal(s & (SPTE_WRITABLE | SPTE_DIRTY), SPTE_WRITABLE | SPTE_DIRTY);
	assert_int_equal(spte_to_pfn(s), page_to_pfn(page));
	assert_int_equal(host_load(t->mm, HVA(0) + 16), 0x12);

	/* The zero page: read-only, not host-writable. */
	assert_int_equal(g_read(t, GPA(1) + 8), 0);
	s = gspte(t, 1);
	assert_true(is_shadow_present(s));
	assert_false(s & (SPTE_WRITABLE | SPTE_HOST_WRITABLE));
	assert_true(is_zero_pfn(t->h, spte_to_pfn(s)));

	/* A write: slow path, fresh frame, writable and dirty, unpinned. */
	struct vcpu_stats st0 = g_stats(t), st1;

	assert_int_equal(g_store(t, GPA(1) + 8, 0x22, &st1), 0);
	assert_int_equal(st1.fast_faults, st0.fast_faults);
	assert_true(st1.faults > st0.faults);
	s = gspte(t, 1);
	page = pfn_to_page(t->h, host_pfn(t, HVA(1)));
	assert_int_equal(spte_to_pfn(s), page_to_pfn(page));
	assert_true((s & (SPTE_WRITABLE | SPTE_DIRTY)) == (SPTE_WRITABLE | SPTE_DIRTY));
	assert_int_equal(page_count(page), 1);
	assert_int_equal(host_load(t->mm, HVA(1) + 8), 0x22);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * COW: after fork the parent's page is shared; a read fault maps it
 * read-only and not host-writable, the fast path refuses a write, and the
 * slow path breaks COW, leaving the child's copy alone.
 */
static void test_fault_cow_shared(void **state)
{
	struct kt *t = kt_create(0, 0);

	host_store(t->mm, HVA(0) + 8, 0x31);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x31);
	assert_true(spte_can_unsync_write(gspte(t, 0)));        /* before the fork */

	struct mm *child = ht_fork(t->ht, t->mm);
	pfn_t shared = host_pfn(t, HVA(0));

	assert_int_equal(host_pfn(t, HVA(0)), pte_pfn(mm_lookup_pte(child, HVA(0))));
	assert_false(is_shadow_present(gspte(t, 0)));  /* fork's invalidation */

	assert_int_equal(g_read(t, GPA(0) + 8), 0x31);
	spte_t s = gspte(t, 0);

	assert_true(is_shadow_present(s));
	assert_int_equal(spte_to_pfn(s), shared);
	assert_false(s & (SPTE_WRITABLE | SPTE_HOST_WRITABLE));
	assert_true(s & SPTE_MMU_WRITABLE);
	bool fast;

	assert_null(kvm_tdp_translate(t->kvm, GFN_BASE, true, &fast));
	assert_false(fast);
	assert_int_equal(gspte(t, 0), s);

	uint64_t brk = ht_event(t->h, COW_BREAK);
	struct vcpu_stats st0 = g_stats(t), st1;

	assert_int_equal(g_store(t, GPA(0) + 8, 0x32, &st1), 0);
	assert_int_equal(st1.fast_faults, st0.fast_faults);
	assert_int_equal(ht_event(t->h, COW_BREAK), brk + 1);
	s = gspte(t, 0);
	assert_int_not_equal(spte_to_pfn(s), shared);
	assert_int_equal(spte_to_pfn(s), host_pfn(t, HVA(0)));
	assert_true(s & SPTE_WRITABLE);
	assert_int_equal(host_load(t->mm, HVA(0) + 8), 0x32);
	assert_int_equal(host_load(child, HVA(0) + 8), 0x31);
	assert_int_equal(pte_pfn(mm_lookup_pte(child, HVA(0))), shared);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * The fast path: a present read-only spte that was host-writable at install
 * in a writable slot becomes writable without the slow path; without
 * HOST_WRITABLE or MMU_WRITABLE it stays read-only.
 */
static void test_fast_path(void **state)
{
	struct kt *t = kt_create(0, 0);
	const gfn_t gfn = GFN_BASE;
	bool fast;

	host_store(t->mm, HVA(0) + 8, 0x41);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x41);
	spte_t s = gspte(t, 0);
	spte_t ro = s & ~(SPTE_WRITABLE | SPTE_DIRTY);

	/* Refused without either permission bit; nothing changes. */
	spte_rewrite(t, gfn, ro & ~SPTE_HOST_WRITABLE);
	assert_null(kvm_tdp_translate(t->kvm, gfn, true, &fast));
	assert_int_equal(gspte(t, 0), ro & ~SPTE_HOST_WRITABLE);
	spte_rewrite(t, gfn, ro & ~SPTE_MMU_WRITABLE);
	assert_null(kvm_tdp_translate(t->kvm, gfn, true, &fast));
	assert_int_equal(gspte(t, 0), ro & ~SPTE_MMU_WRITABLE);

	/* Allowed with both: the guest's write takes the fast path. */
	spte_rewrite(t, gfn, ro);
	struct vcpu_stats st0 = g_stats(t), st1;
	struct kvm_stats k0 = kstats(t), k1;

	assert_int_equal(g_store(t, GPA(0) + 8, 0x42, &st1), 0);
	k1 = kstats(t);
	assert_int_equal(st1.fast_faults - st0.fast_faults, 1);
	assert_int_equal(st1.faults, st0.faults);
	assert_int_equal(k1.faults, k0.faults);
	assert_int_equal(k1.fast_faults - k0.fast_faults, 1);
	s = gspte(t, 0);
	assert_int_equal(s & (SPTE_WRITABLE | SPTE_DIRTY), SPTE_WRITABLE | SPTE_DIRTY);
	assert_int_equal(host_load(t->mm, HVA(0) + 8), 0x42);
	kt_destroy(t);
}

/*
 * A present spte replaced by one for another frame means an invalidation
 * was missed: tdp_mmu_set_spte BUGs, unless a break that can cause it (seq,
 * zap) is on, when the fault drops the stale spte and lets the checker
 * report the damage. Any other break -- aging here -- must keep the BUG.
 * Staged in a child process: a host whose DONTNEED skips its notifier
 * (HOST_BREAK_DONTNEED_NOTIFY) leaves the spte of page 0 pointing at the
 * freed frame, and a direct fault on page 0 then finds it. Returns the
 * child's wait status.
 */
static int stale_spte_child(unsigned int kvm_breaks)
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct host_config hc = { .ram_bytes = HT_RAM,
					  .breaks = HOST_BREAK_DONTNEED_NOTIFY };
		struct kvm_config kc = { .breaks = kvm_breaks, .kick = KVM_KICK_WAIT };
		struct host *h;
		struct vmm *vmm;
		struct vcpu *v;
		uint64_t val = 1;
		pfn_t old;

		if (host_create(&hc, &h) || vmm_create(h, &kc, &vmm) ||
		    vmm_add_ram(vmm, 0, 0, NPAGES * P, 0) || vmm_create_vcpu(vmm, 0, &v) ||
		    vmm_write_guest(vmm, 0, &val, sizeof(val)))
			_exit(10);
		struct kvm *kvm = vmm_kvm(vmm);
		hva_t hva = vmm_ram_hva(vmm, 0);

		if (kvm_mmu_page_fault(&v->kvm_vcpu, 0, true) != RET_PF_FIXED)
			_exit(11);
		old = spte_to_pfn(atomic_load(kvm_tdp_mmu_leaf(kvm, 0)));
		if (mm_madvise(vmm_mm(vmm), hva, P, MADV_DONTNEED))
			_exit(12);
		if (!is_shadow_present(atomic_load(kvm_tdp_mmu_leaf(kvm, 0))))
			_exit(13);      /* the notifier ran after all */
		/* Let page 1 take the freed frame, so page 0 gets another. */
		if (vmm_write_guest(vmm, P, &val, sizeof(val)))
			_exit(16);
		if (kvm_mmu_page_fault(&v->kvm_vcpu, 0, true) != RET_PF_FIXED)
			_exit(14);
		_exit(spte_to_pfn(atomic_load(kvm_tdp_mmu_leaf(kvm, 0))) != old ? 0 : 15);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_stale_spte_bug_only_under_its_breaks(void **state)
{
	int st;

	st = stale_spte_child(KVM_BREAK_SEQ_CHECK);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);           /* allowed: new frame mapped */
	st = stale_spte_child(KVM_BREAK_RANGE_ZAP);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = stale_spte_child(KVM_BREAK_AGING);
	assert_true(WIFSIGNALED(st));                   /* BUG: abort */
	assert_int_equal(WTERMSIG(st), SIGABRT);
	st = stale_spte_child(0);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
}

/*
 * change_pte on a present spte (outside start/end: the handler itself). A
 * new frame zaps; the same frame read-only drops write permission, host's
 * included, so the fast path cannot restore it; a read-only slot stays
 * write-protected whatever the PTE says.
 */
static void test_change_pte(void **state)
{
	struct kt *t = kt_create(0, 0);
	const pte_t rw = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER;
	const pte_t ro = _PAGE_PRESENT | _PAGE_USER;
	struct vcpu_stats st0, st1;
	bool fast;

	host_store(t->mm, HVA(0) + 8, 0x61);
	host_store(t->mm, HVA(1) + 8, 0x62);
	pfn_t f0 = host_pfn(t, HVA(0)), f1 = host_pfn(t, HVA(1));

	/* Same frame, read-only: write permission goes, and the soft TLB
	 * entry caching it too. */
	g_write(t, GPA(0) + 8, 0x63);
	st0 = g_stats(t);
	mmu_notifier_change_pte(t->mm, HVA(0), pfn_pte(f0, ro));
	spte_t s = gspte(t, 0);

	assert_true(is_shadow_present(s));
	assert_int_equal(spte_to_pfn(s), f0);
	assert_false(s & (SPTE_WRITABLE | SPTE_HOST_WRITABLE));
	assert_null(kvm_tdp_translate(t->kvm, GFN_BASE, true, &fast));
	assert_int_equal(g_store(t, GPA(0) + 8, 0x64, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_int_equal(st1.fast_faults, st0.fast_faults);
	assert_int_equal(host_load(t->mm, HVA(0) + 8), 0x64);

	/* A clean read-only spte that the fast path could make writable:
	 * a read-only PTE must take that right away too. */
	spte_rewrite(t, GFN_BASE, gspte(t, 0) & ~(SPTE_WRITABLE | SPTE_DIRTY));
	mmu_notifier_change_pte(t->mm, HVA(0), pfn_pte(f0, ro));
	s = gspte(t, 0);
	assert_true(is_shadow_present(s));
	assert_false(s & SPTE_HOST_WRITABLE);
	assert_null(kvm_tdp_translate(t->kvm, GFN_BASE, true, &fast));

	/* Another frame: zapped; the next access maps the host's own. */
	mmu_notifier_change_pte(t->mm, HVA(0), pfn_pte(f1, rw));
	assert_false(is_shadow_present(gspte(t, 0)));
	assert_int_equal(g_read(t, GPA(0) + 8), 0x64);
	assert_int_equal(spte_to_pfn(gspte(t, 0)), f0);

	/* Not present: zapped. */
	mmu_notifier_change_pte(t->mm, HVA(0), 0);
	assert_false(is_shadow_present(gspte(t, 0)));

	/* Same frame, writable PTE: a writable spte is left alone. */
	assert_int_equal(g_read(t, GPA(1) + 8), 0x62);
	s = gspte(t, 1);
	mmu_notifier_change_pte(t->mm, HVA(1), pfn_pte(f1, rw));
	assert_int_equal(gspte(t, 1), s);

	/* Read-only slot: a writable PTE does not make the spte writable. */
	ht_mmap(t->mm, HVA_RO, RO_PAGES * P, HT_RW, HT_FIXED);
	host_store(t->mm, HVA_RO, 0x65);
	kt_add_slot(t, 1, KVM_MEM_READONLY, GPA_RO, RO_PAGES * P, HVA_RO);
	assert_int_equal(g_read(t, GPA_RO), 0x65);
	mmu_notifier_change_pte(t->mm, HVA_RO, pfn_pte(host_pfn(t, HVA_RO), rw));
	s = spte_at(t, GPA_RO >> PAGE_SHIFT);
	assert_true(is_shadow_present(s));
	assert_false(s & SPTE_WRITABLE);
	assert_null(kvm_tdp_translate(t->kvm, GPA_RO >> PAGE_SHIFT, true, &fast));
	expect_mmio_write(t, GPA_RO, 0x66);
	assert_int_equal(host_load(t->mm, HVA_RO), 0x65);
	kt_destroy(t);
}

/*
 * A zapped dirty spte marks its page dirty: the guest wrote it through the
 * spte, and the host must not take the page for clean (swap would drop it
 * and keep the old copy). In this host a writable PTE is always dirty too,
 * so the test makes the page clean itself, as a writeback would, and lets
 * an mprotect downgrade zap the spte.
 */
static void test_zap_carries_dirty(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct page *page;

	g_write(t, GPA(3) + 8, 0x33);
	assert_true(gspte(t, 3) & SPTE_DIRTY);
	page = pfn_to_page(t->h, host_pfn(t, HVA(3)));
	ClearPageFlag(page, PG_dirty);
	assert_int_equal(mm_mprotect(t->mm, HVA(3), P, PROT_READ), 0);
	assert_false(is_shadow_present(gspte(t, 3)));
	assert_true(PageFlag(page, PG_dirty));
	assert_int_equal(mm_mprotect(t->mm, HVA(3), P, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(g_read(t, GPA(3) + 8), 0x33);
	kt_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KT_TEST(test_fault_retry_dontneed),
		KT_TEST(test_fault_retry_remap),
		KT_TEST(test_fault_retry_cow),
		KT_TEST(test_fault_retry_broken_dontneed),
		KT_TEST(test_fault_retry_broken_remap),
		KT_TEST(test_fault_retry_broken_cow),
		KT_TEST(test_fault_seq_snapshot_before_gup),
		KT_TEST(test_fault_retry_in_progress),
		KT_TEST(test_fault_retry_in_progress_broken),
		KT_TEST(test_invalidate_bookkeeping),
		KT_TEST(test_stale_spte_bug_only_under_its_breaks),
		KT_TEST(test_fault_writable_and_no_pin),
		KT_TEST(test_fault_cow_shared),
		KT_TEST(test_fast_path),
		KT_TEST(test_zap_carries_dirty),
		KT_TEST(test_change_pte),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
