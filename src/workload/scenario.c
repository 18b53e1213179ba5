/* SPDX-License-Identifier: MIT */
/*
 * scenario.c - a whole run: build the host, the VMs and their vCPUs, run
 * the guests with churn for the duration, sample progress, then stop, check
 * and tear down. Shared by `tandem run` and the stress test.
 *
 * Lifecycle (states of a run, and who moves between them):
 *   SETUP     scenario_run: host_create; per VM: mm, RAM slots (8 host
 *             mappings), ROM (filled), VM, memslots, vCPUs (MMIO handler,
 *             stall hook)
 *   RUNNING   vCPU threads run wl_guest_main, churn threads wl_churn_main,
 *             and with cfg.wss_interval_ns the working-set sampler
 *             wl_wss_main; the caller's thread samples progress every second
 *   STOPPING  at the deadline or the first failure (sc->failed): sc->stop,
 *             join the sampler and churn, vcpu_stop every vCPU
 *   CHECK     wl_final_check re-reads every page and the ROM through the
 *             host; counters and stats are collected
 *   TEARDOWN  destroy vCPUs and VMs, mmput the mms; every host frame must be
 *             free again (host_frames_in_use() == 0), then host_destroy
 *
 * Kills (swap and OOM; host.h): a VM whose mm the OOM killer picks
 * (oom_notify, on whatever thread allocated) or whose guest or VMM read
 * of a swapped page failed (-EIO) is killed: wl_vm_kill records why and
 * asks its vCPUs to stop without joining them; its churn ends; failures
 * its threads report afterwards are ignored (its memory is gone by
 * design); it skips the final check and is torn down with the rest. The
 * others run on. judge_kills then fails a run with more than one kill,
 * with every VM killed, or with a read-error kill nobody injected.
 *
 * The verdict is OK iff no failure of any kind was recorded: checker
 * failures, host poison hits (debug builds; counted instead of fatal when a
 * --break other than aging is on) and leaked frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workload_int.h"
#include "base/clock.h"

static const char *const workload_names[WL_NR_WORKLOADS] = {
	[WL_MIXED] = "mixed", [WL_SEQ] = "seq", [WL_UNIFORM] = "uniform",
	[WL_ZIPF] = "zipf", [WL_VERIFY] = "verify",
};

static const char *const churn_names[WL_NR_CHURN] = {
	[WL_CHURN_DONTNEED] = "dontneed", [WL_CHURN_MPROTECT] = "mprotect",
	[WL_CHURN_REMAP] = "remap", [WL_CHURN_FORK] = "fork",
};

const char *wl_workload_name(enum wl_workload w)
{
	return (unsigned int)w < WL_NR_WORKLOADS ? workload_names[w] : "?";
}

const char *wl_churn_name(enum wl_churn c)
{
	return (unsigned int)c < WL_NR_CHURN ? churn_names[c] : "?";
}

void scenario_config_default(struct scenario_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nr_vms = 2;
	cfg->nr_vcpus = 2;
	cfg->guest_mem = 256ULL << 20;
	cfg->duration_ns = 10000000000ULL;
	cfg->workload = WL_MIXED;
	cfg->write_pct = 50;
	cfg->seed = 1;
	cfg->churn = WL_CHURN_ALL;
	cfg->churn_interval_us = 10000;
	cfg->cross_reads = true;
	cfg->prefault = true;
	cfg->swap_bytes = WL_SWAP_AUTO;
	cfg->oom_killer = true;
	cfg->clock_period_ns = CLOCKDEV_PERIOD_DEFAULT;
	cfg->runstate = true;
}

#define MiB (1ULL << 20)

/*
 * Host sizing, shared with the RISC-V scenario (workload_int.h). The host
 * must hold every VM's RAM, a second copy of it (a forked child keeps the
 * old frames while the guests break COW), page tables and ROMs.
 */
uint64_t wl_host_mem_for(unsigned int nr_vms, uint64_t guest_mem)
{
	uint64_t total = (uint64_t)nr_vms * guest_mem;
	uint64_t mem = 2 * total + total / 64 + (uint64_t)nr_vms * MiB + 64 * MiB;

	mem = (mem + MiB - 1) & ~(MiB - 1);
	return MIN(MAX(mem, HOST_RAM_MIN), HOST_RAM_MAX);
}

/* Below this the guests alone could exhaust the host. */
uint64_t wl_host_mem_min_for(unsigned int nr_vms, uint64_t guest_mem)
{
	uint64_t total = (uint64_t)nr_vms * guest_mem;

	return total + total / 4 + (uint64_t)nr_vms * MiB + 32 * MiB;
}

/* swap_bytes unless WL_SWAP_AUTO; then none if host_mem (0: automatic)
 * holds the guests, else all guest RAM, a quarter more for fork
 * children's copies, and slack. */
uint64_t wl_swap_bytes_for(unsigned int nr_vms, uint64_t guest_mem, uint64_t host_mem,
			   uint64_t swap_bytes)
{
	uint64_t total = (uint64_t)nr_vms * guest_mem;

	if (swap_bytes != WL_SWAP_AUTO)
		return swap_bytes;
	if (!host_mem || host_mem >= wl_host_mem_min_for(nr_vms, guest_mem))
		return 0;
	return MIN(total + total / 4 + 64 * MiB, HOST_SWAP_MAX);
}

