/* SPDX-License-Identifier: MIT */
/*
 * uart.c - an ns16550a UART (byte registers, reg-shift 0), as QEMU's
 * virt machine has at 0x1000_0000.
 *
 * Transmit is immediate: a THR write goes to out_fd on the accessing
 * thread, so THRE and TEMT always read set. Receive: a reader thread
 * moves bytes from in_fd into a FIFO; RBR pops it, LSR.DR says it is not
 * empty. The interrupt line (to the PLIC) is high when IIR reports a
 * cause: received data with IER.ERBFI, else "THR empty" with IER.ETBEI.
 * The THR-empty cause, as on the 16550, is raised when ETBEI is set or a
 * byte has been sent, and cleared by an IIR read that reports it or a THR
 * write (which at once raises it again: the byte is gone).
 *
 * Locking: u->lock covers the registers and the FIFO; the line is driven
 * under it (the PLIC's lock nests inside). The reader thread waits on
 * u->room when the FIFO is full (the guest reads slower than the input
 * comes: no byte is dropped).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vmm/virt_dev.h"

#define UART_RBR 0      /* read; THR on write; DLL with DLAB */
#define UART_IER 1      /* DLM with DLAB */
#define UART_IIR 2      /* read; FCR on write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_ERBFI 0x01
#define IER_ETBEI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI  0x02
#define IIR_RDI   0x04
#define IIR_FIFO  0xc0
#define LCR_DLAB  0x80
#define LSR_DR    0x01
#define LSR_THRE  0x20
#define LSR_TEMT  0x40
#define MCR_LOOP  0x10
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

#define CTRL_A 0x01

struct uart {
	struct uart_config cfg;
	pthread_mutex_t lock;
	pthread_cond_t room;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thr_ipending;
	bool line;
	uint8_t fifo[UART_FIFO_SIZE];
	unsigned int head, count;
	bool escape_seen;               /* reader thread only */
	bool stopping;
	bool started;
	int stop_pipe[2];
	pthread_t reader;
	_Atomic uint64_t tx, rx;
};

/* The 16550's reset values. Called with u->lock held, or before anyone
 * else sees u. */
static void uart_reset_regs(struct uart *u)
{
	u->ier = u->lcr = u->mcr = u->scr = u->dlm = u->fcr = 0;
	u->dll = 0x0c;          /* 9600 baud at 1.8432 MHz */
	u->thr_ipending = false;
	u->head = u->count = 0;
}

int uart_create(const struct uart_config *cfg, struct uart **out)
{
	struct uart *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->cfg = *cfg;
	u->stop_pipe[0] = u->stop_pipe[1] = -1;
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->room, NULL);
	uart_reset_regs(u);
	*out = u;
	return 0;
}

