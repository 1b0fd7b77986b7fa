/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Built against mpops-vtnet (the subproject's dependency or the installed
 * vtnet.h and its .pc), shared or static. It calls nothing of the driver:
 * including vtnet.h must be enough for the driver to be linked and its
 * port driver registered, which a name table in this process's own memory
 * shows (the bind appends every registered implementation).
 */
#include <stdio.h>
#include <stdlib.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>

int main(void)
{
	size_t len = (mpops_ops_table_size() + 63) & ~(size_t)63;
	void *tbl = aligned_alloc(64, len);
	mpops_ops_id_t id;
	int rc;

	if (!tbl || mpops_ops_table_init(tbl, len) < 0 || mpops_ops_bind(tbl, 0) < 0)
		return 1;
	rc = mpops_ops_find("mpops_port_drv", "vtnet", &id);
	if (rc == 0)
		printf("ok: mpops_port_drv/vtnet is registered (ID %u)\n", id);
	else
		printf("FAIL: mpops_port_drv/vtnet is not registered: the driver was not linked\n");
	mpops_ops_unbind(tbl);
	free(tbl);
	return rc == 0 ? 0 : 1;
}
