/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the one clock: CLOCK_MONOTONIC in nanoseconds, and absolute
 * deadlines for timed waits (pthread_cond_timedwait on CLOCK_REALTIME
 * condition variables takes a realtime deadline; clock_deadline_rt gives it).
 */
#ifndef TANDEM_BASE_CLOCK_H
#define TANDEM_BASE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define NSEC_PER_SEC  1000000000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_USEC 1000ULL

static inline uint64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * clock_fast_ns: CLOCK_MONOTONIC-like nanoseconds from the TSC where it is
 * constant and nonstop (clock.c), else clock_now_ns. Call clock_fast_init
 * once first (any thread; later calls are free). For accounting only.
 */
struct clock_tsc {
	bool ok;
	uint64_t mult;                  /* ns per tick, 32.32 fixed point */
	uint64_t base_tsc, base_ns;
};
extern struct clock_tsc clock_tsc;
void clock_fast_init(void);

static inline uint64_t clock_fast_ns(void)
{
#if defined(__x86_64__)
	if (__atomic_load_n(&clock_tsc.ok, __ATOMIC_ACQUIRE)) {
		uint64_t d = __builtin_ia32_rdtsc() - clock_tsc.base_tsc;

		return clock_tsc.base_ns + (uint64_t)(((unsigned __int128)d * clock_tsc.mult) >> 32);
	}
#endif
	return clock_now_ns();
}

/* *ts = now (clock id) + ns. */
static inline void clock_deadline(clockid_t id, struct timespec *ts, uint64_t ns)
{
	clock_gettime(id, ts);
	ts->tv_sec += (time_t)(ns / NSEC_PER_SEC);
	ts->tv_nsec += (long)(ns % NSEC_PER_SEC);
	if (ts->tv_nsec >= (long)NSEC_PER_SEC) {
		ts->tv_sec++;
		ts->tv_nsec -= (long)NSEC_PER_SEC;
	}
}

/* Sleep for ns (restarts after signals). */
static inline void clock_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / NSEC_PER_SEC), (long)(ns % NSEC_PER_SEC) };

	while (nanosleep(&ts, &ts))
		;
}

#endif
