/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-vhost, the data path: split virtqueues (virtio 1.x) as the device.
 *
 * The frontend's tx queues (odd indices) hold packets for us to read; its
 * rx queues (even) hold empty buffers for us to fill. We consume avail
 * entries strictly in ring order and return every buffer with its own used
 * entry in that same order, which is what VIRTIO_F_IN_ORDER asks of a device
 * (we never use its licence to skip used entries: frontends differ in how
 * well they handle that, and one entry per buffer is always correct).
 *
 * Nothing the frontend wrote is trusted: indices are range-checked, each
 * descriptor is read once into a local copy, buffers must lie inside one
 * region of the memory table (and may overlap: copies are memmoves), and a
 * chain longer than the ring is a loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "vhost_backend.h"

/* How many bursts one kick may serve before other rings get a turn. */
#define VB_KICK_BURSTS 256u

/* A position inside a scatter list. */
struct iov_cur {
	const struct iovec *iov;
	unsigned n, i;
	size_t off;
};

static inline void cur_init(struct iov_cur *c, const struct iovec *iov, unsigned n)
{
	c->iov = iov;
	c->n = n;
	c->i = 0;
	c->off = 0;
}

/*
 * Copy @len bytes from @src (a cursor or, with @flat, a flat buffer) into @dst.
 * memmove, not memcpy: the frontend chooses both buffers and may make them
 * overlap (an rx buffer inside the tx packet it loops back), and memcpy on
 * overlapping buffers is undefined. On buffers apart it costs the same.
 */
static size_t cur_copy(struct iov_cur *dst, struct iov_cur *src, const uint8_t *flat, size_t len)
{
	size_t done = 0;

	while (done < len && dst->i < dst->n) {
		size_t room = dst->iov[dst->i].iov_len - dst->off, chunk = len - done;
		const uint8_t *from;

		if (flat) {
			from = flat + done;
		} else {
			if (src->i >= src->n)
				break;
			from = (const uint8_t *)src->iov[src->i].iov_base + src->off;
			if (chunk > src->iov[src->i].iov_len - src->off)
				chunk = src->iov[src->i].iov_len - src->off;
		}
		if (chunk > room)
			chunk = room;
		memmove((uint8_t *)dst->iov[dst->i].iov_base + dst->off, from, chunk);
		done += chunk;
		dst->off += chunk;
		if (dst->off == dst->iov[dst->i].iov_len) {
			dst->i++;
			dst->off = 0;
		}
		if (!flat) {
			src->off += chunk;
			if (src->off == src->iov[src->i].iov_len) {
				src->i++;
				src->off = 0;
			}
		}
	}
	return done;
}

