/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vtnet ports: create, start, stop and close (primary), open from any
 * process, queue-pair claims, the per-process slot (kick fds), counters and
 * facts for tools.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vtnet_priv.h"

MPOPS_OPS_CLASS_DEFINE(vtpci, VTPCI_OPS)

#define vt_err(...) mpops_log(MPOPS_LOG_ERR, __VA_ARGS__)
#define vt_info(...) mpops_log(MPOPS_LOG_INFO, __VA_ARGS__)

/* This process's open ports, for the channel handler and exit callback. */
static pthread_mutex_t ports_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vtnet_port *ports;

struct vtnet_port *vtnet_port_find(const char *name)
{
	struct vtnet_port *p;

	pthread_mutex_lock(&ports_mu);
	for (p = ports; p; p = p->next)
		if (p->owner && strcmp(p->sh->name, name) == 0)
			break;
	pthread_mutex_unlock(&ports_mu);
	return p;
}

static void ports_add(struct vtnet_port *p)
{
	pthread_mutex_lock(&ports_mu);
	p->next = ports;
	ports = p;
	pthread_mutex_unlock(&ports_mu);
}

static void ports_del(struct vtnet_port *p)
{
	pthread_mutex_lock(&ports_mu);
	for (struct vtnet_port **pp = &ports; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&ports_mu);
}

/* ==== transports ======================================================== */

static int user_slot_attach(struct mpops_region *r, struct vtnet_port_shared *sh,
			    struct vtnet_slot *s);
static void user_slot_detach(struct vtnet_slot *s);

static const struct vtnet_transport_ops transports[] = {
	[VTNET_TR_USER] = { vu_dev_create, vu_dev_destroy, vu_dev_start, vu_dev_stop,
			    user_slot_attach, user_slot_detach },
	[VTNET_TR_PCI] = { vtpci_dev_create, vtpci_dev_destroy, vtpci_dev_start, vtpci_dev_stop,
			   vtpci_slot_attach, vtpci_slot_detach },
};

/* The shared port says which; an unknown value is refused at open. */
static const struct vtnet_transport_ops *tr(const struct vtnet_port_shared *sh)
{
	size_t n = sizeof(transports) / sizeof(transports[0]);

	return &transports[sh->transport < n ? sh->transport : VTNET_TR_USER];
}

/* ==== the per-process slot ============================================== */

/* virtio-user: this process's copies of the kick fds. */
static int user_slot_attach(struct mpops_region *r, struct vtnet_port_shared *sh,
			    struct vtnet_slot *s)
{
	struct vtnet_port *owner;
	int fds[VTNET_MAX_VQ], n = 0, rc = 0;

	owner = vtnet_port_find(sh->name);
	if (owner && owner->dev) {
		/* The primary: its own eventfds, duplicated for this slot. */
		vu_kickfds(owner, fds, &n);
		for (int i = 0; i < n; i++)
			s->kickfd[i] = fds[i] >= 0 ? dup(fds[i]) : -1;
	} else {
		/* A secondary: copies from the primary, over the channel. */
		struct mpops_msg *req = calloc(1, sizeof(*req)), *rep = calloc(1, sizeof(*rep));

		if (!req || !rep) {
			rc = -ENOMEM;
		} else {
			req->type = VTNET_MSG_KICKFDS;
			req->len = (uint32_t)strlen(sh->name) + 1;
			memcpy(req->data, sh->name, req->len);
			rc = mpops_channel_request(r, req, rep, 0);
			if (rc == 0 && rep->nfds > VTNET_MAX_VQ)
				rc = -EBADMSG;
			for (uint32_t i = 0; rc == 0 && i < rep->nfds; i++) {
				s->kickfd[i] = rep->fds[i];
				rep->fds[i] = -1;
			}
			n = rc == 0 ? (int)rep->nfds : 0;
			mpops_msg_clear(rep);
		}
		free(req);
		free(rep);
		if (rc < 0)
			vt_err("vtnet %s: cannot get this process's kick fds from the primary: %s",
			       sh->name, strerror(-rc));
	}
	s->nfds = n;
	return rc;
}

