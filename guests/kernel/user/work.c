/* guests/kernel workload (U mode): processes that stamp pages with
 * (VM, pid, page, version), verify them, fork, probe the kernel's
 * fences, and exit. See README.md. */
#include "ulib.h"

#define PG 4096UL
#define MAPA (MMAP_BASE)            /* each process's mmap region */
#define MPAGES 4
#define MAGIC 0x5AUL

static long vm, rounds, npages, depth_max, lineages, gens, secs, verbose;
static uint64_t *heap;              /* npages pages from sbrk */
static long mypid;
static long g_owner, g_version;     /* stamp of the pages at the last fork */
static long failures;

static uint64_t hdr(long pid, long page, long version)
{
	return MAGIC << 56 | ((uint64_t)vm & 0xff) << 48 | ((uint64_t)pid & 0xffff) << 32 |
	       ((uint64_t)page & 0xffff) << 16 | ((uint64_t)version & 0xffff);
}
#define MIX 0x9E3779B97F4A7C15UL

static void fail(void)
{
	failures++;
	ucount(CNT_FAILURE, 1);
}

static void stamp(uint64_t *base, long n, long page0, long pid, long version)
{
	for (long p = 0; p < n; p++) {
		volatile uint64_t *w = base + p * (PG / 8);
		uint64_t h = hdr(pid, page0 + p, version);
		w[0] = h;
		for (unsigned i = 1; i < PG / 8; i++)
			w[i] = h ^ (i * MIX);
	}
}

static void verify(const char *what, uint64_t *base, long n, long page0, long pid, long version)
{
	for (long p = 0; p < n; p++) {
		volatile uint64_t *w = base + p * (PG / 8);
		uint64_t h = hdr(pid, page0 + p, version);
		unsigned bad = PG / 8;
		uint64_t got = 0;
		for (unsigned i = 0; i < PG / 8; i++) {
			uint64_t want = i ? h ^ (i * MIX) : h;
			if (w[i] != want) {
				bad = i;
				got = w[i];
				break;
			}
		}
		if (bad == PG / 8)
			continue;
		uint64_t g0 = w[0];
		uprintf("work: FAILURE vm=%ld pid=%ld %s page %ld at %p: want (vm %ld pid %ld page %ld version %ld), "
			"page says (magic %lx vm %lu pid %lu page %lu version %lu), word %u = %lx\n",
			vm, mypid, what, page0 + p, (void *)w, vm, pid, page0 + p, version, g0 >> 56,
			(g0 >> 48) & 0xff, (g0 >> 32) & 0xffff, (g0 >> 16) & 0xffff, g0 & 0xffff, bad, got);
		fail();
	}
}

/* A child stores to a page, write-protects it, and stores again: the
 * second store must fault (store page fault, scause 15), which only
 * holds if mprotect's sfence.vma removed the writable TLB entry. */
static void probe_mprotect(void)
{
	long pid = ufork();
	if (pid < 0)
		return;
	if (pid == 0) {
		volatile uint64_t *w = (uint64_t *)(MAPA + PG);
		w[1] = 1;                  /* COW break; the TLB now says writable */
		if (w[1] != 1)
			uexit(2);
		umprotect(MAPA + PG, PG, PROT_READ);
		w[1] = 2;                  /* must fault */
		uexit(0);
	}
	long st = 0;
	long got = uwait(&st);
	ucount(CNT_PROBE, 1);
	if (got != pid || st != (WSTAT_KILLED | 15)) {
		uprintf("work: FAILURE vm=%ld pid=%ld: store after mprotect(PROT_READ) in child %ld did not fault "
			"(wait %ld status %lx)\n", vm, mypid, pid, got, st);
		fail();
	}
}

/* A child loads from a page, unmaps it, and loads again: must fault
 * (load page fault, scause 13) -- munmap's sfence.vma. */
static void probe_munmap(void)
{
	long pid = ufork();
	if (pid < 0)
		return;
	if (pid == 0) {
		volatile uint64_t *w = (uint64_t *)(MAPA + 2 * PG);
		uint64_t v = w[3];
		umunmap(MAPA + 2 * PG, PG);
		v += w[3];                 /* must fault */
		uexit(v == 12345 ? 3 : 0);
	}
	long st = 0;
	long got = uwait(&st);
	ucount(CNT_PROBE, 1);
	if (got != pid || st != (WSTAT_KILLED | 13)) {
		uprintf("work: FAILURE vm=%ld pid=%ld: load after munmap in child %ld did not fault "
			"(wait %ld status %lx)\n", vm, mypid, pid, got, st);
		fail();
	}
}

