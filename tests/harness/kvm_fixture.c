/* SPDX-License-Identifier: MIT */
/*
 * kvm_fixture.c - the fixture of the secondary-MMU suites (kvm_fixture.h):
 * the mailbox guest, the pause hook, bg threads, the PTE watcher, and the
 * helpers that drive the guest and read kvm's state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/mmu_notifier.h"
#include "tandem/cpu.h"
#include "base/rcu.h"
#include "host/internal.h"
#include "kvm/kvm_host.h"
#include "harness/kvm_fixture.h"
#include "harness/util.h"

/* ---- the guest: a mailbox loop on the vCPU thread ---------------------- */

static int guest_mmio(struct vcpu *v, gpa_t gpa, unsigned int size, bool write, uint64_t *val,
		       void *arg)
{
	struct kt_guest *g = arg;

	pthread_mutex_lock(&g->lock);
	g->mmio_calls++;
	g->mmio_gpa = gpa;
	g->mmio_write = write;
	if (write)
		g->mmio_val = *val;
	else
		*val = MMIO_VAL;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

/* ---- the pause hook ---------------------------------------------------- */

/* Called with p->lock held at the armed point: stop until released. */
static void pause_here(struct kt_pauser *p)
{
	p->armed = -1;
	p->paused = true;
	p->go = false;
	pthread_cond_broadcast(&p->cond);
	while (!p->go)
		pthread_cond_wait(&p->cond, &p->lock);
	p->paused = false;
}

static void pause_hook(struct kvm_vcpu *v, enum vcpu_hook_point at, void *arg)
{
	struct kt_pauser *p = arg;

	atomic_fetch_add(&p->calls[at], 1);
	pthread_mutex_lock(&p->lock);
	if (p->armed == (int)at)
		pause_here(p);
	pthread_mutex_unlock(&p->lock);
}

/* ---- a host operation on another thread -------------------------------- */

static void *bg_main(void *a)
{
	struct bg *b = a;
	int r = b->fn(b->t, b->arg);

	pthread_mutex_lock(&b->lock);
	b->ret = r;
	b->done = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

void bg_start(struct bg *b, bg_fn fn, struct kt *t, uintptr_t arg)
{
	memset(b, 0, sizeof(*b));
	sync_init(&b->lock, &b->cond);
	b->fn = fn;
	b->t = t;
	b->arg = arg;
	assert_int_equal(pthread_create(&b->th, NULL, bg_main, b), 0);
}

bool bg_done(struct bg *b, unsigned int ms)
{
	pthread_mutex_lock(&b->lock);
	bool done = wait_flag(&b->lock, &b->cond, &b->done, ms);
	pthread_mutex_unlock(&b->lock);
	return done;
}

int bg_join(struct bg *b)
{
	assert_true(bg_done(b, TIMEOUT_MS));
	pthread_join(b->th, NULL);
	sync_destroy(&b->lock, &b->cond);
	return b->ret;
}

int bg_dontneed(struct kt *t, uintptr_t hva)
{
	return mm_madvise(t->mm, hva, P, MADV_DONTNEED);
}

/* ---- the fixture ------------------------------------------------------- */

/*
 * The watcher, called under page_table_lock at every PTE change. When the
 * host drops a frame from a PTE (or write-protects it), no present spte of
 * a slot backed by that hva may still map the frame (or map it writable):
 * the kvm_host.h invariant, checked at the moment it matters.
 */
static void watch_pte(void *arg, struct mm *mm, hva_t addr, pte_t old, pte_t new)
{
	struct kt *t = arg;

	if (mm != t->mm)
		return;
	pthread_mutex_lock(&t->p.lock);
	if (t->p.armed == PAUSE_IN_PTE_CHANGE && addr == t->p.pte_hva)
		pause_here(&t->p);
	pthread_mutex_unlock(&t->p.lock);
	if (!atomic_load(&t->watch_on) || !pte_present(old))
		return;
	bool gone = !pte_present(new) || pte_pfn(new) != pte_pfn(old);
	bool wrprot = pte_write(old) && !pte_write(new);

	if (!gone && !wrprot)
		return;
	atomic_fetch_add(&t->watch_events, 1);
	rcu_read_lock();
	struct kvm_memslots *slots = kvm_memslots(t->kvm);

	for (unsigned int i = 0; i < slots->nr; i++) {
		const struct kvm_memory_slot *s = &slots->slots[i];

		if (addr < s->userspace_addr || addr >= s->userspace_addr + s->npages * P)
			continue;
		_Atomic spte_t *sptep = kvm_tdp_mmu_leaf(t->kvm, s->base_gfn +
						 ((addr - s->userspace_addr) >> PAGE_SHIFT));
		spte_t spte = sptep ? atomic_load(sptep) : 0;

		if (is_shadow_present(spte) && spte_to_pfn(spte) == pte_pfn(old) &&
		    (gone || (spte & SPTE_WRITABLE)))
			atomic_fetch_add(&t->stale, 1);
	}
	rcu_read_unlock();
}

void kt_add_slot(struct kt *t, uint32_t id, uint32_t flags, gpa_t gpa, uint64_t size,
		 hva_t hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = id, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = hva,
	};

	assert_int_equal(kvm_set_user_memory_region(t->kvm, &r), 0);
}

/* The test running now, for kt_abandon(). */
static struct kt *cur_kt;

void kt_vcpu_start(struct kt *t)
{
	assert_int_equal(vcpu_run(t->v, kt_guest_main, &t->g), 0);
}

struct kt *kt_create(unsigned int breaks, unsigned int opts)
{
	struct kt *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->ht = ht_create_swap(HT_RAM, 0, (opts & KT_SWAP) ? KT_SWAP_BYTES : 0);
	t->h = t->ht->host;
	t->mm = ht_mm(t->ht);
	ht_mmap(t->mm, HVA_BASE, NPAGES * P, HT_RW, HT_FIXED);
	kt_guest_init(&t->g);
	sync_init(&t->p.lock, &t->p.cond);
	t->p.armed = -1;
	host_set_pte_hook(t->h, watch_pte, t);
	if (opts & (KT_REC_AFTER_KVM | KT_REC_BEFORE_KVM)) {
		rec_init(&t->rec, 1, REC_ALL);
		t->has_rec = true;
	}
	if (opts & KT_REC_AFTER_KVM)
		assert_int_equal(mmu_notifier_register(&t->rec.mn, t->mm), 0);
	struct kvm_config cfg = {
		.breaks = breaks,
		.kick = (opts & KT_KICK_WAIT) ? KVM_KICK_WAIT :
			(opts & KT_KICK_RSEQ) ? KVM_KICK_RSEQ : KVM_KICK_AUTO,
	};

	assert_int_equal(kvm_create_vm(t->mm, &cfg, &t->kvm), 0);
	kt_add_slot(t, 0, 0, GPA_BASE, NPAGES * P, HVA_BASE);
	if (opts & KT_REC_BEFORE_KVM)
		assert_int_equal(mmu_notifier_register(&t->rec.mn, t->mm), 0);
	atomic_store(&t->watch_on, true);
	if (!(opts & KT_NO_VCPU)) {
		assert_int_equal(vcpu_create(t->kvm, 0, &t->v), 0);
		vcpu_set_mmio(t->v, guest_mmio, &t->g);
		kvm_vcpu_set_hook(&t->v->kvm_vcpu, pause_hook, &t->p);
		kt_vcpu_start(t);
	}
	cur_kt = t;
	return t;
}

void kt_destroy(struct kt *t)
{
	cur_kt = NULL;
	if (t->v) {
		vcpu_stop(t->v);
		vcpu_destroy(t->v);
	}
	atomic_store(&t->watch_on, false);
	if (t->kvm)
		kvm_destroy_vm(t->kvm);
	if (t->has_rec) {
		assert_int_equal(mmu_notifier_unregister(&t->rec.mn, t->mm), 0);
		assert_int_equal(rec_timeouts(&t->rec), 0);
		rec_destroy(&t->rec);
	}
	host_set_pte_hook(t->h, NULL, NULL);
	ht_destroy(t->ht);      /* every frame back, host destroyed */
	kt_guest_destroy(&t->g);
	sync_destroy(&t->p.lock, &t->p.cond);
	free(t);
}

/*
 * cmocka teardown: a test that failed midway may have left its vCPU paused,
 * a host operation blocked in a notifier (inside an RCU read-side section)
 * or a guest spinning on a retry. Release them and stop the vCPU so that
 * the next test's grace periods can end, and leak the rest: the failure
 * has been reported already.
 */
int kt_abandon(void **state)
{
	struct kt *t = cur_kt;

	if (!t)
		return 0;
	cur_kt = NULL;
	pthread_mutex_lock(&t->p.lock);
	t->p.armed = -1;
	t->p.go = true;
	pthread_cond_broadcast(&t->p.cond);
	pthread_mutex_unlock(&t->p.lock);
	if (t->has_rec)
		rec_disarm(&t->rec);
	atomic_store(&t->watch_on, false);
	if (t->v && t->v->running)
		vcpu_stop(t->v);
	return 0;
}

/* ---- driving the guest ------------------------------------------------- */

void g_post(struct kt *t, int op, gpa_t gpa, uint64_t val)
{
	pthread_mutex_lock(&t->g.lock);
	assert_true(t->g.done == t->g.posted);
	t->g.op = op;
	t->g.gpa = gpa;
	t->g.val = val;
	t->g.posted++;
	pthread_cond_broadcast(&t->g.cond);
	pthread_mutex_unlock(&t->g.lock);
}

bool g_wait(struct kt *t, unsigned int ms)
{
	struct timespec ts;
	bool done;

	deadline_ms(&ts, ms);
	pthread_mutex_lock(&t->g.lock);
	while (t->g.done != t->g.posted)
		if (pthread_cond_timedwait(&t->g.cond, &t->g.lock, &ts) == ETIMEDOUT)
			break;
	done = t->g.done == t->g.posted;
	pthread_mutex_unlock(&t->g.lock);
	return done;
}

int g_reply(struct kt *t, uint64_t *out, struct vcpu_stats *st)
{
	pthread_mutex_lock(&t->g.lock);
	int ret = t->g.ret;

	if (out)
		*out = t->g.out;
	if (st)
		*st = t->g.st;
	pthread_mutex_unlock(&t->g.lock);
	return ret;
}

int g_load(struct kt *t, gpa_t gpa, uint64_t *out, struct vcpu_stats *st)
{
	g_post(t, G_LOAD, gpa, 0);
	assert_true(g_wait(t, TIMEOUT_MS));
	return g_reply(t, out, st);
}

int g_store(struct kt *t, gpa_t gpa, uint64_t val, struct vcpu_stats *st)
{
	g_post(t, G_STORE, gpa, val);
	assert_true(g_wait(t, TIMEOUT_MS));
	return g_reply(t, NULL, st);
}

uint64_t g_read(struct kt *t, gpa_t gpa)
{
	uint64_t v = 0;

	assert_int_equal(g_load(t, gpa, &v, NULL), 0);
	return v;
}

void g_write(struct kt *t, gpa_t gpa, uint64_t val)
{
	assert_int_equal(g_store(t, gpa, val, NULL), 0);
}

struct vcpu_stats g_stats(struct kt *t)
{
	struct vcpu_stats st;

	g_reply(t, NULL, &st);
	return st;
}

void g_mmio_log(struct kt *t, int *calls, gpa_t *gpa, bool *write, uint64_t *val)
{
	pthread_mutex_lock(&t->g.lock);
	*calls = t->g.mmio_calls;
	*gpa = t->g.mmio_gpa;
	*write = t->g.mmio_write;
	*val = t->g.mmio_val;
	pthread_mutex_unlock(&t->g.lock);
}

void kt_arm(struct kt *t, enum vcpu_hook_point at)
{
	pthread_mutex_lock(&t->p.lock);
	t->p.armed = at;
	pthread_mutex_unlock(&t->p.lock);
}

void kt_arm_pte_change(struct kt *t, hva_t hva)
{
	pthread_mutex_lock(&t->p.lock);
	t->p.pte_hva = hva;
	t->p.armed = PAUSE_IN_PTE_CHANGE;
	pthread_mutex_unlock(&t->p.lock);
}

bool kt_wait_paused(struct kt *t, unsigned int ms)
{
	pthread_mutex_lock(&t->p.lock);
	bool paused = wait_flag(&t->p.lock, &t->p.cond, &t->p.paused, ms);
	pthread_mutex_unlock(&t->p.lock);
	return paused;
}

bool kt_paused(struct kt *t)
{
	pthread_mutex_lock(&t->p.lock);
	bool paused = t->p.paused;
	pthread_mutex_unlock(&t->p.lock);
	return paused;
}

void kt_release(struct kt *t)
{
	pthread_mutex_lock(&t->p.lock);
	t->p.go = true;
	pthread_cond_broadcast(&t->p.cond);
	pthread_mutex_unlock(&t->p.lock);
}

long kt_hook_calls(struct kt *t, enum vcpu_hook_point at)
{
	return atomic_load(&t->p.calls[at]);
}

void pause_in_guest(struct kt *t, unsigned int i)
{
	kt_arm(t, VCPU_HOOK_IN_GUEST);
	g_post(t, G_LOAD, GPA(i) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.mode), IN_GUEST_MODE);
}

