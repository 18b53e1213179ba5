/* SPDX-License-Identifier: MIT */
/*
 * kvm_fixture.h - the fixture of the secondary-MMU suites (tests/kvm/): a
 * host, one mm with guest RAM mapped, a VM with one slot over it, and a
 * vCPU whose thread a test drives and stops at chosen points.
 *
 * How a test controls the vCPU thread:
 *   - the guest is a mailbox loop (kt_guest_main): the test posts one load
 *     or store (g_post, or g_load / g_store / g_read / g_write, which also
 *     wait), the guest runs it through vcpu_load64/vcpu_store64 and replies
 *     with the result and a snapshot of its own stats; idle, it stays in
 *     guest mode and checks requests every millisecond;
 *   - the vCPU hook (kvm_vcpu_set_hook) pauses the thread once at an armed
 *     point (kt_arm: after GUP, before guest entry, or in guest mode) until
 *     the test releases it (kt_release); kt_arm_pte_change pauses it inside
 *     the host's fault, at the PTE change of an hva;
 *   - a recorder (recorder.h), registered before the VM (KT_REC_AFTER_KVM:
 *     the list is walked newest first, so it is called after kvm) or after
 *     it (KT_REC_BEFORE_KVM), can hold an invalidation open or act in a
 *     callback;
 *   - a host PTE hook (the "watcher") checks at every PTE change that no
 *     present spte still maps the frame the host takes back, or maps it
 *     writable when the host write-protects it (t->stale counts those);
 *   - bg_start runs a host operation on another thread, so that the test
 *     can watch it block.
 *
 * Every test builds its own fixture (kt_create) and ends it (kt_destroy):
 * the vCPU stopped, the VM destroyed, every mm ended, and every frame back
 * before the host is destroyed. A suite's tests run with the teardown
 * kt_abandon (KT_TEST), which, after a failure midway, releases whatever
 * the test left paused and stops the vCPU, so the next test can run.
 *
 * Include after <cmocka.h>.
 */
#ifndef TANDEM_TESTS_HARNESS_KVM_FIXTURE_H
#define TANDEM_TESTS_HARNESS_KVM_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/cpu.h"
#include "kvm/kvm_host.h"
#include "harness/host_fixture.h"
#include "harness/recorder.h"
#include "harness/guest.h"

#define P          PAGE_SIZE
#define HVA_BASE   0x100000000ULL     /* guest RAM in the VMM: 4 GiB */
#define HVA_RO     0x100100000ULL     /* backing of the read-only slot */
#define HVA_HOLE   0x100200000ULL     /* never mapped */
#define GPA_BASE   0x40000000ULL      /* guest RAM at 1 GiB */
#define GPA_MOVED  0x50000000ULL
#define GPA_RO     0x60000000ULL
#define GPA_HOLE   0x70000000ULL
#define GPA_MMIO   0x80000000ULL      /* no slot */
#define NPAGES     16
#define RO_PAGES   4
#define GFN_BASE   (GPA_BASE >> PAGE_SHIFT)
#define GPA(i)     (GPA_BASE + (gpa_t)(i) * P)
#define HVA(i)     (HVA_BASE + (hva_t)(i) * P)
#define MMIO_VAL   0x1badc0deULL      /* what the test's MMIO handler reads */
#define TIMEOUT_MS 10000
#define BLOCK_MS   100                /* "does not return while ..." */

/* ---- the guest: a mailbox loop on the vCPU thread ---------------------- */


/* ---- the pause hook ---------------------------------------------------- */

/* Besides the vCPU hook points: a host PTE change at pte_hva (the watcher),
 * i.e. inside the host's fault or GUP, under page_table_lock. */
#define PAUSE_IN_PTE_CHANGE VCPU_NR_HOOKS

struct kt_pauser {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int armed;                      /* point to stop at once, or -1 */
	hva_t pte_hva;
	bool paused, go;
	atomic_long calls[VCPU_NR_HOOKS];
};

/* ---- a host operation on another thread -------------------------------- */

struct kt;
typedef int (*bg_fn)(struct kt *t, uintptr_t arg);

