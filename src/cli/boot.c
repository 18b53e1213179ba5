/* SPDX-License-Identifier: MIT */
/*
 * boot.c - `tandem boot`: one RISC-V VM on the virt machine (virt.h), in
 * QEMU's vocabulary (--bios, --kernel, --drive, --smp, --mem, --append),
 * over a host sized by --host-mem and --swap as `tandem run`'s. The
 * console is the terminal: stdin in raw mode while the guest runs (Ctrl-A
 * x quits, as qemu -nographic), restored at exit.
 *
 * Exit status: the guest's (test device, HTIF); 1 when the run failed
 * (a hart, an unsupported HTIF call, --timeout); 2 for bad options or
 * files; 3 when the host, checked after the machine is gone, is damaged
 * (host_check_invariants) or did not get every frame and swap slot back.
 * Last on stderr: one line with the run's figures, then the verdicts
 * "integrity: OK" and "frames: all returned" (or what failed).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/opt.h"
#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/virt.h"
#include "base/clock.h"
#include "base/compiler.h"

#define CMD "boot"
#define DEFAULT_BIOS "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"
#define HOST_SLACK (64ULL << 20)
/* Exit status when the host is found damaged or leaking after the run. */
#define EXIT_HOST_CHECK 3

struct boot_opts {
	const char *bios, *kernel, *drive, *append, *bootdelay;
	unsigned int smp;
	uint64_t mem, host_mem, swap;
	uint64_t timeout_ns;
	unsigned int churn_ms;
	unsigned int gva, breaks;
	bool no_sta;
};

static const struct opt_choice gva_choices[] = {
	{ "targeted", KVM_GVA_TARGETED,
	  "host zaps clear the GVA entries built on the zapped gfns" },
	{ "flush-all", KVM_GVA_FLUSH_ALL, "any host zap empties every GVA table (the seed's)" },
	{ "off", KVM_GVA_OFF, "no GVA tables: every soft-TLB miss walks" },
};

static bool gva_choice(unsigned int i, struct opt_choice *c)
{
	return opt_choice_at(gva_choices, ARRAY_SIZE(gva_choices), i, c);
}

static const struct opt_choice boot_break_choices[] = {
	{ "gva-sfence", KVM_BREAK_GVA_SFENCE,
	  "sfence.vma with an address leaves GVA entries in place" },
	{ "gva-zap", KVM_BREAK_GVA_ZAP, "host invalidations do not reach the GVA tables" },
	{ "gpc-request", KVM_BREAK_GPC_REQUEST,
	  "an invalidated run-state (SBI STA) cache sends its hart\n"
	  "no request: it goes on writing the old frame" },
};

static bool boot_break_choice(unsigned int i, struct opt_choice *c)
{
	return opt_choice_at(boot_break_choices, ARRAY_SIZE(boot_break_choices), i, c);
}

