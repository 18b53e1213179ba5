/* SPDX-License-Identifier: MIT */
/*
 * host_fixture.h - fixtures and small helpers for tests of the primary MMU.
 *
 * A fixture owns one host and every mm a test creates through it. The
 * teardown mmput()s the mms still alive, checks the invariants, and asserts
 * that every frame came back (host_frames_in_use() == 0) before destroying
 * the host. A test that ends an mm itself calls ht_mmput() so the fixture
 * forgets it.
 *
 * Include after <cmocka.h>.
 */
#ifndef TANDEM_TESTS_HARNESS_HOST_FIXTURE_H
#define TANDEM_TESTS_HARNESS_HOST_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include "tandem/host.h"
#include "host/internal.h"

#define HT_RAM      (16ULL << 20)
#define HT_MAX_MMS  16
#define HT_RW       (PROT_READ | PROT_WRITE)
#define HT_PRIV     (MAP_PRIVATE | MAP_ANONYMOUS)
#define HT_FIXED    (HT_PRIV | MAP_FIXED)

struct ht {
	struct host *host;
	struct mm *mms[HT_MAX_MMS];
};

static inline void ht_check(struct host *host)
{
	assert_int_equal(host_check_invariants(host), 0);
}

/* A host of ram bytes over nr_nodes nodes, with swap_bytes of swap (0:
 * none) and, with swap, kswapd off: the tests drive reclaim themselves. */
static inline struct ht *ht_create_swap(uint64_t ram, int nr_nodes, uint64_t swap_bytes)
{
	struct host_config cfg = { .ram_bytes = ram, .nr_nodes = nr_nodes,
				   .swap_bytes = swap_bytes, .no_kswapd = swap_bytes != 0 };
	struct ht *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	assert_int_equal(host_create(&cfg, &t->host), 0);
	assert_int_equal(host_frames_in_use(t->host), 0);
	ht_check(t->host);
	return t;
}

static inline struct ht *ht_create(uint64_t ram, int nr_nodes)
{
	return ht_create_swap(ram, nr_nodes, 0);
}

/* Every mm gone, every frame back, the host destroyed. */
static inline void ht_destroy(struct ht *t)
{
	for (int i = 0; i < HT_MAX_MMS; i++) {
		if (t->mms[i]) {
			mmput(t->mms[i]);
			t->mms[i] = NULL;
			ht_check(t->host);
		}
	}
	assert_int_equal(host_frames_in_use(t->host), 0);
	struct host_stats st;
	host_get_stats(t->host, &st);
	assert_int_equal(st.pgtable_pages, 0);
	assert_int_equal(st.nr_mms, 0);
	assert_int_equal(st.free_pages, st.ram_pages - st.reserved_pages);
	assert_int_equal(host_destroy(t->host), 0);
	free(t);
}

static inline int ht_setup(void **state)
{
	*state = ht_create(HT_RAM, 0);
	return 0;
}

static inline int ht_teardown(void **state)
{
	ht_destroy(*state);
	return 0;
}

static inline void ht_track(struct ht *t, struct mm *mm)
{
	for (int i = 0; i < HT_MAX_MMS; i++) {
		if (!t->mms[i]) {
			t->mms[i] = mm;
			return;
		}
	}
	fail_msg("too many mms in one test");
}

static inline void ht_forget(struct ht *t, struct mm *mm)
{
	for (int i = 0; i < HT_MAX_MMS; i++) {
		if (t->mms[i] == mm) {
			t->mms[i] = NULL;
			return;
		}
	}
	fail_msg("mm not tracked");
}

static inline struct mm *ht_mm(struct ht *t)
{
	struct mm *mm = NULL;

	assert_int_equal(mm_create(t->host, &mm), 0);
	assert_non_null(mm);
	ht_track(t, mm);
	ht_check(t->host);
	return mm;
}

static inline struct mm *ht_fork(struct ht *t, struct mm *parent)
{
	struct mm *child = NULL;

	assert_int_equal(mm_fork(parent, &child), 0);
	assert_non_null(child);
	ht_track(t, child);
	ht_check(t->host);
	return child;
}