static void user_slot_detach(struct vtnet_slot *s)
{
	for (int i = 0; i < VTNET_MAX_VQ; i++)
		if (s->kickfd[i] >= 0)
			close(s->kickfd[i]);
}

static int slot_attach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void **out)
{
	struct vtnet_port_shared *sh = shared;
	struct vtnet_slot *s = calloc(1, sizeof(*s));
	int rc;

	(void)id;
	if (!s)
		return -ENOMEM;
	for (int i = 0; i < VTNET_MAX_VQ; i++)
		s->kickfd[i] = -1;
	if ((rc = tr(sh)->slot_attach(r, sh, s)) < 0) {
		tr(sh)->slot_detach(s);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int slot_detach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void *slot)
{
	struct vtnet_slot *s = slot;

	(void)r;
	(void)id;
	tr(shared)->slot_detach(s);
	free(s);
	return 0;
}

static const struct mpops_obj_ops slot_ops = { .attach = slot_attach, .detach = slot_detach };
MPOPS_OPS_IMPL(mpops_obj, vtnet_port, &slot_ops)

/* Primary: hand a secondary the kick fds of a port. */
static int kickfds_handler(struct mpops_region *r, const struct mpops_msg *req,
			   struct mpops_msg *reply, void *arg)
{
	struct vtnet_port *p;
	int fds[VTNET_MAX_VQ], n = 0, rc;

	(void)r;
	(void)arg;
	if (req->len == 0 || req->len > MPOPS_NAME_MAX + 1 || req->data[req->len - 1] != '\0')
		return -EBADMSG;
	if (!(p = vtnet_port_find((const char *)req->data)) || !p->dev)
		return -ENOENT;
	vu_kickfds(p, fds, &n);
	for (int i = 0; i < n; i++)
		if ((rc = mpops_msg_add_fd(reply, fds[i])) < 0)
			return rc;
	return 0;
}

/* Primary: hand a secondary a copy of a vfio-bound port's device fd. */
static int vfiofd_handler(struct mpops_region *r, const struct mpops_msg *req,
			  struct mpops_msg *reply, void *arg)
{
	struct vtnet_port *p;

	(void)r;
	(void)arg;
	if (req->len == 0 || req->len > MPOPS_NAME_MAX + 1 || req->data[req->len - 1] != '\0')
		return -EBADMSG;
	if (!(p = vtnet_port_find((const char *)req->data)))
		return -ENOENT;
	return vtpci_fds_handler(p, reply);
}

/* Primary: a secondary left or died: free its claims. */
static void on_proc_exit(struct mpops_region *r, const struct mpops_proc_info *info,
			 int died, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ports_mu);
	for (struct vtnet_port *p = ports; p; p = p->next) {
		if (p->r != r || !p->owner)
			continue;
		for (int q = 0; q < VTNET_MAX_QP; q++) {
			int32_t pid = info->pid;

			if (atomic_compare_exchange_strong(&p->sh->claims[q].pid, &pid, 0)) {
				/* It may have died inside a burst. */
				if (p->vq[2 * q].sh)
					atomic_store(&p->vq[2 * q].sh->busy, 0);
				vt_info("vtnet %s: queue pair %d released: its owner pid %d %s",
					p->sh->name, q, (int)info->pid, died ? "died" : "left");
			}
		}
	}
	pthread_mutex_unlock(&ports_mu);
}

/* ==== fast-path refresh and quiesce ===================================== */

int vtnet_qp_refresh(struct vtnet_port *p, uint16_t qp)
{
	struct vtnet_qp *h = &p->qp[qp];
	uint32_t epoch;
	void *slot;
	int rc;

	if (!h->epoch_ref &&
	    (rc = mpops_obj_epoch_ref(p->r, p->sh->obj_id, &h->epoch_ref)) < 0)
		return rc;
	/* Read before the slot: if it moves meanwhile, the next burst refreshes again. */
	epoch = __atomic_load_n(h->epoch_ref, __ATOMIC_ACQUIRE);
	h->slot = NULL;
	if ((rc = mpops_obj_slot(p->r, p->sh->obj_id, &slot)) < 0)
		return rc;
	h->slot = slot;
	h->ops = MPOPS_OPS(vtpci, p->sh->ops_id);
	h->notify = h->ops->notify_queue;
	h->slot_epoch = epoch;
	return 0;
}

