/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file port.h
 * Ports: the application API every port driver shares.
 *
 * A port is a network device with queue pairs in a region. The primary
 * creates it through its driver (for virtio-net, vtnet_port_create() in
 * vtnet.h), starts and stops it; any attached process, primary or
 * secondary, opens it by name, claims queue pairs and receives and
 * transmits on them with packets from the port's pool (pkt.h). In the
 * spirit of DPDK's ethdev, but every piece of shared state is data: the
 * shared port stores its driver as an ops ID, and each process keeps its
 * own fast-path table (like rte_eth_fp_ops) with its own burst function
 * pointers and queue contexts, built when it claims a queue pair and
 * rebuilt when the port's epoch moves.
 *
 * Lifetimes: the primary moves the port's epoch whenever what a process
 * may have cached for it becomes invalid (stop, start, the device lost and
 * back). A burst compares the epoch its queue's entry was built at with
 * the shared one (one load and compare); on a mismatch it rebuilds the
 * entry, or returns 0 while the port is not started. Claims survive all of
 * that: a process keeps its queue pairs across stop and start, the
 * backend's death and return, and a device reset, and never re-opens
 * anything. A stopping primary waits for bursts in progress in every
 * process, so a driver never tears down a ring under a burst.
 *
 * Threads: one handle may be used by several threads, each on its own
 * queue pairs; one queue pair is used by one thread at a time.
 *
 * Buffers: a burst marks who holds each buffer it moves (pkt.h): what tx
 * takes and what rx posts for the device are the queue's ring's, what rx
 * returns and tx leaves are this process's (the driver writes the marks
 * where it touches each buffer anyway, port_driver.h). So when a process
 * dies, the primary gives back to the pool what it held and leaves what is
 * on the rings; a port stop gives back what a burst interrupted by a death
 * left between the two.
 */
#ifndef MPOPS_PORT_H
#define MPOPS_PORT_H

#include <stdint.h>

#include <mpops/common.h>
#include <mpops/pkt.h>
#include <mpops/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most queue pairs a port can have (a power of two). */
#define MPOPS_PORT_MAX_QP 16

/** Per-process handle of a port. */
struct mpops_port;

/**
 * A driver's burst function: receive into or transmit from @p pkts on the
 * queue pair whose per-process context is @p queue. Returns the packets
 * received or taken, never negative.
 */
typedef int (*mpops_port_burst_fn)(void *queue, struct mpops_pkt **pkts, uint16_t n);

/** @cond internal */
/* One queue pair of this process's fast-path table: what a burst loads,
 * one cache line each. Written only by this process (claim, release, the
 * slow path). */
struct mpops__port_fpq {
	_Alignas(64) mpops_port_burst_fn rx;
	mpops_port_burst_fn tx;
	void *queue;		/* the driver's context for this queue pair */
	uint32_t *busy;		/* the shared claim's line: busy[0] is set while
				   inside a burst, busy[1] mirrors the port's
				   epoch (the primary writes it there) */
	uint32_t epoch;		/* port epoch this entry was built at; 0 = none */
	uint16_t qp;		/* this entry's queue pair, and its port: for */
	struct mpops_port *port;	/* mpops__port_burst_stale() */
};

/* The head of every struct mpops_port: the fast-path table. */
struct mpops__port_fp {
	const uint32_t *epoch;	/* the port's epoch, in shared memory */
	struct mpops__port_fpq q[MPOPS_PORT_MAX_QP];
};

/* Internal: every case the inline path does not take (not claimed, not
 * started, epoch moved, queue pair out of range). */
MPOPS_API int mpops__port_burst_slow(struct mpops_port *port, uint16_t qp,
				     struct mpops_pkt **pkts, uint16_t n, int tx);

/* Internal: the same for entry @p q, whose epoch is not the port's (it
 * names its port and queue pair: the inline path need not keep qp). */
MPOPS_API int mpops__port_burst_stale(const struct mpops__port_fpq *q,
				      struct mpops_pkt **pkts, uint16_t n, int tx);

