/* SPDX-License-Identifier: MIT */
/*
 * exec.c - the RV64IMAC interpreter: a decoder, and a threaded dispatch
 * loop over decoded code pages (rv_int.h, struct rv_code_page).
 *
 * Decoding is lazy: a page's slots start as DECODE, which decodes the
 * instruction at its offset from the page's raw copy, rewrites the slot
 * and runs it. Compressed instructions decode to the slot of the 32-bit
 * instruction they expand to, with len 2. The slot after the last one is
 * a sentinel (PAGE_END), so straight-line code needs no bounds check.
 *
 * Fetch: the current page's slots are used while pc stays in its guest
 * page; a taken branch or jump inside the page indexes the slots directly,
 * anything else goes through rv_code_lookup (fetch soft TLB, then the
 * walk and decoded-code cache). Requests, the interrupt hint and the
 * budget are checked at every taken branch, page crossing and trap, so
 * the hart answers a kick within a bounded number of instructions.
 *
 * Loads and stores hit the data soft TLB inline (relaxed atomics on the
 * host frame: other harts may touch the same guest word) and call
 * mmu.c's slow paths on a miss. A slow path that saw a soft-TLB flush
 * (h->gen moved) makes the next fetch go through rv_code_lookup, which
 * checks the decoded page against guest memory again.
 */
#include <errno.h>
#include <pthread.h>
#include "rv_int.h"
#include "kvm/kvm_host.h"

#define RV_OPS(X) \
	X(DECODE) X(PAGE_END) X(STRADDLE) X(ILLEGAL) \
	X(LUI) X(AUIPC) X(JAL) X(JALR) \
	X(BEQ) X(BNE) X(BLT) X(BGE) X(BLTU) X(BGEU) \
	X(LB) X(LH) X(LW) X(LD) X(LBU) X(LHU) X(LWU) \
	X(SB) X(SH) X(SW) X(SD) \
	X(ADDI) X(SLTI) X(SLTIU) X(XORI) X(ORI) X(ANDI) X(SLLI) X(SRLI) X(SRAI) \
	X(ADD) X(SUB) X(SLL) X(SLT) X(SLTU) X(XOR) X(SRL) X(SRA) X(OR) X(AND) \
	X(ADDIW) X(SLLIW) X(SRLIW) X(SRAIW) X(ADDW) X(SUBW) X(SLLW) X(SRLW) X(SRAW) \
	X(MUL) X(MULH) X(MULHSU) X(MULHU) X(DIV) X(DIVU) X(REM) X(REMU) \
	X(MULW) X(DIVW) X(DIVUW) X(REMW) X(REMUW) \
	X(LR) X(SC) X(AMO) \
	X(FENCE) X(FENCE_I) X(ECALL) X(EBREAK) X(MRET) X(SRET) X(WFI) X(SFENCE_VMA) \
	X(CSRRW) X(CSRRS) X(CSRRC) X(CSRRWI) X(CSRRSI) X(CSRRCI)

#define OP_ENUM(n) OP_##n,
enum rv_op { RV_OPS(OP_ENUM) OP_COUNT };

/* The interpreter's label addresses, exported once (rv_exec(NULL)). */
static const void *const *ops;
static pthread_once_t ops_once = PTHREAD_ONCE_INIT;

/* Chunk budget: taken branches / page crossings before the run loop
 * looks at the clock for timer interrupts. */
#define RV_BUDGET 8192

static inline int32_t sext(uint32_t v, unsigned int bits)
{
	return (int32_t)(v << (32 - bits)) >> (32 - bits);
}

static void set(struct rv_insn *d, enum rv_op op, unsigned int rd, unsigned int rs1,
		unsigned int rs2, int32_t imm)
{
	d->handler = ops[op];
	d->rd = rd ? rd : 32;   /* writes to x0 land in the sink */
	d->rs1 = rs1;
	d->rs2 = rs2;
	d->imm = imm;
}

static void illegal(struct rv_insn *d, uint32_t bits)
{
	set(d, OP_ILLEGAL, 0, 0, 0, (int32_t)bits);
}

