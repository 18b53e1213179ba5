/* SPDX-License-Identifier: MIT */
/*
 * config.h - what this build is: the one place that detects sanitizers and
 * decides whether the RSEQ guest-access path is compiled in. Public, so
 * that the inline hit path in cpu.h and every layer agree.
 *
 *   TANDEM_TSAN       built with -fsanitize=thread
 *   TANDEM_ASAN       built with -fsanitize=address
 *   TANDEM_SANITIZER  either of them
 *   TANDEM_HAVE_RSEQ  guest accesses can be rseq critical sections (x86-64,
 *                     no sanitizer: sanitizers cannot see accesses made in
 *                     asm, so those builds use the waiting kick protocol)
 */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#if defined(__SANITIZE_THREAD__)
#define TANDEM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TANDEM_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TANDEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TANDEM_ASAN 1
#endif
#endif

#if defined(TANDEM_TSAN) || defined(TANDEM_ASAN)
#define TANDEM_SANITIZER 1
#endif

#if defined(__x86_64__) && !defined(TANDEM_SANITIZER)
#define TANDEM_HAVE_RSEQ 1
#endif

#endif
