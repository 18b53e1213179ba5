/* SPDX-License-Identifier: MIT */
/*
 * host_demo.c - `tandem host-demo`: the primary MMU exercised the way
 * processes use memory, from several threads at once, with every byte
 * read back and checked.
 *
 * Each of --procs threads is a "process": it creates an mm, subscribes a
 * counting MMU notifier to it, and lives a few iterations before it exits
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
 * Each call that must notify (fork, COW, DONTNEED, mprotect, munmap) is
 * checked to have reached the subscriber with the right event. The
 * subscriber itself checks the protocol: start/end balanced per event, sane
 * ranges, exactly one release, nothing after release.
 *
 * Every write replaces a whole page: a page with tag t holds 64 bytes
 * derived from t at an offset derived from t, zeroes elsewhere; tag 0
 * means all zeroes. Each thread keeps the tag it
 * expects for each page, so a lost write, a write leaking through a shared
 * COW frame, or stale data after DONTNEED shows up as a mismatch.
 *
 * After every thread has exited, the host must pass host_check_invariants()
 * with every frame returned.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "base/compiler.h"
#include "tandem/host.h"
#include "tandem/mmu_notifier.h"
#include "base/clock.h"
#include "base/prng.h"

#define PERSIST_PAGES   16
#define REGION_MIN      16
#define REGION_MAX      512
#define BLOCK_BYTES     64
#define MAX_PROCS       64

struct demo_opts {
	uint64_t host_mem;
	unsigned int procs;
	uint64_t duration_ns;       /* 0: no time limit */
	uint64_t iterations;        /* per process; 0: no limit */
	uint64_t seed;
	unsigned int breaks;        /* enum host_break: prove the checks notice */
	bool json;
};

static const struct {
	const char *name;
	enum host_break bit;
} break_names[] = {
	{ "munmap-notify", HOST_BREAK_MUNMAP_NOTIFY },
	{ "dontneed-notify", HOST_BREAK_DONTNEED_NOTIFY },
	{ "mprotect-notify", HOST_BREAK_MPROTECT_NOTIFY },
	{ "cow-notify", HOST_BREAK_COW_NOTIFY },
	{ "fork-notify", HOST_BREAK_FORK_NOTIFY },
};

struct demo {
	const struct demo_opts *o;
	struct host *host;
	uint64_t start_ns, deadline_ns;
	unsigned int region_max;

	atomic_bool stop;
	pthread_mutex_t fail_lock;
	char failure[512];          /* first failure; under fail_lock */
	atomic_bool failed;

	atomic_ulong mms, forks, iterations, pages_verified, efault_checks;
	atomic_ulong subscriptions, releases, change_pte;
	atomic_ulong starts[MMU_NOTIFY_NR_EVENTS], ends[MMU_NOTIFY_NR_EVENTS];
	atomic_ulong peak_frames, peak_pgtables;
};

/* ---- the counting subscriber ------------------------------------------- */

struct demo_mn {
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

static int demo_mn_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct demo_mn *dm = (struct demo_mn *)mn;

	if (atomic_load(&dm->releases))
		atomic_store(&dm->late, true);
	if (r->mm != mn->mm || r->start >= r->end || !PAGE_ALIGNED(r->start) ||
	    !PAGE_ALIGNED(r->end) || (unsigned int)r->event >= MMU_NOTIFY_NR_EVENTS) {
		atomic_store(&dm->bad_range, true);
		return 0;
	}
	atomic_fetch_add(&dm->in_progress, 1);
	atomic_fetch_add_explicit(&dm->starts[r->event], 1, memory_order_relaxed);
	return 0;
}

static void demo_mn_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct demo_mn *dm = (struct demo_mn *)mn;

	if (atomic_load(&dm->releases))
		atomic_store(&dm->late, true);
	if ((unsigned int)r->event >= MMU_NOTIFY_NR_EVENTS) {
		atomic_store(&dm->bad_range, true);
		return;
	}
	if (atomic_fetch_sub(&dm->in_progress, 1) <= 0)
		atomic_store(&dm->unbalanced, true);
	atomic_fetch_add_explicit(&dm->ends[r->event], 1, memory_order_relaxed);
}

static void demo_mn_change_pte(struct mmu_notifier *mn, struct mm *mm, hva_t address,
			       pte_t pte)
{
	struct demo_mn *dm = (struct demo_mn *)mn;

	if (atomic_load(&dm->releases))
		atomic_store(&dm->late, true);
	atomic_fetch_add_explicit(&dm->change_pte, 1, memory_order_relaxed);
}

static void demo_mn_release(struct mmu_notifier *mn, struct mm *mm)
{
	struct demo_mn *dm = (struct demo_mn *)mn;

	atomic_fetch_add(&dm->releases, 1);
}

static const struct mmu_notifier_ops demo_mn_ops = {
	.release = demo_mn_release,
	.change_pte = demo_mn_change_pte,
	.invalidate_range_start = demo_mn_start,
	.invalidate_range_end = demo_mn_end,
};

static unsigned long dm_starts(struct demo_mn *dm, enum mmu_notifier_event e)
{
	return atomic_load_explicit(&dm->starts[e], memory_order_relaxed);
}

