/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file vtnet.h
 * vtnet: a virtio-net poll-mode driver on mpops, usable from several
 * processes.
 *
 * The primary creates a port in a region (its shared state, rings and a
 * packet pool live there), configures it, starts and stops it and reads its
 * link. Any process attached to the region (the primary or a secondary,
 * which may be a different executable) opens the port by name, claims
 * queue pairs exclusively and receives and transmits on them. Everything a
 * call needs that only one process can hold (kick eventfds, the
 * transport's ops) is resolved per process: the shared port stores only the
 * transport's ops ID and an object ID for the per-process slot.
 *
 * Transports: "user" (virtio-user over the vhost-user protocol, client or
 * server mode), and PCI: "pci-legacy" (the virtio 0.9.5 header in I/O
 * BAR0) or "pci-modern" (virtio 1.x capabilities), picked at probe from
 * what the device offers, through uio_pci_generic or vfio-pci. Each process
 * reaches the device itself (its own iopl or BAR mapping, or a copy of the
 * vfio device fd), so a secondary's notify goes through its own access. Features: VERSION_1, MAC, STATUS, MRG_RXBUF (and the
 * non-mergeable rx path), RING_F_EVENT_IDX, F_IN_ORDER, MQ with the control
 * virtqueue; whatever the peer does not offer is negotiated away.
 */
#ifndef MPOPS_VTNET_H
#define MPOPS_VTNET_H

#include <stdint.h>

#include <mpops/common.h>
#include <mpops/pkt.h>
#include <mpops/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most queue pairs a port can have. */
#define VTNET_MAX_QP 8

/** Per-process handle of a port. */
struct vtnet_port;

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
 * server mode), negotiate features (logged), and configure @c nb_qp queue
 * pairs. The port is not started.
 * @return 0 and *out, or -EINVAL bad conf, -EEXIST name taken,
 *   -ENOENT/-ECONNREFUSED no backend at vhost_path, -ETIMEDOUT,
 *   -EBADMSG/-EPROTO the backend misbehaved (logged), -ENOTSUP more queue
 *   pairs than the backend offers, -ENOMEM, -EPERM not the primary.
 */
MPOPS_API int vtnet_port_create(struct mpops_region *r, const char *name,
				const struct vtnet_conf *conf,
				struct vtnet_port **out);

/**
 * Start the port: post rx buffers, hand the rings and kick fds to the
 * backend, enable the queue pairs, link up. Primary.
 * @return 0, -ENOTCONN backend gone, -EBADMSG, -ENOBUFS, -EPERM.
 */
MPOPS_API int vtnet_port_start(struct vtnet_port *p);

/**
 * Stop the port: every burst returns 0 from now on (waiting for bursts in
 * progress in any process), rings are taken back from the backend
 * (GET_VRING_BASE) and their buffers freed. Primary.
 * @return 0, -EPERM.
 */
MPOPS_API int vtnet_port_stop(struct vtnet_port *p);

/**
 * Open existing port @p name in this process (any attached process).
 * @return 0 and *out, -ENOENT no such port, -EPROTO wrong version,
 *   -ENOENT its transport is not registered here (logged with the name).
 */
MPOPS_API int vtnet_port_open(struct mpops_region *r, const char *name,
			      struct vtnet_port **out);

/**
 * Close this process's handle: release its claims and per-process slot. In
 * the primary (for the handle vtnet_port_create returned) this also stops
 * the port and disconnects the backend; the shared state is freed.
 * @return 0 or -EINVAL.
 */
MPOPS_API int vtnet_port_close(struct vtnet_port *p);

/**
 * Claim queue pair @p qp for this process (exclusive, any process).
 * @return 0, -EBUSY claimed by a live process (the log names its pid),
 *   -ERANGE no such queue pair; a dead owner's claim is taken over.
 */
MPOPS_API int vtnet_queue_claim(struct vtnet_port *p, uint16_t qp);