static const struct opt boot_options[] = {
	{ "bios", 0, OPT_PATH, OPT_FIELD(struct boot_opts, bios), .arg = "FILE|none",
	  .help = "firmware, ELF or raw at 0x80000000; none: the kernel\n"
		  "starts in M mode (default: Debian's OpenSBI fw_jump.elf)" },
	{ "kernel", 0, OPT_PATH, OPT_FIELD(struct boot_opts, kernel), .arg = "FILE",
	  .help = "next stage, ELF or raw (raw: at 0x80200000 after a bios,\n"
		  "else at 0x80000000)" },
	{ "drive", 0, OPT_PATH, OPT_FIELD(struct boot_opts, drive), .arg = "FILE",
	  .help = "virtio-blk disk image (read-write) at 0x10001000" },
	{ "smp", 0, OPT_NUM, OPT_FIELD(struct boot_opts, smp), .min = 1, .max = KVM_MAX_VCPUS,
	  .arg = "N", .help = "harts, one vCPU thread each (default {default}; {range})" },
	{ "mem", 'm', OPT_SIZE, OPT_FIELD(struct boot_opts, mem), .min = VIRT_RAM_MIN,
	  .max = VIRT_RAM_MAX, .align = 2ULL << 20, .align_why = "not a multiple of 2M",
	  .arg = "SIZE", .help = "guest RAM (default {default}; {range})" },
	{ "append", 0, OPT_PATH, OPT_FIELD(struct boot_opts, append), .arg = "STR",
	  .help = "kernel command line (/chosen/bootargs)" },
	{ "bootdelay", 0, OPT_PATH, OPT_FIELD(struct boot_opts, bootdelay), .arg = "N",
	  .help = "/config/bootdelay for U-Boot: seconds of countdown;\n"
		  "-1: no autoboot, straight to the prompt (default 0)" },
	{ "host-mem", 0, OPT_SIZE, OPT_FIELD(struct boot_opts, host_mem), .min = HOST_RAM_MIN,
	  .max = HOST_RAM_MAX, .align = PAGE_SIZE, .align_why = "not a multiple of 4K",
	  .arg = "SIZE",
	  .help = "host RAM (default: guest RAM + 64M); less than the\n"
		  "guest needs swaps (see --swap)" },
	{ "swap", 0, OPT_SIZE, OPT_FIELD(struct boot_opts, swap), .min = PAGE_SIZE,
	  .max = HOST_SWAP_MAX, .align = PAGE_SIZE, .align_why = "not a multiple of 4K",
	  .flags = OPT_ZERO_OK, .arg = "SIZE",
	  .help = "swap file size (default: none when --host-mem holds\n"
		  "the guest, else guest RAM + 64M)" },
	{ "churn", 0, OPT_NUM, OPT_FIELD(struct boot_opts, churn_ms), .max = 60000, .arg = "MS",
	  .help = "every MS milliseconds the host either forks the VMM's\n"
		  "mm (guest writes break COW) or reclaims a batch of\n"
		  "pages (swap-out with --swap) (default 0: off)" },
	{ "gva", 0, OPT_CHOICE, OPT_FIELD(struct boot_opts, gva), .choices = gva_choice,
	  .arg = "MODE",
	  .help = "GVA page tables (soft-TLB refill without a walk):\n"
		  "targeted (the default), flush-all, off" },
	{ "break", 0, OPT_SET, OPT_FIELD(struct boot_opts, breaks), .choices = boot_break_choice,
	  .arg = "LIST", .help = "disable a coherence step, to watch it fail:\n"
		  "gva-sfence, gva-zap, gpc-request" },
	{ "no-sta", 0, OPT_FLAG, OPT_FIELD(struct boot_opts, no_sta),
	  .help = "no SBI steal-time accounting (STA) from tandem beside\n"
		  "the firmware: a kernel's probe finds none" },
	{ "timeout", 't', OPT_DURATION, OPT_FIELD(struct boot_opts, timeout_ns),
	  .max = 86400 * NSEC_PER_SEC, .range_why = "more than 24 hours", .arg = "SECS",
	  .help = "stop the guest after SECS and fail (default: none)" },
	{ "help", 'h', OPT_HELP, .help = "this text" },
};

static const struct opt_table boot_table = {
	.cmd = CMD,
	.opts = boot_options,
	.nr = ARRAY_SIZE(boot_options),
	.help_column = 26,
	.usage = boot_usage,
};

static void boot_defaults(struct boot_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->smp = 1;
	o->mem = VIRT_RAM_DEFAULT;
}

void boot_usage(FILE *f)
{
	struct boot_opts d;

	boot_defaults(&d);
	fprintf(f,
		"usage: tandem boot [options]\n"
		"\nRun one RISC-V RV64IMAC VM on a machine with QEMU's virt memory map\n"
		"(ns16550a UART, CLINT, PLIC, SiFive test device, virtio-mmio block device),\n"
		"its RAM in a tandem host mm reached through the secondary MMU. The console\n"
		"is this terminal; Ctrl-A x quits. E.g. OpenSBI + U-Boot:\n"
		"  tandem boot --kernel /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin\n"
		"\noptions:\n");
	opt_usage(f, &boot_table, &d);
	fprintf(f, "\nExit status: the guest's (test device, HTIF); 1 if the run failed;\n"
		   "2 for a usage error or an image that cannot be loaded; 3 if the host,\n"
		   "checked after the run, is damaged or did not get every frame back.\n");
}

