/* SPDX-License-Identifier: MIT */
/*
 * rcu.h - the one place that talks to liburcu.
 *
 * liburcu (memb flavour) provides read-side sections and grace periods.
 * Pointers are published and read with C11 atomics (rcu_assign_pointer is a
 * release store, rcu_dereference an acquire load), because ThreadSanitizer
 * cannot see liburcu's own publication. TSan cannot see grace periods
 * either, so under -fsanitize=thread rcu_read_unlock() releases a token and
 * synchronize_rcu() acquires it: everything a reader did happens-before the
 * grace period ends, which is exactly the RCU guarantee.
 *
 * Readers may sleep inside a read-side section (it is SRCU-like): the
 * notifier callbacks that wait for vCPUs run inside one. Rule: never call
 * synchronize_rcu() inside a read-side section, nor while holding a lock
 * that a reader inside a section may wait for.
 *
 * Threads register lazily on their first rcu_read_lock() and unregister
 * when they exit, so callers need not know which threads read.
 */
#ifndef TANDEM_BASE_RCU_H
#define TANDEM_BASE_RCU_H

#include <stdbool.h>
#include "compiler.h"

void rcu_read_lock(void);
void rcu_read_unlock(void);
void synchronize_rcu(void);
/* Is the calling thread inside a read-side section? */
bool rcu_read_lock_held(void);
/* Register the calling thread now (optional; rcu_read_lock does it). */
void rcu_register_current_thread(void);

#define rcu_assign_pointer(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define rcu_dereference(p)       __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
/* Read where the update-side lock is held: no ordering needed. */
#define rcu_dereference_protected(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

#endif