/* ---- host and spte helpers --------------------------------------------- */

void host_store(struct mm *mm, hva_t hva, uint64_t v)
{
	assert_int_equal(mm_write(mm, hva, &v, sizeof(v)), sizeof(v));
}

uint64_t host_load(struct mm *mm, hva_t hva)
{
	uint64_t v = 0;

	assert_int_equal(mm_read(mm, hva, &v, sizeof(v)), sizeof(v));
	return v;
}

spte_t spte_at(struct kt *t, gfn_t gfn)
{
	_Atomic spte_t *p = kvm_tdp_mmu_leaf(t->kvm, gfn);

	return p ? atomic_load(p) : 0;
}

spte_t gspte(struct kt *t, unsigned int i)
{
	return spte_at(t, GFN_BASE + i);
}

pfn_t host_pfn(struct kt *t, hva_t hva)
{
	pte_t pte = mm_lookup_pte(t->mm, hva);

	assert_true(pte_present(pte));
	return pte_pfn(pte);
}

struct kvm_stats kstats(struct kt *t)
{
	struct kvm_stats st;

	kvm_get_stats(t->kvm, &st);
	return st;
}

unsigned long kvm_seq(struct kt *t)
{
	return atomic_load(&t->kvm->mmu_invalidate_seq);
}

