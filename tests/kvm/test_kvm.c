/* SPDX-License-Identifier: MIT */
/*
 * test_kvm.c - the secondary MMU (src/kvm, src/vcpu) against a real host:
 * the orderings of the invalidation protocol, driven deterministically, and
 * unit tests of memslots, the fault paths, aging and change_pte.
 *
 * Protocol tests (where a kvm_config break switches the mechanism off, a
 * variant asserts that the damage then shows):
 *   a) a fault paused between GUP and mmu_lock while the host changes the
 *      PTE retries and maps the current frame; a fault during an open
 *      invalidation retries until its end; the seq snapshot precedes GUP;
 *   b) a TLB-flush request (and so an invalidation that zaps, or a slot
 *      delete) does not return while a vCPU is still in guest mode, and a
 *      request that lands just before guest entry is seen on entry;
 *   c) a deleted or moved slot is unreachable when the update returns,
 *      also when a fault on it was in flight;
 *   d) the mm's exit zaps every spte before a frame is freed, also when a
 *      fault was between GUP and mmu_lock;
 *   e) a non-blockable (OOM reaper) start never sleeps: -EAGAIN with
 *      nothing changed when a lock is taken; else it zaps and flushes
 *      without waiting for a vCPU in guest mode (counted), returning
 *      -EAGAIN for it in WAIT mode until it has left guest mode, and 0 in
 *      RSEQ mode (membarrier).
 *
 * How a test controls the vCPU thread:
 *   - the guest is a mailbox loop (guest_main): the test posts one load or
 *     store, the guest runs it through vcpu_load64/vcpu_store64 and replies
 *     with the result and a snapshot of its own stats; idle, it stays in
 *     guest mode and checks requests every millisecond;
 *   - the vCPU hook (kvm_vcpu_set_hook) pauses the thread once at an armed
 *     point (after GUP, before guest entry, or in guest mode) until the test
 *     releases it; the watcher below can pause it inside the host's fault;
 *   - a recorder (tests/harness/recorder.h) registered *before* the VM (so
 *     it is called after kvm's, the list being newest-first) holds an
 *     invalidation open between kvm's start and the host's PTE change;
 *   - a host PTE hook (the "watcher") checks at every PTE change that no
 *     present spte still maps the frame the host takes back, or maps it
 *     writable when the host write-protects it.
 *
 * Every test builds its own host, VM and vCPU, and its teardown stops the
 * vCPU, destroys the VM, ends every mm and asserts that every frame came
 * back and the host can be destroyed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/mmu_notifier.h"
#include "tandem/cpu.h"
#include "tandem/vmm.h"
#include "base/rcu.h"
#include "host/internal.h"
#include "kvm/kvm_host.h"
#include "harness/host_fixture.h"
#include "harness/recorder.h"

#define P          PAGE_SIZE
#define HVA_BASE   0x100000000ULL     /* guest RAM in the VMM: 4 GiB */
#define HVA_RO     0x100100000ULL     /* backing of the read-only slot */
#define HVA_HOLE   0x100200000ULL     /* never mapped */
#define GPA_BASE   0x40000000ULL      /* guest RAM at 1 GiB */
#define GPA_MOVED  0x50000000ULL
#define GPA_RO     0x60000000ULL
#define GPA_HOLE   0x70000000ULL
#define GPA_MMIO   0x80000000ULL      /* no slot */
#define NPAGES     16
#define RO_PAGES   4
#define GFN_BASE   (GPA_BASE >> PAGE_SHIFT)
#define GPA(i)     (GPA_BASE + (gpa_t)(i) * P)
#define HVA(i)     (HVA_BASE + (hva_t)(i) * P)
#define MMIO_VAL   0x1badc0deULL      /* what the test's MMIO handler reads */
#define TIMEOUT_MS 10000
#define BLOCK_MS   100                /* "does not return while ..." */

/* ---- time and a monotonic condvar ------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void sync_init(pthread_mutex_t *m, pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_mutex_init(m, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static void sync_destroy(pthread_mutex_t *m, pthread_cond_t *c)
{
	pthread_cond_destroy(c);
	pthread_mutex_destroy(m);
}

/* Wait on c (m held) until *flag or ms elapse; returns *flag. */
static bool wait_flag(pthread_mutex_t *m, pthread_cond_t *c, const bool *flag,
		      unsigned int ms)
{
	struct timespec ts;

	deadline_in(&ts, ms);
	while (!*flag)
		if (pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT)
			break;
	return *flag;
}

/* ---- the guest: a mailbox loop on the vCPU thread ---------------------- */

enum guest_op { G_LOAD = 1, G_STORE };

struct guest {
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* posted and done, both directions */
	unsigned long posted, done;
	int op;
	gpa_t gpa;
	uint64_t val;
	/* The reply, written by the vCPU thread. */
	int ret;
	uint64_t out;
	struct vcpu_stats st;           /* the vCPU's stats after the op */
	/* The MMIO handler's log (vCPU thread, under lock). */
	int mmio_calls;
	gpa_t mmio_gpa;
	bool mmio_write;
	uint64_t mmio_val;
};

static void guest_mmio(struct vcpu *v, gpa_t gpa, bool write, uint64_t *val,
		       void *arg)
{
	struct guest *g = arg;

	pthread_mutex_lock(&g->lock);
	g->mmio_calls++;
	g->mmio_gpa = gpa;
	g->mmio_write = write;
	if (write)
		g->mmio_val = *val;
	else
		*val = MMIO_VAL;
	pthread_mutex_unlock(&g->lock);
}

/*
 * Runs in guest mode. Idle, it checks requests every millisecond, as a
 * guest's bounded-interval exit would; that is what lets a waiting flush
 * finish while the guest does nothing. An access the host refused (the
 * host is gone, the slot's hva is unmapped) ends the guest: the error
 * becomes vcpu_stop()'s return value. An unaligned access (-EINVAL)
 * does not.
 */
static int guest_main(struct vcpu *v, void *arg)
{
	struct guest *g = arg;

	for (;;) {
		int r = vcpu_check_requests(v);

		if (r)
			return r;
		pthread_mutex_lock(&g->lock);
		if (g->done == g->posted) {
			struct timespec ts;

			deadline_in(&ts, 1);
			pthread_cond_timedwait(&g->cond, &g->lock, &ts);
			pthread_mutex_unlock(&g->lock);
			continue;
		}
		int op = g->op;
		gpa_t gpa = g->gpa;
		uint64_t val = g->val;

		pthread_mutex_unlock(&g->lock);
		r = op == G_LOAD ? vcpu_load64(v, gpa, &val) : vcpu_store64(v, gpa, val);
		pthread_mutex_lock(&g->lock);
		g->ret = r;
		g->out = val;
		g->st = v->stat;
		g->done++;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		if (r && r != -EINVAL)
			return r;
	}
}

/* ---- the pause hook ---------------------------------------------------- */

/* Besides the vCPU hook points: a host PTE change at pte_hva (the watcher
 * below), i.e. inside the host's fault or GUP, under page_table_lock. */
#define PAUSE_IN_PTE_CHANGE VCPU_NR_HOOKS

struct pauser {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int armed;                      /* point to stop at once, or -1 */
	hva_t pte_hva;
	bool paused, go;
	atomic_long calls[VCPU_NR_HOOKS];
};

/* Called with p->lock held at the armed point: stop until released. */
static void pause_here(struct pauser *p)
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
	struct pauser *p = arg;

	atomic_fetch_add(&p->calls[at], 1);
	pthread_mutex_lock(&p->lock);
	if (p->armed == (int)at)
		pause_here(p);
	pthread_mutex_unlock(&p->lock);
}

/* ---- a host operation on another thread -------------------------------- */

struct kt;
typedef int (*bg_fn)(struct kt *t, uintptr_t arg);

struct bg {
	pthread_t th;
	bg_fn fn;
	struct kt *t;
	uintptr_t arg;
	int ret;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

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

static void bg_start(struct bg *b, bg_fn fn, struct kt *t, uintptr_t arg)
{
	memset(b, 0, sizeof(*b));
	sync_init(&b->lock, &b->cond);
	b->fn = fn;
	b->t = t;
	b->arg = arg;
	assert_int_equal(pthread_create(&b->th, NULL, bg_main, b), 0);
}

/* Has it returned within ms? */
static bool bg_done(struct bg *b, unsigned int ms)
{
	pthread_mutex_lock(&b->lock);
	bool done = wait_flag(&b->lock, &b->cond, &b->done, ms);
	pthread_mutex_unlock(&b->lock);
	return done;
}

static int bg_join(struct bg *b)
{
	assert_true(bg_done(b, TIMEOUT_MS));
	pthread_join(b->th, NULL);
	sync_destroy(&b->lock, &b->cond);
	return b->ret;
}

/* ---- the fixture ------------------------------------------------------- */

/* KT_KICK_*: the flush protocol (default: AUTO, i.e. RSEQ where built). */
/* KT_RECORDER: a recorder registered before the VM (called after kvm). */
enum { KT_NO_VCPU = 1u << 0, KT_RECORDER = 1u << 1, KT_KICK_WAIT = 1u << 2,
       KT_KICK_RSEQ = 1u << 3, KT_SWAP = 1u << 4 };
#define KT_SWAP_BYTES (16ULL << 20)

struct kt {
	struct ht *ht;
	struct host *h;
	struct mm *mm;
	struct kvm *kvm;
	struct vcpu *v;
	struct guest g;
	struct pauser p;
	struct recorder rec;
	bool has_rec;
	struct bg bg;                   /* here, not on a stack: kt_abandon */
	atomic_bool watch_on;
	atomic_long watch_events;       /* PTE drops/write-protects checked */
	atomic_long stale;              /* ... that a present spte outlived */
};

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

static void kt_add_slot(struct kt *t, uint32_t id, uint32_t flags, gpa_t gpa,
			uint64_t size, hva_t hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = id, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = hva,
	};

	assert_int_equal(kvm_set_user_memory_region(t->kvm, &r), 0);
}

/* The test running now, for kt_abandon(). */
static struct kt *cur_kt;

static void kt_vcpu_start(struct kt *t)
{
	assert_int_equal(vcpu_run(t->v, guest_main, &t->g), 0);
}

static struct kt *kt_create(unsigned int breaks, unsigned int opts)
{
	struct kt *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->ht = ht_create_swap(HT_RAM, 0, (opts & KT_SWAP) ? KT_SWAP_BYTES : 0);
	t->h = t->ht->host;
	t->mm = ht_mm(t->ht);
	ht_mmap(t->mm, HVA_BASE, NPAGES * P, HT_RW, HT_FIXED);
	sync_init(&t->g.lock, &t->g.cond);
	sync_init(&t->p.lock, &t->p.cond);
	t->p.armed = -1;
	host_set_pte_hook(t->h, watch_pte, t);
	if (opts & KT_RECORDER) {
		rec_init(&t->rec, 1, REC_ALL);
		assert_int_equal(mmu_notifier_register(&t->rec.mn, t->mm), 0);
		t->has_rec = true;
	}
	struct kvm_config cfg = {
		.breaks = breaks,
		.kick = (opts & KT_KICK_WAIT) ? KVM_KICK_WAIT :
			(opts & KT_KICK_RSEQ) ? KVM_KICK_RSEQ : KVM_KICK_AUTO,
	};

	assert_int_equal(kvm_create_vm(t->mm, &cfg, &t->kvm), 0);
	kt_add_slot(t, 0, 0, GPA_BASE, NPAGES * P, HVA_BASE);
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

static void kt_destroy(struct kt *t)
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
	ht_destroy(t->ht);       /* every frame back, host destroyed */
	sync_destroy(&t->g.lock, &t->g.cond);
	sync_destroy(&t->p.lock, &t->p.cond);
	free(t);
}

/* ---- driving the guest ------------------------------------------------- */

static void g_post(struct kt *t, int op, gpa_t gpa, uint64_t val)
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

/* Has the posted op completed within ms? */
static bool g_wait(struct kt *t, unsigned int ms)
{
	struct timespec ts;
	bool done;

	deadline_in(&ts, ms);
	pthread_mutex_lock(&t->g.lock);
	while (t->g.done != t->g.posted)
		if (pthread_cond_timedwait(&t->g.cond, &t->g.lock, &ts) == ETIMEDOUT)
			break;
	done = t->g.done == t->g.posted;
	pthread_mutex_unlock(&t->g.lock);
	return done;
}

static int g_reply(struct kt *t, uint64_t *out, struct vcpu_stats *st)
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

static int g_load(struct kt *t, gpa_t gpa, uint64_t *out, struct vcpu_stats *st)
{
	g_post(t, G_LOAD, gpa, 0);
	assert_true(g_wait(t, TIMEOUT_MS));
	return g_reply(t, out, st);
}

static int g_store(struct kt *t, gpa_t gpa, uint64_t val, struct vcpu_stats *st)
{
	g_post(t, G_STORE, gpa, val);
	assert_true(g_wait(t, TIMEOUT_MS));
	return g_reply(t, NULL, st);
}

