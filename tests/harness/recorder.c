/* SPDX-License-Identifier: MIT */
/*
 * recorder.c - the tests' recording MMU-notifier subscriber (recorder.h).
 *
 * Every callback goes through rec_call(): number the call, decide the
 * answer, do the bookkeeping the answer implies (a start answered 0 opens
 * a range, an end closes one), act if the trigger matches (pause, then
 * the action, without the lock), log the call, count it returned.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/compiler.h"
#include "harness/recorder.h"
#include "harness/util.h"

/* The order of calls over every recorder of the process (rec_mark). */
static atomic_uint_least64_t rec_seq;

static const char rec_letter[REC_NR_KINDS] = {
	[REC_START] = 's', [REC_END] = 'e', [REC_RELEASE] = 'r',
	[REC_CLEAR_FLUSH_YOUNG] = 'f', [REC_CLEAR_YOUNG] = 'c',
	[REC_TEST_YOUNG] = 't', [REC_CHANGE_PTE] = 'p',
};

static const char *const rec_name[REC_NR_KINDS] = {
	[REC_START] = "invalidate_range_start", [REC_END] = "invalidate_range_end",
	[REC_RELEASE] = "release", [REC_CLEAR_FLUSH_YOUNG] = "clear_flush_young",
	[REC_CLEAR_YOUNG] = "clear_young", [REC_TEST_YOUNG] = "test_young",
	[REC_CHANGE_PTE] = "change_pte",
};

static struct recorder *to_rec(struct mmu_notifier *mn)
{
	return container_of(mn, struct recorder, mn);
}

static bool rec_matches(const struct rec_trigger *t, const struct rec_entry *e)
{
	if (!(t->kinds & REC_F(e->kind)))
		return false;
	if (t->events && (!(REC_RANGE & REC_F(e->kind)) || !(t->events & REC_EV(e->event))))
		return false;
	if ((t->start || t->end) && !(e->start < t->end && t->start < e->end))
		return false;
	return true;
}

/* Called with r->lock held: stop until rec_resume() or the timeout. */
static void rec_pause_locked(struct recorder *r, const struct rec_entry *e,
			     unsigned int timeout_ms)
{
	struct timespec ts;

	deadline_ms(&ts, timeout_ms ? timeout_ms : REC_PAUSE_MS);
	r->paused = true;
	r->go = false;
	pthread_cond_broadcast(&r->cond);
	while (!r->go) {
		if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT) {
			atomic_fetch_add(&r->timeouts, 1);
			fprintf(stderr, "recorder %d: paused in %s [%#llx, %#llx) and never "
				"resumed; going on\n", r->id, rec_name[e->kind],
				(unsigned long long)e->start, (unsigned long long)e->end);
			break;
		}
	}
	r->paused = false;
	pthread_cond_broadcast(&r->cond);
}

static void rec_fire(struct recorder *r, const struct rec_entry *e)
{
	struct rec_trigger t;

	pthread_mutex_lock(&r->lock);
	if (!atomic_load(&r->armed) || !rec_matches(&r->trig, e)) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	t = r->trig;
	if (!t.every)
		atomic_store(&r->armed, false);
	atomic_fetch_add(&r->fired, 1);
	if (t.pause)
		rec_pause_locked(r, e, t.timeout_ms);
	pthread_mutex_unlock(&r->lock);
	if (t.action)
		t.action(r, e, t.arg);
}

/* Once the log is full, a race test's millions of calls take no lock. */
static void rec_log_append(struct recorder *r, const struct rec_entry *e)
{
	if (atomic_load(&r->nr_log) < REC_LOG_SIZE) {
		pthread_mutex_lock(&r->lock);
		unsigned int n = atomic_load(&r->nr_log);

		if (n < REC_LOG_SIZE) {
			r->log[n] = *e;
			atomic_store(&r->nr_log, n + 1);
			pthread_mutex_unlock(&r->lock);
			return;
		}
		pthread_mutex_unlock(&r->lock);
	}
	atomic_fetch_add(&r->lost, 1);
}

