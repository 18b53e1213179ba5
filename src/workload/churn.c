/* SPDX-License-Identifier: MIT */
/*
 * churn.c - host operations racing the running guests, one thread per VM
 * (so slot updates and the VM's hva layout have a single writer).
 *
 * Each op, and what it checks:
 *
 *   DONTNEED  freeze a few chunks (workload_int.h), madvise(DONTNEED) their
 *             hva range, expected := 0, unfreeze. The data is legitimately
 *             gone; a secondary mapping that survived shows old data where
 *             the guest must now read zeroes.
 *   MPROTECT  mprotect(PROT_READ) a region of a slot (guests keep running on
 *             it: their writes fail with -EFAULT and must change nothing),
 *             hash every page through the host, keep the window open a
 *             little, hash again, mprotect back. Any change is a write
 *             through a read-only mapping.
 *   REMAP     freeze a slot's chunks, delete the slot, mmap a new range (at
 *             a new hva, the old one still mapped), munmap the old one, set
 *             the slot again over the new range, expected := 0, unfreeze.
 *   FORK      mm_fork the VM's mm; right after, read a sample of the child's
 *             pages through the host -- the pages the vCPUs were writing
 *             (their rings) and random ones -- checking each against the
 *             versions committed around the fork and hashing it; let the
 *             guests run (they break COW); hash again, then mmput(child).
 *             A change means a guest wrote a frame the child shares: a
 *             writable secondary mapping survived the fork's write-protect.
 *
 * The device pages (workload_int.h: the clock page and the run-state
 * areas, written by the host through gfn_to_pfn caches) get the same ops,
 * one op in DEV_OP_ONE_IN: DONTNEED (or, with swap, PAGEOUT) of the
 * region with no freeze (the guests accept zeroes there); mprotect
 * read-only with the same hash check (a cache that kept writing through
 * the read-only window is a write through a read-only mapping); remap of
 * the region (frozen: the guests must not meet the missing memslot); and
 * every fork hashes the child's copy of them twice (a host write through
 * a cache into the frame the child shares is a post-fork write).
 *
 * After each op's host step (the point from which a stale translation would
 * show), churn_epoch is bumped: stalled vCPUs (cfg.stall) wait for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workload_int.h"
#include "base/clock.h"

#define DONTNEED_MAX_CHUNKS 4
#define RO_WINDOW_NS        2000000ULL  /* mprotect: read-only this long */
#define CHILD_LIFE_NS       5000000ULL  /* fork: the child lives this long */
#define FORK_RANDOM_SAMPLE  256
#define DEV_OP_ONE_IN       4           /* ops on the device pages instead */

static void churn_sleep(struct scenario *sc, uint64_t ns)
{
	uint64_t end = clock_now_ns() + ns;

	while (!wl_should_end(sc)) {
		uint64_t now = clock_now_ns();

		if (now >= end)
			break;
		uint64_t step = MIN(end - now, 1000000ULL);
		nanosleep(&(struct timespec){ .tv_nsec = (long)step }, NULL);
	}
}

/* Take chunks [c0, c1) away from the guests (workload_int.h). */
static void freeze(struct wl_vm *vm, uint64_t c0, uint64_t c1)
{
	for (uint64_t c = c0; c < c1; c++)
		atomic_store_explicit(&vm->frozen[c], 1, memory_order_seq_cst);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct wl_vcpu *w = vm->vcpus[i];

		for (;;) {
			int64_t cur = atomic_load_explicit(&w->cur_chunk, memory_order_seq_cst);

			if (cur < (int64_t)c0 || cur >= (int64_t)c1)
				break;
			nanosleep(&(struct timespec){ .tv_nsec = 10000 }, NULL);
		}
	}
}

static void unfreeze(struct wl_vm *vm, uint64_t c0, uint64_t c1)
{
	for (uint64_t c = c0; c < c1; c++)
		atomic_store_explicit(&vm->frozen[c], 0, memory_order_seq_cst);
}

static void expect_zero(struct wl_vm *vm, gfn_t g0, gfn_t g1)
{
	for (gfn_t g = g0; g < g1; g++)
		atomic_store_explicit(&vm->expected[g], 0, memory_order_relaxed);
}

static void epoch_bump(struct wl_vm *vm)
{
	atomic_fetch_add(&vm->churn_epoch, 1);
}

