/* SPDX-License-Identifier: MIT */
/*
 * test_aging.c - aging through the secondary MMU: what kvm answers when
 * the host asks whether a page is young, and whether reclaim, which asks,
 * keeps the pages only a guest uses.
 *
 * The young handlers (tests/harness/kvm_fixture.h): young means touched
 * (walked) since the last clear; clear_flush_young flushes the soft TLBs,
 * clear_young does not; with KVM_BREAK_AGING every answer is "old" while
 * the bits are still cleared and the flush still done.
 *
 * Reclaim's looks at one page only the guest uses, made old first: the
 * fixture's recorder makes the guest read it just after reclaim's first
 * look, or inside the unmap's invalidation; either way the page stays.
 *
 * Reclaim under a guest's hot loop (statistical): a VM of HOT_VM_PAGES
 * guest pages (one memslot, one vCPU) on a host with swap. Phase 1: the
 * guest writes every page once. Phase 2: the guest runs round and round a
 * fixed-seed hot set of HOT_PAGES pages (reading and checking each,
 * writing a per-lap value) while the test thread drives reclaim with
 * host_reclaim() in steps of HOT_STEP pages, until HOT_FIRST_N distinct
 * guest pages have been evicted. The host itself never touches guest
 * memory after phase 1: once reclaim's first look has cleared the hot
 * pages' host PTE accessed bits they stay old, and only the secondary
 * MMU's young bits (page_referenced -> mmu_notifier_clear_flush_young ->
 * kvm) can tell reclaim that the hot pages are in use.
 *
 *  - intact: at least 90 % of the first HOT_FIRST_N pages evicted are cold.
 *  - KVM_BREAK_AGING (kvm reports nothing young; it still clears and
 *    flushes): the hot set is evicted like any other page -- at least
 *    BREAK_MIN_HOT_PCT % of the first HOT_FIRST_N are hot (the hot share of
 *    guest RAM is 25 %) -- so it is the aging path that protects it.
 *
 * Which pages were evicted, and in which order, comes from the host's PTE
 * hook (a present PTE of the guest region turning into a swap entry), not
 * from polling the PTEs between steps: with the break, the guest faults an
 * evicted hot page back in at once, and a poll would often miss it.
 *
 * Pressure is host_reclaim() with kswapd off (no_kswapd), not allocation
 * by the host: the claim under test is which pages reclaim picks, not who
 * starts it, and calling it from the test thread lets the test pace it
 * against the guest. After each step the test waits until the guest has
 * run at least one full lap of the hot set that began after the step
 * ended, so every hot page is touched between any two reclaim steps
 * whatever the relative speed of the threads (TSan, a loaded machine).
 * Only the very first step can look at a page twice (its first lap finds
 * every page referenced, from phase 1, and activates it all); between the
 * two looks at a hot page lie the thousands of looks at the others.
 *
 * Integrity: the guest checks every hot page's contents on every lap; at
 * the end, with the vCPU stopped and restarted, it reads back all of guest
 * RAM (swapping the evicted pages in) and checks it. Teardown: every frame
 * and swap slot back, host_destroy() == 0.
 *
 * ./test_aging --break runs the hot loop's KVM_BREAK_AGING case only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/mmu_notifier.h"
#include "tandem/cpu.h"
#include "host/mm_types.h"
#include "host/internal.h"
#include "kvm/kvm_host.h"
#include "harness/kvm_fixture.h"
#include "harness/recorder.h"
#include "harness/util.h"

/* ==== the young handlers ================================================ */

/*
 * Aging: young means touched (walked) since the last clear. clear_flush_young
 * flushes the soft TLBs so the next access walks and is seen; clear_young
 * does not, so an access that hits the soft TLB stays unseen (approximate,
 * as in KVM).
 */
