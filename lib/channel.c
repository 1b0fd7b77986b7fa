/* SPDX-License-Identifier: BSD-3-Clause */
/* The control channel: the wire format is in channel_priv.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "channel_priv.h"
#include "region_priv.h"

#define FDS_MAX 65536		/* per message: a sanity limit, not a cap of the API */
#define CONT_TIMEOUT_MS 2000	/* continuation records follow at once */

/* ==== messages ========================================================== */

int mpops_msg_add_fd(struct mpops_msg *m, int fd)
{
	if (!m)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	if (m->nfds == m->fds_cap) {
		uint32_t cap = m->fds_cap ? m->fds_cap * 2 : 8;
		int *p = realloc(m->fds, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		m->fds = p;
		m->fds_cap = cap;
	}
	m->fds[m->nfds++] = fd;
	return 0;
}

void mpops_msg_clear(struct mpops_msg *m)
{
	if (!m)
		return;
	if (m->fds_owned)
		for (uint32_t i = 0; i < m->nfds; i++)
			if (m->fds[i] >= 0)
				close(m->fds[i]);
	free(m->fds);
	m->fds = NULL;
	m->nfds = m->fds_cap = m->fds_owned = 0;
}

/* ==== records =========================================================== */

static int send_rec(int sock, const struct wire_hdr *h, const void *data,
		    const int *fds, unsigned nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * FDS_PER_REC)];
	struct iovec iov[2] = {
		{ .iov_base = (void *)h, .iov_len = sizeof(*h) },
		{ .iov_base = (void *)data, .iov_len = data ? h->len : 0 },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = data ? 2 : 1 };

	if (nfds) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	for (;;) {
		if (sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
			return -ENOTCONN;
		return -errno;
	}
}

static int wire_send(int sock, enum wire_kind kind, uint32_t seq,
		     const struct mpops_msg *m)
{
	struct wire_hdr h = {
		.magic = WIRE_MAGIC, .version = WIRE_VERSION, .kind = (uint16_t)kind,
		.type = m->type, .status = m->status, .seq = seq,
		.len = m->len, .nfds = m->nfds,
	};
	unsigned sent = m->nfds < FDS_PER_REC ? m->nfds : FDS_PER_REC;
	int rc;

	if (m->len > MPOPS_MSG_DATA_MAX || m->nfds > FDS_MAX)
		return -EINVAL;
	if ((rc = send_rec(sock, &h, m->data, m->fds, sent)) < 0)
		return rc;
	h.kind = WIRE_FDS;
	h.len = 0;
	while (sent < m->nfds) {
		unsigned n = m->nfds - sent < FDS_PER_REC ? m->nfds - sent : FDS_PER_REC;

		if ((rc = send_rec(sock, &h, NULL, m->fds + sent, n)) < 0)
			return rc;
		sent += n;
	}
	return 0;
}

static int wait_in(int sock, int timeout_ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int rc;

	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	return rc == 0 ? -ETIMEDOUT : 0;
}

/* Receive one record; fds are appended to @m (owned). */
static int recv_rec(int sock, struct wire_hdr *h, struct mpops_msg *m, int want_data,
		    int timeout_ms)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 253)];
	struct iovec iov[2] = {
		{ .iov_base = h, .iov_len = sizeof(*h) },
		{ .iov_base = m->data, .iov_len = want_data ? MPOPS_MSG_DATA_MAX : 0 },
	};
	struct msghdr mh = {
		.msg_iov = iov, .msg_iovlen = want_data ? 2 : 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	ssize_t n;
	int rc, bad = 0;

	if ((rc = wait_in(sock, timeout_ms)) < 0)
		return rc;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -ENOTCONN;
	if (n < 0)
		return errno == ECONNRESET ? -ENOTCONN : -errno;
	m->fds_owned = 1;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int cnt = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *fds = (int *)CMSG_DATA(c);

		for (int i = 0; i < cnt; i++) {
			if (mpops_msg_add_fd(m, fds[i]) < 0) {
				close(fds[i]);
				bad = 1;
			}
		}
	}
	if (bad || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof(*h) ||
	    h->magic != WIRE_MAGIC || h->version != WIRE_VERSION ||
	    h->len != (size_t)n - sizeof(*h) || h->len > MPOPS_MSG_DATA_MAX ||
	    h->nfds > FDS_MAX || m->nfds > h->nfds)
		return -EBADMSG;
	return 0;
}

