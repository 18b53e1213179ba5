/* SPDX-License-Identifier: MIT */
/*
 * test_swap.c - swap and reclaim on the host alone: an overcommitted mm
 * keeps its data, fork shares slots, injected write failures lose nothing,
 * read failures fail the access with -EIO, and every frame and slot comes
 * back at teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>
#include "tandem/host.h"
#include "host/internal.h"
#include "tandem/mmu_notifier.h"
#include "base/rcu.h"
#include "harness/recorder.h"
#include "harness/util.h"
#include <pthread.h>
#include <stdatomic.h>

#define RAM   (16ULL << 20)
#define SWAP  (64ULL << 20)
#define BASE  0x100000000ULL

static struct host *mkhost(uint64_t ram, uint64_t swap, bool kswapd)
{
	struct host *h;
	struct host_config cfg = { .ram_bytes = ram, .swap_bytes = swap,
				   .no_kswapd = !kswapd };

	assert_int_equal(host_create(&cfg, &h), 0);
	return h;
}

static void teardown_host(struct host *h)
{
	struct host_stats st;

	assert_int_equal(host_check_invariants(h), 0);
	assert_int_equal(host_frames_in_use(h), 0);
	host_get_stats(h, &st);
	assert_int_equal(st.swap_free_slots, st.swap_slots);
	assert_int_equal(host_destroy(h), 0);
}

static uint64_t tag(unsigned int i, unsigned int gen)
{
	return 0x5a5a000000000000ULL ^ ((uint64_t)gen << 32) ^ i;
}

static void write_pages(struct mm *mm, hva_t base, unsigned int n, unsigned int gen)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t v = tag(i, gen);

		assert_int_equal(mm_write(mm, base + (hva_t)i * PAGE_SIZE + 64, &v, 8), 8);
	}
}

static void check_pages(struct mm *mm, hva_t base, unsigned int n, unsigned int gen)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t v = 0;

		assert_int_equal(mm_read(mm, base + (hva_t)i * PAGE_SIZE + 64, &v, 8), 8);
		assert_int_equal(v, tag(i, gen));
	}
}

static struct mm *map(struct host *h, uint64_t bytes)
{
	struct mm *mm;
	hva_t a;

	assert_int_equal(mm_create(h, &mm), 0);
	assert_int_equal(mm_mmap(mm, BASE, bytes, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &a), 0);
	return mm;
}

/* Twice the RAM written and read back: pages really went out and came in. */
static void test_overcommit_roundtrip(void **state)
{
	for (int kswapd = 0; kswapd < 2; kswapd++) {
		struct host *h = mkhost(RAM, SWAP, kswapd);
		unsigned int n = (unsigned int)((2 * RAM) >> PAGE_SHIFT);
		struct mm *mm = map(h, 2 * RAM);
		struct host_stats st;

		write_pages(mm, BASE, n, 1);
		check_pages(mm, BASE, n, 1);
		write_pages(mm, BASE, n, 2);
		check_pages(mm, BASE, n, 2);
		host_get_stats(h, &st);
		assert_true(st.events[PSWPOUT] > n / 2);
		assert_true(st.events[PSWPIN] > n / 2);
		assert_true(st.events[PGSTEAL] > 0);
		assert_true(st.free_pages >= st.watermark_min / 2);
		assert_int_equal(host_check_invariants(h), 0);
		mmput(mm);
		teardown_host(h);
	}
}

/* Without swap nothing can be reclaimed: the write fails with -ENOMEM and
 * nothing leaks. */
static void test_no_swap_enomem(void **state)
{
	struct host *h = mkhost(RAM, 0, false);
	struct mm *mm = map(h, 2 * RAM);
	int64_t r = 0;

	for (unsigned int i = 0; i < (2 * RAM) >> PAGE_SHIFT && r >= 0; i++)
		r = mm_write(mm, BASE + (hva_t)i * PAGE_SIZE, "x", 1);
	assert_int_equal(r, -ENOMEM);
	mmput(mm);
	teardown_host(h);
}

/* fork shares swap slots; each side then reads its own data. */
static void test_fork_shares_slots(void **state)
{
	struct host *h = mkhost(RAM, SWAP, false);
	unsigned int n = (unsigned int)((RAM + RAM / 2) >> PAGE_SHIFT);
	struct mm *mm = map(h, RAM + RAM / 2), *child;
	struct host_stats st;

	write_pages(mm, BASE, n, 1);
	host_get_stats(h, &st);
	assert_true(st.swap_free_slots < st.swap_slots);  /* some are out */
	assert_int_equal(mm_fork(mm, &child), 0);
	assert_int_equal(host_check_invariants(h), 0);
	assert_true(atomic_load(&child->rss[MM_SWAPENTS]) > 0);
	write_pages(child, BASE, n / 2, 7);
	check_pages(mm, BASE, n, 1);
	check_pages(child, BASE, n / 2, 7);
	assert_int_equal(host_check_invariants(h), 0);
	mmput(child);
	check_pages(mm, BASE, n, 1);
	mmput(mm);
	teardown_host(h);
}

