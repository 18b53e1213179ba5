/* SPDX-License-Identifier: MIT */
/*
 * workload.c - the guest code: what runs on each vCPU, and the VMM's MMIO
 * handler and stall hook for it.
 *
 * A vCPU works on the pages it owns (gfn % nr_vcpus == its index) in
 * phases:
 *   SEQ      write every own page in order (one pass)
 *   VERIFY   read and check every own page in order (one pass)
 *   UNIFORM  n_own ops on uniformly random own pages, write_pct% writes;
 *            some reads go to other vCPUs' pages instead (bounds checks)
 *   ZIPF     the same with zipfian ranks (theta 0.99), scrambled over the
 *            pages so that the hot ones are spread across chunks and slots
 * The mixed workload cycles SEQ, VERIFY, UNIFORM, ZIPF, each vCPU starting
 * at a different phase; the others repeat one phase (VERIFY after one SEQ
 * pass). Now and then an op reads a ROM word (checked) or writes one (it
 * must exit to the VMM, once, with that gpa, and change nothing).
 *
 * Every op on an own page first checks it exactly against expected[gfn]
 * (3 loads), and a write then stores version + 1 in the page format of
 * workload_int.h (3 stores) and commits expected[gfn] only if every store
 * returned 0. A store refused with -EFAULT (churn made the host mapping
 * read-only) did not happen: nothing is committed, and the guest goes on
 * (vcpu_access_slow returns every error but -EINTR in guest mode).
 *
 * Now and then (1 op in 64) a vCPU reads the device pages the host writes
 * into the VM (seed 001; workload_int.h): the clock page and its own and a
 * sibling's run-state area, each a seqcount read (retry while the version
 * is odd or moved). What must hold:
 *   clock page      version == 2 * seq, and version, seq and time never go
 *                   backwards from what this vCPU read before;
 *   any area        fields never go backwards, and a consistent version-0
 *                   area is all zero;
 *   own area        exactly what its thread wrote at this guest entry
 *                   (version and entries equal the vCPU's own accounting)
 *                   while the vCPU holds a mapping of it; without one (a
 *                   refresh failed: read-only, no memslot) the last write
 *                   or zero.
 * Version 0 is "not written yet or discarded" (DONTNEED, remap): the host
 * writes again once its cache is refreshed, continuing its counters, so
 * nothing about a discard makes a later value smaller. The own-area rule
 * is what keeps this from being vacuous: after a discard the vCPU's next
 * entry must have rewritten the area, because the invalidation made it
 * leave guest mode and refresh before entering again.
 *
 * Each op runs inside its chunk's freeze protocol (workload_int.h), so the
 * churn thread can take a chunk away, change it through the host, and give
 * it back with new expectations.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "workload_int.h"
#include "base/clock.h"

enum phase { PH_SEQ, PH_VERIFY, PH_UNIFORM, PH_ZIPF, NR_PHASES };

enum {
	OP_DONE = 0,
	OP_SKIPPED = 1,         /* the chunk was frozen */
	OP_FAILED = 2,          /* the checker recorded a failure */
};

#define ZIPF_THETA      0.99
#define PERMUTE_PRIME   2654435761ULL   /* > any n_own: rank -> page is a permutation */
#define CROSS_READ_MASK 7               /* 1 in 8 random reads go to another vCPU */
#define ROM_READ_MASK   255             /* 1 in 256 ops read the ROM */
#define ROM_WRITE_MASK  4095            /* 1 in 4096 ops write it */
#define DEV_READ_SHIFT  12              /* 1 in 64 ops read the device pages */
#define DEV_READ_MASK   63
#define SEQ_READ_TRIES  64              /* then give up: the writer is preempted */
#define IDLE_AFTER_SKIPS 64
#define STALL_EVERY     4               /* cfg.stall: every 4th slow write stalls */
#define STALL_SLACK_NS  20000000ULL     /* ... for two churn pauses and 20 ms at most */