static void test_aging(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct vcpu_stats st0, st1;

	host_store(t->mm, HVA(0) + 8, 1);
	host_store(t->mm, HVA(1) + 8, 2);
	assert_int_equal(g_read(t, GPA(0) + 8), 1);
	assert_int_equal(g_read(t, GPA(1) + 8), 2);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(2)), 0);   /* unmapped */

	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA(0), HVA(2)), 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 0);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), 0);
	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA(0), HVA(2)), 0);

	/* Touch page 0 only: flushed, so the access walks and marks it. */
	st0 = g_stats(t);
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), 0);
	assert_int_equal(mmu_notifier_clear_young(t->mm, HVA(1), HVA(2)), 0);
	assert_true(is_shadow_present(gspte(t, 1)));    /* old is not gone */

	/* clear_young: no flush, the next access hits the soft TLB. */
	assert_int_equal(mmu_notifier_clear_young(t->mm, HVA(0), HVA(1)), 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 0);
	st0 = st1;
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow, st0.accesses_slow);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 0);

	/* Writes mark it too, through the walk. */
	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA(1), HVA(2)), 0);
	g_write(t, GPA(1) + 16, 3);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), 1);
	assert_true(kstats(t).age_calls > 0);
	kt_destroy(t);
}

/*
 * --break=aging: the guest touched pages 0 and 1 (their sptes are marked
 * accessed), yet test_young, clear_young and clear_flush_young report them
 * old; intact, they report them young. Broken or not, the handlers still
 * clear the bits and clear_flush_young still flushes: only the answer
 * differs.
 */
static void aging_vs_break(unsigned int breaks)
{
	const int young = !(breaks & KVM_BREAK_AGING);
	struct kt *t = kt_create(breaks, 0);
	struct vcpu_stats st0, st1;
	struct kvm_stats k0 = kstats(t);

	host_store(t->mm, HVA(0) + 8, 1);
	host_store(t->mm, HVA(1) + 8, 2);
	assert_int_equal(g_read(t, GPA(0) + 8), 1);
	assert_int_equal(g_read(t, GPA(1) + 8), 2);
	assert_true(gspte(t, 0) & SPTE_ACCESSED);
	assert_true(gspte(t, 1) & SPTE_ACCESSED);

	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), young);
	assert_true(gspte(t, 0) & SPTE_ACCESSED);       /* test changes nothing */
	assert_int_equal(mmu_notifier_clear_young(t->mm, HVA(0), HVA(1)), young);
	assert_false(gspte(t, 0) & SPTE_ACCESSED);
	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA(1), HVA(2)), young);
	assert_false(gspte(t, 1) & SPTE_ACCESSED);
	assert_true(is_shadow_present(gspte(t, 1)));

	/* The flush happened: touching page 1 walks and marks it again. */
	st0 = g_stats(t);
	assert_int_equal(g_load(t, GPA(1) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_true(gspte(t, 1) & SPTE_ACCESSED);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), young);
	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA_BASE,
							HVA_BASE + NPAGES * P), young);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), 0);
	assert_int_equal(kstats(t).age_calls - k0.age_calls, 6);
	kt_destroy(t);
}

static void test_aging_reports_young(void **state)
{
	aging_vs_break(0);
}

static void test_aging_broken_reports_nothing(void **state)
{
	aging_vs_break(KVM_BREAK_AGING);
}

/* ==== reclaim's looks at a page only the guest uses ===================== */

/*
 * Reclaim's looks at a page only a guest uses. The page is made old (host
 * and secondary young bits cleared, inactive: MADV_COLD) so that reclaim's
 * first look finds it unreferenced; then a probe subscriber makes the guest
 * read it at a chosen moment after that look -- through a walk (the probe
 * flushes the vCPU's soft TLB first), which sets the spte's accessed bit.
 * Either way reclaim must keep the page: the guest used it. A second page,
 * cold and only the host's, is what reclaim takes instead (one pass: one
 * look at each page, then the unmap).
 *
 *   during the first look (the probe's clear_flush_young, after kvm's):
 *     the second look (test_young, before any invalidation) sees it and
 *     keeps the page without a zap: the spte stays;
 *   during the unmap's invalidation (the probe's start, before kvm's): the
 *     zap passes the accessed bit to the page (mark_page_accessed), and
 *     the unmap keeps the page (resident, activated; the spte is gone).
 *
 * The probe is the fixture's recorder (tests/harness/recorder.h), whose
 * trigger runs guest_reads() once, at the chosen callback over the page.
 */
enum { PROBE_IN_AGING, PROBE_IN_START };

struct guest_read {
	struct kt *t;
	gpa_t gpa;
};

static void guest_reads(struct recorder *r, const struct rec_entry *call, void *arg)
{
	struct guest_read *gr = arg;

	kvm_make_all_cpus_request(gr->t->kvm, KVM_REQ_TLB_FLUSH, true);
	(void)g_read(gr->t, gr->gpa);
}

