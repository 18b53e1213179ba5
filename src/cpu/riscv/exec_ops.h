/* SPDX-License-Identifier: MIT */
/*
 * exec_ops.h - the RISC-V interpreter's handlers that step to the next
 * instruction, included twice into rv_exec (exec.c): once with STEP 4 for
 * 32-bit instructions and once with STEP 2 for compressed ones, so that
 * the step is a constant and not a load of the slot's length. L(name)
 * makes each copy's label. Not a header of its own: only exec.c includes
 * it, inside rv_exec.
 */
L(LUI): X(s->rd) = (uint64_t)(int64_t)s->imm; NEXT();
L(AUIPC): X(s->rd) = PC() + (int64_t)s->imm; NEXT();
L(JAL): {
		uint64_t p = PC();

		X(s->rd) = p + s->len;
		JUMP(p + (int64_t)s->imm);
	}
L(JALR): {
		uint64_t t = (X(s->rs1) + (int64_t)s->imm) & ~1ULL;

		X(s->rd) = PC() + s->len;
		JUMP(t);
	}
L(BEQ): if (X(s->rs1) == X(s->rs2)) JUMP(PC() + (int64_t)s->imm); NEXT();
L(BNE): if (X(s->rs1) != X(s->rs2)) JUMP(PC() + (int64_t)s->imm); NEXT();
L(BLT): if ((int64_t)X(s->rs1) < (int64_t)X(s->rs2)) JUMP(PC() + (int64_t)s->imm); NEXT();
L(BGE): if ((int64_t)X(s->rs1) >= (int64_t)X(s->rs2)) JUMP(PC() + (int64_t)s->imm); NEXT();
L(BLTU): if (X(s->rs1) < X(s->rs2)) JUMP(PC() + (int64_t)s->imm); NEXT();
L(BGEU): if (X(s->rs1) >= X(s->rs2)) JUMP(PC() + (int64_t)s->imm); NEXT();
L(JAL_L): X(s->rd) = PC() + s->len; JUMP_LOCAL();
L(BEQ_L): if (X(s->rs1) == X(s->rs2)) JUMP_LOCAL(); NEXT();
L(BNE_L): if (X(s->rs1) != X(s->rs2)) JUMP_LOCAL(); NEXT();
L(BLT_L): if ((int64_t)X(s->rs1) < (int64_t)X(s->rs2)) JUMP_LOCAL(); NEXT();
L(BGE_L): if ((int64_t)X(s->rs1) >= (int64_t)X(s->rs2)) JUMP_LOCAL(); NEXT();
L(BLTU_L): if (X(s->rs1) < X(s->rs2)) JUMP_LOCAL(); NEXT();
L(BGEU_L): if (X(s->rs1) >= X(s->rs2)) JUMP_LOCAL(); NEXT();

L(LB): LOAD(uint8_t, int8_t, 1);
L(LH): LOAD(uint16_t, int16_t, 2);
L(LW): LOAD(uint32_t, int32_t, 4);
L(LD): LOAD(uint64_t, int64_t, 8);
L(LBU): LOAD(uint8_t, uint8_t, 1);
L(LHU): LOAD(uint16_t, uint16_t, 2);
L(LWU): LOAD(uint32_t, uint32_t, 4);
L(SB): STORE(uint8_t, 1);
L(SH): STORE(uint16_t, 2);
L(SW): STORE(uint32_t, 4);
L(SD): STORE(uint64_t, 8);

L(ADDI): X(s->rd) = X(s->rs1) + (int64_t)s->imm; NEXT();
L(SLTI): X(s->rd) = (int64_t)X(s->rs1) < (int64_t)s->imm; NEXT();
L(SLTIU): X(s->rd) = X(s->rs1) < (uint64_t)(int64_t)s->imm; NEXT();
L(XORI): X(s->rd) = X(s->rs1) ^ (uint64_t)(int64_t)s->imm; NEXT();
L(ORI): X(s->rd) = X(s->rs1) | (uint64_t)(int64_t)s->imm; NEXT();
L(ANDI): X(s->rd) = X(s->rs1) & (uint64_t)(int64_t)s->imm; NEXT();
L(SLLI): X(s->rd) = X(s->rs1) << s->imm; NEXT();
L(SRLI): X(s->rd) = X(s->rs1) >> s->imm; NEXT();
L(SRAI): X(s->rd) = (uint64_t)((int64_t)X(s->rs1) >> s->imm); NEXT();
L(ADD): X(s->rd) = X(s->rs1) + X(s->rs2); NEXT();
L(SUB): X(s->rd) = X(s->rs1) - X(s->rs2); NEXT();
L(SLL): X(s->rd) = X(s->rs1) << (X(s->rs2) & 63); NEXT();
L(SLT): X(s->rd) = (int64_t)X(s->rs1) < (int64_t)X(s->rs2); NEXT();
L(SLTU): X(s->rd) = X(s->rs1) < X(s->rs2); NEXT();
L(XOR): X(s->rd) = X(s->rs1) ^ X(s->rs2); NEXT();
L(SRL): X(s->rd) = X(s->rs1) >> (X(s->rs2) & 63); NEXT();
L(SRA): X(s->rd) = (uint64_t)((int64_t)X(s->rs1) >> (X(s->rs2) & 63)); NEXT();
L(OR): X(s->rd) = X(s->rs1) | X(s->rs2); NEXT();
L(AND): X(s->rd) = X(s->rs1) & X(s->rs2); NEXT();

