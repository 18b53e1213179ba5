/* SPDX-License-Identifier: MIT */
/*
 * pfncache.c - gfn_to_pfn_cache (seed 001, and Linux's virt/kvm/pfncache.c
 * since): a guest page the host writes through a cached host address,
 * with no reference held, kept coherent by invalidation.
 *
 * Refresh (may sleep; refresh_lock serializes refreshes):
 *   1. wait -- sleep, not spin -- while any invalidation is between its
 *      start and its end (mn_active_invalidate_count, whose drop to 0
 *      broadcasts mn_invalidate_done): its end may not have come yet, and
 *      a page looked up now could be the one it is taking away;
 *   2. seq = mmu_invalidate_seq (acquire); resolve gpa -> memslot -> hva;
 *   3. GUP the page for write (COW broken, swapped in), mark it dirty,
 *      note its host address, drop the reference: nothing stays pinned;
 *   4. take the write lock; if an invalidation has started since (the
 *      count) or ended since (seq moved), the page may be gone: go to 1;
 *   5. install khva / pfn / uhva / generation, valid = true; unlock.
 *
 * Invalidation (invalidate_range_start, after it counted itself in
 * mn_active_invalidate_count, before it returns): every active cache whose
 * uhva is in the range is marked invalid under its write lock. A user
 * holds the read lock from its check to its last write through khva, so
 * once start has the write lock no write through the old khva is left, and
 * none can start. A refresh that looked the page up before start counted
 * itself sees the count (or, once end ran, seq) at step 4 and starts over.
 *
 * The reference is dropped at step 3 because the host must stay free to
 * swap, merge or migrate the page: the invalidation, not a pin, is what
 * keeps khva honest (the seed's point). The page is marked dirty at
 * refresh: writes through khva set no dirty bit, and the page cannot be
 * cleaned (written to swap and unmapped) without an invalidation first.
 *
 * Lock order: kvm->lock > kvm->gpc_lock > gpc->lock > mn_invalidate_lock
 * (step 4); refresh_lock > gpc->lock.
 */
#include <errno.h>
#include <string.h>
#include "kvm_host.h"
#include "base/rcu.h"
#include "base/xalloc.h"

void kvm_gpc_init(struct gfn_to_pfn_cache *gpc, struct kvm *kvm)
{
	memset(gpc, 0, sizeof(*gpc));
	gpc->kvm = kvm;
	gpc->usage = KVM_HOST_USES_PFN;
	atomic_init(&gpc->lock, 0);
	atomic_init(&gpc->valid, false);
	atomic_init(&gpc->guest_mapped, false);
	BUG_ON(pthread_mutex_init(&gpc->refresh_lock, NULL));
}

void kvm_gpc_init_for_vcpu(struct gfn_to_pfn_cache *gpc, struct kvm_vcpu *vcpu,
			   unsigned int usage)
{
	kvm_gpc_init(gpc, vcpu->kvm);
	gpc->vcpu = vcpu;
	gpc->usage = usage;
}

