/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * afxdp: the port driver (ops of class mpops_port_drv), port creation and
 * introspection. The kernel side is in xsk.c, the fast path in rxtx.c.
 *
 * Who holds what:
 *  - shared (struct afxdp_shared): interface, queues, sizes, modes, where
 *    the frames are. Data only.
 *  - the creator's handle: the sockets, the XSKMAP, the program and its
 *    bpf link, its own view of the rings for start, stop and close, the
 *    link monitor thread.
 *  - every process's slot: its copies of the sockets' fds (from the port
 *    layer's fd request) and its own mappings of their rings.
 *
 * Frames on the fill ring stay with the kernel across a stop (it may
 * still take them; only closing the sockets ends that): stop marks them
 * kept (mpops_port_bufs_kept()), start tops the ring up, close frees them
 * once the program is gone.
 */
#include <errno.h>
#include <limits.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>


#include "afxdp_priv.h"

static struct afxdp_port *ax_of(struct mpops_port *port)
{
	return mpops_port_priv(port);
}

/* ==== ops =============================================================== */

static int ax_open(struct mpops_port *port, void **priv)
{
	struct afxdp_port *p = calloc(1, sizeof(*p));
	struct mpops_pktpool_layout l = { .sz = sizeof(l) };
	struct afxdp_shared *sh;

	if (!p)
		return -ENOMEM;
	p->port = port;
	p->sh = sh = mpops_port_drv_shared(port);
	p->base = mpops_region_base(mpops_port_region(port));
	p->pool = mpops_port_pool(port);
	p->creator = mpops_port_is_creator(port);
	p->map_fd = p->prog_fd = p->link_fd = p->mon_efd = -1;
	for (int i = 0; i < AFXDP_MAX_QP; i++)
		p->xsk_fd[i] = -1;
	if (!p->creator) {
		/* The creator fills its block after open; here it is complete.
		 * Checked once against the pool, which the library checked. */
		if (!sh || sh->magic != AFXDP_MAGIC || sh->version != AFXDP_VERSION) {
			ax_err("afxdp %s: shared port has version %u, this driver %u: rebuild both from the same sources",
			       mpops_port_name(port), sh ? sh->version : 0, AFXDP_VERSION);
			free(p);
			return -EPROTO;
		}
		size_t rsz = mpops_region_size(mpops_port_region(port));

		/* A read-only attach (tools) has no pool handle: bounds only. */
		if ((p->pool && (mpops_pktpool_layout(p->pool, &l) < 0 ||
				 sh->umem_off != l.data_off || sh->meta_off != l.meta_off ||
				 sh->nb_frames != l.count || sh->frame_size != l.stride ||
				 sh->frame_size != l.buf_size)) ||
		    sh->umem_off > rsz || sh->meta_off > rsz ||
		    (uint64_t)sh->nb_frames * sh->frame_size > rsz - sh->umem_off ||
		    (uint64_t)sh->nb_frames * sizeof(struct mpops_pkt) > rsz - sh->meta_off ||
		    sh->frame_shift >= 32 ||
		    (1u << sh->frame_shift) != sh->frame_size || sh->nb_qp == 0 ||
		    sh->nb_qp > AFXDP_MAX_QP || sh->ring_size == 0 ||
		    (sh->ring_size & (sh->ring_size - 1))) {
			ax_err("afxdp %s: the shared port does not match its pool: it is corrupt; restart the primary",
			       mpops_port_name(port));
			free(p);
			return -EPROTO;
		}
		p->frame_shift = sh->frame_shift;
		p->frame_size = sh->frame_size;
		p->nb_frames = sh->nb_frames;
		p->ring_size = sh->ring_size;
		p->nb_qp = sh->nb_qp;
		p->umem_off = sh->umem_off;
		p->umem = p->base + sh->umem_off;
		p->meta = (struct mpops_pkt *)(p->base + sh->meta_off);
	}
	*priv = p;
	return 0;
}

/* Give the pool what the rx ring holds (creator, queues out of the map).
 * @return frames given back. */
static uint32_t rx_drain(struct afxdp_port *p, struct afxdp_q *q)
{
	uint32_t idx, n, k, all = 0;

	while ((n = xsk_ring_cons__peek(&q->rx, 64, &idx)) > 0) {
		struct mpops_pkt *b[64];

		k = 0;
		for (uint32_t i = 0; i < n; i++) {
			struct mpops_pkt *m = afxdp_frame(p, xsk_ring_cons__rx_desc(&q->rx, idx + i)->addr);

			if (m && (m->flags & MPOPS_PKT_F_ALLOCATED))
				b[k++] = m;
		}
		xsk_ring_cons__release(&q->rx, n);
		mpops_pkt_free_bulk(p->pool, b, k);
		all += k;
	}
	return all;
}

/*
 * The frames on the fill ring (@tx 0) or the tx ring (@tx 1) that the kernel
 * has not taken: given back to the pool (@keep 0: close, the program is
 * gone and nobody sends), or marked as kept by the device (@keep 1: stop).
 */
static void ring_frames(struct afxdp_port *p, struct afxdp_q *q, int tx, int keep)
{
	struct xsk_ring_prod *r = tx ? &q->tx : &q->fill;
	uint32_t cons = __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
	uint32_t prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE), k = 0;
	struct mpops_pkt *b[64];

	for (uint32_t i = cons; i != prod && prod - i <= r->size; i++) {
		uint64_t a = tx ? xsk_ring_prod__tx_desc(r, i)->addr : *xsk_ring_prod__fill_addr(r, i);
		struct mpops_pkt *m = afxdp_frame(p, a);

		if (m && (m->flags & MPOPS_PKT_F_ALLOCATED))
			b[k++] = m;
		if (k == 64 || (i + 1 == prod && k)) {
			if (keep)
				mpops_port_bufs_kept(p->port, q->qp, tx, b, k);
			else
				mpops_pkt_free_bulk(p->pool, b, k);
			k = 0;
		}
	}
}

