/* SPDX-License-Identifier: MIT */
/*
 * bench_guests.h - the constants of the `tandem bench riscv` guest programs,
 * shared by their assembly (the .S files of guests/bench) and the benchmark that runs
 * them (bench/bench_riscv.c), so the instruction counts the benchmark
 * divides by are the ones the programs execute.
 *
 * Each program runs on hart 0 of QEMU's virt machine (-bios none, linked
 * at 0x8000_0000), checks its own result against the checksum below and
 * powers off through the SiFive test device (0x5555), or fails with
 * 0x3333 | code << 16. The *_INSNS counts are exact: instructions retired
 * from the reset PC to the test-device store, that store included. Where
 * a program is changed, rerun `tandem bench riscv`: it compares tandem's
 * instret with these counts and says so when they differ.
 */
#ifndef TANDEM_BENCH_GUESTS_H
#define TANDEM_BENCH_GUESTS_H

#define BG_TEST_DEV             0x100000
#define BG_EXIT_PASS            0x5555
#define BG_EXIT_FAIL            0x3333

/* Fail codes (test device 0x3333 | code << 16). */
#define BG_FAIL_CHECKSUM        1
#define BG_FAIL_TRAP            2       /* + the trap's mcause << 4 */

/* cpu.S: a 10-instruction integer loop (xor, add, sub, shifts, a branch;
 * 7 of the 10 compressed), CPU_ITERS times. */
#define BG_CPU_ITERS            50000000
#define BG_CPU_LOOP_INSNS       10
#define BG_CPU_FIXED_INSNS      15
#define BG_CPU_INSNS            (BG_CPU_ITERS * BG_CPU_LOOP_INSNS + BG_CPU_FIXED_INSNS)
#define BG_CPU_CHECKSUM         0x17aa1f46f852218fULL

/* mem.S: Sv39 page tables mapping BG_MEM_PAGES 4 KiB pages at BG_MEM_VA,
 * then from S mode a walk of BG_MEM_ACCESSES loads, each to a page drawn
 * by a 64-bit LCG (the top BG_MEM_PAGE_BITS bits: 32 times more pages than
 * the 256-entry soft TLB holds, so about 97% of the loads miss it). */
#define BG_MEM_PAGE_BITS        13
#define BG_MEM_PAGES            (1 << BG_MEM_PAGE_BITS)
#define BG_MEM_VA               0x40000000
#define BG_MEM_PA               0x81000000      /* RAM + 16 MiB: 32 MiB walked */
#define BG_MEM_PT_PA            0x80100000      /* root, one L1, 16 L0 tables */
#define BG_MEM_ACCESSES         10000000
#define BG_MEM_LOOP_INSNS       12
#define BG_MEM_LCG_A            6364136223846793005ULL  /* Knuth's MMIX LCG */
#define BG_MEM_LCG_C            1442695040888963407ULL
#define BG_MEM_LCG_SEED         42
#define BG_MEM_FIXED_INSNS      110759
#define BG_MEM_INSNS            (BG_MEM_ACCESSES * BG_MEM_LOOP_INSNS + BG_MEM_FIXED_INSNS)
#define BG_MEM_CHECKSUM         0x988e40f28ULL

/* The RAM both machines get for the programs (QEMU's -m). */
#define BG_RAM_MB               256

#endif
