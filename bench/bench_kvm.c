/* SPDX-License-Identifier: MIT */
/*
 * bench_kvm.c - `tandem bench kvm`: the secondary MMU's costs as a guest sees
 * them, beside what this machine's kernel charges for the same thing.
 *
 *   measure           tandem                                native baseline
 *   first_touch       N vCPUs each write one u64 to every   N threads write one u64 to every
 *                     page of their slice of fresh guest    page of their slice of fresh
 *                     memory (a fresh VM per run): soft-    mmap'd memory (MADV_NOHUGEPAGE)
 *                     TLB miss, GUP, demand-zero, spte
 *   warm_access       1 vCPU: 8-byte loads through the      the same loop (same index
 *                     soft TLB (every access a hit) over    computation, same dependency)
 *                     a 16 KiB and a 1 MiB working set,     over the same host frames, read
 *                     two patterns: "lcg" (independent      directly; both loops run on the
 *                     random loads summed) and "chase"      vCPU thread, alternately, and
 *                     (each load gives the next offset)     must return the same result
 *   dontneed_refault  host MADV_DONTNEED of the whole       madvise(MADV_DONTNEED) of a
 *                     warm, mapped guest region (vCPUs      populated region, then N threads
 *                     halted), then N vCPUs re-write it     re-write it
 *   invalidate_2m     host MADV_DONTNEED of a 2 MiB range   (a) the same host call on an mm
 *                     every vCPU maps, while N vCPUs run    with no subscriber; (b) the
 *                     loads/stores in guest mode: the whole madvise(2) of a populated 2 MiB
 *                     host call is timed (zap, notifier:    real range
 *                     spte zap + remote TLB flush + wait)
 *
 * warm_access also times, beside each chunk of the two loops, a loop bound
 * by the core's ALU throughput (alu_probe_ns): it slows down when the
 * core's other hardware thread is busy, which slows the guest loops (they
 * issue about twice the native loops' instructions) and not the native ones
 * (bound by a latency). A run whose probe reads well above the lowest
 * probe of the whole benchmark (WARM_SHARED_FACTOR) ran on a shared core --
 * another tenant of the host on the sibling thread, for seconds at a time
 * -- and its ratio measures that tenant, not the hit path: such a run is
 * set aside and another made a little later, until --repeat runs on a
 * whole core are in or WARM_MAX_ATTEMPTS runs were made; a second pass
 * judges every run again by the final floor. The line says how many runs
 * were set aside (shared_runs, their ratios in shared_samples) and how
 * many shared runs it had to keep for want of whole-core ones
 * (kept_shared).
 *
 * first_touch, dontneed_refault and invalidate_2m run for 1, 2 and 4 vCPUs
 * (the machine has 2 cores: 4 vCPUs are preempted in guest mode). Each run
 * is repeated --repeat times and the lines carry medians; invalidate_2m
 * pools its samples over the runs for the median and p99. Every random
 * choice comes from a fixed seed.
 *
 * invalidate_2m also times kvm's own invalidate_range_start and _end on
 * every other iteration, with two probe subscribers registered around the
 * VM's (the notifier list is walked newest first: the probe registered
 * after the VM runs just before kvm's callback, the one registered before
 * it just after), and in those iterations records how many vCPUs were in
 * guest mode (the flush waits for them), how often the invalidating thread
 * slept inside kvm's callback (voluntary context switches: the flush
 * wait's futex, or mmu_lock), and how long each vCPU took to notice the
 * flush (its guest loop checks every 16 steps). A vCPU that took longer
 * than 50 us was not running: it was preempted in guest mode, and the
 * flush had to wait for the scheduler to run it ("late"). The other
 * iterations carry no probe work and give the headline latency.
 *
 * The host arena is pre-faulted so the real kernel's first-touch faults stay
 * out of tandem's figures. Each measure checks, through kvm's counters, that
 * it took the path it names (one slow fault per page touched, every spte of
 * the range zapped), and the run ends with the host's invariant check and
 * every frame returned.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include "cli/cli.h"
#include "base/compiler.h"
#include "base/xalloc.h"
#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/cpu.h"
#include "kvm/kvm_host.h"
#include "base/clock.h"

#define KB_MAX_VCPUS 4
static const int vcpu_counts[] = { 1, 2, 4 };

#define LCG_A 6364136223846793005ULL
#define LCG_C 1442695040888963407ULL
#define SEED  0x5eed7a9d3ULL

/* warm_access */
#define WARM_SMALL   (16ULL << 10)     /* L1-resident */
#define WARM_LARGE   (1ULL << 20)      /* the soft TLB's reach: 256 pages */
#define WARM_PAGES   (WARM_LARGE >> PAGE_SHIFT)
/* gfn 0's fault also allocates the host's page tables (after its frame):
 * the working sets start at gfn 1, whose frames follow one another. */
#define WARM_GFN     1ULL
#define WARM_GPA     (WARM_GFN << PAGE_SHIFT)
#define WARM_CHUNKS  16                /* native/guest alternations per run */
#define WARM_SHARED_FACTOR 1.15        /* probe above 1.15 x the lowest: shared */
#define WARM_MAX_ATTEMPTS 64           /* runs per measure, whole-core or not */
#define WARM_SHARED_PAUSE_NS 100000000ULL /* after a shared run: let it pass */

/* invalidate_2m: gfns [0, 512) are the range, then a hot window per vCPU */
#define INV_BYTES     (2ULL << 20)
#define INV_PAGES     (INV_BYTES >> PAGE_SHIFT)
#define HOT_PAGES     64ULL
#define INV_VM_PAGES  (INV_PAGES + KB_MAX_VCPUS * HOT_PAGES)
#define INV_ITERS     200              /* per run, half of them probed */

struct samples {
	double *v;
	unsigned int n;
};

struct kvm_bench {
	const struct bench_opts *o;
	enum kvm_kick_mode kick;        /* VMs made now use this flush protocol */
	uint64_t pages;                 /* first_touch / dontneed_refault region */
	uint64_t bytes;
	struct host *host;
};

