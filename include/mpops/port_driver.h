/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file port_driver.h
 * Ports: the driver SDK. What a port driver implements, and what the
 * library gives it. Applications use port.h; doc/PORTING.md walks through
 * writing a driver.
 *
 * A driver is one implementation of the ops class mpops_port_drv,
 * registered in every process with MPOPS_OPS_IMPL(mpops_port_drv, name,
 * &ops). The shared port stores its ops ID; each process calls its own
 * table. Every op runs in the process that calls it and gets that
 * process's handle; none may store a pointer, fd or function address in
 * shared memory (put fds and mappings in the per-process slot, see
 * slot_attach). All ops must be filled in; mpops_port_open() refuses a
 * driver with a NULL op (-EINVAL, naming it).
 *
 * What the library does, written once for every driver: the shared port
 * header (name, state, link, queue count, claims, counters, MAC/MTU), the
 * per-process fast-path table and its rebuild when the epoch moves,
 * open-by-name, claims with dead-owner takeover, start/stop with the wait
 * for bursts in progress in every process, link and counters, the
 * per-process slot (built on first use, rebuilt at each epoch, torn down
 * at close), and handing a process the driver's fds over the control
 * channel (fds_export in the primary, mpops_port_fds_get() anywhere).
 */
#ifndef MPOPS_PORT_DRIVER_H
#define MPOPS_PORT_DRIVER_H

#include <mpops/ops.h>
#include <mpops/port.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Who holds a buffer, as the bursts of one queue pair in this process mark
 * it (mpops_pkt.flags; the census and the recovery of a dead process's
 * buffers read it). Constant for a claim: a driver copies them into its
 * queue context at queue_setup.
 */
struct mpops_port_marks {
	uint32_t own;		/**< held by this process (what rx returns) */
	uint32_t ring_rx;	/**< on the queue pair's rx ring (what rx posts) */
	uint32_t ring_tx;	/**< on its tx ring (what tx takes) */
};

/** What a driver's queue_setup is given and fills for this process. */
struct mpops_port_queue {
	mpops_port_burst_fn rx;	/**< filled: called as rx(queue, pkts, n) */
	mpops_port_burst_fn tx;	/**< filled: called as tx(queue, pkts, n) */
	void *queue;		/**< filled: the driver's per-process context */
	struct mpops_port_marks marks;	/**< given: the queue pair's buffer marks */
};

/*
 * Buffer marks: a driver's duty in its bursts. The port layer does not
 * walk the packets of a burst; the driver does, and marks each buffer
 * where it touches it anyway (its flags word shares the line with the
 * lengths and addresses the driver reads or writes), with the values
 * queue_setup was given:
 *  - tx: each packet it takes (its first segment), mpops_port_mark_ring()
 *    with marks.ring_tx, before any of the driver's ring state names it;
 *    what it does not take stays unmarked (the caller's). One it drops is
 *    freed, marked or not.
 *  - rx: each packet it returns (its first segment; later segments go with
 *    it), mpops_port_mark_own() with marks.own, once none of the driver's
 *    ring state names it any more (consumed, journaled: what a new owner's
 *    queue_takeover would not find in flight).
 *  - what a burst posts for the device (rx refills) is allocated with
 *    mpops_pkt_alloc_bulk_mark() (pkt.h) and marks.ring_rx, so it is the
 *    ring's before it is posted.
 * So a process killed at any instruction of a burst leaves each buffer
 * either its own (the primary gives it back to the pool) or the ring's
 * (the device holds it, or queue_takeover and the stop's recovery give it
 * back), never both. The marks of start's fills are the port layer's
 * (mpops_port_fill_mark()).
 */

/**
 * Mark @p m (a first segment) as on a ring, @p ring a mark of
 * struct mpops_port_marks, before the driver's state names it: the driver's
 * later stores stay after this one (a compiler barrier; stores reach
 * memory in program order on the CPUs mpops runs on, and a killed process
 * stops between instructions). One plain store.
 */
