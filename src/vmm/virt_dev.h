/* SPDX-License-Identifier: MIT */
/*
 * virt_dev.h - the devices of the virt machine (virt.h), each usable on
 * its own: a device is a struct with an MMIO handler (vmm_mmio_fn) and
 * outputs through function pointers, so tests drive one device through its
 * registers and watch its lines without a hart, and virt.c wires the real
 * machine to the harts (rv_hart_set_irq, rv_hart_set_mtimecmp, the clock).
 *
 * Interrupt plumbing:
 *   UART, virtio --plic_set_level(src)--> PLIC --sink.set_irq(hart, MEI/SEI)--> harts
 *   CLINT --sink.set_irq(hart, MSI), sink.set_mtimecmp(hart)--> harts
 */
#ifndef TANDEM_VMM_VIRT_DEV_H
#define TANDEM_VMM_VIRT_DEV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "tandem/types.h"
#include "tandem/vmm.h"

/* Interrupt numbers as riscv.h's RV_IRQ_* (mip bits). */
#define VIRT_IRQ_MSI 3
#define VIRT_IRQ_SEI 9
#define VIRT_IRQ_MEI 11

/* Where the interrupt controllers' outputs go (the harts, or a test). */
struct virt_irq_sink {
	void (*set_irq)(void *opaque, unsigned int hart, unsigned int irq, bool level);
	void (*set_mtimecmp)(void *opaque, unsigned int hart, uint64_t ticks);
	uint64_t (*get_mtimecmp)(void *opaque, unsigned int hart);
	uint64_t (*read_time)(void *opaque);    /* mtime, in timebase ticks */
	void *opaque;
};

/* ---- memory map ---------------------------------------------------------- */
#define VIRT_ROM_BASE        0x1000ULL
#define VIRT_ROM_SIZE        0x1000ULL
#define VIRT_TEST_BASE       0x100000ULL
#define VIRT_TEST_SIZE       0x1000ULL
#define VIRT_CLINT_BASE      0x2000000ULL
#define VIRT_CLINT_SIZE      0x10000ULL
#define VIRT_PLIC_BASE       0xc000000ULL
#define VIRT_PLIC_SIZE       0x600000ULL
#define VIRT_UART_BASE       0x10000000ULL
#define VIRT_UART_SIZE       0x100ULL
#define VIRT_UART_IRQ        10
#define VIRT_VIRTIO_BASE     0x10001000ULL
#define VIRT_VIRTIO_SIZE     0x1000ULL
#define VIRT_VIRTIO_COUNT    8
#define VIRT_VIRTIO_IRQ      1              /* slot i: source 1 + i */
#define VIRT_UART_CLOCK      0x384000
#define VIRT_FLASH_BASE      0x20000000ULL
#define VIRT_FLASH_BANK_SIZE (32ULL << 20)
#define VIRT_FLASH_BANKS     2

/* ---- CFI parallel flash (pflash.c) --------------------------------------- */
struct pflash;
int pflash_create(struct pflash **out);
void pflash_destroy(struct pflash *f);
void pflash_reset(struct pflash *f);
void pflash_mmio(void *pflash, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
		 uint64_t *val);
void pflash_get_stats(struct pflash *f, uint64_t *programs, uint64_t *erases);

/* ---- PLIC (plic.c) ------------------------------------------------------- */
#define PLIC_NDEV        0x5f               /* sources 1..95 */
#define PLIC_NR_SRC      (PLIC_NDEV + 1)
#define PLIC_WORDS       ((PLIC_NR_SRC + 31) / 32)
#define PLIC_MAX_PRIO    7
#define PLIC_PENDING     0x1000
#define PLIC_ENABLE      0x2000
#define PLIC_ENABLE_STRIDE 0x80
#define PLIC_CONTEXT     0x200000
#define PLIC_CONTEXT_STRIDE 0x1000

struct plic;
/* Contexts 2h (M: MEI of hart h) and 2h+1 (S: SEI). */
int plic_create(unsigned int nr_harts, const struct virt_irq_sink *sink, struct plic **out);
void plic_destroy(struct plic *plic);
/* Reset: priorities, enables, thresholds, pending and in-service cleared
 * (the sources' levels kept: the devices still drive them); outputs that
 * were up are lowered through the sink. */
void plic_reset(struct plic *plic);
/* A device's line (level triggered); any thread. */
void plic_set_level(struct plic *plic, unsigned int src, bool level);
void plic_mmio(void *plic, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
	       uint64_t *val);

/* ---- CLINT (clint.c) ----------------------------------------------------- */
#define CLINT_MSIP       0x0
#define CLINT_MTIMECMP   0x4000
#define CLINT_MTIME      0xbff8

struct clint {
	unsigned int nr_harts;
	const struct virt_irq_sink *sink;
	_Atomic uint32_t msip[64];
};
void clint_init(struct clint *c, unsigned int nr_harts, const struct virt_irq_sink *sink);
/* Reset: every msip 0 (a raised MSI lowered), every mtimecmp UINT64_MAX. */
void clint_reset(struct clint *c);
void clint_mmio(void *clint, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
		uint64_t *val);

/* ---- ns16550a UART (uart.c) ---------------------------------------------- */
#define UART_FIFO_SIZE 4096

struct uart;
/*
 * in_fd: read by a thread of the UART into its receive FIFO (-1: none);
 * out_fd: written on the accessing thread (-1: discarded). irq_line(src,
 * level) is plic_set_level's shape. escape: Ctrl-A x calls quit(quit_arg)
 * instead of reaching the guest (Ctrl-A Ctrl-A sends one Ctrl-A).
 */
