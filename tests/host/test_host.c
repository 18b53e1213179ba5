/* SPDX-License-Identifier: MIT */
/*
 * test_host.c - the primary MMU (src/host) through its public calls:
 * copy-on-write fork, MADV_DONTNEED, protections, VMA split/merge, page-table
 * freeing, the shared zero page, rmap, GUP, mmap placement, bad input, out
 * of memory, multi-node hosts and the map-count limit.
 *
 * Each test builds its own host (fixture in tests/harness/host_fixture.h),
 * runs the operations, checks host_check_invariants() after every step, and
 * its teardown asserts that every frame and page-table page came back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/host.h"
#include "host/mm_types.h"
#include "host/internal.h"
#include "harness/host_fixture.h"

#define P     PAGE_SIZE
#define BASE  0x100000000ULL          /* 4 GiB: 1 GiB aligned */
#define MB    (1ULL << 20)
#define GB    (1ULL << 30)

#define RW_FLAGS (VM_READ | VM_WRITE)

/* ---- fork and copy-on-write ------------------------------------------- */

/* The parent writes a shared page first: it gets a copy (COW_BREAK), then the
 * child, now sole owner of the old frame, reuses it (COW_REUSE). */
static void test_fork_parent_writes_first(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t);

	ht_mmap(p, BASE, 4 * P, HT_RW, HT_FIXED);
	ht_fill(p, BASE, 4, 'a');
	pfn_t orig = ht_pfn(p, BASE);
	uint64_t data0 = ht_data_frames(h);

	struct mm *c = ht_fork(t, p);
	/* Nothing copied: the child shares every frame, write-protected. */
	assert_int_equal(ht_data_frames(h), data0);
	for (int i = 0; i < 4; i++) {
		pte_t pp = mm_lookup_pte(p, BASE + i * P), cp = mm_lookup_pte(c, BASE + i * P);

		assert_true(pte_present(pp) && pte_present(cp));
		assert_int_equal(pte_pfn(pp), pte_pfn(cp));
		assert_false(pte_write(pp));
		assert_false(pte_write(cp));
		assert_int_equal(page_count(pfn_to_page(h, pte_pfn(pp))), 2);
	}
	assert_int_equal(atomic_load(&c->rss[MM_ANONPAGES]), 4);

	uint64_t brk = ht_event(h, COW_BREAK), reuse = ht_event(h, COW_REUSE);
	ht_fill(p, BASE, 1, 'X');
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1);
	assert_int_equal(ht_event(h, COW_REUSE), reuse);
	assert_int_equal(ht_data_frames(h), data0 + 1);
	assert_int_not_equal(ht_pfn(p, BASE), orig);
	assert_int_equal(ht_pfn(c, BASE), orig);
	assert_true(pte_write(mm_lookup_pte(p, BASE)));
	ht_expect(p, BASE, 1, 'X');
	ht_expect(c, BASE, 1, 'a');

	/* The child is now the only user of the old frame: reuse, no copy. */
	ht_fill(c, BASE, 1, 'Y');
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1);
	assert_int_equal(ht_event(h, COW_REUSE), reuse + 1);
	assert_int_equal(ht_pfn(c, BASE), orig);
	assert_int_equal(ht_data_frames(h), data0 + 1);
	ht_expect(p, BASE, 1, 'X');
	ht_expect(c, BASE, 1, 'Y');

	/* The pages nobody wrote stay shared and intact. */
	ht_expect(p, BASE + P, 3, 'a' + 1);
	ht_expect(c, BASE + P, 3, 'a' + 1);
	assert_int_equal(ht_pfn(p, BASE + 3 * P), ht_pfn(c, BASE + 3 * P));
	ht_check(h);
}

static void test_fork_child_writes_first(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t);

	ht_mmap(p, BASE, 2 * P, HT_RW, HT_FIXED);
	ht_fill(p, BASE, 2, 'a');
	pfn_t orig = ht_pfn(p, BASE);
	struct mm *c = ht_fork(t, p);
	uint64_t data0 = ht_data_frames(h);
	uint64_t brk = ht_event(h, COW_BREAK), reuse = ht_event(h, COW_REUSE);

	ht_fill(c, BASE, 1, 'C');
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1);
	assert_int_equal(ht_data_frames(h), data0 + 1);
	assert_int_equal(ht_pfn(p, BASE), orig);
	assert_int_not_equal(ht_pfn(c, BASE), orig);
	ht_expect(c, BASE, 1, 'C');
	ht_expect(p, BASE, 1, 'a');

	ht_fill(p, BASE, 1, 'P');
	assert_int_equal(ht_event(h, COW_REUSE), reuse + 1);
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1);
	assert_int_equal(ht_pfn(p, BASE), orig);
	ht_expect(c, BASE, 1, 'C');
	ht_expect(p, BASE, 1, 'P');

	/* Sub-page write: the copy carries the rest of the page over. */
	ht_write_byte(c, BASE + P + 100, 'z');
	assert_int_equal(ht_read_byte(c, BASE + P + 100), 'z');
	assert_int_equal(ht_read_byte(c, BASE + P + 99), 'a' + 1);
	assert_int_equal(ht_read_byte(c, BASE + 2 * P - 1), 'a' + 1);
	assert_int_equal(ht_read_byte(p, BASE + P + 100), 'a' + 1);
	ht_check(h);
}

/* A -> B -> C: every generation keeps its own view. */
static void test_fork_three_generations(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *a = ht_mm(t);

	ht_mmap(a, BASE, 3 * P, HT_RW, HT_FIXED);
	ht_fill(a, BASE, 3, 'a');
	struct mm *b = ht_fork(t, a);
	ht_fill(b, BASE, 1, 'B');               /* b: page 0 private */
	struct mm *c = ht_fork(t, b);

	/* Page 1 is shared by all three generations. */
	struct page *pg1 = ht_page(a, BASE + P);
	assert_int_equal(page_mapcount(pg1), 3);
	assert_int_equal(page_count(pg1), 3);
	assert_true(page_rmap_contains(pg1, a, BASE + P));
	assert_true(page_rmap_contains(pg1, b, BASE + P));
	assert_true(page_rmap_contains(pg1, c, BASE + P));
	/* Page 0 of b is shared by b and c only. */
	assert_int_equal(page_mapcount(ht_page(b, BASE)), 2);
	assert_int_equal(page_mapcount(ht_page(a, BASE)), 1);

	ht_fill(c, BASE + P, 1, 'C');           /* c: page 1 private */
	ht_check(h);
	ht_fill(a, BASE + 2 * P, 1, 'A');       /* a: page 2 private */
	ht_check(h);
	assert_int_equal(page_mapcount(pg1), 2);

	/*            page 0  page 1  page 2 */
	/* a:         'a'     'b'     'A'    */
	/* b:         'B'     'b'     'c'    */
	/* c:         'B'     'C'     'c'    */
	assert_int_equal(ht_read_byte(a, BASE), 'a');
	assert_int_equal(ht_read_byte(a, BASE + P), 'b');
	assert_int_equal(ht_read_byte(a, BASE + 2 * P), 'A');
	assert_int_equal(ht_read_byte(b, BASE), 'B');
	assert_int_equal(ht_read_byte(b, BASE + P), 'b');
	assert_int_equal(ht_read_byte(b, BASE + 2 * P), 'c');
	assert_int_equal(ht_read_byte(c, BASE), 'B');
	assert_int_equal(ht_read_byte(c, BASE + P), 'C');
	assert_int_equal(ht_read_byte(c, BASE + 2 * P), 'c');

	/* The middle generation exits: c becomes sole owner of what it
	 * shared with b, so its next writes reuse instead of copying. */
	ht_mmput(t, b);
	uint64_t brk = ht_event(h, COW_BREAK), reuse = ht_event(h, COW_REUSE);
	uint64_t data0 = ht_data_frames(h);
	ht_fill(c, BASE, 1, 'x');
	ht_fill(c, BASE + 2 * P, 1, 'y');
	assert_int_equal(ht_event(h, COW_REUSE), reuse + 2);
	assert_int_equal(ht_event(h, COW_BREAK), brk);
	assert_int_equal(ht_data_frames(h), data0);
	assert_int_equal(ht_read_byte(a, BASE), 'a');
	assert_int_equal(ht_read_byte(a, BASE + 2 * P), 'A');
	assert_int_equal(ht_read_byte(c, BASE), 'x');
	assert_int_equal(ht_read_byte(c, BASE + 2 * P), 'y');
	ht_check(h);
}

/* The child exits before anyone writes: the parent's write-protected PTEs
 * are reused in place, no frame is allocated. The zero page is never
 * reused: writing it always allocates. */
static void test_fork_child_exit_cow_reuse(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t);
	pfn_t pfns[4];

	ht_mmap(p, BASE, 5 * P, HT_RW, HT_FIXED);
	ht_fill(p, BASE, 4, 'a');
	assert_int_equal(ht_read_byte(p, BASE + 4 * P), 0); /* zero page */
	for (int i = 0; i < 4; i++)
		pfns[i] = ht_pfn(p, BASE + i * P);
	uint64_t frames0 = host_frames_in_use(h);

	struct mm *c = ht_fork(t, p);
	ht_mmput(t, c);
	assert_int_equal(host_frames_in_use(h), frames0);
	for (int i = 0; i < 4; i++) {
		assert_false(pte_write(mm_lookup_pte(p, BASE + i * P)));
		assert_int_equal(page_count(ht_page(p, BASE + i * P)), 1);
	}

	uint64_t brk = ht_event(h, COW_BREAK), reuse = ht_event(h, COW_REUSE);
	ht_fill(p, BASE, 4, 'A');
	assert_int_equal(ht_event(h, COW_REUSE), reuse + 4);
	assert_int_equal(ht_event(h, COW_BREAK), brk);
	assert_int_equal(host_frames_in_use(h), frames0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(ht_pfn(p, BASE + i * P), pfns[i]);
		assert_true(pte_write(mm_lookup_pte(p, BASE + i * P)));
	}
	ht_expect(p, BASE, 4, 'A');

	ht_write_byte(p, BASE + 4 * P, 1);
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1);
	assert_int_equal(host_frames_in_use(h), frames0 + 1);
	assert_int_equal(ht_read_byte(p, BASE + 4 * P + 1), 0);
	ht_check(h);
}

