/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * afxdp internals: the driver's shared block (data only), the per-process
 * handle, and the per-process slot with this process's own ring mappings.
 */
#ifndef MPOPS_AFXDP_PRIV_H
#define MPOPS_AFXDP_PRIV_H

#include <net/if.h>
#include <pthread.h>
#include <stdatomic.h>
#include <xdp/xsk.h>

#include <mpops/afxdp.h>
#include <mpops/mpops.h>
#include <mpops/pkt.h>
#include <mpops/port_driver.h>

#define AFXDP_MAGIC 0x50445841u /* "AXDP" */
#define AFXDP_VERSION 1

/* Where the kernel puts received data in a frame (XDP_PACKET_HEADROOM),
 * and where tx packets start by default: the same offset both ways. */
#define AX_HEADROOM 256

#define ax_err(...) mpops_log(MPOPS_LOG_ERR, __VA_ARGS__)
#define ax_warn(...) mpops_log(MPOPS_LOG_WARN, __VA_ARGS__)
#define ax_info(...) mpops_log(MPOPS_LOG_INFO, __VA_ARGS__)

/* The driver's shared block: what every process needs to find its own
 * way to the sockets and the frames. Data only. */
struct afxdp_shared {
	uint32_t magic;
	uint32_t version;
	char iface[IF_NAMESIZE];
	uint32_t ifindex;
	uint16_t start_queue;
	uint16_t nb_qp;
	uint32_t ring_size;
	uint32_t frame_size;		/* = the pool's buffer size and stride */
	uint32_t frame_shift;		/* log2(frame_size) */
	uint32_t nb_frames;
	int32_t native;			/* 1 native XDP, 0 generic */
	int32_t zero_copy;
	int32_t busy_poll;
	uint32_t pad;
	mpops_off_t umem_off;		/* region offset of frame 0 (the pool's buffer 0) */
	mpops_off_t meta_off;		/* region offset of frame 0's mpops_pkt */
};

/* One queue pair's rings in one process: its mappings of the socket's
 * rings, through its own copy of the fd. */
struct afxdp_q {
	struct afxdp_port *p;
	uint16_t qp;
	int fd;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	void *map[4];
	size_t map_len[4];
	struct mpops_port_queue_stats *rxst, *txst;
	uint32_t logged;		/* AXQ_LOG_* said once in this process */
	struct mpops_port_marks marks;	/* what bursts mark their frames (queue_setup;
					   0 in the creator's start: the port's mark) */
};

enum { AXQ_LOG_RX = 1, AXQ_LOG_COMP = 2, AXQ_LOG_TX = 4, AXQ_LOG_KICK = 8 };

/* The per-process slot: every queue pair's rings, rebuilt at each epoch. */
struct afxdp_slot {
	uint16_t nb_qp;
	struct afxdp_q q[AFXDP_MAX_QP];
};

/* This process's handle of the port. */
struct afxdp_port {
	struct mpops_port *port;
	struct afxdp_shared *sh;
	char *base;			/* region base here */
	char *umem;			/* frame 0 here */
	struct mpops_pkt *meta;		/* frame 0's mpops_pkt here */
	struct mpops_pktpool *pool;
	/* Copies of the shared facts the fast path bounds addresses with,
	 * checked at open: shared memory can change under us. */
	uint32_t frame_shift, frame_size, nb_frames, ring_size;
	mpops_off_t umem_off;
	uint16_t nb_qp;
	int creator;
	/* Creator only: the sockets, the program, its own view of the rings
	 * (for start, stop and close), the link monitor. */
	int xsk_fd[AFXDP_MAX_QP];
	struct afxdp_q cq[AFXDP_MAX_QP];
	int map_fd, prog_fd, link_fd;
	int mon_efd;
	int mon_started;
	pthread_t mon;
	atomic_int link_lost;		/* the monitor reported the link down */
};

/* rxtx.c */
int afxdp_rx(void *ctx, struct mpops_pkt **pkts, uint16_t n);
int afxdp_tx(void *ctx, struct mpops_pkt **pkts, uint16_t n);
void afxdp_complete(struct afxdp_q *q);
int afxdp_fill(struct afxdp_q *q, uint32_t min);

/* xsk.c */
int afxdp_rings_map(struct afxdp_port *p, struct afxdp_q *q, uint16_t qp, int fd);
void afxdp_rings_unmap(struct afxdp_q *q);
void afxdp_rings_sync(struct afxdp_q *q);
int afxdp_sockets_create(struct afxdp_port *p, int zc_mode);
int afxdp_prog_attach(struct afxdp_port *p, int xdp_mode);
int afxdp_queue_attach(struct afxdp_port *p, uint16_t qp, int on);
void afxdp_settle(struct afxdp_port *p);
int afxdp_iface_up(const char *iface);
int afxdp_monitor_start(struct afxdp_port *p);
void afxdp_monitor_stop(struct afxdp_port *p);

/* The frame that UMEM address @addr points into, or NULL when it is not
 * one (the rings are memory other processes, and in zero-copy mode the
 * device, can write). */
static inline struct mpops_pkt *afxdp_frame(const struct afxdp_port *p, uint64_t addr)
{
	uint64_t i = addr >> p->frame_shift;

	return i < p->nb_frames ? &p->meta[i] : NULL;
}

#endif /* MPOPS_AFXDP_PRIV_H */
