/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * net_mpops: probe, remove and the control ops. The fast path is rxtx.c;
 * making a port of one driver from devargs is drv_<name>.c.
 *
 *   primary:   --vdev 'net_mpops0,driver=virtio,path=SOCK,queues=2'
 *   secondary: the same device, found through DPDK's shared device list
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_malloc.h>

#include "pmd.h"

RTE_LOG_REGISTER_DEFAULT(mpops_pmd_logtype, INFO);

struct pmd_proc *pmd_procs[RTE_MAX_ETHPORTS];

/* ==== drivers ============================================================= */

#define DRIVERS_MAX 8
static const struct pmd_driver *drivers[DRIVERS_MAX];
static unsigned ndrivers;

void pmd_driver_register(const struct pmd_driver *d)
{
	if (ndrivers < DRIVERS_MAX)
		drivers[ndrivers++] = d;
}

static const struct pmd_driver *driver_find(const char *name)
{
	for (unsigned i = 0; i < ndrivers; i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	return NULL;
}

static void driver_names(char *buf, size_t len)
{
	buf[0] = '\0';
	for (unsigned i = 0; i < ndrivers; i++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "",
			 drivers[i]->name);
}

/* Keys every device takes, whatever its driver. */
static const char *const generic_keys[] = { "driver", "queues", "pool", "region_mb", NULL };

const char *pmd_arg_str(const struct pmd_args *a, const char *key, const char *def)
{
	const struct rte_kvargs *kv = a->kv;

	for (unsigned i = 0; kv && i < kv->count; i++)
		if (strcmp(kv->pairs[i].key, key) == 0)
			return kv->pairs[i].value ? kv->pairs[i].value : "";
	return def;
}

int pmd_arg_uint(const struct pmd_args *a, const char *key, unsigned long lo,
		 unsigned long hi, unsigned long def, unsigned long *out)
{
	const char *s = pmd_arg_str(a, key, NULL);
	unsigned long v;
	char *end;

	if (!s) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
		PMD_LOG(ERR, "%s: %s=%s: give a number from %lu to %lu\n", a->dev, key, s, lo, hi);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int key_known(const struct pmd_driver *d, const char *key)
{
	for (unsigned i = 0; generic_keys[i]; i++)
		if (strcmp(generic_keys[i], key) == 0)
			return 1;
	for (unsigned i = 0; d->keys[i]; i++)
		if (strcmp(d->keys[i], key) == 0)
			return 1;
	return 0;
}

/* ==== the region: one per process, beside DPDK's memory ================== */

static pthread_mutex_t region_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mpops_region *region;
static unsigned region_refs;
static int region_created;

struct mpops_region *pmd_region(void)
{
	return region;
}

/* mpops's log lines go to DPDK's log, under this PMD's log type. */
static void log_to_rte(enum mpops_log_level level, const char *line, void *arg)
{
	static const uint32_t lv[] = { RTE_LOG_ERR, RTE_LOG_WARNING, RTE_LOG_INFO, RTE_LOG_DEBUG };

	(void)arg;
	rte_log(lv[level & 3], mpops_pmd_logtype, "mpops: %s\n", line);
}

static int rundir_of(char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/mpops", rte_eal_get_runtime_dir()) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Take a reference to this process's region: created by the primary at its
 * first device, attached by a secondary. @return 0 or -errno (logged). */
static int region_get(const char *dev, size_t size_mb)
{
	int rc = 0;

	pthread_mutex_lock(&region_mu);
	if (region) {
		region_refs++;
		goto out;
	}
	mpops_log_set(log_to_rte, NULL);
	if (rte_eal_process_type() == RTE_PROC_PRIMARY) {
		struct mpops_region_opts o = { .sz = sizeof(o), .size = size_mb << 20 };
		char dir[PATH_MAX];

		if ((rc = rundir_of(dir, sizeof(dir))) < 0) {
			PMD_LOG(ERR, "%s: DPDK's runtime directory is too long for mpops's sockets: use a shorter --file-prefix\n",
				dev);
			goto out;
		}
		o.runtime_dir = dir;
		rc = mpops_region_create(PMD_REGION, &o, &region);
		if (rc < 0) {
			PMD_LOG(ERR, "%s: cannot create mpops region '%s' in %s: %s (see the mpops line above)\n",
				dev, PMD_REGION, dir, strerror(-rc));
			goto out;
		}
		region_created = 1;
	}
	region_refs = 1;
out:
	pthread_mutex_unlock(&region_mu);
	return rc;
}

/* A secondary attaches where its primary's device data says. */
static int region_attach(const char *dev, const struct pmd_shared *sh)
{
	struct mpops_attach_opts o = { .sz = sizeof(o), .runtime_dir = sh->rundir };
	int rc = 0;

	pthread_mutex_lock(&region_mu);
	if (region) {
		region_refs++;
		goto out;
	}
	mpops_log_set(log_to_rte, NULL);
	rc = mpops_region_attach(sh->region, &o, &region);
	if (rc < 0) {
		PMD_LOG(ERR, "%s: cannot attach to mpops region '%s' in %s: %s: is the DPDK primary that made %s still running?\n",
			dev, sh->region, sh->rundir, strerror(-rc), dev);
		goto out;
	}
	region_refs = 1;
out:
	pthread_mutex_unlock(&region_mu);
	return rc;
}

static void region_put(void)
{
	char dir[PATH_MAX] = "";

	pthread_mutex_lock(&region_mu);
	if (region && --region_refs == 0) {
		if (region_created)
			rundir_of(dir, sizeof(dir));
		mpops_region_detach(region);
		region = NULL;
		region_created = 0;
		if (dir[0])
			rmdir(dir);	/* empty now: the socket and lock went with the region */
	}
	pthread_mutex_unlock(&region_mu);
}

/* ==== control ops ========================================================= */

static struct pmd_proc *proc_of(struct rte_eth_dev *dev)
{
	return dev->process_private;
}

static int op_configure(struct rte_eth_dev *dev)
{
	struct pmd_proc *pp = proc_of(dev);

	if (dev->data->nb_rx_queues > pp->sh->nb_qp || dev->data->nb_tx_queues > pp->sh->nb_qp) {
		PMD_LOG(ERR, "%s: %u rx and %u tx queues asked, the mpops port has %u queue pairs: give queues=N in its devargs\n",
			dev->data->name, dev->data->nb_rx_queues, dev->data->nb_tx_queues,
			pp->sh->nb_qp);
		return -EINVAL;
	}
	return 0;
}

static int op_infos_get(struct rte_eth_dev *dev, struct rte_eth_dev_info *info)
{
	struct pmd_proc *pp = proc_of(dev);

	info->max_mac_addrs = 1;
	info->max_rx_queues = pp->sh->nb_qp;
	info->max_tx_queues = pp->sh->nb_qp;
	info->max_rx_pktlen = pp->sh->max_pkt;
	info->min_rx_bufsize = 64;
	info->max_mtu = (uint16_t)(pp->sh->max_pkt - RTE_ETHER_HDR_LEN);
	info->min_mtu = RTE_ETHER_MIN_MTU;
	info->tx_offload_capa = RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	info->rx_offload_capa = RTE_ETH_RX_OFFLOAD_SCATTER;
	info->speed_capa = RTE_ETH_LINK_SPEED_10G;
	info->default_rxportconf.burst_size = 32;
	info->default_txportconf.burst_size = 32;
	return 0;
}

static int op_start(struct rte_eth_dev *dev)
{
	struct pmd_proc *pp = proc_of(dev);
	int rc;

	if (!pp->creator)
		return -EPERM;
	if ((rc = mpops_port_start(pp->ctl)) < 0) {
		PMD_LOG(ERR, "%s: cannot start the mpops port: %s (see the mpops line above)\n",
			dev->data->name, strerror(-rc));
		return rc;
	}
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++)
		dev->data->rx_queue_state[i] = RTE_ETH_QUEUE_STATE_STARTED;
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++)
		dev->data->tx_queue_state[i] = RTE_ETH_QUEUE_STATE_STARTED;
	return 0;
}

static int op_stop(struct rte_eth_dev *dev)
{
	struct pmd_proc *pp = proc_of(dev);

	if (!pp->creator)
		return -EPERM;
	/* Waits for bursts in progress in every process, then takes the rings back. */
	mpops_port_stop(pp->ctl);
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++)
		dev->data->rx_queue_state[i] = RTE_ETH_QUEUE_STATE_STOPPED;
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++)
		dev->data->tx_queue_state[i] = RTE_ETH_QUEUE_STATE_STOPPED;
	return 0;
}

