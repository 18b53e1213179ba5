/* SPDX-License-Identifier: MIT */
/*
 * guest.c - the tests' mailbox guest (guest.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include "tandem/cpu.h"
#include "harness/guest.h"
#include "harness/util.h"

/*
 * Runs in guest mode. Idle, it checks requests every millisecond, as a
 * guest's bounded-interval exit would; that is what lets a waiting flush
 * finish while the guest does nothing. An access the host refused (the
 * host is gone, the slot's hva is unmapped) ends the guest: the error
 * becomes vcpu_stop()'s return value. An unaligned access (-EINVAL)
 * does not.
 */
#ifdef TANDEM_HAVE_RSEQ
/* The hit path's section (cpu_rseq.h) with a wait between the addend load
 * and the access: true and *val if it completed, false if it missed or
 * the kernel aborted it (then counted as the engine counts its own). */
static bool held_load(struct vcpu *v, struct kt_guest *g, gva_t gva, uint64_t *val)
{
	uint64_t out, tmp;

	__asm__ volatile goto(CPU_RSEQ_BEGIN
			      "movb $1, %[arrived]\n\t"
			      "5:\n\t"
			      "cmpb $0, %[release]\n\t"
			      "je 5b\n\t"
			      "movq (%[tmp],%[gva]), %[out]\n\t"
			      CPU_RSEQ_END
			      : [out] "=&r"(out), [tmp] "=&r"(tmp), [arrived] "=m"(g->hold_arrived)
			      : [cs] "r"(cpu_rseq_cs_field()), [tag] "r"(gva & STLB_CMP_MASK),
				[tlb] "r"(v->stlb_cur), [eoff] "r"(stlb_offset(gva)),
				[tagdisp] "i"(offsetof(struct stlb_entry, addr_read)),
				[req] "m"(*(unsigned long *)&v->kvm_vcpu.requests), [gva] "r"(gva),
				[release] "m"(g->hold_release)
			      : "cc", "memory"
			      : miss, aborted);
	*val = out;
	return true;
aborted:
	v->stat.rseq_aborts++;
miss:
	return false;
}
#endif

int kt_guest_main(struct vcpu *v, void *arg)
{
	struct kt_guest *g = arg;

	for (;;) {
		int r = vcpu_check_requests(v);

		if (r)
			return r;
		pthread_mutex_lock(&g->lock);
		if (g->done == g->posted) {
			struct timespec ts;

			deadline_ms(&ts, 1);
			pthread_cond_timedwait(&g->cond, &g->lock, &ts);
			pthread_mutex_unlock(&g->lock);
			continue;
		}
		int op = g->op;
		gpa_t gpa = g->gpa;
		uint64_t val = g->val;

		pthread_mutex_unlock(&g->lock);
		if (op == G_HOLD) {
#ifdef TANDEM_HAVE_RSEQ
			r = held_load(v, g, gpa, &val) ? 0 : vcpu_access_slow(v, gpa, false, &val);
#else
			r = -EOPNOTSUPP;
#endif
		} else if (op == G_SPIN) {
			r = 0;
			while (!r && !atomic_load_explicit(&g->spin_stop, memory_order_relaxed)) {
				r = vcpu_load64(v, gpa, &val);
				atomic_store_explicit(&g->spin_last, val, memory_order_relaxed);
				atomic_fetch_add_explicit(&g->spin_reads, 1, memory_order_relaxed);
			}
		} else {
			r = op == G_LOAD ? vcpu_load64(v, gpa, &val) : vcpu_store64(v, gpa, val);
		}
		pthread_mutex_lock(&g->lock);
		g->ret = r;
		g->out = val;
		g->st = v->stat;
		g->done++;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		if (r && r != -EINVAL && !g->go_on)
			return r;
		if (r == -EINTR)
			return r;
	}
}

void kt_guest_init(struct kt_guest *g)
{
	memset(g, 0, sizeof(*g));
	sync_init(&g->lock, &g->cond);
}

void kt_guest_destroy(struct kt_guest *g)
{
	sync_destroy(&g->lock, &g->cond);
}

int kt_guest_access(struct kt_guest *g, int op, gpa_t gpa, uint64_t val, uint64_t *out)
{
	struct timespec ts;
	bool done;
	int ret;

	pthread_mutex_lock(&g->lock);
	g->op = op;
	g->gpa = gpa;
	g->val = val;
	g->posted++;
	pthread_cond_broadcast(&g->cond);
	deadline_ms(&ts, GUEST_TIMEOUT_MS);
	while (g->done != g->posted)
		if (pthread_cond_timedwait(&g->cond, &g->lock, &ts) == ETIMEDOUT)
			break;
	done = g->done == g->posted;
	ret = g->ret;
	if (out)
		*out = g->out;
	pthread_mutex_unlock(&g->lock);
	if (!done)
		fail_msg("guest access at %#llx did not complete", (unsigned long long)gpa);
	return ret;
}