/*
 * The cache's reader-writer lock, made for readers: a write through a
 * cache should cost about what a plain store does, and the atomic
 * read-modify-writes of a counting rwlock (two per write) cost twice that.
 *
 * Each thread has a reader record (struct gpc_reader: a few slots, each
 * naming the cache it reads, or NULL). A reader publishes the cache in a
 * slot with a plain store, then checks the cache's writer bit; it backs
 * off (clears its slot, waits for the bit to clear) if a writer is there.
 * A writer takes the writer bit, then makes sure every reader's slot store
 * is visible to it -- the asymmetric fence, membarrier(PRIVATE_EXPEDITED),
 * which runs a full barrier on every CPU running one of our threads --
 * then waits until no slot names its cache:
 *
 *   reader                               writer
 *   slot = gpc                           lock |= WRITER
 *   (compiler barrier)                   membarrier()   [full barrier on
 *   if (lock & WRITER) back off                          every running
 *   ... use khva ...                                     thread]
 *   slot = NULL (release)                wait while any slot == gpc
 *
 * Either the reader's slot store precedes the barrier the membarrier puts
 * in its thread, and the writer sees the slot and waits; or its load of
 * lock follows it, and sees WRITER. (A thread that is not running has
 * passed a full barrier in its context switch.) It is the scheme of
 * liburcu's memb flavour, and of the kernel's sys_membarrier users.
 *
 * Where membarrier is not available, and in sanitizer builds
 * (ThreadSanitizer does not model it), the reader's publication is an
 * exchange instead (a full barrier itself): one atomic RMW per read
 * section rather than two. Writers are rare (refresh, invalidation of the
 * cache's own page, activate, deactivate) and pay a membarrier each.
 *
 * Records are never freed: a thread's record goes back to a free list at
 * its exit and is reused by a later thread, so a writer walks the record
 * list with no lock. Every holder does bounded work and never sleeps
 * holding the lock; a spinner yields after a while (the holder may be
 * preempted on these 2-core machines).
 */
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GPC_WRITER       (1u << 31)
#define GPC_READER_SLOTS 4              /* caches one thread reads at once */

struct gpc_reader {
	_Atomic(struct gfn_to_pfn_cache *) in[GPC_READER_SLOTS];
	struct gpc_reader *next;        /* all records; pushed, never removed */
	_Atomic bool free;              /* its thread exited: reusable */
};

static struct gpc_reader *_Atomic gpc_readers;
static _Thread_local struct gpc_reader *gpc_self;
static pthread_once_t gpc_once = PTHREAD_ONCE_INIT;
static pthread_key_t gpc_key;
static bool gpc_membarrier;

static void gpc_reader_exit(void *arg)
{
	struct gpc_reader *r = arg;

	for (int i = 0; i < GPC_READER_SLOTS; i++)
		BUG_ON(atomic_load_explicit(&r->in[i], memory_order_relaxed));
	atomic_store_explicit(&r->free, true, memory_order_release);
}

static void gpc_lock_init(void)
{
	BUG_ON(pthread_key_create(&gpc_key, gpc_reader_exit));
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
	gpc_membarrier = syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
				 0, 0) == 0;
#endif
}

static struct gpc_reader *gpc_reader_register(void)
{
	struct gpc_reader *r;

	pthread_once(&gpc_once, gpc_lock_init);
	for (r = atomic_load_explicit(&gpc_readers, memory_order_acquire); r; r = r->next) {
		bool was_free = true;

		if (atomic_compare_exchange_strong(&r->free, &was_free, false))
			break;
	}
	if (!r) {
		r = xaligned_zalloc(64, sizeof(*r));   /* a line each: no false sharing */
		r->next = atomic_load_explicit(&gpc_readers, memory_order_relaxed);
		while (!atomic_compare_exchange_weak_explicit(&gpc_readers, &r->next, r,
							      memory_order_release,
							      memory_order_relaxed))
			;
	}
	BUG_ON(pthread_setspecific(gpc_key, r));
	gpc_self = r;
	return r;
}

void kvm_gpc_read_lock(struct gfn_to_pfn_cache *gpc)
{
	struct gpc_reader *r = gpc_self;
	unsigned int spins = 0, i = 0;

	if (unlikely(!r))
		r = gpc_reader_register();
	while (atomic_load_explicit(&r->in[i], memory_order_relaxed)) {
		i++;
		BUG_ON(i == GPC_READER_SLOTS);  /* more nested read sections */
	}
	for (;;) {
		if (likely(gpc_membarrier)) {
			atomic_store_explicit(&r->in[i], gpc, memory_order_relaxed);
			atomic_signal_fence(memory_order_seq_cst);
		} else {
			atomic_exchange_explicit(&r->in[i], gpc, memory_order_seq_cst);
		}
		/* Acquire: pairs with the last writer's unlock (khva & co). */
		if (likely(!(atomic_load_explicit(&gpc->lock, memory_order_acquire) & GPC_WRITER)))
			return;
		atomic_store_explicit(&r->in[i], NULL, memory_order_release);
		while (atomic_load_explicit(&gpc->lock, memory_order_relaxed) & GPC_WRITER)
			spin_relax(&spins);
	}
}