/* ---- per-thread context, failures, tags ------------------------------- */

struct ctx {
	struct demo *d;
	unsigned int id;
	bool child;
	uint64_t life, iter;        /* for messages */
	uint64_t rng;
	uint64_t stream, serial;    /* tag source */
	uint64_t verified, efaults;
	unsigned char buf[PAGE_SIZE], exp[PAGE_SIZE], wbuf[PAGE_SIZE];
};

static bool demo_fail(struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record the first failure and stop every thread. Returns false. */
static bool demo_fail(struct ctx *c, const char *fmt, ...)
{
	struct demo *d = c->d;
	va_list ap;

	pthread_mutex_lock(&d->fail_lock);
	if (!atomic_load(&d->failed)) {
		int n = snprintf(d->failure, sizeof(d->failure), "proc %u%s life %llu iter %llu: ",
				 c->id, c->child ? " child" : "",
				 (unsigned long long)c->life, (unsigned long long)c->iter);
		va_start(ap, fmt);
		if (n > 0 && (size_t)n < sizeof(d->failure))
			vsnprintf(d->failure + n, sizeof(d->failure) - (size_t)n, fmt, ap);
		va_end(ap);
		atomic_store(&d->failed, true);
	}
	pthread_mutex_unlock(&d->fail_lock);
	atomic_store(&d->stop, true);
	return false;
}

static uint64_t rnd(struct ctx *c)
{
	return prng_next(&c->rng);
}

/* Uniform enough in [lo, hi]. */
static uint64_t rnd_range(struct ctx *c, uint64_t lo, uint64_t hi)
{
	return lo + rnd(c) % (hi - lo + 1);
}

static uint64_t new_tag(struct ctx *c)
{
	return prng_mix64(c->d->o->seed ^ prng_mix64(c->stream ^ prng_mix64(++c->serial))) | 1;
}

static unsigned int tag_offset(uint64_t tag)
{
	return (unsigned int)((tag >> 17) % (PAGE_SIZE / BLOCK_BYTES)) * BLOCK_BYTES;
}

static void tag_block(uint64_t tag, unsigned char *block)
{
	for (unsigned int i = 0; i < BLOCK_BYTES / 8; i++) {
		uint64_t w = prng_mix64(tag + i);

		memcpy(block + 8 * i, &w, 8);
	}
}

static void note_peak(struct demo *d)
{
	uint64_t frames = host_frames_in_use(d->host);
	unsigned long old = atomic_load(&d->peak_frames);
	struct host_stats st;

	while (frames > old && !atomic_compare_exchange_weak(&d->peak_frames, &old, frames))
		;
	host_get_stats(d->host, &st);
	old = atomic_load(&d->peak_pgtables);
	while (st.pgtable_pages > old &&
	       !atomic_compare_exchange_weak(&d->peak_pgtables, &old, st.pgtable_pages))
		;
}

/* Fill a page buffer with what a page tagged `tag` holds. */
static void tag_page(unsigned char *page, uint64_t tag)
{
	memset(page, 0, PAGE_SIZE);
	if (tag)
		tag_block(tag, page + tag_offset(tag));
}

/* Overwrite the whole page, so that its content is a function of tag. */
static bool write_tag(struct ctx *c, struct mm *mm, hva_t page_addr, uint64_t tag)
{
	int64_t r;

	tag_page(c->wbuf, tag);
	r = mm_write(mm, page_addr, c->wbuf, PAGE_SIZE);
	if (r != (int64_t)PAGE_SIZE)
		return demo_fail(c, "mm_write at %#llx returned %lld",
				 (unsigned long long)page_addr, (long long)r);
	return true;
}

static bool compare_page(struct ctx *c, const unsigned char *got, hva_t addr,
			 uint64_t tag, const char *what)
{
	tag_page(c->exp, tag);
	if (memcmp(got, c->exp, PAGE_SIZE) == 0) {
		c->verified++;
		return true;
	}
	size_t i = 0;
	while (got[i] == c->exp[i])
		i++;
	return demo_fail(c, "%s: page %#llx byte %zu is 0x%02x, expected 0x%02x (%s)",
			 what, (unsigned long long)addr, i, got[i], c->exp[i],
			 tag ? "this side's last write" : "zeroes");
}

static bool verify_page(struct ctx *c, struct mm *mm, hva_t addr, uint64_t tag,
			const char *what)
{
	int64_t r = mm_read(mm, addr, c->buf, PAGE_SIZE);

	if (r != (int64_t)PAGE_SIZE)
		return demo_fail(c, "%s: mm_read at %#llx returned %lld", what,
				 (unsigned long long)addr, (long long)r);
	return compare_page(c, c->buf, addr, tag, what);
}

static bool verify_range(struct ctx *c, struct mm *mm, hva_t addr,
			 const uint64_t *tags, uint64_t n, const char *what)
{
	for (uint64_t p = 0; p < n; p++)
		if (!verify_page(c, mm, addr + p * PAGE_SIZE, tags[p], what))
			return false;
	return true;
}

/* Look at a page through GUP, as a secondary MMU would. want_rw: 1 must be
 * writable, 0 must not be, -1 either. */
static bool gup_check(struct ctx *c, struct mm *mm, hva_t addr, uint64_t tag,
		      int want_rw, const char *what)
{
	struct page *page;
	bool writable;
	int err = get_user_page(mm, addr, 0, &page, &writable);

	if (err)
		return demo_fail(c, "%s: get_user_page(%#llx) = %d", what,
				 (unsigned long long)addr, err);
	bool ok = compare_page(c, page_address(page), addr, tag, what);
	put_page(page);
	if (ok && want_rw >= 0 && writable != (bool)want_rw)
		return demo_fail(c, "%s: get_user_page(%#llx) says %s, expected %s", what,
				 (unsigned long long)addr, writable ? "writable" : "read-only",
				 want_rw ? "writable" : "read-only");
	return ok;
}

/* The call just made must have reached the subscriber with event e. */
static bool expect_notified(struct ctx *c, struct demo_mn *dm, enum mmu_notifier_event e,
			    unsigned long before, const char *call)
{
	if (!dm->attached || dm_starts(dm, e) > before)
		return true;
	return demo_fail(c, "%s sent no %s invalidation to the subscriber", call,
			 mmu_notifier_event_name(e));
}

/* ---- subscription lifetime --------------------------------------------- */

static bool demo_mn_attach(struct ctx *c, struct demo_mn *dm, struct mm *mm)
{
	int err;

	memset(dm, 0, sizeof(*dm));
	dm->mn.ops = &demo_mn_ops;
	err = mmu_notifier_register(&dm->mn, mm);
	if (err)
		return demo_fail(c, "mmu_notifier_register = %d", err);
	dm->attached = true;
	atomic_fetch_add(&c->d->subscriptions, 1);
	return true;
}

/* After the mm's last mmput: release must have run once; unregister. */
static void demo_mn_detach(struct ctx *c, struct demo_mn *dm, struct mm *mm)
{
	struct demo *d = c->d;
	int err;

	if (!dm->attached)
		return;
	if (atomic_load(&dm->releases) != 1)
		demo_fail(c, "exit ran release %u times, expected once",
			  atomic_load(&dm->releases));
	err = mmu_notifier_unregister(&dm->mn, mm);
	if (err)
		demo_fail(c, "mmu_notifier_unregister after exit = %d", err);
	if (atomic_load(&dm->releases) != 1)
		demo_fail(c, "release ran %u times after unregister, expected once",
			  atomic_load(&dm->releases));
	if (atomic_load(&dm->late))
		demo_fail(c, "a notifier callback arrived after release");
	if (atomic_load(&dm->bad_range))
		demo_fail(c, "a notifier range was malformed");
	if (atomic_load(&dm->unbalanced) || atomic_load(&dm->in_progress) != 0)
		demo_fail(c, "invalidate_range start/end unbalanced (%ld open)",
			  atomic_load(&dm->in_progress));
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++) {
		unsigned long s = atomic_load(&dm->starts[e]), en = atomic_load(&dm->ends[e]);

		if (s != en)
			demo_fail(c, "%lu %s starts but %lu ends",
				  s, mmu_notifier_event_name(e), en);
		atomic_fetch_add(&d->starts[e], s);
		atomic_fetch_add(&d->ends[e], en);
	}
	atomic_fetch_add(&d->change_pte, atomic_load(&dm->change_pte));
	atomic_fetch_add(&d->releases, atomic_load(&dm->releases));
	dm->attached = false;
}

