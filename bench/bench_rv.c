/* SPDX-License-Identifier: MIT */
/*
 * bench_rv.c - the machinery of the RISC-V benchmarks (bench_rv.h): the
 * same image on tandem, in this process through the virt API, and on QEMU
 * TCG (qemu-system-riscv64) as a child, with 256 MiB of RAM, one hart, and
 * QEMU's hart cut to tandem's ISA (rv64imac + Zicsr, Zifencei, Sstc:
 * -cpu rv64,f=false,d=false,h=false,z*=false), so firmware takes the same
 * paths on both.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench_rv.h"
#include "tandem/host.h"
#include "base/compiler.h"
#include "base/clock.h"
#include "../guests/bench/bench_guests.h"

extern char **environ;

#define RAM_BYTES       ((uint64_t)BG_RAM_MB << 20)
#define HOST_SLACK      (64ULL << 20)

int rvb_fail(const struct rvb_env *env, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "tandem bench %s: ", env->bench);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

void rvb_guest_path(const struct rvb_env *env, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.elf", env->guests, name);
}

/* build/<variant>/tandem finds build/bench-guests; else the working
 * directory's build/bench-guests (a tandem run from the tree's top). */
int rvb_find_guests(struct rvb_env *env, const char *const *names, size_t n)
{
	char exe[PATH_MAX - 32], path[PATH_MAX + 16];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	env->guests[0] = '\0';
	if (len > 0) {
		exe[len] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(env->guests, sizeof(env->guests), "%s/../bench-guests", exe);
			rvb_guest_path(env, names[0], path, sizeof(path));
			if (access(path, R_OK) != 0)
				env->guests[0] = '\0';
		}
	}
	if (!env->guests[0])
		snprintf(env->guests, sizeof(env->guests), "build/bench-guests");
	else if (realpath(env->guests, exe))
		snprintf(env->guests, sizeof(env->guests), "%s", exe);
	for (size_t i = 0; i < n; i++) {
		rvb_guest_path(env, names[i], path, sizeof(path));
		if (access(path, R_OK) != 0)
			return rvb_fail(env, "guest program %s: %s; build them with `make "
					"bench-guests` (needs riscv64-unknown-elf-gcc, Debian "
					"package gcc-riscv64-unknown-elf)", path, strerror(errno));
	}
	return 0;
}

void rvb_find_qemu(struct rvb_env *env)
{
	const char *var = getenv("TANDEM_QEMU"), *p;

	env->qemu[0] = '\0';
	if (var) {
		if (strcmp(var, "none") != 0 && access(var, X_OK) == 0)
			snprintf(env->qemu, sizeof(env->qemu), "%s", var);
		return;
	}
	p = getenv("PATH");
	while (p && *p) {
		size_t len = strcspn(p, ":");
		char cand[PATH_MAX];

		if (len && len < sizeof(cand) - sizeof(RVB_QEMU_NAME) - 1) {
			snprintf(cand, sizeof(cand), "%.*s/" RVB_QEMU_NAME, (int)len, p);
			if (access(cand, X_OK) == 0) {
				snprintf(env->qemu, sizeof(env->qemu), "%s", cand);
				return;
			}
		}
		p += len + (p[len] == ':');
	}
}

int rvb_env_init(struct rvb_env *env, const struct bench_opts *o, const char *bench,
		 const char *const *guests, size_t n)
{
	env->o = o;
	env->bench = bench;
	if (rvb_find_guests(env, guests, n))
		return -1;
	rvb_find_qemu(env);
	signal(SIGPIPE, SIG_IGN);       /* a console pipe closed early fails a write */
	return 0;
}

void rvb_note_qemu(const struct rvb_env *env)
{
	const struct bench_opts *o = env->o;

	if (env->qemu[0]) {
		bench_note(o, "qemu: %s -M virt -nographic -cpu %s -m %dM (TCG), runs "
			   "alternating with tandem's", env->qemu, RVB_QEMU_CPU, BG_RAM_MB);
		return;
	}
	bench_note(o, "qemu: not installed (Debian qemu-system-misc): no QEMU figures, "
		   "no ratios");
	if (o->json) {
		struct bench_field f[] = { BENCH_STR("qemu", "not installed") };

		bench_report(o, env->bench, "qemu", f, ARRAY_SIZE(f));
	}
}

void rvb_config_init(struct rvb_config *c, const char *bios, const char *kernel)
{
	*c = (struct rvb_config){ .bios = bios, .kernel = kernel, .in_fd = -1, .out_fd = -1,
				  .gva = KVM_GVA_TARGETED };
}

/* ---- tandem, in this process ----------------------------------------------- */

int rvb_tandem_create(const struct rvb_env *env, const struct rvb_config *c,
		      struct rvb_machine *tm)
{
	struct host_config hc = { .ram_bytes = RAM_BYTES + HOST_SLACK,
				  .swap_bytes = c->swap_bytes };
	struct virt_config vc;
	char err[512];
	int ret;