uint64_t scenario_host_mem(const struct scenario_config *cfg)
{
	return wl_host_mem_for(cfg->nr_vms, cfg->guest_mem);
}

static uint64_t host_mem_min(const struct scenario_config *cfg)
{
	return wl_host_mem_min_for(cfg->nr_vms, cfg->guest_mem);
}

uint64_t scenario_swap_bytes(const struct scenario_config *cfg)
{
	return wl_swap_bytes_for(cfg->nr_vms, cfg->guest_mem, cfg->host_mem, cfg->swap_bytes);
}

int scenario_check_config(const struct scenario_config *cfg, char *why, size_t len)
{
	const unsigned int breaks = KVM_BREAK_ALL;

	if (cfg->nr_vms < 1 || cfg->nr_vms > WL_MAX_VMS)
		snprintf(why, len, "VMs: %u is out of range (1..%d)", cfg->nr_vms, WL_MAX_VMS);
	else if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > WL_MAX_VCPUS)
		snprintf(why, len, "vCPUs per VM: %u is out of range (1..%d)", cfg->nr_vcpus,
			 WL_MAX_VCPUS);
	else if (cfg->guest_mem < WL_GUEST_MEM_MIN || cfg->guest_mem > WL_GUEST_MEM_MAX ||
		 cfg->guest_mem % MiB)
		snprintf(why, len, "guest memory: %llu bytes is not a whole number of MiB "
			 "in 1M..16G", (unsigned long long)cfg->guest_mem);
	else if (cfg->duration_ns == 0 || cfg->duration_ns > 86400ULL * 1000000000ULL)
		snprintf(why, len, "duration: must be more than 0 and at most 24 hours");
	else if ((unsigned int)cfg->workload >= WL_NR_WORKLOADS)
		snprintf(why, len, "workload: unknown (%d)", (int)cfg->workload);
	else if (cfg->write_pct > 100)
		snprintf(why, len, "write ratio: %u%% is more than 100%%", cfg->write_pct);
	else if (cfg->churn & ~WL_CHURN_ALL)
		snprintf(why, len, "churn: unknown bits %#x", cfg->churn & ~WL_CHURN_ALL);
	else if (cfg->churn_interval_us > 10000000)
		snprintf(why, len, "churn interval: %u us is more than 10 s",
			 cfg->churn_interval_us);
	else if ((unsigned int)cfg->kick > KVM_KICK_RSEQ)
		snprintf(why, len, "kick mode: unknown (%d)", (int)cfg->kick);
	else if (cfg->wss_interval_ns && (cfg->wss_interval_ns < 10000000ULL ||
					  cfg->wss_interval_ns > 3600ULL * 1000000000ULL))
		snprintf(why, len, "working-set interval: must be 10 ms to 1 hour");
	else if (cfg->clock_period_ns && (cfg->clock_period_ns < CLOCKDEV_PERIOD_MIN ||
					  cfg->clock_period_ns > CLOCKDEV_PERIOD_MAX))
		snprintf(why, len, "clock period: %llu ns is not in 10us..1s (0: no clock)",
			 (unsigned long long)cfg->clock_period_ns);
	else if (cfg->breaks & ~breaks)
		snprintf(why, len, "breaks: unknown bits %#x", cfg->breaks & ~breaks);
	else if (cfg->host_mem && (cfg->host_mem < HOST_RAM_MIN ||
				   cfg->host_mem > HOST_RAM_MAX ||
				   !PAGE_ALIGNED(cfg->host_mem)))
		snprintf(why, len, "host memory: %llu bytes is not a multiple of 4K in 16M..64G",
			 (unsigned long long)cfg->host_mem);
	else if (cfg->swap_bytes != WL_SWAP_AUTO &&
		 (cfg->swap_bytes > HOST_SWAP_MAX || !PAGE_ALIGNED(cfg->swap_bytes)))
		snprintf(why, len, "swap: %llu bytes is not a multiple of 4K up to 256G",
			 (unsigned long long)cfg->swap_bytes);
	else if (cfg->swap_fail_writes < 0 || cfg->swap_fail_reads < 0)
		snprintf(why, len, "swap failure injection: negative count");
	else if (cfg->host_mem && cfg->host_mem < host_mem_min(cfg) &&
		 scenario_swap_bytes(cfg) == 0)
		snprintf(why, len, "host memory: %llu MiB is too small for %u VMs x %llu MiB "
			 "without swap (at least %llu MiB; default %llu MiB)",
			 (unsigned long long)(cfg->host_mem / MiB), cfg->nr_vms,
			 (unsigned long long)(cfg->guest_mem / MiB),
			 (unsigned long long)((host_mem_min(cfg) + MiB - 1) / MiB),
			 (unsigned long long)(scenario_host_mem(cfg) / MiB));
	else if (!cfg->host_mem && host_mem_min(cfg) > HOST_RAM_MAX)
		snprintf(why, len, "guest memory: %u VMs x %llu MiB does not fit a 64G host",
			 cfg->nr_vms, (unsigned long long)(cfg->guest_mem / MiB));
	else
		return 0;
	return -EINVAL;
}

