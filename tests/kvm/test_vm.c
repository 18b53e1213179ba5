/* SPDX-License-Identifier: MIT */
/*
 * test_vm.c - the VM's and the vCPU's lifecycle and edges (tests/harness/
 * kvm_fixture.h): creation refuses bad input; the mm's exit (release)
 * zaps every spte before a frame is freed, also when a fault was between
 * GUP and mmu_lock or inside GUP, and the vCPU then sees the mm gone;
 * unaligned accesses fail without ending the guest, and guest physical
 * addresses no slot covers exit to the MMIO handler.
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

/* ==== creation ========================================================== */

static void test_create_bad_input(void **state)
{
	struct kt *t = kt_create(0, KT_NO_VCPU);
	struct kvm *kvm = NULL;
	struct vcpu *v = NULL, *v2 = NULL;
	struct kvm_config bad = { .breaks = 1u << 30 };

	assert_int_equal(kvm_create_vm(NULL, NULL, &kvm), -EINVAL);
	assert_int_equal(kvm_create_vm(t->mm, NULL, NULL), -EINVAL);
	assert_int_equal(kvm_create_vm(t->mm, &bad, &kvm), -EINVAL);
	assert_null(kvm);

	assert_int_equal(vcpu_create(NULL, 0, &v), -EINVAL);
	assert_int_equal(vcpu_create(t->kvm, 0, NULL), -EINVAL);
	assert_int_equal(vcpu_create(t->kvm, -1, &v), -EINVAL);
	assert_int_equal(vcpu_create(t->kvm, KVM_MAX_VCPUS, &v), -EINVAL);
	assert_int_equal(vcpu_create(t->kvm, 5, &v), 0);
	assert_int_equal(vcpu_create(t->kvm, 5, &v2), -EEXIST);
	assert_null(v2);
	assert_int_equal(vcpu_create(t->kvm, KVM_MAX_VCPUS - 1, &v2), 0);
	assert_int_equal(atomic_load(&t->kvm->nr_vcpus), 2);

	assert_int_equal(vcpu_run(NULL, kt_guest_main, NULL), -EINVAL);
	assert_int_equal(vcpu_run(v, NULL, NULL), -EINVAL);
	assert_int_equal(vcpu_stop(v), -EINVAL);      /* not running */
	vcpu_destroy(v2);
	vcpu_destroy(v);
	assert_int_equal(atomic_load(&t->kvm->nr_vcpus), 0);
	kt_destroy(t);
}

/* ==== the mm's exit: release zaps everything ============================ */

/* After the mm's exit: the guest's access failed with r and ended it; stop
 * and destroy the vCPU and VM; every frame comes back. */
static void finish_after_exit(struct kt *t, int r)
{
	assert_int_equal(vcpu_stop(t->v), r);
	vcpu_destroy(t->v);
	t->v = NULL;
	atomic_store(&t->watch_on, false);
	kvm_destroy_vm(t->kvm);
	t->kvm = NULL;
	assert_int_equal(host_frames_in_use(t->h), 0);
	kt_destroy(t);
}

static void test_release_zaps_everything(void **state)
{
	struct kt *t = kt_create(0, 0);
	uint64_t out = 0;

	map_pages(t, 8, 0x300);
	g_write(t, GPA(2) + 8, 0xdd);                  /* a dirty spte too */
	long ev0 = atomic_load(&t->watch_events);

	/* The VMM's last user goes; the VM keeps only its mmgrab. */
	ht_mmput(t->ht, t->mm);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_false(is_shadow_present(gspte(t, i)));
	/* The exit unmapped the 8 pages, each with its spte already gone. */
	assert_true(atomic_load(&t->watch_events) - ev0 >= 8);
	assert_int_equal(atomic_load(&t->stale), 0);
	assert_int_equal(ht_data_frames(t->h), 0);
	assert_int_equal(host_frames_in_use(t->h), 1);  /* the pgd, until mmdrop */

	/* Accesses fail cleanly, and the guest (outside guest mode) ends. */
	int r = g_load(t, GPA(0) + 8, &out, NULL);

	assert_true(r < 0);
	finish_after_exit(t, r);
}

static int bg_mmput(struct kt *t, uintptr_t unused)
{
	ht_mmput(t->ht, t->mm);
	return 0;
}

/* The same without the invariant check, for a test that holds a thread
 * inside the host (under page_table_lock), which the checker would wait
 * for. */
static int bg_mmput_nocheck(struct kt *t, uintptr_t unused)
{
	ht_forget(t->ht, t->mm);
	mmput(t->mm);
	return 0;
}

static bool kvm_mm_released(struct kt *t)
{
	down_read(&t->kvm->mmu_lock);
	bool released = t->kvm->mm_released;

	up_read(&t->kvm->mmu_lock);
	return released;
}

/*
 * The VMM drops the last reference while a fault is between GUP and
 * mmu_lock. The fault holds a user reference of its own, so the exit waits
 * for it: the fault installs, and its own mmput, the last, runs the exit
 * on the vCPU thread, outside the fault's RCU section. Release zaps
 * everything before a frame is freed, and the vCPU's next attempt finds
 * the mm gone (-ESRCH).
 */
