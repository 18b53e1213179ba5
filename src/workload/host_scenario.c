/* SPDX-License-Identifier: MIT */
/*
 * host_scenario.c - processes using memory under a recording MMU notifier:
 * the primary MMU exercised the way processes use memory, from several
 * threads at once, with every byte read back and checked. `tandem
 * host-demo` runs it; it needs no VM, only the host and the notifier core.
 *
 * Each of cfg.nr_procs threads is a "process": it creates an mm, subscribes
 * a recording MMU notifier to it, and lives a few iterations before it exits
 * (mmput) and starts again. One iteration, on a fresh region of n pages:
 *
 *   1. mmap; read the first quarter (shared zero page: reads zeroes)
 *   2. write a tagged block into every page; read all back; GUP says RW
 *   3. mm_fork; GUP on the parent now says RO (fork write-protected it);
 *      a child thread registers its own notifier, writes some pages while
 *      the parent writes others (some both: both sides break COW), and
 *      after a barrier each side checks it sees its own writes and the
 *      pre-fork data everywhere else; the child exits
 *   4. MADV_DONTNEED a sub-range: it reads zeroes, the rest is intact
 *   5. mprotect a sub-range read-only: writes there (mm_write and
 *      GUP(FOLL_WRITE)) fail with -EFAULT, reads still work; then back to
 *      read-write and written again (COW reuse or a copy of the zero page)
 *   6. a long-lived region of the process is updated and checked
 *   7. munmap a middle chunk (reads fail with -EFAULT there), then the rest
 *
 * Invariants checked:
 *   1. Every call that must notify (fork, COW, DONTNEED, mprotect, munmap)
 *      reached the subscriber with the right event.
 *   2. The subscriber sees the protocol: start/end balanced per event, sane
 *      ranges, exactly one release per subscription, nothing after release.
 *   3. Every write replaces a whole page: a page with tag t holds 64 bytes
 *      derived from t at an offset derived from t, zeroes elsewhere; tag 0
 *      means all zeroes. Each thread keeps the tag it expects for each
 *      page, so a lost write, a write leaking through a shared COW frame,
 *      or stale data after DONTNEED shows up as a mismatch.
 *   4. After every thread has exited, the host passes
 *      host_check_invariants() with every frame, page-table page and mm
 *      returned.
 *
 * The first failure of any thread is recorded (fail_lock) and stops every
 * thread (stop); the verdict is that failure, or the first broken end-of-run
 * invariant. Nothing here prints: the caller reports the result.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tandem/host.h"
#include "tandem/mmu_notifier.h"
#include "tandem/workload.h"
#include "base/clock.h"
#include "base/compiler.h"
#include "base/prng.h"

#define PERSIST_PAGES   16      /* the long-lived region of each process */
#define REGION_MIN      16      /* pages of one iteration's region */
#define REGION_MAX      512
#define BLOCK_BYTES     64      /* the tagged part of a page */

/* The run's shared state. */
struct host_scenario {
	const struct host_scenario_config *cfg;
	struct host *host;
	uint64_t deadline_ns;       /* 0: none */
	unsigned int region_max;

	atomic_bool stop;
	pthread_mutex_t fail_lock;
	char failure[512];          /* the first failure; under fail_lock */
	atomic_bool failed;

	atomic_ulong mms, forks, iterations;
	atomic_ulong subscriptions, releases, change_pte;
	atomic_ulong starts[MMU_NOTIFY_NR_EVENTS], ends[MMU_NOTIFY_NR_EVENTS];
	atomic_ulong peak_frames, peak_pgtables;
};

void host_scenario_config_default(struct host_scenario_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->host_mem = 256ULL << 20;
	cfg->nr_procs = 4;
	cfg->duration_ns = 3 * NSEC_PER_SEC;
	cfg->seed = 1;
}

/*
 * The largest region one iteration may map: each process needs its
 * long-lived region, its iteration region, the COW copies of both sides,
 * and page tables for two mms; the allocator keeps some frames back.
 */
static uint64_t region_max_pages(const struct host_scenario_config *cfg)
{
	uint64_t ram_pages = cfg->host_mem / PAGE_SIZE;
	uint64_t reserve = MAX(16, ram_pages / 256) + 64;
	uint64_t per_proc, region;

	if (ram_pages <= reserve)
		return 0;
	per_proc = (ram_pages - reserve) / cfg->nr_procs;
	region = per_proc > 3 * PERSIST_PAGES ? (per_proc - 3 * PERSIST_PAGES) / 2 : 0;
	return MIN(region, REGION_MAX);
}

