/* SPDX-License-Identifier: MIT */
/*
 * util.h - small things every suite may need and the library does not
 * export: a millisecond clock and sleeps over base/clock.h, timed waits on
 * a condition variable that runs on CLOCK_MONOTONIC, environment knobs,
 * and a fixed-seed permutation over base/prng.h. Header-only.
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
