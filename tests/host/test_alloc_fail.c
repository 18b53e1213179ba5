/* SPDX-License-Identifier: MIT */
/*
 * test_alloc_fail.c - allocation-failure sweeps (base/fault_inject.h).
 *
 * For each mechanism, a case builds its state (host, mm, VMAs, data, VM,
 * vCPU ...) with injection off, arms the injection, runs the one operation
 * under test, and disarms. The sweep does that for N = 1, 2, 3, ... until
 * the operation runs without reaching the Nth allocation, and checks:
 *   - a run in which an allocation failed returned -ENOMEM (for a vCPU
 *     access: the guest's load or store got it, so the error reached the
 *     caller through the retry loops in between);
 *   - host_check_invariants() passes, and the state is as before the call
 *     (VMA layout, data, PTEs or sptes, slot set), or differs only by what
 *     the operation's header comment documents;
 *   - the run that reached no injection succeeded, with the result it
 *     should have;
 *   - after every run the teardown gets every frame and swap slot back and
 *     host_destroy() succeeds (ASan's leak check covers the mallocs).
 *
 * Each case is swept four ways:
 *   any      the Nth allocation at any site fails, once: every allocation
 *            of the operation, in order (runs = calls + 1, checked);
 *   forever  the Nth and every later allocation fail, as under real
 *            memory exhaustion: unwinding paths that allocate show up;
 *   per site the Nth allocation at each site the operation reaches
 *            (fail_page_alloc, failslab, ...), alone, once.
 * The number of runs of each sweep is printed ("sweep <case> ..."; "-"
 * for a site the operation does not reach).
 *
 * Nothing but the thread running the operation (the test thread, or the
 * vCPU thread it waits for) allocates while the injection is armed: there
 * is no kswapd (no_kswapd), and idle vCPUs allocate nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/cpu.h"
#include "tandem/vmm.h"
#include "base/fault_inject.h"
#include "base/rcu.h"
#include "host/internal.h"
#include "kvm/kvm_host.h"
#include "harness/host_fixture.h"
#include "harness/guest.h"

#define P          PAGE_SIZE
#define BASE       0x100000000ULL              /* 4 GiB */
#define FAR        (BASE + (1ULL << 30))       /* page tables of its own */
#define RAM_PAGES  16
#define GPA_BASE   0x40000000ULL
#define GPA_MOVED  0x50000000ULL
#define GPA(i)     (GPA_BASE + (gpa_t)(i) * P)
#define GFN(i)     ((GPA_BASE >> PAGE_SHIFT) + (i))
#define SWAP_BYTES (4ULL << 20)
#define RW_FLAGS   (VM_READ | VM_WRITE)
#define SWEEP_MAX  1000
#define TIMEOUT_MS 10000

/* ---- VMA layouts and slot sets, to compare before and after ------------ */

#define LAYOUT_MAX 40

struct layout {
	unsigned int nr;
	struct { hva_t start, end; unsigned long flags; } v[LAYOUT_MAX];
};

static void layout_get(struct mm *mm, struct layout *l)
{
	down_read(&mm->mmap_lock);
	assert_true(mm->nr_vmas <= LAYOUT_MAX);
	l->nr = mm->nr_vmas;
	for (unsigned int i = 0; i < mm->nr_vmas; i++) {
		l->v[i].start = mm->vmas[i]->vm_start;
		l->v[i].end = mm->vmas[i]->vm_end;
		l->v[i].flags = mm->vmas[i]->vm_flags;
	}
	up_read(&mm->mmap_lock);
}

static void layout_expect(struct mm *mm, const struct layout *want)
{
	struct layout now;

	layout_get(mm, &now);
	assert_int_equal(now.nr, want->nr);
	for (unsigned int i = 0; i < now.nr; i++) {
		assert_int_equal(now.v[i].start, want->v[i].start);
		assert_int_equal(now.v[i].end, want->v[i].end);
		assert_int_equal(now.v[i].flags, want->v[i].flags);
	}
}

#define SLOTS_MAX 4

struct slots_snap {
	uint64_t generation;
	unsigned int nr;
	struct kvm_memory_slot s[SLOTS_MAX];
};

static void slots_get(struct kvm *kvm, struct slots_snap *snap)
{
	/* Slot updates happen on this thread only: no RCU section needed to
	 * keep the array alive, but take one as any reader would. */
	rcu_read_lock();
	struct kvm_memslots *slots = kvm_memslots(kvm);

	assert_true(slots->nr <= SLOTS_MAX);
	snap->generation = slots->generation;
	snap->nr = slots->nr;
	memcpy(snap->s, slots->slots, slots->nr * sizeof(snap->s[0]));
	rcu_read_unlock();
}

static void slots_expect(struct kvm *kvm, const struct slots_snap *want)
{
	struct slots_snap now;

	slots_get(kvm, &now);
	assert_int_equal(now.generation, want->generation);
	assert_int_equal(now.nr, want->nr);
	for (unsigned int i = 0; i < now.nr; i++) {
		assert_int_equal(now.s[i].id, want->s[i].id);
		assert_int_equal(now.s[i].base_gfn, want->s[i].base_gfn);
		assert_int_equal(now.s[i].npages, want->s[i].npages);
		assert_int_equal(now.s[i].userspace_addr, want->s[i].userspace_addr);
		assert_int_equal(now.s[i].flags, want->s[i].flags);
	}
}

/* ---- the fixture --------------------------------------------------------- */

struct fx {
	struct ht *t;                   /* host; tracks the mms we create */
	struct host *h;
	struct mm *mm, *child;
	bool swap;
	struct layout before;
	uint64_t data_frames;           /* ht_data_frames() before the op */
	hva_t out;
	pfn_t pfn;
	/* kvm, vmm */
	struct kvm *kvm;
	struct vcpu *v;
	struct kt_guest g;
	struct slots_snap slots;
	struct vmm *vmm;
};

