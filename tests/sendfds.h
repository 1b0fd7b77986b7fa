/* SPDX-License-Identifier: BSD-3-Clause */
/* Send bytes with fds (SCM_RIGHTS), as the tests' and fuzzers' peers do. */
#ifndef MPOPS_TEST_SENDFDS_H
#define MPOPS_TEST_SENDFDS_H

#include <string.h>
#include <sys/socket.h>

/* Most fds the kernel passes with one message (SCM_MAX_FD). */
#define SENDFDS_MAX 253

/* sendmsg() of @iov with @nfds (<= SENDFDS_MAX) of @fds attached. */
static inline ssize_t sendmsg_fds(int sock, struct iovec *iov, int niov, const int *fds,
				  unsigned nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SENDFDS_MAX)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)niov };

	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &mh, flags);
}

#endif
