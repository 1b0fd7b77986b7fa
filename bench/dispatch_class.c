/* SPDX-License-Identifier: BSD-3-Clause */
#include "dispatch.h"

MPOPS_OPS_CLASS_DEFINE(dispatch, DISPATCH_OPS)

/* The bench port driver's burst (another file than the cases: not inlined). */
__attribute__((noinline)) int dispatch_port_rx(void *queue, struct mpops_pkt **pkts, uint16_t n)
{
	struct dispatch_burst_queue *q = queue;

	(void)pkts;
	(void)n;
	q->hw->kicks[q->queue & (DISPATCH_QUEUES - 1)]++;
	return 0;
}
