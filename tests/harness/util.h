/* SPDX-License-Identifier: MIT */
/*
 * util.h - small things every suite may need and the library does not
 * export: a millisecond clock and sleeps over base/clock.h, timed waits on
 * a condition variable that runs on CLOCK_MONOTONIC, a one-shot pause for
 * test hooks, environment knobs, and a fixed-seed permutation over
 * base/prng.h. Header-only.
 */
#ifndef TANDEM_TESTS_HARNESS_UTIL_H
#define TANDEM_TESTS_HARNESS_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "base/prng.h"

static inline uint64_t ms_now(void)
{
	return clock_now_ns() / NSEC_PER_MSEC;
}

static inline double secs_now(void)
{
	return (double)clock_now_ns() / (double)NSEC_PER_SEC;
}

static inline void sleep_ms(unsigned int ms)
{
	clock_sleep_ns((uint64_t)ms * NSEC_PER_MSEC);
}

static inline void sleep_us(unsigned int us)
{
	clock_sleep_ns((uint64_t)us * NSEC_PER_USEC);
}

/* A mutex and a condition variable whose timed waits use CLOCK_MONOTONIC
 * deadlines (deadline_ms), so a clock step cannot stretch a test's wait. */
static inline void sync_init(pthread_mutex_t *m, pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_mutex_init(m, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static inline void sync_destroy(pthread_mutex_t *m, pthread_cond_t *c)
{
	pthread_cond_destroy(c);
	pthread_mutex_destroy(m);
}

static inline void deadline_ms(struct timespec *ts, unsigned int ms)
{
	clock_deadline(CLOCK_MONOTONIC, ts, (uint64_t)ms * NSEC_PER_MSEC);
}

/* Wait on c (m held, set up by sync_init) until *flag or ms elapse;
 * returns *flag. */
static inline bool wait_flag(pthread_mutex_t *m, pthread_cond_t *c, const bool *flag,
			     unsigned int ms)
{
	struct timespec ts;

	deadline_ms(&ts, ms);
	while (!*flag)
		if (pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT)
			break;
	return *flag;
}

/*
 * A one-shot pause at a test hook: once armed, the first thread to reach
 * the hook (pause_once_hit) stops there until the test releases it, or ms
 * pass -- a test that fails before its release leaves a failure, not a
 * hung thread.
 */
struct pause_once {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool armed, paused, released;
};

static inline void pause_once_init(struct pause_once *p)
{
	p->armed = p->paused = p->released = false;
	sync_init(&p->m, &p->c);
}

static inline void pause_once_destroy(struct pause_once *p)
{
	sync_destroy(&p->m, &p->c);
}

static inline void pause_once_arm(struct pause_once *p)
{
	pthread_mutex_lock(&p->m);
	p->armed = true;
	pthread_mutex_unlock(&p->m);
}

/* From the hook: pause here if armed (and disarm). */
static inline void pause_once_hit(struct pause_once *p, unsigned int ms)
{
	pthread_mutex_lock(&p->m);
	if (p->armed) {
		p->armed = false;
		p->paused = true;
		pthread_cond_broadcast(&p->c);
		wait_flag(&p->m, &p->c, &p->released, ms);
		p->paused = false;
	}
	pthread_mutex_unlock(&p->m);
}

/* Until a thread is held at the pause, or ms pass; returns whether it is. */
static inline bool pause_once_wait(struct pause_once *p, unsigned int ms)
{
	bool paused;

	pthread_mutex_lock(&p->m);
	paused = wait_flag(&p->m, &p->c, &p->paused, ms);
	pthread_mutex_unlock(&p->m);
	return paused;
}

static inline void pause_once_release(struct pause_once *p)
{
	pthread_mutex_lock(&p->m);
	p->released = true;
	pthread_cond_broadcast(&p->c);
	pthread_mutex_unlock(&p->m);
}

/* Poll (every millisecond) until *c >= want or ms elapse; returns *c >= want. */
static inline bool wait_until_long(atomic_long *c, long want, unsigned int ms)
{
	uint64_t end = ms_now() + ms;

	while (atomic_load(c) < want && ms_now() < end)
		sleep_ms(1);
	return atomic_load(c) >= want;
}

/* A numeric knob from the environment (decimal, or 0x... hex); def when
 * unset or empty. */
static inline uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

/* perm[0..n) = a permutation of 0..n-1 fixed by seed (Fisher-Yates). */
static inline void permute(uint32_t *perm, uint32_t n, uint64_t seed)
{
	uint64_t rng = prng_seed(seed, 0);

	for (uint32_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = (uint32_t)prng_below(&rng, i), tmp = perm[i - 1];

		perm[i - 1] = perm[j];
		perm[j] = tmp;
	}
}

#endif