static void test_fork_rmap(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t);

	ht_mmap(p, BASE, 2 * P, HT_RW, HT_FIXED);
	ht_fill(p, BASE, 1, 'a');
	assert_int_equal(ht_read_byte(p, BASE + P), 0);
	struct page *pg = ht_page(p, BASE);
	assert_int_equal(page_mapcount(pg), 1);
	assert_true(page_rmap_contains(pg, p, BASE));
	assert_true(PageFlag(pg, PG_anon));

	struct mm *c = ht_fork(t, p);
	assert_ptr_equal(ht_page(c, BASE), pg);
	assert_int_equal(page_mapcount(pg), 2);
	assert_int_equal(page_rmap_count(pg), 2);
	assert_int_equal(page_count(pg), 2);
	assert_true(page_rmap_contains(pg, p, BASE));
	assert_true(page_rmap_contains(pg, c, BASE));
	assert_false(page_rmap_contains(pg, c, BASE + P));

	/* The zero page is mapped by both but never refcounted or rmapped. */
	struct page *zp = ht_page(c, BASE + P);
	assert_true(pte_special(mm_lookup_pte(c, BASE + P)));
	assert_true(PageFlag(zp, PG_reserved));
	assert_int_equal(page_mapcount(zp), 0);
	assert_null(zp->rmap);

	/* The child's COW break moves its rmap entry to the new frame. */
	ht_fill(c, BASE, 1, 'c');
	struct page *npg = ht_page(c, BASE);
	assert_ptr_not_equal(npg, pg);
	assert_int_equal(page_mapcount(pg), 1);
	assert_true(page_rmap_contains(pg, p, BASE));
	assert_false(page_rmap_contains(pg, c, BASE));
	assert_int_equal(page_mapcount(npg), 1);
	assert_true(page_rmap_contains(npg, c, BASE));
	assert_false(page_rmap_contains(npg, p, BASE));

	ht_mmput(t, c);
	assert_int_equal(page_mapcount(pg), 1);
	assert_int_equal(page_rmap_count(pg), 1);
	ht_check(h);
}

/* fork copies protections: read-only and PROT_NONE areas stay shared, and
 * an mprotect back to writable still copies on write. */
static void test_fork_protections(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t);

	ht_mmap(p, BASE, 4 * P, HT_RW, HT_FIXED);
	ht_fill(p, BASE, 4, 'a');
	assert_int_equal(mm_mprotect(p, BASE, 2 * P, PROT_READ), 0);
	assert_int_equal(mm_mprotect(p, BASE + 2 * P, 2 * P, PROT_NONE), 0);
	ht_check(h);

	struct mm *c = ht_fork(t, p);
	assert_int_equal(c->nr_vmas, 2);
	ht_expect_vma(c, 0, BASE, BASE + 2 * P, VM_READ);
	ht_expect_vma(c, 1, BASE + 2 * P, BASE + 4 * P, 0);
	assert_int_equal(ht_pfn(c, BASE + 3 * P), ht_pfn(p, BASE + 3 * P));
	assert_int_equal(mm_write(c, BASE, "x", 1), -EFAULT);
	char ch;
	assert_int_equal(mm_read(c, BASE + 2 * P, &ch, 1), -EFAULT);

	assert_int_equal(mm_mprotect(p, BASE, 4 * P, HT_RW), 0);
	ht_check(h);
	assert_int_equal(p->nr_vmas, 1);
	uint64_t brk = ht_event(h, COW_BREAK);
	ht_fill(p, BASE, 4, 'P');
	assert_int_equal(ht_event(h, COW_BREAK), brk + 4);
	assert_int_equal(mm_mprotect(c, BASE, 4 * P, PROT_READ), 0);
	ht_check(h);
	ht_expect(c, BASE, 4, 'a');
	ht_expect(p, BASE, 4, 'P');
}

/* ---- MADV_DONTNEED ---------------------------------------------------- */

static void test_dontneed(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);

	ht_mmap(mm, BASE, 8 * P, HT_RW, HT_FIXED);
	ht_fill(mm, BASE, 8, 'a');
	uint64_t data0 = ht_data_frames(h), unmap0 = ht_event(h, PGUNMAP);
	uint64_t frames0 = host_frames_in_use(h);

	/* Drop the middle: the frames go back, the edges stay. */
	assert_int_equal(mm_madvise(mm, BASE + 2 * P, 4 * P, MADV_DONTNEED), 0);
	ht_check(h);
	assert_int_equal(host_frames_in_use(h), frames0 - 4);
	assert_int_equal(ht_data_frames(h), data0 - 4);
	assert_int_equal(ht_event(h, PGUNMAP), unmap0 + 4);
	assert_int_equal(atomic_load(&mm->rss[MM_ANONPAGES]), 4);
	assert_int_equal(mm->nr_vmas, 1);
	ht_expect_vma(mm, 0, BASE, BASE + 8 * P, RW_FLAGS);
	for (int i = 2; i < 6; i++)
		assert_int_equal(mm_lookup_pte(mm, BASE + i * P), 0);
	ht_expect(mm, BASE, 2, 'a');
	ht_expect_fill(mm, BASE + 6 * P, 2, 'a' + 6, 1);
	ht_expect_zero(mm, BASE + 2 * P, 4);
	assert_int_equal(ht_data_frames(h), data0 - 4); /* zero page reads */
	ht_check(h);

	/* An unaligned length rounds up to whole pages. */
	assert_int_equal(mm_madvise(mm, BASE + 6 * P, 1, MADV_DONTNEED), 0);
	ht_check(h);
	ht_expect_zero(mm, BASE + 6 * P, 1);
	ht_expect_fill(mm, BASE + 7 * P, 1, 'a' + 7, 1);

	/* A write after DONTNEED gets a fresh zeroed page. */
	ht_write_byte(mm, BASE + 3 * P + 5, 'q');
	assert_int_equal(ht_read_byte(mm, BASE + 3 * P + 5), 'q');
	assert_int_equal(ht_read_byte(mm, BASE + 3 * P + 4), 0);

	/* All of it. */
	assert_int_equal(mm_madvise(mm, BASE, 8 * P, MADV_DONTNEED), 0);
	ht_check(h);
	assert_int_equal(ht_data_frames(h), 0);
	assert_int_equal(atomic_load(&mm->rss[MM_ANONPAGES]), 0);
	ht_expect_zero(mm, BASE, 8);

	/* A range with a hole: -ENOMEM and nothing dropped. */
	ht_fill(mm, BASE, 8, 'b');
	assert_int_equal(mm_munmap(mm, BASE + 4 * P, P), 0);
	ht_check(h);
	uint64_t data1 = ht_data_frames(h);
	assert_int_equal(mm_madvise(mm, BASE, 8 * P, MADV_DONTNEED), -ENOMEM);
	ht_check(h);
	assert_int_equal(ht_data_frames(h), data1);
	ht_expect(mm, BASE, 4, 'b');
	/* The no-op advice values are accepted and drop nothing. */
	assert_int_equal(mm_madvise(mm, BASE, 4 * P, MADV_NORMAL), 0);
	assert_int_equal(mm_madvise(mm, BASE, 4 * P, MADV_WILLNEED), 0);
	ht_expect(mm, BASE, 4, 'b');
}

/* DONTNEED of a COW-shared page drops only the caller's mapping. */
static void test_dontneed_cow_shared(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t);

	ht_mmap(p, BASE, 2 * P, HT_RW, HT_FIXED);
	ht_fill(p, BASE, 2, 'a');
	struct mm *c = ht_fork(t, p);
	struct page *pg = ht_page(p, BASE);
	uint64_t data0 = ht_data_frames(h);

	assert_int_equal(mm_madvise(p, BASE, 2 * P, MADV_DONTNEED), 0);
	ht_check(h);
	assert_int_equal(ht_data_frames(h), data0);
	assert_int_equal(page_mapcount(pg), 1);
	assert_true(page_rmap_contains(pg, c, BASE));
	assert_false(page_rmap_contains(pg, p, BASE));
	ht_expect_zero(p, BASE, 2);
	ht_expect(c, BASE, 2, 'a');

	/* The child's write now reuses its frame. */
	uint64_t reuse = ht_event(h, COW_REUSE);
	ht_fill(c, BASE, 1, 'c');
	assert_int_equal(ht_event(h, COW_REUSE), reuse + 1);
	assert_ptr_equal(ht_page(c, BASE), pg);
}

/* ---- protections ------------------------------------------------------ */

static void test_protections(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	char buf[16];
	struct page *pg;
	bool w;

	/* A read-only area reads zeroes and refuses writes, allocating nothing. */
	hva_t ro = ht_mmap(mm, BASE, 2 * P, PROT_READ, HT_FIXED);
	uint64_t data0 = ht_data_frames(h);
	assert_int_equal(mm_write(mm, ro, "x", 1), -EFAULT);
	assert_int_equal(get_user_page(mm, ro, FOLL_WRITE, &pg, &w), -EFAULT);
	assert_int_equal(mm_read(mm, ro, buf, sizeof(buf)), sizeof(buf));
	assert_int_equal(buf[0], 0);
	assert_int_equal(mm_write(mm, ro + P, "x", 1), -EFAULT);
	assert_int_equal(ht_data_frames(h), data0);
	ht_check(h);

	/* Written while RW, then downgraded step by step and back. */
	hva_t rw = ht_mmap(mm, BASE + 4 * P, P, HT_RW, HT_FIXED);
	ht_fill(mm, rw, 1, 'a');
	pfn_t pfn = ht_pfn(mm, rw);

	assert_int_equal(mm_mprotect(mm, rw, P, PROT_READ), 0);
	ht_check(h);
	assert_false(pte_write(mm_lookup_pte(mm, rw)));
	assert_int_equal(mm_write(mm, rw, "x", 1), -EFAULT);
	ht_expect(mm, rw, 1, 'a');

	assert_int_equal(mm_mprotect(mm, rw, P, PROT_NONE), 0);
	ht_check(h);
	pte_t pte = mm_lookup_pte(mm, rw);
	assert_true(pte_present(pte));          /* the frame stays mapped */
	assert_false(pte_user(pte));            /* but no access */
	assert_int_equal(pte_pfn(pte), pfn);
	assert_int_equal(mm_read(mm, rw, buf, 1), -EFAULT);
	assert_int_equal(mm_write(mm, rw, "x", 1), -EFAULT);
	assert_int_equal(get_user_page(mm, rw, 0, &pg, &w), -EFAULT);

	uint64_t reuse = ht_event(h, COW_REUSE);
	assert_int_equal(mm_mprotect(mm, rw, P, HT_RW), 0);
	ht_check(h);
	assert_int_equal(mm_write(mm, rw, "x", 1), 1);
	assert_int_equal(ht_event(h, COW_REUSE), reuse + 1); /* same frame */
	assert_int_equal(ht_pfn(mm, rw), pfn);
	assert_int_equal(ht_read_byte(mm, rw), 'x');
	assert_int_equal(ht_read_byte(mm, rw + 1), 'a');
	assert_int_equal(ht_read_byte(mm, rw + P - 1), 'a');

	/* DONTNEED drops a PROT_NONE page too; restored, it reads zero. */
	uint64_t data1 = ht_data_frames(h);
	assert_int_equal(mm_mprotect(mm, rw, P, PROT_NONE), 0);
	assert_int_equal(mm_madvise(mm, rw, P, MADV_DONTNEED), 0);
	ht_check(h);
	assert_int_equal(ht_data_frames(h), data1 - 1);
	assert_int_equal(mm_mprotect(mm, rw, P, PROT_READ), 0);
	ht_expect_zero(mm, rw, 1);

	/* Write-only still counts as accessible for reads (x86 semantics). */
	hva_t wo = ht_mmap(mm, BASE + 8 * P, P, PROT_WRITE, HT_FIXED);
	assert_int_equal(mm_write(mm, wo, "w", 1), 1);
	assert_int_equal(ht_read_byte(mm, wo), 'w');
	ht_check(h);
}

