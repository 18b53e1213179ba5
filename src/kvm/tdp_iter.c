/* SPDX-License-Identifier: MIT */
/*
 * tdp_iter.c - the GPA page-table iterator (tdp_iter.h).
 */
#include "tdp_iter.h"
#include "base/compiler.h"

static inline unsigned int level_index(gfn_t gfn, int level)
{
	return (unsigned int)(gfn >> (TDP_LEVEL_BITS * (level - 1))) & (TDP_ENTRIES - 1);
}

static inline gfn_t round_gfn_for_level(gfn_t gfn, int level)
{
	return gfn & ~(tdp_level_span(level) - 1);
}

/* Point at the entry of the current level's table that covers iter->gfn. */
static void tdp_iter_refresh_sptep(struct tdp_iter *iter)
{
	iter->sptep = iter->pt_path[iter->level] + level_index(iter->gfn, iter->level);
	/* Acquire: pairs with the release store that published a table, so
	 * a lockless walker that steps into it sees its initialised entries. */
	iter->old_spte = atomic_load_explicit(iter->sptep, memory_order_acquire);
}

void tdp_iter_start_at(struct tdp_iter *iter, struct tdp_table *table, int top_level,
		       int min_level, gfn_t start, gfn_t end)
{
	BUG_ON(top_level < 1 || top_level > TDP_LEVELS);
	BUG_ON(min_level < 1 || min_level > top_level);
	iter->min_level = min_level;
	iter->top_level = top_level;
	iter->end = MIN(end, TDP_MAX_GFN + 1);
	iter->next_gfn = start;
	iter->level = top_level;
	iter->pt_path[top_level] = table->e;
	iter->valid = start < iter->end;
	if (!iter->valid)
		return;
	iter->gfn = round_gfn_for_level(start, iter->level);
	tdp_iter_refresh_sptep(iter);
}

void tdp_iter_start(struct tdp_iter *iter, struct tdp_table *root, int min_level,
		    gfn_t start, gfn_t end)
{
	tdp_iter_start_at(iter, root, TDP_LEVELS, min_level, start, end);
}

static bool try_step_down(struct tdp_iter *iter)
{
	spte_t e;

	if (iter->level == iter->min_level)
		return false;
	/* Read again: the user may have just installed a table here. */
	e = atomic_load_explicit(iter->sptep, memory_order_acquire);
	if (!e)
		return false;
	iter->level--;
	iter->pt_path[iter->level] = spte_to_child(e)->e;
	iter->gfn = round_gfn_for_level(MAX(iter->next_gfn, iter->gfn), iter->level);
	tdp_iter_refresh_sptep(iter);
	return true;
}

/* To the next entry of the same table; false at its end. */
static bool try_step_side(struct tdp_iter *iter)
{
	if (level_index(iter->gfn, iter->level) == TDP_ENTRIES - 1)
		return false;
	iter->gfn += tdp_level_span(iter->level);
	iter->next_gfn = iter->gfn;
	iter->sptep++;
	iter->old_spte = atomic_load_explicit(iter->sptep, memory_order_acquire);
	return true;
}

static bool try_step_up(struct tdp_iter *iter)
{
	if (iter->level == iter->top_level)
		return false;
	iter->level++;
	iter->gfn = round_gfn_for_level(iter->gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	return true;
}

/*
 * Down if possible, else sideways, climbing as long as a table is done.
 * The walk ends when the next entry starts at or past end (or the root
 * table is done).
 */
void tdp_iter_next(struct tdp_iter *iter)
{
	if (try_step_down(iter))
		goto check_end;
	do {
		if (try_step_side(iter))
			goto check_end;
	} while (try_step_up(iter));
	iter->valid = false;
	return;
check_end:
	if (iter->gfn >= iter->end)
		iter->valid = false;
}
