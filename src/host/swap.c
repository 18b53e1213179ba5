/* SPDX-License-Identifier: MIT */
/*
 * swap.c - the swap device: a real file of 4 KiB slots, slot counts shared
 * by fork, and the swap cache.
 *
 * A page on its way out (reclaim) or in (a fault) sits in the swap cache:
 * cache[slot] holds it, with a reference, PG_swapcache set and
 * page->private == slot. PTEs that reference the slot hold swap entries
 * (non-present PTEs, see internal.h), counted in map[slot].
 *
 * Invariants (under si->lock):
 *  1. A slot is free iff map[slot] == 0 and cache[slot] == NULL.
 *  2. cache[slot] == page iff PG_swapcache and page->private == slot.
 *  3. A page's content moves between frame and file only with PG_locked
 *     held, so a slot is never reused while its old page is being written:
 *     the swap cache entry goes only with the page lock held.
 *
 * States of a slot: free --add_to_swap--> cached (page resident, unmapped
 * or mapped) --writepage--> cached+on disk --reclaim drops cache--> on disk
 * only (map > 0) --swapin_page--> cached again --last swap_free--> free.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

int swap_init(struct host *host)
{
	const struct host_config *cfg = &host->cfg;
	struct swap_info *si;
	int err;

	if (!cfg->swap_bytes)
		return 0;
	si = calloc(1, sizeof(*si));
	if (!si)
		return -ENOMEM;
	si->nr_slots = cfg->swap_bytes >> PAGE_SHIFT;
	si->map = calloc(si->nr_slots, sizeof(*si->map));
	si->cache = calloc(si->nr_slots, sizeof(*si->cache));
	if (!si->map || !si->cache) {
		err = -ENOMEM;
		goto out_free;
	}
	if (cfg->swap_path) {
		if (strlen(cfg->swap_path) >= sizeof(si->path)) {
			err = -ENAMETOOLONG;
			goto out_free;
		}
		strcpy(si->path, cfg->swap_path);
		si->fd = open(si->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	} else {
		const char *dir = getenv("TMPDIR");

		snprintf(si->path, sizeof(si->path), "%s/tandem-swap-XXXXXX",
			 dir && *dir ? dir : "/tmp");
		si->fd = mkostemp(si->path, O_CLOEXEC);
	}
	if (si->fd < 0) {
		err = -errno;
		goto out_free;
	}
	if (!cfg->keep_swap_file)
		unlink(si->path);       /* the file lives until close */
	if (ftruncate(si->fd, (off_t)(si->nr_slots << PAGE_SHIFT))) {
		err = -errno;
		close(si->fd);
		goto out_free;
	}
	spin_lock_init(&si->lock);
	si->nr_free = si->nr_slots;
	host->swap = si;
	return 0;
out_free:
	free(si->map);
	free(si->cache);
	free(si);
	return err;
}

void swap_exit(struct host *host)
{
	struct swap_info *si = host->swap;

	if (!si)
		return;
	BUG_ON(si->nr_free != si->nr_slots); /* every entry and cache page gone */
	close(si->fd);
	mutex_destroy(&si->lock);
	free(si->map);
	free(si->cache);
	free(si);
	host->swap = NULL;
}

void host_swap_inject_failures(struct host *host, long writes, long reads)
{
	if (!host->swap)
		return;
	atomic_store(&host->swap->fail_writes, writes);
	atomic_store(&host->swap->fail_reads, reads);
}

/* Consume one injected failure, if any is pending. */
static bool inject(atomic_long *n)
{
	long v = atomic_load(n);

	while (v > 0)
		if (atomic_compare_exchange_weak(n, &v, v - 1))
			return true;
	return false;
}

static void cache_insert_locked(struct swap_info *si, uint64_t slot, struct page *page)
{
	lockdep_assert_held(&si->lock);
	BUG_ON(si->cache[slot] || PageFlag(page, PG_swapcache));
	get_page(page);
	si->cache[slot] = page;
	page->private = slot;
	SetPageFlag(page, PG_swapcache);
}

