/* SPDX-License-Identifier: MIT */
/*
 * test_sbi_sta.c - the VMM's SBI steal-time accounting (sbi_sta.c) on a
 * real virt machine: a hand-assembled program (rv_asm.h) starts in M mode
 * as its own tiny "firmware" (its trap handler answers every ecall it gets
 * with a0 = a1 = 0, as OpenSBI answers a probe for an extension it lacks,
 * and counts them), drops to S mode and makes the SBI calls of the spec's
 * STA chapter, then reads its area the way Linux's paravirt steal clock
 * does. The results land in RAM; the test reads them after power-off.
 *
 *   RAM + 0x000   M-mode prologue: mtvec, one M-mode probe, mret to S
 *   RAM + 0x100   S-mode program
 *   RAM + 0x700   M-mode trap handler ("firmware")
 *   RAM + 0x2000  the STA area (64-byte aligned)
 *   RAM + 0x3000  results: a0, a1 of each call; loop figures; fw count
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/vmm.h"
#include "tandem/virt.h"
#include "harness/rv_asm.h"
#include "harness/util.h"
#include "base/compiler.h"

#define RAM        0x80000000ULL
#define S_ENTRY    0x100
#define M_HANDLER  0x700
#define AREA       0x2000
#define RES        0x3000
#define FW_COUNT   0x400        /* in RES */
#define LOOPS      100000

#define EID_BASE   0x10
#define EID_STA    0x535441
#define EID_TIME   0x54494D45

/* Result slots (16 bytes: a0, a1) of the calls, in program order. */
enum {
	R_M_PROBE,              /* M mode: probe STA (never the VMM's) */
	R_PROBE,                /* probe STA */
	R_PROBE_TIME,           /* probe TIME: the firmware's */
	R_UNALIGNED,            /* set_shmem(area + 32) */
	R_FLAGS,                /* set_shmem(area, 0, flags = 1) */
	R_NO_RAM,               /* set_shmem(0x4000_0000): no RAM there */
	R_HI,                   /* set_shmem(area, hi = 1) */
	R_BAD_FID,              /* STA FID 1 */
	R_SET,                  /* set_shmem(area) */
	R_DISABLE,              /* set_shmem(all ones, all ones) */
	NR_CALLS
};
/* Loop figures, after the calls' slots (8 bytes each). */
enum { L_SEQ_FIRST = 2 * NR_CALLS, L_SEQ_LAST, L_ODD, L_TORN, L_DECREASES, L_STEAL,
       L_SEQ_DISABLED, L_SEQ_LATER };

static inline uint32_t lwu(int rd, int rs1, int32_t imm) { return i_type(0x03, 6, rd, rs1, imm); }
static inline uint32_t andi(int rd, int rs1, int32_t imm) { return i_type(0x13, 7, rd, rs1, imm); }
static inline uint32_t addiw(int rd, int rs1, int32_t imm) { return i_type(0x1b, 0, rd, rs1, imm); }
static inline uint32_t sub(int rd, int rs1, int rs2) { return r_type(0x20, 0, rd, rs1, rs2, 0x33); }
static inline uint32_t sltu(int rd, int rs1, int rs2) { return r_type(0, 3, rd, rs1, rs2, 0x33); }
static inline uint32_t lui(int rd, uint32_t imm20) { return imm20 << 12 | (uint32_t)rd << 7 | 0x37; }
#define FENCE_R_R 0x0220000fu   /* fence r, r */
#define MRET      0x30200073u
#define CSR_MEPC  0x341

struct prog {
	uint32_t w[M_HANDLER / 4 + 64];
	unsigned int n;
};

static void emit(struct prog *p, uint32_t insn)
{
	assert_true(p->n < ARRAY_SIZE(p->w));
	p->w[p->n++] = insn;
}

static void emit_li(struct prog *p, int reg, uint64_t off)
{
	p->n += emit_base(p->w + p->n, reg, (uint32_t)off);
}

/* reg = a 32-bit value (sign-extended by lui + addiw; EIDs are positive). */
static void emit_li32(struct prog *p, int reg, uint32_t v)
{
	uint32_t lo = v & 0xfff, hi = (v + 0x800) >> 12;

	emit(p, lui(reg, hi & 0xfffff));
	emit(p, addiw(reg, reg, (int32_t)(lo << 20) >> 20));
}

