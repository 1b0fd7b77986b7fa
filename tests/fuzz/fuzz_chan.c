/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: control-channel requests into the primary's side of
 * lib/channel.c (the real source, included here so that its static record
 * parsing and serving can be called directly: recv_rec(), request_start(),
 * cont_ok(), client_serve(), dispatch(), the hand-shake, client_flush(),
 * client_refuse()). One connection per input, one end of a SOCK_SEQPACKET
 * pair; the other end sends the input's records with the fds they carry
 * and reads the replies. A handler of type MPOPS_MSG_USER echoes data and
 * fds, as a driver's does.
 *
 * Input: byte 0 (bit 0 the peer has attached already, bit 1 its uid is
 * refused), then records: a 16-bit little-endian length, a byte whose low
 * 3 bits say how many fds ride along, and that many bytes (at most 8192),
 * sent as one datagram.
 */
#include "../../lib/channel.c"

#include <fcntl.h>

#include "sendfds.h"

static struct mpops_region *reg;

static int echo(struct mpops_region *r, const struct mpops_msg *req, struct mpops_msg *reply,
		void *arg)
{
	(void)r;
	(void)arg;
	memcpy(reply->data, req->data, req->len);
	reply->len = req->len;
	/* Copies: the request's own are closed before the reply goes out. */
	reply->fds_owned = 1;
	for (uint32_t i = 0; i < req->nfds && i < 4; i++) {
		int fd = fcntl(req->fds[i], F_DUPFD_CLOEXEC, 0);

		if (fd >= 0 && mpops_msg_add_fd(reply, fd) < 0)
			close(fd);
	}
	return 0;
}

static void quiet(enum mpops_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)line;
	(void)arg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct region_hdr_shared hdr;

	(void)argc;
	(void)argv;
	mpops_log_set(quiet, NULL);
	reg = calloc(1, sizeof(*reg));
	strlcpy(reg->name, "fuzz", sizeof(reg->name));
	pthread_mutex_init(&reg->chan_mu, NULL);
	hdr.layout_hash = 0x6d706f7073667a7aull;
	reg->hdr = &hdr;
	reg->size = 1u << 20;
	reg->primary_pid = getpid();
	reg->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	reg->listen_fd = reg->spare_fd = -1;
	reg->handlers[0] = (struct chan_handler){ .type = MPOPS_MSG_USER, .fn = echo };
	return 0;
}

/* Read and drop what the primary answered, closing the fds that came. */
static void drain(int fd)
{
	char buf[MPOPS_MSG_DATA_MAX + 64];
	union {
		char c[CMSG_SPACE(sizeof(int) * 253)];
		struct cmsghdr align;
	} ctl;

	for (;;) {
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.c, .msg_controllen = sizeof(ctl.c) };

		if (recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)), got;

			for (int i = 0; i < n; i++) {
				memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(got));
				close(got);
			}
		}
	}
}

static void send_rec(int fd, const uint8_t *p, size_t len, unsigned nfds)
{
	struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
	int fds[7];

	for (unsigned i = 0; i < nfds; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	sendmsg_fds(fd, &iov, 1, fds, nfds, MSG_NOSIGNAL | MSG_DONTWAIT);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chan_client cl = { .pid = 4242 };
	int sv[2];

	if (size < 1)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	cl.fd = sv[0];
	cl.attached = data[0] & 1;
	cl.refused = !!(data[0] & 2);
	cl.since_ms = now_ms();
	data++;
	size--;
	while (size >= 3) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		unsigned nfds = data[2] & 7;

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (len > 8192)
			len = 8192;
		send_rec(sv[1], data, len, nfds);
		data += len;
		size -= len;
	}
	/* The thread's steps, until the peer is dropped or has nothing left. */
	for (int i = 0; i < 64; i++) {
		short ev = POLLIN | (cl.out ? POLLOUT : 0);
		int rc = client_step(reg, &cl, ev, now_ms());

		drain(sv[1]);
		if (rc < 0)
			break;
		if (!cl.out && recv(sv[0], &ev, 1, MSG_PEEK | MSG_DONTWAIT) < 0)
			break;
	}
	client_free(&cl);
	close(sv[1]);
	return 0;
}
