/* SPDX-License-Identifier: MIT */
#include "lock.h"
#include <string.h>

void mutex_init(struct mutex *m)
{
	BUG_ON(pthread_mutex_init(&m->m, NULL));
}

void mutex_destroy(struct mutex *m)
{
	BUG_ON(pthread_mutex_destroy(&m->m));
}

void rwsem_init(struct rwsem *s)
{
	/* Reader-preferring (glibc's default): a reader may nest inside
	 * another reader of the same lock without deadlocking on a queued
	 * writer. Writers here are rare (register, slot updates). */
	BUG_ON(pthread_rwlock_init(&s->rw, NULL));
}

void rwsem_destroy(struct rwsem *s)
{
	BUG_ON(pthread_rwlock_destroy(&s->rw));
}

void tandem_bug(const char *file, int line, const char *cond)
{
	fprintf(stderr, "tandem: BUG at %s:%d: %s\n", file, line, cond);
	fflush(stderr);
	abort();
}

void tandem_warn(const char *file, int line, const char *cond)
{
	fprintf(stderr, "tandem: WARNING at %s:%d: %s\n", file, line, cond);
}

#ifdef TANDEM_DEBUG
#define LOCKDEP_DEPTH 48

static __thread struct {
	const void *lock[LOCKDEP_DEPTH];
	unsigned char mode[LOCKDEP_DEPTH];
	int n;
} held;

void lockdep_acquired(const void *lock, enum lockdep_mode mode)
{
	BUG_ON(held.n >= LOCKDEP_DEPTH);
	held.lock[held.n] = lock;
	held.mode[held.n] = (unsigned char)mode;
	held.n++;
}

void lockdep_released(const void *lock)
{
	for (int i = held.n - 1; i >= 0; i--) {
		if (held.lock[i] != lock)
			continue;
		memmove(&held.lock[i], &held.lock[i + 1],
			(size_t)(held.n - i - 1) * sizeof(held.lock[0]));
		memmove(&held.mode[i], &held.mode[i + 1],
			(size_t)(held.n - i - 1) * sizeof(held.mode[0]));
		held.n--;
		return;
	}
	BUG(); /* releasing a lock this thread does not hold */
}

bool lockdep_is_held(const void *lock, int mode)
{
	for (int i = 0; i < held.n; i++)
		if (held.lock[i] == lock && (mode < 0 || held.mode[i] == mode))
			return true;
	return false;
}
#endif
