/* SPDX-License-Identifier: MIT */
/*
 * stress_gpc.c - gfn_to_pfn caches written continuously by a host thread
 * (as a clock device would) while another thread takes their pages away
 * every way the host can -- DONTNEED, PAGEOUT (swap), fork then a host
 * write (COW), munmap and mmap again -- bounded in time (also under
 * ThreadSanitizer). Judged by the host: in debug builds a freed frame is
 * poisoned and any write into it is found when it is reused (a BUG); at
 * the end every cache writes one last value that must be in the guest's
 * page, the host's invariants hold and every frame and swap slot is back.
 *
 * Knobs: STRESS_GPC_SECS (default 2); STRESS_GPC_BREAK=1 runs it with
 * --break=gpc-invalidate (a debug build then dies of a BUG: a write into a
 * freed frame).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "harness/util.h"

#define NCACHES   16
#define HVA_BASE  0x100000000ULL
#define GPA_BASE  0x40000000ULL

struct st {
	struct host *host;
	struct mm *mm;
	struct kvm *kvm;
	struct gfn_to_pfn_cache gpc[NCACHES];
	atomic_bool stop;
	atomic_ulong writes, misses, churns;
	/* The first failure of a thread (cmocka asserts only on the main one):
	 * what, and the error. */
	const char *_Atomic fail_what;
	atomic_int fail_err;
};

static void thread_fail(struct st *s, const char *what, int err)
{
	const char *none = NULL;

	if (atomic_compare_exchange_strong(&s->fail_what, &none, what))
		atomic_store(&s->fail_err, err);
	atomic_store(&s->stop, true);
}

#define CHECK(s, what, expr) do { int _e = (expr); if (_e) { thread_fail((s), (what), _e); return NULL; } } while (0)

static void *writer(void *arg)
{
	struct st *s = arg;
	uint64_t n = 0;

	while (!atomic_load(&s->stop)) {
		struct gfn_to_pfn_cache *c = &s->gpc[n % NCACHES];

		kvm_gpc_read_lock(c);
		if (kvm_gpc_check(c, 8)) {
			__atomic_store_n((uint64_t *)c->khva, n, __ATOMIC_RELAXED);
			kvm_gpc_read_unlock(c);
			atomic_fetch_add(&s->writes, 1);
		} else {
			kvm_gpc_read_unlock(c);
			atomic_fetch_add(&s->misses, 1);
			int r = kvm_gpc_refresh(c, 8);

			/* Between the churner's munmap and its mmap the page
			 * is not there: the refresh fails, and is tried again. */
			if (r != -EFAULT)
				CHECK(s, "refresh", r);
		}
		n++;
	}
	return NULL;
}

static void *churner(void *arg)
{
	struct st *s = arg;
	uint64_t n = 0;

	while (!atomic_load(&s->stop)) {
		hva_t page = HVA_BASE + (n % NCACHES) * PAGE_SIZE;
		struct mm *child;
		hva_t out;

		switch (n % 4) {
		case 0:
			CHECK(s, "DONTNEED", mm_madvise(s->mm, page, PAGE_SIZE, MADV_DONTNEED));
			break;
		case 1:
			CHECK(s, "PAGEOUT", mm_madvise(s->mm, page, PAGE_SIZE, MADV_PAGEOUT));
			break;
		case 2:
			CHECK(s, "fork", mm_fork(s->mm, &child));
			CHECK(s, "COW write", mm_write(s->mm, page + 8, &n, 8) == 8 ? 0 : -EIO);
			mmput(child);
			break;
		case 3:
			CHECK(s, "munmap", mm_munmap(s->mm, page, PAGE_SIZE));
			CHECK(s, "mmap", mm_mmap(s->mm, page, PAGE_SIZE, PROT_READ | PROT_WRITE,
						  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &out));
			break;
		}
		atomic_fetch_add(&s->churns, 1);
		n++;
		sleep_ms(1);
	}
	return NULL;
}