static int host_err(struct wl_vm *vm, const char *what, gfn_t gfn, long long err)
{
	if (err == -EIO) {
		/* A swap-in the VMM needed failed: the VM's data is lost. */
		wl_vm_kill(vm, WL_KILLED_SWAP_READ, "vm%u: swap-in read error (gfn %#llx, "
			   "VMM %s): VM stopped", vm->id, (unsigned long long)gfn, what);
		return -1;
	}
	wl_fail(vm->sc, WL_FAIL_HOST, (int)vm->id, -1, gfn, "churn: %s: %lld (%s)", what,
		err, err < 0 ? strerror((int)-err) : "short");
	return -1;
}

static int op_dontneed(struct wl_vm *vm)
{
	uint64_t chunks_per_slot = vm->slot_pages / vm->chunk_pages;
	uint64_t slot = prng_below(&vm->churn_rng, WL_NR_SLOTS);
	uint64_t n = 1 + prng_below(&vm->churn_rng, MIN(DONTNEED_MAX_CHUNKS, chunks_per_slot));
	uint64_t c0 = slot * chunks_per_slot +
		      prng_below(&vm->churn_rng, chunks_per_slot - n + 1);
	gfn_t g0 = c0 * vm->chunk_pages, g1 = (c0 + n) * vm->chunk_pages;
	int err;

	freeze(vm, c0, c0 + n);
	err = mm_madvise(vm->mm, wl_gfn_to_hva(vm, g0), (g1 - g0) * PAGE_SIZE, MADV_DONTNEED);
	if (err == 0)
		expect_zero(vm, g0, g1);
	unfreeze(vm, c0, c0 + n);
	epoch_bump(vm);
	return err ? host_err(vm, "madvise(DONTNEED)", g0, err) : 0;
}

static int op_mprotect(struct wl_vm *vm, uint64_t *buf)
{
	uint64_t region = MIN(vm->slot_pages, MAX(vm->chunk_pages, vm->npages / 16));
	uint64_t slot = prng_below(&vm->churn_rng, WL_NR_SLOTS);
	gfn_t g0 = slot * vm->slot_pages +
		   prng_below(&vm->churn_rng, (vm->slot_pages - region) / vm->chunk_pages + 1) *
		   vm->chunk_pages;
	gfn_t g1 = g0 + region, g;
	hva_t hva = wl_gfn_to_hva(vm, g0);
	unsigned int reported = 0;
	int64_t r = PAGE_SIZE;
	int err;

	err = mm_mprotect(vm->mm, hva, region * PAGE_SIZE, PROT_READ);
	if (err)
		return host_err(vm, "mprotect(PROT_READ)", g0, err);
	/* From here on no guest write may land in [g0, g1). */
	for (g = g0; g < g1; g++) {
		r = mm_read(vm->mm, wl_gfn_to_hva(vm, g), buf, PAGE_SIZE);
		if (r != PAGE_SIZE)
			break;
		vm->hash[g - g0] = wl_hash_page(buf);
		vm->hash_ver[g - g0] = buf[1];
	}
	epoch_bump(vm);
	if (r == PAGE_SIZE) {
		churn_sleep(vm->sc, RO_WINDOW_NS);
		for (g = g0; g < g1 && reported < 4; g++) {
			r = mm_read(vm->mm, wl_gfn_to_hva(vm, g), buf, PAGE_SIZE);
			if (r != PAGE_SIZE)
				break;
			if (wl_hash_page(buf) == vm->hash[g - g0])
				continue;
			reported++;
			wl_fail(vm->sc, WL_FAIL_RO_WRITE, (int)vm->id, -1, g,
				"gfn %#llx changed while mapped read-only (content hash differs; "
				"version word %llu -> %llu)",
				(unsigned long long)g, (unsigned long long)vm->hash_ver[g - g0],
				(unsigned long long)buf[1]);
		}
		atomic_fetch_add(&vm->churn_pages_checked, 2 * region);
	}
	err = mm_mprotect(vm->mm, hva, region * PAGE_SIZE, PROT_READ | PROT_WRITE);
	if (r != PAGE_SIZE)
		return host_err(vm, "mm_read (read-only region)", g, r);
	return err ? host_err(vm, "mprotect(PROT_READ|PROT_WRITE)", g0, err) : 0;
}