/*
 * fork with RAM at the watermark: the child's page tables are allocated
 * before the copy takes the page-table locks, where reclaim is allowed,
 * so the fork succeeds (it used to fail with -ENOMEM) and both sides keep
 * their data.
 */
static void test_fork_under_pressure(void **state)
{
	struct host *h = mkhost(RAM, SWAP, false);
	unsigned int n = (unsigned int)((2 * RAM) >> PAGE_SHIFT);
	struct mm *mm = map(h, 2 * RAM), *child[3];
	struct host_stats st;

	write_pages(mm, BASE, n, 11);
	/* Take every free frame above the min watermark without reclaim:
	 * now only reclaim can give the child's page tables a frame. */
	struct page *held[4096];
	unsigned int nheld = 0;

	while (nheld < 4096 && (held[nheld] = alloc_page(h, GFP_NORECLAIM)))
		nheld++;
	host_get_stats(h, &st);
	assert_true(st.free_pages <= st.watermark_min);
	for (int k = 0; k < 3; k++)
		assert_int_equal(mm_fork(mm, &child[k]), 0);
	for (unsigned int k = 0; k < nheld; k++)
		put_page(held[k]);
	assert_int_equal(host_check_invariants(h), 0);
	write_pages(child[1], BASE, n / 4, 12);
	check_pages(mm, BASE, n, 11);
	check_pages(child[0], BASE, n, 11);
	check_pages(child[1], BASE, n / 4, 12);
	for (int k = 0; k < 3; k++)
		mmput(child[k]);
	mmput(mm);
	teardown_host(h);
}

/* Injected write failures: pages stay resident and dirty, nothing is lost,
 * the errors are counted; later writes succeed. */
static void test_write_failure_loses_nothing(void **state)
{
	struct host *h = mkhost(RAM, SWAP, false);
	unsigned int n = (unsigned int)((RAM * 3 / 4) >> PAGE_SHIFT);
	struct mm *mm = map(h, RAM * 3 / 4);
	struct host_stats st;

	write_pages(mm, BASE, n, 3);
	host_swap_inject_failures(h, 1000000, 0);
	host_reclaim(h, 512);
	host_get_stats(h, &st);
	assert_true(st.events[SWAP_WRITE_ERROR] > 0);
	assert_int_equal(st.events[PSWPOUT], 0);
	assert_int_equal(host_check_invariants(h), 0);
	check_pages(mm, BASE, n, 3);
	host_swap_inject_failures(h, 0, 0);
	assert_true(host_reclaim(h, 512) > 0);
	host_get_stats(h, &st);
	assert_true(st.events[PSWPOUT] > 0);
	check_pages(mm, BASE, n, 3);
	mmput(mm);
	teardown_host(h);
}

/* A failed swap-in fails the access with -EIO; the slot stays accounted
 * and is freed with the mapping. */
static void test_read_failure_eio(void **state)
{
	struct host *h = mkhost(RAM, SWAP, false);
	unsigned int n = (unsigned int)((RAM * 3 / 4) >> PAGE_SHIFT);
	struct mm *mm = map(h, RAM * 3 / 4);
	struct host_stats st;
	int64_t r = 0;

	write_pages(mm, BASE, n, 4);
	assert_true(host_reclaim(h, 1024) > 0);
	host_swap_inject_failures(h, 0, 1000000);
	for (unsigned int i = 0; i < n && r >= 0; i++) {
		uint64_t v;

		r = mm_read(mm, BASE + (hva_t)i * PAGE_SIZE + 64, &v, 8);
	}
	assert_int_equal(r, -EIO);
	host_get_stats(h, &st);
	assert_true(st.events[SWAP_READ_ERROR] > 0);
	assert_int_equal(host_check_invariants(h), 0);
	host_swap_inject_failures(h, 0, 0);
	mmput(mm);
	teardown_host(h);
}

/* DONTNEED of swapped-out pages frees their slots and reads back zero. */
static void test_dontneed_frees_slots(void **state)
{
	struct host *h = mkhost(RAM, SWAP, false);
	unsigned int n = (unsigned int)((RAM * 3 / 4) >> PAGE_SHIFT);
	struct mm *mm = map(h, RAM * 3 / 4);
	struct host_stats st;
	uint64_t v;

	write_pages(mm, BASE, n, 5);
	assert_true(host_reclaim(h, 1024) > 0);
	assert_true(atomic_load(&mm->rss[MM_SWAPENTS]) > 0);
	assert_int_equal(mm_madvise(mm, BASE, RAM * 3 / 4, MADV_DONTNEED), 0);
	assert_int_equal(atomic_load(&mm->rss[MM_SWAPENTS]), 0);
	host_get_stats(h, &st);
	assert_int_equal(st.swap_free_slots, st.swap_slots);
	assert_int_equal(mm_read(mm, BASE + 64, &v, 8), 8);
	assert_int_equal(v, 0);
	assert_int_equal(host_check_invariants(h), 0);
	mmput(mm);
	teardown_host(h);
}