static int fail(const char *what, int err)
{
	fflush(stdout);
	fprintf(stderr, "tandem bench kvm: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return -1;
}

static void samples_alloc(struct samples *s, unsigned int n)
{
	s->v = xcalloc(n, sizeof(double));
	s->n = n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile (p in (0, 100]) of n values; sorts a copy. */
static double percentile(const double *v, unsigned int n, double p)
{
	double *tmp, r;
	unsigned int k;

	if (!n)
		return 0;
	tmp = xcalloc(n, sizeof(double));
	memcpy(tmp, v, n * sizeof(double));
	qsort(tmp, n, sizeof(double), cmp_double);
	k = (unsigned int)((p / 100.0) * n + 0.999999);
	k = k < 1 ? 1 : k > n ? n : k;
	r = tmp[k - 1];
	free(tmp);
	return r;
}

static uint64_t lcg_next(uint64_t *x)
{
	*x = *x * LCG_A + LCG_C;
	return *x >> 33;
}

/* ---- a VM ---------------------------------------------------------------- */

struct vm {
	struct mm *mm;
	struct kvm *kvm;
	hva_t hva;
	uint64_t pages;
	int n;
	struct vcpu *vcpu[KB_MAX_VCPUS];
	struct mmu_notifier *probes[2];
};

/*
 * A fresh mm with one anonymous region of `pages`, a VM with one memslot
 * mapping gfn 0.. onto it, and n vCPUs. Optional probes: before[0] is
 * registered before the VM's notifier, after[1] after it.
 */
static int vm_create(struct kvm_bench *kb, uint64_t pages, int n,
		     struct mmu_notifier *before, struct mmu_notifier *after,
		     struct vm *vm)
{
	struct kvm_userspace_memory_region r = { 0 };
	int err;

	memset(vm, 0, sizeof(*vm));
	vm->pages = pages;
	err = mm_create(kb->host, &vm->mm);
	if (err)
		return fail("mm_create", err);
	err = mm_mmap(vm->mm, 0, pages << PAGE_SHIFT, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, &vm->hva);
	if (err) {
		fail("mm_mmap", err);
		goto out_mm;
	}
	if (before) {
		err = mmu_notifier_register(before, vm->mm);
		if (err) {
			fail("mmu_notifier_register", err);
			goto out_mm;
		}
		vm->probes[0] = before;
	}
	err = kvm_create_vm(vm->mm, &(struct kvm_config){ .kick = kb->kick }, &vm->kvm);
	if (err) {
		fail("kvm_create_vm", err);
		goto out_probes;
	}
	if (after) {
		err = mmu_notifier_register(after, vm->mm);
		if (err) {
			fail("mmu_notifier_register", err);
			goto out_kvm;
		}
		vm->probes[1] = after;
	}
	r.slot = 0;
	r.guest_phys_addr = 0;
	r.memory_size = pages << PAGE_SHIFT;
	r.userspace_addr = vm->hva;
	err = kvm_set_user_memory_region(vm->kvm, &r);
	if (err) {
		fail("kvm_set_user_memory_region", err);
		goto out_vcpus;
	}
	for (vm->n = 0; vm->n < n; vm->n++) {
		err = vcpu_create(vm->kvm, vm->n, &vm->vcpu[vm->n]);
		if (err) {
			fail("vcpu_create", err);
			goto out_vcpus;
		}
	}
	return 0;
out_vcpus:
	while (vm->n > 0)
		vcpu_destroy(vm->vcpu[--vm->n]);
out_kvm:
	kvm_destroy_vm(vm->kvm);
out_probes:
	for (int i = 0; i < 2; i++)
		if (vm->probes[i])
			mmu_notifier_unregister(vm->probes[i], vm->mm);
out_mm:
	mmput(vm->mm);
	return -1;
}

static void vm_destroy(struct vm *vm)
{
	while (vm->n > 0)
		vcpu_destroy(vm->vcpu[--vm->n]);
	kvm_destroy_vm(vm->kvm);
	for (int i = 0; i < 2; i++)
		if (vm->probes[i])
			mmu_notifier_unregister(vm->probes[i], vm->mm);
	mmput(vm->mm);
}

static void vm_stats(struct vm *vm, struct kvm_stats *st)
{
	kvm_get_stats(vm->kvm, st);
}

/* ---- phases: every vCPU (or native thread) runs one function ------------- */

struct phase;
typedef int (*phase_fn)(struct phase *ph, int i, struct vcpu *v);

struct phase {
	phase_fn fn;
	int n;
	pthread_barrier_t start;        /* released when all are ready */
	atomic_int done;
	pthread_mutex_t done_lock;      /* the last to finish signals done_cond */
	pthread_cond_t done_cond;
	uint64_t first[KB_MAX_VCPUS];   /* per thread: first page, count */
	uint64_t count[KB_MAX_VCPUS];
	uint64_t t0[KB_MAX_VCPUS], t1[KB_MAX_VCPUS];
	int ret[KB_MAX_VCPUS];
	char *native_base;              /* native phases */
	void *arg;                      /* measure-specific */
};

struct phase_thread {
	struct phase *ph;
	int i;
};

static void phase_init(struct phase *ph, phase_fn fn, int n, uint64_t pages)
{
	memset(ph, 0, sizeof(*ph));
	ph->fn = fn;
	ph->n = n;
	pthread_barrier_init(&ph->start, NULL, (unsigned int)n);
	pthread_mutex_init(&ph->done_lock, NULL);
	pthread_cond_init(&ph->done_cond, NULL);
	for (int i = 0; i < n; i++) {
		ph->first[i] = pages / (uint64_t)n * (uint64_t)i;
		ph->count[i] = i == n - 1 ? pages - ph->first[i] : pages / (uint64_t)n;
	}
}

static void phase_destroy(struct phase *ph)
{
	pthread_barrier_destroy(&ph->start);
	pthread_mutex_destroy(&ph->done_lock);
	pthread_cond_destroy(&ph->done_cond);
}

static int vcpu_phase_entry(struct vcpu *v, void *arg)
{
	struct phase *ph = arg;
	int i = vcpu_id(v);

	ph->ret[i] = ph->fn(ph, i, v);
	pthread_mutex_lock(&ph->done_lock);
	if (atomic_fetch_add(&ph->done, 1) + 1 == ph->n)
		pthread_cond_signal(&ph->done_cond);
	pthread_mutex_unlock(&ph->done_lock);
	return ph->ret[i];
}

/*
 * Run ph on every vCPU of vm and wait for all to return. A vCPU thread that
 * has returned is outside guest mode, so host calls made after this see
 * halted vCPUs (no flush waits for them).
 */
static int run_vcpus(struct vm *vm, struct phase *ph)
{
	int err = 0;

	for (int i = 0; i < ph->n; i++) {
		int r = vcpu_run(vm->vcpu[i], vcpu_phase_entry, ph);

		if (r) {
			/* The barrier would never open: give up loudly. */
			fprintf(stderr, "tandem bench kvm: vcpu_run: %s\n", strerror(-r));
			exit(1);
		}
	}
	/* Sleep until the last one is done: polling would take the cores
	 * from the vCPUs being timed. */
	pthread_mutex_lock(&ph->done_lock);
	while (atomic_load(&ph->done) < ph->n)
		pthread_cond_wait(&ph->done_cond, &ph->done_lock);
	pthread_mutex_unlock(&ph->done_lock);
	for (int i = 0; i < ph->n; i++) {
		vcpu_stop(vm->vcpu[i]);
		if (ph->ret[i] && !err)
			err = ph->ret[i];
	}
	phase_destroy(ph);
	return err;
}

static void *native_phase_entry(void *arg)
{
	struct phase_thread *pt = arg;

	pt->ph->ret[pt->i] = pt->ph->fn(pt->ph, pt->i, NULL);
	return NULL;
}

static int run_native(struct phase *ph)
{
	pthread_t th[KB_MAX_VCPUS];
	struct phase_thread pt[KB_MAX_VCPUS];
	int err = 0;

	for (int i = 0; i < ph->n; i++) {
		pt[i] = (struct phase_thread){ ph, i };
		if (pthread_create(&th[i], NULL, native_phase_entry, &pt[i])) {
			fprintf(stderr, "tandem bench kvm: pthread_create failed\n");
			exit(1);
		}
	}
	for (int i = 0; i < ph->n; i++) {
		pthread_join(th[i], NULL);
		if (ph->ret[i] && !err)
			err = ph->ret[i];
	}
	phase_destroy(ph);
	return err;
}

/* Per-thread mean ns/page and overall ns/page (first start to last end). */
static void phase_rates(const struct phase *ph, double *per_thread, double *overall)
{
	uint64_t lo = UINT64_MAX, hi = 0, total = 0;
	double s = 0;

	for (int i = 0; i < ph->n; i++) {
		s += (double)(ph->t1[i] - ph->t0[i]) / (double)ph->count[i];
		lo = MIN(lo, ph->t0[i]);
		hi = MAX(hi, ph->t1[i]);
		total += ph->count[i];
	}
	*per_thread = s / ph->n;
	*overall = (double)(hi - lo) / (double)total;
}

/* Write one u64 to each page of this vCPU's slice (demand_paging_test). */
static int guest_write_slice(struct phase *ph, int i, struct vcpu *v)
{
	gpa_t g = ph->first[i] << PAGE_SHIFT;
	uint64_t n = ph->count[i];
	int r = 0;

	pthread_barrier_wait(&ph->start);
	ph->t0[i] = clock_now_ns();
	for (uint64_t p = 0; p < n; p++) {
		r = vcpu_store64(v, g + (p << PAGE_SHIFT), p + 1);
		if (r)
			break;
	}
	ph->t1[i] = clock_now_ns();
	return r;
}

static int native_write_slice(struct phase *ph, int i, struct vcpu *v)
{
	uint64_t *base = (uint64_t *)(ph->native_base + (ph->first[i] << PAGE_SHIFT));
	uint64_t n = ph->count[i];

	pthread_barrier_wait(&ph->start);
	ph->t0[i] = clock_now_ns();
	for (uint64_t p = 0; p < n; p++)
		__atomic_store_n(base + (p << (PAGE_SHIFT - 3)), p + 1, __ATOMIC_RELAXED);
	ph->t1[i] = clock_now_ns();
	return 0;
}

static char *native_region(uint64_t bytes)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* 4 KiB faults, as tandem takes them (THP would serve 2 MiB). */
	(void)madvise(p, bytes, MADV_NOHUGEPAGE);
	return p;
}

static int expect(const char *measure, const char *what, uint64_t got, uint64_t want)
{
	if (got == want)
		return 0;
	fprintf(stderr, "tandem bench kvm: %s: expected %llu %s, saw %llu "
		"(the measure did not take the path it names)\n", measure,
		(unsigned long long)want, what, (unsigned long long)got);
	return -1;
}

/* ---- first_touch ----------------------------------------------------------- */

struct rate_samples {
	struct samples per_vcpu, overall;
};

static int first_touch_once(struct kvm_bench *kb, int n, double *per, double *all)
{
	struct kvm_stats st;
	struct phase ph;
	struct vm vm;
	int err;

	if (vm_create(kb, kb->pages, n, NULL, NULL, &vm))
		return -1;
	phase_init(&ph, guest_write_slice, n, kb->pages);
	err = run_vcpus(&vm, &ph);
	vm_stats(&vm, &st);
	vm_destroy(&vm);
	if (err)
		return fail("first_touch: guest write", err);
	if (expect("first_touch", "slow faults", st.faults, kb->pages))
		return -1;
	phase_rates(&ph, per, all);
	return 0;
}

static int native_first_touch_once(struct kvm_bench *kb, int n, double *per, double *all)
{
	struct phase ph;
	char *p = native_region(kb->bytes);

	if (!p)
		return fail("native mmap", errno);
	phase_init(&ph, native_write_slice, n, kb->pages);
	ph.native_base = p;
	run_native(&ph);
	munmap(p, kb->bytes);
	phase_rates(&ph, per, all);
	return 0;
}

static void report_rates(struct kvm_bench *kb, const char *name, int n, const char *prefix,
			 const struct rate_samples *t, const struct rate_samples *nat,
			 const char *method)
{
	char k1[48], k2[48], k3[48], k4[48], k5[48];
	double tp = bench_median(t->per_vcpu.v, t->per_vcpu.n);
	double to = bench_median(t->overall.v, t->overall.n);
	double np = bench_median(nat->per_vcpu.v, nat->per_vcpu.n);
	double no = bench_median(nat->overall.v, nat->overall.n);

	snprintf(k1, sizeof(k1), "%sns_per_page", prefix);
	snprintf(k2, sizeof(k2), "native_%sns_per_page", prefix);
	snprintf(k3, sizeof(k3), "overall_%sns_per_page", prefix);
	snprintf(k4, sizeof(k4), "native_overall_%sns_per_page", prefix);
	snprintf(k5, sizeof(k5), "overall_%spages_per_s", prefix);
	struct bench_field f[] = {
		BENCH_INT("vcpus", (uint64_t)n),
		BENCH_NUM(k1, tp),
		BENCH_NUM(k2, np),
		BENCH_RATIO("ratio", np > 0 ? tp / np : 0),
		BENCH_NUM(k3, to),
		BENCH_NUM(k4, no),
		BENCH_RATIO("overall_ratio", no > 0 ? to / no : 0),
		BENCH_NUM(k5, to > 0 ? 1e9 / to : 0),
		BENCH_INT("pages", kb->pages),
		BENCH_INT("repeat", kb->o->repeat),
		BENCH_STR("method", method),
		BENCH_SAMPLES("samples", t->per_vcpu.v, t->per_vcpu.n),
		BENCH_SAMPLES("native_samples", nat->per_vcpu.v, nat->per_vcpu.n),
	};

	bench_report(kb->o, "kvm", name, f, ARRAY_SIZE(f));
}

static void rate_samples_alloc(struct rate_samples *r, unsigned int n)
{
	samples_alloc(&r->per_vcpu, n);
	samples_alloc(&r->overall, n);
}

static void rate_samples_free(struct rate_samples *r)
{
	free(r->per_vcpu.v);
	free(r->overall.v);
}

static int bench_first_touch(struct kvm_bench *kb)
{
	unsigned int rep = kb->o->repeat;
	int ret = 0;

	for (size_t c = 0; c < ARRAY_SIZE(vcpu_counts) && !ret; c++) {
		int n = vcpu_counts[c];
		struct rate_samples t, nat;

		rate_samples_alloc(&t, rep);
		rate_samples_alloc(&nat, rep);
		for (unsigned int r = 0; r < rep && !ret; r++) {
			if (native_first_touch_once(kb, n, &nat.per_vcpu.v[r], &nat.overall.v[r]) ||
			    first_touch_once(kb, n, &t.per_vcpu.v[r], &t.overall.v[r]))
				ret = -1;
		}
		if (!ret)
			report_rates(kb, "first_touch", n, "", &t, &nat, "vcpu_write_u64_per_page");
		rate_samples_free(&t);
		rate_samples_free(&nat);
	}
	return ret;
}

/* ---- dontneed_refault ---------------------------------------------------- */

static int dontneed_once(struct kvm_bench *kb, int n, double *dn, double *per, double *all)
{
	struct kvm_stats s0, s1, s2;
	struct phase ph;
	struct vm vm;
	uint64_t t0;
	int err;

	if (vm_create(kb, kb->pages, n, NULL, NULL, &vm))
		return -1;
	phase_init(&ph, guest_write_slice, n, kb->pages);
	err = run_vcpus(&vm, &ph);              /* warm: every spte present */
	if (err) {
		fail("dontneed_refault: populate", err);
		goto out;
	}
	vm_stats(&vm, &s0);
	t0 = clock_now_ns();
	err = mm_madvise(vm.mm, vm.hva, kb->bytes, MADV_DONTNEED);
	*dn = (double)(clock_now_ns() - t0) / (double)kb->pages;
	if (err) {
		fail("mm_madvise", err);
		goto out;
	}
	vm_stats(&vm, &s1);
	phase_init(&ph, guest_write_slice, n, kb->pages);
	err = run_vcpus(&vm, &ph);
	if (err) {
		fail("dontneed_refault: refault", err);
		goto out;
	}
	vm_stats(&vm, &s2);
	phase_rates(&ph, per, all);
	if (expect("dontneed_refault", "sptes zapped", s1.sptes_zapped - s0.sptes_zapped,
		   kb->pages) ||
	    expect("dontneed_refault", "slow faults on refault", s2.faults - s1.faults,
		   kb->pages))
		err = -1;
out:
	vm_destroy(&vm);
	return err ? -1 : 0;
}

static int native_dontneed_once(struct kvm_bench *kb, int n, double *dn, double *per,
				double *all)
{
	struct phase ph;
	char *p = native_region(kb->bytes);
	uint64_t t0;
	int err;

	if (!p)
		return fail("native mmap", errno);
	phase_init(&ph, native_write_slice, n, kb->pages);
	ph.native_base = p;
	run_native(&ph);
	t0 = clock_now_ns();
	err = madvise(p, kb->bytes, MADV_DONTNEED);
	*dn = (double)(clock_now_ns() - t0) / (double)kb->pages;
	if (err) {
		munmap(p, kb->bytes);
		return fail("madvise", errno);
	}
	phase_init(&ph, native_write_slice, n, kb->pages);
	ph.native_base = p;
	run_native(&ph);
	munmap(p, kb->bytes);
	phase_rates(&ph, per, all);
	return 0;
}

static int bench_dontneed(struct kvm_bench *kb)
{
	unsigned int rep = kb->o->repeat;
	int ret = 0;

	for (size_t c = 0; c < ARRAY_SIZE(vcpu_counts) && !ret; c++) {
		int n = vcpu_counts[c];
		struct samples dn, ndn, sum, nsum;
		struct rate_samples t, nat;

		samples_alloc(&dn, rep);
		samples_alloc(&ndn, rep);
		samples_alloc(&sum, rep);
		samples_alloc(&nsum, rep);
		rate_samples_alloc(&t, rep);
		rate_samples_alloc(&nat, rep);
		for (unsigned int r = 0; r < rep && !ret; r++) {
			if (native_dontneed_once(kb, n, &ndn.v[r], &nat.per_vcpu.v[r],
						 &nat.overall.v[r]) ||
			    dontneed_once(kb, n, &dn.v[r], &t.per_vcpu.v[r], &t.overall.v[r]))
				ret = -1;
			sum.v[r] = dn.v[r] + t.per_vcpu.v[r];
			nsum.v[r] = ndn.v[r] + nat.per_vcpu.v[r];
		}
		if (!ret) {
			double d = bench_median(dn.v, rep), nd = bench_median(ndn.v, rep);
			double rf = bench_median(t.per_vcpu.v, rep);
			double nrf = bench_median(nat.per_vcpu.v, rep);
			double ro = bench_median(t.overall.v, rep);
			double nro = bench_median(nat.overall.v, rep);
			double s = bench_median(sum.v, rep), ns = bench_median(nsum.v, rep);
			struct bench_field f[] = {
				BENCH_INT("vcpus", (uint64_t)n),
				BENCH_NUM("ns_per_page", s),
				BENCH_NUM("native_ns_per_page", ns),
				BENCH_RATIO("ratio", ns > 0 ? s / ns : 0),
				BENCH_NUM("dontneed_ns_per_page", d),
				BENCH_NUM("native_dontneed_ns_per_page", nd),
				BENCH_RATIO("dontneed_ratio", nd > 0 ? d / nd : 0),
				BENCH_NUM("refault_ns_per_page", rf),
				BENCH_NUM("native_refault_ns_per_page", nrf),
				BENCH_RATIO("refault_ratio", nrf > 0 ? rf / nrf : 0),
				BENCH_NUM("overall_refault_ns_per_page", ro),
				BENCH_NUM("native_overall_refault_ns_per_page", nro),
				BENCH_INT("pages", kb->pages),
				BENCH_INT("repeat", rep),
				BENCH_STR("method", "host_madv_dontneed_vcpus_halted+vcpu_write_u64_per_page"),
				BENCH_SAMPLES("samples", sum.v, rep),
				BENCH_SAMPLES("native_samples", nsum.v, rep),
				BENCH_SAMPLES("dontneed_samples", dn.v, rep),
				BENCH_SAMPLES("refault_samples", t.per_vcpu.v, rep),
			};
			bench_report(kb->o, "kvm", "dontneed_refault", f, ARRAY_SIZE(f));
		}
		free(dn.v);
		free(ndn.v);
		free(sum.v);
		free(nsum.v);
		rate_samples_free(&t);
		rate_samples_free(&nat);
	}
	return ret;
}

/* ---- warm_access --------------------------------------------------------- */

/*
 * The two loops of each pattern have the same shape: the same index
 * computation and the same relaxed 8-byte load (a plain mov; an atomic
 * cannot be vectorised or elided), the guest's through vcpu_load64, the
 * native one straight from the frame. noinline keeps each loop in its own
 * function, compiled alone.
 */
static __attribute__((noinline)) uint64_t
guest_lcg(struct vcpu *v, gpa_t base, uint64_t mask, uint64_t n, int *err)
{
	uint64_t x = SEED, sum = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t val;

		x = x * LCG_A + LCG_C;
		if (unlikely(vcpu_load64(v, base + ((x >> 24) & mask), &val))) {
			*err = -EFAULT;
			break;
		}
		sum += val;
	}
	return sum;
}

