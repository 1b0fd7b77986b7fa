/* SPDX-License-Identifier: BSD-3-Clause */
/* Test traffic through a port, shared by vt-peer and vt-primary. */
#ifndef MPOPS_TEST_VT_TRAFFIC_H
#define MPOPS_TEST_VT_TRAFFIC_H

#include <signal.h>
#include <stdint.h>

#include <mpops/port.h>

/* Set by the program's SIGTERM handler: traffic() stops early. */
extern volatile sig_atomic_t stop;

/*
 * Move @count packets of @size bytes on queue pair @qp as @cmd says: "tx"
 * sends, "rx" receives, "loop" sends and takes them back, checking each
 * one's stamp (this pid) and length (@bad counts the others). 10 s at most.
 */
void traffic(const char *cmd, struct mpops_port *p, void *base, uint16_t qp, uint64_t count,
	     unsigned size, uint64_t *sent, uint64_t *got, uint64_t *bad);

#endif
