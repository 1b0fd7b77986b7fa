/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueues in shared memory, driver side: layout, reset, rx fill,
 * drain, and control commands. See virtqueue.h.
 *
 * Descriptor addresses are device addresses: the caller's (mpops_pkt.buf_iova
 * for buffers, scratch_iova for control commands). They are the same in
 * every process, so any process can post buffers wherever it mapped the
 * memory.
 */
#include <errno.h>
#include <linux/virtio_net.h>
#include <string.h>
#include <time.h>

#include "virtqueue.h"

#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((size_t)(a) - 1))

/* ==== layout ============================================================ */

size_t vq_ring_bytes(uint16_t size)
{
	return vring_size(size, VQ_VRING_ALIGN);
}

void vq_map(struct vq *q, void *base, struct vq_shared *sh, struct mpops_port_queue_stats *st,
	    const char *name)
{
	q->sh = sh;
	q->base = base;
	q->name = name;
	q->st = st ? st : &sh->stats;
	q->desc = mpops_ptr(base, sh->desc_off);
	q->avail = mpops_ptr(base, sh->avail_off);
	q->used = mpops_ptr(base, sh->used_off);
	q->cookie = mpops_ptr(base, sh->cookie_off);
	q->inflight = mpops_ptr(base, sh->inflight_off);
	q->mask = (uint16_t)(sh->size - 1);
}

void vq_init(struct vq *q, void *base, struct vq_shared *sh, uint16_t index, uint16_t size,
	     mpops_off_t ring_off, mpops_off_t cookie_off, mpops_off_t inflight_off,
	     mpops_off_t scratch_off, uint64_t scratch_iova, const char *name)
{
	memset(sh, 0, sizeof(*sh));
	sh->index = index;
	sh->size = size;
	/* Laid out as a legacy device expects it (one address: descriptors,
	 * avail, then used at the next 4 KiB). */
	sh->desc_off = ring_off;
	sh->avail_off = ring_off + sizeof(struct vring_desc) * size;
	sh->used_off = ring_off + ALIGN_UP(sizeof(struct vring_desc) * size + 2u * (3 + size),
					   VQ_VRING_ALIGN);
	sh->cookie_off = cookie_off;
	sh->inflight_off = inflight_off;
	sh->scratch_off = scratch_off;
	sh->scratch_iova = scratch_iova;
	vq_map(q, base, sh, NULL, name);
	vq_reset(q);
}

void vq_reset(struct vq *q)
{
	uint16_t n = q->sh->size;

	memset(q->desc, 0, sizeof(*q->desc) * n);
	memset(q->avail, 0, 6 + 2u * n);
	memset(q->used, 0, 6 + 8u * n);
	memset(q->cookie, 0, 8u * n);
	for (uint16_t i = 0; i < n; i++)
		q->desc[i].next = (uint16_t)((i + 1) & q->mask);
	q->sh->free_head = 0;
	q->sh->free_tail = (uint16_t)(n - 1);
	q->sh->num_free = n;
	q->sh->avail_idx = 0;
	q->sh->last_used = 0;
	q->sh->dev_last_avail = 0;
	q->sh->inflight_head = q->sh->inflight_tail = 0;
	/* A poll-mode driver wants no interrupts. */
	q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
}

void vq_log_once(struct vq *q, uint32_t bit, const char *what, unsigned a, unsigned b)
{
	if (atomic_fetch_or(&q->sh->logged, bit) & bit)
		return;
	mpops_log(MPOPS_LOG_ERR, "vtnet %s: queue %u: %s (%u, %u): entry dropped and counted; further ones are only counted",
		  q->name, q->sh->index, what, a, b);
}

/* ==== rx fill and drain ================================================= */

/* Buffers allocated per mpops_pkt_alloc_bulk() call in rx fill. */
#define RX_FILL_BATCH 64