/** Release a claim of this process. @return 0, -EPERM not ours, -ERANGE. */
MPOPS_API int vtnet_queue_release(struct vtnet_port *p, uint16_t qp);

/**
 * Receive up to @p n packets from queue pair @p qp (claimed by this
 * process; one thread). Each packet is a chain of mpops_pkt from the
 * port's pool, data after the virtio-net header; free them with
 * mpops_pkt_free(vtnet_pool(p), ...).
 * @return packets received (0 while stopped or link down), -EPERM not
 *   claimed here.
 */
MPOPS_API int vtnet_rx_burst(struct vtnet_port *p, uint16_t qp,
			     struct mpops_pkt **pkts, uint16_t n);

/**
 * Transmit up to @p n packets on queue pair @p qp (claimed here). The
 * driver owns the packets it took (freed when the device is done);
 * each needs 12 bytes of headroom for the virtio-net header.
 * @return packets taken (the rest are the caller's), -EPERM not claimed.
 */
MPOPS_API int vtnet_tx_burst(struct vtnet_port *p, uint16_t qp,
			     struct mpops_pkt **pkts, uint16_t n);

/** The port's packet pool, as this handle's process sees it. */
MPOPS_API struct mpops_pktpool *vtnet_pool(struct vtnet_port *p);

/** Link state. */
struct vtnet_link {
	int up;			/**< 1 up, 0 down */
	uint32_t changes;	/**< link transitions since create */
	uint32_t reconnects;	/**< backend (re)connections */
};

/** Read the link state (any process). @return 0 or -EINVAL. */
MPOPS_API int vtnet_link_get(struct vtnet_port *p, struct vtnet_link *l);

/** Per-queue counters, in shared memory (written by the queue's owner). */
struct vtnet_queue_stats {
	uint64_t packets;
	uint64_t bytes;
	uint64_t errors;	/**< malformed entries from the device */
	uint64_t drops;		/**< packets dropped (no buffers, bad entries) */
	uint64_t kicks;		/**< notifications sent to the device */
};

/**
 * Counters of queue pair @p qp (rx and tx sides). Any process.
 * @return 0, -ERANGE.
 */
MPOPS_API int vtnet_stats_get(struct vtnet_port *p, uint16_t qp,
			      struct vtnet_queue_stats *rx,
			      struct vtnet_queue_stats *tx);

/** Port facts, for tools. */
struct vtnet_info {
	char name[32];
	uint64_t device_features;	/**< offered (backend + emulated) */
	uint64_t features;		/**< negotiated */
	uint8_t mac[6];
	uint16_t nb_qp, max_qp, ring_size, hdr_size, mtu;
	uint16_t ops_id;		/**< transport ops ID (class vtpci) */
	char transport[32];		/**< "vtpci/user" */
	const void *ops_local;		/**< the transport's ops table in *this* process */
	int started;
	int32_t primary_pid;
	int32_t owner_pid[VTNET_MAX_QP];	/**< claim holders, 0 = free */
};

/** Fill @p info. Any process. @return 0 or -EINVAL. */
MPOPS_API int vtnet_info_get(struct vtnet_port *p, struct vtnet_info *info);

/** Ring indices of one virtqueue, for the dump tool. */
struct vtnet_vq_info {
	uint16_t index, size;
	uint16_t avail_idx;	/**< driver's next avail index */
	uint16_t used_idx;	/**< device's used index, as in the ring */
	uint16_t last_used;	/**< driver's next used entry */
	uint16_t num_free;
	uint16_t avail_flags, used_flags;
	uint16_t used_event, avail_event;
};

/**
 * Ring state of virtqueue @p vq (2k rx, 2k+1 tx, 2*max_qp control).
 * @return 0, -ERANGE.
 */
MPOPS_API int vtnet_vq_info_get(struct vtnet_port *p, uint16_t vq,
				struct vtnet_vq_info *info);

/** Names of the negotiated features into @p buf ("VERSION_1 MAC ..."). */
MPOPS_API void vtnet_features_str(uint64_t features, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_VTNET_H */
