/* SPDX-License-Identifier: MIT */
/*
 * cpu_rseq.h - a soft-TLB hit as a restartable sequence (x86-64).
 *
 * Why: a vCPU thread preempted by the host scheduler while "in guest mode"
 * makes every waiting TLB-flush request sleep until it runs again -- a
 * scheduler tick (4 ms here) when vCPUs outnumber cores. Real KVM never
 * sees this, because preemption forces a VM exit: a preempted vCPU is
 * outside guest mode. rseq gives us the same property. A hit -- check the
 * request word, compare the tag, load the addend, do the access -- is an
 * rseq critical section whose last instruction, the access, commits it. If
 * the thread is preempted, migrated or signalled inside the section, the
 * kernel resumes it at the abort handler instead: the access has not
 * happened, and the retry takes the slow path. A requester sets its request
 * bits and then calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ),
 * which aborts the sections running on other CPUs (those of preempted
 * threads abort when they resume). When membarrier returns, every access
 * that could use an old translation has completed or will see the request:
 * the guarantee a waiting request gives, without waiting for any vCPU.
 *
 *   requester                             vCPU, inside the section
 *   ------------------------------------  -----------------------------------
 *   zap sptes (mmu_lock)                  rseq_cs = &desc     (arms it)
 *   requests |= TLB_FLUSH                 1: requests != 0 -> slow path
 *   membarrier(EXPEDITED_RSEQ) ---IPI---> tag != page      -> slow path
 *     (section running: restarted at 4;   tmp = addend
 *      preempted: restarted on resume)    access (tmp + gva)    <- commit
 *   return: host may free the frame       2:
 *
 * The abort handler is preceded by the RSEQ signature glibc registered
 * (0x53053053 on x86-64, checked by the kernel). The rseq area is glibc's,
 * at __rseq_offset from the thread pointer; a section arms it by storing
 * its descriptor's address to the rseq_cs field (cpu_rseq_cs_field()).
 *
 * The inline hit (vcpu_load64/vcpu_store64) is this section in both kick
 * modes, so that it tests no mode. In WAIT mode nobody calls membarrier:
 * the section checks the request word and the tag as the plain-C hit does,
 * and only adds a restart through the slow path if the thread is preempted
 * inside it. If glibc did not register rseq (glibc.pthread.rseq=0: then
 * __rseq_size is 0 and AUTO resolves to WAIT), __rseq_offset still locates
 * glibc's rseq area in the thread control block, and the arming store lands
 * there, unread by the kernel. The slow path's own access
 * (vcpu_access_in_guest) still follows the mode.
 *
 * Cost. A guest loop of independent accesses is bound by how many
 * instructions the core issues per access, not by a latency -- the more so
 * when the core's other hardware thread is busy: that, not code placement,
 * made the soft-TLB hit figure of bench kvm two-moded (1.2x native on a
 * core of its own, 1.7-2.1x when the host ran something on its sibling);
 * a pointer chase is bound by the chain gva -> entry offset -> addend load
 * -> data load. So the hit is the section and the index and tag arithmetic,
 * nothing else: no test of the kick mode, and the entry addressed as
 * (table + offset), with the addend at offset 0 rather than (entry = table
 * + offset) then a load at a displacement from it (one more add on the
 * chase's chain; on AMD Zen 4 a base + index + displacement load takes 5
 * cycles where base + index takes 4).
 *
 * Sanitizers cannot see accesses made in asm, so sanitizer builds compile
 * this out and use the waiting protocol, whose plain-C accesses TSan checks
 * against the host's frame reuse.
 */
/* The soft-TLB types come from cpu.h, which includes this file after
 * defining them; included on its own, this file gets them the same way
 * (cpu.h's nested include of it is then the one that defines the guard). */
#include "tandem/cpu.h"

#ifndef TANDEM_CPU_RSEQ_H
#define TANDEM_CPU_RSEQ_H

#include "tandem/config.h"
#ifdef TANDEM_HAVE_RSEQ
#include <stddef.h>
#include <stdint.h>
#include <sys/rseq.h>

#ifdef __has_builtin
#if __has_builtin(__builtin_thread_pointer)
#define CPU_RSEQ_TP_BUILTIN 1
#endif
#endif

#define CPU_RSEQ_SIG_BYTES ".byte 0x0f, 0xb9, 0x3d\n\t.long 0x53053053\n\t"

/*
 * This thread's rseq_cs field, computed in C from the thread pointer: the
 * compiler hoists it out of a loop of accesses and keeps it in a register,
 * so the arming store's address is known when it issues. Arming with a
 * store to %fs:8(reg) left the compiler to reload __rseq_offset into reg
 * on every access in a loop short of registers (one more load per access,
 * and a store whose address waits for it: 0.08 of the native time per
 * access in bench kvm's lcg loop).
 */
