/* SPDX-License-Identifier: MIT */
/* lib.c - console, exit, trap dispatch and helpers of the test runtime. */
#include "rt.h"

#ifndef TEST_NAME
#define TEST_NAME "unnamed"
#endif

volatile trap_hook_t m_trap_hook, s_trap_hook;
struct trap_rec trap_rec[MAX_HARTS];
uint64_t rt_saved_sp[MAX_HARTS];
unsigned long rt_dtb;
volatile unsigned int check_failures;
extern char run_lower_resume[];

/* ---- console ---- */

static volatile int con_lock;
static volatile int con_owner = -1;

static void lock_con(void)
{
	/* Re-entrant for the owning hart (a trap while printing). */
	if (con_owner == (int)hartid())
		return;
	while (__atomic_exchange_n(&con_lock, 1, __ATOMIC_ACQUIRE))
		;
	con_owner = (int)hartid();
}

static void unlock_con(void)
{
	con_owner = -1;
	__atomic_store_n(&con_lock, 0, __ATOMIC_RELEASE);
}

void putc_raw(char c)
{
	volatile uint8_t *uart = (volatile uint8_t *)UART0_BASE;
	while (!(uart[5] & 0x20))
		;
	uart[0] = (uint8_t)c;
}

void puts_(const char *s)
{
	lock_con();
	while (*s)
		putc_raw(*s++);
	unlock_con();
}

static void put_num(uint64_t v, unsigned int base, int neg, int width, char pad)
{
	char buf[24];
	int n = 0;
	do {
		unsigned int d = (unsigned int)(v % base);
		buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (neg)
		buf[n++] = '-';
	while (n < width--)
		putc_raw(pad);
	while (n)
		putc_raw(buf[--n]);
}

int vprintf(const char *fmt, va_list ap)
{
	lock_con();
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			if (*fmt == '\n')
				putc_raw('\r');
			putc_raw(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			lng = 1;
			fmt++;
		}
		switch (*fmt) {
		case 'd': {
			int64_t v = lng ? va_arg(ap, long) : va_arg(ap, int);
			put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
			put_num(lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int), 10, 0, width, pad);
			break;
		case 'x':
			put_num(lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int), 16, 0, width, pad);
			break;
		case 'p':
			putc_raw('0');
			putc_raw('x');
			put_num((uint64_t)va_arg(ap, void *), 16, 0, 0, ' ');
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s)
				putc_raw(*s++);
			break;
		}
		case 'c':
			putc_raw((char)va_arg(ap, int));
			break;
		case '%':
			putc_raw('%');
			break;
		default:
			putc_raw('?');
			break;
		}
	}
	unlock_con();
	return 0;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	return 0;
}

/* ---- exit ---- */

static void __attribute__((noreturn)) do_exit(uint64_t code, uint32_t dev)
{
	__atomic_store_n(&tohost, (code << 1) | 1, __ATOMIC_SEQ_CST);
	__asm__ volatile("fence rw, rw" ::: "memory");
	*(volatile uint32_t *)TESTDEV_BASE = dev;
	park();
}

void exit_pass(void) { do_exit(0, 0x5555); }

void exit_fail(unsigned int code)
{
	code &= 0xffff;
	if (!code)
		code = 1;
	do_exit(code, 0x3333 | (code << 16));
}

void park(void)
{
	for (;;)
		__asm__ volatile("wfi");
}

void check_failed(const char *file, int line, const char *expr)
{
	printf("FAIL %s:%d: %s\n", file, line, expr);
	check_failures++;
}

/* ---- traps ---- */

void trap_expect(void)
{
	struct trap_rec *r = trap_last();
	r->count = 0;
	r->cause = TRAP_NONE;
	r->tval = 0;
	r->epc = 0;
	__asm__ volatile("" ::: "memory");
	r->armed = 1;
	__asm__ volatile("" ::: "memory");
}

uint64_t trap_end(void)
{
	struct trap_rec *r = trap_last();
	__asm__ volatile("" ::: "memory");
	r->armed = 0;
	__asm__ volatile("" ::: "memory");
	return r->count ? r->cause : TRAP_NONE;
}

static unsigned int insn_len_at(uint64_t pc)
{
	uint16_t lo = *(volatile uint16_t *)pc;
	return (lo & 3) == 3 ? 4 : 2;
}

