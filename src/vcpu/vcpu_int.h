/* SPDX-License-Identifier: MIT */
#ifndef TANDEM_VCPU_INT_H
#define TANDEM_VCPU_INT_H

#include "tandem/vcpu.h"

static inline void vcpu_test_hook(struct kvm_vcpu *v, enum vcpu_hook_point at)
{
	vcpu_hook_fn fn = atomic_load_explicit(&v->hook, memory_order_acquire);

	if (__builtin_expect(fn != NULL, 0))
		fn(v, at, v->hook_arg);
}

void stlb_flush(struct kvm_vcpu *v);

#endif