static void worker(long depth) __attribute__((noreturn));
static void worker(long depth)
{
	long owner = g_owner, version = g_version;
	mypid = ugetpid();
	/* The pages as the parent left them at fork (copy on write). */
	verify("inherited heap", heap, npages, 0, owner, version);
	verify("inherited mmap", (uint64_t *)MAPA, MPAGES, 1000, owner, version);
	/* A fresh mapping in place of the inherited one reads zero. */
	if (umunmap(MAPA, MPAGES * PG) != 0 || ummap(MAPA, MPAGES * PG, PROT_READ | PROT_WRITE) != (long)MAPA) {
		uprintf("work: FAILURE vm=%ld pid=%ld: munmap/mmap of %p failed\n", vm, mypid, (void *)MAPA);
		fail();
		uexit(1);
	}
	for (unsigned i = 0; i < MPAGES * PG / 8; i++)
		if (((volatile uint64_t *)MAPA)[i]) {
			uprintf("work: FAILURE vm=%ld pid=%ld: fresh mmap word %u = %lx\n", vm, mypid, i,
				((uint64_t *)MAPA)[i]);
			fail();
			break;
		}
	long child = 0;
	long forkat = rounds / 2 ? rounds / 2 : 1;
	for (long r = 1; r <= rounds; r++) {
		stamp(heap, npages, 0, mypid, r);
		stamp((uint64_t *)MAPA, MPAGES, 1000, mypid, r);
		if (r & 1)
			uyield();
		verify("heap", heap, npages, 0, mypid, r);
		verify("mmap", (uint64_t *)MAPA, MPAGES, 1000, mypid, r);
		if (r == 1) {
			/* grow the heap by a page, use it, give it back */
			uint64_t *x = (uint64_t *)usbrk(PG);
			if ((long)x == -1) {
				uprintf("work: FAILURE vm=%ld pid=%ld: sbrk failed\n", vm, mypid);
				fail();
			} else {
				stamp(x, 1, 500, mypid, r);
				verify("sbrk", x, 1, 500, mypid, r);
				usbrk(-(long)PG);
			}
		}
		if (r == 2) {
			umprotect(MAPA, MPAGES * PG, PROT_READ);
			verify("read-only mmap", (uint64_t *)MAPA, MPAGES, 1000, mypid, r);
			umprotect(MAPA, MPAGES * PG, PROT_READ | PROT_WRITE);
			probe_mprotect();
		}
		if (r == 3 || rounds < 3)
			probe_munmap();
		if (r == forkat && depth < depth_max) {
			g_owner = mypid;
			g_version = r;
			child = ufork();
			if (child == 0)
				worker(depth + 1);
			if (child < 0)
				uprintf("work: vm=%ld pid=%ld: fork failed (process table full)\n", vm, mypid);
		}
		ucount(CNT_ROUND, 1);
	}
	if (child > 0) {
		long st = 0;
		long got = uwait(&st);
		if (got != child || (st & WSTAT_KILLED)) {
			uprintf("work: FAILURE vm=%ld pid=%ld: child %ld: wait %ld status %lx\n", vm, mypid, child,
				got, st);
			fail();
		}
	}
	if (verbose)
		uprintf("work: pid %ld depth %ld done, %ld failures\n", mypid, depth, failures);
	uexit(failures ? 1 : 0);
}

int main(void)
{
	vm = uinfo(INFO_VM);
	rounds = uinfo(INFO_ROUNDS);
	npages = uinfo(INFO_PAGES);
	depth_max = uinfo(INFO_DEPTH);
	lineages = uinfo(INFO_LINEAGES);
	gens = uinfo(INFO_GENS);
	secs = uinfo(INFO_SECS);
	verbose = uinfo(INFO_VERBOSE);
	mypid = ugetpid();
	heap = (uint64_t *)usbrk(npages * PG);
	if ((long)heap == -1 || ummap(MAPA, MPAGES * PG, PROT_READ | PROT_WRITE) != (long)MAPA) {
		uprintf("work: FAILURE: init cannot get memory\n");
		ucount(CNT_FAILURE, 1);
		return 1;
	}
	stamp(heap, npages, 0, mypid, 0);
	stamp((uint64_t *)MAPA, MPAGES, 1000, mypid, 0);
	g_owner = mypid;
	g_version = 0;
	long t0 = uinfo(INFO_TIME_MS);
	long spawned = 0, live = 0, done = 0;
	long target = lineages * gens;
	uprintf("work: vm=%ld init pid %ld: %ld lineages, depth %ld, %ld rounds over %ld+%d pages, %s %ld\n",
		vm, mypid, lineages, depth_max, rounds, npages, MPAGES, secs ? "secs" : "roots", secs ? secs : target);
	for (;;) {
		bool more = secs ? uinfo(INFO_TIME_MS) - t0 < secs * 1000 : spawned < target;
		while (more && live < lineages) {
			long pid = ufork();
			if (pid == 0)
				worker(0);
			if (pid < 0)
				break;
			spawned++;
			live++;
			more = secs ? uinfo(INFO_TIME_MS) - t0 < secs * 1000 : spawned < target;
		}
		long st = 0;
		long pid = uwait(&st);
		if (pid < 0)
			break;
		live--;
		done++;
		if (st & WSTAT_KILLED) {
			uprintf("work: FAILURE vm=%ld: process %ld killed (status %lx)\n", vm, pid, st);
			fail();
		}
		if (verbose || done % 16 == 0)
			uprintf("work: vm=%ld %ld lineage roots done, %ld ms\n", vm, done, uinfo(INFO_TIME_MS) - t0);
	}
	/* init's own copies were shared with every child: still its own. */
	verify("init heap", heap, npages, 0, mypid, 0);
	verify("init mmap", (uint64_t *)MAPA, MPAGES, 1000, mypid, 0);
	uprintf("work: vm=%ld init done: %ld lineage roots in %ld ms, %ld failures\n", vm, spawned,
		uinfo(INFO_TIME_MS) - t0, failures);
	return failures ? 1 : 0;
}
