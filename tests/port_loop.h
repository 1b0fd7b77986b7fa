/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * "loop", a port driver for the port layer's own tests: a device in shared
 * memory that hands every packet transmitted on queue pair k back on the
 * receive side of queue pair k. It is as small as a driver gets on the port
 * layer, and counts what the library asks of it, so tests can check when
 * the library calls which op, in which process.
 *
 * Per-process resource: an eventfd the creator makes; every process's slot
 * holds its own copy (through mpops_port_fds_get), and each tx burst
 * writes 1 to it, as a driver kicks a device. The creator reads the sum.
 */
#ifndef MPOPS_TEST_PORT_LOOP_H
#define MPOPS_TEST_PORT_LOOP_H

#include <stdatomic.h>

#include <mpops/port_driver.h>

#define LOOP_RING 256

struct loop_ring_shared {
	uint64_t pkt[LOOP_RING];	/* mpops_pkt offsets */
	uint32_t head, tail;		/* written by the queue pair's owner only */
};

struct loop_shared {
	uint32_t magic;
	uint32_t pad;
	/* what the library asked of the driver, in any process */
	_Atomic uint32_t opens, closes, starts, stops, slot_attaches, slot_detaches,
		exports, queue_setups, takeovers;
	int32_t takeover_pid;		/* the dead owner the last takeover named */
	uint32_t takeover_recovered;	/* buffers takeovers gave back */
	struct loop_ring_shared ring[MPOPS_PORT_MAX_QP];
};

MPOPS_OPS_IMPL_DECLARE(mpops_port_drv, loop)
MPOPS_OPS_IMPL_REQUIRE(mpops_port_drv, loop)

/* Creator: a loop port of @nb_qp queue pairs. */
int loop_port_create(struct mpops_region *r, const char *name, uint16_t nb_qp,
		     struct mpops_port **out);
/* The driver's counters. */
struct loop_shared *loop_shared(struct mpops_port *port);
/* Creator: kicks written by every process so far (reads the eventfd). */
uint64_t loop_kicks(struct mpops_port *port);

/* Called by loop_tx after it placed a packet (@placed so far in this
 * burst), when set: a test makes the process die there. */
extern void (*loop_tx_hook)(unsigned placed);

/* The marks queue_setup was given for @qp in this process. */
struct mpops_port_marks loop_marks(struct mpops_port *port, uint16_t qp);

/* When not 0, queue_setup fails with it: a test's driver that cannot build
 * a queue pair's per-process state. */
extern int loop_setup_fail;

/* Send @n packets of 64 bytes stamped with @seq.. and take back what
 * arrives, up to @n; returns the number received. */
int loop_traffic(struct mpops_port *port, uint16_t qp, unsigned n);

#endif