void kvm_gpc_read_unlock(struct gfn_to_pfn_cache *gpc)
{
	struct gpc_reader *r = gpc_self;
	int i = GPC_READER_SLOTS - 1;

	while (atomic_load_explicit(&r->in[i], memory_order_relaxed) != gpc) {
		BUG_ON(i == 0);                 /* not read-locked by this thread */
		i--;
	}
	/* Release: the reader's uses of khva happen before a writer's next
	 * change (the writer's acquire load of this slot). */
	atomic_store_explicit(&r->in[i], NULL, memory_order_release);
}

void gpc_write_lock(struct gfn_to_pfn_cache *gpc)
{
	unsigned int spins = 0;

	pthread_once(&gpc_once, gpc_lock_init);
	while (atomic_fetch_or_explicit(&gpc->lock, GPC_WRITER, memory_order_acquire) & GPC_WRITER)
		spin_relax(&spins);
	/* Every reader's slot store before this point is visible below;
	 * every later reader sees WRITER (the comment above). */
	if (gpc_membarrier)
		BUG_ON(syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0));
	else
		atomic_thread_fence(memory_order_seq_cst);
	for (struct gpc_reader *r = atomic_load_explicit(&gpc_readers, memory_order_acquire);
	     r; r = r->next)
		for (int i = 0; i < GPC_READER_SLOTS; i++)
			/* Acquire: pairs with the reader's unlock. */
			while (atomic_load_explicit(&r->in[i], memory_order_acquire) == gpc)
				spin_relax(&spins);
}

void gpc_write_unlock(struct gfn_to_pfn_cache *gpc)
{
	atomic_fetch_and_explicit(&gpc->lock, ~GPC_WRITER, memory_order_release);
}

bool kvm_gpc_check(struct gfn_to_pfn_cache *gpc, unsigned int len)
{
	return gpc->active && atomic_load_explicit(&gpc->valid, memory_order_relaxed) && len &&
	       (gpc->gpa & (PAGE_SIZE - 1)) + len <= PAGE_SIZE &&
	       gpc->generation == atomic_load_explicit(&gpc->kvm->memslots_generation,
						       memory_order_acquire);
}

/* Step 1: sleep until no invalidation is between start and end. */
static void gpc_wait_invalidations(struct gfn_to_pfn_cache *gpc)
{
	struct kvm *kvm = gpc->kvm;

	mutex_lock(&kvm->mn_invalidate_lock);
	while (kvm->mn_active_invalidate_count) {
		gpc->stat.waits++;      /* refresh_lock held: ours alone */
		BUG_ON(pthread_cond_wait(&kvm->mn_invalidate_done,
					 &kvm->mn_invalidate_lock.m));
	}
	mutex_unlock(&kvm->mn_invalidate_lock);
}

/* Step 4, with gpc->lock held for write and mn_invalidate_lock held: did
 * an invalidation start or end since seq was taken? */
static bool gpc_invalidate_retry(struct kvm *kvm, unsigned long seq)
{
	lockdep_assert_held(&kvm->mn_invalidate_lock);
	return kvm->mn_active_invalidate_count != 0 ||
	       atomic_load_explicit(&kvm->mmu_invalidate_seq, memory_order_acquire) != seq;
}

