/* SPDX-License-Identifier: MIT */
/*
 * pgtable.h - reading a host PTE value, for subscribers that receive one
 * (change_pte). The layout is x86-64's; src/host/internal.h has the rest.
 */
#ifndef TANDEM_PGTABLE_H
#define TANDEM_PGTABLE_H

#include "tandem/types.h"

#define PTE_BIT_PRESENT  (1ULL << 0)
#define PTE_BIT_RW       (1ULL << 1)
#define PTE_PFN_BITS     0x000ffffffffff000ULL

static inline bool pte_is_present(pte_t p)  { return p & PTE_BIT_PRESENT; }
static inline bool pte_is_writable(pte_t p) { return p & PTE_BIT_RW; }
static inline pfn_t pte_to_pfn(pte_t p)     { return (p & PTE_PFN_BITS) >> PAGE_SHIFT; }

#endif