/* ---- zipf ---------------------------------------------------------------- */

static void zipf_init(struct wl_zipf *z, uint64_t n, double theta)
{
	double zeta2 = 1.0 + pow(0.5, theta);

	z->n = n;
	z->theta = theta;
	z->zetan = 0;
	for (uint64_t i = 1; i <= n; i++)
		z->zetan += 1.0 / pow((double)i, theta);
	z->alpha = 1.0 / (1.0 - theta);
	z->eta = n > 2 ? (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / z->zetan) : 0;
	z->two_cut = zeta2;
}

static uint64_t zipf_next(const struct wl_zipf *z, uint64_t *rng)
{
	double u = prng_double(rng);
	double uz = u * z->zetan;
	uint64_t r;

	if (z->n <= 1 || uz < 1.0)
		return 0;
	if (z->n == 2 || uz < z->two_cut)
		return 1;
	r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return r < z->n ? r : z->n - 1;
}

/* ---- the freeze protocol (workload_int.h) --------------------------------- */

static bool chunk_enter(struct wl_vcpu *w, uint64_t chunk)
{
	atomic_store_explicit(&w->cur_chunk, (int64_t)chunk, memory_order_seq_cst);
	if (atomic_load_explicit(&w->vm->frozen[chunk], memory_order_seq_cst)) {
		atomic_store_explicit(&w->cur_chunk, -1, memory_order_release);
		w->c.frozen_skips++;
		return false;
	}
	return true;
}

static void chunk_exit(struct wl_vcpu *w)
{
	atomic_store_explicit(&w->cur_chunk, -1, memory_order_release);
}

/* ---- accesses ------------------------------------------------------------- */

static inline int g_load(struct wl_vcpu *w, gpa_t gpa, uint64_t *val)
{
	w->c.accesses++;
	w->last_gpa = gpa;
	return vcpu_load64(w->vcpu, gpa, val);
}

static inline int g_store(struct wl_vcpu *w, gpa_t gpa, uint64_t val)
{
	w->c.accesses++;
	w->last_gpa = gpa;
	return vcpu_store64(w->vcpu, gpa, val);
}

static inline gfn_t own_gfn(const struct wl_vcpu *w, uint64_t k)
{
	return k * w->vm->nr_vcpus + w->idx;
}

/* Read own page gfn and check it exactly. Called with its chunk entered.
 * Returns OP_DONE, OP_FAILED or a negative errno from the access. */
static int check_own(struct wl_vcpu *w, gfn_t gfn, uint64_t exp)
{
	struct wl_vm *vm = w->vm;
	gpa_t gpa = gfn << PAGE_SHIFT;
	uint64_t tag, ver, chk;
	char why[160];
	int kind, r;

	r = g_load(w, gpa + 8, &ver);
	if (!r)
		r = g_load(w, gpa, &tag);
	if (r)
		return r;
	kind = wl_check_header(vm->id, gfn, exp, tag, ver, why, sizeof(why));
	if (kind < 0 && exp) {
		r = g_load(w, gpa + 8 * wl_check_index(exp), &chk);
		if (r)
			return r;
		if (chk != wl_check_word(vm->id, gfn, exp)) {
			kind = WL_FAIL_CORRUPT;
			snprintf(why, sizeof(why), "version %llu with a wrong check word "
				 "(%#llx)", (unsigned long long)exp, (unsigned long long)chk);
		}
	}
	if (kind < 0)
		return OP_DONE;
	wl_fail(vm->sc, kind, (int)vm->id, (int)w->idx, gfn, "gfn %#llx: %s",
		(unsigned long long)gfn, why);
	return OP_FAILED;
}

