/* SPDX-License-Identifier: MIT */
/*
 * devmmu.c - a secondary MMU of our own, written against the installed
 * library as any user would write one: a device that caches translations
 * from its address space to host frames (an IOTLB, say) and keeps them
 * coherent with the host through the MMU-notifier API.
 *
 * The device caches, per page of a window, the host address of the frame
 * and whether it may write it. It pins nothing: a fill looks the frame up
 * with get_user_page, records it, and drops the reference at once. The
 * notifier is what makes that safe:
 *
 *   invalidate_range_start  drop the cached entries in the range, and count
 *                           the range as in progress (fills must not
 *                           install anything until its end);
 *   invalidate_range_end    bump the sequence number, uncount;
 *   release                 the address space is going: drop everything.
 *
 * and every fill follows the sequence-retry idiom: read the sequence,
 * look the frame up (may sleep), take the device's lock, and install only
 * if no invalidation ran or is running since. A device write goes through
 * the cache, so it must never land in a frame the host has taken back.
 *
 * main() drives the device through what the host does to memory --
 * MADV_DONTNEED, mprotect, fork (copy-on-write), munmap -- and checks after
 * each that the device sees what the process sees. Exit 0 if all holds.
 *
 * Build: cc devmmu.c $(pkg-config --cflags --libs tandem)
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tandem/host.h>
#include <tandem/mmu_notifier.h>

#define WINDOW_PAGES 64

struct devmmu {
	struct mmu_notifier mn;         /* embedded: the callbacks find us */
	struct mm *mm;
	hva_t base;                     /* the window the device may access */
	pthread_mutex_t lock;           /* guards the cache and the counters */
	void *host[WINDOW_PAGES];       /* cached frame address, or NULL */
	bool writable[WINDOW_PAGES];
	unsigned long seq;              /* ++ at every invalidation's end */
	long in_progress;               /* invalidations between start and end */
	unsigned long invalidations, fills, retries;
};

#define to_dev(mn) ((struct devmmu *)((char *)(mn) - offsetof(struct devmmu, mn)))

/* Drop the entries of [start, end). Called with dev->lock held. */
static void dev_zap(struct devmmu *dev, hva_t start, hva_t end)
{
	for (unsigned int i = 0; i < WINDOW_PAGES; i++) {
		hva_t a = dev->base + (hva_t)i * PAGE_SIZE;

		if (a >= start && a < end) {
			dev->host[i] = NULL;
			dev->writable[i] = false;
		}
	}
}

static int dev_invalidate_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct devmmu *dev = to_dev(mn);

	/* A device lock that no fill holds while it sleeps: a non-blockable
	 * range (the OOM reaper) could take it too, so no -EAGAIN needed. */
	pthread_mutex_lock(&dev->lock);
	dev->in_progress++;
	dev_zap(dev, r->start, r->end);
	dev->invalidations++;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static void dev_invalidate_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct devmmu *dev = to_dev(mn);

	(void)r;
	pthread_mutex_lock(&dev->lock);
	dev->seq++;
	dev->in_progress--;
	pthread_mutex_unlock(&dev->lock);
}

static void dev_release(struct mmu_notifier *mn, struct mm *mm)
{
	struct devmmu *dev = to_dev(mn);

	(void)mm;
	pthread_mutex_lock(&dev->lock);
	dev_zap(dev, 0, (hva_t)-1);
	pthread_mutex_unlock(&dev->lock);
}

static const struct mmu_notifier_ops dev_ops = {
	.invalidate_range_start = dev_invalidate_start,
	.invalidate_range_end = dev_invalidate_end,
	.release = dev_release,
};

/*
 * The device's translation of page i for an access: the cached entry, or
 * a fill by the sequence-retry idiom. Returns the frame's address with
 * dev->lock held (the caller accesses it, then unlocks), or NULL with the
 * lock dropped and *err set (-EFAULT: not mapped or not writable).
 */
static void *dev_translate_lock(struct devmmu *dev, unsigned int i, bool write, int *err)
{
	for (;;) {
		unsigned long seq;
		struct page *page;
		bool writable;
		int r;

		pthread_mutex_lock(&dev->lock);
		if (dev->host[i] && (!write || dev->writable[i]))
			return dev->host[i];
		seq = dev->seq;
		pthread_mutex_unlock(&dev->lock);

		r = get_user_page(dev->mm, dev->base + (hva_t)i * PAGE_SIZE,
				  write ? FOLL_WRITE : 0, &page, &writable);
		if (r) {
			*err = r;
			return NULL;
		}
		pthread_mutex_lock(&dev->lock);
		if (dev->in_progress || dev->seq != seq) {
			/* The frame may already be the host's again: retry. */
			pthread_mutex_unlock(&dev->lock);
			put_page(page);
			dev->retries++;
			continue;
		}
		dev->host[i] = page_address(page);
		dev->writable[i] = writable;
		dev->fills++;
		/* Nothing stays pinned: the notifier, not a reference, keeps
		 * the entry honest. The lock is still held for the access. */
		put_page(page);
		return dev->host[i];
	}
}