static __attribute__((noinline)) uint64_t
native_lcg(const char *base, uint64_t mask, uint64_t n)
{
	uint64_t x = SEED, sum = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t val;

		x = x * LCG_A + LCG_C;
		val = __atomic_load_n((const uint64_t *)(base + ((x >> 24) & mask)),
				      __ATOMIC_RELAXED);
		sum += val;
	}
	return sum;
}

static __attribute__((noinline)) uint64_t
guest_chase(struct vcpu *v, gpa_t base, uint64_t n, int *err)
{
	uint64_t off = 0;

	for (uint64_t i = 0; i < n; i++) {
		if (unlikely(vcpu_load64(v, base + off, &off))) {
			*err = -EFAULT;
			break;
		}
	}
	return off;
}

static __attribute__((noinline)) uint64_t
native_chase(const char *base, uint64_t n)
{
	uint64_t off = 0;

	for (uint64_t i = 0; i < n; i++)
		off = __atomic_load_n((const uint64_t *)(base + off), __ATOMIC_RELAXED);
	return off;
}

/*
 * How much of its core the vCPU thread had: a loop of independent adds,
 * bound by the core's ALU throughput. The native loops above are bound by
 * a latency (the LCG's multiply-add, the chase's load); the guest lcg loop,
 * which issues about twice their instructions, by the core's issue width.
 * When the core's other hardware thread is busy (on this machine, a guest
 * of a hypervisor: whatever the host runs on the sibling thread) the probe and the guest lcg loop slow down and
 * the native loops do not. The probe's figure tells runs on a shared core
 * from runs on a whole one.
 */
