/* SPDX-License-Identifier: MIT */
/*
 * test_notifier.c - the mmu_notifier core (src/notifier/mmu_notifier.c)
 * against a real host: registration and its errors, range pairing, the
 * non-blocking start's unwind, aging, release on exit, and two races:
 * ranges against register/unregister, and exit's release against
 * unregister.
 *
 * The subscribers are recorders (tests/harness/recorder.h): what each
 * callback saw is read back from its counts and log. Each test makes its
 * own host and checks at the end that every frame came back and the host
 * can be destroyed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/compiler.h"
#include "tandem/host.h"
#include "host/mm_types.h"
#include "tandem/mmu_notifier.h"
#include "harness/recorder.h"
#include "harness/util.h"

#define RANGE_START 0x100000ULL
#define RANGE_END   0x140000ULL

/* ---- subscribers ------------------------------------------------------
 *
 * Every subscriber here is a recorder (tests/harness/recorder.h); these
 * are the actions its trigger runs.
 */

/* At release: is the memory at addr still mapped? */
struct pte_probe {
	hva_t addr;
	pte_t seen;
};

static void see_pte(struct recorder *r, const struct rec_entry *call, void *arg)
{
	struct pte_probe *p = arg;

	p->seen = mm_lookup_pte(call->mm, p->addr);
}

/* Slow callbacks, to widen the race tests' windows. */
struct delays {
	unsigned int start_us;          /* in every 4th start */
	unsigned int young_us;          /* in each aging call */
	unsigned int release_us;
};

static void delay(struct recorder *r, const struct rec_entry *call, void *arg)
{
	const struct delays *d = arg;
	unsigned int us = 0;

	switch (call->kind) {
	case REC_START:
		us = call->nth % 4 == 0 ? d->start_us : 0;
		break;
	case REC_CLEAR_FLUSH_YOUNG:
	case REC_CLEAR_YOUNG:
	case REC_TEST_YOUNG:
		us = d->young_us;
		break;
	case REC_RELEASE:
		us = d->release_us;
		break;
	default:
		break;
	}
	if (us)
		sleep_us(us);
}

static void slow_down(struct recorder *r, struct delays *d)
{
	rec_arm(r, &(struct rec_trigger){ .kinds = REC_ALL, .every = true,
					  .action = delay, .arg = d });
}

/* ---- host helpers ----------------------------------------------------- */

static struct host *host_up(void)
{
	struct host *host = NULL;

	assert_int_equal(host_create(&(struct host_config){ .ram_bytes = 16 << 20 },
				     &host), 0);
	assert_non_null(host);
	return host;
}

static void host_down(struct host *host)
{
	assert_int_equal(host_frames_in_use(host), 0);
	assert_int_equal(host_destroy(host), 0);
}

static struct mm *mm_up(struct host *host)
{
	struct mm *mm = NULL;

	assert_int_equal(mm_create(host, &mm), 0);
	assert_non_null(mm);
	return mm;
}

static long subs_nr(struct mm *mm)
{
	return atomic_load(&mm->notifier_subscriptions.nr);
}

static long nr_calls(struct mm *mm, enum mmu_notifier_event e)
{
	return atomic_load(&mm->notifier_subscriptions.nr_calls[e]);
}

static void do_range(struct mm *mm, enum mmu_notifier_event e)
{
	struct mmu_notifier_range r;

	mmu_notifier_range_init(&r, e, MMU_NOTIFIER_RANGE_BLOCKABLE, mm,
				RANGE_START, RANGE_END);
	assert_int_equal(mmu_notifier_invalidate_range_start(&r), 0);
	mmu_notifier_invalidate_range_end(&r);
}

/* range_lock is free iff a writer can take it right now. */
static bool range_lock_free(struct mm *mm)
{
	struct rwsem *l = &mm->notifier_subscriptions.range_lock;

	if (!down_write_trylock(l))
		return false;
	up_write(l);
	return true;
}

/* ---- tests ------------------------------------------------------------ */

/* Every event has its own name; an out-of-range value still gets one. */
static void test_event_names(void **state)
{
	for (int i = 0; i < MMU_NOTIFY_NR_EVENTS; i++) {
		const char *a = mmu_notifier_event_name((enum mmu_notifier_event)i);

		assert_non_null(a);
		assert_true(strlen(a) > 0);
		assert_string_not_equal(a, "unknown");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(a, mmu_notifier_event_name(
							   (enum mmu_notifier_event)j));
	}
	assert_string_equal(mmu_notifier_event_name(MMU_NOTIFY_UNMAP), "unmap");
	assert_string_equal(mmu_notifier_event_name(MMU_NOTIFY_NR_EVENTS), "unknown");
}

/*
 * register links the subscriber and takes one struct reference; unregister
 * calls release once (exit has not), unlinks, and gives the reference back.
 */
