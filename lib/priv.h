/* SPDX-License-Identifier: BSD-3-Clause */
/* Internal helpers shared by the library's modules. Never installed. */
#ifndef MPOPS_LIB_PRIV_H
#define MPOPS_LIB_PRIV_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <mpops/common.h>

#define log_err(...)   mpops_log(MPOPS_LOG_ERR, __VA_ARGS__)
#define log_warn(...)  mpops_log(MPOPS_LOG_WARN, __VA_ARGS__)
#define log_info(...)  mpops_log(MPOPS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) mpops_log(MPOPS_LOG_DEBUG, __VA_ARGS__)

#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A lock that lives in shared memory: a robust, process-shared mutex, so a
 * process that dies holding it does not wedge the others (the next locker
 * gets EOWNERDEAD and takes it over). Padded to a cache line so the shared
 * layouts do not depend on the size of pthread_mutex_t.
 */
struct shlock {
	union {
		pthread_mutex_t m;
		uint8_t pad[64];
	};
};
_Static_assert(sizeof(struct shlock) == 64, "shlock layout");

int shlock_init(struct shlock *l);
/* Lock; returns 0, or 1 when the previous holder died (state may need a
 * repair by the caller; the lock is held either way). */
int shlock_lock(struct shlock *l);
void shlock_unlock(struct shlock *l);

/* 64-bit FNV-1a. */
static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
#define FNV_SEED 0xcbf29ce484222325ULL

static inline uint64_t fnv1a_u64(uint64_t h, uint64_t v)
{
	return fnv1a(h, &v, sizeof(v));
}

/* Layout hashes: sizes and offsets of shared structs. */
#define H_STRUCT(h, T) fnv1a_u64((h), sizeof(T))
#define H_FIELD(h, T, f) fnv1a_u64((h), offsetof(T, f))

/* Copy a name into a fixed shared field; -ENAMETOOLONG if it does not fit. */
static inline int name_copy(char *dst, size_t cap, const char *src)
{
	return strlcpy(dst, src, cap) >= cap ? -ENAMETOOLONG : 0;
}

#endif
