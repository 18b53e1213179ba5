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

/* The ops whose handler ends by stepping to the next instruction (two
 * copies: exec_ops.h), and the others. */
#define RV_OPS_TWIN(X) \
	X(LUI) X(AUIPC) X(JAL) X(JALR) \
	X(BEQ) X(BNE) X(BLT) X(BGE) X(BLTU) X(BGEU) \
	X(JAL_L) X(BEQ_L) X(BNE_L) X(BLT_L) X(BGE_L) X(BLTU_L) X(BGEU_L) \
	X(LB) X(LH) X(LW) X(LD) X(LBU) X(LHU) X(LWU) \
	X(SB) X(SH) X(SW) X(SD) \
	X(ADDI) X(SLTI) X(SLTIU) X(XORI) X(ORI) X(ANDI) X(SLLI) X(SRLI) X(SRAI) \
	X(ADD) X(SUB) X(SLL) X(SLT) X(SLTU) X(XOR) X(SRL) X(SRA) X(OR) X(AND) \
	X(ADDIW) X(SLLIW) X(SRLIW) X(SRAIW) X(ADDW) X(SUBW) X(SLLW) X(SRLW) X(SRAW) \
	X(MUL) X(MULH) X(MULHSU) X(MULHU) X(DIV) X(DIVU) X(REM) X(REMU) \
	X(MULW) X(DIVW) X(DIVUW) X(REMW) X(REMUW) \
	X(LR) X(SC) X(AMO) X(FENCE)
#define RV_OPS_ONCE(X) \
	X(DECODE) X(PAGE_END) X(STRADDLE) X(ILLEGAL) \
	X(FENCE_I) X(ECALL) X(EBREAK) X(MRET) X(SRET) X(WFI) X(SFENCE_VMA) \
	X(CSRRW) X(CSRRS) X(CSRRC) X(CSRRWI) X(CSRRSI) X(CSRRCI)
#define RV_OPS(X) RV_OPS_ONCE(X) RV_OPS_TWIN(X)

#define OP_ENUM(n) OP_##n,
enum rv_op { RV_OPS(OP_ENUM) OP_COUNT };

/* The interpreter's label addresses, exported once (rv_exec(NULL)): for
 * 32-bit and for compressed instructions. */
static const void *const *ops4, *const *ops2;
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
	d->handler = (const void *)(uintptr_t)op;   /* decode() turns it into a label */
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

/*
 * Decode the instruction bits at byte offset off of its page (-1: none,
 * as for one straddling two pages). A branch or jal whose target lies in
 * the same page becomes the _L variant, whose imm is the distance in
 * slots: it needs neither pc nor a page check.
 */
static void decode(uint32_t bits, struct rv_insn *d, int off)
{
	static const enum rv_op branch[] = { OP_JAL, OP_BEQ, OP_BNE, OP_BLT, OP_BGE,
					     OP_BLTU, OP_BGEU };
	static const enum rv_op local[] = { OP_JAL_L, OP_BEQ_L, OP_BNE_L, OP_BLT_L,
					    OP_BGE_L, OP_BLTU_L, OP_BGEU_L };

	enum rv_op op;

	if ((bits & 3) != 3)
		decode16((uint16_t)bits, d);
	else
		decode32(bits, d);
	op = (enum rv_op)(uintptr_t)d->handler;
	for (unsigned int i = 0; off >= 0 && i < ARRAY_SIZE(branch); i++) {
		int64_t t = (int64_t)off + d->imm;

		if (op == branch[i] && t >= 0 && t < (int64_t)PAGE_SIZE) {
			op = local[i];
			d->imm /= 2;
			break;
		}
	}
	d->handler = (d->len == 2 ? ops2 : ops4)[op];
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
		p->slot[i].handler = ops4[OP_DECODE];
	p->slot[RV_SLOTS].handler = ops4[OP_PAGE_END];
	p->slot[RV_SLOTS].len = 0;
}

#define PG_MASK (~(uint64_t)(PAGE_SIZE - 1))
#define X(r) x[r]
#define DTLB(a) ((struct stlb_entry *)((char *)h->dtlb + stlb_offset(a)))