/* Give the pool every frame this port's rings hold (creator, close: the
 * program is gone, so the kernel takes no more fill entries). */
static void rings_empty(struct afxdp_port *p, struct afxdp_q *q)
{
	uint32_t cons;

	afxdp_rings_sync(q);
	rx_drain(p, q);
	do {
		cons = q->comp.cached_cons;
		afxdp_complete(q);
	} while (q->comp.cached_cons != cons);
	ring_frames(p, q, 0, 0);
	ring_frames(p, q, 1, 0);
}

static int ax_close(struct mpops_port *port, void *priv)
{
	struct afxdp_port *p = priv;

	(void)port;
	if (!p)
		return 0;
	if (p->creator) {
		afxdp_monitor_stop(p);
		if (p->link_fd >= 0)
			close(p->link_fd);
		if (p->prog_fd >= 0)
			close(p->prog_fd);
		if (p->map_fd >= 0)
			close(p->map_fd);
		if (p->cq[0].map[0])
			afxdp_settle(p);
		for (uint16_t qp = 0; qp < AFXDP_MAX_QP; qp++) {
			if (p->cq[qp].map[0])
				rings_empty(p, &p->cq[qp]);
			afxdp_rings_unmap(&p->cq[qp]);
			if (p->xsk_fd[qp] >= 0)
				close(p->xsk_fd[qp]);
		}
	}
	free(p);
	return 0;
}

static int ax_start(struct mpops_port *port)
{
	struct afxdp_port *p = ax_of(port);
	int rc;

	for (uint16_t qp = 0; qp < p->nb_qp; qp++) {
		struct afxdp_q *q = &p->cq[qp];

		afxdp_rings_sync(q);
		q->rxst = mpops_port_stats_ref(port, qp, 0);
		q->txst = mpops_port_stats_ref(port, qp, 1);
		mpops_port_fill_mark(port, qp, 0);
		afxdp_fill(q, 1);
		if ((rc = afxdp_queue_attach(p, qp, 1)) < 0)
			return rc;
	}
	if (afxdp_iface_up(p->sh->iface) != 1)
		ax_warn("afxdp %s: %s is down: the port starts, bursts return 0 until it is up",
			mpops_port_name(port), p->sh->iface);
	return 0;
}

