/* SPDX-License-Identifier: MIT */
/*
 * rv_fixture.c - the RISC-V hart suites' fixture (rv_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "harness/rv_fixture.h"

static void rt_mmio(void *opaque, struct vcpu *v, gpa_t gpa, unsigned int size, bool write,
		    uint64_t *val)
{
	struct rt *t = opaque;

	if (gpa == 0x100000 && write)
		atomic_store(&t->test_dev, (int)*val);
	else if (!write)
		*val = 0;
}

struct rt *rt_create_cfg(const struct rt_config *cfg)
{
	struct host_config hc = { .ram_bytes = 32ULL << 20 };
	struct kvm_config kc = cfg->kvm;
	struct rt *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	kc.kick = KVM_KICK_WAIT;
	t->ram_size = cfg->ram_size ? cfg->ram_size : RT_RAM_SIZE;
	t->ecall = cfg->ecall;
	t->ecall_arg = cfg->ecall_arg;
	assert_int_equal(host_create(&hc, &t->host), 0);
	assert_int_equal(vmm_create(t->host, &kc, &t->vmm), 0);
	assert_int_equal(vmm_add_ram(t->vmm, 0, RT_RAM_BASE, t->ram_size, 0), 0);
	vmm_set_mmio_default(t->vmm, rt_mmio, t);
	t->ram = vmm_ram_hva(t->vmm, 0);
	rv_clock_init(&t->clk, 10000000);
	return t;
}

struct rt *rt_create(void)
{
	struct rt_config c = { .ram_size = RT_RAM_SIZE };

	return rt_create_cfg(&c);
}

void rt_load(struct rt *t, uint64_t off, const uint32_t *code, unsigned int n)
{
	assert_int_equal(vmm_write_guest(t->vmm, RT_RAM_BASE + off, code, n * 4), 0);
}

void rt_start(struct rt *t, int nr)
{
	assert_true(nr <= RT_MAX_HARTS);
	for (int i = 0; i < nr; i++) {
		struct rv_hart_config c = { .hartid = (uint64_t)i, .reset_pc = RT_RAM_BASE,
					    .a0 = (uint64_t)i, .priv = RV_PRV_M, .clock = &t->clk,
					    .ecall = t->ecall, .ecall_arg = t->ecall_arg };
		struct vcpu *v;

		assert_int_equal(vmm_create_vcpu(t->vmm, i, &v), 0);
		assert_int_equal(rv_hart_create(v, &c, &t->harts[i]), 0);
	}
	t->nr_harts = nr;
	for (int i = 0; i < nr; i++)
		assert_int_equal(vcpu_run(rv_hart_vcpu(t->harts[i]), rv_hart_main, t->harts[i]), 0);
}

uint64_t rt_read(struct rt *t, uint64_t off)
{
	uint64_t v = 0;

	assert_int_equal(vmm_read_guest(t->vmm, RT_RAM_BASE + off, &v, 8), 0);
	return v;
}

void rt_write(struct rt *t, uint64_t off, uint64_t val)
{
	assert_int_equal(vmm_write_guest(t->vmm, RT_RAM_BASE + off, &val, 8), 0);
}

void rt_destroy(struct rt *t)
{
	for (int i = 0; i < t->nr_harts; i++) {
		if (!t->stopped[i])
			assert_int_equal(vcpu_stop(rv_hart_vcpu(t->harts[i])), 0);
		rv_hart_destroy(t->harts[i]);
	}
	vmm_destroy(t->vmm);
	assert_int_equal(host_frames_in_use(t->host), 0);
	assert_int_equal(host_destroy(t->host), 0);
	free(t);
}

/* An invalidation on another thread, with a bound on how long it may take
 * to come back (it waits for the harts to leave guest mode). */
struct inval { struct rt *t; hva_t addr; atomic_bool done; int ret; };

static void *inval_thread(void *arg)
{
	struct inval *iv = arg;

	iv->ret = mm_madvise(vmm_mm(iv->t->vmm), iv->addr, PAGE_SIZE, MADV_DONTNEED);
	atomic_store(&iv->done, true);
	return NULL;
}

void rt_dontneed(struct rt *t, uint64_t off)
{
	struct inval iv = { .t = t, .addr = t->ram + off };
	uint64_t end = ms_now() + RT_WAIT_MS;
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, inval_thread, &iv), 0);
	while (!atomic_load(&iv.done)) {
		if (ms_now() > end)
			fail_msg("DONTNEED of guest page %#llx did not return: a hart never "
				 "left guest mode", (unsigned long long)off);
		sleep_ms(1);
	}
	pthread_join(th, NULL);
	assert_int_equal(iv.ret, 0);
}
