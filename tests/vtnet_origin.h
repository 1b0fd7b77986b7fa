/* SPDX-License-Identifier: BSD-3-Clause */
/* The field report's bug, for tests only: see vtnet_origin.c. */
#ifndef MPOPS_TEST_VTNET_ORIGIN_H
#define MPOPS_TEST_VTNET_ORIGIN_H

#include <mpops/port.h>

/* Primary, after vtnet_port_create and before start: store this process's
 * transport ops pointer in shared memory and make every process call
 * through it. @return 0 or -errno. */
int vtnet_origin_install(struct mpops_port *port);

#endif