static struct fx *fx_new(bool swap)
{
	struct host_config cfg = {
		.ram_bytes = HT_RAM,
		.swap_bytes = swap ? SWAP_BYTES : 0,
		.no_kswapd = true,      /* no thread allocates behind our back */
	};
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->t = calloc(1, sizeof(*f->t));
	assert_non_null(f->t);
	assert_int_equal(host_create(&cfg, &f->t->host), 0);
	f->h = f->t->host;
	f->swap = swap;
	return f;
}

/* A host and one mm. */
static struct fx *fx_mm(bool swap)
{
	struct fx *f = fx_new(swap);

	f->mm = ht_mm(f->t);
	return f;
}

/* Stop and destroy everything; every frame and swap slot must come back. */
static void fx_destroy(struct fx *f)
{
	struct host_stats st;

	if (f->v) {
		vcpu_stop(f->v);
		vcpu_destroy(f->v);
		kt_guest_destroy(&f->g);
	}
	if (f->vmm)
		vmm_destroy(f->vmm);    /* its VM and mm too */
	else if (f->kvm)
		kvm_destroy_vm(f->kvm);
	for (int i = 0; i < HT_MAX_MMS; i++)
		if (f->t->mms[i])
			mmput(f->t->mms[i]);
	ht_check(f->h);
	assert_int_equal(host_frames_in_use(f->h), 0);
	host_get_stats(f->h, &st);
	assert_int_equal(st.pgtable_pages, 0);
	assert_int_equal(st.nr_mms, 0);
	assert_int_equal(st.swap_free_slots, st.swap_slots);
	assert_int_equal(host_destroy(f->h), 0);
	free(f->t);
	free(f);
}

/* Record what a failed op must leave as it was. */
static void fx_snapshot(struct fx *f)
{
	ht_check(f->h);
	if (f->mm)
		layout_get(f->mm, &f->before);
	f->data_frames = ht_data_frames(f->h);
	if (f->kvm)
		slots_get(f->kvm, &f->slots);
}

static void fx_expect_layout(struct fx *f)
{
	layout_expect(f->mm, &f->before);
}

/* ---- the sweep driver ------------------------------------------------------ */

struct fi_case {
	const char *name;
	struct fx *(*setup)(void);              /* state built, snapshot taken */
	int (*op)(struct fx *f);                /* 0 or a negative errno */
	void (*failed)(struct fx *f);           /* after an injected failure */
	void (*done)(struct fx *f);             /* after the run that reached none */
};

/* The run in progress, named in the report of a failed check. */
static char cur_run[160];

/*
 * Sweep c with the Nth call at site failing (times calls in a row), N from
 * 1 until a run reaches no injection. Returns the number of runs; *calls
 * gets the site's calls in that last run (the operation's allocations).
 */
static unsigned int sweep(const struct fi_case *c, enum fault_site site,
			  unsigned long times, unsigned long *calls)
{
	for (unsigned long n = 1; n <= SWEEP_MAX; n++) {
		if (times == 1)
			snprintf(cur_run, sizeof(cur_run), "%s: call %lu at site %s fails",
				 c->name, n, fault_site_name(site));
		else
			snprintf(cur_run, sizeof(cur_run), "%s: calls %lu.. at site %s fail",
				 c->name, n, fault_site_name(site));
		struct fx *f = c->setup();

		fault_inject_arm(site, n, times);
		int r = c->op(f);
		unsigned long failed = fault_inject_disarm();
		unsigned long reached = fault_inject_calls(site);

		if (!failed) {
			if (reached >= n)
				fail_msg("%lu calls, but none failed", reached);
			if (r)
				fail_msg("no injection reached, but it returned %d", r);
			ht_check(f->h);
			c->done(f);
			fx_destroy(f);
			*calls = reached;
			return (unsigned int)n;
		}
		if (r != -ENOMEM)
			fail_msg("an allocation failed and it returned %d, not -ENOMEM", r);
		if (host_check_invariants(f->h))
			fail_msg("invariants broken after the failure");
		c->failed(f);
		fx_destroy(f);
	}
	fail_msg("still failing after %d runs", SWEEP_MAX);
	return 0;
}

static void test_sweep(void **state)
{
	const struct fi_case *c = *state;
	unsigned long calls, at[FAULT_NR_SITES], site_calls, total = 0;
	unsigned int any, forever, runs[FAULT_NR_SITES];
	char line[256];
	int len;

	any = sweep(c, FAULT_SITE_ANY, 1, &calls);
	/* Every allocation was failed once, in order: nothing is random. */
	assert_int_equal(any, calls + 1);
	/* The counts of the clean run stay readable until the next arm. */
	for (int s = 0; s < FAULT_NR_SITES; s++)
		at[s] = fault_inject_calls((enum fault_site)s);
	forever = sweep(c, FAULT_SITE_ANY, FAULT_INJECT_FOREVER, &calls);
	assert_int_equal(forever, any);
	for (int s = 0; s < FAULT_NR_SITES; s++) {
		/* A site the operation never reaches would take one clean run. */
		runs[s] = at[s] ? sweep(c, (enum fault_site)s, 1, &site_calls) : 1;
		site_calls = at[s] ? site_calls : 0;
		assert_int_equal(site_calls, at[s]);
		assert_int_equal(runs[s], site_calls + 1);
		total += site_calls;
	}
	assert_int_equal(total, calls);
	len = snprintf(line, sizeof(line), "sweep %-32s any %2u  forever %2u ", c->name,
		       any, forever);
	for (int s = 0; s < FAULT_NR_SITES; s++)
		len += at[s] ? snprintf(line + len, sizeof(line) - (size_t)len, " %s %u",
					fault_site_name((enum fault_site)s), runs[s])
			     : snprintf(line + len, sizeof(line) - (size_t)len, " %s -",
					fault_site_name((enum fault_site)s));
	print_message("%s\n", line);
	cur_run[0] = 0;
}

