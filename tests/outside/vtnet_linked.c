/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Built against mpops-vtnet (the installed vtnet.h and its .pc, or the
 * subproject's dependency): including the header links the driver, so
 * vtnet is registered in this program although it calls nothing of it.
 */
#include <stdio.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>

int main(void)
{
	const struct mpops_ops_impl *vt = &mpops_impl_mpops_port_drv_vtnet;

	printf("%s/%s\n", vt->cls->name, vt->name);
	return 0;
}
