/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fast path: rx_burst and tx_burst on a claimed queue pair, from any
 * process. Notifications go through the transport ops resolved in *this*
 * process (cached per queue pair), to this process's own kick fd.
 *
 * Everything the device wrote is checked before use: used-ring ids,
 * lengths and num_buffers, against the driver's own copy of what it posted
 * (struct vq_extra): nothing is read back from the descriptor table, which
 * the device may rewrite. A bad entry is counted (errors, drops), logged
 * once per queue, and skipped. Consuming used entries is journaled
 * (vq_used_commit) so that a new owner can finish what a dead one left.
 */
#include <errno.h>
#include <string.h>

#include "vtnet_priv.h"

/*
 * The port layer calls these only on a queue pair this process claimed,
 * while the port is started, with a context (struct vtnet_qp) built at the
 * current epoch: no checks here.
 */
static inline void kick(struct vtnet_port *p, const struct vtnet_qp *h, struct vq *q,
			uint16_t old)
{
	if (vq_need_kick(q, vtnet_event_idx(p), old, q->sh->avail_idx)) {
		q->st->kicks++;
		h->notify(p, h->slot, q->sh->index);
	}
}

/* ==== rx ================================================================ */

/*
 * Free used entry @i's descriptor and return its packet, if the entry names
 * a head in flight whose length it respects (the posted length is the
 * driver's copy: the device may rewrite the descriptor table); NULL if not
 * (counted, logged once). The entry is read once.
 */
static struct mpops_pkt *rx_take(struct vtnet_port *p, struct vq *q, uint16_t i, uint32_t *len)
{
	struct vring_used_elem e = q->used->ring[i & q->mask];
	struct mpops_pkt *m;
	uint32_t posted;

	if (e.id >= q->sh->size || q->x[e.id].cookie == 0) {
		q->st->errors++;
		vq_log_once(q, VQ_LOG_BAD_ID, "device returned a used id that is not in flight",
			    e.id, q->sh->size);
		return NULL;
	}
	m = mpops_ptr(p->base, q->x[e.id].cookie);
	posted = q->x[e.id].len;
	q->x[e.id].cookie = 0;
	vq_desc_put(q, (uint16_t)e.id);
	if (e.len > posted) {
		q->st->errors++;
		q->st->drops++;
		vq_log_once(q, VQ_LOG_BAD_LEN, "device wrote more than the buffer holds",
			    e.len, posted);
		mpops_pkt_free(p->pool, m);
		return NULL;
	}
	*len = e.len;
	return m;
}

/* Consume the entry at @i, whose head @id holds buffer @m: count and log it,
 * free it. */
static void rx_drop(struct vtnet_port *p, struct vq *q, struct mpops_pkt *m, uint16_t i,
		    uint32_t id, uint32_t bit, const char *what, unsigned a, unsigned b)
{
	vq_used_commit(q, i, 1);
	q->x[id].cookie = 0;
	vq_desc_put(q, (uint16_t)id);
	vq_used_commit(q, (uint16_t)(i + 1), 0);
	q->st->errors++;
	q->st->drops++;
	vq_log_once(q, bit, what, a, b);
	mpops_pkt_free(p->pool, m);
}