/* A check failed mid-sweep: say in which run (cmocka only has the line). */
static int sweep_report(void **state)
{
	if (cur_run[0])
		print_message("failed in run: %s\n", cur_run);
	cur_run[0] = 0;
	return 0;
}

/* ---- host: mmap, munmap, mprotect, madvise --------------------------------- */

/* [BASE, +8 pages) read-write, each page filled with 'a' + index. */
static struct fx *setup_one_vma(void)
{
	struct fx *f = fx_mm(false);

	ht_mmap(f->mm, BASE, 8 * P, HT_RW, HT_FIXED);
	ht_fill(f->mm, BASE, 8, 'a');
	fx_snapshot(f);
	return f;
}

/*
 * 16 VMAs of 4 pages from BASE, touching, alternately read-write (filled
 * with 'A' + 4 * i + page) and read-only, so that none merge: the VMA
 * array is exactly full (16 entries), and the next new VMA grows it.
 */
#define FULL_VMAS 16
static struct fx *setup_full_array(void)
{
	struct fx *f = fx_mm(false);

	for (int i = 0; i < FULL_VMAS; i++) {
		hva_t a = BASE + (hva_t)i * 4 * P;

		ht_mmap(f->mm, a, 4 * P, i % 2 ? PROT_READ : HT_RW, HT_FIXED);
		if (i % 2 == 0)
			ht_fill(f->mm, a, 4, 'A' + 4 * i);
	}
	assert_int_equal(f->mm->nr_vmas, FULL_VMAS);
	assert_int_equal(f->mm->vma_cap, FULL_VMAS);
	fx_snapshot(f);
	return f;
}

static void expect_full_array_data(struct fx *f)
{
	for (int i = 0; i < FULL_VMAS; i += 2)
		ht_expect(f->mm, BASE + (hva_t)i * 4 * P, 4, 'A' + 4 * i);
}

/* Failed: layout and data as before, and no data frame came or went. */
static void failed_one_vma(struct fx *f)
{
	fx_expect_layout(f);
	assert_int_equal(ht_data_frames(f->h), f->data_frames);
	ht_expect(f->mm, BASE, 8, 'a');
	/* Still writable throughout (mprotect must not have half-applied). */
	ht_fill(f->mm, BASE, 8, 'a');
}

static void failed_full_array(struct fx *f)
{
	fx_expect_layout(f);
	assert_int_equal(ht_data_frames(f->h), f->data_frames);
	expect_full_array_data(f);
}

/* mmap anywhere: one new VMA. */
static int op_mmap(struct fx *f)
{
	return mm_mmap(f->mm, 0, 4 * P, HT_RW, HT_PRIV, &f->out);
}

static void done_mmap(struct fx *f)
{
	assert_int_equal(f->mm->nr_vmas, f->before.nr + 1);
	assert_non_null(vma_lookup(f->mm, f->out));
	ht_expect_zero(f->mm, f->out, 4);
}

/* MAP_FIXED into the middle of a mapping: unmaps [2, 5) first. */
static int op_mmap_fixed(struct fx *f)
{
	return mm_mmap(f->mm, BASE + 2 * P, 3 * P, PROT_READ, HT_FIXED, &f->out);
}

static void done_mmap_fixed(struct fx *f)
{
	assert_int_equal(f->mm->nr_vmas, 3);
	ht_expect_vma(f->mm, 0, BASE, BASE + 2 * P, RW_FLAGS);
	ht_expect_vma(f->mm, 1, BASE + 2 * P, BASE + 5 * P, VM_READ);
	ht_expect_vma(f->mm, 2, BASE + 5 * P, BASE + 8 * P, RW_FLAGS);
	ht_expect(f->mm, BASE, 2, 'a');
	ht_expect_zero(f->mm, BASE + 2 * P, 3);
	ht_expect_fill(f->mm, BASE + 5 * P, 3, 'a' + 5, 1);
}

/* MAP_FIXED over the tail of VMA 0 and the head of VMA 1, array full. */
static int op_mmap_fixed_edges(struct fx *f)
{
	return mm_mmap(f->mm, BASE + 2 * P, 4 * P, PROT_READ | PROT_EXEC, HT_FIXED,
		       &f->out);
}

static void done_mmap_fixed_edges(struct fx *f)
{
	assert_int_equal(f->mm->nr_vmas, FULL_VMAS + 1);
	ht_expect_vma(f->mm, 0, BASE, BASE + 2 * P, RW_FLAGS);
	ht_expect_vma(f->mm, 1, BASE + 2 * P, BASE + 6 * P, VM_READ | VM_EXEC);
	ht_expect_vma(f->mm, 2, BASE + 6 * P, BASE + 8 * P, VM_READ);
	ht_expect(f->mm, BASE, 2, 'A');
	ht_expect_zero(f->mm, BASE + 2 * P, 4);
}

/* munmap of [3, 5): a hole in the middle of one VMA. */
static int op_munmap(struct fx *f)
{
	return mm_munmap(f->mm, BASE + 3 * P, 2 * P);
}

