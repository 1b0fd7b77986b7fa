/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control channel: the wire format is in channel_priv.h.
 *
 * The primary's thread serves every connection from one poll loop and never
 * waits on a peer: records are taken as they arrive, a reply that finds no
 * room waits for POLLOUT, and each peer has deadlines (hand-shake, the rest
 * of a request, room for a reply) past which its connection is closed. The
 * secondary waits, but never past its caller's timeout.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "channel_priv.h"
#include "region_priv.h"

#define FDS_MAX 65536		/* per reply: a sanity limit, not a cap of the API */
#define CONT_TIMEOUT_MS 2000	/* secondary: a reply's fd records follow at once */
#define PEER_TIMEOUT_MS MPOPS_CHANNEL_PEER_TIMEOUT_MS
#define BACKOFF_MS 100		/* accept or poll failing for lack of fds */
#define NOTE_QUIET_MS 10000	/* a case logged for a peer is not again before */

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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until @sock is ready for @events, or -ETIMEDOUT at @deadline. */
static int wait_ready(int sock, short events, int64_t deadline)
{
	struct pollfd p = { .fd = sock, .events = events };
	int rc;

	do {
		int64_t left = deadline - now_ms();

		rc = poll(&p, 1, left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	return rc == 0 ? -ETIMEDOUT : 0;
}

int chan_send_rec(int sock, const struct wire_hdr *h, const void *data,
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
		if (sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
			return -ENOTCONN;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static int wire_check(const struct mpops_msg *m)
{
	return m->len > MPOPS_MSG_DATA_MAX || m->nfds > FDS_MAX ? -EINVAL : 0;
}

/* Records of @m: the first carries the payload and up to FDS_PER_REC fds,
 * each continuation up to FDS_PER_REC more. */
static unsigned wire_recs(const struct mpops_msg *m)
{
	return m->nfds <= FDS_PER_REC ? 1 : (m->nfds + FDS_PER_REC - 1) / FDS_PER_REC;
}

/* Send record @i of @m without waiting (see chan_send_rec()). */
static int wire_send_rec(int sock, enum wire_kind kind, uint32_t seq,
			 const struct mpops_msg *m, unsigned i)
{
	struct wire_hdr h = {
		.magic = WIRE_MAGIC, .version = WIRE_VERSION,
		.kind = (uint16_t)(i ? WIRE_FDS : kind),
		.type = m->type, .status = m->status, .seq = seq,
		.len = i ? 0 : m->len, .nfds = m->nfds,
	};
	unsigned first = i * FDS_PER_REC;
	unsigned n = m->nfds - first < FDS_PER_REC ? m->nfds - first : FDS_PER_REC;

	return chan_send_rec(sock, &h, i ? NULL : m->data, n ? m->fds + first : NULL, n);
}

/* Send the whole of @m, waiting for room until @deadline (secondary). */
static int wire_send(int sock, enum wire_kind kind, uint32_t seq,
		     const struct mpops_msg *m, int64_t deadline)
{
	unsigned i = 0;
	int rc;

	if ((rc = wire_check(m)) < 0)
		return rc;
	while (i < wire_recs(m)) {
		rc = wire_send_rec(sock, kind, seq, m, i);
		if (rc == 0)
			i++;
		else if (rc != -EAGAIN || (rc = wait_ready(sock, POLLOUT, deadline)) < 0)
			return rc;
	}
	return 0;
}

/* Receive one record without waiting; fds are appended to @m (owned).
 * 0, -EAGAIN (nothing there), -ENOTCONN, -EBADMSG, -errno. */
static int recv_rec(int sock, struct wire_hdr *h, struct mpops_msg *m, int want_data)
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
	int bad = 0;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -ENOTCONN;
	if (n < 0)
		return errno == ECONNRESET ? -ENOTCONN : errno == EWOULDBLOCK ? -EAGAIN : -errno;
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

/* Receive one record, waiting until @deadline (secondary). */
static int recv_by(int sock, struct wire_hdr *h, struct mpops_msg *m, int want_data,
		   int64_t deadline)
{
	for (;;) {
		int rc = recv_rec(sock, h, m, want_data);

		if (rc != -EAGAIN || (rc = wait_ready(sock, POLLIN, deadline)) < 0)
			return rc;
	}
}

/* Does @c continue the message (@seq, @nfds announced), bringing fds
 * (@m had @before)? */
static int cont_ok(uint32_t seq, uint32_t nfds, const struct wire_hdr *c,
		   const struct mpops_msg *m, uint32_t before)
{
	return c->kind == WIRE_FDS && c->seq == seq && c->len == 0 && c->nfds == nfds &&
	       m->nfds > before && m->nfds <= nfds;
}

/* Receive a whole message by @deadline (its fd records each within
 * CONT_TIMEOUT_MS after), the secondary's way. */
static int wire_recv(int sock, struct wire_hdr *h, struct mpops_msg *m, int64_t deadline)
{
	struct wire_hdr c;
	int rc;

	m->len = 0;
	m->nfds = 0;
	if ((rc = recv_by(sock, h, m, 1, deadline)) < 0)
		goto fail;
	if (h->kind != WIRE_REQ && h->kind != WIRE_REPLY) {
		rc = -EBADMSG;
		goto fail;
	}
	while (m->nfds < h->nfds) {
		uint32_t before = m->nfds;

		if ((rc = recv_by(sock, &c, m, 0, now_ms() + CONT_TIMEOUT_MS)) < 0)
			goto fail;
		if (!cont_ok(h->seq, h->nfds, &c, m, before)) {
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

static void msg_free(struct mpops_msg *m)
{
	if (m) {
		mpops_msg_clear(m);
		free(m);
	}
}

/* ==== primary: requests ================================================= */

static int hello_handle(struct mpops_region *r, struct chan_client *cl,
			const struct mpops_msg *req, struct mpops_msg *reply)
{
	struct hello_req hr;
	int rc;
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
	if ((rc = mpops_msg_add_fd(reply, r->fd)) < 0)
		return rc;
	return mpops_msg_add_fd(reply, r->dev_fd);
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

/* ==== primary: one connection =========================================== */

/*
 * Log a case about @pid now? Once per case and peer, and again only after
 * NOTE_QUIET_MS: a peer that misbehaves in a loop is one line, not one per
 * connection. Floods are noted with pid 0: one line per 10 s of flood.
 */
static int note_due(struct mpops_region *r, enum chan_note c, int32_t pid, int64_t now)
{
	if (r->notes[c].at_ms && r->notes[c].pid == pid && now - r->notes[c].at_ms < NOTE_QUIET_MS)
		return 0;
	r->notes[c].pid = pid;
	r->notes[c].at_ms = now;
	return 1;
}

/* The earliest thing @cl owes the thread, and by when (INT64_MAX: none). */
static int64_t client_deadline(const struct chan_client *cl, enum chan_note *what)
{
	int64_t due = INT64_MAX;

	if (!cl->attached) {
		due = cl->since_ms + PEER_TIMEOUT_MS;
		*what = NOTE_NO_HELLO;
	}
	if (cl->in && cl->in_due < due) {
		due = cl->in_due;
		*what = NOTE_SLOW;
	}
	if (cl->out && cl->out_due && cl->out_due < due) {
		due = cl->out_due;
		*what = NOTE_NO_READ;
	}
	return due;
}

/* -ETIMEDOUT, logged, if @cl is past its deadline. */
static int client_overdue(struct mpops_region *r, struct chan_client *cl, int64_t now)
{
	enum chan_note what = NOTE_MAX;

	if (now < client_deadline(cl, &what))
		return 0;
	if (!note_due(r, what, cl->pid, now))
		return -ETIMEDOUT;
	if (what == NOTE_NO_HELLO)
		log_err("region '%s': pid %d has not completed a hand-shake within %d ms of connecting: closing its connection; secondaries attach with mpops_region_attach()",
			r->name, (int)cl->pid, PEER_TIMEOUT_MS);
	else if (what == NOTE_SLOW)
		log_err("region '%s': pid %d announced %u fds in request %#x but sent %u within %d ms: closing its connection; send a message's records back to back",
			r->name, (int)cl->pid, cl->in_nfds, cl->in->type, cl->in->nfds,
			PEER_TIMEOUT_MS);
	else
		log_err("region '%s': pid %d does not read its replies (no room for one for %d ms): closing its connection; a secondary must read the reply to each request (mpops_channel_request() does)",
			r->name, (int)cl->pid, PEER_TIMEOUT_MS);
	return -ETIMEDOUT;
}

/*
 * A peer of another uid: take the header of its first record only (the
 * kernel drops the payload and any fds unread) and answer -EACCES with its
 * seq, so the peer can say why. Always ends the connection.
 */
static int client_refuse(struct chan_client *cl)
{
	struct mpops_msg reply = { .status = -EACCES };
	struct wire_hdr h;
	ssize_t n;

	do
		n = recv(cl->fd, &h, sizeof(h), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n == (ssize_t)sizeof(h) && h.magic == WIRE_MAGIC && h.version == WIRE_VERSION) {
		reply.type = h.type;
		wire_send_rec(cl->fd, WIRE_REPLY, h.seq, &reply, 0);
	}
	return -EACCES;
}

/* Own the fds of @m from index @from on, as dups; those before went out. */
static int fds_keep(struct mpops_msg *m, uint32_t from)
{
	int rc = 0;

	for (uint32_t i = 0; i < m->nfds; i++) {
		int fd = -1;

		if (i >= from && rc == 0 && (fd = fcntl(m->fds[i], F_DUPFD_CLOEXEC, 0)) < 0)
			rc = -errno;
		m->fds[i] = fd;
	}
	m->fds_owned = 1;
	return rc;
}

/*
 * Send what is left of @cl's reply. A record that finds no room waits for
 * POLLOUT, and the peer's next requests with it; the reply's fds are then
 * kept as dups (the handler lent them for the call only).
 */
static int client_flush(struct mpops_region *r, struct chan_client *cl, int64_t now)
{
	struct mpops_msg *m = cl->out;

	while (cl->out_next < wire_recs(m)) {
		int rc = wire_send_rec(cl->fd, WIRE_REPLY, cl->out_seq, m, cl->out_next);

		if (rc == -EAGAIN) {
			if (!cl->out_due)
				cl->out_due = now + PEER_TIMEOUT_MS;
			if (!m->fds_owned && (rc = fds_keep(m, cl->out_next * FDS_PER_REC)) < 0) {
				log_err("region '%s': cannot keep the fds of a reply to pid %d until it reads it: %s: closing its connection",
					r->name, (int)cl->pid, strerror(-rc));
				return rc;
			}
			return 0;
		}
		if (rc < 0)
			return rc;
		cl->out_next++;
	}
	msg_free(m);
	cl->out = NULL;
	cl->out_due = 0;
	return 0;
}

/* Run the handler of the request complete in cl->in and send its reply. */
static int client_serve(struct mpops_region *r, struct chan_client *cl, int64_t now)
{
	struct mpops_msg *req = cl->in, *reply = calloc(1, sizeof(*reply));

	cl->in = NULL;
	if (!reply) {
		msg_free(req);
		return -ENOMEM;
	}
	req->peer_pid = cl->pid;
	reply->type = req->type;
	reply->status = dispatch(r, cl, req, reply);
	if (req->type == MSG_HELLO && reply->status == 0)
		cl->attached = 1;
	msg_free(req);
	if (wire_check(reply) < 0) {
		log_err("region '%s': the handler of request %#x made a reply of %u bytes and %u fds (at most %d and %d): closing the connection of pid %d; fix the handler",
			r->name, reply->type, reply->len, reply->nfds, MPOPS_MSG_DATA_MAX,
			FDS_MAX, (int)cl->pid);
		msg_free(reply);
		return -EINVAL;
	}
	cl->out = reply;
	cl->out_seq = cl->in_seq;
	cl->out_next = 0;
	cl->out_due = 0;
	return client_flush(r, cl, now);
}

/* Checks at a request's first record: the hand-shake first, fds within
 * the limit. */
static int request_start(struct mpops_region *r, struct chan_client *cl,
			 const struct wire_hdr *h, int64_t now)
{
	if (h->kind != WIRE_REQ || (!cl->attached && h->type != MSG_HELLO))
		return -EBADMSG;
	if (h->nfds > MPOPS_CHANNEL_REQ_FDS_MAX) {
		if (note_due(r, NOTE_FDS, cl->pid, now))
			log_err("region '%s': pid %d announced %u fds in request %#x, more than the %d a request may carry: closing its connection; send fewer fds per request",
				r->name, (int)cl->pid, h->nfds, h->type, MPOPS_CHANNEL_REQ_FDS_MAX);
		return -E2BIG;
	}
	cl->in->type = h->type;
	cl->in->status = h->status;
	cl->in->len = h->len;
	cl->in_seq = h->seq;
	cl->in_nfds = h->nfds;
	cl->in_due = now + PEER_TIMEOUT_MS;
	return 0;
}

/* Take the records @cl sent, up to one whole request, which is served. */
static int client_read(struct mpops_region *r, struct chan_client *cl, int64_t now)
{
	for (;;) {
		int first = !cl->in;
		struct wire_hdr h;
		uint32_t before;
		int rc;

		if (first && !(cl->in = calloc(1, sizeof(*cl->in))))
			return -ENOMEM;
		before = cl->in->nfds;
		rc = recv_rec(cl->fd, &h, cl->in, first);
		if (rc == -EAGAIN) {
			if (first) {
				free(cl->in);
				cl->in = NULL;
			}
			return 0;
		}
		if (rc == 0)
			rc = first ? request_start(r, cl, &h, now) :
			     cont_ok(cl->in_seq, cl->in_nfds, &h, cl->in, before) ? 0 : -EBADMSG;
		if (rc == -EBADMSG)
			log_err("region '%s': malformed control message from pid %d: closing its connection",
				r->name, (int)cl->pid);
		if (rc < 0)
			return rc;
		if (cl->in->nfds == cl->in_nfds)
			return client_serve(r, cl, now);
	}
}

/* Serve @cl after poll() reported @ev; < 0 drops it. */
static int client_step(struct mpops_region *r, struct chan_client *cl, short ev, int64_t now)
{
	enum chan_note what;
	/* Past a deadline, one more try first: the peer may just have caught up. */
	int late = now >= client_deadline(cl, &what);
	int rc = 0;

	if (cl->out && ((ev & POLLOUT) || late))
		rc = client_flush(r, cl, now);
	else if (!cl->out && ((ev & POLLIN) || late))
		rc = cl->refused ? client_refuse(cl) : client_read(r, cl, now);
	else if (ev & (POLLHUP | POLLERR | POLLNVAL))
		rc = -ENOTCONN;
	return rc < 0 ? rc : client_overdue(r, cl, now);
}

static void client_free(struct chan_client *cl)
{
	close(cl->fd);
	msg_free(cl->in);
	msg_free(cl->out);
}

static void client_drop(struct mpops_region *r, unsigned i)
{
	struct chan_client cl = r->clients[i];

	client_free(&cl);
	r->clients[i] = r->clients[--r->nclients];
	/* Only a peer that attached was a secondary: its exit matters. */
	if (cl.attached)
		proc_gone(r, cl.pid, cl.start_time);
}

/* ==== primary: accepting ================================================ */

/* Is the peer on @sock a member of group @gid (its gid, or one of its
 * supplementary groups as they were when it connected or listened)? */
static int peer_in_group(int sock, const struct ucred *cr, gid_t gid)
{
	gid_t groups[256], *g = groups;
	socklen_t len = sizeof(groups);
	int in = cr->gid == gid;

	if (!in && getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0 &&
	    errno == ERANGE && (g = malloc(len)) != NULL &&
	    getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0)
		len = 0;
	for (size_t i = 0; !in && g && i < len / sizeof(gid_t); i++)
		in = g[i] == gid;
	if (g != groups)
		free(g);
	return in;
}

/*
 * The rule for the other end of the control channel, both ways: our uid,
 * root, or, when the region lets a group in (MPOPS_REGION_F_GROUP, or
 * MPOPS_ATTACH_F_GROUP in a secondary), a member of that group.
 */
static int peer_uid_ok(struct mpops_region *r, int sock, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);

	memset(cr, 0, sizeof(*cr));
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0)
		return 0;
	return cr->uid == geteuid() || cr->uid == 0 ||
	       (r->group_ok && peer_in_group(sock, cr, r->gid));
}

/* The rule, for log lines: "uid U or root", "uid U, root or members of group G". */
static const char *peer_rule(const struct mpops_region *r, char *buf, size_t len)
{
	if (r->group_ok)
		snprintf(buf, len, "uid %u, root or members of group %u", (unsigned)geteuid(),
			 (unsigned)r->gid);
	else
		snprintf(buf, len, "uid %u or root", (unsigned)geteuid());
	return buf;
}

/*
 * No room for @pid's new connection: at the connection limit, or out of
 * fds. Close the oldest connection that sent no hand-shake; -ENOSPC when
 * every one is attached (the new one is refused then).
 */
static int make_room(struct mpops_region *r, int32_t pid, int out_of_fds, int64_t now)
{
	char what[96];
	int v = -1;

	for (unsigned i = 0; i < r->nclients; i++)
		if (!r->clients[i].attached &&
		    (v < 0 || r->clients[i].since_ms < r->clients[v].since_ms))
			v = (int)i;
	if (v >= 0)
		snprintf(what, sizeof(what), "closed the oldest connection without a hand-shake (pid %d)",
			 (int)r->clients[v].pid);
	else
		snprintf(what, sizeof(what), "refused it: every connection is attached");
	if (note_due(r, NOTE_FULL, 0, now)) {
		if (out_of_fds)
			log_err("region '%s': out of file descriptors accepting a control connection from pid %d: %s; raise the primary's RLIMIT_NOFILE (ulimit -n) or stop what floods %s",
				r->name, (int)pid, what, r->sock_path);
		else
			log_err("region '%s': %d control connections, the most it keeps, and pid %d connects: %s; stop what floods %s",
				r->name, MPOPS_CHANNEL_CONN_MAX, (int)pid, what, r->sock_path);
	}
	if (v < 0)
		return -ENOSPC;
	client_drop(r, (unsigned)v);
	return 0;
}

/* accept4(), giving up the reserve fd when out of fds (*out_of_fds = 1):
 * the connection is then taken off the backlog instead of staying there
 * and waking poll() again at once. */
static int accept_one(struct mpops_region *r, int *out_of_fds)
{
	int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	*out_of_fds = 0;
	if (fd < 0 && (errno == EMFILE || errno == ENFILE) && r->spare_fd >= 0) {
		close(r->spare_fd);
		r->spare_fd = -1;
		*out_of_fds = 1;
		fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	}
	return fd < 0 ? -errno : fd;
}

static void client_accept(struct mpops_region *r, int64_t now)
{
	struct chan_client *p;
	struct ucred cr;
	int out_of_fds, ok = 0, fd = accept_one(r, &out_of_fds);

	if (fd < 0 && fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED) {
		/* Out of fds with no reserve, or of memory: retry later, not at once. */
		r->accept_resume_ms = now + BACKOFF_MS;
		if (note_due(r, NOTE_ACCEPT, 0, now))
			log_err("region '%s': cannot accept control connections: %s: retrying every %d ms; raise the primary's RLIMIT_NOFILE (ulimit -n) or stop what floods %s",
				r->name, strerror(-fd), BACKOFF_MS, r->sock_path);
	}
	if (fd >= 0) {
		ok = peer_uid_ok(r, fd, &cr);
		if ((out_of_fds || r->nclients >= MPOPS_CHANNEL_CONN_MAX) &&
		    make_room(r, cr.pid, out_of_fds, now) < 0) {
			close(fd);
			fd = -1;
		}
	}
	if (r->spare_fd < 0)
		r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (!ok && note_due(r, NOTE_REFUSED, cr.pid, now)) {
		char rule[80];

		log_err("region '%s': refused a control connection from pid %d, uid %u: only %s may attach%s",
			r->name, (int)cr.pid, (unsigned)cr.uid, peer_rule(r, rule, sizeof(rule)),
			r->group_ok ? "" : " (a group may be let in: MPOPS_REGION_F_GROUP)");
	}
	p = realloc(r->clients, (r->nclients + 1) * sizeof(*p));
	if (!p) {
		close(fd);
		return;
	}
	r->clients = p;
	p[r->nclients++] = (struct chan_client){
		.fd = fd, .pid = cr.pid, .refused = !ok, .since_ms = now,
	};
}

/* ==== primary: the thread =============================================== */

static void *chan_thread(void *arg)
{
	struct mpops_region *r = arg;
	struct pollfd *pf = NULL;

	while (!atomic_load(&r->thread_stop)) {
		unsigned n = 2 + r->nclients;
		struct pollfd *np = realloc(pf, n * sizeof(*pf));
		int64_t now = now_ms(), due = INT64_MAX;
		int rc;

		if (!np) {
			usleep(BACKOFF_MS * 1000);
			continue;
		}
		pf = np;
		if (r->accept_resume_ms && now >= r->accept_resume_ms)
			r->accept_resume_ms = 0;
		if (r->accept_resume_ms)
			due = r->accept_resume_ms;
		pf[0] = (struct pollfd){ .fd = r->stop_fd[0], .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = r->accept_resume_ms ? -1 : r->listen_fd,
					 .events = POLLIN };
		for (unsigned i = 0; i < r->nclients; i++) {
			struct chan_client *cl = &r->clients[i];
			enum chan_note what;
			int64_t d = client_deadline(cl, &what);

			pf[2 + i] = (struct pollfd){ .fd = cl->fd, .events = cl->out ? POLLOUT : POLLIN };
			if (d < due)
				due = d;
		}
		rc = poll(pf, n, due == INT64_MAX ? -1 : due <= now ? 0 :
			  due - now > INT_MAX ? INT_MAX : (int)(due - now));
		if (rc < 0 && errno != EINTR) {
			/* EINVAL: more fds to poll than RLIMIT_NOFILE; ENOMEM. */
			if (note_due(r, NOTE_POLL, 0, now))
				log_err("region '%s': the control thread cannot poll %u fds: %s: retrying every %d ms; raise the primary's RLIMIT_NOFILE (ulimit -n)",
					r->name, n, strerror(errno), BACKOFF_MS);
			usleep(BACKOFF_MS * 1000);
			continue;
		}
		if (rc < 0)
			continue;
		if (pf[0].revents)
			break;
		now = now_ms();
		/* Clients from the end, so dropping one keeps indices. */
		for (unsigned i = n - 2; i-- > 0;)
			if (client_step(r, &r->clients[i], pf[2 + i].revents, now) < 0)
				client_drop(r, i);
		if (pf[1].revents & POLLIN)
			client_accept(r, now);
	}
	free(pf);
	return NULL;
}

/*
 * Start one of the library's threads with every signal blocked in it: a
 * signal sent to the process goes to the application's threads, whose
 * handlers and pause()/sigsuspend() loops expect it (a SIGTERM taken by
 * our thread would leave the application's main loop waiting forever).
 * @return 0 or pthread_create()'s error number.
 */
static int thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int chan_listen(struct mpops_region *r, unsigned mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int rc;

	strlcpy(sa.sun_path, r->sock_path, sizeof(sa.sun_path));
	r->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (r->listen_fd < 0)
		return -errno;
	/* We hold the name's lock: a socket file left there is stale. */
	unlink(r->sock_path);
	if (bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		log_err("region '%s': cannot listen on %s: %s", r->name, r->sock_path,
			strerror(-rc));
		return rc;
	}
	if (r->group_ok && chown(r->sock_path, (uid_t)-1, (gid_t)r->gid) < 0) {
		rc = -errno;
		log_err("region '%s': cannot give %s to group %u: %s: the primary must be root or a member of the group it lets attach",
			r->name, r->sock_path, (unsigned)r->gid, strerror(-rc));
		return rc;
	}
	if (chmod(r->sock_path, mode) < 0 || listen(r->listen_fd, 64) < 0) {
		rc = -errno;
		log_err("region '%s': cannot listen on %s: %s", r->name, r->sock_path,
			strerror(-rc));
		return rc;
	}
	/* The fd given up to accept with when the process runs out of them
	 * (without it, accept backs off instead). */
	r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (pipe2(r->stop_fd, O_CLOEXEC) < 0)
		return -errno;
	if ((rc = thread_start(&r->thread, chan_thread, r)) != 0) {
		log_err("region '%s': cannot start the control thread: %s", r->name, strerror(rc));
		return -rc;
	}
	pthread_setname_np(r->thread, "mpops-chan");
	r->thread_running = 1;
	return 0;
}

void chan_stop(struct mpops_region *r)
{
	if (r->thread_running) {
		char b = 1;

		atomic_store(&r->thread_stop, 1);
		if (write(r->stop_fd[1], &b, 1) < 0)
			log_warn("region '%s': cannot signal the control thread", r->name);
		pthread_join(r->thread, NULL);
		r->thread_running = 0;
	}
	for (unsigned i = 0; i < r->nclients; i++)
		client_free(&r->clients[i]);
	r->nclients = 0;
	for (int i = 0; i < 2; i++) {
		if (r->stop_fd[i] >= 0)
			close(r->stop_fd[i]);
		r->stop_fd[i] = -1;
	}
	if (r->spare_fd >= 0) {
		close(r->spare_fd);
		r->spare_fd = -1;
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
	if (!r || !fn || type < MPOPS_MSG_USER) {
		log_err("mpops_channel_register: type %#x is reserved (use MPOPS_MSG_USER and up) or no handler given",
			type);
		return -EINVAL;
	}
	return chan_register(r, type, fn, arg);
}

int chan_register(struct mpops_region *r, uint32_t type, mpops_channel_handler fn, void *arg)
{
	int rc = -ENOSPC;

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

/* One exchange on the connection, by @deadline; caller holds req_mu. */
static int exchange(struct mpops_region *r, const struct mpops_msg *req,
		    struct mpops_msg *reply, int64_t deadline)
{
	uint32_t seq = ++r->seq;
	struct wire_hdr h;
	int rc;

	rc = wire_send(r->conn_fd, WIRE_REQ, seq, req, deadline);
	/* On a broken pipe a refusal may still be waiting: read it. */
	if (rc < 0 && rc != -ENOTCONN)
		return rc;
	for (;;) {
		rc = wire_recv(r->conn_fd, &h, reply, deadline);
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
	if (req->nfds > MPOPS_CHANNEL_REQ_FDS_MAX) {
		log_err("mpops_channel_request: request %#x carries %u fds, more than the %d the primary accepts: send them in several requests",
			req->type, req->nfds, MPOPS_CHANNEL_REQ_FDS_MAX);
		return -E2BIG;
	}
	pthread_mutex_lock(&r->req_mu);
	if (atomic_load(&r->primary_gone)) {
		rc = -ENOTCONN;
	} else {
		rc = exchange(r, req, reply, now_ms() + (timeout_ms > 0 ? timeout_ms : 5000));
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

/* connect() by @deadline: a unix connect() waits for room in a full listen
 * backlog without end, unless SO_SNDTIMEO bounds it (then -EAGAIN). */
static int connect_by(struct mpops_region *r, int64_t deadline, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int rc;

	strlcpy(sa.sun_path, r->sock_path, sizeof(sa.sun_path));
	do {
		int64_t left = deadline - now_ms() > 0 ? deadline - now_ms() : 1;
		struct timeval tv = { .tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000 };

		if (setsockopt(r->conn_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
			return -errno;
		rc = connect(r->conn_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
	} while (rc == -EINTR && now_ms() < deadline);
	if (rc == 0)
		return 0;
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		log_err("no primary is running for region '%s' (nothing listens on %s): start the primary first",
			r->name, r->sock_path);
		rc = -ENOENT;
	} else if (rc == -EACCES || rc == -EPERM) {
		log_err("permission denied on %s: run as the primary's user or root",
			r->sock_path);
		rc = -EACCES;
	} else if (rc == -EAGAIN || rc == -EINTR) {
		log_err("region '%s': the primary accepted no connection on %s within %d ms (its backlog is full): is it stuck, or is something flooding the socket?",
			r->name, r->sock_path, timeout_ms);
		rc = -ETIMEDOUT;
	} else {
		log_err("cannot connect to %s: %s", r->sock_path, strerror(-rc));
	}
	return rc;
}

int chan_connect(struct mpops_region *r, int timeout_ms, int region_fd[2],
		 struct hello_reply *info)
{
	int64_t deadline = now_ms() + timeout_ms;
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
	r->conn_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (r->conn_fd < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = connect_by(r, deadline, timeout_ms)) < 0)
		goto out;
	if (!peer_uid_ok(r, r->conn_fd, &cr)) {
		char rule[80];

		log_err("region '%s': the process listening on %s runs as uid %u, not %s: refusing to attach%s",
			r->name, r->sock_path, (unsigned)cr.uid, peer_rule(r, rule, sizeof(rule)),
			r->group_ok ? "" : " (to attach to a primary of a group you share: MPOPS_ATTACH_F_GROUP)");
		rc = -EACCES;
		goto out;
	}
	req->type = MSG_HELLO;
	req->len = sizeof(hr);
	memcpy(req->data, &hr, sizeof(hr));
	rc = exchange(r, req, reply, deadline);
	if (rc == -ETIMEDOUT) {
		log_err("region '%s': the primary did not answer within %d ms", r->name, timeout_ms);
		goto out;
	}
	if (rc == -ENOTCONN) {
		log_err("region '%s': the primary closed the connection during the hand-shake: is it stopping, or out of connections (see its log)?",
			r->name);
		goto out;
	}
	if (rc < 0) {
		log_err("region '%s': malformed hand-shake reply from the primary", r->name);
		goto out;
	}
	if (reply->status == -EACCES) {
		log_err("region '%s': the primary refused this process (uid %u): run as its user, root, or a member of a group the primary lets in (MPOPS_REGION_F_GROUP)",
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
	if (reply->nfds != 2) {
		log_err("region '%s': hand-shake reply carries %u fds, expected the region's two",
			r->name, reply->nfds);
		rc = -EBADMSG;
		goto out;
	}
	region_fd[0] = reply->fds[0];
	region_fd[1] = reply->fds[1];
	reply->fds[0] = reply->fds[1] = -1;
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

/* ==== secondary: the primary's end ======================================= */

/*
 * Wait for the primary's end of the connection to hang up: the kernel does
 * it as the primary's process ends (exit, crash, SIGKILL), and so does a
 * primary that detaches. Only hang-ups are asked for, so this thread never
 * takes a reply that a request is waiting for.
 */
static void *watch_thread(void *arg)
{
	struct mpops_region *r = arg;
	struct pollfd pf[2] = {
		{ .fd = r->conn_fd, .events = POLLRDHUP },
		{ .fd = r->watch_stop[0], .events = POLLIN },
	};

	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("region '%s': cannot watch the primary's connection: %s: call mpops_region_primary_check() to learn of its exit",
				r->name, strerror(errno));
			return NULL;
		}
		if (pf[1].revents)
			return NULL;
		if (pf[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
			region_primary_exited(r);
			return NULL;
		}
	}
}

int chan_watch_start(struct mpops_region *r)
{
	int rc;

	if ((r->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    pipe2(r->watch_stop, O_CLOEXEC) < 0)
		return -errno;
	if ((rc = thread_start(&r->watch_thread, watch_thread, r)) != 0) {
		log_err("region '%s': cannot start the thread that watches the primary: %s",
			r->name, strerror(rc));
		return -rc;
	}
	pthread_setname_np(r->watch_thread, "mpops-watch");
	r->watch_running = 1;
	return 0;
}

int chan_watch_stop(struct mpops_region *r)
{
	if (r->watch_running && pthread_equal(pthread_self(), r->watch_thread)) {
		log_err("region '%s': mpops_region_detach called from a primary-exit callback: detach from another thread",
			r->name);
		return -EDEADLK;
	}
	if (r->watch_running) {
		if (write(r->watch_stop[1], "x", 1) < 0)
			log_warn("region '%s': cannot stop the watch thread: %s", r->name, strerror(errno));
		pthread_join(r->watch_thread, NULL);
		r->watch_running = 0;
	}
	for (int i = 0; i < 2; i++) {
		if (r->watch_stop[i] >= 0)
			close(r->watch_stop[i]);
		r->watch_stop[i] = -1;
	}
	return 0;
}

void chan_close(struct mpops_region *r)
{
	if (r->conn_fd >= 0) {
		close(r->conn_fd);
		r->conn_fd = -1;
	}
}