/* The subscriber list is walked newest first: registered before the VM
 * (KT_REC_AFTER_KVM) the probe runs after kvm's callbacks, registered after
 * the VM (KT_REC_BEFORE_KVM) before them. */
static void reclaim_vs_guest_use(int at)
{
	struct kt *t = kt_create(0, KT_SWAP | (at == PROBE_IN_AGING ? KT_REC_AFTER_KVM :
						       KT_REC_BEFORE_KVM));
	struct recorder *probe = &t->rec;
	const unsigned int i = 4, cold = 5;
	struct guest_read gr = { .t = t, .gpa = GPA(i) + 8 };

	g_write(t, GPA(i) + 8, 0xacce55ed);            /* the guest's page */
	host_store(t->mm, HVA(cold) + 8, 0xc01d);       /* the host's */
	assert_int_equal(mm_madvise(t->mm, HVA(i), 2 * P, MADV_COLD), 0);
	assert_false(gspte(t, i) & SPTE_ACCESSED);
	uint64_t steal = ht_event(t->h, PGSTEAL), act = ht_event(t->h, PGACTIVATE);
	unsigned long zapped = kstats(t).sptes_zapped;

	rec_arm(probe, &(struct rec_trigger){
		.kinds = at == PROBE_IN_AGING ? REC_F(REC_CLEAR_FLUSH_YOUNG) : REC_F(REC_START),
		.events = at == PROBE_IN_AGING ? 0 : REC_EV(MMU_NOTIFY_CLEAR),
		.start = HVA(i), .end = HVA(i) + P, .action = guest_reads, .arg = &gr });
	host_reclaim(t->h, 1);
	assert_int_equal(rec_fired(probe), 1);
	assert_true(pte_present(mm_lookup_pte(t->mm, HVA(i))));     /* kept */
	assert_false(pte_present(mm_lookup_pte(t->mm, HVA(cold))));  /* taken */
	assert_int_equal(ht_event(t->h, PGSTEAL), steal + 1);
	assert_int_equal(ht_event(t->h, PGACTIVATE), act + 1);
	if (at == PROBE_IN_AGING) {
		/* The second look kept it before any invalidation. */
		assert_true(is_shadow_present(gspte(t, i)));
		assert_int_equal(kstats(t).sptes_zapped, zapped);
	} else {
		assert_false(is_shadow_present(gspte(t, i)));
	}
	assert_int_equal(host_load(t->mm, HVA(cold) + 8), 0xc01d);  /* swapped in */
	assert_int_equal(g_read(t, GPA(i) + 8), 0xacce55ed);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

static void test_reclaim_second_look_test_young(void **state)
{
	reclaim_vs_guest_use(PROBE_IN_AGING);
}

static void test_reclaim_zap_carries_young(void **state)
{
	reclaim_vs_guest_use(PROBE_IN_START);
}

/* ==== reclaim under a guest's hot loop ================================== */

#define HOT_RAM        (32ULL << 20)
#define HOT_SWAP       (64ULL << 20)
#define HOT_VM_PAGES   4096             /* 16 MiB at HVA_BASE, GPA_BASE */
#define HOT_PAGES      1024
#define HOT_FIRST_N    512
#define HOT_STEP       32               /* pages per host_reclaim() call */
#define HOT_MAX_STEPS  2000
#define HOT_SEED       0xa61e5eedULL
#define MIN_COLD_PCT      90            /* intact */
#define BREAK_MIN_HOT_PCT 15            /* broken: hot share of RAM is 25 % */

static uint64_t hot_tag(uint32_t gfn)
{
	return 0xa9e0000000000000ULL ^ ((uint64_t)gfn * 0x9e3779b97f4a7c15ULL >> 16);
}

/* ---- the guest ---------------------------------------------------------- */

enum { HOT_FILL, HOT_LOOP, HOT_VERIFY };

struct hot_guest {
	int what;
	const uint32_t *hot;            /* HOT_PAGES gfn offsets */
	uint64_t *lapval;               /* per hot page: the last value stored
					 * at +8 (vCPU thread only while it runs) */
	atomic_long laps;
	atomic_bool done;
	/* First corruption the guest saw. */
	atomic_int bad;
	uint32_t bad_gfn;
	uint64_t bad_val, bad_want;
};

static gpa_t hot_gpa(uint32_t i, unsigned int off)
{
	return GPA_BASE + (gpa_t)i * P + off;
}

static int hot_check(struct hot_guest *g, uint32_t i, uint64_t val, uint64_t want)
{
	if (val == want)
		return 0;
	if (atomic_exchange(&g->bad, 1) == 0) {
		g->bad_gfn = i;
		g->bad_val = val;
		g->bad_want = want;
	}
	return -EIO;
}

static int hot_guest_main(struct vcpu *v, void *arg)
{
	struct hot_guest *g = arg;
	uint64_t val;
	int r = 0;

	switch (g->what) {
	case HOT_FILL:
		for (uint32_t i = 0; i < HOT_VM_PAGES && !r; i++)
			r = vcpu_store64(v, hot_gpa(i, 0), hot_tag(i));
		break;
	case HOT_LOOP:
		for (long lap = 1; !r && !vcpu_should_stop(v); lap++) {
			for (unsigned int k = 0; k < HOT_PAGES && !r; k++) {
				uint32_t i = g->hot[k];
				uint64_t next = hot_tag(i) ^ (uint64_t)lap;

				r = vcpu_load64(v, hot_gpa(i, 0), &val);
				if (!r)
					r = hot_check(g, i, val, hot_tag(i));
				if (!r)
					r = vcpu_load64(v, hot_gpa(i, 8), &val);
				if (!r)
					r = hot_check(g, i, val, g->lapval[k]);
				if (!r)
					r = vcpu_store64(v, hot_gpa(i, 8), next);
				if (!r)
					g->lapval[k] = next;
			}
			if (!r)
				atomic_fetch_add(&g->laps, 1);
		}
		break;
	case HOT_VERIFY:
		for (uint32_t i = 0, k; i < HOT_VM_PAGES && !r; i++) {
			r = vcpu_load64(v, hot_gpa(i, 0), &val);
			if (!r)
				r = hot_check(g, i, val, hot_tag(i));
			if (!r)
				r = vcpu_load64(v, hot_gpa(i, 8), &val);
			for (k = 0; k < HOT_PAGES && g->hot[k] != i; k++)
				;
			if (!r)
				r = hot_check(g, i, val, k < HOT_PAGES ? g->lapval[k] : 0);
		}
		break;
	}
	atomic_store(&g->done, true);
	return r == -EINTR ? 0 : r;
}

/* ---- eviction order, from the PTE hook ---------------------------------- */

struct evlog {
	struct mm *mm;
	atomic_uint n;                  /* distinct pages evicted */
	atomic_uint total;              /* evictions, repeats included */
	atomic_bool seen[HOT_VM_PAGES];
	uint32_t order[HOT_VM_PAGES];       /* first eviction of each page, in order */
};

static void evict_hook(void *arg, struct mm *mm, hva_t addr, pte_t old, pte_t new)
{
	struct evlog *ev = arg;

	if (mm != ev->mm || addr < HVA_BASE || addr >= HVA_BASE + (hva_t)HOT_VM_PAGES * P)
		return;
	if (!pte_present(old) || !pte_is_swap(new))
		return;
	uint32_t i = (uint32_t)((addr - HVA_BASE) / P);

	atomic_fetch_add(&ev->total, 1);
	if (!atomic_exchange(&ev->seen[i], true))
		ev->order[atomic_fetch_add(&ev->n, 1)] = i;
}

/* ---- the test ------------------------------------------------------------- */

static void hot_set(uint32_t *hot, bool *is_hot)
{
	static uint32_t perm[HOT_VM_PAGES];

	permute(perm, HOT_VM_PAGES, HOT_SEED);
	memset(is_hot, 0, HOT_VM_PAGES * sizeof(*is_hot));
	for (uint32_t k = 0; k < HOT_PAGES; k++) {
		hot[k] = perm[k];
		is_hot[perm[k]] = true;
	}
}

static void hot_run_guest(struct vcpu *v, struct hot_guest *g, int what)
{
	g->what = what;
	atomic_store(&g->done, false);
	assert_int_equal(vcpu_run(v, hot_guest_main, g), 0);
	for (double t0 = secs_now(); !atomic_load(&g->done); sleep_us(1000))
		assert_true(secs_now() - t0 < 60);
	assert_int_equal(vcpu_stop(v), 0);
	if (atomic_load(&g->bad))
		fail_msg("guest read %#llx from page %u, want %#llx",
			 (unsigned long long)g->bad_val, g->bad_gfn,
			 (unsigned long long)g->bad_want);
}

/* Returns the number of hot pages among the first HOT_FIRST_N evicted. */
static unsigned int run_aging(unsigned int kvm_breaks)
{
	struct host_config hcfg = { .ram_bytes = HOT_RAM, .swap_bytes = HOT_SWAP,
				    .no_kswapd = true };
	struct kvm_config kcfg = { .breaks = kvm_breaks };
	static uint32_t hot[HOT_PAGES];
	static uint64_t lapval[HOT_PAGES];
	static bool is_hot[HOT_VM_PAGES];
	static struct evlog ev;
	static struct hot_guest g;
	struct host *h;
	struct mm *mm;
	struct kvm *kvm;
	struct vcpu *v;
	struct host_stats st0, st;
	hva_t hva;
	double t0 = secs_now(), t1, t2;

	hot_set(hot, is_hot);
	memset(lapval, 0, sizeof(lapval));
	memset(&g, 0, sizeof(g));
	memset(&ev, 0, sizeof(ev));
	g.hot = hot;
	g.lapval = lapval;

	assert_int_equal(host_create(&hcfg, &h), 0);
	assert_int_equal(mm_create(h, &mm), 0);
	assert_int_equal(mm_mmap(mm, HVA_BASE, (uint64_t)HOT_VM_PAGES * P,
				 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				 &hva), 0);
	assert_int_equal(hva, HVA_BASE);
	assert_int_equal(kvm_create_vm(mm, &kcfg, &kvm), 0);
	struct kvm_userspace_memory_region r = {
		.slot = 0, .guest_phys_addr = GPA_BASE,
		.memory_size = (uint64_t)HOT_VM_PAGES * P, .userspace_addr = hva,
	};
	assert_int_equal(kvm_set_user_memory_region(kvm, &r), 0);
	assert_int_equal(vcpu_create(kvm, 0, &v), 0);

	/* Phase 1: the guest writes every page once. */
	hot_run_guest(v, &g, HOT_FILL);
	assert_int_equal(host_check_invariants(h), 0);
	for (uint32_t i = 0; i < HOT_VM_PAGES; i++)
		assert_true(pte_present(mm_lookup_pte(mm, hva + (hva_t)i * P)));
	host_get_stats(h, &st0);

	/* Phase 2: the hot loop runs; reclaim in paced steps. */
	ev.mm = mm;
	host_set_pte_hook(h, evict_hook, &ev);
	g.what = HOT_LOOP;
	atomic_store(&g.done, false);
	assert_int_equal(vcpu_run(v, hot_guest_main, &g), 0);
	while (atomic_load(&g.laps) < 1 && !atomic_load(&g.done))
		sleep_us(100);
	t1 = secs_now();
	unsigned int steps = 0;
	unsigned long freed = 0;
	long laps_max = 0;
	for (; atomic_load(&ev.n) < HOT_FIRST_N && steps < HOT_MAX_STEPS; steps++) {
		freed += host_reclaim(h, HOT_STEP);
		/* At least one full hot lap after the step: a lap in progress
		 * now completes (+1), then a whole one (+2). */
		long want = atomic_load(&g.laps) + 2;
		double w0 = secs_now();

		while (atomic_load(&g.laps) < want && !atomic_load(&g.done)) {
			sleep_us(50);
			if (secs_now() - w0 > 30)
				break;
		}
		if (atomic_load(&g.done) || atomic_load(&g.laps) < want)
			break;
		laps_max = atomic_load(&g.laps);
	}
	t2 = secs_now();
	int ret = vcpu_stop(v);

	host_set_pte_hook(h, NULL, NULL);
	if (atomic_load(&g.bad))
		fail_msg("hot loop read %#llx from page %u, want %#llx",
			 (unsigned long long)g.bad_val, g.bad_gfn,
			 (unsigned long long)g.bad_want);
	assert_int_equal(ret, 0);
	assert_false(atomic_load(&g.done) && ret);
	assert_true(atomic_load(&ev.n) >= HOT_FIRST_N);
	assert_int_equal(host_check_invariants(h), 0);
	host_get_stats(h, &st);

	unsigned int hot_first = 0, hot_all = 0, n = atomic_load(&ev.n);
	for (unsigned int k = 0; k < n; k++) {
		hot_all += is_hot[ev.order[k]];
		if (k < HOT_FIRST_N)
			hot_first += is_hot[ev.order[k]];
	}
	/* Hot pages whose host PTE is young (a diagnostic, not asserted):
	 * the host never touched guest HOT_RAM after phase 1, so a young bit was
	 * set by a guest re-fault through GUP -- after an eviction, or after
	 * an unmap attempt whose range_start zapped the spte and then found
	 * the page young and kept it. */
	unsigned int hot_young = 0;
	for (unsigned int k = 0; k < HOT_PAGES; k++) {
		pte_t pte = mm_lookup_pte(mm, hva + (hva_t)hot[k] * P);

		if (pte_present(pte) && pte_young(pte))
			hot_young++;
	}
	uint64_t sec = st.events[PGREFERENCED_SECONDARY] - st0.events[PGREFERENCED_SECONDARY];

	print_message("%s: first %u evicted: %u hot (%.1f %%), %u cold (%.1f %%); "
		      "all %u distinct evicted (%u evictions): %u hot; "
		      "%u steps, %lu freed, %ld hot laps; "
		      "scan %llu steal %llu activate %llu ref-secondary %llu "
		      "pswpout %llu pswpin %llu; hot young host PTEs %u; "
		      "setup %.2fs pressure %.2fs\n",
		      kvm_breaks ? "KVM_BREAK_AGING" : "intact", HOT_FIRST_N,
		      hot_first, 100.0 * hot_first / HOT_FIRST_N, HOT_FIRST_N - hot_first,
		      100.0 * (HOT_FIRST_N - hot_first) / HOT_FIRST_N, n,
		      atomic_load(&ev.total), hot_all, steps, freed, laps_max,
		      (unsigned long long)(st.events[PGSCAN] - st0.events[PGSCAN]),
		      (unsigned long long)(st.events[PGSTEAL] - st0.events[PGSTEAL]),
		      (unsigned long long)(st.events[PGACTIVATE] - st0.events[PGACTIVATE]),
		      (unsigned long long)sec,
		      (unsigned long long)(st.events[PSWPOUT] - st0.events[PSWPOUT]),
		      (unsigned long long)(st.events[PSWPIN] - st0.events[PSWPIN]),
		      hot_young, t1 - t0, t2 - t1);
	assert_true(st.events[PSWPOUT] - st0.events[PSWPOUT] >= HOT_FIRST_N);
	if (kvm_breaks & KVM_BREAK_AGING) {
		/* kvm saw the guest's accesses but reported none. */
		assert_int_equal(sec, 0);
	} else {
		assert_true(sec > 0);
	}

	/* Integrity: the guest reads all of its HOT_RAM back, swapping in. */
	uint64_t pswpin = st.events[PSWPIN];
	hot_run_guest(v, &g, HOT_VERIFY);
	host_get_stats(h, &st);
	assert_true(st.events[PSWPIN] > pswpin);
	assert_int_equal(host_check_invariants(h), 0);

	vcpu_destroy(v);
	kvm_destroy_vm(kvm);
	mmput(mm);
	assert_int_equal(host_check_invariants(h), 0);
	assert_int_equal(host_frames_in_use(h), 0);
	host_get_stats(h, &st);
	assert_int_equal(st.swap_free_slots, st.swap_slots);
	assert_int_equal(st.nr_mms, 0);
	assert_int_equal(host_destroy(h), 0);
	return hot_first;
}

static void test_aging_protects_hot(void **state)
{
	unsigned int hot = run_aging(0);

	/* >= 90 % of the first HOT_FIRST_N evictions cold. */
	assert_true((HOT_FIRST_N - hot) * 100 >= MIN_COLD_PCT * HOT_FIRST_N);
}

static void test_break_aging_evicts_hot(void **state)
{
	unsigned int hot = run_aging(KVM_BREAK_AGING);

	assert_true(hot * 100 >= BREAK_MIN_HOT_PCT * HOT_FIRST_N);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		KT_TEST(test_aging),
		KT_TEST(test_aging_reports_young),
		KT_TEST(test_aging_broken_reports_nothing),
		KT_TEST(test_reclaim_second_look_test_young),
		KT_TEST(test_reclaim_zap_carries_young),
		cmocka_unit_test(test_aging_protects_hot),
		cmocka_unit_test(test_break_aging_evicts_hot),
	};

	if (argc > 1 && !strcmp(argv[1], "--break"))
		cmocka_set_test_filter("test_break_aging_evicts_hot");
	else if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
