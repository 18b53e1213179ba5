/* SPDX-License-Identifier: MIT */
/*
 * bench_idle.c - `tandem bench idle`: what one pass of idle page tracking
 * costs per page, with a VM attached and without.
 *
 *   measure        tandem                                  baseline (same run)
 *   mark           mm_idle_mark_range over N guest pages,  the same pass over an mm
 *                  each young in its host PTE and its spte no VM is attached to: N
 *                  (the vCPU has just written every page,  pages young in their host
 *                  then halted): per page the rmap walk,   PTEs only (mm_write), no
 *                  host accessed bit cleared,              notifier subscriber
 *                  clear_flush_young (spte bit cleared, a
 *                  TLB-flush request), PG_idle set
 *   count          mm_idle_count_range right after: no     the same on the no-VM mm
 *                  page touched, so every page is checked
 *                  in full (rmap walk, host bit, notifier)
 *                  and reported idle
 *   mark_pfn       page_idle_mark over the same frames by  the same, no VM
 *                  pfn (runs of contiguous pfns, as a
 *                  bitmap writer would pass them):
 *                  clear_young, no flush
 *   count_pfn      page_idle_get over them                 the same, no VM
 *
 * For scale, KVM's published figure: access_tracking_perf_test with 1 vCPU
 * x 262144 pages marks memory idle through /sys/kernel/mm/page_idle/bitmap
 * in about 3.0 s, ~11.5 us per page (Maxim Levitsky, lore.kernel.org/r/
 * 025b409c5ca44055a5f90d2c67e76af86617e222.camel@redhat.com). That pass
 * also reads /proc/pid/pagemap and makes the bitmap syscalls, which an
 * in-process interface does not pay; ours should be far below it.
 *
 * Each measure runs --repeat times (the vCPU, or mm_write for the baseline,
 * makes every page young again before each run); lines carry the median.
 * Every pass checks its result (N marked, N idle), and the run ends with
 * the host's invariant check and every frame returned.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli/cli.h"
#include "base/xalloc.h"
#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/pgtable.h"
#include "tandem/cpu.h"
#include "base/compiler.h"
#include "base/clock.h"

#define KVM_PUBLISHED_NS_PER_PAGE 11500.0

struct idle_bench {
	const struct bench_opts *o;
	uint64_t pages;
	struct host *host;
	/* the VM side */
	struct mm *vm_mm;
	struct kvm *kvm;
	struct vcpu *vcpu;
	hva_t vm_hva;
	/* the baseline */
	struct mm *mm;
	hva_t hva;
};

enum { M_MARK, M_COUNT, M_MARK_PFN, M_COUNT_PFN, NR_MEASURES };
static const char *const measure_names[NR_MEASURES] = {
	"mark", "count", "mark_pfn", "count_pfn",
};
static const char *const measure_methods[NR_MEASURES] = {
	"mm_idle_mark_range", "mm_idle_count_range", "page_idle_mark", "page_idle_get",
};