struct uart_config {
	int in_fd, out_fd;
	void (*irq_line)(void *arg, unsigned int src, bool level);
	void *irq_arg;
	unsigned int irq;
	bool escape;
	void (*quit)(void *arg);
	void *quit_arg;
};
int uart_create(const struct uart_config *cfg, struct uart **out);
/* Start the reader thread (if in_fd >= 0). */
int uart_start(struct uart *u);
void uart_destroy(struct uart *u);     /* stops the reader */
/* Reset: registers to the 16550's reset values, the receive FIFO emptied,
 * the line lowered. The reader keeps running (later input is received). */
void uart_reset(struct uart *u);
void uart_mmio(void *uart, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
	       uint64_t *val);
/* Queue bytes as if read from in_fd (tests; any thread). Returns how many fit. */
size_t uart_receive(struct uart *u, const void *buf, size_t len);
uint64_t uart_tx_bytes(struct uart *u);
uint64_t uart_rx_bytes(struct uart *u);

/* ---- virtio-mmio block device (virtio_blk.c) ----------------------------- */
#define VIRTIO_MMIO_MAGIC    0x74726976
#define VIRTIO_ID_BLOCK      2
#define VIRTIO_VENDOR_QEMU   0x554d4551
#define VIRTQ_MAX_SIZE       256

struct virtio_mmio;
/*
 * A virtio-mmio (version 2) slot: with fd >= 0 a block device over that
 * file (read_only: VIRTIO_BLK_F_RO), with fd < 0 an empty slot (device id
 * 0). DMA goes through vmm_read_guest / vmm_write_guest. The fd is owned
 * (closed by virtio_mmio_destroy).
 */
int virtio_mmio_create(struct vmm *vmm, int fd, bool read_only,
		       void (*irq_line)(void *arg, unsigned int src, bool level), void *irq_arg,
		       unsigned int irq, struct virtio_mmio **out);
void virtio_mmio_destroy(struct virtio_mmio *d);
/* Reset, as the driver's write of 0 to Status: features, queue and
 * interrupt status cleared, the line lowered. */
void virtio_mmio_reset(struct virtio_mmio *d);
void virtio_mmio(void *dev, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
		 uint64_t *val);
struct virtio_blk_stats {
	uint64_t reads, writes, flushes, get_ids, errors, notifies;
};
void virtio_blk_get_stats(struct virtio_mmio *d, struct virtio_blk_stats *st);

/* ---- device tree (virt_fdt.c) -------------------------------------------- */
struct virt_fdt_config {
	unsigned int nr_harts;
	uint64_t ram_base, ram_size;
	const char *bootargs;           /* NULL: none */
	int bootdelay;
	unsigned int nr_virtio;
};
/* Build the tree into buf (size bytes). Returns its size, or a negative
 * errno (-ENOSPC: buf too small; -EINVAL from libfdt). */
int virt_fdt_build(const struct virt_fdt_config *cfg, void *buf, size_t size);

/* ---- image loader (loader.c) --------------------------------------------- */
struct virt_image {
	const char *path;
	bool elf;
	uint64_t entry;                 /* ELF entry, or the raw load address */
	uint64_t lo, hi;                /* physical range loaded [lo, hi) */
	bool has_htif;
	uint64_t tohost, fromhost;      /* HTIF symbols (has_htif) */
};
/* A range already taken in RAM (by an earlier image, the DTB). */
struct virt_region {
	uint64_t lo, hi;
	const char *what;
};
/*
 * Load path into the guest RAM [ram_base, ram_base + ram_size): an ELF64
 * RISC-V executable by its segments' physical addresses (bss zeroed), or a
 * raw image at raw_addr. Refuses overlaps with the nr_taken regions.
 * Returns 0 or a negative errno with a message in err: -ENOENT/-EACCES/...
 * (open), -EINVAL (a bad ELF), -E2BIG (outside RAM), -EEXIST (overlap).
 */
int virt_load_image(struct vmm *vmm, const char *path, uint64_t raw_addr, uint64_t ram_base,
		    uint64_t ram_size, const struct virt_region *taken, unsigned int nr_taken,
		    struct virt_image *img, char *err, size_t errlen);

/* ---- SBI extensions the VMM implements (sbi_sta.c) ------------------------ */
struct rv_hart;
struct kvm_vcpu;

#define VIRT_SBI_NO_SHMEM UINT64_MAX

struct virt_sbi_stats {
	uint64_t sta_probes;            /* probe_extension(STA) answered */
	uint64_t sta_calls;             /* STA calls (set_shmem and unknown FIDs) */
	uint64_t sta_errors;            /* ... that returned an SBI error */
	uint64_t sta_enables;           /* areas set (set_shmem succeeded, not all ones) */
	uint64_t sta_disables;          /* set_shmem(all ones) */
	bool sta_active;                /* an area is set now */
};

/* One hart's SBI state. The hart's thread writes sta_shmem and stat
 * (relaxed atomics), anyone reads them. */
struct virt_sbi {
	struct kvm_vcpu *vcpu;
	gpa_t sta_shmem;                /* the active STA area, or VIRT_SBI_NO_SHMEM */
	struct virt_sbi_stats stat;
};

void virt_sbi_init(struct virt_sbi *sbi, struct kvm_vcpu *vcpu);
/* The hart's ecall hook (rv_ecall_fn), arg a struct virt_sbi. */
bool virt_sbi_ecall(struct rv_hart *hart, unsigned int priv, void *sbi);
/* Machine reset, the hart stopped: forget the STA area (stop its writes). */
void virt_sbi_reset(struct virt_sbi *sbi);
/* Any thread (approximate while the hart runs). */
void virt_sbi_get_stats(const struct virt_sbi *sbi, struct virt_sbi_stats *st);

#endif
