/* guests/kernel: physical page allocator with reference counts.
 *
 * Pages never handed out yet are taken in address order (a bump
 * pointer, so boot touches no page); freed pages form a FIFO (freed at
 * the tail, taken at the head once the bump pointer has reached the end
 * of RAM). Over a long run the workload's pages thus move through all
 * of RAM rather than reusing a few hot frames: the host sees the whole
 * guest RAM in use (and must swap it under --host-mem). Each page has a
 * 32-bit reference count (AMOs); page_put frees at zero. */
#include "kernel.h"

struct freepage { struct freepage *next; };

static struct spinlock lock;
static struct freepage *head, *tail;
static uint64_t nfree;
static uint32_t *refs;
static uint64_t base, limit;
static uint64_t bump, hole_start, hole_end;   /* never-used pages: [bump, limit) minus the hole */

static void push(uint64_t pa)
{
	struct freepage *f = (struct freepage *)pa;
	f->next = NULL;
	if (tail)
		tail->next = f;
	else
		head = f;
	tail = f;
	nfree++;
}

void kalloc_init(uint64_t start, uint64_t end, uint64_t hole_lo, uint64_t hole_hi)
{
	base = start;
	limit = end;
	uint64_t npages = (end - start) >> PGSHIFT;
	refs = (uint32_t *)start;
	uint64_t first = start + ((npages * sizeof(uint32_t) + PGSIZE - 1) & ~(PGSIZE - 1));
	memset(refs, 0, npages * sizeof(uint32_t));
	bump = first;
	hole_start = hole_lo;
	hole_end = hole_hi;
	for (uint64_t pa = first; pa + PGSIZE <= end; pa += PGSIZE)
		if (pa + PGSIZE <= hole_lo || pa >= hole_hi)
			nfree++;
	kprintf("kernel: %lu free pages (%lu MiB) from %p\n", nfree, nfree >> 8, (void *)first);
}

static uint32_t *ref(uint64_t pa)
{
	if (pa < base || pa >= limit || (pa & (PGSIZE - 1)))
		panic("bad page %p", (void *)pa);
	return &refs[(pa - base) >> PGSHIFT];
}

void *kalloc(void)
{
	acquire(&lock);
	if (bump >= hole_start && bump < hole_end)
		bump = hole_end;
	struct freepage *f = NULL;
	if (bump + PGSIZE <= limit) {
		f = (struct freepage *)bump;
		bump += PGSIZE;
		nfree--;
	} else if ((f = head)) {
		head = f->next;
		if (!head)
			tail = NULL;
		nfree--;
	}
	release(&lock);
	if (!f)
		return NULL;
	uint32_t *r = ref((uint64_t)f);
	if (*r)
		panic("free page %p has %u references", (void *)f, *r);
	*r = 1;
	uint64_t *w = (uint64_t *)f;
	for (unsigned i = 0; i < PGSIZE / 8; i++)
		w[i] = 0;
	return f;
}

void page_get(uint64_t pa)
{
	__atomic_fetch_add(ref(pa), 1, __ATOMIC_SEQ_CST);
}

uint32_t page_refs(uint64_t pa)
{
	return __atomic_load_n(ref(pa), __ATOMIC_SEQ_CST);
}

void page_put(uint64_t pa)
{
	uint32_t old = __atomic_fetch_sub(ref(pa), 1, __ATOMIC_SEQ_CST);
	if (old == 0)
		panic("page %p freed twice", (void *)pa);
	if (old == 1) {
		acquire(&lock);
		push(pa);
		release(&lock);
	}
}

uint64_t kalloc_free_pages(void)
{
	acquire(&lock);
	uint64_t n = nfree;
	release(&lock);
	return n;
}
