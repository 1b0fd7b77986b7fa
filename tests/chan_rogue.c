/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * chan-rogue: a local client that misbehaves on a primary's control socket,
 * speaking the wire format by hand, and then makes a real attach
 * (mpops_region_attach) from this process while the misbehaviour goes on.
 *
 *   chan-rogue CMD RUNDIR REGION [N]
 *
 *   noread      hand-shake, then requests without ever reading a reply,
 *               until the socket is stuffed; attach; wait to be closed
 *   noreadfds   hand-shake, then requests for one eventfd each without
 *               reading, until stuffed; on SIGUSR1 read every reply and
 *               check its fd (an eventfd of value 1)
 *   slowfds N   hand-shake, then a request announcing N fds: 250 in the
 *               first record, then one record of one fd every 1.5 s;
 *               attach; wait to be closed
 *   refused N   as uid 65534: a hand-shake announcing N fds, 250 of them in
 *               the first record, no more; wait for the reply
 *   idle        connect and send nothing; wait to be closed
 *   flood N     hold N connections that send nothing, reconnecting those
 *               closed; attach 1.5 s in; go on until SIGTERM
 *   late        on SIGUSR1, attach (within 3 s)
 *
 * Results go to stdout as "key=value" lines: ms counts from the start of the
 * misbehaviour. The exit status is 0 when the command could be carried out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "channel_priv.h"
#include "demo_ops.h"
#include "region_priv.h"

static const char *rundir, *region;
static long long t0;
static sigset_t usr1;

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long long since(void)
{
	return ms_now() - t0;
}

/* A connection to the region's socket; -1 when the backlog is full. */
static int sock_open(int nonblock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", rundir, region);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct wire_hdr hdr(uint16_t kind, uint32_t type, uint32_t seq, uint32_t len,
			   uint32_t nfds)
{
	return (struct wire_hdr){
		.magic = WIRE_MAGIC, .version = WIRE_VERSION, .kind = kind,
		.type = type, .seq = seq, .len = len, .nfds = nfds,
	};
}

/*
 * A hand-shake the primary accepts. Its start time is not this process's:
 * closing this connection must not reclaim the process-table entry of the
 * real attach made from this process afterwards.
 */
static int hello_send(int fd, uint32_t nfds, const int *fds, unsigned sent)
{
	struct hello_req hr = {
		.abi_version = MPOPS_ABI_VERSION,
		.layout_hash = region_layout_hash(),
		.start_time = 1,
	};
	struct wire_hdr h = hdr(WIRE_REQ, MSG_HELLO, 1, sizeof(hr), nfds);

	return chan_send_rec(fd, &h, &hr, fds, sent);
}

/* Read replies until the one of @seq; its status, or -ENOTCONN. */
static int reply_wait(int fd, uint32_t seq, int timeout_ms)
{
	char buf[sizeof(struct wire_hdr) + MPOPS_MSG_DATA_MAX];
	struct wire_hdr h;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, timeout_ms) == 1) {
		/* No control buffer: fds that come are dropped by the kernel. */
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < (ssize_t)sizeof(h))
			return -ENOTCONN;
		memcpy(&h, buf, sizeof(h));
		if (h.kind == WIRE_REPLY && h.seq == seq)
			return h.status;
	}
	return -ETIMEDOUT;
}

/* Has the primary closed @fd? Waits up to @timeout_ms; reads nothing. */
static int closed_within(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = 0 };

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* The real attach, made while the misbehaviour goes on (within 1.5 s);
 * @fd (if >= 0) tells whether the rogue connection was still open when it
 * returned. */
static int real_attach_within(int fd, int timeout_ms)
{
	struct mpops_attach_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir, .timeout_ms = timeout_ms,
	};
	struct mpops_region *r = NULL;
	long long start = ms_now();
	int rc = mpops_region_attach(region, &o, &r);

	printf("attach=%d ms=%lld rogue-open=%d\n", rc, ms_now() - start,
	       fd >= 0 && !closed_within(fd, 0));
	if (r)
		mpops_region_detach(r);
	return rc;
}

static int real_attach(int fd)
{
	return real_attach_within(fd, 1500);
}

static void wait_usr1(void)
{
	int sig;

	sigwait(&usr1, &sig);
}