int host_scenario_check_config(const struct host_scenario_config *cfg, char *why,
			       size_t len)
{
	const unsigned int breaks = HOST_BREAK_MUNMAP_NOTIFY | HOST_BREAK_DONTNEED_NOTIFY |
				    HOST_BREAK_MPROTECT_NOTIFY | HOST_BREAK_COW_NOTIFY |
				    HOST_BREAK_FORK_NOTIFY;

	if (cfg->nr_procs < 1 || cfg->nr_procs > HOST_SCENARIO_MAX_PROCS)
		snprintf(why, len, "processes: %u is out of range (1..%d)", cfg->nr_procs,
			 HOST_SCENARIO_MAX_PROCS);
	else if (cfg->host_mem < HOST_RAM_MIN || cfg->host_mem > HOST_RAM_MAX ||
		 !PAGE_ALIGNED(cfg->host_mem))
		snprintf(why, len, "host memory: %llu bytes is not a multiple of 4K in 16M..64G",
			 (unsigned long long)cfg->host_mem);
	else if (!cfg->duration_ns && !cfg->iterations)
		snprintf(why, len, "neither a duration nor an iteration limit: the run would "
			 "not end");
	else if (cfg->breaks & ~breaks)
		snprintf(why, len, "breaks: unknown bits %#x", cfg->breaks & ~breaks);
	else if (region_max_pages(cfg) < REGION_MIN)
		snprintf(why, len, "host memory: %llu MiB is too small for %u procs",
			 (unsigned long long)(cfg->host_mem >> 20), cfg->nr_procs);
	else
		return 0;
	return -EINVAL;
}

/* ---- the recording subscriber ------------------------------------------ */

struct recording_mn {
	struct mmu_notifier mn;
	atomic_ulong starts[MMU_NOTIFY_NR_EVENTS], ends[MMU_NOTIFY_NR_EVENTS];
	atomic_ulong change_pte;
	atomic_long in_progress;
	atomic_uint releases;
	atomic_bool late;           /* a callback after release */
	atomic_bool bad_range;
	atomic_bool unbalanced;     /* an end without its start */
	bool attached;
};

static int rec_mn_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct recording_mn *rm = container_of(mn, struct recording_mn, mn);

	if (atomic_load(&rm->releases))
		atomic_store(&rm->late, true);
	if (r->mm != mn->mm || r->start >= r->end || !PAGE_ALIGNED(r->start) ||
	    !PAGE_ALIGNED(r->end) || (unsigned int)r->event >= MMU_NOTIFY_NR_EVENTS) {
		atomic_store(&rm->bad_range, true);
		return 0;
	}
	atomic_fetch_add(&rm->in_progress, 1);
	atomic_fetch_add_explicit(&rm->starts[r->event], 1, memory_order_relaxed);
	return 0;
}

static void rec_mn_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct recording_mn *rm = container_of(mn, struct recording_mn, mn);

	if (atomic_load(&rm->releases))
		atomic_store(&rm->late, true);
	if ((unsigned int)r->event >= MMU_NOTIFY_NR_EVENTS) {
		atomic_store(&rm->bad_range, true);
		return;
	}
	if (atomic_fetch_sub(&rm->in_progress, 1) <= 0)
		atomic_store(&rm->unbalanced, true);
	atomic_fetch_add_explicit(&rm->ends[r->event], 1, memory_order_relaxed);
}

static void rec_mn_change_pte(struct mmu_notifier *mn, struct mm *mm, hva_t address,
			      pte_t pte)
{
	struct recording_mn *rm = container_of(mn, struct recording_mn, mn);

	if (atomic_load(&rm->releases))
		atomic_store(&rm->late, true);
	atomic_fetch_add_explicit(&rm->change_pte, 1, memory_order_relaxed);
}

static void rec_mn_release(struct mmu_notifier *mn, struct mm *mm)
{
	struct recording_mn *rm = container_of(mn, struct recording_mn, mn);

	atomic_fetch_add(&rm->releases, 1);
}

static const struct mmu_notifier_ops rec_mn_ops = {
	.release = rec_mn_release,
	.change_pte = rec_mn_change_pte,
	.invalidate_range_start = rec_mn_start,
	.invalidate_range_end = rec_mn_end,
};

static unsigned long rec_mn_starts(struct recording_mn *rm, enum mmu_notifier_event e)
{
	return atomic_load_explicit(&rm->starts[e], memory_order_relaxed);
}

/* ---- per-thread context, failures, tags ------------------------------- */

struct proc {
	struct host_scenario *hs;
	unsigned int id;
	bool child;
	uint64_t life, iter;        /* for messages */
	uint64_t rng;
	uint64_t stream, serial;    /* tag source */
	uint64_t verified, efaults;
	unsigned char buf[PAGE_SIZE], exp[PAGE_SIZE], wbuf[PAGE_SIZE];
};