/* ---- the terminal ---------------------------------------------------------- */

static struct termios saved_tio;
static bool tio_saved;

static void term_restore(void)
{
	if (tio_saved) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		tio_saved = false;
	}
}

/* Raw input (no echo, no line editing, no signals from keys: Ctrl-C goes to
 * the guest); output processing kept. */
static void term_raw(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio))
		return;
	tio_saved = true;
	atexit(term_restore);
	t = saved_tio;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
	t.c_iflag &= ~(tcflag_t)(ICRNL | INLCR | IGNCR | IXON);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

/* ---- the run --------------------------------------------------------------- */

static int parse_bootdelay(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < -2 || v > 3600)
		return cli_bad_value(CMD, "bootdelay", s, "not a number from -2 to 3600");
	*out = (int)v;
	return 0;
}

/*
 * After the machine is gone: the host must be whole and hold nothing. The
 * VM's mm may still be on its way out (kswapd hands a last mmput it made to
 * the async worker, and may hold a page it isolated), so wait briefly for the
 * frames to come back before judging. Then the checker, the count of frames
 * and swap slots still in use, and host_destroy, which refuses while an mm
 * lives. Prints the verdicts; returns 0 or -EUCLEAN. Frees the host either
 * way when it can.
 */
static int boot_check_host(struct host *host)
{
	struct host_stats hs;
	uint64_t frames, slots;
	bool bad = false;
	int ret;

	frames = host_frames_in_use(host);
	for (int i = 0; i < 200 && frames; i++) {
		clock_sleep_ns(10 * NSEC_PER_MSEC);
		frames = host_frames_in_use(host);
	}
	ret = host_check_invariants(host);
	if (ret) {
		fprintf(stderr, "integrity: FAILED (host_check_invariants: %s)\n", strerror(-ret));
		bad = true;
	} else {
		fprintf(stderr, "integrity: OK\n");
	}
	host_get_stats(host, &hs);
	slots = hs.swap_slots - hs.swap_free_slots;
	if (frames || slots) {
		fprintf(stderr, "frames: %llu leaked, swap slots: %llu leaked\n",
			(unsigned long long)frames, (unsigned long long)slots);
		bad = true;
	} else {
		fprintf(stderr, "frames: all returned\n");
	}
	ret = host_destroy(host);
	if (ret) {
		fprintf(stderr, "tandem " CMD ": host_destroy: %s (an mm outlived the machine)\n",
			strerror(-ret));
		bad = true;
	}
	return bad ? -EUCLEAN : 0;
}

