/* SPDX-License-Identifier: MIT */
/*
 * bench_swap.c - `tandem bench swap`: swap-out and swap-in throughput
 * beside raw pwrite/pread of the same file, in the same run.
 *
 *   measure    tandem                                   baseline (same run, same file)
 *   swap_out   mm_madvise(MADV_PAGEOUT) over N written  pwrite(2) of N 4 KiB blocks at
 *              pages (distinct content): per page the   offsets 0, 4K, ... (the slots
 *              LRU isolation, a slot, the rmap walk,    tandem wrote), from an N-page
 *              one CLEAR invalidation, the PTE turned   buffer of distinct content,
 *              into a swap entry, one 4 KiB pwrite to   through an fd of our own on
 *              the slot, the frame freed                the swap file
 *   swap_in    mm_read of 8 bytes from every page, in   pread(2) of the same N blocks,
 *              order: per page a fault, a frame, a      in order, into the buffer
 *              4 KiB pread from the slot, the swap
 *              cache in and out, the PTE
 *
 * The swap file is exactly N pages, so every round of MADV_PAGEOUT hands
 * out slots 0..N-1 in address order: tandem and the baseline write the same
 * offsets in the same order. The file is a plain file in $TMPDIR (or /tmp),
 * kept only for the run (host_config.keep_swap_file) and removed at the end.
 *
 * The page cache: neither side asks for durability, so both sides' writes
 * end in this kernel's page cache and their reads are served from it -- the
 * figures measure the syscall + copy path, not the disk. For the device,
 * the run adds an O_DIRECT pwrite/pread pass over the same blocks (skipped
 * with a note where the file system refuses O_DIRECT).
 *
 * Each side of a measure also runs with one subscriber on the mm (no-op
 * counting invalidate_range_start/_end), to show what the per-page CLEAR
 * invalidation adds. Each measure runs --repeat times; lines carry the
 * median. Every run checks PSWPOUT/PSWPIN (+N each), the subscriber's call
 * count and the data read back; the run ends with the host's invariant
 * check and every frame returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "cli/cli.h"
#include "base/xalloc.h"
#include "tandem/host.h"
#include "tandem/mmu_notifier.h"
#include "base/compiler.h"
#include "base/clock.h"

#define MIB (1024.0 * 1024.0)

struct swap_bench {
	const struct bench_opts *o;
	uint64_t pages;
	struct host *host;
	struct mm *mm;
	hva_t hva;
	char path[256];
	unsigned char *buf;             /* N pages, for the baselines and mm_write */
	unsigned char *dbuf;            /* N pages, aligned, for O_DIRECT */
	bool direct_ok;
	const char *direct_why;
	uint64_t round;                 /* content generation */
};

struct counting_mn {
	struct mmu_notifier mn;
	atomic_ulong starts, ends;
};

static int count_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	atomic_fetch_add_explicit(&((struct counting_mn *)mn)->starts, 1,
				  memory_order_relaxed);
	return 0;
}

static void count_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	atomic_fetch_add_explicit(&((struct counting_mn *)mn)->ends, 1, memory_order_relaxed);
}

static const struct mmu_notifier_ops counting_ops = {
	.invalidate_range_start = count_start,
	.invalidate_range_end = count_end,
};

/* Series: tandem (0 and 1 subscriber), buffered, O_DIRECT; out and in. */
enum { S_OUT, S_OUT_MN, S_IN, S_IN_MN, S_PWRITE, S_PREAD, S_DPWRITE, S_DPREAD, NR_SERIES };

