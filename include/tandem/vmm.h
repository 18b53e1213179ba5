/* SPDX-License-Identifier: MIT */
/*
 * vmm.h - what a VMM process owns: its address space, the VM, the guest
 * RAM layout (host mappings registered as memslots), MMIO dispatch to
 * device handlers, and the vCPUs.
 *
 * A struct vmm is the userspace half of a VM, as QEMU is to KVM: it maps
 * guest RAM into its own mm (private anonymous memory), tells the VM where
 * (kvm_set_user_memory_region), and handles the exits the VM cannot: an
 * access no RAM backs, or a write to read-only RAM (a ROM), is dispatched
 * to the device whose range covers it, else to the default handler.
 *
 * Layout rule: RAM regions are added before the vCPUs run; afterwards only
 * vmm_remap_ram changes the layout, and one thread at a time may call it.
 * vmm_ram_hva is safe from that thread, and from any thread that holds the
 * layout lock (vmm_layout_lock) across its use of the address.
 */
#ifndef TANDEM_VMM_H
#define TANDEM_VMM_H

#include "tandem/types.h"
#include "tandem/host.h"
#include "tandem/kvm.h"
#include "tandem/cpu.h"

#define VMM_MAX_RAM   32       /* RAM regions; region i is memslot i */
#define VMM_MAX_MMIO  16       /* device ranges */

struct vmm;

/* A device's handler: an access of size bytes (1, 2, 4 or 8, naturally
 * aligned) at gpa (inside its range), on vcpu's thread, outside guest
 * mode. A read stores *val (zero-extended). */
typedef void (*vmm_mmio_fn)(void *opaque, struct vcpu *vcpu, gpa_t gpa, unsigned int size,
			    bool write, uint64_t *val);

/* mm_create + kvm_create_vm (cfg may be NULL). Errors as kvm_create_vm's
 * (-EOPNOTSUPP: the RSEQ kick mode asked for is not available), -ENOMEM. */
int vmm_create(struct host *host, const struct kvm_config *cfg, struct vmm **out);
/* Destroys the vCPUs (stopped first), the VM, and drops the VMM's mm. */
void vmm_destroy(struct vmm *vmm);
struct mm *vmm_mm(struct vmm *vmm);
struct kvm *vmm_kvm(struct vmm *vmm);

/*
 * RAM region `slot` (< VMM_MAX_RAM): size bytes of fresh private anonymous
 * memory mapped anywhere in the VMM's mm and registered as memslot `slot`
 * at gpa, with flags (KVM_MEM_READONLY for a ROM). -EINVAL for a bad or
 * used slot or unaligned values; -EEXIST for an overlap; -ENOMEM.
 */
int vmm_add_ram(struct vmm *vmm, unsigned int slot, gpa_t gpa, uint64_t size,
		uint32_t flags);
/* Where region slot is mapped now (0: no such region). */
hva_t vmm_ram_hva(struct vmm *vmm, unsigned int slot);
uint64_t vmm_ram_size(struct vmm *vmm, unsigned int slot);
/*
 * Give region slot a new backing: delete its memslot, map a new range,
 * unmap the old one, set the memslot again at the new address. The guest
 * reads zeroes there afterwards. Not safe against a concurrent remap.
 */
int vmm_remap_ram(struct vmm *vmm, unsigned int slot);
void vmm_layout_lock(struct vmm *vmm);
void vmm_layout_unlock(struct vmm *vmm);

/* The VMM's own accesses to guest physical memory, through its mm (as
 * QEMU's address_space_rw): faults in, sets accessed/dirty. Read-only RAM
 * is written too (a ROM is filled this way). Returns 0, -EFAULT if the
 * range is not all RAM of one region, or the mm's error (-ENOMEM, -EIO). */
int vmm_write_guest(struct vmm *vmm, gpa_t gpa, const void *buf, uint64_t len);
int vmm_read_guest(struct vmm *vmm, gpa_t gpa, void *buf, uint64_t len);

/* Devices: fn handles accesses to [gpa, gpa + len) that exit to the VMM
 * (the range backs no RAM, or is read-only RAM and the access a write).
 * -EINVAL, -EEXIST for an overlapping device, -ENOSPC. */
int vmm_add_mmio(struct vmm *vmm, gpa_t gpa, uint64_t len, vmm_mmio_fn fn, void *opaque);
/* The handler for exits no device claims (default: none: reads all-ones,
 * writes are dropped, and the vCPU is told nothing is there, which a
 * RISC-V hart raises as an access fault). */
void vmm_set_mmio_default(struct vmm *vmm, vmm_mmio_fn fn, void *opaque);

/* A vCPU whose exits go to this VMM's dispatch; destroyed by vmm_destroy.
 * Errors as vcpu_create's. */
int vmm_create_vcpu(struct vmm *vmm, int id, struct vcpu **out);

struct vmm_stats {
	uint64_t mmio_exits;            /* dispatched to a device */
	uint64_t mmio_default;          /* to the default handler */
	uint64_t remaps;
};
void vmm_get_stats(struct vmm *vmm, struct vmm_stats *st);

#endif
