/* SPDX-License-Identifier: MIT */
/*
 * compiler.h - small helpers shared by every layer.
 *
 * Assertion tiers (STYLE.md, practice 10):
 *   BUG_ON(c)       always on: a broken invariant; the process aborts with the location.
 *   WARN_ON_ONCE(c) always on: the code can recover; prints once per call site, returns c.
 *   DEBUG_BUG_ON(c) debug builds only (TANDEM_DEBUG): checks too costly for release builds.
 *   BUILD_BUG_ON(c) compile time.
 */
#ifndef TANDEM_BASE_COMPILER_H
#define TANDEM_BASE_COMPILER_H

#include <sched.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include "tandem/config.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BUILD_BUG_ON(c) _Static_assert(!(c), #c)

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/*
 * READ_ONCE/WRITE_ONCE: a single, untorn access that the compiler may not
 * merge or re-read, visible to ThreadSanitizer as an atomic (relaxed) access.
 * Use them for words that are read without the lock that guards their writes.
 */
#define READ_ONCE(x)     __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define smp_load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define smp_store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define smp_mb()  atomic_thread_fence(memory_order_seq_cst)
#define smp_rmb() atomic_thread_fence(memory_order_acquire)
#define smp_wmb() atomic_thread_fence(memory_order_release)

void tandem_bug(const char *file, int line, const char *cond) __attribute__((noreturn));
void tandem_warn(const char *file, int line, const char *cond);

#define BUG_ON(c)                                                  \
	do {                                                       \
		if (unlikely(c))                                   \
			tandem_bug(__FILE__, __LINE__, #c);        \
	} while (0)
#define BUG() tandem_bug(__FILE__, __LINE__, "BUG")

#define WARN_ON_ONCE(c) ({                                         \
	static atomic_bool __warned;                               \
	int __c = !!(c);                                           \
	if (unlikely(__c) && !atomic_exchange(&__warned, 1))       \
		tandem_warn(__FILE__, __LINE__, #c);               \
	unlikely(__c);                                             \
})

#ifdef TANDEM_DEBUG
#define DEBUG_BUG_ON(c) BUG_ON(c)
#else
#define DEBUG_BUG_ON(c) do { (void)sizeof(c); } while (0)
#endif

/*
 * One round of a spin-wait on a lock held for short, bounded work: a pause,
 * and every 64th round a yield -- on these 2-core machines the holder may
 * be a preempted thread that needs the CPU to finish.
 */
static inline void spin_relax(unsigned int *spins)
{
	if (++*spins % 64 == 0)
		sched_yield();
	else
		__builtin_ia32_pause();
}

#endif
