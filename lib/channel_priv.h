/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control channel's wire format, shared by channel.c and the tests that
 * play a misbehaving peer. Never installed.
 *
 * A SOCK_SEQPACKET unix socket per region, one record per message plus
 * continuation records for fds past the kernel's per-message limit
 * (SCM_MAX_FD, 253). A record is struct wire_hdr, then (first record only)
 * the payload; fds ride in SCM_RIGHTS control data. Every continuation
 * header repeats the first one's seq and nfds.
 */
#ifndef MPOPS_LIB_CHANNEL_PRIV_H
#define MPOPS_LIB_CHANNEL_PRIV_H

#include <stdint.h>

#define WIRE_MAGIC 0x4843504du /* "MPCH" */
#define WIRE_VERSION 1
#define FDS_PER_REC 250

enum wire_kind { WIRE_REQ = 1, WIRE_REPLY = 2, WIRE_FDS = 3 };

struct wire_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t kind;
	uint32_t type;
	int32_t status;
	uint32_t seq;
	uint32_t len;
	uint32_t nfds;
	uint32_t pad;
};
_Static_assert(sizeof(struct wire_hdr) == 32, "wire header layout");

/* Send one record (@h, then h->len bytes of @data if not NULL, @nfds fds)
 * without waiting: 0, -EAGAIN (no room), -ENOTCONN (peer gone), -errno. */
int chan_send_rec(int sock, const struct wire_hdr *h, const void *data,
		  const int *fds, unsigned nfds);

#endif