/* Write version exp + 1 into own page gfn (checked just before). */
static int write_own(struct wl_vcpu *w, gfn_t gfn, uint64_t exp)
{
	struct wl_vm *vm = w->vm;
	gpa_t gpa = gfn << PAGE_SHIFT;
	uint64_t ver = exp + 1;
	unsigned int pos;
	int r;

	/* Tell the churn thread which page is being written (fork samples). */
	pos = atomic_load_explicit(&w->ring_pos, memory_order_relaxed);
	atomic_store_explicit(&w->ring[pos % WL_RING], gfn, memory_order_relaxed);
	atomic_store_explicit(&w->ring_pos, pos + 1, memory_order_release);

	w->intent_write = true;
	r = g_store(w, gpa + 8 * wl_check_index(ver), wl_check_word(vm->id, gfn, ver));
	if (!r)
		r = g_store(w, gpa, wl_page_tag(vm->id, gfn));
	if (!r)
		r = g_store(w, gpa + 8, ver);
	w->intent_write = false;
	if (r == 0) {
		/* Release: a cross reader that sees ver here sees the stores. */
		atomic_store_explicit(&vm->expected[gfn], (uint32_t)ver, memory_order_release);
		w->c.page_writes++;
		return OP_DONE;
	}
	if (r == -EFAULT) {
		w->c.writes_refused++;  /* read-only host mapping: not written */
		return OP_DONE;
	}
	return r;
}

static int page_op(struct wl_vcpu *w, gfn_t gfn, bool write)
{
	struct wl_vm *vm = w->vm;
	uint64_t exp;
	int r;

	if (!chunk_enter(w, wl_chunk_of(vm, gfn)))
		return OP_SKIPPED;
	/* Relaxed: written by this vCPU, or by churn before it unfroze the
	 * chunk (seq_cst store that chunk_enter's load synchronizes with). */
	exp = atomic_load_explicit(&vm->expected[gfn], memory_order_relaxed);
	r = check_own(w, gfn, exp);
	if (r == OP_DONE) {
		if (write)
			r = write_own(w, gfn, exp);
		else
			w->c.page_reads++;
	}
	chunk_exit(w);
	return r;
}

/* Read a page another vCPU owns: the owner may be writing it, so check the
 * tag and that the version lies between what was committed before the read
 * and one past what was committed after it. */
static int cross_read(struct wl_vcpu *w)
{
	struct wl_vm *vm = w->vm;
	unsigned int nv = vm->nr_vcpus;
	uint64_t j, n_j, lo, hi, ver, tag;
	gfn_t gfn;
	char why[160];
	int kind, r;

	j = prng_below(&w->rng, nv - 1);
	if (j >= w->idx)
		j++;
	n_j = (vm->npages - j + nv - 1) / nv;
	gfn = prng_below(&w->rng, n_j) * nv + j;
	if (!chunk_enter(w, wl_chunk_of(vm, gfn)))
		return OP_SKIPPED;
	lo = atomic_load_explicit(&vm->expected[gfn], memory_order_acquire);
	r = g_load(w, (gfn << PAGE_SHIFT) + 8, &ver);
	if (!r)
		r = g_load(w, gfn << PAGE_SHIFT, &tag);
	/* The second look must not move before the page loads: a release
	 * (here an RMW that changes nothing) keeps them ahead of it. */
	hi = atomic_fetch_add_explicit(&vm->expected[gfn], 0, memory_order_acq_rel);
	chunk_exit(w);
	if (r)
		return r;
	w->c.cross_reads++;
	kind = wl_check_header_bounds(vm->id, gfn, lo, hi, tag, ver, why, sizeof(why));
	if (kind < 0)
		return OP_DONE;
	wl_fail(vm->sc, kind, (int)vm->id, (int)w->idx, gfn,
		"gfn %#llx (vCPU %llu's): %s", (unsigned long long)gfn,
		(unsigned long long)j, why);
	return OP_FAILED;
}

