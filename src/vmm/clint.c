/* SPDX-License-Identifier: MIT */
/*
 * clint.c - the core-local interruptor of the virt machine (SiFive CLINT
 * map): msip[h] (4 bytes at 4h, bit 0 drives hart h's MSI), mtimecmp[h]
 * (8 bytes at 0x4000 + 8h) and mtime (8 bytes at 0xbff8, the machine's
 * clock at 10 MHz; read-only here: writes are ignored).
 *
 * mtimecmp lives in the hart (the sink), which computes MTI from it and
 * the clock; the CLINT only reads and writes it. A 4-byte access reaches
 * one half of mtimecmp or mtime (OpenSBI's ACLINT driver may write the
 * halves separately, high word last), so a write of one half keeps the
 * other.
 */
#include <string.h>
#include "vmm/virt_dev.h"

void clint_init(struct clint *c, unsigned int nr_harts, const struct virt_irq_sink *sink)
{
	memset(c, 0, sizeof(*c));
	c->nr_harts = nr_harts;
	c->sink = sink;
}

void clint_reset(struct clint *c)
{
	const struct virt_irq_sink *sink = c->sink;

	for (unsigned int h = 0; h < c->nr_harts; h++) {
		if (atomic_exchange(&c->msip[h], 0))
			sink->set_irq(sink->opaque, h, VIRT_IRQ_MSI, false);
		sink->set_mtimecmp(sink->opaque, h, UINT64_MAX);
	}
}

/* Merge a size-byte write at byte offset sub of an 8-byte register. */
static uint64_t merge64(uint64_t old, unsigned int sub, unsigned int size, uint64_t v)
{
	uint64_t mask = size == 8 ? ~0ULL : ((1ULL << (size * 8)) - 1) << (sub * 8);

	return (old & ~mask) | ((v << (sub * 8)) & mask);
}

static uint64_t extract64(uint64_t reg, unsigned int sub, unsigned int size)
{
	uint64_t v = reg >> (sub * 8);

	return size == 8 ? v : v & ((1ULL << (size * 8)) - 1);
}

void clint_mmio(void *opaque, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
		uint64_t *val)
{
	struct clint *c = opaque;
	const struct virt_irq_sink *sink = c->sink;
	uint64_t off = gpa - VIRT_CLINT_BASE;

	if (off < CLINT_MTIMECMP) {
		unsigned int h = (unsigned int)(off / 4);

		if (h >= c->nr_harts || size > 4) {
			if (!write)
				*val = 0;
			return;
		}
		if (!write) {
			*val = extract64(atomic_load(&c->msip[h]), off % 4, size);
			return;
		}
		if (off % 4)
			return;         /* only bit 0 is writable */
		atomic_store(&c->msip[h], (uint32_t)(*val & 1));
		sink->set_irq(sink->opaque, h, VIRT_IRQ_MSI, *val & 1);
		return;
	}
	if (off >= CLINT_MTIMECMP && off < CLINT_MTIME) {
		unsigned int h = (unsigned int)((off - CLINT_MTIMECMP) / 8);
		unsigned int sub = (unsigned int)((off - CLINT_MTIMECMP) % 8);
		uint64_t cmp;

		if (h >= c->nr_harts) {
			if (!write)
				*val = 0;
			return;
		}
		cmp = sink->get_mtimecmp(sink->opaque, h);
		if (write)
			sink->set_mtimecmp(sink->opaque, h, merge64(cmp, sub, size, *val));
		else
			*val = extract64(cmp, sub, size);
		return;
	}
	if (off >= CLINT_MTIME && off < CLINT_MTIME + 8) {
		if (!write)
			*val = extract64(sink->read_time(sink->opaque),
					 (unsigned int)(off - CLINT_MTIME), size);
		return;
	}
	if (!write)
		*val = 0;
}