/* ---- VMA split / merge ------------------------------------------------ */

static void test_munmap_split(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	char ch;

	ht_mmap(mm, BASE, 8 * P, HT_RW, HT_FIXED);
	ht_fill(mm, BASE, 8, 'a');
	uint64_t data0 = ht_data_frames(h);

	assert_int_equal(mm_munmap(mm, BASE + 3 * P, 2 * P), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 2);
	ht_expect_vma(mm, 0, BASE, BASE + 3 * P, RW_FLAGS);
	ht_expect_vma(mm, 1, BASE + 5 * P, BASE + 8 * P, RW_FLAGS);
	assert_int_equal(ht_data_frames(h), data0 - 2);
	assert_int_equal(mm_read(mm, BASE + 3 * P, &ch, 1), -EFAULT);
	assert_int_equal(mm_read(mm, BASE + 5 * P - 1, &ch, 1), -EFAULT);
	assert_int_equal(mm_write(mm, BASE + 4 * P, "x", 1), -EFAULT);
	assert_int_equal(mm_lookup_pte(mm, BASE + 3 * P), 0);
	/* A read across the hole fails; one ending just before it works. */
	char buf[2 * P];
	assert_int_equal(mm_read(mm, BASE + 2 * P, buf, 2 * P), -EFAULT);
	assert_int_equal(mm_read(mm, BASE + P, buf, 2 * P), 2 * P);
	ht_expect(mm, BASE, 3, 'a');
	ht_expect_fill(mm, BASE + 5 * P, 3, 'a' + 5, 1);

	/* Unmapping over a hole and a VMA edge. */
	assert_int_equal(mm_munmap(mm, BASE + 2 * P, 4 * P), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 2);
	ht_expect_vma(mm, 0, BASE, BASE + 2 * P, RW_FLAGS);
	ht_expect_vma(mm, 1, BASE + 6 * P, BASE + 8 * P, RW_FLAGS);
	assert_int_equal(ht_data_frames(h), data0 - 4);

	/* Unmapping nothing is not an error. */
	assert_int_equal(mm_munmap(mm, BASE + 100 * P, P), 0);
	assert_int_equal(mm->nr_vmas, 2);

	/* An unaligned length rounds up. */
	assert_int_equal(mm_munmap(mm, BASE + 6 * P, 1), 0);
	ht_check(h);
	ht_expect_vma(mm, 1, BASE + 7 * P, BASE + 8 * P, RW_FLAGS);

	assert_int_equal(mm_munmap(mm, BASE, 8 * P), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 0);
	assert_int_equal(ht_data_frames(h), 0);
	assert_int_equal(atomic_load(&mm->rss[MM_ANONPAGES]), 0);
}

static void test_mprotect_split_merge(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);

	ht_mmap(mm, BASE, 8 * P, HT_RW, HT_FIXED);
	ht_fill(mm, BASE, 8, 'a');

	assert_int_equal(mm_mprotect(mm, BASE + 2 * P, 3 * P, PROT_READ), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 3);
	ht_expect_vma(mm, 0, BASE, BASE + 2 * P, RW_FLAGS);
	ht_expect_vma(mm, 1, BASE + 2 * P, BASE + 5 * P, VM_READ);
	ht_expect_vma(mm, 2, BASE + 5 * P, BASE + 8 * P, RW_FLAGS);
	assert_int_equal(mm_write(mm, BASE + 3 * P, "x", 1), -EFAULT);
	assert_int_equal(mm_write(mm, BASE + P, "x", 1), 1);
	assert_int_equal(mm_write(mm, BASE + 5 * P, "x", 1), 1);
	assert_false(pte_write(mm_lookup_pte(mm, BASE + 2 * P)));
	assert_false(pte_write(mm_lookup_pte(mm, BASE + 4 * P)));
	assert_true(pte_write(mm_lookup_pte(mm, BASE + 5 * P)));

	/* Across two VMAs' edge. */
	assert_int_equal(mm_mprotect(mm, BASE + 4 * P, 2 * P, PROT_NONE), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 4);
	ht_expect_vma(mm, 0, BASE, BASE + 2 * P, RW_FLAGS);
	ht_expect_vma(mm, 1, BASE + 2 * P, BASE + 4 * P, VM_READ);
	ht_expect_vma(mm, 2, BASE + 4 * P, BASE + 6 * P, 0);
	ht_expect_vma(mm, 3, BASE + 6 * P, BASE + 8 * P, RW_FLAGS);

	/* Same protection again: no change, no split left behind. */
	assert_int_equal(mm_mprotect(mm, BASE + 2 * P, P, PROT_READ), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 4);

	/* Back to the original everywhere: one VMA again, data intact. */
	assert_int_equal(mm_mprotect(mm, BASE, 8 * P, HT_RW), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 1);
	ht_expect_vma(mm, 0, BASE, BASE + 8 * P, RW_FLAGS);
	assert_int_equal(ht_read_byte(mm, BASE + P), 'x');
	assert_int_equal(ht_read_byte(mm, BASE + P + 1), 'a' + 1);
	ht_expect_fill(mm, BASE + 2 * P, 3, 'a' + 2, 1);
	ht_fill(mm, BASE, 8, 'A');

	/* Middle piece downgraded and restored alone re-merges too. */
	assert_int_equal(mm_mprotect(mm, BASE + 3 * P, P, PROT_READ), 0);
	assert_int_equal(mm->nr_vmas, 3);
	assert_int_equal(mm_mprotect(mm, BASE + 3 * P, P, HT_RW), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 1);

	/* The tail. */
	assert_int_equal(mm_mprotect(mm, BASE + 6 * P, 2 * P, PROT_READ | PROT_EXEC), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 2);
	ht_expect_vma(mm, 1, BASE + 6 * P, BASE + 8 * P, VM_READ | VM_EXEC);

	/* Separate mmaps that touch merge when their flags match. */
	ht_mmap(mm, BASE + 8 * P, 2 * P, PROT_READ | PROT_EXEC, HT_FIXED);
	assert_int_equal(mm->nr_vmas, 2);
	ht_expect_vma(mm, 1, BASE + 6 * P, BASE + 10 * P, VM_READ | VM_EXEC);
	ht_mmap(mm, BASE + 10 * P, P, HT_RW, HT_FIXED);
	assert_int_equal(mm->nr_vmas, 3);
	ht_expect(mm, BASE, 8, 'A');
}

/* mprotect over a hole fails with -ENOMEM and changes nothing. */
static void test_mprotect_hole(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);

	ht_mmap(mm, BASE, 2 * P, HT_RW, HT_FIXED);
	ht_mmap(mm, BASE + 3 * P, 2 * P, HT_RW, HT_FIXED);
	ht_fill(mm, BASE, 2, 'a');
	ht_fill(mm, BASE + 3 * P, 2, 'c');

	assert_int_equal(mm_mprotect(mm, BASE, 5 * P, PROT_READ), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, BASE + P, 3 * P, PROT_NONE), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, BASE + 2 * P, 2 * P, PROT_READ), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, BASE + 5 * P, P, PROT_READ), -ENOMEM);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 2);
	ht_expect_vma(mm, 0, BASE, BASE + 2 * P, RW_FLAGS);
	ht_expect_vma(mm, 1, BASE + 3 * P, BASE + 5 * P, RW_FLAGS);
	for (int i = 0; i < 5; i++)
		if (i != 2)
			assert_true(pte_write(mm_lookup_pte(mm, BASE + i * P)));
	ht_fill(mm, BASE, 2, 'x');
	ht_fill(mm, BASE + 3 * P, 2, 'y');
	ht_expect(mm, BASE, 2, 'x');
	ht_expect(mm, BASE + 3 * P, 2, 'y');
}

/* ---- page tables ------------------------------------------------------ */

static void test_pgtables_freed(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);

	assert_int_equal(ht_pgtables(h), 1);     /* the pgd */
	struct mm *other = ht_mm(t);
	assert_int_equal(ht_pgtables(h), 2);
	ht_mmput(t, other);
	assert_int_equal(ht_pgtables(h), 1);
	assert_int_equal(host_frames_in_use(h), 1);

	/* 8 MiB at a 1 GiB boundary, one page touched per 2 MiB: one PUD
	 * table, one PMD table, four PTE tables. */
	ht_mmap(mm, BASE, 8 * MB, HT_RW, HT_FIXED);
	assert_int_equal(ht_pgtables(h), 1);     /* mmap allocates nothing */
	for (int i = 0; i < 4; i++)
		ht_write_byte(mm, BASE + i * 2 * MB + 7 * P, (unsigned char)i);
	ht_check(h);
	assert_int_equal(ht_pgtables(h), 1 + 6);
	assert_int_equal(atomic_load(&mm->nr_pgtables), 6);

	/* A read fault (zero page) needs tables too. */
	ht_mmap(mm, BASE + 600 * GB, P, PROT_READ, HT_FIXED);
	assert_int_equal(ht_read_byte(mm, BASE + 600 * GB), 0);
	assert_int_equal(ht_pgtables(h), 1 + 6 + 3);  /* new PUD, PMD, PTE */
	assert_int_equal(host_frames_in_use(h), 1 + 6 + 3 + 4);
	ht_check(h);

	/* A munmap that leaves part of a PTE table's span mapped keeps it. */
	assert_int_equal(mm_munmap(mm, BASE + 7 * P, P), 0);
	ht_check(h);
	assert_int_equal(ht_pgtables(h), 1 + 6 + 3);

	/* Unmapping a whole 2 MiB span frees its PTE table, not the PMD. */
	assert_int_equal(mm_munmap(mm, BASE + 2 * MB, 2 * MB), 0);
	ht_check(h);
	assert_int_equal(ht_pgtables(h), 1 + 5 + 3);
	assert_int_equal(ht_read_byte(mm, BASE + 4 * MB + 7 * P), 2);

	/* Unmapping the far mapping frees its whole branch. */
	assert_int_equal(mm_munmap(mm, BASE + 600 * GB, P), 0);
	ht_check(h);
	assert_int_equal(ht_pgtables(h), 1 + 5);

	/* And everything: back to the pgd alone. */
	assert_int_equal(mm_munmap(mm, BASE, 8 * MB), 0);
	ht_check(h);
	assert_int_equal(ht_pgtables(h), 1);
	assert_int_equal(atomic_load(&mm->nr_pgtables), 0);
	assert_int_equal(host_frames_in_use(h), 1);

	/* The extremes of the address space. */
	hva_t all = ht_mmap(mm, 0, TASK_SIZE - TASK_UNMAPPED_FLOOR, HT_RW, HT_PRIV);
	assert_int_equal(all, TASK_UNMAPPED_FLOOR);
	ht_write_byte(mm, TASK_UNMAPPED_FLOOR, 1);
	ht_write_byte(mm, TASK_SIZE - 1, 2);
	ht_check(h);
	assert_int_equal(ht_pgtables(h), 1 + 6);
	assert_int_equal(ht_read_byte(mm, TASK_SIZE - 1), 2);
	assert_int_equal(mm_munmap(mm, TASK_UNMAPPED_FLOOR, TASK_SIZE - TASK_UNMAPPED_FLOOR), 0);
	ht_check(h);
	assert_int_equal(ht_pgtables(h), 1);
	assert_int_equal(host_frames_in_use(h), 1);

	/* Tables of one mm are freed by its exit, not by another's munmap. */
	ht_mmap(mm, BASE, P, HT_RW, HT_FIXED);
	ht_write_byte(mm, BASE, 1);
	struct mm *c = ht_fork(t, mm);
	assert_int_equal(ht_pgtables(h), 2 * (1 + 3));
	assert_int_equal(mm_munmap(mm, BASE, P), 0);
	ht_check(h);
	assert_int_equal(ht_pgtables(h), 1 + (1 + 3));
	assert_int_equal(ht_read_byte(c, BASE), 1);
	ht_mmput(t, c);
	assert_int_equal(host_frames_in_use(h), 1);
}

