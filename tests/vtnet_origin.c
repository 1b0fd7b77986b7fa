/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The field report's bug, for tests only: the shared state holds the
 * primary's ops pointer and every process calls through it, as
 * vq->hw->vtpci_ops->notify_queue(vq->hw, vq) did in DPDK 16.11. Built into
 * vt-primary-origin and vt-peer-origin; the driver has no trace of it.
 *
 * An implementation "origin" of the vtpci class loads the pointer the
 * primary stored in shared memory and calls through it. In the primary
 * that is its own code and works; in a secondary, another executable
 * mapped elsewhere, it points at nothing (SIGSEGV on the first notify).
 */
#include <errno.h>
#include <stdio.h>

#include "vtnet_origin.h"
#include "vtnet_priv.h"

/* One root per port: "origin.<port>". */
static void origin_root(char *buf, size_t len, const struct vtnet_port *p)
{
	snprintf(buf, len, "origin.%.20s", p->sh->name);
}

/* In shared memory: what the report's struct virtio_hw held. A pointer by
 * type, so that mpops-audit-types reports this build at raw_ops (tests/audit). */
struct origin_shared {
	const struct vtpci_ops *raw_ops;	/* the primary's */
};

static int origin_notify(struct vtnet_port *p, struct vtnet_slot *s, uint16_t vq)
{
	struct origin_shared *o;
	char root[MPOPS_NAME_MAX + 1];
	mpops_off_t off;

	origin_root(root, sizeof(root), p);
	if (mpops_root_get(p->r, root, &off) < 0)
		return -ENOENT;
	o = mpops_ptr(p->base, off);
	return o->raw_ops->notify_queue(p, s, vq);	/* the bug */
}

static const struct vtpci_ops origin_ops = { .notify_queue = origin_notify };
MPOPS_OPS_IMPL(vtpci, origin, &origin_ops)

int vtnet_origin_install(struct mpops_port *port)
{
	struct vtnet_port *p = mpops_port_priv(port);
	struct origin_shared *o;
	char root[MPOPS_NAME_MAX + 1];
	mpops_off_t off;
	int rc;

	if (!p || p->magic != VTNET_MAGIC)
		return -EINVAL;
	origin_root(root, sizeof(root), p);
	if ((rc = mpops_alloc(p->r, sizeof(*o), 64, root, &off)) < 0 ||
	    (rc = mpops_root_set(p->r, root, off)) < 0)
		return rc;
	o = mpops_ptr(p->base, off);
	o->raw_ops = MPOPS_OPS(vtpci, p->sh->ops_id);
	return mpops_ops_id(&mpops_impl_vtpci_origin, &p->sh->ops_id);
}
