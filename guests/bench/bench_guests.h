/* SPDX-License-Identifier: MIT */
/*
 * bench_guests.h - the constants of the `tandem bench riscv` and `tandem
 * bench gva` guest programs, shared by their assembly (the .S files of
 * guests/bench) and the benchmarks that run them (bench/bench_riscv.c,
 * bench/bench_gva.c), so the instruction counts the benchmark divides by
 * are the ones the programs execute.
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
#define BG_UART                 0x10000000      /* ns16550a: timed sections' ticks */
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
#define BG_MEM_FIXED_INSNS      110761
#define BG_MEM_INSNS            (BG_MEM_ACCESSES * BG_MEM_LOOP_INSNS + BG_MEM_FIXED_INSNS)
#define BG_MEM_CHECKSUM         0x988e40f28ULL

/*
 * The programs of `tandem bench gva` (rv_guest.h: how they are built, and
 * how they print the ticks of their timed sections). In M mode they fill
 * their frames and page tables, then run in S mode with Sv39: at VA 0 a
 * gigapage onto the devices, at VA 0x8000_0000 one onto RAM (the code),
 * both global; the regions below map 4 KiB pages at BG_GVA_VA (and
 * BG_GVA_SPREAD_VA). Every leaf has A and D set already: the guests measure
 * refills, not A/D updates.
 *
 *   alias region   BG_GVA_PAGES pages, page p -> frame p % 64 of the 64 at
 *                  BG_GVA_ALIAS_PA: as many guest pages as the GVA table
 *                  holds, on host frames that stay in the host's caches and
 *                  TLB, so a soft-TLB miss costs the refill alone
 *   spread region  BG_GVA_PAGES pages, each on a frame of its own from
 *                  BG_GVA_SPREAD_PA (32 MiB): a real working set, where the
 *                  host's own TLB and cache misses add to each refill
 *
 * A load reads doubleword (p & 63) * 64 of page p, and frame f holds f
 * there (the sums are checked against the checksums below, which a host
 * model of the LCG gives).
 */
#define BG_GVA_VA               0x40000000
/* Where flush and ctxsw map their few pages: the soft TLB is direct
 * mapped (slot = VA page % 256) and one slot holds one page for data and
 * code alike, so pages in the slots of the code and data at 0x8000_0000
 * (0, 1) would evict them and each other on every pass. */
#define BG_GVA_SMALL_SLOT       64
#define BG_GVA_SMALL_VA         (BG_GVA_VA + BG_GVA_SMALL_SLOT * 4096)
#define BG_GVA_SPREAD_VA        0x50000000
#define BG_GVA_PAGE_BITS        13
#define BG_GVA_PAGES            (1 << BG_GVA_PAGE_BITS)
#define BG_GVA_PT_PA            0x80100000      /* page tables: up to 1 MiB */
#define BG_GVA_ALIAS_PA         0x80200000      /* 64 frames */
#define BG_GVA_ALIAS_FRAMES     64
#define BG_GVA_SPREAD_PA        0x81000000      /* BG_GVA_PAGES frames */
/* bg_random_loads: instructions a load */
#define BG_LOADS_LOOP_INSNS     14

/*
 * refill.S, five timed sections:
 *   0 install   the alias region's pages in order: each a soft-TLB miss
 *               and (GVA on) a full walk + install
 *   1 hit       BG_REFILL_LOADS random loads over 64 of those pages
 *               (BG_REFILL_HIT_BITS), which the soft TLB holds: the loop's
 *               own cost
 *   2 miss      BG_REFILL_LOADS random loads over all BG_GVA_PAGES pages:
 *               ~97% soft-TLB misses, each refilled from the GVA table
 *               (or walked, GVA off); miss - hit = the refill
 *   3 install   the spread region's pages in order
 *   4 spread    BG_REFILL_LOADS random loads over the spread region
 * Hit pages are 64..127 (BG_REFILL_HIT_BASE): soft-TLB slots apart from
 * the code's and the data's pages at 0x8000_0000 (BG_GVA_SMALL_VA).
 */