static __attribute__((noinline)) void alu_probe(uint64_t n)
{
	uint64_t a = 0, b = 0, c = 0, d = 0;

	if (!n)
		return;
	/* In asm, its loop aligned to 64 bytes: a loop this short runs ~40%
	 * slower when it straddles two 64-byte lines (AMD Zen 4), and where it
	 * lands would depend on unrelated code. */
	__asm__ volatile(".p2align 6\n"
			 "1:\n\t"
			 "add $1, %[a]\n\t"
			 "add $3, %[b]\n\t"
			 "xor $5, %[c]\n\t"
			 "add %[n], %[d]\n\t"
			 "sub $1, %[n]\n\t"
			 "jnz 1b"
			 : [a] "+r"(a), [b] "+r"(b), [c] "+r"(c), [d] "+r"(d), [n] "+r"(n)
			 : : "cc");
}

enum { PAT_LCG, PAT_CHASE, NR_PATTERNS };
static const char *const pattern_names[] = { "lcg", "chase" };
static const uint64_t warm_sizes[] = { WARM_SMALL, WARM_LARGE };
#define NR_WARM (ARRAY_SIZE(warm_sizes) * NR_PATTERNS)

struct warm_arg {
	const char *host_base;          /* frame of WARM_GFN; frames are contiguous */
	uint64_t accesses;
	unsigned int repeat;
	struct samples guest[NR_WARM], native[NR_WARM], probe[NR_WARM]; /* kept */
	double probe_floor;             /* the lowest chunk probe seen: a whole core */
	/* Every run of each measure, whole-core or not. */
	unsigned int nr_runs[NR_WARM];
	double run_g[NR_WARM][WARM_MAX_ATTEMPTS], run_n[NR_WARM][WARM_MAX_ATTEMPTS],
	       run_p[NR_WARM][WARM_MAX_ATTEMPTS];
	unsigned int shared_runs[NR_WARM], kept_shared[NR_WARM];
	double shared_ratio[NR_WARM][WARM_MAX_ATTEMPTS];
	uint64_t misses[NR_WARM];       /* soft-TLB fills: real misses */
	uint64_t slow[NR_WARM];         /* slow-path accesses: misses, aborts */
	bool mismatch[NR_WARM];
};

/* Sattolo's algorithm: one cycle through every 8-byte slot of the set,
 * stored through the guest so that both loops read the same chain. */
static int write_chain(struct vcpu *v, gpa_t base, uint64_t bytes)
{
	uint64_t slots = bytes / 8, x = SEED ^ bytes;
	uint64_t *perm = xcalloc(slots, sizeof(uint64_t));
	int r = 0;

	for (uint64_t i = 0; i < slots; i++)
		perm[i] = i;
	for (uint64_t i = slots - 1; i > 0; i--) {
		uint64_t j = lcg_next(&x) % i, t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint64_t i = 0; i < slots && !r; i++)
		r = vcpu_store64(v, base + i * 8, perm[i] * 8);
	free(perm);
	return r;
}

/*
 * One run of pattern p: the native and guest loops alternate in short
 * chunks, so that what else the core runs meanwhile weighs on both loops
 * alike, and each loop's figure is its median chunk: a chunk during which
 * the thread lost its CPU (a 4 ms tick is a few chunks long) times the
 * scheduler, not the loop. The ALU probe runs beside each chunk; the
 * lowest chunk probe ever seen is the whole-core floor.
 */