/* ecall with a7 = eid, a6 = fid and a0..a2 already set; a0, a1 to slot. */
static void emit_call(struct prog *p, uint32_t eid, int fid, int slot)
{
	emit_li32(p, A7, eid);
	emit(p, addi(A6, ZERO, fid));
	emit(p, ECALL);
	emit_li(p, T0, RES);
	emit(p, sd(A0, T0, 16 * slot));
	emit(p, sd(A1, T0, 16 * slot + 8));
}

static void emit_set_shmem(struct prog *p, uint64_t lo, bool lo_is_ram, int64_t hi, int flags,
			   int slot)
{
	if (lo_is_ram) {
		emit_li(p, A0, lo & ~0x7ffULL);
		if (lo & 0x7ff)
			emit(p, addi(A0, A0, (int32_t)(lo & 0x7ff)));
	} else {
		emit_li32(p, A0, (uint32_t)lo);
	}
	emit(p, addi(A1, ZERO, (int32_t)hi));
	emit(p, addi(A2, ZERO, flags));
	emit_call(p, EID_STA, 0, slot);
}

static void build(struct prog *p)
{
	unsigned int loop, top;

	memset(p, 0, sizeof(*p));
	/* M mode: trap vector, one probe from M (must reach the firmware),
	 * then MPP = S, mepc = S_ENTRY, mret. */
	emit_li(p, T0, M_HANDLER);
	emit(p, csrrw(ZERO, CSR_MTVEC, T0));
	emit_li32(p, A0, EID_STA);
	emit_call(p, EID_BASE, 3, R_M_PROBE);
	emit_li32(p, T0, 0x1800);
	emit(p, csrrc(ZERO, CSR_MSTATUS, T0));
	emit_li32(p, T0, 0x800);
	emit(p, csrrs(ZERO, CSR_MSTATUS, T0));
	emit_li(p, T0, S_ENTRY);
	emit(p, csrrw(ZERO, CSR_MEPC, T0));
	emit(p, MRET);
	assert_true(p->n <= S_ENTRY / 4);

	/* S mode: the calls. */
	p->n = S_ENTRY / 4;
	emit_li32(p, A0, EID_STA);
	emit_call(p, EID_BASE, 3, R_PROBE);
	emit_li32(p, A0, EID_TIME);
	emit_call(p, EID_BASE, 3, R_PROBE_TIME);
	emit_set_shmem(p, AREA + 32, true, 0, 0, R_UNALIGNED);
	emit_set_shmem(p, AREA, true, 0, 1, R_FLAGS);
	emit_set_shmem(p, 0x40000000, false, 0, 0, R_NO_RAM);
	emit_set_shmem(p, AREA, true, 1, 0, R_HI);
	emit_call(p, EID_STA, 1, R_BAD_FID);
	emit_set_shmem(p, AREA, true, 0, 0, R_SET);

	/* Read the area LOOPS times as Linux's steal clock does: sequence,
	 * rmb, steal, rmb, sequence. Count odd sequences, torn reads
	 * (sequence moved) and decreases of steal between consistent reads.
	 * s2 area, s3 count, s4 last steal, s5 odd, s6 decreases, s7 first
	 * sequence, s8 torn. */
	emit_li(p, S2, AREA);
	emit_li32(p, S3, LOOPS);
	emit(p, addi(S4, ZERO, 0));
	emit(p, addi(S5, ZERO, 0));
	emit(p, addi(S6, ZERO, 0));
	emit(p, addi(S8, ZERO, 0));
	emit(p, lwu(S7, S2, 0));
	loop = p->n;
	emit(p, lwu(T0, S2, 0));
	emit(p, FENCE_R_R);
	emit(p, ld(T1, S2, 8));
	emit(p, FENCE_R_R);
	emit(p, lwu(T2, S2, 0));
	emit(p, andi(T3, T0, 1));
	emit(p, add(S5, S5, T3));
	emit(p, sub(T3, T0, T2));
	emit(p, sltu(T3, ZERO, T3));
	emit(p, add(S8, S8, T3));
	emit(p, sltu(T3, T1, S4));
	emit(p, add(S6, S6, T3));
	emit(p, addi(S4, T1, 0));
	emit(p, addi(S3, S3, -1));
	emit(p, bne(S3, ZERO, (int32_t)(loop - p->n) * 4));
	emit_li(p, T0, RES);
	emit(p, sd(S7, T0, 8 * L_SEQ_FIRST));
	emit(p, lwu(T1, S2, 0));
	emit(p, sd(T1, T0, 8 * L_SEQ_LAST));
	emit(p, sd(S5, T0, 8 * L_ODD));
	emit(p, sd(S8, T0, 8 * L_TORN));
	emit(p, sd(S6, T0, 8 * L_DECREASES));
	emit(p, sd(S4, T0, 8 * L_STEAL));

	/* Disable, then spin as long again: the sequence must not move. */
	emit(p, addi(A0, ZERO, -1));
	emit(p, addi(A1, ZERO, -1));
	emit(p, addi(A2, ZERO, 0));
	emit_call(p, EID_STA, 0, R_DISABLE);
	emit(p, lwu(T1, S2, 0));
	emit(p, sd(T1, T0, 8 * L_SEQ_DISABLED));
	emit_li32(p, S3, LOOPS * 4);
	top = p->n;
	emit(p, addi(S3, S3, -1));
	emit(p, bne(S3, ZERO, (int32_t)(top - p->n) * 4));
	emit(p, lwu(T1, S2, 0));
	emit(p, sd(T1, T0, 8 * L_SEQ_LATER));

	/* Power off: the test device's PASS. */
	emit(p, lui(T0, 0x100));
	emit_li32(p, T1, 0x5555);
	emit(p, sw(T1, T0, 0));
	emit(p, jal(ZERO, 0));
	assert_true(p->n <= M_HANDLER / 4);

	/* The "firmware": every ecall that traps here returns a0 = a1 = 0
	 * past the ecall, and is counted. */
	p->n = M_HANDLER / 4;
	emit(p, csrrs(T5, CSR_MEPC, ZERO));
	emit(p, addi(T5, T5, 4));
	emit(p, csrrw(ZERO, CSR_MEPC, T5));
	emit_li(p, T5, RES);            /* (t6 is emit_li's scratch) */
	emit(p, ld(T6, T5, FW_COUNT));
	emit(p, addi(T6, T6, 1));
	emit(p, sd(T6, T5, FW_COUNT));
	emit(p, addi(A0, ZERO, 0));
	emit(p, addi(A1, ZERO, 0));
	emit(p, MRET);
}