static inline void mpops_port_mark_ring(struct mpops_pkt *m, uint32_t ring)
{
	__atomic_store_n(&m->flags, ring, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/**
 * Mark @p m (a first segment) as this process's, @p own from
 * struct mpops_port_marks, after the driver's state stopped naming it: the
 * driver's earlier stores stay before this one. One plain store.
 */
static inline void mpops_port_mark_own(struct mpops_pkt *m, uint32_t own)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&m->flags, own, __ATOMIC_RELAXED);
}

/**
 * The port driver ops. "Any process" ops run in whichever process calls;
 * "creator" ops only in the primary that created the port.
 *  - open (any process): build this process's handle of the driver's
 *    shared state (map its rings, its shared block) into *priv. 0 or -errno.
 *  - close (any process): free what open built. In the creator
 *    (mpops_port_is_creator()) also destroy the device: the port is
 *    stopped and every other handle's claims are gone by then.
 *  - start (creator): post rx buffers, hand the rings to the device.
 *  - stop (creator): take the rings back and free their buffers. Called
 *    after every burst in every process has left.
 *  - slot_attach (any process): build this process's slot for the port:
 *    what only it can hold (its copies of the driver's fds from
 *    mpops_port_fds_get(), its own device mappings). Rebuilt at every epoch.
 *  - slot_detach (any process): release what slot_attach built.
 *  - fds_export (creator, also on the control-channel thread): put up to
 *    @p max of the creator's fds that every process needs into @p fds
 *    (they are duplicated or sent, never closed). Returns the count.
 *  - queue_setup (any process): fill @p q with this process's burst
 *    functions and context for queue pair @p qp, using @p slot, which is
 *    current now; the context may keep it: the port layer calls
 *    queue_setup again before any burst runs at a later epoch. Runs at claim
 *    and after each epoch move. @p q->marks holds the marks the bursts
 *    write on the buffers they move (see "Buffer marks" above): the
 *    context keeps them.
 *  - queue_takeover (any process): this process just took the claim on
 *    queue pair @p qp from a dead owner (pid @p dead; its claim taken over
 *    here, or released by the primary when it noticed the death), and the
 *    port is started: rebuild the queue pair's shared state from what is
 *    really in flight, before queue_setup and any burst. The owner may have
 *    died at any point, inside a burst or not: the op must not rely on
 *    knowing which (the busy word is cleared by then), and finds nothing to
 *    do when the owner died between bursts. What a half-done burst took
 *    (descriptors, buffers) goes back: descriptors to the free list,
 *    buffers with mpops_port_queue_recover(); what it did is counted by
 *    the driver. @p slot is this process's, current now (to notify the
 *    device). Runs marked busy, so a stopping primary waits for it.
 *    0, or -errno: the claim fails (logged by the port layer).
 */
#define MPOPS_PORT_DRV_OPS(OP)                                                 \
	OP(int, open, (struct mpops_port *, void ** /* priv */))               \
	OP(int, close, (struct mpops_port *, void * /* priv */))               \
	OP(int, start, (struct mpops_port *))                                  \
	OP(int, stop, (struct mpops_port *))                                   \
	OP(int, slot_attach, (struct mpops_port *, void ** /* slot */))        \
	OP(int, slot_detach, (struct mpops_port *, void * /* slot */))         \
	OP(int, fds_export, (struct mpops_port *, int * /* fds */, int /* max */)) \
	OP(int, queue_setup, (struct mpops_port *, uint16_t /* qp */,          \
			      void * /* slot */,                               \
			      struct mpops_port_queue * /* q */))              \
	OP(int, queue_takeover, (struct mpops_port *, uint16_t /* qp */,       \
				 void * /* slot */, int32_t /* dead owner pid */))

MPOPS_OPS_CLASS_DECLARE(mpops_port_drv, MPOPS_PORT_DRV_OPS)

/** Most fds fds_export may hand out. */
#define MPOPS_PORT_FDS_MAX 64

