/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Robust process-shared mutex for structures in shared memory, and what
 * happens when a holder dies inside: the protected state is repaired
 * before anyone else sees it, or the lock is given up for good.
 */
#include <errno.h>

#include "priv.h"

void (*mpops__test_point_hook)(const char *point);

int shlock_init(struct shlock *l)
{
	pthread_mutexattr_t a;
	int rc;

	memset(l, 0, sizeof(*l));
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(&l->m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

int shlock_lock_repair(struct shlock *l, const char *what, shlock_repair_fn repair, void *arg)
{
	int rc = pthread_mutex_lock(&l->m);

	if (rc == 0)
		return 0;
	if (rc == EOWNERDEAD) {
		if (repair && (rc = repair(arg)) < 0) {
			/* Unlocked without pthread_mutex_consistent(): the
			 * mutex is not recoverable from now on, for everyone. */
			pthread_mutex_unlock(&l->m);
			log_err("a process died inside %s and it cannot be repaired (%s): it is not usable any more; recreate the region",
				what, strerror(-rc));
			return -ENOTRECOVERABLE;
		}
		pthread_mutex_consistent(&l->m);
		log_warn("a process died holding the lock of %s: %s, taken over", what,
			 repair ? "repaired" : "nothing half done");
		return 0;
	}
	log_err("%s is not usable (%s): a process died inside it earlier and it could not be repaired; recreate the region",
		what, strerror(rc));
	return -ENOTRECOVERABLE;
}

int shlock_lock(struct shlock *l)
{
	return shlock_lock_repair(l, "a shared table", NULL, NULL);
}

void shlock_unlock(struct shlock *l)
{
	pthread_mutex_unlock(&l->m);
}
