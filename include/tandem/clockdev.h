/* SPDX-License-Identifier: MIT */
/*
 * clockdev.h - the VMM's clock device: a host timer thread that writes a
 * shared clock page into each registered VM every period (100 us by
 * default), through a gfn_to_pfn cache in atomic mode (kvm.h): under the
 * cache's read lock, never sleeping. When a cache does not check, the
 * timer counts a miss, hands the refresh to the device's worker thread
 * (process context, may sleep), skips that VM until it is refreshed, then
 * writes again. Seed 001's "atomic mode" user.
 *
 * One device serves any number of VMs (up to CLOCKDEV_MAX_VMS); each VM
 * is registered once with the gpa of its page. After clockdev_stop the
 * device can tell whether the last value it wrote through each cache is
 * what the guest sees (clockdev_check): a write the host made through a
 * cache whose frame had been taken back is lost to the guest.
 */
#ifndef TANDEM_CLOCKDEV_H
#define TANDEM_CLOCKDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tandem/types.h"

struct vmm;
struct clockdev;

#define CLOCKDEV_MAX_VMS        16
#define CLOCKDEV_PERIOD_DEFAULT 100000ULL       /* ns */
#define CLOCKDEV_PERIOD_MIN     10000ULL        /* 10 us */
#define CLOCKDEV_PERIOD_MAX     1000000000ULL   /* 1 s */

/*
 * The guest ABI: 64 bytes at the registered gpa (64-byte aligned), little
 * endian. version is a seqcount: odd while the device writes, even when
 * time_ns and seq are consistent. Each write adds 2 to version and 1 to
 * seq, so a consistent page has version == 2 * seq; all three only grow.
 * All zero: not written yet, or the host discarded the page since (the
 * next write after the refresh restores it).
 */
struct clock_page {
	uint64_t version;
	uint64_t time_ns;               /* host CLOCK_MONOTONIC at the write */
	uint64_t seq;                   /* writes so far */
	uint64_t pad[5];
};
#define CLOCKDEV_PAGE_LEN ((unsigned int)sizeof(struct clock_page))

struct clockdev_stats {
	uint64_t writes;                /* clock pages written (atomic mode) */
	uint64_t misses;                /* check failed: refresh handed to the worker */
	uint64_t refreshes;             /* worker refreshes that succeeded */
	uint64_t refresh_errors;        /* ... that failed (retried later) */
	uint64_t overruns;              /* periods the timer started late */
};

/* period_ns in [CLOCKDEV_PERIOD_MIN, CLOCKDEV_PERIOD_MAX]: 0 or -EINVAL,
 * -ENOMEM. */
int clockdev_create(uint64_t period_ns, struct clockdev **out);
/*
 * Register vmm's clock page at gpa (64-byte aligned, in writable RAM of
 * vmm) and activate its cache; before clockdev_start or while it runs.
 * Returns the VM's index (>= 0), or -EINVAL, -ENOSPC, or the cache's
 * activation error (-EFAULT: no RAM there).
 */
int clockdev_add_vm(struct clockdev *dev, struct vmm *vmm, gpa_t gpa);
/*
 * Called (on the worker's thread, or stop's) when VM idx's clock page could
 * not be swapped in to refresh its cache (err -EIO): its data is lost to
 * the VM, as for any VMM access that needed it (host.h); the device leaves
 * that VM alone from then on and clockdev_check passes it. Set before
 * clockdev_start; NULL: nobody is told.
 */
typedef void (*clockdev_lost_fn)(void *arg, unsigned int idx, int err);
void clockdev_set_lost_fn(struct clockdev *dev, clockdev_lost_fn fn, void *arg);
/* Start the timer and worker threads: 0 or -errno (pthread_create). */
int clockdev_start(struct clockdev *dev);
/*
 * Stop and join both threads (within a period and a refresh), then make
 * one last pass in process context: each VM's cache is refreshed if it
 * does not check and its page written once more, so that the last value
 * is current when nothing else changes guest memory any more.
 * Idempotent.
 */
void clockdev_stop(struct clockdev *dev);
/*
 * After clockdev_stop: read VM idx's page through the VMM (vmm_read_guest)
 * and compare it with the last value written through its cache. 0: it
 * matches, or the page is zero and the cache was invalidated since that
 * write (legitimately discarded: DONTNEED, remap, an OOM reap); 1: a lost
 * write, described in why; -errno: the page could not be read.
 */
int clockdev_check(struct clockdev *dev, unsigned int idx, char *why, size_t len);
void clockdev_get_stats(struct clockdev *dev, unsigned int idx, struct clockdev_stats *st);
/* Stops the device, deactivates and destroys the caches, frees it. */
void clockdev_destroy(struct clockdev *dev);

#endif