/* ---- setup and teardown of one VM ---------------------------------------- */

static void vm_free(struct wl_vm *vm)
{
	/* The VMM owns the vCPUs, the VM and the mm. */
	vmm_destroy(vm->vmm);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		free(vm->vcpus[i]);
	free((void *)vm->expected);
	free((void *)vm->frozen);
	free(vm->hash);
	free(vm->hash_ver);
	free(vm->exp_before);
	free(vm->exp_after);
	free(vm);
}

static int vm_fail_setup(struct scenario *sc, struct wl_vm *vm, const char *what, int err,
			 char *why, size_t len)
{
	snprintf(why, len, "VM %u: %s: %s", vm->id, what, strerror(-err));
	return err;
}

static int vm_setup(struct scenario *sc, unsigned int id, struct wl_vm **out, char *why,
		    size_t len)
{
	const struct scenario_config *cfg = &sc->cfg;
	struct kvm_config kcfg = { .breaks = cfg->breaks, .kick = cfg->kick };
	struct wl_vm *vm = calloc(1, sizeof(*vm));
	uint64_t slot_bytes, zero = 0;
	int err;

	if (!vm)
		return -ENOMEM;
	*out = vm;
	vm->sc = sc;
	vm->id = id;
	vm->npages = cfg->guest_mem >> PAGE_SHIFT;
	vm->slot_pages = vm->npages / WL_NR_SLOTS;
	slot_bytes = vm->slot_pages * PAGE_SIZE;
	/* Chunks: the largest power of two up to 2 MiB that divides a slot. */
	vm->chunk_pages = WL_MAX_CHUNK_PAGES;
	while (vm->slot_pages % vm->chunk_pages)
		vm->chunk_pages /= 2;
	vm->nchunks = vm->npages / vm->chunk_pages;
	vm->rom_gpa = cfg->guest_mem;
	vm->dev_gpa = vm->rom_gpa + WL_ROM_PAGES * PAGE_SIZE;
	vm->clock_idx = -1;
	vm->churn_rng = prng_seed(cfg->seed, 2 * id);
	vm->expected = calloc(vm->npages, sizeof(*vm->expected));
	/* One more: the device pages' (workload_int.h). */
	vm->frozen = calloc(vm->nchunks + 1, sizeof(*vm->frozen));
	vm->hash = calloc(vm->slot_pages, sizeof(uint64_t));
	vm->hash_ver = calloc(vm->slot_pages, sizeof(uint64_t));
	vm->exp_before = calloc(vm->npages, sizeof(uint32_t));
	vm->exp_after = calloc(vm->npages, sizeof(uint32_t));
	if (!vm->expected || !vm->frozen || !vm->hash || !vm->hash_ver || !vm->exp_before ||
	    !vm->exp_after)
		return vm_fail_setup(sc, vm, "allocating checker state", -ENOMEM, why, len);

	err = vmm_create(sc->host, &kcfg, &vm->vmm);
	if (err == -EOPNOTSUPP) {
		snprintf(why, len, "the rseq kick mode is not available here "
			 "(sanitizer build, or no rseq/membarrier support)");
		return err;
	}
	if (err)
		return vm_fail_setup(sc, vm, "creating the VMM", err, why, len);
	vm->mm = vmm_mm(vm->vmm);
	vm->kvm = vmm_kvm(vm->vmm);
	vmm_set_mmio_default(vm->vmm, wl_mmio, vm);
	for (unsigned int s = 0; s < WL_NR_SLOTS; s++) {
		hva_t hva;

		err = vmm_add_ram(vm->vmm, s, (gpa_t)s * slot_bytes, slot_bytes, 0);
		if (err)
			return vm_fail_setup(sc, vm, "guest RAM", err, why, len);
		/* Page tables for all of guest RAM now, so that they come from
		 * frames no guest ever had (a --break run writes through
		 * stale translations: better data frames than page tables). */
		hva = vmm_ram_hva(vm->vmm, s);
		for (uint64_t off = 0; off < slot_bytes + 2 * MiB; off += 2 * MiB) {
			uint64_t at = MIN(off, slot_bytes - sizeof(zero));
			int64_t r = mm_write(vm->mm, hva + at, &zero, sizeof(zero));

			if (r != sizeof(zero))
				return vm_fail_setup(sc, vm, "touching guest RAM",
						     r < 0 ? (int)r : -EIO, why, len);
		}
	}
	err = vmm_add_ram(vm->vmm, WL_ROM_SLOT, vm->rom_gpa, WL_ROM_PAGES * PAGE_SIZE,
			  KVM_MEM_READONLY);
	if (err)
		return vm_fail_setup(sc, vm, "ROM", err, why, len);
	for (uint64_t i = 0; i < WL_ROM_PAGES * WL_WORDS; i++) {
		uint64_t w = wl_rom_word(id, i);

		err = vmm_write_guest(vm->vmm, vm->rom_gpa + 8 * i, &w, sizeof(w));
		if (err)
			return vm_fail_setup(sc, vm, "filling the ROM", err, why, len);
	}
	err = vmm_add_ram(vm->vmm, WL_DEV_SLOT, vm->dev_gpa, WL_DEV_PAGES * PAGE_SIZE, 0);
	if (err)
		return vm_fail_setup(sc, vm, "device pages", err, why, len);

	for (unsigned int i = 0; i < cfg->nr_vcpus; i++) {
		struct wl_vcpu *w = aligned_alloc(64, (sizeof(*w) + 63) & ~(size_t)63);

		if (!w)
			return vm_fail_setup(sc, vm, "vCPU state", -ENOMEM, why, len);
		memset(w, 0, sizeof(*w));
		vm->vcpus[vm->nr_vcpus++] = w;
		w->vm = vm;
		w->idx = i;
		w->n_own = (vm->npages - i + cfg->nr_vcpus - 1) / cfg->nr_vcpus;
		w->rng = prng_seed(cfg->seed, ((uint64_t)id << 16 | i) * 2 + 1);
		atomic_init(&w->cur_chunk, -1);
		for (unsigned int j = 0; j < WL_RING; j++)
			atomic_init(&w->ring[j], UINT64_MAX);
		err = vmm_create_vcpu(vm->vmm, (int)i, &w->vcpu);
		if (err)
			return vm_fail_setup(sc, vm, "vcpu_create", err, why, len);
		if (cfg->stall)
			kvm_vcpu_set_hook(&w->vcpu->kvm_vcpu, wl_stall_hook, w);
		/* Not running yet: the activation may come from this thread. */
		if (cfg->runstate) {
			err = kvm_vcpu_runstate_activate(&w->vcpu->kvm_vcpu,
							 wl_runstate_gpa(vm, i),
							 KVM_RUNSTATE_TANDEM);
			if (err)
				return vm_fail_setup(sc, vm, "run-state area", err, why, len);
		}
	}
	return 0;
}

