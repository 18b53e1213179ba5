/* SPDX-License-Identifier: MIT */
/*
 * virt.h - a RISC-V machine with QEMU's `virt` memory map, so firmware
 * built for QEMU (OpenSBI's generic platform, U-Boot's qemu-riscv64) runs
 * unchanged on tandem's harts (riscv.h):
 *
 *   0x0000_1000  ROM (4K): OpenSBI's fw_dynamic_info block
 *   0x0010_0000  SiFive test device (power off / fail / reset)
 *   0x0200_0000  CLINT: msip, mtimecmp, mtime (10 MHz)
 *   0x0c00_0000  PLIC: 95 sources, an M and an S context per hart
 *   0x1000_0000  ns16550a UART (PLIC source 10)
 *   0x1000_1000  virtio-mmio slots 0..7, 0x1000 apart (sources 1..8);
 *                slot 0 is the block device when a drive is given
 *   0x8000_0000  RAM; the device tree near its top, 2M aligned
 *
 * The machine loads its images (ELF by physical address, or raw), builds
 * the device tree, and starts one vCPU thread per hart with QEMU's boot
 * registers (a0 hart id, a1 DTB, a2 fw_dynamic_info). The guest ends the
 * run through the test device or, for an ELF image that defines tohost and
 * fromhost, through HTIF.
 */
#ifndef TANDEM_VIRT_H
#define TANDEM_VIRT_H

#include <stddef.h>
#include "tandem/types.h"
#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/vmm.h"

#define VIRT_RAM_BASE        0x80000000ULL
#define VIRT_RAM_DEFAULT     (128ULL << 20)
#define VIRT_RAM_MIN         (16ULL << 20)
#define VIRT_RAM_MAX         (2ULL << 30)     /* below 3 GiB, as the DTB wants */
#define VIRT_KERNEL_OFFSET   0x200000ULL      /* fw_jump's next stage */
#define VIRT_TIMEBASE_HZ     10000000ULL
/* The VMM region (and memslot) of RAM: its host mapping is
 * vmm_ram_hva(virt_vmm(vm), VIRT_RAM_SLOT). */
#define VIRT_RAM_SLOT        0

struct virt_config {
	uint64_t ram_size;              /* VIRT_RAM_MIN..VIRT_RAM_MAX, 2M multiple */
	unsigned int smp;               /* harts, 1..KVM_MAX_VCPUS */
	const char *bios;               /* ELF or raw; NULL: none (kernel in M mode) */
	const char *kernel;             /* ELF or raw; may be NULL with a bios */
	const char *drive;              /* virtio-blk backing file; NULL: none */
	const char *bootargs;           /* /chosen/bootargs; NULL: none */
	int bootdelay;                  /* /config/bootdelay (U-Boot: -1 no autoboot) */
	int console_in;                 /* UART input fd; -1: none */
	int console_out;                /* UART output fd; -1: discard */
	bool console_escape;            /* Ctrl-A x on console_in powers off */
	/* Host churn under the running guest, every churn_interval_ms (0:
	 * off), alternately: fork the VMM's mm and drop the child a moment
	 * later (guest writes break COW), or reclaim a batch of pages
	 * (swap-out when the host has swap). Nothing that may change or
	 * refuse the guest's accesses (no DONTNEED, no mprotect: a real
	 * guest would see zeroes or access faults). */
	unsigned int churn_interval_ms;
	/* SBI steal-time accounting (STA) offered by the VMM to S-mode
	 * software beside the firmware (sbi_sta.c): on unless this is set. */
	bool sbi_sta_off;
	struct kvm_config kvm;          /* kick is forced to KVM_KICK_WAIT */
};

void virt_config_default(struct virt_config *cfg);

struct virt;

/*
 * Build the machine on host: the VM, RAM, devices, images, device tree,
 * harts (not running). Returns 0, or a negative errno with a message in
 * err: -EINVAL (bad configuration, not an image we can load), -ENOENT /
 * -EACCES (a file), -E2BIG (an image does not fit in RAM), -EEXIST (images
 * overlap), -ENOMEM, or the hart's errors.
 */
int virt_create(struct host *host, const struct virt_config *cfg, struct virt **out,
		char *err, size_t errlen);
