/* SPDX-License-Identifier: MIT */
/*
 * Small compiler helpers shared by every layer.
 * WUR marks a fallible function (returns 0 or -errno); callers must look at the result.
 */
#ifndef VIREO_COMMON_COMPILER_H
#define VIREO_COMMON_COMPILER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define WUR __attribute__((warn_unused_result))
#define UNUSED __attribute__((unused))
#define PRINTF_FMT(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Overflow-checked addition: true when a + b overflows. */
#define add_overflows(a, b, res) __builtin_add_overflow((a), (b), (res))

/* Barriers for rings shared with the guest (x86-TSO: only compiler barriers for rmb/wmb). */
#define barrier() __asm__ __volatile__("" ::: "memory")
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

#endif
