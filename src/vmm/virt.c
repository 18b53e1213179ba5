/* SPDX-License-Identifier: MIT */
/*
 * virt.c - the virt machine (virt.h): RAM and ROM as memslots, the
 * devices of virt_dev.h on the MMIO bus, images and the device tree in
 * RAM, one RISC-V hart per vCPU thread, and how a run ends.
 *
 * Lifecycle: virt_create builds everything with the harts not running;
 * virt_start starts the UART's reader, the HTIF poller and the harts;
 * virt_wait sleeps until the run ends; virt_stop joins every thread;
 * virt_destroy frees in reverse order (harts, then the devices whose
 * lines reach them, then the VMM).
 *
 * Ending a run (virt_request_exit) may happen on a hart's thread (the
 * test device), the HTIF poller, the UART reader (Ctrl-A x) or a thread
 * outside: it records the first reason and status under exit_lock, asks
 * every hart to stop (vcpu_request_stop: no join, safe on a hart's own
 * thread, wakes a hart in WFI) and wakes virt_wait. Later requests keep
 * the first reason.
 *
 * A reset (the test device's 0x7777, on a hart's thread) is asked for the
 * same way but recorded as reset_pending, with exit_reason left
 * VIRT_RUNNING: the HTIF poller and the churn thread, which run while it
 * is, carry on through it. virt_wait, on a thread that is no hart's, does
 * the reset (virt_reset): join the harts, reset the devices, load the
 * images, the device tree and fw_dynamic_info again (as QEMU re-loads its
 * ROM blobs; the rest of RAM keeps its contents), reset the harts to their
 * boot registers and start them. States, under exit_lock:
 *
 *   running --test 0x7777--> reset pending --virt_wait: virt_reset--> running
 *      |                        |
 *      +--virt_request_exit-----+--> ended (exit_reason != VIRT_RUNNING)
 *
 *   1. A reset asked for while an exit is recorded, or while one is
 *      pending, is ignored.
 *   2. An exit asked for during a reset wins: virt_reset looks under
 *      exit_lock before restarting the harts and starts them only if the
 *      run still goes on; an exit recorded after that finds them running
 *      and stops them (the restart holds exit_lock, so vcpu_run's clearing
 *      of a stop request cannot race with one).
 *   3. Nobody waiting (virt_stop): the pending reset is dropped; the
 *      machine stops with the user's exit.
 *   4. reset_pending is cleared in the exit_lock section that restarts the
 *      harts, never after it: a restarted hart may ask for the next reset
 *      at once.
 *
 *      virt_wait                           hart 0 (restarted)
 *      lock; reset_pending = false
 *      vcpu_run(hart 0); unlock
 *                                          test 0x7777: lock;
 *                                          reset_pending = true; unlock
 *      lock; sees reset_pending: resets again
 *
 *      (Clearing it after a second lock would drop that request and leave
 *      the hart spinning after its write.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tandem/virt.h"
#include "tandem/riscv.h"
#include "vmm/virt_dev.h"
#include "base/clock.h"
#include "base/compiler.h"

#define VIRT_ROM_SLOT        1
#define VIRT_FDT_MAX         (64u << 10)
#define VIRT_FDT_ALIGN       (2ULL << 20)
#define VIRT_DYNINFO_ADDR    (VIRT_ROM_BASE + 0x40)
#define FW_DYNAMIC_MAGIC     0x4942534fULL      /* "OSBI" */
#define FW_DYNAMIC_VERSION   2
#define FW_DYNAMIC_NEXT_S    1
#define HTIF_POLL_NS         (200 * NSEC_PER_USEC)

struct virt;

struct virt_hart {
	struct virt *vm;
	struct vcpu *vcpu;
	struct rv_hart *hart;
	struct virt_sbi sbi;            /* the VMM's SBI extensions (sbi_sta.c) */
	int ret;
};

struct virt {
	struct host *host;
	struct vmm *vmm;
	struct virt_config cfg;
	struct rv_clock clock;
	struct virt_irq_sink sink;
	struct plic *plic;
	struct clint clint;
	struct uart *uart;
	struct pflash *pflash;
	struct virtio_mmio *virtio[VIRT_VIRTIO_COUNT];
	struct virt_hart harts[KVM_MAX_VCPUS];
	unsigned int nr_harts;
	struct virt_image bios, kernel;
	bool has_bios, has_kernel;
	uint64_t dtb_addr;

	/* HTIF */
	bool htif;
	uint64_t tohost, fromhost;
	pthread_t htif_thread;
	bool htif_started;

	/* host churn */
	pthread_t churn_thread;
	bool churn_started;
	_Atomic uint64_t churn_ops;
	_Atomic uint64_t sta_fork_child_writes;

	/* the end of a run */
	pthread_mutex_t exit_lock;
	pthread_cond_t exit_cond;
	enum virt_exit exit_reason;     /* VIRT_RUNNING until the first request */
	int exit_status;
	bool reset_pending;             /* asked for, virt_wait has not done it */
	uint64_t resets;                /* done */
	bool started, stopped;
	uint64_t start_ns, end_ns;
};

