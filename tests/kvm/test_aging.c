/* SPDX-License-Identifier: MIT */
/*
 * test_aging.c - reclaim ages guest-only pages through the secondary MMU.
 *
 * A VM of VM_PAGES guest pages (one memslot, one vCPU) on a host with swap.
 * Phase 1: the guest writes every page once. Phase 2: the guest runs round
 * and round a fixed-seed hot set of HOT_PAGES pages (reading and checking
 * each, writing a per-lap value) while the test thread drives reclaim with
 * host_reclaim() in steps of STEP pages, until FIRST_N distinct guest pages
 * have been evicted. The host itself never touches guest memory after
 * phase 1: once reclaim's first look has cleared the hot pages' host PTE
 * accessed bits they stay old, and only the secondary MMU's young bits
 * (page_referenced -> mmu_notifier_clear_flush_young -> kvm) can tell
 * reclaim that the hot pages are in use.
 *
 *  - intact: at least 90 % of the first FIRST_N pages evicted are cold.
 *  - KVM_BREAK_AGING (kvm reports nothing young; it still clears and
 *    flushes): the hot set is evicted like any other page -- at least
 *    BREAK_MIN_HOT_PCT % of the first FIRST_N are hot (the hot share of
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
 * ./test_aging --break runs the KVM_BREAK_AGING case only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/cpu.h"
#include "host/mm_types.h"
#include "host/internal.h"

#define P          PAGE_SIZE
#define RAM        (32ULL << 20)
#define SWAP       (64ULL << 20)
#define BASE       0x100000000ULL       /* hva of guest RAM */
#define GPA_BASE   0x40000000ULL
#define VM_PAGES   4096                 /* 16 MiB */
#define HOT_PAGES  1024
#define FIRST_N    512
#define STEP       32                   /* pages per host_reclaim() call */
#define MAX_STEPS  2000
#define SEED       0xa61e5eedULL
#define MIN_COLD_PCT      90            /* intact */
#define BREAK_MIN_HOT_PCT 15            /* broken: hot share of RAM is 25 % */

static uint64_t tag(uint32_t gfn)
{
	return 0xa9e0000000000000ULL ^ ((uint64_t)gfn * 0x9e3779b97f4a7c15ULL >> 16);
}

/* ---- the guest ---------------------------------------------------------- */

enum { G_FILL, G_HOT, G_VERIFY };

