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
	VQ_LOG_REPAIR = 1u << 5,
};

/* vq_extra.next of the last descriptor of a chain (never an index: a ring
 * has at most 32768 entries). */
#define VQ_END 0xffffu

/*
 * The driver's own copy of what it posted in a descriptor, as Linux's
 * desc_extra and DPDK's vq_descx: the device may rewrite the descriptor
 * table, so the driver never reads a length, a buffer or a link back from
 * it, only from here. In the region, outside the memory the device is
 * given (doc/virtio.md), written by the queue's owner only.
 */
struct vq_extra {
	mpops_off_t cookie;	/* a chain's head: its packet (mpops_pkt offset); 0 none */
	uint32_t len;		/* the length posted */
	uint16_t next;		/* in a chain: the next descriptor, VQ_END last; free:
				   the next free one */
	uint16_t seq;		/* a head: the avail index it was posted at (the
				   repair tells posted from half-done bursts by it) */
};
_Static_assert(sizeof(struct vq_extra) == 16, "vq_extra layout");

/*
 * One virtqueue's driver state, in shared memory. The indices are written
 * only by the queue's owner; the counters likewise, read by anyone.
 *
 * Consuming used entries is journaled so that a new owner can finish what a
 * dead one left half done (vq_repair): before it frees the descriptors of
 * entries [last_used, last_used + used_pending) the owner stores
 * used_pending, and it stores both back (last_used moved on, used_pending
 * 0) in one 32-bit store when they are free.
 */
struct vq_shared {
	uint16_t index;
	uint16_t size;
	uint16_t avail_idx;	/* next avail->idx to publish */
	uint16_t dev_last_avail; /* an emulated device (control queue): next avail */
	union {
		struct {
			uint16_t last_used;	/* next used entry to consume */
			uint16_t used_pending;	/* entries being consumed from there */
		};
		uint32_t used_word;	/* both, stored at once (little-endian) */
	};
	uint16_t free_head;	/* descriptor free list (vq_extra.next), FIFO so */
	uint16_t free_tail;	/* that with IN_ORDER descriptors are used in ring order */
	uint16_t num_free;
	uint16_t inflight_head;	/* in-order tx: heads in submission order */
	uint16_t inflight_tail;
	uint16_t pad0;
	mpops_off_t desc_off;	/* the ring, one block: descriptors, avail, used */
	mpops_off_t avail_off;
	mpops_off_t used_off;
	mpops_off_t extra_off;	/* struct vq_extra per descriptor */
	mpops_off_t inflight_off; /* uint16_t per descriptor */
	mpops_off_t scratch_off; /* control queue: command buffers, 256 bytes */
	uint32_t repaired;	/* descriptors a repair gave back or finished (vq_repair) */
	_Atomic uint32_t logged;
	/* Counters of a queue that counts for itself (the control queue); a
	 * data queue counts where its vq.st points. */
	struct mpops_port_queue_stats stats;
	uint64_t scratch_iova;	/* device address of the scratch area */
};
_Static_assert(sizeof(struct vq_shared) == 128, "vq layout");
_Static_assert(offsetof(struct vq_shared, used_word) % 4 == 0, "vq layout");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vq_shared.used_word packs last_used in its low half: little-endian only"
#endif

/* Process-local view of a virtqueue: its rings at this process's addresses. */
struct vq {
	struct vq_shared *sh;
	struct mpops_port_queue_stats *st;	/* its counters, in shared memory */
	void *base;			/* what the offsets are relative to, here */
	const char *name;		/* for log lines (the port's) */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vq_extra *x;
	uint16_t *inflight;
	uint16_t mask;
};

/* Bytes of the ring block of a @size-entry queue (legacy layout). */
size_t vq_ring_bytes(uint16_t size);

/*
 * Lay out a queue in @sh: @size entries (a power of two), its ring block at
 * @ring_off, the driver's copies at @extra_off (struct vq_extra per entry), the
 * in-order list at
 * @inflight_off (2 bytes per entry), an optional scratch area (0: none) and
 * its device address. Then map it here and reset it.
 */
