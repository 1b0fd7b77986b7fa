/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * net_mpops's fast path: DPDK's burst functions on an mpops port.
 *
 * The port's device (a vhost-user backend, a NIC) reaches only the mpops
 * region, not DPDK's memory, so packets are copied once each way: rx copies
 * each received mpops packet into an mbuf of the queue's mempool (and frees
 * the mpops packet), tx copies each mbuf into an mpops packet of the port's
 * pool (and frees the mbuf once the port took the packet). Only the packet
 * bytes are copied; mbuf metadata is set, not copied (data_len, pkt_len,
 * nb_segs, port).
 *
 * Per process: a queue pair's first burst in a process opens that
 * process's own handle of the mpops port and claims the queue pair
 * (pmd_lq_open); from then on a burst is the mpops burst through that
 * handle, whose function pointers, queue context, kick fd and ring
 * mappings mpops built in this process. One thread per queue pair at a
 * time, rx and tx together (the mpops claim is per queue pair; testpmd
 * polls rx queue i and tx queue i from one lcore).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <rte_branch_prediction.h>
#include <rte_memcpy.h>

#include "pmd.h"

#define PMD_BURST 32
/* After a queue pair could not be claimed, try again every this many bursts. */
#define RETRY_BURSTS 65536

/* ==== this process's queue handles ======================================== */

int pmd_lq_open(struct pmd_proc *pp, uint16_t qp)
{
	struct pmd_lq *lq = &pp->q[qp];
	struct mpops_port *h = NULL;
	int rc = 0;

	pthread_mutex_lock(&pp->mu);
	if (lq->h)
		goto out;
	if ((rc = mpops_port_open(pmd_region(), pp->sh->port, &h)) < 0)
		goto out;
	if ((rc = mpops_port_claim(h, qp)) < 0) {
		mpops_port_close(h);
		goto out;
	}
	lq->pool = mpops_port_pool(h);
	lq->base = mpops_region_base(pmd_region());
	__atomic_store_n(&lq->h, h, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&pp->mu);
	return rc;
}

void pmd_lq_close(struct pmd_proc *pp)
{
	for (uint16_t qp = 0; qp < MPOPS_PORT_MAX_QP; qp++) {
		if (pp->q[qp].h)
			mpops_port_close(pp->q[qp].h);	/* releases the claim */
		pp->q[qp] = (struct pmd_lq){ 0 };
	}
}

/* The first burst on @qp in this process, or one after a failed claim.
 * @return 1 ready, 0 not (logged once). */
static __rte_noinline int lq_ready(struct pmd_proc *pp, uint16_t qp)
{
	struct pmd_lq *lq = &pp->q[qp];
	int rc;

	if (lq->failed && (++lq->retry % RETRY_BURSTS) != 0)
		return 0;
	if ((rc = pmd_lq_open(pp, qp)) == 0) {
		lq->failed = 0;
		return 1;
	}
	if (!lq->failed)
		PMD_LOG(ERR, "%s: queue %u cannot be used in this process (pid %d): %s (see the mpops line above): give each DPDK process its own queues (testpmd: --num-procs, --proc-id)\n",
			pp->sh->port, qp, (int)getpid(), strerror(-rc));
	lq->failed = 1;
	return 0;
}

/* ==== rx: mpops packet -> mbuf ============================================ */

/* Copy a chain of mpops segments into @m and mbufs it chains from @mp.
 * @return 0, -ENOBUFS (the caller frees @m). */
static int rx_copy_chain(void *base, struct mpops_pkt *p, struct rte_mbuf *m,
			 struct rte_mempool *mp)
{
	struct rte_mbuf *last = m;

	m->pkt_len = p->pkt_len;
	for (struct mpops_pkt *s = p; s; s = mpops_pkt_next(base, s)) {
		const uint8_t *src = mpops_pkt_data(base, s);
		uint32_t left = s->data_len;

		while (left) {
			uint32_t room = rte_pktmbuf_tailroom(last), k;

			if (!room) {
				struct rte_mbuf *n = rte_pktmbuf_alloc(mp);

				if (!n)
					return -ENOBUFS;
				last->next = n;
				last = n;
				m->nb_segs++;
				continue;
			}
			k = left < room ? left : room;
			rte_memcpy(rte_pktmbuf_mtod_offset(last, void *, last->data_len), src, k);
			last->data_len = (uint16_t)(last->data_len + k);
			src += k;
			left -= k;
		}
	}
	return 0;
}