/* ---- the zero page ---------------------------------------------------- */

static void test_zero_page_shared(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *a = ht_mm(t), *b = ht_mm(t);

	ht_mmap(a, BASE, 64 * P, HT_RW, HT_FIXED);
	ht_mmap(b, BASE + 8 * GB, 64 * P, HT_RW, HT_FIXED);
	uint64_t data0 = ht_data_frames(h), zp0 = ht_event(h, PGFAULT_ZERO_PAGE);

	assert_int_equal(ht_read_byte(a, BASE + 5 * P), 0);
	assert_int_equal(ht_read_byte(b, BASE + 8 * GB + 9 * P), 0);
	ht_check(h);
	pte_t pa = mm_lookup_pte(a, BASE + 5 * P), pb = mm_lookup_pte(b, BASE + 8 * GB + 9 * P);
	assert_true(pte_present(pa) && pte_present(pb));
	assert_int_equal(pte_pfn(pa), pte_pfn(pb));
	assert_true(pte_special(pa) && pte_special(pb));
	assert_false(pte_write(pa) || pte_write(pb));
	assert_true(PageFlag(pfn_to_page(h, pte_pfn(pa)), PG_reserved));
	assert_int_equal(ht_event(h, PGFAULT_ZERO_PAGE), zp0 + 2);
	assert_int_equal(ht_data_frames(h), data0);  /* only page tables */

	/* Reading the whole area maps nothing but the zero page. */
	ht_expect_zero(a, BASE, 64);
	ht_expect_zero(b, BASE + 8 * GB, 64);
	assert_int_equal(ht_data_frames(h), data0);
	assert_int_equal(atomic_load(&a->rss[MM_ANONPAGES]), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(ht_pfn(a, BASE + i * P), pte_pfn(pa));
	ht_check(h);

	/* A write allocates a private zeroed page; b keeps the zero page. */
	ht_write_byte(a, BASE + 5 * P + 3, 'w');
	ht_check(h);
	pte_t na = mm_lookup_pte(a, BASE + 5 * P);
	assert_int_not_equal(pte_pfn(na), pte_pfn(pa));
	assert_false(pte_special(na));
	assert_true(pte_write(na));
	assert_int_equal(ht_data_frames(h), data0 + 1);
	assert_int_equal(atomic_load(&a->rss[MM_ANONPAGES]), 1);
	assert_int_equal(ht_read_byte(a, BASE + 5 * P + 3), 'w');
	assert_int_equal(ht_read_byte(a, BASE + 5 * P), 0);
	assert_int_equal(ht_read_byte(a, BASE + 6 * P - 1), 0);
	assert_int_equal(ht_pfn(b, BASE + 8 * GB + 9 * P), pte_pfn(pa));
	ht_expect_zero(b, BASE + 8 * GB, 64);
	/* The zero page itself is still all zeroes. */
	const unsigned char *z = page_address(pfn_to_page(h, pte_pfn(pa)));
	for (size_t i = 0; i < P; i++)
		assert_int_equal(z[i], 0);
	/* A write to an untouched page allocates directly (no COW). */
	uint64_t brk = ht_event(h, COW_BREAK), zero = ht_event(h, PGFAULT_ZERO);
	ht_write_byte(b, BASE + 8 * GB + 63 * P, 1);
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1); /* was the zero page */
	ht_mmap(b, BASE + 9 * GB, P, HT_RW, HT_FIXED);
	ht_write_byte(b, BASE + 9 * GB, 1);
	assert_int_equal(ht_event(h, PGFAULT_ZERO), zero + 1);
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1);
	ht_check(h);
}

/* ---- GUP -------------------------------------------------------------- */

static void test_gup_basic(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	struct page *pg = NULL;
	bool w = true;

	ht_mmap(mm, BASE, 4 * P, HT_RW, HT_FIXED);

	/* Read on an untouched page: the zero page, read-only. */
	uint64_t data0 = ht_data_frames(h);
	assert_int_equal(get_user_page(mm, BASE, 0, &pg, &w), 0);
	assert_non_null(pg);
	assert_false(w);
	assert_true(PageFlag(pg, PG_reserved));
	assert_int_equal(page_to_pfn(pg), ht_pfn(mm, BASE));
	put_page(pg);
	assert_int_equal(ht_data_frames(h), data0);
	ht_check(h);

	/* Write: a private page, writable, with the GUP reference on top of
	 * the PTE's until put_page. */
	w = false;
	assert_int_equal(get_user_page(mm, BASE + P, FOLL_WRITE, &pg, &w), 0);
	assert_true(w);
	assert_false(PageFlag(pg, PG_reserved));
	assert_int_equal(page_to_pfn(pg), ht_pfn(mm, BASE + P));
	assert_int_equal(page_count(pg), 2);
	assert_int_equal(page_mapcount(pg), 1);
	pte_t pte = mm_lookup_pte(mm, BASE + P);
	assert_true(pte_write(pte) && pte_dirty(pte) && pte_young(pte));
	ht_check(h);
	memset(page_address(pg), 'g', P);
	put_page(pg);
	assert_int_equal(page_count(pg), 1);
	ht_expect_fill(mm, BASE + P, 1, 'g', 0);
	ht_check(h);

	/* GUP for write on the zero page replaces it. */
	assert_int_equal(get_user_page(mm, BASE, FOLL_WRITE, &pg, &w), 0);
	assert_true(w);
	assert_false(PageFlag(pg, PG_reserved));
	assert_false(pte_special(mm_lookup_pte(mm, BASE)));
	put_page(pg);

	/* Read GUP of a writable private page reports it writable. */
	assert_int_equal(get_user_page(mm, BASE + P, 0, &pg, NULL), 0);
	assert_int_equal(page_count(pg), 2);
	put_page(pg);
	assert_int_equal(get_user_page(mm, BASE + P, 0, &pg, &w), 0);
	assert_true(w);
	put_page(pg);
	ht_check(h);

	/* Any address inside the page finds it. */
	assert_int_equal(get_user_page(mm, BASE + P + 123, FOLL_NOFAULT, &pg, &w), 0);
	assert_int_equal(page_to_pfn(pg), ht_pfn(mm, BASE + P));
	put_page(pg);
}

static void test_gup_errors(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	struct page *pg = NULL;
	bool w;

	ht_mmap(mm, BASE, 2 * P, HT_RW, HT_FIXED);
	ht_mmap(mm, BASE + 4 * P, P, PROT_READ, HT_FIXED);
	ht_mmap(mm, BASE + 6 * P, P, PROT_NONE, HT_FIXED);
	uint64_t frames0 = host_frames_in_use(h);

	/* FOLL_NOFAULT: only what is mapped already. */
	assert_int_equal(get_user_page(mm, BASE, FOLL_NOFAULT, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, BASE, FOLL_NOFAULT | FOLL_WRITE, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, BASE + 3 * P, FOLL_NOFAULT, &pg, &w), -EFAULT);
	assert_int_equal(mm_lookup_pte(mm, BASE), 0);
	assert_int_equal(host_frames_in_use(h), frames0);
	assert_int_equal(ht_read_byte(mm, BASE), 0);
	assert_int_equal(get_user_page(mm, BASE, FOLL_NOFAULT, &pg, &w), 0);
	assert_true(PageFlag(pg, PG_reserved));
	put_page(pg);
	/* Mapped read-only (zero page): a write would need a fault. */
	assert_int_equal(get_user_page(mm, BASE, FOLL_NOFAULT | FOLL_WRITE, &pg, &w), -EFAULT);
	assert_true(pte_special(mm_lookup_pte(mm, BASE)));
	ht_check(h);

	/* Permissions. */
	assert_int_equal(get_user_page(mm, BASE + 4 * P, FOLL_WRITE, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, BASE + 4 * P, 0, &pg, &w), 0);
	assert_false(w);
	put_page(pg);
	assert_int_equal(get_user_page(mm, BASE + 6 * P, 0, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, BASE + 6 * P, FOLL_WRITE, &pg, &w), -EFAULT);

	/* No VMA, outside the address space, bad arguments. */
	assert_int_equal(get_user_page(mm, BASE + 2 * P, 0, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, BASE - P, FOLL_WRITE, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, 0, 0, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, TASK_SIZE, 0, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, UINT64_MAX, 0, &pg, &w), -EFAULT);
	assert_int_equal(get_user_page(mm, BASE, 1u << 7, &pg, &w), -EINVAL);
	assert_int_equal(get_user_page(mm, BASE, 0, NULL, &w), -EINVAL);
	assert_int_equal(get_user_page(NULL, BASE, 0, &pg, &w), -EINVAL);
	ht_check(h);
}

