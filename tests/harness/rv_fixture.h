/* SPDX-License-Identifier: MIT */
/*
 * rv_fixture.h - the fixture of the RISC-V hart suites: a host, a VMM
 * with one RAM region at RT_RAM_BASE, and up to two harts starting there
 * in M mode, with the helpers that load code, read and write guest
 * memory, wait for a guest word, and drop a guest page from the host.
 *
 * Include after <cmocka.h>.
 */
#ifndef TANDEM_TESTS_HARNESS_RV_FIXTURE_H
#define TANDEM_TESTS_HARNESS_RV_FIXTURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "tandem/vmm.h"
#include "tandem/riscv.h"
#include "harness/util.h"

#define RT_RAM_BASE     0x80000000ULL
#define RT_RAM_SIZE     (64 * 1024)     /* rt_create's */
#define RT_WAIT_MS      10000           /* any wait on a hart: longer is a hang */
#define RT_MAX_HARTS    2

struct rt_config {
	struct kvm_config kvm;          /* the kick mode is forced to WAIT */
	uint64_t ram_size;              /* 0: RT_RAM_SIZE */
	rv_ecall_fn ecall;              /* the harts' VMM ecall handler (NULL: none) */
	void *ecall_arg;
};

struct rt {
	struct host *host;
	struct vmm *vmm;
	struct rv_clock clk;
	struct rv_hart *harts[RT_MAX_HARTS];
	bool stopped[RT_MAX_HARTS];     /* stopped by the test already */
	int nr_harts;
	hva_t ram;
	uint64_t ram_size;
	rv_ecall_fn ecall;
	void *ecall_arg;
	atomic_int test_dev;            /* last write to the test device (gpa 0x100000) */
};

/* A host of 32 MiB, a VM (WAIT kicks) and 64 KiB of RAM. */
struct rt *rt_create(void);
struct rt *rt_create_cfg(const struct rt_config *cfg);
/* Stops the harts the test has not stopped, destroys everything, and
 * checks that every host frame came back. */
void rt_destroy(struct rt *t);
/* Create nr harts (a0 = hart id, M mode, pc = RT_RAM_BASE) and run them. */
void rt_start(struct rt *t, int nr);

/* Guest memory at RAM offset off, through the VMM. */
void rt_load(struct rt *t, uint64_t off, const uint32_t *code, unsigned int n);
uint64_t rt_read(struct rt *t, uint64_t off);
void rt_write(struct rt *t, uint64_t off, uint64_t val);

/* Sv39/Sv48 PTE bits, and a PTE whose PPN is RAM offset off (a pointer to
 * a next-level table with flags RV_PTE_V alone, else a leaf). */
#define RV_PTE_V (1ULL << 0)
#define RV_PTE_R (1ULL << 1)
#define RV_PTE_W (1ULL << 2)
#define RV_PTE_X (1ULL << 3)
#define RV_PTE_U (1ULL << 4)
#define RV_PTE_G (1ULL << 5)
#define RV_PTE_A (1ULL << 6)
#define RV_PTE_D (1ULL << 7)

static inline uint64_t rt_pte(uint64_t off, uint64_t flags)
{
	return (RT_RAM_BASE + off) >> 12 << 10 | flags;
}

/* MADV_DONTNEED of the page at RAM offset off, on another thread, failing
 * the test if it does not return within RT_WAIT_MS (it waits for the harts
 * in guest mode to leave it). */
void rt_dontneed(struct rt *t, uint64_t off);

/* Wait until the guest word at off satisfies cond, v being its value (a
 * hang is a failure). */
#define rt_wait(t, off, cond) do { \
	uint64_t end_ = ms_now() + RT_WAIT_MS, v; \
	while (v = rt_read(t, off), !(cond)) { \
		if (ms_now() > end_) \
			fail_msg("guest word %#llx = %#llx: timed out waiting for %s", \
				 (unsigned long long)(off), (unsigned long long)v, #cond); \
		sleep_ms(1); \
	} } while (0)

#endif
