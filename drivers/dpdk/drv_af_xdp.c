/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * driver=af_xdp: an AF_XDP port (drivers/af_xdp) on queues of an interface.
 *
 *   --vdev 'net_mpops0,driver=af_xdp,iface=veth0,queues=2'
 *
 * Keys: iface (required), start_queue, mode (auto, native, generic),
 * zero_copy (auto, on, off), frame_size (2048 or 4096), ring_size,
 * busy_poll (a budget, 0 off). queues and pool are the generic keys.
 * Unlike DPDK's own net_af_xdp, a DPDK secondary receives and transmits:
 * each process maps the sockets' rings itself.
 */
#include <errno.h>
#include <string.h>

#include <mpops/afxdp.h>

#include "pmd.h"

static const char *const af_xdp_keys[] = { "iface", "start_queue", "mode", "zero_copy",
					   "frame_size", "ring_size", "busy_poll", NULL };

/* One of @p names (absent: the first), its index in *out. */
static int choice(const struct pmd_args *a, const char *key, const char *const names[3],
		  int *out)
{
	const char *v = pmd_arg_str(a, key, names[0]);

	for (int i = 0; i < 3; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	PMD_LOG(ERR, "%s: %s=%s: give %s, %s or %s\n", a->dev, key, v, names[0], names[1],
		names[2]);
	return -EINVAL;
}

static int af_xdp_create(struct mpops_region *r, const char *name, const struct pmd_args *a,
			 struct mpops_port **out)
{
	static const char *const modes[3] = { "auto", "native", "generic" };
	static const char *const zcs[3] = { "auto", "on", "off" };
	struct afxdp_conf c = { .sz = sizeof(c) };
	unsigned long start, frame, ring, busy;
	int rc;

	c.iface = pmd_arg_str(a, "iface", NULL);
	if (!c.iface || !*c.iface) {
		PMD_LOG(ERR, "%s: driver=af_xdp needs iface=<interface>\n", a->dev);
		return -EINVAL;
	}
	if (pmd_arg_uint(a, "start_queue", 0, 65535, 0, &start) < 0 ||
	    pmd_arg_uint(a, "frame_size", 2048, 4096, 2048, &frame) < 0 ||
	    pmd_arg_uint(a, "ring_size", 64, 8192, 1024, &ring) < 0 ||
	    pmd_arg_uint(a, "busy_poll", 0, 1024, 0, &busy) < 0 ||
	    choice(a, "mode", modes, &c.xdp_mode) < 0 || choice(a, "zero_copy", zcs, &c.zero_copy) < 0)
		return -EINVAL;
	if (a->nb_qp > AFXDP_MAX_QP) {
		PMD_LOG(ERR, "%s: queues=%u: driver=af_xdp has at most %d queue pairs\n", a->dev,
			a->nb_qp, AFXDP_MAX_QP);
		return -EINVAL;
	}
	c.start_queue = (uint16_t)start;
	c.frame_size = (uint16_t)frame;
	c.ring_size = (uint32_t)ring;
	c.busy_poll = (int)busy;
	c.nb_qp = a->nb_qp;
	/* pool= when given; else the driver's own default, which leaves
	 * room beside the frames the fill rings hold. */
	c.pool_size = pmd_arg_str(a, "pool", NULL) ? a->pool_size : 0;
	if ((rc = afxdp_port_create(r, name, &c, out)) < 0)
		PMD_LOG(ERR, "%s: no AF_XDP port on %s: %s: see the line above\n", a->dev, c.iface,
			strerror(-rc));
	return rc;
}

static const struct pmd_driver af_xdp_driver = {
	.name = "af_xdp",
	.keys = af_xdp_keys,
	.create = af_xdp_create,
};
PMD_DRIVER(af_xdp_driver)