/* GUP for write on a COW-shared page breaks COW in that mm only. */
static void test_gup_breaks_cow(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t);
	struct page *pg;
	bool w;

	ht_mmap(p, BASE, P, HT_RW, HT_FIXED);
	ht_fill(p, BASE, 1, 'a');
	struct mm *c = ht_fork(t, p);
	struct page *shared = ht_page(p, BASE);

	/* Read GUP hands out the shared frame, read-only. */
	assert_int_equal(get_user_page(c, BASE, 0, &pg, &w), 0);
	assert_ptr_equal(pg, shared);
	assert_false(w);
	assert_int_equal(page_count(shared), 3);
	put_page(pg);

	uint64_t brk = ht_event(h, COW_BREAK);
	assert_int_equal(get_user_page(c, BASE, FOLL_WRITE, &pg, &w), 0);
	assert_true(w);
	assert_ptr_not_equal(pg, shared);
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1);
	assert_ptr_equal(ht_page(c, BASE), pg);
	assert_ptr_equal(ht_page(p, BASE), shared);
	ht_check(h);
	memset(page_address(pg), 'b', P);
	put_page(pg);
	ht_expect_fill(p, BASE, 1, 'a', 0);
	ht_expect_fill(c, BASE, 1, 'b', 0);
	assert_int_equal(page_count(shared), 1);
	assert_int_equal(page_mapcount(shared), 1);
	ht_check(h);
}

/* An extra reference (GUP) on a write-protected page that is otherwise
 * exclusive makes the next write copy instead of reuse: whoever holds the
 * reference may still look at the old frame. */
static void test_gup_ref_forces_copy(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t);
	struct page *pg;
	bool w;

	ht_mmap(p, BASE, P, HT_RW, HT_FIXED);
	ht_fill(p, BASE, 1, 'a');
	struct mm *c = ht_fork(t, p);
	ht_mmput(t, c);
	assert_false(pte_write(mm_lookup_pte(p, BASE)));

	assert_int_equal(get_user_page(p, BASE, 0, &pg, &w), 0);
	assert_false(w);
	assert_int_equal(page_count(pg), 2);
	uint64_t brk = ht_event(h, COW_BREAK), reuse = ht_event(h, COW_REUSE);
	uint64_t data0 = ht_data_frames(h);
	ht_fill(p, BASE, 1, 'b');
	assert_int_equal(ht_event(h, COW_BREAK), brk + 1);
	assert_int_equal(ht_event(h, COW_REUSE), reuse);
	assert_ptr_not_equal(ht_page(p, BASE), pg);
	assert_int_equal(ht_data_frames(h), data0 + 1);
	/* The held frame is unmapped but alive, with its old contents. */
	assert_int_equal(page_mapcount(pg), 0);
	assert_int_equal(page_count(pg), 1);
	assert_int_equal(((unsigned char *)page_address(pg))[0], 'a');
	ht_check(h);
	put_page(pg);
	assert_int_equal(ht_data_frames(h), data0);
	assert_true(PageFlag(pg, PG_buddy));
	ht_expect_fill(p, BASE, 1, 'b', 0);
}

/* A page held by GUP outlives munmap and mm exit until put_page. */
static void test_gup_survives_munmap(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	struct page *pg, *pg2;
	bool w;

	ht_mmap(mm, BASE, 2 * P, HT_RW, HT_FIXED);
	assert_int_equal(get_user_page(mm, BASE, FOLL_WRITE, &pg, &w), 0);
	assert_int_equal(get_user_page(mm, BASE + P, FOLL_WRITE, &pg2, &w), 0);
	memset(page_address(pg), 'k', P);
	assert_int_equal(ht_data_frames(h), 2);

	assert_int_equal(mm_munmap(mm, BASE, P), 0);
	ht_check(h);
	assert_int_equal(mm_lookup_pte(mm, BASE), 0);
	assert_int_equal(ht_data_frames(h), 2);
	assert_false(PageFlag(pg, PG_buddy));
	assert_int_equal(page_count(pg), 1);
	assert_int_equal(page_mapcount(pg), 0);
	assert_null(pg->rmap);
	/* Still ours to use. */
	assert_int_equal(((unsigned char *)page_address(pg))[P - 1], 'k');
	memset(page_address(pg), 'l', P);
	put_page(pg);
	assert_true(PageFlag(pg, PG_buddy));
	assert_int_equal(ht_data_frames(h), 1);
	ht_check(h);

	/* The same across the mm's exit. */
	ht_mmput(t, mm);
	assert_int_equal(host_frames_in_use(h), 1);
	assert_false(PageFlag(pg2, PG_buddy));
	ht_check(h);
	put_page(pg2);
	assert_int_equal(host_frames_in_use(h), 0);
	ht_check(h);
}

/* ---- mmap placement --------------------------------------------------- */

static void test_mmap_fixed(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	hva_t out = 0;

	ht_mmap(mm, BASE, 4 * P, HT_RW, HT_FIXED);
	ht_fill(mm, BASE, 4, 'a');
	uint64_t data0 = ht_data_frames(h);

	/* MAP_FIXED over the middle replaces it: old data gone. */
	ht_mmap(mm, BASE + P, 2 * P, PROT_READ, HT_FIXED);
	assert_int_equal(mm->nr_vmas, 3);
	ht_expect_vma(mm, 0, BASE, BASE + P, RW_FLAGS);
	ht_expect_vma(mm, 1, BASE + P, BASE + 3 * P, VM_READ);
	ht_expect_vma(mm, 2, BASE + 3 * P, BASE + 4 * P, RW_FLAGS);
	assert_int_equal(ht_data_frames(h), data0 - 2);
	ht_expect_zero(mm, BASE + P, 2);
	ht_expect(mm, BASE, 1, 'a');
	ht_expect_fill(mm, BASE + 3 * P, 1, 'a' + 3, 1);

	/* Over everything, with the original protection: one VMA, all zero. */
	ht_mmap(mm, BASE, 4 * P, HT_RW, HT_FIXED);
	assert_int_equal(mm->nr_vmas, 1);
	ht_expect_vma(mm, 0, BASE, BASE + 4 * P, RW_FLAGS);
	assert_int_equal(ht_data_frames(h), 0);
	ht_expect_zero(mm, BASE, 4);

	/* MAP_FIXED_NOREPLACE: -EEXIST on any overlap, nothing changed. */
	ht_fill(mm, BASE, 4, 'n');
	out = 0x1234;
	assert_int_equal(mm_mmap(mm, BASE, 4 * P, PROT_READ, HT_PRIV | MAP_FIXED_NOREPLACE, &out), -EEXIST);
	assert_int_equal(mm_mmap(mm, BASE + 3 * P, 2 * P, PROT_READ, HT_PRIV | MAP_FIXED_NOREPLACE, &out), -EEXIST);
	assert_int_equal(mm_mmap(mm, BASE - P, 2 * P, PROT_READ, HT_PRIV | MAP_FIXED_NOREPLACE, &out), -EEXIST);
	assert_int_equal(mm_mmap(mm, BASE + P, P, HT_RW, HT_FIXED | MAP_FIXED_NOREPLACE, &out), -EEXIST);
	assert_int_equal(out, 0x1234);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 1);
	ht_expect(mm, BASE, 4, 'n');
	/* ... and succeeds next to it (merging, same flags). */
	ht_mmap(mm, BASE + 4 * P, 2 * P, HT_RW, HT_PRIV | MAP_FIXED_NOREPLACE);
	assert_int_equal(mm->nr_vmas, 1);
	ht_expect_vma(mm, 0, BASE, BASE + 6 * P, RW_FLAGS);

	/* A sub-page length maps one page. */
	ht_mmap(mm, BASE + 10 * P, 1, PROT_READ, HT_FIXED);
	ht_expect_vma(mm, 1, BASE + 10 * P, BASE + 11 * P, VM_READ);

	/* The very top of the address space. */
	ht_mmap(mm, TASK_SIZE - P, P, HT_RW, HT_FIXED);
	ht_write_byte(mm, TASK_SIZE - 1, 9);
	assert_int_equal(ht_read_byte(mm, TASK_SIZE - 1), 9);
	ht_check(h);
}

static bool overlaps(hva_t a, uint64_t alen, hva_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static void test_mmap_placement(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	enum { N = 48 };
	hva_t addr[N];
	uint64_t len[N];

	/* A free hint is honoured. */
	hva_t hint = BASE + 16 * P;
	assert_int_equal(ht_mmap(mm, hint, 2 * P, HT_RW, HT_PRIV), hint);
	ht_fill(mm, hint, 2, 'h');

	/* An occupied hint is not: the mapping goes elsewhere, no overlap,
	 * the occupant untouched. */
	hva_t a = ht_mmap(mm, hint, 4 * P, PROT_READ, HT_PRIV);
	assert_false(overlaps(a, 4 * P, hint, 2 * P));
	hva_t b = ht_mmap(mm, hint - P, 2 * P, PROT_READ, HT_PRIV);
	assert_false(overlaps(b, 2 * P, hint, 2 * P));
	assert_false(overlaps(b, 2 * P, a, 4 * P));
	ht_expect(mm, hint, 2, 'h');

	/* Unaligned, too-low and out-of-range hints are ignored, not errors. */
	hva_t c = ht_mmap(mm, BASE + 100 * P + 1, P, PROT_READ, HT_PRIV);
	assert_int_not_equal(c, BASE + 100 * P + 1);
	hva_t d = ht_mmap(mm, 0x1000, P, PROT_READ, HT_PRIV);
	assert_true(d >= TASK_UNMAPPED_FLOOR);
	hva_t e = ht_mmap(mm, TASK_SIZE, P, PROT_READ, HT_PRIV);
	hva_t f = ht_mmap(mm, TASK_SIZE - P, 2 * P, PROT_READ, HT_PRIV);
	assert_int_equal(mm_munmap(mm, a, 4 * P), 0);
	assert_int_equal(mm_munmap(mm, b, 2 * P), 0);
	assert_int_equal(mm_munmap(mm, c, P), 0);
	assert_int_equal(mm_munmap(mm, d, P), 0);
	assert_int_equal(mm_munmap(mm, e, P), 0);
	assert_int_equal(mm_munmap(mm, f, 2 * P), 0);
	assert_int_equal(mm_munmap(mm, hint, 2 * P), 0);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, 0);

	/* Many non-fixed mappings, alternating protection so they stay
	 * separate VMAs, each with its own data: pairwise disjoint. */
	for (int i = 0; i < N; i++) {
		len[i] = (uint64_t)(1 + i % 5) * P;
		addr[i] = ht_mmap(mm, (i % 3) ? BASE : 0, len[i],
				  (i & 1) ? PROT_READ | PROT_WRITE : PROT_READ | PROT_WRITE | PROT_EXEC,
				  HT_PRIV);
		for (int j = 0; j < i; j++)
			assert_false(overlaps(addr[i], len[i], addr[j], len[j]));
		ht_write_byte(mm, addr[i], (unsigned char)i);
		ht_write_byte(mm, addr[i] + len[i] - 1, (unsigned char)(i + 100));
	}
	/* Punch holes and fill them again. */
	for (int i = 0; i < N; i += 3)
		assert_int_equal(mm_munmap(mm, addr[i], len[i]), 0);
	ht_check(h);
	for (int i = 0; i < N; i += 3) {
		addr[i] = ht_mmap(mm, 0, len[i], PROT_READ | PROT_WRITE, HT_PRIV);
		for (int j = 0; j < N; j++)
			if (j != i && (j % 3 || j < i)) /* mapped now */
				assert_false(overlaps(addr[i], len[i], addr[j], len[j]));
		ht_write_byte(mm, addr[i], (unsigned char)i);
		ht_write_byte(mm, addr[i] + len[i] - 1, (unsigned char)(i + 100));
	}
	ht_check(h);
	for (int i = 0; i < N; i++) {
		assert_int_equal(ht_read_byte(mm, addr[i]), i);
		assert_int_equal(ht_read_byte(mm, addr[i] + len[i] - 1), i + 100);
	}
	for (unsigned int i = 0; i + 1 < mm->nr_vmas; i++)
		assert_true(mm->vmas[i]->vm_end <= mm->vmas[i + 1]->vm_start);

	/* No room: -ENOMEM, nothing changed. */
	unsigned int nr = mm->nr_vmas;
	hva_t out;
	assert_int_equal(mm_mmap(mm, 0, TASK_SIZE - TASK_UNMAPPED_FLOOR, PROT_READ, HT_PRIV, &out),
			 -ENOMEM);
	assert_int_equal(mm->nr_vmas, nr);
	ht_check(h);
}

