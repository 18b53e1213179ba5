/* guests/kernel: processes, the scheduler, traps and system calls.
 *
 * One table of NPROC processes and one run queue (the table itself,
 * scanned round robin) under sched_lock, an AMO spinlock; every hart
 * runs scheduler() and takes whichever process is runnable. A timer
 * tick (SBI set_timer, every tick_ms) preempts U code. The kernel runs
 * with sstatus.SIE clear; only the idle loop opens it around wfi. */
#include "kernel.h"

struct trapframe { uint64_t x[32]; uint64_t epc, ksp, ktp; };
_Static_assert(__builtin_offsetof(struct trapframe, epc) == 256, "TF_EPC");
_Static_assert(__builtin_offsetof(struct trapframe, ksp) == 264, "TF_KSP");
_Static_assert(__builtin_offsetof(struct trapframe, ktp) == 272, "TF_KTP");
_Static_assert(__builtin_offsetof(struct cpu, hartid) == 0, "cpu.hartid");

enum pstate { UNUSED, EMBRYO, RUNNABLE, RUNNING, SLEEPING, ZOMBIE };

struct proc {
	struct trapframe tf;
	enum pstate state;
	int pid;
	struct proc *parent;
	int xstatus;
	void *chan;
	struct mm mm;
	struct context ctx;
	uint64_t kstack_top;
};

static struct proc procs[NPROC];
static char kstacks[NPROC][KSTACK_SIZE] __attribute__((aligned(16)));
static struct spinlock sched_lock;
static int next_pid = 1;
static int rr;
static struct proc *initproc;

void swtch(struct context *old, struct context *new);
void user_return(struct trapframe *tf) __attribute__((noreturn));
static void exit_proc(int status) __attribute__((noreturn));

static struct proc *myproc(void) { return mycpu()->proc; }

void timer_arm(void)
{
	struct cpu *c = mycpu();
	c->next_timer = rdtime() + timebase_hz * (uint64_t)cfg.tick_ms / 1000;
	sbi_set_timer(c->next_timer);
}

static void usertrapret(void) __attribute__((noreturn));
static void usertrapret(void)
{
	struct proc *p = myproc();
	csr_clear(sstatus, SSTATUS_SPP);
	csr_set(sstatus, SSTATUS_SPIE);
	p->tf.ksp = p->kstack_top;
	p->tf.ktp = (uint64_t)mycpu();
	user_return(&p->tf);
}

static void forkret(void)
{
	release(&sched_lock);
	usertrapret();
}

/* Under sched_lock. */
static struct proc *allocproc(void)
{
	for (int i = 0; i < NPROC; i++) {
		struct proc *p = &procs[i];
		if (p->state != UNUSED)
			continue;
		memset(p, 0, sizeof *p);
		p->state = EMBRYO;
		p->pid = next_pid++;
		p->kstack_top = (uint64_t)kstacks[i + 1];
		p->ctx.ra = (uint64_t)forkret;
		p->ctx.sp = p->kstack_top;
		return p;
	}
	return NULL;
}

void proc_init(const void *image, uint64_t len)
{
	acquire(&sched_lock);
	struct proc *p = allocproc();
	release(&sched_lock);
	if (!p || mm_create(&p->mm) < 0)
		panic("no memory for init");
	uint64_t npages = (len + PGSIZE - 1) / PGSIZE;
	const uint64_t rwx = PTE_R | PTE_W | PTE_X | PTE_U | PTE_SWW;
	if (mm_alloc_range(&p->mm, USER_BASE, npages * PGSIZE, rwx) < 0)
		panic("no memory for init's image");
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t *pte = mm_walk(&p->mm, USER_BASE + i * PGSIZE, false);
		uint64_t n = len - i * PGSIZE < PGSIZE ? len - i * PGSIZE : PGSIZE;
		memcpy((void *)PTE2PA(*pte), (const char *)image + i * PGSIZE, n);
	}
	__asm__ volatile("fence.i");
	p->mm.heap_base = p->mm.brk = USER_BASE + npages * PGSIZE;
	if (mm_alloc_range(&p->mm, USTACK_TOP - USTACK_PAGES * PGSIZE, USTACK_PAGES * PGSIZE,
			   PTE_R | PTE_W | PTE_U | PTE_SWW) < 0)
		panic("no memory for init's stack");
	p->tf.epc = USER_BASE;
	p->tf.x[2] = USTACK_TOP;
	initproc = p;
	COUNT(procs, 1);
	acquire(&sched_lock);
	p->state = RUNNABLE;
	release(&sched_lock);
}

/* ---------------- scheduling ---------------- */