static int op_link_update(struct rte_eth_dev *dev, int wait)
{
	struct pmd_proc *pp = proc_of(dev);
	struct mpops_port_link l = { 0 };
	struct rte_eth_link link = { 0 };

	(void)wait;
	mpops_port_link_get(pp->ctl, &l);
	link.link_speed = l.up ? RTE_ETH_SPEED_NUM_10G : RTE_ETH_SPEED_NUM_NONE;
	link.link_duplex = RTE_ETH_LINK_FULL_DUPLEX;
	link.link_status = l.up ? RTE_ETH_LINK_UP : RTE_ETH_LINK_DOWN;
	link.link_autoneg = RTE_ETH_LINK_FIXED;
	/* Only the primary writes the shared copy; everyone may read it. */
	if (rte_eal_process_type() == RTE_PROC_PRIMARY)
		dev->data->dev_link = link;
	return 0;
}

static int op_ok(struct rte_eth_dev *dev)
{
	(void)dev;
	return 0;	/* every frame reaches the port: promiscuous and all-multicast */
}

static int op_stats_get(struct rte_eth_dev *dev, struct rte_eth_stats *st)
{
	struct pmd_proc *pp = proc_of(dev);
	struct pmd_shared *sh = pp->sh;

	for (uint16_t qp = 0; qp < sh->nb_qp; qp++) {
		struct mpops_port_queue_stats rx, tx;
		const struct mpops_port_queue_stats *b = sh->base[qp];
		uint64_t nombuf = 0, oversize = 0;

		if (mpops_port_stats_get(pp->ctl, qp, &rx, &tx) < 0)
			continue;
		if (qp < dev->data->nb_rx_queues && dev->data->rx_queues[qp])
			nombuf = ((struct pmd_rxq *)dev->data->rx_queues[qp])->nombuf;
		if (qp < dev->data->nb_tx_queues && dev->data->tx_queues[qp])
			oversize = ((struct pmd_txq *)dev->data->tx_queues[qp])->oversize;
		rx.packets -= b[0].packets;
		rx.bytes -= b[0].bytes;
		tx.packets -= b[1].packets;
		tx.bytes -= b[1].bytes;
		st->ipackets += rx.packets;
		st->ibytes += rx.bytes;
		st->opackets += tx.packets;
		st->obytes += tx.bytes;
		st->ierrors += rx.errors - b[0].errors;
		st->imissed += rx.drops - b[0].drops;
		st->oerrors += tx.errors - b[1].errors + oversize - sh->base_oversize[qp];
		st->rx_nombuf += nombuf - sh->base_nombuf[qp];
		if (qp < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
			st->q_ipackets[qp] = rx.packets;
			st->q_ibytes[qp] = rx.bytes;
			st->q_opackets[qp] = tx.packets;
			st->q_obytes[qp] = tx.bytes;
		}
	}
	return 0;
}