/* ---- bad input -------------------------------------------------------- */

static void test_bad_mmap(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	hva_t out = 0x5555;
	uint64_t frames0 = host_frames_in_use(h);

	/* -EINVAL: malformed requests. */
	assert_int_equal(mm_mmap(mm, 0, 0, HT_RW, HT_PRIV, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, BASE, 0, HT_RW, HT_FIXED, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, BASE + 1, P, HT_RW, HT_FIXED, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, BASE + P / 2, P, HT_RW, HT_PRIV | MAP_FIXED_NOREPLACE, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, 0x100, HT_PRIV, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, PROT_READ | 0x8, HT_PRIV, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, -1, HT_PRIV, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, MAP_SHARED | MAP_ANONYMOUS, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, HT_PRIV | MAP_SHARED, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, MAP_PRIVATE, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, MAP_ANONYMOUS, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, 0, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, HT_PRIV | MAP_POPULATE, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, HT_PRIV | MAP_GROWSDOWN, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, -1, &out), -EINVAL);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, HT_PRIV, NULL), -EINVAL);
	assert_int_equal(mm_mmap(NULL, 0, P, HT_RW, HT_PRIV, &out), -EINVAL);

	/* -ENOMEM: the range does not fit the address space, including a
	 * length that overflows when rounded up to a page. */
	assert_int_equal(mm_mmap(mm, 0, UINT64_MAX, HT_RW, HT_PRIV, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, 0, UINT64_MAX - P, HT_RW, HT_PRIV, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, BASE, UINT64_MAX, HT_RW, HT_FIXED, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, 0, TASK_SIZE, HT_RW, HT_PRIV, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, 0, TASK_SIZE - TASK_UNMAPPED_FLOOR + 1, HT_RW, HT_PRIV, &out),
			 -ENOMEM);
	assert_int_equal(mm_mmap(mm, TASK_SIZE, P, HT_RW, HT_FIXED, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, TASK_SIZE - P, 2 * P, HT_RW, HT_FIXED, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, TASK_SIZE - P, P + 1, HT_RW, HT_FIXED, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, UINT64_MAX & PAGE_MASK, P, HT_RW, HT_FIXED, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, HT_FIXED, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, TASK_UNMAPPED_FLOOR - P, P, HT_RW, HT_FIXED, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, TASK_UNMAPPED_FLOOR - P, 2 * P, HT_RW,
				 HT_PRIV | MAP_FIXED_NOREPLACE, &out), -ENOMEM);

	assert_int_equal(out, 0x5555);
	assert_int_equal(mm->nr_vmas, 0);
	assert_int_equal(host_frames_in_use(h), frames0);
	ht_check(h);

	/* The limits themselves are fine. */
	ht_mmap(mm, TASK_UNMAPPED_FLOOR, P, HT_RW, HT_FIXED);
	ht_mmap(mm, TASK_SIZE - P, P, HT_RW, HT_FIXED);
	assert_int_equal(mm->nr_vmas, 2);
}

static void test_bad_munmap_mprotect_madvise(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);

	ht_mmap(mm, BASE, 4 * P, HT_RW, HT_FIXED);
	ht_fill(mm, BASE, 4, 'a');
	uint64_t frames0 = host_frames_in_use(h);

	/* munmap: every malformed or out-of-range request is -EINVAL. */
	assert_int_equal(mm_munmap(mm, BASE, 0), -EINVAL);
	assert_int_equal(mm_munmap(mm, BASE + 1, P), -EINVAL);
	assert_int_equal(mm_munmap(mm, BASE, UINT64_MAX), -EINVAL);
	assert_int_equal(mm_munmap(mm, BASE, UINT64_MAX - P + 2), -EINVAL);
	assert_int_equal(mm_munmap(mm, TASK_SIZE, P), -EINVAL);
	assert_int_equal(mm_munmap(mm, TASK_SIZE - P, 2 * P), -EINVAL);
	assert_int_equal(mm_munmap(mm, UINT64_MAX & PAGE_MASK, P), -EINVAL);
	assert_int_equal(mm_munmap(mm, 0, P), -EINVAL);
	assert_int_equal(mm_munmap(NULL, BASE, P), -EINVAL);

	/* mprotect: -EINVAL for malformed, -ENOMEM outside the address
	 * space or over a hole; a zero length is a no-op. */
	assert_int_equal(mm_mprotect(mm, BASE + 1, P, PROT_READ), -EINVAL);
	assert_int_equal(mm_mprotect(mm, BASE, P, 0x40), -EINVAL);
	assert_int_equal(mm_mprotect(mm, BASE, P, -1), -EINVAL);
	assert_int_equal(mm_mprotect(NULL, BASE, P, PROT_READ), -EINVAL);
	assert_int_equal(mm_mprotect(mm, BASE, 0, PROT_READ), 0);
	assert_int_equal(mm_mprotect(mm, BASE, UINT64_MAX, PROT_READ), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, TASK_SIZE, P, PROT_READ), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, TASK_SIZE - P, 2 * P, PROT_READ), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, 0, P, PROT_READ), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, BASE - P, 2 * P, PROT_READ), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, BASE + 3 * P, 2 * P, PROT_READ), -ENOMEM);

	/* madvise: unknown advice and unaligned address -EINVAL, range
	 * outside the space or over a hole -ENOMEM, zero length a no-op. */
	assert_int_equal(mm_madvise(mm, BASE, P, 12345), -EINVAL);
	assert_int_equal(mm_madvise(mm, BASE, P, -1), -EINVAL);
	assert_int_equal(mm_madvise(mm, BASE, P, MADV_REMOVE), -EINVAL);
	assert_int_equal(mm_madvise(mm, BASE + 1, P, MADV_DONTNEED), -EINVAL);
	assert_int_equal(mm_madvise(NULL, BASE, P, MADV_DONTNEED), -EINVAL);
	assert_int_equal(mm_madvise(mm, BASE, 0, MADV_DONTNEED), 0);
	assert_int_equal(mm_madvise(mm, BASE, UINT64_MAX, MADV_DONTNEED), -ENOMEM);
	assert_int_equal(mm_madvise(mm, TASK_SIZE, P, MADV_DONTNEED), -ENOMEM);
	assert_int_equal(mm_madvise(mm, 0, P, MADV_DONTNEED), -ENOMEM);
	assert_int_equal(mm_madvise(mm, BASE + 3 * P, 2 * P, MADV_DONTNEED), -ENOMEM);

	/* None of it changed anything. */
	ht_check(h);
	assert_int_equal(host_frames_in_use(h), frames0);
	assert_int_equal(mm->nr_vmas, 1);
	ht_expect_vma(mm, 0, BASE, BASE + 4 * P, RW_FLAGS);
	ht_expect(mm, BASE, 4, 'a');
}

static void test_bad_access(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	char buf[2 * P];

	ht_mmap(mm, TASK_SIZE - 2 * P, 2 * P, HT_RW, HT_FIXED);
	ht_mmap(mm, BASE, P, HT_RW, HT_FIXED);

	assert_int_equal(mm_read(mm, TASK_SIZE, buf, 1), -EFAULT);
	assert_int_equal(mm_write(mm, TASK_SIZE, buf, 1), -EFAULT);
	assert_int_equal(mm_read(mm, UINT64_MAX, buf, 1), -EFAULT);
	assert_int_equal(mm_write(mm, TASK_SIZE - 1, buf, 2), -EFAULT);
	assert_int_equal(mm_read(mm, TASK_SIZE - P, buf, UINT64_MAX), -EFAULT);
	assert_int_equal(mm_read(mm, BASE, buf, UINT64_MAX - BASE + 1), -EFAULT); /* wraps to 0 */
	assert_int_equal(mm_write(mm, TASK_SIZE - 1, buf, UINT64_MAX), -EFAULT);
	assert_int_equal(mm_read(mm, 0, buf, 1), -EFAULT);
	assert_int_equal(mm_read(mm, BASE, NULL, 1), -EINVAL);
	assert_int_equal(mm_write(mm, BASE, NULL, 1), -EINVAL);
	assert_int_equal(mm_read(NULL, BASE, buf, 1), -EINVAL);
	assert_int_equal(mm_write(NULL, BASE, buf, 1), -EINVAL);
	assert_int_equal(mm_read(mm, BASE, NULL, 0), 0);

	/* Up to the last byte of the address space works. */
	memset(buf, 'e', sizeof(buf));
	assert_int_equal(mm_write(mm, TASK_SIZE - 2 * P + 1, buf, 2 * P - 1), 2 * P - 1);
	assert_int_equal(ht_read_byte(mm, TASK_SIZE - 1), 'e');
	/* A range that runs past the address space is refused whole:
	 * not even its first, mapped, page is written. */
	memset(buf, 'z', sizeof(buf));
	assert_int_equal(mm_write(mm, TASK_SIZE - P, buf, UINT64_MAX), -EFAULT);
	assert_int_equal(mm_write(mm, TASK_SIZE - P, buf, P + 1), -EFAULT);
	assert_int_equal(ht_read_byte(mm, TASK_SIZE - P), 'e');
	assert_int_equal(ht_read_byte(mm, TASK_SIZE - 1), 'e');
	/* A write running off the end of a mapping: the pages before the
	 * failing one are written, the call returns -EFAULT. */
	memset(buf, 'f', sizeof(buf));
	assert_int_equal(mm_write(mm, BASE + P / 2, buf, P), -EFAULT);
	assert_int_equal(ht_read_byte(mm, BASE + P - 1), 'f');
	assert_int_equal(ht_read_byte(mm, BASE), 0);
	assert_int_equal(mm_lookup_pte(mm, BASE + P), 0);
	assert_int_equal(mm_lookup_pte(mm, TASK_SIZE), 0);
	assert_int_equal(mm_lookup_pte(mm, UINT64_MAX), 0);
	ht_check(h);
}