void scheduler(void)
{
	struct cpu *c = mycpu();
	for (;;) {
		acquire(&sched_lock);
		struct proc *p = NULL;
		for (int i = 0; i < NPROC; i++) {
			struct proc *q = &procs[(rr + i) % NPROC];
			if (q->state == RUNNABLE) {
				p = q;
				rr = (rr + i + 1) % NPROC;
				break;
			}
		}
		if (p) {
			p->state = RUNNING;
			c->proc = p;
			switch_mm(&p->mm);
			COUNT(ctxsw, 1);
			swtch(&c->ctx, &p->ctx);
			c->proc = NULL;
			switch_kernel_mm();
			release(&sched_lock);
		} else {
			release(&sched_lock);
			csr_set(sstatus, SSTATUS_SIE);
			__asm__ volatile("wfi");
			csr_clear(sstatus, SSTATUS_SIE);
		}
	}
}

/* Under sched_lock, with the state already changed. */
static void sched(void)
{
	struct proc *p = myproc();
	swtch(&p->ctx, &mycpu()->ctx);
}

static void yield(void)
{
	acquire(&sched_lock);
	myproc()->state = RUNNABLE;
	sched();
	release(&sched_lock);
}

static void wakeup_locked(struct proc *p)
{
	if (p && p->state == SLEEPING && p->chan == p)
		p->state = RUNNABLE;
}

/* ---------------- process calls ---------------- */

static long do_fork(void)
{
	struct proc *p = myproc();
	acquire(&sched_lock);
	struct proc *np = allocproc();
	release(&sched_lock);
	if (!np)
		return -1;
	if (mm_create(&np->mm) < 0 || mm_fork(&p->mm, &np->mm) < 0) {
		mm_destroy(&np->mm);
		acquire(&sched_lock);
		np->state = UNUSED;
		release(&sched_lock);
		return -1;
	}
	np->tf = p->tf;
	np->tf.x[10] = 0;
	int pid = np->pid;
	COUNT(forks, 1);
	COUNT(procs, 1);
	acquire(&sched_lock);
	np->parent = p;
	np->state = RUNNABLE;
	release(&sched_lock);
	return pid;
}

static void exit_proc(int status)
{
	struct proc *p = myproc();
	switch_kernel_mm();      /* never free a table satp points to */
	mm_destroy(&p->mm);
	if (p == initproc)
		final_report(status);
	acquire(&sched_lock);
	for (int i = 0; i < NPROC; i++)
		if (procs[i].parent == p) {
			procs[i].parent = initproc;
			if (procs[i].state == ZOMBIE)
				wakeup_locked(initproc);
		}
	p->xstatus = status;
	p->state = ZOMBIE;
	wakeup_locked(p->parent);
	sched();
	panic("zombie ran");
}

static long do_wait(long *status)
{
	struct proc *p = myproc();
	acquire(&sched_lock);
	for (;;) {
		bool kids = false;
		for (int i = 0; i < NPROC; i++) {
			struct proc *q = &procs[i];
			if (q->parent != p)
				continue;
			kids = true;
			if (q->state == ZOMBIE) {
				long pid = q->pid;
				*status = q->xstatus;
				q->parent = NULL;
				q->state = UNUSED;
				release(&sched_lock);
				return pid;
			}
		}
		if (!kids) {
			release(&sched_lock);
			return -1;
		}
		p->chan = p;
		p->state = SLEEPING;
		sched();
		p->chan = NULL;
	}
}

static void kill_proc(uint64_t scause, uint64_t stval)
{
	struct proc *p = myproc();
	COUNT(kills, 1);
	if (cfg.verbose)
		kprintf("kernel: pid %d killed: scause %lu stval %p sepc %p\n", p->pid, scause,
			(void *)stval, (void *)p->tf.epc);
	exit_proc(WSTAT_KILLED | (int)scause);
}

static bool user_range(uint64_t va, uint64_t len, uint64_t lo, uint64_t hi)
{
	return !(va & (PGSIZE - 1)) && !(len & (PGSIZE - 1)) && len && va >= lo && va + len <= hi &&
	       va + len > va;
}

static long do_sbrk(long delta)
{
	struct mm *mm = &myproc()->mm;
	uint64_t old = mm->brk, new = old + (uint64_t)delta;
	if (new < mm->heap_base || new >= MMAP_BASE)
		return -1;
	uint64_t oldtop = (old + PGSIZE - 1) & ~(PGSIZE - 1), newtop = (new + PGSIZE - 1) & ~(PGSIZE - 1);
	if (newtop > oldtop) {
		if (mm_alloc_range(mm, oldtop, newtop - oldtop, PTE_R | PTE_W | PTE_U | PTE_SWW) < 0)
			return -1;
	} else if (newtop < oldtop) {
		mm_unmap_range(mm, newtop, oldtop - newtop, false);
	}
	mm->brk = new;
	return (long)old;
}