/* mpops's counters only grow (their owners write them): a reset keeps a base. */
static int op_stats_reset(struct rte_eth_dev *dev)
{
	struct pmd_proc *pp = proc_of(dev);
	struct pmd_shared *sh = pp->sh;

	for (uint16_t qp = 0; qp < sh->nb_qp; qp++) {
		mpops_port_stats_get(pp->ctl, qp, &sh->base[qp][0], &sh->base[qp][1]);
		if (qp < dev->data->nb_rx_queues && dev->data->rx_queues[qp])
			sh->base_nombuf[qp] = ((struct pmd_rxq *)dev->data->rx_queues[qp])->nombuf;
		if (qp < dev->data->nb_tx_queues && dev->data->tx_queues[qp])
			sh->base_oversize[qp] = ((struct pmd_txq *)dev->data->tx_queues[qp])->oversize;
	}
	return 0;
}

/* xstats: per queue pair, what mpops counts beyond ethdev's basic stats. */
static const char *const xstat_names[] = { "rx_q%u_kicks", "tx_q%u_kicks", "rx_q%u_drops",
					   "tx_q%u_drops" };
#define NXSTATS (sizeof(xstat_names) / sizeof(xstat_names[0]))

static int op_xstats_get_names(struct rte_eth_dev *dev, struct rte_eth_xstat_name *names,
			       unsigned int size)
{
	unsigned n = proc_of(dev)->sh->nb_qp * NXSTATS;

	if (!names || size < n)
		return (int)n;
	for (unsigned i = 0; i < n; i++)
		snprintf(names[i].name, sizeof(names[i].name), xstat_names[i % NXSTATS],
			 i / (unsigned)NXSTATS);
	return (int)n;
}

