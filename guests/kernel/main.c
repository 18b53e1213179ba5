/* guests/kernel: boot, SBI, console, device tree, bootargs, the report. */
#include "kernel.h"

struct config cfg;
struct counters cnt;
struct cpu cpus[MAX_HARTS];
uint64_t timebase_hz = 10000000;
int nharts;

static uint64_t hart_ids[MAX_HARTS];
static uint64_t ram_base, ram_size;
static char bootargs[256];
static volatile int harts_up;
static uint64_t boot_free_pages;
static uint64_t test_base;       /* the SiFive test device (/soc/test@...) */

/* ---------------- SBI ---------------- */

struct sbiret sbi_call(long eid, long fid, long a0, long a1, long a2, long a3, long a4)
{
	register long r0 __asm__("a0") = a0;
	register long r1 __asm__("a1") = a1;
	register long r2 __asm__("a2") = a2;
	register long r3 __asm__("a3") = a3;
	register long r4 __asm__("a4") = a4;
	register long r6 __asm__("a6") = fid;
	register long r7 __asm__("a7") = eid;
	__asm__ volatile("ecall"
			 : "+r"(r0), "+r"(r1)
			 : "r"(r2), "r"(r3), "r"(r4), "r"(r6), "r"(r7)
			 : "memory");
	return (struct sbiret){ r0, r1 };
}

void sbi_putchar(int c) { sbi_call(0x01, 0, c, 0, 0, 0, 0); }
void sbi_set_timer(uint64_t t) { sbi_call(0x54494D45, 0, (long)t, 0, 0, 0, 0); }
long sbi_hart_start(unsigned long hart, unsigned long addr, unsigned long opaque)
{
	return sbi_call(0x48534D, 0, (long)hart, (long)addr, (long)opaque, 0, 0).error;
}
long sbi_remote_sfence_vma_asid(unsigned long mask, unsigned long va, unsigned long size, unsigned long asid)
{
	return sbi_call(0x52464E43, 2, (long)mask, 0, (long)va, (long)size, (long)asid).error;
}
void sbi_shutdown(bool failure)
{
	/* OpenSBI powers off through the syscon-poweroff value (PASS) whatever
	 * the SRST reason, so a failure goes to the test device first:
	 * FAIL | code << 16 makes QEMU and tandem exit with status 1. The
	 * device is not in our page tables: write it with translation off
	 * (the kernel's own mapping is one to one). */
	if (failure && test_base) {
		csr_write(satp, 0);
		__asm__ volatile("sfence.vma zero, zero" ::: "memory");
		*(volatile uint32_t *)test_base = 0x3333 | (1u << 16);
	}
	/* SRST: type 0 = shutdown; reason 0 = none, 1 = system failure. */
	sbi_call(0x53525354, 0, 0, failure ? 1 : 0, 0, 0, 0);
	/* legacy shutdown as a fallback */
	sbi_call(0x08, 0, 0, 0, 0, 0, 0);
	for (;;)
		__asm__ volatile("wfi");
}

uint64_t rdtime(void) { return csr_read(time); }

/* ---------------- console ---------------- */

static struct spinlock cons_lock;

void console_write(const char *s, int n)
{
	acquire(&cons_lock);
	for (int i = 0; i < n; i++) {
		if (s[i] == '\n')
			sbi_putchar('\r');
		sbi_putchar(s[i]);
	}
	release(&cons_lock);
}

void kprintf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = kvsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	console_write(buf, n < (int)sizeof buf ? n : (int)sizeof buf - 1);
}

void panic(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	kprintf("kernel: PANIC hart %lu: %s\n", mycpu()->hartid, buf);
	kprintf("kernel: FAILED (panic)\n");
	sbi_shutdown(true);
}

/* ---------------- device tree ---------------- */

static uint32_t be32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static uint64_t be_cells(const uint8_t *p, int cells)
{
	uint64_t v = 0;
	for (int i = 0; i < cells; i++)
		v = v << 32 | be32(p + 4 * i);
	return v;
}
static bool streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}
static bool prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return false;
	return true;
}

/* Walk the structure block: /memory@*'s reg, /cpus's timebase-frequency,
 * /cpus/cpu@*'s reg (hart ids, skipping status != "okay"), and
 * /chosen's bootargs. Cells: root #address-cells / #size-cells. */
