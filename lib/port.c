/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ports: the shared port header, open by name, claims, the per-process
 * fast-path table and its rebuild, start/stop with the wait for bursts in
 * every process, link and counters, the per-process slot, and a driver's
 * fds over the control channel. Drivers plug in through the ops class
 * mpops_port_drv (port_driver.h).
 *
 * Epoch: the port's per-process slot is an mpops object, and its epoch is
 * the port's. It moves (stop, start, device lost or back, close) before
 * bursts may run on what it invalidates and only while no burst can still
 * use the old state. Every cache a process keeps for the port (its slot,
 * its fast-path entries) records the epoch it was built at.
 *
 * The busy protocol: a burst stores 1 in its queue pair's busy word, then
 * loads the epoch; the primary stores the epoch, then runs membarrier(2),
 * then waits for busy words to clear. The membarrier makes every CPU that
 * runs an attached process execute a full barrier, so either the burst
 * saw the new epoch, or the primary sees its busy word: no fence on the
 * fast path (the asymmetric pattern liburcu uses).
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <mpops/port_driver.h>

#include "pkt_priv.h"
#include "region_priv.h"

_Static_assert(MPOPS_PKTPOOL_CENSUS_QP == MPOPS_PORT_MAX_QP, "census by queue pair");

MPOPS_OPS_CLASS_DEFINE(mpops_port_drv, MPOPS_PORT_DRV_OPS)

#define PORT_MAGIC 0x54524f50u /* "PORT" */
#define PORT_VERSION 1
#define PORT_NAME_MAX 20

enum port_state {
	PORT_CREATED = 1,
	PORT_STARTED = 2,
	PORT_STOPPED = 3,
	PORT_LOST = 4,		/* device gone: bursts return 0 until restored or restarted */
	PORT_CLOSED = 5,	/* creator closed it; the header stays for stale handles */
};

struct port_claim_shared {
	_Atomic int32_t pid;		/* owner, 0 = free */
	uint32_t busy;			/* owner inside a burst (see the busy protocol) */
	uint32_t epoch;			/* the port's epoch, mirrored beside busy so that a
					   burst reads one line (written by the primary) */
	_Atomic int32_t orphan;		/* a dead owner the primary released the claim
					   of: the next owner repairs its queues */
	uint64_t start_time;		/* owner's, to tell a reused pid */
	uint64_t pad[5];		/* one cache line each: owners write busy */
};
_Static_assert(offsetof(struct port_claim_shared, epoch) ==
	       offsetof(struct port_claim_shared, busy) + 4, "busy[1] is the epoch");
_Static_assert(sizeof(struct port_claim_shared) == 64, "claim layout");

struct port_shared {
	uint32_t magic;
	uint32_t version;
	char name[MPOPS_NAME_MAX + 1];
	char driver[MPOPS_OPS_NAME_MAX + 1];	/* for tools */
	_Atomic uint32_t state;			/* enum port_state */
	mpops_ops_id_t drv_id;			/* class mpops_port_drv */
	uint16_t nb_qp;
	uint16_t mtu;
	uint16_t tx_headroom;
	uint8_t mac[6];
	_Atomic uint16_t link_up;
	_Atomic uint32_t link_changes;
	_Atomic uint32_t reconnects;
	int32_t primary_pid;
	mpops_obj_id_t obj_id;			/* per-process slot and the epoch */
	uint32_t drv_size;
	mpops_off_t pool_off;
	mpops_off_t drv_off;
	uint64_t pad[8];
	struct port_claim_shared claims[MPOPS_PORT_MAX_QP];
	struct mpops_port_queue_stats stats[MPOPS_PORT_MAX_QP][2];
};
_Static_assert(offsetof(struct port_shared, claims) % 64 == 0, "claims on their own lines");
_Static_assert(sizeof(struct port_shared) == 64 * 3 + 64 * MPOPS_PORT_MAX_QP +
					     40 * 2 * MPOPS_PORT_MAX_QP, "port layout");

/* Log-once bits of a handle. */
enum {
	LOG_NOT_CLAIMED = 1u << 0,
	LOG_CLAIM_LOST = 1u << 1,
	LOG_REBUILD = 1u << 2,
};

struct mpops_port {
	struct mpops__port_fp fp;	/* first: the inline burst reads it */
	struct mpops_region *r;
	void *base;
	struct port_shared *sh;
	mpops_off_t sh_off;
	const struct mpops_port_drv_ops *drv;	/* this process's table */
	void *priv;			/* the driver's handle */
	struct mpops_pktpool *pool;
	int creator;
	int published;
	uint8_t claimed[MPOPS_PORT_MAX_QP];
	/* busy and epoch words of an unclaimed entry: an epoch no entry has */
	uint32_t idle_busy[MPOPS_PORT_MAX_QP][2];
	_Atomic uint32_t logged;
	struct mpops_port *next;	/* the region's open ports in this process */
};