static void decode32(uint32_t i, struct rv_insn *d)
{
	unsigned int opc = i & 0x7f, rd = (i >> 7) & 31, f3 = (i >> 12) & 7;
	unsigned int rs1 = (i >> 15) & 31, rs2 = (i >> 20) & 31, f7 = i >> 25;
	int32_t imm_i = (int32_t)i >> 20;
	int32_t imm_s = (((int32_t)i >> 25) * 32) | (int32_t)((i >> 7) & 31);
	int32_t imm_b = sext(((i >> 31) << 12) | (((i >> 7) & 1) << 11) |
			     (((i >> 25) & 63) << 5) | (((i >> 8) & 15) << 1), 13);
	int32_t imm_u = (int32_t)(i & 0xfffff000);
	int32_t imm_j = sext(((i >> 31) << 20) | (i & 0xff000) | (((i >> 20) & 1) << 11) |
			     (((i >> 21) & 0x3ff) << 1), 21);
	static const enum rv_op br[8] = { OP_BEQ, OP_BNE, OP_ILLEGAL, OP_ILLEGAL,
					  OP_BLT, OP_BGE, OP_BLTU, OP_BGEU };
	static const enum rv_op ld[8] = { OP_LB, OP_LH, OP_LW, OP_LD,
					  OP_LBU, OP_LHU, OP_LWU, OP_ILLEGAL };
	static const enum rv_op st[8] = { OP_SB, OP_SH, OP_SW, OP_SD, OP_ILLEGAL,
					  OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL };
	static const enum rv_op alu[8] = { OP_ADD, OP_SLL, OP_SLT, OP_SLTU,
					   OP_XOR, OP_SRL, OP_OR, OP_AND };
	static const enum rv_op mul[8] = { OP_MUL, OP_MULH, OP_MULHSU, OP_MULHU,
					   OP_DIV, OP_DIVU, OP_REM, OP_REMU };
	static const enum rv_op mulw[8] = { OP_MULW, OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL,
					    OP_DIVW, OP_DIVUW, OP_REMW, OP_REMUW };
	static const enum rv_op csr[8] = { OP_ILLEGAL, OP_CSRRW, OP_CSRRS, OP_CSRRC,
					   OP_ILLEGAL, OP_CSRRWI, OP_CSRRSI, OP_CSRRCI };
	enum rv_op op = OP_ILLEGAL;
	int32_t imm = 0;

	d->len = 4;
	switch (opc) {
	case 0x37: op = OP_LUI; imm = imm_u; break;
	case 0x17: op = OP_AUIPC; imm = imm_u; break;
	case 0x6f: op = OP_JAL; imm = imm_j; break;
	case 0x67: if (f3 == 0) { op = OP_JALR; imm = imm_i; } break;
	case 0x63: op = br[f3]; imm = imm_b; break;
	case 0x03: op = ld[f3]; imm = imm_i; break;
	case 0x23: op = st[f3]; imm = imm_s; break;
	case 0x13:
		imm = imm_i;
		switch (f3) {
		case 0: op = OP_ADDI; break;
		case 2: op = OP_SLTI; break;
		case 3: op = OP_SLTIU; break;
		case 4: op = OP_XORI; break;
		case 6: op = OP_ORI; break;
		case 7: op = OP_ANDI; break;
		case 1: if ((i >> 26) == 0) { op = OP_SLLI; imm = (i >> 20) & 63; } break;
		case 5:
			if ((i >> 26) == 0)
				op = OP_SRLI;
			else if ((i >> 26) == 0x10)
				op = OP_SRAI;
			imm = (i >> 20) & 63;
			break;
		}
		break;
	case 0x1b:
		switch (f3) {
		case 0: op = OP_ADDIW; imm = imm_i; break;
		case 1: if (f7 == 0) op = OP_SLLIW; imm = rs2; break;
		case 5:
			if (f7 == 0)
				op = OP_SRLIW;
			else if (f7 == 0x20)
				op = OP_SRAIW;
			imm = rs2;
			break;
		}
		break;
	case 0x33:
		if (f7 == 0)
			op = alu[f3];
		else if (f7 == 1)
			op = mul[f3];
		else if (f7 == 0x20 && f3 == 0)
			op = OP_SUB;
		else if (f7 == 0x20 && f3 == 5)
			op = OP_SRA;
		break;
	case 0x3b:
		if (f7 == 1)
			op = mulw[f3];
		else if (f7 == 0 && f3 == 0)
			op = OP_ADDW;
		else if (f7 == 0 && f3 == 1)
			op = OP_SLLW;
		else if (f7 == 0 && f3 == 5)
			op = OP_SRLW;
		else if (f7 == 0x20 && f3 == 0)
			op = OP_SUBW;
		else if (f7 == 0x20 && f3 == 5)
			op = OP_SRAW;
		break;
	case 0x0f:
		if (f3 == 0)
			op = OP_FENCE;
		else if (f3 == 1)
			op = OP_FENCE_I;
		break;
	case 0x73:
		if (f3 == 0) {
			if (i == 0x00000073)
				op = OP_ECALL;
			else if (i == 0x00100073)
				op = OP_EBREAK;
			else if (i == 0x30200073)
				op = OP_MRET;
			else if (i == 0x10200073)
				op = OP_SRET;
			else if (i == 0x10500073)
				op = OP_WFI;
			else if (f7 == 0x09 && rd == 0)
				op = OP_SFENCE_VMA;
		} else {
			op = csr[f3];
			imm = (int32_t)(i >> 20);
		}
		break;
	case 0x2f:
		if (f3 == 2 || f3 == 3) {
			unsigned int f5 = i >> 27;

			imm = (int32_t)(f5 | (f3 == 3 ? 0x100 : 0));
			if (f5 == 2)
				op = rs2 == 0 ? OP_LR : OP_ILLEGAL;
			else if (f5 == 3)
				op = OP_SC;
			else if (f5 == 0 || f5 == 1 || f5 == 4 || f5 == 8 || f5 == 12 ||
				 f5 == 16 || f5 == 20 || f5 == 24 || f5 == 28)
				op = OP_AMO;
		}
		break;
	}
	if (op == OP_ILLEGAL) {
		illegal(d, i);
		return;
	}
	set(d, op, rd, rs1, rs2, imm);
}

