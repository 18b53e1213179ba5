/* SPDX-License-Identifier: MIT */
/*
 * bench_host.c - `tandem bench host`: the primary MMU's basic costs beside
 * what the real kernel charges for the same thing on this machine.
 *
 *   measure            tandem (per page / per call)       native baseline
 *   demand_zero_fault  get_user_page(FOLL_WRITE) + 1-byte  first write of one byte to
 *                      write + put_page, fresh region      each page of fresh mmap'd
 *                                                          MAP_ANONYMOUS memory
 *   cow_fault          the same in the parent after        the same in a real parent
 *                      mm_fork (child alive: copy path)    after fork() (child alive)
 *   munmap_page        mm_munmap of a populated region     munmap(2) of a populated one
 *   notifier_call      invalidate_range_start + _end with  the same loop with 0
 *                      1 subscriber counting calls         subscribers; and, for scale,
 *                                                          a pthread mutex lock+unlock
 *
 * Native regions are MADV_NOHUGEPAGE, so the kernel faults, copies and
 * unmaps 4 KiB pages as tandem does (this machine's THP would otherwise
 * serve a first touch 2 MiB at a time).
 *
 * Every native baseline is measured before the host exists: fork() would
 * otherwise write-protect the host's RAM arena in this process, and the
 * real kernel's COW faults on it would land in tandem's figures. The arena
 * itself is pre-faulted (host_config.prefault) for the same reason.
 *
 * Each measure runs --repeat times; lines carry the median. A measure also
 * checks, through the host's event counters, that it exercised the path it
 * names (e.g. one cow_break per page), and the run ends with the host's
 * invariant check and every frame returned.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli/cli.h"
#include "base/compiler.h"
#include "base/xalloc.h"
#include "tandem/host.h"
#include "tandem/mmu_notifier.h"
#include "base/clock.h"

#define NOTIFY_START 0x100000ULL  /* any page-aligned range will do */

struct samples {
	double *v;
	unsigned int n;
};

struct host_bench {
	const struct bench_opts *o;
	uint64_t pages;
	uint64_t bytes;
	struct host *host;
	struct mm *mm;
	/* medians need every sample: one array per series */
	struct samples native_zero, native_cow, native_unmap, native_mutex;
	struct samples zero, cow, unmap, notify0, notify1;
};

static int fail(const char *what, int err)
{
	fprintf(stderr, "tandem bench host: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return -1;
}

/* ---- native baselines -------------------------------------------------- */

static char *native_region(uint64_t bytes, bool touch)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Best effort: without THP support the call fails, 4 KiB anyway. */
	(void)madvise(p, bytes, MADV_NOHUGEPAGE);
	if (touch)
		for (uint64_t off = 0; off < bytes; off += PAGE_SIZE)
			((volatile char *)p)[off] = 1;
	return p;
}

static void touch_pages(char *p, uint64_t bytes, char val)
{
	for (uint64_t off = 0; off < bytes; off += PAGE_SIZE)
		((volatile char *)p)[off] = val;
}

static int native_zero_once(struct host_bench *hb, double *ns)
{
	char *p = native_region(hb->bytes, false);
	uint64_t t0;

	if (!p)
		return fail("native mmap", errno);
	t0 = clock_now_ns();
	touch_pages(p, hb->bytes, 1);
	*ns = (double)(clock_now_ns() - t0) / (double)hb->pages;
	munmap(p, hb->bytes);
	return 0;
}