/* After every burst left: no new frames for the sockets, what arrived
 * meanwhile dropped, what waits to be sent sent, and what stays on the
 * rings marked as the kernel's (it may still take fill entries). */
static int ax_stop(struct mpops_port *port)
{
	struct afxdp_port *p = ax_of(port);

	for (uint16_t qp = 0; qp < p->nb_qp; qp++)
		afxdp_queue_attach(p, qp, 0);
	afxdp_settle(p);
	for (uint16_t qp = 0; qp < p->nb_qp; qp++) {
		struct afxdp_q *q = &p->cq[qp];

		afxdp_rings_sync(q);
		q->rxst = mpops_port_stats_ref(port, qp, 0);
		q->txst = mpops_port_stats_ref(port, qp, 1);
		q->rxst->drops += rx_drain(p, q);
		for (int i = 0; i < 10 && *q->tx.consumer != *q->tx.producer; i++)
			if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno == ENETDOWN)
				break;
		afxdp_complete(q);
		/* Kept: the fill ring's frames, and tx frames not yet sent. */
		ring_frames(p, q, 0, 1);
		ring_frames(p, q, 1, 1);
	}
	return 0;
}

static int ax_slot_attach(struct mpops_port *port, void **out)
{
	struct afxdp_port *p = ax_of(port);
	struct afxdp_slot *s = calloc(1, sizeof(*s));
	int fds[AFXDP_MAX_QP], n, rc = 0;

	if (!s)
		return -ENOMEM;
	n = mpops_port_fds_get(port, fds, AFXDP_MAX_QP);
	if (n < 0) {
		free(s);
		return n;
	}
	if (n != p->nb_qp) {
		ax_err("afxdp %s: the primary handed over %d socket fds for %u queue pairs: restart both from the same build",
		       mpops_port_name(port), n, p->nb_qp);
		for (int i = 0; i < n; i++)
			close(fds[i]);
		free(s);
		return -EPROTO;
	}
	for (uint16_t qp = 0; qp < p->nb_qp; qp++) {
		if (rc == 0)
			rc = afxdp_rings_map(p, &s->q[qp], qp, fds[qp]);
		if (rc < 0)
			close(fds[qp]);
		else
			s->nb_qp = qp + 1;
	}
	if (rc < 0) {
		for (uint16_t qp = 0; qp < s->nb_qp; qp++) {
			afxdp_rings_unmap(&s->q[qp]);
			close(s->q[qp].fd);
		}
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int ax_slot_detach(struct mpops_port *port, void *slot)
{
	struct afxdp_slot *s = slot;

	(void)port;
	for (uint16_t qp = 0; qp < s->nb_qp; qp++) {
		afxdp_rings_unmap(&s->q[qp]);
		close(s->q[qp].fd);
	}
	free(s);
	return 0;
}

static int ax_fds_export(struct mpops_port *port, int *fds, int max)
{
	struct afxdp_port *p = ax_of(port);

	if (max < p->nb_qp)
		return -ENOSPC;
	for (uint16_t qp = 0; qp < p->nb_qp; qp++)
		fds[qp] = p->xsk_fd[qp];
	return p->nb_qp;
}

static int ax_queue_setup(struct mpops_port *port, uint16_t qp, void *slot,
			  struct mpops_port_queue *pq)
{
	struct afxdp_slot *s = slot;
	struct afxdp_q *q;

	if (qp >= s->nb_qp)
		return -ERANGE;
	q = &s->q[qp];
	/* A dead owner or the primary may have moved the rings since. */
	afxdp_rings_sync(q);
	q->rxst = mpops_port_stats_ref(port, qp, 0);
	q->txst = mpops_port_stats_ref(port, qp, 1);
	q->marks = pq->marks;
	pq->rx = afxdp_rx;
	pq->tx = afxdp_tx;
	pq->queue = q;
	return 0;
}

/*
 * A dead owner's queue pair. Its reserved but unsubmitted ring entries are
 * nothing to the kernel, and what it submitted is on the rings: taking the
 * ring positions from the rings (queue_setup does it too) is the repair.
 * What a burst cut short held between a ring and its marks (frames it
 * took off the rx or completion ring and had not marked its own yet, tx
 * frames marked as the ring's and not on it yet) cannot be told apart
 * here from frames the kernel holds unseen (taken from the fill ring, not
 * yet on the rx ring; sent, not yet completed): giving them back now could
 * hand out a frame the kernel is still writing. They come back at the next
 * stop, when the kernel holds none but the fill and tx rings'
 * (mpops_port_stop()'s recovery).
 */
static int ax_queue_takeover(struct mpops_port *port, uint16_t qp, void *slot, int32_t dead)
{
	struct afxdp_slot *s = slot;
	struct afxdp_q *q;

	if (qp >= s->nb_qp)
		return -ERANGE;
	q = &s->q[qp];
	afxdp_rings_sync(q);
	ax_info("afxdp %s: queue pair %u taken over from pid %d: rings resume at fill %u, rx %u, tx %u, completion %u; frames its last burst held come back at the next stop",
		mpops_port_name(port), qp, (int)dead, q->fill.cached_prod, q->rx.cached_cons,
		q->tx.cached_prod, q->comp.cached_cons);
	return 0;
}

static const struct mpops_port_drv_ops afxdp_drv = {
	.open = ax_open,
	.close = ax_close,
	.start = ax_start,
	.stop = ax_stop,
	.slot_attach = ax_slot_attach,
	.slot_detach = ax_slot_detach,
	.fds_export = ax_fds_export,
	.queue_setup = ax_queue_setup,
	.queue_takeover = ax_queue_takeover,
};
MPOPS_OPS_IMPL(mpops_port_drv, afxdp, &afxdp_drv)

/* ==== create ============================================================ */

static int conf_check(const struct afxdp_conf *c, const char *name)
{
	if (!c || c->sz < offsetof(struct afxdp_conf, mac) + sizeof(c->mac)) {
		ax_err("afxdp %s: struct afxdp_conf needs .sz = sizeof(struct afxdp_conf)",
		       name ? name : "?");
		return -EINVAL;
	}
	if (!c->iface || !*c->iface || strlen(c->iface) >= IF_NAMESIZE) {
		ax_err("afxdp %s: afxdp_conf.iface must name an interface (1 to %d characters)",
		       name, IF_NAMESIZE - 1);
		return -EINVAL;
	}
	if (c->nb_qp > AFXDP_MAX_QP) {
		ax_err("afxdp %s: %u queue pairs asked, a port has 1 to %d", name, c->nb_qp,
		       AFXDP_MAX_QP);
		return -EINVAL;
	}
	if (c->frame_size && c->frame_size != 2048 && c->frame_size != 4096) {
		ax_err("afxdp %s: frame_size %u: use 2048 or 4096", name, c->frame_size);
		return -EINVAL;
	}
	if (c->ring_size && (c->ring_size < 64 || c->ring_size > 8192 ||
			     (c->ring_size & (c->ring_size - 1)))) {
		ax_err("afxdp %s: ring_size %u: use a power of two from 64 to 8192", name,
		       c->ring_size);
		return -EINVAL;
	}
	if (c->xdp_mode < AFXDP_XDP_AUTO || c->xdp_mode > AFXDP_XDP_GENERIC ||
	    c->zero_copy < AFXDP_ZC_AUTO || c->zero_copy > AFXDP_ZC_OFF || c->busy_poll < 0) {
		ax_err("afxdp %s: xdp_mode, zero_copy or busy_poll out of range", name);
		return -EINVAL;
	}
	return 0;
}

/* Queues, MTU and MAC of the interface. @return 0 or -errno (logged). */
static int iface_facts(const char *name, const char *iface, uint16_t last_queue, uint32_t *mtu,
		       uint8_t mac[6])
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (s < 0)
		return -errno;
	strlcpy(ifr.ifr_name, iface, sizeof(ifr.ifr_name));
	ifr.ifr_data = (void *)&ch;
	if (ioctl(s, SIOCETHTOOL, &ifr) == 0) {
		uint32_t rxq = ch.combined_count + ch.rx_count, txq = ch.combined_count + ch.tx_count;
		uint32_t n = rxq < txq ? rxq : txq;

		if (n && last_queue >= n) {
			ax_err("afxdp %s: %s has %u queues, the port needs queue %u: lower start_queue or queues, or add queues (ethtool -L)",
			       name, iface, n, last_queue);
			rc = -ERANGE;
			goto out;
		}
	}
	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, iface, sizeof(ifr.ifr_name));
	if (ioctl(s, SIOCGIFMTU, &ifr) == 0)
		*mtu = (uint32_t)ifr.ifr_mtu;
	if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0 && !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
out:
	close(s);
	return rc;
}