/* This process's slot for a notify on @vq: the queue pair's cached one if it
 * is current, else looked up (and rebuilt if its epoch moved). */
struct vtnet_slot *vtnet_slot_get(struct vtnet_port *p, uint16_t vq)
{
	struct vtnet_qp *h = vq / 2 < VTNET_MAX_QP ? &p->qp[vq / 2] : NULL;
	void *s;

	if (h && h->slot && h->epoch_ref &&
	    h->slot_epoch == __atomic_load_n(h->epoch_ref, __ATOMIC_RELAXED))
		return h->slot;
	return mpops_obj_slot(p->r, p->sh->obj_id, &s) < 0 ? NULL : s;
}

void vtnet_quiesce(struct vtnet_port *p)
{
	struct timespec ts = { 0, 100000 };

	for (uint16_t q = 0; q < p->sh->nb_qp; q++) {
		struct vtnet_vq *rx = &p->vq[2 * q];

		for (int i = 0; rx->sh && atomic_load(&rx->sh->busy); i++) {
			int32_t owner = atomic_load(&p->sh->claims[q].pid);

			/* A process that died inside a burst will never leave it. */
			if (i > 20000 || (owner && !mpops_proc_alive(owner, p->sh->claims[q].start_time))) {
				atomic_store(&rx->sh->busy, 0);
				break;
			}
			nanosleep(&ts, NULL);
		}
	}
}

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

/* ==== create, open, close =============================================== */

static int port_alloc_handle(struct mpops_region *r, mpops_off_t off, struct vtnet_port **out)
{
	struct vtnet_port *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->r = r;
	p->base = mpops_region_base(r);
	p->sh_off = off;
	p->sh = mpops_ptr(p->base, off);
	*out = p;
	return 0;
}

static void root_name(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "vtnet.%.24s", name);
}

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

/* The control queue's size: a legacy device's own, else at most 64. */
static uint16_t cvq_size(const struct vtnet_port_shared *sh)
{
	uint16_t dev = sh->pci.qsize_max[VTNET_CVQ(sh->max_qp)];

	if (sh->transport != VTNET_TR_PCI || dev == 0)
		return 64;
	return !sh->pci.modern || dev < 64 ? dev : 64;
}

static int negotiate(struct vtnet_port *p, const struct vtnet_conf *c)
{
	struct vtnet_port_shared *sh = p->sh;
	const struct vtpci_ops *ops = MPOPS_OPS(vtpci, sh->ops_id);
	uint64_t want = VTNET_DRIVER_FEATURES;
	char off[256], got[256];
	int rc;

	if ((rc = ops->get_features(p, &sh->device_features)) < 0)
		return rc;
	if (c->mergeable < 0)
		want &= ~BIT64(VIRTIO_NET_F_MRG_RXBUF);
	if (c->event_idx < 0)
		want &= ~BIT64(VIRTIO_RING_F_EVENT_IDX);
	if (c->in_order < 0)
		want &= ~BIT64(VIRTIO_F_IN_ORDER);
	if (sh->nb_qp == 1)
		want &= ~BIT64(VIRTIO_NET_F_MQ);
	/* A PCI device behind an IOMMU: its DMA goes through the mappings
	 * the primary made (vfio), which it must be told to use. */
	if (sh->transport == VTNET_TR_PCI)
		want |= BIT64(VIRTIO_F_ACCESS_PLATFORM);
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
	return ops->set_features(p, sh->features);
}

int vtnet_port_create(struct mpops_region *r, const char *name, const struct vtnet_conf *conf,
		      struct vtnet_port **out)
{
	struct vtnet_conf cc = { 0 }, *c = &cc;	/* fields past the caller's sz read as 0 */
	struct mpops_pktpool_opts po = { .sz = sizeof(po) };
	static struct mpops_region *served;	/* the region our handlers serve */
	struct vtnet_port_shared *sh;
	struct vtnet_port *p = NULL;
	char root[MPOPS_NAME_MAX + 1];
	mpops_ops_id_t cls;
	mpops_off_t off;
	int rc;