static void wait_closed(int fd, int timeout_ms)
{
	if (closed_within(fd, timeout_ms))
		printf("closed ms=%lld\n", since());
	else
		printf("closed=no ms=%lld\n", since());
}

/* 250 eventfds for records to carry. */
static int fds_make(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC)) < 0)
			return -1;
	return 0;
}

/* Send requests @h (seq counting up) without reading a reply, until the
 * primary stops taking them: our replies found no room, then our requests
 * none either. */
static int stuff(int fd, struct wire_hdr *h, const void *data)
{
	int n = 0;

	t0 = ms_now();
	h->seq = 2;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int rc = chan_send_rec(fd, h, data, NULL, 0);

		if (rc == 0) {
			h->seq++;
			n++;
		} else if (rc != -EAGAIN) {
			return -1;
		} else if (poll(&p, 1, 300) == 0) {
			break;
		}
	}
	printf("stuffed requests=%d ms=%lld\n", n, since());
	fflush(stdout);
	return n;
}

static int cmd_noread(void)
{
	struct wire_hdr h = hdr(WIRE_REQ, MSG_PING, 0, 0, 0);
	int fd = sock_open(0);

	if (fd < 0 || hello_send(fd, 0, NULL, 0) < 0 || reply_wait(fd, 1, 2000) != 0 ||
	    stuff(fd, &h, NULL) < 0)
		return 1;
	real_attach(fd);
	wait_closed(fd, 8000);
	return 0;
}

/* Read replies of one fd each until none comes for 300 ms, or EOF. */
static void replies_check(int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct wire_hdr h;
	int n = 0, good = 0, eof = 0;

	for (;;) {
		struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct cmsghdr *c;
		eventfd_t v = 0;
		ssize_t k;
		int efd = -1;

		if (poll(&p, 1, 300) != 1)
			break;
		k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (k < (ssize_t)sizeof(h)) {
			eof = 1;
			break;
		}
		c = CMSG_FIRSTHDR(&mh);
		if (c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&efd, CMSG_DATA(c), sizeof(efd));
		n++;
		good += h.status == 0 && efd >= 0 && eventfd_read(efd, &v) == 0 && v == 1;
		if (efd >= 0)
			close(efd);
	}
	printf("replies=%d good=%d eof=%d\n", n, good, eof);
}

static int cmd_noreadfds(void)
{
	uint32_t one = 1;
	struct wire_hdr h = hdr(WIRE_REQ, DEMO_MSG_GET_FDS, 0, sizeof(one), 0);
	int fd = sock_open(0);

	if (fd < 0 || hello_send(fd, 0, NULL, 0) < 0 || reply_wait(fd, 1, 2000) != 0 ||
	    stuff(fd, &h, &one) < 0)
		return 1;
	wait_usr1();
	replies_check(fd);
	return 0;
}

/* The rest of a request, one fd per record, 1.5 s apart: each comes
 * before a wait of 2 s per record would end. */
struct trickle {
	int fd, efd;
	struct wire_hdr h;
};

static void *trickle(void *arg)
{
	struct trickle *t = arg;

	for (uint32_t sent = FDS_PER_REC; sent < t->h.nfds && !closed_within(t->fd, 1500); sent++)
		if (chan_send_rec(t->fd, &t->h, NULL, &t->efd, 1) < 0)
			break;
	return NULL;
}

static int cmd_slowfds(uint32_t nfds)
{
	struct trickle t = { .h = hdr(WIRE_REQ, MPOPS_MSG_USER + 1, 2, 0, nfds) };
	int fds[FDS_PER_REC];
	pthread_t th;

	t.fd = sock_open(0);
	if (t.fd < 0 || fds_make(fds, FDS_PER_REC) < 0 ||
	    hello_send(t.fd, 0, NULL, 0) < 0 || reply_wait(t.fd, 1, 2000) != 0)
		return 1;
	t0 = ms_now();
	if (chan_send_rec(t.fd, &t.h, NULL, fds, FDS_PER_REC) < 0)
		return 1;
	printf("announced nfds=%u\n", nfds);
	fflush(stdout);
	t.h.kind = WIRE_FDS;
	t.efd = fds[0];
	if (pthread_create(&th, NULL, trickle, &t) != 0)
		return 1;
	if (closed_within(t.fd, 300)) {
		/* Refused at its first record: attach after. */
		wait_closed(t.fd, 0);
		real_attach(-1);
	} else {
		real_attach(t.fd);
		wait_closed(t.fd, 8000);
	}
	shutdown(t.fd, SHUT_RDWR);	/* stops the trickle if still going */
	pthread_join(th, NULL);
	return 0;
}