/* ---- running ------------------------------------------------------------- */

struct sample {
	uint64_t t, accesses, faults, invalidations, retries, flushes, churn;
	uint64_t pswpin, pswpout, free_pages, swap_free, swap_slots;
};

static void take_sample(struct scenario *sc, struct sample *s)
{
	memset(s, 0, sizeof(*s));
	s->t = clock_now_ns();
	for (unsigned int i = 0; i < sc->cfg.nr_vms; i++) {
		struct wl_vm *vm = sc->vms[i];
		struct kvm_stats st;

		for (unsigned int j = 0; j < vm->nr_vcpus; j++)
			s->accesses += atomic_load_explicit(&vm->vcpus[j]->pub_accesses,
							    memory_order_relaxed);
		kvm_get_stats(vm->kvm, &st);
		s->faults += st.faults;
		s->invalidations += st.invalidations;
		s->retries += st.fault_retries;
		s->flushes += st.tlb_flushes;
		for (unsigned int k = 0; k < WL_NR_CHURN; k++)
			s->churn += atomic_load_explicit(&vm->churn_ops[k], memory_order_relaxed);
	}
	struct host_stats hs;

	host_get_stats(sc->host, &hs);
	s->pswpin = hs.events[PSWPIN];
	s->pswpout = hs.events[PSWPOUT];
	s->free_pages = hs.free_pages;
	s->swap_free = hs.swap_free_slots;
	s->swap_slots = hs.swap_slots;
}

static uint64_t failures_so_far(struct scenario *sc)
{
	uint64_t n = 0;

	for (int k = 0; k < WL_NR_FAIL_KINDS; k++)
		n += atomic_load(&sc->fail_count[k]);
	return n;
}

static void report_progress(struct scenario *sc, const struct sample *a,
			    const struct sample *b)
{
	struct scenario_progress p;
	double dt = (double)(b->t - a->t) / 1e9;

	if (!sc->cfg.progress || dt <= 0)
		return;
	p.t_s = (double)(b->t - sc->start_ns) / 1e9;
	p.accesses_per_s = (double)(b->accesses - a->accesses) / dt;
	p.faults_per_s = (double)(b->faults - a->faults) / dt;
	p.invalidations_per_s = (double)(b->invalidations - a->invalidations) / dt;
	p.retries = b->retries - a->retries;
	p.tlb_flushes = b->flushes - a->flushes;
	p.churn_ops = b->churn - a->churn;
	p.failures = failures_so_far(sc);
	p.free_pages = b->free_pages;
	p.swap_pages = b->swap_slots;
	p.swap_free_pages = b->swap_free;
	p.pswpin_per_s = (double)(b->pswpin - a->pswpin) / dt;
	p.pswpout_per_s = (double)(b->pswpout - a->pswpout) / dt;
	p.nr_vms = sc->cfg.nr_vms;
	for (unsigned int i = 0; i < sc->cfg.nr_vms; i++) {
		struct mm *mm = sc->vms[i]->mm;

		p.vm_rss_pages[i] = get_mm_counter(mm, MM_ANONPAGES);
		p.vm_swap_pages[i] = get_mm_counter(mm, MM_SWAPENTS);
		p.vm_killed[i] = atomic_load(&sc->vms[i]->killed) != WL_ALIVE;
	}
	p.wss_nr_vms = 0;
	p.wss_interval_s = 0;
	if (sc->cfg.wss_interval_ns) {
		pthread_mutex_lock(&sc->wss_lock);
		if (sc->wss_rounds != sc->wss_reported) {
			sc->wss_reported = sc->wss_rounds;
			p.wss_nr_vms = sc->cfg.nr_vms;
			p.wss_interval_s = sc->wss_interval_s;
			for (unsigned int i = 0; i < sc->cfg.nr_vms; i++)
				p.wss_pages[i] = sc->vms[i]->wss.last_pages;
		}
		pthread_mutex_unlock(&sc->wss_lock);
	}
	sc->cfg.progress(&p, sc->cfg.progress_arg);
}