/* ---- fork phase -------------------------------------------------------- */

#define PLAN_PARENT 1u
#define PLAN_CHILD  2u

struct fork_phase {
	struct ctx cc;              /* the child thread's context */
	struct mm *child;
	hva_t addr;
	uint64_t n;
	const uint64_t *base;       /* tags at fork time */
	const uint8_t *plan;
	uint64_t *ctags;            /* the child's view */
	hva_t pers;
	const uint64_t *pers_tags;
	pthread_barrier_t written;  /* both sides wrote and checked once */
};

static void *child_main(void *arg)
{
	struct fork_phase *fp = arg;
	struct ctx *c = &fp->cc;
	struct demo_mn dm;

	demo_mn_attach(c, &dm, fp->child);
	for (uint64_t p = 0; p < fp->n; p++) {
		fp->ctags[p] = fp->base[p];
		if ((fp->plan[p] & PLAN_CHILD) && !atomic_load(&c->d->stop)) {
			fp->ctags[p] = new_tag(c);
			write_tag(c, fp->child, fp->addr + p * PAGE_SIZE, fp->ctags[p]);
		}
	}
	note_peak(c->d);
	if (!atomic_load(&c->d->stop))
		verify_range(c, fp->child, fp->addr, fp->ctags, fp->n,
			     "child after its writes");
	/* Always meet the parent, even after a failure. */
	pthread_barrier_wait(&fp->written);
	/* The parent's writes are done: none may show here. */
	if (!atomic_load(&c->d->stop))
		verify_range(c, fp->child, fp->addr, fp->ctags, fp->n,
			     "child after the parent's writes");
	if (!atomic_load(&c->d->stop))
		verify_range(c, fp->child, fp->pers, fp->pers_tags, PERSIST_PAGES,
			     "child's copy of the long-lived region");
	mmput(fp->child);       /* exit: release, unmap, free */
	demo_mn_detach(c, &dm, fp->child);
	return NULL;
}

