/* SPDX-License-Identifier: MIT */
/*
 * test_virt.c - the virt machine's devices through their MMIO handlers,
 * no hart needed: the PLIC's gateways, priorities, threshold and
 * claim/complete; the CLINT's mtime and its 32/64-bit mtimecmp and msip;
 * the UART's registers (DLAB), transmit into a pipe, receive from a pipe
 * through its reader thread, and its line through a real PLIC; a
 * virtio-blk device driven by a hand-built split virtqueue in guest RAM
 * over a temp file; the device tree (libfdt and dtc); the loader's
 * refusals; virt_create's; the devices' resets (registers back, lines
 * lowered).
 *
 * The interrupt controllers' outputs go to a fake sink that records the
 * level of each (hart, irq) and the mtimecmp values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libfdt.h>

#include "tandem/host.h"
#include "tandem/vmm.h"
#include "tandem/virt.h"
#include "vmm/virt_dev.h"
#include "harness/util.h"

/* ==== a fake sink =========================================================== */

struct fake_sink {
	struct virt_irq_sink sink;
	_Atomic bool level[4][16];
	_Atomic uint64_t mtimecmp[4];
	_Atomic uint64_t time;
	_Atomic unsigned int changes;
};

static void fake_set_irq(void *opaque, unsigned int hart, unsigned int irq, bool level)
{
	struct fake_sink *f = opaque;

	assert_true(hart < 4 && irq < 16);
	/* The controllers report changes only. */
	assert_int_not_equal(atomic_load(&f->level[hart][irq]), level);
	atomic_store(&f->level[hart][irq], level);
	atomic_fetch_add(&f->changes, 1);
}

static void fake_set_mtimecmp(void *opaque, unsigned int hart, uint64_t ticks)
{
	struct fake_sink *f = opaque;

	atomic_store(&f->mtimecmp[hart], ticks);
}

static uint64_t fake_get_mtimecmp(void *opaque, unsigned int hart)
{
	struct fake_sink *f = opaque;

	return atomic_load(&f->mtimecmp[hart]);
}

static uint64_t fake_read_time(void *opaque)
{
	struct fake_sink *f = opaque;

	return atomic_load(&f->time);
}

static void fake_init(struct fake_sink *f)
{
	memset(f, 0, sizeof(*f));
	f->sink = (struct virt_irq_sink){ fake_set_irq, fake_set_mtimecmp, fake_get_mtimecmp,
					  fake_read_time, f };
}

static bool fake_level(struct fake_sink *f, unsigned int hart, unsigned int irq)
{
	return atomic_load(&f->level[hart][irq]);
}

/* ==== MMIO helpers ========================================================= */

static uint64_t rd(vmm_mmio_fn fn, void *dev, gpa_t gpa, unsigned int size)
{
	uint64_t v = 0xdeadbeefdeadbeefULL;

	fn(dev, NULL, gpa, size, false, &v);
	return v;
}

static void wr(vmm_mmio_fn fn, void *dev, gpa_t gpa, unsigned int size, uint64_t v)
{
	fn(dev, NULL, gpa, size, true, &v);
}

/* ==== PLIC ================================================================ */

#define PLIC_PRIO(s)       (VIRT_PLIC_BASE + 4 * (s))
#define PLIC_PEND(w)       (VIRT_PLIC_BASE + PLIC_PENDING + 4 * (w))
#define PLIC_EN(c, w)      (VIRT_PLIC_BASE + PLIC_ENABLE + PLIC_ENABLE_STRIDE * (c) + 4 * (w))
#define PLIC_THRESH(c)     (VIRT_PLIC_BASE + PLIC_CONTEXT + PLIC_CONTEXT_STRIDE * (c))
#define PLIC_CLAIM(c)      (PLIC_THRESH(c) + 4)

static void test_plic_claim_complete(void **state)
{
	struct fake_sink f;
	struct plic *p;

	fake_init(&f);
	assert_int_equal(plic_create(2, &f.sink, &p), 0);
	wr(plic_mmio, p, PLIC_PRIO(5), 4, 2);
	wr(plic_mmio, p, PLIC_PRIO(7), 4, 4);
	assert_int_equal(rd(plic_mmio, p, PLIC_PRIO(7), 4), 4);
	wr(plic_mmio, p, PLIC_PRIO(8), 4, 0xff);        /* 3 bits of priority */
	assert_int_equal(rd(plic_mmio, p, PLIC_PRIO(8), 4), 7);

	/* A line up with nothing enabled: pending, no output. */
	plic_set_level(p, 5, true);
	assert_int_equal(rd(plic_mmio, p, PLIC_PEND(0), 4), 1u << 5);
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));
	/* Enabled for hart 1's S context (3): SEI of hart 1 only. */
	wr(plic_mmio, p, PLIC_EN(3, 0), 4, 1u << 5 | 1u << 7 | 1u);
	assert_int_equal(rd(plic_mmio, p, PLIC_EN(3, 0), 4), 1u << 5 | 1u << 7); /* no source 0 */
	assert_true(fake_level(&f, 1, VIRT_IRQ_SEI));
	assert_false(fake_level(&f, 1, VIRT_IRQ_MEI));
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));

	/* Highest priority first. */
	plic_set_level(p, 7, true);
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(3), 4), 7);
	assert_true(fake_level(&f, 1, VIRT_IRQ_SEI));   /* 5 still pending */
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(3), 4), 5);
	assert_false(fake_level(&f, 1, VIRT_IRQ_SEI));
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(3), 4), 0);
	assert_int_equal(rd(plic_mmio, p, PLIC_PEND(0), 4), 0);

	/* In service: the line going down and up again does not re-pend it. */
	plic_set_level(p, 7, false);
	plic_set_level(p, 7, true);
	assert_false(fake_level(&f, 1, VIRT_IRQ_SEI));
	/* Complete of 7 while its line is high: pending again. */
	wr(plic_mmio, p, PLIC_CLAIM(3), 4, 7);
	assert_true(fake_level(&f, 1, VIRT_IRQ_SEI));
	plic_set_level(p, 7, false);                    /* level: withdrawn */
	assert_false(fake_level(&f, 1, VIRT_IRQ_SEI));
	/* Complete of 5 with its line still high. */
	wr(plic_mmio, p, PLIC_CLAIM(3), 4, 5);
	assert_true(fake_level(&f, 1, VIRT_IRQ_SEI));

	/* Threshold: priority must exceed it. */
	wr(plic_mmio, p, PLIC_THRESH(3), 4, 2);
	assert_int_equal(rd(plic_mmio, p, PLIC_THRESH(3), 4), 2);
	assert_false(fake_level(&f, 1, VIRT_IRQ_SEI));
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(3), 4), 0);
	wr(plic_mmio, p, PLIC_PRIO(5), 4, 3);
	assert_true(fake_level(&f, 1, VIRT_IRQ_SEI));
	/* Priority 0 never interrupts. */
	wr(plic_mmio, p, PLIC_THRESH(3), 4, 0);
	wr(plic_mmio, p, PLIC_PRIO(5), 4, 0);
	assert_false(fake_level(&f, 1, VIRT_IRQ_SEI));

	/* The M context of hart 0 (context 0) drives MEI. */
	wr(plic_mmio, p, PLIC_PRIO(5), 4, 1);
	wr(plic_mmio, p, PLIC_EN(0, 0), 4, 1u << 5);
	assert_true(fake_level(&f, 0, VIRT_IRQ_MEI));
	/* A source above 31 (second word) and the last one (95). */
	wr(plic_mmio, p, PLIC_PRIO(95), 4, 1);
	wr(plic_mmio, p, PLIC_EN(2, 2), 4, ~0u);
	assert_int_equal(rd(plic_mmio, p, PLIC_EN(2, 2), 4), 0xffffffffu); /* 64..95 */
	plic_set_level(p, 95, true);
	assert_true(fake_level(&f, 1, VIRT_IRQ_MEI));
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(2), 4), 95);
	assert_false(fake_level(&f, 1, VIRT_IRQ_MEI));
	/* Sources past ndev do not exist. */
	plic_set_level(p, PLIC_NR_SRC, true);
	assert_int_equal(rd(plic_mmio, p, PLIC_PEND(3), 4), 0);
	plic_destroy(p);
}