int cmd_boot(int argc, char **argv)
{
	struct host_config hc = { 0 };
	struct virt_config vc;
	struct boot_opts o;
	struct virt_stats vs;
	struct kvm_stats ks;
	struct host_stats hs;
	struct host *host;
	struct virt *vm;
	char err[512];
	uint64_t given;
	int status, ret;

	boot_defaults(&o);
	status = opt_parse(&boot_table, argc, argv, &o, &given, NULL);
	if (status)
		return status < 0 ? 0 : status;

	virt_config_default(&vc);
	vc.ram_size = o.mem;
	vc.smp = o.smp;
	vc.kernel = o.kernel;
	vc.drive = o.drive;
	vc.bootargs = o.append;
	vc.churn_interval_ms = o.churn_ms;
	vc.kvm.gva = (enum kvm_gva_mode)o.gva;
	vc.kvm.breaks = o.breaks;
	vc.sbi_sta_off = o.no_sta;
	if (o.bootdelay && parse_bootdelay(o.bootdelay, &vc.bootdelay))
		return EXIT_USAGE;
	if (!o.bios) {
		if (access(DEFAULT_BIOS, R_OK) == 0) {
			vc.bios = DEFAULT_BIOS;
		} else if (!o.kernel) {
			fprintf(stderr, "tandem " CMD ": no --bios given and %s is not there "
					"(Debian package opensbi); give --bios FILE or --bios none "
					"--kernel FILE\n", DEFAULT_BIOS);
			return EXIT_USAGE;
		}
	} else if (strcmp(o.bios, "none") != 0) {
		vc.bios = o.bios;
	}
	if (!vc.bios && !vc.kernel) {
		fprintf(stderr, "tandem " CMD ": --bios none needs --kernel FILE\n");
		return EXIT_USAGE;
	}

	hc.ram_bytes = o.host_mem ? o.host_mem : o.mem + HOST_SLACK;
	if (hc.ram_bytes > HOST_RAM_MAX)
		hc.ram_bytes = HOST_RAM_MAX;
	if (opt_given(&boot_table, given, "swap"))
		hc.swap_bytes = o.swap;
	else if (hc.ram_bytes < o.mem + HOST_SLACK)
		hc.swap_bytes = o.mem + HOST_SLACK;
	ret = host_create(&hc, &host);
	if (ret) {
		fprintf(stderr, "tandem " CMD ": cannot create the host (%llu MiB, swap %llu MiB): "
				"%s\n", (unsigned long long)(hc.ram_bytes >> 20),
			(unsigned long long)(hc.swap_bytes >> 20), strerror(-ret));
		return 1;
	}

	vc.console_in = STDIN_FILENO;
	vc.console_out = STDOUT_FILENO;
	vc.console_escape = isatty(STDIN_FILENO);
	ret = virt_create(host, &vc, &vm, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "tandem " CMD ": %s\n", err);
		host_destroy(host);
		return ret == -ENOMEM || ret == -ENOSYS || ret == -EOPNOTSUPP ? 1 : EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	term_raw();
	ret = virt_start(vm);
	if (ret) {
		term_restore();
		fprintf(stderr, "tandem " CMD ": cannot start the harts: %s\n", strerror(-ret));
		virt_destroy(vm);
		host_destroy(host);
		return 1;
	}
	status = virt_wait(vm, o.timeout_ns);
	virt_stop(vm);
	term_restore();

	if (status == -ETIMEDOUT) {
		fprintf(stderr, "\ntandem " CMD ": timed out after %.1f s\n",
			(double)o.timeout_ns / NSEC_PER_SEC);
		status = 1;
	} else {
		enum virt_exit why = virt_exit_reason(vm);

		if (why == VIRT_EXIT_HART_ERROR || why == VIRT_EXIT_HTIF_ERROR ||
		    why == VIRT_EXIT_RESET_ERROR) {
			fprintf(stderr, "\ntandem " CMD ": %s\n", virt_exit_name(why));
			status = 1;
		}
	}
	virt_get_stats(vm, &vs);
	kvm_get_stats(vmm_kvm(virt_vmm(vm)), &ks);
	host_get_stats(host, &hs);
	fprintf(stderr,
		"tandem boot: %llu instructions in %.2f s (%.1f MIPS), faults %llu, "
		"invalidations %llu, swap in %llu out %llu, mmio %llu, resets %llu, "
		"walks %llu, gva refills %llu installs %llu cold %llu zapped %llu, sfence.vma %llu, "
		"sta calls %llu errors %llu area writes %llu gpc invalidations %llu, "
		"exit %s, status %d\n",
		(unsigned long long)vs.instret, (double)vs.run_ns / NSEC_PER_SEC,
		vs.run_ns ? (double)vs.instret * 1e3 / (double)vs.run_ns : 0.0,
		(unsigned long long)(ks.faults + ks.fast_faults),
		(unsigned long long)ks.invalidations, (unsigned long long)hs.events[PSWPIN],
		(unsigned long long)hs.events[PSWPOUT], (unsigned long long)vs.mmio_exits,
		(unsigned long long)vs.resets, (unsigned long long)vs.ptw_walks,
		(unsigned long long)vs.gva_refills, (unsigned long long)ks.gva_installs,
		(unsigned long long)vs.gva_cold_skips,
		(unsigned long long)ks.gva_zapped_leaves, (unsigned long long)vs.sfence_vma,
		(unsigned long long)vs.sta_calls, (unsigned long long)vs.sta_errors,
		(unsigned long long)ks.runstate_updates, (unsigned long long)ks.gpc_invalidations,
		virt_exit_name(virt_exit_reason(vm)), status);
	virt_destroy(vm);
	if (boot_check_host(host))
		status = EXIT_HOST_CHECK;
	return status;
}
