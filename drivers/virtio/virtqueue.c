/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueues (virtio 1.x) in shared memory: layout, reset, rx fill,
 * drain, and the control queue (driver side, and the device side that the
 * virtio-user transport emulates).
 *
 * Descriptor addresses are device addresses (mpops_region_iova): region
 * offsets for virtio-user (the memory table maps the region at 0), physical
 * addresses for a PCI device. Either is the same in every process, so any
 * process can post buffers wherever it mapped the region.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vtnet_priv.h"

/* ==== layout ============================================================ */

int vq_create(struct vtnet_port *p, uint16_t index, uint16_t size)
{
	struct mpops_region *r = p->r;
	struct vtnet_vq_shared *sh;
	size_t ring, align;
	char tag[32];
	mpops_off_t off;
	int rc;

	snprintf(tag, sizeof(tag), "vtnet.%.16s.vq%u", p->sh->name, index);
	if ((rc = mpops_alloc(r, sizeof(*sh), 64, tag, &off)) < 0)
		return rc;
	p->sh->vq_off[index] = off;
	sh = mpops_ptr(p->base, off);
	sh->index = index;
	sh->size = size;
	/* The ring in one block, laid out as a legacy device expects it (one
	 * address: descriptors, avail, then used at the next 4 KiB), aligned to
	 * its size rounded up to a power of two so that it never spans two
	 * pages: a device that reads physical addresses sees it in one piece. */
	ring = vring_size(size, VTNET_VRING_ALIGN);
	for (align = 4096; align < ring; align <<= 1)
		;
	if ((rc = mpops_alloc(r, ring, align, tag, &sh->desc_off)) < 0)
		return rc;
	sh->avail_off = sh->desc_off + sizeof(struct vring_desc) * size;
	sh->used_off = sh->desc_off +
		       ALIGN_POW2(sizeof(struct vring_desc) * size + 2u * (3 + size), VTNET_VRING_ALIGN);
	if ((rc = mpops_alloc(r, 8u * size, 64, tag, &sh->cookie_off)) < 0 ||
	    (rc = mpops_alloc(r, 2u * size, 64, tag, &sh->inflight_off)) < 0)
		return rc;
	/* Control queue: room for one command at a time. */
	if (index == VTNET_CVQ(p->sh->max_qp) &&
	    (rc = mpops_alloc(r, 256, 256, tag, &sh->scratch_off)) < 0)
		return rc;
	vq_map(p, index);
	vq_reset(p, index);
	return 0;
}

void vq_map(struct vtnet_port *p, uint16_t index)
{
	struct vtnet_vq *q = &p->vq[index];

	q->sh = mpops_ptr(p->base, p->sh->vq_off[index]);
	if (!q->sh)
		return;
	q->desc = mpops_ptr(p->base, q->sh->desc_off);
	q->avail = mpops_ptr(p->base, q->sh->avail_off);
	q->used = mpops_ptr(p->base, q->sh->used_off);
	q->cookie = mpops_ptr(p->base, q->sh->cookie_off);
	q->inflight = mpops_ptr(p->base, q->sh->inflight_off);
	q->mask = (uint16_t)(q->sh->size - 1);
	/* Data queues count in the port's counters, the control queue in its own. */
	q->st = index < 2 * p->sh->nb_qp ? mpops_port_stats_ref(p->port, index / 2, index & 1)
					 : &q->sh->stats;
}

void vq_reset(struct vtnet_port *p, uint16_t index)
{
	struct vtnet_vq *q = &p->vq[index];
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

/* ==== rx fill and drain ================================================= */

/* Buffers allocated per mpops_pkt_alloc_bulk() call in rx fill. */
#define RX_FILL_BATCH 64

int vq_rx_fill(struct vtnet_port *p, uint16_t index, struct mpops_pktpool *pool)
{
	struct vtnet_vq *q = &p->vq[index];
	uint16_t hdr = p->sh->hdr_size, avail = q->sh->avail_idx;
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

			q->desc[d].addr = m[i]->buf_iova + m[i]->data_off - hdr;
			q->desc[d].len = (uint32_t)(m[i]->buf_len - m[i]->data_off + hdr);
			q->desc[d].flags = VRING_DESC_F_WRITE;
			q->cookie[d] = mpops_off(p->base, m[i]);
			q->avail->ring[avail++ & q->mask] = d;
		}
		n += (int)got;
		if (got < want)
			break;
	}
	if (n) {
		q->sh->avail_idx = avail;
		atomic_store_explicit((_Atomic uint16_t *)&q->avail->idx, avail,
				      memory_order_release);
	}
	return n;
}

void vq_drain(struct vtnet_port *p, uint16_t index, struct mpops_pktpool *pool)
{
	struct vtnet_vq *q = &p->vq[index];

	if (!q->sh)
		return;
	for (uint16_t i = 0; i < q->sh->size; i++) {
		if (q->cookie[i]) {
			mpops_pkt_free(pool, mpops_ptr(p->base, q->cookie[i]));
			q->cookie[i] = 0;
		}
	}
	vq_reset(p, index);
}

/* ==== control queue, driver side ======================================== */

#define CTRL_DATA_OFF 16
#define CTRL_DATA_MAX 128
#define CTRL_ACK_OFF 200