static int op_xstats_get(struct rte_eth_dev *dev, struct rte_eth_xstat *xs, unsigned int n)
{
	struct pmd_proc *pp = proc_of(dev);
	unsigned want = pp->sh->nb_qp * NXSTATS;

	if (!xs || n < want)
		return (int)want;
	for (uint16_t qp = 0; qp < pp->sh->nb_qp; qp++) {
		struct mpops_port_queue_stats rx = { 0 }, tx = { 0 };
		uint64_t v[NXSTATS];

		mpops_port_stats_get(pp->ctl, qp, &rx, &tx);
		v[0] = rx.kicks;
		v[1] = tx.kicks;
		v[2] = rx.drops;
		v[3] = tx.drops;
		for (unsigned k = 0; k < NXSTATS; k++) {
			xs[qp * NXSTATS + k].id = qp * NXSTATS + k;
			xs[qp * NXSTATS + k].value = v[k];
		}
	}
	return (int)want;
}

static int op_rx_queue_setup(struct rte_eth_dev *dev, uint16_t qid, uint16_t nb_desc,
			     unsigned int socket, const struct rte_eth_rxconf *conf,
			     struct rte_mempool *mp)
{
	struct pmd_rxq *q;

	(void)nb_desc;
	(void)conf;
	if (qid >= proc_of(dev)->sh->nb_qp)
		return -EINVAL;
	if (rte_pktmbuf_data_room_size(mp) <= RTE_PKTMBUF_HEADROOM) {
		PMD_LOG(ERR, "%s: rx queue %u: mempool %s has no data room: make its mbufs larger\n",
			dev->data->name, qid, mp->name);
		return -EINVAL;
	}
	rte_free(dev->data->rx_queues[qid]);
	q = rte_zmalloc_socket("net_mpops_rxq", sizeof(*q), RTE_CACHE_LINE_SIZE, (int)socket);
	if (!q)
		return -ENOMEM;
	q->port_id = dev->data->port_id;
	q->qp = qid;
	q->mp = mp;
	dev->data->rx_queues[qid] = q;
	return 0;
}

static void op_rx_queue_release(struct rte_eth_dev *dev, uint16_t qid)
{
	rte_free(dev->data->rx_queues[qid]);
	dev->data->rx_queues[qid] = NULL;
}

static int op_tx_queue_setup(struct rte_eth_dev *dev, uint16_t qid, uint16_t nb_desc,
			     unsigned int socket, const struct rte_eth_txconf *conf)
{
	struct pmd_txq *q;

	(void)nb_desc;
	(void)conf;
	if (qid >= proc_of(dev)->sh->nb_qp)
		return -EINVAL;
	rte_free(dev->data->tx_queues[qid]);
	q = rte_zmalloc_socket("net_mpops_txq", sizeof(*q), RTE_CACHE_LINE_SIZE, (int)socket);
	if (!q)
		return -ENOMEM;
	q->port_id = dev->data->port_id;
	q->qp = qid;
	dev->data->tx_queues[qid] = q;
	return 0;
}

static void op_tx_queue_release(struct rte_eth_dev *dev, uint16_t qid)
{
	rte_free(dev->data->tx_queues[qid]);
	dev->data->tx_queues[qid] = NULL;
}

/* This process's part of the device: its port handles, its region reference. */
static void proc_free(struct pmd_proc *pp)
{
	if (!pp)
		return;
	pmd_lq_close(pp);
	if (pp->ctl)
		mpops_port_close(pp->ctl);	/* the creator's: stops and destroys */
	pmd_procs[pp->port_id] = NULL;
	pthread_mutex_destroy(&pp->mu);
	free(pp);
	region_put();
}

static int op_close(struct rte_eth_dev *dev)
{
	struct pmd_proc *pp = proc_of(dev);

	dev->process_private = NULL;
	proc_free(pp);
	return 0;
}