/*
 * Fork the process, and let parent and child write concurrently. On return
 * the child has exited and tags[] is the parent's view.
 */
static bool fork_phase(struct ctx *c, struct mm *mm, struct demo_mn *dm, hva_t addr,
		       uint64_t n, uint64_t *tags, hva_t pers, const uint64_t *pers_tags)
{
	struct demo *d = c->d;
	struct fork_phase *fp;
	unsigned long before = dm_starts(dm, MMU_NOTIFY_PROTECTION_PAGE);
	pthread_t thread;
	bool ok = false;
	int err;

	fp = calloc(1, sizeof(*fp));
	uint8_t *plan = calloc(n, 1);
	uint64_t *base = calloc(n, sizeof(uint64_t)), *ctags = calloc(n, sizeof(uint64_t));
	if (!fp || !plan || !base || !ctags) {
		demo_fail(c, "out of memory (the demo's own)");
		goto out_free;
	}
	for (uint64_t p = 0; p < n; p++)
		plan[p] = (uint8_t)(rnd(c) & (PLAN_PARENT | PLAN_CHILD));
	memcpy(base, tags, n * sizeof(uint64_t));

	err = mm_fork(mm, &fp->child);
	if (err) {
		demo_fail(c, "mm_fork = %d", err);
		goto out_free;
	}
	atomic_fetch_add(&d->forks, 1);
	atomic_fetch_add(&d->mms, 1);
	if (!expect_notified(c, dm, MMU_NOTIFY_PROTECTION_PAGE, before, "mm_fork"))
		goto out_put_child;
	/* Fork write-protected the parent: GUP sees the page read-only. */
	uint64_t probe = rnd_range(c, 0, n - 1);
	if (!gup_check(c, mm, addr + probe * PAGE_SIZE, tags[probe], 0,
		       "parent right after fork"))
		goto out_put_child;

	fp->cc.d = d;
	fp->cc.id = c->id;
	fp->cc.child = true;
	fp->cc.life = c->life;
	fp->cc.iter = c->iter;
	fp->cc.stream = prng_mix64(c->stream + 1) ^ ((uint64_t)atomic_load(&d->forks) << 32);
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
		demo_fail(c, "pthread_create for the child: %s", strerror(err));
		goto out_put_child;
	}

	for (uint64_t p = 0; p < n && !atomic_load(&d->stop); p++) {
		if (plan[p] & PLAN_PARENT) {
			unsigned long cb = dm_starts(dm, MMU_NOTIFY_CLEAR);

			tags[p] = new_tag(c);
			if (!write_tag(c, mm, addr + p * PAGE_SIZE, tags[p]))
				break;
			/* A COW break replaces a mapped frame: it must notify.
			 * (A reuse after the child's own copy needs none.) */
			if ((plan[p] & PLAN_CHILD) == 0 &&
			    !expect_notified(c, dm, MMU_NOTIFY_CLEAR, cb, "a COW break"))
				break;
		}
	}
	note_peak(d);
	if (!atomic_load(&d->stop))
		verify_range(c, mm, addr, tags, n, "parent after its writes");
	pthread_barrier_wait(&fp->written);
	/* The child's writes are done: none may show here. */
	if (!atomic_load(&d->stop))
		verify_range(c, mm, addr, tags, n, "parent after the child's writes");
	pthread_join(thread, NULL);
	pthread_barrier_destroy(&fp->written);
	c->verified += fp->cc.verified;
	ok = !atomic_load(&d->stop);
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