static void test_register_unregister_basic(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder s;
	int count0 = atomic_load(&mm->mm_count);

	rec_init(&s, 1, REC_ALL);
	assert_false(mm_has_notifiers(mm));
	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);
	assert_true(mm_has_notifiers(mm));
	assert_int_equal(subs_nr(mm), 1);
	assert_true(s.mn.registered);
	assert_ptr_equal(s.mn.mm, mm);
	assert_false(atomic_load(&s.mn.released));
	assert_int_equal(atomic_load(&mm->mm_count), count0 + 1);

	do_range(mm, MMU_NOTIFY_CLEAR);
	assert_int_equal(rec_calls(&s, REC_START), 1);
	assert_int_equal(rec_calls(&s, REC_END), 1);

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	assert_int_equal(rec_calls(&s, REC_RELEASE), 1);
	assert_false(mm_has_notifiers(mm));
	assert_int_equal(subs_nr(mm), 0);
	assert_false(s.mn.registered);
	assert_int_equal(atomic_load(&mm->mm_count), count0);

	/* Gone: no more callbacks. */
	long calls = rec_total(&s, REC_ALL);
	do_range(mm, MMU_NOTIFY_UNMAP);
	assert_int_equal(mmu_notifier_clear_young(mm, RANGE_START, RANGE_END), 0);
	mmu_notifier_change_pte(mm, RANGE_START, 0);
	assert_int_equal(rec_total(&s, REC_ALL), calls);

	/* The same struct can be registered again, and released again. */
	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);
	assert_false(atomic_load(&s.mn.released));
	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	assert_int_equal(rec_calls(&s, REC_RELEASE), 2);

	rec_destroy(&s);
	mmput(mm);
	host_down(host);
}

/* register: -EINVAL for NULLs, no ops, or a subscriber already registered
 * (here or elsewhere), and nothing changes on failure. */
static void test_register_bad_input(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host), *mm2 = mm_up(host);
	struct recorder s, noops;
	int count0 = atomic_load(&mm->mm_count), count2 = atomic_load(&mm2->mm_count);

	rec_init(&s, 1, REC_ALL);
	rec_init(&noops, 2, REC_ALL);
	noops.mn.ops = NULL;
	assert_int_equal(mmu_notifier_register(NULL, mm), -EINVAL);
	assert_int_equal(mmu_notifier_register(&noops.mn, mm), -EINVAL);
	assert_int_equal(mmu_notifier_register(&s.mn, NULL), -EINVAL);
	assert_int_equal(subs_nr(mm), 0);
	assert_false(s.mn.registered);

	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&s.mn, mm), -EINVAL);
	assert_int_equal(mmu_notifier_register(&s.mn, mm2), -EINVAL);
	assert_int_equal(subs_nr(mm), 1);
	assert_int_equal(subs_nr(mm2), 0);
	assert_int_equal(atomic_load(&mm->mm_count), count0 + 1);
	assert_int_equal(atomic_load(&mm2->mm_count), count2);

	/* The failed double register did not put it on the list twice. */
	do_range(mm, MMU_NOTIFY_UNMAP);
	assert_int_equal(rec_calls(&s, REC_START), 1);

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	assert_int_equal(atomic_load(&mm->mm_count), count0);
	rec_destroy(&noops);
	rec_destroy(&s);
	mmput(mm2);
	mmput(mm);
	host_down(host);
}

/* unregister: -EINVAL for NULLs, never registered, wrong mm, and twice;
 * a failed call neither releases nor drops a reference. */
static void test_unregister_bad_input(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host), *mm2 = mm_up(host);
	struct recorder s, never;
	int count0 = atomic_load(&mm->mm_count);

	rec_init(&s, 1, REC_ALL);
	rec_init(&never, 2, REC_ALL);
	assert_int_equal(mmu_notifier_unregister(NULL, mm), -EINVAL);
	assert_int_equal(mmu_notifier_unregister(&never.mn, mm), -EINVAL);
	assert_int_equal(rec_calls(&never, REC_RELEASE), 0);

	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&s.mn, NULL), -EINVAL);
	assert_int_equal(mmu_notifier_unregister(&s.mn, mm2), -EINVAL);
	assert_int_equal(rec_calls(&s, REC_RELEASE), 0);
	assert_int_equal(subs_nr(mm), 1);
	assert_int_equal(atomic_load(&mm->mm_count), count0 + 1);

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), -EINVAL);
	assert_int_equal(rec_calls(&s, REC_RELEASE), 1);
	assert_int_equal(atomic_load(&mm->mm_count), count0);

	rec_destroy(&never);
	rec_destroy(&s);
	mmput(mm2);
	mmput(mm);
	host_down(host);
}

/* Once the last user is gone the mm is exiting: register says -ESRCH and
 * takes no reference. */
