/* SPDX-License-Identifier: MIT */
/*
 * test_notifier.c - the mmu_notifier core (src/notifier/mmu_notifier.c)
 * against a real host: registration and its errors, range pairing, the
 * non-blocking start's unwind, aging, release on exit, and two races:
 * ranges against register/unregister, and exit's release against
 * unregister.
 *
 * Each test makes its own host and checks at the end that every frame came
 * back and the host can be destroyed.
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

#define RANGE_START 0x100000ULL
#define RANGE_END   0x140000ULL

/* ---- a test subscriber ------------------------------------------------ */

struct order_log {
	int id[32];
	char op[32];        /* 's' start, 'e' end, 'y' young, 'p' change_pte */
	int n;
};

struct sub {
	struct mmu_notifier mn;
	int id;
	int start_ret;              /* invalidate_range_start returns this */
	int young_ret;              /* the three aging calls return this */
	unsigned int young_sleep_us; /* sleep inside aging callbacks */
	unsigned int start_sleep_us; /* sleep inside start, every 4th call */
	unsigned int release_sleep_us;
	struct order_log *log;      /* single-threaded tests only */
	hva_t check_addr;           /* release: is this still mapped? */

	atomic_long starts;         /* every start call, failed ones too */
	atomic_long ends;
	atomic_long starts_by_event[MMU_NOTIFY_NR_EVENTS];
	atomic_long in_progress;    /* successful starts minus ends */
	atomic_long violations;     /* an end with no start open */
	atomic_long release_calls;
	atomic_bool release_done;
	atomic_long clear_flush_young_calls;
	atomic_long clear_young_calls;
	atomic_long test_young_calls;
	atomic_long change_pte_calls;
	atomic_int in_cb;           /* callbacks running now */
	atomic_int in_start;        /* start callbacks running now */
	atomic_long calls;          /* every callback ever */

	/* Written only by single-threaded tests. */
	struct mmu_notifier_range last_range;
	hva_t last_addr;
	pte_t last_pte;
	pte_t release_saw_pte;
};

static struct sub *to_sub(struct mmu_notifier *mn)
{
	return container_of(mn, struct sub, mn);
}

static void cb_enter(struct sub *s, char op)
{
	atomic_fetch_add(&s->in_cb, 1);
	atomic_fetch_add(&s->calls, 1);
	if (s->log && s->log->n < (int)ARRAY_SIZE(s->log->id)) {
		s->log->id[s->log->n] = s->id;
		s->log->op[s->log->n] = op;
		s->log->n++;
	}
}

static void cb_exit(struct sub *s)
{
	atomic_fetch_sub(&s->in_cb, 1);
}

static int sub_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct sub *s = to_sub(mn);

	cb_enter(s, 's');
	atomic_fetch_add(&s->in_start, 1);
	atomic_fetch_add(&s->starts, 1);
	atomic_fetch_add(&s->starts_by_event[r->event], 1);
	if (s->log)
		s->last_range = *r;
	if (s->start_ret != -EAGAIN)  /* -EAGAIN: no end is owed */
		atomic_fetch_add(&s->in_progress, 1);
	if (s->start_sleep_us && (atomic_load(&s->starts) & 3) == 0)
		usleep(s->start_sleep_us);
	atomic_fetch_sub(&s->in_start, 1);
	cb_exit(s);
	return s->start_ret;
}

static void sub_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct sub *s = to_sub(mn);

	cb_enter(s, 'e');
	atomic_fetch_add(&s->ends, 1);
	if (atomic_fetch_sub(&s->in_progress, 1) <= 0)
		atomic_fetch_add(&s->violations, 1);
	if (s->log)
		s->last_range = *r;
	cb_exit(s);
}

static void sub_release(struct mmu_notifier *mn, struct mm *mm)
{
	struct sub *s = to_sub(mn);

	cb_enter(s, 'r');
	atomic_fetch_add(&s->release_calls, 1);
	if (s->check_addr)
		s->release_saw_pte = mm_lookup_pte(mm, s->check_addr);
	if (s->release_sleep_us)
		usleep(s->release_sleep_us);
	atomic_store(&s->release_done, true);
	cb_exit(s);
}