static void test_fault_vs_exit(void **state)
{
	struct kt *t = kt_create(0, 0);
	const unsigned int i = 2;
	uint64_t out = 0;
	struct bg *bg = &t->bg;

	host_store(t->mm, HVA(i) + 8, 0x91);
	kt_arm(t, VCPU_HOOK_AFTER_GUP);
	g_post(t, G_LOAD, GPA(i) + 8, 0);
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	bg_start(bg, bg_mmput, t, 0);
	assert_int_equal(bg_join(bg), 0);               /* not the last user */
	assert_false(kvm_mm_released(t));               /* the fault's reference */
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	int r = g_reply(t, &out, NULL);

	assert_int_equal(r, -ESRCH);
	assert_true(kvm_mm_released(t));
	for (unsigned int j = 0; j < NPAGES; j++)
		assert_false(is_shadow_present(gspte(t, j)));
	assert_int_equal(atomic_load(&t->stale), 0);
	assert_int_equal(ht_data_frames(t->h), 0);
	finish_after_exit(t, r);
}

/*
 * The same, paused inside GUP (at the host PTE change of its fault): GUP's
 * own mmput used to be the last, running the exit on the vCPU thread
 * inside the fault's RCU section, where release's grace period never ends
 * (a BUG). The fault's user reference makes its own put the last, after
 * the section; the vCPU survives and sees the mm gone.
 */
static void test_fault_vs_exit_inside_gup(void **state)
{
	struct kt *t = kt_create(0, 0);
	const unsigned int i = 3;
	uint64_t out = 0;
	struct bg *bg = &t->bg;

	kt_arm_pte_change(t, HVA(i));
	g_post(t, G_STORE, GPA(i) + 8, 0x77);           /* demand-zero fault in GUP */
	assert_true(kt_wait_paused(t, TIMEOUT_MS));
	bg_start(bg, bg_mmput_nocheck, t, 0);
	assert_int_equal(bg_join(bg), 0);
	assert_false(kvm_mm_released(t));
	kt_release(t);
	assert_true(g_wait(t, TIMEOUT_MS));
	int r = g_reply(t, &out, NULL);

	assert_int_equal(r, -ESRCH);
	assert_true(kvm_mm_released(t));
	for (unsigned int j = 0; j < NPAGES; j++)
		assert_false(is_shadow_present(gspte(t, j)));
	assert_int_equal(ht_data_frames(t->h), 0);
	finish_after_exit(t, r);
}

/* ==== the vCPU's accesses =============================================== */

/* Unaligned accesses fail and leave the vCPU in guest mode; MMIO reads of
 * unbacked gpas go to the handler, or read ~0 without one. */
static void test_unaligned_and_mmio(void **state)
{
	struct kt *t = kt_create(0, 0);
	uint64_t out = 0;
	struct kvm_stats k0 = kstats(t);
	struct vcpu_stats st0 = g_stats(t), st1;

	host_store(t->mm, HVA(0) + 8, 0x71);
	assert_int_equal(g_load(t, GPA(0) + 4, &out, NULL), -EINVAL);
	assert_int_equal(g_store(t, GPA(0) + 12, 1, NULL), -EINVAL);
	assert_int_equal(g_load(t, GPA_MMIO + 1, &out, NULL), -EINVAL);
	assert_int_equal(host_load(t->mm, HVA(0) + 8), 0x71);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x71);      /* still running */

	expect_mmio_read(t, GPA_MMIO + 16);
	expect_mmio_write(t, GPA_MMIO + 24, 0x72);
	/* Beyond the GPA tables, at an address whose low 36 bits of gfn are
	 * those of a mapped page: MMIO, not an alias of that page. */
	expect_mmio_read(t, ((TDP_MAX_GFN + 1) << PAGE_SHIFT) + GPA(0) + 8);
	g_reply(t, NULL, &st1);
	assert_int_equal(st1.mmio_exits - st0.mmio_exits, 3);
	assert_int_equal(kstats(t).mmio_exits - k0.mmio_exits, 3);

	/* No handler: reads see all ones, writes vanish. */
	assert_int_equal(vcpu_stop(t->v), -EINTR);
	vcpu_set_mmio(t->v, NULL, NULL);
	kt_vcpu_start(t);
	assert_int_equal(g_load(t, GPA_MMIO, &out, NULL), 0);
	assert_int_equal(out, ~(uint64_t)0);
	assert_int_equal(g_store(t, GPA_MMIO, 5, NULL), 0);
	assert_int_equal(g_read(t, GPA(0) + 8), 0x71);
	kt_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KT_TEST(test_create_bad_input),
		KT_TEST(test_release_zaps_everything),
		KT_TEST(test_fault_vs_exit),
		KT_TEST(test_fault_vs_exit_inside_gup),
		KT_TEST(test_unaligned_and_mmio),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