long kvm_in_progress(struct kt *t, hva_t *start, hva_t *end)
{
	down_read(&t->kvm->mmu_lock);
	long n = atomic_load(&t->kvm->mmu_invalidate_in_progress);

	if (start)
		*start = t->kvm->mmu_invalidate_range_start;
	if (end)
		*end = t->kvm->mmu_invalidate_range_end;
	up_read(&t->kvm->mmu_lock);
	return n;
}

void spte_rewrite(struct kt *t, gfn_t gfn, spte_t new)
{
	down_write(&t->kvm->mmu_lock);
	_Atomic spte_t *sptep = kvm_tdp_mmu_leaf(t->kvm, gfn);

	assert_non_null(sptep);
	tdp_mmu_set_spte(t->kvm, gfn, sptep, new);
	kvm_flush_remote_tlbs(t->kvm);
	up_write(&t->kvm->mmu_lock);
}

bool wait_zapped(struct kt *t, unsigned int i, unsigned int ms)
{
	uint64_t end = ms_now() + ms;

	while (is_shadow_present(gspte(t, i)) && ms_now() < end)
		sleep_ms(1);
	return !is_shadow_present(gspte(t, i));
}

void map_pages(struct kt *t, unsigned int n, uint64_t tag)
{
	for (unsigned int i = 0; i < n; i++) {
		host_store(t->mm, HVA(i) + 8, tag + i);
		assert_int_equal(g_read(t, GPA(i) + 8), tag + i);
		assert_true(is_shadow_present(gspte(t, i)));
	}
}