static void warm_run(struct warm_arg *wa, struct vcpu *v, int p, uint64_t mask, uint64_t n,
		     double *g_ns, double *n_ns, double *probe_ns, uint64_t *g, uint64_t *h,
		     int *err)
{
	uint64_t m = n / WARM_CHUNKS, q = m / 4 ? m / 4 : 1, t0;
	double tn[WARM_CHUNKS], tg[WARM_CHUNKS], tp[WARM_CHUNKS];

	for (int c = 0; c < WARM_CHUNKS && !*err; c++) {
		t0 = clock_now_ns();
		*h = p == PAT_LCG ? native_lcg(wa->host_base, mask, m)
				  : native_chase(wa->host_base, m);
		tn[c] = (double)(clock_now_ns() - t0) / (double)m;
		t0 = clock_now_ns();
		*g = p == PAT_LCG ? guest_lcg(v, WARM_GPA, mask, m, err)
				  : guest_chase(v, WARM_GPA, m, err);
		tg[c] = (double)(clock_now_ns() - t0) / (double)m;
		t0 = clock_now_ns();
		alu_probe(q);
		tp[c] = (double)(clock_now_ns() - t0) / (double)q;
		if (!wa->probe_floor || tp[c] < wa->probe_floor)
			wa->probe_floor = tp[c];
	}
	*n_ns = bench_median(tn, WARM_CHUNKS);
	*g_ns = bench_median(tg, WARM_CHUNKS);
	*probe_ns = bench_median(tp, WARM_CHUNKS);
}

static bool warm_whole_core(const struct warm_arg *wa, double probe)
{
	return probe <= WARM_SHARED_FACTOR * wa->probe_floor;
}

static unsigned int warm_whole_runs(const struct warm_arg *wa, unsigned int k)
{
	unsigned int n = 0;

	for (unsigned int r = 0; r < wa->nr_runs[k]; r++)
		n += warm_whole_core(wa, wa->run_p[k][r]);
	return n;
}

/* Runs of measure k (pattern p over the set its chain is written for)
 * until --repeat of them ran on a whole core, or the attempts run out. */
static int warm_measure(struct warm_arg *wa, struct vcpu *v, unsigned int k, int p,
			uint64_t mask)
{
	uint64_t n = wa->accesses, g = 0, h = 0;
	int err = 0;

	/* warm the caches and the branch predictors */
	if (p == PAT_LCG) {
		guest_lcg(v, WARM_GPA, mask, n / 8, &err);
		native_lcg(wa->host_base, mask, n / 8);
	} else {
		guest_chase(v, WARM_GPA, n / 8, &err);
		native_chase(wa->host_base, n / 8);
	}
	while (!err && warm_whole_runs(wa, k) < wa->repeat && wa->nr_runs[k] < WARM_MAX_ATTEMPTS) {
		unsigned int r = wa->nr_runs[k]++;

		warm_run(wa, v, p, mask, n, &wa->run_g[k][r], &wa->run_n[k][r],
			 &wa->run_p[k][r], &g, &h, &err);
		if (g != h)
			wa->mismatch[k] = true;
		if (!warm_whole_core(wa, wa->run_p[k][r]))
			clock_sleep_ns(WARM_SHARED_PAUSE_NS);
	}
	return err;
}

/* Keep --repeat runs of measure k: the whole-core ones, and, short of
 * those, the least shared; the rest are set aside. */
static void warm_keep(struct warm_arg *wa, unsigned int k)
{
	bool kept[WARM_MAX_ATTEMPTS] = { 0 };
	unsigned int nk = 0;

	for (unsigned int r = 0; r < wa->nr_runs[k] && nk < wa->repeat; r++)
		if (warm_whole_core(wa, wa->run_p[k][r]))
			kept[r] = true, nk++;
	while (nk < wa->repeat && nk < wa->nr_runs[k]) {
		unsigned int best = 0;
		bool found = false;

		for (unsigned int r = 0; r < wa->nr_runs[k]; r++)
			if (!kept[r] && (!found || wa->run_p[k][r] < wa->run_p[k][best]))
				best = r, found = true;
		kept[best] = true;
		nk++;
		wa->kept_shared[k]++;
	}
	nk = 0;
	for (unsigned int r = 0; r < wa->nr_runs[k]; r++) {
		double ratio = wa->run_n[k][r] > 0 ? wa->run_g[k][r] / wa->run_n[k][r] : 0;

		if (kept[r]) {
			wa->guest[k].v[nk] = wa->run_g[k][r];
			wa->native[k].v[nk] = wa->run_n[k][r];
			wa->probe[k].v[nk] = wa->run_p[k][r];
			nk++;
		} else {
			wa->shared_ratio[k][wa->shared_runs[k]++] = ratio;
		}
	}
	wa->guest[k].n = wa->native[k].n = wa->probe[k].n = nk;
}

static int guest_warm(struct phase *ph, int i, struct vcpu *v)
{
	struct warm_arg *wa = ph->arg;
	int err = 0;

	/* A first floor: probes spread over some 100 ms. Every chunk of
	 * every run lowers it further, and the second pass judges by the
	 * final one (a floor taken while the sibling was busy is too high). */
	for (int c = 0; c < 64; c++) {
		uint64_t q = wa->accesses / WARM_CHUNKS / 4, t0 = clock_now_ns();
		double t;

		alu_probe(q ? q : 1);
		t = (double)(clock_now_ns() - t0) / (double)(q ? q : 1);
		if (!wa->probe_floor || t < wa->probe_floor)
			wa->probe_floor = t;
		clock_sleep_ns(1500000);
	}
	for (int pass = 0; pass < 2 && !err; pass++) {
		for (size_t s = 0; s < ARRAY_SIZE(warm_sizes) && !err; s++) {
			uint64_t bytes = warm_sizes[s], mask = (bytes - 1) & ~7ULL;
			bool written = false;

			for (int p = 0; p < NR_PATTERNS && !err; p++) {
				unsigned int k = (unsigned int)(s * NR_PATTERNS + (size_t)p);
				uint64_t slow0 = v->stat.accesses_slow, fills0 = v->stat.stlb_fills;

				if (warm_whole_runs(wa, k) >= wa->repeat ||
				    wa->nr_runs[k] >= WARM_MAX_ATTEMPTS)
					continue;
				if (!written) {
					err = write_chain(v, WARM_GPA, bytes);
					written = true;
				}
				if (!err)
					err = warm_measure(wa, v, k, p, mask);
				wa->misses[k] += v->stat.stlb_fills - fills0;
				wa->slow[k] += v->stat.accesses_slow - slow0;
			}
		}
	}
	for (unsigned int k = 0; k < NR_WARM && !err; k++)
		warm_keep(wa, k);
	return err;
}

static int guest_touch_all(struct phase *ph, int i, struct vcpu *v)
{
	for (uint64_t p = 0; p < ph->count[i]; p++) {
		int r = vcpu_store64(v, p << PAGE_SHIFT, 0);

		if (r)
			return r;
	}
	return 0;
}

