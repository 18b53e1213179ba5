/* SPDX-License-Identifier: MIT */
/*
 * plic.c - the SiFive / RISC-V platform-level interrupt controller of the
 * virt machine (QEMU's sifive_plic register map), with level-triggered
 * gateways.
 *
 * Per source s (1..PLIC_NDEV): a priority (0 never interrupts), the line
 * level its device drives, a pending bit and an in-service bit. Per
 * context c (2h: hart h's M mode, 2h+1: its S mode): an enable bit per
 * source, a threshold, and an output line to the hart (MEI / SEI).
 *
 * Invariants, under plic->lock:
 *   1. pending(s) implies !in_service(s): the gateway forwards a new
 *      request only after the previous one completed.
 *   2. A level-triggered gateway: pending(s) == level(s) && !in_service(s)
 *      after every change; complete re-pends a line still high.
 *   3. out(c) == some s with pending, enabled for c and priority(s) >
 *      threshold(c); the sink is told only when out(c) changes.
 * Claim returns the highest-priority such source (lowest id on ties),
 * clears its pending bit and marks it in service; complete of an enabled
 * source in service ends it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vmm/virt_dev.h"

struct plic {
	pthread_mutex_t lock;
	unsigned int nr_harts, nr_ctx;
	const struct virt_irq_sink *sink;
	uint32_t priority[PLIC_NR_SRC];
	uint32_t level[PLIC_WORDS];
	uint32_t pending[PLIC_WORDS];
	uint32_t in_service[PLIC_WORDS];
	uint32_t (*enable)[PLIC_WORDS];         /* [nr_ctx] */
	uint32_t *threshold;                    /* [nr_ctx] */
	bool *out;                              /* [nr_ctx] */
};

static bool test_bit32(const uint32_t *w, unsigned int s)
{
	return w[s / 32] >> (s % 32) & 1;
}

static void assign_bit32(uint32_t *w, unsigned int s, bool v)
{
	if (v)
		w[s / 32] |= 1u << (s % 32);
	else
		w[s / 32] &= ~(1u << (s % 32));
}