int vtnet_rx(void *ctx, struct mpops_pkt **pkts, uint16_t n)
{
	const struct vtnet_qp *h = ctx;
	struct vtnet_port *p = h->p;
	uint16_t qp = h->qp;
	struct vq *q = &p->vq[2 * qp];
	uint16_t hdr, used, old, last;
	uint64_t bytes = 0;
	const uint32_t own = h->marks.own;
	int mrg, nb = 0;

	hdr = p->sh->hdr_size;
	mrg = !!(p->sh->features & BIT64(VIRTIO_NET_F_MRG_RXBUF));
	last = q->sh->last_used;
	used = atomic_load_explicit((_Atomic uint16_t *)&q->used->idx, memory_order_acquire);
	if ((uint16_t)(used - last) > q->sh->size) {
		q->st->errors++;
		vq_log_once(q, VQ_LOG_BAD_ID, "device's used index jumped beyond the ring",
			    used, last);
		used = last;
	}
	while (nb < n && last != used) {
		struct vring_used_elem e = q->used->ring[last & q->mask];
		struct mpops_pkt *m, *prev;
		uint16_t nbuf = 1;
		uint32_t len, posted;

		/* The first buffer, checked once: ours, in flight, at least a
		 * header, no more than was posted. */
		if (e.id >= q->sh->size || q->x[e.id].cookie == 0) {
			vq_used_commit(q, ++last, 0);
			q->st->errors++;
			vq_log_once(q, VQ_LOG_BAD_ID, "device returned a used id that is not in flight",
				    e.id, q->sh->size);
			continue;
		}
		m = mpops_ptr(p->base, q->x[e.id].cookie);
		posted = q->x[e.id].len;
		if (e.len > posted || e.len < hdr) {
			rx_drop(p, q, m, last++, e.id, VQ_LOG_BAD_LEN,
				e.len < hdr ? "device wrote less than a header"
					    : "device wrote more than the buffer holds",
				e.len, e.len < hdr ? hdr : posted);
			continue;
		}
		if (mrg) {
			/* How many buffers the packet has: wait for all of them. */
			struct virtio_net_hdr_mrg_rxbuf *vh =
				(void *)((char *)mpops_pkt_data(p->base, m) - hdr);

			nbuf = vh->num_buffers;
			if (nbuf == 0 || nbuf > q->sh->size) {
				rx_drop(p, q, m, last++, e.id, VQ_LOG_BAD_NUMBUF,
					"device wrote an impossible num_buffers", nbuf, q->sh->size);
				continue;
			}
			if ((uint16_t)(used - last) < nbuf)
				break;
		}
		/* Journaled: a new owner finishes it if this process dies here. */
		vq_used_commit(q, last, nbuf);
		q->x[e.id].cookie = 0;
		vq_desc_put(q, (uint16_t)e.id);
		m->data_len = (uint16_t)(e.len - hdr);
		m->pkt_len = m->data_len;
		m->nb_segs = 1;
		m->next = 0;
		m->port = 0;
		m->queue = qp;
		prev = m;
		for (uint16_t k = 1; k < nbuf; k++) {
			struct mpops_pkt *s = rx_take(p, q, (uint16_t)(last + k), &len);

			if (!s) {
				q->st->drops++;
				mpops_pkt_free(p->pool, m);
				m = NULL;
				/* Skip what is left of this packet. */
				for (k++; k < nbuf; k++)
					if ((s = rx_take(p, q, (uint16_t)(last + k), &len)))
						mpops_pkt_free(p->pool, s);
				break;
			}
			/* Later buffers hold data from their first byte. */
			s->data_off = (uint16_t)(s->data_off - hdr);
			s->data_len = (uint16_t)len;
			s->next = 0;
			prev->next = mpops_off(p->base, s);
			prev = s;
			m->pkt_len += len;
			m->nb_segs++;
		}
		last = (uint16_t)(last + nbuf);
		vq_used_commit(q, last, 0);
		if (!m)
			continue;
		/* Off the ring now, journal closed: this process's. */
		mpops_port_mark_own(m, own);
		bytes += m->pkt_len;
		pkts[nb++] = m;
	}
	/* Counters once a burst: the compiler cannot keep shared memory in registers. */
	q->st->packets += (uint64_t)nb;
	q->st->bytes += bytes;
	/* Refill what was consumed, then tell the device if it wants to know. */
	old = q->sh->avail_idx;
	if (q->sh->num_free > 0 && vq_rx_fill(q, p->pool, hdr, h->marks.ring_rx) > 0)
		kick(p, h, q, old);
	else if (q->sh->num_free == q->sh->size)
		vq_log_once(q, VQ_LOG_NOBUF, "packet pool empty and no rx buffer posted",
			    q->sh->num_free, 0);
	return nb;
}

/* ==== tx ================================================================ */

