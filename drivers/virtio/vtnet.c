/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vtnet as a port driver: the ops the port layer calls (open, close,
 * start, stop, the per-process slot, fds for other processes, queue
 * setup), port creation with feature negotiation, and virtio facts for
 * tools. Claims, epochs, the wait for bursts, link and counters are the
 * port layer's (lib/port.c); reaching the device is the transports'
 * (transport.h); rings are virtqueue.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtnet_priv.h"

MPOPS_OPS_CLASS_DEFINE(vtpci, VTPCI_OPS)

#define vt_err(...) mpops_log(MPOPS_LOG_ERR, __VA_ARGS__)
#define vt_info(...) mpops_log(MPOPS_LOG_INFO, __VA_ARGS__)
#define vt_warn(...) mpops_log(MPOPS_LOG_WARN, __VA_ARGS__)

struct vtnet_port *vtnet_of(struct mpops_port *port)
{
	struct vtnet_port *p = port ? mpops_port_priv(port) : NULL;

	return p && p->magic == VTNET_MAGIC ? p : NULL;
}

/* Notify the device about @vq outside a burst: with this process's slot at
 * the current epoch. */
int vtnet_notify(struct vtnet_port *p, uint16_t vq)
{
	void *slot;
	int rc;

	if ((rc = mpops_port_slot(p->port, &slot, NULL)) < 0)
		return rc;
	return MPOPS_OPS(vtpci, p->sh->ops_id)->notify_queue(p, slot, vq);
}

/* ==== virtqueues ======================================================== */

/* Data queues count in the port's counters, the control queue in its own. */
static struct mpops_port_queue_stats *vq_stats(struct vtnet_port *p, uint16_t index)
{
	return index < 2 * p->sh->nb_qp ? mpops_port_stats_ref(p->port, index / 2, index & 1)
					: NULL;
}

static void vqs_map(struct vtnet_port *p)
{
	for (uint16_t i = 0; i < VTNET_MAX_VQ; i++)
		if (p->sh->vq_off[i] && !p->vq[i].sh)
			vq_map(&p->vq[i], p->base, mpops_ptr(p->base, p->sh->vq_off[i]),
			       vq_stats(p, i), p->sh->name);
}

/*
 * Virtqueue @index of @size entries in the region: its shared state, the
 * ring in one block aligned to its size rounded up to a power of two, so
 * that it never spans two pages (a device that reads physical addresses
 * sees it in one piece), the driver's copies of its descriptors and the
 * in-order list; the control queue
 * also gets room for one command.
 */
static int vq_create(struct vtnet_port *p, uint16_t index, uint16_t size)
{
	mpops_off_t sh_off, ring, extra, inflight, scratch = 0;
	struct mpops_region *r = p->r;
	size_t bytes = vq_ring_bytes(size), align;
	char tag[32];
	int rc;

	snprintf(tag, sizeof(tag), "vtnet.%.16s.vq%u", p->sh->name, index);
	for (align = 4096; align < bytes; align <<= 1)
		;
	if ((rc = mpops_alloc(r, sizeof(struct vq_shared), 64, tag, &sh_off)) < 0 ||
	    (rc = mpops_alloc_dev(r, bytes, align, tag, &ring)) < 0 ||
	    (rc = mpops_alloc(r, sizeof(struct vq_extra) * size, 64, tag, &extra)) < 0 ||
	    (rc = mpops_alloc(r, 2u * size, 64, tag, &inflight)) < 0)
		return rc;
	if (index == VTNET_CVQ(p->sh->max_qp) && (rc = mpops_alloc_dev(r, 256, 256, tag, &scratch)) < 0)
		return rc;
	p->sh->vq_off[index] = sh_off;
	vq_init(&p->vq[index], p->base, mpops_ptr(p->base, sh_off), index, size, ring, extra,
		inflight, scratch, scratch ? vq_iova(p, scratch) : 0, p->sh->name);
	if (index < 2 * p->sh->nb_qp)
		p->vq[index].st = vq_stats(p, index);
	return 0;
}

