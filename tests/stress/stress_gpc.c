/* SPDX-License-Identifier: MIT */
/*
 * stress_gpc.c - gfn_to_pfn caches in both of the seed's modes over a
 * churning host, bounded in time (also under ThreadSanitizer):
 *   - atomic mode: a host thread writes 16 caches continuously under their
 *     read locks (as a clock device would), refreshing on a miss;
 *   - guest mode: NVCPUS C-guest vCPUs with run-state areas in the same
 *     pages, written by each vCPU at every guest entry with no lock; the
 *     guests read their own and each other's areas through their
 *     secondary MMU (a seqcount: even when consistent; counters only grow,
 *     unless the page was zeroed by DONTNEED or a remap: version 0);
 *   - a churner takes those pages away every way the host can --
 *     DONTNEED, PAGEOUT (swap), fork then a host write (COW), munmap and
 *     mmap again;
 *   - a hog in another mm writes more than RAM, so reclaim swaps pages out
 *     (the caches' pages too: the host's writes set no accessed bit).
 * Judged by the host and the guests: in debug builds a freed frame is
 * poisoned and any write into it is found when it is reused (a BUG); a
 * guest that sees a torn or shrinking run-state area fails; at the end
 * every cache writes one last value that must be in the guest's page, each
 * vCPU's area holds its last entry's counters, the host's invariants hold
 * and every frame and swap slot is back.
 *
 * Knobs: STRESS_GPC_SECS (default 2); STRESS_GPC_BREAK=1 runs it with
 * --break=gpc-invalidate, =2 with --break=gpc-request (a debug build then
 * dies of a BUG: a write into a freed frame).
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
#include "tandem/cpu.h"
#include "harness/util.h"

#define NCACHES   16
#define NVCPUS    2
#define RS_OFF    64                    /* vCPU i's area: page i, offset 64 */
#define HVA_BASE  0x100000000ULL
#define GPA_BASE  0x40000000ULL
#define HOG_BASE  0x200000000ULL
#define HOG_BYTES (18ULL << 20)         /* > RAM: reclaim must swap */