static const struct mpops_eth_dev_ops pmd_ops = {
	.ops = {
		.dev_configure = op_configure,
		.dev_start = op_start,
		.dev_stop = op_stop,
		.dev_close = op_close,
		.link_update = op_link_update,
		.promiscuous_enable = op_ok,
		.promiscuous_disable = op_ok,
		.allmulticast_enable = op_ok,
		.allmulticast_disable = op_ok,
		.stats_get = op_stats_get,
		.stats_reset = op_stats_reset,
		.xstats_get = op_xstats_get,
		.xstats_get_names = op_xstats_get_names,
		.dev_infos_get = op_infos_get,
		.rx_queue_setup = op_rx_queue_setup,
		.rx_queue_release = op_rx_queue_release,
		.tx_queue_setup = op_tx_queue_setup,
		.tx_queue_release = op_tx_queue_release,
	},
};

/* ==== probe and remove ==================================================== */

/*
 * The device DPDK gave us must sit where dpdk_abi.h says: its data names it,
 * and it is entry port_id of rte_eth_devices. @return 0 or -EPROTO (logged).
 */
static int abi_check(struct rte_eth_dev *dev, const char *name)
{
	uint16_t id = dev->data->port_id;

	if (strncmp(dev->data->name, name, RTE_ETH_NAME_MAX_LEN) != 0 ||
	    id >= RTE_MAX_ETHPORTS || dev != &rte_eth_devices[id]) {
		PMD_LOG(ERR, "%s: this DPDK's ethdev layout is not the one net_mpops was built for (DPDK 22.11): rebuild net_mpops against the DPDK that runs it\n",
			name);
		return -EPROTO;
	}
	return 0;
}

/* The ethdev's per-process part: ops, burst functions, our state. */
static void proc_install(struct rte_eth_dev *dev, struct pmd_proc *pp)
{
	pp->dev = dev;
	pp->port_id = dev->data->port_id;
	pmd_procs[pp->port_id] = pp;
	dev->process_private = pp;
	dev->dev_ops = &pmd_ops.ops;
	dev->rx_pkt_burst = pmd_rx_burst;
	dev->tx_pkt_burst = pmd_tx_burst;
}

static struct pmd_proc *proc_new(struct pmd_shared *sh)
{
	struct pmd_proc *pp = calloc(1, sizeof(*pp));

	if (!pp)
		return NULL;
	pp->sh = sh;
	pthread_mutex_init(&pp->mu, NULL);
	return pp;
}

/* Parse and check the devargs. @return 0 (free *kv after), -EINVAL logged. */
static int args_parse(const char *name, const char *params, struct pmd_args *a,
		      const struct pmd_driver **drv, unsigned long *region_mb)
{
	char known[128];
	const char *dname;
	unsigned long v;

	memset(a, 0, sizeof(*a));
	a->dev = name;
	driver_names(known, sizeof(known));
	a->kv = rte_kvargs_parse(params ? params : "", NULL);
	if (!a->kv) {
		PMD_LOG(ERR, "%s: cannot parse the devargs '%s': write key=value,key=value (e.g. driver=virtio,path=/tmp/vhost.sock,queues=2)\n",
			name, params ? params : "");
		return -EINVAL;
	}
	dname = pmd_arg_str(a, "driver", NULL);
	if (!dname) {
		PMD_LOG(ERR, "%s: no driver= in the devargs: name the mpops port driver (this build has: %s)\n",
			name, known);
		return -EINVAL;
	}
	if (!(*drv = driver_find(dname))) {
		PMD_LOG(ERR, "%s: unknown driver '%s': this build of net_mpops has: %s\n", name,
			dname, known);
		return -EINVAL;
	}
	for (unsigned i = 0; i < a->kv->count; i++) {
		if (!key_known(*drv, a->kv->pairs[i].key)) {
			char keys[256] = "";

			for (unsigned k = 0; generic_keys[k]; k++)
				snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s ",
					 generic_keys[k]);
			for (unsigned k = 0; (*drv)->keys[k]; k++)
				snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s ",
					 (*drv)->keys[k]);
			PMD_LOG(ERR, "%s: unknown devargs key '%s' for driver %s: it takes %s\n", name,
				a->kv->pairs[i].key, dname, keys);
			return -EINVAL;
		}
	}
	if (pmd_arg_uint(a, "queues", 1, MPOPS_PORT_MAX_QP, 1, &v) < 0)
		return -EINVAL;
	a->nb_qp = (uint16_t)v;
	if (pmd_arg_uint(a, "pool", 256, 1u << 20, 8192, &v) < 0)
		return -EINVAL;
	a->pool_size = (uint32_t)v;
	if (pmd_arg_uint(a, "region_mb", 16, 65536, 0, region_mb) < 0)
		return -EINVAL;
	return 0;
}