struct bg {
	pthread_t th;
	bg_fn fn;
	struct kt *t;
	uintptr_t arg;
	int ret;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

void bg_start(struct bg *b, bg_fn fn, struct kt *t, uintptr_t arg);
/* Has it returned within ms? */
bool bg_done(struct bg *b, unsigned int ms);
/* Wait for it (TIMEOUT_MS at most) and return its result. */
int bg_join(struct bg *b);

/* bg operations. */
int bg_dontneed(struct kt *t, uintptr_t hva);          /* one page */

/* ---- the fixture ------------------------------------------------------- */

enum {
	KT_NO_VCPU = 1u << 0,
	KT_KICK_WAIT = 1u << 1,         /* the flush protocol; default AUTO, */
	KT_KICK_RSEQ = 1u << 2,         /* i.e. RSEQ where built */
	KT_SWAP = 1u << 3,              /* a host with KT_SWAP_BYTES of swap */
	KT_REC_AFTER_KVM = 1u << 4,     /* t->rec, registered before the VM */
	KT_REC_BEFORE_KVM = 1u << 5,    /* t->rec, registered after the VM */
};
#define KT_SWAP_BYTES (16ULL << 20)

struct kt {
	struct ht *ht;
	struct host *h;
	struct mm *mm;
	struct kvm *kvm;
	struct vcpu *v;
	struct kt_guest g;
	struct kt_pauser p;
	struct recorder rec;
	bool has_rec;
	struct bg bg;                   /* here, not on a stack: kt_abandon */
	atomic_bool watch_on;
	atomic_long watch_events;       /* PTE drops/write-protects checked */
	atomic_long stale;              /* ... that a present spte outlived */
};

/* A fixture: breaks for the VM's kvm_config, opts KT_*. */
/*
 * A kvm test hook (kvm_set_test_hook) that holds a requester, once armed,
 * right after it set its request bit, until the vCPU has seen the request,
 * left guest mode, consumed it and entered guest mode again (or
 * TIMEOUT_MS): the lost wake-up's interleaving. reentered says it came.
 */
struct kt_reentry {
	atomic_bool armed;
	atomic_bool reentered;
};
void kt_wait_reentry(struct kvm *kvm, enum kvm_hook_point at, struct kvm_vcpu *v, void *arg);

struct kt *kt_create(unsigned int breaks, unsigned int opts);
void kt_destroy(struct kt *t);
/* cmocka teardown: see the top of this file. */
int kt_abandon(void **state);
#define KT_TEST(f) cmocka_unit_test_teardown(f, kt_abandon)

void kt_add_slot(struct kt *t, uint32_t id, uint32_t flags, gpa_t gpa, uint64_t size,
		 hva_t hva);
/* Run the mailbox guest on t->v (again, after a vcpu_stop). */
void kt_vcpu_start(struct kt *t);

/* ---- driving the guest ------------------------------------------------- */

void g_post(struct kt *t, int op, gpa_t gpa, uint64_t val);
/* Has the posted op completed within ms? */
bool g_wait(struct kt *t, unsigned int ms);
/* The last op's result, value read and the vCPU's stats after it. */
int g_reply(struct kt *t, uint64_t *out, struct vcpu_stats *st);
int g_load(struct kt *t, gpa_t gpa, uint64_t *out, struct vcpu_stats *st);
int g_store(struct kt *t, gpa_t gpa, uint64_t val, struct vcpu_stats *st);
/* A guest load that must succeed; returns the value. */
uint64_t g_read(struct kt *t, gpa_t gpa);
void g_write(struct kt *t, gpa_t gpa, uint64_t val);
struct vcpu_stats g_stats(struct kt *t);
void g_mmio_log(struct kt *t, int *calls, gpa_t *gpa, bool *write, uint64_t *val);

/* Pause the vCPU once at at (or at the PTE change of hva) until released. */
void kt_arm(struct kt *t, enum vcpu_hook_point at);
void kt_arm_pte_change(struct kt *t, hva_t hva);
bool kt_wait_paused(struct kt *t, unsigned int ms);
bool kt_paused(struct kt *t);
void kt_release(struct kt *t);
long kt_hook_calls(struct kt *t, enum vcpu_hook_point at);
/* Pause the vCPU in guest mode: a first read of page i takes the slow
 * path, re-enters guest mode and stops at the hook before the access. */
void pause_in_guest(struct kt *t, unsigned int i);

/* ---- host and spte helpers --------------------------------------------- */

void host_store(struct mm *mm, hva_t hva, uint64_t v);
uint64_t host_load(struct mm *mm, hva_t hva);
pfn_t host_pfn(struct kt *t, hva_t hva);
spte_t spte_at(struct kt *t, gfn_t gfn);
spte_t gspte(struct kt *t, unsigned int i);            /* page i of slot 0 */
struct kvm_stats kstats(struct kt *t);
unsigned long kvm_seq(struct kt *t);
/* Invalidations in progress, and their union. */
long kvm_in_progress(struct kt *t, hva_t *start, hva_t *end);
/* Replace a present spte's bits (same frame), as a later feature that
 * write-protects would, and flush. */
void spte_rewrite(struct kt *t, gfn_t gfn, spte_t new);
bool wait_zapped(struct kt *t, unsigned int i, unsigned int ms);
/* Pages 0..n-1: the host writes tag + i at +8, the guest reads it back,
 * and each gets an spte. */
void map_pages(struct kt *t, unsigned int n, uint64_t tag);
/* A guest access at gpa that must exit to the MMIO handler. */
void expect_mmio_read(struct kt *t, gpa_t gpa);
void expect_mmio_write(struct kt *t, gpa_t gpa, uint64_t val);

#endif
