/* SPDX-License-Identifier: MIT */
/*
 * types.h - one scalar type per address space (STYLE.md, practice 11).
 */
#ifndef TANDEM_TYPES_H
#define TANDEM_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t pfn_t;  /* host frame number: index into the RAM arena */
typedef uint64_t hva_t;  /* host virtual address inside a struct mm */
typedef uint64_t gpa_t;  /* guest physical address */
typedef uint64_t gfn_t;  /* guest frame number */
typedef uint64_t gva_t;  /* guest virtual address */
typedef uint64_t pte_t;  /* host page-table entry (x86-64 layout, see pgtable.h) */

#define PAGE_SHIFT 12
#define PAGE_SIZE  (1UL << PAGE_SHIFT)
#define PAGE_MASK  (~(PAGE_SIZE - 1))
#define PAGE_ALIGNED(x) (((x) & (PAGE_SIZE - 1)) == 0)
#define PAGE_ALIGN(x) (((x) + PAGE_SIZE - 1) & PAGE_MASK)

#define PFN_INVALID ((pfn_t)-1)

#endif
