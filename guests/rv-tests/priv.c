/* priv - M, S and U: mret / sret and their MPP/SPP/MPIE/SPIE rules, ecall
 * from U (8) and S (9), medeleg delegation to stvec, illegal accesses to
 * higher-privilege CSRs and xRET, mstatus.TSR / TVM / TW, counter enables. */
#include "rt.h"
#include "insn.h"

static uint64_t do_ecall(uint64_t a)
{
	register uint64_t a0 __asm__("a0") = a;
	register uint64_t a7 __asm__("a7") = 0;
	__asm__ volatile("ecall" : "+r"(a0) : "r"(a7) : "memory");
	return a0 + 1;
}

/* Run in a lower mode: expect one trap of cause c, handled at level lvl.
 * Returns the failure count delta via CHECKs in the caller. */
#define LOWER_TRAP(mode, c, lvl, fn) do { trap_expect(); run_lower(mode, fn, 0); \
	uint64_t __c = trap_end(); \
	if (__c != (uint64_t)(c) || trap_last()->level != (lvl) || trap_last()->from != (mode)) { \
		printf("FAIL %s:%d: %s in mode %d: cause %ld level %d from %d, expected %d / %d\n", \
		       __FILE__, __LINE__, #fn, mode, (long)__c, trap_last()->level, \
		       trap_last()->from, (int)(c), lvl); \
		check_failures++; } } while (0)

static uint64_t rd_mstatus(uint64_t a) { return csr_read(mstatus) + a; }
static uint64_t rd_mscratch(uint64_t a) { return csr_read(mscratch) + a; }
static uint64_t rd_sstatus(uint64_t a) { return csr_read(sstatus) + a; }
static uint64_t rd_sscratch(uint64_t a) { return csr_read(sscratch) + a; }
static uint64_t rd_satp(uint64_t a) { return csr_read(satp) + a; }
static uint64_t rd_cycle(uint64_t a) { uint64_t c; __asm__ volatile("rdcycle %0" : "=r"(c)); return c + a; }
static uint64_t rd_time(uint64_t a) { uint64_t c; __asm__ volatile("rdtime %0" : "=r"(c)); return c + a; }
static uint64_t do_mret(uint64_t a) { __asm__ volatile("mret"); return a; }
static uint64_t do_sret_here(uint64_t a)
{
	/* sret to the next instruction, same mode when SPP = S */
	__asm__ volatile("la t0, 1f\ncsrw sepc, t0\nli t0, 1 << 8\ncsrs sstatus, t0\nsret\n1:"
			 ::: "t0", "memory");
	return a;
}
static uint64_t do_sret_raw(uint64_t a) { __asm__ volatile("sret" ::: "memory"); return a; }
static uint64_t do_sfence(uint64_t a) { __asm__ volatile("sfence.vma" ::: "memory"); return a; }
static uint64_t do_wfi(uint64_t a) { __asm__ volatile("wfi"); return a; }
static uint64_t set_sie(uint64_t a) { csr_set(sstatus, MSTATUS_SIE); return a; }

/* S-mode: sret to U at a U function, which ecalls (delegated to S here);
 * the S handler records and returns to U, U returns to S via ... we keep it
 * simple: the U code ecalls with a7 = 0 (recorded), then the magic one. */
static uint64_t user_two_ecalls(uint64_t a)
{
	do_ecall(0);
	return a + 5;
}