static void done_munmap(struct fx *f)
{
	assert_int_equal(f->mm->nr_vmas, 2);
	ht_expect_vma(f->mm, 0, BASE, BASE + 3 * P, RW_FLAGS);
	ht_expect_vma(f->mm, 1, BASE + 5 * P, BASE + 8 * P, RW_FLAGS);
	assert_int_equal(ht_data_frames(f->h), f->data_frames - 2);
	ht_expect(f->mm, BASE, 3, 'a');
}

/* munmap of a hole in VMA 0 with the array full. */
static int op_munmap_full(struct fx *f)
{
	return mm_munmap(f->mm, BASE + P, 2 * P);
}

static void done_munmap_full(struct fx *f)
{
	assert_int_equal(f->mm->nr_vmas, FULL_VMAS + 1);
	ht_expect_vma(f->mm, 0, BASE, BASE + P, RW_FLAGS);
	ht_expect_vma(f->mm, 1, BASE + 3 * P, BASE + 4 * P, RW_FLAGS);
	assert_int_equal(ht_data_frames(f->h), f->data_frames - 2);
}

/* mprotect of [2, 5) read-only: two splits. */
static int op_mprotect(struct fx *f)
{
	return mm_mprotect(f->mm, BASE + 2 * P, 3 * P, PROT_READ);
}

static void done_mprotect(struct fx *f)
{
	char c = 'x';

	assert_int_equal(f->mm->nr_vmas, 3);
	ht_expect_vma(f->mm, 1, BASE + 2 * P, BASE + 5 * P, VM_READ);
	assert_int_equal(mm_write(f->mm, BASE + 3 * P, &c, 1), -EFAULT);
	ht_expect(f->mm, BASE, 8, 'a');
}

/* mprotect across VMAs 0..2 (RW, RO, RW) from the middle of 0 to the
 * middle of 2, array full: two splits, the first of which grows it. */
static int op_mprotect_full(struct fx *f)
{
	return mm_mprotect(f->mm, BASE + 2 * P, 8 * P, PROT_READ | PROT_EXEC);
}

static void done_mprotect_full(struct fx *f)
{
	assert_int_equal(f->mm->nr_vmas, FULL_VMAS);
	ht_expect_vma(f->mm, 0, BASE, BASE + 2 * P, RW_FLAGS);
	ht_expect_vma(f->mm, 1, BASE + 2 * P, BASE + 10 * P, VM_READ | VM_EXEC);
	ht_expect_vma(f->mm, 2, BASE + 10 * P, BASE + 12 * P, RW_FLAGS);
	expect_full_array_data(f);
}

static int op_dontneed(struct fx *f)
{
	return mm_madvise(f->mm, BASE + P, 2 * P, MADV_DONTNEED);
}

static void done_dontneed(struct fx *f)
{
	assert_int_equal(ht_data_frames(f->h), f->data_frames - 2);
	ht_expect_zero(f->mm, BASE + P, 2);
	ht_expect_fill(f->mm, BASE + 3 * P, 5, 'a' + 3, 1);
}

/* ---- host: faults, GUP, COW, fork ---------------------------------------- */

/* [BASE, +8 pages) mapped read-write, nothing touched. */
static struct fx *setup_untouched(void)
{
	struct fx *f = fx_mm(false);

	ht_mmap(f->mm, BASE, 8 * P, HT_RW, HT_FIXED);
	fx_snapshot(f);
	return f;
}

static void failed_untouched(struct fx *f)
{
	fx_expect_layout(f);
	assert_int_equal(ht_data_frames(f->h), 0);
	/* Page tables the fault installed before failing may stay (empty):
	 * pte_alloc_prepare documents it. No PTE does. */
	assert_int_equal(mm_lookup_pte(f->mm, BASE + 3 * P), 0);
	assert_int_equal(get_mm_counter(f->mm, MM_ANONPAGES), 0);
}

static int op_write_fault(struct fx *f)
{
	uint64_t v = 0x1234;
	int64_t r = mm_write(f->mm, BASE + 3 * P + 8, &v, sizeof(v));

	return r < 0 ? (int)r : 0;
}