static void test_register_after_exit_esrch(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder s;

	rec_init(&s, 1, REC_ALL);
	mmgrab(mm);     /* keep the struct past exit */
	mmput(mm);
	assert_true(atomic_load(&mm->exiting));
	int count = atomic_load(&mm->mm_count);

	assert_int_equal(mmu_notifier_register(&s.mn, mm), -ESRCH);
	assert_false(s.mn.registered);
	assert_int_equal(subs_nr(mm), 0);
	assert_int_equal(atomic_load(&mm->mm_count), count);
	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), -EINVAL);
	rec_destroy(&s);
	mmdrop(mm);
	host_down(host);
}

/*
 * Two subscribers (and one with no range callbacks) each get start then
 * end of every range, with the range as the host gave it, BLOCKABLE set;
 * the per-event counters count each start once, whoever subscribes.
 */
static void test_range_pairs_two_subscribers(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder a, b, quiet;
	struct recorder *const all[] = { &a, &b, &quiet };
	char trace[64];

	rec_init(&a, 1, REC_ALL);
	rec_init(&b, 2, REC_ALL);
	rec_init(&quiet, 3, REC_F(REC_RELEASE));

	/* No subscriber: still counted, and the range lock is taken. */
	struct mmu_notifier_range r;
	mmu_notifier_range_init(&r, MMU_NOTIFY_MIGRATE, 0, mm, RANGE_START, RANGE_END);
	assert_int_equal(mmu_notifier_invalidate_range_start(&r), 0);
	assert_true(r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	assert_false(range_lock_free(mm));
	mmu_notifier_invalidate_range_end(&r);
	assert_true(range_lock_free(mm));
	assert_int_equal(nr_calls(mm, MMU_NOTIFY_MIGRATE), 1);

	assert_int_equal(mmu_notifier_register(&quiet.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&a.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&b.mn, mm), 0);

	long before[MMU_NOTIFY_NR_EVENTS];
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		before[e] = nr_calls(mm, e);

	/* One range, watched closely. Flags 0 in, BLOCKABLE out. */
	uint64_t mark = rec_mark();

	mmu_notifier_range_init(&r, MMU_NOTIFY_PROTECTION_VMA, 0, mm,
				RANGE_START, RANGE_END);
	assert_int_equal(mmu_notifier_invalidate_range_start(&r), 0);
	assert_int_equal(rec_open(&a), 1);
	assert_int_equal(rec_open(&b), 1);
	assert_int_equal(rec_calls(&a, REC_END), 0);
	struct rec_entry last = rec_last(&a, REC_ALL);

	assert_int_equal(last.kind, REC_START);
	assert_ptr_equal(last.mm, mm);
	assert_int_equal(last.start, RANGE_START);
	assert_int_equal(last.end, RANGE_END);
	assert_int_equal(last.event, MMU_NOTIFY_PROTECTION_VMA);
	assert_true(last.blockable);
	mmu_notifier_invalidate_range_end(&r);
	assert_int_equal(rec_open(&a), 0);
	assert_int_equal(rec_open(&b), 0);
	assert_true(range_lock_free(mm));
	/* Newest first (added at the head): b, a; quiet is skipped. */
	rec_trace(trace, sizeof(trace), mark, all, 3);
	assert_string_equal(trace, "2s 1s 2e 1e");

	/* e+1 ranges of each event e. */
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		for (int i = 0; i <= e; i++)
			do_range(mm, e);

	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++) {
		long want = e + 1 + (e == MMU_NOTIFY_PROTECTION_VMA);

		assert_int_equal(atomic_load(&a.starts_by_event[e]), want);
		assert_int_equal(atomic_load(&b.starts_by_event[e]), want);
		assert_int_equal(nr_calls(mm, e) - before[e], want);
	}
	long total = 1 + MMU_NOTIFY_NR_EVENTS * (MMU_NOTIFY_NR_EVENTS + 1) / 2;
	assert_int_equal(rec_calls(&a, REC_START), total);
	assert_int_equal(rec_calls(&a, REC_END), total);
	assert_int_equal(rec_calls(&b, REC_START), total);
	assert_int_equal(rec_calls(&b, REC_END), total);
	assert_int_equal(atomic_load(&a.unpaired), 0);
	assert_int_equal(atomic_load(&b.unpaired), 0);
	assert_int_equal(rec_total(&quiet, REC_ALL), 0);

	/* Nested ranges on one thread are allowed and stay paired. */
	struct mmu_notifier_range outer, inner;
	mmu_notifier_range_init(&outer, MMU_NOTIFY_UNMAP, 0, mm, RANGE_START, RANGE_END);
	mmu_notifier_range_init(&inner, MMU_NOTIFY_CLEAR, 0, mm, RANGE_START,
				RANGE_START + PAGE_SIZE);
	assert_int_equal(mmu_notifier_invalidate_range_start(&outer), 0);
	assert_int_equal(mmu_notifier_invalidate_range_start(&inner), 0);
	assert_int_equal(rec_open(&a), 2);
	mmu_notifier_invalidate_range_end(&inner);
	assert_false(range_lock_free(mm));
	mmu_notifier_invalidate_range_end(&outer);
	assert_true(range_lock_free(mm));
	assert_int_equal(rec_open(&a), 0);

	assert_int_equal(mmu_notifier_unregister(&a.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&b.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&quiet.mn, mm), 0);
	assert_int_equal(rec_calls(&quiet, REC_RELEASE), 1);
	for (int i = 0; i < 3; i++)
		rec_destroy(all[i]);
	mmput(mm);
	host_down(host);
}

