/* SPDX-License-Identifier: MIT */
/*
 * checker.c - the integrity checker: the page format's verdicts, failure
 * records, and the VMM's final re-read of guest memory through the host.
 *
 * The checker is the judge of the secondary MMU. What it knows:
 *  1. expected[gfn] of each VM: the last version its owner vCPU committed
 *     (a store of the version word that returned 0), or 0 after the host
 *     discarded the page under a freeze (DONTNEED, remap);
 *  2. a page's content is a function of (VM, gfn, version), so any
 *     content that is not exactly the expected one names what went wrong:
 *
 *     found                             kind          usual cause
 *     --------------------------------  ------------  -------------------------
 *     own tag, older version            STALE         write lost in a stale frame,
 *                                                     or a read through one
 *     own tag where 0 was expected      STALE         discarded page still mapped
 *     zeroes where a version was        ZERO          write went to a stale frame
 *     another VM's tag                  OTHER_VM      frame reused by another VM
 *     another gfn's tag                 WRONG_GFN     frame reused within the VM
 *     0x6b.. or garbage, bad check word CORRUPT       freed frame (debug poison),
 *                                                     torn or foreign data
 *
 * The device pages (the clock page, the run-state areas) are written by the
 * host, not by the guests: the guests check them as they read them
 * (workload.c: consistent, never backwards, the own area exactly the last
 * entry's), and after the clock device stopped, wl_clock_final_check asks
 * it whether its last write reached the page (CLOCK_LOST).
 *
 * A failure is counted by kind, the first WL_FIRST_FAILURES are kept with
 * details, and the scenario ends (sc->failed): one failure is a verdict.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workload_int.h"

static const char *const fail_names[WL_NR_FAIL_KINDS][2] = {
	[WL_FAIL_STALE]      = { "stale", "lost write / stale read" },
	[WL_FAIL_OTHER_VM]   = { "other_vm", "another VM's data" },
	[WL_FAIL_WRONG_GFN]  = { "wrong_gfn", "another page's data" },
	[WL_FAIL_ZERO]       = { "zero", "unexpected zeroes" },
	[WL_FAIL_CORRUPT]    = { "corrupt", "corrupted page (check word, garbage, poison)" },
	[WL_FAIL_RO_WRITE]   = { "ro_write", "write through a read-only mapping" },
	[WL_FAIL_FORK_CHILD] = { "fork_child", "fork child saw a post-fork write" },
	[WL_FAIL_ROM]        = { "rom", "ROM misread or changed" },
	[WL_FAIL_MMIO]       = { "mmio", "missing or wrong MMIO exit" },
	[WL_FAIL_ACCESS]     = { "access", "guest access failed" },
	[WL_FAIL_HOST]       = { "host", "host/KVM call failed" },
	[WL_FAIL_POISON]     = { "poison", "host poison hits (freed frames written)" },
	[WL_FAIL_LEAK]       = { "leak", "host frames leaked" },
	[WL_FAIL_KILLED]     = { "killed", "VMs killed (more than one, all, or no cause)" },
	[WL_FAIL_CLOCK]      = { "clock", "clock page went backwards or was torn" },
	[WL_FAIL_CLOCK_LOST] = { "clock_lost", "clock device write lost (stale cache)" },
	[WL_FAIL_RUNSTATE]   = { "runstate", "run-state area stale, torn or going backwards" },
};

const char *wl_fail_kind_name(enum wl_fail_kind k)
{
	return (unsigned int)k < WL_NR_FAIL_KINDS ? fail_names[k][1] : "?";
}

const char *wl_fail_kind_key(enum wl_fail_kind k)
{
	return (unsigned int)k < WL_NR_FAIL_KINDS ? fail_names[k][0] : "?";
}

void wl_fail(struct scenario *sc, enum wl_fail_kind kind, int vm, int vcpu,
	     gfn_t gfn, const char *fmt, ...)
{
	va_list ap;

	/* A killed VM's memory is gone by design (the OOM reaper, a failed
	 * swap-in): what its threads find afterwards is no failure. An OOM
	 * victim's mm is marked before the VMM is told: that counts too. */
	if (vm >= 0 && (unsigned int)vm < atomic_load(&sc->nr_vms_up) &&
	    wl_vm_dead(sc->vms[vm])) {
		atomic_fetch_add(&sc->vms[vm]->failures_ignored, 1);
		return;
	}
	atomic_fetch_add(&sc->fail_count[kind], 1);
	atomic_store(&sc->failed, true);
	pthread_mutex_lock(&sc->fail_lock);
	if (sc->nr_first < WL_FIRST_FAILURES) {
		struct wl_failure *f = &sc->first[sc->nr_first++];

		f->kind = kind;
		f->vm = vm;
		f->vcpu = vcpu;
		f->gfn = gfn;
		f->t_s = sc->start_ns ? wl_elapsed_s(sc) : 0;
		va_start(ap, fmt);
		vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&sc->fail_lock);
}