static void cur_skip(struct iov_cur *c, size_t len)
{
	while (len && c->i < c->n) {
		size_t chunk = c->iov[c->i].iov_len - c->off;

		if (chunk > len)
			chunk = len;
		len -= chunk;
		c->off += chunk;
		if (c->off == c->iov[c->i].iov_len) {
			c->i++;
			c->off = 0;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Ring indices and notifications                                      */
/* ------------------------------------------------------------------ */

static inline uint16_t vq_avail_idx(const struct vb_vq *vq)
{
	/* Acquire: the ring entries and descriptors it covers are written. */
	return __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
}

/* used_event: the driver's "call me when used->idx passes this". */
static inline uint16_t vq_used_event(const struct vb_vq *vq)
{
	return __atomic_load_n(&vq->avail->ring[vq->num], __ATOMIC_RELAXED);
}

/* avail_event: our "kick me when avail->idx passes this". */
static inline void vq_set_avail_event(struct vb_vq *vq, uint16_t v)
{
	uint16_t *ev = (uint16_t *)&vq->used->ring[vq->num];

	__atomic_store_n(ev, v, __ATOMIC_RELAXED);
}

/*
 * Ask for kicks (@on) or suppress them. With EVENT_IDX the frontend looks
 * only at avail_event; "one behind what we consumed" means never, as long
 * as we keep it current. Turning kicks on is followed by a full barrier so
 * that the caller's re-check of avail->idx cannot pass the store.
 */
static void vq_set_notify(struct vb_dev *dev, struct vb_vq *vq, bool on)
{
	if (vb_has_feature(dev, VIRTIO_RING_F_EVENT_IDX))
		vq_set_avail_event(vq, on ? vq->last_avail : (uint16_t)(vq->last_avail - 1));
	else
		__atomic_store_n(&vq->used->flags, on ? 0 : VRING_USED_F_NO_NOTIFY,
				 __ATOMIC_RELAXED);
	vq->notify_on = on;
	if (on)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Signal the call eventfd if the frontend wants to hear about this batch. */
static void vq_call(struct vb_dev *dev, struct vb_vq *vq)
{
	uint64_t one = 1;

	if (vq->callfd < 0)
		return;
	/* Our used->idx store must be visible before we read its wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vb_has_feature(dev, VIRTIO_RING_F_EVENT_IDX)) {
		uint16_t old = vq->signalled_used, new = vq->pub_used;
		bool valid = vq->signalled_valid;

		vq->signalled_used = new;
		vq->signalled_valid = true;
		if (valid && !vring_need_event(vq_used_event(vq), new, old))
			return;
	} else if (__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED) &
		   VRING_AVAIL_F_NO_INTERRUPT) {
		return;
	}
	if (write(vq->callfd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		dev->st.calls++;
}

/* Make the used entries written so far visible, then maybe call. */
static void vq_publish(struct vb_dev *dev, struct vb_vq *vq)
{
	if (vq->used_idx == vq->pub_used)
		return;
	__atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
	vq->pub_used = vq->used_idx;
	if (!vq->notify_on && vb_has_feature(dev, VIRTIO_RING_F_EVENT_IDX))
		vq_set_avail_event(vq, (uint16_t)(vq->last_avail - 1));
	vq_call(dev, vq);
}

static inline void vq_used_put(struct vb_vq *vq, uint16_t slot, uint32_t id, uint32_t len)
{
	struct vring_used_elem *e = &vq->used->ring[slot & (vq->num - 1)];

	e->id = id;
	e->len = len;
}

/*
 * New entries in the avail ring, or -EPROTO when the frontend moved its
 * index by more than a ring's worth: the ring is then stopped for good
 * (until the frontend sets it up again), since nothing in it can be trusted.
 */
static int vq_avail_count(struct vb_dev *dev, unsigned q)
{
	struct vb_vq *vq = &dev->vq[q];
	uint16_t avail = vq_avail_idx(vq), n = (uint16_t)(avail - vq->last_avail);

	if (n > vq->num) {
		vb_err(dev, "queue %u: avail index jumped from %u to %u (ring size %u), ring stopped",
		       q, vq->last_avail, avail, vq->num);
		vq->broken = true;
		vq->ready = false;
		return -EPROTO;
	}
	vq->avail_cache = avail;
	return n;
}

/* ------------------------------------------------------------------ */
/* Descriptor chains                                                   */
/* ------------------------------------------------------------------ */

/*
 * Walk the chain starting at descriptor @head, appending its buffers to
 * vq->iov from *niov on and adding its bytes to *len. @writable: the chain
 * must be device-writable (rx) or device-readable (tx).
 * @return 0, or -errno after logging why (-ERANGE index out of range, -ELOOP
 * chain longer than the ring, -EINVAL wrong direction or indirect, -EFAULT
 * buffer outside the memory table, -EOVERFLOW length overflow, -ENOBUFS too
 * many descriptors for one packet). The caller still owes the frontend a
 * used entry for @head.
 */
static int vq_walk(struct vb_dev *dev, unsigned q, uint16_t head, bool writable,
		   unsigned *niov, uint32_t *len)
{
	struct vb_vq *vq = &dev->vq[q];
	unsigned n = *niov, count = 0;
	uint32_t total = *len;
	uint16_t i = head;

	if (head >= vq->num) {
		vb_err(dev, "queue %u: head index %u out of range (ring size %u)", q, head, vq->num);
		return -ERANGE;
	}
	for (;;) {
		struct vring_desc d;
		void *p;

		/* One read: the frontend may rewrite it while we look. */
		memcpy(&d, &vq->desc[i], sizeof(d));
		if (++count > vq->num) {
			vb_err(dev, "queue %u: descriptor chain from %u longer than the ring (loop)",
			       q, head);
			return -ELOOP;
		}
		if (d.flags & VRING_DESC_F_INDIRECT) {
			vb_err(dev, "queue %u: descriptor %u is indirect (not negotiated)", q, i);
			return -EINVAL;
		}
		if (!!(d.flags & VRING_DESC_F_WRITE) != writable) {
			vb_err(dev, "queue %u: descriptor %u is device-%s in a %s queue", q, i,
			       writable ? "readable" : "writable", writable ? "rx" : "tx");
			return -EINVAL;
		}
		if (d.len) {
			if (d.addr + d.len < d.addr) {
				vb_err(dev, "queue %u: descriptor %u: address 0x%llx + length %u "
				       "overflows", q, i, (unsigned long long)d.addr, d.len);
				return -EOVERFLOW;
			}
			p = vb_gpa_to_host(dev, d.addr, d.len);
			if (!p) {
				vb_err(dev, "queue %u: descriptor %u: buffer 0x%llx+%u outside the "
				       "memory table", q, i, (unsigned long long)d.addr, d.len);
				return -EFAULT;
			}
			if (total + d.len < total) {
				vb_err(dev, "queue %u: chain from %u: total length overflows", q,
				       head);
				return -EOVERFLOW;
			}
			if (n == vq->iov_cap) {
				vb_err(dev, "queue %u: more than %u descriptors for one packet", q,
				       vq->iov_cap);
				return -ENOBUFS;
			}
			vq->iov[n].iov_base = p;
			vq->iov[n].iov_len = d.len;
			n++;
			total += d.len;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= vq->num) {
			vb_err(dev, "queue %u: descriptor %u: next index %u out of range (ring size %u)",
			       q, i, d.next, vq->num);
			return -ERANGE;
		}
		i = d.next;
	}
	*niov = n;
	*len = total;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Into the frontend's rx queues                                       */
/* ------------------------------------------------------------------ */

/*
 * Start pulling in the next buffer we will write: its cache lines are most
 * likely in the frontend's cache, and the copy would otherwise wait for them.
 */
static inline void vq_prefetch_next(struct vb_dev *dev, struct vb_vq *vq)
{
	uint16_t head;
	void *p;

	if (vq->last_avail == vq->avail_cache)
		return;
	head = vq->avail->ring[vq->last_avail & (vq->num - 1)];
	if (head >= vq->num)
		return;
	p = vb_gpa_to_host(dev, vq->desc[head].addr, 64);
	if (p)
		__builtin_prefetch(p, 1);
}

/*
 * Write one packet into rx ring @q: a virtio-net header, then @len bytes
 * from @src (or from the flat buffer @flat). One buffer per packet, or with
 * MRG_RXBUF as many as it needs (num_buffers says how many). The used
 * entries are written but not published: see vq_publish().
 * @return 0, -ENOSPC (not enough buffers: nothing consumed), -EMSGSIZE (the
 * next buffer is too small without MRG_RXBUF: nothing consumed), or another
 * -errno for a bad chain (the buffers taken are returned empty).
 */
static int vq_rx_put(struct vb_dev *dev, unsigned q, struct iov_cur *src, const uint8_t *flat,
		     uint32_t len)
{
	struct vb_vq *vq = &dev->vq[q];
	bool mrg = vb_has_feature(dev, VIRTIO_NET_F_MRG_RXBUF);
	/* 64 bits: the frontend's buffers may add up past 4 GiB (one chain cannot). */
	uint64_t need = (uint64_t)dev->hdr_len + len, cap = 0;
	uint32_t c = 0;
	uint16_t start = vq->last_avail, nbufs = 0;
	struct virtio_net_hdr_mrg_rxbuf hdr = { .hdr.gso_type = VIRTIO_NET_HDR_GSO_NONE };
	struct iov_cur dst;
	unsigned niov = 0;
	int rc;

	do {
		uint16_t head;

		c = 0;
		if (vq->last_avail == vq->avail_cache &&
		    (vq_avail_count(dev, q) <= 0 || vq->last_avail == vq->avail_cache)) {
			vq->last_avail = start;
			return -ENOSPC;
		}
		head = vq->avail->ring[vq->last_avail & (vq->num - 1)];
		rc = vq_walk(dev, q, head, true, &niov, &c);
		vq->last_avail++;
		/* Written now, published later; len is fixed up below. */
		vq_used_put(vq, (uint16_t)(vq->used_idx + nbufs), head, 0);
		nbufs++;
		if (rc < 0) {
			/* Give back what we took, empty; the packet is lost. */
			for (uint16_t b = 0; b < nbufs; b++)
				vq->used->ring[(uint16_t)(vq->used_idx + b) & (vq->num - 1)].len = 0;
			vq->used_idx += nbufs;
			return rc;
		}
		/* Filled whole, unless it is the last (fixed up below). */
		vq->used->ring[(uint16_t)(vq->used_idx + nbufs - 1) & (vq->num - 1)].len = c;
		cap += c;
	} while (mrg && cap < need);

	if (cap < need) {
		vq->last_avail = start;
		if (!dev->small_buf_logged) {
			vb_log("queue %u: rx buffer of %llu bytes too small for a %llu-byte packet "
			       "without mrg_rxbuf, dropping", q, (unsigned long long)cap,
			       (unsigned long long)need);
			dev->small_buf_logged = true;
		}
		return -EMSGSIZE;
	}

	hdr.num_buffers = nbufs;
	cur_init(&dst, vq->iov, niov);
	cur_copy(&dst, NULL, (const uint8_t *)&hdr, dev->hdr_len);
	cur_copy(&dst, src, flat, len);
	/* The last buffer holds what the others did not (never read back). */
	vq->used->ring[(uint16_t)(vq->used_idx + nbufs - 1) & (vq->num - 1)].len =
		(uint32_t)(c - (cap - need));
	vq->used_idx += nbufs;
	dev->st.sent_packets++;
	dev->st.sent_bytes += len;
	vq_prefetch_next(dev, vq);
	return 0;
}

static unsigned source_burst(struct vb_dev *dev, unsigned q)
{
	struct vb_vq *vq = &dev->vq[q];
	unsigned len = dev->opts->pkt_size, k;

	for (k = 0; k < VB_BURST && vq->ready; k++) {
		int rc;

		/* Queue and sequence number after the Ethernet header and tag. */
		if (len >= 32) {
			dev->frame[22] = (uint8_t)(q / 2);
			memcpy(dev->frame + 24, &dev->seq, sizeof(dev->seq));
		}
		rc = vq_rx_put(dev, q, NULL, dev->frame, len);
		if (rc == -ENOSPC)
			break;
		if (rc < 0) {
			dev->st.drops++;
			if (rc == -EMSGSIZE)
				break;
			continue;
		}
		dev->seq++;
	}
	if (vq->ready)
		vq_publish(dev, vq);
	return k;
}

int vb_source_init(struct vb_dev *dev)
{
	/* Locally administered MACs spelling "mpops" and "vhost". */
	static const uint8_t eth[14] = {
		0x02, 'm', 'p', 'o', 'p', 's',
		0x02, 'v', 'h', 'o', 's', 't',
		0x88, 0xb5,	/* local experimental ethertype */
	};
	static const char tag[8] = "MPOPSVH";
	unsigned len = dev->opts->pkt_size;

	dev->frame = calloc(1, len > 64 ? len : 64);
	if (!dev->frame)
		return -ENOMEM;
	memcpy(dev->frame, eth, sizeof(eth));
	memcpy(dev->frame + 14, tag, sizeof(tag));
	return 0;
}

/* ------------------------------------------------------------------ */
/* From the frontend's tx queues                                       */
/* ------------------------------------------------------------------ */

/*
 * The rx ring that loopback puts tx ring @q's packets into: the same pair,
 * or with --cross the next one, as a switch returns a packet on whichever
 * queue its thread polls.
 */
static unsigned loop_rx_queue(const struct vb_dev *dev, unsigned q)
{
	unsigned pair = q / 2;

	if (dev->opts->cross)
		pair = (pair + 1) % dev->opts->queue_pairs;
	return 2 * pair;
}

static unsigned tx_burst(struct vb_dev *dev, unsigned q)
{
	struct vb_vq *vq = &dev->vq[q];
	unsigned rxq = loop_rx_queue(dev, q);
	struct vb_vq *rx = &dev->vq[rxq];
	bool loop = dev->opts->mode == VB_MODE_LOOPBACK;
	int n = vq_avail_count(dev, q);

	if (n <= 0)
		return 0;
	if (n > (int)VB_BURST)
		n = VB_BURST;
	for (int k = 0; k < n; k++) {
		uint16_t head = vq->avail->ring[vq->last_avail & (vq->num - 1)];
		uint32_t len = 0;
		unsigned niov = 0;
		struct iov_cur src;

		/* A bad chain is counted as an error (logged there), not a drop. */
		int rc = vq_walk(dev, q, head, false, &niov, &len);

		if (!rc && len < dev->hdr_len) {
			vb_err(dev, "queue %u: packet of %u bytes shorter than the %u-byte "
			       "virtio-net header", q, len, dev->hdr_len);
			rc = -EBADMSG;
		}
		if (!rc) {
			dev->st.received_packets++;
			dev->st.received_bytes += len - dev->hdr_len;
			if (loop) {
				cur_init(&src, vq->iov, niov);
				cur_skip(&src, dev->hdr_len);
				if (!rx->ready ||
				    vq_rx_put(dev, rxq, &src, NULL, len - dev->hdr_len) < 0)
					dev->st.drops++;
			}
		}
		/* We wrote nothing into a tx buffer: used length 0. */
		vq_used_put(vq, vq->used_idx++, head, 0);
		vq->last_avail++;
	}
	if (loop && rx->ready)
		vq_publish(dev, rx);
	vq_publish(dev, vq);
	return (unsigned)n;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

/*
 * Each runs under vb_guarded(): the frontend may shrink its memory under
 * us, and then its rings stop, not this process. Inside, they call each
 * other only unguarded.
 */

static int vq_on_ready(struct vb_dev *dev, unsigned q)
{
	struct vb_vq *vq = &dev->vq[q];
	uint16_t used = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);

	/*
	 * Every buffer we consumed has its used entry, so the frontend's used
	 * index says where we stopped (it may differ from SET_VRING_BASE after
	 * a reconnection); follow it.
	 */
	if (used != vq->last_avail)
		vb_log("queue %u: used index %u, base %u: resuming at %u", q, used,
		       vq->last_avail, used);
	vq->last_avail = vq->avail_cache = vq->used_idx = vq->pub_used = used;
	vq->signalled_valid = false;
	vq_set_notify(dev, vq, dev->opts->kick_driven);
	vq->pending = dev->opts->kick_driven;
	vb_log("queue %u (%s %u) ready: size %u, %s", q, q & 1 ? "tx" : "rx", q / 2, vq->num,
	       vq->kickfd < 0 ? "no kick fd, polled" : dev->opts->kick_driven ?
	       "kick-driven" : "polled");
	return 0;
}

/* One burst. @return buffers processed. */
static int vq_service(struct vb_dev *dev, unsigned q)
{
	if (!dev->vq[q].ready)
		return 0;
	if (q & 1)
		return (int)tx_burst(dev, q);
	if (dev->opts->mode == VB_MODE_SOURCE)
		return (int)source_burst(dev, q);
	return 0;
}

static int vq_service_kicked(struct vb_dev *dev, unsigned q)
{
	struct vb_vq *vq = &dev->vq[q];
	unsigned bursts = 0;

	vq->pending = false;
	if (!vq->ready)
		return 0;
	/* No kicks while we drain; then ask again and look once more. */
	vq_set_notify(dev, vq, false);
	while (vq_service(dev, q) && ++bursts < VB_KICK_BURSTS)
		;
	if (!vq->ready)
		return 0;
	vq_set_notify(dev, vq, true);
	if (bursts == VB_KICK_BURSTS)
		vq->pending = true;
	else if (((q & 1) || dev->opts->mode == VB_MODE_SOURCE) && vq_avail_count(dev, q) > 0)
		vq->pending = true;	/* it came in before our re-enable */
	return 0;
}

void vb_vq_on_ready(struct vb_dev *dev, unsigned q)
{
	vb_guarded(dev, q, vq_on_ready);
}

unsigned vb_vq_service(struct vb_dev *dev, unsigned q)
{
	int n = vb_guarded(dev, q, vq_service);

	return n > 0 ? (unsigned)n : 0;
}

void vb_vq_service_kicked(struct vb_dev *dev, unsigned q)
{
	vb_guarded(dev, q, vq_service_kicked);
}