/* Sleep until the deadline or the first failure, reporting every second. */
static void run_loop(struct scenario *sc, struct scenario_result *res)
{
	struct sample prev, cur;
	uint64_t next = sc->start_ns + 1000000000ULL;
	uint64_t next_check = sc->start_ns;

	take_sample(sc, &prev);
	prev.t = sc->start_ns;
	for (;;) {
		uint64_t now = clock_now_ns();

		if (atomic_load(&sc->failed)) {
			res->stopped_early = true;
			break;
		}
		if (now >= next && next <= sc->deadline_ns) {
			take_sample(sc, &cur);
			report_progress(sc, &prev, &cur);
			prev = cur;
			next += 1000000000ULL;
			continue;
		}
		if (now >= sc->deadline_ns)
			break;
		if (sc->cfg.end_when && now >= next_check) {
			struct scenario_status st = {
				.t_s = (double)(now - sc->start_ns) / 1e9,
				.vms_killed = atomic_load(&sc->vms_killed),
			};

			host_get_stats(sc->host, &st.host);
			if (sc->cfg.end_when(&st, sc->cfg.end_when_arg))
				break;
			next_check = now + 100000000ULL;
		}
		uint64_t step = MIN(MIN(next, sc->deadline_ns) - now, 10000000ULL);
		nanosleep(&(struct timespec){ .tv_nsec = (long)step }, NULL);
	}
}

static void add_counts(struct scenario_counts *to, const struct scenario_counts *c)
{
	to->accesses += c->accesses;
	to->page_reads += c->page_reads;
	to->page_writes += c->page_writes;
	to->writes_refused += c->writes_refused;
	to->cross_reads += c->cross_reads;
	to->frozen_skips += c->frozen_skips;
	to->rom_reads += c->rom_reads;
	to->rom_writes += c->rom_writes;
	to->mmio_exits += c->mmio_exits;
	to->stalls += c->stalls;
	for (int k = 0; k < WL_NR_CHURN; k++)
		to->churn[k] += c->churn[k];
	to->pages_checked_by_churn += c->pages_checked_by_churn;
	to->forks_skipped += c->forks_skipped;
	to->clock_reads += c->clock_reads;
	to->runstate_reads += c->runstate_reads;
	to->runstate_sibling_reads += c->runstate_sibling_reads;
	to->dev_zero_reads += c->dev_zero_reads;
	to->dev_busy += c->dev_busy;
	to->dev_churn += c->dev_churn;
}

static void add_clock_stats(struct clockdev_stats *to, const struct clockdev_stats *s)
{
	to->writes += s->writes;
	to->misses += s->misses;
	to->refreshes += s->refreshes;
	to->refresh_errors += s->refresh_errors;
	to->overruns = s->overruns;     /* the device's, not per VM */
}

void wl_kvm_stats_add(struct kvm_stats *to, const struct kvm_stats *s)
{
	to->faults += s->faults;
	to->fast_faults += s->fast_faults;
	to->fault_retries += s->fault_retries;
	to->invalidations += s->invalidations;
	to->nonblock_starts += s->nonblock_starts;
	to->nonblock_eagain += s->nonblock_eagain;
	to->nonblock_flush_in_guest += s->nonblock_flush_in_guest;
	to->sptes_zapped += s->sptes_zapped;
	to->tlb_flushes += s->tlb_flushes;
	to->mmio_exits += s->mmio_exits;
	to->age_calls += s->age_calls;
	to->memslot_updates += s->memslot_updates;
	to->pgtable_pages += s->pgtable_pages;
	to->gpc_refreshes += s->gpc_refreshes;
	to->gpc_invalidations += s->gpc_invalidations;
	to->gpc_requests += s->gpc_requests;
	to->gpc_request_waits += s->gpc_request_waits;
	to->gpc_nonblock_in_guest += s->gpc_nonblock_in_guest;
	to->runstate_updates += s->runstate_updates;
}

static void add_vcpu_stats(struct vcpu_stats *to, const struct vcpu_stats *s)
{
	to->accesses_slow += s->accesses_slow;
	to->stlb_fills += s->stlb_fills;
	to->stlb_flushes += s->stlb_flushes;
	to->fast_faults += s->fast_faults;
	to->faults += s->faults;
	to->fault_retries += s->fault_retries;
	to->mmio_exits += s->mmio_exits;
	to->guest_exits += s->guest_exits;
	to->rseq_aborts += s->rseq_aborts;
}