static int virt_err(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int virt_err(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

void virt_config_default(struct virt_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ram_size = VIRT_RAM_DEFAULT;
	cfg->smp = 1;
	cfg->console_in = -1;
	cfg->console_out = -1;
	cfg->kvm.kick = KVM_KICK_WAIT;
}

const char *virt_exit_name(enum virt_exit why)
{
	static const char *const names[] = {
		[VIRT_RUNNING] = "running",
		[VIRT_EXIT_POWEROFF] = "power-off",
		[VIRT_EXIT_FAIL] = "test device failure",
		[VIRT_EXIT_HTIF] = "HTIF exit",
		[VIRT_EXIT_HART_ERROR] = "a hart failed",
		[VIRT_EXIT_HTIF_ERROR] = "unsupported HTIF request",
		[VIRT_EXIT_USER] = "stopped by the user",
		[VIRT_EXIT_RESET_ERROR] = "the reset failed (an image could not be loaded again)",
	};

	return (unsigned int)why < ARRAY_SIZE(names) ? names[why] : "?";
}

/* ---- the harts' interrupt lines ------------------------------------------ */

static void sink_set_irq(void *opaque, unsigned int h, unsigned int irq, bool level)
{
	struct virt *vm = opaque;

	if (h < vm->nr_harts && vm->harts[h].hart)
		rv_hart_set_irq(vm->harts[h].hart, irq, level);
}

static void sink_set_mtimecmp(void *opaque, unsigned int h, uint64_t ticks)
{
	struct virt *vm = opaque;

	if (h < vm->nr_harts && vm->harts[h].hart)
		rv_hart_set_mtimecmp(vm->harts[h].hart, ticks);
}

static uint64_t sink_get_mtimecmp(void *opaque, unsigned int h)
{
	struct virt *vm = opaque;

	return h < vm->nr_harts && vm->harts[h].hart ? rv_hart_get_mtimecmp(vm->harts[h].hart)
						     : 0;
}

static uint64_t sink_read_time(void *opaque)
{
	struct virt *vm = opaque;

	return rv_clock_read(&vm->clock);
}

static void plic_line(void *arg, unsigned int src, bool level)
{
	plic_set_level(arg, src, level);
}

/* ---- ending a run -------------------------------------------------------- */

/* Ask every hart to stop, without joining (any thread, a hart's own
 * included), and wake virt_wait. Called with exit_lock held. */
static void virt_stop_harts_locked(struct virt *vm)
{
	for (unsigned int i = 0; i < vm->nr_harts; i++)
		if (vm->harts[i].vcpu)
			vcpu_request_stop(vm->harts[i].vcpu);
	pthread_cond_broadcast(&vm->exit_cond);
}

/* Record the first exit. Called with exit_lock held. */
static void virt_request_exit_locked(struct virt *vm, enum virt_exit why, int status)
{
	if (vm->exit_reason != VIRT_RUNNING)
		return;
	vm->exit_reason = why;
	vm->exit_status = status;
	vm->end_ns = clock_now_ns();
	virt_stop_harts_locked(vm);
}

void virt_request_exit(struct virt *vm, enum virt_exit why, int status)
{
	pthread_mutex_lock(&vm->exit_lock);
	virt_request_exit_locked(vm, why, status);
	pthread_mutex_unlock(&vm->exit_lock);
}

/* The guest asks for a reset (a hart's thread): virt_wait does it. */
static void virt_request_reset(struct virt *vm)
{
	pthread_mutex_lock(&vm->exit_lock);
	if (vm->exit_reason == VIRT_RUNNING && !vm->reset_pending) {
		vm->reset_pending = true;
		virt_stop_harts_locked(vm);
	}
	pthread_mutex_unlock(&vm->exit_lock);
}

enum virt_exit virt_exit_reason(struct virt *vm)
{
	enum virt_exit r;

	pthread_mutex_lock(&vm->exit_lock);
	r = vm->exit_reason;
	pthread_mutex_unlock(&vm->exit_lock);
	return r;
}

static void uart_quit(void *arg)
{
	virt_request_exit(arg, VIRT_EXIT_USER, 0);
}

/* The SiFive test device ("sifive,test0"): a 32-bit write at offset 0. */
#define TEST_FAIL    0x3333
#define TEST_PASS    0x5555
#define TEST_RESET   0x7777

static void test_mmio(void *opaque, struct vcpu *vcpu, gpa_t gpa, unsigned int size,
		      bool write, uint64_t *val)
{
	struct virt *vm = opaque;
	uint32_t v;

	if (!write) {
		*val = 0;
		return;
	}
	if (gpa != VIRT_TEST_BASE)
		return;
	v = (uint32_t)*val;
	switch (v & 0xffff) {
	case TEST_PASS:
		virt_request_exit(vm, VIRT_EXIT_POWEROFF, 0);
		break;
	case TEST_FAIL:
		virt_request_exit(vm, VIRT_EXIT_FAIL, (int)(v >> 16));
		break;
	case TEST_RESET:
		virt_request_reset(vm);
		break;
	default:
		break;
	}
}

/* ---- HTIF ------------------------------------------------------------------ */

/*
 * tohost: device (63:56), command (55:48), payload (47:0). Device 0 with
 * payload bit 0 set: exit with payload >> 1 (0: pass). Device 1 command
 * 1: putchar. Answered as Spike does: tohost cleared, then fromhost set.
 */
static void *htif_poller(void *arg)
{
	struct virt *vm = arg;

	while (virt_exit_reason(vm) == VIRT_RUNNING) {
		uint64_t tohost, resp, zero = 0;
		unsigned int dev, cmd;
		uint64_t payload;

		if (vmm_read_guest(vm->vmm, vm->tohost, &tohost, 8) || !tohost) {
			clock_sleep_ns(HTIF_POLL_NS);
			continue;
		}
		dev = (unsigned int)(tohost >> 56);
		cmd = (unsigned int)(tohost >> 48) & 0xff;
		payload = tohost & ((1ULL << 48) - 1);
		if (dev == 0 && cmd == 0 && (payload & 1)) {
			virt_request_exit(vm, VIRT_EXIT_HTIF, (int)(payload >> 1));
			break;
		}
		if (dev == 1 && cmd == 1) {
			uint8_t c = (uint8_t)payload;

			if (vm->cfg.console_out >= 0)
				while (write(vm->cfg.console_out, &c, 1) < 0 && errno == EINTR)
					;
			resp = 1ULL << 56 | 1ULL << 48 | 1;
			vmm_write_guest(vm->vmm, vm->tohost, &zero, 8);
			vmm_write_guest(vm->vmm, vm->fromhost, &resp, 8);
			continue;
		}
		if (dev == 1 && cmd == 0) {
			/* getchar: no input through HTIF; just consume it. */
			vmm_write_guest(vm->vmm, vm->tohost, &zero, 8);
			continue;
		}
		/* A proxied syscall (dev 0, even payload: a pointer) or an unknown
		 * device: nothing here can serve it. */
		virt_request_exit(vm, VIRT_EXIT_HTIF_ERROR, 1);
		break;
	}
	return NULL;
}

/* ---- host churn ---------------------------------------------------------- */

#define CHURN_RECLAIM_PAGES 256
#define CHURN_CHILD_NS      (2 * NSEC_PER_MSEC)

/* Sleep ns unless the run ends first; returns whether it still runs. */
static bool virt_sleep_running(struct virt *vm, uint64_t ns)
{
	struct timespec ts;
	bool running;

	clock_deadline(CLOCK_MONOTONIC, &ts, ns);
	pthread_mutex_lock(&vm->exit_lock);
	while (vm->exit_reason == VIRT_RUNNING &&
	       pthread_cond_timedwait(&vm->exit_cond, &vm->exit_lock, &ts) != ETIMEDOUT)
		;
	running = vm->exit_reason == VIRT_RUNNING;
	pthread_mutex_unlock(&vm->exit_lock);
	return running;
}

/*
 * The host page of hart i's SBI STA area (0: none): the guest address it
 * set, through the RAM region (the churn thread does not remap RAM). Not
 * through the cache: with --break=gpc-request it stays invalid while the
 * hart writes on, which is just what this looks for.
 */
static hva_t sta_page(struct virt *vm, unsigned int i)
{
	gpa_t gpa = __atomic_load_n(&vm->harts[i].sbi.sta_shmem, __ATOMIC_RELAXED);

	if (gpa == VIRT_SBI_NO_SHMEM || gpa < VIRT_RAM_BASE ||
	    gpa >= VIRT_RAM_BASE + vm->cfg.ram_size)
		return 0;
	return vmm_ram_hva(vm->vmm, VIRT_RAM_SLOT) + ((gpa - VIRT_RAM_BASE) & PAGE_MASK);
}

/* A cheap page digest (FNV-1a over its words): enough to see a change. */
static uint64_t page_digest(const uint64_t *p)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < PAGE_SIZE / sizeof(*p); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/*
 * After a fork, the child's copies of the STA areas' pages must not change:
 * the fork write-protected the parent's PTEs, so the notifier invalidated
 * the areas' caches and each hart refreshes (breaking COW) before it
 * writes again. A hart still writing through the old address (e.g.
 * --break=gpc-request) writes the frame the child now owns. Digests each
 * page of the child at the fork and again before it goes (sta_fork_child_
 * writes counts the changes).
 */
static void churn_fork(struct virt *vm)
{
	hva_t page[KVM_MAX_VCPUS];
	uint64_t d0[KVM_MAX_VCPUS];
	uint64_t *buf = malloc(PAGE_SIZE);
	struct mm *child;
	unsigned int n = 0;

	for (unsigned int i = 0; buf && i < vm->nr_harts; i++)
		if ((page[n] = sta_page(vm, i)))
			n++;
	/* The fork write-protects every guest page in the parent: the
	 * harts' next writes fault and break COW. */
	if (mm_fork(vmm_mm(vm->vmm), &child)) {
		free(buf);
		return;
	}
	for (unsigned int i = 0; i < n; i++)
		if (mm_read(child, page[i], buf, PAGE_SIZE) != PAGE_SIZE)
			page[i] = 0;    /* gone meanwhile: nothing to compare */
		else
			d0[i] = page_digest(buf);
	virt_sleep_running(vm, CHURN_CHILD_NS);
	for (unsigned int i = 0; i < n; i++)
		if (page[i] && mm_read(child, page[i], buf, PAGE_SIZE) == PAGE_SIZE &&
		    page_digest(buf) != d0[i])
			atomic_fetch_add(&vm->sta_fork_child_writes, 1);
	mmput(child);
	free(buf);
}

static void *churn_thread(void *arg)
{
	struct virt *vm = arg;
	uint64_t n = 0;

	while (virt_sleep_running(vm, vm->cfg.churn_interval_ms * NSEC_PER_MSEC)) {
		if (n++ % 2 == 0) {
			churn_fork(vm);
		} else {
			host_reclaim(vm->host, CHURN_RECLAIM_PAGES);
		}
		atomic_fetch_add(&vm->churn_ops, 1);
	}
	return NULL;
}

/* ---- harts ----------------------------------------------------------------- */

static int virt_hart_fn(struct vcpu *v, void *arg)
{
	struct virt_hart *h = arg;

	h->ret = rv_hart_main(v, h->hart);
	if (h->ret < 0)
		virt_request_exit(h->vm, VIRT_EXIT_HART_ERROR, 1);
	return h->ret;
}

/* ---- building the machine ---------------------------------------------- */

static int virt_add_devices(struct virt *vm, char *err, size_t errlen)
{
	struct uart_config uc = {
		.in_fd = vm->cfg.console_in,
		.out_fd = vm->cfg.console_out,
		.irq_line = plic_line,
		.irq = VIRT_UART_IRQ,
		.escape = vm->cfg.console_escape,
		.quit = uart_quit,
		.quit_arg = vm,
	};
	int ret;

	ret = pflash_create(&vm->pflash);
	if (ret)
		return virt_err(err, errlen, ret, "flash: %s", strerror(-ret));
	ret = plic_create(vm->nr_harts, &vm->sink, &vm->plic);
	if (ret)
		return virt_err(err, errlen, ret, "PLIC: %s", strerror(-ret));
	uc.irq_arg = vm->plic;
	clint_init(&vm->clint, vm->nr_harts, &vm->sink);
	ret = uart_create(&uc, &vm->uart);
	if (ret)
		return virt_err(err, errlen, ret, "UART: %s", strerror(-ret));

	for (unsigned int i = 0; i < VIRT_VIRTIO_COUNT; i++) {
		int fd = -1;

		if (i == 0 && vm->cfg.drive) {
			fd = open(vm->cfg.drive, O_RDWR | O_CLOEXEC);
			if (fd < 0) {
				ret = -errno;
				return virt_err(err, errlen, ret,
						"--drive %s: cannot open it read-write: %s",
						vm->cfg.drive, strerror(-ret));
			}
		}
		ret = virtio_mmio_create(vm->vmm, fd, false, plic_line, vm->plic,
					 VIRT_VIRTIO_IRQ + i, &vm->virtio[i]);
		if (ret) {
			if (fd >= 0)
				close(fd);
			return virt_err(err, errlen, ret, "virtio-mmio %u: %s", i, strerror(-ret));
		}
	}

	ret = vmm_add_mmio(vm->vmm, VIRT_TEST_BASE, VIRT_TEST_SIZE, test_mmio, vm);
	if (!ret)
		ret = vmm_add_mmio(vm->vmm, VIRT_CLINT_BASE, VIRT_CLINT_SIZE, clint_mmio,
				   &vm->clint);
	if (!ret)
		ret = vmm_add_mmio(vm->vmm, VIRT_PLIC_BASE, VIRT_PLIC_SIZE, plic_mmio, vm->plic);
	if (!ret)
		ret = vmm_add_mmio(vm->vmm, VIRT_UART_BASE, VIRT_UART_SIZE, uart_mmio, vm->uart);
	if (!ret)
		ret = vmm_add_mmio(vm->vmm, VIRT_FLASH_BASE, VIRT_FLASH_BANKS * VIRT_FLASH_BANK_SIZE,
				   pflash_mmio, vm->pflash);
	for (unsigned int i = 0; i < VIRT_VIRTIO_COUNT && !ret; i++)
		ret = vmm_add_mmio(vm->vmm, VIRT_VIRTIO_BASE + i * VIRT_VIRTIO_SIZE,
				   VIRT_VIRTIO_SIZE, virtio_mmio, vm->virtio[i]);
	if (ret)
		return virt_err(err, errlen, ret, "MMIO map: %s", strerror(-ret));
	return 0;
}

/* The device tree near the top of RAM (below 3 GiB), 2 MiB aligned, as
 * QEMU places it; the rest of RAM after it is OpenSBI's to grow it into. */
static int virt_add_fdt(struct virt *vm, char *err, size_t errlen)
{
	struct virt_fdt_config fc = {
		.nr_harts = vm->nr_harts,
		.ram_base = VIRT_RAM_BASE,
		.ram_size = vm->cfg.ram_size,
		.bootargs = vm->cfg.bootargs,
		.bootdelay = vm->cfg.bootdelay,
		.nr_virtio = VIRT_VIRTIO_COUNT,
	};
	uint64_t top = MIN(VIRT_RAM_BASE + vm->cfg.ram_size, 3ULL << 30);
	void *buf = malloc(VIRT_FDT_MAX);
	int size, ret;

	if (!buf)
		return virt_err(err, errlen, -ENOMEM, "device tree: out of memory");
	size = virt_fdt_build(&fc, buf, VIRT_FDT_MAX);
	if (size < 0) {
		free(buf);
		return virt_err(err, errlen, size, "device tree: %s", strerror(-size));
	}
	vm->dtb_addr = (top - (uint64_t)size) & ~(VIRT_FDT_ALIGN - 1);
	ret = vmm_write_guest(vm->vmm, vm->dtb_addr, buf, (uint64_t)size);
	free(buf);
	if (ret)
		return virt_err(err, errlen, ret, "device tree: writing guest RAM: %s",
				strerror(-ret));
	return 0;
}

/* Load the bios and the kernel of the configuration into guest RAM,
 * describing them in *bios and *kernel. */
static int virt_load_images(struct virt *vm, struct virt_image *bios, struct virt_image *kernel,
			    char *err, size_t errlen)
{
	struct virt_region taken[3];
	unsigned int nr = 0;
	uint64_t ram_end = VIRT_RAM_BASE + vm->cfg.ram_size;
	int ret;

	taken[nr++] = (struct virt_region){ vm->dtb_addr, ram_end, "the device tree" };
	if (vm->cfg.bios) {
		ret = virt_load_image(vm->vmm, vm->cfg.bios, VIRT_RAM_BASE, VIRT_RAM_BASE,
				      vm->cfg.ram_size, taken, nr, bios, err, errlen);
		if (ret)
			return ret;
		taken[nr++] = (struct virt_region){ bios->lo, bios->hi, vm->cfg.bios };
	}
	if (vm->cfg.kernel) {
		uint64_t raw = VIRT_RAM_BASE + (vm->cfg.bios ? VIRT_KERNEL_OFFSET : 0);

		ret = virt_load_image(vm->vmm, vm->cfg.kernel, raw, VIRT_RAM_BASE,
				      vm->cfg.ram_size, taken, nr, kernel, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

static int virt_load(struct virt *vm, char *err, size_t errlen)
{
	int ret = virt_load_images(vm, &vm->bios, &vm->kernel, err, errlen);

	if (ret)
		return ret;
	vm->has_bios = vm->cfg.bios != NULL;
	vm->has_kernel = vm->cfg.kernel != NULL;
	if (vm->has_kernel && vm->kernel.has_htif) {
		vm->htif = true;
		vm->tohost = vm->kernel.tohost;
		vm->fromhost = vm->kernel.fromhost;
	} else if (vm->has_bios && vm->bios.has_htif) {
		vm->htif = true;
		vm->tohost = vm->bios.tohost;
		vm->fromhost = vm->bios.fromhost;
	}
	return 0;
}

/* OpenSBI's struct fw_dynamic_info (include/sbi/fw_dynamic.h), in ROM
 * (the VMM writes through the read-only slot). */
static int virt_write_dyninfo(struct virt *vm)
{
	uint64_t next = vm->has_kernel ? vm->kernel.entry : VIRT_RAM_BASE + VIRT_KERNEL_OFFSET;
	uint64_t info[6] = { FW_DYNAMIC_MAGIC, FW_DYNAMIC_VERSION, next, FW_DYNAMIC_NEXT_S,
			     0, 0 };

	return vmm_write_guest(vm->vmm, VIRT_DYNINFO_ADDR, info, sizeof(info));
}

static int virt_add_rom(struct virt *vm, char *err, size_t errlen)
{
	int ret;

	ret = vmm_add_ram(vm->vmm, VIRT_ROM_SLOT, VIRT_ROM_BASE, VIRT_ROM_SIZE,
			  KVM_MEM_READONLY);
	if (!ret)
		ret = virt_write_dyninfo(vm);
	if (ret)
		return virt_err(err, errlen, ret, "ROM: %s", strerror(-ret));
	return 0;
}

/* Hart i's boot registers, as QEMU's reset vector sets them. */
static void virt_hart_config(struct virt *vm, unsigned int i, struct rv_hart_config *hc)
{
	*hc = (struct rv_hart_config){
		.hartid = i,
		.reset_pc = vm->has_bios ? vm->bios.entry : vm->kernel.entry,
		.a0 = i,
		.a1 = vm->dtb_addr,
		.a2 = VIRT_DYNINFO_ADDR,
		.priv = RV_PRV_M,
		.clock = &vm->clock,
	};
	if (!vm->cfg.sbi_sta_off) {
		hc->ecall = virt_sbi_ecall;
		hc->ecall_arg = &vm->harts[i].sbi;
	}
}

static int virt_add_harts(struct virt *vm, char *err, size_t errlen)
{
	for (unsigned int i = 0; i < vm->nr_harts; i++) {
		struct virt_hart *h = &vm->harts[i];
		struct rv_hart_config hc;
		int ret;

		virt_hart_config(vm, i, &hc);
		h->vm = vm;
		ret = vmm_create_vcpu(vm->vmm, (int)i, &h->vcpu);
		if (ret)
			return virt_err(err, errlen, ret, "vCPU %u: %s", i, strerror(-ret));
		virt_sbi_init(&h->sbi, &h->vcpu->kvm_vcpu);
		ret = rv_hart_create(h->vcpu, &hc, &h->hart);
		if (ret)
			return virt_err(err, errlen, ret, "hart %u: %s", i, strerror(-ret));
	}
	return 0;
}

int virt_create(struct host *host, const struct virt_config *cfg, struct virt **out,
		char *err, size_t errlen)
{
	struct kvm_config kc;
	pthread_condattr_t ca;
	struct virt *vm;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!host || !cfg || !out)
		return virt_err(err, errlen, -EINVAL, "bad arguments");
	if (cfg->ram_size < VIRT_RAM_MIN || cfg->ram_size > VIRT_RAM_MAX ||
	    cfg->ram_size % VIRT_FDT_ALIGN)
		return virt_err(err, errlen, -EINVAL,
				"guest RAM of %llu bytes: must be a multiple of 2 MiB from "
				"%llu MiB to %llu MiB",
				(unsigned long long)cfg->ram_size,
				(unsigned long long)(VIRT_RAM_MIN >> 20),
				(unsigned long long)(VIRT_RAM_MAX >> 20));
	if (!cfg->smp || cfg->smp > KVM_MAX_VCPUS)
		return virt_err(err, errlen, -EINVAL, "%u harts: must be 1 to %u", cfg->smp,
				KVM_MAX_VCPUS);
	if (!cfg->bios && !cfg->kernel)
		return virt_err(err, errlen, -EINVAL,
				"nothing to run: without a bios (--bios none) a kernel is needed");

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return virt_err(err, errlen, -ENOMEM, "out of memory");
	vm->host = host;
	vm->cfg = *cfg;
	vm->nr_harts = cfg->smp;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->exit_cond, &ca);
	pthread_condattr_destroy(&ca);
	rv_clock_init(&vm->clock, VIRT_TIMEBASE_HZ);
	vm->sink = (struct virt_irq_sink){
		.set_irq = sink_set_irq,
		.set_mtimecmp = sink_set_mtimecmp,
		.get_mtimecmp = sink_get_mtimecmp,
		.read_time = sink_read_time,
		.opaque = vm,
	};

	kc = cfg->kvm;
	kc.kick = KVM_KICK_WAIT;        /* harts refuse RSEQ (riscv.h) */
	ret = vmm_create(host, &kc, &vm->vmm);
	if (ret) {
		virt_err(err, errlen, ret, "VM: %s", strerror(-ret));
		goto fail;
	}
	ret = vmm_add_ram(vm->vmm, VIRT_RAM_SLOT, VIRT_RAM_BASE, cfg->ram_size, 0);
	if (ret) {
		virt_err(err, errlen, ret, "guest RAM: %s", strerror(-ret));
		goto fail;
	}
	ret = virt_add_devices(vm, err, errlen);
	if (!ret)
		ret = virt_add_fdt(vm, err, errlen);
	if (!ret)
		ret = virt_load(vm, err, errlen);
	if (!ret)
		ret = virt_add_rom(vm, err, errlen);
	if (!ret)
		ret = virt_add_harts(vm, err, errlen);
	if (ret)
		goto fail;
	*out = vm;
	return 0;
fail:
	virt_destroy(vm);
	return ret;
}

int virt_start(struct virt *vm)
{
	int ret;

	if (vm->started)
		return -EINVAL;
	vm->started = true;
	vm->start_ns = clock_now_ns();
	ret = uart_start(vm->uart);
	if (ret)
		return ret;
	if (vm->htif) {
		ret = -pthread_create(&vm->htif_thread, NULL, htif_poller, vm);
		if (ret)
			return ret;
		vm->htif_started = true;
	}
	if (vm->cfg.churn_interval_ms) {
		ret = -pthread_create(&vm->churn_thread, NULL, churn_thread, vm);
		if (ret)
			return ret;
		vm->churn_started = true;
	}
	for (unsigned int i = 0; i < vm->nr_harts; i++) {
		ret = vcpu_run(vm->harts[i].vcpu, virt_hart_fn, &vm->harts[i]);
		if (ret) {
			virt_request_exit(vm, VIRT_EXIT_HART_ERROR, 1);
			return ret;
		}
	}
	return 0;
}

/* The images were loaded again: they must be where they were (the file
 * changed on disk otherwise; the harts' entry and HTIF would not match). */
static bool virt_image_same(const struct virt_image *a, const struct virt_image *b)
{
	return a->entry == b->entry && a->lo == b->lo && a->hi == b->hi &&
	       a->has_htif == b->has_htif && a->tohost == b->tohost &&
	       a->fromhost == b->fromhost;
}

/*
 * Reset the machine (the state machine at the top). On virt_wait's
 * thread, called and returning with exit_lock held, which it drops while
 * it works. It ends the pending reset under exit_lock in the same section
 * that restarts the harts: a reset the restarted harts ask for at once
 * finds reset_pending clear and is recorded, not lost (invariant 4). If
 * the images or the device tree cannot be loaded again, the run ends with
 * VIRT_EXIT_RESET_ERROR, the harts stopped.
 */
static void virt_reset_locked(struct virt *vm)
{
	struct virt_image bios = { 0 }, kernel = { 0 };
	int ret = 0;

	pthread_mutex_unlock(&vm->exit_lock);
	for (unsigned int i = 0; i < vm->nr_harts; i++)
		if (vm->harts[i].vcpu->running)
			vcpu_stop(vm->harts[i].vcpu);

	/* The devices lower their lines; the sources first, then the
	 * controllers. */
	uart_reset(vm->uart);
	pflash_reset(vm->pflash);
	for (unsigned int i = 0; i < VIRT_VIRTIO_COUNT; i++)
		virtio_mmio_reset(vm->virtio[i]);
	plic_reset(vm->plic);
	clint_reset(&vm->clint);

	ret = virt_add_fdt(vm, NULL, 0);
	if (!ret)
		ret = virt_load_images(vm, &bios, &kernel, NULL, 0);
	if (!ret && ((vm->has_bios && !virt_image_same(&bios, &vm->bios)) ||
		     (vm->has_kernel && !virt_image_same(&kernel, &vm->kernel))))
		ret = -ESTALE;
	if (!ret)
		ret = virt_write_dyninfo(vm);
	for (unsigned int i = 0; i < vm->nr_harts && !ret; i++) {
		struct rv_hart_config hc;

		virt_hart_config(vm, i, &hc);
		virt_sbi_reset(&vm->harts[i].sbi);
		ret = rv_hart_reset(vm->harts[i].hart, &hc);
	}

	pthread_mutex_lock(&vm->exit_lock);
	vm->reset_pending = false;
	if (ret) {
		virt_request_exit_locked(vm, VIRT_EXIT_RESET_ERROR, 1);
		return;
	}
	if (vm->exit_reason != VIRT_RUNNING)
		return;         /* an exit came meanwhile: it wins (invariant 2) */
	vm->resets++;
	for (unsigned int i = 0; i < vm->nr_harts; i++) {
		if (vcpu_run(vm->harts[i].vcpu, virt_hart_fn, &vm->harts[i])) {
			virt_request_exit_locked(vm, VIRT_EXIT_HART_ERROR, 1);
			break;
		}
	}
}

int virt_wait(struct virt *vm, uint64_t timeout_ns)
{
	uint64_t deadline_ns = clock_now_ns() + timeout_ns;
	struct timespec ts;
	int ret = 0;

	if (timeout_ns)
		clock_deadline(CLOCK_MONOTONIC, &ts, timeout_ns);
	pthread_mutex_lock(&vm->exit_lock);
	for (;;) {
		while (vm->exit_reason == VIRT_RUNNING && !vm->reset_pending && ret != ETIMEDOUT)
			ret = timeout_ns ? pthread_cond_timedwait(&vm->exit_cond, &vm->exit_lock,
								  &ts)
					 : pthread_cond_wait(&vm->exit_cond, &vm->exit_lock);
		if (vm->exit_reason != VIRT_RUNNING || !vm->reset_pending)
			break;
		/* A reset that arrives with the timeout is still done. */
		virt_reset_locked(vm);
		ret = 0;
		/* A guest that resets at once, for ever, would keep the wait
		 * from ever sleeping: look at the clock here too. */
		if (timeout_ns && clock_now_ns() >= deadline_ns)
			break;
	}
	ret = vm->exit_reason == VIRT_RUNNING ? -ETIMEDOUT : vm->exit_status;
	pthread_mutex_unlock(&vm->exit_lock);
	return ret;
}

void virt_stop(struct virt *vm)
{
	if (!vm || vm->stopped)
		return;
	vm->stopped = true;
	if (vm->started)
		virt_request_exit(vm, VIRT_EXIT_USER, 0);       /* no-op if it ended */
	pthread_mutex_lock(&vm->exit_lock);
	vm->reset_pending = false;      /* nobody will do it (invariant 3) */
	pthread_mutex_unlock(&vm->exit_lock);
	for (unsigned int i = 0; i < vm->nr_harts; i++)
		if (vm->harts[i].vcpu && vm->harts[i].vcpu->running)
			vcpu_stop(vm->harts[i].vcpu);
	if (vm->htif_started) {
		pthread_join(vm->htif_thread, NULL);
		vm->htif_started = false;
	}
	if (vm->churn_started) {
		pthread_join(vm->churn_thread, NULL);
		vm->churn_started = false;
	}
}

void virt_destroy(struct virt *vm)
{
	if (!vm)
		return;
	virt_stop(vm);
	/* The UART's reader drives the PLIC, which reaches the harts: stop it
	 * before the harts go. */
	if (vm->uart)
		uart_destroy(vm->uart);
	vm->uart = NULL;
	for (unsigned int i = 0; i < vm->nr_harts; i++) {
		if (vm->harts[i].hart)
			rv_hart_destroy(vm->harts[i].hart);
		vm->harts[i].hart = NULL;
	}
	for (unsigned int i = 0; i < VIRT_VIRTIO_COUNT; i++)
		virtio_mmio_destroy(vm->virtio[i]);
	plic_destroy(vm->plic);
	pflash_destroy(vm->pflash);
	if (vm->vmm)
		vmm_destroy(vm->vmm);
	pthread_cond_destroy(&vm->exit_cond);
	pthread_mutex_destroy(&vm->exit_lock);
	free(vm);
}

struct vmm *virt_vmm(struct virt *vm)
{
	return vm->vmm;
}

uint64_t virt_dtb_addr(struct virt *vm)
{
	return vm->dtb_addr;
}

void virt_get_live(struct virt *vm, struct virt_live *live)
{
	memset(live, 0, sizeof(*live));
	for (unsigned int i = 0; i < vm->nr_harts; i++) {
		struct rv_hart_live hl;

		if (!vm->harts[i].hart)
			continue;
		rv_hart_get_live(vm->harts[i].hart, &hl);
		live->instret += hl.instret;
		live->ptw_walks += hl.ptw_walks;
		live->gva_refills += hl.gva_refills;
		live->sfence_vma += hl.sfence_vma;
	}
}

void virt_get_stats(struct virt *vm, struct virt_stats *st)
{
	struct vmm_stats vs;
	struct virtio_blk_stats bs;
	uint64_t end;

	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < vm->nr_harts; i++) {
		struct rv_hart_stats hs;
		struct virt_sbi_stats ss;

		if (!vm->harts[i].hart)
			continue;
		virt_sbi_get_stats(&vm->harts[i].sbi, &ss);
		st->sta_probes += ss.sta_probes;
		st->sta_calls += ss.sta_calls;
		st->sta_errors += ss.sta_errors;
		st->sta_enables += ss.sta_enables;
		st->sta_active += ss.sta_active;
		rv_hart_get_stats(vm->harts[i].hart, &hs);
		st->instret += hs.instret;
		st->exceptions += hs.exceptions;
		st->interrupts += hs.interrupts;
		st->wfi_sleeps += hs.wfi_sleeps;
		st->ptw_walks += hs.ptw_walks;
		st->gva_refills += hs.gva_refills;
		st->gva_cold_skips += hs.gva_cold_skips;
		st->sfence_vma += hs.sfence_vma;
		st->code_pages_decoded += hs.code_pages_decoded;
	}
	vmm_get_stats(vm->vmm, &vs);
	st->mmio_exits = vs.mmio_exits;
	st->uart_tx = uart_tx_bytes(vm->uart);
	st->uart_rx = uart_rx_bytes(vm->uart);
	virtio_blk_get_stats(vm->virtio[0], &bs);
	st->blk_reads = bs.reads;
	st->blk_writes = bs.writes;
	st->blk_flushes = bs.flushes;
	st->churn_ops = atomic_load(&vm->churn_ops);
	st->sta_fork_child_writes = atomic_load(&vm->sta_fork_child_writes);
	pthread_mutex_lock(&vm->exit_lock);
	end = vm->exit_reason == VIRT_RUNNING ? clock_now_ns() : vm->end_ns;
	st->resets = vm->resets;
	pthread_mutex_unlock(&vm->exit_lock);
	st->run_ns = vm->started ? end - vm->start_ns : 0;
}
