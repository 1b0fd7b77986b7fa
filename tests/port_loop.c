/* SPDX-License-Identifier: BSD-3-Clause */
/* The "loop" test driver: see port_loop.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "port_loop.h"

#define LOOP_MAGIC 0x504f4f4cu /* "LOOP" */

/* This process's handle. */
struct loop_local {
	struct mpops_port *port;
	struct loop_shared *sh;
	void *base;
	int efd;			/* creator: the eventfd every slot copies */
	struct loop_queue {
		struct loop_local *l;
		struct loop_ring_shared *ring;
		struct mpops_port_queue_stats *rx, *tx;
		int kickfd;		/* from the slot, valid at the queue's epoch */
		struct mpops_port_marks marks;	/* from queue_setup */
	} q[MPOPS_PORT_MAX_QP];
};

/* What only this process holds: its copy of the eventfd. */
struct loop_slot {
	int kickfd;
};

static int loop_rx(void *ctx, struct mpops_pkt **pkts, uint16_t n)
{
	struct loop_queue *q = ctx;
	struct loop_ring_shared *r = q->ring;
	uint16_t nb = 0;

	while (nb < n && r->head != r->tail) {
		struct mpops_pkt *m = mpops_ptr(q->l->base, r->pkt[r->head % LOOP_RING]);

		r->head++;
		if (!m)
			continue;	/* no packet: tx never wrote that entry */
		/* Off the ring: this process's. */
		mpops_port_mark_own(m, q->marks.own);
		q->rx->packets++;
		q->rx->bytes += m->pkt_len;
		pkts[nb++] = m;
	}
	return nb;
}

void (*loop_tx_hook)(unsigned placed);
int loop_setup_fail;

static int loop_tx(void *ctx, struct mpops_pkt **pkts, uint16_t n)
{
	struct loop_queue *q = ctx;
	struct loop_ring_shared *r = q->ring;
	uint32_t room = LOOP_RING - (r->tail - r->head);
	uint16_t nb = 0, take = n < room ? n : (uint16_t)room;
	eventfd_t one = 1;

	/* What it takes is the ring's before the ring names any of it: the
	 * whole batch first, as a driver that hands its device a batch at once
	 * marks it. A death while placing them leaves marked packets on no
	 * ring, which the port layer gives back (the port tests kill here). */
	for (uint16_t i = 0; i < take; i++)
		mpops_port_mark_ring(pkts[i], q->marks.ring_tx);
	while (nb < take) {
		r->pkt[r->tail % LOOP_RING] = mpops_off(q->l->base, pkts[nb]);
		r->tail++;
		q->tx->packets++;
		q->tx->bytes += pkts[nb]->pkt_len;
		nb++;
		if (loop_tx_hook)
			loop_tx_hook(nb);
	}
	if (nb && write(q->kickfd, &one, sizeof(one)) == sizeof(one))
		q->tx->kicks++;
	return nb;
}

