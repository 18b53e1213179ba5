/* SPDX-License-Identifier: MIT */
/*
 * uboot_dialogue.c - boot Debian's OpenSBI + U-Boot on `tandem boot` and
 * hold a console dialogue with U-Boot, checking every answer.
 *
 *   uboot_dialogue --tandem build/debug/tandem [--mem 256M] [--host-mem 96M
 *                  --swap 512M --churn 50 --expect-swap] [--verbose]
 *
 * The driver makes an ext4 disk image (mkfs.ext4 -d) holding a short text
 * file and 4 MiB of pseudo-random bytes, starts tandem boot on it with
 * pipes for the console, and for each command waits for U-Boot's "=> "
 * prompt (input typed earlier is lost: U-Boot empties the UART FIFO while
 * it starts), types the command, and reads the answer up to the next
 * prompt. A prompt that does not come within the timeout is a failure.
 * Every failure prints the whole console transcript and tandem's stderr.
 *
 * The dialogue:
 *   version, sbi             U-Boot 2023.01; OpenSBI and the SBI spec version
 *   virtio scan / info, ls   the disk and its two files with their sizes
 *   ext4load big.bin         then crc32 of it == the driver's CRC-32 of the
 *                            file, and printenv filesize == its size
 *   mw.l over 2 x 64 MiB     then md.l at the start, middle and end of the
 *                            first region, cmp.l of the two (all the same),
 *                            crc32 of one == the driver's CRC-32 of the
 *                            pattern; one word changed, cmp.l reports it at
 *                            its address after the right count of words
 *   cp.l 64 MiB              RAM to RAM over the second region: cmp.l all
 *                            the same again, crc32 unchanged
 *   erase, cp.l to flash     the CFI flash: one block erased, 16 words
 *                            programmed from RAM, cmp.l the same
 *   crc32 big.bin again      the random data survived the 128 MiB of writes
 *                            (under --host-mem pressure: swapped out and in)
 *   ext4load hello.txt       md.b shows the text; crc32; filesize
 *   bootefi hello            "Hello, world!"
 *   poweroff                 tandem exits 0, its stderr says "integrity: OK"
 *                            and "frames: all returned"; with --expect-swap
 *                            its figures show swap-in and swap-out both > 0
 *
 * Not in the dialogue: cp. The machine has no CFI flash (QEMU virt has one
 * at 0x20000000); Debian's qemu-riscv64_smode U-Boot then never runs
 * flash_init, its flash_info[] stays zeroed, and addr2info() takes every
 * address for flash: cp answers "Copy to Flash... Flash not Erased". The
 * second region is therefore filled by its own mw.l.
 *
 * Exit status: 0 when every answer was right; 1 otherwise; 2 for bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UBOOT_BIN     "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin"
#define DISK_SIZE     "16M"
#define BIG_SIZE      (4u << 20)
#define HELLO_TEXT    "Hello from the tandem boot test.\n"

/* Guest addresses. RAM is 0x80000000 up; OpenSBI sits at the bottom, U-Boot
 * relocates itself, its heap, stack and device tree to the top (about
 * 0x8f700000 up with 256 MiB), and its first device tree is at 0x82200000. */
#define FLASH_ADDR    0x20000000u          /* the first CFI flash bank */
#define SRC_ADDR      0x83000000u
#define DST_ADDR      0x87000000u
#define FILL_WORDS    0x1000000u           /* 64 MiB each */
#define FILL_BYTES    (FILL_WORDS * 4)
#define FILL_PATTERN  0x12345678u
#define RANDOM_SEED   0x7a6d3e01u
#define CHUNK_WORDS   4096u
#define DIFF_OFFSET   0xabcde0u            /* the word changed in DST */
#define DIFF_VALUE    0x9abcdef0u
#define BIG_ADDR      0x8b000000u
#define HELLO_ADDR    0x84000000u

struct opts {
	const char *tandem, *mem, *host_mem, *swap, *churn, *uboot;
	bool expect_swap, verbose, keep;
	int boot_timeout_s, cmd_timeout_s;
};

