/* SPDX-License-Identifier: MIT */
/*
 * test_memslot.c - memslot updates under a running vCPU (tests/harness/
 * kvm_fixture.h): a deleted or moved slot is unreachable when the update
 * returns, also when a fault on it was in flight, and the update waits
 * for a vCPU in guest mode; a read-only slot stays write-protected and
 * its writes exit to the VMM; a slot over an unmapped hva fails the
 * access cleanly; and kvm_set_user_memory_region's refusals (bad slot,
 * flags, alignment, overflow, overlap, dirty logging) publish nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/cpu.h"
#include "host/internal.h"
#include "kvm/kvm_host.h"
#include "harness/kvm_fixture.h"
#include "harness/util.h"

/* ==== slot delete and move under a running vCPU ========================= */

static int bg_delete_slot0(struct kt *t, uintptr_t unused)
{
	struct kvm_userspace_memory_region r = { .slot = 0 };

	return kvm_set_user_memory_region(t->kvm, &r);
}

static void test_slot_delete_unreachable(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct kvm_userspace_memory_region del = { .slot = 0 };

	map_pages(t, 4, 0x100);
	struct kvm_stats k0 = kstats(t);

	assert_int_equal(kvm_set_user_memory_region(t->kvm, &del), 0);
	/* At return: no spte left, and the soft TLB will not be used. */
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	assert_true(kstats(t).sptes_zapped - k0.sptes_zapped >= 4);
	expect_mmio_read(t, GPA(1) + 8);
	expect_mmio_write(t, GPA(2) + 8, 99);
	assert_int_equal(host_load(t->mm, HVA(2) + 8), 0x102);
	assert_int_equal(kstats(t).mmio_exits - k0.mmio_exits, 2);
	assert_int_equal(kvm_memslots(t->kvm)->nr, 0);
	assert_int_equal(atomic_load(&t->stale), 0);
	kt_destroy(t);
}

static void test_slot_move(void **state)
{
	struct kt *t = kt_create(0, 0);

	map_pages(t, 4, 0x200);
	kt_add_slot(t, 0, 0, GPA_MOVED, NPAGES * P, HVA_BASE);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	expect_mmio_read(t, GPA(1) + 8);
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(g_read(t, GPA_MOVED + i * P + 8), 0x200 + i);
	g_write(t, GPA_MOVED + 3 * P + 16, 0x77);
	assert_int_equal(host_load(t->mm, HVA(3) + 16), 0x77);
	assert_int_equal(spte_to_pfn(spte_at(t, (GPA_MOVED >> PAGE_SHIFT) + 3)),
			 host_pfn(t, HVA(3)));
	kt_destroy(t);
}

/* A delete waits for a fault that looked the slot up (its RCU section spans
 * lookup to install), then zaps what it installed. */
static void test_slot_delete_vs_paused_fault(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(4) + 8, 0x44);
	kt_arm(t, VCPU_HOOK_AFTER_GUP);
	g_post(t, G_LOAD, GPA(4) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	bg_start(bg, bg_delete_slot0, t, 0);
	assert_false(bg_done(bg, BLOCK_MS / 2));
	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	assert_true(g_wait(t, TIMEOUT_MS));
	uint64_t out = 0;

	assert_int_equal(g_reply(t, &out, NULL), 0);
	assert_true(out == 0x44 || out == MMIO_VAL);
	expect_mmio_read(t, GPA(4) + 8);
	kt_destroy(t);
}

/*
 * A fault that looks the slot up after its update published the INVALID
 * copy -- too late for the update's grace period to wait for it -- must
 * not map through it: it could install its spte after the update's zap,
 * and leave a translation of a deleted slot. The hook holds the delete
 * after that grace period, before the zap; the vCPU faults meanwhile. The
 * fault must retry (it never gets as far as GUP) until the slot is gone,
 * then exit to the VMM. Were it to go on, it would pause after GUP, the
 * delete would zap and wait for it, and its spte would outlive the slot.
 */
struct slot_hold {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool held, go;
};

