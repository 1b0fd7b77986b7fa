/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_config.h>

#include "../drivers/virtio/vhost_user.h"
#include "fake_vhost.h"

static int recv_msg(int fd, struct vhost_user_msg *m, int *fds, int *nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 8)];
	struct iovec iov = { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

	*nfds = 0;
	if (n != sizeof(m->hdr))
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_type != SCM_RIGHTS)
			continue;
		*nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)*nfds);
	}
	if (m->hdr.size > sizeof(m->payload))
		return -1;
	if (m->hdr.size && recv(fd, &m->payload, m->hdr.size, MSG_WAITALL) != (ssize_t)m->hdr.size)
		return -1;
	return 0;
}

static void reply(int fd, struct vhost_user_msg *m, uint32_t size)
{
	m->hdr.flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
	m->hdr.size = size;
	if (send(fd, m, sizeof(m->hdr) + size, MSG_NOSIGNAL) < 0)
		return;
}

/* What a backend gets: keep the figures, map the fd whole (a backend may
 * map any part of what it was given) and look for the region's header. */
static void mem_table(struct fake_vhost *f, const struct vhost_user_memory *mt, int fd)
{
	const uint64_t magic = 0x4e4752534f50504dULL;	/* the region header's */
	struct stat st;

	if (f->mem)
		munmap(f->mem, f->mem_len);
	f->mem = NULL;
	f->mem_nregions = mt->nregions;
	f->mem_gpa = mt->regions[0].guest_phys_addr;
	f->mem_size = mt->regions[0].memory_size;
	f->mem_uaddr = mt->regions[0].userspace_addr;
	f->mem_mmap_off = mt->regions[0].mmap_offset;
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	f->mem_fd_size = (uint64_t)st.st_size;
	f->mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (f->mem == MAP_FAILED) {
		f->mem = NULL;
		return;
	}
	f->mem_len = (size_t)st.st_size;
	f->mem_magic_seen = 0;
	for (size_t i = 0; i + 8 <= f->mem_len; i += 8)
		f->mem_magic_seen += memcmp((char *)f->mem + i, &magic, 8) == 0;
}

static void session(struct fake_vhost *f, int fd)
{
	struct vhost_user_msg m;
	int fds[8], nfds;

	pthread_mutex_lock(&f->mu);
	f->conn_fd = fd;
	f->sessions++;
	pthread_mutex_unlock(&f->mu);
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };

		if (poll(&pf, 1, 50) == 0) {
			if (f->stop)
				break;
			continue;
		}
		if (recv_msg(fd, &m, fds, &nfds) < 0)
			break;
		if (m.hdr.request < 64)
			f->requests[m.hdr.request]++;
		switch (m.hdr.request) {
		case VHOST_USER_GET_FEATURES:
			if (f->mode == FAKE_CLOSE_EARLY)
				goto out;
			m.payload.u64 = f->features;
			if (f->mode == FAKE_GARBAGE)
				m.hdr.request = VHOST_USER_GET_QUEUE_NUM;
			reply(fd, &m, 8);
			break;
		case VHOST_USER_GET_PROTOCOL_FEATURES:
			m.payload.u64 = 1u << VHOST_USER_PROTOCOL_F_REPLY_ACK;
			if (f->queues)
				m.payload.u64 |= 1u << VHOST_USER_PROTOCOL_F_MQ;
			reply(fd, &m, 8);
			break;
		case VHOST_USER_GET_QUEUE_NUM:
			m.payload.u64 = f->queues;
			reply(fd, &m, 8);
			break;
		case VHOST_USER_GET_VRING_BASE:
			reply(fd, &m, sizeof(m.payload.state));
			break;
		case VHOST_USER_SET_FEATURES:
			f->acked_features = m.payload.u64;
			break;
		case VHOST_USER_SET_MEM_TABLE: {
			struct vhost_user_memory mt;

			memcpy(&mt, &m.payload.memory, sizeof(mt));
			mem_table(f, &mt, nfds > 0 ? fds[0] : -1);
			break;
		}
		case VHOST_USER_SET_VRING_KICK:
			if (nfds == 1 && (m.payload.u64 & 0xff) < 32) {
				if (f->kickfd[m.payload.u64 & 0xff] >= 0)
					close(f->kickfd[m.payload.u64 & 0xff]);
				f->kickfd[m.payload.u64 & 0xff] = fds[0];
				nfds = 0;
			}
			break;
		default:
			break;
		}
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (m.hdr.flags & VHOST_USER_FLAG_NEED_REPLY) {
			m.payload.u64 = 0;
			reply(fd, &m, 8);
		}
	}
out:
	pthread_mutex_lock(&f->mu);
	f->conn_fd = -1;
	pthread_mutex_unlock(&f->mu);
	close(fd);
}

static void *run(void *arg)
{
	struct fake_vhost *f = arg;

	while (!f->stop) {
		int fd = -1;

		if (f->client) {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };

			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
				close(fd);
				usleep(20000);
				continue;
			}
		} else {
			struct pollfd pf = { .fd = f->listen_fd, .events = POLLIN };

			if (poll(&pf, 1, 50) <= 0)
				continue;
			fd = accept(f->listen_fd, NULL, NULL);
			if (fd < 0)
				continue;
		}
		session(f, fd);
	}
	return NULL;
}

int fake_vhost_start(struct fake_vhost *f)
{
	for (int i = 0; i < 32; i++)
		f->kickfd[i] = -1;
	f->listen_fd = f->conn_fd = -1;
	pthread_mutex_init(&f->mu, NULL);
	if (!f->features)
		f->features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 15 /* MRG_RXBUF */) |
			      (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	if (!f->client) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
		unlink(f->path);
		if (bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(f->listen_fd, 4) < 0)
			return -errno;
	}
	return -pthread_create(&f->thr, NULL, run, f);
}

void fake_vhost_hangup(struct fake_vhost *f)
{
	pthread_mutex_lock(&f->mu);
	if (f->conn_fd >= 0)
		shutdown(f->conn_fd, SHUT_RDWR);
	pthread_mutex_unlock(&f->mu);
}

void fake_vhost_stop(struct fake_vhost *f)
{
	f->stop = 1;
	fake_vhost_hangup(f);
	pthread_join(f->thr, NULL);
	if (f->listen_fd >= 0) {
		close(f->listen_fd);
		unlink(f->path);
	}
	for (int i = 0; i < 32; i++)
		if (f->kickfd[i] >= 0)
			close(f->kickfd[i]);
	if (f->mem)
		munmap(f->mem, f->mem_len);
}