static void test_caches_over_a_churning_host(void **state)
{
	struct host_config hc = { .ram_bytes = 16ULL << 20, .swap_bytes = 8ULL << 20 };
	struct kvm_userspace_memory_region mr = {
		.slot = 0, .guest_phys_addr = GPA_BASE, .memory_size = NCACHES * PAGE_SIZE,
		.userspace_addr = HVA_BASE,
	};
	struct st *s = calloc(1, sizeof(*s));
	unsigned int secs = (unsigned int)env_u64("STRESS_GPC_SECS", 2);
	pthread_t w, c;
	hva_t hva;

	assert_non_null(s);
	assert_int_equal(host_create(&hc, &s->host), 0);
	assert_int_equal(mm_create(s->host, &s->mm), 0);
	assert_int_equal(mm_mmap(s->mm, HVA_BASE, NCACHES * PAGE_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &hva), 0);
	/* STRESS_GPC_BREAK=1: the invalidation leaves caches valid, to watch
	 * the host catch a write into a freed frame (not run by make test). */
	struct kvm_config kc = { .breaks = env_u64("STRESS_GPC_BREAK", 0) ?
					   KVM_BREAK_GPC_INVALIDATE : 0 };

	assert_int_equal(kvm_create_vm(s->mm, &kc, &s->kvm), 0);
	assert_int_equal(kvm_set_user_memory_region(s->kvm, &mr), 0);
	for (unsigned int i = 0; i < NCACHES; i++) {
		kvm_gpc_init(&s->gpc[i], s->kvm);
		assert_int_equal(kvm_gpc_activate(&s->gpc[i], GPA_BASE + i * PAGE_SIZE, 8), 0);
	}
	assert_int_equal(pthread_create(&w, NULL, writer, s), 0);
	assert_int_equal(pthread_create(&c, NULL, churner, s), 0);
	sleep_ms(secs * 1000);
	atomic_store(&s->stop, true);
	pthread_join(c, NULL);
	pthread_join(w, NULL);
	if (atomic_load(&s->fail_what))
		fail_msg("%s: %s", atomic_load(&s->fail_what), strerror(-atomic_load(&s->fail_err)));
	print_message("      %lu writes, %lu misses (refreshed), %lu host operations\n",
		      atomic_load(&s->writes), atomic_load(&s->misses), atomic_load(&s->churns));
	assert_true(atomic_load(&s->writes) > 0);
	assert_true(atomic_load(&s->misses) > 0);
	assert_true(atomic_load(&s->churns) >= 4);

	/* A last value through every cache is in the guest's page. */
	for (unsigned int i = 0; i < NCACHES; i++) {
		uint64_t v = 0, want = 0x900d0000ULL + i;

		for (;;) {
			kvm_gpc_read_lock(&s->gpc[i]);
			if (kvm_gpc_check(&s->gpc[i], 8)) {
				__atomic_store_n((uint64_t *)s->gpc[i].khva, want, __ATOMIC_RELAXED);
				kvm_gpc_read_unlock(&s->gpc[i]);
				break;
			}
			kvm_gpc_read_unlock(&s->gpc[i]);
			assert_int_equal(kvm_gpc_refresh(&s->gpc[i], 8), 0);
		}
		assert_true(mm_read(s->mm, HVA_BASE + i * PAGE_SIZE, &v, 8) == 8);
		assert_int_equal(v, want);
		kvm_gpc_destroy(&s->gpc[i]);
	}
	kvm_destroy_vm(s->kvm);
	mmput(s->mm);
	assert_int_equal(host_check_invariants(s->host), 0);
	assert_int_equal(host_frames_in_use(s->host), 0);
	struct host_stats hs;

	host_get_stats(s->host, &hs);
	assert_int_equal(hs.poison_hits, 0);
	assert_int_equal(hs.swap_free_slots, hs.swap_slots);
	assert_int_equal(host_destroy(s->host), 0);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caches_over_a_churning_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