static void decode16(uint16_t c, struct rv_insn *d)
{
	unsigned int f3 = c >> 13;
	unsigned int rdp = ((c >> 2) & 7) + 8, rs1p = ((c >> 7) & 7) + 8;
	unsigned int rd = (c >> 7) & 31, rs2 = (c >> 2) & 31;
	int32_t imm6 = sext((((c >> 12) & 1u) << 5) | ((c >> 2) & 31u), 6);
	unsigned int uimm;

	d->len = 2;
	switch (c & 3) {
	case 0:
		switch (f3) {
		case 0:
			uimm = (((c >> 6) & 1u) << 2) | (((c >> 5) & 1u) << 3) |
			       (((c >> 11) & 3u) << 4) | (((c >> 7) & 15u) << 6);
			if (!uimm)
				goto bad;
			set(d, OP_ADDI, rdp, 2, 0, (int32_t)uimm);
			return;
		case 2:
		case 6:
			uimm = (((c >> 10) & 7u) << 3) | (((c >> 6) & 1u) << 2) | (((c >> 5) & 1u) << 6);
			if (f3 == 2)
				set(d, OP_LW, rdp, rs1p, 0, (int32_t)uimm);
			else
				set(d, OP_SW, 0, rs1p, rdp, (int32_t)uimm);
			return;
		case 3:
		case 7:
			uimm = (((c >> 10) & 7u) << 3) | (((c >> 5) & 3u) << 6);
			if (f3 == 3)
				set(d, OP_LD, rdp, rs1p, 0, (int32_t)uimm);
			else
				set(d, OP_SD, 0, rs1p, rdp, (int32_t)uimm);
			return;
		}
		goto bad;
	case 1:
		switch (f3) {
		case 0: set(d, OP_ADDI, rd, rd, 0, imm6); return;
		case 1:
			if (!rd)
				goto bad;
			set(d, OP_ADDIW, rd, rd, 0, imm6);
			return;
		case 2: set(d, OP_ADDI, rd, 0, 0, imm6); return;
		case 3:
			if (rd == 2) {
				int32_t nz = sext((((c >> 12) & 1u) << 9) | (((c >> 6) & 1u) << 4) |
						  (((c >> 5) & 1u) << 6) | (((c >> 3) & 3u) << 7) |
						  (((c >> 2) & 1u) << 5), 10);
				if (!nz)
					goto bad;
				set(d, OP_ADDI, 2, 2, 0, nz);
				return;
			}
			if (!imm6)
				goto bad;
			set(d, OP_LUI, rd, 0, 0, (int32_t)((uint32_t)imm6 << 12));
			return;
		case 4: {
			unsigned int shamt = (((c >> 12) & 1u) << 5) | ((c >> 2) & 31u);

			switch ((c >> 10) & 3) {
			case 0: set(d, OP_SRLI, rs1p, rs1p, 0, (int32_t)shamt); return;
			case 1: set(d, OP_SRAI, rs1p, rs1p, 0, (int32_t)shamt); return;
			case 2: set(d, OP_ANDI, rs1p, rs1p, 0, imm6); return;
			}
			static const enum rv_op ops3[8] = { OP_SUB, OP_XOR, OP_OR, OP_AND,
							    OP_SUBW, OP_ADDW, OP_ILLEGAL, OP_ILLEGAL };
			enum rv_op op = ops3[(((c >> 12) & 1u) << 2) | ((c >> 5) & 3u)];

			if (op == OP_ILLEGAL)
				goto bad;
			set(d, op, rs1p, rs1p, rdp, 0);
			return;
		}
		case 5: {
			int32_t imm = sext((((c >> 12) & 1u) << 11) | (((c >> 11) & 1u) << 4) |
					   (((c >> 9) & 3u) << 8) | (((c >> 8) & 1u) << 10) |
					   (((c >> 7) & 1u) << 6) | (((c >> 6) & 1u) << 7) |
					   (((c >> 3) & 7u) << 1) | (((c >> 2) & 1u) << 5), 12);

			set(d, OP_JAL, 0, 0, 0, imm);
			return;
		}
		default: {      /* 6, 7: c.beqz, c.bnez */
			int32_t imm = sext((((c >> 12) & 1u) << 8) | (((c >> 10) & 3u) << 3) |
					   (((c >> 5) & 3u) << 6) | (((c >> 3) & 3u) << 1) |
					   (((c >> 2) & 1u) << 5), 9);

			set(d, f3 == 6 ? OP_BEQ : OP_BNE, 0, rs1p, 0, imm);
			return;
		}
		}
	case 2:
		switch (f3) {
		case 0:
			set(d, OP_SLLI, rd, rd, 0, (int32_t)((((c >> 12) & 1u) << 5) | rs2));
			return;
		case 2:
			if (!rd)
				goto bad;
			uimm = (((c >> 12) & 1u) << 5) | (((c >> 4) & 7u) << 2) | (((c >> 2) & 3u) << 6);
			set(d, OP_LW, rd, 2, 0, (int32_t)uimm);
			return;
		case 3:
			if (!rd)
				goto bad;
			uimm = (((c >> 12) & 1u) << 5) | (((c >> 5) & 3u) << 3) | (((c >> 2) & 7u) << 6);
			set(d, OP_LD, rd, 2, 0, (int32_t)uimm);
			return;
		case 4:
			if (!((c >> 12) & 1)) {
				if (!rs2) {
					if (!rd)
						goto bad;
					set(d, OP_JALR, 0, rd, 0, 0);           /* c.jr */
				} else {
					set(d, OP_ADD, rd, 0, rs2, 0);          /* c.mv */
				}
			} else if (!rd && !rs2) {
				set(d, OP_EBREAK, 0, 0, 0, 0);
			} else if (!rs2) {
				set(d, OP_JALR, 1, rd, 0, 0);                   /* c.jalr */
			} else {
				set(d, OP_ADD, rd, rd, rs2, 0);
			}
			return;
		case 6:
			uimm = (((c >> 9) & 15u) << 2) | (((c >> 7) & 3u) << 6);
			set(d, OP_SW, 0, 2, rs2, (int32_t)uimm);
			return;
		case 7:
			uimm = (((c >> 10) & 7u) << 3) | (((c >> 7) & 7u) << 6);
			set(d, OP_SD, 0, 2, rs2, (int32_t)uimm);
			return;
		}
		goto bad;
	}
bad:
	illegal(d, c);
}