/** What the driver's create function passes to mpops_port_create(). */
struct mpops_port_conf {
	size_t sz;		/**< sizeof(struct mpops_port_conf) */
	uint16_t nb_qp;		/**< 1..MPOPS_PORT_MAX_QP */
	uint16_t mtu;		/**< 0 = 1500 */
	uint16_t tx_headroom;	/**< bytes tx packets need before their data */
	uint8_t mac[6];		/**< all zero: a locally administered one */
	uint32_t pool_size;	/**< packet buffers; 0 = 8192 */
	uint32_t drv_size;	/**< bytes of shared state for the driver */
	uint16_t buf_size;	/**< packet buffer size, headroom included; 0 = the pool's default */
	uint16_t headroom;	/**< default data offset in a buffer; 0 = the pool's default */
	uint32_t buf_align;	/**< alignment of the first buffer (mpops_pktpool_opts.data_align) */
};

/**
 * Create port @p name in @p r (primary) for the driver @p drv: the shared
 * header, @c drv_size bytes of zeroed shared driver state
 * (mpops_port_drv_shared()), the packet pool, the per-process slot object.
 * The port is not visible to mpops_port_open() until mpops_port_publish().
 * Then the driver's open op runs in this process.
 * @return 0 and *out, -EINVAL bad conf or name (longer than 24), -EEXIST
 *   name taken, -EPERM not the primary, -ENOENT @p drv not registered
 *   here, -ENOMEM/-ENOSPC region full.
 */
MPOPS_API int mpops_port_create(struct mpops_region *r, const char *name,
				const struct mpops_ops_impl *drv,
				const struct mpops_port_conf *conf,
				struct mpops_port **out);

/** Make a created port visible by name. @return 0, -EPERM, or the root table's error. */
MPOPS_API int mpops_port_publish(struct mpops_port *port);

/**
 * Another handle of the port's pool, for a driver thread of its own (pool
 * handles are per thread). Close it with mpops_pktpool_close().
 * @return 0 and *pool, or mpops_pktpool_open()'s error.
 */
MPOPS_API int mpops_port_pool_open(struct mpops_port *port, struct mpops_pktpool **pool);

/** This process's driver handle (what open returned). */
MPOPS_API void *mpops_port_priv(struct mpops_port *port);

/** The driver's shared state (mpops_port_conf.drv_size bytes), this process's address. */
MPOPS_API void *mpops_port_drv_shared(struct mpops_port *port);

/** The port's name. */
MPOPS_API const char *mpops_port_name(struct mpops_port *port);

/** Its number of queue pairs. */
MPOPS_API uint16_t mpops_port_nb_qp(struct mpops_port *port);

/** Its MAC address (6 bytes, shared). */
MPOPS_API uint8_t *mpops_port_mac(struct mpops_port *port);

/** Is this handle the creator's (the primary that can start, stop and destroy)? */
MPOPS_API int mpops_port_is_creator(struct mpops_port *port);

/** Is the port started (bursts run)? */
MPOPS_API int mpops_port_is_started(struct mpops_port *port);

/**
 * The shared counters of queue pair @p qp (0 rx, 1 tx), for the driver's
 * fast path to update in place. Written by the queue pair's owner only.
 */
MPOPS_API struct mpops_port_queue_stats *mpops_port_stats_ref(struct mpops_port *port,
							     uint16_t qp, int tx);

/**
 * This process's slot for the port, built on first use and rebuilt when
 * the epoch moved. Valid only while the epoch is what *epoch says: keep
 * both, and call again when mpops_port_epoch() differs.
 * @return 0 and *slot, *epoch, or slot_attach's error.
 */
MPOPS_API int mpops_port_slot(struct mpops_port *port, void **slot, uint32_t *epoch);

/** The port's current epoch (a relaxed load). */
MPOPS_API uint32_t mpops_port_epoch(struct mpops_port *port);