static int dev_read(struct devmmu *dev, unsigned int i, uint64_t *val)
{
	int err = 0;
	uint64_t *p = dev_translate_lock(dev, i, false, &err);

	if (!p)
		return err;
	*val = *p;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static int dev_write(struct devmmu *dev, unsigned int i, uint64_t val)
{
	int err = 0;
	uint64_t *p = dev_translate_lock(dev, i, true, &err);

	if (!p)
		return err;
	*p = val;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static int failures;

#define CHECK(cond, ...) do {                                         \
	if (!(cond)) {                                                \
		fprintf(stderr, "devmmu: FAILED: " __VA_ARGS__);      \
		fputc('\n', stderr);                                  \
		failures++;                                           \
	}                                                             \
} while (0)

static uint64_t proc_read(struct mm *mm, hva_t a)
{
	uint64_t v = ~0ULL;

	CHECK(mm_read(mm, a, &v, sizeof(v)) == sizeof(v), "mm_read at %#llx",
	      (unsigned long long)a);
	return v;
}

int main(void)
{
	struct host_config cfg = { .ram_bytes = 64ULL << 20 };
	struct devmmu dev = { .mn.ops = &dev_ops };
	struct host *host;
	struct mm *mm, *child;
	uint64_t v;
	int err;

	if ((err = host_create(&cfg, &host)) || (err = mm_create(host, &mm))) {
		fprintf(stderr, "devmmu: host set-up: %s\n", strerror(-err));
		return 1;
	}
	pthread_mutex_init(&dev.lock, NULL);
	dev.mm = mm;
	err = mm_mmap(mm, 0, WINDOW_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, &dev.base);
	CHECK(!err, "mmap: %d", err);
	err = mmu_notifier_register(&dev.mn, mm);
	CHECK(!err, "mmu_notifier_register: %d", err);

	/* 1. The device writes every page; the process reads its writes. */
	for (unsigned int i = 0; i < WINDOW_PAGES; i++)
		CHECK(dev_write(&dev, i, 0x1000 + i) == 0, "device write %u", i);
	for (unsigned int i = 0; i < WINDOW_PAGES; i++)
		CHECK(proc_read(mm, dev.base + i * PAGE_SIZE) == 0x1000 + i,
		      "process does not see the device's write to page %u", i);

	/* 2. MADV_DONTNEED: the frames go back to the host; the device must
	 * read zeroes (a fresh page), not the old frame's data. */
	CHECK(mm_madvise(mm, dev.base, 8 * PAGE_SIZE, MADV_DONTNEED) == 0, "madvise");
	for (unsigned int i = 0; i < 8; i++)
		CHECK(dev_read(&dev, i, &v) == 0 && v == 0,
		      "page %u after DONTNEED: device read %#llx, want 0", i,
		      (unsigned long long)v);

	/* 3. mprotect read-only: the device's cached write permission must
	 * go with it; reads still work. Then writable again. */
	CHECK(mm_mprotect(mm, dev.base, WINDOW_PAGES * PAGE_SIZE, PROT_READ) == 0, "mprotect");
	CHECK(dev_write(&dev, 9, 1) == -EFAULT, "device wrote a read-only page");
	CHECK(dev_read(&dev, 9, &v) == 0 && v == 0x1009, "read-only page 9 reads %#llx",
	      (unsigned long long)v);
	CHECK(mm_mprotect(mm, dev.base, WINDOW_PAGES * PAGE_SIZE,
			  PROT_READ | PROT_WRITE) == 0, "mprotect back");

	/* 4. fork: the pages become copy-on-write. A device write must break
	 * COW in the parent and never reach the child's copy. */
	CHECK(mm_fork(mm, &child) == 0, "fork");
	CHECK(dev_write(&dev, 20, 0xbeef) == 0, "device write after fork");
	CHECK(proc_read(mm, dev.base + 20 * PAGE_SIZE) == 0xbeef, "parent misses the write");
	CHECK(proc_read(child, dev.base + 20 * PAGE_SIZE) == 0x1014,
	      "the device's write leaked into the forked child");
	mmput(child);

	/* 5. munmap: the device can no longer reach the window. */
	CHECK(mm_munmap(mm, dev.base, WINDOW_PAGES * PAGE_SIZE) == 0, "munmap");
	CHECK(dev_read(&dev, 0, &v) == -EFAULT, "device read an unmapped page");

	printf("devmmu: %lu fills, %lu invalidations, %lu retries\n", dev.fills,
	       dev.invalidations, dev.retries);
	CHECK(dev.invalidations >= 4, "only %lu invalidations reached the device",
	      dev.invalidations);
	CHECK(mmu_notifier_unregister(&dev.mn, mm) == 0, "unregister");
	mmput(mm);
	CHECK(host_frames_in_use(host) == 0, "%llu frames leaked",
	      (unsigned long long)host_frames_in_use(host));
	CHECK(host_destroy(host) == 0, "host_destroy");
	pthread_mutex_destroy(&dev.lock);
	printf("devmmu: %s\n", failures ? "FAILED" : "OK");
	return failures ? 1 : 0;
}
