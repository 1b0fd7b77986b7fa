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

#define VTNET_MAGIC 0x54454e54u /* "TNET" */
#define VTNET_VERSION 3
#define VTNET_MAX_VQ (2 * VTNET_MAX_QP + 1)
#define VTNET_CVQ(maxqp) (2 * (maxqp))

#define BIT64(n) (1ULL << (n))
#define ALIGN_POW2(x, a) (((x) + ((a) - 1)) & ~((size_t)(a) - 1))
/* Ring alignment of the legacy interface (and of our layout for all). */
#define VTNET_VRING_ALIGN 4096

/* What this driver can do; the rest is negotiated away. */
#define VTNET_DRIVER_FEATURES                                                 \
	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_NET_F_MAC) |                  \
	 BIT64(VIRTIO_NET_F_STATUS) | BIT64(VIRTIO_NET_F_MRG_RXBUF) |           \
	 BIT64(VIRTIO_RING_F_EVENT_IDX) | BIT64(VIRTIO_F_IN_ORDER) |            \
	 BIT64(VIRTIO_NET_F_MQ) | BIT64(VIRTIO_NET_F_CTRL_VQ) |                 \
	 BIT64(VIRTIO_F_ANY_LAYOUT))

/* Log-once bits of a virtqueue. */
enum {
	VQ_LOG_BAD_ID = 1u << 0,
	VQ_LOG_BAD_LEN = 1u << 1,
	VQ_LOG_BAD_NUMBUF = 1u << 2,
	VQ_LOG_NOBUF = 1u << 3,
};

/* One virtqueue. The ring indices are driver state, written only by the
 * queue's owner (the claiming process, or the primary for control); the
 * counters likewise, read by anyone. */
struct vtnet_vq_shared {
	uint16_t index;
	uint16_t size;
	uint16_t avail_idx;	/* next avail->idx to publish */
	uint16_t last_used;	/* next used entry to consume */
	uint16_t free_head;	/* descriptor free list, FIFO so that with */
	uint16_t free_tail;	/* IN_ORDER descriptors are used in ring order */
	uint16_t num_free;
	uint16_t dev_last_avail; /* emulated device (control queue): next avail */
	uint16_t inflight_head;	/* in-order tx: heads in submission order */
	uint16_t inflight_tail;
	uint32_t pad0;
	mpops_off_t desc_off;
	mpops_off_t avail_off;
	mpops_off_t used_off;
	mpops_off_t cookie_off;	/* uint64_t per descriptor: mpops_pkt offset, 0 = free */
	mpops_off_t inflight_off; /* uint16_t per descriptor */
	mpops_off_t scratch_off; /* control queue: command buffers */
	uint32_t pad2;
	_Atomic uint32_t logged;
	/* Counters of the control queue; a data queue counts in the port's
	 * shared counters (vtnet_vq.st points at the right ones). */
	struct mpops_port_queue_stats stats;
	uint64_t pad1;
};
_Static_assert(sizeof(struct vtnet_vq_shared) == 128, "vq layout");

/* The transports: how the primary drives the device (process-local code
 * chosen by this data field; the per-process ops come from ops_id). */
enum vtnet_transport {
	VTNET_TR_USER = 0,	/* virtio-user over vhost-user */
	VTNET_TR_PCI = 1,	/* a virtio-net PCI function (legacy or modern) */
};

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

/* What every process needs to find its own way to the device: data only. */
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

/* The driver's shared block of a port (mpops_port_drv_shared()): what is
 * virtio about it. Name, state, link, MAC, claims and counters are the
 * port layer's. */
struct vtnet_port_shared {
	uint32_t magic;
	uint32_t version;
	char name[MPOPS_NAME_MAX + 1];	/* the port's, for log lines */
	mpops_ops_id_t ops_id;		/* transport, class vtpci */
	uint16_t nb_qp;
	uint16_t max_qp;		/* the device's */
	uint16_t ring_size;
	uint16_t hdr_size;		/* virtio-net header: 12, or 10 (legacy, no mrg) */
	uint16_t mtu;
	uint64_t device_features;
	uint64_t features;		/* negotiated */
	int32_t server;
	uint32_t pad;
	char vhost_path[108];
	uint32_t transport;		/* enum vtnet_transport */
	uint32_t pad2;
	struct vtnet_pci_shared pci;
	mpops_off_t vq_off[VTNET_MAX_VQ];
#ifdef VTNET_ORIGIN_BUG
	/* Test builds only: the field report's layout, the primary's ops
	 * pointer in shared memory. Secondaries crash calling through it. */
	const void *raw_ops;
#endif
};