/* Called with refresh_lock held. */
static int gpc_refresh_locked(struct gfn_to_pfn_cache *gpc)
{
	struct kvm *kvm = gpc->kvm;

	if (!gpc->active)
		return -EINVAL;
	for (;;) {
		struct kvm_memory_slot *slot;
		unsigned long seq;
		uint64_t generation;
		struct page *page;
		bool writable;
		hva_t hva;
		int r;

		gpc_wait_invalidations(gpc);
		seq = atomic_load_explicit(&kvm->mmu_invalidate_seq, memory_order_acquire);
		rcu_read_lock();
		generation = atomic_load_explicit(&kvm->memslots_generation, memory_order_acquire);
		slot = gfn_to_memslot(kvm_memslots(kvm), gpc->gpa >> PAGE_SHIFT);
		if (!slot || (slot->flags & (KVM_MEMSLOT_INVALID | KVM_MEM_READONLY))) {
			/* Read before the unlock: the slot may be freed after. */
			bool moving = slot && (slot->flags & KVM_MEMSLOT_INVALID);

			rcu_read_unlock();
			if (moving) {
				gpc->stat.retries++;
				continue;       /* being moved or deleted: wait it out */
			}
			return -EFAULT;
		}
		hva = slot_gfn_to_hva(slot, gpc->gpa >> PAGE_SHIFT);
		rcu_read_unlock();
		r = get_user_page(kvm->mm, hva, FOLL_WRITE, &page, &writable);
		if (r)
			return r;
		set_page_dirty(page);
		kvm_test_hook(kvm, KVM_HOOK_GPC_AFTER_GUP, NULL);

		gpc_write_lock(gpc);
		/* The check and the install under mn_invalidate_lock: an
		 * invalidation counts itself under it before it looks at the
		 * caches, so it either comes first (we retry) or finds this
		 * install done (gfn_to_pfn_cache_invalidate_start may then
		 * look at valid and uhva without the cache's lock). */
		mutex_lock(&kvm->mn_invalidate_lock);
		if (gpc_invalidate_retry(kvm, seq)) {
			mutex_unlock(&kvm->mn_invalidate_lock);
			gpc->stat.retries++;
			gpc_write_unlock(gpc);
			put_page(page);
			continue;
		}
		gpc->uhva = hva;
		gpc->pfn = page_to_pfn(page);
		gpc->khva = (char *)page_address(page) + (gpc->gpa & (PAGE_SIZE - 1));
		gpc->generation = generation;
		atomic_store_explicit(&gpc->valid, true, memory_order_relaxed);
		mutex_unlock(&kvm->mn_invalidate_lock);
		gpc->stat.refreshes++;
		kvm_stat_inc(kvm, gpc_refreshes);
		gpc_write_unlock(gpc);
		put_page(page);         /* nothing stays pinned */
		return 0;
	}
}

int kvm_gpc_refresh(struct gfn_to_pfn_cache *gpc, unsigned int len)
{
	int r;

	if (!len || (gpc->gpa & (PAGE_SIZE - 1)) + len > PAGE_SIZE)
		return -EINVAL;
	BUG_ON(pthread_mutex_lock(&gpc->refresh_lock));
	r = gpc_refresh_locked(gpc);
	BUG_ON(pthread_mutex_unlock(&gpc->refresh_lock));
	return r;
}

int kvm_gpc_activate(struct gfn_to_pfn_cache *gpc, gpa_t gpa, unsigned int len)
{
	struct kvm *kvm = gpc->kvm;
	int r;

	if (!len || (gpa & (PAGE_SIZE - 1)) + len > PAGE_SIZE)
		return -EINVAL;
	BUG_ON(pthread_mutex_lock(&gpc->refresh_lock));
	if (!gpc->active) {
		mutex_lock(&kvm->gpc_lock);
		gpc->next = kvm->gpc_list;
		kvm->gpc_list = gpc;
		mutex_unlock(&kvm->gpc_lock);
	}
	gpc_write_lock(gpc);
	gpc->gpa = gpa;
	atomic_store_explicit(&gpc->valid, false, memory_order_relaxed);
	gpc->active = true;
	gpc_write_unlock(gpc);
	r = gpc_refresh_locked(gpc);
	BUG_ON(pthread_mutex_unlock(&gpc->refresh_lock));
	return r;
}