static int native_cow_once(struct host_bench *hb, double *ns)
{
	char *p = native_region(hb->bytes, true);
	int fds[2], status;
	uint64_t t0;
	pid_t pid;

	if (!p)
		return fail("native mmap", errno);
	if (pipe(fds)) {
		munmap(p, hb->bytes);
		return fail("pipe", errno);
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		munmap(p, hb->bytes);
		return fail("fork", errno);
	}
	if (pid == 0) {
		/* The child keeps the pages shared until the parent is done. */
		char c;

		close(fds[1]);
		while (read(fds[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(fds[0]);
	t0 = clock_now_ns();
	touch_pages(p, hb->bytes, 2);
	*ns = (double)(clock_now_ns() - t0) / (double)hb->pages;
	close(fds[1]);          /* EOF: the child exits */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	munmap(p, hb->bytes);
	return 0;
}

static int native_unmap_once(struct host_bench *hb, double *ns)
{
	char *p = native_region(hb->bytes, true);
	uint64_t t0;

	if (!p)
		return fail("native mmap", errno);
	t0 = clock_now_ns();
	munmap(p, hb->bytes);
	*ns = (double)(clock_now_ns() - t0) / (double)hb->pages;
	return 0;
}

static void native_mutex_once(struct host_bench *hb, double *ns)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	uint64_t calls = hb->o->calls, t0 = clock_now_ns();

	for (uint64_t i = 0; i < calls; i++) {
		pthread_mutex_lock(&m);
		pthread_mutex_unlock(&m);
	}
	*ns = (double)(clock_now_ns() - t0) / (double)calls;
	pthread_mutex_destroy(&m);
}

/* ---- tandem ------------------------------------------------------------ */

static uint64_t event(struct host *host, enum vm_event_item item)
{
	struct host_stats st;

	host_get_stats(host, &st);
	return st.events[item];
}

/* Expect the named event to have moved by exactly `want` since `before`. */
static int expect_events(struct host_bench *hb, const char *measure,
			 enum vm_event_item item, uint64_t before, uint64_t want)
{
	uint64_t got = event(hb->host, item) - before;

	if (got == want)
		return 0;
	fprintf(stderr, "tandem bench host: %s: expected %llu %s events, saw %llu "
		"(the measure did not take the path it names)\n", measure,
		(unsigned long long)want, vm_event_name(item), (unsigned long long)got);
	return -1;
}

/*
 * Write one byte to each page of [addr, addr + bytes) the way a secondary
 * MMU's fault would reach it: GUP for write, touch, drop the reference.
 */
static int gup_write_pages(struct mm *mm, hva_t addr, uint64_t pages, char val)
{
	for (uint64_t i = 0; i < pages; i++) {
		struct page *page;
		int err = get_user_page(mm, addr + i * PAGE_SIZE, FOLL_WRITE, &page, NULL);

		if (err)
			return err;
		*(volatile char *)page_address(page) = val;
		put_page(page);
	}
	return 0;
}

static int map_region(struct host_bench *hb, struct mm *mm, bool populate, hva_t *addr)
{
	int err = mm_mmap(mm, 0, hb->bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, addr);

	if (err)
		return fail("mm_mmap", err);
	if (populate) {
		err = gup_write_pages(mm, *addr, hb->pages, 1);
		if (err) {
			mm_munmap(mm, *addr, hb->bytes);
			return fail("populating the region", err);
		}
	}
	return 0;
}

static int host_zero_once(struct host_bench *hb, double *ns)
{
	uint64_t before, t0, t;
	hva_t addr;
	int err;

	if (map_region(hb, hb->mm, false, &addr))
		return -1;
	before = event(hb->host, PGFAULT_ZERO);
	t0 = clock_now_ns();
	err = gup_write_pages(hb->mm, addr, hb->pages, 1);
	t = clock_now_ns() - t0;
	if (!err && expect_events(hb, "demand_zero_fault", PGFAULT_ZERO, before, hb->pages))
		err = -EPROTO;
	mm_munmap(hb->mm, addr, hb->bytes);
	if (err)
		return err == -EPROTO ? -1 : fail("demand-zero writes", err);
	*ns = (double)t / (double)hb->pages;
	return 0;
}

static int host_cow_once(struct host_bench *hb, double *ns)
{
	uint64_t before, t0, t;
	struct mm *child;
	hva_t addr;
	int err;

	if (map_region(hb, hb->mm, true, &addr))
		return -1;
	err = mm_fork(hb->mm, &child);
	if (err) {
		mm_munmap(hb->mm, addr, hb->bytes);
		return fail("mm_fork", err);
	}
	before = event(hb->host, COW_BREAK);
	t0 = clock_now_ns();
	err = gup_write_pages(hb->mm, addr, hb->pages, 2);
	t = clock_now_ns() - t0;
	if (!err && expect_events(hb, "cow_fault", COW_BREAK, before, hb->pages))
		err = -EPROTO;
	mmput(child);
	mm_munmap(hb->mm, addr, hb->bytes);
	if (err)
		return err == -EPROTO ? -1 : fail("COW writes", err);
	*ns = (double)t / (double)hb->pages;
	return 0;
}

static int host_unmap_once(struct host_bench *hb, double *ns)
{
	uint64_t before, t0, t;
	hva_t addr;
	int err;

	if (map_region(hb, hb->mm, true, &addr))
		return -1;
	before = event(hb->host, PGUNMAP);
	t0 = clock_now_ns();
	err = mm_munmap(hb->mm, addr, hb->bytes);
	t = clock_now_ns() - t0;
	if (err)
		return fail("mm_munmap", err);
	if (expect_events(hb, "munmap_page", PGUNMAP, before, hb->pages))
		return -1;
	*ns = (double)t / (double)hb->pages;
	return 0;
}

/* The subscriber of notifier_call: about the least work a real one does. */
struct counting_mn {
	struct mmu_notifier mn;
	atomic_ulong starts, ends;
};

static int count_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct counting_mn *c = (struct counting_mn *)mn;

	atomic_fetch_add_explicit(&c->starts, 1, memory_order_relaxed);
	return 0;
}

static void count_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct counting_mn *c = (struct counting_mn *)mn;

	atomic_fetch_add_explicit(&c->ends, 1, memory_order_relaxed);
}

static const struct mmu_notifier_ops counting_ops = {
	.invalidate_range_start = count_start,
	.invalidate_range_end = count_end,
};

static void notify_loop(struct mm *mm, uint64_t calls)
{
	for (uint64_t i = 0; i < calls; i++) {
		struct mmu_notifier_range range;

		mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR,
					MMU_NOTIFIER_RANGE_BLOCKABLE, mm,
					NOTIFY_START, NOTIFY_START + PAGE_SIZE);
		mmu_notifier_invalidate_range_start(&range);
		mmu_notifier_invalidate_range_end(&range);
	}
}