static void ops_init(void)
{
	(void)rv_exec(NULL);
}

void rv_code_page_reset(struct rv_hart *h, struct rv_code_page *p)
{
	(void)h;
	pthread_once(&ops_once, ops_init);
	for (unsigned int i = 0; i < RV_SLOTS; i++)
		p->slot[i].handler = ops[OP_DECODE];
	p->slot[RV_SLOTS].handler = ops[OP_PAGE_END];
	p->slot[RV_SLOTS].len = 0;
}

#define PG_MASK (~(uint64_t)(PAGE_SIZE - 1))
#define X(r) x[r]
#define DTLB(a) ((struct stlb_entry *)((char *)h->dtlb + stlb_offset(a)))

int rv_exec(struct rv_hart *h)
{
#define OP_LABEL(n) &&op_##n,
	static const void *const labels[OP_COUNT] = { RV_OPS(OP_LABEL) };
	uint64_t *x, pc, icount = 0, g;
	struct rv_code_page *cp = NULL;
	struct rv_insn *s = NULL, *base = NULL;
	uint64_t page_pc = 0;
	_Atomic unsigned long *req;
	int budget = RV_BUDGET, r = 0;

	if (!h) {
		ops = labels;
		return 0;
	}
	x = h->x;
	pc = h->pc;
	req = &h->v->kvm_vcpu.requests;

#define DISPATCH() goto *s->handler
#define NEXT() do { pc += s->len; icount++; s += s->len >> 1; DISPATCH(); } while (0)
/* After a slow path: if the soft TLB was flushed meanwhile, the decoded
 * page must be checked again before the next instruction. */
#define NEXT_SLOW() do { if (unlikely(h->gen != g)) { pc += s->len; icount++; goto check; } \
			 NEXT(); } while (0)
#define JUMP(t) do { pc = (t); icount++; \
		     if (unlikely(atomic_load_explicit(req, memory_order_relaxed) | \
				  atomic_load_explicit(&h->irq_hint, memory_order_relaxed) | \
				  (--budget < 0))) goto out; \
		     if (likely(((pc ^ page_pc) & PG_MASK) == 0)) { \
			     s = base + ((pc & (PAGE_SIZE - 1)) >> 1); DISPATCH(); } \
		     goto lookup; } while (0)
#define SLOW(call) do { g = h->gen; r = (call); if (unlikely(r)) goto slow_fail; } while (0)

#define LOAD(ut, st, size) do { \
	uint64_t a_ = X(s->rs1) + (int64_t)s->imm; \
	struct stlb_entry *e_ = DTLB(a_); \
	if (likely(e_->addr_read == (a_ & (PG_MASK | (size - 1))))) { \
		X(s->rd) = (uint64_t)(int64_t)(st)__atomic_load_n((ut *)(e_->addend + a_), \
								 __ATOMIC_RELAXED); \
		NEXT(); } \
	uint64_t v_; \
	SLOW(rv_load_slow(h, a_, size, &v_)); \
	X(s->rd) = (uint64_t)(int64_t)(st)v_; \
	NEXT_SLOW(); } while (0)

#define STORE(ut, size) do { \
	uint64_t a_ = X(s->rs1) + (int64_t)s->imm; \
	struct stlb_entry *e_ = DTLB(a_); \
	if (likely(e_->addr_write == (a_ & (PG_MASK | (size - 1))))) { \
		__atomic_store_n((ut *)(e_->addend + a_), (ut)X(s->rs2), __ATOMIC_RELAXED); \
		NEXT(); } \
	SLOW(rv_store_slow(h, a_, size, X(s->rs2))); \
	NEXT_SLOW(); } while (0)

