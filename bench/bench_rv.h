/* SPDX-License-Identifier: MIT */
/*
 * bench_rv.h - what the RISC-V benchmarks (bench_riscv.c, bench_gva.c)
 * share: finding the guest programs and QEMU, running an image on tandem
 * in this process (virt API) or on QEMU TCG as a child, with the same
 * machine on both (RAM, one hart, the ISA cut to tandem's), capturing the
 * console, and reading back the ticks the guests print for their timed
 * sections (guests/bench/rv_guest.h).
 */
#ifndef TANDEM_BENCH_RV_H
#define TANDEM_BENCH_RV_H

#include <limits.h>
#include <sys/types.h>
#include "cli/cli.h"
#include "tandem/kvm.h"
#include "tandem/virt.h"

#define RVB_OPENSBI_FW_JUMP "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"
#define RVB_QEMU_NAME       "qemu-system-riscv64"
#define RVB_QEMU_CPU        "rv64,f=false,d=false,h=false,zba=false,zbb=false,zbc=false,zbs=false"
#define RVB_RUN_TIMEOUT_NS  (120 * NSEC_PER_SEC)

struct rvb_env {
	const struct bench_opts *o;
	const char *bench;              /* "riscv": messages say "tandem bench riscv: " */
	char guests[PATH_MAX];          /* directory of the guest programs */
	char qemu[PATH_MAX];            /* "" when not installed (or TANDEM_QEMU=none) */
};

/* Find the guests (names[0..n)) and QEMU; -1 after saying what is missing. */
int rvb_env_init(struct rvb_env *env, const struct bench_opts *o, const char *bench,
		 const char *const *guests, size_t n);
/* The "# qemu: ..." line (and in JSON a "qemu" object when it is missing). */
void rvb_note_qemu(const struct rvb_env *env);

/* "tandem bench <bench>: <message>" on stderr; returns -1. */
int rvb_fail(const struct rvb_env *env, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void rvb_guest_path(const struct rvb_env *env, const char *name, char *buf, size_t len);
/* Set env->guests to the build's bench-guests directory and check that
 * every names[i].elf is there; -1 after saying how to build them. */
int rvb_find_guests(struct rvb_env *env, const char *const *names, size_t n);
/* $TANDEM_QEMU (a path, or "none" to leave QEMU out), else PATH. */
void rvb_find_qemu(struct rvb_env *env);

/* One machine of BG_RAM_MB, one hart, either kind. */
struct rvb_config {
	const char *bios;               /* NULL: none (the kernel starts in M mode) */
	const char *kernel;
	const char *bootargs;           /* NULL: none */
	int bootdelay;
	int in_fd, out_fd;              /* console; -1: none / discard */
	/* tandem only */
	enum kvm_gva_mode gva;
	uint64_t swap_bytes;            /* host swap (0: none) */
};
void rvb_config_init(struct rvb_config *c, const char *bios, const char *kernel);

struct rvb_machine {
	struct host *host;
	struct virt *vm;
};

/* tandem: build and start the machine; -1 after saying why. */
int rvb_tandem_create(const struct rvb_env *env, const struct rvb_config *c,
		      struct rvb_machine *tm);
void rvb_tandem_destroy(struct rvb_machine *tm);

/*
 * One tandem run, start to the guest's exit (host_create .. host_destroy
 * timed, as a process start is for QEMU): seconds in *sec, the harts' and
 * the VM's counters. during (if not NULL) is called once the harts run,
 * and done (if not NULL) once the guest has ended, before the machine
 * goes: a measure's own thread beside the guest. A guest that fails, or
 * a during that returns non-zero, fails the run (-1, said).
 */
struct rvb_hooks {
	int (*during)(struct rvb_machine *tm, void *arg);
	void (*done)(struct rvb_machine *tm, void *arg);
	void *arg;
};
int rvb_tandem_run(const struct rvb_env *env, const struct rvb_config *c,
		   const struct rvb_hooks *hooks, double *sec, struct virt_stats *vs,
		   struct kvm_stats *ks);

/* QEMU: the child with c's images and console; -1 after saying why. */
int rvb_qemu_spawn(const struct rvb_env *env, const struct rvb_config *c, pid_t *pid);
/* Wait for the child, killing it after timeout_ns: its exit status, or -1. */
int rvb_qemu_reap(pid_t pid, uint64_t timeout_ns);
/* One QEMU run, start to exit: seconds in *sec; a non-zero exit fails it. */
int rvb_qemu_run(const struct rvb_env *env, const struct rvb_config *c, double *sec);

/* The console as a file (memfd): give it as out_fd, read it after the run. */
int rvb_console_open(const struct rvb_env *env);
/* Its contents, NUL-terminated, from the start (truncated to len - 1). */
void rvb_console_read(int fd, char *buf, size_t len);
/*
 * The ticks (10 MHz) of the timed sections a guest printed, in order: the
 * lines of exactly 16 hex digits. Returns how many were found (at most n).
 */
unsigned int rvb_parse_ticks(const char *console, uint64_t *ticks, unsigned int n);
#define RVB_TICK_NS (1e9 / (double)VIRT_TIMEBASE_HZ)

#endif
