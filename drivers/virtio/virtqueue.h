/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueues (virtio 1.x, 2.7) in shared memory, driver side. A
 * virtqueue knows nothing of ports or transports: it is a ring in memory
 * every process maps (at its own address: everything shared is an offset),
 * device addresses for what the device reads, and a notify callback the
 * caller passes where one is needed. Like Linux's vring_virtqueue, it is
 * tested alone (tests/test_virtqueue.c plays the device).
 *
 * Concurrency: one process thread at a time per virtqueue (its owner); the
 * device runs concurrently and may write anything it can write, so what
 * it returns is checked before use by the callers (rxtx.c) and here.
 */
#ifndef MPOPS_VTNET_VIRTQUEUE_H
#define MPOPS_VTNET_VIRTQUEUE_H

#include <linux/virtio_ring.h>
#include <stdatomic.h>
#include <stddef.h>

#include <mpops/pkt.h>
#include <mpops/port.h>

/* Ring alignment of the legacy interface (and of our layout for all). */
#define VQ_VRING_ALIGN 4096

/* Log-once bits of a virtqueue. */
enum {
	VQ_LOG_BAD_ID = 1u << 0,
	VQ_LOG_BAD_LEN = 1u << 1,
	VQ_LOG_BAD_NUMBUF = 1u << 2,
	VQ_LOG_NOBUF = 1u << 3,
	VQ_LOG_CTRL = 1u << 4,
};

/* One virtqueue's driver state, in shared memory. The indices are written
 * only by the queue's owner; the counters likewise, read by anyone. */
struct vq_shared {
	uint16_t index;
	uint16_t size;
	uint16_t avail_idx;	/* next avail->idx to publish */
	uint16_t last_used;	/* next used entry to consume */
	uint16_t free_head;	/* descriptor free list, FIFO so that with */
	uint16_t free_tail;	/* IN_ORDER descriptors are used in ring order */
	uint16_t num_free;
	uint16_t dev_last_avail; /* an emulated device (control queue): next avail */
	uint16_t inflight_head;	/* in-order tx: heads in submission order */
	uint16_t inflight_tail;
	uint32_t pad0;
	mpops_off_t desc_off;	/* the ring, one block: descriptors, avail, used */
	mpops_off_t avail_off;
	mpops_off_t used_off;
	mpops_off_t cookie_off;	/* uint64_t per descriptor: mpops_pkt offset, 0 = free */
	mpops_off_t inflight_off; /* uint16_t per descriptor */
	mpops_off_t scratch_off; /* control queue: command buffers, 256 bytes */
	uint32_t pad2;
	_Atomic uint32_t logged;
	/* Counters of a queue that counts for itself (the control queue); a
	 * data queue counts where its vq.st points. */
	struct mpops_port_queue_stats stats;
	uint64_t scratch_iova;	/* device address of the scratch area */
};
_Static_assert(sizeof(struct vq_shared) == 128, "vq layout");

/* Process-local view of a virtqueue: its rings at this process's addresses. */
struct vq {
	struct vq_shared *sh;
	struct mpops_port_queue_stats *st;	/* its counters, in shared memory */
	void *base;			/* what the offsets are relative to, here */
	const char *name;		/* for log lines (the port's) */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t *cookie;
	uint16_t *inflight;
	uint16_t mask;
};

/* Bytes of the ring block of a @size-entry queue (legacy layout). */
size_t vq_ring_bytes(uint16_t size);

/*
 * Lay out a queue in @sh: @size entries (a power of two), its ring block at
 * @ring_off, cookies at @cookie_off (8 bytes per entry), the in-order list at
 * @inflight_off (2 bytes per entry), an optional scratch area (0: none) and
 * its device address. Then map it here and reset it.
 */
void vq_init(struct vq *q, void *base, struct vq_shared *sh, uint16_t index, uint16_t size,
	     mpops_off_t ring_off, mpops_off_t cookie_off, mpops_off_t inflight_off,
	     mpops_off_t scratch_off, uint64_t scratch_iova, const char *name);

/* This process's view of a queue laid out by vq_init (any process). */
void vq_map(struct vq *q, void *base, struct vq_shared *sh, struct mpops_port_queue_stats *st,
	    const char *name);

/* Empty the rings and rebuild the free list (no buffer may be on them). */
void vq_reset(struct vq *q);

/*
 * Post free descriptors as device-writable buffers from @pool, each with
 * @headroom bytes in front of the data for the device's header.
 * @return buffers posted (0 when the pool is empty).
 */
int vq_rx_fill(struct vq *q, struct mpops_pktpool *pool, uint16_t headroom);

/* Free every buffer on the queue into @pool and reset it (device stopped). */
void vq_drain(struct vq *q, struct mpops_pktpool *pool);

/*
 * Send one control command (virtio-net 5.1.6.5: class, command, data;
 * the device writes a one-byte ack) and wait up to 2 s for the device.
 * @notify(@arg) tells the device, when it wants to be told.
 * @return 0, -EIO the device said no, -ETIMEDOUT, -EINVAL (too long, or no
 *   room), or the notify's error.
 */
int vq_ctrl_send(struct vq *q, int event_idx, uint8_t cls, uint8_t cmd, const void *data,
		 uint16_t len, int (*notify)(void *arg), void *arg);

/* Log @what once per queue and @bit, then only count. */
void vq_log_once(struct vq *q, uint32_t bit, const char *what, unsigned a, unsigned b);

/* Take one descriptor from the free list; the caller checked num_free. */
static inline uint16_t vq_desc_get(struct vq *q)
{
	uint16_t d = q->sh->free_head;

	q->sh->free_head = q->desc[d].next & q->mask;
	q->sh->num_free--;
	return d;
}

/* Return one descriptor to the tail of the free list (FIFO: with IN_ORDER
 * descriptors must be used in ring order). */
static inline void vq_desc_put(struct vq *q, uint16_t d)
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
static inline volatile uint16_t *vq_avail_event(const struct vq *q)
{
	return (volatile uint16_t *)((char *)q->used + offsetof(struct vring_used, ring) +
				     sizeof(struct vring_used_elem) * q->sh->size);
}

/*
 * Does the device want a kick after the driver moved avail->idx from @old
 * to @now? Its suppression state is read after the new index is visible:
 * a full fence, as every virtio driver does here.
 */
static inline int vq_need_kick(const struct vq *q, int event_idx, uint16_t old, uint16_t now)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (event_idx) {
		uint16_t ev = *vq_avail_event(q);

		return vring_need_event(ev, now, old);
	}
	return !(*(volatile uint16_t *)&q->used->flags & VRING_USED_F_NO_NOTIFY);
}

/* Publish avail->idx = @idx to the device. */
static inline void vq_avail_publish(struct vq *q, uint16_t idx)
{
	q->sh->avail_idx = idx;
	atomic_store_explicit((_Atomic uint16_t *)&q->avail->idx, idx, memory_order_release);
}

#endif