/* ==== CLINT =============================================================== */

static void test_clint(void **state)
{
	struct fake_sink f;
	struct clint c;

	fake_init(&f);
	clint_init(&c, 2, &f.sink);
	atomic_store(&f.time, 0x1122334455667788ULL);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIME, 8),
			 0x1122334455667788ULL);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIME, 4), 0x55667788);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIME + 4, 4), 0x11223344);
	atomic_fetch_add(&f.time, 100);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIME, 8),
			 0x1122334455667788ULL + 100);

	/* mtimecmp: 64-bit, then 32-bit halves (the other half kept). */
	wr(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP + 8, 8, 0xaaaabbbbccccddddULL);
	assert_int_equal(atomic_load(&f.mtimecmp[1]), 0xaaaabbbbccccddddULL);
	assert_int_equal(atomic_load(&f.mtimecmp[0]), 0);
	wr(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP + 8, 4, 0x11111111);
	assert_int_equal(atomic_load(&f.mtimecmp[1]), 0xaaaabbbb11111111ULL);
	wr(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP + 12, 4, 0x22222222);
	assert_int_equal(atomic_load(&f.mtimecmp[1]), 0x2222222211111111ULL);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP + 12, 4),
			 0x22222222);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP + 8, 8),
			 0x2222222211111111ULL);
	/* mtime writes are ignored; a hart past nr_harts reads 0. */
	wr(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIME, 8, 0);
	assert_int_not_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIME, 8), 0);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP + 16, 8), 0);

	/* msip: bit 0 drives MSI. */
	wr(clint_mmio, &c, VIRT_CLINT_BASE + 4, 4, 1);
	assert_true(fake_level(&f, 1, VIRT_IRQ_MSI));
	assert_false(fake_level(&f, 0, VIRT_IRQ_MSI));
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + 4, 4), 1);
	wr(clint_mmio, &c, VIRT_CLINT_BASE + 4, 4, 0);
	assert_false(fake_level(&f, 1, VIRT_IRQ_MSI));
	wr(clint_mmio, &c, VIRT_CLINT_BASE + 0, 4, 0xffffffff);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + 0, 4), 1);
	assert_true(fake_level(&f, 0, VIRT_IRQ_MSI));
}

/* ==== resets ============================================================== */

#define U(reg) (VIRT_UART_BASE + (reg))

/* A PLIC reset clears what software set and drops the outputs, but keeps
 * the devices' levels: a line still high pends again once re-enabled. */
static void test_plic_reset(void **state)
{
	struct fake_sink f;
	struct plic *p;

	fake_init(&f);
	assert_int_equal(plic_create(2, &f.sink, &p), 0);
	wr(plic_mmio, p, PLIC_PRIO(3), 4, 5);
	wr(plic_mmio, p, PLIC_PRIO(40), 4, 2);
	wr(plic_mmio, p, PLIC_EN(0, 0), 4, 1u << 3);
	wr(plic_mmio, p, PLIC_EN(3, 1), 4, 1u << (40 - 32));
	wr(plic_mmio, p, PLIC_THRESH(2), 4, 1);
	plic_set_level(p, 3, true);
	plic_set_level(p, 40, true);
	assert_true(fake_level(&f, 0, VIRT_IRQ_MEI));
	assert_true(fake_level(&f, 1, VIRT_IRQ_SEI));
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(0), 4), 3);       /* in service */
	assert_false(fake_level(&f, 0, VIRT_IRQ_MEI));

	plic_reset(p);
	assert_false(fake_level(&f, 0, VIRT_IRQ_MEI));
	assert_false(fake_level(&f, 1, VIRT_IRQ_SEI));
	assert_int_equal(rd(plic_mmio, p, PLIC_PRIO(3), 4), 0);
	assert_int_equal(rd(plic_mmio, p, PLIC_PRIO(40), 4), 0);
	assert_int_equal(rd(plic_mmio, p, PLIC_EN(0, 0), 4), 0);
	assert_int_equal(rd(plic_mmio, p, PLIC_EN(3, 1), 4), 0);
	assert_int_equal(rd(plic_mmio, p, PLIC_THRESH(2), 4), 0);
	/* The levels stayed: both pend (3 no longer in service). */
	assert_int_equal(rd(plic_mmio, p, PLIC_PEND(0), 4), 1u << 3);
	assert_int_equal(rd(plic_mmio, p, PLIC_PEND(1), 4), 1u << (40 - 32));
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(0), 4), 0);
	wr(plic_mmio, p, PLIC_PRIO(3), 4, 1);
	wr(plic_mmio, p, PLIC_EN(0, 0), 4, 1u << 3);
	assert_true(fake_level(&f, 0, VIRT_IRQ_MEI));
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(0), 4), 3);
	/* A reset with nothing up tells the sink nothing (it asserts that). */
	plic_set_level(p, 3, false);
	plic_set_level(p, 40, false);
	wr(plic_mmio, p, PLIC_CLAIM(0), 4, 3);
	plic_reset(p);
	assert_int_equal(rd(plic_mmio, p, PLIC_PEND(0), 4), 0);
	assert_int_equal(rd(plic_mmio, p, PLIC_PEND(1), 4), 0);
	plic_destroy(p);
}

static void test_clint_reset(void **state)
{
	struct fake_sink f;
	struct clint c;
	unsigned int changes;

	fake_init(&f);
	clint_init(&c, 2, &f.sink);
	wr(clint_mmio, &c, VIRT_CLINT_BASE + 4, 4, 1);
	wr(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP, 8, 1234);
	wr(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP + 8, 8, 5678);
	assert_true(fake_level(&f, 1, VIRT_IRQ_MSI));
	changes = atomic_load(&f.changes);

	clint_reset(&c);
	assert_false(fake_level(&f, 1, VIRT_IRQ_MSI));
	assert_false(fake_level(&f, 0, VIRT_IRQ_MSI));
	assert_int_equal(atomic_load(&f.changes), changes + 1);    /* only hart 1's */
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + 4, 4), 0);
	assert_int_equal(atomic_load(&f.mtimecmp[0]), UINT64_MAX);
	assert_int_equal(atomic_load(&f.mtimecmp[1]), UINT64_MAX);
	assert_int_equal(rd(clint_mmio, &c, VIRT_CLINT_BASE + CLINT_MTIMECMP + 8, 8),
			 UINT64_MAX);
}

/* A UART reset: registers to the 16550's reset values, the receive FIFO
 * emptied, its line (through a real PLIC) lowered. */
