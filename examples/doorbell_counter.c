/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * doorbell/counter: ring by counting in the shared queue itself. Needs
 * nothing per process, so it ignores the slot.
 */
#include <stdio.h>

#include "doorbell.h"

static int counter_ring(struct queue_shared *q, struct queue_local *local)
{
	(void)local;
	atomic_fetch_add_explicit(&q->rings, 1, memory_order_relaxed);
	return 0;
}

static int counter_describe(char *buf, size_t len)
{
	return snprintf(buf, len, "adds 1 to the ring counter in the shared queue");
}

static const struct doorbell_ops doorbell_counter_ops = {
	.ring = counter_ring,
	.describe = counter_describe,
};
MPOPS_OPS_IMPL(doorbell, counter, &doorbell_counter_ops)
