/* SPDX-License-Identifier: BSD-3-Clause */
/* Internal helpers shared by the library's modules. Never installed. */
#ifndef MPOPS_LIB_PRIV_H
#define MPOPS_LIB_PRIV_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <mpops/audit.h>
#include <mpops/common.h>

#define log_err(...)   mpops_log(MPOPS_LOG_ERR, __VA_ARGS__)
#define log_warn(...)  mpops_log(MPOPS_LOG_WARN, __VA_ARGS__)
#define log_info(...)  mpops_log(MPOPS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) mpops_log(MPOPS_LOG_DEBUG, __VA_ARGS__)

#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A lock that lives in shared memory: a robust, process-shared mutex, so a
 * process that dies holding it does not wedge the others. The next locker
 * gets EOWNERDEAD: the state the lock protects may be half changed, so it
 * is repaired (shlock_lock_repair()) before the lock is marked consistent;
 * a repair that fails leaves the lock not recoverable, and every later
 * locker gets -ENOTRECOVERABLE. Padded to a cache line so the shared
 * layouts do not depend on the size of pthread_mutex_t.
 */
struct shlock {
	union {
		pthread_mutex_t m;
		uint8_t pad[64];
	};
};
_Static_assert(sizeof(struct shlock) == 64, "shlock layout");
/* The static audit (mpops-audit-types) sees pointers in pthread_mutex_t. */
MPOPS_AUDIT_ALLOW(shlock, m,
	"a robust process-shared pthread mutex: glibc keeps the holder's robust-list links in it (__list), followed only by the holder's own process and by the kernel when it dies");

/* Put the state a lock protects right after its holder died inside
 * (called with the lock held). @return 0, or -errno: it cannot be. */
typedef int (*shlock_repair_fn)(void *arg);

int shlock_init(struct shlock *l);
/*
 * Lock @l, which protects @what (for the log lines). When the previous
 * holder died inside, @repair(@arg) runs first (NULL: the state is
 * consistent at every store, nothing to repair) and one line is logged.
 * @return 0 (held), or -ENOTRECOVERABLE (not held; logged): the repair
 * failed now or earlier.
 */
int shlock_lock_repair(struct shlock *l, const char *what, shlock_repair_fn repair, void *arg);
/* shlock_lock_repair() of state that needs no repair. */
int shlock_lock(struct shlock *l);
void shlock_unlock(struct shlock *l);

/*
 * Test points: named places inside critical sections where a test makes
 * the process die (tests/crash_point.c installs the hook). A process-local
 * pointer, NULL in every product process: a load and a branch, on slow
 * paths only.
 */
extern void (*mpops__test_point_hook)(const char *point);

static inline void test_point(const char *point)
{
	if (__builtin_expect(mpops__test_point_hook != NULL, 0))
		mpops__test_point_hook(point);
}

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
