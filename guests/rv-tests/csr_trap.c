/* csr_trap - Zicsr (register and immediate forms, the rd = x0 / rs1 = x0
 * no-side-effect rules), mscratch, mepc's low bit, unimplemented CSRs and
 * illegal opcodes (cause 2), ecall (11), ebreak (3), access faults (1/5/7)
 * from unmapped physical addresses, and the counters. */
#include "rt.h"
#include "insn.h"

#define ILLEGAL_OK(insn_bits) (trap_last()->tval == 0 || trap_last()->tval == (insn_bits))

static uint32_t insn_at(uint64_t pc)
{
	const volatile uint16_t *p = (const volatile uint16_t *)pc;
	return p[0] | (uint32_t)p[1] << 16;
}

static void csr_ops(void)
{
	uint64_t saved = csr_read(mscratch), r;

	csr_write(mscratch, 0x1234);
	CHECK_EQ(csr_swap(mscratch, 0xf0f0), 0x1234);
	CHECK_EQ(csr_read(mscratch), 0xf0f0);
	CHECK_EQ(csr_set(mscratch, 0x0f0f), 0xf0f0);
	CHECK_EQ(csr_read(mscratch), 0xffff);
	CHECK_EQ(csr_clear(mscratch, 0x00ff), 0xffff);
	CHECK_EQ(csr_read(mscratch), 0xff00);
	/* immediate forms (5-bit zero-extended uimm) */
	__asm__ volatile("csrrwi %0, mscratch, 31" : "=r"(r));
	CHECK_EQ(r, 0xff00);
	CHECK_EQ(csr_read(mscratch), 31);
	__asm__ volatile("csrrci %0, mscratch, 0x15" : "=r"(r));
	CHECK_EQ(r, 31);
	CHECK_EQ(csr_read(mscratch), 0x0a);
	__asm__ volatile("csrrsi %0, mscratch, 0x10" : "=r"(r));
	CHECK_EQ(r, 0x0a);
	CHECK_EQ(csr_read(mscratch), 0x1a);
	/* all 64 bits */
	csr_write(mscratch, 0x8000000000000001UL);
	CHECK_EQ(csr_read(mscratch), 0x8000000000000001UL);
	/* rd = x0 csrrw still writes */
	__asm__ volatile("csrrw x0, mscratch, %0" :: "r"(77UL));
	CHECK_EQ(csr_read(mscratch), 77);
	/* the same register as source and destination: old value out */
	r = 5;
	__asm__ volatile("csrrw %0, mscratch, %0" : "+r"(r));
	CHECK_EQ(r, 77);
	CHECK_EQ(csr_read(mscratch), 5);
	/* csrrs with rs1 = x0 on a writable CSR changes nothing */
	csr_write(mscratch, 0x55);
	__asm__ volatile("csrrs %0, mscratch, x0" : "=r"(r));
	__asm__ volatile("csrrc %0, mscratch, x0" : "=r"(r));
	CHECK_EQ(csr_read(mscratch), 0x55);
	csr_write(mscratch, saved);   /* the trap vector needs it back */

	/* read-only CSRs: reading (csrrs/csrrc rs1 = x0, csrrsi/csrrci 0)
	 * is fine, any write is illegal */
	uint64_t id;
	CHECK_NOTRAP(__asm__ volatile("csrrs %0, mhartid, x0" : "=r"(id)));
	CHECK_EQ(id, 0);
	CHECK_NOTRAP(__asm__ volatile("csrrc %0, mhartid, x0" : "=r"(id)));
	CHECK_NOTRAP(__asm__ volatile("csrrsi %0, mhartid, 0" : "=r"(id)));
	CHECK_NOTRAP(__asm__ volatile("csrrci %0, mvendorid, 0" : "=r"(id)));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrrw x0, mhartid, %0" :: "r"(0UL)));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrrs %0, mhartid, %1" : "=r"(id) : "r"(1UL)));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrrwi x0, mimpid, 0"));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrrci %0, marchid, 1" : "=r"(id)));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrw cycle, %0" :: "r"(0UL)));
	/* mtval: the instruction bits or 0 */
	CHECK(ILLEGAL_OK(insn_at(trap_last()->epc)));

	/* mepc / sepc: bit 0 always reads zero (IALIGN = 16) */
	uint64_t e = csr_read(mepc);
	/* QEMU 7.2 keeps bit 0 in the register and masks it on mret: accept
	 * both; the mret below checks the effective target. */
	csr_write(mepc, 0x80001235UL);
	r = csr_read(mepc);
	CHECK(r == 0x80001234UL || r == 0x80001235UL);
	int mepc_masks = !(r & 1);
	if (!mepc_masks)
		printf("note: mepc keeps bit 0 (QEMU 7.2 does, and mret jumps to the odd address; the spec clears it)\n");
	csr_write(mepc, 0x80001236UL);
	CHECK_EQ(csr_read(mepc), 0x80001236UL);
	csr_write(mepc, e);
	csr_write(sepc, 0x3UL);
	r = csr_read(sepc);
	CHECK(r == 2 || r == 3);
	/* mret to an odd mepc (MPP = M) lands on the even address */
	uint64_t got = 1;
	if (mepc_masks)
	__asm__ volatile(NORVC("la t0, 1f\naddi t0, t0, 1\ncsrw mepc, t0\nli t0, 3 << 11\ncsrs mstatus, t0\n"
			       "li %0, 1\nmret\nli %0, 2\n1:") : "=&r"(got) :: "t0");
	CHECK_EQ(got, 1);

	/* misa: RV64 with I, M, A, C, S, U */
	uint64_t misa = csr_read(misa);
	printf("misa = 0x%lx\n", misa);
	CHECK_EQ(misa >> 62, 2);
	for (const char *x = "IMACSU"; *x; x++)
		if (!(misa & (1UL << (*x - 'A'))))
			printf("FAIL misa lacks %c\n", *x), check_failures++;
}

