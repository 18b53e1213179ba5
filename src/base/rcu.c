/* SPDX-License-Identifier: MIT */
#include "rcu.h"
#include <pthread.h>
#include <urcu/urcu-memb.h>


#ifdef TANDEM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char grace_token;
#endif

static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;
static __thread int rcu_registered;
static __thread int rcu_nesting;

static void rcu_thread_exit(void *arg)
{
	(void)arg;
	if (rcu_registered) {
		urcu_memb_unregister_thread();
		rcu_registered = 0;
	}
}

static void rcu_key_init(void)
{
	BUG_ON(pthread_key_create(&rcu_key, rcu_thread_exit));
}

void rcu_register_current_thread(void)
{
	if (likely(rcu_registered))
		return;
	pthread_once(&rcu_once, rcu_key_init);
	urcu_memb_register_thread();
	rcu_registered = 1;
	/* Any non-NULL value makes the destructor run at thread exit. */
	pthread_setspecific(rcu_key, &rcu_registered);
}

void rcu_read_lock(void)
{
	rcu_register_current_thread();
	rcu_nesting++;
	urcu_memb_read_lock();
}

void rcu_read_unlock(void)
{
	BUG_ON(rcu_nesting <= 0);
	rcu_nesting--;
#ifdef TANDEM_TSAN
	__tsan_release(&grace_token);
#endif
	urcu_memb_read_unlock();
}

bool rcu_read_lock_held(void)
{
	return rcu_nesting > 0;
}

void synchronize_rcu(void)
{
	/* A grace period inside a read-side section never ends. */
	BUG_ON(rcu_nesting > 0);
	urcu_memb_synchronize_rcu();
#ifdef TANDEM_TSAN
	__tsan_acquire(&grace_token);
#endif
}