check:
	if (unlikely(atomic_load_explicit(req, memory_order_relaxed) |
		     atomic_load_explicit(&h->irq_hint, memory_order_relaxed) | (--budget < 0)))
		goto out;
lookup:
	g = h->gen;
	r = rv_code_lookup(h, pc, &cp);
	if (unlikely(r))
		goto fetch_fail;
	base = cp->slot;
	page_pc = pc & PG_MASK;
	s = base + ((pc & (PAGE_SIZE - 1)) >> 1);
	DISPATCH();

fetch_fail:
	if (r == RV_EXC) {
		pc = rv_trap(h, pc, h->exc_cause, h->exc_tval, false);
		goto check;
	}
	goto out_err;
slow_fail:
	if (r == RV_EXC) {
		pc = rv_trap(h, pc, h->exc_cause, h->exc_tval, false);
		goto check;
	}
	goto out_err;

op_DECODE: {
		unsigned int off = (unsigned int)(s - base) * 2;
		const uint8_t *raw = (const uint8_t *)cp->raw;
		uint16_t lo = (uint16_t)(raw[off] | raw[off + 1] << 8);

		if ((lo & 3) != 3)
			decode16(lo, s);
		else if (off == PAGE_SIZE - 2)
			s->handler = ops[OP_STRADDLE], s->len = 4;
		else
			decode32(lo | (uint32_t)raw[off + 2] << 16 | (uint32_t)raw[off + 3] << 24, s);
		DISPATCH();
	}
op_PAGE_END:
	goto check;     /* pc is already the next page's first byte */
op_STRADDLE: {
		uint16_t hi;
		const uint8_t *raw = (const uint8_t *)cp->raw;

		SLOW(rv_fetch16_slow(h, pc + 2, &hi));
		if (h->gen != g)
			goto check;     /* flushed: look the page up again */
		decode32((uint32_t)(raw[PAGE_SIZE - 2] | raw[PAGE_SIZE - 1] << 8) |
			 (uint32_t)hi << 16, &h->tmp[0]);
		h->tmp[2].handler = ops[OP_PAGE_END];
		h->tmp[2].len = 0;
		s = &h->tmp[0];
		DISPATCH();
	}
op_ILLEGAL:
	h->exc_cause = EXC_ILLEGAL;
	h->exc_tval = (uint32_t)s->imm;
	r = RV_EXC;
	goto slow_fail;

op_LUI: X(s->rd) = (uint64_t)(int64_t)s->imm; NEXT();
op_AUIPC: X(s->rd) = pc + (int64_t)s->imm; NEXT();
op_JAL: {
		uint64_t t = pc + (int64_t)s->imm;

		X(s->rd) = pc + s->len;
		JUMP(t);
	}
op_JALR: {
		uint64_t t = (X(s->rs1) + (int64_t)s->imm) & ~1ULL;

		X(s->rd) = pc + s->len;
		JUMP(t);
	}
op_BEQ: if (X(s->rs1) == X(s->rs2)) JUMP(pc + (int64_t)s->imm); NEXT();
op_BNE: if (X(s->rs1) != X(s->rs2)) JUMP(pc + (int64_t)s->imm); NEXT();
op_BLT: if ((int64_t)X(s->rs1) < (int64_t)X(s->rs2)) JUMP(pc + (int64_t)s->imm); NEXT();
op_BGE: if ((int64_t)X(s->rs1) >= (int64_t)X(s->rs2)) JUMP(pc + (int64_t)s->imm); NEXT();
op_BLTU: if (X(s->rs1) < X(s->rs2)) JUMP(pc + (int64_t)s->imm); NEXT();
op_BGEU: if (X(s->rs1) >= X(s->rs2)) JUMP(pc + (int64_t)s->imm); NEXT();

op_LB: LOAD(uint8_t, int8_t, 1);
op_LH: LOAD(uint16_t, int16_t, 2);
op_LW: LOAD(uint32_t, int32_t, 4);
op_LD: LOAD(uint64_t, int64_t, 8);
op_LBU: LOAD(uint8_t, uint8_t, 1);
op_LHU: LOAD(uint16_t, uint16_t, 2);
op_LWU: LOAD(uint32_t, uint32_t, 4);
op_SB: STORE(uint8_t, 1);
op_SH: STORE(uint16_t, 2);
op_SW: STORE(uint32_t, 4);
op_SD: STORE(uint64_t, 8);