/* Receive a whole message: the first record and its fd continuations. */
static int wire_recv(int sock, struct wire_hdr *h, struct mpops_msg *m, int timeout_ms)
{
	struct wire_hdr c;
	int rc;

	m->len = 0;
	m->nfds = 0;
	if ((rc = recv_rec(sock, h, m, 1, timeout_ms)) < 0)
		goto fail;
	if (h->kind != WIRE_REQ && h->kind != WIRE_REPLY) {
		rc = -EBADMSG;
		goto fail;
	}
	while (m->nfds < h->nfds) {
		uint32_t before = m->nfds;

		if ((rc = recv_rec(sock, &c, m, 0, CONT_TIMEOUT_MS)) < 0)
			goto fail;
		if (c.kind != WIRE_FDS || c.seq != h->seq || c.len != 0 ||
		    m->nfds == before || m->nfds > h->nfds) {
			rc = -EBADMSG;
			goto fail;
		}
	}
	m->type = h->type;
	m->status = h->status;
	m->len = h->len;
	return 0;
fail:
	mpops_msg_clear(m);
	return rc;
}

/* ==== primary: serving ================================================== */

static int hello_handle(struct mpops_region *r, struct chan_client *cl,
			const struct mpops_msg *req, struct mpops_msg *reply)
{
	struct hello_req hr;
	struct hello_reply out = {
		.abi_version = MPOPS_ABI_VERSION,
		.backing = r->hdr->backing,
		.layout_hash = r->hdr->layout_hash,
		.size = r->size,
		.primary_pid = r->primary_pid,
	};

	memcpy(reply->data, &out, sizeof(out));
	reply->len = sizeof(out);
	if (req->len != sizeof(hr)) {
		log_err("region '%s': malformed hello from pid %d (%u bytes)",
			r->name, (int)cl->pid, req->len);
		return -EBADMSG;
	}
	memcpy(&hr, req->data, sizeof(hr));
	if (hr.abi_version != MPOPS_ABI_VERSION || hr.layout_hash != r->hdr->layout_hash) {
		log_err("region '%s': refused pid %d: its ABI %u, layout %#llx differ from this primary's ABI %u, layout %#llx: rebuild it from the same mpops version",
			r->name, (int)cl->pid, hr.abi_version,
			(unsigned long long)hr.layout_hash, MPOPS_ABI_VERSION,
			(unsigned long long)r->hdr->layout_hash);
		return -EPROTO;
	}
	cl->start_time = hr.start_time;
	return mpops_msg_add_fd(reply, r->fd);
}

static int dispatch(struct mpops_region *r, struct chan_client *cl,
		    const struct mpops_msg *req, struct mpops_msg *reply)
{
	mpops_channel_handler fn = NULL;
	void *arg = NULL;

	switch (req->type) {
	case MSG_HELLO:
		return hello_handle(r, cl, req, reply);
	case MSG_PING:
		return 0;
	default:
		break;
	}
	pthread_mutex_lock(&r->chan_mu);
	for (int i = 0; i < CHAN_HANDLERS_MAX; i++) {
		if (r->handlers[i].fn && r->handlers[i].type == req->type) {
			fn = r->handlers[i].fn;
			arg = r->handlers[i].arg;
			break;
		}
	}
	pthread_mutex_unlock(&r->chan_mu);
	if (!fn) {
		log_err("region '%s': pid %d sent request type %#x, which has no handler: is the driver registered in the primary?",
			r->name, (int)cl->pid, req->type);
		return -ENOTSUP;
	}
	return fn(r, req, reply, arg);
}

/* Serve one request from @cl; a negative return drops the client. */
static int serve(struct mpops_region *r, struct chan_client *cl)
{
	struct mpops_msg *req = calloc(1, sizeof(*req));
	struct mpops_msg *reply = calloc(1, sizeof(*reply));
	struct wire_hdr h;
	int rc;

	if (!req || !reply) {
		rc = -ENOMEM;
		goto out;
	}
	rc = wire_recv(cl->fd, &h, req, CONT_TIMEOUT_MS);
	if (rc == -EBADMSG || (rc == 0 && h.kind != WIRE_REQ)) {
		log_err("region '%s': malformed control message from pid %d: closing its connection",
			r->name, (int)cl->pid);
		rc = -EBADMSG;
	}
	if (rc < 0)
		goto out;
	req->peer_pid = cl->pid;
	reply->type = req->type;
	if (cl->refused) {
		/* Answer the hand-shake so the peer can say why, then drop it. */
		reply->status = -EACCES;
		wire_send(cl->fd, WIRE_REPLY, h.seq, reply);
		rc = -EACCES;
		goto out;
	}
	reply->status = dispatch(r, cl, req, reply);
	rc = wire_send(cl->fd, WIRE_REPLY, h.seq, reply);
out:
	mpops_msg_clear(req);
	if (reply) {
		free(reply->fds); /* borrowed fds: the handler's to close */
		free(reply);
	}
	free(req);
	return rc;
}