/*
 * Internal: mark the queue pair busy, check the epoch, call the driver.
 * The busy flag is a plain store and the check a plain load of the word
 * beside it: a stopping primary makes them ordered with membarrier(2)
 * (every CPU running an attached process executes a full barrier) before
 * it waits for busy to clear, so the fast path needs no fence of its own.
 * Who holds each buffer the burst moves is the driver's to mark, where it
 * touches the buffer anyway (port_driver.h, "Buffer marks"). The driver
 * never returns a negative count.
 */
static inline int mpops__port_burst(struct mpops_port *port, uint16_t qp,
				    struct mpops_pkt **pkts, uint16_t n, int tx)
{
	struct mpops__port_fp *fp = (struct mpops__port_fp *)port;
	const struct mpops__port_fpq *q;
	mpops_port_burst_fn fn;
	uint32_t *busy;
	int nb;

	if (__builtin_expect(qp >= MPOPS_PORT_MAX_QP, 0))
		return mpops__port_burst_slow(port, qp, pkts, n, tx);
	q = fp->q + (size_t)qp;
	busy = q->busy;
	__atomic_store_n(busy, 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (__builtin_expect(q->epoch != __atomic_load_n(busy + 1, __ATOMIC_RELAXED), 0))
		return mpops__port_burst_stale(q, pkts, n, tx);
	fn = tx ? q->tx : q->rx;
	nb = fn(q->queue, pkts, n);
	__atomic_store_n(busy, 0, __ATOMIC_RELEASE);
	return nb;
}
/** @endcond */

/**
 * Receive up to @p n packets from queue pair @p qp, claimed by this
 * process (one thread per queue pair). Each packet is a chain of mpops_pkt
 * from the port's pool; free them with mpops_pkt_free(mpops_port_pool(p)).
 * @return packets received (0 while the port is stopped or its device
 *   lost, and in a secondary once its primary is gone), -EPERM @p qp is
 *   not claimed here or does not exist (logged once per port).
 */
static inline int mpops_rx_burst(struct mpops_port *port, uint16_t qp,
				 struct mpops_pkt **pkts, uint16_t n)
{
	return mpops__port_burst(port, qp, pkts, n, 0);
}

/**
 * Transmit up to @p n packets on queue pair @p qp (claimed here). The
 * driver owns the packets it took and frees them when the device is done;
 * the rest stay the caller's. Each packet needs the driver's headroom
 * (mpops_port_info.tx_headroom) in front of its data.
 * @return packets taken (0 while stopped), -EPERM as for mpops_rx_burst().
 */
static inline int mpops_tx_burst(struct mpops_port *port, uint16_t qp,
				 struct mpops_pkt **pkts, uint16_t n)
{
	return mpops__port_burst(port, qp, pkts, n, 1);
}

/**
 * Open port @p name of region @p r in this process (any attached
 * process; read-only attaches get a handle that can look but not claim).
 * The port's driver must be registered in this process.
 * @return 0 and *out, -ENOENT no such port, or its driver is not
 *   registered here (logged with its name), -EPROTO the port was made by
 *   another version of mpops, -ENOMEM.
 */
MPOPS_API int mpops_port_open(struct mpops_region *r, const char *name,
			      struct mpops_port **out);

/**
 * Close this handle: release its claims and its per-process resources.
 * On the handle the driver's create function returned (the primary's),
 * this also stops the port, lets the driver destroy the device, and frees
 * the shared state. Not concurrently with bursts on the handle.
 * @return 0 or -EINVAL.
 */
MPOPS_API int mpops_port_close(struct mpops_port *port);

/**
 * Start the port (the primary that created it): the driver posts rx
 * buffers and hands the rings to the device; then every process's bursts
 * run (each rebuilds its fast path once). Starting a started port is a
 * no-op.
 * @return 0, -EPERM not the creator, or the driver's error (logged).
 */
MPOPS_API int mpops_port_start(struct mpops_port *port);

/**
 * Stop the port (its creator): from now on every burst in every process
 * returns 0; this waits for bursts in progress (a process that died inside
 * one is not waited for), then the driver takes the rings back. Claims
 * stay. Also the way back from a lost device: stop, then start.
 * @return 0, -EPERM.
 */
MPOPS_API int mpops_port_stop(struct mpops_port *port);

/**
 * Claim queue pair @p qp for this process, exclusively, and build its
 * fast path here. A claim whose owner died is taken over (logged).
 * @return 0 (also when this process holds it already), -EBUSY claimed by a
 *   live process (the log names its pid), -ERANGE no such queue pair,
 *   -EROFS read-only attach, or the driver's error building this
 *   process's access (e.g. -EPERM, -ENODEV; logged).
 */
MPOPS_API int mpops_port_claim(struct mpops_port *port, uint16_t qp);

/** Release a claim of this process. @return 0, -EPERM not ours, -ERANGE. */
MPOPS_API int mpops_port_release(struct mpops_port *port, uint16_t qp);

/** The port's packet pool through this handle (NULL on a read-only attach). */
MPOPS_API struct mpops_pktpool *mpops_port_pool(struct mpops_port *port);

/** The region the port lives in. */
MPOPS_API struct mpops_region *mpops_port_region(struct mpops_port *port);

/** Link state. */
struct mpops_port_link {
	int up;			/**< 1: up and started */
	uint32_t changes;	/**< link transitions since create */
	uint32_t reconnects;	/**< device (re)connections since create */
};

/** Read the link (any process; down in a secondary whose primary is gone,
 *  see mpops_region_on_primary_exit()). @return 0 or -EINVAL. */
MPOPS_API int mpops_port_link_get(struct mpops_port *port, struct mpops_port_link *l);

/** Counters of one direction of a queue pair (shared; written by its owner). */
struct mpops_port_queue_stats {
	uint64_t packets;
	uint64_t bytes;
	uint64_t errors;	/**< malformed entries from the device */
	uint64_t drops;		/**< packets dropped (no buffers, bad entries) */
	uint64_t kicks;		/**< notifications sent to the device */
};

/**
 * Counters of queue pair @p qp (either pointer may be NULL). Any process.
 * @return 0, -ERANGE, -EINVAL.
 */
MPOPS_API int mpops_port_stats_get(struct mpops_port *port, uint16_t qp,
				   struct mpops_port_queue_stats *rx,
				   struct mpops_port_queue_stats *tx);

/** Port facts, for tools. */
struct mpops_port_info {
	char name[32];
	char driver[32];		/**< the driver's implementation name, e.g. "vtnet" */
	uint16_t driver_id;		/**< its ops ID (class mpops_port_drv) */
	const void *driver_local;	/**< the driver's ops table in *this* process */
	uint8_t mac[6];
	uint16_t mtu;
	uint16_t nb_qp;
	uint16_t tx_headroom;		/**< bytes a tx packet needs before its data */
	int started;
	int32_t primary_pid;		/**< the creator */
	uint32_t epoch;
	int32_t owner_pid[MPOPS_PORT_MAX_QP];	/**< claim holders, 0 = free */
};

/** Fill @p info. Any process. @return 0 or -EINVAL. */
MPOPS_API int mpops_port_info_get(struct mpops_port *port, struct mpops_port_info *info);

/** A queue pair's claim, for tools. */
struct mpops_port_claim_info {
	size_t sz;		/**< sizeof(struct mpops_port_claim_info) */
	int32_t pid;		/**< owner, 0 = free */
	uint64_t start_time;	/**< the owner's (mpops_proc_start_time()) */
	int in_burst;		/**< 1: the owner is inside a burst (one that died
				     inside stays so until the claim is taken
				     over or the port stops) */
};

/**
 * Read queue pair @p qp's claim (any process, also a read-only attach).
 * @return 0, -ERANGE no such queue pair, -EINVAL.
 */
MPOPS_API int mpops_port_claim_info(struct mpops_port *port, uint16_t qp,
				    struct mpops_port_claim_info *ci);

/**
 * Where the buffers of the port's pool are (mpops_pktpool_census()), with
 * on_queue[] and on_rings_anyq counting this port's rings. Any process,
 * also a read-only attach.
 * @return 0, or mpops_pktpool_census()'s error.
 */
MPOPS_API int mpops_port_pool_census(struct mpops_port *port, struct mpops_pktpool_census *c);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_PORT_H */