int rv_exec(struct rv_hart *h)
{
	/* One label per op and length: the handlers of exec_ops.h exist
	 * twice (op_X_4, op_X_2), the others once (both entries). */
#define OP_LABEL(n) [OP_##n] = &&op_##n,
#define OP_LABEL4(n) [OP_##n] = &&op_##n##_4,
#define OP_LABEL2(n) [OP_##n] = &&op_##n##_2,
	static const void *const labels[2][OP_COUNT] = {
		{ RV_OPS_ONCE(OP_LABEL) RV_OPS_TWIN(OP_LABEL4) },
		{ RV_OPS_ONCE(OP_LABEL) RV_OPS_TWIN(OP_LABEL2) },
	};
	uint64_t *x, pc, icount = 0, g = 0;
	struct rv_code_page *cp = NULL;
	struct rv_insn *s = NULL, *base = NULL;
	/* pc_base: the guest-virtual page base holds pc == pc_base + 2 *
	 * (s - base) for the slot being run. page_pc: the page a generic
	 * jump may stay in without a lookup (odd: none). */
	uint64_t pc_base = 0, page_pc = 1;
	_Atomic unsigned long *req;
	int budget = RV_BUDGET, r = 0;

	if (!h) {
		ops4 = labels[0];
		ops2 = labels[1];
		return 0;
	}
	x = h->x;
	pc = h->pc;
	req = &h->v->kvm_vcpu.requests;

#define PC() (pc_base + (uint64_t)(((char *)s - (char *)base) >> 3))
#define DISPATCH() goto *s->handler
/* Step to the next slot: by STEP in the handlers of exec_ops.h (two
 * copies, one per instruction length), by the slot's length elsewhere. */
#define NEXT_BY(step) do { icount++; s += (step) / 2; DISPATCH(); } while (0)
#define NEXT() NEXT_BY(STEP)
#define NEXT_DYN() do { icount++; s = (struct rv_insn *)((char *)s + s->len * 8u); \
			DISPATCH(); } while (0)
#define EXIT_CHECK() (atomic_load_explicit(req, memory_order_relaxed) | (--budget < 0))
/* After a slow path: if the soft TLB was flushed meanwhile, the decoded
 * page must be checked again before the next instruction. */
#define NEXT_SLOW() do { if (unlikely(h->gen != g)) { pc = PC() + STEP; icount++; \
							goto check; } \
			 NEXT(); } while (0)
#define JUMP(t) do { pc = (t); icount++; \
		     if (unlikely(EXIT_CHECK())) goto out; \
		     if (likely((pc & PG_MASK) == page_pc)) { \
			     s = base + ((pc & (PAGE_SIZE - 1)) >> 1); DISPATCH(); } \
		     goto lookup; } while (0)
#define JUMP_LOCAL() do { s += s->imm; icount++; \
			  if (unlikely(EXIT_CHECK())) { pc = PC(); goto out; } \
			  DISPATCH(); } while (0)
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
	if (unlikely(EXIT_CHECK()))
		goto out;
lookup:
	g = h->gen;
	r = rv_code_lookup(h, pc, &cp);
	if (unlikely(r))
		goto fetch_fail;
	base = cp->slot;
	pc_base = page_pc = pc & PG_MASK;
	s = base + ((pc & (PAGE_SIZE - 1)) >> 1);
	DISPATCH();

fetch_fail:
	if (r == RV_EXC) {
		pc = rv_trap(h, pc, h->exc_cause, h->exc_tval, false);
		goto check;
	}
	goto out_err;
slow_fail:
	/* The instruction at s raised h->exc_*, or the host failed. */
	pc = PC();
	if (r == RV_EXC) {
		pc = rv_trap(h, pc, h->exc_cause, h->exc_tval, false);
		goto check;
	}
	goto out_err;

op_DECODE: {
		unsigned int off = (unsigned int)(s - base) * 2;
		const uint8_t *raw = (const uint8_t *)cp->raw;
		uint32_t bits = (uint32_t)(raw[off] | raw[off + 1] << 8);

		if ((bits & 3) != 3) {
			decode(bits, s, (int)off);
		} else if (off == PAGE_SIZE - 2) {
			s->handler = ops4[OP_STRADDLE];
			s->len = 4;
		} else {
			bits |= (uint32_t)raw[off + 2] << 16 | (uint32_t)raw[off + 3] << 24;
			decode(bits, s, (int)off);
		}
		DISPATCH();
	}
op_PAGE_END:
	pc = PC();      /* the next page's first instruction */
	goto check;