static void unimplemented_csr(void)
{
	uint64_t r;
	/* custom CSR numbers: nothing behind them on QEMU's virt harts */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr %0, 0x7c0" : "=r"(r)));
	CHECK(ILLEGAL_OK(insn_at(trap_last()->epc)));
	printf("unimplemented CSR 0x7c0: mtval 0x%lx\n", trap_last()->tval);
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrw 0x7c0, %0" :: "r"(1UL)));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr %0, 0x5c0" : "=r"(r)));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr %0, 0xfc0" : "=r"(r)));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr %0, 0x8ff" : "=r"(r)));
	/* hypervisor CSRs, when there is no H extension (QEMU 7.2 has H) */
	if (!(csr_read(misa) & (1UL << 7))) {
		CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr %0, 0x600" : "=r"(r)));  /* hstatus */
		CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr %0, 0x200" : "=r"(r)));  /* vsstatus */
	}
	/* RV32-only CSRs on RV64 */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr %0, 0xc80" : "=r"(r)));  /* cycleh */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("csrr %0, 0x310" : "=r"(r)));  /* mstatush */
}

static void illegal_and_env(void)
{
	uint64_t st;
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".4byte 0xffffffff"));
	CHECK(ILLEGAL_OK(0xffffffff));
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".2byte 0x0000"));   /* c.unimp */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile("unimp"));
	/* reserved major opcodes / funct codes */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".4byte 0x0000007b"));   /* custom-3 */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".4byte 0x0000706b"));   /* reserved */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".4byte 0x40000033 | (1 << 12)")); /* add funct7=0x20 funct3=1 */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".4byte 0x00007003"));   /* load funct3=7 */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".4byte 0x00004023"));   /* store funct3=4 */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".4byte 0x00002067"));   /* jalr funct3=2 */
	CHECK_TRAP(CAUSE_ILLEGAL, __asm__ volatile(".4byte 0x04001013"));   /* slli with funct6 = 1 */

	/* ecall from M */
	csr_set(mstatus, MSTATUS_MIE);
	csr_clear(mie, ~0UL);
	CHECK_TRAP(CAUSE_ECALL_M, __asm__ volatile("ecall"));
	CHECK_EQ(trap_last()->tval, 0);
	st = trap_last()->status;
	CHECK_EQ(st & MSTATUS_MPP, MSTATUS_MPP_M);
	CHECK(st & MSTATUS_MPIE);          /* MIE was 1 */
	CHECK(!(st & MSTATUS_MIE));
	CHECK(csr_read(mstatus) & MSTATUS_MIE);   /* mret restored it */
	csr_clear(mstatus, MSTATUS_MIE);
	CHECK_TRAP(CAUSE_ECALL_M, __asm__ volatile("ecall"));
	CHECK(!(trap_last()->status & MSTATUS_MPIE));

	/* ebreak, 32-bit form */
	uint64_t pc;
	trap_expect();
	__asm__ volatile(NORVC("1: ebreak\nla %0, 1b") : "=r"(pc));
	CHECK_EQ(trap_end(), CAUSE_BREAKPOINT);
	CHECK_EQ(trap_last()->epc, pc);
	CHECK(trap_last()->tval == 0 || trap_last()->tval == pc);
}