static int sub_young(struct sub *s, atomic_long *counter)
{
	cb_enter(s, 'y');
	atomic_fetch_add(counter, 1);
	if (s->young_sleep_us)
		usleep(s->young_sleep_us);
	cb_exit(s);
	return s->young_ret;
}

static int sub_clear_flush_young(struct mmu_notifier *mn, struct mm *mm,
				 hva_t start, hva_t end)
{
	return sub_young(to_sub(mn), &to_sub(mn)->clear_flush_young_calls);
}

static int sub_clear_young(struct mmu_notifier *mn, struct mm *mm,
			   hva_t start, hva_t end)
{
	return sub_young(to_sub(mn), &to_sub(mn)->clear_young_calls);
}

static int sub_test_young(struct mmu_notifier *mn, struct mm *mm, hva_t addr)
{
	return sub_young(to_sub(mn), &to_sub(mn)->test_young_calls);
}

static void sub_change_pte(struct mmu_notifier *mn, struct mm *mm, hva_t addr,
			   pte_t pte)
{
	struct sub *s = to_sub(mn);

	cb_enter(s, 'p');
	atomic_fetch_add(&s->change_pte_calls, 1);
	if (s->log) {
		s->last_addr = addr;
		s->last_pte = pte;
	}
	cb_exit(s);
}

static const struct mmu_notifier_ops sub_ops = {
	.release = sub_release,
	.clear_flush_young = sub_clear_flush_young,
	.clear_young = sub_clear_young,
	.test_young = sub_test_young,
	.change_pte = sub_change_pte,
	.invalidate_range_start = sub_start,
	.invalidate_range_end = sub_end,
};

/* A subscriber that only wants release: every other call must skip it. */
static const struct mmu_notifier_ops release_only_ops = {
	.release = sub_release,
};

static void sub_init(struct sub *s, int id, const struct mmu_notifier_ops *ops)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->mn.ops = ops;
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
	struct sub s;
	int count0 = atomic_load(&mm->mm_count);

	sub_init(&s, 1, &sub_ops);
	assert_false(mm_has_notifiers(mm));
	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);
	assert_true(mm_has_notifiers(mm));
	assert_int_equal(subs_nr(mm), 1);
	assert_true(s.mn.registered);
	assert_ptr_equal(s.mn.mm, mm);
	assert_false(atomic_load(&s.mn.released));
	assert_int_equal(atomic_load(&mm->mm_count), count0 + 1);

	do_range(mm, MMU_NOTIFY_CLEAR);
	assert_int_equal(atomic_load(&s.starts), 1);
	assert_int_equal(atomic_load(&s.ends), 1);

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	assert_int_equal(atomic_load(&s.release_calls), 1);
	assert_false(mm_has_notifiers(mm));
	assert_int_equal(subs_nr(mm), 0);
	assert_false(s.mn.registered);
	assert_int_equal(atomic_load(&mm->mm_count), count0);

	/* Gone: no more callbacks. */
	long calls = atomic_load(&s.calls);
	do_range(mm, MMU_NOTIFY_UNMAP);
	assert_int_equal(mmu_notifier_clear_young(mm, RANGE_START, RANGE_END), 0);
	mmu_notifier_change_pte(mm, RANGE_START, 0);
	assert_int_equal(atomic_load(&s.calls), calls);

	/* The same struct can be registered again, and released again. */
	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);
	assert_false(atomic_load(&s.mn.released));
	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	assert_int_equal(atomic_load(&s.release_calls), 2);

	mmput(mm);
	host_down(host);
}

/* register: -EINVAL for NULLs, no ops, or a subscriber already registered
 * (here or elsewhere), and nothing changes on failure. */
