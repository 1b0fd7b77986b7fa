/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file vtnet.h
 * vtnet: a virtio-net poll-mode driver on mpops, usable from several
 * processes, and the first driver on the port layer (port.h).
 *
 * The primary creates a port with vtnet_port_create(); from then on it is
 * an mpops port like any other: the primary starts and stops it, any
 * process attached to the region (the primary or a secondary, which may be
 * a different executable) opens it by name, claims queue pairs and
 * receives and transmits on them with the generic calls. Everything a
 * call needs that only one process can hold (kick eventfds, the device
 * access, the transport's ops) is resolved per process: the shared state
 * stores only the transport's ops ID. This header holds what is virtio
 * about a port: its configuration and its feature and ring introspection.
 *
 * Transports: "user" (virtio-user over the vhost-user protocol, client or
 * server mode), and PCI: "pci-legacy" (the virtio 0.9.5 header in I/O
 * BAR0) or "pci-modern" (virtio 1.x capabilities), picked at probe from
 * what the device offers, through uio_pci_generic or vfio-pci. Each process
 * reaches the device itself (its own iopl or BAR mapping, or a copy of the
 * vfio device fd), so a secondary's notify goes through its own access.
 * Features: VERSION_1, MAC, STATUS, MRG_RXBUF (and the non-mergeable rx path), RING_F_EVENT_IDX, F_IN_ORDER, MQ with the control
 * virtqueue; whatever the peer does not offer is negotiated away.
 */
#ifndef MPOPS_VTNET_H
#define MPOPS_VTNET_H

#include <stdint.h>

#include <mpops/common.h>
#include <mpops/ops.h>
#include <mpops/pkt.h>
#include <mpops/port.h>
#include <mpops/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most queue pairs a port can have. */
#define VTNET_MAX_QP 8

/* The driver's registered implementation (class mpops_port_drv, "vtnet").
 * Including this header links the driver into the program, so that it is
 * registered even where the program only uses port.h calls. */
MPOPS_OPS_IMPL_DECLARE(mpops_port_drv, vtnet)
MPOPS_OPS_IMPL_REQUIRE(mpops_port_drv, vtnet)

/** Port configuration (primary). Zero-initialise, set @c sz. */
struct vtnet_conf {
	size_t sz;		/**< sizeof(struct vtnet_conf) */
	const char *vhost_path;	/**< vhost-user socket */
	int server;		/**< 1: listen on vhost_path, the backend connects */
	int connect_timeout_ms;	/**< waiting for the backend; 0 = 10000 */
	uint16_t nb_qp;		/**< queue pairs; 0 = 1 */
	uint16_t ring_size;	/**< descriptors per ring (power of two); 0 = 256 */
	int mergeable;		/**< 1 (default when 0 is left: on), -1 off */
	int event_idx;		/**< 1 on (default), -1 off */
	int in_order;		/**< 1 on (default), -1 off */
	uint8_t mac[6];		/**< all zero: a locally administered one */
	uint32_t pool_size;	/**< packet buffers; 0 = 8192 */
	/**
	 * NULL or "user": virtio-user, the backend on vhost_path.
	 * "pci": the virtio-net PCI function at pci_addr, bound to
	 * uio_pci_generic or vfio-pci; its modern (virtio 1.x) interface when it
	 * has one, else the legacy one. "pci-modern", "pci-legacy": that
	 * interface or -ENODEV. PCI ports need a region created with
	 * MPOPS_REGION_F_PHYS on hugepages.
	 */
	const char *transport;
	const char *pci_addr;	/**< PCI transports: dddd:bb:dd.f (or bb:dd.f) */
};

/**
 * Create port @p name in region @p r (primary): allocate its shared state,
 * rings and pool, connect to the vhost-user backend (or wait for it in
 * server mode) or probe the PCI device, negotiate features (logged), and
 * configure @c nb_qp queue pairs. The port is not started. Everything else
 * goes through the generic port API (port.h): mpops_port_start/stop/close,
 * mpops_port_open, mpops_port_claim, mpops_rx_burst, mpops_tx_burst, link
 * and counters.
 * @return 0 and *out, or -EINVAL bad conf, -EEXIST name taken,
 *   -ENOENT/-ECONNREFUSED no backend at vhost_path, -ETIMEDOUT,
 *   -EBADMSG/-EPROTO the backend misbehaved (logged), -ENOTSUP more queue
 *   pairs than the backend offers, -ENOMEM, -EPERM not the primary,
 *   -ENODEV (PCI) no such device or interface.
 */
MPOPS_API int vtnet_port_create(struct mpops_region *r, const char *name,
				const struct vtnet_conf *conf,
				struct mpops_port **out);

/** Virtio facts of a vtnet port, for tools. */
struct vtnet_info {
	uint64_t device_features;	/**< offered (backend + emulated) */
	uint64_t features;		/**< negotiated */
	uint16_t max_qp, ring_size, hdr_size;
	uint16_t ops_id;		/**< transport ops ID (class vtpci) */
	char transport[2 * (MPOPS_OPS_NAME_MAX + 1)]; /**< "vtpci/user" */
	const void *ops_local;		/**< the transport's ops table in *this* process */
};

/**
 * Fill @p info. Any process.
 * @return 0, -EINVAL @p port is not a vtnet port (logged).
 */
MPOPS_API int vtnet_info_get(struct mpops_port *port, struct vtnet_info *info);

/** Ring indices of one virtqueue, for the dump tool. */
struct vtnet_vq_info {
	uint16_t index, size;
	uint16_t avail_idx;	/**< driver's next avail index */
	uint16_t used_idx;	/**< device's used index, as in the ring */
	uint16_t last_used;	/**< driver's next used entry */
	uint16_t num_free;
	uint16_t avail_flags, used_flags;
	uint16_t used_event, avail_event;
	uint32_t repaired;	/**< descriptors repairs gave back or finished (a
				     dead owner's half-done work; doc/virtio.md) */
};

/**
 * Ring state of virtqueue @p vq (2k rx, 2k+1 tx, 2*max_qp control).
 * @return 0, -ERANGE.
 */
MPOPS_API int vtnet_vq_info_get(struct mpops_port *port, uint16_t vq,
				struct vtnet_vq_info *info);

/** Names of the negotiated features into @p buf ("VERSION_1 MAC ..."). */
MPOPS_API void vtnet_features_str(uint64_t features, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_VTNET_H */
