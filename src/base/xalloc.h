/* SPDX-License-Identifier: MIT */
/*
 * xalloc.h - allocation that cannot fail, for the places where running out
 * of process memory can only end the program: command-line tools,
 * benchmarks, tests. Library code returns -ENOMEM instead.
 */
#ifndef TANDEM_BASE_XALLOC_H
#define TANDEM_BASE_XALLOC_H

#include <stddef.h>

/* calloc(n, size) (at least one byte), or print "out of memory" and exit(1). */
void *xcalloc(size_t n, size_t size);
/* aligned_alloc, size rounded up to align, zeroed; or exit(1) as above. */
void *xaligned_zalloc(size_t align, size_t size);

#endif