static void test_uart_reset(void **state)
{
	struct fake_sink f;
	struct plic *p;
	struct uart *u;
	struct uart_config uc = { .in_fd = -1, .out_fd = -1,
				  .irq_line = (void (*)(void *, unsigned int, bool))plic_set_level,
				  .irq = VIRT_UART_IRQ };

	fake_init(&f);
	assert_int_equal(plic_create(1, &f.sink, &p), 0);
	uc.irq_arg = p;
	assert_int_equal(uart_create(&uc, &u), 0);
	wr(plic_mmio, p, PLIC_PRIO(VIRT_UART_IRQ), 4, 1);
	wr(plic_mmio, p, PLIC_EN(1, 0), 4, 1u << VIRT_UART_IRQ);
	wr(uart_mmio, u, U(3), 1, 0x83);
	wr(uart_mmio, u, U(0), 1, 0x01);                /* DLL */
	wr(uart_mmio, u, U(1), 1, 0x02);                /* DLM */
	wr(uart_mmio, u, U(3), 1, 0x03);
	wr(uart_mmio, u, U(1), 1, 0x03);                /* ERBFI | ETBEI */
	wr(uart_mmio, u, U(2), 1, 0x01);                /* FIFO on */
	wr(uart_mmio, u, U(4), 1, 0x0b);
	wr(uart_mmio, u, U(7), 1, 0x5a);
	assert_int_equal(uart_receive(u, "abc", 3), 3);
	assert_true(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(rd(uart_mmio, u, U(5), 1), 0x61);

	uart_reset(u);
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(rd(uart_mmio, u, U(5), 1), 0x60);     /* FIFO empty */
	assert_int_equal(rd(uart_mmio, u, U(1), 1), 0);
	assert_int_equal(rd(uart_mmio, u, U(2), 1), 0x01);     /* no interrupt, no FIFO */
	assert_int_equal(rd(uart_mmio, u, U(3), 1), 0);
	assert_int_equal(rd(uart_mmio, u, U(4), 1), 0);
	assert_int_equal(rd(uart_mmio, u, U(7), 1), 0);
	wr(uart_mmio, u, U(3), 1, 0x80);
	assert_int_equal(rd(uart_mmio, u, U(0), 1), 0x0c);     /* 9600 baud */
	assert_int_equal(rd(uart_mmio, u, U(1), 1), 0);
	wr(uart_mmio, u, U(3), 1, 0x00);
	/* Still works: input after the reset is received. */
	wr(uart_mmio, u, U(1), 1, 0x01);
	assert_int_equal(uart_receive(u, "z", 1), 1);
	assert_true(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(rd(uart_mmio, u, U(0), 1), 'z');
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));
	uart_destroy(u);
	plic_destroy(p);
}

/* ==== UART ================================================================ */