static bool proc_fail(struct proc *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record the first failure and stop every thread. Returns false. */
static bool proc_fail(struct proc *c, const char *fmt, ...)
{
	struct host_scenario *hs = c->hs;
	va_list ap;

	pthread_mutex_lock(&hs->fail_lock);
	if (!atomic_load(&hs->failed)) {
		int n = snprintf(hs->failure, sizeof(hs->failure),
				 "proc %u%s life %llu iter %llu: ", c->id,
				 c->child ? " child" : "", (unsigned long long)c->life,
				 (unsigned long long)c->iter);
		va_start(ap, fmt);
		if (n > 0 && (size_t)n < sizeof(hs->failure))
			vsnprintf(hs->failure + n, sizeof(hs->failure) - (size_t)n, fmt, ap);
		va_end(ap);
		atomic_store(&hs->failed, true);
	}
	pthread_mutex_unlock(&hs->fail_lock);
	atomic_store(&hs->stop, true);
	return false;
}

static bool stopping(struct proc *c)
{
	return atomic_load(&c->hs->stop);
}

/* Uniform enough in [lo, hi]. */
static uint64_t rnd_range(struct proc *c, uint64_t lo, uint64_t hi)
{
	return lo + prng_next(&c->rng) % (hi - lo + 1);
}

static uint64_t new_tag(struct proc *c)
{
	return prng_mix64(c->hs->cfg->seed ^
			  prng_mix64(c->stream ^ prng_mix64(++c->serial))) | 1;
}

/* Fill a page buffer with what a page tagged `tag` holds. */
static void tag_page(unsigned char *page, uint64_t tag)
{
	unsigned int off = (unsigned int)((tag >> 17) % (PAGE_SIZE / BLOCK_BYTES)) *
			   BLOCK_BYTES;

	memset(page, 0, PAGE_SIZE);
	if (!tag)
		return;
	for (unsigned int i = 0; i < BLOCK_BYTES / 8; i++) {
		uint64_t w = prng_mix64(tag + i);

		memcpy(page + off + 8 * i, &w, 8);
	}
}

static void atomic_max(atomic_ulong *peak, unsigned long v)
{
	unsigned long old = atomic_load(peak);

	while (v > old && !atomic_compare_exchange_weak(peak, &old, v))
		;
}

/* Sample the frames and page-table pages in use (the peak the run reports). */
static void note_peak(struct host_scenario *hs)
{
	struct host_stats st;

	atomic_max(&hs->peak_frames, host_frames_in_use(hs->host));
	host_get_stats(hs->host, &st);
	atomic_max(&hs->peak_pgtables, st.pgtable_pages);
}

/* Overwrite the whole page, so that its content is a function of tag. */
static bool write_tag(struct proc *c, struct mm *mm, hva_t page_addr, uint64_t tag)
{
	int64_t r;

	tag_page(c->wbuf, tag);
	r = mm_write(mm, page_addr, c->wbuf, PAGE_SIZE);
	if (r != (int64_t)PAGE_SIZE)
		return proc_fail(c, "mm_write at %#llx returned %lld",
				 (unsigned long long)page_addr, (long long)r);
	return true;
}

static bool compare_page(struct proc *c, const unsigned char *got, hva_t addr,
			 uint64_t tag, const char *what)
{
	size_t i = 0;

	tag_page(c->exp, tag);
	if (memcmp(got, c->exp, PAGE_SIZE) == 0) {
		c->verified++;
		return true;
	}
	while (got[i] == c->exp[i])
		i++;
	return proc_fail(c, "%s: page %#llx byte %zu is 0x%02x, expected 0x%02x (%s)",
			 what, (unsigned long long)addr, i, got[i], c->exp[i],
			 tag ? "this side's last write" : "zeroes");
}

static bool verify_page(struct proc *c, struct mm *mm, hva_t addr, uint64_t tag,
			const char *what)
{
	int64_t r = mm_read(mm, addr, c->buf, PAGE_SIZE);

	if (r != (int64_t)PAGE_SIZE)
		return proc_fail(c, "%s: mm_read at %#llx returned %lld", what,
				 (unsigned long long)addr, (long long)r);
	return compare_page(c, c->buf, addr, tag, what);
}

static bool verify_range(struct proc *c, struct mm *mm, hva_t addr,
			 const uint64_t *tags, uint64_t n, const char *what)
{
	for (uint64_t p = 0; p < n; p++)
		if (!verify_page(c, mm, addr + p * PAGE_SIZE, tags[p], what))
			return false;
	return true;
}

/* Look at a page through GUP, as a secondary MMU would. want_rw: 1 must be
 * writable, 0 must not be, -1 either. */
static bool gup_check(struct proc *c, struct mm *mm, hva_t addr, uint64_t tag,
		      int want_rw, const char *what)
{
	struct page *page;
	bool writable, ok;
	int err = get_user_page(mm, addr, 0, &page, &writable);

	if (err)
		return proc_fail(c, "%s: get_user_page(%#llx) = %d", what,
				 (unsigned long long)addr, err);
	ok = compare_page(c, page_address(page), addr, tag, what);
	put_page(page);
	if (ok && want_rw >= 0 && writable != (bool)want_rw)
		return proc_fail(c, "%s: get_user_page(%#llx) says %s, expected %s", what,
				 (unsigned long long)addr, writable ? "writable" : "read-only",
				 want_rw ? "writable" : "read-only");
	return ok;
}

/* The call just made must have reached the subscriber with event e. */
static bool expect_notified(struct proc *c, struct recording_mn *rm,
			    enum mmu_notifier_event e, unsigned long before, const char *call)
{
	if (!rm->attached || rec_mn_starts(rm, e) > before)
		return true;
	return proc_fail(c, "%s sent no %s invalidation to the subscriber", call,
			 mmu_notifier_event_name(e));
}

/* ---- subscription lifetime --------------------------------------------- */

static bool rec_mn_attach(struct proc *c, struct recording_mn *rm, struct mm *mm)
{
	int err;

	memset(rm, 0, sizeof(*rm));
	rm->mn.ops = &rec_mn_ops;
	err = mmu_notifier_register(&rm->mn, mm);
	if (err)
		return proc_fail(c, "mmu_notifier_register = %d", err);
	rm->attached = true;
	atomic_fetch_add(&c->hs->subscriptions, 1);
	return true;
}

/* After the mm's last mmput: release must have run once; unregister, check
 * what the subscriber saw and add its counts to the run's. */
static void rec_mn_detach(struct proc *c, struct recording_mn *rm, struct mm *mm)
{
	struct host_scenario *hs = c->hs;
	int err;

	if (!rm->attached)
		return;
	if (atomic_load(&rm->releases) != 1)
		proc_fail(c, "exit ran release %u times, expected once",
			  atomic_load(&rm->releases));
	err = mmu_notifier_unregister(&rm->mn, mm);
	if (err)
		proc_fail(c, "mmu_notifier_unregister after exit = %d", err);
	if (atomic_load(&rm->releases) != 1)
		proc_fail(c, "release ran %u times after unregister, expected once",
			  atomic_load(&rm->releases));
	if (atomic_load(&rm->late))
		proc_fail(c, "a notifier callback arrived after release");
	if (atomic_load(&rm->bad_range))
		proc_fail(c, "a notifier range was malformed");
	if (atomic_load(&rm->unbalanced) || atomic_load(&rm->in_progress) != 0)
		proc_fail(c, "invalidate_range start/end unbalanced (%ld open)",
			  atomic_load(&rm->in_progress));
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++) {
		unsigned long s = atomic_load(&rm->starts[e]), en = atomic_load(&rm->ends[e]);

		if (s != en)
			proc_fail(c, "%lu %s starts but %lu ends",
				  s, mmu_notifier_event_name(e), en);
		atomic_fetch_add(&hs->starts[e], s);
		atomic_fetch_add(&hs->ends[e], en);
	}
	atomic_fetch_add(&hs->change_pte, atomic_load(&rm->change_pte));
	atomic_fetch_add(&hs->releases, atomic_load(&rm->releases));
	rm->attached = false;
}