static inline void ht_mmput(struct ht *t, struct mm *mm)
{
	ht_forget(t, mm);
	mmput(mm);
	ht_check(t->host);
}

static inline hva_t ht_mmap(struct mm *mm, hva_t addr, uint64_t len, int prot,
			    int flags)
{
	hva_t out = 0;

	assert_int_equal(mm_mmap(mm, addr, len, prot, flags, &out), 0);
	assert_true(PAGE_ALIGNED(out));
	assert_true(out >= TASK_UNMAPPED_FLOOR && out + PAGE_ALIGN(len) <= TASK_SIZE);
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
		assert_int_equal(out, addr);
	ht_check(mm->host);
	return out;
}

/* Fill each page of [addr, addr + npages pages) with byte tag + page index. */
static inline void ht_fill(struct mm *mm, hva_t addr, unsigned int npages, int tag)
{
	static unsigned char buf[PAGE_SIZE];

	for (unsigned int i = 0; i < npages; i++) {
		memset(buf, (unsigned char)(tag + i), PAGE_SIZE);
		assert_int_equal(mm_write(mm, addr + i * PAGE_SIZE, buf, PAGE_SIZE),
				 PAGE_SIZE);
	}
	ht_check(mm->host);
}

/* Every byte of each page is tag + page index (tag 0 with stride 0: zeroes). */
static inline void ht_expect_fill(struct mm *mm, hva_t addr, unsigned int npages,
				  int tag, int stride)
{
	static unsigned char buf[PAGE_SIZE], want[PAGE_SIZE];

	for (unsigned int i = 0; i < npages; i++) {
		memset(want, (unsigned char)(tag + (int)i * stride), PAGE_SIZE);
		assert_int_equal(mm_read(mm, addr + i * PAGE_SIZE, buf, PAGE_SIZE),
				 PAGE_SIZE);
		assert_memory_equal(buf, want, PAGE_SIZE);
	}
}

#define ht_expect(mm, addr, npages, tag) ht_expect_fill(mm, addr, npages, tag, 1)
#define ht_expect_zero(mm, addr, npages) ht_expect_fill(mm, addr, npages, 0, 0)

static inline void ht_write_byte(struct mm *mm, hva_t addr, unsigned char v)
{
	assert_int_equal(mm_write(mm, addr, &v, 1), 1);
}

static inline unsigned char ht_read_byte(struct mm *mm, hva_t addr)
{
	unsigned char v = 0xee;

	assert_int_equal(mm_read(mm, addr, &v, 1), 1);
	return v;
}

static inline pfn_t ht_pfn(struct mm *mm, hva_t addr)
{
	pte_t pte = mm_lookup_pte(mm, addr);

	assert_true(pte_present(pte));
	return pte_pfn(pte);
}

static inline struct page *ht_page(struct mm *mm, hva_t addr)
{
	return pfn_to_page(mm->host, ht_pfn(mm, addr));
}

static inline uint64_t ht_event(struct host *host, enum vm_event_item item)
{
	struct host_stats st;

	host_get_stats(host, &st);
	return st.events[item];
}

static inline uint64_t ht_pgtables(struct host *host)
{
	struct host_stats st;

	host_get_stats(host, &st);
	return st.pgtable_pages;
}

/* Frames in use other than page tables: data frames and GUP-held frames. */
static inline uint64_t ht_data_frames(struct host *host)
{
	return host_frames_in_use(host) - ht_pgtables(host);
}

static inline void ht_expect_vma(struct mm *mm, unsigned int idx, hva_t start,
				 hva_t end, unsigned long flags)
{
	assert_true(idx < mm->nr_vmas);
	assert_int_equal(mm->vmas[idx]->vm_start, start);
	assert_int_equal(mm->vmas[idx]->vm_end, end);
	assert_int_equal(mm->vmas[idx]->vm_flags, flags);
}

#endif