bool wl_vm_kill(struct wl_vm *vm, enum wl_kill_reason why, const char *fmt, ...)
{
	struct scenario *sc = vm->sc;
	va_list ap;

	pthread_mutex_lock(&sc->kill_lock);
	if (atomic_load(&vm->killed) != WL_ALIVE) {
		pthread_mutex_unlock(&sc->kill_lock);
		return false;
	}
	va_start(ap, fmt);
	vsnprintf(vm->kill_msg, sizeof(vm->kill_msg), fmt, ap);
	va_end(ap);
	vm->killed_at_s = sc->start_ns ? wl_elapsed_s(sc) : 0;
	atomic_store_explicit(&vm->killed, (int)why, memory_order_release);
	atomic_fetch_add(&sc->vms_killed, 1);
	pthread_mutex_unlock(&sc->kill_lock);
	/* Stop its vCPUs without joining: this may be one of them. Its churn
	 * and sampler see vm->killed. */
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i]->vcpu)
			vcpu_request_stop(vm->vcpus[i]->vcpu);
	fprintf(stderr, "tandem: %s\n", vm->kill_msg);
	return true;
}

/* Whose data is it? Called once the page is known not to be as expected. */
static int classify(unsigned int vm, gfn_t gfn, const char *want, uint64_t tag,
		    uint64_t version, char *why, size_t len)
{
	unsigned int tvm = (unsigned int)(tag >> 40) & 0xff;
	gfn_t tgfn = tag & ((1ULL << 40) - 1);

	if (tag == WL_POISON_WORD || version == WL_POISON_WORD) {
		snprintf(why, len, "freed-frame poison (0x6b..) where %s was expected: "
			 "a translation outlived its frame", want);
		return WL_FAIL_CORRUPT;
	}
	if (tag == 0 && version == 0) {
		snprintf(why, len, "zeroes where %s was expected", want);
		return WL_FAIL_ZERO;
	}
	if (tag >> 48 != WL_TAG_MAGIC) {
		snprintf(why, len, "garbage (tag %#llx, version word %#llx) where %s "
			 "was expected", (unsigned long long)tag,
			 (unsigned long long)version, want);
		return WL_FAIL_CORRUPT;
	}
	if (tvm != (vm & 0xff)) {
		snprintf(why, len, "VM %u's data (its gfn %#llx, version %llu) where %s "
			 "was expected", tvm, (unsigned long long)tgfn,
			 (unsigned long long)version, want);
		return WL_FAIL_OTHER_VM;
	}
	if (tgfn != (gfn & ((1ULL << 40) - 1))) {
		snprintf(why, len, "gfn %#llx's data (version %llu) where %s was expected",
			 (unsigned long long)tgfn, (unsigned long long)version, want);
		return WL_FAIL_WRONG_GFN;
	}
	return -1;  /* own tag: the caller judges the version */
}

int wl_check_header(unsigned int vm, gfn_t gfn, uint64_t expected, uint64_t tag,
		    uint64_t version, char *why, size_t len)
{
	uint64_t own = wl_page_tag(vm, gfn);
	char want[48];
	int kind;

	if (expected == 0 ? version == 0 && (tag == 0 || tag == own) :
			    tag == own && version == expected)
		return -1;
	if (expected)
		snprintf(want, sizeof(want), "version %llu", (unsigned long long)expected);
	else
		snprintf(want, sizeof(want), "zeroes");
	kind = classify(vm, gfn, want, tag, version, why, len);
	if (kind >= 0)
		return kind;
	if (expected == 0)
		snprintf(why, len, "version %llu where the page was discarded (zeroes "
			 "expected): the old frame is still mapped", (unsigned long long)version);
	else if (version < expected)
		snprintf(why, len, "version %llu where %llu was committed: a lost write "
			 "or a stale read", (unsigned long long)version,
			 (unsigned long long)expected);
	else
		snprintf(why, len, "version %llu where %llu was the last committed",
			 (unsigned long long)version, (unsigned long long)expected);
	return WL_FAIL_STALE;
}

int wl_check_header_bounds(unsigned int vm, gfn_t gfn, uint64_t lo, uint64_t hi,
			   uint64_t tag, uint64_t version, char *why, size_t len)
{
	uint64_t own = wl_page_tag(vm, gfn);
	char want[64];
	int kind;

	if (version == 0 && lo == 0 && (tag == 0 || tag == own))
		return -1;
	if (tag == own && version >= lo && version <= hi + 1)
		return -1;
	snprintf(want, sizeof(want), "a version in [%llu, %llu]",
		 (unsigned long long)lo, (unsigned long long)hi + 1);
	kind = classify(vm, gfn, want, tag, version, why, len);
	if (kind >= 0)
		return kind;
	snprintf(why, len, "version %llu where %s was expected", (unsigned long long)version,
		 want);
	return WL_FAIL_STALE;
}