/* Counters of stopped vCPUs and churn threads, and the VM's stats. */
static void collect(struct scenario *sc, struct scenario_result *res)
{
	for (unsigned int i = 0; i < sc->cfg.nr_vms; i++) {
		struct wl_vm *vm = sc->vms[i];
		struct scenario_vm_result *vr = &res->vm[i];

		for (unsigned int j = 0; j < vm->nr_vcpus; j++) {
			struct vcpu_stats vs;

			add_counts(&vr->c, &vm->vcpus[j]->c);
			vcpu_get_stats(vm->vcpus[j]->vcpu, &vs);
			add_vcpu_stats(&vr->vcpu, &vs);
		}
		for (int k = 0; k < WL_NR_CHURN; k++)
			vr->c.churn[k] = atomic_load(&vm->churn_ops[k]);
		vr->c.pages_checked_by_churn = atomic_load(&vm->churn_pages_checked);
		vr->c.forks_skipped = atomic_load(&vm->churn_fork_enomem);
		vr->c.dev_churn = atomic_load(&vm->dev_churn);
		if (vm->clock_idx >= 0)
			clockdev_get_stats(sc->clock, (unsigned int)vm->clock_idx, &vr->clock);
		add_clock_stats(&res->clock, &vr->clock);
		kvm_get_stats(vm->kvm, &vr->kvm);
		vr->killed = (enum wl_kill_reason)atomic_load(&vm->killed);
		if (vr->killed != WL_ALIVE) {
			memcpy(vr->kill_msg, vm->kill_msg, sizeof(vr->kill_msg));
			vr->killed_at_s = vm->killed_at_s;
		}
		vr->rss_pages = get_mm_counter(vm->mm, MM_ANONPAGES);
		vr->swap_pages = get_mm_counter(vm->mm, MM_SWAPENTS);
		pthread_mutex_lock(&sc->wss_lock);
		vr->wss = vm->wss;
		pthread_mutex_unlock(&sc->wss_lock);
		add_counts(&res->total, &vr->c);
		wl_kvm_stats_add(&res->kvm, &vr->kvm);
		add_vcpu_stats(&res->vcpu, &vr->vcpu);
	}
}

static void verdict(struct scenario *sc, struct scenario_result *res)
{
	size_t off;

	for (int k = 0; k < WL_NR_FAIL_KINDS; k++) {
		res->fail_count[k] = atomic_load(&sc->fail_count[k]);
		res->failures += res->fail_count[k];
	}
	pthread_mutex_lock(&sc->fail_lock);
	res->nr_first = sc->nr_first;
	memcpy(res->first, sc->first, sizeof(res->first));
	pthread_mutex_unlock(&sc->fail_lock);
	res->ok = res->failures == 0;
	if (res->ok) {
		snprintf(res->verdict, sizeof(res->verdict), "OK");
		return;
	}
	off = (size_t)snprintf(res->verdict, sizeof(res->verdict), "%llu failure%s:",
			       (unsigned long long)res->failures, res->failures == 1 ? "" : "s");
	for (int k = 0; k < WL_NR_FAIL_KINDS && off < sizeof(res->verdict); k++) {
		if (!res->fail_count[k])
			continue;
		off += (size_t)snprintf(res->verdict + off, sizeof(res->verdict) - off, " %s %llu,",
					wl_fail_kind_name(k),
					(unsigned long long)res->fail_count[k]);
	}
	if (off < sizeof(res->verdict) && res->verdict[off - 1] == ',')
		res->verdict[off - 1] = '\0';
}

/*
 * The host's OOM killer picked victim: stop the VM on it (host.h: from the
 * allocating thread, maybe one of that VM's vCPUs; nothing may wait here).
 * A victim that is no VM's mm is a churn thread's fork child: its churn op
 * notices and drops its check.
 */
static void oom_notify(void *arg, struct mm *victim, uint64_t pages)
{
	struct scenario *sc = arg;
	unsigned int n = atomic_load(&sc->nr_vms_up);

	for (unsigned int i = 0; i < n; i++) {
		struct wl_vm *vm = sc->vms[i];

		if (vm->mm == victim) {
			wl_vm_kill(vm, WL_KILLED_OOM, "vm%u: killed by the OOM killer (%llu pages "
				   "resident or swapped); stopped", vm->id,
				   (unsigned long long)pages);
			return;
		}
	}
	atomic_fetch_add(&sc->oom_fork_children, 1);
}

/* The clock device could not swap in VM idx's clock page to refresh its
 * cache: the VMM's read failed, so the VM dies, as when a guest's does
 * (clockdev.h; worker thread, no lock held). */
static void clock_lost(void *arg, unsigned int idx, int err)
{
	struct scenario *sc = arg;

	for (unsigned int i = 0; i < sc->cfg.nr_vms; i++) {
		struct wl_vm *vm = sc->vms[i];

		if (vm && vm->clock_idx == (int)idx)
			wl_vm_kill(vm, WL_KILLED_SWAP_READ, "vm%u: swap-in read error (gfn %#llx, "
				   "VMM clock device: %s): VM stopped", vm->id,
				   (unsigned long long)(vm->dev_gpa >> PAGE_SHIFT), strerror(-err));
	}
}

/* After the run: the kills it allows (one OOM victim; swap read errors
 * only when injected; some VM surviving). */