struct run {
	uint64_t res[2 * NR_CALLS + 8];
	uint64_t fw_count;
	struct virt_stats vs;
	struct kvm_stats ks;
};

/* Boot the program on a one-hart machine (STA off or on) to its power-off. */
static bool run_prog(bool sta_off, struct run *out)
{
	struct host_config hc = { .ram_bytes = 64ULL << 20 };
	struct virt_config cfg;
	struct prog p;
	struct host *host;
	struct virt *vm;
	char path[64], err[256];
	int fd, ret;

	build(&p);
	snprintf(path, sizeof(path), "/tmp/tandem-test-sta-%d.img", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p.w, sizeof(p.w)), (ssize_t)sizeof(p.w));
	close(fd);

	assert_int_equal(host_create(&hc, &host), 0);
	virt_config_default(&cfg);
	cfg.ram_size = 16 << 20;
	cfg.kernel = path;
	cfg.sbi_sta_off = sta_off;
	ret = virt_create(host, &cfg, &vm, err, sizeof(err));
	unlink(path);
	if (ret == -ENOSYS) {
		assert_int_equal(host_destroy(host), 0);
		return false;
	}
	assert_int_equal(ret, 0);
	assert_int_equal(virt_start(vm), 0);
	ret = virt_wait(vm, 30ULL * 1000000000);
	if (ret) {
		/* Where it got to: the results written so far. */
		virt_stop(vm);
		vmm_read_guest(virt_vmm(vm), RAM + RES, out->res, sizeof(out->res));
		for (unsigned int i = 0; i < ARRAY_SIZE(out->res); i++)
			print_message("  res[%u] = %#llx\n", i, (unsigned long long)out->res[i]);
	}
	assert_int_equal(ret, 0);
	assert_int_equal(virt_exit_reason(vm), VIRT_EXIT_POWEROFF);
	virt_stop(vm);
	virt_get_stats(vm, &out->vs);
	kvm_get_stats(vmm_kvm(virt_vmm(vm)), &out->ks);
	assert_int_equal(vmm_read_guest(virt_vmm(vm), RAM + RES, out->res, sizeof(out->res)), 0);
	assert_int_equal(vmm_read_guest(virt_vmm(vm), RAM + RES + FW_COUNT, &out->fw_count, 8), 0);
	virt_destroy(vm);
	assert_int_equal(host_frames_in_use(host), 0);
	assert_int_equal(host_destroy(host), 0);
	return true;
}