/* ---- per process ------------------------------------------------------- */

struct vtnet_port;

struct vtpci_access;

/* What only this process can hold for a port: its copies of the kick fds
 * (virtio-user), or its own access to the PCI device. */
struct vtnet_slot {
	int nfds;
	int kickfd[VTNET_MAX_VQ];
	struct vtpci_access *pci;
};

/* Process-local view of a virtqueue: its rings at this process's addresses. */
struct vtnet_vq {
	struct vtnet_vq_shared *sh;
	struct mpops_port_queue_stats *st;	/* its counters, in shared memory */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t *cookie;
	uint16_t *inflight;
	uint16_t mask;
};

/*
 * A queue pair's context in this process: what the port layer's fast-path
 * entry passes to vtnet_rx/vtnet_tx. Built by queue_setup at the port's
 * epoch slot_epoch, with the slot current at that epoch; the port layer
 * rebuilds it when the epoch moves, before any burst uses it again, so the
 * cached slot is never used past its epoch (vtnet_slot_get() checks it for
 * callers outside a burst).
 */
struct vtnet_qp {
	struct vtnet_port *p;
	uint16_t qp;
	uint32_t slot_epoch;		/* epoch the cache was built at */
	const struct vtpci_ops *ops;	/* resolved transport ops, cached */
	int (*notify)(struct vtnet_port *p, uint16_t vq); /* ops->notify_queue: one miss, not two */
	struct vtnet_slot *slot;
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
	struct vtnet_vq vq[VTNET_MAX_VQ];
	struct vtnet_qp qp[VTNET_MAX_QP];
	struct vtnet_dev *dev;		/* virtio-user, primary only */
	struct vtpci_dev *pci;		/* PCI, primary only */
};

/* ---- the transport ops class (the origin's vtpci_ops) ------------------- */

#define VTPCI_OPS(OP)                                                         \
	OP(int, get_features, (struct vtnet_port *, uint64_t * /* features */)) \
	OP(int, set_features, (struct vtnet_port *, uint64_t /* features */))  \
	OP(int, get_status, (struct vtnet_port *, uint8_t * /* status */))     \
	OP(int, set_status, (struct vtnet_port *, uint8_t /* status */))       \
	OP(int, read_config, (struct vtnet_port *, uint32_t /* off */,         \
			      void * /* buf */, uint32_t /* len */))           \
	OP(int, setup_queue, (struct vtnet_port *, uint16_t /* vq */))         \
	OP(int, del_queue, (struct vtnet_port *, uint16_t /* vq */))           \
	OP(int, notify_queue, (struct vtnet_port *, uint16_t /* vq */))        \
	OP(int, enable_qp, (struct vtnet_port *, uint16_t /* qp */, int /* on */))

MPOPS_OPS_CLASS_DECLARE(vtpci, VTPCI_OPS)

/* The transports this build has. */
extern const struct mpops_ops_impl mpops_impl_vtpci_user;
extern const struct mpops_ops_impl mpops_impl_vtpci_pci_legacy;
extern const struct mpops_ops_impl mpops_impl_vtpci_pci_modern;

/* What differs between transports in the primary's life cycle and in a
 * process's slot: process-local code, chosen by vtnet_port_shared.transport. */
struct vtnet_transport_ops {
	int (*create)(struct vtnet_port *p, const struct vtnet_conf *c); /* sets ops_id */
	void (*destroy)(struct vtnet_port *p);
	int (*start)(struct vtnet_port *p);
	void (*stop)(struct vtnet_port *p);
	int (*slot_attach)(struct vtnet_port *p, struct vtnet_slot *s);
	void (*slot_detach)(struct vtnet_slot *s);
	int (*fds_export)(struct vtnet_port *p, int *fds, int max);	/* creator */
};