static void test_bad_host_config(void **state)
{
	(void)state;
	struct host *host = (struct host *)0x1;
	struct host_config cfg = { .ram_bytes = HT_RAM };
	const uint64_t bad_ram[] = {
		0, PAGE_SIZE, HOST_RAM_MIN - PAGE_SIZE, HOST_RAM_MIN + 1,
		HOST_RAM_MIN + PAGE_SIZE / 2, HOST_RAM_MAX + PAGE_SIZE,
		HOST_RAM_MAX * 2, UINT64_MAX, UINT64_MAX & PAGE_MASK,
	};
	const int bad_nodes[] = { -1, HOST_MAX_NODES + 1, 1000, -1000 };

	for (size_t i = 0; i < ARRAY_SIZE(bad_ram); i++) {
		cfg.ram_bytes = bad_ram[i];
		assert_int_equal(host_create(&cfg, &host), -EINVAL);
	}
	cfg.ram_bytes = HT_RAM;
	for (size_t i = 0; i < ARRAY_SIZE(bad_nodes); i++) {
		cfg.nr_nodes = bad_nodes[i];
		assert_int_equal(host_create(&cfg, &host), -EINVAL);
	}
	cfg.nr_nodes = 1;
	assert_int_equal(host_create(NULL, &host), -EINVAL);
	assert_int_equal(host_create(&cfg, NULL), -EINVAL);
	assert_ptr_equal(host, (struct host *)0x1);   /* untouched on failure */
	assert_int_equal(host_destroy(NULL), -EINVAL);
	assert_int_equal(host_check_invariants(NULL), -EINVAL);
	assert_int_equal(mm_lookup_pte(NULL, 0x100000), 0);

	/* The boundaries that are valid. */
	cfg.nr_nodes = HOST_MAX_NODES;
	cfg.ram_bytes = HOST_RAM_MIN;
	assert_int_equal(host_create(&cfg, &host), 0);
	assert_int_equal(host_check_invariants(host), 0);
	assert_int_equal(host_destroy(host), 0);

	/* The other NULL checks, on a real host. */
	cfg.nr_nodes = 0;
	assert_int_equal(host_create(&cfg, &host), 0);
	struct mm *mm = (struct mm *)0x1, *child = (struct mm *)0x1;
	assert_int_equal(mm_create(NULL, &mm), -EINVAL);
	assert_int_equal(mm_create(host, NULL), -EINVAL);
	assert_ptr_equal(mm, (struct mm *)0x1);
	assert_int_equal(mm_create(host, &mm), 0);
	assert_int_equal(mm_fork(NULL, &child), -EINVAL);
	assert_int_equal(mm_fork(mm, NULL), -EINVAL);
	assert_ptr_equal(child, (struct mm *)0x1);
	assert_int_equal(host_frames_in_use(host), 1);
	mmput(mm);
	assert_int_equal(host_frames_in_use(host), 0);
	assert_int_equal(host_destroy(host), 0);
}

/* An exiting mm (users gone, struct still referenced) refuses every call
 * with -ESRCH and still tears down cleanly. */
static void test_exiting_mm(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t), *child = NULL;
	struct page *pg;
	hva_t out;
	char ch = 0;
	bool w;

	ht_mmap(mm, BASE, 4 * P, HT_RW, HT_FIXED);
	ht_fill(mm, BASE, 4, 'a');
	mmgrab(mm);
	ht_mmput(t, mm);
	assert_true(atomic_load(&mm->exiting));
	assert_int_equal(mm->nr_vmas, 0);
	assert_int_equal(host_frames_in_use(h), 1);  /* the pgd */
	assert_false(mmget_not_zero(mm));

	assert_int_equal(mm_mmap(mm, BASE, P, HT_RW, HT_FIXED, &out), -ESRCH);
	assert_int_equal(mm_mmap(mm, 0, P, HT_RW, HT_PRIV, &out), -ESRCH);
	assert_int_equal(mm_munmap(mm, BASE, P), -ESRCH);
	assert_int_equal(mm_mprotect(mm, BASE, P, PROT_READ), -ESRCH);
	assert_int_equal(mm_madvise(mm, BASE, P, MADV_DONTNEED), -ESRCH);
	assert_int_equal(mm_read(mm, BASE, &ch, 1), -ESRCH);
	assert_int_equal(mm_write(mm, BASE, &ch, 1), -ESRCH);
	assert_int_equal(get_user_page(mm, BASE, 0, &pg, &w), -ESRCH);
	assert_int_equal(mm_fork(mm, &child), -ESRCH);
	assert_null(child);
	assert_int_equal(mm_lookup_pte(mm, BASE), 0);
	assert_int_equal(mm->nr_vmas, 0);
	assert_int_equal(host_frames_in_use(h), 1);
	ht_check(h);

	assert_int_equal(host_destroy(h), -EBUSY);
	ht_check(h);
	mmdrop(mm);
	assert_int_equal(host_frames_in_use(h), 0);
	ht_check(h);
}

/* ---- out of memory ---------------------------------------------------- */

/* Write page after page until the host runs out; returns the count. */
static unsigned int fill_until_oom(struct mm *mm, hva_t base, unsigned int max)
{
	unsigned int n;

	for (n = 0; n < max; n++) {
		uint64_t v = base + n * P;
		int64_t r = mm_write(mm, base + n * P, &v, sizeof(v));

		if (r < 0) {
			assert_int_equal(r, -ENOMEM);
			break;
		}
		assert_int_equal(r, sizeof(v));
	}
	assert_true(n < max);
	return n;
}

/* Allocations stop at the min watermark, not before. A failed fault may
 * have given back one frame it took before its page table failed. */
static void assert_at_watermark(struct host *h)
{
	struct host_stats st;

	host_get_stats(h, &st);
	assert_in_range(st.free_pages, st.watermark_min, st.watermark_min + 1);
}

static void expect_filled(struct mm *mm, hva_t base, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t v = 0;

		assert_int_equal(mm_read(mm, base + i * P, &v, sizeof(v)), sizeof(v));
		assert_int_equal(v, base + i * P);
	}
}

static void test_oom(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	struct host_stats st;
	const unsigned int max = (unsigned int)(2 * HT_RAM / P);

	ht_mmap(mm, BASE, 2 * HT_RAM, HT_RW, HT_FIXED);
	uint64_t fail0 = ht_event(h, PGALLOC_FAIL);
	unsigned int n = fill_until_oom(mm, BASE, max);
	ht_check(h);
	host_get_stats(h, &st);
	assert_true(st.events[PGALLOC_FAIL] > fail0);
	assert_at_watermark(h);
	assert_int_equal(n + st.pgtable_pages + st.free_pages + st.reserved_pages, st.ram_pages);
	assert_int_equal(atomic_load(&mm->rss[MM_ANONPAGES]), n);
	expect_filled(mm, BASE, n);
	/* The failed page got nothing private. */
	pte_t pte = mm_lookup_pte(mm, BASE + n * P);
	assert_true(pte_none(pte) || pte_special(pte));

	/* Still out: another write fails the same way, and a GUP for write. */
	struct page *pg;
	assert_int_equal(mm_write(mm, BASE + n * P, "x", 1), -ENOMEM);
	assert_int_equal(get_user_page(mm, BASE + n * P, FOLL_WRITE, &pg, NULL), -ENOMEM);
	ht_check(h);

	/* Writes to pages already present still work without memory. */
	assert_int_equal(mm_write(mm, BASE + 8, "ok", 2), 2);

	/* munmap gives the memory back; it is usable again. */
	assert_int_equal(mm_munmap(mm, BASE, 2 * HT_RAM), 0);
	ht_check(h);
	assert_int_equal(host_frames_in_use(h), 1);
	ht_mmap(mm, BASE, 2 * HT_RAM, HT_RW, HT_FIXED);
	/* One big write: fails with -ENOMEM part-way, keeping what it wrote. */
	size_t blen = 2 * HT_RAM;
	unsigned char *big = malloc(blen);
	assert_non_null(big);
	memset(big, 0x5a, blen);
	assert_int_equal(mm_write(mm, BASE, big, blen), -ENOMEM);
	ht_check(h);
	assert_int_equal(atomic_load(&mm->rss[MM_ANONPAGES]), n);
	assert_int_equal(ht_read_byte(mm, BASE), 0x5a);
	assert_int_equal(ht_read_byte(mm, BASE + (n - 1) * P + P - 1), 0x5a);
	free(big);
	assert_int_equal(mm_munmap(mm, BASE, 2 * HT_RAM), 0);
	assert_int_equal(host_frames_in_use(h), 1);
	ht_mmap(mm, BASE, HT_RAM / 2, HT_RW, HT_FIXED);
	ht_fill(mm, BASE, (unsigned int)(HT_RAM / 2 / P), 0);
	ht_check(h);
}

/* fork fails cleanly when the child's page tables cannot be allocated. */
static void test_oom_fork(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *p = ht_mm(t), *c = NULL;
	const unsigned int max = (unsigned int)(2 * HT_RAM / P);

	ht_mmap(p, BASE, 2 * HT_RAM, HT_RW, HT_FIXED);
	unsigned int n = fill_until_oom(p, BASE, max);
	assert_true(n > 2 * 512);
	/* Room for the child's pgd and a few tables, not all of them. */
	assert_int_equal(mm_madvise(p, BASE + (n - 5) * P, 5 * P, MADV_DONTNEED), 0);
	n -= 5;
	ht_check(h);
	uint64_t frames0 = host_frames_in_use(h);

	assert_int_equal(mm_fork(p, &c), -ENOMEM);
	assert_null(c);
	ht_check(h);
	assert_int_equal(host_frames_in_use(h), frames0);
	struct host_stats st;
	host_get_stats(h, &st);
	assert_int_equal(st.nr_mms, 1);
	for (unsigned int i = 0; i < n; i += 97)
		assert_int_equal(page_count(ht_page(p, BASE + i * P)), 1);

	/* The parent is intact and writable (reusing, not copying). */
	expect_filled(p, BASE, n);
	uint64_t data0 = ht_data_frames(h);
	for (unsigned int i = 0; i < n; i += 64)
		ht_write_byte(p, BASE + i * P + 100, 'w');
	assert_int_equal(ht_data_frames(h), data0);
	ht_check(h);

	/* With memory back, fork works. */
	assert_int_equal(mm_munmap(p, BASE + HT_RAM / 2, 2 * HT_RAM - HT_RAM / 2), 0);
	ht_check(h);
	c = ht_fork(t, p);
	expect_filled(c, BASE, (unsigned int)(HT_RAM / 2 / P));
}

