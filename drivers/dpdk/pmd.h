/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * net_mpops: a DPDK ethdev (vdev PMD) on an mpops port. Private to the PMD.
 *
 * What lives where:
 *  - DPDK's shared device data (rte_eth_dev_data, hugepages, the same
 *    address in every DPDK process) holds, as dev_private, struct
 *    pmd_shared: names, counts, counter bases. Data only.
 *  - The rx and tx queue objects DPDK keeps in rte_eth_dev_data.rx_queues /
 *    tx_queues (rte_zmalloc, shared) are struct pmd_rxq / pmd_txq: the
 *    port id, the queue pair, the application's mempool (a pointer into
 *    DPDK's shared memory, which DPDK maps at the same address everywhere)
 *    and counters written by the queue's owner. Data only.
 *  - Everything per process is in struct pmd_proc (rte_eth_dev.process_private,
 *    and procs[port_id] for the fast path): this process's mpops region
 *    handle, its port handles (one per queue pair it polls, each with its
 *    own pool handle), and through them the fds, ring mappings and the
 *    port driver's burst functions, which mpops resolves in each process.
 *  - The mpops region itself (the port's shared state, rings and packet
 *    buffers) is a memfd the primary creates beside DPDK's memory and
 *    secondaries attach by name, in a runtime directory derived from DPDK's
 *    (rte_eal_get_runtime_dir() + "/mpops", so per --file-prefix).
 */
#ifndef MPOPS_PMD_H
#define MPOPS_PMD_H

#include <pthread.h>
#include <stdint.h>

#include <rte_kvargs.h>
#include <rte_log.h>
#include <rte_mbuf.h>

#include <mpops/mpops.h>
#include <mpops/port_driver.h>

#include "dpdk_abi.h"

#define PMD_NAME "net_mpops"
/* One mpops region per DPDK process tree (file prefix), every port in it. */
#define PMD_REGION "net_mpops"

extern int mpops_pmd_logtype;
#define PMD_LOG(level, ...) \
	rte_log(RTE_LOG_##level, mpops_pmd_logtype, PMD_NAME ": " __VA_ARGS__)

/* ==== drivers: making an mpops port from devargs ========================= */

/*
 * The devargs of one device, for a driver's create function: the parsed
 * key=value list and the generic values the PMD already read.
 */
struct pmd_args {
	const char *dev;		/* the ethdev's name, for log lines */
	struct rte_kvargs *kv;
	uint16_t nb_qp;			/* queues= */
	uint32_t pool_size;		/* pool= (packet buffers), 0: the driver's default */
};

/*
 * A port driver the PMD can create ports of (primary only). To add one
 * (AF_XDP: driver=af_xdp,iface=X), write a file with its create function
 * and register it with PMD_DRIVER(); list its source in meson.build.
 *  - name: what driver= names.
 *  - keys: the devargs keys it reads, NULL-terminated (others are refused).
 *  - create: make and publish port @p name in @p r from @p a; 0 and *out or
 *    -errno with one line logged (the key that was wrong, what to do).
 */
struct pmd_driver {
	const char *name;
	const char *const *keys;
	int (*create)(struct mpops_region *r, const char *name, const struct pmd_args *a,
		      struct mpops_port **out);
};

/* Register @p d in this process (from a constructor, PMD_DRIVER). */
void pmd_driver_register(const struct pmd_driver *d);

#define PMD_DRIVER(d)                                                          \
	__attribute__((constructor)) static void pmd_driver_ctor_##d(void)     \
	{                                                                      \
		pmd_driver_register(&(d));                                     \
	}

/* devargs helpers for drivers: the value of @p key or @p def. */
const char *pmd_arg_str(const struct pmd_args *a, const char *key, const char *def);
/* 0 and *out in lo..hi (or @p def when absent), -EINVAL logged. */
int pmd_arg_uint(const struct pmd_args *a, const char *key, unsigned long lo,
		 unsigned long hi, unsigned long def, unsigned long *out);

/* ==== state =============================================================== */

#define PMD_SHARED_MAGIC 0x6d706d64u	/* "dmpm" */
#define PMD_SHARED_VERSION 1

/* dev_private: in DPDK's shared memory, data only. */
struct pmd_shared {
	uint32_t magic;
	uint32_t version;
	char region[MPOPS_NAME_MAX + 1];	/* mpops region name */
	char rundir[108];			/* its runtime directory */
	char port[MPOPS_NAME_MAX + 1];		/* mpops port name (= the ethdev's) */
	char driver[16];			/* driver= */
	uint16_t nb_qp;
	uint16_t mtu;
	uint32_t max_pkt;			/* bytes a packet buffer holds */
	/* mpops's counters when stats were last reset (they only grow) */
	struct mpops_port_queue_stats base[MPOPS_PORT_MAX_QP][2];
	uint64_t base_nombuf[MPOPS_PORT_MAX_QP], base_oversize[MPOPS_PORT_MAX_QP];
};

/* Queue objects (rte_eth_dev_data.rx_queues[] / tx_queues[]), shared. */
struct pmd_rxq {
	uint16_t port_id;
	uint16_t qp;
	struct rte_mempool *mp;		/* the application's, DPDK-shared */
	uint64_t nombuf;		/* packets dropped: no mbuf (owner writes) */
};

struct pmd_txq {
	uint16_t port_id;
	uint16_t qp;
	uint64_t oversize;		/* dropped: larger than a packet buffer */
};

/* One queue pair as this process uses it: its own port handle. */
struct pmd_lq {
	struct mpops_port *h;		/* NULL until this process polls it */
	struct mpops_pktpool *pool;	/* h's pool handle (one thread: DPDK's) */
	void *base;			/* the region's base here */
	uint32_t retry;			/* after a failed claim: bursts to wait */
	int failed;
};

/* Per process, per ethdev (process_private; procs[port_id]). */
struct pmd_proc {
	struct pmd_shared *sh;
	struct rte_eth_dev *dev;
	struct mpops_port *ctl;		/* link, stats; the creator's in the primary */
	int creator;
	uint16_t port_id;
	pthread_mutex_t mu;		/* opening queue handles */
	struct pmd_lq q[MPOPS_PORT_MAX_QP];
};

extern struct pmd_proc *pmd_procs[RTE_MAX_ETHPORTS];

/* The mpops region of this process (created or attached at the first probe). */
struct mpops_region *pmd_region(void);

/* rxtx.c */
uint16_t pmd_rx_burst(void *rxq, struct rte_mbuf **bufs, uint16_t n);
uint16_t pmd_tx_burst(void *txq, struct rte_mbuf **bufs, uint16_t n);
/* Open this process's handle of queue pair @p qp and claim it. 0 or -errno. */
int pmd_lq_open(struct pmd_proc *pp, uint16_t qp);
void pmd_lq_close(struct pmd_proc *pp);

#endif /* MPOPS_PMD_H */