struct guest {
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

static gpa_t gpa(uint32_t i, unsigned int off)
{
	return GPA_BASE + (gpa_t)i * P + off;
}

static int check(struct guest *g, uint32_t i, uint64_t val, uint64_t want)
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

static int guest_main(struct vcpu *v, void *arg)
{
	struct guest *g = arg;
	uint64_t val;
	int r = 0;

	switch (g->what) {
	case G_FILL:
		for (uint32_t i = 0; i < VM_PAGES && !r; i++)
			r = vcpu_store64(v, gpa(i, 0), tag(i));
		break;
	case G_HOT:
		for (long lap = 1; !r && !vcpu_should_stop(v); lap++) {
			for (unsigned int k = 0; k < HOT_PAGES && !r; k++) {
				uint32_t i = g->hot[k];

				r = vcpu_load64(v, gpa(i, 0), &val);
				if (!r)
					r = check(g, i, val, tag(i));
				if (!r)
					r = vcpu_load64(v, gpa(i, 8), &val);
				if (!r)
					r = check(g, i, val, g->lapval[k]);
				if (!r)
					r = vcpu_store64(v, gpa(i, 8), tag(i) ^ (uint64_t)lap);
				if (!r)
					g->lapval[k] = tag(i) ^ (uint64_t)lap;
			}
			if (!r)
				atomic_fetch_add(&g->laps, 1);
		}
		break;
	case G_VERIFY:
		for (uint32_t i = 0, k; i < VM_PAGES && !r; i++) {
			r = vcpu_load64(v, gpa(i, 0), &val);
			if (!r)
				r = check(g, i, val, tag(i));
			if (!r)
				r = vcpu_load64(v, gpa(i, 8), &val);
			for (k = 0; k < HOT_PAGES && g->hot[k] != i; k++)
				;
			if (!r)
				r = check(g, i, val, k < HOT_PAGES ? g->lapval[k] : 0);
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
	atomic_bool seen[VM_PAGES];
	uint32_t order[VM_PAGES];       /* first eviction of each page, in order */
};

static void pte_hook(void *arg, struct mm *mm, hva_t addr, pte_t old, pte_t new)
{
	struct evlog *ev = arg;

	if (mm != ev->mm || addr < BASE || addr >= BASE + (hva_t)VM_PAGES * P)
		return;
	if (!pte_present(old) || !pte_is_swap(new))
		return;
	uint32_t i = (uint32_t)((addr - BASE) / P);

	atomic_fetch_add(&ev->total, 1);
	if (!atomic_exchange(&ev->seen[i], true))
		ev->order[atomic_fetch_add(&ev->n, 1)] = i;
}

/* ---- the test ------------------------------------------------------------- */

static void hot_set(uint32_t *hot, bool *is_hot)
{
	static uint32_t perm[VM_PAGES];
	uint64_t x = SEED;

	for (uint32_t i = 0; i < VM_PAGES; i++)
		perm[i] = i;
	for (uint32_t i = VM_PAGES - 1; i > 0; i--) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		uint32_t j = (uint32_t)((x >> 33) % (i + 1)), tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	memset(is_hot, 0, VM_PAGES * sizeof(*is_hot));
	for (uint32_t k = 0; k < HOT_PAGES; k++) {
		hot[k] = perm[k];
		is_hot[perm[k]] = true;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_us(long us)
{
	nanosleep(&(struct timespec){ .tv_nsec = us * 1000 }, NULL);
}

static void run_guest(struct vcpu *v, struct guest *g, int what)
{
	g->what = what;
	atomic_store(&g->done, false);
	assert_int_equal(vcpu_run(v, guest_main, g), 0);
	for (double t0 = now(); !atomic_load(&g->done); sleep_us(1000))
		assert_true(now() - t0 < 60);
	assert_int_equal(vcpu_stop(v), 0);
	if (atomic_load(&g->bad))
		fail_msg("guest read %#llx from page %u, want %#llx",
			 (unsigned long long)g->bad_val, g->bad_gfn,
			 (unsigned long long)g->bad_want);
}

/* Returns the number of hot pages among the first FIRST_N evicted. */
static unsigned int run_aging(unsigned int kvm_breaks)
{
	struct host_config hcfg = { .ram_bytes = RAM, .swap_bytes = SWAP,
				    .no_kswapd = true };
	struct kvm_config kcfg = { .breaks = kvm_breaks };
	static uint32_t hot[HOT_PAGES];
	static uint64_t lapval[HOT_PAGES];
	static bool is_hot[VM_PAGES];
	static struct evlog ev;
	static struct guest g;
	struct host *h;
	struct mm *mm;
	struct kvm *kvm;
	struct vcpu *v;
	struct host_stats st0, st;
	hva_t hva;
	double t0 = now(), t1, t2;

	hot_set(hot, is_hot);
	memset(lapval, 0, sizeof(lapval));
	memset(&g, 0, sizeof(g));
	memset(&ev, 0, sizeof(ev));
	g.hot = hot;
	g.lapval = lapval;

	assert_int_equal(host_create(&hcfg, &h), 0);
	assert_int_equal(mm_create(h, &mm), 0);
	assert_int_equal(mm_mmap(mm, BASE, (uint64_t)VM_PAGES * P, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &hva), 0);
	assert_int_equal(hva, BASE);
	assert_int_equal(kvm_create_vm(mm, &kcfg, &kvm), 0);
	struct kvm_userspace_memory_region r = {
		.slot = 0, .guest_phys_addr = GPA_BASE,
		.memory_size = (uint64_t)VM_PAGES * P, .userspace_addr = hva,
	};
	assert_int_equal(kvm_set_user_memory_region(kvm, &r), 0);
	assert_int_equal(vcpu_create(kvm, 0, &v), 0);

	/* Phase 1: the guest writes every page once. */
	run_guest(v, &g, G_FILL);
	assert_int_equal(host_check_invariants(h), 0);
	for (uint32_t i = 0; i < VM_PAGES; i++)
		assert_true(pte_present(mm_lookup_pte(mm, hva + (hva_t)i * P)));
	host_get_stats(h, &st0);

	/* Phase 2: the hot loop runs; reclaim in paced steps. */
	ev.mm = mm;
	host_set_pte_hook(h, pte_hook, &ev);
	g.what = G_HOT;
	atomic_store(&g.done, false);
	assert_int_equal(vcpu_run(v, guest_main, &g), 0);
	while (atomic_load(&g.laps) < 1 && !atomic_load(&g.done))
		sleep_us(100);
	t1 = now();
	unsigned int steps = 0;
	unsigned long freed = 0;
	long laps_max = 0;
	for (; atomic_load(&ev.n) < FIRST_N && steps < MAX_STEPS; steps++) {
		freed += host_reclaim(h, STEP);
		/* At least one full hot lap after the step: a lap in progress
		 * now completes (+1), then a whole one (+2). */
		long want = atomic_load(&g.laps) + 2;
		double w0 = now();

		while (atomic_load(&g.laps) < want && !atomic_load(&g.done)) {
			sleep_us(50);
			if (now() - w0 > 30)
				break;
		}
		if (atomic_load(&g.done) || atomic_load(&g.laps) < want)
			break;
		laps_max = atomic_load(&g.laps);
	}
	t2 = now();
	int ret = vcpu_stop(v);

	host_set_pte_hook(h, NULL, NULL);
	if (atomic_load(&g.bad))
		fail_msg("hot loop read %#llx from page %u, want %#llx",
			 (unsigned long long)g.bad_val, g.bad_gfn,
			 (unsigned long long)g.bad_want);
	assert_int_equal(ret, 0);
	assert_false(atomic_load(&g.done) && ret);
	assert_true(atomic_load(&ev.n) >= FIRST_N);
	assert_int_equal(host_check_invariants(h), 0);
	host_get_stats(h, &st);

	unsigned int hot_first = 0, hot_all = 0, n = atomic_load(&ev.n);
	for (unsigned int k = 0; k < n; k++) {
		hot_all += is_hot[ev.order[k]];
		if (k < FIRST_N)
			hot_first += is_hot[ev.order[k]];
	}
	/* Hot pages whose host PTE is young (a diagnostic, not asserted):
	 * the host never touched guest RAM after phase 1, so a young bit was
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
		      kvm_breaks ? "KVM_BREAK_AGING" : "intact", FIRST_N,
		      hot_first, 100.0 * hot_first / FIRST_N, FIRST_N - hot_first,
		      100.0 * (FIRST_N - hot_first) / FIRST_N, n,
		      atomic_load(&ev.total), hot_all, steps, freed, laps_max,
		      (unsigned long long)(st.events[PGSCAN] - st0.events[PGSCAN]),
		      (unsigned long long)(st.events[PGSTEAL] - st0.events[PGSTEAL]),
		      (unsigned long long)(st.events[PGACTIVATE] - st0.events[PGACTIVATE]),
		      (unsigned long long)sec,
		      (unsigned long long)(st.events[PSWPOUT] - st0.events[PSWPOUT]),
		      (unsigned long long)(st.events[PSWPIN] - st0.events[PSWPIN]),
		      hot_young, t1 - t0, t2 - t1);
	assert_true(st.events[PSWPOUT] - st0.events[PSWPOUT] >= FIRST_N);
	if (kvm_breaks & KVM_BREAK_AGING) {
		/* kvm saw the guest's accesses but reported none. */
		assert_int_equal(sec, 0);
	} else {
		assert_true(sec > 0);
	}

	/* Integrity: the guest reads all of its RAM back, swapping in. */
	uint64_t pswpin = st.events[PSWPIN];
	run_guest(v, &g, G_VERIFY);
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

	/* >= 90 % of the first FIRST_N evictions cold. */
	assert_true((FIRST_N - hot) * 100 >= MIN_COLD_PCT * FIRST_N);
}

static void test_break_aging_evicts_hot(void **state)
{
	unsigned int hot = run_aging(KVM_BREAK_AGING);

	assert_true(hot * 100 >= BREAK_MIN_HOT_PCT * FIRST_N);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aging_protects_hot),
		cmocka_unit_test(test_break_aging_evicts_hot),
	};

	if (argc > 1 && !strcmp(argv[1], "--break"))
		cmocka_set_test_filter("test_break_aging_evicts_hot");
	else if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