/* Bytes a packet buffer of the port's pool holds after its headroom. */
static uint32_t pool_room(struct mpops_port *port)
{
	struct mpops_pktpool *pool = mpops_port_pool(port);
	struct mpops_pkt *p = pool ? mpops_pkt_alloc(pool) : NULL;
	uint32_t room = 2048;

	if (p) {
		room = (uint32_t)(p->buf_len - p->data_off);
		mpops_pkt_free(pool, p);
	}
	return room;
}

static int probe_primary(struct rte_vdev_device *vdev, const char *name)
{
	struct rte_device *rdev = mpops_vdev_device(vdev);
	const struct rte_devargs *da = rte_dev_devargs(rdev);
	const struct pmd_driver *drv = NULL;
	struct rte_eth_dev *dev = NULL;
	struct mpops_port_info info;
	struct pmd_proc *pp = NULL;
	struct pmd_shared *sh;
	struct pmd_args a;
	unsigned long region_mb;
	int rc;

	if ((rc = args_parse(name, da ? da->args : "", &a, &drv, &region_mb)) < 0)
		goto out;
	if (strlen(name) > 24) {
		PMD_LOG(ERR, "%s: an mpops port name has up to 24 characters: name the device shorter (net_mpops0)\n",
			name);
		rc = -EINVAL;
		goto out;
	}
	/* The pool's buffers (2 KiB and their metadata each) and the rings. */
	if (!region_mb)
		region_mb = 32 + (a.pool_size * 2304ul >> 20) + 8ul * a.nb_qp;
	if ((rc = region_get(name, region_mb)) < 0)
		goto out;
	dev = rte_eth_dev_allocate(name);
	if (!dev) {
		PMD_LOG(ERR, "%s: DPDK has no free ethdev port (RTE_MAX_ETHPORTS)\n", name);
		rc = -ENOSPC;
		goto out_region;
	}
	if ((rc = abi_check(dev, name)) < 0)
		goto out_dev;
	sh = rte_zmalloc_socket(name, sizeof(*sh), RTE_CACHE_LINE_SIZE,
				rte_dev_numa_node(rdev) < 0 ? SOCKET_ID_ANY : rte_dev_numa_node(rdev));
	dev->data->mac_addrs = rte_zmalloc(name, RTE_ETHER_ADDR_LEN, 0);
	if (!sh || !dev->data->mac_addrs) {
		rte_free(sh);
		rc = -ENOMEM;
		goto out_dev;
	}
	dev->data->dev_private = sh;
	dev->device = rdev;
	dev->intr_handle = NULL;
	sh->magic = PMD_SHARED_MAGIC;
	sh->version = PMD_SHARED_VERSION;
	snprintf(sh->region, sizeof(sh->region), "%s", PMD_REGION);
	rundir_of(sh->rundir, sizeof(sh->rundir));
	snprintf(sh->port, sizeof(sh->port), "%s", name);
	snprintf(sh->driver, sizeof(sh->driver), "%s", drv->name);
	sh->nb_qp = a.nb_qp;
	if (!(pp = proc_new(sh))) {
		rc = -ENOMEM;
		goto out_dev;
	}
	pp->creator = 1;
	if ((rc = drv->create(pmd_region(), name, &a, &pp->ctl)) < 0)
		goto out_dev;	/* the driver logged why */
	mpops_port_info_get(pp->ctl, &info);
	sh->nb_qp = info.nb_qp;
	sh->mtu = info.mtu;
	sh->max_pkt = pool_room(pp->ctl);
	memcpy(dev->data->mac_addrs[0].addr_bytes, info.mac, RTE_ETHER_ADDR_LEN);
	dev->data->dev_flags |= RTE_ETH_DEV_AUTOFILL_QUEUE_XSTATS;
	proc_install(dev, pp);
	rte_eth_dev_probing_finish(dev);
	PMD_LOG(INFO, "%s: port %u is mpops port '%s' (driver %s, %u queue pairs) in region '%s' (%s), primary pid %d\n",
		name, dev->data->port_id, sh->port, info.driver, sh->nb_qp, sh->region,
		sh->rundir, (int)getpid());
	rc = 0;
	goto out;

out_dev:
	if (pp && pp->ctl)
		mpops_port_close(pp->ctl);
	if (pp) {
		pthread_mutex_destroy(&pp->mu);
		free(pp);
	}
	/* rte_eth_dev_release_port frees dev_private and mac_addrs (rte_malloc). */
	rte_eth_dev_release_port(dev);
out_region:
	region_put();
out:
	rte_kvargs_free(a.kv);
	return rc;
}