static int rom_read(struct wl_vcpu *w)
{
	struct wl_vm *vm = w->vm;
	uint64_t i = prng_below(&w->rng, WL_ROM_PAGES * WL_WORDS), val;
	int r = g_load(w, vm->rom_gpa + 8 * i, &val);

	if (r)
		return r;
	w->c.rom_reads++;
	if (val == wl_rom_word(vm->id, i))
		return OP_DONE;
	wl_fail(vm->sc, WL_FAIL_ROM, (int)vm->id, (int)w->idx,
		(vm->rom_gpa >> PAGE_SHIFT) + i / WL_WORDS,
		"ROM word %llu reads %#llx, not %#llx", (unsigned long long)i,
		(unsigned long long)val, (unsigned long long)wl_rom_word(vm->id, i));
	return OP_FAILED;
}

/* A write to the read-only slot must exit to the VMM with its gpa. */
static int rom_write(struct wl_vcpu *w)
{
	struct wl_vm *vm = w->vm;
	uint64_t i = prng_below(&w->rng, WL_ROM_PAGES * WL_WORDS);
	gpa_t gpa = vm->rom_gpa + 8 * i;
	uint64_t before = w->mmio_count;
	int r;

	w->rom_write_pending = true;
	r = g_store(w, gpa, ~wl_rom_word(vm->id, i));
	w->rom_write_pending = false;
	if (r)
		return r;
	w->c.rom_writes++;
	if (w->mmio_count == before + 1 && w->mmio_gpa == gpa && w->mmio_write)
		return OP_DONE;
	wl_fail(vm->sc, WL_FAIL_MMIO, (int)vm->id, (int)w->idx, gpa >> PAGE_SHIFT,
		"ROM write to gpa %#llx: %llu MMIO exits (want 1), last at %#llx",
		(unsigned long long)gpa, (unsigned long long)(w->mmio_count - before),
		(unsigned long long)w->mmio_gpa);
	return OP_FAILED;
}

/* ---- device pages (seed 001) ---------------------------------------------- */

/*
 * Read n words at gpa as one seqcount-protected record (word 0 the
 * version). OP_DONE with a consistent copy in words[], OP_SKIPPED if the
 * writer kept it busy, or an access error. The fences keep the data loads
 * between the two version loads (pair with the writer's release fence and
 * release store).
 */
static int seq_read(struct wl_vcpu *w, gpa_t gpa, uint64_t *words, unsigned int n)
{
	for (unsigned int tries = 0; tries < SEQ_READ_TRIES; tries++) {
		uint64_t v1, v2;
		int r = g_load(w, gpa, &v1);

		if (r)
			return r;
		if (v1 & 1)
			continue;
		atomic_thread_fence(memory_order_acquire);
		for (unsigned int i = 1; i < n && !r; i++)
			r = g_load(w, gpa + 8 * i, &words[i]);
		atomic_thread_fence(memory_order_acquire);
		if (!r)
			r = g_load(w, gpa, &v2);
		if (r)
			return r;
		if (v1 == v2) {
			words[0] = v1;
			return OP_DONE;
		}
	}
	w->c.dev_busy++;
	return OP_SKIPPED;
}

static int dev_fail(struct wl_vcpu *w, enum wl_fail_kind kind, gpa_t gpa, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));

static int dev_fail(struct wl_vcpu *w, enum wl_fail_kind kind, gpa_t gpa, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	wl_fail(w->vm->sc, kind, (int)w->vm->id, (int)w->idx, gpa >> PAGE_SHIFT, "gpa %#llx: %s",
		(unsigned long long)gpa, msg);
	return OP_FAILED;
}