static bool wait_byte_ready(struct uart *u, unsigned int ms)
{
	uint64_t end = ms_now() + ms;

	while (!(rd(uart_mmio, u, U(5), 1) & 0x01)) {
		if (ms_now() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

static void test_uart(void **state)
{
	struct fake_sink f;
	struct plic *p;
	struct uart *u;
	int in[2], out[2];
	char buf[16];

	fake_init(&f);
	assert_int_equal(plic_create(1, &f.sink, &p), 0);
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	struct uart_config uc = { .in_fd = in[0], .out_fd = out[1],
				  .irq_line = (void (*)(void *, unsigned int, bool))plic_set_level,
				  .irq_arg = p, .irq = VIRT_UART_IRQ };
	assert_int_equal(uart_create(&uc, &u), 0);
	assert_int_equal(uart_start(u), 0);
	/* UART source, priority 1, enabled for hart 0's S context. */
	wr(plic_mmio, p, PLIC_PRIO(VIRT_UART_IRQ), 4, 1);
	wr(plic_mmio, p, PLIC_EN(1, 0), 4, 1u << VIRT_UART_IRQ);

	/* Reset state: THR empty, no data, no interrupt. */
	assert_int_equal(rd(uart_mmio, u, U(5), 1), 0x60);
	assert_int_equal(rd(uart_mmio, u, U(2), 1) & 0x0f, 0x01);

	/* DLAB: registers 0/1 become the divisor latch. */
	wr(uart_mmio, u, U(1), 1, 0x00);
	wr(uart_mmio, u, U(3), 1, 0x83);
	wr(uart_mmio, u, U(0), 1, 0x01);
	wr(uart_mmio, u, U(1), 1, 0x02);
	assert_int_equal(rd(uart_mmio, u, U(0), 1), 0x01);
	assert_int_equal(rd(uart_mmio, u, U(1), 1), 0x02);
	wr(uart_mmio, u, U(3), 1, 0x03);
	assert_int_equal(rd(uart_mmio, u, U(3), 1), 0x03);
	assert_int_equal(rd(uart_mmio, u, U(1), 1), 0x00);     /* IER untouched */
	wr(uart_mmio, u, U(7), 1, 0x5a);
	assert_int_equal(rd(uart_mmio, u, U(7), 1), 0x5a);

	/* Transmit. */
	wr(uart_mmio, u, U(0), 1, 'h');
	wr(uart_mmio, u, U(0), 1, 'i');
	assert_int_equal(read(out[0], buf, 2), 2);
	assert_memory_equal(buf, "hi", 2);
	assert_int_equal(uart_tx_bytes(u), 2);

	/* THR-empty interrupt: raised by enabling it, cleared by the IIR read
	 * that reports it, raised again by a write. */
	wr(uart_mmio, u, U(1), 1, 0x02);
	assert_true(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(rd(uart_mmio, u, U(2), 1) & 0x0f, 0x02);
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(rd(uart_mmio, u, U(2), 1) & 0x0f, 0x01);
	wr(uart_mmio, u, U(0), 1, '!');
	assert_true(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(read(out[0], buf, 1), 1);
	wr(uart_mmio, u, U(1), 1, 0x00);
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));

	/* Receive through the reader thread: DR, and with ERBFI the line. */
	wr(uart_mmio, u, U(1), 1, 0x01);
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(write(in[1], "ok", 2), 2);
	assert_true(wait_byte_ready(u, 5000));
	assert_true(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(rd(uart_mmio, u, U(2), 1) & 0x0f, 0x04);
	/* The claim takes it; the line stays high in the UART until drained. */
	assert_int_equal(rd(plic_mmio, p, PLIC_CLAIM(1), 4), VIRT_UART_IRQ);
	assert_int_equal(rd(uart_mmio, u, U(0), 1), 'o');
	if (!(rd(uart_mmio, u, U(5), 1) & 1))
		assert_true(wait_byte_ready(u, 5000));
	assert_int_equal(rd(uart_mmio, u, U(0), 1), 'k');
	assert_int_equal(rd(uart_mmio, u, U(5), 1), 0x60);
	wr(plic_mmio, p, PLIC_CLAIM(1), 4, VIRT_UART_IRQ);
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));
	assert_int_equal(uart_rx_bytes(u), 2);

	/* FCR: FIFO-enabled bits in IIR; clear RX. */
	wr(uart_mmio, u, U(2), 1, 0x01);
	assert_int_equal(rd(uart_mmio, u, U(2), 1) & 0xc0, 0xc0);
	assert_int_equal(uart_receive(u, "xyz", 3), 3);
	assert_true(fake_level(&f, 0, VIRT_IRQ_SEI));
	wr(uart_mmio, u, U(2), 1, 0x03);
	assert_int_equal(rd(uart_mmio, u, U(5), 1), 0x60);
	assert_false(fake_level(&f, 0, VIRT_IRQ_SEI));

	uart_destroy(u);
	plic_destroy(p);
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
}

static _Atomic int quits;

static void count_quit(void *arg)
{
	atomic_fetch_add(&quits, 1);
}

/* Ctrl-A x quits; Ctrl-A Ctrl-A is one Ctrl-A for the guest. */
static void test_uart_escape(void **state)
{
	struct uart *u;
	int in[2];
	uint64_t end;

	assert_int_equal(pipe(in), 0);
	struct uart_config uc = { .in_fd = in[0], .out_fd = -1, .escape = true,
				  .quit = count_quit };
	assert_int_equal(uart_create(&uc, &u), 0);
	assert_int_equal(uart_start(u), 0);
	assert_int_equal(write(in[1], "a\x01\x01" "b\x01x", 6), 6);
	end = ms_now() + 5000;
	while (!atomic_load(&quits) && ms_now() < end)
		sleep_ms(1);
	assert_int_equal(atomic_load(&quits), 1);
	assert_int_equal(rd(uart_mmio, u, U(0), 1), 'a');
	assert_int_equal(rd(uart_mmio, u, U(0), 1), 0x01);
	assert_int_equal(rd(uart_mmio, u, U(0), 1), 'b');
	assert_int_equal(rd(uart_mmio, u, U(5), 1), 0x60);
	uart_destroy(u);
	close(in[0]);
	close(in[1]);
}

/* ==== a host, a VMM, guest RAM ============================================ */

#define RAM_BASE 0x80000000ULL
#define RAM_SIZE (16ULL << 20)

struct vt {
	struct host *host;
	struct vmm *vmm;
};

static void vt_create(struct vt *t)
{
	struct host_config hc = { .ram_bytes = 64ULL << 20 };
	struct kvm_config kc = { .kick = KVM_KICK_WAIT };

	assert_int_equal(host_create(&hc, &t->host), 0);
	assert_int_equal(vmm_create(t->host, &kc, &t->vmm), 0);
	assert_int_equal(vmm_add_ram(t->vmm, 0, RAM_BASE, RAM_SIZE, 0), 0);
}

static void vt_destroy(struct vt *t)
{
	vmm_destroy(t->vmm);
	assert_int_equal(host_frames_in_use(t->host), 0);
	assert_int_equal(host_destroy(t->host), 0);
}

/* ==== virtio-blk ========================================================== */

#define VQ_DESC  (RAM_BASE + 0x10000)
#define VQ_AVAIL (RAM_BASE + 0x11000)
#define VQ_USED  (RAM_BASE + 0x12000)
#define VQ_HDR   (RAM_BASE + 0x13000)
#define VQ_DATA  (RAM_BASE + 0x20000)
#define VQ_STAT  (RAM_BASE + 0x14000)
#define VQ_NUM   8
#define V(off)   (VIRT_VIRTIO_BASE + (off))
#define DISK_SECTORS 128

struct irq_rec {
	_Atomic int level;
	_Atomic int changes;
};

static void rec_line(void *arg, unsigned int src, bool level)
{
	struct irq_rec *r = arg;

	assert_int_equal(src, VIRT_VIRTIO_IRQ);
	atomic_store(&r->level, level);
	atomic_fetch_add(&r->changes, 1);
}

static void put_desc(struct vt *t, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct { uint64_t addr; uint32_t len; uint16_t flags, next; } d = { addr, len, flags, next };

	assert_int_equal(vmm_write_guest(t->vmm, VQ_DESC + 16 * i, &d, 16), 0);
}

static uint16_t avail_idx;

/* One request: header (desc 0), data (desc 1, len bytes, device-writable
 * if in), status (desc 2). Returns the status byte. */
static uint8_t blk_req(struct vt *t, struct virtio_mmio *d, uint32_t type, uint64_t sector,
		       uint32_t len, bool in)
{
	struct { uint32_t type, reserved; uint64_t sector; } hdr = { type, 0, sector };
	uint8_t status = 0xff;
	uint16_t head = (uint16_t)(avail_idx % 2 ? 3 : 0);     /* alternate chains */
	uint16_t used_idx;
	unsigned int n = len ? 3 : 2;

	assert_int_equal(vmm_write_guest(t->vmm, VQ_HDR, &hdr, sizeof(hdr)), 0);
	assert_int_equal(vmm_write_guest(t->vmm, VQ_STAT, &status, 1), 0);
	put_desc(t, head, VQ_HDR, sizeof(hdr), 1, (uint16_t)(head + 1));
	if (len)
		put_desc(t, head + 1u, VQ_DATA, len, (uint16_t)(1 | (in ? 2 : 0)),
			 (uint16_t)(head + 2));
	put_desc(t, head + n - 1, VQ_STAT, 1, 2, 0);
	assert_int_equal(vmm_write_guest(t->vmm, VQ_AVAIL + 4 + 2 * (avail_idx % VQ_NUM), &head,
					 2), 0);
	avail_idx++;
	assert_int_equal(vmm_write_guest(t->vmm, VQ_AVAIL + 2, &avail_idx, 2), 0);
	wr(virtio_mmio, d, V(0x050), 4, 0);
	assert_int_equal(vmm_read_guest(t->vmm, VQ_USED + 2, &used_idx, 2), 0);
	assert_int_equal(used_idx, avail_idx);
	{
		uint32_t elem[2];

		assert_int_equal(vmm_read_guest(t->vmm, VQ_USED + 4 + 8 * ((used_idx - 1) % VQ_NUM),
						elem, 8), 0);
		assert_int_equal(elem[0], head);
	}
	assert_int_equal(vmm_read_guest(t->vmm, VQ_STAT, &status, 1), 0);
	return status;
}

static void test_virtio_blk(void **state)
{
	char path[] = "/tmp/tandem-virtio-XXXXXX";
	struct irq_rec rec = { 0 };
	struct virtio_mmio *d, *empty;
	struct virtio_blk_stats st;
	uint8_t disk[DISK_SECTORS * 512], buf[4096];
	struct vt t;
	int fd;

	vt_create(&t);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	for (unsigned int i = 0; i < sizeof(disk); i++)
		disk[i] = (uint8_t)(i * 7 + i / 512);
	assert_int_equal(pwrite(fd, disk, sizeof(disk), 0), (ssize_t)sizeof(disk));
	assert_int_equal(virtio_mmio_create(t.vmm, fd, false, rec_line, &rec, VIRT_VIRTIO_IRQ,
					    &d), 0);
	assert_int_equal(virtio_mmio_create(t.vmm, -1, false, rec_line, &rec, VIRT_VIRTIO_IRQ,
					    &empty), 0);

	/* Identification; an empty slot is device 0. */
	assert_int_equal(rd(virtio_mmio, d, V(0x000), 4), VIRTIO_MMIO_MAGIC);
	assert_int_equal(rd(virtio_mmio, d, V(0x004), 4), 2);
	assert_int_equal(rd(virtio_mmio, d, V(0x008), 4), VIRTIO_ID_BLOCK);
	assert_int_equal(rd(virtio_mmio, d, V(0x00c), 4), VIRTIO_VENDOR_QEMU);
	assert_int_equal(rd(virtio_mmio, empty, V(0x000), 4), VIRTIO_MMIO_MAGIC);
	assert_int_equal(rd(virtio_mmio, empty, V(0x008), 4), 0);

	/* Initialization (virtio 3.1.1): reset, ACK, DRIVER, features. */
	wr(virtio_mmio, d, V(0x070), 4, 0);
	wr(virtio_mmio, d, V(0x070), 4, 1);
	wr(virtio_mmio, d, V(0x070), 4, 3);
	wr(virtio_mmio, d, V(0x014), 4, 1);
	assert_true(rd(virtio_mmio, d, V(0x010), 4) & 1);       /* VERSION_1 (bit 32) */
	wr(virtio_mmio, d, V(0x014), 4, 0);
	assert_true(rd(virtio_mmio, d, V(0x010), 4) & 1u << 9); /* FLUSH */
	/* FEATURES_OK without VERSION_1 is refused. */
	wr(virtio_mmio, d, V(0x070), 4, 0xb);
	assert_false(rd(virtio_mmio, d, V(0x070), 4) & 8);
	wr(virtio_mmio, d, V(0x024), 4, 1);
	wr(virtio_mmio, d, V(0x020), 4, 1);
	wr(virtio_mmio, d, V(0x024), 4, 0);
	wr(virtio_mmio, d, V(0x020), 4, 1u << 9);
	wr(virtio_mmio, d, V(0x070), 4, 0xb);
	assert_true(rd(virtio_mmio, d, V(0x070), 4) & 8);
	/* Config: capacity in sectors, byte by byte too. */
	assert_int_equal(rd(virtio_mmio, d, V(0x100), 8), DISK_SECTORS);
	assert_int_equal(rd(virtio_mmio, d, V(0x100), 1), DISK_SECTORS);
	assert_int_equal(rd(virtio_mmio, d, V(0x104), 4), 0);
	/* The queue. */
	wr(virtio_mmio, d, V(0x030), 4, 0);
	assert_int_equal(rd(virtio_mmio, d, V(0x034), 4), VIRTQ_MAX_SIZE);
	assert_int_equal(rd(virtio_mmio, d, V(0x044), 4), 0);
	wr(virtio_mmio, d, V(0x038), 4, VQ_NUM);
	wr(virtio_mmio, d, V(0x080), 4, (uint32_t)VQ_DESC);
	wr(virtio_mmio, d, V(0x084), 4, (uint32_t)(VQ_DESC >> 32));
	wr(virtio_mmio, d, V(0x090), 4, (uint32_t)VQ_AVAIL);
	wr(virtio_mmio, d, V(0x094), 4, 0);
	wr(virtio_mmio, d, V(0x0a0), 4, (uint32_t)VQ_USED);
	wr(virtio_mmio, d, V(0x0a4), 4, 0);
	wr(virtio_mmio, d, V(0x044), 4, 1);
	assert_int_equal(rd(virtio_mmio, d, V(0x044), 4), 1);
	wr(virtio_mmio, d, V(0x070), 4, 0xf);
	avail_idx = 0;

	/* Read sectors 3..4. */
	assert_int_equal(blk_req(&t, d, 0, 3, 1024, true), 0);
	assert_int_equal(vmm_read_guest(t.vmm, VQ_DATA, buf, 1024), 0);
	assert_memory_equal(buf, disk + 3 * 512, 1024);
	assert_int_equal(atomic_load(&rec.level), 1);
	assert_int_equal(rd(virtio_mmio, d, V(0x060), 4), 1);
	wr(virtio_mmio, d, V(0x064), 4, 1);
	assert_int_equal(atomic_load(&rec.level), 0);
	assert_int_equal(rd(virtio_mmio, d, V(0x060), 4), 0);

	/* Write sector 10 (4K); the file has it. */
	for (unsigned int i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(0xa5 ^ i);
	assert_int_equal(vmm_write_guest(t.vmm, VQ_DATA, buf, sizeof(buf)), 0);
	assert_int_equal(blk_req(&t, d, 1, 10, 4096, false), 0);
	assert_int_equal(pread(fd, disk, 4096, 10 * 512), 4096);
	assert_memory_equal(disk, buf, 4096);

	/* Past the end: IOERR, file untouched. */
	assert_int_equal(blk_req(&t, d, 1, DISK_SECTORS - 1, 1024, false), 1);
	/* Flush, get-id, an unknown type. */
	assert_int_equal(blk_req(&t, d, 4, 0, 0, false), 0);
	assert_int_equal(blk_req(&t, d, 8, 0, 20, true), 0);
	assert_int_equal(vmm_read_guest(t.vmm, VQ_DATA, buf, 20), 0);
	assert_memory_equal(buf, "tandem-virtio-blk", 18);
	assert_int_equal(blk_req(&t, d, 99, 0, 0, false), 2);

	virtio_blk_get_stats(d, &st);
	assert_int_equal(st.reads, 1);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.get_ids, 1);
	assert_int_equal(st.errors, 2);

	/* Reset (the driver's status write of 0, or the machine's) drops the
	 * queue and the interrupt. */
	assert_int_equal(atomic_load(&rec.level), 1);
	virtio_mmio_reset(d);
	assert_int_equal(atomic_load(&rec.level), 0);
	assert_int_equal(rd(virtio_mmio, d, V(0x070), 4), 0);
	wr(virtio_mmio, d, V(0x070), 4, 0);
	assert_int_equal(rd(virtio_mmio, d, V(0x044), 4), 0);
	assert_int_equal(rd(virtio_mmio, d, V(0x060), 4), 0);
	assert_int_equal(atomic_load(&rec.level), 0);

	virtio_mmio_destroy(d);
	virtio_mmio_destroy(empty);
	vt_destroy(&t);
}

/* ==== device tree ========================================================= */

static const void *prop(const void *fdt, const char *path, const char *name, int *len)
{
	int off = fdt_path_offset(fdt, path);

	assert_true(off >= 0);
	return fdt_getprop(fdt, off, name, len);
}

static void test_fdt(void **state)
{
	struct virt_fdt_config fc = { .nr_harts = 2, .ram_base = RAM_BASE, .ram_size = 128 << 20,
				      .bootargs = "console=ttyS0", .bootdelay = -1,
				      .nr_virtio = 8 };
	static char buf[65536];
	const fdt32_t *c;
	const char *s;
	int len, size;

	size = virt_fdt_build(&fc, buf, sizeof(buf));
	assert_true(size > 0);
	assert_int_equal(fdt_check_header(buf), 0);
	assert_int_equal(virt_fdt_build(&fc, buf, 256), -ENOSPC);
	size = virt_fdt_build(&fc, buf, sizeof(buf));

	s = prop(buf, "/cpus/cpu@1", "riscv,isa", &len);
	assert_string_equal(s, "rv64imac_zicsr_zifencei");
	assert_string_equal(prop(buf, "/cpus/cpu@0", "mmu-type", &len), "riscv,sv48");
	assert_string_equal(prop(buf, "/cpus/cpu@0/interrupt-controller", "compatible", &len),
			    "riscv,cpu-intc");
	c = prop(buf, "/cpus", "timebase-frequency", &len);
	assert_int_equal(fdt32_to_cpu(*c), 10000000);
	c = prop(buf, "/memory@80000000", "reg", &len);
	assert_int_equal(len, 16);
	assert_int_equal(fdt32_to_cpu(c[1]), 0x80000000u);
	assert_int_equal(fdt32_to_cpu(c[3]), 128u << 20);
	c = prop(buf, "/soc/plic@c000000", "riscv,ndev", &len);
	assert_int_equal(fdt32_to_cpu(*c), 0x5f);
	c = prop(buf, "/soc/plic@c000000", "interrupts-extended", &len);
	assert_int_equal(len, 2 * 4 * 4);
	assert_int_equal(fdt32_to_cpu(c[1]), 11);
	assert_int_equal(fdt32_to_cpu(c[3]), 9);
	/* The phandles point at the cpus' interrupt controllers. */
	assert_int_equal(fdt_node_offset_by_phandle(buf, fdt32_to_cpu(c[4])),
			 fdt_path_offset(buf, "/cpus/cpu@1/interrupt-controller"));
	c = prop(buf, "/soc/clint@2000000", "interrupts-extended", &len);
	assert_int_equal(fdt32_to_cpu(c[1]), 3);
	assert_int_equal(fdt32_to_cpu(c[3]), 7);
	assert_true(fdt_node_check_compatible(buf, fdt_path_offset(buf, "/soc/clint@2000000"),
					      "riscv,clint0") == 0);
	assert_true(fdt_node_check_compatible(buf, fdt_path_offset(buf, "/soc/test@100000"),
					      "sifive,test0") == 0);
	assert_string_equal(prop(buf, "/soc/serial@10000000", "compatible", &len), "ns16550a");
	c = prop(buf, "/soc/serial@10000000", "interrupts", &len);
	assert_int_equal(fdt32_to_cpu(*c), 10);
	c = prop(buf, "/soc/virtio_mmio@10008000", "interrupts", &len);
	assert_int_equal(fdt32_to_cpu(*c), 8);
	c = prop(buf, "/poweroff", "value", &len);
	assert_int_equal(fdt32_to_cpu(*c), 0x5555);
	c = prop(buf, "/reboot", "regmap", &len);
	assert_int_equal(fdt_node_offset_by_phandle(buf, fdt32_to_cpu(*c)),
			 fdt_path_offset(buf, "/soc/test@100000"));
	assert_string_equal(prop(buf, "/chosen", "stdout-path", &len), "/soc/serial@10000000");
	assert_string_equal(prop(buf, "/chosen", "bootargs", &len), "console=ttyS0");
	c = prop(buf, "/config", "bootdelay", &len);
	assert_int_equal((int32_t)fdt32_to_cpu(*c), -1);
	assert_int_equal(fdt_path_offset(buf, "/cpus/cpu-map/cluster0/core1") >= 0, 1);

	/* dtc reads it back. */
	if (system("command -v dtc >/dev/null 2>&1") == 0) {
		char path[] = "/tmp/tandem-dtb-XXXXXX", cmd[256];
		int fd = mkstemp(path);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, buf, (size_t)size), size);
		close(fd);
		snprintf(cmd, sizeof(cmd),
			 "dtc -q -I dtb -O dts %s 2>/dev/null | grep -q 'riscv,plic0'", path);
		assert_int_equal(system(cmd), 0);
		unlink(path);
	}
}

