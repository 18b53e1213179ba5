/* insn.h - one instruction on given operands, as inline asm in its 32-bit
 * form (.option norvc: the assembler must not compress it). */
#ifndef INSN_H
#define INSN_H
#include <stdint.h>

#define NORVC(s) ".option push\n.option norvc\n" s "\n.option pop\n"

#define RR(op, a, b) ({ uint64_t __r; __asm__ volatile(NORVC(op " %0, %1, %2") \
	: "=r"(__r) : "r"((uint64_t)(a)), "r"((uint64_t)(b))); __r; })
#define RI(op, a, imm) ({ uint64_t __r; __asm__ volatile(NORVC(op " %0, %1, %2") \
	: "=r"(__r) : "r"((uint64_t)(a)), "i"(imm)); __r; })
#define LOAD(op, addr) ({ uint64_t __r; __asm__ volatile(NORVC(op " %0, 0(%1)") \
	: "=r"(__r) : "r"(addr) : "memory"); __r; })
#define LOADO(op, addr, off) ({ uint64_t __r; __asm__ volatile(NORVC(op " %0, %2(%1)") \
	: "=r"(__r) : "r"(addr), "i"(off) : "memory"); __r; })
#define STORE(op, addr, v) __asm__ volatile(NORVC(op " %1, 0(%0)") \
	:: "r"(addr), "r"((uint64_t)(v)) : "memory")
#define STOREO(op, addr, off, v) __asm__ volatile(NORVC(op " %1, %2(%0)") \
	:: "r"(addr), "r"((uint64_t)(v)), "i"(off) : "memory")
/* Branch taken? */
#define BR(op, a, b) ({ uint64_t __t; __asm__ volatile(NORVC( \
	"li %0, 1\n" op " %1, %2, 1f\nli %0, 0\n1:") \
	: "=&r"(__t) : "r"((uint64_t)(a)), "r"((uint64_t)(b))); __t; })
#define AMO(op, addr, v) ({ uint64_t __r; __asm__ volatile(op " %0, %2, (%1)" \
	: "=r"(__r) : "r"(addr), "r"((uint64_t)(v)) : "memory"); __r; })
#endif