static void log_once(struct mpops_port *p, uint32_t bit, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void log_once(struct mpops_port *p, uint32_t bit, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (atomic_fetch_or(&p->logged, bit) & bit)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_err("%s", line);
}

static void root_name(char *buf, size_t len, const char *name, const char *suffix)
{
	snprintf(buf, len, "port.%.20s%s", name, suffix);
}

/* ==== this process's open ports ========================================= */

/* The primary is gone (the region's hook, on its watch thread): every
 * claimed queue pair of this process goes to the slow path, which returns
 * 0 from now on. */
static void ports_primary_gone(struct mpops_region *r)
{
	pthread_mutex_lock(&r->ports_mu);
	for (struct mpops_port *p = r->ports; p; p = p->next)
		for (int q = 0; q < MPOPS_PORT_MAX_QP; q++)
			__atomic_store_n(&p->fp.q[q].epoch, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&r->ports_mu);
}

static void ports_add(struct mpops_port *p)
{
	pthread_mutex_lock(&p->r->ports_mu);
	p->next = p->r->ports;
	p->r->ports = p;
	p->r->ports_primary_gone = ports_primary_gone;
	pthread_mutex_unlock(&p->r->ports_mu);
}

static void ports_del(struct mpops_port *p)
{
	pthread_mutex_lock(&p->r->ports_mu);
	for (struct mpops_port **pp = &p->r->ports; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&p->r->ports_mu);
}

/* This process's handle of the shared port at @sh (the creator's first). */
static struct mpops_port *ports_find(struct mpops_region *r, const void *sh, const char *name)
{
	struct mpops_port *p, *found = NULL;

	pthread_mutex_lock(&r->ports_mu);
	for (p = r->ports; p; p = p->next) {
		if ((sh && p->sh != sh) || (name && strcmp(p->sh->name, name) != 0))
			continue;
		if (!found || p->creator)
			found = p;
	}
	pthread_mutex_unlock(&r->ports_mu);
	return found;
}

/* Does this process hold another handle of @p's port? */
static int ports_other(struct mpops_port *p)
{
	int found = 0;

	pthread_mutex_lock(&p->r->ports_mu);
	for (struct mpops_port *o = p->r->ports; o && !found; o = o->next)
		found = o != p && o->sh == p->sh;
	pthread_mutex_unlock(&p->r->ports_mu);
	return found;
}

/* ==== the per-process slot (an mpops object) ============================ */

static int slot_attach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void **slot)
{
	struct mpops_port *p = ports_find(r, shared, NULL);

	(void)id;
	if (!p) {
		log_err("region '%s': a port slot was asked for with no open handle in this process",
			r->name);
		return -ENOENT;
	}
	return p->drv->slot_attach(p, slot);
}

static int slot_detach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void *slot)
{
	struct mpops_port *p = ports_find(r, shared, NULL);

	(void)id;
	if (!p) {
		log_warn("region '%s': a port slot outlived its handles: its resources leak until exit",
			 r->name);
		return -ENOENT;
	}
	return p->drv->slot_detach(p, slot);
}

static const struct mpops_obj_ops slot_ops = { .attach = slot_attach, .detach = slot_detach };
MPOPS_OPS_IMPL(mpops_obj, mpops_port, &slot_ops)

int mpops_port_slot(struct mpops_port *p, void **slot, uint32_t *epoch)
{
	uint32_t ep = __atomic_load_n(p->fp.epoch, __ATOMIC_ACQUIRE);
	int rc = mpops_obj_slot(p->r, p->sh->obj_id, slot);

	if (rc == 0 && epoch)
		*epoch = ep;	/* read first: if it moved meanwhile, callers look again */
	return rc;
}

uint32_t mpops_port_epoch(struct mpops_port *p)
{
	return __atomic_load_n(p->fp.epoch, __ATOMIC_RELAXED);
}

/* ==== epoch, membarrier, waiting for bursts ============================= */

/* Every process registers once, at its first open; without it the
 * expedited barrier skips the process. */
static void membarrier_register(void)
{
	static _Atomic int done;

	if (atomic_exchange(&done, 1) == 0 &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) < 0)
		log_warn("membarrier(REGISTER_GLOBAL_EXPEDITED) failed (%s): stopping a port falls back to the slower global barrier",
			 strerror(errno));
}

/* A full barrier on every CPU running an attached process. */
static void barrier_all(void)
{
	static _Atomic int warned;

	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0 ||
	    syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
		return;
	if (!atomic_exchange(&warned, 1))
		log_warn("membarrier(2) is not available (%s): stopping a port waits 20 ms instead",
			 strerror(errno));
	nanosleep(&(struct timespec){ 0, 20 * 1000000 }, NULL);
}

/* Copy @ep beside every claim's busy word, where bursts read it. */
static void epoch_mirror(struct port_shared *sh, uint32_t ep)
{
	for (int q = 0; q < MPOPS_PORT_MAX_QP; q++)
		__atomic_store_n(&sh->claims[q].epoch, ep, __ATOMIC_RELEASE);
}

static void epoch_move(struct mpops_port *p)
{
	int64_t ep = mpops_obj_bump_epoch(p->r, p->sh->obj_id);

	if (ep > 0)
		epoch_mirror(p->sh, (uint32_t)ep);
}

/* Wait until no process is inside a burst of the port. A process that
 * died inside one never leaves it: its busy word is cleared. @return 0, or
 * -ETIMEDOUT a live process stayed inside one (logged). */
static int bursts_wait(struct mpops_port *p)
{
	struct timespec ts = { 0, 100000 };
	int rc = 0;

	barrier_all();
	for (uint16_t q = 0; q < p->sh->nb_qp; q++) {
		struct port_claim_shared *c = &p->sh->claims[q];

		for (int i = 0; __atomic_load_n(&c->busy, __ATOMIC_ACQUIRE); i++) {
			int32_t owner = atomic_load(&c->pid);

			if (!owner || !mpops_proc_alive(owner, c->start_time)) {
				__atomic_store_n(&c->busy, 0, __ATOMIC_RELEASE);
				break;
			}
			if (i == 20000) {	/* 2 s: a burst takes microseconds */
				log_err("port %s: pid %d stayed inside a burst on queue pair %u for 2 s: going on without it",
					p->sh->name, (int)owner, q);
				rc = -ETIMEDOUT;
				break;
			}
			nanosleep(&ts, NULL);
		}
	}
	return rc;
}

/* The port's number in the marks on its buffers (pkt_priv.h). */
static uint32_t ring_id(const struct mpops_port *p)
{
	return (p->sh->obj_id & 0xffffu) + 1;
}