op_STRADDLE: {
		/* Run a copy in h->tmp, with base placed so that PC() still
		 * works, and no page a jump could stay in. */
		const uint8_t *raw = (const uint8_t *)cp->raw;
		uint16_t hi;

		pc = PC();
		SLOW(rv_fetch16_slow(h, pc + 2, &hi));
		if (h->gen != g)
			goto check;     /* flushed: look the page up again */
		decode((uint32_t)(raw[PAGE_SIZE - 2] | raw[PAGE_SIZE - 1] << 8) |
		       (uint32_t)hi << 16, &h->tmp[0], -1);
		h->tmp[2].handler = ops4[OP_PAGE_END];
		h->tmp[2].len = 0;
		base = &h->tmp[0] - (RV_SLOTS - 1);
		page_pc = 1;
		s = &h->tmp[0];
		DISPATCH();
	}
op_ILLEGAL:
	h->exc_cause = EXC_ILLEGAL;
	h->exc_tval = (uint32_t)s->imm;
	r = RV_EXC;
	goto slow_fail;

#define L(n) LBL(n, STEP)
#define LBL(n, st) LBL_(n, st)
#define LBL_(n, st) op_##n##_##st
#define STEP 4
#include "exec_ops.h"
#undef STEP
#define STEP 2
#include "exec_ops.h"
#undef STEP

op_FENCE_I:
	/* Decoded code must see this hart's earlier stores (and, by the
	 * guest's own protocol, other harts' and DMA): check every page
	 * against memory on its next fetch. */
	h->stat.fence_i++;
	rv_flush_tlb_and_code(h);
	pc = PC() + s->len;
	icount++;
	goto check;
op_ECALL:
	if (h->ecall) {
		struct kvm_vcpu *kv = &h->v->kvm_vcpu;
		bool handled;

		pc = PC();
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
			pc += s->len;   /* s still names the ecall: base and cp are kept */
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
	h->exc_tval = PC();
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
	pc = PC() + s->len;
	icount++;
	h->wfi = true;
	goto out;
op_SFENCE_VMA:
	if (h->priv == RV_PRV_U || (h->priv == RV_PRV_S && (h->mstatus & MSTATUS_TVM)))
		goto op_ILLEGAL_sys;
	rv_sfence_vma(h, s->rs1 != 0, X(s->rs1), s->rs2 != 0, X(s->rs2));
	pc = PC() + s->len;
	icount++;
	goto check;

	/* Each CSR form has its own entry (labels that share an address
	 * could not be told apart): kind bit 0 = immediate, bits 1-2 = op. */
	{
		unsigned int kind;
op_CSRRW: kind = 0; goto csr;
op_CSRRWI: kind = 1; goto csr;
op_CSRRS: kind = 2; goto csr;
op_CSRRSI: kind = 3; goto csr;
op_CSRRC: kind = 4; goto csr;
op_CSRRCI: kind = 5; goto csr;
csr: {
		uint64_t src = (kind & 1) ? s->rs1 : X(s->rs1), old, dummy;
		unsigned int csr = (unsigned int)s->imm & 0xfff;
		bool resync = false;

		if (kind < 2) {
			if (rv_csr_op(h, csr, &old, true, src, icount, &resync))
				goto op_ILLEGAL_sys;
		} else {
			/* csrrs / csrrc write only when rs1 (or uimm) is not 0. */
			if (rv_csr_op(h, csr, &old, false, 0, icount, &resync))
				goto op_ILLEGAL_sys;
			if (s->rs1 != 0 &&
			    rv_csr_op(h, csr, &dummy, true, kind >= 4 ? old & ~src : old | src,
				      icount, &resync))
				goto op_ILLEGAL_sys;
		}
		X(s->rd) = old;
		if (resync) {
			pc = PC() + s->len;
			icount++;
			goto out;
		}
		NEXT_DYN();
	}
	}
op_ILLEGAL_sys: {
		/* A system instruction not allowed here: illegal, with the
		 * instruction bits in tval (re-read from the decoded page). */
		h->exc_cause = EXC_ILLEGAL;
		h->exc_tval = 0;
		if (base == cp->slot && s >= base && s < base + RV_SLOTS) {
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
	rv_publish_live(h);
	return 0;
out_err:
	/* -EINTR or a fatal host error; outside guest mode. */
	h->pc = pc;
	h->instret += icount;
	rv_publish_live(h);
	return r;
}