	if (!r || !name || !out || strlen(name) > 16)
		return -EINVAL;
	if (mpops_region_role(r) != MPOPS_ROLE_PRIMARY) {
		vt_err("vtnet %s: ports are created by the primary; a secondary opens them with vtnet_port_open()",
		       name);
		return -EPERM;
	}
	if (conf && conf->sz > 0 && conf->sz <= sizeof(cc))
		memcpy(&cc, conf, conf->sz);
	if ((rc = conf_check(conf ? c : NULL, name)) < 0)
		return rc;
	root_name(root, sizeof(root), name);
	if (mpops_root_get(r, root, &off) == 0) {
		vt_err("vtnet %s: a port of that name exists", name);
		return -EEXIST;
	}
	if ((rc = mpops_alloc(r, sizeof(*sh), 64, root, &off)) < 0)
		return rc;
	if ((rc = port_alloc_handle(r, off, &p)) < 0)
		return rc;
	sh = p->sh;
	p->owner = 1;
	sh->magic = VTNET_MAGIC;
	sh->version = VTNET_VERSION;
	strlcpy(sh->name, name, sizeof(sh->name));
	sh->nb_qp = c->nb_qp ? c->nb_qp : 1;
	sh->ring_size = c->ring_size ? c->ring_size : 256;
	sh->primary_pid = getpid();
	sh->server = c->server;
	sh->transport = c->transport && strncmp(c->transport, "pci", 3) == 0 ? VTNET_TR_PCI
									    : VTNET_TR_USER;
	if (c->vhost_path)
		strlcpy(sh->vhost_path, c->vhost_path, sizeof(sh->vhost_path));
	if (sh->transport == VTNET_TR_USER && mpops_region_iova_mode(r) != MPOPS_IOVA_OFF) {
		vt_err("vtnet %s: a virtio-user port gives the backend region offsets as addresses: use a region without MPOPS_REGION_F_PHYS",
		       name);
		rc = -EINVAL;
		goto fail;
	}
	memcpy(sh->mac, c->mac, 6);
	if (!(sh->mac[0] | sh->mac[1] | sh->mac[2] | sh->mac[3] | sh->mac[4] | sh->mac[5])) {
		/* Locally administered, unicast, from the pid. */
		sh->mac[0] = 0x02;
		sh->mac[1] = 0x6d;
		sh->mac[2] = 0x70;
		sh->mac[3] = (uint8_t)(getpid() >> 16);
		sh->mac[4] = (uint8_t)(getpid() >> 8);
		sh->mac[5] = (uint8_t)getpid();
	}
	atomic_store(&sh->state, VTNET_CREATED);
	if (sh->transport == VTNET_TR_USER &&
	    (rc = mpops_ops_id(&mpops_impl_vtpci_user, &sh->ops_id)) < 0)
		goto fail;

	/* The pool: one per port, found again by name if the port is re-created. */
	po.count = c->pool_size ? c->pool_size : 8192;
	snprintf(root, sizeof(root), "vtnet.%.16s.pool", name);
	if (mpops_root_get(r, root, &sh->pool_off) < 0 &&
	    (rc = mpops_pktpool_create(r, root, &po, &sh->pool_off)) < 0)
		goto fail;
	if ((rc = mpops_pktpool_open(r, sh->pool_off, &p->pool)) < 0)
		goto fail;