/* ==== the primary's side of the channel ================================= */

/* A process asks for the fds of a port's driver. */
static int fds_handler(struct mpops_region *r, const struct mpops_msg *req,
		       struct mpops_msg *reply, void *arg)
{
	int fds[MPOPS_PORT_FDS_MAX], n, rc;
	struct mpops_port *p;

	(void)arg;
	if (req->len == 0 || req->len > MPOPS_NAME_MAX + 1 || req->data[req->len - 1] != '\0') {
		log_err("region '%s': malformed port fd request from pid %d: dropped", r->name,
			(int)req->peer_pid);
		return -EBADMSG;
	}
	p = ports_find(r, NULL, (const char *)req->data);
	if (!p || !p->creator) {
		log_err("region '%s': pid %d asked for the fds of port '%s', which this primary has not created",
			r->name, (int)req->peer_pid, (const char *)req->data);
		return -ENOENT;
	}
	if ((n = p->drv->fds_export(p, fds, MPOPS_PORT_FDS_MAX)) < 0)
		return n;
	for (int i = 0; i < n; i++)
		if ((rc = mpops_msg_add_fd(reply, fds[i])) < 0)
			return rc;
	return 0;
}

/* A process left or died: free its claims on the ports this primary made. */
static void on_proc_exit(struct mpops_region *r, const struct mpops_proc_info *info, int died,
			 void *arg)
{
	(void)arg;
	pthread_mutex_lock(&r->ports_mu);
	for (struct mpops_port *p = r->ports; p; p = p->next) {
		if (!p->creator)
			continue;
		for (uint16_t q = 0; q < MPOPS_PORT_MAX_QP; q++) {
			struct port_claim_shared *c = &p->sh->claims[q];
			int32_t pid = info->pid;

			if (atomic_load(&c->pid) != pid)
				continue;
			/* Said before the claim is free: whoever takes it next
			 * repairs what the owner may have left half done. */
			atomic_store(&c->orphan, pid);
			if (atomic_compare_exchange_strong(&c->pid, &pid, 0)) {
				__atomic_store_n(&c->busy, 0, __ATOMIC_RELEASE);
				log_info("port %s: queue pair %u released: its owner pid %d %s",
					 p->sh->name, q, (int)info->pid, died ? "died" : "left");
			} else {
				/* Taken over meanwhile: the taker repaired it. */
				pid = info->pid;
				atomic_compare_exchange_strong(&c->orphan, &pid, 0);
			}
		}
	}
	pthread_mutex_unlock(&r->ports_mu);
}

static int serve_once(struct mpops_region *r)
{
	int rc = 0;

	pthread_mutex_lock(&r->ports_mu);
	if (!r->ports_served) {
		if ((rc = chan_register(r, MSG_PORT_FDS, fds_handler, NULL)) == 0 &&
		    (rc = mpops_proc_on_exit(r, on_proc_exit, NULL)) == 0)
			r->ports_served = 1;
	}
	pthread_mutex_unlock(&r->ports_mu);
	return rc == -EEXIST ? 0 : rc;
}

int mpops_port_fds_get(struct mpops_port *p, int *fds, int max)
{
	struct mpops_msg *req, *rep;
	int n = 0, rc;

	if (!p || !fds || max < 0)
		return -EINVAL;
	if (p->creator) {
		int own[MPOPS_PORT_FDS_MAX];

		if ((rc = p->drv->fds_export(p, own, MPOPS_PORT_FDS_MAX)) < 0)
			return rc;
		if (rc > max)
			return -EBADMSG;
		for (n = 0; n < rc; n++) {
			if ((fds[n] = dup(own[n])) < 0) {
				rc = -errno;
				while (n > 0)
					close(fds[--n]);
				return rc;
			}
		}
		return n;
	}
	req = calloc(1, sizeof(*req));
	rep = calloc(1, sizeof(*rep));
	if (!req || !rep) {
		rc = -ENOMEM;
		goto out;
	}
	req->type = MSG_PORT_FDS;
	req->len = (uint32_t)strlen(p->sh->name) + 1;
	memcpy(req->data, p->sh->name, req->len);
	if ((rc = mpops_channel_request(p->r, req, rep, 0)) < 0)
		goto out;
	if (rep->nfds > (uint32_t)max) {
		log_err("port %s: the primary sent %u fds, the driver takes %d: are both built from the same sources?",
			p->sh->name, rep->nfds, max);
		rc = -EBADMSG;
		goto out;
	}
	for (; n < (int)rep->nfds; n++) {
		fds[n] = rep->fds[n];
		rep->fds[n] = -1;
	}
	rc = n;
out:
	if (rep)
		mpops_msg_clear(rep);
	free(req);
	free(rep);
	if (rc < 0)
		log_err("port %s: cannot get this process's copies of the driver's fds from the primary: %s",
			p->sh->name, strerror(-rc));
	return rc;
}

/* ==== create, open, close =============================================== */

