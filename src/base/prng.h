/* SPDX-License-Identifier: MIT */
/*
 * prng.h - the one pseudo-random generator: xorshift64* streams seeded
 * through splitmix64's finaliser. Fast, 64-bit, reproducible from a seed;
 * not for anything that needs unpredictability.
 *
 * A stream is a uint64_t that is never 0. prng_seed(seed, stream) gives
 * independent-looking streams for the threads of one run from one seed.
 */
#ifndef TANDEM_BASE_PRNG_H
#define TANDEM_BASE_PRNG_H

#include <stdint.h>

/* splitmix64's finaliser: a bijective 64-bit mix. */
static inline uint64_t prng_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* The state of stream number `stream` of a run seeded with `seed`. */
static inline uint64_t prng_seed(uint64_t seed, uint64_t stream)
{
	uint64_t s = prng_mix64(seed * 0x9e3779b97f4a7c15ULL + 2 * stream + 1);

	return s ? s : 0x9e3779b97f4a7c15ULL;
}

/* xorshift64*. */
static inline uint64_t prng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n) (0 for n == 0), by multiply-shift: no division. */
static inline uint64_t prng_below(uint64_t *s, uint64_t n)
{
	return n ? (uint64_t)(((unsigned __int128)prng_next(s) * n) >> 64) : 0;
}

/* Uniform in [0, 1). */
static inline double prng_double(uint64_t *s)
{
	return (double)(prng_next(s) >> 11) * 0x1.0p-53;
}

#endif