/* Guest load that must succeed; returns the value. */
static uint64_t g_read(struct kt *t, gpa_t gpa)
{
	uint64_t v = 0;

	assert_int_equal(g_load(t, gpa, &v, NULL), 0);
	return v;
}

static void g_write(struct kt *t, gpa_t gpa, uint64_t val)
{
	assert_int_equal(g_store(t, gpa, val, NULL), 0);
}

static struct vcpu_stats g_stats(struct kt *t)
{
	struct vcpu_stats st;

	g_reply(t, NULL, &st);
	return st;
}

static void g_mmio_log(struct kt *t, int *calls, gpa_t *gpa, bool *write, uint64_t *val)
{
	pthread_mutex_lock(&t->g.lock);
	*calls = t->g.mmio_calls;
	*gpa = t->g.mmio_gpa;
	*write = t->g.mmio_write;
	*val = t->g.mmio_val;
	pthread_mutex_unlock(&t->g.lock);
}

static void kt_arm(struct kt *t, enum vcpu_hook_point at)
{
	pthread_mutex_lock(&t->p.lock);
	t->p.armed = at;
	pthread_mutex_unlock(&t->p.lock);
}

static void kt_arm_pte_change(struct kt *t, hva_t hva)
{
	pthread_mutex_lock(&t->p.lock);
	t->p.pte_hva = hva;
	t->p.armed = PAUSE_IN_PTE_CHANGE;
	pthread_mutex_unlock(&t->p.lock);
}

static bool kt_wait_paused(struct kt *t, unsigned int ms)
{
	pthread_mutex_lock(&t->p.lock);
	bool paused = wait_flag(&t->p.lock, &t->p.cond, &t->p.paused, ms);
	pthread_mutex_unlock(&t->p.lock);
	return paused;
}

static bool kt_paused(struct kt *t)
{
	pthread_mutex_lock(&t->p.lock);
	bool paused = t->p.paused;
	pthread_mutex_unlock(&t->p.lock);
	return paused;
}

static void kt_release(struct kt *t)
{
	pthread_mutex_lock(&t->p.lock);
	t->p.go = true;
	pthread_cond_broadcast(&t->p.cond);
	pthread_mutex_unlock(&t->p.lock);
}

static long kt_hook_calls(struct kt *t, enum vcpu_hook_point at)
{
	return atomic_load(&t->p.calls[at]);
}

/* ---- host and spte helpers --------------------------------------------- */

static void host_store(struct mm *mm, hva_t hva, uint64_t v)
{
	assert_int_equal(mm_write(mm, hva, &v, sizeof(v)), sizeof(v));
}

static uint64_t host_load(struct mm *mm, hva_t hva)
{
	uint64_t v = 0;

	assert_int_equal(mm_read(mm, hva, &v, sizeof(v)), sizeof(v));
	return v;
}

static spte_t spte_at(struct kt *t, gfn_t gfn)
{
	_Atomic spte_t *p = kvm_tdp_mmu_leaf(t->kvm, gfn);

	return p ? atomic_load(p) : 0;
}

static spte_t gspte(struct kt *t, unsigned int i)
{
	return spte_at(t, GFN_BASE + i);
}

static pfn_t host_pfn(struct kt *t, hva_t hva)
{
	pte_t pte = mm_lookup_pte(t->mm, hva);

	assert_true(pte_present(pte));
	return pte_pfn(pte);
}

static struct kvm_stats kstats(struct kt *t)
{
	struct kvm_stats st;

	kvm_get_stats(t->kvm, &st);
	return st;
}

static unsigned long kvm_seq(struct kt *t)
{
	return atomic_load(&t->kvm->mmu_invalidate_seq);
}

static long kvm_in_progress(struct kt *t, hva_t *start, hva_t *end)
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

/* Replace a present spte's bits (same frame), as a later feature that
 * write-protects would, and flush. */
static void spte_rewrite(struct kt *t, gfn_t gfn, spte_t new)
{
	down_write(&t->kvm->mmu_lock);
	_Atomic spte_t *sptep = kvm_tdp_mmu_leaf(t->kvm, gfn);

	assert_non_null(sptep);
	tdp_mmu_set_spte(t->kvm, gfn, sptep, new);
	kvm_flush_remote_tlbs(t->kvm);
	up_write(&t->kvm->mmu_lock);
}

static bool wait_until_long(atomic_long *c, long want, unsigned int ms)
{
	uint64_t end = now_ms() + ms;

	while (atomic_load(c) < want && now_ms() < end)
		usleep(1000);
	return atomic_load(c) >= want;
}

static bool wait_zapped(struct kt *t, unsigned int i, unsigned int ms)
{
	uint64_t end = now_ms() + ms;

	while (is_shadow_present(gspte(t, i)) && now_ms() < end)
		usleep(1000);
	return !is_shadow_present(gspte(t, i));
}

/* ---- bg operations ----------------------------------------------------- */

static int bg_dontneed(struct kt *t, uintptr_t hva)
{
	return mm_madvise(t->mm, hva, P, MADV_DONTNEED);
}

static int bg_flush_all(struct kt *t, uintptr_t unused)
{
	kvm_make_all_cpus_request(t->kvm, KVM_REQ_TLB_FLUSH, true);
	return 0;
}

static int bg_delete_slot0(struct kt *t, uintptr_t unused)
{
	struct kvm_userspace_memory_region r = { .slot = 0 };

	return kvm_set_user_memory_region(t->kvm, &r);
}

/* ==== a) a fault racing an invalidation retries ========================= */

enum host_change { CHANGE_DONTNEED, CHANGE_REMAP, CHANGE_COW };

/*
 * The vCPU reads page i for the first time and stops after GUP (it holds
 * the old frame, mmu_lock not taken). The host then changes the PTE and
 * the invalidation completes in full. Resumed, the fault must see the seq
 * bump, retry, and map the host's current frame; with the seq check
 * broken it maps the old one.
 */
static void fault_after_gup_vs_change(enum host_change change, unsigned int breaks)
{
	bool broken = breaks & KVM_BREAK_SEQ_CHECK;
	struct kt *t = kt_create(breaks, 0);
	const unsigned int i = 3;
	const gpa_t gpa = GPA(i) + 8;
	uint64_t want = 0, out = 0;
	struct mm *child = NULL;

	host_store(t->mm, HVA(i) + 8, 0xA1);
	pfn_t old_pfn = host_pfn(t, HVA(i));
	struct vcpu_stats st0 = g_stats(t), st1;
	struct kvm_stats k0 = kstats(t), k1;
	long gups0 = kt_hook_calls(t, VCPU_HOOK_AFTER_GUP);
	unsigned long seq0 = kvm_seq(t);

	kt_arm(t, VCPU_HOOK_AFTER_GUP);
	g_post(t, G_LOAD, gpa, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	assert_false(is_shadow_present(gspte(t, i)));

	switch (change) {
	case CHANGE_DONTNEED:
		assert_int_equal(mm_madvise(t->mm, HVA(i), P, MADV_DONTNEED), 0);
		assert_false(pte_present(mm_lookup_pte(t->mm, HVA(i))));
		want = 0;
		break;
	case CHANGE_REMAP:
		assert_int_equal(mm_munmap(t->mm, HVA(i), P), 0);
		ht_mmap(t->mm, HVA(i), P, HT_RW, HT_FIXED);
		host_store(t->mm, HVA(i) + 8, 0xB2);
		want = 0xB2;
		break;
	case CHANGE_COW:
		child = ht_fork(t->ht, t->mm);
		host_store(t->mm, HVA(i) + 8, 0xC3);    /* breaks COW in the parent */
		want = 0xC3;
		break;
	}
	assert_true(kvm_seq(t) > seq0);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, &out, &st1), 0);
	k1 = kstats(t);

	spte_t s = gspte(t, i);
	pte_t pte = mm_lookup_pte(t->mm, HVA(i));

	assert_true(is_shadow_present(s));
	if (!broken) {
		/* One retry, two GUPs, and the spte maps what the host maps. */
		assert_int_equal(k1.fault_retries - k0.fault_retries, 1);
		assert_int_equal(st1.fault_retries - st0.fault_retries, 1);
		assert_int_equal(kt_hook_calls(t, VCPU_HOOK_AFTER_GUP) - gups0, 2);
		assert_true(pte_present(pte));
		assert_int_equal(spte_to_pfn(s), pte_pfn(pte));
		assert_int_not_equal(spte_to_pfn(s), old_pfn);
		assert_int_equal(out, want);
		if (child) {
			/* The guest's writes go to the parent only. */
			assert_int_equal(host_load(child, HVA(i) + 8), 0xA1);
			g_write(t, gpa, 0xD4);
			assert_int_equal(host_load(t->mm, HVA(i) + 8), 0xD4);
			assert_int_equal(host_load(child, HVA(i) + 8), 0xA1);
		}
		assert_int_equal(atomic_load(&t->stale), 0);
	} else {
		/* No retry: the spte maps the frame the host let go of. */
		assert_int_equal(k1.fault_retries - k0.fault_retries, 0);
		assert_int_equal(spte_to_pfn(s), old_pfn);
		assert_true(!pte_present(pte) || pte_pfn(pte) != spte_to_pfn(s));
		if (child) {
			/* ... which is now the child's, mapped writable: the
			 * guest reads and writes another process's memory. */
			assert_int_equal(out, 0xA1);
			g_write(t, gpa, 0xD4);
			assert_int_equal(host_load(child, HVA(i) + 8), 0xD4);
			assert_int_equal(host_load(t->mm, HVA(i) + 8), 0xC3);
		}
	}
	kt_destroy(t);
}

static void test_fault_retry_dontneed(void **state)
{
	fault_after_gup_vs_change(CHANGE_DONTNEED, 0);
}

static void test_fault_retry_remap(void **state)
{
	fault_after_gup_vs_change(CHANGE_REMAP, 0);
}

static void test_fault_retry_cow(void **state)
{
	fault_after_gup_vs_change(CHANGE_COW, 0);
}

static void test_fault_retry_broken_dontneed(void **state)
{
	fault_after_gup_vs_change(CHANGE_DONTNEED, KVM_BREAK_SEQ_CHECK);
}

static void test_fault_retry_broken_remap(void **state)
{
	fault_after_gup_vs_change(CHANGE_REMAP, KVM_BREAK_SEQ_CHECK);
}

static void test_fault_retry_broken_cow(void **state)
{
	fault_after_gup_vs_change(CHANGE_COW, KVM_BREAK_SEQ_CHECK);
}

/*
 * The seq snapshot must come before the frame lookup. Stop the vCPU inside
 * GUP (the host installing the PTE it will return) and run a whole
 * invalidation meanwhile: the fault must retry. A snapshot taken after GUP
 * would miss it -- and with a real PTE change in that window, map a frame
 * the host had already taken back.
 */
static void test_fault_seq_snapshot_before_gup(void **state)
{
	struct kt *t = kt_create(0, 0);
	const unsigned int i = 6;
	struct mmu_notifier_range r;
	uint64_t out = 1;

	struct kvm_stats k0 = kstats(t);

	kt_arm_pte_change(t, HVA(i));
	g_post(t, G_LOAD, GPA(i) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	/* The vCPU is in the host's fault, under page_table_lock: only a
	 * range that changes no PTE can run now. */
	unsigned long seq0 = kvm_seq(t);

	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				t->mm, HVA(i), HVA(i) + P);
	mmu_notifier_invalidate_range_start(&r);
	mmu_notifier_invalidate_range_end(&r);
	assert_int_equal(kvm_seq(t), seq0 + 1);
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, &out, NULL), 0);
	assert_int_equal(out, 0);
	assert_int_equal(kstats(t).fault_retries - k0.fault_retries, 1);
	assert_int_equal(spte_to_pfn(gspte(t, i)), host_pfn(t, HVA(i)));
	kt_destroy(t);
}

/*
 * A request that arrives while the vCPU is outside guest mode does not
 * wait for it; the vCPU must see it when it re-enters. Stop the vCPU with
 * a translation just put in its soft TLB, before it re-enters; the host
 * takes the page back meanwhile (the flush does not wait: the vCPU is
 * outside). On entry the vCPU must notice the request and walk again, not
 * use the entry it just filled.
 */
static void test_request_vs_guest_entry(void **state)
{
	struct kt *t = kt_create(0, 0);
	const unsigned int i = 7;
	struct bg *bg = &t->bg;
	uint64_t out = 1;

	host_store(t->mm, HVA(i) + 8, 0xA5);
	kt_arm(t, VCPU_HOOK_BEFORE_ENTER);
	g_post(t, G_LOAD, GPA(i) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	assert_true(is_shadow_present(gspte(t, i)));

	bg_start(bg, bg_dontneed, t, HVA(i));
	assert_true(bg_done(bg, TIMEOUT_MS));
	assert_int_equal(bg_join(bg), 0);
	assert_false(pte_present(mm_lookup_pte(t->mm, HVA(i))));
	assert_false(is_shadow_present(gspte(t, i)));

	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, &out, NULL), 0);
	assert_int_equal(out, 0);
	assert_int_equal(spte_to_pfn(gspte(t, i)), host_pfn(t, HVA(i)));
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * An invalidation held open between kvm's start and the host's PTE change
 * (the test's recorder is older, so it runs after kvm's start). The GUP
 * still finds the old frame; the fault must retry for as long as the range
 * is open and map the new PTE after end. Broken, it maps the old frame,
 * which the host then frees under a present spte: the watcher sees it.
 */