/* ---- fork phase -------------------------------------------------------- */

#define PLAN_PARENT 1u
#define PLAN_CHILD  2u

struct fork_phase {
	struct proc cc;             /* the child thread's context */
	struct mm *child;
	hva_t addr;
	uint64_t n;
	const uint64_t *base;       /* tags at fork time */
	const uint8_t *plan;        /* per page: PLAN_PARENT / PLAN_CHILD writes it */
	uint64_t *ctags;            /* the child's view */
	hva_t pers;
	const uint64_t *pers_tags;
	pthread_barrier_t written;  /* both sides wrote and checked once */
};

static void *child_main(void *arg)
{
	struct fork_phase *fp = arg;
	struct proc *c = &fp->cc;
	struct recording_mn rm;

	rec_mn_attach(c, &rm, fp->child);
	for (uint64_t p = 0; p < fp->n; p++) {
		fp->ctags[p] = fp->base[p];
		if ((fp->plan[p] & PLAN_CHILD) && !stopping(c)) {
			fp->ctags[p] = new_tag(c);
			write_tag(c, fp->child, fp->addr + p * PAGE_SIZE, fp->ctags[p]);
		}
	}
	note_peak(c->hs);
	if (!stopping(c))
		verify_range(c, fp->child, fp->addr, fp->ctags, fp->n,
			     "child after its writes");
	/* Always meet the parent, even after a failure. */
	pthread_barrier_wait(&fp->written);
	/* The parent's writes are done: none may show here. */
	if (!stopping(c))
		verify_range(c, fp->child, fp->addr, fp->ctags, fp->n,
			     "child after the parent's writes");
	if (!stopping(c))
		verify_range(c, fp->child, fp->pers, fp->pers_tags, PERSIST_PAGES,
			     "child's copy of the long-lived region");
	mmput(fp->child);       /* exit: release, unmap, free */
	rec_mn_detach(c, &rm, fp->child);
	return NULL;
}

