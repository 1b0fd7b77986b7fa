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
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "virtqueue.h"

#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((size_t)(a) - 1))

/* A control command's cookie: not a packet (cookies of packets are offsets
 * of at least the region header's size). */
#define CTRL_COOKIE 1

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
	q->x = mpops_ptr(base, sh->extra_off);
	q->inflight = mpops_ptr(base, sh->inflight_off);
	q->mask = (uint16_t)(sh->size - 1);
}

void vq_init(struct vq *q, void *base, struct vq_shared *sh, uint16_t index, uint16_t size,
	     mpops_off_t ring_off, mpops_off_t extra_off, mpops_off_t inflight_off,
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
	sh->extra_off = extra_off;
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
	for (uint16_t i = 0; i < n; i++)
		q->x[i] = (struct vq_extra){ .next = (uint16_t)((i + 1) & q->mask) };
	q->sh->free_head = 0;
	q->sh->free_tail = (uint16_t)(n - 1);
	q->sh->num_free = n;
	q->sh->avail_idx = 0;
	q->sh->used_word = 0;
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

int vq_rx_fill(struct vq *q, struct mpops_pktpool *pool, uint16_t headroom, uint32_t mark)
{
	uint16_t avail = q->sh->avail_idx;
	struct mpops_pkt *m[RX_FILL_BATCH];
	int n = 0;

	while (q->sh->num_free > 0) {
		unsigned want = q->sh->num_free < RX_FILL_BATCH ? q->sh->num_free : RX_FILL_BATCH;
		unsigned got = want;

		if (mpops_pkt_alloc_bulk_mark(pool, m, want, mark) < 0) {
			/* Fewer than that in the pool: what there is. */
			for (got = 0; got < want && mpops_pkt_alloc_bulk_mark(pool, m + got, 1, mark) == 0;
			     got++)
				;
		}
		for (unsigned i = 0; i < got; i++) {
			/* The header goes in the headroom, right before the data. */
			uint16_t d = vq_desc_get(q);
			uint32_t len = (uint32_t)(m[i]->buf_len - m[i]->data_off + headroom);

			q->desc[d].addr = m[i]->buf_iova + m[i]->data_off - headroom;
			q->desc[d].len = len;
			q->desc[d].flags = VRING_DESC_F_WRITE;
			q->x[d] = (struct vq_extra){ mpops_off(q->base, m[i]), len, VQ_END, avail };
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
		if (q->x[i].cookie) {
			if (!vq_head_posted(q, i, q->sh->avail_idx))
				q->sh->repaired++;
			if (q->x[i].cookie != CTRL_COOKIE)
				mpops_pkt_free(pool, mpops_ptr(q->base, q->x[i].cookie));
			q->x[i].cookie = 0;
		}
	}
	vq_reset(q);
}

/* ==== repair after a dead owner ========================================= */

/* Finish a consumption of used entries the last owner left half done:
 * the heads it had not freed yet are freed now. */
static void repair_pending(struct vq *q, uint16_t avail, struct vq_repair_report *rep)
{
	uint16_t last = q->sh->last_used, pending = q->sh->used_pending;

	if (pending > q->sh->size)
		pending = q->sh->size;	/* only our processes write it: never so */
	for (uint16_t i = 0; i < pending; i++) {
		uint32_t id = q->used->ring[(uint16_t)(last + i) & q->mask].id;

		if (id < q->sh->size && vq_head_posted(q, (uint16_t)id, avail)) {
			q->x[id].cookie = 0;
			rep->finished++;
		}
	}
	vq_used_commit(q, (uint16_t)(last + pending), 0);
}

/* Mark the descriptors of the chain at @head in @used (bounded: a chain
 * ends at VQ_END, a bad index, a descriptor seen already, or size steps). */
static void repair_chain(struct vq *q, uint16_t head, uint8_t *used)
{
	uint16_t d = head;

	for (uint16_t steps = 0; steps < q->sh->size && d < q->sh->size && !used[d]; steps++) {
		used[d] = 1;
		d = q->x[d].next;
	}
}

/* Free list: every descriptor not in @used, in ring order from free_head. */
static void repair_free_list(struct vq *q, const uint8_t *used)
{
	uint16_t size = q->sh->size, start = q->sh->free_head & q->mask, prev = 0, n = 0;

	for (uint16_t k = 0; k < size; k++) {
		uint16_t d = (uint16_t)(start + k) & q->mask;

		if (used[d])
			continue;
		if (n++)
			q->x[prev].next = d;
		else
			q->sh->free_head = d;
		prev = d;
	}
	if (n)
		q->sh->free_tail = prev;	/* (its next is never read) */
	q->sh->num_free = n;
}

int vq_repair(struct vq *q, int in_order_tx, struct mpops_pkt **keep,
	      struct vq_repair_report *rep)
{
	struct vq_shared *sh = q->sh;
	uint16_t size = sh->size, avail = sh->avail_idx, shown;
	uint16_t *by_age = NULL;
	uint8_t *used;

	memset(rep, 0, sizeof(*rep));
	if (!(used = calloc(size, 1)) || (in_order_tx && !(by_age = malloc(2u << 16)))) {
		free(used);
		return -ENOMEM;
	}
	/* Published in shared state, not yet to the device: everything of
	 * those entries was written before, so show them. */
	shown = (uint16_t)(avail - atomic_load_explicit((_Atomic uint16_t *)&q->avail->idx,
							 memory_order_relaxed));
	if (shown) {
		rep->shown = shown <= size ? shown : size;
		vq_avail_publish(q, avail);
	}
	if (sh->used_pending)
		repair_pending(q, avail, rep);
	if (by_age)
		memset(by_age, 0xff, 2u << 16);
	for (uint16_t d = 0; d < size; d++) {
		if (!q->x[d].cookie)
			continue;
		if (!vq_head_posted(q, d, avail)) {
			/* A burst or refill took it and died before publishing. */
			q->x[d].cookie = 0;
			rep->unposted++;
			continue;
		}
		repair_chain(q, d, used);
		if (q->x[d].cookie != CTRL_COOKIE)
			keep[rep->kept++] = mpops_ptr(q->base, q->x[d].cookie);
		if (by_age)
			by_age[(uint16_t)(avail - q->x[d].seq)] = d;
	}
	repair_free_list(q, used);
	if (by_age) {
		/* Oldest first: the device completes them in this order, and
		 * what it completed before them the last owner freed. */
		uint16_t n = 0;

		for (uint32_t a = 0xffff; a >= 1; a--)
			if (by_age[a] != VQ_END)
				q->inflight[n++ & q->mask] = by_age[a];
		sh->inflight_head = 0;
		sh->inflight_tail = n;
		vq_used_commit(q, (uint16_t)(avail - n), 0);
	}
	sh->repaired += rep->unposted + rep->finished + rep->shown;
	free(by_age);
	free(used);
	return 0;
}

/* ==== control commands, driver side ===================================== */

#define CTRL_DATA_OFF 16
#define CTRL_DATA_MAX 128
#define CTRL_ACK_OFF 200

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
	old = q->sh->avail_idx;
	q->x[d0] = (struct vq_extra){ CTRL_COOKIE, 2, d1, old };
	q->x[d1] = (struct vq_extra){ 0, len, d2, 0 };
	q->x[d2] = (struct vq_extra){ 0, 1, VQ_END, 0 };
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
	q->x[d0].cookie = 0;
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
