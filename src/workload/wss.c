/* SPDX-License-Identifier: MIT */
/*
 * wss.c - the working-set sampler of `tandem run --wss-interval`: one thread
 * that measures, for every VM, how many pages of guest RAM the guests used
 * in each interval, by idle page tracking over the VM's own address space
 * (host.h: mm_idle_mark_range, mm_idle_count_range).
 *
 *   t0            mark every VM's guest RAM idle
 *   t0 + i        per VM: count (used = mapped - still idle), mark again
 *   t0 + 2i       ...
 *
 * A VM's interval runs from its mark to its next count, so VMs are measured
 * one after the other, each over a full interval. The by-address calls ask
 * the secondary MMU for clear_flush_young, so a page a guest keeps hitting
 * through its soft TLB is seen (idle.c explains why clear_young would miss
 * it). Pages freed and faulted in again meanwhile (DONTNEED, a remapped
 * slot) are new frames, never marked: they count as used, which they were.
 *
 * Guest RAM is WL_NR_SLOTS host ranges, and the churn thread moves one now
 * and then (REMAP: vmm_remap_ram maps a new range and unmaps the old). Each
 * pass of a VM holds the VMM's layout lock, which the remap holds across
 * that move, so a pass walks every slot's current range and never one that
 * was unmapped or given to another slot meanwhile. Lock order: layout lock
 * before the mm's mmap_lock (both sides take it in that order), and nothing
 * the sampler holds is waited for by a vCPU.
 */
#include <string.h>
#include "workload_int.h"
#include "base/clock.h"

/* Mark (mapped == NULL) or count every slot of vm; returns 0 or -errno. */
static int wss_pass(struct wl_vm *vm, uint64_t *idle, uint64_t *mapped, uint64_t *pages)
{
	uint64_t bytes = vm->slot_pages * PAGE_SIZE;
	int err = 0;

	*pages = 0;
	vmm_layout_lock(vm->vmm);
	for (unsigned int s = 0; s < WL_NR_SLOTS && !err; s++) {
		hva_t hva = vmm_ram_hva(vm->vmm, s);

		if (!mapped) {
			int r = mm_idle_mark_range(vm->mm, hva, hva + bytes);

			if (r < 0)
				err = r;
			else
				*pages += (uint64_t)r;
		} else {
			uint64_t i = 0, m = 0;

			err = mm_idle_count_range(vm->mm, hva, hva + bytes, &i, &m);
			*idle += i;
			*mapped += m;
			*pages += m;
		}
	}
	vmm_layout_unlock(vm->vmm);
	return err;
}

static int wss_mark(struct wl_vm *vm)
{
	uint64_t t0 = clock_now_ns(), pages;
	int err = wss_pass(vm, NULL, NULL, &pages);

	vm->wss_mark_ns = clock_now_ns();
	vm->wss_mark_ns_sum += (double)(vm->wss_mark_ns - t0);
	vm->wss_marked += pages;
	return err;
}

/* End vm's interval: count, publish, start the next one. */
static int wss_interval_end(struct scenario *sc, struct wl_vm *vm, double *len_s)
{
	uint64_t t0 = clock_now_ns(), idle = 0, mapped = 0, pages, used;
	int err = wss_pass(vm, &idle, &mapped, &pages);

	if (err)
		return err;
	vm->wss_count_ns_sum += (double)(clock_now_ns() - t0);
	vm->wss_counted += pages;
	*len_s = (double)(t0 - vm->wss_mark_ns) / 1e9;
	used = mapped - idle;
	vm->wss_sum_pages += (double)used;

	pthread_mutex_lock(&sc->wss_lock);
	struct scenario_wss *w = &vm->wss;

	w->min_pages = w->intervals ? MIN(w->min_pages, used) : used;
	w->max_pages = MAX(w->max_pages, used);
	w->intervals++;
	w->last_pages = used;
	w->last_mapped = mapped;
	w->mean_pages = vm->wss_sum_pages / (double)w->intervals;
	w->count_ns_per_page = vm->wss_counted ? vm->wss_count_ns_sum /
				(double)vm->wss_counted : 0;
	pthread_mutex_unlock(&sc->wss_lock);

	err = wss_mark(vm);
	pthread_mutex_lock(&sc->wss_lock);
	w->mark_ns_per_page = vm->wss_marked ? vm->wss_mark_ns_sum /
			       (double)vm->wss_marked : 0;
	pthread_mutex_unlock(&sc->wss_lock);
	return err;
}

static void wss_fail(struct scenario *sc, struct wl_vm *vm, const char *what, int err)
{
	wl_fail(sc, WL_FAIL_HOST, (int)vm->id, -1, 0, "working set: %s: %d (%s)", what, err,
		strerror(-err));
}

/* Sleep until deadline or the end of the run; true if the deadline came. */
static bool wss_sleep_until(struct scenario *sc, uint64_t deadline)
{
	for (;;) {
		uint64_t now = clock_now_ns();

		if (wl_should_end(sc))
			return false;
		if (now >= deadline)
			return true;
		uint64_t step = MIN(deadline - now, 10000000ULL);
		nanosleep(&(struct timespec){ .tv_nsec = (long)step }, NULL);
	}
}

void *wl_wss_main(void *arg)
{
	struct scenario *sc = arg;
	uint64_t interval = sc->cfg.wss_interval_ns, next;
	int err;

	for (unsigned int i = 0; i < sc->cfg.nr_vms; i++) {
		err = wss_mark(sc->vms[i]);
		if (err) {
			wss_fail(sc, sc->vms[i], "mm_idle_mark_range", err);
			return NULL;
		}
	}
	next = sc->vms[0]->wss_mark_ns + interval;
	while (wss_sleep_until(sc, next)) {
		double len0 = 0, len;

		for (unsigned int i = 0; i < sc->cfg.nr_vms && !wl_should_end(sc); i++) {
			if (wl_vm_dead(sc->vms[i]))
				continue;       /* killed: its memory is gone */
			err = wss_interval_end(sc, sc->vms[i], &len);
			if (err && wl_vm_dead(sc->vms[i]))
				continue;
			if (err) {
				wss_fail(sc, sc->vms[i], "mm_idle_count_range", err);
				return NULL;
			}
			if (i == 0)
				len0 = len;
		}
		if (wl_should_end(sc))
			break;
		pthread_mutex_lock(&sc->wss_lock);
		sc->wss_rounds++;
		sc->wss_interval_s = len0;
		pthread_mutex_unlock(&sc->wss_lock);
		/* Every interval as long as asked, however long the passes. */
		next = sc->vms[0]->wss_mark_ns + interval;
	}
	return NULL;
}
