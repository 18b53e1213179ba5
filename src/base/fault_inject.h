/* SPDX-License-Identifier: MIT */
/*
 * fault_inject.h - allocation-failure injection: "the Nth call from now at
 * site S fails", so that a test can prove every caller of an allocation
 * unwinds: -ENOMEM, and no side effect, leak or half-built structure.
 * Linux's fault-injection framework (should_fail, fail_page_alloc,
 * failslab) in miniature.
 *
 * Each allocation that may fail at run time asks should_fail(site) before
 * it allocates and, told to, fails exactly as the allocator would (the
 * frame allocator returns NULL before it tries reclaim or the OOM killer,
 * a malloc returns NULL). The fault_* wrappers below do that for malloc and
 * friends.
 *
 * States (one process-wide instance, like Linux's fault_attr):
 *   DISARMED  should_fail is one relaxed load of `fault_inject_enabled`
 *             and a predicted branch; nothing is counted.
 *   ARMED     fault_inject_arm(site, nth, times): every call at every site
 *             is counted from zero, and calls number nth .. nth + times - 1
 *             of `site` fail (FAULT_SITE_ANY numbers the calls of all sites
 *             together, in the order they happen). nth == 0 counts without
 *             failing anything. fault_inject_disarm() goes back to
 *             DISARMED and returns how many calls were failed; the counts
 *             stay readable (fault_inject_calls) until the next arm.
 *
 * Calls from every thread count. A test arms it only while no thread it
 * does not control allocates (no kswapd, no stress threads), or the
 * numbering is not reproducible; nothing breaks if one does, the failure
 * just lands elsewhere.
 *
 * Thread safety: should_fail may run on any thread at any time; the counts
 * are atomics, so each numbered call is counted exactly once. arm/disarm
 * publish with a release store of fault_inject_enabled and the slow path
 * re-reads it with acquire, so a call that sees ARMED sees the parameters
 * of that arming. Arming while other threads allocate is allowed but
 * their calls may be counted against the old or the new arming.
 */
#ifndef TANDEM_BASE_FAULT_INJECT_H
#define TANDEM_BASE_FAULT_INJECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include "compiler.h"

enum fault_site {
	FAULT_SITE_PAGE_ALLOC,  /* host frame: alloc_page_node (fail_page_alloc) */
	FAULT_SITE_PGTABLE,     /* host page-table frame: pgtable_alloc,
				 * pte_alloc_prepare */
	FAULT_SITE_VMA,         /* VMA structs and the VMA array (failslab) */
	FAULT_SITE_RMAP,        /* rmap items */
	FAULT_SITE_TDP_TABLE,   /* GPA page-table pages: tdp_table_alloc */
	FAULT_SITE_MEMSLOTS,    /* memslot arrays */
	FAULT_NR_SITES
};
/* For fault_inject_arm and fault_inject_calls: every site at once. */
#define FAULT_SITE_ANY FAULT_NR_SITES

#define FAULT_INJECT_FOREVER (~0UL)     /* times: every call from nth on */

extern atomic_uint fault_inject_enabled;

bool __should_fail(enum fault_site site);

/* Should this allocation at site fail? Cheap when disarmed. */
static inline bool should_fail(enum fault_site site)
{
	if (likely(!atomic_load_explicit(&fault_inject_enabled, memory_order_relaxed)))
		return false;
	return __should_fail(site);
}

/*
 * Arm: fail calls nth .. nth + times - 1 (1-based, counted from now) at
 * site, or at any site for FAULT_SITE_ANY. Resets every count.
 */
void fault_inject_arm(enum fault_site site, unsigned long nth, unsigned long times);
/* Disarm; returns how many calls were failed since the arm. */
unsigned long fault_inject_disarm(void);
/* Calls at site (FAULT_SITE_ANY: at all sites) since the last arm. */
unsigned long fault_inject_calls(enum fault_site site);
/* Calls failed at site (FAULT_SITE_ANY: all) since the last arm. */
unsigned long fault_inject_failed(enum fault_site site);
const char *fault_site_name(enum fault_site site);

/* The C allocators, made to fail on demand (Linux's failslab). */
static inline void *fault_malloc(enum fault_site site, size_t size)
{
	return should_fail(site) ? NULL : malloc(size);
}

static inline void *fault_calloc(enum fault_site site, size_t n, size_t size)
{
	return should_fail(site) ? NULL : calloc(n, size);
}

/* On failure p is left as it was, as realloc leaves it. */
static inline void *fault_realloc(enum fault_site site, void *p, size_t size)
{
	return should_fail(site) ? NULL : realloc(p, size);
}

static inline void *fault_aligned_alloc(enum fault_site site, size_t align, size_t size)
{
	return should_fail(site) ? NULL : aligned_alloc(align, size);
}

#endif