/*
 * Fork the process, and let parent and child write concurrently. On return
 * the child has exited and tags[] is the parent's view.
 */
static bool fork_phase(struct proc *c, struct mm *mm, struct recording_mn *rm, hva_t addr,
		       uint64_t n, uint64_t *tags, hva_t pers, const uint64_t *pers_tags)
{
	struct host_scenario *hs = c->hs;
	unsigned long before = rec_mn_starts(rm, MMU_NOTIFY_PROTECTION_PAGE);
	struct fork_phase *fp = calloc(1, sizeof(*fp));
	uint8_t *plan = calloc(n, 1);
	uint64_t *base = calloc(n, sizeof(uint64_t)), *ctags = calloc(n, sizeof(uint64_t));
	uint64_t probe;
	pthread_t thread;
	bool ok = false;
	int err;

	if (!fp || !plan || !base || !ctags) {
		proc_fail(c, "out of memory (the scenario's own)");
		goto out_free;
	}
	for (uint64_t p = 0; p < n; p++)
		plan[p] = (uint8_t)(prng_next(&c->rng) & (PLAN_PARENT | PLAN_CHILD));
	memcpy(base, tags, n * sizeof(uint64_t));

	err = mm_fork(mm, &fp->child);
	if (err) {
		proc_fail(c, "mm_fork = %d", err);
		goto out_free;
	}
	atomic_fetch_add(&hs->forks, 1);
	atomic_fetch_add(&hs->mms, 1);
	if (!expect_notified(c, rm, MMU_NOTIFY_PROTECTION_PAGE, before, "mm_fork"))
		goto out_put_child;
	/* Fork write-protected the parent: GUP sees the page read-only. */
	probe = rnd_range(c, 0, n - 1);
	if (!gup_check(c, mm, addr + probe * PAGE_SIZE, tags[probe], 0,
		       "parent right after fork"))
		goto out_put_child;

	fp->cc.hs = hs;
	fp->cc.id = c->id;
	fp->cc.child = true;
	fp->cc.life = c->life;
	fp->cc.iter = c->iter;
	fp->cc.stream = prng_mix64(c->stream + 1) ^ ((uint64_t)atomic_load(&hs->forks) << 32);
	fp->addr = addr;
	fp->n = n;
	fp->base = base;
	fp->plan = plan;
	fp->ctags = ctags;
	fp->pers = pers;
	fp->pers_tags = pers_tags;
	pthread_barrier_init(&fp->written, NULL, 2);
	err = pthread_create(&thread, NULL, child_main, fp);
	if (err) {
		pthread_barrier_destroy(&fp->written);
		proc_fail(c, "pthread_create for the child: %s", strerror(err));
		goto out_put_child;
	}

	for (uint64_t p = 0; p < n && !stopping(c); p++) {
		if (plan[p] & PLAN_PARENT) {
			unsigned long cb = rec_mn_starts(rm, MMU_NOTIFY_CLEAR);

			tags[p] = new_tag(c);
			if (!write_tag(c, mm, addr + p * PAGE_SIZE, tags[p]))
				break;
			/* A COW break replaces a mapped frame: it must notify.
			 * (A reuse after the child's own copy needs none.) */
			if ((plan[p] & PLAN_CHILD) == 0 &&
			    !expect_notified(c, rm, MMU_NOTIFY_CLEAR, cb, "a COW break"))
				break;
		}
	}
	note_peak(hs);
	if (!stopping(c))
		verify_range(c, mm, addr, tags, n, "parent after its writes");
	pthread_barrier_wait(&fp->written);
	/* The child's writes are done: none may show here. */
	if (!stopping(c))
		verify_range(c, mm, addr, tags, n, "parent after the child's writes");
	pthread_join(thread, NULL);
	pthread_barrier_destroy(&fp->written);
	c->verified += fp->cc.verified;
	ok = !stopping(c);
	goto out_free;

out_put_child:
	mmput(fp->child);
out_free:
	free(ctags);
	free(base);
	free(plan);
	free(fp);
	return ok;
}

/* ---- one iteration and one life ---------------------------------------- */