op_ADDI: X(s->rd) = X(s->rs1) + (int64_t)s->imm; NEXT();
op_SLTI: X(s->rd) = (int64_t)X(s->rs1) < (int64_t)s->imm; NEXT();
op_SLTIU: X(s->rd) = X(s->rs1) < (uint64_t)(int64_t)s->imm; NEXT();
op_XORI: X(s->rd) = X(s->rs1) ^ (uint64_t)(int64_t)s->imm; NEXT();
op_ORI: X(s->rd) = X(s->rs1) | (uint64_t)(int64_t)s->imm; NEXT();
op_ANDI: X(s->rd) = X(s->rs1) & (uint64_t)(int64_t)s->imm; NEXT();
op_SLLI: X(s->rd) = X(s->rs1) << s->imm; NEXT();
op_SRLI: X(s->rd) = X(s->rs1) >> s->imm; NEXT();
op_SRAI: X(s->rd) = (uint64_t)((int64_t)X(s->rs1) >> s->imm); NEXT();
op_ADD: X(s->rd) = X(s->rs1) + X(s->rs2); NEXT();
op_SUB: X(s->rd) = X(s->rs1) - X(s->rs2); NEXT();
op_SLL: X(s->rd) = X(s->rs1) << (X(s->rs2) & 63); NEXT();
op_SLT: X(s->rd) = (int64_t)X(s->rs1) < (int64_t)X(s->rs2); NEXT();
op_SLTU: X(s->rd) = X(s->rs1) < X(s->rs2); NEXT();
op_XOR: X(s->rd) = X(s->rs1) ^ X(s->rs2); NEXT();
op_SRL: X(s->rd) = X(s->rs1) >> (X(s->rs2) & 63); NEXT();
op_SRA: X(s->rd) = (uint64_t)((int64_t)X(s->rs1) >> (X(s->rs2) & 63)); NEXT();
op_OR: X(s->rd) = X(s->rs1) | X(s->rs2); NEXT();
op_AND: X(s->rd) = X(s->rs1) & X(s->rs2); NEXT();

op_ADDIW: X(s->rd) = (uint64_t)(int64_t)(int32_t)(X(s->rs1) + (int64_t)s->imm); NEXT();
op_SLLIW: X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) << s->imm); NEXT();
op_SRLIW: X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) >> s->imm); NEXT();
op_SRAIW: X(s->rd) = (uint64_t)(int64_t)((int32_t)X(s->rs1) >> s->imm); NEXT();
op_ADDW: X(s->rd) = (uint64_t)(int64_t)(int32_t)(X(s->rs1) + X(s->rs2)); NEXT();
op_SUBW: X(s->rd) = (uint64_t)(int64_t)(int32_t)(X(s->rs1) - X(s->rs2)); NEXT();
op_SLLW: X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) << (X(s->rs2) & 31)); NEXT();
op_SRLW: X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) >> (X(s->rs2) & 31)); NEXT();
op_SRAW: X(s->rd) = (uint64_t)(int64_t)((int32_t)X(s->rs1) >> (X(s->rs2) & 31)); NEXT();

op_MUL: X(s->rd) = X(s->rs1) * X(s->rs2); NEXT();
op_MULH:
	X(s->rd) = (uint64_t)(((__int128)(int64_t)X(s->rs1) * (__int128)(int64_t)X(s->rs2)) >> 64);
	NEXT();
op_MULHSU:
	X(s->rd) = (uint64_t)(((__int128)(int64_t)X(s->rs1) * (__int128)X(s->rs2)) >> 64);
	NEXT();
op_MULHU:
	X(s->rd) = (uint64_t)(((unsigned __int128)X(s->rs1) * X(s->rs2)) >> 64);
	NEXT();
op_DIV: {
		int64_t a = (int64_t)X(s->rs1), b = (int64_t)X(s->rs2);

		X(s->rd) = b == 0 ? ~0ULL : (a == INT64_MIN && b == -1) ? (uint64_t)a :
			   (uint64_t)(a / b);
		NEXT();
	}
op_DIVU: {
		uint64_t a = X(s->rs1), b = X(s->rs2);

		X(s->rd) = b == 0 ? ~0ULL : a / b;
		NEXT();
	}
op_REM: {
		int64_t a = (int64_t)X(s->rs1), b = (int64_t)X(s->rs2);

		X(s->rd) = b == 0 ? (uint64_t)a : (a == INT64_MIN && b == -1) ? 0 :
			   (uint64_t)(a % b);
		NEXT();
	}
op_REMU: {
		uint64_t a = X(s->rs1), b = X(s->rs2);

		X(s->rd) = b == 0 ? a : a % b;
		NEXT();
	}
op_MULW: X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) * (uint32_t)X(s->rs2)); NEXT();
op_DIVW: {
		int32_t a = (int32_t)X(s->rs1), b = (int32_t)X(s->rs2);

		X(s->rd) = (uint64_t)(int64_t)(b == 0 ? -1 : (a == INT32_MIN && b == -1) ? a : a / b);
		NEXT();
	}
op_DIVUW: {
		uint32_t a = (uint32_t)X(s->rs1), b = (uint32_t)X(s->rs2);

		X(s->rd) = (uint64_t)(int64_t)(int32_t)(b == 0 ? ~0u : a / b);
		NEXT();
	}
op_REMW: {
		int32_t a = (int32_t)X(s->rs1), b = (int32_t)X(s->rs2);

		X(s->rd) = (uint64_t)(int64_t)(b == 0 ? a : (a == INT32_MIN && b == -1) ? 0 : a % b);
		NEXT();
	}