static int op_remap(struct wl_vm *vm)
{
	uint64_t slot = prng_below(&vm->churn_rng, WL_NR_SLOTS);
	uint64_t chunks_per_slot = vm->slot_pages / vm->chunk_pages;
	uint64_t c0 = slot * chunks_per_slot, c1 = c0 + chunks_per_slot;
	gfn_t g0 = slot * vm->slot_pages;
	int err;

	/* Frozen: no vCPU of ours touches the slot while it moves, and the
	 * new backing reads zeroes. A failed remap leaves it frozen. */
	freeze(vm, c0, c1);
	err = vmm_remap_ram(vm->vmm, (unsigned int)slot);
	if (err)
		return host_err(vm, "remap of a RAM slot", g0, err);
	expect_zero(vm, g0, g0 + vm->slot_pages);
	unfreeze(vm, c0, c1);
	epoch_bump(vm);
	return 0;
}

static bool has_dev_pages(const struct wl_vm *vm)
{
	return vm->sc->cfg.clock_period_ns || vm->sc->cfg.runstate;
}

/* Hash the device pages as mm sees them: PAGE_SIZE, or the failed read's
 * result. Churn thread (the region's only remapper). */
static int64_t dev_hash(struct wl_vm *vm, struct mm *mm, uint64_t *buf,
			uint64_t hash[WL_DEV_PAGES])
{
	hva_t hva = vmm_ram_hva(vm->vmm, WL_DEV_SLOT);

	for (unsigned int i = 0; i < WL_DEV_PAGES; i++) {
		int64_t r = mm_read(mm, hva + i * PAGE_SIZE, buf, PAGE_SIZE);

		if (r != PAGE_SIZE)
			return r;
		hash[i] = wl_hash_page(buf);
	}
	return PAGE_SIZE;
}

static gfn_t dev_gfn(const struct wl_vm *vm)
{
	return vm->dev_gpa >> PAGE_SHIFT;
}

/* DONTNEED (or PAGEOUT when there is swap to page out to) of the device
 * pages, under the guests' feet: they read zeroes until the host writes
 * again, which its invalidated caches make it refresh first. */
static int op_dev_discard(struct wl_vm *vm)
{
	int advice = vm->sc->cfg.swap_bytes && prng_below(&vm->churn_rng, 2) ?
		     MADV_PAGEOUT : MADV_DONTNEED;
	int err = mm_madvise(vm->mm, vmm_ram_hva(vm->vmm, WL_DEV_SLOT),
			     WL_DEV_PAGES * PAGE_SIZE, advice);

	epoch_bump(vm);
	return err ? host_err(vm, advice == MADV_PAGEOUT ? "madvise(PAGEOUT) of the device "
			      "pages" : "madvise(DONTNEED) of the device pages",
			      dev_gfn(vm), err) : 0;
}

/* Read-only for a while: no host write through a cache may land. */
static int op_dev_mprotect(struct wl_vm *vm, uint64_t *buf)
{
	hva_t hva = vmm_ram_hva(vm->vmm, WL_DEV_SLOT);
	uint64_t h0[WL_DEV_PAGES], h1[WL_DEV_PAGES];
	int64_t r;
	int err;

	err = mm_mprotect(vm->mm, hva, WL_DEV_PAGES * PAGE_SIZE, PROT_READ);
	if (err)
		return host_err(vm, "mprotect(PROT_READ) of the device pages", dev_gfn(vm), err);
	r = dev_hash(vm, vm->mm, buf, h0);
	epoch_bump(vm);
	if (r == PAGE_SIZE) {
		churn_sleep(vm->sc, RO_WINDOW_NS);
		r = dev_hash(vm, vm->mm, buf, h1);
	}
	for (unsigned int i = 0; r == PAGE_SIZE && i < WL_DEV_PAGES; i++)
		if (h0[i] != h1[i])
			wl_fail(vm->sc, WL_FAIL_RO_WRITE, (int)vm->id, -1, dev_gfn(vm) + i,
				"device page %u (%s) changed while mapped read-only: a host "
				"write through a gfn_to_pfn cache", i,
				i ? "run-state areas" : "clock page");
	if (r == PAGE_SIZE)
		atomic_fetch_add(&vm->churn_pages_checked, 2 * WL_DEV_PAGES);
	err = mm_mprotect(vm->mm, hva, WL_DEV_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE);
	if (r != PAGE_SIZE)
		return host_err(vm, "mm_read (read-only device pages)", dev_gfn(vm), r);
	return err ? host_err(vm, "mprotect(PROT_READ|PROT_WRITE) of the device pages",
			      dev_gfn(vm), err) : 0;
}

