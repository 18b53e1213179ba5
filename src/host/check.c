/* SPDX-License-Identifier: MIT */
/*
 * check.c - whole-structure invariant checker for the primary MMU.
 *
 * Walks every mm's page tables and every frame and cross-checks them:
 *  - each leaf PTE lies inside a VMA and does not exceed its permissions;
 *  - each mapped frame's _mapcount equals the number of PTEs mapping it,
 *    and its rmap list holds exactly those (mm, address) pairs;
 *  - _refcount >= _mapcount; a frame is free iff PG_buddy;
 *  - page-table frames counted per mm and per host match the tables;
 *  - RSS counters match the PTEs;
 *  - free + page tables + reserved + mapped-or-referenced = all frames.
 * Call only while nothing else runs (it takes the locks one mm at a time).
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

struct checker {
	struct host *host;
	uint32_t *swaps;        /* swap PTEs seen per slot */
	uint32_t *maps;         /* PTEs seen per pfn */
	uint8_t *is_table;      /* pfn is a page table of some mm */
	long errors;
};

#define CHECK(c, ...)                                                   \
	do {                                                            \
		if (!(c)) {                                             \
			if (ck->errors++ < 20) {                        \
				fprintf(stderr, "tandem: invariant: ");  \
				fprintf(stderr, __VA_ARGS__);           \
				fputc('\n', stderr);                    \
			}                                               \
		}                                                       \
	} while (0)

static long check_table(struct checker *ck, struct mm *mm, pfn_t pfn,
			int level, hva_t base, long *anon, long *swapents)
{
	pte_t *table = pfn_table(ck->host, pfn);
	long tables = 1;

	CHECK(pfn < ck->host->nr_pages, "mm %u: table pfn %llu out of range",
	      mm->id, (unsigned long long)pfn);
	if (pfn >= ck->host->nr_pages)
		return 0;
	CHECK(PageFlag(pfn_to_page(ck->host, pfn), PG_pgtable),
	      "mm %u: table frame %llu lacks PG_pgtable", mm->id,
	      (unsigned long long)pfn);
	CHECK(!ck->is_table[pfn], "frame %llu used as two page tables",
	      (unsigned long long)pfn);
	ck->is_table[pfn] = 1;
	for (int i = 0; i < PTRS_PER_TABLE; i++) {
		pte_t e = table[i];
		hva_t addr = base + (hva_t)i * LEVEL_SIZE(level);

		if (pte_none(e))
			continue;
		if (level > 1) {
			CHECK(pte_present(e), "mm %u: non-present upper entry at %#llx",
			      mm->id, (unsigned long long)addr);
			if (pte_present(e))
				tables += check_table(ck, mm, pte_pfn(e), level - 1,
						      addr, anon, swapents);
			continue;
		}
		struct vm_area_struct *vma = vma_lookup(mm, addr);

		CHECK(vma, "mm %u: PTE at %#llx outside every VMA", mm->id,
		      (unsigned long long)addr);
		if (pte_is_swap(e)) {
			uint64_t slot = pte_swp_slot(e);
			bool ok = ck->host->swap && slot < ck->host->swap->nr_slots;

			CHECK(ok, "mm %u: swap PTE at %#llx names bad slot %llu", mm->id,
			      (unsigned long long)addr, (unsigned long long)slot);
			if (ok)
				ck->swaps[slot]++;
			(*swapents)++;
			continue;
		}
		CHECK(pte_present(e), "mm %u: unknown non-present PTE %#llx at %#llx",
		      mm->id, (unsigned long long)e, (unsigned long long)addr);
		if (!vma || !pte_present(e))
			continue;
		CHECK(!pte_write(e) || (vma->vm_flags & VM_WRITE),
		      "mm %u: writable PTE at %#llx in a read-only VMA", mm->id,
		      (unsigned long long)addr);
		CHECK(!pte_user(e) || (vma->vm_flags & VM_ACCESS_FLAGS),
		      "mm %u: accessible PTE at %#llx in a PROT_NONE VMA", mm->id,
		      (unsigned long long)addr);
		pfn_t p = pte_pfn(e);
		if (pte_special(e)) {
			CHECK(is_zero_pfn(ck->host, p) && !pte_write(e),
			      "mm %u: special PTE at %#llx is not the RO zero page",
			      mm->id, (unsigned long long)addr);
			continue;
		}
		CHECK(p < ck->host->nr_pages && !is_zero_pfn(ck->host, p),
		      "mm %u: PTE at %#llx maps bad pfn %llu", mm->id,
		      (unsigned long long)addr, (unsigned long long)p);
		if (p >= ck->host->nr_pages)
			continue;
		struct page *page = pfn_to_page(ck->host, p);
		CHECK(page_rmap_contains(page, mm, addr),
		      "mm %u: PTE at %#llx -> pfn %llu missing from the rmap",
		      mm->id, (unsigned long long)addr, (unsigned long long)p);
		CHECK(!PageFlag(page, PG_buddy), "mm %u: PTE at %#llx maps free pfn %llu",
		      mm->id, (unsigned long long)addr, (unsigned long long)p);
		ck->maps[p]++;
		(*anon)++;
	}
	return tables;
}

