/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vtnet transports: how the creator reaches a virtio-net device, and how
 * every process reaches it for a notify. Each transport is two registered
 * descriptors the driver's shared block refers to by ID:
 *
 *  - class vtnet_tr (tr_id): its life cycle in the creator (create and
 *    destroy, start and stop, feature negotiation), the per-process slot
 *    (attach: this process's own access to the device; detach), and the
 *    fds every process needs (fds_export, creator). Implementations:
 *    "user" (virtio_user.c), "pci" (pci.c). Each keeps its own shared
 *    block (vtnet_port_shared.tr_off): the vhost-user socket, or the PCI
 *    function's description.
 *  - class vtpci (ops_id), the origin's vtpci_ops cut to what must run in
 *    every process on the fast path: notify_queue. Implementations
 *    "user", "pci_legacy", "pci_modern" (the PCI probe picks one, the
 *    origin's hw->modern).
 *
 * A transport never writes the port layer's state: it reports loss and
 * return with mpops_port_lost()/mpops_port_restored() and the link with
 * mpops_port_link_set().
 */
#ifndef MPOPS_VTNET_TRANSPORT_H
#define MPOPS_VTNET_TRANSPORT_H

#include <mpops/ops.h>
#include <mpops/vtnet.h>

struct vtnet_port;
struct vtpci_access;

/* Most virtqueues a port has: 2 per queue pair and a control queue. */
#define VTNET_MAX_VQ (2 * VTNET_MAX_QP + 1)

/* What only this process can hold for a port, per transport: its copies
 * of the kick fds (user), or its own access to the PCI device. Built by
 * the transport's slot_attach at the port's epoch. */
struct vtnet_slot {
	int nfds;
	int kickfd[VTNET_MAX_VQ];
	struct vtpci_access *pci;
};

/*
 * The life-cycle ops (creator unless said otherwise):
 *  - create: connect to or probe the device, allocate the transport's
 *    shared block (tr_off), set ops_id, max_qp, device_features,
 *    tr_features (features the transport requires), cvq_size.
 *  - destroy: undo create (the port is stopped).
 *  - start: hand the rings to the device and make it run.
 *  - stop: take the rings back (bursts are gone everywhere).
 *  - features_set: tell the device the negotiated features.
 *  - slot_attach, slot_detach: any process, see struct vtnet_slot.
 *  - fds_export: the creator's fds every process needs; returns the count.
 */
#define VTNET_TR_OPS(OP)                                                         \
	OP(int, create, (struct vtnet_port *, const struct vtnet_conf *))         \
	OP(int, destroy, (struct vtnet_port *))                                   \
	OP(int, start, (struct vtnet_port *))                                     \
	OP(int, stop, (struct vtnet_port *))                                      \
	OP(int, features_set, (struct vtnet_port *, uint64_t /* features */))     \
	OP(int, slot_attach, (struct vtnet_port *, struct vtnet_slot *))          \
	OP(int, slot_detach, (struct vtnet_port *, struct vtnet_slot *))          \
	OP(int, fds_export, (struct vtnet_port *, int * /* fds */, int /* max */))

MPOPS_OPS_CLASS_DECLARE(vtnet_tr, VTNET_TR_OPS)

/* The per-process ops: notify_queue tells the device about virtqueue @vq
 * through this process's own access, from @slot (current at the epoch the
 * caller got it at). */
#define VTPCI_OPS(OP)                                                            \
	OP(int, notify_queue, (struct vtnet_port *, struct vtnet_slot *,          \
			       uint16_t /* vq */))

MPOPS_OPS_CLASS_DECLARE(vtpci, VTPCI_OPS)

MPOPS_OPS_IMPL_DECLARE(vtnet_tr, user)
MPOPS_OPS_IMPL_DECLARE(vtnet_tr, pci)
MPOPS_OPS_IMPL_DECLARE(vtpci, user)
MPOPS_OPS_IMPL_DECLARE(vtpci, pci_legacy)
MPOPS_OPS_IMPL_DECLARE(vtpci, pci_modern)

#endif