static int record(struct trap_frame *f, int level, int from)
{
	struct trap_rec *r = trap_last();
	if (!r->armed || r->count)
		return 0;
	r->count++;
	r->cause = f->cause;
	r->tval = f->tval;
	r->epc = f->epc;
	r->status = f->status;
	r->level = level;
	r->from = from;
	if (f->cause & CAUSE_INTR)
		return 1;
	if (f->cause == CAUSE_MISALIGNED_FETCH || f->cause == CAUSE_FETCH_ACCESS ||
	    f->cause == CAUSE_FETCH_PAGE)
		f->epc = f->x[1];       /* as if the called function returned */
	else
		f->epc += insn_len_at(f->epc);
	return 1;
}

static void unexpected(struct trap_frame *f, const char *who)
{
	printf("FAIL unexpected %s trap on hart %lu: cause 0x%lx epc 0x%lx tval 0x%lx status 0x%lx\n",
	       who, hartid(), f->cause, f->epc, f->tval, f->status);
	exit_fail(0xee);
}

void m_trap_dispatch(struct trap_frame *f);
void m_trap_dispatch(struct trap_frame *f)
{
	int from = (int)((f->status >> 11) & 3);
	if ((f->cause == CAUSE_ECALL_U || f->cause == CAUSE_ECALL_S) &&
	    f->x[17] == RT_RETURN_MAGIC) {
		f->x[2] = rt_saved_sp[hartid()];
		f->epc = (uint64_t)run_lower_resume;
		f->status |= MSTATUS_MPP_M;
		return;
	}
	if (m_trap_hook && m_trap_hook(f))
		return;
	if (record(f, PRV_M, from))
		return;
	unexpected(f, "M");
}

void s_trap_dispatch(struct trap_frame *f);
void s_trap_dispatch(struct trap_frame *f)
{
	int from = (f->status & MSTATUS_SPP) ? PRV_S : PRV_U;
	if (f->cause == CAUSE_ECALL_U && f->x[17] == RT_RETURN_MAGIC) {
		/* run_lower from U with U ecalls delegated: pass it up to M. */
		csr_write(sscratch, (uint64_t)f + TRAP_FRAME_SIZE);
		register uint64_t a0 __asm__("a0") = f->x[10];
		register uint64_t a7 __asm__("a7") = RT_RETURN_MAGIC;
		__asm__ volatile("ecall" :: "r"(a0), "r"(a7) : "memory");
		for (;;)
			;
	}
	if (s_trap_hook && s_trap_hook(f))
		return;
	if (record(f, PRV_S, from))
		return;
	unexpected(f, "S");
}

/* ---- misc ---- */

void delay_ticks(uint64_t ticks)
{
	uint64_t t0 = mtime();
	while (mtime() - t0 < ticks)
		;
}

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static uint32_t be32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Count the cpu@ nodes directly under /cpus (FDT structure block walk). */
unsigned int rt_nharts(void)
{
	const uint8_t *fdt = (const uint8_t *)rt_dtb;
	if (!fdt || be32(fdt) != 0xd00dfeed)
		return 1;
	const uint8_t *p = fdt + be32(fdt + 8);
	int depth = 0, in_cpus = 0;
	unsigned int n = 0;
	for (;;) {
		uint32_t tok = be32(p);
		p += 4;
		if (tok == 1) {                 /* BEGIN_NODE */
			const char *name = (const char *)p;
			depth++;
			if (depth == 2 && !memcmp(name, "cpus", 5))
				in_cpus = 1;
			else if (depth == 3 && in_cpus && !memcmp(name, "cpu@", 4))
				n++;
			p += (strlen(name) + 4) & ~3UL;
		} else if (tok == 2) {          /* END_NODE */
			if (depth == 2)
				in_cpus = 0;
			depth--;
		} else if (tok == 3) {          /* PROP */
			uint32_t len = be32(p);
			p += 8 + ((len + 3) & ~3U);
		} else if (tok == 4) {          /* NOP */
		} else {
			break;
		}
	}
	return n ? n : 1;
}

__attribute__((weak)) void secondary_main(unsigned long hart)
{
	(void)hart;
	park();
}

void rt_main(unsigned long hart, unsigned long dtb);
void rt_main(unsigned long hart, unsigned long dtb)
{
	if (hart != 0) {
		secondary_main(hart);
		park();
	}
	rt_dtb = dtb;
	main();
	if (check_failures) {
		printf("FAIL %s: %u check(s) failed\n", TEST_NAME, check_failures);
		exit_fail(check_failures > 255 ? 255 : check_failures);
	}
	printf("PASS %s\n", TEST_NAME);
	exit_pass();
}