/**
 * Copies of the creator's fds that this process needs (the driver's
 * fds_export): duplicated in the creator, received over the control
 * channel in any other process. The caller owns them.
 * @return the count (0..max), -ENOTCONN primary gone, -EBADMSG more than
 *   @p max, or fds_export's error.
 */
MPOPS_API int mpops_port_fds_get(struct mpops_port *port, int *fds, int max);

/**
 * Set the link state (creator; any thread, e.g. a link monitor).
 * @return 1 when it changed (a transition is counted), 0 when it was so.
 */
MPOPS_API int mpops_port_link_set(struct mpops_port *port, int up);

/**
 * The device is gone (creator, any thread): link down, bursts stop in
 * every process (this waits for those in progress), caches go stale. The
 * driver then takes its rings back itself. @p why is logged first, as
 * "port NAME: WHY" (NULL: nothing logged), so say what happened and what to
 * do. Returns 0, or
 * -EALREADY when the port was not started.
 */
MPOPS_API int mpops_port_lost(struct mpops_port *port, const char *why);

/**
 * The device is back and the driver handed it the rings again (creator,
 * any thread): caches go stale, bursts run again, link up, reconnects
 * counted. @return 0, -EALREADY the port was not lost (not started, or
 *   stopped since: it stays stopped).
 */
MPOPS_API int mpops_port_restored(struct mpops_port *port);

/**
 * Buffers the device keeps across a stop (creator, in the stop op): those
 * it cannot be made to give back, such as the frames on an AF_XDP fill
 * ring, which the kernel may still take. They stay counted as on queue
 * pair @p qp's rx ring (tx ring when @p tx), and the check after stop,
 * which gives back to the pool every buffer still marked as on the port's
 * rings, leaves them. The burst that later returns one (rx) or completes
 * it (tx) makes it an ordinary buffer again.
 * @return 0, -EPERM not the creator, -EINVAL a bad queue pair or a
 *   buffer that is not allocated.
 */
MPOPS_API int mpops_port_bufs_kept(struct mpops_port *port, uint16_t qp, int tx,
				   struct mpops_pkt **pkts, unsigned n);

/**
 * For queue_takeover: give back to the pool every buffer still marked as on
 * queue pair @p qp's rx (@p tx 0) or tx ring that the driver does not hold:
 * all but the @p nkeep packets in @p keep (the first segments of what the
 * device still has; their later segments stay too). A burst whose process
 * died inside leaves such buffers between the marks it wrote and the
 * driver's state (mpops_port_stop() gives back those of every queue). The
 * owner of @p qp in this process, outside a burst. Logs a line when it gave
 * some back.
 * @return buffers given back, -EINVAL, -ENOMEM, -ENOTRECOVERABLE (the
 *   pool's lock, logged).
 */
MPOPS_API int mpops_port_queue_recover(struct mpops_port *port, uint16_t qp, int tx,
				       struct mpops_pkt *const *keep, unsigned nkeep);

/**
 * For start: buffers the driver allocates through the port's pool handle
 * from now on are marked as on queue pair @p qp's rx (@p tx 0) or tx ring
 * (@p qp < 0: on one of the port's rings, which one not known), so that a
 * queue's new owner can tell them apart (mpops_port_queue_recover()). Only
 * inside the start op; the port layer resets it after.
 */
MPOPS_API void mpops_port_fill_mark(struct mpops_port *port, int qp, int tx);

/**
 * The marks of queue pair @p qp's rings, for buffers a driver posts outside
 * a burst and outside start: a thread of the creator that refills the rings
 * when the device comes back, through a pool handle of its own
 * (mpops_pkt_alloc_bulk_mark() with @c ring_rx). @c own is the port
 * handle's, not that thread's. Any process, any thread.
 * @return 0, -ERANGE no such queue pair, -EINVAL.
 */
MPOPS_API int mpops_port_queue_marks(struct mpops_port *port, uint16_t qp,
				     struct mpops_port_marks *m);

/** Count a (re)connection of the device (creator). */
MPOPS_API void mpops_port_connected(struct mpops_port *port);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_PORT_DRIVER_H */
