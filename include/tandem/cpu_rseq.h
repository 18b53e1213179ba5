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
 * (0x53053053 on x86-64, checked by the kernel). The rseq area is glibc's:
 * %fs:__rseq_offset, whose rseq_cs field is at offset 8.
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
#include <sys/rseq.h>

#define VCPU_RSEQ_SIG_BYTES ".byte 0x0f, 0xb9, 0x3d\n\t.long 0x53053053\n\t"

/* Descriptor, arming store, and the checks common to loads and stores.
 * Leaves the addend in %[tmp]. */
#define VCPU_RSEQ_BEGIN(tagop)                                          \
	".pushsection __rseq_cs, \"aw\"\n\t"                            \
	".balign 32\n\t"                                                \
	"3:\n\t"                                                        \
	".long 0, 0\n\t"                                                \
	".quad 1f, 2f - 1f, 4f\n\t"                                     \
	".popsection\n\t"                                               \
	"leaq 3b(%%rip), %[tmp]\n\t"                                    \
	"movq %[tmp], %%fs:8(%[off])\n\t"                               \
	"1:\n\t"                                                        \
	"cmpq $0, %[req]\n\t"                                           \
	"jne %l[miss]\n\t"                                              \
	"cmpq %[tag], " tagop "\n\t"                                    \
	"jne %l[miss]\n\t"                                              \
	"movq %[add], %[tmp]\n\t"
#define VCPU_RSEQ_END                                                   \
	"2:\n\t"                                                        \
	".pushsection __rseq_failure, \"ax\"\n\t"                       \
	VCPU_RSEQ_SIG_BYTES                                             \
	"4:\n\t"                                                        \
	"jmp %l[miss]\n\t"                                              \
	".popsection\n\t"

/* Returns true and *val on a hit; false on a miss, a pending request, or
 * an aborted section (the caller takes the slow path). */
static inline __attribute__((always_inline)) bool
stlb_rseq_load64(_Atomic unsigned long *requests, const struct stlb_entry *e,
		 uint64_t gva, uint64_t *val)
{
	uint64_t out, tmp;

	__asm__ volatile goto(VCPU_RSEQ_BEGIN("%[ar]")
			      "movq (%[tmp],%[gva]), %[out]\n\t"
			      VCPU_RSEQ_END
			      : [out] "=&r"(out), [tmp] "=&r"(tmp)
			      : [off] "r"(__rseq_offset), [tag] "r"(gva & STLB_CMP_MASK),
				[ar] "m"(e->addr_read), [req] "m"(*(unsigned long *)requests),
				[add] "m"(e->addend), [gva] "r"(gva)
			      : "cc", "memory"
			      : miss);
	*val = out;
	return true;
miss:
	return false;
}

static inline __attribute__((always_inline)) bool
stlb_rseq_store64(_Atomic unsigned long *requests, const struct stlb_entry *e,
		  uint64_t gva, uint64_t val)
{
	uint64_t tmp;

	__asm__ volatile goto(VCPU_RSEQ_BEGIN("%[aw]")
			      "movq %[val], (%[tmp],%[gva])\n\t"
			      VCPU_RSEQ_END
			      : [tmp] "=&r"(tmp)
			      : [off] "r"(__rseq_offset), [tag] "r"(gva & STLB_CMP_MASK),
				[aw] "m"(e->addr_write), [req] "m"(*(unsigned long *)requests),
				[add] "m"(e->addend), [gva] "r"(gva), [val] "r"(val)
			      : "cc", "memory"
			      : miss);
	return true;
miss:
	return false;
}
#endif /* TANDEM_HAVE_RSEQ */

#endif