static bool iteration(struct ctx *c, struct mm *mm, struct demo_mn *dm, hva_t pers,
		      uint64_t *pers_tags)
{
	struct demo *d = c->d;
	uint64_t n = rnd_range(c, REGION_MIN, d->region_max);
	uint64_t *tags = calloc(n, sizeof(uint64_t));
	unsigned long before;
	hva_t addr;
	int err;
	bool ok = false;

	if (!tags)
		return demo_fail(c, "out of memory (the demo's own)");
	err = mm_mmap(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, &addr);
	if (err) {
		demo_fail(c, "mm_mmap(%llu pages) = %d", (unsigned long long)n, err);
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
	note_peak(d);
	if (!verify_range(c, mm, addr, tags, n, "after writing"))
		goto out;
	uint64_t probe = rnd_range(c, 0, n - 1);
	if (!gup_check(c, mm, addr + probe * PAGE_SIZE, tags[probe], 1, "written page"))
		goto out;

	/* 3: fork and write on both sides. */
	if (!fork_phase(c, mm, dm, addr, n, tags, pers, pers_tags))
		goto out;

	/* 4: MADV_DONTNEED reads back zeroes. */
	uint64_t a = rnd_range(c, 0, n - 1), b = rnd_range(c, a + 1, n);
	before = dm_starts(dm, MMU_NOTIFY_CLEAR);
	err = mm_madvise(mm, addr + a * PAGE_SIZE, (b - a) * PAGE_SIZE, MADV_DONTNEED);
	if (err) {
		demo_fail(c, "madvise(DONTNEED) = %d", err);
		goto out;
	}
	if (!expect_notified(c, dm, MMU_NOTIFY_CLEAR, before, "MADV_DONTNEED"))
		goto out;
	for (uint64_t p = a; p < b; p++)
		tags[p] = 0;
	if (!verify_range(c, mm, addr, tags, n, "after MADV_DONTNEED"))
		goto out;

	/* 5: mprotect read-only: writes fail, reads work; then writable again. */
	uint64_t ro = rnd_range(c, 0, n - 1), ro_end = rnd_range(c, ro + 1, n);
	before = dm_starts(dm, MMU_NOTIFY_PROTECTION_VMA);
	err = mm_mprotect(mm, addr + ro * PAGE_SIZE, (ro_end - ro) * PAGE_SIZE, PROT_READ);
	if (err) {
		demo_fail(c, "mprotect(PROT_READ) = %d", err);
		goto out;
	}
	if (!expect_notified(c, dm, MMU_NOTIFY_PROTECTION_VMA, before, "mprotect(PROT_READ)"))
		goto out;
	{
		unsigned char byte = 0xa5;
		struct page *page;
		hva_t w = addr + rnd_range(c, ro, ro_end - 1) * PAGE_SIZE;
		int64_t r = mm_write(mm, w, &byte, 1);

		if (r != -EFAULT) {
			demo_fail(c, "mm_write to a read-only page returned %lld, expected -EFAULT",
				  (long long)r);
			goto out;
		}
		err = get_user_page(mm, w, FOLL_WRITE, &page, NULL);
		if (err != -EFAULT) {
			if (!err)
				put_page(page);
			demo_fail(c, "get_user_page(FOLL_WRITE) on a read-only page = %d, "
				  "expected -EFAULT", err);
			goto out;
		}
		c->efaults += 2;
	}
	if (!gup_check(c, mm, addr + ro * PAGE_SIZE, tags[ro], 0, "read-only page"))
		goto out;
	if (ro > 0) {
		tags[ro - 1] = new_tag(c);
		if (!write_tag(c, mm, addr + (ro - 1) * PAGE_SIZE, tags[ro - 1]))
			goto out;
	}
	if (!verify_range(c, mm, addr, tags, n, "after mprotect(PROT_READ)"))
		goto out;
	err = mm_mprotect(mm, addr + ro * PAGE_SIZE, (ro_end - ro) * PAGE_SIZE,
			  PROT_READ | PROT_WRITE);
	if (err) {
		demo_fail(c, "mprotect(PROT_READ|PROT_WRITE) = %d", err);
		goto out;
	}
	tags[ro] = new_tag(c);
	if (!write_tag(c, mm, addr + ro * PAGE_SIZE, tags[ro]) ||
	    !verify_range(c, mm, addr, tags, n, "after mprotect back to read-write"))
		goto out;

	/* 6: the long-lived region. */
	uint64_t pp = rnd_range(c, 0, PERSIST_PAGES - 1);
	pers_tags[pp] = new_tag(c);
	if (!write_tag(c, mm, pers + pp * PAGE_SIZE, pers_tags[pp]) ||
	    !verify_range(c, mm, pers, pers_tags, PERSIST_PAGES, "long-lived region"))
		goto out;

	/* 7: munmap a middle chunk, then everything. */
	uint64_t m = rnd_range(c, 0, n - 1), m_end = rnd_range(c, m + 1, n);
	before = dm_starts(dm, MMU_NOTIFY_UNMAP);
	err = mm_munmap(mm, addr + m * PAGE_SIZE, (m_end - m) * PAGE_SIZE);
	if (err) {
		demo_fail(c, "munmap(middle) = %d", err);
		goto out;
	}
	if (!expect_notified(c, dm, MMU_NOTIFY_UNMAP, before, "munmap"))
		goto out;
	{
		int64_t r = mm_read(mm, addr + m * PAGE_SIZE, c->buf, 1);

		if (r != -EFAULT) {
			demo_fail(c, "mm_read of an unmapped page returned %lld, expected -EFAULT",
				  (long long)r);
			goto out;
		}
		c->efaults++;
	}
	if (!verify_range(c, mm, addr, tags, m, "below a munmapped chunk") ||
	    !verify_range(c, mm, addr + m_end * PAGE_SIZE, tags + m_end, n - m_end,
			  "above a munmapped chunk"))
		goto out;
	err = mm_munmap(mm, addr, n * PAGE_SIZE);
	if (err) {
		demo_fail(c, "munmap(region) = %d", err);
		goto out;
	}
	ok = true;
out:
	free(tags);
	atomic_fetch_add(&d->iterations, 1);
	return ok;
}

static bool time_is_up(struct demo *d)
{
	return d->deadline_ns && clock_now_ns() >= d->deadline_ns;
}

static void *proc_main(void *arg)
{
	struct ctx *c = arg;
	struct demo *d = c->d;
	uint64_t done = 0, limit = d->o->iterations;

	while (!atomic_load(&d->stop) && !time_is_up(d) && (!limit || done < limit)) {
		uint64_t pers_tags[PERSIST_PAGES] = { 0 };
		struct demo_mn dm;
		struct mm *mm;
		hva_t pers;
		int err;

		c->life++;
		c->iter = 0;
		err = mm_create(d->host, &mm);
		if (err) {
			demo_fail(c, "mm_create = %d", err);
			break;
		}
		atomic_fetch_add(&d->mms, 1);
		if (!demo_mn_attach(c, &dm, mm))
			goto out_exit;
		err = mm_mmap(mm, 0, PERSIST_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, &pers);
		if (err) {
			demo_fail(c, "mm_mmap(long-lived) = %d", err);
			goto out_exit;
		}
		for (unsigned int p = 0; p < PERSIST_PAGES; p++) {
			pers_tags[p] = new_tag(c);
			if (!write_tag(c, mm, pers + p * PAGE_SIZE, pers_tags[p]))
				goto out_exit;
		}
		for (uint64_t i = rnd_range(c, 1, 4); i > 0; i--) {
			c->iter++;
			if (!iteration(c, mm, &dm, pers, pers_tags))
				break;
			done++;
			if (atomic_load(&d->stop) || time_is_up(d) || (limit && done >= limit))
				break;
		}
		if (!atomic_load(&d->stop))
			verify_range(c, mm, pers, pers_tags, PERSIST_PAGES,
				     "long-lived region at exit");
out_exit:
		mmput(mm);      /* exit with the region still mapped */
		demo_mn_detach(c, &dm, mm);
	}
	return NULL;
}

/* ---- the command ------------------------------------------------------- */

void host_demo_usage(FILE *f)
{
	fprintf(f,
		"usage: tandem host-demo [options]\n"
		"\nThreads act as processes on the primary MMU: mmap, write, fork (COW),\n"
		"MADV_DONTNEED, mprotect, munmap, exit; every page is read back and\n"
		"checked, every notifier call counted. Ends with 'verification: OK'\n"
		"(exit 0) or 'verification: FAILED: <what>' (exit 1).\n"
		"\noptions:\n"
		"  -m, --host-mem SIZE    host RAM, K/M/G suffix (default 256M; 16M..64G)\n"
		"  -p, --procs N          processes, one thread each (default 4; 1..%d)\n"
		"  -d, --duration SECS    run time, e.g. 3, 0.5, 250ms (default 3)\n"
		"  -i, --iterations N     iterations per process; without --duration,\n"
		"                         no time limit. A given --seed replays the same\n"
		"                         operations (counts that hang on thread timing,\n"
		"                         e.g. which side of a fork copies, still vary)\n"
		"  -s, --seed N           random seed (default 1)\n"
		"      --json             print the summary as JSON\n"
		"      --break WHAT       testing the checks: make the host skip one class\n"
		"                         of notifier call (munmap-notify, dontneed-notify,\n"
		"                         mprotect-notify, cow-notify, fork-notify); the run\n"
		"                         must then end in 'verification: FAILED'\n"
		"  -h, --help             this text\n", MAX_PROCS);
}

static void print_text(struct demo *d, const struct host_stats *st, double elapsed,
		       int inv, uint64_t in_use, const char *verdict)
{
	const struct demo_opts *o = d->o;
	static const enum vm_event_item shown[] = {
		PGFAULT, PGFAULT_ZERO, PGFAULT_ZERO_PAGE, COW_BREAK, COW_REUSE,
		PGUNMAP, GUP_CALLS, PGALLOC, PGFREE,
	};

	printf("tandem host-demo: %u procs, host-mem %llu MiB, seed %llu, %.2f s\n",
	       o->procs, (unsigned long long)(o->host_mem >> 20),
	       (unsigned long long)o->seed, elapsed);
	printf("  address spaces      %lu (%lu of them forked children)\n",
	       atomic_load(&d->mms), atomic_load(&d->forks));
	printf("  iterations          %lu\n", atomic_load(&d->iterations));
	printf("  pages verified      %lu\n", atomic_load(&d->pages_verified));
	printf("  -EFAULT checks      %lu\n", atomic_load(&d->efault_checks));
	printf("host events:\n");
	for (size_t i = 0; i < ARRAY_SIZE(shown); i++)
		printf("  %-19s %llu\n", vm_event_name(shown[i]),
		       (unsigned long long)st->events[shown[i]]);
	printf("notifier calls (invalidate_range start/end, by event):\n");
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++) {
		unsigned long s = atomic_load(&d->starts[e]), en = atomic_load(&d->ends[e]);

		if (s || en)
			printf("  %-19s %lu/%lu\n", mmu_notifier_event_name(e), s, en);
	}
	printf("  change_pte          %lu\n", atomic_load(&d->change_pte));
	printf("  release             %lu (subscriptions %lu)\n",
	       atomic_load(&d->releases), atomic_load(&d->subscriptions));
	printf("frames in use         peak %lu (sampled; %lu KiB), end %llu\n",
	       atomic_load(&d->peak_frames), atomic_load(&d->peak_frames) * (PAGE_SIZE >> 10),
	       (unsigned long long)in_use);
	printf("page-table pages      peak %lu, end %llu\n", atomic_load(&d->peak_pgtables),
	       (unsigned long long)st->pgtable_pages);
	printf("host_check_invariants %d\n", inv);
	printf("host_frames_in_use    %llu\n", (unsigned long long)in_use);
	if (verdict)
		printf("verification: FAILED: %s\n", verdict);
	else
		printf("verification: OK\n");
}

