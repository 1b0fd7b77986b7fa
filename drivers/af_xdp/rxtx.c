/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fast path: rx and tx bursts on a claimed queue pair, in any process,
 * through this process's own mappings of the socket's rings and its own
 * copy of the socket's fd.
 *
 * Frames are the port pool's buffers: a descriptor's address is the
 * frame's offset in the UMEM plus the data offset. Every address and
 * length read from a ring is bounded by this process's copies of the
 * UMEM's size before use: the rings are memory every process that holds
 * the socket can write. A bad entry is counted (errors), logged once per
 * queue pair and process, and skipped.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "afxdp_priv.h"

#define AX_BATCH 64

static void log_once(struct afxdp_q *q, uint32_t bit, const char *what, uint64_t a)
{
	if (q->logged & bit)
		return;
	q->logged |= bit;
	ax_err("afxdp %s: queue pair %u: %s (0x%llx): skipped and counted in errors; something other than this driver wrote the ring",
	       mpops_port_name(q->p->port), q->qp, what, (unsigned long long)a);
}

/* Give the frames the kernel finished sending back to the pool. */
void afxdp_complete(struct afxdp_q *q)
{
	struct afxdp_port *p = q->p;
	struct mpops_pkt *done[AX_BATCH];
	uint32_t idx, n, k = 0;

	n = xsk_ring_cons__peek(&q->comp, AX_BATCH, &idx);
	if (!n)
		return;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t addr = *xsk_ring_cons__comp_addr(&q->comp, idx + i);
		struct mpops_pkt *m = afxdp_frame(p, addr);

		if (!m || !(__atomic_load_n(&m->flags, __ATOMIC_RELAXED) & MPOPS_PKT_F_ALLOCATED)) {
			q->txst->errors++;
			log_once(q, AXQ_LOG_COMP, "completion of an address that is no frame in flight",
				 addr);
			continue;
		}
		done[k++] = m;
	}
	xsk_ring_cons__release(&q->comp, n);
	mpops_pkt_free_bulk(p->pool, done, k);
}

/* Top the fill ring up from the pool, when at least @min entries are
 * free. @return frames posted. */
int afxdp_fill(struct afxdp_q *q, uint32_t min)
{
	struct afxdp_port *p = q->p;
	struct mpops_pkt *b[AX_BATCH];
	uint32_t idx = 0, n, posted = 0;

	for (;;) {
		n = xsk_prod_nb_free(&q->fill, AX_BATCH);
		if (n < min || n == 0)
			break;
		if (n > AX_BATCH)
			n = AX_BATCH;
		if (mpops_pkt_alloc_bulk_mark(p->pool, b, n, q->marks.ring_rx) < 0)
			break;
		xsk_ring_prod__reserve(&q->fill, n, &idx);
		for (uint32_t i = 0; i < n; i++)
			*xsk_ring_prod__fill_addr(&q->fill, idx + i) =
				b[i]->buf_off - p->umem_off;
		xsk_ring_prod__submit(&q->fill, n);
		posted += n;
	}
	return (int)posted;
}

/* The fill ring is topped up once this many entries are free. */
#define AX_FILL_MIN (AX_BATCH / 2)

/* A descriptor that fails a bound: counted, logged once, skipped; @m its
 * frame when the address is one (its length is bad: back to the pool). */
static __attribute__((noinline, cold)) void rx_bad(struct afxdp_q *q, uint64_t addr,
						   uint32_t len, struct mpops_pkt *m)
{
	q->rxst->errors++;
	if (!m) {
		log_once(q, AXQ_LOG_RX, "rx descriptor with an address that is no posted frame",
			 addr);
		return;
	}
	q->rxst->drops++;
	log_once(q, AXQ_LOG_RX, "rx descriptor longer than its frame", len);
	mpops_pkt_free(q->p->pool, m);
}

/*
 * A poll that found nothing: top the fill ring up if it has room for a
 * batch, and wake the kernel if it asks. rx_idle() and rx_take() are out
 * of line so that afxdp_rx() saves no register: it peeks and jumps to one.
 */
static __attribute__((noinline)) int rx_idle(struct afxdp_q *q)
{
	if (xsk_prod_nb_free(&q->fill, AX_FILL_MIN) >= AX_FILL_MIN)
		afxdp_fill(q, AX_FILL_MIN);
	if (xsk_ring_prod__needs_wakeup(&q->fill)) {
		recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		q->rxst->kicks++;
	}
	return 0;
}

/*
 * Take the @got descriptors peeked from @idx on. The port's bounds and the
 * ring's mask are read once into locals: the frames' metadata the loop
 * writes could alias them, so the compiler would load them again for every
 * packet otherwise. Same checks, in the same order, as afxdp_frame() and
 * the frame's length.
 */