int afxdp_port_create(struct mpops_region *r, const char *name, const struct afxdp_conf *conf,
		      struct mpops_port **out)
{
	struct afxdp_conf c = { 0 };
	struct mpops_port_conf pc = { .sz = sizeof(pc) };
	struct mpops_pktpool_layout l = { .sz = sizeof(l) };
	struct mpops_port *port;
	struct afxdp_port *p;
	struct afxdp_shared *sh;
	uint32_t ifindex;
	uint32_t mtu = 1500;	/* lo has 65536: not a uint16_t */
	int rc;

	if (!r || !out)
		return -EINVAL;
	if (conf && conf->sz > 0)
		memcpy(&c, conf, conf->sz < sizeof(c) ? conf->sz : sizeof(c));
	if ((rc = conf_check(conf ? &c : NULL, name ? name : "?")) < 0)
		return rc;
	if (!c.nb_qp)
		c.nb_qp = 1;
	if (!c.frame_size)
		c.frame_size = 2048;
	if (!c.ring_size)
		c.ring_size = 1024;
	if (!c.pool_size)
		c.pool_size = 4u * c.ring_size * c.nb_qp;
	if (c.pool_size < 2u * c.ring_size * c.nb_qp) {
		ax_err("afxdp %s: pool_size %u is less than 2 x ring_size %u x %u queue pairs: the fill rings would hold every frame and none would be left to send; give a larger pool_size or a smaller ring_size",
		       name, c.pool_size, c.ring_size, c.nb_qp);
		return -EINVAL;
	}
	if (!(ifindex = if_nametoindex(c.iface))) {
		ax_err("afxdp %s: no interface %s in this network namespace: check the name (ip link)",
		       name, c.iface);
		return -ENODEV;
	}
	memcpy(pc.mac, c.mac, 6);
	if ((rc = iface_facts(name, c.iface, (uint16_t)(c.start_queue + c.nb_qp - 1), &mtu,
			      pc.mac)) < 0)
		return rc;
	if (mtu + 18u > (unsigned)c.frame_size - AX_HEADROOM) {
		ax_err("afxdp %s: %s has MTU %u, more than a %u-byte frame holds after its %d bytes of headroom: use frame_size=4096 or a smaller MTU",
		       name, c.iface, mtu, c.frame_size, AX_HEADROOM);
		return -EINVAL;
	}
	pc.nb_qp = c.nb_qp;
	pc.mtu = (uint16_t)mtu;	/* checked against the frame above */
	pc.tx_headroom = 0;
	pc.pool_size = c.pool_size;
	pc.drv_size = sizeof(struct afxdp_shared);
	pc.buf_size = c.frame_size;
	pc.headroom = AX_HEADROOM;
	pc.buf_align = 4096;
	if ((rc = mpops_port_create(r, name, &mpops_impl_mpops_port_drv_afxdp, &pc, &port)) < 0)
		return rc;
	p = ax_of(port);
	sh = p->sh;
	/* A pool made for an earlier port of this name is used again: it must
	 * have the frame layout. */
	if ((rc = mpops_pktpool_layout(p->pool, &l)) < 0 || l.stride != c.frame_size ||
	    l.buf_size != c.frame_size || (l.data_off & 4095)) {
		ax_err("afxdp %s: the port's pool (from an earlier port of that name?) is not laid out in %u-byte frames: pick another name or frame_size",
		       name, c.frame_size);
		rc = -EEXIST;
		goto fail;
	}
	sh->magic = AFXDP_MAGIC;
	sh->version = AFXDP_VERSION;
	strlcpy(sh->iface, c.iface, sizeof(sh->iface));
	sh->ifindex = ifindex;
	sh->start_queue = c.start_queue;
	sh->nb_qp = c.nb_qp;
	sh->ring_size = c.ring_size;
	sh->frame_size = c.frame_size;
	sh->frame_shift = (uint32_t)__builtin_ctz(c.frame_size);
	sh->nb_frames = l.count;
	sh->busy_poll = c.busy_poll;
	sh->umem_off = l.data_off;
	sh->meta_off = l.meta_off;
	p->frame_shift = sh->frame_shift;
	p->frame_size = sh->frame_size;
	p->nb_frames = sh->nb_frames;
	p->ring_size = sh->ring_size;
	p->nb_qp = sh->nb_qp;
	p->umem_off = sh->umem_off;
	p->umem = p->base + sh->umem_off;
	p->meta = (struct mpops_pkt *)(p->base + sh->meta_off);
	if ((rc = afxdp_sockets_create(p, c.zero_copy)) < 0 ||
	    (rc = afxdp_prog_attach(p, c.xdp_mode)) < 0)
		goto fail;
	for (uint16_t qp = 0; qp < p->nb_qp; qp++) {
		int fd = dup(p->xsk_fd[qp]);

		if (fd < 0 || (rc = afxdp_rings_map(p, &p->cq[qp], qp, fd)) < 0) {
			rc = fd < 0 ? -errno : rc;
			if (fd >= 0)
				close(fd);
			goto fail;
		}
	}
	mpops_port_link_set(port, afxdp_iface_up(c.iface) == 1);
	if ((rc = afxdp_monitor_start(p)) < 0 || (rc = mpops_port_publish(port)) < 0)
		goto fail;
	ax_info("afxdp %s: %s queues %u..%u, %s XDP, %s mode, %u frames of %u bytes, rings of %u%s",
		name, c.iface, c.start_queue, c.start_queue + c.nb_qp - 1,
		sh->native ? "native" : "generic", sh->zero_copy ? "zero-copy" : "copy",
		sh->nb_frames, sh->frame_size, sh->ring_size, sh->busy_poll ? ", busy polling" : "");
	*out = port;
	return 0;
fail:
	mpops_port_close(port);
	return rc;
}

