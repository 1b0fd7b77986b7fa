/* SPDX-License-Identifier: BSD-3-Clause */
/* The frontend's side of the mpops-vhost fuzzers: see vhost_fuzz.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "sendfds.h"
#include "vhost_fuzz.h"

static int memfd = -1;

uint64_t vf_features(void)
{
	return 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF |
	       1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_F_IN_ORDER |
	       1ull << VHOST_USER_F_PROTOCOL_FEATURES | 1ull << VIRTIO_NET_F_MQ;
}

void vf_begin(struct vf *f, const struct vb_opts *o, const uint8_t *image, size_t len)
{
	int sv[2];

	if (memfd < 0 && (memfd = memfd_create("vf-guest", MFD_CLOEXEC)) < 0)
		abort();
	/* Emptied and grown again: all zero, then the image. */
	if (ftruncate(memfd, 0) < 0 || ftruncate(memfd, VF_MEM_SIZE) < 0)
		abort();
	if (len > VF_MEM_SIZE)
		len = VF_MEM_SIZE;
	if (len && pwrite(memfd, image, len, 0) != (ssize_t)len)
		abort();
	f->opts = *o;
	vb_dev_init(&f->dev, &f->opts);
	if (f->opts.mode == VB_MODE_SOURCE && vb_source_init(&f->dev) < 0)
		abort();
	f->dev.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (f->dev.epfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	f->dev.conn_fd = sv[0];
	f->peer = sv[1];
}

/* The fds a frontend attaches to @request (whose payload is @p, @plen bytes). */
static unsigned fds_for(uint32_t request, const uint8_t *p, size_t plen, int *fds)
{
	uint64_t u = 0;
	unsigned n = 0;

	if (plen)
		memcpy(&u, p, plen < 8 ? plen : 8);
	switch (request) {
	case VHOST_USER_SET_MEM_TABLE:
		/* One per region as announced; a fuzzed count past 8 too. */
		n = (unsigned)(u & 15);
		if (n > 12)
			n = 12;
		for (unsigned i = 0; i < n; i++)
			fds[i] = memfd;
		return n;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		if (u & VHOST_USER_VRING_NOFD_MASK)
			return 0;
		/* Bit 9: a file that is not an eventfd. */
		fds[0] = (u & (1u << 9)) ? memfd : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		return fds[0] >= 0;
	case VHOST_USER_SET_SLAVE_REQ_FD:
		fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		return fds[0] >= 0;
	default:
		return 0;
	}
}

int vf_msg(struct vf *f, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
	   size_t plen)
{
	struct vhost_user_hdr h = { .request = request, .flags = flags, .size = size };
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)payload, .iov_len = plen },
	};
	int fds[12];
	unsigned n = fds_for(request, payload, plen, fds);
	char reply[512];
	int rc;

	if (sendmsg_fds(f->peer, iov, 2, fds, n, MSG_NOSIGNAL) < 0)
		abort();
	for (unsigned i = 0; i < n; i++)
		if (fds[i] != memfd)
			close(fds[i]);	/* the backend has its own copy now */
	/* A short message: the frontend hangs up (the backend would wait for
	 * the rest otherwise). */
	if (plen < size)
		shutdown(f->peer, SHUT_WR);
	rc = vb_conn_handle(&f->dev);
	while (recv(f->peer, reply, sizeof(reply), MSG_DONTWAIT) > 0)
		;
	return rc;
}

void vf_rings(struct vf *f, unsigned passes)
{
	for (unsigned k = 0; k < passes; k++) {
		for (unsigned q = 0; q < VB_MAX_QUEUES; q++) {
			if (!f->dev.vq[q].ready)
				continue;
			if (k & 1)
				vb_vq_service_kicked(&f->dev, q);
			else
				vb_vq_service(&f->dev, q);
		}
	}
}

void vf_end(struct vf *f)
{
	vb_disconnect(&f->dev, "fuzz input done");
	close(f->peer);
	close(f->dev.epfd);
	free(f->dev.frame);
}
