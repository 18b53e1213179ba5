/* SPDX-License-Identifier: MIT */
/*
 * lock.h - sleeping locks with owner tracking.
 *
 * Every lock in tandem sleeps when contended: the machines have two cores and
 * more threads than that, so a spinning waiter could burn a whole scheduler
 * slice while the holder is preempted. The kernel's names are kept for the
 * roles (spinlock_t is what the kernel would spin on; here it sleeps).
 *
 * Debug builds (TANDEM_DEBUG) keep a per-thread stack of held locks, so
 * lockdep_assert_held*() check that *this thread* holds the lock, in the mode
 * asked. Release builds compile the asserts away.
 *
 * Lock rule: a function that needs a lock says so in its header comment and
 * asserts it on its first line.
 */
#ifndef TANDEM_BASE_LOCK_H
#define TANDEM_BASE_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include "compiler.h"

struct mutex {
	pthread_mutex_t m;
};

struct rwsem {
	pthread_rwlock_t rw;
};

typedef struct mutex spinlock_t;
typedef struct rwsem rwlock_t;

void mutex_init(struct mutex *m);
void mutex_destroy(struct mutex *m);
void rwsem_init(struct rwsem *s);
void rwsem_destroy(struct rwsem *s);

#ifdef TANDEM_DEBUG
enum lockdep_mode { LOCKDEP_EXCL, LOCKDEP_READ };
void lockdep_acquired(const void *lock, enum lockdep_mode mode);
void lockdep_released(const void *lock);
bool lockdep_is_held(const void *lock, int mode); /* mode -1: any */
#define lockdep_assert_held(l)       BUG_ON(!lockdep_is_held((l), -1))
#define lockdep_assert_held_write(l) BUG_ON(!lockdep_is_held((l), LOCKDEP_EXCL))
#define lockdep_assert_held_read(l)  BUG_ON(!lockdep_is_held((l), LOCKDEP_READ))
#define lockdep_assert_not_held(l)   BUG_ON(lockdep_is_held((l), -1))
#else
#define lockdep_acquired(l, m) do { } while (0)
#define lockdep_released(l)    do { } while (0)
#define lockdep_assert_held(l)       do { (void)(l); } while (0)
#define lockdep_assert_held_write(l) do { (void)(l); } while (0)
#define lockdep_assert_held_read(l)  do { (void)(l); } while (0)
#define lockdep_assert_not_held(l)   do { (void)(l); } while (0)
#endif

static inline void mutex_lock(struct mutex *m)
{
	BUG_ON(pthread_mutex_lock(&m->m));
	lockdep_acquired(m, LOCKDEP_EXCL);
}

static inline bool mutex_trylock(struct mutex *m)
{
	if (pthread_mutex_trylock(&m->m))
		return false;
	lockdep_acquired(m, LOCKDEP_EXCL);
	return true;
}

static inline void mutex_unlock(struct mutex *m)
{
	lockdep_released(m);
	BUG_ON(pthread_mutex_unlock(&m->m));
}

#define spin_lock_init mutex_init
#define spin_lock      mutex_lock
#define spin_trylock   mutex_trylock
#define spin_unlock    mutex_unlock

static inline void down_read(struct rwsem *s)
{
	BUG_ON(pthread_rwlock_rdlock(&s->rw));
	lockdep_acquired(s, LOCKDEP_READ);
}

static inline bool down_read_trylock(struct rwsem *s)
{
	if (pthread_rwlock_tryrdlock(&s->rw))
		return false;
	lockdep_acquired(s, LOCKDEP_READ);
	return true;
}

static inline void up_read(struct rwsem *s)
{
	lockdep_released(s);
	BUG_ON(pthread_rwlock_unlock(&s->rw));
}

static inline void down_write(struct rwsem *s)
{
	BUG_ON(pthread_rwlock_wrlock(&s->rw));
	lockdep_acquired(s, LOCKDEP_EXCL);
}

static inline bool down_write_trylock(struct rwsem *s)
{
	if (pthread_rwlock_trywrlock(&s->rw))
		return false;
	lockdep_acquired(s, LOCKDEP_EXCL);
	return true;
}

static inline void up_write(struct rwsem *s)
{
	lockdep_released(s);
	BUG_ON(pthread_rwlock_unlock(&s->rw));
}

#define rwlock_init  rwsem_init
#define read_lock    down_read
#define read_unlock  up_read
#define write_lock   down_write
#define write_unlock up_write

#endif