static int rec_call(struct recorder *r, struct rec_entry *e)
{
	e->seq = atomic_fetch_add(&rec_seq, 1) + 1;
	e->id = r->id;
	e->nth = atomic_fetch_add(&r->calls[e->kind], 1) + 1;
	switch (e->kind) {
	case REC_START:
		e->ret = r->eagain_nonblock && !e->blockable ? -EAGAIN : 0;
		if ((unsigned int)e->event < MMU_NOTIFY_NR_EVENTS)
			atomic_fetch_add(&r->starts_by_event[e->event], 1);
		if (e->ret == 0)        /* -EAGAIN: the core owes no end */
			atomic_fetch_add(&r->open, 1);
		break;
	case REC_END:
		if (atomic_fetch_sub(&r->open, 1) <= 0)
			atomic_fetch_add(&r->unpaired, 1);
		break;
	case REC_CLEAR_FLUSH_YOUNG:
	case REC_CLEAR_YOUNG:
	case REC_TEST_YOUNG:
		e->ret = r->young;
		break;
	default:
		break;
	}
	if (atomic_load(&r->armed))
		rec_fire(r, e);
	rec_log_append(r, e);
	atomic_fetch_add(&r->done[e->kind], 1);
	return e->ret;
}

static int rec_start(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	struct rec_entry e = {
		.kind = REC_START, .mm = range->mm, .start = range->start, .end = range->end,
		.event = range->event, .blockable = mmu_notifier_range_blockable(range),
	};

	return rec_call(to_rec(mn), &e);
}

static void rec_end(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	struct rec_entry e = {
		.kind = REC_END, .mm = range->mm, .start = range->start, .end = range->end,
		.event = range->event, .blockable = mmu_notifier_range_blockable(range),
	};

	rec_call(to_rec(mn), &e);
}

static void rec_release(struct mmu_notifier *mn, struct mm *mm)
{
	struct rec_entry e = { .kind = REC_RELEASE, .mm = mm };

	rec_call(to_rec(mn), &e);
}

static int rec_clear_flush_young(struct mmu_notifier *mn, struct mm *mm, hva_t start,
				 hva_t end)
{
	struct rec_entry e = { .kind = REC_CLEAR_FLUSH_YOUNG, .mm = mm, .start = start,
			       .end = end };

	return rec_call(to_rec(mn), &e);
}

static int rec_clear_young(struct mmu_notifier *mn, struct mm *mm, hva_t start, hva_t end)
{
	struct rec_entry e = { .kind = REC_CLEAR_YOUNG, .mm = mm, .start = start,
			       .end = end };

	return rec_call(to_rec(mn), &e);
}

static int rec_test_young(struct mmu_notifier *mn, struct mm *mm, hva_t address)
{
	struct rec_entry e = { .kind = REC_TEST_YOUNG, .mm = mm, .start = address,
			       .end = address + PAGE_SIZE };

	return rec_call(to_rec(mn), &e);
}

static void rec_change_pte(struct mmu_notifier *mn, struct mm *mm, hva_t address,
			   pte_t pte)
{
	struct rec_entry e = { .kind = REC_CHANGE_PTE, .mm = mm, .start = address,
			       .end = address + PAGE_SIZE, .pte = pte };

	rec_call(to_rec(mn), &e);
}

void rec_init(struct recorder *r, int id, unsigned int kinds)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	if (kinds & REC_F(REC_START))
		r->ops.invalidate_range_start = rec_start;
	if (kinds & REC_F(REC_END))
		r->ops.invalidate_range_end = rec_end;
	if (kinds & REC_F(REC_RELEASE))
		r->ops.release = rec_release;
	if (kinds & REC_F(REC_CLEAR_FLUSH_YOUNG))
		r->ops.clear_flush_young = rec_clear_flush_young;
	if (kinds & REC_F(REC_CLEAR_YOUNG))
		r->ops.clear_young = rec_clear_young;
	if (kinds & REC_F(REC_TEST_YOUNG))
		r->ops.test_young = rec_test_young;
	if (kinds & REC_F(REC_CHANGE_PTE))
		r->ops.change_pte = rec_change_pte;
	r->mn.ops = &r->ops;
	sync_init(&r->lock, &r->cond);
}