/* Drop the cache entry of page; the caller puts the returned reference. */
static void cache_delete_locked(struct swap_info *si, struct page *page)
{
	uint64_t slot = page->private;

	lockdep_assert_held(&si->lock);
	BUG_ON(si->cache[slot] != page);
	si->cache[slot] = NULL;
	ClearPageFlag(page, PG_swapcache);
	page->private = 0;
	if (si->map[slot] == 0)
		si->nr_free++;
}

/*
 * Give a locked, unmapped-or-mapped page a slot and put it in the swap
 * cache. Returns 0, or -ENOSPC when swap is full (or absent).
 */
int add_to_swap(struct page *page)
{
	struct swap_info *si = page->host->swap;

	BUG_ON(!PageFlag(page, PG_locked));
	if (!si)
		return -ENOSPC;
	spin_lock(&si->lock);
	if (!si->nr_free) {
		spin_unlock(&si->lock);
		return -ENOSPC;
	}
	for (uint64_t n = 0; n < si->nr_slots; n++) {
		uint64_t slot = (si->cursor + n) % si->nr_slots;

		if (si->map[slot] || si->cache[slot])
			continue;
		si->cursor = slot + 1;
		si->nr_free--;
		cache_insert_locked(si, slot, page);
		spin_unlock(&si->lock);
		/* The slot holds nothing yet: the page must be written. */
		SetPageFlag(page, PG_dirty);
		return 0;
	}
	BUG(); /* nr_free said there was one */
}

/* A PTE now references slot (reclaim's unmap, or fork copying one). */
void swap_duplicate(struct host *host, uint64_t slot)
{
	struct swap_info *si = host->swap;

	spin_lock(&si->lock);
	BUG_ON(slot >= si->nr_slots || (!si->map[slot] && !si->cache[slot]));
	si->map[slot]++;
	spin_unlock(&si->lock);
}

uint32_t swap_count(struct host *host, uint64_t slot)
{
	struct swap_info *si = host->swap;
	uint32_t n;

	spin_lock(&si->lock);
	n = si->map[slot];
	spin_unlock(&si->lock);
	return n;
}

/*
 * A PTE no longer references slot. When the last reference goes and a
 * cache page is still there, the cache entry goes too if the page lock can
 * be had (else reclaim, which holds it, drops it when done).
 */
void swap_free(struct host *host, uint64_t slot)
{
	struct swap_info *si = host->swap;
	struct page *put = NULL;

	spin_lock(&si->lock);
	BUG_ON(slot >= si->nr_slots || si->map[slot] == 0);
	if (--si->map[slot] == 0) {
		struct page *page = si->cache[slot];

		if (!page) {
			si->nr_free++;
		} else if (trylock_page(page)) {
			cache_delete_locked(si, page);
			unlock_page(page);
			put = page;
		}
	}
	spin_unlock(&si->lock);
	if (put)
		put_page(put);
}

/* The cache page of slot with a reference, or NULL. */
struct page *lookup_swap_cache(struct host *host, uint64_t slot)
{
	struct swap_info *si = host->swap;
	struct page *page;

	spin_lock(&si->lock);
	page = si->cache[slot];
	if (page)
		get_page(page);
	spin_unlock(&si->lock);
	return page;
}

/*
 * Page locked, in the swap cache, no swap PTE left: drop the cache entry.
 * Returns true if it did.
 */
bool try_to_free_swap_locked(struct page *page)
{
	struct swap_info *si = page->host->swap;
	bool freed = false;

	BUG_ON(!PageFlag(page, PG_locked));
	if (!PageFlag(page, PG_swapcache))
		return false;
	spin_lock(&si->lock);
	if (si->map[page->private] == 0) {
		cache_delete_locked(si, page);
		freed = true;
	}
	spin_unlock(&si->lock);
	if (freed)
		put_page(page);
	return freed;
}

