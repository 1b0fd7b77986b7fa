/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file channel.h
 * The control channel: request/reply messages with fd passing between a
 * secondary and its primary, over a unix socket (SOCK_SEQPACKET) in the
 * runtime directory.
 *
 * The primary serves requests on a thread of its own, started by
 * mpops_region_create(); handlers run on that thread. Peers are checked by
 * credentials (same uid as the primary, or root). A message carries up to
 * MPOPS_MSG_DATA_MAX bytes and any number of fds: past the kernel's
 * per-message limit they travel in several records.
 */
#ifndef MPOPS_CHANNEL_H
#define MPOPS_CHANNEL_H

#include <stdint.h>

#include <mpops/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mpops_region;

/** Payload capacity of one message. */
#define MPOPS_MSG_DATA_MAX 4096
/** First message type free for drivers; lower ones are mpops's own. */
#define MPOPS_MSG_USER 0x1000

/**
 * A message. Requests are filled by the caller; replies by the handler and
 * the library. Use mpops_msg_add_fd() to attach fds and mpops_msg_clear()
 * to release what a received message holds.
 */
struct mpops_msg {
	uint32_t type;		/**< request type (>= MPOPS_MSG_USER for drivers) */
	int32_t status;		/**< reply: the handler's 0 or -errno */
	int32_t peer_pid;	/**< set on receipt: the sender's pid */
	uint32_t len;		/**< bytes used in data */
	uint8_t data[MPOPS_MSG_DATA_MAX];
	int *fds;		/**< nfds fds (malloc'd, see below) */
	uint32_t nfds;
	uint32_t fds_cap;
	uint32_t fds_owned;	/**< non-zero: clear() closes the fds (received) */
};

/**
 * Attach @p fd to @p m. On a message to send the fd is borrowed: the caller
 * still owns it and may close it after the send.
 * @return 0, -ENOMEM, -EBADF (negative fd).
 */
MPOPS_API int mpops_msg_add_fd(struct mpops_msg *m, int fd);

/**
 * Release what @p m holds: close received fds that the caller did not take
 * (set m->fds[i] = -1 to take one), free the fd array, zero the counts.
 */
MPOPS_API void mpops_msg_clear(struct mpops_msg *m);

/**
 * Request handler, run on the primary's channel thread. Fill @p reply
 * (data, fds: borrowed, closed by nobody but the handler's owner) and
 * return 0 or -errno, which the requester receives as reply->status.
 */
typedef int (*mpops_channel_handler)(struct mpops_region *r,
				     const struct mpops_msg *req,
				     struct mpops_msg *reply, void *arg);

/**
 * Add a handler for requests of @p type. Primary only; any thread.
 * @return 0, -EEXIST type taken, -EINVAL type below MPOPS_MSG_USER or
 *   NULL handler, -EPERM not the primary, -ENOSPC too many handlers.
 */
MPOPS_API int mpops_channel_register(struct mpops_region *r, uint32_t type,
				     mpops_channel_handler fn, void *arg);

/** Remove the handler of @p type. @return 0, -ENOENT, -EPERM. */
MPOPS_API int mpops_channel_unregister(struct mpops_region *r, uint32_t type);

/**
 * Send @p req to the primary and wait up to @p timeout_ms (0 = 5000) for
 * its reply. Secondary only; requests from several threads are serialised.
 * The caller owns the fds received in @p reply (mpops_msg_clear() closes
 * those not taken).
 * @return the reply's status (0 or the handler's -errno; -ENOTSUP for a
 *   type the primary has no handler for), or -ENOTCONN the primary has
 *   exited, -ETIMEDOUT, -EBADMSG malformed reply, -EPERM not a secondary,
 *   -EINVAL.
 */
MPOPS_API int mpops_channel_request(struct mpops_region *r,
				    const struct mpops_msg *req,
				    struct mpops_msg *reply, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_CHANNEL_H */