#define BG_REFILL_LOADS         2000000
#define BG_REFILL_HIT_BITS      6
#define BG_REFILL_HIT_BASE      BG_GVA_SMALL_SLOT
#define BG_REFILL_SECTIONS      5
#define BG_REFILL_FIXED_INSNS   325013
#define BG_REFILL_INSNS         (3ULL * BG_REFILL_LOADS * BG_LOADS_LOOP_INSNS + \
				 BG_REFILL_FIXED_INSNS)
#define BG_REFILL_CHECKSUM      0x1f1dd7110ULL

/*
 * flush.S: BG_FLUSH_ITERS times each, four timed sections:
 *   0 nop          nop, loop
 *   1 flush        sfence.vma x0, x0, loop
 *   2 nop+touch    nop, loads from BG_FLUSH_PAGES pages, loop
 *   3 flush+touch  sfence.vma x0, x0, the same loads, loop
 * (1 - 0) / iters = a full guest TLB flush alone; (3 - 2) / iters = with
 * the refills it causes (the pages, the code page).
 */
#define BG_FLUSH_ITERS          100000
#define BG_FLUSH_PAGES          4
#define BG_FLUSH_SECTIONS       4
#define BG_FLUSH_LOOP_INSNS     3               /* + 8 with the loads */
#define BG_FLUSH_FIXED_INSNS    6788
#define BG_FLUSH_INSNS          (BG_FLUSH_ITERS * (4ULL * BG_FLUSH_LOOP_INSNS + \
				 2 * 2 * BG_FLUSH_PAGES) + BG_FLUSH_FIXED_INSNS)
#define BG_FLUSH_CHECKSUM       1200000

/*
 * ctxsw.S: BG_CTX_SPACES address spaces, each its own root table mapping
 * BG_CTX_PAGES pages at BG_GVA_SMALL_VA (space k's page j on alias frame
 * k * BG_CTX_PAGES + j), and the global gigapages. A switch: the next
 * space's satp (csrw), a fence or a nop, a load from each of its pages.
 * BG_CTX_SWITCHES switches in each of three timed sections:
 *   0 same      satp written with the value it has (no switch): the loads
 *               hit; the baseline
 *   1 asid      each space its own ASID (1..BG_CTX_SPACES), no fence
 *   2 noasid    ASID 0 for all, sfence.vma x0, x0 after each satp write
 * (one round of switches before section 1 is not timed: it builds).
 */
#define BG_CTX_SPACES           8
#define BG_CTX_PAGES            8
#define BG_CTX_SWITCHES         100000
#define BG_CTX_SECTIONS         3
#define BG_CTX_LOOP_INSNS       (10 + 3 * BG_CTX_PAGES)
#define BG_CTX_FIXED_INSNS      50755
#define BG_CTX_INSNS            ((3ULL * BG_CTX_SWITCHES + BG_CTX_SPACES) * \
				 BG_CTX_LOOP_INSNS + BG_CTX_FIXED_INSNS)
#define BG_CTX_CHECKSUM         53202016

/*
 * inval.S: the spread region's pages in order (untimed), then one timed
 * section of BG_INVAL_LOADS random loads over them, while the benchmark
 * makes the host swap single pages out (MADV_PAGEOUT) at a fixed rate:
 * the guest reads them back through swap-in faults, so its sum stays.
 */
#define BG_INVAL_LOADS          4000000
#define BG_INVAL_SECTIONS       1
#define BG_INVAL_FIXED_INSNS    192856
#define BG_INVAL_INSNS          (1ULL * BG_INVAL_LOADS * BG_LOADS_LOOP_INSNS + \
				 BG_INVAL_FIXED_INSNS)
#define BG_INVAL_CHECKSUM       0x3d23f4f9cULL

/* The RAM both machines get for the programs (QEMU's -m). */
#define BG_RAM_MB               256

#endif