static int cmd_refused(uint32_t nfds)
{
	int fds[FDS_PER_REC], fd, rc;

	if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0) {
		perror("setresuid");
		return 1;
	}
	fd = sock_open(0);
	if (fd < 0 || fds_make(fds, FDS_PER_REC) < 0)
		return 1;
	t0 = ms_now();
	if (hello_send(fd, nfds, fds, FDS_PER_REC) < 0)
		return 1;
	rc = reply_wait(fd, 1, 5000);
	printf("reply=%d ms=%lld\n", rc, since());
	return 0;
}

static int cmd_idle(void)
{
	int fd = sock_open(0);

	if (fd < 0)
		return 1;
	t0 = ms_now();
	printf("connected\n");
	fflush(stdout);
	wait_closed(fd, 8000);
	return 0;
}

/* ---- flood -------------------------------------------------------------- */

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int *conns;
static unsigned nconns;

/* Keep nconns connections open: replace those the primary closed, a few
 * per round so the primary is busy accepting, not this process. */
static void *flood_keep(void *arg)
{
	struct pollfd *p = calloc(nconns, sizeof(*p));
	int reported = 0;

	(void)arg;
	while (!stop) {
		unsigned open = 0, made = 0;

		for (unsigned i = 0; i < nconns; i++) {
			if (conns[i] < 0 && made < (reported ? 2u : nconns) &&
			    (conns[i] = sock_open(1)) >= 0)
				made++;
			open += conns[i] >= 0;
			p[i] = (struct pollfd){ .fd = conns[i], .events = 0 };
		}
		if (!reported && (open == nconns || since() > 1000)) {
			printf("flooding open=%u ms=%lld\n", open, since());
			fflush(stdout);
			reported = 1;
		}
		if (poll(p, nconns, 5) > 0)
			for (unsigned i = 0; i < nconns; i++)
				if (p[i].revents & (POLLHUP | POLLERR)) {
					close(conns[i]);
					conns[i] = -1;
				}
		usleep(5000);
	}
	free(p);
	return NULL;
}

static int cmd_flood(unsigned n)
{
	struct rlimit rl;
	pthread_t th;

	/* The test lowered its own limit; ours is inherited. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGTERM, on_term);
	conns = malloc(n * sizeof(*conns));
	nconns = n;
	for (unsigned i = 0; i < n; i++)
		conns[i] = -1;
	t0 = ms_now();
	if (pthread_create(&th, NULL, flood_keep, NULL) != 0)
		return 1;
	usleep(1500 * 1000);
	real_attach(-1);
	fflush(stdout);
	while (!stop)
		usleep(10000);
	pthread_join(th, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd;
	unsigned n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Taken by sigwait() in the commands that wait for the test. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	if (argc < 4) {
		fprintf(stderr, "usage: chan-rogue CMD RUNDIR REGION [N]\n");
		return 2;
	}
	cmd = argv[1];
	rundir = argv[2];
	region = argv[3];
	n = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 0) : 0;
	if (strcmp(cmd, "noread") == 0)
		return cmd_noread();
	if (strcmp(cmd, "noreadfds") == 0)
		return cmd_noreadfds();
	if (strcmp(cmd, "slowfds") == 0)
		return cmd_slowfds(n);
	if (strcmp(cmd, "refused") == 0)
		return cmd_refused(n);
	if (strcmp(cmd, "idle") == 0)
		return cmd_idle();
	if (strcmp(cmd, "flood") == 0)
		return cmd_flood(n);
	if (strcmp(cmd, "late") == 0) {
		printf("ready\n");
		fflush(stdout);
		wait_usr1();
		real_attach_within(-1, 3000);
		return 0;
	}
	fprintf(stderr, "unknown command %s\n", cmd);
	return 2;
}
