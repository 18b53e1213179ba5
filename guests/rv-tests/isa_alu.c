/* isa_alu - RV64I: register and immediate ALU ops (W forms too), shifts by
 * edge amounts, LUI/AUIPC, SLT/SLTU edges, loads and stores of every width
 * with sign / zero extension, every branch condition, JAL/JALR. */
#include "rt.h"
#include "insn.h"

#define MIN64 0x8000000000000000UL
#define MAX64 0x7fffffffffffffffUL
#define ALL1  0xffffffffffffffffUL

static void alu(void)
{
	CHECK_EQ(RR("add", 1, 2), 3);
	CHECK_EQ(RR("add", MAX64, 1), MIN64);
	CHECK_EQ(RR("add", ALL1, 1), 0);
	CHECK_EQ(RR("sub", 0, 1), ALL1);
	CHECK_EQ(RR("sub", MIN64, 1), MAX64);
	CHECK_EQ(RR("and", 0xff00ff00ff00ff00UL, 0x0ff00ff00ff00ff0UL), 0x0f000f000f000f00UL);
	CHECK_EQ(RR("or", 0xff00ff00ff00ff00UL, 0x0ff00ff00ff00ff0UL), 0xfff0fff0fff0fff0UL);
	CHECK_EQ(RR("xor", 0xff00ff00ff00ff00UL, 0x0ff00ff00ff00ff0UL), 0xf0f0f0f0f0f0f0f0UL);
	CHECK_EQ(RI("addi", 0, -1), ALL1);
	CHECK_EQ(RI("addi", 5, -2048), (uint64_t)(5 - 2048));
	CHECK_EQ(RI("addi", 5, 2047), 2052);
	CHECK_EQ(RI("andi", 0x1234, -16), 0x1230);   /* imm sign-extended */
	CHECK_EQ(RI("ori", 0, -2048), 0xfffffffffffff800UL);
	CHECK_EQ(RI("xori", 0x0f0f, -1), ~0x0f0fUL);
	CHECK_EQ(RI("xori", 0x55, 0x7ff), 0x7aa);

	/* W forms: 32-bit result sign-extended */
	CHECK_EQ(RR("addw", 0x7fffffff, 1), 0xffffffff80000000UL);
	CHECK_EQ(RR("addw", 0xffffffff00000001UL, 0x100000001UL), 2);
	CHECK_EQ(RR("subw", 0x80000000UL, 1), 0x7fffffff);
	CHECK_EQ(RR("subw", 0, 1), ALL1);
	CHECK_EQ(RI("addiw", 0x7fffffff, 1), 0xffffffff80000000UL);
	CHECK_EQ(RI("addiw", 0x123456789UL, 0), 0x23456789);     /* sext.w */
	CHECK_EQ(RI("addiw", 0xfffffffffUL, 0), ALL1);

	/* shifts: amounts use the low 6 (5 for W) bits */
	CHECK_EQ(RR("sll", 1, 63), MIN64);
	CHECK_EQ(RR("sll", 1, 64), 1);
	CHECK_EQ(RR("sll", 1, 0x7f), MIN64);
	CHECK_EQ(RR("srl", MIN64, 63), 1);
	CHECK_EQ(RR("srl", MIN64, 64), MIN64);
	CHECK_EQ(RR("sra", MIN64, 63), ALL1);
	CHECK_EQ(RR("sra", MIN64, 0), MIN64);
	CHECK_EQ(RI("slli", 3, 62), 0xc000000000000000UL);
	CHECK_EQ(RI("srli", ALL1, 63), 1);
	CHECK_EQ(RI("srai", 0x4000000000000000UL, 62), 1);
	CHECK_EQ(RI("srai", MIN64, 1), 0xc000000000000000UL);
	CHECK_EQ(RR("sllw", 1, 31), 0xffffffff80000000UL);
	CHECK_EQ(RR("sllw", 1, 32), 1);
	CHECK_EQ(RR("sllw", 0xffffffff00000003UL, 1), 6);
	CHECK_EQ(RR("srlw", 0xffffffff80000000UL, 31), 1);
	CHECK_EQ(RR("srlw", 0xffffffff80000000UL, 0), 0xffffffff80000000UL);
	CHECK_EQ(RR("srlw", 0x80000000UL, 32), 0xffffffff80000000UL);
	CHECK_EQ(RR("sraw", 0x80000000UL, 31), ALL1);
	CHECK_EQ(RR("sraw", 0x1234567880000000UL, 4), 0xfffffffff8000000UL);
	CHECK_EQ(RI("slliw", 1, 31), 0xffffffff80000000UL);
	CHECK_EQ(RI("srliw", ALL1, 31), 1);
	CHECK_EQ(RI("srliw", ALL1, 0), ALL1);
	CHECK_EQ(RI("sraiw", 0x80000000UL, 31), ALL1);
	CHECK_EQ(RI("sraiw", 0x7fffffffUL, 30), 1);

	/* slt / sltu */
	CHECK_EQ(RR("slt", ALL1, 0), 1);
	CHECK_EQ(RR("slt", 0, ALL1), 0);
	CHECK_EQ(RR("slt", MIN64, MAX64), 1);
	CHECK_EQ(RR("slt", MAX64, MIN64), 0);
	CHECK_EQ(RR("slt", 5, 5), 0);
	CHECK_EQ(RR("sltu", ALL1, 0), 0);
	CHECK_EQ(RR("sltu", 0, ALL1), 1);
	CHECK_EQ(RR("sltu", MAX64, MIN64), 1);
	CHECK_EQ(RR("sltu", 5, 5), 0);
	CHECK_EQ(RI("slti", ALL1, 0), 1);
	CHECK_EQ(RI("slti", 0, -1), 0);
	CHECK_EQ(RI("slti", MIN64, -2048), 1);
	CHECK_EQ(RI("sltiu", 0, -1), 1);              /* imm sign-extends to all ones */
	CHECK_EQ(RI("sltiu", ALL1, -1), 0);
	CHECK_EQ(RI("sltiu", 0, 1), 1);               /* seqz */
	CHECK_EQ(RI("sltiu", 7, 1), 0);
	CHECK_EQ(RR("sltu", 0, 7), 1);                /* snez */

	/* lui / auipc */
	uint64_t r;
	__asm__ volatile("lui %0, 0x80000" : "=r"(r));
	CHECK_EQ(r, 0xffffffff80000000UL);
	__asm__ volatile("lui %0, 0x7ffff" : "=r"(r));
	CHECK_EQ(r, 0x7ffff000);
	__asm__ volatile("lui %0, 0xfffff" : "=r"(r));
	CHECK_EQ(r, 0xfffffffffffff000UL);
	uint64_t pc, a;
	__asm__ volatile(NORVC("1: auipc %0, 0\nla %1, 1b") : "=r"(a), "=r"(pc));
	CHECK_EQ(a, pc);
	__asm__ volatile(NORVC("1: auipc %0, 0x1\nla %1, 1b") : "=r"(a), "=r"(pc));
	CHECK_EQ(a, pc + 0x1000);
	__asm__ volatile(NORVC("1: auipc %0, 0xfffff\nla %1, 1b") : "=r"(a), "=r"(pc));
	CHECK_EQ(a, pc - 0x1000);
	/* x0 stays zero */
	__asm__ volatile(NORVC("addi x0, x0, 5\nmv %0, x0") : "=r"(r));
	CHECK_EQ(r, 0);
}