/* Referenced pages are kept: after a reclaim pass, the pages touched since
 * the last look are still resident. */
static void test_referenced_kept(void **state)
{
	struct host *h = mkhost(RAM, SWAP, false);
	unsigned int n = (unsigned int)((RAM / 2) >> PAGE_SHIFT);
	struct mm *mm = map(h, RAM / 2);

	write_pages(mm, BASE, n, 6);
	/* First pass ages everything (clears young bits); then touch the
	 * first half, and reclaim again. */
	host_reclaim(h, n);
	for (unsigned int i = 0; i < n / 4; i++) {
		uint64_t v;

		assert_int_equal(mm_read(mm, BASE + (hva_t)i * PAGE_SIZE + 64, &v, 8), 8);
	}
	unsigned long got = host_reclaim(h, n);
	unsigned int hot_out = 0;

	for (unsigned int i = 0; i < n / 4; i++)
		if (!pte_present(mm_lookup_pte(mm, BASE + (hva_t)i * PAGE_SIZE)))
			hot_out++;
	assert_true(got > 0);
	assert_true(hot_out < n / 40);  /* under 10 % of the hot set */
	check_pages(mm, BASE, n, 6);
	mmput(mm);
	teardown_host(h);
}

/* MADV_PAGEOUT reclaims exactly the range now; MADV_COLD deactivates. */
static void test_madvise_pageout_cold(void **state)
{
	struct host *h = mkhost(RAM, SWAP, false);
	unsigned int n = 256;
	struct mm *mm = map(h, (uint64_t)n * PAGE_SIZE);
	struct host_stats st0, st;

	write_pages(mm, BASE, n, 8);
	host_get_stats(h, &st0);
	assert_int_equal(mm_madvise(mm, BASE, 64 * PAGE_SIZE, MADV_PAGEOUT), 0);
	host_get_stats(h, &st);
	assert_int_equal(st.events[PSWPOUT] - st0.events[PSWPOUT], 64);
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(pte_is_swap(mm_lookup_pte(mm, BASE + (hva_t)i * PAGE_SIZE)),
				 i < 64);
	assert_int_equal(mm_madvise(mm, BASE + 64 * PAGE_SIZE, 64 * PAGE_SIZE, MADV_COLD), 0);
	host_get_stats(h, &st);
	assert_true(st.lru_inactive >= 64);
	assert_int_equal(host_check_invariants(h), 0);
	check_pages(mm, BASE, n, 8);
	mmput(mm);
	teardown_host(h);
}

struct oom_log {
	_Atomic(struct mm *) victim;
	atomic_int calls;
};

static void oom_notify(void *arg, struct mm *victim, uint64_t pages)
{
	struct oom_log *log = arg;

	atomic_store(&log->victim, victim);
	atomic_fetch_add(&log->calls, 1);
}

/*
 * RAM and swap exhausted: the OOM killer picks the largest mm (not the
 * small one), the reaper unmaps it, the allocation that triggered it
 * succeeds, the survivor's data is intact, and every frame and slot comes
 * back after teardown.
 */
static void test_oom_kills_largest(void **state)
{
	struct host *h;
	struct host_config cfg = { .ram_bytes = RAM, .swap_bytes = 8ULL << 20,
				   .oom_killer = true };
	struct oom_log log = { 0 };
	struct host_stats st;

	assert_int_equal(host_create(&cfg, &h), 0);
	host_set_oom_notify(h, oom_notify, &log);
	struct mm *small = map(h, 2ULL << 20), *big = map(h, 64ULL << 20);
	unsigned int ns = (2u << 20) >> PAGE_SHIFT;

	write_pages(small, BASE, ns, 9);
	/* big grows until the OOM killer takes it. */
	int64_t r = 0;
	unsigned int i;

	for (i = 0; i < (64u << 20) >> PAGE_SHIFT && r >= 0; i++) {
		uint64_t v = i;

		r = mm_write(big, BASE + (hva_t)i * PAGE_SIZE, &v, 8);
	}
	assert_int_equal(r, -ENOMEM);
	assert_int_equal(atomic_load(&log.calls), 1);
	assert_ptr_equal(atomic_load(&log.victim), big);
	assert_true(mm_is_oom_victim(big));
	assert_false(mm_is_oom_victim(small));
	for (int k = 0; k < 5000 && !atomic_load(&big->oom_reaped); k++)
		sleep_ms(1);
	assert_true(atomic_load(&big->oom_reaped));
	host_get_stats(h, &st);
	assert_int_equal(st.oom_kills, 1);
	assert_true(st.oom_reaped_pages > 1000);
	assert_int_equal(atomic_load(&big->rss[MM_ANONPAGES]), 0);
	check_pages(small, BASE, ns, 9);
	assert_int_equal(host_check_invariants(h), 0);
	mmput(big);
	mmput(small);
	teardown_host(h);
}

