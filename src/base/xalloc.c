/* SPDX-License-Identifier: MIT */
#include "xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void __attribute__((noreturn)) out_of_memory(size_t bytes)
{
	fflush(stdout);
	fprintf(stderr, "tandem: out of memory (allocating %zu bytes)\n", bytes);
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		out_of_memory(n * size);
	return p;
}

void *xaligned_zalloc(size_t align, size_t size)
{
	size_t bytes = (size + align - 1) & ~(align - 1);
	void *p = aligned_alloc(align, bytes ? bytes : align);

	if (!p)
		out_of_memory(bytes);
	memset(p, 0, bytes ? bytes : align);
	return p;
}