static inline __attribute__((always_inline)) uint64_t *cpu_rseq_cs_field(void)
{
	char *tp;

#ifdef CPU_RSEQ_TP_BUILTIN
	tp = __builtin_thread_pointer();
#else
	__asm__("movq %%fs:0, %0" : "=r"(tp));  /* x86-64 TLS: %fs:0 is the thread pointer */
#endif
	return (uint64_t *)(tp + __rseq_offset + offsetof(struct rseq, rseq_cs));
}

/* Descriptor, arming store, and the checks common to loads and stores.
 * The entry is addressed as (table + byte offset), its tag at displacement
 * %[tagdisp], its addend at none (struct stlb_entry). Leaves the addend in
 * %[tmp]. */
#define CPU_RSEQ_BEGIN                                                  \
	".pushsection __rseq_cs, \"aw\"\n\t"                            \
	".balign 32\n\t"                                                \
	"3:\n\t"                                                        \
	".long 0, 0\n\t"                                                \
	".quad 1f, 2f - 1f, 4f\n\t"                                     \
	".popsection\n\t"                                               \
	"leaq 3b(%%rip), %[tmp]\n\t"                                    \
	"movq %[tmp], (%[cs])\n\t"                                      \
	"1:\n\t"                                                        \
	"cmpq $0, %[req]\n\t"                                           \
	"jne %l[miss]\n\t"                                              \
	"cmpq %[tag], %c[tagdisp](%[tlb],%[eoff])\n\t"                  \
	"jne %l[miss]\n\t"                                              \
	"movq (%[tlb],%[eoff]), %[tmp]\n\t"
/* The abort handler (the kernel restarts a section it preempted, migrated,
 * signalled or aborted by membarrier there) has its own label, so that
 * aborts are counted apart from misses. */
#define CPU_RSEQ_END                                                    \
	"2:\n\t"                                                        \
	".pushsection __rseq_failure, \"ax\"\n\t"                       \
	CPU_RSEQ_SIG_BYTES                                              \
	"4:\n\t"                                                        \
	"jmp %l[aborted]\n\t"                                           \
	".popsection\n\t"

/*
 * Returns true and *val on a hit; false on a miss, a pending request, or
 * an aborted section (counted in *aborts): the caller takes the slow path.
 * tlb is the current table, eoff = stlb_offset(gva).
 */
static inline __attribute__((always_inline)) bool
stlb_rseq_load64(_Atomic unsigned long *requests, const struct stlb_entry *tlb,
		 uint64_t eoff, uint64_t gva, uint64_t *val, uint64_t *aborts)
{
	uint64_t out, tmp;

	__asm__ volatile goto(CPU_RSEQ_BEGIN
			      "movq (%[tmp],%[gva]), %[out]\n\t"
			      CPU_RSEQ_END
			      : [out] "=&r"(out), [tmp] "=&r"(tmp)
			      : [cs] "r"(cpu_rseq_cs_field()), [tag] "r"(gva & STLB_CMP_MASK),
				[tlb] "r"(tlb), [eoff] "r"(eoff),
				[tagdisp] "i"(offsetof(struct stlb_entry, addr_read)),
				[req] "m"(*(unsigned long *)requests), [gva] "r"(gva)
			      : "cc", "memory"
			      : miss, aborted);
	*val = out;
	return true;
aborted:
	(*aborts)++;
miss:
	return false;
}

static inline __attribute__((always_inline)) bool
stlb_rseq_store64(_Atomic unsigned long *requests, const struct stlb_entry *tlb,
		  uint64_t eoff, uint64_t gva, uint64_t val, uint64_t *aborts)
{
	uint64_t tmp;

	__asm__ volatile goto(CPU_RSEQ_BEGIN
			      "movq %[val], (%[tmp],%[gva])\n\t"
			      CPU_RSEQ_END
			      : [tmp] "=&r"(tmp)
			      : [cs] "r"(cpu_rseq_cs_field()), [tag] "r"(gva & STLB_CMP_MASK),
				[tlb] "r"(tlb), [eoff] "r"(eoff),
				[tagdisp] "i"(offsetof(struct stlb_entry, addr_write)),
				[req] "m"(*(unsigned long *)requests), [gva] "r"(gva), [val] "r"(val)
			      : "cc", "memory"
			      : miss, aborted);
	return true;
aborted:
	(*aborts)++;
miss:
	return false;
}
#endif /* TANDEM_HAVE_RSEQ */

#endif