static void client_drop(struct mpops_region *r, unsigned i)
{
	struct chan_client cl = r->clients[i];

	close(cl.fd);
	r->clients[i] = r->clients[--r->nclients];
	if (!cl.refused)
		proc_gone(r, cl.pid, cl.start_time);
}

static int peer_uid_ok(int sock, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0)
		return 0;
	return cr->uid == geteuid() || cr->uid == 0;
}

static void client_accept(struct mpops_region *r)
{
	struct chan_client *p;
	struct ucred cr;
	int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	int ok;

	if (fd < 0)
		return;
	ok = peer_uid_ok(fd, &cr);
	if (!ok)
		log_err("region '%s': refused a control connection from pid %d, uid %u: only uid %u or root may attach",
			r->name, (int)cr.pid, (unsigned)cr.uid, (unsigned)geteuid());
	p = realloc(r->clients, (r->nclients + 1) * sizeof(*p));
	if (!p) {
		close(fd);
		return;
	}
	r->clients = p;
	p[r->nclients].fd = fd;
	p[r->nclients].pid = cr.pid;
	p[r->nclients].start_time = mpops_proc_start_time(cr.pid);
	p[r->nclients].refused = !ok;
	r->nclients++;
}

static void *chan_thread(void *arg)
{
	struct mpops_region *r = arg;
	struct pollfd *pf = NULL;

	for (;;) {
		unsigned n = 2 + r->nclients;
		struct pollfd *np = realloc(pf, n * sizeof(*pf));
		int rc;

		if (!np) {
			usleep(10000);
			continue;
		}
		pf = np;
		pf[0] = (struct pollfd){ .fd = r->stop_fd[0], .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = r->listen_fd, .events = POLLIN };
		for (unsigned i = 0; i < r->nclients; i++)
			pf[2 + i] = (struct pollfd){ .fd = r->clients[i].fd, .events = POLLIN };
		rc = poll(pf, n, -1);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc <= 0)
			continue;
		if (pf[0].revents)
			break;
		/* Clients first, from the end, so dropping one keeps indices. */
		for (unsigned i = n - 2; i-- > 0;) {
			short ev = pf[2 + i].revents;

			if (!ev)
				continue;
			if ((ev & POLLIN) && serve(r, &r->clients[i]) == 0)
				continue;
			client_drop(r, i);
		}
		if (pf[1].revents & POLLIN)
			client_accept(r);
	}
	free(pf);
	return NULL;
}

int chan_listen(struct mpops_region *r, unsigned mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int rc;

	strlcpy(sa.sun_path, r->sock_path, sizeof(sa.sun_path));
	r->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (r->listen_fd < 0)
		return -errno;
	/* We hold the name's lock: a socket file left there is stale. */
	unlink(r->sock_path);
	if (bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(r->sock_path, mode) < 0 || listen(r->listen_fd, 64) < 0) {
		rc = -errno;
		log_err("region '%s': cannot listen on %s: %s", r->name, r->sock_path,
			strerror(-rc));
		return rc;
	}
	if (pipe2(r->stop_fd, O_CLOEXEC) < 0)
		return -errno;
	if ((rc = pthread_create(&r->thread, NULL, chan_thread, r)) != 0) {
		log_err("region '%s': cannot start the control thread: %s", r->name, strerror(rc));
		return -rc;
	}
	r->thread_running = 1;
	return 0;
}

void chan_stop(struct mpops_region *r)
{
	if (r->thread_running) {
		char b = 1;

		if (write(r->stop_fd[1], &b, 1) < 0)
			log_warn("region '%s': cannot signal the control thread", r->name);
		pthread_join(r->thread, NULL);
		r->thread_running = 0;
	}
	for (unsigned i = 0; i < r->nclients; i++)
		close(r->clients[i].fd);
	r->nclients = 0;
	for (int i = 0; i < 2; i++) {
		if (r->stop_fd[i] >= 0)
			close(r->stop_fd[i]);
		r->stop_fd[i] = -1;
	}
	if (r->listen_fd >= 0) {
		close(r->listen_fd);
		r->listen_fd = -1;
		unlink(r->sock_path);
	}
}