static uint64_t mem[4] __attribute__((aligned(16)));

static void loads_stores(void)
{
	uint8_t *b = (uint8_t *)mem;
	mem[0] = 0x8182838485868788UL;
	mem[1] = 0x7172737475767778UL;
	CHECK_EQ(LOAD("lb", b), 0xffffffffffffff88UL);
	CHECK_EQ(LOAD("lbu", b), 0x88);
	CHECK_EQ(LOAD("lb", b + 8), 0x78);
	CHECK_EQ(LOAD("lh", b), 0xffffffffffff8788UL);
	CHECK_EQ(LOAD("lhu", b), 0x8788);
	CHECK_EQ(LOAD("lh", b + 14), 0x7172);
	CHECK_EQ(LOAD("lw", b + 4), 0xffffffff81828384UL);
	CHECK_EQ(LOAD("lwu", b + 4), 0x81828384UL);
	CHECK_EQ(LOAD("lw", b + 8), 0x75767778);
	CHECK_EQ(LOAD("ld", b), 0x8182838485868788UL);
	CHECK_EQ(LOADO("lbu", b + 8, -1), 0x81);      /* negative offset */
	CHECK_EQ(LOADO("lhu", b, 6), 0x8182);
	CHECK_EQ(LOADO("ld", (uint64_t)b + 2048, -2040), 0x7172737475767778UL);

	mem[2] = 0;
	STORE("sb", b + 16, 0x1234567890abcdefUL);
	CHECK_EQ(mem[2], 0xef);
	STORE("sh", b + 18, 0x1234567890abcdefUL);
	CHECK_EQ(mem[2], 0xcdef00ef);
	STORE("sw", b + 20, 0x1234567890abcdefUL);
	CHECK_EQ(mem[2], 0x90abcdefcdef00efUL);
	STORE("sd", b + 24, 0x1234567890abcdefUL);
	CHECK_EQ(mem[3], 0x1234567890abcdefUL);
	CHECK_EQ(mem[2], 0x90abcdefcdef00efUL);       /* neighbours intact */
	STOREO("sb", b + 24, 7, 0xaa);
	CHECK_EQ(mem[3], 0xaa34567890abcdefUL);
	STOREO("sh", b + 32, -8, 0x5555);
	CHECK_EQ(mem[3], 0xaa34567890ab5555UL);
}

