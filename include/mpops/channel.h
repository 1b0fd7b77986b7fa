/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file channel.h
 * The control channel: request/reply messages with fd passing between a
 * secondary and its primary, over a unix socket (SOCK_SEQPACKET) in the
 * runtime directory.
 *
 * The primary serves requests on a thread of its own, started by
 * mpops_region_create(); handlers run on that thread. Peers are checked by
 * credentials, both ways: same uid, or root, or, where the region lets a
 * group in (MPOPS_REGION_F_GROUP; the secondary names it with
 * MPOPS_ATTACH_F_GROUP), a member of that group. The socket file's mode
 * only decides who can connect at all. A message carries up to
 * MPOPS_MSG_DATA_MAX bytes and fds: past the kernel's per-message limit they
 * travel in several records. A request carries at most
 * MPOPS_CHANNEL_REQ_FDS_MAX fds; a reply any number up to 65536.
 *
 * One peer cannot keep the primary from serving the others: the channel
 * thread never waits on a peer (only on a handler it runs). The primary
 * closes a connection, with one line in its log naming the peer's pid, when
 * the peer
 *  - fails the credential rule: answered -EACCES after reading only the header of
 *    its first record, never its payload or fds;
 *  - sends no hand-shake within MPOPS_CHANNEL_PEER_TIMEOUT_MS of connecting
 *    (mpops_region_attach() sends it at once), or a request before it;
 *  - leaves a request unfinished (fd records missing) for that long after
 *    its first record, or announces more than MPOPS_CHANNEL_REQ_FDS_MAX fds;
 *  - leaves the primary no room for a reply (it sends requests and does not
 *    read the replies) for that long. Its further requests wait meanwhile.
 * At most MPOPS_CHANNEL_CONN_MAX connections are kept. When that many are
 * open, or the primary runs out of fds (EMFILE; it keeps one in reserve to
 * accept with), a new connection closes the oldest one that has not sent a
 * hand-shake, or is closed itself when every connection is attached (the
 * secondary's attach then fails at once with -ENOTCONN). If accept, or
 * poll, fails even so, the thread retries every 100 ms instead of spinning
 * or stopping. A line for the same case and peer is logged at most every
 * 10 s.
 *
 * The secondary's side is bounded by its timeouts too: mpops_region_attach()
 * gives up connecting (a primary whose listen backlog is full) and waiting
 * for the hand-shake within mpops_attach_opts.timeout_ms, a request within
 * its timeout_ms.
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
/** Most fds one request to the primary may carry. */
#define MPOPS_CHANNEL_REQ_FDS_MAX 1024
/** Most connections the primary keeps (attached secondaries and tools). */
#define MPOPS_CHANNEL_CONN_MAX 256
/** How long the primary waits on a peer for a hand-shake, a request's
 *  remaining records, or room for a reply, before closing its connection. */
#define MPOPS_CHANNEL_PEER_TIMEOUT_MS 2000

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
 *   exited (or closed the connection), -ETIMEDOUT, -EBADMSG malformed
 *   reply, -EPERM not a secondary, -E2BIG more than
 *   MPOPS_CHANNEL_REQ_FDS_MAX fds, -EINVAL.
 */
MPOPS_API int mpops_channel_request(struct mpops_region *r,
				    const struct mpops_msg *req,
				    struct mpops_msg *reply, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_CHANNEL_H */