static void test_bad_swap_config(void **state)
{
	struct host *h;
	struct host_config cfg = { .ram_bytes = RAM, .swap_bytes = 4097 };

	assert_int_equal(host_create(&cfg, &h), -EINVAL);
	cfg.swap_bytes = HOST_SWAP_MAX + PAGE_SIZE;
	assert_int_equal(host_create(&cfg, &h), -EINVAL);
	cfg.swap_bytes = SWAP;
	cfg.swap_path = "/nonexistent-dir/tandem-swap";
	assert_int_equal(host_create(&cfg, &h), -ENOENT);
}

/*
 * Reclaim's put of another mm inside the caller's RCU read-side section.
 * Reclaim takes a user reference on each mm it unmaps from; if the mm's
 * owner drops the last other one meanwhile, reclaim's put is the last and
 * runs the mm's exit -- whose release waits for a grace period, which
 * never ends inside the section that a secondary MMU's fault holds while
 * it allocates (and so reclaims). Reclaim's put is asynchronous: the exit
 * runs on the host's worker. A subscriber on the victim mm holds reclaim
 * inside its invalidation while the owner puts; the reclaiming thread, in
 * an RCU section, must come back, and the mm must then be torn down.
 */
struct rcu_reclaim {
	struct host *h;
	unsigned long reclaimed;
	atomic_bool done;
};

static void *reclaim_in_rcu(void *a)
{
	struct rcu_reclaim *rr = a;

	rcu_read_lock();
	rr->reclaimed = host_reclaim(rr->h, 8);
	rcu_read_unlock();
	atomic_store(&rr->done, true);
	return NULL;
}

static void test_reclaim_last_put_in_rcu_section(void **state)
{
	struct host *h = mkhost(RAM, SWAP, false);
	struct rcu_reclaim rr = { .h = h };
	struct mm *mm = map(h, 64 * PAGE_SIZE);
	struct recorder held;
	pthread_t th;

	write_pages(mm, BASE, 64, 1);
	rec_init(&held, 1, REC_RANGE | REC_F(REC_RELEASE));
	assert_int_equal(mmu_notifier_register(&held.mn, mm), 0);
	/* Reclaim's first unmap: held inside its start. */
	rec_arm(&held, &(struct rec_trigger){ .kinds = REC_F(REC_START),
					      .events = REC_EV(MMU_NOTIFY_CLEAR),
					      .pause = true });
	/* Cold: reclaim unmaps without a second look's veto. */
	assert_int_equal(mm_madvise(mm, BASE, 64 * PAGE_SIZE, MADV_COLD), 0);
	assert_int_equal(pthread_create(&th, NULL, reclaim_in_rcu, &rr), 0);
	assert_true(rec_wait_paused(&held, REC_PAUSE_MS));
	/* Reclaim holds its user reference inside the invalidation: the
	 * owner's put is not the last, reclaim's will be. */
	mmput(mm);
	rec_resume(&held);
	pthread_join(th, NULL);
	assert_true(atomic_load(&rr.done));     /* the thread survived */
	assert_true(rr.reclaimed > 0);
	mmput_async_drain(h);                   /* the exit, on the worker */
	assert_int_equal(rec_calls(&held, REC_RELEASE), 1);
	assert_int_equal(rec_timeouts(&held), 0);
	assert_int_equal(mmu_notifier_unregister(&held.mn, mm), 0);
	rec_destroy(&held);
	teardown_host(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overcommit_roundtrip),
		cmocka_unit_test(test_no_swap_enomem),
		cmocka_unit_test(test_fork_shares_slots),
		cmocka_unit_test(test_fork_under_pressure),
		cmocka_unit_test(test_write_failure_loses_nothing),
		cmocka_unit_test(test_read_failure_eio),
		cmocka_unit_test(test_dontneed_frees_slots),
		cmocka_unit_test(test_referenced_kept),
		cmocka_unit_test(test_madvise_pageout_cold),
		cmocka_unit_test(test_oom_kills_largest),
		cmocka_unit_test(test_reclaim_last_put_in_rcu_section),
		cmocka_unit_test(test_bad_swap_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
