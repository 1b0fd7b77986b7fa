/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * driver=virtio: a vtnet port over vhost-user (virtio-user).
 *
 *   --vdev 'net_mpops0,driver=virtio,path=/tmp/vhost.sock,queues=2'
 *
 * Keys: path (the vhost-user socket, required), server=1 (we listen, the
 * backend connects), mrg_rxbuf, in_order, event_idx (0 turns the feature
 * off), queue_size (descriptors per ring), connect_timeout_ms.
 */
#include <errno.h>
#include <string.h>

#include <mpops/vtnet.h>

#include "pmd.h"

static const char *const virtio_keys[] = { "path", "server", "mrg_rxbuf", "in_order",
					   "event_idx", "queue_size", "connect_timeout_ms",
					   NULL };

/* A feature switch: absent or 1 on (vtnet's default), 0 off. */
static int feature(const struct pmd_args *a, const char *key, int *out)
{
	unsigned long v;

	if (pmd_arg_uint(a, key, 0, 1, 1, &v) < 0)
		return -EINVAL;
	*out = v ? 1 : -1;
	return 0;
}

static int virtio_create(struct mpops_region *r, const char *name, const struct pmd_args *a,
			 struct mpops_port **out)
{
	struct vtnet_conf c = { .sz = sizeof(c) };
	unsigned long server, ring, timeout;
	int rc;

	c.vhost_path = pmd_arg_str(a, "path", NULL);
	if (!c.vhost_path || !*c.vhost_path) {
		PMD_LOG(ERR, "%s: driver=virtio needs path=<vhost-user socket>\n", a->dev);
		return -EINVAL;
	}
	if (pmd_arg_uint(a, "server", 0, 1, 0, &server) < 0 ||
	    pmd_arg_uint(a, "queue_size", 16, 32768, 256, &ring) < 0 ||
	    pmd_arg_uint(a, "connect_timeout_ms", 1, 600000, 10000, &timeout) < 0 ||
	    feature(a, "mrg_rxbuf", &c.mergeable) < 0 || feature(a, "in_order", &c.in_order) < 0 ||
	    feature(a, "event_idx", &c.event_idx) < 0)
		return -EINVAL;
	if (ring & (ring - 1)) {
		PMD_LOG(ERR, "%s: queue_size=%lu: give a power of two\n", a->dev, ring);
		return -EINVAL;
	}
	if (a->nb_qp > VTNET_MAX_QP) {
		PMD_LOG(ERR, "%s: queues=%u: driver=virtio has at most %d queue pairs\n", a->dev,
			a->nb_qp, VTNET_MAX_QP);
		return -EINVAL;
	}
	c.server = (int)server;
	c.ring_size = (uint16_t)ring;
	c.connect_timeout_ms = (int)timeout;
	c.nb_qp = a->nb_qp;
	c.pool_size = a->pool_size;
	if ((rc = vtnet_port_create(r, name, &c, out)) < 0)
		PMD_LOG(ERR, "%s: no virtio port on vhost-user socket %s: %s: start the backend first (or give server=1)\n",
			a->dev, c.vhost_path, strerror(-rc));
	return rc;
}

static const struct pmd_driver virtio_driver = {
	.name = "virtio",
	.keys = virtio_keys,
	.create = virtio_create,
};
PMD_DRIVER(virtio_driver)
