/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "user" transport: virtio-user over the vhost-user protocol.
 *
 * The primary is the vhost-user frontend: it owns the connection to the
 * backend (client mode, or server mode where the backend connects), the
 * kick and call eventfds, and emulates what a vhost-user backend does not
 * do for a net device: MAC, link status, the control virtqueue and MQ
 * (turned into SET_VRING_ENABLE), as DPDK's virtio-user does.
 *
 * notify_queue writes to *this process's* copy of the queue's kick eventfd,
 * found in its per-process slot: the primary's own dup, or the copy a
 * secondary received over the control channel.
 *
 * A monitor thread in the primary watches the connection: when the
 * backend goes away the link goes down in every process (no SIGPIPE:
 * every send uses MSG_NOSIGNAL) and bursts return 0; when a backend
 * connects again (server mode) or can be reached again (client mode), the
 * rings are handed over afresh and the link comes back.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vhost_user.h"
#include "vtnet_priv.h"

#define vt_err(...) mpops_log(MPOPS_LOG_ERR, __VA_ARGS__)
#define vt_warn(...) mpops_log(MPOPS_LOG_WARN, __VA_ARGS__)
#define vt_info(...) mpops_log(MPOPS_LOG_INFO, __VA_ARGS__)

#define REPLY_TIMEOUT_MS 5000
#define EMULATED_FEATURES                                                     \
	(BIT64(VIRTIO_NET_F_MAC) | BIT64(VIRTIO_NET_F_STATUS) | BIT64(VIRTIO_NET_F_CTRL_VQ))

struct vtnet_dev {
	struct vtnet_port *p;
	char path[108];
	int server;
	int timeout_ms;
	int listen_fd;
	int sock;			/* -1 while no backend */
	pthread_mutex_t mu;		/* one vhost-user exchange at a time */
	uint64_t backend_features;
	uint64_t protocol_features;
	int nkick;
	int kickfd[VTNET_MAX_VQ];
	int callfd[VTNET_MAX_VQ];
	int want_started;		/* the port should be running */
	struct mpops_pktpool *pool;	/* the monitor thread's own pool handle */
	pthread_t mon;
	int mon_running;
	int stop_pipe[2];
};

