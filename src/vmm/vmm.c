/* SPDX-License-Identifier: MIT */
/*
 * vmm.c - a VMM process (vmm.h): its mm, its VM, guest RAM as host
 * mappings registered as memslots, MMIO dispatch, and its vCPUs.
 *
 * State and who changes it:
 *   ram[]      set by vmm_add_ram before the vCPUs run; afterwards only
 *              ram[].hva changes, by vmm_remap_ram, under layout_lock
 *              (a READ_ONCE word: the remapping thread reads it unlocked);
 *   mmio[]     set by vmm_add_mmio before the vCPUs run, read by every
 *              vCPU's exit without a lock;
 *   vcpus[]    vmm_create_vcpu before the vCPUs run.
 *
 * Lock order: layout_lock > the mm's mmap_lock (remap maps and unmaps
 * while holding it; a reader that walks the mm's ranges does the same).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "tandem/vmm.h"
#include "base/compiler.h"

struct vmm_ram {
	bool used;
	gpa_t gpa;
	uint64_t size;
	uint32_t flags;
	hva_t hva;                      /* READ_ONCE; changes under layout_lock */
};

struct vmm_mmio {
	gpa_t gpa;
	uint64_t len;
	vmm_mmio_fn fn;
	void *opaque;
};

struct vmm {
	struct host *host;
	struct mm *mm;
	struct kvm *kvm;
	pthread_mutex_t layout_lock;
	struct vmm_ram ram[VMM_MAX_RAM];
	struct vmm_mmio mmio[VMM_MAX_MMIO];
	unsigned int nr_mmio;
	vmm_mmio_fn mmio_default;
	void *mmio_default_opaque;
	struct vcpu *vcpus[KVM_MAX_VCPUS];
	unsigned int nr_vcpus;
	_Atomic uint64_t mmio_exits, mmio_defaults, remaps;
};

int vmm_create(struct host *host, const struct kvm_config *cfg, struct vmm **out)
{
	struct vmm *vmm;
	int err;

	if (!host || !out)
		return -EINVAL;
	vmm = calloc(1, sizeof(*vmm));
	if (!vmm)
		return -ENOMEM;
	vmm->host = host;
	pthread_mutex_init(&vmm->layout_lock, NULL);
	err = mm_create(host, &vmm->mm);
	if (err)
		goto out_free;
	err = kvm_create_vm(vmm->mm, cfg, &vmm->kvm);
	if (err)
		goto out_mm;
	*out = vmm;
	return 0;
out_mm:
	mmput(vmm->mm);
out_free:
	pthread_mutex_destroy(&vmm->layout_lock);
	free(vmm);
	return err;
}

void vmm_destroy(struct vmm *vmm)
{
	if (!vmm)
		return;
	for (unsigned int i = 0; i < vmm->nr_vcpus; i++) {
		if (vmm->vcpus[i]->running)
			vcpu_stop(vmm->vcpus[i]);
		vcpu_destroy(vmm->vcpus[i]);
	}
	kvm_destroy_vm(vmm->kvm);
	mmput(vmm->mm);
	pthread_mutex_destroy(&vmm->layout_lock);
	free(vmm);
}

struct mm *vmm_mm(struct vmm *vmm)
{
	return vmm->mm;
}

struct kvm *vmm_kvm(struct vmm *vmm)
{
	return vmm->kvm;
}

static int set_memslot(struct vmm *vmm, unsigned int slot, uint64_t size, hva_t hva)
{
	struct kvm_userspace_memory_region mem = {
		.slot = slot,
		.flags = vmm->ram[slot].flags,
		.guest_phys_addr = vmm->ram[slot].gpa,
		.memory_size = size,
		.userspace_addr = hva,
	};

	return kvm_set_user_memory_region(vmm->kvm, &mem);
}

int vmm_add_ram(struct vmm *vmm, unsigned int slot, gpa_t gpa, uint64_t size,
		uint32_t flags)
{
	struct vmm_ram *r;
	hva_t hva;
	int err;

	if (!vmm || slot >= VMM_MAX_RAM || vmm->ram[slot].used || !size ||
	    !PAGE_ALIGNED(gpa) || !PAGE_ALIGNED(size) || (flags & ~KVM_MEM_READONLY))
		return -EINVAL;
	err = mm_mmap(vmm->mm, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      &hva);
	if (err)
		return err;
	r = &vmm->ram[slot];
	*r = (struct vmm_ram){ .gpa = gpa, .size = size, .flags = flags, .hva = hva };
	err = set_memslot(vmm, slot, size, hva);
	if (err) {
		/* Undo the mapping. It may have merged with the region mapped
		 * before it (same flags, touching), so this trims a VMA, which
		 * allocates nothing and cannot fail (mmap.c); only a gap
		 * filled exactly, merging on both sides, needs a split. */
		WARN_ON_ONCE(mm_munmap(vmm->mm, hva, size));
		memset(r, 0, sizeof(*r));
		return err;
	}
	r->used = true;
	return 0;
}

hva_t vmm_ram_hva(struct vmm *vmm, unsigned int slot)
{
	if (slot >= VMM_MAX_RAM || !vmm->ram[slot].used)
		return 0;
	return READ_ONCE(vmm->ram[slot].hva);
}

uint64_t vmm_ram_size(struct vmm *vmm, unsigned int slot)
{
	return slot < VMM_MAX_RAM && vmm->ram[slot].used ? vmm->ram[slot].size : 0;
}

void vmm_layout_lock(struct vmm *vmm)
{
	pthread_mutex_lock(&vmm->layout_lock);
}