static uint16_t rx_copy(struct pmd_rxq *q, struct pmd_lq *lq, struct mpops_pkt **pk,
			uint16_t got, struct rte_mbuf **out)
{
	struct rte_mbuf *m[PMD_BURST];
	uint16_t k = 0;

	if (unlikely(rte_pktmbuf_alloc_bulk(q->mp, m, got) != 0)) {
		mpops_pkt_free_bulk(lq->pool, pk, got);
		q->nombuf += got;
		return 0;
	}
	for (uint16_t i = 0; i < got; i++) {
		struct mpops_pkt *p = pk[i];
		struct rte_mbuf *b = m[i];

		b->port = q->port_id;
		if (likely(!p->next && p->data_len <= rte_pktmbuf_tailroom(b))) {
			rte_memcpy(rte_pktmbuf_mtod(b, void *), mpops_pkt_data(lq->base, p),
				   p->data_len);
			b->data_len = p->data_len;
			b->pkt_len = p->data_len;
		} else if (rx_copy_chain(lq->base, p, b, q->mp) < 0) {
			rte_pktmbuf_free(b);
			q->nombuf++;
			continue;
		}
		out[k++] = b;
	}
	mpops_pkt_free_bulk(lq->pool, pk, got);
	return k;
}

uint16_t pmd_rx_burst(void *rxq, struct rte_mbuf **bufs, uint16_t n)
{
	struct pmd_rxq *q = rxq;
	struct pmd_proc *pp = pmd_procs[q->port_id];
	struct pmd_lq *lq = &pp->q[q->qp];
	struct mpops_pkt *pk[PMD_BURST];
	uint16_t done = 0;

	if (unlikely(!lq->h) && !lq_ready(pp, q->qp))
		return 0;
	while (done < n) {
		uint16_t want = (uint16_t)RTE_MIN(n - done, PMD_BURST);
		int got = mpops_rx_burst(lq->h, q->qp, pk, want);

		if (got <= 0)
			break;
		done = (uint16_t)(done + rx_copy(q, lq, pk, (uint16_t)got, bufs + done));
		if (got < want)
			break;
	}
	return done;
}

/* ==== tx: mbuf -> mpops packet ============================================ */

static inline void tx_copy(void *base, struct rte_mbuf *m, struct mpops_pkt *p)
{
	uint8_t *dst = mpops_pkt_data(base, p);

	if (likely(m->nb_segs == 1)) {
		rte_memcpy(dst, rte_pktmbuf_mtod(m, void *), m->data_len);
	} else {
		for (struct rte_mbuf *s = m; s; s = s->next) {
			rte_memcpy(dst, rte_pktmbuf_mtod(s, void *), s->data_len);
			dst += s->data_len;
		}
	}
	p->data_len = (uint16_t)m->pkt_len;
	p->pkt_len = m->pkt_len;
}

uint16_t pmd_tx_burst(void *txq, struct rte_mbuf **bufs, uint16_t n)
{
	struct pmd_txq *q = txq;
	struct pmd_proc *pp = pmd_procs[q->port_id];
	struct pmd_lq *lq = &pp->q[q->qp];
	struct mpops_pkt *pk[PMD_BURST];
	uint32_t room = pp->sh->max_pkt;
	uint16_t done = 0;

	if (unlikely(!lq->h) && !lq_ready(pp, q->qp))
		return 0;
	while (done < n) {
		uint16_t want = (uint16_t)RTE_MIN(n - done, PMD_BURST), k = 0;
		int sent;

		while (k < want && likely(bufs[done + k]->pkt_len <= room))
			k++;
		if (unlikely(k == 0)) {
			/* Larger than a packet buffer: dropped, counted (oerrors). */
			rte_pktmbuf_free(bufs[done++]);
			q->oversize++;
			continue;
		}
		if (unlikely(mpops_pkt_alloc_bulk(lq->pool, pk, k) < 0)) {
			/* The pool is on the rings: let the driver take back what
			 * the device is done with, then try once more. */
			mpops_tx_burst(lq->h, q->qp, pk, 0);
			if (mpops_pkt_alloc_bulk(lq->pool, pk, k) < 0)
				break;
		}
		for (uint16_t i = 0; i < k; i++)
			tx_copy(lq->base, bufs[done + i], pk[i]);
		sent = mpops_tx_burst(lq->h, q->qp, pk, k);
		if (sent < 0)
			sent = 0;
		if (sent < k)
			mpops_pkt_free_bulk(lq->pool, pk + sent, (unsigned)(k - sent));
		rte_pktmbuf_free_bulk(bufs + done, (unsigned)sent);
		done = (uint16_t)(done + sent);
		if (sent < k)
			break;
	}
	return done;
}