struct st {
	struct host *host;
	struct mm *mm;
	struct kvm *kvm;
	struct gfn_to_pfn_cache gpc[NCACHES];
	struct vcpu *vcpu[NVCPUS];
	struct mm *hog;
	atomic_bool stop;
	atomic_ulong writes, misses, churns, hog_writes, rs_reads, rs_zero;
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

/* ---- guest mode: run-state areas read by the guests ------------------ */

struct rs_snap {
	uint64_t version, entries, time_in_guest, time_outside, time_runnable;
};

/* The guest's read barrier: its loads are relaxed atomics on host memory,
 * which x86-64 keeps in order; only the compiler must not move them
 * (ThreadSanitizer takes no atomic_thread_fence). */
#define guest_rmb() __atomic_signal_fence(__ATOMIC_ACQ_REL)

/* A seqcount read of the area at gpa: 0, -EAGAIN (torn for too long: the
 * host left it odd), or the access's error. */
static int rs_read(struct vcpu *v, gpa_t gpa, struct rs_snap *o)
{
	for (long tries = 0; tries < 10000000; tries++) {
		uint64_t v2;
		int r;

		if ((r = vcpu_load64(v, gpa, &o->version)))
			return r;
		if (o->version & 1)
			continue;
		guest_rmb();
		if ((r = vcpu_load64(v, gpa + offsetof(struct kvm_runstate_info, entries),
				     &o->entries)) ||
		    (r = vcpu_load64(v, gpa + offsetof(struct kvm_runstate_info, time_in_guest),
				     &o->time_in_guest)) ||
		    (r = vcpu_load64(v, gpa + offsetof(struct kvm_runstate_info, time_outside),
				     &o->time_outside)) ||
		    (r = vcpu_load64(v, gpa + offsetof(struct kvm_runstate_info, time_runnable),
				     &o->time_runnable)))
			return r;
		guest_rmb();
		if ((r = vcpu_load64(v, gpa, &v2)))
			return r;
		if (v2 == o->version)
			return 0;
	}
	return -EAGAIN;
}

static bool rs_grew(const struct rs_snap *old, const struct rs_snap *now)
{
	return now->version >= old->version && now->entries >= old->entries &&
	       now->time_in_guest >= old->time_in_guest &&
	       now->time_outside >= old->time_outside &&
	       now->time_runnable >= old->time_runnable;
}

struct guest_arg {
	struct st *s;
	int id;
};

static int guest_main(struct vcpu *v, void *arg)
{
	struct guest_arg *g = arg;
	struct st *s = g->s;
	struct rs_snap last[NVCPUS] = { 0 }, now;

	for (uint64_t n = 0; !vcpu_should_stop(v); n++) {
		int who = (int)(n % NVCPUS);
		gpa_t area = GPA_BASE + (gpa_t)who * PAGE_SIZE + RS_OFF;
		int r = rs_read(v, area, &now);

		if (r == -EINTR)
			break;
		/* Between the churner's munmap and mmap no RAM is there. */
		if (r == -EFAULT)
			continue;
		if (r) {
			thread_fail(s, "guest: run-state read", r);
			break;
		}
		atomic_fetch_add_explicit(&s->rs_reads, 1, memory_order_relaxed);
		if (!now.version) {             /* zeroed: DONTNEED or remap */
			atomic_fetch_add_explicit(&s->rs_zero, 1, memory_order_relaxed);
			continue;
		}
		if (!rs_grew(&last[who], &now)) {
			thread_fail(s, who == g->id ? "guest: own run-state went back"
						    : "guest: sibling's run-state went back", -EINVAL);
			break;
		}
		last[who] = now;
		if (vcpu_check_requests(v) == -EINTR)
			break;
	}
	return 0;
}

/* One entry (which writes the area), then out: the last write. */
static int guest_once(struct vcpu *v, void *arg)
{
	(void)v;
	(void)arg;
	return 0;
}

/* More than RAM in another mm, written round and round. */
static void *hog(void *arg)
{
	struct st *s = arg;

	for (uint64_t off = 0; !atomic_load(&s->stop); off = (off + PAGE_SIZE) % HOG_BYTES) {
		if (mm_write(s->hog, HOG_BASE + off, &off, 8) != 8) {
			thread_fail(s, "hog write", -EIO);
			break;
		}
		atomic_fetch_add_explicit(&s->hog_writes, 1, memory_order_relaxed);
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
	struct host_config hc = { .ram_bytes = 16ULL << 20, .swap_bytes = 16ULL << 20 };
	struct kvm_userspace_memory_region mr = {
		.slot = 0, .guest_phys_addr = GPA_BASE, .memory_size = NCACHES * PAGE_SIZE,
		.userspace_addr = HVA_BASE,
	};
	struct st *s = calloc(1, sizeof(*s));
	unsigned int secs = (unsigned int)env_u64("STRESS_GPC_SECS", 2);
	pthread_t w, c, hg;
	struct guest_arg ga[NVCPUS];
	hva_t hva;

	assert_non_null(s);
	assert_int_equal(host_create(&hc, &s->host), 0);
	assert_int_equal(mm_create(s->host, &s->mm), 0);
	assert_int_equal(mm_mmap(s->mm, HVA_BASE, NCACHES * PAGE_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &hva), 0);
	/* STRESS_GPC_BREAK=1: the invalidation leaves caches valid, to watch
	 * the host catch a write into a freed frame (not run by make test). */
	uint64_t brk = env_u64("STRESS_GPC_BREAK", 0);
	struct kvm_config kc = { .breaks = brk == 1 ? KVM_BREAK_GPC_INVALIDATE :
					   brk == 2 ? KVM_BREAK_GPC_REQUEST : 0 };

	assert_int_equal(kvm_create_vm(s->mm, &kc, &s->kvm), 0);
	assert_int_equal(kvm_set_user_memory_region(s->kvm, &mr), 0);
	for (unsigned int i = 0; i < NCACHES; i++) {
		kvm_gpc_init(&s->gpc[i], s->kvm);
		assert_int_equal(kvm_gpc_activate(&s->gpc[i], GPA_BASE + i * PAGE_SIZE, 8), 0);
	}
	for (int i = 0; i < NVCPUS; i++) {
		assert_int_equal(vcpu_create(s->kvm, i, &s->vcpu[i]), 0);
		assert_int_equal(kvm_vcpu_runstate_activate(&s->vcpu[i]->kvm_vcpu,
							    GPA_BASE + i * PAGE_SIZE + RS_OFF,
							    KVM_RUNSTATE_TANDEM), 0);
		ga[i] = (struct guest_arg){ .s = s, .id = i };
	}
	assert_int_equal(mm_create(s->host, &s->hog), 0);
	assert_int_equal(mm_mmap(s->hog, HOG_BASE, HOG_BYTES, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &hva), 0);
	for (int i = 0; i < NVCPUS; i++)
		assert_int_equal(vcpu_run(s->vcpu[i], guest_main, &ga[i]), 0);
	assert_int_equal(pthread_create(&w, NULL, writer, s), 0);
	assert_int_equal(pthread_create(&c, NULL, churner, s), 0);
	assert_int_equal(pthread_create(&hg, NULL, hog, s), 0);
	sleep_ms(secs * 1000);
	atomic_store(&s->stop, true);
	pthread_join(hg, NULL);
	pthread_join(c, NULL);
	pthread_join(w, NULL);
	for (int i = 0; i < NVCPUS; i++)
		vcpu_stop(s->vcpu[i]);
	if (atomic_load(&s->fail_what))
		fail_msg("%s: %s", atomic_load(&s->fail_what), strerror(-atomic_load(&s->fail_err)));
	struct kvm_stats ks;
	struct host_stats hs;

	kvm_get_stats(s->kvm, &ks);
	host_get_stats(s->host, &hs);
	print_message("      atomic mode: %lu writes, %lu misses (refreshed); guest mode: "
		      "%llu run-state updates, %llu GPC_INVALIDATE requests (%llu waited), "
		      "%lu guest reads (%lu zeroed); %lu host operations, %lu hog writes, "
		      "%llu swap-outs\n",
		      atomic_load(&s->writes), atomic_load(&s->misses),
		      (unsigned long long)ks.runstate_updates, (unsigned long long)ks.gpc_requests,
		      (unsigned long long)ks.gpc_request_waits, atomic_load(&s->rs_reads),
		      atomic_load(&s->rs_zero), atomic_load(&s->churns),
		      atomic_load(&s->hog_writes),
		      (unsigned long long)hs.events[PSWPOUT]);
	assert_true(atomic_load(&s->writes) > 0);
	assert_true(atomic_load(&s->misses) > 0);
	assert_true(atomic_load(&s->churns) >= 4);
	assert_true(ks.runstate_updates > 0);
	assert_true(ks.gpc_requests > 0);
	assert_true(atomic_load(&s->rs_reads) > atomic_load(&s->rs_zero));
	assert_true(hs.events[PSWPOUT] > 0);

	/* Each vCPU's area holds its last entry's counters: one more entry
	 * with nothing churning, then compare with the host's accounting.
	 * The entry is repeated until the vCPU holds the area's address: a
	 * refresh that failed (inside the churner's munmap-to-mmap window,
	 * or for want of memory: the hog's goes first) is tried again only
	 * after RUNSTATE_RETRY_AFTER, and an entry before that writes
	 * nothing -- a TSan run once compared in that millisecond. */
	mmput(s->hog);
	for (int i = 0; i < NVCPUS; i++) {
		struct kvm_runstate_info host, guest;
		int tries = 0;

		do {
			if (tries)
				sleep_ms(2);
			assert_int_equal(vcpu_run(s->vcpu[i], guest_once, NULL), 0);
			vcpu_stop(s->vcpu[i]);
		} while (!s->vcpu[i]->kvm_vcpu.runstate.hva && ++tries < 500);
		if (tries)
			print_message("      vCPU %d: its area's address back after %d more entries\n",
				      i, tries);
		assert_int_equal(s->vcpu[i]->kvm_vcpu.runstate.err, 0);
		assert_non_null(s->vcpu[i]->kvm_vcpu.runstate.hva);
		kvm_vcpu_runstate_get(&s->vcpu[i]->kvm_vcpu, &host);
		assert_true(mm_read(s->mm, HVA_BASE + i * PAGE_SIZE + RS_OFF, &guest,
				    sizeof(guest)) == sizeof(guest));
		assert_int_equal(guest.version & 1, 0);
		assert_int_equal(guest.entries, host.entries);
		assert_true(guest.time_outside <= host.time_outside);
		vcpu_destroy(s->vcpu[i]);
	}

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