void rec_destroy(struct recorder *r)
{
	assert_false(r->paused);
	sync_destroy(&r->lock, &r->cond);
}

void rec_reset(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	for (int k = 0; k < REC_NR_KINDS; k++) {
		atomic_store(&r->calls[k], 0);
		atomic_store(&r->done[k], 0);
	}
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		atomic_store(&r->starts_by_event[e], 0);
	atomic_store(&r->unpaired, 0);
	atomic_store(&r->fired, 0);
	atomic_store(&r->nr_log, 0);
	atomic_store(&r->lost, 0);
	pthread_mutex_unlock(&r->lock);
}

void rec_arm(struct recorder *r, const struct rec_trigger *t)
{
	pthread_mutex_lock(&r->lock);
	r->trig = *t;
	atomic_store(&r->armed, true);
	pthread_mutex_unlock(&r->lock);
}

void rec_disarm(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	atomic_store(&r->armed, false);
	r->go = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

bool rec_wait_paused(struct recorder *r, unsigned int ms)
{
	pthread_mutex_lock(&r->lock);
	bool paused = wait_flag(&r->lock, &r->cond, &r->paused, ms);
	pthread_mutex_unlock(&r->lock);
	return paused;
}

bool rec_paused(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	bool paused = r->paused;
	pthread_mutex_unlock(&r->lock);
	return paused;
}

void rec_resume(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	r->go = true;
	r->paused = false;      /* for the next rec_wait_paused, at once */
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

long rec_running(struct recorder *r, unsigned int kinds)
{
	long n = 0;

	/* done before calls: each done is preceded by its call, so the
	 * difference is never negative. */
	for (int k = 0; k < REC_NR_KINDS; k++)
		if (kinds & REC_F(k))
			n -= atomic_load(&r->done[k]);
	for (int k = 0; k < REC_NR_KINDS; k++)
		if (kinds & REC_F(k))
			n += atomic_load(&r->calls[k]);
	return n;
}

long rec_total(struct recorder *r, unsigned int kinds)
{
	long n = 0;

	for (int k = 0; k < REC_NR_KINDS; k++)
		if (kinds & REC_F(k))
			n += atomic_load(&r->calls[k]);
	return n;
}

struct rec_entry rec_last(struct recorder *r, unsigned int kinds)
{
	struct rec_entry e = { 0 };

	pthread_mutex_lock(&r->lock);
	for (unsigned int i = atomic_load(&r->nr_log); i-- > 0;) {
		if (kinds & REC_F(r->log[i].kind)) {
			e = r->log[i];
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return e;
}

uint64_t rec_mark(void)
{
	return atomic_load(&rec_seq);
}

void rec_trace(char *buf, size_t size, uint64_t since, struct recorder *const *recs,
	       unsigned int n)
{
	size_t len = 0;

	assert_true(size > 0);
	buf[0] = '\0';
	/* Repeatedly the smallest seq above the last one written: the logs
	 * are short, and each is in seq order only per thread. */
	for (uint64_t last = since;;) {
		struct rec_entry next = { 0 };

		for (unsigned int i = 0; i < n; i++) {
			pthread_mutex_lock(&recs[i]->lock);
			unsigned int nr = atomic_load(&recs[i]->nr_log);

			for (unsigned int j = 0; j < nr; j++) {
				const struct rec_entry *e = &recs[i]->log[j];

				if (e->seq > last && (!next.seq || e->seq < next.seq))
					next = *e;
			}
			pthread_mutex_unlock(&recs[i]->lock);
		}
		if (!next.seq)
			break;
		last = next.seq;
		int w = snprintf(buf + len, size - len, "%s%d%c", len ? " " : "", next.id,
				 rec_letter[next.kind]);

		if (w < 0 || (size_t)w >= size - len)
			break;
		len += (size_t)w;
	}
}