/* ==== create from key=value ============================================= */

static int arg_uint(const char *k, const char *v, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(v, &end, 0);
	if (errno || end == v || *end || *v == '-' || *out > max) {
		ax_err("afxdp: %s=%s: a number up to %lu is needed", k, v, max);
		return -EINVAL;
	}
	return 0;
}

static int arg_choice(const char *k, const char *v, const char *const *names, int n, int *out)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	ax_err("afxdp: %s=%s: use %s, %s or %s", k, v, names[0], names[1], names[2]);
	return -EINVAL;
}

int afxdp_port_create_args(struct mpops_region *r, const char *name, const char *args,
			   struct mpops_port **out)
{
	static const char *const modes[] = { "auto", "native", "generic" };
	static const char *const zcs[] = { "auto", "on", "off" };
	struct afxdp_conf c = { .sz = sizeof(c) };
	char buf[512], iface[IF_NAMESIZE] = "", *save, *kv;
	unsigned long v;
	int rc = 0;

	if (!args || strlcpy(buf, args, sizeof(buf)) >= sizeof(buf)) {
		ax_err("afxdp %s: arguments missing or longer than %zu characters", name ? name : "?",
		       sizeof(buf) - 1);
		return -EINVAL;
	}
	for (kv = strtok_r(buf, ",", &save); kv && rc == 0; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '='), *k = kv, *val;