void vmm_layout_unlock(struct vmm *vmm)
{
	pthread_mutex_unlock(&vmm->layout_lock);
}

/*
 * Delete the memslot first, so that no vCPU can reach the old range once
 * it goes; map the new range while the old one still is (a different
 * address), so that a reader holding layout_lock sees the region at one or
 * the other, never at a range being unmapped.
 */
int vmm_remap_ram(struct vmm *vmm, unsigned int slot)
{
	struct vmm_ram *r;
	hva_t old, new;
	int err;

	if (!vmm || slot >= VMM_MAX_RAM || !vmm->ram[slot].used)
		return -EINVAL;
	r = &vmm->ram[slot];
	old = r->hva;
	err = set_memslot(vmm, slot, 0, 0);
	if (err)
		return err;
	vmm_layout_lock(vmm);
	err = mm_mmap(vmm->mm, 0, r->size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, &new);
	if (!err) {
		err = mm_munmap(vmm->mm, old, r->size);
		if (err)
			mm_munmap(vmm->mm, new, r->size);
		else
			WRITE_ONCE(r->hva, new);
	}
	vmm_layout_unlock(vmm);
	/* Whatever happened, give the guest its RAM back where it now is. */
	int err2 = set_memslot(vmm, slot, r->size, r->hva);

	atomic_fetch_add(&vmm->remaps, 1);
	return err ? err : err2;
}

/* The region holding all of [gpa, gpa + len), or NULL. */
static struct vmm_ram *ram_lookup(struct vmm *vmm, gpa_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < VMM_MAX_RAM; i++) {
		struct vmm_ram *r = &vmm->ram[i];

		if (r->used && gpa >= r->gpa && gpa - r->gpa <= r->size &&
		    len <= r->size - (gpa - r->gpa))
			return r;
	}
	return NULL;
}

int vmm_write_guest(struct vmm *vmm, gpa_t gpa, const void *buf, uint64_t len)
{
	struct vmm_ram *r = ram_lookup(vmm, gpa, len);
	int64_t n;

	if (!r)
		return -EFAULT;
	n = mm_write(vmm->mm, READ_ONCE(r->hva) + (gpa - r->gpa), buf, len);
	return n < 0 ? (int)n : 0;
}

int vmm_read_guest(struct vmm *vmm, gpa_t gpa, void *buf, uint64_t len)
{
	struct vmm_ram *r = ram_lookup(vmm, gpa, len);
	int64_t n;

	if (!r)
		return -EFAULT;
	n = mm_read(vmm->mm, READ_ONCE(r->hva) + (gpa - r->gpa), buf, len);
	return n < 0 ? (int)n : 0;
}

int vmm_add_mmio(struct vmm *vmm, gpa_t gpa, uint64_t len, vmm_mmio_fn fn, void *opaque)
{
	if (!vmm || !fn || !len || gpa + len < gpa)
		return -EINVAL;
	for (unsigned int i = 0; i < vmm->nr_mmio; i++)
		if (gpa < vmm->mmio[i].gpa + vmm->mmio[i].len && vmm->mmio[i].gpa < gpa + len)
			return -EEXIST;
	if (vmm->nr_mmio == VMM_MAX_MMIO)
		return -ENOSPC;
	vmm->mmio[vmm->nr_mmio++] = (struct vmm_mmio){ gpa, len, fn, opaque };
	return 0;
}

void vmm_set_mmio_default(struct vmm *vmm, vmm_mmio_fn fn, void *opaque)
{
	vmm->mmio_default = fn;
	vmm->mmio_default_opaque = opaque;
}

/* Every vCPU's exit handler: to the device covering gpa, or the default. */
static int vmm_mmio_dispatch(struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
			     uint64_t *val, void *arg)
{
	struct vmm *vmm = arg;

	for (unsigned int i = 0; i < vmm->nr_mmio; i++) {
		const struct vmm_mmio *m = &vmm->mmio[i];

		if (gpa >= m->gpa && gpa - m->gpa < m->len) {
			atomic_fetch_add_explicit(&vmm->mmio_exits, 1, memory_order_relaxed);
			m->fn(m->opaque, vcpu, gpa, size, write, val);
			return 0;
		}
	}
	atomic_fetch_add_explicit(&vmm->mmio_defaults, 1, memory_order_relaxed);
	if (vmm->mmio_default) {
		vmm->mmio_default(vmm->mmio_default_opaque, vcpu, gpa, size, write, val);
		return 0;
	}
	if (!write)
		*val = size == 8 ? ~(uint64_t)0 : (1ULL << (size * 8)) - 1;
	return -EFAULT;         /* nothing there: a bus error */
}

int vmm_create_vcpu(struct vmm *vmm, int id, struct vcpu **out)
{
	struct vcpu *v;
	int err;

	if (!vmm || !out || vmm->nr_vcpus == KVM_MAX_VCPUS)
		return -EINVAL;
	err = vcpu_create(vmm->kvm, id, &v);
	if (err)
		return err;
	vcpu_set_mmio(v, vmm_mmio_dispatch, vmm);
	vmm->vcpus[vmm->nr_vcpus++] = v;
	*out = v;
	return 0;
}

void vmm_get_stats(struct vmm *vmm, struct vmm_stats *st)
{
	st->mmio_exits = atomic_load(&vmm->mmio_exits);
	st->mmio_default = atomic_load(&vmm->mmio_defaults);
	st->remaps = atomic_load(&vmm->remaps);
}