/*
 * Reclaim's last step: a locked, unmapped, written page leaves the swap
 * cache if nobody but the cache and the caller (expected_refs in all) holds
 * it; a swap-in that took a reference meanwhile keeps it. Returns true if
 * removed (the cache's reference has been dropped).
 */
bool remove_mapping_swap(struct page *page, int expected_refs)
{
	struct swap_info *si = page->host->swap;
	bool removed = false;

	BUG_ON(!PageFlag(page, PG_locked) || !PageFlag(page, PG_swapcache));
	spin_lock(&si->lock);
	/* Lookups take their reference under si->lock: the count is stable. */
	if (page_count(page) == expected_refs && page_mapcount(page) == 0) {
		cache_delete_locked(si, page);
		removed = true;
	}
	spin_unlock(&si->lock);
	if (removed)
		put_page(page);
	return removed;
}

int swap_writepage(struct host *host, uint64_t slot, struct page *page)
{
	struct swap_info *si = host->swap;

	BUG_ON(!PageFlag(page, PG_locked));
	if (inject(&si->fail_writes) ||
	    pwrite(si->fd, page_address(page), PAGE_SIZE, (off_t)(slot << PAGE_SHIFT)) != PAGE_SIZE) {
		count_vm_event(host, SWAP_WRITE_ERROR);
		return -EIO;
	}
	count_vm_event(host, PSWPOUT);
	return 0;
}

int swap_readpage(struct host *host, uint64_t slot, struct page *page)
{
	struct swap_info *si = host->swap;

	BUG_ON(!PageFlag(page, PG_locked));
	if (inject(&si->fail_reads) ||
	    pread(si->fd, page_address(page), PAGE_SIZE, (off_t)(slot << PAGE_SHIFT)) != PAGE_SIZE) {
		count_vm_event(host, SWAP_READ_ERROR);
		return -EIO;
	}
	count_vm_event(host, PSWPIN);
	return 0;
}

/*
 * Find or read in the page for slot, unlocked and up to date, with a
 * reference. Called with mmap_lock held for read (a fault), no
 * page_table_lock. Returns 0, -ENOMEM, -EIO (read error: the data is lost),
 * or -EAGAIN when the slot was freed meanwhile (the PTE changed: retry the
 * fault).
 */
int swapin_page(struct host *host, uint64_t slot, struct page **pagep)
{
	struct swap_info *si = host->swap;
	struct page *page, *new;
	int err;

	for (;;) {
		page = lookup_swap_cache(host, slot);
		if (page) {
			/* Being read in (or written out) by someone: wait. A
			 * read that failed leaves the page out of the cache. */
			wait_on_page_locked(page);
			/* Still the slot's page? Under the lock: page->private
			 * changes under it (cache_delete_locked). */
			spin_lock(&si->lock);
			bool still = si->cache[slot] == page;

			spin_unlock(&si->lock);
			if (!still) {
				put_page(page);
				continue;
			}
			*pagep = page;
			return 0;
		}
		new = alloc_page(host, 0);
		if (!new)
			return -ENOMEM;
		BUG_ON(!trylock_page(new));
		SetPageFlag(new, PG_swapbacked);
		spin_lock(&si->lock);
		if (si->cache[slot] || si->map[slot] == 0) {
			bool gone = si->map[slot] == 0 && !si->cache[slot];

			spin_unlock(&si->lock);
			unlock_page(new);
			put_page(new);
			if (gone)
				return -EAGAIN;
			continue;       /* someone else is reading it in */
		}
		cache_insert_locked(si, slot, new);
		spin_unlock(&si->lock);
		err = swap_readpage(host, slot, new);
		if (err) {
			spin_lock(&si->lock);
			cache_delete_locked(si, new);
			spin_unlock(&si->lock);
			unlock_page(new);
			put_page(new);  /* the cache's */
			put_page(new);  /* ours: frees it */
			return err;
		}
		lru_cache_add(new);
		unlock_page(new);
		*pagep = new;
		return 0;
	}
}
