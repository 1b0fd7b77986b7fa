/* SPDX-License-Identifier: BSD-3-Clause */
/* Robust process-shared mutex for structures in shared memory. */
#include <errno.h>

#include "priv.h"

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

int shlock_lock(struct shlock *l)
{
	int rc = pthread_mutex_lock(&l->m);

	if (rc == EOWNERDEAD) {
		log_warn("a process died holding a shared lock: taking it over");
		pthread_mutex_consistent(&l->m);
		return 1;
	}
	return 0;
}

void shlock_unlock(struct shlock *l)
{
	pthread_mutex_unlock(&l->m);
}