/* virtqueue.c */
int vq_create(struct vtnet_port *p, uint16_t index, uint16_t size);
void vq_map(struct vtnet_port *p, uint16_t index);
void vq_reset(struct vtnet_port *p, uint16_t index);
int vq_rx_fill(struct vtnet_port *p, uint16_t index, struct mpops_pktpool *pool);
void vq_drain(struct vtnet_port *p, uint16_t index, struct mpops_pktpool *pool);
int vq_ctrl_send(struct vtnet_port *p, uint8_t cls, uint8_t cmd, const void *data,
		 uint16_t len);
int vq_ctrl_device(struct vtnet_port *p, int (*exec)(struct vtnet_port *, uint8_t, uint8_t,
						     const uint8_t *, uint32_t));

/* vtnet.c */
struct vtnet_slot *vtnet_slot_get(struct vtnet_port *p, uint16_t vq);
struct vtnet_port *vtnet_of(struct mpops_port *port);

/* rxtx.c: the burst functions the fast path calls, ctx a struct vtnet_qp */
int vtnet_rx(void *ctx, struct mpops_pkt **pkts, uint16_t n);
int vtnet_tx(void *ctx, struct mpops_pkt **pkts, uint16_t n);

/* pci.c */
int vtpci_dev_create(struct vtnet_port *p, const struct vtnet_conf *c);
void vtpci_dev_destroy(struct vtnet_port *p);
int vtpci_dev_start(struct vtnet_port *p);
void vtpci_dev_stop(struct vtnet_port *p);
int vtpci_slot_attach(struct vtnet_port *p, struct vtnet_slot *s);
void vtpci_slot_detach(struct vtnet_slot *s);
int vtpci_fds_export(struct vtnet_port *p, int *fds, int max);

/* virtio_user.c */
int vu_dev_create(struct vtnet_port *p, const struct vtnet_conf *c);
void vu_dev_destroy(struct vtnet_port *p);
int vu_dev_start(struct vtnet_port *p);
void vu_dev_stop(struct vtnet_port *p);
int vu_slot_attach(struct vtnet_port *p, struct vtnet_slot *s);
void vu_slot_detach(struct vtnet_slot *s);
int vu_fds_export(struct vtnet_port *p, int *fds, int max);
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

/* Take one descriptor from the free list; the caller checked num_free. */
static inline uint16_t vq_desc_get(struct vtnet_vq *q)
{
	uint16_t d = q->sh->free_head;

	q->sh->free_head = q->desc[d].next & q->mask;
	q->sh->num_free--;
	return d;
}

/* Return one descriptor to the tail of the free list (FIFO: with IN_ORDER
 * descriptors must be used in ring order). */
static inline void vq_desc_put(struct vtnet_vq *q, uint16_t d)
{
	if (q->sh->num_free == 0)
		q->sh->free_head = d;
	else if (q->desc[q->sh->free_tail].next != d)
		/* In order it already is d: leave the device's line clean. */
		q->desc[q->sh->free_tail].next = d;
	q->sh->free_tail = d;
	q->sh->num_free++;
}

/* The device's avail_event, just past the used ring's entries. */
static inline volatile uint16_t *vq_avail_event(const struct vtnet_vq *q)
{
	return (volatile uint16_t *)((char *)q->used + offsetof(struct vring_used, ring) +
				     sizeof(struct vring_used_elem) * q->sh->size);
}

/*
 * Does the device want a kick after the driver moved avail->idx from @old
 * to @now? Its suppression state is read after the new index is visible:
 * a full fence, as every virtio driver does here.
 */
static inline int vq_need_kick(const struct vtnet_port *p, const struct vtnet_vq *q,
			       uint16_t old, uint16_t now)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (p->sh->features & BIT64(VIRTIO_RING_F_EVENT_IDX)) {
		uint16_t ev = *vq_avail_event(q);

		return vring_need_event(ev, now, old);
	}
	return !(*(volatile uint16_t *)&q->used->flags & VRING_USED_F_NO_NOTIFY);
}

#endif
