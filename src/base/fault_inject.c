/* SPDX-License-Identifier: MIT */
/*
 * fault_inject.c - the armed half of fault_inject.h: counting calls and
 * deciding which fail.
 */
#include "fault_inject.h"

atomic_uint fault_inject_enabled;

/*
 * The arming. Written by arm/disarm only while fault_inject_enabled is 0
 * (disarm clears it first), read by __should_fail after an acquire load
 * that saw it 1: the release store that armed it orders these writes.
 * Relaxed atomics so that a reader racing a re-arm is not a data race.
 */
static struct {
	atomic_uint site;
	atomic_ulong nth, times;
	atomic_ulong calls[FAULT_NR_SITES + 1];  /* [FAULT_SITE_ANY]: all */
	atomic_ulong failed[FAULT_NR_SITES];
} fi;

static const char *const site_names[FAULT_NR_SITES + 1] = {
	[FAULT_SITE_PAGE_ALLOC] = "page_alloc",
	[FAULT_SITE_PGTABLE] = "pgtable",
	[FAULT_SITE_VMA] = "vma",
	[FAULT_SITE_RMAP] = "rmap",
	[FAULT_SITE_TDP_TABLE] = "tdp_table",
	[FAULT_SITE_MEMSLOTS] = "memslots",
	[FAULT_SITE_ANY] = "any",
};

const char *fault_site_name(enum fault_site site)
{
	BUILD_BUG_ON(ARRAY_SIZE(site_names) != FAULT_NR_SITES + 1);
	return (unsigned int)site <= FAULT_SITE_ANY ? site_names[site] : "?";
}

bool __should_fail(enum fault_site site)
{
	unsigned long any, mine, n, nth, times;
	unsigned int armed;

	BUG_ON((unsigned int)site >= FAULT_NR_SITES);
	/* Pairs with the release store in fault_inject_arm. */
	if (!atomic_load_explicit(&fault_inject_enabled, memory_order_acquire))
		return false;
	/* Both counts move on every call; the armed site says which one
	 * numbers it. */
	any = atomic_fetch_add_explicit(&fi.calls[FAULT_SITE_ANY], 1,
					memory_order_relaxed) + 1;
	mine = atomic_fetch_add_explicit(&fi.calls[site], 1, memory_order_relaxed) + 1;
	armed = atomic_load_explicit(&fi.site, memory_order_relaxed);
	n = armed == FAULT_SITE_ANY ? any : armed == (unsigned int)site ? mine : 0;
	nth = atomic_load_explicit(&fi.nth, memory_order_relaxed);
	times = atomic_load_explicit(&fi.times, memory_order_relaxed);
	if (!n || !nth || n < nth || n - nth >= times)
		return false;
	atomic_fetch_add_explicit(&fi.failed[site], 1, memory_order_relaxed);
	return true;
}

void fault_inject_arm(enum fault_site site, unsigned long nth, unsigned long times)
{
	BUG_ON((unsigned int)site > FAULT_SITE_ANY);
	/* Disarmed while the parameters change: no reader uses a mix. */
	atomic_store_explicit(&fault_inject_enabled, 0, memory_order_relaxed);
	atomic_store_explicit(&fi.site, (unsigned int)site, memory_order_relaxed);
	atomic_store_explicit(&fi.nth, nth, memory_order_relaxed);
	atomic_store_explicit(&fi.times, times, memory_order_relaxed);
	for (int i = 0; i <= FAULT_NR_SITES; i++)
		atomic_store_explicit(&fi.calls[i], 0, memory_order_relaxed);
	for (int i = 0; i < FAULT_NR_SITES; i++)
		atomic_store_explicit(&fi.failed[i], 0, memory_order_relaxed);
	/* Pairs with the acquire load in __should_fail. */
	atomic_store_explicit(&fault_inject_enabled, 1, memory_order_release);
}

unsigned long fault_inject_disarm(void)
{
	atomic_store_explicit(&fault_inject_enabled, 0, memory_order_seq_cst);
	return fault_inject_failed(FAULT_SITE_ANY);
}

unsigned long fault_inject_calls(enum fault_site site)
{
	BUG_ON((unsigned int)site > FAULT_SITE_ANY);
	return atomic_load_explicit(&fi.calls[site], memory_order_relaxed);
}

unsigned long fault_inject_failed(enum fault_site site)
{
	unsigned long n = 0;

	BUG_ON((unsigned int)site > FAULT_SITE_ANY);
	if (site != FAULT_SITE_ANY)
		return atomic_load_explicit(&fi.failed[site], memory_order_relaxed);
	for (int i = 0; i < FAULT_NR_SITES; i++)
		n += atomic_load_explicit(&fi.failed[i], memory_order_relaxed);
	return n;
}