static int clock_read(struct wl_vcpu *w)
{
	gpa_t gpa = w->vm->dev_gpa;
	struct clock_page *seen = &w->clk_seen;
	uint64_t p[3];
	int r = seq_read(w, gpa, p, 3);

	if (r != OP_DONE)
		return r;
	w->c.clock_reads++;
	if (p[0] == 0) {
		w->c.dev_zero_reads++;
		if (p[1] || p[2])
			return dev_fail(w, WL_FAIL_CLOCK, gpa, "clock page of version 0 holds "
					"time %llu seq %llu", (unsigned long long)p[1],
					(unsigned long long)p[2]);
		return OP_DONE;
	}
	if (p[0] != 2 * p[2] || !p[1])
		return dev_fail(w, WL_FAIL_CLOCK, gpa, "clock page torn: version %llu, seq %llu, "
				"time %llu", (unsigned long long)p[0], (unsigned long long)p[2],
				(unsigned long long)p[1]);
	if (p[0] < seen->version || p[1] < seen->time_ns || p[2] < seen->seq)
		return dev_fail(w, WL_FAIL_CLOCK, gpa, "clock went backwards: version %llu seq "
				"%llu time %llu after version %llu seq %llu time %llu",
				(unsigned long long)p[0], (unsigned long long)p[2],
				(unsigned long long)p[1], (unsigned long long)seen->version,
				(unsigned long long)seen->seq, (unsigned long long)seen->time_ns);
	seen->version = p[0];
	seen->time_ns = p[1];
	seen->seq = p[2];
	return OP_DONE;
}

#define RS_WORDS 6      /* version .. state_entry_time of kvm_runstate_info */

/* Read vCPU idx's run-state area and check it (own: idx == w->idx). */
static int runstate_read(struct wl_vcpu *w, unsigned int idx)
{
	struct kvm_runstate_info *seen = &w->rs_seen[idx];
	gpa_t gpa = wl_runstate_gpa(w->vm, idx);
	uint64_t p[RS_WORDS];
	int r = seq_read(w, gpa, p, RS_WORDS);

	if (r != OP_DONE)
		return r;
	if (idx == w->idx)
		w->c.runstate_reads++;
	else
		w->c.runstate_sibling_reads++;
	if (idx == w->idx && kvm_vcpu_runstate_error(&w->vcpu->kvm_vcpu)) {
		/* The area's page could not be swapped in to refresh its
		 * cache: its data is lost, as for a guest access (-EIO). */
		w->last_gpa = gpa;
		return kvm_vcpu_runstate_error(&w->vcpu->kvm_vcpu);
	}
	if (idx == w->idx) {
		/* The vCPU thread's own accounting (kvm.h: struct kvm_runstate,
		 * its thread's fields; we are that thread, in guest mode, so no
		 * entry can change them under us). */
		const struct kvm_runstate *rs = &w->vcpu->kvm_vcpu.runstate;
		uint64_t version = rs->version, entries = rs->entries;

		if (rs->hva && (p[0] != version || p[1] != entries))
			return dev_fail(w, WL_FAIL_RUNSTATE, gpa, "own run-state area holds "
					"version %llu entries %llu, but this entry wrote version "
					"%llu entries %llu: a write through a stale mapping",
					(unsigned long long)p[0], (unsigned long long)p[1],
					(unsigned long long)version, (unsigned long long)entries);
		if (!rs->hva && p[0] > version)
			return dev_fail(w, WL_FAIL_RUNSTATE, gpa, "own run-state area holds "
					"version %llu, past the last written (%llu)",
					(unsigned long long)p[0], (unsigned long long)version);
	}
	if (p[0] == 0) {
		w->c.dev_zero_reads++;
		for (unsigned int i = 1; i < RS_WORDS; i++)
			if (p[i])
				return dev_fail(w, WL_FAIL_RUNSTATE, gpa, "vCPU %u's run-state area "
						"of version 0 holds word %u = %llu", idx, i,
						(unsigned long long)p[i]);
		return OP_DONE;
	}
	if (p[0] < seen->version || p[1] < seen->entries || p[2] < seen->time_in_guest ||
	    p[3] < seen->time_outside || p[4] < seen->time_runnable ||
	    p[5] < seen->state_entry_time)
		return dev_fail(w, WL_FAIL_RUNSTATE, gpa, "vCPU %u's run-state area went "
				"backwards: version %llu entries %llu after version %llu "
				"entries %llu", idx, (unsigned long long)p[0],
				(unsigned long long)p[1], (unsigned long long)seen->version,
				(unsigned long long)seen->entries);
	seen->version = p[0];
	seen->entries = p[1];
	seen->time_in_guest = p[2];
	seen->time_outside = p[3];
	seen->time_runnable = p[4];
	seen->state_entry_time = p[5];
	return OP_DONE;
}