static void fault_during_open_invalidation(unsigned int breaks)
{
	bool broken = breaks & KVM_BREAK_SEQ_CHECK;
	struct kt *t = kt_create(breaks, KT_RECORDER);
	const unsigned int i = 5;
	const gpa_t gpa = GPA(i) + 8;
	struct bg *bg = &t->bg;
	hva_t rs, re;
	uint64_t out = 0;

	host_store(t->mm, HVA(i) + 8, 0xA1);
	pfn_t old_pfn = host_pfn(t, HVA(i));

	assert_int_equal(g_read(t, gpa), 0xA1);
	assert_true(is_shadow_present(gspte(t, i)));

	rec_arm(&t->rec, &(struct rec_trigger){ .kinds = REC_F(REC_START),
						.start = HVA(i), .end = HVA(i) + P,
						.pause = true });
	bg_start(bg, bg_dontneed, t, HVA(i));
	assert_true(rec_wait_paused(&t->rec, TIMEOUT_MS));
	/* kvm's start ran: count raised over the page, spte zapped; the host
	 * has not touched the PTE yet. */
	assert_int_equal(kvm_in_progress(t, &rs, &re), 1);
	assert_true(rs <= HVA(i) && HVA(i) + P <= re);
	assert_false(is_shadow_present(gspte(t, i)));
	assert_int_equal(host_pfn(t, HVA(i)), old_pfn);

	struct kvm_stats k0 = kstats(t);
	long gups0 = kt_hook_calls(t, VCPU_HOOK_AFTER_GUP);

	g_post(t, G_LOAD, gpa, 0);
	if (!broken) {
		/* It keeps retrying and installs nothing. */
		assert_true(wait_until_long(&t->p.calls[VCPU_HOOK_AFTER_GUP], gups0 + 3,
					    TIMEOUT_MS));
		assert_true(kstats(t).fault_retries - k0.fault_retries >= 2);
		assert_false(g_wait(t, 0));
		assert_false(is_shadow_present(gspte(t, i)));
		rec_resume(&t->rec);
		assert_int_equal(bg_join(bg), 0);
		assert_true(g_wait(t, TIMEOUT_MS));
		assert_int_equal(g_reply(t, &out, NULL), 0);
		assert_int_equal(out, 0);
		spte_t s = gspte(t, i);

		assert_true(is_shadow_present(s));
		assert_int_equal(spte_to_pfn(s), host_pfn(t, HVA(i)));
		assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
		assert_int_equal(atomic_load(&t->stale), 0);
	} else {
		/* It maps the old frame while the range is open ... */
		assert_true(g_wait(t, TIMEOUT_MS));
		assert_int_equal(g_reply(t, &out, NULL), 0);
		assert_int_equal(out, 0xA1);
		assert_int_equal(kstats(t).fault_retries, k0.fault_retries);
		assert_int_equal(spte_to_pfn(gspte(t, i)), old_pfn);
		/* ... and the host then frees it under that spte. */
		rec_resume(&t->rec);
		assert_int_equal(bg_join(bg), 0);
		assert_true(atomic_load(&t->stale) >= 1);
		assert_false(pte_present(mm_lookup_pte(t->mm, HVA(i))));
		assert_true(is_shadow_present(gspte(t, i)));
		assert_int_equal(spte_to_pfn(gspte(t, i)), old_pfn);
	}
	kt_destroy(t);
}

static void test_fault_retry_in_progress(void **state)
{
	fault_during_open_invalidation(0);
}

static void test_fault_retry_in_progress_broken(void **state)
{
	fault_during_open_invalidation(KVM_BREAK_SEQ_CHECK);
}

/*
 * Bookkeeping: in_progress returns to 0 and seq grows by exactly one per
 * start/end pair; open ranges widen to their union, which persists until
 * the last one ends; a fault outside the union is not held back, one
 * inside it retries until in_progress drops to 0.
 */
static void test_invalidate_bookkeeping(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct mmu_notifier_range r1, r2;
	hva_t rs, re;

	/* Host operations: seq advances by the number of pairs. */
	unsigned long seq0 = kvm_seq(t);
	struct kvm_stats k0 = kstats(t);

	host_store(t->mm, HVA(0), 1);
	assert_int_equal(mm_madvise(t->mm, HVA(0), P, MADV_DONTNEED), 0);
	assert_int_equal(kvm_seq(t), seq0 + 1);
	assert_int_equal(mm_mprotect(t->mm, HVA_BASE, NPAGES * P, PROT_READ), 0);
	assert_int_equal(mm_mprotect(t->mm, HVA_BASE, NPAGES * P, HT_RW), 0);
	assert_int_equal(mm_madvise(t->mm, HVA_BASE, NPAGES * P, MADV_DONTNEED), 0);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_true(kvm_seq(t) >= seq0 + 3);
	assert_int_equal(kvm_seq(t) - seq0, kstats(t).invalidations - k0.invalidations);

	/* Two overlapping ranges opened by this thread. */
	seq0 = kvm_seq(t);
	mmu_notifier_range_init(&r1, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				t->mm, HVA(2), HVA(6));
	mmu_notifier_range_init(&r2, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				t->mm, HVA(4), HVA(10));
	mmu_notifier_invalidate_range_start(&r1);
	assert_int_equal(kvm_in_progress(t, &rs, &re), 1);
	assert_int_equal(rs, HVA(2));
	assert_int_equal(re, HVA(6));
	mmu_notifier_invalidate_range_start(&r2);
	assert_int_equal(kvm_in_progress(t, &rs, &re), 2);
	assert_int_equal(rs, HVA(2));
	assert_int_equal(re, HVA(10));
	assert_int_equal(kvm_seq(t), seq0);

	/* Outside the union: no retry. */
	struct kvm_stats k1 = kstats(t);

	assert_int_equal(g_read(t, GPA(12)), 0);
	assert_true(is_shadow_present(gspte(t, 12)));
	assert_int_equal(kstats(t).fault_retries, k1.fault_retries);

	/* Inside r2 only: held back while either range is open (the union
	 * stays until in_progress is 0). */
	g_post(t, G_LOAD, GPA(8), 0);
	assert_true(wait_until_long(&t->p.calls[VCPU_HOOK_AFTER_GUP],
				    kt_hook_calls(t, VCPU_HOOK_AFTER_GUP) + 2, TIMEOUT_MS));
	assert_false(g_wait(t, 0));
	mmu_notifier_invalidate_range_end(&r2);
	assert_int_equal(kvm_in_progress(t, &rs, &re), 1);
	assert_int_equal(rs, HVA(2));
	assert_int_equal(re, HVA(10));
	assert_int_equal(kvm_seq(t), seq0 + 1);
	long gups = kt_hook_calls(t, VCPU_HOOK_AFTER_GUP);

	assert_true(wait_until_long(&t->p.calls[VCPU_HOOK_AFTER_GUP], gups + 2, TIMEOUT_MS));
	assert_false(g_wait(t, 0));
	assert_false(is_shadow_present(gspte(t, 8)));
	mmu_notifier_invalidate_range_end(&r1);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(kvm_seq(t), seq0 + 2);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	assert_true(is_shadow_present(gspte(t, 8)));
	assert_true(kstats(t).fault_retries - k1.fault_retries >= 4);
	kt_destroy(t);
}

/* ==== b) a TLB flush waits for guest mode =============================== */

/* Pause the vCPU in guest mode: a first read of page i takes the slow path,
 * re-enters guest mode and stops at the hook before the access. */
static void pause_in_guest(struct kt *t, unsigned int i)
{
	kt_arm(t, VCPU_HOOK_IN_GUEST);
	g_post(t, G_LOAD, GPA(i) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.mode), IN_GUEST_MODE);
}

static void test_flush_request_waits_for_guest_mode(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct vcpu_stats st0, st1;
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* page 0 in the soft TLB */
	pause_in_guest(t, 1);
	uint32_t epoch0 = atomic_load(&t->v->kvm_vcpu.exit_epoch);

	bg_start(bg, bg_flush_all, t, 0);
	assert_false(bg_done(bg, BLOCK_MS));
	/* Kicked (EXITING), not out: the requester still waits. */
	assert_int_not_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.exit_epoch), epoch0);
	assert_true(kt_paused(t));

	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	assert_true(atomic_load(&t->v->kvm_vcpu.exit_epoch) != epoch0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, &st0), 0);

	/* Page 0 is no longer in the soft TLB: its next read walks. */
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_true(st1.stlb_flushes > st0.stlb_flushes);
	kt_destroy(t);
}

/*
 * The lost wake-up (a waiting flush that hung `tandem bench kvm`): the vCPU
 * sees the request between the requester's setting of the bit and its read
 * of exit_epoch, exits, flushes, consumes the bit and enters guest mode
 * again; the requester then finds it in guest mode with nothing pending.
 * The hook holds the requester at that point until all of that happened.
 * The request must return: the vCPU did what was asked, and an idle guest
 * has no reason to exit again (waiting for exit_epoch alone slept until
 * the test's teardown stopped the vCPU).
 */
struct reentry_hook {
	atomic_bool armed;
	atomic_bool reentered;
};

static void wait_reentry(struct kvm *kvm, enum kvm_hook_point at, struct kvm_vcpu *v,
			 void *arg)
{
	struct reentry_hook *h = arg;
	uint32_t e0 = atomic_load(&v->exit_epoch);
	uint64_t end = now_ms() + TIMEOUT_MS;

	if (at != KVM_HOOK_REQUEST_SET || !atomic_exchange(&h->armed, false))
		return;
	while (now_ms() < end) {
		if (atomic_load(&v->exit_epoch) != e0 &&
		    !(atomic_load(&v->requests) & (1UL << KVM_REQ_TLB_FLUSH)) &&
		    atomic_load(&v->mode) == IN_GUEST_MODE) {
			atomic_store(&h->reentered, true);
			return;
		}
		usleep(100);
	}
}

static void test_flush_request_consumed_before_snapshot(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct reentry_hook h = { 0 };
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* idle in guest mode */
	atomic_store(&h.armed, true);
	kvm_set_test_hook(t->kvm, wait_reentry, &h);
	bg_start(bg, bg_flush_all, t, 0);
	assert_true(bg_done(bg, TIMEOUT_MS));
	assert_true(atomic_load(&h.reentered));         /* the interleaving happened */
	assert_int_equal(bg_join(bg), 0);
	kvm_set_test_hook(t->kvm, NULL, NULL);
	kt_destroy(t);
}

/*
 * The same through the host: a DONTNEED of a page the vCPU has mapped must
 * not return, and the host must not take the frame back, while the vCPU is
 * in guest mode (it could be using the old translation). With the flush
 * wait broken, the host frees the frame while the vCPU's soft TLB still
 * points at it.
 */
static void invalidation_vs_guest_mode(unsigned int breaks)
{
	bool broken = breaks & KVM_BREAK_FLUSH_WAIT;
	struct kt *t = kt_create(breaks, KT_KICK_WAIT);
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(0) + 8, 7);
	pfn_t old_pfn = host_pfn(t, HVA(0));

	assert_int_equal(g_read(t, GPA(0) + 8), 7);
	pause_in_guest(t, 1);
	bg_start(bg, bg_dontneed, t, HVA(0));
	if (!broken) {
		assert_false(bg_done(bg, BLOCK_MS));
		/* Held in invalidate_range_start: the spte is gone, the PTE
		 * and the frame not yet. */
		assert_true(wait_zapped(t, 0, TIMEOUT_MS));
		assert_int_equal(host_pfn(t, HVA(0)), old_pfn);
		assert_true(kt_paused(t));
		kt_release(t);
		assert_int_equal(bg_join(bg), 0);
	} else {
		assert_true(bg_done(bg, TIMEOUT_MS));
		assert_true(kt_paused(t));
		assert_int_not_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
		assert_false(pte_present(mm_lookup_pte(t->mm, HVA(0))));
		/* The paused vCPU's soft TLB still maps the freed frame. */
		struct stlb_entry *e = stlb_entry(t->v, GPA(0));

		assert_int_equal(e->addr_read, GPA(0));
		assert_ptr_equal((void *)(e->addend + GPA(0)),
				 page_address(pfn_to_page(t->h, old_pfn)));
		kt_release(t);
		assert_int_equal(bg_join(bg), 0);
	}
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	/* Either way the request is seen before the next access. */
	assert_int_equal(g_read(t, GPA(0) + 8), 0);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

static void test_invalidation_waits_for_guest_mode(void **state)
{
	invalidation_vs_guest_mode(0);
}

/*
 * RSEQ kick mode: the invalidation does not wait for a vCPU in guest mode
 * (it may be preempted there for a scheduler tick), because that vCPU's
 * next access is an rseq section that checks the request first, and one
 * already inside a section is aborted by membarrier. So: with the vCPU
 * held in guest mode, DONTNEED returns and the host frees the frame; when
 * the vCPU goes on, its access takes the slow path (request seen, soft TLB
 * flushed) and page 0 reads back zero, never the freed frame.
 */