/* Start every hart's thread. */
int virt_start(struct virt *vm);

/* How a run ended (virt_wait's return value is the guest's exit status). */
enum virt_exit {
	VIRT_RUNNING = 0,
	VIRT_EXIT_POWEROFF,             /* test device 0x5555 */
	VIRT_EXIT_FAIL,                 /* test device 0x3333 | code << 16 */
	VIRT_EXIT_HTIF,                 /* tohost exit */
	VIRT_EXIT_HART_ERROR,           /* a hart's thread failed (host error) */
	VIRT_EXIT_HTIF_ERROR,           /* a syscall HTIF does not know */
	VIRT_EXIT_USER,                 /* virt_request_exit (Ctrl-A x) */
	VIRT_EXIT_RESET_ERROR,          /* a reset could not load the images again */
};
const char *virt_exit_name(enum virt_exit why);

/*
 * Wait for the guest to end the run (or timeout_ns from the call; 0 waits
 * for ever). Returns the guest's exit status (>= 0: 0 for a power-off or
 * a passing HTIF test, the code of a failure) or -ETIMEDOUT. The harts are
 * asked to stop; virt_stop joins them.
 *
 * The guest's resets (test device 0x7777) are done here, on the caller's
 * thread, and the wait goes on: the harts are joined, the devices reset,
 * the images, the device tree and fw_dynamic_info loaded again (the rest
 * of RAM keeps its contents, as on QEMU), the harts restarted with their
 * boot registers. A reset with nobody waiting is dropped by virt_stop.
 */
int virt_wait(struct virt *vm, uint64_t timeout_ns);
enum virt_exit virt_exit_reason(struct virt *vm);
/* End the run from outside the guest with status (any thread). */
void virt_request_exit(struct virt *vm, enum virt_exit why, int status);
/* Stop and join the harts and the machine's threads. Idempotent. On the
 * thread that calls virt_wait, or with no virt_wait running (a reset in
 * virt_wait stops and starts the harts). */
void virt_stop(struct virt *vm);
void virt_destroy(struct virt *vm);

struct vmm *virt_vmm(struct virt *vm);
uint64_t virt_dtb_addr(struct virt *vm);

struct virt_stats {
	uint64_t instret;               /* summed over harts */
	uint64_t exceptions, interrupts, wfi_sleeps;
	uint64_t ptw_walks;             /* guest page-table walks (soft-TLB misses, paging on) */
	uint64_t gva_refills;           /* soft-TLB misses refilled from a GVA table */
	uint64_t gva_cold_skips;        /* walks not installed: cold root */
	uint64_t sfence_vma;
	uint64_t code_pages_decoded;    /* decoded-code pages built or rebuilt */
	uint64_t mmio_exits;            /* dispatched to a device */
	uint64_t uart_tx, uart_rx;      /* bytes */
	uint64_t blk_reads, blk_writes, blk_flushes;
	uint64_t churn_ops;
	/* SBI STA (virt_config.sbi_sta_off), summed over harts; the areas'
	 * writes are kvm_stats.runstate_updates. */
	uint64_t sta_probes;            /* probe_extension(STA) answered */
	uint64_t sta_calls;             /* STA calls ... */
	uint64_t sta_errors;            /* ... that returned an SBI error */
	uint64_t sta_enables;           /* areas set */
	uint64_t sta_active;            /* harts with an area set now */
	uint64_t sta_fork_child_writes; /* churn forks whose child's copy of an
					 * STA area's page changed: a hart wrote
					 * through a stale cache (must be 0) */
	uint64_t resets;                /* machine resets done by virt_wait */
	uint64_t run_ns;                /* since virt_start (to the exit, if any) */
};
void virt_get_stats(struct virt *vm, struct virt_stats *st);
/* What a sampler may read while the harts run (virt_get_stats reads
 * counters the harts write: call it while they are stopped, or accept a
 * torn figure): summed over harts, each as of its interpreter's last
 * return to its run loop. */
struct virt_live {
	uint64_t instret;
	uint64_t ptw_walks;             /* as virt_stats */
	uint64_t gva_refills;
	uint64_t sfence_vma;
};
/* Any thread, while the machine runs too. */
void virt_get_live(struct virt *vm, struct virt_live *live);

#endif