static void print_json(struct demo *d, const struct host_stats *st, double elapsed,
		       int inv, uint64_t in_use, const char *verdict)
{
	const struct demo_opts *o = d->o;
	static const enum vm_event_item shown[] = {
		PGFAULT, PGFAULT_ZERO, PGFAULT_ZERO_PAGE, COW_BREAK, COW_REUSE,
		PGUNMAP, GUP_CALLS, PGALLOC, PGFREE,
	};

	printf("{\"command\": \"host-demo\", \"procs\": %u, \"host_mem\": %llu, "
	       "\"seed\": %llu, \"duration_s\": %.3f, \"iterations_per_proc\": %llu, "
	       "\"elapsed_s\": %.3f,\n", o->procs, (unsigned long long)o->host_mem,
	       (unsigned long long)o->seed, (double)o->duration_ns / 1e9,
	       (unsigned long long)o->iterations, elapsed);
	printf(" \"address_spaces\": %lu, \"forks\": %lu, \"iterations\": %lu, "
	       "\"pages_verified\": %lu, \"efault_checks\": %lu,\n",
	       atomic_load(&d->mms), atomic_load(&d->forks), atomic_load(&d->iterations),
	       atomic_load(&d->pages_verified), atomic_load(&d->efault_checks));
	printf(" \"events\": {");
	for (size_t i = 0; i < ARRAY_SIZE(shown); i++)
		printf("%s\"%s\": %llu", i ? ", " : "", vm_event_name(shown[i]),
		       (unsigned long long)st->events[shown[i]]);
	printf("},\n \"notifier\": {\"subscriptions\": %lu, \"release\": %lu, "
	       "\"change_pte\": %lu, \"events\": {", atomic_load(&d->subscriptions),
	       atomic_load(&d->releases), atomic_load(&d->change_pte));
	for (int e = 0; e < MMU_NOTIFY_NR_EVENTS; e++)
		printf("%s\"%s\": {\"starts\": %lu, \"ends\": %lu}", e ? ", " : "",
		       mmu_notifier_event_name(e), atomic_load(&d->starts[e]),
		       atomic_load(&d->ends[e]));
	printf("}},\n \"frames_in_use\": {\"peak\": %lu, \"end\": %llu}, "
	       "\"pgtable_pages\": {\"peak\": %lu, \"end\": %llu},\n",
	       atomic_load(&d->peak_frames), (unsigned long long)in_use,
	       atomic_load(&d->peak_pgtables), (unsigned long long)st->pgtable_pages);
	printf(" \"host_check_invariants\": %d, \"host_frames_in_use\": %llu, "
	       "\"verification\": \"%s\"", inv, (unsigned long long)in_use,
	       verdict ? "FAILED" : "OK");
	if (verdict) {
		printf(", \"failure\": ");
		json_print_string(stdout, verdict);
	}
	printf("}\n");
}