static void modes(void)
{
	uint64_t r;
	/* mret from M to M: MIE = MPIE, MPIE = 1, MPP = U (least privilege) */
	csr_clear(mstatus, MSTATUS_MIE);
	csr_set(mstatus, MSTATUS_MPP_M);
	csr_clear(mstatus, MSTATUS_MPIE);
	__asm__ volatile(NORVC("la t0, 1f\ncsrw mepc, t0\nmret\n1:") ::: "t0", "memory");
	r = csr_read(mstatus);
	CHECK_EQ(r & MSTATUS_MPP, 0);
	CHECK(r & MSTATUS_MPIE);
	CHECK(!(r & MSTATUS_MIE));

	/* ecall from S and from U, handled in M */
	trap_expect();
	CHECK_EQ(run_lower(PRV_S, do_ecall, 41), 42);
	CHECK_EQ(trap_end(), CAUSE_ECALL_S);
	LOWER_TRAP(PRV_S, CAUSE_ECALL_S, PRV_M, do_ecall);
	CHECK_EQ(trap_last()->status & MSTATUS_MPP, MSTATUS_MPP_S);
	CHECK_EQ(trap_last()->tval, 0);
	LOWER_TRAP(PRV_U, CAUSE_ECALL_U, PRV_M, do_ecall);
	CHECK_EQ(trap_last()->status & MSTATUS_MPP, 0);

	/* MPRV is cleared by an mret to a mode below M */
	csr_set(mstatus, MSTATUS_MPRV | MSTATUS_MPP_M);   /* harmless with MPP = M */
	run_lower(PRV_S, rd_sstatus, 0);
	if (csr_read(mstatus) & MSTATUS_MPRV) {
		printf("note: mret to S left mstatus.MPRV set (QEMU 7.2 does; priv spec 1.12 clears it)\n");
		csr_clear(mstatus, MSTATUS_MPRV);
	}

	/* higher-privilege CSRs and xRET from below */
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_M, rd_mstatus);
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_M, rd_mscratch);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, rd_mstatus);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, rd_sstatus);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, rd_sscratch);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, rd_satp);
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_M, do_mret);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, do_mret);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, do_sret_raw);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, do_sfence);
	/* S may use its own */
	trap_expect();
	run_lower(PRV_S, rd_sscratch, 0);
	run_lower(PRV_S, rd_satp, 0);
	run_lower(PRV_S, do_sret_here, 0);
	run_lower(PRV_S, do_sfence, 0);
	CHECK_EQ(trap_end(), TRAP_NONE);
	/* sstatus is a view of mstatus */
	csr_clear(mstatus, MSTATUS_SIE);
	run_lower(PRV_S, set_sie, 0);
	CHECK(csr_read(mstatus) & MSTATUS_SIE);
	CHECK(csr_read(sstatus) & MSTATUS_SIE);
	CHECK(!(csr_read(sstatus) & MSTATUS_MPP));        /* not visible in sstatus */
	csr_clear(mstatus, MSTATUS_SIE);

	/* TSR, TVM, TW */
	csr_set(mstatus, MSTATUS_TSR);
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_M, do_sret_here);
	csr_clear(mstatus, MSTATUS_TSR);
	csr_set(mstatus, MSTATUS_TVM);
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_M, rd_satp);
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_M, do_sfence);
	csr_clear(mstatus, MSTATUS_TVM);
	csr_set(mstatus, MSTATUS_TW);
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_M, do_wfi);
	csr_clear(mstatus, MSTATUS_TW);

	/* counter enables: U needs mcounteren and scounteren, S mcounteren */
	csr_write(mcounteren, 0);
	csr_write(scounteren, 0);
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_M, rd_cycle);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, rd_time);
	csr_write(mcounteren, 7);
	CHECK_NOTRAP(run_lower(PRV_S, rd_cycle, 0));
	CHECK_NOTRAP(run_lower(PRV_S, rd_time, 0));
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, rd_cycle);
	csr_write(scounteren, 7);
	CHECK_NOTRAP(run_lower(PRV_U, rd_cycle, 0));
	CHECK_NOTRAP(run_lower(PRV_U, rd_time, 0));
}

static void delegation(void)
{
	/* medeleg[11] (ecall from M) is read-only zero */
	csr_write(medeleg, ~0UL);
	uint64_t d = csr_read(medeleg);
	printf("medeleg writable bits: 0x%lx\n", d);
	if (d & (1UL << CAUSE_ECALL_M))   /* "should" be hardwired to 0 */
		printf("note: medeleg[11] is writable (QEMU 7.2)\n");
	CHECK(d & (1UL << CAUSE_ECALL_U));
	csr_write(medeleg, (1UL << CAUSE_ECALL_U) | (1UL << CAUSE_ILLEGAL) | (1UL << CAUSE_BREAKPOINT));

	/* U ecall -> S handler: scause 8, SPP = U, SPIE = SIE before */
	csr_set(mstatus, MSTATUS_SIE);
	csr_write(mie, 0);
	LOWER_TRAP(PRV_U, CAUSE_ECALL_U, PRV_S, user_two_ecalls);
	uint64_t st = trap_last()->status;
	CHECK(!(st & MSTATUS_SPP));
	CHECK(st & MSTATUS_SPIE);
	CHECK(!(st & MSTATUS_SIE));
	trap_expect();
	CHECK_EQ(run_lower(PRV_U, user_two_ecalls, 1), 6);  /* resumed in U after sret */
	CHECK_EQ(trap_end(), CAUSE_ECALL_U);
	csr_clear(mstatus, MSTATUS_SIE);

	/* an illegal instruction in U goes to S; in S to S (SPP = S) */
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_S, rd_sstatus);
	LOWER_TRAP(PRV_S, CAUSE_ILLEGAL, PRV_S, rd_mstatus);
	CHECK(trap_last()->status & MSTATUS_SPP);
	CHECK(!(trap_last()->status & MSTATUS_SPIE));      /* SIE was 0 */
	/* ... but never from M: M's own traps stay in M */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr t0, 0x7c0" ::: "t0"));
	CHECK_EQ(trap_last()->level, PRV_M);
	/* ecall from S is not delegated here: M */
	LOWER_TRAP(PRV_S, CAUSE_ECALL_S, PRV_M, do_ecall);
	/* stval: the illegal instruction's bits or 0 */
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_S, rd_mscratch);
	uint32_t bits = *(volatile uint16_t *)trap_last()->epc |
			(uint32_t)*(volatile uint16_t *)(trap_last()->epc + 2) << 16;
	CHECK(trap_last()->tval == 0 || trap_last()->tval == bits);
	csr_write(medeleg, 0);
	LOWER_TRAP(PRV_U, CAUSE_ILLEGAL, PRV_M, rd_sstatus);
}

int main(void)
{
	modes();
	delegation();
	return 0;
}
