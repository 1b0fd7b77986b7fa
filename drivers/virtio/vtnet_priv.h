/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vtnet internals: the shared layouts of a port and its virtqueues, the
 * per-process handles, and the transport ops class (the origin's
 * vtpci_ops), which shared memory refers to by ID only.
 */
#ifndef MPOPS_VTNET_PRIV_H
#define MPOPS_VTNET_PRIV_H

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdatomic.h>

#include <mpops/mpops.h>
#include <mpops/pkt.h>
#include <mpops/port_driver.h>
#include <mpops/vtnet.h>

#include "transport.h"
#include "virtqueue.h"

#define VTNET_MAGIC 0x54454e54u /* "TNET" */
#define VTNET_VERSION 4
#define VTNET_CVQ(maxqp) (2 * (maxqp))

#define BIT64(n) (1ULL << (n))

/* What this driver can do; the rest is negotiated away. */
#define VTNET_DRIVER_FEATURES                                                 \
	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_NET_F_MAC) |                  \
	 BIT64(VIRTIO_NET_F_STATUS) | BIT64(VIRTIO_NET_F_MRG_RXBUF) |           \
	 BIT64(VIRTIO_RING_F_EVENT_IDX) | BIT64(VIRTIO_F_IN_ORDER) |            \
	 BIT64(VIRTIO_NET_F_MQ) | BIT64(VIRTIO_NET_F_CTRL_VQ) |                 \
	 BIT64(VIRTIO_F_ANY_LAYOUT))

/* How processes reach a PCI device. */
enum vtpci_access_kind {
	VTPCI_UIO = 1,		/* uio_pci_generic: sysfs resource files, iopl */
	VTPCI_VFIO = 2,		/* vfio-pci: the device fd, handed to secondaries */
};

enum vtpci_cfg {
	VTPCI_CFG_COMMON = 0,
	VTPCI_CFG_NOTIFY,
	VTPCI_CFG_ISR,
	VTPCI_CFG_DEVICE,
	VTPCI_CFG_N,
};

/* The PCI transport's shared block: what every process needs to find its
 * own way to the device. Data only. */
struct vtnet_pci_shared {
	char addr[16];			/* dddd:bb:dd.f */
	uint32_t access;		/* enum vtpci_access_kind */
	uint32_t modern;		/* 1: virtio 1.x capabilities; 0: legacy I/O BAR0 */
	uint32_t io_port;		/* legacy, uio: BAR0's first port */
	uint32_t notify_mult;		/* modern: notify_off_multiplier */
	uint8_t cfg_bar[VTPCI_CFG_N];	/* modern: BAR of each structure */
	uint32_t cfg_off[VTPCI_CFG_N];	/* ... its offset in the BAR */
	uint32_t cfg_len[VTPCI_CFG_N];	/* ... and length */
	uint16_t notify_off[VTNET_MAX_VQ]; /* modern: queue_notify_off of each queue */
	uint16_t qsize_max[VTNET_MAX_VQ]; /* the device's queue sizes */
};

/* The virtio-user transport's shared block: for tools. */
struct vtnet_user_shared {
	char path[108];			/* the vhost-user socket */
	int32_t server;			/* 1: we listen, the backend connects */
};

/* The driver's shared block of a port (mpops_port_drv_shared()): what is
 * virtio about it. Name, state, link, MAC, claims and counters are the
 * port layer's. */
struct vtnet_port_shared {
	uint32_t magic;
	uint32_t version;
	char name[MPOPS_NAME_MAX + 1];	/* the port's, for log lines */
	mpops_ops_id_t tr_id;		/* the transport, class vtnet_tr */
	mpops_ops_id_t ops_id;		/* its per-process ops, class vtpci */
	uint16_t nb_qp;
	uint16_t max_qp;		/* the device's */
	uint16_t ring_size;
	uint16_t hdr_size;		/* virtio-net header: 12, or 10 (legacy, no mrg) */
	uint16_t mtu;
	uint16_t cvq_size;		/* control queue entries (the transport says) */
	uint64_t device_features;
	uint64_t tr_features;		/* features the transport requires */
	uint64_t features;		/* negotiated */
	mpops_off_t tr_off;		/* the transport's own shared block */
	mpops_off_t vq_off[VTNET_MAX_VQ];
};

/* ---- per process ------------------------------------------------------- */

struct vtnet_port;

/*
 * A queue pair's context in this process: what the port layer's fast-path
 * entry passes to vtnet_rx/vtnet_tx. Built by queue_setup with the slot
 * current at that moment; the port layer builds it again when the epoch
 * moves, before any burst uses it, so the cached slot is never used past
 * its epoch. Outside a burst, vtnet_notify() asks for the slot itself.
 */
struct vtnet_qp {
	struct vtnet_port *p;
	uint16_t qp;
	/* ops->notify_queue of this process's table, cached: one miss, not two */
	int (*notify)(struct vtnet_port *p, struct vtnet_slot *slot, uint16_t vq);
	struct vtnet_slot *slot;
	struct mpops_port_marks marks;	/* what the bursts mark their buffers (queue_setup) */
};

struct vtnet_dev;	/* the transports' private state, primary only */
struct vtpci_dev;

/* This process's handle of a vtnet port: the port layer's driver handle. */
struct vtnet_port {
	uint32_t magic;			/* VTNET_MAGIC: a vtnet port's handle */
	struct mpops_port *port;
	struct mpops_region *r;
	void *base;
	struct vtnet_port_shared *sh;
	int owner;			/* created by this process (primary) */
	struct mpops_pktpool *pool;	/* the port's, through this handle */
	const struct vtnet_tr_ops *tr;	/* the transport's life cycle, this process's */
	struct vq vq[VTNET_MAX_VQ];
	struct vtnet_qp qp[VTNET_MAX_QP];
	struct vtnet_dev *dev;		/* virtio-user, primary only */
	struct vtpci_dev *pci;		/* PCI, primary only */
};

/* vtnet.c */
struct vtnet_port *vtnet_of(struct mpops_port *port);
int vtnet_notify(struct vtnet_port *p, uint16_t vq);

/* rxtx.c: the burst functions the fast path calls, ctx a struct vtnet_qp */
int vtnet_rx(void *ctx, struct mpops_pkt **pkts, uint16_t n);
int vtnet_tx(void *ctx, struct mpops_pkt **pkts, uint16_t n);

/* virtio_user.c, for tests: the creator's kick eventfds */
void vu_kickfds(struct vtnet_port *p, int *fds, int *n);

/* Device address of a region offset (rings, control buffers; the fast path
 * uses mpops_pkt.buf_iova). The caller allocated the bytes so that they do
 * not span two pages. */
static inline uint64_t vq_iova(const struct vtnet_port *p, mpops_off_t off)
{
	uint64_t iova = 0;

	mpops_region_iova(p->r, off, 1, &iova);
	return iova;
}

/* Is event-idx notification suppression negotiated? */
static inline int vtnet_event_idx(const struct vtnet_port *p)
{
	return !!(p->sh->features & BIT64(VIRTIO_RING_F_EVENT_IDX));
}

#endif