static struct {
	char *buf;          /* the console transcript, NUL-terminated */
	size_t len, cap;
	int in_fd, out_fd;  /* tandem's console: we write in_fd, read out_fd */
	pid_t pid;
	bool eof;
	char dir[256];      /* the work directory */
	char err_path[300]; /* tandem's stderr */
} con = { .in_fd = -1, .out_fd = -1, .pid = -1 };

static struct opts o;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- CRC-32 (IEEE 802.3, reflected, as U-Boot's crc32 and zlib) --------- */

static uint32_t crc_table[256];

static void crc32_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

/* Continue a CRC: start with crc = 0. */
static uint32_t crc32_update(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- failing: the transcript, tandem's stderr, and out -------------------- */

static void print_file(const char *path, const char *title)
{
	char line[1024];
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	fprintf(stderr, "---- %s ----\n", title);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fclose(f);
}

static void cleanup(void)
{
	static const char *const files[] = { "root/hello.txt", "root/big.bin", "disk.img",
					     "tandem.err" };
	char p[400];

	if (o.keep || !con.dir[0])
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", con.dir, files[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/root", con.dir);
	rmdir(p);
	rmdir(con.dir);
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	if (con.pid > 0) {
		kill(con.pid, SIGKILL);
		waitpid(con.pid, NULL, 0);
		con.pid = -1;
	}
	fprintf(stderr, "---- console transcript ----\n%s\n", con.buf ? con.buf : "");
	if (con.err_path[0])
		print_file(con.err_path, "tandem's stderr");
	fprintf(stderr, "uboot_dialogue: FAILED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cleanup();
	exit(1);
}

/* ---- the disk image ------------------------------------------------------ */

static uint8_t *big_data;
static uint32_t big_crc, hello_crc;

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "w");

	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		fail("cannot write %s: %s", path, strerror(errno));
}

static int run_wait(char *const argv[])
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void make_disk(void)
{
	char root[300], path[400], img[300];
	uint64_t x = 0x9e3779b97f4a7c15ull;     /* xorshift64: fixed content */
	static const char *const mkfs[] = { "mkfs.ext4", "/usr/sbin/mkfs.ext4",
					    "/sbin/mkfs.ext4" };
	int rc = 127;

	snprintf(root, sizeof(root), "%s/root", con.dir);
	if (mkdir(root, 0755))
		fail("mkdir %s: %s", root, strerror(errno));
	snprintf(path, sizeof(path), "%s/hello.txt", root);
	write_file(path, HELLO_TEXT, strlen(HELLO_TEXT));
	hello_crc = crc32_update(0, HELLO_TEXT, strlen(HELLO_TEXT));

	big_data = malloc(BIG_SIZE);
	if (!big_data)
		fail("out of memory");
	for (size_t i = 0; i < BIG_SIZE; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(big_data + i, &x, 8);
	}
	snprintf(path, sizeof(path), "%s/big.bin", root);
	write_file(path, big_data, BIG_SIZE);
	big_crc = crc32_update(0, big_data, BIG_SIZE);

	snprintf(img, sizeof(img), "%s/disk.img", con.dir);
	for (size_t i = 0; i < sizeof(mkfs) / sizeof(mkfs[0]) && rc == 127; i++) {
		char *argv[] = { (char *)mkfs[i], "-q", "-F", "-d", root, img, DISK_SIZE, NULL };

		rc = run_wait(argv);
	}
	if (rc)
		fail("mkfs.ext4 -d %s %s %s failed (status %d; e2fsprogs installed?)",
		     root, img, DISK_SIZE, rc);
}

/* ---- the console ---------------------------------------------------------- */

static void con_append(const char *p, size_t n)
{
	if (con.len + n + 1 > con.cap) {
		con.cap = (con.len + n + 1) * 2;
		con.buf = realloc(con.buf, con.cap);
		if (!con.buf) {
			fprintf(stderr, "uboot_dialogue: out of memory\n");
			exit(1);
		}
	}
	/* U-Boot ends lines with CR LF: keep the LF only. */
	for (size_t i = 0; i < n; i++)
		if (p[i] != '\r')
			con.buf[con.len++] = p[i];
	con.buf[con.len] = '\0';
}