int vq_ctrl_send(struct vtnet_port *p, uint8_t cls, uint8_t cmd, const void *data,
		 uint16_t len)
{
	uint16_t cvq = VTNET_CVQ(p->sh->max_qp);
	struct vtnet_vq *q = &p->vq[cvq];
	uint8_t *scratch;
	uint16_t d0, d1, d2, old;
	struct timespec ts = { 0, 1000000 };
	int rc, tries;

	if (!q->sh || len > CTRL_DATA_MAX || q->sh->num_free < 3)
		return -EINVAL;
	scratch = mpops_ptr(p->base, q->sh->scratch_off);
	scratch[0] = cls;
	scratch[1] = cmd;
	memcpy(scratch + CTRL_DATA_OFF, data, len);
	scratch[CTRL_ACK_OFF] = 0xff;

	d0 = vq_desc_get(q);
	d1 = vq_desc_get(q);
	d2 = vq_desc_get(q);
	q->desc[d0] = (struct vring_desc){ vq_iova(p, q->sh->scratch_off), 2, VRING_DESC_F_NEXT, d1 };
	q->desc[d1] = (struct vring_desc){ vq_iova(p, q->sh->scratch_off + CTRL_DATA_OFF), len,
					   VRING_DESC_F_NEXT, d2 };
	q->desc[d2] = (struct vring_desc){ vq_iova(p, q->sh->scratch_off + CTRL_ACK_OFF), 1,
					   VRING_DESC_F_WRITE, 0 };
	q->cookie[d0] = 1;
	old = q->sh->avail_idx;
	q->avail->ring[old & q->mask] = d0;
	q->sh->avail_idx++;
	atomic_store_explicit((_Atomic uint16_t *)&q->avail->idx, q->sh->avail_idx,
			      memory_order_release);
	if (vq_need_kick(p, q, old, q->sh->avail_idx)) {
		q->st->kicks++;
		rc = MPOPS_OPS(vtpci, p->sh->ops_id)->notify_queue(p, cvq);
		if (rc < 0)
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
			  p->sh->name, cls, cmd);
		return -ETIMEDOUT;
	}
	if (q->used->ring[q->sh->last_used & q->mask].id != d0) {
		mpops_log(MPOPS_LOG_ERR, "vtnet %s: control queue: device returned descriptor %u, expected %u",
			  p->sh->name, q->used->ring[q->sh->last_used & q->mask].id, d0);
		q->st->errors++;
	}
	q->sh->last_used++;
	q->cookie[d0] = 0;
	vq_desc_put(q, d0);
	vq_desc_put(q, d1);
	vq_desc_put(q, d2);
	if (scratch[CTRL_ACK_OFF] != VIRTIO_NET_OK) {
		mpops_log(MPOPS_LOG_ERR, "vtnet %s: the device rejected control command class %u cmd %u (ack %u)",
			  p->sh->name, cls, cmd, scratch[CTRL_ACK_OFF]);
		return -EIO;
	}
	q->st->packets++;
	return 0;
}

/* ==== control queue, device side (emulated by the transport) ============= */

/* Device address -> this process's pointer, if the whole range is ours. */
static void *dev_ptr(struct vtnet_port *p, uint64_t addr, uint32_t len)
{
	size_t size = mpops_region_size(p->r);

	if (addr == 0 || addr >= size || len > size - addr)
		return NULL;
	return (char *)p->base + addr;
}

int vq_ctrl_device(struct vtnet_port *p,
		   int (*exec)(struct vtnet_port *, uint8_t, uint8_t, const uint8_t *, uint32_t))
{
	struct vtnet_vq *q = &p->vq[VTNET_CVQ(p->sh->max_qp)];
	uint16_t avail = atomic_load_explicit((_Atomic uint16_t *)&q->avail->idx,
					      memory_order_acquire);
	uint16_t used = q->used->idx;
	int done = 0;

	while (q->sh->dev_last_avail != avail) {
		uint16_t head = q->avail->ring[q->sh->dev_last_avail & q->mask];
		uint8_t cmd[2 + CTRL_DATA_MAX], *ack = NULL;
		uint32_t got = 0, steps = 0;
		uint16_t d = head;
		int ok = head < q->sh->size;

		q->sh->dev_last_avail++;
		/* Gather the readable part, find the writable ack byte. */
		while (ok) {
			struct vring_desc *desc = &q->desc[d];
			uint8_t *buf = dev_ptr(p, desc->addr, desc->len);

			if (!buf || ++steps > q->sh->size) {
				ok = 0;
				break;
			}
			if (desc->flags & VRING_DESC_F_WRITE) {
				ack = desc->len ? buf : NULL;
			} else {
				uint32_t n = desc->len;

				if (n > sizeof(cmd) - got)
					n = (uint32_t)sizeof(cmd) - got;
				memcpy(cmd + got, buf, n);
				got += n;
			}
			if (!(desc->flags & VRING_DESC_F_NEXT))
				break;
			d = desc->next;
			if (d >= q->sh->size)
				ok = 0;
		}
		if (!ok || !ack || got < 2) {
			mpops_log(MPOPS_LOG_ERR, "vtnet %s: malformed control command (descriptor %u): dropped",
				  p->sh->name, head);
			q->st->errors++;
			if (head >= q->sh->size)
				continue;
		} else {
			*ack = exec(p, cmd[0], cmd[1], cmd + 2, got - 2) == 0 ? VIRTIO_NET_OK
									: VIRTIO_NET_ERR;
		}
		q->used->ring[used & q->mask].id = head;
		q->used->ring[used & q->mask].len = ack ? 1 : 0;
		used++;
		atomic_store_explicit((_Atomic uint16_t *)&q->used->idx, used, memory_order_release);
		done++;
	}
	return done;
}