static int fail(const char *what, int err)
{
	fflush(stdout);
	fprintf(stderr, "tandem bench swap: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return -1;
}

static int expect(const char *measure, const char *what, uint64_t got, uint64_t want)
{
	if (got == want)
		return 0;
	fflush(stdout);
	fprintf(stderr, "tandem bench swap: %s: expected %llu %s, saw %llu\n", measure,
		(unsigned long long)want, what, (unsigned long long)got);
	return -1;
}

static uint64_t tag(uint64_t round, uint64_t p)
{
	return (round << 40) ^ (p * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a;
}

/* Distinct content in every page: its tag in each 8-byte word, mixed. */
static void fill(unsigned char *buf, uint64_t pages, uint64_t round)
{
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t *w = (uint64_t *)(buf + (p << PAGE_SHIFT)), t = tag(round, p);

		for (unsigned int i = 0; i < PAGE_SIZE / 8; i++)
			w[i] = t + i;
	}
}

static double mib_s(uint64_t pages, uint64_t ns)
{
	return ns ? (double)(pages << PAGE_SHIFT) / MIB / ((double)ns / 1e9) : 0;
}

static uint64_t event(struct host *host, enum vm_event_item e)
{
	struct host_stats st;

	host_get_stats(host, &st);
	return st.events[e];
}

static uint64_t notifier_starts(struct host *host)
{
	struct host_stats st;

	host_get_stats(host, &st);
	return st.notifier_starts;
}

/*
 * One tandem round: write every page (untimed), page the range out, read
 * it back in. ns per series; *starts gets the notifier starts of the
 * page-out (host-wide, all subscribers or none).
 */
static int tandem_once(struct swap_bench *sb, double *out_ns, double *in_ns,
		       uint64_t starts[2])
{
	uint64_t n = sb->pages, bytes = n << PAGE_SHIFT, t0, t1, c0, c1, s0;
	int64_t r;
	int err;

	fill(sb->buf, n, ++sb->round);
	r = mm_write(sb->mm, sb->hva, sb->buf, bytes);
	if (r != (int64_t)bytes)
		return fail("mm_write", r < 0 ? (int)r : -EIO);

	c0 = event(sb->host, PSWPOUT);
	s0 = notifier_starts(sb->host);
	t0 = clock_now_ns();
	err = mm_madvise(sb->mm, sb->hva, bytes, MADV_PAGEOUT);
	t1 = clock_now_ns();
	if (err)
		return fail("mm_madvise(MADV_PAGEOUT)", err);
	c1 = event(sb->host, PSWPOUT);
	starts[0] = notifier_starts(sb->host) - s0;
	*out_ns = (double)(t1 - t0);
	if (expect("swap_out", "pswpout", c1 - c0, n))
		return -1;
	if (expect("swap_out", "SWAP_WRITE_ERROR", event(sb->host, SWAP_WRITE_ERROR), 0))
		return -1;

	c0 = event(sb->host, PSWPIN);
	s0 = notifier_starts(sb->host);
	uint64_t bad = 0;
	t0 = clock_now_ns();
	for (uint64_t p = 0; p < n; p++) {
		uint64_t v;

		r = mm_read(sb->mm, sb->hva + (p << PAGE_SHIFT), &v, sizeof(v));
		if (r != sizeof(v))
			return fail("mm_read", r < 0 ? (int)r : -EIO);
		bad += v != tag(sb->round, p);
	}
	t1 = clock_now_ns();
	*in_ns = (double)(t1 - t0);
	starts[1] = notifier_starts(sb->host) - s0;
	c1 = event(sb->host, PSWPIN);
	if (expect("swap_in", "pages with wrong content", bad, 0) ||
	    expect("swap_in", "pswpin", c1 - c0, n))
		return -1;
	return 0;
}

/* pwrite then pread of N 4 KiB blocks at 0, 4K, ...; ns of each. */
static int raw_once(struct swap_bench *sb, bool direct, double *w_ns, double *r_ns)
{
	unsigned char *buf = direct ? sb->dbuf : sb->buf;
	uint64_t n = sb->pages, t0;
	int fd = open(sb->path, O_RDWR | O_CLOEXEC | (direct ? O_DIRECT : 0));

	if (fd < 0)
		return fail(direct ? "open(O_DIRECT)" : "open", -errno);
	fill(buf, n, ++sb->round);
	t0 = clock_now_ns();
	for (uint64_t p = 0; p < n; p++)
		if (pwrite(fd, buf + (p << PAGE_SHIFT), PAGE_SIZE, (off_t)(p << PAGE_SHIFT)) !=
		    PAGE_SIZE) {
			int e = -errno;

			close(fd);
			return fail("pwrite", e ? e : -EIO);
		}
	*w_ns = (double)(clock_now_ns() - t0);
	memset(buf, 0, n << PAGE_SHIFT);
	t0 = clock_now_ns();
	for (uint64_t p = 0; p < n; p++)
		if (pread(fd, buf + (p << PAGE_SHIFT), PAGE_SIZE, (off_t)(p << PAGE_SHIFT)) !=
		    PAGE_SIZE) {
			int e = -errno;

			close(fd);
			return fail("pread", e ? e : -EIO);
		}
	*r_ns = (double)(clock_now_ns() - t0);
	close(fd);
	for (uint64_t p = 0; p < n; p++)
		if (*(uint64_t *)(buf + (p << PAGE_SHIFT)) != tag(sb->round, p))
			return expect(direct ? "pread(O_DIRECT)" : "pread",
				      "pages with wrong content", 1, 0);
	return 0;
}

/* Can this file system do O_DIRECT on the file? Sets direct_ok / _why. */
static void probe_direct(struct swap_bench *sb)
{
	int fd = open(sb->path, O_RDWR | O_CLOEXEC | O_DIRECT);

	sb->direct_ok = false;
	if (fd < 0) {
		sb->direct_why = strerror(errno);
		return;
	}
	if (pread(fd, sb->dbuf, PAGE_SIZE, 0) != PAGE_SIZE)
		sb->direct_why = strerror(errno);
	else
		sb->direct_ok = true;
	close(fd);
}

static const char *fs_name(const char *path)
{
	struct statfs s;

	if (statfs(path, &s))
		return "?";
	switch ((unsigned long)s.f_type) {
	case 0xEF53: return "ext4";
	case 0x01021994: return "tmpfs";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x794c7630: return "overlayfs";
	default: return "other";
	}
}

static void report(struct swap_bench *sb, const char *name, double *t, double *t_mn,
		   double *raw, double *draw, uint64_t starts, const char *tandem_method,
		   const char *raw_method)
{
	unsigned int rep = sb->o->repeat;
	uint64_t n = sb->pages;
	double tm = bench_median(t, rep), tmn = bench_median(t_mn, rep);
	double rm = bench_median(raw, rep), dm = sb->direct_ok ? bench_median(draw, rep) : 0;
	double tmib = mib_s(n, (uint64_t)tm), rmib = mib_s(n, (uint64_t)rm);
	double tmn_mib = mib_s(n, (uint64_t)tmn), dmib = mib_s(n, (uint64_t)dm);
	double per_t = tm / (double)n, per_r = rm / (double)n, per_mn = tmn / (double)n;
	/* samples as MiB/s, for JSON */
	double ts[rep], rs[rep], ms[rep], ds[rep];

	for (unsigned int i = 0; i < rep; i++) {
		ts[i] = mib_s(n, (uint64_t)t[i]);
		rs[i] = mib_s(n, (uint64_t)raw[i]);
		ms[i] = mib_s(n, (uint64_t)t_mn[i]);
		ds[i] = sb->direct_ok ? mib_s(n, (uint64_t)draw[i]) : 0;
	}
	struct bench_field f[] = {
		BENCH_NUM("mib_s", tmib),
		BENCH_NUM("raw_mib_s", rmib),
		BENCH_RATIO("ratio", rmib > 0 ? tmib / rmib : 0),
		BENCH_NUM("ns_per_page", per_t),
		BENCH_NUM("raw_ns_per_page", per_r),
		BENCH_NUM("overhead_ns_per_page", per_t - per_r),
		BENCH_NUM("mn1_mib_s", tmn_mib),
		BENCH_NUM("mn1_extra_ns_per_page", per_mn - per_t),
		BENCH_RATIO("notifier_starts_per_page", (double)starts / (double)n),
		BENCH_NUM("direct_mib_s", dmib),
		BENCH_INT("pages", n),
		BENCH_INT("repeat", rep),
		BENCH_STR("method", tandem_method),
		BENCH_STR("raw_method", raw_method),
		BENCH_STR("direct", sb->direct_ok ? "ok" : "unsupported"),
		BENCH_SAMPLES("samples_mib_s", ts, rep),
		BENCH_SAMPLES("raw_samples_mib_s", rs, rep),
		BENCH_SAMPLES("mn1_samples_mib_s", ms, rep),
		BENCH_SAMPLES("direct_samples_mib_s", ds, rep),
	};

	bench_report(sb->o, "swap", name, f, ARRAY_SIZE(f));
}

static int run(struct swap_bench *sb, double *s[NR_SERIES], uint64_t starts[2])
{
	struct counting_mn cmn = { .mn = { .ops = &counting_ops } };
	unsigned int rep = sb->o->repeat;
	double w, r;
	uint64_t st[2], mn_st[2];
	int err;

	/* Warm-up round each (page tables, LRU, the file's page cache). */
	if (tandem_once(sb, &w, &r, st) || raw_once(sb, false, &w, &r))
		return -1;
	/* The buffered series interleaved, so they share the page cache's
	 * state (every block of the file cached); O_DIRECT, which drops the
	 * file's cached pages, only after them. */
	for (unsigned int i = 0; i < rep; i++) {
		if (tandem_once(sb, &s[S_OUT][i], &s[S_IN][i], starts) ||
		    raw_once(sb, false, &s[S_PWRITE][i], &s[S_PREAD][i]))
			return -1;
		err = mmu_notifier_register(&cmn.mn, sb->mm);
		if (err)
			return fail("mmu_notifier_register", err);
		err = tandem_once(sb, &s[S_OUT_MN][i], &s[S_IN_MN][i], mn_st);
		mmu_notifier_unregister(&cmn.mn, sb->mm);
		if (err)
			return -1;
	}
	for (unsigned int i = 0; i < rep && sb->direct_ok; i++)
		if (raw_once(sb, true, &s[S_DPWRITE][i], &s[S_DPREAD][i]))
			return -1;
	unsigned long mn_starts = atomic_load(&cmn.starts), ends = atomic_load(&cmn.ends);
	/* One CLEAR per page paged out; swap-in changes no present PTE. */
	if (expect("swap_out", "subscriber starts", mn_starts, sb->pages * rep) ||
	    expect("swap_out", "subscriber ends", ends, sb->pages * rep))
		return -1;
	return 0;
}

int bench_swap(const struct bench_opts *o)
{
	struct swap_bench sb = { .o = o };
	struct host_config cfg = { .prefault = true, .no_kswapd = true };
	unsigned int rep = o->repeat;
	double *s[NR_SERIES];
	uint64_t starts[2] = { 0, 0 };
	const char *dir = getenv("TMPDIR");
	int err, status = 1;

	sb.pages = (o->region_bytes + PAGE_SIZE - 1) / PAGE_SIZE;
	/* The region, its page tables, the watermarks, room to spare: no
	 * reclaim but the one measured. */
	cfg.ram_bytes = PAGE_ALIGN((sb.pages << PAGE_SHIFT) + (sb.pages << PAGE_SHIFT) / 32 +
				   (32ULL << 20));
	if (cfg.ram_bytes > HOST_RAM_MAX) {
		fprintf(stderr, "tandem bench swap: --size too large for the host arena\n");
		return 1;
	}
	cfg.swap_bytes = sb.pages << PAGE_SHIFT;
	snprintf(sb.path, sizeof(sb.path), "%s/tandem-bench-swap.%ld",
		 dir && *dir ? dir : "/tmp", (long)getpid());
	cfg.swap_path = sb.path;
	cfg.keep_swap_file = true;
	for (int i = 0; i < NR_SERIES; i++)
		s[i] = xcalloc(rep, sizeof(double));
	sb.buf = xcalloc(sb.pages, PAGE_SIZE);
	sb.dbuf = mmap(NULL, sb.pages << PAGE_SHIFT, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sb.dbuf == MAP_FAILED) {
		sb.dbuf = NULL;
		fail("mmap", -errno);
		goto out_free;
	}

	err = host_create(&cfg, &sb.host);
	if (err) {
		fail("host_create", err);
		goto out_free;
	}
	probe_direct(&sb);
	bench_note(o, "bench swap: %llu pages (%llu MiB), %u runs per measure, median shown; "
		   "%llu MiB pre-faulted host arena, no kswapd; swap file %s (%s), exactly "
		   "the region's size", (unsigned long long)sb.pages,
		   (unsigned long long)(sb.pages >> 8), rep,
		   (unsigned long long)(cfg.ram_bytes >> 20), sb.path, fs_name(sb.path));
	bench_note(o, "swap_out: mm_madvise(MADV_PAGEOUT) of written pages vs pwrite of "
		   "4 KiB blocks at the same offsets; swap_in: mm_read 8 B per page vs pread; "
		   "mn1_*: tandem with one no-op subscriber on the mm");
	bench_note(o, "page cache: both sides are buffered -- writes land in this kernel's "
		   "page cache, reads come from it; no disk in raw_/tandem figures. "
		   "direct_mib_s: O_DIRECT pwrite/pread, same blocks (%s)",
		   sb.direct_ok ? "supported here" : sb.direct_why);

	err = mm_create(sb.host, &sb.mm);
	if (err) {
		fail("mm_create", err);
		goto out_host;
	}
	err = mm_mmap(sb.mm, 0, sb.pages << PAGE_SHIFT, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, &sb.hva);
	if (err) {
		fail("mm_mmap", err);
		goto out_mm;
	}
	if (run(&sb, s, starts))
		goto out_mm;
	report(&sb, "swap_out", s[S_OUT], s[S_OUT_MN], s[S_PWRITE], s[S_DPWRITE], starts[0],
	       "madvise_pageout", "pwrite");
	report(&sb, "swap_in", s[S_IN], s[S_IN_MN], s[S_PREAD], s[S_DPREAD], starts[1],
	       "mm_read_fault", "pread");
	status = 0;
out_mm:
	if (sb.mm)
		mmput(sb.mm);
out_host:
	if (!status) {
		int inv = host_check_invariants(sb.host);
		uint64_t in_use = host_frames_in_use(sb.host);

		bench_note(o, "host_check_invariants=%d host_frames_in_use=%llu", inv,
			   (unsigned long long)in_use);
		if (inv || in_use) {
			fprintf(stderr, "tandem bench swap: teardown check failed: "
				"host_check_invariants=%d host_frames_in_use=%llu\n", inv,
				(unsigned long long)in_use);
			status = 1;
		}
	}
	err = host_destroy(sb.host);
	if (err) {
		fail("host_destroy", err);
		status = 1;
	}
out_free:
	unlink(sb.path);
	if (sb.dbuf)
		munmap(sb.dbuf, sb.pages << PAGE_SHIFT);
	free(sb.buf);
	for (int i = 0; i < NR_SERIES; i++)
		free(s[i]);
	return status;
}