static int fail(const char *what, int err)
{
	fflush(stdout);
	fprintf(stderr, "tandem bench idle: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return -1;
}

static int expect(const char *measure, const char *what, uint64_t got, uint64_t want)
{
	if (got == want)
		return 0;
	fflush(stdout);
	fprintf(stderr, "tandem bench idle: %s: expected %llu %s, saw %llu\n", measure,
		(unsigned long long)want, what, (unsigned long long)got);
	return -1;
}

/* ---- making every page young ----------------------------------------------- */

struct touch {
	uint64_t pages;
	atomic_bool done;
	int ret;
};

static int guest_touch_all(struct vcpu *v, void *arg)
{
	struct touch *t = arg;
	int r = 0;

	for (uint64_t p = 0; p < t->pages && !r; p++)
		r = vcpu_store64(v, p << PAGE_SHIFT, p + 1);
	t->ret = r;
	atomic_store(&t->done, true);
	return r;
}

/* The vCPU writes every guest page, then halts (its thread returns). */
static int vm_touch_all(struct idle_bench *ib)
{
	struct touch t = { .pages = ib->pages };
	int err = vcpu_run(ib->vcpu, guest_touch_all, &t);

	if (err)
		return fail("vcpu_run", err);
	while (!atomic_load(&t.done))
		nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
	err = vcpu_stop(ib->vcpu);
	return err ? fail("guest write", err) : 0;
}

static int host_touch_all(struct idle_bench *ib)
{
	for (uint64_t p = 0; p < ib->pages; p++) {
		uint64_t v = p + 1;
		int64_t r = mm_write(ib->mm, ib->hva + (p << PAGE_SHIFT), &v, sizeof(v));

		if (r != sizeof(v))
			return fail("mm_write", r < 0 ? (int)r : -EIO);
	}
	return 0;
}

/* ---- the passes -------------------------------------------------------------- */

static int cmp_pfn(const void *a, const void *b)
{
	pfn_t x = *(const pfn_t *)a, y = *(const pfn_t *)b;

	return (x > y) - (x < y);
}

/* The frames behind [hva, +pages), sorted (for the pfn interface). */
static int region_pfns(struct mm *mm, hva_t hva, uint64_t pages, pfn_t *pfns)
{
	for (uint64_t p = 0; p < pages; p++) {
		pte_t pte = mm_lookup_pte(mm, hva + (p << PAGE_SHIFT));

		if (!pte_is_present(pte))
			return fail("region_pfns", -EFAULT);
		pfns[p] = pte_to_pfn(pte);
	}
	qsort(pfns, pages, sizeof(*pfns), cmp_pfn);
	return 0;
}

/* page_idle_mark / page_idle_get over each run of contiguous pfns. */
static int64_t pfn_pass(struct idle_bench *ib, const pfn_t *pfns, bool mark, uint64_t *bm)
{
	int64_t total = 0;

	for (uint64_t i = 0, j; i < ib->pages; i = j) {
		for (j = i + 1; j < ib->pages && pfns[j] == pfns[j - 1] + 1; j++)
			;
		int r = mark ? page_idle_mark(ib->host, pfns[i], j - i)
			     : page_idle_get(ib->host, pfns[i], j - i, bm);

		if (r < 0)
			return r;
		total += r;
	}
	return total;
}

/*
 * One run of every measure on one side (vm: the VM's mm, else the baseline
 * mm), ns per page into ns[measure].
 */
static int run_once(struct idle_bench *ib, bool vm, pfn_t *pfns, uint64_t *bm,
		    double ns[NR_MEASURES])
{
	struct mm *mm = vm ? ib->vm_mm : ib->mm;
	hva_t start = vm ? ib->vm_hva : ib->hva, end = start + (ib->pages << PAGE_SHIFT);
	uint64_t idle = 0, mapped = 0, t0;
	int64_t r;

	for (int m = 0; m < NR_MEASURES; m += 2) {
		/* Every page young again: host PTE and (vm) spte. */
		if (vm ? vm_touch_all(ib) : host_touch_all(ib))
			return -1;
		if (m == M_MARK_PFN && region_pfns(mm, start, ib->pages, pfns))
			return -1;

		t0 = clock_now_ns();
		r = m == M_MARK ? mm_idle_mark_range(mm, start, end) : pfn_pass(ib, pfns, true, bm);
		ns[m] = (double)(clock_now_ns() - t0) / (double)ib->pages;
		if (r < 0)
			return fail(measure_methods[m], (int)r);
		if (expect(measure_names[m], "pages marked", (uint64_t)r, ib->pages))
			return -1;

		t0 = clock_now_ns();
		if (m == M_MARK) {
			r = mm_idle_count_range(mm, start, end, &idle, &mapped);
		} else {
			r = pfn_pass(ib, pfns, false, bm);
			idle = mapped = (uint64_t)r;
		}
		ns[m + 1] = (double)(clock_now_ns() - t0) / (double)ib->pages;
		if (r < 0)
			return fail(measure_methods[m + 1], (int)r);
		if (expect(measure_names[m + 1], "pages idle", idle, ib->pages) ||
		    expect(measure_names[m + 1], "pages mapped", mapped, ib->pages))
			return -1;
	}
	return 0;
}

/* ---- setup ---------------------------------------------------------------------- */

static int setup(struct idle_bench *ib)
{
	uint64_t bytes = ib->pages << PAGE_SHIFT;
	struct kvm_userspace_memory_region r = { 0 };
	int err;

	err = mm_create(ib->host, &ib->vm_mm);
	if (err)
		return fail("mm_create", err);
	err = mm_mmap(ib->vm_mm, 0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      &ib->vm_hva);
	if (err)
		return fail("mm_mmap", err);
	err = kvm_create_vm(ib->vm_mm, &(struct kvm_config){ 0 }, &ib->kvm);
	if (err)
		return fail("kvm_create_vm", err);
	r.memory_size = bytes;
	r.userspace_addr = ib->vm_hva;
	err = kvm_set_user_memory_region(ib->kvm, &r);
	if (err)
		return fail("kvm_set_user_memory_region", err);
	err = vcpu_create(ib->kvm, 0, &ib->vcpu);
	if (err)
		return fail("vcpu_create", err);

	err = mm_create(ib->host, &ib->mm);
	if (err)
		return fail("mm_create", err);
	err = mm_mmap(ib->mm, 0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      &ib->hva);
	return err ? fail("mm_mmap", err) : 0;
}

static void teardown(struct idle_bench *ib)
{
	if (ib->vcpu)
		vcpu_destroy(ib->vcpu);
	if (ib->kvm)
		kvm_destroy_vm(ib->kvm);
	if (ib->vm_mm)
		mmput(ib->vm_mm);
	if (ib->mm)
		mmput(ib->mm);
}

int bench_idle(const struct bench_opts *o)
{
	struct idle_bench ib = { .o = o };
	struct host_config cfg = { .prefault = true, .no_kswapd = true };
	unsigned int rep = o->repeat;
	double *vm_ns[NR_MEASURES], *base_ns[NR_MEASURES];
	pfn_t *pfns;
	uint64_t *bm;
	int err, status = 1;

	ib.pages = (o->region_bytes + PAGE_SIZE - 1) / PAGE_SIZE;
	/* Two regions (VM and baseline), their page tables, the watermarks. */
	cfg.ram_bytes = PAGE_ALIGN(2 * (ib.pages << PAGE_SHIFT) + (ib.pages << PAGE_SHIFT) / 32 +
				   (32ULL << 20));
	if (cfg.ram_bytes > HOST_RAM_MAX) {
		fprintf(stderr, "tandem bench idle: --size too large for the host arena\n");
		return 1;
	}
	pfns = xcalloc(ib.pages, sizeof(*pfns));
	bm = xcalloc((ib.pages + 63) / 64, sizeof(*bm));
	for (int m = 0; m < NR_MEASURES; m++) {
		vm_ns[m] = xcalloc(rep, sizeof(double));
		base_ns[m] = xcalloc(rep, sizeof(double));
	}
	err = host_create(&cfg, &ib.host);
	if (err) {
		fail("host_create", err);
		goto out_free;
	}
	bench_note(o, "bench idle: %llu-page (%llu KiB) regions, %u runs per measure, "
		   "median shown; %llu MiB pre-faulted host arena, no kswapd",
		   (unsigned long long)ib.pages, (unsigned long long)(ib.pages << 2),
		   rep, (unsigned long long)(cfg.ram_bytes >> 20));
	bench_note(o, "vm: 1 vCPU wrote every page, then halted; baseline: an mm with no VM "
		   "(host PTEs only); KVM's published mark-idle pass (page_idle bitmap, "
		   "access_tracking_perf_test): ~11.5 us/page");
	if (setup(&ib))
		goto out_teardown;
	for (unsigned int r = 0; r < rep; r++) {
		double v[NR_MEASURES], b[NR_MEASURES];

		if (run_once(&ib, true, pfns, bm, v) || run_once(&ib, false, pfns, bm, b))
			goto out_teardown;
		for (int m = 0; m < NR_MEASURES; m++) {
			vm_ns[m][r] = v[m];
			base_ns[m][r] = b[m];
		}
	}
	for (int m = 0; m < NR_MEASURES; m++) {
		double v = bench_median(vm_ns[m], rep), b = bench_median(base_ns[m], rep);
		struct bench_field f[] = {
			BENCH_NUM("ns_per_page", v),
			BENCH_NUM("novm_ns_per_page", b),
			BENCH_RATIO("ratio", b > 0 ? v / b : 0),
			BENCH_NUM("kvm_published_ns_per_page", KVM_PUBLISHED_NS_PER_PAGE),
			BENCH_INT("pages", ib.pages),
			BENCH_INT("repeat", rep),
			BENCH_STR("method", measure_methods[m]),
			BENCH_SAMPLES("samples", vm_ns[m], rep),
			BENCH_SAMPLES("novm_samples", base_ns[m], rep),
		};

		bench_report(o, "idle", measure_names[m], f, ARRAY_SIZE(f));
	}
	status = 0;
out_teardown:
	teardown(&ib);
	if (!status) {
		int inv = host_check_invariants(ib.host);
		uint64_t in_use = host_frames_in_use(ib.host);

		bench_note(o, "host_check_invariants=%d host_frames_in_use=%llu", inv,
			   (unsigned long long)in_use);
		if (inv || in_use) {
			fprintf(stderr, "tandem bench idle: teardown check failed: "
				"host_check_invariants=%d host_frames_in_use=%llu\n", inv,
				(unsigned long long)in_use);
			status = 1;
		}
	}
	err = host_destroy(ib.host);
	if (err) {
		fail("host_destroy", err);
		status = 1;
	}
out_free:
	for (int m = 0; m < NR_MEASURES; m++) {
		free(vm_ns[m]);
		free(base_ns[m]);
	}
	free(pfns);
	free(bm);
	return status;
}