static int bench_warm(struct kvm_bench *kb)
{
	struct warm_arg wa = { .accesses = 16 * kb->o->calls, .repeat = kb->o->repeat };
	const char *frame0 = NULL;
	struct phase ph;
	struct vm vm;
	int err, ret = -1;

	if (vm_create(kb, WARM_GFN + WARM_PAGES, 1, NULL, NULL, &vm))
		return -1;
	phase_init(&ph, guest_touch_all, 1, WARM_GFN + WARM_PAGES);
	err = run_vcpus(&vm, &ph);
	if (err) {
		fail("warm_access: populate", err);
		goto out;
	}
	/* The native loop walks the frames the guest pages map. It uses one
	 * base, as the guest loop does, so the frames must be contiguous (a
	 * fresh mm's demand-zero frames come out of the free list in order). */
	for (uint64_t p = 0; p < WARM_PAGES; p++) {
		struct page *page;
		const char *a;

		err = get_user_page(vm.mm, vm.hva + ((WARM_GFN + p) << PAGE_SHIFT), FOLL_NOFAULT,
				    &page, NULL);
		if (err) {
			fail("warm_access: get_user_page", err);
			goto out;
		}
		a = page_address(page);
		put_page(page);
		if (p == 0)
			frame0 = a;
		else if (a != frame0 + (p << PAGE_SHIFT)) {
			fprintf(stderr, "tandem bench kvm: warm_access: guest frames are not "
				"contiguous (gfn %llu); the native loop cannot share the "
				"guest's address computation\n", (unsigned long long)(WARM_GFN + p));
			goto out;
		}
	}
	wa.host_base = frame0;
	for (unsigned int k = 0; k < NR_WARM; k++) {
		samples_alloc(&wa.guest[k], kb->o->repeat);
		samples_alloc(&wa.native[k], kb->o->repeat);
		samples_alloc(&wa.probe[k], kb->o->repeat);
	}
	phase_init(&ph, guest_warm, 1, WARM_PAGES);
	ph.arg = &wa;
	err = run_vcpus(&vm, &ph);
	if (err) {
		fail("warm_access: guest loop", err);
		goto out_free;
	}
	ret = 0;
	for (size_t s = 0; s < ARRAY_SIZE(warm_sizes); s++) {
		for (int p = 0; p < NR_PATTERNS; p++) {
			unsigned int k = (unsigned int)(s * NR_PATTERNS + (size_t)p);
			double g = bench_median(wa.guest[k].v, wa.guest[k].n);
			double n = bench_median(wa.native[k].v, wa.native[k].n);
			double pr = bench_median(wa.probe[k].v, wa.probe[k].n);
			struct bench_field f[] = {
				BENCH_INT("vcpus", 1),
				BENCH_STR("pattern", pattern_names[p]),
				BENCH_INT("ws_bytes", warm_sizes[s]),
				{ .key = "ns_per_access", .kind = BF_NUM, .num = g, .prec = 3 },
				{ .key = "native_ns_per_access", .kind = BF_NUM, .num = n, .prec = 3 },
				BENCH_RATIO("ratio", n > 0 ? g / n : 0),
				{ .key = "alu_probe_ns", .kind = BF_NUM, .num = pr, .prec = 3 },
				BENCH_INT("shared_runs", wa.shared_runs[k]),
				BENCH_INT("kept_shared", wa.kept_shared[k]),
				BENCH_INT("stlb_misses", wa.misses[k]),
				BENCH_INT("slow_accesses", wa.slow[k]),
				BENCH_INT("accesses", wa.accesses),
				BENCH_INT("repeat", kb->o->repeat),
				BENCH_STR("method", p == PAT_LCG ?
					  "random_8B_loads_lcg_index_summed" :
					  "pointer_chase_8B_loads_sattolo_cycle"),
				BENCH_SAMPLES("samples", wa.guest[k].v, wa.guest[k].n),
				BENCH_SAMPLES("native_samples", wa.native[k].v, wa.native[k].n),
				BENCH_SAMPLES("alu_probe_samples", wa.probe[k].v, wa.probe[k].n),
				BENCH_SAMPLES("shared_samples", wa.shared_ratio[k], wa.shared_runs[k]),
			};
			/* Nothing flushes the soft TLB here, so a miss (a refill)
			 * means the loop is not measuring what it says. Slow-path
			 * accesses also count rseq sections aborted by preemption,
			 * which a loaded machine makes by the hundred: reported,
			 * not checked. */
			if (wa.mismatch[k] || wa.misses[k] > wa.accesses / 100000) {
				fprintf(stderr, "tandem bench kvm: warm_access %s %llu: %s\n",
					pattern_names[p], (unsigned long long)warm_sizes[s],
					wa.mismatch[k] ? "guest and native loops disagree"
						       : "soft-TLB misses in a warm loop");
				ret = -1;
			}
			bench_report(kb->o, "kvm", "warm_access", f, ARRAY_SIZE(f));
		}
	}
out_free:
	for (unsigned int k = 0; k < NR_WARM; k++) {
		free(wa.guest[k].v);
		free(wa.native[k].v);
		free(wa.probe[k].v);
	}
out:
	vm_destroy(&vm);
	return ret;
}

/* ---- invalidate_2m ------------------------------------------------------- */

struct inv_state;
struct inv_probe {
	struct mmu_notifier mn;         /* first: container */
	struct inv_state *s;
	bool after_kvm;                 /* called after kvm's callback */
};

struct inv_state {
	struct vm *vm;
	_Atomic uint64_t gen;                   /* bumped: re-touch the range */
	_Atomic uint64_t ack[KB_MAX_VCPUS];     /* gen each vCPU has re-touched */
	/* Each vCPU, when it finds its soft TLB flushed: how many flushes so
	 * far, and when it noticed (within one guest-loop step of its exit
	 * from guest mode, unless it is preempted in between). */
	_Atomic uint64_t flushes[KB_MAX_VCPUS];
	_Atomic uint64_t flush_seen_ns[KB_MAX_VCPUS];
	bool probing;                           /* this iteration is probed */
	/* written by the probes, on the invalidating thread */
	uint64_t t_start_before, t_start_after, t_end_before, t_end_after;
	long nvcsw_before, nvcsw_after, nivcsw_before, nivcsw_after;
	int in_guest;
};

static long thread_csw(long *invol)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	*invol = ru.ru_nivcsw;
	return ru.ru_nvcsw;
}

static int probe_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct inv_probe *p = (struct inv_probe *)mn;
	struct inv_state *s = p->s;

	if (!s->probing)
		return 0;
	if (p->after_kvm) {
		s->t_start_after = clock_now_ns();
		s->nvcsw_after = thread_csw(&s->nivcsw_after);
		return 0;
	}
	s->nvcsw_before = thread_csw(&s->nivcsw_before);
	s->in_guest = 0;
	for (int i = 0; i < s->vm->n; i++)
		if (atomic_load_explicit(&s->vm->vcpu[i]->kvm_vcpu.mode, memory_order_relaxed) !=
		    OUTSIDE_GUEST_MODE)
			s->in_guest++;
	s->t_start_before = clock_now_ns();
	return 0;
}

static void probe_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct inv_probe *p = (struct inv_probe *)mn;

	if (!p->s->probing)
		return;
	if (p->after_kvm)
		p->s->t_end_after = clock_now_ns();
	else
		p->s->t_end_before = clock_now_ns();
}

static const struct mmu_notifier_ops probe_ops = {
	.invalidate_range_start = probe_start,
	.invalidate_range_end = probe_end,
};

/*
 * The running guest: a load and a store per step, at random in a hot
 * window of its own (64 pages, outside the range); when the host bumps
 * gen, it re-writes its share of the 2 MiB range (every n-th page), so
 * that every spte of the range is present when the host invalidates it.
 * Every 16 steps it checks whether its soft TLB was flushed. Runs until
 * vcpu_stop.
 */
static int guest_inv(struct phase *ph, int i, struct vcpu *v)
{
	struct inv_state *s = ph->arg;
	gpa_t hot = (INV_PAGES + (uint64_t)i * HOT_PAGES) << PAGE_SHIFT;
	uint64_t seen = 0, x = SEED + (uint64_t)i, mask = (HOT_PAGES << PAGE_SHIFT) - 8;
	uint64_t flushes = v->stat.stlb_flushes;
	int r = 0;

	/* Write the hot window first: a first load would map the zero page,
	 * and the store after it would break COW (an invalidation of its own). */
	for (uint64_t p = 0; p < HOT_PAGES && !r; p++)
		r = vcpu_store64(v, hot + (p << PAGE_SHIFT), 0);
	while (!r) {
		uint64_t g = atomic_load_explicit(&s->gen, memory_order_acquire);

		if (g != seen) {
			for (uint64_t p = (uint64_t)i; p < INV_PAGES && !r; p += (uint64_t)ph->n)
				r = vcpu_store64(v, p << PAGE_SHIFT, g);
			if (r)
				break;
			seen = g;
			atomic_store_explicit(&s->ack[i], g, memory_order_release);
		}
		for (int k = 0; k < 16 && !r; k++) {
			gpa_t a = hot + ((x >> 24) & mask);
			uint64_t val;

			x = x * LCG_A + LCG_C;
			r = vcpu_load64(v, a, &val);
			if (!r)
				r = vcpu_store64(v, a, val + 1);
		}
		if (v->stat.stlb_flushes != flushes) {
			flushes = v->stat.stlb_flushes;
			atomic_store_explicit(&s->flush_seen_ns[i], clock_now_ns(), memory_order_relaxed);
			atomic_store_explicit(&s->flushes[i], flushes, memory_order_release);
		}
	}
	return r == -EINTR ? 0 : r;
}