/* Off the list first: then no invalidation looks at it, and nothing is
 * left to invalidate. */
void kvm_gpc_deactivate(struct gfn_to_pfn_cache *gpc)
{
	struct kvm *kvm = gpc->kvm;

	BUG_ON(pthread_mutex_lock(&gpc->refresh_lock));
	if (gpc->active) {
		mutex_lock(&kvm->gpc_lock);
		for (struct gfn_to_pfn_cache **pp = &kvm->gpc_list; *pp; pp = &(*pp)->next)
			if (*pp == gpc) {
				*pp = gpc->next;
				break;
			}
		mutex_unlock(&kvm->gpc_lock);
		gpc_write_lock(gpc);
		gpc->active = false;
		atomic_store_explicit(&gpc->valid, false, memory_order_relaxed);
		gpc->khva = NULL;
		gpc_write_unlock(gpc);
	}
	BUG_ON(pthread_mutex_unlock(&gpc->refresh_lock));
}

void kvm_gpc_destroy(struct gfn_to_pfn_cache *gpc)
{
	kvm_gpc_deactivate(gpc);
	BUG_ON(atomic_load(&gpc->lock));
	BUG_ON(pthread_mutex_destroy(&gpc->refresh_lock));
}

/*
 * The invalidation of the caches over [start, end) -- of host addresses
 * (by_gfn false: the notifier) or of guest frames (by_gfn true: a memslot
 * deleted or moved, whose host mapping may stay) -- and, after gpc_lock,
 * the requests to their guest-mode users (below). Returns with vcpus set.
 */
static uint64_t gpc_mark_invalid(struct kvm *kvm, uint64_t start, uint64_t end, bool by_gfn)
{
	uint64_t vcpus = 0;

	mutex_lock(&kvm->gpc_lock);
	for (struct gfn_to_pfn_cache *gpc = kvm->gpc_list; gpc; gpc = gpc->next) {
		/* Only caches over the range pay for the write lock (a
		 * membarrier): a valid cache's uhva was installed before this
		 * invalidation counted itself, and none can be installed
		 * until its end (the refresh's step 4). A guest-mode cache
		 * counts while its vCPU still holds its address, valid or not:
		 * an earlier invalidation may have marked it invalid and still
		 * be waiting for the vCPU, which may be writing through it
		 * right now -- this one must wait too before the host frees
		 * the frame. (By gfn -- rare, a slot update -- every cache is
		 * looked at under its lock: gpa changes under it.) */
		if (!by_gfn &&
		    (!(atomic_load_explicit(&gpc->valid, memory_order_relaxed) ||
		      atomic_load_explicit(&gpc->guest_mapped, memory_order_acquire)) ||
		     gpc->uhva < start || gpc->uhva >= end))
			continue;
		if (kvm->cfg.breaks & KVM_BREAK_GPC_INVALIDATE)
			continue;
		gpc_write_lock(gpc);
		uint64_t at = by_gfn ? gpc->gpa >> PAGE_SHIFT : gpc->uhva;

		if (at >= start && at < end) {
			if (atomic_load_explicit(&gpc->valid, memory_order_relaxed)) {
				atomic_store_explicit(&gpc->valid, false, memory_order_relaxed);
				gpc->stat.invalidations++;
				kvm_stat_inc(kvm, gpc_invalidations);
			}
			/* Acquire: the vCPU's writes through the old address
			 * happen before it lets go (kvm_vcpu.c's
			 * runstate_refresh). */
			if ((gpc->usage & KVM_GUEST_USES_PFN) &&
			    atomic_load_explicit(&gpc->guest_mapped, memory_order_acquire) &&
			    !(kvm->cfg.breaks & KVM_BREAK_GPC_REQUEST))
				vcpus |= 1ULL << gpc->vcpu->vcpu_id;
		}
		gpc_write_unlock(gpc);
	}
	mutex_unlock(&kvm->gpc_lock);
	return vcpus;
}