/* ==== loader ============================================================= */

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/*
 * A minimal RISC-V ELF: one PT_LOAD (code 16 bytes from the file, memsz 64:
 * bss) at paddr, and a symbol table with tohost and fromhost.
 */
struct mini_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint8_t code[16];
	Elf64_Sym sym[3];
	char strtab[24];
	Elf64_Shdr sh[3];
};

static void make_elf(struct mini_elf *e, uint64_t paddr, uint16_t machine, uint8_t cls)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
	e->eh.e_ident[EI_CLASS] = cls;
	e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh.e_ident[EI_VERSION] = EV_CURRENT;
	e->eh.e_type = ET_EXEC;
	e->eh.e_machine = machine;
	e->eh.e_version = EV_CURRENT;
	e->eh.e_entry = paddr + 4;
	e->eh.e_phoff = offsetof(struct mini_elf, ph);
	e->eh.e_shoff = offsetof(struct mini_elf, sh);
	e->eh.e_ehsize = sizeof(Elf64_Ehdr);
	e->eh.e_phentsize = sizeof(Elf64_Phdr);
	e->eh.e_phnum = 1;
	e->eh.e_shentsize = sizeof(Elf64_Shdr);
	e->eh.e_shnum = 3;
	e->ph.p_type = PT_LOAD;
	e->ph.p_offset = offsetof(struct mini_elf, code);
	e->ph.p_vaddr = 0xffffffff00000000ULL;         /* loaded by paddr */
	e->ph.p_paddr = paddr;
	e->ph.p_filesz = 16;
	e->ph.p_memsz = 64;
	memset(e->code, 0x13, sizeof(e->code));
	memcpy(e->strtab, "\0tohost\0fromhost", 17);
	e->sym[1].st_name = 1;
	e->sym[1].st_value = paddr + 0x1000;
	e->sym[2].st_name = 8;
	e->sym[2].st_value = paddr + 0x1040;
	e->sh[1].sh_type = SHT_SYMTAB;
	e->sh[1].sh_offset = offsetof(struct mini_elf, sym);
	e->sh[1].sh_size = sizeof(e->sym);
	e->sh[1].sh_entsize = sizeof(Elf64_Sym);
	e->sh[1].sh_link = 2;
	e->sh[2].sh_type = SHT_STRTAB;
	e->sh[2].sh_offset = offsetof(struct mini_elf, strtab);
	e->sh[2].sh_size = sizeof(e->strtab);
}