/* A vCPU that takes longer than this to leave guest mode after the request
 * was not running: a running one leaves at its next access. */
#define LATE_NS 50000

struct inv_result {
	/* pooled over runs */
	double *us, *kvm_start_us, *kvm_end_us, *exit_us;
	unsigned int n_us, n_probed, n_exit;
	double *slept_us, *noslept_us, *late_us, *ontime_us;
	unsigned int n_slept, n_noslept, n_late, n_ontime;
	double in_guest_sum, sleeps_sum, invol_sum, late_vcpus_sum;
	uint64_t zapped, invalidations;
	struct samples run_median, run_p99;
};

static void sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(us * 1000) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Wait for every vCPU to report the flush after `before`; -1 if one died. */
static int wait_flush_seen(struct inv_state *s, struct phase *ph, const uint64_t *before)
{
	for (int i = 0; i < ph->n; i++) {
		while (atomic_load_explicit(&s->flushes[i], memory_order_acquire) == before[i]) {
			if (atomic_load(&ph->done))
				return -1;
			sleep_us(20);
		}
	}
	return 0;
}

/* One run: a fresh VM with n vCPUs running guest_inv, INV_ITERS timed
 * host invalidations of the range. */
static int invalidate_run(struct kvm_bench *kb, int n, unsigned int run,
			  struct inv_result *res)
{
	struct inv_state s = { 0 };
	/* late is registered before the VM, so it is called after it; early
	 * is registered after the VM and called before it. */
	struct inv_probe late = { .mn = { .ops = &probe_ops }, .s = &s, .after_kvm = true };
	struct inv_probe early = { .mn = { .ops = &probe_ops }, .s = &s, .after_kvm = false };
	double us[INV_ITERS];
	unsigned int n_us = 0;
	uint64_t x = SEED ^ ((uint64_t)n << 8) ^ run;
	struct kvm_stats st0, st1;
	struct phase ph;
	struct vm vm;
	int err = 0;

	if (vm_create(kb, INV_VM_PAGES, n, &late.mn, &early.mn, &vm))
		return -1;
	s.vm = &vm;
	phase_init(&ph, guest_inv, n, INV_VM_PAGES);
	ph.arg = &s;
	for (int i = 0; i < n; i++) {
		if (vcpu_run(vm.vcpu[i], vcpu_phase_entry, &ph)) {
			fprintf(stderr, "tandem bench kvm: vcpu_run failed\n");
			exit(1);
		}
	}
	vm_stats(&vm, &st0);
	for (unsigned int it = 0; it < INV_ITERS; it++) {
		uint64_t g = it + 1, t0, t, fl[KB_MAX_VCPUS];
		int i;

		/* Let every vCPU map its share of the range again. */
		atomic_store_explicit(&s.gen, g, memory_order_release);
		for (i = 0; i < n; i++) {
			while (atomic_load_explicit(&s.ack[i], memory_order_acquire) != g) {
				if (atomic_load(&ph.done)) {
					err = -1;
					goto stop;
				}
				sleep_us(20);
			}
			fl[i] = atomic_load_explicit(&s.flushes[i], memory_order_acquire);
		}
		/* Then strike at a random point of their hot loops. */
		sleep_us(100 + lcg_next(&x) % 500);
		s.probing = it & 1;
		t0 = clock_now_ns();
		err = mm_madvise(vm.mm, vm.hva, INV_BYTES, MADV_DONTNEED);
		t = clock_now_ns() - t0;
		if (err) {
			fail("mm_madvise", err);
			goto stop;
		}
		if (!s.probing) {
			us[n_us++] = (double)t / 1000.0;
			res->us[res->n_us++] = (double)t / 1000.0;
			continue;
		}
		if (wait_flush_seen(&s, &ph, fl)) {
			err = -1;
			goto stop;
		}
		double ks = (double)(s.t_start_after - s.t_start_before) / 1000.0;
		double ke = (double)(s.t_end_after - s.t_end_before) / 1000.0;
		long sleeps = s.nvcsw_after - s.nvcsw_before;
		unsigned int k = res->n_probed++, nlate = 0;

		for (i = 0; i < n; i++) {
			uint64_t seen = atomic_load_explicit(&s.flush_seen_ns[i],
							     memory_order_relaxed);
			uint64_t d = seen > s.t_start_before ? seen - s.t_start_before : 0;

			res->exit_us[res->n_exit++] = (double)d / 1000.0;
			nlate += d > LATE_NS;
		}
		res->kvm_start_us[k] = ks;
		res->kvm_end_us[k] = ke;
		res->in_guest_sum += s.in_guest;
		res->sleeps_sum += (double)sleeps;
		res->invol_sum += (double)(s.nivcsw_after - s.nivcsw_before);
		res->late_vcpus_sum += nlate;
		if (sleeps)
			res->slept_us[res->n_slept++] = ks;
		else
			res->noslept_us[res->n_noslept++] = ks;
		if (nlate)
			res->late_us[res->n_late++] = ks;
		else
			res->ontime_us[res->n_ontime++] = ks;
	}
stop:
	s.probing = false;
	vm_stats(&vm, &st1);
	for (int i = 0; i < n; i++) {
		int r = vcpu_stop(vm.vcpu[i]);

		if (r && !err)
			err = fail("invalidate_2m: guest", r);
	}
	phase_destroy(&ph);
	vm_destroy(&vm);
	if (err)
		return -1;
	res->zapped += st1.sptes_zapped - st0.sptes_zapped;
	res->invalidations += INV_ITERS;
	res->run_median.v[run] = bench_median(us, n_us);
	res->run_p99.v[run] = percentile(us, n_us, 99);
	return expect("invalidate_2m", "sptes zapped", st1.sptes_zapped - st0.sptes_zapped,
		      INV_PAGES * INV_ITERS);
}

/* The same host call on an mm with no subscriber, and madvise(2). */
static int invalidate_baselines(struct kvm_bench *kb, double *novm, double *native,
				unsigned int iters)
{
	struct mm *mm;
	hva_t hva;
	char *p;
	int err;

	err = mm_create(kb->host, &mm);
	if (err)
		return fail("mm_create", err);
	err = mm_mmap(mm, 0, INV_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      &hva);
	if (err) {
		mmput(mm);
		return fail("mm_mmap", err);
	}
	p = native_region(INV_BYTES);
	if (!p) {
		mmput(mm);
		return fail("native mmap", errno);
	}
	for (unsigned int it = 0; it < iters && !err; it++) {
		uint64_t t0;

		for (uint64_t i = 0; i < INV_PAGES && !err; i++) {
			struct page *page;

			err = get_user_page(mm, hva + (i << PAGE_SHIFT), FOLL_WRITE, &page, NULL);
			if (!err) {
				*(volatile char *)page_address(page) = 1;
				put_page(page);
			}
		}
		if (err)
			break;
		t0 = clock_now_ns();
		err = mm_madvise(mm, hva, INV_BYTES, MADV_DONTNEED);
		novm[it] = (double)(clock_now_ns() - t0) / 1000.0;
		for (uint64_t i = 0; i < INV_BYTES; i += PAGE_SIZE)
			((volatile char *)p)[i] = 1;
		t0 = clock_now_ns();
		if (madvise(p, INV_BYTES, MADV_DONTNEED))
			err = -errno;
		native[it] = (double)(clock_now_ns() - t0) / 1000.0;
	}
	munmap(p, INV_BYTES);
	mmput(mm);
	return err ? fail("invalidate_2m baseline", err) : 0;
}