static void hold_slot_update(struct kvm *kvm, enum kvm_hook_point at, struct kvm_vcpu *v,
			     void *arg)
{
	struct slot_hold *h = arg;

	if (at != KVM_HOOK_SLOT_INVALID)
		return;
	pthread_mutex_lock(&h->lock);
	h->held = true;
	pthread_cond_broadcast(&h->cond);
	wait_flag(&h->lock, &h->cond, &h->go, TIMEOUT_MS);
	pthread_mutex_unlock(&h->lock);
}

static void test_fault_on_invalid_slot_retries(void **state)
{
	struct kt *t = kt_create(0, 0);
	struct slot_hold h = { 0 };
	struct bg *bg = &t->bg;
	bool went_on;

	sync_init(&h.lock, &h.cond);
	host_store(t->mm, HVA(6) + 8, 0x66);
	kvm_set_test_hook(t->kvm, hold_slot_update, &h);
	bg_start(bg, bg_delete_slot0, t, 0);
	pthread_mutex_lock(&h.lock);
	assert_true(wait_flag(&h.lock, &h.cond, &h.held, TIMEOUT_MS));
	pthread_mutex_unlock(&h.lock);

	kt_arm(t, VCPU_HOOK_AFTER_GUP);
	g_post(t, G_LOAD, GPA(6) + 8, 0);
	went_on = kt_wait_paused(t, BLOCK_MS);
	pthread_mutex_lock(&h.lock);
	h.go = true;
	pthread_cond_broadcast(&h.cond);
	pthread_mutex_unlock(&h.lock);
	if (went_on) {
		/* Let the delete zap and reach its last grace period, which
		 * waits for the paused fault; then let the fault install. */
		assert_false(bg_done(bg, BLOCK_MS));
		kt_release(t);
	}
	assert_int_equal(bg_join(bg), 0);
	assert_true(g_wait(t, TIMEOUT_MS));
	kvm_set_test_hook(t->kvm, NULL, NULL);
	assert_false(went_on);
	assert_false(is_shadow_present(gspte(t, 6)));
	uint64_t out = 0;

	assert_int_equal(g_reply(t, &out, NULL), 0);
	assert_int_equal(out, MMIO_VAL);
	expect_mmio_read(t, GPA(6) + 8);
	sync_destroy(&h.lock, &h.cond);
	kt_destroy(t);
}

/* A delete does not return while a vCPU is in guest mode: it could be
 * about to use a translation of the slot. */
static void test_slot_delete_waits_for_guest_mode(void **state)
{
	struct kt *t = kt_create(0, KT_KICK_WAIT);
	struct bg *bg = &t->bg;

	map_pages(t, 4, 0x400);
	pause_in_guest(t, 5);
	bg_start(bg, bg_delete_slot0, t, 0);
	assert_false(bg_done(bg, BLOCK_MS));
	assert_true(kt_paused(t));
	assert_int_not_equal(atomic_load(&t->v->kvm_vcpu.mode), OUTSIDE_GUEST_MODE);
	kt_release(t);
	assert_int_equal(bg_join(bg), 0);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	expect_mmio_read(t, GPA(0) + 8);
	kt_destroy(t);
}

/* ==== slot flags and backing ============================================ */

