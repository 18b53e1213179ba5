/* SPDX-License-Identifier: MIT */
/*
 * rv_hart_stub.c - TEMPORARY: link-time stand-ins for the RISC-V hart
 * (riscv.h) until the real one (src/cpu/riscv/) is merged; delete then.
 * rv_hart_create fails with -ENOSYS, so a virt machine cannot start.
 */
#include <errno.h>
#include <time.h>
#include "tandem/riscv.h"

static uint64_t stub_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void rv_clock_init(struct rv_clock *clk, uint64_t freq_hz)
{
	clk->origin_ns = stub_now_ns();
	clk->freq_hz = freq_hz;
}

uint64_t rv_clock_read(const struct rv_clock *clk)
{
	uint64_t ns = stub_now_ns() - clk->origin_ns;

	return (uint64_t)((unsigned __int128)ns * clk->freq_hz / 1000000000ULL);
}

uint64_t rv_clock_to_ns(const struct rv_clock *clk, uint64_t ticks)
{
	return clk->origin_ns + (uint64_t)((unsigned __int128)ticks * 1000000000ULL / clk->freq_hz);
}

int rv_hart_create(struct vcpu *v, const struct rv_hart_config *cfg, struct rv_hart **out)
{
	return -ENOSYS;
}

void rv_hart_destroy(struct rv_hart *hart)
{
}

int rv_hart_main(struct vcpu *v, void *hart)
{
	return -ENOSYS;
}

void rv_hart_set_irq(struct rv_hart *hart, unsigned int irq, bool level)
{
}

void rv_hart_set_mtimecmp(struct rv_hart *hart, uint64_t ticks)
{
}

uint64_t rv_hart_get_mtimecmp(struct rv_hart *hart)
{
	return 0;
}

void rv_hart_get_stats(struct rv_hart *hart, struct rv_hart_stats *st)
{
	*st = (struct rv_hart_stats){ 0 };
}