	/* Once per region: the kick-fd handler and the exit callback. */
	if (served != r) {
		rc = mpops_channel_register(r, VTNET_MSG_KICKFDS, kickfds_handler, NULL);
		if (rc < 0 && rc != -EEXIST)
			goto fail;
		rc = mpops_channel_register(r, VTNET_MSG_VFIOFD, vfiofd_handler, NULL);
		if (rc < 0 && rc != -EEXIST)
			goto fail;
		mpops_proc_on_exit(r, on_proc_exit, NULL);
		served = r;
	}
	ports_add(p);
	/* The transport: connects or probes, and picks the ops (the PCI probe
	 * chooses legacy or modern from what the device offers). */
	if ((rc = tr(sh)->create(p, c)) < 0)
		goto fail_list;
#ifdef VTNET_ORIGIN_BUG
	sh->raw_ops = MPOPS_OPS(vtpci, sh->ops_id);
#endif
	if ((rc = negotiate(p, c)) < 0)
		goto fail_dev;
	for (uint16_t q = 0; q < sh->nb_qp; q++) {
		if ((rc = vq_create(p, (uint16_t)(2 * q), sh->ring_size)) < 0 ||
		    (rc = vq_create(p, (uint16_t)(2 * q + 1), sh->ring_size)) < 0)
			goto fail_dev;
	}
	if ((sh->features & BIT64(VIRTIO_NET_F_CTRL_VQ)) &&
	    (rc = vq_create(p, VTNET_CVQ(sh->max_qp), cvq_size(sh))) < 0)
		goto fail_dev;
	if ((rc = mpops_ops_id(&mpops_impl_mpops_obj_vtnet_port, &cls)) < 0 ||
	    (rc = mpops_obj_create(r, cls, p->sh_off, name, &sh->obj_id)) < 0)
		goto fail_dev;
	root_name(root, sizeof(root), name);
	if ((rc = mpops_root_set(r, root, p->sh_off)) < 0)
		goto fail_dev;
	*out = p;
	return 0;
fail_dev:
	tr(sh)->destroy(p);
fail_list:
	ports_del(p);
fail:
	if (p->pool)
		mpops_pktpool_close(p->pool);
	mpops_free(r, p->sh_off);
	free(p);
	return rc;
}

int vtnet_port_open(struct mpops_region *r, const char *name, struct vtnet_port **out)
{
	char root[MPOPS_NAME_MAX + 1];
	const struct vtpci_ops *ops;
	struct vtnet_port *p;
	mpops_off_t off;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	root_name(root, sizeof(root), name);
	if (mpops_root_get(r, root, &off) < 0) {
		vt_err("vtnet: no port '%s' in region '%s': has the primary created it?", name,
		       mpops_region_name(r));
		return -ENOENT;
	}
	if ((rc = port_alloc_handle(r, off, &p)) < 0)
		return rc;
	if (p->sh->magic != VTNET_MAGIC || p->sh->version != VTNET_VERSION) {
		vt_err("vtnet %s: shared port has version %u, this driver %u: rebuild both from the same sources",
		       name, p->sh->version, VTNET_VERSION);
		free(p);
		return -EPROTO;
	}
	if (p->sh->transport > VTNET_TR_PCI) {
		vt_err("vtnet %s: shared port names transport %u, unknown to this driver: rebuild both from the same sources",
		       name, p->sh->transport);
		free(p);
		return -EPROTO;
	}
	/* Checked once here; the fast path then indexes without checks. */
	if ((rc = mpops_ops_resolve_vtpci(p->sh->ops_id, &ops)) < 0) {
		free(p);
		return rc;
	}
	for (uint16_t i = 0; i < VTNET_MAX_VQ; i++)
		if (p->sh->vq_off[i])
			vq_map(p, i);
	/* A read-only handle (a dump tool) looks, it does not move packets. */
	if (mpops_region_is_writable(r) &&
	    (rc = mpops_pktpool_open(r, p->sh->pool_off, &p->pool)) < 0) {
		free(p);
		return rc;
	}
	ports_add(p);
	*out = p;
	return 0;
}

int vtnet_port_close(struct vtnet_port *p)
{
	if (!p)
		return -EINVAL;
	for (uint16_t q = 0; q < VTNET_MAX_QP; q++)
		if (p->qp[q].claimed)
			vtnet_queue_release(p, q);
	mpops_obj_release(p->r, p->sh->obj_id);
	if (p->owner) {
		char root[MPOPS_NAME_MAX + 1];

		if (atomic_load(&p->sh->state) == VTNET_STARTED)
			vtnet_port_stop(p);
		atomic_store(&p->sh->state, VTNET_CLOSED);
		vtnet_quiesce(p);
		tr(p->sh)->destroy(p);
		for (uint16_t i = 0; i < VTNET_MAX_VQ; i++) {
			struct vtnet_vq_shared *v = p->vq[i].sh;

			if (!v)
				continue;
			vq_drain(p, i, p->pool);
			mpops_free(p->r, v->desc_off);	/* the whole ring */
			mpops_free(p->r, v->cookie_off);
			mpops_free(p->r, v->inflight_off);
			if (v->scratch_off)
				mpops_free(p->r, v->scratch_off);
			mpops_free(p->r, p->sh->vq_off[i]);
		}
		mpops_obj_destroy(p->r, p->sh->obj_id);
		root_name(root, sizeof(root), p->sh->name);
		mpops_root_del(p->r, root);
		ports_del(p);
		mpops_pktpool_close(p->pool);
		mpops_free(p->r, p->sh_off);
	} else {
		ports_del(p);
		if (p->pool)
			mpops_pktpool_close(p->pool);
	}
	free(p);
	return 0;
}