/*
 * Non-blocking start, walk order ok -> fail -> after: ok gets start and
 * end, fail gets start and no end, after gets nothing; the call returns
 * -EAGAIN with BLOCKABLE clear and range_lock released.
 */
static void test_nonblock_eagain_unwinds(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder after, fail, ok;
	struct recorder *const all[] = { &ok, &fail, &after };
	char trace[64];

	rec_init(&after, 3, REC_ALL);
	rec_init(&fail, 2, REC_ALL);
	rec_init(&ok, 1, REC_ALL);
	fail.eagain_nonblock = true;
	/* Added at the head, so walked in the reverse order. */
	assert_int_equal(mmu_notifier_register(&after.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&fail.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&ok.mn, mm), 0);

	struct mmu_notifier_range r;
	uint64_t mark = rec_mark();

	mmu_notifier_range_init(&r, MMU_NOTIFY_RELEASE, MMU_NOTIFIER_RANGE_BLOCKABLE,
				mm, RANGE_START, RANGE_END);
	assert_int_equal(mmu_notifier_invalidate_range_start_nonblock(&r), -EAGAIN);
	assert_false(r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	assert_false(rec_last(&ok, REC_ALL).blockable);
	assert_int_equal(rec_last(&fail, REC_ALL).ret, -EAGAIN);
	assert_int_equal(rec_calls(&ok, REC_START), 1);
	assert_int_equal(rec_calls(&ok, REC_END), 1);
	assert_int_equal(rec_calls(&fail, REC_START), 1);
	assert_int_equal(rec_calls(&fail, REC_END), 0);
	assert_int_equal(rec_total(&after, REC_ALL), 0);
	rec_trace(trace, sizeof(trace), mark, all, 3);
	assert_string_equal(trace, "1s 2s 1e");
	assert_true(range_lock_free(mm));

	/* range_lock was given back: a blockable start works and reaches
	 * everyone. */
	fail.eagain_nonblock = false;
	do_range(mm, MMU_NOTIFY_CLEAR);
	assert_int_equal(rec_calls(&ok, REC_START), 2);
	assert_int_equal(rec_calls(&fail, REC_START), 2);
	assert_int_equal(rec_calls(&fail, REC_END), 1);
	assert_int_equal(rec_calls(&after, REC_START), 1);
	assert_int_equal(rec_calls(&after, REC_END), 1);

	/* A non-blocking start that succeeds owes an end like any other. */
	assert_int_equal(mmu_notifier_invalidate_range_start_nonblock(&r), 0);
	assert_false(range_lock_free(mm));
	assert_int_equal(rec_open(&after), 1);
	mmu_notifier_invalidate_range_end(&r);
	assert_true(range_lock_free(mm));

	for (int i = 0; i < 3; i++) {
		assert_int_equal(rec_open(all[i]), 0);
		assert_int_equal(atomic_load(&all[i]->unpaired), 0);
	}
	assert_int_equal(nr_calls(mm, MMU_NOTIFY_RELEASE), 2);

	assert_int_equal(mmu_notifier_unregister(&ok.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&fail.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&after.mn, mm), 0);
	for (int i = 0; i < 3; i++)
		rec_destroy(all[i]);
	mmput(mm);
	host_down(host);
}

/* While a writer holds range_lock, the non-blocking start fails at once
 * and calls nobody. */
static void test_nonblock_contended(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder s;
	struct rwsem *l = &mm->notifier_subscriptions.range_lock;

	rec_init(&s, 1, REC_ALL);
	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);

	struct mmu_notifier_range r;
	mmu_notifier_range_init(&r, MMU_NOTIFY_RELEASE, 0, mm, RANGE_START, RANGE_END);
	down_write(l);
	assert_int_equal(mmu_notifier_invalidate_range_start_nonblock(&r), -EAGAIN);
	up_write(l);
	assert_int_equal(rec_total(&s, REC_ALL), 0);
	assert_true(range_lock_free(mm));

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	rec_destroy(&s);
	mmput(mm);
	host_down(host);
}

/* Counts to zero, and what the aging calls answer. */
static void young_reset(struct recorder *s, int young)
{
	rec_reset(s);
	s->young = young;
}

/*
 * clear_flush_young and clear_young ask every subscriber (each must age
 * its own copy) and report young if any was; test_young stops at the
 * first young one. change_pte reaches everyone with the address and pte.
 */