int mpops_channel_register(struct mpops_region *r, uint32_t type,
			   mpops_channel_handler fn, void *arg)
{
	int rc = -ENOSPC;

	if (!r || !fn || type < MPOPS_MSG_USER) {
		log_err("mpops_channel_register: type %#x is reserved (use MPOPS_MSG_USER and up) or no handler given",
			type);
		return -EINVAL;
	}
	if (r->role != MPOPS_ROLE_PRIMARY) {
		log_err("mpops_channel_register: only the primary of region '%s' serves requests", r->name);
		return -EPERM;
	}
	pthread_mutex_lock(&r->chan_mu);
	for (int i = 0; i < CHAN_HANDLERS_MAX; i++) {
		if (r->handlers[i].fn && r->handlers[i].type == type) {
			log_err("region '%s': request type %#x already has a handler", r->name, type);
			rc = -EEXIST;
			goto out;
		}
	}
	for (int i = 0; i < CHAN_HANDLERS_MAX; i++) {
		if (!r->handlers[i].fn) {
			r->handlers[i] = (struct chan_handler){ type, fn, arg };
			rc = 0;
			goto out;
		}
	}
	log_err("region '%s': all %d request handlers are taken", r->name, CHAN_HANDLERS_MAX);
out:
	pthread_mutex_unlock(&r->chan_mu);
	return rc;
}

int mpops_channel_unregister(struct mpops_region *r, uint32_t type)
{
	int rc = -ENOENT;

	if (!r)
		return -EINVAL;
	if (r->role != MPOPS_ROLE_PRIMARY)
		return -EPERM;
	pthread_mutex_lock(&r->chan_mu);
	for (int i = 0; i < CHAN_HANDLERS_MAX; i++) {
		if (r->handlers[i].fn && r->handlers[i].type == type) {
			memset(&r->handlers[i], 0, sizeof(r->handlers[i]));
			rc = 0;
		}
	}
	pthread_mutex_unlock(&r->chan_mu);
	return rc;
}

/* ==== secondary: requesting ============================================= */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One exchange on the connection; caller holds req_mu. */
static int exchange(struct mpops_region *r, const struct mpops_msg *req,
		    struct mpops_msg *reply, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint32_t seq = ++r->seq;
	struct wire_hdr h;
	int rc;

	rc = wire_send(r->conn_fd, WIRE_REQ, seq, req);
	/* On a broken pipe a refusal may still be waiting: read it. */
	if (rc < 0 && rc != -ENOTCONN)
		return rc;
	for (;;) {
		int left = (int)(deadline - now_ms());

		rc = wire_recv(r->conn_fd, &h, reply, left > 0 ? left : 0);
		if (rc < 0)
			return rc;
		if (h.kind == WIRE_REPLY && h.seq == seq)
			return 0;
		mpops_msg_clear(reply); /* a late reply to a request that timed out */
	}
}

int mpops_channel_request(struct mpops_region *r, const struct mpops_msg *req,
			  struct mpops_msg *reply, int timeout_ms)
{
	int rc;

	/* The reply is always safe to mpops_msg_clear() afterwards. */
	if (reply) {
		memset(reply, 0, offsetof(struct mpops_msg, data));
		reply->fds = NULL;
		reply->nfds = reply->fds_cap = reply->fds_owned = 0;
	}
	if (!r || !req || !reply || req->len > MPOPS_MSG_DATA_MAX)
		return -EINVAL;
	if (r->role != MPOPS_ROLE_SECONDARY || r->conn_fd < 0) {
		log_err("mpops_channel_request: only a secondary of region '%s' sends requests", r->name);
		return -EPERM;
	}
	pthread_mutex_lock(&r->req_mu);
	if (atomic_load(&r->primary_gone)) {
		rc = -ENOTCONN;
	} else {
		rc = exchange(r, req, reply, timeout_ms > 0 ? timeout_ms : 5000);
		if (rc == -ENOTCONN)
			region_primary_lost(r);
		else if (rc == -ETIMEDOUT)
			log_err("region '%s': the primary (pid %d) did not answer request %#x in time",
				r->name, (int)r->primary_pid, req->type);
		else if (rc == -EBADMSG)
			log_err("region '%s': malformed reply from the primary to request %#x",
				r->name, req->type);
		else if (rc == 0)
			rc = reply->status;
	}
	pthread_mutex_unlock(&r->req_mu);
	return rc;
}