/* Steps 4 and 5: DONTNEED reads back zeroes; a read-only sub-range refuses
 * writes and still reads, then is writable again. */
static bool dontneed_mprotect(struct proc *c, struct mm *mm, struct recording_mn *rm,
			      hva_t addr, uint64_t n, uint64_t *tags)
{
	uint64_t a = rnd_range(c, 0, n - 1), b = rnd_range(c, a + 1, n);
	unsigned long before = rec_mn_starts(rm, MMU_NOTIFY_CLEAR);
	unsigned char byte = 0xa5;
	uint64_t ro, ro_end;
	struct page *page;
	int64_t r;
	hva_t w;
	int err;

	err = mm_madvise(mm, addr + a * PAGE_SIZE, (b - a) * PAGE_SIZE, MADV_DONTNEED);
	if (err)
		return proc_fail(c, "madvise(DONTNEED) = %d", err);
	if (!expect_notified(c, rm, MMU_NOTIFY_CLEAR, before, "MADV_DONTNEED"))
		return false;
	for (uint64_t p = a; p < b; p++)
		tags[p] = 0;
	if (!verify_range(c, mm, addr, tags, n, "after MADV_DONTNEED"))
		return false;

	ro = rnd_range(c, 0, n - 1);
	ro_end = rnd_range(c, ro + 1, n);
	before = rec_mn_starts(rm, MMU_NOTIFY_PROTECTION_VMA);
	err = mm_mprotect(mm, addr + ro * PAGE_SIZE, (ro_end - ro) * PAGE_SIZE, PROT_READ);
	if (err)
		return proc_fail(c, "mprotect(PROT_READ) = %d", err);
	if (!expect_notified(c, rm, MMU_NOTIFY_PROTECTION_VMA, before, "mprotect(PROT_READ)"))
		return false;
	w = addr + rnd_range(c, ro, ro_end - 1) * PAGE_SIZE;
	r = mm_write(mm, w, &byte, 1);
	if (r != -EFAULT)
		return proc_fail(c, "mm_write to a read-only page returned %lld, expected "
				 "-EFAULT", (long long)r);
	err = get_user_page(mm, w, FOLL_WRITE, &page, NULL);
	if (err != -EFAULT) {
		if (!err)
			put_page(page);
		return proc_fail(c, "get_user_page(FOLL_WRITE) on a read-only page = %d, "
				 "expected -EFAULT", err);
	}
	c->efaults += 2;
	if (!gup_check(c, mm, addr + ro * PAGE_SIZE, tags[ro], 0, "read-only page"))
		return false;
	if (ro > 0) {
		tags[ro - 1] = new_tag(c);
		if (!write_tag(c, mm, addr + (ro - 1) * PAGE_SIZE, tags[ro - 1]))
			return false;
	}
	if (!verify_range(c, mm, addr, tags, n, "after mprotect(PROT_READ)"))
		return false;
	err = mm_mprotect(mm, addr + ro * PAGE_SIZE, (ro_end - ro) * PAGE_SIZE,
			  PROT_READ | PROT_WRITE);
	if (err)
		return proc_fail(c, "mprotect(PROT_READ|PROT_WRITE) = %d", err);
	tags[ro] = new_tag(c);
	return write_tag(c, mm, addr + ro * PAGE_SIZE, tags[ro]) &&
	       verify_range(c, mm, addr, tags, n, "after mprotect back to read-write");
}

/* Step 7: munmap a middle chunk, then everything. */
static bool munmap_region(struct proc *c, struct mm *mm, struct recording_mn *rm,
			  hva_t addr, uint64_t n, const uint64_t *tags)
{
	uint64_t m = rnd_range(c, 0, n - 1), m_end = rnd_range(c, m + 1, n);
	unsigned long before = rec_mn_starts(rm, MMU_NOTIFY_UNMAP);
	int64_t r;
	int err;

	err = mm_munmap(mm, addr + m * PAGE_SIZE, (m_end - m) * PAGE_SIZE);
	if (err)
		return proc_fail(c, "munmap(middle) = %d", err);
	if (!expect_notified(c, rm, MMU_NOTIFY_UNMAP, before, "munmap"))
		return false;
	r = mm_read(mm, addr + m * PAGE_SIZE, c->buf, 1);
	if (r != -EFAULT)
		return proc_fail(c, "mm_read of an unmapped page returned %lld, expected "
				 "-EFAULT", (long long)r);
	c->efaults++;
	if (!verify_range(c, mm, addr, tags, m, "below a munmapped chunk") ||
	    !verify_range(c, mm, addr + m_end * PAGE_SIZE, tags + m_end, n - m_end,
			  "above a munmapped chunk"))
		return false;
	err = mm_munmap(mm, addr, n * PAGE_SIZE);
	if (err)
		return proc_fail(c, "munmap(region) = %d", err);
	return true;
}