static void test_loader(void **state)
{
	const char *p = "/tmp/tandem-test-loader.img";
	struct virt_region dtb = { RAM_BASE + RAM_SIZE - (2 << 20), RAM_BASE + RAM_SIZE, "dtb" };
	struct virt_image img;
	struct mini_elf e;
	uint8_t buf[64], junk[64];
	char err[256];
	struct vt t;

	vt_create(&t);
	/* Dirty the bss first: the loader must zero it. */
	memset(junk, 0xee, sizeof(junk));
	assert_int_equal(vmm_write_guest(t.vmm, RAM_BASE + 0x100000, junk, sizeof(junk)), 0);

	make_elf(&e, RAM_BASE + 0x100000, EM_RISCV, ELFCLASS64);
	write_file(p, &e, sizeof(e));
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, &dtb, 1, &img,
					 err, sizeof(err)), 0);
	assert_true(img.elf);
	assert_int_equal(img.entry, RAM_BASE + 0x100004);
	assert_int_equal(img.lo, RAM_BASE + 0x100000);
	assert_int_equal(img.hi, RAM_BASE + 0x100040);
	assert_true(img.has_htif);
	assert_int_equal(img.tohost, RAM_BASE + 0x101000);
	assert_int_equal(img.fromhost, RAM_BASE + 0x101040);
	assert_int_equal(vmm_read_guest(t.vmm, RAM_BASE + 0x100000, buf, 64), 0);
	assert_memory_equal(buf, e.code, 16);
	for (unsigned int i = 16; i < 64; i++)
		assert_int_equal(buf[i], 0);

	/* Overlap with a taken region. */
	{
		struct virt_region taken[2] = { dtb, { RAM_BASE + 0x100020, RAM_BASE + 0x200000,
						       "bios" } };

		assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, taken, 2,
						 &img, err, sizeof(err)), -EEXIST);
		assert_non_null(strstr(err, "overlaps bios"));
	}
	/* Outside RAM. */
	make_elf(&e, RAM_BASE - 0x1000, EM_RISCV, ELFCLASS64);
	write_file(p, &e, sizeof(e));
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, &dtb, 1, &img,
					 err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "outside guest RAM"));
	/* Wrong machine, wrong class. */
	make_elf(&e, RAM_BASE, EM_X86_64, ELFCLASS64);
	write_file(p, &e, sizeof(e));
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, &dtb, 1, &img,
					 err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not RISC-V"));
	make_elf(&e, RAM_BASE, EM_RISCV, ELFCLASS32);
	write_file(p, &e, sizeof(e));
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, &dtb, 1, &img,
					 err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a 64-bit ELF"));

	/* Raw: loaded at raw_addr; a raw image into the DTB's room overlaps. */
	write_file(p, "raw image!", 10);
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE + 0x200000, RAM_BASE, RAM_SIZE, &dtb, 1,
					 &img, err, sizeof(err)), 0);
	assert_false(img.elf);
	assert_int_equal(img.entry, RAM_BASE + 0x200000);
	assert_int_equal(vmm_read_guest(t.vmm, RAM_BASE + 0x200000, buf, 10), 0);
	assert_memory_equal(buf, "raw image!", 10);
	assert_int_equal(virt_load_image(t.vmm, p, dtb.lo, RAM_BASE, RAM_SIZE, &dtb, 1, &img, err,
					 sizeof(err)), -EEXIST);
	/* Too big for RAM. */
	assert_int_equal(truncate(p, (off_t)RAM_SIZE + 4096), 0);
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, &dtb, 1, &img,
					 err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "more than"));
	assert_int_equal(truncate(p, (off_t)RAM_SIZE - (1 << 20)), 0);
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, &dtb, 1, &img,
					 err, sizeof(err)), -EEXIST);       /* reaches the DTB */
	/* Missing, empty. */
	unlink(p);
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, &dtb, 1, &img,
					 err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "No such file"));
	write_file(p, "", 0);
	assert_int_equal(virt_load_image(t.vmm, p, RAM_BASE, RAM_BASE, RAM_SIZE, &dtb, 1, &img,
					 err, sizeof(err)), -EINVAL);
	unlink(p);
	vt_destroy(&t);
}