static void test_young_and_change_pte(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder s3, s2, s1, quiet;
	struct recorder *const all[] = { &s1, &s2, &s3 };    /* walk order */
	char trace[64];

	assert_int_equal(mmu_notifier_clear_flush_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 0);
	rec_init(&quiet, 4, REC_F(REC_RELEASE));
	rec_init(&s3, 3, REC_ALL);
	rec_init(&s2, 2, REC_ALL);
	rec_init(&s1, 1, REC_ALL);
	assert_int_equal(mmu_notifier_register(&quiet.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&s3.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&s2.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&s1.mn, mm), 0);

	/* Nobody young. */
	for (int i = 0; i < 3; i++)
		young_reset(all[i], 0);
	assert_int_equal(mmu_notifier_clear_flush_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_clear_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rec_calls(all[i], REC_CLEAR_FLUSH_YOUNG), 1);
		assert_int_equal(rec_calls(all[i], REC_CLEAR_YOUNG), 1);
		assert_int_equal(rec_calls(all[i], REC_TEST_YOUNG), 1);
	}

	/* Only the first walked is young: clears still reach the others. */
	young_reset(&s1, 1);
	young_reset(&s2, 0);
	young_reset(&s3, 0);
	assert_int_not_equal(mmu_notifier_clear_flush_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_not_equal(mmu_notifier_clear_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rec_calls(all[i], REC_CLEAR_FLUSH_YOUNG), 1);
		assert_int_equal(rec_calls(all[i], REC_CLEAR_YOUNG), 1);
	}
	assert_int_equal(rec_calls(&s1, REC_TEST_YOUNG), 1);
	assert_int_equal(rec_calls(&s2, REC_TEST_YOUNG), 0);
	assert_int_equal(rec_calls(&s3, REC_TEST_YOUNG), 0);

	/* Only the last walked is young. */
	young_reset(&s1, 0);
	young_reset(&s2, 0);
	young_reset(&s3, 1);
	assert_int_not_equal(mmu_notifier_clear_flush_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_not_equal(mmu_notifier_clear_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rec_calls(all[i], REC_TEST_YOUNG), 1);

	/* The middle one: test_young stops there. */
	young_reset(&s1, 0);
	young_reset(&s2, 1);
	young_reset(&s3, 1);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 1);
	assert_int_equal(rec_calls(&s3, REC_TEST_YOUNG), 0);

	assert_int_equal(atomic_load(&mm->notifier_subscriptions.nr_young_calls), 2 + 3 * 3 + 1);

	/* change_pte: everyone, with what the host passed. */
	uint64_t mark = rec_mark();

	mmu_notifier_change_pte(mm, RANGE_START + PAGE_SIZE, 0x1234067);
	rec_trace(trace, sizeof(trace), mark, all, 3);
	assert_string_equal(trace, "1p 2p 3p");
	for (int i = 0; i < 3; i++) {
		struct rec_entry last = rec_last(all[i], REC_ALL);

		assert_int_equal(rec_calls(all[i], REC_CHANGE_PTE), 1);
		assert_int_equal(last.kind, REC_CHANGE_PTE);
		assert_int_equal(last.start, RANGE_START + PAGE_SIZE);
		assert_int_equal(last.pte, 0x1234067);
	}
	assert_int_equal(rec_total(&quiet, REC_ALL), 0);

	assert_int_equal(mmu_notifier_unregister(&s1.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&s2.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&s3.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&quiet.mn, mm), 0);
	for (int i = 0; i < 3; i++)
		rec_destroy(all[i]);
	rec_destroy(&quiet);
	mmput(mm);
	host_down(host);
}

/*
 * The last mmput runs exit: every subscriber gets release exactly once,
 * while its memory is still mapped; afterwards nothing reaches it, not even
 * direct calls on the (still allocated) mm. Its owner's unregister then
 * returns 0 without a second release and drops its reference once; a
 * second unregister is -EINVAL.
 */