static __attribute__((noinline)) int rx_take(struct afxdp_q *q, struct mpops_pkt **pkts,
					     uint32_t idx, uint32_t got)
{
	const struct afxdp_port *p = q->p;
	struct mpops_pkt *const meta = p->meta;
	const struct xdp_desc *const descs = q->rx.ring;
	const uint32_t mask = q->rx.mask, shift = p->frame_shift;
	const uint32_t fsize = p->frame_size, nb_frames = p->nb_frames;
	const uint16_t qp = q->qp;
	uint32_t nb = 0;
	uint64_t bytes = 0;

	for (uint32_t i = 0; i < got; i++) {
		const struct xdp_desc *d = &descs[(idx + i) & mask];
		uint64_t addr = d->addr, fi = addr >> shift;
		uint32_t len = d->len, off = (uint32_t)(addr & (fsize - 1));
		struct mpops_pkt *m;

		if (__builtin_expect(fi >= nb_frames || !(__atomic_load_n(&meta[fi].flags,
			__ATOMIC_RELAXED) & MPOPS_PKT_F_ALLOCATED), 0)) {
			rx_bad(q, addr, len, NULL);
			continue;
		}
		m = &meta[fi];
		if (__builtin_expect(len == 0 || off + len > fsize, 0)) {
			rx_bad(q, addr, len, m);
			continue;
		}
		m->data_off = (uint16_t)off;
		m->data_len = (uint16_t)len;
		m->pkt_len = len;
		m->nb_segs = 1;
		m->next = 0;
		m->queue = qp;
		bytes += len;
		pkts[nb++] = m;
	}
	xsk_ring_cons__release(&q->rx, got);
	/* Off the ring now (a new owner resumes after them): this process's. */
	for (uint32_t i = 0; i < nb; i++)
		mpops_port_mark_own(pkts[i], q->marks.own);
	q->rxst->packets += nb;
	q->rxst->bytes += bytes;
	/* The test inline: afxdp_fill() only when it would post. */
	if (xsk_prod_nb_free(&q->fill, AX_FILL_MIN) >= AX_FILL_MIN)
		afxdp_fill(q, AX_FILL_MIN);
	return (int)nb;
}

int afxdp_rx(void *ctx, struct mpops_pkt **pkts, uint16_t n)
{
	struct afxdp_q *q = ctx;
	uint32_t idx, got;

	got = xsk_ring_cons__peek(&q->rx, n, &idx);
	return got ? rx_take(q, pkts, idx, got) : rx_idle(q);
}

int afxdp_tx(void *ctx, struct mpops_pkt **pkts, uint16_t n)
{
	struct afxdp_q *q = ctx;
	struct afxdp_port *p = q->p;
	uint32_t idx = 0, room, k = 0, i;
	uint64_t bytes = 0;

	afxdp_complete(q);
	room = xsk_prod_nb_free(&q->tx, n);
	if (room < n)
		n = (uint16_t)room;
	if (n) {
		xsk_ring_prod__reserve(&q->tx, n, &idx);
		for (i = 0; i < n; i++) {
			struct mpops_pkt *m = pkts[i];
			uint64_t rel = m->buf_off - p->umem_off;
			struct xdp_desc *d;

			if ((rel >> p->frame_shift) >= p->nb_frames || m->nb_segs != 1 ||
			    (uint32_t)m->data_off + m->data_len > p->frame_size || !m->data_len) {
				q->txst->errors++;
				q->txst->drops++;
				log_once(q, AXQ_LOG_TX, "tx packet that is not one segment of a frame of the port's pool: dropped",
					 m->buf_off);
				mpops_pkt_free(p->pool, m);
				continue;
			}
			/* The ring's before the descriptor names it. */
			mpops_port_mark_ring(m, q->marks.ring_tx);
			d = xsk_ring_prod__tx_desc(&q->tx, idx + k++);
			d->addr = rel + m->data_off;
			d->len = m->data_len;
			d->options = 0;
			bytes += m->data_len;
		}
		/* reserve() took n entries; hand back what the drops left. */
		q->tx.cached_prod -= n - k;
		xsk_ring_prod__submit(&q->tx, k);
	}
	if (xsk_ring_prod__needs_wakeup(&q->tx)) {
		if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN &&
		    errno != EBUSY && errno != ENOBUFS && errno != ENETDOWN &&
		    !(q->logged & AXQ_LOG_KICK)) {
			q->logged |= AXQ_LOG_KICK;
			ax_err("afxdp %s: queue pair %u: tx kick failed: %s",
			       mpops_port_name(p->port), q->qp, strerror(errno));
		}
		q->txst->kicks++;
	}
	q->txst->packets += k;
	q->txst->bytes += bytes;
	return n;
}