		if (!eq) {
			ax_err("afxdp: '%s' is not key=value", kv);
			return -EINVAL;
		}
		*eq = 0;
		val = eq + 1;
		if (strcmp(k, "iface") == 0) {
			if (strlcpy(iface, val, sizeof(iface)) >= sizeof(iface)) {
				ax_err("afxdp: iface=%s: an interface name has at most %d characters",
				       val, IF_NAMESIZE - 1);
				return -EINVAL;
			}
			c.iface = iface;
		} else if (strcmp(k, "start_queue") == 0) {
			if ((rc = arg_uint(k, val, USHRT_MAX, &v)) == 0)
				c.start_queue = (uint16_t)v;
		} else if (strcmp(k, "queues") == 0) {
			if ((rc = arg_uint(k, val, AFXDP_MAX_QP, &v)) == 0)
				c.nb_qp = (uint16_t)v;
		} else if (strcmp(k, "frame_size") == 0) {
			if ((rc = arg_uint(k, val, 4096, &v)) == 0)
				c.frame_size = (uint16_t)v;
		} else if (strcmp(k, "ring_size") == 0) {
			if ((rc = arg_uint(k, val, 8192, &v)) == 0)
				c.ring_size = (uint32_t)v;
		} else if (strcmp(k, "pool_size") == 0) {
			if ((rc = arg_uint(k, val, 1u << 24, &v)) == 0)
				c.pool_size = (uint32_t)v;
		} else if (strcmp(k, "busy_poll") == 0) {
			if ((rc = arg_uint(k, val, 1024, &v)) == 0)
				c.busy_poll = (int)v;
		} else if (strcmp(k, "mode") == 0) {
			rc = arg_choice(k, val, modes, 3, &c.xdp_mode);
		} else if (strcmp(k, "zero_copy") == 0) {
			rc = arg_choice(k, val, zcs, 3, &c.zero_copy);
		} else {
			ax_err("afxdp: unknown key '%s': use iface, start_queue, queues, mode, zero_copy, frame_size, ring_size, pool_size or busy_poll",
			       k);
			return -EINVAL;
		}
	}
	if (rc < 0)
		return rc;
	return afxdp_port_create(r, name, &c, out);
}