static void vq_destroy(struct vtnet_port *p, uint16_t index)
{
	struct vq_shared *v = p->vq[index].sh;

	vq_drain(&p->vq[index], p->pool);
	mpops_free(p->r, v->desc_off);	/* the whole ring */
	mpops_free(p->r, v->extra_off);
	mpops_free(p->r, v->inflight_off);
	if (v->scratch_off)
		mpops_free(p->r, v->scratch_off);
	mpops_free(p->r, p->sh->vq_off[index]);
	p->sh->vq_off[index] = 0;
	p->vq[index].sh = NULL;
}

/* Give the rings back and free their buffers. */
static void rings_drain(struct vtnet_port *p)
{
	for (uint16_t i = 0; i < VTNET_MAX_VQ; i++)
		if (p->vq[i].sh)
			vq_drain(&p->vq[i], p->pool);
}

/* ==== the port driver =================================================== */

static int drv_open(struct mpops_port *port, void **priv)
{
	struct vtnet_port *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->magic = VTNET_MAGIC;
	p->port = port;
	p->r = mpops_port_region(port);
	p->base = mpops_region_base(p->r);
	p->sh = mpops_port_drv_shared(port);
	p->owner = mpops_port_is_creator(port);
	p->pool = mpops_port_pool(port);
	if (!p->owner) {
		/* The creator fills its block after open; here it is complete. */
		if (!p->sh || p->sh->magic != VTNET_MAGIC || p->sh->version != VTNET_VERSION) {
			vt_err("vtnet %s: shared port has version %u, this driver %u: rebuild both from the same sources",
			       mpops_port_name(port), p->sh ? p->sh->version : 0, VTNET_VERSION);
			free(p);
			return -EPROTO;
		}
		/* Checked once here; from now on the IDs index without checks. */
		if ((rc = mpops_ops_resolve_vtnet_tr(p->sh->tr_id, &p->tr)) < 0) {
			free(p);
			return rc;
		}
		vqs_map(p);
	}
	*priv = p;
	return 0;
}

static int drv_close(struct mpops_port *port, void *priv)
{
	struct vtnet_port *p = priv;

	(void)port;
	if (p->owner) {
		/* Stopped, and every burst gone: the device and rings go. */
		if (p->tr)
			p->tr->destroy(p);
		for (uint16_t i = 0; i < VTNET_MAX_VQ; i++)
			if (p->vq[i].sh)
				vq_destroy(p, i);
	}
	free(p);
	return 0;
}

/* The control queue's notify, for vq_ctrl_send. */
static int cvq_notify(void *arg)
{
	struct vtnet_port *p = arg;

	return vtnet_notify(p, VTNET_CVQ(p->sh->max_qp));
}

static int drv_start(struct mpops_port *port)
{
	struct vtnet_port *p = mpops_port_priv(port);
	struct vtnet_port_shared *sh = p->sh;
	int rc;

	/* From what is in flight: nothing, the device has no ring now. What a
	 * failed start or a dead burst left is given back (and counted). */
	rings_drain(p);
	for (uint16_t q = 0; q < sh->nb_qp; q++) {
		int n;

		mpops_port_fill_mark(port, q, 0);
		n = vq_rx_fill(&p->vq[2 * q], p->pool, sh->hdr_size, 0);
		mpops_port_fill_mark(port, -1, 0);
		if (n <= 0) {
			vt_err("vtnet %s: no packet buffers for rx queue %u: make the pool larger", sh->name,
			       q);
			rings_drain(p);
			return -ENOBUFS;
		}
	}
	if ((rc = p->tr->start(p)) < 0) {
		rings_drain(p);
		return rc;
	}
	if (sh->features & BIT64(VIRTIO_NET_F_MQ)) {
		uint16_t pairs = sh->nb_qp;

		if ((rc = vq_ctrl_send(&p->vq[VTNET_CVQ(sh->max_qp)], vtnet_event_idx(p),
				       VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs,
				       sizeof(pairs), cvq_notify, p)) < 0) {
			p->tr->stop(p);
			rings_drain(p);
			return rc;
		}
	}
	/* Tell a kick-driven device that rx buffers are waiting. */
	for (uint16_t q = 0; q < sh->nb_qp; q++)
		vtnet_notify(p, (uint16_t)(2 * q));
	return 0;
}

