/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * doorbell/eventfd: ring by writing 1 to the queue's eventfd. The fd is
 * this process's own, from the queue object's slot; the primary reads the
 * sum of every process's writes from its end.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/eventfd.h>

#include "doorbell.h"

static int eventfd_ring(struct queue_shared *q, struct queue_local *local)
{
	if (local->efd < 0 || eventfd_write(local->efd, 1) < 0) {
		int rc = local->efd < 0 ? -EBADF : -errno;

		atomic_fetch_add_explicit(&q->failed, 1, memory_order_relaxed);
		return rc;
	}
	atomic_fetch_add_explicit(&q->rings, 1, memory_order_relaxed);
	return 0;
}

static int eventfd_describe(char *buf, size_t len)
{
	return snprintf(buf, len, "writes 1 to this process's own fd of the queue's eventfd");
}

static const struct doorbell_ops doorbell_eventfd_ops = {
	.ring = eventfd_ring,
	.describe = eventfd_describe,
};
MPOPS_OPS_IMPL(doorbell, eventfd, &doorbell_eventfd_ops)