/* ==== start and stop ==================================================== */

int vtnet_port_start(struct vtnet_port *p)
{
	struct vtnet_port_shared *sh;
	int rc;

	if (!p)
		return -EINVAL;
	sh = p->sh;
	if (!p->owner) {
		vt_err("vtnet %s: only the primary that created the port starts it", sh->name);
		return -EPERM;
	}
	if (atomic_load(&sh->state) == VTNET_STARTED)
		return 0;
	for (uint16_t q = 0; q < sh->nb_qp; q++) {
		if (vq_rx_fill(p, (uint16_t)(2 * q), p->pool) <= 0) {
			vt_err("vtnet %s: no packet buffers for rx queue %u: make the pool larger", sh->name,
			       q);
			return -ENOBUFS;
		}
	}
	if ((rc = tr(sh)->start(p)) < 0)
		return rc;
	/* Every process's cache goes stale before any burst can run again. */
	mpops_obj_bump_epoch(p->r, sh->obj_id);
	atomic_store(&sh->state, VTNET_STARTED);
	if (sh->features & BIT64(VIRTIO_NET_F_MQ)) {
		uint16_t pairs = sh->nb_qp;

		if ((rc = vq_ctrl_send(p, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
				       &pairs, sizeof(pairs))) < 0) {
			vtnet_port_stop(p);
			return rc;
		}
	}
	/* Tell a kick-driven device that rx buffers are waiting. */
	for (uint16_t q = 0; q < sh->nb_qp; q++)
		MPOPS_OPS(vtpci, sh->ops_id)->notify_queue(p, (uint16_t)(2 * q));
	return 0;
}

int vtnet_port_stop(struct vtnet_port *p)
{
	if (!p)
		return -EINVAL;
	if (!p->owner) {
		vt_err("vtnet %s: only the primary that created the port stops it", p->sh->name);
		return -EPERM;
	}
	/* Started, or stopped under us (backend gone, device reset): take the
	 * rings back either way. */
	if (atomic_load(&p->sh->state) != VTNET_STARTED &&
	    atomic_load(&p->sh->state) != VTNET_RESETTING)
		return 0;
	atomic_store(&p->sh->state, VTNET_STOPPED);
	vtnet_quiesce(p);
	tr(p->sh)->stop(p);
	for (uint16_t i = 0; i < VTNET_MAX_VQ; i++)
		if (p->vq[i].sh)
			vq_drain(p, i, p->pool);
	mpops_obj_bump_epoch(p->r, p->sh->obj_id);
	return 0;
}

/* ==== claims ============================================================ */

int vtnet_queue_claim(struct vtnet_port *p, uint16_t qp)
{
	struct vtnet_claim_shared *c;
	int32_t me = getpid(), cur = 0;
	int rc;

	if (!p)
		return -EINVAL;
	if (qp >= p->sh->nb_qp) {
		vt_err("vtnet %s: no queue pair %u (the port has %u)", p->sh->name, qp, p->sh->nb_qp);
		return -ERANGE;
	}
	if (!p->pool) {
		vt_err("vtnet %s: a read-only attach cannot claim queues", p->sh->name);
		return -EROFS;
	}
	c = &p->sh->claims[qp];
	while (!atomic_compare_exchange_strong(&c->pid, &cur, me)) {
		if (cur == me)
			break;
		if (mpops_proc_alive(cur, c->start_time)) {
			vt_err("vtnet %s: queue pair %u is claimed by pid %d: pick another one",
			       p->sh->name, qp, (int)cur);
			return -EBUSY;
		}
		vt_info("vtnet %s: queue pair %u: its owner pid %d is gone: taking it over",
			p->sh->name, qp, (int)cur);
		/* cur holds the dead pid: the next CAS replaces exactly it. */
		atomic_store(&p->vq[2 * qp].sh->busy, 0);
	}
	c->start_time = mpops_proc_start_time(me);
	p->qp[qp].claimed = 1;
	p->qp[qp].slot = NULL;
	p->qp[qp].slot_epoch = 0;
	if ((rc = vtnet_qp_refresh(p, qp)) < 0 && rc != -ENOTCONN) {
		vtnet_queue_release(p, qp);
		return rc;
	}
	return 0;
}