static void branches(void)
{
	static const uint64_t v[] = { 0, 1, 2, ALL1, ALL1 - 1, MIN64, MAX64, 0x80000000UL,
				      0xffffffff80000000UL };
	const unsigned int n = sizeof(v) / sizeof(v[0]);
	for (unsigned int i = 0; i < n; i++) {
		for (unsigned int j = 0; j < n; j++) {
			uint64_t a = v[i], c = v[j];
			int64_t sa = (int64_t)a, sc = (int64_t)c;
			if (BR("beq", a, c) != (a == c) || BR("bne", a, c) != (a != c) ||
			    BR("blt", a, c) != (sa < sc) || BR("bge", a, c) != (sa >= sc) ||
			    BR("bltu", a, c) != (a < c) || BR("bgeu", a, c) != (a >= c)) {
				printf("FAIL %s:%d: branch on 0x%lx, 0x%lx\n", __FILE__, __LINE__, a, c);
				check_failures++;
			}
		}
	}
	/* backward branch: a counted loop */
	uint64_t cnt = 0, k = 10;
	__asm__ volatile(NORVC("1: addi %0, %0, 1\naddi %1, %1, -1\nbnez %1, 1b")
			 : "+r"(cnt), "+r"(k));
	CHECK_EQ(cnt, 10);
}

static void jumps(void)
{
	uint64_t link, exp, r;
	/* jal: rd = pc + 4 */
	__asm__ volatile(NORVC("jal %0, 1f\n2: nop\n1: la %1, 2b") : "=r"(link), "=r"(exp));
	CHECK_EQ(link, exp);
	/* jal x0 (j) forward skips */
	__asm__ volatile(NORVC("li %0, 1\nj 1f\nli %0, 2\n1:") : "=&r"(r));
	CHECK_EQ(r, 1);
	/* jalr with offset and an odd target: bit 0 cleared */
	__asm__ volatile(NORVC("la t0, 1f\naddi t0, t0, -3\n"
			       "jalr %0, 4(t0)\n2: nop\nnop\n1: la %1, 2b")
			 : "=r"(link), "=r"(exp) :: "t0");
	CHECK_EQ(link, exp);
	__asm__ volatile(NORVC("li %0, 7\nla t0, 1f\nori t0, t0, 1\njalr x0, 0(t0)\n"
			       "li %0, 8\n1:") : "=&r"(r) :: "t0");
	CHECK_EQ(r, 7);
	/* jalr rd = rs1: target read before the link is written */
	__asm__ volatile(NORVC("la t0, 1f\njalr t0, 0(t0)\n2: nop\n1: la %1, 2b\nmv %0, t0")
			 : "=r"(link), "=r"(exp) :: "t0");
	CHECK_EQ(link, exp);
	/* negative jalr offset */
	__asm__ volatile(NORVC("la t0, 1f\naddi t0, t0, 16\njalr %0, -16(t0)\n2: nop\n1: la %1, 2b")
			 : "=r"(link), "=r"(exp) :: "t0");
	/* the return address is that of the jalr's next insn (label 2) */
	CHECK_EQ(link, exp);
}

int main(void)
{
	alu();
	loads_stores();
	branches();
	jumps();
	return 0;
}