static int loop_open(struct mpops_port *port, void **priv)
{
	struct loop_local *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->port = port;
	l->sh = mpops_port_drv_shared(port);
	l->base = mpops_region_base(mpops_port_region(port));
	l->efd = -1;
	if (mpops_port_is_creator(port)) {
		l->sh->magic = LOOP_MAGIC;
		if ((l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
			free(l);
			return -errno;
		}
	} else if (l->sh->magic != LOOP_MAGIC) {
		mpops_log(MPOPS_LOG_ERR, "loop %s: not a loop port", mpops_port_name(port));
		free(l);
		return -EPROTO;
	}
	/* A read-only attach (a dump tool) looks and writes nothing. */
	if (mpops_region_is_writable(mpops_port_region(port)))
		atomic_fetch_add(&l->sh->opens, 1);
	*priv = l;
	return 0;
}

/* Free what sits on the rings (creator, stopped). */
static void rings_drain(struct loop_local *l)
{
	struct mpops_pktpool *pool = mpops_port_pool(l->port);

	for (int q = 0; q < MPOPS_PORT_MAX_QP; q++) {
		struct loop_ring_shared *r = &l->sh->ring[q];

		while (r->head != r->tail)
			mpops_pkt_free(pool, mpops_ptr(l->base, r->pkt[r->head++ % LOOP_RING]));
	}
}

static int loop_close(struct mpops_port *port, void *priv)
{
	struct loop_local *l = priv;

	if (mpops_region_is_writable(mpops_port_region(port)))
		atomic_fetch_add(&l->sh->closes, 1);
	if (mpops_port_is_creator(port))
		rings_drain(l);
	if (l->efd >= 0)
		close(l->efd);
	free(l);
	return 0;
}

static int loop_start(struct mpops_port *port)
{
	struct loop_local *l = mpops_port_priv(port);

	atomic_fetch_add(&l->sh->starts, 1);
	mpops_port_link_set(port, 1);
	return 0;
}

static int loop_stop(struct mpops_port *port)
{
	struct loop_local *l = mpops_port_priv(port);

	atomic_fetch_add(&l->sh->stops, 1);
	rings_drain(l);
	mpops_port_link_set(port, 0);
	return 0;
}

static int loop_slot_attach(struct mpops_port *port, void **slot)
{
	struct loop_local *l = mpops_port_priv(port);
	struct loop_slot *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	if ((rc = mpops_port_fds_get(port, &s->kickfd, 1)) != 1) {
		free(s);
		return rc < 0 ? rc : -EBADMSG;
	}
	atomic_fetch_add(&l->sh->slot_attaches, 1);
	*slot = s;
	return 0;
}

static int loop_slot_detach(struct mpops_port *port, void *slot)
{
	struct loop_local *l = mpops_port_priv(port);
	struct loop_slot *s = slot;

	atomic_fetch_add(&l->sh->slot_detaches, 1);
	close(s->kickfd);
	free(s);
	return 0;
}

static int loop_fds_export(struct mpops_port *port, int *fds, int max)
{
	struct loop_local *l = mpops_port_priv(port);

	atomic_fetch_add(&l->sh->exports, 1);
	if (max < 1)
		return -ENOSPC;
	fds[0] = l->efd;
	return 1;
}

struct mpops_port_marks loop_marks(struct mpops_port *port, uint16_t qp)
{
	struct loop_local *l = mpops_port_priv(port);

	return l->q[qp].marks;
}

static int loop_queue_setup(struct mpops_port *port, uint16_t qp, void *slot,
			    struct mpops_port_queue *mq)
{
	struct loop_local *l = mpops_port_priv(port);
	struct loop_queue *q = &l->q[qp];

	if (loop_setup_fail)
		return loop_setup_fail;
	atomic_fetch_add(&l->sh->queue_setups, 1);
	q->l = l;
	q->ring = &l->sh->ring[qp];
	q->rx = mpops_port_stats_ref(port, qp, 0);
	q->tx = mpops_port_stats_ref(port, qp, 1);
	q->kickfd = ((struct loop_slot *)slot)->kickfd;
	q->marks = mq->marks;
	mq->rx = loop_rx;
	mq->tx = loop_tx;
	mq->queue = q;
	return 0;
}

/* The ring holds offsets its owner wrote one at a time, each complete before
 * the tail moved: nothing to rebuild. What a burst cut short left between
 * the marks and the ring goes back to the pool. */
static int loop_queue_takeover(struct mpops_port *port, uint16_t qp, void *slot, int32_t dead)
{
	struct loop_local *l = mpops_port_priv(port);
	struct loop_ring_shared *r = &l->sh->ring[qp];
	struct mpops_pkt *keep[LOOP_RING];
	unsigned n = 0;
	int tx, rx;

	(void)slot;
	for (uint32_t i = r->head; i != r->tail && n < LOOP_RING; i++)
		keep[n++] = mpops_ptr(l->base, r->pkt[i % LOOP_RING]);
	if ((tx = mpops_port_queue_recover(port, qp, 1, keep, n)) < 0 ||
	    (rx = mpops_port_queue_recover(port, qp, 0, NULL, 0)) < 0)
		return tx < 0 ? tx : rx;
	l->sh->takeover_pid = dead;
	l->sh->takeover_recovered += (uint32_t)(tx + rx);
	atomic_fetch_add(&l->sh->takeovers, 1);
	return 0;
}

static const struct mpops_port_drv_ops loop_ops = {
	.open = loop_open,
	.close = loop_close,
	.start = loop_start,
	.stop = loop_stop,
	.slot_attach = loop_slot_attach,
	.slot_detach = loop_slot_detach,
	.fds_export = loop_fds_export,
	.queue_setup = loop_queue_setup,
	.queue_takeover = loop_queue_takeover,
};
MPOPS_OPS_IMPL(mpops_port_drv, loop, &loop_ops)

int loop_port_create(struct mpops_region *r, const char *name, uint16_t nb_qp,
		     struct mpops_port **out)
{
	struct mpops_port_conf c = { .sz = sizeof(c), .nb_qp = nb_qp, .pool_size = 1024,
				     .drv_size = sizeof(struct loop_shared) };
	int rc;

	if ((rc = mpops_port_create(r, name, &mpops_impl_mpops_port_drv_loop, &c, out)) < 0)
		return rc;
	if ((rc = mpops_port_publish(*out)) < 0)
		mpops_port_close(*out);
	return rc;
}

struct loop_shared *loop_shared(struct mpops_port *port)
{
	return mpops_port_drv_shared(port);
}

uint64_t loop_kicks(struct mpops_port *port)
{
	struct loop_local *l = mpops_port_priv(port);
	eventfd_t v = 0;

	return eventfd_read(l->efd, &v) == 0 ? v : 0;
}

int loop_traffic(struct mpops_port *port, uint16_t qp, unsigned n)
{
	struct mpops_pktpool *pool = mpops_port_pool(port);
	void *base = mpops_region_base(mpops_port_region(port));
	struct mpops_pkt *pk[32];
	unsigned sent = 0, got = 0;

	for (int round = 0; round < 1000 && got < n; round++) {
		unsigned want = n - sent < 32 ? n - sent : 32;
		int k;

		if (want && mpops_pkt_alloc_bulk(pool, pk, want) == 0) {
			for (unsigned i = 0; i < want; i++) {
				uint32_t *stamp = mpops_pkt_data(base, pk[i]);

				stamp[0] = (uint32_t)getpid();
				stamp[1] = sent + i;
				pk[i]->data_len = 64;
				pk[i]->pkt_len = 64;
			}
			k = mpops_tx_burst(port, qp, pk, (uint16_t)want);
			if (k < 0)
				return k;
			sent += (unsigned)k;
			if ((unsigned)k < want)
				mpops_pkt_free_bulk(pool, pk + k, want - (unsigned)k);
		}
		k = mpops_rx_burst(port, qp, pk, 32);
		if (k < 0)
			return k;
		for (int i = 0; i < k; i++) {
			uint32_t *stamp = mpops_pkt_data(base, pk[i]);

			/* In order, and ours: anything else is not counted. */
			if (stamp[0] == (uint32_t)getpid() && stamp[1] == got)
				got++;
			mpops_pkt_free(pool, pk[i]);
		}
		if (k == 0 && sent == 0)
			break;	/* stopped: nothing goes */
	}
	return (int)got;
}