static uint8_t uart_iir_locked(struct uart *u)
{
	uint8_t fifo = u->fcr & FCR_ENABLE ? IIR_FIFO : 0;

	if ((u->ier & IER_ERBFI) && u->count)
		return IIR_RDI | fifo;
	if ((u->ier & IER_ETBEI) && u->thr_ipending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

/* Drive the line from IIR. Called with u->lock held. */
static void uart_update_locked(struct uart *u)
{
	bool level = !(uart_iir_locked(u) & IIR_NO_INT);

	if (level != u->line) {
		u->line = level;
		if (u->cfg.irq_line)
			u->cfg.irq_line(u->cfg.irq_arg, u->cfg.irq, level);
	}
}

/* Append to the FIFO what fits; called with u->lock held. */
static size_t uart_push_locked(struct uart *u, const uint8_t *p, size_t len)
{
	size_t n = 0;

	while (n < len && u->count < UART_FIFO_SIZE) {
		u->fifo[(u->head + u->count) % UART_FIFO_SIZE] = p[n++];
		u->count++;
	}
	if (n) {
		atomic_fetch_add(&u->rx, n);
		uart_update_locked(u);
	}
	return n;
}

size_t uart_receive(struct uart *u, const void *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&u->lock);
	n = uart_push_locked(u, buf, len);
	pthread_mutex_unlock(&u->lock);
	return n;
}

void uart_reset(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	uart_reset_regs(u);
	pthread_cond_broadcast(&u->room);       /* the FIFO is empty */
	uart_update_locked(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_transmit(struct uart *u, uint8_t c)
{
	atomic_fetch_add(&u->tx, 1);
	if (u->mcr & MCR_LOOP) {
		uart_push_locked(u, &c, 1);
		return;
	}
	if (u->cfg.out_fd >= 0) {
		/* A console that went away (EPIPE) loses the byte, not the run. */
		while (write(u->cfg.out_fd, &c, 1) < 0 && errno == EINTR)
			;
	}
}

void uart_mmio(void *opaque, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
	       uint64_t *val)
{
	struct uart *u = opaque;
	unsigned int reg = (unsigned int)(gpa - VIRT_UART_BASE);
	uint8_t v = (uint8_t)*val;
	bool dlab;

	if (!write)
		*val = 0;
	if (reg > UART_SCR)
		return;
	pthread_mutex_lock(&u->lock);
	dlab = u->lcr & LCR_DLAB;
	if (write) {
		switch (reg) {
		case UART_RBR:
			if (dlab) {
				u->dll = v;
				break;
			}
			u->thr_ipending = false;
			uart_transmit(u, v);
			u->thr_ipending = true;         /* sent at once */
			break;
		case UART_IER:
			if (dlab) {
				u->dlm = v;
				break;
			}
			if ((v & IER_ETBEI) && !(u->ier & IER_ETBEI))
				u->thr_ipending = true;
			u->ier = v & 0x0f;
			break;
		case UART_IIR:
			u->fcr = v & 0xc9;
			if (v & FCR_CLEAR_RX) {
				u->count = 0;
				pthread_cond_broadcast(&u->room);
			}
			break;
		case UART_LCR:
			u->lcr = v;
			break;
		case UART_MCR:
			u->mcr = v & 0x1f;
			break;
		case UART_SCR:
			u->scr = v;
			break;
		default:
			break;          /* LSR, MSR: read-only */
		}
	} else {
		switch (reg) {
		case UART_RBR:
			if (dlab) {
				*val = u->dll;
			} else if (u->count) {
				*val = u->fifo[u->head];
				u->head = (u->head + 1) % UART_FIFO_SIZE;
				u->count--;
				pthread_cond_broadcast(&u->room);
			}
			break;
		case UART_IER:
			*val = dlab ? u->dlm : u->ier;
			break;
		case UART_IIR: {
			uint8_t iir = uart_iir_locked(u);

			if ((iir & 0x0f) == IIR_THRI)
				u->thr_ipending = false;
			*val = iir;
			break;
		}
		case UART_LCR:
			*val = u->lcr;
			break;
		case UART_MCR:
			*val = u->mcr;
			break;
		case UART_LSR:
			*val = LSR_THRE | LSR_TEMT | (u->count ? LSR_DR : 0);
			break;
		case UART_MSR:
			/* CTS, DSR, DCD: a cable that is always ready; in
			 * loopback, the MCR outputs read back. */
			if (u->mcr & MCR_LOOP)
				*val = (uint64_t)((u->mcr & 0x0c) << 4 | (u->mcr & 0x01) << 5 |
						  (u->mcr & 0x02) << 3);
			else
				*val = 0xb0;
			break;
		case UART_SCR:
			*val = u->scr;
			break;
		}
	}
	uart_update_locked(u);
	pthread_mutex_unlock(&u->lock);
}

/*
 * Filter the escape (Ctrl-A x: quit; Ctrl-A Ctrl-A: one Ctrl-A; Ctrl-A
 * other: dropped with it) in place; returns the bytes left. Reader thread.
 */
static size_t uart_filter_escape(struct uart *u, uint8_t *buf, size_t n, bool *quit)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = buf[i];

		if (u->escape_seen) {
			u->escape_seen = false;
			if (c == 'x' || c == 'X') {
				*quit = true;
				return o;
			}
			if (c == CTRL_A)
				buf[o++] = c;
			continue;
		}
		if (c == CTRL_A) {
			u->escape_seen = true;
			continue;
		}
		buf[o++] = c;
	}
	return o;
}

static void *uart_reader(void *arg)
{
	struct uart *u = arg;
	uint8_t buf[256];

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = u->cfg.in_fd, .events = POLLIN },
			{ .fd = u->stop_pipe[0], .events = POLLIN },
		};
		bool quit = false;
		ssize_t n;
		size_t len, done = 0;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (!pfd[0].revents)
			continue;
		n = read(u->cfg.in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;          /* EOF: the guest sees no more input */
		len = (size_t)n;
		if (u->cfg.escape)
			len = uart_filter_escape(u, buf, len, &quit);
		pthread_mutex_lock(&u->lock);
		while (done < len && !u->stopping) {
			done += uart_push_locked(u, buf + done, len - done);
			if (done < len)
				pthread_cond_wait(&u->room, &u->lock);
		}
		pthread_mutex_unlock(&u->lock);
		if (quit && u->cfg.quit)
			u->cfg.quit(u->cfg.quit_arg);
	}
	return NULL;
}

int uart_start(struct uart *u)
{
	int err;

	if (u->cfg.in_fd < 0 || u->started)
		return 0;
	if (pipe(u->stop_pipe))
		return -errno;
	err = pthread_create(&u->reader, NULL, uart_reader, u);
	if (err) {
		close(u->stop_pipe[0]);
		close(u->stop_pipe[1]);
		u->stop_pipe[0] = u->stop_pipe[1] = -1;
		return -err;
	}
	u->started = true;
	return 0;
}

void uart_destroy(struct uart *u)
{
	if (!u)
		return;
	if (u->started) {
		char c = 0;

		pthread_mutex_lock(&u->lock);
		u->stopping = true;
		pthread_cond_broadcast(&u->room);
		pthread_mutex_unlock(&u->lock);
		while (write(u->stop_pipe[1], &c, 1) < 0 && errno == EINTR)
			;
		pthread_join(u->reader, NULL);
		close(u->stop_pipe[0]);
		close(u->stop_pipe[1]);
	}
	pthread_cond_destroy(&u->room);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

uint64_t uart_tx_bytes(struct uart *u)
{
	return atomic_load(&u->tx);
}

uint64_t uart_rx_bytes(struct uart *u)
{
	return atomic_load(&u->rx);
}