static bool iteration(struct proc *c, struct mm *mm, struct recording_mn *rm, hva_t pers,
		      uint64_t *pers_tags)
{
	struct host_scenario *hs = c->hs;
	uint64_t n = rnd_range(c, REGION_MIN, hs->region_max);
	uint64_t *tags = calloc(n, sizeof(uint64_t));
	uint64_t probe, pp;
	hva_t addr;
	int err;
	bool ok = false;

	if (!tags)
		return proc_fail(c, "out of memory (the scenario's own)");
	err = mm_mmap(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, &addr);
	if (err) {
		proc_fail(c, "mm_mmap(%llu pages) = %d", (unsigned long long)n, err);
		goto out;
	}

	/* 1-2: zero page reads, then demand-zero and zero-page COW writes. */
	if (!verify_range(c, mm, addr, tags, n / 4, "fresh region"))
		goto out;
	for (uint64_t p = 0; p < n; p++) {
		tags[p] = new_tag(c);
		if (!write_tag(c, mm, addr + p * PAGE_SIZE, tags[p]))
			goto out;
	}
	note_peak(hs);
	if (!verify_range(c, mm, addr, tags, n, "after writing"))
		goto out;
	probe = rnd_range(c, 0, n - 1);
	if (!gup_check(c, mm, addr + probe * PAGE_SIZE, tags[probe], 1, "written page"))
		goto out;

	/* 3: fork and write on both sides. */
	if (!fork_phase(c, mm, rm, addr, n, tags, pers, pers_tags))
		goto out;

	/* 4-5 */
	if (!dontneed_mprotect(c, mm, rm, addr, n, tags))
		goto out;

	/* 6: the long-lived region. */
	pp = rnd_range(c, 0, PERSIST_PAGES - 1);
	pers_tags[pp] = new_tag(c);
	if (!write_tag(c, mm, pers + pp * PAGE_SIZE, pers_tags[pp]) ||
	    !verify_range(c, mm, pers, pers_tags, PERSIST_PAGES, "long-lived region"))
		goto out;

	/* 7 */
	ok = munmap_region(c, mm, rm, addr, n, tags);
out:
	free(tags);
	atomic_fetch_add(&hs->iterations, 1);
	return ok;
}

static bool time_is_up(struct host_scenario *hs)
{
	return hs->deadline_ns && clock_now_ns() >= hs->deadline_ns;
}

static void *proc_main(void *arg)
{
	struct proc *c = arg;
	struct host_scenario *hs = c->hs;
	uint64_t done = 0, limit = hs->cfg->iterations;

	while (!stopping(c) && !time_is_up(hs) && (!limit || done < limit)) {
		uint64_t pers_tags[PERSIST_PAGES] = { 0 };
		struct recording_mn rm;
		struct mm *mm;
		hva_t pers;
		int err;

		c->life++;
		c->iter = 0;
		err = mm_create(hs->host, &mm);
		if (err) {
			proc_fail(c, "mm_create = %d", err);
			break;
		}
		atomic_fetch_add(&hs->mms, 1);
		if (!rec_mn_attach(c, &rm, mm))
			goto out_exit;
		err = mm_mmap(mm, 0, PERSIST_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, &pers);
		if (err) {
			proc_fail(c, "mm_mmap(long-lived) = %d", err);
			goto out_exit;
		}
		for (unsigned int p = 0; p < PERSIST_PAGES; p++) {
			pers_tags[p] = new_tag(c);
			if (!write_tag(c, mm, pers + p * PAGE_SIZE, pers_tags[p]))
				goto out_exit;
		}
		for (uint64_t i = rnd_range(c, 1, 4); i > 0; i--) {
			c->iter++;
			if (!iteration(c, mm, &rm, pers, pers_tags))
				break;
			done++;
			if (stopping(c) || time_is_up(hs) || (limit && done >= limit))
				break;
		}
		if (!stopping(c))
			verify_range(c, mm, pers, pers_tags, PERSIST_PAGES,
				     "long-lived region at exit");
out_exit:
		mmput(mm);      /* exit with the region still mapped */
		rec_mn_detach(c, &rm, mm);
	}
	return NULL;
}

/* ---- the run ------------------------------------------------------------ */