static int probe_secondary(struct rte_vdev_device *vdev, const char *name)
{
	struct rte_eth_dev *dev = rte_eth_dev_attach_secondary(name);
	struct pmd_proc *pp = NULL;
	struct pmd_shared *sh;
	int rc;

	if (!dev) {
		PMD_LOG(ERR, "%s: the DPDK primary has no such port: start the primary with --vdev %s,... first, then this secondary\n",
			name, name);
		return -ENODEV;
	}
	if ((rc = abi_check(dev, name)) < 0)
		goto fail;
	sh = dev->data->dev_private;
	if (!sh || sh->magic != PMD_SHARED_MAGIC || sh->version != PMD_SHARED_VERSION) {
		PMD_LOG(ERR, "%s: the primary's device data is not net_mpops's of version %u (magic %#x, version %u): run the same net_mpops in both\n",
			name, PMD_SHARED_VERSION, sh ? sh->magic : 0, sh ? sh->version : 0);
		rc = -EPROTO;
		goto fail;
	}
	if ((rc = region_attach(name, sh)) < 0)
		goto fail;
	if (!(pp = proc_new(sh))) {
		region_put();
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = mpops_port_open(pmd_region(), sh->port, &pp->ctl)) < 0) {
		PMD_LOG(ERR, "%s: cannot open mpops port '%s': %s (see the line above)\n", name,
			sh->port, strerror(-rc));
		pthread_mutex_destroy(&pp->mu);
		free(pp);
		region_put();
		goto fail;
	}
	dev->device = mpops_vdev_device(vdev);
	proc_install(dev, pp);
	rte_eth_dev_probing_finish(dev);
	PMD_LOG(INFO, "%s: port %u attached to mpops port '%s' of region '%s' (secondary pid %d)\n",
		name, dev->data->port_id, sh->port, sh->region, (int)getpid());
	return 0;
fail:
	rte_eth_dev_release_port(dev);
	return rc;
}

static int pmd_probe(struct rte_vdev_device *vdev)
{
	const char *name = rte_dev_name(mpops_vdev_device(vdev));

	if (rte_eal_process_type() == RTE_PROC_SECONDARY)
		return probe_secondary(vdev, name);
	return probe_primary(vdev, name);
}

static int pmd_remove(struct rte_vdev_device *vdev)
{
	const char *name = rte_dev_name(mpops_vdev_device(vdev));
	struct rte_eth_dev *dev = rte_eth_dev_allocated(name);

	if (!dev)
		return 0;	/* closed already */
	if (rte_eal_process_type() == RTE_PROC_PRIMARY)
		return rte_eth_dev_close(dev->data->port_id);
	op_close(dev);
	return rte_eth_dev_release_port(dev);
}

static struct rte_vdev_driver pmd_vdev = {
	.probe = pmd_probe,
	.remove = pmd_remove,
};

RTE_INIT(pmd_register)
{
	pmd_vdev.driver.name = PMD_NAME;
	rte_vdev_register(&pmd_vdev);
}
RTE_PMD_EXPORT_NAME(net_mpops, _mpops);
RTE_PMD_REGISTER_PARAM_STRING(net_mpops,
	"driver=<virtio> queues=<1..16> pool=<buffers> region_mb=<MiB> "
	"path=<vhost-user socket> server=<0|1> mrg_rxbuf=<0|1> in_order=<0|1> "
	"event_idx=<0|1> queue_size=<ring size> connect_timeout_ms=<ms>");