static uint64_t parse_fdt(const void *fdt)
{
	const uint8_t *base = fdt;
	if (be32(base) != 0xd00dfeed)
		panic("no device tree at %p", fdt);
	uint32_t total = be32(base + 4);
	const uint8_t *p = base + be32(base + 8);
	const char *strs = (const char *)base + be32(base + 12);
	int depth = 0, acells = 2, scells = 2, cpu_acells = 1;
	int in_mem = 0, in_cpus = 0, in_cpu = 0, in_chosen = 0;
	uint64_t cpu_reg = ~0UL;
	bool cpu_ok = true;
	for (;;) {
		uint32_t tok = be32(p);
		p += 4;
		if (tok == 1) { /* BEGIN_NODE */
			const char *name = (const char *)p;
			int len = 0;
			while (name[len])
				len++;
			p += (len + 4) & ~3;
			depth++;
			if (depth == 2) {
				in_mem = prefix(name, "memory");
				in_cpus = streq(name, "cpus");
				in_chosen = streq(name, "chosen");
			} else if (depth == 3 && prefix(name, "test@")) {
				uint64_t a = 0;
				for (const char *q = name + 5; *q; q++) {
					int d = *q >= '0' && *q <= '9' ? *q - '0' :
						*q >= 'a' && *q <= 'f' ? *q - 'a' + 10 : -1;
					if (d < 0)
						break;
					a = a << 4 | (uint64_t)d;
				}
				test_base = a;
			} else if (depth == 3 && in_cpus && prefix(name, "cpu@")) {
				in_cpu = 1;
				cpu_reg = ~0UL;
				cpu_ok = true;
			}
		} else if (tok == 2) { /* END_NODE */
			if (depth == 3 && in_cpu) {
				if (cpu_ok && cpu_reg != ~0UL && nharts < MAX_HARTS)
					hart_ids[nharts++] = cpu_reg;
				in_cpu = 0;
			}
			if (depth == 2)
				in_mem = in_cpus = in_chosen = 0;
			depth--;
		} else if (tok == 3) { /* PROP */
			uint32_t len = be32(p), nameoff = be32(p + 4);
			const uint8_t *val = p + 8;
			const char *pname = strs + nameoff;
			p += 8 + ((len + 3) & ~3u);
			if (depth == 1 && streq(pname, "#address-cells"))
				acells = (int)be32(val);
			else if (depth == 1 && streq(pname, "#size-cells"))
				scells = (int)be32(val);
			else if (depth == 2 && in_mem && streq(pname, "reg") && !ram_size) {
				ram_base = be_cells(val, acells);
				ram_size = be_cells(val + 4 * acells, scells);
			} else if (depth == 2 && in_cpus && streq(pname, "timebase-frequency"))
				timebase_hz = len == 8 ? be_cells(val, 2) : be32(val);
			else if (depth == 2 && in_cpus && streq(pname, "#address-cells"))
				cpu_acells = (int)be32(val);
			else if (depth == 3 && in_cpu && streq(pname, "reg"))
				cpu_reg = be_cells(val, cpu_acells);
			else if (depth == 3 && in_cpu && streq(pname, "status"))
				cpu_ok = prefix((const char *)val, "okay") || prefix((const char *)val, "ok");
			else if (depth == 2 && in_chosen && streq(pname, "bootargs")) {
				uint32_t n = len < sizeof bootargs - 1 ? len : sizeof bootargs - 1;
				memcpy(bootargs, val, n);
				bootargs[n] = 0;
			}
		} else if (tok == 4) { /* NOP */
		} else {
			break;          /* END or garbage */
		}
	}
	return total;
}

/* ---------------- bootargs ---------------- */