static void test_register_bad_input(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host), *mm2 = mm_up(host);
	struct sub s, noops;
	int count0 = atomic_load(&mm->mm_count), count2 = atomic_load(&mm2->mm_count);

	sub_init(&s, 1, &sub_ops);
	sub_init(&noops, 2, NULL);
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
	assert_int_equal(atomic_load(&s.starts), 1);

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	assert_int_equal(atomic_load(&mm->mm_count), count0);
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
	struct sub s, never;
	int count0 = atomic_load(&mm->mm_count);

	sub_init(&s, 1, &sub_ops);
	sub_init(&never, 2, &sub_ops);
	assert_int_equal(mmu_notifier_unregister(NULL, mm), -EINVAL);
	assert_int_equal(mmu_notifier_unregister(&never.mn, mm), -EINVAL);
	assert_int_equal(atomic_load(&never.release_calls), 0);

	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&s.mn, NULL), -EINVAL);
	assert_int_equal(mmu_notifier_unregister(&s.mn, mm2), -EINVAL);
	assert_int_equal(atomic_load(&s.release_calls), 0);
	assert_int_equal(subs_nr(mm), 1);
	assert_int_equal(atomic_load(&mm->mm_count), count0 + 1);

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), -EINVAL);
	assert_int_equal(atomic_load(&s.release_calls), 1);
	assert_int_equal(atomic_load(&mm->mm_count), count0);

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
	struct sub s;

	sub_init(&s, 1, &sub_ops);
	mmgrab(mm);     /* keep the struct past exit */
	mmput(mm);
	assert_true(atomic_load(&mm->exiting));
	int count = atomic_load(&mm->mm_count);

	assert_int_equal(mmu_notifier_register(&s.mn, mm), -ESRCH);
	assert_false(s.mn.registered);
	assert_int_equal(subs_nr(mm), 0);
	assert_int_equal(atomic_load(&mm->mm_count), count);
	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), -EINVAL);
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
	struct sub a, b, quiet;
	struct order_log log = { 0 };

	sub_init(&a, 1, &sub_ops);
	sub_init(&b, 2, &sub_ops);
	sub_init(&quiet, 3, &release_only_ops);
	a.log = b.log = quiet.log = &log;

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
	mmu_notifier_range_init(&r, MMU_NOTIFY_PROTECTION_VMA, 0, mm,
				RANGE_START, RANGE_END);
	assert_int_equal(mmu_notifier_invalidate_range_start(&r), 0);
	assert_int_equal(atomic_load(&a.in_progress), 1);
	assert_int_equal(atomic_load(&b.in_progress), 1);
	assert_int_equal(atomic_load(&a.ends), 0);
	assert_ptr_equal(a.last_range.mm, mm);
	assert_int_equal(a.last_range.start, RANGE_START);
	assert_int_equal(a.last_range.end, RANGE_END);
	assert_int_equal(a.last_range.event, MMU_NOTIFY_PROTECTION_VMA);
	assert_true(a.last_range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	mmu_notifier_invalidate_range_end(&r);
	assert_int_equal(atomic_load(&a.in_progress), 0);
	assert_int_equal(atomic_load(&b.in_progress), 0);
	assert_true(range_lock_free(mm));
	/* Newest first (added at the head): b, a; quiet is skipped. */
	assert_int_equal(log.n, 4);
	assert_int_equal(log.id[0], 2);
	assert_int_equal(log.op[0], 's');
	assert_int_equal(log.id[1], 1);
	assert_int_equal(log.op[1], 's');
	assert_int_equal(log.id[2], 2);
	assert_int_equal(log.op[2], 'e');
	assert_int_equal(log.id[3], 1);
	assert_int_equal(log.op[3], 'e');
	a.log = b.log = quiet.log = NULL;

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
	assert_int_equal(atomic_load(&a.starts), total);
	assert_int_equal(atomic_load(&a.ends), total);
	assert_int_equal(atomic_load(&b.starts), total);
	assert_int_equal(atomic_load(&b.ends), total);
	assert_int_equal(atomic_load(&a.violations), 0);
	assert_int_equal(atomic_load(&b.violations), 0);
	assert_int_equal(atomic_load(&quiet.calls), 0);

	/* Nested ranges on one thread are allowed and stay paired. */
	struct mmu_notifier_range outer, inner;
	mmu_notifier_range_init(&outer, MMU_NOTIFY_UNMAP, 0, mm, RANGE_START, RANGE_END);
	mmu_notifier_range_init(&inner, MMU_NOTIFY_CLEAR, 0, mm, RANGE_START,
				RANGE_START + PAGE_SIZE);
	assert_int_equal(mmu_notifier_invalidate_range_start(&outer), 0);
	assert_int_equal(mmu_notifier_invalidate_range_start(&inner), 0);
	assert_int_equal(atomic_load(&a.in_progress), 2);
	mmu_notifier_invalidate_range_end(&inner);
	assert_false(range_lock_free(mm));
	mmu_notifier_invalidate_range_end(&outer);
	assert_true(range_lock_free(mm));
	assert_int_equal(atomic_load(&a.in_progress), 0);

	assert_int_equal(mmu_notifier_unregister(&a.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&b.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&quiet.mn, mm), 0);
	assert_int_equal(atomic_load(&quiet.release_calls), 1);
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
	struct sub after, fail, ok;
	struct order_log log = { 0 };

	sub_init(&after, 3, &sub_ops);
	sub_init(&fail, 2, &sub_ops);
	sub_init(&ok, 1, &sub_ops);
	fail.start_ret = -EAGAIN;
	after.log = fail.log = ok.log = &log;
	/* Added at the head, so walked in the reverse order. */
	assert_int_equal(mmu_notifier_register(&after.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&fail.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&ok.mn, mm), 0);

	struct mmu_notifier_range r;
	mmu_notifier_range_init(&r, MMU_NOTIFY_RELEASE, MMU_NOTIFIER_RANGE_BLOCKABLE,
				mm, RANGE_START, RANGE_END);
	assert_int_equal(mmu_notifier_invalidate_range_start_nonblock(&r), -EAGAIN);
	assert_false(r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	assert_false(ok.last_range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	assert_int_equal(atomic_load(&ok.starts), 1);
	assert_int_equal(atomic_load(&ok.ends), 1);
	assert_int_equal(atomic_load(&fail.starts), 1);
	assert_int_equal(atomic_load(&fail.ends), 0);
	assert_int_equal(atomic_load(&after.calls), 0);
	assert_int_equal(log.n, 3);
	assert_int_equal(log.id[0], 1);
	assert_int_equal(log.op[0], 's');
	assert_int_equal(log.id[1], 2);
	assert_int_equal(log.op[1], 's');
	assert_int_equal(log.id[2], 1);
	assert_int_equal(log.op[2], 'e');
	assert_true(range_lock_free(mm));

	/* range_lock was given back: a blockable start works and reaches
	 * everyone. */
	fail.start_ret = 0;
	do_range(mm, MMU_NOTIFY_CLEAR);
	assert_int_equal(atomic_load(&ok.starts), 2);
	assert_int_equal(atomic_load(&fail.starts), 2);
	assert_int_equal(atomic_load(&fail.ends), 1);
	assert_int_equal(atomic_load(&after.starts), 1);
	assert_int_equal(atomic_load(&after.ends), 1);

	/* A non-blocking start that succeeds owes an end like any other. */
	assert_int_equal(mmu_notifier_invalidate_range_start_nonblock(&r), 0);
	assert_false(range_lock_free(mm));
	assert_int_equal(atomic_load(&after.in_progress), 1);
	mmu_notifier_invalidate_range_end(&r);
	assert_true(range_lock_free(mm));

	for (struct sub *s = &ok; s; s = s == &ok ? &fail : s == &fail ? &after : NULL) {
		assert_int_equal(atomic_load(&s->in_progress), 0);
		assert_int_equal(atomic_load(&s->violations), 0);
	}
	assert_int_equal(nr_calls(mm, MMU_NOTIFY_RELEASE), 2);

	assert_int_equal(mmu_notifier_unregister(&ok.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&fail.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&after.mn, mm), 0);
	mmput(mm);
	host_down(host);
}

/* While a writer holds range_lock, the non-blocking start fails at once
 * and calls nobody. */
static void test_nonblock_contended(void **state)
{
	struct host *host = host_up();
	struct mm *mm = mm_up(host);
	struct sub s;
	struct rwsem *l = &mm->notifier_subscriptions.range_lock;

	sub_init(&s, 1, &sub_ops);
	assert_int_equal(mmu_notifier_register(&s.mn, mm), 0);

	struct mmu_notifier_range r;
	mmu_notifier_range_init(&r, MMU_NOTIFY_RELEASE, 0, mm, RANGE_START, RANGE_END);
	down_write(l);
	assert_int_equal(mmu_notifier_invalidate_range_start_nonblock(&r), -EAGAIN);
	up_write(l);
	assert_int_equal(atomic_load(&s.calls), 0);
	assert_true(range_lock_free(mm));

	assert_int_equal(mmu_notifier_unregister(&s.mn, mm), 0);
	mmput(mm);
	host_down(host);
}

static void young_reset(struct sub *s, int young_ret)
{
	s->young_ret = young_ret;
	atomic_store(&s->clear_flush_young_calls, 0);
	atomic_store(&s->clear_young_calls, 0);
	atomic_store(&s->test_young_calls, 0);
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
	struct sub s3, s2, s1, quiet;
	struct sub *all[] = { &s1, &s2, &s3 };    /* walk order */

	assert_int_equal(mmu_notifier_clear_flush_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 0);
	sub_init(&quiet, 4, &release_only_ops);
	sub_init(&s3, 3, &sub_ops);
	sub_init(&s2, 2, &sub_ops);
	sub_init(&s1, 1, &sub_ops);
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
		assert_int_equal(atomic_load(&all[i]->clear_flush_young_calls), 1);
		assert_int_equal(atomic_load(&all[i]->clear_young_calls), 1);
		assert_int_equal(atomic_load(&all[i]->test_young_calls), 1);
	}

	/* Only the first walked is young: clears still reach the others. */
	young_reset(&s1, 1);
	young_reset(&s2, 0);
	young_reset(&s3, 0);
	assert_int_not_equal(mmu_notifier_clear_flush_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_not_equal(mmu_notifier_clear_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(atomic_load(&all[i]->clear_flush_young_calls), 1);
		assert_int_equal(atomic_load(&all[i]->clear_young_calls), 1);
	}
	assert_int_equal(atomic_load(&s1.test_young_calls), 1);
	assert_int_equal(atomic_load(&s2.test_young_calls), 0);
	assert_int_equal(atomic_load(&s3.test_young_calls), 0);

	/* Only the last walked is young. */
	young_reset(&s1, 0);
	young_reset(&s2, 0);
	young_reset(&s3, 1);
	assert_int_not_equal(mmu_notifier_clear_flush_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_not_equal(mmu_notifier_clear_young(mm, RANGE_START, RANGE_END), 0);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(atomic_load(&all[i]->test_young_calls), 1);

	/* The middle one: test_young stops there. */
	young_reset(&s1, 0);
	young_reset(&s2, 1);
	young_reset(&s3, 1);
	assert_int_equal(mmu_notifier_test_young(mm, RANGE_START), 1);
	assert_int_equal(atomic_load(&s3.test_young_calls), 0);

	assert_int_equal(atomic_load(&mm->notifier_subscriptions.nr_young_calls), 2 + 3 * 3 + 1);

	/* change_pte: everyone, with what the host passed. */
	struct order_log log = { 0 };
	for (int i = 0; i < 3; i++)
		all[i]->log = &log;
	mmu_notifier_change_pte(mm, RANGE_START + PAGE_SIZE, 0x1234067);
	assert_int_equal(log.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(atomic_load(&all[i]->change_pte_calls), 1);
		assert_int_equal(all[i]->last_addr, RANGE_START + PAGE_SIZE);
		assert_int_equal(all[i]->last_pte, 0x1234067);
		all[i]->log = NULL;
	}
	assert_int_equal(atomic_load(&quiet.calls), 0);

	assert_int_equal(mmu_notifier_unregister(&s1.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&s2.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&s3.mn, mm), 0);
	assert_int_equal(mmu_notifier_unregister(&quiet.mn, mm), 0);
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
	struct sub a, b;
	hva_t addr;
	char buf[64] = "tandem";

	sub_init(&a, 1, &sub_ops);
	sub_init(&b, 2, &sub_ops);
	assert_int_equal(mm_mmap(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, &addr), 0);
	assert_int_equal(mm_write(mm, addr, buf, sizeof(buf)), sizeof(buf));
	assert_int_not_equal(mm_lookup_pte(mm, addr), 0);
	a.check_addr = b.check_addr = addr;
	assert_int_equal(mmu_notifier_register(&a.mn, mm), 0);
	assert_int_equal(mmu_notifier_register(&b.mn, mm), 0);
	assert_true(host_frames_in_use(host) > 0);

	mmgrab(mm);     /* our own struct reference, to poke it after exit */
	int count = atomic_load(&mm->mm_count);
	mmput(mm);
	assert_true(atomic_load(&mm->exiting));
	/* Exit dropped the users' reference; ours and the subscribers' stay. */
	assert_int_equal(atomic_load(&mm->mm_count), count - 1);
	for (struct sub *s = &a; s; s = s == &a ? &b : NULL) {
		assert_int_equal(atomic_load(&s->release_calls), 1);
		assert_true(atomic_load(&s->release_done));
		assert_int_not_equal(s->release_saw_pte, 0);
		assert_true(atomic_load(&s->mn.released));
		assert_true(s->mn.registered);
	}
	assert_false(mm_has_notifiers(mm));
	assert_int_equal(mm_lookup_pte(mm, addr), 0);   /* exit did unmap */

	long ca = atomic_load(&a.calls), cb = atomic_load(&b.calls);
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
	assert_int_equal(atomic_load(&a.calls), ca);
	assert_int_equal(atomic_load(&b.calls), cb);

	assert_int_equal(mmu_notifier_unregister(&a.mn, mm), 0);
	assert_int_equal(atomic_load(&mm->mm_count), count - 2);
	assert_int_equal(mmu_notifier_unregister(&a.mn, mm), -EINVAL);
	assert_int_equal(atomic_load(&mm->mm_count), count - 2);
	assert_int_equal(mmu_notifier_unregister(&b.mn, mm), 0);
	assert_int_equal(atomic_load(&a.release_calls), 1);
	assert_int_equal(atomic_load(&b.release_calls), 1);
	assert_int_equal(atomic_load(&mm->mm_count), count - 3);
	assert_int_equal(atomic_load(&a.calls), ca);
	mmdrop(mm);     /* frees it */
	host_down(host);
}

/* ---- race: ranges against register/unregister ------------------------ */

#define RACE_READERS 3

struct range_race {
	struct mm *mm;
	struct sub *steady, *cycled;
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
	struct sub *s = rr->cycled;

	while (!atomic_load(&rr->stop)) {
		if (mmu_notifier_register(&s->mn, rr->mm) != 0)
			race_error(rr, 1);
		/* Let ranges and aging run on it for a while; every other
		 * time, unregister just as a range is opening on it. */
		bool mid_start = atomic_load(&rr->cycles) & 1;
		for (int i = 0; i < (mid_start ? 1000 : 4); i++) {
			if (mid_start && atomic_load(&s->in_start))
				break;
			sched_yield();
		}
		if (mmu_notifier_unregister(&s->mn, rr->mm) != 0)
			race_error(rr, 2);
		long cycles = atomic_fetch_add(&rr->cycles, 1) + 1;

		/* Unregister returned: nothing in flight, pairs complete. */
		if (atomic_load(&s->in_cb) != 0)
			race_error(rr, 3);
		if (atomic_load(&s->in_progress) != 0)
			race_error(rr, 4);
		if (atomic_load(&s->starts) != atomic_load(&s->ends))
			race_error(rr, 5);
		if (atomic_load(&s->release_calls) != cycles)
			race_error(rr, 6);
		/* ... and nothing more arrives while the readers run on. */
		long calls = atomic_load(&s->calls);
		usleep(200);
		if (atomic_load(&s->calls) != calls)
			race_error(rr, 7);
	}
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
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
	struct sub steady, cycled;
	struct range_race rr;
	pthread_t readers[RACE_READERS], cycler;
	struct reader_arg ra[RACE_READERS];

	sub_init(&steady, 1, &sub_ops);
	sub_init(&cycled, 2, &sub_ops);
	cycled.young_sleep_us = 50;
	cycled.start_sleep_us = 20;
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
		      atomic_load(&steady.starts), atomic_load(&cycled.calls));
	assert_int_equal(atomic_load(&rr.first_error), 0);
	assert_int_equal(atomic_load(&rr.errors), 0);
	assert_true(atomic_load(&rr.cycles) > 0);
	/* The race actually happened: the cycled subscriber was called. */
	assert_true(atomic_load(&cycled.calls) > 0);

	long issued = 0;
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++) {
		assert_int_equal(nr_calls(mm, e), atomic_load(&rr.issued[e]));
		assert_int_equal(atomic_load(&steady.starts_by_event[e]),
				 atomic_load(&rr.issued[e]));
		issued += atomic_load(&rr.issued[e]);
	}
	assert_int_equal(atomic_load(&steady.starts), issued);
	assert_int_equal(atomic_load(&steady.ends), issued);
	assert_int_equal(atomic_load(&steady.in_progress), 0);
	assert_int_equal(atomic_load(&steady.violations), 0);
	assert_int_equal(atomic_load(&steady.clear_young_calls),
			 atomic_load(&rr.young_issued));
	assert_int_equal(atomic_load(&cycled.violations), 0);
	assert_int_equal(atomic_load(&cycled.starts), atomic_load(&cycled.ends));
	assert_int_equal(atomic_load(&cycled.release_calls), atomic_load(&rr.cycles));
	assert_true(range_lock_free(mm));

	assert_int_equal(mmu_notifier_unregister(&steady.mn, mm), 0);
	mmput(mm);
	host_down(host);
}

/* ---- race: exit's release against unregister ------------------------- */

#define EXIT_RACE_ITERS 150

struct exit_race {
	struct mm *mm;
	struct sub *s;
	pthread_barrier_t go;
	int unregister_ret;
	bool exit_saw_release_done;
	bool unregister_saw_release_done;
};

static void *exit_thread(void *p)
{
	struct exit_race *er = p;
	struct sub *s = er->s;

	pthread_barrier_wait(&er->go);
	mmput(er->mm);          /* the last user: exit, then frames freed */
	/* Whoever called release, exit waited for it to finish. */
	er->exit_saw_release_done = atomic_load(&s->release_done);
	return NULL;
}

static void *unregister_thread(void *p)
{
	struct exit_race *er = p;
	struct sub *s = er->s;

	pthread_barrier_wait(&er->go);
	er->unregister_ret = mmu_notifier_unregister(&s->mn, er->mm);
	er->unregister_saw_release_done = atomic_load(&s->release_done);
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
	struct sub s;
	char buf[16] = "x";

	for (int it = 0; it < EXIT_RACE_ITERS; it++) {
		struct exit_race er = { 0 };
		pthread_t t1, t2;
		hva_t addr;

		er.mm = mm_up(host);
		er.s = &s;
		sub_init(&s, 1, &sub_ops);
		/* Sometimes a slow release, to widen the window. */
		s.release_sleep_us = (it % 3 == 0) ? 100 : 0;
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
		assert_int_equal(atomic_load(&s.release_calls), 1);
		assert_true(er.exit_saw_release_done);
		assert_true(er.unregister_saw_release_done);
		assert_int_equal(atomic_load(&s.in_cb), 0);
		assert_false(s.mn.registered);
		/* Both references dropped: the mm is gone with its frames. */
		assert_int_equal(host_frames_in_use(host), frames0);
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
		cmocka_unit_test(test_race_ranges_vs_register),
		cmocka_unit_test(test_race_release_vs_unregister),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