int vq_rx_fill(struct vq *q, struct mpops_pktpool *pool, uint16_t headroom)
{
	uint16_t avail = q->sh->avail_idx;
	struct mpops_pkt *m[RX_FILL_BATCH];
	int n = 0;

	while (q->sh->num_free > 0) {
		unsigned want = q->sh->num_free < RX_FILL_BATCH ? q->sh->num_free : RX_FILL_BATCH;
		unsigned got = want;

		if (mpops_pkt_alloc_bulk(pool, m, want) < 0) {
			/* Fewer than that in the pool: what there is. */
			for (got = 0; got < want && (m[got] = mpops_pkt_alloc(pool)); got++)
				;
		}
		for (unsigned i = 0; i < got; i++) {
			/* The header goes in the headroom, right before the data. */
			uint16_t d = vq_desc_get(q);

			q->desc[d].addr = m[i]->buf_iova + m[i]->data_off - headroom;
			q->desc[d].len = (uint32_t)(m[i]->buf_len - m[i]->data_off + headroom);
			q->desc[d].flags = VRING_DESC_F_WRITE;
			q->cookie[d] = mpops_off(q->base, m[i]);
			q->avail->ring[avail++ & q->mask] = d;
		}
		n += (int)got;
		if (got < want)
			break;
	}
	if (n)
		vq_avail_publish(q, avail);
	return n;
}

void vq_drain(struct vq *q, struct mpops_pktpool *pool)
{
	for (uint16_t i = 0; i < q->sh->size; i++) {
		if (q->cookie[i]) {
			mpops_pkt_free(pool, mpops_ptr(q->base, q->cookie[i]));
			q->cookie[i] = 0;
		}
	}
	vq_reset(q);
}

/* ==== control commands, driver side ===================================== */

#define CTRL_DATA_OFF 16
#define CTRL_DATA_MAX 128
#define CTRL_ACK_OFF 200
/* A control command's cookie: not a packet (cookies of packets are offsets
 * of at least the region header's size). */
#define CTRL_COOKIE 1

int vq_ctrl_send(struct vq *q, int event_idx, uint8_t cls, uint8_t cmd, const void *data,
		 uint16_t len, int (*notify)(void *arg), void *arg)
{
	struct timespec ts = { 0, 1000000 };
	uint16_t d0, d1, d2, old;
	uint64_t iova = q->sh->scratch_iova;
	uint8_t *scratch;
	int rc, tries;

	if (len > CTRL_DATA_MAX || q->sh->num_free < 3 || !q->sh->scratch_off)
		return -EINVAL;
	scratch = mpops_ptr(q->base, q->sh->scratch_off);
	scratch[0] = cls;
	scratch[1] = cmd;
	memcpy(scratch + CTRL_DATA_OFF, data, len);
	scratch[CTRL_ACK_OFF] = 0xff;

	d0 = vq_desc_get(q);
	d1 = vq_desc_get(q);
	d2 = vq_desc_get(q);
	q->desc[d0] = (struct vring_desc){ iova, 2, VRING_DESC_F_NEXT, d1 };
	q->desc[d1] = (struct vring_desc){ iova + CTRL_DATA_OFF, len, VRING_DESC_F_NEXT, d2 };
	q->desc[d2] = (struct vring_desc){ iova + CTRL_ACK_OFF, 1, VRING_DESC_F_WRITE, 0 };
	q->cookie[d0] = CTRL_COOKIE;
	old = q->sh->avail_idx;
	q->avail->ring[old & q->mask] = d0;
	vq_avail_publish(q, (uint16_t)(old + 1));
	if (vq_need_kick(q, event_idx, old, q->sh->avail_idx)) {
		q->st->kicks++;
		if ((rc = notify(arg)) < 0)
			return rc;
	}
	for (tries = 0; tries < 2000; tries++) {
		if (atomic_load_explicit((_Atomic uint16_t *)&q->used->idx, memory_order_acquire) !=
		    q->sh->last_used)
			break;
		nanosleep(&ts, NULL);
	}
	if (tries == 2000) {
		mpops_log(MPOPS_LOG_ERR, "vtnet %s: the device did not complete control command %u/%u within 2 s",
			  q->name, cls, cmd);
		return -ETIMEDOUT;
	}
	if (q->used->ring[q->sh->last_used & q->mask].id != d0) {
		vq_log_once(q, VQ_LOG_CTRL, "control queue: device returned another descriptor",
			    q->used->ring[q->sh->last_used & q->mask].id, d0);
		q->st->errors++;
	}
	q->sh->last_used++;
	q->cookie[d0] = 0;
	vq_desc_put(q, d0);
	vq_desc_put(q, d1);
	vq_desc_put(q, d2);
	if (scratch[CTRL_ACK_OFF] != VIRTIO_NET_OK) {
		mpops_log(MPOPS_LOG_ERR, "vtnet %s: the device rejected control command class %u cmd %u (ack %u)",
			  q->name, cls, cmd, scratch[CTRL_ACK_OFF]);
		return -EIO;
	}
	q->st->packets++;
	return 0;
}