static double notify_once(struct mm *mm, uint64_t calls)
{
	uint64_t t0 = clock_now_ns();

	notify_loop(mm, calls);
	return (double)(clock_now_ns() - t0) / (double)calls;
}

/* ---- the run ----------------------------------------------------------- */

static void report_pages(struct host_bench *hb, const char *name,
			 const struct samples *host, const struct samples *native,
			 const char *method)
{
	double h = bench_median(host->v, host->n), n = bench_median(native->v, native->n);
	struct bench_field f[] = {
		BENCH_NUM("ns_per_page", h),
		BENCH_NUM("native_ns_per_page", n),
		BENCH_RATIO("ratio", n > 0 ? h / n : 0),
		BENCH_INT("pages", hb->pages),
		BENCH_INT("repeat", hb->o->repeat),
		BENCH_STR("method", method),
		BENCH_SAMPLES("samples", host->v, host->n),
		BENCH_SAMPLES("native_samples", native->v, native->n),
	};

	bench_report(hb->o, "host", name, f, ARRAY_SIZE(f));
}

static int run_native(struct host_bench *hb)
{
	unsigned int r;

	for (r = 0; r < hb->o->repeat; r++)
		if (native_zero_once(hb, &hb->native_zero.v[r]))
			return -1;
	for (r = 0; r < hb->o->repeat; r++)
		if (native_cow_once(hb, &hb->native_cow.v[r]))
			return -1;
	for (r = 0; r < hb->o->repeat; r++)
		if (native_unmap_once(hb, &hb->native_unmap.v[r]))
			return -1;
	for (r = 0; r < hb->o->repeat; r++)
		native_mutex_once(hb, &hb->native_mutex.v[r]);
	return 0;
}

static int run_host(struct host_bench *hb)
{
	struct counting_mn cmn = { .mn = { .ops = &counting_ops } };
	uint64_t calls = hb->o->calls;
	struct mm *nmm = NULL;
	unsigned int r;
	int err, ret = -1;

	for (r = 0; r < hb->o->repeat; r++)
		if (host_zero_once(hb, &hb->zero.v[r]))
			return -1;
	for (r = 0; r < hb->o->repeat; r++)
		if (host_cow_once(hb, &hb->cow.v[r]))
			return -1;
	for (r = 0; r < hb->o->repeat; r++)
		if (host_unmap_once(hb, &hb->unmap.v[r]))
			return -1;

	/* hb->mm has no subscriber: the 0-subscriber baseline. */
	err = mm_create(hb->host, &nmm);
	if (err)
		return fail("mm_create", err);
	err = mmu_notifier_register(&cmn.mn, nmm);
	if (err) {
		mmput(nmm);
		return fail("mmu_notifier_register", err);
	}
	notify_loop(hb->mm, 1000);      /* warm up: RCU registration, caches */
	notify_loop(nmm, 1000);
	for (r = 0; r < hb->o->repeat; r++) {
		hb->notify0.v[r] = notify_once(hb->mm, calls);
		hb->notify1.v[r] = notify_once(nmm, calls);
	}
	uint64_t want = 1000 + calls * hb->o->repeat;
	if (atomic_load(&cmn.starts) != want || atomic_load(&cmn.ends) != want)
		fprintf(stderr, "tandem bench host: notifier_call: subscriber saw %lu "
			"starts and %lu ends, expected %llu of each\n",
			atomic_load(&cmn.starts), atomic_load(&cmn.ends),
			(unsigned long long)want);
	else
		ret = 0;
	mmput(nmm);
	mmu_notifier_unregister(&cmn.mn, nmm);
	return ret;
}

