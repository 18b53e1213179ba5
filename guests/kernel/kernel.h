/* guests/kernel: an S-mode kernel of tandem's own (see README.md). */
#ifndef KERNEL_H
#define KERNEL_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "common/abi.h"
#include "common/fmt.h"

#define PGSIZE      4096UL
#define PGSHIFT     12
#define MAX_HARTS   8
#define NPROC       128
#define KSTACK_SIZE 8192

/* Sv39 PTE bits; SWW (RSW bit 8) = "logically writable": W is set
 * only while the page is not shared (copy on write). */
#define PTE_V (1UL << 0)
#define PTE_R (1UL << 1)
#define PTE_W (1UL << 2)
#define PTE_X (1UL << 3)
#define PTE_U (1UL << 4)
#define PTE_G (1UL << 5)
#define PTE_A (1UL << 6)
#define PTE_D (1UL << 7)
#define PTE_SWW (1UL << 8)
#define PTE2PA(pte) (((pte) >> 10) << 12)
#define PA2PTE(pa) ((((uint64_t)(pa)) >> 12) << 10)
#define SATP_SV39 (8UL << 60)
#define MAKE_SATP(root, asid) (SATP_SV39 | ((uint64_t)(asid) << 44) | ((uint64_t)(root) >> 12))

#define SSTATUS_SIE  (1UL << 1)
#define SSTATUS_SPIE (1UL << 5)
#define SSTATUS_SPP  (1UL << 8)
#define SIE_STIE     (1UL << 5)

#define csr_read(csr) ({ uint64_t __v; __asm__ volatile("csrr %0, " #csr : "=r"(__v)); __v; })
#define csr_write(csr, v) __asm__ volatile("csrw " #csr ", %0" :: "rK"((uint64_t)(v)) : "memory")
#define csr_set(csr, v) __asm__ volatile("csrs " #csr ", %0" :: "rK"((uint64_t)(v)) : "memory")
#define csr_clear(csr, v) __asm__ volatile("csrc " #csr ", %0" :: "rK"((uint64_t)(v)) : "memory")

/* ---- spinlock (AMO swap) ---- */
struct spinlock { volatile uint32_t locked; };
static inline void acquire(struct spinlock *l)
{
	while (__sync_lock_test_and_set(&l->locked, 1))
		while (l->locked)
			;
	__sync_synchronize();
}
static inline void release(struct spinlock *l)
{
	__sync_synchronize();
	__sync_lock_release(&l->locked);
}

/* ---- SBI ---- */
struct sbiret { long error, value; };
struct sbiret sbi_call(long eid, long fid, long a0, long a1, long a2, long a3, long a4);
void sbi_putchar(int c);
void sbi_set_timer(uint64_t t);
long sbi_hart_start(unsigned long hart, unsigned long addr, unsigned long opaque);
long sbi_remote_sfence_vma_asid(unsigned long mask, unsigned long va, unsigned long size, unsigned long asid);
void sbi_shutdown(bool failure) __attribute__((noreturn));

/* ---- console ---- */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void console_write(const char *s, int n);
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* ---- configuration (bootargs) and counters ---- */
struct config {
	long vm, rounds, pages, lineages, depth, gens, secs, asids, tick_ms, verbose;
	bool break_cow, break_sfence;
};
extern struct config cfg;
extern uint64_t timebase_hz;
extern int nharts;

struct counters {
	volatile uint64_t procs, forks, cow, pgfaults, spurious, ctxsw, asid_allocs,
		asid_rollovers, sfences, rfences, rounds, failures, probes, kills, syscalls, ticks,
		steal_reads, steal_retries;
};
extern struct counters cnt;
#define COUNT(field, n) __atomic_fetch_add(&cnt.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* ---- per hart ---- */
struct context { uint64_t ra, sp, s[12]; };
struct proc;
struct mm;
struct cpu {
	uint64_t hartid;         /* must stay first: entry.S */
	struct proc *proc;
	struct context ctx;      /* the scheduler's */
	struct mm *active_mm;    /* under asid_lock */
	uint64_t active_asid;
	bool flush_pending;      /* under asid_lock: flush every ASID before the next use */
	uint64_t next_timer;
	bool sta;                /* steal.c: this hart's STA area is set */
	uint32_t steal_seq;      /* its last consistent read */
	uint32_t steal_stalls;   /* ticks in a row that found steal_seq again */
	uint64_t steal_last;
};
extern struct cpu cpus[MAX_HARTS];
static inline struct cpu *mycpu(void)
{
	struct cpu *c;
	__asm__ volatile("mv %0, tp" : "=r"(c));
	return c;
}

/* ---- memory ---- */
void kalloc_init(uint64_t start, uint64_t end, uint64_t hole_lo, uint64_t hole_hi);
void *kalloc(void);                 /* zeroed page, or NULL */
void page_get(uint64_t pa);         /* refcount++ */
void page_put(uint64_t pa);         /* refcount--, free at 0 */
uint32_t page_refs(uint64_t pa);
uint64_t kalloc_free_pages(void);

/* ---- address spaces ---- */
struct mm {
	uint64_t *root;
	uint64_t ctx;            /* generation << ASID_SHIFT | asid; under asid_lock */
	volatile uint64_t hart_mask; /* harts that may hold TLB entries for ctx's ASID */
	uint64_t brk, heap_base;
};
void vm_init(uint64_t ram_base, uint64_t ram_end);
void vm_hart_init(void);
int  mm_create(struct mm *mm);
void mm_destroy(struct mm *mm);
int  mm_map(struct mm *mm, uint64_t va, uint64_t pa, uint64_t perm);
uint64_t *mm_walk(struct mm *mm, uint64_t va, bool alloc);
int  mm_fork(struct mm *parent, struct mm *child);
int  mm_alloc_range(struct mm *mm, uint64_t va, uint64_t len, uint64_t perm);
int  mm_unmap_range(struct mm *mm, uint64_t va, uint64_t len, bool must_exist);
int  mm_protect_range(struct mm *mm, uint64_t va, uint64_t len, uint64_t perm);
int  mm_store_fault(struct mm *mm, uint64_t va);
int  mm_copyin(struct mm *mm, char *dst, uint64_t va, uint64_t len);
void mm_flush_va(struct mm *mm, uint64_t va, uint64_t len);
void switch_mm(struct mm *mm);
void switch_kernel_mm(void);
extern uint64_t kernel_satp;

/* ---- processes ---- */
void proc_init(const void *image, uint64_t image_len);
void scheduler(void) __attribute__((noreturn));
void usertrap(void);
void kerneltrap(uint64_t scause, uint64_t sepc, uint64_t stval);
void timer_arm(void);
uint64_t rdtime(void);
void final_report(int init_status) __attribute__((noreturn));

/* ---- steal time (steal.c) ---- */
void steal_init(void);
void steal_check(void);
uint64_t steal_total_ns(void);
extern int sta_harts;

#endif