int chan_connect(struct mpops_region *r, int timeout_ms, int *region_fd,
		 struct hello_reply *info)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct hello_req hr = {
		.abi_version = MPOPS_ABI_VERSION,
		.layout_hash = region_layout_hash(),
		.start_time = mpops_proc_start_time(getpid()),
	};
	struct mpops_msg *req = calloc(1, sizeof(*req));
	struct mpops_msg *reply = calloc(1, sizeof(*reply));
	struct ucred cr;
	int rc;

	if (!req || !reply) {
		rc = -ENOMEM;
		goto out;
	}
	strlcpy(sa.sun_path, r->sock_path, sizeof(sa.sun_path));
	r->conn_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (r->conn_fd < 0) {
		rc = -errno;
		goto out;
	}
	if (connect(r->conn_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		if (rc == -ENOENT || rc == -ECONNREFUSED) {
			log_err("no primary is running for region '%s' (nothing listens on %s): start the primary first",
				r->name, r->sock_path);
			rc = -ENOENT;
		} else if (rc == -EACCES || rc == -EPERM) {
			log_err("permission denied on %s: run as the primary's user or root",
				r->sock_path);
			rc = -EACCES;
		} else {
			log_err("cannot connect to %s: %s", r->sock_path, strerror(-rc));
		}
		goto out;
	}
	if (!peer_uid_ok(r->conn_fd, &cr)) {
		log_err("region '%s': the process listening on %s runs as uid %u, not uid %u or root: refusing to attach",
			r->name, r->sock_path, (unsigned)cr.uid, (unsigned)geteuid());
		rc = -EACCES;
		goto out;
	}
	req->type = MSG_HELLO;
	req->len = sizeof(hr);
	memcpy(req->data, &hr, sizeof(hr));
	rc = exchange(r, req, reply, timeout_ms);
	if (rc == -ETIMEDOUT) {
		log_err("region '%s': the primary did not answer within %d ms", r->name, timeout_ms);
		goto out;
	}
	if (rc == -ENOTCONN) {
		log_err("region '%s': the primary closed the connection during the hand-shake: is it stopping?",
			r->name);
		goto out;
	}
	if (rc < 0) {
		log_err("region '%s': malformed hand-shake reply from the primary", r->name);
		goto out;
	}
	if (reply->status == -EACCES) {
		log_err("region '%s': the primary refused this process (uid %u): run as its user or root",
			r->name, (unsigned)geteuid());
		rc = -EACCES;
		goto out;
	}
	if (reply->len != sizeof(*info)) {
		log_err("region '%s': malformed hand-shake reply from the primary (%u bytes)",
			r->name, reply->len);
		rc = -EBADMSG;
		goto out;
	}
	memcpy(info, reply->data, sizeof(*info));
	if (reply->status == -EPROTO) {
		log_err("region '%s': this process was built with ABI %u, layout %#llx; the primary (pid %d) with ABI %u, layout %#llx: rebuild both from the same mpops version",
			r->name, MPOPS_ABI_VERSION, (unsigned long long)hr.layout_hash,
			(int)info->primary_pid, info->abi_version,
			(unsigned long long)info->layout_hash);
		rc = -EPROTO;
		goto out;
	}
	if (reply->status < 0) {
		log_err("region '%s': the primary refused the hand-shake: %s", r->name,
			strerror(-reply->status));
		rc = reply->status;
		goto out;
	}
	if (reply->nfds != 1) {
		log_err("region '%s': hand-shake reply carries %u fds, expected the region's one",
			r->name, reply->nfds);
		rc = -EBADMSG;
		goto out;
	}
	*region_fd = reply->fds[0];
	reply->fds[0] = -1;
	r->primary_pid = info->primary_pid;
	rc = 0;
out:
	if (reply)
		mpops_msg_clear(reply);
	free(req);
	free(reply);
	if (rc < 0 && r->conn_fd >= 0) {
		close(r->conn_fd);
		r->conn_fd = -1;
	}
	return rc;
}

void chan_close(struct mpops_region *r)
{
	if (r->conn_fd >= 0) {
		close(r->conn_fd);
		r->conn_fd = -1;
	}
}