static void test_rseq_invalidation_does_not_wait(void **state)
{
	if (!kvm_rseq_available())
		skip(); /* sanitizer builds: the asm path is compiled out */
	struct kt *t = kt_create(0, KT_KICK_RSEQ);
	struct bg *bg = &t->bg;
	struct vcpu_stats st0, st1;

	assert_int_equal(kvm_kick_mode(t->kvm), KVM_KICK_RSEQ);
	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);
	pause_in_guest(t, 1);
	bg_start(bg, bg_dontneed, t, HVA(0));
	assert_true(bg_done(bg, TIMEOUT_MS));
	assert_int_equal(bg_join(bg), 0);
	assert_true(kt_paused(t));
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.mode) == OUTSIDE_GUEST_MODE, false);
	assert_false(pte_present(mm_lookup_pte(t->mm, HVA(0))));
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, &st0), 0);
	assert_true(st0.stlb_flushes > 0);
	assert_int_equal(g_read(t, GPA(0) + 8), 0);
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

static void test_invalidation_flush_wait_broken(void **state)
{
	invalidation_vs_guest_mode(KVM_BREAK_FLUSH_WAIT);
}

/* ==== c) slot delete and move =========================================== */

static void map_pages(struct kt *t, unsigned int n, uint64_t tag)
{
	for (unsigned int i = 0; i < n; i++) {
		host_store(t->mm, HVA(i) + 8, tag + i);
		assert_int_equal(g_read(t, GPA(i) + 8), tag + i);
		assert_true(is_shadow_present(gspte(t, i)));
	}
}

static void expect_mmio_read(struct kt *t, gpa_t gpa)
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

static void expect_mmio_write(struct kt *t, gpa_t gpa, uint64_t val)
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

static void test_slot_delete_unreachable(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct kvm_userspace_memory_region del = { .slot = 0 };

	map_pages(t, 4, 0x100);
	struct kvm_stats k0 = kstats(t);

	assert_int_equal(kvm_set_user_memory_region(t->kvm, &del), 0);
	/* At return: no spte left, and the soft TLB will not be used. */
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	assert_true(kstats(t).sptes_zapped - k0.sptes_zapped >= 4);
	expect_mmio_read(t, GPA(1) + 8);
	expect_mmio_write(t, GPA(2) + 8, 99);
	assert_int_equal(host_load(t->mm, HVA(2) + 8), 0x102);
	assert_int_equal(kstats(t).mmio_exits - k0.mmio_exits, 2);
	assert_int_equal(kvm_memslots(t->kvm)->nr, 0);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

static void test_slot_move(void **state)
{
	struct kt *t = kt_create(0, 0);

	map_pages(t, 4, 0x200);
	kt_add_slot(t, 0, 0, GPA_MOVED, NPAGES * P, HVA_BASE);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	expect_mmio_read(t, GPA(1) + 8);
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(g_read(t, GPA_MOVED + i * P + 8), 0x200 + i);
	g_write(t, GPA_MOVED + 3 * P + 16, 0x77);
	assert_int_equal(host_load(t->mm, HVA(3) + 16), 0x77);
	assert_int_equal(spte_to_pfn(spte_at(t, (GPA_MOVED >> PAGE_SHIFT) + 3)),
			 host_pfn(t, HVA(3)));
	kt_destroy(t);
}

/* A delete waits for a fault that looked the slot up (its RCU section spans
 * lookup to install), then zaps what it installed. */
static void test_slot_delete_vs_paused_fault(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(4) + 8, 0x44);
	kt_arm(t, VCPU_HOOK_AFTER_GUP);
	g_post(t, G_LOAD, GPA(4) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	bg_start(bg, bg_delete_slot0, t, 0);
	assert_false(bg_done(bg, BLOCK_MS / 2));
	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	assert_true(g_wait(t, TIMEOUT_MS));
	uint64_t out = 0;

	assert_int_equal(g_reply(t, &out, NULL), 0);
	assert_true(out == 0x44 || out == MMIO_VAL);
	expect_mmio_read(t, GPA(4) + 8);
	kt_destroy(t);
}

/* A delete does not return while a vCPU is in guest mode: it could be
 * about to use a translation of the slot. */
static void test_slot_delete_waits_for_guest_mode(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct bg *bg = &t->bg;

	map_pages(t, 4, 0x400);
	pause_in_guest(t, 5);
	bg_start(bg, bg_delete_slot0, t, 0);
	assert_false(bg_done(bg, BLOCK_MS));
	assert_true(kt_paused(t));
	assert_int_not_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	expect_mmio_read(t, GPA(0) + 8);
	kt_destroy(t);
}

/* ==== d) release zaps everything ======================================== */

/* After the mm's exit: the guest's access failed with r and ended it; stop
 * and destroy the vCPU and VM; every frame comes back. */
static void finish_after_exit(struct kt *t, int r)
{
	assert_int_equal(vcpu_stop(t->v), r);
	vcpu_destroy(t->v);
	t->v = NULL;
	atomic_store(&t->watch_on, false);
	kvm_destroy_vm(t->kvm);
	t->kvm = NULL;
	assert_int_equal(host_frames_in_use(t->h), 0);
	kt_destroy(t);
}

static void test_release_zaps_everything(void **state)
{
	struct kt *t = kt_create(0, 0);
	uint64_t out = 0;

	map_pages(t, 8, 0x300);
	g_write(t, GPA(2) + 8, 0xdd);                  /* a dirty spte too */
	long ev0 = atomic_load(&t->watch_events);

	/* The VMM's last user goes; the VM keeps only its mmgrab. */
	ht_mmput(t->ht, t->mm);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	/* The exit unmapped the 8 pages, each with its spte already gone. */
	assert_true(atomic_load(&t->watch_events) - ev0 >= 8);
	assert_int_equal(atomic_load(&t->stale), 0);
	assert_int_equal(ht_data_frames(t->h), 0);
	assert_int_equal(host_frames_in_use(t->h), 1);  /* the pgd, until mmdrop */

	/* Accesses fail cleanly, and the guest (outside guest mode) ends. */
	int r = g_load(t, GPA(0) + 8, &out, NULL);

	assert_true(r < 0);
	finish_after_exit(t, r);
}

static int bg_mmput(struct kt *t, uintptr_t unused)
{
	ht_mmput(t->ht, t->mm);
	return 0;
}

/* The same without the invariant check, for a test that holds a thread
 * inside the host (under page_table_lock), which the checker would wait
 * for. */
static int bg_mmput_nocheck(struct kt *t, uintptr_t unused)
{
	ht_forget(t->ht, t->mm);
	mmput(t->mm);
	return 0;
}

static bool kvm_mm_released(struct kt *t)
{
	down_read(&t->kvm->mmu_lock);
	bool released = t->kvm->mm_released;

	up_read(&t->kvm->mmu_lock);
	return released;
}

/*
 * The VMM drops the last reference while a fault is between GUP and
 * mmu_lock. The fault holds a user reference of its own, so the exit waits
 * for it: the fault installs, and its own mmput, the last, runs the exit
 * on the vCPU thread, outside the fault's RCU section. Release zaps
 * everything before a frame is freed, and the vCPU's next attempt finds
 * the mm gone (-ESRCH).
 */
static void test_fault_vs_exit(void **state)
{
	struct kt *t = kt_create(0, 0);
	const unsigned int i = 2;
	uint64_t out = 0;
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(i) + 8, 0x91);
	kt_arm(t, VCPU_HOOK_AFTER_GUP);
	g_post(t, G_LOAD, GPA(i) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	bg_start(bg, bg_mmput, t, 0);
	assert_int_equal(bg_join(bg), 0);               /* not the last user */
	assert_false(kvm_mm_released(t));               /* the fault's reference */
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	int r = g_reply(t, &out, NULL);

	assert_int_equal(r, -ESRCH);
	assert_true(kvm_mm_released(t));
	for (unsigned int j = 0; j < NPAGES; j++)
		assert_false(is_shadow_present(gspte(t, j)));
	assert_int_equal(atomic_load(&t->stale), 0);
	assert_int_equal(ht_data_frames(t->h), 0);
	finish_after_exit(t, r);
}

/*
 * The same, paused inside GUP (at the host PTE change of its fault): GUP's
 * own mmput used to be the last, running the exit on the vCPU thread
 * inside the fault's RCU section, where release's grace period never ends
 * (a BUG). The fault's user reference makes its own put the last, after
 * the section; the vCPU survives and sees the mm gone.
 */
static void test_fault_vs_exit_inside_gup(void **state)
{
	struct kt *t = kt_create(0, 0);
	const unsigned int i = 3;
	uint64_t out = 0;
	struct bg *bg = &t->bg;

	kt_arm_pte_change(t, HVA(i));
	g_post(t, G_STORE, GPA(i) + 8, 0x77);           /* demand-zero fault in GUP */
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	bg_start(bg, bg_mmput_nocheck, t, 0);
	assert_int_equal(bg_join(bg), 0);
	assert_false(kvm_mm_released(t));
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	int r = g_reply(t, &out, NULL);

	assert_int_equal(r, -ESRCH);
	assert_true(kvm_mm_released(t));
	for (unsigned int j = 0; j < NPAGES; j++)
		assert_false(is_shadow_present(gspte(t, j)));
	assert_int_equal(ht_data_frames(t->h), 0);
	finish_after_exit(t, r);
}

/* ==== e) non-blockable invalidation (the OOM reaper) ===================== */

/* A thread that holds one of the VM's locks until told to let go. */
enum held_lock { HOLD_MMU_WRITE, HOLD_MMU_READ, HOLD_MN_INVALIDATE, HOLD_VCPUS,
		 NR_HOLD };

struct holder {
	pthread_t th;
	struct kvm *kvm;
	enum held_lock which;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool held, go;
};

static void *holder_main(void *a)
{
	struct holder *h = a;

	switch (h->which) {
	case HOLD_MMU_WRITE:     down_write(&h->kvm->mmu_lock); break;
	case HOLD_MMU_READ:      down_read(&h->kvm->mmu_lock); break;
	case HOLD_MN_INVALIDATE: mutex_lock(&h->kvm->mn_invalidate_lock); break;
	case HOLD_VCPUS:         mutex_lock(&h->kvm->lock); break;
	case NR_HOLD:            break;
	}
	pthread_mutex_lock(&h->lock);
	h->held = true;
	pthread_cond_broadcast(&h->cond);
	while (!h->go)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	switch (h->which) {
	case HOLD_MMU_WRITE:     up_write(&h->kvm->mmu_lock); break;
	case HOLD_MMU_READ:      up_read(&h->kvm->mmu_lock); break;
	case HOLD_MN_INVALIDATE: mutex_unlock(&h->kvm->mn_invalidate_lock); break;
	case HOLD_VCPUS:         mutex_unlock(&h->kvm->lock); break;
	case NR_HOLD:            break;
	}
	return NULL;
}

static void holder_start(struct holder *h, struct kvm *kvm, enum held_lock which)
{
	memset(h, 0, sizeof(*h));
	sync_init(&h->lock, &h->cond);
	h->kvm = kvm;
	h->which = which;
	assert_int_equal(pthread_create(&h->th, NULL, holder_main, h), 0);
	pthread_mutex_lock(&h->lock);
	bool held = wait_flag(&h->lock, &h->cond, &h->held, TIMEOUT_MS);
	pthread_mutex_unlock(&h->lock);
	assert_true(held);
}

static void holder_stop(struct holder *h)
{
	pthread_mutex_lock(&h->lock);
	h->go = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->th, NULL);
	sync_destroy(&h->lock, &h->cond);
}

/* The reaper's side, on a bg thread (start and end must share a thread):
 * a non-blockable start over [start, end) and, if it succeeded, what kvm
 * looked like inside the range, then end. Static, not on a test's stack:
 * a failed test may leave the bg thread running (kt_abandon). */
static struct nb_call {
	struct mmu_notifier_range r;
	long in_progress;               /* seen between start and end */
	bool zapped[NPAGES];            /* spte absent between start and end */
} nb_call;

static int bg_nonblock_range(struct kt *t, uintptr_t arg)
{
	struct nb_call *c = (struct nb_call *)arg;
	int ret = mmu_notifier_invalidate_range_start_nonblock(&c->r);

	if (ret)
		return ret;
	c->in_progress = kvm_in_progress(t, NULL, NULL);
	for (unsigned int i = 0; i < NPAGES; i++)
		c->zapped[i] = !is_shadow_present(gspte(t, i));
	mmu_notifier_invalidate_range_end(&c->r);
	return 0;
}

static int bg_register_unregister(struct kt *t, uintptr_t arg)
{
	struct mmu_notifier *mn = (struct mmu_notifier *)arg;
	int r = mmu_notifier_register(mn, t->mm);

	return r ? r : mmu_notifier_unregister(mn, t->mm);
}

static long mn_active_count(struct kt *t)
{
	mutex_lock(&t->kvm->mn_invalidate_lock);
	long n = t->kvm->mn_active_invalidate_count;

	mutex_unlock(&t->kvm->mn_invalidate_lock);
	return n;
}