static void access_faults(void)
{
	static const uint64_t holes[] = { 0x0, 0x20000 };
	for (unsigned int i = 0; i < 2; i++) {
		uint64_t a = holes[i], r;
		CHECK_TRAP(CAUSE_LOAD_ACCESS, r = LOAD("ld", a));
		CHECK_EQ(trap_last()->tval, a);
		CHECK_TRAP(CAUSE_LOAD_ACCESS, r = LOAD("lbu", a + 3));
		CHECK_EQ(trap_last()->tval, a + 3);
		CHECK_TRAP(CAUSE_STORE_ACCESS, STORE("sw", a + 8, 1));
		CHECK_EQ(trap_last()->tval, a + 8);
		/* AMO: the spec says store/AMO fault (7); QEMU 7.2 raises a load
		 * access fault (5) for the read half: accept both */
		trap_expect();
		AMO("amoadd.w", a, 1);
		uint64_t c = trap_end();
		CHECK(c == CAUSE_STORE_ACCESS || c == CAUSE_LOAD_ACCESS);
		if (i == 0 && c == CAUSE_LOAD_ACCESS)
			printf("note: AMO to an unmapped address raised a load access fault (5), not 7\n");
		CHECK_TRAP(CAUSE_FETCH_ACCESS, ((void (*)(void))a)());
		CHECK_EQ(trap_last()->tval, a);
		CHECK_EQ(trap_last()->epc, a);
		(void)r;
	}
}

static void counters(void)
{
	uint64_t c0, c1, i0, i1, t0, t1, m0;
	__asm__ volatile("rdcycle %0" : "=r"(c0));
	__asm__ volatile("rdinstret %0" : "=r"(i0));
	__asm__ volatile("rdtime %0" : "=r"(t0));
	m0 = mtime();
	for (volatile int k = 0; k < 1000; k++)
		;
	delay_ticks(100);
	__asm__ volatile("rdcycle %0" : "=r"(c1));
	__asm__ volatile("rdinstret %0" : "=r"(i1));
	__asm__ volatile("rdtime %0" : "=r"(t1));
	CHECK(c1 > c0);
	CHECK(i1 > i0 + 1000);
	CHECK(t1 >= t0 + 100);
	CHECK((int64_t)(t0 - m0) > -1000000 && (int64_t)(t0 - m0) < 1000000);     /* time mirrors mtime */
	CHECK_EQ(csr_read(mcycle) >= c1, 1);
	CHECK_EQ(csr_read(minstret) >= i1, 1);
	/* minstret is writable */
	csr_write(minstret, 1000);
	uint64_t iw = csr_read(minstret);
	CHECK(iw >= 1000 && iw < 1000000);   /* QEMU counts loosely */
}

int main(void)
{
	csr_ops();
	unimplemented_csr();
	illegal_and_env();
	access_faults();
	counters();
	return 0;
}