static void test_read_only_slot(void **state)
{
	struct kt *t = kt_create(0, 0);
	const gfn_t ro_gfn = GPA_RO >> PAGE_SHIFT;

	ht_mmap(t->mm, HVA_RO, RO_PAGES * P, HT_RW, HT_FIXED);
	host_store(t->mm, HVA_RO + 8, 0x5150);
	kt_add_slot(t, 1, KVM_MEM_READONLY, GPA_RO, RO_PAGES * P, HVA_RO);

	assert_int_equal(g_read(t, GPA_RO + 8), 0x5150);
	spte_t s = spte_at(t, ro_gfn);

	assert_true(is_shadow_present(s));
	assert_false(s & (SPTE_WRITABLE | SPTE_MMU_WRITABLE));
	assert_int_equal(spte_to_pfn(s), host_pfn(t, HVA_RO));

	/* A write exits with the exact gpa and value; memory stays. */
	struct kvm_stats k0 = kstats(t);

	expect_mmio_write(t, GPA_RO + 8, 0xbad);
	expect_mmio_write(t, GPA_RO + 2 * P + 24, 0xbad2);     /* no spte yet */
	assert_int_equal(host_load(t->mm, HVA_RO + 8), 0x5150);
	assert_int_equal(host_load(t->mm, HVA_RO + 2 * P + 24), 0);
	assert_int_equal(kstats(t).mmio_exits - k0.mmio_exits, 2);
	assert_false(spte_at(t, ro_gfn) & SPTE_WRITABLE);

	/* The lockless walk does not make it writable either. */
	bool fast;

	assert_null(kvm_tdp_translate(t->kvm, ro_gfn, true, &fast));
	assert_false(fast);
	assert_int_equal(g_read(t, GPA_RO + 8), 0x5150);
	kt_destroy(t);
}

/* A slot over an hva the VMM never mapped: the access fails with -EFAULT
 * and the guest stops; the VM is otherwise unharmed. */
static void test_slot_over_unmapped_hva(void **state)
{
	struct kt *t = kt_create(0, 0);
	uint64_t out = 0;

	kt_add_slot(t, 2, 0, GPA_HOLE, P, HVA_HOLE);
	assert_int_equal(g_load(t, GPA_HOLE, &out, NULL), -EFAULT);
	assert_int_equal(vcpu_stop(t->v), -EFAULT);
	assert_false(is_shadow_present(spte_at(t, GPA_HOLE >> PAGE_SHIFT)));
	kt_vcpu_start(t);
	host_store(t->mm, HVA(0), 0x81);
	assert_int_equal(g_read(t, GPA(0)), 0x81);
	kt_destroy(t);
}

/* ==== refusals ========================================================== */

static void expect_region(struct kvm *kvm, int err, uint32_t slot, uint32_t flags,
			  gpa_t gpa, uint64_t size, hva_t hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = hva,
	};

	assert_int_equal(kvm_set_user_memory_region(kvm, &r), err);
}

