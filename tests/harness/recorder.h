/* SPDX-License-Identifier: MIT */
/*
 * recorder.h - the tests' one MMU-notifier subscriber.
 *
 * A recorder is a struct mmu_notifier that writes down every callback it
 * gets and otherwise does what a test tells it:
 *
 *  - records: each call as a struct rec_entry (kind, event, range,
 *    blockable, what it answered, and a sequence number that orders calls
 *    across every recorder of the process) in a log of REC_LOG_SIZE
 *    entries (later calls are counted, not kept), and counts per kind the
 *    calls entered and returned, the starts per event, the ranges open
 *    (starts answered 0 minus ends) and the ends that found none open;
 *  - answers: 0 to every start, except -EAGAIN to non-blockable ones when
 *    eagain_nonblock is set; `young` to the three aging calls;
 *  - acts, once or at every match, at a chosen callback (kinds, events,
 *    a range the call must overlap): pauses the calling thread until the
 *    test resumes it, then runs a caller-supplied action there. A pause
 *    lasts at most the trigger's timeout (REC_PAUSE_MS by default): a test
 *    that forgets to resume, or fails before it does, leaves a count in
 *    rec_timeouts() and a line on stderr, not a hung thread.
 *
 * It subscribes only to the callbacks named at rec_init (a subscriber
 * without test_young, say, is skipped by the core as a real one is). The
 * walk is newest first: a recorder registered before the VM sees each
 * call after kvm has handled it, one registered after the VM before.
 *
 * Counts are atomics, readable at any time. The log and the trigger are
 * under the recorder's lock; the action runs without it (it may do
 * anything a notifier callback may: sleep, drive a vCPU, read the host's
 * PTEs). Set young and eagain_nonblock, and call rec_reset, only while no
 * callback can run.
 */
#ifndef TANDEM_TESTS_HARNESS_RECORDER_H
#define TANDEM_TESTS_HARNESS_RECORDER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/mmu_notifier.h"

enum rec_kind {
	REC_START,              /* invalidate_range_start */
	REC_END,                /* invalidate_range_end */
	REC_RELEASE,
	REC_CLEAR_FLUSH_YOUNG,
	REC_CLEAR_YOUNG,
	REC_TEST_YOUNG,
	REC_CHANGE_PTE,
	REC_NR_KINDS
};

#define REC_F(kind)     (1u << (kind))
#define REC_ALL         (REC_F(REC_NR_KINDS) - 1)
#define REC_RANGE       (REC_F(REC_START) | REC_F(REC_END))
#define REC_AGING       (REC_F(REC_CLEAR_FLUSH_YOUNG) | REC_F(REC_CLEAR_YOUNG) | \
			 REC_F(REC_TEST_YOUNG))
#define REC_EV(event)   (1u << (event))

#define REC_LOG_SIZE    256
#define REC_PAUSE_MS    30000

struct rec_entry {
	uint64_t seq;                   /* order over all recorders; 0: no entry */
	enum rec_kind kind;
	int id;                         /* the recorder's */
	struct mm *mm;
	/* The range: [start, end) for range and clear calls, the page at the
	 * address for test_young and change_pte, [0, 0) for release. */
	hva_t start, end;
	enum mmu_notifier_event event;  /* range calls */
	bool blockable;                 /* range calls */
	pte_t pte;                      /* change_pte */
	int ret;                        /* the answer (start and aging calls) */
	long nth;                       /* this call's number among its kind, from 1 */
};

struct recorder;
typedef void (*rec_action_fn)(struct recorder *r, const struct rec_entry *call,
			      void *arg);

/* Where a recorder acts: a call of one of kinds, of one of events (range
 * calls; 0: any, and any kind), overlapping [start, end) (both 0: any). */
struct rec_trigger {
	unsigned int kinds;             /* REC_F() mask */
	unsigned int events;            /* REC_EV() mask, or 0 */
	hva_t start, end;
	bool every;                     /* at every match; else once, then disarmed */
	bool pause;                     /* stop there until rec_resume() ... */
	unsigned int timeout_ms;        /* ... or this long (0: REC_PAUSE_MS) */
	rec_action_fn action;           /* then run this, if set */
	void *arg;
};

struct recorder {
	struct mmu_notifier mn;
	struct mmu_notifier_ops ops;    /* the callbacks asked for at init */
	int id;
	/* Answers. */
	int young;                      /* to clear_flush_young, clear_young, test_young */
	bool eagain_nonblock;           /* -EAGAIN to non-blockable starts */
	/* Counts. */
	atomic_long calls[REC_NR_KINDS];        /* entered */
	atomic_long done[REC_NR_KINDS];         /* returned */
	atomic_long starts_by_event[MMU_NOTIFY_NR_EVENTS];
	atomic_long open;               /* starts answered 0, minus ends */
	atomic_long unpaired;           /* ends that found no start open */
	atomic_long fired;              /* trigger matches */
	atomic_long timeouts;           /* pauses never resumed */
	atomic_long lost;               /* calls past the log's end */
	/* Under lock; nr_log and armed are written under it, and read
	 * without it to skip the lock when there is nothing to do. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct rec_entry log[REC_LOG_SIZE];
	atomic_uint nr_log;
	atomic_bool armed;
	struct rec_trigger trig;
	bool paused, go;
};

/* A recorder subscribing to the callbacks in kinds (REC_F mask). Register
 * it with mmu_notifier_register(&r->mn, mm). */
void rec_init(struct recorder *r, int id, unsigned int kinds);
/* Once no callback can reach it (unregistered, or released by exit). */
void rec_destroy(struct recorder *r);

/* Counts, logs and the log's loss to zero; the open ranges stay open. */
void rec_reset(struct recorder *r);

/* Set the trigger (replacing any), or clear it. rec_disarm also resumes
 * a caller paused now. */
void rec_arm(struct recorder *r, const struct rec_trigger *t);
void rec_disarm(struct recorder *r);
/* Is a caller paused (within ms)? Resume it. */
bool rec_wait_paused(struct recorder *r, unsigned int ms);
bool rec_paused(struct recorder *r);
void rec_resume(struct recorder *r);

static inline long rec_calls(struct recorder *r, enum rec_kind k)
{
	return atomic_load(&r->calls[k]);
}

static inline long rec_done(struct recorder *r, enum rec_kind k)
{
	return atomic_load(&r->done[k]);
}

/* Calls of the kinds in mask entered and not yet returned. */
long rec_running(struct recorder *r, unsigned int kinds);
/* Calls of the kinds in mask ever entered. */
long rec_total(struct recorder *r, unsigned int kinds);

static inline long rec_open(struct recorder *r)
{
	return atomic_load(&r->open);
}

static inline long rec_fired(struct recorder *r)
{
	return atomic_load(&r->fired);
}

static inline long rec_timeouts(struct recorder *r)
{
	return atomic_load(&r->timeouts);
}

/* The last logged call of the kinds in mask (seq 0 if none). */
struct rec_entry rec_last(struct recorder *r, unsigned int kinds);

/* A point in the order of all calls: rec_trace(..., since = rec_mark())
 * shows only the calls that come after it. */
uint64_t rec_mark(void);
/*
 * The logged calls of recs[0..n) after since, in the order they were made,
 * as "<id><kind letter>" words: s start, e end, r release, f
 * clear_flush_young, c clear_young, t test_young, p change_pte. Two
 * subscribers seeing one range, newest first: "2s 1s 2e 1e". Truncated
 * to size.
 */
void rec_trace(char *buf, size_t size, uint64_t since, struct recorder *const *recs,
	       unsigned int n);

#endif