int bench_host(const struct bench_opts *o)
{
	struct host_bench hb = { .o = o };
	struct samples *all[] = { &hb.native_zero, &hb.native_cow, &hb.native_unmap,
				  &hb.native_mutex, &hb.zero, &hb.cow, &hb.unmap,
				  &hb.notify0, &hb.notify1 };
	struct host_config cfg = { .prefault = true };
	int err, status = 1;

	hb.pages = (o->region_bytes + PAGE_SIZE - 1) / PAGE_SIZE;
	hb.bytes = hb.pages * PAGE_SIZE;
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		all[i]->v = xcalloc(o->repeat, sizeof(double));
		all[i]->n = o->repeat;
	}
	/* Parent pages + COW copies + page tables, above the min watermark. */
	cfg.ram_bytes = PAGE_ALIGN(2 * hb.bytes + hb.bytes / 2 + (16ULL << 20));
	if (cfg.ram_bytes > HOST_RAM_MAX) {
		fprintf(stderr, "tandem bench host: --size too large for the host arena\n");
		goto out_free;
	}

	bench_note(o, "bench host: %llu-page (%llu KiB) regions, %u runs per measure, "
		   "median shown; %llu calls per notifier run",
		   (unsigned long long)hb.pages, (unsigned long long)(hb.bytes >> 10),
		   o->repeat, (unsigned long long)o->calls);
	bench_note(o, "native: this machine's kernel, 4 KiB pages (MADV_NOHUGEPAGE), "
		   "measured first, before the host arena exists");
	if (run_native(&hb))
		goto out_free;

	err = host_create(&cfg, &hb.host);
	if (err) {
		fail("host_create", err);
		goto out_free;
	}
	err = mm_create(hb.host, &hb.mm);
	if (err) {
		fail("mm_create", err);
		goto out_host;
	}
	bench_note(o, "tandem: %llu MiB pre-faulted arena; per page: get_user_page("
		   "FOLL_WRITE) + 1-byte write + put_page",
		   (unsigned long long)(cfg.ram_bytes >> 20));
	if (run_host(&hb)) {
		mmput(hb.mm);
		goto out_host;
	}
	mmput(hb.mm);

	report_pages(&hb, "demand_zero_fault", &hb.zero, &hb.native_zero, "gup_write");
	report_pages(&hb, "cow_fault", &hb.cow, &hb.native_cow, "gup_write_after_fork");
	report_pages(&hb, "munmap_page", &hb.unmap, &hb.native_unmap, "munmap_populated");
	{
		double n1 = bench_median(hb.notify1.v, hb.notify1.n);
		double n0 = bench_median(hb.notify0.v, hb.notify0.n);
		double m = bench_median(hb.native_mutex.v, hb.native_mutex.n);
		struct bench_field f[] = {
			BENCH_NUM("ns_per_call", n1),
			BENCH_NUM("baseline_ns_per_call", n0),
			BENCH_STR("baseline", "0_subscribers"),
			BENCH_RATIO("ratio", n0 > 0 ? n1 / n0 : 0),
			BENCH_NUM("native_mutex_ns_per_pair", m),
			BENCH_INT("subscribers", 1),
			BENCH_INT("calls", o->calls),
			BENCH_INT("repeat", o->repeat),
			BENCH_STR("method", "range_start_end_pair"),
			BENCH_SAMPLES("samples", hb.notify1.v, hb.notify1.n),
			BENCH_SAMPLES("baseline_samples", hb.notify0.v, hb.notify0.n),
			BENCH_SAMPLES("native_mutex_samples", hb.native_mutex.v,
				      hb.native_mutex.n),
		};
		bench_report(o, "host", "notifier_call", f, ARRAY_SIZE(f));
	}

	int inv = host_check_invariants(hb.host);
	uint64_t in_use = host_frames_in_use(hb.host);

	bench_note(o, "host_check_invariants=%d host_frames_in_use=%llu", inv,
		   (unsigned long long)in_use);
	if (inv == 0 && in_use == 0)
		status = 0;
	else
		fprintf(stderr, "tandem bench host: teardown check failed: "
			"host_check_invariants=%d host_frames_in_use=%llu\n", inv,
			(unsigned long long)in_use);
out_host:
	err = host_destroy(hb.host);
	if (err) {
		fail("host_destroy", err);
		status = 1;
	}
out_free:
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		free(all[i]->v);
	return status;
}