static int parse_opts(int argc, char **argv, struct demo_opts *o)
{
	static const struct option longopts[] = {
		{ "host-mem", required_argument, NULL, 'm' },
		{ "procs", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "seed", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "break", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool duration_set = false;
	size_t k;
	uint64_t v;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":m:p:d:i:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_size_arg("host-demo", "host-mem", optarg, HOST_RAM_MIN,
					 HOST_RAM_MAX, &o->host_mem))
				return EXIT_USAGE;
			if (!PAGE_ALIGNED(o->host_mem)) {
				fprintf(stderr, "tandem host-demo: --host-mem: '%s': not a "
					"multiple of the 4K page size\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'p':
			if (cli_u64_arg("host-demo", "procs", optarg, 1, MAX_PROCS, &v))
				return EXIT_USAGE;
			o->procs = (unsigned int)v;
			break;
		case 'd':
			if (cli_duration_arg("host-demo", "duration", optarg, &o->duration_ns))
				return EXIT_USAGE;
			duration_set = true;
			break;
		case 'i':
			if (cli_u64_arg("host-demo", "iterations", optarg, 1, UINT64_MAX,
					&o->iterations))
				return EXIT_USAGE;
			break;
		case 's':
			if (cli_u64_arg("host-demo", "seed", optarg, 0, UINT64_MAX, &o->seed))
				return EXIT_USAGE;
			break;
		case 'j':
			o->json = true;
			break;
		case 'b':
			for (k = 0; k < ARRAY_SIZE(break_names); k++)
				if (strcmp(optarg, break_names[k].name) == 0)
					break;
			if (k == ARRAY_SIZE(break_names)) {
				fprintf(stderr, "tandem host-demo: --break: '%s': unknown (have:",
					optarg);
				for (k = 0; k < ARRAY_SIZE(break_names); k++)
					fprintf(stderr, " %s", break_names[k].name);
				fprintf(stderr, ")\n");
				return EXIT_USAGE;
			}
			o->breaks |= break_names[k].bit;
			break;
		case 'h':
			host_demo_usage(stdout);
			return -1;
		default:
			cli_getopt_error("host-demo", c, argv);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tandem host-demo: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (o->iterations && !duration_set)
		o->duration_ns = 0;
	return 0;
}

int cmd_host_demo(int argc, char **argv)
{
	struct demo_opts o = {
		.host_mem = 256ULL << 20,
		.procs = 4,
		.duration_ns = 3000000000ULL,
		.seed = 1,
	};
	struct host_config cfg = { 0 };
	struct ctx *ctxs[MAX_PROCS] = { 0 };
	pthread_t threads[MAX_PROCS];
	unsigned int started = 0;
	struct demo *d;
	int err, status;

	status = parse_opts(argc, argv, &o);
	if (status)
		return status < 0 ? 0 : status;

	/* Each process needs its long-lived region, its iteration region,
	 * the COW copies of both sides, and page tables for two mms. */
	uint64_t ram_pages = o.host_mem / PAGE_SIZE;
	uint64_t usable = ram_pages - MAX(16, ram_pages / 256) - 64;
	uint64_t per_proc = usable / o.procs;
	uint64_t region_max = per_proc > 3 * PERSIST_PAGES ?
			      (per_proc - 3 * PERSIST_PAGES) / 2 : 0;
	if (region_max > REGION_MAX)
		region_max = REGION_MAX;
	if (region_max < REGION_MIN) {
		fprintf(stderr, "tandem host-demo: --host-mem %llu MiB is too small for %u "
			"procs\n", (unsigned long long)(o.host_mem >> 20), o.procs);
		return EXIT_USAGE;
	}

	d = calloc(1, sizeof(*d));
	if (!d) {
		fprintf(stderr, "tandem host-demo: out of memory\n");
		return 1;
	}
	d->o = &o;
	d->region_max = (unsigned int)region_max;
	pthread_mutex_init(&d->fail_lock, NULL);
	cfg.ram_bytes = o.host_mem;
	cfg.breaks = o.breaks;
	err = host_create(&cfg, &d->host);
	if (err) {
		fprintf(stderr, "tandem host-demo: host_create: %s\n", strerror(-err));
		pthread_mutex_destroy(&d->fail_lock);
		free(d);
		return 1;
	}

	d->start_ns = clock_now_ns();
	d->deadline_ns = o.duration_ns ? d->start_ns + o.duration_ns : 0;
	for (unsigned int i = 0; i < o.procs; i++) {
		ctxs[i] = calloc(1, sizeof(struct ctx));
		if (!ctxs[i]) {
			fprintf(stderr, "tandem host-demo: out of memory\n");
			atomic_store(&d->stop, true);
			break;
		}
		ctxs[i]->d = d;
		ctxs[i]->id = i;
		ctxs[i]->rng = prng_seed(o.seed, i);
		ctxs[i]->stream = prng_mix64((uint64_t)i << 1);
		err = pthread_create(&threads[i], NULL, proc_main, ctxs[i]);
		if (err) {
			demo_fail(ctxs[i], "pthread_create: %s", strerror(err));
			free(ctxs[i]);
			ctxs[i] = NULL;
			break;
		}
		started++;
	}
	for (unsigned int i = 0; i < started; i++) {
		pthread_join(threads[i], NULL);
		atomic_fetch_add(&d->pages_verified, ctxs[i]->verified);
		atomic_fetch_add(&d->efault_checks, ctxs[i]->efaults);
		free(ctxs[i]);
	}
	double elapsed = (double)(clock_now_ns() - d->start_ns) / 1e9;

	/* Every process has exited: the host must be back to empty. */
	struct host_stats st;
	host_get_stats(d->host, &st);
	int inv = host_check_invariants(d->host);
	uint64_t in_use = host_frames_in_use(d->host);
	char verdict[640];
	const char *why = NULL;

	if (atomic_load(&d->failed)) {
		why = d->failure;
	} else if (started < o.procs) {
		why = "could not start every process";
	} else if (inv != 0) {
		why = "host_check_invariants failed";
	} else if (in_use != 0 || st.pgtable_pages != 0 || st.nr_mms != 0) {
		snprintf(verdict, sizeof(verdict), "leak at exit: %llu frames in use, "
			 "%llu page-table pages, %llu mms",
			 (unsigned long long)in_use, (unsigned long long)st.pgtable_pages,
			 (unsigned long long)st.nr_mms);
		why = verdict;
	} else if (atomic_load(&d->iterations) == 0) {
		why = "no iteration ran";
	}
	if (o.json)
		print_json(d, &st, elapsed, inv, in_use, why);
	else
		print_text(d, &st, elapsed, inv, in_use, why);
	status = why ? 1 : 0;

	err = host_destroy(d->host);
	if (err) {
		fprintf(stderr, "tandem host-demo: host_destroy: %s\n", strerror(-err));
		status = 1;
	}
	pthread_mutex_destroy(&d->fail_lock);
	free(d);
	return status;
}
