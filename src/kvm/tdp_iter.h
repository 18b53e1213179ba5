/* SPDX-License-Identifier: MIT */
/*
 * tdp_iter.h - a walker of the GPA page tables, as an iterator.
 *
 * The iterator visits, in gfn order, every entry of every level whose span
 * meets [start, end), descending into present tables down to min_level:
 *
 *   step down   into the table the current entry points to (if it is one,
 *               and level > min_level), to the entry covering next_gfn;
 *   step side   to the next entry of the same table;
 *   step up     to the parent entry, when the table is exhausted.
 *
 * A user visits each entry once (tables before their contents) and decides
 * what to do with it; the policy (map, zap, age) lives in tdp_mmu.c. The
 * walk reads entries with acquire loads, so a lockless walker (a vCPU)
 * sees a table's contents once it sees the entry that published it; tables
 * are never freed while the VM lives, so a walker never stands on freed
 * memory.
 *
 * A user that sets the current entry to a new table (the map path) stores
 * it through iter->sptep; the next step down reads the entry again.
 *
 * The GVA tables (gva.h) are walked by the same iterator: their nodes
 * start with the same 512 entries, an interior entry is 0 or the child's
 * address with bit 0 as its valid bit, and "gfns" are guest-virtual page
 * numbers. A GVA link whose valid bit is clear is still stepped into (its
 * child keeps entries the zap paths must reach).
 */
#ifndef TANDEM_KVM_TDP_ITER_H
#define TANDEM_KVM_TDP_ITER_H

#include "spte.h"

struct tdp_iter {
	gfn_t next_gfn;                 /* where the walk goes on from */
	int top_level;                  /* of the table the walk started in */
	gfn_t end;                      /* exclusive */
	_Atomic spte_t *pt_path[TDP_LEVELS + 1]; /* table being walked, per level */
	_Atomic spte_t *sptep;          /* the current entry */
	spte_t old_spte;                /* its value when the iterator read it */
	gfn_t gfn;                      /* first gfn the current entry spans */
	int level;                      /* of the current entry: 1 = leaf */
	int min_level;
	bool valid;
};

/* gfns one entry of a table at level spans. */
static inline gfn_t tdp_level_span(int level)
{
	return 1ULL << (TDP_LEVEL_BITS * (level - 1));
}

void tdp_iter_start(struct tdp_iter *iter, struct tdp_table *root, int min_level,
		    gfn_t start, gfn_t end);
/* The same from a table of level top_level (a subtree, or a tree of fewer
 * levels: the GVA tables of Sv39 have three). */
void tdp_iter_start_at(struct tdp_iter *iter, struct tdp_table *table, int top_level,
		       int min_level, gfn_t start, gfn_t end);
void tdp_iter_next(struct tdp_iter *iter);

/* Every entry meeting [start, end), at levels TDP_LEVELS down to min_level. */
#define for_each_tdp_pte_min_level(iter, root, min_level, start, end)          \
	for (tdp_iter_start(&(iter), (root), (min_level), (start), (end));      \
	     (iter).valid; tdp_iter_next(&(iter)))

#define for_each_tdp_pte(iter, root, start, end) \
	for_each_tdp_pte_min_level(iter, root, 1, start, end)

/* Every entry meeting [start, end) in table (of level top_level) and below. */
#define for_each_tdp_pte_at(iter, table, top_level, min_level, start, end)      \
	for (tdp_iter_start_at(&(iter), (table), (top_level), (min_level),      \
			       (start), (end));                                 \
	     (iter).valid; tdp_iter_next(&(iter)))

#endif