static void syscall(struct proc *p)
{
	uint64_t *a = &p->tf.x[10];
	long r = -1;
	COUNT(syscalls, 1);
	switch (p->tf.x[17]) {
	case SYS_EXIT:
		exit_proc((int)(a[0] & 0xff));
	case SYS_FORK:
		r = do_fork();
		break;
	case SYS_WAIT: {
		long st = 0;
		r = do_wait(&st);
		a[1] = (uint64_t)st;
		break;
	}
	case SYS_YIELD:
		yield();
		r = 0;
		break;
	case SYS_SBRK:
		r = do_sbrk((long)a[0]);
		break;
	case SYS_MMAP: {
		uint64_t perm = PTE_U | PTE_R;
		if (a[2] & PROT_WRITE)
			perm |= PTE_W | PTE_SWW;
		if (a[2] & PROT_EXEC)
			perm |= PTE_X;
		if ((a[2] & PROT_READ) && user_range(a[0], a[1], MMAP_BASE, MMAP_END) &&
		    mm_alloc_range(&p->mm, a[0], a[1], perm) == 0)
			r = (long)a[0];
		break;
	}
	case SYS_MUNMAP:
		if (user_range(a[0], a[1], MMAP_BASE, MMAP_END))
			r = mm_unmap_range(&p->mm, a[0], a[1], true);
		break;
	case SYS_MPROTECT:
		if (user_range(a[0], a[1], MMAP_BASE, MMAP_END))
			r = mm_protect_range(&p->mm, a[0], a[1], a[2]);
		break;
	case SYS_WRITE: {
		char buf[256];
		uint64_t n = a[1] < sizeof buf ? a[1] : sizeof buf;
		if (mm_copyin(&p->mm, buf, a[0], n) == 0) {
			console_write(buf, (int)n);
			r = (long)n;
		}
		break;
	}
	case SYS_GETPID:
		r = p->pid;
		break;
	case SYS_INFO:
		switch (a[0]) {
		case INFO_VM: r = cfg.vm; break;
		case INFO_ROUNDS: r = cfg.rounds; break;
		case INFO_PAGES: r = cfg.pages; break;
		case INFO_LINEAGES: r = cfg.lineages; break;
		case INFO_DEPTH: r = cfg.depth; break;
		case INFO_GENS: r = cfg.gens; break;
		case INFO_SECS: r = cfg.secs; break;
		case INFO_TIME_MS: r = (long)(rdtime() / (timebase_hz / 1000)); break;
		case INFO_NHARTS: r = nharts; break;
		case INFO_VERBOSE: r = cfg.verbose; break;
		}
		break;
	case SYS_COUNT:
		r = 0;
		if (a[0] == CNT_ROUND)
			COUNT(rounds, a[1]);
		else if (a[0] == CNT_FAILURE)
			COUNT(failures, a[1]);
		else if (a[0] == CNT_PROBE)
			COUNT(probes, a[1]);
		break;
	}
	a[0] = (uint64_t)r;
}

int mm_access_fault(struct mm *mm, uint64_t va, uint64_t need);

void usertrap(void)
{
	struct proc *p = myproc();
	uint64_t scause = csr_read(scause), stval = csr_read(stval);
	if (!p)
		panic("trap from U without a process");
	if (scause == 8) {
		p->tf.epc += 4;
		syscall(p);
	} else if (scause == ((1UL << 63) | 5)) {
		COUNT(ticks, 1);
		timer_arm();
		steal_check();
		yield();
	} else if (scause == 15) {
		COUNT(pgfaults, 1);
		if (mm_store_fault(&p->mm, stval) < 0)
			kill_proc(scause, stval);
	} else if (scause == 13 || scause == 12) {
		COUNT(pgfaults, 1);
		if (mm_access_fault(&p->mm, stval, scause == 13 ? PTE_R : PTE_X) < 0)
			kill_proc(scause, stval);
	} else {
		kill_proc(scause, stval);
	}
	usertrapret();
}

void kerneltrap(uint64_t scause, uint64_t sepc, uint64_t stval)
{
	if (scause == ((1UL << 63) | 5)) {
		COUNT(ticks, 1);
		timer_arm();
		steal_check();
		return;
	}
	panic("kernel trap: scause %lu sepc %p stval %p", scause, (void *)sepc, (void *)stval);
}