#define A0_OF(r, slot) ((int64_t)(r)->res[2 * (slot)])
#define A1_OF(r, slot) ((r)->res[2 * (slot) + 1])

/* STA on: the probe says available; every bad set_shmem gets the spec's
 * error; a good one gets the area written (even sequence, moving, steal
 * never going back); disable stops the writes. Only the M-mode probe and
 * the TIME probe reach the firmware. */
static void test_sta(void **state)
{
	struct run r;

	(void)state;
	if (!run_prog(false, &r)) {
		print_message("  (no RISC-V hart linked: skipped)\n");
		return;
	}
	assert_int_equal(A0_OF(&r, R_M_PROBE), 0);
	assert_int_equal(A1_OF(&r, R_M_PROBE), 0);    /* M mode: the firmware's */
	assert_int_equal(A0_OF(&r, R_PROBE), 0);
	assert_int_equal(A1_OF(&r, R_PROBE), 1);
	assert_int_equal(A1_OF(&r, R_PROBE_TIME), 0); /* the firmware's */
	assert_int_equal(A0_OF(&r, R_UNALIGNED), -3);
	assert_int_equal(A0_OF(&r, R_FLAGS), -3);
	assert_int_equal(A0_OF(&r, R_NO_RAM), -5);
	assert_int_equal(A0_OF(&r, R_HI), -5);
	assert_int_equal(A0_OF(&r, R_BAD_FID), -2);
	assert_int_equal(A0_OF(&r, R_SET), 0);
	assert_int_equal(A1_OF(&r, R_SET), 0);
	assert_int_equal(A0_OF(&r, R_DISABLE), 0);
	assert_int_equal(r.fw_count, 2);

	/* The area was written at activation (even, non-zero), kept being
	 * written while the loop ran, never seen odd or torn; steal never
	 * went back. */
	assert_true(r.res[L_SEQ_FIRST] >= 2 && r.res[L_SEQ_FIRST] % 2 == 0);
	assert_true(r.res[L_SEQ_LAST] > r.res[L_SEQ_FIRST]);
	assert_int_equal(r.res[L_SEQ_LAST] % 2, 0);
	assert_int_equal(r.res[L_ODD], 0);
	assert_int_equal(r.res[L_TORN], 0);
	assert_int_equal(r.res[L_DECREASES], 0);
	/* Disabled: no more writes. */
	assert_int_equal(r.res[L_SEQ_LATER], r.res[L_SEQ_DISABLED]);

	print_message("  sequence %llu..%llu over %d reads, steal %llu ns, %llu area writes\n",
		      (unsigned long long)r.res[L_SEQ_FIRST], (unsigned long long)r.res[L_SEQ_LAST],
		      LOOPS, (unsigned long long)r.res[L_STEAL],
		      (unsigned long long)r.ks.runstate_updates);
	assert_int_equal(r.vs.sta_probes, 1);
	assert_int_equal(r.vs.sta_calls, 7);
	assert_int_equal(r.vs.sta_errors, 5);
	assert_int_equal(r.vs.sta_enables, 1);
	assert_int_equal(r.vs.sta_active, 0);
	assert_true(r.ks.runstate_updates >= r.res[L_SEQ_LAST] / 2);
	assert_true(r.ks.runstate_updates > 1);
}

/* STA off: no hook; every call is the firmware's, nothing is written. */
static void test_sta_off(void **state)
{
	struct run r;

	(void)state;
	if (!run_prog(true, &r)) {
		print_message("  (no RISC-V hart linked: skipped)\n");
		return;
	}
	assert_int_equal(A0_OF(&r, R_PROBE), 0);
	assert_int_equal(A1_OF(&r, R_PROBE), 0);
	assert_int_equal(A0_OF(&r, R_SET), 0);        /* the stand-in firmware's answer */
	assert_int_equal(r.fw_count, NR_CALLS);
	assert_int_equal(r.res[L_SEQ_FIRST], 0);
	assert_int_equal(r.res[L_SEQ_LAST], 0);
	assert_int_equal(r.vs.sta_probes, 0);
	assert_int_equal(r.vs.sta_calls, 0);
	assert_int_equal(r.ks.runstate_updates, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sta),
		cmocka_unit_test(test_sta_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
