/* SPDX-License-Identifier: MIT */
/*
 * rv_asm.h - a tiny RISC-V assembler for the hart suites: one function per
 * instruction, returning its 32-bit encoding, so that a test writes its
 * guest program in C (no cross toolchain). Only what the suites use;
 * branch and jump offsets are in bytes, relative to the instruction.
 * Header-only.
 */
#ifndef TANDEM_TESTS_HARNESS_RV_ASM_H
#define TANDEM_TESTS_HARNESS_RV_ASM_H

#include <stdint.h>

enum { ZERO, RA, SP, GP, TP, T0, T1, T2, S0, S1, A0, A1, A2, A3, A4, A5,
       A6, A7, S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, T3, T4, T5, T6 };

#define WFI      0x10500073u
#define FENCE_I  0x0000100fu
#define ECALL    0x00000073u

#define CSR_SATP     0x180
#define CSR_MSTATUS  0x300
#define CSR_MIE      0x304
#define CSR_MTVEC    0x305
#define CSR_MSCRATCH 0x340
#define CSR_MCAUSE   0x342
#define CSR_MHARTID  0xf14

static inline uint32_t i_type(uint32_t op, uint32_t f3, int rd, int rs1, int32_t imm)
{
	return ((uint32_t)imm & 0xfff) << 20 | (uint32_t)rs1 << 15 | f3 << 12 |
	       (uint32_t)rd << 7 | op;
}

static inline uint32_t r_type(uint32_t f7, uint32_t f3, int rd, int rs1, int rs2, uint32_t op)
{
	return f7 << 25 | (uint32_t)rs2 << 20 | (uint32_t)rs1 << 15 | f3 << 12 |
	       (uint32_t)rd << 7 | op;
}

static inline uint32_t s_type(uint32_t f3, int rs2, int rs1, int32_t imm)
{
	return ((uint32_t)imm >> 5 & 0x7f) << 25 | (uint32_t)rs2 << 20 | (uint32_t)rs1 << 15 |
	       f3 << 12 | ((uint32_t)imm & 0x1f) << 7 | 0x23;
}

static inline uint32_t addi(int rd, int rs1, int32_t imm) { return i_type(0x13, 0, rd, rs1, imm); }
static inline uint32_t slli(int rd, int rs1, int sh) { return i_type(0x13, 1, rd, rs1, sh); }
static inline uint32_t srli(int rd, int rs1, int sh) { return i_type(0x13, 5, rd, rs1, sh); }
static inline uint32_t ld(int rd, int rs1, int32_t imm) { return i_type(0x03, 3, rd, rs1, imm); }
static inline uint32_t jalr(int rd, int rs1, int32_t imm) { return i_type(0x67, 0, rd, rs1, imm); }
static inline uint32_t add(int rd, int rs1, int rs2) { return r_type(0, 0, rd, rs1, rs2, 0x33); }
static inline uint32_t or_(int rd, int rs1, int rs2) { return r_type(0, 6, rd, rs1, rs2, 0x33); }
static inline uint32_t sd(int rs2, int rs1, int32_t imm) { return s_type(3, rs2, rs1, imm); }
static inline uint32_t sw(int rs2, int rs1, int32_t imm) { return s_type(2, rs2, rs1, imm); }

static inline uint32_t jal(int rd, int32_t off)
{
	uint32_t o = (uint32_t)off;

	return (o >> 20 & 1) << 31 | (o >> 1 & 0x3ff) << 21 | (o >> 11 & 1) << 20 |
	       (o >> 12 & 0xff) << 12 | (uint32_t)rd << 7 | 0x6f;
}

static inline uint32_t bne(int rs1, int rs2, int32_t off)
{
	uint32_t o = (uint32_t)off;

	return (o >> 12 & 1) << 31 | (o >> 5 & 0x3f) << 25 | (uint32_t)rs2 << 20 |
	       (uint32_t)rs1 << 15 | 1u << 12 | (o >> 1 & 0xf) << 8 | (o >> 11 & 1) << 7 | 0x63;
}

static inline uint32_t beq(int rs1, int rs2, int32_t off)
{
	return bne(rs1, rs2, off) & ~(7u << 12);
}

static inline uint32_t csrrw(int rd, unsigned int csr, int rs1)
{
	return csr << 20 | (uint32_t)rs1 << 15 | 1u << 12 | (uint32_t)rd << 7 | 0x73;
}

static inline uint32_t csrrs(int rd, unsigned int csr, int rs1)
{
	return csr << 20 | (uint32_t)rs1 << 15 | 2u << 12 | (uint32_t)rd << 7 | 0x73;
}

static inline uint32_t csrrc(int rd, unsigned int csr, int rs1)
{
	return csr << 20 | (uint32_t)rs1 << 15 | 3u << 12 | (uint32_t)rd << 7 | 0x73;
}

/* sfence.vma rs1, rs2: x0 for rs1 means every address, for rs2 every ASID. */
static inline uint32_t sfence_vma(int rs1, int rs2) { return r_type(0x09, 0, 0, rs1, rs2, 0x73); }

static inline uint32_t amoadd_d(int rd, int rs1, int rs2) { return r_type(0, 3, rd, rs1, rs2, 0x2f); }
static inline uint32_t lr_d(int rd, int rs1) { return r_type(2u << 2, 3, rd, rs1, 0, 0x2f); }
static inline uint32_t sc_d(int rd, int rs1, int rs2) { return r_type(3u << 2, 3, rd, rs1, rs2, 0x2f); }

/* reg = 0x8000_0000 (the fixture's RAM base, rv_fixture.h) + off, off
 * < 2^31 and a multiple of 4096 or below 2048; t6 is scratch. Returns the
 * number of instructions emitted at p. */
static inline unsigned int emit_base(uint32_t *p, int reg, uint32_t off)
{
	unsigned int n = 0;

	p[n++] = addi(reg, ZERO, 1);
	p[n++] = slli(reg, reg, 31);
	if (off >= 2048) {
		p[n++] = addi(T6, ZERO, (int32_t)(off >> 12));
		p[n++] = slli(T6, T6, 12);
		p[n++] = add(reg, reg, T6);
	} else if (off) {
		p[n++] = addi(reg, reg, (int32_t)off);
	}
	return n;
}

#endif