static void test_release_once_on_last_mmput(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder a, b;
	struct pte_probe pa = { 0 }, pb = { 0 };
	hva_t addr;
	char buf[64] = "tandem";

	rec_init(&a, 1, REC_ALL);
	rec_init(&b, 2, REC_ALL);
	assert_int_equal(mm_mmap(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, &addr), 0);
	assert_int_equal(mm_write(mm, addr, buf, sizeof(buf)), sizeof(buf));
	assert_int_not_equal(mm_lookup_pte(mm, addr), 0);
	pa.addr = pb.addr = addr;
	rec_arm(&a, &(struct rec_trigger){ .kinds = REC_F(REC_RELEASE), .action = see_pte,
					   .arg = &pa });
	rec_arm(&b, &(struct rec_trigger){ .kinds = REC_F(REC_RELEASE), .action = see_pte,
					   .arg = &pb });
	assert_int_equal(mmu_notifier_register(&a.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&b.mn, mm), 0);
	assert_true(host_frames_in_use(host) > 0);

	mmgrab(mm);     /* our own struct reference, to poke it after exit */
	int count = atomic_load(&mm->mm_count);
	mmput(mm);
	assert_true(atomic_load(&mm->exiting));
	/* Exit dropped the users' reference; ours and the subscribers' stay. */
	assert_int_equal(atomic_load(&mm->mm_count), count - 1);
	for (struct recorder *s = &a; s; s = s == &a ? &b : NULL) {
		assert_int_equal(rec_calls(s, REC_RELEASE), 1);
		assert_int_equal(rec_done(s, REC_RELEASE), 1);
		assert_int_equal(rec_fired(s), 1);
		assert_true(atomic_load(&s->mn.released));
		assert_true(s->mn.registered);
	}
	assert_int_not_equal(pa.seen, 0);
	assert_int_not_equal(pb.seen, 0);
	assert_false(mm_has_notifiers(mm));
	assert_int_equal(mm_lookup_pte(mm, addr), 0);   /* exit did unmap */

	long ca = rec_total(&a, REC_ALL), cb = rec_total(&b, REC_ALL);
	do_range(mm, MMU_NOTIFY_UNMAP);
	struct mmu_notifier_range r;
	mmu_notifier_range_init(&r, MMU_NOTIFY_RELEASE, 0, mm, RANGE_START, RANGE_END);
	assert_int_equal(mmu_notifier_invalidate_range_start_nonblock(&r), 0);
	mmu_notifier_invalidate_range_end(&r);
	assert_int_equal(mmu_notifier_clear_flush_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_clear_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 0);
	mmu_notifier_change_pte(mm, RANGE_START, 0);
	/* A second release (a host bug) finds nobody to call. */
	mmu_notifier_release(mm);
	assert_int_equal(rec_total(&a, REC_ALL), ca);
	assert_int_equal(rec_total(&b, REC_ALL), cb);

	assert_int_equal(mmu_notifier_unregister(&a.mn, mm), 0);
	assert_int_equal(atomic_load(&mm->mm_count), count - 2);
	assert_int_equal(mmu_notifier_unregister(&a.mn, mm), -EINVAL);
	assert_int_equal(atomic_load(&mm->mm_count), count - 2);
	assert_int_equal(mmu_notifier_unregister(&b.mn, mm), 0);
	assert_int_equal(rec_calls(&a, REC_RELEASE), 1);
	assert_int_equal(rec_calls(&b, REC_RELEASE), 1);
	assert_int_equal(atomic_load(&mm->mm_count), count - 3);
	assert_int_equal(rec_total(&a, REC_ALL), ca);
	rec_destroy(&a);
	rec_destroy(&b);
	mmdrop(mm);     /* frees it */
	host_down(host);
}

/*
 * The recorder's own safety net: a pause that nobody resumes ends at its
 * timeout, is counted, and lets the thread go on -- a test that forgets
 * to resume fails instead of hanging. A trigger fires once unless told
 * otherwise.
 */
static void test_recorder_pause_times_out(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder s;

	rec_init(&s, 1, REC_ALL);
	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);
	rec_arm(&s, &(struct rec_trigger){ .kinds = REC_F(REC_START), .pause = true,
					   .timeout_ms = 50 });
	uint64_t t0 = ms_now();

	do_range(mm, MMU_NOTIFY_CLEAR);         /* paused on this very thread */
	assert_true(ms_now() - t0 >= 50);
	assert_int_equal(rec_timeouts(&s), 1);
	assert_int_equal(rec_fired(&s), 1);
	assert_false(rec_paused(&s));
	do_range(mm, MMU_NOTIFY_CLEAR);         /* disarmed: straight through */
	assert_int_equal(rec_fired(&s), 1);
	assert_int_equal(rec_calls(&s, REC_START), 2);
	assert_int_equal(rec_done(&s, REC_END), 2);
	assert_int_equal(rec_open(&s), 0);

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	rec_destroy(&s);
	mmput(mm);
	host_down(host);
}

/* ---- race: ranges against register/unregister ------------------------ */

#define RACE_READERS 3

struct range_race {
	struct mm *mm;
	struct recorder *steady, *cycled;
	atomic_bool stop;
	atomic_long issued[MMU_NOTIFY_NR_EVENTS];   /* starts the readers made */
	atomic_long young_issued;
	atomic_long cycles;
	atomic_long errors;         /* cycler's checks that failed */
	atomic_long first_error;    /* which check, for the message */
};

struct reader_arg {
	struct range_race *rr;
	int idx;
};

static void race_error(struct range_race *rr, long which)
{
	long zero = 0;

	atomic_fetch_add(&rr->errors, 1);
	atomic_compare_exchange_strong(&rr->first_error, &zero, which);
}