op_REMUW: {
		uint32_t a = (uint32_t)X(s->rs1), b = (uint32_t)X(s->rs2);

		X(s->rd) = (uint64_t)(int64_t)(int32_t)(b == 0 ? a : a % b);
		NEXT();
	}

op_LR: {
		unsigned int size = (s->imm & 0x100) ? 8 : 4;
		uint64_t a = X(s->rs1), v;
		void *p;

		SLOW(rv_amo_host(h, a, size, false, &p));
		if (size == 8)
			v = __atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST);
		else
			v = __atomic_load_n((uint32_t *)p, __ATOMIC_SEQ_CST);
		h->lr_valid = true;
		h->lr_addr = a;
		h->lr_val = v;
		X(s->rd) = size == 8 ? v : (uint64_t)(int64_t)(int32_t)v;
		NEXT_SLOW();
	}
op_SC: {
		unsigned int size = (s->imm & 0x100) ? 8 : 4;
		uint64_t a = X(s->rs1), val = X(s->rs2);
		bool ok = false;
		void *p;

		if (a & (size - 1)) {
			h->exc_cause = EXC_STORE_MISALIGNED;
			h->exc_tval = a;
			r = RV_EXC;
			goto slow_fail;
		}
		g = h->gen;
		if (h->lr_valid && h->lr_addr == a) {
			SLOW(rv_amo_host(h, a, size, true, &p));
			/* Succeeds only if the word still holds what LR read:
			 * the reservation as a compare-and-swap. */
			if (size == 8) {
				uint64_t exp = h->lr_val;

				ok = __atomic_compare_exchange_n((uint64_t *)p, &exp, val, false,
								 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			} else {
				uint32_t exp = (uint32_t)h->lr_val;

				ok = __atomic_compare_exchange_n((uint32_t *)p, &exp, (uint32_t)val,
								 false, __ATOMIC_SEQ_CST,
								 __ATOMIC_SEQ_CST);
			}
		}
		h->lr_valid = false;
		X(s->rd) = !ok;
		NEXT_SLOW();
	}
op_AMO: {
		unsigned int size = (s->imm & 0x100) ? 8 : 4, f5 = s->imm & 31;
		uint64_t a = X(s->rs1), val = X(s->rs2), old = 0;
		struct stlb_entry *e = DTLB(a);
		void *p;

		g = h->gen;
		if (likely(e->addr_write == (a & (PG_MASK | (size - 1)))))
			p = (void *)(e->addend + a);
		else
			SLOW(rv_amo_host(h, a, size, true, &p));
		if (size == 8) {
			uint64_t *q = p, cur;

			switch (f5) {
			case 0: old = __atomic_fetch_add(q, val, __ATOMIC_SEQ_CST); break;
			case 1: old = __atomic_exchange_n(q, val, __ATOMIC_SEQ_CST); break;
			case 4: old = __atomic_fetch_xor(q, val, __ATOMIC_SEQ_CST); break;
			case 8: old = __atomic_fetch_or(q, val, __ATOMIC_SEQ_CST); break;
			case 12: old = __atomic_fetch_and(q, val, __ATOMIC_SEQ_CST); break;
			default:
				cur = __atomic_load_n(q, __ATOMIC_SEQ_CST);
				for (;;) {
					uint64_t n;

					switch (f5) {
					case 16: n = (int64_t)cur < (int64_t)val ? cur : val; break;
					case 20: n = (int64_t)cur > (int64_t)val ? cur : val; break;
					case 24: n = cur < val ? cur : val; break;
					default: n = cur > val ? cur : val; break;
					}
					if (__atomic_compare_exchange_n(q, &cur, n, false, __ATOMIC_SEQ_CST,
									__ATOMIC_SEQ_CST))
						break;
				}
				old = cur;
			}
		} else {
			uint32_t *q = p, v32 = (uint32_t)val, cur, o;

			switch (f5) {
			case 0: o = __atomic_fetch_add(q, v32, __ATOMIC_SEQ_CST); break;
			case 1: o = __atomic_exchange_n(q, v32, __ATOMIC_SEQ_CST); break;
			case 4: o = __atomic_fetch_xor(q, v32, __ATOMIC_SEQ_CST); break;
			case 8: o = __atomic_fetch_or(q, v32, __ATOMIC_SEQ_CST); break;
			case 12: o = __atomic_fetch_and(q, v32, __ATOMIC_SEQ_CST); break;
			default:
				cur = __atomic_load_n(q, __ATOMIC_SEQ_CST);
				for (;;) {
					uint32_t n;

					switch (f5) {
					case 16: n = (int32_t)cur < (int32_t)v32 ? cur : v32; break;
					case 20: n = (int32_t)cur > (int32_t)v32 ? cur : v32; break;
					case 24: n = cur < v32 ? cur : v32; break;
					default: n = cur > v32 ? cur : v32; break;
					}
					if (__atomic_compare_exchange_n(q, &cur, n, false, __ATOMIC_SEQ_CST,
									__ATOMIC_SEQ_CST))
						break;
				}
				o = cur;
			}
			old = (uint64_t)(int64_t)(int32_t)o;
		}
		X(s->rd) = old;
		NEXT_SLOW();
	}

op_FENCE:
	atomic_thread_fence(memory_order_seq_cst);
	NEXT();
op_FENCE_I:
	/* Decoded code must see this hart's earlier stores (and, by the
	 * guest's own protocol, other harts' and DMA): check every page
	 * against memory on its next fetch. */
	h->stat.fence_i++;
	rv_flush_tlb(h);
	pc += s->len;
	icount++;
	goto check;
op_ECALL:
	if (h->ecall) {
		struct kvm_vcpu *kv = &h->v->kvm_vcpu;
		bool handled;

		h->pc = pc;
		h->instret += icount;
		icount = 0;
		kvm_vcpu_exit_guest_mode(kv);
		handled = h->ecall(h, h->priv, h->ecall_arg);
		r = rv_enter(h);
		if (r)
			goto out_err;
		if (handled) {
			h->stat.ecalls_to_vmm++;
			pc += s->len;
			icount++;
			goto check;
		}
	}
	h->exc_cause = h->priv == RV_PRV_U ? EXC_ECALL_U :
		       h->priv == RV_PRV_S ? EXC_ECALL_S : EXC_ECALL_M;
	h->exc_tval = 0;
	r = RV_EXC;
	goto slow_fail;
op_EBREAK:
	h->exc_cause = EXC_BREAKPOINT;
	h->exc_tval = pc;
	r = RV_EXC;
	goto slow_fail;
op_MRET:
	if (h->priv != RV_PRV_M)
		goto op_ILLEGAL_sys;
	pc = rv_mret(h);
	icount++;
	goto out;       /* interrupts may be enabled now: let the run loop look */
op_SRET:
	if (h->priv < RV_PRV_S || (h->priv == RV_PRV_S && (h->mstatus & MSTATUS_TSR)))
		goto op_ILLEGAL_sys;
	pc = rv_sret(h);
	icount++;
	goto out;
op_WFI:
	if (h->priv == RV_PRV_U || (h->priv == RV_PRV_S && (h->mstatus & MSTATUS_TW)))
		goto op_ILLEGAL_sys;
	pc += s->len;
	icount++;
	h->wfi = true;
	goto out;
op_SFENCE_VMA:
	if (h->priv == RV_PRV_U || (h->priv == RV_PRV_S && (h->mstatus & MSTATUS_TVM)))
		goto op_ILLEGAL_sys;
	rv_sfence_vma(h, s->rs1 == 0, X(s->rs1));
	pc += s->len;
	icount++;
	goto check;

#define CSR_DONE(old_) do { \
	X(s->rd) = (old_); \
	if (resync) { pc += s->len; icount++; goto out; } \
	NEXT(); } while (0)
