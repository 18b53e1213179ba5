/* guests/kernel workload: system-call stubs and printf. */
#ifndef ULIB_H
#define ULIB_H
#include <stdint.h>
#include <stdbool.h>
#include "../common/abi.h"
#include "../common/fmt.h"

static inline long sys3(long n, long a0, long a1, long a2)
{
	register long r0 __asm__("a0") = a0;
	register long r1 __asm__("a1") = a1;
	register long r2 __asm__("a2") = a2;
	register long r7 __asm__("a7") = n;
	__asm__ volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r7) : "memory");
	return r0;
}
static inline __attribute__((noreturn)) void uexit(long code) { sys3(SYS_EXIT, code, 0, 0); for (;;) ; }
static inline long ufork(void) { return sys3(SYS_FORK, 0, 0, 0); }
static inline long uwait(long *status)
{
	register long r0 __asm__("a0") = 0;
	register long r1 __asm__("a1") = 0;
	register long r7 __asm__("a7") = SYS_WAIT;
	__asm__ volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r7) : "memory");
	*status = r1;
	return r0;
}
static inline void uyield(void) { sys3(SYS_YIELD, 0, 0, 0); }
static inline long usbrk(long d) { return sys3(SYS_SBRK, d, 0, 0); }
static inline long ummap(uint64_t a, uint64_t len, long prot) { return sys3(SYS_MMAP, (long)a, (long)len, prot); }
static inline long umunmap(uint64_t a, uint64_t len) { return sys3(SYS_MUNMAP, (long)a, (long)len, 0); }
static inline long umprotect(uint64_t a, uint64_t len, long prot) { return sys3(SYS_MPROTECT, (long)a, (long)len, prot); }
static inline long ugetpid(void) { return sys3(SYS_GETPID, 0, 0, 0); }
static inline long uinfo(long k) { return sys3(SYS_INFO, k, 0, 0); }
static inline void ucount(long k, long n) { sys3(SYS_COUNT, k, n, 0); }

static inline void uprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void uprintf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = kvsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	sys3(SYS_WRITE, (long)buf, n < (int)sizeof buf ? n : (int)sizeof buf - 1, 0);
}
#endif