/* Every op must be there: the fast path and the library never check. */
static int drv_check(const struct mpops_port_drv_ops *d, const char *drv, const char *port)
{
	static const char *names[] = { "open", "close", "start", "stop", "slot_attach",
				       "slot_detach", "fds_export", "queue_setup",
				       "queue_takeover" };
	const void *const *fn = (const void *const *)d;

	_Static_assert(sizeof(names) / sizeof(names[0]) ==
		       sizeof(struct mpops_port_drv_ops) / sizeof(void *), "op names");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!fn[i]) {
			log_err("port %s: driver %s leaves op '%s' empty: a port driver must fill every op",
				port, drv, names[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* An entry nobody claimed: its epoch never matches, so bursts go slow. */
static void idle_reset(struct mpops_port *p, uint16_t qp)
{
	p->idle_busy[qp][0] = 0;
	p->idle_busy[qp][1] = UINT32_MAX;
	p->fp.q[qp].epoch = 0;
	p->fp.q[qp].busy = p->idle_busy[qp];
	p->fp.q[qp].qp = qp;
	p->fp.q[qp].port = p;
}

static struct mpops_port *handle_new(struct mpops_region *r, mpops_off_t off)
{
	struct mpops_port *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->r = r;
	p->base = mpops_region_base(r);
	p->sh_off = off;
	p->sh = mpops_ptr(p->base, off);
	for (int q = 0; q < MPOPS_PORT_MAX_QP; q++)
		idle_reset(p, (uint16_t)q);
	return p;
}

/* Resolve the driver and the epoch, open the pool and the driver handle. */
static int handle_open(struct mpops_port *p)
{
	const struct mpops_port_drv_ops *drv;
	int rc;

	if ((rc = mpops_ops_resolve_mpops_port_drv(p->sh->drv_id, &drv)) < 0) {
		log_err("port %s: its driver '%s' is not usable in this process: link the driver",
			p->sh->name, p->sh->driver);
		return rc == -ENOENT ? -ENOENT : -EPROTO;
	}
	if ((rc = drv_check(drv, p->sh->driver, p->sh->name)) < 0)
		return rc;
	p->drv = drv;
	if ((rc = mpops_obj_epoch_ref(p->r, p->sh->obj_id, &p->fp.epoch)) < 0)
		return rc;
	/* A read-only handle (a dump tool) looks; it does not move packets. */
	if (mpops_region_is_writable(p->r) &&
	    (rc = mpops_pktpool_open(p->r, p->sh->pool_off, &p->pool)) < 0)
		return rc;
	membarrier_register();
	ports_add(p);
	if ((rc = drv->open(p, &p->priv)) < 0) {
		ports_del(p);
		if (p->pool)
			mpops_pktpool_close(p->pool);
		p->pool = NULL;
		return rc;
	}
	return 0;
}

static int conf_check(const struct mpops_port_conf *c, const char *name)
{
	if (!c || c->sz < offsetof(struct mpops_port_conf, drv_size) + sizeof(c->drv_size)) {
		log_err("port %s: struct mpops_port_conf needs .sz = sizeof(struct mpops_port_conf)",
			name ? name : "?");
		return -EINVAL;
	}
	if (!name || !*name || strlen(name) > PORT_NAME_MAX) {
		log_err("port '%s': a port name has 1 to %d characters", name ? name : "(null)",
			PORT_NAME_MAX);
		return -EINVAL;
	}
	if (c->nb_qp == 0 || c->nb_qp > MPOPS_PORT_MAX_QP) {
		log_err("port %s: %u queue pairs asked, a port has 1 to %d", name, c->nb_qp,
			MPOPS_PORT_MAX_QP);
		return -EINVAL;
	}
	return 0;
}

/* The header for @name: a closed one of that name is reused (stale handles
 * of other processes may still read it), else a new one. */
static int header_get(struct mpops_region *r, const char *name, mpops_off_t *off)
{
	char root[MPOPS_NAME_MAX + 1];
	struct port_shared *sh;
	int rc;

	root_name(root, sizeof(root), name, "");
	if (mpops_root_get(r, root, off) == 0) {
		sh = mpops_ptr(mpops_region_base(r), *off);
		if (sh->magic != PORT_MAGIC || atomic_load(&sh->state) != PORT_CLOSED) {
			log_err("port %s: a port of that name exists in region '%s'", name,
				mpops_region_name(r));
			return -EEXIST;
		}
		return 0;
	}
	if ((rc = mpops_alloc(r, sizeof(*sh), 64, root, off)) < 0)
		return rc;
	memset(mpops_ptr(mpops_region_base(r), *off), 0, sizeof(*sh));
	return 0;
}

/*
 * The creator is done with the header. One that was published stays,
 * closed, for stale handles in other processes (their bursts read its state
 * and return 0; their epoch never matches again), and is reused when a port
 * of that name is created again. One nobody saw is freed.
 */
static void header_drop(struct mpops_port *p, int published)
{
	struct port_shared *sh = p->sh;

	atomic_store(&sh->state, PORT_CLOSED);
	if (published)
		return;
	if (sh->obj_id)
		mpops_obj_destroy(p->r, sh->obj_id);
	if (sh->drv_off)
		mpops_free(p->r, sh->drv_off);
	mpops_free(p->r, p->sh_off);
}

int mpops_port_create(struct mpops_region *r, const char *name, const struct mpops_ops_impl *drv,
		      const struct mpops_port_conf *conf, struct mpops_port **out)
{
	struct mpops_pktpool_opts po = { .sz = sizeof(po) };
	struct mpops_port_conf c = { 0 };
	char root[MPOPS_NAME_MAX + 1];
	struct port_shared *sh;
	struct mpops_port *p;
	mpops_ops_id_t obj_cls;
	mpops_off_t off;
	pid_t me = getpid();
	int rc, reused;

	if (!r || !drv || !out)
		return -EINVAL;
	if (conf && conf->sz > 0)
		memcpy(&c, conf, conf->sz < sizeof(c) ? conf->sz : sizeof(c));
	if ((rc = conf_check(conf ? &c : NULL, name)) < 0)
		return rc;
	if (mpops_region_role(r) != MPOPS_ROLE_PRIMARY) {
		log_err("port %s: ports are created by the primary; a secondary opens them with mpops_port_open()",
			name);
		return -EPERM;
	}
	if (drv->cls != &mpops_class_mpops_port_drv) {
		log_err("port %s: '%s' is not a port driver (register it with MPOPS_OPS_IMPL(mpops_port_drv, ...))",
			name, drv->name);
		return -EINVAL;
	}
	if ((rc = drv_check(drv->ops, drv->name, name)) < 0)
		return rc;
	if ((rc = serve_once(r)) < 0 || (rc = header_get(r, name, &off)) < 0)
		return rc;
	if (!(p = handle_new(r, off)))
		return -ENOMEM;
	sh = p->sh;
	reused = sh->magic == PORT_MAGIC;
	p->creator = 1;
	if ((rc = mpops_ops_id(drv, &sh->drv_id)) < 0)
		goto fail;
	strlcpy(sh->driver, drv->name, sizeof(sh->driver));
	strlcpy(sh->name, name, sizeof(sh->name));
	sh->nb_qp = c.nb_qp;
	sh->mtu = c.mtu ? c.mtu : 1500;
	sh->tx_headroom = c.tx_headroom;
	sh->primary_pid = me;
	memcpy(sh->mac, c.mac, 6);
	if (!(c.mac[0] | c.mac[1] | c.mac[2] | c.mac[3] | c.mac[4] | c.mac[5])) {
		/* Locally administered, unicast, from the pid. */
		const uint8_t mac[6] = { 0x02, 0x6d, 0x70, (uint8_t)(me >> 16), (uint8_t)(me >> 8),
					 (uint8_t)me };

		memcpy(sh->mac, mac, 6);
	}
	atomic_store(&sh->link_up, 0);
	atomic_store(&sh->link_changes, 0);
	atomic_store(&sh->reconnects, 0);
	memset(sh->claims, 0, sizeof(sh->claims));
	memset(sh->stats, 0, sizeof(sh->stats));
	/* The driver's block, new each time: the old one's users are gone. */
	if (reused && sh->drv_off)
		mpops_free(r, sh->drv_off);
	sh->drv_off = 0;
	sh->drv_size = c.drv_size;
	root_name(root, sizeof(root), name, ".drv");
	if (c.drv_size) {
		if ((rc = mpops_alloc(r, c.drv_size, 64, root, &sh->drv_off)) < 0)
			goto fail;
		memset(mpops_ptr(p->base, sh->drv_off), 0, c.drv_size);
	}
	/* The pool, found again by name when the port is made again. */
	po.count = c.pool_size ? c.pool_size : 8192;
	po.buf_size = c.buf_size;
	po.headroom = c.headroom;
	po.data_align = c.buf_align;
	root_name(root, sizeof(root), name, ".pool");
	if (mpops_root_get(r, root, &sh->pool_off) < 0 &&
	    (rc = mpops_pktpool_create(r, root, &po, &sh->pool_off)) < 0)
		goto fail;
	/* The slot object: kept across close and create, so that its epoch
	 * only ever grows and a stale handle's cache never matches again. */
	if (!reused) {
		if ((rc = mpops_ops_id(&mpops_impl_mpops_obj_mpops_port, &obj_cls)) < 0 ||
		    (rc = mpops_obj_create(r, obj_cls, off, name, &sh->obj_id)) < 0)
			goto fail;
		epoch_mirror(sh, 1);	/* a new object's epoch */
	} else {
		epoch_move(p);
	}
	p->published = reused;
	sh->magic = PORT_MAGIC;
	sh->version = PORT_VERSION;
	atomic_store(&sh->state, PORT_CREATED);
	if ((rc = handle_open(p)) < 0)
		goto fail;
	*out = p;
	return 0;
fail:
	header_drop(p, reused);
	free(p);
	return rc;
}

int mpops_port_publish(struct mpops_port *p)
{
	char root[MPOPS_NAME_MAX + 1];
	int rc;

	if (!p || !p->creator)
		return -EPERM;
	root_name(root, sizeof(root), p->sh->name, "");
	if (!p->published && (rc = mpops_root_set(p->r, root, p->sh_off)) < 0)
		return rc;
	p->published = 1;
	return 0;
}

int mpops_port_open(struct mpops_region *r, const char *name, struct mpops_port **out)
{
	char root[MPOPS_NAME_MAX + 1];
	struct mpops_port *p;
	mpops_off_t off;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	root_name(root, sizeof(root), name, "");
	if (mpops_root_get(r, root, &off) < 0) {
		log_err("port %s: no such port in region '%s': has the primary created it?", name,
			mpops_region_name(r));
		return -ENOENT;
	}
	if (!(p = handle_new(r, off)))
		return -ENOMEM;
	if (p->sh->magic != PORT_MAGIC || p->sh->version != PORT_VERSION) {
		log_err("port %s: shared port has version %u, this library %u: rebuild both from the same sources",
			name, p->sh->version, PORT_VERSION);
		free(p);
		return -EPROTO;
	}
	if (atomic_load(&p->sh->state) == PORT_CLOSED) {
		log_err("port %s: the primary closed it: wait until it is created again", name);
		free(p);
		return -ENOENT;
	}
	if ((rc = handle_open(p)) < 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int mpops_port_close(struct mpops_port *p)
{
	struct port_shared *sh;

	if (!p)
		return -EINVAL;
	sh = p->sh;
	for (uint16_t q = 0; q < MPOPS_PORT_MAX_QP; q++)
		if (p->claimed[q])
			mpops_port_release(p, q);
	if (p->creator) {
		uint32_t st = atomic_load(&sh->state);

		if (st == PORT_STARTED || st == PORT_LOST)
			mpops_port_stop(p);
		/* Every other process's bursts return 0 from now on. */
		atomic_store(&sh->state, PORT_CLOSED);
		epoch_move(p);
		bursts_wait(p);
		for (uint16_t q = 0; q < MPOPS_PORT_MAX_QP; q++)
			atomic_store(&sh->claims[q].pid, 0);
	}
	/* The slot is per process: it goes with the last handle here. */
	if (!ports_other(p))
		mpops_obj_release(p->r, sh->obj_id);
	p->drv->close(p, p->priv);
	ports_del(p);
	if (p->pool)
		mpops_pktpool_close(p->pool);
	if (p->creator)
		header_drop(p, p->published);
	free(p);
	return 0;
}

/* ==== start and stop ==================================================== */

static int creator_only(struct mpops_port *p, const char *what)
{
	if (!p)
		return -EINVAL;
	if (!p->creator) {
		log_err("port %s: only the primary that created the port %s it", p->sh->name, what);
		return -EPERM;
	}
	return 0;
}

int mpops_port_start(struct mpops_port *p)
{
	int rc;

	if ((rc = creator_only(p, "starts")) < 0)
		return rc;
	if (atomic_load(&p->sh->state) == PORT_STARTED)
		return 0;
	/* What the driver posts now is its rings' (no queue pair recorded). */
	*pktpool_cur_ref(p->pool) = pktpool_ring_anyq(ring_id(p));
	rc = p->drv->start(p);
	*pktpool_cur_ref(p->pool) = pktpool_own(p->pool);
	if (rc < 0)
		return rc;
	/* Caches go stale before any burst can run again. */
	epoch_move(p);
	atomic_store(&p->sh->state, PORT_STARTED);
	return 0;
}

int mpops_port_stop(struct mpops_port *p)
{
	uint32_t st;
	int rc;

	if ((rc = creator_only(p, "stops")) < 0)
		return rc;
	st = atomic_load(&p->sh->state);
	/* Started, or lost under us: the driver takes the rings back either way. */
	if (st != PORT_STARTED && st != PORT_LOST)
		return 0;
	atomic_store(&p->sh->state, PORT_STOPPED);
	epoch_move(p);
	rc = bursts_wait(p);
	p->drv->stop(p);
	/* The rings are empty now: what is still marked as on them was left
	 * by a burst whose process died inside. Not while a live one may
	 * still be inside a burst, with its buffers marked so. */
	if (rc == 0 && (rc = pktpool_recover_rings(p->pool, ring_id(p), -1, 0, NULL, 0)) > 0)
		log_warn("port %s: %d packet buffers were left between a burst and the device by processes that died inside one: given back to the pool",
			 p->sh->name, rc);
	return 0;
}

int mpops_port_lost(struct mpops_port *p, const char *why)
{
	uint32_t st = PORT_STARTED;

	if (!atomic_compare_exchange_strong(&p->sh->state, &st, PORT_LOST))
		return -EALREADY;
	/* Said before the wait: a process stuck in a burst delays only the wait. */
	if (why)
		log_warn("port %s: %s", p->sh->name, why);
	mpops_port_link_set(p, 0);
	epoch_move(p);
	bursts_wait(p);
	return 0;
}

int mpops_port_restored(struct mpops_port *p)
{
	uint32_t st = PORT_LOST;

	/* Only from lost: a stop since then stays a stop. */
	if (atomic_load(&p->sh->state) != PORT_LOST)
		return -EALREADY;
	epoch_move(p);
	if (!atomic_compare_exchange_strong(&p->sh->state, &st, PORT_STARTED))
		return -EALREADY;
	mpops_port_connected(p);
	mpops_port_link_set(p, 1);
	return 0;
}

int mpops_port_bufs_kept(struct mpops_port *p, uint16_t qp, int tx, struct mpops_pkt **pkts,
			 unsigned n)
{
	uint32_t f;
	int rc;

	if ((rc = creator_only(p, "marks buffers kept by the device in")) < 0)
		return rc;
	if (qp >= p->sh->nb_qp || (n && !pkts))
		return -EINVAL;
	f = pktpool_ring_kept(ring_id(p), qp, tx);
	for (unsigned i = 0; i < n; i++) {
		if (!(__atomic_load_n(&pkts[i]->flags, __ATOMIC_RELAXED) & MPOPS_PKT_F_ALLOCATED))
			return -EINVAL;
		__atomic_store_n(&pkts[i]->flags, f, __ATOMIC_RELAXED);
	}
	return 0;
}

void mpops_port_connected(struct mpops_port *p)
{
	atomic_fetch_add(&p->sh->reconnects, 1);
}

int mpops_port_link_set(struct mpops_port *p, int up)
{
	if (atomic_exchange(&p->sh->link_up, (uint16_t)!!up) == !!up)
		return 0;
	atomic_fetch_add(&p->sh->link_changes, 1);
	return 1;
}

/* ==== claims and the fast path ========================================== */

/* Build this process's fast-path entry for @qp at the current epoch. */
static int fpq_build(struct mpops_port *p, uint16_t qp)
{
	struct mpops__port_fpq *q = &p->fp.q[qp];
	struct mpops_port_queue mq = { 0 };
	uint32_t epoch;
	void *slot;
	int rc;

	mpops_port_queue_marks(p, qp, &mq.marks);
	q->epoch = 0;
	if ((rc = mpops_port_slot(p, &slot, &epoch)) < 0 ||
	    (rc = p->drv->queue_setup(p, qp, slot, &mq)) < 0)
		return rc;
	if (!mq.rx || !mq.tx) {
		log_err("port %s: driver %s set up queue pair %u without burst functions",
			p->sh->name, p->sh->driver, qp);
		return -EINVAL;
	}
	q->rx = mq.rx;
	q->tx = mq.tx;
	q->queue = mq.queue;
	q->epoch = epoch;
	return 0;
}

/*
 * The claim on @qp was just taken from dead owner @dead: let the driver
 * repair the queue pair's state in this process. Marked busy like a burst,
 * so that a stopping primary waits for it; while the port is not started
 * there is nothing to repair (stop drained the rings).
 */
static int takeover(struct mpops_port *p, uint16_t qp, int32_t dead)
{
	struct port_claim_shared *c = &p->sh->claims[qp];
	void *slot;
	int rc = 0;

	__atomic_store_n(&c->busy, 1, __ATOMIC_RELAXED);
	if (atomic_load(&p->sh->state) == PORT_STARTED && !atomic_load(&p->r->primary_gone) &&
	    (rc = mpops_port_slot(p, &slot, NULL)) == 0)
		rc = p->drv->queue_takeover(p, qp, slot, dead);
	__atomic_store_n(&c->busy, 0, __ATOMIC_RELEASE);
	if (rc < 0)
		log_err("port %s: queue pair %u: cannot repair what its dead owner pid %d left (%s): not claimed; stop and start the port",
			p->sh->name, qp, (int)dead, strerror(-rc));
	return rc;
}

int mpops_port_claim(struct mpops_port *p, uint16_t qp)
{
	struct port_claim_shared *c;
	int32_t me = getpid(), cur = 0, dead = 0, orphan;
	int rc;

	if (!p)
		return -EINVAL;
	if (qp >= p->sh->nb_qp) {
		log_err("port %s: no queue pair %u (the port has %u)", p->sh->name, qp, p->sh->nb_qp);
		return -ERANGE;
	}
	if (!p->pool) {
		log_err("port %s: a read-only attach cannot claim queues", p->sh->name);
		return -EROFS;
	}
	c = &p->sh->claims[qp];
	while (!atomic_compare_exchange_strong(&c->pid, &cur, me)) {
		if (cur == me)
			break;
		if (mpops_proc_alive(cur, c->start_time)) {
			log_err("port %s: queue pair %u is claimed by pid %d: pick another one",
				p->sh->name, qp, (int)cur);
			return -EBUSY;
		}
		log_info("port %s: queue pair %u: its owner pid %d is gone: taking it over",
			 p->sh->name, qp, (int)cur);
		/* It may have died inside a burst. cur holds the dead pid: the
		 * next CAS replaces exactly it. */
		__atomic_store_n(&c->busy, 0, __ATOMIC_RELEASE);
		dead = cur;
	}
	/* Newly ours: a dead owner the primary released it from counts too. */
	if (cur != me && (orphan = atomic_exchange(&c->orphan, 0)) && !dead)
		dead = orphan;
	c->start_time = mpops_proc_start_time(me);
	p->claimed[qp] = 1;
	p->fp.q[qp].busy = &c->busy;
	p->fp.q[qp].epoch = 0;
	if ((dead && (rc = takeover(p, qp, dead)) < 0) ||
	    ((rc = fpq_build(p, qp)) < 0 && rc != -ENOTCONN)) {
		mpops_port_release(p, qp);
		return rc;
	}
	return 0;
}

int mpops_port_release(struct mpops_port *p, uint16_t qp)
{
	int32_t me = getpid();

	if (!p)
		return -EINVAL;
	if (qp >= MPOPS_PORT_MAX_QP)
		return -ERANGE;
	idle_reset(p, qp);
	if (!p->claimed[qp])
		return -EPERM;
	p->claimed[qp] = 0;
	if (!atomic_compare_exchange_strong(&p->sh->claims[qp].pid, &me, 0))
		return -EPERM;
	return 0;
}

int mpops__port_burst_slow(struct mpops_port *p, uint16_t qp, struct mpops_pkt **pkts,
			   uint16_t n, int tx)
{
	struct mpops__port_fpq *q;
	int nb;

	if (qp >= MPOPS_PORT_MAX_QP || !p->claimed[qp]) {
		if (qp < MPOPS_PORT_MAX_QP)
			__atomic_store_n(p->fp.q[qp].busy, 0, __ATOMIC_RELAXED);
		log_once(p, LOG_NOT_CLAIMED, "port %s: burst on queue pair %u, which this process has not claimed: claim it first (mpops_port_claim)",
			 p->sh->name, qp);
		return -EPERM;
	}
	q = &p->fp.q[qp];
	if (atomic_load(&p->sh->state) != PORT_STARTED || atomic_load(&p->r->primary_gone)) {
		__atomic_store_n(q->busy, 0, __ATOMIC_RELEASE);
		return 0;
	}
	if (q->epoch != __atomic_load_n(p->fp.epoch, __ATOMIC_ACQUIRE)) {
		int rc;

		/* The port was closed and made again, or the claim taken over
		 * while we were stopped: this process no longer holds it. */
		if (atomic_load(&p->sh->claims[qp].pid) != getpid()) {
			__atomic_store_n(q->busy, 0, __ATOMIC_RELEASE);
			log_once(p, LOG_CLAIM_LOST, "port %s: this process's claim on queue pair %u is gone (the port was made again?): claim it again",
				 p->sh->name, qp);
			p->claimed[qp] = 0;
			idle_reset(p, qp);
			return -EPERM;
		}
		if ((rc = fpq_build(p, qp)) < 0) {
			__atomic_store_n(q->busy, 0, __ATOMIC_RELEASE);
			log_once(p, LOG_REBUILD, "port %s: cannot rebuild this process's fast path for queue pair %u (%s): bursts return 0",
				 p->sh->name, qp, strerror(-rc));
			return 0;
		}
	}
	nb = (tx ? q->tx : q->rx)(q->queue, pkts, n);
	__atomic_store_n(q->busy, 0, __ATOMIC_RELEASE);
	return nb;
}

int mpops__port_burst_stale(const struct mpops__port_fpq *q, struct mpops_pkt **pkts, uint16_t n,
			    int tx)
{
	return mpops__port_burst_slow(q->port, q->qp, pkts, n, tx);
}

/* ==== facts ============================================================= */

struct mpops_pktpool *mpops_port_pool(struct mpops_port *p)
{
	return p ? p->pool : NULL;
}

struct mpops_region *mpops_port_region(struct mpops_port *p)
{
	return p ? p->r : NULL;
}

int mpops_port_queue_recover(struct mpops_port *p, uint16_t qp, int tx,
			     struct mpops_pkt *const *keep, unsigned nkeep)
{
	int n;

	if (!p || !p->pool || qp >= p->sh->nb_qp || (nkeep && !keep))
		return -EINVAL;
	if ((n = pktpool_recover_rings(p->pool, ring_id(p), qp, tx, keep, nkeep)) > 0)
		log_warn("port %s: queue pair %u: %d %s buffers were left between a burst and the device by its dead owner: given back to the pool",
			 p->sh->name, qp, n, tx ? "tx" : "rx");
	return n;
}

void mpops_port_fill_mark(struct mpops_port *p, int qp, int tx)
{
	*pktpool_cur_ref(p->pool) = qp < 0 || qp >= p->sh->nb_qp
					    ? pktpool_ring_anyq(ring_id(p))
					    : pktpool_ring(ring_id(p), (uint16_t)qp, tx);
}

int mpops_port_queue_marks(struct mpops_port *p, uint16_t qp, struct mpops_port_marks *m)
{
	if (!p || !m)
		return -EINVAL;
	if (qp >= p->sh->nb_qp)
		return -ERANGE;
	*m = (struct mpops_port_marks){ .own = pktpool_own(p->pool),
					.ring_rx = pktpool_ring(ring_id(p), qp, 0),
					.ring_tx = pktpool_ring(ring_id(p), qp, 1) };
	return 0;
}

int mpops_port_pool_open(struct mpops_port *p, struct mpops_pktpool **pool)
{
	return mpops_pktpool_open(p->r, p->sh->pool_off, pool);
}

void *mpops_port_priv(struct mpops_port *p)
{
	return p->priv;
}

void *mpops_port_drv_shared(struct mpops_port *p)
{
	return p->sh->drv_off ? mpops_ptr(p->base, p->sh->drv_off) : NULL;
}

const char *mpops_port_name(struct mpops_port *p)
{
	return p->sh->name;
}

uint16_t mpops_port_nb_qp(struct mpops_port *p)
{
	return p->sh->nb_qp;
}

uint8_t *mpops_port_mac(struct mpops_port *p)
{
	return p->sh->mac;
}

int mpops_port_is_creator(struct mpops_port *p)
{
	return p->creator;
}

int mpops_port_is_started(struct mpops_port *p)
{
	return atomic_load(&p->sh->state) == PORT_STARTED;
}

struct mpops_port_queue_stats *mpops_port_stats_ref(struct mpops_port *p, uint16_t qp, int tx)
{
	return &p->sh->stats[qp & (MPOPS_PORT_MAX_QP - 1)][!!tx];
}

int mpops_port_link_get(struct mpops_port *p, struct mpops_port_link *l)
{
	if (!p || !l)
		return -EINVAL;
	l->up = atomic_load(&p->sh->link_up) && mpops_port_is_started(p) &&
		!atomic_load(&p->r->primary_gone);
	l->changes = atomic_load(&p->sh->link_changes);
	l->reconnects = atomic_load(&p->sh->reconnects);
	return 0;
}

int mpops_port_stats_get(struct mpops_port *p, uint16_t qp, struct mpops_port_queue_stats *rx,
			 struct mpops_port_queue_stats *tx)
{
	if (!p)
		return -EINVAL;
	if (qp >= p->sh->nb_qp)
		return -ERANGE;
	if (rx)
		*rx = p->sh->stats[qp][0];
	if (tx)
		*tx = p->sh->stats[qp][1];
	return 0;
}

int mpops_port_claim_info(struct mpops_port *p, uint16_t qp, struct mpops_port_claim_info *ci)
{
	struct port_claim_shared *c;

	if (!p || !ci || ci->sz < sizeof(*ci))
		return -EINVAL;
	if (qp >= p->sh->nb_qp)
		return -ERANGE;
	c = &p->sh->claims[qp];
	ci->pid = atomic_load(&c->pid);
	ci->start_time = c->start_time;
	ci->in_burst = __atomic_load_n(&c->busy, __ATOMIC_ACQUIRE) != 0;
	return 0;
}

int mpops_port_pool_census(struct mpops_port *p, struct mpops_pktpool_census *c)
{
	if (!p)
		return -EINVAL;
	return pktpool_census(p->r, p->sh->pool_off, ring_id(p), c);
}

int mpops_port_info_get(struct mpops_port *p, struct mpops_port_info *in)
{
	struct port_shared *sh;

	if (!p || !in)
		return -EINVAL;
	sh = p->sh;
	memset(in, 0, sizeof(*in));
	strlcpy(in->name, sh->name, sizeof(in->name));
	strlcpy(in->driver, sh->driver, sizeof(in->driver));
	in->driver_id = sh->drv_id;
	in->driver_local = MPOPS_OPS(mpops_port_drv, sh->drv_id);
	memcpy(in->mac, sh->mac, 6);
	in->mtu = sh->mtu;
	in->nb_qp = sh->nb_qp;
	in->tx_headroom = sh->tx_headroom;
	in->started = mpops_port_is_started(p);
	in->primary_pid = sh->primary_pid;
	in->epoch = mpops_port_epoch(p);
	for (int q = 0; q < MPOPS_PORT_MAX_QP; q++)
		in->owner_pid[q] = atomic_load(&sh->claims[q].pid);
	return 0;
}