op_CSRRW:
op_CSRRWI: {
		uint64_t old, val = s->handler == ops[OP_CSRRW] ? X(s->rs1) : s->rs1;
		bool resync = false;

		if (rv_csr_op(h, (unsigned int)s->imm & 0xfff, &old, true, val, icount, &resync))
			goto op_ILLEGAL_sys;
		CSR_DONE(old);
	}
op_CSRRS:
op_CSRRC:
op_CSRRSI:
op_CSRRCI: {
		bool imm = s->handler == ops[OP_CSRRSI] || s->handler == ops[OP_CSRRCI];
		bool clear = s->handler == ops[OP_CSRRC] || s->handler == ops[OP_CSRRCI];
		uint64_t mask = imm ? s->rs1 : X(s->rs1), old, dummy;
		unsigned int csr = (unsigned int)s->imm & 0xfff;
		bool resync = false;

		if (rv_csr_op(h, csr, &old, false, 0, icount, &resync))
			goto op_ILLEGAL_sys;
		if (s->rs1 != 0 &&
		    rv_csr_op(h, csr, &dummy, true, clear ? old & ~mask : old | mask, icount,
			      &resync))
			goto op_ILLEGAL_sys;
		CSR_DONE(old);
	}
op_ILLEGAL_sys: {
		/* A system instruction not allowed here: illegal, with the
		 * instruction bits in tval (re-read from the decoded page). */
		h->exc_cause = EXC_ILLEGAL;
		h->exc_tval = 0;
		if (s >= base && s < base + RV_SLOTS) {
			const uint8_t *raw = (const uint8_t *)cp->raw;
			unsigned int off = (unsigned int)(s - base) * 2;

			h->exc_tval = s->len == 2 ? (uint64_t)(raw[off] | raw[off + 1] << 8) :
				      (uint64_t)(raw[off] | raw[off + 1] << 8 | raw[off + 2] << 16 |
						 (uint32_t)raw[off + 3] << 24);
		}
		r = RV_EXC;
		goto slow_fail;
	}

out:
	h->pc = pc;
	h->instret += icount;
	return 0;
out_err:
	/* -EINTR or a fatal host error; outside guest mode. */
	h->pc = pc;
	h->instret += icount;
	return r;
}