/* A new backing for the device region (the guests kept out meanwhile). */
static int op_dev_remap(struct wl_vm *vm)
{
	int err;

	freeze(vm, vm->nchunks, vm->nchunks + 1);
	err = vmm_remap_ram(vm->vmm, WL_DEV_SLOT);
	if (err)
		return host_err(vm, "remap of the device pages", dev_gfn(vm), err);
	unfreeze(vm, vm->nchunks, vm->nchunks + 1);
	epoch_bump(vm);
	return 0;
}

struct fork_sample {
	gfn_t gfn;
	uint64_t hash, ver;
};

static int op_fork(struct wl_vm *vm, uint64_t *buf)
{
	struct fork_sample s[WL_MAX_VCPUS * WL_RING + FORK_RANDOM_SAMPLE];
	unsigned int n = 0;
	struct mm *child;
	char why[160];
	int err;

	for (gfn_t g = 0; g < vm->npages; g++)
		vm->exp_before[g] = atomic_load_explicit(&vm->expected[g], memory_order_acquire);
	err = mm_fork(vm->mm, &child);
	if (err == -ENOMEM && vm->sc->cfg.swap_bytes) {
		/* Fork copies page tables under the page-table locks, where
		 * nothing is reclaimed: with RAM overcommitted it may find no
		 * free frame. Not a failure; this op is skipped. */
		atomic_fetch_add_explicit(&vm->churn_fork_enomem, 1, memory_order_relaxed);
		return 1;
	}
	if (err)
		return host_err(vm, "mm_fork", 0, err);
	for (gfn_t g = 0; g < vm->npages; g++)
		vm->exp_after[g] = atomic_load_explicit(&vm->expected[g], memory_order_acquire);

	/* The sample: what the vCPUs are writing now, and random pages. */
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		for (unsigned int j = 0; j < WL_RING; j++) {
			gfn_t g = atomic_load_explicit(&vm->vcpus[i]->ring[j],
						       memory_order_acquire);
			if (g < vm->npages)
				s[n++].gfn = g;
		}
	for (unsigned int j = 0; j < FORK_RANDOM_SAMPLE && j < vm->npages; j++)
		s[n++].gfn = prng_below(&vm->churn_rng, vm->npages);

	/* The device pages the host writes: the child's copy must not move. */
	uint64_t dev_h0[WL_DEV_PAGES], dev_h1[WL_DEV_PAGES];
	bool dev = has_dev_pages(vm);

	if (dev) {
		int64_t r = dev_hash(vm, child, buf, dev_h0);

		if (r != PAGE_SIZE) {
			bool victim = mm_is_oom_victim(child);

			mmput(child);
			return victim ? 0 : host_err(vm, "mm_read (fork child's device pages)",
						     dev_gfn(vm), r);
		}
	}

	/* The child's copy: what was committed around the fork, hashed. */
	for (unsigned int i = 0; i < n; i++) {
		gfn_t g = s[i].gfn;
		int64_t r = mm_read(child, wl_gfn_to_hva(vm, g), buf, PAGE_SIZE);

		if (r != PAGE_SIZE) {
			/* The OOM killer may pick the child (it looks as big as
			 * its parent): its memory is gone, the check with it. */
			bool victim = mm_is_oom_victim(child);

			mmput(child);
			return victim ? 0 : host_err(vm, "mm_read (fork child)", g, r);
		}
		s[i].hash = wl_hash_page(buf);
		s[i].ver = buf[1];
		int kind = wl_check_header_bounds(vm->id, g, vm->exp_before[g], vm->exp_after[g],
						  buf[0], buf[1], why, sizeof(why));
		if (kind >= 0)
			wl_fail(vm->sc, WL_FAIL_FORK_CHILD, (int)vm->id, -1, g,
				"fork child's copy of gfn %#llx: %s", (unsigned long long)g, why);
	}
	epoch_bump(vm);

	churn_sleep(vm->sc, CHILD_LIFE_NS);
	for (unsigned int i = 0; i < n && !atomic_load(&vm->sc->failed); i++) {
		gfn_t g = s[i].gfn;
		int64_t r = mm_read(child, wl_gfn_to_hva(vm, g), buf, PAGE_SIZE);

		if (r != PAGE_SIZE) {
			/* The OOM killer may pick the child (it looks as big as
			 * its parent): its memory is gone, the check with it. */
			bool victim = mm_is_oom_victim(child);

			mmput(child);
			return victim ? 0 : host_err(vm, "mm_read (fork child)", g, r);
		}
		if (wl_hash_page(buf) != s[i].hash)
			wl_fail(vm->sc, WL_FAIL_FORK_CHILD, (int)vm->id, -1, g,
				"gfn %#llx of the fork child changed after the fork "
				"(content hash differs; version word %llu -> %llu)",
				(unsigned long long)g,
				(unsigned long long)s[i].ver, (unsigned long long)buf[1]);
	}
	if (dev && !atomic_load(&vm->sc->failed)) {
		int64_t r = dev_hash(vm, child, buf, dev_h1);

		if (r != PAGE_SIZE) {
			bool victim = mm_is_oom_victim(child);

			mmput(child);
			return victim ? 0 : host_err(vm, "mm_read (fork child's device pages)",
						     dev_gfn(vm), r);
		}
		for (unsigned int i = 0; i < WL_DEV_PAGES; i++)
			if (dev_h0[i] != dev_h1[i])
				wl_fail(vm->sc, WL_FAIL_FORK_CHILD, (int)vm->id, -1,
					dev_gfn(vm) + i, "device page %u (%s) of the fork child "
					"changed after the fork: a host write through a "
					"gfn_to_pfn cache into the shared frame", i,
					i ? "run-state areas" : "clock page");
		n += WL_DEV_PAGES;
	}
	atomic_fetch_add(&vm->churn_pages_checked, 2 * n);
	mmput(child);
	return 0;
}