void vq_init(struct vq *q, void *base, struct vq_shared *sh, uint16_t index, uint16_t size,
	     mpops_off_t ring_off, mpops_off_t extra_off, mpops_off_t inflight_off,
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
int vq_rx_fill(struct vq *q, struct mpops_pktpool *pool, uint16_t headroom, uint32_t mark);

/* Free every buffer on the queue into @pool and reset it (device stopped).
 * Heads a half-done burst took and never published are counted in
 * vq_shared.repaired. */
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

/*
 * What vq_repair() found and did. Each count is also added to
 * vq_shared.repaired.
 */
struct vq_repair_report {
	unsigned unposted;	/* heads a half-done burst took and never published */
	unsigned finished;	/* used entries a half-done consumption left: done now */
	unsigned shown;		/* avail entries published in shared state only: shown */
	unsigned kept;		/* heads the device still holds (in @keep) */
};

/*
 * Rebuild the driver's state of @q from what is really in flight, for a new
 * owner after the last one died at any point (a burst, an rx refill, a tx
 * cleanup): the published heads stay (their packets go into @keep, at most
 * q->sh->size), every other descriptor goes back on the free list, a
 * half-done consumption of used entries is finished, heads a half-done burst
 * took are forgotten (their packets are not in @keep: the caller gives them
 * back), an avail index published in shared state only is shown to the
 * device; with @in_order_tx the in-order list is rebuilt and last_used
 * derived from it. Reads nothing from the descriptor table; what it reads
 * from the used ring (ids of a half-done consumption) is bounded.
 * The queue's owner, while no burst runs on it.
 * @return 0, or -ENOMEM (nothing changed).
 */
int vq_repair(struct vq *q, int in_order_tx, struct mpops_pkt **keep,
	      struct vq_repair_report *rep);

/* Log @what once per queue and @bit, then only count. */
void vq_log_once(struct vq *q, uint32_t bit, const char *what, unsigned a, unsigned b);

/* Take one descriptor from the free list; the caller checked num_free. */
static inline uint16_t vq_desc_get(struct vq *q)
{
	uint16_t d = q->sh->free_head;

	q->sh->free_head = q->x[d].next & q->mask;
	q->sh->num_free--;
	return d;
}

/* Return one descriptor to the tail of the free list (FIFO: with IN_ORDER
 * descriptors must be used in ring order). */
static inline void vq_desc_put(struct vq *q, uint16_t d)
{
	if (q->sh->num_free == 0)
		q->sh->free_head = d;
	else
		q->x[q->sh->free_tail].next = d;
	q->sh->free_tail = d;
	q->sh->num_free++;
}

/* Record that used entries [@last_used, @last_used + @pending) are being
 * consumed (@pending 0: consumed up to @last_used), in one store. */
static inline void vq_used_commit(struct vq *q, uint16_t last_used, uint16_t pending)
{
	/* In program order with what comes before and after, so that a process
	 * killed anywhere leaves the journal and the state it describes in step
	 * (a compiler barrier only: a dead process's stores are all visible). */
	atomic_signal_fence(memory_order_seq_cst);
	__atomic_store_n(&q->sh->used_word, (uint32_t)last_used | (uint32_t)pending << 16,
			 __ATOMIC_RELAXED);
	atomic_signal_fence(memory_order_seq_cst);
}

/*
 * A head the driver posted and the device may hold: its copy names a
 * packet, and it was published (its avail index is behind @avail, the
 * published one; a half-done burst's heads are at or after it).
 */
static inline int vq_head_posted(const struct vq *q, uint16_t d, uint16_t avail)
{
	return q->x[d].cookie && (uint16_t)(q->x[d].seq - avail) >= q->sh->size;
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
	/* Every descriptor and driver copy of these entries first (a compiler
	 * barrier: see vq_used_commit). */
	atomic_signal_fence(memory_order_seq_cst);
	q->sh->avail_idx = idx;
	atomic_store_explicit((_Atomic uint16_t *)&q->avail->idx, idx, memory_order_release);
}

#endif