/* Packets freed per mpops_pkt_free_bulk() call in tx cleanup. */
#define TX_FREE_BATCH 64

/* Return the descriptor chain at @head, followed in the driver's copies
 * (never in the descriptor table, which the device may rewrite); @return
 * its packet. */
static struct mpops_pkt *tx_take_chain(struct vtnet_port *p, struct vq *q, uint16_t head)
{
	struct mpops_pkt *m = mpops_ptr(p->base, q->x[head].cookie);
	uint16_t d = head;

	q->x[head].cookie = 0;
	for (uint16_t steps = 0; steps < q->sh->size; steps++) {
		uint16_t next = q->x[d].next;

		vq_desc_put(q, d);
		if (next == VQ_END)
			break;
		d = next & q->mask;
	}
	return m;
}

/* Queue @m for freeing; free the batch when it is full. */
static inline void tx_free_add(struct vtnet_port *p, struct mpops_pkt **batch, unsigned *n,
			       struct mpops_pkt *m)
{
	batch[(*n)++] = m;
	if (*n == TX_FREE_BATCH) {
		mpops_pkt_free_bulk(p->pool, batch, *n);
		*n = 0;
	}
}

/*
 * In order the device completes buffers in the order they were made
 * available, and may write one used entry for a batch (virtio 1.1, 2.7.9):
 * used->idx says how many are done, so count them off the in-flight list
 * and read no used entry (DPDK's in-order cleanup does the same), which
 * also leaves the device's used-ring lines alone. The count is checked.
 */
static void tx_cleanup_in_order(struct vtnet_port *p, struct vq *q, uint16_t used,
				struct mpops_pkt **batch, unsigned *nb)
{
	uint16_t done = (uint16_t)(used - q->sh->last_used), head = q->sh->inflight_head;
	uint16_t inflight = (uint16_t)(q->sh->inflight_tail - head);

	if (done > inflight) {
		q->st->errors++;
		vq_log_once(q, VQ_LOG_BAD_ID, "device's used index counts more buffers than are in flight",
			    done, inflight);
		done = inflight;
	}
	/* A new owner rebuilds the in-order list from what is in flight if
	 * this process dies here (vq_repair): no journal needed. */
	for (uint16_t i = 0; i < done; i++)
		tx_free_add(p, batch, nb, tx_take_chain(p, q, q->inflight[head++ & q->mask]));
	q->sh->inflight_head = head;
	vq_used_commit(q, used, 0);
}

static void tx_cleanup(struct vtnet_port *p, struct vq *q)
{
	uint16_t used = atomic_load_explicit((_Atomic uint16_t *)&q->used->idx,
					     memory_order_acquire);
	struct mpops_pkt *batch[TX_FREE_BATCH];
	unsigned nb = 0;

	if ((uint16_t)(used - q->sh->last_used) > q->sh->size) {
		q->st->errors++;
		vq_log_once(q, VQ_LOG_BAD_ID, "device's used index jumped beyond the ring",
			    used, q->sh->last_used);
		return;
	}
	if (p->sh->features & BIT64(VIRTIO_F_IN_ORDER)) {
		tx_cleanup_in_order(p, q, used, batch, &nb);
	} else if (q->sh->last_used != used) {
		uint16_t last = q->sh->last_used;

		/* Journaled: a new owner finishes it if this process dies here. */
		vq_used_commit(q, last, (uint16_t)(used - last));
		for (; last != used; last++) {
			uint32_t id = q->used->ring[last & q->mask].id;

			if (id >= q->sh->size || q->x[id].cookie == 0) {
				q->st->errors++;
				vq_log_once(q, VQ_LOG_BAD_ID,
					    "device returned a used id that is not in flight", id,
					    q->sh->size);
				continue;
			}
			tx_free_add(p, batch, &nb, tx_take_chain(p, q, (uint16_t)id));
		}
		vq_used_commit(q, used, 0);
	}
	if (nb)
		mpops_pkt_free_bulk(p->pool, batch, nb);
}

