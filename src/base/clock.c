/* SPDX-License-Identifier: MIT */
/*
 * clock.c - clock_fast_ns(): CLOCK_MONOTONIC's nanoseconds from the TSC.
 *
 * A vCPU reads the clock twice per guest entry when it keeps a run-state
 * area (kvm.h); clock_gettime through the vDSO costs ~25 ns on these
 * machines (kvm-clock), rdtsc less than half that. Where the CPU says its
 * TSC runs at a constant rate and does not stop in idle (constant_tsc and
 * nonstop_tsc in /proc/cpuinfo), the TSC is scaled to nanoseconds with a
 * 32.32 fixed-point factor measured once against CLOCK_MONOTONIC (over
 * CALIBRATE_NS) and anchored there; elsewhere clock_fast_ns is
 * clock_now_ns. It is for accounting (deltas, ~ppm of drift from
 * CLOCK_MONOTONIC), not for deadlines.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "base/clock.h"

#define CALIBRATE_NS (5 * NSEC_PER_MSEC)

struct clock_tsc clock_tsc;
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

static bool tsc_flags_ok(void)
{
	char line[4096];
	bool constant = false, nonstop = false;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		constant = strstr(line, " constant_tsc") != NULL;
		nonstop = strstr(line, " nonstop_tsc") != NULL;
		break;
	}
	fclose(f);
	return constant && nonstop;
}

static void tsc_calibrate(void)
{
#if defined(__x86_64__)
	uint64_t t0, t1, c0, c1;

	if (!tsc_flags_ok())
		return;
	t0 = clock_now_ns();
	c0 = __builtin_ia32_rdtsc();
	do
		t1 = clock_now_ns();
	while (t1 - t0 < CALIBRATE_NS);
	c1 = __builtin_ia32_rdtsc();
	if (c1 <= c0)
		return;
	clock_tsc.mult = (uint64_t)(((unsigned __int128)(t1 - t0) << 32) / (c1 - c0));
	clock_tsc.base_tsc = c1;
	clock_tsc.base_ns = t1;
	__atomic_store_n(&clock_tsc.ok, true, __ATOMIC_RELEASE);
#endif
}

void clock_fast_init(void)
{
	pthread_once(&tsc_once, tsc_calibrate);
}