/* ==== the machine ========================================================= */

static void test_virt_create_errors(void **state)
{
	struct host_config hc = { .ram_bytes = 64ULL << 20 };
	const char *bios = "/tmp/tandem-test-bios.img", *kern = "/tmp/tandem-test-kernel.img";
	struct virt_config cfg;
	struct host *host;
	struct virt *vm = NULL;
	char err[256];
	static uint8_t big[3 << 20];

	assert_int_equal(host_create(&hc, &host), 0);
	virt_config_default(&cfg);
	cfg.ram_size = 16 << 20;

	/* Nothing to run. */
	assert_int_equal(virt_create(host, &cfg, &vm, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nothing to run"));
	/* A missing bios. */
	cfg.bios = "/nonexistent/fw.elf";
	assert_int_equal(virt_create(host, &cfg, &vm, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/fw.elf"));
	/* Bad sizes. */
	cfg.ram_size = (16 << 20) + 4096;
	assert_int_equal(virt_create(host, &cfg, &vm, err, sizeof(err)), -EINVAL);
	cfg.ram_size = 16 << 20;
	cfg.smp = 0;
	assert_int_equal(virt_create(host, &cfg, &vm, err, sizeof(err)), -EINVAL);
	cfg.smp = 1;
	/* A raw bios of 3 MiB overlaps the raw kernel at +2 MiB. */
	write_file(bios, big, sizeof(big));
	write_file(kern, "kernel", 6);
	cfg.bios = bios;
	cfg.kernel = kern;
	assert_int_equal(virt_create(host, &cfg, &vm, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "overlaps"));
	/* A drive that cannot be opened. */
	write_file(bios, "bios", 4);
	cfg.drive = "/nonexistent/disk.img";
	assert_int_equal(virt_create(host, &cfg, &vm, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "--drive"));
	cfg.drive = NULL;

	/* A machine that builds: without the hart (stub) it stops at the
	 * harts; with it, check what QEMU's boot would see. */
	{
		int ret = virt_create(host, &cfg, &vm, err, sizeof(err));

		if (ret == -ENOSYS) {
			print_message("  (no RISC-V hart linked: machine build checked up to the harts)\n");
		} else {
			uint64_t info[6];
			char magic[8];

			assert_int_equal(ret, 0);
			assert_int_equal(virt_dtb_addr(vm), 0x80000000ULL + (14 << 20));
			assert_int_equal(vmm_read_guest(virt_vmm(vm), 0x1040, info, sizeof(info)), 0);
			assert_int_equal(info[0], 0x4942534f);
			assert_int_equal(info[1], 2);
			assert_int_equal(info[2], 0x80200000);
			assert_int_equal(info[3], 1);
			assert_int_equal(vmm_read_guest(virt_vmm(vm), virt_dtb_addr(vm), magic, 4), 0);
			assert_int_equal(fdt_magic(magic), FDT_MAGIC);
			/* An exit from outside ends a wait. */
			assert_int_equal(virt_wait(vm, 1000000), -ETIMEDOUT);
			virt_request_exit(vm, VIRT_EXIT_FAIL, 3);
			assert_int_equal(virt_wait(vm, 0), 3);
			assert_int_equal(virt_exit_reason(vm), VIRT_EXIT_FAIL);
			virt_destroy(vm);
		}
	}
	unlink(bios);
	unlink(kern);
	assert_int_equal(host_frames_in_use(host), 0);
	assert_int_equal(host_destroy(host), 0);
}

/*
 * A raw M-mode program (riscv64 as, hand-checked): counts its boots at
 * RAM+1M, then resets through the test device until it has booted
 * RAM+1M+8 times (0: for ever), then powers off.
 */
static const uint32_t reset_prog[] = {
	0x001002b7,     /* lui   t0, 0x100          t0 = test device */
	0x00007337,     /* lui   t1, 0x7 */
	0x7773031b,     /* addiw t1, t1, 0x777      t1 = 0x7777 */
	0x00100393,     /* li    t2, 1 */
	0x01f39393,     /* slli  t2, t2, 31 */
	0x00100e37,     /* lui   t3, 0x100 */
	0x01c383b3,     /* add   t2, t2, t3         t2 = RAM + 1M */
	0x0003be83,     /* ld    t4, 0(t2) */
	0x001e8e93,     /* addi  t4, t4, 1 */
	0x01d3b023,     /* sd    t4, 0(t2)          boots++ */
	0x0083bf03,     /* ld    t5, 8(t2)          limit */
	0x000f0463,     /* beqz  t5, reset */
	0x01df4663,     /* blt   t5, t4, pass */
	0x0062a023,     /* reset: sw t1, 0(t0) */
	0x0000006f,     /* j     . */
	0x00005337,     /* pass: lui t1, 0x5 */
	0x5553031b,     /* addiw t1, t1, 0x555      t1 = 0x5555 */
	0x0062a023,     /* sw    t1, 0(t0) */
	0x0000006f,     /* j     . */
};
#define RESET_BOOTS (0x80000000ULL + (1 << 20))

static struct virt *reset_vm(struct host *host, const char *kern, unsigned int smp,
			     uint64_t limit)
{
	struct virt_config cfg;
	struct virt *vm;
	char err[256];
	int ret;

	virt_config_default(&cfg);
	cfg.ram_size = 16 << 20;
	cfg.smp = smp;
	cfg.kernel = kern;
	ret = virt_create(host, &cfg, &vm, err, sizeof(err));
	if (ret == -ENOSYS)
		return NULL;
	assert_int_equal(ret, 0);
	assert_int_equal(vmm_write_guest(virt_vmm(vm), RESET_BOOTS + 8, &limit, 8), 0);
	assert_int_equal(virt_start(vm), 0);
	return vm;
}

static uint64_t reset_boots(struct virt *vm)
{
	uint64_t n;

	assert_int_equal(vmm_read_guest(virt_vmm(vm), RESET_BOOTS, &n, 8), 0);
	return n;
}

/* The machine's reset, through virt_wait: the program runs again (its
 * counter, in RAM outside the image, survives), every reset is counted;
 * virt_wait's timeout counts from the call across resets; a reset nobody
 * waits for is dropped by virt_stop. */
static void test_virt_reset(void **state)
{
	struct host_config hc = { .ram_bytes = 64ULL << 20 };
	char kern[64];
	struct virt_stats st;
	struct host *host;
	struct virt *vm;
	uint64_t t0;

	snprintf(kern, sizeof(kern), "/tmp/tandem-test-reset-%d.img", (int)getpid());
	write_file(kern, reset_prog, sizeof(reset_prog));
	assert_int_equal(host_create(&hc, &host), 0);

	/* Three boots, two resets. */
	vm = reset_vm(host, kern, 1, 2);
	if (!vm) {
		print_message("  (no RISC-V hart linked: skipped)\n");
		goto out;
	}
	assert_int_equal(virt_wait(vm, 20ULL * 1000000000), 0);
	assert_int_equal(virt_exit_reason(vm), VIRT_EXIT_POWEROFF);
	virt_stop(vm);                  /* the harts' stats, exact */
	virt_get_stats(vm, &st);
	assert_int_equal(st.resets, 2);
	assert_int_equal(reset_boots(vm), 3);
	virt_destroy(vm);

	/* Resetting for ever, two harts asking at once: the timeout still
	 * ends the wait. */
	vm = reset_vm(host, kern, 2, 0);
	t0 = ms_now();
	assert_int_equal(virt_wait(vm, 300ULL * 1000000), -ETIMEDOUT);
	assert_true(ms_now() - t0 < 5000);
	assert_int_equal(virt_exit_reason(vm), VIRT_RUNNING);
	virt_stop(vm);
	virt_get_stats(vm, &st);
	assert_true(st.resets >= 1);
	virt_destroy(vm);

	/* Nobody waits: the reset is dropped, the machine stops. */
	vm = reset_vm(host, kern, 1, 0);
	t0 = ms_now();
	while (reset_boots(vm) < 1) {
		assert_true(ms_now() - t0 < 10000);
		sleep_ms(1);
	}
	sleep_ms(20);
	virt_stop(vm);
	assert_int_equal(virt_exit_reason(vm), VIRT_EXIT_USER);
	virt_get_stats(vm, &st);
	assert_int_equal(st.resets, 0);
	assert_int_equal(reset_boots(vm), 1);
	virt_destroy(vm);
out:
	unlink(kern);
	assert_int_equal(host_frames_in_use(host), 0);
	assert_int_equal(host_destroy(host), 0);
}

/* ==== CFI flash ============================================================ */

/* The CFI query, ID, program (clears bits only), erase, status and reset,
 * in both banks. */
static void test_pflash(void **state)
{
	const gpa_t b0 = VIRT_FLASH_BASE, b1 = VIRT_FLASH_BASE + VIRT_FLASH_BANK_SIZE;
	struct pflash *f;
	uint64_t programs, erases;

	assert_int_equal(pflash_create(&f), 0);
	/* Erased: all ones, in any width. */
	assert_int_equal(rd(pflash_mmio, f, b0, 4), 0xffffffffu);
	assert_int_equal(rd(pflash_mmio, f, b1 + 0x123456, 8), ~0ULL);
	/* CFI query at word 0x55: "QRY" at words 0x10..0x12, Intel command set,
	 * 32 MiB, one region of 128 blocks of 256 KiB. */
	wr(pflash_mmio, f, b0 + 0x55 * 4, 4, 0x98);
	assert_int_equal(rd(pflash_mmio, f, b0 + 0x10 * 4, 4), 'Q');
	assert_int_equal(rd(pflash_mmio, f, b0 + 0x11 * 4, 1), 'R');
	assert_int_equal(rd(pflash_mmio, f, b0 + 0x12 * 4, 4), 'Y');
	assert_int_equal(rd(pflash_mmio, f, b0 + 0x13 * 4, 4), 1);
	assert_int_equal(rd(pflash_mmio, f, b0 + 0x27 * 4, 4), 25);
	assert_int_equal(rd(pflash_mmio, f, b0 + 0x2d * 4, 4), 127);
	assert_int_equal(rd(pflash_mmio, f, b0 + 0x30 * 4, 4), 4);
	/* The other bank is still in read-array mode. */
	assert_int_equal(rd(pflash_mmio, f, b1 + 0x40, 4), 0xffffffffu);
	/* ID: Intel 0x89. */
	wr(pflash_mmio, f, b0, 4, 0x90);
	assert_int_equal(rd(pflash_mmio, f, b0, 4), 0x89);
	wr(pflash_mmio, f, b0, 4, 0xff);
	/* Program: status ready, data ANDed into the erased word. */
	wr(pflash_mmio, f, b1 + 0x1000, 4, 0x40);
	wr(pflash_mmio, f, b1 + 0x1000, 4, 0x12345678);
	assert_int_equal(rd(pflash_mmio, f, b1 + 0x1000, 4) & 0x80, 0x80);  /* status */
	wr(pflash_mmio, f, b1, 4, 0xff);
	assert_int_equal(rd(pflash_mmio, f, b1 + 0x1000, 4), 0x12345678);
	wr(pflash_mmio, f, b1 + 0x1000, 4, 0x40);
	wr(pflash_mmio, f, b1 + 0x1000, 4, 0xffff0000);                     /* bits only clear */
	wr(pflash_mmio, f, b1, 4, 0xff);
	assert_int_equal(rd(pflash_mmio, f, b1 + 0x1000, 4), 0x12340000);
	/* Erase the block: ones again, the next block untouched. */
	wr(pflash_mmio, f, b1 + 0x40000, 4, 0x40);
	wr(pflash_mmio, f, b1 + 0x40000, 4, 0xa5a5a5a5);
	wr(pflash_mmio, f, b1 + 0x1000, 4, 0x20);
	wr(pflash_mmio, f, b1 + 0x1000, 4, 0xd0);
	wr(pflash_mmio, f, b1, 4, 0xff);
	assert_int_equal(rd(pflash_mmio, f, b1 + 0x1000, 4), 0xffffffffu);
	assert_int_equal(rd(pflash_mmio, f, b1 + 0x40000, 4), 0xa5a5a5a5u);
	/* An erase not confirmed is a sequence error in the status. */
	wr(pflash_mmio, f, b0, 4, 0x20);
	wr(pflash_mmio, f, b0, 4, 0x00);
	assert_int_equal(rd(pflash_mmio, f, b0, 4) & 0x30, 0x30);
	wr(pflash_mmio, f, b0, 4, 0x50);                                    /* clear status */
	assert_int_equal(rd(pflash_mmio, f, b0, 4), 0x80);
	/* Reset: read-array mode, contents kept. */
	wr(pflash_mmio, f, b1, 4, 0x98);
	pflash_reset(f);
	assert_int_equal(rd(pflash_mmio, f, b1 + 0x40000, 4), 0xa5a5a5a5u);
	pflash_get_stats(f, &programs, &erases);
	assert_int_equal(programs, 3);
	assert_int_equal(erases, 1);
	pflash_destroy(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plic_claim_complete),
		cmocka_unit_test(test_pflash),
		cmocka_unit_test(test_clint),
		cmocka_unit_test(test_uart),
		cmocka_unit_test(test_uart_escape),
		cmocka_unit_test(test_plic_reset),
		cmocka_unit_test(test_clint_reset),
		cmocka_unit_test(test_uart_reset),
		cmocka_unit_test(test_virtio_blk),
		cmocka_unit_test(test_fdt),
		cmocka_unit_test(test_loader),
		cmocka_unit_test(test_virt_create_errors),
		cmocka_unit_test(test_virt_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