int vtnet_queue_release(struct vtnet_port *p, uint16_t qp)
{
	int32_t me = getpid();

	if (!p)
		return -EINVAL;
	if (qp >= VTNET_MAX_QP)
		return -ERANGE;
	if (!atomic_compare_exchange_strong(&p->sh->claims[qp].pid, &me, 0))
		return -EPERM;
	p->qp[qp].claimed = 0;
	return 0;
}

/* ==== facts ============================================================= */

struct mpops_pktpool *vtnet_pool(struct vtnet_port *p)
{
	return p ? p->pool : NULL;
}

int vtnet_link_get(struct vtnet_port *p, struct vtnet_link *l)
{
	if (!p || !l)
		return -EINVAL;
	l->up = atomic_load(&p->sh->link_up) && atomic_load(&p->sh->state) == VTNET_STARTED;
	l->changes = atomic_load(&p->sh->link_changes);
	l->reconnects = atomic_load(&p->sh->reconnects);
	return 0;
}

static void vq_stats(const struct vtnet_vq *q, struct vtnet_queue_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!q->sh)
		return;
	st->packets = q->sh->packets;
	st->bytes = q->sh->bytes;
	st->errors = q->sh->errors;
	st->drops = q->sh->drops;
	st->kicks = q->sh->kicks;
}

int vtnet_stats_get(struct vtnet_port *p, uint16_t qp, struct vtnet_queue_stats *rx,
		    struct vtnet_queue_stats *tx)
{
	if (!p)
		return -EINVAL;
	if (qp >= p->sh->nb_qp)
		return -ERANGE;
	if (rx)
		vq_stats(&p->vq[2 * qp], rx);
	if (tx)
		vq_stats(&p->vq[2 * qp + 1], tx);
	return 0;
}

int vtnet_info_get(struct vtnet_port *p, struct vtnet_info *info)
{
	char cls[MPOPS_OPS_NAME_MAX + 1] = "?", impl[MPOPS_OPS_NAME_MAX + 1] = "?";
	struct vtnet_port_shared *sh;

	if (!p || !info)
		return -EINVAL;
	sh = p->sh;
	memset(info, 0, sizeof(*info));
	strlcpy(info->name, sh->name, sizeof(info->name));
	info->device_features = sh->device_features;
	info->features = sh->features;
	memcpy(info->mac, sh->mac, 6);
	info->nb_qp = sh->nb_qp;
	info->max_qp = sh->max_qp;
	info->ring_size = sh->ring_size;
	info->hdr_size = sh->hdr_size;
	info->mtu = sh->mtu;
	info->ops_id = sh->ops_id;
	mpops_ops_name(sh->ops_id, cls, impl);
	snprintf(info->transport, sizeof(info->transport), "%s/%s", cls, impl);
	info->ops_local = MPOPS_OPS(vtpci, sh->ops_id);
	info->started = atomic_load(&sh->state) == VTNET_STARTED;
	info->primary_pid = sh->primary_pid;
	for (int q = 0; q < VTNET_MAX_QP; q++)
		info->owner_pid[q] = atomic_load(&sh->claims[q].pid);
	return 0;
}

int vtnet_vq_info_get(struct vtnet_port *p, uint16_t vq, struct vtnet_vq_info *info)
{
	struct vtnet_vq *q;

	if (!p || !info)
		return -EINVAL;
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
	return 0;
}