static int drv_stop(struct mpops_port *port)
{
	struct vtnet_port *p = mpops_port_priv(port);

	p->tr->stop(p);
	rings_drain(p);
	return 0;
}

static int drv_slot_attach(struct mpops_port *port, void **out)
{
	struct vtnet_port *p = mpops_port_priv(port);
	struct vtnet_slot *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	for (int i = 0; i < VTNET_MAX_VQ; i++)
		s->kickfd[i] = -1;
	if ((rc = p->tr->slot_attach(p, s)) < 0) {
		p->tr->slot_detach(p, s);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int drv_slot_detach(struct mpops_port *port, void *slot)
{
	struct vtnet_port *p = mpops_port_priv(port);

	p->tr->slot_detach(p, slot);
	free(slot);
	return 0;
}

static int drv_fds_export(struct mpops_port *port, int *fds, int max)
{
	struct vtnet_port *p = mpops_port_priv(port);

	return p->tr->fds_export(p, fds, max);
}

static int drv_queue_setup(struct mpops_port *port, uint16_t qp, void *slot,
			   struct mpops_port_queue *q)
{
	struct vtnet_port *p = mpops_port_priv(port);
	struct vtnet_qp *h = &p->qp[qp];

	vqs_map(p);
	if (qp >= p->sh->nb_qp || !p->vq[2 * qp].sh || !p->vq[2 * qp + 1].sh)
		return -ERANGE;
	h->p = p;
	h->qp = qp;
	h->slot = slot;
	h->notify = MPOPS_OPS(vtpci, p->sh->ops_id)->notify_queue;
	h->marks = q->marks;
	q->rx = vtnet_rx;
	q->tx = vtnet_tx;
	q->queue = h;
	return 0;
}

/*
 * A dead owner's queue pair: rebuild each ring's state from what is in
 * flight (vq_repair), give back what a half-done burst or refill took, and
 * tell the device about what the repair published.
 */
static int drv_queue_takeover(struct mpops_port *port, uint16_t qp, void *slot, int32_t dead)
{
	struct vtnet_port *p = mpops_port_priv(port);
	int in_order = !!(p->sh->features & BIT64(VIRTIO_F_IN_ORDER));
	struct vq_repair_report rep[2];
	struct mpops_pkt **keep;
	int rc = 0, given[2] = { 0, 0 };

	vqs_map(p);
	if (qp >= p->sh->nb_qp || !p->vq[2 * qp].sh || !p->vq[2 * qp + 1].sh)
		return -ERANGE;
	if (!(keep = malloc(sizeof(*keep) * p->sh->ring_size)))
		return -ENOMEM;
	for (int tx = 0; tx < 2 && rc == 0; tx++) {
		struct vq *q = &p->vq[2 * qp + tx];

		if ((rc = vq_repair(q, tx && in_order, keep, &rep[tx])) < 0 ||
		    (rc = mpops_port_queue_recover(port, qp, tx, keep, rep[tx].kept)) < 0)
			break;
		given[tx] = rc;
		rc = 0;
		if (rep[tx].shown || (!tx && rep[tx].unposted + rep[tx].finished)) {
			/* Rx: the refill goes on at the next burst; a kick-driven
			 * device hears of what is posted now. */
			q->st->kicks++;
			MPOPS_OPS(vtpci, p->sh->ops_id)->notify_queue(p, slot, q->sh->index);
		}
		if (!tx)
			q->st->drops += rep[tx].finished ? 1 : 0;
	}
	free(keep);
	if (rc < 0)
		return rc;
	if (rep[0].unposted + rep[0].finished + rep[0].shown + rep[1].unposted + rep[1].finished +
	    rep[1].shown + (unsigned)given[0] + (unsigned)given[1])
		vt_warn("vtnet %s: queue pair %u: its owner pid %d died with work half done: repaired (rx: %u taken and not posted, %u used entries finished, %u shown to the device, %d buffers back; tx: %u, %u, %u, %d); the queue goes on",
			p->sh->name, qp, (int)dead, rep[0].unposted, rep[0].finished, rep[0].shown,
			given[0], rep[1].unposted, rep[1].finished, rep[1].shown, given[1]);
	return 0;
}

static const struct mpops_port_drv_ops vtnet_drv = {
	.open = drv_open,
	.close = drv_close,
	.start = drv_start,
	.stop = drv_stop,
	.slot_attach = drv_slot_attach,
	.slot_detach = drv_slot_detach,
	.fds_export = drv_fds_export,
	.queue_setup = drv_queue_setup,
	.queue_takeover = drv_queue_takeover,
};
MPOPS_OPS_IMPL(mpops_port_drv, vtnet, &vtnet_drv)

/* ==== features ========================================================== */

static const struct {
	int bit;
	const char *name;
} feature_names[] = {
	{ VIRTIO_NET_F_CSUM, "CSUM" },
	{ VIRTIO_NET_F_MTU, "MTU" },
	{ VIRTIO_NET_F_MAC, "MAC" },
	{ VIRTIO_NET_F_MRG_RXBUF, "MRG_RXBUF" },
	{ VIRTIO_NET_F_STATUS, "STATUS" },
	{ VIRTIO_NET_F_CTRL_VQ, "CTRL_VQ" },
	{ VIRTIO_NET_F_MQ, "MQ" },
	{ VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC" },
	{ VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX" },
	{ VIRTIO_F_ANY_LAYOUT, "ANY_LAYOUT" },
	{ 30, "PROTOCOL_FEATURES" },
	{ VIRTIO_F_VERSION_1, "VERSION_1" },
	{ VIRTIO_F_ACCESS_PLATFORM, "ACCESS_PLATFORM" },
	{ VIRTIO_F_RING_PACKED, "RING_PACKED" },
	{ VIRTIO_F_IN_ORDER, "IN_ORDER" },
};

void vtnet_features_str(uint64_t f, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
		if (!(f & BIT64(feature_names[i].bit)))
			continue;
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
					 used ? " " : "", feature_names[i].name);
		f &= ~BIT64(feature_names[i].bit);
	}
	for (int b = 0; b < 64 && used < len; b++)
		if (f & BIT64(b))
			used += (size_t)snprintf(buf + used, len - used, "%sbit%d", used ? " " : "", b);
}

/* ==== create ============================================================ */

static int conf_check(const struct vtnet_conf *c, const char *name)
{
	if (!c || c->sz == 0 || c->sz > sizeof(*c)) {
		vt_err("vtnet %s: struct vtnet_conf needs .sz = sizeof(struct vtnet_conf)", name);
		return -EINVAL;
	}
	if (c->transport && strcmp(c->transport, "user") != 0 && strcmp(c->transport, "pci") != 0 &&
	    strcmp(c->transport, "pci-legacy") != 0 && strcmp(c->transport, "pci-modern") != 0) {
		vt_err("vtnet %s: unknown transport '%s' (this build has: user, pci, pci-legacy, pci-modern)",
		       name, c->transport);
		return -EINVAL;
	}
	if (c->transport && strncmp(c->transport, "pci", 3) == 0) {
		if (!c->pci_addr) {
			vt_err("vtnet %s: transport %s needs .pci_addr (dddd:bb:dd.f)", name, c->transport);
			return -EINVAL;
		}
	} else if (!c->vhost_path || !*c->vhost_path || strlen(c->vhost_path) >= 108) {
		vt_err("vtnet %s: vhost_path must name a unix socket (up to 107 characters)", name);
		return -EINVAL;
	}
	if (c->nb_qp > VTNET_MAX_QP) {
		vt_err("vtnet %s: %u queue pairs asked, at most %d", name, c->nb_qp, VTNET_MAX_QP);
		return -EINVAL;
	}
	if (c->ring_size && (c->ring_size & (c->ring_size - 1))) {
		vt_err("vtnet %s: ring size %u is not a power of two", name, c->ring_size);
		return -EINVAL;
	}
	return 0;
}

static int negotiate(struct vtnet_port *p, const struct vtnet_conf *c)
{
	struct vtnet_port_shared *sh = p->sh;
	uint64_t want = VTNET_DRIVER_FEATURES | sh->tr_features;
	char off[256], got[256];

	if (c->mergeable < 0)
		want &= ~BIT64(VIRTIO_NET_F_MRG_RXBUF);
	if (c->event_idx < 0)
		want &= ~BIT64(VIRTIO_RING_F_EVENT_IDX);
	if (c->in_order < 0)
		want &= ~BIT64(VIRTIO_F_IN_ORDER);
	if (sh->nb_qp == 1)
		want &= ~BIT64(VIRTIO_NET_F_MQ);
	sh->features = sh->device_features & want;
	if (!(sh->features & BIT64(VIRTIO_NET_F_CTRL_VQ)))
		sh->features &= ~BIT64(VIRTIO_NET_F_MQ);
	sh->hdr_size = (sh->features & (BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_NET_F_MRG_RXBUF)))
			       ? sizeof(struct virtio_net_hdr_mrg_rxbuf)
			       : sizeof(struct virtio_net_hdr);
	vtnet_features_str(want & ~sh->features, off, sizeof(off));
	vtnet_features_str(sh->features, got, sizeof(got));
	vt_info("vtnet %s: negotiated %s%s%s", sh->name, got, off[0] ? "; not offered or not wanted: " : "",
		off);
	if (sh->nb_qp > 1 && !(sh->features & BIT64(VIRTIO_NET_F_MQ))) {
		vt_err("vtnet %s: %u queue pairs asked, but the device offers no multiqueue", sh->name,
		       sh->nb_qp);
		return -ENOTSUP;
	}
	if (sh->nb_qp > sh->max_qp) {
		vt_err("vtnet %s: %u queue pairs asked, the device has %u", sh->name, sh->nb_qp,
		       sh->max_qp);
		return -ENOTSUP;
	}
	return p->tr->features_set(p, sh->features);
}

int vtnet_port_create(struct mpops_region *r, const char *name, const struct vtnet_conf *conf,
		      struct mpops_port **out)
{
	struct vtnet_conf cc = { 0 }, *c = &cc;	/* fields past the caller's sz read as 0 */
	struct mpops_port_conf pc = { .sz = sizeof(pc) };
	struct vtnet_port_shared *sh;
	struct mpops_port *port;
	struct vtnet_port *p;
	int rc, pci;

	if (!r || !name || !out)
		return -EINVAL;
	if (conf && conf->sz > 0 && conf->sz <= sizeof(cc))
		memcpy(&cc, conf, conf->sz);
	if ((rc = conf_check(conf ? c : NULL, name)) < 0)
		return rc;
	pci = c->transport && strncmp(c->transport, "pci", 3) == 0;
	if (!pci && mpops_region_iova_mode(r) != MPOPS_IOVA_OFF) {
		vt_err("vtnet %s: a virtio-user port gives the backend region offsets as addresses: use a region without MPOPS_REGION_F_PHYS",
		       name);
		return -EINVAL;
	}
	pc.nb_qp = c->nb_qp ? c->nb_qp : 1;
	pc.tx_headroom = sizeof(struct virtio_net_hdr_mrg_rxbuf);
	memcpy(pc.mac, c->mac, 6);
	pc.pool_size = c->pool_size;
	pc.drv_size = sizeof(*sh);
	if ((rc = mpops_port_create(r, name, &mpops_impl_mpops_port_drv_vtnet, &pc, &port)) < 0)
		return rc;
	p = mpops_port_priv(port);
	sh = p->sh;
	sh->magic = VTNET_MAGIC;
	sh->version = VTNET_VERSION;
	strlcpy(sh->name, name, sizeof(sh->name));
	sh->nb_qp = pc.nb_qp;
	sh->ring_size = c->ring_size ? c->ring_size : 256;
	sh->cvq_size = 64;
	/* The transport: connects or probes, and picks the per-process ops (the
	 * PCI probe chooses legacy or modern from what the device offers). */
	if ((rc = mpops_ops_id(pci ? &mpops_impl_vtnet_tr_pci : &mpops_impl_vtnet_tr_user,
			       &sh->tr_id)) < 0 ||
	    (rc = mpops_ops_resolve_vtnet_tr(sh->tr_id, &p->tr)) < 0)
		goto fail;
	if ((rc = p->tr->create(p, c)) < 0) {
		p->tr = NULL;	/* nothing to destroy */
		goto fail;
	}
	if ((rc = negotiate(p, c)) < 0)
		goto fail;
	for (uint16_t q = 0; q < sh->nb_qp; q++) {
		if ((rc = vq_create(p, (uint16_t)(2 * q), sh->ring_size)) < 0 ||
		    (rc = vq_create(p, (uint16_t)(2 * q + 1), sh->ring_size)) < 0)
			goto fail;
	}
	if ((sh->features & BIT64(VIRTIO_NET_F_CTRL_VQ)) &&
	    (rc = vq_create(p, VTNET_CVQ(sh->max_qp), sh->cvq_size)) < 0)
		goto fail;
	if ((rc = mpops_port_publish(port)) < 0)
		goto fail;
	*out = port;
	return 0;
fail:
	mpops_port_close(port);
	return rc;
}

/* ==== facts ============================================================= */

int vtnet_info_get(struct mpops_port *port, struct vtnet_info *info)
{
	char cls[MPOPS_OPS_NAME_MAX + 1] = "?", impl[MPOPS_OPS_NAME_MAX + 1] = "?";
	struct vtnet_port *p = vtnet_of(port);
	struct vtnet_port_shared *sh;

	if (!info)
		return -EINVAL;
	if (!p) {
		vt_err("vtnet: port %s is not a vtnet port", port ? mpops_port_name(port) : "(null)");
		return -EINVAL;
	}
	sh = p->sh;
	memset(info, 0, sizeof(*info));
	info->device_features = sh->device_features;
	info->features = sh->features;
	info->max_qp = sh->max_qp;
	info->ring_size = sh->ring_size;
	info->hdr_size = sh->hdr_size;
	info->ops_id = sh->ops_id;
	mpops_ops_name(sh->ops_id, cls, impl);
	snprintf(info->transport, sizeof(info->transport), "%s/%s", cls, impl);
	info->ops_local = MPOPS_OPS(vtpci, sh->ops_id);
	return 0;
}

int vtnet_vq_info_get(struct mpops_port *port, uint16_t vq, struct vtnet_vq_info *info)
{
	struct vtnet_port *p = vtnet_of(port);
	struct vq *q;

	if (!p || !info)
		return -EINVAL;
	vqs_map(p);
	if (vq >= VTNET_MAX_VQ || !p->vq[vq].sh)
		return -ERANGE;
	q = &p->vq[vq];
	info->index = vq;
	info->size = q->sh->size;
	info->avail_idx = q->sh->avail_idx;
	info->used_idx = q->used->idx;
	info->last_used = q->sh->last_used;
	info->num_free = q->sh->num_free;
	info->avail_flags = q->avail->flags;
	info->used_flags = q->used->flags;
	info->used_event = q->avail->ring[q->sh->size];
	info->avail_event = *vq_avail_event(q);
	info->repaired = q->sh->repaired;
	return 0;
}