L(ADDIW): X(s->rd) = (uint64_t)(int64_t)(int32_t)(X(s->rs1) + (int64_t)s->imm); NEXT();
L(SLLIW): X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) << s->imm); NEXT();
L(SRLIW): X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) >> s->imm); NEXT();
L(SRAIW): X(s->rd) = (uint64_t)(int64_t)((int32_t)X(s->rs1) >> s->imm); NEXT();
L(ADDW): X(s->rd) = (uint64_t)(int64_t)(int32_t)(X(s->rs1) + X(s->rs2)); NEXT();
L(SUBW): X(s->rd) = (uint64_t)(int64_t)(int32_t)(X(s->rs1) - X(s->rs2)); NEXT();
L(SLLW): X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) << (X(s->rs2) & 31)); NEXT();
L(SRLW): X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) >> (X(s->rs2) & 31)); NEXT();
L(SRAW): X(s->rd) = (uint64_t)(int64_t)((int32_t)X(s->rs1) >> (X(s->rs2) & 31)); NEXT();

L(MUL): X(s->rd) = X(s->rs1) * X(s->rs2); NEXT();
L(MULH):
	X(s->rd) = (uint64_t)(((__int128)(int64_t)X(s->rs1) * (__int128)(int64_t)X(s->rs2)) >> 64);
	NEXT();
L(MULHSU):
	X(s->rd) = (uint64_t)(((__int128)(int64_t)X(s->rs1) * (__int128)X(s->rs2)) >> 64);
	NEXT();
L(MULHU):
	X(s->rd) = (uint64_t)(((unsigned __int128)X(s->rs1) * X(s->rs2)) >> 64);
	NEXT();
L(DIV): {
		int64_t a = (int64_t)X(s->rs1), b = (int64_t)X(s->rs2);

		X(s->rd) = b == 0 ? ~0ULL : (a == INT64_MIN && b == -1) ? (uint64_t)a :
			   (uint64_t)(a / b);
		NEXT();
	}
L(DIVU): {
		uint64_t a = X(s->rs1), b = X(s->rs2);

		X(s->rd) = b == 0 ? ~0ULL : a / b;
		NEXT();
	}
L(REM): {
		int64_t a = (int64_t)X(s->rs1), b = (int64_t)X(s->rs2);

		X(s->rd) = b == 0 ? (uint64_t)a : (a == INT64_MIN && b == -1) ? 0 :
			   (uint64_t)(a % b);
		NEXT();
	}
L(REMU): {
		uint64_t a = X(s->rs1), b = X(s->rs2);

		X(s->rd) = b == 0 ? a : a % b;
		NEXT();
	}
L(MULW): X(s->rd) = (uint64_t)(int64_t)(int32_t)((uint32_t)X(s->rs1) * (uint32_t)X(s->rs2)); NEXT();
L(DIVW): {
		int32_t a = (int32_t)X(s->rs1), b = (int32_t)X(s->rs2);

		X(s->rd) = (uint64_t)(int64_t)(b == 0 ? -1 : (a == INT32_MIN && b == -1) ? a : a / b);
		NEXT();
	}
L(DIVUW): {
		uint32_t a = (uint32_t)X(s->rs1), b = (uint32_t)X(s->rs2);

		X(s->rd) = (uint64_t)(int64_t)(int32_t)(b == 0 ? ~0u : a / b);
		NEXT();
	}
L(REMW): {
		int32_t a = (int32_t)X(s->rs1), b = (int32_t)X(s->rs2);

		X(s->rd) = (uint64_t)(int64_t)(b == 0 ? a : (a == INT32_MIN && b == -1) ? 0 : a % b);
		NEXT();
	}
L(REMUW): {
		uint32_t a = (uint32_t)X(s->rs1), b = (uint32_t)X(s->rs2);

		X(s->rd) = (uint64_t)(int64_t)(int32_t)(b == 0 ? a : a % b);
		NEXT();
	}

L(LR): {
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
L(SC): {
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
L(AMO): {
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

L(FENCE):
	/* A full barrier as a locked RMW (a fence on x86-64); ThreadSanitizer
	 * does not take atomic_thread_fence. Guest accesses are relaxed
	 * atomics on host memory, so on x86-64's TSO this orders them. */
	__atomic_fetch_add(&h->fence_word, 0, __ATOMIC_SEQ_CST);
	NEXT();