	virt_config_default(&vc);
	vc.ram_size = RAM_BYTES;
	vc.bios = c->bios;
	vc.kernel = c->kernel;
	vc.bootargs = c->bootargs;
	vc.bootdelay = c->bootdelay;
	vc.console_in = c->in_fd;
	vc.console_out = c->out_fd;
	vc.kvm.gva = c->gva;
	ret = host_create(&hc, &tm->host);
	if (ret)
		return rvb_fail(env, "host_create: %s", strerror(-ret));
	ret = virt_create(tm->host, &vc, &tm->vm, err, sizeof(err));
	if (ret) {
		host_destroy(tm->host);
		return rvb_fail(env, "%s", err);
	}
	ret = virt_start(tm->vm);
	if (ret) {
		virt_destroy(tm->vm);
		host_destroy(tm->host);
		return rvb_fail(env, "virt_start: %s", strerror(-ret));
	}
	return 0;
}

void rvb_tandem_destroy(struct rvb_machine *tm)
{
	virt_stop(tm->vm);
	virt_destroy(tm->vm);
	host_destroy(tm->host);
}

int rvb_tandem_run(const struct rvb_env *env, const struct rvb_config *c,
		   const struct rvb_hooks *hooks, double *sec, struct virt_stats *vs,
		   struct kvm_stats *ks)
{
	const char *what = c->kernel ? c->kernel : c->bios;
	struct rvb_machine tm;
	uint64_t t0 = clock_now_ns();
	int status, hook = 0;

	if (rvb_tandem_create(env, c, &tm))
		return -1;
	if (hooks && hooks->during)
		hook = hooks->during(&tm, hooks->arg);
	status = hook ? 0 : virt_wait(tm.vm, RVB_RUN_TIMEOUT_NS);
	if (hooks && hooks->done)
		hooks->done(&tm, hooks->arg);
	virt_stop(tm.vm);               /* the harts' counters are final once they stopped */
	virt_get_stats(tm.vm, vs);
	if (ks)
		kvm_get_stats(vmm_kvm(virt_vmm(tm.vm)), ks);
	if (hook || status != 0) {
		enum virt_exit why = virt_exit_reason(tm.vm);

		rvb_tandem_destroy(&tm);
		if (hook)
			return -1;
		return rvb_fail(env, "tandem: %s: %s (status %d)", what,
				status == -ETIMEDOUT ? "timed out" : virt_exit_name(why), status);
	}
	rvb_tandem_destroy(&tm);
	*sec = (double)(clock_now_ns() - t0) / NSEC_PER_SEC;
	return 0;
}

/* ---- QEMU, a child ----------------------------------------------------------- */

int rvb_qemu_spawn(const struct rvb_env *env, const struct rvb_config *c, pid_t *pid)
{
	char mem[32];
	const char *argv[20] = {
		env->qemu, "-M", "virt", "-nographic", "-cpu", RVB_QEMU_CPU, "-smp", "1",
		"-m", mem, "-bios", c->bios ? c->bios : "none",
	};
	unsigned int argc = 12;
	posix_spawn_file_actions_t fa;
	int ret;

	if (c->kernel) {
		argv[argc++] = "-kernel";
		argv[argc++] = c->kernel;
	}
	if (c->bootargs) {
		argv[argc++] = "-append";
		argv[argc++] = c->bootargs;
	}
	argv[argc] = NULL;
	snprintf(mem, sizeof(mem), "%dM", BG_RAM_MB);
	posix_spawn_file_actions_init(&fa);
	if (c->in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, c->in_fd, STDIN_FILENO);
	else
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (c->out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, c->out_fd, STDOUT_FILENO);
	else
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	ret = posix_spawn(pid, env->qemu, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret)
		return rvb_fail(env, "cannot start %s: %s", env->qemu, strerror(ret));
	return 0;
}

int rvb_qemu_reap(pid_t pid, uint64_t timeout_ns)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int wstatus;

	if (pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };

		if (poll(&p, 1, (int)(timeout_ns / NSEC_PER_MSEC)) == 0)
			kill(pid, SIGKILL);
		close(pidfd);
	}
	while (waitpid(pid, &wstatus, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

int rvb_qemu_run(const struct rvb_env *env, const struct rvb_config *c, double *sec)
{
	uint64_t t0 = clock_now_ns();
	pid_t pid;
	int status;

	if (rvb_qemu_spawn(env, c, &pid))
		return -1;
	status = rvb_qemu_reap(pid, RVB_RUN_TIMEOUT_NS);
	*sec = (double)(clock_now_ns() - t0) / NSEC_PER_SEC;
	if (status != 0)
		return rvb_fail(env, "qemu: %s: exit status %d (the guest failed, or QEMU did)",
				c->kernel ? c->kernel : c->bios, status);
	return 0;
}

/* ---- the console ------------------------------------------------------------- */

int rvb_console_open(const struct rvb_env *env)
{
	int fd = memfd_create("tandem-bench-console", MFD_CLOEXEC);

	if (fd < 0)
		return rvb_fail(env, "memfd_create: %s", strerror(errno));
	return fd;
}

void rvb_console_read(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		ssize_t r = pread(fd, buf + n, len - 1 - n, (off_t)n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
}

unsigned int rvb_parse_ticks(const char *console, uint64_t *ticks, unsigned int n)
{
	unsigned int found = 0;
	const char *p = console;

	while (*p && found < n) {
		size_t len = strcspn(p, "\r\n");

		if (len == 16 && strspn(p, "0123456789abcdef") >= 16)
			ticks[found++] = strtoull(p, NULL, 16);
		p += len;
		p += strspn(p, "\r\n");
	}
	return found;
}