void expect_mmio_read(struct kt *t, gpa_t gpa)
{
	int calls0, calls;
	gpa_t mgpa;
	bool mwrite;
	uint64_t mval, out = 0;

	g_mmio_log(t, &calls0, &mgpa, &mwrite, &mval);
	assert_int_equal(g_load(t, gpa, &out, NULL), 0);
	g_mmio_log(t, &calls, &mgpa, &mwrite, &mval);
	assert_int_equal(calls, calls0 + 1);
	assert_int_equal(mgpa, gpa);
	assert_false(mwrite);
	assert_int_equal(out, MMIO_VAL);
}

void expect_mmio_write(struct kt *t, gpa_t gpa, uint64_t val)
{
	int calls0, calls;
	gpa_t mgpa;
	bool mwrite;
	uint64_t mval;

	g_mmio_log(t, &calls0, &mgpa, &mwrite, &mval);
	assert_int_equal(g_store(t, gpa, val, NULL), 0);
	g_mmio_log(t, &calls, &mgpa, &mwrite, &mval);
	assert_int_equal(calls, calls0 + 1);
	assert_int_equal(mgpa, gpa);
	assert_true(mwrite);
	assert_int_equal(mval, val);
}

void kt_wait_reentry(struct kvm *kvm, enum kvm_hook_point at, struct kvm_vcpu *v, void *arg)
{
	struct kt_reentry *h = arg;
	uint32_t e0 = atomic_load(&v->exit_epoch);
	uint64_t end = ms_now() + TIMEOUT_MS;

	if (at != KVM_HOOK_REQUEST_SET || !atomic_exchange(&h->armed, false))
		return;
	while (ms_now() < end) {
		if (atomic_load(&v->exit_epoch) != e0 &&
		    !(atomic_load(&v->requests) & (1UL << KVM_REQ_TLB_FLUSH)) &&
		    atomic_load(&v->mode) == IN_GUEST_MODE) {
			atomic_store(&h->reentered, true);
			return;
		}
		sleep_us(100);
	}
}