static void *range_reader(void *p)
{
	struct reader_arg *ra = p;
	struct range_race *rr = ra->rr;
	unsigned int ev = (unsigned int)ra->idx;

	while (!atomic_load(&rr->stop)) {
		struct mmu_notifier_range r;
		enum mmu_notifier_event e = (enum mmu_notifier_event)(ev++ % MMU_NOTIFY_NR_EVENTS);

		mmu_notifier_range_init(&r, e, MMU_NOTIFIER_RANGE_BLOCKABLE, rr->mm,
					RANGE_START, RANGE_END);
		mmu_notifier_invalidate_range_start(&r);
		atomic_fetch_add(&rr->issued[e], 1);
		mmu_notifier_invalidate_range_end(&r);
		/* Aging holds no range_lock: only the grace period keeps it
		 * from running on a subscriber that unregister returned. */
		mmu_notifier_clear_young(rr->mm, RANGE_START, RANGE_END);
		atomic_fetch_add(&rr->young_issued, 1);
		/* glibc's rwlock prefers readers: leave the writer a gap. */
		sched_yield();
	}
	return NULL;
}

static void *register_cycler(void *p)
{
	struct range_race *rr = p;
	struct recorder *s = rr->cycled;

	while (!atomic_load(&rr->stop)) {
		if (mmu_notifier_register(&s->mn, rr->mm) != 0)
			race_error(rr, 1);
		/* Let ranges and aging run on it for a while; every other
		 * time, unregister just as a range is opening on it. */
		bool mid_start = atomic_load(&rr->cycles) & 1;
		for (int i = 0; i < (mid_start ? 1000 : 4); i++) {
			if (mid_start && rec_running(s, REC_F(REC_START)))
				break;
			sched_yield();
		}
		if (mmu_notifier_unregister(&s->mn, rr->mm) != 0)
			race_error(rr, 2);
		long cycles = atomic_fetch_add(&rr->cycles, 1) + 1;

		/* Unregister returned: nothing in flight, pairs complete. */
		if (rec_running(s, REC_ALL) != 0)
			race_error(rr, 3);
		if (rec_open(s) != 0)
			race_error(rr, 4);
		if (rec_calls(s, REC_START) != rec_calls(s, REC_END))
			race_error(rr, 5);
		if (rec_calls(s, REC_RELEASE) != cycles)
			race_error(rr, 6);
		/* ... and nothing more arrives while the readers run on. */
		long calls = rec_total(s, REC_ALL);
		sleep_us(200);
		if (rec_total(s, REC_ALL) != calls)
			race_error(rr, 7);
	}
	return NULL;
}

/*
 * RACE_READERS threads open and close ranges and age the mm while another
 * registers and unregisters a second subscriber for about a second. Both
 * subscribers must see only complete start/end pairs (never an end with no
 * start open), the cycled one must be quiet and balanced whenever
 * unregister has returned (its aging callback sleeps, so a missing grace
 * period would be caught running; every other cycle unregisters while one
 * of its start callbacks sleeps, so an unlink mid-range would lose an end),
 * and the per-event counters must match what the readers issued.
 */
static void test_race_ranges_vs_register(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct recorder steady, cycled;
	struct range_race rr;
	pthread_t readers[RACE_READERS], cycler;
	struct reader_arg ra[RACE_READERS];

	struct delays slow = { .start_us = 20, .young_us = 50 };

	rec_init(&steady, 1, REC_ALL);
	rec_init(&cycled, 2, REC_ALL);
	slow_down(&cycled, &slow);
	memset(&rr, 0, sizeof(rr));
	rr.mm = mm;
	rr.steady = &steady;
	rr.cycled = &cycled;
	assert_int_equal(mmu_notifier_register(&steady.mn, mm), 0);

	for (int i = 0; i < RACE_READERS; i++) {
		ra[i] = (struct reader_arg){ .rr = &rr, .idx = i };
		assert_int_equal(pthread_create(&readers[i], NULL, range_reader, &ra[i]), 0);
	}
	assert_int_equal(pthread_create(&cycler, NULL, register_cycler, &rr), 0);
	sleep_ms(1000);
	atomic_store(&rr.stop, true);
	for (int i = 0; i < RACE_READERS; i++)
		pthread_join(readers[i], NULL);
	pthread_join(cycler, NULL);

	print_message("range race: %ld register cycles, %ld ranges on steady, "
		      "%ld callbacks on cycled\n", atomic_load(&rr.cycles),
		      rec_calls(&steady, REC_START), rec_total(&cycled, REC_ALL));
	assert_int_equal(atomic_load(&rr.first_error), 0);
	assert_int_equal(atomic_load(&rr.errors), 0);
	assert_true(atomic_load(&rr.cycles) > 0);
	/* The race actually happened: the cycled subscriber was called. */
	assert_true(rec_total(&cycled, REC_ALL) > 0);

	long issued = 0;
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++) {
		assert_int_equal(nr_calls(mm, e), atomic_load(&rr.issued[e]));
		assert_int_equal(atomic_load(&steady.starts_by_event[e]),
				 atomic_load(&rr.issued[e]));
		issued += atomic_load(&rr.issued[e]);
	}
	assert_int_equal(rec_calls(&steady, REC_START), issued);
	assert_int_equal(rec_calls(&steady, REC_END), issued);
	assert_int_equal(rec_open(&steady), 0);
	assert_int_equal(atomic_load(&steady.unpaired), 0);
	assert_int_equal(rec_calls(&steady, REC_CLEAR_YOUNG),
			 atomic_load(&rr.young_issued));
	assert_int_equal(atomic_load(&cycled.unpaired), 0);
	assert_int_equal(rec_calls(&cycled, REC_START), rec_calls(&cycled, REC_END));
	assert_int_equal(rec_calls(&cycled, REC_RELEASE), atomic_load(&rr.cycles));
	assert_true(range_lock_free(mm));

	assert_int_equal(mmu_notifier_unregister(&steady.mn, mm), 0);
	rec_destroy(&steady);
	rec_destroy(&cycled);
	mmput(mm);
	host_down(host);
}

