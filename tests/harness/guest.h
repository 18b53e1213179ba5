/* SPDX-License-Identifier: MIT */
/*
 * guest.h - the tests' guest: a mailbox loop on a vCPU thread. The test
 * posts one access (or a spin, or a held access), the guest makes it
 * through vcpu_load64/vcpu_store64 and replies with the result and a
 * snapshot of its stats; idle, it stays in guest mode and checks requests
 * every millisecond, as a guest's bounded-interval exit would.
 *
 * Include after <cmocka.h>.
 */
#ifndef TANDEM_TESTS_HARNESS_GUEST_H
#define TANDEM_TESTS_HARNESS_GUEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "tandem/cpu.h"

#define GUEST_TIMEOUT_MS 10000

/* G_SPIN: load gpa again and again, without any other request check than
 * the soft-TLB hit's own, until spin_stop; each value read goes to
 * spin_last. */
enum guest_op { G_LOAD = 1, G_STORE, G_SPIN, G_HOLD };

struct kt_guest {
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* posted and done, both directions */
	unsigned long posted, done;
	int op;
	gpa_t gpa;
	uint64_t val;
	/* Keep running after an access fails (the allocation-failure sweeps
	 * expect -ENOMEM and go on); otherwise any error but -EINVAL ends
	 * the guest, and becomes vcpu_stop()'s return value. */
	bool go_on;
	/* The reply, written by the vCPU thread. */
	int ret;
	uint64_t out;
	struct vcpu_stats st;           /* the vCPU's stats after the op */
	/* G_HOLD (RSEQ builds): a load whose restartable section, past its
	 * request and tag checks and with the addend loaded, sets
	 * hold_arrived and spins until hold_release -- a vCPU caught
	 * mid-access, running, as a membarrier must find it. */
	volatile uint8_t hold_arrived, hold_release;
	/* G_SPIN: the test stops it; the vCPU publishes what it read. */
	atomic_bool spin_stop;
	_Atomic uint64_t spin_last;
	atomic_ulong spin_reads;
	/* The MMIO handler's log (vCPU thread, under lock). */
	int mmio_calls;
	gpa_t mmio_gpa;
	bool mmio_write;
	uint64_t mmio_val;
};

int kt_guest_main(struct vcpu *v, void *arg);

void kt_guest_init(struct kt_guest *g);
void kt_guest_destroy(struct kt_guest *g);
/* Post op and wait for its reply (GUEST_TIMEOUT_MS, else the test fails);
 * returns the access's result. */
int kt_guest_access(struct kt_guest *g, int op, gpa_t gpa, uint64_t val, uint64_t *out);

#endif