static long parse_num(const char *s)
{
	long v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

static void parse_bootargs(void)
{
	cfg.vm = 0;
	cfg.rounds = 8;
	cfg.pages = 8;
	cfg.lineages = 6;
	cfg.depth = 3;
	cfg.gens = 100;
	cfg.secs = 0;
	cfg.asids = 8;
	cfg.tick_ms = 5;
	cfg.verbose = 0;
	const char *s = bootargs;
	while (*s) {
		while (*s == ' ')
			s++;
		const char *tok = s;
		while (*s && *s != ' ')
			s++;
		const char *eq = tok;
		while (eq < s && *eq != '=')
			eq++;
		if (eq == s)
			continue;
		long v = parse_num(eq + 1);
#define KEY(k) (eq - tok == (long)sizeof(k) - 1 && prefix(tok, k))
		if (KEY("vm")) cfg.vm = v;
		else if (KEY("rounds")) cfg.rounds = v;
		else if (KEY("pages")) cfg.pages = v;
		else if (KEY("lineages")) cfg.lineages = v;
		else if (KEY("depth")) cfg.depth = v;
		else if (KEY("gens")) cfg.gens = v;
		else if (KEY("secs")) cfg.secs = v;
		else if (KEY("asids")) cfg.asids = v;
		else if (KEY("tick_ms")) cfg.tick_ms = v;
		else if (KEY("verbose")) cfg.verbose = v;
		else if (KEY("break")) {
			if (prefix(eq + 1, "cow"))
				cfg.break_cow = true;
			else if (prefix(eq + 1, "sfence"))
				cfg.break_sfence = true;
		}
#undef KEY
	}
	if (cfg.rounds < 1) cfg.rounds = 1;
	if (cfg.pages < 1) cfg.pages = 1;
	if (cfg.pages > 64) cfg.pages = 64;
	if (cfg.lineages < 1) cfg.lineages = 1;
	if (cfg.lineages > 12) cfg.lineages = 12;
	if (cfg.depth < 0) cfg.depth = 0;
	if (cfg.depth > 3) cfg.depth = 3;
	if (cfg.asids < 2) cfg.asids = 2;
	if (cfg.tick_ms < 1) cfg.tick_ms = 1;
}

/* ---------------- boot ---------------- */

extern char _end[], _start[], _secondary[];
extern char user_image[], user_image_end[];
extern char trap_vector[];

static void hart_init(void)
{
	csr_write(stvec, (uint64_t)trap_vector);
	csr_write(sscratch, 0);
	vm_hart_init();
	csr_set(sie, SIE_STIE);
	steal_init();
	timer_arm();
	__atomic_fetch_add(&harts_up, 1, __ATOMIC_SEQ_CST);
}

void secondary_main(uint64_t hartid)
{
	struct cpu *c = &cpus[hartid];
	__asm__ volatile("mv tp, %0" :: "r"(c));
	hart_init();
	scheduler();
}

void kmain(uint64_t hartid, void *dtb)
{
	struct cpu *c = &cpus[hartid];
	__asm__ volatile("mv tp, %0" :: "r"(c));
	for (int i = 0; i < MAX_HARTS; i++)
		cpus[i].hartid = (uint64_t)i;
	uint64_t dtb_size = parse_fdt(dtb);
	parse_bootargs();
	kprintf("kernel: tandem guest kernel, hart %lu of %d, RAM %lu MiB at %p, timebase %lu Hz\n",
		hartid, nharts, ram_size >> 20, (void *)ram_base, timebase_hz);
	kprintf("kernel: bootargs '%s': vm=%ld rounds=%ld pages=%ld lineages=%ld depth=%ld gens=%ld secs=%ld asids=%ld tick_ms=%ld%s%s\n",
		bootargs, cfg.vm, cfg.rounds, cfg.pages, cfg.lineages, cfg.depth, cfg.gens, cfg.secs,
		cfg.asids, cfg.tick_ms, cfg.break_cow ? " BREAK=cow" : "",
		cfg.break_sfence ? " BREAK=sfence" : "");
	if (!ram_size || !nharts)
		panic("device tree without /memory or /cpus");
	uint64_t kend = ((uint64_t)_end + PGSIZE - 1) & ~(PGSIZE - 1);
	uint64_t dlo = (uint64_t)dtb & ~(PGSIZE - 1);
	uint64_t dhi = ((uint64_t)dtb + dtb_size + PGSIZE - 1) & ~(PGSIZE - 1);
	kalloc_init(kend, ram_base + ram_size, dlo, dhi);
	vm_init(ram_base, ram_base + ram_size);
	hart_init();
	proc_init(user_image, (uint64_t)(user_image_end - user_image));
	boot_free_pages = kalloc_free_pages();
	for (int i = 0; i < nharts; i++) {
		if (hart_ids[i] == hartid || hart_ids[i] >= MAX_HARTS)
			continue;
		long e = sbi_hart_start(hart_ids[i], (uint64_t)_secondary, 0);
		if (e)
			kprintf("kernel: hart_start(%lu) failed: %ld\n", hart_ids[i], e);
	}
	scheduler();
}

/* Called on the hart where init (pid 1) exited, after it freed its
 * memory: every other process is gone, so every page must be free. */
void final_report(int init_status)
{
	uint64_t now = rdtime();
	uint64_t freep = kalloc_free_pages();
	/* init's own pages were counted as in use at boot_free_pages */
	if (freep < boot_free_pages) {
		kprintf("kernel: FAILURE: %lu pages not returned (free %lu, at start %lu)\n",
			boot_free_pages - freep, freep, boot_free_pages);
		COUNT(failures, 1);
	}
	if (init_status != 0) {
		kprintf("kernel: FAILURE: init exited with status %d\n", init_status);
		if (!cnt.failures)
			COUNT(failures, 1);
	}
	uint64_t ms = now / (timebase_hz / 1000);
	kprintf("kernel: %s vm=%ld harts=%d procs=%lu forks=%lu cow=%lu pgfaults=%lu spurious=%lu ctxsw=%lu "
		"asids=%ld asid_allocs=%lu asid_rollovers=%lu sfences=%lu rfences=%lu rounds=%lu probes=%lu "
		"kills=%lu syscalls=%lu ticks=%lu sta=%d steal_reads=%lu steal_retries=%lu steal_ns=%lu "
		"ms=%lu failures=%lu\n",
		cnt.failures ? "FAILED" : "OK", cfg.vm, harts_up, cnt.procs, cnt.forks, cnt.cow, cnt.pgfaults,
		cnt.spurious, cnt.ctxsw, cfg.asids, cnt.asid_allocs, cnt.asid_rollovers, cnt.sfences,
		cnt.rfences, cnt.rounds, cnt.probes, cnt.kills, cnt.syscalls, cnt.ticks, sta_harts,
		cnt.steal_reads, cnt.steal_retries, steal_total_ns(), ms, cnt.failures);
	sbi_shutdown(cnt.failures != 0);
}
