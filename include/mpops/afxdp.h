/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file afxdp.h
 * afxdp: an AF_XDP poll-mode driver on mpops, the second driver on the
 * port layer (port.h), and one whose secondaries receive and transmit.
 *
 * The primary creates a port with afxdp_port_create(): one XSK socket per
 * queue pair, bound to queues start_queue.. of the interface, sharing one
 * UMEM that is the port's packet pool (its buffers are the frames, so
 * nothing is copied between the rings and the application), and an XDP
 * program (loaded through libbpf, attached with a bpf link, so it goes
 * away with the primary) that redirects those queues to the sockets. From
 * then on it is an mpops port like any other. Every process, primary or
 * secondary, maps the four rings of a socket itself from its own copy of
 * the socket's fd (handed over by the port layer) and kicks through it;
 * the shared state holds data only.
 *
 * Link state follows the interface: when it goes down (or away), bursts
 * return 0 in every process and the link reads down; when it is up again,
 * traffic resumes with the claims held.
 *
 * Needs CAP_NET_RAW and CAP_BPF (or CAP_SYS_ADMIN) in the primary only;
 * secondaries need no capability.
 */
#ifndef MPOPS_AFXDP_H
#define MPOPS_AFXDP_H

#include <stdint.h>

#include <mpops/common.h>
#include <mpops/ops.h>
#include <mpops/port.h>
#include <mpops/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most queue pairs (interface queues) a port can have. */
#define AFXDP_MAX_QP 16

/* The driver's registered implementation (class mpops_port_drv, "afxdp").
 * Including this header links the driver into the program. */
MPOPS_OPS_IMPL_DECLARE(mpops_port_drv, afxdp)
MPOPS_OPS_IMPL_REQUIRE(mpops_port_drv, afxdp)

/** XDP attach modes (afxdp_conf.xdp_mode). */
enum afxdp_xdp_mode {
	AFXDP_XDP_AUTO = 0,	/**< native; generic when the driver has none (logged) */
	AFXDP_XDP_NATIVE = 1,	/**< native (driver) mode, or -EOPNOTSUPP */
	AFXDP_XDP_GENERIC = 2,	/**< generic (skb) mode */
};

/** Zero-copy (afxdp_conf.zero_copy). */
enum afxdp_zero_copy {
	AFXDP_ZC_AUTO = 0,	/**< try zero-copy, fall back to copy (logged) */
	AFXDP_ZC_ON = 1,	/**< zero-copy, or -EOPNOTSUPP */
	AFXDP_ZC_OFF = 2,	/**< copy mode */
};

/** Port configuration (primary). Zero-initialise, set @c sz. */
struct afxdp_conf {
	size_t sz;		/**< sizeof(struct afxdp_conf) */
	const char *iface;	/**< the interface (required) */
	uint16_t start_queue;	/**< its first queue; queue pair i is queue start_queue + i */
	uint16_t nb_qp;		/**< queue pairs; 0 = 1 */
	int xdp_mode;		/**< enum afxdp_xdp_mode */
	int zero_copy;		/**< enum afxdp_zero_copy */
	uint16_t frame_size;	/**< UMEM frame (packet buffer) size: 2048 or 4096; 0 = 2048 */
	uint32_t ring_size;	/**< entries of each ring (power of two, 64..8192); 0 = 1024 */
	uint32_t pool_size;	/**< frames; 0 = 4 * ring_size per queue pair */
	int busy_poll;		/**< > 0: SO_PREFER_BUSY_POLL with this budget, when
				     the kernel offers it (logged if not) */
	uint8_t mac[6];		/**< all zero: the interface's */
};

/**
 * Create port @p name in region @p r (primary): the pool in UMEM layout,
 * the sockets, the XDP program. The port is not started (start attaches
 * the queues to the program and fills the fill rings).
 * @return 0 and *out, or -EINVAL bad conf (logged), -ENODEV no such
 *   interface, -EPERM no capability (CAP_NET_RAW, CAP_BPF), -EOPNOTSUPP
 *   zero-copy or native mode asked and refused, -EBUSY a queue already
 *   has a socket or the interface another XDP program, -ERANGE a queue
 *   the interface does not have, or mpops_port_create()'s error. Each
 *   logged in one line.
 */
MPOPS_API int afxdp_port_create(struct mpops_region *r, const char *name,
				const struct afxdp_conf *conf, struct mpops_port **out);

/**
 * Create from a key=value list, as a command line or devargs give it:
 * "iface=veth0,start_queue=0,queues=2,mode=auto|native|generic,
 * zero_copy=auto|on|off,frame_size=2048,ring_size=1024,pool_size=N,
 * busy_poll=N". @return as afxdp_port_create(), -EINVAL an unknown key or
 *   a bad value (logged).
 */
MPOPS_API int afxdp_port_create_args(struct mpops_region *r, const char *name,
				     const char *args, struct mpops_port **out);

/** What a port runs with, and its queues' kernel counters. */
struct afxdp_info {
	size_t sz;		/**< sizeof(struct afxdp_info) */
	char iface[16];
	uint32_t ifindex;
	uint16_t start_queue;
	uint16_t nb_qp;
	int native;		/**< 1: native XDP, 0: generic */
	int zero_copy;		/**< 1: zero-copy, 0: copy */
	int busy_poll;		/**< budget in use, 0: off */
	uint32_t ring_size;
	uint32_t frame_size;
	uint32_t nb_frames;
	/** XDP_STATISTICS of each queue's socket (read through this process's fd;
	 *  zero in a process that has no slot yet). */
	struct afxdp_queue_info {
		uint64_t rx_dropped;
		uint64_t rx_invalid;
		uint64_t tx_invalid;
		uint64_t rx_ring_full;
		uint64_t fill_ring_empty;
		uint64_t tx_ring_empty;
	} q[AFXDP_MAX_QP];
};

/** Fill @p info (any process). @return 0, -EINVAL not an afxdp port or bad sz. */
MPOPS_API int afxdp_info_get(struct mpops_port *port, struct afxdp_info *info);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_AFXDP_H */