void *wl_churn_main(void *arg)
{
	struct wl_vm *vm = arg;
	struct scenario *sc = vm->sc;
	unsigned int kinds[WL_NR_CHURN], nr = 0;
	uint64_t *buf = malloc(PAGE_SIZE);

	if (!buf) {
		wl_fail(sc, WL_FAIL_HOST, (int)vm->id, -1, 0, "churn: out of memory");
		return NULL;
	}
	for (unsigned int k = 0; k < WL_NR_CHURN; k++)
		if (sc->cfg.churn & (1u << k))
			kinds[nr++] = k;
	while (nr && !wl_vm_should_end(vm)) {
		unsigned int k = kinds[prng_below(&vm->churn_rng, nr)];
		int err = 0;

		bool dev = has_dev_pages(vm) && k != WL_CHURN_FORK &&
			   prng_below(&vm->churn_rng, DEV_OP_ONE_IN) == 0;

		switch (dev ? k : WL_NR_CHURN) {
		case WL_CHURN_DONTNEED:
			err = op_dev_discard(vm);
			break;
		case WL_CHURN_MPROTECT:
			err = op_dev_mprotect(vm, buf);
			break;
		case WL_CHURN_REMAP:
			err = op_dev_remap(vm);
			break;
		default:
			dev = false;
			break;
		}
		if (dev) {
			if (err == 0) {
				atomic_fetch_add_explicit(&vm->churn_ops[k], 1, memory_order_relaxed);
				atomic_fetch_add_explicit(&vm->dev_churn, 1, memory_order_relaxed);
			}
			if (err < 0)
				break;
			churn_sleep(sc, (uint64_t)sc->cfg.churn_interval_us * 1000);
			continue;
		}
		switch (k) {
		case WL_CHURN_DONTNEED:
			err = op_dontneed(vm);
			break;
		case WL_CHURN_MPROTECT:
			err = op_mprotect(vm, buf);
			break;
		case WL_CHURN_REMAP:
			err = op_remap(vm);
			break;
		case WL_CHURN_FORK:
			err = op_fork(vm, buf);
			break;
		}
		if (err < 0)
			break;
		if (err == 0)
			atomic_fetch_add_explicit(&vm->churn_ops[k], 1, memory_order_relaxed);
		churn_sleep(sc, (uint64_t)sc->cfg.churn_interval_us * 1000);
	}
	free(buf);
	return NULL;
}