/* Send KVM_REQ_GPC_INVALIDATE to the vCPUs of the ids in vcpus and wait
 * until each that was in guest mode has left it. By vCPU id, not pointer:
 * a vCPU found on the list may have been uninitialized since gpc_lock was
 * dropped. May sleep (a scheduler tick for a preempted vCPU). */
static void gpc_request_and_wait(struct kvm *kvm, uint64_t vcpus)
{
	int nr;

	mutex_lock(&kvm->lock);
	nr = kvm_make_vcpus_request_mask(kvm, KVM_REQ_GPC_INVALIDATE, vcpus, true);
	mutex_unlock(&kvm->lock);
	atomic_fetch_add_explicit(&kvm->stat.gpc_request_waits, (unsigned long)nr,
				  memory_order_relaxed);
}

/*
 * A memslot over [start, end) (gfns) is being deleted or moved (memslot.c,
 * slots_lock held, after its sptes are zapped): its caches fail the check
 * (generation) from now on, and a vCPU that holds one's address for guest
 * mode is told and waited for, though the host mapping may stay.
 */
void gfn_to_pfn_cache_invalidate_gfns(struct kvm *kvm, gfn_t start, gfn_t end)
{
	uint64_t vcpus = gpc_mark_invalid(kvm, start, end, true);

	if (vcpus)
		gpc_request_and_wait(kvm, vcpus);
}

/*
 * From invalidate_range_start, after it counted itself in
 * mn_active_invalidate_count: every active cache whose page is in
 * [start, end) is invalid before start returns, and no vCPU still uses
 * one in guest mode.
 *
 * A host user holds the read lock while it uses khva, so marking the cache
 * invalid under the write lock is enough for it. A guest-mode user (a
 * vCPU writing its run-state area at every entry) takes no lock: it keeps
 * the address it got at its last refresh until it handles
 * KVM_REQ_GPC_INVALIDATE outside guest mode. So each such vCPU is sent
 * the request, and start waits until every one of them that was in guest
 * mode has left it (kvm_make_vcpus_request_mask: the same Dekker pair as
 * a TLB flush). The request goes out after gpc_lock is dropped: the wait
 * may last a scheduler tick, and the OOM reaper's start takes gpc_lock.
 *
 * may_block false (the OOM reaper's start, which holds kvm->lock): send
 * the request without waiting, as the seed does ("be sad if any needed
 * to be IPI'd"): the VMM stops a victim's vCPUs, so none should be in
 * guest mode; any that is gets counted (gpc_nonblock_in_guest). Such a
 * vCPU is past its entry's write and sees the request before its next.
 */
void gfn_to_pfn_cache_invalidate_start(struct kvm *kvm, hva_t start, hva_t end,
				       bool may_block)
{
	uint64_t vcpus;
	int nr;

	if (!may_block)
		lockdep_assert_held(&kvm->lock);
	vcpus = gpc_mark_invalid(kvm, start, end, false);
	if (!vcpus)
		return;
	if (may_block) {
		gpc_request_and_wait(kvm, vcpus);
	} else {
		nr = kvm_make_vcpus_request_mask(kvm, KVM_REQ_GPC_INVALIDATE, vcpus, false);
		if (nr) {
			atomic_fetch_add_explicit(&kvm->stat.gpc_nonblock_in_guest,
						  (unsigned long)nr, memory_order_relaxed);
			/* Loud, as the seed's WARN: the VMM should have stopped
			 * them (once per process; the count says how often). */
			WARN_ON_ONCE(nr && "non-blockable gpc invalidation: vCPU in guest mode");
		}
	}
}
