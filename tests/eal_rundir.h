/* SPDX-License-Identifier: BSD-3-Clause */
/* DPDK's EAL keeps runtime files in a directory named after --file-prefix
 * and leaves them behind when its process ends: tests that start testpmd
 * remove it with this. */
#ifndef MPOPS_TEST_EAL_RUNDIR_H
#define MPOPS_TEST_EAL_RUNDIR_H

/* Remove the files and the directory of EAL file prefix @prefix, and one
 * level of directories in it (net_mpops's mpops/) (nothing
 * for an empty one). */
void eal_rundir_remove(const char *prefix);

#endif