static void test_memslot_bad_input(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct kvm *kvm = t->kvm;
	const uint64_t sz = NPAGES * P;
	struct kvm_userspace_memory_region r = { .slot = 1, .memory_size = P,
						 .userspace_addr = HVA_BASE };
	uint64_t gen = kvm_memslots(kvm)->generation;

	assert_int_equal(kvm_set_user_memory_region(NULL, &r), -EINVAL);
	assert_int_equal(kvm_set_user_memory_region(kvm, NULL), -EINVAL);
	/* Slot id, flags (the internal INVALID flag included). */
	expect_region(kvm, -EINVAL, KVM_MAX_MEMSLOTS, 0, GPA_MOVED, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 1u << 5, GPA_MOVED, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, KVM_MEMSLOT_INVALID, GPA_MOVED, P, HVA_BASE);
	/* Alignment. */
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED + 8, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED, P + 8, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED, P, HVA_BASE + 8);
	/* Range overflow: past the GPA space, wrapping, past the host's. */
	expect_region(kvm, -EINVAL, 1, 0, TDP_MAX_GFN << PAGE_SHIFT, 2 * P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, (TDP_MAX_GFN + 1) << PAGE_SHIFT, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, ~(uint64_t)0 & PAGE_MASK, P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, P, (uint64_t)0 - P, HVA_BASE);
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED, 2 * P, TASK_SIZE - P);
	expect_region(kvm, -EINVAL, 1, 0, GPA_MOVED, P, TASK_SIZE);
	/* Overlap with slot 0 [GPA_BASE, +16 pages), from either side. */
	expect_region(kvm, -EEXIST, 1, 0, GPA_BASE + 8 * P, sz, HVA_BASE);
	expect_region(kvm, -EEXIST, 1, 0, GPA_BASE - P, 2 * P, HVA_BASE);
	expect_region(kvm, -EEXIST, 1, 0, GPA_BASE - P, sz + 2 * P, HVA_BASE);
	/* Deleting what does not exist. */
	expect_region(kvm, -EINVAL, 7, 0, 0, 0, 0);
	/* Changing an existing slot: size, backing, READONLY. */
	expect_region(kvm, -EINVAL, 0, 0, GPA_BASE, sz - P, HVA_BASE);
	expect_region(kvm, -EINVAL, 0, 0, GPA_BASE, sz, HVA_BASE + P);
	expect_region(kvm, -EINVAL, 0, KVM_MEM_READONLY, GPA_BASE, sz, HVA_BASE);
	/* Moving slot 0 onto another slot's range. */
	expect_region(kvm, 0, 1, 0, GPA_MOVED, P, HVA_BASE);
	expect_region(kvm, -EEXIST, 0, 0, GPA_MOVED - P, sz, HVA_BASE);

	/* None of the failures published anything. */
	struct kvm_memslots *slots = kvm_memslots(kvm);

	assert_int_equal(slots->generation, gen + 1);
	assert_int_equal(slots->nr, 2);
	assert_int_equal(slots->slots[0].base_gfn, GFN_BASE);
	assert_int_equal(slots->slots[0].npages, NPAGES);
	assert_int_equal(slots->slots[0].userspace_addr, HVA_BASE);
	assert_int_equal(slots->slots[0].flags, 0);

	/* Adjacent is fine; a gpa at the top of the space is fine. */
	expect_region(kvm, 0, 2, 0, GPA_BASE + sz, P, HVA_BASE);
	expect_region(kvm, 0, 3, KVM_MEM_READONLY, TDP_MAX_GFN << PAGE_SHIFT, P, HVA_BASE);
	expect_region(kvm, 0, 3, 0, 0, 0, 0);
	expect_region(kvm, -EINVAL, 3, 0, 0, 0, 0);
	slots = kvm_memslots(kvm);
	assert_int_equal(slots->nr, 3);
	for (unsigned int i = 1; i < slots->nr; i++)
		assert_true(slots->slots[i - 1].base_gfn < slots->slots[i].base_gfn);
	kt_destroy(t);
}

/*
 * Dirty logging does not exist yet, so KVM_MEM_LOG_DIRTY_PAGES is refused,
 * on a new slot and on an existing one. It used to be accepted: the slot's
 * sptes were installed read-only, the fast path refused to make them
 * writable, the fault reported "fixed", and a guest write looped forever.
 * After the refusals the slot is as it was, and a guest write completes.
 */
static void test_log_dirty_refused(void **state)
{
	struct kt *t = kt_create(0, 0);
	uint64_t gen = kvm_memslots(t->kvm)->generation;

	expect_region(t->kvm, -EINVAL, 0, KVM_MEM_LOG_DIRTY_PAGES, GPA_BASE, NPAGES * P,
		      HVA_BASE);
	expect_region(t->kvm, -EINVAL, 1, KVM_MEM_LOG_DIRTY_PAGES, GPA_MOVED, P, HVA_BASE);
	assert_int_equal(kvm_memslots(t->kvm)->generation, gen);
	assert_int_equal(kvm_memslots(t->kvm)->slots[0].flags, 0);
	g_post(t, G_STORE, GPA(3), 0x5eed);
	assert_true(g_wait(t, TIMEOUT_MS));
	assert_int_equal(g_reply(t, NULL, NULL), 0);
	assert_int_equal(host_load(t->mm, HVA(3)), 0x5eed);
	kt_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KT_TEST(test_slot_delete_unreachable),
		KT_TEST(test_slot_move),
		KT_TEST(test_slot_delete_vs_paused_fault),
		KT_TEST(test_fault_on_invalid_slot_retries),
		KT_TEST(test_slot_delete_waits_for_guest_mode),
		KT_TEST(test_memslot_bad_input),
		KT_TEST(test_log_dirty_refused),
		KT_TEST(test_read_only_slot),
		KT_TEST(test_slot_over_unmapped_hva),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
