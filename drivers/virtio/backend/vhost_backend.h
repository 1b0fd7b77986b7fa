/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-vhost: a vhost-user backend (the device side of a virtio-net
 * device) in one process and one thread. Private to the program.
 *
 * vhost_backend.c speaks the protocol on the Unix socket and owns the
 * memory table and ring set-up; vhost_ring.c moves packets through split
 * virtqueues; main.c parses the command line, runs the loop and prints.
 *
 * Queue 2k is the frontend's rx queue k (we write packets into it), queue
 * 2k+1 its tx queue k (we read packets from it).
 *
 * Nothing here is thread-safe: the single thread that runs vb_run() does
 * everything, so control messages are handled between ring passes and
 * never race the data path.
 */
#ifndef MPOPS_VHOST_BACKEND_H
#define MPOPS_VHOST_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#include <linux/virtio_ring.h>

#include "vhost_user.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* virtio 1.x rings are little-endian; we access them in native order. */
#error "mpops-vhost supports little-endian hosts only"
#endif

#define VB_MAX_QUEUE_PAIRS 8
#define VB_MAX_QUEUES (2 * VB_MAX_QUEUE_PAIRS)
/* Largest split ring the virtio spec allows. */
#define VB_MAX_RING_SIZE 32768u
/* Buffers handled per ring per pass, and per used-index update. */
#define VB_BURST 64u
/* Error lines logged per connection before we only count them. */
#define VB_ERR_LOG_LIMIT 32u

enum vb_mode {
	VB_MODE_LOOPBACK,	/* tx queue k -> rx queue k (with cross: k + 1) */
	VB_MODE_SINK,		/* count and drop */
	VB_MODE_SOURCE,		/* generate into every rx queue */
};

struct vb_opts {
	const char *socket_path;
	bool client;		/* connect to a listening frontend */
	enum vb_mode mode;
	bool cross;		/* loopback: tx queue k -> rx queue (k + 1) % queue_pairs */
	unsigned queue_pairs;
	unsigned pkt_size;	/* source mode: Ethernet frame bytes */
	bool kick_driven;	/* sleep on kick eventfds instead of polling */
	bool quiet;		/* no per-second lines */
	double duration;	/* seconds, 0 = until a signal */
	uint64_t features;	/* virtio feature bits we offer */
	uint64_t protocol_features;	/* vhost-user protocol features we offer */
};

/* One SET_MEM_TABLE region as mapped here. */
struct vb_region {
	uint64_t gpa;		/* guest-physical start (descriptor addresses) */
	uint64_t uva;		/* frontend's virtual start (ring addresses) */
	uint64_t size;
	uint8_t *host;		/* our address of gpa/uva */
	void *map;		/* what munmap() needs */
	size_t map_len;
};

struct vb_vq {
	/* What the frontend set. */
	uint32_t num;		/* ring size, 0 = not set */
	bool addr_set;
	uint64_t desc_uva, avail_uva, used_uva;
	int kickfd, callfd, errfd;
	bool started;		/* SET_VRING_KICK seen, no GET_VRING_BASE since */
	bool enabled;		/* SET_VRING_ENABLE (or no protocol features) */
	bool broken;		/* the frontend corrupted the ring indices */
	bool ready;		/* started, enabled, translated, not broken */

	/* Our addresses of the ring, valid while the memory table is. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;

	uint16_t last_avail;	/* next avail slot we consume */
	uint16_t avail_cache;	/* avail->idx as last read */
	uint16_t used_idx;	/* next used slot we fill */
	uint16_t pub_used;	/* used->idx as last published */
	uint16_t signalled_used;	/* used index at the last call decision */
	bool signalled_valid;
	bool notify_on;		/* are we asking the frontend for kicks? */
	bool pending;		/* kick-driven: serve again without a kick */

	struct iovec *iov;	/* scratch for descriptor chains, num entries */
	unsigned iov_cap;
};