int plic_create(unsigned int nr_harts, const struct virt_irq_sink *sink, struct plic **out)
{
	struct plic *p;

	if (!nr_harts || !sink || !sink->set_irq)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->nr_harts = nr_harts;
	p->nr_ctx = 2 * nr_harts;
	p->sink = sink;
	p->enable = calloc(p->nr_ctx, sizeof(*p->enable));
	p->threshold = calloc(p->nr_ctx, sizeof(*p->threshold));
	p->out = calloc(p->nr_ctx, sizeof(*p->out));
	if (!p->enable || !p->threshold || !p->out) {
		plic_destroy(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

void plic_destroy(struct plic *p)
{
	if (!p)
		return;
	if (p->enable && p->threshold && p->out)
		pthread_mutex_destroy(&p->lock);
	free(p->enable);
	free(p->threshold);
	free(p->out);
	free(p);
}

/* The source a claim by ctx would get (0: none). Called with p->lock held. */
static unsigned int plic_best_locked(struct plic *p, unsigned int ctx)
{
	unsigned int best = 0;
	uint32_t best_prio = p->threshold[ctx];

	for (unsigned int w = 0; w < PLIC_WORDS; w++) {
		uint32_t bits = p->pending[w] & p->enable[ctx][w];

		while (bits) {
			unsigned int s = w * 32 + (unsigned int)__builtin_ctz(bits);

			bits &= bits - 1;
			if (s && s < PLIC_NR_SRC && p->priority[s] > best_prio) {
				best = s;
				best_prio = p->priority[s];
			}
		}
	}
	return best;
}

/* Recompute every context's output (invariant 3); tell the sink about the
 * changes. Called with p->lock held: the sink must not call back. */
static void plic_update_locked(struct plic *p)
{
	for (unsigned int c = 0; c < p->nr_ctx; c++) {
		bool level = plic_best_locked(p, c) != 0;

		if (level != p->out[c]) {
			p->out[c] = level;
			p->sink->set_irq(p->sink->opaque, c / 2,
					 c % 2 ? VIRT_IRQ_SEI : VIRT_IRQ_MEI, level);
		}
	}
}

void plic_set_level(struct plic *p, unsigned int src, bool level)
{
	if (!src || src >= PLIC_NR_SRC)
		return;
	pthread_mutex_lock(&p->lock);
	assign_bit32(p->level, src, level);
	assign_bit32(p->pending, src, level && !test_bit32(p->in_service, src));
	plic_update_locked(p);
	pthread_mutex_unlock(&p->lock);
}

void plic_reset(struct plic *p)
{
	pthread_mutex_lock(&p->lock);
	memset(p->priority, 0, sizeof(p->priority));
	memset(p->in_service, 0, sizeof(p->in_service));
	memset(p->enable, 0, p->nr_ctx * sizeof(*p->enable));
	memset(p->threshold, 0, p->nr_ctx * sizeof(*p->threshold));
	/* The lines are still what the devices drive (invariant 2); with every
	 * priority 0 no context's output stays up (invariant 3). */
	memcpy(p->pending, p->level, sizeof(p->pending));
	plic_update_locked(p);
	pthread_mutex_unlock(&p->lock);
}

static uint32_t plic_claim_locked(struct plic *p, unsigned int ctx)
{
	unsigned int s = plic_best_locked(p, ctx);

	if (s) {
		assign_bit32(p->pending, s, false);
		assign_bit32(p->in_service, s, true);
		plic_update_locked(p);
	}
	return s;
}

static void plic_complete_locked(struct plic *p, unsigned int ctx, uint32_t s)
{
	if (!s || s >= PLIC_NR_SRC || !test_bit32(p->enable[ctx], s) ||
	    !test_bit32(p->in_service, s))
		return;
	assign_bit32(p->in_service, s, false);
	assign_bit32(p->pending, s, test_bit32(p->level, s));
	plic_update_locked(p);
}

/* 32-bit registers; an 8-byte access covers two (low first). */
static uint32_t plic_read32_locked(struct plic *p, uint64_t off)
{
	if (off < PLIC_PENDING) {
		unsigned int s = (unsigned int)(off / 4);

		return s < PLIC_NR_SRC ? p->priority[s] : 0;
	}
	if (off < PLIC_ENABLE) {
		unsigned int w = (unsigned int)((off - PLIC_PENDING) / 4);

		return w < PLIC_WORDS ? p->pending[w] : 0;
	}
	if (off < PLIC_CONTEXT) {
		unsigned int c = (unsigned int)((off - PLIC_ENABLE) / PLIC_ENABLE_STRIDE);
		unsigned int w = (unsigned int)((off - PLIC_ENABLE) % PLIC_ENABLE_STRIDE / 4);

		return c < p->nr_ctx && w < PLIC_WORDS ? p->enable[c][w] : 0;
	}
	{
		unsigned int c = (unsigned int)((off - PLIC_CONTEXT) / PLIC_CONTEXT_STRIDE);
		uint64_t reg = (off - PLIC_CONTEXT) % PLIC_CONTEXT_STRIDE;

		if (c >= p->nr_ctx)
			return 0;
		if (reg == 0)
			return p->threshold[c];
		if (reg == 4)
			return plic_claim_locked(p, c);
	}
	return 0;
}

static void plic_write32_locked(struct plic *p, uint64_t off, uint32_t v)
{
	if (off < PLIC_PENDING) {
		unsigned int s = (unsigned int)(off / 4);

		if (s && s < PLIC_NR_SRC) {
			p->priority[s] = v & PLIC_MAX_PRIO;
			plic_update_locked(p);
		}
		return;
	}
	if (off < PLIC_ENABLE)
		return;         /* pending is read-only */
	if (off < PLIC_CONTEXT) {
		unsigned int c = (unsigned int)((off - PLIC_ENABLE) / PLIC_ENABLE_STRIDE);
		unsigned int w = (unsigned int)((off - PLIC_ENABLE) % PLIC_ENABLE_STRIDE / 4);

		if (c < p->nr_ctx && w < PLIC_WORDS) {
			if (w == 0)
				v &= ~1u;       /* source 0 does not exist */
			if (w == PLIC_WORDS - 1 && PLIC_NR_SRC % 32)
				v &= (1u << (PLIC_NR_SRC % 32)) - 1;
			p->enable[c][w] = v;
			plic_update_locked(p);
		}
		return;
	}
	{
		unsigned int c = (unsigned int)((off - PLIC_CONTEXT) / PLIC_CONTEXT_STRIDE);
		uint64_t reg = (off - PLIC_CONTEXT) % PLIC_CONTEXT_STRIDE;

		if (c >= p->nr_ctx)
			return;
		if (reg == 0) {
			p->threshold[c] = v & PLIC_MAX_PRIO;
			plic_update_locked(p);
		} else if (reg == 4) {
			plic_complete_locked(p, c, v);
		}
	}
}

void plic_mmio(void *opaque, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
	       uint64_t *val)
{
	struct plic *p = opaque;
	uint64_t off = gpa - VIRT_PLIC_BASE;

	pthread_mutex_lock(&p->lock);
	if (size == 8) {
		if (write) {
			plic_write32_locked(p, off, (uint32_t)*val);
			plic_write32_locked(p, off + 4, (uint32_t)(*val >> 32));
		} else {
			*val = plic_read32_locked(p, off) |
			       (uint64_t)plic_read32_locked(p, off + 4) << 32;
		}
	} else if (size == 4) {
		if (write)
			plic_write32_locked(p, off, (uint32_t)*val);
		else
			*val = plic_read32_locked(p, off);
	} else if (!write) {
		*val = 0;       /* the PLIC's registers are 32-bit */
	}
	pthread_mutex_unlock(&p->lock);
}