static int bench_invalidate(struct kvm_bench *kb)
{
	unsigned int rep = kb->o->repeat, total = rep * INV_ITERS;
	double *novm = xcalloc(total, sizeof(double)), *native = xcalloc(total, sizeof(double));
	int ret = 0;

	if (invalidate_baselines(kb, novm, native, total)) {
		free(novm);
		free(native);
		return -1;
	}
	double nv = percentile(novm, total, 50), nv99 = percentile(novm, total, 99);
	double na = percentile(native, total, 50), na99 = percentile(native, total, 99);

	/* Both flush protocols: RSEQ (where built) and KVM's WAIT. */
	static const enum kvm_kick_mode kicks[] = { KVM_KICK_RSEQ, KVM_KICK_WAIT };

	for (size_t k = 0; k < ARRAY_SIZE(kicks) && !ret; k++)
	for (size_t c = 0; c < ARRAY_SIZE(vcpu_counts) && !ret; c++) {
		int n = vcpu_counts[c];
		struct inv_result res = { 0 };

		if (kicks[k] == KVM_KICK_RSEQ && !kvm_rseq_available())
			break;
		kb->kick = kicks[k];

		res.us = xcalloc(total, sizeof(double));
		res.kvm_start_us = xcalloc(total, sizeof(double));
		res.kvm_end_us = xcalloc(total, sizeof(double));
		res.exit_us = xcalloc(total * (unsigned int)n, sizeof(double));
		res.slept_us = xcalloc(total, sizeof(double));
		res.noslept_us = xcalloc(total, sizeof(double));
		res.late_us = xcalloc(total, sizeof(double));
		res.ontime_us = xcalloc(total, sizeof(double));
		samples_alloc(&res.run_median, rep);
		samples_alloc(&res.run_p99, rep);
		for (unsigned int r = 0; r < rep && !ret; r++)
			if (invalidate_run(kb, n, r, &res))
				ret = -1;
		if (!ret) {
			double m = percentile(res.us, res.n_us, 50);
			double p99 = percentile(res.us, res.n_us, 99);
			double np = res.n_probed ? (double)res.n_probed : 1;
#define PCT(k, a, nn, p) BENCH_NUM(k, percentile(a, nn, p))
#define NUM2(k, v) { .key = (k), .kind = BF_NUM, .num = (v), .prec = 2 }
			struct bench_field f[] = {
				BENCH_INT("vcpus", (uint64_t)n),
				BENCH_STR("kick", kvm_kick_mode_name(kicks[k])),
				BENCH_NUM("us_median", m),
				BENCH_NUM("us_p99", p99),
				BENCH_NUM("novm_us_median", nv),
				BENCH_NUM("novm_us_p99", nv99),
				BENCH_NUM("native_us_median", na),
				BENCH_NUM("native_us_p99", na99),
				BENCH_RATIO("ratio", na > 0 ? m / na : 0),
				BENCH_RATIO("novm_ratio", nv > 0 ? m / nv : 0),
				PCT("kvm_start_us_median", res.kvm_start_us, res.n_probed, 50),
				PCT("kvm_start_us_p99", res.kvm_start_us, res.n_probed, 99),
				PCT("kvm_end_us_median", res.kvm_end_us, res.n_probed, 50),
				NUM2("waited_vcpus_mean", res.in_guest_sum / np),
				NUM2("sleeps_mean", res.sleeps_sum / np),
				BENCH_NUM("slept_pct", 100.0 * res.n_slept / np),
				NUM2("invol_csw_mean", res.invol_sum / np),
				PCT("vcpu_exit_us_median", res.exit_us, res.n_exit, 50),
				PCT("vcpu_exit_us_p99", res.exit_us, res.n_exit, 99),
				BENCH_NUM("late_pct", 100.0 * res.n_late / np),
				NUM2("late_vcpus_mean", res.late_vcpus_sum / np),
				PCT("late_kvm_start_us_median", res.late_us, res.n_late, 50),
				PCT("late_kvm_start_us_p99", res.late_us, res.n_late, 99),
				PCT("ontime_kvm_start_us_median", res.ontime_us, res.n_ontime, 50),
				PCT("ontime_kvm_start_us_p99", res.ontime_us, res.n_ontime, 99),
				BENCH_INT("sptes_zapped_per_inval",
					  res.invalidations ? res.zapped / res.invalidations : 0),
				BENCH_INT("iterations", res.n_us),
				BENCH_INT("probed_iterations", res.n_probed),
				BENCH_INT("repeat", rep),
				BENCH_STR("method", "host_madv_dontneed_2m_whole_call_vcpus_running"),
				BENCH_SAMPLES("run_medians", res.run_median.v, rep),
				BENCH_SAMPLES("run_p99s", res.run_p99.v, rep),
			};
#undef PCT
#undef NUM2
			bench_report(kb->o, "kvm", "invalidate_2m", f, ARRAY_SIZE(f));
		}
		free(res.us);
		free(res.kvm_start_us);
		free(res.kvm_end_us);
		free(res.exit_us);
		free(res.slept_us);
		free(res.noslept_us);
		free(res.late_us);
		free(res.ontime_us);
		free(res.run_median.v);
		free(res.run_p99.v);
		kb->kick = KVM_KICK_AUTO;
	}
	free(novm);
	free(native);
	return ret;
}

/* ---- the run ------------------------------------------------------------- */

static const char *const kvm_measures[] = {
	"warm_access", "first_touch", "dontneed_refault", "invalidate_2m",
};

int bench_kvm(const struct bench_opts *o)
{
	struct kvm_bench kb = { .o = o };
	struct host_config cfg = { .prefault = true };
	int err, status = 1;
	bool known = !o->only;

	for (size_t i = 0; i < ARRAY_SIZE(kvm_measures); i++)
		known |= o->only && strcmp(o->only, kvm_measures[i]) == 0;
	if (!known) {
		fprintf(stderr, "tandem bench kvm: no measure '%s' (have:", o->only);
		for (size_t i = 0; i < ARRAY_SIZE(kvm_measures); i++)
			fprintf(stderr, " %s", kvm_measures[i]);
		fprintf(stderr, ")\n");
		return 1;
	}

	kb.pages = (o->region_bytes + PAGE_SIZE - 1) / PAGE_SIZE;
	kb.pages = (kb.pages + KB_MAX_VCPUS - 1) / KB_MAX_VCPUS * KB_MAX_VCPUS;
	kb.bytes = kb.pages * PAGE_SIZE;
	/* One VM at a time: its region, its page tables, the watermark. */
	cfg.ram_bytes = PAGE_ALIGN(kb.bytes + kb.bytes / 64 + (32ULL << 20));
	if (cfg.ram_bytes > HOST_RAM_MAX) {
		fprintf(stderr, "tandem bench kvm: --size too large for the host arena\n");
		return 1;
	}
	err = host_create(&cfg, &kb.host);
	if (err) {
		fail("host_create", err);
		return 1;
	}
	bench_note(o, "bench kvm: %llu-page (%llu KiB) guest regions, %u runs per measure, "
		   "median shown; %llu MiB pre-faulted host arena",
		   (unsigned long long)kb.pages, (unsigned long long)(kb.bytes >> 10),
		   o->repeat, (unsigned long long)(cfg.ram_bytes >> 20));
	bench_note(o, "native: this machine's kernel, 4 KiB pages (MADV_NOHUGEPAGE), "
		   "the same number of threads, measured in the same run");

	/* First: a fresh host hands out contiguous frames (see bench_warm). */
	if (bench_wants(o, "warm_access") && bench_warm(&kb))
		goto out;
	if (bench_wants(o, "first_touch") && bench_first_touch(&kb))
		goto out;
	if (bench_wants(o, "dontneed_refault") && bench_dontneed(&kb))
		goto out;
	if (bench_wants(o, "invalidate_2m")) {
		bench_note(o, "invalidate_2m: %u host calls per run (half probed for the "
			   "kvm breakdown), vCPUs running; times in us", INV_ITERS);
		if (bench_invalidate(&kb))
			goto out;
	}

	int inv = host_check_invariants(kb.host);
	uint64_t in_use = host_frames_in_use(kb.host);

	bench_note(o, "host_check_invariants=%d host_frames_in_use=%llu", inv,
		   (unsigned long long)in_use);
	if (inv == 0 && in_use == 0)
		status = 0;
	else
		fprintf(stderr, "tandem bench kvm: teardown check failed: "
			"host_check_invariants=%d host_frames_in_use=%llu\n", inv,
			(unsigned long long)in_use);
out:
	err = host_destroy(kb.host);
	if (err) {
		fail("host_destroy", err);
		status = 1;
	}
	return status;
}