/*
 * With one of kvm's locks held by another thread (mmu_lock for write, as an
 * invalidation or a fault installing an spte; for read, as an aging walk;
 * mn_invalidate_lock; the vCPU array's lock, as a waiting flush), a
 * non-blockable start returns -EAGAIN while the lock is still held, i.e.
 * without waiting for it, and changes nothing: no spte zapped, in_progress,
 * the active count and seq untouched, no invalidation counted. The core
 * owes no end and leaves nothing open: a registration (which takes the
 * range lock for write) and a blockable start/end then go through.
 */
static void test_nonblock_start_eagain(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct bg *bg = &t->bg;
	static struct holder h;         /* not on the stack: see nb_call */
	struct nb_call *c = &nb_call;
	const unsigned int n = 4;

	map_pages(t, n, 0x500);
	for (int which = 0; which < NR_HOLD; which++) {
		spte_t before[4], held[4];
		unsigned long seq0 = kvm_seq(t);
		struct kvm_stats k0 = kstats(t), k1;

		for (unsigned int i = 0; i < n; i++)
			before[i] = gspte(t, i);
		memset(c, 0, sizeof(*c));
		mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA(0), HVA(n));
		holder_start(&h, t->kvm, which);
		bg_start(bg, bg_nonblock_range, t, (uintptr_t)c);
		/* It returns while the lock is still held: it did not wait. */
		bool prompt = bg_done(bg, TIMEOUT_MS);

		for (unsigned int i = 0; i < n; i++)
			held[i] = gspte(t, i);
		holder_stop(&h);
		int ret = bg_join(bg);

		assert_true(prompt);
		assert_int_equal(ret, -EAGAIN);
		assert_int_equal(mmu_notifier_range_blockable(&c->r), false);
		for (unsigned int i = 0; i < n; i++) {
			assert_int_equal(held[i], before[i]);
			assert_int_equal(gspte(t, i), before[i]);
		}
		assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
		assert_int_equal(mn_active_count(t), 0);
		assert_int_equal(kvm_seq(t), seq0);
		k1 = kstats(t);
		assert_int_equal(k1.nonblock_eagain - k0.nonblock_eagain, 1);
		assert_int_equal(k1.invalidations, k0.invalidations);
		assert_int_equal(k1.sptes_zapped, k0.sptes_zapped);
		assert_int_equal(k1.tlb_flushes, k0.tlb_flushes);
		assert_int_equal(k1.nonblock_flush_in_guest, k0.nonblock_flush_in_guest);
	}

	/* Balanced: nothing holds the range lock (register takes it for
	 * write), and a blockable range over the same pages works. */
	static struct recorder extra;           /* not on the stack: see nb_call */

	rec_init(&extra, 2, REC_ALL);
	bg_start(bg, bg_register_unregister, t, (uintptr_t)&extra.mn);
	assert_true(bg_done(bg, TIMEOUT_MS));
	assert_int_equal(bg_join(bg), 0);
	assert_int_equal(rec_calls(&extra, REC_RELEASE), 1);
	rec_destroy(&extra);

	struct mmu_notifier_range r;
	unsigned long seq0 = kvm_seq(t);

	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				t->mm, HVA(0), HVA(n));
	assert_int_equal(mmu_notifier_invalidate_range_start(&r), 0);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 1);
	for (unsigned int i = 0; i < n; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	mmu_notifier_invalidate_range_end(&r);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(kvm_seq(t), seq0 + 1);
	/* And the guest faults the pages back in, undisturbed. */
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(g_read(t, GPA(i) + 8), 0x500 + i);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/* Run a non-blockable start (and its end, if it succeeds) on the bg
 * thread; returns its result, asserting that it came back while the vCPU
 * was still paused in guest mode: it did not wait for it. */
static int nonblock_range_vs_paused(struct kt *t, hva_t start, hva_t end)
{
	struct nb_call *c = &nb_call;
	struct bg *bg = &t->bg;

	memset(c, 0, sizeof(*c));
	mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, start, end);
	bg_start(bg, bg_nonblock_range, t, (uintptr_t)c);
	bool prompt = bg_done(bg, TIMEOUT_MS);

	assert_true(kt_paused(t));
	assert_true(prompt);
	return bg_join(bg);
}

/* Pages 0 and 2 mapped, the vCPU paused in guest mode about to read page
 * 1 through its soft TLB. Returns the vCPU's stats before the pause. */
static struct vcpu_stats map_and_pause_in_guest(struct kt *t)
{
	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* page 0 in the soft TLB */
	assert_int_equal(g_read(t, GPA(2) + 8), 0);     /* page 2: outside the range */
	struct vcpu_stats st = g_stats(t);

	pause_in_guest(t, 1);
	assert_true(is_shadow_present(gspte(t, 0)));
	assert_true(is_shadow_present(gspte(t, 1)));
	return st;
}

/*
 * The OOM reaper's end must not wait for a vCPU any more than its start
 * may. WAIT mode: a non-blockable range is open (it zapped nothing, so its
 * start succeeded), then a vCPU is held in guest mode and a DONTNEED zaps
 * a page it mapped, so that DONTNEED's flush sleeps for the vCPU (holding
 * mmu_lock). The reaper's end must return meanwhile; it used to take
 * mmu_lock and sleep until the vCPU was released.
 */
struct nb_reaper {
	struct kt *t;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mmu_notifier_range r;
	int start_ret;
	bool started, go, ended;
};

static void *nb_reaper_main(void *a)
{
	struct nb_reaper *n = a;

	/* start and end on one thread: it owns the range (mmu_notifier.c). */
	n->start_ret = mmu_notifier_invalidate_range_start_nonblock(&n->r);
	pthread_mutex_lock(&n->lock);
	n->started = true;
	pthread_cond_broadcast(&n->cond);
	wait_flag(&n->lock, &n->cond, &n->go, 10 * TIMEOUT_MS);
	pthread_mutex_unlock(&n->lock);
	if (n->start_ret == 0)
		mmu_notifier_invalidate_range_end(&n->r);
	pthread_mutex_lock(&n->lock);
	n->ended = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

static void test_nonblock_end_does_not_wait_for_vcpu(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct nb_reaper n = { .t = t };
	struct bg *bg = &t->bg;
	bool ended;

	host_store(t->mm, HVA(0) + 8, 7);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);     /* page 0: spte, soft TLB */
	sync_init(&n.lock, &n.cond);
	mmu_notifier_range_init(&n.r, MMU_NOTIFY_RELEASE, 0, t->mm, HVA(5), HVA(6));
	assert_int_equal(pthread_create(&n.th, NULL, nb_reaper_main, &n), 0);
	pthread_mutex_lock(&n.lock);
	assert_true(wait_flag(&n.lock, &n.cond, &n.started, TIMEOUT_MS));
	pthread_mutex_unlock(&n.lock);
	assert_int_equal(n.start_ret, 0);

	pause_in_guest(t, 1);
	bg_start(bg, bg_dontneed, t, HVA(0));
	assert_false(bg_done(bg, BLOCK_MS));            /* its flush waits for the vCPU */

	pthread_mutex_lock(&n.lock);
	n.go = true;
	pthread_cond_broadcast(&n.cond);
	ended = wait_flag(&n.lock, &n.cond, &n.ended, 10 * BLOCK_MS);
	pthread_mutex_unlock(&n.lock);
	bool still_paused = kt_paused(t);

	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	pthread_join(n.th, NULL);
	sync_destroy(&n.lock, &n.cond);
	assert_true(ended);                             /* did not wait for the vCPU */
	assert_true(still_paused);
	assert_true(g_wait(t, TIMEOUT_MS));
	kt_destroy(t);
}

/*
 * WAIT mode, a vCPU held in guest mode, the locks free. A non-blockable
 * start zaps its range and sends the TLB flush, but only a wait could tell
 * when the vCPU stops using what was zapped: it returns -EAGAIN at once
 * (the vCPU still paused, kicked but not out), with nothing in progress,
 * and counts the vCPU. A retry before the vCPU has left guest mode fails
 * the same way, though nothing is left to zap. So does a blockable zapper
 * not skip the flush: a DONTNEED of page 0 waits for the vCPU and leaves
 * the PTE (and frame) alone until then. Once the vCPU has left guest mode,
 * the reaper's retry succeeds.
 */
static void test_nonblock_start_eagain_in_guest(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct vcpu_stats st_pre = map_and_pause_in_guest(t), st0, st1;
	struct bg *bg = &t->bg;
	struct nb_call *c = &nb_call;
	pfn_t f0 = host_pfn(t, HVA(0));
	uint32_t epoch0 = atomic_load(&t->v->kvm_vcpu.exit_epoch);
	unsigned long seq0 = kvm_seq(t);
	struct kvm_stats k0 = kstats(t), k1;

	assert_int_equal(nonblock_range_vs_paused(t, HVA(0), HVA(2)), -EAGAIN);
	assert_int_not_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.exit_epoch), epoch0);
	assert_true(atomic_load(&t->v->kvm_vcpu.requests) & (1UL << KVM_REQ_TLB_FLUSH));
	/* Zapped (harmless: the host changed no PTE), nothing in progress. */
	assert_false(is_shadow_present(gspte(t, 0)));
	assert_false(is_shadow_present(gspte(t, 1)));
	assert_true(is_shadow_present(gspte(t, 2)));
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(mn_active_count(t), 0);
	assert_int_equal(kvm_seq(t), seq0);
	k1 = kstats(t);
	assert_int_equal(k1.nonblock_eagain - k0.nonblock_eagain, 1);
	assert_int_equal(k1.nonblock_flush_in_guest - k0.nonblock_flush_in_guest, 1);
	assert_int_equal(k1.tlb_flushes - k0.tlb_flushes, 1);
	assert_int_equal(k1.invalidations, k0.invalidations);

	/* Retry, the vCPU still in guest mode: nothing to zap, still -EAGAIN
	 * (and no second request). */
	assert_int_equal(nonblock_range_vs_paused(t, HVA(0), HVA(2)), -EAGAIN);
	k1 = kstats(t);
	assert_int_equal(k1.nonblock_eagain - k0.nonblock_eagain, 2);
	assert_int_equal(k1.nonblock_flush_in_guest - k0.nonblock_flush_in_guest, 2);
	assert_int_equal(k1.tlb_flushes - k0.tlb_flushes, 1);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);

	/* A blockable invalidation finds nothing to zap but still waits. */
	bg_start(bg, bg_dontneed, t, HVA(0));
	assert_false(bg_done(bg, BLOCK_MS));
	assert_int_equal(host_pfn(t, HVA(0)), f0);
	assert_true(kt_paused(t));
	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	assert_false(pte_present(mm_lookup_pte(t->mm, HVA(0))));
	assert_true(atomic_load(&t->v->kvm_vcpu.exit_epoch) != epoch0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, &st0), 0);

	/* The reaper's retry now succeeds (in_progress raised in between). */
	memset(c, 0, sizeof(*c));
	mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA(0), HVA(2));
	assert_int_equal(bg_nonblock_range(t, (uintptr_t)c), 0);
	assert_int_equal(c->in_progress, 1);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(mn_active_count(t), 0);

	/* The vCPU flushed its soft TLB: page 0 walks again (and reads the
	 * zero page DONTNEED left behind). */
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_true(st1.stlb_flushes > st_pre.stlb_flushes);
	assert_int_equal(g_read(t, GPA(0) + 8), 0);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * RSEQ mode: the same non-blockable start returns 0 with the vCPU still
 * paused in guest mode -- membarrier, which waits for no vCPU, has made
 * the vCPU's next access check the request -- and counts the vCPU. The
 * vCPU, released, takes the slow path at once and flushes its soft TLB.
 */
static void test_nonblock_start_rseq_in_guest(void **state)
{
	if (!kvm_rseq_available())
		skip(); /* sanitizer builds: the asm path is compiled out */
	struct kt *t = kt_create(0, KT_KICK_RSEQ);
	struct vcpu_stats st_pre = map_and_pause_in_guest(t), st0, st1;
	struct nb_call *c = &nb_call;
	uint32_t epoch0 = atomic_load(&t->v->kvm_vcpu.exit_epoch);
	unsigned long seq0 = kvm_seq(t);
	struct kvm_stats k0 = kstats(t), k1;

	assert_int_equal(nonblock_range_vs_paused(t, HVA(0), HVA(2)), 0);
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.exit_epoch), epoch0);
	assert_int_equal(c->in_progress, 1);
	assert_true(c->zapped[0] && c->zapped[1]);
	assert_false(c->zapped[2]);
	assert_true(is_shadow_present(gspte(t, 2)));
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	assert_int_equal(kvm_seq(t), seq0 + 1);
	assert_int_equal(mn_active_count(t), 0);
	k1 = kstats(t);
	assert_int_equal(k1.invalidations - k0.invalidations, 1);
	assert_int_equal(k1.tlb_flushes - k0.tlb_flushes, 1);
	assert_int_equal(k1.nonblock_flush_in_guest - k0.nonblock_flush_in_guest, 1);
	assert_int_equal(k1.nonblock_eagain, k0.nonblock_eagain);
	assert_false(t->kvm->tlb_flush_pending);

	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, &st0), 0);
	assert_true(st0.stlb_flushes > st_pre.stlb_flushes);
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_int_equal(g_read(t, GPA(0) + 8), 7);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/* As the reaper should find it: the vCPU stopped first. The start zaps
 * everything, flushes, and finds nobody in guest mode. */