/* ---- race: exit's release against unregister ------------------------- */

#define EXIT_RACE_ITERS 150

struct exit_race {
	struct mm *mm;
	struct recorder *s;
	pthread_barrier_t go;
	int unregister_ret;
	bool exit_saw_release_done;
	bool unregister_saw_release_done;
};

static void *exit_thread(void *p)
{
	struct exit_race *er = p;
	struct recorder *s = er->s;

	pthread_barrier_wait(&er->go);
	mmput(er->mm);          /* the last user: exit, then frames freed */
	/* Whoever called release, exit waited for it to finish. */
	er->exit_saw_release_done = rec_done(s, REC_RELEASE) == 1;
	return NULL;
}

static void *unregister_thread(void *p)
{
	struct exit_race *er = p;
	struct recorder *s = er->s;

	pthread_barrier_wait(&er->go);
	er->unregister_ret = mmu_notifier_unregister(&s->mn, er->mm);
	er->unregister_saw_release_done = rec_done(s, REC_RELEASE) == 1;
	return NULL;
}

/*
 * Many times: an mm with a populated page and one subscriber; the last
 * mmput and the subscriber's unregister start together on two threads.
 * release must run exactly once (whoever wins), both calls must return
 * only after it finished, unregister returns 0, and every frame (pages,
 * page tables, pgd) comes back once both are done.
 */
static void test_race_release_vs_unregister(void **state)
{
	struct host *host = host_up();
	uint64_t frames0 = host_frames_in_use(host);
	struct recorder s;
	struct delays slow[2] = { { 0 }, { .release_us = 100 } };
	char buf[16] = "x";

	for (int it = 0; it < EXIT_RACE_ITERS; it++) {
		struct exit_race er = { 0 };
		pthread_t t1, t2;
		hva_t addr;

		er.mm = mm_up(host);
		er.s = &s;
		rec_init(&s, 1, REC_ALL);
		/* Sometimes a slow release, to widen the window. */
		slow_down(&s, &slow[it % 3 == 0]);
		assert_int_equal(mm_mmap(er.mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, &addr), 0);
		assert_int_equal(mm_write(er.mm, addr, buf, sizeof(buf)), sizeof(buf));
		assert_int_equal(mmu_notifier_register(&s.mn, er.mm), 0);
		assert_int_equal(pthread_barrier_init(&er.go, NULL, 2), 0);

		if (it & 1) {
			assert_int_equal(pthread_create(&t1, NULL, exit_thread, &er), 0);
			assert_int_equal(pthread_create(&t2, NULL, unregister_thread, &er), 0);
		} else {
			assert_int_equal(pthread_create(&t2, NULL, unregister_thread, &er), 0);
			assert_int_equal(pthread_create(&t1, NULL, exit_thread, &er), 0);
		}
		pthread_join(t1, NULL);
		pthread_join(t2, NULL);
		pthread_barrier_destroy(&er.go);

		assert_int_equal(er.unregister_ret, 0);
		assert_int_equal(rec_calls(&s, REC_RELEASE), 1);
		assert_true(er.exit_saw_release_done);
		assert_true(er.unregister_saw_release_done);
		assert_int_equal(rec_running(&s, REC_ALL), 0);
		assert_false(s.mn.registered);
		/* Both references dropped: the mm is gone with its frames. */
		assert_int_equal(host_frames_in_use(host), frames0);
		rec_destroy(&s);
	}
	host_down(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_names),
		cmocka_unit_test(test_register_unregister_basic),
		cmocka_unit_test(test_register_bad_input),
		cmocka_unit_test(test_unregister_bad_input),
		cmocka_unit_test(test_register_after_exit_esrch),
		cmocka_unit_test(test_range_pairs_two_subscribers),
		cmocka_unit_test(test_nonblock_eagain_unwinds),
		cmocka_unit_test(test_nonblock_contended),
		cmocka_unit_test(test_young_and_change_pte),
		cmocka_unit_test(test_release_once_on_last_mmput),
		cmocka_unit_test(test_recorder_pause_times_out),
		cmocka_unit_test(test_race_ranges_vs_register),
		cmocka_unit_test(test_race_release_vs_unregister),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