struct vb_stats {
	uint64_t received_packets;	/* from the frontend's tx queues */
	uint64_t received_bytes;
	uint64_t sent_packets;		/* into the frontend's rx queues */
	uint64_t sent_bytes;
	uint64_t drops;
	uint64_t errors;
	uint64_t calls;
	uint64_t kicks[VB_MAX_QUEUES];
	uint64_t connections;
};

struct vb_dev {
	const struct vb_opts *opts;
	int listen_fd;		/* server mode */
	int conn_fd;		/* current frontend, -1 = none */
	int epfd;
	bool created_socket;	/* unlink it on exit */

	/* Negotiated state, reset on every disconnect. */
	uint64_t features;
	uint64_t protocol_features;
	uint64_t status;
	bool owner;
	unsigned hdr_len;	/* virtio-net header: 12 or 10 bytes */
	unsigned nregions;
	struct vb_region regions[VHOST_USER_MEMORY_MAX_NREGIONS];
	unsigned last_region;	/* translation cache */
	struct vb_vq vq[VB_MAX_QUEUES];
	unsigned err_logged;	/* error lines this connection */
	bool small_buf_logged;

	uint8_t *frame;		/* source mode: the frame we send */
	uint64_t seq;		/* source mode: frame sequence number */
	struct vb_stats st;
};

/* Tags of epoll events that are not kick fds (kick fds use the queue index). */
#define VB_EV_LISTEN 0x10000u
#define VB_EV_CONN 0x10001u

/* ---- vhost_backend.c: protocol and set-up ---- */

void vb_dev_init(struct vb_dev *dev, const struct vb_opts *opts);
/** Listen (server) or prepare to connect (client). @return 0 or -errno. */
int vb_socket_open(struct vb_dev *dev);
void vb_socket_close(struct vb_dev *dev);
/** Accept a waiting frontend. @return 1 connected, 0 none yet, -errno. */
int vb_accept(struct vb_dev *dev);
/** Client mode: try once to connect. @return 1 connected, 0 not yet, -errno. */
int vb_connect(struct vb_dev *dev);
/** Read and handle one message. @return 0, or -errno: drop the connection. */
int vb_conn_handle(struct vb_dev *dev);
/** Forget the frontend: close, unmap, reset every ring. */
void vb_disconnect(struct vb_dev *dev, const char *why);

/* Log one line to stderr, prefixed with the program name. */
void vb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Count an error and log it (up to VB_ERR_LOG_LIMIT lines a connection). */
void vb_err(struct vb_dev *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Our address of [gpa, gpa + len) if one region holds all of it, else NULL. */
void *vb_gpa_to_host(struct vb_dev *dev, uint64_t gpa, uint64_t len);

/** Catch SIGBUS on guest memory from now on (see vb_guarded). @return 0 or -errno. */
int vb_fault_init(void);
/**
 * Run @fn(@dev, @q) so that a fault on guest memory (the frontend shrank a
 * file of its memory table) ends the call instead of the process: the memory
 * table is then dropped and every ring stopped until the frontend sends a
 * new one (one line, one error counted). Every access to guest memory runs
 * under this guard; guarded calls may nest.
 * @return what @fn returned, or -EFAULT after a fault.
 */
int vb_guarded(struct vb_dev *dev, unsigned q, int (*fn)(struct vb_dev *dev, unsigned q));

static inline bool vb_has_feature(const struct vb_dev *dev, unsigned bit)
{
	return (dev->features >> bit) & 1;
}

/* ---- vhost_ring.c: the data path ---- */

/* A ring just became ready: set its notification state, then serve it. */
void vb_vq_on_ready(struct vb_dev *dev, unsigned q);
/** Serve ring @q once (one burst). @return buffers processed. */
unsigned vb_vq_service(struct vb_dev *dev, unsigned q);
/** Kick-driven service: drain the ring, re-enable kicks, re-check. */
void vb_vq_service_kicked(struct vb_dev *dev, unsigned q);
/** Build the source-mode frame (once). @return 0 or -ENOMEM. */
int vb_source_init(struct vb_dev *dev);

#endif