static void test_nonblock_start_vcpus_stopped(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct nb_call *c = &nb_call;

	map_pages(t, NPAGES, 0x600);
	assert_int_equal(vcpu_stop(t->v), -EINTR);
	assert_int_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	struct kvm_stats k0 = kstats(t), k1;

	memset(c, 0, sizeof(*c));
	mmu_notifier_range_init(&c->r, MMU_NOTIFY_UNMAP, 0, t->mm, HVA_BASE,
				HVA_BASE + NPAGES * P);
	assert_int_equal(bg_nonblock_range(t, (uintptr_t)c), 0);
	assert_int_equal(c->in_progress, 1);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_true(c->zapped[i]);
	k1 = kstats(t);
	assert_int_equal(k1.sptes_zapped - k0.sptes_zapped, NPAGES);
	assert_int_equal(k1.tlb_flushes - k0.tlb_flushes, 1);
	assert_int_equal(k1.nonblock_flush_in_guest, k0.nonblock_flush_in_guest);
	assert_int_equal(kvm_in_progress(t, NULL, NULL), 0);
	kt_destroy(t);
}

/* ==== unit tests ======================================================== */

static void expect_region(struct kvm *kvm, int err, uint32_t slot, uint32_t flags,
			  gpa_t gpa, uint64_t size, hva_t hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = hva,
	};

	assert_int_equal(kvm_set_user_memory_region(kvm, &r), err);
}

static void test_memslot_bad_input(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct kvm *kvm = t->kvm;
	const uint64_t sz = NPAGES * P;
	struct kvm_userspace_memory_region r = { .slot = 1, .memory_size = P,
						 .userspace_addr = HVA_BASE };
	uint64_t gen = kvm_memslots(kvm)->generation;

	assert_int_equal(kvm_set_user_memory_region(NULL, &r), -EINVAL);
	assert_int_equal(kvm_set_user_memory_region(kvm, NULL), -EINVAL);
	/* Slot id, flags (the internal INVALID flag included). */
	expect_region(kvm, -EINVAL, KVM_MAX_MEMSLOTS, 0, GPA_MOVED, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 1u << 5, GPA_MOVED, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, KVM_MEMSLOT_INVALID, GPA_MOVED, P, HVA_BASE);
	/* Alignment. */
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED + 8, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED, P + 8, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED, P, HVA_BASE + 8);
	/* Range overflow: past the GPA space, wrapping, past the host's. */
	expect_region(kvm, -EINVAL, 1, 0, TDP_MAX_GFN << PAGE_SHIFT, 2 * P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, (TDP_MAX_GFN + 1) << PAGE_SHIFT, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, ~(uint64_t)0 & PAGE_MASK, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, P, (uint64_t)0 - P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED, 2 * P, TASK_SIZE - P);
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED, P, TASK_SIZE);
	/* Overlap with slot 0 [GPA_BASE, +16 pages), from either side. */
	expect_region(kvm, -EEXIST, 1, 0, GPA_BASE + 8 * P, sz, HVA_BASE);
	expect_region(kvm, -EEXIST, 1, 0, GPA_BASE - P, 2 * P, HVA_BASE);
	expect_region(kvm, -EEXIST, 1, 0, GPA_BASE - P, sz + 2 * P, HVA_BASE);
	/* Deleting what does not exist. */
	expect_region(kvm, -EINVAL, 7, 0, 0, 0, 0);
	/* Changing an existing slot: size, backing, READONLY. */
	expect_region(kvm, -EINVAL, 0, 0, GPA_BASE, sz - P, HVA_BASE);
	expect_region(kvm, -EINVAL, 0, 0, GPA_BASE, sz, HVA_BASE + P);
	expect_region(kvm, -EINVAL, 0, KVM_MEM_READONLY, GPA_BASE, sz, HVA_BASE);
	/* Moving slot 0 onto another slot's range. */
	expect_region(kvm, 0, 1, 0, GPA_MOVED, P, HVA_BASE);
	expect_region(kvm, -EEXIST, 0, 0, GPA_MOVED - P, sz, HVA_BASE);

	/* None of the failures published anything. */
	struct kvm_memslots *slots = kvm_memslots(kvm);

	assert_int_equal(slots->generation, gen + 1);
	assert_int_equal(slots->nr, 2);
	assert_int_equal(slots->slots[0].base_gfn, GFN_BASE);
	assert_int_equal(slots->slots[0].npages, NPAGES);
	assert_int_equal(slots->slots[0].userspace_addr, HVA_BASE);
	assert_int_equal(slots->slots[0].flags, 0);

	/* Adjacent is fine; a gpa at the top of the space is fine. */
	expect_region(kvm, 0, 2, 0, GPA_BASE + sz, P, HVA_BASE);
	expect_region(kvm, 0, 3, KVM_MEM_READONLY, TDP_MAX_GFN << PAGE_SHIFT, P, HVA_BASE);
	expect_region(kvm, 0, 3, 0, 0, 0, 0);
	expect_region(kvm, -EINVAL, 3, 0, 0, 0, 0);
	slots = kvm_memslots(kvm);
	assert_int_equal(slots->nr, 3);
	for (unsigned int i = 1; i < slots->nr; i++)
		assert_true(slots->slots[i - 1].base_gfn < slots->slots[i].base_gfn);
	kt_destroy(t);
}

/*
 * Dirty logging does not exist yet, so KVM_MEM_LOG_DIRTY_PAGES is refused,
 * on a new slot and on an existing one. It used to be accepted: the slot's
 * sptes were installed read-only, the fast path refused to make them
 * writable, the fault reported "fixed", and a guest write looped forever.
 * After the refusals the slot is as it was, and a guest write completes.
 */
static void test_log_dirty_refused(void **state)
{
	struct kt *t = kt_create(0, 0);
	uint64_t gen = kvm_memslots(t->kvm)->generation;

	expect_region(t->kvm, -EINVAL, 0, KVM_MEM_LOG_DIRTY_PAGES, GPA_BASE, NPAGES * P,
		      HVA_BASE);
	expect_region(t->kvm, -EINVAL, 1, KVM_MEM_LOG_DIRTY_PAGES, GPA_MOVED, P, HVA_BASE);
	assert_int_equal(kvm_memslots(t->kvm)->generation, gen);
	assert_int_equal(kvm_memslots(t->kvm)->slots[0].flags, 0);
	g_post(t, G_STORE, GPA(3), 0x5eed);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	assert_int_equal(host_load(t->mm, HVA(3)), 0x5eed);
	kt_destroy(t);
}

/*
 * A present spte replaced by one for another frame means an invalidation
 * was missed: tdp_mmu_set_spte BUGs, unless a break that can cause it (seq,
 * zap) is on, when the fault drops the stale spte and lets the checker
 * report the damage. Any other break -- aging here -- must keep the BUG.
 * Staged in a child process: a host whose DONTNEED skips its notifier
 * (HOST_BREAK_DONTNEED_NOTIFY) leaves the spte of page 0 pointing at the
 * freed frame, and a direct fault on page 0 then finds it. Returns the
 * child's wait status.
 */
static int stale_spte_child(unsigned int kvm_breaks)
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct host_config hc = { .ram_bytes = HT_RAM,
					  .breaks = HOST_BREAK_DONTNEED_NOTIFY };
		struct kvm_config kc = { .breaks = kvm_breaks, .kick = KVM_KICK_WAIT };
		struct host *h;
		struct vmm *vmm;
		struct vcpu *v;
		uint64_t val = 1;
		pfn_t old;

		if (host_create(&hc, &h) || vmm_create(h, &kc, &vmm) ||
		    vmm_add_ram(vmm, 0, 0, NPAGES * P, 0) || vmm_create_vcpu(vmm, 0, &v) ||
		    vmm_write_guest(vmm, 0, &val, sizeof(val)))
			_exit(10);
		struct kvm *kvm = vmm_kvm(vmm);
		hva_t hva = vmm_ram_hva(vmm, 0);

		if (kvm_mmu_page_fault(&v->kvm_vcpu, 0, true) != RET_PF_FIXED)
			_exit(11);
		old = spte_to_pfn(atomic_load(kvm_tdp_mmu_leaf(kvm, 0)));
		if (mm_madvise(vmm_mm(vmm), hva, P, MADV_DONTNEED))
			_exit(12);
		if (!is_shadow_present(atomic_load(kvm_tdp_mmu_leaf(kvm, 0))))
			_exit(13);      /* the notifier ran after all */
		/* Let page 1 take the freed frame, so page 0 gets another. */
		if (vmm_write_guest(vmm, P, &val, sizeof(val)))
			_exit(16);
		if (kvm_mmu_page_fault(&v->kvm_vcpu, 0, true) != RET_PF_FIXED)
			_exit(14);
		_exit(spte_to_pfn(atomic_load(kvm_tdp_mmu_leaf(kvm, 0))) != old ? 0 : 15);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_stale_spte_bug_only_under_its_breaks(void **state)
{
	int st;

	st = stale_spte_child(KVM_BREAK_SEQ_CHECK);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);           /* allowed: new frame mapped */
	st = stale_spte_child(KVM_BREAK_RANGE_ZAP);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = stale_spte_child(KVM_BREAK_AGING);
	assert_true(WIFSIGNALED(st));                   /* BUG: abort */
	assert_int_equal(WTERMSIG(st), SIGABRT);
	st = stale_spte_child(0);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
}

/*
 * Reclaim's looks at a page only a guest uses. The page is made old (host
 * and secondary young bits cleared, inactive: MADV_COLD) so that reclaim's
 * first look finds it unreferenced; then a probe subscriber makes the guest
 * read it at a chosen moment after that look -- through a walk (the probe
 * flushes the vCPU's soft TLB first), which sets the spte's accessed bit.
 * Either way reclaim must keep the page: the guest used it. A second page,
 * cold and only the host's, is what reclaim takes instead (one pass: one
 * look at each page, then the unmap).
 *
 *   during the first look (the probe's clear_flush_young, after kvm's):
 *     the second look (test_young, before any invalidation) sees it and
 *     keeps the page without a zap: the spte stays;
 *   during the unmap's invalidation (the probe's start, before kvm's): the
 *     zap passes the accessed bit to the page (mark_page_accessed), and
 *     the unmap keeps the page (resident, activated; the spte is gone).
 *
 * The probe is a recorder (tests/harness/recorder.h) whose trigger runs
 * guest_reads() once, at the chosen callback over the page.
 */
enum { PROBE_IN_AGING, PROBE_IN_START };

struct guest_read {
	struct kt *t;
	gpa_t gpa;
};

static void guest_reads(struct recorder *r, const struct rec_entry *call, void *arg)
{
	struct guest_read *gr = arg;

	kvm_make_all_cpus_request(gr->t->kvm, KVM_REQ_TLB_FLUSH, true);
	(void)g_read(gr->t, gr->gpa);
}

/* The subscriber list is walked newest first: a probe registered before
 * the VM runs after kvm's callbacks, one registered after it before. */