/* Read what tandem printed until `done(from)` holds, EOF, or the deadline.
 * Returns true when done. */
static bool con_read_until(size_t from, bool (*done)(size_t), double timeout_s)
{
	double deadline = now_s() + timeout_s;

	while (!done(from)) {
		char buf[4096];
		double left = deadline - now_s();
		struct pollfd pfd = { .fd = con.out_fd, .events = POLLIN };
		ssize_t n;

		if (con.eof || left <= 0)
			return false;
		if (poll(&pfd, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		if (!pfd.revents)
			continue;
		n = read(con.out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			con.eof = true;
			continue;
		}
		if (o.verbose)
			fwrite(buf, 1, (size_t)n, stdout);
		con_append(buf, (size_t)n);
	}
	return true;
}

/* The prompt: "=> " at the start of a line, after `from`. */
static const char *prompt_after(size_t from)
{
	for (const char *p = con.buf ? strstr(con.buf + from, "=> ") : NULL; p;
	     p = strstr(p + 1, "=> "))
		if (p == con.buf || p[-1] == '\n')
			return p;
	return NULL;
}

static bool have_prompt(size_t from)
{
	return prompt_after(from) != NULL;
}

static size_t prompt_seen;      /* where the last prompt ends */

static void wait_prompt(const char *what, int timeout_s)
{
	const char *p;

	if (!con_read_until(prompt_seen, have_prompt, timeout_s))
		fail("no U-Boot prompt %s within %d s%s", what, timeout_s,
		     con.eof ? " (tandem closed the console)" : "");
	p = prompt_after(prompt_seen);
	prompt_seen = (size_t)(p - con.buf) + 3;
}

/*
 * Type one command at the prompt and return its answer (what U-Boot printed
 * between the echo of the command and the next prompt), in a static buffer.
 */
static const char *cmd(const char *fmt, ...)
{
	static char *answer;
	char line[256];
	size_t start, len;
	const char *end, *a;
	double t0 = now_s();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	start = prompt_seen;
	len = strlen(line);
	line[len] = '\r';
	if (write(con.in_fd, line, len + 1) != (ssize_t)(len + 1))
		fail("writing '%.*s' to the console: %s", (int)len, line, strerror(errno));
	line[len] = '\0';
	{
		char what[300];

		snprintf(what, sizeof(what), "after '%s'", line);
		wait_prompt(what, o.cmd_timeout_s);
	}
	end = con.buf + prompt_seen - 3;
	/* The answer starts after the echoed command's line. */
	a = memchr(con.buf + start, '\n', (size_t)(end - (con.buf + start)));
	a = a ? a + 1 : end;
	free(answer);
	answer = strndup(a, (size_t)(end - a));
	if (!answer)
		fail("out of memory");
	printf("uboot_dialogue: %-48s %6.2f s\n", line, now_s() - t0);
	fflush(stdout);
	return answer;
}

static void expect(const char *answer, const char *cmdname, const char *needle)
{
	if (!strstr(answer, needle))
		fail("'%s': the answer does not contain \"%s\":\n%s", cmdname, needle, answer);
}

static void expect_empty(const char *answer, const char *cmdname)
{
	for (const char *p = answer; *p; p++)
		if (*p != '\r' && *p != '\n')
			fail("'%s': expected no answer, got:\n%s", cmdname, answer);
}

/* "crc32 for ADDR ... LAST ==> XXXXXXXX" */
static void expect_crc(const char *answer, uint32_t addr, uint32_t size, uint32_t crc)
{
	char want[96];

	snprintf(want, sizeof(want), "crc32 for %08x ... %08x ==> %08x", addr,
		 addr + size - 1, crc);
	expect(answer, "crc32", want);
}

/* ---- tandem --------------------------------------------------------------- */

static void start_tandem(void)
{
	char img[300], *argv[32];
	int in[2], out[2], n = 0, err_fd;

	snprintf(img, sizeof(img), "%s/disk.img", con.dir);
	snprintf(con.err_path, sizeof(con.err_path), "%s/tandem.err", con.dir);
	argv[n++] = (char *)o.tandem;
	argv[n++] = "boot";
	argv[n++] = "--kernel";
	argv[n++] = (char *)o.uboot;
	argv[n++] = "--bootdelay";
	argv[n++] = "-1";
	argv[n++] = "--drive";
	argv[n++] = img;
	argv[n++] = "--mem";
	argv[n++] = (char *)o.mem;
	if (o.host_mem) {
		argv[n++] = "--host-mem";
		argv[n++] = (char *)o.host_mem;
	}
	if (o.swap) {
		argv[n++] = "--swap";
		argv[n++] = (char *)o.swap;
	}
	if (o.churn) {
		argv[n++] = "--churn";
		argv[n++] = (char *)o.churn;
	}
	/* A backstop: the guest stops by itself even if this driver dies. */
	argv[n++] = "--timeout";
	argv[n++] = "900";
	argv[n] = NULL;

	printf("uboot_dialogue:");
	for (int i = 0; i < n; i++)
		printf(" %s", argv[i]);
	printf("\n");
	fflush(stdout);

	err_fd = open(con.err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (err_fd < 0 || pipe(in) || pipe(out))
		fail("cannot set up tandem's console: %s", strerror(errno));
	con.pid = fork();
	if (con.pid < 0)
		fail("fork: %s", strerror(errno));
	if (con.pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err_fd, STDERR_FILENO);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		close(err_fd);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err_fd);
	con.in_fd = in[1];
	con.out_fd = out[0];
}

static bool never(size_t from)
{
	return false;
}

/* After poweroff: tandem's exit status and its verdict lines. */
static void finish_tandem(void)
{
	unsigned long long swin = 0, swout = 0;
	char line[1024];
	bool integrity = false, frames = false, figures = false;
	int st;
	FILE *f;

	con_read_until(prompt_seen, never, o.cmd_timeout_s);   /* up to EOF */
	if (!con.eof)
		fail("tandem did not exit within %d s of poweroff", o.cmd_timeout_s);
	if (waitpid(con.pid, &st, 0) < 0)
		fail("waitpid: %s", strerror(errno));
	con.pid = -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("tandem boot ended with %s %d, not exit status 0",
		     WIFEXITED(st) ? "exit status" : "signal",
		     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	f = fopen(con.err_path, "r");
	if (!f)
		fail("cannot read tandem's stderr: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, ", swap in ");

		if (strncmp(line, "tandem boot: ", 13) == 0 && p &&
		    sscanf(p, ", swap in %llu out %llu", &swin, &swout) == 2) {
			figures = true;
			printf("uboot_dialogue: %s", line);
		}
		if (strcmp(line, "integrity: OK\n") == 0)
			integrity = true;
		if (strcmp(line, "frames: all returned\n") == 0)
			frames = true;
	}
	fclose(f);
	if (!figures)
		fail("tandem boot printed no figures line (swap in N out N)");
	if (!integrity)
		fail("tandem boot did not say \"integrity: OK\"");
	if (!frames)
		fail("tandem boot did not say \"frames: all returned\"");
	if (o.expect_swap && (!swin || !swout))
		fail("expected swap traffic both ways under --host-mem %s, got swap in %llu "
		     "out %llu", o.host_mem ? o.host_mem : "(default)", swin, swout);
}

/* ---- the dialogue --------------------------------------------------------- */

/* U-Boot's rand() (lib/rand.c): xorshift32, which its random command stores
 * a word at a time from srand(seed). */
static uint32_t uboot_rand(uint32_t *y)
{
	*y ^= *y << 13;
	*y ^= *y >> 17;
	*y ^= *y << 5;
	return *y;
}

/* md.l ADDR 4 shows these four words (NULL: the fill pattern). */
static void expect_md_words(uint32_t addr, const uint32_t *w)
{
	uint32_t pat[4] = { FILL_PATTERN, FILL_PATTERN, FILL_PATTERN, FILL_PATTERN };
	char want[80];

	if (!w)
		w = pat;
	snprintf(want, sizeof(want), "%08x: %08x %08x %08x %08x", addr, w[0], w[1], w[2], w[3]);
	expect(cmd("md.l 0x%x 4", addr), "md.l", want);
}

static void dialogue(void)
{
	static uint32_t chunk[CHUNK_WORDS];
	uint32_t crc = 0, y, first[4], src_word = 0, at1, v1, at2, v2;
	const char *a, *p;
	char want[160];

	wait_prompt("after boot", o.boot_timeout_s);

	a = cmd("version");
	expect(a, "version", "U-Boot 2023.01");

	a = cmd("sbi");
	expect(a, "sbi", "OpenSBI ");
	expect(a, "sbi", "SBI 1.0");            /* OpenSBI 1.1 implements SBI v1.0 */
	expect(a, "sbi", "System Reset Extension");

	/* The disk. */
	expect_empty(cmd("virtio scan"), "virtio scan");
	a = cmd("virtio info");
	expect(a, "virtio info", "Device 0: QEMU VirtIO Block Device");
	expect(a, "virtio info", "Capacity: 16.0 MB");
	a = cmd("ls virtio 0");
	snprintf(want, sizeof(want), "%u big.bin", BIG_SIZE);
	expect(a, "ls virtio 0", want);
	snprintf(want, sizeof(want), "%zu hello.txt", strlen(HELLO_TEXT));
	expect(a, "ls virtio 0", want);

	/* Random data first, so the fills below push it out of host RAM. */
	a = cmd("ext4load virtio 0 0x%x /big.bin", BIG_ADDR);
	snprintf(want, sizeof(want), "%u bytes read", BIG_SIZE);
	expect(a, "ext4load", want);
	a = cmd("printenv filesize");
	snprintf(want, sizeof(want), "filesize=%x\n", BIG_SIZE);
	expect(a, "printenv filesize", want);
	expect_crc(cmd("crc32 0x%x 0x%x", BIG_ADDR, BIG_SIZE), BIG_ADDR, BIG_SIZE, big_crc);

	/* 64 MiB of one word, read back at the start, middle and end. */
	expect_empty(cmd("mw.l 0x%x 0x%x 0x%x", SRC_ADDR, FILL_PATTERN, FILL_WORDS), "mw.l");
	expect_md_words(SRC_ADDR, NULL);
	expect_md_words(SRC_ADDR + FILL_BYTES / 2, NULL);
	expect_md_words(SRC_ADDR + FILL_BYTES - 16, NULL);
	for (size_t i = 0; i < CHUNK_WORDS; i++)
		chunk[i] = FILL_PATTERN;        /* little-endian host, as the guest */
	for (uint32_t done = 0; done < FILL_BYTES; done += sizeof(chunk))
		crc = crc32_update(crc, chunk, sizeof(chunk));
	expect_crc(cmd("crc32 0x%x 0x%x", SRC_ADDR, FILL_BYTES), SRC_ADDR, FILL_BYTES, crc);

	/* 64 MiB of U-Boot's pseudo-random words: every page differs, so a page
	 * swapped in at the wrong place or lost shows in the CRC and the compare. */
	snprintf(want, sizeof(want), "%u bytes filled with random data", FILL_BYTES);
	expect(cmd("random 0x%x 0x%x 0x%x", DST_ADDR, FILL_BYTES, RANDOM_SEED), "random", want);
	crc = 0;
	y = RANDOM_SEED;
	for (uint32_t done = 0; done < FILL_BYTES; done += sizeof(chunk)) {
		for (size_t i = 0; i < CHUNK_WORDS; i++)
			chunk[i] = uboot_rand(&y);
		if (done == 0)
			memcpy(first, chunk, sizeof(first));
		if (done <= DIFF_OFFSET && DIFF_OFFSET < done + sizeof(chunk))
			src_word = chunk[(DIFF_OFFSET - done) / 4];
		crc = crc32_update(crc, chunk, sizeof(chunk));
	}
	expect_md_words(DST_ADDR, first);
	expect_crc(cmd("crc32 0x%x 0x%x", DST_ADDR, FILL_BYTES), DST_ADDR, FILL_BYTES, crc);

	/* The same again over the first region: the two compare equal. */
	expect(cmd("random 0x%x 0x%x 0x%x", SRC_ADDR, FILL_BYTES, RANDOM_SEED), "random", want);
	a = cmd("cmp.l 0x%x 0x%x 0x%x", SRC_ADDR, DST_ADDR, FILL_WORDS);
	snprintf(want, sizeof(want), "Total of %u word(s) were the same", FILL_WORDS);
	expect(a, "cmp.l", want);
	if (strstr(a, "!="))
		fail("'cmp.l': a difference in identical regions:\n%s", a);

	/* One word changed: cmp.l stops there. */
	expect_empty(cmd("mw.l 0x%x 0x%x 1", DST_ADDR + DIFF_OFFSET, DIFF_VALUE), "mw.l");
	a = cmd("md.l 0x%x 1", DST_ADDR + DIFF_OFFSET);
	snprintf(want, sizeof(want), "%08x: %08x", DST_ADDR + DIFF_OFFSET, DIFF_VALUE);
	expect(a, "md.l", want);
	a = cmd("cmp.l 0x%x 0x%x 0x%x", SRC_ADDR, DST_ADDR, FILL_WORDS);
	p = strstr(a, "word at ");
	if (!p || sscanf(p, "word at 0x%x (0x%x) != word at 0x%x (0x%x)", &at1, &v1, &at2,
			  &v2) != 4)
		fail("'cmp.l': no difference reported:\n%s", a);
	if (at1 != SRC_ADDR + DIFF_OFFSET || at2 != DST_ADDR + DIFF_OFFSET || v1 != src_word ||
	    v2 != DIFF_VALUE)
		fail("'cmp.l': expected word at 0x%08x (0x%08x) != word at 0x%08x (0x%08x):\n%s",
		     SRC_ADDR + DIFF_OFFSET, src_word, DST_ADDR + DIFF_OFFSET, DIFF_VALUE, a);
	snprintf(want, sizeof(want), "Total of %u word(s) were the same", DIFF_OFFSET / 4);
	expect(a, "cmp.l", want);

	/* cp.l of the whole first region over the second (RAM to RAM: the
	 * machine's CFI flash keeps U-Boot from taking RAM for flash), then
	 * the two compare equal again. */
	expect_empty(cmd("cp.l 0x%x 0x%x 0x%x", SRC_ADDR, DST_ADDR, FILL_WORDS), "cp.l");
	a = cmd("cmp.l 0x%x 0x%x 0x%x", SRC_ADDR, DST_ADDR, FILL_WORDS);
	snprintf(want, sizeof(want), "Total of %u word(s) were the same", FILL_WORDS);
	expect(a, "cmp.l after cp.l", want);
	expect_crc(cmd("crc32 0x%x 0x%x", DST_ADDR, FILL_BYTES), DST_ADDR, FILL_BYTES, crc);

	/* The flash: erase a block, program 16 words from RAM, read back. */
	a = cmd("erase 0x%x +0x40000", FLASH_ADDR);
	expect(a, "erase", "Erased 1 sectors");
	a = cmd("cp.l 0x%x 0x%x 0x10", SRC_ADDR, FLASH_ADDR);
	expect(a, "cp.l to flash", "Copy to Flash... done");
	a = cmd("cmp.l 0x%x 0x%x 0x10", SRC_ADDR, FLASH_ADDR);
	expect(a, "cmp.l flash", "Total of 16 word(s) were the same");

	/* The random data again, after 128 MiB went through host RAM. */
	expect_crc(cmd("crc32 0x%x 0x%x", BIG_ADDR, BIG_SIZE), BIG_ADDR, BIG_SIZE, big_crc);

	/* A small text file. */
	a = cmd("ext4load virtio 0 0x%x /hello.txt", HELLO_ADDR);
	snprintf(want, sizeof(want), "%zu bytes read", strlen(HELLO_TEXT));
	expect(a, "ext4load", want);
	a = cmd("printenv filesize");
	snprintf(want, sizeof(want), "filesize=%zx\n", strlen(HELLO_TEXT));
	expect(a, "printenv filesize", want);
	a = cmd("md.b 0x%x 0x%zx", HELLO_ADDR, strlen(HELLO_TEXT));
	snprintf(want, sizeof(want), "%08x: 48 65 6c 6c 6f 20 66 72 6f 6d 20 74 68 65 20 74"
		 "  Hello from the t", HELLO_ADDR);
	expect(a, "md.b", want);
	expect(a, "md.b", "andem boot test.");
	expect_crc(cmd("crc32 0x%x 0x%zx", HELLO_ADDR, strlen(HELLO_TEXT)), HELLO_ADDR,
		   (uint32_t)strlen(HELLO_TEXT), hello_crc);

	a = cmd("bootefi hello");
	expect(a, "bootefi hello", "Hello, world!");

	/* poweroff: no prompt follows; tandem exits. */
	if (write(con.in_fd, "poweroff\r", 9) != 9)
		fail("writing 'poweroff': %s", strerror(errno));
	finish_tandem();
	expect(con.buf + prompt_seen, "poweroff", "poweroff ...");
}

/* ---- options -------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uboot_dialogue --tandem PATH [--mem SIZE] [--host-mem SIZE]\n"
		"         [--swap SIZE] [--churn MS] [--expect-swap] [--uboot FILE]\n"
		"         [--boot-timeout S] [--timeout S] [--keep] [--verbose]\n"
		"Boots OpenSBI + U-Boot on tandem boot and checks a console dialogue.\n"
		"  --expect-swap   fail unless tandem reports swap-in and swap-out\n"
		"  --timeout S     seconds for each answer (default 120)\n"
		"  --boot-timeout S seconds to the first prompt (default 120)\n"
		"  --keep          keep the work directory (disk image, stderr)\n"
		"  --verbose       copy the console to stdout\n");
}

int main(int argc, char **argv)
{
	double t0 = now_s();

	o.mem = "256M";
	o.uboot = UBOOT_BIN;
	o.boot_timeout_s = 120;
	o.cmd_timeout_s = 120;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--expect-swap")) {
			o.expect_swap = true;
		} else if (!strcmp(a, "--verbose")) {
			o.verbose = true;
		} else if (!strcmp(a, "--keep")) {
			o.keep = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (v && !strcmp(a, "--tandem")) {
			o.tandem = argv[++i];
		} else if (v && !strcmp(a, "--mem")) {
			o.mem = argv[++i];
		} else if (v && !strcmp(a, "--host-mem")) {
			o.host_mem = argv[++i];
		} else if (v && !strcmp(a, "--swap")) {
			o.swap = argv[++i];
		} else if (v && !strcmp(a, "--churn")) {
			o.churn = argv[++i];
		} else if (v && !strcmp(a, "--uboot")) {
			o.uboot = argv[++i];
		} else if (v && !strcmp(a, "--timeout")) {
			o.cmd_timeout_s = atoi(argv[++i]);
		} else if (v && !strcmp(a, "--boot-timeout")) {
			o.boot_timeout_s = atoi(argv[++i]);
		} else {
			fprintf(stderr, "uboot_dialogue: bad option '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (!o.tandem || o.cmd_timeout_s <= 0 || o.boot_timeout_s <= 0) {
		usage(stderr);
		return 2;
	}
	if (access(o.uboot, R_OK)) {
		fprintf(stderr, "uboot_dialogue: %s: %s (Debian package u-boot-qemu)\n",
			o.uboot, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	crc32_init();
	snprintf(con.dir, sizeof(con.dir), "%s/tandem-uboot.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(con.dir)) {
		fprintf(stderr, "uboot_dialogue: mkdtemp %s: %s\n", con.dir, strerror(errno));
		return 1;
	}
	make_disk();
	start_tandem();
	dialogue();
	printf("uboot_dialogue: PASS in %.1f s\n", now_s() - t0);
	cleanup();
	free(big_data);
	free(con.buf);
	return 0;
}