/*
 * Zero the virtio-net header in front of the data: 12 bytes (10 for a
 * legacy device without MRG_RXBUF) in two stores, and none when it is zero
 * already, as it is in a buffer sent before: no line dirtied for nothing.
 */
static inline void tx_hdr_zero(char *h, uint16_t hdr)
{
	static const char zero[12];
	uint64_t a;

	memcpy(&a, h, 8);
	if (hdr == 12) {
		uint32_t b;

		memcpy(&b, h + 8, 4);
		if (a | b)
			memcpy(h, zero, 12);
	} else if (hdr == 10) {
		uint16_t b;

		memcpy(&b, h + 8, 2);
		if (a | b)
			memcpy(h, zero, 10);
	} else {
		memset(h, 0, hdr);
	}
}

int vtnet_tx(void *ctx, struct mpops_pkt **pkts, uint16_t n)
{
	const struct vtnet_qp *h = ctx;
	struct vtnet_port *p = h->p;
	struct vq *q = &p->vq[2 * h->qp + 1];
	int in_order, nb = 0;
	uint16_t hdr, old, avail, inflight;
	const uint32_t ring = h->marks.ring_tx;
	uint64_t bytes = 0;

	hdr = p->sh->hdr_size;
	in_order = !!(p->sh->features & BIT64(VIRTIO_F_IN_ORDER));
	tx_cleanup(p, q);
	/* Ring state in locals: the stores below cannot be told apart from
	 * stores to it by the compiler. Written back once. */
	old = avail = q->sh->avail_idx;
	inflight = q->sh->inflight_tail;
	for (; nb < n; nb++) {
		struct mpops_pkt *m = pkts[nb], *s;
		uint16_t head, d, nseg = m->nb_segs ? m->nb_segs : 1;

		if (nseg > q->sh->num_free)
			break;
		if (m->data_off < hdr || nseg > q->sh->size) {
			/* No room for the header: the caller broke the contract. */
			q->st->errors++;
			q->st->drops++;
			mpops_pkt_free(p->pool, m);
			continue;
		}
		/* The ring's before a descriptor names it. */
		mpops_port_mark_ring(m, ring);
		tx_hdr_zero((char *)mpops_pkt_data(p->base, m) - hdr, hdr);
		head = d = vq_desc_get(q);
		q->desc[d].addr = m->buf_iova + m->data_off - hdr;
		q->desc[d].len = (uint32_t)m->data_len + hdr;
		q->desc[d].flags = 0;
		q->x[d].next = VQ_END;
		s = m;
		for (uint16_t k = 1; k < nseg && (s = mpops_pkt_next(p->base, s)); k++) {
			uint16_t nd = vq_desc_get(q);

			q->desc[d].flags = VRING_DESC_F_NEXT;
			q->desc[d].next = nd;
			q->x[d].next = nd;
			d = nd;
			q->desc[d].addr = s->buf_iova + s->data_off;
			q->desc[d].len = s->data_len;
			q->desc[d].flags = 0;
			q->x[d].next = VQ_END;
		}
		q->x[head].seq = avail;
		q->x[head].cookie = mpops_off(p->base, m);
		if (in_order)
			q->inflight[inflight++ & q->mask] = head;
		/* In order the entry is often what it was a lap ago: leave the
		 * line the device reads clean then. */
		if (q->avail->ring[avail & q->mask] != head)
			q->avail->ring[avail & q->mask] = head;
		avail++;
		bytes += m->pkt_len ? m->pkt_len : m->data_len;
	}
	if (old != avail) {
		/* Every copy written before the index that publishes them (a
		 * compiler barrier: see vq_used_commit). */
		atomic_signal_fence(memory_order_seq_cst);
		q->sh->avail_idx = avail;
		q->sh->inflight_tail = inflight;
		q->st->packets += (uint16_t)(avail - old);
		q->st->bytes += bytes;
		atomic_store_explicit((_Atomic uint16_t *)&q->avail->idx, avail,
				      memory_order_release);
		kick(p, h, q, old);
	}
	return nb;
}