static void reclaim_vs_guest_use(int at)
{
	struct kt *t = kt_create(0, KT_SWAP | KT_NO_VCPU);
	const unsigned int i = 4, cold = 5;
	struct guest_read gr = { .t = t, .gpa = GPA(i) + 8 };
	struct recorder probe;

	rec_init(&probe, 1, REC_RANGE | REC_F(REC_CLEAR_FLUSH_YOUNG) | REC_F(REC_RELEASE));

	/* kt_create registered the VM; re-create it so the probe can go
	 * first when it must run after kvm. */
	atomic_store(&t->watch_on, false);
	kvm_destroy_vm(t->kvm);
	if (at == PROBE_IN_AGING)
		assert_int_equal(mmu_notifier_register(&probe.mn, t->mm), 0);
	struct kvm_config cfg = { .kick = KVM_KICK_AUTO };

	assert_int_equal(kvm_create_vm(t->mm, &cfg, &t->kvm), 0);
	kt_add_slot(t, 0, 0, GPA_BASE, NPAGES * P, HVA_BASE);
	if (at == PROBE_IN_START)
		assert_int_equal(mmu_notifier_register(&probe.mn, t->mm), 0);
	atomic_store(&t->watch_on, true);
	assert_int_equal(vcpu_create(t->kvm, 0, &t->v), 0);
	vcpu_set_mmio(t->v, guest_mmio, &t->g);
	kvm_vcpu_set_hook(&t->v->kvm_vcpu, pause_hook, &t->p);
	kt_vcpu_start(t);

	g_write(t, GPA(i) + 8, 0xacce55ed);            /* the guest's page */
	host_store(t->mm, HVA(cold) + 8, 0xc01d);       /* the host's */
	assert_int_equal(mm_madvise(t->mm, HVA(i), 2 * P, MADV_COLD), 0);
	assert_false(gspte(t, i) & SPTE_ACCESSED);
	uint64_t steal = ht_event(t->h, PGSTEAL), act = ht_event(t->h, PGACTIVATE);
	unsigned long zapped = kstats(t).sptes_zapped;

	rec_arm(&probe, &(struct rec_trigger){
		.kinds = at == PROBE_IN_AGING ? REC_F(REC_CLEAR_FLUSH_YOUNG) : REC_F(REC_START),
		.events = at == PROBE_IN_AGING ? 0 : REC_EV(MMU_NOTIFY_CLEAR),
		.start = HVA(i), .end = HVA(i) + P, .action = guest_reads, .arg = &gr });
	host_reclaim(t->h, 1);
	assert_int_equal(rec_fired(&probe), 1);
	assert_true(pte_present(mm_lookup_pte(t->mm, HVA(i))));     /* kept */
	assert_false(pte_present(mm_lookup_pte(t->mm, HVA(cold))));  /* taken */
	assert_int_equal(ht_event(t->h, PGSTEAL), steal + 1);
	assert_int_equal(ht_event(t->h, PGACTIVATE), act + 1);
	if (at == PROBE_IN_AGING) {
		/* The second look kept it before any invalidation. */
		assert_true(is_shadow_present(gspte(t, i)));
		assert_int_equal(kstats(t).sptes_zapped, zapped);
	} else {
		assert_false(is_shadow_present(gspte(t, i)));
	}
	assert_int_equal(host_load(t->mm, HVA(cold) + 8), 0xc01d);  /* swapped in */
	assert_int_equal(g_read(t, GPA(i) + 8), 0xacce55ed);
	assert_int_equal(atomic_load(&t->stale), 0);
	vcpu_stop(t->v);
	vcpu_destroy(t->v);
	t->v = NULL;
	assert_int_equal(mmu_notifier_unregister(&probe.mn, t->mm), 0);
	rec_destroy(&probe);
	kt_destroy(t);
}

static void test_reclaim_second_look_test_young(void **state)
{
	reclaim_vs_guest_use(PROBE_IN_AGING);
}

static void test_reclaim_zap_carries_young(void **state)
{
	reclaim_vs_guest_use(PROBE_IN_START);
}

static void test_create_bad_input(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct kvm *kvm = NULL;
	struct vcpu *v = NULL, *v2 = NULL;
	struct kvm_config bad = { .breaks = 1u << 7 };

	assert_int_equal(kvm_create_vm(NULL, NULL, &kvm), -EINVAL);
	assert_int_equal(kvm_create_vm(t->mm, NULL, NULL), -EINVAL);
	assert_int_equal(kvm_create_vm(t->mm, &bad, &kvm), -EINVAL);
	assert_null(kvm);

	assert_int_equal(vcpu_create(NULL, 0, &v), -EINVAL);
	assert_int_equal(vcpu_create(t->kvm, 0, NULL), -EINVAL);
	assert_int_equal(vcpu_create(t->kvm, -1, &v), -EINVAL);
	assert_int_equal(vcpu_create(t->kvm, KVM_MAX_VCPUS, &v), -EINVAL);
	assert_int_equal(vcpu_create(t->kvm, 5, &v), 0);
	assert_int_equal(vcpu_create(t->kvm, 5, &v2), -EEXIST);
	assert_null(v2);
	assert_int_equal(vcpu_create(t->kvm, KVM_MAX_VCPUS - 1, &v2), 0);
	assert_int_equal(atomic_load(&t->kvm->nr_vcpus), 2);

	assert_int_equal(vcpu_run(NULL, guest_main, NULL), -EINVAL);
	assert_int_equal(vcpu_run(v, NULL, NULL), -EINVAL);
	assert_int_equal(vcpu_stop(v), -EINVAL);      /* not running */
	vcpu_destroy(v2);
	vcpu_destroy(v);
	assert_int_equal(atomic_load(&t->kvm->nr_vcpus), 0);
	kt_destroy(t);
}

static void test_read_only_slot(void **state)
{
	struct kt *t = kt_create(0, 0);
	const gfn_t ro_gfn = GPA_RO >> PAGE_SHIFT;

	ht_mmap(t->mm, HVA_RO, RO_PAGES * P, HT_RW, HT_FIXED);
	host_store(t->mm, HVA_RO + 8, 0x5150);
	kt_add_slot(t, 1, KVM_MEM_READONLY, GPA_RO, RO_PAGES * P, HVA_RO);

	assert_int_equal(g_read(t, GPA_RO + 8), 0x5150);
	spte_t s = spte_at(t, ro_gfn);

	assert_true(is_shadow_present(s));
	assert_false(s & (SPTE_WRITABLE | SPTE_MMU_WRITABLE));
	assert_int_equal(spte_to_pfn(s), host_pfn(t, HVA_RO));

	/* A write exits with the exact gpa and value; memory stays. */
	struct kvm_stats k0 = kstats(t);

	expect_mmio_write(t, GPA_RO + 8, 0xbad);
	expect_mmio_write(t, GPA_RO + 2 * P + 24, 0xbad2);     /* no spte yet */
	assert_int_equal(host_load(t->mm, HVA_RO + 8), 0x5150);
	assert_int_equal(host_load(t->mm, HVA_RO + 2 * P + 24), 0);
	assert_int_equal(kstats(t).mmio_exits - k0.mmio_exits, 2);
	assert_false(spte_at(t, ro_gfn) & SPTE_WRITABLE);

	/* The lockless walk does not make it writable either. */
	bool fast;

	assert_null(kvm_tdp_translate(t->kvm, ro_gfn, true, &fast));
	assert_false(fast);
	assert_int_equal(g_read(t, GPA_RO + 8), 0x5150);
	kt_destroy(t);
}

/*
 * A read fault on a writable, exclusive host page maps it writable (clean),
 * and keeps no reference; on an unpopulated page it maps the zero page
 * read-only, and a write then faults a fresh frame in.
 */
static void test_fault_writable_and_no_pin(void **state)
{
	struct kt *t = kt_create(0, 0);

	host_store(t->mm, HVA(0) + 8, 0x11);
	struct page *page = pfn_to_page(t->h, host_pfn(t, HVA(0)));

	assert_int_equal(page_count(page), 1);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x11);
	spte_t s = gspte(t, 0);

	/* A read maps the clean page read-only, write-protected for the
	 * fast path (spte.h invariant 1). */
	assert_true(is_shadow_present(s));
	assert_int_equal(s & (SPTE_WRITABLE | SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE |
			      SPTE_ACCESSED | SPTE_DIRTY),
			 SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE | SPTE_ACCESSED);
	assert_int_equal(spte_to_pfn(s), page_to_pfn(page));
	assert_int_equal(page_count(page), 1);      /* the GUP reference is gone */
	assert_int_equal(page_mapcount(page), 1);

	/* Its first write: the lockless fast path makes it writable and
	 * dirty, without a slow fault (no GUP, no mmu_lock). */
	struct vcpu_stats sa = g_stats(t), sb;

	assert_int_equal(g_store(t, GPA(0) + 16, 0x12, &sb), 0);
	assert_int_equal(sb.fast_faults, sa.fast_faults + 1);
	assert_int_equal(sb.faults, sa.faults);
	s = gspte(t, 0);
	assert_int_equal(s & (SPTE_WRITABLE | SPTE_DIRTY), SPTE_WRITABLE | SPTE_DIRTY);
	assert_int_equal(spte_to_pfn(s), page_to_pfn(page));
	assert_int_equal(host_load(t->mm, HVA(0) + 16), 0x12);

	/* The zero page: read-only, not host-writable. */
	assert_int_equal(g_read(t, GPA(1) + 8), 0);
	s = gspte(t, 1);
	assert_true(is_shadow_present(s));
	assert_false(s & (SPTE_WRITABLE | SPTE_HOST_WRITABLE));
	assert_true(is_zero_pfn(t->h, spte_to_pfn(s)));

	/* A write: slow path, fresh frame, writable and dirty, unpinned. */
	struct vcpu_stats st0 = g_stats(t), st1;

	assert_int_equal(g_store(t, GPA(1) + 8, 0x22, &st1), 0);
	assert_int_equal(st1.fast_faults, st0.fast_faults);
	assert_true(st1.faults > st0.faults);
	s = gspte(t, 1);
	page = pfn_to_page(t->h, host_pfn(t, HVA(1)));
	assert_int_equal(spte_to_pfn(s), page_to_pfn(page));
	assert_true((s & (SPTE_WRITABLE | SPTE_DIRTY)) == (SPTE_WRITABLE | SPTE_DIRTY));
	assert_int_equal(page_count(page), 1);
	assert_int_equal(host_load(t->mm, HVA(1) + 8), 0x22);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * COW: after fork the parent's page is shared; a read fault maps it
 * read-only and not host-writable, the fast path refuses a write, and the
 * slow path breaks COW, leaving the child's copy alone.
 */
static void test_fault_cow_shared(void **state)
{
	struct kt *t = kt_create(0, 0);

	host_store(t->mm, HVA(0) + 8, 0x31);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x31);
	assert_true(spte_can_unsync_write(gspte(t, 0)));        /* before the fork */

	struct mm *child = ht_fork(t->ht, t->mm);
	pfn_t shared = host_pfn(t, HVA(0));

	assert_int_equal(host_pfn(t, HVA(0)), pte_pfn(mm_lookup_pte(child, HVA(0))));
	assert_false(is_shadow_present(gspte(t, 0)));  /* fork's invalidation */

	assert_int_equal(g_read(t, GPA(0) + 8), 0x31);
	spte_t s = gspte(t, 0);

	assert_true(is_shadow_present(s));
	assert_int_equal(spte_to_pfn(s), shared);
	assert_false(s & (SPTE_WRITABLE | SPTE_HOST_WRITABLE));
	assert_true(s & SPTE_MMU_WRITABLE);
	bool fast;

	assert_null(kvm_tdp_translate(t->kvm, GFN_BASE, true, &fast));
	assert_false(fast);
	assert_int_equal(gspte(t, 0), s);

	uint64_t brk = ht_event(t->h, COW_BREAK);
	struct vcpu_stats st0 = g_stats(t), st1;

	assert_int_equal(g_store(t, GPA(0) + 8, 0x32, &st1), 0);
	assert_int_equal(st1.fast_faults, st0.fast_faults);
	assert_int_equal(ht_event(t->h, COW_BREAK), brk + 1);
	s = gspte(t, 0);
	assert_int_not_equal(spte_to_pfn(s), shared);
	assert_int_equal(spte_to_pfn(s), host_pfn(t, HVA(0)));
	assert_true(s & SPTE_WRITABLE);
	assert_int_equal(host_load(t->mm, HVA(0) + 8), 0x32);
	assert_int_equal(host_load(child, HVA(0) + 8), 0x31);
	assert_int_equal(pte_pfn(mm_lookup_pte(child, HVA(0))), shared);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

/*
 * The fast path: a present read-only spte that was host-writable at install
 * in a writable slot becomes writable without the slow path; without
 * HOST_WRITABLE or MMU_WRITABLE it stays read-only.
 */
static void test_fast_path(void **state)
{
	struct kt *t = kt_create(0, 0);
	const gfn_t gfn = GFN_BASE;
	bool fast;

	host_store(t->mm, HVA(0) + 8, 0x41);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x41);
	spte_t s = gspte(t, 0);
	spte_t ro = s & ~(SPTE_WRITABLE | SPTE_DIRTY);

	/* Refused without either permission bit; nothing changes. */
	spte_rewrite(t, gfn, ro & ~SPTE_HOST_WRITABLE);
	assert_null(kvm_tdp_translate(t->kvm, gfn, true, &fast));
	assert_int_equal(gspte(t, 0), ro & ~SPTE_HOST_WRITABLE);
	spte_rewrite(t, gfn, ro & ~SPTE_MMU_WRITABLE);
	assert_null(kvm_tdp_translate(t->kvm, gfn, true, &fast));
	assert_int_equal(gspte(t, 0), ro & ~SPTE_MMU_WRITABLE);

	/* Allowed with both: the guest's write takes the fast path. */
	spte_rewrite(t, gfn, ro);
	struct vcpu_stats st0 = g_stats(t), st1;
	struct kvm_stats k0 = kstats(t), k1;

	assert_int_equal(g_store(t, GPA(0) + 8, 0x42, &st1), 0);
	k1 = kstats(t);
	assert_int_equal(st1.fast_faults - st0.fast_faults, 1);
	assert_int_equal(st1.faults, st0.faults);
	assert_int_equal(k1.faults, k0.faults);
	assert_int_equal(k1.fast_faults - k0.fast_faults, 1);
	s = gspte(t, 0);
	assert_int_equal(s & (SPTE_WRITABLE | SPTE_DIRTY), SPTE_WRITABLE | SPTE_DIRTY);
	assert_int_equal(host_load(t->mm, HVA(0) + 8), 0x42);
	kt_destroy(t);
}

/*
 * Aging: young means touched (walked) since the last clear. clear_flush_young
 * flushes the soft TLBs so the next access walks and is seen; clear_young
 * does not, so an access that hits the soft TLB stays unseen (approximate,
 * as in KVM).
 */