/* The clock page, this vCPU's run-state area and the next vCPU's. */
static int dev_read(struct wl_vcpu *w)
{
	const struct scenario_config *cfg = &w->vm->sc->cfg;
	struct wl_vm *vm = w->vm;
	int r = OP_DONE;

	if (!chunk_enter(w, vm->nchunks))
		return OP_SKIPPED;
	if (cfg->clock_period_ns)
		r = clock_read(w);
	if (cfg->runstate && r >= 0 && r != OP_FAILED)
		r = runstate_read(w, w->idx);
	if (cfg->runstate && vm->nr_vcpus > 1 && r >= 0 && r != OP_FAILED)
		r = runstate_read(w, (w->idx + 1) % vm->nr_vcpus);
	chunk_exit(w);
	return r == OP_SKIPPED ? OP_DONE : r;
}

/* The VMM's MMIO handler; runs on the vCPU's thread, outside guest mode. */
void wl_mmio(void *opaque, struct vcpu *v, gpa_t gpa, unsigned int size, bool write,
	     uint64_t *val)
{
	struct wl_vm *vm = opaque;
	struct wl_vcpu *w = vm->vcpus[vcpu_id(v)];
	bool in_rom = gpa >= vm->rom_gpa && gpa < vm->rom_gpa + WL_ROM_PAGES * PAGE_SIZE;

	w->mmio_count++;
	w->mmio_gpa = gpa;
	w->mmio_write = write;
	w->c.mmio_exits++;
	if (!write)
		*val = ~(uint64_t)0;
	if (write && in_rom && w->rom_write_pending)
		return;
	wl_fail(vm->sc, WL_FAIL_MMIO, (int)vm->id, (int)w->idx, gpa >> PAGE_SHIFT,
		"unexpected MMIO %s at gpa %#llx", write ? "write" : "read",
		(unsigned long long)gpa);
}

/*
 * cfg.stall: a vCPU writing its page stops at a hook point -- after the
 * fault's GUP, or in guest mode before the store through a fresh soft-TLB
 * entry -- until the churn thread completes its next host step (or two
 * churn pauses and some: long enough for one op to start and finish while
 * it waits). Intact, the protocol makes the stall harmless: the fault
 * retries (the sequence moved); the flush waits for the vCPU to leave guest
 * mode (WAIT), or the store's restartable section sees the request (RSEQ).
 * Broken, the store lands after the churn has taken its snapshot.
 */
void wl_stall_hook(struct kvm_vcpu *v, enum vcpu_hook_point at, void *arg)
{
	struct wl_vcpu *w = arg;
	struct wl_vm *vm = w->vm;
	uint64_t e0, deadline;

	if (!w->intent_write || (at != VCPU_HOOK_AFTER_GUP && at != VCPU_HOOK_IN_GUEST) ||
	    ++w->stall_tick[at] % STALL_EVERY)
		return;
	w->c.stalls++;
	e0 = atomic_load(&vm->churn_epoch);
	deadline = clock_now_ns() + 2000ULL * vm->sc->cfg.churn_interval_us + STALL_SLACK_NS;
	while (atomic_load(&vm->churn_epoch) == e0 && !vcpu_should_stop(to_vcpu(v)) &&
	       !wl_should_end(vm->sc) && clock_now_ns() < deadline)
		nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
}

/* ---- the guest ------------------------------------------------------------ */

static enum phase next_phase(const struct wl_vcpu *w, enum phase ph)
{
	switch (w->vm->sc->cfg.workload) {
	case WL_MIXED:
		return (enum phase)((ph + 1) % NR_PHASES);
	case WL_VERIFY:
		return PH_VERIFY;
	default:
		return ph;
	}
}