static void judge_kills(struct scenario *sc, struct scenario_result *res)
{
	unsigned int oom = 0, rd = 0, n = sc->cfg.nr_vms;

	for (unsigned int i = 0; i < n; i++) {
		int k = atomic_load(&sc->vms[i]->killed);

		oom += k == WL_KILLED_OOM;
		rd += k == WL_KILLED_SWAP_READ;
	}
	res->vms_killed = oom + rd;
	if (oom + rd > 1)
		wl_fail(sc, WL_FAIL_KILLED, -1, -1, 0, "%u VMs killed (%u by the OOM killer, "
			"%u by swap read errors): at most one may be", oom + rd, oom, rd);
	else if (oom + rd == n)
		wl_fail(sc, WL_FAIL_KILLED, -1, -1, 0, "every VM was killed");
	else if (rd && !sc->cfg.swap_fail_reads)
		wl_fail(sc, WL_FAIL_KILLED, -1, -1, 0, "a VM was killed by a swap read error "
			"that was not injected");
}

int scenario_run(const struct scenario_config *cfg, struct scenario_result *res)
{
	struct host_config hcfg = { 0 };
	struct scenario *sc;
	unsigned int nr_vms_up = 0;
	uint64_t t0 = clock_now_ns();
	char why[sizeof(res->verdict)] = "";
	int err = 0;

	memset(res, 0, sizeof(*res));
	if (!cfg) {
		snprintf(res->verdict, sizeof(res->verdict), "no config");
		return -EINVAL;
	}
	if (scenario_check_config(cfg, why, sizeof(why))) {
		snprintf(res->verdict, sizeof(res->verdict), "%s", why);
		return -EINVAL;
	}
	sc = calloc(1, sizeof(*sc));
	if (!sc) {
		snprintf(res->verdict, sizeof(res->verdict), "out of memory");
		return -ENOMEM;
	}
	sc->cfg = *cfg;
	if (!sc->cfg.host_mem)
		sc->cfg.host_mem = scenario_host_mem(cfg);
	res->host_mem = sc->cfg.host_mem;
	res->nr_vms = cfg->nr_vms;
	pthread_mutex_init(&sc->fail_lock, NULL);
	pthread_mutex_init(&sc->wss_lock, NULL);
	pthread_mutex_init(&sc->kill_lock, NULL);
	sc->cfg.swap_bytes = scenario_swap_bytes(cfg);
	res->swap_bytes = sc->cfg.swap_bytes;

	hcfg.ram_bytes = sc->cfg.host_mem;
	hcfg.prefault = cfg->prefault;
	hcfg.swap_bytes = sc->cfg.swap_bytes;
	hcfg.swap_path = cfg->swap_path;
	hcfg.oom_killer = cfg->oom_killer;
	/* A protocol break lets guests write freed frames: count that, don't
	 * abort. (--break=aging does not: reclaim still invalidates.) */
	hcfg.poison_count_only = (cfg->breaks & ~KVM_BREAK_AGING) != 0;
	err = host_create(&hcfg, &sc->host);
	if (err) {
		snprintf(res->verdict, sizeof(res->verdict), "host_create (%llu MiB): %s",
			 (unsigned long long)(hcfg.ram_bytes / MiB), strerror(-err));
		goto out_free;
	}
	if (cfg->oom_killer)
		host_set_oom_notify(sc->host, oom_notify, sc);
	if (cfg->clock_period_ns) {
		err = clockdev_create(cfg->clock_period_ns, &sc->clock);
		if (err) {
			snprintf(why, sizeof(why), "the clock device: %s", strerror(-err));
			goto out_teardown;
		}
		clockdev_set_lost_fn(sc->clock, clock_lost, sc);
	}
	for (; nr_vms_up < cfg->nr_vms; nr_vms_up++) {
		err = vm_setup(sc, nr_vms_up, &sc->vms[nr_vms_up], why, sizeof(why));
		if (err) {
			if (sc->vms[nr_vms_up])
				nr_vms_up++;    /* half built: vm_free handles it */
			goto out_teardown;
		}
		if (sc->clock) {
			struct wl_vm *vm = sc->vms[nr_vms_up];

			err = clockdev_add_vm(sc->clock, vm->vmm, vm->dev_gpa);
			if (err < 0) {
				snprintf(why, sizeof(why), "VM %u: the clock page: %s", vm->id,
					 strerror(-err));
				nr_vms_up++;
				goto out_teardown;
			}
			vm->clock_idx = err;
			err = 0;
		}
		atomic_store(&sc->nr_vms_up, nr_vms_up + 1);
	}
	if (cfg->swap_fail_writes || cfg->swap_fail_reads)
		host_swap_inject_failures(sc->host, cfg->swap_fail_writes, cfg->swap_fail_reads);

	sc->start_ns = clock_now_ns();
	sc->deadline_ns = sc->start_ns + cfg->duration_ns;
	res->setup_s = (double)(sc->start_ns - t0) / 1e9;
	for (unsigned int i = 0; i < cfg->nr_vms && !err; i++)
		for (unsigned int j = 0; j < sc->vms[i]->nr_vcpus && !err; j++) {
			struct wl_vcpu *w = sc->vms[i]->vcpus[j];

			if (wl_vm_dead(sc->vms[i]))
				break;  /* killed during setup: don't start it */
			err = vcpu_run(w->vcpu, wl_guest_main, w);
			if (err)
				snprintf(why, sizeof(why), "starting vCPU %u of VM %u: %s", j, i,
					 strerror(-err));
			else
				w->started = true;
		}
	for (unsigned int i = 0; i < cfg->nr_vms && !err && cfg->churn; i++) {
		if (wl_vm_dead(sc->vms[i]))
			continue;
		err = -pthread_create(&sc->vms[i]->churn_thread, NULL, wl_churn_main, sc->vms[i]);
		if (err)
			snprintf(why, sizeof(why), "starting churn of VM %u: %s", i, strerror(-err));
		else
			sc->vms[i]->churn_started = true;
	}
	if (!err && sc->clock) {
		err = clockdev_start(sc->clock);
		if (err)
			snprintf(why, sizeof(why), "starting the clock device: %s", strerror(-err));
	}
	if (!err && cfg->wss_interval_ns) {
		err = -pthread_create(&sc->wss_thread, NULL, wl_wss_main, sc);
		if (err)
			snprintf(why, sizeof(why), "starting the working-set sampler: %s",
				 strerror(-err));
		else
			sc->wss_started = true;
	}
	if (!err)
		run_loop(sc, res);

	/* STOPPING */
	atomic_store(&sc->stop, true);
	if (sc->wss_started)
		pthread_join(sc->wss_thread, NULL);
	for (unsigned int i = 0; i < nr_vms_up; i++)
		if (sc->vms[i]->churn_started)
			pthread_join(sc->vms[i]->churn_thread, NULL);
	/* After churn: nothing discards a device page from here on, so the
	 * clock's last pass leaves each page exactly as clockdev_check wants
	 * it (kswapd may still swap it out, which loses nothing). */
	if (sc->clock)
		clockdev_stop(sc->clock);
	for (unsigned int i = 0; i < nr_vms_up; i++)
		for (unsigned int j = 0; j < sc->vms[i]->nr_vcpus; j++)
			if (sc->vms[i]->vcpus[j]->started)
				vcpu_stop(sc->vms[i]->vcpus[j]->vcpu);
	res->elapsed_s = (double)(clock_now_ns() - sc->start_ns) / 1e9;
	if (err)
		goto out_teardown;

	/* CHECK */
	res->kick = kvm_kick_mode(sc->vms[0]->kvm);
	collect(sc, res);
	/* A killed VM's memory is gone: only the survivors are checked. */
	for (unsigned int i = 0; i < nr_vms_up; i++)
		if (!wl_vm_dead(sc->vms[i]))
			res->final_pages_checked += wl_final_check(sc->vms[i]);
	for (unsigned int i = 0; sc->clock && i < nr_vms_up; i++)
		if (!wl_vm_dead(sc->vms[i]))
			wl_clock_final_check(sc->vms[i]);
	host_get_stats(sc->host, &res->host);
	judge_kills(sc, res);
	res->oom_fork_children = atomic_load(&sc->oom_fork_children);
	for (unsigned int i = 0; i < nr_vms_up; i++)
		res->vm[i].failures_ignored = atomic_load(&sc->vms[i]->failures_ignored);

out_teardown:
	t0 = clock_now_ns();
	/* Nothing runs now but the final check is done: no more notifies
	 * into VMs about to be freed. */
	if (cfg->oom_killer)
		host_set_oom_notify(sc->host, NULL, NULL);
	atomic_store(&sc->nr_vms_up, 0);
	/* Its caches first: they belong to the VMs about to go. */
	clockdev_destroy(sc->clock);
	sc->clock = NULL;
	for (unsigned int i = 0; i < nr_vms_up; i++)
		vm_free(sc->vms[i]);
	res->frames_in_use = host_frames_in_use(sc->host);
	/* kswapd (or the OOM reaper) may still hold a page it isolated when
	 * the last mm went away: let the host settle briefly. */
	for (int i = 0; i < 20 && res->frames_in_use; i++) {
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
		res->frames_in_use = host_frames_in_use(sc->host);
	}
	{
		struct host_stats st;

		host_get_stats(sc->host, &st);
		res->poison_hits = st.poison_hits;
	}
	if (!err) {
		if (res->poison_hits)
			wl_fail(sc, WL_FAIL_POISON, -1, -1, 0, "%llu freed host frames were "
				"written (a stale translation outlived its frame)",
				(unsigned long long)res->poison_hits);
		if (res->frames_in_use)
			wl_fail(sc, WL_FAIL_LEAK, -1, -1, 0, "%llu host frames still in use "
				"after teardown", (unsigned long long)res->frames_in_use);
	}
	if (host_destroy(sc->host) && !err) {
		err = -EBUSY;
		snprintf(why, sizeof(why), "host_destroy: an address space is still alive");
	}
	res->teardown_s = (double)(clock_now_ns() - t0) / 1e9;
	if (err)
		snprintf(res->verdict, sizeof(res->verdict), "%s", why);
	else
		verdict(sc, res);
out_free:
	pthread_mutex_destroy(&sc->fail_lock);
	pthread_mutex_destroy(&sc->wss_lock);
	pthread_mutex_destroy(&sc->kill_lock);
	free(sc);
	return err;
}