int host_check_invariants(struct host *host)
{
	struct checker ck_, *ck = &ck_;
	struct mm *mm;
	long tables_total = 0;

	if (!host)
		return -EINVAL;
	memset(ck, 0, sizeof(*ck));
	ck->host = host;
	ck->maps = calloc(host->nr_pages, sizeof(*ck->maps));
	ck->is_table = calloc(host->nr_pages, 1);
	ck->swaps = calloc(host->swap ? host->swap->nr_slots : 1, sizeof(*ck->swaps));
	BUG_ON(!ck->maps || !ck->is_table || !ck->swaps);

	/* Reclaim (kswapd) moves pages between lists and PTEs: hold it off. */
	down_write(&host->reclaim_lock);
	/* mm_list_lock is a leaf (the OOM killer takes it under mmap_lock):
	 * take references, then check each mm without it. */
	unsigned int nmm = 0, cap = 16;
	struct mm **mms = malloc(cap * sizeof(*mms));

	BUG_ON(!mms);
	spin_lock(&host->mm_list_lock);
	list_for_each_entry(mm, &host->mm_list, mmlist) {
		if (nmm == cap) {
			cap *= 2;
			mms = realloc(mms, cap * sizeof(*mms));
			BUG_ON(!mms);
		}
		mmgrab(mm);
		mms[nmm++] = mm;
	}
	spin_unlock(&host->mm_list_lock);
	for (unsigned int k = 0; k < nmm; k++) {
		long anon = 0, swapents = 0, tables;

		mm = mms[k];

		down_read(&mm->mmap_lock);
		spin_lock(&mm->page_table_lock);
		for (unsigned int i = 0; i < mm->nr_vmas; i++) {
			struct vm_area_struct *v = mm->vmas[i];

			CHECK(v->vm_start < v->vm_end && PAGE_ALIGNED(v->vm_start) &&
			      PAGE_ALIGNED(v->vm_end) && v->vm_start >= TASK_UNMAPPED_FLOOR &&
			      v->vm_end <= TASK_SIZE && v->vm_mm == mm,
			      "mm %u: malformed VMA [%#llx, %#llx)", mm->id,
			      (unsigned long long)v->vm_start, (unsigned long long)v->vm_end);
			if (i + 1 < mm->nr_vmas) {
				struct vm_area_struct *n = mm->vmas[i + 1];

				CHECK(v->vm_end <= n->vm_start, "mm %u: VMAs overlap at %#llx",
				      mm->id, (unsigned long long)n->vm_start);
				CHECK(v->vm_end != n->vm_start || v->vm_flags != n->vm_flags,
				      "mm %u: unmerged twin VMAs at %#llx", mm->id,
				      (unsigned long long)n->vm_start);
			}
		}
		tables = check_table(ck, mm, mm->pgd_pfn, PT_LEVELS, 0, &anon, &swapents);
		CHECK(swapents == atomic_load(&mm->rss[MM_SWAPENTS]),
		      "mm %u: %ld swap PTEs, counter says %ld", mm->id, swapents,
		      (long)atomic_load(&mm->rss[MM_SWAPENTS]));
		CHECK(tables - 1 == atomic_load(&mm->nr_pgtables),
		      "mm %u: %ld tables below pgd, counter says %ld", mm->id,
		      tables - 1, (long)atomic_load(&mm->nr_pgtables));
		CHECK(anon == atomic_load(&mm->rss[MM_ANONPAGES]),
		      "mm %u: %ld anon PTEs, RSS counter says %ld", mm->id, anon,
		      (long)atomic_load(&mm->rss[MM_ANONPAGES]));
		tables_total += tables;
		spin_unlock(&mm->page_table_lock);
		up_read(&mm->mmap_lock);
	}

	long nfree = 0, tbl = 0, used = 0, reserved = 0, on_lru = 0, cached = 0;
	for (pfn_t pfn = 0; pfn < host->nr_pages; pfn++) {
		struct page *page = &host->pages[pfn];
		int rc = page_count(page), mc = page_mapcount(page);

		if (PageFlag(page, PG_reserved)) {
			reserved++;
			continue;
		}
		if (PageFlag(page, PG_buddy)) {
			nfree++;
			CHECK(rc == 0 && mc == 0 && !page->rmap,
			      "free pfn %llu has refcount %d mapcount %d",
			      (unsigned long long)pfn, rc, mc);
			continue;
		}
		if (PageFlag(page, PG_pgtable)) {
			tbl++;
			CHECK(ck->is_table[pfn], "pgtable pfn %llu belongs to no mm",
			      (unsigned long long)pfn);
			continue;
		}
		used++;
		if (PageFlag(page, PG_lru))
			on_lru++;
		if (PageFlag(page, PG_swapcache)) {
			struct swap_info *si = host->swap;

			cached++;
			CHECK(si && page->private < si->nr_slots && si->cache[page->private] == page,
			      "pfn %llu: PG_swapcache but not cache[%lu]",
			      (unsigned long long)pfn, page->private);
			CHECK(rc >= mc + 1, "pfn %llu: swap cache page with refcount %d, mapcount %d",
			      (unsigned long long)pfn, rc, mc);
		}
		CHECK(rc > 0, "in-use pfn %llu has refcount %d", (unsigned long long)pfn, rc);
		CHECK((uint32_t)mc == ck->maps[pfn],
		      "pfn %llu: mapcount %d but %u PTEs map it",
		      (unsigned long long)pfn, mc, ck->maps[pfn]);
		CHECK(page_rmap_count(page) == mc, "pfn %llu: mapcount %d, rmap has %d",
		      (unsigned long long)pfn, mc, page_rmap_count(page));
		CHECK(rc >= mc, "pfn %llu: refcount %d < mapcount %d",
		      (unsigned long long)pfn, rc, mc);
	}
	CHECK(nfree == atomic_load(&host->nr_free), "%ld free frames, counter says %ld",
	      nfree, (long)atomic_load(&host->nr_free));
	CHECK(tbl == tables_total && tbl == atomic_load(&host->nr_pgtables),
	      "%ld page-table frames, walks found %ld, counter says %ld", tbl,
	      tables_total, (long)atomic_load(&host->nr_pgtables));
	CHECK(nfree + tbl + used + reserved == (long)host->nr_pages,
	      "frames do not add up");
	spin_lock(&host->lru.lock);
	CHECK(on_lru == host->lru.nr_active + host->lru.nr_inactive,
	      "%ld pages have PG_lru, lists hold %ld", on_lru,
	      host->lru.nr_active + host->lru.nr_inactive);
	spin_unlock(&host->lru.lock);
	if (host->swap) {
		struct swap_info *si = host->swap;
		uint64_t free_slots = 0;
		long in_cache = 0;

		spin_lock(&si->lock);
		for (uint64_t slot = 0; slot < si->nr_slots; slot++) {
			CHECK(si->map[slot] == ck->swaps[slot],
			      "swap slot %llu: count %u but %u swap PTEs",
			      (unsigned long long)slot, si->map[slot], ck->swaps[slot]);
			if (si->cache[slot])
				in_cache++;
			else if (!si->map[slot])
				free_slots++;
		}
		CHECK(free_slots == si->nr_free, "%llu free swap slots, counter says %llu",
		      (unsigned long long)free_slots, (unsigned long long)si->nr_free);
		CHECK(in_cache == cached, "%ld swap cache entries, %ld PG_swapcache pages",
		      in_cache, cached);
		spin_unlock(&si->lock);
	}
	up_write(&host->reclaim_lock);
	for (unsigned int k = 0; k < nmm; k++)
		mmdrop(mms[k]);
	free(mms);
	long errors = ck->errors;
	free(ck->maps);
	free(ck->is_table);
	free(ck->swaps);
	return errors ? -EUCLEAN : 0;
}