/* ==== introspection ===================================================== */

int afxdp_info_get(struct mpops_port *port, struct afxdp_info *in)
{
	struct mpops_port_info pi;
	struct afxdp_port *p;
	struct afxdp_shared *sh;
	void *slot;
	uint32_t epoch;

	if (!port || !in || in->sz != sizeof(*in) || mpops_port_info_get(port, &pi) < 0 ||
	    strcmp(pi.driver, "afxdp") != 0)
		return -EINVAL;
	p = ax_of(port);
	sh = p->sh;
	memset((char *)in + sizeof(in->sz), 0, sizeof(*in) - sizeof(in->sz));
	strlcpy(in->iface, sh->iface, sizeof(in->iface));
	in->ifindex = sh->ifindex;
	in->start_queue = sh->start_queue;
	in->nb_qp = p->nb_qp;
	in->native = sh->native;
	in->zero_copy = sh->zero_copy;
	in->busy_poll = sh->busy_poll;
	in->ring_size = p->ring_size;
	in->frame_size = p->frame_size;
	in->nb_frames = p->nb_frames;
	if (mpops_port_slot(port, &slot, &epoch) == 0) {
		struct afxdp_slot *s = slot;

		for (uint16_t qp = 0; qp < s->nb_qp; qp++) {
			struct xdp_statistics st;
			socklen_t len = sizeof(st);

			if (getsockopt(s->q[qp].fd, SOL_XDP, XDP_STATISTICS, &st, &len) < 0)
				continue;
			in->q[qp].rx_dropped = st.rx_dropped;
			in->q[qp].rx_invalid = st.rx_invalid_descs;
			in->q[qp].tx_invalid = st.tx_invalid_descs;
			in->q[qp].rx_ring_full = st.rx_ring_full;
			in->q[qp].fill_ring_empty = st.rx_fill_ring_empty_descs;
			in->q[qp].tx_ring_empty = st.tx_ring_empty_descs;
		}
	}
	return 0;
}