static void done_write_fault(struct fx *f)
{
	uint64_t v = 0;

	assert_int_equal(mm_read(f->mm, BASE + 3 * P + 8, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 0x1234);
	assert_true(pte_write(mm_lookup_pte(f->mm, BASE + 3 * P)));
}

/* GUP for read: the shared zero page, no frame. */
static int op_gup_read(struct fx *f)
{
	struct page *page;
	int r = get_user_page(f->mm, BASE + 3 * P, 0, &page, NULL);

	if (!r)
		put_page(page);
	return r;
}

static void done_gup_read(struct fx *f)
{
	pte_t pte = mm_lookup_pte(f->mm, BASE + 3 * P);

	assert_true(pte_present(pte) && pte_special(pte));
	assert_int_equal(ht_data_frames(f->h), 0);
}

static int op_gup_write(struct fx *f)
{
	struct page *page;
	bool writable = false;
	int r = get_user_page(f->mm, BASE + 3 * P, FOLL_WRITE, &page, &writable);

	if (!r) {
		assert_true(writable);
		put_page(page);
	}
	return r;
}

static void done_gup_write(struct fx *f)
{
	assert_true(pte_write(mm_lookup_pte(f->mm, BASE + 3 * P)));
	assert_int_equal(ht_data_frames(f->h), 1);
}

/* Parent filled, then forked: every page COW-shared. */
static struct fx *setup_forked(void)
{
	struct fx *f = fx_mm(false);

	ht_mmap(f->mm, BASE, 8 * P, HT_RW, HT_FIXED);
	ht_fill(f->mm, BASE, 8, 'a');
	f->child = ht_fork(f->t, f->mm);
	f->pfn = ht_pfn(f->mm, BASE + 3 * P);
	assert_false(pte_write(mm_lookup_pte(f->mm, BASE + 3 * P)));
	fx_snapshot(f);
	return f;
}

static int op_cow(struct fx *f)
{
	int64_t r = mm_write(f->mm, BASE + 3 * P, "z", 1);

	return r < 0 ? (int)r : 0;
}

static void failed_cow(struct fx *f)
{
	pte_t pte = mm_lookup_pte(f->mm, BASE + 3 * P);

	/* The parent still maps the shared frame read-only. */
	assert_true(pte_present(pte) && !pte_write(pte));
	assert_int_equal(pte_pfn(pte), f->pfn);
	assert_int_equal(ht_data_frames(f->h), f->data_frames);
	ht_expect(f->mm, BASE, 8, 'a');
	ht_expect(f->child, BASE, 8, 'a');
}

static void done_cow(struct fx *f)
{
	assert_int_equal(ht_read_byte(f->mm, BASE + 3 * P), 'z');
	assert_int_equal(ht_read_byte(f->child, BASE + 3 * P), 'a' + 3);
	assert_true(ht_pfn(f->mm, BASE + 3 * P) != f->pfn);
}

/*
 * A parent worth forking: [BASE, +4) read-write, filled; [BASE + 16,
 * +2) read-only with the zero page mapped; [FAR, +4) read-write, filled
 * (its own page tables); with swap, pages 0 and 1 of BASE swapped out.
 */
static struct fx *setup_parent(bool swap)
{
	struct fx *f = fx_mm(swap);

	ht_mmap(f->mm, BASE, 4 * P, HT_RW, HT_FIXED);
	ht_fill(f->mm, BASE, 4, 'a');
	ht_mmap(f->mm, BASE + 16 * P, 2 * P, PROT_READ, HT_FIXED);
	ht_expect_zero(f->mm, BASE + 16 * P, 2);
	ht_mmap(f->mm, FAR, 4 * P, HT_RW, HT_FIXED);
	ht_fill(f->mm, FAR, 4, 'f');
	if (swap) {
		assert_int_equal(mm_madvise(f->mm, BASE, 2 * P, MADV_PAGEOUT), 0);
		assert_true(pte_is_swap(mm_lookup_pte(f->mm, BASE)));
		assert_true(pte_is_swap(mm_lookup_pte(f->mm, BASE + P)));
	}
	fx_snapshot(f);
	return f;
}

static struct fx *setup_fork(void)
{
	return setup_parent(false);
}

static struct fx *setup_fork_swap(void)
{
	return setup_parent(true);
}

static int op_fork(struct fx *f)
{
	int r = mm_fork(f->mm, &f->child);

	if (!r)
		ht_track(f->t, f->child);
	return r;
}

static void failed_fork(struct fx *f)
{
	struct host_stats st;

	host_get_stats(f->h, &st);
	assert_int_equal(st.nr_mms, 1);         /* the child is gone */
	fx_expect_layout(f);
	assert_int_equal(ht_data_frames(f->h), f->data_frames);
	ht_expect(f->mm, BASE, 4, 'a');
	ht_expect_zero(f->mm, BASE + 16 * P, 2);
	ht_expect(f->mm, FAR, 4, 'f');
	/* Write-protected PTEs (documented) fault back writable, in place. */
	ht_fill(f->mm, BASE, 4, 'b');
	ht_fill(f->mm, FAR, 4, 'g');
}

static void done_fork(struct fx *f)
{
	layout_expect(f->child, &f->before);
	ht_expect(f->child, BASE, 4, 'a');
	ht_expect(f->child, FAR, 4, 'f');
	ht_fill(f->mm, BASE, 4, 'b');
	ht_expect(f->child, BASE, 4, 'a');
	ht_expect(f->mm, BASE, 4, 'b');
}

/* ---- host: swap-out, swap-in ------------------------------------------------ */

static struct fx *setup_swap(void)
{
	struct fx *f = fx_mm(true);

	ht_mmap(f->mm, BASE, 8 * P, HT_RW, HT_FIXED);
	ht_fill(f->mm, BASE, 8, 'a');
	fx_snapshot(f);
	return f;
}

static int op_pageout(struct fx *f)
{
	return mm_madvise(f->mm, BASE, 8 * P, MADV_PAGEOUT);
}

/* Reclaim as kswapd would: pages just written are young, so the first
 * look only ages them and the second takes them. */
static int op_reclaim(struct fx *f)
{
	return host_reclaim(f->h, 8) == 8 ? 0 : -EAGAIN;
}

static void done_pageout(struct fx *f)
{
	for (int i = 0; i < 8; i++)
		assert_true(pte_is_swap(mm_lookup_pte(f->mm, BASE + (hva_t)i * P)));
	assert_int_equal(ht_data_frames(f->h), 0);
	ht_expect(f->mm, BASE, 8, 'a');
}

/* All 8 pages swapped out and the swap cache emptied. */
static struct fx *setup_swapped(void)
{
	struct fx *f = fx_mm(true);

	ht_mmap(f->mm, BASE, 8 * P, HT_RW, HT_FIXED);
	ht_fill(f->mm, BASE, 8, 'a');
	assert_int_equal(mm_madvise(f->mm, BASE, 8 * P, MADV_PAGEOUT), 0);
	assert_int_equal(ht_data_frames(f->h), 0);
	fx_snapshot(f);
	return f;
}

static int op_swapin_read(struct fx *f)
{
	char c;
	int64_t r = mm_read(f->mm, BASE + 3 * P, &c, 1);

	if (r == 1)
		assert_int_equal(c, 'a' + 3);
	return r < 0 ? (int)r : 0;
}

static int op_swapin_write(struct fx *f)
{
	int64_t r = mm_write(f->mm, BASE + 3 * P, "z", 1);

	return r < 0 ? (int)r : 0;
}

static void failed_swapin(struct fx *f)
{
	fx_expect_layout(f);
	/* Still a swap entry; the page may wait in the swap cache (do_swap_page
	 * documents it), holding at most that one frame. */
	assert_true(pte_is_swap(mm_lookup_pte(f->mm, BASE + 3 * P)));
	assert_true(ht_data_frames(f->h) <= 1);
	ht_expect(f->mm, BASE, 8, 'a');
}

static void done_swapin_read(struct fx *f)
{
	assert_true(pte_present(mm_lookup_pte(f->mm, BASE + 3 * P)));
	ht_expect(f->mm, BASE, 8, 'a');
}

static void done_swapin_write(struct fx *f)
{
	assert_true(pte_write(mm_lookup_pte(f->mm, BASE + 3 * P)));
	assert_int_equal(ht_read_byte(f->mm, BASE + 3 * P), 'z');
	ht_expect(f->mm, BASE, 3, 'a');
}

/* ---- kvm: VM creation, memslots, the secondary MMU's fault ----------------- */

/* Guest RAM [BASE, +16 pages) in the mm; with slot, memslot 0 at GPA_BASE
 * over it; with vcpu, vCPU 0 running the mailbox guest. */
static struct fx *fx_vm(bool slot, bool vcpu)
{
	struct fx *f = fx_mm(false);

	ht_mmap(f->mm, BASE, RAM_PAGES * P, HT_RW, HT_FIXED);
	assert_int_equal(kvm_create_vm(f->mm, NULL, &f->kvm), 0);
	if (slot) {
		struct kvm_userspace_memory_region r = {
			.slot = 0, .guest_phys_addr = GPA_BASE,
			.memory_size = RAM_PAGES * P, .userspace_addr = BASE,
		};

		assert_int_equal(kvm_set_user_memory_region(f->kvm, &r), 0);
	}
	if (vcpu) {
		kt_guest_init(&f->g);
		f->g.go_on = true;
		assert_int_equal(vcpu_create(f->kvm, 0, &f->v), 0);
		assert_int_equal(vcpu_run(f->v, kt_guest_main, &f->g), 0);
	}
	return f;
}

static struct fx *setup_create_vm(void)
{
	struct fx *f = fx_mm(false);

	fx_snapshot(f);
	return f;
}

static int op_create_vm(struct fx *f)
{
	return kvm_create_vm(f->mm, NULL, &f->kvm);
}

static void failed_create_vm(struct fx *f)
{
	assert_null(f->kvm);
	assert_false(mm_has_notifiers(f->mm));
}

static void done_create_vm(struct fx *f)
{
	assert_non_null(f->kvm);
	assert_true(mm_has_notifiers(f->mm));
}

static int set_slot(struct fx *f, uint32_t flags, gpa_t gpa, uint64_t size)
{
	struct kvm_userspace_memory_region r = {
		.slot = 0, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = BASE,
	};

	return kvm_set_user_memory_region(f->kvm, &r);
}

static struct fx *setup_no_slot(void)
{
	struct fx *f = fx_vm(false, false);

	fx_snapshot(f);
	return f;
}

/* Slot 0 with a guest that has read page 2 (tagged by the host). */
static struct fx *setup_slot(void)
{
	struct fx *f = fx_vm(true, true);
	uint64_t v = 0;

	assert_int_equal(mm_write(f->mm, BASE + 2 * P, &(uint64_t){ 0xfeed }, 8), 8);
	assert_int_equal(kt_guest_access(&f->g, G_LOAD, GPA(2), 0, &v), 0);
	assert_int_equal(v, 0xfeed);
	assert_true(is_shadow_present(atomic_load(kvm_tdp_mmu_leaf(f->kvm, GFN(2)))));
	fx_snapshot(f);
	return f;
}

static void failed_slots(struct fx *f)
{
	uint64_t v = 0;

	slots_expect(f->kvm, &f->slots);
	if (f->v) {
		/* The slot still maps guest RAM where it did. */
		assert_int_equal(kt_guest_access(&f->g, G_LOAD, GPA(2), 0, &v), 0);
		assert_int_equal(v, 0xfeed);
	}
}

static int op_slot_create(struct fx *f)
{
	return set_slot(f, 0, GPA_BASE, RAM_PAGES * P);
}

static void done_slot_create(struct fx *f)
{
	assert_int_equal(kvm_memslots(f->kvm)->nr, 1);
}

static int op_slot_move(struct fx *f)
{
	return set_slot(f, 0, GPA_MOVED, RAM_PAGES * P);
}

static void done_slot_move(struct fx *f)
{
	uint64_t v = 0;

	assert_int_equal(kt_guest_access(&f->g, G_LOAD, GPA_MOVED + 2 * P, 0, &v), 0);
	assert_int_equal(v, 0xfeed);
	/* Nothing at the old place: an MMIO exit reads all-ones. */
	assert_int_equal(kt_guest_access(&f->g, G_LOAD, GPA(2), 0, &v), 0);
	assert_int_equal(v, ~0ULL);
}

static int op_slot_delete(struct fx *f)
{
	return set_slot(f, 0, GPA_BASE, 0);
}

static void done_slot_delete(struct fx *f)
{
	uint64_t v = 0;

	assert_int_equal(kvm_memslots(f->kvm)->nr, 0);
	assert_int_equal(kt_guest_access(&f->g, G_LOAD, GPA(2), 0, &v), 0);
	assert_int_equal(v, ~0ULL);
}

/* A guest with nothing mapped yet, host or secondary. */
static struct fx *setup_guest(void)
{
	struct fx *f = fx_vm(true, true);

	fx_snapshot(f);
	return f;
}

static spte_t spte_of(struct fx *f, gfn_t gfn)
{
	_Atomic spte_t *sptep = kvm_tdp_mmu_leaf(f->kvm, gfn);

	return sptep ? atomic_load(sptep) : 0;
}

static int op_guest_read(struct fx *f)
{
	uint64_t v = 1;
	int r = kt_guest_access(&f->g, G_LOAD, GPA(5), 0, &v);

	if (!r)
		assert_int_equal(v, 0);
	return r;
}

static int op_guest_write(struct fx *f)
{
	return kt_guest_access(&f->g, G_STORE, GPA(5), 0xabcd, NULL);
}

/* The fault failed: no spte. (The host half may have succeeded: a frame
 * or the zero page mapped at the hva is the host's, and stays.) */
static void failed_guest(struct fx *f)
{
	assert_false(is_shadow_present(spte_of(f, GFN(5))));
	assert_true(ht_data_frames(f->h) <= 1);
}

static void done_guest_read(struct fx *f)
{
	assert_true(is_shadow_present(spte_of(f, GFN(5))));
}

static void done_guest_write(struct fx *f)
{
	uint64_t v = 0;

	assert_true(spte_of(f, GFN(5)) & SPTE_WRITABLE);
	assert_int_equal(mm_read(f->mm, BASE + 5 * P, &v, 8), 8);
	assert_int_equal(v, 0xabcd);
}

/* The guest has read page 5 (tagged), then the VMM forked: the host PTE is
 * write-protected and shared, and the spte was dropped. */
static struct fx *setup_guest_cow(void)
{
	struct fx *f = fx_vm(true, true);
	uint64_t v = 0;

	assert_int_equal(mm_write(f->mm, BASE + 5 * P, &(uint64_t){ 0xc0ff }, 8), 8);
	assert_int_equal(kt_guest_access(&f->g, G_LOAD, GPA(5), 0, &v), 0);
	f->child = ht_fork(f->t, f->mm);
	f->pfn = ht_pfn(f->mm, BASE + 5 * P);
	fx_snapshot(f);
	return f;
}

static void failed_guest_cow(struct fx *f)
{
	pte_t pte = mm_lookup_pte(f->mm, BASE + 5 * P);
	uint64_t v = 0;

	assert_false(spte_of(f, GFN(5)) & SPTE_WRITABLE);
	assert_true(pte_present(pte) && !pte_write(pte) && pte_pfn(pte) == f->pfn);
	assert_int_equal(ht_data_frames(f->h), f->data_frames);
	assert_int_equal(kt_guest_access(&f->g, G_LOAD, GPA(5), 0, &v), 0);
	assert_int_equal(v, 0xc0ff);
}

static void done_guest_cow(struct fx *f)
{
	uint64_t v = 0;

	assert_true(ht_pfn(f->mm, BASE + 5 * P) != f->pfn);
	assert_int_equal(mm_read(f->mm, BASE + 5 * P, &v, 8), 8);
	assert_int_equal(v, 0xabcd);
	assert_int_equal(mm_read(f->child, BASE + 5 * P, &v, 8), 8);
	assert_int_equal(v, 0xc0ff);
}

/* ---- vmm: guest RAM ----------------------------------------------------------- */

static struct fx *setup_vmm(void)
{
	struct fx *f = fx_new(false);

	assert_int_equal(vmm_create(f->h, NULL, &f->vmm), 0);
	f->mm = vmm_mm(f->vmm);
	f->kvm = vmm_kvm(f->vmm);
	fx_snapshot(f);
	return f;
}

/* A VMM with region 0; the next region lands next to it and merges. */
static struct fx *setup_vmm_ram0(void)
{
	struct fx *f = setup_vmm();

	assert_int_equal(vmm_add_ram(f->vmm, 0, GPA_BASE, RAM_PAGES * P, 0), 0);
	fx_snapshot(f);
	return f;
}

static int op_add_ram1(struct fx *f)
{
	return vmm_add_ram(f->vmm, 1, GPA_MOVED, RAM_PAGES * P, 0);
}

static void failed_add_ram(struct fx *f)
{
	fx_expect_layout(f);
	slots_expect(f->kvm, &f->slots);
	assert_int_equal(vmm_ram_size(f->vmm, 1), 0);
	assert_int_equal(vmm_ram_hva(f->vmm, 1), 0);
}

static void done_add_ram1(struct fx *f)
{
	uint64_t v = 0x77;

	assert_int_equal(vmm_ram_size(f->vmm, 1), RAM_PAGES * P);
	assert_int_equal(vmm_write_guest(f->vmm, GPA_MOVED + P, &v, 8), 0);
	v = 0;
	assert_int_equal(vmm_read_guest(f->vmm, GPA_MOVED + P, &v, 8), 0);
	assert_int_equal(v, 0x77);
}

static int op_add_ram0(struct fx *f)
{
	return vmm_add_ram(f->vmm, 0, GPA_BASE, RAM_PAGES * P, 0);
}

static void failed_add_ram0(struct fx *f)
{
	fx_expect_layout(f);
	slots_expect(f->kvm, &f->slots);
	assert_int_equal(vmm_ram_size(f->vmm, 0), 0);
}

static void done_add_ram0(struct fx *f)
{
	assert_int_equal(vmm_ram_size(f->vmm, 0), RAM_PAGES * P);
	assert_int_equal(kvm_memslots(f->kvm)->nr, 1);
}

/* ---- the cases ------------------------------------------------------------------ */

static const struct fi_case cases[] = {
	{ "mmap", setup_one_vma, op_mmap, failed_one_vma, done_mmap },
	{ "mmap, VMA array full", setup_full_array, op_mmap, failed_full_array, done_mmap },
	{ "mmap MAP_FIXED over a mapping", setup_one_vma, op_mmap_fixed, failed_one_vma,
	  done_mmap_fixed },
	{ "mmap MAP_FIXED over two edges", setup_full_array, op_mmap_fixed_edges,
	  failed_full_array, done_mmap_fixed_edges },
	{ "munmap splitting a VMA", setup_one_vma, op_munmap, failed_one_vma, done_munmap },
	{ "munmap splitting, array full", setup_full_array, op_munmap_full,
	  failed_full_array, done_munmap_full },
	{ "mprotect splitting a VMA", setup_one_vma, op_mprotect, failed_one_vma,
	  done_mprotect },
	{ "mprotect over 3 VMAs, array full", setup_full_array, op_mprotect_full,
	  failed_full_array, done_mprotect_full },
	{ "madvise DONTNEED", setup_one_vma, op_dontneed, failed_one_vma, done_dontneed },
	{ "demand-zero write (mm_write)", setup_untouched, op_write_fault,
	  failed_untouched, done_write_fault },
	{ "read fault (GUP)", setup_untouched, op_gup_read, failed_untouched,
	  done_gup_read },
	{ "write fault (GUP FOLL_WRITE)", setup_untouched, op_gup_write, failed_untouched,
	  done_gup_write },
	{ "COW break after fork", setup_forked, op_cow, failed_cow, done_cow },
	{ "fork", setup_fork, op_fork, failed_fork, done_fork },
	{ "fork with swap entries", setup_fork_swap, op_fork, failed_fork, done_fork },
	{ "swap-out (MADV_PAGEOUT)", setup_swap, op_pageout, failed_one_vma, done_pageout },
	{ "swap-out (host_reclaim)", setup_swap, op_reclaim, failed_one_vma, done_pageout },
	{ "swap-in read", setup_swapped, op_swapin_read, failed_swapin, done_swapin_read },
	{ "swap-in write", setup_swapped, op_swapin_write, failed_swapin,
	  done_swapin_write },
	{ "kvm_create_vm", setup_create_vm, op_create_vm, failed_create_vm,
	  done_create_vm },
	{ "memslot create", setup_no_slot, op_slot_create, failed_slots, done_slot_create },
	{ "memslot move", setup_slot, op_slot_move, failed_slots, done_slot_move },
	{ "memslot delete", setup_slot, op_slot_delete, failed_slots, done_slot_delete },
	{ "guest read fault", setup_guest, op_guest_read, failed_guest, done_guest_read },
	{ "guest write fault", setup_guest, op_guest_write, failed_guest,
	  done_guest_write },
	{ "guest write breaking COW", setup_guest_cow, op_guest_write, failed_guest_cow,
	  done_guest_cow },
	{ "vmm_add_ram", setup_vmm, op_add_ram0, failed_add_ram0, done_add_ram0 },
	{ "vmm_add_ram next to a region", setup_vmm_ram0, op_add_ram1, failed_add_ram,
	  done_add_ram1 },
};

/* The facility itself: counting, nth, times, sites. */
static void test_fault_inject_api(void **state)
{
	fault_inject_arm(FAULT_SITE_RMAP, 2, 2);
	assert_false(should_fail(FAULT_SITE_VMA));
	assert_false(should_fail(FAULT_SITE_RMAP));     /* 1st */
	assert_false(should_fail(FAULT_SITE_VMA));
	assert_true(should_fail(FAULT_SITE_RMAP));      /* 2nd */
	assert_true(should_fail(FAULT_SITE_RMAP));      /* 3rd */
	assert_false(should_fail(FAULT_SITE_RMAP));     /* 4th: times spent */
	assert_int_equal(fault_inject_calls(FAULT_SITE_RMAP), 4);
	assert_int_equal(fault_inject_calls(FAULT_SITE_VMA), 2);
	assert_int_equal(fault_inject_calls(FAULT_SITE_ANY), 6);
	assert_int_equal(fault_inject_failed(FAULT_SITE_RMAP), 2);
	assert_int_equal(fault_inject_disarm(), 2);
	assert_false(should_fail(FAULT_SITE_RMAP));     /* disarmed: not counted */
	assert_int_equal(fault_inject_calls(FAULT_SITE_RMAP), 4);

	fault_inject_arm(FAULT_SITE_ANY, 3, FAULT_INJECT_FOREVER);
	assert_false(should_fail(FAULT_SITE_PAGE_ALLOC));
	assert_false(should_fail(FAULT_SITE_MEMSLOTS));
	assert_true(should_fail(FAULT_SITE_TDP_TABLE));
	assert_true(should_fail(FAULT_SITE_PGTABLE));
	assert_null(fault_malloc(FAULT_SITE_VMA, 8));
	assert_int_equal(fault_inject_disarm(), 3);

	fault_inject_arm(FAULT_SITE_ANY, 0, 1);         /* count only */
	void *p = fault_malloc(FAULT_SITE_VMA, 8);

	assert_non_null(p);
	free(p);
	assert_int_equal(fault_inject_calls(FAULT_SITE_VMA), 1);
	assert_int_equal(fault_inject_disarm(), 0);
	assert_string_equal(fault_site_name(FAULT_SITE_ANY), "any");
	assert_string_equal(fault_site_name(FAULT_SITE_PAGE_ALLOC), "page_alloc");
}

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(cases) + 1];

	tests[0] = (struct CMUnitTest)cmocka_unit_test(test_fault_inject_api);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		tests[i + 1] = (struct CMUnitTest){
			.name = cases[i].name,
			.test_func = test_sweep,
			.teardown_func = sweep_report,
			.initial_state = (void *)&cases[i],
		};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