static enum phase first_phase(const struct wl_vcpu *w)
{
	switch (w->vm->sc->cfg.workload) {
	case WL_MIXED:
		return (enum phase)((w->vm->id + w->idx) % NR_PHASES);
	case WL_UNIFORM:
		return PH_UNIFORM;
	case WL_ZIPF:
		return PH_ZIPF;
	default:
		return PH_SEQ;  /* WL_SEQ, and WL_VERIFY's first pass */
	}
}

static void publish(struct wl_vcpu *w)
{
	atomic_store_explicit(&w->pub_accesses, w->c.accesses, memory_order_relaxed);
}

int wl_guest_main(struct vcpu *v, void *arg)
{
	struct wl_vcpu *w = arg;
	struct scenario *sc = w->vm->sc;
	const struct scenario_config *cfg = &sc->cfg;
	bool cross = cfg->cross_reads && w->vm->nr_vcpus > 1;
	bool dev_pages = cfg->clock_period_ns || cfg->runstate;
	enum phase ph = first_phase(w);
	uint64_t pos = 0, ops = 0;
	unsigned int skips = 0;
	int r = 0;

	zipf_init(&w->zipf, w->n_own, ZIPF_THETA);
	for (;;) {
		/* The bounded-interval exit. */
		if (vcpu_check_requests(v))
			break;
		if (wl_vm_should_end(w->vm))
			break;

		uint64_t dice = prng_next(&w->rng);
		bool write = false;
		uint64_t k = 0;

		if ((dice & ROM_READ_MASK) == 0) {
			r = rom_read(w);
		} else if ((dice & ROM_WRITE_MASK) == 1) {
			r = rom_write(w);
		} else if (dev_pages && ((dice >> DEV_READ_SHIFT) & DEV_READ_MASK) == 0) {
			r = dev_read(w);
		} else {
			switch (ph) {
			case PH_SEQ:
			case PH_VERIFY:
				k = pos;
				write = ph == PH_SEQ;
				break;
			case PH_UNIFORM:
			case PH_ZIPF:
				k = ph == PH_UNIFORM ? prng_below(&w->rng, w->n_own) :
				    zipf_next(&w->zipf, &w->rng) * PERMUTE_PRIME % w->n_own;
				write = (dice >> 40) % 100 < cfg->write_pct;
				break;
			default:
				break;
			}
			if (!write && cross && ph >= PH_UNIFORM &&
			    ((dice >> 20) & CROSS_READ_MASK) == 0)
				r = cross_read(w);
			else
				r = page_op(w, own_gfn(w, k), write);
			if (++pos >= w->n_own) {
				pos = 0;
				ph = next_phase(w, ph);
			}
		}
		if (r < 0 || r == OP_FAILED)
			break;
		if (r == OP_SKIPPED && ++skips >= IDLE_AFTER_SKIPS) {
			/* Churn holds most of our pages: don't spin. */
			skips = 0;
			nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
		} else if (r != OP_SKIPPED) {
			skips = 0;
		}
		if ((++ops & 63) == 0)
			publish(w);
	}
	chunk_exit(w);
	publish(w);
	if (r == -EIO)
		/* The page's swap-in failed: its data is lost to this VM. */
		wl_vm_kill(w->vm, WL_KILLED_SWAP_READ, "vm%u: swap-in read error (gfn %#llx, "
			   "vCPU %u): VM stopped", w->vm->id,
			   (unsigned long long)(w->last_gpa >> PAGE_SHIFT), w->idx);
	else if (r < 0 && r != -EINTR)
		wl_fail(sc, WL_FAIL_ACCESS, (int)w->vm->id, (int)w->idx, 0,
			"guest access failed: %s%s", strerror(-r),
			r == -ENOMEM ? " (host out of memory: raise --host-mem)" : "");
	return 0;
}