/* Start the processes, wait for all of them; returns how many started. */
static unsigned int run_procs(struct host_scenario *hs, struct host_scenario_result *res)
{
	const struct host_scenario_config *cfg = hs->cfg;
	struct proc *procs[HOST_SCENARIO_MAX_PROCS] = { 0 };
	pthread_t threads[HOST_SCENARIO_MAX_PROCS];
	unsigned int started = 0;
	int err;

	for (unsigned int i = 0; i < cfg->nr_procs; i++) {
		struct proc *c = calloc(1, sizeof(*c));

		if (!c) {
			atomic_store(&hs->stop, true);
			break;
		}
		c->hs = hs;
		c->id = i;
		c->rng = prng_seed(cfg->seed, i);
		c->stream = prng_mix64((uint64_t)i << 1);
		err = pthread_create(&threads[i], NULL, proc_main, c);
		if (err) {
			proc_fail(c, "pthread_create: %s", strerror(err));
			free(c);
			break;
		}
		procs[i] = c;
		started++;
	}
	for (unsigned int i = 0; i < started; i++) {
		pthread_join(threads[i], NULL);
		res->pages_verified += procs[i]->verified;
		res->efault_checks += procs[i]->efaults;
		free(procs[i]);
	}
	return started;
}

/* Every process has exited: the host must be back to empty. */
static void judge(struct host_scenario *hs, struct host_scenario_result *res,
		  unsigned int started)
{
	const struct host_stats *st = &res->host;

	if (atomic_load(&hs->failed))
		snprintf(res->verdict, sizeof(res->verdict), "%s", hs->failure);
	else if (started < hs->cfg->nr_procs)
		snprintf(res->verdict, sizeof(res->verdict), "could not start every process");
	else if (res->invariants != 0)
		snprintf(res->verdict, sizeof(res->verdict), "host_check_invariants failed");
	else if (res->frames_in_use != 0 || st->pgtable_pages != 0 || st->nr_mms != 0)
		snprintf(res->verdict, sizeof(res->verdict), "leak at exit: %llu frames in "
			 "use, %llu page-table pages, %llu mms",
			 (unsigned long long)res->frames_in_use,
			 (unsigned long long)st->pgtable_pages, (unsigned long long)st->nr_mms);
	else if (res->iterations == 0)
		snprintf(res->verdict, sizeof(res->verdict), "no iteration ran");
	else {
		snprintf(res->verdict, sizeof(res->verdict), "OK");
		res->ok = true;
	}
}

int host_scenario_run(const struct host_scenario_config *cfg,
		      struct host_scenario_result *res)
{
	struct host_config hcfg = { 0 };
	struct host_scenario *hs;
	unsigned int started;
	uint64_t start_ns;
	int err;

	memset(res, 0, sizeof(*res));
	if (!cfg) {
		snprintf(res->verdict, sizeof(res->verdict), "no config");
		return -EINVAL;
	}
	if (host_scenario_check_config(cfg, res->verdict, sizeof(res->verdict)))
		return -EINVAL;
	hs = calloc(1, sizeof(*hs));
	if (!hs) {
		snprintf(res->verdict, sizeof(res->verdict), "out of memory");
		return -ENOMEM;
	}
	hs->cfg = cfg;
	hs->region_max = (unsigned int)region_max_pages(cfg);
	pthread_mutex_init(&hs->fail_lock, NULL);
	hcfg.ram_bytes = cfg->host_mem;
	hcfg.breaks = cfg->breaks;
	err = host_create(&hcfg, &hs->host);
	if (err) {
		snprintf(res->verdict, sizeof(res->verdict), "host_create: %s", strerror(-err));
		goto out_free;
	}

	start_ns = clock_now_ns();
	hs->deadline_ns = cfg->duration_ns ? start_ns + cfg->duration_ns : 0;
	started = run_procs(hs, res);
	res->elapsed_s = (double)(clock_now_ns() - start_ns) / 1e9;

	res->mms = atomic_load(&hs->mms);
	res->forks = atomic_load(&hs->forks);
	res->iterations = atomic_load(&hs->iterations);
	res->subscriptions = atomic_load(&hs->subscriptions);
	res->releases = atomic_load(&hs->releases);
	res->change_pte = atomic_load(&hs->change_pte);
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++) {
		res->starts[e] = atomic_load(&hs->starts[e]);
		res->ends[e] = atomic_load(&hs->ends[e]);
	}
	res->peak_frames = atomic_load(&hs->peak_frames);
	res->peak_pgtables = atomic_load(&hs->peak_pgtables);
	host_get_stats(hs->host, &res->host);
	res->invariants = host_check_invariants(hs->host);
	res->frames_in_use = host_frames_in_use(hs->host);
	judge(hs, res, started);

	/* Only a live mm makes this fail, and the leak check above has then
	 * failed the run already: keep that verdict. */
	err = host_destroy(hs->host);
	if (err && res->ok) {
		snprintf(res->verdict, sizeof(res->verdict), "host_destroy: %s", strerror(-err));
		res->ok = false;
	}
	err = 0;
out_free:
	pthread_mutex_destroy(&hs->fail_lock);
	free(hs);
	return err;
}