uint64_t wl_hash_page(const void *page)
{
	const uint64_t *w = page;
	uint64_t h = 0x6a09e667f3bcc909ULL;

	for (unsigned int i = 0; i < WL_WORDS; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL + (h >> 29);
	return prng_mix64(h);
}

#define FINAL_BATCH 64  /* pages per host read */

uint64_t wl_final_check(struct wl_vm *vm)
{
	struct scenario *sc = vm->sc;
	uint64_t *buf = malloc(FINAL_BATCH * PAGE_SIZE);
	uint64_t checked = 0;
	char why[160];

	if (!buf) {
		wl_fail(sc, WL_FAIL_HOST, (int)vm->id, -1, 0, "final check: out of memory");
		return 0;
	}
	for (gfn_t g = 0, n; g < vm->npages; g += n) {
		/* A batch stays within a slot (one host mapping). */
		n = MIN((uint64_t)FINAL_BATCH, vm->slot_pages - g % vm->slot_pages);
		int64_t r = mm_read(vm->mm, wl_gfn_to_hva(vm, g), buf, n * PAGE_SIZE);

		if (r != (int64_t)(n * PAGE_SIZE)) {
			wl_fail(sc, WL_FAIL_HOST, (int)vm->id, -1, g,
				"final check: mm_read of gfn %#llx: %lld", (unsigned long long)g,
				(long long)r);
			break;
		}
		for (uint64_t i = 0; i < n; i++) {
			const uint64_t *p = buf + i * WL_WORDS;
			gfn_t gfn = g + i;
			uint64_t exp = atomic_load(&vm->expected[gfn]);
			int kind = wl_check_header(vm->id, gfn, exp, p[0], p[1], why, sizeof(why));

			if (kind < 0 && exp &&
			    p[wl_check_index(exp)] != wl_check_word(vm->id, gfn, exp)) {
				kind = WL_FAIL_CORRUPT;
				snprintf(why, sizeof(why), "check word of version %llu is %#llx",
					 (unsigned long long)exp,
					 (unsigned long long)p[wl_check_index(exp)]);
			}
			if (kind >= 0)
				wl_fail(sc, kind, (int)vm->id, -1, gfn, "final check, gfn %#llx: %s",
					(unsigned long long)gfn, why);
			checked++;
		}
	}
	/* The ROM: guest writes to it must have exited to the VMM. */
	uint64_t *rom = buf;
	int64_t r = mm_read(vm->mm, vmm_ram_hva(vm->vmm, WL_ROM_SLOT), rom,
			    WL_ROM_PAGES * PAGE_SIZE);

	if (r != (int64_t)(WL_ROM_PAGES * PAGE_SIZE)) {
		wl_fail(sc, WL_FAIL_HOST, (int)vm->id, -1, 0, "final check: ROM read: %lld",
			(long long)r);
	} else {
		for (uint64_t i = 0; i < WL_ROM_PAGES * WL_WORDS; i++) {
			if (rom[i] != wl_rom_word(vm->id, i)) {
				wl_fail(sc, WL_FAIL_ROM, (int)vm->id, -1,
					(vm->rom_gpa >> PAGE_SHIFT) + i / WL_WORDS,
					"final check: ROM word %llu is %#llx, was %#llx",
					(unsigned long long)i, (unsigned long long)rom[i],
					(unsigned long long)wl_rom_word(vm->id, i));
				break;
			}
		}
	}
	free(buf);
	return checked;
}

/* After the clock device stopped (and churn with it): its last write
 * through vm's cache must be what the guest sees (clockdev_check). */
void wl_clock_final_check(struct wl_vm *vm)
{
	char why[sizeof(((struct wl_failure *)0)->msg)];
	int r;

	if (vm->clock_idx < 0)
		return;
	r = clockdev_check(vm->sc->clock, (unsigned int)vm->clock_idx, why, sizeof(why));
	if (r < 0)
		wl_fail(vm->sc, WL_FAIL_HOST, (int)vm->id, -1, vm->dev_gpa >> PAGE_SHIFT,
			"final check: reading the clock page: %s", strerror(-r));
	else if (r > 0)
		wl_fail(vm->sc, WL_FAIL_CLOCK_LOST, (int)vm->id, -1, vm->dev_gpa >> PAGE_SHIFT,
			"final check: %s", why);
}