static void test_aging(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct vcpu_stats st0, st1;

	host_store(t->mm, HVA(0) + 8, 1);
	host_store(t->mm, HVA(1) + 8, 2);
	assert_int_equal(g_read(t, GPA(0) + 8), 1);
	assert_int_equal(g_read(t, GPA(1) + 8), 2);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(2)), 0);   /* unmapped */

	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA(0), HVA(2)), 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 0);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), 0);
	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA(0), HVA(2)), 0);

	/* Touch page 0 only: flushed, so the access walks and marks it. */
	st0 = g_stats(t);
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), 0);
	assert_int_equal(mmu_notifier_clear_young(t->mm, HVA(1), HVA(2)), 0);
	assert_true(is_shadow_present(gspte(t, 1)));    /* old is not gone */

	/* clear_young: no flush, the next access hits the soft TLB. */
	assert_int_equal(mmu_notifier_clear_young(t->mm, HVA(0), HVA(1)), 1);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 0);
	st0 = st1;
	assert_int_equal(g_load(t, GPA(0) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow, st0.accesses_slow);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), 0);

	/* Writes mark it too, through the walk. */
	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA(1), HVA(2)), 0);
	g_write(t, GPA(1) + 16, 3);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), 1);
	assert_true(kstats(t).age_calls > 0);
	kt_destroy(t);
}

/*
 * --break=aging: the guest touched pages 0 and 1 (their sptes are marked
 * accessed), yet test_young, clear_young and clear_flush_young report them
 * old; intact, they report them young. Broken or not, the handlers still
 * clear the bits and clear_flush_young still flushes: only the answer
 * differs.
 */
static void aging_vs_break(unsigned int breaks)
{
	const int young = !(breaks & KVM_BREAK_AGING);
	struct kt *t = kt_create(breaks, 0);
	struct vcpu_stats st0, st1;
	struct kvm_stats k0 = kstats(t);

	host_store(t->mm, HVA(0) + 8, 1);
	host_store(t->mm, HVA(1) + 8, 2);
	assert_int_equal(g_read(t, GPA(0) + 8), 1);
	assert_int_equal(g_read(t, GPA(1) + 8), 2);
	assert_true(gspte(t, 0) & SPTE_ACCESSED);
	assert_true(gspte(t, 1) & SPTE_ACCESSED);

	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(0)), young);
	assert_true(gspte(t, 0) & SPTE_ACCESSED);       /* test changes nothing */
	assert_int_equal(mmu_notifier_clear_young(t->mm, HVA(0), HVA(1)), young);
	assert_false(gspte(t, 0) & SPTE_ACCESSED);
	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA(1), HVA(2)), young);
	assert_false(gspte(t, 1) & SPTE_ACCESSED);
	assert_true(is_shadow_present(gspte(t, 1)));

	/* The flush happened: touching page 1 walks and marks it again. */
	st0 = g_stats(t);
	assert_int_equal(g_load(t, GPA(1) + 8, NULL, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_true(gspte(t, 1) & SPTE_ACCESSED);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), young);
	assert_int_equal(mmu_notifier_clear_flush_young(t->mm, HVA_BASE,
							HVA_BASE + NPAGES * P), young);
	assert_int_equal(mmu_notifier_test_young(t->mm, HVA(1)), 0);
	assert_int_equal(kstats(t).age_calls - k0.age_calls, 6);
	kt_destroy(t);
}

static void test_aging_reports_young(void **state)
{
	aging_vs_break(0);
}

static void test_aging_broken_reports_nothing(void **state)
{
	aging_vs_break(KVM_BREAK_AGING);
}

/*
 * change_pte on a present spte (outside start/end: the handler itself). A
 * new frame zaps; the same frame read-only drops write permission, host's
 * included, so the fast path cannot restore it; a read-only slot stays
 * write-protected whatever the PTE says.
 */
static void test_change_pte(void **state)
{
	struct kt *t = kt_create(0, 0);
	const pte_t rw = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER;
	const pte_t ro = _PAGE_PRESENT | _PAGE_USER;
	struct vcpu_stats st0, st1;
	bool fast;

	host_store(t->mm, HVA(0) + 8, 0x61);
	host_store(t->mm, HVA(1) + 8, 0x62);
	pfn_t f0 = host_pfn(t, HVA(0)), f1 = host_pfn(t, HVA(1));

	/* Same frame, read-only: write permission goes, and the soft TLB
	 * entry caching it too. */
	g_write(t, GPA(0) + 8, 0x63);
	st0 = g_stats(t);
	mmu_notifier_change_pte(t->mm, HVA(0), pfn_pte(f0, ro));
	spte_t s = gspte(t, 0);

	assert_true(is_shadow_present(s));
	assert_int_equal(spte_to_pfn(s), f0);
	assert_false(s & (SPTE_WRITABLE | SPTE_HOST_WRITABLE));
	assert_null(kvm_tdp_translate(t->kvm, GFN_BASE, true, &fast));
	assert_int_equal(g_store(t, GPA(0) + 8, 0x64, &st1), 0);
	assert_int_equal(st1.accesses_slow - st0.accesses_slow, 1);
	assert_int_equal(st1.fast_faults, st0.fast_faults);
	assert_int_equal(host_load(t->mm, HVA(0) + 8), 0x64);

	/* A clean read-only spte that the fast path could make writable:
	 * a read-only PTE must take that right away too. */
	spte_rewrite(t, GFN_BASE, gspte(t, 0) & ~(SPTE_WRITABLE | SPTE_DIRTY));
	mmu_notifier_change_pte(t->mm, HVA(0), pfn_pte(f0, ro));
	s = gspte(t, 0);
	assert_true(is_shadow_present(s));
	assert_false(s & SPTE_HOST_WRITABLE);
	assert_null(kvm_tdp_translate(t->kvm, GFN_BASE, true, &fast));

	/* Another frame: zapped; the next access maps the host's own. */
	mmu_notifier_change_pte(t->mm, HVA(0), pfn_pte(f1, rw));
	assert_false(is_shadow_present(gspte(t, 0)));
	assert_int_equal(g_read(t, GPA(0) + 8), 0x64);
	assert_int_equal(spte_to_pfn(gspte(t, 0)), f0);

	/* Not present: zapped. */
	mmu_notifier_change_pte(t->mm, HVA(0), 0);
	assert_false(is_shadow_present(gspte(t, 0)));

	/* Same frame, writable PTE: a writable spte is left alone. */
	assert_int_equal(g_read(t, GPA(1) + 8), 0x62);
	s = gspte(t, 1);
	mmu_notifier_change_pte(t->mm, HVA(1), pfn_pte(f1, rw));
	assert_int_equal(gspte(t, 1), s);

	/* Read-only slot: a writable PTE does not make the spte writable. */
	ht_mmap(t->mm, HVA_RO, RO_PAGES * P, HT_RW, HT_FIXED);
	host_store(t->mm, HVA_RO, 0x65);
	kt_add_slot(t, 1, KVM_MEM_READONLY, GPA_RO, RO_PAGES * P, HVA_RO);
	assert_int_equal(g_read(t, GPA_RO), 0x65);
	mmu_notifier_change_pte(t->mm, HVA_RO, pfn_pte(host_pfn(t, HVA_RO), rw));
	s = spte_at(t, GPA_RO >> PAGE_SHIFT);
	assert_true(is_shadow_present(s));
	assert_false(s & SPTE_WRITABLE);
	assert_null(kvm_tdp_translate(t->kvm, GPA_RO >> PAGE_SHIFT, true, &fast));
	expect_mmio_write(t, GPA_RO, 0x66);
	assert_int_equal(host_load(t->mm, HVA_RO), 0x65);
	kt_destroy(t);
}

/* Unaligned accesses fail and leave the vCPU in guest mode; MMIO reads of
 * unbacked gpas go to the handler, or read ~0 without one. */
static void test_unaligned_and_mmio(void **state)
{
	struct kt *t = kt_create(0, 0);
	uint64_t out = 0;
	struct kvm_stats k0 = kstats(t);
	struct vcpu_stats st0 = g_stats(t), st1;

	host_store(t->mm, HVA(0) + 8, 0x71);
	assert_int_equal(g_load(t, GPA(0) + 4, &out, NULL), -EINVAL);
	assert_int_equal(g_store(t, GPA(0) + 12, 1, NULL), -EINVAL);
	assert_int_equal(g_load(t, GPA_MMIO + 1, &out, NULL), -EINVAL);
	assert_int_equal(host_load(t->mm, HVA(0) + 8), 0x71);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x71);      /* still running */

	expect_mmio_read(t, GPA_MMIO + 16);
	expect_mmio_write(t, GPA_MMIO + 24, 0x72);
	/* Beyond the GPA tables, at an address whose low 36 bits of gfn are
	 * those of a mapped page: MMIO, not an alias of that page. */
	expect_mmio_read(t, ((TDP_MAX_GFN + 1) << PAGE_SHIFT) + GPA(0) + 8);
	g_reply(t, NULL, &st1);
	assert_int_equal(st1.mmio_exits - st0.mmio_exits, 3);
	assert_int_equal(kstats(t).mmio_exits - k0.mmio_exits, 3);

	/* No handler: reads see all ones, writes vanish. */
	assert_int_equal(vcpu_stop(t->v), -EINTR);
	vcpu_set_mmio(t->v, NULL, NULL);
	kt_vcpu_start(t);
	assert_int_equal(g_load(t, GPA_MMIO, &out, NULL), 0);
	assert_int_equal(out, ~(uint64_t)0);
	assert_int_equal(g_store(t, GPA_MMIO, 5, NULL), 0);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x71);
	kt_destroy(t);
}

/* A slot over an hva the VMM never mapped: the access fails with -EFAULT
 * and the guest stops; the VM is otherwise unharmed. */
static void test_slot_over_unmapped_hva(void **state)
{
	struct kt *t = kt_create(0, 0);
	uint64_t out = 0;

	kt_add_slot(t, 2, 0, GPA_HOLE, P, HVA_HOLE);
	assert_int_equal(g_load(t, GPA_HOLE, &out, NULL), -EFAULT);
	assert_int_equal(vcpu_stop(t->v), -EFAULT);
	assert_false(is_shadow_present(spte_at(t, GPA_HOLE >> PAGE_SHIFT)));
	kt_vcpu_start(t);
	host_store(t->mm, HVA(0), 0x81);
	assert_int_equal(g_read(t, GPA(0)), 0x81);
	kt_destroy(t);
}

/*
 * cmocka teardown: a test that failed midway may have left its vCPU paused,
 * a host operation blocked in a notifier (inside an RCU read-side section)
 * or a guest spinning on a retry. Release them and stop the vCPU so that
 * the next test's grace periods can end, and leak the rest: the failure
 * has been reported already.
 */
static int kt_abandon(void **state)
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

#define T(f) cmocka_unit_test_teardown(f, kt_abandon)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* a) fault vs invalidation */
		T(test_fault_retry_dontneed),
		T(test_fault_retry_remap),
		T(test_fault_retry_cow),
		T(test_fault_retry_broken_dontneed),
		T(test_fault_retry_broken_remap),
		T(test_fault_retry_broken_cow),
		T(test_fault_seq_snapshot_before_gup),
		T(test_fault_retry_in_progress),
		T(test_fault_retry_in_progress_broken),
		T(test_invalidate_bookkeeping),
		/* b) flush waits for guest mode */
		T(test_flush_request_waits_for_guest_mode),
		T(test_flush_request_consumed_before_snapshot),
		T(test_invalidation_waits_for_guest_mode),
		T(test_invalidation_flush_wait_broken),
		T(test_request_vs_guest_entry),
		/* e) non-blockable invalidation (OOM reaper) */
		T(test_nonblock_start_eagain),
		T(test_nonblock_start_eagain_in_guest),
		T(test_nonblock_end_does_not_wait_for_vcpu),
		T(test_nonblock_start_rseq_in_guest),
		T(test_nonblock_start_vcpus_stopped),
		/* c) memslot updates */
		T(test_slot_delete_unreachable),
		T(test_slot_move),
		T(test_slot_delete_vs_paused_fault),
		T(test_slot_delete_waits_for_guest_mode),
		T(test_rseq_invalidation_does_not_wait),
		/* d) release */
		T(test_release_zaps_everything),
		T(test_fault_vs_exit),
		T(test_fault_vs_exit_inside_gup),
		/* units */
		T(test_memslot_bad_input),
		T(test_log_dirty_refused),
		T(test_stale_spte_bug_only_under_its_breaks),
		T(test_reclaim_second_look_test_young),
		T(test_reclaim_zap_carries_young),
		T(test_create_bad_input),
		T(test_read_only_slot),
		T(test_fault_writable_and_no_pin),
		T(test_fault_cow_shared),
		T(test_fast_path),
		T(test_aging),
		T(test_aging_reports_young),
		T(test_aging_broken_reports_nothing),
		T(test_change_pte),
		T(test_unaligned_and_mmio),
		T(test_slot_over_unmapped_hva),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