static const char *req_name(uint32_t req)
{
	static const char *n[] = {
		[VHOST_USER_GET_FEATURES] = "GET_FEATURES",
		[VHOST_USER_SET_FEATURES] = "SET_FEATURES",
		[VHOST_USER_SET_OWNER] = "SET_OWNER",
		[VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
		[VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
		[VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
		[VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
		[VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
		[VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
		[VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
		[VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	};

	return req < sizeof(n) / sizeof(n[0]) && n[req] ? n[req] : "request";
}

/* ==== messages ========================================================== */

static int sock_send(struct vtnet_dev *d, const struct vhost_user_msg *m, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * VHOST_USER_MEMORY_MAX_NREGIONS)];
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(m->hdr) + m->hdr.size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > 0) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	do
		n = sendmsg(d->sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE || errno == ECONNRESET ? -ECONNRESET : -errno;
	return n == (ssize_t)iov.iov_len ? 0 : -EIO;
}

static int recv_full(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int rc = poll(&pf, 1, timeout_ms);

		if (rc == 0)
			return -ETIMEDOUT;
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		n = recv(fd, (char *)buf + got, len - got, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		}
		got += (size_t)n;
	}
	return 0;
}

/* Read a reply to @req of exactly @size payload bytes. */
static int recv_reply(struct vtnet_dev *d, uint32_t req, struct vhost_user_msg *m, uint32_t size)
{
	const char *name = d->p->sh->name;
	int rc = recv_full(d->sock, &m->hdr, sizeof(m->hdr), REPLY_TIMEOUT_MS);

	if (rc == 0 && m->hdr.size > sizeof(m->payload)) {
		vt_err("vtnet %s: vhost-user backend sent a %u-byte reply to %s: malformed, closing",
		       name, m->hdr.size, req_name(req));
		return -EBADMSG;
	}
	if (rc == 0)
		rc = recv_full(d->sock, &m->payload, m->hdr.size, REPLY_TIMEOUT_MS);
	if (rc == -ECONNRESET) {
		vt_err("vtnet %s: vhost-user backend closed the connection during %s", name,
		       req_name(req));
		return rc;
	}
	if (rc == -ETIMEDOUT) {
		vt_err("vtnet %s: vhost-user backend did not answer %s within %d ms", name,
		       req_name(req), REPLY_TIMEOUT_MS);
		return rc;
	}
	if (rc < 0)
		return rc;
	if (m->hdr.request != req || !(m->hdr.flags & VHOST_USER_FLAG_REPLY) ||
	    (m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION || m->hdr.size != size) {
		vt_err("vtnet %s: vhost-user backend sent a malformed reply to %s (request %u, flags %#x, size %u; expected size %u)",
		       name, req_name(req), m->hdr.request, m->hdr.flags, m->hdr.size, size);
		return -EBADMSG;
	}
	return 0;
}

/*
 * One exchange: send @req with @size payload bytes (and fds); with
 * @reply_size >= 0 read a reply of that size into @out. Set messages ask
 * for an ack when REPLY_ACK was negotiated, so a backend's refusal is seen.
 */
static int vu_call(struct vtnet_dev *d, uint32_t req, const void *payload, uint32_t size,
		   const int *fds, int nfds, int reply_size, void *out)
{
	struct vhost_user_msg m = { 0 };
	int ack = reply_size < 0 && (d->protocol_features & BIT64(VHOST_USER_PROTOCOL_F_REPLY_ACK));
	int rc;

	if (d->sock < 0)
		return -ENOTCONN;
	m.hdr.request = req;
	m.hdr.flags = VHOST_USER_VERSION | (ack ? VHOST_USER_FLAG_NEED_REPLY : 0);
	m.hdr.size = size;
	if (size)
		memcpy(&m.payload, payload, size);
	if ((rc = sock_send(d, &m, fds, nfds)) < 0) {
		vt_err("vtnet %s: cannot send %s to the vhost-user backend: %s", d->p->sh->name,
		       req_name(req), strerror(-rc));
		return rc;
	}
	if (reply_size >= 0) {
		if ((rc = recv_reply(d, req, &m, (uint32_t)reply_size)) < 0)
			return rc;
		memcpy(out, &m.payload, (size_t)reply_size);
	} else if (ack) {
		if ((rc = recv_reply(d, req, &m, sizeof(uint64_t))) < 0)
			return rc;
		if (m.payload.u64 != 0) {
			vt_err("vtnet %s: vhost-user backend refused %s (status %llu)", d->p->sh->name,
			       req_name(req), (unsigned long long)m.payload.u64);
			return -EIO;
		}
	}
	return 0;
}

/* ==== connection ======================================================== */

static int connect_once(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Client: connect, retrying until @timeout_ms; server: accept one. */
static int dev_connect(struct vtnet_dev *d, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	int fd;

	if (d->server) {
		struct pollfd pf[2] = {
			{ .fd = d->listen_fd, .events = POLLIN },
			{ .fd = d->stop_pipe[0], .events = POLLIN },
		};
		int rc = poll(pf, d->stop_pipe[0] >= 0 ? 2 : 1, timeout_ms);

		if (rc <= 0 || !(pf[0].revents & POLLIN))
			return rc < 0 ? -errno : -ETIMEDOUT;
		fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	for (;;) {
		struct timespec ts = { 0, 50 * 1000000 };

		fd = connect_once(d->path);
		if (fd >= 0 || (fd != -ENOENT && fd != -ECONNREFUSED) || now_ms() >= end)
			return fd;
		nanosleep(&ts, NULL);
	}
}

/* The session set-up every (re)connection needs. */
static int dev_handshake(struct vtnet_dev *d)
{
	struct vtnet_port_shared *sh = d->p->sh;
	uint64_t f = 0, pf = 0, qn = 1;
	int rc;

	d->protocol_features = 0;
	if ((rc = vu_call(d, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, -1, NULL)) < 0 ||
	    (rc = vu_call(d, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0, 8, &f)) < 0)
		return rc;
	if (f & BIT64(VHOST_USER_F_PROTOCOL_FEATURES)) {
		if ((rc = vu_call(d, VHOST_USER_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, 8, &pf)) < 0)
			return rc;
		pf &= BIT64(VHOST_USER_PROTOCOL_F_MQ) | BIT64(VHOST_USER_PROTOCOL_F_REPLY_ACK);
		if ((rc = vu_call(d, VHOST_USER_SET_PROTOCOL_FEATURES, &pf, 8, NULL, 0, -1, NULL)) < 0)
			return rc;
		d->protocol_features = pf;
		if ((pf & BIT64(VHOST_USER_PROTOCOL_F_MQ)) &&
		    (rc = vu_call(d, VHOST_USER_GET_QUEUE_NUM, NULL, 0, NULL, 0, 8, &qn)) < 0)
			return rc;
	}
	if (qn == 0) {
		vt_err("vtnet %s: vhost-user backend says it has 0 queue pairs", sh->name);
		return -EBADMSG;
	}
	d->backend_features = f;
	sh->max_qp = (uint16_t)(qn > VTNET_MAX_QP ? VTNET_MAX_QP : qn);
	sh->device_features = (f & ~BIT64(VHOST_USER_F_PROTOCOL_FEATURES)) | EMULATED_FEATURES;
	if (sh->max_qp > 1)
		sh->device_features |= BIT64(VIRTIO_NET_F_MQ);
	else
		sh->device_features &= ~BIT64(VIRTIO_NET_F_MQ);
	return 0;
}

/* Features the backend is told about: the emulated ones stay here. */
static uint64_t backend_view(const struct vtnet_dev *d, uint64_t features)
{
	uint64_t f = features & ~EMULATED_FEATURES;

	if (!(d->backend_features & BIT64(VIRTIO_NET_F_MQ)))
		f &= ~BIT64(VIRTIO_NET_F_MQ);
	if (d->backend_features & BIT64(VHOST_USER_F_PROTOCOL_FEATURES))
		f |= BIT64(VHOST_USER_F_PROTOCOL_FEATURES);
	return f & d->backend_features;
}

/* ==== rings to the backend ============================================== */

static int vring_setup(struct vtnet_dev *d, uint16_t index)
{
	struct vtnet_port *p = d->p;
	struct vq *q = &p->vq[index];
	struct vhost_user_vring_state st = { .index = index, .num = q->sh->size };
	struct vhost_user_vring_addr a = {
		.index = index,
		.desc_user_addr = (uint64_t)(uintptr_t)q->desc,
		.avail_user_addr = (uint64_t)(uintptr_t)q->avail,
		.used_user_addr = (uint64_t)(uintptr_t)q->used,
	};
	uint64_t idx = index;
	int rc;

	if ((rc = vu_call(d, VHOST_USER_SET_VRING_CALL, &idx, 8, &d->callfd[index], 1, -1, NULL)) < 0 ||
	    (rc = vu_call(d, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0, -1, NULL)) < 0)
		return rc;
	st.num = 0;	/* the rings were reset: the device starts at 0 */
	if ((rc = vu_call(d, VHOST_USER_SET_VRING_BASE, &st, sizeof(st), NULL, 0, -1, NULL)) < 0 ||
	    (rc = vu_call(d, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, -1, NULL)) < 0 ||
	    (rc = vu_call(d, VHOST_USER_SET_VRING_KICK, &idx, 8, &d->kickfd[index], 1, -1, NULL)) < 0)
		return rc;
	return 0;
}

static int enable_pair(struct vtnet_dev *d, uint16_t qp, int on)
{
	int rc = 0;

	if (!(d->backend_features & BIT64(VHOST_USER_F_PROTOCOL_FEATURES)))
		return 0;	/* rings are enabled as soon as they are set up */
	for (uint16_t i = (uint16_t)(2 * qp); i <= 2 * qp + 1 && rc == 0; i++) {
		struct vhost_user_vring_state st = { .index = i, .num = on ? 1u : 0u };

		rc = vu_call(d, VHOST_USER_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0, -1, NULL);
	}
	return rc;
}

/* Hand the memory and rings to the backend (the port's queues are reset). */
static int dev_rings_start(struct vtnet_dev *d)
{
	struct vtnet_port *p = d->p;
	struct vhost_user_memory mem = { .nregions = 1 };
	uint64_t f = backend_view(d, p->sh->features);
	struct mpops_region_dev dev;
	int rc;

	/* The region's device part alone (rings and buffers): its guest
	 * address is its region offset, so a device address is an offset. */
	if ((rc = mpops_region_dev(p->r, &dev)) < 0)
		return rc;
	mem.regions[0].guest_phys_addr = dev.off;
	mem.regions[0].memory_size = dev.size;
	mem.regions[0].userspace_addr = (uint64_t)(uintptr_t)dev.addr;
	mem.regions[0].mmap_offset = 0;
	if ((rc = vu_call(d, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0, -1, NULL)) < 0 ||
	    (rc = vu_call(d, VHOST_USER_SET_MEM_TABLE, &mem,
			  (uint32_t)(8 + sizeof(mem.regions[0])), &dev.fd, 1, -1, NULL)) < 0)
		return rc;
	for (uint16_t i = 0; i < 2 * p->sh->nb_qp; i++)
		if ((rc = vring_setup(d, i)) < 0)
			return rc;
	/* Without MQ there is one pair and nobody sends VQ_PAIRS_SET. */
	if (!(p->sh->features & BIT64(VIRTIO_NET_F_MQ)))
		rc = enable_pair(d, 0, 1);
	return rc;
}

static void dev_rings_stop(struct vtnet_dev *d)
{
	struct vtnet_port *p = d->p;

	for (uint16_t qp = 0; qp < p->sh->nb_qp; qp++)
		enable_pair(d, qp, 0);
	for (uint16_t i = 0; i < 2 * p->sh->nb_qp; i++) {
		struct vhost_user_vring_state st = { .index = i };

		if (vu_call(d, VHOST_USER_GET_VRING_BASE, &st, sizeof(st), NULL, 0, sizeof(st), &st) < 0)
			break;
	}
}

/* ==== link monitor ====================================================== */

/* The backend went away: bursts stop in every process, rings come back. */
static void dev_lost(struct vtnet_dev *d)
{
	struct vtnet_port *p = d->p;
	char why[200];

	snprintf(why, sizeof(why), "vhost-user backend %s disconnected: link down, bursts stopped",
		 d->path);
	if (mpops_port_lost(p->port, why) == -EALREADY) {
		/* Not started: nothing runs, only the link changes. */
		vt_warn("vtnet %s: vhost-user backend %s disconnected: link down", p->sh->name, d->path);
		mpops_port_link_set(p->port, 0);
	}
	pthread_mutex_lock(&d->mu);
	close(d->sock);
	d->sock = -1;
	pthread_mutex_unlock(&d->mu);
	for (uint16_t i = 0; i < VTNET_MAX_VQ; i++)
		if (p->vq[i].sh)
			vq_drain(&p->vq[i], d->pool);
}

/* A backend is there again: the same features, the rings afresh. */
static int dev_restore(struct vtnet_dev *d, int fd)
{
	struct vtnet_port *p = d->p;
	uint64_t had = p->sh->features;
	int rc;

	pthread_mutex_lock(&d->mu);
	d->sock = fd;
	rc = dev_handshake(d);
	pthread_mutex_unlock(&d->mu);
	if (rc == 0 && (p->sh->device_features & had) != had) {
		vt_err("vtnet %s: the new vhost-user backend lacks negotiated features: link stays down",
		       p->sh->name);
		rc = -ENOTSUP;
	}
	p->sh->features = had;
	if (rc == 0 && d->want_started) {
		for (uint16_t q = 0; q < p->sh->nb_qp; q++) {
			struct mpops_port_marks mk;

			/* As the ring's, as start and the bursts post them. */
			mpops_port_queue_marks(p->port, q, &mk);
			vq_rx_fill(&p->vq[2 * q], d->pool, p->sh->hdr_size, mk.ring_rx);
		}
		pthread_mutex_lock(&d->mu);
		rc = dev_rings_start(d);
		/* With MQ nothing is enabled yet (at start VQ_PAIRS_SET does
		 * it): every pair, pair 0 included. */
		for (uint16_t q = 0; rc == 0 && (p->sh->features & BIT64(VIRTIO_NET_F_MQ)) &&
				     q < p->sh->nb_qp; q++)
			rc = enable_pair(d, q, 1);
		pthread_mutex_unlock(&d->mu);
	}
	if (rc < 0) {
		pthread_mutex_lock(&d->mu);
		close(d->sock);
		d->sock = -1;
		pthread_mutex_unlock(&d->mu);
		return rc;
	}
	if (d->want_started) {
		/* Caches built before the loss go stale, then bursts run again. */
		mpops_port_restored(p->port);
		for (uint16_t q = 0; q < p->sh->nb_qp; q++)
			eventfd_write(d->kickfd[2 * q], 1);
	} else {
		mpops_port_connected(p->port);
		mpops_port_link_set(p->port, 1);
	}
	vt_info("vtnet %s: vhost-user backend reconnected: link up", p->sh->name);
	return 0;
}

static void *monitor(void *arg)
{
	struct vtnet_dev *d = arg;

	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = d->stop_pipe[0], .events = POLLIN },
			{ .fd = d->sock, .events = POLLRDHUP },
		};
		int rc = poll(pf, d->sock >= 0 ? 2 : 1, d->sock >= 0 ? -1 : 200);

		if (rc < 0 && errno != EINTR)
			break;
		if (pf[0].revents)
			break;
		if (d->sock >= 0 && (pf[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			dev_lost(d);
			continue;
		}
		if (d->sock < 0) {
			int fd = dev_connect(d, 200);

			if (fd >= 0 && dev_restore(d, fd) < 0)
				vt_warn("vtnet %s: reconnection failed; waiting for the backend again",
					d->p->sh->name);
		}
	}
	return NULL;
}

/* ==== life cycle (primary) ============================================== */

static int vu_dev_destroy(struct vtnet_port *p);

static int vu_dev_create(struct vtnet_port *p, const struct vtnet_conf *c)
{
	struct vtnet_user_shared *us;
	struct vtnet_dev *d;
	int rc, fd;

	if ((rc = mpops_ops_id(&mpops_impl_vtpci_user, &p->sh->ops_id)) < 0 ||
	    (rc = mpops_alloc(p->r, sizeof(*us), 64, "vtnet.user", &p->sh->tr_off)) < 0)
		return rc;
	us = mpops_ptr(p->base, p->sh->tr_off);
	strlcpy(us->path, c->vhost_path, sizeof(us->path));
	us->server = c->server;
	if (!(d = calloc(1, sizeof(*d))))
		return -ENOMEM;
	d->p = p;
	p->dev = d;
	strlcpy(d->path, c->vhost_path, sizeof(d->path));
	d->server = c->server;
	d->timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 10000;
	d->listen_fd = d->sock = -1;
	d->stop_pipe[0] = d->stop_pipe[1] = -1;
	pthread_mutex_init(&d->mu, NULL);
	for (int i = 0; i < VTNET_MAX_VQ; i++)
		d->kickfd[i] = d->callfd[i] = -1;
	d->nkick = 2 * (c->nb_qp ? c->nb_qp : 1);
	for (int i = 0; i < d->nkick; i++) {
		d->kickfd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		d->callfd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->kickfd[i] < 0 || d->callfd[i] < 0) {
			rc = -errno;
			goto fail;
		}
	}
	if (pipe2(d->stop_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	/* Pool handles are per thread: the monitor refills and drains with its own. */
	if ((rc = mpops_port_pool_open(p->port, &d->pool)) < 0)
		goto fail;
	if (d->server) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		strlcpy(sa.sun_path, d->path, sizeof(sa.sun_path));
		unlink(d->path);
		if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(d->listen_fd, 1) < 0) {
			rc = -errno;
			vt_err("vtnet %s: cannot listen on %s: %s", p->sh->name, d->path, strerror(-rc));
			goto fail;
		}
		vt_info("vtnet %s: waiting for a vhost-user backend to connect to %s", p->sh->name,
			d->path);
	}
	fd = dev_connect(d, d->timeout_ms);
	if (fd < 0) {
		rc = fd;
		if (d->server)
			vt_err("vtnet %s: no vhost-user backend connected to %s within %d ms",
			       p->sh->name, d->path, d->timeout_ms);
		else
			vt_err("vtnet %s: no vhost-user backend listens on %s (%s): start it, or use server mode",
			       p->sh->name, d->path, strerror(-rc));
		goto fail;
	}
	d->sock = fd;
	if ((rc = dev_handshake(d)) < 0)
		goto fail;
	mpops_port_connected(p->port);
	if ((rc = pthread_create(&d->mon, NULL, monitor, d)) != 0) {
		rc = -rc;
		goto fail;
	}
	d->mon_running = 1;
	return 0;
fail:
	vu_dev_destroy(p);
	return rc;
}

static int vu_dev_destroy(struct vtnet_port *p)
{
	struct vtnet_dev *d = p->dev;

	if (p->sh->tr_off) {
		mpops_free(p->r, p->sh->tr_off);
		p->sh->tr_off = 0;
	}
	if (!d)
		return 0;
	if (d->mon_running) {
		char b = 1;

		if (write(d->stop_pipe[1], &b, 1) < 0)
			vt_warn("vtnet %s: cannot stop the link monitor", p->sh->name);
		pthread_join(d->mon, NULL);
	}
	if (d->sock >= 0)
		close(d->sock);
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		unlink(d->path);
	}
	for (int i = 0; i < VTNET_MAX_VQ; i++) {
		if (d->kickfd[i] >= 0)
			close(d->kickfd[i]);
		if (d->callfd[i] >= 0)
			close(d->callfd[i]);
	}
	for (int i = 0; i < 2; i++)
		if (d->stop_pipe[i] >= 0)
			close(d->stop_pipe[i]);
	if (d->pool)
		mpops_pktpool_close(d->pool);
	pthread_mutex_destroy(&d->mu);
	free(d);
	p->dev = NULL;
	return 0;
}

static int vu_dev_start(struct vtnet_port *p)
{
	struct vtnet_dev *d = p->dev;
	int rc;

	pthread_mutex_lock(&d->mu);
	if (d->sock < 0) {
		pthread_mutex_unlock(&d->mu);
		vt_err("vtnet %s: no vhost-user backend connected: cannot start", p->sh->name);
		return -ENOTCONN;
	}
	rc = dev_rings_start(d);
	pthread_mutex_unlock(&d->mu);
	if (rc == 0) {
		d->want_started = 1;
		mpops_port_link_set(p->port, 1);
	}
	return rc;
}

static int vu_dev_stop(struct vtnet_port *p)
{
	struct vtnet_dev *d = p->dev;

	d->want_started = 0;
	pthread_mutex_lock(&d->mu);
	if (d->sock >= 0)
		dev_rings_stop(d);
	pthread_mutex_unlock(&d->mu);
	mpops_port_link_set(p->port, 0);
	return 0;
}

void vu_kickfds(struct vtnet_port *p, int *fds, int *n)
{
	struct vtnet_dev *d = p->dev;

	*n = d ? d->nkick : 0;
	for (int i = 0; i < *n; i++)
		fds[i] = d->kickfd[i];
}

/* ==== the per-process slot ============================================== */

/* The creator's kick eventfds, for other processes' slots. */
static int vu_fds_export(struct vtnet_port *p, int *fds, int max)
{
	int n;

	if (!p->dev)
		return -ENOENT;
	if (p->dev->nkick > max)
		return -ENOSPC;
	vu_kickfds(p, fds, &n);
	return n;
}

/* This process's copies of the kick fds: the creator's own duplicated, or
 * received from the primary (the port layer's fd request). */
static int vu_slot_attach(struct vtnet_port *p, struct vtnet_slot *s)
{
	int n = mpops_port_fds_get(p->port, s->kickfd, VTNET_MAX_VQ);

	if (n < 0)
		return n;	/* logged by the port layer */
	s->nfds = n;
	return 0;
}

static int vu_slot_detach(struct vtnet_port *p, struct vtnet_slot *s)
{
	(void)p;
	for (int i = 0; i < VTNET_MAX_VQ; i++)
		if (s->kickfd[i] >= 0)
			close(s->kickfd[i]);
	return 0;
}

/* ==== the control queue, device side ==================================== */

/*
 * A vhost-user backend for a net device has no control queue: the frontend
 * plays the device, as DPDK's virtio-user does. The queue lives in shared
 * memory like the others; the primary posts commands and its notify lands
 * here, which serves them in place. The descriptors are ours, but checked
 * as a device would: no address outside the region, no chain longer than
 * the ring.
 */

#define CTRL_CMD_MAX 130

/* Device address -> this process's pointer, if the whole range is in the
 * region's device part (the only memory a device has). */
static void *dev_ptr(struct vtnet_port *p, uint64_t addr, uint32_t len)
{
	struct mpops_region_dev dev;

	mpops_region_dev(p->r, &dev);
	if (addr < dev.off || addr - dev.off >= dev.size || len > dev.size - (addr - dev.off))
		return NULL;
	return (char *)p->base + addr;
}

/* What a command does: MQ becomes SET_VRING_ENABLE; the rest is accepted. */
static int ctrl_exec(struct vtnet_port *p, uint8_t cls, uint8_t cmd, const uint8_t *data,
		     uint32_t len)
{
	uint16_t pairs;
	int rc = 0;

	if (cls != VIRTIO_NET_CTRL_MQ || cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET)
		return 0;	/* rx mode, MAC tables: nothing to do for a vhost-user port */
	if (len < 2)
		return -EINVAL;
	memcpy(&pairs, data, 2);
	if (pairs < 1 || pairs > p->sh->nb_qp)
		return -EINVAL;
	pthread_mutex_lock(&p->dev->mu);
	for (uint16_t q = 0; q < p->sh->nb_qp && rc == 0; q++)
		rc = enable_pair(p->dev, q, q < pairs);
	pthread_mutex_unlock(&p->dev->mu);
	return rc;
}

/* Serve every command posted on the control queue. @return how many. */
static int ctrl_device(struct vtnet_port *p)
{
	struct vq *q = &p->vq[VTNET_CVQ(p->sh->max_qp)];
	uint16_t avail = atomic_load_explicit((_Atomic uint16_t *)&q->avail->idx,
					      memory_order_acquire);
	uint16_t used = q->used->idx;
	int done = 0;

	while (q->sh->dev_last_avail != avail) {
		uint16_t head = q->avail->ring[q->sh->dev_last_avail & q->mask];
		uint8_t cmd[CTRL_CMD_MAX], *ack = NULL;
		uint32_t got = 0, steps = 0;
		uint16_t d = head;
		int ok = head < q->sh->size;

		q->sh->dev_last_avail++;
		/* Gather the readable part, find the writable ack byte. */
		while (ok) {
			struct vring_desc *desc = &q->desc[d];
			uint8_t *buf = dev_ptr(p, desc->addr, desc->len);

			if (!buf || ++steps > q->sh->size) {
				ok = 0;
				break;
			}
			if (desc->flags & VRING_DESC_F_WRITE) {
				ack = desc->len ? buf : NULL;
			} else {
				uint32_t n = desc->len;

				if (n > sizeof(cmd) - got)
					n = (uint32_t)sizeof(cmd) - got;
				memcpy(cmd + got, buf, n);
				got += n;
			}
			if (!(desc->flags & VRING_DESC_F_NEXT))
				break;
			d = desc->next;
			if (d >= q->sh->size)
				ok = 0;
		}
		if (!ok || !ack || got < 2) {
			vt_err("vtnet %s: malformed control command (descriptor %u): dropped",
			       p->sh->name, head);
			q->st->errors++;
			if (head >= q->sh->size)
				continue;
		} else {
			*ack = ctrl_exec(p, cmd[0], cmd[1], cmd + 2, got - 2) == 0 ? VIRTIO_NET_OK
										  : VIRTIO_NET_ERR;
		}
		q->used->ring[used & q->mask].id = head;
		q->used->ring[used & q->mask].len = ack ? 1 : 0;
		used++;
		atomic_store_explicit((_Atomic uint16_t *)&q->used->idx, used, memory_order_release);
		done++;
	}
	return done;
}

/* ==== the ops =========================================================== */

static int user_features_set(struct vtnet_port *p, uint64_t features)
{
	if (features & ~p->sh->device_features)
		return -EINVAL;
	return 0;	/* SET_FEATURES goes with the rings, at start */
}

/* Per process: this process's own copy of the queue's kick fd. */
static int user_notify_queue(struct vtnet_port *p, struct vtnet_slot *s, uint16_t vq)
{
	uint64_t one = 1;

	if (vq == VTNET_CVQ(p->sh->max_qp) && (p->sh->features & BIT64(VIRTIO_NET_F_CTRL_VQ))) {
		if (!p->dev) {
			mpops_log(MPOPS_LOG_ERR, "vtnet %s: the control queue is the primary's", p->sh->name);
			return -EPERM;
		}
		return ctrl_device(p) >= 0 ? 0 : -EIO;
	}
	if (!s || vq >= s->nfds || s->kickfd[vq] < 0)
		return -ERANGE;
	return write(s->kickfd[vq], &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

static const struct vtpci_ops user_ops = { .notify_queue = user_notify_queue };
MPOPS_OPS_IMPL(vtpci, user, &user_ops)

static const struct vtnet_tr_ops user_tr = {
	.create = vu_dev_create,
	.destroy = vu_dev_destroy,
	.start = vu_dev_start,
	.stop = vu_dev_stop,
	.features_set = user_features_set,
	.slot_attach = vu_slot_attach,
	.slot_detach = vu_slot_detach,
	.fds_export = vu_fds_export,
};
MPOPS_OPS_IMPL(vtnet_tr, user, &user_tr)
