/* SPDX-License-Identifier: MIT */
/*
 * rt.h - the tiny runtime of tandem's bare-metal RISC-V test programs.
 *
 * Every hart enters _start (start.S) in M mode with a0 = hart id, a1 = DTB.
 * Hart 0 clears .bss and runs main(); the others run secondary_main(hart)
 * (weak default: park in a WFI loop). tp holds the hart id throughout.
 * When main returns, the program exits: pass if no CHECK failed.
 */
#ifndef RT_H
#define RT_H

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>

#define MAX_HARTS 8

/* QEMU virt memory map. */
#define UART0_BASE   0x10000000UL
#define CLINT_BASE   0x02000000UL
#define CLINT_MSIP(h)     (CLINT_BASE + 4UL * (h))
#define CLINT_MTIMECMP(h) (CLINT_BASE + 0x4000UL + 8UL * (h))
#define CLINT_MTIME       (CLINT_BASE + 0xbff8UL)
#define TESTDEV_BASE 0x00100000UL
#define TIMEBASE_HZ  10000000UL

/* CSR access: the CSR name or number is pasted into the instruction. */
#define csr_read(csr) ({ uint64_t __v; \
	__asm__ volatile("csrr %0, " #csr : "=r"(__v) :: "memory"); __v; })
#define csr_write(csr, val) ({ \
	__asm__ volatile("csrw " #csr ", %0" :: "rK"((uint64_t)(val)) : "memory"); })
#define csr_swap(csr, val) ({ uint64_t __v; \
	__asm__ volatile("csrrw %0, " #csr ", %1" : "=r"(__v) : "rK"((uint64_t)(val)) : "memory"); __v; })
#define csr_set(csr, val) ({ uint64_t __v; \
	__asm__ volatile("csrrs %0, " #csr ", %1" : "=r"(__v) : "rK"((uint64_t)(val)) : "memory"); __v; })
#define csr_clear(csr, val) ({ uint64_t __v; \
	__asm__ volatile("csrrc %0, " #csr ", %1" : "=r"(__v) : "rK"((uint64_t)(val)) : "memory"); __v; })

/* mstatus / sstatus */
#define MSTATUS_SIE   (1UL << 1)
#define MSTATUS_MIE   (1UL << 3)
#define MSTATUS_SPIE  (1UL << 5)
#define MSTATUS_MPIE  (1UL << 7)
#define MSTATUS_SPP   (1UL << 8)
#define MSTATUS_MPP   (3UL << 11)
#define MSTATUS_MPP_S (1UL << 11)
#define MSTATUS_MPP_M (3UL << 11)
#define MSTATUS_MPRV  (1UL << 17)
#define MSTATUS_SUM   (1UL << 18)
#define MSTATUS_MXR   (1UL << 19)
#define MSTATUS_TVM   (1UL << 20)
#define MSTATUS_TW    (1UL << 21)
#define MSTATUS_TSR   (1UL << 22)

/* Exception causes. */
#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS     1
#define CAUSE_ILLEGAL          2
#define CAUSE_BREAKPOINT       3
#define CAUSE_MISALIGNED_LOAD  4
#define CAUSE_LOAD_ACCESS      5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS     7
#define CAUSE_ECALL_U          8
#define CAUSE_ECALL_S          9
#define CAUSE_ECALL_M          11
#define CAUSE_FETCH_PAGE       12
#define CAUSE_LOAD_PAGE        13
#define CAUSE_STORE_PAGE       15
#define CAUSE_INTR             (1UL << 63)
#define IRQ_SSI 1
#define IRQ_MSI 3
#define IRQ_STI 5
#define IRQ_MTI 7

#define PRV_U 0
#define PRV_S 1
#define PRV_M 3

/* The frame start.S saves on a trap: x0..x31 (x[2] = the interrupted sp),
 * then the trap CSRs. A handler may change any of it, epc and status
 * included: they are written back before mret / sret. */
struct trap_frame {
	uint64_t x[32];
	uint64_t epc, status, cause, tval;
};
#define TRAP_FRAME_SIZE (36 * 8)

/* A hook sees every trap first (after the run_lower return ecall);
 * return nonzero if it handled the trap. */
typedef int (*trap_hook_t)(struct trap_frame *f);
extern volatile trap_hook_t m_trap_hook, s_trap_hook;

/*
 * Expected traps: trap_expect() arms this hart; the next trap taken (in M
 * or in S) is recorded and skipped (epc += instruction length; a fetch
 * fault returns to ra instead, as after a call). trap_end() disarms and
 * returns the cause, or TRAP_NONE if none was taken.
 */
struct trap_rec {
	volatile uint64_t armed, count, cause, tval, epc, status;
	volatile int level;           /* PRV_M or PRV_S: who handled it */
	volatile int from;            /* privilege the trap came from */
};
extern struct trap_rec trap_rec[MAX_HARTS];
#define TRAP_NONE (~0UL)
void trap_expect(void);
uint64_t trap_end(void);
static inline struct trap_rec *trap_last(void);

static inline unsigned long hartid(void)
{
	unsigned long t;
	__asm__ volatile("mv %0, tp" : "=r"(t));
	return t;
}
static inline struct trap_rec *trap_last(void) { return &trap_rec[hartid()]; }

/* Run fn(arg) in privilege mode (PRV_U or PRV_S) from M, on the same
 * stack; returns fn's result, back in M. */
uint64_t run_lower(unsigned long mode, uint64_t (*fn)(uint64_t), uint64_t arg);
/* Return-to-M ecall number (a7) used by run_lower. */
#define RT_RETURN_MAGIC 0x5254524554UL

/* Console (16550 THR, serialised between harts). */
void putc_raw(char c);
void puts_(const char *s);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);

/* Exit: tohost = code << 1 | 1, then the SiFive test device. */
void exit_pass(void) __attribute__((noreturn));
void exit_fail(unsigned int code) __attribute__((noreturn));
void park(void) __attribute__((noreturn));

extern volatile uint64_t tohost, fromhost;
extern volatile unsigned int check_failures;
void check_failed(const char *file, int line, const char *expr);

#define CHECK(cond) do { if (!(cond)) check_failed(__FILE__, __LINE__, #cond); } while (0)
/* Equality with both values printed on failure. */
#define CHECK_EQ(a, b) do { uint64_t __a = (uint64_t)(a), __b = (uint64_t)(b); \
	if (__a != __b) { printf("FAIL %s:%d: %s == %s: 0x%lx != 0x%lx\n", \
		__FILE__, __LINE__, #a, #b, __a, __b); check_failures++; } } while (0)
/* Expect stmt to trap with cause c. */
#define CHECK_TRAP(c, stmt) do { trap_expect(); stmt; uint64_t __c = trap_end(); \
	if (__c != (uint64_t)(c)) { printf("FAIL %s:%d: %s: trap cause %ld, expected %ld\n", \
		__FILE__, __LINE__, #stmt, (long)__c, (long)(c)); check_failures++; } } while (0)
#define CHECK_NOTRAP(stmt) CHECK_TRAP(TRAP_NONE, stmt)

/* Each hart's pc and a1 when it entered _start (start.S). */
extern volatile uint64_t rt_entry_pc[MAX_HARTS], rt_entry_a1[MAX_HARTS];

/* Number of harts: the cpu@ nodes under /cpus in the DTB. */
unsigned int rt_nharts(void);
extern unsigned long rt_dtb;

static inline uint64_t mtime(void) { return *(volatile uint64_t *)CLINT_MTIME; }
static inline void mmio_w32(unsigned long a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_w64(unsigned long a, uint64_t v) { *(volatile uint64_t *)a = v; }
static inline uint32_t mmio_r32(unsigned long a) { return *(volatile uint32_t *)a; }
void delay_ticks(uint64_t ticks);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* Provided by the test. */
int main(void);
void secondary_main(unsigned long hart);

#endif