/* ---- multi-node hosts ------------------------------------------------- */

static void test_multi_node(void **state)
{
	(void)state;
	struct ht *t = ht_create(HT_RAM, 2);
	struct host *h = t->host;
	struct mm *a = ht_mm(t), *b = ht_mm(t);
	unsigned int per_node[2] = { 0, 0 };
	const unsigned int npages = 256;
	const pfn_t half = HT_RAM / P / 2;

	ht_mmap(a, BASE, npages * P, HT_RW, HT_FIXED);
	ht_fill(a, BASE, npages, 1);
	for (unsigned int i = 0; i < npages; i++) {
		pfn_t pfn = ht_pfn(a, BASE + i * P);
		struct page *pg = pfn_to_page(h, pfn);

		assert_true(pg->nid == 0 || pg->nid == 1);
		assert_int_equal(pg->nid, pfn < half ? 0 : 1);
		per_node[pg->nid]++;
	}
	/* Round-robin placement spreads the pages over both nodes. */
	assert_true(per_node[0] >= npages / 3);
	assert_true(per_node[1] >= npages / 3);

	/* An explicit node is honoured while it has room. */
	struct page *p0 = alloc_page_node(h, 0, 0), *p1 = alloc_page_node(h, 1, GFP_ZERO);
	assert_non_null(p0);
	assert_non_null(p1);
	assert_int_equal(p0->nid, 0);
	assert_int_equal(p1->nid, 1);
	assert_true(page_to_pfn(p1) >= half);
	assert_int_equal(page_count(p1), 1);
	ht_check(h);
	put_page(p0);
	put_page(p1);

	/* Fork, COW and exit behave as on one node. */
	ht_mmap(b, BASE, 4 * P, HT_RW, HT_FIXED);
	ht_fill(b, BASE, 4, 'b');
	struct mm *c = ht_fork(t, b);
	ht_fill(c, BASE, 4, 'c');
	ht_expect(b, BASE, 4, 'b');
	ht_expect(c, BASE, 4, 'c');
	ht_expect(a, BASE, npages, 1);
	ht_check(h);

	/* Fill both nodes to OOM: the fallback takes every frame down to
	 * the watermark. */
	ht_mmap(a, BASE + GB, 2 * HT_RAM, HT_RW, HT_FIXED);
	fill_until_oom(a, BASE + GB, (unsigned int)(2 * HT_RAM / P));
	assert_at_watermark(h);
	ht_check(h);
	ht_destroy(t);

	/* The most nodes a host can have. */
	t = ht_create(HT_RAM, HOST_MAX_NODES);
	a = ht_mm(t);
	ht_mmap(a, BASE, 64 * P, HT_RW, HT_FIXED);
	ht_fill(a, BASE, 64, 3);
	bool seen[HOST_MAX_NODES] = { false };
	for (unsigned int i = 0; i < 64; i++)
		seen[ht_page(a, BASE + i * P)->nid] = true;
	for (int n = 0; n < HOST_MAX_NODES; n++)
		assert_true(seen[n]);
	ht_destroy(t);
}

/* ---- frames and host lifetime ----------------------------------------- */

static void test_frames(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;

	struct page *pg = alloc_page(h, GFP_ZERO);
	assert_non_null(pg);
	assert_ptr_equal(page_host(pg), h);
	assert_int_equal(page_count(pg), 1);
	assert_ptr_equal(pfn_to_page(h, page_to_pfn(pg)), pg);
	const unsigned char *b = page_address(pg);
	for (size_t i = 0; i < P; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(host_frames_in_use(h), 1);
	ht_check(h);
	get_page(pg);
	put_page(pg);
	assert_int_equal(host_frames_in_use(h), 1);
	put_page(pg);
	assert_int_equal(host_frames_in_use(h), 0);
	assert_true(PageFlag(pg, PG_buddy));
	ht_check(h);

	/* A live mm keeps the host alive. */
	struct mm *mm = ht_mm(t);
	assert_int_equal(host_destroy(h), -EBUSY);
	ht_check(h);
	struct host_stats st;
	host_get_stats(h, &st);
	assert_int_equal(st.nr_mms, 1);
	assert_int_equal(st.ram_pages, HT_RAM / P);
	assert_int_equal(st.reserved_pages, 1);
	(void)mm;
	assert_string_equal(vm_event_name(COW_BREAK), "cow_break");
	assert_string_equal(vm_event_name(NR_VM_EVENTS), "?");
}

/* ---- the map-count limit ---------------------------------------------- */

#define MAP_COUNT_MAX 65530 /* vma.c's MAX_MAP_COUNT (Linux's default) */

/* Fill the mm with one-page VMAs of alternating protection until
 * nr_vmas == count; returns the address after the last. */
static hva_t fill_vmas(struct mm *mm, hva_t base, unsigned int count)
{
	hva_t addr = base;

	while (mm->nr_vmas < count) {
		hva_t out;

		assert_int_equal(mm_mmap(mm, addr, P, (mm->nr_vmas & 1) ? PROT_READ : HT_RW,
					 HT_FIXED, &out), 0);
		addr += P;
	}
	return addr;
}

/* At the limit, a split fails with -ENOMEM and leaves the VMAs as they were. */
static void test_map_count_limit(void **state)
{
	struct ht *t = *state;
	struct host *h = t->host;
	struct mm *mm = ht_mm(t);
	hva_t out;
	const hva_t big = BASE + 4 * GB;

	ht_mmap(mm, big, 8 * P, HT_RW, HT_FIXED);
	ht_fill(mm, big, 8, 'a');
	hva_t end = fill_vmas(mm, BASE, MAP_COUNT_MAX - 1);
	ht_check(h);

	/* mprotect of a middle piece needs two splits; only one fits. */
	assert_int_equal(mm_mprotect(mm, big + 2 * P, 2 * P, PROT_READ), -ENOMEM);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, MAP_COUNT_MAX - 1);
	ht_expect_vma(mm, mm->nr_vmas - 1, big, big + 8 * P, RW_FLAGS);
	ht_fill(mm, big, 8, 'b');

	/* MAP_FIXED into the middle needs two new VMAs too (the part above
	 * the hole, and its own): refused before anything is unmapped. */
	assert_int_equal(mm_mmap(mm, big + 2 * P, 2 * P, PROT_READ, HT_FIXED, &out), -ENOMEM);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, MAP_COUNT_MAX - 1);
	ht_expect_vma(mm, mm->nr_vmas - 1, big, big + 8 * P, RW_FLAGS);
	ht_expect(mm, big, 8, 'b');

	/* One more VMA fits, then nothing that needs a new one. */
	ht_mmap(mm, end + P, P, HT_RW, HT_FIXED);
	assert_int_equal(mm->nr_vmas, MAP_COUNT_MAX);
	assert_int_equal(mm_mmap(mm, end + 3 * P, P, HT_RW, HT_FIXED, &out), -ENOMEM);
	assert_int_equal(mm_mmap(mm, 0, P, PROT_READ, HT_PRIV, &out), -ENOMEM);
	assert_int_equal(mm_munmap(mm, big + 2 * P, P), -ENOMEM);
	assert_int_equal(mm_mprotect(mm, big, P, PROT_READ), -ENOMEM);
	ht_check(h);
	assert_int_equal(mm->nr_vmas, MAP_COUNT_MAX);
	ht_expect_vma(mm, mm->nr_vmas - 1, big, big + 8 * P, RW_FLAGS);
	ht_expect(mm, big, 8, 'b');

	/* Replacing one whole VMA needs no new slot. */
	ht_mmap(mm, BASE + 2 * P, P, PROT_READ | PROT_EXEC, HT_FIXED);
	assert_int_equal(mm->nr_vmas, MAP_COUNT_MAX);
	ht_expect_vma(mm, 2, BASE + 2 * P, BASE + 3 * P, VM_READ | VM_EXEC);

	/* Unmapping whole VMAs frees slots. */
	assert_int_equal(mm_munmap(mm, BASE, 2 * P), 0);
	assert_int_equal(mm->nr_vmas, MAP_COUNT_MAX - 2);
	assert_int_equal(mm_munmap(mm, big + 2 * P, 2 * P), 0);
	assert_int_equal(mm->nr_vmas, MAP_COUNT_MAX - 1);
	ht_check(h);
	ht_expect(mm, big, 2, 'b');
	ht_expect_fill(mm, big + 4 * P, 4, 'b' + 4, 1);

	/* munmap of a middle piece needs one new VMA (the part above the
	 * hole; the part below keeps the old one): at the limit less one, it
	 * fits, as in Linux. */
	assert_int_equal(mm_munmap(mm, big + 5 * P, 2 * P), 0);
	assert_int_equal(mm->nr_vmas, MAP_COUNT_MAX);
	ht_check(h);
	ht_expect_vma(mm, mm->nr_vmas - 2, big + 4 * P, big + 5 * P, RW_FLAGS);
	ht_expect_vma(mm, mm->nr_vmas - 1, big + 7 * P, big + 8 * P, RW_FLAGS);
	ht_expect_fill(mm, big + 4 * P, 1, 'b' + 4, 1);
	ht_expect_fill(mm, big + 7 * P, 1, 'b' + 7, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, ht_setup, ht_teardown)
		T(test_fork_parent_writes_first),
		T(test_fork_child_writes_first),
		T(test_fork_three_generations),
		T(test_fork_child_exit_cow_reuse),
		T(test_fork_rmap),
		T(test_fork_protections),
		T(test_dontneed),
		T(test_dontneed_cow_shared),
		T(test_protections),
		T(test_munmap_split),
		T(test_mprotect_split_merge),
		T(test_mprotect_hole),
		T(test_pgtables_freed),
		T(test_zero_page_shared),
		T(test_gup_basic),
		T(test_gup_errors),
		T(test_gup_breaks_cow),
		T(test_gup_ref_forces_copy),
		T(test_gup_survives_munmap),
		T(test_mmap_fixed),
		T(test_mmap_placement),
		T(test_bad_mmap),
		T(test_bad_munmap_mprotect_madvise),
		T(test_bad_access),
		cmocka_unit_test(test_bad_host_config),
		T(test_exiting_mm),
		T(test_oom),
		T(test_oom_fork),
		cmocka_unit_test(test_multi_node),
		T(test_frames),
		T(test_map_count_limit),
#undef T
	};

	/* TEST_FILTER=test_oom* runs a subset (cmocka's glob). */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
